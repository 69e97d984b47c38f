import { Duration, RemovalPolicy, Token } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as cw_actions from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as codepipeline from 'aws-cdk-lib/aws-codepipeline';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as destinations from 'aws-cdk-lib/aws-lambda-destinations';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { ServiceMonitoring } from './service-monitoring';
import { DeliveryMetricsFunction } from '../handlers/delivery-metrics-function';
import { acknowledgeKeyWildcardsOnlyFor, acknowledgeStarResourceOnlyFor } from '../private/acknowledgements';
import { createDeadLetterQueue } from '../private/encrypted-topic';
import { createLogGroup } from '../private/log-group';
import { RELEASE_PROGRESS_SOURCE, RELEASE_TRAFFIC_SHIFTED } from '../private/release-progress';
import { checkDuration, invalidInput } from '../private/validate';

/** The metric names the handler publishes (kept in step with src/handlers/delivery-metrics.lambda.ts). */
const METRIC = {
  deployments: 'Deployments',
  leadTime: 'LeadTime',
  releasesStarted: 'ReleasesStarted',
  releasesFailed: 'ReleasesFailed',
  timeToRestore: 'TimeToRestore',
  consecutiveFailedReleases: 'ConsecutiveFailedReleases',
};

/**
 * Properties of `DeliveryMetrics`.
 */
export interface DeliveryMetricsProps {
  /**
   * The pipeline whose events are measured. Only this pipeline's events reach the handler.
   */
  readonly pipeline: codepipeline.IPipeline;

  /**
   * The topic that receives the readable release notifications (started, releasing, failed, rolled back, released).
   *
   * @default - metrics only, no notifications
   */
  readonly notificationTopic?: sns.ITopic;

  /**
   * The customer managed key of `notificationTopic`, which the handler must use to publish.
   *
   * @default - the topic is not encrypted with a customer managed key
   */
  readonly notificationKey?: kms.IKey;

  /**
   * Where events go that could not be handled (after EventBridge's and Lambda's retries).
   *
   * @default - a new SQS queue, kept 14 days
   */
  readonly deadLetterQueue?: sqs.IQueue;

  /**
   * Whether the release engine puts production back itself when the Release stage fails (ECS native blue/green,
   * CodeDeploy, the EC2 release workflow), so that a failed release has restored production when it fails. When
   * false, the pipeline's stage rollback or the next successful release restores it.
   *
   * @default false
   */
  readonly releaseEngineRollsBack?: boolean;

  /**
   * Whether the release engine sends a traffic step event (source `cdk-delivery-pipelines.release`, detail-type
   * `Release Traffic Shifted`) when all production traffic is on the new version, so that the lead time ends there
   * instead of at the execution's success (which includes the bake time). The step messages are sent either way,
   * for any engine that sends the events.
   *
   * @default false
   */
  readonly releaseEngineReportsTraffic?: boolean;

  /**
   * The name of the stage that takes the revision from the source.
   *
   * @default 'Source'
   */
  readonly sourceStageName?: string;

  /**
   * The name of the stage that releases to production.
   *
   * @default 'Release'
   */
  readonly releaseStageName?: string;

  /**
   * The CloudWatch namespace of the metrics (dimension `Pipeline`: the pipeline's name).
   *
   * @default DeliveryMetrics.NAMESPACE ('DeliveryPipelines')
   */
  readonly metricNamespace?: string;

  /**
   * How long the handler's logs are kept. They are also the dashboard's table of recent releases.
   *
   * @default logs.RetentionDays.THREE_MONTHS
   */
  readonly logRetention?: logs.RetentionDays;

  /**
   * How long the handler remembers what it published, to recognize an event delivered twice.
   *
   * @default Duration.days(90)
   */
  readonly factExpiration?: Duration;
}

