/**
 * Deletes, when its stack is deleted, the CloudWatch alarms a release created outside CloudFormation: a
 * Lambda-backed custom resource whose property `AlarmNamePrefix` is the release's alarm prefix (the serverless
 * release controller names its per-release alarms `<ALARM_PREFIX>-<release id>-<n>`, ADR 0007).
 *
 * - Delete: every alarm named `<AlarmNamePrefix>-...` (`DescribeAlarms` with `AlarmNamePrefix`, metric and composite
 *   alarms, every page), deleted with `DeleteAlarms`, 100 names a call. Throttling and transient errors are tried
 *   again after a pause; a final error (access denied, ...) answers FAILED naming it, so the stack's deletion stops
 *   with the reason instead of leaving alarms billing unseen. Nothing to delete, or a second Delete, succeeds.
 * - Create, Update: nothing to do. The physical id holds the prefix, so a new prefix is a replacement and
 *   CloudFormation's Delete of the old resource cleans up the old prefix.
 *
 * Always responds to CloudFormation (`shared/cloudformation-response.ts`). IAM: `cloudwatch:DescribeAlarms` and
 * `cloudwatch:DeleteAlarms` on `arn:<partition>:cloudwatch:<region>:<account>:alarm:<AlarmNamePrefix>-*`.
 */
import { CloudWatchClient, DeleteAlarmsCommand, DescribeAlarmsCommand } from '@aws-sdk/client-cloudwatch';
import { AwsCallError, awsCall, awsErrorOf } from './shared/aws-call';
import { answerCustomResource, propertiesOf } from './shared/cloudformation-response';
import type { ResponseDeps } from './shared/cloudformation-response';
import { clip, defaultSleep, describeError, log, logError } from './shared/common';
import { isRetryable } from './shared/retryable';

/** Exported for tests. */
export const cloudWatch = new CloudWatchClient({ maxAttempts: 5, requestHandler: { connectionTimeout: 3_000, requestTimeout: 10_000 } });

/** CloudWatch's limit of alarms per `DescribeAlarms` page and per `DeleteAlarms` call. */
export const ALARMS_PER_CALL = 100;
/** `DescribeAlarms` pages read at most (a bound, should a token never end): 10,000 alarms. */
export const MAX_PAGES = 100;
/** Tries of one call whose error is retryable (after the SDK's own attempts), with `RETRY_DELAY_MS` × n between. */
export const CALL_ATTEMPTS = 5;
export const RETRY_DELAY_MS = 2_000;
/** Prefix of the physical id, followed by the alarm prefix. */
export const PHYSICAL_ID_PREFIX = 'release-cleanup-';
/** The alarm prefix CloudWatch accepts: an alarm name is at most 255 characters. */
const ALARM_PREFIX = /^[^\s*?][^*?]{0,199}$/;

/** What the cleanup takes from outside; each defaults to the real thing. */
export interface CleanupDeps extends ResponseDeps {
  readonly cloudWatch?: CloudWatchClient;
}

/** What one request came to: the verdict sent to CloudFormation and the alarms deleted. */
export interface CleanupOutcome {
  readonly status: 'SUCCESS' | 'FAILED';
  readonly reason: string;
  readonly physicalResourceId: string;
  readonly deleted: readonly string[];
}

/** Lambda entry point. */
export async function handler(event: unknown): Promise<CleanupOutcome | undefined> {
  return cleanup(event);
}

/** Decides (see the file comment), responds to CloudFormation, and returns what it did. */
export async function cleanup(event: unknown, deps: CleanupDeps = {}): Promise<CleanupOutcome | undefined> {
  return answerCustomResource<Omit<CleanupOutcome, 'physicalResourceId'>>(event, {
    who: 'release cleanup',
    physicalId: (request) => physicalId(request, alarmPrefixOf(request)),
    decide: (request) => decide(request, alarmPrefixOf(request), deps),
    // Defensive: decide() answers its own errors.
    onError: (_request, err) => ({ status: 'FAILED', reason: `release cleanup error: ${describeError(err)}`, deleted: [] }),
    logFields: (outcome, request) => ({ alarmPrefix: alarmPrefixOf(request), deleted: outcome.deleted.length }),
  }, deps);
}

/** The `AlarmNamePrefix` property when it is a usable prefix, else `undefined`. */
export function alarmPrefixOf(request: Record<string, unknown>): string | undefined {
  const prefix = propertiesOf(request).AlarmNamePrefix;
  return typeof prefix === 'string' && ALARM_PREFIX.test(prefix) ? prefix : undefined;
}

