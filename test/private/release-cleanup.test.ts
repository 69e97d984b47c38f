import { App, CfnResource, Stack } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as logs from 'aws-cdk-lib/aws-logs';
import { encryptLogGroupsWith } from '../../src/private/log-group';
import { ReleaseAlarmCleanup } from '../../src/private/release-cleanup';
import { checkApp, describeFailures } from '../compliance/harness';

// One app for the file: a stack with the cleanup alone, and one with a customer managed key for its logs.
const PREFIX = 'Api-Release-1A2B3C';
const app = new App();
const stack = new Stack(app, 'Cleanup', { env: { account: '111111111111', region: 'eu-west-1' } });
const cleanup = new ReleaseAlarmCleanup(stack, 'AlarmCleanup', { alarmPrefix: PREFIX });
const keyed = new Stack(app, 'Keyed', { env: { account: '111111111111', region: 'eu-west-1' } });
const key = new kms.Key(keyed, 'Key', { enableKeyRotation: true });
encryptLogGroupsWith(keyed, key);
new ReleaseAlarmCleanup(keyed, 'AlarmCleanup', { alarmPrefix: PREFIX, logRetention: logs.RetentionDays.ONE_WEEK });
const reports = checkApp(app);
const template = Template.fromStack(stack);
const keyedTemplate = Template.fromStack(keyed);

test('nag (AwsSolutions, Serverless) and the offline validator find nothing', () => {
  expect(reports.map(describeFailures)).toEqual(['Cleanup: clean', 'Keyed: clean']);
});

test('the custom resource carries the prefix and is backed by the cleanup function', () => {
  template.resourceCountIs('Custom::ReleaseAlarmCleanup', 1);
  const fnId = stack.getLogicalId(cleanup.function.node.defaultChild as CfnResource);
  template.hasResourceProperties('Custom::ReleaseAlarmCleanup', {
    ServiceToken: { 'Fn::GetAtt': [fnId, 'Arn'] },
    AlarmNamePrefix: PREFIX,
  });
});

test('the function logs to its own log group, with a retention, deleted with the stack', () => {
  const logsId = stack.getLogicalId(cleanup.node.findChild('Logs').node.defaultChild as CfnResource);
  template.hasResource('AWS::Logs::LogGroup', { Properties: { RetentionInDays: 30 }, DeletionPolicy: 'Delete', UpdateReplacePolicy: 'Delete' });
  template.hasResourceProperties('AWS::Lambda::Function', {
    LoggingConfig: { LogGroup: { Ref: logsId } },
    Runtime: 'nodejs24.x',
    Timeout: 300,
  });
});

test('the log group takes the given key and retention', () => {
  keyedTemplate.hasResourceProperties('AWS::Logs::LogGroup', {
    RetentionInDays: 7,
    KmsKeyId: { 'Fn::GetAtt': [Match.stringLikeRegexp('^Key'), 'Arn'] },
  });
});

test('the role may describe and delete the alarms with the prefix, and nothing else of CloudWatch', () => {
  const policies = template.findResources('AWS::IAM::Policy');
  const statements = Object.values(policies).flatMap((p: any) => p.Properties.PolicyDocument.Statement as any[]);
  const cloudwatch = statements.filter((s) => [].concat(s.Action).some((a: string) => a.startsWith('cloudwatch:')));
  expect(cloudwatch).toEqual([{
    Effect: 'Allow',
    Action: ['cloudwatch:DescribeAlarms', 'cloudwatch:DeleteAlarms'],
    Resource: { 'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, `:cloudwatch:eu-west-1:111111111111:alarm:${PREFIX}-*`]] },
  }]);
  const onStar = statements.filter((s) => [].concat(s.Resource).includes('*' as never));
  expect(onStar.flatMap((s) => [].concat(s.Action)).sort()).toEqual(['xray:PutTelemetryRecords', 'xray:PutTraceSegments']);
});

test('the custom resource is deleted before the function and its policy, so the cleanup still runs', () => {
  const resource = Object.values(template.findResources('Custom::ReleaseAlarmCleanup'))[0] as any;
  const fnId = stack.getLogicalId(cleanup.function.node.defaultChild as CfnResource);
  const fn = template.findResources('AWS::Lambda::Function')[fnId] as any;
  // The resource references the function (so depends on it); the function depends on the role's policy.
  expect(JSON.stringify(resource.Properties.ServiceToken)).toContain(fnId);
  expect(fn.DependsOn).toEqual(expect.arrayContaining([expect.stringMatching(/^AlarmCleanupRoleDefaultPolicy/)]));
});

test.each(['', 'has*star', 'has?mark', ' leading-space', 'x'.repeat(201)])('alarmPrefix %j fails at synth, naming the construct', (alarmPrefix) => {
  const other = new Stack(new App(), 'Bad');
  expect(() => new ReleaseAlarmCleanup(other, 'AlarmCleanup', { alarmPrefix })).toThrow(/Bad\/AlarmCleanup: alarmPrefix must be 1 to 200 characters/);
});
