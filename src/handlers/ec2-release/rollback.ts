/**
 * `rollback`: only when this execution holds the lock; production back to the live color (or the fixed 503),
 * verified, the target scaled to 0, the lock freed, notified. Never writes the live color. ADR 0008 ("Release
 * invariants").
 */
import { Color, LiveColor, REASON_LIMIT } from './configuration';
import { aws, Context, describeListener, forwardedTargetGroups, listenerActions, modifyListener, notify, readParameters, ReleaseStepError, RetryableError, scaleToZero, servesOnly } from './context';
import { afterRecorded } from './follow';
import { LOCK_FREE, lockValue, Next, other, ReleaseState, Running } from './state';
import { clip, describeError, isObject } from '../shared/common';
import { overwriteStateParameter } from '../shared/state-parameter';

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

export async function rollback(ctx: Context, event: Record<string, unknown>, state: Record<string, unknown>): Promise<ReleaseState> {
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
    overwriteStateParameter(c.ssm, cfg.lockParameter, LOCK_FREE));
  const message = `rolled back (${reason}): ${production}`;
  let notified = '';
  try {
    await notify(ctx, `Rolled back: ${release}`, [`Release ${release} was rolled back.`, `Reason: ${reason}`, `Now: ${production}.`]);
  } catch (err) {
    notified = `; could not send the notification: ${describeError(err)}`;
  }
  return result(`${message}${notified}`);
}
