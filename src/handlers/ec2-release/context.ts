/**
 * What every step works with: the AWS clients, the two errors the state machine tells apart (`RetryableError`: the
 * same step again; `ReleaseStepError`: a real failure, the Catch rolls back), and the AWS reads and writes the steps
 * share (groups, parameters, listener, alarms, approval runs, notifications).
 */
import { AutoScalingClient, DescribeAutoScalingGroupsCommand, UpdateAutoScalingGroupCommand } from '@aws-sdk/client-auto-scaling';
import type { AutoScalingGroup } from '@aws-sdk/client-auto-scaling';
import { CloudFormationClient } from '@aws-sdk/client-cloudformation';
import { CloudWatchClient, DescribeAlarmsCommand } from '@aws-sdk/client-cloudwatch';
import { CodePipelineClient, ListActionExecutionsCommand } from '@aws-sdk/client-codepipeline';
import type { ActionExecutionDetail } from '@aws-sdk/client-codepipeline';
import { DescribeListenersCommand, ElasticLoadBalancingV2Client, ModifyListenerCommand } from '@aws-sdk/client-elastic-load-balancing-v2';
import type { Action as ListenerAction } from '@aws-sdk/client-elastic-load-balancing-v2';
import { EventBridgeClient } from '@aws-sdk/client-eventbridge';
import { ListExecutionsCommand, SFNClient } from '@aws-sdk/client-sfn';
import { PublishCommand, SNSClient } from '@aws-sdk/client-sns';
import { GetParametersCommand, SSMClient } from '@aws-sdk/client-ssm';
import { ALARM_BATCH_SIZE, ApprovalConfig, Color, Ec2ReleaseConfig, LiveColor, MAX_PAGES, SNS_SUBJECT_LIMIT } from './configuration';
import { clip, describeError } from '../shared/common';
import type { Parsed } from '../shared/common';
import { progressEvents } from '../shared/release-progress';
import { isRetryable } from '../shared/retryable';

export const CLIENT_CONFIG = { maxAttempts: 2, requestHandler: { connectionTimeout: 3_000, requestTimeout: 10_000 } };

/** The AWS clients and the clock a step uses; each defaults to the real thing. */
export interface Ec2ReleaseDeps {
  readonly ssm?: SSMClient;
  readonly autoScaling?: AutoScalingClient;
  readonly elb?: ElasticLoadBalancingV2Client;
  readonly cloudWatch?: CloudWatchClient;
  readonly codePipeline?: CodePipelineClient;
  readonly sns?: SNSClient;
  readonly sfn?: SFNClient;
  readonly cloudFormation?: CloudFormationClient;
  /** The traffic step events' client (one short attempt, src/handlers/shared/release-progress.ts). */
  readonly events?: EventBridgeClient;
  /** @default `Date.now` */
  readonly now?: () => number;
  /** @default `process.env` */
  readonly env?: Record<string, string | undefined>;
}

let defaultClients: Required<Omit<Ec2ReleaseDeps, 'now' | 'env'>> | undefined;

/** The module's clients, created on first use. */
export function clients(): Required<Omit<Ec2ReleaseDeps, 'now' | 'env'>> {
  defaultClients ??= {
    ssm: new SSMClient(CLIENT_CONFIG),
    autoScaling: new AutoScalingClient(CLIENT_CONFIG),
    elb: new ElasticLoadBalancingV2Client(CLIENT_CONFIG),
    cloudWatch: new CloudWatchClient(CLIENT_CONFIG),
    codePipeline: new CodePipelineClient(CLIENT_CONFIG),
    sns: new SNSClient(CLIENT_CONFIG),
    sfn: new SFNClient(CLIENT_CONFIG),
    cloudFormation: new CloudFormationClient(CLIENT_CONFIG),
    events: progressEvents,
  };
  return defaultClients;
}

/** A transient failure: the state machine retries errors with this name. */
export class RetryableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RetryableError';
  }
}

/** A real failure of one AWS call, naming the call: the state machine's Catch turns it into a rollback. */
export class ReleaseStepError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ReleaseStepError';
  }
}

/** An error for a message: ours already name the call, others get their name in front. */
export function errorText(err: unknown): string {
  return err instanceof RetryableError || err instanceof ReleaseStepError ? err.message : describeError(err);
}

/** Runs one AWS call; its error becomes a `RetryableError` (transient) or a `ReleaseStepError`, naming `what`. */
export async function aws<T>(what: string, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (err) {
    const message = `${what} failed: ${describeError(err)}`;
    if (isRetryable(err)) throw new RetryableError(message);
    throw new ReleaseStepError(message);
  }
}

export interface Context {
  readonly cfg: Ec2ReleaseConfig;
  readonly c: Required<Omit<Ec2ReleaseDeps, 'now' | 'env'>>;
  readonly now: () => number;
}

