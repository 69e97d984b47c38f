import { CodePipelineClient, GetPipelineStateCommand, ListActionExecutionsCommand } from '@aws-sdk/client-codepipeline';
import type { ActionExecutionDetail, GetPipelineStateCommandOutput } from '@aws-sdk/client-codepipeline';
import { DescribeServiceRevisionsCommand, ECSClient, ListServiceDeploymentsCommand } from '@aws-sdk/client-ecs';
import { PublishCommand, SNSClient } from '@aws-sdk/client-sns';
import { GetParameterCommand, SSMClient } from '@aws-sdk/client-ssm';
import { AwsClientStub, mockClient } from 'aws-sdk-client-mock';
import 'aws-sdk-client-mock-jest';
import { expectFacts } from './shared/facts';
import { isRetryable } from '../../src/handlers/shared/retryable';
import type { EcsLifecycleHookEvent, EcsLifecycleHookResponse } from '../../src/handlers/smoke-test.lambda';

// The handler creates its SDK clients when loaded, and on Node < 22 the SDK then emits a NodeVersionSupportWarning,
// which keeps a jest worker from exiting cleanly. The Lambda runtime is nodejs24.x, where the warning does not apply,
// so the tests switch it off before loading the handler.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
const {
  APPROVAL_CALLBACK_DELAY_SECONDS,
  AWS_ERROR_CALLBACK_DELAY_SECONDS,
  AWS_ERROR_MAX_RETRIES,
  CLOCK_SKEW_MS,
  SNS_SUBJECT_LIMIT,
  handler,
  parseReleaseHookConfig,
  readyForReviewMessage,
  releaseHook,
  // eslint-disable-next-line @typescript-eslint/no-require-imports
}: typeof import('../../src/handlers/ecs-release-hook.lambda') = require('../../src/handlers/ecs-release-hook.lambda');
const {
  ECS_CALLBACK_DELAY_SECONDS,
  ECS_INVOCATIONS_KEY,
  ECS_MAX_INVOCATIONS,
  // eslint-disable-next-line @typescript-eslint/no-require-imports
}: typeof import('../../src/handlers/smoke-test.lambda') = require('../../src/handlers/smoke-test.lambda');

// ---------------------------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------------------------

const BASE = 'http://test-listener.example:8080';
const GREEN = 'arn:aws:ecs:us-west-2:123456789012:service-revision/my-cluster/my-service/9313423515462893900';
const BLUE = 'arn:aws:ecs:us-west-2:123456789012:service-revision/my-cluster/my-service/1920498462936580504';
const PLACEHOLDER = 'public.ecr.aws/nginx/nginx:stable';
const NEW_IMAGE = '123456789012.dkr.ecr.us-west-2.amazonaws.com/app@sha256:2222222222222222222222222222222222222222222222222222222222222222';
const PROD_IMAGE = '123456789012.dkr.ecr.us-west-2.amazonaws.com/app@sha256:1111111111111111111111111111111111111111111111111111111111111111';
const PIPELINE = 'release-pipeline';
const STAGE = 'Release';
const ACTION = 'Approve';
const DEPLOY = 'Deploy';
const SERVICE_ARN = 'arn:aws:ecs:us-west-2:123456789012:service/my-cluster/my-service';
/** This release's service deployment (the event's resourceArn), and one a `cdk deploy` started during the release. */
const DEPLOYMENT = 'arn:aws:ecs:us-west-2:123456789012:service-deployment/my-cluster/my-service/EZe5RNVLH6PPzHXINuP28';
const CDK_DEPLOYMENT = 'arn:aws:ecs:us-west-2:123456789012:service-deployment/my-cluster/my-service/CdkCdkCdkCdkCdkCdkCdkCd';
/** The hook's time limit in the tests: 50 minutes. */
const TIME_LIMIT_SECONDS = 3_000;
const PARAMETER = '/app/production-image';
const EXECUTION_ID = 'c5b1a8f0-1111-2222-3333-444455556666';
const TOPIC = 'arn:aws:sns:us-west-2:123456789012:release-notifications';
const TEST_URL = 'http://test-listener.example:8080/';

/** The hook's clock during an invocation (see `invoke`). */
const NOW = '2025-01-01T11:00:00.000Z';
/** When the latest run of the Deploy action started, and when ECS created this release's deployment. */
const DEPLOY_STARTED = new Date('2025-01-01T10:20:00.000Z');
const CREATED = new Date('2025-01-01T10:20:30.000Z');
/** After the last release ended (its last action's lastUpdateTime, APPROVED at the latest). */
const AFTER_RELEASE = new Date('2025-01-01T10:50:00.000Z');
/** When an earlier invocation opened the gate. */
const GATE_OPENED = '2025-01-01T10:30:00.000Z';
/** When the approval action was approved, unless a test says otherwise: after GATE_OPENED, before NOW. */
const APPROVED = new Date('2025-01-01T10:45:00.000Z');
/** `hookDetails` of a later invocation: the smoke test passed and the gate opened earlier. */
const LATER = { smokeTest: 'passed', gateOpenedAt: GATE_OPENED };

/** The payload shape of "Lambda hooks for Amazon ECS service deployments" (Amazon ECS Developer Guide). */
const ecsEvent = (overrides: Partial<EcsLifecycleHookEvent> = {}): EcsLifecycleHookEvent => ({
  executionId: '3a0345ba-b029-404b-890d-7da2a4b266aa',
  lifecycleStage: 'POST_TEST_TRAFFIC_SHIFT',
  resourceArn: DEPLOYMENT,
  executionDetails: {
    serviceArn: SERVICE_ARN,
    targetServiceRevisionArn: GREEN,
    testTrafficWeights: { [GREEN]: 100, [BLUE]: 0 },
    productionTrafficWeights: { [GREEN]: 0, [BLUE]: 100 },
  },
  ...overrides,
});

const context = { getRemainingTimeInMillis: () => 60_000 };

/** DescribeServiceRevisions answers that the green revision runs `image` in the `app` container (next to a sidecar). */
function greenRuns(image: string): void {
  ecsMock.on(DescribeServiceRevisionsCommand).resolves({
    serviceRevisions: [{
      serviceRevisionArn: GREEN,
      containerImages: [
        { containerName: 'log-router', image: 'public.ecr.aws/aws-observability/aws-for-fluent-bit:stable' },
        { containerName: 'app', image, imageDigest: 'sha256:2222' },
      ],
    }],
    failures: [],
  });
}

function pipelineState(stageStatus: string | undefined, stageName = STAGE): GetPipelineStateCommandOutput {
  return {
    $metadata: {},
    pipelineName: PIPELINE,
    stageStates: [
      { stageName: 'Source', latestExecution: { pipelineExecutionId: EXECUTION_ID, status: 'Succeeded' } },
      {
        stageName,
        latestExecution: stageStatus === undefined ? undefined : { pipelineExecutionId: EXECUTION_ID, status: stageStatus as 'InProgress' },
      },
    ],
  };
}

function approval(status: string | undefined, startTime = new Date('2025-01-01T10:00:00Z'), lastUpdateTime: Date | undefined = APPROVED): ActionExecutionDetail {
  return {
    pipelineExecutionId: EXECUTION_ID,
    actionExecutionId: `action-${status}-${startTime.getTime()}`,
    stageName: STAGE,
    actionName: ACTION,
    startTime,
    lastUpdateTime,
    status: status as 'InProgress',
    output: status === 'Failed' ? { executionResult: { externalExecutionSummary: 'not on a Friday' } } : undefined,
    updatedBy: 'arn:aws:iam::123456789012:user/reviewer',
  };
}

const deployAction: ActionExecutionDetail = {
  pipelineExecutionId: EXECUTION_ID, stageName: STAGE, actionName: DEPLOY, status: 'InProgress', startTime: DEPLOY_STARTED, lastUpdateTime: DEPLOY_STARTED,
};

/**
 * The AWS answers of a release in progress without an approval gate: production runs PROD_IMAGE, the release stage
 * runs, its Deploy action started at DEPLOY_STARTED, and the service's only deployment since then is the event's.
 */
function releaseInProgress(): void {
  ssmMock.on(GetParameterCommand).resolves({ Parameter: { Name: PARAMETER, Type: 'String', Value: PROD_IMAGE } });
  cpMock.on(GetPipelineStateCommand).resolves(pipelineState('InProgress'));
  cpMock.on(ListActionExecutionsCommand).resolves({ actionExecutionDetails: [deployAction] });
  deploymentsSinceDeploy([DEPLOYMENT, CREATED]);
}

/** ListServiceDeployments answers these deployments (ARN and creation time). */
function deploymentsSinceDeploy(...deployments: Array<[string, Date]>): void {
  ecsMock.on(ListServiceDeploymentsCommand).resolves({
    serviceDeployments: deployments.map(([serviceDeploymentArn, createdAt]) => ({ serviceDeploymentArn, createdAt, serviceArn: SERVICE_ARN, status: 'IN_PROGRESS' })),
  });
}

/**
 * Sets the approval gate's environment and the AWS answers of a release waiting at the approval, whose action is in
 * `approvalStatus` (`not started`: the action has no execution yet).
 */
function withGate(approvalStatus = 'InProgress', approvedAt: Date | undefined = APPROVED): void {
  process.env.APPROVAL_ACTION_NAME = ACTION;
  releaseInProgress();
  cpMock.on(ListActionExecutionsCommand).resolves({
    actionExecutionDetails: approvalStatus === 'not started' ? [deployAction] : [deployAction, approval(approvalStatus, undefined, approvedAt)],
  });
}

/** The "ready for review" message goes to TOPIC and quotes TEST_URL. */
function withNotification(): void {
  process.env.NOTIFY_TOPIC_ARN = TOPIC;
  process.env.TEST_URL = TEST_URL;
}

function awsError(name: string, httpStatusCode: number, extra: Record<string, unknown> = {}): Error {
  return Object.assign(new Error(`${name} (test)`), { name, $fault: httpStatusCode >= 500 ? 'server' : 'client', $metadata: { httpStatusCode }, ...extra });
}

// ---------------------------------------------------------------------------------------------------------------
// Fake fetch: answers per path, records the URLs asked for
// ---------------------------------------------------------------------------------------------------------------

type Route = { readonly status: number; readonly body: string } | Error | 'hang' | { readonly reject: unknown };
let routes: Record<string, Route> = {};
const requests: string[] = [];

function fakeFetch(input: unknown, init?: { signal?: AbortSignal | null }): Promise<Response> {
  const url = String(input);
  requests.push(url);
  const route = routes[new URL(url).pathname];
  if (route === undefined) return Promise.resolve(response(404, 'not found'));
  if (route === 'hang') {
    return new Promise<Response>((_resolve, reject) => {
      init?.signal?.addEventListener('abort', () => reject(new DOMException('This operation was aborted', 'AbortError')));
    });
  }
  if (route instanceof Error) return Promise.reject(route);
  if ('reject' in route) return Promise.reject(route.reject);
  return Promise.resolve(response(route.status, route.body));
}

function response(status: number, body: string): Response {
  return { status, text: async () => body, headers: { get: () => null } } as unknown as Response;
}

const HEALTHY: Route = { status: 200, body: '{"status":"ok","version":"2.0.0"}' };
const HOME: Route = { status: 200, body: '<h1>Welcome to the sample service</h1>' };

