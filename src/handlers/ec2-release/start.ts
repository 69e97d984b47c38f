/**
 * `start` (validate, refuse while another execution or a stack update runs, take the lock, pick the target color and
 * capacity), `drain` (instances left by an aborted release go first), the scale-up, and `health` (enough healthy
 * targets of the group's own instances before the smoke test, or `rollback`). ADR 0008.
 */
import { UpdateAutoScalingGroupCommand } from '@aws-sdk/client-auto-scaling';
import { DescribeStacksCommand } from '@aws-sdk/client-cloudformation';
import { DescribeTargetHealthCommand, ModifyListenerCommand } from '@aws-sdk/client-elastic-load-balancing-v2';
import { DRAIN_WAIT_SECONDS, HEALTH_WAIT_SECONDS, REASON_LIMIT, STACK_WAIT_SECONDS } from './configuration';
import { aws, Context, describeGroups, describeListener, describeLive, listenerActions, modifyListener, readParameters, RetryableError, runningExecutions, scaleToZero, servesOnly } from './context';
import { iso, LOCK_FREE, lockValue, minutes, other, RELEASE_ID_PATTERN, ReleaseState, Running, toRollback, waitOrRollback } from './state';
import { clip, isObject } from '../shared/common';
import { overwriteStateParameter } from '../shared/state-parameter';

export async function start(ctx: Context, event: Record<string, unknown>, state: Record<string, unknown>): Promise<ReleaseState> {
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
      overwriteStateParameter(c.ssm, cfg.lockParameter, lockValue(executionArn)));
  }
  const stack = await aws(`cloudformation:DescribeStacks (${cfg.stackName})`, () =>
    c.cloudFormation.send(new DescribeStacksCommand({ StackName: cfg.stackName })));
  const stackStatus = stack.Stacks?.[0]?.StackStatus ?? 'unknown';
  if (stackStatus.endsWith('_IN_PROGRESS')) {
    const deadline = Date.parse(startedAt) + cfg.releaseDeadlineSeconds * 1000;
    if (ctx.now() + STACK_WAIT_SECONDS * 1000 > deadline) {
      await aws(`ssm:PutParameter (${cfg.lockParameter})`, () =>
        overwriteStateParameter(c.ssm, cfg.lockParameter, LOCK_FREE));
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

export async function drain(ctx: Context, state: Running): Promise<ReleaseState> {
  const group = (await describeGroups(ctx, [state.target]))[state.target]!;
  const instances = group.Instances?.length ?? 0;
  if (instances === 0) return scaleUp(ctx, state);
  const groupName = ctx.cfg.colors[state.target].groupName;
  return waitOrRollback(ctx, state, 'drain', DRAIN_WAIT_SECONDS,
    `release ${state.release}: ${state.target} group ${groupName} still has ${instances} instance(s); waiting for them to go`,
    `${state.target} group ${groupName} still had ${instances} instance(s) from an earlier release`);
}

/** The target's release parameter, then its group to `capacity` instances. */
export async function scaleUp(ctx: Context, state: Running): Promise<ReleaseState> {
  const color = ctx.cfg.colors[state.target];
  // The test listener serves the target. CloudFormation declares it on the idle color too, but moves it only on the
  // next stack update, which may not have run since the last release recorded its color.
  await aws(`elasticloadbalancing:ModifyListener (${ctx.cfg.testListenerArn})`, () =>
    ctx.c.elb.send(new ModifyListenerCommand({
      ListenerArn: ctx.cfg.testListenerArn,
      DefaultActions: [{ Type: 'forward', TargetGroupArn: color.targetGroupArn }],
    })));
  await aws(`ssm:PutParameter (${color.releaseParameter})`, () =>
    overwriteStateParameter(ctx.c.ssm, color.releaseParameter, state.release));
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

export async function health(ctx: Context, state: Running): Promise<ReleaseState> {
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
