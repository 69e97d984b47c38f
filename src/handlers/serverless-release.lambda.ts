/**
 * Releases the new code of every function of a serverless API, and shifts all their `live` aliases together with
 * AWS CodeDeploy, watched by per-release alarms on the new versions only; all roll back together.
 *
 * Runs as a CodePipeline "Lambda invoke" action in the Release stage. Each route of the REST API goes to its own
 * Lambda function through an alias `live`; CloudFormation pins the alias to a bootstrap version and never moves it
 * again: releases move it, here.
 *
 * First invocation (no continuation token):
 *
 * 1. `GetAlias` for every function: the version `live` serves now (`previousVersion`). An alias that still sends a
 *    share of its traffic to another version (a shift an earlier run left half done) fails the job before anything
 *    changes: CodeDeploy refuses such an alias.
 * 2. Sweep of stale release alarms: `DescribeAlarms` (`AlarmNamePrefix` `<ALARM_PREFIX>-`, metric alarms, every
 *    page up to `SWEEP_PAGE_LIMIT`), then `DeleteAlarms` of the names found (100 at a time), logged. Release alarms
 *    are deleted when a release ends, but an invocation that dies first (timeout, crash, stopped execution) leaves
 *    them behind; only one release runs at a time per pipeline stage, so any alarm with the prefix is stale here.
 *    After step 1, so that an alias left mid-shift (maybe by a deployment still running) fails the job before any
 *    alarm is touched. Best effort: any error is logged as WARN and the release goes on.
 * 3. For every function (`CONCURRENCY` at a time): `UpdateFunctionCode` (`$LATEST`, from
 *    `s3://ARTIFACT_BUCKET/<prefix>/<id>.zip`, not published); `GetFunctionConfiguration` every `UPDATE_POLL_MS` until
 *    `LastUpdateStatus` is `Successful` (`Failed`, or `UPDATE_TIMEOUT_MS` without an end, fails the job); then
 *    `PublishVersion` with the `CodeSha256` of the update (`targetVersion`). Lambda does not publish a new version when
 *    code and configuration are unchanged: it returns the newest version, which may be the one `live` serves.
 *    `$LATEST` is never served (only the aliases are), so code updated by a release that fails later is harmless.
 * 4. Functions whose `targetVersion` differs from `previousVersion` are "changed". None: the job succeeds at once.
 * 5. One CloudWatch metric-math alarm per `FUNCTIONS_PER_ALARM` changed functions, named
 *    `<ALARM_PREFIX>-<release id>-<n>`: the sum of `AWS/Lambda` `Errors` of the *new* versions only (dimensions
 *    `FunctionName`, `Resource` = `<function>:<alias>`, `ExecutedVersion`), in alarm from one error in a minute.
 *    With at most 100 functions there are at most 10 alarms, CodeDeploy's limit per deployment.
 * 6. `CreateDeployment` for every changed function (its deployment group carries the canary/linear configuration):
 *    an AppSpec moving the alias from `previousVersion` to `targetVersion` with the `BeforeAllowTraffic` hook
 *    `PRE_TRAFFIC_HOOK`, *every* release alarm (so one bad function stops every deployment) and automatic rollback.
 *    The deployment's description is the JSON `{functionId, functionName, aliasName, targetVersion, previousVersion}`,
 *    which later invocations read back. If a `CreateDeployment` fails, the deployments already created are stopped
 *    with rollback, the alarms deleted, and the job fails.
 * 7. `PutJobSuccessResult` with a continuation token (see `WaitState`).
 *
 * Later invocations (continuation token `{"phase":"wait",...}`): `GetDeployment` for every deployment.
 *
 * - All `Succeeded`: `DeleteAlarms`, then `PutJobSuccessResult` with the output variable `versions` (`id=version,...`).
 * - Any `Failed` or `Stopped` (CodeDeploy rolls that one back itself): the others roll back too: `StopDeployment` with
 *   rollback for those still running, `UpdateAlias` back to `previousVersion` for those already `Succeeded`;
 *   `DeleteAlarms`; the job fails, naming the function, the status and CodeDeploy's error and rollback messages.
 * - Otherwise: pause `POLL_DELAY_MS` (never past the Lambda deadline minus `REPORTING_MARGIN_MS`), then
 *   `PutJobSuccessResult` with `polls + 1`. After `MAX_POLLS` such answers: roll back together, as above, and fail.
 *
 * AWS errors: a throttling or transient error while following the deployments counts as one more poll; any other
 * error then fails the job after the same best-effort compensation. Before any deployment exists, every error fails
 * the job ("retry the stage" when transient): no alias has changed; only the sweep of stale alarms (step 2) never
 * fails it. Never throws, except when `PutJobSuccessResult` / `PutJobFailureResult` fails (logged and rethrown). The
 * event is never logged: it carries artifact credentials.
 *
 * Why the continuation token holds deployment ids only: `PutJobSuccessResult.continuationToken` is at most 2048
 * characters (CodePipeline API Reference), far too little for the details of 100 functions; each deployment's
 * description holds them, and the alarm names follow from `ALARM_PREFIX`, the release id and their number.
 *
 * References: CodePipeline User Guide, "AWS Lambda invoke action reference"; CodePipeline API Reference,
 * `PutJobSuccessResult`; CodeDeploy User Guide, "AppSpec 'resources' section (AWS Lambda deployments only)" and
 * "AppSpec 'hooks' section for an AWS Lambda deployment"; CodeDeploy API Reference, `CreateDeployment`
 * (`overrideAlarmConfiguration`, at most 10 alarms), `GetDeployment`, `StopDeployment`; Lambda API Reference,
 * `UpdateFunctionCode`, `GetFunctionConfiguration` (`LastUpdateStatus`), `PublishVersion`, `GetAlias`, `UpdateAlias`;
 * Lambda Developer Guide, "Types of metrics for Lambda functions" (the `ExecutedVersion` dimension); CloudWatch
 * User Guide, "Create a CloudWatch alarm based on a metric math expression"; CloudWatch API Reference,
 * `DescribeAlarms` (`AlarmNamePrefix`, `NextToken`, at most 100 records a page), `DeleteAlarms` (at most 100 names).
 *
 * Configuration (environment): `FUNCTIONS`, `CODEDEPLOY_APPLICATION`, `ARTIFACT_BUCKET`, `PRE_TRAFFIC_HOOK`,
 * `ALARM_PREFIX`, optional `ALARM_TOPIC_ARN`.
 */
