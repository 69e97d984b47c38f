/**
 * Records the image a release put into production, once Amazon ECS says the release is over.
 *
 * Runs as a CodePipeline "Lambda invoke" action right after the standard Amazon ECS deploy action, in the Release
 * stage of a pipeline that releases a Fargate service with ECS native blue/green deployments. CloudFormation reads
 * the SSM String parameter `IMAGE_PARAMETER_NAME` on every `cdk deploy`, so the parameter must always name the image
 * production runs: it is written as soon as THIS release's service deployment is `SUCCESSFUL` (and no newer one
 * succeeded after it), before anything else that could fail.
 *
 * Flow of one invocation:
 *
 * 1. Read the job: `UserParameters` is the JSON string `{"imageUri":"<uri>","pipelineExecutionId":"<id>"}` (the
 *    pipeline passes `#{codepipeline.PipelineExecutionId}`); `continuationToken`, when CodePipeline invokes the
 *    function again, is `{"polls":<n>,"startedAt":<ms>,"stopRequestedAt"?:<ms>}` written by an earlier invocation:
 *    `startedAt` is the first invocation's time, from which the wall-clock limits count.
 * 2. Find this release's service deployment. `codepipeline:ListActionExecutions` of the pipeline execution gives the
 *    start of the latest run of `DEPLOY_ACTION_NAME` in `RELEASE_STAGE_NAME`; `ecs:ListServiceDeployments` the
 *    deployments created since then (`CLOCK_SKEW_MS` earlier; up to `MAX_LIST_PAGES` pages), oldest first;
 *    `ecs:DescribeServiceRevisions` their target revisions' images in container `CONTAINER_NAME`. This release's
 *    deployment is the oldest of them whose target revision runs `imageUri` (the build's tag is unique). The newest
 *    deployment is NOT what counts: a `cdk deploy` refused during the release is newer, and rolls back to this one.
 *    - None yet: looked for again (`MISSING_GRACE_MS`), then the job fails; the parameter is unchanged.
 * 3. Its status (from the list):
 *    - `PENDING`, `IN_PROGRESS`: not finished. Sleep `POLL_DELAY_MS` (never past the Lambda deadline minus
 *      `REPORTING_MARGIN_MS`), then `PutJobSuccessResult` with a continuation token, so that CodePipeline invokes the
 *      function again. After `WAIT_LIMIT_MS` of wall-clock time the job asks ECS to roll the deployment back
 *      (`ecs:StopServiceDeployment`, `ROLLBACK`) and follows the rollback; after `HARD_LIMIT_MS` it fails, saying
 *      that production may run either image.
 *    - `ROLLBACK_REQUESTED`, `ROLLBACK_IN_PROGRESS`, `STOP_REQUESTED`: ECS is undoing the release, which has not
 *      finished: wait (within `HARD_LIMIT_MS`), so that "production keeps the previous image" is only said once true.
 *    - `ROLLBACK_SUCCESSFUL`, `ROLLBACK_FAILED`, `STOPPED`: the release did not reach production (or a newer
 *      deployment, named in the message, replaced it); the job fails, naming the status and ECS's `statusReason`.
 *      The parameter is unchanged.
 *    - `SUCCESSFUL`, and no deployment created after it is `SUCCESSFUL`: `ssm:PutParameter` (String, overwrite; a
 *      write that created the parameter is deleted again and fails the job, see `shared/state-parameter.ts`) at
 *      once, then the best-effort tag (step 4), then `PutJobSuccessResult` with the output variable `imageUri` and a
 *      summary ("production runs <image>, recorded in <parameter>; ..."). A newer deployment that succeeded after it
 *      means production runs that one: the job fails naming it, the parameter is unchanged.
 *    - any other status: the job fails.
 * 4. Released images get a second tag, `released-<tag>` (`RELEASED_TAG_PREFIX`), on the same digest, so that the
 *    repository's lifecycle rule can keep them apart from images that were only built (and a stage rollback still
 *    finds them). `imageUri` is `<registry>/<repository>:<tag>` (the repository may contain `/`; a digest reference
 *    is refused); its repository must be `REPOSITORY_NAME`, otherwise the job fails with a `ConfigurationError`
 *    before any call. `ecr:BatchGetImage` (the tag, accepting the Docker and OCI manifest and index media types, so
 *    the manifest comes back unconverted and keeps its digest) gives the manifest; `ecr:PutImage` puts it under the
 *    new tag; `ImageAlreadyExistsException` (a re-release, a stage rollback, a duplicate invocation) counts as done.
 *    The tag comes after the parameter and is best effort: when it fails the job still succeeds (production runs the
 *    image and the parameter says so), with the failure in the log and in the action's summary.
 * 5. A throttling or transient server error from CodePipeline, ECS or SSM counts as "not finished" (the next
 *    invocation checks the deployment again and writes); any other AWS error fails the job, naming the API and the
 *    error, and saying whether production runs the image.
 *
 * Duplicate and retried invocations are harmless: every step is idempotent (same parameter value, existing tag), and
 * a `PutJobSuccessResult` / `PutJobFailureResult` refused with `InvalidJobStateException` (the job already has a
 * result) is logged, not rethrown. Never throws, except when reporting the result fails otherwise: that is logged and
 * rethrown (CodePipeline then times the job out). The event is never logged: it carries temporary artifact credentials.
 *
 * References:
 * - CodePipeline User Guide, "Invoke an AWS Lambda function in a pipeline in CodePipeline"
 *   (actions-invoke-lambda-function.html) and "AWS Lambda invoke action reference" (action-reference-Lambda.html):
 *   the function must call `PutJobSuccessResult` or `PutJobFailureResult`; a success with a `continuationToken`
 *   makes CodePipeline invoke the function again with `data.continuationToken` (long-running actions).
 * - CodePipeline API Reference, `PutJobSuccessResult` (API_PutJobSuccessResult.html): "When the action is complete,
 *   no continuation token should be supplied"; `outputVariables` only without a continuation token. CodePipeline
 *   User Guide, "Quotas" (limits.html): a Lambda invoke action that keeps answering "in progress" fails after 24
 *   hours, and after 20 minutes without any answer. "Variables reference": `#{codepipeline.PipelineExecutionId}`.
 * - Amazon ECS API Reference: `ListServiceDeployments` (API_ListServiceDeployments.html, `createdAt` filter),
 *   `DescribeServiceRevisions` (API_DescribeServiceRevisions.html, `ServiceRevision.containerImages`),
 *   `StopServiceDeployment` (API_StopServiceDeployment.html); Developer Guide, "Stopping Amazon ECS service
 *   deployments" (stop-service-deployment.html): `ROLLBACK` from `PENDING` or `IN_PROGRESS`.
 * - Amazon ECR User Guide, "Retagging an image" (image-retag.html): `BatchGetImage` then `PutImage` with the
 *   manifest; Amazon ECR API Reference, `BatchGetImage` (`acceptedMediaTypes`) and `PutImage`
 *   (`ImageAlreadyExistsException`).
 *
 * Configuration (environment): `CLUSTER_NAME`, `SERVICE_NAME`, `CONTAINER_NAME`, `IMAGE_PARAMETER_NAME`,
 * `REPOSITORY_NAME`, `PIPELINE_NAME`, `RELEASE_STAGE_NAME`, `DEPLOY_ACTION_NAME`. IAM: `ecs:ListServiceDeployments`,
 * `ecs:DescribeServiceRevisions`, `ecs:StopServiceDeployment` on this service's deployments,
 * `codepipeline:ListActionExecutions` on the pipeline, `ecr:BatchGetImage` and `ecr:PutImage` on the repository,
 * `ssm:PutParameter` and `ssm:DeleteParameter` on the parameter, `codepipeline:PutJobSuccessResult`, `codepipeline:PutJobFailureResult`.
 */
