import { App, Lazy, Stack } from 'aws-cdk-lib';
import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import * as chatbot from 'aws-cdk-lib/aws-chatbot';
import * as codepipeline from 'aws-cdk-lib/aws-codepipeline';
import * as events from 'aws-cdk-lib/aws-events';
import * as kms from 'aws-cdk-lib/aws-kms';
import { PipelineNotifications, PipelineNotificationsProps } from '../../src';

function pipelineIn(stack: Stack) {
  return codepipeline.Pipeline.fromPipelineArn(stack, 'Pipeline', 'arn:aws:codepipeline:us-east-1:123456789012:my-pipeline');
}

describe('PipelineNotifications', () => {
  const stack = new Stack(new App(), 'Notify');
  const existing = chatbot.SlackChannelConfiguration.fromSlackChannelConfigurationArn(stack, 'Existing',
    'arn:aws:chatbot::123456789012:chat-configuration/slack-channel/releases');
  const notifications = new PipelineNotifications(stack, 'Notifications', {
    pipeline: pipelineIn(stack),
    emails: ['a@example.com', 'b.c@example.org'],
    slackChannel: existing,
  });
  notifications.notifyOnEvent('Rollback', {
    source: ['aws.codedeploy'],
    detailType: ['CodeDeploy Deployment State-change Notification'],
    detail: { state: ['FAILURE'] },
  }, events.RuleTargetInput.fromText('ROLLED BACK'));
  const template = Template.fromStack(stack);

  test('subscribes every email', () => {
    template.resourceCountIs('AWS::SNS::Subscription', 2);
    template.hasResourceProperties('AWS::SNS::Subscription', { Protocol: 'email', Endpoint: 'b.c@example.org' });
  });

  test('EventBridge publishes through a role of this account, not a service-principal grant; the key is deleted with the stack', () => {
    template.hasResource('AWS::KMS::Key', {
      Properties: Match.objectLike({ EnableKeyRotation: true, PendingWindowInDays: 7 }),
      DeletionPolicy: 'Delete',
    });
    const policies = JSON.stringify(template.findResources('AWS::SNS::TopicPolicy'));
    expect(policies).not.toContain('events.amazonaws.com');
    expect(JSON.stringify(template.findResources('AWS::KMS::Key'))).not.toContain('events.amazonaws.com');
    template.hasResourceProperties('AWS::Events::Rule', { Targets: [Match.objectLike({ RoleArn: Match.anyValue() })] });
    template.hasResourceProperties('AWS::IAM::Policy', {
      PolicyDocument: { Statement: Match.arrayWith([Match.objectLike({ Action: 'sns:Publish', Effect: 'Allow' })]) },
    });
  });

  test('narrows pipeline events to its pipeline, leaves other sources as given', () => {
    template.hasResourceProperties('AWS::Events::Rule', {
      EventPattern: Match.objectLike({ resources: ['arn:aws:codepipeline:us-east-1:123456789012:my-pipeline'], detail: { state: ['FAILED'] } }),
    });
    template.hasResourceProperties('AWS::Events::Rule', {
      EventPattern: { 'source': ['aws.codedeploy'], 'detail-type': Match.anyValue(), 'detail': { state: ['FAILURE'] } },
      Targets: [Match.objectLike({ Input: '"ROLLED BACK"' })],
    });
  });

  test('targets an existing Slack channel with a notification rule instead of creating one', () => {
    template.resourceCountIs('AWS::Chatbot::SlackChannelConfiguration', 0);
    template.hasResourceProperties('AWS::CodeStarNotifications::NotificationRule', {
      Targets: [{ TargetType: 'AWSChatbotSlack', TargetAddress: 'arn:aws:chatbot::123456789012:chat-configuration/slack-channel/releases' }],
    });
    expect(notifications.slackChannel).toBe(existing);
  });

  test('keeps undeliverable notifications 14 days in an encrypted, SSL-only queue', () => {
    template.hasResourceProperties('AWS::SQS::Queue', { SqsManagedSseEnabled: true, MessageRetentionPeriod: 1209600 });
    template.hasResourceProperties('AWS::SQS::QueuePolicy', {
      PolicyDocument: { Statement: Match.arrayWith([Match.objectLike({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } })]) },
    });
  });
});

describe('PipelineNotifications bad input', () => {
  function make(props: Partial<PipelineNotificationsProps>) {
    const stack = new Stack();
    return new PipelineNotifications(stack, 'Notifications', { pipeline: pipelineIn(stack), ...props });
  }

  test.each(['ops', 'ops@', '@example.com', 'ops@example', 'ops @example.com', 'ops@exa_mple.com', '.ops@example.com', 'a..b@example.com', 'ops@example.123'])(
    'the malformed email %p is refused, naming the construct, the property and the value', (email) => {
      expect(() => make({ emails: [email] }))
        .toThrow(`PipelineNotifications 'Default/Notifications': 'emails' must be an email address like ops@example.com, got '${email}'`);
    });

  test('an address listed twice is refused', () => {
    expect(() => make({ emails: ['a@example.com', 'b@example.com', 'a@example.com'] })).toThrow(/'emails' must list each address once, got 'a@example.com'/);
  });

  test('addresses SNS would accept pass, tokens are skipped', () => {
    expect(() => make({ emails: ['first.last+tag@sub.example.co.uk', "o'brien@example.com", Lazy.string({ produce: () => 'x' })] })).not.toThrow();
  });

  test('an imported key is accepted with a warning that its policy must let EventBridge use it', () => {
    const stack = new Stack();
    new PipelineNotifications(stack, 'N', {
      pipeline: pipelineIn(stack),
      encryptionKey: kms.Key.fromKeyArn(stack, 'K', 'arn:aws:kms:us-east-1:123456789012:key/abc'),
    });
    Annotations.fromStack(stack).hasWarning('/Default/N', Match.stringLikeRegexp('events.amazonaws.com'));
  });

  test('a Slack workspace without a channel is refused', () => {
    expect(() => make({ slackWorkspaceId: 'T0123ABCD' })).toThrow(/'slackChannelId' must be set together with 'slackWorkspaceId'/);
    expect(() => make({ slackChannelId: 'C0123ABCD' })).toThrow(/'slackWorkspaceId' must be set together with 'slackChannelId'/);
  });

  test('Slack ids of the wrong shape are refused with the value', () => {
    expect(() => make({ slackWorkspaceId: 'my-team', slackChannelId: 'C0123ABCD' })).toThrow(/'slackWorkspaceId' must be a Slack workspace ID.*got 'my-team'/);
    expect(() => make({ slackWorkspaceId: 'T0123ABCD', slackChannelId: '#releases' })).toThrow(/'slackChannelId' must be a Slack channel ID.*got '#releases'/);
  });

  test('an existing channel and new channel ids together are refused', () => {
    const stack = new Stack();
    const existing = chatbot.SlackChannelConfiguration.fromSlackChannelConfigurationArn(stack, 'E',
      'arn:aws:chatbot::123456789012:chat-configuration/slack-channel/releases');
    expect(() => new PipelineNotifications(stack, 'N', {
      pipeline: pipelineIn(stack), slackChannel: existing, slackWorkspaceId: 'T1', slackChannelId: 'C1',
    })).toThrow(/'slackChannel' cannot be combined with 'slackWorkspaceId' and 'slackChannelId'/);
  });
});
