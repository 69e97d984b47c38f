import { Duration } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as elbv2 from 'aws-cdk-lib/aws-elasticloadbalancingv2';
import { ServiceMonitoring } from './service-monitoring';
import { BlueGreenEc2Fleet, COLORS, Color } from '../runtime/ec2-fleet';

/** Thresholds of `addBlueGreenFleetAlarms`. @internal */
export interface BlueGreenFleetAlarmOptions {
  /** p99 of a color's target group; default 2 s. */
  readonly latencyThreshold?: Duration;
  /** p95 of the load balancer (the workshop's alarm); default 1 s. */
  readonly p95LatencyThreshold?: Duration;
}

/**
 * The alarms and dashboard widgets of a blue/green EC2 fleet: per color (5xx, unhealthy hosts, p99 of its target
 * group; they roll back a release onto that color), the service's p95 latency and healthy instances (both colors), and
 * graphs of both colors side by side, where a release shows as traffic moving. Returns the per-color alarms.
 * @internal
 */
export function addBlueGreenFleetAlarms(
  monitoring: ServiceMonitoring,
  fleet: BlueGreenEc2Fleet,
  options: BlueGreenFleetAlarmOptions,
): Record<Color, cloudwatch.IAlarm[]> {
  const byColorAlarms: Record<Color, cloudwatch.IAlarm[]> = { blue: [], green: [] };
  const latencyThreshold = options.latencyThreshold ?? Duration.seconds(2);
  const minute = Duration.minutes(1);
  for (const color of COLORS) {
    const group = fleet.targetGroup(color);
    const name = color === 'blue' ? 'Blue' : 'Green';
    const alarms = [
      monitoring.addAlarm(`${name}Http5xx`, {
        metric: group.metrics.httpCodeTarget(elbv2.HttpCodeTarget.TARGET_5XX_COUNT, { period: minute, statistic: cloudwatch.Stats.SUM }),
        threshold: 5,
        evaluationPeriods: 3,
        datapointsToAlarm: 2,
        description: `The ${color} instances answer 5xx (5 or more a minute, 2 minutes out of 3)`,
      }),
      monitoring.addAlarm(`${name}UnhealthyHosts`, {
        metric: group.metrics.unhealthyHostCount({ period: minute, statistic: cloudwatch.Stats.MAXIMUM }),
        threshold: 1,
        evaluationPeriods: 3,
        datapointsToAlarm: 3,
        description: `${name} instances fail the load balancer health check (3 minutes in a row)`,
      }),
      monitoring.addAlarm(`${name}LatencyP99`, {
        metric: group.metrics.targetResponseTime({ period: minute, statistic: cloudwatch.Stats.p(99) }),
        threshold: latencyThreshold.toSeconds({ integral: false }),
        evaluationPeriods: 3,
        datapointsToAlarm: 3,
        description: `p99 response time of the ${color} instances above ${describeDuration(latencyThreshold)} (3 minutes in a row)`,
      }),
    ];
    byColorAlarms[color] = alarms;
  }
  const p95 = options.p95LatencyThreshold ?? Duration.seconds(1);
  monitoring.addAlarm('LatencyP95', {
    metric: fleet.loadBalancer.metrics.targetResponseTime({ period: minute, statistic: cloudwatch.Stats.p(95) }),
    threshold: p95.toSeconds({ integral: false }),
    evaluationPeriods: 5,
    datapointsToAlarm: 3,
    description: `p95 response time of production above ${describeDuration(p95)} (3 minutes out of 5)`,
  });
  monitoring.addAlarm('HealthyHosts', {
    metric: new cloudwatch.MathExpression({
      expression: 'FILL(blue, 0) + FILL(green, 0)',
      usingMetrics: {
        blue: fleet.blueTargetGroup.metrics.healthyHostCount({ statistic: cloudwatch.Stats.MINIMUM }),
        green: fleet.greenTargetGroup.metrics.healthyHostCount({ statistic: cloudwatch.Stats.MINIMUM }),
      },
      label: 'Healthy instances',
      period: minute,
    }),
    threshold: fleet.capacity,
    comparisonOperator: cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
    evaluationPeriods: 5,
    datapointsToAlarm: 5,
    treatMissingData: cloudwatch.TreatMissingData.BREACHING,
    description: `Fewer than ${fleet.capacity} healthy instances (5 minutes in a row; also before the first release)`,
  });
  const byColor = (metric: (group: elbv2.ApplicationTargetGroup) => cloudwatch.IMetric) => COLORS.map((color) => metric(fleet.targetGroup(color)));
  monitoring.dashboard.addWidgets(
    new cloudwatch.GraphWidget({
      title: 'Requests by color (a release moves them from one to the other)',
      left: byColor((group) => group.metrics.requestCount({ period: minute, statistic: cloudwatch.Stats.SUM, label: group === fleet.blueTargetGroup ? 'blue' : 'green' })),
      width: 12,
    }),
    new cloudwatch.GraphWidget({
      title: 'Healthy instances by color',
      left: byColor((group) => group.metrics.healthyHostCount({ period: minute, statistic: cloudwatch.Stats.MINIMUM, label: group === fleet.blueTargetGroup ? 'blue' : 'green' })),
      width: 12,
    }),
    new cloudwatch.GraphWidget({
      title: 'Instances in service by group',
      left: COLORS.map((color) => new cloudwatch.Metric({
        namespace: 'AWS/AutoScaling',
        metricName: 'GroupInServiceInstances',
        dimensionsMap: { AutoScalingGroupName: fleet.group(color).autoScalingGroupName },
        statistic: cloudwatch.Stats.MAXIMUM,
        period: minute,
        label: color,
      })),
      width: 12,
    }),
  );
  return byColorAlarms;
}

function describeDuration(duration: Duration): string {
  return duration.isUnresolved() ? 'the threshold' : duration.toHumanString();
}
