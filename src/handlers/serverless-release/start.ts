/**
 * First invocation (no continuation token): check that no other release runs (adopting this release's own
 * deployments), read the aliases, sweep stale release alarms, ship the code and publish versions, then create one
 * alarm per ten changed functions (`<ALARM_PREFIX>-<release id>-<n>`) and one CodeDeploy deployment per changed
 * function; any failure after a deployment exists starts the coordinated rollback. ADR 0007 ("Decision", "Release
 * invariants").
 */
import { DeleteAlarmsCommand, DescribeAlarmsCommand, PutMetricAlarmCommand } from '@aws-sdk/client-cloudwatch';
import { CreateDeploymentCommand, GetDeploymentCommand, ListDeploymentsCommand } from '@aws-sdk/client-codedeploy';
import type { DeploymentInfo } from '@aws-sdk/client-codedeploy';
import { PutJobSuccessResultCommand } from '@aws-sdk/client-codepipeline';
import { GetFunctionConfigurationCommand, PublishVersionCommand, UpdateFunctionCodeCommand } from '@aws-sdk/client-lambda';
import { alarmNameFor, ALARMS_PER_CALL, artifactKey, buildAlarm, buildDeployment, chunk, CONCURRENCY, CREATE_MARGIN_MS, DescribedRelease, FunctionRelease, FUNCTIONS_PER_ALARM, LIST_PAGE_LIMIT, parseDeploymentDescription, RELEASE_MARGIN_MS, ReleasedFunction, RUNNING, RUNNING_STATUSES, SWEEP_PAGE_LIMIT, UPDATE_POLL_MS, UPDATE_TIMEOUT_MS } from './configuration';
import { call, cloudWatch, codeDeploy, deleteAlarms, explain, fail, Job, JobError, JobOutcome, label, lambda, mapLimit, problemText, readAlias, report, timeLeft } from './job';
import { reportAllAtOnce } from './progress';
import { startRollback } from './rollback';
import { encodeState } from './state';
import { awsErrorOf as awsError } from '../shared/aws-call';
import { describeError, errorName, log } from '../shared/common';

export const NOTHING_RELEASED = 'no alias was changed: production still serves the previous versions';

/** A deployment still running in one of the release's deployment groups. */
export interface ActiveDeployment {
  readonly deploymentId: string;
  readonly groupName: string;
  readonly info: DeploymentInfo;
  readonly release?: DescribedRelease;
}

