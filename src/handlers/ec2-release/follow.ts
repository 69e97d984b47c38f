/**
 * After the smoke test: `afterSmoke` (failed: `rollback`; passed: the approval gate or `shift`), `approval`, `shift`
 * (all at once or a canary first; refused when it could not finish before the deadline), `bake` (any watched alarm:
 * `rollback`), and `finish` (the live color first, then best effort: the lock, the old color, the notification).
 * ADR 0008.
 */
import { PublishCommand } from '@aws-sdk/client-sns';
import { APPROVAL_WAIT_SECONDS, BAKE_WAIT_SECONDS, Color, SNS_SUBJECT_LIMIT } from './configuration';
import { alarmsInAlarm, aws, Context, describeLive, errorText, latestApprovalRun, modifyListener, notify, RetryableError, scaleToZero } from './context';
import { deadlineOf, iso, LOCK_FREE, minutes, ReleaseState, Running, toRollback, waitOrRollback } from './state';
import { clip, isObject } from '../shared/common';
import { publishProgress } from '../shared/release-progress';
import { overwriteStateParameter } from '../shared/state-parameter';

export async function afterSmoke(ctx: Context, state: Running): Promise<ReleaseState> {
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

export async function approval(ctx: Context, state: Running): Promise<ReleaseState> {
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

export async function shift(ctx: Context, state: Running): Promise<ReleaseState> {
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
    await reportStep(ctx, state, 1, 2, p, now);
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
  const afterCanary = (state.trafficPercent ?? 0) > 0;
  await reportStep(ctx, state, afterCanary ? 2 : 1, afterCanary ? 2 : 1, 100, now);
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

/**
 * The traffic step event of `shift` (src/handlers/shared/release-progress.ts): best effort, after the listener took
 * the new weights; never fails or delays the step beyond its few seconds. None without `PIPELINE_NAME` or an
 * execution id.
 */
async function reportStep(ctx: Context, state: Running, step: number, steps: number, percent: number, now: number): Promise<void> {
  if (ctx.cfg.pipelineName === undefined || !state.pipelineExecutionId) return;
  await publishProgress({
    pipeline: ctx.cfg.pipelineName,
    executionId: state.pipelineExecutionId,
    engine: 'ec2-blue-green',
    step,
    steps,
    percent,
    shiftedAt: iso(now),
  }, ctx.c.events);
}

export async function bake(ctx: Context, state: Running): Promise<ReleaseState> {
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

export async function finish(ctx: Context, state: Running): Promise<ReleaseState> {
  const { cfg, c } = ctx;
  // Invariant: the record first. A failure here throws, and the state machine rolls the release back.
  await aws(`ssm:PutParameter (${cfg.liveColorParameter})`, () =>
    overwriteStateParameter(c.ssm, cfg.liveColorParameter, state.target));
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
export async function afterRecorded(ctx: Context, state: Running, live: string): Promise<string[]> {
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
    overwriteStateParameter(c.ssm, cfg.lockParameter, LOCK_FREE));
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
