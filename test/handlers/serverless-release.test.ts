import { CloudWatchClient, CloudWatchServiceException, DeleteAlarmsCommand, DescribeAlarmsCommand, PutMetricAlarmCommand } from '@aws-sdk/client-cloudwatch';
import {
  CodeDeployClient,
  CodeDeployServiceException,
  CreateDeploymentCommand,
  DeploymentLimitExceededException,
  GetDeploymentCommand,
  StopDeploymentCommand,
} from '@aws-sdk/client-codedeploy';
import type { DeploymentInfo, DeploymentStatus } from '@aws-sdk/client-codedeploy';
import { CodePipelineClient, PutJobFailureResultCommand, PutJobSuccessResultCommand } from '@aws-sdk/client-codepipeline';
import {
  GetAliasCommand,
  GetFunctionConfigurationCommand,
  LambdaClient,
  LambdaServiceException,
  PublishVersionCommand,
  UpdateAliasCommand,
  UpdateFunctionCodeCommand,
} from '@aws-sdk/client-lambda';
import type { LastUpdateStatus } from '@aws-sdk/client-lambda';
import { AwsClientStub, mockClient } from 'aws-sdk-client-mock';
import 'aws-sdk-client-mock-jest';
import type { FunctionRelease, JobOutcome, ReleasedFunction, ServerlessReleaseDeps } from '../../src/handlers/serverless-release.lambda';

// The handler creates its SDK clients when loaded, and on Node < 22 the SDK then emits a NodeVersionSupportWarning,
// which keeps a jest worker from exiting cleanly. The Lambda runtime is nodejs24.x, where the warning does not apply,
// so the tests switch it off before loading the handler.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
const {
  FUNCTIONS_PER_ALARM,
  MAX_FUNCTIONS,
  MAX_POLLS,
  POLL_DELAY_MS,
  REPORTING_MARGIN_MS,
  RELEASE_MARGIN_MS,
  SWEEP_PAGE_LIMIT,
  UPDATE_POLL_MS,
  UPDATE_TIMEOUT_MS,
  alarmNameFor,
  artifactKey,
  buildAlarm,
  buildAppSpec,
  chunk,
  describeDeployment,
  encodeState,
  handler,
  isThrottling,
  parseContinuationToken,
  parseDeploymentDescription,
  parseFunctions,
  parseUserParameters,
  readConfig,
  releaseIdFor,
  serverlessRelease,
  // eslint-disable-next-line @typescript-eslint/no-require-imports
}: typeof import('../../src/handlers/serverless-release.lambda') = require('../../src/handlers/serverless-release.lambda');

// ---------------------------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------------------------

const JOB_ID = '3f2a9c1e-5b7d-4e21-9a0f-1c2d3e4f5a6b';
const RELEASE_ID = '3f2a9c1e';
const PREFIX = 'releases/0f1e2d3c-4b5a-6978-8a9b-abcdefabcdef';
const APPLICATION = 'orders-api-release';
const BUCKET = 'orders-pipeline-artifacts';
const HOOK = 'orders-api-pre-traffic';
const ALARM_PREFIX = 'orders-api-release';
const TOPIC = 'arn:aws:sns:us-east-1:123456789012:orders-alerts';
const ALARM_1 = `${ALARM_PREFIX}-${RELEASE_ID}-1`;
const ALARM_2 = `${ALARM_PREFIX}-${RELEASE_ID}-2`;
const SECRET = 'artifact-secret-that-must-never-be-logged';

const fnOf = (id: string): ReleasedFunction => ({ id, functionName: `orders-api-${id}`, aliasName: 'live', deploymentGroupName: `orders-api-${id}-deployment` });
const A = fnOf('GetSleepSecs');
const B = fnOf('PostItems');
const C = fnOf('GetRoot');

/** A deployment id as CodeDeploy writes them: `d-` and 9 characters. */
const deploymentIdOf = (fn: ReleasedFunction) => `d-${fn.id.toUpperCase().replace(/[^A-Z0-9]/g, '').slice(0, 9).padEnd(9, 'X')}`;
const shaOf = (fn: ReleasedFunction) => `sha-of-${fn.id}=`;

function envFor(functions: readonly ReleasedFunction[], extra: Record<string, string> = {}): Record<string, string> {
  return {
    FUNCTIONS: JSON.stringify(functions),
    CODEDEPLOY_APPLICATION: APPLICATION,
    ARTIFACT_BUCKET: BUCKET,
    PRE_TRAFFIC_HOOK: HOOK,
    ALARM_PREFIX,
    ALARM_TOPIC_ARN: TOPIC,
    ...extra,
  };
}

/** The event of "Invoke an AWS Lambda function in a pipeline in CodePipeline", with the fields this handler reads. */
function jobEvent(options: { userParameters?: string | null; continuationToken?: string } = {}) {
  const userParameters = options.userParameters === undefined ? JSON.stringify({ prefix: PREFIX }) : options.userParameters;
  return {
    'CodePipeline.job': {
      id: JOB_ID,
      accountId: '123456789012',
      data: {
        actionConfiguration: {
          configuration: { FunctionName: 'serverless-release', ...(userParameters === null ? {} : { UserParameters: userParameters }) },
        },
        inputArtifacts: [],
        outputArtifacts: [],
        artifactCredentials: { accessKeyId: 'AKIAIOSFODNN7EXAMPLE', secretAccessKey: SECRET, sessionToken: SECRET },
        ...(options.continuationToken === undefined ? {} : { continuationToken: options.continuationToken }),
      },
    },
  };
}

/** A function of a test release: the version its alias serves and the version publishing returns. */
interface FnSpec {
  readonly fn: ReleasedFunction;
  readonly previous: string;
  readonly target: string;
  readonly weights?: Record<string, number>;
  /** `LastUpdateStatus` answers before `Successful`. @default ['InProgress'] */
  readonly statuses?: LastUpdateStatus[];
}

const releaseOf = (spec: FnSpec): FunctionRelease => ({
  id: spec.fn.id,
  functionName: spec.fn.functionName,
  aliasName: spec.fn.aliasName,
  previousVersion: spec.previous,
  targetVersion: spec.target,
});

const SPEC_A: FnSpec = { fn: A, previous: '7', target: '8' };
const SPEC_B: FnSpec = { fn: B, previous: '12', target: '13' };
const SPEC_C: FnSpec = { fn: C, previous: '2', target: '3' };

/** The continuation token of a release in its wait phase. */
function waitToken(specs: readonly FnSpec[], polls = 0, alarms = 1): string {
  return JSON.stringify({ phase: 'wait', polls, releaseId: RELEASE_ID, alarms, deployments: specs.map((s) => deploymentIdOf(s.fn)) });
}

// ---------------------------------------------------------------------------------------------------------------
// Mocks
// ---------------------------------------------------------------------------------------------------------------

let lambdaMock: AwsClientStub<LambdaClient>;
let codeDeployMock: AwsClientStub<CodeDeployClient>;
let cloudWatchMock: AwsClientStub<CloudWatchClient>;
let cpMock: AwsClientStub<CodePipelineClient>;
let logSpy: jest.SpyInstance;
let errorSpy: jest.SpyInstance;
const savedEnv = process.env;

/** Lambda answers for a first invocation. */
function lambdaAnswers(specs: readonly FnSpec[]): void {
  for (const spec of specs) {
    const FunctionName = spec.fn.functionName;
    lambdaMock.on(GetAliasCommand, { FunctionName }).resolves({
      Name: spec.fn.aliasName,
      FunctionVersion: spec.previous,
      ...(spec.weights === undefined ? {} : { RoutingConfig: { AdditionalVersionWeights: spec.weights } }),
    });
    lambdaMock.on(UpdateFunctionCodeCommand, { FunctionName }).resolves({ FunctionName, CodeSha256: shaOf(spec.fn), LastUpdateStatus: 'InProgress' });
    let configuration = lambdaMock.on(GetFunctionConfigurationCommand, { FunctionName });
    for (const status of spec.statuses ?? ['InProgress']) {
      configuration = configuration.resolvesOnce({ FunctionName, LastUpdateStatus: status });
    }
    configuration.resolves({ FunctionName, LastUpdateStatus: 'Successful' });
    lambdaMock.on(PublishVersionCommand, { FunctionName }).resolves({ FunctionName, Version: spec.target });
  }
}

/** CodeDeploy creates a deployment per function. */
function createAnswers(specs: readonly FnSpec[]): void {
  for (const spec of specs) {
    codeDeployMock.on(CreateDeploymentCommand, { deploymentGroupName: spec.fn.deploymentGroupName })
      .resolves({ deploymentId: deploymentIdOf(spec.fn) });
  }
}

/** CodeDeploy tells the state of each function's deployment. */
function deploymentAnswers(entries: ReadonlyArray<{ spec: FnSpec; status: DeploymentStatus; info?: Partial<DeploymentInfo> }>): void {
  for (const { spec, status, info } of entries) {
    const deploymentId = deploymentIdOf(spec.fn);
    codeDeployMock.on(GetDeploymentCommand, { deploymentId }).resolves({
      deploymentInfo: {
        applicationName: APPLICATION,
        deploymentGroupName: spec.fn.deploymentGroupName,
        deploymentId,
        status,
        description: describeDeployment(releaseOf(spec)),
        ...info,
      },
    });
  }
}

beforeEach(() => {
  process.env = { ...savedEnv, ...envFor([A, B]) };
  lambdaMock = mockClient(LambdaClient);
  codeDeployMock = mockClient(CodeDeployClient);
  cloudWatchMock = mockClient(CloudWatchClient);
  cpMock = mockClient(CodePipelineClient);
  cloudWatchMock.onAnyCommand().resolves({});
  cloudWatchMock.on(DescribeAlarmsCommand).resolves({ MetricAlarms: [] });
  cpMock.onAnyCommand().resolves({});
  codeDeployMock.on(StopDeploymentCommand).resolves({ status: 'Pending', statusMessage: 'Stopping' });
  lambdaMock.on(UpdateAliasCommand).resolves({});
  logSpy = jest.spyOn(console, 'log').mockImplementation(() => undefined);
  errorSpy = jest.spyOn(console, 'error').mockImplementation(() => undefined);
});

afterEach(() => {
  lambdaMock.restore();
  codeDeployMock.restore();
  cloudWatchMock.restore();
  cpMock.restore();
  jest.restoreAllMocks();
  jest.useRealTimers();
  process.env = savedEnv;
});

type Call = { calledBefore: (other: never) => boolean; args: unknown[] };

