/**
 * Smoke test for a new version of the sample web service, run through its test endpoint (the test listener)
 * before production traffic moves to it. One handler serves the three release engines of the library and answers
 * each in its own way:
 *
 * - CodePipeline Lambda invoke action: `PutJobSuccessResult` / `PutJobFailureResult`;
 * - CodeDeploy lifecycle hook (`BeforeAllowTraffic`, ...): `PutLifecycleEventHookExecutionStatus`;
 * - Amazon ECS deployment lifecycle hook (native blue/green): the return value `{ hookStatus, ... }`;
 * - anything else (direct invoke, tests): the result object itself.
 *
 * The checks never throw and never hang: every request has its own timeout, and the whole run ends early enough
 * before the Lambda deadline to report the verdict. A failed check is a verdict, not an exception; only a failure to
 * *report* the verdict to CodePipeline or CodeDeploy makes the invocation fail (after the verdict has been logged).
 *
 * Configuration (environment, overridable per invocation, see `parseConfig`):
 * `SMOKE_TEST_BASE_URL` (required), `SMOKE_TEST_HEALTH_PATH` (default `/healthcheck`), `SMOKE_TEST_EXPECTED_PHRASE`,
 * `SMOKE_TEST_REQUEST_TIMEOUT_MS` (default 5000), `SMOKE_TEST_ATTEMPTS` (default 3), `SMOKE_TEST_RETRY_DELAY_MS`
 * (default 2000).
 */
import { CodeDeployClient, PutLifecycleEventHookExecutionStatusCommand } from '@aws-sdk/client-codedeploy';
import { CodePipelineClient, PutJobFailureResultCommand, PutJobSuccessResultCommand } from '@aws-sdk/client-codepipeline';
import type { Context } from 'aws-lambda';
import { clip, isObject, log as logLine, logError } from './shared/common';
import type { Parsed } from './shared/common';
import {
  CODEPIPELINE_MESSAGE_LIMIT,
  ECS_CALLBACK_DELAY_SECONDS,
  ECS_INVOCATIONS_KEY,
  ECS_MAX_INVOCATIONS,
  REPORTING_MARGIN_MS,
  failed,
  parseConfig,
  parseOverrides,
  parseUserParameters,
  runSmokeTest,
  targetNotReady,
} from './shared/smoke-check';
import type { EcsLifecycleHookEvent, EcsLifecycleHookResponse, SmokeTestOverrides, SmokeTestResult } from './shared/smoke-check';

// The smoke test's configuration, checks and ECS hook types, for the tests and the callers of this handler.
export * from './shared/smoke-check';

const log = (message: string, fields: Record<string, unknown>): void => logLine('INFO', message, fields);

// ---------------------------------------------------------------------------------------------------------------
// AWS clients: module scope, so that warm invocations reuse connections. The SDK's standard retry strategy handles
// throttling and transient errors; four attempts instead of three give a throttled account a little more room.
// ---------------------------------------------------------------------------------------------------------------

/** Exported for tests. */
export const codePipeline = new CodePipelineClient({ maxAttempts: 4 });
/** Exported for tests. */
export const codeDeploy = new CodeDeployClient({ maxAttempts: 4 });

/**
 * Validates the configuration, then runs the checks. A bad configuration is a failed verdict like any other, so
 * that the engine that waits for the verdict always hears about it.
 */
async function smokeTest(overrides: Parsed<SmokeTestOverrides>, deadline: number | undefined): Promise<SmokeTestResult> {
  if (!overrides.ok) return failed(`invalid configuration: ${overrides.error}`);
  const config = parseConfig(process.env, overrides.value);
  if (!config.ok) return failed(`invalid configuration: ${config.error}`);
  return runSmokeTest(config.value, { deadline });
}

// ---------------------------------------------------------------------------------------------------------------
// Invokers
// ---------------------------------------------------------------------------------------------------------------

interface CodePipelineJobEvent {
  readonly 'CodePipeline.job': {
    readonly id: string;
    readonly data?: { readonly actionConfiguration?: { readonly configuration?: { readonly UserParameters?: unknown } } };
  };
}

interface CodeDeployHookEvent {
  readonly DeploymentId: string;
  readonly LifecycleEventHookExecutionId: string;
}

function isCodePipelineEvent(event: unknown): event is CodePipelineJobEvent {
  return isObject(event) && isObject(event['CodePipeline.job']) && typeof event['CodePipeline.job'].id === 'string';
}

function isCodeDeployEvent(event: unknown): event is CodeDeployHookEvent {
  return isObject(event) && typeof event.DeploymentId === 'string' && typeof event.LifecycleEventHookExecutionId === 'string';
}

function isEcsLifecycleHookEvent(event: unknown): event is EcsLifecycleHookEvent {
  return isObject(event) && typeof event.lifecycleStage === 'string' && isObject(event.executionDetails);
}

/**
 * Smoke-tests the new version and reports the verdict to the engine that invoked the function (see the file comment).
 * Throws only when reporting to CodePipeline or CodeDeploy fails, after logging the verdict.
 */
export async function handler(
  event: unknown,
  context?: Pick<Context, 'getRemainingTimeInMillis'>,
): Promise<SmokeTestResult | EcsLifecycleHookResponse | void> {
  const remaining = typeof context?.getRemainingTimeInMillis === 'function' ? context.getRemainingTimeInMillis() : undefined;
  const deadline = remaining === undefined ? undefined : Date.now() + remaining - REPORTING_MARGIN_MS;

  if (isCodePipelineEvent(event)) return onCodePipelineJob(event, deadline);
  if (isCodeDeployEvent(event)) return onCodeDeployHook(event, deadline);
  if (isEcsLifecycleHookEvent(event)) return onEcsLifecycleHook(event, deadline);
  const result = await smokeTest(parseOverrides(isObject(event) ? event : undefined, 'event', false), deadline);
  log('smoke test result', { invoker: 'direct', result });
  return result;
}

