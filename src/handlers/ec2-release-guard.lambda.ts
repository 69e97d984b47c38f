/**
 * Keeps `cdk deploy` from overtaking a running EC2 blue/green release: a Lambda-backed CloudFormation custom
 * resource in the fleet's stack.
 *
 * CloudFormation resolves the release lock (the SSM String parameter that the release's state machine holds:
 * `free` or `running <executionArn>`) into the resource property `Lock` on every deployment, and sends an Update
 * whenever it changed. On that Update the guard asks Step Functions (`DescribeExecution`) whether the execution
 * named by the lock is still RUNNING: then it answers FAILED, and CloudFormation rolls the deployment back before it
 * can touch the fleet the release is moving. A lock left by a release that ended without freeing it (the execution
 * is no longer running, or no longer exists) does not block. Create and Delete always succeed, so that the guard
 * never keeps a stack from being created or deleted; the Update of a CloudFormation rollback carries the previous
 * properties (normally `free`) and succeeds too.
 *
 * Contract (CloudFormation User Guide, "Custom resources", crpg-ref-requests / crpg-ref-responses): the function
 * is invoked asynchronously with the request and must PUT the response JSON (`Status`, `Reason`,
 * `PhysicalResourceId`, `StackId`, `RequestId`, `LogicalResourceId`) to the pre-signed `ResponseURL`; without a
 * response CloudFormation waits for up to an hour. So the guard always responds, also on bad input and on its own
 * errors, with request timeouts and a few retries; only when every PUT failed does it throw (Lambda then runs the
 * asynchronous invocation again).
 *
 * IAM: `states:DescribeExecution` on the executions of the release state machine.
 */
import { DescribeExecutionCommand, SFNClient } from '@aws-sdk/client-sfn';
import { propertiesOf, respond, responseTo, responseUrlOf } from './shared/cloudformation-response';
import type { ResponseDeps } from './shared/cloudformation-response';
import { clip, describeError, isObject, log, logError } from './shared/common';
import { isRetryable } from './shared/retryable';

/** Exported for tests. */
export const sfn = new SFNClient({ maxAttempts: 3, requestHandler: { connectionTimeout: 3_000, requestTimeout: 5_000 } });

export { REASON_LIMIT, RESPONSE_ATTEMPTS, RESPONSE_TIMEOUT_MS, RETRY_DELAY_MS, putJson } from './shared/cloudformation-response';
export type { CloudFormationResponse } from './shared/cloudformation-response';

/** Prefix of the physical id, followed by the stack name. */
export const PHYSICAL_ID_PREFIX = 'release-guard-';

/** What the guard takes from outside; each defaults to the real thing. */
export interface GuardDeps extends ResponseDeps {
  readonly sfn?: SFNClient;
}

/** Lambda entry point. */
export async function handler(event: unknown): Promise<void> {
  return guard(event);
}

/** Decides (see the file comment) and responds to CloudFormation. */
export async function guard(event: unknown, deps: GuardDeps = {}): Promise<void> {
  const request = isObject(event) ? event : {};
  const responseUrl = responseUrlOf(request);
  const requestType = typeof request.RequestType === 'string' ? request.RequestType : undefined;
  const fields = { requestType, logicalResourceId: request.LogicalResourceId, stackId: request.StackId };
  if (responseUrl === undefined) {
    // Nobody to answer: throwing would only make Lambda run this again.
    logError('not a CloudFormation custom resource request (no ResponseURL): nothing to respond to', undefined, fields);
    return;
  }

  let verdict: { readonly status: 'SUCCESS' | 'FAILED'; readonly reason: string };
  try {
    verdict = await decide(request, deps.sfn ?? sfn);
  } catch (err) {
    // Defensive: decide() answers its own errors. Delete must still succeed, or the stack cannot be deleted.
    verdict = requestType === 'Delete'
      ? { status: 'SUCCESS', reason: `guard error ignored on Delete: ${describeError(err)}` }
      : { status: 'FAILED', reason: `release guard error: ${describeError(err)}` };
  }

  const response = responseTo(request, verdict, physicalId(request));
  log(response.Status === 'SUCCESS' ? 'INFO' : 'WARN', 'release guard', { ...fields, status: response.Status, reason: response.Reason });
  await respond(responseUrl, JSON.stringify(response), 'release guard', deps);
}

/** The event's own physical id (Update, Delete), else `release-guard-<StackName>`: stable, never a replacement. */
export function physicalId(request: Record<string, unknown>): string {
  if (typeof request.PhysicalResourceId === 'string' && request.PhysicalResourceId !== '') return request.PhysicalResourceId;
  const props = propertiesOf(request);
  const fromStackId = typeof request.StackId === 'string' ? request.StackId.split('/')[1] : undefined;
  const stackName = typeof props.StackName === 'string' && props.StackName !== '' ? props.StackName : fromStackId ?? 'unknown-stack';
  return clip(`${PHYSICAL_ID_PREFIX}${stackName}`, 200);
}

const LOCK_RUNNING = /^running (arn:[^\s]+)$/;

async function decide(request: Record<string, unknown>, client: SFNClient): Promise<{ status: 'SUCCESS' | 'FAILED'; reason: string }> {
  const success = (reason: string) => ({ status: 'SUCCESS' as const, reason });
  const failed = (reason: string) => ({ status: 'FAILED' as const, reason });
  switch (request.RequestType) {
    case 'Create':
      return success('created: the guard checks the release lock on updates');
    case 'Delete':
      return success('deleted');
    case 'Update':
      break;
    default:
      return failed(`unknown RequestType ${clip(JSON.stringify(request.RequestType) ?? 'missing', 60)}: expected Create, Update or Delete`);
  }
  const props = propertiesOf(request);
  const lock = typeof props.Lock === 'string' ? props.Lock.trim() : undefined;
  if (lock === 'free') return success('no release is running');
  const match = lock === undefined ? null : LOCK_RUNNING.exec(lock);
  if (match === null) {
    return failed(`the property Lock must be "free" or "running <executionArn>", got ${clip(JSON.stringify(lock) ?? 'missing', 200)}`);
  }
  const executionArn = match[1];
  let status: string | undefined;
  try {
    const execution = await client.send(new DescribeExecutionCommand({ executionArn }));
    status = execution.status;
  } catch (err) {
    const name = (err as { name?: unknown } | undefined)?.name;
    if (name === 'ExecutionDoesNotExist') return success(`the release lock names ${executionArn}, which does not exist: a stale lock`);
    const retry = isRetryable(err) ? ' (transient)' : '';
    return failed(`could not check whether the release ${executionArn} is running${retry}: ${describeError(err)}; deploy again in a minute`);
  }
  if (status === 'RUNNING') {
    return failed(`a release (${executionArn}) is running: deploy again after it ended `
      + `(or stop it, which rolls it back: aws stepfunctions stop-execution --execution-arn ${executionArn})`);
  }
  return success(`the release ${executionArn} that left the lock is ${status ?? 'in an unknown state'}, not running: a stale lock`);
}
