import {
  AutoScalingClient,
  DescribeAutoScalingGroupsCommand,
  UpdateAutoScalingGroupCommand,
} from '@aws-sdk/client-auto-scaling';
import { CloudFormationClient, DescribeStacksCommand } from '@aws-sdk/client-cloudformation';
import { CloudWatchClient, DescribeAlarmsCommand } from '@aws-sdk/client-cloudwatch';
import { CodePipelineClient, ListActionExecutionsCommand } from '@aws-sdk/client-codepipeline';
import type { ActionExecutionDetail } from '@aws-sdk/client-codepipeline';
import {
  DescribeListenersCommand,
  DescribeTargetHealthCommand,
  ElasticLoadBalancingV2Client,
  ModifyListenerCommand,
} from '@aws-sdk/client-elastic-load-balancing-v2';
import type { Action as ListenerAction } from '@aws-sdk/client-elastic-load-balancing-v2';
import { EventBridgeClient, PutEventsCommand } from '@aws-sdk/client-eventbridge';
import { ListExecutionsCommand, SFNClient } from '@aws-sdk/client-sfn';
import { PublishCommand, SNSClient } from '@aws-sdk/client-sns';
import { DeleteParameterCommand, GetParametersCommand, PutParameterCommand, SSMClient } from '@aws-sdk/client-ssm';
import { AwsClientStub, mockClient } from 'aws-sdk-client-mock';
import 'aws-sdk-client-mock-jest';
import { expectFacts } from './shared/facts';
import { REASON_LIMIT } from '../../src/handlers/ec2-release/configuration';
import { toRollback, waitOrRollback } from '../../src/handlers/ec2-release/state';
import {
  ReleaseState,
  ReleaseStepError,
  RetryableError,
  forwardedTargetGroups,
  handler,
  readConfig,
  rollbackReason,
  servesOnly,
  step,
} from '../../src/handlers/ec2-release.lambda';

// On Node < 22 the SDK emits a NodeVersionSupportWarning when a client is created, which keeps a jest worker from
// exiting cleanly; the Lambda runtime is nodejs24.x. The handler creates its clients on first use, after this line.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';

// ---------------------------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------------------------

const LIVE = '/web/live-color';
const LOCK = '/web/release-lock';
const REL_BLUE = '/web/release/blue';
const REL_GREEN = '/web/release/green';
const GROUP = { blue: 'web-blue', green: 'web-green' } as const;
const TG = {
  blue: 'arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web-blue/1111111111111111',
  green: 'arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web-green/2222222222222222',
} as const;
const LISTENER = 'arn:aws:elasticloadbalancing:us-east-1:123456789012:listener/app/web/3333333333333333/4444444444444444';
const TEST_LISTENER = 'arn:aws:elasticloadbalancing:us-east-1:123456789012:listener/app/web/3333333333333333/5555555555555555';
const STATE_MACHINE = 'arn:aws:states:us-east-1:123456789012:stateMachine:web-release';
const EXECUTION = 'arn:aws:states:us-east-1:123456789012:execution:web-release:exec-42';
const OTHER_EXECUTION = 'arn:aws:states:us-east-1:123456789012:execution:web-release:exec-41';
const TOPIC = 'arn:aws:sns:us-east-1:123456789012:web-releases';
const NOT_RELEASED = 'Not released yet';
const PIPELINE_EXECUTION = 'a1b2c3d4-0000-1111-2222-333344445555';

const ENV: Record<string, string> = {
  LIVE_COLOR_PARAMETER: LIVE,
  LOCK_PARAMETER: LOCK,
  RELEASE_PARAMETER_BLUE: REL_BLUE,
  RELEASE_PARAMETER_GREEN: REL_GREEN,
  BLUE_GROUP_NAME: GROUP.blue,
  GREEN_GROUP_NAME: GROUP.green,
  BLUE_TARGET_GROUP_ARN: TG.blue,
  GREEN_TARGET_GROUP_ARN: TG.green,
  PRODUCTION_LISTENER_ARN: LISTENER,
  TEST_LISTENER_ARN: TEST_LISTENER,
  NOT_RELEASED_BODY: NOT_RELEASED,
  DEFAULT_CAPACITY: '2',
  RELEASE_DEADLINE_SECONDS: '3300',
  HEALTH_TIMEOUT_SECONDS: '900',
  BAKE_SECONDS: '300',
  CANARY_PERCENT: '0',
  CANARY_SECONDS: '0',
  ALARMS_BLUE: 'blue-5xx, blue-latency',
  ALARMS_GREEN: 'green-5xx,green-latency',
  DEPLOYMENT_ALARMS: 'app-errors',
  STACK_NAME: 'web-fleet',
  STATE_MACHINE_ARN: STATE_MACHINE,
  TEST_URL: 'http://test.web.example:8080/',
  PRODUCTION_URL: 'https://web.example/',
  NOTIFY_TOPIC_ARN: TOPIC,
};
const GATE: Record<string, string> = {
  APPROVAL_PIPELINE_NAME: 'web-pipeline',
  APPROVAL_STAGE_NAME: 'Release',
  APPROVAL_ACTION_NAME: 'Approve',
  APPROVAL_TIMEOUT_SECONDS: '1800',
};
const CANARY: Record<string, string> = { CANARY_PERCENT: '10', CANARY_SECONDS: '120' };

const T0 = Date.parse('2025-07-01T10:00:00.000Z');
const RELEASE = 'r42';

// ---------------------------------------------------------------------------------------------------------------
// A small fake of the AWS resources a release touches, behind aws-sdk-client-mock
// ---------------------------------------------------------------------------------------------------------------

type Color = 'blue' | 'green';
interface Group { min: number; max: number; desired: number; instances: string[] }
interface World {
  params: Record<string, string>;
  /** The version SSM gave each parameter's last write (the state stack wrote each once). */
  versions: Record<string, number>;
  groups: Record<Color, Group>;
  listener: ListenerAction[];
  /** What the test listener forwards to, once a release moved it. */
  testListener?: ListenerAction[];
  /** Target health per target group: instance id -> state (and description). */
  health: Record<Color, Record<string, { state: string; description?: string }>>;
  alarms: Record<string, 'OK' | 'ALARM' | 'INSUFFICIENT_DATA'>;
  running: Array<{ executionArn: string; name: string }>;
  stackStatus: string;
  approvals: ActionExecutionDetail[];
}

let world: World;
let clock: number;
/** Every call to the fake, in order, as one readable line. */
let calls: string[];
let launched: number;

let ssmMock: AwsClientStub<SSMClient>;
let asgMock: AwsClientStub<AutoScalingClient>;
let elbMock: AwsClientStub<ElasticLoadBalancingV2Client>;
let cwMock: AwsClientStub<CloudWatchClient>;
let cpMock: AwsClientStub<CodePipelineClient>;
let snsMock: AwsClientStub<SNSClient>;
let sfnMock: AwsClientStub<SFNClient>;
let cfnMock: AwsClientStub<CloudFormationClient>;

const forward = (color: Color): ListenerAction[] => [{
  Type: 'forward',
  TargetGroupArn: TG[color],
  ForwardConfig: { TargetGroups: [{ TargetGroupArn: TG[color], Weight: 1 }], TargetGroupStickinessConfig: { Enabled: false } },
}];
const fixed503: ListenerAction[] = [{ Type: 'fixed-response', FixedResponseConfig: { StatusCode: '503', ContentType: 'text/plain', MessageBody: NOT_RELEASED } }];
const colorOf = (value: string | undefined): string => (value === TG.blue ? 'blue' : value === TG.green ? 'green' : String(value));

/** What ELB answers after ModifyListener: a single-group forward also shows up as a ForwardConfig with weight 1. */
function normalize(actions: ListenerAction[]): ListenerAction[] {
  return actions.map((a) => (a.Type === 'forward' && a.ForwardConfig === undefined && a.TargetGroupArn !== undefined
    ? { ...a, ForwardConfig: { TargetGroups: [{ TargetGroupArn: a.TargetGroupArn, Weight: 1 }] } }
    : a));
}

function describeActions(actions: ListenerAction[] | undefined): string {
  return (actions ?? []).map((a) => (a.Type === 'fixed-response'
    ? `503:${a.FixedResponseConfig?.MessageBody}`
    : a.ForwardConfig?.TargetGroups?.map((t) => `${colorOf(t.TargetGroupArn)}=${t.Weight}`).join(',') ?? `${colorOf(a.TargetGroupArn)}`)).join(' ');
}

function defaultWorld(): World {
  return {
    params: { [LIVE]: 'blue', [LOCK]: 'free', [REL_BLUE]: 'r41', [REL_GREEN]: 'none' },
    versions: {},
    groups: {
      blue: { min: 3, max: 6, desired: 3, instances: ['i-b1', 'i-b2', 'i-b3'] },
      green: { min: 0, max: 6, desired: 0, instances: [] },
    },
    listener: forward('blue'),
    health: { blue: { 'i-b1': { state: 'healthy' }, 'i-b2': { state: 'healthy' }, 'i-b3': { state: 'healthy' } }, green: {} },
    alarms: { 'blue-5xx': 'OK', 'blue-latency': 'OK', 'green-5xx': 'OK', 'green-latency': 'OK', 'app-errors': 'OK' },
    running: [{ executionArn: EXECUTION, name: 'exec-42' }],
    stackStatus: 'UPDATE_COMPLETE',
    approvals: [],
  };
}

/** A first release: nothing live, production answers the fixed 503. */
function unreleasedWorld(): World {
  const w = defaultWorld();
  w.params = { [LIVE]: 'none', [LOCK]: 'free', [REL_BLUE]: 'none', [REL_GREEN]: 'none' };
  w.groups.blue = { min: 0, max: 4, desired: 0, instances: [] };
  w.health.blue = {};
  w.listener = fixed503;
  return w;
}

const groupColor = (name: string | undefined): Color => (name === GROUP.blue ? 'blue' : name === GROUP.green ? 'green' : (() => { throw new Error(`no group ${name}`); })());

function installFake(): void {
  ssmMock.on(GetParametersCommand).callsFake((input) => {
    calls.push('GetParameters');
    const names: string[] = input.Names ?? [];
    return {
      Parameters: names.filter((n) => world.params[n] !== undefined).map((n) => ({ Name: n, Value: world.params[n], Type: 'String' })),
      InvalidParameters: names.filter((n) => world.params[n] === undefined),
    };
  });
  ssmMock.on(PutParameterCommand).callsFake((input) => {
    calls.push(`PutParameter ${input.Name}=${input.Value}`);
    // As SSM numbers versions: a parameter the write creates is at version 1, an overwrite adds one.
    const version = world.params[input.Name] === undefined ? 1 : (world.versions[input.Name] ?? 1) + 1;
    world.params[input.Name] = input.Value;
    world.versions[input.Name] = version;
    return { Version: version, Tier: 'Standard' };
  });
  ssmMock.on(DeleteParameterCommand).callsFake((input) => {
    calls.push(`DeleteParameter ${input.Name}`);
    delete world.params[input.Name];
    delete world.versions[input.Name];
    return {};
  });
  asgMock.on(DescribeAutoScalingGroupsCommand).callsFake((input) => {
    calls.push(`DescribeAutoScalingGroups ${(input.AutoScalingGroupNames ?? []).join(',')}`);
    return {
      AutoScalingGroups: (input.AutoScalingGroupNames ?? []).map((name: string) => {
        const g = world.groups[groupColor(name)];
        return {
          AutoScalingGroupName: name,
          MinSize: g.min,
          MaxSize: g.max,
          DesiredCapacity: g.desired,
          Instances: g.instances.map((id) => ({ InstanceId: id, LifecycleState: 'InService' })),
        };
      }),
    };
  });
  asgMock.on(UpdateAutoScalingGroupCommand).callsFake((input) => {
    const color = groupColor(input.AutoScalingGroupName);
    calls.push(`UpdateAutoScalingGroup ${color} min=${input.MinSize} max=${input.MaxSize ?? '-'} desired=${input.DesiredCapacity}`);
    const g = world.groups[color];
    g.min = input.MinSize ?? g.min;
    g.max = input.MaxSize ?? g.max;
    g.desired = input.DesiredCapacity ?? g.desired;
    // Scaling up launches instances at once (still initial in the target group); scaling down leaves them draining
    // until a test calls terminate().
    while (g.instances.length < g.desired) {
      const id = `i-${color[0]}${++launched}`;
      g.instances.push(id);
      world.health[color][id] = { state: 'initial', description: 'Target registration is in progress' };
    }
    return {};
  });
  elbMock.on(DescribeTargetHealthCommand).callsFake((input) => {
    const color = input.TargetGroupArn === TG.blue ? 'blue' : 'green';
    calls.push(`DescribeTargetHealth ${color}`);
    return {
      TargetHealthDescriptions: Object.entries(world.health[color]).map(([id, h]) => ({
        Target: { Id: id, Port: 80 }, TargetHealth: { State: h.state, ...(h.description ? { Description: h.description } : {}) },
      })),
    };
  });
  elbMock.on(DescribeListenersCommand).callsFake(() => {
    calls.push('DescribeListeners');
    return { Listeners: [{ ListenerArn: LISTENER, Port: 443, DefaultActions: world.listener }] };
  });
  elbMock.on(ModifyListenerCommand, { ListenerArn: TEST_LISTENER }).callsFake((input) => {
    calls.push(`ModifyTestListener ${describeActions(input.DefaultActions)}`);
    world.testListener = normalize(input.DefaultActions ?? []);
    return { Listeners: [{ ListenerArn: TEST_LISTENER, DefaultActions: world.testListener }] };
  });
  elbMock.on(ModifyListenerCommand, { ListenerArn: LISTENER }).callsFake((input) => {
    calls.push(`ModifyListener ${describeActions(input.DefaultActions)}`);
    world.listener = normalize(input.DefaultActions ?? []);
    return { Listeners: [{ ListenerArn: LISTENER, DefaultActions: world.listener }] };
  });
  cwMock.on(DescribeAlarmsCommand).callsFake((input) => {
    calls.push(`DescribeAlarms ${(input.AlarmNames ?? []).length}`);
    return {
      MetricAlarms: (input.AlarmNames ?? [])
        .filter((n: string) => world.alarms[n] !== undefined)
        .map((n: string) => ({ AlarmName: n, StateValue: world.alarms[n] })),
      CompositeAlarms: [],
    };
  });
  cpMock.on(ListActionExecutionsCommand).callsFake(() => {
    calls.push('ListActionExecutions');
    return { actionExecutionDetails: world.approvals };
  });
  snsMock.on(PublishCommand).callsFake((input) => {
    calls.push(`Publish ${input.Subject}`);
    return { MessageId: 'm-1' };
  });
  sfnMock.on(ListExecutionsCommand).callsFake(() => {
    calls.push('ListExecutions');
    return { executions: world.running.map((e) => ({ ...e, stateMachineArn: STATE_MACHINE, status: 'RUNNING', startDate: new Date(T0) })) };
  });
  cfnMock.on(DescribeStacksCommand).callsFake(() => {
    calls.push('DescribeStacks');
    return { Stacks: [{ StackName: 'web-fleet', StackStatus: world.stackStatus, CreationTime: new Date(T0) }] };
  });
}

function terminate(color: Color): void {
  for (const id of world.groups[color].instances) delete world.health[color][id];
  world.groups[color].instances = [];
}

function makeHealthy(color: Color): void {
  for (const id of world.groups[color].instances) world.health[color][id] = { state: 'healthy' };
}

let env: Record<string, string | undefined>;
const deps = () => ({ now: () => clock, env });

const startEvent = (release: string = RELEASE) => ({
  action: 'start',
  input: { release, pipelineExecutionId: PIPELINE_EXECUTION },
  executionArn: EXECUTION,
  startedAt: new Date(T0).toISOString(),
});

function awsError(name: string, message: string, httpStatusCode = 400): Error {
  return Object.assign(new Error(message), { name, $fault: httpStatusCode >= 500 ? 'server' : 'client', $metadata: { httpStatusCode } });
}
const throttled = () => awsError('ThrottlingException', 'Rate exceeded');
const accessDenied = (action: string) => awsError('AccessDeniedException', `User: arn:aws:sts::123456789012:assumed-role/release/fn is not authorized to perform: ${action}`);

/**
 * Runs the state machine's loop (see the spec): Route on `next`, Wait `waitSeconds` (the clock moves), the smoke test
 * task at `smoke`, retries of `RetryableError` (at most 3 per step), the Catch to `rollback` with `caught`. `hooks`
 * change the world before a step (e.g. instances become healthy).
 */