import {
  CodePipelineClient,
  ListActionExecutionsCommand,
  PutJobFailureResultCommand,
  PutJobSuccessResultCommand,
} from '@aws-sdk/client-codepipeline';
import type { ActionExecutionDetail, FailureType } from '@aws-sdk/client-codepipeline';
import { BatchGetImageCommand, ECRClient, PutImageCommand } from '@aws-sdk/client-ecr';
import {
  DescribeServiceRevisionsCommand,
  ECSClient,
  ListServiceDeploymentsCommand,
  StopServiceDeploymentCommand,
} from '@aws-sdk/client-ecs';
import type { ServiceDeploymentBrief } from '@aws-sdk/client-ecs';
import { SSMClient } from '@aws-sdk/client-ssm';
import type { Context } from 'aws-lambda';
import { AwsCallError, awsCall, isAccessDenied } from './shared/aws-call';
import { isCodePipelineEvent, JobDeps, parseUserParametersObject, sendJobResult } from './shared/codepipeline-job';
import { clip, defaultSleep, describeError, describeJson, isObject, log, logError } from './shared/common';
import type { Parsed } from './shared/common';
import { isRetryable } from './shared/retryable';
import { overwriteStateParameter } from './shared/state-parameter';

// ---------------------------------------------------------------------------------------------------------------
// AWS clients: module scope, so that warm invocations reuse connections. ECS and SSM get few attempts: a throttled
// check is simply repeated at the next poll. Reporting to CodePipeline gets more room, as in the smoke test. Request
// timeouts keep a hung connection from running the function into its deadline without an answer.
// ---------------------------------------------------------------------------------------------------------------

const REQUEST_HANDLER = { connectionTimeout: 3_000, requestTimeout: 10_000 };

/** Exported for tests. */
export const ecs = new ECSClient({ maxAttempts: 2, requestHandler: REQUEST_HANDLER });
/** Exported for tests. */
export const ecr = new ECRClient({ maxAttempts: 2, requestHandler: REQUEST_HANDLER });
/** Exported for tests. */
export const ssm = new SSMClient({ maxAttempts: 2, requestHandler: REQUEST_HANDLER });
/** Exported for tests. */
export const codePipeline = new CodePipelineClient({ maxAttempts: 4, requestHandler: REQUEST_HANDLER });

// ---------------------------------------------------------------------------------------------------------------
// Limits
// ---------------------------------------------------------------------------------------------------------------

/** Pause before answering "not finished yet", so that CodePipeline does not invoke the function in a tight loop. */
export const POLL_DELAY_MS = 20_000;
/**
 * Wall-clock time, from the job's first invocation, after which a deployment of this release that is still running
 * is rolled back (`ecs:StopServiceDeployment`, `ROLLBACK`). The job starts after the ECS deploy action, so what is
 * left is at most the bake time (45 minutes at most) and the clean-up.
 */