// ---------------------------------------------------------------------------------------------------------------
// Setup
// ---------------------------------------------------------------------------------------------------------------

const savedEnv = { ...process.env };
const HOOK_ENV = [
  'SMOKE_TEST_BASE_URL',
  'SMOKE_TEST_HEALTH_PATH',
  'SMOKE_TEST_EXPECTED_PHRASE',
  'SMOKE_TEST_REQUEST_TIMEOUT_MS',
  'SMOKE_TEST_ATTEMPTS',
  'SMOKE_TEST_RETRY_DELAY_MS',
  'CONTAINER_NAME',
  'PLACEHOLDER_IMAGE',
  'IMAGE_PARAMETER_NAME',
  'PIPELINE_NAME',
  'RELEASE_STAGE_NAME',
  'DEPLOY_ACTION_NAME',
  'HOOK_TIME_LIMIT_SECONDS',
  'APPROVAL_ACTION_NAME',
  'NOTIFY_TOPIC_ARN',
  'TEST_URL',
];

let ecsMock: AwsClientStub<ECSClient>;
let ssmMock: AwsClientStub<SSMClient>;
let cpMock: AwsClientStub<CodePipelineClient>;
let snsMock: AwsClientStub<SNSClient>;
let logSpy: jest.SpyInstance;
let fetchSpy: jest.SpyInstance;

beforeEach(() => {
  process.env = { ...savedEnv };
  for (const name of HOOK_ENV) delete process.env[name];
  process.env.SMOKE_TEST_BASE_URL = BASE;
  process.env.SMOKE_TEST_EXPECTED_PHRASE = 'Welcome';
  process.env.SMOKE_TEST_ATTEMPTS = '2';
  process.env.SMOKE_TEST_RETRY_DELAY_MS = '1';
  process.env.SMOKE_TEST_REQUEST_TIMEOUT_MS = '1000';
  process.env.CONTAINER_NAME = 'app';
  process.env.PLACEHOLDER_IMAGE = PLACEHOLDER;
  process.env.IMAGE_PARAMETER_NAME = PARAMETER;
  process.env.PIPELINE_NAME = PIPELINE;
  process.env.RELEASE_STAGE_NAME = STAGE;
  process.env.DEPLOY_ACTION_NAME = DEPLOY;
  process.env.HOOK_TIME_LIMIT_SECONDS = String(TIME_LIMIT_SECONDS);

  ecsMock = mockClient(ECSClient);
  ssmMock = mockClient(SSMClient);
  cpMock = mockClient(CodePipelineClient);
  snsMock = mockClient(SNSClient);
  snsMock.on(PublishCommand).resolves({ MessageId: 'message-1' });
  greenRuns(NEW_IMAGE);
  releaseInProgress();

  routes = { '/healthcheck': HEALTHY, '/': HOME };
  requests.length = 0;
  fetchSpy = jest.spyOn(global, 'fetch').mockImplementation(fakeFetch as typeof fetch);
  logSpy = jest.spyOn(console, 'log').mockImplementation(() => undefined);
});

afterEach(() => {
  ecsMock.restore();
  ssmMock.restore();
  cpMock.restore();
  snsMock.restore();
  jest.restoreAllMocks();
  process.env = { ...savedEnv };
});

/** The decisions the handler logged, parsed. */
function decisions(): Array<Record<string, any>> {
  return logSpy.mock.calls
    .map(([line]) => JSON.parse(String(line)))
    .filter((entry) => entry.message === 'ecs release hook decision');
}

/** Runs the hook with its clock at `now` and checks that it logged exactly one decision, matching its answer. */
async function invoke(event: unknown, ctx: typeof context | undefined = context, now = NOW): Promise<EcsLifecycleHookResponse> {
  logSpy.mockClear();
  const answer = await releaseHook(event, ctx, { now: () => Date.parse(now) });
  const logged = decisions();
  expect(logged).toHaveLength(1);
  expect(logged[0].hookStatus).toBe(answer.hookStatus);
  expect(logged[0].response).toEqual(answer);
  if (answer.hookStatus !== 'IN_PROGRESS') return answer;
  // Every IN_PROGRESS answer carries when the hook first ran for this deployment (the start of its time limit): the
  // event's, or this invocation's time on the first. Checked here, then left out so the tests can say the rest.
  const given = (event as { hookDetails?: Record<string, unknown> } | undefined)?.hookDetails?.startedAt;
  expect(answer.hookDetails?.startedAt).toBe(typeof given === 'string' ? new Date(given).toISOString() : now);
  const { startedAt: _startedAt, ...rest } = answer.hookDetails ?? {};
  return { ...answer, hookDetails: rest };
}

function expectNoPipelineCalls(): void {
  expect(ssmMock).not.toHaveReceivedAnyCommand();
  expect(cpMock).not.toHaveReceivedAnyCommand();
  expect(snsMock).not.toHaveReceivedAnyCommand();
}

// ---------------------------------------------------------------------------------------------------------------
// Pure helpers
// ---------------------------------------------------------------------------------------------------------------

describe('parseReleaseHookConfig', () => {
  const base = {
    CONTAINER_NAME: 'app',
    PLACEHOLDER_IMAGE: PLACEHOLDER,
    IMAGE_PARAMETER_NAME: PARAMETER,
    PIPELINE_NAME: PIPELINE,
    RELEASE_STAGE_NAME: STAGE,
    DEPLOY_ACTION_NAME: DEPLOY,
    HOOK_TIME_LIMIT_SECONDS: '3000',
  };
  const release = { imageParameterName: PARAMETER, pipelineName: PIPELINE, stageName: STAGE, deployActionName: DEPLOY, timeLimitSeconds: 3_000 };

  test('without APPROVAL_ACTION_NAME there is no gate, but the release guard is there (invariant 5 with Approval.none())', () => {
    expect(parseReleaseHookConfig(base)).toEqual({ ok: true, value: { containerName: 'app', placeholderImage: PLACEHOLDER, release } });
  });

  test('with APPROVAL_ACTION_NAME there is a gate, with NOTIFY_TOPIC_ARN and TEST_URL (ignored without it)', () => {
    expect(parseReleaseHookConfig({ ...base, APPROVAL_ACTION_NAME: ACTION })).toEqual({
      ok: true,
      value: { containerName: 'app', placeholderImage: PLACEHOLDER, release, gate: { ...release, actionName: ACTION } },
    });
    expect(parseReleaseHookConfig({ ...base, APPROVAL_ACTION_NAME: ` ${ACTION} `, NOTIFY_TOPIC_ARN: TOPIC, TEST_URL: TEST_URL })).toEqual({
      ok: true,
      value: { containerName: 'app', placeholderImage: PLACEHOLDER, release, gate: { ...release, actionName: ACTION, notifyTopicArn: TOPIC, testUrl: TEST_URL } },
    });
    expect(parseReleaseHookConfig({ ...base, APPROVAL_ACTION_NAME: ' ', NOTIFY_TOPIC_ARN: TOPIC, TEST_URL: TEST_URL })).toEqual({
      ok: true,
      value: { containerName: 'app', placeholderImage: PLACEHOLDER, release },
    });
  });

  test('every release variable is required, named when missing', () => {
    expect(parseReleaseHookConfig({ ...base, PIPELINE_NAME: ' ', HOOK_TIME_LIMIT_SECONDS: undefined })).toEqual({
      ok: false,
      error: 'misconfiguration: PIPELINE_NAME, HOOK_TIME_LIMIT_SECONDS not set: the hook needs them to tell the release\'s deployment from a cdk deploy',
    });
    for (const name of ['IMAGE_PARAMETER_NAME', 'RELEASE_STAGE_NAME', 'DEPLOY_ACTION_NAME']) {
      expect(parseReleaseHookConfig({ ...base, [name]: '' })).toEqual({ ok: false, error: expect.stringMatching(new RegExp(`^misconfiguration: ${name} not set`)) });
    }
  });

  test.each(['0', '-5', '1.5', '10s', '012'])('HOOK_TIME_LIMIT_SECONDS %j is refused', (value) => {
    expect(parseReleaseHookConfig({ ...base, HOOK_TIME_LIMIT_SECONDS: value })).toEqual({
      ok: false,
      error: `misconfiguration: HOOK_TIME_LIMIT_SECONDS must be a positive whole number of seconds, got ${JSON.stringify(value)}`,
    });
  });

  test('CONTAINER_NAME and PLACEHOLDER_IMAGE are required', () => {
    expect(parseReleaseHookConfig({ PLACEHOLDER_IMAGE: PLACEHOLDER })).toMatchObject({ ok: false, error: expect.stringMatching(/^CONTAINER_NAME is not set/) });
    expect(parseReleaseHookConfig({ CONTAINER_NAME: 'app' })).toMatchObject({ ok: false, error: expect.stringMatching(/^PLACEHOLDER_IMAGE is not set/) });
  });
});