import { CloudWatchClient, DeleteAlarmsCommand, DescribeAlarmsCommand, PutMetricAlarmCommand } from '@aws-sdk/client-cloudwatch';
import type { MetricDataQuery, PutMetricAlarmCommandInput } from '@aws-sdk/client-cloudwatch';
import { CodeDeployClient, CreateDeploymentCommand, GetDeploymentCommand, StopDeploymentCommand } from '@aws-sdk/client-codedeploy';
import type { CreateDeploymentCommandInput, DeploymentInfo } from '@aws-sdk/client-codedeploy';
import { CodePipelineClient, PutJobFailureResultCommand, PutJobSuccessResultCommand } from '@aws-sdk/client-codepipeline';
import type { FailureType } from '@aws-sdk/client-codepipeline';
import {
  GetAliasCommand,
  GetFunctionConfigurationCommand,
  LambdaClient,
  PublishVersionCommand,
  UpdateAliasCommand,
  UpdateFunctionCodeCommand,
} from '@aws-sdk/client-lambda';
import type { Context } from 'aws-lambda';
import type { Parsed } from './record-release.lambda';
import { isCodePipelineEvent, JobDeps } from './shared/codepipeline-job';
import { clip, defaultSleep, describeError, describeJson, errorMessage, isObject, log, logError } from './shared/common';
import { isThrottling } from './shared/retryable';

// ---------------------------------------------------------------------------------------------------------------
// AWS clients: module scope, so that warm invocations reuse connections. Few attempts: a throttled check is simply
// repeated at the next poll, and a throttled first invocation fails cleanly before any alias moves. Reporting to
// CodePipeline gets more room. `UpdateFunctionCode` copies the zip from S3, so Lambda requests may take longer.
// ---------------------------------------------------------------------------------------------------------------

const REQUEST_HANDLER = { connectionTimeout: 3_000, requestTimeout: 10_000 };

/** Exported for tests. */
export const lambda = new LambdaClient({ maxAttempts: 3, requestHandler: { connectionTimeout: 3_000, requestTimeout: 30_000 } });
/** Exported for tests. */
export const codeDeploy = new CodeDeployClient({ maxAttempts: 3, requestHandler: REQUEST_HANDLER });
/** Exported for tests. */
export const cloudWatch = new CloudWatchClient({ maxAttempts: 3, requestHandler: REQUEST_HANDLER });
/** Exported for tests. */
export const codePipeline = new CodePipelineClient({ maxAttempts: 4, requestHandler: REQUEST_HANDLER });

// ---------------------------------------------------------------------------------------------------------------
// Limits
// ---------------------------------------------------------------------------------------------------------------

/** Pause before answering "not finished yet", so that CodePipeline does not invoke the function in a tight loop. */
export const POLL_DELAY_MS = 15_000;
/** How many "not finished yet" answers in all before the release is rolled back: 200 × (15 s + CodePipeline's delay) ≈ 50+ min. */
export const MAX_POLLS = 200;
/** Time kept back from the Lambda deadline to report to CodePipeline after the pause. */
export const REPORTING_MARGIN_MS = 5_000;
/** Time kept back from the Lambda deadline, while code updates are awaited, for the alarms, deployments and report. */
export const RELEASE_MARGIN_MS = 20_000;
/** Pause between two looks at a function whose code update is in progress. */
export const UPDATE_POLL_MS = 1_000;
/** How long a code update may take before the job fails. */
export const UPDATE_TIMEOUT_MS = 60_000;
/** AWS calls in flight at once for different functions. */
export const CONCURRENCY = 5;
/** Functions per release at most: 10 alarms of 10 functions each, CodeDeploy's limit of alarms per deployment. */
export const MAX_FUNCTIONS = 100;
/** Functions (metrics) per metric-math alarm at most. */
export const FUNCTIONS_PER_ALARM = 10;
/** CodePipeline's limit for `failureDetails.message`. */
export const CODEPIPELINE_MESSAGE_LIMIT = 5_000;
/** CodePipeline's limit for `continuationToken`. */
export const CONTINUATION_TOKEN_LIMIT = 2_048;
/** Length kept for the output variable `versions`. */
export const OUTPUT_VARIABLE_LIMIT = 999;
/** CloudWatch's limit for `AlarmDescription`. */
export const ALARM_DESCRIPTION_LIMIT = 1_024;
/** CloudWatch's limit of alarms per `DescribeAlarms` page and per `DeleteAlarms` call. */
export const ALARMS_PER_CALL = 100;
/** `DescribeAlarms` pages read at most by the sweep of stale release alarms (a bound, should a token never end). */
export const SWEEP_PAGE_LIMIT = 10;

/** CodeDeploy deployment states that mean "still going". */
const RUNNING_STATUSES: ReadonlySet<string> = new Set(['Created', 'Queued', 'InProgress', 'Baking', 'Ready']);
/** CodeDeploy deployment states that end a release badly. */
const BROKEN_STATUSES: ReadonlySet<string> = new Set(['Failed', 'Stopped']);

// ---------------------------------------------------------------------------------------------------------------
// Inputs
// ---------------------------------------------------------------------------------------------------------------

/** One function of the API, as `FUNCTIONS` lists it. */
export interface ReleasedFunction {
  /** Construct id of the route, e.g. `GetSleepSecs`: the zip's name and the AppSpec resource name. */
  readonly id: string;
  readonly functionName: string;
  readonly aliasName: string;
  readonly deploymentGroupName: string;
}

/** The configuration, from the environment. */
export interface ServerlessReleaseConfig {
  readonly functions: readonly ReleasedFunction[];
  readonly applicationName: string;
  readonly artifactBucket: string;
  readonly preTrafficHook: string;
  readonly alarmPrefix: string;
  readonly alarmTopicArn?: string;
  /** How many "not finished" answers before the release gives up (from `MAX_WAIT_MINUTES`, else `MAX_POLLS`). */
  readonly maxPolls: number;
}

/** A function of the release with the version its alias serves and the version it is to serve. */
export interface FunctionRelease {
  readonly id: string;
  readonly functionName: string;
  readonly aliasName: string;
  readonly previousVersion: string;
  readonly targetVersion: string;
}

const FUNCTION_ID = /^[A-Za-z0-9_-]{1,100}$/;
// An alias name: letters, digits, - and _, not only digits (that would be a version).
const ALIAS_NAME = /^(?!\d+$)[A-Za-z0-9_-]{1,128}$/;

/**
 * Parses `FUNCTIONS`: a JSON array of 1..`MAX_FUNCTIONS` objects `{id, functionName, aliasName, deploymentGroupName}`,
 * ids and function names unique. Never throws.
 */