/**
 * The four DORA metrics of one pipeline, from its own EventBridge events, and readable release notifications.
 *
 * - **Deployments** (deployment frequency): executions that reached production (`SUCCEEDED`, not a rollback).
 * - **LeadTime** (lead time for changes, seconds): from the commit's author date (or the revision's upload for an S3
 *   source, or the execution's start when nothing tells) to the moment all production traffic is on the new version
 *   where the release engine reports it (`releaseEngineReportsTraffic`), else to the successful end of the execution;
 *   once per revision.
 * - **ConsecutiveFailedReleases**: at each release outcome, the releases that failed in a row up to it (0 after a
 *   success).
 * - **ReleasesStarted** and **ReleasesFailed** (change failure rate = failed / started): the Release stage started;
 *   the Release stage failed (an alarm, a smoke test, a rejection or a timeout rolled it back), or a later manual
 *   stage rollback undid the release.
 * - **TimeToRestore** (seconds): from a failed release to the execution that put a good version back.
 *
 * One Lambda function handles the events; a DynamoDB table (on demand, expiring items) makes it count each fact once
 * under EventBridge's at-least-once delivery. Metrics carry the time of the event, and the handler reads the
 * pipeline's history from the CodePipeline API, so events may arrive in any order. Nothing is sent while no release
 * runs: the idle cost is zero.
 */
export class DeliveryMetrics extends Construct {
  /** The default CloudWatch namespace of the metrics. */
  public static readonly NAMESPACE = 'DeliveryPipelines';

  /** The function that turns events into metrics and notifications. */
  public readonly handler: lambda.IFunction;

  /** The function's log group; one `release` line per release outcome. */
  public readonly logGroup: logs.ILogGroup;

  /** The table of facts already published (on demand, items expire). */
  public readonly table: dynamodb.ITable;

  /** The rule for this pipeline's execution state changes. */
  public readonly executionRule: events.Rule;

  /** The rule for this pipeline's Source and Release stage state changes. */
  public readonly stageRule: events.Rule;

  /** The rule for this pipeline's traffic step events (sent by the release engine on the default bus). */
  public readonly progressRule: events.Rule;

  /** The dead-letter queue of the rules and the function. */
  public readonly deadLetterQueue: sqs.IQueue;

  /** The namespace of the metrics. */
  public readonly metricNamespace: string;

  private readonly pipelineName: string;
  private readonly target: () => events.IRuleTarget;
  private alarmRules = 0;