export const WAIT_LIMIT_MS = 60 * 60_000;
/**
 * Wall-clock time, from the first invocation, after which the job fails whatever the deployment does: 30 minutes
 * for the rollback to finish. Far below CodePipeline's 24 hours for a Lambda invoke action that keeps answering
 * "in progress".
 */
export const HARD_LIMIT_MS = 90 * 60_000;
/** How long the job looks for this release's deployment before it concludes that there is none. */
export const MISSING_GRACE_MS = 3 * 60_000;
/**
 * Deployments created up to this long before the deploy action's start still count as created after it (the two
 * times come from the clocks of two services).
 */
export const CLOCK_SKEW_MS = 5_000;
/** Time kept back from the Lambda deadline to report to CodePipeline after the pause. */
export const REPORTING_MARGIN_MS = 5_000;
/** CodePipeline's limit for `failureDetails.message`. */
export const CODEPIPELINE_MESSAGE_LIMIT = 5_000;
/** Entries asked for per `ListServiceDeployments` page (the API's maximum). */
export const LIST_PAGE_SIZE = 100;
/** Pages of `ListServiceDeployments` and `ListActionExecutions` read at most per check. */
export const MAX_LIST_PAGES = 5;
/** Service revisions per `DescribeServiceRevisions` call (the API's maximum). */
export const DESCRIBE_BATCH_SIZE = 20;
/** CodePipeline's limit for `executionDetails.summary`. */
export const SUMMARY_LIMIT = 2_048;

/** Prefix of the second tag a released image gets: `released-<build tag>`. */
export const RELEASED_TAG_PREFIX = 'released-';
/** Manifest media types accepted from `ecr:BatchGetImage`: Docker and OCI, single-platform and multi-platform. */
export const MANIFEST_MEDIA_TYPES: readonly string[] = [
  'application/vnd.docker.distribution.manifest.v2+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.oci.image.index.v1+json',
];

/** Deployment states that mean "wait": not finished, and still on its way to production. */
const UNFINISHED_STATUSES: ReadonlySet<string> = new Set(['PENDING', 'IN_PROGRESS']);

/**
 * Deployment states that mean "wait" too: ECS is rolling the release back or stopping it, which has not finished, so
 * the job does not say yet where production ends up (invariant 1).
 */
const ENDING_STATUSES: ReadonlySet<string> = new Set(['ROLLBACK_REQUESTED', 'ROLLBACK_IN_PROGRESS', 'STOP_REQUESTED']);

/** Deployment states in which the release did not (and will not) reach production, with what that means. */
const ABANDONED_STATUSES: Readonly<Record<string, string>> = {
  ROLLBACK_SUCCESSFUL: 'ECS rolled the release back; production keeps the previous image',
  ROLLBACK_FAILED: 'ECS tried to roll the release back and the rollback failed; check the service before releasing again',
  STOPPED: 'the deployment was stopped before it completed; production keeps the previous image',
};

// ---------------------------------------------------------------------------------------------------------------
// Inputs
// ---------------------------------------------------------------------------------------------------------------

export type { Parsed } from './shared/common';

/** Where the release is and where it is recorded, from the environment. */
export interface RecordReleaseConfig {
  readonly clusterName: string;
  readonly serviceName: string;
  /** The application container of the task definition. */
  readonly containerName: string;
  /** The SSM String parameter that receives the image URI. */
  readonly imageParameterName: string;
  /** The ECR repository of the released images. */
  readonly repositoryName: string;
  /** The pipeline whose Release stage runs this job. */
  readonly pipelineName: string;
  /** The stage of the ECS deploy action. */
  readonly releaseStageName: string;
  /** The ECS deploy action that started this release's service deployment. */
  readonly deployActionName: string;
}

const ENV_NAMES = {
  clusterName: 'CLUSTER_NAME',
  serviceName: 'SERVICE_NAME',
  containerName: 'CONTAINER_NAME',
  imageParameterName: 'IMAGE_PARAMETER_NAME',
  repositoryName: 'REPOSITORY_NAME',
  pipelineName: 'PIPELINE_NAME',
  releaseStageName: 'RELEASE_STAGE_NAME',
  deployActionName: 'DEPLOY_ACTION_NAME',
} as const;

/** Reads the configuration; every variable is required. Never throws. */
export function readConfig(env: Record<string, string | undefined>): Parsed<RecordReleaseConfig> {
  const missing = Object.values(ENV_NAMES).filter((name) => (env[name] ?? '').trim() === '');
  if (missing.length > 0) return { ok: false, error: `environment variable(s) not set: ${missing.join(', ')}` };
  const value = Object.fromEntries(Object.entries(ENV_NAMES).map(([key, name]) => [key, env[name]!.trim()]));
  return { ok: true, value: value as unknown as RecordReleaseConfig };
}

/** The parts of an image URI `<registry>/<repository>:<tag>`. */
export interface ImageReference {
  readonly registry: string;
  readonly repository: string;
  readonly tag: string;
}

/**
 * Splits `<registry>/<repository>:<tag>`; the repository may contain `/`. A reference by digest (`@sha256:...`) or
 * without a tag is refused: the released tag is derived from the build's tag. Never throws.
 */
