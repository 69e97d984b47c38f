import { Stack } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';

/**
 * The release progress events (kept in step with src/handlers/shared/release-progress.ts): the `source` and
 * `detail-type` of the custom event a release engine puts on the default bus at each traffic step. ADR 0010.
 * @internal
 */
export const RELEASE_PROGRESS_SOURCE = 'cdk-delivery-pipelines.release';
/** @internal */
export const RELEASE_TRAFFIC_SHIFTED = 'Release Traffic Shifted';

/**
 * Lets `role` put the traffic step events: `events:PutEvents` on the account's default bus only, with this source
 * and detail-type only (the `events:source` and `events:detail-type` condition keys).
 * @internal
 */
export function grantReleaseProgress(role: iam.IRole): void {
  const stack = Stack.of(role);
  role.addToPrincipalPolicy(new iam.PolicyStatement({
    actions: ['events:PutEvents'],
    resources: [stack.formatArn({ service: 'events', resource: 'event-bus', resourceName: 'default' })],
    // Both keys are multivalued (one value per entry of the request): every entry must carry this source and
    // detail-type, and a request without them is not allowed (`Null`).
    conditions: {
      'ForAllValues:StringEquals': { 'events:source': [RELEASE_PROGRESS_SOURCE], 'events:detail-type': [RELEASE_TRAFFIC_SHIFTED] },
      'Null': { 'events:source': 'false', 'events:detail-type': 'false' },
    },
  }));
}