export async function startRelease(job: Job): Promise<JobOutcome> {
  const { config } = job;
  const startedAt = job.now();

  // 1. Deployments still running: this release's are adopted, any other refuses the release.
  let active: ActiveDeployment[];
  try {
    active = (await mapLimit(config.functions, CONCURRENCY, (fn) => listActiveDeployments(job, fn))).flat();
  } catch (err) {
    return failBeforeDeployments(job, err, [], [], 'could not check that no other release is running');
  }
  const adopted = new Map<string, ActiveDeployment>();
  const others: ActiveDeployment[] = [];
  for (const a of active) {
    if (a.release?.releaseId === job.releaseId) adopted.set(a.groupName, a);
    else others.push(a);
  }
  if (others.length > 0) {
    const which = others.map((a) => `${activeLabel(a)} is ${a.info.status ?? 'running'}`
      + (a.release?.releaseId ? ` (release ${a.release.releaseId})` : ' (not created by this controller, or by an earlier version of it)'));
    return fail(job.jobId, 'JobFailed',
      `refused: another release is still running in this API's deployment groups: ${which.join('; ')}. Only one release runs at a time: `
      + 'retry the stage when it has finished, or stop it (aws deploy stop-deployment --deployment-id <id> --auto-rollback-enabled). '
      + 'This release did not wait, and changed no code, alias or alarm',
      { ...job.fields, decision: 'refused: another release is running', running: others.map((a) => a.deploymentId) });
  }
  if (adopted.size > 0) {
    log('INFO', 'deployments of this release are already running (a duplicate or retried invocation): adopting them, creating none twice', {
      ...job.fields, adopted: [...adopted.values()].map((a) => a.deploymentId),
    });
  }

  // 2. What each alias serves now.
  let aliases: Array<{ version: string; weights: Record<string, number> }>;
  try {
    aliases = await mapLimit(config.functions, CONCURRENCY, (fn) => readAlias(fn));
  } catch (err) {
    return failBeforeDeployments(job, err);
  }
  const shifting = config.functions.flatMap((fn, i) =>
    (Object.keys(aliases[i].weights).length > 0 && !adopted.has(fn.deploymentGroupName) ? [{ fn, alias: aliases[i] }] : []));
  if (shifting.length > 0) {
    const which = shifting.map(({ fn, alias }) =>
      `alias ${fn.aliasName} of function ${label(fn)} serves version ${alias.version} and sends ${JSON.stringify(alias.weights)} to other versions`);
    return fail(job.jobId, 'JobFailed',
      `${which.join('; ')}: a traffic shift was left half done (no deployment is running for it), and CodeDeploy refuses such an alias. `
      + 'Point the alias at a single version (aws lambda update-alias --function-name <name> --name <alias> --function-version <version> '
      + `--routing-config AdditionalVersionWeights={}), then retry the stage; ${NOTHING_RELEASED}`,
      { ...job.fields, shifting: shifting.map(({ fn }) => fn.id) });
  }

  // 3. Delete the alarms of earlier releases that have no running deployment (best effort, never fails).
  await sweepStaleAlarms(job, active);

  // 4. Ship the code and publish a version of each function (adopted ones already have theirs).
  let targets: string[];
  try {
    targets = await mapLimit(config.functions, CONCURRENCY,
      async (fn) => adopted.get(fn.deploymentGroupName)?.release?.targetVersion ?? shipCode(job, fn));
  } catch (err) {
    return failBeforeDeployments(job, err);
  }
  const releases: FunctionRelease[] = config.functions.map((fn, i) => {
    const own = adopted.get(fn.deploymentGroupName)?.release;
    return {
      id: fn.id,
      functionName: fn.functionName,
      aliasName: fn.aliasName,
      previousVersion: own?.previousVersion ?? aliases[i].version,
      targetVersion: targets[i],
    };
  });

  // 5. What changed.
  const changedIndexes = releases.flatMap((release, i) =>
    (release.targetVersion !== release.previousVersion || adopted.has(config.functions[i].deploymentGroupName) ? [i] : []));
  const unchanged = releases.filter((_, i) => !changedIndexes.includes(i)).map((release) => release.id);
  if (changedIndexes.length === 0) {
    log('INFO', 'nothing to shift: every alias already serves the published code', { ...job.fields, unchanged });
    // Production already runs this revision's code: all of its traffic, at once (ends the revision's lead time).
    await reportAllAtOnce(job);
    await report(job.jobId, new PutJobSuccessResultCommand({ jobId: job.jobId, outputVariables: { versions: 'none' } }), { ...job.fields, decision: 'unchanged' });
    return { result: 'unchanged' };
  }
  const changed = changedIndexes.map((i) => ({ fn: config.functions[i], release: releases[i] }));

  // 6. Enough time left to create the alarms and deployments, and to report?
  const left = timeLeft(job);
  if (left < RELEASE_MARGIN_MS && adopted.size === 0) {
    return failBeforeDeployments(job, new JobError(`only ${Math.max(0, Math.floor(left / 1000))} s were left to this invocation after the code updates, `
      + `less than the ${RELEASE_MARGIN_MS / 1000} s needed to create the alarms and deployments and report: retry the stage`));
  }

  // 7. The release alarms (the same names and contents in a duplicate invocation: PutMetricAlarm overwrites).
  const groups = chunk(changed.map((c) => c.release), FUNCTIONS_PER_ALARM);
  const alarmNames = groups.map((_, i) => alarmNameFor(config.alarmPrefix, job.releaseId, i + 1));
  const created: string[] = [];
  try {
    for (const [i, group] of groups.entries()) {
      const input = buildAlarm(alarmNames[i], group, { releaseId: job.releaseId, prefix: job.prefix, alarmTopicArn: config.alarmTopicArn });
      await call('cloudwatch:PutMetricAlarm', `alarm ${alarmNames[i]}`, () => cloudWatch.send(new PutMetricAlarmCommand(input)));
      created.push(alarmNames[i]);
    }
  } catch (err) {
    if (adopted.size > 0) {
      // The adopted deployments are watched by these alarms: keep them, roll the release back.
      return startRollback(job, { startedAt, alarms: alarmNames.length, deployments: [...adopted.values()].map((a) => a.deploymentId) }, err);
    }
    const problems = await deleteAlarms(job, created);
    const done = created.length > 0 && problems.length === 0 ? ['deleted the alarms already created'] : [];
    return failBeforeDeployments(job, err, done, problems);
  }

  // 8. One deployment per changed function, each watched by every alarm.
  const deployments: Array<{ fn: ReleasedFunction; release: FunctionRelease; deploymentId: string; adopted: boolean }> = [];
  try {
    for (const { fn, release } of changed) {
      const own = adopted.get(fn.deploymentGroupName);
      if (own) {
        deployments.push({ fn, release, deploymentId: own.deploymentId, adopted: true });
        continue;
      }
      const remaining = timeLeft(job);
      if (remaining < CREATE_MARGIN_MS) {
        throw new JobError(`the time left to this invocation ran short (${Math.max(0, Math.floor(remaining / 1000))} s) before the deployment of function `
          + `${label(fn)} could be created`);
      }
      const deploymentId = await createDeployment(job, fn, release, alarmNames);
      deployments.push({ fn, release, deploymentId, adopted: false });
    }
  } catch (err) {
    if (deployments.length > 0) {
      return startRollback(job, { startedAt, alarms: alarmNames.length, deployments: deployments.map((d) => d.deploymentId) }, err);
    }
    const { message, type, transient } = explain(err);
    const alarmProblems = await deleteAlarms(job, alarmNames);
    const parts = [
      `${message}${transient ? ' (a transient error: retry the stage)' : ''}`,
      ...(alarmProblems.length === 0 ? ['deleted the release alarms'] : []),
      NOTHING_RELEASED,
      ...problemText(alarmProblems),
    ];
    return fail(job.jobId, type, parts.join('; '), { ...job.fields, decision: 'failed before any deployment' });
  }

  // 9. Follow the deployments in later invocations.
  const token = encodeState({
    phase: 'wait',
    startedAt: earliestStart(startedAt, adopted),
    polls: 0,
    releaseId: job.releaseId,
    alarms: alarmNames.length,
    deployments: deployments.map((d) => d.deploymentId),
  });
  log('INFO', 'deployments created: following them', {
    ...job.fields,
    alarms: alarmNames,
    unchanged,
    deployments: deployments.map((d) => ({
      id: d.release.id,
      deploymentId: d.deploymentId,
      from: d.release.previousVersion,
      to: d.release.targetVersion,
      ...(d.adopted ? { adopted: true } : {}),
    })),
  });
  await report(job.jobId, new PutJobSuccessResultCommand({ jobId: job.jobId, continuationToken: token }), { ...job.fields, decision: 'continue' });
  return { result: 'continue', phase: 'wait', polls: 0 };
}

