/**
 * Releases the new code of every function of a serverless API, and shifts all their `live` aliases together with
 * AWS CodeDeploy, watched by per-release alarms on the new versions only; all roll back together.
 *
 * Runs as a CodePipeline "Lambda invoke" action in the Release stage. Each route of the REST API goes to its own
 * Lambda function through an alias `live`; CloudFormation pins the alias to a bootstrap version and never moves it
 * again: releases move it, here. The release invariants this file keeps are in ADR 0007 ("Release invariants").
 *
 * First invocation (no continuation token):
 *
 * 0. The start time is kept (`startedAt` in the state): every later limit is wall-clock time from it.
 * 1. Deployments still running: `ListDeployments` of every deployment group (`includeOnlyStatuses` the running
 *    states, every page), then `GetDeployment` of each to read its description. One of this release (its
 *    description names this release id: a duplicate or retried invocation of this job) is adopted, never created
 *    twice. One of any other release (an abandoned execution, a manual deployment, a rollback deployment) refuses the
 *    release before anything changes, naming it: only one release runs at a time, checked, never assumed. An error
 *    of these calls fails the job before anything changes ("retry the stage").
 * 2. `GetAlias` for every function: the version `live` serves now (`previousVersion`). An alias that still sends a
 *    share of its traffic to another version, and is not being shifted by an adopted deployment, fails the job
 *    before anything changes: CodeDeploy refuses such an alias.
 * 3. Sweep of stale release alarms: `DescribeAlarms` (`AlarmNamePrefix` `<ALARM_PREFIX>-`, metric alarms, every
 *    page up to `SWEEP_PAGE_LIMIT`), then `DeleteAlarms` of the names found whose release has no running deployment
 *    (from step 1), 100 at a time, logged; a running deployment of another or unknown release has refused the
 *    release in step 1 already. Best effort: any error is logged as WARN and the release goes on.
 * 4. For every function not adopted (`CONCURRENCY` at a time): `UpdateFunctionCode` (`$LATEST`, from
 *    `s3://ARTIFACT_BUCKET/<prefix>/<id>.zip`, not published; a `ResourceConflictException`, an update in progress
 *    by a `cdk deploy` or a duplicate invocation, is awaited and tried once more); `GetFunctionConfiguration` every
 *    `UPDATE_POLL_MS` until `LastUpdateStatus` is `Successful`; then `PublishVersion` with the `CodeSha256` of the
 *    update (`targetVersion`). Lambda does not publish a new version when code and configuration are unchanged: it
 *    returns the newest version, which may be the one `live` serves. `$LATEST` is never served.
 * 5. Functions whose `targetVersion` differs from `previousVersion` (and adopted ones) are "changed". None: success.
 * 6. Deadline check: less than `RELEASE_MARGIN_MS` left to this invocation fails the job before any alarm or
 *    deployment exists.
 * 7. One CloudWatch metric-math alarm per `FUNCTIONS_PER_ALARM` changed functions, named
 *    `<ALARM_PREFIX>-<release id>-<n>`: the sum of `AWS/Lambda` `Errors` of the *new* versions only.
 * 8. `CreateDeployment` for every changed function not adopted (each only while `CREATE_MARGIN_MS` are left): an
 *    AppSpec moving the alias from `previousVersion` to `targetVersion` with the `BeforeAllowTraffic` hook, *every*
 *    release alarm and automatic rollback. The description is the JSON `{releaseId, functionId, functionName,
 *    aliasName, targetVersion, previousVersion}`. A `DeploymentLimitExceededException` whose running deployment is
 *    this release's is adopted. Any other failure after a deployment exists starts the coordinated rollback.
 * 9. `PutJobSuccessResult` with a continuation token (see `ReleaseState`).
 *
 * Later invocations, phase `wait`: `GetDeployment` for every deployment.
 * - All `Succeeded`: `DeleteAlarms`, then `PutJobSuccessResult` with the output variable `versions` (`id=version,...`).
 * - Any `Failed` or `Stopped`, an error, or `maxWaitMs` of wall-clock time since `startedAt`: the coordinated
 *   rollback starts (phase `rollback`, below) in the same invocation.
 * - Otherwise: pause `POLL_DELAY_MS` (never past the Lambda deadline minus `REPORTING_MARGIN_MS`), continue.
 *
 * Phase `rollback` (every function back on its previous version, verified, before the job says so): per deployment,
 * - still running: `StopDeployment` with rollback (again each time until it ends). `DeploymentAlreadyCompleted`
 *   (it ended between the read and the stop): read again and handled by its new state, below;
 * - `Succeeded` (also one that succeeded before it could be stopped): `UpdateAlias` back to `previousVersion`;
 * - `Failed` / `Stopped`: CodeDeploy rolls it back; its rollback deployment (`rollbackInfo.rollbackDeploymentId`) is
 *   followed until it ends. If then (or `ROLLBACK_GRACE_MS` after the rollback started, without a rollback
 *   deployment) the alias still is not on `previousVersion`, the controller moves it back itself;
 * - a function counts as restored only when `GetAlias` (or `UpdateAlias`'s answer) shows `previousVersion` with no
 *   other version weighted.
 * When every function is restored (or cannot be, for a reason named): `DeleteAlarms`, and the job fails saying which
 * version each function serves. Not finished `ROLLBACK_LIMIT_MINUTES` after the rollback started: the job fails
 * saying what each function serves now and what is still moving (the alarms are kept while deployments run).
 * Every limit ends the action before CodePipeline's own (24 hours, see `serverless-release-limits.ts`).
 *
 * AWS errors: a throttling or transient error while following counts as one more poll; any other error starts the
 * rollback. Never throws, except when `PutJobSuccessResult` / `PutJobFailureResult` fails (logged and rethrown). The
 * event is never logged: it carries artifact credentials.
 *
 * Why the continuation token holds deployment ids only: `PutJobSuccessResult.continuationToken` is at most 2048
 * characters (CodePipeline API Reference), far too little for the details of 100 functions; each deployment's
 * description holds them, and the alarm names follow from `ALARM_PREFIX`, the release id and their number.
 *
 * References: CodePipeline User Guide, "AWS Lambda invoke action reference" and "Quotas in AWS CodePipeline";
 * CodePipeline API Reference, `PutJobSuccessResult`; CodeDeploy User Guide, "AppSpec 'resources' section (AWS Lambda
 * deployments only)"; CodeDeploy API Reference, `CreateDeployment` (`overrideAlarmConfiguration`, at most 10 alarms),
 * `ListDeployments` (`includeOnlyStatuses`), `GetDeployment` (`rollbackInfo`), `StopDeployment`
 * (`DeploymentAlreadyCompletedException`); Lambda API Reference, `UpdateFunctionCode`, `GetFunctionConfiguration`,
 * `PublishVersion`, `GetAlias`, `UpdateAlias`; CloudWatch API Reference, `DescribeAlarms`, `DeleteAlarms`.
 *
 * Configuration (environment): `FUNCTIONS`, `CODEDEPLOY_APPLICATION`, `ARTIFACT_BUCKET`, `PRE_TRAFFIC_HOOK`,
 * `ALARM_PREFIX`, optional `ALARM_TOPIC_ARN` and `MAX_WAIT_MINUTES`.
 */