export function definedClients(deps: Ec2ReleaseDeps): Partial<Context['c']> {
  const { now: _now, env: _env, ...given } = deps;
  return Object.fromEntries(Object.entries(given).filter(([, value]) => value !== undefined));
}

export async function scaleToZero(ctx: Context, color: Color): Promise<void> {
  const groupName = ctx.cfg.colors[color].groupName;
  await aws(`autoscaling:UpdateAutoScalingGroup (${groupName})`, () =>
    ctx.c.autoScaling.send(new UpdateAutoScalingGroupCommand({ AutoScalingGroupName: groupName, MinSize: 0, DesiredCapacity: 0 })));
}

/** Other RUNNING executions of the state machine (their names), following `nextToken`. */
export async function runningExecutions(ctx: Context, executionArn: string): Promise<string[]> {
  const found: string[] = [];
  let nextToken: string | undefined;
  for (let page = 0; page < MAX_PAGES; page++) {
    const response = await aws('states:ListExecutions', () => ctx.c.sfn.send(new ListExecutionsCommand({
      stateMachineArn: ctx.cfg.stateMachineArn, statusFilter: 'RUNNING', maxResults: 100, nextToken,
    })));
    for (const execution of response.executions ?? []) {
      if (execution.executionArn !== executionArn) found.push(`${execution.name ?? '?'} (execution ${execution.executionArn ?? '?'})`);
    }
    nextToken = response.nextToken;
    if (!nextToken) break;
  }
  return found;
}

export interface Parameters {
  readonly live: LiveColor;
  readonly lock: string;
  readonly releases: Readonly<Record<Color, string>>;
}

/** The live color, the lock and both release parameters, checked. */
export async function readParameters(ctx: Context): Promise<Parsed<Parameters>> {
  const { cfg } = ctx;
  const wanted = [cfg.liveColorParameter, cfg.lockParameter, cfg.colors.blue.releaseParameter, cfg.colors.green.releaseParameter];
  const response = await aws('ssm:GetParameters', () => ctx.c.ssm.send(new GetParametersCommand({ Names: wanted })));
  const values = new Map((response.Parameters ?? []).map((p) => [p.Name, p.Value]));
  const absent = wanted.filter((name) => values.get(name) === undefined);
  if (absent.length > 0) return { ok: false, error: `SSM parameter(s) not found: ${absent.join(', ')}` };
  const live = values.get(cfg.liveColorParameter)!;
  if (live !== 'none' && live !== 'blue' && live !== 'green') {
    return { ok: false, error: `SSM parameter ${cfg.liveColorParameter} must be none, blue or green, got ${clip(JSON.stringify(live), 60)}` };
  }
  return {
    ok: true,
    value: {
      live,
      lock: values.get(cfg.lockParameter)!,
      releases: { blue: values.get(cfg.colors.blue.releaseParameter)!, green: values.get(cfg.colors.green.releaseParameter)! },
    },
  };
}

/** The named groups (blue/green), each of which must exist. */
export async function describeGroups(ctx: Context, colors: Color[]): Promise<Partial<Record<Color, AutoScalingGroup>>> {
  const byName = colors.map((color) => ctx.cfg.colors[color].groupName);
  const response = await aws(`autoscaling:DescribeAutoScalingGroups (${byName.join(', ')})`, () =>
    ctx.c.autoScaling.send(new DescribeAutoScalingGroupsCommand({ AutoScalingGroupNames: byName })));
  const result: Partial<Record<Color, AutoScalingGroup>> = {};
  for (const color of colors) {
    const group = response.AutoScalingGroups?.find((g) => g.AutoScalingGroupName === ctx.cfg.colors[color].groupName);
    if (group === undefined) throw new ReleaseStepError(`Auto Scaling group ${ctx.cfg.colors[color].groupName} (${color}) not found`);
    result[color] = group;
  }
  return result;
}

/** The latest run of the approval action in the pipeline execution (a retried stage runs it again), or undefined. */
export async function latestApprovalRun(ctx: Context, gate: ApprovalConfig, pipelineExecutionId: string): Promise<ActionExecutionDetail | undefined> {
  let latest: ActionExecutionDetail | undefined;
  let nextToken: string | undefined;
  for (let page = 0; page < MAX_PAGES; page++) {
    const response = await aws(`codepipeline:ListActionExecutions (${gate.pipelineName})`, () => ctx.c.codePipeline.send(new ListActionExecutionsCommand({
      pipelineName: gate.pipelineName, filter: { pipelineExecutionId }, maxResults: 100, nextToken,
    })));
    for (const detail of response.actionExecutionDetails ?? []) {
      if (detail.actionName !== gate.actionName || (gate.stageName !== undefined && detail.stageName !== gate.stageName)) continue;
      if (latest === undefined || time(detail.startTime) > time(latest.startTime)) latest = detail;
    }
    nextToken = response.nextToken;
    if (!nextToken) break;
  }
  return latest;
}

export function time(value: Date | undefined): number {
  return value instanceof Date ? value.getTime() : Number.NEGATIVE_INFINITY;
}