export function parseFunctions(text: unknown): Parsed<ReleasedFunction[]> {
  if (typeof text !== 'string' || text.trim() === '') return { ok: false, error: 'FUNCTIONS is not set: expected a JSON array of functions' };
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    return { ok: false, error: `FUNCTIONS is not valid JSON (${errorMessage(err)})` };
  }
  if (!Array.isArray(parsed) || parsed.length === 0 || parsed.length > MAX_FUNCTIONS) {
    return { ok: false, error: `FUNCTIONS must be a JSON array of 1 to ${MAX_FUNCTIONS} functions, got ${describeJson(parsed)}` };
  }
  const functions: ReleasedFunction[] = [];
  for (const [index, entry] of parsed.entries()) {
    const where = `FUNCTIONS[${index}]`;
    if (!isObject(entry)) return { ok: false, error: `${where} must be an object, got ${describeJson(entry)}` };
    for (const key of ['id', 'functionName', 'aliasName', 'deploymentGroupName']) {
      const value = entry[key];
      if (typeof value !== 'string' || value.trim() === '' || /\s/.test(value)) {
        return { ok: false, error: `${where}.${key} must be a non-empty string without whitespace, got ${describeJson(value)}` };
      }
    }
    const fn: ReleasedFunction = {
      id: entry.id as string,
      functionName: entry.functionName as string,
      aliasName: entry.aliasName as string,
      deploymentGroupName: entry.deploymentGroupName as string,
    };
    if (!FUNCTION_ID.test(fn.id)) return { ok: false, error: `${where}.id must be 1-100 letters, digits, - or _, got ${describeJson(fn.id)}` };
    if (!ALIAS_NAME.test(fn.aliasName)) return { ok: false, error: `${where}.aliasName is not a Lambda alias name, got ${describeJson(fn.aliasName)}` };
    if (functions.some((other) => other.id === fn.id)) return { ok: false, error: `${where}.id repeats ${describeJson(fn.id)}` };
    if (functions.some((other) => other.functionName === fn.functionName)) {
      return { ok: false, error: `${where}.functionName repeats ${describeJson(fn.functionName)}` };
    }
    functions.push(fn);
  }
  return { ok: true, value: functions };
}

const REQUIRED_ENV = ['FUNCTIONS', 'CODEDEPLOY_APPLICATION', 'ARTIFACT_BUCKET', 'PRE_TRAFFIC_HOOK', 'ALARM_PREFIX'] as const;

/** Reads the configuration; every variable but `ALARM_TOPIC_ARN` is required. Never throws. */
export function readConfig(env: Record<string, string | undefined>): Parsed<ServerlessReleaseConfig> {
  const missing = REQUIRED_ENV.filter((name) => (env[name] ?? '').trim() === '');
  if (missing.length > 0) return { ok: false, error: `environment variable(s) not set: ${missing.join(', ')}` };
  const functions = parseFunctions(env.FUNCTIONS);
  if (!functions.ok) return functions;
  const alarmPrefix = env.ALARM_PREFIX!.trim();
  if (alarmPrefix.length > 200 || /[\u0000-\u001f\u007f]/.test(alarmPrefix)) {
    return { ok: false, error: `ALARM_PREFIX must be at most 200 characters without control characters, got ${describeJson(alarmPrefix)}` };
  }
  const alarmTopicArn = (env.ALARM_TOPIC_ARN ?? '').trim();
  if (alarmTopicArn !== '' && !alarmTopicArn.startsWith('arn:')) {
    return { ok: false, error: `ALARM_TOPIC_ARN must be an SNS topic ARN, got ${describeJson(alarmTopicArn)}` };
  }
  const maxWait = (env.MAX_WAIT_MINUTES ?? '').trim();
  let maxPolls = MAX_POLLS;
  if (maxWait !== '') {
    const minutes = Number(maxWait);
    if (!Number.isInteger(minutes) || minutes < 1 || minutes > 1440) {
      return { ok: false, error: `MAX_WAIT_MINUTES must be a whole number of minutes from 1 to 1440, got ${describeJson(maxWait)}` };
    }
    maxPolls = Math.ceil((minutes * 60_000) / POLL_DELAY_MS);
  }
  return {
    ok: true,
    value: {
      maxPolls,
      functions: functions.value,
      applicationName: env.CODEDEPLOY_APPLICATION!.trim(),
      artifactBucket: env.ARTIFACT_BUCKET!.trim(),
      preTrafficHook: env.PRE_TRAFFIC_HOOK!.trim(),
      alarmPrefix,
      ...(alarmTopicArn === '' ? {} : { alarmTopicArn }),
    },
  };
}

/**
 * Parses CodePipeline's `UserParameters`: a JSON object whose `prefix` is the S3 key prefix of the zips
 * (`releases/<execution id>`): no whitespace, no leading or trailing `/`, no empty or `..` segment. Never throws.
 */
export function parseUserParameters(userParameters: unknown): Parsed<{ readonly prefix: string }> {
  if (userParameters === undefined || userParameters === null || userParameters === '') {
    return { ok: false, error: 'UserParameters is missing: expected {"prefix":"<S3 key prefix>"}' };
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
    return { ok: false, error: `UserParameters must be a JSON object like {"prefix":"<S3 key prefix>"}, got ${describeJson(parsed)}` };
  }
  const prefix = parsed.prefix;
  if (typeof prefix !== 'string' || prefix.trim() === '') {
    return { ok: false, error: `UserParameters.prefix must be a non-empty string, got ${describeJson(prefix)}` };
  }
  if (/\s/.test(prefix) || prefix.split('/').some((segment) => segment === '' || segment === '.' || segment === '..')) {
    return {
      ok: false,
      error: `UserParameters.prefix must be an S3 key prefix like releases/<id> (no whitespace, no leading, trailing or double /, no . or .. segment), got ${describeJson(prefix)}`,
    };
  }
  return { ok: true, value: { prefix } };
}

/** The S3 key of function `id`'s zip. */
export function artifactKey(prefix: string, id: string): string {
  return `${prefix}/${id}.zip`;
}

/**
 * A short id of the release, the same in every invocation of one job: the first 8 characters of the CodePipeline job
 * id (letters, digits and - kept), else the last segment of the prefix.
 */
export function releaseIdFor(jobId: string, prefix: string): string {
  const fromJob = jobId.slice(0, 8).replace(/[^A-Za-z0-9-]/g, '');
  if (fromJob !== '') return fromJob;
  const fromPrefix = (prefix.split('/').pop() ?? '').replace(/[^A-Za-z0-9-]/g, '').slice(0, 32);
  return fromPrefix !== '' ? fromPrefix : 'release';
}

/** The name of the `n`-th (from 1) alarm of a release. */
export function alarmNameFor(alarmPrefix: string, releaseId: string, n: number): string {
  return `${alarmPrefix}-${releaseId}-${n}`;
}

/** `items` in consecutive groups of at most `size`. */
export function chunk<T>(items: readonly T[], size: number): T[][] {
  if (!Number.isSafeInteger(size) || size < 1) throw new Error(`chunk size must be a positive integer, got ${size}`);
  const groups: T[][] = [];
  for (let i = 0; i < items.length; i += size) groups.push(items.slice(i, i + size));
  return groups;
}

// ---------------------------------------------------------------------------------------------------------------
// What is sent
// ---------------------------------------------------------------------------------------------------------------

