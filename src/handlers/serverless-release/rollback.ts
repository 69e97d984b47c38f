/**
 * Phase `rollback`: every function back on its previous version, verified by `GetAlias` before the job says so
 * (running deployments stopped with rollback, CodeDeploy's rollbacks followed, an alias moved back by the controller
 * when CodeDeploy does not), then the alarms deleted and the job failed naming what each function serves; bounded
 * by `ROLLBACK_LIMIT_MS`. ADR 0007 ("Release invariants").
 */
import { StopDeploymentCommand } from '@aws-sdk/client-codedeploy';
import { UpdateAliasCommand } from '@aws-sdk/client-lambda';
import { CONCURRENCY, DescribedRelease, ROLLBACK_GRACE_MS, ROLLBACK_LIMIT_MS } from './configuration';
import { alarmNamesOf, call, codeDeploy, continueLater, deleteAlarms, deploymentLabel, explain, fail, isEnded, isOn, Job, JobOutcome, lambda, lookAt, Looked, mapLimit, minutes, problemText, readAlias, servesOf } from './job';
import { ReleaseState } from './state';
import { awsErrorOf as awsError } from '../shared/aws-call';
import { errorName, log, logError } from '../shared/common';
import { isRetryable } from '../shared/retryable';

/** Starts the coordinated rollback (now, in this invocation) because of `err`. */
export async function startRollback(
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
export interface Settled {
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
export async function rollBack(job: Job, state: ReleaseState, looked?: readonly Looked[]): Promise<JobOutcome> {
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
export async function settle(job: Job, state: ReleaseState, deploymentId: string, known?: Looked): Promise<Settled> {
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
export async function revertAlias(
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
