import { App, Duration, Stack } from 'aws-cdk-lib';
import { Capture, Match, Template } from 'aws-cdk-lib/assertions';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as codepipeline from 'aws-cdk-lib/aws-codepipeline';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as sns from 'aws-cdk-lib/aws-sns';
import { DeliveryMetrics, DeliveryPipeline, PipelineSource, Release, ServiceMonitoring } from '../../src';
import { checkApp, describeFailures } from '../compliance/harness';
import { CONNECTION_ARN, flatten, siteBucket } from '../util/fixtures';

// One app: a DeliveryPipeline with the defaults (delivery metrics on, stage rollback), its metrics added to a
// service dashboard, two optional alarms; and a second stack with the opt-out.
const app = new App();
const stack = new Stack(app, 'Metrics', { env: { account: '123456789012', region: 'us-east-1' } });
const delivery = new DeliveryPipeline(stack, 'Delivery', {
  source: PipelineSource.connection('acme/site', 'main', { connectionArn: CONNECTION_ARN }),
  release: Release.s3Bucket(siteBucket(stack)),
});
const metrics = delivery.deliveryMetrics!;
const monitoring = new ServiceMonitoring(stack, 'Monitoring', { title: 'Site' });
monitoring.addAlarm('Errors', {
  metric: new cloudwatch.Metric({ namespace: 'Site', metricName: 'Errors', statistic: 'Sum', period: Duration.minutes(1) }),
  threshold: 1,
  description: 'Errors',
});
metrics.addToMonitoring(monitoring);
const leadTimeAlarm = metrics.addLeadTimeAlarm('LeadTimeAlarm', Duration.days(2), monitoring.alarmTopic);
const failedAlarm = metrics.addFailedReleasesAlarm('FailedReleasesAlarm');
const inARowAlarm = metrics.addConsecutiveFailedReleasesAlarm('InARowAlarm', undefined, monitoring.alarmTopic);

const optOutStack = new Stack(app, 'OptOut', { env: { account: '123456789012', region: 'us-east-1' } });
const optOut = new DeliveryPipeline(optOutStack, 'Delivery', {
  source: PipelineSource.connection('acme/site', 'main', { connectionArn: CONNECTION_ARN }),
  release: Release.s3Bucket(siteBucket(optOutStack)),
  deliveryMetrics: false,
});
const template = Template.fromStack(stack);
const optOutTemplate = Template.fromStack(optOutStack);

const reports = checkApp(app);

const pipelineId = stack.getLogicalId(delivery.pipeline.node.defaultChild as codepipeline.CfnPipeline);
const handlerId = stack.getLogicalId(metrics.handler.node.defaultChild as lambda.CfnFunction);
const pipelineArn = {
  'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, ':codepipeline:us-east-1:123456789012:', { Ref: pipelineId }]],
};

function resource(id: string): any {
  return template.toJSON().Resources[id];
}

