/**
 * The serverless release controller: releases the new code of every function of a serverless API and shifts all
 * their `live` aliases together with AWS CodeDeploy, watched by per-release alarms on the new versions only; all roll
 * back together. A CodePipeline "Lambda invoke" action in the Release stage, polled with continuation tokens.
 *
 * Contract: reports every outcome to CodePipeline and never throws, except when that report fails (logged and
 * rethrown); the event (it carries artifact credentials) is never logged. The design, the release invariants and what
 * is unverified: ADR 0007 (docs/adr/0007-serverless-release-engine-first-deployment-drift.md). The phases live in
 * `serverless-release/`: `configuration`, `state` (the continuation token), `start`, `follow`, `rollback`, and
 * `job` (clients, reporting, shared helpers).
 */
import type { Context } from 'aws-lambda';
import { parseUserParameters, readConfig, releaseIdFor } from './serverless-release/configuration';
import { followRelease } from './serverless-release/follow';
import { fail, Job, JobOutcome, ServerlessReleaseDeps } from './serverless-release/job';
import { rollBack } from './serverless-release/rollback';
import { startRelease } from './serverless-release/start';
import { parseContinuationToken } from './serverless-release/state';
import { isCodePipelineEvent } from './shared/codepipeline-job';
import { defaultSleep, isObject, logError } from './shared/common';

// The controller's parts, for the tests and the construct side.
export * from './serverless-release/configuration';
export * from './serverless-release/state';
export { cloudWatch, codeDeploy, codePipeline, lambda } from './serverless-release/job';
export type { JobOutcome, ServerlessReleaseDeps } from './serverless-release/job';
export { releaseOfAlarm } from './serverless-release/start';

/**
 * Handles one CodePipeline job (see the file comment) and reports the outcome to CodePipeline. Rejects only when
 * the report itself fails; returns `undefined` for an event that is not a CodePipeline job (nothing to report to).
 */
export async function serverlessRelease(event: unknown, deps: ServerlessReleaseDeps = {}): Promise<JobOutcome | undefined> {
  if (!isCodePipelineEvent(event)) {
    logError('not a CodePipeline job event: nothing to do', undefined, { eventKeys: isObject(event) ? Object.keys(event) : typeof event });
    return undefined;
  }
  const cpJob = event['CodePipeline.job'];
  const jobId = cpJob.id;
  const now = deps.now ?? Date.now;
  const token = parseContinuationToken(cpJob.data?.continuationToken, now());

  const params = parseUserParameters(cpJob.data?.actionConfiguration?.configuration?.UserParameters);
  if (!params.ok) return fail(jobId, 'ConfigurationError', `invalid configuration: ${params.error}`, {});
  const config = readConfig(deps.env ?? process.env);
  if (!config.ok) return fail(jobId, 'ConfigurationError', `invalid configuration: ${config.error}`, {});
  const { prefix, pipeline, executionId } = params.value;

  if (token.kind === 'invalid') {
    return fail(jobId, 'JobFailed',
      `invalid continuation token (${token.error}): cannot follow the release; look for deployments still running in the CodeDeploy application `
      + `${config.value.applicationName} before releasing again`, { prefix });
  }
  const releaseId = token.kind === 'follow' ? token.state.releaseId : releaseIdFor(jobId, prefix);
  const job: Job = {
    jobId,
    config: config.value,
    prefix,
    releaseId,
    sleep: deps.sleep ?? defaultSleep,
    now,
    deadline: deps.deadline,
    fields: { jobId, releaseId, prefix },
    ...(pipeline && executionId ? { progress: { pipeline, executionId } } : {}),
  };
  if (token.kind === 'start') return startRelease(job);
  return token.state.phase === 'wait' ? followRelease(job, token.state) : rollBack(job, token.state);
}

/** Lambda entry point: `serverlessRelease` with the Lambda deadline. */
export async function handler(event: unknown, context?: Pick<Context, 'getRemainingTimeInMillis'>): Promise<JobOutcome | undefined> {
  const remaining = typeof context?.getRemainingTimeInMillis === 'function' ? context.getRemainingTimeInMillis() : undefined;
  return serverlessRelease(event, { deadline: remaining === undefined ? undefined : Date.now() + remaining });
}