import { CloudWatchClient, DeleteAlarmsCommand, DescribeAlarmsCommand, PutMetricAlarmCommand } from '@aws-sdk/client-cloudwatch';
import type { MetricDataQuery, PutMetricAlarmCommandInput } from '@aws-sdk/client-cloudwatch';
import {
  CodeDeployClient,
  CreateDeploymentCommand,
  GetDeploymentCommand,
  ListDeploymentsCommand,
  StopDeploymentCommand,
} from '@aws-sdk/client-codedeploy';
import type { CreateDeploymentCommandInput, DeploymentInfo, DeploymentStatus } from '@aws-sdk/client-codedeploy';
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
import { DEFAULT_MAX_WAIT_MINUTES, MAX_WAIT_LIMIT_MINUTES, ROLLBACK_LIMIT_MINUTES } from './serverless-release-limits';
import { AwsCallError, awsCall, awsErrorOf as awsError, isAccessDenied } from './shared/aws-call';
import { isCodePipelineEvent, JobDeps, sendJobResult } from './shared/codepipeline-job';
import { clip, defaultSleep, describeError, describeJson, errorMessage, errorName, isObject, log, logError } from './shared/common';
import type { Parsed } from './shared/common';
import { isRetryable } from './shared/retryable';

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
/** How long a release waits for its deployments when `MAX_WAIT_MINUTES` is not set, wall-clock from `startedAt`. */
export const DEFAULT_MAX_WAIT_MS = DEFAULT_MAX_WAIT_MINUTES * 60_000;
/** The longest `MAX_WAIT_MINUTES` accepted: below CodePipeline's 24 hours with the rollback and a margin. */
export const MAX_WAIT_LIMIT_MS = MAX_WAIT_LIMIT_MINUTES * 60_000;
/** How long the coordinated rollback may take, wall-clock from its start, before the job reports what is left. */
export const ROLLBACK_LIMIT_MS = ROLLBACK_LIMIT_MINUTES * 60_000;
/** How long a failed or stopped deployment without a rollback deployment is left to CodeDeploy before the alias is moved back by the controller. */
export const ROLLBACK_GRACE_MS = 60_000;
/** Time kept back from the Lambda deadline to report to CodePipeline after the pause. */
export const REPORTING_MARGIN_MS = 5_000;
/** Time that must be left to the first invocation, after the code updates, to create the alarms, the deployments and report. */
export const RELEASE_MARGIN_MS = 20_000;
/** Time that must be left before each `CreateDeployment`: enough to start the rollback of those created and report. */
export const CREATE_MARGIN_MS = 10_000;
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
/** `ListDeployments` pages read at most per deployment group (a bound, should a token never end). */
export const LIST_PAGE_LIMIT = 10;

/** CodeDeploy deployment states that mean "still going" (also the `includeOnlyStatuses` of `ListDeployments`). */
export const RUNNING_STATUSES: readonly DeploymentStatus[] = ['Created', 'Queued', 'InProgress', 'Baking', 'Ready'];
const RUNNING: ReadonlySet<string> = new Set(RUNNING_STATUSES);
/** CodeDeploy deployment states that end a release badly. */
const BROKEN: ReadonlySet<string> = new Set(['Failed', 'Stopped']);

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
  /** How long the release may wait for its deployments, wall-clock from its start (`MAX_WAIT_MINUTES`). */
  readonly maxWaitMs: number;
}

/** A function of the release with the version its alias serves and the version it is to serve. */
export interface FunctionRelease {
  readonly id: string;
  readonly functionName: string;
  readonly aliasName: string;
  readonly previousVersion: string;
  readonly targetVersion: string;
}

