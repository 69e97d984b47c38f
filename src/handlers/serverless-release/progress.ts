/**
 * The traffic step events of a serverless release (src/handlers/shared/release-progress.ts): CodeDeploy shifts each
 * live alias by the deployment configuration's steps; at each poll of phase `wait` the controller reads where the
 * first changed function's alias stands (`lambda:GetAlias`, the functions shift together) and reports a step it has
 * not reported yet; when every deployment succeeded, the 100 % step. Best effort: nothing here throws or changes
 * the release's decision. ADR 0010 ("Traffic steps").
 */
import { Job, Looked, readAlias } from './job';
import { ReleaseState } from './state';
import { errorMessage, log } from '../shared/common';
import { publishProgress } from '../shared/release-progress';

/** The steps reported: the configuration's, or only the 100 % one. */
export function stepsOf(job: Job): readonly number[] {
  return job.config.trafficSteps ?? [100];
}

/** The step (from 1) that `percent` has reached, 0 before the first. */
export function stepFor(steps: readonly number[], percent: number): number {
  let reached = 0;
  steps.forEach((p, i) => {
    if (percent + 0.5 >= p) reached = i + 1;
  });
  return reached;
}

/** Where production traffic stands on the new version of the first changed function, in percent; undefined when unknown. */
export async function trafficPercent(looked: readonly Looked[]): Promise<number | undefined> {
  const release = looked.find((l) => l.release !== undefined)?.release;
  if (release === undefined) return undefined;
  try {
    const alias = await readAlias({ functionName: release.functionName, aliasName: release.aliasName, id: release.id });
    if (alias.version === release.targetVersion) return 100;
    return Math.round((alias.weights[release.targetVersion] ?? 0) * 100);
  } catch (err) {
    log('WARN', `could not read the alias for the traffic step event (${errorMessage(err)}); the release goes on`, { ...release });
    return undefined;
  }
}

/** A release with nothing to shift: production already serves the code, reported as all traffic, step 1 of 1. */
export async function reportAllAtOnce(job: Job): Promise<void> {
  if (job.progress === undefined) return;
  await publishProgress({
    pipeline: job.progress.pipeline,
    executionId: job.progress.executionId,
    engine: 'lambda-alias',
    step: 1,
    steps: 1,
    percent: 100,
    shiftedAt: new Date(job.now()).toISOString(),
  });
}

/**
 * Reports the step `percent` reached, when it is beyond `state.reported`; returns the step now reported. Never throws.
 * With no step configuration, only 100 % is a step.
 */
export async function reportTraffic(job: Job, state: ReleaseState, percent: number | undefined): Promise<number> {
  const reported = state.reported ?? 0;
  if (job.progress === undefined || percent === undefined) return reported;
  const steps = stepsOf(job);
  const step = stepFor(steps, percent);
  if (step <= reported) return reported;
  await publishProgress({
    pipeline: job.progress.pipeline,
    executionId: job.progress.executionId,
    engine: 'lambda-alias',
    step,
    steps: steps.length,
    percent: steps[step - 1],
    shiftedAt: new Date(job.now()).toISOString(),
  });
  // Reported or not (a failed put is logged), the release moves on: a lost step is not sent again.
  return step;
}