/** An adopted release started when its first deployment was created (or now). */
export function earliestStart(now: number, adopted: ReadonlyMap<string, ActiveDeployment>): number {
  const times = [...adopted.values()].map((a) => a.info.createTime?.getTime()).filter((t): t is number => t !== undefined && Number.isFinite(t));
  return Math.min(now, ...times);
}

/**
 * `CreateDeployment`; the new deployment's id. `DeploymentLimitExceededException` (the group already has a running
 * deployment): if that deployment is this release's (a duplicate invocation created it meanwhile), its id is
 * returned instead; otherwise the error is thrown.
 */
export async function createDeployment(job: Job, fn: ReleasedFunction, release: FunctionRelease, alarmNames: readonly string[]): Promise<string> {
  const input = buildDeployment(fn, release, alarmNames, job.config, job.releaseId);
  try {
    const output = await call('codedeploy:CreateDeployment', `function ${label(fn)}`, () => codeDeploy.send(new CreateDeploymentCommand(input)));
    if (!output.deploymentId) throw new JobError(`codedeploy:CreateDeployment returned no deployment id for function ${label(fn)}`);
    return output.deploymentId;
  } catch (err) {
    if (errorName(awsError(err)) !== 'DeploymentLimitExceededException') throw err;
    let running: ActiveDeployment[];
    try {
      running = await listActiveDeployments(job, fn);
    } catch {
      throw err;
    }
    const own = running.find((a) => a.release?.releaseId === job.releaseId && a.release.targetVersion === release.targetVersion);
    if (own === undefined) throw err;
    log('INFO', 'a duplicate invocation created this deployment meanwhile: adopting it', { ...job.fields, function: fn.id, deploymentId: own.deploymentId });
    return own.deploymentId;
  }
}

