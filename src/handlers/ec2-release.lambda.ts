/**
 * The decisions of an EC2 blue/green release: one step of the release per invocation, called in a loop by the
 * Step Functions standard state machine of `Ec2BlueGreenPipeline` (src/release/ec2-blue-green-release.ts).
 *
 * Two Auto Scaling groups (blue, green) sit behind one Application Load Balancer. Production (the listener
 * `PRODUCTION_LISTENER_ARN`) serves the live color, recorded in the SSM String parameter `LIVE_COLOR_PARAMETER`
 * (`none` before the first release, then `blue` or `green`; CloudFormation reads it on every `cdk deploy`). A release
 * scales the other color (the target) up with the new release id, checks its health, lets the state machine run the
 * smoke test against it, waits for an approval when configured, moves production traffic to it (optionally through a
 * canary step), bakes while watching alarms, and records it as live.
 *
 * Contract with the state machine: the function is invoked with `{ action, state }` (for `start`: `{ action:
 * 'start', input: { release, pipelineExecutionId }, executionArn, startedAt }`) and returns the new state, which
 * always has `next` (the action to run next, or `succeeded` / `failed`), `waitSeconds` (0 when no wait) and `message`
 * (one readable line: what happened and, when the release ends, which release and color production runs). A thrown
 * `RetryableError` (throttling, transient AWS errors, a listener that does not show its change yet) makes the state
 * machine run the same step again; any other error is a real failure that the state machine's Catch turns into the
 * `rollback` action, with the error in `state.caught`.
 *
 * Actions (the spec: docs of `Ec2BlueGreenPipeline`):
 * - `start`: validate the release id; refuse when another execution of `STATE_MACHINE_ARN` runs; wait (30 s) while
 *   the fleet's stack `STACK_NAME` is `*_IN_PROGRESS`; read the live color and both release parameters; take the
 *   lock (`LOCK_PARAMETER` = `running <executionArn>`); pick the target color (`green` when `blue` is live, else
 *   `blue`) and the capacity (the live group's desired capacity, else `DEFAULT_CAPACITY`). A target group with
 *   instances left by an aborted release is scaled to 0 first (`drain`); otherwise the target's release parameter is
 *   written and the target group scaled up (`health`). A start invoked again for the same execution that already
 *   holds the lock and wrote its release to the target's parameter repeats the scale-up (same values) instead of
 *   draining its own instances.
 * - `drain`: wait (15 s) until the target group has no instances, then the scale-up.
 * - `health`: enough healthy targets of the group's own instances in the target's target group: `smoke`; otherwise
 *   wait 15 s, until `HEALTH_TIMEOUT_SECONDS` after the scale-up or the deadline: `rollback`.
 * - `afterSmoke`: smoke test failed: `rollback`. Passed: with the approval gate, publish "ready for review", keep
 *   `readyAt` and go to `approval`; without: `shift`.
 * - `approval`: the latest run of the approval action in this pipeline execution: `Succeeded` at or after `readyAt`:
 *   `shift`; before: `rollback`; `Failed` / `Abandoned`: `rollback`; otherwise wait 30 s until
 *   `APPROVAL_TIMEOUT_SECONDS` after `readyAt` or the deadline.
 * - `shift`: production to the target: all at once, or with `CANARY_PERCENT` first that share for `CANARY_SECONDS`.
 *   Refused (`rollback`) when the canary and bake would end after the deadline: no traffic moves for a release that
 *   cannot finish.
 * - `bake`: any watched alarm (`ALARMS_<COLOR>` of the target, `DEPLOYMENT_ALARMS`) in ALARM: `rollback`; canary
 *   over: `shift`; bake over: `finish`; else wait at most 30 s (`rollback` when the wait would pass the deadline).
 * - `finish`: FIRST the live color parameter (a failure here is an error: the release rolls back), then best effort:
 *   free the lock, scale the old color to 0, notify. Always `succeeded` once the live color is written.
 * - `rollback`: only when this execution holds the lock (otherwise it changed nothing, or an earlier rollback already
 *   ended it: nothing is touched). Production back to the live color's target group (or the fixed 503 when nothing is
 *   live), verified with `DescribeListeners`; the target scaled to 0; the lock freed; notified (best effort). Never
 *   writes the live color. A rollback that finds the live color already recorded as the target (the write of `finish`
 *   landed, its answer did not) leaves production on the target and says so.
 *
 * Deadline: `startedAt` + `RELEASE_DEADLINE_SECONDS`; no wait is ever returned that would end after it.
 *
 * IAM: `ssm:GetParameters` (the four parameters), `ssm:PutParameter` (lock, both release parameters, live color),
 * `autoscaling:DescribeAutoScalingGroups`, `autoscaling:UpdateAutoScalingGroup` (both groups),
 * `elasticloadbalancing:DescribeTargetHealth`, `elasticloadbalancing:DescribeListeners`,
 * `elasticloadbalancing:ModifyListener` (the production listener), `cloudwatch:DescribeAlarms`,
 * `codepipeline:ListActionExecutions` (the pipeline), `sns:Publish` (the topic), `states:ListExecutions` (the state
 * machine), `cloudformation:DescribeStacks` (the stack).
 */
import { AutoScalingClient, DescribeAutoScalingGroupsCommand, UpdateAutoScalingGroupCommand } from '@aws-sdk/client-auto-scaling';
import type { AutoScalingGroup } from '@aws-sdk/client-auto-scaling';
import { CloudFormationClient, DescribeStacksCommand } from '@aws-sdk/client-cloudformation';
import { CloudWatchClient, DescribeAlarmsCommand } from '@aws-sdk/client-cloudwatch';
import { CodePipelineClient, ListActionExecutionsCommand } from '@aws-sdk/client-codepipeline';
import type { ActionExecutionDetail } from '@aws-sdk/client-codepipeline';
import {
  DescribeListenersCommand,
  DescribeTargetHealthCommand,
  ElasticLoadBalancingV2Client,
  ModifyListenerCommand,
} from '@aws-sdk/client-elastic-load-balancing-v2';
import type { Action as ListenerAction } from '@aws-sdk/client-elastic-load-balancing-v2';
import { ListExecutionsCommand, SFNClient } from '@aws-sdk/client-sfn';
import { PublishCommand, SNSClient } from '@aws-sdk/client-sns';
import { GetParametersCommand, PutParameterCommand, SSMClient } from '@aws-sdk/client-ssm';
import { clip, describeError, isObject, log, logError } from './shared/common';
import type { Parsed } from './shared/common';
import { isRetryable } from './shared/retryable';

// ---------------------------------------------------------------------------------------------------------------
// AWS clients: module scope (warm invocations reuse connections), few attempts and request timeouts, so that a step
// never hangs: a throttled or timed-out call becomes a RetryableError and the state machine runs the step again.
// ---------------------------------------------------------------------------------------------------------------

const CLIENT_CONFIG = { maxAttempts: 2, requestHandler: { connectionTimeout: 3_000, requestTimeout: 10_000 } };

/** The AWS clients and the clock a step uses; each defaults to the real thing. */
export interface Ec2ReleaseDeps {
  readonly ssm?: SSMClient;
  readonly autoScaling?: AutoScalingClient;
  readonly elb?: ElasticLoadBalancingV2Client;
  readonly cloudWatch?: CloudWatchClient;
  readonly codePipeline?: CodePipelineClient;
  readonly sns?: SNSClient;
  readonly sfn?: SFNClient;
  readonly cloudFormation?: CloudFormationClient;
  /** @default `Date.now` */
  readonly now?: () => number;
  /** @default `process.env` */
  readonly env?: Record<string, string | undefined>;
}

let defaultClients: Required<Omit<Ec2ReleaseDeps, 'now' | 'env'>> | undefined;

