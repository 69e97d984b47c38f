/**
 * Records the image a release put into production, once Amazon ECS says the release is over.
 *
 * Runs as a CodePipeline "Lambda invoke" action right after the standard Amazon ECS deploy action, in the Release
 * stage of a pipeline that releases a Fargate service with ECS native blue/green deployments. CloudFormation reads
 * the SSM String parameter `IMAGE_PARAMETER_NAME` on every `cdk deploy`, so the parameter must only ever name an
 * image that production really runs: it is written only when the newest service deployment is `SUCCESSFUL` *and*
 * its target revision runs, in container `CONTAINER_NAME`, exactly the image this pipeline execution built.
 *
 * Flow of one invocation:
 *
 * 1. Read the job: `UserParameters` is the JSON string `{"imageUri":"<uri>"}`; `continuationToken`, when CodePipeline
 *    invokes the function again, is the JSON string `{"polls":<n>}` written by an earlier invocation.
 * 2. `ListServiceDeployments` (cluster, service) and pick the newest deployment by `createdAt`. The API reference
 *    does not document an order, so the entries are sorted here; further pages (`nextToken`) are read, up to
 *    `MAX_LIST_PAGES` pages, only when the first page does not hold them all.
 * 3. `DescribeServiceDeployments` for that deployment: `status`, `statusReason`, `targetServiceRevision.arn`.
 *    - `PENDING`, `IN_PROGRESS`: not finished. Sleep `POLL_DELAY_MS` (never past the Lambda deadline minus
 *      `REPORTING_MARGIN_MS`), then `PutJobSuccessResult` with the continuation token `{"polls":n+1}`, so that
 *      CodePipeline invokes the function again; after `MAX_POLLS` such answers the job fails instead.
 *    - `ROLLBACK_*`, `STOP_REQUESTED`, `STOPPED`: the release did not reach production; the job fails, naming the
 *      status and ECS's `statusReason`. The parameter is unchanged.
 *    - `SUCCESSFUL`: `DescribeServiceRevisions` for the target revision. If container `CONTAINER_NAME` runs
 *      `imageUri`: tag the image as released (step 4), then `PutParameter` (String, overwrite), then
 *      `PutJobSuccessResult` with the output variable `imageUri`. Otherwise the job fails and the parameter is
 *      unchanged.
 *    - any other status: the job fails.
 * 4. Released images get a second tag, `released-<tag>` (`RELEASED_TAG_PREFIX`), on the same digest, so that the
 *    repository's lifecycle rule can keep them apart from images that were only built (and a stage rollback still
 *    finds them). `imageUri` is `<registry>/<repository>:<tag>` (the repository may contain `/`; a digest reference
 *    is refused); its repository must be `REPOSITORY_NAME`, otherwise the job fails with a `ConfigurationError`
 *    before any call. `ecr:BatchGetImage` (the tag, accepting the Docker and OCI manifest and index media types, so
 *    the manifest comes back unconverted and keeps its digest) gives the manifest and its media type; no image (a
 *    `failures` entry or an empty list) fails the job. `ecr:PutImage` puts the same manifest under the new tag.
 *    `ImageAlreadyExistsException` (a re-release, or a stage rollback to an older image) counts as done. The
 *    repository's tags are immutable, which forbids moving a tag but allows a new tag on an existing digest.
 * 5. A throttling or transient server error from ECS, ECR or SSM counts as "not finished" (one more poll, within
 *    `MAX_POLLS`; the next invocation checks the deployment again, then tags and writes); any other AWS error fails
 *    the job, naming the API and the error.
 *
 * Never throws, except when `PutJobSuccessResult` / `PutJobFailureResult` itself fails: that is logged and rethrown
 * (CodePipeline then times the job out). The event is never logged: it carries temporary artifact credentials.
 *
 * References:
 * - CodePipeline User Guide, "Invoke an AWS Lambda function in a pipeline in CodePipeline"
 *   (actions-invoke-lambda-function.html) and "AWS Lambda invoke action reference" (action-reference-Lambda.html):
 *   the function must call `PutJobSuccessResult` or `PutJobFailureResult`; a success with a `continuationToken`
 *   makes CodePipeline invoke the function again with `data.continuationToken` (long-running actions).
 * - CodePipeline API Reference, `PutJobSuccessResult` (API_PutJobSuccessResult.html): "When the action is complete,
 *   no continuation token should be supplied"; `outputVariables` only without a continuation token. CodePipeline
 *   User Guide, "Quotas" (limits.html): a Lambda invoke action that keeps answering "in progress" fails after 24 hours.
 * - Amazon ECS API Reference: `ListServiceDeployments` (API_ListServiceDeployments.html),
 *   `DescribeServiceDeployments` (API_DescribeServiceDeployments.html, `ServiceDeployment.status` values),
 *   `DescribeServiceRevisions` (API_DescribeServiceRevisions.html, `ServiceRevision.containerImages`).
 * - Amazon ECR User Guide, "Retagging an image" (image-retag.html): `BatchGetImage` then `PutImage` with the
 *   manifest; Amazon ECR API Reference, `BatchGetImage` (`acceptedMediaTypes`) and `PutImage`
 *   (`ImageAlreadyExistsException`).
 *
 * Configuration (environment): `CLUSTER_NAME`, `SERVICE_NAME`, `CONTAINER_NAME`, `IMAGE_PARAMETER_NAME`,
 * `REPOSITORY_NAME`. IAM: `ecs:ListServiceDeployments`, `ecs:DescribeServiceDeployments`,
 * `ecs:DescribeServiceRevisions`, `ecr:BatchGetImage` and `ecr:PutImage` on the repository, `ssm:PutParameter`,
 * `codepipeline:PutJobSuccessResult`, `codepipeline:PutJobFailureResult`.
 */
