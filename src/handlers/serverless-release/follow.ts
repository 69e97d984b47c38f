/**
 * Phase `wait`: one `GetDeployment` per deployment. All succeeded: the alarms are deleted and the job succeeds with
 * the versions; any failed or stopped, an error, or the wait limit: the coordinated rollback; otherwise, continue.
 * A throttled or transient look counts as one more poll. ADR 0007.
 */
import { PutJobSuccessResultCommand } from '@aws-sdk/client-codepipeline';
import type { FailureType } from '@aws-sdk/client-codepipeline';
import { BROKEN, CONCURRENCY, OUTPUT_VARIABLE_LIMIT, RUNNING } from './configuration';
import { alarmNamesOf, continueLater, deleteAlarms, deploymentLabel, explain, Job, JobError, JobOutcome, lookAt, Looked, mapLimit, minutes, report } from './job';
import { reportTraffic, trafficPercent } from './progress';
import { startRollback } from './rollback';
import { ReleaseState } from './state';
import { awsErrorOf as awsError, isAccessDenied } from '../shared/aws-call';
import { clip, log } from '../shared/common';
import { isRetryable } from '../shared/retryable';

export async function followRelease(job: Job, state: ReleaseState): Promise<JobOutcome> {
  const fields = { ...job.fields, phase: 'wait', polls: state.polls };
  const alarmNames = alarmNamesOf(job, state);
  const looked = await mapLimit(state.deployments, CONCURRENCY, lookAt);

  const statusOf = (l: Looked) => l.info?.status ?? 'unknown';
  const broken = looked.filter((l) => l.info !== undefined && !RUNNING.has(statusOf(l)) && statusOf(l) !== 'Succeeded');
  const errors = looked.filter((l) => l.error !== undefined && !isRetryable(awsError(l.error)));
  const throttled = looked.filter((l) => l.error !== undefined && isRetryable(awsError(l.error)));

  if (broken.length > 0) {
    const what = broken.map((l) => {
      const status = statusOf(l);
      const errorInfo = l.info?.errorInformation;
      const error = [errorInfo?.code, errorInfo?.message].filter(Boolean).join(': ');
      const meaning = BROKEN.has(status) ? '' : ' (a status this function does not know)';
      return `${deploymentLabel(l)} is ${status}${meaning}${error ? `: ${error}` : ''}`;
    });
    return startRollback(job, state, new JobError(what.join('; ')), looked);
  }
  if (errors.length > 0) {
    const type: FailureType = errors.some((l) => isAccessDenied(awsError(l.error))) ? 'PermissionError' : 'JobFailed';
    return startRollback(job, state, new JobError(errors.map((l) => explain(l.error).message).join('; '), type), looked);
  }
  if (looked.every((l) => statusOf(l) === 'Succeeded')) {
    // Every alias serves its new version: the 100 % step, before the job reports success.
    await reportTraffic(job, state, 100);
    const problems = await deleteAlarms(job, alarmNames);
    const versions = clip(looked.map((l) => (l.release ? `${l.release.id}=${l.release.targetVersion}` : `${l.deploymentId}=?`)).join(','), OUTPUT_VARIABLE_LIMIT);
    log('INFO', 'release succeeded: every changed function serves its new version', { ...fields, versions, alarmProblems: problems });
    await report(job.jobId, new PutJobSuccessResultCommand({ jobId: job.jobId, outputVariables: { versions } }), { ...fields, decision: 'released' });
    return { result: 'released', versions };
  }

  const waiting = looked.filter((l) => l.info !== undefined && RUNNING.has(statusOf(l))).map((l) => `${deploymentLabel(l)} is ${statusOf(l)}`);
  const reason = [...waiting, ...throttled.map((l) => `${explain(l.error).message} (transient)`)].join('; ');
  const elapsed = job.now() - state.startedAt;
  if (elapsed >= job.config.maxWaitMs) {
    return startRollback(job, state, new JobError(`the release did not finish in time: still not finished after ${minutes(elapsed)} `
      + `(the limit is ${minutes(job.config.maxWaitMs)}): ${reason}`), looked);
  }
  const reported = job.progress ? await reportTraffic(job, state, await trafficPercent(looked)) : state.reported;
  return continueLater(job, { ...state, polls: state.polls + 1, ...(reported ? { reported } : {}) },
    { ...fields, reason, elapsedMs: elapsed, maxWaitMs: job.config.maxWaitMs });
}