/**
 * The AppSpec (JSON) of one function's deployment. `version` is written `0.0`, as in the CodeDeploy User Guide
 * (`JSON.stringify` would write `0`).
 */
export function buildAppSpec(release: FunctionRelease, preTrafficHook: string): string {
  const rest = JSON.stringify({
    Resources: [{
      [release.id]: {
        Type: 'AWS::Lambda::Function',
        Properties: {
          Name: release.functionName,
          Alias: release.aliasName,
          CurrentVersion: release.previousVersion,
          TargetVersion: release.targetVersion,
        },
      },
    }],
    Hooks: [{ BeforeAllowTraffic: preTrafficHook }],
  });
  return `{"version":0.0,${rest.slice(1)}`;
}

/** The deployment's description: what later invocations need to know of the function. */
export function describeDeployment(release: FunctionRelease): string {
  return JSON.stringify({
    functionId: release.id,
    functionName: release.functionName,
    aliasName: release.aliasName,
    targetVersion: release.targetVersion,
    previousVersion: release.previousVersion,
  });
}

/** Reads a description written by `describeDeployment`; `undefined` for anything else. Never throws. */
export function parseDeploymentDescription(description: unknown): FunctionRelease | undefined {
  if (typeof description !== 'string') return undefined;
  try {
    const parsed: unknown = JSON.parse(description);
    if (!isObject(parsed)) return undefined;
    const { functionId, functionName, aliasName, targetVersion, previousVersion } = parsed;
    const values = [functionId, functionName, aliasName, targetVersion, previousVersion];
    if (!values.every((value) => typeof value === 'string' && value !== '')) return undefined;
    return {
      id: functionId as string,
      functionName: functionName as string,
      aliasName: aliasName as string,
      previousVersion: previousVersion as string,
      targetVersion: targetVersion as string,
    };
  } catch {
    return undefined;
  }
}

/** The alarm on the errors of the new versions of up to `FUNCTIONS_PER_ALARM` functions. */
export function buildAlarm(
  alarmName: string,
  releases: readonly FunctionRelease[],
  options: { readonly releaseId: string; readonly prefix: string; readonly alarmTopicArn?: string },
): PutMetricAlarmCommandInput {
  if (releases.length === 0 || releases.length > FUNCTIONS_PER_ALARM) {
    throw new Error(`an alarm watches 1 to ${FUNCTIONS_PER_ALARM} functions, got ${releases.length}`);
  }
  const metrics: MetricDataQuery[] = releases.map((release, index) => ({
    Id: `m${index}`,
    MetricStat: {
      Metric: {
        Namespace: 'AWS/Lambda',
        MetricName: 'Errors',
        Dimensions: [
          { Name: 'FunctionName', Value: release.functionName },
          { Name: 'Resource', Value: `${release.functionName}:${release.aliasName}` },
          { Name: 'ExecutedVersion', Value: release.targetVersion },
        ],
      },
      Period: 60,
      Stat: 'Sum',
    },
    ReturnData: false,
  }));
  const ids = metrics.map((metric) => metric.Id).join(',');
  const watched = releases.map((release) => `${release.id} (${release.functionName}) version ${release.targetVersion}`).join(', ');
  return {
    AlarmName: alarmName,
    AlarmDescription: clip(
      `Errors of the new versions of release ${options.releaseId} (${options.prefix}): ${watched}. CodeDeploy stops and rolls back `
      + 'every deployment of the release when this alarm fires. Deleted when the release ends.',
      ALARM_DESCRIPTION_LIMIT,
    ),
    ActionsEnabled: true,
    ...(options.alarmTopicArn === undefined ? {} : { AlarmActions: [options.alarmTopicArn] }),
    Metrics: [...metrics, { Id: 'errors', Expression: `SUM([${ids}])`, Label: 'Errors of the new versions', ReturnData: true }],
    Threshold: 1,
    ComparisonOperator: 'GreaterThanOrEqualToThreshold',
    EvaluationPeriods: 1,
    DatapointsToAlarm: 1,
    TreatMissingData: 'notBreaching',
  };
}

/** The deployment of one function, stopped and rolled back by any of the release's alarms. */
export function buildDeployment(
  fn: ReleasedFunction,
  release: FunctionRelease,
  alarmNames: readonly string[],
  config: Pick<ServerlessReleaseConfig, 'applicationName' | 'preTrafficHook'>,
): CreateDeploymentCommandInput {
  return {
    applicationName: config.applicationName,
    deploymentGroupName: fn.deploymentGroupName,
    revision: { revisionType: 'AppSpecContent', appSpecContent: { content: buildAppSpec(release, config.preTrafficHook) } },
    description: describeDeployment(release),
    overrideAlarmConfiguration: { enabled: true, ignorePollAlarmFailure: false, alarms: alarmNames.map((name) => ({ name })) },
    autoRollbackConfiguration: { enabled: true, events: ['DEPLOYMENT_FAILURE', 'DEPLOYMENT_STOP_ON_ALARM', 'DEPLOYMENT_STOP_ON_REQUEST'] },
  };
}

// ---------------------------------------------------------------------------------------------------------------
// The continuation token
// ---------------------------------------------------------------------------------------------------------------

/**
 * What the first invocation hands to the later ones, as the continuation token (at most `CONTINUATION_TOKEN_LIMIT`
 * characters): `{"phase":"wait","polls":0,"releaseId":"1a2b3c4d","alarms":1,"deployments":["d-ABCDEFGHI",...]}`.
 * Alarm names are `alarmNameFor(ALARM_PREFIX, releaseId, 1..alarms)`; each deployment's description names its
 * function and versions.
 */
export interface WaitState {
  readonly phase: 'wait';
  /** "Not finished yet" answers given so far. */
  readonly polls: number;
  readonly releaseId: string;
  /** How many alarms the release created. */
  readonly alarms: number;
  /** The CodeDeploy deployment ids, one per changed function. */
  readonly deployments: readonly string[];
}

export function encodeState(state: WaitState): string {
  return JSON.stringify({ phase: state.phase, polls: state.polls, releaseId: state.releaseId, alarms: state.alarms, deployments: state.deployments });
}

/** No token: the first invocation; otherwise the `WaitState` an earlier invocation wrote, checked. Never throws. */
export function parseContinuationToken(token: unknown): { readonly kind: 'start' } | { readonly kind: 'wait'; readonly state: WaitState } | {
  readonly kind: 'invalid'; readonly error: string;
} {
  if (token === undefined || token === null || token === '') return { kind: 'start' };
  const invalid = { kind: 'invalid', error: `not a release state: ${describeJson(token)}` } as const;
  if (typeof token !== 'string') return invalid;
  let parsed: unknown;
  try {
    parsed = JSON.parse(token);
  } catch {
    return invalid;
  }
  if (!isObject(parsed) || parsed.phase !== 'wait') return invalid;
  const { polls, releaseId, alarms, deployments } = parsed;
  if (!Number.isSafeInteger(polls) || (polls as number) < 0) return invalid;
  if (typeof releaseId !== 'string' || releaseId === '' || releaseId.length > 64) return invalid;
  if (!Number.isSafeInteger(alarms) || (alarms as number) < 0 || (alarms as number) > MAX_FUNCTIONS / FUNCTIONS_PER_ALARM) return invalid;
  if (!Array.isArray(deployments) || deployments.length === 0 || deployments.length > MAX_FUNCTIONS) return invalid;
  if (!deployments.every((id) => typeof id === 'string' && id !== '')) return invalid;
  return { kind: 'wait', state: { phase: 'wait', polls: polls as number, releaseId, alarms: alarms as number, deployments: deployments as string[] } };
}

