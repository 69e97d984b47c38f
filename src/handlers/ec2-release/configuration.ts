/**
 * The EC2 release's configuration: its limits and the environment the state machine's function reads (the groups,
 * target groups, listeners and parameters of both colors, the alarms, the optional approval gate and canary). Pure
 * functions. ADR 0008.
 */
import type { Parsed } from '../shared/common';

/** Wait while the fleet's stack is being updated. */
export const STACK_WAIT_SECONDS = 30;
/** Wait while the target group drains, and between health checks. */
export const DRAIN_WAIT_SECONDS = 15;
export const HEALTH_WAIT_SECONDS = 15;
/** Wait between approval checks. */
export const APPROVAL_WAIT_SECONDS = 30;
/** Longest wait between alarm checks during the canary and the bake. */
export const BAKE_WAIT_SECONDS = 30;
/** `DescribeAlarms` takes at most 100 names per call. */
export const ALARM_BATCH_SIZE = 100;
/** Pages read at most from a paginated list (executions, action executions, alarms of one batch). */
export const MAX_PAGES = 20;
/** SNS subject limit. */
export const SNS_SUBJECT_LIMIT = 100;
/** Longest reason quoted in a message. */
export const REASON_LIMIT = 600;

export type Color = 'blue' | 'green';
export type LiveColor = Color | 'none';

export interface ColorConfig {
  readonly releaseParameter: string;
  readonly groupName: string;
  readonly targetGroupArn: string;
  readonly alarms: readonly string[];
}

export interface ApprovalConfig {
  readonly pipelineName: string;
  readonly actionName: string;
  /** Only the action in this stage counts, when set. */
  readonly stageName?: string;
  readonly timeoutSeconds: number;
}

export interface Ec2ReleaseConfig {
  readonly liveColorParameter: string;
  readonly lockParameter: string;
  readonly colors: Readonly<Record<Color, ColorConfig>>;
  readonly productionListenerArn: string;
  readonly testListenerArn: string;
  readonly notReleasedBody: string;
  readonly defaultCapacity: number;
  readonly releaseDeadlineSeconds: number;
  readonly healthTimeoutSeconds: number;
  readonly bakeSeconds: number;
  readonly canaryPercent: number;
  readonly canarySeconds: number;
  readonly deploymentAlarms: readonly string[];
  readonly stackName: string;
  readonly stateMachineArn: string;
  readonly testUrl?: string;
  readonly productionUrl?: string;
  readonly notifyTopicArn?: string;
  readonly approval?: ApprovalConfig;
  /** The pipeline whose releases this is (`PIPELINE_NAME`): names the traffic step events; none without it. */
  readonly pipelineName?: string;
}

export type { Parsed } from '../shared/common';

export const REQUIRED = [
  'LIVE_COLOR_PARAMETER', 'LOCK_PARAMETER', 'RELEASE_PARAMETER_BLUE', 'RELEASE_PARAMETER_GREEN', 'BLUE_GROUP_NAME',
  'GREEN_GROUP_NAME', 'BLUE_TARGET_GROUP_ARN', 'GREEN_TARGET_GROUP_ARN', 'PRODUCTION_LISTENER_ARN', 'TEST_LISTENER_ARN', 'DEFAULT_CAPACITY',
  'RELEASE_DEADLINE_SECONDS', 'HEALTH_TIMEOUT_SECONDS', 'BAKE_SECONDS', 'CANARY_PERCENT', 'STACK_NAME', 'STATE_MACHINE_ARN',
] as const;

/** The approval gate's variables: all three or none (`APPROVAL_STAGE_NAME` optionally narrows the action). */
export const APPROVAL_VARIABLES = ['APPROVAL_PIPELINE_NAME', 'APPROVAL_ACTION_NAME', 'APPROVAL_TIMEOUT_SECONDS'] as const;

/** ELB's limit for a fixed response's body. */
export const FIXED_RESPONSE_BODY_LIMIT = 1024;

