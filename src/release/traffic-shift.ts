import { Duration } from 'aws-cdk-lib';
import { checkDuration, checkInteger } from '../private/validate';

/**
 * How production traffic moves to the new version of a blue/green release (ALB weighted target groups).
 */
export class TrafficShift {
  /** All production traffic moves at once, then the bake time starts. */
  public static allAtOnce(): TrafficShift {
    return new TrafficShift(0, Duration.seconds(0));
  }

  /**
   * A canary step: `percent` of production traffic goes to the new version for `interval` while the alarms watch it,
   * then the rest; the bake time follows. The first release has no previous version to share traffic with and shifts
   * all at once.
   *
   * @param percent 1 to 99
   * @param interval 1 to 30 minutes, whole minutes
   */
  public static canary(percent: number, interval: Duration): TrafficShift {
    checkInteger('TrafficShift.canary', 'percent', percent, 1, 99);
    checkDuration('TrafficShift.canary', 'interval', interval, Duration.minutes(1), Duration.minutes(30), 'minutes');
    return new TrafficShift(percent, interval);
  }

  /** The share of production traffic of the canary step (0: all at once). */
  public readonly percent: number;
  /** How long the canary step lasts (0: all at once). */
  public readonly interval: Duration;

  private constructor(percent: number, interval: Duration) {
    this.percent = percent;
    this.interval = interval;
  }
}