async function runMachine(options: {
  smoke?: { passed: boolean; summary: string };
  before?: (action: string, state: ReleaseState, n: number) => void;
} = {}): Promise<{ final: ReleaseState; actions: string[] }> {
  const actions: string[] = [];
  let event: Record<string, unknown> = startEvent();
  let previous: ReleaseState | undefined;
  for (let n = 0; n < 400; n++) {
    const action = String(event.action);
    actions.push(action);
    options.before?.(action, previous ?? ({} as ReleaseState), n);
    let state: ReleaseState;
    try {
      state = await stepWithRetries(event);
    } catch (err) {
      if (action === 'rollback') throw Object.assign(new Error(`RollbackFailed: ${(err as Error).message}`), { actions });
      const caught = { Error: (err as Error).name, Cause: JSON.stringify({ errorType: (err as Error).name, errorMessage: (err as Error).message }) };
      event = { action: 'rollback', state: { ...(previous ?? {}), caught }, executionArn: EXECUTION };
      continue;
    }
    previous = state;
    if (state.next === 'succeeded' || state.next === 'failed') return { final: state, actions };
    if (state.next === 'smoke') {
      actions.push('smoke');
      event = { action: 'afterSmoke', state: { ...state, smoke: options.smoke ?? { passed: true, summary: '3 of 3 checks passed' } } };
      continue;
    }
    clock += state.waitSeconds * 1000;
    event = { action: state.next, state };
  }
  throw new Error(`the release did not end: ${actions.join(' ')}`);
}

async function stepWithRetries(event: unknown): Promise<ReleaseState> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await step(event, deps());
    } catch (err) {
      if (!(err instanceof RetryableError) || attempt >= 3) throw err;
      clock += 2_000;
    }
  }
}

/** A state in the middle of a release (green is the target), for single-step tests. */
function midRelease(overrides: Partial<ReleaseState> = {}): ReleaseState {
  return {
    next: 'health',
    waitSeconds: 0,
    message: '',
    release: RELEASE,
    pipelineExecutionId: PIPELINE_EXECUTION,
    executionArn: EXECUTION,
    startedAt: new Date(T0).toISOString(),
    live: 'blue',
    previousRelease: 'r41',
    target: 'green',
    capacity: 3,
    trafficPercent: 0,
    scaledUpAt: new Date(T0 + 10_000).toISOString(),
    ...overrides,
  };
}

/** The world as it is during a release of `midRelease()`: lock held, green scaled up and healthy. */
function duringRelease(): void {
  world.params[LOCK] = `running ${EXECUTION}`;
  world.params[REL_GREEN] = RELEASE;
  world.groups.green = { min: 3, max: 6, desired: 3, instances: ['i-g1', 'i-g2', 'i-g3'] };
  world.health.green = { 'i-g1': { state: 'healthy' }, 'i-g2': { state: 'healthy' }, 'i-g3': { state: 'healthy' } };
}

const writes = () => calls.filter((c) => /^(PutParameter|UpdateAutoScalingGroup|ModifyListener|Publish)/.test(c));

beforeEach(() => {
  env = { ...ENV };
  world = defaultWorld();
  clock = T0;
  calls = [];
  launched = 0;
  ssmMock = mockClient(SSMClient);
  asgMock = mockClient(AutoScalingClient);
  elbMock = mockClient(ElasticLoadBalancingV2Client);
  cwMock = mockClient(CloudWatchClient);
  cpMock = mockClient(CodePipelineClient);
  snsMock = mockClient(SNSClient);
  sfnMock = mockClient(SFNClient);
  cfnMock = mockClient(CloudFormationClient);
  installFake();
  jest.spyOn(console, 'log').mockImplementation(() => undefined);
  jest.spyOn(console, 'error').mockImplementation(() => undefined);
});

afterEach(() => {
  for (const mock of [ssmMock, asgMock, elbMock, cwMock, cpMock, snsMock, sfnMock, cfnMock]) mock.restore();
  jest.restoreAllMocks();
});

// ---------------------------------------------------------------------------------------------------------------
// Whole releases
// ---------------------------------------------------------------------------------------------------------------

describe('a whole release', () => {
  test('success: start -> health -> smoke -> afterSmoke -> shift -> bake -> finish, green recorded live before anything else', async () => {
    const { final, actions } = await runMachine({ before: (action) => { if (action === 'health') makeHealthy('green'); } });

    expect(final.next).toBe('succeeded');
    expect(final.message).toBe('production runs r42 on green');
    expect(actions.slice(0, 5)).toEqual(['start', 'health', 'smoke', 'afterSmoke', 'shift']);
    expect(actions.filter((a) => a === 'bake').length).toBe(11); // 300 s in waits of at most 30 s, plus the last check
    expect(actions[actions.length - 1]).toBe('finish');
    expect(writes()).toEqual([
      `PutParameter ${LOCK}=running ${EXECUTION}`,
      `PutParameter ${REL_GREEN}=r42`,
      'UpdateAutoScalingGroup green min=3 max=6 desired=3', // the live group's capacity
      'ModifyListener green',
      `PutParameter ${LIVE}=green`,
      `PutParameter ${LOCK}=free`,
      'UpdateAutoScalingGroup blue min=0 max=- desired=0',
      'Publish Released: r42',
    ]);
    expect(world.params).toEqual({ [LIVE]: 'green', [LOCK]: 'free', [REL_BLUE]: 'r41', [REL_GREEN]: 'r42' });
    expect(forwardedTargetGroups(world.listener)).toEqual([TG.green]);
    // The bake watched the target's and the deployment's alarms, never the old color's.
    expect(cwMock).toHaveReceivedCommandWith(DescribeAlarmsCommand, {
      AlarmNames: ['green-5xx', 'green-latency', 'app-errors'], AlarmTypes: ['MetricAlarm', 'CompositeAlarm'],
    });
    expect(final.bakeUntil).toBe(new Date(Date.parse(final.shiftedAt!) + 300_000).toISOString());
    const published = snsMock.commandCalls(PublishCommand)[0].args[0].input;
    expect(published.Message).toContain('production runs r42 on green');
    expect(published.Message).toContain('Before: r41 on blue');
  });

  test('first release: nothing live, the default capacity on blue, production from the 503 straight to 100 % (no canary)', async () => {
    world = unreleasedWorld();
    env = { ...ENV, ...CANARY };
    const { final } = await runMachine({ before: (action) => { if (action === 'health') makeHealthy('blue'); } });

    expect(final.message).toBe('production runs r42 on blue');
    expect(writes()).toEqual([
      `PutParameter ${LOCK}=running ${EXECUTION}`,
      `PutParameter ${REL_BLUE}=r42`,
      'UpdateAutoScalingGroup blue min=2 max=4 desired=2',
      'ModifyListener blue',
      `PutParameter ${LIVE}=blue`,
      `PutParameter ${LOCK}=free`,
      'Publish Released: r42', // no old color to scale down
    ]);
    expect(calls).toContain('DescribeAutoScalingGroups web-blue'); // the live group is not asked for: there is none
  });

  test('canary: 10 % for CANARY_SECONDS with alarm checks, then 100 %, then the bake', async () => {
    env = { ...ENV, ...CANARY };
    const { final, actions } = await runMachine({ before: (action) => { if (action === 'health') makeHealthy('green'); } });

    expect(final.message).toBe('production runs r42 on green');
    expect(calls.filter((c) => c.startsWith('ModifyListener'))).toEqual(['ModifyListener blue=90,green=10', 'ModifyListener green']);
    const shifts = actions.map((a, i) => [a, i] as const).filter(([a]) => a === 'shift').map(([, i]) => i);
    expect(shifts).toHaveLength(2);
    // 120 s of canary in waits of 30 s: four bakes with a wait, one that sends to shift.
    expect(actions.slice(shifts[0] + 1, shifts[1])).toEqual(['bake', 'bake', 'bake', 'bake', 'bake']);
  });

  test('with the approval gate: ready for review (published), then approved, then production', async () => {
    env = { ...ENV, ...GATE };
    let readyAt: string | undefined;
    const { final, actions } = await runMachine({
      before: (action, state) => {
        if (action === 'health') makeHealthy('green');
        if (action === 'approval' && state.readyAt !== undefined && readyAt === undefined) {
          readyAt = state.readyAt;
          world.approvals = [{
            stageName: 'Release',
            actionName: 'Approve',
            status: 'Succeeded',
            updatedBy: 'arn:aws:iam::123456789012:user/reviewer',
            startTime: new Date(T0),
            lastUpdateTime: new Date(clock),
          }];
        }
      },
    });

    expect(final.message).toBe('production runs r42 on green');
    expect(actions.slice(0, 6)).toEqual(['start', 'health', 'smoke', 'afterSmoke', 'approval', 'shift']);
    expect(cpMock).toHaveReceivedCommandWith(ListActionExecutionsCommand, { pipelineName: 'web-pipeline', filter: { pipelineExecutionId: PIPELINE_EXECUTION } });
    const ready = snsMock.commandCalls(PublishCommand)[0].args[0].input;
    expect(ready.Subject).toBe('Ready for review: release r42');
    expect(ready.Message).toContain('Test URL: http://test.web.example:8080/');
    expect(ready.Message).toContain('approve the action Approve in stage Release of pipeline web-pipeline');
    expect(ready.Message).toContain(`An approval given before ${readyAt} does not count`);
    expect(ready.Message).toContain('Production still runs: r41 on blue');
    // Shifted only after the approval.
    expect(calls.indexOf('ListActionExecutions')).toBeLessThan(calls.findIndex((c) => c.startsWith('ModifyListener')));
  });

  test('smoke failure: rolls back without touching production, green scaled to 0, lock freed, live color untouched', async () => {
    const { final, actions } = await runMachine({
      smoke: { passed: false, summary: '1 of 3 checks failed: GET /health answered 500' },
      before: (action) => { if (action === 'health') makeHealthy('green'); },
    });

    expect(actions.slice(-2)).toEqual(['afterSmoke', 'rollback']);
    expect(final.next).toBe('failed');
    expectFacts(final.message, ['rolled back', 'failed', '1', '3', 'failed', 'GET', '/health', '500', 'r41', 'blue', 'everywhere']);
    expect(calls.filter((c) => c.startsWith('ModifyListener'))).toEqual([]);
    expect(writes().slice(-3)).toEqual(['UpdateAutoScalingGroup green min=0 max=- desired=0', `PutParameter ${LOCK}=free`, 'Publish Rolled back: r42']);
    expect(world.params[LIVE]).toBe('blue');
    expect(calls.some((c) => c.startsWith(`PutParameter ${LIVE}`))).toBe(false);
  });

  test('alarm during the bake: production back to blue, verified, before green goes', async () => {
    const { final } = await runMachine({
      before: (action, state) => {
        if (action === 'health') makeHealthy('green');
        if (action === 'bake' && state.trafficPercent === 100 && clock > Date.parse(state.shiftedAt!) + 60_000) world.alarms['green-5xx'] = 'ALARM';
      },
    });

    expectFacts(final.message, ['rolled back', 'green-5xx', 'ALARM', 'r41', 'blue', 'everywhere']);
    const tail = calls.slice(calls.lastIndexOf('ModifyListener green') + 1);
    expect(tail.filter((c) => !c.startsWith('Describe') && c !== 'GetParameters')).toEqual([
      'ModifyListener blue', 'UpdateAutoScalingGroup green min=0 max=- desired=0', `PutParameter ${LOCK}=free`, 'Publish Rolled back: r42',
    ]);
    // Verified: a DescribeListeners after the ModifyListener and before the scale-down.
    const modify = calls.lastIndexOf('ModifyListener blue');
    expect(calls.slice(modify, calls.indexOf('UpdateAutoScalingGroup green min=0 max=- desired=0', modify))).toContain('DescribeListeners');
    expect(forwardedTargetGroups(world.listener)).toEqual([TG.blue]);
    expect(world.params[LIVE]).toBe('blue');
  });

  test('alarm during the canary: rolls back from the weighted listener', async () => {
    env = { ...ENV, ...CANARY };
    const { final } = await runMachine({
      before: (action, state) => {
        if (action === 'health') makeHealthy('green');
        if (action === 'bake' && state.trafficPercent === 10) world.alarms['app-errors'] = 'ALARM';
      },
    });
    expectFacts(final.message, ['rolled back', 'app-errors', 'ALARM', '10', 'r41', 'blue', 'everywhere']);
    expect(calls.filter((c) => c.startsWith('ModifyListener'))).toEqual(['ModifyListener blue=90,green=10', 'ModifyListener blue']);
  });

  test('an instance that never becomes healthy: rollback after HEALTH_TIMEOUT_SECONDS, naming the reasons', async () => {
    const { final, actions } = await runMachine({
      before: (action) => {
        if (action === 'health') {
          const [a, b, c] = world.groups.green.instances;
          world.health.green[a] = { state: 'healthy' };
          world.health.green[b] = { state: 'healthy' };
          world.health.green[c] = { state: 'unhealthy', description: 'Health checks failed with these codes: [502]' };
        }
      },
    });
    // Checks 15 s, 30 s, ... 915 s after the scale-up: the first one past HEALTH_TIMEOUT_SECONDS rolls back.
    expect(actions.filter((a) => a === 'health')).toHaveLength(61);
    expect(final.message).toBe(
      'rolled back (2 of 3 instances healthy after 15.3 minutes (i-g3: unhealthy (Health checks failed with these codes: [502])); '
      + 'the health timeout is 900 s): production runs r41 on blue everywhere');
    expect(calls.filter((c) => c.startsWith('ModifyListener'))).toEqual([]);
    expect(world.groups.green.desired).toBe(0);
  });

  test('a real error (access denied) in a step: the Catch rolls back, quoting the error', async () => {
    elbMock.on(DescribeTargetHealthCommand).rejects(accessDenied('elasticloadbalancing:DescribeTargetHealth'));
    const { final, actions } = await runMachine();
    expect(actions).toEqual(['start', 'health', 'rollback']); // not retried: access denied is no RetryableError
    expect(final.message).toMatch(new RegExp('^rolled back \\(ReleaseStepError: elasticloadbalancing:DescribeTargetHealth \\(.*\\) failed: '
      + 'AccessDeniedException: User: .* is not authorized to perform: elasticloadbalancing:DescribeTargetHealth\\): production runs r41 on blue everywhere$'));
    expect(world.groups.green.desired).toBe(0);
    expect(world.params[LOCK]).toBe('free');
  });

  test('the rollback fails too: RollbackFailed, the lock left (stale once the execution ended: the guard lets deployments pass)', async () => {
    asgMock.on(UpdateAutoScalingGroupCommand).rejects(accessDenied('autoscaling:UpdateAutoScalingGroup'));
    const error = await runMachine().catch((e: unknown) => e as Error & { actions: string[] });
    expect(error).toBeInstanceOf(Error);
    expect((error as Error).message).toMatch(/^RollbackFailed: autoscaling:UpdateAutoScalingGroup \(web-green\) failed: AccessDeniedException: User: .* not authorized/);
    expect((error as { actions: string[] }).actions).toEqual(['start', 'rollback']);
    expect(world.params[LOCK]).toBe(`running ${EXECUTION}`);
  });
});

// ---------------------------------------------------------------------------------------------------------------
// start
// ---------------------------------------------------------------------------------------------------------------

