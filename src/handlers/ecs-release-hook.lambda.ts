/**
 * Release gate of a Fargate service deployed with Amazon ECS native blue/green deployments: a Lambda lifecycle hook
 * registered at `POST_TEST_TRAFFIC_SHIFT`, when the new (green) service revision serves all the traffic of the TEST
 * listener and production still goes to the blue revision.
 *
 * Contract, from "Lambda hooks for Amazon ECS service deployments" and "Lifecycle hooks for Amazon ECS service
 * deployments" (Amazon ECS Developer Guide, lambda-lifecycle-hooks.html and deployment-lifecycle-hooks.html): ECS
 * invokes the function synchronously and reads `{ hookStatus, callBackDelay?, hookDetails? }` from its return value.
 * `SUCCEEDED` lets the deployment go on to the production traffic shift; `FAILED` rolls it back; `IN_PROGRESS` makes
 * ECS invoke the function again after `callBackDelay` seconds (default 30), passing the `hookDetails` returned here
 * back in the next event's `hookDetails`. A thrown error or a missing `hookStatus` also rolls back, so the handler
 * never throws: every path ends in a decision, logged as one JSON line.
 *
 * Flow of one invocation:
 *
 * 1. There is no rollback branch: during a rollback ECS runs the hooks of `TEST_TRAFFIC_SHIFT` and
 *    `PRODUCTION_TRAFFIC_SHIFT` only (Developer Guide, "Lifecycle hooks for Amazon ECS service deployments"), never
 *    this stage. Past `HOOK_TIME_LIMIT_SECONDS` since the hook's first invocation for the deployment
 *    (`hookDetails.startedAt`, carried by every `IN_PROGRESS` answer): `FAILED`, before any call (invariant 4).
 * 2. The green image: `ecs:DescribeServiceRevisions` on `executionDetails.targetServiceRevisionArn`, image of the
 *    container `CONTAINER_NAME`. Anything missing: `FAILED`.
 * 3. Green image = `PLACEHOLDER_IMAGE` (what the service runs before the first release, e.g. while CloudFormation
 *    creates it): `SUCCEEDED`, no smoke test.
 * 4. Smoke test through the test listener (same semantics as the ECS path of `smoke-test.lambda.ts`, whose helpers
 *    this handler reuses): target not ready (no response or 5xx) gives `IN_PROGRESS` until `ECS_MAX_INVOCATIONS`,
 *    anything else that fails gives `FAILED`. Skipped when `hookDetails.smokeTest` is `passed` (set by an earlier
 *    `IN_PROGRESS` answer of this hook).
 * 5. The release guard, with every approval setting (invariant 5: a `cdk deploy` cannot overtake a release):
 *    a. `ssm:GetParameter` `IMAGE_PARAMETER_NAME` (the image in production) and `codepipeline:GetPipelineState`:
 *       the latest execution of stage `RELEASE_STAGE_NAME` (no such stage: `FAILED`, misconfiguration).
 *    b. `codepipeline:ListActionExecutions` of that execution: the start of the latest run of `DEPLOY_ACTION_NAME`
 *       and, once the stage ended, the release's end (its actions' last update). `ecs:ListServiceDeployments` of the
 *       service since that start (`CLOCK_SKEW_MS` earlier): this release's deployment is the first of them; the
 *       event's deployment is `resourceArn`.
 *    c. Stage running and the event's deployment is not the release's (a `cdk deploy`, whatever image it carries,
 *       or one that cannot be identified): `FAILED`, so ECS rolls it back and the stack update fails, leaving the
 *       release alone. Stage ended: the release's own deployment is `FAILED` (the release was stopped or gave up,
 *       and the recorder will not record it); another deployment created during the release is `FAILED` too.
 *    d. Outside a release: the image in production (a redeployment by `cdk deploy`) is `SUCCEEDED`; a new image is
 *       `FAILED` with an approval gate (only the release stage ships new images), `SUCCEEDED` without one.
 *    e. The release's own deployment: `FAILED` once `HOOK_TIME_LIMIT_SECONDS` have passed since the deploy action
 *       started (invariant 4: ECS rolls back before the deploy action's hour ends); without a gate `SUCCEEDED`.
 * 6. Approval gate (when `APPROVAL_ACTION_NAME` is set), for the release's own deployment. The gate opens when the
 *    smoke test has passed: the first invocation that reaches it records the time (`deps.now` of `releaseHook`, ISO
 *    8601) in `hookDetails.gateOpenedAt`, which every later `IN_PROGRESS` answer carries on. The approval action's
 *    latest run in the same pipeline execution (from 5b):
 *    - `Succeeded` at or after `gateOpenedAt` (`lastUpdateTime`): `SUCCEEDED`.
 *    - `Succeeded` before `gateOpenedAt`, or at an unknown time: `FAILED`. The approval action starts together with
 *      the ECS deploy action, so it can be approved before the new version even runs on the test listener; such an
 *      early approval reviewed nothing. The release rolls back and must be run (and approved) again.
 *    - `InProgress` or not started yet: `IN_PROGRESS` every 60 seconds with `hookDetails.smokeTest = 'passed'` and
 *      `gateOpenedAt`. With `NOTIFY_TOPIC_ARN` set, the first such answer first publishes a "ready for review"
 *      message to that SNS topic (`sns:Publish`: the image, `TEST_URL`, the passed smoke test, and which approval
 *      waits) and records `hookDetails.notified = true`, so later invocations do not publish again. A publish that
 *      fails is logged and does not change the answer: a transient error is tried again at the next invocation, any
 *      other error is recorded as `notified = false` and not tried again.
 *    - `Failed` / `Abandoned` (rejected, timed out): `FAILED`.
 * 7. AWS errors: throttling and server-side errors give `IN_PROGRESS` after 30 seconds, counted in
 *    `hookDetails.awsErrorRetries` (consecutive), `FAILED` after `AWS_ERROR_MAX_RETRIES`; the answer keeps
 *    `smokeTest`, `gateOpenedAt`, `notified` and `startedAt`. Any other AWS error (access denied, bad parameter...)
 *    gives `FAILED`.
 *
 * A duplicated or retried invocation (the same event twice) gets the same answer: the hook keeps no state of its own
 * outside `hookDetails`. (A retried first invocation that publishes may publish the message twice.)
 *
 * `hookDetails` keys written by this hook: `smokeTestInvocations` (smoke-test.lambda.ts), `smokeTest`,
 * `gateOpenedAt`, `notified`, `awsErrorRetries`, `startedAt`.
 *
 * Environment: `CONTAINER_NAME`, `PLACEHOLDER_IMAGE`, the `SMOKE_TEST_*` variables of smoke-test.lambda.ts,
 * `IMAGE_PARAMETER_NAME`, `PIPELINE_NAME`, `RELEASE_STAGE_NAME`, `DEPLOY_ACTION_NAME`, `HOOK_TIME_LIMIT_SECONDS`, and
 * for the gate `APPROVAL_ACTION_NAME`, optional `NOTIFY_TOPIC_ARN` and `TEST_URL` (the test listener's URL, quoted in
 * the message; both are ignored without the gate). IAM: `ecs:DescribeServiceRevisions`, `ecs:ListServiceDeployments`,
 * `ssm:GetParameter`, `codepipeline:GetPipelineState`, `codepipeline:ListActionExecutions`, and with the gate
 * `sns:Publish` on the topic.
 *
 * The Lambda deadline is respected: the smoke test ends early enough to answer, and AWS calls are aborted before the
 * deadline (which counts as a retryable error).
 */
