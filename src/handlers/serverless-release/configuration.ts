/**
 * The serverless release controller's configuration and what it sends: the limits, the environment (`FUNCTIONS`,
 * `CODEDEPLOY_APPLICATION`, `ARTIFACT_BUCKET`, `PRE_TRAFFIC_HOOK`, `ALARM_PREFIX`, optional `ALARM_TOPIC_ARN` and
 * `MAX_WAIT_MINUTES`), the action's user parameters, and the AppSpec, alarm and deployment built from them. Pure
 * functions. The release invariants: ADR 0007.
 */
import type { MetricDataQuery, PutMetricAlarmCommandInput } from '@aws-sdk/client-cloudwatch';
import type { CreateDeploymentCommandInput, DeploymentStatus } from '@aws-sdk/client-codedeploy';
import { DEFAULT_MAX_WAIT_MINUTES, MAX_WAIT_LIMIT_MINUTES, ROLLBACK_LIMIT_MINUTES } from '../serverless-release-limits';
import { parseUserParametersObject } from '../shared/codepipeline-job';
import { clip, describeJson, errorMessage, isObject } from '../shared/common';
import type { Parsed } from '../shared/common';

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
export const RUNNING: ReadonlySet<string> = new Set(RUNNING_STATUSES);
/** CodeDeploy deployment states that end a release badly. */
export const BROKEN: ReadonlySet<string> = new Set(['Failed', 'Stopped']);

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
  /**
   * The share of production traffic on the new versions after each step of the deployment configuration, ending at
   * 100 (`TRAFFIC_STEPS`, e.g. `10,100` for a canary): numbers the traffic step events. Unset or invalid: only the
   * 100 % step is reported, as step 1 of 1.
   */
  readonly trafficSteps?: readonly number[];
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

export const FUNCTION_ID = /^[A-Za-z0-9_-]{1,100}$/;
// An alias name: letters, digits, - and _, not only digits (that would be a version).
export const ALIAS_NAME = /^(?!\d+$)[A-Za-z0-9_-]{1,128}$/;

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

export const REQUIRED_ENV = ['FUNCTIONS', 'CODEDEPLOY_APPLICATION', 'ARTIFACT_BUCKET', 'PRE_TRAFFIC_HOOK', 'ALARM_PREFIX'] as const;

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
      ...(parseTrafficSteps(env.TRAFFIC_STEPS) ? { trafficSteps: parseTrafficSteps(env.TRAFFIC_STEPS) } : {}),
    },
  };
}

/**
 * `TRAFFIC_STEPS`: increasing whole percentages from 1 to 100, comma-separated, the last 100. Anything else is
 * undefined (the release does not depend on it: only its traffic step events do).
 */
export function parseTrafficSteps(text: string | undefined): number[] | undefined {
  if (text === undefined || text.trim() === '') return undefined;
  const steps = text.split(',').map((part) => Number(part.trim()));
  const valid = steps.length <= 100 && steps.every((p, i) => Number.isInteger(p) && p >= 1 && p <= 100 && (i === 0 || p > steps[i - 1]))
    && steps[steps.length - 1] === 100;
  return valid ? steps : undefined;
}

/**
 * Parses CodePipeline's `UserParameters`: a JSON object whose `prefix` is the S3 key prefix of the zips
 * (`releases/<execution id>`): no whitespace, no leading or trailing `/`, no empty or `..` segment. Never throws.
 */
export function parseUserParameters(userParameters: unknown): Parsed<{
  readonly prefix: string; readonly pipeline?: string; readonly executionId?: string;
}> {
  const object = parseUserParametersObject(userParameters, '{"prefix":"<S3 key prefix>"}');
  if (!object.ok) return object;
  const parsed = object.value;
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
  // Optional, for the traffic step events only: ignored (no events) when missing or malformed, never a failure.
  const pipeline = typeof parsed.pipeline === 'string' && /^[A-Za-z0-9.@_-]{1,100}$/.test(parsed.pipeline) ? parsed.pipeline : undefined;
  const executionId = typeof parsed.executionId === 'string' && /^[0-9a-f-]{36}$/.test(parsed.executionId) ? parsed.executionId : undefined;
  return { ok: true, value: { prefix, ...(pipeline ? { pipeline } : {}), ...(executionId ? { executionId } : {}) } };
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