/** Every command sent to the four clients, in the order sent, as `[command name, input]`. */
function sent(): Array<[string, Record<string, unknown>]> {
  const calls = [...lambdaMock.calls(), ...codeDeployMock.calls(), ...cloudWatchMock.calls(), ...cpMock.calls()] as unknown as Call[];
  calls.sort((a, b) => (a.calledBefore(b as never) ? -1 : 1));
  return calls.map((c) => {
    const command = c.args[0] as { constructor: { name: string }; input: Record<string, unknown> };
    return [command.constructor.name, command.input];
  });
}

/** The names of the commands sent, in order. */
const sentNames = () => sent().map(([name]) => name);

/** The position in `sent()` of the first command named `name` whose input matches `input` (partially). */
function indexOf(name: string, input: Record<string, unknown> = {}): number {
  const index = sent().findIndex(([n, i]) => n === name && Object.entries(input).every(([k, v]) => JSON.stringify(i[k]) === JSON.stringify(v)));
  expect(index).toBeGreaterThanOrEqual(0);
  return index;
}

/** The failure message sent to CodePipeline (exactly one failure expected). */
function failure(): { type?: string; message: string } {
  expect(cpMock).toHaveReceivedCommandTimes(PutJobFailureResultCommand, 1);
  expect(cpMock).not.toHaveReceivedCommand(PutJobSuccessResultCommand);
  const details = cpMock.commandCalls(PutJobFailureResultCommand)[0].args[0].input.failureDetails;
  return { type: details?.type, message: details?.message ?? '' };
}

/** The continuation token sent to CodePipeline (exactly one success expected), parsed. */
function continuation(): unknown {
  expect(cpMock).toHaveReceivedCommandTimes(PutJobSuccessResultCommand, 1);
  expect(cpMock).not.toHaveReceivedCommand(PutJobFailureResultCommand);
  const input = cpMock.commandCalls(PutJobSuccessResultCommand)[0].args[0].input;
  expect(input.outputVariables).toBeUndefined();
  return JSON.parse(input.continuationToken ?? 'null');
}

/** Runs the handler's logic with a fake sleep that records its pauses and moves a fake clock. */
async function run(event: unknown, deps: ServerlessReleaseDeps = {}): Promise<{ outcome: JobOutcome | undefined; sleeps: number[] }> {
  const sleeps: number[] = [];
  let clock = 1_000_000;
  const outcome = await serverlessRelease(event, {
    sleep: async (ms) => {
      sleeps.push(ms);
      clock += ms;
    },
    now: () => clock,
    ...deps,
  });
  return { outcome, sleeps };
}

/** The structured log lines written with `console.log`. */
function logLines(): Array<Record<string, unknown>> {
  return logSpy.mock.calls.map(([line]) => JSON.parse(String(line)));
}

/** The names of the commands sent to CloudWatch, in order. */
function cloudWatchCommandNames(): string[] {
  return cloudWatchMock.calls().map((c) => (c.args[0] as { constructor: { name: string } }).constructor.name);
}

const accessDenied = (action: string) => new LambdaServiceException({
  name: 'AccessDeniedException',
  $fault: 'client',
  message: `User: arn:aws:sts::123456789012:assumed-role/serverless-release/fn is not authorized to perform: ${action}`,
  $metadata: { httpStatusCode: 403 },
});
const lambdaThrottled = () => new LambdaServiceException({ name: 'TooManyRequestsException', $fault: 'client', message: 'Rate exceeded', $metadata: { httpStatusCode: 429 } });
const cloudWatchAccessDenied = (action: string) => new CloudWatchServiceException({
  name: 'AccessDenied',
  $fault: 'client',
  message: `User: arn:aws:sts::123456789012:assumed-role/serverless-release/fn is not authorized to perform: ${action}`,
  $metadata: { httpStatusCode: 403 },
});
const codeDeployThrottled = () => new CodeDeployServiceException({ name: 'ThrottlingException', $fault: 'client', message: 'Rate exceeded', $metadata: { httpStatusCode: 400 } });

/** The AppSpec of a CreateDeployment call, parsed. */
function appSpecOf(input: { revision?: { appSpecContent?: { content?: string } } }): unknown {
  return JSON.parse(input.revision?.appSpecContent?.content ?? 'null');
}

const metricOf = (spec: FnSpec, index: number) => ({
  Id: `m${index}`,
  MetricStat: {
    Metric: {
      Namespace: 'AWS/Lambda',
      MetricName: 'Errors',
      Dimensions: [
        { Name: 'FunctionName', Value: spec.fn.functionName },
        { Name: 'Resource', Value: `${spec.fn.functionName}:live` },
        { Name: 'ExecutedVersion', Value: spec.target },
      ],
    },
    Period: 60,
    Stat: 'Sum',
  },
  ReturnData: false,
});

// ---------------------------------------------------------------------------------------------------------------
// Pure helpers
// ---------------------------------------------------------------------------------------------------------------

describe('parseFunctions', () => {
  test('reads the functions, ignoring other keys', () => {
    const text = JSON.stringify([{ ...A, note: 'x' }, B]);
    expect(parseFunctions(text)).toEqual({ ok: true, value: [A, B] });
  });

  test('accepts up to MAX_FUNCTIONS functions', () => {
    const many = Array.from({ length: MAX_FUNCTIONS }, (_, i) => fnOf(`Fn${i}`));
    expect(parseFunctions(JSON.stringify(many))).toEqual({ ok: true, value: many });
  });

  test.each([
    [undefined, 'FUNCTIONS is not set: expected a JSON array of functions'],
    ['[]', 'FUNCTIONS must be a JSON array of 1 to 100 functions, got []'],
    ['{}', 'FUNCTIONS must be a JSON array of 1 to 100 functions, got {}'],
    ['[7]', 'FUNCTIONS[0] must be an object, got 7'],
    [JSON.stringify([{ ...A, deploymentGroupName: undefined }]), 'FUNCTIONS[0].deploymentGroupName must be a non-empty string without whitespace, got missing'],
    [JSON.stringify([A, { ...B, functionName: 'a b' }]), 'FUNCTIONS[1].functionName must be a non-empty string without whitespace, got "a b"'],
    [JSON.stringify([{ ...A, id: 'Get/Sleep' }]), 'FUNCTIONS[0].id must be 1-100 letters, digits, - or _, got "Get/Sleep"'],
    [JSON.stringify([{ ...A, aliasName: '12' }]), 'FUNCTIONS[0].aliasName is not a Lambda alias name, got "12"'],
    [JSON.stringify([A, { ...B, id: A.id }]), 'FUNCTIONS[1].id repeats "GetSleepSecs"'],
    [JSON.stringify([A, { ...B, functionName: A.functionName }]), 'FUNCTIONS[1].functionName repeats "orders-api-GetSleepSecs"'],
  ])('rejects %j', (text, error) => {
    expect(parseFunctions(text)).toEqual({ ok: false, error });
  });

  test('rejects more than MAX_FUNCTIONS functions and text that is not JSON', () => {
    const tooMany = Array.from({ length: MAX_FUNCTIONS + 1 }, (_, i) => fnOf(`Fn${i}`));
    expect(parseFunctions(JSON.stringify(tooMany))).toMatchObject({ ok: false, error: expect.stringMatching(/^FUNCTIONS must be a JSON array of 1 to 100 functions/) });
    expect(parseFunctions('[{')).toMatchObject({ ok: false, error: expect.stringMatching(/^FUNCTIONS is not valid JSON \(.+\)$/) });
  });
});

describe('readConfig', () => {
  test('reads every variable; the topic is optional', () => {
    expect(readConfig(envFor([A]))).toEqual({
      ok: true,
      value: {
        functions: [A],
        applicationName: APPLICATION,
        artifactBucket: BUCKET,
        preTrafficHook: HOOK,
        alarmPrefix: ALARM_PREFIX,
        alarmTopicArn: TOPIC,
        maxPolls: MAX_POLLS,
      },
    });
    expect(readConfig(envFor([A], { ALARM_TOPIC_ARN: '' }))).toEqual({
      ok: true,
      value: {
        functions: [A],
        applicationName: APPLICATION,
        artifactBucket: BUCKET,
        preTrafficHook: HOOK,
        alarmPrefix: ALARM_PREFIX,
        maxPolls: MAX_POLLS,
      },
    });
  });

  test('MAX_WAIT_MINUTES sets how long the release may take (a slow linear configuration needs more than the default)', () => {
    const config = readConfig(envFor([A], { MAX_WAIT_MINUTES: '150' }));
    expect(config).toMatchObject({ ok: true, value: { maxPolls: Math.ceil((150 * 60_000) / POLL_DELAY_MS) } });
    expect(readConfig(envFor([A], { MAX_WAIT_MINUTES: '0' }))).toMatchObject({ ok: false, error: expect.stringMatching(/^MAX_WAIT_MINUTES must be/) });
    expect(readConfig(envFor([A], { MAX_WAIT_MINUTES: '2000' }))).toMatchObject({ ok: false });
    expect(readConfig(envFor([A], { MAX_WAIT_MINUTES: 'soon' }))).toMatchObject({ ok: false });
  });

  test('names every missing variable', () => {
    expect(readConfig({ FUNCTIONS: JSON.stringify([A]), ARTIFACT_BUCKET: ' ' })).toEqual({
      ok: false,
      error: 'environment variable(s) not set: CODEDEPLOY_APPLICATION, ARTIFACT_BUCKET, PRE_TRAFFIC_HOOK, ALARM_PREFIX',
    });
  });

  test('rejects a topic that is not an ARN and an overlong alarm prefix', () => {
    expect(readConfig(envFor([A], { ALARM_TOPIC_ARN: 'orders-alerts' }))).toEqual({
      ok: false,
      error: 'ALARM_TOPIC_ARN must be an SNS topic ARN, got "orders-alerts"',
    });
    expect(readConfig(envFor([A], { ALARM_PREFIX: 'x'.repeat(201) }))).toMatchObject({ ok: false, error: expect.stringMatching(/^ALARM_PREFIX must be at most 200/) });
  });
});