describe('start', () => {
  test('takes the lock after the checks, then scales the target up; the state names everything later steps need', async () => {
    const state = await step(startEvent(), deps());
    expect(state).toEqual({
      next: 'health',
      waitSeconds: 15,
      message: 'release r42: green group web-green scaled to 3 instance(s); production still runs r41 on blue',
      release: RELEASE,
      pipelineExecutionId: PIPELINE_EXECUTION,
      executionArn: EXECUTION,
      startedAt: new Date(T0).toISOString(),
      live: 'blue',
      previousRelease: 'r41',
      target: 'green',
      capacity: 3,
      trafficPercent: 0,
      scaledUpAt: new Date(T0).toISOString(),
    });
    expect(calls).toEqual([
      'ListExecutions',
      'GetParameters',
      `PutParameter ${LOCK}=running ${EXECUTION}`,
      'DescribeStacks',
      // Production's listener already serves only the live color: nothing to repair.
      'DescribeListeners',
      'DescribeAutoScalingGroups web-green,web-blue',
      // The test listener serves the target before it has instances (CloudFormation moves it only on a stack update).
      'ModifyTestListener green',
      `PutParameter ${REL_GREEN}=r42`,
      'UpdateAutoScalingGroup green min=3 max=6 desired=3',
    ]);
    expect(sfnMock).toHaveReceivedCommandWith(ListExecutionsCommand, { stateMachineArn: STATE_MACHINE, statusFilter: 'RUNNING' });
    expect(ssmMock).toHaveReceivedCommandWith(PutParameterCommand, { Name: LOCK, Value: `running ${EXECUTION}`, Type: 'String', Overwrite: true });
    expect(elbMock).toHaveReceivedCommandWith(ModifyListenerCommand, { ListenerArn: TEST_LISTENER, DefaultActions: [{ Type: 'forward', TargetGroupArn: TG.green }] });
    expect(elbMock).not.toHaveReceivedCommandWith(ModifyListenerCommand, { ListenerArn: LISTENER });
  });

  test('the handler entry point runs the same step with the real clock and process.env', async () => {
    const saved = process.env;
    process.env = { ...saved, ...ENV };
    try {
      const state = await handler({ ...startEvent(), startedAt: new Date().toISOString() });
      expect(state.next).toBe('health');
      expect(state.target).toBe('green');
    } finally {
      process.env = saved;
    }
  });

  test('duplicate invocation for the same execution: the same scale-up again, no drain of its own instances', async () => {
    const first = await step(startEvent(), deps());
    clock += 5_000;
    const second = await step(startEvent(), deps());
    expect(second.next).toBe('health');
    expect({ ...second, scaledUpAt: undefined }).toEqual({ ...first, scaledUpAt: undefined });
    expect(calls.filter((c) => c.startsWith('UpdateAutoScalingGroup'))).toEqual([
      'UpdateAutoScalingGroup green min=3 max=6 desired=3',
      'UpdateAutoScalingGroup green min=3 max=6 desired=3',
    ]);
    expect(world.groups.green.instances).toHaveLength(3);
  });

  test('another release running: failed, nothing written', async () => {
    world.running = [{ executionArn: OTHER_EXECUTION, name: 'exec-41' }, { executionArn: EXECUTION, name: 'exec-42' }];
    const state = await step(startEvent(), deps());
    expect(state.next).toBe('failed');
    expectFacts(state.message, ['exec-41', OTHER_EXECUTION, 'is running', 'changed nothing']);
    expect(calls).toEqual(['ListExecutions']);
  });

  test('reads every page of running executions, ignoring itself', async () => {
    sfnMock.on(ListExecutionsCommand)
      .resolvesOnce({ executions: [{ executionArn: EXECUTION, name: 'exec-42', stateMachineArn: STATE_MACHINE, status: 'RUNNING', startDate: new Date(T0) }], nextToken: 'p2' })
      .resolvesOnce({ executions: [{ executionArn: OTHER_EXECUTION, name: 'exec-41', stateMachineArn: STATE_MACHINE, status: 'RUNNING', startDate: new Date(T0) }] });
    const state = await step(startEvent(), deps());
    expect(state.message).toMatch(/^release exec-41 .* is running; this release changed nothing$/);
    expect(sfnMock).toHaveReceivedNthCommandWith(2, ListExecutionsCommand, { nextToken: 'p2' });
  });

  test('stack update in progress: the lock is taken first (a change set made earlier did not see it), then start again in 30 s; then it proceeds', async () => {
    world.stackStatus = 'UPDATE_IN_PROGRESS';
    const waiting = await step(startEvent(), deps());
    expect(waiting).toMatchObject({ next: 'start', waitSeconds: 30, release: RELEASE, executionArn: EXECUTION });
    expectFacts(waiting.message, ['r42', 'web-fleet', 'UPDATE_IN_PROGRESS', '30']);
    // Nothing but the lock: no group, no listener, no release parameter touched while the stack updates.
    expect(writes()).toEqual([`PutParameter ${LOCK}=running ${EXECUTION}`]);

    world.stackStatus = 'UPDATE_COMPLETE';
    clock += 30_000;
    const started = await step({ action: 'start', state: waiting }, deps());
    expect(started).toMatchObject({ next: 'health', target: 'green', release: RELEASE, startedAt: new Date(T0).toISOString() });
    expect(world.params[LOCK]).toBe(`running ${EXECUTION}`);
  });

  test('stack still in progress at the deadline: failed, nothing changed', async () => {
    world.stackStatus = 'UPDATE_ROLLBACK_IN_PROGRESS';
    clock = T0 + 3_280_000;
    const state = await step(startEvent(), deps());
    expect(state.next).toBe('failed');
    expectFacts(state.message, ['r42', 'web-fleet', 'UPDATE_ROLLBACK_IN_PROGRESS', 'deadline', '2025-07-01T10:55:00.000Z', 'changed nothing']);
    // The lock it took is free again.
    expect(writes()).toEqual([`PutParameter ${LOCK}=running ${EXECUTION}`, `PutParameter ${LOCK}=free`]);
    expect(world.params[LOCK]).toBe('free');
  });

  test('a stopped earlier release left production on canary weights: start returns it to the live color before anything else', async () => {
    world.listener = [{
      Type: 'forward',
      ForwardConfig: { TargetGroups: [{ TargetGroupArn: TG.blue, Weight: 90 }, { TargetGroupArn: TG.green, Weight: 10 }] },
    }];
    const state = await step(startEvent(), deps());
    expect(state.next).toBe('health');
    expect(forwardedTargetGroups(world.listener)).toEqual([TG.blue]);
    expect(state.message).toContain('was returned to the recorded live color first');
    const order = writes();
    expect(order.findIndex((w) => w.startsWith('ModifyListener'))).toBeLessThan(order.findIndex((w) => w.startsWith('UpdateAutoScalingGroup')));
  });

  test('the repair is verified: a listener that still carries the stale weights fails the step for a retry', async () => {
    world.listener = [{
      Type: 'forward',
      ForwardConfig: { TargetGroups: [{ TargetGroupArn: TG.blue, Weight: 90 }, { TargetGroupArn: TG.green, Weight: 10 }] },
    }];
    const stale = world.listener;
    elbMock.on(ModifyListenerCommand, { ListenerArn: LISTENER }).callsFake(() => ({ Listeners: [{ ListenerArn: LISTENER, DefaultActions: stale }] }));
    await expect(step(startEvent(), deps())).rejects.toMatchObject({ name: 'RetryableError' });
    expect(asgMock).not.toHaveReceivedCommand(UpdateAutoScalingGroupCommand);
  });

  test('an aborted earlier release left instances on the target: scale it to 0, drain, then scale up', async () => {
    world.groups.green = { min: 2, max: 4, desired: 2, instances: ['i-old1', 'i-old2'] };
    world.params[REL_GREEN] = 'r40';
    const draining = await step(startEvent(), deps());
    expect(draining).toMatchObject({ next: 'drain', waitSeconds: 15 });
    expect(writes()).toEqual([`PutParameter ${LOCK}=running ${EXECUTION}`, 'UpdateAutoScalingGroup green min=0 max=- desired=0']);
    expect(world.params[REL_GREEN]).toBe('r40'); // not before the old instances are gone

    clock += 15_000;
    const still = await step({ action: 'drain', state: draining }, deps());
    expect(still).toMatchObject({ next: 'drain', waitSeconds: 15 });
    expectFacts(still.message, ['r42', 'green', 'web-green', 'still has', '2']);

    terminate('green');
    clock += 15_000;
    const up = await step({ action: 'drain', state: still }, deps());
    expect(up).toMatchObject({ next: 'health', scaledUpAt: new Date(clock).toISOString() });
    expect(writes().slice(-2)).toEqual([`PutParameter ${REL_GREEN}=r42`, 'UpdateAutoScalingGroup green min=3 max=6 desired=3']);
  });

  test.each([
    ['', 'invalid release id "": expected 1 to 128 characters A-Z a-z 0-9 . _ -; this release changed nothing'],
    ['r 1', 'invalid release id "r 1": expected 1 to 128 characters A-Z a-z 0-9 . _ -; this release changed nothing'],
    ['a'.repeat(129), /^invalid release id "a+": expected/],
    ['r1;rm', 'invalid release id "r1;rm": expected 1 to 128 characters A-Z a-z 0-9 . _ -; this release changed nothing'],
  ])('refuses the release id %j without calling AWS', async (release, message) => {
    const state = await step(startEvent(release), deps());
    expect(state.next).toBe('failed');
    expect(state.message).toMatch(message);
    expect(calls).toEqual([]);
  });

  test('accepts a release id of 128 allowed characters', async () => {
    const release = `${'A-z_0.9'.repeat(18)}ab`;
    expect(release).toHaveLength(128);
    expect((await step(startEvent(release), deps())).next).toBe('health');
  });

  test.each([
    [{ executionArn: undefined }, 'release r42: the start event has no executionArn; this release changed nothing'],
    [{ startedAt: 'yesterday' }, 'release r42: the start event has no valid startedAt (got "yesterday"); this release changed nothing'],
  ])('a start event with %j is refused without calling AWS', async (overrides, message) => {
    const state = await step({ ...startEvent(), ...overrides }, deps());
    expect(state).toMatchObject({ next: 'failed', message });
    expect(calls).toEqual([]);
  });

  test('a live color parameter with an unexpected value: failed before the lock', async () => {
    world.params[LIVE] = 'purple';
    const state = await step(startEvent(), deps());
    expectFacts(state.message, ['r42', 'SSM', LIVE, 'none', 'blue', 'green', '"purple"', 'changed nothing']);
    expect(writes()).toEqual([]);
  });

  test('with the approval gate, a start without pipelineExecutionId is refused', async () => {
    env = { ...ENV, ...GATE };
    const state = await step({ ...startEvent(), input: { release: RELEASE } }, deps());
    expectFacts(state.message, ['r42', 'changed nothing']);
  });

  test('throttling: RetryableError, so the state machine runs start again', async () => {
    sfnMock.on(ListExecutionsCommand).rejects(throttled());
    const error = await step(startEvent(), deps()).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RetryableError);
    expect(error).toMatchObject({ name: 'RetryableError', message: 'states:ListExecutions failed: ThrottlingException: Rate exceeded' });
  });

  test.each([
    ['a 5xx', awsError('InternalFailure', 'internal error', 500)],
    ['a timeout', Object.assign(new Error('socket timed out'), { name: 'TimeoutError' })],
  ])('%s is retryable too', async (_label, err) => {
    cfnMock.on(DescribeStacksCommand).rejects(err);
    await expect(step(startEvent(), deps())).rejects.toMatchObject({ name: 'RetryableError' });
  });

  test('access denied: a real error (not retried), naming the call', async () => {
    ssmMock.on(PutParameterCommand).rejects(accessDenied('ssm:PutParameter'));
    const error = await step(startEvent(), deps()).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ReleaseStepError);
    expect(error).not.toBeInstanceOf(RetryableError);
    expect((error as Error).message).toMatch(/^ssm:PutParameter \(\/web\/release-lock\) failed: AccessDeniedException: User: .* is not authorized to perform: ssm:PutParameter$/);
  });
});

// ---------------------------------------------------------------------------------------------------------------
// health
// ---------------------------------------------------------------------------------------------------------------

describe('health', () => {
  beforeEach(() => duringRelease());

  test('enough healthy targets of the group\'s own instances: smoke', async () => {
    const state = await step({ action: 'health', state: midRelease() }, deps());
    expect(state).toMatchObject({ next: 'smoke', waitSeconds: 0, message: 'release r42: 3 of 3 green instances healthy; smoke test next' });
    expect(elbMock).toHaveReceivedCommandWith(DescribeTargetHealthCommand, { TargetGroupArn: TG.green });
  });

  test('healthy targets that are not the group\'s instances do not count', async () => {
    world.health.green = { 'i-g1': { state: 'healthy' }, 'i-g2': { state: 'healthy' }, 'i-stranger': { state: 'healthy' }, 'i-g3': { state: 'initial' } };
    clock = T0 + 20_000;
    const state = await step({ action: 'health', state: midRelease() }, deps());
    expect(state).toMatchObject({ next: 'health', waitSeconds: 15 });
    expectFacts(state.message, ['r42', 'green', '2', '3', '0.2', 'i-g3', '15']);
  });

  test('an instance not registered yet is named as such', async () => {
    delete world.health.green['i-g2'];
    const state = await step({ action: 'health', state: midRelease() }, deps());
    expect(state.message).toContain('(i-g2: not registered in the target group)');
  });

  test('the deadline comes before the health timeout: rollback', async () => {
    world.health.green['i-g3'] = { state: 'unhealthy', description: 'Request timed out' };
    clock = T0 + 3_290_000;
    const state = await step({ action: 'health', state: midRelease({ scaledUpAt: new Date(T0 + 3_000_000).toISOString() }) }, deps());
    expect(state.next).toBe('rollback');
    expectFacts(state.reason, ['2', '3', '4.8', 'i-g3', 'timed out', 'deadline', '2025-07-01T10:55:00.000Z', '3300']);
    expect(writes()).toEqual([]);
  });
});

// ---------------------------------------------------------------------------------------------------------------
// afterSmoke and approval
// ---------------------------------------------------------------------------------------------------------------

describe('afterSmoke', () => {
  beforeEach(() => duringRelease());

  test('without the gate: shift', async () => {
    const state = await step({ action: 'afterSmoke', state: midRelease({ smoke: { passed: true, summary: 'ok' } }) }, deps());
    expect(state).toMatchObject({ next: 'shift', waitSeconds: 0 });
    expect(snsMock).not.toHaveReceivedCommand(PublishCommand);
  });

  test.each([
    [{ passed: false, summary: 'GET / answered 404' }, 'smoke test failed: GET / answered 404'],
    [undefined, 'the smoke test gave no result'],
    [{ summary: 'no passed field' }, 'smoke test failed: no passed field'],
  ])('smoke %j: rollback', async (smoke, reason) => {
    const state = await step({ action: 'afterSmoke', state: midRelease({ smoke }) }, deps());
    expect(state).toMatchObject({ next: 'rollback', reason });
  });

  test('with the gate: readyAt, then approval in 30 s', async () => {
    env = { ...ENV, ...GATE };
    const state = await step({ action: 'afterSmoke', state: midRelease({ smoke: { passed: true, summary: 'ok' } }) }, deps());
    expect(state).toMatchObject({ next: 'approval', waitSeconds: 30, readyAt: new Date(T0).toISOString() });
    expect(snsMock).toHaveReceivedCommandTimes(PublishCommand, 1);
  });

  test('with the gate, throttled publish: RetryableError', async () => {
    env = { ...ENV, ...GATE };
    snsMock.on(PublishCommand).rejects(throttled());
    await expect(step({ action: 'afterSmoke', state: midRelease({ smoke: { passed: true, summary: 'ok' } }) }, deps()))
      .rejects.toMatchObject({ name: 'RetryableError' });
  });

  test('with the gate, publish denied: rollback (nobody would know to review)', async () => {
    env = { ...ENV, ...GATE };
    snsMock.on(PublishCommand).rejects(accessDenied('sns:Publish'));
    const state = await step({ action: 'afterSmoke', state: midRelease({ smoke: { passed: true, summary: 'ok' } }) }, deps());
    expect(state.next).toBe('rollback');
    expect(state.reason).toMatch(/^could not send the ready-for-review notification: sns:Publish \(.*\) failed: AccessDeniedException/);
  });
});

describe('approval', () => {
  const READY = T0 + 600_000;
  const approvalState = () => midRelease({ readyAt: new Date(READY).toISOString() });
  const run = (status: string, at: number, extra: Partial<ActionExecutionDetail> = {}): ActionExecutionDetail => ({
    stageName: 'Release', actionName: 'Approve', status: status as ActionExecutionDetail['status'], startTime: new Date(T0), lastUpdateTime: new Date(at), ...extra,
  });

  beforeEach(() => {
    duringRelease();
    env = { ...ENV, ...GATE };
    clock = READY + 60_000;
  });

  test('approved after readyAt: shift', async () => {
    world.approvals = [run('Succeeded', READY + 30_000, { updatedBy: 'reviewer' })];
    const state = await step({ action: 'approval', state: approvalState() }, deps());
    expect(state).toMatchObject({ next: 'shift', message: 'release r42: approval Approve granted by reviewer at 2025-07-01T10:10:30.000Z; shifting production' });
  });

  test('approved before the new version was on the test listener: rollback', async () => {
    world.approvals = [run('Succeeded', READY - 1_000)];
    const state = await step({ action: 'approval', state: approvalState() }, deps());
    expect(state.next).toBe('rollback');
    expect(state.reason).toMatch(/^approval Approve was approved before the new version was on the test listener \(approved at 2025-07-01T10:09:59.000Z, ready at 2025-07-01T10:10:00.000Z\)/);
  });

  test.each(['Failed', 'Abandoned'])('%s (rejected or timed out): rollback', async (status) => {
    world.approvals = [run(status, READY + 1_000, { updatedBy: 'reviewer' })];
    const state = await step({ action: 'approval', state: approvalState() }, deps());
    expect(state).toMatchObject({ next: 'rollback', reason: `approval Approve rejected or timed out (status ${status}, by reviewer)` });
  });

  test('the latest run of the action counts (a retried stage), and only the configured stage and action', async () => {
    world.approvals = [
      run('Failed', READY - 100_000, { startTime: new Date(T0 - 1_000) }),
      run('InProgress', READY, { startTime: new Date(T0 + 1_000) }),
      run('Succeeded', READY, { actionName: 'Other' }),
      run('Succeeded', READY, { stageName: 'Other', startTime: new Date(T0 + 5_000) }),
    ];
    const state = await step({ action: 'approval', state: approvalState() }, deps());
    expect(state).toMatchObject({ next: 'approval', waitSeconds: 30 });
    expectFacts(state.message, ['r42', 'waiting for approval', '30']);
  });

  test('not started yet: wait 30 s', async () => {
    const state = await step({ action: 'approval', state: approvalState() }, deps());
    expect(state).toMatchObject({ next: 'approval', waitSeconds: 30, message: 'release r42: waiting for approval Approve (not started yet); asking again in 30 s' });
  });

  test('no answer within APPROVAL_TIMEOUT_SECONDS: rollback', async () => {
    world.approvals = [run('InProgress', READY)];
    clock = READY + 1_800_001;
    const state = await step({ action: 'approval', state: approvalState() }, deps());
    expect(state).toMatchObject({ next: 'rollback' });
    expectFacts(state.reason, ['not given', '30', '2025-07-01T10:40:00.000Z']);
  });

  test('the deadline comes before the approval timeout: rollback', async () => {
    env = { ...env, APPROVAL_TIMEOUT_SECONDS: '86400' };
    clock = T0 + 3_290_000;
    const state = await step({ action: 'approval', state: approvalState() }, deps());
    expect(state.next).toBe('rollback');
    expectFacts(state.reason, ['not given', 'deadline', '2025-07-01T10:55:00.000Z', '3300']);
  });

  test('an unknown status: rollback, quoting it', async () => {
    world.approvals = [run('Superseded', READY + 1)];
    const state = await step({ action: 'approval', state: approvalState() }, deps());
    expect(state).toMatchObject({ next: 'rollback', reason: 'approval Approve has an unexpected status "Superseded"' });
  });

  test('reads every page of action executions', async () => {
    cpMock.on(ListActionExecutionsCommand)
      .resolvesOnce({ actionExecutionDetails: [], nextToken: 'p2' })
      .resolvesOnce({ actionExecutionDetails: [run('Succeeded', READY + 1)] });
    const state = await step({ action: 'approval', state: approvalState() }, deps());
    expect(state.next).toBe('shift');
    expect(cpMock).toHaveReceivedNthCommandWith(2, ListActionExecutionsCommand, { nextToken: 'p2', pipelineName: 'web-pipeline' });
  });
});