import { CodePipelineClient, GetPipelineStateCommand, ListActionExecutionsCommand } from '@aws-sdk/client-codepipeline';
import type { ActionExecutionDetail } from '@aws-sdk/client-codepipeline';
import { DescribeServiceRevisionsCommand, ECSClient, ListServiceDeploymentsCommand } from '@aws-sdk/client-ecs';
import type { ServiceDeploymentBrief } from '@aws-sdk/client-ecs';
import { PublishCommand, SNSClient } from '@aws-sdk/client-sns';
import { GetParameterCommand, SSMClient } from '@aws-sdk/client-ssm';
import type { Context } from 'aws-lambda';
import { AwsCallError, awsCall } from './shared/aws-call';
import type { Parsed } from './shared/common';
import { isRetryable } from './shared/retryable';
import type { EcsLifecycleHookEvent, EcsLifecycleHookResponse, SmokeTestResult } from './shared/smoke-check';
import {
  ECS_CALLBACK_DELAY_SECONDS,
  ECS_INVOCATIONS_KEY,
  ECS_MAX_INVOCATIONS,
  REPORTING_MARGIN_MS,
  parseConfig,
  parseOverrides,
  runSmokeTest,
  targetNotReady,
} from './shared/smoke-check';

// ---------------------------------------------------------------------------------------------------------------
// AWS clients: module scope, so that warm invocations reuse connections. Few SDK attempts: a throttled call is
// retried by ECS itself (IN_PROGRESS), which costs no Lambda time.
// ---------------------------------------------------------------------------------------------------------------

/** Exported for tests. */
export const ecs = new ECSClient({ maxAttempts: 3 });
/** Exported for tests. */
export const ssm = new SSMClient({ maxAttempts: 3 });
/** Exported for tests. */
export const codePipeline = new CodePipelineClient({ maxAttempts: 3 });
/** Exported for tests. */
export const sns = new SNSClient({ maxAttempts: 3 });

// ---------------------------------------------------------------------------------------------------------------
// Limits and hookDetails keys
// ---------------------------------------------------------------------------------------------------------------

/** Key in `hookDetails`: `passed` once the smoke test of this deployment passed (the gate is still pending). */
export const SMOKE_TEST_STATE_KEY = 'smokeTest';
/** Value of `hookDetails.smokeTest` once the smoke test passed. */
export const SMOKE_TEST_PASSED = 'passed';
/** Key in `hookDetails`: when the approval gate opened (ISO 8601): approvals given earlier do not count. */
export const GATE_OPENED_AT_KEY = 'gateOpenedAt';
/**
 * Key in `hookDetails`: `true` once the "ready for review" message was published; `false` after a publish that
 * failed with an error retrying does not fix (not tried again).
 */
export const NOTIFIED_KEY = 'notified';
/** Key in `hookDetails`: when the hook was first invoked for this deployment (ISO 8601), the start of its time limit. */
export const STARTED_AT_KEY = 'startedAt';
/**
 * Deployments created up to this long before the deploy action's start still count as created after it (the two
 * times come from the clocks of two services).
 */
export const CLOCK_SKEW_MS = 5_000;
/** SNS limit for `Subject`. */
export const SNS_SUBJECT_LIMIT = 100;
/** Key in `hookDetails`: consecutive `IN_PROGRESS` answers given because of a transient AWS error. */
export const AWS_ERROR_RETRIES_KEY = 'awsErrorRetries';
/** How many consecutive transient AWS errors are answered with `IN_PROGRESS`; the next one is `FAILED`. */
export const AWS_ERROR_MAX_RETRIES = 10;
/** Seconds before ECS invokes the hook again after a transient AWS error. */
export const AWS_ERROR_CALLBACK_DELAY_SECONDS = 30;
/** Seconds before ECS invokes the hook again while the approval is pending. */
export const APPROVAL_CALLBACK_DELAY_SECONDS = 60;
/** At most this many pages of `ListActionExecutions` are read (100 executions each). */
const MAX_ACTION_EXECUTION_PAGES = 20;

