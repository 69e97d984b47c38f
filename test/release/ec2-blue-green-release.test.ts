import * as fs from 'fs';
import * as path from 'path';
import { App, Duration, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { Ec2BlueGreenPipeline, PipelineSource, TrafficShift } from '../../src';
import { CONNECTION_ARN } from '../util/fixtures';
import { ENV, idOf } from '../util/template';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const aslValidator: (definition: object) => { isValid: boolean; errorsText: (separator?: string) => string } = require('asl-validator');


/** A placeholder ARN for a resource of the template, by its type. */
function placeholderArn(resources: Record<string, any>, logicalId: string): string {
  const type: string = resources[logicalId]?.Type ?? 'unknown';
  if (type === 'AWS::Lambda::Function') return `arn:aws:lambda:us-east-1:123456789012:function:${logicalId}`;
  return `arn:aws:${type.split('::')[1]?.toLowerCase() ?? 'unknown'}:us-east-1:123456789012:${logicalId}`;
}

/** The definition of a state machine, its tokens (Fn::Join of Refs and Fn::GetAtt) replaced by placeholder ARNs. */
function definitionOf(template: Template, stateMachineLogicalId: string): any {
  const json = template.toJSON();
  const resources = json.Resources as Record<string, any>;
  const render = (value: any): string => {
    if (typeof value === 'string') return value;
    if (value['Fn::Join']) {
      const [separator, parts] = value['Fn::Join'];
      return (parts as any[]).map(render).join(separator);
    }
    if (value.Ref === 'AWS::Partition') return 'aws';
    if (value.Ref === 'AWS::Region') return 'us-east-1';
    if (value.Ref === 'AWS::AccountId') return '123456789012';
    if (value.Ref) return placeholderArn(resources, value.Ref);
    if (value['Fn::GetAtt']) return placeholderArn(resources, value['Fn::GetAtt'][0]);
    throw new Error(`unexpected token in the definition: ${JSON.stringify(value)}`);
  };
  return JSON.parse(render(resources[stateMachineLogicalId].Properties.DefinitionString));
}

/** The value at a JSONPath of the simple form `$.a.b`, or undefined. */
function atPath(input: any, jsonPath: string): unknown {
  expect(jsonPath).toMatch(/^\$(\.[A-Za-z_][A-Za-z0-9_]*)+$/);
  return jsonPath.split('.').slice(1).reduce((value, key) => (value === undefined || value === null ? undefined : value[key]), input);
}

/** Evaluates one Choice rule of the kinds the workflow uses; a missing variable is a States.Runtime error, as in Step Functions. */
function matches(rule: any, input: any): boolean {
  if (rule.And) return (rule.And as any[]).every((r) => matches(r, input));
  if (rule.Or) return (rule.Or as any[]).some((r) => matches(r, input));
  if (rule.Not) return !matches(rule.Not, input);
  if (rule.IsPresent !== undefined) return (atPath(input, rule.Variable) !== undefined) === rule.IsPresent;
  const value = atPath(input, rule.Variable);
  if (value === undefined) throw new Error(`States.Runtime: ${rule.Variable} is missing`);
  if (rule.StringEquals !== undefined) return value === rule.StringEquals;
  if (rule.NumericGreaterThan !== undefined) return typeof value === 'number' && value > rule.NumericGreaterThan;
  if (rule.NumericEquals !== undefined) return value === rule.NumericEquals;
  throw new Error(`a Choice rule this test does not know: ${JSON.stringify(rule)}`);
}

/** Where a Choice state sends an input. */
function choose(choice: any, input: any): string {
  const rule = (choice.Choices as any[]).find((r) => matches(r, input));
  return rule ? rule.Next : choice.Default;
}

/** The names of a string-literal union type exported by the release handler (its source is the contract). */
function handlerUnion(typeName: string): string[] {
  const text = fs.readFileSync(path.join(__dirname, '../../src/handlers/ec2-release.lambda.ts'), 'utf-8');
  const match = new RegExp(`export type ${typeName} = ([^;]+);`).exec(text);
  expect(match).not.toBeNull();
  return [...match![1].matchAll(/'([A-Za-z]+)'/g)].map((m) => m[1]);
}

const LAMBDA_SERVICE_ERRORS = ['Lambda.ServiceException', 'Lambda.AWSLambdaException', 'Lambda.SdkClientException', 'Lambda.TooManyRequestsException'];

// One app: the pattern with a canary (the workflow does not change with it), synthesized once.
const app = new App();
const stack = new Stack(app, 'Shop', { env: ENV });
const web = new Ec2BlueGreenPipeline(stack, 'Web', {
  source: PipelineSource.connection('owner/repo', 'main', { connectionArn: CONNECTION_ARN }),
  trafficShift: TrafficShift.canary(10, Duration.minutes(5)),
});
const template = Template.fromStack(stack);
const machineId = idOf(web.stateMachine);
const machine = template.toJSON().Resources[machineId];
const definition = definitionOf(template, machineId);
const states: Record<string, any> = definition.States;
const releaseFunctionArn = (() => {
  const fn = Object.entries(template.findResources('AWS::Lambda::Function'))
    .find(([, f]: [string, any]) => f.Properties.Environment?.Variables?.LIVE_COLOR_PARAMETER === web.liveColorParameterName);
  expect(fn).toBeDefined();
  return `arn:aws:lambda:us-east-1:123456789012:function:${fn![0]}`;
})();
const smokeFunctionArn = (() => {
  const fn = Object.entries(template.findResources('AWS::Lambda::Function'))
    .find(([, f]: [string, any]) => f.Properties.Environment?.Variables?.SMOKE_TEST_BASE_URL !== undefined);
  expect(fn).toBeDefined();
  return `arn:aws:lambda:us-east-1:123456789012:function:${fn![0]}`;
})();

/** The decision-function tasks of the workflow. */
const DECISION_TASKS = ['Start', 'Step', 'AfterSmokeTest', 'Rollback'];

describe('Ec2BlueGreenRelease: the state machine definition', () => {
  test('is valid Amazon States Language (asl-validator)', () => {
    const result = aslValidator(definition);
    expect({ isValid: result.isValid, errors: result.errorsText('\n') }).toEqual({ isValid: true, errors: '' });
  });

  test('the validator is not a rubber stamp: a Next to a state that does not exist is refused', () => {
    const broken = JSON.parse(JSON.stringify(definition));
    broken.States.Step.Next = 'Nowhere';
    expect(aslValidator(broken).isValid).toBe(false);
  });

  test('has exactly the states of the release loop', () => {
    expect(Object.keys(states).sort()).toEqual(
      ['AfterSmokeTest', 'Released', 'RolledBack', 'Rollback', 'RollbackFailed', 'Route', 'SmokeTest', 'Start', 'Step', 'Wait'].sort());
    expect(definition.StartAt).toBe('Start');
  });

  test('every state is reachable from Start', () => {
    const seen = new Set<string>();
    const visit = (name: string) => {
      if (seen.has(name)) return;
      seen.add(name);
      const state = states[name];
      const next = [state.Next, state.Default, ...(state.Choices ?? []).map((c: any) => c.Next), ...(state.Catch ?? []).map((c: any) => c.Next)];
      next.filter(Boolean).forEach(visit);
    };
    visit(definition.StartAt);
    expect([...seen].sort()).toEqual(Object.keys(states).sort());
  });

  test('Start passes the execution input, its ARN and its start time to the decision function, then Route', () => {
    expect(states.Start).toMatchObject({
      Type: 'Task',
      Resource: releaseFunctionArn,
      Next: 'Route',
      Parameters: {
        'action': 'start',
        'input.$': '$$.Execution.Input',
        'executionArn.$': '$$.Execution.Id',
        'startedAt.$': '$$.Execution.StartTime',
      },
    });
  });

  test('Step runs the action the last answer named, with the whole state, then Route', () => {
    expect(states.Step).toMatchObject({
      Type: 'Task', Resource: releaseFunctionArn, Next: 'Route', Parameters: { 'action.$': '$.next', 'state.$': '$' },
    });
  });

  test('SmokeTest invokes the smoke test function and keeps its verdict in $.smoke, then AfterSmokeTest decides', () => {
    expect(states.SmokeTest).toMatchObject({
      Type: 'Task',
      Resource: 'arn:aws:states:::lambda:invoke',
      Parameters: { FunctionName: smokeFunctionArn },
      ResultSelector: { 'passed.$': '$.Payload.passed', 'summary.$': '$.Payload.summary' },
      ResultPath: '$.smoke',
      Next: 'AfterSmokeTest',
    });
    expect(states.AfterSmokeTest).toMatchObject({
      Resource: releaseFunctionArn, Parameters: { 'action': 'afterSmoke', 'state.$': '$' }, Next: 'Route',
    });
  });

  test('Wait waits $.waitSeconds, then Step', () => {
    expect(states.Wait).toMatchObject({ Type: 'Wait', SecondsPath: '$.waitSeconds', Next: 'Step' });
    expect(states.Wait.Seconds).toBeUndefined();
  });

  test('the end states: Released succeeds, RolledBack and RollbackFailed fail with their own error (RolledBack quoting $.message)', () => {
    expect(states.Released.Type).toBe('Succeed');
    expect(states.RolledBack).toMatchObject({ Type: 'Fail', Error: 'ReleaseFailed', CausePath: '$.message' });
    expect(states.RollbackFailed).toMatchObject({ Type: 'Fail', Error: 'RollbackFailed' });
    expect(states.RollbackFailed.Cause).toMatch(/rollback did not finish/i);
  });
});

describe('Ec2BlueGreenRelease: Route', () => {
  test.each<[string, string, Record<string, unknown>]>([
    ['succeeded', 'Released', { next: 'succeeded', waitSeconds: 0 }],
    ['failed', 'RolledBack', { next: 'failed', waitSeconds: 0 }],
    ['smoke', 'SmokeTest', { next: 'smoke', waitSeconds: 0 }],
    ['a wait of 15 s before health', 'Wait', { next: 'health', waitSeconds: 15 }],
    ['a wait of 30 s before start (stack update in progress)', 'Wait', { next: 'start', waitSeconds: 30 }],
    ['health with no wait', 'Step', { next: 'health', waitSeconds: 0 }],
    ['rollback', 'Step', { next: 'rollback', waitSeconds: 0 }],
    ['shift', 'Step', { next: 'shift', waitSeconds: 0 }],
    ['finish', 'Step', { next: 'finish', waitSeconds: 0 }],
    ['succeeded even with a wait set (the end wins)', 'Released', { next: 'succeeded', waitSeconds: 10 }],
    ['failed even with a wait set', 'RolledBack', { next: 'failed', waitSeconds: 10 }],
    ['smoke even with a wait set', 'SmokeTest', { next: 'smoke', waitSeconds: 10 }],
  ])('%s goes to %s', (_name, expected, input) => {
    expect(choose(states.Route, input)).toBe(expected);
  });

  test('every answer the handler can give is routed: the ends to an end state, smoke to the smoke test, any other to a Step the handler accepts as an action', () => {
    const nexts = handlerUnion('Next');
    const actions = handlerUnion('StepAction');
    expect(nexts).toEqual(expect.arrayContaining(['succeeded', 'failed', 'smoke', 'health', 'rollback']));
    for (const next of nexts) {
      const ends: Record<string, string> = { succeeded: 'Released', failed: 'RolledBack', smoke: 'SmokeTest' };
      expect({ next, target: choose(states.Route, { next, waitSeconds: 0 }) }).toEqual({ next, target: ends[next] ?? 'Step' });
      if (ends[next] === undefined) expect(actions).toContain(next);
    }
    expect(actions).toContain(states.AfterSmokeTest.Parameters.action);
    expect(actions).toContain(states.Start.Parameters.action);
    expect(actions).toContain(states.Rollback.Parameters.action);
  });

  test('a wait always leads back to the decision function with the same next (Wait -> Step with $.next)', () => {
    let state = choose(states.Route, { next: 'bake', waitSeconds: 30 });
    expect(state).toBe('Wait');
    state = states[state].Next;
    expect(state).toBe('Step');
    expect(states[state].Parameters['action.$']).toBe('$.next');
  });
});

describe('Ec2BlueGreenRelease: errors and retries', () => {
  test.each(['Start', 'Step', 'AfterSmokeTest', 'SmokeTest'])('%s catches every error into Rollback, keeping the state and the error in $.caught', (name) => {
    expect(states[name].Catch).toEqual([{ ErrorEquals: ['States.ALL'], ResultPath: '$.caught', Next: 'Rollback' }]);
  });

  test('Rollback catches every error into RollbackFailed, and otherwise goes back to Route (which ends the release)', () => {
    expect(states.Rollback.Catch).toEqual([{ ErrorEquals: ['States.ALL'], ResultPath: '$.caught', Next: 'RollbackFailed' }]);
    expect(states.Rollback.Next).toBe('Route');
    expect(states.Rollback.Parameters).toMatchObject({ 'action': 'rollback', 'state.$': '$' });
  });

  test('Rollback tells the function which execution it rolls back, so that a Start that failed after taking the lock is undone', () => {
    // Start's Catch hands Rollback the execution input (no executionArn in it): the handler then sees a release that
    // holds no lock, leaves the lock taken and the target group as Start left it.
    expect(states.Rollback.Parameters['executionArn.$']).toBe('$$.Execution.Id');
  });

  test.each([...DECISION_TASKS, 'SmokeTest'])('%s retries Lambda service errors and RetryableError, never a real failure', (name) => {
    const retriers: any[] = states[name].Retry ?? [];
    const retried = retriers.flatMap((r) => r.ErrorEquals);
    expect(retried).toEqual(expect.arrayContaining([...LAMBDA_SERVICE_ERRORS, 'RetryableError']));
    expect(retried).not.toContain('States.ALL');
    expect(retried).not.toContain('States.TaskFailed');
    for (const retrier of retriers) expect(retrier.MaxAttempts).toBeGreaterThan(0);
  });

  test.each([...DECISION_TASKS, 'SmokeTest'])('%s gives up retrying within 5 minutes, so that a throttled step still leaves time to roll back', (name) => {
    for (const retrier of states[name].Retry as any[]) {
      let delay = retrier.IntervalSeconds ?? 1;
      let total = 0;
      for (let attempt = 0; attempt < retrier.MaxAttempts; attempt++) {
        total += Math.min(delay, retrier.MaxDelaySeconds ?? Infinity);
        delay *= retrier.BackoffRate ?? 2;
      }
      expect(total).toBeLessThanOrEqual(300);
    }
  });

  test('Rollback retries RetryableError (a listener that does not show its change yet) like the other steps', () => {
    expect((states.Rollback.Retry as any[]).flatMap((r) => r.ErrorEquals)).toContain('RetryableError');
  });
});

describe('Ec2BlueGreenRelease: the state machine resource', () => {
  test('a STANDARD state machine (it waits for up to an hour) that times out after 60 minutes', () => {
    expect(machine.Properties.StateMachineType).toBe('STANDARD');
    expect(definition.TimeoutSeconds).toBe(3600);
  });

  test('logs every event with its data, and traces', () => {
    expect(machine.Properties.LoggingConfiguration).toMatchObject({ Level: 'ALL', IncludeExecutionData: true });
    expect(machine.Properties.LoggingConfiguration.Destinations).toHaveLength(1);
    expect(machine.Properties.TracingConfiguration).toEqual({ Enabled: true });
  });

  test('its log group is under /aws/vendedlogs/states/, which one entry of the account\'s CloudWatch Logs resource policy covers (nothing added per group, nothing left at teardown)', () => {
    const groupId = machine.Properties.LoggingConfiguration.Destinations[0].CloudWatchLogsLogGroup.LogGroupArn['Fn::GetAtt'][0];
    const group = template.toJSON().Resources[groupId];
    expect(group.Type).toBe('AWS::Logs::LogGroup');
    expect(group.Properties.LogGroupName).toBe(`/aws/vendedlogs/states/${machine.Properties.StateMachineName}`);
    expect(group.DeletionPolicy).toBe('Delete');
  });

  test('its role may invoke the decision function and the smoke test only', () => {
    const roleId = machine.Properties.RoleArn['Fn::GetAtt'][0];
    const statements = (Object.values(template.findResources('AWS::IAM::Policy')) as any[])
      .filter((p) => p.Properties.Roles.some((r: any) => r.Ref === roleId))
      .flatMap((p) => p.Properties.PolicyDocument.Statement);
    const invoked = statements.filter((s) => [].concat(s.Action).includes('lambda:InvokeFunction' as never))
      .flatMap((s) => [].concat(s.Resource)).map((r: any) => (r['Fn::GetAtt'] ?? r['Fn::Join'][1][0]['Fn::GetAtt'])[0]);
    const functionIds = [releaseFunctionArn, smokeFunctionArn].map((arn) => arn.split(':').pop());
    expect([...new Set(invoked)].sort()).toEqual(functionIds.sort());
  });

  test('the decision function has 2 minutes, room for the up to 8 bounded AWS calls of a step', () => {
    const fn = template.toJSON().Resources[releaseFunctionArn.split(':').pop()!];
    expect(fn.Properties.Timeout).toBe(120);
  });
});

describe('TrafficShift', () => {
  test('allAtOnce: no canary share and no canary step', () => {
    const shift = TrafficShift.allAtOnce();
    expect(shift.percent).toBe(0);
    expect(shift.interval.toSeconds()).toBe(0);
  });

  test('canary(10, 5 minutes) keeps the share and the interval', () => {
    const shift = TrafficShift.canary(10, Duration.minutes(5));
    expect(shift.percent).toBe(10);
    expect(shift.interval.toMinutes()).toBe(5);
  });

  test.each([[1, 1], [99, 30]])('the bounds are accepted: %i %% for %i minutes', (percent, minutes) => {
    expect(TrafficShift.canary(percent, Duration.minutes(minutes)).percent).toBe(percent);
  });

  test.each<[string, number, Duration, RegExp]>([
    ['percent 0', 0, Duration.minutes(5), /'percent' must be a whole number from 1 to 99, got 0/],
    ['percent 100', 100, Duration.minutes(5), /'percent' must be a whole number from 1 to 99, got 100/],
    ['percent 12.5', 12.5, Duration.minutes(5), /'percent' must be a whole number from 1 to 99, got 12.5/],
    ['an interval of 31 minutes', 10, Duration.minutes(31), /'interval' must be between 1 minute and 30 minutes, got 31 minutes/],
    ['an interval of 30 seconds', 10, Duration.seconds(30), /'interval' must be between 1 minute and 30 minutes, got 30 seconds/],
    ['an interval of 90 seconds', 10, Duration.seconds(90), /'interval' must be a whole number of minutes, got 1 minute 30 seconds/],
  ])('%s is refused', (_name, percent, interval, message) => {
    expect(() => TrafficShift.canary(percent, interval)).toThrow(message);
  });

  test('the canary reaches the release function as a share and seconds', () => {
    const fn = template.toJSON().Resources[releaseFunctionArn.split(':').pop()!];
    expect(fn.Properties.Environment.Variables).toMatchObject({ CANARY_PERCENT: '10', CANARY_SECONDS: '300' });
  });
});
