/**
 * The state the state machine carries from step to step (`ReleaseState`: always `next`, `waitSeconds`, `message`),
 * and the small rules every step applies to it: the deadline (`startedAt` + `RELEASE_DEADLINE_SECONDS`, no wait past
 * it), the rollback it turns into. ADR 0008 ("Release invariants").
 */
import type { Next, StepAction } from '../ec2-release.lambda';
import { Color, LiveColor, REASON_LIMIT } from './configuration';
import { Context } from './context';
import { clip } from '../shared/common';

export type { Next, StepAction };
export const ACTIONS: ReadonlySet<string> = new Set<StepAction>(['start', 'drain', 'health', 'afterSmoke', 'approval', 'shift', 'bake', 'finish', 'rollback']);

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
  /** The 100 % traffic step event was not taken by EventBridge: the bake ticks send it again (best effort). */
  readonly progressPending?: boolean;
  /** Why the release rolls back (set with `next: 'rollback'`). */
  readonly reason?: string;
  /** Set by the state machine: the smoke test's result. */
  readonly smoke?: unknown;
  /** Set by the state machine's Catch: `{ Error, Cause }`. */
  readonly caught?: unknown;
}

/** What a step after `start` needs, checked. */
export interface Running extends ReleaseState {
  readonly release: string;
  readonly executionArn: string;
  readonly startedAt: string;
  readonly live: LiveColor;
  readonly previousRelease: string;
  readonly target: Color;
  readonly capacity: number;
}

export const RELEASE_ID_PATTERN = /^[A-Za-z0-9._-]{1,128}$/;
export const LOCK_FREE = 'free';
export const lockValue = (executionArn: string) => `running ${executionArn}`;
export const other = (color: LiveColor): Color => (color === 'blue' ? 'green' : 'blue');

/** The state of a release after `start`, checked: a broken state is a real error (the release rolls back). */
export function asRunning(state: Record<string, unknown>, action: string): Running {
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

export function deadlineOf(ctx: Context, state: { readonly startedAt: string }): number {
  return Date.parse(state.startedAt) + ctx.cfg.releaseDeadlineSeconds * 1000;
}

export const iso = (ms: number) => new Date(ms).toISOString();
export const minutes = (ms: number) => `${Math.round(ms / 6_000) / 10} minutes`;

export function toRollback(state: ReleaseState, reason: string, extra: Partial<ReleaseState> = {}): ReleaseState {
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
export function waitOrRollback(
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
