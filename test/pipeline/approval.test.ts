import { Duration, Lazy, Stack } from 'aws-cdk-lib';
import * as codepipeline from 'aws-cdk-lib/aws-codepipeline';
import * as actions from 'aws-cdk-lib/aws-codepipeline-actions';
import { Approval, ApprovalPlacement } from '../../src';

describe('Approval', () => {
  test('none() creates no action', () => {
    const approval = Approval.none();
    expect(approval.placement).toBe(ApprovalPlacement.NONE);
    expect(approval.createAction({ actionName: 'Approve' })).toBeUndefined();
  });

  test('beforeRelease() defaults to a 24 hour timeout and takes the defaults it is offered', () => {
    const approval = Approval.beforeRelease();
    expect(approval.placement).toBe(ApprovalPlacement.BEFORE_RELEASE);
    expect(approval.timeout.toHours()).toBe(24);
    const action = approval.createAction({
      actionName: 'Approve', runOrder: 3, defaultReviewUrl: 'https://test.example.com', defaultMessage: 'Look first',
    });
    expect(action).toBeInstanceOf(actions.ManualApprovalAction);
    expect(action!.actionProperties.runOrder).toBe(3);
    expect(renderConfiguration(action!)).toEqual({ CustomData: 'Look first', ExternalEntityLink: 'https://test.example.com' });
  });

  test('its own message and review URL win over the defaults a release offers', () => {
    const approval = Approval.beforeProductionTraffic({ message: 'Mine', reviewUrl: 'https://mine.example.com', timeout: Duration.minutes(30) });
    expect(approval.placement).toBe(ApprovalPlacement.BEFORE_PRODUCTION_TRAFFIC);
    expect(approval.reviewUrl).toBe('https://mine.example.com');
    const action = approval.createAction({ actionName: 'Approve', defaultReviewUrl: 'https://test.example.com', defaultMessage: 'x' })!;
    expect(renderConfiguration(action)).toEqual({ CustomData: 'Mine', ExternalEntityLink: 'https://mine.example.com' });
  });

  test.each([
    ['under CodePipeline\'s 5 minute minimum', Duration.minutes(4), /'timeout' must be between 5 minutes and 60 days, got 4 minutes/],
    ['over CodePipeline\'s 60 day maximum', Duration.days(61), /'timeout' must be between 5 minutes and 60 days, got 61 days/],
  ])('a timeout %s is refused with the value', (_name, timeout, message) => {
    expect(() => Approval.beforeRelease({ timeout })).toThrow(message);
    expect(() => Approval.beforeProductionTraffic({ timeout })).toThrow(/Approval.beforeProductionTraffic: 'timeout'/);
  });

  test('a timeout that is not whole minutes is refused: CodePipeline takes minutes', () => {
    expect(() => Approval.beforeRelease({ timeout: Duration.seconds(301) })).toThrow(/'timeout' must be a whole number of minutes, got 5 minutes 1 second/);
  });

  test('the timeout bounds are inclusive', () => {
    expect(Approval.beforeRelease({ timeout: Duration.minutes(5) }).timeout.toMinutes()).toBe(5);
    expect(Approval.beforeRelease({ timeout: Duration.days(60) }).timeout.toDays()).toBe(60);
  });

  test('a review URL that is not http(s) is refused; a token is accepted', () => {
    expect(() => Approval.beforeRelease({ reviewUrl: 'ftp://x' })).toThrow(/Approval.beforeRelease: 'reviewUrl' must be an http\(s\) URL, got 'ftp:\/\/x'/);
    expect(Approval.beforeRelease({ reviewUrl: Lazy.string({ produce: () => 'https://later' }) }).reviewUrl).toBeDefined();
  });
});

function renderConfiguration(action: codepipeline.IAction): unknown {
  const stack = new Stack();
  const pipeline = new codepipeline.Pipeline(stack, 'P', { pipelineType: codepipeline.PipelineType.V2 });
  const source = new codepipeline.Artifact();
  pipeline.addStage({
    stageName: 'Source',
    actions: [new actions.CodeStarConnectionsSourceAction({
      actionName: 'S',
      owner: 'o',
      repo: 'r',
      output: source,
      connectionArn: 'arn:aws:codeconnections:us-east-1:123456789012:connection/abc',
    })],
  });
  pipeline.addStage({ stageName: 'Gate', actions: [action] });
  const rendered = stack.resolve((pipeline.node.defaultChild as codepipeline.CfnPipeline).stages) as any[];
  return rendered[1].actions[0].configuration;
}

describe('Approval timeouts a release may default', () => {
  /** The timeout the manual approval action was created with, in minutes. */
  const timeoutOf = (action: codepipeline.IAction | undefined): number => {
    expect(action).toBeInstanceOf(actions.ManualApprovalAction);
    return (action as any).props.timeout.toMinutes();
  };

  test('without a timeout of its own, the approval takes the release\'s default timeout (and remembers it was given none)', () => {
    const approval = Approval.beforeProductionTraffic();
    expect(approval.givenTimeout).toBeUndefined();
    expect(timeoutOf(approval.createAction({ actionName: 'Approve', defaultTimeout: Duration.minutes(40) }))).toBe(40);
    expect(timeoutOf(approval.createAction({ actionName: 'Approve' }))).toBe(24 * 60);
  });

  test('a timeout the approval was given wins over the release\'s default', () => {
    const approval = Approval.beforeProductionTraffic({ timeout: Duration.minutes(20) });
    expect(approval.givenTimeout?.toMinutes()).toBe(20);
    expect(timeoutOf(approval.createAction({ actionName: 'Approve', defaultTimeout: Duration.minutes(40) }))).toBe(20);
  });

  test('a default timeout outside what CodePipeline allows is refused, naming it', () => {
    expect(() => Approval.beforeRelease().createAction({ actionName: 'Approve', defaultTimeout: Duration.minutes(2) }))
      .toThrow(/Approval.beforeRelease: 'defaultTimeout' must be between 5 minutes and 60 days, got 2 minutes/);
  });
});