/** A release of a function as a deployment's description tells it, with the release it belongs to when named. */
export interface DescribedRelease extends FunctionRelease {
  readonly releaseId?: string;
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

/** Reads the configuration; every variable but `ALARM_TOPIC_ARN` and `MAX_WAIT_MINUTES` is required. Never throws. */
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
  let maxWaitMs = DEFAULT_MAX_WAIT_MS;
  if (maxWait !== '') {
    const wanted = Number(maxWait);
    if (!Number.isInteger(wanted) || wanted < 1 || wanted > MAX_WAIT_LIMIT_MINUTES) {
      return {
        ok: false,
        error: `MAX_WAIT_MINUTES must be a whole number of minutes from 1 to ${MAX_WAIT_LIMIT_MINUTES} (CodePipeline fails the action after 24 hours, `
          + `and the rollback needs up to ${ROLLBACK_LIMIT_MINUTES} minutes of it), got ${describeJson(maxWait)}`,
      };
    }
    maxWaitMs = wanted * 60_000;
  }
  return {
    ok: true,
    value: {
      maxWaitMs,
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

/** The deployment's description: what later invocations (and the pre-traffic hook) need to know of the function. */
export function describeDeployment(release: FunctionRelease, releaseId: string): string {
  return JSON.stringify({
    releaseId,
    functionId: release.id,
    functionName: release.functionName,
    aliasName: release.aliasName,
    targetVersion: release.targetVersion,
    previousVersion: release.previousVersion,
  });
}

/**
 * Reads a description written by `describeDeployment` (by this version, with `releaseId`, or an earlier one,
 * without); `undefined` for anything else. Never throws.
 */
export function parseDeploymentDescription(description: unknown): DescribedRelease | undefined {
  if (typeof description !== 'string') return undefined;
  try {
    const parsed: unknown = JSON.parse(description);
    if (!isObject(parsed)) return undefined;
    const { releaseId, functionId, functionName, aliasName, targetVersion, previousVersion } = parsed;
    const values = [functionId, functionName, aliasName, targetVersion, previousVersion];
    if (!values.every((value) => typeof value === 'string' && value !== '')) return undefined;
    return {
      id: functionId as string,
      functionName: functionName as string,
      aliasName: aliasName as string,
      previousVersion: previousVersion as string,
      targetVersion: targetVersion as string,
      ...(typeof releaseId === 'string' && releaseId !== '' ? { releaseId } : {}),
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
  releaseId: string,
): CreateDeploymentCommandInput {
  return {
    applicationName: config.applicationName,
    deploymentGroupName: fn.deploymentGroupName,
    revision: { revisionType: 'AppSpecContent', appSpecContent: { content: buildAppSpec(release, config.preTrafficHook) } },
    description: describeDeployment(release, releaseId),
    overrideAlarmConfiguration: { enabled: true, ignorePollAlarmFailure: false, alarms: alarmNames.map((name) => ({ name })) },
    autoRollbackConfiguration: { enabled: true, events: ['DEPLOYMENT_FAILURE', 'DEPLOYMENT_STOP_ON_ALARM', 'DEPLOYMENT_STOP_ON_REQUEST'] },
  };
}

// ---------------------------------------------------------------------------------------------------------------
// The continuation token
// ---------------------------------------------------------------------------------------------------------------

/**
 * What one invocation hands to the next, as the continuation token (at most `CONTINUATION_TOKEN_LIMIT` characters):
 * `{"phase":"wait","startedAt":1767225600000,"polls":0,"releaseId":"1a2b3c4d","alarms":1,"deployments":["d-ABCDEFGHI",...]}`.
 * Alarm names are `alarmNameFor(ALARM_PREFIX, releaseId, 1..alarms)`; each deployment's description names its
 * function and versions. In phase `rollback` it also holds when the rollback started, why (clipped to fit) and the
 * failure type to report.
 */
export interface ReleaseState {
  readonly phase: 'wait' | 'rollback';
  /** When the first invocation started (ms since the epoch): the wall-clock limits count from it. */
  readonly startedAt: number;
  /** "Not finished yet" answers given so far (for the logs; limits are wall-clock). */
  readonly polls: number;
  readonly releaseId: string;
  /** How many alarms the release created. */
  readonly alarms: number;
  /** The CodeDeploy deployment ids, one per changed function. */
  readonly deployments: readonly string[];
  /** Phase `rollback`: when it started (ms since the epoch). */
  readonly rollbackAt?: number;
  /** Phase `rollback`: why the release is rolled back. */
  readonly cause?: string;
  /** Phase `rollback`: the failure type reported when it ends. */
  readonly failureType?: 'JobFailed' | 'PermissionError';
}

/** The token; a rollback's `cause` is clipped so that the token fits in `CONTINUATION_TOKEN_LIMIT`. */
export function encodeState(state: ReleaseState): string {
  const encode = (cause?: string) => JSON.stringify({
    phase: state.phase,
    startedAt: state.startedAt,
    polls: state.polls,
    releaseId: state.releaseId,
    alarms: state.alarms,
    deployments: state.deployments,
    ...(state.phase === 'rollback' ? { rollbackAt: state.rollbackAt, cause, failureType: state.failureType } : {}),
  });
  let cause = state.cause ?? '';
  let token = encode(cause);
  // An escaped character takes up to 6 in the token: cut by a share of the excess until it fits.
  while (token.length > CONTINUATION_TOKEN_LIMIT && cause.length > 0) {
    const excess = token.length - CONTINUATION_TOKEN_LIMIT;
    cause = cause.length <= 2 ? '' : clip(cause, Math.max(2, cause.length - Math.ceil(excess / 2)));
    token = encode(cause);
  }
  return token;
}

const isTime = (value: unknown): value is number => Number.isSafeInteger(value) && (value as number) > 0;

/**
 * No token: the first invocation; otherwise the `ReleaseState` an earlier invocation wrote, checked. A token of the
 * controller before wall-clock limits (no `startedAt`, written before a `cdk deploy` updated the controller in the
 * middle of a release) is still followed: its start is taken as `polls` × `POLL_DELAY_MS` before `now`, the least
 * it can have taken. Never throws.
 */
export function parseContinuationToken(token: unknown, now: number = Date.now()): { readonly kind: 'start' } | {
  readonly kind: 'follow'; readonly state: ReleaseState;
} | { readonly kind: 'invalid'; readonly error: string } {
  if (token === undefined || token === null || token === '') return { kind: 'start' };
  const invalid = { kind: 'invalid', error: `not a release state: ${describeJson(token)}` } as const;
  if (typeof token !== 'string') return invalid;
  let parsed: unknown;
  try {
    parsed = JSON.parse(token);
  } catch {
    return invalid;
  }
  if (!isObject(parsed) || (parsed.phase !== 'wait' && parsed.phase !== 'rollback')) return invalid;
  const { polls, releaseId, alarms, deployments } = parsed;
  if (!Number.isSafeInteger(polls) || (polls as number) < 0) return invalid;
  if (typeof releaseId !== 'string' || releaseId === '' || releaseId.length > 64) return invalid;
  if (!Number.isSafeInteger(alarms) || (alarms as number) < 0 || (alarms as number) > MAX_FUNCTIONS / FUNCTIONS_PER_ALARM) return invalid;
  if (!Array.isArray(deployments) || deployments.length === 0 || deployments.length > MAX_FUNCTIONS) return invalid;
  if (!deployments.every((id) => typeof id === 'string' && id !== '')) return invalid;
  let startedAt: number;
  if (parsed.startedAt === undefined && parsed.phase === 'wait') startedAt = now - (polls as number) * POLL_DELAY_MS;
  else if (isTime(parsed.startedAt)) startedAt = parsed.startedAt;
  else return invalid;
  const base = { startedAt, polls: polls as number, releaseId, alarms: alarms as number, deployments: deployments as string[] };
  if (parsed.phase === 'wait') return { kind: 'follow', state: { phase: 'wait', ...base } };
  const { rollbackAt, cause, failureType } = parsed;
  if (!isTime(rollbackAt) || typeof cause !== 'string' || (failureType !== 'JobFailed' && failureType !== 'PermissionError')) return invalid;
  return { kind: 'follow', state: { phase: 'rollback', ...base, rollbackAt, cause, failureType } };
}

// ---------------------------------------------------------------------------------------------------------------
// AWS errors
// ---------------------------------------------------------------------------------------------------------------

/** `awsCall` naming what the call acts on: every call here names one. */
function call<T>(api: string, subject: string, send: () => Promise<T>): Promise<T> {
  return awsCall(api, send, { subject });
}

/** A reason to fail the job that is not an AWS error. */
class JobError extends Error {
  constructor(message: string, readonly type: FailureType = 'JobFailed') {
    super(message);
    this.name = 'JobError';
  }
}

/** What to tell CodePipeline about an error: the message, the failure type, and whether it was transient. */
function explain(err: unknown): { message: string; type: FailureType; transient: boolean } {
  if (err instanceof JobError) return { message: err.message, type: err.type, transient: false };
  if (err instanceof AwsCallError) {
    return { message: err.message, type: isAccessDenied(err.error) ? 'PermissionError' : 'JobFailed', transient: isRetryable(err.error) };
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
  /** Deployments running (phase `wait`) or being rolled back (phase `rollback`): CodePipeline invokes again. */
  | { readonly result: 'continue'; readonly phase: 'wait' | 'rollback'; readonly polls: number }
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
  const now = deps.now ?? Date.now;
  const token = parseContinuationToken(cpJob.data?.continuationToken, now());

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
  };
  if (token.kind === 'start') return startRelease(job);
  return token.state.phase === 'wait' ? followRelease(job, token.state) : rollBack(job, token.state);
}

// ---------------------------------------------------------------------------------------------------------------
// First invocation: check that no other release runs, ship the code, create the alarms and the deployments
// ---------------------------------------------------------------------------------------------------------------

const NOTHING_RELEASED = 'no alias was changed: production still serves the previous versions';

/** A deployment still running in one of the release's deployment groups. */
interface ActiveDeployment {
  readonly deploymentId: string;
  readonly groupName: string;
  readonly info: DeploymentInfo;
  readonly release?: DescribedRelease;
}

async function startRelease(job: Job): Promise<JobOutcome> {
  const { config } = job;
  const startedAt = job.now();

  // 1. Deployments still running: this release's are adopted, any other refuses the release.
  let active: ActiveDeployment[];
  try {
    active = (await mapLimit(config.functions, CONCURRENCY, (fn) => listActiveDeployments(job, fn))).flat();
  } catch (err) {
    return failBeforeDeployments(job, err, [], [], 'could not check that no other release is running');
  }
  const adopted = new Map<string, ActiveDeployment>();
  const others: ActiveDeployment[] = [];
  for (const a of active) {
    if (a.release?.releaseId === job.releaseId) adopted.set(a.groupName, a);
    else others.push(a);
  }
  if (others.length > 0) {
    const which = others.map((a) => `${activeLabel(a)} is ${a.info.status ?? 'running'}`
      + (a.release?.releaseId ? ` (release ${a.release.releaseId})` : ' (not created by this controller, or by an earlier version of it)'));
    return fail(job.jobId, 'JobFailed',
      `refused: another release is still running in this API's deployment groups: ${which.join('; ')}. Only one release runs at a time: `
      + 'retry the stage when it has finished, or stop it (aws deploy stop-deployment --deployment-id <id> --auto-rollback-enabled). '
      + 'This release did not wait, and changed no code, alias or alarm',
      { ...job.fields, decision: 'refused: another release is running', running: others.map((a) => a.deploymentId) });
  }
  if (adopted.size > 0) {
    log('INFO', 'deployments of this release are already running (a duplicate or retried invocation): adopting them, creating none twice', {
      ...job.fields, adopted: [...adopted.values()].map((a) => a.deploymentId),
    });
  }

  // 2. What each alias serves now.
  let aliases: Array<{ version: string; weights: Record<string, number> }>;
  try {
    aliases = await mapLimit(config.functions, CONCURRENCY, (fn) => readAlias(fn));
  } catch (err) {
    return failBeforeDeployments(job, err);
  }
  const shifting = config.functions.flatMap((fn, i) =>
    (Object.keys(aliases[i].weights).length > 0 && !adopted.has(fn.deploymentGroupName) ? [{ fn, alias: aliases[i] }] : []));
  if (shifting.length > 0) {
    const which = shifting.map(({ fn, alias }) =>
      `alias ${fn.aliasName} of function ${label(fn)} serves version ${alias.version} and sends ${JSON.stringify(alias.weights)} to other versions`);
    return fail(job.jobId, 'JobFailed',
      `${which.join('; ')}: a traffic shift was left half done (no deployment is running for it), and CodeDeploy refuses such an alias. `
      + 'Point the alias at a single version (aws lambda update-alias --function-name <name> --name <alias> --function-version <version> '
      + `--routing-config AdditionalVersionWeights={}), then retry the stage; ${NOTHING_RELEASED}`,
      { ...job.fields, shifting: shifting.map(({ fn }) => fn.id) });
  }

  // 3. Delete the alarms of earlier releases that have no running deployment (best effort, never fails).
  await sweepStaleAlarms(job, active);

  // 4. Ship the code and publish a version of each function (adopted ones already have theirs).
  let targets: string[];
  try {
    targets = await mapLimit(config.functions, CONCURRENCY,
      async (fn) => adopted.get(fn.deploymentGroupName)?.release?.targetVersion ?? shipCode(job, fn));
  } catch (err) {
    return failBeforeDeployments(job, err);
  }
  const releases: FunctionRelease[] = config.functions.map((fn, i) => {
    const own = adopted.get(fn.deploymentGroupName)?.release;
    return {
      id: fn.id,
      functionName: fn.functionName,
      aliasName: fn.aliasName,
      previousVersion: own?.previousVersion ?? aliases[i].version,
      targetVersion: targets[i],
    };
  });

  // 5. What changed.
  const changedIndexes = releases.flatMap((release, i) =>
    (release.targetVersion !== release.previousVersion || adopted.has(config.functions[i].deploymentGroupName) ? [i] : []));
  const unchanged = releases.filter((_, i) => !changedIndexes.includes(i)).map((release) => release.id);
  if (changedIndexes.length === 0) {
    log('INFO', 'nothing to shift: every alias already serves the published code', { ...job.fields, unchanged });
    await report(job.jobId, new PutJobSuccessResultCommand({ jobId: job.jobId, outputVariables: { versions: 'none' } }), { ...job.fields, decision: 'unchanged' });
    return { result: 'unchanged' };
  }
  const changed = changedIndexes.map((i) => ({ fn: config.functions[i], release: releases[i] }));

  // 6. Enough time left to create the alarms and deployments, and to report?
  const left = timeLeft(job);
  if (left < RELEASE_MARGIN_MS && adopted.size === 0) {
    return failBeforeDeployments(job, new JobError(`only ${Math.max(0, Math.floor(left / 1000))} s were left to this invocation after the code updates, `
      + `less than the ${RELEASE_MARGIN_MS / 1000} s needed to create the alarms and deployments and report: retry the stage`));
  }

  // 7. The release alarms (the same names and contents in a duplicate invocation: PutMetricAlarm overwrites).
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
    if (adopted.size > 0) {
      // The adopted deployments are watched by these alarms: keep them, roll the release back.
      return startRollback(job, { startedAt, alarms: alarmNames.length, deployments: [...adopted.values()].map((a) => a.deploymentId) }, err);
    }
    const problems = await deleteAlarms(job, created);
    const done = created.length > 0 && problems.length === 0 ? ['deleted the alarms already created'] : [];
    return failBeforeDeployments(job, err, done, problems);
  }

  // 8. One deployment per changed function, each watched by every alarm.
  const deployments: Array<{ fn: ReleasedFunction; release: FunctionRelease; deploymentId: string; adopted: boolean }> = [];
  try {
    for (const { fn, release } of changed) {
      const own = adopted.get(fn.deploymentGroupName);
      if (own) {
        deployments.push({ fn, release, deploymentId: own.deploymentId, adopted: true });
        continue;
      }
      const remaining = timeLeft(job);
      if (remaining < CREATE_MARGIN_MS) {
        throw new JobError(`the time left to this invocation ran short (${Math.max(0, Math.floor(remaining / 1000))} s) before the deployment of function `
          + `${label(fn)} could be created`);
      }
      const deploymentId = await createDeployment(job, fn, release, alarmNames);
      deployments.push({ fn, release, deploymentId, adopted: false });
    }
  } catch (err) {
    if (deployments.length > 0) {
      return startRollback(job, { startedAt, alarms: alarmNames.length, deployments: deployments.map((d) => d.deploymentId) }, err);
    }
    const { message, type, transient } = explain(err);
    const alarmProblems = await deleteAlarms(job, alarmNames);
    const parts = [
      `${message}${transient ? ' (a transient error: retry the stage)' : ''}`,
      ...(alarmProblems.length === 0 ? ['deleted the release alarms'] : []),
      NOTHING_RELEASED,
      ...problemText(alarmProblems),
    ];
    return fail(job.jobId, type, parts.join('; '), { ...job.fields, decision: 'failed before any deployment' });
  }

  // 9. Follow the deployments in later invocations.
  const token = encodeState({
    phase: 'wait',
    startedAt: earliestStart(startedAt, adopted),
    polls: 0,
    releaseId: job.releaseId,
    alarms: alarmNames.length,
    deployments: deployments.map((d) => d.deploymentId),
  });
  log('INFO', 'deployments created: following them', {
    ...job.fields,
    alarms: alarmNames,
    unchanged,
    deployments: deployments.map((d) => ({
      id: d.release.id,
      deploymentId: d.deploymentId,
      from: d.release.previousVersion,
      to: d.release.targetVersion,
      ...(d.adopted ? { adopted: true } : {}),
    })),
  });
  await report(job.jobId, new PutJobSuccessResultCommand({ jobId: job.jobId, continuationToken: token }), { ...job.fields, decision: 'continue' });
  return { result: 'continue', phase: 'wait', polls: 0 };
}

/** An adopted release started when its first deployment was created (or now). */
function earliestStart(now: number, adopted: ReadonlyMap<string, ActiveDeployment>): number {
  const times = [...adopted.values()].map((a) => a.info.createTime?.getTime()).filter((t): t is number => t !== undefined && Number.isFinite(t));
  return Math.min(now, ...times);
}

/** Milliseconds left before the Lambda deadline (unbounded without one). */
function timeLeft(job: Job): number {
  return job.deadline === undefined ? Number.POSITIVE_INFINITY : job.deadline - job.now();
}

/**
 * `CreateDeployment`; the new deployment's id. `DeploymentLimitExceededException` (the group already has a running
 * deployment): if that deployment is this release's (a duplicate invocation created it meanwhile), its id is
 * returned instead; otherwise the error is thrown.
 */
async function createDeployment(job: Job, fn: ReleasedFunction, release: FunctionRelease, alarmNames: readonly string[]): Promise<string> {
  const input = buildDeployment(fn, release, alarmNames, job.config, job.releaseId);
  try {
    const output = await call('codedeploy:CreateDeployment', `function ${label(fn)}`, () => codeDeploy.send(new CreateDeploymentCommand(input)));
    if (!output.deploymentId) throw new JobError(`codedeploy:CreateDeployment returned no deployment id for function ${label(fn)}`);
    return output.deploymentId;
  } catch (err) {
    if (errorName(awsError(err)) !== 'DeploymentLimitExceededException') throw err;
    let running: ActiveDeployment[];
    try {
      running = await listActiveDeployments(job, fn);
    } catch {
      throw err;
    }
    const own = running.find((a) => a.release?.releaseId === job.releaseId && a.release.targetVersion === release.targetVersion);
    if (own === undefined) throw err;
    log('INFO', 'a duplicate invocation created this deployment meanwhile: adopting it', { ...job.fields, function: fn.id, deploymentId: own.deploymentId });
    return own.deploymentId;
  }
}

/** The running deployments of `fn`'s deployment group, each with its description read. Throws `AwsCallError`. */
async function listActiveDeployments(job: Job, fn: ReleasedFunction): Promise<ActiveDeployment[]> {
  const ids: string[] = [];
  let nextToken: string | undefined;
  for (let page = 0; page < LIST_PAGE_LIMIT; page++) {
    const output = await call('codedeploy:ListDeployments', `deployment group ${fn.deploymentGroupName}`, () => codeDeploy.send(new ListDeploymentsCommand({
      applicationName: job.config.applicationName,
      deploymentGroupName: fn.deploymentGroupName,
      includeOnlyStatuses: [...RUNNING_STATUSES],
      ...(nextToken === undefined ? {} : { nextToken }),
    })));
    ids.push(...(output.deployments ?? []));
    nextToken = output.nextToken || undefined;
    if (nextToken === undefined) break;
  }
  const found: ActiveDeployment[] = [];
  for (const deploymentId of ids) {
    const output = await call('codedeploy:GetDeployment', `deployment ${deploymentId}`, () => codeDeploy.send(new GetDeploymentCommand({ deploymentId })));
    const info = output.deploymentInfo ?? {};
    // Listed as running, but it may have ended since: only what is still running counts.
    if (info.status !== undefined && !RUNNING.has(info.status)) continue;
    found.push({ deploymentId, groupName: fn.deploymentGroupName, info, release: parseDeploymentDescription(info.description) });
  }
  return found;
}

function activeLabel(a: ActiveDeployment): string {
  return a.release ? `deployment ${a.deploymentId} of function ${a.release.id} (${a.release.functionName})` : `deployment ${a.deploymentId} in group ${a.groupName}`;
}

/** The release id in an alarm name `<prefix>-<release id>-<n>`, or `undefined` for another shape. */
export function releaseOfAlarm(alarmPrefix: string, alarmName: string): string | undefined {
  if (!alarmName.startsWith(`${alarmPrefix}-`)) return undefined;
  const match = /^(.+)-[1-9]\d*$/.exec(alarmName.slice(alarmPrefix.length + 1));
  return match?.[1];
}

/**
 * Deletes the metric alarms named `<ALARM_PREFIX>-<release id>-<n>` whose release has no running deployment in
 * `active`: alarms of releases whose controller ended before it could delete them (see step 3 of the file comment).
 * Best effort: an error is logged as WARN, never thrown, and the release goes on.
 */
async function sweepStaleAlarms(job: Job, active: readonly ActiveDeployment[]): Promise<void> {
  const alarmNamePrefix = `${job.config.alarmPrefix}-`;
  const fields = { ...job.fields, alarmNamePrefix };
  // Here every running deployment is this release's: one of another or unknown release refused the release (step 1).
  const running = new Set<string>([job.releaseId, ...active.flatMap((a) => (a.release?.releaseId === undefined ? [] : [a.release.releaseId]))]);
  const found = new Set<string>();
  const kept = new Set<string>();
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
        const name = alarm.AlarmName ?? '';
        const owner = releaseOfAlarm(job.config.alarmPrefix, name);
        if (owner === undefined) continue;
        if (running.has(owner)) kept.add(name);
        else found.add(name);
      }
      nextToken = output.NextToken || undefined;
      if (nextToken === undefined) break;
    }
  } catch (err) {
    log('WARN', 'could not look for stale release alarms: releasing without the sweep', { ...fields, error: describeError(err) });
    return;
  }
  if (kept.size > 0) log('INFO', 'kept the alarms of releases with running deployments', { ...fields, alarms: [...kept] });
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
      const notDeleted = batches.slice(i).flat();
      log('WARN', 'could not delete stale release alarms: releasing without deleting them', { ...fields, error: describeError(err), notDeleted });
      break;
    }
  }
  if (deleted.length > 0) log('INFO', 'deleted stale release alarms left by an earlier release', { ...fields, alarms: deleted });
}

