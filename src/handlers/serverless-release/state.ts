/**
 * The continuation token: the state a release carries from one invocation of the CodePipeline action to the next
 * (deployment ids only: the token holds at most 2,048 characters; each deployment's description holds the rest).
 * ADR 0007.
 */
import { CONTINUATION_TOKEN_LIMIT, FUNCTIONS_PER_ALARM, MAX_FUNCTIONS, POLL_DELAY_MS } from './configuration';
import { clip, describeJson, isObject } from '../shared/common';

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
  /** Phase `wait`: the last traffic step reported (src/handlers/serverless-release/progress.ts); none yet: 0. */
  readonly reported?: number;
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
    ...(state.phase === 'wait' && state.reported ? { reported: state.reported } : {}),
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

export const isTime = (value: unknown): value is number => Number.isSafeInteger(value) && (value as number) > 0;

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
  if (parsed.phase === 'wait') {
    // Only the traffic step events read it: a malformed value is dropped, never an invalid token.
    const reported = Number.isSafeInteger(parsed.reported) && (parsed.reported as number) > 0 ? { reported: parsed.reported as number } : {};
    return { kind: 'follow', state: { phase: 'wait', ...base, ...reported } };
  }
  const { rollbackAt, cause, failureType } = parsed;
  if (!isTime(rollbackAt) || typeof cause !== 'string' || (failureType !== 'JobFailed' && failureType !== 'PermissionError')) return invalid;
  return { kind: 'follow', state: { phase: 'rollback', ...base, rollbackAt, cause, failureType } };
}