/** The module's clients, created on first use. */
function clients(): Required<Omit<Ec2ReleaseDeps, 'now' | 'env'>> {
  defaultClients ??= {
    ssm: new SSMClient(CLIENT_CONFIG),
    autoScaling: new AutoScalingClient(CLIENT_CONFIG),
    elb: new ElasticLoadBalancingV2Client(CLIENT_CONFIG),
    cloudWatch: new CloudWatchClient(CLIENT_CONFIG),
    codePipeline: new CodePipelineClient(CLIENT_CONFIG),
    sns: new SNSClient(CLIENT_CONFIG),
    sfn: new SFNClient(CLIENT_CONFIG),
    cloudFormation: new CloudFormationClient(CLIENT_CONFIG),
  };
  return defaultClients;
}

// ---------------------------------------------------------------------------------------------------------------
// Timing
// ---------------------------------------------------------------------------------------------------------------

/** Wait while the fleet's stack is being updated. */
export const STACK_WAIT_SECONDS = 30;
/** Wait while the target group drains, and between health checks. */
export const DRAIN_WAIT_SECONDS = 15;
export const HEALTH_WAIT_SECONDS = 15;
/** Wait between approval checks. */
export const APPROVAL_WAIT_SECONDS = 30;
/** Longest wait between alarm checks during the canary and the bake. */
export const BAKE_WAIT_SECONDS = 30;
/** `DescribeAlarms` takes at most 100 names per call. */
export const ALARM_BATCH_SIZE = 100;
/** Pages read at most from a paginated list (executions, action executions, alarms of one batch). */
export const MAX_PAGES = 20;
/** SNS subject limit. */
const SNS_SUBJECT_LIMIT = 100;
/** Longest reason quoted in a message. */
const REASON_LIMIT = 600;

// ---------------------------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------------------------

/** A transient failure: the state machine retries errors with this name. */
export class RetryableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RetryableError';
  }
}

/** A real failure of one AWS call, naming the call: the state machine's Catch turns it into a rollback. */
export class ReleaseStepError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ReleaseStepError';
  }
}

/** An error for a message: ours already name the call, others get their name in front. */
function errorText(err: unknown): string {
  return err instanceof RetryableError || err instanceof ReleaseStepError ? err.message : describeError(err);
}

