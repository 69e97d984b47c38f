/**
 * One invocation of the controller: its AWS clients, its context (`Job`), the answers it gives CodePipeline
 * (`JobOutcome`, continue later, fail), and the helpers the start, follow and rollback phases share.
 */
import { CloudWatchClient, DeleteAlarmsCommand } from '@aws-sdk/client-cloudwatch';
import { CodeDeployClient, GetDeploymentCommand } from '@aws-sdk/client-codedeploy';
import type { DeploymentInfo } from '@aws-sdk/client-codedeploy';
import { CodePipelineClient, PutJobFailureResultCommand, PutJobSuccessResultCommand } from '@aws-sdk/client-codepipeline';
import type { FailureType } from '@aws-sdk/client-codepipeline';
import { GetAliasCommand, LambdaClient } from '@aws-sdk/client-lambda';
import { alarmNameFor, BROKEN, CODEPIPELINE_MESSAGE_LIMIT, DescribedRelease, parseDeploymentDescription, POLL_DELAY_MS, REPORTING_MARGIN_MS, ServerlessReleaseConfig } from './configuration';
import { encodeState, ReleaseState } from './state';
import { AwsCallError, awsCall, awsErrorOf as awsError, isAccessDenied } from '../shared/aws-call';
import { JobDeps, sendJobResult } from '../shared/codepipeline-job';
import { clip, describeError, log, logError } from '../shared/common';
import { isRetryable } from '../shared/retryable';

export const REQUEST_HANDLER = { connectionTimeout: 3_000, requestTimeout: 10_000 };

/** Exported for tests. */
export const lambda = new LambdaClient({ maxAttempts: 3, requestHandler: { connectionTimeout: 3_000, requestTimeout: 30_000 } });
/** Exported for tests. */
export const codeDeploy = new CodeDeployClient({ maxAttempts: 3, requestHandler: REQUEST_HANDLER });
/** Exported for tests. */
export const cloudWatch = new CloudWatchClient({ maxAttempts: 3, requestHandler: REQUEST_HANDLER });
/** Exported for tests. */
export const codePipeline = new CodePipelineClient({ maxAttempts: 4, requestHandler: REQUEST_HANDLER });

/** `awsCall` naming what the call acts on: every call here names one. */
export function call<T>(api: string, subject: string, send: () => Promise<T>): Promise<T> {
  return awsCall(api, send, { subject });
}

/** A reason to fail the job that is not an AWS error. */
export class JobError extends Error {
  constructor(message: string, readonly type: FailureType = 'JobFailed') {
    super(message);
    this.name = 'JobError';
  }
}

/** What to tell CodePipeline about an error: the message, the failure type, and whether it was transient. */
export function explain(err: unknown): { message: string; type: FailureType; transient: boolean } {
  if (err instanceof JobError) return { message: err.message, type: err.type, transient: false };
  if (err instanceof AwsCallError) {
    return { message: err.message, type: isAccessDenied(err.error) ? 'PermissionError' : 'JobFailed', transient: isRetryable(err.error) };
  }
  return { message: `unexpected error: ${describeError(err)}`, type: 'JobFailed', transient: false };
}

/** What `serverlessRelease` needs from the outside world; each defaults to the real thing. */
export type ServerlessReleaseDeps = JobDeps;

/** How the job ended, as reported to CodePipeline. */
export type JobOutcome =
  /** Every changed function serves its new version. */
  | { readonly result: 'released'; readonly versions: string }
  /** No function changed: nothing to shift. */
  | { readonly result: 'unchanged' }
  /** Deployments running (phase `wait`) or being rolled back (phase `rollback`): CodePipeline invokes again. */
  | { readonly result: 'continue'; readonly phase: 'wait' | 'rollback'; readonly polls: number }
  | { readonly result: 'failed'; readonly message: string };

/** One invocation's context. */
export interface Job {
  readonly jobId: string;
  readonly config: ServerlessReleaseConfig;
  readonly prefix: string;
  readonly releaseId: string;
  readonly sleep: (ms: number) => Promise<void>;
  readonly now: () => number;
  readonly deadline?: number;
  readonly fields: Record<string, unknown>;
  /** Names the traffic step events (from `UserParameters`); none: no events. */
  readonly progress?: { readonly pipeline: string; readonly executionId: string };
}

/** Milliseconds left before the Lambda deadline (unbounded without one). */
export function timeLeft(job: Job): number {
  return job.deadline === undefined ? Number.POSITIVE_INFINITY : job.deadline - job.now();
}

export async function readAlias(fn: { readonly functionName: string; readonly aliasName: string; readonly id: string }): Promise<{
  version: string; weights: Record<string, number>;
}> {
  const alias = await call('lambda:GetAlias', `function ${label(fn)}`, () => lambda.send(new GetAliasCommand({ FunctionName: fn.functionName, Name: fn.aliasName })));
  if (!alias.FunctionVersion) throw new JobError(`lambda:GetAlias named no version for alias ${fn.aliasName} of function ${label(fn)}`);
  return { version: alias.FunctionVersion, weights: alias.RoutingConfig?.AdditionalVersionWeights ?? {} };
}