describe('parseUserParameters', () => {
  test('reads the prefix and ignores other keys', () => {
    expect(parseUserParameters(JSON.stringify({ prefix: PREFIX, note: 'x' }))).toEqual({ ok: true, value: { prefix: PREFIX } });
    expect(parseUserParameters('{"prefix":"abc"}')).toEqual({ ok: true, value: { prefix: 'abc' } });
  });

  const shape = 'UserParameters.prefix must be an S3 key prefix like releases/<id> (no whitespace, no leading, trailing or double /, no . or .. segment), got';
  test.each([
    [undefined, 'UserParameters is missing: expected {"prefix":"<S3 key prefix>"}'],
    ['', 'UserParameters is missing: expected {"prefix":"<S3 key prefix>"}'],
    [42, 'UserParameters must be a string of JSON, got 42'],
    ['[1]', 'UserParameters must be a JSON object like {"prefix":"<S3 key prefix>"}, got [1]'],
    ['{}', 'UserParameters.prefix must be a non-empty string, got missing'],
    ['{"prefix":7}', 'UserParameters.prefix must be a non-empty string, got 7'],
    ['{"prefix":"releases/a b"}', `${shape} "releases/a b"`],
    ['{"prefix":"/releases/x"}', `${shape} "/releases/x"`],
    ['{"prefix":"releases/x/"}', `${shape} "releases/x/"`],
    ['{"prefix":"releases//x"}', `${shape} "releases//x"`],
    ['{"prefix":"releases/../x"}', `${shape} "releases/../x"`],
  ])('rejects %j', (input, error) => {
    expect(parseUserParameters(input)).toEqual({ ok: false, error });
  });

  test('rejects text that is not JSON, quoting it', () => {
    const parsed = parseUserParameters('prefix=releases/x');
    expect(!parsed.ok && parsed.error).toMatch(/^UserParameters is not valid JSON \(.+\): "prefix=releases\/x"$/);
  });
});

describe('names and groups', () => {
  test('artifactKey: <prefix>/<id>.zip', () => {
    expect(artifactKey(PREFIX, 'GetSleepSecs')).toBe(`${PREFIX}/GetSleepSecs.zip`);
  });

  test('releaseIdFor: the job id\'s first 8 characters, else the prefix\'s last segment', () => {
    expect(releaseIdFor(JOB_ID, PREFIX)).toBe(RELEASE_ID);
    expect(releaseIdFor(JOB_ID, 'other')).toBe(RELEASE_ID);
    expect(releaseIdFor('', 'releases/exec-1234')).toBe('exec-1234');
    expect(releaseIdFor('////', 'releases/###')).toBe('release');
  });

  test('alarmNameFor', () => {
    expect(alarmNameFor(ALARM_PREFIX, RELEASE_ID, 1)).toBe(ALARM_1);
  });

  test('chunk', () => {
    expect(chunk([1, 2, 3, 4, 5], 2)).toEqual([[1, 2], [3, 4], [5]]);
    expect(chunk([], 10)).toEqual([]);
    expect(chunk([1], 10)).toEqual([[1]]);
    expect(() => chunk([1], 0)).toThrow('chunk size must be a positive integer, got 0');
  });
});

describe('buildAppSpec', () => {
  test('moves the alias from the previous to the target version, with the pre-traffic hook; version written 0.0', () => {
    const content = buildAppSpec(releaseOf(SPEC_A), HOOK);
    expect(content.startsWith('{"version":0.0,"Resources":')).toBe(true);
    expect(JSON.parse(content)).toEqual({
      version: 0,
      Resources: [{
        GetSleepSecs: {
          Type: 'AWS::Lambda::Function',
          Properties: { Name: A.functionName, Alias: 'live', CurrentVersion: '7', TargetVersion: '8' },
        },
      }],
      Hooks: [{ BeforeAllowTraffic: HOOK }],
    });
  });
});

describe('buildAlarm', () => {
  test('sums the errors of the new versions; actions only with a topic', () => {
    const options = { releaseId: RELEASE_ID, prefix: PREFIX };
    const alarm = buildAlarm(ALARM_1, [releaseOf(SPEC_A), releaseOf(SPEC_B)], options);
    expect(alarm).toEqual({
      AlarmName: ALARM_1,
      AlarmDescription: `Errors of the new versions of release ${RELEASE_ID} (${PREFIX}): GetSleepSecs (orders-api-GetSleepSecs) version 8, `
        + 'PostItems (orders-api-PostItems) version 13. CodeDeploy stops and rolls back every deployment of the release when this alarm fires. '
        + 'Deleted when the release ends.',
      ActionsEnabled: true,
      Metrics: [
        metricOf(SPEC_A, 0),
        metricOf(SPEC_B, 1),
        { Id: 'errors', Expression: 'SUM([m0,m1])', Label: 'Errors of the new versions', ReturnData: true },
      ],
      Threshold: 1,
      ComparisonOperator: 'GreaterThanOrEqualToThreshold',
      EvaluationPeriods: 1,
      DatapointsToAlarm: 1,
      TreatMissingData: 'notBreaching',
    });
    expect(buildAlarm(ALARM_1, [releaseOf(SPEC_A)], { ...options, alarmTopicArn: TOPIC }).AlarmActions).toEqual([TOPIC]);
  });

  test('watches 1 to FUNCTIONS_PER_ALARM functions; the description is cut to 1024 characters', () => {
    const options = { releaseId: RELEASE_ID, prefix: PREFIX };
    const many = Array.from({ length: FUNCTIONS_PER_ALARM }, (_, i) => releaseOf({ fn: fnOf(`Function${'x'.repeat(90)}${i}`), previous: '1', target: '2' }));
    const alarm = buildAlarm(ALARM_1, many, options);
    expect(alarm.Metrics).toHaveLength(FUNCTIONS_PER_ALARM + 1);
    expect(alarm.Metrics?.[FUNCTIONS_PER_ALARM].Expression).toBe('SUM([m0,m1,m2,m3,m4,m5,m6,m7,m8,m9])');
    expect(alarm.AlarmDescription).toHaveLength(1024);
    expect(() => buildAlarm(ALARM_1, [...many, releaseOf(SPEC_A)], options)).toThrow('an alarm watches 1 to 10 functions, got 11');
    expect(() => buildAlarm(ALARM_1, [], options)).toThrow('an alarm watches 1 to 10 functions, got 0');
  });
});

describe('deployment description', () => {
  test('round trip', () => {
    const description = describeDeployment(releaseOf(SPEC_A));
    expect(JSON.parse(description)).toEqual({ functionId: A.id, functionName: A.functionName, aliasName: 'live', targetVersion: '8', previousVersion: '7' });
    expect(parseDeploymentDescription(description)).toEqual(releaseOf(SPEC_A));
  });

  test.each([undefined, 'Deployed by hand', '[]', '{"functionId":"x"}', 7])('%j names no release', (description) => {
    expect(parseDeploymentDescription(description)).toBeUndefined();
  });
});

describe('continuation token', () => {
  test('no token: the first invocation', () => {
    expect(parseContinuationToken(undefined)).toEqual({ kind: 'start' });
    expect(parseContinuationToken('')).toEqual({ kind: 'start' });
  });

  test('round trip', () => {
    const state = { phase: 'wait' as const, polls: 4, releaseId: RELEASE_ID, alarms: 2, deployments: ['d-AAAAAAAAA', 'd-BBBBBBBBB'] };
    expect(JSON.parse(encodeState(state))).toEqual(state);
    expect(parseContinuationToken(encodeState(state))).toEqual({ kind: 'wait', state });
  });

  test('a state for 100 functions fits in CodePipeline\'s 2048 characters', () => {
    const deployments = Array.from({ length: MAX_FUNCTIONS }, (_, i) => `d-${String(i).padStart(9, 'X')}`);
    expect(encodeState({ phase: 'wait', polls: MAX_POLLS, releaseId: RELEASE_ID, alarms: 10, deployments }).length).toBeLessThanOrEqual(2048);
  });

  test.each([
    'garbage',
    '[]',
    '{"phase":"done","polls":0,"releaseId":"r","alarms":1,"deployments":["d-1"]}',
    '{"phase":"wait","polls":-1,"releaseId":"r","alarms":1,"deployments":["d-1"]}',
    '{"phase":"wait","polls":0,"releaseId":"","alarms":1,"deployments":["d-1"]}',
    '{"phase":"wait","polls":0,"releaseId":"r","alarms":11,"deployments":["d-1"]}',
    '{"phase":"wait","polls":0,"releaseId":"r","alarms":1,"deployments":[]}',
    '{"phase":"wait","polls":0,"releaseId":"r","alarms":1,"deployments":[""]}',
    '{"polls":3}',
    12,
  ])('%j is invalid', (token) => {
    expect(parseContinuationToken(token)).toMatchObject({ kind: 'invalid' });
  });
});