export function parseImageUri(imageUri: string): Parsed<ImageReference> {
  const expected = `imageUri must be <registry>/<repository>:<tag>, got ${describeJson(imageUri)}`;
  if (imageUri.includes('@')) return { ok: false, error: `${expected} (a digest reference has no tag to release)` };
  const slash = imageUri.indexOf('/');
  const colon = imageUri.lastIndexOf(':');
  if (slash <= 0 || colon < slash) return { ok: false, error: expected };
  const registry = imageUri.slice(0, slash);
  const repository = imageUri.slice(slash + 1, colon);
  const tag = imageUri.slice(colon + 1);
  if (repository === '' || repository.startsWith('/') || repository.endsWith('/') || tag === '') return { ok: false, error: expected };
  return { ok: true, value: { registry, repository, tag } };
}

/** What the pipeline tells the job about its release. */
export interface ReleaseParameters {
  /** The image the build pushed. */
  readonly imageUri: string;
  /** The pipeline execution whose deploy action started this release (`#{codepipeline.PipelineExecutionId}`). */
  readonly pipelineExecutionId: string;
}

const EXPECTED_PARAMETERS = '{"imageUri":"<image URI>","pipelineExecutionId":"<pipeline execution id>"}';

/**
 * Parses CodePipeline's `UserParameters`: a JSON object whose `imageUri` and `pipelineExecutionId` are non-empty
 * strings without whitespace. Other keys are ignored. Never throws.
 */
export function parseUserParameters(userParameters: unknown): Parsed<ReleaseParameters> {
  const object = parseUserParametersObject(userParameters, EXPECTED_PARAMETERS);
  if (!object.ok) return object;
  const parsed = object.value;
  const values: Record<string, string> = {};
  for (const key of ['imageUri', 'pipelineExecutionId']) {
    const value = parsed[key];
    if (typeof value !== 'string' || value.trim() === '') {
      return { ok: false, error: `UserParameters.${key} must be a non-empty string, got ${describeJson(value)}` };
    }
    if (/\s/.test(value)) {
      return { ok: false, error: `UserParameters.${key} must not contain whitespace, got ${describeJson(value)}` };
    }
    values[key] = value;
  }
  return { ok: true, value: { imageUri: values.imageUri, pipelineExecutionId: values.pipelineExecutionId } };
}

/** What earlier invocations of the same action execution passed on in the continuation token. */
export interface PollState {
  /** "Not finished yet" answers given so far (for the log). */
  readonly polls: number;
  /** When the first invocation ran (ms since the epoch), the start of the wall-clock limits; absent on the first. */
  readonly startedAt?: number;
  /** When this job asked ECS to roll the deployment back (ms since the epoch), after `WAIT_LIMIT_MS`. */
  readonly stopRequestedAt?: number;
}

/**
 * Reads the continuation token: `{"polls":<n>,"startedAt":<ms>,"stopRequestedAt"?:<ms>}`. No token: the first
 * invocation. A token this version cannot read (`valid: false`, logged by the caller) starts again at polls 0 and
 * the current time: the wall-clock limit then counts from this invocation, which CodePipeline's own 24 hours still
 * bound. A token of the previous version (`{"polls":<n>}`, no time) is valid and starts the clock now.
 */
export function parseContinuationToken(token: unknown): PollState & { readonly valid: boolean } {
  if (token === undefined || token === null || token === '') return { polls: 0, valid: true };
  if (typeof token !== 'string') return { polls: 0, valid: false };
  try {
    const parsed: unknown = JSON.parse(token);
    if (isObject(parsed) && isCount(parsed.polls) && optionalCount(parsed.startedAt) && optionalCount(parsed.stopRequestedAt)) {
      return {
        polls: parsed.polls,
        ...(parsed.startedAt === undefined ? {} : { startedAt: parsed.startedAt as number }),
        ...(parsed.stopRequestedAt === undefined ? {} : { stopRequestedAt: parsed.stopRequestedAt as number }),
        valid: true,
      };
    }
  } catch {
    // fall through
  }
  return { polls: 0, valid: false };
}

function isCount(value: unknown): value is number {
  return Number.isSafeInteger(value) && (value as number) >= 0;
}

function optionalCount(value: unknown): boolean {
  return value === undefined || isCount(value);
}

/** The token that makes CodePipeline invoke the function again with `state`. */
export function continuationToken(state: PollState): string {
  return JSON.stringify(state);
}

// ---------------------------------------------------------------------------------------------------------------
// AWS errors
// ---------------------------------------------------------------------------------------------------------------

/** `awsCall` naming the API only. */
function call<T>(api: string, send: () => Promise<T>): Promise<T> {
  return awsCall(api, send);
}

// ---------------------------------------------------------------------------------------------------------------
// The check
// ---------------------------------------------------------------------------------------------------------------

/** What one look at the service concludes. */
export type Verdict =
  /** Production runs the image: record it. */
  | { readonly kind: 'record'; readonly serviceDeploymentArn: string; readonly status: string }
  /**
   * Not finished, or not known now (throttled): look again later. `stoppable` when this release's deployment itself is
   * still `PENDING` / `IN_PROGRESS` (so it can be rolled back at the wait limit).
   */
  | { readonly kind: 'wait'; readonly reason: string; readonly serviceDeploymentArn?: string; readonly status?: string; readonly stoppable?: boolean }
  /** No deployment of this release listed (yet): look again for a short while, then fail. */
  | { readonly kind: 'missing'; readonly reason: string }
  /** Final: the job fails and the parameter is left alone. */
  | { readonly kind: 'fail'; readonly message: string; readonly type: FailureType; readonly serviceDeploymentArn?: string; readonly status?: string };

