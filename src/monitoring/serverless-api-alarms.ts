import { Duration, Names } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import { ServiceMonitoring } from './service-monitoring';
import { ServerlessApi } from '../runtime/serverless-api';

/**
 * The default pattern of the unhandled-errors metric: what the Node.js runtime logs for an error a handler did not
 * catch, an unhandled promise rejection, and a timeout.
 */
const UNHANDLED_ERRORS_PATTERN = '?"Invoke Error" ?"Runtime.UnhandledPromiseRejection" ?"Task timed out"';

/** Thresholds of `addServerlessApiAlarms`. @internal */
export interface ServerlessApiAlarmOptions {
  /** p99 latency of the API; default 3 s. */
  readonly latencyThreshold?: Duration;
  /** The filter pattern counted as `UnhandledErrors` on every function's logs; default unhandled errors and timeouts. */
  readonly logMetricFilterPattern?: string;
}

/**
 * The alarms and dashboard widgets of a serverless API: 5xx and p99 latency of the API, throttles of the functions
 * (one alarm per 10), a log metric of unhandled errors on every function (its metric name unique to `owner`), and
 * graphs of requests and of invocations by function, where a release shows in the aliases' versions.
 * @internal
 */
export function addServerlessApiAlarms(
  owner: Construct,
  monitoring: ServiceMonitoring,
  service: ServerlessApi,
  options: ServerlessApiAlarmOptions,
): void {
  const period = Duration.minutes(1);
  monitoring.addAlarm('Api5xx', {
    metric: service.api.metricServerError({ period, statistic: cloudwatch.Stats.SUM }),
    threshold: 5,
    evaluationPeriods: 3,
    datapointsToAlarm: 2,
    description: 'The API answers 5xx (5 or more a minute, 2 minutes out of 3)',
  });
  const latency = options.latencyThreshold ?? Duration.seconds(3);
  monitoring.addAlarm('LatencyP99', {
    metric: service.api.metricLatency({ period, statistic: cloudwatch.Stats.p(99) }),
    threshold: latency.toMilliseconds({ integral: false }),
    evaluationPeriods: 3,
    datapointsToAlarm: 3,
    description: `p99 latency above ${latency.isUnresolved() ? 'the latency threshold' : latency.toHumanString()} (3 minutes in a row)`,
  });
  // Metric math takes at most 10 metrics: one alarm per 10 functions.
  chunks(service.routeFunctions, 10).forEach((group, index, all) => {
    const usingMetrics: { [id: string]: cloudwatch.IMetric } = {};
    group.forEach((rf, i) => { usingMetrics[`t${i}`] = rf.function.metricThrottles({ period, statistic: cloudwatch.Stats.SUM }); });
    monitoring.addAlarm(all.length === 1 ? 'Throttles' : `Throttles${index + 1}`, {
      metric: new cloudwatch.MathExpression({
        expression: Object.keys(usingMetrics).map((k) => `FILL(${k}, 0)`).join(' + '),
        usingMetrics,
        label: 'Throttled invocations',
        period,
      }),
      threshold: 1,
      evaluationPeriods: 3,
      datapointsToAlarm: 2,
      description: `Lambda throttles the functions${all.length === 1 ? '' : ` (group ${index + 1})`}`,
    });
  });
  const namespace = 'DeliveryPipelines';
  const metricName = `UnhandledErrors-${Names.uniqueResourceName(owner, { maxLength: 200 })}`;
  const pattern = options.logMetricFilterPattern ?? UNHANDLED_ERRORS_PATTERN;
  for (const rf of service.routeFunctions) {
    new logs.MetricFilter(rf.logGroup, 'UnhandledErrors', {
      logGroup: rf.logGroup,
      filterPattern: logs.FilterPattern.literal(pattern),
      metricNamespace: namespace,
      metricName,
      metricValue: '1',
      defaultValue: 0,
    });
  }
  monitoring.addAlarm('UnhandledErrors', {
    metric: new cloudwatch.Metric({ namespace, metricName, period: Duration.minutes(5), statistic: cloudwatch.Stats.SUM }),
    threshold: 1,
    evaluationPeriods: 1,
    datapointsToAlarm: 1,
    description: `Function logs match '${pattern}' (the custom metric ${metricName})`,
  });
  monitoring.dashboard.addWidgets(
    new cloudwatch.GraphWidget({
      title: 'Requests and errors',
      left: [
        service.api.metricCount({ period, statistic: cloudwatch.Stats.SUM }),
        service.api.metricClientError({ period, statistic: cloudwatch.Stats.SUM }),
      ],
      width: 12,
    }),
    new cloudwatch.GraphWidget({
      title: 'Invocations by function (a release shows in the aliases\' versions)',
      left: service.routeFunctions.map((rf) => rf.alias.metricInvocations({
        period, statistic: cloudwatch.Stats.SUM, label: rf.route.route,
      })),
      width: 12,
    }),
  );
}

function chunks<T>(items: T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}