import { CodePipelineClient, PutJobFailureResultCommand, PutJobSuccessResultCommand } from '@aws-sdk/client-codepipeline';
import type { FailureType } from '@aws-sdk/client-codepipeline';
import { BatchGetImageCommand, ECRClient, PutImageCommand } from '@aws-sdk/client-ecr';
import {
  DescribeServiceDeploymentsCommand,
  DescribeServiceRevisionsCommand,
  ECSClient,
  ListServiceDeploymentsCommand,
} from '@aws-sdk/client-ecs';
import type { ServiceDeploymentBrief } from '@aws-sdk/client-ecs';
import { PutParameterCommand, SSMClient } from '@aws-sdk/client-ssm';
import type { Context } from 'aws-lambda';
import { isCodePipelineEvent, JobDeps } from './shared/codepipeline-job';
import { clip, defaultSleep, describeError, describeJson, errorMessage, isObject, log, logError } from './shared/common';
import { isThrottling } from './shared/retryable';

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
/** How many "not finished yet" answers in all before the job fails: 150 × (20 s + CodePipeline's delay) ≈ 50+ min. */
export const MAX_POLLS = 150;
/** Time kept back from the Lambda deadline to report to CodePipeline after the pause. */
export const REPORTING_MARGIN_MS = 5_000;
/** CodePipeline's limit for `failureDetails.message`. */
export const CODEPIPELINE_MESSAGE_LIMIT = 5_000;
/** Entries asked for per `ListServiceDeployments` page (the API's maximum). */
export const LIST_PAGE_SIZE = 100;
/** Pages of `ListServiceDeployments` read at most per check. */
export const MAX_LIST_PAGES = 5;

/** Prefix of the second tag a released image gets: `released-<build tag>`. */
export const RELEASED_TAG_PREFIX = 'released-';
/** Manifest media types accepted from `ecr:BatchGetImage`: Docker and OCI, single-platform and multi-platform. */
export const MANIFEST_MEDIA_TYPES: readonly string[] = [
  'application/vnd.docker.distribution.manifest.v2+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.oci.image.index.v1+json',
];

/** Deployment states that mean "wait". */
const UNFINISHED_STATUSES: ReadonlySet<string> = new Set(['PENDING', 'IN_PROGRESS']);

/** Deployment states in which the release did not (and will not) reach production, with what that means. */
const ABANDONED_STATUSES: Readonly<Record<string, string>> = {
  ROLLBACK_REQUESTED: 'ECS is rolling the release back; production keeps the previous image',
  ROLLBACK_IN_PROGRESS: 'ECS is rolling the release back; production keeps the previous image',
  ROLLBACK_SUCCESSFUL: 'ECS rolled the release back; production keeps the previous image',
  ROLLBACK_FAILED: 'ECS tried to roll the release back and the rollback failed; check the service before releasing again',
  STOP_REQUESTED: 'the deployment is being stopped before it completed; production keeps the previous image',
  STOPPED: 'the deployment was stopped before it completed; production keeps the previous image',
};