// ---------------------------------------------------------------------------------------------------------------
// shift and bake
// ---------------------------------------------------------------------------------------------------------------

describe('shift', () => {
  beforeEach(() => duringRelease());

  test('all at once: forward 100 % green, bake until now + BAKE_SECONDS', async () => {
    const state = await step({ action: 'shift', state: midRelease() }, deps());
    expect(elbMock).toHaveReceivedCommandWith(ModifyListenerCommand, { ListenerArn: LISTENER, DefaultActions: [{ Type: 'forward', TargetGroupArn: TG.green }] });
    expect(state).toMatchObject({
      next: 'bake',
      trafficPercent: 100,
      shiftedAt: new Date(T0).toISOString(),
      bakeUntil: new Date(T0 + 300_000).toISOString(),
      message: 'release r42: production sends all traffic to green (r42); baking until 2025-07-01T10:05:00.000Z',
    });
  });

  test('canary: weighted forward, live 90 / target 10, until now + CANARY_SECONDS', async () => {
    env = { ...ENV, ...CANARY };
    const state = await step({ action: 'shift', state: midRelease() }, deps());
    expect(elbMock).toHaveReceivedCommandWith(ModifyListenerCommand, {
      DefaultActions: [{ Type: 'forward', ForwardConfig: { TargetGroups: [{ TargetGroupArn: TG.blue, Weight: 90 }, { TargetGroupArn: TG.green, Weight: 10 }] } }],
    });
    expect(state).toMatchObject({ next: 'bake', trafficPercent: 10, canaryUntil: new Date(T0 + 120_000).toISOString() });
    expect(state.bakeUntil).toBeUndefined();
    expectFacts(state.message, ['r42', '10', 'green', 'r42', '90', 'r41', 'blue', '2025-07-01T10:02:00.000Z']);
  });

  test('a bake that would end after the deadline: rollback, production not touched', async () => {
    clock = T0 + 3_100_000;
    const state = await step({ action: 'shift', state: midRelease() }, deps());
    expect(state.next).toBe('rollback');
    expectFacts(state.reason, ['2025-07-01T10:56:40.000Z', 'after the release deadline', '2025-07-01T10:55:00.000Z']);
    expect(elbMock).not.toHaveReceivedCommand(ModifyListenerCommand);
  });

  test('ModifyListener throttled: RetryableError', async () => {
    elbMock.on(ModifyListenerCommand).rejects(throttled());
    await expect(step({ action: 'shift', state: midRelease() }, deps())).rejects.toMatchObject({
      name: 'RetryableError', message: `elasticloadbalancing:ModifyListener (${LISTENER}) failed: ThrottlingException: Rate exceeded`,
    });
  });
});

describe('shift: traffic step events (ADR 0010)', () => {
  let eventsMock: AwsClientStub<EventBridgeClient>;
  beforeEach(() => {
    duringRelease();
    eventsMock = mockClient(EventBridgeClient);
    eventsMock.on(PutEventsCommand).resolves({ FailedEntryCount: 0, Entries: [{ EventId: 'e-1' }] });
  });
  afterEach(() => eventsMock.restore());
  const detailOf = (n = 0) => JSON.parse(eventsMock.commandCalls(PutEventsCommand)[n].args[0].input.Entries![0].Detail!);

  test('all at once: one event, step 1 of 1 at 100 %, on the default bus with the documented source and detail-type', async () => {
    env = { ...ENV, PIPELINE_NAME: 'web-pipeline' };
    await step({ action: 'shift', state: midRelease() }, deps());
    expect(eventsMock).toHaveReceivedCommandTimes(PutEventsCommand, 1);
    const entry = eventsMock.commandCalls(PutEventsCommand)[0].args[0].input.Entries![0];
    expect(entry).toMatchObject({ Source: 'cdk-delivery-pipelines.release', DetailType: 'Release Traffic Shifted' });
    expect(entry.EventBusName).toBeUndefined();
    expect(detailOf()).toEqual({
      pipeline: 'web-pipeline',
      executionId: PIPELINE_EXECUTION,
      attemptId: EXECUTION,
      engine: 'ec2-blue-green',
      step: 1,
      steps: 1,
      percent: 100,
      shiftedAt: new Date(T0).toISOString(),
    });
  });

  test('canary: step 1 of 2 at the canary share, then step 2 of 2 at 100 %', async () => {
    env = { ...ENV, ...CANARY, PIPELINE_NAME: 'web-pipeline' };
    const canary = await step({ action: 'shift', state: midRelease() }, deps());
    expect(detailOf(0)).toMatchObject({ step: 1, steps: 2, percent: 10 });
    clock = T0 + 120_000;
    await step({ action: 'shift', state: canary }, deps());
    expect(detailOf(1)).toMatchObject({ step: 2, steps: 2, percent: 100, shiftedAt: new Date(T0 + 120_000).toISOString() });
  });

  test('PutEvents failing (access denied) or not taking the entry: the shift goes on unchanged', async () => {
    env = { ...ENV, PIPELINE_NAME: 'web-pipeline' };
    eventsMock.on(PutEventsCommand).rejects(Object.assign(new Error('not authorized'), { name: 'AccessDeniedException' }));
    const state = await step({ action: 'shift', state: midRelease() }, deps());
    expect(state).toMatchObject({ next: 'bake', trafficPercent: 100, shiftedAt: new Date(T0).toISOString() });
    eventsMock.on(PutEventsCommand).resolves({ FailedEntryCount: 1, Entries: [{ ErrorCode: 'InternalFailure', ErrorMessage: 'try again' }] });
    expect(await step({ action: 'shift', state: midRelease() }, deps())).toMatchObject({ next: 'bake', trafficPercent: 100 });
  });

  test('without PIPELINE_NAME: no event', async () => {
    await step({ action: 'shift', state: midRelease() }, deps());
    expect(eventsMock).not.toHaveReceivedCommand(PutEventsCommand);
  });

  test('the 100 % step not taken: sent again at the next bake ticks, with the time of the shift, until taken; never fails the bake', async () => {
    env = { ...ENV, PIPELINE_NAME: 'web-pipeline' };
    eventsMock.on(PutEventsCommand).rejects(Object.assign(new Error('timeout'), { name: 'TimeoutError' }));
    const shifted = await step({ action: 'shift', state: midRelease() }, deps());
    expect(shifted).toMatchObject({ next: 'bake', trafficPercent: 100, progressPending: true });
    clock = T0 + 30_000;
    const tick = await step({ action: 'bake', state: shifted }, deps());
    expect(tick).toMatchObject({ next: 'bake', progressPending: true });
    eventsMock.on(PutEventsCommand).resolves({ FailedEntryCount: 0, Entries: [{ EventId: 'e-2' }] });
    clock = T0 + 60_000;
    const sent = await step({ action: 'bake', state: tick }, deps());
    expect(sent).toMatchObject({ next: 'bake' });
    expect(sent.progressPending).toBeUndefined();
    expect(eventsMock).toHaveReceivedCommandTimes(PutEventsCommand, 3);
    expect(detailOf(2)).toMatchObject({ step: 1, steps: 1, percent: 100, attemptId: EXECUTION, shiftedAt: new Date(T0).toISOString() });
    clock = T0 + 90_000;
    await step({ action: 'bake', state: sent }, deps());
    expect(eventsMock).toHaveReceivedCommandTimes(PutEventsCommand, 3);
  });
});

describe('bake', () => {
  beforeEach(() => duringRelease());
  const baking = (overrides: Partial<ReleaseState> = {}) => midRelease({
    trafficPercent: 100, shiftedAt: new Date(T0).toISOString(), bakeUntil: new Date(T0 + 300_000).toISOString(), ...overrides,
  });

  test('no alarm, bake not over: wait at most 30 s; then the remainder; then finish', async () => {
    clock = T0 + 100_000;
    expect(await step({ action: 'bake', state: baking() }, deps())).toMatchObject({ next: 'bake', waitSeconds: 30 });
    clock = T0 + 290_500;
    expect(await step({ action: 'bake', state: baking() }, deps())).toMatchObject({ next: 'bake', waitSeconds: 10 });
    clock = T0 + 300_000;
    expect(await step({ action: 'bake', state: baking() }, deps())).toMatchObject({ next: 'finish', waitSeconds: 0 });
  });

  test('an alarm in INSUFFICIENT_DATA does not roll back', async () => {
    world.alarms['green-latency'] = 'INSUFFICIENT_DATA';
    clock = T0 + 300_000;
    expect((await step({ action: 'bake', state: baking() }, deps())).next).toBe('finish');
  });

  test('a composite alarm in ALARM rolls back', async () => {
    cwMock.on(DescribeAlarmsCommand).resolves({ MetricAlarms: [], CompositeAlarms: [{ AlarmName: 'app-health', StateValue: 'ALARM' }] });
    const state = await step({ action: 'bake', state: baking() }, deps());
    expect(state).toMatchObject({ next: 'rollback', reason: 'alarm app-health went into ALARM during the bake' });
  });

  test('asks for the alarms in batches of 100', async () => {
    env = { ...ENV, DEPLOYMENT_ALARMS: Array.from({ length: 150 }, (_, i) => `alarm-${i}`).join(',') };
    await step({ action: 'bake', state: baking() }, deps());
    expect(cwMock).toHaveReceivedCommandTimes(DescribeAlarmsCommand, 2);
    expect(calls.filter((c) => c.startsWith('DescribeAlarms'))).toEqual(['DescribeAlarms 100', 'DescribeAlarms 52']);
  });

  test('no alarms configured: no DescribeAlarms call', async () => {
    env = { ...ENV, ALARMS_GREEN: '', DEPLOYMENT_ALARMS: '' };
    clock = T0 + 300_000;
    expect((await step({ action: 'bake', state: baking() }, deps())).next).toBe('finish');
    expect(cwMock).not.toHaveReceivedCommand(DescribeAlarmsCommand);
  });

  test('canary over: shift to 100 %', async () => {
    clock = T0 + 120_000;
    const state = await step({ action: 'bake', state: midRelease({ trafficPercent: 10, canaryUntil: new Date(T0 + 120_000).toISOString() }) }, deps());
    expect(state).toMatchObject({ next: 'shift', message: 'release r42: canary on green passed; shifting all production traffic' });
  });

  test.each([
    ['the bake', baking({ bakeUntil: new Date(T0 + 3_400_000).toISOString() }), 'the bake had not ended (all production traffic on green)'],
    ['the canary', midRelease({ trafficPercent: 10, canaryUntil: new Date(T0 + 3_400_000).toISOString() }), 'the canary had not ended (10 % of production on green)'],
  ])('deadline during %s: rollback', async (_label, state, reason) => {
    clock = T0 + 3_280_000;
    const result = await step({ action: 'bake', state }, deps());
    expect(result.next).toBe('rollback');
    expectFacts(result.reason, [reason, 'deadline', '2025-07-01T10:55:00.000Z', '3300']);
  });
});

describe('deadline in each waiting step', () => {
  beforeEach(() => duringRelease());

  test('drain', async () => {
    world.groups.green.instances = ['i-old'];
    clock = T0 + 3_290_000;
    const state = await step({ action: 'drain', state: midRelease() }, deps());
    expect(state.next).toBe('rollback');
    expectFacts(state.reason, ['green', 'web-green', '1', 'deadline', '2025-07-01T10:55:00.000Z', '3300']);
  });

  test.each([
    ['start (stack)', 'failed'],
    ['health', 'rollback'],
    ['approval', 'rollback'],
    ['bake', 'rollback'],
  ])('%s: never a wait that ends after the deadline', async (which, verdict) => {
    clock = T0 + 3_300_000 - 10_000; // 10 s left: no wait of 15 or 30 s fits
    env = { ...ENV, ...GATE };
    world.stackStatus = 'UPDATE_IN_PROGRESS';
    world.health.green['i-g1'] = { state: 'initial' };
    const events: Record<string, unknown> = {
      'start (stack)': startEvent(),
      'health': { action: 'health', state: midRelease({ scaledUpAt: new Date(clock - 60_000).toISOString() }) },
      'approval': { action: 'approval', state: midRelease({ readyAt: new Date(clock - 60_000).toISOString() }) },
      'bake': { action: 'bake', state: midRelease({ trafficPercent: 100, bakeUntil: new Date(clock + 60_000).toISOString() }) },
    };
    const state = await step(events[which], deps());
    expect(state.next).toBe(verdict);
    expect(state.waitSeconds).toBe(0);
  });
});

// ---------------------------------------------------------------------------------------------------------------
// finish
// ---------------------------------------------------------------------------------------------------------------

