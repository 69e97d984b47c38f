import { Duration } from 'aws-cdk-lib';
import { IConstruct } from 'constructs';
import { invalidInput } from '../private/validate';

/**
 * Checks the threshold of a load balancer latency alarm: 10 milliseconds to 60 seconds (the ALB's idle timeout by
 * default), skipping tokens; the error names `scope`.
 * @internal
 */
export function checkLatencyThreshold(scope: IConstruct, property: string, threshold: Duration | undefined): void {
  if (threshold && !threshold.isUnresolved()
    && (threshold.toMilliseconds({ integral: false }) < 10 || threshold.toSeconds({ integral: false }) > 60)) {
    throw invalidInput(scope, property, threshold, 'must be between 10 milliseconds and 60 seconds');
  }
}