/** What the check needs to know about the release. */
interface Release {
  readonly imageUri: string;
  readonly pipelineExecutionId: string;
  /** Set once this job asked ECS to roll the deployment back. */
  readonly stopRequestedAt?: number;
}

function time(date: Date | undefined): number {
  const t = date instanceof Date ? date.getTime() : Number.NaN;
  return Number.isNaN(t) ? Number.NEGATIVE_INFINITY : t;
}

/** When the latest run of the deploy action in this pipeline execution started, or undefined when it has none. */
async function deployActionStart(config: RecordReleaseConfig, pipelineExecutionId: string): Promise<Date | undefined> {
  let latest: ActionExecutionDetail | undefined;
  let nextToken: string | undefined;
  for (let page = 0; page < MAX_LIST_PAGES; page++) {
    const response = await call('codepipeline:ListActionExecutions', () => codePipeline.send(new ListActionExecutionsCommand({
      pipelineName: config.pipelineName,
      filter: { pipelineExecutionId },
      maxResults: LIST_PAGE_SIZE,
      ...(nextToken === undefined ? {} : { nextToken }),
    })));
    for (const detail of response.actionExecutionDetails ?? []) {
      if (detail.stageName !== config.releaseStageName || detail.actionName !== config.deployActionName) continue;
      // A retried stage runs the action again in the same pipeline execution: the latest run counts.
      if (latest === undefined || time(detail.startTime) > time(latest.startTime)) latest = detail;
    }
    nextToken = response.nextToken || undefined;
    if (nextToken === undefined) break;
  }
  return latest !== undefined && time(latest.startTime) > Number.NEGATIVE_INFINITY ? latest.startTime : undefined;
}

/** The service's deployments created at or after `since` (ms), oldest first; entries without an ARN are skipped. */
async function deploymentsSince(config: RecordReleaseConfig, since: number): Promise<ServiceDeploymentBrief[]> {
  const all: ServiceDeploymentBrief[] = [];
  let nextToken: string | undefined;
  for (let page = 0; page < MAX_LIST_PAGES; page++) {
    const response = await call('ecs:ListServiceDeployments', () => ecs.send(new ListServiceDeploymentsCommand({
      cluster: config.clusterName,
      service: config.serviceName,
      createdAt: { after: new Date(since) },
      maxResults: LIST_PAGE_SIZE,
      ...(nextToken === undefined ? {} : { nextToken }),
    })));
    all.push(...(response.serviceDeployments ?? []));
    nextToken = response.nextToken || undefined;
    if (nextToken === undefined) break;
  }
  return all
    .filter((d) => Boolean(d.serviceDeploymentArn) && time(d.createdAt) >= since)
    .sort((a, b) => time(a.createdAt) - time(b.createdAt));
}

/** Image of `containerName` per service revision ARN (undefined: the revision has no such container). */
async function revisionImages(revisionArns: readonly string[], containerName: string): Promise<Map<string, string | undefined>> {
  const images = new Map<string, string | undefined>();
  for (let i = 0; i < revisionArns.length; i += DESCRIBE_BATCH_SIZE) {
    const batch = revisionArns.slice(i, i + DESCRIBE_BATCH_SIZE);
    const response = await call('ecs:DescribeServiceRevisions', () => ecs.send(new DescribeServiceRevisionsCommand({ serviceRevisionArns: batch })));
    for (const revision of response.serviceRevisions ?? []) {
      if (!revision.serviceRevisionArn) continue;
      images.set(revision.serviceRevisionArn, revision.containerImages?.find((c) => c.containerName === containerName)?.image);
    }
  }
  return images;
}

/**
 * This release's service deployment: of `deployments` (oldest first, all created since the deploy action started),
 * the oldest whose target revision runs `imageUri`. The build's tag is unique, so only this pipeline execution's
 * deploy action (or a retry of its stage, which restarts the action) deploys it after that time.
 */
export function findReleaseDeployment(
  deployments: readonly ServiceDeploymentBrief[],
  images: ReadonlyMap<string, string | undefined>,
  imageUri: string,
): ServiceDeploymentBrief | undefined {
  return deployments.find((d) => d.targetServiceRevisionArn !== undefined && images.get(d.targetServiceRevisionArn) === imageUri);
}

