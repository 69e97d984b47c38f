/**
 * The log group helper (ADR 0012): the key comes from the nearest registration in the same stack, aws-cdk-lib's
 * provider functions get a group unless they have one.
 */
import { App, RemovalPolicy, Stack } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as cr from 'aws-cdk-lib/custom-resources';
import { Construct } from 'constructs';
import { createLogGroup, encryptLogGroupsWith, logProviderFunctions } from '../../src/private/log-group';

const app = new App();
const stack = new Stack(app, 'Logs', { env: { account: '123456789012', region: 'eu-west-1' } });
const other = new Stack(app, 'Other', { env: { account: '123456789012', region: 'eu-west-1' } });
const stackKey = new kms.Key(stack, 'StackKey');
const nearKey = new kms.Key(stack, 'NearKey');
encryptLogGroupsWith(stack, stackKey);
const near = new Construct(stack, 'Near');
encryptLogGroupsWith(near, nearKey);
encryptLogGroupsWith(near, stackKey); // a scope keeps its first key
const inNear = createLogGroup(new Construct(near, 'Deep'), 'Group');
const inStack = createLogGroup(stack, 'StackGroup', logs.RetentionDays.ONE_WEEK, RemovalPolicy.RETAIN);
const inOther = createLogGroup(other, 'OtherGroup');
// A user's AwsCustomResource created first, with its own log group: the provider keeps it.
const userGroup = new logs.LogGroup(other, 'UserGroup', { retention: logs.RetentionDays.ONE_DAY });
new cr.AwsCustomResource(other, 'UserResource', {
  onCreate: { service: 'SSM', action: 'getParameter', parameters: { Name: 'x' }, physicalResourceId: cr.PhysicalResourceId.of('x') },
  policy: cr.AwsCustomResourcePolicy.fromSdkCalls({ resources: cr.AwsCustomResourcePolicy.ANY_RESOURCE }),
  logGroup: userGroup,
  installLatestAwsSdk: false,
});
logProviderFunctions(other);
logProviderFunctions(other); // once per stack
const template = Template.fromStack(stack);
const otherTemplate = Template.fromStack(other);
const idOf = (s: Stack, c: Construct) => s.getLogicalId(c.node.defaultChild as logs.CfnLogGroup);

test('a log group takes the key of its nearest registered ancestor', () => {
  expect(template.toJSON().Resources[idOf(stack, inNear)].Properties.KmsKeyId).toEqual({ 'Fn::GetAtt': [stack.getLogicalId(nearKey.node.defaultChild as kms.CfnKey), 'Arn'] });
});

test('elsewhere in the stack, the stack\'s key, with the retention and removal policy given', () => {
  expect(template.toJSON().Resources[idOf(stack, inStack)]).toMatchObject({
    Properties: { KmsKeyId: { 'Fn::GetAtt': [stack.getLogicalId(stackKey.node.defaultChild as kms.CfnKey), 'Arn'] }, RetentionInDays: 7 },
    DeletionPolicy: 'Retain',
  });
});

test('in a stack without a registered key, no key (never a reference to another stack), a month, deleted', () => {
  expect(otherTemplate.toJSON().Resources[idOf(other, inOther)]).toMatchObject({ Properties: { RetentionInDays: 30 }, DeletionPolicy: 'Delete' });
  expect(otherTemplate.toJSON().Resources[idOf(other, inOther)].Properties.KmsKeyId).toBeUndefined();
});

test('each key registered gets one statement for CloudWatch Logs of this account and region', () => {
  for (const key of [stackKey, nearKey]) {
    const statements = template.toJSON().Resources[stack.getLogicalId(key.node.defaultChild as kms.CfnKey)].Properties.KeyPolicy.Statement;
    expect(statements.filter((s: any) => s.Sid === 'AllowCloudWatchLogsForThisAccountsLogGroups')).toEqual([{
      Sid: 'AllowCloudWatchLogsForThisAccountsLogGroups',
      Effect: 'Allow',
      Principal: { Service: 'logs.eu-west-1.amazonaws.com' },
      Action: ['kms:Encrypt*', 'kms:Decrypt*', 'kms:ReEncrypt*', 'kms:GenerateDataKey*', 'kms:Describe*'],
      Resource: '*',
      Condition: { ArnLike: { 'kms:EncryptionContext:aws:logs:arn': { 'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, ':logs:eu-west-1:123456789012:log-group:*']] } } },
    }]);
  }
});

test('a provider function the user gave a log group keeps it, and no second group is added', () => {
  otherTemplate.hasResourceProperties('AWS::Lambda::Function', {
    LoggingConfig: { LogGroup: { Ref: other.getLogicalId(userGroup.node.defaultChild as logs.CfnLogGroup) } },
  });
  otherTemplate.resourceCountIs('AWS::Logs::LogGroup', 2);
  otherTemplate.resourcePropertiesCountIs('AWS::Lambda::Function', { LoggingConfig: Match.anyValue() }, 1);
});