/** The configuration from the environment, every problem named at once. */
export function readConfig(env: Record<string, string | undefined>): Parsed<Ec2ReleaseConfig> {
  const errors: string[] = [];
  const text = (name: string) => nonEmpty(env[name]);
  const missing = REQUIRED.filter((name) => text(name) === undefined);
  if (missing.length > 0) errors.push(`environment variable(s) not set: ${missing.join(', ')}`);
  if (env.NOT_RELEASED_BODY === undefined) {errors.push('environment variable NOT_RELEASED_BODY is not set');} else if (env.NOT_RELEASED_BODY.length > FIXED_RESPONSE_BODY_LIMIT) {
    errors.push(`NOT_RELEASED_BODY must be at most ${FIXED_RESPONSE_BODY_LIMIT} characters, got ${env.NOT_RELEASED_BODY.length}`);
  }
  const int = (name: string, min: number, max: number, fallback?: number): number => {
    const raw = text(name);
    if (raw === undefined) return fallback ?? NaN; // reported as missing above, or optional
    const value = /^\d+$/.test(raw) ? Number(raw) : NaN;
    if (!Number.isSafeInteger(value) || value < min || value > max) {
      errors.push(`${name} must be an integer from ${min} to ${max}, got ${JSON.stringify(raw)}`);
    }
    return value;
  };
  const defaultCapacity = int('DEFAULT_CAPACITY', 1, 20);
  const releaseDeadlineSeconds = int('RELEASE_DEADLINE_SECONDS', 60, 3600);
  const healthTimeoutSeconds = int('HEALTH_TIMEOUT_SECONDS', 1, 3600);
  const bakeSeconds = int('BAKE_SECONDS', 0, 3600);
  const canaryPercent = int('CANARY_PERCENT', 0, 99);
  const canarySeconds = int('CANARY_SECONDS', canaryPercent > 0 ? 1 : 0, 3600, canaryPercent > 0 ? undefined : 0);
  if (canaryPercent > 0 && text('CANARY_SECONDS') === undefined) errors.push('CANARY_SECONDS must be set when CANARY_PERCENT is not 0');

  const setApproval = APPROVAL_VARIABLES.filter((name) => text(name) !== undefined);
  let gate: ApprovalConfig | undefined;
  if (setApproval.length > 0 && setApproval.length < APPROVAL_VARIABLES.length) {
    const unset = APPROVAL_VARIABLES.filter((name) => text(name) === undefined);
    errors.push(`the approval gate needs ${APPROVAL_VARIABLES.join(', ')} together; not set: ${unset.join(', ')}`);
  } else if (setApproval.length === APPROVAL_VARIABLES.length) {
    gate = {
      pipelineName: text('APPROVAL_PIPELINE_NAME')!,
      actionName: text('APPROVAL_ACTION_NAME')!,
      stageName: text('APPROVAL_STAGE_NAME'),
      timeoutSeconds: int('APPROVAL_TIMEOUT_SECONDS', 1, 86_400),
    };
  } else if (text('APPROVAL_STAGE_NAME') !== undefined) {
    errors.push(`APPROVAL_STAGE_NAME is set without the approval gate (${APPROVAL_VARIABLES.join(', ')})`);
  }
  if (errors.length > 0) return { ok: false, error: errors.join('; ') };

  const color = (prefix: 'BLUE' | 'GREEN'): ColorConfig => ({
    releaseParameter: text(`RELEASE_PARAMETER_${prefix}`)!,
    groupName: text(`${prefix}_GROUP_NAME`)!,
    targetGroupArn: text(`${prefix}_TARGET_GROUP_ARN`)!,
    alarms: names(env[`ALARMS_${prefix}`]),
  });
  return {
    ok: true,
    value: {
      liveColorParameter: text('LIVE_COLOR_PARAMETER')!,
      lockParameter: text('LOCK_PARAMETER')!,
      colors: { blue: color('BLUE'), green: color('GREEN') },
      productionListenerArn: text('PRODUCTION_LISTENER_ARN')!,
      testListenerArn: text('TEST_LISTENER_ARN')!,
      notReleasedBody: env.NOT_RELEASED_BODY!,
      defaultCapacity,
      releaseDeadlineSeconds,
      healthTimeoutSeconds,
      bakeSeconds,
      canaryPercent,
      canarySeconds,
      deploymentAlarms: names(env.DEPLOYMENT_ALARMS),
      stackName: text('STACK_NAME')!,
      stateMachineArn: text('STATE_MACHINE_ARN')!,
      testUrl: text('TEST_URL'),
      productionUrl: text('PRODUCTION_URL'),
      notifyTopicArn: text('NOTIFY_TOPIC_ARN'),
      approval: gate,
      pipelineName: text('PIPELINE_NAME'),
    },
  };
}

/** Comma-separated names, trimmed, empty entries and duplicates dropped. */
export function names(value: string | undefined): string[] {
  return [...new Set((value ?? '').split(',').map((name) => name.trim()).filter((name) => name !== ''))];
}

export function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value.trim() === '' ? undefined : value.trim();
}
