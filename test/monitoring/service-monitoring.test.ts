import { App, Duration, Stack } from 'aws-cdk-lib';
import { Capture, Match, Template } from 'aws-cdk-lib/assertions';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as sns from 'aws-cdk-lib/aws-sns';
import { ServiceMonitoring } from '../../src';
import { checkApp, describeFailures } from '../compliance/harness';

const errors = new cloudwatch.Metric({ namespace: 'AWS/ApplicationELB', metricName: 'HTTPCode_Target_5XX_Count', statistic: 'Sum', period: Duration.minutes(1) });

describe('ServiceMonitoring with its own topic', () => {
  const app = new App();
  const stack = new Stack(app, 'Monitoring');
  const logGroup = new logs.LogGroup(stack, 'AppLogs', { retention: logs.RetentionDays.ONE_WEEK });
  const monitoring = new ServiceMonitoring(stack, 'Monitoring', { alarmEmails: ['oncall@example.com'], title: 'Web service' });
  const fiveXx = monitoring.addAlarm('FiveXx', { metric: errors, threshold: 5, description: 'Targets answer 5xx' });
  monitoring.addLogMetricAlarm('Unhandled', {
    logGroup, filterPattern: '"ValueError"', metricName: 'UnhandledErrors', description: 'The service logged ValueError',
  });
  const template = Template.fromStack(stack);
  const topicId = stack.getLogicalId(monitoring.alarmTopic.node.defaultChild as sns.CfnTopic);

  test('creates an encrypted, SSL-only topic that CloudWatch of this account may publish to, with the emails', () => {
    template.hasResourceProperties('AWS::SNS::Topic', { KmsMasterKeyId: Match.anyValue() });
    template.hasResourceProperties('AWS::KMS::Key', {
      EnableKeyRotation: true,
      PendingWindowInDays: 7,
      KeyPolicy: {
        Statement: Match.arrayWith([Match.objectLike({
          Effect: 'Allow',
          Principal: { Service: 'cloudwatch.amazonaws.com' },
          Action: ['kms:Decrypt', 'kms:GenerateDataKey*'],
        })]),
      },
    });
    // The SSL-only policy replaces SNS's default policy, so CloudWatch needs its own Allow to publish at all.
    template.hasResourceProperties('AWS::SNS::TopicPolicy', {
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } }),
          Match.objectLike({
            Sid: 'AllowCloudwatchToPublish',
            Effect: 'Allow',
            Principal: { Service: 'cloudwatch.amazonaws.com' },
            Action: 'sns:Publish',
            Resource: { Ref: topicId },
            Condition: { StringEquals: { 'aws:SourceAccount': { Ref: 'AWS::AccountId' } } },
          }),
        ]),
      },
    });
    template.hasResourceProperties('AWS::SNS::Subscription', { Protocol: 'email', Endpoint: 'oncall@example.com' });
  });

  test('an alarm notifies the topic on ALARM and OK, with 2 of 3 breaching minutes and missing data not breaching', () => {
    template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      MetricName: 'HTTPCode_Target_5XX_Count',
      Threshold: 5,
      ComparisonOperator: 'GreaterThanOrEqualToThreshold',
      EvaluationPeriods: 3,
      DatapointsToAlarm: 2,
      TreatMissingData: 'notBreaching',
      AlarmDescription: 'Targets answer 5xx',
      AlarmActions: [{ Ref: topicId }],
      OKActions: [{ Ref: topicId }],
    });
    expect(monitoring.alarms).toHaveLength(2);
    expect(monitoring.alarms[0]).toBe(fiveXx);
  });

  test('a log pattern becomes a custom metric (0 when nothing matches) with an alarm on the first match', () => {
    template.hasResourceProperties('AWS::Logs::MetricFilter', {
      FilterPattern: '"ValueError"',
      LogGroupName: { Ref: stack.getLogicalId(logGroup.node.defaultChild as logs.CfnLogGroup) },
      MetricTransformations: [{ MetricNamespace: 'DeliveryPipelines', MetricName: 'UnhandledErrors', MetricValue: '1', DefaultValue: 0 }],
    });
    template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      Namespace: 'DeliveryPipelines',
      MetricName: 'UnhandledErrors',
      Statistic: 'Sum',
      Period: 300,
      Threshold: 1,
      EvaluationPeriods: 1,
      DatapointsToAlarm: 1,
    });
  });

  test('the dashboard has a title and one graph per alarm with its threshold', () => {
    const body = new Capture();
    template.hasResourceProperties('AWS::CloudWatch::Dashboard', { DashboardBody: body });
    const text = JSON.stringify(stack.resolve(body.asObject()));
    expect(text).toContain('# Web service');
    expect(text).toContain('Targets answer 5xx');
    expect(text).toContain('The service logged ValueError');
  });

  test('passes cdk-nag and the validator', () => {
    expect(checkApp(app).map(describeFailures)).toEqual(['Monitoring: clean']);
  });
});