describe('DeliveryMetrics in a DeliveryPipeline (on by default)', () => {
  test('the rules take only this pipeline\'s execution and stage events to the handler', () => {
    template.hasResourceProperties('AWS::Events::Rule', {
      EventPattern: {
        'source': ['aws.codepipeline'],
        'resources': [pipelineArn],
        'detail-type': ['CodePipeline Pipeline Execution State Change'],
        'detail': { state: ['SUCCEEDED', 'FAILED'] },
      },
      Targets: [Match.objectLike({
        Arn: { 'Fn::GetAtt': [handlerId, 'Arn'] },
        DeadLetterConfig: Match.objectLike({ Arn: Match.anyValue() }),
        RetryPolicy: { MaximumRetryAttempts: 8, MaximumEventAgeInSeconds: 12 * 3600 },
      })],
    });
    template.hasResourceProperties('AWS::Events::Rule', {
      EventPattern: {
        'source': ['aws.codepipeline'],
        'resources': [pipelineArn],
        'detail-type': ['CodePipeline Stage Execution State Change'],
        'detail': { stage: ['Source', 'Release'], state: ['STARTED', 'SUCCEEDED'] },
      },
      Targets: [Match.objectLike({ Arn: { 'Fn::GetAtt': [handlerId, 'Arn'] } })],
    });
    // No rule of the stack listens to every pipeline of the account.
    for (const rule of Object.values(template.findResources('AWS::Events::Rule')) as any[]) {
      if (rule.Properties.EventPattern?.source?.[0] === 'aws.codepipeline') {
        expect(rule.Properties.EventPattern.resources).toEqual([pipelineArn]);
      }
    }
  });

  test('the handler: nodejs24.x on ARM64, traced, its own log group kept three months and deleted with the stack, a dead-letter queue', () => {
    const fn = resource(handlerId).Properties;
    expect(fn).toMatchObject({
      Runtime: 'nodejs24.x',
      Architectures: ['arm64'],
      TracingConfig: { Mode: 'Active' },
      Timeout: 60,
      LoggingConfig: { LogGroup: { Ref: stack.getLogicalId(metrics.logGroup.node.defaultChild as any) } },
    });
    expect(fn.Environment.Variables).toMatchObject({
      PIPELINE_NAME: { Ref: pipelineId },
      METRIC_NAMESPACE: 'DeliveryPipelines',
      SOURCE_STAGE_NAME: 'Source',
      RELEASE_STAGE_NAME: 'Release',
      // Release.s3Bucket() relies on the pipeline's stage rollback.
      ENGINE_ROLLS_BACK: 'false',
      FACT_TTL_DAYS: '90',
      TOPIC_ARN: { Ref: stack.getLogicalId(delivery.notificationTopic.node.defaultChild as sns.CfnTopic) },
    });
    template.hasResourceProperties('AWS::Lambda::EventInvokeConfig', {
      FunctionName: { Ref: handlerId },
      MaximumRetryAttempts: 2,
      DestinationConfig: { OnFailure: { Destination: { 'Fn::GetAtt': [stack.getLogicalId(delivery.notifications.deadLetterQueue.node.defaultChild as any), 'Arn'] } } },
    });
    const logGroup = resource(stack.getLogicalId(metrics.logGroup.node.defaultChild as any));
    expect(logGroup).toMatchObject({ DeletionPolicy: 'Delete', Properties: { RetentionInDays: 90 } });
  });

  test('the facts table: on demand, items expire, point-in-time recovery, deleted with the stack', () => {
    const table = resource(stack.getLogicalId(metrics.table.node.defaultChild as any));
    expect(table).toMatchObject({
      Type: 'AWS::DynamoDB::Table',
      DeletionPolicy: 'Delete',
      Properties: {
        BillingMode: 'PAY_PER_REQUEST',
        KeySchema: [{ AttributeName: 'id', KeyType: 'HASH' }],
        TimeToLiveSpecification: { AttributeName: 'expiresAt', Enabled: true },
        PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
      },
    });
  });

  test('least privilege: read this pipeline, write its metrics namespace, its table and its topic', () => {
    const roleId = stack.getLogicalId(metrics.handler.role!.node.defaultChild as any);
    const policies = Object.values(template.findResources('AWS::IAM::Policy')) as any[];
    const statements = policies
      .filter((p) => p.Properties.Roles.some((r: any) => r.Ref === roleId))
      .flatMap((p) => p.Properties.PolicyDocument.Statement);
    const byAction = (action: string) => statements.filter((s) => ([] as string[]).concat(s.Action).includes(action));
    expect(byAction('codepipeline:GetPipelineExecution')).toEqual([expect.objectContaining({
      Action: ['codepipeline:GetPipelineExecution', 'codepipeline:ListActionExecutions', 'codepipeline:ListPipelineExecutions'],
      Resource: pipelineArn,
    })]);
    expect(byAction('cloudwatch:PutMetricData')).toEqual([expect.objectContaining({
      Resource: '*', Condition: { StringEquals: { 'cloudwatch:namespace': 'DeliveryPipelines' } },
    })]);
    expect(byAction('dynamodb:PutItem')).toEqual([expect.objectContaining({
      Action: ['dynamodb:PutItem', 'dynamodb:UpdateItem', 'dynamodb:DeleteItem'],
      Resource: { 'Fn::GetAtt': [stack.getLogicalId(metrics.table.node.defaultChild as any), 'Arn'] },
    })]);
    expect(byAction('sns:Publish')).toEqual([expect.objectContaining({
      Resource: { Ref: stack.getLogicalId(delivery.notificationTopic.node.defaultChild as sns.CfnTopic) },
    })]);
    // Nothing that writes to the pipeline, and no other wildcard resource than X-Ray's and the metrics'.
    const actions = statements.flatMap((s) => ([] as string[]).concat(s.Action));
    expect(actions.filter((a) => /^codepipeline:(Start|Stop|Put|Update|Delete|Retry|Rollback)/.test(a))).toEqual([]);
    const starActions = statements.filter((s) => s.Resource === '*').flatMap((s) => ([] as string[]).concat(s.Action)).sort();
    expect(starActions).toEqual(['cloudwatch:PutMetricData', 'xray:PutTelemetryRecords', 'xray:PutTraceSegments']);
  });

  test('the traffic step rule takes only this pipeline\'s steps (the engines\' custom events on the default bus)', () => {
    template.hasResourceProperties('AWS::Events::Rule', {
      EventPattern: {
        'source': ['cdk-delivery-pipelines.release'],
        'detail-type': ['Release Traffic Shifted'],
        'detail': { pipeline: [{ Ref: pipelineId }] },
      },
      Targets: [Match.objectLike({ Arn: { 'Fn::GetAtt': [handlerId, 'Arn'] } })],
    });
    expect(resource(stack.getLogicalId(metrics.progressRule.node.defaultChild as any)).Properties.EventBusName).toBeUndefined();
    // An S3 bucket release sends no steps: the lead time ends at the execution's success.
    const env = new Capture();
    template.hasResourceProperties('AWS::Lambda::Function', { Environment: { Variables: env }, Description: Match.stringLikeRegexp('DORA') });
    expect(env.asObject().ENGINE_REPORTS_TRAFFIC).toBe('false');
  });

  test('the readable messages replace the short failed/succeeded rules of the notifications (no duplicates)', () => {
    const transformers = Object.values(template.findResources('AWS::Events::Rule')).filter((r: any) =>
      r.Properties.EventPattern?.['detail-type']?.[0] === 'CodePipeline Pipeline Execution State Change'
      && r.Properties.Targets.some((t: any) => t.InputTransformer));
    expect(transformers).toEqual([]);
  });

  test('the dashboard gets the four metrics with their DORA bands, the trends, the recent releases and release markers', () => {
    const body = flatten(stack, resource(stack.getLogicalId(monitoring.dashboard.node.defaultChild as any)).Properties.DashboardBody);
    expect(body).toContain('Delivery (DORA metrics of pipeline ');
    expect(body).toContain('| Change failure rate | 0-5 % | 5-10 % | 10-15 % | over 15 % |');
    for (const title of ['Deployment frequency (releases in production)', 'Lead time for changes (hours, average)',
      'Change failure rate (%)', 'Time to restore (hours, average)', 'Releases per day', 'Recent releases', 'Errors against releases']) {
      expect(body).toContain(title);
    }
    expect(body).toContain('IF(started > 0, 100 * failed / started, 0)');
    expect(body).toContain('filter message = \\"release\\"');
    expect(body).toMatch(/\["DeliveryPipelines","Deployments","Pipeline","\$\{\w+\}",\{"label":"Release","period":60,"stat":"Sum","yAxis":"right"\}\]/);
    template.resourceCountIs('AWS::CloudWatch::Dashboard', 1);
  });

  test('optional alarms: lead time over a threshold, failed releases in a day', () => {
    expect(resource(stack.getLogicalId(leadTimeAlarm.node.defaultChild as any)).Properties).toMatchObject({
      MetricName: 'LeadTime',
      Namespace: 'DeliveryPipelines',
      Statistic: 'Maximum',
      Threshold: 2 * 86_400,
      ComparisonOperator: 'GreaterThanThreshold',
      TreatMissingData: 'notBreaching',
      AlarmActions: [{ Ref: expect.any(String) }],
      OKActions: [{ Ref: expect.any(String) }],
    });
    expect(resource(stack.getLogicalId(failedAlarm.node.defaultChild as any)).Properties).toMatchObject({
      MetricName: 'ReleasesFailed', Statistic: 'Sum', Period: 86_400, Threshold: 2, ComparisonOperator: 'GreaterThanOrEqualToThreshold',
    });
    expect(resource(stack.getLogicalId(failedAlarm.node.defaultChild as any)).Properties.AlarmActions).toBeUndefined();
  });

  test('optional alarm: two failed releases in a row, kept in ALARM between releases (missing data ignored) until a success', () => {
    expect(resource(stack.getLogicalId(inARowAlarm.node.defaultChild as any)).Properties).toMatchObject({
      MetricName: 'ConsecutiveFailedReleases',
      Namespace: 'DeliveryPipelines',
      Statistic: 'Maximum',
      Period: 300,
      EvaluationPeriods: 1,
      Threshold: 2,
      ComparisonOperator: 'GreaterThanOrEqualToThreshold',
      TreatMissingData: 'ignore',
      AlarmActions: [{ Ref: expect.any(String) }],
      OKActions: [{ Ref: expect.any(String) }],
    });
  });

  test('cdk-nag (AwsSolutions, Serverless) and the CloudFormation validator find nothing', () => {
    expect(reports.map(describeFailures)).toEqual(['Metrics: clean', 'OptOut: clean']);
  });
});