describe('isThrottling', () => {
  const errors: Array<[string, unknown]> = [
    ['Lambda TooManyRequestsException', lambdaThrottled()],
    ['CodeDeploy ThrottlingException', codeDeployThrottled()],
    ['CloudWatch Throttling', { name: 'Throttling' }],
    ['HTTP 503', { name: 'UnknownError', $metadata: { httpStatusCode: 503 } }],
    ['$retryable', { name: 'SomethingNew', $retryable: { throttling: true } }],
    ['network reset', Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' })],
    ['AccessDeniedException', accessDenied('lambda:GetAlias')],
    ['DeploymentLimitExceededException', new DeploymentLimitExceededException({ message: 'in progress', $metadata: {} })],
    ['ResourceConflictException', new LambdaServiceException({ name: 'ResourceConflictException', $fault: 'client', message: 'update in progress', $metadata: {} })],
    ['a plain Error', new Error('boom')],
    ['undefined', undefined],
  ];

  test.each(errors.slice(0, 6))('true for %s', (_label, err) => {
    expect(isThrottling(err)).toBe(true);
  });

  test.each(errors.slice(6))('false for %s', (_label, err) => {
    expect(isThrottling(err)).toBe(false);
  });

  test('classifies exactly as record-release does', () => {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const recordRelease: typeof import('../../src/handlers/record-release.lambda') = require('../../src/handlers/record-release.lambda');
    for (const [, err] of errors) expect(isThrottling(err)).toBe(recordRelease.isThrottling(err));
  });
});

// ---------------------------------------------------------------------------------------------------------------
// First invocation
// ---------------------------------------------------------------------------------------------------------------

describe('first invocation: ships the code and starts the deployments', () => {
  test('two changed functions: code, versions, one alarm on both new versions, two deployments, the state', async () => {
    lambdaAnswers([SPEC_A, SPEC_B]);
    createAnswers([SPEC_A, SPEC_B]);
    const { outcome, sleeps } = await run(jobEvent());
    expect(outcome).toEqual({ result: 'continue', polls: 0 });

    // Aliases read, code shipped from the release's zips, versions published for exactly that code.
    for (const spec of [SPEC_A, SPEC_B]) {
      const FunctionName = spec.fn.functionName;
      expect(lambdaMock).toHaveReceivedCommandWith(GetAliasCommand, { FunctionName, Name: 'live' });
      expect(lambdaMock).toHaveReceivedCommandWith(UpdateFunctionCodeCommand, {
        FunctionName, S3Bucket: BUCKET, S3Key: `${PREFIX}/${spec.fn.id}.zip`, Publish: false,
      });
      expect(lambdaMock).toHaveReceivedCommandWith(GetFunctionConfigurationCommand, { FunctionName });
      expect(lambdaMock).toHaveReceivedCommandWith(PublishVersionCommand, { FunctionName, CodeSha256: shaOf(spec.fn) });
    }
    expect(lambdaMock).toHaveReceivedCommandTimes(GetAliasCommand, 2);
    expect(lambdaMock).toHaveReceivedCommandTimes(UpdateFunctionCodeCommand, 2);
    expect(lambdaMock).toHaveReceivedCommandTimes(GetFunctionConfigurationCommand, 4); // InProgress, then Successful
    expect(lambdaMock).toHaveReceivedCommandTimes(PublishVersionCommand, 2);
    expect(lambdaMock).not.toHaveReceivedCommand(UpdateAliasCommand);
    expect(sleeps).toEqual([UPDATE_POLL_MS, UPDATE_POLL_MS]);

    // The sweep of stale alarms found none: nothing deleted. Then one alarm on the errors of both new versions.
    expect(cloudWatchMock).toHaveReceivedCommandTimes(DescribeAlarmsCommand, 1);
    expect(cloudWatchMock).toHaveReceivedCommandWith(DescribeAlarmsCommand, { AlarmNamePrefix: `${ALARM_PREFIX}-`, AlarmTypes: ['MetricAlarm'] });
    expect(cloudWatchMock).toHaveReceivedCommandTimes(PutMetricAlarmCommand, 1);
    const alarm = cloudWatchMock.commandCalls(PutMetricAlarmCommand)[0].args[0].input;
    expect(alarm).toMatchObject({
      AlarmName: ALARM_1,
      AlarmActions: [TOPIC],
      Threshold: 1,
      ComparisonOperator: 'GreaterThanOrEqualToThreshold',
      EvaluationPeriods: 1,
      DatapointsToAlarm: 1,
      TreatMissingData: 'notBreaching',
    });
    expect(alarm.Metrics).toEqual([
      metricOf(SPEC_A, 0),
      metricOf(SPEC_B, 1),
      { Id: 'errors', Expression: 'SUM([m0,m1])', Label: 'Errors of the new versions', ReturnData: true },
    ]);
    expect(cloudWatchMock).not.toHaveReceivedCommand(DeleteAlarmsCommand);

    // One deployment per function, each watched by the release alarm, rolling back on its own failure.
    expect(codeDeployMock).toHaveReceivedCommandTimes(CreateDeploymentCommand, 2);
    for (const [index, spec] of [SPEC_A, SPEC_B].entries()) {
      const input = codeDeployMock.commandCalls(CreateDeploymentCommand)[index].args[0].input;
      expect(input).toEqual({
        applicationName: APPLICATION,
        deploymentGroupName: spec.fn.deploymentGroupName,
        revision: { revisionType: 'AppSpecContent', appSpecContent: { content: expect.any(String) } },
        description: JSON.stringify({
          functionId: spec.fn.id, functionName: spec.fn.functionName, aliasName: 'live', targetVersion: spec.target, previousVersion: spec.previous,
        }),
        overrideAlarmConfiguration: { enabled: true, ignorePollAlarmFailure: false, alarms: [{ name: ALARM_1 }] },
        autoRollbackConfiguration: { enabled: true, events: ['DEPLOYMENT_FAILURE', 'DEPLOYMENT_STOP_ON_ALARM', 'DEPLOYMENT_STOP_ON_REQUEST'] },
      });
      expect(appSpecOf(input)).toEqual({
        version: 0,
        Resources: [{
          [spec.fn.id]: {
            Type: 'AWS::Lambda::Function',
            Properties: { Name: spec.fn.functionName, Alias: 'live', CurrentVersion: spec.previous, TargetVersion: spec.target },
          },
        }],
        Hooks: [{ BeforeAllowTraffic: HOOK }],
      });
    }
    expect(codeDeployMock).not.toHaveReceivedCommand(StopDeploymentCommand);

    // The state for the next invocations.
    expect(cpMock).toHaveReceivedCommandWith(PutJobSuccessResultCommand, { jobId: JOB_ID });
    expect(continuation()).toEqual({ phase: 'wait', polls: 0, releaseId: RELEASE_ID, alarms: 1, deployments: [deploymentIdOf(A), deploymentIdOf(B)] });

    // Order: aliases before any code; per function update, wait, publish; versions before the alarm; the alarm
    // before the deployments; the deployments before the report.
    const names = sentNames();
    expect(names.slice(0, 3)).toEqual(['GetAliasCommand', 'GetAliasCommand', 'DescribeAlarmsCommand']);
    expect(names.indexOf('DescribeAlarmsCommand')).toBeLessThan(names.indexOf('UpdateFunctionCodeCommand'));
    for (const spec of [SPEC_A, SPEC_B]) {
      const FunctionName = spec.fn.functionName;
      expect(indexOf('UpdateFunctionCodeCommand', { FunctionName })).toBeLessThan(indexOf('GetFunctionConfigurationCommand', { FunctionName }));
      expect(indexOf('GetFunctionConfigurationCommand', { FunctionName })).toBeLessThan(indexOf('PublishVersionCommand', { FunctionName }));
    }
    expect(names.lastIndexOf('PublishVersionCommand')).toBeLessThan(names.indexOf('PutMetricAlarmCommand'));
    expect(names.slice(names.indexOf('PutMetricAlarmCommand'))).toEqual([
      'PutMetricAlarmCommand', 'CreateDeploymentCommand', 'CreateDeploymentCommand', 'PutJobSuccessResultCommand',
    ]);
    expect(indexOf('CreateDeploymentCommand', { deploymentGroupName: A.deploymentGroupName }))
      .toBeLessThan(indexOf('CreateDeploymentCommand', { deploymentGroupName: B.deploymentGroupName }));
  });

  test('logs the deployments as JSON, never the event (it carries artifact credentials)', async () => {
    lambdaAnswers([SPEC_A, SPEC_B]);
    createAnswers([SPEC_A, SPEC_B]);
    await run(jobEvent());
    expect(logLines()).toEqual([expect.objectContaining({
      level: 'INFO',
      message: 'deployments created: following them',
      jobId: JOB_ID,
      releaseId: RELEASE_ID,
      prefix: PREFIX,
      alarms: [ALARM_1],
      unchanged: [],
      deployments: [
        { id: A.id, deploymentId: deploymentIdOf(A), from: '7', to: '8' },
        { id: B.id, deploymentId: deploymentIdOf(B), from: '12', to: '13' },
      ],
    })]);
    expect(JSON.stringify([logSpy.mock.calls, errorSpy.mock.calls])).not.toContain(SECRET);
  });

  test('a function whose published version is the one its alias serves is not deployed', async () => {
    const unchangedA: FnSpec = { ...SPEC_A, target: SPEC_A.previous };
    lambdaAnswers([unchangedA, SPEC_B]);
    createAnswers([SPEC_B]);
    await run(jobEvent());
    expect(lambdaMock).toHaveReceivedCommandTimes(PublishVersionCommand, 2);
    expect(cloudWatchMock).toHaveReceivedCommandTimes(PutMetricAlarmCommand, 1);
    expect(cloudWatchMock.commandCalls(PutMetricAlarmCommand)[0].args[0].input.Metrics).toEqual([
      metricOf(SPEC_B, 0),
      { Id: 'errors', Expression: 'SUM([m0])', Label: 'Errors of the new versions', ReturnData: true },
    ]);
    expect(codeDeployMock).toHaveReceivedCommandTimes(CreateDeploymentCommand, 1);
    expect(codeDeployMock).toHaveReceivedCommandWith(CreateDeploymentCommand, { deploymentGroupName: B.deploymentGroupName });
    expect(continuation()).toEqual({ phase: 'wait', polls: 0, releaseId: RELEASE_ID, alarms: 1, deployments: [deploymentIdOf(B)] });
    expect(logLines()[0]).toMatchObject({ unchanged: [A.id] });
  });

  test('nothing changed: success without alarms or deployments', async () => {
    lambdaAnswers([{ ...SPEC_A, target: SPEC_A.previous }, { ...SPEC_B, target: SPEC_B.previous }]);
    const { outcome } = await run(jobEvent());
    expect(outcome).toEqual({ result: 'unchanged' });
    expect(lambdaMock).toHaveReceivedCommandTimes(PublishVersionCommand, 2);
    expect(cloudWatchCommandNames()).toEqual(['DescribeAlarmsCommand']); // the sweep only
    expect(codeDeployMock).not.toHaveReceivedAnyCommand();
    expect(cpMock).toHaveReceivedCommandTimes(PutJobSuccessResultCommand, 1);
    expect(cpMock).toHaveReceivedCommandWith(PutJobSuccessResultCommand, { jobId: JOB_ID, outputVariables: { versions: 'none' } });
    expect(cpMock).not.toHaveReceivedCommand(PutJobFailureResultCommand);
    expect(logLines()).toEqual([expect.objectContaining({ message: 'nothing to shift: every alias already serves the published code', unchanged: [A.id, B.id] })]);
  });

  test('more than 10 changed functions: two alarms, and every deployment is watched by both', async () => {
    const specs = Array.from({ length: 12 }, (_, i): FnSpec => ({ fn: fnOf(`Fn${String(i + 1).padStart(2, '0')}`), previous: '1', target: '2' }));
    process.env.FUNCTIONS = JSON.stringify(specs.map((s) => s.fn));
    lambdaAnswers(specs);
    createAnswers(specs);
    await run(jobEvent());
    expect(cloudWatchMock).toHaveReceivedCommandTimes(PutMetricAlarmCommand, 2);
    const [first, second] = cloudWatchMock.commandCalls(PutMetricAlarmCommand).map((c) => c.args[0].input);
    expect(first.AlarmName).toBe(ALARM_1);
    expect(first.Metrics).toEqual([
      ...specs.slice(0, 10).map(metricOf),
      { Id: 'errors', Expression: 'SUM([m0,m1,m2,m3,m4,m5,m6,m7,m8,m9])', Label: 'Errors of the new versions', ReturnData: true },
    ]);
    expect(second.AlarmName).toBe(ALARM_2);
    expect(second.Metrics).toEqual([
      ...specs.slice(10).map(metricOf),
      { Id: 'errors', Expression: 'SUM([m0,m1])', Label: 'Errors of the new versions', ReturnData: true },
    ]);
    expect(codeDeployMock).toHaveReceivedCommandTimes(CreateDeploymentCommand, 12);
    for (const c of codeDeployMock.commandCalls(CreateDeploymentCommand)) {
      expect(c.args[0].input.overrideAlarmConfiguration).toEqual({
        enabled: true, ignorePollAlarmFailure: false, alarms: [{ name: ALARM_1 }, { name: ALARM_2 }],
      });
    }
    expect(continuation()).toEqual({ phase: 'wait', polls: 0, releaseId: RELEASE_ID, alarms: 2, deployments: specs.map((s) => deploymentIdOf(s.fn)) });
  });

  test('no alarm actions without ALARM_TOPIC_ARN', async () => {
    process.env.ALARM_TOPIC_ARN = '';
    lambdaAnswers([SPEC_A, SPEC_B]);
    createAnswers([SPEC_A, SPEC_B]);
    await run(jobEvent());
    expect(cloudWatchMock.commandCalls(PutMetricAlarmCommand)[0].args[0].input.AlarmActions).toBeUndefined();
  });
});

describe('first invocation: sweeps the alarms of releases that did not end', () => {
  /** `count` alarm names of an earlier release, as `alarmNameFor` writes them. */
  const staleNames = (releaseId: string, count: number) => Array.from({ length: count }, (_, i) => alarmNameFor(ALARM_PREFIX, releaseId, i + 1));
  const metricAlarms = (names: readonly string[]) => names.map((AlarmName) => ({ AlarmName, StateValue: 'OK' as const }));
  const warnLines = () => logLines().filter((line) => line.level === 'WARN');

  /** Runs a normal first invocation of A and B and checks the release went on exactly as without a sweep. */
  async function expectReleaseGoesOn(): Promise<void> {
    lambdaAnswers([SPEC_A, SPEC_B]);
    createAnswers([SPEC_A, SPEC_B]);
    const { outcome } = await run(jobEvent());
    expect(outcome).toEqual({ result: 'continue', polls: 0 });
    expect(continuation()).toEqual({ phase: 'wait', polls: 0, releaseId: RELEASE_ID, alarms: 1, deployments: [deploymentIdOf(A), deploymentIdOf(B)] });
    expect(cloudWatchMock).toHaveReceivedCommandWith(PutMetricAlarmCommand, { AlarmName: ALARM_1 });
    expect(codeDeployMock).toHaveReceivedCommandTimes(CreateDeploymentCommand, 2);
    expect(errorSpy).not.toHaveBeenCalled();
  }

  test('stale alarms over two pages: all deleted (100 a call), after the aliases are read and before the new alarm', async () => {
    const firstPage = staleNames('0a1b2c3d', 60).concat(staleNames('9f8e7d6c', 40));
    const secondPage = staleNames('5e5e5e5e', 50);
    cloudWatchMock.on(DescribeAlarmsCommand)
      .resolvesOnce({ MetricAlarms: metricAlarms(firstPage), NextToken: 'page-2' })
      .resolvesOnce({ MetricAlarms: metricAlarms(secondPage) });
    await expectReleaseGoesOn();

    const describes = cloudWatchMock.commandCalls(DescribeAlarmsCommand).map((c) => c.args[0].input);
    expect(describes).toEqual([
      { AlarmNamePrefix: `${ALARM_PREFIX}-`, AlarmTypes: ['MetricAlarm'], MaxRecords: 100 },
      { AlarmNamePrefix: `${ALARM_PREFIX}-`, AlarmTypes: ['MetricAlarm'], MaxRecords: 100, NextToken: 'page-2' },
    ]);
    expect(cloudWatchMock.commandCalls(DeleteAlarmsCommand).map((c) => c.args[0].input)).toEqual([
      { AlarmNames: firstPage },
      { AlarmNames: secondPage },
    ]);
    // The new release's own alarm is never among those deleted.
    expect(cloudWatchMock).not.toHaveReceivedCommandWith(DeleteAlarmsCommand, { AlarmNames: expect.arrayContaining([ALARM_1]) });
    expect(cloudWatchCommandNames()).toEqual(['DescribeAlarmsCommand', 'DescribeAlarmsCommand', 'DeleteAlarmsCommand', 'DeleteAlarmsCommand', 'PutMetricAlarmCommand']);
    const names = sentNames();
    expect(names.lastIndexOf('GetAliasCommand')).toBeLessThan(names.indexOf('DescribeAlarmsCommand'));
    expect(names.lastIndexOf('DeleteAlarmsCommand')).toBeLessThan(names.indexOf('UpdateFunctionCodeCommand'));
    expect(names.lastIndexOf('DeleteAlarmsCommand')).toBeLessThan(names.indexOf('PutMetricAlarmCommand'));

    // The names deleted are logged.
    expect(logLines()).toContainEqual(expect.objectContaining({
      level: 'INFO',
      message: 'deleted stale release alarms left by an earlier release',
      jobId: JOB_ID,
      releaseId: RELEASE_ID,
      alarms: [...firstPage, ...secondPage],
    }));
    expect(warnLines()).toEqual([]);
  });

  test('no stale alarm: no DeleteAlarms, nothing logged about the sweep', async () => {
    await expectReleaseGoesOn();
    expect(cloudWatchMock).toHaveReceivedCommandTimes(DescribeAlarmsCommand, 1);
    expect(cloudWatchMock).not.toHaveReceivedCommand(DeleteAlarmsCommand);
    expect(logLines().map((line) => line.message)).toEqual(['deployments created: following them']);
  });

  test('DescribeAlarms denied: logged as WARN, the release goes on normally', async () => {
    cloudWatchMock.on(DescribeAlarmsCommand).rejects(cloudWatchAccessDenied('cloudwatch:DescribeAlarms'));
    await expectReleaseGoesOn();
    expect(cloudWatchMock).toHaveReceivedCommandTimes(DescribeAlarmsCommand, 1);
    expect(cloudWatchMock).not.toHaveReceivedCommand(DeleteAlarmsCommand);
    expect(cloudWatchCommandNames()).toEqual(['DescribeAlarmsCommand', 'PutMetricAlarmCommand']);
    expect(warnLines()).toEqual([expect.objectContaining({
      message: 'could not look for stale release alarms: releasing without the sweep',
      jobId: JOB_ID,
      alarmNamePrefix: `${ALARM_PREFIX}-`,
      error: expect.stringMatching(/^AccessDenied: .*not authorized to perform: cloudwatch:DescribeAlarms$/),
    })]);
  });

  test('DeleteAlarms fails in the sweep: logged as WARN with the names left, the release goes on normally', async () => {
    const stale = staleNames('0a1b2c3d', 2);
    cloudWatchMock.on(DescribeAlarmsCommand).resolves({ MetricAlarms: metricAlarms(stale) });
    cloudWatchMock.on(DeleteAlarmsCommand).rejects(Object.assign(new Error('Rate exceeded'), { name: 'Throttling', $metadata: { httpStatusCode: 400 } }));
    await expectReleaseGoesOn();
    expect(cloudWatchCommandNames()).toEqual(['DescribeAlarmsCommand', 'DeleteAlarmsCommand', 'PutMetricAlarmCommand']);
    expect(cloudWatchMock).toHaveReceivedCommandWith(DeleteAlarmsCommand, { AlarmNames: stale });
    expect(warnLines()).toEqual([expect.objectContaining({
      message: 'could not delete stale release alarms: releasing without deleting them',
      error: 'Throttling: Rate exceeded',
      notDeleted: stale,
    })]);
    expect(logLines().map((line) => line.message)).not.toContain('deleted stale release alarms left by an earlier release');
  });

  test('a NextToken that never ends: at most SWEEP_PAGE_LIMIT pages, the alarms found deleted, a WARN', async () => {
    let page = 0;
    cloudWatchMock.on(DescribeAlarmsCommand).callsFake(() => {
      page += 1;
      return { MetricAlarms: metricAlarms([alarmNameFor(ALARM_PREFIX, `stale${page}`, 1)]), NextToken: `page-${page + 1}` };
    });
    await expectReleaseGoesOn();
    expect(cloudWatchMock).toHaveReceivedCommandTimes(DescribeAlarmsCommand, SWEEP_PAGE_LIMIT);
    expect(cloudWatchMock).toHaveReceivedCommandTimes(DeleteAlarmsCommand, 1);
    expect(cloudWatchMock.commandCalls(DeleteAlarmsCommand)[0].args[0].input.AlarmNames).toHaveLength(SWEEP_PAGE_LIMIT);
    expect(warnLines()).toEqual([expect.objectContaining({ message: `more stale release alarms than ${SWEEP_PAGE_LIMIT} pages: deleting those found` })]);
  });
});

describe('first invocation: fails before any alias moves', () => {
  test('an alias in the middle of a traffic shift: fails before any code update', async () => {
    lambdaAnswers([{ ...SPEC_A, weights: { 9: 0.1 } }, SPEC_B]);
    const { outcome } = await run(jobEvent());
    const message = 'alias live of function GetSleepSecs (orders-api-GetSleepSecs) serves version 7 and sends {"9":0.1} to other versions: '
      + 'a traffic shift was left half done (by an earlier release that did not finish), and CodeDeploy refuses such an alias. '
      + 'Point the alias at a single version (aws lambda update-alias --function-name <name> --name <alias> --function-version <version> '
      + '--routing-config AdditionalVersionWeights={}), then retry the stage; no alias was changed: production still serves the previous versions';
    expect(outcome).toEqual({ result: 'failed', message });
    expect(failure()).toEqual({ type: 'JobFailed', message });
    expect(sentNames()).toEqual(['GetAliasCommand', 'GetAliasCommand', 'PutJobFailureResultCommand']);
    expect(lambdaMock).not.toHaveReceivedCommand(UpdateFunctionCodeCommand);
    // Not even the sweep: a half-done shift may belong to a deployment still running, watched by its alarms.
    expect(cloudWatchMock).not.toHaveReceivedAnyCommand();
    expect(codeDeployMock).not.toHaveReceivedAnyCommand();
  });

  test('an empty routing config is no traffic shift', async () => {
    lambdaAnswers([{ ...SPEC_A, weights: {} }, SPEC_B]);
    createAnswers([SPEC_A, SPEC_B]);
    await expect(run(jobEvent())).resolves.toMatchObject({ outcome: { result: 'continue', polls: 0 } });
  });

  test('LastUpdateStatus Failed: fails with Lambda\'s reason, no version published, no alarm, no deployment', async () => {
    lambdaAnswers([SPEC_A, SPEC_B]);
    lambdaMock.on(GetFunctionConfigurationCommand, { FunctionName: A.functionName }).resolves({
      LastUpdateStatus: 'Failed', LastUpdateStatusReasonCode: 'InvalidZipFileException', LastUpdateStatusReason: 'Could not unzip uploaded file.',
    });
    const { outcome } = await run(jobEvent());
    const message = 'the code update of function GetSleepSecs (orders-api-GetSleepSecs) failed: InvalidZipFileException: Could not unzip uploaded file.; '
      + 'no alias was changed: production still serves the previous versions';
    expect(outcome).toEqual({ result: 'failed', message });
    expect(failure()).toEqual({ type: 'JobFailed', message });
    expect(lambdaMock).toHaveReceivedCommandWith(GetFunctionConfigurationCommand, { FunctionName: A.functionName });
    expect(lambdaMock).not.toHaveReceivedCommandWith(PublishVersionCommand, { FunctionName: A.functionName });
    expect(cloudWatchCommandNames()).toEqual(['DescribeAlarmsCommand']); // the sweep only, no alarm
    expect(codeDeployMock).not.toHaveReceivedAnyCommand();
  });

  test('a code update that does not end within UPDATE_TIMEOUT_MS: fails', async () => {
    lambdaAnswers([SPEC_A, SPEC_B]);
    lambdaMock.on(GetFunctionConfigurationCommand, { FunctionName: A.functionName }).resolves({ LastUpdateStatus: 'InProgress' });
    process.env.FUNCTIONS = JSON.stringify([A]);
    const { outcome, sleeps } = await run(jobEvent());
    const message = 'the code update of function GetSleepSecs (orders-api-GetSleepSecs) did not finish within 60 s (LastUpdateStatus InProgress): '
      + 'retry the stage; no alias was changed: production still serves the previous versions';
    expect(outcome).toEqual({ result: 'failed', message });
    expect(failure()).toEqual({ type: 'JobFailed', message });
    expect(sleeps).toEqual(Array(UPDATE_TIMEOUT_MS / UPDATE_POLL_MS).fill(UPDATE_POLL_MS));
    expect(lambdaMock).toHaveReceivedCommandTimes(GetFunctionConfigurationCommand, UPDATE_TIMEOUT_MS / UPDATE_POLL_MS + 1);
    expect(lambdaMock).not.toHaveReceivedCommand(PublishVersionCommand);
  });

  test('the wait for a code update stops short of the Lambda deadline', async () => {
    process.env.FUNCTIONS = JSON.stringify([A]);
    lambdaAnswers([SPEC_A]);
    lambdaMock.on(GetFunctionConfigurationCommand, { FunctionName: A.functionName }).resolves({ LastUpdateStatus: 'InProgress' });
    const { sleeps } = await run(jobEvent(), { deadline: 1_000_000 + RELEASE_MARGIN_MS + 5_000 });
    expect(sleeps).toEqual(Array(5).fill(UPDATE_POLL_MS));
    expect(failure().message).toBe('the code update of function GetSleepSecs (orders-api-GetSleepSecs) did not finish before the time left to this function '
      + 'ran short (LastUpdateStatus InProgress): retry the stage; no alias was changed: production still serves the previous versions');
  });

  test('AccessDenied on UpdateFunctionCode: a permission error naming the API, the function and the error', async () => {
    lambdaAnswers([SPEC_A, SPEC_B]);
    lambdaMock.on(UpdateFunctionCodeCommand, { FunctionName: B.functionName }).rejects(accessDenied('lambda:UpdateFunctionCode'));
    const { outcome } = await run(jobEvent());
    const message = 'lambda:UpdateFunctionCode failed for function PostItems (orders-api-PostItems): AccessDeniedException: User: '
      + 'arn:aws:sts::123456789012:assumed-role/serverless-release/fn is not authorized to perform: lambda:UpdateFunctionCode; '
      + 'no alias was changed: production still serves the previous versions';
    expect(outcome).toEqual({ result: 'failed', message });
    expect(failure()).toEqual({ type: 'PermissionError', message });
    expect(lambdaMock).not.toHaveReceivedCommandWith(PublishVersionCommand, { FunctionName: B.functionName });
    expect(cloudWatchCommandNames()).toEqual(['DescribeAlarmsCommand']); // the sweep only, no alarm
    expect(codeDeployMock).not.toHaveReceivedAnyCommand();
  });

  test('throttled GetAlias: fails, asking to retry the stage', async () => {
    lambdaAnswers([SPEC_A, SPEC_B]);
    lambdaMock.on(GetAliasCommand, { FunctionName: A.functionName }).rejects(lambdaThrottled());
    await run(jobEvent());
    expect(failure()).toEqual({
      type: 'JobFailed',
      message: 'lambda:GetAlias failed for function GetSleepSecs (orders-api-GetSleepSecs): TooManyRequestsException: Rate exceeded '
        + '(a transient error: retry the stage); no alias was changed: production still serves the previous versions',
    });
    expect(lambdaMock).not.toHaveReceivedCommand(UpdateFunctionCodeCommand);
  });

  test('PutMetricAlarm fails on the second alarm: the first is deleted, no deployment', async () => {
    const specs = Array.from({ length: 11 }, (_, i): FnSpec => ({ fn: fnOf(`Fn${i}`), previous: '1', target: '2' }));
    process.env.FUNCTIONS = JSON.stringify(specs.map((s) => s.fn));
    lambdaAnswers(specs);
    cloudWatchMock.on(PutMetricAlarmCommand, { AlarmName: ALARM_2 }).rejects(
      Object.assign(new Error('The maximum number of alarms has been reached'), { name: 'LimitExceeded', $metadata: { httpStatusCode: 400 } }));
    await run(jobEvent());
    expect(cloudWatchMock).toHaveReceivedCommandTimes(DeleteAlarmsCommand, 1);
    expect(cloudWatchMock).toHaveReceivedCommandWith(DeleteAlarmsCommand, { AlarmNames: [ALARM_1] });
    expect(codeDeployMock).not.toHaveReceivedAnyCommand();
    expect(failure()).toEqual({
      type: 'JobFailed',
      message: `cloudwatch:PutMetricAlarm failed for alarm ${ALARM_2}: LimitExceeded: The maximum number of alarms has been reached; `
        + 'deleted the alarms already created; no alias was changed: production still serves the previous versions',
    });
    expect(sentNames().slice(-4)).toEqual(['PutMetricAlarmCommand', 'PutMetricAlarmCommand', 'DeleteAlarmsCommand', 'PutJobFailureResultCommand']);
  });
});

describe('first invocation: CreateDeployment fails', () => {
  test('on the second function: the first deployment is stopped with rollback, the alarms deleted, the job fails', async () => {
    lambdaAnswers([SPEC_A, SPEC_B]);
    createAnswers([SPEC_A]);
    codeDeployMock.on(CreateDeploymentCommand, { deploymentGroupName: B.deploymentGroupName }).rejects(
      new DeploymentLimitExceededException({ message: 'The deployment group already has an active deployment', $metadata: { httpStatusCode: 400 } }));
    const { outcome } = await run(jobEvent());
    const message = 'codedeploy:CreateDeployment failed for function PostItems (orders-api-PostItems): DeploymentLimitExceededException: '
      + `The deployment group already has an active deployment; stopped with rollback the deployment(s) already created: GetSleepSecs (${deploymentIdOf(A)}); `
      + 'deleted the release alarms; every alias returns to its previous version';
    expect(outcome).toEqual({ result: 'failed', message });
    expect(failure()).toEqual({ type: 'JobFailed', message });
    expect(codeDeployMock).toHaveReceivedCommandTimes(StopDeploymentCommand, 1);
    expect(codeDeployMock).toHaveReceivedCommandWith(StopDeploymentCommand, { deploymentId: deploymentIdOf(A), autoRollbackEnabled: true });
    expect(cloudWatchMock).toHaveReceivedCommandWith(DeleteAlarmsCommand, { AlarmNames: [ALARM_1] });
    expect(sentNames().slice(-6)).toEqual([
      'PutMetricAlarmCommand', 'CreateDeploymentCommand', 'CreateDeploymentCommand', 'StopDeploymentCommand', 'DeleteAlarmsCommand', 'PutJobFailureResultCommand',
    ]);
    expect(lambdaMock).not.toHaveReceivedCommand(UpdateAliasCommand);
  });

  test('on the first function: nothing to stop, the alarm deleted', async () => {
    lambdaAnswers([SPEC_A, SPEC_B]);
    codeDeployMock.on(CreateDeploymentCommand).rejects(accessDenied('codedeploy:CreateDeployment'));
    await run(jobEvent());
    expect(codeDeployMock).toHaveReceivedCommandTimes(CreateDeploymentCommand, 1);
    expect(codeDeployMock).not.toHaveReceivedCommand(StopDeploymentCommand);
    expect(failure()).toEqual({
      type: 'PermissionError',
      message: 'codedeploy:CreateDeployment failed for function GetSleepSecs (orders-api-GetSleepSecs): AccessDeniedException: User: '
        + 'arn:aws:sts::123456789012:assumed-role/serverless-release/fn is not authorized to perform: codedeploy:CreateDeployment; '
        + 'deleted the release alarms; no alias was changed: production still serves the previous versions',
    });
  });

  test('a deployment that cannot be stopped is named for the operator', async () => {
    lambdaAnswers([SPEC_A, SPEC_B]);
    createAnswers([SPEC_A]);
    codeDeployMock.on(CreateDeploymentCommand, { deploymentGroupName: B.deploymentGroupName }).rejects(codeDeployThrottled());
    codeDeployMock.on(StopDeploymentCommand).rejects(codeDeployThrottled());
    await run(jobEvent());
    expect(failure().message).toBe(
      'codedeploy:CreateDeployment failed for function PostItems (orders-api-PostItems): ThrottlingException: Rate exceeded (a transient error: retry the stage); '
      + 'deleted the release alarms; NOT fully undone, check by hand: could not stop d-GETSLEEPS: codedeploy:StopDeployment failed for deployment d-GETSLEEPS '
      + 'of function GetSleepSecs (orders-api-GetSleepSecs): ThrottlingException: Rate exceeded',
    );
    expect(JSON.parse(String(errorSpy.mock.calls[0][0]))).toMatchObject({ level: 'ERROR', message: 'could not stop a deployment', deploymentId: deploymentIdOf(A) });
  });
});

// ---------------------------------------------------------------------------------------------------------------
// Later invocations
// ---------------------------------------------------------------------------------------------------------------

describe('following the deployments', () => {
  test('all Succeeded: deletes the alarms, succeeds with the versions', async () => {
    deploymentAnswers([{ spec: SPEC_A, status: 'Succeeded' }, { spec: SPEC_B, status: 'Succeeded' }]);
    const { outcome, sleeps } = await run(jobEvent({ continuationToken: waitToken([SPEC_A, SPEC_B], 5) }));
    expect(outcome).toEqual({ result: 'released', versions: 'GetSleepSecs=8,PostItems=13' });
    expect(sent()).toEqual([
      ['GetDeploymentCommand', { deploymentId: deploymentIdOf(A) }],
      ['GetDeploymentCommand', { deploymentId: deploymentIdOf(B) }],
      ['DeleteAlarmsCommand', { AlarmNames: [ALARM_1] }],
      ['PutJobSuccessResultCommand', { jobId: JOB_ID, outputVariables: { versions: 'GetSleepSecs=8,PostItems=13' } }],
    ]);
    expect(sleeps).toEqual([]);
    expect(lambdaMock).not.toHaveReceivedAnyCommand();
    expect(JSON.stringify([logSpy.mock.calls, errorSpy.mock.calls])).not.toContain(SECRET);
  });

  test('all Succeeded, the alarms cannot be deleted: still a success, the error logged', async () => {
    deploymentAnswers([{ spec: SPEC_A, status: 'Succeeded' }, { spec: SPEC_B, status: 'Succeeded' }]);
    cloudWatchMock.on(DeleteAlarmsCommand).rejects(Object.assign(new Error('Rate exceeded'), { name: 'Throttling', $metadata: { httpStatusCode: 400 } }));
    const { outcome } = await run(jobEvent({ continuationToken: waitToken([SPEC_A, SPEC_B], 5, 2) }));
    expect(outcome).toMatchObject({ result: 'released' });
    expect(cloudWatchMock).toHaveReceivedCommandWith(DeleteAlarmsCommand, { AlarmNames: [ALARM_1, ALARM_2] });
    expect(cpMock).toHaveReceivedCommandTimes(PutJobSuccessResultCommand, 1);
    expect(JSON.parse(String(errorSpy.mock.calls[0][0]))).toMatchObject({
      level: 'ERROR', message: 'could not delete the release alarms', error: { name: 'Throttling' }, alarms: [ALARM_1, ALARM_2],
    });
  });

  test('one still InProgress: pauses, then continues with polls + 1', async () => {
    deploymentAnswers([{ spec: SPEC_A, status: 'Succeeded' }, { spec: SPEC_B, status: 'InProgress' }]);
    const { outcome, sleeps } = await run(jobEvent({ continuationToken: waitToken([SPEC_A, SPEC_B], 3) }));
    expect(outcome).toEqual({ result: 'continue', polls: 4 });
    expect(sleeps).toEqual([POLL_DELAY_MS]);
    expect(sent()).toEqual([
      ['GetDeploymentCommand', { deploymentId: deploymentIdOf(A) }],
      ['GetDeploymentCommand', { deploymentId: deploymentIdOf(B) }],
      ['PutJobSuccessResultCommand', { jobId: JOB_ID, continuationToken: waitToken([SPEC_A, SPEC_B], 4) }],
    ]);
    expect(logLines()).toEqual([expect.objectContaining({
      message: 'release not finished: checking again later',
      polls: 3,
      nextPolls: 4,
      reason: `deployment ${deploymentIdOf(B)} of function PostItems (orders-api-PostItems) is InProgress`,
    })]);
  });

  test.each(['Created', 'Queued', 'Baking', 'Ready'] as DeploymentStatus[])('%s counts as still running', async (status) => {
    deploymentAnswers([{ spec: SPEC_A, status }, { spec: SPEC_B, status: 'Succeeded' }]);
    await expect(run(jobEvent({ continuationToken: waitToken([SPEC_A, SPEC_B], 0) }))).resolves.toMatchObject({ outcome: { result: 'continue', polls: 1 } });
  });

  test('the pause never runs past the Lambda deadline minus the reporting margin', async () => {
    deploymentAnswers([{ spec: SPEC_A, status: 'InProgress' }, { spec: SPEC_B, status: 'InProgress' }]);
    const { sleeps } = await run(jobEvent({ continuationToken: waitToken([SPEC_A, SPEC_B]) }), { now: () => 0, deadline: 12_000 });
    expect(sleeps).toEqual([12_000 - REPORTING_MARGIN_MS]);
  });

  test('one Failed while another is InProgress and a third Succeeded: all roll back together', async () => {
    process.env.FUNCTIONS = JSON.stringify([A, B, C]);
    deploymentAnswers([
      {
        spec: SPEC_A,
        status: 'Stopped',
        info: {
          errorInformation: { code: 'ALARM_ACTIVE', message: `One or more alarms have been activated according to your alarm configuration. Activated alarms: <${ALARM_1}>` },
          rollbackInfo: { rollbackDeploymentId: 'd-ROLLBACK1', rollbackMessage: 'Automatic rollback triggered' },
        },
      },
      { spec: SPEC_B, status: 'InProgress' },
      { spec: SPEC_C, status: 'Succeeded' },
    ]);
    const { outcome, sleeps } = await run(jobEvent({ continuationToken: waitToken([SPEC_A, SPEC_B, SPEC_C], 9) }));
    const message = `release ${RELEASE_ID} failed: deployment ${deploymentIdOf(A)} of function GetSleepSecs (orders-api-GetSleepSecs) is Stopped: `
      + `ALARM_ACTIVE: One or more alarms have been activated according to your alarm configuration. Activated alarms: <${ALARM_1}> `
      + '(rollback: Automatic rollback triggered); '
      + `stopped with rollback: deployment ${deploymentIdOf(B)} of function PostItems (orders-api-PostItems); `
      + 'moved the alias back to the previous version: GetRoot (orders-api-GetRoot live 3 → 2); '
      + 'deleted the release alarms; every function returns to its previous version';
    expect(outcome).toEqual({ result: 'failed', message });
    expect(failure()).toEqual({ type: 'JobFailed', message });
    expect(sent()).toEqual([
      ['GetDeploymentCommand', { deploymentId: deploymentIdOf(A) }],
      ['GetDeploymentCommand', { deploymentId: deploymentIdOf(B) }],
      ['GetDeploymentCommand', { deploymentId: deploymentIdOf(C) }],
      ['StopDeploymentCommand', { deploymentId: deploymentIdOf(B), autoRollbackEnabled: true }],
      ['UpdateAliasCommand', { FunctionName: C.functionName, Name: 'live', FunctionVersion: '2', RoutingConfig: { AdditionalVersionWeights: {} } }],
      ['DeleteAlarmsCommand', { AlarmNames: [ALARM_1] }],
      ['PutJobFailureResultCommand', { jobId: JOB_ID, failureDetails: { type: 'JobFailed', message } }],
    ]);
    expect(codeDeployMock).not.toHaveReceivedCommandWith(StopDeploymentCommand, { deploymentId: deploymentIdOf(A) });
    expect(sleeps).toEqual([]);
  });

  test('a Failed deployment without a rollback message: CodeDeploy rolls it back', async () => {
    deploymentAnswers([
      { spec: SPEC_A, status: 'Failed', info: { errorInformation: { code: 'HOOK_EXECUTION_FAILURE', message: 'The BeforeAllowTraffic hook failed' } } },
      { spec: SPEC_B, status: 'Failed' },
    ]);
    await run(jobEvent({ continuationToken: waitToken([SPEC_A, SPEC_B]) }));
    expect(failure().message).toBe(`release ${RELEASE_ID} failed: deployment ${deploymentIdOf(A)} of function GetSleepSecs (orders-api-GetSleepSecs) is Failed: `
      + 'HOOK_EXECUTION_FAILURE: The BeforeAllowTraffic hook failed (CodeDeploy rolls it back); '
      + `deployment ${deploymentIdOf(B)} of function PostItems (orders-api-PostItems) is Failed (CodeDeploy rolls it back); `
      + 'deleted the release alarms; every function returns to its previous version');
    expect(codeDeployMock).not.toHaveReceivedCommand(StopDeploymentCommand);
    expect(lambdaMock).not.toHaveReceivedAnyCommand();
  });

  test('MAX_POLLS reached: stops the running ones, moves the succeeded ones back, deletes the alarms, fails', async () => {
    deploymentAnswers([{ spec: SPEC_A, status: 'Succeeded' }, { spec: SPEC_B, status: 'Baking' }]);
    const { outcome, sleeps } = await run(jobEvent({ continuationToken: waitToken([SPEC_A, SPEC_B], MAX_POLLS) }));
    const message = `release ${RELEASE_ID} failed: the release did not finish in time: still not finished after ${MAX_POLLS + 1} checks `
      + `(deployment ${deploymentIdOf(B)} of function PostItems (orders-api-PostItems) is Baking); `
      + `stopped with rollback: deployment ${deploymentIdOf(B)} of function PostItems (orders-api-PostItems); `
      + 'moved the alias back to the previous version: GetSleepSecs (orders-api-GetSleepSecs live 8 → 7); '
      + 'deleted the release alarms; every function returns to its previous version';
    expect(outcome).toEqual({ result: 'failed', message });
    expect(sent()).toEqual([
      ['GetDeploymentCommand', { deploymentId: deploymentIdOf(A) }],
      ['GetDeploymentCommand', { deploymentId: deploymentIdOf(B) }],
      ['UpdateAliasCommand', { FunctionName: A.functionName, Name: 'live', FunctionVersion: '7', RoutingConfig: { AdditionalVersionWeights: {} } }],
      ['StopDeploymentCommand', { deploymentId: deploymentIdOf(B), autoRollbackEnabled: true }],
      ['DeleteAlarmsCommand', { AlarmNames: [ALARM_1] }],
      ['PutJobFailureResultCommand', { jobId: JOB_ID, failureDetails: { type: 'JobFailed', message } }],
    ]);
    expect(sleeps).toEqual([]);
  });

  test('still continues on the poll before the limit', async () => {
    deploymentAnswers([{ spec: SPEC_A, status: 'Succeeded' }, { spec: SPEC_B, status: 'InProgress' }]);
    await run(jobEvent({ continuationToken: waitToken([SPEC_A, SPEC_B], MAX_POLLS - 1) }));
    expect(continuation()).toMatchObject({ polls: MAX_POLLS });
  });

  test('throttled GetDeployment: one more poll', async () => {
    deploymentAnswers([{ spec: SPEC_A, status: 'Succeeded' }]);
    codeDeployMock.on(GetDeploymentCommand, { deploymentId: deploymentIdOf(B) }).rejects(codeDeployThrottled());
    const { outcome, sleeps } = await run(jobEvent({ continuationToken: waitToken([SPEC_A, SPEC_B], 2) }));
    expect(outcome).toEqual({ result: 'continue', polls: 3 });
    expect(sleeps).toEqual([POLL_DELAY_MS]);
    expect(continuation()).toEqual(JSON.parse(waitToken([SPEC_A, SPEC_B], 3)));
    expect(codeDeployMock).not.toHaveReceivedCommand(StopDeploymentCommand);
    expect(cloudWatchMock).not.toHaveReceivedAnyCommand();
    expect(logLines()[0]).toMatchObject({
      reason: `codedeploy:GetDeployment failed for deployment ${deploymentIdOf(B)}: ThrottlingException: Rate exceeded (transient)`,
    });
  });

  test('throttled on the last allowed poll: rolls back what it can and fails', async () => {
    deploymentAnswers([{ spec: SPEC_A, status: 'Succeeded' }]);
    codeDeployMock.on(GetDeploymentCommand, { deploymentId: deploymentIdOf(B) }).rejects(codeDeployThrottled());
    await run(jobEvent({ continuationToken: waitToken([SPEC_A, SPEC_B], MAX_POLLS) }));
    expect(lambdaMock).toHaveReceivedCommandWith(UpdateAliasCommand, { FunctionName: A.functionName, Name: 'live', FunctionVersion: '7' });
    expect(codeDeployMock).toHaveReceivedCommandTimes(StopDeploymentCommand, 1);
    expect(codeDeployMock).toHaveReceivedCommandWith(StopDeploymentCommand, { deploymentId: deploymentIdOf(B), autoRollbackEnabled: true });
    expect(cloudWatchMock).toHaveReceivedCommandWith(DeleteAlarmsCommand, { AlarmNames: [ALARM_1] });
    expect(failure().message).toMatch(/^release 3f2a9c1e failed: the release did not finish in time: still not finished after 201 checks/);
  });

  test('AccessDenied on GetDeployment: a permission error, after rolling back what it can', async () => {
    deploymentAnswers([{ spec: SPEC_A, status: 'InProgress' }]);
    codeDeployMock.on(GetDeploymentCommand, { deploymentId: deploymentIdOf(B) }).rejects(accessDenied('codedeploy:GetDeployment'));
    const { outcome } = await run(jobEvent({ continuationToken: waitToken([SPEC_A, SPEC_B], 1) }));
    const message = `release ${RELEASE_ID} failed: codedeploy:GetDeployment failed for deployment ${deploymentIdOf(B)}: AccessDeniedException: User: `
      + 'arn:aws:sts::123456789012:assumed-role/serverless-release/fn is not authorized to perform: codedeploy:GetDeployment; '
      + `stopped with rollback: deployment ${deploymentIdOf(A)} of function GetSleepSecs (orders-api-GetSleepSecs), deployment ${deploymentIdOf(B)}; `
      + 'deleted the release alarms; every function returns to its previous version';
    expect(outcome).toEqual({ result: 'failed', message });
    expect(failure()).toEqual({ type: 'PermissionError', message });
    expect(codeDeployMock).toHaveReceivedCommandTimes(StopDeploymentCommand, 2);
  });

  test('compensation that fails is named for the operator, and the job still fails', async () => {
    deploymentAnswers([{ spec: SPEC_A, status: 'Failed' }, { spec: SPEC_B, status: 'Succeeded' }]);
    lambdaMock.on(UpdateAliasCommand).rejects(accessDenied('lambda:UpdateAlias'));
    await run(jobEvent({ continuationToken: waitToken([SPEC_A, SPEC_B]) }));
    expect(failure().message).toBe(`release ${RELEASE_ID} failed: deployment ${deploymentIdOf(A)} of function GetSleepSecs (orders-api-GetSleepSecs) is Failed `
      + '(CodeDeploy rolls it back); deleted the release alarms; NOT fully undone, check by hand: could not move the alias back: lambda:UpdateAlias failed for '
      + 'function PostItems (orders-api-PostItems): AccessDeniedException: User: arn:aws:sts::123456789012:assumed-role/serverless-release/fn is not authorized '
      + 'to perform: lambda:UpdateAlias');
    expect(cloudWatchMock).toHaveReceivedCommandTimes(DeleteAlarmsCommand, 1);
    expect(JSON.parse(String(errorSpy.mock.calls[0][0]))).toMatchObject({ message: 'could not move an alias back', deploymentId: deploymentIdOf(B) });
  });

  test('a succeeded deployment whose description names no function cannot be moved back: said so', async () => {
    deploymentAnswers([{ spec: SPEC_A, status: 'Failed' }, { spec: SPEC_B, status: 'Succeeded', info: { description: 'changed by hand' } }]);
    await run(jobEvent({ continuationToken: waitToken([SPEC_A, SPEC_B]) }));
    expect(failure().message).toMatch(new RegExp(`NOT fully undone, check by hand: cannot move the alias of deployment ${deploymentIdOf(B)} back: `
      + 'its description does not name the function and versions$'));
    expect(lambdaMock).not.toHaveReceivedAnyCommand();
  });

  test('an unknown status: rolls back together', async () => {
    deploymentAnswers([{ spec: SPEC_A, status: 'Paused' as DeploymentStatus }, { spec: SPEC_B, status: 'InProgress' }]);
    await run(jobEvent({ continuationToken: waitToken([SPEC_A, SPEC_B]) }));
    expect(failure().message).toMatch(/is Paused \(a status this function does not know\) \(CodeDeploy rolls it back\); stopped with rollback: deployment d-POSTITEMS/);
    expect(codeDeployMock).toHaveReceivedCommandTimes(StopDeploymentCommand, 1);
  });

  test('an invalid continuation token: fails without calling AWS', async () => {
    await run(jobEvent({ continuationToken: '{"polls":3}' }));
    expect(sent()).toEqual([['PutJobFailureResultCommand', {
      jobId: JOB_ID,
      failureDetails: {
        type: 'JobFailed',
        message: 'invalid continuation token (not a release state: "{\\"polls\\":3}"): cannot follow the release; look for deployments still running '
          + `in the CodeDeploy application ${APPLICATION} before releasing again`,
      },
    }]]);
  });
});

// ---------------------------------------------------------------------------------------------------------------
// Input and reporting
// ---------------------------------------------------------------------------------------------------------------

describe('invalid input', () => {
  test.each([
    ['missing', null, 'invalid configuration: UserParameters is missing: expected {"prefix":"<S3 key prefix>"}'],
    ['without prefix', '{"imageUri":"x"}', 'invalid configuration: UserParameters.prefix must be a non-empty string, got missing'],
  ])('UserParameters %s: a configuration error without AWS calls', async (_label, userParameters, message) => {
    const { outcome } = await run(jobEvent({ userParameters }));
    expect(outcome).toEqual({ result: 'failed', message });
    expect(sent()).toEqual([['PutJobFailureResultCommand', { jobId: JOB_ID, failureDetails: { type: 'ConfigurationError', message } }]]);
  });

  test.each([
    ['not JSON', 'GetSleepSecs', expect.stringMatching(/^invalid configuration: FUNCTIONS is not valid JSON \(.+\)$/)],
    ['empty', '[]', 'invalid configuration: FUNCTIONS must be a JSON array of 1 to 100 functions, got []'],
    ['without a deployment group', JSON.stringify([{ ...A, deploymentGroupName: '' }]),
      'invalid configuration: FUNCTIONS[0].deploymentGroupName must be a non-empty string without whitespace, got ""'],
  ])('FUNCTIONS %s: a configuration error without AWS calls', async (_label, functions, message) => {
    process.env.FUNCTIONS = functions;
    await run(jobEvent());
    expect(sent()).toEqual([['PutJobFailureResultCommand', { jobId: JOB_ID, failureDetails: { type: 'ConfigurationError', message } }]]);
  });

  test('a missing environment variable: a configuration error, also in the wait phase', async () => {
    delete process.env.ARTIFACT_BUCKET;
    await run(jobEvent({ continuationToken: waitToken([SPEC_A]) }));
    expect(sent()).toEqual([['PutJobFailureResultCommand', {
      jobId: JOB_ID, failureDetails: { type: 'ConfigurationError', message: 'invalid configuration: environment variable(s) not set: ARTIFACT_BUCKET' },
    }]]);
  });

  test('an event that is not a CodePipeline job: nothing to report to, logged, no call', async () => {
    await expect(run({ hello: 'world' })).resolves.toEqual({ outcome: undefined, sleeps: [] });
    expect(sent()).toEqual([]);
    expect(JSON.parse(String(errorSpy.mock.calls[0][0]))).toMatchObject({ level: 'ERROR', eventKeys: ['hello'] });
  });
});

describe('reporting to CodePipeline fails', () => {
  test('PutJobSuccessResult fails: the handler rejects, the error logged', async () => {
    lambdaAnswers([{ ...SPEC_A, statuses: [] }, { ...SPEC_B, statuses: [] }]);
    createAnswers([SPEC_A, SPEC_B]);
    const denied = accessDenied('codepipeline:PutJobSuccessResult');
    cpMock.on(PutJobSuccessResultCommand).rejects(denied);
    await expect(handler(jobEvent(), { getRemainingTimeInMillis: () => 300_000 })).rejects.toBe(denied);
    expect(codeDeployMock).toHaveReceivedCommandTimes(CreateDeploymentCommand, 2);
    expect(errorSpy).toHaveBeenCalledTimes(1);
    expect(JSON.parse(String(errorSpy.mock.calls[0][0]))).toMatchObject({
      level: 'ERROR', message: 'could not report the job result to CodePipeline', jobId: JOB_ID, decision: 'continue', error: { name: 'AccessDeniedException' },
    });
    expect(JSON.stringify([logSpy.mock.calls, errorSpy.mock.calls])).not.toContain(SECRET);
  });

  test('PutJobFailureResult fails: the handler rejects', async () => {
    deploymentAnswers([{ spec: SPEC_A, status: 'Failed' }]);
    cpMock.on(PutJobFailureResultCommand).rejects(accessDenied('codepipeline:PutJobFailureResult'));
    await expect(run(jobEvent({ continuationToken: waitToken([SPEC_A]) }))).rejects.toThrow(/not authorized to perform: codepipeline:PutJobFailureResult/);
    expect(cloudWatchMock).toHaveReceivedCommandWith(DeleteAlarmsCommand, { AlarmNames: [ALARM_1] });
    expect(JSON.parse(String(errorSpy.mock.calls[0][0]))).toMatchObject({ decision: 'failed', jobId: JOB_ID });
  });

  test('the Lambda entry point really waits POLL_DELAY_MS before reporting (fake timers)', async () => {
    deploymentAnswers([{ spec: SPEC_A, status: 'InProgress' }]);
    jest.useFakeTimers();
    const done = handler(jobEvent({ continuationToken: waitToken([SPEC_A]) }), { getRemainingTimeInMillis: () => 60_000 });
    await jest.advanceTimersByTimeAsync(POLL_DELAY_MS - 1);
    expect(cpMock).not.toHaveReceivedAnyCommand();
    await jest.advanceTimersByTimeAsync(1);
    await expect(done).resolves.toEqual({ result: 'continue', polls: 1 });
    expect(cpMock).toHaveReceivedCommandWith(PutJobSuccessResultCommand, { jobId: JOB_ID, continuationToken: waitToken([SPEC_A], 1) });
  });
});
