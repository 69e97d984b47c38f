/**
 * The decisions of an EC2 blue/green release: one step of the release per invocation, called in a loop by the Step
 * Functions state machine of `Ec2BlueGreenRelease` (src/release/ec2-blue-green-release.ts).
 *
 * Contract: invoked with `{ action, state }` (for `start`: `{ action: 'start', input: { release, pipelineExecutionId },
 * executionArn, startedAt }`); returns the new state, always with `next` (the next action, or `succeeded` /
 * `failed`), `waitSeconds` and `message` (one readable line). A thrown `RetryableError` runs the same step again; any
 * other error is a failure the state machine's Catch turns into `rollback`. The design, the release invariants, the
 * IAM and what is unverified: ADR 0008 (docs/adr/0008-ec2-release-engine-first-deployment-drift.md). The steps live in
 * `ec2-release/`: `configuration`, `state`, `context` (clients, errors, shared AWS calls), `start`, `follow`, `rollback`.
 */
import { readConfig } from './ec2-release/configuration';
import { clients, Context, definedClients, Ec2ReleaseDeps, RetryableError } from './ec2-release/context';
import { afterSmoke, approval, bake, finish, shift } from './ec2-release/follow';
import { rollback } from './ec2-release/rollback';
import { drain, health, start } from './ec2-release/start';
import { ACTIONS, asRunning, ReleaseState } from './ec2-release/state';
import { clip, isObject, log, logError } from './shared/common';

// The release's parts, for the tests.
export * from './ec2-release/configuration';
export { RELEASE_ID_PATTERN } from './ec2-release/state';
export type { ReleaseState } from './ec2-release/state';

/** What the state machine runs next (the contract with its Route choice; src/release/ec2-blue-green-release.ts). */
export type Next = 'start' | 'drain' | 'health' | 'smoke' | 'approval' | 'shift' | 'bake' | 'finish' | 'rollback' | 'succeeded' | 'failed';
/** The actions the function accepts. */
export type StepAction = 'start' | 'drain' | 'health' | 'afterSmoke' | 'approval' | 'shift' | 'bake' | 'finish' | 'rollback';
export { ReleaseStepError, RetryableError, forwardedTargetGroups, servesOnly } from './ec2-release/context';
export type { Ec2ReleaseDeps } from './ec2-release/context';
export { rollbackReason } from './ec2-release/rollback';

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