describe('finish', () => {
  beforeEach(() => {
    duringRelease();
    world.listener = forward('green');
  });
  const finishing = () => midRelease({ trafficPercent: 100, shiftedAt: new Date(T0).toISOString(), bakeUntil: new Date(T0).toISOString() });

  test('the live color first, then the lock, then the old color down, then the notification', async () => {
    const state = await step({ action: 'finish', state: finishing() }, deps());
    expect(state).toMatchObject({ next: 'succeeded', waitSeconds: 0, message: 'production runs r42 on green' });
    expect(calls).toEqual([`PutParameter ${LIVE}=green`, `PutParameter ${LOCK}=free`, 'UpdateAutoScalingGroup blue min=0 max=- desired=0', 'Publish Released: r42']);
  });

  test('scaling the old color fails: still succeeded, the live color was written first, the message says what was not done', async () => {
    asgMock.on(UpdateAutoScalingGroupCommand).rejects(accessDenied('autoscaling:UpdateAutoScalingGroup'));
    const state = await step({ action: 'finish', state: finishing() }, deps());
    expect(state.next).toBe('succeeded');
    expect(state.message).toMatch(/^production runs r42 on green; could not scale the old blue group web-blue to 0: .*AccessDeniedException: User: .* not authorized/);
    const live = ssmMock.commandCalls(PutParameterCommand).find((c) => c.args[0].input.Name === LIVE)!;
    const scale = asgMock.commandCalls(UpdateAutoScalingGroupCommand)[0];
    expect(live.calledBefore(scale)).toBe(true);
    expect(calls.slice(0, 2)).toEqual([`PutParameter ${LIVE}=green`, `PutParameter ${LOCK}=free`]);
    expect(snsMock.commandCalls(PublishCommand)[0].args[0].input.Message).toContain('could not scale the old blue group');
  });

  test('every best-effort step fails (throttled too): still succeeded, naming each', async () => {
    ssmMock.on(PutParameterCommand, { Name: LOCK }).rejects(throttled());
    asgMock.on(UpdateAutoScalingGroupCommand).rejects(throttled());
    snsMock.on(PublishCommand).rejects(throttled());
    const state = await step({ action: 'finish', state: finishing() }, deps());
    expect(state.next).toBe('succeeded');
    expectFacts(state.message, ['r42', 'green', '/web/release-lock', 'ThrottlingException', 'blue', 'web-blue', '0', 'autoscaling:UpdateAutoScalingGroup', 'web-blue', 'failed', 'ThrottlingException', 'ThrottlingException']);
    expect(world.params[LIVE]).toBe('green');
  });

  test('the live-color write fails: an error (the state machine rolls back), nothing after it done', async () => {
    ssmMock.on(PutParameterCommand, { Name: LIVE }).rejects(accessDenied('ssm:PutParameter'));
    await expect(step({ action: 'finish', state: finishing() }, deps())).rejects.toMatchObject({
      name: 'ReleaseStepError', message: expect.stringMatching(/^ssm:PutParameter \(\/web\/live-color\) failed: AccessDeniedException/),
    });
    expect(asgMock).not.toHaveReceivedCommand(UpdateAutoScalingGroupCommand);
    expect(world.params[LOCK]).toBe(`running ${EXECUTION}`);
  });

  test('the live-color write throttled: RetryableError (finish runs again)', async () => {
    ssmMock.on(PutParameterCommand, { Name: LIVE }).rejects(throttled());
    await expect(step({ action: 'finish', state: finishing() }, deps())).rejects.toMatchObject({ name: 'RetryableError' });
  });

  test('the live-color parameter is gone (its stack deleted at teardown): the write that created it is deleted again, a real error, nothing recorded', async () => {
    delete world.params[LIVE];
    await expect(step({ action: 'finish', state: finishing() }, deps())).rejects.toMatchObject({
      name: 'ReleaseStepError', message: expect.stringMatching(/^ssm:PutParameter \(\/web\/live-color\) failed: StateParameterGoneError: .*\/web\/live-color did not exist/),
    });
    expect(calls.filter((c) => c.startsWith('DeleteParameter'))).toEqual([`DeleteParameter ${LIVE}`]);
    expect(world.params[LIVE]).toBeUndefined();
    expect(asgMock).not.toHaveReceivedCommand(UpdateAutoScalingGroupCommand);
  });

  test('the parameter is gone and deleting it again fails: a real error (never retried, a retry would take it for the stack\'s), naming it to delete by hand', async () => {
    delete world.params[LIVE];
    ssmMock.on(DeleteParameterCommand).rejects(throttled());
    const error = await step({ action: 'finish', state: finishing() }, deps()).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ReleaseStepError);
    expect(error).not.toBeInstanceOf(RetryableError);
    expectFacts((error as Error).message, ['ssm:PutParameter', '/web/live-color', 'StateParameterGoneError', '/web/live-color', 'ThrottlingException', 'delete it by hand']);
  });

  test('first release: no old color to scale down', async () => {
    const state = await step({ action: 'finish', state: { ...finishing(), live: 'none', previousRelease: 'none' } }, deps());
    expect(state.message).toBe('production runs r42 on green');
    expect(asgMock).not.toHaveReceivedCommand(UpdateAutoScalingGroupCommand);
  });
});

// ---------------------------------------------------------------------------------------------------------------
// rollback
// ---------------------------------------------------------------------------------------------------------------

describe('rollback', () => {
  beforeEach(() => duringRelease());

  test('the live-color write failed in finish: production back to blue, verified; the live color never written', async () => {
    world.listener = forward('green');
    const state = await step({
      action: 'rollback',
      state: midRelease({
        trafficPercent: 100,
        caught: { Error: 'ReleaseStepError', Cause: JSON.stringify({ errorType: 'ReleaseStepError', errorMessage: 'ssm:PutParameter (/web/live-color) failed: AccessDeniedException: no' }) },
      }),
    }, deps());
    expect(state).toMatchObject({ next: 'failed', waitSeconds: 0 });
    expectFacts(state.message, ['rolled back', 'ReleaseStepError', 'ssm:PutParameter', '/web/live-color', 'failed', 'AccessDeniedException', 'r41', 'blue', 'everywhere']);
    expect(calls).toEqual([
      'GetParameters',
      'DescribeListeners',
      'ModifyListener blue',
      'DescribeListeners',
      'UpdateAutoScalingGroup green min=0 max=- desired=0',
      `PutParameter ${LOCK}=free`,
      'Publish Rolled back: r42',
    ]);
    expect(elbMock).toHaveReceivedCommandWith(ModifyListenerCommand, { ListenerArn: LISTENER, DefaultActions: [{ Type: 'forward', TargetGroupArn: TG.blue }] });
    expect(world.params[LIVE]).toBe('blue');
  });

  test('the listener does not show the change: RetryableError, and nothing said or freed', async () => {
    world.listener = forward('green');
    elbMock.on(ModifyListenerCommand).callsFake((input) => {
      calls.push(`ModifyListener ${describeActions(input.DefaultActions)}`);
      return {};
    });
    await expect(step({ action: 'rollback', state: midRelease({ trafficPercent: 100 }) }, deps())).rejects.toMatchObject({
      name: 'RetryableError', message: 'rollback of release r42: the production listener still does: forward to green',
    });
    expect(calls.slice(-2)).toEqual(['ModifyListener blue', 'DescribeListeners']);
    expect(world.params[LOCK]).toBe(`running ${EXECUTION}`);
    expect(world.groups.green.desired).toBe(3);
  });

  test('the listener shows the target although trafficPercent says 0 (a shift whose answer was lost): restored', async () => {
    world.listener = forward('green');
    await step({ action: 'rollback', state: midRelease({ trafficPercent: 0, reason: 'x' }) }, deps());
    expect(calls).toContain('ModifyListener blue');
    expect(forwardedTargetGroups(world.listener)).toEqual([TG.blue]);
  });

  test('nothing live: back to the fixed 503 with NOT_RELEASED_BODY', async () => {
    world.params[LIVE] = 'none';
    world.listener = forward('green');
    const state = await step({ action: 'rollback', state: midRelease({ live: 'none', previousRelease: 'none', trafficPercent: 100, reason: 'alarm x went into ALARM during the bake' }) }, deps());
    expect(elbMock).toHaveReceivedCommandWith(ModifyListenerCommand, {
      DefaultActions: [{ Type: 'fixed-response', FixedResponseConfig: { StatusCode: '503', ContentType: 'text/plain', MessageBody: NOT_RELEASED } }],
    });
    expectFacts(state.message, ['rolled back', 'ALARM', '503', 'nothing was released']);
    expect(world.listener).toEqual(fixed503);
  });

  test('idempotent: a second rollback changes nothing and says the same about production', async () => {
    world.listener = forward('green');
    const state = midRelease({ trafficPercent: 100, reason: 'smoke test failed: x' });
    const first = await step({ action: 'rollback', state }, deps());
    calls = [];
    const second = await step({ action: 'rollback', state }, deps());
    expectFacts(first.message, ['rolled back', 'failed', 'r41', 'blue', 'everywhere']);
    expect(second.next).toBe('failed');
    expectFacts(second.message, ['rolled back', 'failed', 'r42', 'holds no lock', 'nothing left to undo', 'r41', 'blue', 'everywhere']);
    expect(writes()).toEqual([]);
  });

  test('a lock held by another release: nothing touched, not even the listener', async () => {
    world.params[LOCK] = `running ${OTHER_EXECUTION}`;
    world.listener = forward('green');
    const state = await step({ action: 'rollback', state: midRelease({ trafficPercent: 100, reason: 'x' }) }, deps());
    expectFacts(state.message, ['rolled back', 'r42', 'holds no lock', 'nothing left to undo', OTHER_EXECUTION, 'r41', 'blue', 'everywhere']);
    expect(calls).toEqual(['GetParameters']);
  });

  test('a start that failed after the lock (the Catch gives the start\'s input only): the executionArn of the event finds the lock', async () => {
    const state = await step({
      action: 'rollback',
      executionArn: EXECUTION,
      state: { release: RELEASE, pipelineExecutionId: PIPELINE_EXECUTION, caught: { Error: 'ReleaseStepError', Cause: 'plain text cause' } },
    }, deps());
    expectFacts(state.message, ['rolled back', 'ReleaseStepError', 'r41', 'blue', 'everywhere']);
    expect(writes()).toEqual(['UpdateAutoScalingGroup green min=0 max=- desired=0', `PutParameter ${LOCK}=free`, 'Publish Rolled back: r42']);
  });

  test('finish\'s live-color write landed but its answer was lost: production stays on green, said so', async () => {
    world.params[LIVE] = 'green';
    world.listener = forward('green');
    const state = await step({ action: 'rollback', state: midRelease({ trafficPercent: 100, caught: { Error: 'RetryableError', Cause: 'timeout' } }) }, deps());
    expect(state.next).toBe('succeeded');
    expectFacts(state.message, ['not rolled back', 'RetryableError', 'green', 'already recorded as live', 'r42', 'green']);
    expect(calls.filter((c) => c.startsWith('ModifyListener'))).toEqual([]);
    expect(writes()).toEqual([`PutParameter ${LOCK}=free`, 'UpdateAutoScalingGroup blue min=0 max=- desired=0', 'Publish Released: r42']);
  });

  test('the notification fails: still rolled back, said so', async () => {
    snsMock.on(PublishCommand).rejects(accessDenied('sns:Publish'));
    const state = await step({ action: 'rollback', state: midRelease({ reason: 'x' }) }, deps());
    expect(state.message).toMatch(/^rolled back \(x\): production runs r41 on blue everywhere; could not send the notification: AccessDeniedException/);
    expect(world.params[LOCK]).toBe('free');
  });

  test('throttled: RetryableError, the lock kept until the rollback is done', async () => {
    asgMock.on(UpdateAutoScalingGroupCommand).rejects(throttled());
    await expect(step({ action: 'rollback', state: midRelease({ reason: 'x' }) }, deps())).rejects.toMatchObject({ name: 'RetryableError' });
    expect(world.params[LOCK]).toBe(`running ${EXECUTION}`);
  });
});

// ---------------------------------------------------------------------------------------------------------------
// Configuration, events, helpers
// ---------------------------------------------------------------------------------------------------------------

describe('configuration', () => {
  test('reads the environment', () => {
    const parsed = readConfig({ ...ENV, ...GATE, ...CANARY });
    expect(parsed).toMatchObject({
      ok: true,
      value: {
        colors: { blue: { groupName: 'web-blue', targetGroupArn: TG.blue, alarms: ['blue-5xx', 'blue-latency'], releaseParameter: REL_BLUE } },
        defaultCapacity: 2,
        releaseDeadlineSeconds: 3300,
        canaryPercent: 10,
        canarySeconds: 120,
        deploymentAlarms: ['app-errors'],
        approval: { pipelineName: 'web-pipeline', actionName: 'Approve', stageName: 'Release', timeoutSeconds: 1800 },
      },
    });
  });

  test.each([
    [{ DEFAULT_CAPACITY: '0' }, 'DEFAULT_CAPACITY must be an integer from 1 to 20, got "0"'],
    [{ DEFAULT_CAPACITY: '21' }, 'DEFAULT_CAPACITY must be an integer from 1 to 20, got "21"'],
    [{ DEFAULT_CAPACITY: '2.5' }, 'DEFAULT_CAPACITY must be an integer from 1 to 20, got "2.5"'],
    [{ CANARY_PERCENT: '100' }, 'CANARY_PERCENT must be an integer from 0 to 99, got "100"'],
    [{ CANARY_PERCENT: '10', CANARY_SECONDS: '' }, 'CANARY_SECONDS must be set when CANARY_PERCENT is not 0'],
    [{ BAKE_SECONDS: '-1' }, 'BAKE_SECONDS must be an integer from 0 to 3600, got "-1"'],
    [{ RELEASE_DEADLINE_SECONDS: '7200' }, 'RELEASE_DEADLINE_SECONDS must be an integer from 60 to 3600, got "7200"'],
    [{ STACK_NAME: '', LOCK_PARAMETER: ' ' }, 'environment variable(s) not set: LOCK_PARAMETER, STACK_NAME'],
    [{ APPROVAL_PIPELINE_NAME: 'p' }, 'the approval gate needs APPROVAL_PIPELINE_NAME, APPROVAL_ACTION_NAME, APPROVAL_TIMEOUT_SECONDS together; not set: APPROVAL_ACTION_NAME, APPROVAL_TIMEOUT_SECONDS'],
    [{ APPROVAL_STAGE_NAME: 'Release' }, 'APPROVAL_STAGE_NAME is set without the approval gate'],
    [{ NOT_RELEASED_BODY: 'x'.repeat(1025) }, 'NOT_RELEASED_BODY must be at most 1024 characters, got 1025'],
  ])('refuses %j', (overrides, error) => {
    const parsed = readConfig({ ...ENV, ...overrides });
    expect(parsed.ok).toBe(false);
    expect(!parsed.ok && parsed.error).toContain(error);
  });

  test('a bad configuration: failed with a clear message, no AWS call', async () => {
    env = { ...ENV, DEFAULT_CAPACITY: 'many' };
    const state = await step(startEvent(), deps());
    expect(state.next).toBe('failed');
    expectFacts(state.message, ['invalid configuration', 'DEFAULT_CAPACITY', '1', '20', '"many"', 'changed nothing']);
    expect(calls).toEqual([]);
  });
});

describe('events', () => {
  test.each([
    [undefined],
    [{ action: 'explode', state: {} }],
    ['start'],
  ])('not a step event (%j): a real error', async (event) => {
    await expect(step(event, deps())).rejects.toThrow(/^not an EC2 release step event/);
  });

  test('a later step with a broken state: a real error naming what is missing', async () => {
    await expect(step({ action: 'health', state: { release: RELEASE, target: 'green', live: 'green' } }, deps()))
      .rejects.toThrow('the health step got a state without a valid executionArn, previousRelease, startedAt, target, capacity');
  });
});

describe('rollbackReason', () => {
  test('joins the reason and the caught error, reading Lambda\'s JSON Cause', () => {
    expect(rollbackReason({ reason: 'r', caught: { Error: 'E', Cause: JSON.stringify({ errorMessage: 'm', trace: [] }) } })).toBe('r; E: m');
    expect(rollbackReason({ caught: { Error: 'States.Timeout' } })).toBe('States.Timeout');
    expect(rollbackReason({})).toBe('no reason given');
  });
});

describe('forwardedTargetGroups', () => {
  test('weights of 0 do not count; a plain TargetGroupArn does', () => {
    expect(forwardedTargetGroups([{ Type: 'forward', ForwardConfig: { TargetGroups: [{ TargetGroupArn: 'a', Weight: 0 }, { TargetGroupArn: 'b', Weight: 5 }] } }])).toEqual(['b']);
    expect(forwardedTargetGroups([{ Type: 'forward', TargetGroupArn: 'a' }])).toEqual(['a']);
    expect(forwardedTargetGroups(fixed503)).toEqual([]);
  });
});

// ---------------------------------------------------------------------------------------------------------------
// Edges found by mutation testing (stryker/ec2-release.config.json)
// ---------------------------------------------------------------------------------------------------------------

const loggedLines = (stream: 'log' | 'error'): Array<Record<string, unknown>> =>
  (console[stream] as unknown as jest.Mock).mock.calls.map((args: unknown[]) => JSON.parse(String(args[0])));

describe('logging of a step', () => {
  test('an ordinary step: one INFO line with the action, next, wait, release, target and message', async () => {
    const state = await step(startEvent(), deps());
    expect(loggedLines('log')).toEqual([{
      level: 'INFO', message: 'ec2 release step', action: 'start', next: 'health', waitSeconds: 15, release: RELEASE, target: 'green', result: state.message,
    }]);
  });

  test('a failed release: WARN', async () => {
    world.running = [{ executionArn: OTHER_EXECUTION, name: 'exec-41' }];
    await step(startEvent(), deps());
    expect(loggedLines('log')).toEqual([expect.objectContaining({ level: 'WARN', action: 'start', next: 'failed' })]);
  });

  test('a thrown error: an ERROR line saying whether it is retryable', async () => {
    sfnMock.on(ListExecutionsCommand).rejects(throttled());
    await expect(step(startEvent(), deps())).rejects.toThrow();
    elbMock.on(DescribeTargetHealthCommand).rejects(accessDenied('elasticloadbalancing:DescribeTargetHealth'));
    duringRelease();
    await expect(step({ action: 'health', state: midRelease() }, deps())).rejects.toThrow();
    expect(loggedLines('error')).toEqual([
      expect.objectContaining({ level: 'ERROR', message: 'ec2 release step threw', action: 'start', retryable: true }),
      expect.objectContaining({ level: 'ERROR', message: 'ec2 release step threw', action: 'health', retryable: false }),
    ]);
  });
});