// ---------------------------------------------------------------------------------------------------------------
// AWS errors
// ---------------------------------------------------------------------------------------------------------------

export { isThrottling } from './shared/retryable';

function isAccessDenied(err: unknown): boolean {
  const name = (err as { name?: unknown } | undefined)?.name;
  return typeof name === 'string' && /AccessDenied|UnauthorizedOperation|NotAuthorized/i.test(name);
}

/** An AWS call that failed, with the API and what it acted on. */
class AwsCallError extends Error {
  constructor(readonly api: string, readonly subject: string, readonly error: unknown) {
    super(`${api} failed for ${subject}: ${describeError(error)}`);
    this.name = 'AwsCallError';
  }
}

/** A reason to fail the job that is not an AWS error. */
class JobError extends Error {
  constructor(message: string, readonly type: FailureType = 'JobFailed') {
    super(message);
    this.name = 'JobError';
  }
}

async function call<T>(api: string, subject: string, send: () => Promise<T>): Promise<T> {
  try {
    return await send();
  } catch (err) {
    throw new AwsCallError(api, subject, err);
  }
}

/** What to tell CodePipeline about an error: the message, the failure type, and whether it was transient. */
function explain(err: unknown): { message: string; type: FailureType; transient: boolean } {
  if (err instanceof JobError) return { message: err.message, type: err.type, transient: false };
  if (err instanceof AwsCallError) {
    return { message: err.message, type: isAccessDenied(err.error) ? 'PermissionError' : 'JobFailed', transient: isThrottling(err.error) };
  }
  return { message: `unexpected error: ${describeError(err)}`, type: 'JobFailed', transient: false };
}

// ---------------------------------------------------------------------------------------------------------------
// The job
// ---------------------------------------------------------------------------------------------------------------


/** What `serverlessRelease` needs from the outside world; each defaults to the real thing. */
export type ServerlessReleaseDeps = JobDeps;

/** How the job ended, as reported to CodePipeline. */
export type JobOutcome =
  /** Every changed function serves its new version. */
  | { readonly result: 'released'; readonly versions: string }
  /** No function changed: nothing to shift. */
  | { readonly result: 'unchanged' }
  /** Deployments running: CodePipeline invokes again. */
  | { readonly result: 'continue'; readonly polls: number }
  | { readonly result: 'failed'; readonly message: string };

/** One invocation's context. */
interface Job {
  readonly jobId: string;
  readonly config: ServerlessReleaseConfig;
  readonly prefix: string;
  readonly releaseId: string;
  readonly sleep: (ms: number) => Promise<void>;
  readonly now: () => number;
  readonly deadline?: number;
  readonly fields: Record<string, unknown>;
}


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
  const token = parseContinuationToken(cpJob.data?.continuationToken);

  const params = parseUserParameters(cpJob.data?.actionConfiguration?.configuration?.UserParameters);
  if (!params.ok) return fail(jobId, 'ConfigurationError', `invalid configuration: ${params.error}`, {});
  const config = readConfig(deps.env ?? process.env);
  if (!config.ok) return fail(jobId, 'ConfigurationError', `invalid configuration: ${config.error}`, {});
  const { prefix } = params.value;

  if (token.kind === 'invalid') {
    return fail(jobId, 'JobFailed',
      `invalid continuation token (${token.error}): cannot follow the release; look for deployments still running in the CodeDeploy application `
      + `${config.value.applicationName} before releasing again`, { prefix });
  }
  const releaseId = token.kind === 'wait' ? token.state.releaseId : releaseIdFor(jobId, prefix);
  const job: Job = {
    jobId,
    config: config.value,
    prefix,
    releaseId,
    sleep: deps.sleep ?? defaultSleep,
    now: deps.now ?? Date.now,
    deadline: deps.deadline,
    fields: { jobId, releaseId, prefix },
  };
  return token.kind === 'start' ? startRelease(job) : followRelease(job, token.state);
}

// ---------------------------------------------------------------------------------------------------------------
// First invocation: ship the code, create the alarms and the deployments
// ---------------------------------------------------------------------------------------------------------------

const NOTHING_RELEASED = 'no alias was changed: production still serves the previous versions';