/** The running deployments of `fn`'s deployment group, each with its description read. Throws `AwsCallError`. */
export async function listActiveDeployments(job: Job, fn: ReleasedFunction): Promise<ActiveDeployment[]> {
  const ids: string[] = [];
  let nextToken: string | undefined;
  for (let page = 0; page < LIST_PAGE_LIMIT; page++) {
    const output = await call('codedeploy:ListDeployments', `deployment group ${fn.deploymentGroupName}`, () => codeDeploy.send(new ListDeploymentsCommand({
      applicationName: job.config.applicationName,
      deploymentGroupName: fn.deploymentGroupName,
      includeOnlyStatuses: [...RUNNING_STATUSES],
      ...(nextToken === undefined ? {} : { nextToken }),
    })));
    ids.push(...(output.deployments ?? []));
    nextToken = output.nextToken || undefined;
    if (nextToken === undefined) break;
  }
  const found: ActiveDeployment[] = [];
  for (const deploymentId of ids) {
    const output = await call('codedeploy:GetDeployment', `deployment ${deploymentId}`, () => codeDeploy.send(new GetDeploymentCommand({ deploymentId })));
    const info = output.deploymentInfo ?? {};
    // Listed as running, but it may have ended since: only what is still running counts.
    if (info.status !== undefined && !RUNNING.has(info.status)) continue;
    found.push({ deploymentId, groupName: fn.deploymentGroupName, info, release: parseDeploymentDescription(info.description) });
  }
  return found;
}

export function activeLabel(a: ActiveDeployment): string {
  return a.release ? `deployment ${a.deploymentId} of function ${a.release.id} (${a.release.functionName})` : `deployment ${a.deploymentId} in group ${a.groupName}`;
}

/** The release id in an alarm name `<prefix>-<release id>-<n>`, or `undefined` for another shape. */
export function releaseOfAlarm(alarmPrefix: string, alarmName: string): string | undefined {
  if (!alarmName.startsWith(`${alarmPrefix}-`)) return undefined;
  const match = /^(.+)-[1-9]\d*$/.exec(alarmName.slice(alarmPrefix.length + 1));
  return match?.[1];
}

/**
 * Deletes the metric alarms named `<ALARM_PREFIX>-<release id>-<n>` whose release has no running deployment in
 * `active`: alarms of releases whose controller ended before it could delete them (see step 3 of the file comment).
 * Best effort: an error is logged as WARN, never thrown, and the release goes on.
 */
export async function sweepStaleAlarms(job: Job, active: readonly ActiveDeployment[]): Promise<void> {
  const alarmNamePrefix = `${job.config.alarmPrefix}-`;
  const fields = { ...job.fields, alarmNamePrefix };
  // Here every running deployment is this release's: one of another or unknown release refused the release (step 1).
  const running = new Set<string>([job.releaseId, ...active.flatMap((a) => (a.release?.releaseId === undefined ? [] : [a.release.releaseId]))]);
  const found = new Set<string>();
  const kept = new Set<string>();
  let nextToken: string | undefined;
  try {
    for (let page = 0; page < SWEEP_PAGE_LIMIT; page++) {
      const output = await cloudWatch.send(new DescribeAlarmsCommand({
        AlarmNamePrefix: alarmNamePrefix,
        AlarmTypes: ['MetricAlarm'],
        MaxRecords: ALARMS_PER_CALL,
        ...(nextToken === undefined ? {} : { NextToken: nextToken }),
      }));
      for (const alarm of output.MetricAlarms ?? []) {
        const name = alarm.AlarmName ?? '';
        const owner = releaseOfAlarm(job.config.alarmPrefix, name);
        if (owner === undefined) continue;
        if (running.has(owner)) kept.add(name);
        else found.add(name);
      }
      nextToken = output.NextToken || undefined;
      if (nextToken === undefined) break;
    }
  } catch (err) {
    log('WARN', 'could not look for stale release alarms: releasing without the sweep', { ...fields, error: describeError(err) });
    return;
  }
  if (kept.size > 0) log('INFO', 'kept the alarms of releases with running deployments', { ...fields, alarms: [...kept] });
  if (nextToken !== undefined) {
    log('WARN', `more stale release alarms than ${SWEEP_PAGE_LIMIT} pages: deleting those found`, { ...fields, found: found.size });
  }
  const deleted: string[] = [];
  const batches = chunk([...found], ALARMS_PER_CALL);
  for (const [i, names] of batches.entries()) {
    try {
      await cloudWatch.send(new DeleteAlarmsCommand({ AlarmNames: names }));
      deleted.push(...names);
    } catch (err) {
      const notDeleted = batches.slice(i).flat();
      log('WARN', 'could not delete stale release alarms: releasing without deleting them', { ...fields, error: describeError(err), notDeleted });
      break;
    }
  }
  if (deleted.length > 0) log('INFO', 'deleted stale release alarms left by an earlier release', { ...fields, alarms: deleted });
}