/** Looks at the service once and concludes. Never throws. */
export async function checkRelease(config: RecordReleaseConfig, release: Release): Promise<Verdict> {
  const unchanged = `the parameter ${config.imageParameterName} is unchanged`;
  const { imageUri, pipelineExecutionId } = release;
  let serviceDeploymentArn: string | undefined;
  let status: string | undefined;
  try {
    const deployStart = await deployActionStart(config, pipelineExecutionId);
    if (deployStart === undefined) {
      return {
        kind: 'fail',
        type: 'ConfigurationError',
        message: `pipeline ${config.pipelineName} execution ${pipelineExecutionId} has no run of action ${config.deployActionName} in stage `
          + `${config.releaseStageName} (codepipeline:ListActionExecutions): this job cannot tell which service deployment is its release; ${unchanged}`,
      };
    }
    const since = deployStart.getTime() - CLOCK_SKEW_MS;
    const deployments = await deploymentsSince(config, since);
    const revisionArns = [...new Set(deployments.map((d) => d.targetServiceRevisionArn).filter((arn): arn is string => Boolean(arn)))];
    const images = await revisionImages(revisionArns, config.containerName);
    const mine = findReleaseDeployment(deployments, images, imageUri);
    if (mine === undefined) {
      const others = deployments.map((d) => `${d.serviceDeploymentArn} (${images.get(d.targetServiceRevisionArn ?? '') ?? `no container ${config.containerName}`})`);
      return {
        kind: 'missing',
        reason: `no service deployment of ${imageUri} was created since action ${config.deployActionName} started at ${deployStart.toISOString()}`
          + ` (other deployments since then: ${others.join(', ') || 'none'})`,
      };
    }
    serviceDeploymentArn = mine.serviceDeploymentArn!;
    const arn = serviceDeploymentArn;
    status = mine.status ?? 'UNKNOWN';
    const reason = mine.statusReason ? `: ${mine.statusReason}` : '';
    const newer = deployments.slice(deployments.indexOf(mine) + 1);

    if (UNFINISHED_STATUSES.has(status)) {
      return { kind: 'wait', serviceDeploymentArn, status, stoppable: true, reason: `ECS deployment ${arn} is ${status}${reason}` };
    }
    if (ENDING_STATUSES.has(status)) {
      return { kind: 'wait', serviceDeploymentArn, status, reason: `ECS deployment ${arn} is ${status}${reason}: waiting for it to end` };
    }
    if (ABANDONED_STATUSES[status] !== undefined) {
      const latest = newer[newer.length - 1];
      const meaning = latest === undefined
        ? ABANDONED_STATUSES[status]
        : `the newer deployment ${latest.serviceDeploymentArn} (status ${latest.status ?? 'UNKNOWN'}) replaced it: production runs what that deployment leaves, not ${imageUri}`;
      const stopped = release.stopRequestedAt === undefined ? ''
        : `; this job asked ECS to roll it back at ${new Date(release.stopRequestedAt).toISOString()} because it had not finished within ${WAIT_LIMIT_MS / 60_000} minutes`;
      return {
        kind: 'fail',
        type: 'JobFailed',
        serviceDeploymentArn,
        status,
        message: `ECS deployment ${arn} of ${imageUri} ended with status ${status}${reason || ' (no status reason given)'}; ${meaning}${stopped}; ${unchanged}`,
      };
    }
    if (status !== 'SUCCESSFUL') {
      return { kind: 'fail', type: 'JobFailed', serviceDeploymentArn, status, message: `ECS deployment ${arn} has an unknown status ${JSON.stringify(status)}${reason}; ${unchanged}` };
    }
    const successor = newer.filter((d) => d.status === 'SUCCESSFUL').pop();
    if (successor !== undefined) {
      const image = images.get(successor.targetServiceRevisionArn ?? '');
      return {
        kind: 'fail',
        type: 'JobFailed',
        serviceDeploymentArn,
        status,
        message: `ECS deployment ${arn} of ${imageUri} succeeded, but the newer deployment ${successor.serviceDeploymentArn} succeeded after it: `
          + `production runs ${image ?? `service revision ${successor.targetServiceRevisionArn ?? '(unknown)'}`}, not ${imageUri}; ${unchanged}`,
      };
    }
    return { kind: 'record', serviceDeploymentArn, status };
  } catch (err) {
    return fromAwsError(err, { serviceDeploymentArn, status }, unchanged);
  }
}

/** A verdict other than "record": what is left when the release cannot be recorded now. */
type NotRecorded = Exclude<Verdict, { readonly kind: 'record' }>;

function fromAwsError(err: unknown, where: { serviceDeploymentArn?: string; status?: string }, unchanged: string): NotRecorded {
  const api = err instanceof AwsCallError ? err.api : 'the check (unexpected error)';
  const cause = err instanceof AwsCallError ? err.error : err;
  if (isRetryable(cause)) return { kind: 'wait', ...where, reason: `${api} failed with a transient error: ${describeError(cause)}` };
  return {
    kind: 'fail',
    type: isAccessDenied(cause) ? 'PermissionError' : 'JobFailed',
    ...where,
    message: `${api} failed: ${describeError(cause)}; ${unchanged}`,
  };
}

/**
 * Adds `releasedTag` to the image `repositoryName:tag` (step 5 of the file comment). Best effort: returns what
 * happened, for the log and the job's summary. Never throws.
 */