/** What one `GetDeployment` told. */
export interface Looked {
  readonly deploymentId: string;
  readonly info?: DeploymentInfo;
  /** The function and versions, from the description. */
  readonly release?: DescribedRelease;
  readonly error?: unknown;
}

export async function lookAt(deploymentId: string): Promise<Looked> {
  try {
    const output = await call('codedeploy:GetDeployment', `deployment ${deploymentId}`, () => codeDeploy.send(new GetDeploymentCommand({ deploymentId })));
    const info = output.deploymentInfo ?? {};
    return { deploymentId, info, release: parseDeploymentDescription(info.description) };
  } catch (err) {
    return { deploymentId, error: err };
  }
}

export function alarmNamesOf(job: Job, state: Pick<ReleaseState, 'alarms' | 'releaseId'>): string[] {
  return Array.from({ length: state.alarms }, (_, i) => alarmNameFor(job.config.alarmPrefix, state.releaseId, i + 1));
}

export function minutes(ms: number): string {
  const m = Math.floor(ms / 60_000);
  return `${m} minute${m === 1 ? '' : 's'}`;
}

/** Pauses, then answers "not finished" with the next state. */
export async function continueLater(job: Job, next: ReleaseState, fields: Record<string, unknown>): Promise<JobOutcome> {
  const delayMs = pauseMs(job);
  log('INFO', next.phase === 'wait' ? 'release not finished: checking again later' : 'rollback not finished: checking again later', {
    ...fields, nextPolls: next.polls, delayMs,
  });
  await job.sleep(delayMs);
  await report(job.jobId, new PutJobSuccessResultCommand({ jobId: job.jobId, continuationToken: encodeState(next) }), { ...fields, decision: 'continue' });
  return { result: 'continue', phase: next.phase, polls: next.polls };
}

export function isEnded(status: string | undefined): boolean {
  return status === 'Succeeded' || BROKEN.has(status ?? '');
}

export function isOn(alias: { version: string; weights: Record<string, number> }, version: string): boolean {
  return alias.version === version && Object.keys(alias.weights).length === 0;
}

export function servesOf(alias: { version: string; weights: Record<string, number> }): string {
  const others = Object.entries(alias.weights).map(([version, weight]) => `${weight} to ${version}`);
  return others.length === 0 ? alias.version : `${alias.version} (with ${others.join(', ')})`;
}

/** `DeleteAlarms`; errors are logged and returned as problems, never thrown. */
export async function deleteAlarms(job: Job, alarmNames: readonly string[]): Promise<string[]> {
  if (alarmNames.length === 0) return [];
  try {
    await call('cloudwatch:DeleteAlarms', `alarms ${alarmNames.join(', ')}`, () => cloudWatch.send(new DeleteAlarmsCommand({ AlarmNames: [...alarmNames] })));
    return [];
  } catch (err) {
    logError('could not delete the release alarms', awsError(err), { ...job.fields, alarms: alarmNames });
    return [`could not delete the release alarms: ${explain(err).message}`];
  }
}

/** The problems of a compensation, as the last part of a failure message (none: no part). */
export function problemText(problems: readonly string[]): string[] {
  return problems.length === 0 ? [] : [`NOT fully cleaned up, check by hand: ${problems.join('; ')}`];
}

export function deploymentLabel(l: Pick<Looked, 'deploymentId' | 'release'>): string {
  return l.release ? `deployment ${l.deploymentId} of function ${l.release.id} (${l.release.functionName})` : `deployment ${l.deploymentId}`;
}

/** The pause before a "not finished" answer: `POLL_DELAY_MS`, cut so the report still fits before the deadline. */
export function pauseMs(job: Job): number {
  if (job.deadline === undefined) return POLL_DELAY_MS;
  const left = job.deadline - job.now() - REPORTING_MARGIN_MS;
  return Math.max(0, Math.min(POLL_DELAY_MS, Math.floor(left)));
}

export async function fail(jobId: string, type: FailureType, message: string, fields: Record<string, unknown>): Promise<JobOutcome> {
  log('INFO', 'release failed: failing the job', { ...fields, jobId, failureType: type, failure: message });
  const command = new PutJobFailureResultCommand({ jobId, failureDetails: { type, message: clip(message, CODEPIPELINE_MESSAGE_LIMIT) } });
  await report(jobId, command, { ...fields, decision: 'failed' });
  return { result: 'failed', message };
}

export function report(
  jobId: string,
  command: PutJobSuccessResultCommand | PutJobFailureResultCommand,
  fields: Record<string, unknown>,
): Promise<void> {
  return sendJobResult(codePipeline, jobId, command, fields);
}

/**
 * `fn` over `items`, at most `limit` at once, results in order. After a rejection no new item starts; the calls in
 * flight end, then the first error is thrown.
 */
export async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array<R>(items.length);
  let next = 0;
  let failure: { error: unknown } | undefined;
  const worker = async (): Promise<void> => {
    while (failure === undefined && next < items.length) {
      const index = next++;
      try {
        results[index] = await fn(items[index]);
      } catch (error) {
        failure ??= { error };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  if (failure !== undefined) throw failure.error;
  return results;
}

export function label(fn: { readonly id: string; readonly functionName: string }): string {
  return `${fn.id} (${fn.functionName})`;
}