  constructor(scope: Construct, id: string, props: DeliveryMetricsProps) {
    super(scope, id);
    this.metricNamespace = props.metricNamespace ?? DeliveryMetrics.NAMESPACE;
    if (!Token.isUnresolved(this.metricNamespace) && !/^[A-Za-z0-9._\-/#:]{1,255}$/.test(this.metricNamespace)) {
      throw invalidInput(this, 'metricNamespace', this.metricNamespace, 'must be 1 to 255 letters, digits or . _ - / # :');
    }
    if (!Token.isUnresolved(this.metricNamespace) && this.metricNamespace.startsWith('AWS/')) {
      throw invalidInput(this, 'metricNamespace', this.metricNamespace, "must not start with 'AWS/' (reserved for AWS services)");
    }
    for (const [name, value] of [['sourceStageName', props.sourceStageName], ['releaseStageName', props.releaseStageName]] as const) {
      if (value !== undefined && !Token.isUnresolved(value) && !/^[A-Za-z0-9.@_-]{1,100}$/.test(value)) {
        throw invalidInput(this, name, value, 'must be a stage name: 1 to 100 letters, digits or . @ _ -');
      }
    }
    checkDuration(this, 'factExpiration', props.factExpiration, Duration.days(1), Duration.days(365), 'days');
    if (props.notificationKey && !props.notificationTopic) {
      throw invalidInput(this, 'notificationKey', props.notificationKey.keyArn, "needs 'notificationTopic', the topic it encrypts");
    }
    this.pipelineName = props.pipeline.pipelineName;

    const table = new dynamodb.Table(this, 'Facts', {
      partitionKey: { name: 'id', type: dynamodb.AttributeType.STRING },
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      timeToLiveAttribute: 'expiresAt',
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      // Only which facts were already published: nothing worth keeping after the stack.
      removalPolicy: RemovalPolicy.DESTROY,
    });
    this.table = table;

    this.deadLetterQueue = props.deadLetterQueue ?? createDeadLetterQueue(this, 'delivery metrics');

    const logGroup = createLogGroup(this, 'HandlerLogs', props.logRetention ?? logs.RetentionDays.THREE_MONTHS);
    this.logGroup = logGroup;
    const role = new iam.Role(this, 'HandlerRole', {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      description: `Runs ${this.node.path}/Handler: reads one pipeline, writes its delivery metrics`,
    });
    role.addToPolicy(new iam.PolicyStatement({
      actions: ['logs:CreateLogStream', 'logs:PutLogEvents'],
      resources: [logGroup.logGroupArn],
    }));
    role.addToPolicy(new iam.PolicyStatement({
      actions: ['codepipeline:GetPipelineExecution', 'codepipeline:ListActionExecutions', 'codepipeline:ListPipelineExecutions'],
      resources: [props.pipeline.pipelineArn],
    }));
    role.addToPolicy(new iam.PolicyStatement({
      actions: ['cloudwatch:PutMetricData'],
      resources: ['*'],
      conditions: { StringEquals: { 'cloudwatch:namespace': this.metricNamespace } },
    }));
    role.addToPolicy(new iam.PolicyStatement({
      actions: ['dynamodb:PutItem', 'dynamodb:UpdateItem', 'dynamodb:DeleteItem'],
      resources: [table.tableArn],
    }));
    if (props.notificationTopic) {
      role.addToPolicy(new iam.PolicyStatement({ actions: ['sns:Publish'], resources: [props.notificationTopic.topicArn] }));
      if (props.notificationKey) {
        role.addToPolicy(new iam.PolicyStatement({ actions: ['kms:Decrypt', 'kms:GenerateDataKey*'], resources: [props.notificationKey.keyArn] }));
        acknowledgeKeyWildcardsOnlyFor(role, props.notificationKey,
          'The handler encrypts what it publishes with the notification topic\'s own key only (the statement names that ' +
          'key); kms:GenerateDataKey* covers the data-key variants SNS uses.');
      }
    }
    acknowledgeStarResourceOnlyFor(role, ['xray:PutTraceSegments', 'xray:PutTelemetryRecords', 'cloudwatch:PutMetricData'],
      'Only actions without resource-level permissions: xray:PutTraceSegments and PutTelemetryRecords for tracing, and ' +
      'cloudwatch:PutMetricData, limited by the cloudwatch:namespace condition to this construct\'s namespace.');

    const fn = new DeliveryMetricsFunction(this, 'Handler', {
      role,
      logGroup,
      description: `DORA metrics and release notifications of ${this.node.path}`,
      timeout: Duration.minutes(1),
      memorySize: 256,
      architecture: lambda.Architecture.ARM_64,
      tracing: lambda.Tracing.ACTIVE,
      // An invocation that still fails after Lambda's two retries goes to the queue, with the event and the error.
      // (Lambda's dead-letter queue is the same queue, for the checks that look for one.)
      onFailure: new destinations.SqsDestination(this.deadLetterQueue),
      deadLetterQueue: this.deadLetterQueue,
      retryAttempts: 2,
      environment: {
        PIPELINE_NAME: props.pipeline.pipelineName,
        TABLE_NAME: table.tableName,
        METRIC_NAMESPACE: this.metricNamespace,
        TOPIC_ARN: props.notificationTopic?.topicArn ?? '',
        SOURCE_STAGE_NAME: props.sourceStageName ?? 'Source',
        RELEASE_STAGE_NAME: props.releaseStageName ?? 'Release',
        ENGINE_ROLLS_BACK: props.releaseEngineRollsBack ? 'true' : 'false',
        ENGINE_REPORTS_TRAFFIC: props.releaseEngineReportsTraffic ? 'true' : 'false',
        FACT_TTL_DAYS: String((props.factExpiration ?? Duration.days(90)).toDays()),
        AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: '1',
      },
    });
    this.handler = fn;

    const target = this.target = () => new targets.LambdaFunction(fn, {
      deadLetterQueue: this.deadLetterQueue,
      retryAttempts: 8,
      maxEventAge: Duration.hours(12),
    });
    const pipelineEvents = { source: ['aws.codepipeline'], resources: [props.pipeline.pipelineArn] };
    this.executionRule = new events.Rule(this, 'ExecutionRule', {
      description: `Delivery metrics of ${this.node.path}: pipeline executions that succeeded or failed`,
      eventPattern: {
        ...pipelineEvents,
        detailType: ['CodePipeline Pipeline Execution State Change'],
        detail: { state: ['SUCCEEDED', 'FAILED'] },
      },
      targets: [target()],
    });
    this.stageRule = new events.Rule(this, 'StageRule', {
      description: `Delivery metrics of ${this.node.path}: the source delivered a revision, the release started`,
      eventPattern: {
        ...pipelineEvents,
        detailType: ['CodePipeline Stage Execution State Change'],
        detail: { stage: [props.sourceStageName ?? 'Source', props.releaseStageName ?? 'Release'], state: ['STARTED', 'SUCCEEDED'] },
      },
      targets: [target()],
    });

    // Traffic steps: custom events on the default bus, only this pipeline's (nothing sent while no release runs).
    this.progressRule = new events.Rule(this, 'ProgressRule', {
      description: `Delivery metrics of ${this.node.path}: the release engine moved production traffic`,
      eventPattern: {
        source: [RELEASE_PROGRESS_SOURCE],
        detailType: [RELEASE_TRAFFIC_SHIFTED],
        detail: { pipeline: [props.pipeline.pipelineName] },
      },
      targets: [target()],
    });
  }

  /** Releases that reached production (sum: deployment frequency). */
  public metricDeployments(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.metric(METRIC.deployments, { statistic: cloudwatch.Stats.SUM, ...props });
  }

  /** From the change to production, in seconds. */
  public metricLeadTime(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.metric(METRIC.leadTime, { statistic: cloudwatch.Stats.AVERAGE, ...props });
  }

  /** Releases that entered the Release stage (sum). */
  public metricReleasesStarted(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.metric(METRIC.releasesStarted, { statistic: cloudwatch.Stats.SUM, ...props });
  }

  /** Releases rolled back or undone (sum). */
  public metricReleasesFailed(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.metric(METRIC.releasesFailed, { statistic: cloudwatch.Stats.SUM, ...props });
  }

  /** From a failed release to the restore, in seconds. */
  public metricTimeToRestore(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.metric(METRIC.timeToRestore, { statistic: cloudwatch.Stats.AVERAGE, ...props });
  }

  /**
   * Failed releases in a row, published at each release outcome (0 after a success; maximum: the longest run).
   */
  public metricConsecutiveFailedReleases(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.metric(METRIC.consecutiveFailedReleases, { statistic: cloudwatch.Stats.MAXIMUM, ...props });
  }

  /**
   * The change failure rate in percent: failed releases over started releases in each period.
   *
   * @param period the period of the two sums; default 1 day
   */
  public metricChangeFailureRate(period?: Duration): cloudwatch.MathExpression {
    const p = period ?? Duration.days(1);
    return new cloudwatch.MathExpression({
      label: 'Change failure rate (%)',
      expression: 'IF(started > 0, 100 * failed / started, 0)',
      usingMetrics: {
        failed: this.metricReleasesFailed({ period: p }),
        started: this.metricReleasesStarted({ period: p }),
      },
      period: p,
    });
  }

  /**
   * The dashboard rows: the four metrics with their DORA bands, their trends, the recent releases, and, for each
   * service metric given, its graph with the releases marked on the right axis.
   *
   * @param serviceMetrics the service graphs to draw with release markers (latency, errors, ...)
   */
  public widgets(serviceMetrics?: cloudwatch.IMetric[]): cloudwatch.IWidget[] {
    const month = '-P30D';
    const hours = (metric: cloudwatch.IMetric, label: string, period: Duration, id: string) => new cloudwatch.MathExpression({
      label, expression: `${id} / 3600`, usingMetrics: { [id]: metric }, period,
    });
    const total = Duration.days(30);
    const widgets: cloudwatch.IWidget[] = [
      new cloudwatch.TextWidget({
        markdown: [
          `## Delivery (DORA metrics of pipeline ${this.pipelineName}, last 30 days)`,
          '| metric | elite | high | medium | low |',
          '| --- | --- | --- | --- | --- |',
          '| Deployment frequency | several a day | daily to weekly | weekly to monthly | less than monthly |',
          '| Lead time for changes | under a day | a day to a week | a week to a month | over a month |',
          '| Change failure rate | 0-5 % | 5-10 % | 10-15 % | over 15 % |',
          '| Time to restore | under an hour | under a day | a day to a week | over a week |',
        ].join('\n'),
        width: 24,
        height: 5,
      }),
      new cloudwatch.SingleValueWidget({
        title: 'Deployment frequency (releases in production)',
        metrics: [this.metricDeployments({ label: 'Deployments', period: total })],
        start: month,
        setPeriodToTimeRange: true,
        width: 6,
        height: 4,
      }),
      new cloudwatch.SingleValueWidget({
        title: 'Lead time for changes (hours, average)',
        metrics: [hours(this.metricLeadTime({ period: total }), 'Lead time (h)', total, 'leadTime')],
        start: month,
        setPeriodToTimeRange: true,
        width: 6,
        height: 4,
      }),
      new cloudwatch.SingleValueWidget({
        title: 'Change failure rate (%)',
        metrics: [this.metricChangeFailureRate(total)],
        start: month,
        setPeriodToTimeRange: true,
        width: 6,
        height: 4,
      }),
      new cloudwatch.SingleValueWidget({
        title: 'Time to restore (hours, average)',
        metrics: [hours(this.metricTimeToRestore({ period: total }), 'Time to restore (h)', total, 'timeToRestore')],
        start: month,
        setPeriodToTimeRange: true,
        width: 6,
        height: 4,
      }),
      new cloudwatch.GraphWidget({
        title: 'Releases per day',
        left: [
          this.metricDeployments({ label: 'Deployments', period: Duration.days(1) }),
          this.metricReleasesFailed({ label: 'Failed releases', period: Duration.days(1) }),
        ],
        view: cloudwatch.GraphWidgetView.BAR,
        start: month,
        width: 12,
        height: 6,
      }),
      new cloudwatch.GraphWidget({
        title: 'Lead time and time to restore (hours, daily average)',
        left: [
          hours(this.metricLeadTime({ period: Duration.days(1) }), 'Lead time (h)', Duration.days(1), 'leadTime'),
          hours(this.metricTimeToRestore({ period: Duration.days(1) }), 'Time to restore (h)', Duration.days(1), 'timeToRestore'),
        ],
        start: month,
        width: 12,
        height: 6,
      }),
      new cloudwatch.LogQueryWidget({
        title: 'Recent releases',
        logGroupNames: [this.logGroup.logGroupName],
        queryLines: [
          'fields @timestamp, release, commit, summary, leadTimeMinutes, timeToRestoreMinutes, reason, executionId',
          'filter message = "release"',
          'sort @timestamp desc',
          'limit 20',
        ],
        view: cloudwatch.LogQueryVisualizationType.TABLE,
        width: 24,
        height: 6,
      }),
    ];
    for (const metric of serviceMetrics ?? []) {
      widgets.push(new cloudwatch.GraphWidget({
        title: `${metricLabel(metric)} against releases`,
        left: [metric],
        right: [
          this.metricDeployments({ label: 'Release', period: Duration.minutes(1) }),
          this.metricReleasesFailed({ label: 'Rolled back', period: Duration.minutes(1) }),
        ],
        rightYAxis: { min: 0, label: 'releases', showUnits: false },
        width: 12,
        height: 6,
      }));
    }
    return widgets;
  }

  /**
   * Adds the delivery rows to a dashboard.
   *
   * @param dashboard the dashboard
   * @param serviceMetrics the service graphs to draw with release markers
   */
  public addToDashboard(dashboard: cloudwatch.Dashboard, serviceMetrics?: cloudwatch.IMetric[]): void {
    for (const widget of this.widgets(serviceMetrics)) {
      dashboard.addWidgets(widget);
    }
  }

  /**
   * Adds the delivery rows to a service's dashboard, with the metric of each of its alarms (the first six) drawn
   * against the releases.
   *
   * @param monitoring the service's monitoring
   */
  public addToMonitoring(monitoring: ServiceMonitoring): void {
    // Time to restore from production alarms too: each alarm's return from ALARM to OK.
    const alarmArns = monitoring.alarms.map((alarm) => alarm.alarmArn);
    if (alarmArns.length > 0) {
      new events.Rule(this, `AlarmRule${this.alarmRules++}`, {
        description: `Delivery metrics of ${this.node.path}: production alarms of ${monitoring.node.path} back to OK (time to restore)`,
        eventPattern: {
          source: ['aws.cloudwatch'],
          detailType: ['CloudWatch Alarm State Change'],
          resources: alarmArns,
          detail: { state: { value: ['OK'] }, previousState: { value: ['ALARM'] } },
        },
        targets: [this.target()],
      });
    }
    const metrics = monitoring.alarms
      .filter((alarm): alarm is cloudwatch.Alarm => alarm instanceof cloudwatch.Alarm)
      .map((alarm) => alarm.metric)
      .slice(0, 6);
    this.addToDashboard(monitoring.dashboard, metrics);
  }

  /**
   * An alarm when a release's lead time exceeds `threshold` (no alarm action unless `topic` is given; an alarm costs
   * 0.10 USD a month).
   *
   * @param id the construct id
   * @param threshold the longest acceptable lead time
   * @param topic the topic the alarm notifies on ALARM and OK
   */
  public addLeadTimeAlarm(id: string, threshold: Duration, topic?: sns.ITopic): cloudwatch.Alarm {
    checkDuration(this, 'threshold', threshold, Duration.minutes(1), Duration.days(365), 'minutes');
    return this.alarm(id, topic, {
      metric: this.metricLeadTime({ statistic: cloudwatch.Stats.MAXIMUM, period: Duration.hours(1) }),
      threshold: threshold.toSeconds(),
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      alarmDescription: `A release of ${this.pipelineName} took more than ${threshold.toHumanString()} from change to production`,
    });
  }

  /**
   * An alarm when `count` releases failed within `period` (for example two failed releases in a day, whatever
   * succeeded between them; for failures in a row, `addConsecutiveFailedReleasesAlarm`).
   *
   * @param id the construct id
   * @param count how many failed releases alarm; default 2
   * @param period the window; default 1 day
   * @param topic the topic the alarm notifies on ALARM and OK
   */
  public addFailedReleasesAlarm(id: string, count?: number, period?: Duration, topic?: sns.ITopic): cloudwatch.Alarm {
    const threshold = count ?? 2;
    if (!Token.isUnresolved(threshold) && (!Number.isInteger(threshold) || threshold < 1)) {
      throw invalidInput(this, 'count', threshold, 'must be a whole number of at least 1');
    }
    checkDuration(this, 'period', period, Duration.minutes(5), Duration.days(1), 'minutes');
    return this.alarm(id, topic, {
      metric: this.metricReleasesFailed({ period: period ?? Duration.days(1) }),
      threshold,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      alarmDescription: `${threshold} or more releases of ${this.pipelineName} failed within ${(period ?? Duration.days(1)).toHumanString()}`,
    });
  }

  /**
   * An alarm when `count` releases failed in a row (default 2), from `ConsecutiveFailedReleases`. Between releases
   * the metric has no data and the alarm keeps its state (missing data is ignored): it stays in ALARM until a release
   * succeeds. An alarm costs 0.10 USD a month.
   *
   * @param id the construct id
   * @param count how many failed releases in a row alarm; default 2
   * @param topic the topic the alarm notifies on ALARM and OK
   */
  public addConsecutiveFailedReleasesAlarm(id: string, count?: number, topic?: sns.ITopic): cloudwatch.Alarm {
    const threshold = count ?? 2;
    if (!Token.isUnresolved(threshold) && (!Number.isInteger(threshold) || threshold < 1 || threshold > 10)) {
      throw invalidInput(this, 'count', threshold, 'must be a whole number from 1 to 10 (the handler reads at most 10 failed executions back)');
    }
    return this.alarm(id, topic, {
      metric: this.metricConsecutiveFailedReleases({ period: Duration.minutes(5) }),
      threshold,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      alarmDescription: `${threshold} or more releases of ${this.pipelineName} failed in a row`,
    }, cloudwatch.TreatMissingData.IGNORE);
  }

  private alarm(id: string, topic: sns.ITopic | undefined, props: Omit<cloudwatch.AlarmProps, 'evaluationPeriods'>,
    treatMissingData: cloudwatch.TreatMissingData = cloudwatch.TreatMissingData.NOT_BREACHING): cloudwatch.Alarm {
    const alarm = new cloudwatch.Alarm(this, id, {
      ...props,
      evaluationPeriods: 1,
      treatMissingData,
    });
    if (topic) {
      const action = new cw_actions.SnsAction(topic);
      alarm.addAlarmAction(action);
      alarm.addOkAction(action);
    }
    return alarm;
  }

  private metric(metricName: string, props: cloudwatch.MetricOptions): cloudwatch.Metric {
    return new cloudwatch.Metric({
      namespace: this.metricNamespace,
      metricName,
      dimensionsMap: { Pipeline: this.pipelineName },
      ...props,
    });
  }
}

function metricLabel(metric: cloudwatch.IMetric): string {
  const config = metric.toMetricConfig();
  return config.metricStat?.metricName ?? config.mathExpression?.expression ?? 'Service metric';
}
