import { App, CfnElement, Stack } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { IConstruct } from 'constructs';
import { DeliveryPipeline, Ec2BlueGreenPipeline, FargateBlueGreenPipeline, PipelineSource, ServerlessApiPipeline } from '../../src';
import { checkApp, describeFailures } from '../compliance/harness';
import { CONNECTION_ARN, flatten } from '../util/fixtures';

// Every pattern's quick start (required props only) gets the delivery metrics: the rules on its own pipeline, the
// handler, and the delivery rows on its one dashboard. One app, synthesized once.
const ENV = { account: '123456789012', region: 'us-east-1' };
const source = () => PipelineSource.connection('owner/repo', 'main', { connectionArn: CONNECTION_ARN });
const app = new App();
const patterns = {
  fargate: new FargateBlueGreenPipeline(new Stack(app, 'Fargate', { env: ENV }), 'Web', { source: source() }),
  ec2: new Ec2BlueGreenPipeline(new Stack(app, 'Ec2', { env: ENV }), 'Web', { source: source() }),
  serverless: new ServerlessApiPipeline(new Stack(app, 'Serverless', { env: ENV }), 'Api', {
    source: source(),
    routes: [{ route: 'GET /', entry: 'src/root.ts' }],
  }),
};
const templates = Object.fromEntries(Object.entries(patterns).map(([name, p]) => [name, Template.fromStack(Stack.of(p))]));
const reports = checkApp(app);

function idOf(construct: IConstruct): string {
  const stack = Stack.of(construct);
  return stack.resolve(stack.getLogicalId((construct.node.defaultChild ?? construct) as CfnElement));
}

function check(name: keyof typeof patterns, pipeline: DeliveryPipeline, dashboard: IConstruct) {
  const template = templates[name];
  const stack = Stack.of(pipeline);
  const metrics = pipeline.deliveryMetrics;
  expect(metrics).toBeDefined();
  const handlerArn = { 'Fn::GetAtt': [idOf(metrics!.handler), 'Arn'] };
  const pipelineArn = {
    'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, ':codepipeline:us-east-1:123456789012:', { Ref: idOf(pipeline.pipeline) }]],
  };
  for (const detailType of ['CodePipeline Pipeline Execution State Change', 'CodePipeline Stage Execution State Change']) {
    template.hasResourceProperties('AWS::Events::Rule', {
      EventPattern: Match.objectLike({ 'detail-type': [detailType], 'resources': [pipelineArn] }),
      Targets: [Match.objectLike({ Arn: handlerArn })],
    });
  }
  // Every pattern's release engine rolls back itself (no stage rollback).
  template.hasResourceProperties('AWS::Lambda::Function', {
    Environment: { Variables: Match.objectLike({ ENGINE_ROLLS_BACK: 'true', PIPELINE_NAME: { Ref: idOf(pipeline.pipeline) } }) },
  });
  // Time to restore from the production alarms: one rule on every alarm of the pattern's monitoring, back to OK.
  const alarmRules = Object.values(template.findResources('AWS::Events::Rule'))
    .filter((r: any) => r.Properties.EventPattern.source?.[0] === 'aws.cloudwatch');
  expect(alarmRules).toHaveLength(1);
  const alarmRule: any = alarmRules[0];
  expect(alarmRule.Properties.EventPattern).toEqual({
    'source': ['aws.cloudwatch'],
    'detail-type': ['CloudWatch Alarm State Change'],
    'resources': expect.any(Array),
    'detail': { state: { value: ['OK'] }, previousState: { value: ['ALARM'] } },
  });
  const alarmIds = Object.keys(template.findResources('AWS::CloudWatch::Alarm'))
    .filter((id) => !id.includes('DeliveryMetrics'));
  expect(alarmRule.Properties.EventPattern.resources.map((r: any) => r['Fn::GetAtt']?.[0]).sort()).toEqual(alarmIds.sort());
  expect(alarmRule.Properties.Targets).toEqual([expect.objectContaining({ Arn: handlerArn })]);
  template.resourceCountIs('AWS::DynamoDB::Table', 1);
  // On the pattern's own dashboard: no second dashboard (3 USD a month beyond the first three of an account).
  template.resourceCountIs('AWS::CloudWatch::Dashboard', 1);
  const body = flatten(stack, template.toJSON().Resources[idOf(dashboard)].Properties.DashboardBody);
  for (const title of ['Deployment frequency', 'Lead time for changes', 'Change failure rate', 'Time to restore', 'Recent releases', 'against releases']) {
    expect(body).toContain(title);
  }
}

describe('every pattern measures its delivery', () => {
  test('FargateBlueGreenPipeline', () => check('fargate', patterns.fargate.pipeline, patterns.fargate.dashboard));
  test('Ec2BlueGreenPipeline', () => check('ec2', patterns.ec2.pipeline, patterns.ec2.dashboard));
  test('ServerlessApiPipeline', () => check('serverless', patterns.serverless.pipeline, patterns.serverless.dashboard));

  test('cdk-nag and the CloudFormation validator stay at zero for every pattern', () => {
    for (const report of reports) {
      expect(describeFailures(report)).toBe(`${report.stackName}: clean`);
    }
    expect(reports.length).toBeGreaterThanOrEqual(3);
  });
});