async function startRelease(job: Job): Promise<JobOutcome> {
  const { config } = job;

  // 1. What each alias serves now.
  let aliases: Array<{ version: string; weights: Record<string, number> }>;
  try {
    aliases = await mapLimit(config.functions, CONCURRENCY, (fn) => readAlias(fn));
  } catch (err) {
    return failBeforeDeployments(job, err);
  }
  const shifting = config.functions.flatMap((fn, i) => (Object.keys(aliases[i].weights).length > 0 ? [{ fn, alias: aliases[i] }] : []));
  if (shifting.length > 0) {
    const which = shifting.map(({ fn, alias }) =>
      `alias ${fn.aliasName} of function ${label(fn)} serves version ${alias.version} and sends ${JSON.stringify(alias.weights)} to other versions`);
    return fail(job.jobId, 'JobFailed',
      `${which.join('; ')}: a traffic shift was left half done (by an earlier release that did not finish), and CodeDeploy refuses such an alias. `
      + 'Point the alias at a single version (aws lambda update-alias --function-name <name> --name <alias> --function-version <version> '
      + `--routing-config AdditionalVersionWeights={}), then retry the stage; ${NOTHING_RELEASED}`,
      { ...job.fields, shifting: shifting.map(({ fn }) => fn.id) });
  }

  // 2. Delete the alarms of earlier releases whose controller died before it could (best effort, never fails).
  await sweepStaleAlarms(job);

  // 3. Ship the code and publish a version of each function.
  let targets: string[];
  try {
    targets = await mapLimit(config.functions, CONCURRENCY, (fn) => shipCode(job, fn));
  } catch (err) {
    return failBeforeDeployments(job, err);
  }
  const releases: FunctionRelease[] = config.functions.map((fn, i) => ({
    id: fn.id,
    functionName: fn.functionName,
    aliasName: fn.aliasName,
    previousVersion: aliases[i].version,
    targetVersion: targets[i],
  }));

  // 4. What changed.
  const changedIndexes = releases.flatMap((release, i) => (release.targetVersion !== release.previousVersion ? [i] : []));
  const unchanged = releases.filter((release) => release.targetVersion === release.previousVersion).map((release) => release.id);
  if (changedIndexes.length === 0) {
    log('INFO', 'nothing to shift: every alias already serves the published code', { ...job.fields, unchanged });
    await report(job.jobId, new PutJobSuccessResultCommand({ jobId: job.jobId, outputVariables: { versions: 'none' } }), { ...job.fields, decision: 'unchanged' });
    return { result: 'unchanged' };
  }
  const changed = changedIndexes.map((i) => ({ fn: config.functions[i], release: releases[i] }));

  // 5. The release alarms.
  const groups = chunk(changed.map((c) => c.release), FUNCTIONS_PER_ALARM);
  const alarmNames = groups.map((_, i) => alarmNameFor(config.alarmPrefix, job.releaseId, i + 1));
  const created: string[] = [];
  try {
    for (const [i, group] of groups.entries()) {
      const input = buildAlarm(alarmNames[i], group, { releaseId: job.releaseId, prefix: job.prefix, alarmTopicArn: config.alarmTopicArn });
      await call('cloudwatch:PutMetricAlarm', `alarm ${alarmNames[i]}`, () => cloudWatch.send(new PutMetricAlarmCommand(input)));
      created.push(alarmNames[i]);
    }
  } catch (err) {
    const problems = await deleteAlarms(job, created);
    const done = created.length > 0 && problems.length === 0 ? ['deleted the alarms already created'] : [];
    return failBeforeDeployments(job, err, done, problems);
  }

  // 6. One deployment per changed function, each watched by every alarm.
  const deployments: Array<{ fn: ReleasedFunction; release: FunctionRelease; deploymentId: string }> = [];
  let token: string;
  try {
    for (const { fn, release } of changed) {
      const input = buildDeployment(fn, release, alarmNames, config);
      const output = await call('codedeploy:CreateDeployment', `function ${label(fn)}`, () => codeDeploy.send(new CreateDeploymentCommand(input)));
      if (!output.deploymentId) throw new JobError(`codedeploy:CreateDeployment returned no deployment id for function ${label(fn)}`);
      deployments.push({ fn, release, deploymentId: output.deploymentId });
    }
    token = encodeState({ phase: 'wait', polls: 0, releaseId: job.releaseId, alarms: alarmNames.length, deployments: deployments.map((d) => d.deploymentId) });
    if (token.length > CONTINUATION_TOKEN_LIMIT) {
      throw new JobError(`the release state is ${token.length} characters, more than a continuation token holds (${CONTINUATION_TOKEN_LIMIT})`);
    }
  } catch (err) {
    const { message, type, transient } = explain(err);
    const stopped: string[] = [];
    const problems: string[] = [];
    for (const d of deployments) {
      const problem = await stopDeployment(job, d.deploymentId, `deployment ${d.deploymentId} of function ${label(d.fn)}`);
      if (problem === undefined) stopped.push(`${d.release.id} (${d.deploymentId})`);
      else problems.push(problem);
    }
    const alarmProblems = await deleteAlarms(job, alarmNames);
    const parts = [
      `${message}${transient ? ' (a transient error: retry the stage)' : ''}`,
      ...(stopped.length > 0 ? [`stopped with rollback the deployment(s) already created: ${stopped.join(', ')}`] : []),
      ...(alarmProblems.length === 0 ? ['deleted the release alarms'] : []),
      ...(problems.length > 0 ? [] : [deployments.length > 0 ? 'every alias returns to its previous version' : NOTHING_RELEASED]),
      ...problemText([...problems, ...alarmProblems]),
    ];
    return fail(job.jobId, type, parts.join('; '), { ...job.fields, decision: 'failed before following the deployments' });
  }

  // 7. Follow the deployments in later invocations.
  log('INFO', 'deployments created: following them', {
    ...job.fields,
    alarms: alarmNames,
    unchanged,
    deployments: deployments.map((d) => ({
      id: d.release.id, deploymentId: d.deploymentId, from: d.release.previousVersion, to: d.release.targetVersion,
    })),
  });
  await report(job.jobId, new PutJobSuccessResultCommand({ jobId: job.jobId, continuationToken: token }), { ...job.fields, decision: 'continue' });
  return { result: 'continue', polls: 0 };
}

/**
 * Deletes every metric alarm named `<ALARM_PREFIX>-...`: release alarms an earlier release left behind (see step 2 of
 * the file comment). Best effort: an error is logged as WARN, never thrown, and the release goes on.
 */
async function sweepStaleAlarms(job: Job): Promise<void> {
  const alarmNamePrefix = `${job.config.alarmPrefix}-`;
  const fields = { ...job.fields, alarmNamePrefix };
  const found = new Set<string>();
  let nextToken: string | undefined;
  try {
    for (let page = 0; page < SWEEP_PAGE_LIMIT; page++) {
      const output = await cloudWatch.send(new DescribeAlarmsCommand({
        AlarmNamePrefix: alarmNamePrefix,
        AlarmTypes: ['MetricAlarm'],
        MaxRecords: ALARMS_PER_CALL,
        ...(nextToken === undefined ? {} : { NextToken: nextToken }),
      }));
      for (const alarm of output.MetricAlarms ?? []) {
        if (alarm.AlarmName?.startsWith(alarmNamePrefix)) found.add(alarm.AlarmName);
      }
      nextToken = output.NextToken || undefined;
      if (nextToken === undefined) break;
    }
  } catch (err) {
    log('WARN', 'could not look for stale release alarms: releasing without the sweep', { ...fields, error: describeError(err) });
    return;
  }
  if (nextToken !== undefined) {
    log('WARN', `more stale release alarms than ${SWEEP_PAGE_LIMIT} pages: deleting those found`, { ...fields, found: found.size });
  }
  const deleted: string[] = [];
  const batches = chunk([...found], ALARMS_PER_CALL);
  for (const [i, names] of batches.entries()) {
    try {
      await cloudWatch.send(new DeleteAlarmsCommand({ AlarmNames: names }));
      deleted.push(...names);
    } catch (err) {
      const left = batches.slice(i).flat();
      log('WARN', 'could not delete stale release alarms: releasing without deleting them', { ...fields, error: describeError(err), notDeleted: left });
      break;
    }
  }
  if (deleted.length > 0) log('INFO', 'deleted stale release alarms left by an earlier release', { ...fields, alarms: deleted });
}

async function readAlias(fn: ReleasedFunction): Promise<{ version: string; weights: Record<string, number> }> {
  const alias = await call('lambda:GetAlias', `function ${label(fn)}`, () => lambda.send(new GetAliasCommand({ FunctionName: fn.functionName, Name: fn.aliasName })));
  if (!alias.FunctionVersion) throw new JobError(`lambda:GetAlias named no version for alias ${fn.aliasName} of function ${label(fn)}`);
  return { version: alias.FunctionVersion, weights: alias.RoutingConfig?.AdditionalVersionWeights ?? {} };
}