async function readAlias(fn: { readonly functionName: string; readonly aliasName: string; readonly id: string }): Promise<{
  version: string; weights: Record<string, number>;
}> {
  const alias = await call('lambda:GetAlias', `function ${label(fn)}`, () => lambda.send(new GetAliasCommand({ FunctionName: fn.functionName, Name: fn.aliasName })));
  if (!alias.FunctionVersion) throw new JobError(`lambda:GetAlias named no version for alias ${fn.aliasName} of function ${label(fn)}`);
  return { version: alias.FunctionVersion, weights: alias.RoutingConfig?.AdditionalVersionWeights ?? {} };
}

/**
 * Updates `$LATEST` from the zip, waits for the update, publishes a version: the target version. An update in
 * progress (`ResourceConflictException`: a `cdk deploy` changing the configuration, or a duplicate invocation) is
 * awaited, then the update is tried once more.
 */
async function shipCode(job: Job, fn: ReleasedFunction): Promise<string> {
  const subject = `function ${label(fn)}`;
  const key = artifactKey(job.prefix, fn.id);
  const update = () => call('lambda:UpdateFunctionCode', subject, () => lambda.send(new UpdateFunctionCodeCommand({
    FunctionName: fn.functionName,
    S3Bucket: job.config.artifactBucket,
    S3Key: key,
    Publish: false,
  })));
  let updated;
  try {
    updated = await update();
  } catch (err) {
    if (errorName(awsError(err)) !== 'ResourceConflictException') throw err;
    log('INFO', 'another update of the function is in progress: waiting for it, then updating the code', { ...job.fields, function: fn.id });
    await waitForUpdate(job, fn);
    updated = await update();
  }
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
async function failBeforeDeployments(
  job: Job, err: unknown, done: readonly string[] = [], problems: readonly string[] = [], context?: string,
): Promise<JobOutcome> {
  const { message, type, transient } = explain(err);
  const parts = [`${context ? `${context}: ` : ''}${message}${transient ? ' (a transient error: retry the stage)' : ''}`, ...done, NOTHING_RELEASED, ...problemText(problems)];
  return fail(job.jobId, type, parts.join('; '), { ...job.fields, decision: 'failed before any deployment' });
}

// ---------------------------------------------------------------------------------------------------------------
// Later invocations, phase `wait`: follow the deployments
// ---------------------------------------------------------------------------------------------------------------

/** What one `GetDeployment` told. */
interface Looked {
  readonly deploymentId: string;
  readonly info?: DeploymentInfo;
  /** The function and versions, from the description. */
  readonly release?: DescribedRelease;
  readonly error?: unknown;
}

async function lookAt(deploymentId: string): Promise<Looked> {
  try {
    const output = await call('codedeploy:GetDeployment', `deployment ${deploymentId}`, () => codeDeploy.send(new GetDeploymentCommand({ deploymentId })));
    const info = output.deploymentInfo ?? {};
    return { deploymentId, info, release: parseDeploymentDescription(info.description) };
  } catch (err) {
    return { deploymentId, error: err };
  }
}

async function followRelease(job: Job, state: ReleaseState): Promise<JobOutcome> {
  const fields = { ...job.fields, phase: 'wait', polls: state.polls };
  const alarmNames = alarmNamesOf(job, state);
  const looked = await mapLimit(state.deployments, CONCURRENCY, lookAt);

  const statusOf = (l: Looked) => l.info?.status ?? 'unknown';
  const broken = looked.filter((l) => l.info !== undefined && !RUNNING.has(statusOf(l)) && statusOf(l) !== 'Succeeded');
  const errors = looked.filter((l) => l.error !== undefined && !isRetryable(awsError(l.error)));
  const throttled = looked.filter((l) => l.error !== undefined && isRetryable(awsError(l.error)));

  if (broken.length > 0) {
    const what = broken.map((l) => {
      const status = statusOf(l);
      const errorInfo = l.info?.errorInformation;
      const error = [errorInfo?.code, errorInfo?.message].filter(Boolean).join(': ');
      const meaning = BROKEN.has(status) ? '' : ' (a status this function does not know)';
      return `${deploymentLabel(l)} is ${status}${meaning}${error ? `: ${error}` : ''}`;
    });
    return startRollback(job, state, new JobError(what.join('; ')), looked);
  }
  if (errors.length > 0) {
    const type: FailureType = errors.some((l) => isAccessDenied(awsError(l.error))) ? 'PermissionError' : 'JobFailed';
    return startRollback(job, state, new JobError(errors.map((l) => explain(l.error).message).join('; '), type), looked);
  }
  if (looked.every((l) => statusOf(l) === 'Succeeded')) {
    const problems = await deleteAlarms(job, alarmNames);
    const versions = clip(looked.map((l) => (l.release ? `${l.release.id}=${l.release.targetVersion}` : `${l.deploymentId}=?`)).join(','), OUTPUT_VARIABLE_LIMIT);
    log('INFO', 'release succeeded: every changed function serves its new version', { ...fields, versions, alarmProblems: problems });
    await report(job.jobId, new PutJobSuccessResultCommand({ jobId: job.jobId, outputVariables: { versions } }), { ...fields, decision: 'released' });
    return { result: 'released', versions };
  }

  const waiting = looked.filter((l) => l.info !== undefined && RUNNING.has(statusOf(l))).map((l) => `${deploymentLabel(l)} is ${statusOf(l)}`);
  const reason = [...waiting, ...throttled.map((l) => `${explain(l.error).message} (transient)`)].join('; ');
  const elapsed = job.now() - state.startedAt;
  if (elapsed >= job.config.maxWaitMs) {
    return startRollback(job, state, new JobError(`the release did not finish in time: still not finished after ${minutes(elapsed)} `
      + `(the limit is ${minutes(job.config.maxWaitMs)}): ${reason}`), looked);
  }
  return continueLater(job, { ...state, polls: state.polls + 1 }, { ...fields, reason, elapsedMs: elapsed, maxWaitMs: job.config.maxWaitMs });
}

function alarmNamesOf(job: Job, state: Pick<ReleaseState, 'alarms' | 'releaseId'>): string[] {
  return Array.from({ length: state.alarms }, (_, i) => alarmNameFor(job.config.alarmPrefix, state.releaseId, i + 1));
}

function minutes(ms: number): string {
  const m = Math.floor(ms / 60_000);
  return `${m} minute${m === 1 ? '' : 's'}`;
}

/** Pauses, then answers "not finished" with the next state. */
async function continueLater(job: Job, next: ReleaseState, fields: Record<string, unknown>): Promise<JobOutcome> {
  const delayMs = pauseMs(job);
  log('INFO', next.phase === 'wait' ? 'release not finished: checking again later' : 'rollback not finished: checking again later', {
    ...fields, nextPolls: next.polls, delayMs,
  });
  await job.sleep(delayMs);
  await report(job.jobId, new PutJobSuccessResultCommand({ jobId: job.jobId, continuationToken: encodeState(next) }), { ...fields, decision: 'continue' });
  return { result: 'continue', phase: next.phase, polls: next.polls };
}

// ---------------------------------------------------------------------------------------------------------------
// Phase `rollback`: every function back on its previous version, verified
// ---------------------------------------------------------------------------------------------------------------

/** Starts the coordinated rollback (now, in this invocation) because of `err`. */
async function startRollback(
  job: Job,
  state: Pick<ReleaseState, 'startedAt' | 'alarms' | 'deployments'> & { readonly polls?: number },
  err: unknown,
  looked?: readonly Looked[],
): Promise<JobOutcome> {
  const { message, type, transient } = explain(err);
  const failureType = type === 'PermissionError' ? 'PermissionError' : 'JobFailed';
  const rollback: ReleaseState = {
    phase: 'rollback',
    startedAt: state.startedAt,
    polls: state.polls ?? 0,
    releaseId: job.releaseId,
    alarms: state.alarms,
    deployments: state.deployments,
    rollbackAt: job.now(),
    cause: `${message}${transient ? ' (a transient error)' : ''}`,
    failureType,
  };
  log('INFO', 'rolling every function of the release back', { ...job.fields, cause: rollback.cause, deployments: state.deployments });
  return rollBack(job, rollback, looked);
}

/** Where one function of the release stands in the rollback. */
interface Settled {
  readonly deploymentId: string;
  /** `restored`: verified on its previous version; `pending`: still moving; `stuck`: not restored, and this controller cannot change that. */
  readonly kind: 'restored' | 'pending' | 'stuck';
  /** What happens or what is wrong, for the operator. */
  readonly note: string;
  readonly release?: DescribedRelease;
  /** What the alias serves, when read: `7`, or `13 (with 0.1 to 12)`. */
  readonly serves?: string;
  /** A deployment of the function (or CodeDeploy's rollback of it) is still running. */
  readonly moving?: boolean;
}

/**
 * One pass of the coordinated rollback (see the file comment): acts on every deployment, then fails the job once
 * every function is restored or cannot be, or when `ROLLBACK_LIMIT_MS` have passed; otherwise continues later.
 */
async function rollBack(job: Job, state: ReleaseState, looked?: readonly Looked[]): Promise<JobOutcome> {
  const fields = { ...job.fields, phase: 'rollback', polls: state.polls };
  const known = new Map((looked ?? []).filter((l) => l.info !== undefined).map((l) => [l.deploymentId, l]));
  const settled = await mapLimit(state.deployments, CONCURRENCY, (deploymentId) => settle(job, state, deploymentId, known.get(deploymentId)));
  const pending = settled.filter((s) => s.kind === 'pending');
  const stuck = settled.filter((s) => s.kind === 'stuck');
  const restored = settled.filter((s) => s.kind === 'restored');
  const rollbackAt = state.rollbackAt ?? job.now();
  const timedOut = job.now() - rollbackAt >= ROLLBACK_LIMIT_MS;
  if (pending.length > 0 && !timedOut) {
    return continueLater(job, { ...state, polls: state.polls + 1 }, { ...fields, pending: pending.map((s) => s.note) });
  }

  // The end of the rollback: say what production runs.
  const stillRunning = pending.some((s) => s.moving === true);
  const alarmNames = alarmNamesOf(job, state);
  const alarmProblems = stillRunning ? [] : await deleteAlarms(job, alarmNames);
  const alarmsText = stillRunning
    ? [`kept the release alarms ${alarmNames.join(', ')} while deployments still run: delete them when these end`]
    : alarmProblems.length === 0 ? ['deleted the release alarms'] : [];
  const servesText = (list: readonly Settled[]) => list.map((s) => `${s.release ? s.release.id : s.deploymentId}=${s.serves ?? 'unknown'}`).join(', ');
  const parts = [`release ${state.releaseId} failed: ${state.cause ?? 'unknown cause'}`];
  if (pending.length === 0 && stuck.length === 0) {
    parts.push(`rolled back: every function serves its previous version again (verified): ${servesText(restored)}`);
  } else {
    if (pending.length > 0) {
      // Still moving here means the time is up (otherwise the rollback continues above).
      parts.push(`the rollback did NOT finish within ${minutes(ROLLBACK_LIMIT_MS)}: production may run MIXED versions`);
    } else {
      parts.push('the rollback is NOT complete: production runs MIXED versions');
    }
    if (restored.length > 0) parts.push(`back on the previous version: ${servesText(restored)}`);
    const open = [...stuck, ...pending];
    parts.push(`NOT back on the previous version: ${open.map((s) => `${s.release ? `${s.release.id} serves ${s.serves ?? 'unknown'} (previous ${s.release.previousVersion}, `
      + `new ${s.release.targetVersion})` : s.deploymentId}: ${s.note}`).join('; ')}; check by hand`);
  }
  parts.push(...alarmsText, ...problemText(alarmProblems));
  return fail(job.jobId, state.failureType ?? 'JobFailed', parts.join('; '), {
    ...fields, restored: restored.map((s) => s.deploymentId), pending: pending.map((s) => s.note), stuck: stuck.map((s) => s.note),
  });
}

/** The rollback of one deployment's function: acts, and tells where it stands. */
async function settle(job: Job, state: ReleaseState, deploymentId: string, known?: Looked): Promise<Settled> {
  let l = known ?? await lookAt(deploymentId);
  if (l.error !== undefined) {
    const transient = isRetryable(awsError(l.error));
    return { deploymentId, kind: transient ? 'pending' : 'stuck', note: `could not be read: ${explain(l.error).message}` };
  }
  const release = l.release;
  if (release === undefined) {
    return { deploymentId, kind: 'stuck', note: `deployment ${deploymentId} cannot be rolled back or checked: its description does not name the function and versions` };
  }
  const at = { deploymentId, release };
  if (!isEnded(l.info?.status)) {
    // Still running (or a state this function does not know): stop it with rollback, again until it ends.
    try {
      const output = await call('codedeploy:StopDeployment', deploymentLabel(l), () => codeDeploy.send(new StopDeploymentCommand({ deploymentId, autoRollbackEnabled: true })));
      return { ...at, kind: 'pending', moving: true, note: `${deploymentLabel(l)} is being stopped with rollback (${output.status ?? 'accepted'})` };
    } catch (err) {
      if (errorName(awsError(err)) !== 'DeploymentAlreadyCompletedException') {
        logError('could not stop a deployment', awsError(err), { ...job.fields, deploymentId });
        return { ...at, kind: 'pending', moving: true, note: `${deploymentLabel(l)} is still running: could not stop it (${explain(err).message})` };
      }
      // It ended between the read and the stop: read again, and handle what it became.
      l = await lookAt(deploymentId);
      if (l.error !== undefined || !isEnded(l.info?.status)) {
        return { ...at, kind: 'pending', moving: true, note: `${deploymentLabel(at)} ended before it could be stopped: to be checked again` };
      }
    }
  }
  const status = l.info!.status!;
  if (status === 'Succeeded') return revertAlias(job, at, 'its deployment had succeeded');

  // Failed or Stopped: CodeDeploy rolls it back; follow its rollback deployment, then check the alias.
  const rollbackId = l.info?.rollbackInfo?.rollbackDeploymentId;
  if (rollbackId) {
    const rb = await lookAt(rollbackId);
    if (rb.error !== undefined && isRetryable(awsError(rb.error))) {
      return { ...at, kind: 'pending', moving: true, note: `CodeDeploy's rollback ${rollbackId} could not be read: ${explain(rb.error).message}` };
    }
    if (rb.info !== undefined && !isEnded(rb.info.status)) {
      return { ...at, kind: 'pending', moving: true, note: `CodeDeploy's rollback deployment ${rollbackId} is running (${rb.info.status})` };
    }
  }
  let alias: { version: string; weights: Record<string, number> };
  try {
    alias = await readAlias(release);
  } catch (err) {
    return { ...at, kind: isRetryable(awsError(err)) ? 'pending' : 'stuck', note: explain(err).message };
  }
  if (isOn(alias, release.previousVersion)) return { ...at, kind: 'restored', note: 'rolled back by CodeDeploy', serves: servesOf(alias) };
  const since = job.now() - (state.rollbackAt ?? job.now());
  if (!rollbackId && since < ROLLBACK_GRACE_MS) {
    return { ...at, kind: 'pending', moving: true, note: `${deploymentLabel(l)} is ${status}: CodeDeploy is rolling it back`, serves: servesOf(alias) };
  }
  return revertAlias(job, at, `CodeDeploy's rollback did not return it to version ${release.previousVersion}`, alias);
}

/** Moves the alias back to the previous version unless it is there already; verified by the answer of `UpdateAlias`. */
async function revertAlias(
  job: Job,
  at: { readonly deploymentId: string; readonly release: DescribedRelease },
  why: string,
  read?: { version: string; weights: Record<string, number> },
): Promise<Settled> {
  const { release } = at;
  let alias = read;
  if (alias === undefined) {
    try {
      alias = await readAlias(release);
    } catch (err) {
      return { ...at, kind: isRetryable(awsError(err)) ? 'pending' : 'stuck', note: explain(err).message };
    }
  }
  if (isOn(alias, release.previousVersion)) return { ...at, kind: 'restored', note: 'already back', serves: servesOf(alias) };
  try {
    const output = await call('lambda:UpdateAlias', `function ${release.id} (${release.functionName})`, () => lambda.send(new UpdateAliasCommand({
      FunctionName: release.functionName,
      Name: release.aliasName,
      FunctionVersion: release.previousVersion,
      RoutingConfig: { AdditionalVersionWeights: {} },
    })));
    const now = { version: output.FunctionVersion ?? '?', weights: output.RoutingConfig?.AdditionalVersionWeights ?? {} };
    if (isOn(now, release.previousVersion)) {
      log('INFO', 'moved an alias back to its previous version', { ...job.fields, function: release.id, from: servesOf(alias), to: release.previousVersion, why });
      return { ...at, kind: 'restored', note: `moved back by the controller (${why})`, serves: servesOf(now) };
    }
    return { ...at, kind: 'pending', note: `UpdateAlias answered version ${servesOf(now)}: to be checked again`, serves: servesOf(now) };
  } catch (err) {
    logError('could not move an alias back', awsError(err), { ...job.fields, deploymentId: at.deploymentId });
    return {
      ...at,
      kind: isRetryable(awsError(err)) ? 'pending' : 'stuck',
      note: `could not move the alias back (${why}): ${explain(err).message}`,
      serves: servesOf(alias),
    };
  }
}

function isEnded(status: string | undefined): boolean {
  return status === 'Succeeded' || BROKEN.has(status ?? '');
}

function isOn(alias: { version: string; weights: Record<string, number> }, version: string): boolean {
  return alias.version === version && Object.keys(alias.weights).length === 0;
}

function servesOf(alias: { version: string; weights: Record<string, number> }): string {
  const others = Object.entries(alias.weights).map(([version, weight]) => `${weight} to ${version}`);
  return others.length === 0 ? alias.version : `${alias.version} (with ${others.join(', ')})`;
}

/** `DeleteAlarms`; errors are logged and returned as problems, never thrown. */
async function deleteAlarms(job: Job, alarmNames: readonly string[]): Promise<string[]> {
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
function problemText(problems: readonly string[]): string[] {
  return problems.length === 0 ? [] : [`NOT fully cleaned up, check by hand: ${problems.join('; ')}`];
}

function deploymentLabel(l: Pick<Looked, 'deploymentId' | 'release'>): string {
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

function report(jobId: string, command: PutJobSuccessResultCommand | PutJobFailureResultCommand, fields: Record<string, unknown>): Promise<void> {
  return sendJobResult(codePipeline, jobId, command, fields);
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

function label(fn: { readonly id: string; readonly functionName: string }): string {
  return `${fn.id} (${fn.functionName})`;
}