describe('events and state, exactly', () => {
  test('not a step event: the message lists the actions and quotes the event', async () => {
    await expect(step({ action: 'explode' }, deps())).rejects.toThrow(
      'not an EC2 release step event: expected { action: one of start|drain|health|afterSmoke|approval|shift|bake|finish|rollback, state }, got {"action":"explode"}');
    await expect(step(undefined, deps())).rejects.toThrow(/, got undefined$/);
    await expect(step({ action: 7 }, deps())).rejects.toThrow(/^not an EC2 release step event/);
  });

  test('a bad configuration at a later step keeps the state and names the step', async () => {
    env = { ...ENV, BAKE_SECONDS: 'x' };
    const state = await step({ action: 'bake', state: midRelease({ trafficPercent: 100 }) }, deps());
    expect(state).toMatchObject({ next: 'failed', waitSeconds: 0, release: RELEASE, target: 'green', trafficPercent: 100 });
    expectFacts(state.message, ['invalid configuration', 'BAKE_SECONDS', '0', '3600', '"x"', 'changed nothing']);
  });

  test.each<[Partial<ReleaseState>, string]>([
    [{ release: '' }, 'release'],
    [{ executionArn: 42 as unknown as string }, 'executionArn'],
    [{ previousRelease: '' }, 'previousRelease'],
    [{ startedAt: undefined }, 'startedAt'],
    [{ live: 'purple' as never }, 'live'],
    [{ target: 'red' as never }, 'target'],
    [{ target: 'blue' as const }, 'target'],
    [{ capacity: 0 }, 'capacity'],
    [{ capacity: 1.5 }, 'capacity'],
  ])('a state with %j is refused, naming only %s', async (overrides, problem) => {
    await expect(step({ action: 'drain', state: midRelease(overrides) }, deps())).rejects.toThrow(`the drain step got a state without a valid ${problem}`);
    await expect(step({ action: 'drain', state: midRelease(overrides) }, deps())).rejects.toThrow(new RegExp(`valid ${problem}$`));
  });

  test('a state of capacity 1 and a live color of none is valid', async () => {
    duringRelease();
    world.groups.green.instances = [];
    const state = await step({ action: 'drain', state: midRelease({ capacity: 1, live: 'none', previousRelease: 'none' }) }, deps());
    expect(state).toMatchObject({ next: 'health', capacity: 1 });
    expectFacts(state.message, ['r42', 'green', 'web-green', 'scaled to', '1', 'production still', '503']);
    expect(calls).toContain('UpdateAutoScalingGroup green min=1 max=2 desired=1');
  });

  test('a state that is not an object counts as empty', async () => {
    await expect(step({ action: 'health', state: 'garbage' }, deps())).rejects.toThrow(
      'the health step got a state without a valid release, executionArn, previousRelease, startedAt, live, target, capacity');
  });
});

describe('configuration, exactly', () => {
  test('the whole configuration, optional values unset', () => {
    const { TEST_URL: _t, PRODUCTION_URL: _p, NOTIFY_TOPIC_ARN: _n, CANARY_SECONDS: _c, ...rest } = ENV;
    const parsed = readConfig({ ...rest, ALARMS_BLUE: ' a , ,b,a ', ALARMS_GREEN: undefined, DEPLOYMENT_ALARMS: 'd,d' });
    expect(parsed).toEqual({
      ok: true,
      value: {
        liveColorParameter: LIVE,
        lockParameter: LOCK,
        colors: {
          blue: { releaseParameter: REL_BLUE, groupName: GROUP.blue, targetGroupArn: TG.blue, alarms: ['a', 'b'] },
          green: { releaseParameter: REL_GREEN, groupName: GROUP.green, targetGroupArn: TG.green, alarms: [] },
        },
        productionListenerArn: LISTENER,
        testListenerArn: TEST_LISTENER,
        notReleasedBody: NOT_RELEASED,
        defaultCapacity: 2,
        releaseDeadlineSeconds: 3300,
        healthTimeoutSeconds: 900,
        bakeSeconds: 300,
        canaryPercent: 0,
        canarySeconds: 0,
        deploymentAlarms: ['d'],
        stackName: 'web-fleet',
        stateMachineArn: STATE_MACHINE,
        testUrl: undefined,
        productionUrl: undefined,
        notifyTopicArn: undefined,
        approval: undefined,
      },
    });
  });

  test('values are trimmed; the approval gate without a stage', () => {
    const { APPROVAL_STAGE_NAME: _s, ...gate } = GATE;
    const parsed = readConfig({ ...ENV, ...gate, STACK_NAME: '  web-fleet ', DEFAULT_CAPACITY: ' 4 ' });
    expect(parsed).toMatchObject({ ok: true, value: { stackName: 'web-fleet', defaultCapacity: 4, approval: { pipelineName: 'web-pipeline', actionName: 'Approve', stageName: undefined, timeoutSeconds: 1800 } } });
  });

  test('every problem at once, joined by "; "', () => {
    const parsed = readConfig({ ...ENV, NOT_RELEASED_BODY: undefined, STACK_NAME: undefined, HEALTH_TIMEOUT_SECONDS: '0', CANARY_PERCENT: '5', CANARY_SECONDS: '0' });
    expect(parsed).toEqual({
      ok: false,
      error: 'environment variable(s) not set: STACK_NAME; environment variable NOT_RELEASED_BODY is not set; '
        + 'HEALTH_TIMEOUT_SECONDS must be an integer from 1 to 3600, got "0"; CANARY_SECONDS must be an integer from 1 to 3600, got "0"',
    });
  });

  test.each([
    [{ DEFAULT_CAPACITY: '1' }, 'defaultCapacity', 1],
    [{ DEFAULT_CAPACITY: '20' }, 'defaultCapacity', 20],
    [{ RELEASE_DEADLINE_SECONDS: '60' }, 'releaseDeadlineSeconds', 60],
    [{ RELEASE_DEADLINE_SECONDS: '3600' }, 'releaseDeadlineSeconds', 3600],
    [{ HEALTH_TIMEOUT_SECONDS: '1' }, 'healthTimeoutSeconds', 1],
    [{ HEALTH_TIMEOUT_SECONDS: '3600' }, 'healthTimeoutSeconds', 3600],
    [{ BAKE_SECONDS: '0' }, 'bakeSeconds', 0],
    [{ BAKE_SECONDS: '3600' }, 'bakeSeconds', 3600],
    [{ CANARY_PERCENT: '99', CANARY_SECONDS: '1' }, 'canarySeconds', 1],
    [{ CANARY_PERCENT: '1', CANARY_SECONDS: '3600' }, 'canaryPercent', 1],
    [{ NOT_RELEASED_BODY: 'x'.repeat(1024) }, 'notReleasedBody', 'x'.repeat(1024)],
    [{ NOT_RELEASED_BODY: '' }, 'notReleasedBody', ''],
  ])('accepts the bound %j', (overrides, key, value) => {
    const parsed = readConfig({ ...ENV, ...overrides });
    expect(parsed.ok && (parsed.value as unknown as Record<string, unknown>)[key]).toEqual(value);
  });

  test.each([
    [{ RELEASE_DEADLINE_SECONDS: '59' }, 'RELEASE_DEADLINE_SECONDS must be an integer from 60 to 3600, got "59"'],
    [{ HEALTH_TIMEOUT_SECONDS: '3601' }, 'HEALTH_TIMEOUT_SECONDS must be an integer from 1 to 3600, got "3601"'],
    [{ BAKE_SECONDS: '3601' }, 'BAKE_SECONDS must be an integer from 0 to 3600, got "3601"'],
    [{ CANARY_PERCENT: '10', CANARY_SECONDS: '3601' }, 'CANARY_SECONDS must be an integer from 1 to 3600, got "3601"'],
    [{ CANARY_SECONDS: '3601' }, 'CANARY_SECONDS must be an integer from 0 to 3600, got "3601"'],
    [{ DEFAULT_CAPACITY: '99999999999999999999' }, 'DEFAULT_CAPACITY must be an integer from 1 to 20, got "99999999999999999999"'],
    [{ DEFAULT_CAPACITY: '3x' }, 'DEFAULT_CAPACITY must be an integer from 1 to 20, got "3x"'],
    [{ DEFAULT_CAPACITY: 'x3' }, 'DEFAULT_CAPACITY must be an integer from 1 to 20, got "x3"'],
    [{ ...GATE, APPROVAL_TIMEOUT_SECONDS: '0' }, 'APPROVAL_TIMEOUT_SECONDS must be an integer from 1 to 86400, got "0"'],
    [{ ...GATE, APPROVAL_TIMEOUT_SECONDS: '86401' }, 'APPROVAL_TIMEOUT_SECONDS must be an integer from 1 to 86400, got "86401"'],
    [{ APPROVAL_STAGE_NAME: 'Release' }, 'APPROVAL_STAGE_NAME is set without the approval gate (APPROVAL_PIPELINE_NAME, APPROVAL_ACTION_NAME, APPROVAL_TIMEOUT_SECONDS)'],
  ])('refuses %j, exactly', (overrides, error) => {
    expect(readConfig({ ...ENV, ...overrides })).toEqual({ ok: false, error });
  });

  test('the approval gate with a blank stage name has no stage', () => {
    const parsed = readConfig({ ...ENV, ...GATE, APPROVAL_STAGE_NAME: ' ' });
    expect(parsed.ok && parsed.value.approval?.stageName).toBeUndefined();
  });
});

describe('start, more', () => {
  test('the release and ids may come from the state (a start run again after a stack wait)', async () => {
    const state = await step({ action: 'start', state: { release: RELEASE, pipelineExecutionId: 'p-1', executionArn: EXECUTION, startedAt: new Date(T0).toISOString() } }, deps());
    expect(state).toMatchObject({ next: 'health', release: RELEASE, pipelineExecutionId: 'p-1', executionArn: EXECUTION, startedAt: new Date(T0).toISOString() });
  });

  test('a start event without a release: refused, saying it is missing; non-string ids are not copied', async () => {
    const state = await step({ action: 'start', input: { pipelineExecutionId: 7 }, executionArn: EXECUTION, startedAt: 5 }, deps());
    expect(state).toEqual({ next: 'failed', waitSeconds: 0, message: 'invalid release id missing: expected 1 to 128 characters A-Z a-z 0-9 . _ -; this release changed nothing', executionArn: EXECUTION });
  });

  test('an empty executionArn and a missing startedAt are refused', async () => {
    expectFacts((await step({ ...startEvent(), executionArn: '' }, deps())).message, ['r42', 'changed nothing']);
    expectFacts((await step({ ...startEvent(), startedAt: undefined }, deps())).message, ['r42', 'changed nothing']);
    expect(calls).toEqual([]);
  });

  test('with the approval gate, an empty pipelineExecutionId is refused; without the gate none is needed', async () => {
    env = { ...ENV, ...GATE };
    expect((await step({ ...startEvent(), input: { release: RELEASE, pipelineExecutionId: '' } }, deps())).next).toBe('failed');
    env = { ...ENV };
    expect((await step({ ...startEvent(), input: { release: RELEASE } }, deps())).next).toBe('health');
  });

  test('asks Step Functions for up to 100 RUNNING executions of its state machine; an execution without a name', async () => {
    sfnMock.on(ListExecutionsCommand).resolves({ executions: [{ executionArn: undefined, stateMachineArn: STATE_MACHINE, status: 'RUNNING', startDate: new Date(T0) } as never] });
    const state = await step(startEvent(), deps());
    expectFacts(state.message, ['is running', 'changed nothing']);
    expect(sfnMock).toHaveReceivedCommandWith(ListExecutionsCommand, { stateMachineArn: STATE_MACHINE, statusFilter: 'RUNNING', maxResults: 100 });
  });

  test('a missing SSM parameter: refused, naming it', async () => {
    delete world.params[REL_BLUE];
    const state = await step(startEvent(), deps());
    expectFacts(state.message, ['r42', 'SSM', 'not found', REL_BLUE, 'changed nothing']);
    expect(ssmMock).toHaveReceivedCommandWith(GetParametersCommand, { Names: [LIVE, LOCK, REL_BLUE, REL_GREEN] });
  });

  test('the lock already held by this execution is not written again', async () => {
    world.params[LOCK] = `running ${EXECUTION}`;
    await step(startEvent(), deps());
    expect(calls.filter((c) => c.startsWith(`PutParameter ${LOCK}`))).toEqual([]);
  });

  test('a stack without a status is not waited for; the stack is asked by name', async () => {
    cfnMock.on(DescribeStacksCommand).resolves({ Stacks: [] });
    expect((await step(startEvent(), deps())).next).toBe('health');
    expect(cfnMock).toHaveReceivedCommandWith(DescribeStacksCommand, { StackName: 'web-fleet' });
  });

  test('a stack in UPDATE_COMPLETE_CLEANUP_IN_PROGRESS is waited for; one wait may end exactly at the deadline', async () => {
    world.stackStatus = 'UPDATE_COMPLETE_CLEANUP_IN_PROGRESS';
    clock = T0 + 3_300_000 - 30_000;
    expect(await step(startEvent(), deps())).toMatchObject({ next: 'start', waitSeconds: 30 });
  });

  test('the live group at 0: the default capacity; a live group that is missing: an error naming it', async () => {
    world.groups.blue.desired = 0;
    expect(await step(startEvent(), deps())).toMatchObject({ capacity: 2 });
    asgMock.on(DescribeAutoScalingGroupsCommand).resolves({ AutoScalingGroups: [] });
    await expect(step(startEvent(), deps())).rejects.toMatchObject({ name: 'ReleaseStepError', message: 'Auto Scaling group web-green (green) not found' });
  });

  test('a target group with desired capacity but no instances yet is scaled to 0 first', async () => {
    world.groups.green = { min: 1, max: 2, desired: 1, instances: [] };
    world.params[REL_GREEN] = 'r40';
    const state = await step(startEvent(), deps());
    expectFacts(state.message, ['r42', 'green', 'web-green', 'still has', '0', '0']);
  });

  test('same execution and lock but an older release on the target: drained, not repeated', async () => {
    world.params[LOCK] = `running ${EXECUTION}`;
    world.params[REL_GREEN] = 'r40';
    world.groups.green = { min: 1, max: 2, desired: 1, instances: ['i-old'] };
    expect((await step(startEvent(), deps())).next).toBe('drain');
  });

  test('a drain that would pass the deadline: rollback with the group named', async () => {
    world.groups.green = { min: 1, max: 2, desired: 1, instances: ['i-old'] };
    clock = T0 + 3_290_000;
    const state = await step(startEvent(), deps());
    expect(state).toMatchObject({ next: 'rollback', reason: 'green group web-green still has 1 instance(s), and the release deadline 2025-07-01T10:55:00.000Z (3300 s after the start) has come' });
  });

  test('production left on the target by a stopped release: repaired, said so in the message, verified', async () => {
    world.listener = forward('green');
    const state = await step(startEvent(), deps());
    expect(state.message).toBe('release r42: green group web-green scaled to 3 instance(s); production still runs r41 on blue'
      + "; production's listener did forward to green and was returned to the recorded live color first");
    expect(elbMock).toHaveReceivedCommandWith(ModifyListenerCommand, { ListenerArn: LISTENER, DefaultActions: [{ Type: 'forward', TargetGroupArn: TG.blue }] });
    expect(calls.slice(4, 7)).toEqual(['DescribeListeners', 'ModifyListener blue', 'DescribeListeners']);
  });

  test('a first release with production not on the 503: back to the fixed 503 with NOT_RELEASED_BODY, and the drain message says so', async () => {
    world = unreleasedWorld();
    world.listener = forward('blue');
    world.groups.blue = { min: 1, max: 2, desired: 1, instances: ['i-old'] };
    const state = await step(startEvent(), deps());
    expect(elbMock).toHaveReceivedCommandWith(ModifyListenerCommand, {
      ListenerArn: LISTENER, DefaultActions: [{ Type: 'fixed-response', FixedResponseConfig: { StatusCode: '503', ContentType: 'text/plain', MessageBody: NOT_RELEASED } }],
    });
    expect(state.message).toBe("release r42: blue group web-blue still has 1 instance(s) from an earlier release; scaling it to 0 first; production's listener did forward to blue and was returned to the recorded live color first");
  });

  test('the repair not shown yet: RetryableError describing the listener', async () => {
    world.listener = [{ Type: 'redirect' }, { Type: 'fixed-response', FixedResponseConfig: { StatusCode: '404' } }];
    const stale = world.listener;
    elbMock.on(ModifyListenerCommand, { ListenerArn: LISTENER }).callsFake(() => ({}));
    elbMock.on(DescribeListenersCommand).resolves({ Listeners: [{ ListenerArn: 'other', DefaultActions: [] }, { ListenerArn: LISTENER, DefaultActions: stale }] });
    await expect(step(startEvent(), deps())).rejects.toMatchObject({
      name: 'RetryableError', message: 'release r42: the production listener still does: a redirect action, a fixed 404 response',
    });
  });

  test('a listener that is not found: a real error', async () => {
    elbMock.on(DescribeListenersCommand).resolves({ Listeners: [] });
    await expect(step(startEvent(), deps())).rejects.toMatchObject({ name: 'ReleaseStepError', message: `listener ${LISTENER} not found` });
  });
});