async function tagReleased(repositoryName: string, tag: string, releasedTag: string): Promise<{ readonly tagged: boolean; readonly detail: string }> {
  try {
    const response = await call('ecr:BatchGetImage', () => ecr.send(new BatchGetImageCommand({
      repositoryName,
      imageIds: [{ imageTag: tag }],
      acceptedMediaTypes: [...MANIFEST_MEDIA_TYPES],
    })));
    const image = response.images?.[0];
    const failures = response.failures ?? [];
    if (failures.length > 0 || image === undefined || !image.imageManifest) {
      const why = failures.map((f) => [f.failureCode, f.failureReason].filter(Boolean).join(': ') || 'no reason given');
      return { tagged: false, detail: `ecr:BatchGetImage found no image ${repositoryName}:${tag}${why.length > 0 ? ` (failures: ${why.join('; ')})` : ''}` };
    }
    try {
      await call('ecr:PutImage', () => ecr.send(new PutImageCommand({
        repositoryName,
        imageManifest: image.imageManifest,
        imageManifestMediaType: image.imageManifestMediaType,
        imageTag: releasedTag,
      })));
      return { tagged: true, detail: `tagged ${releasedTag}` };
    } catch (err) {
      if (err instanceof AwsCallError && (err.error as { name?: unknown } | undefined)?.name === 'ImageAlreadyExistsException') {
        return { tagged: true, detail: `already tagged ${releasedTag}` };
      }
      throw err;
    }
  } catch (err) {
    const api = err instanceof AwsCallError ? err.api : 'tagging (unexpected error)';
    return { tagged: false, detail: `${api} failed: ${describeError(err instanceof AwsCallError ? err.error : err)}` };
  }
}

// ---------------------------------------------------------------------------------------------------------------
// The job
// ---------------------------------------------------------------------------------------------------------------


/** What `recordRelease` needs from the outside world; each defaults to the real thing. */
export type RecordReleaseDeps = JobDeps;

/** How the job ended, as reported to CodePipeline. */
export type JobOutcome =
  | { readonly result: 'recorded'; readonly imageUri: string }
  | { readonly result: 'continue'; readonly polls: number }
  | { readonly result: 'failed'; readonly message: string };


/**
 * Handles one CodePipeline job (see the file comment) and reports the outcome to CodePipeline. Rejects only when
 * the report itself fails; returns `undefined` for an event that is not a CodePipeline job (nothing to report to).
 */
export async function recordRelease(event: unknown, deps: RecordReleaseDeps = {}): Promise<JobOutcome | undefined> {
  if (!isCodePipelineEvent(event)) {
    logError('not a CodePipeline job event: nothing to do', undefined, { eventKeys: isObject(event) ? Object.keys(event) : typeof event });
    return undefined;
  }
  const now = deps.now ?? Date.now;
  const job = event['CodePipeline.job'];
  const jobId = job.id;
  const token = parseContinuationToken(job.data?.continuationToken);
  const polls = token.polls;
  if (!token.valid) {
    log('WARN', 'invalid continuation token: counting from this invocation', { jobId, continuationToken: clip(String(job.data?.continuationToken), 200) });
  }
  const startedAt = token.startedAt ?? now();

  const params = parseUserParameters(job.data?.actionConfiguration?.configuration?.UserParameters);
  if (!params.ok) return fail(jobId, 'ConfigurationError', `invalid configuration: ${params.error}`, { polls });
  const config = readConfig(deps.env ?? process.env);
  if (!config.ok) return fail(jobId, 'ConfigurationError', `invalid configuration: ${config.error}`, { polls });
  const { imageUri, pipelineExecutionId } = params.value;
  const { clusterName: cluster, serviceName: service, imageParameterName: parameterName, repositoryName } = config.value;
  const reference = parseImageUri(imageUri);
  if (!reference.ok) return fail(jobId, 'ConfigurationError', `invalid configuration: ${reference.error}`, { polls });
  if (reference.value.repository !== repositoryName) {
    const message = `invalid configuration: imageUri ${imageUri} is in repository ${reference.value.repository}, not in REPOSITORY_NAME ${repositoryName}`;
    return fail(jobId, 'ConfigurationError', message, { polls });
  }
  const releasedTag = `${RELEASED_TAG_PREFIX}${reference.value.tag}`;
  const fields = { jobId, cluster, service, imageUri, pipelineExecutionId, polls };
  const unchanged = `the parameter ${parameterName} is unchanged`;

  let verdict = await checkRelease(config.value, { imageUri, pipelineExecutionId, stopRequestedAt: token.stopRequestedAt });
  if (verdict.kind === 'record') {
    // Production runs the image: the record follows at once, before anything that may fail for other reasons.
    try {
      await call('ssm:PutParameter', () => overwriteStateParameter(ssm, parameterName, imageUri));
    } catch (err) {
      verdict = fromAwsError(err, { serviceDeploymentArn: verdict.serviceDeploymentArn, status: verdict.status },
        `production runs ${imageUri}, but ${unchanged}`);
    }
  }
  const elapsedMs = now() - startedAt;

  switch (verdict.kind) {
    case 'record': {
      const where = { serviceDeploymentArn: verdict.serviceDeploymentArn, status: verdict.status };
      const recorded = `production runs ${imageUri}, recorded in ${parameterName}`;
      // Best effort: the released tag keeps the image from the lifecycle rule (for a later stage rollback).
      const tag = await tagReleased(repositoryName, reference.value.tag, releasedTag);
      const summary = tag.tagged ? `${recorded}; ${tag.detail}` : `${recorded}; the image is not tagged ${releasedTag} (${tag.detail}): tag it by hand to keep it from the lifecycle rule`;
      log(tag.tagged ? 'INFO' : 'WARN', 'release recorded: production runs the image', { ...fields, ...where, parameterName, repositoryName, releasedTag, tagged: tag.tagged, tag: tag.detail });
      await report(jobId, new PutJobSuccessResultCommand({
        jobId,
        outputVariables: { imageUri },
        executionDetails: { summary: clip(summary, SUMMARY_LIMIT) },
      }), { ...fields, decision: 'recorded', summary: recorded });
      return { result: 'recorded', imageUri };
    }
    case 'fail':
      return fail(jobId, verdict.type, verdict.message, { ...fields, serviceDeploymentArn: verdict.serviceDeploymentArn, status: verdict.status });
    case 'missing':
      if (elapsedMs >= MISSING_GRACE_MS) {
        return fail(jobId, 'JobFailed', `${verdict.reason}; production does not run ${imageUri} through this release; ${unchanged}`, { ...fields, elapsedMs });
      }
      return keepWaiting(jobId, { polls, startedAt, stopRequestedAt: token.stopRequestedAt }, verdict.reason, { ...fields, elapsedMs }, deps);
    case 'wait': {
      const where = { serviceDeploymentArn: verdict.serviceDeploymentArn, status: verdict.status };
      let stopRequestedAt = token.stopRequestedAt;
      if (elapsedMs >= HARD_LIMIT_MS) {
        const stop = stopRequestedAt === undefined ? '' : `; this job asked ECS to roll it back at ${new Date(stopRequestedAt).toISOString()}`;
        const message = `the ECS deployment did not finish in time: still not finished after ${Math.floor(elapsedMs / 60_000)} minutes `
          + `(${verdict.reason})${stop}; production may run either image: check the service before releasing again; ${unchanged}`;
        return fail(jobId, 'JobFailed', message, { ...fields, ...where, elapsedMs });
      }
      if (verdict.stoppable === true && stopRequestedAt === undefined && elapsedMs >= WAIT_LIMIT_MS) {
        // Waiting longer could let production move to the image after this job gave up, with the parameter on the old
        // one: ECS rolls the deployment back instead, and the next polls follow the rollback to its end.
        const arn = verdict.serviceDeploymentArn!;
        try {
          await call('ecs:StopServiceDeployment', () => ecs.send(new StopServiceDeploymentCommand({ serviceDeploymentArn: arn, stopType: 'ROLLBACK' })));
          stopRequestedAt = now();
          log('WARN', 'release not finished within the wait limit: asked ECS to roll it back', { ...fields, ...where, elapsedMs, waitLimitMs: WAIT_LIMIT_MS });
        } catch (err) {
          // Tried again at the next poll; the hard limit still ends the wait.
          logError('could not ask ECS to roll the release back: trying again at the next poll', err instanceof AwsCallError ? err.error : err, { ...fields, ...where });
        }
      }
      return keepWaiting(jobId, { polls, startedAt, stopRequestedAt }, verdict.reason, { ...fields, ...where, elapsedMs }, deps);
    }
  }
}

