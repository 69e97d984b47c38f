import { CloudWatchClient, CloudWatchServiceException, DeleteAlarmsCommand, DescribeAlarmsCommand, PutMetricAlarmCommand } from '@aws-sdk/client-cloudwatch';
import {
  CodeDeployClient,
  CodeDeployServiceException,
  CreateDeploymentCommand,
  DeploymentLimitExceededException,
  GetDeploymentCommand,
  ListDeploymentsCommand,
  StopDeploymentCommand,
} from '@aws-sdk/client-codedeploy';
import type { DeploymentInfo, DeploymentStatus } from '@aws-sdk/client-codedeploy';
import { CodePipelineClient, PutJobFailureResultCommand, PutJobSuccessResultCommand } from '@aws-sdk/client-codepipeline';
import { EventBridgeClient, PutEventsCommand } from '@aws-sdk/client-eventbridge';
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
import { expectFacts } from './shared/facts';
import type { FunctionRelease, JobOutcome, ReleasedFunction, ServerlessReleaseDeps } from '../../src/handlers/serverless-release.lambda';
import { isRetryable } from '../../src/handlers/shared/retryable';

// The handler creates its SDK clients when loaded, and on Node < 22 the SDK then emits a NodeVersionSupportWarning,
// which keeps a jest worker from exiting cleanly. The Lambda runtime is nodejs24.x, where the warning does not apply,
// so the tests switch it off before loading the handler.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
const {
  CREATE_MARGIN_MS,
  DEFAULT_MAX_WAIT_MS,
  FUNCTIONS_PER_ALARM,
  MAX_FUNCTIONS,
  MAX_WAIT_LIMIT_MS,
  POLL_DELAY_MS,
  ROLLBACK_GRACE_MS,
  ROLLBACK_LIMIT_MS,
  RUNNING_STATUSES,
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
  parseContinuationToken,
  parseDeploymentDescription,
  parseFunctions,
  parseUserParameters,
  readConfig,
  releaseIdFor,
  releaseOfAlarm,
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

/** The fake clock's start in `run` (ms). */
const T0 = 1_767_225_600_000; // 2026-01-01T00:00:00Z

/** The continuation token of a release in its wait phase, started `elapsedMs` before the fake clock's start. */
function waitToken(specs: readonly FnSpec[], polls = 0, alarms = 1, elapsedMs = 0): string {
  return JSON.stringify({ phase: 'wait', startedAt: T0 - elapsedMs, polls, releaseId: RELEASE_ID, alarms, deployments: specs.map((s) => deploymentIdOf(s.fn)) });
}

/** The continuation token of a release in its rollback phase, the rollback started `rollbackElapsedMs` before the fake clock's start. */
function rollbackToken(
  specs: readonly FnSpec[],
  options: { polls?: number; rollbackElapsedMs?: number; cause?: string; failureType?: string } = {},
): string {
  return JSON.stringify({
    phase: 'rollback',
    startedAt: T0 - 600_000,
    polls: options.polls ?? 1,
    releaseId: RELEASE_ID,
    alarms: 1,
    deployments: specs.map((s) => deploymentIdOf(s.fn)),
    rollbackAt: T0 - (options.rollbackElapsedMs ?? 0),
    cause: options.cause ?? 'a cause',
    failureType: options.failureType ?? 'JobFailed',
  });
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
        description: describeDeployment(releaseOf(spec), RELEASE_ID),
        ...info,
      },
    });
  }
}