describe('health, more', () => {
  beforeEach(() => duringRelease());

  test('no target registered yet: says no instances yet when the group has none', async () => {
    world.groups.green.instances = [];
    world.health.green = {};
    clock = T0 + 40_000;
    const state = await step({ action: 'health', state: midRelease() }, deps());
    expectFacts(state.message, ['r42', 'green', '0', '3', '0.5', '15']);
  });

  test('a target health Reason is quoted when there is no Description; a target without state is unknown', async () => {
    elbMock.on(DescribeTargetHealthCommand).resolves({
      TargetHealthDescriptions: [
        { Target: { Id: 'i-g1' }, TargetHealth: { State: 'healthy' } },
        { Target: { Id: 'i-g2' }, TargetHealth: { State: 'unhealthy', Reason: 'Target.FailedHealthChecks' } },
        { Target: { Id: 'i-g3' } },
        { Target: {} as never },
      ],
    });
    const state = await step({ action: 'health', state: midRelease({ scaledUpAt: undefined }) }, deps());
    expectFacts(state.message, ['r42', 'green', '1', '3', '0', 'i-g2', 'FailedHealthChecks', 'i-g3', '15']);
  });

  test('exactly at the health timeout: still waiting; a millisecond later: rollback', async () => {
    world.health.green['i-g3'] = { state: 'initial' };
    clock = T0 + 10_000 + 900_000;
    expect((await step({ action: 'health', state: midRelease() }, deps())).next).toBe('health');
    clock += 1;
    expect((await step({ action: 'health', state: midRelease() }, deps())).next).toBe('rollback');
  });

  test('more healthy instances than the capacity: smoke', async () => {
    const state = await step({ action: 'health', state: midRelease({ capacity: 2 }) }, deps());
    expectFacts(state.message, ['r42', '3', '2', 'green']);
  });
});

describe('afterSmoke, more', () => {
  beforeEach(() => duringRelease());

  test('without the gate: the message quotes the summary, or "no summary"', async () => {
    expect((await step({ action: 'afterSmoke', state: midRelease({ smoke: { passed: true, summary: '3 of 3' } }) }, deps())).message)
      .toBe('release r42: smoke test passed on green (3 of 3); shifting production');
    expect((await step({ action: 'afterSmoke', state: midRelease({ smoke: { passed: true, summary: '' } }) }, deps())).message)
      .toBe('release r42: smoke test passed on green (no summary); shifting production');
    expect((await step({ action: 'afterSmoke', state: midRelease({ smoke: { passed: 'true' } }) }, deps())).reason).toBe('smoke test failed: no summary');
  });

  test('with the gate: the ready-for-review message in full', async () => {
    env = { ...ENV, ...GATE };
    const state = await step({ action: 'afterSmoke', state: midRelease({ smoke: { passed: true, summary: '3 of 3' } }) }, deps());
    expectFacts(state.message, ['r42', 'passed', '2025-07-01T10:00:00.000Z', 'waiting for approval']);
    expect(snsMock).toHaveReceivedCommandWith(PublishCommand, {
      TopicArn: TOPIC,
      Subject: 'Ready for review: release r42',
      Message: [
        'Release r42 is ready for review on the test listener (green instances).',
        '',
        'Test URL: http://test.web.example:8080/',
        'Smoke test: passed (3 of 3)',
        'Ready since: 2025-07-01T10:00:00.000Z',
        'Production still runs: r41 on blue',
        '',
        `To release it, approve the action Approve in stage Release of pipeline web-pipeline (execution ${PIPELINE_EXECUTION}) in the CodePipeline console; `
        + 'reject it to roll back. An approval given before 2025-07-01T10:00:00.000Z does not count (the release would roll back), and without an answer '
        + 'within 30 minutes the release rolls back.',
      ].join('\n'),
    });
  });

  test('with the gate, no stage, no test URL, no pipeline execution id', async () => {
    const { APPROVAL_STAGE_NAME: _s, ...gate } = GATE;
    const { TEST_URL: _t, ...rest } = ENV;
    env = { ...rest, ...gate };
    await step({ action: 'afterSmoke', state: midRelease({ smoke: { passed: true, summary: 'ok' }, pipelineExecutionId: undefined }) }, deps());
    const message = snsMock.commandCalls(PublishCommand)[0].args[0].input.Message!;
    expect(message).not.toContain('Test URL');
    expect(message).toContain('approve the action Approve of pipeline web-pipeline (execution ?) in the CodePipeline console');
  });

  test('with the gate and no topic: nothing published, still the approval', async () => {
    const { NOTIFY_TOPIC_ARN: _n, ...rest } = ENV;
    env = { ...rest, ...GATE };
    const state = await step({ action: 'afterSmoke', state: midRelease({ smoke: { passed: true, summary: 'ok' } }) }, deps());
    expect(state).toMatchObject({ next: 'approval', waitSeconds: 30 });
    expect(snsMock).not.toHaveReceivedCommand(PublishCommand);
  });

  test('with the gate, publish denied: the rollback keeps readyAt', async () => {
    env = { ...ENV, ...GATE };
    snsMock.on(PublishCommand).rejects(accessDenied('sns:Publish'));
    const state = await step({ action: 'afterSmoke', state: midRelease({ smoke: { passed: true, summary: 'ok' } }) }, deps());
    expect(state).toMatchObject({ next: 'rollback', readyAt: new Date(T0).toISOString() });
    expect(state.reason).toMatch(new RegExp(`^could not send the ready-for-review notification: sns:Publish \\(${TOPIC}\\) failed: AccessDeniedException`));
  });

  test('with the gate, the approval wait would pass the deadline: rollback', async () => {
    env = { ...ENV, ...GATE };
    clock = T0 + 3_300_000 - 20_000;
    const state = await step({ action: 'afterSmoke', state: midRelease({ smoke: { passed: true, summary: 'ok' } }) }, deps());
    expectFacts(state.reason, ['deadline', '2025-07-01T10:55:00.000Z', '3300']);
  });
});

describe('approval, more', () => {
  const READY = T0 + 600_000;
  const approvalState = () => midRelease({ readyAt: new Date(READY).toISOString() });
  const run = (status: string, at: number | undefined, extra: Partial<ActionExecutionDetail> = {}): ActionExecutionDetail => ({
    stageName: 'Release', actionName: 'Approve', status: status as ActionExecutionDetail['status'], startTime: new Date(T0), lastUpdateTime: at === undefined ? undefined : new Date(at), ...extra,
  });

  beforeEach(() => {
    duringRelease();
    env = { ...ENV, ...GATE };
    clock = READY + 60_000;
  });

  test('no gate configured: shift', async () => {
    env = { ...ENV };
    expect(await step({ action: 'approval', state: approvalState() }, deps())).toMatchObject({ next: 'shift', message: 'release r42: no approval gate configured; shifting production' });
  });

  test('no readyAt: a real error', async () => {
    await expect(step({ action: 'approval', state: midRelease() }, deps())).rejects.toThrow('the approval step got a state without readyAt');
  });

  test('asks for the pipeline execution\'s action executions, 100 at a time', async () => {
    await step({ action: 'approval', state: approvalState() }, deps());
    expect(cpMock).toHaveReceivedCommandWith(ListActionExecutionsCommand, { pipelineName: 'web-pipeline', filter: { pipelineExecutionId: PIPELINE_EXECUTION }, maxResults: 100 });
  });

  test('approved exactly at readyAt counts; no approver named', async () => {
    world.approvals = [run('Succeeded', READY)];
    expect(await step({ action: 'approval', state: approvalState() }, deps())).toMatchObject({ next: 'shift', message: 'release r42: approval Approve granted at 2025-07-01T10:10:00.000Z; shifting production' });
  });

  test('approved at an unknown time: rollback', async () => {
    world.approvals = [run('Succeeded', undefined)];
    const state = await step({ action: 'approval', state: approvalState() }, deps());
    expectFacts(state.reason, ['2025-07-01T10:10:00.000Z', 'ready-for-review']);
  });

  test('rejected without an approver named', async () => {
    world.approvals = [run('Failed', READY + 1)];
    expect((await step({ action: 'approval', state: approvalState() }, deps())).reason).toBe('approval Approve rejected or timed out (status Failed)');
  });

  test('without a stage configured, any stage\'s action counts; the latest start wins, a run without start time loses', async () => {
    const { APPROVAL_STAGE_NAME: _s, ...gate } = GATE;
    env = { ...ENV, ...gate };
    world.approvals = [
      run('Succeeded', READY + 1, { stageName: 'Other', startTime: new Date(T0 + 5_000) }),
      run('Failed', READY + 1, { startTime: undefined }),
      run('InProgress', READY + 1, { startTime: new Date(T0 + 1_000) }),
    ];
    expect((await step({ action: 'approval', state: approvalState() }, deps())).next).toBe('shift');
  });

  test('a run without start time is still found when it is the only one', async () => {
    world.approvals = [run('Failed', READY + 1, { startTime: undefined })];
    expect((await step({ action: 'approval', state: approvalState() }, deps())).next).toBe('rollback');
  });

  test('exactly at the approval timeout: still waiting (the last check); a millisecond after: rollback', async () => {
    clock = READY + 1_800_000;
    expect(await step({ action: 'approval', state: approvalState() }, deps())).toMatchObject({ next: 'approval', waitSeconds: 30 });
    clock = READY + 1_800_001;
    expect((await step({ action: 'approval', state: approvalState() }, deps())).next).toBe('rollback');
  });
});

describe('shift and bake, more', () => {
  beforeEach(() => duringRelease());
  const baking = (overrides: Partial<ReleaseState> = {}) => midRelease({
    trafficPercent: 100, shiftedAt: new Date(T0).toISOString(), bakeUntil: new Date(T0 + 300_000).toISOString(), ...overrides,
  });

  test('a canary and bake that would end after the deadline: rollback naming both; ending exactly at the deadline is allowed', async () => {
    env = { ...ENV, ...CANARY };
    clock = T0 + 3_300_000 - 420_000 + 1;
    const late = await step({ action: 'shift', state: midRelease() }, deps());
    expectFacts(late.reason, ['2025-07-01T10:55:00.001Z', 'after the release deadline', '2025-07-01T10:55:00.000Z']);
    clock -= 1;
    expect((await step({ action: 'shift', state: midRelease() }, deps())).next).toBe('bake');
  });

  test('the shift after the canary: all traffic, no second canary', async () => {
    env = { ...ENV, ...CANARY };
    const state = await step({ action: 'shift', state: midRelease({ trafficPercent: 10 }) }, deps());
    expect(state).toMatchObject({ trafficPercent: 100, bakeUntil: new Date(T0 + 300_000).toISOString() });
    expect(elbMock).toHaveReceivedCommandWith(ModifyListenerCommand, { DefaultActions: [{ Type: 'forward', TargetGroupArn: TG.green }] });
  });

  test('a first release with a canary configured: all at once', async () => {
    env = { ...ENV, ...CANARY };
    const state = await step({ action: 'shift', state: midRelease({ live: 'none', previousRelease: 'none' }) }, deps());
    expect(state.trafficPercent).toBe(100);
  });

  test('canary: waits the remainder, at most 30 s, with a message saying the share', async () => {
    clock = T0 + 100_500;
    const state = await step({ action: 'bake', state: midRelease({ trafficPercent: 10, canaryUntil: new Date(T0 + 120_000).toISOString() }) }, deps());
    expect(state).toMatchObject({ next: 'bake', waitSeconds: 20, message: 'release r42: canary, 10 % of production on green, no alarm; until 2025-07-01T10:02:00.000Z' });
    clock = T0;
    expect((await step({ action: 'bake', state: midRelease({ trafficPercent: 10, canaryUntil: new Date(T0 + 120_000).toISOString() }) }, deps())).waitSeconds).toBe(30);
  });

  test('a canary without canaryUntil, or a bake without bakeUntil: over', async () => {
    expect((await step({ action: 'bake', state: midRelease({ trafficPercent: 10 }) }, deps())).next).toBe('shift');
    expect((await step({ action: 'bake', state: baking({ bakeUntil: undefined }) }, deps())).next).toBe('finish');
    expect((await step({ action: 'bake', state: midRelease({ trafficPercent: undefined }) }, deps())).next).toBe('shift');
  });

  test('the bake message and its last wait', async () => {
    clock = T0 + 100_000;
    const state = await step({ action: 'bake', state: baking() }, deps());
    expectFacts(state.message, ['r42', 'green', '2025-07-01T10:05:00.000Z']);
    clock = T0 + 300_000 - 1;
    expect(await step({ action: 'bake', state: baking() }, deps())).toMatchObject({ next: 'bake', waitSeconds: 1 });
    clock = T0 + 300_000;
    expect(await step({ action: 'bake', state: baking() }, deps())).toMatchObject({ next: 'finish', message: 'release r42: bake on green passed with no alarm; recording it as live' });
  });

  test('several alarms in ALARM: all named; the old color\'s alarms are not watched', async () => {
    world.alarms['green-5xx'] = 'ALARM';
    world.alarms['app-errors'] = 'ALARM';
    world.alarms['blue-5xx'] = 'ALARM';
    const state = await step({ action: 'bake', state: baking() }, deps());
    expectFacts(state.reason, ['green-5xx', 'app-errors', 'ALARM']);
    expect(cwMock).toHaveReceivedCommandWith(DescribeAlarmsCommand, { AlarmNames: ['green-5xx', 'green-latency', 'app-errors'], AlarmTypes: ['MetricAlarm', 'CompositeAlarm'], MaxRecords: 100 });
  });

  test('reads every page of alarms; an alarm without a name is ignored; an alarm in two lists is asked once', async () => {
    env = { ...ENV, DEPLOYMENT_ALARMS: 'green-5xx,app-errors' };
    cwMock.on(DescribeAlarmsCommand)
      .resolvesOnce({ MetricAlarms: [{ StateValue: 'ALARM' }], NextToken: 't2' })
      .resolvesOnce({ CompositeAlarms: [{ AlarmName: 'app-errors', StateValue: 'ALARM' }] });
    const state = await step({ action: 'bake', state: baking() }, deps());
    expect(state.reason).toBe('alarm app-errors went into ALARM during the bake');
    expect(cwMock).toHaveReceivedNthCommandWith(1, DescribeAlarmsCommand, { AlarmNames: ['green-5xx', 'green-latency', 'app-errors'] });
    expect(cwMock).toHaveReceivedNthCommandWith(2, DescribeAlarmsCommand, { NextToken: 't2' });
  });

  test('an alarm during the canary names the share', async () => {
    world.alarms['green-5xx'] = 'ALARM';
    const state = await step({ action: 'bake', state: midRelease({ trafficPercent: 10, canaryUntil: new Date(T0 + 120_000).toISOString() }) }, deps());
    expect(state).toMatchObject({ next: 'rollback', waitSeconds: 0, reason: 'alarm green-5xx went into ALARM during the canary (10 % of production)' });
    expectFacts(state.message, ['r42', 'green-5xx', 'ALARM', '10']);
  });
});

describe('finish, more', () => {
  beforeEach(() => {
    duringRelease();
    world.listener = forward('green');
  });
  const finishing = () => midRelease({ trafficPercent: 100 });

  test('writes the live color as a String, overwriting; the notification in full', async () => {
    await step({ action: 'finish', state: finishing() }, deps());
    expect(ssmMock).toHaveReceivedCommandWith(PutParameterCommand, { Name: LIVE, Value: 'green', Type: 'String', Overwrite: true });
    expect(ssmMock).toHaveReceivedCommandWith(PutParameterCommand, { Name: LOCK, Value: 'free', Type: 'String', Overwrite: true });
    expect(asgMock).toHaveReceivedCommandWith(UpdateAutoScalingGroupCommand, { AutoScalingGroupName: GROUP.blue, MinSize: 0, DesiredCapacity: 0 });
    expect(snsMock).toHaveReceivedCommandWith(PublishCommand, {
      TopicArn: TOPIC, Subject: 'Released: r42', Message: 'production runs r42 on green.\nProduction URL: https://web.example/\nBefore: r41 on blue.',
    });
  });

  test('what was not done is in the notification too; no production URL line without one', async () => {
    const { PRODUCTION_URL: _p, ...rest } = ENV;
    env = rest;
    asgMock.on(UpdateAutoScalingGroupCommand).rejects(awsError('ValidationException', 'nope'));
    await step({ action: 'finish', state: { ...finishing(), live: 'none', previousRelease: 'none' } }, deps());
    expectFacts(snsMock.commandCalls(PublishCommand)[0].args[0].input.Message, ['r42', 'green', '503']);
    snsMock.resetHistory();
    await step({ action: 'finish', state: finishing() }, deps());
    expectFacts(snsMock.commandCalls(PublishCommand)[0].args[0].input.Message, ['r42', 'green', 'r41', 'blue', 'blue', 'web-blue', '0', 'autoscaling:UpdateAutoScalingGroup', 'web-blue', 'failed', 'ValidationException']);
  });

  test('no topic: nothing published, nothing missing', async () => {
    const { NOTIFY_TOPIC_ARN: _n, ...rest } = ENV;
    env = rest;
    expect((await step({ action: 'finish', state: finishing() }, deps())).message).toBe('production runs r42 on green');
    expect(snsMock).not.toHaveReceivedCommand(PublishCommand);
  });

  test('a long release id: the subject is clipped to 100 characters', async () => {
    const release = 'r'.repeat(128);
    await step({ action: 'finish', state: { ...finishing(), release } }, deps());
    const subject = snsMock.commandCalls(PublishCommand)[0].args[0].input.Subject!;
    expect(subject).toHaveLength(100);
    expect(subject.startsWith('Released: rrr')).toBe(true);
  });
});