// ---------------------------------------------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------------------------------------------

/** Where the release runs: what the hook needs to tell this release's deployment from a `cdk deploy` (step 5). */
export interface ReleaseGuardConfig {
  /** SSM String parameter holding the image URI in production (`IMAGE_PARAMETER_NAME`). */
  readonly imageParameterName: string;
  /** `PIPELINE_NAME` */
  readonly pipelineName: string;
  /** `RELEASE_STAGE_NAME`: the release stage, running while ECS deploys. */
  readonly stageName: string;
  /** `DEPLOY_ACTION_NAME`: the ECS deploy action in that stage, which starts the release's service deployment. */
  readonly deployActionName: string;
  /**
   * `HOOK_TIME_LIMIT_SECONDS`: the longest the hook holds a deployment, counted from the deploy action's start (or
   * the hook's first invocation for a deployment outside a release); past it the hook answers `FAILED`.
   */
  readonly timeLimitSeconds: number;
}

/** The approval gate: which approval action of the release stage releases a new image. */
export interface ApprovalGateConfig extends ReleaseGuardConfig {
  /** `APPROVAL_ACTION_NAME`: the manual approval action in the release stage. */
  readonly actionName: string;
  /** `NOTIFY_TOPIC_ARN`: SNS topic that gets the "ready for review" message. Absent: no message. */
  readonly notifyTopicArn?: string;
  /** `TEST_URL`: the test listener's URL, quoted in the message. */
  readonly testUrl?: string;
}

/** Configuration of the hook, apart from the smoke test's own (see `parseConfig` of smoke-test.lambda.ts). */
export interface ReleaseHookConfig {
  /** `CONTAINER_NAME`: the application container of the task definition. */
  readonly containerName: string;
  /** `PLACEHOLDER_IMAGE`: the image the service runs before the first release. */
  readonly placeholderImage: string;
  /** The release guard, with every approval setting. */
  readonly release: ReleaseGuardConfig;
  /** Absent when `APPROVAL_ACTION_NAME` is not set. */
  readonly gate?: ApprovalGateConfig;
}

const RELEASE_VARIABLES = ['IMAGE_PARAMETER_NAME', 'PIPELINE_NAME', 'RELEASE_STAGE_NAME', 'DEPLOY_ACTION_NAME', 'HOOK_TIME_LIMIT_SECONDS'] as const;

/** Reads and validates the hook's environment. Never throws. */
export function parseReleaseHookConfig(env: Record<string, string | undefined>): Parsed<ReleaseHookConfig> {
  const containerName = nonEmpty(env.CONTAINER_NAME);
  if (containerName === undefined) {
    return { ok: false, error: 'CONTAINER_NAME is not set: the name of the application container is required' };
  }
  const placeholderImage = nonEmpty(env.PLACEHOLDER_IMAGE);
  if (placeholderImage === undefined) {
    return { ok: false, error: 'PLACEHOLDER_IMAGE is not set: the image the service runs before the first release is required' };
  }
  const missing = RELEASE_VARIABLES.filter((name) => nonEmpty(env[name]) === undefined);
  if (missing.length > 0) {
    return { ok: false, error: `misconfiguration: ${missing.join(', ')} not set: the hook needs them to tell the release's deployment from a cdk deploy` };
  }
  const limit = nonEmpty(env.HOOK_TIME_LIMIT_SECONDS)!;
  if (!/^[1-9][0-9]*$/.test(limit)) {
    return { ok: false, error: `misconfiguration: HOOK_TIME_LIMIT_SECONDS must be a positive whole number of seconds, got ${JSON.stringify(limit)}` };
  }
  const release: ReleaseGuardConfig = {
    imageParameterName: nonEmpty(env.IMAGE_PARAMETER_NAME)!,
    pipelineName: nonEmpty(env.PIPELINE_NAME)!,
    stageName: nonEmpty(env.RELEASE_STAGE_NAME)!,
    deployActionName: nonEmpty(env.DEPLOY_ACTION_NAME)!,
    timeLimitSeconds: Number(limit),
  };
  const actionName = nonEmpty(env.APPROVAL_ACTION_NAME);
  if (actionName === undefined) return { ok: true, value: { containerName, placeholderImage, release } };
  return {
    ok: true,
    value: {
      containerName,
      placeholderImage,
      release,
      gate: {
        ...release,
        actionName,
        ...optional('notifyTopicArn', nonEmpty(env.NOTIFY_TOPIC_ARN)),
        ...optional('testUrl', nonEmpty(env.TEST_URL)),
      },
    },
  };
}

// ---------------------------------------------------------------------------------------------------------------
// AWS errors
// ---------------------------------------------------------------------------------------------------------------

/** The least time an AWS call is started with. */
const MIN_AWS_CALL_TIME_MS = 500;

/** One AWS call, aborted at the deadline; a failure is an `AwsCallError` naming the API. */
function call<T>(api: string, deadline: number | undefined, send: (options: { abortSignal?: AbortSignal }) => Promise<T>): Promise<T> {
  return awsCall(api, send, { deadline, minTimeMs: MIN_AWS_CALL_TIME_MS });
}

// ---------------------------------------------------------------------------------------------------------------
// Decisions
// ---------------------------------------------------------------------------------------------------------------

interface Decision {
  readonly response: EcsLifecycleHookResponse;
  /** One readable line: why. */
  readonly reason: string;
  /** Logged with the decision. */
  readonly fields?: Record<string, unknown>;
}