/** Pauses, then answers "not finished yet" with the state for the next invocation. */
async function keepWaiting(
  jobId: string,
  state: PollState,
  reason: string,
  fields: Record<string, unknown>,
  deps: RecordReleaseDeps,
): Promise<JobOutcome> {
  const next: PollState = { ...state, polls: state.polls + 1 };
  const delayMs = pauseMs(deps);
  log('INFO', 'release not finished: checking again later', { ...fields, reason, nextPolls: next.polls, delayMs });
  await (deps.sleep ?? defaultSleep)(delayMs);
  await report(jobId, new PutJobSuccessResultCommand({ jobId, continuationToken: continuationToken(next) }), { ...fields, decision: 'continue' });
  return { result: 'continue', polls: next.polls };
}

/** The pause before a "not finished" answer: `POLL_DELAY_MS`, cut so the report still fits before the deadline. */
function pauseMs(deps: RecordReleaseDeps): number {
  if (deps.deadline === undefined) return POLL_DELAY_MS;
  const left = deps.deadline - (deps.now ?? Date.now)() - REPORTING_MARGIN_MS;
  return Math.max(0, Math.min(POLL_DELAY_MS, Math.floor(left)));
}

async function fail(jobId: string, type: FailureType, message: string, fields: Record<string, unknown>): Promise<JobOutcome> {
  log('INFO', 'release not recorded: failing the job', { ...fields, jobId, failureType: type, failure: message });
  const command = new PutJobFailureResultCommand({ jobId, failureDetails: { type, message: clip(message, CODEPIPELINE_MESSAGE_LIMIT) } });
  await report(jobId, command, { decision: 'failed' });
  return { result: 'failed', message };
}

/** Sends the job's result; a duplicate invocation whose twin reported first is done, not an error. */
function report(jobId: string, command: PutJobSuccessResultCommand | PutJobFailureResultCommand, fields: Record<string, unknown>): Promise<void> {
  return sendJobResult(codePipeline, jobId, command, fields, { duplicateIsDone: true });
}

/** Lambda entry point: `recordRelease` with the Lambda deadline. */
export async function handler(event: unknown, context?: Pick<Context, 'getRemainingTimeInMillis'>): Promise<JobOutcome | undefined> {
  const remaining = typeof context?.getRemainingTimeInMillis === 'function' ? context.getRemainingTimeInMillis() : undefined;
  return recordRelease(event, { deadline: remaining === undefined ? undefined : Date.now() + remaining });
}