describe('deliveryMetrics: false', () => {
  test('no handler, no table, and the short failed/succeeded messages stay', () => {
    expect(optOut.deliveryMetrics).toBeUndefined();
    optOutTemplate.resourceCountIs('AWS::DynamoDB::Table', 0);
    expect(Object.values(optOutTemplate.findResources('AWS::Lambda::Function'))
      .filter((f: any) => JSON.stringify(f.Properties.Description ?? '').includes('DORA'))).toEqual([]);
    const topicId = optOutStack.getLogicalId(optOut.notificationTopic.node.defaultChild as sns.CfnTopic);
    for (const state of ['FAILED', 'SUCCEEDED']) {
      const text = new Capture();
      optOutTemplate.hasResourceProperties('AWS::Events::Rule', {
        EventPattern: {
          'source': ['aws.codepipeline'],
          'detail-type': ['CodePipeline Pipeline Execution State Change'],
          'detail': { state: [state] },
          'resources': [Match.anyValue()],
        },
        Targets: [Match.objectLike({
          Arn: { Ref: topicId },
          InputTransformer: Match.objectLike({ InputTemplate: text }),
          DeadLetterConfig: Match.objectLike({ Arn: Match.anyValue() }),
        })],
      });
      expect(flatten(optOutStack, text.asObject())).toMatch(new RegExp(
        `^"${state}: pipeline <detail-pipeline> .*execution <detail-execution-id>.*https://\\$\\{AWS::Region\\}.console.aws.amazon.com/codesuite/codepipeline/pipelines/<detail-pipeline>/executions/<detail-execution-id>/timeline`));
    }
  });
});