/** Updates `$LATEST` from the zip, waits for the update, publishes a version: the target version. */
async function shipCode(job: Job, fn: ReleasedFunction): Promise<string> {
  const subject = `function ${label(fn)}`;
  const key = artifactKey(job.prefix, fn.id);
  const updated = await call('lambda:UpdateFunctionCode', subject, () => lambda.send(new UpdateFunctionCodeCommand({
    FunctionName: fn.functionName,
    S3Bucket: job.config.artifactBucket,
    S3Key: key,
    Publish: false,
  })));
  const codeSha256 = updated.CodeSha256;
  if (!codeSha256) throw new JobError(`lambda:UpdateFunctionCode returned no CodeSha256 for ${subject}`);
  await waitForUpdate(job, fn);
  const published = await call('lambda:PublishVersion', subject, () => lambda.send(new PublishVersionCommand({ FunctionName: fn.functionName, CodeSha256: codeSha256 })));
  if (!published.Version) throw new JobError(`lambda:PublishVersion returned no version for ${subject}`);
  return published.Version;
}

async function waitForUpdate(job: Job, fn: ReleasedFunction): Promise<void> {
  const start = job.now();
  const byDeadline = job.deadline !== undefined && job.deadline - RELEASE_MARGIN_MS < start + UPDATE_TIMEOUT_MS;
  const giveUpAt = byDeadline ? job.deadline! - RELEASE_MARGIN_MS : start + UPDATE_TIMEOUT_MS;
  for (;;) {
    const configuration = await call('lambda:GetFunctionConfiguration', `function ${label(fn)}`,
      () => lambda.send(new GetFunctionConfigurationCommand({ FunctionName: fn.functionName })));
    const status = configuration.LastUpdateStatus;
    if (status === 'Successful') return;
    if (status === 'Failed') {
      const reason = [configuration.LastUpdateStatusReasonCode, configuration.LastUpdateStatusReason].filter(Boolean).join(': ');
      throw new JobError(`the code update of function ${label(fn)} failed: ${reason || 'Lambda gave no reason'}`);
    }
    if (job.now() + UPDATE_POLL_MS > giveUpAt) {
      const limit = byDeadline ? 'before the time left to this function ran short' : `within ${UPDATE_TIMEOUT_MS / 1000} s`;
      throw new JobError(`the code update of function ${label(fn)} did not finish ${limit} (LastUpdateStatus ${status ?? 'not reported'}): retry the stage`);
    }
    await job.sleep(UPDATE_POLL_MS);
  }
}

/** Fails the job for an error that struck before any deployment existed. */
async function failBeforeDeployments(job: Job, err: unknown, done: readonly string[] = [], problems: readonly string[] = []): Promise<JobOutcome> {
  const { message, type, transient } = explain(err);
  const parts = [`${message}${transient ? ' (a transient error: retry the stage)' : ''}`, ...done, NOTHING_RELEASED, ...problemText(problems)];
  return fail(job.jobId, type, parts.join('; '), { ...job.fields, decision: 'failed before any deployment' });
}

// ---------------------------------------------------------------------------------------------------------------
// Later invocations: follow the deployments, roll back together
// ---------------------------------------------------------------------------------------------------------------

/** What one `GetDeployment` told. */
interface Looked {
  readonly deploymentId: string;
  readonly info?: DeploymentInfo;
  /** The function and versions, from the description. */
  readonly release?: FunctionRelease;
  readonly error?: unknown;
}

async function followRelease(job: Job, state: WaitState): Promise<JobOutcome> {
  const fields = { ...job.fields, polls: state.polls };
  const alarmNames = Array.from({ length: state.alarms }, (_, i) => alarmNameFor(job.config.alarmPrefix, state.releaseId, i + 1));
  const looked = await mapLimit(state.deployments, CONCURRENCY, async (deploymentId): Promise<Looked> => {
    try {
      const output = await call('codedeploy:GetDeployment', `deployment ${deploymentId}`,
        () => codeDeploy.send(new GetDeploymentCommand({ deploymentId })));
      const info = output.deploymentInfo ?? {};
      return { deploymentId, info, release: parseDeploymentDescription(info.description) };
    } catch (err) {
      return { deploymentId, error: err };
    }
  });

  const statusOf = (l: Looked) => l.info?.status ?? 'unknown';
  const broken = looked.filter((l) => l.info !== undefined && !RUNNING_STATUSES.has(statusOf(l)) && statusOf(l) !== 'Succeeded');
  const errors = looked.filter((l) => l.error !== undefined && !isThrottling((l.error as AwsCallError).error));
  const throttled = looked.filter((l) => l.error !== undefined && isThrottling((l.error as AwsCallError).error));

  if (broken.length > 0) {
    const what = broken.map((l) => {
      const status = statusOf(l);
      const errorInfo = l.info?.errorInformation;
      const error = [errorInfo?.code, errorInfo?.message].filter(Boolean).join(': ');
      const rollback = l.info?.rollbackInfo?.rollbackMessage;
      const meaning = BROKEN_STATUSES.has(status) ? '' : ' (a status this function does not know)';
      return `${deploymentLabel(l)} is ${status}${meaning}${error ? `: ${error}` : ''} (${rollback ? `rollback: ${rollback}` : 'CodeDeploy rolls it back'})`;
    });
    return rollBackTogether(job, fields, looked, new Set(broken.map((l) => l.deploymentId)), alarmNames, 'JobFailed', what.join('; '));
  }
  if (errors.length > 0) {
    const type: FailureType = errors.some((l) => isAccessDenied((l.error as AwsCallError).error)) ? 'PermissionError' : 'JobFailed';
    return rollBackTogether(job, fields, looked, new Set(), alarmNames, type, errors.map((l) => explain(l.error).message).join('; '));
  }
  if (looked.every((l) => statusOf(l) === 'Succeeded')) {
    const problems = await deleteAlarms(job, alarmNames);
    const versions = clip(looked.map((l) => (l.release ? `${l.release.id}=${l.release.targetVersion}` : `${l.deploymentId}=?`)).join(','), OUTPUT_VARIABLE_LIMIT);
    log('INFO', 'release succeeded: every changed function serves its new version', { ...fields, versions, alarmProblems: problems });
    await report(job.jobId, new PutJobSuccessResultCommand({ jobId: job.jobId, outputVariables: { versions } }), { ...fields, decision: 'released' });
    return { result: 'released', versions };
  }

  const waiting = looked.filter((l) => l.info !== undefined && RUNNING_STATUSES.has(statusOf(l))).map((l) => `${deploymentLabel(l)} is ${statusOf(l)}`);
  const reason = [...waiting, ...throttled.map((l) => `${explain(l.error).message} (transient)`)].join('; ');
  if (state.polls >= job.config.maxPolls) {
    return rollBackTogether(job, fields, looked, new Set(), alarmNames, 'JobFailed',
      `the release did not finish in time: still not finished after ${state.polls + 1} checks (${reason})`);
  }
  const next = state.polls + 1;
  const delayMs = pauseMs(job);
  log('INFO', 'release not finished: checking again later', { ...fields, reason, nextPolls: next, maxPolls: job.config.maxPolls, delayMs });
  await job.sleep(delayMs);
  const token = encodeState({ ...state, polls: next });
  await report(job.jobId, new PutJobSuccessResultCommand({ jobId: job.jobId, continuationToken: token }), { ...fields, decision: 'continue' });
  return { result: 'continue', polls: next };
}