describe('isRetryable', () => {
  test.each([
    ['ThrottlingException', awsError('ThrottlingException', 400)],
    ['TooManyRequestsException', awsError('TooManyRequestsException', 429)],
    ['Throttling', awsError('Throttling', 400)],
    ['RequestLimitExceeded', awsError('RequestLimitExceeded', 400)],
    ['ServiceUnavailable', awsError('ServiceUnavailable', 503)],
    ['ServiceUnavailableException', awsError('ServiceUnavailableException', 503)],
    ['InternalServerError', awsError('InternalServerError', 500)],
    ['any 5xx', Object.assign(new Error('x'), { name: 'SomethingNew', $metadata: { httpStatusCode: 502 } })],
    ['$retryable', Object.assign(new Error('x'), { name: 'SomethingElse', $retryable: { throttling: false } })],
    ['a network error', Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' })],
    ['an aborted call', Object.assign(new Error('Request aborted'), { name: 'AbortError' })],
  ])('%s is retryable', (_name, error) => {
    expect(isRetryable(error)).toBe(true);
  });

  test.each([
    ['AccessDeniedException', awsError('AccessDeniedException', 400)],
    ['ClientException', awsError('ClientException', 400)],
    ['InvalidParameterException', awsError('InvalidParameterException', 400)],
    ['PipelineNotFoundException', awsError('PipelineNotFoundException', 400)],
    ['a string', 'Rate exceeded'],
    ['undefined', undefined],
    ['null', null],
  ])('%s is not retryable', (_name, error) => {
    expect(isRetryable(error)).toBe(false);
  });
});

// ---------------------------------------------------------------------------------------------------------------
// Handler: before the smoke test
// ---------------------------------------------------------------------------------------------------------------

describe('handler: before the smoke test', () => {
  test('no rollback branch: ECS does not call POST_TEST_TRAFFIC_SHIFT hooks during a rollback, so every event is tested', async () => {
    // Weights that would look like a rollback at a TEST_TRAFFIC_SHIFT stage; the hook is only registered at
    // POST_TEST_TRAFFIC_SHIFT (ADR 0006), where ECS invokes nothing during a rollback.
    const event = ecsEvent({
      lifecycleStage: 'TEST_TRAFFIC_SHIFT',
      executionDetails: {
        serviceArn: SERVICE_ARN,
        targetServiceRevisionArn: GREEN,
        testTrafficWeights: { [GREEN]: 0, [BLUE]: 100 },
        productionTrafficWeights: {},
      },
    });
    await expect(invoke(event)).resolves.toEqual({ hookStatus: 'SUCCEEDED' });
    expect(requests).toEqual([`${BASE}/healthcheck`, `${BASE}/`]);
    expect(decisions()[0].reason).toBe('smoke test passed; this release\'s deployment; no approval gate configured');
  });

  test('invariant 4: past HOOK_TIME_LIMIT_SECONDS since its first invocation the hook answers FAILED, calling nothing', async () => {
    const startedAt = new Date(Date.parse(NOW) - TIME_LIMIT_SECONDS * 1000).toISOString();
    await expect(invoke(ecsEvent({ hookDetails: { startedAt, smokeTest: 'passed' } }))).resolves.toEqual({ hookStatus: 'FAILED' });
    expect(decisions()[0]).toMatchObject({ reason: `no decision within ${TIME_LIMIT_SECONDS} seconds of the hook's first invocation (${startedAt}): the deployment rolls back` });
    expect(ecsMock).not.toHaveReceivedAnyCommand();
    expectNoPipelineCalls();
  });

  test('one millisecond before the limit it still decides, and carries its first invocation\'s time', async () => {
    const startedAt = new Date(Date.parse(NOW) - TIME_LIMIT_SECONDS * 1000 + 1).toISOString();
    routes['/healthcheck'] = { status: 503, body: 'starting' };
    await expect(invoke(ecsEvent({ hookDetails: { startedAt } }))).resolves.toMatchObject({ hookStatus: 'IN_PROGRESS' });
  });

  test('answers SUCCEEDED for the placeholder image, without a request', async () => {
    withGate();
    greenRuns(PLACEHOLDER);
    await expect(invoke(ecsEvent())).resolves.toEqual({ hookStatus: 'SUCCEEDED' });
    expect(ecsMock).toHaveReceivedCommandTimes(DescribeServiceRevisionsCommand, 1);
    expect(ecsMock).toHaveReceivedCommandWith(DescribeServiceRevisionsCommand, { serviceRevisionArns: [GREEN] });
    expect(fetchSpy).not.toHaveBeenCalled();
    expectNoPipelineCalls();
    expect(decisions()[0]).toMatchObject({ image: PLACEHOLDER, targetServiceRevisionArn: GREEN, executionId: '3a0345ba-b029-404b-890d-7da2a4b266aa' });
  });

  test('gives the SDK call an abort signal for the Lambda deadline', async () => {
    greenRuns(PLACEHOLDER);
    await invoke(ecsEvent());
    const options = (ecsMock.commandCalls(DescribeServiceRevisionsCommand)[0].args as unknown[])[1] as { abortSignal?: AbortSignal };
    expect(options.abortSignal).toBeInstanceOf(AbortSignal);
    expect(options.abortSignal?.aborted).toBe(false);
  });

  test('answers FAILED when DescribeServiceRevisions is denied, without testing', async () => {
    ecsMock.on(DescribeServiceRevisionsCommand).rejects(awsError('AccessDeniedException', 400));
    await expect(invoke(ecsEvent())).resolves.toEqual({ hookStatus: 'FAILED' });
    expect(fetchSpy).not.toHaveBeenCalled();
    expect(decisions()[0]).toMatchObject({
      level: 'ERROR',
      action: 'ecs:DescribeServiceRevisions',
      error: { name: 'AccessDeniedException', message: 'AccessDeniedException (test)', httpStatusCode: 400 },
    });
  });

  test('answers IN_PROGRESS after 30 seconds when DescribeServiceRevisions is throttled, counting retries', async () => {
    ecsMock.on(DescribeServiceRevisionsCommand).rejects(awsError('ThrottlingException', 400));
    await expect(invoke(ecsEvent())).resolves.toEqual({
      hookStatus: 'IN_PROGRESS',
      callBackDelay: AWS_ERROR_CALLBACK_DELAY_SECONDS,
      hookDetails: { awsErrorRetries: 1 },
    });
    expect(AWS_ERROR_CALLBACK_DELAY_SECONDS).toBe(30);
    expect(fetchSpy).not.toHaveBeenCalled();
  });

  test('keeps counting throttling retries, then answers FAILED after 10', async () => {
    ecsMock.on(DescribeServiceRevisionsCommand).rejects(awsError('ServiceUnavailableException', 503));
    expect(AWS_ERROR_MAX_RETRIES).toBe(10);
    await expect(invoke(ecsEvent({ hookDetails: { awsErrorRetries: 9, [ECS_INVOCATIONS_KEY]: 2 } }))).resolves.toEqual({
      hookStatus: 'IN_PROGRESS',
      callBackDelay: 30,
      hookDetails: { awsErrorRetries: 10, [ECS_INVOCATIONS_KEY]: 2 },
    });
    logSpy.mockClear();
    await expect(invoke(ecsEvent({ hookDetails: { awsErrorRetries: 10, [ECS_INVOCATIONS_KEY]: 2 } }))).resolves.toEqual({ hookStatus: 'FAILED' });
    expectFacts(decisions()[0].reason, ['ecs:DescribeServiceRevisions', '10']);
  });

  test('answers FAILED when a call rejects with something that is not an Error, without throwing', async () => {
    ecsMock.on(DescribeServiceRevisionsCommand).callsFake(() => Promise.reject('Rate exceeded'));
    await expect(invoke(ecsEvent())).resolves.toEqual({ hookStatus: 'FAILED' });
    expect(decisions()[0].error).toEqual({ value: 'Rate exceeded' });
  });

  test('answers IN_PROGRESS without calling AWS when the Lambda deadline is too close', async () => {
    await expect(invoke(ecsEvent({ hookDetails: { smokeTest: 'passed' } }), { getRemainingTimeInMillis: () => 3_100 })).resolves.toEqual({
      hookStatus: 'IN_PROGRESS',
      callBackDelay: 30,
      hookDetails: { awsErrorRetries: 1, smokeTest: 'passed' },
    });
    expect(ecsMock).not.toHaveReceivedAnyCommand();
    expect(decisions()[0].error).toMatchObject({ name: 'LambdaDeadlineError' });
  });

  test('answers FAILED without the target revision ARN', async () => {
    const event = ecsEvent({ executionDetails: { serviceArn: 'arn:aws:ecs:us-west-2:123456789012:service/my-cluster/my-service' } });
    await expect(invoke(event)).resolves.toEqual({ hookStatus: 'FAILED' });
    expect(ecsMock).not.toHaveReceivedAnyCommand();
    expect(decisions()[0].reason).toBe('the event has no executionDetails.targetServiceRevisionArn');
  });

  test('answers FAILED when the revision is not found, quoting ECS\'s failure', async () => {
    ecsMock.on(DescribeServiceRevisionsCommand).resolves({ serviceRevisions: [], failures: [{ arn: GREEN, reason: 'MISSING' }] });
    await expect(invoke(ecsEvent())).resolves.toEqual({ hookStatus: 'FAILED' });
    expect(decisions()[0].reason).toBe(`service revision ${GREEN} not found: ${GREEN}: MISSING`);
    expect(fetchSpy).not.toHaveBeenCalled();
  });

  test('answers FAILED when the revision has no container named CONTAINER_NAME', async () => {
    process.env.CONTAINER_NAME = 'web';
    await expect(invoke(ecsEvent())).resolves.toEqual({ hookStatus: 'FAILED' });
    expectFacts(decisions()[0].reason, [GREEN, '"web"', '"log-router"', '"app"']);
    expect(fetchSpy).not.toHaveBeenCalled();
  });

  test('answers FAILED, calling nothing, when a release variable is missing', async () => {
    delete process.env.DEPLOY_ACTION_NAME;
    await expect(invoke(ecsEvent())).resolves.toEqual({ hookStatus: 'FAILED' });
    expect(decisions()[0].reason).toMatch(/^invalid configuration: misconfiguration: DEPLOY_ACTION_NAME not set/);
    expect(ecsMock).not.toHaveReceivedAnyCommand();
    expectNoPipelineCalls();
    expect(fetchSpy).not.toHaveBeenCalled();
  });

  test('answers FAILED without CONTAINER_NAME', async () => {
    delete process.env.CONTAINER_NAME;
    await expect(invoke(ecsEvent())).resolves.toEqual({ hookStatus: 'FAILED' });
    expect(ecsMock).not.toHaveReceivedAnyCommand();
  });

  test('answers FAILED for an event that is not an ECS lifecycle hook event', async () => {
    await expect(invoke({ hello: 'world' })).resolves.toEqual({ hookStatus: 'FAILED' });
    await expect(handler(undefined)).resolves.toEqual({ hookStatus: 'FAILED' });
    expect(ecsMock).not.toHaveReceivedAnyCommand();
  });
});

// ---------------------------------------------------------------------------------------------------------------
// Handler: the smoke test
// ---------------------------------------------------------------------------------------------------------------

describe('handler: smoke test', () => {
  test('answers SUCCEEDED when the smoke test passes and no gate is configured', async () => {
    await expect(invoke(ecsEvent())).resolves.toEqual({ hookStatus: 'SUCCEEDED' });
    expect(requests).toEqual([`${BASE}/healthcheck`, `${BASE}/`]);
    expect(cpMock).toHaveReceivedCommandWith(ListActionExecutionsCommand, { pipelineName: PIPELINE, filter: { pipelineExecutionId: EXECUTION_ID } });
    expect(ecsMock).toHaveReceivedCommandWith(ListServiceDeploymentsCommand, {
      cluster: 'my-cluster',
      service: SERVICE_ARN,
      createdAt: { after: new Date(DEPLOY_STARTED.getTime() - CLOCK_SKEW_MS) },
    });
    expect(snsMock).not.toHaveReceivedAnyCommand();
    expect(decisions()[0]).toMatchObject({
      level: 'INFO',
      image: NEW_IMAGE,
      releaseDeployment: true,
      reason: 'smoke test passed; this release\'s deployment; no approval gate configured',
      smokeTest: { passed: true, summary: 'smoke test passed: GET /healthcheck 200 (version 2.0.0); GET / contains "Welcome"' },
    });
  });

  test('answers FAILED at once when the page does not contain the expected phrase', async () => {
    routes['/'] = { status: 200, body: '<h1>Hello</h1>' };
    await expect(invoke(ecsEvent())).resolves.toEqual({ hookStatus: 'FAILED' });
    expectFacts(decisions()[0].reason, ['failed', 'GET', '"Welcome"', '200', '2']);
    expectNoPipelineCalls();
  });

  test('answers IN_PROGRESS while the target is not ready, counting invocations, then FAILED at the limit', async () => {
    routes['/healthcheck'] = { status: 503, body: 'Service Unavailable' };
    await expect(invoke(ecsEvent({ hookDetails: { unrelated: 'x' } }))).resolves.toEqual({
      hookStatus: 'IN_PROGRESS',
      callBackDelay: ECS_CALLBACK_DELAY_SECONDS,
      hookDetails: { [ECS_INVOCATIONS_KEY]: 1 },
    });
    expect(requests).toEqual([`${BASE}/healthcheck`, `${BASE}/healthcheck`]);

    logSpy.mockClear();
    await expect(invoke(ecsEvent({ hookDetails: { [ECS_INVOCATIONS_KEY]: ECS_MAX_INVOCATIONS - 1 } }))).resolves.toEqual({ hookStatus: 'FAILED' });
    expect(decisions()[0]).toMatchObject({ invocation: ECS_MAX_INVOCATIONS, reason: 'smoke test failed: GET /healthcheck returned 503 (after 2 attempts)' });
    expectNoPipelineCalls();
  });

  test('answers IN_PROGRESS when a request times out', async () => {
    routes['/healthcheck'] = 'hang';
    process.env.SMOKE_TEST_REQUEST_TIMEOUT_MS = '50';
    process.env.SMOKE_TEST_ATTEMPTS = '1';
    const started = Date.now();
    await expect(invoke(ecsEvent())).resolves.toEqual({ hookStatus: 'IN_PROGRESS', callBackDelay: 30, hookDetails: { [ECS_INVOCATIONS_KEY]: 1 } });
    expect(Date.now() - started).toBeLessThan(2_000);
    expect(decisions()[0].smokeTest.summary).toBe('smoke test failed: GET /healthcheck timed out after 50 ms');
  });

  test('answers, and does not throw, when fetch throws', async () => {
    routes['/healthcheck'] = new TypeError('fetch failed', { cause: new Error('connect ECONNREFUSED 10.0.0.1:8080') });
    await expect(invoke(ecsEvent())).resolves.toEqual({ hookStatus: 'IN_PROGRESS', callBackDelay: 30, hookDetails: { [ECS_INVOCATIONS_KEY]: 1 } });
    routes['/healthcheck'] = { reject: 'not an error' };
    await expect(handler(ecsEvent(), context)).resolves.toMatchObject({ hookStatus: 'IN_PROGRESS', callBackDelay: 30, hookDetails: { [ECS_INVOCATIONS_KEY]: 1 } });
  });

  test('resets the AWS error count when it answers IN_PROGRESS for another reason', async () => {
    routes['/healthcheck'] = { status: 502, body: 'Bad Gateway' };
    await expect(invoke(ecsEvent({ hookDetails: { awsErrorRetries: 4 } }))).resolves.toEqual({
      hookStatus: 'IN_PROGRESS',
      callBackDelay: 30,
      hookDetails: { [ECS_INVOCATIONS_KEY]: 1, awsErrorRetries: 0 },
    });
  });

  test('answers FAILED, without a request, when the smoke test configuration is invalid', async () => {
    delete process.env.SMOKE_TEST_BASE_URL;
    await expect(invoke(ecsEvent())).resolves.toEqual({ hookStatus: 'FAILED' });
    expect(decisions()[0].reason).toBe(
      'invalid smoke test configuration: SMOKE_TEST_BASE_URL is not set: the base URL of the test endpoint is required',
    );
    expect(fetchSpy).not.toHaveBeenCalled();
  });

  test('takes the smoke test overrides from hookDetails', async () => {
    routes['/ping'] = { status: 200, body: '{"status":"ok"}' };
    const hookDetails = { baseUrl: 'http://other.example', healthPath: '/ping', expectedPhrase: '' };
    await expect(invoke(ecsEvent({ hookDetails }))).resolves.toEqual({ hookStatus: 'SUCCEEDED' });
    expect(requests).toEqual(['http://other.example/ping']);
  });
});

// ---------------------------------------------------------------------------------------------------------------
// Handler: the approval gate
// ---------------------------------------------------------------------------------------------------------------

describe('handler: approval gate', () => {
  test('answers SUCCEEDED without an approval when the green image is already in production and no release runs', async () => {
    withGate('Failed');
    withNotification();
    greenRuns(PROD_IMAGE);
    cpMock.on(GetPipelineStateCommand).resolves(pipelineState('Succeeded'));
    deploymentsSinceDeploy([DEPLOYMENT, AFTER_RELEASE]);
    await expect(invoke(ecsEvent())).resolves.toEqual({ hookStatus: 'SUCCEEDED' });
    expect(requests).toEqual([`${BASE}/healthcheck`, `${BASE}/`]);
    expect(ssmMock).toHaveReceivedCommandTimes(GetParameterCommand, 1);
    expect(ssmMock).toHaveReceivedCommandWith(GetParameterCommand, { Name: PARAMETER });
    expect(cpMock).toHaveReceivedCommandTimes(GetPipelineStateCommand, 1);
    expect(cpMock).toHaveReceivedCommandWith(GetPipelineStateCommand, { name: PIPELINE });
    expect(snsMock).not.toHaveReceivedAnyCommand();
    expect(decisions()[0]).toMatchObject({ stageStatus: 'Succeeded', reason: expect.stringMatching(/already in production/) });
  });

  test('answers IN_PROGRESS every 60 seconds with smokeTest passed while the approval is pending', async () => {
    withGate('InProgress');
    await expect(invoke(ecsEvent())).resolves.toEqual({
      hookStatus: 'IN_PROGRESS',
      callBackDelay: 60,
      hookDetails: { smokeTest: 'passed', gateOpenedAt: NOW },
    });
    expect(APPROVAL_CALLBACK_DELAY_SECONDS).toBe(60);
    expect(snsMock).not.toHaveReceivedAnyCommand();
    expect(requests).toEqual([`${BASE}/healthcheck`, `${BASE}/`]);
    expect(cpMock).toHaveReceivedCommandWith(GetPipelineStateCommand, { name: PIPELINE });
    expect(cpMock).toHaveReceivedCommandTimes(ListActionExecutionsCommand, 1);
    expect(cpMock).toHaveReceivedCommandWith(ListActionExecutionsCommand, { pipelineName: PIPELINE, filter: { pipelineExecutionId: EXECUTION_ID } });
    expect(decisions()[0]).toMatchObject({ approvalStatus: 'InProgress', productionImage: PROD_IMAGE, pipelineExecutionId: EXECUTION_ID });
  });

  test('answers IN_PROGRESS when the approval action has not started yet', async () => {
    withGate('not started');
    await expect(invoke(ecsEvent({ hookDetails: LATER }))).resolves.toEqual({
      hookStatus: 'IN_PROGRESS',
      callBackDelay: 60,
      hookDetails: LATER,
    });
    expect(decisions()[0].approvalStatus).toBe('not started');
  });

  test('on a later call with smokeTest passed, skips the requests and answers SUCCEEDED once approved', async () => {
    withGate('Succeeded');
    await expect(invoke(ecsEvent({ hookDetails: LATER }))).resolves.toEqual({ hookStatus: 'SUCCEEDED' });
    expect(fetchSpy).not.toHaveBeenCalled();
    expect(ecsMock).toHaveReceivedCommandTimes(DescribeServiceRevisionsCommand, 1);
    expect(cpMock).toHaveReceivedCommandTimes(ListActionExecutionsCommand, 1);
    expect(decisions()[0]).toMatchObject({ approvalStatus: 'Succeeded', smokeTest: 'passed in an earlier invocation' });
  });

  test.each(['Failed', 'Abandoned'])('answers FAILED when the approval is %s', async (status) => {
    withGate(status);
    await expect(invoke(ecsEvent({ hookDetails: { smokeTest: 'passed' } }))).resolves.toEqual({ hookStatus: 'FAILED' });
    expect(fetchSpy).not.toHaveBeenCalled();
    expect(decisions()[0]).toMatchObject({ level: 'ERROR', approvalStatus: status });
  });

  test('logs the reviewer\'s comment of a rejection', async () => {
    withGate('Failed');
    await invoke(ecsEvent({ hookDetails: { smokeTest: 'passed' } }));
    expect(decisions()[0]).toMatchObject({ approvalSummary: 'not on a Friday', approvedBy: 'arn:aws:iam::123456789012:user/reviewer' });
  });

  test('answers FAILED when the release stage is not running: a new image outside the pipeline', async () => {
    withGate();
    cpMock.on(GetPipelineStateCommand).resolves(pipelineState('Succeeded'));
    deploymentsSinceDeploy([DEPLOYMENT, AFTER_RELEASE]);
    await expect(invoke(ecsEvent())).resolves.toEqual({ hookStatus: 'FAILED' });
    expect(requests).toEqual([`${BASE}/healthcheck`, `${BASE}/`]);
    expect(decisions()[0].reason).toMatch(/is not running \(status Succeeded\): this deployment was not started by the pipeline's release stage/);
  });

  test('answers FAILED when the release stage never ran', async () => {
    withGate();
    cpMock.on(GetPipelineStateCommand).resolves(pipelineState(undefined));
    await expect(invoke(ecsEvent({ hookDetails: { smokeTest: 'passed' } }))).resolves.toEqual({ hookStatus: 'FAILED' });
    expect(cpMock).not.toHaveReceivedCommand(ListActionExecutionsCommand);
  });

  test('answers FAILED when the pipeline has no such stage', async () => {
    withGate();
    cpMock.on(GetPipelineStateCommand).resolves(pipelineState('InProgress', 'Deploy'));
    await expect(invoke(ecsEvent({ hookDetails: { smokeTest: 'passed' } }))).resolves.toEqual({ hookStatus: 'FAILED' });
    expectFacts(decisions()[0].reason, ['misconfiguration', PIPELINE, STAGE]);
  });

  test('treats a missing production image parameter as a different image', async () => {
    withGate('Succeeded');
    ssmMock.on(GetParameterCommand).rejects(awsError('ParameterNotFound', 400));
    await expect(invoke(ecsEvent({ hookDetails: LATER }))).resolves.toEqual({ hookStatus: 'SUCCEEDED' });
    expect(cpMock).toHaveReceivedCommandTimes(GetPipelineStateCommand, 1);
    expect(decisions()[0]).toMatchObject({ productionImage: null, approvalStatus: 'Succeeded' });
  });

  test('follows nextToken through ListActionExecutions', async () => {
    withGate();
    cpMock.on(ListActionExecutionsCommand)
      .resolves({ actionExecutionDetails: [deployAction], nextToken: 'page-2' })
      .on(ListActionExecutionsCommand, { nextToken: 'page-2' })
      .resolves({ actionExecutionDetails: [approval('Succeeded')] });
    await expect(invoke(ecsEvent({ hookDetails: LATER }))).resolves.toEqual({ hookStatus: 'SUCCEEDED' });
    expect(cpMock).toHaveReceivedCommandTimes(ListActionExecutionsCommand, 2);
    expect(cpMock).toHaveReceivedNthSpecificCommandWith(1, ListActionExecutionsCommand, { pipelineName: PIPELINE, nextToken: undefined });
    expect(cpMock).toHaveReceivedNthSpecificCommandWith(2, ListActionExecutionsCommand, {
      pipelineName: PIPELINE,
      filter: { pipelineExecutionId: EXECUTION_ID },
      nextToken: 'page-2',
    });
  });

  test('takes the latest run of a retried approval action', async () => {
    withGate();
    cpMock.on(ListActionExecutionsCommand).resolves({
      actionExecutionDetails: [approval('Failed', new Date('2025-01-01T09:00:00Z')), deployAction, approval('InProgress', new Date('2025-01-01T11:00:00Z'))],
    });
    await expect(invoke(ecsEvent({ hookDetails: LATER }))).resolves.toEqual({
      hookStatus: 'IN_PROGRESS',
      callBackDelay: 60,
      hookDetails: LATER,
    });
  });

  test('keeps smokeTest passed when a gate call is throttled right after the smoke test', async () => {
    withGate();
    cpMock.on(GetPipelineStateCommand).rejects(awsError('ThrottlingException', 400, { $retryable: { throttling: true } }));
    await expect(invoke(ecsEvent())).resolves.toEqual({
      hookStatus: 'IN_PROGRESS',
      callBackDelay: 30,
      hookDetails: { smokeTest: 'passed', gateOpenedAt: NOW, awsErrorRetries: 1 },
    });
    expect(requests).toEqual([`${BASE}/healthcheck`, `${BASE}/`]);
    expect(decisions()[0]).toMatchObject({ action: 'codepipeline:GetPipelineState', smokeTest: { passed: true } });
  });

  test('answers FAILED after 10 consecutive throttled gate calls', async () => {
    withGate();
    ssmMock.on(GetParameterCommand).rejects(awsError('InternalServerError', 500));
    const answer = await invoke(ecsEvent({ hookDetails: { smokeTest: 'passed', awsErrorRetries: AWS_ERROR_MAX_RETRIES } }));
    expect(answer).toEqual({ hookStatus: 'FAILED' });
    expect(fetchSpy).not.toHaveBeenCalled();
    expect(cpMock).not.toHaveReceivedAnyCommand();
  });

  test('resets the AWS error count once the approval answers again', async () => {
    withGate();
    await expect(invoke(ecsEvent({ hookDetails: { ...LATER, awsErrorRetries: 3 } }))).resolves.toEqual({
      hookStatus: 'IN_PROGRESS',
      callBackDelay: 60,
      hookDetails: { ...LATER, awsErrorRetries: 0 },
    });
  });

  test('answers FAILED when the pipeline does not exist or access is denied', async () => {
    withGate();
    cpMock.on(GetPipelineStateCommand).rejects(awsError('PipelineNotFoundException', 400));
    await expect(invoke(ecsEvent({ hookDetails: { smokeTest: 'passed' } }))).resolves.toEqual({ hookStatus: 'FAILED' });
    expect(decisions()[0]).toMatchObject({ action: 'codepipeline:GetPipelineState', error: { name: 'PipelineNotFoundException' } });
  });

  test('answers FAILED, without throwing, when a gate call rejects with a non-Error', async () => {
    withGate();
    cpMock.on(ListActionExecutionsCommand).callsFake(() => Promise.reject(42));
    await expect(invoke(ecsEvent({ hookDetails: { smokeTest: 'passed' } }))).resolves.toEqual({ hookStatus: 'FAILED' });
    expect(decisions()[0]).toMatchObject({ action: 'codepipeline:ListActionExecutions', error: { value: '42' } });
  });
});

// ---------------------------------------------------------------------------------------------------------------
// Handler: approvals given before the gate opened
// ---------------------------------------------------------------------------------------------------------------

describe('handler: early approvals do not count', () => {
  const early = (approvedAt: string, readyAt: string) =>
    `approved before the new version was ready for review (approval at ${approvedAt}, ready at ${readyAt}); `
    + 'the release rolls back — run it again and approve after the ready-for-review notification';

  test('answers FAILED when the approval was given before the smoke test passed (same invocation)', async () => {
    withGate('Succeeded', APPROVED);
    withNotification();
    await expect(invoke(ecsEvent())).resolves.toEqual({ hookStatus: 'FAILED' });
    expect(requests).toEqual([`${BASE}/healthcheck`, `${BASE}/`]);
    expect(decisions()[0]).toMatchObject({
      level: 'ERROR',
      reason: early(APPROVED.toISOString(), NOW),
      approvalStatus: 'Succeeded',
      approvalUpdatedAt: APPROVED.toISOString(),
      gateOpenedAt: NOW,
    });
    // Nothing to review any more: no "ready for review" message.
    expect(snsMock).not.toHaveReceivedAnyCommand();
  });

  test('answers FAILED on a later call when the approval predates gateOpenedAt', async () => {
    withGate('Succeeded', new Date('2025-01-01T10:29:59.999Z'));
    await expect(invoke(ecsEvent({ hookDetails: LATER }))).resolves.toEqual({ hookStatus: 'FAILED' });
    expect(fetchSpy).not.toHaveBeenCalled();
    expect(decisions()[0].reason).toBe(early('2025-01-01T10:29:59.999Z', GATE_OPENED));
  });

  test('answers SUCCEEDED for an approval given after the gate opened in the same invocation', async () => {
    withGate('Succeeded', new Date('2025-01-01T11:00:00.500Z'));
    await expect(invoke(ecsEvent())).resolves.toEqual({ hookStatus: 'SUCCEEDED' });
    expect(requests).toEqual([`${BASE}/healthcheck`, `${BASE}/`]);
    expect(decisions()[0]).toMatchObject({ reason: `approval ${ACTION} granted`, gateOpenedAt: NOW });
  });

  test('answers SUCCEEDED on a later call for an approval after gateOpenedAt, and at the very same time', async () => {
    withGate('Succeeded', APPROVED);
    await expect(invoke(ecsEvent({ hookDetails: LATER }))).resolves.toEqual({ hookStatus: 'SUCCEEDED' });
    withGate('Succeeded', new Date(GATE_OPENED));
    await expect(invoke(ecsEvent({ hookDetails: LATER }))).resolves.toEqual({ hookStatus: 'SUCCEEDED' });
  });

  test('answers FAILED when the approval succeeded at an unknown time', async () => {
    withGate();
    cpMock.on(ListActionExecutionsCommand).resolves({ actionExecutionDetails: [deployAction, { ...approval('Succeeded'), lastUpdateTime: undefined }] });
    await expect(invoke(ecsEvent({ hookDetails: LATER }))).resolves.toEqual({ hookStatus: 'FAILED' });
    expect(decisions()[0].reason).toBe(early('an unknown time', GATE_OPENED));
  });

  test('without gateOpenedAt (an older hook passed the smoke test), the gate opens at this invocation', async () => {
    withGate('Succeeded', APPROVED);
    await expect(invoke(ecsEvent({ hookDetails: { smokeTest: 'passed' } }))).resolves.toEqual({ hookStatus: 'FAILED' });
    expect(decisions()[0].reason).toBe(early(APPROVED.toISOString(), NOW));

    withGate('InProgress');
    await expect(invoke(ecsEvent({ hookDetails: { smokeTest: 'passed', gateOpenedAt: 'not a date' } }))).resolves.toEqual({
      hookStatus: 'IN_PROGRESS',
      callBackDelay: 60,
      hookDetails: { smokeTest: 'passed', gateOpenedAt: NOW },
    });
  });

  test('keeps the first gateOpenedAt through later invocations', async () => {
    withGate('InProgress');
    const first = await invoke(ecsEvent());
    expect(first.hookDetails).toEqual({ smokeTest: 'passed', gateOpenedAt: NOW });
    const second = await invoke(ecsEvent({ hookDetails: first.hookDetails }), context, '2025-01-01T11:01:00.000Z');
    expect(second).toEqual({ hookStatus: 'IN_PROGRESS', callBackDelay: 60, hookDetails: { smokeTest: 'passed', gateOpenedAt: NOW } });
    withGate('Succeeded', new Date('2025-01-01T11:01:30.000Z'));
    await expect(invoke(ecsEvent({ hookDetails: second.hookDetails }), context, '2025-01-01T11:02:00.000Z')).resolves.toEqual({ hookStatus: 'SUCCEEDED' });
    expect(fetchSpy).toHaveBeenCalledTimes(2);
  });

  test('the Lambda entry point dates the gate with the real clock', async () => {
    withGate('InProgress');
    const before = Date.now();
    const started = new Date(before - 60_000);
    cpMock.on(ListActionExecutionsCommand).resolves({ actionExecutionDetails: [{ ...deployAction, startTime: started }, approval('InProgress')] });
    deploymentsSinceDeploy([DEPLOYMENT, started]);
    const answer = await handler(ecsEvent(), context);
    expect(answer.hookStatus).toBe('IN_PROGRESS');
    const openedAt = Date.parse(String(answer.hookDetails?.gateOpenedAt));
    expect(openedAt).toBeGreaterThanOrEqual(before);
    expect(openedAt).toBeLessThanOrEqual(Date.now());
  });
});

// ---------------------------------------------------------------------------------------------------------------
// Handler: the "ready for review" notification
// ---------------------------------------------------------------------------------------------------------------

describe('handler: ready-for-review notification', () => {
  test('publishes once when the gate opens, with the topic, image, test URL and the waiting approval', async () => {
    withGate('InProgress');
    withNotification();
    const first = await invoke(ecsEvent());
    expect(first).toEqual({ hookStatus: 'IN_PROGRESS', callBackDelay: 60, hookDetails: { smokeTest: 'passed', gateOpenedAt: NOW, notified: true } });
    expect(snsMock).toHaveReceivedCommandTimes(PublishCommand, 1);
    const input = snsMock.commandCalls(PublishCommand)[0].args[0].input;
    expect(input.TopicArn).toBe(TOPIC);
    expect(input.Subject).toBe(`Ready for review: ${PIPELINE}`);
    expect(input.Message).toContain(`Image: ${NEW_IMAGE}`);
    expect(input.Message).toContain(`Test URL: ${TEST_URL}`);
    expect(input.Message).toContain('Smoke test: passed (smoke test passed: GET /healthcheck 200 (version 2.0.0); GET / contains "Welcome")');
    expect(input.Message).toContain(`approval action ${ACTION} in stage ${STAGE} of pipeline ${PIPELINE} (execution ${EXECUTION_ID})`);
    expect(input.Message).toContain(`An approval given before ${NOW} does not count`);
    expect(decisions()[0].notification).toEqual({ published: true, topicArn: TOPIC, messageId: 'message-1' });

    // Later invocations do not publish again.
    const second = await invoke(ecsEvent({ hookDetails: first.hookDetails }), context, '2025-01-01T11:01:00.000Z');
    expect(second).toEqual(first);
    expect(snsMock).toHaveReceivedCommandTimes(PublishCommand, 1);
    expect(decisions()[0].notification).toBeUndefined();
    expect(fetchSpy).toHaveBeenCalledTimes(2);
  });

  test('publishes on a later invocation when the gate opened under a throttled call, without re-running the smoke test', async () => {
    withGate('InProgress');
    withNotification();
    cpMock.on(GetPipelineStateCommand).rejectsOnce(awsError('ThrottlingException', 400)).resolves(pipelineState('InProgress'));
    const first = await invoke(ecsEvent());
    expect(first).toEqual({ hookStatus: 'IN_PROGRESS', callBackDelay: 30, hookDetails: { smokeTest: 'passed', gateOpenedAt: NOW, awsErrorRetries: 1 } });
    expect(snsMock).not.toHaveReceivedAnyCommand();
    const second = await invoke(ecsEvent({ hookDetails: first.hookDetails }), context, '2025-01-01T11:00:30.000Z');
    expect(second).toEqual({ hookStatus: 'IN_PROGRESS', callBackDelay: 60, hookDetails: { smokeTest: 'passed', gateOpenedAt: NOW, notified: true, awsErrorRetries: 0 } });
    expect(snsMock).toHaveReceivedCommandTimes(PublishCommand, 1);
    // Without a smoke test in this invocation, the message does not quote its summary.
    expect(snsMock.commandCalls(PublishCommand)[0].args[0].input.Message).toContain('Smoke test: passed\n');
    expect(fetchSpy).toHaveBeenCalledTimes(2);
  });

  test('a publish that is denied is logged, answers IN_PROGRESS all the same, and is not tried again', async () => {
    withGate('InProgress');
    withNotification();
    snsMock.on(PublishCommand).rejects(awsError('AuthorizationErrorException', 403));
    const first = await invoke(ecsEvent());
    expect(first).toEqual({ hookStatus: 'IN_PROGRESS', callBackDelay: 60, hookDetails: { smokeTest: 'passed', gateOpenedAt: NOW, notified: false } });
    expect(decisions()[0]).toMatchObject({
      level: 'INFO',
      notification: { published: false, topicArn: TOPIC, action: 'sns:Publish', retry: false, error: { name: 'AuthorizationErrorException' } },
    });
    await invoke(ecsEvent({ hookDetails: first.hookDetails }));
    expect(snsMock).toHaveReceivedCommandTimes(PublishCommand, 1);
  });

  test('a publish that is throttled answers IN_PROGRESS and is tried again at the next invocation', async () => {
    withGate('InProgress');
    withNotification();
    snsMock.on(PublishCommand).rejectsOnce(awsError('Throttled', 429, { $retryable: { throttling: true } })).resolves({ MessageId: 'message-2' });
    const first = await invoke(ecsEvent());
    expect(first).toEqual({ hookStatus: 'IN_PROGRESS', callBackDelay: 60, hookDetails: { smokeTest: 'passed', gateOpenedAt: NOW } });
    expect(decisions()[0].notification).toMatchObject({ published: false, retry: true });
    const second = await invoke(ecsEvent({ hookDetails: first.hookDetails }));
    expect(second.hookDetails).toEqual({ smokeTest: 'passed', gateOpenedAt: NOW, notified: true });
    expect(snsMock).toHaveReceivedCommandTimes(PublishCommand, 2);
  });

  test('does not publish without NOTIFY_TOPIC_ARN, nor when the approval is already decided', async () => {
    withGate('InProgress');
    process.env.TEST_URL = TEST_URL;
    await invoke(ecsEvent());
    expect(snsMock).not.toHaveReceivedAnyCommand();

    withNotification();
    withGate('Failed');
    await expect(invoke(ecsEvent({ hookDetails: LATER }))).resolves.toEqual({ hookStatus: 'FAILED' });
    withGate('Succeeded');
    await expect(invoke(ecsEvent({ hookDetails: LATER }))).resolves.toEqual({ hookStatus: 'SUCCEEDED' });
    expect(snsMock).not.toHaveReceivedAnyCommand();
  });

  test('the message leaves out the test URL when TEST_URL is not set, and the subject stays within 100 characters', () => {
    const gate = {
      imageParameterName: PARAMETER, pipelineName: 'p'.repeat(100), stageName: STAGE, deployActionName: DEPLOY, timeLimitSeconds: TIME_LIMIT_SECONDS, actionName: ACTION,
    };
    const message = readyForReviewMessage(gate, NEW_IMAGE, undefined, EXECUTION_ID, NOW);
    expect(message.subject).toHaveLength(SNS_SUBJECT_LIMIT);
    expect(message.subject.startsWith('Ready for review: ppp')).toBe(true);
    expect(message.body).not.toContain('Test URL');
    expect(message.body).toContain(`Image: ${NEW_IMAGE}`);
  });
});

// ---------------------------------------------------------------------------------------------------------------
// Handler: `cdk deploy` during a release
// ---------------------------------------------------------------------------------------------------------------

describe('handler: redeployment of the production image', () => {
  test('defect (invariant 5): the release\'s own deployment of the image already recorded (a retried stage) is not refused as a cdk deploy', async () => {
    greenRuns(PROD_IMAGE);
    await expect(invoke(ecsEvent())).resolves.toEqual({ hookStatus: 'SUCCEEDED' });
    withGate('InProgress');
    await expect(invoke(ecsEvent({ hookDetails: LATER }))).resolves.toMatchObject({ hookStatus: 'IN_PROGRESS', callBackDelay: 60 });
  });

  test.each([
    ['Succeeded', 'Succeeded'],
    ['Failed', 'Failed'],
    ['Stopped', 'Stopped'],
  ])('answers SUCCEEDED when the release stage is %s and the deployment came after it', async (_label, status) => {
    withGate();
    greenRuns(PROD_IMAGE);
    cpMock.on(GetPipelineStateCommand).resolves(pipelineState(status));
    deploymentsSinceDeploy([DEPLOYMENT, AFTER_RELEASE]);
    await expect(invoke(ecsEvent({ hookDetails: LATER }))).resolves.toEqual({ hookStatus: 'SUCCEEDED' });
    expect(decisions()[0].reason).toMatch(/already in production \(a redeployment\) and no release is in progress/);
  });

  test('answers SUCCEEDED when the release stage never ran (no ListActionExecutions, no deployment list)', async () => {
    withGate();
    greenRuns(PROD_IMAGE);
    cpMock.on(GetPipelineStateCommand).resolves(pipelineState(undefined));
    await expect(invoke(ecsEvent({ hookDetails: LATER }))).resolves.toEqual({ hookStatus: 'SUCCEEDED' });
    expect(cpMock).not.toHaveReceivedCommand(ListActionExecutionsCommand);
    expect(ecsMock).not.toHaveReceivedCommand(ListServiceDeploymentsCommand);
  });

  test('answers IN_PROGRESS when GetPipelineState is throttled', async () => {
    withGate();
    greenRuns(PROD_IMAGE);
    cpMock.on(GetPipelineStateCommand).rejects(awsError('ThrottlingException', 400));
    await expect(invoke(ecsEvent({ hookDetails: LATER }))).resolves.toEqual({
      hookStatus: 'IN_PROGRESS',
      callBackDelay: AWS_ERROR_CALLBACK_DELAY_SECONDS,
      hookDetails: { ...LATER, awsErrorRetries: 1 },
    });
    expect(decisions()[0]).toMatchObject({ action: 'codepipeline:GetPipelineState', image: PROD_IMAGE });
  });

  test('answers FAILED when the pipeline has no such stage', async () => {
    withGate();
    greenRuns(PROD_IMAGE);
    cpMock.on(GetPipelineStateCommand).resolves(pipelineState('Succeeded', 'Deploy'));
    await expect(invoke(ecsEvent({ hookDetails: LATER }))).resolves.toEqual({ hookStatus: 'FAILED' });
    expectFacts(decisions()[0].reason, ['misconfiguration', PIPELINE, STAGE]);
  });
});

// ---------------------------------------------------------------------------------------------------------------
// Invariant 5: a `cdk deploy` cannot overtake a release, with every approval setting
// ---------------------------------------------------------------------------------------------------------------

describe.each([
  ['Approval.none()', false],
  ['Approval.beforeProductionTraffic()', true],
])('invariant 5 with %s: only the release\'s own deployment passes during a release', (_label, gated) => {
  const cdkEvent = () => ecsEvent({ resourceArn: CDK_DEPLOYMENT, hookDetails: gated ? LATER : undefined });

  beforeEach(() => {
    if (gated) withGate('InProgress');
  });

  test.each([
    ['the production image (what cdk deploy registers)', PROD_IMAGE],
    ['another image', NEW_IMAGE],
  ])('a cdk deploy started during the release, carrying %s, answers FAILED', async (_what, image) => {
    greenRuns(image);
    deploymentsSinceDeploy([DEPLOYMENT, CREATED], [CDK_DEPLOYMENT, new Date('2025-01-01T10:40:00Z')]);
    await expect(invoke(cdkEvent())).resolves.toEqual({ hookStatus: 'FAILED' });
    expect(decisions()[0]).toMatchObject({
      level: 'ERROR',
      reason: `a release is in progress in ${PIPELINE} (execution ${EXECUTION_ID}) and this is not its deployment; run cdk deploy again after it finished`,
      serviceDeploymentArn: CDK_DEPLOYMENT,
      releaseDeploymentArn: DEPLOYMENT,
      releaseDeployment: false,
      stageStatus: 'InProgress',
    });
    expect(snsMock).not.toHaveReceivedAnyCommand();
  });

  test('a deployment created before the Deploy action started (an earlier cdk deploy still running) answers FAILED while the release runs', async () => {
    greenRuns(PROD_IMAGE);
    deploymentsSinceDeploy([DEPLOYMENT, CREATED]);
    await expect(invoke(cdkEvent())).resolves.toEqual({ hookStatus: 'FAILED' });
  });

  test('without the deployment\'s ARN in the event the hook cannot tell, and refuses while a release runs', async () => {
    await expect(invoke(ecsEvent({ resourceArn: undefined, hookDetails: gated ? LATER : undefined }))).resolves.toEqual({ hookStatus: 'FAILED' });
  });

  test('a deployment ECS has not listed (no service ARN in the event) is not the release\'s', async () => {
    const event = ecsEvent({ hookDetails: gated ? LATER : undefined });
    const answer = await invoke({ ...event, executionDetails: { ...event.executionDetails, serviceArn: 'not-an-arn' } });
    expect(answer).toEqual({ hookStatus: 'FAILED' });
    expect(ecsMock).not.toHaveReceivedCommand(ListServiceDeploymentsCommand);
  });

  test('superseded: the release\'s deployment, held while a newer cdk deploy waits, is still the release\'s (the newer one is refused)', async () => {
    deploymentsSinceDeploy([CDK_DEPLOYMENT, new Date('2025-01-01T10:40:00Z')], [DEPLOYMENT, CREATED]);
    const answer = await invoke(ecsEvent({ hookDetails: gated ? LATER : undefined }));
    expect(answer.hookStatus).toBe(gated ? 'IN_PROGRESS' : 'SUCCEEDED');
    expect(decisions()[0]).toMatchObject({ releaseDeployment: true });
  });

  test('a deployment created within the clock skew before the Deploy action\'s start is the release\'s', async () => {
    deploymentsSinceDeploy([DEPLOYMENT, new Date(DEPLOY_STARTED.getTime() - CLOCK_SKEW_MS)]);
    await expect(invoke(ecsEvent({ hookDetails: gated ? LATER : undefined }))).resolves.toMatchObject({ hookStatus: gated ? 'IN_PROGRESS' : 'SUCCEEDED' });
  });

  test('a deployment created just before that is not', async () => {
    deploymentsSinceDeploy([DEPLOYMENT, new Date(DEPLOY_STARTED.getTime() - CLOCK_SKEW_MS - 1)]);
    await expect(invoke(ecsEvent({ hookDetails: gated ? LATER : undefined }))).resolves.toEqual({ hookStatus: 'FAILED' });
  });

  test('the latest run of a retried Deploy action counts', async () => {
    const retried = { ...deployAction, startTime: new Date('2025-01-01T10:30:00Z'), lastUpdateTime: undefined };
    const first = { ...deployAction, startTime: new Date('2025-01-01T09:00:00Z') };
    cpMock.on(ListActionExecutionsCommand).resolves({ actionExecutionDetails: [retried, first, ...(gated ? [approval('InProgress')] : [])] });
    deploymentsSinceDeploy([DEPLOYMENT, new Date('2025-01-01T10:31:00Z')]);
    await invoke(ecsEvent({ hookDetails: gated ? LATER : undefined }));
    expect(ecsMock).toHaveReceivedCommandWith(ListServiceDeploymentsCommand, { createdAt: { after: new Date(Date.parse('2025-01-01T10:30:00Z') - CLOCK_SKEW_MS) } });
    expect(decisions()[0]).toMatchObject({ releaseDeployment: true, deployStartedAt: '2025-01-01T10:30:00.000Z' });
  });

  test('a cdk deploy started during the release whose hook runs after the release ended answers FAILED', async () => {
    greenRuns(PROD_IMAGE);
    cpMock.on(GetPipelineStateCommand).resolves(pipelineState('Succeeded'));
    cpMock.on(ListActionExecutionsCommand).resolves({
      actionExecutionDetails: [
        { ...deployAction, status: 'Succeeded', lastUpdateTime: new Date('2025-01-01T10:40:00Z') },
        { ...deployAction, actionName: 'RecordRelease', startTime: new Date('2025-01-01T10:40:00Z'), lastUpdateTime: new Date('2025-01-01T10:41:00Z') },
      ],
    });
    deploymentsSinceDeploy([DEPLOYMENT, CREATED], [CDK_DEPLOYMENT, new Date('2025-01-01T10:41:00Z')]);
    await expect(invoke(cdkEvent())).resolves.toEqual({ hookStatus: 'FAILED' });
    expectFacts(decisions()[0].reason, [EXECUTION_ID, PIPELINE, DEPLOY]);
  });

  test('one created after the release ended is a redeployment and passes', async () => {
    greenRuns(PROD_IMAGE);
    cpMock.on(GetPipelineStateCommand).resolves(pipelineState('Succeeded'));
    cpMock.on(ListActionExecutionsCommand).resolves({ actionExecutionDetails: [{ ...deployAction, lastUpdateTime: undefined, startTime: new Date('2025-01-01T10:41:00Z') }] });
    deploymentsSinceDeploy([DEPLOYMENT, CREATED], [CDK_DEPLOYMENT, new Date('2025-01-01T10:41:00.001Z')]);
    await expect(invoke(cdkEvent())).resolves.toEqual({ hookStatus: 'SUCCEEDED' });
  });

  test('the release\'s own deployment after its stage ended (stopped, or the deploy action gave up) answers FAILED: the record stays right', async () => {
    cpMock.on(GetPipelineStateCommand).resolves(pipelineState('Stopped'));
    cpMock.on(ListActionExecutionsCommand).resolves({ actionExecutionDetails: [{ ...deployAction, status: 'Abandoned', lastUpdateTime: new Date('2025-01-01T10:50:00Z') }] });
    await expect(invoke(ecsEvent({ hookDetails: gated ? LATER : undefined }))).resolves.toEqual({ hookStatus: 'FAILED' });
    expectFacts(decisions()[0].reason, [STAGE, PIPELINE, 'Stopped']);
  });

  test('invariant 4: the release\'s deployment held HOOK_TIME_LIMIT_SECONDS after the Deploy action started answers FAILED', async () => {
    const started = new Date(Date.parse(NOW) - TIME_LIMIT_SECONDS * 1000);
    cpMock.on(ListActionExecutionsCommand).resolves({ actionExecutionDetails: [{ ...deployAction, startTime: started }, ...(gated ? [approval('InProgress')] : [])] });
    deploymentsSinceDeploy([DEPLOYMENT, started]);
    await expect(invoke(ecsEvent({ hookDetails: gated ? LATER : undefined }))).resolves.toEqual({ hookStatus: 'FAILED' });
    expectFacts(decisions()[0].reason, [TIME_LIMIT_SECONDS, DEPLOY, started.toISOString(), 'ECS']);
    expect(snsMock).not.toHaveReceivedAnyCommand();
  });

  test('one millisecond earlier it still decides', async () => {
    const started = new Date(Date.parse(NOW) - TIME_LIMIT_SECONDS * 1000 + 1);
    cpMock.on(ListActionExecutionsCommand).resolves({ actionExecutionDetails: [{ ...deployAction, startTime: started }, ...(gated ? [approval('InProgress')] : [])] });
    deploymentsSinceDeploy([DEPLOYMENT, started]);
    await expect(invoke(ecsEvent({ hookDetails: gated ? LATER : undefined }))).resolves.toMatchObject({ hookStatus: gated ? 'IN_PROGRESS' : 'SUCCEEDED' });
  });

  test('duplicate and retried invocations: the same event twice gets the same answer', async () => {
    const event = ecsEvent({ hookDetails: gated ? { ...LATER, notified: true } : undefined });
    const first = await invoke(event);
    const second = await invoke(event);
    expect(second).toEqual(first);
    expect(snsMock).not.toHaveReceivedAnyCommand();
  });

  test('a throttled ListServiceDeployments answers IN_PROGRESS (retry), keeping the progress', async () => {
    ecsMock.on(ListServiceDeploymentsCommand).rejects(awsError('ThrottlingException', 400));
    const answer = await invoke(ecsEvent({ hookDetails: gated ? LATER : undefined }));
    expect(answer).toEqual({
      hookStatus: 'IN_PROGRESS',
      callBackDelay: AWS_ERROR_CALLBACK_DELAY_SECONDS,
      hookDetails: { smokeTest: 'passed', awsErrorRetries: 1, ...(gated ? { gateOpenedAt: GATE_OPENED } : {}) },
    });
    expect(decisions()[0]).toMatchObject({ action: 'ecs:ListServiceDeployments' });
  });

  test('follows nextToken through ListServiceDeployments', async () => {
    ecsMock.on(ListServiceDeploymentsCommand)
      .resolvesOnce({ serviceDeployments: [{ serviceDeploymentArn: DEPLOYMENT, createdAt: CREATED }], nextToken: 'page-2' })
      .resolvesOnce({ serviceDeployments: [{ serviceDeploymentArn: CDK_DEPLOYMENT, createdAt: DEPLOY_STARTED }, { createdAt: DEPLOY_STARTED }] });
    await expect(invoke(ecsEvent({ hookDetails: gated ? LATER : undefined }))).resolves.toEqual({ hookStatus: 'FAILED' });
    expect(ecsMock.commandCalls(ListServiceDeploymentsCommand).map((c) => c.args[0].input.nextToken)).toEqual([undefined, 'page-2']);
  });
});

// ---------------------------------------------------------------------------------------------------------------
// What each answer says exactly: error classification, revision lookup, approval outcomes, hookDetails keys
// ---------------------------------------------------------------------------------------------------------------

describe('isRetryable, every rule', () => {
  test.each([
    'ThrottlingException', 'Throttling', 'ThrottledException', 'TooManyRequestsException', 'RequestLimitExceeded', 'RequestThrottled',
    'RequestThrottledException', 'SlowDown', 'ServiceUnavailable', 'ServiceUnavailableException', 'InternalServerError',
    'InternalServerException', 'InternalFailure', 'RequestTimeout', 'RequestTimeoutException', 'TimeoutError', 'AbortError', 'LambdaDeadlineError',
  ])('the name %s alone is retryable', (name) => {
    expect(isRetryable({ name })).toBe(true);
  });

  test.each(['ECONNRESET', 'ECONNREFUSED', 'ETIMEDOUT', 'EPIPE', 'EAI_AGAIN', 'ENOTFOUND'])('the network code %s alone is retryable', (code) => {
    expect(isRetryable({ code })).toBe(true);
  });

  test.each([
    ['a server fault', { $fault: 'server' }, true],
    ['a client fault', { $fault: 'client' }, false],
    ['HTTP 500', { $metadata: { httpStatusCode: 500 } }, true],
    ['HTTP 499', { $metadata: { httpStatusCode: 499 } }, false],
    ['a status that is not a number', { $metadata: { httpStatusCode: '503' } }, false],
    ['$metadata null', { $metadata: null }, false],
    ['$metadata not an object', { $metadata: 503 }, false],
    ['$retryable {}', { $retryable: {} }, true],
    ['$retryable false', { $retryable: false }, false],
    ['$retryable null', { $retryable: null }, false],
    ['a code that is not a string', { code: 5 }, false],
    ['an unknown code', { code: 'EACCES' }, false],
    ['a name that is not a string', { name: 5 }, false],
  ])('%s: %s', (_label, error, retryable) => {
    expect(isRetryable(error)).toBe(retryable);
  });
});

describe('handler: what the answers say', () => {
  const reason = () => decisions()[0].reason as string;

  test('a revision ECS does not find: FAILED quoting each failure, with ? for what ECS left out', async () => {
    ecsMock.on(DescribeServiceRevisionsCommand).resolves({ serviceRevisions: [], failures: [{ arn: GREEN, reason: 'MISSING', detail: 'gone' }, {}] });
    await invoke(ecsEvent());
    expectFacts(reason(), [GREEN, 'not found', GREEN, 'MISSING']);
    ecsMock.on(DescribeServiceRevisionsCommand).resolves({});
    await invoke(ecsEvent());
    expect(reason()).toBe(`service revision ${GREEN} not found`);
  });

  test('takes the target revision, not the first one ECS lists', async () => {
    ecsMock.on(DescribeServiceRevisionsCommand).resolves({
      serviceRevisions: [
        { serviceRevisionArn: BLUE, containerImages: [{ containerName: 'app', image: PLACEHOLDER }] },
        { serviceRevisionArn: GREEN, containerImages: [{ containerName: 'app', image: NEW_IMAGE }] },
      ],
    });
    await invoke(ecsEvent());
    expect(decisions()[0].image).toBe(NEW_IMAGE);
    expect(requests).toHaveLength(2);
  });

  test('a revision without containers, or an app container without an image: FAILED saying which', async () => {
    ecsMock.on(DescribeServiceRevisionsCommand).resolves({ serviceRevisions: [{ serviceRevisionArn: GREEN }] });
    await invoke(ecsEvent());
    expectFacts(reason(), [GREEN, '"app"', 'none']);
    for (const image of ['', undefined]) {
      ecsMock.on(DescribeServiceRevisionsCommand).resolves({ serviceRevisions: [{ serviceRevisionArn: GREEN, containerImages: [{ containerName: 'app', image }] }] });
      await expect(invoke(ecsEvent())).resolves.toEqual({ hookStatus: 'FAILED' });
      expectFacts(reason(), [GREEN, '"app"']);
    }
  });

  test('an empty target revision ARN: FAILED without any call', async () => {
    const event = ecsEvent();
    await expect(invoke({ ...event, executionDetails: { ...event.executionDetails, targetServiceRevisionArn: '' } })).resolves.toEqual({ hookStatus: 'FAILED' });
    expect(reason()).toBe('the event has no executionDetails.targetServiceRevisionArn');
    expect(ecsMock).not.toHaveReceivedAnyCommand();
  });

  test.each([
    ['null', null],
    ['no executionDetails', { lifecycleStage: 'POST_TEST_TRAFFIC_SHIFT' }],
    ['no lifecycleStage', { executionDetails: {} }],
    ['executionDetails that is not an object', { lifecycleStage: 'POST_TEST_TRAFFIC_SHIFT', executionDetails: [] }],
  ])('an event with %s: FAILED', async (_label, event) => {
    await expect(invoke(event)).resolves.toEqual({ hookStatus: 'FAILED' });
    expect(reason()).toBe('the event is not an Amazon ECS lifecycle hook event (no lifecycleStage or executionDetails)');
  });

  test('the placeholder image: SUCCEEDED with its reason', async () => {
    greenRuns(PLACEHOLDER);
    await invoke(ecsEvent());
    expect(reason()).toBe('the target revision runs the placeholder image (before the first release): nothing to test');
  });

  test('without a usable Lambda deadline the SDK call gets no abort signal', async () => {
    greenRuns(PLACEHOLDER);
    for (const ctx of [{ getRemainingTimeInMillis: () => Number.NaN }, {} as typeof context, undefined]) {
      ecsMock.resetHistory();
      await releaseHook(ecsEvent(), ctx, { now: () => Date.parse(NOW) });
      const options = (ecsMock.commandCalls(DescribeServiceRevisionsCommand)[0].args as unknown[])[1] as { abortSignal?: AbortSignal };
      expect(options.abortSignal).toBeUndefined();
    }
  });

  test('an error that is not an AWS error is logged with its message, a thrown string with its value', async () => {
    ecsMock.on(DescribeServiceRevisionsCommand).callsFake(() => Promise.reject({ name: 'Weird' }));
    await invoke(ecsEvent());
    expect(decisions()[0].error).toEqual({ name: 'Weird', message: '[object Object]' });
  });

  test.each([
    ['Failed', 'rejected or timed out'],
    ['Abandoned', 'abandoned'],
  ])('approval %s: FAILED saying it was %s', async (status, what) => {
    withGate(status);
    cpMock.on(ListActionExecutionsCommand).resolves({ actionExecutionDetails: [deployAction, { ...approval(status), output: {} }] });
    await invoke(ecsEvent({ hookDetails: LATER }));
    expect(reason()).toBe(`approval ${ACTION} ${what} (status ${status})`);
  });

  test('an approval status CodePipeline may add later: FAILED naming it', async () => {
    withGate('Superseded');
    await invoke(ecsEvent({ hookDetails: LATER }));
    expect(reason()).toBe(`approval ${ACTION} has an unknown status "Superseded"`);
  });

  test('the approval pending: the reason says how long until the next look', async () => {
    withGate('InProgress');
    await invoke(ecsEvent({ hookDetails: LATER }));
    expectFacts(reason(), ['waiting for approval', ACTION, '60']);
  });

  test('a release stage that ended without a status is named "none"', async () => {
    cpMock.on(GetPipelineStateCommand).resolves({
      $metadata: {}, stageStates: [{ stageName: STAGE, latestExecution: { pipelineExecutionId: EXECUTION_ID } as never }],
    });
    cpMock.on(ListActionExecutionsCommand).resolves({ actionExecutionDetails: [{ ...deployAction, lastUpdateTime: new Date('2025-01-01T10:50:00Z') }] });
    await invoke(ecsEvent());
    expect(reason()).toMatch(/ended \(status none\) before this release's deployment reached production/);
    withGate();
    cpMock.on(GetPipelineStateCommand).resolves(pipelineState(undefined));
    await invoke(ecsEvent({ hookDetails: LATER }));
    expect(reason()).toMatch(/is not running \(status none\): this deployment was not started by the pipeline's release stage/);
  });

  test('a pipeline state without stages, or a GetParameter without a value, is handled (misconfiguration, no image)', async () => {
    cpMock.on(GetPipelineStateCommand).resolves({ $metadata: {} });
    await invoke(ecsEvent());
    expectFacts(reason(), ['misconfiguration', PIPELINE, STAGE]);
    ssmMock.on(GetParameterCommand).resolves({});
    cpMock.on(GetPipelineStateCommand).resolves(pipelineState('Succeeded'));
    deploymentsSinceDeploy([DEPLOYMENT, AFTER_RELEASE]);
    await expect(invoke(ecsEvent())).resolves.toEqual({ hookStatus: 'SUCCEEDED' });
    expect(decisions()[0]).toMatchObject({ productionImage: null, reason: 'a new image outside a release, and no approval gate configured: smoke test passed' });
  });

  test('the release stage running without a Deploy run (it has not started yet): no deployment is the release\'s, FAILED', async () => {
    cpMock.on(ListActionExecutionsCommand).resolves({ actionExecutionDetails: [{ ...deployAction, actionName: 'Other' }] });
    await expect(invoke(ecsEvent())).resolves.toEqual({ hookStatus: 'FAILED' });
    expect(ecsMock).not.toHaveReceivedCommand(ListServiceDeploymentsCommand);
    expect(decisions()[0]).toMatchObject({ releaseDeployment: false });
  });

  test('only the release stage\'s actions count: a later Deploy in another stage is not this release\'s start', async () => {
    cpMock.on(ListActionExecutionsCommand).resolves({ actionExecutionDetails: [deployAction, { ...deployAction, stageName: 'Other', startTime: new Date('2025-01-01T10:40:00Z') }] });
    await expect(invoke(ecsEvent())).resolves.toEqual({ hookStatus: 'SUCCEEDED' });
    expect(decisions()[0]).toMatchObject({ deployStartedAt: DEPLOY_STARTED.toISOString() });
  });

  test('an empty resourceArn cannot be the release\'s deployment', async () => {
    await expect(invoke(ecsEvent({ resourceArn: '' }))).resolves.toEqual({ hookStatus: 'FAILED' });
    expect(decisions()[0]).toMatchObject({ serviceDeploymentArn: null, releaseDeploymentArn: DEPLOYMENT });
  });

  test('a service ARN with more than cluster and service is not parsed (no deployment list)', async () => {
    const event = ecsEvent();
    await invoke({ ...event, executionDetails: { ...event.executionDetails, serviceArn: `${SERVICE_ARN}/extra` } });
    expect(ecsMock).not.toHaveReceivedCommand(ListServiceDeploymentsCommand);
  });

  test('reads at most 20 pages of ListActionExecutions and of ListServiceDeployments', async () => {
    cpMock.on(ListActionExecutionsCommand).resolves({ actionExecutionDetails: [deployAction], nextToken: 'more' });
    ecsMock.on(ListServiceDeploymentsCommand).resolves({ serviceDeployments: [{ serviceDeploymentArn: DEPLOYMENT, createdAt: CREATED }], nextToken: 'more' });
    await invoke(ecsEvent());
    expect(cpMock).toHaveReceivedCommandTimes(ListActionExecutionsCommand, 20);
    expect(ecsMock).toHaveReceivedCommandTimes(ListServiceDeploymentsCommand, 20);
  });

  test('IN_PROGRESS answers carry exactly the keys they know: no gate keys without a gate, no invocation count before the smoke test', async () => {
    ecsMock.on(DescribeServiceRevisionsCommand).rejects(awsError('ThrottlingException', 400));
    const answer = await releaseHook(ecsEvent(), context, { now: () => Date.parse(NOW) });
    expect(answer).toStrictEqual({ hookStatus: 'IN_PROGRESS', callBackDelay: 30, hookDetails: { awsErrorRetries: 1, startedAt: NOW } });
    greenRuns(NEW_IMAGE);
    ecsMock.on(ListServiceDeploymentsCommand).rejects(awsError('ThrottlingException', 400));
    const later = await releaseHook(ecsEvent(), context, { now: () => Date.parse(NOW) });
    expect(later).toStrictEqual({ hookStatus: 'IN_PROGRESS', callBackDelay: 30, hookDetails: { awsErrorRetries: 1, startedAt: NOW, smokeTest: 'passed' } });
  });

  test('counters that are not whole non-negative numbers count as absent', async () => {
    ecsMock.on(DescribeServiceRevisionsCommand).rejects(awsError('ThrottlingException', 400));
    for (const bad of [1.5, -1, '3']) {
      await expect(invoke(ecsEvent({ hookDetails: { awsErrorRetries: bad, [ECS_INVOCATIONS_KEY]: bad } }))).resolves.toEqual({
        hookStatus: 'IN_PROGRESS', callBackDelay: 30, hookDetails: { awsErrorRetries: 1 },
      });
    }
    await expect(invoke(ecsEvent({ hookDetails: { awsErrorRetries: 0, [ECS_INVOCATIONS_KEY]: 0 } }))).resolves.toEqual({
      hookStatus: 'IN_PROGRESS', callBackDelay: 30, hookDetails: { awsErrorRetries: 1, [ECS_INVOCATIONS_KEY]: 0 },
    });
  });

  test('a notified flag that is not a boolean counts as absent', async () => {
    withGate('InProgress');
    withNotification();
    await invoke(ecsEvent({ hookDetails: { ...LATER, notified: 'yes' } }));
    expect(snsMock).toHaveReceivedCommandTimes(PublishCommand, 1);
  });

  test('the AWS error after too many retries names the action and keeps the count', async () => {
    ecsMock.on(DescribeServiceRevisionsCommand).rejects(awsError('ThrottlingException', 400));
    await invoke(ecsEvent({ hookDetails: { awsErrorRetries: AWS_ERROR_MAX_RETRIES } }));
    expect(decisions()[0]).toMatchObject({
      reason: `ecs:DescribeServiceRevisions still failing after ${AWS_ERROR_MAX_RETRIES} retries`,
      action: 'ecs:DescribeServiceRevisions',
      awsErrorRetries: AWS_ERROR_MAX_RETRIES,
    });
    ecsMock.on(DescribeServiceRevisionsCommand).rejects(awsError('AccessDeniedException', 400));
    await invoke(ecsEvent());
    expect(decisions()[0]).toMatchObject({ reason: 'ecs:DescribeServiceRevisions failed with an error that retrying does not fix', action: 'ecs:DescribeServiceRevisions' });
  });

  test('the ready-for-review message, line by line', () => {
    const gate = {
      imageParameterName: PARAMETER,
      pipelineName: PIPELINE,
      stageName: STAGE,
      deployActionName: DEPLOY,
      timeLimitSeconds: TIME_LIMIT_SECONDS,
      actionName: ACTION,
    };
    const smokeTest = { passed: true, summary: 'all good', checks: [] } as never;
    expect(readyForReviewMessage({ ...gate, testUrl: TEST_URL }, NEW_IMAGE, smokeTest, EXECUTION_ID, NOW)).toEqual({
      subject: `Ready for review: ${PIPELINE}`,
      body: [
        `A new version released by pipeline ${PIPELINE} is ready for review on the test listener.`,
        '',
        `Image: ${NEW_IMAGE}`,
        `Test URL: ${TEST_URL}`,
        'Smoke test: passed (all good)',
        `Ready since: ${NOW}`,
        `Waiting for: approval action ${ACTION} in stage ${STAGE} of pipeline ${PIPELINE} (execution ${EXECUTION_ID})`,
        '',
        'Production traffic stays on the current version until the approval. Review the new version, then approve or reject the '
        + `action. An approval given before ${NOW} does not count: the release would roll back.`,
      ].join('\n'),
    });
    expect(readyForReviewMessage(gate, NEW_IMAGE, undefined, EXECUTION_ID, NOW).body.split('\n').slice(2, 4)).toEqual([`Image: ${NEW_IMAGE}`, 'Smoke test: passed']);
    const exactly = readyForReviewMessage({ ...gate, pipelineName: 'p'.repeat(SNS_SUBJECT_LIMIT - 'Ready for review: '.length) }, NEW_IMAGE, undefined, EXECUTION_ID, NOW);
    expect(exactly.subject).toBe(`Ready for review: ${'p'.repeat(SNS_SUBJECT_LIMIT - 'Ready for review: '.length)}`);
  });
});
