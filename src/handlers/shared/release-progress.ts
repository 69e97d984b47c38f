/**
 * Release progress events: what a release engine that we own (the EC2 release workflow, the serverless release
 * controller) tells the account's default EventBridge bus each time it moves production traffic, so that
 * `DeliveryMetrics` can say "25 % of production traffic on the new version (step 1 of 4)" and end the lead time at
 * 100 % (ADR 0010, "Traffic steps").
 *
 * One custom event per traffic step, `PutEvents` on the default bus:
 * - `source` `cdk-delivery-pipelines.release` (`RELEASE_PROGRESS_SOURCE`), detail-type `Release Traffic Shifted`;
 * - `detail`: `{ pipeline, executionId, engine, step, steps, percent, shiftedAt }` (`ReleaseProgressDetail`).
 *
 * Best effort, never in the release's way: `publishProgress` never throws and gives up after one short attempt
 * (a 2-second connection and a 3-second request timeout, no retry): the release goes on whatever EventBridge says,
 * and a lost event only costs its message (lead time then ends at the execution's success).
 */
import { EventBridgeClient, PutEventsCommand } from '@aws-sdk/client-eventbridge';
import { errorMessage, log } from './common';

/** The `source` of the progress events (IAM: the engines may put events with this source only). */
export const RELEASE_PROGRESS_SOURCE = 'cdk-delivery-pipelines.release';
/** The `detail-type` of a traffic step. */
export const RELEASE_TRAFFIC_SHIFTED = 'Release Traffic Shifted';

/** What a traffic step event says. */
export interface ReleaseProgressDetail {
  /** The pipeline whose execution releases. */
  readonly pipeline: string;
  /** The pipeline execution that releases. */
  readonly executionId: string;
  /** `ec2-blue-green`, `lambda-alias`, ... */
  readonly engine: string;
  /** This step, from 1. */
  readonly step: number;
  /** How many steps the shift has (the last one puts 100 % on the new version). */
  readonly steps: number;
  /** Share of production traffic on the new version after this step, 0 to 100. */
  readonly percent: number;
  /** ISO 8601: when the engine moved the traffic. */
  readonly shiftedAt: string;
}

/** One attempt, short timeouts: a release never waits on a progress event. */
export const PROGRESS_CLIENT_CONFIG = { maxAttempts: 1, requestHandler: { connectionTimeout: 2_000, requestTimeout: 3_000 } } as const;
export const progressEvents = new EventBridgeClient(PROGRESS_CLIENT_CONFIG);

/** The PutEvents entry of a step (exported for the tests). */
export function progressEntry(detail: ReleaseProgressDetail) {
  return {
    Source: RELEASE_PROGRESS_SOURCE,
    DetailType: RELEASE_TRAFFIC_SHIFTED,
    Detail: JSON.stringify(detail),
    Time: new Date(detail.shiftedAt),
  };
}

/**
 * Puts one traffic step event on the default bus. Never throws: a failure (the call, or an entry EventBridge did not
 * take) is logged and the release goes on. Returns whether EventBridge took the event.
 */
export async function publishProgress(detail: ReleaseProgressDetail, client: EventBridgeClient = progressEvents): Promise<boolean> {
  const fields = { pipeline: detail.pipeline, executionId: detail.executionId, step: detail.step, steps: detail.steps, percent: detail.percent };
  try {
    const out = await client.send(new PutEventsCommand({ Entries: [progressEntry(detail)] }));
    if ((out.FailedEntryCount ?? 0) > 0) {
      const entry = out.Entries?.[0];
      log('WARN', 'release progress event not taken by EventBridge; the release goes on', { ...fields, errorCode: entry?.ErrorCode, error: entry?.ErrorMessage });
      return false;
    }
    log('INFO', 'release progress event sent', fields);
    return true;
  } catch (err) {
    log('WARN', `could not send the release progress event (${errorMessage(err)}); the release goes on`, fields);
    return false;
  }
}