/** What each alias serves (GetAlias). */
function aliasAnswers(entries: ReadonlyArray<{ spec: FnSpec; version: string; weights?: Record<string, number> }>): void {
  for (const { spec, version, weights } of entries) {
    lambdaMock.on(GetAliasCommand, { FunctionName: spec.fn.functionName }).resolves({
      Name: spec.fn.aliasName, FunctionVersion: version, ...(weights === undefined ? {} : { RoutingConfig: { AdditionalVersionWeights: weights } }),
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
  codeDeployMock.on(ListDeploymentsCommand).resolves({ deployments: [] });
  // UpdateAlias answers with the alias as it then is.
  lambdaMock.on(UpdateAliasCommand).callsFake((input: { FunctionVersion?: string }) => ({
    FunctionVersion: input.FunctionVersion,
    RoutingConfig: {},
  }));
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
  let clock = T0;
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
        maxWaitMs: DEFAULT_MAX_WAIT_MS,
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
        maxWaitMs: DEFAULT_MAX_WAIT_MS,
      },
    });
  });

  test('MAX_WAIT_MINUTES sets how long the release may wait, as wall-clock time, from 1 minute to MAX_WAIT_LIMIT_MS (below CodePipeline\'s 24 hours)', () => {
    expect(DEFAULT_MAX_WAIT_MS).toBe(60 * 60_000);
    expect(MAX_WAIT_LIMIT_MS).toBe(23 * 60 * 60_000);
    // The wait, the rollback and a margin end before CodePipeline fails the Lambda invoke action (24 hours).
    expect(MAX_WAIT_LIMIT_MS + ROLLBACK_LIMIT_MS).toBeLessThan(24 * 60 * 60_000);
    expect(readConfig(envFor([A], { MAX_WAIT_MINUTES: '150' }))).toMatchObject({ ok: true, value: { maxWaitMs: 150 * 60_000 } });
    expect(readConfig(envFor([A], { MAX_WAIT_MINUTES: ' 1 ' }))).toMatchObject({ ok: true, value: { maxWaitMs: 60_000 } });
    expect(readConfig(envFor([A], { MAX_WAIT_MINUTES: '1380' }))).toMatchObject({ ok: true, value: { maxWaitMs: MAX_WAIT_LIMIT_MS } });
    expect(readConfig(envFor([A], { MAX_WAIT_MINUTES: '' }))).toMatchObject({ ok: true, value: { maxWaitMs: DEFAULT_MAX_WAIT_MS } });
    const error = (value: string) => 'MAX_WAIT_MINUTES must be a whole number of minutes from 1 to 1380 (CodePipeline fails the action after 24 hours, '
      + `and the rollback needs up to 30 minutes of it), got ${JSON.stringify(value)}`;
    for (const value of ['0', '1381', '1440', '2.5', 'soon']) {
      expect(readConfig(envFor([A], { MAX_WAIT_MINUTES: value }))).toEqual({ ok: false, error: error(value) });
    }
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
  test('round trip, with the release it belongs to', () => {
    const description = describeDeployment(releaseOf(SPEC_A), RELEASE_ID);
    expect(JSON.parse(description)).toEqual({
      releaseId: RELEASE_ID, functionId: A.id, functionName: A.functionName, aliasName: 'live', targetVersion: '8', previousVersion: '7',
    });
    expect(parseDeploymentDescription(description)).toEqual({ ...releaseOf(SPEC_A), releaseId: RELEASE_ID });
  });

  test('a description of the controller before release ids still names the function, without a release', () => {
    const legacy = JSON.stringify({ functionId: A.id, functionName: A.functionName, aliasName: 'live', targetVersion: '8', previousVersion: '7' });
    expect(parseDeploymentDescription(legacy)).toEqual(releaseOf(SPEC_A));
    expect(parseDeploymentDescription(JSON.stringify({ ...JSON.parse(legacy), releaseId: '' }))).toEqual(releaseOf(SPEC_A));
    expect(parseDeploymentDescription(JSON.stringify({ ...JSON.parse(legacy), releaseId: 7 }))).toEqual(releaseOf(SPEC_A));
  });

  test('the pre-traffic hook reads the description with the release id', () => {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const hook: typeof import('../../src/handlers/lambda-pre-traffic.lambda') = require('../../src/handlers/lambda-pre-traffic.lambda');
    expect(hook.parseDescription(describeDeployment(releaseOf(SPEC_A), RELEASE_ID))).toMatchObject({ ok: true });
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

  test('round trip of both phases', () => {
    const state = { phase: 'wait' as const, startedAt: T0, polls: 4, releaseId: RELEASE_ID, alarms: 2, deployments: ['d-AAAAAAAAA', 'd-BBBBBBBBB'] };
    expect(JSON.parse(encodeState(state))).toEqual(state);
    expect(parseContinuationToken(encodeState(state), T0)).toEqual({ kind: 'follow', state });
    const rollback = { ...state, phase: 'rollback' as const, rollbackAt: T0 + 5, cause: 'the reason', failureType: 'PermissionError' as const };
    expect(JSON.parse(encodeState(rollback))).toEqual(rollback);
    expect(parseContinuationToken(encodeState(rollback), T0)).toEqual({ kind: 'follow', state: rollback });
  });

  test('a token of the controller before wall-clock limits (no startedAt) is followed, started at least polls × POLL_DELAY_MS ago', () => {
    // A cdk deploy may update the controller in the middle of a release: the new code must follow the old token.
    const legacy = JSON.stringify({ phase: 'wait', polls: 3, releaseId: RELEASE_ID, alarms: 1, deployments: ['d-AAAAAAAAA'] });
    expect(parseContinuationToken(legacy, T0)).toEqual({
      kind: 'follow', state: { phase: 'wait', startedAt: T0 - 3 * POLL_DELAY_MS, polls: 3, releaseId: RELEASE_ID, alarms: 1, deployments: ['d-AAAAAAAAA'] },
    });
  });

  test('a state for 100 functions fits in CodePipeline\'s 2048 characters; a long rollback cause is clipped to fit', () => {
    const deployments = Array.from({ length: MAX_FUNCTIONS }, (_, i) => `d-${String(i).padStart(9, 'X')}`);
    const wait = { phase: 'wait' as const, startedAt: 1_767_225_600_000, polls: 99_999, releaseId: RELEASE_ID, alarms: 10, deployments };
    expect(encodeState(wait).length).toBeLessThanOrEqual(2048);
    const rollback = { ...wait, phase: 'rollback' as const, rollbackAt: 1_767_225_600_000, cause: '"quoted" reason '.repeat(200), failureType: 'JobFailed' as const };
    const token = encodeState(rollback);
    expect(token.length).toBeLessThanOrEqual(2048);
    expect(token.length).toBeGreaterThan(2000);
    const parsed = parseContinuationToken(token, T0);
    expect(parsed).toMatchObject({ kind: 'follow', state: { phase: 'rollback', deployments } });
    const cause = parsed.kind === 'follow' ? parsed.state.cause ?? '' : '';
    expect(cause.endsWith('…')).toBe(true);
    expect(rollback.cause.startsWith(cause.slice(0, -1))).toBe(true);
    // A short cause is kept whole.
    expect(parseContinuationToken(encodeState({ ...rollback, deployments: ['d-1'], cause: 'short' }), T0)).toMatchObject({ state: { cause: 'short' } });
  });

  test.each([
    'garbage',
    '[]',
    '{"phase":"done","polls":0,"releaseId":"r","alarms":1,"deployments":["d-1"]}',
    '{"phase":"wait","startedAt":0,"polls":0,"releaseId":"r","alarms":1,"deployments":["d-1"]}',
    '{"phase":"wait","startedAt":"soon","polls":0,"releaseId":"r","alarms":1,"deployments":["d-1"]}',
    '{"phase":"rollback","polls":0,"releaseId":"r","alarms":1,"deployments":["d-1"],"rollbackAt":5,"cause":"x","failureType":"JobFailed"}',
    '{"phase":"rollback","startedAt":5,"polls":0,"releaseId":"r","alarms":1,"deployments":["d-1"],"cause":"x","failureType":"JobFailed"}',
    '{"phase":"rollback","startedAt":5,"polls":0,"releaseId":"r","alarms":1,"deployments":["d-1"],"rollbackAt":5,"failureType":"JobFailed"}',
    '{"phase":"rollback","startedAt":5,"polls":0,"releaseId":"r","alarms":1,"deployments":["d-1"],"rollbackAt":5,"cause":"x","failureType":"Other"}',
    `{"phase":"wait","startedAt":5,"polls":0,"releaseId":"${'x'.repeat(65)}","alarms":1,"deployments":["d-1"]}`,
    '{"phase":"wait","startedAt":5,"polls":0,"releaseId":"r","alarms":-1,"deployments":["d-1"]}',
    '{"phase":"wait","startedAt":5,"polls":0,"releaseId":"r","alarms":1,"deployments":"d-1"}',
    `{"phase":"wait","startedAt":5,"polls":0,"releaseId":"r","alarms":1,"deployments":${JSON.stringify(Array.from({ length: 101 }, (_, i) => `d-${i}`))}}`,
    '{"phase":"wait","startedAt":5,"polls":0,"releaseId":"r","alarms":1,"deployments":[7]}',
    '{"phase":"wait","startedAt":5,"polls":1.5,"releaseId":"r","alarms":1,"deployments":["d-1"]}',
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

describe('isRetryable', () => {
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
    expect(isRetryable(err)).toBe(true);
  });

  test.each(errors.slice(6))('false for %s', (_label, err) => {
    expect(isRetryable(err)).toBe(false);
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
    expect(outcome).toEqual({ result: 'continue', phase: 'wait', polls: 0 });

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
          releaseId: RELEASE_ID,
          functionId: spec.fn.id,
          functionName: spec.fn.functionName,
          aliasName: 'live',
          targetVersion: spec.target,
          previousVersion: spec.previous,
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
    expect(continuation()).toEqual({ phase: 'wait', startedAt: T0, polls: 0, releaseId: RELEASE_ID, alarms: 1, deployments: [deploymentIdOf(A), deploymentIdOf(B)] });

    // Order: aliases before any code; per function update, wait, publish; versions before the alarm; the alarm
    // before the deployments; the deployments before the report.
    const names = sentNames();
    // First the check that no other release runs (deployment groups of A and B), then the aliases, then the sweep.
    expect(names.slice(0, 5)).toEqual(['ListDeploymentsCommand', 'ListDeploymentsCommand', 'GetAliasCommand', 'GetAliasCommand', 'DescribeAlarmsCommand']);
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
    expect(continuation()).toEqual({ phase: 'wait', startedAt: T0, polls: 0, releaseId: RELEASE_ID, alarms: 1, deployments: [deploymentIdOf(B)] });
    expect(logLines()[0]).toMatchObject({ unchanged: [A.id] });
  });

  test('nothing changed: success without alarms or deployments', async () => {
    lambdaAnswers([{ ...SPEC_A, target: SPEC_A.previous }, { ...SPEC_B, target: SPEC_B.previous }]);
    const { outcome } = await run(jobEvent());
    expect(outcome).toEqual({ result: 'unchanged' });
    expect(lambdaMock).toHaveReceivedCommandTimes(PublishVersionCommand, 2);
    expect(cloudWatchCommandNames()).toEqual(['DescribeAlarmsCommand']); // the sweep only
    expect(codeDeployMock).not.toHaveReceivedCommand(CreateDeploymentCommand);
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
    expect(continuation()).toEqual({ phase: 'wait', startedAt: T0, polls: 0, releaseId: RELEASE_ID, alarms: 2, deployments: specs.map((s) => deploymentIdOf(s.fn)) });
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
    expect(outcome).toEqual({ result: 'continue', phase: 'wait', polls: 0 });
    expect(continuation()).toEqual({ phase: 'wait', startedAt: T0, polls: 0, releaseId: RELEASE_ID, alarms: 1, deployments: [deploymentIdOf(A), deploymentIdOf(B)] });
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
      + 'a traffic shift was left half done (no deployment is running for it), and CodeDeploy refuses such an alias. '
      + 'Point the alias at a single version (aws lambda update-alias --function-name <name> --name <alias> --function-version <version> '
      + '--routing-config AdditionalVersionWeights={}), then retry the stage; no alias was changed: production still serves the previous versions';
    expect(outcome).toEqual({ result: 'failed', message });
    expect(failure()).toEqual({ type: 'JobFailed', message });
    expect(sentNames()).toEqual(['ListDeploymentsCommand', 'ListDeploymentsCommand', 'GetAliasCommand', 'GetAliasCommand', 'PutJobFailureResultCommand']);
    expect(lambdaMock).not.toHaveReceivedCommand(UpdateFunctionCodeCommand);
    // Not even the sweep: a half-done shift may belong to a deployment still running, watched by its alarms.
    expect(cloudWatchMock).not.toHaveReceivedAnyCommand();
    expect(codeDeployMock).not.toHaveReceivedCommand(CreateDeploymentCommand);
  });

  test('an empty routing config is no traffic shift', async () => {
    lambdaAnswers([{ ...SPEC_A, weights: {} }, SPEC_B]);
    createAnswers([SPEC_A, SPEC_B]);
    await expect(run(jobEvent())).resolves.toMatchObject({ outcome: { result: 'continue', phase: 'wait', polls: 0 } });
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
    expect(codeDeployMock).not.toHaveReceivedCommand(CreateDeploymentCommand);
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
    const { sleeps } = await run(jobEvent(), { deadline: T0 + RELEASE_MARGIN_MS + 5_000 });
    expect(sleeps).toEqual(Array(5).fill(UPDATE_POLL_MS));
    expectFacts(failure().message, ['GetSleepSecs', 'orders-api', 'GetSleepSecs', 'LastUpdateStatus', 'InProgress', 'retry the stage', 'no alias was changed', 'production still']);
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
    expect(codeDeployMock).not.toHaveReceivedCommand(CreateDeploymentCommand);
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
    expect(codeDeployMock).not.toHaveReceivedCommand(CreateDeploymentCommand);
    expect(failure()).toEqual({
      type: 'JobFailed',
      message: `cloudwatch:PutMetricAlarm failed for alarm ${ALARM_2}: LimitExceeded: The maximum number of alarms has been reached; `
        + 'deleted the alarms already created; no alias was changed: production still serves the previous versions',
    });
    expect(sentNames().slice(-4)).toEqual(['PutMetricAlarmCommand', 'PutMetricAlarmCommand', 'DeleteAlarmsCommand', 'PutJobFailureResultCommand']);
  });
});

describe('first invocation: CreateDeployment fails', () => {
  test('on the second function: the rollback of the first starts at once, and the job goes on until it is verified', async () => {
    lambdaAnswers([SPEC_A, SPEC_B]);
    createAnswers([SPEC_A]);
    codeDeployMock.on(CreateDeploymentCommand, { deploymentGroupName: B.deploymentGroupName }).rejects(
      new DeploymentLimitExceededException({ message: 'The deployment group already has an active deployment', $metadata: { httpStatusCode: 400 } }));
    deploymentAnswers([{ spec: SPEC_A, status: 'InProgress' }]);
    const { outcome } = await run(jobEvent());
    expect(outcome).toEqual({ result: 'continue', phase: 'rollback', polls: 1 });
    expect(codeDeployMock).toHaveReceivedCommandTimes(StopDeploymentCommand, 1);
    expect(codeDeployMock).toHaveReceivedCommandWith(StopDeploymentCommand, { deploymentId: deploymentIdOf(A), autoRollbackEnabled: true });
    // The alarms still watch the deployment being stopped: deleted only when the rollback has ended.
    expect(cloudWatchMock).not.toHaveReceivedCommand(DeleteAlarmsCommand);
    expect(continuation()).toEqual({
      phase: 'rollback',
      startedAt: T0,
      polls: 1,
      releaseId: RELEASE_ID,
      alarms: 1,
      deployments: [deploymentIdOf(A)],
      rollbackAt: T0 + 2 * UPDATE_POLL_MS, // after the code updates
      cause: 'codedeploy:CreateDeployment failed for function PostItems (orders-api-PostItems): DeploymentLimitExceededException: '
        + 'The deployment group already has an active deployment',
      failureType: 'JobFailed',
    });
    // The group's running deployment was looked up after the refusal: not this release's, so nothing adopted.
    expect(codeDeployMock).toHaveReceivedCommandTimes(ListDeploymentsCommand, 3);
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

  test('on the first function, the alarm cannot be deleted: said so', async () => {
    lambdaAnswers([SPEC_A, SPEC_B]);
    codeDeployMock.on(CreateDeploymentCommand).rejects(codeDeployThrottled());
    cloudWatchMock.on(DeleteAlarmsCommand).rejects(cloudWatchAccessDenied('cloudwatch:DeleteAlarms'));
    await run(jobEvent());
    expectFacts(failure().message, ['codedeploy:CreateDeployment', 'failed', 'GetSleepSecs', 'orders-api', 'GetSleepSecs', 'ThrottlingException', 'transient', 'retry the stage', 'no alias was changed', 'production still', 'NOT', 'check by hand', 'cloudwatch:DeleteAlarms', 'failed', ALARM_1, 'AccessDenied', '123456789012:', 'assumed-role', '/serverless-release/fn', 'cloudwatch:DeleteAlarms']);
  });

  test('a deployment that cannot be stopped yet: stopping is tried again in the next invocation', async () => {
    lambdaAnswers([SPEC_A, SPEC_B]);
    createAnswers([SPEC_A]);
    codeDeployMock.on(CreateDeploymentCommand, { deploymentGroupName: B.deploymentGroupName }).rejects(codeDeployThrottled());
    codeDeployMock.on(StopDeploymentCommand).rejects(codeDeployThrottled());
    deploymentAnswers([{ spec: SPEC_A, status: 'InProgress' }]);
    await run(jobEvent());
    expect(continuation()).toMatchObject({ phase: 'rollback', deployments: [deploymentIdOf(A)] });
    expect(JSON.parse(String(errorSpy.mock.calls[0][0]))).toMatchObject({ level: 'ERROR', message: 'could not stop a deployment', deploymentId: deploymentIdOf(A) });
    // Next invocation: StopDeployment works now.
    codeDeployMock.on(StopDeploymentCommand).resolves({ status: 'Pending' });
    const token = cpMock.commandCalls(PutJobSuccessResultCommand)[0].args[0].input.continuationToken;
    cpMock.resetHistory();
    const { outcome } = await run(jobEvent({ continuationToken: token }));
    expect(outcome).toEqual({ result: 'continue', phase: 'rollback', polls: 2 });
    expect(codeDeployMock).toHaveReceivedCommandWith(StopDeploymentCommand, { deploymentId: deploymentIdOf(A), autoRollbackEnabled: true });
  });
});

describe('first invocation: deadline', () => {
  test('too little time left after the code updates: fails before any alarm or deployment exists', async () => {
    lambdaAnswers([{ ...SPEC_A, statuses: [] }, { ...SPEC_B, statuses: [] }]);
    createAnswers([SPEC_A, SPEC_B]);
    await run(jobEvent(), { deadline: T0 + RELEASE_MARGIN_MS - 1_000 });
    expect(failure()).toEqual({
      type: 'JobFailed',
      message: 'only 19 s were left to this invocation after the code updates, less than the 20 s needed to create the alarms and deployments and report: '
        + 'retry the stage; no alias was changed: production still serves the previous versions',
    });
    expect(cloudWatchMock).not.toHaveReceivedCommand(PutMetricAlarmCommand);
    expect(codeDeployMock).not.toHaveReceivedCommand(CreateDeploymentCommand);
  });

  test('exactly RELEASE_MARGIN_MS left: the release goes on', async () => {
    lambdaAnswers([{ ...SPEC_A, statuses: [] }, { ...SPEC_B, statuses: [] }]);
    createAnswers([SPEC_A, SPEC_B]);
    const { outcome } = await run(jobEvent(), { deadline: T0 + RELEASE_MARGIN_MS });
    expect(outcome).toEqual({ result: 'continue', phase: 'wait', polls: 0 });
  });

  test('time runs short between two CreateDeployment calls: no more are created, the one created is rolled back', async () => {
    lambdaAnswers([{ ...SPEC_A, statuses: [] }, { ...SPEC_B, statuses: [] }]);
    let clock = T0;
    codeDeployMock.on(CreateDeploymentCommand, { deploymentGroupName: A.deploymentGroupName }).callsFake(() => {
      clock += 16_000; // a slow call
      return { deploymentId: deploymentIdOf(A) };
    });
    deploymentAnswers([{ spec: SPEC_A, status: 'InProgress' }]);
    const { outcome } = await run(jobEvent(), { now: () => clock, deadline: T0 + 25_000 });
    expect(outcome).toMatchObject({ result: 'continue', phase: 'rollback' });
    expect(codeDeployMock).toHaveReceivedCommandTimes(CreateDeploymentCommand, 1);
    expect(codeDeployMock).toHaveReceivedCommandWith(StopDeploymentCommand, { deploymentId: deploymentIdOf(A), autoRollbackEnabled: true });
    expect(continuation()).toMatchObject({
      phase: 'rollback',
      deployments: [deploymentIdOf(A)],
      cause: 'the time left to this invocation ran short (9 s) before the deployment of function PostItems (orders-api-PostItems) could be created',
    });
    expect(CREATE_MARGIN_MS).toBe(10_000);
  });

  test('exactly CREATE_MARGIN_MS left before a CreateDeployment: it is created', async () => {
    lambdaAnswers([{ ...SPEC_A, statuses: [] }, { ...SPEC_B, statuses: [] }]);
    let clock = T0;
    codeDeployMock.on(CreateDeploymentCommand, { deploymentGroupName: A.deploymentGroupName }).callsFake(() => {
      clock += 15_000;
      return { deploymentId: deploymentIdOf(A) };
    });
    createAnswers([SPEC_B]);
    const { outcome } = await run(jobEvent(), { now: () => clock, deadline: T0 + 25_000 });
    expect(outcome).toEqual({ result: 'continue', phase: 'wait', polls: 0 });
    expect(codeDeployMock).toHaveReceivedCommandTimes(CreateDeploymentCommand, 2);
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
    expect(outcome).toEqual({ result: 'continue', phase: 'wait', polls: 4 });
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
    await expect(run(jobEvent({ continuationToken: waitToken([SPEC_A, SPEC_B], 0) }))).resolves.toMatchObject({ outcome: { result: 'continue', phase: 'wait', polls: 1 } });
  });

  test('the pause never runs past the Lambda deadline minus the reporting margin', async () => {
    deploymentAnswers([{ spec: SPEC_A, status: 'InProgress' }, { spec: SPEC_B, status: 'InProgress' }]);
    const { sleeps } = await run(jobEvent({ continuationToken: waitToken([SPEC_A, SPEC_B]) }), { now: () => 0, deadline: 12_000 });
    expect(sleeps).toEqual([12_000 - REPORTING_MARGIN_MS]);
  });

  test('one Failed while another is InProgress and a third Succeeded: all roll back together, and the job waits for the rollback', async () => {
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
    codeDeployMock.on(GetDeploymentCommand, { deploymentId: 'd-ROLLBACK1' }).resolves({ deploymentInfo: { deploymentId: 'd-ROLLBACK1', status: 'InProgress' } });
    aliasAnswers([{ spec: SPEC_C, version: '3' }]);
    const { outcome, sleeps } = await run(jobEvent({ continuationToken: waitToken([SPEC_A, SPEC_B, SPEC_C], 9) }));
    expect(outcome).toEqual({ result: 'continue', phase: 'rollback', polls: 10 });
    const cause = `deployment ${deploymentIdOf(A)} of function GetSleepSecs (orders-api-GetSleepSecs) is Stopped: `
      + `ALARM_ACTIVE: One or more alarms have been activated according to your alarm configuration. Activated alarms: <${ALARM_1}>`;
    const token = JSON.stringify({
      phase: 'rollback', startedAt: T0, polls: 10, releaseId: RELEASE_ID, alarms: 1, deployments: [A, B, C].map(deploymentIdOf), rollbackAt: T0, cause, failureType: 'JobFailed',
    });
    expect(sent()).toEqual([
      ['GetDeploymentCommand', { deploymentId: deploymentIdOf(A) }],
      ['GetDeploymentCommand', { deploymentId: deploymentIdOf(B) }],
      ['GetDeploymentCommand', { deploymentId: deploymentIdOf(C) }],
      ['GetDeploymentCommand', { deploymentId: 'd-ROLLBACK1' }],
      ['StopDeploymentCommand', { deploymentId: deploymentIdOf(B), autoRollbackEnabled: true }],
      ['GetAliasCommand', { FunctionName: C.functionName, Name: 'live' }],
      ['UpdateAliasCommand', { FunctionName: C.functionName, Name: 'live', FunctionVersion: '2', RoutingConfig: { AdditionalVersionWeights: {} } }],
      ['PutJobSuccessResultCommand', { jobId: JOB_ID, continuationToken: token }],
    ]);
    // Not "every function returns to its previous version" on an accepted stop: no failure reported yet, alarms kept.
    expect(cpMock).not.toHaveReceivedCommand(PutJobFailureResultCommand);
    expect(cloudWatchMock).not.toHaveReceivedAnyCommand();
    expect(codeDeployMock).not.toHaveReceivedCommandWith(StopDeploymentCommand, { deploymentId: deploymentIdOf(A) });
    expect(sleeps).toEqual([POLL_DELAY_MS]);
  });

  test('Failed deployments without rollback deployments whose aliases are back: verified at once, the job fails saying what production runs', async () => {
    deploymentAnswers([
      { spec: SPEC_A, status: 'Failed', info: { errorInformation: { code: 'HOOK_EXECUTION_FAILURE', message: 'The BeforeAllowTraffic hook failed' } } },
      { spec: SPEC_B, status: 'Failed' },
    ]);
    aliasAnswers([{ spec: SPEC_A, version: '7' }, { spec: SPEC_B, version: '12' }]);
    await run(jobEvent({ continuationToken: waitToken([SPEC_A, SPEC_B]) }));
    expect(failure()).toEqual({
      type: 'JobFailed',
      message: `release ${RELEASE_ID} failed: deployment ${deploymentIdOf(A)} of function GetSleepSecs (orders-api-GetSleepSecs) is Failed: `
        + `HOOK_EXECUTION_FAILURE: The BeforeAllowTraffic hook failed; deployment ${deploymentIdOf(B)} of function PostItems (orders-api-PostItems) is Failed; `
        + 'rolled back: every function serves its previous version again (verified): GetSleepSecs=7, PostItems=12; deleted the release alarms',
    });
    expect(codeDeployMock).not.toHaveReceivedCommand(StopDeploymentCommand);
    expect(lambdaMock).not.toHaveReceivedCommand(UpdateAliasCommand);
    expect(cloudWatchMock).toHaveReceivedCommandWith(DeleteAlarmsCommand, { AlarmNames: [ALARM_1] });
  });

  test('the wait is bounded by wall-clock time from startedAt, not by a poll count: at maxWaitMs the rollback starts after only 2 polls', async () => {
    deploymentAnswers([{ spec: SPEC_A, status: 'Succeeded' }, { spec: SPEC_B, status: 'Baking' }]);
    aliasAnswers([{ spec: SPEC_A, version: '8' }]);
    const { outcome } = await run(jobEvent({ continuationToken: waitToken([SPEC_A, SPEC_B], 2, 1, DEFAULT_MAX_WAIT_MS) }));
    expect(outcome).toEqual({ result: 'continue', phase: 'rollback', polls: 3 });
    expect(continuation()).toMatchObject({
      phase: 'rollback',
      startedAt: T0 - DEFAULT_MAX_WAIT_MS,
      cause: 'the release did not finish in time: still not finished after 60 minutes (the limit is 60 minutes): '
        + `deployment ${deploymentIdOf(B)} of function PostItems (orders-api-PostItems) is Baking`,
    });
    expect(sent().slice(2)).toEqual([
      ['GetAliasCommand', { FunctionName: A.functionName, Name: 'live' }],
      ['StopDeploymentCommand', { deploymentId: deploymentIdOf(B), autoRollbackEnabled: true }],
      ['UpdateAliasCommand', { FunctionName: A.functionName, Name: 'live', FunctionVersion: '7', RoutingConfig: { AdditionalVersionWeights: {} } }],
      ['PutJobSuccessResultCommand', expect.anything()],
    ]);
  });

  test('one millisecond before maxWaitMs: still waits, however many polls there were', async () => {
    deploymentAnswers([{ spec: SPEC_A, status: 'Succeeded' }, { spec: SPEC_B, status: 'InProgress' }]);
    await run(jobEvent({ continuationToken: waitToken([SPEC_A, SPEC_B], 10_000, 1, DEFAULT_MAX_WAIT_MS - 1) }));
    expect(continuation()).toMatchObject({ phase: 'wait', polls: 10_001, startedAt: T0 - DEFAULT_MAX_WAIT_MS + 1 });
  });

  test('MAX_WAIT_MINUTES sets the wall-clock limit', async () => {
    process.env.MAX_WAIT_MINUTES = '90';
    deploymentAnswers([{ spec: SPEC_A, status: 'InProgress' }]);
    await run(jobEvent({ continuationToken: waitToken([SPEC_A], 3, 1, DEFAULT_MAX_WAIT_MS) }));
    expect(continuation()).toMatchObject({ phase: 'wait', polls: 4 });
    cpMock.resetHistory();
    await run(jobEvent({ continuationToken: waitToken([SPEC_A], 3, 1, 90 * 60_000) }));
    expect(continuation()).toMatchObject({ phase: 'rollback', cause: expect.stringMatching(/^the release did not finish in time: still not finished after 90 minutes/) });
  });

  test('throttled GetDeployment: one more poll', async () => {
    deploymentAnswers([{ spec: SPEC_A, status: 'Succeeded' }]);
    codeDeployMock.on(GetDeploymentCommand, { deploymentId: deploymentIdOf(B) }).rejects(codeDeployThrottled());
    const { outcome, sleeps } = await run(jobEvent({ continuationToken: waitToken([SPEC_A, SPEC_B], 2) }));
    expect(outcome).toEqual({ result: 'continue', phase: 'wait', polls: 3 });
    expect(sleeps).toEqual([POLL_DELAY_MS]);
    expect(continuation()).toEqual(JSON.parse(waitToken([SPEC_A, SPEC_B], 3)));
    expect(codeDeployMock).not.toHaveReceivedCommand(StopDeploymentCommand);
    expect(cloudWatchMock).not.toHaveReceivedAnyCommand();
    expect(logLines()[0]).toMatchObject({
      reason: `codedeploy:GetDeployment failed for deployment ${deploymentIdOf(B)}: ThrottlingException: Rate exceeded (transient)`,
    });
  });

  test('throttled when the wait ends: rolls back what it can and goes on rolling back', async () => {
    deploymentAnswers([{ spec: SPEC_A, status: 'Succeeded' }]);
    codeDeployMock.on(GetDeploymentCommand, { deploymentId: deploymentIdOf(B) }).rejects(codeDeployThrottled());
    aliasAnswers([{ spec: SPEC_A, version: '8' }]);
    await run(jobEvent({ continuationToken: waitToken([SPEC_A, SPEC_B], 7, 1, DEFAULT_MAX_WAIT_MS) }));
    expect(lambdaMock).toHaveReceivedCommandWith(UpdateAliasCommand, { FunctionName: A.functionName, Name: 'live', FunctionVersion: '7' });
    expect(continuation()).toMatchObject({ phase: 'rollback' });
  });

  test('AccessDenied on GetDeployment: the rollback starts, and will report a permission error', async () => {
    deploymentAnswers([{ spec: SPEC_A, status: 'InProgress' }]);
    codeDeployMock.on(GetDeploymentCommand, { deploymentId: deploymentIdOf(B) }).rejects(accessDenied('codedeploy:GetDeployment'));
    const { outcome } = await run(jobEvent({ continuationToken: waitToken([SPEC_A, SPEC_B], 1) }));
    expect(outcome).toEqual({ result: 'continue', phase: 'rollback', polls: 2 });
    expect(codeDeployMock).toHaveReceivedCommandTimes(StopDeploymentCommand, 1);
    expect(codeDeployMock).toHaveReceivedCommandWith(StopDeploymentCommand, { deploymentId: deploymentIdOf(A) });
    expect(continuation()).toMatchObject({
      failureType: 'PermissionError',
      cause: `codedeploy:GetDeployment failed for deployment ${deploymentIdOf(B)}: AccessDeniedException: User: `
        + 'arn:aws:sts::123456789012:assumed-role/serverless-release/fn is not authorized to perform: codedeploy:GetDeployment',
    });
  });

  test('an alias that cannot be moved back: production is reported MIXED, naming what each function serves', async () => {
    deploymentAnswers([{ spec: SPEC_A, status: 'Failed' }, { spec: SPEC_B, status: 'Succeeded' }]);
    aliasAnswers([{ spec: SPEC_A, version: '7' }, { spec: SPEC_B, version: '13' }]);
    lambdaMock.on(UpdateAliasCommand).rejects(accessDenied('lambda:UpdateAlias'));
    await run(jobEvent({ continuationToken: waitToken([SPEC_A, SPEC_B]) }));
    expectFacts(failure().message, [RELEASE_ID, 'failed', deploymentIdOf(A), 'GetSleepSecs', 'orders-api', 'GetSleepSecs', 'Failed', 'NOT', 'MIXED', 'GetSleepSecs=7', 'NOT', 'PostItems', '13', '12', '13', 'lambda:UpdateAlias', 'failed', 'PostItems', 'orders-api', 'PostItems', 'AccessDeniedException', '123456789012:', 'assumed-role', 'serverless-release', '/fn', 'lambda:UpdateAlias', 'check by hand', 'deleted the release alarms']);
    expect(cloudWatchMock).toHaveReceivedCommandTimes(DeleteAlarmsCommand, 1);
    expect(JSON.parse(String(errorSpy.mock.calls[0][0]))).toMatchObject({ message: 'could not move an alias back', deploymentId: deploymentIdOf(B) });
  });

  test('a succeeded deployment whose description names no function cannot be checked: said so, never "every function is back"', async () => {
    deploymentAnswers([{ spec: SPEC_A, status: 'Failed' }, { spec: SPEC_B, status: 'Succeeded', info: { description: 'changed by hand' } }]);
    aliasAnswers([{ spec: SPEC_A, version: '7' }]);
    await run(jobEvent({ continuationToken: waitToken([SPEC_A, SPEC_B]) }));
    const { message } = failure();
    expect(message).toContain(`NOT back on the previous version: ${deploymentIdOf(B)}: deployment ${deploymentIdOf(B)} cannot be rolled back or checked: `
      + 'its description does not name the function and versions; check by hand');
    expect(message).not.toContain('every function serves its previous version');
    expect(lambdaMock).not.toHaveReceivedCommand(UpdateAliasCommand);
  });

  test('an unknown status: rolls back together (the unknown one is stopped too)', async () => {
    deploymentAnswers([{ spec: SPEC_A, status: 'Paused' as DeploymentStatus }, { spec: SPEC_B, status: 'InProgress' }]);
    await run(jobEvent({ continuationToken: waitToken([SPEC_A, SPEC_B]) }));
    expect(continuation()).toMatchObject({ phase: 'rollback', cause: expect.stringMatching(/is Paused \(a status this function does not know\)$/) });
    expect(codeDeployMock).toHaveReceivedCommandTimes(StopDeploymentCommand, 2);
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
// The coordinated rollback (issue 8: rollbacks reported done only once they have finished)
// ---------------------------------------------------------------------------------------------------------------

describe('the coordinated rollback', () => {
  const alreadyCompleted = () => new CodeDeployServiceException({
    name: 'DeploymentAlreadyCompletedException', $fault: 'client', message: 'The deployment is already completed.', $metadata: { httpStatusCode: 400 },
  });

  test('DeploymentAlreadyCompleted: a deployment that succeeded between the read and StopDeployment gets its alias moved back, so all end on one version', async () => {
    // A is stopped by the alarm; B is read InProgress, then succeeds before StopDeployment reaches it.
    const bId = deploymentIdOf(B);
    deploymentAnswers([{ spec: SPEC_A, status: 'Stopped', info: { rollbackInfo: { rollbackDeploymentId: 'd-RBA' } } }]);
    codeDeployMock.on(GetDeploymentCommand, { deploymentId: bId })
      .resolvesOnce({ deploymentInfo: { deploymentId: bId, status: 'InProgress', description: describeDeployment(releaseOf(SPEC_B), RELEASE_ID) } })
      .resolves({ deploymentInfo: { deploymentId: bId, status: 'Succeeded', description: describeDeployment(releaseOf(SPEC_B), RELEASE_ID) } });
    codeDeployMock.on(GetDeploymentCommand, { deploymentId: 'd-RBA' }).resolves({ deploymentInfo: { deploymentId: 'd-RBA', status: 'Succeeded' } });
    codeDeployMock.on(StopDeploymentCommand, { deploymentId: bId }).rejects(alreadyCompleted());
    aliasAnswers([{ spec: SPEC_A, version: '7' }, { spec: SPEC_B, version: '13' }]);

    const { outcome } = await run(jobEvent({ continuationToken: waitToken([SPEC_A, SPEC_B], 4) }));
    const message = `release ${RELEASE_ID} failed: deployment ${deploymentIdOf(A)} of function GetSleepSecs (orders-api-GetSleepSecs) is Stopped; `
      + 'rolled back: every function serves its previous version again (verified): GetSleepSecs=7, PostItems=12; deleted the release alarms';
    expect(outcome).toEqual({ result: 'failed', message });
    expect(failure()).toEqual({ type: 'JobFailed', message });
    expect(sent()).toEqual([
      ['GetDeploymentCommand', { deploymentId: deploymentIdOf(A) }],
      ['GetDeploymentCommand', { deploymentId: bId }],
      ['GetDeploymentCommand', { deploymentId: 'd-RBA' }],
      ['StopDeploymentCommand', { deploymentId: bId, autoRollbackEnabled: true }],
      ['GetDeploymentCommand', { deploymentId: bId }], // read again after DeploymentAlreadyCompleted: Succeeded
      ['GetAliasCommand', { FunctionName: A.functionName, Name: 'live' }],
      ['GetAliasCommand', { FunctionName: B.functionName, Name: 'live' }],
      ['UpdateAliasCommand', { FunctionName: B.functionName, Name: 'live', FunctionVersion: '12', RoutingConfig: { AdditionalVersionWeights: {} } }],
      ['DeleteAlarmsCommand', { AlarmNames: [ALARM_1] }],
      ['PutJobFailureResultCommand', { jobId: JOB_ID, failureDetails: { type: 'JobFailed', message } }],
    ]);
    // Not a problem to report: the race is handled, and no error was logged for it.
    expect(errorSpy).not.toHaveBeenCalled();
  });

  test('reported done only once CodeDeploy\'s rollback has finished: followed across invocations until the aliases are verified', async () => {
    // Invocation 1: A stopped by an alarm, its rollback deployment still running; B still shifting: stopped.
    deploymentAnswers([{ spec: SPEC_A, status: 'Stopped', info: { rollbackInfo: { rollbackDeploymentId: 'd-RBA' } } }, { spec: SPEC_B, status: 'InProgress' }]);
    codeDeployMock.on(GetDeploymentCommand, { deploymentId: 'd-RBA' }).resolves({ deploymentInfo: { deploymentId: 'd-RBA', status: 'InProgress' } });
    const first = await run(jobEvent({ continuationToken: waitToken([SPEC_A, SPEC_B]) }));
    expect(first.outcome).toEqual({ result: 'continue', phase: 'rollback', polls: 1 });
    const token1 = cpMock.commandCalls(PutJobSuccessResultCommand)[0].args[0].input.continuationToken!;
    expect(cloudWatchMock).not.toHaveReceivedAnyCommand();

    // Invocation 2: A's rollback finished, but B's rollback deployment still runs: not done yet.
    cpMock.resetHistory();
    deploymentAnswers([
      { spec: SPEC_A, status: 'Stopped', info: { rollbackInfo: { rollbackDeploymentId: 'd-RBA' } } },
      { spec: SPEC_B, status: 'Stopped', info: { rollbackInfo: { rollbackDeploymentId: 'd-RBB' } } },
    ]);
    codeDeployMock.on(GetDeploymentCommand, { deploymentId: 'd-RBA' }).resolves({ deploymentInfo: { deploymentId: 'd-RBA', status: 'Succeeded' } });
    codeDeployMock.on(GetDeploymentCommand, { deploymentId: 'd-RBB' }).resolves({ deploymentInfo: { deploymentId: 'd-RBB', status: 'InProgress' } });
    aliasAnswers([{ spec: SPEC_A, version: '7' }, { spec: SPEC_B, version: '13', weights: { 12: 0.5 } }]);
    const second = await run(jobEvent({ continuationToken: token1 }));
    expect(second.outcome).toEqual({ result: 'continue', phase: 'rollback', polls: 2 });
    expect(cpMock).not.toHaveReceivedCommand(PutJobFailureResultCommand);
    const token2 = cpMock.commandCalls(PutJobSuccessResultCommand)[0].args[0].input.continuationToken!;

    // Invocation 3: both rollbacks finished and both aliases verified: now the job fails, saying so.
    cpMock.resetHistory();
    codeDeployMock.on(GetDeploymentCommand, { deploymentId: 'd-RBB' }).resolves({ deploymentInfo: { deploymentId: 'd-RBB', status: 'Succeeded' } });
    aliasAnswers([{ spec: SPEC_A, version: '7' }, { spec: SPEC_B, version: '12' }]);
    const third = await run(jobEvent({ continuationToken: token2 }));
    expect(third.outcome).toEqual({
      result: 'failed',
      message: `release ${RELEASE_ID} failed: deployment ${deploymentIdOf(A)} of function GetSleepSecs (orders-api-GetSleepSecs) is Stopped; `
        + 'rolled back: every function serves its previous version again (verified): GetSleepSecs=7, PostItems=12; deleted the release alarms',
    });
    expect(lambdaMock).not.toHaveReceivedCommand(UpdateAliasCommand);
    expect(cloudWatchMock).toHaveReceivedCommandTimes(DeleteAlarmsCommand, 1);
  });

  test('CodeDeploy\'s rollback ended but the alias is not back: the controller moves it back itself and says why', async () => {
    deploymentAnswers([{ spec: SPEC_A, status: 'Failed', info: { rollbackInfo: { rollbackDeploymentId: 'd-RBA' } } }]);
    codeDeployMock.on(GetDeploymentCommand, { deploymentId: 'd-RBA' }).resolves({ deploymentInfo: { deploymentId: 'd-RBA', status: 'Failed' } });
    aliasAnswers([{ spec: SPEC_A, version: '8' }]);
    process.env.FUNCTIONS = JSON.stringify([A]);
    await run(jobEvent({ continuationToken: rollbackToken([SPEC_A], { cause: 'alarm' }) }));
    expect(lambdaMock).toHaveReceivedCommandWith(UpdateAliasCommand, { FunctionName: A.functionName, FunctionVersion: '7' });
    expectFacts(failure().message, [RELEASE_ID, 'failed', 'rolled back', 'verified', 'GetSleepSecs=7', 'deleted the release alarms']);
    expect(logLines()).toContainEqual(expect.objectContaining({
      message: 'moved an alias back to its previous version', function: A.id, from: '8', to: '7', why: 'CodeDeploy\'s rollback did not return it to version 7',
    }));
  });

  test('no rollback deployment (yet): CodeDeploy gets ROLLBACK_GRACE_MS, then the controller moves the alias back', async () => {
    process.env.FUNCTIONS = JSON.stringify([A]);
    deploymentAnswers([{ spec: SPEC_A, status: 'Failed' }]);
    aliasAnswers([{ spec: SPEC_A, version: '7', weights: { 8: 0.1 } }]);
    await run(jobEvent({ continuationToken: rollbackToken([SPEC_A], { rollbackElapsedMs: ROLLBACK_GRACE_MS - 1 }) }));
    expect(continuation()).toMatchObject({ phase: 'rollback', polls: 2 });
    expect(lambdaMock).not.toHaveReceivedCommand(UpdateAliasCommand);

    cpMock.resetHistory();
    await run(jobEvent({ continuationToken: rollbackToken([SPEC_A], { rollbackElapsedMs: ROLLBACK_GRACE_MS }) }));
    expect(lambdaMock).toHaveReceivedCommandWith(UpdateAliasCommand, { FunctionName: A.functionName, FunctionVersion: '7', RoutingConfig: { AdditionalVersionWeights: {} } });
    expect(failure().message).toMatch(/rolled back: every function serves its previous version again \(verified\): GetSleepSecs=7; /);
  });

  test('an UpdateAlias answer that does not show the previous version is not taken as done', async () => {
    process.env.FUNCTIONS = JSON.stringify([A]);
    deploymentAnswers([{ spec: SPEC_A, status: 'Succeeded' }]);
    aliasAnswers([{ spec: SPEC_A, version: '8' }]);
    lambdaMock.on(UpdateAliasCommand).resolves({ FunctionVersion: '8', RoutingConfig: { AdditionalVersionWeights: { 7: 0.5 } } });
    await run(jobEvent({ continuationToken: rollbackToken([SPEC_A]) }));
    expect(continuation()).toMatchObject({ phase: 'rollback' });
    expect(logLines()).toContainEqual(expect.objectContaining({ pending: ['UpdateAlias answered version 8 (with 0.5 to 7): to be checked again'] }));
  });

  test('not finished ROLLBACK_LIMIT_MS after it started: fails saying what each function serves, keeping the alarms while a deployment runs', async () => {
    deploymentAnswers([{ spec: SPEC_A, status: 'InProgress' }, { spec: SPEC_B, status: 'Succeeded' }]);
    aliasAnswers([{ spec: SPEC_B, version: '12' }]);
    await run(jobEvent({ continuationToken: rollbackToken([SPEC_A, SPEC_B], { rollbackElapsedMs: ROLLBACK_LIMIT_MS, cause: 'alarm', failureType: 'PermissionError' }) }));
    expect(failure()).toEqual({
      type: 'PermissionError',
      message: `release ${RELEASE_ID} failed: alarm; the rollback did NOT finish within 30 minutes: production may run MIXED versions; `
        + 'back on the previous version: PostItems=12; NOT back on the previous version: GetSleepSecs serves unknown (previous 7, new 8): '
        + `deployment ${deploymentIdOf(A)} of function GetSleepSecs (orders-api-GetSleepSecs) is being stopped with rollback (Pending); check by hand; `
        + `kept the release alarms ${ALARM_1} while deployments still run: delete them when these end`,
    });
    expect(cloudWatchMock).not.toHaveReceivedCommand(DeleteAlarmsCommand);
  });

  test('one millisecond before ROLLBACK_LIMIT_MS: goes on rolling back', async () => {
    deploymentAnswers([{ spec: SPEC_A, status: 'InProgress' }]);
    process.env.FUNCTIONS = JSON.stringify([A]);
    await run(jobEvent({ continuationToken: rollbackToken([SPEC_A], { rollbackElapsedMs: ROLLBACK_LIMIT_MS - 1 }) }));
    expect(continuation()).toMatchObject({ phase: 'rollback' });
  });

  test('the limits end the action before CodePipeline\'s 24 hours: the longest wait plus the rollback plus a margin', () => {
    expect(MAX_WAIT_LIMIT_MS + ROLLBACK_LIMIT_MS + 30 * 60_000).toBe(24 * 60 * 60_000);
  });

  test('a throttled read in the rollback is tried again; an alias that cannot be read for good is named', async () => {
    deploymentAnswers([{ spec: SPEC_B, status: 'Failed' }]);
    codeDeployMock.on(GetDeploymentCommand, { deploymentId: deploymentIdOf(A) }).rejects(codeDeployThrottled());
    lambdaMock.on(GetAliasCommand, { FunctionName: B.functionName }).rejects(accessDenied('lambda:GetAlias'));
    await run(jobEvent({ continuationToken: rollbackToken([SPEC_A, SPEC_B]) }));
    expect(continuation()).toMatchObject({ phase: 'rollback' });
    expect(logLines()).toContainEqual(expect.objectContaining({
      pending: [`could not be read: codedeploy:GetDeployment failed for deployment ${deploymentIdOf(A)}: ThrottlingException: Rate exceeded`],
    }));
  });

  test('a duplicate continuation invocation (the same token twice) moves no alias twice and ends on the same verified result', async () => {
    process.env.FUNCTIONS = JSON.stringify([A]);
    deploymentAnswers([{ spec: SPEC_A, status: 'Succeeded' }]);
    lambdaMock.on(GetAliasCommand, { FunctionName: A.functionName })
      .resolvesOnce({ FunctionVersion: '8' })
      .resolves({ FunctionVersion: '7' });
    const token = rollbackToken([SPEC_A], { cause: 'alarm' });
    const first = await run(jobEvent({ continuationToken: token }));
    const second = await run(jobEvent({ continuationToken: token }));
    expect(first.outcome).toEqual(second.outcome);
    expect(first.outcome).toMatchObject({ result: 'failed', message: expect.stringContaining('every function serves its previous version again (verified): GetSleepSecs=7') });
    expect(lambdaMock).toHaveReceivedCommandTimes(UpdateAliasCommand, 1);
  });
});

// ---------------------------------------------------------------------------------------------------------------
// Only one release at a time (checked with CodeDeploy), duplicate, retried and superseded invocations
// ---------------------------------------------------------------------------------------------------------------

describe('only one release at a time, checked with CodeDeploy', () => {
  const runningOf = (spec: FnSpec, deploymentId: string, releaseId: string | undefined, extra: Partial<DeploymentInfo> = {}) => {
    codeDeployMock.on(ListDeploymentsCommand, { deploymentGroupName: spec.fn.deploymentGroupName }).resolves({ deployments: [deploymentId] });
    codeDeployMock.on(GetDeploymentCommand, { deploymentId }).resolves({
      deploymentInfo: {
        deploymentId,
        status: 'InProgress',
        description: releaseId === undefined ? 'Rollback of d-EARLIER' : describeDeployment(releaseOf(spec), releaseId),
        ...extra,
      },
    });
  };

  test('asks CodeDeploy for running deployments of every group, with includeOnlyStatuses, every page', async () => {
    codeDeployMock.on(ListDeploymentsCommand, { deploymentGroupName: A.deploymentGroupName })
      .resolvesOnce({ deployments: [], nextToken: 'page-2' })
      .resolves({ deployments: [] });
    lambdaAnswers([SPEC_A, SPEC_B]);
    createAnswers([SPEC_A, SPEC_B]);
    await run(jobEvent());
    expect(codeDeployMock.commandCalls(ListDeploymentsCommand).map((c) => c.args[0].input)).toEqual([
      { applicationName: APPLICATION, deploymentGroupName: A.deploymentGroupName, includeOnlyStatuses: ['Created', 'Queued', 'InProgress', 'Baking', 'Ready'] },
      { applicationName: APPLICATION, deploymentGroupName: B.deploymentGroupName, includeOnlyStatuses: ['Created', 'Queued', 'InProgress', 'Baking', 'Ready'] },
      { applicationName: APPLICATION, deploymentGroupName: A.deploymentGroupName, includeOnlyStatuses: [...RUNNING_STATUSES], nextToken: 'page-2' },
    ]);
  });

  test('another release\'s deployment still runs (after a stop-and-abandon): refuses before anything changes, naming it', async () => {
    runningOf(SPEC_B, 'd-OTHERREL', '9f8e7d6c');
    cloudWatchMock.on(DescribeAlarmsCommand).resolves({ MetricAlarms: [{ AlarmName: alarmNameFor(ALARM_PREFIX, '9f8e7d6c', 1) }] });
    const { outcome } = await run(jobEvent());
    const message = 'refused: another release is still running in this API\'s deployment groups: deployment d-OTHERREL of function PostItems (orders-api-PostItems) '
      + 'is InProgress (release 9f8e7d6c). Only one release runs at a time: retry the stage when it has finished, or stop it '
      + '(aws deploy stop-deployment --deployment-id <id> --auto-rollback-enabled). This release did not wait, and changed no code, alias or alarm';
    expect(outcome).toEqual({ result: 'failed', message });
    expect(failure()).toEqual({ type: 'JobFailed', message });
    expect(sentNames()).toEqual(['ListDeploymentsCommand', 'ListDeploymentsCommand', 'GetDeploymentCommand', 'PutJobFailureResultCommand']);
    // Its alarms are never touched.
    expect(cloudWatchMock).not.toHaveReceivedAnyCommand();
  });

  test('a running deployment this controller did not create (e.g. CodeDeploy\'s own rollback deployment): refused too', async () => {
    runningOf(SPEC_A, 'd-ROLLBACKX', undefined);
    await run(jobEvent());
    expect(failure().message.startsWith('refused: another release is still running in this API\'s deployment groups: deployment d-ROLLBACKX in group '
      + 'orders-api-GetSleepSecs-deployment is InProgress (not created by this controller, or by an earlier version of it).')).toBe(true);
    expect(lambdaMock).not.toHaveReceivedAnyCommand();
  });

  test('listed as running, but ended by the time it is read: not counted', async () => {
    runningOf(SPEC_A, 'd-ENDED', '9f8e7d6c', { status: 'Succeeded' });
    lambdaAnswers([SPEC_A, SPEC_B]);
    createAnswers([SPEC_A, SPEC_B]);
    const { outcome } = await run(jobEvent());
    expect(outcome).toEqual({ result: 'continue', phase: 'wait', polls: 0 });
  });

  test('ListDeployments denied: fails before anything changes (never assumes no other release runs)', async () => {
    codeDeployMock.on(ListDeploymentsCommand).rejects(accessDenied('codedeploy:ListDeployments'));
    await run(jobEvent());
    expect(failure()).toEqual({
      type: 'PermissionError',
      message: 'could not check that no other release is running: codedeploy:ListDeployments failed for deployment group orders-api-GetSleepSecs-deployment: '
        + 'AccessDeniedException: User: arn:aws:sts::123456789012:assumed-role/serverless-release/fn is not authorized to perform: codedeploy:ListDeployments; '
        + 'no alias was changed: production still serves the previous versions',
    });
    expect(lambdaMock).not.toHaveReceivedAnyCommand();
    expect(cloudWatchMock).not.toHaveReceivedAnyCommand();
  });

  test('retried first invocation (same job id) while its deployments run: adopts them, ships no code and creates no deployment twice', async () => {
    runningOf(SPEC_A, deploymentIdOf(A), RELEASE_ID, {
      createTime: new Date(T0 - 60_000),
      overrideAlarmConfiguration: { alarms: [{ name: ALARM_1 }] },
    });
    runningOf(SPEC_B, deploymentIdOf(B), RELEASE_ID, { createTime: new Date(T0 - 59_000) });
    lambdaAnswers([{ ...SPEC_A, weights: { 8: 0.1 } }, SPEC_B]);
    const { outcome } = await run(jobEvent());
    expect(outcome).toEqual({ result: 'continue', phase: 'wait', polls: 0 });
    expect(lambdaMock).not.toHaveReceivedCommand(UpdateFunctionCodeCommand);
    expect(lambdaMock).not.toHaveReceivedCommand(PublishVersionCommand);
    expect(codeDeployMock).not.toHaveReceivedCommand(CreateDeploymentCommand);
    // The alarm is written again with the same name (PutMetricAlarm overwrites), never deleted.
    expect(cloudWatchMock).toHaveReceivedCommandWith(PutMetricAlarmCommand, { AlarmName: ALARM_1 });
    expect(cloudWatchMock).not.toHaveReceivedCommand(DeleteAlarmsCommand);
    // The wall clock counts from the first deployment of the release, not from this late invocation.
    expect(continuation()).toEqual({ phase: 'wait', startedAt: T0 - 60_000, polls: 0, releaseId: RELEASE_ID, alarms: 1, deployments: [deploymentIdOf(A), deploymentIdOf(B)] });
    expect(logLines()).toContainEqual(expect.objectContaining({ message: expect.stringMatching(/^deployments of this release are already running/), adopted: [deploymentIdOf(A), deploymentIdOf(B)] }));
  });

  test('retried first invocation that died after creating some deployments: adopts those and creates the rest', async () => {
    runningOf(SPEC_A, deploymentIdOf(A), RELEASE_ID);
    lambdaAnswers([{ ...SPEC_A, weights: { 8: 0.1 } }, SPEC_B]);
    createAnswers([SPEC_B]);
    await run(jobEvent());
    expect(lambdaMock).not.toHaveReceivedCommandWith(UpdateFunctionCodeCommand, { FunctionName: A.functionName });
    expect(lambdaMock).toHaveReceivedCommandWith(UpdateFunctionCodeCommand, { FunctionName: B.functionName });
    expect(codeDeployMock).toHaveReceivedCommandTimes(CreateDeploymentCommand, 1);
    expect(codeDeployMock).toHaveReceivedCommandWith(CreateDeploymentCommand, { deploymentGroupName: B.deploymentGroupName });
    expect(continuation()).toMatchObject({ phase: 'wait', deployments: [deploymentIdOf(A), deploymentIdOf(B)] });
  });

  test('duplicate invocations racing: a DeploymentLimitExceeded on this release\'s own deployment (the twin created it) is adopted', async () => {
    lambdaAnswers([SPEC_A, SPEC_B]);
    createAnswers([SPEC_A]);
    codeDeployMock.on(CreateDeploymentCommand, { deploymentGroupName: B.deploymentGroupName }).rejects(
      new DeploymentLimitExceededException({ message: 'The deployment group already has an active deployment', $metadata: { httpStatusCode: 400 } }));
    codeDeployMock.on(ListDeploymentsCommand, { deploymentGroupName: B.deploymentGroupName })
      .resolvesOnce({ deployments: [] })
      .resolves({ deployments: ['d-TWINBBBBB'] });
    codeDeployMock.on(GetDeploymentCommand, { deploymentId: 'd-TWINBBBBB' }).resolves({
      deploymentInfo: { deploymentId: 'd-TWINBBBBB', status: 'InProgress', description: describeDeployment(releaseOf(SPEC_B), RELEASE_ID) },
    });
    const { outcome } = await run(jobEvent());
    expect(outcome).toEqual({ result: 'continue', phase: 'wait', polls: 0 });
    expect(continuation()).toMatchObject({ deployments: [deploymentIdOf(A), 'd-TWINBBBBB'] });
    expect(codeDeployMock).not.toHaveReceivedCommand(StopDeploymentCommand);
    expect(cloudWatchMock).not.toHaveReceivedCommand(DeleteAlarmsCommand);
  });

  test('a duplicate after the job finished: the same code publishes the same versions, nothing to shift, and CodePipeline refuses the late report', async () => {
    lambdaAnswers([{ ...SPEC_A, target: SPEC_A.previous }, { ...SPEC_B, target: SPEC_B.previous }]);
    const late = new CodeDeployServiceException({ name: 'InvalidJobStateException', $fault: 'client', message: 'job is not in progress', $metadata: {} });
    cpMock.on(PutJobSuccessResultCommand).rejects(late);
    await expect(run(jobEvent())).rejects.toBe(late);
    expect(codeDeployMock).not.toHaveReceivedCommand(CreateDeploymentCommand);
    expect(cloudWatchMock).not.toHaveReceivedCommand(PutMetricAlarmCommand);
    expect(lambdaMock).not.toHaveReceivedCommand(UpdateAliasCommand);
  });

  test('a superseded (abandoned) job\'s late invocation touches only its own deployments; CodePipeline refuses its report', async () => {
    // The newer release's deployment d-NEWER is in the same group, but not in this token: never read, stopped or moved.
    deploymentAnswers([{ spec: SPEC_A, status: 'Failed' }]);
    aliasAnswers([{ spec: SPEC_A, version: '7' }]);
    const late = new CodeDeployServiceException({ name: 'InvalidJobStateException', $fault: 'client', message: 'job is not in progress', $metadata: {} });
    cpMock.on(PutJobFailureResultCommand).rejects(late);
    await expect(run(jobEvent({ continuationToken: waitToken([SPEC_A]) }))).rejects.toBe(late);
    expect(codeDeployMock).not.toHaveReceivedCommandWith(GetDeploymentCommand, { deploymentId: 'd-NEWER' });
    expect(codeDeployMock).not.toHaveReceivedCommand(StopDeploymentCommand);
    expect(codeDeployMock).not.toHaveReceivedCommand(ListDeploymentsCommand);
    expect(cloudWatchMock).toHaveReceivedCommandWith(DeleteAlarmsCommand, { AlarmNames: [ALARM_1] }); // its own alarm only
    expect(JSON.parse(String(errorSpy.mock.calls[0][0]))).toMatchObject({ message: 'could not report the job result to CodePipeline', decision: 'failed' });
  });

  test('a code update in progress (a cdk deploy changing the configuration, or a twin invocation) is awaited, then the code is updated', async () => {
    lambdaAnswers([SPEC_A, SPEC_B]);
    createAnswers([SPEC_A, SPEC_B]);
    const conflict = new LambdaServiceException({ name: 'ResourceConflictException', $fault: 'client', message: 'An update is in progress', $metadata: { httpStatusCode: 409 } });
    lambdaMock.on(UpdateFunctionCodeCommand, { FunctionName: A.functionName })
      .rejectsOnce(conflict)
      .resolves({ FunctionName: A.functionName, CodeSha256: shaOf(A) });
    const { outcome } = await run(jobEvent());
    expect(outcome).toEqual({ result: 'continue', phase: 'wait', polls: 0 });
    expect(lambdaMock).toHaveReceivedCommandTimes(UpdateFunctionCodeCommand, 3);
    expect(lambdaMock).toHaveReceivedCommandWith(PublishVersionCommand, { FunctionName: A.functionName, CodeSha256: shaOf(A) });
  });
});

describe('the stale-alarm sweep only deletes alarms whose deployments have all finished', () => {
  test('releaseOfAlarm: the release id in <prefix>-<release id>-<n>, nothing for another shape', () => {
    expect(releaseOfAlarm(ALARM_PREFIX, ALARM_1)).toBe(RELEASE_ID);
    expect(releaseOfAlarm(ALARM_PREFIX, `${ALARM_PREFIX}-exec-1234-10`)).toBe('exec-1234');
    expect(releaseOfAlarm(ALARM_PREFIX, `${ALARM_PREFIX}-${RELEASE_ID}`)).toBeUndefined();
    expect(releaseOfAlarm(ALARM_PREFIX, `${ALARM_PREFIX}-${RELEASE_ID}-0`)).toBeUndefined();
    expect(releaseOfAlarm(ALARM_PREFIX, `${ALARM_PREFIX}--1`)).toBeUndefined();
    expect(releaseOfAlarm(ALARM_PREFIX, `other-${RELEASE_ID}-1`)).toBeUndefined();
    expect(releaseOfAlarm(ALARM_PREFIX, `${ALARM_PREFIX}x${RELEASE_ID}-1`)).toBeUndefined();
  });

  test('adopted deployments of this release keep their alarms; alarms of finished releases go; alarms of another shape stay', async () => {
    codeDeployMock.on(ListDeploymentsCommand, { deploymentGroupName: A.deploymentGroupName }).resolves({ deployments: [deploymentIdOf(A)] });
    codeDeployMock.on(GetDeploymentCommand, { deploymentId: deploymentIdOf(A) }).resolves({
      deploymentInfo: { deploymentId: deploymentIdOf(A), status: 'InProgress', description: describeDeployment(releaseOf(SPEC_A), RELEASE_ID) },
    });
    const finished = alarmNameFor(ALARM_PREFIX, '0a1b2c3d', 1);
    cloudWatchMock.on(DescribeAlarmsCommand).resolves({
      MetricAlarms: [{ AlarmName: ALARM_1 }, { AlarmName: finished }, { AlarmName: `${ALARM_PREFIX}-manual` }, {}],
    });
    lambdaAnswers([{ ...SPEC_A, weights: { 8: 0.1 } }, SPEC_B]);
    createAnswers([SPEC_B]);
    await run(jobEvent());
    expect(cloudWatchMock.commandCalls(DeleteAlarmsCommand).map((c) => c.args[0].input)).toEqual([{ AlarmNames: [finished] }]);
    expect(logLines()).toContainEqual(expect.objectContaining({ message: 'kept the alarms of releases with running deployments', alarms: [ALARM_1] }));
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
    const startedAt = Date.now();
    const token = (polls: number) => JSON.stringify({ phase: 'wait', startedAt, polls, releaseId: RELEASE_ID, alarms: 1, deployments: [deploymentIdOf(A)] });
    const done = handler(jobEvent({ continuationToken: token(0) }), { getRemainingTimeInMillis: () => 60_000 });
    await jest.advanceTimersByTimeAsync(POLL_DELAY_MS - 1);
    expect(cpMock).not.toHaveReceivedAnyCommand();
    await jest.advanceTimersByTimeAsync(1);
    await expect(done).resolves.toEqual({ result: 'continue', phase: 'wait', polls: 1 });
    expect(cpMock).toHaveReceivedCommandWith(PutJobSuccessResultCommand, { jobId: JOB_ID, continuationToken: token(1) });
  });
});

// ---------------------------------------------------------------------------------------------------------------
// Edges the mutation run found unpinned
// ---------------------------------------------------------------------------------------------------------------

describe('inputs: edges', () => {
  test.each([
    ['live!', 'an invalid last character'],
    ['!live', 'an invalid first character'],
  ])('alias name %j is refused (%s)', (aliasName) => {
    expect(parseFunctions(JSON.stringify([{ ...A, aliasName }]))).toEqual({ ok: false, error: `FUNCTIONS[0].aliasName is not a Lambda alias name, got "${aliasName}"` });
  });

  test('an alias name that starts with digits but is not only digits is accepted', () => {
    expect(parseFunctions(JSON.stringify([{ ...A, aliasName: '1live' }]))).toMatchObject({ ok: true });
  });

  test('blank FUNCTIONS is "not set"; values are trimmed; an alarm prefix of exactly 200 characters is accepted', () => {
    expect(parseFunctions('   ')).toEqual({ ok: false, error: 'FUNCTIONS is not set: expected a JSON array of functions' });
    expect(parseFunctions(JSON.stringify([{ ...A, functionName: ' ' }]))).toMatchObject({ ok: false, error: 'FUNCTIONS[0].functionName must be a non-empty string without whitespace, got " "' });
    const config = readConfig({
      ...envFor([A]),
      CODEDEPLOY_APPLICATION: ` ${APPLICATION} `,
      ARTIFACT_BUCKET: ` ${BUCKET}\n`,
      PRE_TRAFFIC_HOOK: ` ${HOOK} `,
      ALARM_PREFIX: ` ${'p'.repeat(200)} `,
      ALARM_TOPIC_ARN: ` ${TOPIC} `,
      MAX_WAIT_MINUTES: ' 90 ',
    });
    expect(config).toEqual({
      ok: true,
      value: {
        functions: [A], applicationName: APPLICATION, artifactBucket: BUCKET, preTrafficHook: HOOK, alarmPrefix: 'p'.repeat(200), alarmTopicArn: TOPIC, maxWaitMs: 90 * 60_000,
      },
    });
    expect(readConfig({ ...envFor([A]), ALARM_TOPIC_ARN: '   ' })).toMatchObject({ ok: true, value: { alarmPrefix: ALARM_PREFIX } });
    expect(readConfig({ ...envFor([A]), ALARM_TOPIC_ARN: '   ' })).not.toHaveProperty('value.alarmTopicArn');
  });

  test('UserParameters: null is missing, a blank prefix is empty, a . segment is refused', () => {
    expect(parseUserParameters(null)).toEqual({ ok: false, error: 'UserParameters is missing: expected {"prefix":"<S3 key prefix>"}' });
    expect(parseUserParameters('{"prefix":"   "}')).toEqual({ ok: false, error: 'UserParameters.prefix must be a non-empty string, got "   "' });
    expect(parseUserParameters('{"prefix":"releases/./x"}')).toMatchObject({ ok: false, error: expect.stringMatching(/got "releases\/\.\/x"$/) });
  });

  test('releaseIdFor keeps letters, digits and - of the prefix\'s last segment; chunk by 1', () => {
    expect(releaseIdFor('', 'releases/exec_12.ab')).toBe('exec12ab');
    expect(chunk([1, 2], 1)).toEqual([[1], [2]]);
  });

  test('deployment descriptions with an empty field name no release', () => {
    const fields = { functionId: A.id, functionName: A.functionName, aliasName: 'live', targetVersion: '8', previousVersion: '7' };
    expect(parseDeploymentDescription(JSON.stringify({ ...fields, functionId: '' }))).toBeUndefined();
    expect(parseDeploymentDescription(JSON.stringify({ ...fields, previousVersion: 7 }))).toBeUndefined();
    expect(parseDeploymentDescription('"just a string"')).toBeUndefined();
  });

  test('continuation tokens: null starts; a 64-character release id, 0 alarms and 0 polls are valid; a list with one empty id is not', () => {
    expect(parseContinuationToken(null)).toEqual({ kind: 'start' });
    const base = { phase: 'wait', startedAt: T0, polls: 0, releaseId: 'r'.repeat(64), alarms: 0, deployments: ['d-1'] };
    expect(parseContinuationToken(JSON.stringify(base), T0)).toEqual({ kind: 'follow', state: base });
    expect(parseContinuationToken(JSON.stringify({ ...base, deployments: ['d-1', ''] }), T0)).toMatchObject({ kind: 'invalid' });
    expect(parseContinuationToken(JSON.stringify({ ...base, phase: 'rollback' }), T0)).toMatchObject({ kind: 'invalid' });
    expect(parseContinuationToken('[{"phase":"wait"}]', T0)).toMatchObject({ kind: 'invalid', error: 'not a release state: "[{\\"phase\\":\\"wait\\"}]"' });
  });

  test('releaseOfAlarm: a trailing character after the number is another shape', () => {
    expect(releaseOfAlarm(ALARM_PREFIX, `${ALARM_1}x`)).toBeUndefined();
  });
});

describe('first invocation: edges', () => {
  test.each([
    ['CreateDeployment returns no deployment id', () => codeDeployMock.on(CreateDeploymentCommand).resolves({}),
      'codedeploy:CreateDeployment returned no deployment id for function GetSleepSecs (orders-api-GetSleepSecs)'],
    ['GetAlias names no version', () => lambdaMock.on(GetAliasCommand, { FunctionName: A.functionName }).resolves({}),
      'lambda:GetAlias named no version for alias live of function GetSleepSecs (orders-api-GetSleepSecs)'],
    ['UpdateFunctionCode returns no CodeSha256', () => lambdaMock.on(UpdateFunctionCodeCommand, { FunctionName: A.functionName }).resolves({}),
      'lambda:UpdateFunctionCode returned no CodeSha256 for function GetSleepSecs (orders-api-GetSleepSecs)'],
    ['PublishVersion returns no version', () => lambdaMock.on(PublishVersionCommand, { FunctionName: A.functionName }).resolves({}),
      'lambda:PublishVersion returned no version for function GetSleepSecs (orders-api-GetSleepSecs)'],
  ])('%s: the job fails, saying so, before any alias moves', async (_label, answer, reason) => {
    lambdaAnswers([SPEC_A, SPEC_B]);
    createAnswers([SPEC_A, SPEC_B]);
    answer();
    await run(jobEvent());
    expect(failure().message).toMatch(new RegExp(`^${reason.replace(/[()]/g, '\\$&')}; `));
    expect(failure().message).toMatch(/no alias was changed: production still serves the previous versions$/);
    expect(lambdaMock).not.toHaveReceivedCommand(UpdateAliasCommand);
  });

  test('a failed code update without a reason, and an update that never reports a status', async () => {
    process.env.FUNCTIONS = JSON.stringify([A]);
    lambdaAnswers([SPEC_A]);
    lambdaMock.on(GetFunctionConfigurationCommand, { FunctionName: A.functionName }).resolves({ LastUpdateStatus: 'Failed' });
    await run(jobEvent());
    expect(failure().message).toMatch(/^the code update of function GetSleepSecs \(orders-api-GetSleepSecs\) failed: Lambda gave no reason; /);
    cpMock.resetHistory();
    lambdaMock.on(GetFunctionConfigurationCommand, { FunctionName: A.functionName }).resolves({});
    // A deadline far away: the 60 s limit of one update applies, not the deadline.
    await run(jobEvent(), { deadline: T0 + 10 * 60_000 });
    expect(failure().message).toMatch(/did not finish within 60 s \(LastUpdateStatus not reported\): retry the stage; /);
  });

  test('at most CONCURRENCY calls in flight, and none started after a failure', async () => {
    const specs = Array.from({ length: 7 }, (_, i): FnSpec => ({ fn: fnOf(`Fn${i}`), previous: '1', target: '2' }));
    process.env.FUNCTIONS = JSON.stringify(specs.map((s) => s.fn));
    lambdaAnswers(specs);
    lambdaMock.on(GetAliasCommand, { FunctionName: specs[0].fn.functionName }).rejects(accessDenied('lambda:GetAlias'));
    await run(jobEvent());
    expect(lambdaMock).toHaveReceivedCommandTimes(GetAliasCommand, 5);
    expect(failure().type).toBe('PermissionError');
  });

  test('ListDeployments without a deployments list, DescribeAlarms without alarms: nothing running, nothing swept', async () => {
    codeDeployMock.on(ListDeploymentsCommand).resolves({});
    cloudWatchMock.on(DescribeAlarmsCommand).resolves({});
    lambdaAnswers([SPEC_A, SPEC_B]);
    createAnswers([SPEC_A, SPEC_B]);
    await run(jobEvent());
    expect(codeDeployMock).not.toHaveReceivedCommand(GetDeploymentCommand);
    expect(cloudWatchMock).not.toHaveReceivedCommand(DeleteAlarmsCommand);
    expect(continuation()).toMatchObject({ phase: 'wait' });
  });

  test('a ListDeployments token that never ends: at most LIST_PAGE_LIMIT pages per group', async () => {
    process.env.FUNCTIONS = JSON.stringify([A]);
    codeDeployMock.on(ListDeploymentsCommand).resolves({ deployments: [], nextToken: 'again' });
    lambdaAnswers([SPEC_A]);
    createAnswers([SPEC_A]);
    await run(jobEvent());
    expect(codeDeployMock).toHaveReceivedCommandTimes(ListDeploymentsCommand, 10);
  });

  test('PutMetricAlarm fails in a retried invocation with adopted deployments: they keep their alarms and are rolled back', async () => {
    codeDeployMock.on(ListDeploymentsCommand, { deploymentGroupName: A.deploymentGroupName }).resolves({ deployments: [deploymentIdOf(A)] });
    deploymentAnswers([{ spec: SPEC_A, status: 'InProgress' }]);
    lambdaAnswers([{ ...SPEC_A, weights: { 8: 0.1 } }, SPEC_B]);
    cloudWatchMock.on(PutMetricAlarmCommand).rejects(cloudWatchAccessDenied('cloudwatch:PutMetricAlarm'));
    const { outcome } = await run(jobEvent());
    expect(outcome).toEqual({ result: 'continue', phase: 'rollback', polls: 1 });
    expect(cloudWatchMock).not.toHaveReceivedCommand(DeleteAlarmsCommand);
    expect(codeDeployMock).toHaveReceivedCommandWith(StopDeploymentCommand, { deploymentId: deploymentIdOf(A) });
    expect(codeDeployMock).not.toHaveReceivedCommand(CreateDeploymentCommand);
    expect(continuation()).toMatchObject({ deployments: [deploymentIdOf(A)], failureType: 'PermissionError', alarms: 1 });
  });

  test.each([
    ['another release', '9f8e7d6c', '13'],
    ['this release with another target version', RELEASE_ID, '99'],
  ])('DeploymentLimitExceeded by %s\'s deployment is not adopted: the created ones are rolled back', async (_label, releaseId, target) => {
    lambdaAnswers([SPEC_A, SPEC_B]);
    createAnswers([SPEC_A]);
    deploymentAnswers([{ spec: SPEC_A, status: 'InProgress' }]);
    codeDeployMock.on(CreateDeploymentCommand, { deploymentGroupName: B.deploymentGroupName }).rejects(
      new DeploymentLimitExceededException({ message: 'active deployment', $metadata: {} }));
    codeDeployMock.on(ListDeploymentsCommand, { deploymentGroupName: B.deploymentGroupName })
      .resolvesOnce({ deployments: [] })
      .resolves({ deployments: ['d-RUNNINGB'] });
    codeDeployMock.on(GetDeploymentCommand, { deploymentId: 'd-RUNNINGB' }).resolves({
      deploymentInfo: { deploymentId: 'd-RUNNINGB', status: 'InProgress', description: describeDeployment({ ...releaseOf(SPEC_B), targetVersion: target }, releaseId) },
    });
    await run(jobEvent());
    expect(continuation()).toMatchObject({ phase: 'rollback', deployments: [deploymentIdOf(A)] });
    expect(codeDeployMock).not.toHaveReceivedCommandWith(StopDeploymentCommand, { deploymentId: 'd-RUNNINGB' });
  });

  test('DeploymentLimitExceeded, and the group cannot be listed: the original error is reported', async () => {
    lambdaAnswers([SPEC_A, SPEC_B]);
    codeDeployMock.on(CreateDeploymentCommand).rejects(new DeploymentLimitExceededException({ message: 'active deployment', $metadata: {} }));
    codeDeployMock.on(ListDeploymentsCommand).resolvesOnce({ deployments: [] }).resolvesOnce({ deployments: [] })
      .rejects(accessDenied('codedeploy:ListDeployments'));
    await run(jobEvent());
    expect(failure().message).toMatch(/^codedeploy:CreateDeployment failed for function GetSleepSecs \(orders-api-GetSleepSecs\): DeploymentLimitExceededException: active deployment; /);
  });

  test('an adopted deployment without createTime: the release counts from now', async () => {
    codeDeployMock.on(ListDeploymentsCommand, { deploymentGroupName: A.deploymentGroupName }).resolves({ deployments: [deploymentIdOf(A)] });
    deploymentAnswers([{ spec: SPEC_A, status: 'InProgress' }]);
    lambdaAnswers([SPEC_A, SPEC_B]);
    createAnswers([SPEC_B]);
    await run(jobEvent());
    expect(continuation()).toMatchObject({ startedAt: T0, deployments: [deploymentIdOf(A), deploymentIdOf(B)] });
    expect(logLines()).toContainEqual(expect.objectContaining({
      message: 'deployments created: following them',
      deployments: [
        { id: A.id, deploymentId: deploymentIdOf(A), from: '7', to: '8', adopted: true },
        { id: B.id, deploymentId: deploymentIdOf(B), from: '12', to: '13' },
      ],
    }));
  });
});

describe('following and rolling back: edges', () => {
  test('all Succeeded, one without a description: its version is unknown in the output variable', async () => {
    deploymentAnswers([{ spec: SPEC_A, status: 'Succeeded' }, { spec: SPEC_B, status: 'Succeeded', info: { description: undefined } }]);
    const { outcome } = await run(jobEvent({ continuationToken: waitToken([SPEC_A, SPEC_B]) }));
    expect(outcome).toEqual({ result: 'released', versions: `GetSleepSecs=8,${deploymentIdOf(B)}=?` });
  });

  test('a one-minute limit says "1 minute"', async () => {
    process.env.MAX_WAIT_MINUTES = '1';
    deploymentAnswers([{ spec: SPEC_A, status: 'InProgress' }]);
    await run(jobEvent({ continuationToken: waitToken([SPEC_A], 4, 1, 60_000) }));
    expect(continuation()).toMatchObject({ cause: expect.stringMatching(/^the release did not finish in time: still not finished after 1 minute \(the limit is 1 minute\): /) });
  });

  test('two GetDeployment errors, one denied: a permission error; another kind only: a job failure', async () => {
    const missing = new CodeDeployServiceException({ name: 'DeploymentDoesNotExistException', $fault: 'client', message: 'gone', $metadata: {} });
    codeDeployMock.on(GetDeploymentCommand, { deploymentId: deploymentIdOf(A) }).rejects(missing);
    codeDeployMock.on(GetDeploymentCommand, { deploymentId: deploymentIdOf(B) }).rejects(accessDenied('codedeploy:GetDeployment'));
    await run(jobEvent({ continuationToken: waitToken([SPEC_A, SPEC_B]) }));
    expect(failure().type).toBe('PermissionError');
    cpMock.resetHistory();
    await run(jobEvent({ continuationToken: waitToken([SPEC_A]) }));
    expect(failure()).toEqual({
      type: 'JobFailed',
      message: `release ${RELEASE_ID} failed: codedeploy:GetDeployment failed for deployment ${deploymentIdOf(A)}: DeploymentDoesNotExistException: gone; `
        + `the rollback is NOT complete: production runs MIXED versions; NOT back on the previous version: ${deploymentIdOf(A)}: could not be read: `
        + `codedeploy:GetDeployment failed for deployment ${deploymentIdOf(A)}: DeploymentDoesNotExistException: gone; check by hand; deleted the release alarms`,
    });
  });

  test('AlreadyCompleted, and the deployment cannot be read again: still pending, checked again later', async () => {
    process.env.FUNCTIONS = JSON.stringify([A]);
    const aId = deploymentIdOf(A);
    codeDeployMock.on(GetDeploymentCommand, { deploymentId: aId })
      .resolvesOnce({ deploymentInfo: { deploymentId: aId, status: 'InProgress', description: describeDeployment(releaseOf(SPEC_A), RELEASE_ID) } })
      .rejects(codeDeployThrottled());
    codeDeployMock.on(StopDeploymentCommand).rejects(new CodeDeployServiceException({
      name: 'DeploymentAlreadyCompletedException', $fault: 'client', message: 'completed', $metadata: {},
    }));
    await run(jobEvent({ continuationToken: rollbackToken([SPEC_A]) }));
    expect(continuation()).toMatchObject({ phase: 'rollback' });
    expect(logLines()).toContainEqual(expect.objectContaining({
      pending: [`deployment ${aId} of function GetSleepSecs (orders-api-GetSleepSecs) ended before it could be stopped: to be checked again`],
    }));
    expect(lambdaMock).not.toHaveReceivedAnyCommand();
  });

  test('CodeDeploy\'s rollback deployment cannot be read (throttled): pending; (denied): the alias decides', async () => {
    process.env.FUNCTIONS = JSON.stringify([A]);
    deploymentAnswers([{ spec: SPEC_A, status: 'Stopped', info: { rollbackInfo: { rollbackDeploymentId: 'd-RBA' } } }]);
    codeDeployMock.on(GetDeploymentCommand, { deploymentId: 'd-RBA' }).rejects(codeDeployThrottled());
    await run(jobEvent({ continuationToken: rollbackToken([SPEC_A]) }));
    expect(logLines()).toContainEqual(expect.objectContaining({
      pending: ['CodeDeploy\'s rollback d-RBA could not be read: codedeploy:GetDeployment failed for deployment d-RBA: ThrottlingException: Rate exceeded'],
    }));
    expect(lambdaMock).not.toHaveReceivedAnyCommand();
    cpMock.resetHistory();
    codeDeployMock.on(GetDeploymentCommand, { deploymentId: 'd-RBA' }).rejects(accessDenied('codedeploy:GetDeployment'));
    aliasAnswers([{ spec: SPEC_A, version: '7' }]);
    await run(jobEvent({ continuationToken: rollbackToken([SPEC_A]) }));
    expect(failure().message).toMatch(/rolled back: every function serves its previous version again \(verified\): GetSleepSecs=7; /);
  });

  test('the alias of a succeeded deployment cannot be read: throttled is pending, denied is named', async () => {
    process.env.FUNCTIONS = JSON.stringify([A]);
    deploymentAnswers([{ spec: SPEC_A, status: 'Succeeded' }]);
    lambdaMock.on(GetAliasCommand).rejects(lambdaThrottled());
    await run(jobEvent({ continuationToken: rollbackToken([SPEC_A]) }));
    expect(continuation()).toMatchObject({ phase: 'rollback' });
    cpMock.resetHistory();
    lambdaMock.on(GetAliasCommand).rejects(accessDenied('lambda:GetAlias'));
    await run(jobEvent({ continuationToken: rollbackToken([SPEC_A], { cause: 'alarm' }) }));
    expectFacts(failure().message, [RELEASE_ID, 'failed', 'NOT', 'MIXED', 'NOT', 'GetSleepSecs', '7', '8', 'lambda:GetAlias', 'failed', 'GetSleepSecs', 'orders-api', 'GetSleepSecs', 'AccessDeniedException', '123456789012:', 'assumed-role', '/serverless-release/fn', 'lambda:GetAlias', 'check by hand', 'deleted the release alarms']);
  });

  test('a throttled UpdateAlias is tried again; the end of a rollback whose alarms cannot be deleted says so', async () => {
    process.env.FUNCTIONS = JSON.stringify([A]);
    deploymentAnswers([{ spec: SPEC_A, status: 'Succeeded' }]);
    aliasAnswers([{ spec: SPEC_A, version: '8' }]);
    lambdaMock.on(UpdateAliasCommand).rejects(lambdaThrottled());
    await run(jobEvent({ continuationToken: rollbackToken([SPEC_A]) }));
    expect(continuation()).toMatchObject({ phase: 'rollback' });
    cpMock.resetHistory();
    lambdaMock.on(UpdateAliasCommand).resolves({ FunctionVersion: '7' });
    cloudWatchMock.on(DeleteAlarmsCommand).rejects(cloudWatchAccessDenied('cloudwatch:DeleteAlarms'));
    await run(jobEvent({ continuationToken: rollbackToken([SPEC_A], { cause: 'alarm' }) }));
    expectFacts(failure().message, [RELEASE_ID, 'failed', 'rolled back', 'verified', 'GetSleepSecs=7', 'NOT', 'check by hand', 'cloudwatch:DeleteAlarms', 'failed', ALARM_1, 'AccessDenied', '123456789012:', 'assumed-role', '/serverless-release/fn', 'cloudwatch:DeleteAlarms']);
  });

  test('time up with only unreadable (not running) deployments left: the alarms are deleted', async () => {
    process.env.FUNCTIONS = JSON.stringify([A]);
    codeDeployMock.on(GetDeploymentCommand).rejects(codeDeployThrottled());
    await run(jobEvent({ continuationToken: rollbackToken([SPEC_A], { rollbackElapsedMs: ROLLBACK_LIMIT_MS, cause: 'alarm' }) }));
    expect(failure().message).toMatch(/^release 3f2a9c1e failed: alarm; the rollback did NOT finish within 30 minutes: production may run MIXED versions; NOT back on/);
    expect(failure().message).not.toContain('; back on the previous version');
    expect(failure().message).toMatch(/; deleted the release alarms$/);
    expect(cloudWatchMock).toHaveReceivedCommandWith(DeleteAlarmsCommand, { AlarmNames: [ALARM_1] });
  });

  test('the pause is cut to the Lambda deadline minus the reporting margin, on the real clock', async () => {
    deploymentAnswers([{ spec: SPEC_A, status: 'InProgress' }]);
    const { sleeps } = await run(jobEvent({ continuationToken: waitToken([SPEC_A]) }), { deadline: T0 + 12_000 });
    expect(sleeps).toEqual([12_000 - REPORTING_MARGIN_MS]);
    const late = await run(jobEvent({ continuationToken: waitToken([SPEC_A]) }), { deadline: T0 + 1_000 });
    expect(late.sleeps).toEqual([0]);
  });

  test('the Lambda entry point passes the deadline from the context, and none without one (fake timers)', async () => {
    deploymentAnswers([{ spec: SPEC_A, status: 'InProgress' }]);
    jest.useFakeTimers();
    const token = JSON.stringify({ phase: 'wait', startedAt: Date.now(), polls: 0, releaseId: RELEASE_ID, alarms: 1, deployments: [deploymentIdOf(A)] });
    const short = handler(jobEvent({ continuationToken: token }), { getRemainingTimeInMillis: () => 8_000 });
    await jest.advanceTimersByTimeAsync(2_999);
    expect(cpMock).not.toHaveReceivedAnyCommand();
    await jest.advanceTimersByTimeAsync(1);
    await expect(short).resolves.toMatchObject({ result: 'continue' });
    cpMock.resetHistory();
    const unbounded = handler(jobEvent({ continuationToken: token }));
    await jest.advanceTimersByTimeAsync(POLL_DELAY_MS - 1);
    expect(cpMock).not.toHaveReceivedAnyCommand();
    await jest.advanceTimersByTimeAsync(1);
    await expect(unbounded).resolves.toMatchObject({ result: 'continue' });
  });
});

// ---------------------------------------------------------------------------------------------------------------
// Traffic step events (ADR 0010)
// ---------------------------------------------------------------------------------------------------------------

describe('traffic step events', () => {
  const EXECUTION = '0f1e2d3c-4b5a-6978-8a9b-abcdefabcdef';
  const progressParameters = JSON.stringify({ prefix: PREFIX, pipeline: 'orders-pipeline', executionId: EXECUTION });
  let eventsMock: AwsClientStub<EventBridgeClient>;
  beforeEach(() => {
    process.env = { ...savedEnv, ...envFor([A, B], { TRAFFIC_STEPS: '10,100' }) };
    eventsMock = mockClient(EventBridgeClient);
    eventsMock.on(PutEventsCommand).resolves({ FailedEntryCount: 0, Entries: [{ EventId: 'e-1' }] });
  });
  afterEach(() => eventsMock.restore());
  const details = () => eventsMock.commandCalls(PutEventsCommand).map((c) => JSON.parse(c.args[0].input.Entries![0].Detail!));
  const tokenOf = (): Record<string, unknown> => {
    const call = cpMock.commandCalls(PutJobSuccessResultCommand).at(-1)!;
    return JSON.parse(call.args[0].input.continuationToken!);
  };

  test('the canary step: the first function\'s alias sends 10 % to the new version: step 1 of 2, remembered in the token', async () => {
    deploymentAnswers([{ spec: SPEC_A, status: 'InProgress' }, { spec: SPEC_B, status: 'InProgress' }]);
    aliasAnswers([{ spec: SPEC_A, version: '7', weights: { 8: 0.1 } }]);
    const { outcome } = await run(jobEvent({ userParameters: progressParameters, continuationToken: waitToken([SPEC_A, SPEC_B], 2) }));
    expect(outcome).toMatchObject({ result: 'continue', phase: 'wait', polls: 3 });
    expect(details()).toEqual([{
      pipeline: 'orders-pipeline',
      executionId: EXECUTION,
      engine: 'lambda-alias',
      step: 1,
      steps: 2,
      percent: 10,
      shiftedAt: new Date(T0).toISOString(),
    }]);
    expect(eventsMock.commandCalls(PutEventsCommand)[0].args[0].input.Entries![0]).toMatchObject({
      Source: 'cdk-delivery-pipelines.release', DetailType: 'Release Traffic Shifted',
    });
    expect(tokenOf().reported).toBe(1);
  });

  test('a step already reported is not sent again at the next poll; every deployment succeeded: the 100 % step, before the job succeeds', async () => {
    deploymentAnswers([{ spec: SPEC_A, status: 'InProgress' }, { spec: SPEC_B, status: 'InProgress' }]);
    aliasAnswers([{ spec: SPEC_A, version: '7', weights: { 8: 0.1 } }]);
    const reported = JSON.stringify({ ...JSON.parse(waitToken([SPEC_A, SPEC_B], 2)), reported: 1 });
    await run(jobEvent({ userParameters: progressParameters, continuationToken: reported }));
    expect(eventsMock).not.toHaveReceivedCommand(PutEventsCommand);
    expect(tokenOf().reported).toBe(1);

    deploymentAnswers([{ spec: SPEC_A, status: 'Succeeded' }, { spec: SPEC_B, status: 'Succeeded' }]);
    const { outcome } = await run(jobEvent({ userParameters: progressParameters, continuationToken: reported }));
    expect(outcome).toMatchObject({ result: 'released' });
    expect(details()).toEqual([expect.objectContaining({ step: 2, steps: 2, percent: 100 })]);
  });

  test('PutEvents failing: the release reports its success exactly as without events', async () => {
    eventsMock.on(PutEventsCommand).rejects(Object.assign(new Error('User is not authorized'), { name: 'AccessDeniedException' }));
    deploymentAnswers([{ spec: SPEC_A, status: 'Succeeded' }, { spec: SPEC_B, status: 'Succeeded' }]);
    const { outcome } = await run(jobEvent({ userParameters: progressParameters, continuationToken: waitToken([SPEC_A, SPEC_B], 5) }));
    expect(outcome).toEqual({ result: 'released', versions: 'GetSleepSecs=8,PostItems=13' });
    expect(eventsMock).toHaveReceivedCommandTimes(PutEventsCommand, 1);
    expect(cpMock).toHaveReceivedCommandWith(PutJobSuccessResultCommand, { jobId: JOB_ID, outputVariables: { versions: 'GetSleepSecs=8,PostItems=13' } });
  });

  test('nothing to shift (production already serves the code): all traffic at once, step 1 of 1, then the success', async () => {
    lambdaAnswers([{ ...SPEC_A, target: SPEC_A.previous }, { ...SPEC_B, target: SPEC_B.previous }]);
    const { outcome } = await run(jobEvent({ userParameters: progressParameters }));
    expect(outcome).toEqual({ result: 'unchanged' });
    expect(details()).toEqual([expect.objectContaining({ step: 1, steps: 1, percent: 100, executionId: EXECUTION })]);
  });

  test('the alias cannot be read: no event, the release goes on waiting', async () => {
    deploymentAnswers([{ spec: SPEC_A, status: 'InProgress' }, { spec: SPEC_B, status: 'InProgress' }]);
    lambdaMock.on(GetAliasCommand).rejects(accessDenied('lambda:GetAlias'));
    const { outcome } = await run(jobEvent({ userParameters: progressParameters, continuationToken: waitToken([SPEC_A, SPEC_B], 2) }));
    expect(outcome).toMatchObject({ result: 'continue', phase: 'wait', polls: 3 });
    expect(eventsMock).not.toHaveReceivedCommand(PutEventsCommand);
  });

  test('no pipeline in UserParameters: no GetAlias, no event (the release as before)', async () => {
    deploymentAnswers([{ spec: SPEC_A, status: 'InProgress' }, { spec: SPEC_B, status: 'InProgress' }]);
    await run(jobEvent({ continuationToken: waitToken([SPEC_A, SPEC_B], 2) }));
    expect(lambdaMock).not.toHaveReceivedCommand(GetAliasCommand);
    expect(eventsMock).not.toHaveReceivedCommand(PutEventsCommand);
  });

  test('TRAFFIC_STEPS unset (an imported configuration): only 100 % is a step, 1 of 1', async () => {
    process.env = { ...savedEnv, ...envFor([A, B]) };
    deploymentAnswers([{ spec: SPEC_A, status: 'InProgress' }, { spec: SPEC_B, status: 'InProgress' }]);
    aliasAnswers([{ spec: SPEC_A, version: '7', weights: { 8: 0.1 } }]);
    await run(jobEvent({ userParameters: progressParameters, continuationToken: waitToken([SPEC_A, SPEC_B], 2) }));
    expect(eventsMock).not.toHaveReceivedCommand(PutEventsCommand);
    aliasAnswers([{ spec: SPEC_A, version: '8' }]);
    await run(jobEvent({ userParameters: progressParameters, continuationToken: waitToken([SPEC_A, SPEC_B], 3) }));
    expect(details()).toEqual([expect.objectContaining({ step: 1, steps: 1, percent: 100 })]);
  });

  test.each([
    ['10,100', [10, 100]],
    ['10,20,30,40,50,60,70,80,90,100', [10, 20, 30, 40, 50, 60, 70, 80, 90, 100]],
    ['100', [100]],
    ['10,5,100', undefined],
    ['10,90', undefined],
    ['a,100', undefined],
  ])('TRAFFIC_STEPS %s', (text, steps) => {
    const config = readConfig(envFor([A], { TRAFFIC_STEPS: text }));
    expect(config.ok).toBe(true);
    expect(config.ok ? config.value.trafficSteps : 'not ok').toEqual(steps);
  });

  test('UserParameters: pipeline and execution id are optional and a malformed one is dropped, never a failure', () => {
    expect(parseUserParameters(progressParameters)).toEqual({ ok: true, value: { prefix: PREFIX, pipeline: 'orders-pipeline', executionId: EXECUTION } });
    expect(parseUserParameters(JSON.stringify({ prefix: PREFIX, pipeline: 'bad name', executionId: 'x' }))).toEqual({ ok: true, value: { prefix: PREFIX } });
  });
});