/** Runs one AWS call; its error becomes a `RetryableError` (transient) or a `ReleaseStepError`, naming `what`. */
async function aws<T>(what: string, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (err) {
    const message = `${what} failed: ${describeError(err)}`;
    if (isRetryable(err)) throw new RetryableError(message);
    throw new ReleaseStepError(message);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------------------------------------------

export type Color = 'blue' | 'green';
export type LiveColor = Color | 'none';

export interface ColorConfig {
  readonly releaseParameter: string;
  readonly groupName: string;
  readonly targetGroupArn: string;
  readonly alarms: readonly string[];
}

export interface ApprovalConfig {
  readonly pipelineName: string;
  readonly actionName: string;
  /** Only the action in this stage counts, when set. */
  readonly stageName?: string;
  readonly timeoutSeconds: number;
}

export interface Ec2ReleaseConfig {
  readonly liveColorParameter: string;
  readonly lockParameter: string;
  readonly colors: Readonly<Record<Color, ColorConfig>>;
  readonly productionListenerArn: string;
  readonly testListenerArn: string;
  readonly notReleasedBody: string;
  readonly defaultCapacity: number;
  readonly releaseDeadlineSeconds: number;
  readonly healthTimeoutSeconds: number;
  readonly bakeSeconds: number;
  readonly canaryPercent: number;
  readonly canarySeconds: number;
  readonly deploymentAlarms: readonly string[];
  readonly stackName: string;
  readonly stateMachineArn: string;
  readonly testUrl?: string;
  readonly productionUrl?: string;
  readonly notifyTopicArn?: string;
  readonly approval?: ApprovalConfig;
}

export type { Parsed } from './shared/common';

const REQUIRED = [
  'LIVE_COLOR_PARAMETER', 'LOCK_PARAMETER', 'RELEASE_PARAMETER_BLUE', 'RELEASE_PARAMETER_GREEN', 'BLUE_GROUP_NAME',
  'GREEN_GROUP_NAME', 'BLUE_TARGET_GROUP_ARN', 'GREEN_TARGET_GROUP_ARN', 'PRODUCTION_LISTENER_ARN', 'TEST_LISTENER_ARN', 'DEFAULT_CAPACITY',
  'RELEASE_DEADLINE_SECONDS', 'HEALTH_TIMEOUT_SECONDS', 'BAKE_SECONDS', 'CANARY_PERCENT', 'STACK_NAME', 'STATE_MACHINE_ARN',
] as const;

/** The approval gate's variables: all three or none (`APPROVAL_STAGE_NAME` optionally narrows the action). */
const APPROVAL_VARIABLES = ['APPROVAL_PIPELINE_NAME', 'APPROVAL_ACTION_NAME', 'APPROVAL_TIMEOUT_SECONDS'] as const;

/** ELB's limit for a fixed response's body. */
const FIXED_RESPONSE_BODY_LIMIT = 1024;

/** The configuration from the environment, every problem named at once. */
export function readConfig(env: Record<string, string | undefined>): Parsed<Ec2ReleaseConfig> {
  const errors: string[] = [];
  const text = (name: string) => nonEmpty(env[name]);
  const missing = REQUIRED.filter((name) => text(name) === undefined);
  if (missing.length > 0) errors.push(`environment variable(s) not set: ${missing.join(', ')}`);
  if (env.NOT_RELEASED_BODY === undefined) {errors.push('environment variable NOT_RELEASED_BODY is not set');} else if (env.NOT_RELEASED_BODY.length > FIXED_RESPONSE_BODY_LIMIT) {
    errors.push(`NOT_RELEASED_BODY must be at most ${FIXED_RESPONSE_BODY_LIMIT} characters, got ${env.NOT_RELEASED_BODY.length}`);
  }
  const int = (name: string, min: number, max: number, fallback?: number): number => {
    const raw = text(name);
    if (raw === undefined) return fallback ?? NaN; // reported as missing above, or optional
    const value = /^\d+$/.test(raw) ? Number(raw) : NaN;
    if (!Number.isSafeInteger(value) || value < min || value > max) {
      errors.push(`${name} must be an integer from ${min} to ${max}, got ${JSON.stringify(raw)}`);
    }
    return value;
  };
  const defaultCapacity = int('DEFAULT_CAPACITY', 1, 20);
  const releaseDeadlineSeconds = int('RELEASE_DEADLINE_SECONDS', 60, 3600);
  const healthTimeoutSeconds = int('HEALTH_TIMEOUT_SECONDS', 1, 3600);
  const bakeSeconds = int('BAKE_SECONDS', 0, 3600);
  const canaryPercent = int('CANARY_PERCENT', 0, 99);
  const canarySeconds = int('CANARY_SECONDS', canaryPercent > 0 ? 1 : 0, 3600, canaryPercent > 0 ? undefined : 0);
  if (canaryPercent > 0 && text('CANARY_SECONDS') === undefined) errors.push('CANARY_SECONDS must be set when CANARY_PERCENT is not 0');

  const setApproval = APPROVAL_VARIABLES.filter((name) => text(name) !== undefined);
  let gate: ApprovalConfig | undefined;
  if (setApproval.length > 0 && setApproval.length < APPROVAL_VARIABLES.length) {
    const unset = APPROVAL_VARIABLES.filter((name) => text(name) === undefined);
    errors.push(`the approval gate needs ${APPROVAL_VARIABLES.join(', ')} together; not set: ${unset.join(', ')}`);
  } else if (setApproval.length === APPROVAL_VARIABLES.length) {
    gate = {
      pipelineName: text('APPROVAL_PIPELINE_NAME')!,
      actionName: text('APPROVAL_ACTION_NAME')!,
      stageName: text('APPROVAL_STAGE_NAME'),
      timeoutSeconds: int('APPROVAL_TIMEOUT_SECONDS', 1, 86_400),
    };
  } else if (text('APPROVAL_STAGE_NAME') !== undefined) {
    errors.push(`APPROVAL_STAGE_NAME is set without the approval gate (${APPROVAL_VARIABLES.join(', ')})`);
  }
  if (errors.length > 0) return { ok: false, error: errors.join('; ') };

  const color = (prefix: 'BLUE' | 'GREEN'): ColorConfig => ({
    releaseParameter: text(`RELEASE_PARAMETER_${prefix}`)!,
    groupName: text(`${prefix}_GROUP_NAME`)!,
    targetGroupArn: text(`${prefix}_TARGET_GROUP_ARN`)!,
    alarms: names(env[`ALARMS_${prefix}`]),
  });
  return {
    ok: true,
    value: {
      liveColorParameter: text('LIVE_COLOR_PARAMETER')!,
      lockParameter: text('LOCK_PARAMETER')!,
      colors: { blue: color('BLUE'), green: color('GREEN') },
      productionListenerArn: text('PRODUCTION_LISTENER_ARN')!,
      testListenerArn: text('TEST_LISTENER_ARN')!,
      notReleasedBody: env.NOT_RELEASED_BODY!,
      defaultCapacity,
      releaseDeadlineSeconds,
      healthTimeoutSeconds,
      bakeSeconds,
      canaryPercent,
      canarySeconds,
      deploymentAlarms: names(env.DEPLOYMENT_ALARMS),
      stackName: text('STACK_NAME')!,
      stateMachineArn: text('STATE_MACHINE_ARN')!,
      testUrl: text('TEST_URL'),
      productionUrl: text('PRODUCTION_URL'),
      notifyTopicArn: text('NOTIFY_TOPIC_ARN'),
      approval: gate,
    },
  };
}

/** Comma-separated names, trimmed, empty entries and duplicates dropped. */
function names(value: string | undefined): string[] {
  return [...new Set((value ?? '').split(',').map((name) => name.trim()).filter((name) => name !== ''))];
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value.trim() === '' ? undefined : value.trim();
}

// ---------------------------------------------------------------------------------------------------------------
// Events and state
// ---------------------------------------------------------------------------------------------------------------

export type Next = 'start' | 'drain' | 'health' | 'smoke' | 'approval' | 'shift' | 'bake' | 'finish' | 'rollback' | 'succeeded' | 'failed';
export type StepAction = 'start' | 'drain' | 'health' | 'afterSmoke' | 'approval' | 'shift' | 'bake' | 'finish' | 'rollback';
const ACTIONS: ReadonlySet<string> = new Set<StepAction>(['start', 'drain', 'health', 'afterSmoke', 'approval', 'shift', 'bake', 'finish', 'rollback']);

/** The state the state machine carries from step to step (what `step` returns, and receives back as `state`). */
export interface ReleaseState {
  readonly next: Next;
  readonly waitSeconds: number;
  readonly message: string;
  readonly release?: string;
  readonly pipelineExecutionId?: string;
  readonly executionArn?: string;
  /** ISO 8601: when the execution started; the deadline counts from here. */
  readonly startedAt?: string;
  /** The live color when the release started. */
  readonly live?: LiveColor;
  /** The release the live color runs (`none` before the first release). */
  readonly previousRelease?: string;
  readonly target?: Color;
  readonly capacity?: number;
  readonly scaledUpAt?: string;
  readonly readyAt?: string;
  /** Share of production traffic sent to the target so far (0, the canary share, or 100). */
  readonly trafficPercent?: number;
  readonly canaryUntil?: string;
  readonly shiftedAt?: string;
  readonly bakeUntil?: string;
  /** Why the release rolls back (set with `next: 'rollback'`). */
  readonly reason?: string;
  /** Set by the state machine: the smoke test's result. */
  readonly smoke?: unknown;
  /** Set by the state machine's Catch: `{ Error, Cause }`. */
  readonly caught?: unknown;
}

/** What a step after `start` needs, checked. */
interface Running extends ReleaseState {
  readonly release: string;
  readonly executionArn: string;
  readonly startedAt: string;
  readonly live: LiveColor;
  readonly previousRelease: string;
  readonly target: Color;
  readonly capacity: number;
}

export const RELEASE_ID_PATTERN = /^[A-Za-z0-9._-]{1,128}$/;
const LOCK_FREE = 'free';
const lockValue = (executionArn: string) => `running ${executionArn}`;
const other = (color: LiveColor): Color => (color === 'blue' ? 'green' : 'blue');

interface Context {
  readonly cfg: Ec2ReleaseConfig;
  readonly c: Required<Omit<Ec2ReleaseDeps, 'now' | 'env'>>;
  readonly now: () => number;
}

// ---------------------------------------------------------------------------------------------------------------
// Entry points
// ---------------------------------------------------------------------------------------------------------------

/** Lambda entry point: `step` with the real clients and clock. */
export async function handler(event: unknown): Promise<ReleaseState> {
  return step(event);
}

/**
 * One step of the release (see the file comment). Returns the new state, or throws a `RetryableError` (try the same
 * step again) or another error (the state machine rolls back). Logs the outcome as one JSON line.
 */
export async function step(event: unknown, deps: Ec2ReleaseDeps = {}): Promise<ReleaseState> {
  const action = isObject(event) && typeof event.action === 'string' ? event.action : undefined;
  try {
    const result = await dispatch(event, deps);
    log(result.next === 'failed' ? 'WARN' : 'INFO', 'ec2 release step', {
      action, next: result.next, waitSeconds: result.waitSeconds, release: result.release, target: result.target, result: result.message,
    });
    return result;
  } catch (err) {
    logError('ec2 release step threw', err, { action, retryable: err instanceof RetryableError });
    throw err;
  }
}

async function dispatch(event: unknown, deps: Ec2ReleaseDeps): Promise<ReleaseState> {
  if (!isObject(event) || typeof event.action !== 'string' || !ACTIONS.has(event.action)) {
    throw new Error(`not an EC2 release step event: expected { action: one of ${[...ACTIONS].join('|')}, state }, got ${clip(JSON.stringify(event) ?? String(event), 200)}`);
  }
  const action = event.action as StepAction;
  const state: Record<string, unknown> = isObject(event.state) ? event.state : {};
  const config = readConfig(deps.env ?? process.env);
  if (!config.ok) {
    // The same function configuration runs every step of a release, so this can only show at `start` (nothing
    // changed yet) unless the function was reconfigured during a release, which the guard prevents.
    return { ...state, next: 'failed', waitSeconds: 0, message: `invalid configuration: ${config.error}; the ${action} step changed nothing` };
  }
  const ctx: Context = { cfg: config.value, c: { ...clients(), ...definedClients(deps) }, now: deps.now ?? Date.now };
  switch (action) {
    case 'start': return start(ctx, event, state);
    case 'rollback': return rollback(ctx, event, state);
    default: {
      const running = asRunning(state, action);
      switch (action) {
        case 'drain': return drain(ctx, running);
        case 'health': return health(ctx, running);
        case 'afterSmoke': return afterSmoke(ctx, running);
        case 'approval': return approval(ctx, running);
        case 'shift': return shift(ctx, running);
        case 'bake': return bake(ctx, running);
        case 'finish': return finish(ctx, running);
      }
    }
  }
}

function definedClients(deps: Ec2ReleaseDeps): Partial<Context['c']> {
  const { now: _now, env: _env, ...given } = deps;
  return Object.fromEntries(Object.entries(given).filter(([, value]) => value !== undefined));
}

/** The state of a release after `start`, checked: a broken state is a real error (the release rolls back). */
function asRunning(state: Record<string, unknown>, action: string): Running {
  const problems: string[] = [];
  for (const key of ['release', 'executionArn', 'previousRelease']) {
    if (typeof state[key] !== 'string' || state[key] === '') problems.push(key);
  }
  if (typeof state.startedAt !== 'string' || Number.isNaN(Date.parse(state.startedAt))) problems.push('startedAt');
  if (!['none', 'blue', 'green'].includes(state.live as string)) problems.push('live');
  if (!['blue', 'green'].includes(state.target as string) || state.target === state.live) problems.push('target');
  if (!Number.isInteger(state.capacity) || (state.capacity as number) < 1) problems.push('capacity');
  if (problems.length > 0) throw new Error(`the ${action} step got a state without a valid ${problems.join(', ')}`);
  return state as unknown as Running;
}

// ---------------------------------------------------------------------------------------------------------------
// Results
// ---------------------------------------------------------------------------------------------------------------

function deadlineOf(ctx: Context, state: { readonly startedAt: string }): number {
  return Date.parse(state.startedAt) + ctx.cfg.releaseDeadlineSeconds * 1000;
}

const iso = (ms: number) => new Date(ms).toISOString();
const minutes = (ms: number) => `${Math.round(ms / 6_000) / 10} minutes`;

function toRollback(state: ReleaseState, reason: string, extra: Partial<ReleaseState> = {}): ReleaseState {
  return {
    ...state,
    ...extra,
    next: 'rollback',
    waitSeconds: 0,
    reason: clip(reason, REASON_LIMIT),
    message: clip(`release ${state.release ?? '?'} rolls back: ${reason}`, REASON_LIMIT + 100),
  };
}

/**
 * Wait `seconds` and run `next`, or roll back when that wait would end after the release deadline. `reason` says what
 * the release was waiting for.
 */
function waitOrRollback(
  ctx: Context,
  state: Running,
  next: Next,
  seconds: number,
  message: string,
  reason: string,
  extra: Partial<ReleaseState> = {},
): ReleaseState {
  const deadline = deadlineOf(ctx, state);
  if (ctx.now() + seconds * 1000 > deadline) {
    return toRollback(state, `${reason}, and the release deadline ${iso(deadline)} (${ctx.cfg.releaseDeadlineSeconds} s after the start) has come`, extra);
  }
  return { ...state, ...extra, next, waitSeconds: seconds, message };
}

// ---------------------------------------------------------------------------------------------------------------
// start, drain, scale-up
// ---------------------------------------------------------------------------------------------------------------

async function start(ctx: Context, event: Record<string, unknown>, state: Record<string, unknown>): Promise<ReleaseState> {
  const input = isObject(event.input) ? event.input : {};
  const release = input.release ?? state.release;
  const pipelineExecutionId = input.pipelineExecutionId ?? state.pipelineExecutionId;
  const executionArn = event.executionArn ?? state.executionArn;
  const startedAt = event.startedAt ?? state.startedAt;
  const base: ReleaseState = {
    next: 'failed',
    waitSeconds: 0,
    message: '',
    ...(typeof release === 'string' ? { release } : {}),
    ...(typeof pipelineExecutionId === 'string' ? { pipelineExecutionId } : {}),
    ...(typeof executionArn === 'string' ? { executionArn } : {}),
    ...(typeof startedAt === 'string' ? { startedAt } : {}),
  };
  const refuse = (why: string): ReleaseState => ({ ...base, next: 'failed', waitSeconds: 0, message: clip(`${why}; this release changed nothing`, REASON_LIMIT + 100) });

  if (typeof release !== 'string' || !RELEASE_ID_PATTERN.test(release)) {
    return refuse(`invalid release id ${clip(JSON.stringify(release) ?? 'missing', 150)}: expected 1 to 128 characters A-Z a-z 0-9 . _ -`);
  }
  if (typeof executionArn !== 'string' || executionArn === '') return refuse(`release ${release}: the start event has no executionArn`);
  if (typeof startedAt !== 'string' || Number.isNaN(Date.parse(startedAt))) {
    return refuse(`release ${release}: the start event has no valid startedAt (got ${clip(JSON.stringify(startedAt) ?? 'missing', 60)})`);
  }
  if (ctx.cfg.approval !== undefined && (typeof pipelineExecutionId !== 'string' || pipelineExecutionId === '')) {
    return refuse(`release ${release}: the approval gate needs input.pipelineExecutionId`);
  }
  const { cfg, c } = ctx;

  const others = await runningExecutions(ctx, executionArn);
  if (others.length > 0) return refuse(`release ${others[0]} is running`);

  const params = await readParameters(ctx);
  if (!params.ok) return refuse(`release ${release}: ${params.error}`);
  const { live, lock, releases } = params.value;
  const target = other(live);
  const previousRelease = live === 'none' ? 'none' : releases[live];

  // The lock first, then the stack: a stack update whose change set was made before the lock was taken did not see
  // it, so the release waits for it to end before it touches anything.
  if (lock !== lockValue(executionArn)) {
    await aws(`ssm:PutParameter (${cfg.lockParameter})`, () =>
      c.ssm.send(new PutParameterCommand({ Name: cfg.lockParameter, Value: lockValue(executionArn), Type: 'String', Overwrite: true })));
  }
  const stack = await aws(`cloudformation:DescribeStacks (${cfg.stackName})`, () =>
    c.cloudFormation.send(new DescribeStacksCommand({ StackName: cfg.stackName })));
  const stackStatus = stack.Stacks?.[0]?.StackStatus ?? 'unknown';
  if (stackStatus.endsWith('_IN_PROGRESS')) {
    const deadline = Date.parse(startedAt) + cfg.releaseDeadlineSeconds * 1000;
    if (ctx.now() + STACK_WAIT_SECONDS * 1000 > deadline) {
      await aws(`ssm:PutParameter (${cfg.lockParameter})`, () =>
        c.ssm.send(new PutParameterCommand({ Name: cfg.lockParameter, Value: LOCK_FREE, Type: 'String', Overwrite: true })));
      return refuse(`release ${release}: stack ${cfg.stackName} was still ${stackStatus} at the release deadline ${iso(deadline)}`);
    }
    return { ...base, next: 'start', waitSeconds: STACK_WAIT_SECONDS, message: `release ${release}: stack ${cfg.stackName} is ${stackStatus}; starting again in ${STACK_WAIT_SECONDS} s` };
  }

  // A release that ended without its own rollback (stopped, or timed out) may have left production's listener on
  // its target: production returns to the recorded live color before anything else.
  const before = await listenerActions(ctx);
  let repaired = '';
  if (!servesOnly(before, live, cfg)) {
    await modifyListener(ctx, live === 'none'
      ? [{ Type: 'fixed-response', FixedResponseConfig: { StatusCode: '503', ContentType: 'text/plain', MessageBody: cfg.notReleasedBody } }]
      : [{ Type: 'forward', TargetGroupArn: cfg.colors[live].targetGroupArn }]);
    const after = await listenerActions(ctx);
    if (!servesOnly(after, live, cfg)) {
      throw new RetryableError(`release ${release}: the production listener still does: ${describeListener(after, cfg)}`);
    }
    repaired = `; production's listener did ${describeListener(before, cfg)} and was returned to the recorded live color first`;
  }

  const groups = await describeGroups(ctx, live === 'none' ? [target] : [target, live]);
  const liveDesired = live === 'none' ? 0 : groups[live]?.DesiredCapacity ?? 0;
  const capacity = liveDesired > 0 ? liveDesired : cfg.defaultCapacity;
  const targetGroup = groups[target]!;
  const running: Running = {
    ...base, next: 'health', waitSeconds: 0, message: '', release, executionArn, startedAt, live, previousRelease, target, capacity, trafficPercent: 0,
  };

  // A start run again for this execution after its scale-up (a retried Lambda invocation): the target's instances
  // are this release's own, launched after the parameter named it.
  const repeated = lock === lockValue(executionArn) && releases[target] === release;
  const instances = targetGroup.Instances?.length ?? 0;
  if (!repeated && (instances > 0 || (targetGroup.DesiredCapacity ?? 0) > 0)) {
    await scaleToZero(ctx, target);
    return waitOrRollback(ctx, running, 'drain', DRAIN_WAIT_SECONDS,
      `release ${release}: ${target} group ${cfg.colors[target].groupName} still has ${instances} instance(s) from an earlier release; scaling it to 0 first${repaired}`,
      `${target} group ${cfg.colors[target].groupName} still has ${instances} instance(s)`);
  }
  const scaled = await scaleUp(ctx, running);
  return repaired === '' ? scaled : { ...scaled, message: clip(`${scaled.message}${repaired}`, REASON_LIMIT + 300) };
}

async function drain(ctx: Context, state: Running): Promise<ReleaseState> {
  const group = (await describeGroups(ctx, [state.target]))[state.target]!;
  const instances = group.Instances?.length ?? 0;
  if (instances === 0) return scaleUp(ctx, state);
  const groupName = ctx.cfg.colors[state.target].groupName;
  return waitOrRollback(ctx, state, 'drain', DRAIN_WAIT_SECONDS,
    `release ${state.release}: ${state.target} group ${groupName} still has ${instances} instance(s); waiting for them to go`,
    `${state.target} group ${groupName} still had ${instances} instance(s) from an earlier release`);
}

/** The target's release parameter, then its group to `capacity` instances. */
async function scaleUp(ctx: Context, state: Running): Promise<ReleaseState> {
  const color = ctx.cfg.colors[state.target];
  // The test listener serves the target. CloudFormation declares it on the idle color too, but moves it only on the
  // next stack update, which may not have run since the last release recorded its color.
  await aws(`elasticloadbalancing:ModifyListener (${ctx.cfg.testListenerArn})`, () =>
    ctx.c.elb.send(new ModifyListenerCommand({
      ListenerArn: ctx.cfg.testListenerArn,
      DefaultActions: [{ Type: 'forward', TargetGroupArn: color.targetGroupArn }],
    })));
  await aws(`ssm:PutParameter (${color.releaseParameter})`, () =>
    ctx.c.ssm.send(new PutParameterCommand({ Name: color.releaseParameter, Value: state.release, Type: 'String', Overwrite: true })));
  await aws(`autoscaling:UpdateAutoScalingGroup (${color.groupName})`, () =>
    ctx.c.autoScaling.send(new UpdateAutoScalingGroupCommand({
      AutoScalingGroupName: color.groupName,
      MinSize: state.capacity,
      MaxSize: 2 * state.capacity,
      DesiredCapacity: state.capacity,
    })));
  const scaledUpAt = iso(ctx.now());
  return waitOrRollback(ctx, state, 'health', HEALTH_WAIT_SECONDS,
    `release ${state.release}: ${state.target} group ${color.groupName} scaled to ${state.capacity} instance(s); production still runs ${describeLive(state)}`,
    `${state.target} was just scaled up`, { scaledUpAt });
}

async function scaleToZero(ctx: Context, color: Color): Promise<void> {
  const groupName = ctx.cfg.colors[color].groupName;
  await aws(`autoscaling:UpdateAutoScalingGroup (${groupName})`, () =>
    ctx.c.autoScaling.send(new UpdateAutoScalingGroupCommand({ AutoScalingGroupName: groupName, MinSize: 0, DesiredCapacity: 0 })));
}

/** Other RUNNING executions of the state machine (their names), following `nextToken`. */
async function runningExecutions(ctx: Context, executionArn: string): Promise<string[]> {
  const found: string[] = [];
  let nextToken: string | undefined;
  for (let page = 0; page < MAX_PAGES; page++) {
    const response = await aws('states:ListExecutions', () => ctx.c.sfn.send(new ListExecutionsCommand({
      stateMachineArn: ctx.cfg.stateMachineArn, statusFilter: 'RUNNING', maxResults: 100, nextToken,
    })));
    for (const execution of response.executions ?? []) {
      if (execution.executionArn !== executionArn) found.push(`${execution.name ?? '?'} (execution ${execution.executionArn ?? '?'})`);
    }
    nextToken = response.nextToken;
    if (!nextToken) break;
  }
  return found;
}

interface Parameters {
  readonly live: LiveColor;
  readonly lock: string;
  readonly releases: Readonly<Record<Color, string>>;
}

/** The live color, the lock and both release parameters, checked. */
async function readParameters(ctx: Context): Promise<Parsed<Parameters>> {
  const { cfg } = ctx;
  const wanted = [cfg.liveColorParameter, cfg.lockParameter, cfg.colors.blue.releaseParameter, cfg.colors.green.releaseParameter];
  const response = await aws('ssm:GetParameters', () => ctx.c.ssm.send(new GetParametersCommand({ Names: wanted })));
  const values = new Map((response.Parameters ?? []).map((p) => [p.Name, p.Value]));
  const absent = wanted.filter((name) => values.get(name) === undefined);
  if (absent.length > 0) return { ok: false, error: `SSM parameter(s) not found: ${absent.join(', ')}` };
  const live = values.get(cfg.liveColorParameter)!;
  if (live !== 'none' && live !== 'blue' && live !== 'green') {
    return { ok: false, error: `SSM parameter ${cfg.liveColorParameter} must be none, blue or green, got ${clip(JSON.stringify(live), 60)}` };
  }
  return {
    ok: true,
    value: {
      live,
      lock: values.get(cfg.lockParameter)!,
      releases: { blue: values.get(cfg.colors.blue.releaseParameter)!, green: values.get(cfg.colors.green.releaseParameter)! },
    },
  };
}

/** The named groups (blue/green), each of which must exist. */
async function describeGroups(ctx: Context, colors: Color[]): Promise<Partial<Record<Color, AutoScalingGroup>>> {
  const byName = colors.map((color) => ctx.cfg.colors[color].groupName);
  const response = await aws(`autoscaling:DescribeAutoScalingGroups (${byName.join(', ')})`, () =>
    ctx.c.autoScaling.send(new DescribeAutoScalingGroupsCommand({ AutoScalingGroupNames: byName })));
  const result: Partial<Record<Color, AutoScalingGroup>> = {};
  for (const color of colors) {
    const group = response.AutoScalingGroups?.find((g) => g.AutoScalingGroupName === ctx.cfg.colors[color].groupName);
    if (group === undefined) throw new ReleaseStepError(`Auto Scaling group ${ctx.cfg.colors[color].groupName} (${color}) not found`);
    result[color] = group;
  }
  return result;
}

// ---------------------------------------------------------------------------------------------------------------
// health, afterSmoke, approval
// ---------------------------------------------------------------------------------------------------------------

async function health(ctx: Context, state: Running): Promise<ReleaseState> {
  const color = ctx.cfg.colors[state.target];
  const group = (await describeGroups(ctx, [state.target]))[state.target]!;
  const instanceIds = new Set((group.Instances ?? []).map((i) => i.InstanceId).filter((id): id is string => typeof id === 'string'));
  const response = await aws(`elasticloadbalancing:DescribeTargetHealth (${color.targetGroupArn})`, () =>
    ctx.c.elb.send(new DescribeTargetHealthCommand({ TargetGroupArn: color.targetGroupArn })));
  const healthy = new Set<string>();
  const problems = new Map<string, string>();
  for (const description of response.TargetHealthDescriptions ?? []) {
    const id = description.Target?.Id;
    if (id === undefined || !instanceIds.has(id)) continue; // not this group's: an old or foreign target
    const th = description.TargetHealth;
    if (th?.State === 'healthy') healthy.add(id);
    else problems.set(id, `${th?.State ?? 'unknown'}${th?.Description ? ` (${th.Description})` : th?.Reason ? ` (${th.Reason})` : ''}`);
  }
  for (const id of healthy) problems.delete(id);
  for (const id of instanceIds) if (!healthy.has(id) && !problems.has(id)) problems.set(id, 'not registered in the target group');
  if (healthy.size >= state.capacity) {
    return { ...state, next: 'smoke', waitSeconds: 0, message: `release ${state.release}: ${healthy.size} of ${state.capacity} ${state.target} instances healthy; smoke test next` };
  }

  const scaledUpAt = Date.parse(state.scaledUpAt ?? state.startedAt);
  const elapsed = ctx.now() - scaledUpAt;
  const detail = problems.size === 0 ? ' (no instances yet)' : ` (${[...problems].map(([id, why]) => `${id}: ${why}`).join('; ')})`;
  const status = `${healthy.size} of ${state.capacity} instances healthy after ${minutes(elapsed)}${detail}`;
  if (elapsed > ctx.cfg.healthTimeoutSeconds * 1000) {
    return toRollback(state, `${status}; the health timeout is ${ctx.cfg.healthTimeoutSeconds} s`);
  }
  return waitOrRollback(ctx, state, 'health', HEALTH_WAIT_SECONDS, `release ${state.release} on ${state.target}: ${status}; checking again in ${HEALTH_WAIT_SECONDS} s`, status);
}

async function afterSmoke(ctx: Context, state: Running): Promise<ReleaseState> {
  const smoke = isObject(state.smoke) ? state.smoke : {};
  const summary = typeof smoke.summary === 'string' && smoke.summary !== '' ? smoke.summary : 'no summary';
  if (smoke.passed !== true) {
    return toRollback(state, state.smoke === undefined ? 'the smoke test gave no result' : `smoke test failed: ${summary}`);
  }
  const gate = ctx.cfg.approval;
  if (gate === undefined) {
    return { ...state, next: 'shift', waitSeconds: 0, message: `release ${state.release}: smoke test passed on ${state.target} (${summary}); shifting production` };
  }
  const readyAt = iso(ctx.now());
  if (ctx.cfg.notifyTopicArn !== undefined) {
    const body = [
      `Release ${state.release} is ready for review on the test listener (${state.target} instances).`,
      '',
      ...(ctx.cfg.testUrl === undefined ? [] : [`Test URL: ${ctx.cfg.testUrl}`]),
      `Smoke test: passed (${summary})`,
      `Ready since: ${readyAt}`,
      `Production still runs: ${describeLive(state)}`,
      '',
      `To release it, approve the action ${gate.actionName}${gate.stageName === undefined ? '' : ` in stage ${gate.stageName}`} of pipeline `
      + `${gate.pipelineName} (execution ${state.pipelineExecutionId ?? '?'}) in the CodePipeline console; reject it to roll back. `
      + `An approval given before ${readyAt} does not count (the release would roll back), and without an answer within `
      + `${Math.round(gate.timeoutSeconds / 60)} minutes the release rolls back.`,
    ].join('\n');
    try {
      await aws(`sns:Publish (${ctx.cfg.notifyTopicArn})`, () => ctx.c.sns.send(new PublishCommand({
        TopicArn: ctx.cfg.notifyTopicArn, Subject: clip(`Ready for review: release ${state.release}`, SNS_SUBJECT_LIMIT), Message: body,
      })));
    } catch (err) {
      if (err instanceof RetryableError) throw err;
      // Reviewers who are never told cannot approve in time: roll back at once rather than wait for the timeout.
      return toRollback(state, `could not send the ready-for-review notification: ${(err as Error).message}`, { readyAt });
    }
  }
  return waitOrRollback(ctx, { ...state, readyAt }, 'approval', APPROVAL_WAIT_SECONDS,
    `release ${state.release}: smoke test passed; ready for review on the test listener since ${readyAt}, waiting for approval ${gate.actionName}`,
    'waiting for the approval');
}

async function approval(ctx: Context, state: Running): Promise<ReleaseState> {
  const gate = ctx.cfg.approval;
  if (gate === undefined) return { ...state, next: 'shift', waitSeconds: 0, message: `release ${state.release}: no approval gate configured; shifting production` };
  const readyAt = Date.parse(state.readyAt ?? '');
  if (Number.isNaN(readyAt)) throw new Error('the approval step got a state without readyAt');
  const run = await latestApprovalRun(ctx, gate, state.pipelineExecutionId ?? '');
  const name = `approval ${gate.actionName}`;
  switch (run?.status) {
    case 'Succeeded': {
      const approvedAt = run.lastUpdateTime instanceof Date ? run.lastUpdateTime.getTime() : NaN;
      if (Number.isNaN(approvedAt) || approvedAt < readyAt) {
        return toRollback(state, `${name} was approved before the new version was on the test listener (approved at `
          + `${Number.isNaN(approvedAt) ? 'an unknown time' : iso(approvedAt)}, ready at ${state.readyAt}); run the release again and approve after the ready-for-review notification`);
      }
      const by = run.updatedBy ? ` by ${run.updatedBy}` : '';
      return { ...state, next: 'shift', waitSeconds: 0, message: `release ${state.release}: ${name} granted${by} at ${iso(approvedAt)}; shifting production` };
    }
    case 'Failed':
    case 'Abandoned':
      return toRollback(state, `${name} rejected or timed out (status ${run.status}${run.updatedBy ? `, by ${run.updatedBy}` : ''})`);
    case undefined:
    case 'InProgress': {
      const until = Math.min(readyAt + gate.timeoutSeconds * 1000, deadlineOf(ctx, state));
      if (ctx.now() > until) {
        return toRollback(state, `${name} not given within ${minutes(ctx.now() - readyAt)} after the release was ready for review (until ${iso(until)})`);
      }
      return waitOrRollback(ctx, state, 'approval', APPROVAL_WAIT_SECONDS,
        `release ${state.release}: waiting for ${name} (${run === undefined ? 'not started yet' : 'in progress'}); asking again in ${APPROVAL_WAIT_SECONDS} s`,
        `${name} was not given`);
    }
    default:
      return toRollback(state, `${name} has an unexpected status ${JSON.stringify(run?.status)}`);
  }
}

/** The latest run of the approval action in the pipeline execution (a retried stage runs it again), or undefined. */
async function latestApprovalRun(ctx: Context, gate: ApprovalConfig, pipelineExecutionId: string): Promise<ActionExecutionDetail | undefined> {
  let latest: ActionExecutionDetail | undefined;
  let nextToken: string | undefined;
  for (let page = 0; page < MAX_PAGES; page++) {
    const response = await aws(`codepipeline:ListActionExecutions (${gate.pipelineName})`, () => ctx.c.codePipeline.send(new ListActionExecutionsCommand({
      pipelineName: gate.pipelineName, filter: { pipelineExecutionId }, maxResults: 100, nextToken,
    })));
    for (const detail of response.actionExecutionDetails ?? []) {
      if (detail.actionName !== gate.actionName || (gate.stageName !== undefined && detail.stageName !== gate.stageName)) continue;
      if (latest === undefined || time(detail.startTime) > time(latest.startTime)) latest = detail;
    }
    nextToken = response.nextToken;
    if (!nextToken) break;
  }
  return latest;
}

function time(value: Date | undefined): number {
  return value instanceof Date ? value.getTime() : Number.NEGATIVE_INFINITY;
}

// ---------------------------------------------------------------------------------------------------------------
// shift, bake
// ---------------------------------------------------------------------------------------------------------------

async function shift(ctx: Context, state: Running): Promise<ReleaseState> {
  const { cfg } = ctx;
  const now = ctx.now();
  const deadline = deadlineOf(ctx, state);
  const targetArn = cfg.colors[state.target].targetGroupArn;
  const canary = state.live !== 'none' && cfg.canaryPercent > 0 && (state.trafficPercent ?? 0) === 0;
  const ends = now + ((canary ? cfg.canarySeconds : 0) + cfg.bakeSeconds) * 1000;
  if (ends > deadline) {
    return toRollback(state, `the ${canary ? 'canary and ' : ''}bake would end at ${iso(ends)}, after the release deadline ${iso(deadline)}; production traffic was not moved`);
  }
  if (canary) {
    const p = cfg.canaryPercent;
    await modifyListener(ctx, [{
      Type: 'forward',
      ForwardConfig: {
        TargetGroups: [
          { TargetGroupArn: cfg.colors[state.live as Color].targetGroupArn, Weight: 100 - p },
          { TargetGroupArn: targetArn, Weight: p },
        ],
      },
    }]);
    const canaryUntil = iso(now + cfg.canarySeconds * 1000);
    return {
      ...state,
      next: 'bake',
      waitSeconds: 0,
      trafficPercent: p,
      shiftedAt: iso(now),
      canaryUntil,
      message: `release ${state.release}: production sends ${p} % to ${state.target} (${state.release}) and ${100 - p} % to ${describeLive(state)} until ${canaryUntil}`,
    };
  }
  await modifyListener(ctx, [{ Type: 'forward', TargetGroupArn: targetArn }]);
  const bakeUntil = iso(now + cfg.bakeSeconds * 1000);
  return {
    ...state,
    next: 'bake',
    waitSeconds: 0,
    trafficPercent: 100,
    shiftedAt: iso(now),
    bakeUntil,
    message: `release ${state.release}: production sends all traffic to ${state.target} (${state.release}); baking until ${bakeUntil}`,
  };
}

async function modifyListener(ctx: Context, actions: ListenerAction[]): Promise<void> {
  await aws(`elasticloadbalancing:ModifyListener (${ctx.cfg.productionListenerArn})`, () =>
    ctx.c.elb.send(new ModifyListenerCommand({ ListenerArn: ctx.cfg.productionListenerArn, DefaultActions: actions })));
}

async function bake(ctx: Context, state: Running): Promise<ReleaseState> {
  const alarming = await alarmsInAlarm(ctx, [...ctx.cfg.colors[state.target].alarms, ...ctx.cfg.deploymentAlarms]);
  const percent = state.trafficPercent ?? 0;
  if (alarming.length > 0) {
    const phase = percent < 100 ? `the canary (${percent} % of production)` : 'the bake';
    return toRollback(state, `alarm ${alarming.join(', alarm ')} went into ALARM during ${phase}`);
  }
  const now = ctx.now();
  if (percent < 100) {
    const canaryUntil = Date.parse(state.canaryUntil ?? '');
    if (Number.isNaN(canaryUntil) || now >= canaryUntil) {
      return { ...state, next: 'shift', waitSeconds: 0, message: `release ${state.release}: canary on ${state.target} passed; shifting all production traffic` };
    }
    const wait = Math.min(BAKE_WAIT_SECONDS, Math.ceil((canaryUntil - now) / 1000));
    return waitOrRollback(ctx, state, 'bake', wait,
      `release ${state.release}: canary, ${percent} % of production on ${state.target}, no alarm; until ${state.canaryUntil}`,
      `the canary had not ended (${percent} % of production on ${state.target})`);
  }
  const bakeUntil = Date.parse(state.bakeUntil ?? '');
  if (Number.isNaN(bakeUntil) || now >= bakeUntil) {
    return { ...state, next: 'finish', waitSeconds: 0, message: `release ${state.release}: bake on ${state.target} passed with no alarm; recording it as live` };
  }
  const wait = Math.min(BAKE_WAIT_SECONDS, Math.ceil((bakeUntil - now) / 1000));
  return waitOrRollback(ctx, state, 'bake', wait,
    `release ${state.release}: baking on ${state.target}, all production traffic, no alarm; until ${state.bakeUntil}`,
    `the bake had not ended (all production traffic on ${state.target})`);
}

/** Names of the alarms in ALARM (metric and composite), asked in batches of 100. */
async function alarmsInAlarm(ctx: Context, alarmNames: readonly string[]): Promise<string[]> {
  const unique = [...new Set(alarmNames)];
  const alarming: string[] = [];
  for (let i = 0; i < unique.length; i += ALARM_BATCH_SIZE) {
    const batch = unique.slice(i, i + ALARM_BATCH_SIZE);
    let nextToken: string | undefined;
    for (let page = 0; page < MAX_PAGES; page++) {
      const response = await aws('cloudwatch:DescribeAlarms', () => ctx.c.cloudWatch.send(new DescribeAlarmsCommand({
        AlarmNames: batch, AlarmTypes: ['MetricAlarm', 'CompositeAlarm'], MaxRecords: 100, NextToken: nextToken,
      })));
      for (const alarm of [...(response.MetricAlarms ?? []), ...(response.CompositeAlarms ?? [])]) {
        if (alarm.StateValue === 'ALARM' && alarm.AlarmName !== undefined) alarming.push(alarm.AlarmName);
      }
      nextToken = response.NextToken;
      if (!nextToken) break;
    }
  }
  return alarming;
}

// ---------------------------------------------------------------------------------------------------------------
// finish
// ---------------------------------------------------------------------------------------------------------------

async function finish(ctx: Context, state: Running): Promise<ReleaseState> {
  const { cfg, c } = ctx;
  // Invariant: the record first. A failure here throws, and the state machine rolls the release back.
  await aws(`ssm:PutParameter (${cfg.liveColorParameter})`, () =>
    c.ssm.send(new PutParameterCommand({ Name: cfg.liveColorParameter, Value: state.target, Type: 'String', Overwrite: true })));
  const live = `production runs ${state.release} on ${state.target}`;
  const notDone = await afterRecorded(ctx, state, live);
  return {
    ...state,
    next: 'succeeded',
    waitSeconds: 0,
    message: notDone.length === 0 ? live : `${live}; ${notDone.join('; ')}`,
  };
}

/** Best effort once the target is recorded as live: free the lock, scale the old color down, notify. */
async function afterRecorded(ctx: Context, state: Running, live: string): Promise<string[]> {
  const { cfg, c } = ctx;
  const notDone: string[] = [];
  const attempt = async (what: string, call: () => Promise<unknown>) => {
    try {
      await call();
    } catch (err) {
      notDone.push(`could not ${what}: ${errorText(err)}`);
    }
  };
  await attempt(`free the release lock ${cfg.lockParameter}`, () =>
    c.ssm.send(new PutParameterCommand({ Name: cfg.lockParameter, Value: LOCK_FREE, Type: 'String', Overwrite: true })));
  if (state.live !== 'none') {
    // ELB's deregistration delay drains the old instances' connections.
    await attempt(`scale the old ${state.live} group ${cfg.colors[state.live].groupName} to 0`, () => scaleToZero(ctx, state.live as Color));
  }
  await attempt('send the release notification', () => notify(ctx, `Released: ${state.release}`, [
    `${live}.`,
    ...(cfg.productionUrl === undefined ? [] : [`Production URL: ${cfg.productionUrl}`]),
    `Before: ${describeLive(state)}.`,
    ...(notDone.length === 0 ? [] : ['', ...notDone]),
  ]));
  return notDone;
}

async function notify(ctx: Context, subject: string, lines: string[]): Promise<void> {
  const topicArn = ctx.cfg.notifyTopicArn;
  if (topicArn === undefined) return;
  await ctx.c.sns.send(new PublishCommand({ TopicArn: topicArn, Subject: clip(subject, SNS_SUBJECT_LIMIT), Message: lines.join('\n') }));
}

function describeLive(state: { readonly live: LiveColor; readonly previousRelease: string }): string {
  return state.live === 'none' ? 'the 503 of an unreleased service' : `${state.previousRelease} on ${state.live}`;
}

// ---------------------------------------------------------------------------------------------------------------
// rollback
// ---------------------------------------------------------------------------------------------------------------

/** Target groups a listener's default actions forward to with a weight above 0. */
export function forwardedTargetGroups(actions: readonly ListenerAction[] | undefined): string[] {
  const arns = new Set<string>();
  for (const action of actions ?? []) {
    if (action.Type !== 'forward') continue;
    const weighted = action.ForwardConfig?.TargetGroups;
    if (weighted !== undefined && weighted.length > 0) {
      for (const tg of weighted) if (tg.TargetGroupArn !== undefined && (tg.Weight === undefined || tg.Weight > 0)) arns.add(tg.TargetGroupArn);
    } else if (action.TargetGroupArn !== undefined) {
      arns.add(action.TargetGroupArn);
    }
  }
  return [...arns];
}

/** True when the default actions are exactly what production serves outside a release. */
export function servesOnly(actions: readonly ListenerAction[] | undefined, live: LiveColor, cfg: Ec2ReleaseConfig): boolean {
  const list = actions ?? [];
  if (live === 'none') {
    return list.length === 1 && list[0].Type === 'fixed-response' && list[0].FixedResponseConfig?.StatusCode === '503';
  }
  const forwarded = forwardedTargetGroups(list);
  return list.every((a) => a.Type === 'forward') && forwarded.length === 1 && forwarded[0] === cfg.colors[live].targetGroupArn;
}

function describeListener(actions: readonly ListenerAction[] | undefined, cfg: Ec2ReleaseConfig): string {
  const list = actions ?? [];
  const parts = list.map((a) => {
    if (a.Type === 'fixed-response') return `a fixed ${a.FixedResponseConfig?.StatusCode ?? '?'} response`;
    if (a.Type !== 'forward') return `a ${a.Type ?? '?'} action`;
    const tgs = forwardedTargetGroups([a]).map((arn) => (arn === cfg.colors.blue.targetGroupArn ? 'blue' : arn === cfg.colors.green.targetGroupArn ? 'green' : arn));
    return `forward to ${tgs.join(' and ') || 'nothing'}`;
  });
  return parts.join(', ') || 'no default action';
}

async function listenerActions(ctx: Context): Promise<ListenerAction[]> {
  const response = await aws(`elasticloadbalancing:DescribeListeners (${ctx.cfg.productionListenerArn})`, () =>
    ctx.c.elb.send(new DescribeListenersCommand({ ListenerArns: [ctx.cfg.productionListenerArn] })));
  const listener = response.Listeners?.find((l) => l.ListenerArn === ctx.cfg.productionListenerArn) ?? response.Listeners?.[0];
  if (listener === undefined) throw new ReleaseStepError(`listener ${ctx.cfg.productionListenerArn} not found`);
  return listener.DefaultActions ?? [];
}

/** Why the release rolls back: `state.reason`, and the error the state machine caught. */
export function rollbackReason(state: Record<string, unknown>): string {
  const reasons: string[] = [];
  if (typeof state.reason === 'string' && state.reason !== '') reasons.push(state.reason);
  if (isObject(state.caught)) {
    const error = typeof state.caught.Error === 'string' ? state.caught.Error : 'error';
    let cause = typeof state.caught.Cause === 'string' ? state.caught.Cause : '';
    try {
      // Lambda's Cause is JSON: {"errorType":..,"errorMessage":..,"trace":[..]}.
      const parsed: unknown = JSON.parse(cause);
      if (isObject(parsed) && typeof parsed.errorMessage === 'string') cause = parsed.errorMessage;
    } catch {
      // not JSON: quoted as it is
    }
    reasons.push(cause === '' ? error : `${error}: ${cause}`);
  }
  return clip(reasons.join('; ') || 'no reason given', REASON_LIMIT);
}

async function rollback(ctx: Context, event: Record<string, unknown>, state: Record<string, unknown>): Promise<ReleaseState> {
  const { cfg, c } = ctx;
  const reason = rollbackReason(state);
  const release = typeof state.release === 'string' ? state.release : '?';
  const executionArn = typeof state.executionArn === 'string' ? state.executionArn : typeof event.executionArn === 'string' ? event.executionArn : undefined;
  const result = (message: string, next: Next = 'failed'): ReleaseState => ({
    ...(state as Partial<ReleaseState>), next, waitSeconds: 0, reason, message: clip(message, REASON_LIMIT + 300),
  } as ReleaseState);

  const params = await readParameters(ctx);
  if (!params.ok) throw new ReleaseStepError(`rollback of release ${release} (${reason}) cannot read the release state: ${params.error}`);
  const recordedLive = params.value.live;
  const live: LiveColor = ['none', 'blue', 'green'].includes(state.live as string) ? state.live as LiveColor : recordedLive;
  const target: Color = state.target === 'blue' || state.target === 'green' ? state.target : other(live);
  const previousRelease = typeof state.previousRelease === 'string' ? state.previousRelease : live === 'none' ? 'none' : params.value.releases[live];
  const owned = executionArn !== undefined && params.value.lock === lockValue(executionArn);
  const production = live === 'none' ? 'production answers 503, nothing was released before' : `production runs ${previousRelease} on ${live} everywhere`;

  if (recordedLive === target && live !== target) {
    // finish's write of the live color landed (its answer was lost): production runs the target, and says so.
    const running: Running = { ...(state as unknown as Running), live, target, previousRelease };
    const notDone = owned ? await afterRecorded(ctx, running, `production runs ${release} on ${target}`) : [];
    const message = `not rolled back (${reason}): ${target} was already recorded as live, production runs ${release} on ${target}`;
    return result(notDone.length === 0 ? message : `${message}; ${notDone.join('; ')}`, 'succeeded');
  }

  if (!owned) {
    // Never took the lock, or an earlier rollback already ended this release: nothing of it to undo, and touching
    // the listener or the target group now could disturb a release that started since.
    const lockNote = params.value.lock === LOCK_FREE ? '' : ` (the release lock says: ${clip(params.value.lock, 200)})`;
    const actions = params.value.lock === LOCK_FREE ? await listenerActions(ctx) : undefined;
    const where = actions === undefined || servesOnly(actions, live, cfg)
      ? production
      : `production's listener does: ${describeListener(actions, cfg)}`;
    return result(`rolled back (${reason}): release ${release} holds no lock, nothing left to undo${lockNote}; ${where}`);
  }

  // 1. Production back to the live color (or the 503), verified.
  const before = await listenerActions(ctx);
  const targetArn = cfg.colors[target].targetGroupArn;
  const mayCarry = (typeof state.trafficPercent === 'number' && state.trafficPercent > 0) || forwardedTargetGroups(before).includes(targetArn);
  if (mayCarry || !servesOnly(before, live, cfg)) {
    await modifyListener(ctx, live === 'none'
      ? [{ Type: 'fixed-response', FixedResponseConfig: { StatusCode: '503', ContentType: 'text/plain', MessageBody: cfg.notReleasedBody } }]
      : [{ Type: 'forward', TargetGroupArn: cfg.colors[live].targetGroupArn }]);
    const after = await listenerActions(ctx);
    if (!servesOnly(after, live, cfg)) {
      throw new RetryableError(`rollback of release ${release}: the production listener still does: ${describeListener(after, cfg)}`);
    }
  }
  // 2. The target down, 3. the lock free.
  await scaleToZero(ctx, target);
  await aws(`ssm:PutParameter (${cfg.lockParameter})`, () =>
    c.ssm.send(new PutParameterCommand({ Name: cfg.lockParameter, Value: LOCK_FREE, Type: 'String', Overwrite: true })));
  const message = `rolled back (${reason}): ${production}`;
  let notified = '';
  try {
    await notify(ctx, `Rolled back: ${release}`, [`Release ${release} was rolled back.`, `Reason: ${reason}`, `Now: ${production}.`]);
  } catch (err) {
    notified = `; could not send the notification: ${describeError(err)}`;
  }
  return result(`${message}${notified}`);
}