export async function modifyListener(ctx: Context, actions: ListenerAction[]): Promise<void> {
  await aws(`elasticloadbalancing:ModifyListener (${ctx.cfg.productionListenerArn})`, () =>
    ctx.c.elb.send(new ModifyListenerCommand({ ListenerArn: ctx.cfg.productionListenerArn, DefaultActions: actions })));
}

/** Names of the alarms in ALARM (metric and composite), asked in batches of 100. */
export async function alarmsInAlarm(ctx: Context, alarmNames: readonly string[]): Promise<string[]> {
  const unique = [...new Set(alarmNames)];
  const alarming: string[] = [];
  for (let i = 0; i < unique.length; i += ALARM_BATCH_SIZE) {
    const batch = unique.slice(i, i + ALARM_BATCH_SIZE);
    let nextToken: string | undefined;
    for (let page = 0; page < MAX_PAGES; page++) {
      const response = await aws('cloudwatch:DescribeAlarms', () => ctx.c.cloudWatch.send(new DescribeAlarmsCommand({
        AlarmNames: batch, AlarmTypes: ['MetricAlarm', 'CompositeAlarm'], MaxRecords: 100, NextToken: nextToken,
      })));
      for (const alarm of [...(response.MetricAlarms ?? []), ...(response.CompositeAlarms ?? [])]) {
        if (alarm.StateValue === 'ALARM' && alarm.AlarmName !== undefined) alarming.push(alarm.AlarmName);
      }
      nextToken = response.NextToken;
      if (!nextToken) break;
    }
  }
  return alarming;
}

export async function notify(ctx: Context, subject: string, lines: string[]): Promise<void> {
  const topicArn = ctx.cfg.notifyTopicArn;
  if (topicArn === undefined) return;
  await ctx.c.sns.send(new PublishCommand({ TopicArn: topicArn, Subject: clip(subject, SNS_SUBJECT_LIMIT), Message: lines.join('\n') }));
}

export function describeLive(state: { readonly live: LiveColor; readonly previousRelease: string }): string {
  return state.live === 'none' ? 'the 503 of an unreleased service' : `${state.previousRelease} on ${state.live}`;
}

/** Target groups a listener's default actions forward to with a weight above 0. */
export function forwardedTargetGroups(actions: readonly ListenerAction[] | undefined): string[] {
  const arns = new Set<string>();
  for (const action of actions ?? []) {
    if (action.Type !== 'forward') continue;
    const weighted = action.ForwardConfig?.TargetGroups;
    if (weighted !== undefined && weighted.length > 0) {
      for (const tg of weighted) if (tg.TargetGroupArn !== undefined && (tg.Weight === undefined || tg.Weight > 0)) arns.add(tg.TargetGroupArn);
    } else if (action.TargetGroupArn !== undefined) {
      arns.add(action.TargetGroupArn);
    }
  }
  return [...arns];
}

/** True when the default actions are exactly what production serves outside a release. */
export function servesOnly(actions: readonly ListenerAction[] | undefined, live: LiveColor, cfg: Ec2ReleaseConfig): boolean {
  const list = actions ?? [];
  if (live === 'none') {
    return list.length === 1 && list[0].Type === 'fixed-response' && list[0].FixedResponseConfig?.StatusCode === '503';
  }
  const forwarded = forwardedTargetGroups(list);
  return list.every((a) => a.Type === 'forward') && forwarded.length === 1 && forwarded[0] === cfg.colors[live].targetGroupArn;
}

export function describeListener(actions: readonly ListenerAction[] | undefined, cfg: Ec2ReleaseConfig): string {
  const list = actions ?? [];
  const parts = list.map((a) => {
    if (a.Type === 'fixed-response') return `a fixed ${a.FixedResponseConfig?.StatusCode ?? '?'} response`;
    if (a.Type !== 'forward') return `a ${a.Type ?? '?'} action`;
    const tgs = forwardedTargetGroups([a]).map((arn) => (arn === cfg.colors.blue.targetGroupArn ? 'blue' : arn === cfg.colors.green.targetGroupArn ? 'green' : arn));
    return `forward to ${tgs.join(' and ') || 'nothing'}`;
  });
  return parts.join(', ') || 'no default action';
}

export async function listenerActions(ctx: Context): Promise<ListenerAction[]> {
  const response = await aws(`elasticloadbalancing:DescribeListeners (${ctx.cfg.productionListenerArn})`, () =>
    ctx.c.elb.send(new DescribeListenersCommand({ ListenerArns: [ctx.cfg.productionListenerArn] })));
  const listener = response.Listeners?.find((l) => l.ListenerArn === ctx.cfg.productionListenerArn) ?? response.Listeners?.[0];
  if (listener === undefined) throw new ReleaseStepError(`listener ${ctx.cfg.productionListenerArn} not found`);
  return listener.DefaultActions ?? [];
}
