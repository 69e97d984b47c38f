import { Duration, Token } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as cw_actions from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as sns from 'aws-cdk-lib/aws-sns';
import { Construct } from 'constructs';
import { createEncryptedTopic } from '../private/encrypted-topic';
import { checkEmail, checkNotEmpty, invalidInput } from '../private/validate';

/**
 * Properties of `ServiceMonitoring`.
 */
export interface ServiceMonitoringProps {
  /**
   * The topic every alarm notifies (on ALARM and on OK).
   *
   * @default - a new topic encrypted with a new customer managed key that CloudWatch may use
   */
  readonly alarmTopic?: sns.ITopic;

  /**
   * The key that encrypts the new alarm topic; CloudWatch is allowed to use it. Not with `alarmTopic`.
   *
   * @default - a new customer managed key with rotation
   */
  readonly encryptionKey?: kms.IKey;

  /**
   * Email addresses subscribed to the new alarm topic. Ignored when `alarmTopic` is given.
   *
   * @default - no subscription
   */
  readonly alarmEmails?: string[];

  /**
   * The title of the dashboard's first row.
   *
   * @default - the construct path
   */
  readonly title?: string;
}

/**
 * Options of one alarm.
 */
export interface MonitoringAlarmOptions {
  /** What the alarm watches. */
  readonly metric: cloudwatch.IMetric;

  /** The threshold the metric is compared with. */
  readonly threshold: number;

  /**
   * How the metric is compared with the threshold.
   *
   * @default cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD
   */
  readonly comparisonOperator?: cloudwatch.ComparisonOperator;

  /**
   * How many periods are evaluated.
   *
   * @default 3
   */
  readonly evaluationPeriods?: number;

  /**
   * How many of the evaluated periods must breach.
   *
   * @default 2
   */
  readonly datapointsToAlarm?: number;

  /**
   * What missing data means.
   *
   * @default cloudwatch.TreatMissingData.NOT_BREACHING
   */
  readonly treatMissingData?: cloudwatch.TreatMissingData;

  /**
   * What the alarm means, in the notification.
   */
  readonly description: string;
}

/**
 * Options of a custom metric drawn from a log group.
 */
export interface LogMetricOptions {
  /** The log group the pattern is matched in. */
  readonly logGroup: logs.ILogGroup;

  /** The filter pattern (CloudWatch Logs syntax), for example `'"ValueError"'` or `'{ $.level = "ERROR" }'`. */
  readonly filterPattern: string;

  /** The name of the metric. */
  readonly metricName: string;

  /**
   * The namespace of the metric.
   *
   * @default 'DeliveryPipelines'
   */
  readonly metricNamespace?: string;

  /**
   * Alarm when the count of matching log events in five minutes reaches this.
   *
   * @default 1
   */
  readonly threshold?: number;

  /** What a match means, in the notification. */
  readonly description: string;
}

/**
 * Alarms, an alarm topic and a dashboard for a service. The release patterns add the alarms of their runtime (load
 * balancer, ECS service, Lambda functions, API) and use them to roll back a release.
 */
export class ServiceMonitoring extends Construct {
  /** The topic every alarm notifies. */
  public readonly alarmTopic: sns.ITopic;

  /** The dashboard. */
  public readonly dashboard: cloudwatch.Dashboard;

  private readonly _alarms: cloudwatch.Alarm[] = [];

  constructor(scope: Construct, id: string, props: ServiceMonitoringProps = {}) {
    super(scope, id);
    props.alarmEmails?.forEach((email) => checkEmail(this, 'alarmEmails', email));
    if (props.alarmTopic && props.encryptionKey) {
      throw invalidInput(this, 'encryptionKey', props.encryptionKey.keyArn, "cannot be combined with 'alarmTopic', which has its own encryption");
    }
    if (props.alarmTopic && props.alarmEmails?.length) {
      throw invalidInput(this, 'alarmEmails', props.alarmEmails, "cannot be combined with 'alarmTopic'; subscribe the emails to that topic");
    }

    if (props.alarmTopic) {
      this.alarmTopic = props.alarmTopic;
    } else {
      const { topic } = createEncryptedTopic(new Construct(this, 'Alarms'), {
        purpose: 'alarm topic',
        publisherService: 'cloudwatch',
        emails: props.alarmEmails,
        encryptionKey: props.encryptionKey,
      });
      this.alarmTopic = topic;
    }

    this.dashboard = new cloudwatch.Dashboard(this, 'Dashboard', {
      defaultInterval: Duration.hours(3),
    });
    this.dashboard.addWidgets(new cloudwatch.TextWidget({
      markdown: `# ${props.title ?? this.node.path}\nEvery alarm below notifies the alarm topic when it fires and when it clears.`,
      width: 24,
      height: 2,
    }));
  }