/**
 * Returns every function to its previous version: CodeDeploy rolls back `broken` deployments itself; the others
 * still running (or of unknown state) are stopped with rollback, those already succeeded get their alias moved back.
 * Then the alarms are deleted and the job fails. Best effort: what could not be undone is logged and named.
 */
async function rollBackTogether(
  job: Job,
  fields: Record<string, unknown>,
  looked: readonly Looked[],
  broken: ReadonlySet<string>,
  alarmNames: readonly string[],
  type: FailureType,
  cause: string,
): Promise<JobOutcome> {
  const stopped: string[] = [];
  const reverted: string[] = [];
  const problems: string[] = [];
  for (const l of looked) {
    if (broken.has(l.deploymentId)) continue;
    const status = l.info?.status;
    if (status === 'Succeeded') {
      const release = l.release;
      if (release === undefined) {
        problems.push(`cannot move the alias of ${deploymentLabel(l)} back: its description does not name the function and versions`);
        continue;
      }
      try {
        await call('lambda:UpdateAlias', `function ${release.id} (${release.functionName})`, () => lambda.send(new UpdateAliasCommand({
          FunctionName: release.functionName,
          Name: release.aliasName,
          FunctionVersion: release.previousVersion,
          RoutingConfig: { AdditionalVersionWeights: {} },
        })));
        reverted.push(`${release.id} (${release.functionName} ${release.aliasName} ${release.targetVersion} → ${release.previousVersion})`);
      } catch (err) {
        logError('could not move an alias back', (err as AwsCallError).error, { ...fields, deploymentId: l.deploymentId });
        problems.push(`could not move the alias back: ${explain(err).message}`);
      }
    } else {
      const problem = await stopDeployment(job, l.deploymentId, deploymentLabel(l));
      if (problem === undefined) stopped.push(deploymentLabel(l));
      else problems.push(problem);
    }
  }
  const alarmProblems = await deleteAlarms(job, alarmNames);

  const parts = [
    `release ${job.releaseId} failed: ${cause}`,
    ...(stopped.length > 0 ? [`stopped with rollback: ${stopped.join(', ')}`] : []),
    ...(reverted.length > 0 ? [`moved the alias back to the previous version: ${reverted.join(', ')}`] : []),
    ...(alarmProblems.length === 0 ? ['deleted the release alarms'] : []),
    ...(problems.length > 0 ? [] : ['every function returns to its previous version']),
    ...problemText([...problems, ...alarmProblems]),
  ];
  return fail(job.jobId, type, parts.join('; '), { ...fields, stopped, reverted, problems: [...problems, ...alarmProblems] });
}

/** `StopDeployment` with rollback; a description of the problem, or `undefined` when it worked. */
async function stopDeployment(job: Job, deploymentId: string, what: string): Promise<string | undefined> {
  try {
    await call('codedeploy:StopDeployment', what, () => codeDeploy.send(new StopDeploymentCommand({ deploymentId, autoRollbackEnabled: true })));
    return undefined;
  } catch (err) {
    logError('could not stop a deployment', (err as AwsCallError).error, { ...job.fields, deploymentId });
    return `could not stop ${deploymentId}: ${explain(err).message}`;
  }
}

/** `DeleteAlarms`; errors are logged and returned as problems, never thrown. */
async function deleteAlarms(job: Job, alarmNames: readonly string[]): Promise<string[]> {
  if (alarmNames.length === 0) return [];
  try {
    await call('cloudwatch:DeleteAlarms', `alarms ${alarmNames.join(', ')}`, () => cloudWatch.send(new DeleteAlarmsCommand({ AlarmNames: [...alarmNames] })));
    return [];
  } catch (err) {
    logError('could not delete the release alarms', (err as AwsCallError).error, { ...job.fields, alarms: alarmNames });
    return [`could not delete the release alarms: ${explain(err).message}`];
  }
}

/** The problems of a compensation, as the last part of a failure message (none: no part). */
function problemText(problems: readonly string[]): string[] {
  return problems.length === 0 ? [] : [`NOT fully undone, check by hand: ${problems.join('; ')}`];
}

function deploymentLabel(l: Looked): string {
  return l.release ? `deployment ${l.deploymentId} of function ${l.release.id} (${l.release.functionName})` : `deployment ${l.deploymentId}`;
}

/** The pause before a "not finished" answer: `POLL_DELAY_MS`, cut so the report still fits before the deadline. */
function pauseMs(job: Job): number {
  if (job.deadline === undefined) return POLL_DELAY_MS;
  const left = job.deadline - job.now() - REPORTING_MARGIN_MS;
  return Math.max(0, Math.min(POLL_DELAY_MS, Math.floor(left)));
}

// ---------------------------------------------------------------------------------------------------------------
// Reporting
// ---------------------------------------------------------------------------------------------------------------

async function fail(jobId: string, type: FailureType, message: string, fields: Record<string, unknown>): Promise<JobOutcome> {
  log('INFO', 'release failed: failing the job', { ...fields, jobId, failureType: type, failure: message });
  const command = new PutJobFailureResultCommand({ jobId, failureDetails: { type, message: clip(message, CODEPIPELINE_MESSAGE_LIMIT) } });
  await report(jobId, command, { ...fields, decision: 'failed' });
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

/** Lambda entry point: `serverlessRelease` with the Lambda deadline. */
export async function handler(event: unknown, context?: Pick<Context, 'getRemainingTimeInMillis'>): Promise<JobOutcome | undefined> {
  const remaining = typeof context?.getRemainingTimeInMillis === 'function' ? context.getRemainingTimeInMillis() : undefined;
  return serverlessRelease(event, { deadline: remaining === undefined ? undefined : Date.now() + remaining });
}

// ---------------------------------------------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------------------------------------------

/**
 * `fn` over `items`, at most `limit` at once, results in order. After a rejection no new item starts; the calls in
 * flight end, then the first error is thrown.
 */
async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
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

function label(fn: ReleasedFunction): string {
  return `${fn.id} (${fn.functionName})`;
}