/** What this invocation knows, carried into `hookDetails` when it answers `IN_PROGRESS`. */
interface HookState {
  smokeTestPassed: boolean;
  /** `hookDetails.smokeTestInvocations` as received. */
  readonly smokeTestInvocations?: number;
  /** `hookDetails.awsErrorRetries` as received. */
  readonly awsErrorRetries: number;
  /** `hookDetails.gateOpenedAt` as received (normalized ISO 8601), or set by this invocation when the gate opens. */
  gateOpenedAt?: string;
  /** `hookDetails.notified` as received, or set by this invocation's publish. */
  notified?: boolean;
  /** `hookDetails.startedAt` as received (normalized ISO 8601), or this invocation's time when it is the first. */
  readonly startedAt: string;
}

/** The `hookDetails` that keep the gate's progress: smoke test passed, when the gate opened, whether notified. */
function gateProgress(state: HookState): Record<string, unknown> {
  const details: Record<string, unknown> = { [STARTED_AT_KEY]: state.startedAt };
  if (state.smokeTestPassed) details[SMOKE_TEST_STATE_KEY] = SMOKE_TEST_PASSED;
  if (state.gateOpenedAt !== undefined) details[GATE_OPENED_AT_KEY] = state.gateOpenedAt;
  if (state.notified !== undefined) details[NOTIFIED_KEY] = state.notified;
  return details;
}

const succeeded = (reason: string, fields?: Record<string, unknown>): Decision => ({ response: { hookStatus: 'SUCCEEDED' }, reason, fields });
const failed = (reason: string, fields?: Record<string, unknown>): Decision => ({ response: { hookStatus: 'FAILED' }, reason, fields });

/** `IN_PROGRESS` after a step that worked: the count of consecutive AWS errors starts again. */
function inProgress(
  callBackDelay: number,
  hookDetails: Record<string, unknown>,
  state: HookState,
  reason: string,
  fields?: Record<string, unknown>,
): Decision {
  // ECS merges the returned hookDetails into the next event's, so a counter left over from earlier errors is reset explicitly.
  const reset = state.awsErrorRetries > 0 ? { [AWS_ERROR_RETRIES_KEY]: 0 } : {};
  const details = { [STARTED_AT_KEY]: state.startedAt, ...hookDetails, ...reset };
  return { response: { hookStatus: 'IN_PROGRESS', callBackDelay, hookDetails: details }, reason, fields };
}