describe('DeliveryMetrics on its own', () => {
  const ownApp = new App();
  const own = new Stack(ownApp, 'Own');
  const pipeline = codepipeline.Pipeline.fromPipelineArn(own, 'Imported', 'arn:aws:codepipeline:us-east-1:123456789012:legacy');

  test('works for any pipeline, without notifications, with a release engine that rolls back itself', () => {
    const m = new DeliveryMetrics(own, 'Legacy', {
      pipeline, releaseEngineRollsBack: true, releaseStageName: 'Deploy', metricNamespace: 'Team/Delivery', factExpiration: Duration.days(30),
    });
    const t = Template.fromStack(own);
    const env = new Capture();
    t.hasResourceProperties('AWS::Lambda::Function', { Environment: { Variables: env } });
    expect(env.asObject()).toMatchObject({
      PIPELINE_NAME: 'legacy', TOPIC_ARN: '', ENGINE_ROLLS_BACK: 'true', RELEASE_STAGE_NAME: 'Deploy', METRIC_NAMESPACE: 'Team/Delivery', FACT_TTL_DAYS: '30',
    });
    t.hasResourceProperties('AWS::Events::Rule', {
      EventPattern: Match.objectLike({ resources: ['arn:aws:codepipeline:us-east-1:123456789012:legacy'], detail: { stage: ['Source', 'Deploy'], state: ['STARTED', 'SUCCEEDED'] } }),
    });
    expect(m.metricDeployments().namespace).toBe('Team/Delivery');
    expect(m.metricDeployments().dimensions).toEqual({ Pipeline: 'legacy' });
    expect(t.findResources('AWS::IAM::Policy', { Properties: { PolicyDocument: { Statement: Match.arrayWith([Match.objectLike({ Action: 'sns:Publish' })]) } } })).toEqual({});
  });

  test.each([
    [{ metricNamespace: 'AWS/CodePipeline' }, /'metricNamespace' must not start with 'AWS\/'.*got 'AWS\/CodePipeline'/],
    [{ metricNamespace: 'has space' }, /'metricNamespace' must be 1 to 255 letters/],
    [{ releaseStageName: 'Re lease' }, /'releaseStageName' must be a stage name/],
    [{ factExpiration: Duration.hours(1) }, /'factExpiration'/],
    [{ notificationKey: delivery.artifactKey }, /'notificationKey' needs 'notificationTopic'/],
  ])('refuses bad input %#', (props, message) => {
    expect(() => new DeliveryMetrics(new Stack(new App(), 'Bad'), 'Bad', { pipeline, ...props } as any)).toThrow(message);
  });

  test('refuses a failed-release alarm count below 1', () => {
    const m = new DeliveryMetrics(new Stack(new App(), 'Alarm'), 'M', { pipeline });
    expect(() => m.addFailedReleasesAlarm('A', 0)).toThrow(/'count' must be a whole number of at least 1, got 0/);
  });

  test.each([0, 11, 1.5])('refuses a consecutive-failures alarm count of %s', (count) => {
    const m = new DeliveryMetrics(new Stack(new App(), 'Alarm'), 'M', { pipeline });
    expect(() => m.addConsecutiveFailedReleasesAlarm('A', count)).toThrow(new RegExp(`'count' must be a whole number from 1 to 10.*got ${count}`));
  });

  test('releaseEngineReportsTraffic: the handler ends the lead time at full traffic', () => {
    const s = new Stack(new App(), 'Reports');
    new DeliveryMetrics(s, 'M', { pipeline: codepipeline.Pipeline.fromPipelineArn(s, 'P', 'arn:aws:codepipeline:us-east-1:123456789012:web'), releaseEngineReportsTraffic: true });
    const t = Template.fromStack(s);
    const env = new Capture();
    t.hasResourceProperties('AWS::Lambda::Function', { Environment: { Variables: env } });
    expect(env.asObject().ENGINE_REPORTS_TRAFFIC).toBe('true');
    t.hasResourceProperties('AWS::Events::Rule', { EventPattern: Match.objectLike({ detail: { pipeline: ['web'] } }) });
  });
});