describe('rollback, more', () => {
  beforeEach(() => duringRelease());

  test('no lock, the lock free: the listener is read and described when it is not what production serves', async () => {
    world.params[LOCK] = 'free';
    world.listener = [{ Type: 'forward', ForwardConfig: { TargetGroups: [{ TargetGroupArn: TG.blue, Weight: 50 }, { TargetGroupArn: 'arn:x', Weight: 50 }] } }];
    const state = await step({ action: 'rollback', state: midRelease({ reason: 'x' }) }, deps());
    expect(state.message).toBe("rolled back (x): release r42 holds no lock, nothing left to undo; production's listener does: forward to blue and arn:x");
    expect(writes()).toEqual([]);
  });

  test('no lock, the lock free, no default action', async () => {
    world.params[LOCK] = 'free';
    world.listener = [];
    const state = await step({ action: 'rollback', state: midRelease({ reason: 'x' }) }, deps());
    expect(state.message).toBe("rolled back (x): release r42 holds no lock, nothing left to undo; production's listener does: no default action");
  });

  test('a long foreign lock is clipped in the message', async () => {
    world.params[LOCK] = `running ${'x'.repeat(300)}`;
    const state = await step({ action: 'rollback', state: midRelease({ reason: 'x' }) }, deps());
    expect(state.message).toContain(`(the release lock says: running ${'x'.repeat(191)}…)`);
  });

  test('the parameters cannot be read: a real error naming the release and the reason', async () => {
    delete world.params[LIVE];
    await expect(step({ action: 'rollback', state: midRelease({ reason: 'x' }) }, deps())).rejects.toMatchObject({
      name: 'ReleaseStepError', message: `rollback of release r42 (x) cannot read the release state: SSM parameter(s) not found: ${LIVE}`,
    });
  });

  test('a listener that already serves the live color and no traffic moved: not modified', async () => {
    const state = await step({ action: 'rollback', state: midRelease({ trafficPercent: 0, reason: 'x' }) }, deps());
    expect(calls.filter((c) => c.startsWith('ModifyListener'))).toEqual([]);
    expect(state.message).toBe('rolled back (x): production runs r41 on blue everywhere');
    expect(asgMock).toHaveReceivedCommandWith(UpdateAutoScalingGroupCommand, { AutoScalingGroupName: GROUP.green, MinSize: 0, DesiredCapacity: 0 });
    expect(ssmMock).toHaveReceivedCommandWith(PutParameterCommand, { Name: LOCK, Value: 'free', Type: 'String', Overwrite: true });
    expect(snsMock).toHaveReceivedCommandWith(PublishCommand, {
      TopicArn: TOPIC, Subject: 'Rolled back: r42', Message: 'Release r42 was rolled back.\nReason: x\nNow: production runs r41 on blue everywhere.',
    });
  });

  test('trafficPercent above 0 with the listener on the live color: set again and verified anyway', async () => {
    await step({ action: 'rollback', state: midRelease({ trafficPercent: 10, reason: 'x' }) }, deps());
    expect(calls.filter((c) => c.startsWith('ModifyListener') || c === 'DescribeListeners')).toEqual(['DescribeListeners', 'ModifyListener blue', 'DescribeListeners']);
  });

  test('a listener on something else entirely (no traffic on the target): set back to the live color', async () => {
    world.listener = [{ Type: 'fixed-response', FixedResponseConfig: { StatusCode: '500' } }];
    await step({ action: 'rollback', state: midRelease({ trafficPercent: 0, reason: 'x' }) }, deps());
    expect(calls).toContain('ModifyListener blue');
  });

  test('a state without live, target or previousRelease: taken from the recorded parameters', async () => {
    const state = await step({ action: 'rollback', state: { release: RELEASE, executionArn: EXECUTION, reason: 'x' } }, deps());
    expect(state.message).toBe('rolled back (x): production runs r41 on blue everywhere');
    expect(calls).toContain('UpdateAutoScalingGroup green min=0 max=- desired=0');
  });

  test('an empty state: nothing to undo, release "?"', async () => {
    world.params[LOCK] = 'free';
    const state = await step({ action: 'rollback', state: {} }, deps());
    expect(state).toMatchObject({ next: 'failed', waitSeconds: 0, reason: 'no reason given' });
    expectFacts(state.message, ['rolled back', 'holds no lock', 'nothing left to undo', 'r41', 'blue', 'everywhere']);
  });

  test('the executionArn of the state wins over the event\'s', async () => {
    const state = await step({ action: 'rollback', executionArn: OTHER_EXECUTION, state: midRelease({ reason: 'x' }) }, deps());
    expect(state.message).toBe('rolled back (x): production runs r41 on blue everywhere');
  });

  test('finish\'s write landed and the lock is not held: nothing done, still succeeded', async () => {
    world.params[LIVE] = 'green';
    world.params[LOCK] = 'free';
    const state = await step({ action: 'rollback', state: midRelease({ reason: 'x' }) }, deps());
    expect(state).toMatchObject({ next: 'succeeded', message: 'not rolled back (x): green was already recorded as live, production runs r42 on green' });
    expect(writes()).toEqual([]);
  });

  test('finish\'s write landed and a best-effort step fails: said so', async () => {
    world.params[LIVE] = 'green';
    snsMock.on(PublishCommand).rejects(awsError('AuthorizationError', 'no'));
    const state = await step({ action: 'rollback', state: midRelease({ reason: 'x' }) }, deps());
    expectFacts(state.message, ['not rolled back', 'green', 'already recorded as live', 'r42', 'green', 'AuthorizationError']);
  });

  test('the live color of the state is "none" and the record too: the 503, not green', async () => {
    world.params[LIVE] = 'none';
    const state = await step({ action: 'rollback', state: midRelease({ live: 'none', previousRelease: 'none', reason: 'x' }) }, deps());
    expectFacts(state.message, ['rolled back', '503', 'nothing was released']);
    expect(world.listener).toEqual(fixed503);
  });

  test('a long reason is clipped', async () => {
    const state = await step({ action: 'rollback', state: midRelease({ reason: 'y'.repeat(2000) }) }, deps());
    expect(state.reason).toHaveLength(600);
    expect(state.message.length).toBeLessThanOrEqual(900);
  });
});

describe('listener helpers', () => {
  const cfg = (readConfig(ENV) as { ok: true; value: Parameters<typeof servesOnly>[2] }).value;

  test('forwardedTargetGroups: a weight left out counts; other action types do not; an empty weighted list falls back to the plain ARN', () => {
    expect(forwardedTargetGroups([{ Type: 'forward', ForwardConfig: { TargetGroups: [{ TargetGroupArn: 'a' }, { Weight: 3 }] } }])).toEqual(['a']);
    expect(forwardedTargetGroups([{ Type: 'redirect', TargetGroupArn: 'a' }])).toEqual([]);
    expect(forwardedTargetGroups([{ Type: 'forward', TargetGroupArn: 'a', ForwardConfig: { TargetGroups: [] } }])).toEqual(['a']);
    expect(forwardedTargetGroups([{ Type: 'forward', TargetGroupArn: 'a', ForwardConfig: { TargetGroups: [{ TargetGroupArn: 'b', Weight: 1 }] } }])).toEqual(['b']);
    expect(forwardedTargetGroups([{ Type: 'forward', TargetGroupArn: 'a' }, { Type: 'forward', TargetGroupArn: 'a' }])).toEqual(['a']);
    expect(forwardedTargetGroups(undefined)).toEqual([]);
  });

  test('servesOnly', () => {
    expect(servesOnly(fixed503, 'none', cfg)).toBe(true);
    expect(servesOnly([{ Type: 'fixed-response', FixedResponseConfig: { StatusCode: '404' } }], 'none', cfg)).toBe(false);
    expect(servesOnly([{ Type: 'forward', TargetGroupArn: TG.blue }], 'none', cfg)).toBe(false);
    expect(servesOnly([...fixed503, ...fixed503], 'none', cfg)).toBe(false);
    expect(servesOnly(undefined, 'none', cfg)).toBe(false);
    expect(servesOnly(forward('blue'), 'blue', cfg)).toBe(true);
    expect(servesOnly(forward('blue'), 'green', cfg)).toBe(false);
    expect(servesOnly([...forward('blue'), ...fixed503], 'blue', cfg)).toBe(false);
    expect(servesOnly([{ Type: 'forward', ForwardConfig: { TargetGroups: [{ TargetGroupArn: TG.blue, Weight: 1 }, { TargetGroupArn: TG.green, Weight: 0 }] } }], 'blue', cfg)).toBe(true);
    expect(servesOnly([{ Type: 'forward', ForwardConfig: { TargetGroups: [{ TargetGroupArn: TG.blue, Weight: 1 }, { TargetGroupArn: TG.green, Weight: 1 }] } }], 'blue', cfg)).toBe(false);
    expect(servesOnly([], 'blue', cfg)).toBe(false);
  });

  test('rollbackReason: a caught error without a string Error or Cause; a JSON Cause without errorMessage; an empty reason', () => {
    expect(rollbackReason({ caught: { Error: 7, Cause: 'c' } })).toBe('error: c');
    expect(rollbackReason({ caught: { Error: 'E', Cause: '{"other":1}' } })).toBe('E: {"other":1}');
    expect(rollbackReason({ caught: { Error: 'E', Cause: '"text"' } })).toBe('E: "text"');
    expect(rollbackReason({ reason: '', caught: 'x' })).toBe('no reason given');
    expect(rollbackReason({ reason: 7 })).toBe('no reason given');
    expect(rollbackReason({ reason: 'z'.repeat(700) })).toHaveLength(600);
  });
});

// ---------------------------------------------------------------------------------------------------------------
// Mutation survivors (stryker/ec2-release.config.json): rollback's reading of a partial state, the deadline's edge
// ---------------------------------------------------------------------------------------------------------------

describe('rollback, exactly', () => {
  beforeEach(() => duringRelease());

  test('rollbackReason: an empty reason is no reason; the caught error alone, or nothing at all', () => {
    expect(rollbackReason({ reason: '', caught: { Error: 'States.Timeout', Cause: 'late' } })).toBe('States.Timeout: late');
    expect(rollbackReason({ reason: '' })).toBe('no reason given');
  });

  test('a state without a release: the message says release ?', async () => {
    const { release: _release, ...state } = midRelease({ reason: 'x' });
    const result = await step({ action: 'rollback', state }, deps());
    expectFacts(result.message, ['rolled back (x)']);
    expect(snsMock.commandCalls(PublishCommand)[0].args[0].input.Subject).toBe('Rolled back: ?');
  });

  test('a first release whose live-color write landed: not rolled back, production runs the release on blue', async () => {
    world.params[LIVE] = 'blue';
    world.params[REL_BLUE] = RELEASE;
    world.listener = forward('blue');
    world.groups.blue = { min: 3, max: 6, desired: 3, instances: ['i-b1', 'i-b2', 'i-b3'] };
    const state = await step({
      action: 'rollback',
      state: midRelease({ live: 'none', previousRelease: 'none', target: 'blue', trafficPercent: 100, reason: 'lost answer' }),
    }, deps());
    expect(state.next).toBe('succeeded');
    expectFacts(state.message, ['not rolled back (lost answer)', 'blue was already recorded as live', 'production runs r42 on blue']);
    expect(calls.filter((c) => c.startsWith('ModifyListener') || c.startsWith('UpdateAutoScalingGroup'))).toEqual([]);
  });

  test('the live-color write landed and a best-effort step fails: still succeeded, the message names what was not done', async () => {
    world.params[LIVE] = 'green';
    world.listener = forward('green');
    asgMock.on(UpdateAutoScalingGroupCommand).rejects(accessDenied('autoscaling:UpdateAutoScalingGroup'));
    const state = await step({ action: 'rollback', state: midRelease({ trafficPercent: 100, reason: 'lost answer' }) }, deps());
    expect(state.next).toBe('succeeded');
    expect(state.message).toMatch(
      /^not rolled back \(lost answer\): green was already recorded as live, production runs r42 on green; could not scale the old blue group web-blue to 0: .*AccessDeniedException/,
    );
  });

  test('the live-color write landed: the notification says production runs the release; two steps not done are joined by "; "', async () => {
    world.params[LIVE] = 'green';
    world.listener = forward('green');
    asgMock.on(UpdateAutoScalingGroupCommand).rejects(accessDenied('autoscaling:UpdateAutoScalingGroup'));
    const first = await step({ action: 'rollback', state: midRelease({ trafficPercent: 100, reason: 'lost answer' }) }, deps());
    expect(snsMock.commandCalls(PublishCommand)[0].args[0].input.Message?.split('\n')[0]).toBe('production runs r42 on green.');
    expect(first.next).toBe('succeeded');
    // The first rollback freed the lock; a second with the lock held (only then are the steps done) and SNS denied:
    world.params[LOCK] = `running ${EXECUTION}`;
    snsMock.on(PublishCommand).rejects(accessDenied('sns:Publish'));
    const second = await step({ action: 'rollback', state: midRelease({ trafficPercent: 100, reason: 'lost answer' }) }, deps());
    expect(second.message).toMatch(/; could not scale the old blue group web-blue to 0: .*AccessDeniedException.*; could not send the release notification: .*AccessDeniedException/);
  });

  test('the lock cannot be freed: a real error naming the call and the parameter', async () => {
    ssmMock.on(PutParameterCommand).rejects(accessDenied('ssm:PutParameter'));
    await expect(step({ action: 'rollback', state: midRelease({ reason: 'x' }) }, deps()))
      .rejects.toMatchObject({ name: 'ReleaseStepError', message: expect.stringContaining(`ssm:PutParameter (${LOCK}) failed: AccessDeniedException`) });
  });
});

describe('state rules, exactly', () => {
  const context = () => {
    const config = readConfig(env);
    if (!config.ok) throw new Error(config.error);
    return { cfg: config.value, c: {} as never, now: () => clock };
  };

  test('a startedAt that is not a string is refused, even one Date.parse reads', async () => {
    duringRelease();
    await expect(step({ action: 'bake', state: midRelease({ startedAt: 12345 as unknown as string }) }, deps()))
      .rejects.toThrow('the bake step got a state without a valid startedAt');
  });

  test('toRollback clips the reason to REASON_LIMIT and the message to REASON_LIMIT + 100; no release is ?', () => {
    const long = 'y'.repeat(2_000);
    const state = toRollback({ next: 'bake', waitSeconds: 5, message: '' }, long);
    expect(state).toMatchObject({ next: 'rollback', waitSeconds: 0 });
    expect(state.reason).toHaveLength(REASON_LIMIT);
    expect(state.message).toHaveLength(REASON_LIMIT + 100);
    expect(state.message.startsWith('release ? rolls back: yyy')).toBe(true);
  });

  test('waitOrRollback: a wait ending exactly at the deadline is allowed, a millisecond later is not', () => {
    const ctx = context();
    const running = midRelease() as Parameters<typeof waitOrRollback>[1];
    const deadline = T0 + ctx.cfg.releaseDeadlineSeconds * 1000;
    clock = deadline - 30_000;
    expect(waitOrRollback(ctx, running, 'bake', 30, 'baking', 'the bake')).toMatchObject({ next: 'bake', waitSeconds: 30, message: 'baking' });
    clock += 1;
    const late = waitOrRollback(ctx, running, 'bake', 30, 'baking', 'the bake');
    expect(late.next).toBe('rollback');
    expectFacts(late.reason, ['the bake', 'release deadline', new Date(deadline).toISOString(), `${ctx.cfg.releaseDeadlineSeconds} s after the start`]);
  });
});

describe('logging of a step, exactly', () => {
  test('an action that is not a string is not logged as the action', async () => {
    await expect(step({ action: 7, state: {} }, deps())).rejects.toThrow('not an EC2 release step event');
    const [line] = loggedLines('error');
    expect(line).toMatchObject({ level: 'ERROR', message: 'ec2 release step threw', retryable: false });
    expect(line).not.toHaveProperty('action');
  });
});