/** The event's own physical id (Update, Delete), else `release-cleanup-<prefix>`. */
export function physicalId(request: Record<string, unknown>, prefix: string | undefined): string {
  if (typeof request.PhysicalResourceId === 'string' && request.PhysicalResourceId !== '') return request.PhysicalResourceId;
  return clip(`${PHYSICAL_ID_PREFIX}${prefix ?? 'invalid'}`, 255);
}

async function decide(
  request: Record<string, unknown>,
  prefix: string | undefined,
  deps: CleanupDeps,
): Promise<Omit<CleanupOutcome, 'physicalResourceId'>> {
  const requestType = request.RequestType;
  if (requestType !== 'Create' && requestType !== 'Update' && requestType !== 'Delete') {
    return { status: 'FAILED', reason: `unknown RequestType ${clip(JSON.stringify(requestType) ?? 'missing', 60)}: expected Create, Update or Delete`, deleted: [] };
  }
  if (prefix === undefined) {
    const given = clip(JSON.stringify(propertiesOf(request).AlarmNamePrefix) ?? 'missing', 120);
    // A Delete must not keep the stack: a resource that never had a valid prefix never had alarms to clean up.
    if (requestType === 'Delete') return { status: 'SUCCESS', reason: `no valid AlarmNamePrefix (${given}): nothing to clean up`, deleted: [] };
    return { status: 'FAILED', reason: `the property AlarmNamePrefix must be 1 to 200 characters without * or ?, got ${given}`, deleted: [] };
  }
  if (requestType !== 'Delete') return { status: 'SUCCESS', reason: `${requestType}: the alarms named ${prefix}-* are deleted with the stack`, deleted: [] };

  const client = deps.cloudWatch ?? cloudWatch;
  const sleep = deps.sleep ?? defaultSleep;
  const deleted: string[] = [];
  try {
    const names = await alarmNames(client, prefix, sleep);
    for (let i = 0; i < names.length; i += ALARMS_PER_CALL) {
      const batch = names.slice(i, i + ALARMS_PER_CALL);
      await withRetries('cloudwatch:DeleteAlarms', sleep, () => client.send(new DeleteAlarmsCommand({ AlarmNames: batch })));
      deleted.push(...batch);
    }
    const reason = names.length === 0 ? `no alarm named ${prefix}-*: nothing to delete` : `deleted ${names.length} alarm(s) named ${prefix}-*`;
    return { status: 'SUCCESS', reason, deleted };
  } catch (err) {
    const left = deleted.length === 0 ? '' : ` (${deleted.length} deleted before)`;
    logError('could not delete the release alarms', awsErrorOf(err), { alarmPrefix: prefix, deleted: deleted.length });
    return {
      status: 'FAILED',
      reason: `${describeCallError(err)}${left}; the alarms named ${prefix}-* are left: delete them, then delete the stack again`,
      deleted,
    };
  }
}

/** Every alarm name (metric and composite) starting with `<prefix>-`, every page up to `MAX_PAGES`. */
async function alarmNames(client: CloudWatchClient, prefix: string, sleep: (ms: number) => Promise<void>): Promise<string[]> {
  const names = new Set<string>();
  let nextToken: string | undefined;
  for (let page = 0; page < MAX_PAGES; page++) {
    const output = await withRetries('cloudwatch:DescribeAlarms', sleep, () => client.send(new DescribeAlarmsCommand({
      AlarmNamePrefix: `${prefix}-`,
      AlarmTypes: ['MetricAlarm', 'CompositeAlarm'],
      MaxRecords: ALARMS_PER_CALL,
      NextToken: nextToken,
    })));
    for (const alarm of [...(output.MetricAlarms ?? []), ...(output.CompositeAlarms ?? [])]) {
      if (alarm.AlarmName !== undefined && alarm.AlarmName.startsWith(`${prefix}-`)) names.add(alarm.AlarmName);
    }
    nextToken = output.NextToken;
    if (nextToken === undefined || nextToken === '') return [...names];
  }
  log('WARN', 'release cleanup: more alarm pages than read; the rest is left', { alarmPrefix: prefix, pages: MAX_PAGES });
  return [...names];
}

/** One AWS call, tried again after `RETRY_DELAY_MS` × n while its error is retryable, `CALL_ATTEMPTS` times at most. */
async function withRetries<T>(api: string, sleep: (ms: number) => Promise<void>, send: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await awsCall(api, send);
    } catch (err) {
      if (attempt >= CALL_ATTEMPTS || !isRetryable(awsErrorOf(err))) throw err;
      log('WARN', `${api} failed with a transient error: trying again`, { attempt, error: describeError(awsErrorOf(err)) });
      await sleep(RETRY_DELAY_MS * attempt);
    }
  }
}

function describeCallError(err: unknown): string {
  return err instanceof AwsCallError ? err.message : `unexpected error: ${describeError(err)}`;
}