// ---------------------------------------------------------------------------------------------------------------
// Inputs
// ---------------------------------------------------------------------------------------------------------------

export type Parsed<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly error: string };

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
}

const ENV_NAMES = {
  clusterName: 'CLUSTER_NAME',
  serviceName: 'SERVICE_NAME',
  containerName: 'CONTAINER_NAME',
  imageParameterName: 'IMAGE_PARAMETER_NAME',
  repositoryName: 'REPOSITORY_NAME',
} as const;

/** Reads the configuration; every variable is required. Never throws. */
export function readConfig(env: Record<string, string | undefined>): Parsed<RecordReleaseConfig> {
  const missing = Object.values(ENV_NAMES).filter((name) => (env[name] ?? '').trim() === '');
  if (missing.length > 0) return { ok: false, error: `environment variable(s) not set: ${missing.join(', ')}` };
  return {
    ok: true,
    value: {
      clusterName: env[ENV_NAMES.clusterName]!.trim(),
      serviceName: env[ENV_NAMES.serviceName]!.trim(),
      containerName: env[ENV_NAMES.containerName]!.trim(),
      imageParameterName: env[ENV_NAMES.imageParameterName]!.trim(),
      repositoryName: env[ENV_NAMES.repositoryName]!.trim(),
    },
  };
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

/**
 * Parses CodePipeline's `UserParameters`: a JSON object whose `imageUri` is a non-empty string without whitespace.
 * Other keys are ignored. Never throws.
 */
export function parseUserParameters(userParameters: unknown): Parsed<{ readonly imageUri: string }> {
  if (userParameters === undefined || userParameters === null || userParameters === '') {
    return { ok: false, error: 'UserParameters is missing: expected {"imageUri":"<image URI>"}' };
  }
  if (typeof userParameters !== 'string') {
    return { ok: false, error: `UserParameters must be a string of JSON, got ${describeJson(userParameters)}` };
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(userParameters);
  } catch (err) {
    return { ok: false, error: `UserParameters is not valid JSON (${errorMessage(err)}): ${JSON.stringify(clip(userParameters, 200))}` };
  }
  if (!isObject(parsed)) {
    return { ok: false, error: `UserParameters must be a JSON object like {"imageUri":"<image URI>"}, got ${describeJson(parsed)}` };
  }
  const imageUri = parsed.imageUri;
  if (typeof imageUri !== 'string' || imageUri.trim() === '') {
    return { ok: false, error: `UserParameters.imageUri must be a non-empty string, got ${describeJson(imageUri)}` };
  }
  if (/\s/.test(imageUri)) {
    return { ok: false, error: `UserParameters.imageUri must not contain whitespace, got ${describeJson(imageUri)}` };
  }
  return { ok: true, value: { imageUri } };
}

/**
 * Reads how many "not finished yet" answers earlier invocations gave, from the continuation token they wrote.
 * No token: 0 (first invocation). A token that is not `{"polls":<non-negative integer>}` cannot come from this
 * function's current version; it is also read as 0 (`valid: false`, so the caller can log it) rather than failing
 * the release: the next token is valid again, so `MAX_POLLS` still bounds the wait (and CodePipeline's 24 hours
 * bound it in any case).
 */
export function parseContinuationToken(token: unknown): { readonly polls: number; readonly valid: boolean } {
  if (token === undefined || token === null || token === '') return { polls: 0, valid: true };
  if (typeof token !== 'string') return { polls: 0, valid: false };
  try {
    const parsed: unknown = JSON.parse(token);
    if (isObject(parsed) && Number.isSafeInteger(parsed.polls) && (parsed.polls as number) >= 0) {
      return { polls: parsed.polls as number, valid: true };
    }
  } catch {
    // fall through
  }
  return { polls: 0, valid: false };
}

/** The token that makes CodePipeline invoke the function again, counting `polls` "not finished yet" answers. */
export function continuationToken(polls: number): string {
  return JSON.stringify({ polls });
}

// ---------------------------------------------------------------------------------------------------------------
// AWS errors
// ---------------------------------------------------------------------------------------------------------------

export { isThrottling } from './shared/retryable';

/** An AWS call that failed, with the API it was. */
class AwsCallError extends Error {
  constructor(readonly api: string, readonly error: unknown) {
    super(`${api} failed: ${describeError(error)}`);
    this.name = 'AwsCallError';
  }
}

async function call<T>(api: string, send: () => Promise<T>): Promise<T> {
  try {
    return await send();
  } catch (err) {
    throw new AwsCallError(api, err);
  }
}

function isAccessDenied(err: unknown): boolean {
  const name = (err as { name?: unknown } | undefined)?.name;
  return typeof name === 'string' && /AccessDenied|UnauthorizedOperation|NotAuthorized/i.test(name);
}

// ---------------------------------------------------------------------------------------------------------------
// The check
// ---------------------------------------------------------------------------------------------------------------

/** What one look at the service concludes. */
export type Verdict =
  /** Production runs the image: record it. */
  | { readonly kind: 'record'; readonly serviceDeploymentArn: string; readonly status: string }
  /** Not finished, or not known now (throttled): look again later. */
  | { readonly kind: 'wait'; readonly reason: string; readonly serviceDeploymentArn?: string; readonly status?: string }
  /** Final: the job fails and the parameter is left alone. */
  | { readonly kind: 'fail'; readonly message: string; readonly type: FailureType; readonly serviceDeploymentArn?: string; readonly status?: string };

/** The newest entry by `createdAt`; entries without an ARN are skipped, entries without a date count as oldest. */
export function pickNewest(deployments: readonly ServiceDeploymentBrief[]): ServiceDeploymentBrief | undefined {
  let newest: ServiceDeploymentBrief | undefined;
  for (const deployment of deployments) {
    if (!deployment.serviceDeploymentArn) continue;
    if (newest === undefined || time(deployment.createdAt) > time(newest.createdAt)) newest = deployment;
  }
  return newest;
}

function time(date: Date | undefined): number {
  const t = date instanceof Date ? date.getTime() : Number.NaN;
  return Number.isNaN(t) ? Number.NEGATIVE_INFINITY : t;
}

async function listDeployments(config: RecordReleaseConfig): Promise<ServiceDeploymentBrief[]> {
  const all: ServiceDeploymentBrief[] = [];
  let nextToken: string | undefined;
  for (let page = 0; page < MAX_LIST_PAGES; page++) {
    const response = await call('ecs:ListServiceDeployments', () => ecs.send(new ListServiceDeploymentsCommand({
      cluster: config.clusterName,
      service: config.serviceName,
      maxResults: LIST_PAGE_SIZE,
      ...(nextToken === undefined ? {} : { nextToken }),
    })));
    all.push(...(response.serviceDeployments ?? []));
    nextToken = response.nextToken || undefined;
    if (nextToken === undefined) break;
  }
  return all;
}

/** Looks at the service once and concludes. Never throws. */
export async function checkRelease(config: RecordReleaseConfig, imageUri: string): Promise<Verdict> {
  const unchanged = `the parameter ${config.imageParameterName} is unchanged`;
  let serviceDeploymentArn: string | undefined;
  let status: string | undefined;
  try {
    const newest = pickNewest(await listDeployments(config));
    if (newest === undefined) {
      return {
        kind: 'fail',
        type: 'JobFailed',
        message: `no deployment found for service ${config.serviceName} in cluster ${config.clusterName} (ecs:ListServiceDeployments returned none); ${unchanged}`,
      };
    }
    serviceDeploymentArn = newest.serviceDeploymentArn!;
    const arn = serviceDeploymentArn;

    const described = await call('ecs:DescribeServiceDeployments', () => ecs.send(new DescribeServiceDeploymentsCommand({
      serviceDeploymentArns: [arn],
    })));
    const deployment = described.serviceDeployments?.find((d) => d.serviceDeploymentArn === arn) ?? described.serviceDeployments?.[0];
    if (deployment === undefined) {
      return { kind: 'fail', type: 'JobFailed', serviceDeploymentArn, message: `ecs:DescribeServiceDeployments did not describe ${arn}${describeFailures(described.failures)}; ${unchanged}` };
    }
    status = deployment.status ?? 'UNKNOWN';
    const reason = deployment.statusReason ? `: ${deployment.statusReason}` : '';

    if (UNFINISHED_STATUSES.has(status)) {
      return { kind: 'wait', serviceDeploymentArn, status, reason: `ECS deployment ${arn} is ${status}${reason}` };
    }
    if (ABANDONED_STATUSES[status] !== undefined) {
      return {
        kind: 'fail',
        type: 'JobFailed',
        serviceDeploymentArn,
        status,
        message: `ECS deployment ${arn} ended with status ${status}${reason || ' (no status reason given)'}; ${ABANDONED_STATUSES[status]}; ${unchanged}`,
      };
    }
    if (status !== 'SUCCESSFUL') {
      return { kind: 'fail', type: 'JobFailed', serviceDeploymentArn, status, message: `ECS deployment ${arn} has an unknown status ${JSON.stringify(status)}${reason}; ${unchanged}` };
    }

    const revisionArn = deployment.targetServiceRevision?.arn;
    if (!revisionArn) {
      return { kind: 'fail', type: 'JobFailed', serviceDeploymentArn, status, message: `ECS deployment ${arn} is SUCCESSFUL but names no target service revision; ${unchanged}` };
    }
    const revisions = await call('ecs:DescribeServiceRevisions', () => ecs.send(new DescribeServiceRevisionsCommand({
      serviceRevisionArns: [revisionArn],
    })));
    const revision = revisions.serviceRevisions?.find((r) => r.serviceRevisionArn === revisionArn) ?? revisions.serviceRevisions?.[0];
    if (revision === undefined) {
      return { kind: 'fail', type: 'JobFailed', serviceDeploymentArn, status, message: `ecs:DescribeServiceRevisions did not describe ${revisionArn}${describeFailures(revisions.failures)}; ${unchanged}` };
    }
    const images = revision.containerImages ?? [];
    const container = images.find((image) => image.containerName === config.containerName);
    if (container === undefined) {
      const names = images.map((image) => image.containerName).filter((name) => name !== undefined);
      return {
        kind: 'fail',
        type: 'ConfigurationError',
        serviceDeploymentArn,
        status,
        message: `service revision ${revisionArn} has no container named ${config.containerName} (containers: ${names.join(', ') || 'none'}); ${unchanged}`,
      };
    }
    if (container.image !== imageUri) {
      return {
        kind: 'fail',
        type: 'JobFailed',
        serviceDeploymentArn,
        status,
        message: `the newest successful deployment (${arn}) runs ${container.image ?? '(no image reported)'}, not ${imageUri}; ${unchanged}`,
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
  if (isThrottling(cause)) return { kind: 'wait', ...where, reason: `${api} failed with a transient error: ${describeError(cause)}` };
  return {
    kind: 'fail',
    type: isAccessDenied(cause) ? 'PermissionError' : 'JobFailed',
    ...where,
    message: `${api} failed: ${describeError(cause)}; ${unchanged}`,
  };
}

/** How the released tag was put: `alreadyTagged` when the image had it (re-release, stage rollback). */
interface TagOutcome {
  readonly alreadyTagged: boolean;
}

/**
 * Adds `releasedTag` to the image `repositoryName:tag` (step 4 of the file comment): the outcome, or the verdict
 * (`fail`, or `wait` after a transient error) that replaces "record". Never throws.
 */
async function tagReleased(
  repositoryName: string,
  tag: string,
  releasedTag: string,
  unchanged: string,
): Promise<TagOutcome | NotRecorded> {
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
      return {
        kind: 'fail',
        type: 'JobFailed',
        message: `ecr:BatchGetImage found no image ${repositoryName}:${tag}${why.length > 0 ? ` (failures: ${why.join('; ')})` : ''}; ${unchanged}`,
      };
    }
    const manifest = image.imageManifest;
    try {
      await call('ecr:PutImage', () => ecr.send(new PutImageCommand({
        repositoryName,
        imageManifest: manifest,
        imageManifestMediaType: image.imageManifestMediaType,
        imageTag: releasedTag,
      })));
      return { alreadyTagged: false };
    } catch (err) {
      if (err instanceof AwsCallError && (err.error as { name?: unknown } | undefined)?.name === 'ImageAlreadyExistsException') {
        return { alreadyTagged: true };
      }
      throw err;
    }
  } catch (err) {
    return fromAwsError(err, {}, unchanged);
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
  const job = event['CodePipeline.job'];
  const jobId = job.id;
  const token = parseContinuationToken(job.data?.continuationToken);
  const polls = token.polls;
  if (!token.valid) {
    log('WARN', 'invalid continuation token: counting polls from 0', { jobId, continuationToken: clip(String(job.data?.continuationToken), 200) });
  }

  const params = parseUserParameters(job.data?.actionConfiguration?.configuration?.UserParameters);
  if (!params.ok) return fail(jobId, 'ConfigurationError', `invalid configuration: ${params.error}`, { polls });
  const config = readConfig(deps.env ?? process.env);
  if (!config.ok) return fail(jobId, 'ConfigurationError', `invalid configuration: ${config.error}`, { polls });
  const { imageUri } = params.value;
  const { clusterName: cluster, serviceName: service, imageParameterName: parameterName, repositoryName } = config.value;
  const reference = parseImageUri(imageUri);
  if (!reference.ok) return fail(jobId, 'ConfigurationError', `invalid configuration: ${reference.error}`, { polls });
  if (reference.value.repository !== repositoryName) {
    const message = `invalid configuration: imageUri ${imageUri} is in repository ${reference.value.repository}, not in REPOSITORY_NAME ${repositoryName}`;
    return fail(jobId, 'ConfigurationError', message, { polls });
  }
  const releasedTag = `${RELEASED_TAG_PREFIX}${reference.value.tag}`;
  const fields = { jobId, cluster, service, imageUri, polls };

  let verdict = await checkRelease(config.value, imageUri);
  let tagged: TagOutcome | undefined;
  if (verdict.kind === 'record') {
    const outcome = await tagReleased(repositoryName, reference.value.tag, releasedTag, `the parameter ${parameterName} is unchanged`);
    if ('kind' in outcome) verdict = { ...outcome, serviceDeploymentArn: verdict.serviceDeploymentArn, status: verdict.status };
    else tagged = outcome;
  }
  if (verdict.kind === 'record') {
    try {
      await call('ssm:PutParameter', () => ssm.send(new PutParameterCommand({ Name: parameterName, Value: imageUri, Type: 'String', Overwrite: true })));
    } catch (err) {
      verdict = fromAwsError(err, { serviceDeploymentArn: verdict.serviceDeploymentArn, status: verdict.status }, `the parameter ${parameterName} is unchanged`);
    }
  }

  const where = { serviceDeploymentArn: verdict.serviceDeploymentArn, status: verdict.status };
  switch (verdict.kind) {
    case 'record':
      log('INFO', 'release recorded: production runs the image', { ...fields, ...where, parameterName, repositoryName, releasedTag, ...tagged });
      await report(jobId, new PutJobSuccessResultCommand({ jobId, outputVariables: { imageUri } }), { ...fields, decision: 'recorded' });
      return { result: 'recorded', imageUri };
    case 'fail':
      return fail(jobId, verdict.type, verdict.message, { ...fields, ...where });
    case 'wait': {
      if (polls >= MAX_POLLS) {
        const message = `the ECS deployment did not finish in time: still not finished after ${polls + 1} checks (${verdict.reason}); the parameter ${parameterName} is unchanged`;
        return fail(jobId, 'JobFailed', message, { ...fields, ...where, maxPolls: MAX_POLLS });
      }
      const next = polls + 1;
      const delayMs = pauseMs(deps);
      log('INFO', 'release not finished: checking again later', { ...fields, ...where, reason: verdict.reason, nextPolls: next, maxPolls: MAX_POLLS, delayMs });
      await (deps.sleep ?? defaultSleep)(delayMs);
      await report(jobId, new PutJobSuccessResultCommand({ jobId, continuationToken: continuationToken(next) }), { ...fields, decision: 'continue' });
      return { result: 'continue', polls: next };
    }
  }
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

async function report(
  jobId: string,
  command: PutJobSuccessResultCommand | PutJobFailureResultCommand,
  fields: Record<string, unknown>,
): Promise<void> {
  try {
    // Two overloads of `send`; the union of commands needs one branch each.
    if (command instanceof PutJobSuccessResultCommand) await codePipeline.send(command);
    else await codePipeline.send(command);
  } catch (err) {
    logError('could not report the job result to CodePipeline', err, { ...fields, jobId });
    throw err;
  }
}

/** Lambda entry point: `recordRelease` with the Lambda deadline. */
export async function handler(event: unknown, context?: Pick<Context, 'getRemainingTimeInMillis'>): Promise<JobOutcome | undefined> {
  const remaining = typeof context?.getRemainingTimeInMillis === 'function' ? context.getRemainingTimeInMillis() : undefined;
  return recordRelease(event, { deadline: remaining === undefined ? undefined : Date.now() + remaining });
}

// ---------------------------------------------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------------------------------------------


function describeFailures(failures: ReadonlyArray<{ arn?: string; reason?: string; detail?: string }> | undefined): string {
  if (!failures || failures.length === 0) return '';
  return ` (failures: ${failures.map((f) => [f.reason, f.detail].filter(Boolean).join(': ') || 'no reason given').join('; ')})`;
}