/** The answer to a failed AWS call: another try later when the error is transient and the retries last, else `FAILED`. */
function onAwsError(err: AwsCallError, state: HookState): Decision {
  const error = describeError(err.error);
  if (!isRetryable(err.error)) {
    return failed(`${err.api} failed with an error that retrying does not fix`, { action: err.api, error });
  }
  if (state.awsErrorRetries >= AWS_ERROR_MAX_RETRIES) {
    return failed(`${err.api} still failing after ${AWS_ERROR_MAX_RETRIES} retries`, { action: err.api, error, awsErrorRetries: state.awsErrorRetries });
  }
  const awsErrorRetries = state.awsErrorRetries + 1;
  const hookDetails: Record<string, unknown> = { [AWS_ERROR_RETRIES_KEY]: awsErrorRetries, ...gateProgress(state) };
  if (state.smokeTestInvocations !== undefined) hookDetails[ECS_INVOCATIONS_KEY] = state.smokeTestInvocations;
  return {
    response: { hookStatus: 'IN_PROGRESS', callBackDelay: AWS_ERROR_CALLBACK_DELAY_SECONDS, hookDetails },
    reason: `${err.api} failed with a transient error: trying again in ${AWS_ERROR_CALLBACK_DELAY_SECONDS} seconds (retry ${awsErrorRetries} of ${AWS_ERROR_MAX_RETRIES})`,
    fields: { action: err.api, error },
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Handler
// ---------------------------------------------------------------------------------------------------------------

/** What `releaseHook` needs from the outside world; each defaults to the real thing. */
export interface ReleaseHookDeps {
  /** The clock that dates the opening of the approval gate, in milliseconds since the epoch. @default `Date.now` */
  readonly now?: () => number;
}

/** Lambda entry point: `releaseHook` with the real clock. */
export async function handler(event: unknown, context?: Pick<Context, 'getRemainingTimeInMillis'>): Promise<EcsLifecycleHookResponse> {
  return releaseHook(event, context);
}

/**
 * The ECS lifecycle hook (see the file comment). Never throws: every outcome, including an unexpected error, is a
 * `hookStatus`, logged as one JSON line.
 */
export async function releaseHook(
  event: unknown,
  context?: Pick<Context, 'getRemainingTimeInMillis'>,
  deps: ReleaseHookDeps = {},
): Promise<EcsLifecycleHookResponse> {
  let fields: Record<string, unknown> = {};
  let decision: Decision;
  try {
    const remaining = typeof context?.getRemainingTimeInMillis === 'function' ? context.getRemainingTimeInMillis() : undefined;
    const deadline = typeof remaining === 'number' && Number.isFinite(remaining) ? Date.now() + remaining - REPORTING_MARGIN_MS : undefined;
    if (!isEcsLifecycleHookEvent(event)) {
      decision = failed('the event is not an Amazon ECS lifecycle hook event (no lifecycleStage or executionDetails)');
    } else {
      fields = {
        lifecycleStage: event.lifecycleStage,
        executionId: event.executionId,
        resourceArn: event.resourceArn,
        targetServiceRevisionArn: event.executionDetails.targetServiceRevisionArn,
      };
      decision = await decide(event, deadline, deps.now ?? Date.now);
    }
  } catch (err) {
    // Defensive: the steps catch their own errors, but ECS must get an answer whatever happens.
    decision = failed('unexpected error', { error: describeError(err) });
  }
  logDecision(decision, fields);
  return decision.response;
}

async function decide(event: EcsLifecycleHookEvent, deadline: number | undefined, now: () => number): Promise<Decision> {
  // No rollback branch: ECS runs hooks during a rollback only at TEST_TRAFFIC_SHIFT and PRODUCTION_TRAFFIC_SHIFT
  // (Developer Guide, "Lifecycle hooks for Amazon ECS service deployments"), and this hook is registered at
  // POST_TEST_TRAFFIC_SHIFT only (ADR 0006).
  const hookDetails = isObject(event.hookDetails) ? event.hookDetails : {};
  const state: HookState = {
    smokeTestPassed: hookDetails[SMOKE_TEST_STATE_KEY] === SMOKE_TEST_PASSED,
    smokeTestInvocations: counter(hookDetails[ECS_INVOCATIONS_KEY]),
    awsErrorRetries: counter(hookDetails[AWS_ERROR_RETRIES_KEY]) ?? 0,
    gateOpenedAt: isoTime(hookDetails[GATE_OPENED_AT_KEY]),
    notified: typeof hookDetails[NOTIFIED_KEY] === 'boolean' ? hookDetails[NOTIFIED_KEY] : undefined,
    startedAt: isoTime(hookDetails[STARTED_AT_KEY]) ?? new Date(now()).toISOString(),
  };

  const config = parseReleaseHookConfig(process.env);
  if (!config.ok) return failed(`invalid configuration: ${config.error}`);
  const { containerName, placeholderImage, release, gate } = config.value;
  // Invariant 4: whatever the hook waits for, it gives up in time for ECS to roll back within the deploy action's hour.
  const heldMs = now() - Date.parse(state.startedAt);
  if (heldMs >= release.timeLimitSeconds * 1000) {
    return failed(`no decision within ${release.timeLimitSeconds} seconds of the hook's first invocation (${state.startedAt}): the deployment rolls back`,
      { startedAt: state.startedAt, timeLimitSeconds: release.timeLimitSeconds });
  }

  // What is known so far, logged with an AWS error's decision.
  const known: Record<string, unknown> = {};
  try {
    const targetArn = event.executionDetails.targetServiceRevisionArn;
    if (typeof targetArn !== 'string' || targetArn === '') return failed('the event has no executionDetails.targetServiceRevisionArn');
    const green = await greenImage(targetArn, containerName, deadline);
    if (!green.ok) return failed(green.error);
    const image = green.value;
    known.image = image;

    if (image === placeholderImage) {
      return succeeded('the target revision runs the placeholder image (before the first release): nothing to test', { image });
    }

    let smokeTest: SmokeTestResult | undefined;
    if (!state.smokeTestPassed) {
      const outcome = await smokeTestOnce(hookDetails, state, deadline);
      if ('response' in outcome) return { ...outcome, fields: { image, ...outcome.fields } };
      smokeTest = outcome.result;
      state.smokeTestPassed = true;
      known.smokeTest = smokeTest;
    }
    const passed = smokeTest === undefined ? { smokeTest: 'passed in an earlier invocation' } : { smokeTest };

    // With a gate, the gate opens now, unless an earlier invocation opened it. Approvals given before reviewed nothing.
    if (gate !== undefined && state.gateOpenedAt === undefined) state.gateOpenedAt = new Date(now()).toISOString();
    if (state.gateOpenedAt !== undefined) known.gateOpenedAt = state.gateOpenedAt;
    const verdict = await releaseGuard(release, gate, event, image, smokeTest, state, deadline, now);
    const opened = state.gateOpenedAt === undefined ? {} : { gateOpenedAt: state.gateOpenedAt };
    return { ...verdict, fields: { image, ...passed, ...opened, ...verdict.fields } };
  } catch (err) {
    if (err instanceof AwsCallError) {
      const decision = onAwsError(err, state);
      return { ...decision, fields: { ...known, ...decision.fields } };
    }
    throw err;
  }
}

/** Image of `containerName` in the target service revision. */
async function greenImage(targetArn: string, containerName: string, deadline: number | undefined): Promise<Parsed<string>> {
  const response = await call('ecs:DescribeServiceRevisions', deadline, (options) =>
    ecs.send(new DescribeServiceRevisionsCommand({ serviceRevisionArns: [targetArn] }), options));
  const revision = response.serviceRevisions?.find((r) => r.serviceRevisionArn === targetArn) ?? response.serviceRevisions?.[0];
  if (revision === undefined) {
    const failures = (response.failures ?? []).map((f) => `${f.arn ?? '?'}: ${f.reason ?? '?'}${f.detail ? ` (${f.detail})` : ''}`);
    return { ok: false, error: `service revision ${targetArn} not found${failures.length > 0 ? `: ${failures.join('; ')}` : ''}` };
  }
  const container = revision.containerImages?.find((c) => c.containerName === containerName);
  if (container === undefined) {
    const names = (revision.containerImages ?? []).map((c) => JSON.stringify(c.containerName)).join(', ');
    return { ok: false, error: `service revision ${targetArn} has no container named ${JSON.stringify(containerName)} (containers: ${names || 'none'})` };
  }
  if (typeof container.image !== 'string' || container.image === '') {
    return { ok: false, error: `service revision ${targetArn} reports no image for container ${JSON.stringify(containerName)}` };
  }
  return { ok: true, value: container.image };
}

/**
 * The smoke test with the semantics of the ECS path of smoke-test.lambda.ts: the passing result, or the decision
 * (`IN_PROGRESS` while the target is not ready and invocations remain, `FAILED` otherwise).
 */
async function smokeTestOnce(
  hookDetails: Record<string, unknown>,
  state: HookState,
  deadline: number | undefined,
): Promise<{ readonly result: SmokeTestResult } | Decision> {
  const overrides = parseOverrides(hookDetails, 'hookDetails', false);
  if (!overrides.ok) return failed(`invalid smoke test configuration: ${overrides.error}`);
  const config = parseConfig(process.env, overrides.value);
  if (!config.ok) return failed(`invalid smoke test configuration: ${config.error}`);

  const result = await runSmokeTest(config.value, { deadline });
  if (result.passed) return { result };
  const invocation = (state.smokeTestInvocations ?? 0) + 1;
  const fields = { smokeTest: result, invocation, maxInvocations: ECS_MAX_INVOCATIONS };
  if (targetNotReady(result) && invocation < ECS_MAX_INVOCATIONS) {
    return inProgress(ECS_CALLBACK_DELAY_SECONDS, { [ECS_INVOCATIONS_KEY]: invocation }, state,
      `target not ready: trying again in ${ECS_CALLBACK_DELAY_SECONDS} seconds`, fields);
  }
  return failed(result.summary, fields);
}

/** The deployment `arn` among `deployments` (oldest first): whether it is the first, and when it was created. */
interface Position {
  /** The first deployment since the deploy action started: the release's own. */
  readonly first: boolean;
  /** When ECS created it; undefined when it is not among the deployments since the deploy action started. */
  readonly createdAt?: number;
}

function positionOf(deployments: readonly ServiceDeploymentBrief[], arn: string | undefined): Position {
  const index = arn === undefined ? -1 : deployments.findIndex((d) => d.serviceDeploymentArn === arn);
  if (index < 0) return { first: false };
  return { first: index === 0, createdAt: time(deployments[index].createdAt) };
}

/**
 * Step 5 of the file comment, after the smoke test passed: tells this release's deployment from any other one (a
 * `cdk deploy`, a manual update), with every approval setting, then (with a gate) waits for the approval.
 */
async function releaseGuard(
  release: ReleaseGuardConfig,
  gate: ApprovalGateConfig | undefined,
  event: EcsLifecycleHookEvent,
  image: string,
  smokeTest: SmokeTestResult | undefined,
  state: HookState,
  deadline: number | undefined,
  now: () => number,
): Promise<Decision> {
  const productionImage = await imageInProduction(release.imageParameterName, deadline);
  const pipelineState = await call('codepipeline:GetPipelineState', deadline, (options) =>
    codePipeline.send(new GetPipelineStateCommand({ name: release.pipelineName }), options));
  const stage = pipelineState.stageStates?.find((s) => s.stageName === release.stageName);
  const guardFields: Record<string, unknown> = {
    productionImage: productionImage ?? null,
    pipelineName: release.pipelineName,
    stageName: release.stageName,
  };
  if (stage === undefined) {
    return failed(`misconfiguration: pipeline ${release.pipelineName} has no stage named ${release.stageName}`, guardFields);
  }
  const stageStatus = stage.latestExecution?.status;
  const pipelineExecutionId = stage.latestExecution?.pipelineExecutionId;
  const running = stageStatus === 'InProgress';
  guardFields.stageStatus = stageStatus ?? null;
  guardFields.pipelineExecutionId = pipelineExecutionId ?? null;

  // The latest release: its deploy action's start, and (once the stage ended) its last action's end.
  const runs = pipelineExecutionId ? await stageActionRuns(release, pipelineExecutionId, deadline) : [];
  const deployStart = time(latestRun(runs, release.deployActionName)?.startTime);
  const releaseEnd = running ? Number.POSITIVE_INFINITY : Math.max(...runs.map((r) => Math.max(time(r.lastUpdateTime), time(r.startTime))));
  const deploymentArn = typeof event.resourceArn === 'string' && event.resourceArn !== '' ? event.resourceArn : undefined;
  let position: Position = { first: false };
  if (deployStart > Number.NEGATIVE_INFINITY) {
    const deployments = await deploymentsSince(event.executionDetails.serviceArn, deployStart - CLOCK_SKEW_MS, deadline);
    position = positionOf(deployments, deploymentArn);
    guardFields.releaseDeploymentArn = deployments[0]?.serviceDeploymentArn ?? null;
    guardFields.deployStartedAt = new Date(deployStart).toISOString();
  }
  const duringRelease = position.createdAt !== undefined && position.createdAt <= releaseEnd;
  const own = duringRelease && position.first;
  guardFields.serviceDeploymentArn = deploymentArn ?? null;
  guardFields.releaseDeployment = own;

  if (running && !own) {
    // A `cdk deploy` (or any other update) during a release: passing it would put another image under the release.
    return failed(`a release is in progress in ${release.pipelineName} (execution ${pipelineExecutionId}) and this is not its deployment; `
      + 'run cdk deploy again after it finished', guardFields);
  }
  if (!running && own) {
    return failed(`stage ${release.stageName} of pipeline ${release.pipelineName} ended (status ${stageStatus ?? 'none'}) before this release's `
      + 'deployment reached production: refused, so that production keeps the recorded image', guardFields);
  }
  if (!running && duringRelease) {
    return failed(`this deployment was started during the release ${pipelineExecutionId} of ${release.pipelineName} by something else than its `
      + `${release.deployActionName} action; run cdk deploy again`, guardFields);
  }
  if (!running) {
    if (productionImage === image) {
      return succeeded('the target revision runs the image already in production (a redeployment) and no release is in progress: no approval needed', guardFields);
    }
    if (gate !== undefined) {
      return failed(
        `stage ${release.stageName} of pipeline ${release.pipelineName} is not running (status ${stageStatus ?? 'none'}): this deployment was not started by the pipeline's release stage, and a new image needs an approval`,
        guardFields,
      );
    }
    return succeeded('a new image outside a release, and no approval gate configured: smoke test passed', guardFields);
  }

  // This release's own deployment. Invariant 4: the deploy action's hour counts from its start.
  const heldMs = now() - deployStart;
  if (heldMs >= release.timeLimitSeconds * 1000) {
    return failed(`no decision within ${release.timeLimitSeconds} seconds of the ${release.deployActionName} action's start `
      + `(${new Date(deployStart).toISOString()}): the release rolls back before the ECS deploy action gives up`, guardFields);
  }
  if (gate === undefined) return succeeded('smoke test passed; this release\'s deployment; no approval gate configured', guardFields);

  const approval = latestRun(runs, gate.actionName);
  const approvalFields = {
    ...guardFields,
    actionName: gate.actionName,
    approvalStatus: approval?.status ?? 'not started',
    approvalSummary: approval?.output?.executionResult?.externalExecutionSummary,
    approvedBy: approval?.updatedBy,
    approvalUpdatedAt: validDate(approval?.lastUpdateTime)?.toISOString(),
  };
  switch (approval?.status) {
    case 'Succeeded': {
      const readyAt = state.gateOpenedAt!;
      const approvedAt = validDate(approval.lastUpdateTime);
      if (approvedAt === undefined || approvedAt.getTime() < Date.parse(readyAt)) {
        return failed(
          `approved before the new version was ready for review (approval at ${approvedAt?.toISOString() ?? 'an unknown time'}, ready at ${readyAt}); `
          + 'the release rolls back — run it again and approve after the ready-for-review notification',
          approvalFields,
        );
      }
      return succeeded(`approval ${gate.actionName} granted`, approvalFields);
    }
    case 'Failed':
    case 'Abandoned':
      return failed(`approval ${gate.actionName} ${approval.status === 'Failed' ? 'rejected or timed out' : 'abandoned'} (status ${approval.status})`, approvalFields);
    case undefined:
    case 'InProgress': {
      const notification = await notifyReadyForReview(gate, image, smokeTest, pipelineExecutionId!, state, deadline);
      return inProgress(APPROVAL_CALLBACK_DELAY_SECONDS, gateProgress(state), state,
        `waiting for approval ${gate.actionName}: asking again in ${APPROVAL_CALLBACK_DELAY_SECONDS} seconds`,
        { ...approvalFields, ...(notification === undefined ? {} : { notification }) });
    }
    default:
      return failed(`approval ${gate.actionName} has an unknown status ${JSON.stringify(approval?.status)}`, approvalFields);
  }
}

/**
 * Publishes the "ready for review" message once per deployment (step 5d of the file comment), recording the outcome
 * in `state.notified`. Never fails the hook: returns what happened, for the log, or undefined when there was nothing
 * to do (no topic configured, or already published or given up on).
 */
async function notifyReadyForReview(
  gate: ApprovalGateConfig,
  image: string,
  smokeTest: SmokeTestResult | undefined,
  pipelineExecutionId: string,
  state: HookState,
  deadline: number | undefined,
): Promise<Record<string, unknown> | undefined> {
  const topicArn = gate.notifyTopicArn;
  if (topicArn === undefined || state.notified !== undefined) return undefined;
  const message = readyForReviewMessage(gate, image, smokeTest, pipelineExecutionId, state.gateOpenedAt!);
  try {
    const response = await call('sns:Publish', deadline, (options) =>
      sns.send(new PublishCommand({ TopicArn: topicArn, Subject: message.subject, Message: message.body }), options));
    state.notified = true;
    return { published: true, topicArn, messageId: response.MessageId };
  } catch (err) {
    if (!(err instanceof AwsCallError)) throw err;
    // The approval still works without the message; a transient error is tried again at the next invocation.
    const retry = isRetryable(err.error);
    if (!retry) state.notified = false;
    return { published: false, topicArn, action: err.api, error: describeError(err.error), retry };
  }
}

/** Subject (at most `SNS_SUBJECT_LIMIT` characters) and text of the "ready for review" message. */
export function readyForReviewMessage(
  gate: ApprovalGateConfig,
  image: string,
  smokeTest: SmokeTestResult | undefined,
  pipelineExecutionId: string,
  gateOpenedAt: string,
): { readonly subject: string; readonly body: string } {
  const lines = [
    `A new version released by pipeline ${gate.pipelineName} is ready for review on the test listener.`,
    '',
    `Image: ${image}`,
    ...(gate.testUrl === undefined ? [] : [`Test URL: ${gate.testUrl}`]),
    `Smoke test: passed${smokeTest === undefined ? '' : ` (${smokeTest.summary})`}`,
    `Ready since: ${gateOpenedAt}`,
    `Waiting for: approval action ${gate.actionName} in stage ${gate.stageName} of pipeline ${gate.pipelineName} (execution ${pipelineExecutionId})`,
    '',
    'Production traffic stays on the current version until the approval. Review the new version, then approve or reject the '
    + `action. An approval given before ${gateOpenedAt} does not count: the release would roll back.`,
  ];
  return { subject: clip(`Ready for review: ${gate.pipelineName}`, SNS_SUBJECT_LIMIT), body: lines.join('\n') };
}

/** The image URI in the SSM parameter, or undefined when the parameter does not exist yet (no release so far). */
async function imageInProduction(name: string, deadline: number | undefined): Promise<string | undefined> {
  try {
    const response = await call('ssm:GetParameter', deadline, (options) => ssm.send(new GetParameterCommand({ Name: name }), options));
    return response.Parameter?.Value;
  } catch (err) {
    if (err instanceof AwsCallError && (err.error as { name?: unknown } | undefined)?.name === 'ParameterNotFound') return undefined;
    throw err;
  }
}

/** The action executions of the release stage in the pipeline execution, following `nextToken`. */
async function stageActionRuns(
  release: ReleaseGuardConfig,
  pipelineExecutionId: string,
  deadline: number | undefined,
): Promise<ActionExecutionDetail[]> {
  const runs: ActionExecutionDetail[] = [];
  let nextToken: string | undefined;
  for (let page = 0; page < MAX_ACTION_EXECUTION_PAGES; page++) {
    const response = await call('codepipeline:ListActionExecutions', deadline, (options) =>
      codePipeline.send(new ListActionExecutionsCommand({
        pipelineName: release.pipelineName,
        filter: { pipelineExecutionId },
        maxResults: 100,
        nextToken,
      }), options));
    runs.push(...(response.actionExecutionDetails ?? []).filter((detail) => detail.stageName === release.stageName));
    nextToken = response.nextToken;
    if (!nextToken) break;
  }
  return runs;
}

/** The latest run of `actionName` (a retried stage runs an action again in the same pipeline execution). */
function latestRun(runs: readonly ActionExecutionDetail[], actionName: string): ActionExecutionDetail | undefined {
  return runs.reduce<ActionExecutionDetail | undefined>(
    (latest, detail) => (detail.actionName === actionName && (latest === undefined || time(detail.startTime) > time(latest.startTime))
      ? detail
      : latest),
    undefined,
  );
}

/** The service's deployments created at or after `since` (ms), oldest first; none without the service's ARN. */
async function deploymentsSince(serviceArn: string | undefined, since: number, deadline: number | undefined): Promise<ServiceDeploymentBrief[]> {
  // arn:<partition>:ecs:<region>:<account>:service/<cluster>/<service>
  const cluster = /:service\/([^/]+)\/[^/]+$/.exec(serviceArn ?? '')?.[1];
  if (serviceArn === undefined || cluster === undefined) return [];
  const all: ServiceDeploymentBrief[] = [];
  let nextToken: string | undefined;
  for (let page = 0; page < MAX_ACTION_EXECUTION_PAGES; page++) {
    const response = await call('ecs:ListServiceDeployments', deadline, (options) =>
      ecs.send(new ListServiceDeploymentsCommand({
        cluster,
        service: serviceArn,
        createdAt: { after: new Date(since) },
        maxResults: 100,
        nextToken,
      }), options));
    all.push(...(response.serviceDeployments ?? []));
    nextToken = response.nextToken;
    if (!nextToken) break;
  }
  return all.filter((d) => Boolean(d.serviceDeploymentArn) && time(d.createdAt) >= since).sort((a, b) => time(a.createdAt) - time(b.createdAt));
}

// ---------------------------------------------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------------------------------------------

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isEcsLifecycleHookEvent(event: unknown): event is EcsLifecycleHookEvent {
  return isObject(event) && typeof event.lifecycleStage === 'string' && isObject(event.executionDetails);
}

/** A non-negative integer from `hookDetails`, else undefined. */
function counter(value: unknown): number | undefined {
  return typeof value === 'number' && Number.isInteger(value) && value >= 0 ? value : undefined;
}

/** A date from `hookDetails` (ISO 8601 string), normalized, else undefined. */
function isoTime(value: unknown): string | undefined {
  if (typeof value !== 'string') return undefined;
  const t = Date.parse(value);
  return Number.isNaN(t) ? undefined : new Date(t).toISOString();
}

function validDate(value: Date | undefined): Date | undefined {
  return value instanceof Date && !Number.isNaN(value.getTime()) ? value : undefined;
}

/** `text` cut to at most `max` characters, marking the cut. */
function clip(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}

function time(value: Date | undefined): number {
  return value instanceof Date ? value.getTime() : Number.NEGATIVE_INFINITY;
}

/** `{ [key]: value }`, or nothing when the value is undefined (keeps absent settings out of the configuration). */
function optional<K extends string>(key: K, value: string | undefined): { [P in K]?: string } {
  return (value === undefined ? {} : { [key]: value }) as { [P in K]?: string };
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value.trim() === '' ? undefined : value.trim();
}

function logDecision(decision: Decision, fields: Record<string, unknown>): void {
  const level = decision.response.hookStatus === 'FAILED' ? 'ERROR' : 'INFO';
  try {
    console.log(JSON.stringify({
      level,
      message: 'ecs release hook decision',
      hookStatus: decision.response.hookStatus,
      reason: decision.reason,
      ...fields,
      ...decision.fields,
      response: decision.response,
    }));
  } catch {
    console.log(JSON.stringify({ level, message: 'ecs release hook decision', hookStatus: decision.response.hookStatus, reason: decision.reason }));
  }
}

/** Name, message and HTTP status of an error, or the thrown value itself when it is not an error. */
function describeError(err: unknown): Record<string, unknown> {
  if (typeof err !== 'object' || err === null) return { value: String(err) };
  const e = err as { name?: unknown; $metadata?: { httpStatusCode?: unknown; requestId?: unknown } };
  return {
    name: typeof e.name === 'string' ? e.name : undefined,
    message: errorMessage(err),
    httpStatusCode: e.$metadata?.httpStatusCode,
    requestId: e.$metadata?.requestId,
  };
}

function errorMessage(err: unknown): string {
  const message = typeof err === 'object' && err !== null ? (err as { message?: unknown }).message : undefined;
  return typeof message === 'string' ? message : String(err);
}