/**
 * Updates `$LATEST` from the zip, waits for the update, publishes a version: the target version. An update in
 * progress (`ResourceConflictException`: a `cdk deploy` changing the configuration, or a duplicate invocation) is
 * awaited, then the update is tried once more.
 */
export async function shipCode(job: Job, fn: ReleasedFunction): Promise<string> {
  const subject = `function ${label(fn)}`;
  const key = artifactKey(job.prefix, fn.id);
  const update = () => call('lambda:UpdateFunctionCode', subject, () => lambda.send(new UpdateFunctionCodeCommand({
    FunctionName: fn.functionName,
    S3Bucket: job.config.artifactBucket,
    S3Key: key,
    Publish: false,
  })));
  let updated;
  try {
    updated = await update();
  } catch (err) {
    if (errorName(awsError(err)) !== 'ResourceConflictException') throw err;
    log('INFO', 'another update of the function is in progress: waiting for it, then updating the code', { ...job.fields, function: fn.id });
    await waitForUpdate(job, fn);
    updated = await update();
  }
  const codeSha256 = updated.CodeSha256;
  if (!codeSha256) throw new JobError(`lambda:UpdateFunctionCode returned no CodeSha256 for ${subject}`);
  await waitForUpdate(job, fn);
  const published = await call('lambda:PublishVersion', subject, () => lambda.send(new PublishVersionCommand({ FunctionName: fn.functionName, CodeSha256: codeSha256 })));
  if (!published.Version) throw new JobError(`lambda:PublishVersion returned no version for ${subject}`);
  return published.Version;
}

export async function waitForUpdate(job: Job, fn: ReleasedFunction): Promise<void> {
  const start = job.now();
  const byDeadline = job.deadline !== undefined && job.deadline - RELEASE_MARGIN_MS < start + UPDATE_TIMEOUT_MS;
  const giveUpAt = byDeadline ? job.deadline! - RELEASE_MARGIN_MS : start + UPDATE_TIMEOUT_MS;
  for (;;) {
    const configuration = await call('lambda:GetFunctionConfiguration', `function ${label(fn)}`,
      () => lambda.send(new GetFunctionConfigurationCommand({ FunctionName: fn.functionName })));
    const status = configuration.LastUpdateStatus;
    if (status === 'Successful') return;
    if (status === 'Failed') {
      const reason = [configuration.LastUpdateStatusReasonCode, configuration.LastUpdateStatusReason].filter(Boolean).join(': ');
      throw new JobError(`the code update of function ${label(fn)} failed: ${reason || 'Lambda gave no reason'}`);
    }
    if (job.now() + UPDATE_POLL_MS > giveUpAt) {
      const limit = byDeadline ? 'before the time left to this function ran short' : `within ${UPDATE_TIMEOUT_MS / 1000} s`;
      throw new JobError(`the code update of function ${label(fn)} did not finish ${limit} (LastUpdateStatus ${status ?? 'not reported'}): retry the stage`);
    }
    await job.sleep(UPDATE_POLL_MS);
  }
}

/** Fails the job for an error that struck before any deployment existed. */
export async function failBeforeDeployments(
  job: Job, err: unknown, done: readonly string[] = [], problems: readonly string[] = [], context?: string,
): Promise<JobOutcome> {
  const { message, type, transient } = explain(err);
  const parts = [`${context ? `${context}: ` : ''}${message}${transient ? ' (a transient error: retry the stage)' : ''}`, ...done, NOTHING_RELEASED, ...problemText(problems)];
  return fail(job.jobId, type, parts.join('; '), { ...job.fields, decision: 'failed before any deployment' });
}