  /** The alarms created so far. */
  public get alarms(): cloudwatch.IAlarm[] {
    return [...this._alarms];
  }

  /**
   * Adds an alarm that notifies the topic on ALARM and OK, and a graph of its metric to the dashboard.
   */
  public addAlarm(id: string, options: MonitoringAlarmOptions): cloudwatch.Alarm {
    const evaluationPeriods = options.evaluationPeriods ?? 3;
    const datapointsToAlarm = options.datapointsToAlarm ?? Math.min(2, evaluationPeriods);
    if (!Token.isUnresolved(evaluationPeriods) && (!Number.isInteger(evaluationPeriods) || evaluationPeriods < 1)) {
      throw invalidInput(this, 'evaluationPeriods', evaluationPeriods, 'must be a whole number of at least 1');
    }
    if (!Token.isUnresolved(datapointsToAlarm) && !Token.isUnresolved(evaluationPeriods)
      && (!Number.isInteger(datapointsToAlarm) || datapointsToAlarm < 1 || datapointsToAlarm > evaluationPeriods)) {
      throw invalidInput(this, 'datapointsToAlarm', datapointsToAlarm, `must be a whole number from 1 to evaluationPeriods (${evaluationPeriods})`);
    }
    checkNotEmpty(this, 'description', options.description);
    const alarm = new cloudwatch.Alarm(this, id, {
      metric: options.metric,
      threshold: options.threshold,
      comparisonOperator: options.comparisonOperator ?? cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      evaluationPeriods,
      datapointsToAlarm,
      treatMissingData: options.treatMissingData ?? cloudwatch.TreatMissingData.NOT_BREACHING,
      alarmDescription: options.description,
    });
    const action = new cw_actions.SnsAction(this.alarmTopic);
    alarm.addAlarmAction(action);
    alarm.addOkAction(action);
    this._alarms.push(alarm);
    this.dashboard.addWidgets(new cloudwatch.GraphWidget({
      title: options.description,
      left: [options.metric],
      leftAnnotations: [alarm.toAnnotation()],
      width: 12,
    }));
    return alarm;
  }

  /**
   * Counts log events that match a pattern as a custom metric, and alarms when they appear.
   */
  public addLogMetricAlarm(id: string, options: LogMetricOptions): cloudwatch.Alarm {
    checkNotEmpty(this, 'filterPattern', options.filterPattern);
    checkNotEmpty(this, 'metricName', options.metricName);
    if (!Token.isUnresolved(options.metricName) && !/^[A-Za-z0-9._\-/#:]{1,255}$/.test(options.metricName)) {
      throw invalidInput(this, 'metricName', options.metricName, 'must be 1 to 255 letters, digits or . _ - / # :');
    }
    const filter = new logs.MetricFilter(this, `${id}Filter`, {
      logGroup: options.logGroup,
      filterPattern: logs.FilterPattern.literal(options.filterPattern),
      metricNamespace: options.metricNamespace ?? 'DeliveryPipelines',
      metricName: options.metricName,
      metricValue: '1',
      defaultValue: 0,
    });
    return this.addAlarm(id, {
      metric: filter.metric({ statistic: cloudwatch.Stats.SUM, period: Duration.minutes(5) }),
      threshold: options.threshold ?? 1,
      evaluationPeriods: 1,
      datapointsToAlarm: 1,
      description: options.description,
    });
  }
}