async function onCodePipelineJob(event: CodePipelineJobEvent, deadline: number | undefined): Promise<void> {
  const job = event['CodePipeline.job'];
  const jobId = job.id;
  const result = await smokeTest(parseUserParameters(job.data?.actionConfiguration?.configuration?.UserParameters), deadline);
  log('smoke test result', { invoker: 'CodePipeline', jobId, result });
  try {
    if (result.passed) {
      await codePipeline.send(new PutJobSuccessResultCommand({ jobId }));
    } else {
      await codePipeline.send(new PutJobFailureResultCommand({
        jobId,
        failureDetails: { type: 'JobFailed', message: clip(result.summary, CODEPIPELINE_MESSAGE_LIMIT) },
      }));
    }
  } catch (err) {
    logError('could not report the smoke test result to CodePipeline', err, { jobId, passed: result.passed });
    throw err;
  }
}

async function onCodeDeployHook(event: CodeDeployHookEvent, deadline: number | undefined): Promise<void> {
  const deploymentId = event.DeploymentId;
  const lifecycleEventHookExecutionId = event.LifecycleEventHookExecutionId;
  const result = await smokeTest({ ok: true, value: {} }, deadline);
  log('smoke test result', { invoker: 'CodeDeploy', deploymentId, result });
  const status = result.passed ? 'Succeeded' : 'Failed';
  try {
    await codeDeploy.send(new PutLifecycleEventHookExecutionStatusCommand({ deploymentId, lifecycleEventHookExecutionId, status }));
  } catch (err) {
    logError('could not report the smoke test result to CodeDeploy', err, { deploymentId, lifecycleEventHookExecutionId, status });
    throw err;
  }
}

/**
 * Amazon ECS deployment lifecycle hook. Follows "Lambda hooks for Amazon ECS service deployments" and "Lifecycle
 * hooks for Amazon ECS service deployments" (Amazon ECS Developer Guide): ECS invokes the function synchronously and
 * reads `hookStatus` from the return value. `SUCCEEDED` continues the deployment, `FAILED` rolls it back,
 * `IN_PROGRESS` makes ECS invoke the function again after `callBackDelay` seconds, passing back the `hookDetails` we
 * return. A thrown error or a missing `hookStatus` also rolls back, so this path never throws.
 *
 * - A target that does not answer at all, or answers 5xx (the load balancer has no healthy target yet), gets
 *   `IN_PROGRESS` until the hook has run `ECS_MAX_INVOCATIONS` times; any other failure is `FAILED` at once.
 * - During a rollback ECS re-invokes hooks registered at `TEST_TRAFFIC_SHIFT` / `PRODUCTION_TRAFFIC_SHIFT`, with the
 *   target (green) revision at weight 0. Testing the revision being abandoned is pointless and failing would only
 *   get in the rollback's way, so the hook answers `SUCCEEDED` without testing.
 *
 * `hookDetails` from the service's hook configuration may override `baseUrl`, `healthPath` and `expectedPhrase`.
 */
async function onEcsLifecycleHook(event: EcsLifecycleHookEvent, deadline: number | undefined): Promise<EcsLifecycleHookResponse> {
  const context = { invoker: 'ECS', lifecycleStage: event.lifecycleStage, executionId: event.executionId, resourceArn: event.resourceArn };
  if (isEcsRollback(event)) {
    log('rollback in progress: not smoke-testing the revision being rolled back', context);
    return { hookStatus: 'SUCCEEDED' };
  }
  const hookDetails = isObject(event.hookDetails) ? event.hookDetails : {};
  const previousInvocations = typeof hookDetails[ECS_INVOCATIONS_KEY] === 'number' ? (hookDetails[ECS_INVOCATIONS_KEY] as number) : 0;
  const invocation = previousInvocations + 1;

  const result = await smokeTest(parseOverrides(hookDetails, 'hookDetails', false), deadline);
  let response: EcsLifecycleHookResponse;
  if (result.passed) {
    response = { hookStatus: 'SUCCEEDED' };
  } else if (targetNotReady(result) && invocation < ECS_MAX_INVOCATIONS) {
    response = { hookStatus: 'IN_PROGRESS', callBackDelay: ECS_CALLBACK_DELAY_SECONDS, hookDetails: { [ECS_INVOCATIONS_KEY]: invocation } };
  } else {
    response = { hookStatus: 'FAILED' };
  }
  log('smoke test result', { ...context, invocation, maxInvocations: ECS_MAX_INVOCATIONS, result, response });
  return response;
}

/** True while traffic shifts back: at a recurring stage, the target revision has weight 0 and another revision more. */
export function isEcsRollback(event: EcsLifecycleHookEvent): boolean {
  const target = event.executionDetails.targetServiceRevisionArn;
  if (target === undefined) return false;
  const weights =
    event.lifecycleStage === 'PRODUCTION_TRAFFIC_SHIFT' ? event.executionDetails.productionTrafficWeights
      : event.lifecycleStage === 'TEST_TRAFFIC_SHIFT' ? event.executionDetails.testTrafficWeights
        : undefined;
  if (!isObject(weights) || weights[target] !== 0) return false;
  return Object.entries(weights).some(([arn, weight]) => arn !== target && typeof weight === 'number' && weight > 0);
}

