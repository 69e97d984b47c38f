import { Duration } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as elbv2 from 'aws-cdk-lib/aws-elasticloadbalancingv2';
import { ServiceMonitoring } from './service-monitoring';
import { BlueGreenFargateService } from '../runtime/fargate-service';

/** Thresholds of `addFargateServiceAlarms`. @internal */
export interface FargateServiceAlarmOptions {
  /** How many tasks should run and be healthy; default 2. */
  readonly desiredCount?: number;
  /** p99 target response time; default 2 s. */
  readonly latencyThreshold?: Duration;
}

/**
 * The alarms and dashboard widgets of a blue/green Fargate service, from free metrics only (load balancer and ECS, no
 * Container Insights): 5xx, unhealthy targets and p99 latency (the deployment alarms, returned), running tasks, and
 * graphs of both target groups side by side, where a release shows as traffic moving.
 * @internal
 */
export function addFargateServiceAlarms(
  monitoring: ServiceMonitoring,
  runtime: BlueGreenFargateService,
  options: FargateServiceAlarmOptions,
): cloudwatch.IAlarm[] {
  const desiredCount = options.desiredCount ?? 2;
  const groups = [runtime.blueTargetGroup, runtime.greenTargetGroup];
  const bothGroups = (metric: (group: elbv2.ApplicationTargetGroup) => cloudwatch.Metric, label: string) => new cloudwatch.MathExpression({
    expression: 'FILL(blue, 0) + FILL(green, 0)',
    usingMetrics: { blue: metric(runtime.blueTargetGroup), green: metric(runtime.greenTargetGroup) },
    label,
    period: Duration.minutes(1),
  });
  const http5xx = monitoring.addAlarm('Http5xx', {
    metric: runtime.loadBalancer.metrics.httpCodeTarget(elbv2.HttpCodeTarget.TARGET_5XX_COUNT, {
      period: Duration.minutes(1), statistic: cloudwatch.Stats.SUM,
    }),
    threshold: 5,
    evaluationPeriods: 3,
    datapointsToAlarm: 2,
    description: 'The service answers 5xx (5 or more a minute, 2 minutes out of 3)',
  });
  const unhealthy = monitoring.addAlarm('UnhealthyTargets', {
    metric: bothGroups((group) => group.metrics.unhealthyHostCount({ statistic: cloudwatch.Stats.MAXIMUM }), 'Unhealthy targets'),
    threshold: 1,
    evaluationPeriods: 3,
    datapointsToAlarm: 3,
    description: 'Targets fail the load balancer health check (3 minutes in a row)',
  });
  const latencyThreshold = options.latencyThreshold ?? Duration.seconds(2);
  const latency = monitoring.addAlarm('LatencyP99', {
    metric: runtime.loadBalancer.metrics.targetResponseTime({ period: Duration.minutes(1), statistic: cloudwatch.Stats.p(99) }),
    threshold: latencyThreshold.toSeconds({ integral: false }),
    evaluationPeriods: 3,
    datapointsToAlarm: 3,
    description: `p99 response time above ${latencyThreshold.isUnresolved() ? 'the latency threshold' : latencyThreshold.toHumanString()} (3 minutes in a row)`,
  });
  monitoring.addAlarm('RunningTasks', {
    metric: bothGroups((group) => group.metrics.healthyHostCount({ statistic: cloudwatch.Stats.MINIMUM }), 'Healthy tasks'),
    threshold: desiredCount,
    comparisonOperator: cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
    evaluationPeriods: 5,
    datapointsToAlarm: 5,
    treatMissingData: cloudwatch.TreatMissingData.BREACHING,
    description: `Fewer than ${desiredCount} running and healthy tasks (5 minutes in a row)`,
  });
  monitoring.dashboard.addWidgets(
    new cloudwatch.GraphWidget({
      title: 'Requests by target group (a release moves them from one to the other)',
      left: groups.map((group, i) => group.metrics.requestCount({
        period: Duration.minutes(1), statistic: cloudwatch.Stats.SUM, label: i === 0 ? 'blue' : 'green',
      })),
      width: 12,
    }),
    new cloudwatch.GraphWidget({
      title: 'Healthy targets by target group',
      left: groups.map((group, i) => group.metrics.healthyHostCount({
        period: Duration.minutes(1), statistic: cloudwatch.Stats.MINIMUM, label: i === 0 ? 'blue' : 'green',
      })),
      width: 12,
    }),
    new cloudwatch.GraphWidget({
      title: 'CPU and memory of the service (%)',
      left: [runtime.service.metricCpuUtilization(), runtime.service.metricMemoryUtilization()],
      width: 12,
    }),
  );
  return [http5xx, unhealthy, latency];
}