describe('ServiceMonitoring with a given topic', () => {
  test('uses it and creates no key or topic', () => {
    const stack = new Stack();
    const topic = new sns.Topic(stack, 'Existing');
    const monitoring = new ServiceMonitoring(stack, 'Monitoring', { alarmTopic: topic });
    monitoring.addAlarm('A', { metric: errors, threshold: 1, description: 'x' });
    const template = Template.fromStack(stack);
    template.resourceCountIs('AWS::SNS::Topic', 1);
    template.resourceCountIs('AWS::KMS::Key', 0);
    expect(monitoring.alarmTopic).toBe(topic);
  });
});

describe('ServiceMonitoring bad input', () => {
  const stack = new Stack();
  const monitoring = new ServiceMonitoring(stack, 'M');
  const logGroup = new logs.LogGroup(stack, 'L');

  test('emails with a given topic are refused', () => {
    const s = new Stack();
    expect(() => new ServiceMonitoring(s, 'M', { alarmTopic: new sns.Topic(s, 'T'), alarmEmails: ['a@example.com'] }))
      .toThrow(/'alarmEmails' cannot be combined with 'alarmTopic'/);
  });

  test('a malformed email is refused with the value', () => {
    expect(() => new ServiceMonitoring(new Stack(), 'M', { alarmEmails: ['nobody'] })).toThrow(/'alarmEmails' must be an email address.*got 'nobody'/);
  });

  test.each([
    [{ evaluationPeriods: 0 }, /'evaluationPeriods' must be a whole number of at least 1, got 0/],
    [{ evaluationPeriods: 1.5 }, /'evaluationPeriods' must be a whole number of at least 1, got 1.5/],
    [{ evaluationPeriods: 3, datapointsToAlarm: 4 }, /'datapointsToAlarm' must be a whole number from 1 to evaluationPeriods \(3\), got 4/],
    [{ description: ' ' }, /'description' must not be empty/],
  ])('alarm options %p are refused', (options, message) => {
    expect(() => monitoring.addAlarm(`Bad${Math.random()}`.replace('.', ''), { metric: errors, threshold: 1, description: 'd', ...options })).toThrow(message);
  });

  test('a metric name CloudWatch does not accept is refused', () => {
    expect(() => monitoring.addLogMetricAlarm('Bad', { logGroup, filterPattern: 'x', metricName: 'has space', description: 'd' }))
      .toThrow(/'metricName' must be 1 to 255 letters.*got 'has space'/);
  });

  test('an empty filter pattern is refused', () => {
    expect(() => monitoring.addLogMetricAlarm('Empty', { logGroup, filterPattern: '', metricName: 'M', description: 'd' }))
      .toThrow(/'filterPattern' must not be empty/);
  });
});

describe('ServiceMonitoring with a key of its owner', () => {
  test('encryptionKey encrypts the new alarm topic instead of a new key, and lets CloudWatch use it only through SNS topics', () => {
    const stack = new Stack();
    const key = new kms.Key(stack, 'Shared');
    const monitoring = new ServiceMonitoring(stack, 'Monitoring', { encryptionKey: key });
    const template = Template.fromStack(stack);
    template.resourceCountIs('AWS::KMS::Key', 1);
    template.hasResourceProperties('AWS::SNS::Topic', { KmsMasterKeyId: { 'Fn::GetAtt': [stack.getLogicalId(key.node.defaultChild as kms.CfnKey), 'Arn'] } });
    const policy = JSON.stringify(Object.values(template.findResources('AWS::KMS::Key'))[0].Properties.KeyPolicy);
    expect(policy).toContain('cloudwatch.amazonaws.com');
    expect(policy).toContain('kms:EncryptionContext:aws:sns:topicArn');
    expect(monitoring.alarmTopic).toBeDefined();
  });

  test('encryptionKey with an alarmTopic of the caller is refused: that topic has its own encryption', () => {
    const stack = new Stack();
    const topic = new sns.Topic(stack, 'Given');
    expect(() => new ServiceMonitoring(stack, 'Monitoring', { alarmTopic: topic, encryptionKey: new kms.Key(stack, 'Key') }))
      .toThrow(/'encryptionKey' cannot be combined with 'alarmTopic'/);
  });
});
