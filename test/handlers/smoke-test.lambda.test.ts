import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { CodeDeployClient, PutLifecycleEventHookExecutionStatusCommand } from '@aws-sdk/client-codedeploy';
import { CodePipelineClient, PutJobFailureResultCommand, PutJobSuccessResultCommand } from '@aws-sdk/client-codepipeline';
import { AwsClientStub, mockClient } from 'aws-sdk-client-mock';
import 'aws-sdk-client-mock-jest';
import { expectFacts } from './shared/facts';
import type {
  EcsLifecycleHookEvent,
  EcsLifecycleHookResponse,
  FetchLike,
  FetchResponseLike,
  SmokeTestConfig,
  SmokeTestResult,
} from '../../src/handlers/smoke-test.lambda';

// The handler creates its SDK clients when loaded, and on Node < 22 the SDK then emits a NodeVersionSupportWarning,
// which keeps a jest worker from exiting cleanly. The Lambda runtime is nodejs24.x, where the warning does not apply,
// so the tests switch it off before loading the handler.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
const {
  CODEPIPELINE_MESSAGE_LIMIT,
  ECS_CALLBACK_DELAY_SECONDS,
  ECS_INVOCATIONS_KEY,
  ECS_MAX_INVOCATIONS,
  codePipeline,
  handler,
  isEcsRollback,
  parseConfig,
  parseUserParameters,
  runSmokeTest,
  // eslint-disable-next-line @typescript-eslint/no-require-imports
}: typeof import('../../src/handlers/smoke-test.lambda') = require('../../src/handlers/smoke-test.lambda');

// ---------------------------------------------------------------------------------------------------------------
// Pure pieces, with an injected fetch and clock
// ---------------------------------------------------------------------------------------------------------------

const BASE = 'http://test-listener.example:8080';

function config(overrides: Partial<SmokeTestConfig> = {}): SmokeTestConfig {
  return {
    baseUrl: BASE,
    healthPath: '/healthcheck',
    expectedPhrase: 'Welcome',
    requestTimeoutMs: 1_000,
    attempts: 1,
    retryDelayMs: 2_000,
    ...overrides,
  };
}

function reply(status: number, body: string, headers: Record<string, string> = {}): FetchResponseLike {
  return { status, text: async () => body, headers: { get: (name: string) => headers[name.toLowerCase()] ?? null } };
}

type Answer = FetchResponseLike | Error | 'hang' | 'hang-ignoring-signal';

/**
 * A fetch that answers each path from a queue (the last answer repeats), and records the URLs it was asked for.
 * `hang` never answers but rejects when aborted, like the real fetch; `hang-ignoring-signal` never settles at all.
 */
function fakeFetch(answers: Record<string, Answer[]>) {
  const calls: string[] = [];
  const signals: AbortSignal[] = [];
  const fn = jest.fn<ReturnType<FetchLike>, Parameters<FetchLike>>(async (url, init) => {
    calls.push(url);
    signals.push(init.signal);
    const path = new URL(url).pathname;
    const queue = answers[path];
    if (!queue) throw new Error(`unexpected request to ${url}`);
    const answer = queue.length > 1 ? queue.shift()! : queue[0];
    if (answer === 'hang-ignoring-signal') return new Promise<FetchResponseLike>(() => undefined);
    if (answer === 'hang') {
      return new Promise<FetchResponseLike>((_resolve, reject) => {
        init.signal.addEventListener('abort', () => reject(new DOMException('This operation was aborted', 'AbortError')));
      });
    }
    if (answer instanceof Error) throw answer;
    return answer;
  });
  return { fetch: fn, calls, signals };
}

/** A clock that only moves when the code under test sleeps (or a fetch says it took time). */
function fakeClock(start = 1_000_000) {
  const clock = { t: start, sleeps: [] as number[] };
  return {
    clock,
    now: () => clock.t,
    sleep: async (ms: number) => {
      clock.sleeps.push(ms);
      clock.t += ms;
    },
  };
}

const HEALTHY = reply(200, '{"status":"ok","version":"1.2.3"}');
const HOME = reply(200, '<h1>Welcome to the sample service</h1>');

describe('runSmokeTest', () => {
  test('passes when the health check says ok and the home page contains the phrase, reporting the version', async () => {
    const { fetch, calls } = fakeFetch({ '/healthcheck': [HEALTHY], '/': [HOME] });
    const result = await runSmokeTest(config(), { fetch, ...fakeClock() });
    expect(result).toEqual({
      passed: true,
      checks: [
        { name: 'health', url: `${BASE}/healthcheck`, passed: true, status: 200, detail: 'GET /healthcheck 200 (version 1.2.3)' },
        { name: 'content', url: `${BASE}/`, passed: true, status: 200, detail: 'GET / contains "Welcome"' },
      ],
      summary: 'smoke test passed: GET /healthcheck 200 (version 1.2.3); GET / contains "Welcome"',
    });
    expect(calls).toEqual([`${BASE}/healthcheck`, `${BASE}/`]);
  });

  test('sends GET without following redirects, with its own abort signal', async () => {
    const { fetch } = fakeFetch({ '/healthcheck': [HEALTHY], '/': [HOME] });
    await runSmokeTest(config(), { fetch, ...fakeClock() });
    expect(fetch).toHaveBeenCalledWith(`${BASE}/healthcheck`, expect.objectContaining({ method: 'GET', redirect: 'manual' }));
    expect(fetch.mock.calls[0][1].signal).toBeInstanceOf(AbortSignal);
  });

  test('skips the home page when no phrase is expected', async () => {
    const { fetch, calls } = fakeFetch({ '/healthcheck': [reply(200, '{"status":"ok"}')] });
    const result = await runSmokeTest(config({ expectedPhrase: undefined }), { fetch, ...fakeClock() });
    expect(result.passed).toBe(true);
    expectFacts(result.summary, ['passed', 'GET', '/healthcheck', '200']);
    expect(calls).toEqual([`${BASE}/healthcheck`]);
  });

  test('fails when the home page does not contain the expected phrase', async () => {
    const { fetch } = fakeFetch({ '/healthcheck': [HEALTHY], '/': [reply(200, '<h1>Hello</h1>')] });
    const result = await runSmokeTest(config(), { fetch, ...fakeClock() });
    expect(result.passed).toBe(false);
    expect(result.checks[1]).toEqual({ name: 'content', url: `${BASE}/`, passed: false, status: 200, detail: 'GET / did not contain "Welcome" (200)' });
    expect(result.summary).toBe('smoke test failed: GET / did not contain "Welcome" (200)');
  });

  test('fails when the home page answers something other than 200', async () => {
    const { fetch } = fakeFetch({ '/healthcheck': [HEALTHY], '/': [reply(404, 'Not Found')] });
    const result = await runSmokeTest(config(), { fetch, ...fakeClock() });
    expect(result.summary).toBe('smoke test failed: GET / returned 404');
  });

  test('fails on a health check status 500 and does not test the home page of an unhealthy target', async () => {
    const { fetch, calls } = fakeFetch({ '/healthcheck': [reply(500, 'Internal Server Error')], '/': [HOME] });
    const result = await runSmokeTest(config(), { fetch, ...fakeClock() });
    expect(result).toEqual({
      passed: false,
      checks: [{ name: 'health', url: `${BASE}/healthcheck`, passed: false, status: 500, detail: 'GET /healthcheck returned 500' }],
      summary: 'smoke test failed: GET /healthcheck returned 500',
    });
    expect(calls).toEqual([`${BASE}/healthcheck`]);
  });

  test('fails on a redirect instead of following it, and says where it pointed', async () => {
    const { fetch } = fakeFetch({ '/healthcheck': [reply(301, '', { location: 'https://elsewhere.example/healthcheck' })] });
    const result = await runSmokeTest(config(), { fetch, ...fakeClock() });
    expectFacts(result.summary, ['failed', 'GET', '/healthcheck', '301', 'redirect', '//elsewhere.example/healthcheck']);
  });

  test.each([
    ['"status" is not ok', '{"status":"degraded","version":"1.2.3"}', 'GET /healthcheck 200 but "status" is "degraded", expected "status": "ok"'],
    ['"status" is missing', '{"version":"1.2.3"}', 'GET /healthcheck 200 but "status" is missing, expected "status": "ok"'],
    ['the JSON is not an object', '["ok"]', 'GET /healthcheck 200 but the body is ["ok"], expected "status": "ok"'],
    ['the body is not JSON', '<html>OK</html>', 'GET /healthcheck 200 but the body is not JSON: "<html>OK</html>"'],
  ])('fails when the health check answers 200 but %s', async (_why, body, detail) => {
    const { fetch } = fakeFetch({ '/healthcheck': [reply(200, body)], '/': [HOME] });
    const result = await runSmokeTest(config(), { fetch, ...fakeClock() });
    expect(result.passed).toBe(false);
    expect(result.checks).toEqual([{ name: 'health', url: `${BASE}/healthcheck`, passed: false, status: 200, detail }]);
  });

  test('fails on a network error, naming the cause that fetch hides behind "fetch failed"', async () => {
    const error = new TypeError('fetch failed', { cause: new Error('connect ECONNREFUSED 10.0.0.1:8080') });
    const { fetch } = fakeFetch({ '/healthcheck': [error] });
    const result = await runSmokeTest(config(), { fetch, ...fakeClock() });
    expect(result.checks[0].status).toBeUndefined();
    expectFacts(result.summary, ['failed', 'GET', '/healthcheck', 'failed', 'failed', 'ECONNREFUSED', '10.0.0.1:8080']);
  });

  test('times out a request that hangs, aborting it through its AbortController', async () => {
    const { fetch, signals } = fakeFetch({ '/healthcheck': ['hang'] });
    const started = Date.now();
    const result = await runSmokeTest(config({ requestTimeoutMs: 20 }), { fetch, sleep: async () => undefined });
    expect(Date.now() - started).toBeLessThan(1_000);
    expect(result.summary).toBe('smoke test failed: GET /healthcheck timed out after 20 ms');
    expect(signals[0].aborted).toBe(true);
  });

  test('times out even a fetch that ignores its abort signal', async () => {
    const { fetch } = fakeFetch({ '/healthcheck': [HEALTHY], '/': ['hang-ignoring-signal'] });
    const result = await runSmokeTest(config({ requestTimeoutMs: 20 }), { fetch, sleep: async () => undefined });
    expect(result.passed).toBe(false);
    expect(result.summary).toBe('smoke test failed: GET / timed out after 20 ms');
  });

  test('retries a failing run after the retry delay and passes on the 2nd attempt', async () => {
    const { fetch, calls } = fakeFetch({ '/healthcheck': [reply(503, 'Service Unavailable'), HEALTHY], '/': [HOME] });
    const clock = fakeClock();
    const result = await runSmokeTest(config({ attempts: 3, retryDelayMs: 2_000 }), { fetch, now: clock.now, sleep: clock.sleep });
    expect(result.passed).toBe(true);
    expect(calls).toEqual([`${BASE}/healthcheck`, `${BASE}/healthcheck`, `${BASE}/`]);
    expect(clock.clock.sleeps).toEqual([2_000]);
  });

  test('gives up after the configured attempts and says how many it made', async () => {
    const { fetch } = fakeFetch({ '/healthcheck': [reply(503, '')] });
    const clock = fakeClock();
    const result = await runSmokeTest(config({ attempts: 3 }), { fetch, now: clock.now, sleep: clock.sleep });
    expect(fetch).toHaveBeenCalledTimes(3);
    expect(clock.clock.sleeps).toEqual([2_000, 2_000]);
    expectFacts(result.summary, ['failed', 'GET', '/healthcheck', '503', '3']);
  });

  test('stops retrying when the next attempt would not fit before the Lambda deadline', async () => {
    const { fetch } = fakeFetch({ '/healthcheck': [reply(503, '')] });
    const clock = fakeClock(0);
    const result = await runSmokeTest(config({ attempts: 5, retryDelayMs: 2_000 }), {
      fetch,
      now: clock.now,
      sleep: clock.sleep,
      deadline: 5_000,
    });
    // Attempts at t=0, 2000 and 4000; a 4th would start at 6000, after the deadline.
    expect(fetch).toHaveBeenCalledTimes(3);
    expect(result.passed).toBe(false);
    expectFacts(result.summary, ['failed', 'GET', '/healthcheck', '503', '3', '5', 'deadline']);
  });

  test('shortens the request timeout to what is left before the Lambda deadline', async () => {
    const { fetch } = fakeFetch({ '/healthcheck': ['hang'] });
    const started = Date.now();
    const result = await runSmokeTest(config({ requestTimeoutMs: 60_000, attempts: 3 }), { fetch, deadline: Date.now() + 400 });
    expect(Date.now() - started).toBeLessThan(2_000);
    expect(fetch).toHaveBeenCalledTimes(1);
    expect(result.summary).toMatch(/^smoke test failed: GET \/healthcheck timed out after \d+ ms \(cut short by the Lambda deadline\)/);
  });

  test('sends no request at all when no time is left, and still returns a failed verdict', async () => {
    const { fetch } = fakeFetch({ '/healthcheck': [HEALTHY] });
    const clock = fakeClock(10_000);
    const result = await runSmokeTest(config(), { fetch, now: clock.now, sleep: clock.sleep, deadline: 10_100 });
    expect(fetch).not.toHaveBeenCalled();
    expect(result).toEqual({ passed: false, checks: [], summary: 'smoke test failed: no check could run before the Lambda deadline' });
  });
});

describe('parseConfig', () => {
  test('applies the defaults and drops the trailing slash of the base URL', () => {
    expect(parseConfig({ SMOKE_TEST_BASE_URL: 'http://my-alb-123.us-east-1.elb.amazonaws.com:8080/' })).toEqual({
      ok: true,
      value: {
        baseUrl: 'http://my-alb-123.us-east-1.elb.amazonaws.com:8080',
        healthPath: '/healthcheck',
        expectedPhrase: undefined,
        requestTimeoutMs: 5_000,
        attempts: 3,
        retryDelayMs: 2_000,
      },
    });
  });

  test('reads every setting from the environment', () => {
    const parsed = parseConfig({
      SMOKE_TEST_BASE_URL: 'https://test.example/app',
      SMOKE_TEST_HEALTH_PATH: '/health',
      SMOKE_TEST_EXPECTED_PHRASE: ' Welcome ',
      SMOKE_TEST_REQUEST_TIMEOUT_MS: '750',
      SMOKE_TEST_ATTEMPTS: '5',
      SMOKE_TEST_RETRY_DELAY_MS: '0',
    });
    expect(parsed).toEqual({
      ok: true,
      value: { baseUrl: 'https://test.example/app', healthPath: '/health', expectedPhrase: ' Welcome ', requestTimeoutMs: 750, attempts: 5, retryDelayMs: 0 },
    });
  });

  test('lets overrides win over the environment, and an empty expectedPhrase switch the phrase check off', () => {
    const parsed = parseConfig(
      { SMOKE_TEST_BASE_URL: 'http://env.example', SMOKE_TEST_EXPECTED_PHRASE: 'Welcome', SMOKE_TEST_HEALTH_PATH: '/h' },
      { baseUrl: 'http://override.example', healthPath: '/status', expectedPhrase: '' },
    );
    expect(parsed.ok && parsed.value).toMatchObject({ baseUrl: 'http://override.example', healthPath: '/status', expectedPhrase: undefined });
  });

  test.each([
    ['no base URL', {}, /SMOKE_TEST_BASE_URL is not set/],
    ['a blank base URL', { SMOKE_TEST_BASE_URL: '  ' }, /SMOKE_TEST_BASE_URL is not set/],
    ['a base URL that is not a URL', { SMOKE_TEST_BASE_URL: 'my-alb:8080' }, /SMOKE_TEST_BASE_URL must use http or https, got "my-alb:8080"/],
    ['a relative base URL', { SMOKE_TEST_BASE_URL: '/healthcheck' }, /SMOKE_TEST_BASE_URL must be an absolute http\(s\) URL, got "\/healthcheck"/],
    ['an ftp base URL', { SMOKE_TEST_BASE_URL: 'ftp://host.example' }, /SMOKE_TEST_BASE_URL must use http or https, got "ftp:\/\/host.example"/],
    ['a base URL with a query', { SMOKE_TEST_BASE_URL: 'http://host.example/?a=1' }, /must not contain a query or fragment/],
    ['a health path without leading slash', { SMOKE_TEST_BASE_URL: BASE, SMOKE_TEST_HEALTH_PATH: 'healthcheck' }, /SMOKE_TEST_HEALTH_PATH must start with "\/", got "healthcheck"/],
    ['zero attempts', { SMOKE_TEST_BASE_URL: BASE, SMOKE_TEST_ATTEMPTS: '0' }, /SMOKE_TEST_ATTEMPTS must be an integer between 1 and 20, got "0"/],
    ['a timeout that is not a number', { SMOKE_TEST_BASE_URL: BASE, SMOKE_TEST_REQUEST_TIMEOUT_MS: '5s' }, /SMOKE_TEST_REQUEST_TIMEOUT_MS .* got "5s"/],
    ['a negative retry delay', { SMOKE_TEST_BASE_URL: BASE, SMOKE_TEST_RETRY_DELAY_MS: '-1' }, /SMOKE_TEST_RETRY_DELAY_MS .* got "-1"/],
  ])('refuses %s', (_why, env, message) => {
    const parsed = parseConfig(env as Record<string, string>);
    expect(parsed.ok).toBe(false);
    expect(!parsed.ok && parsed.error).toMatch(message);
  });

  test('names the override, not the environment variable, when an override is bad', () => {
    const parsed = parseConfig({ SMOKE_TEST_BASE_URL: BASE }, { baseUrl: 'file:///etc/passwd', healthPath: 'x' });
    expect(!parsed.ok && parsed.error).toBe('baseUrl must use http or https, got "file:///etc/passwd"');
    const path = parseConfig({ SMOKE_TEST_BASE_URL: BASE }, { healthPath: 'x' });
    expect(!path.ok && path.error).toBe('healthPath must start with "/", got "x"');
  });
});

describe('parseUserParameters', () => {
  test.each([undefined, '', '  '])('treats %j as no overrides', (value) => {
    expect(parseUserParameters(value)).toEqual({ ok: true, value: {} });
  });

  test('reads baseUrl, healthPath and expectedPhrase', () => {
    expect(parseUserParameters('{"baseUrl":"http://x.example","healthPath":"/h","expectedPhrase":"Hi"}')).toEqual({
      ok: true,
      value: { baseUrl: 'http://x.example', healthPath: '/h', expectedPhrase: 'Hi' },
    });
  });

  test.each([
    ['invalid JSON', '{baseUrl: x}', /^UserParameters is not valid JSON \(.+\): "\{baseUrl: x\}"$/],
    ['a JSON array', '["http://x"]', /UserParameters must be a JSON object, got \["http:\/\/x"\]/],
    ['a JSON string', '"http://x"', /UserParameters must be a JSON object, got "http:\/\/x"/],
    ['a misspelt key', '{"baseURL":"http://x"}', /UserParameters has unknown key\(s\) "baseURL"; allowed: baseUrl, healthPath, expectedPhrase/],
    ['a value that is not a string', '{"healthPath":42}', /UserParameters.healthPath must be a string, got 42/],
    ['UserParameters that are not a string', { baseUrl: 'http://x' }, /UserParameters must be a string of JSON, got \{"baseUrl":"http:\/\/x"\}/],
  ])('refuses %s', (_why, value, message) => {
    const parsed = parseUserParameters(value);
    expect(!parsed.ok && parsed.error).toMatch(message);
  });
});

describe('isEcsRollback', () => {
  const GREEN = 'arn:aws:ecs:us-west-2:123456789012:service-revision/c/s/green';
  const BLUE = 'arn:aws:ecs:us-west-2:123456789012:service-revision/c/s/blue';
  const event = (lifecycleStage: string, weights: Partial<EcsLifecycleHookEvent['executionDetails']>): EcsLifecycleHookEvent => ({
    executionId: 'e',
    lifecycleStage,
    executionDetails: { targetServiceRevisionArn: GREEN, testTrafficWeights: {}, productionTrafficWeights: {}, ...weights },
  });

  test.each([
    ['production traffic shifting back to blue', event('PRODUCTION_TRAFFIC_SHIFT', { productionTrafficWeights: { [GREEN]: 0, [BLUE]: 100 } }), true],
    ['test traffic shifting back to blue', event('TEST_TRAFFIC_SHIFT', { testTrafficWeights: { [GREEN]: 0, [BLUE]: 100 } }), true],
    ['production traffic shifting to green', event('PRODUCTION_TRAFFIC_SHIFT', { productionTrafficWeights: { [GREEN]: 100, [BLUE]: 0 } }), false],
    ['test traffic shifting to green', event('TEST_TRAFFIC_SHIFT', { testTrafficWeights: { [GREEN]: 100, [BLUE]: 0 } }), false],
    // Before a normal production shift green is at 0 too: only the recurring stages are re-invoked on rollback.
    ['the stage before a production shift', event('PRE_PRODUCTION_TRAFFIC_SHIFT', { productionTrafficWeights: { [GREEN]: 0, [BLUE]: 100 } }), false],
    ['the stage after the test traffic shift', event('POST_TEST_TRAFFIC_SHIFT', {}), false],
  ])('%s -> %s', (_why, e, expected) => {
    expect(isEcsRollback(e)).toBe(expected);
  });
});

// ---------------------------------------------------------------------------------------------------------------
// The handler, against a real HTTP server on the loopback interface
// ---------------------------------------------------------------------------------------------------------------

type Route = (req: http.IncomingMessage, res: http.ServerResponse) => void;
const json = (status: number, body: unknown): Route => (_req, res) => {
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
};
const html = (status: number, body: string): Route => (_req, res) => {
  res.writeHead(status, { 'content-type': 'text/html' }).end(body);
};
const neverAnswer: Route = () => undefined;

let routes: Record<string, Route> = {};
const requests: string[] = [];
const server = http.createServer((req, res) => {
  requests.push(req.url ?? '');
  const route = routes[req.url ?? ''];
  if (route) route(req, res);
  else res.writeHead(404).end('not found');
});
let serverUrl = '';
/** A port nothing listens on. */
let closedPortUrl = '';

const SMOKE_ENV = [
  'SMOKE_TEST_BASE_URL',
  'SMOKE_TEST_HEALTH_PATH',
  'SMOKE_TEST_EXPECTED_PHRASE',
  'SMOKE_TEST_REQUEST_TIMEOUT_MS',
  'SMOKE_TEST_ATTEMPTS',
  'SMOKE_TEST_RETRY_DELAY_MS',
];
const savedEnv = { ...process.env };

beforeAll(async () => {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  serverUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const probe = http.createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  closedPortUrl = `http://127.0.0.1:${(probe.address() as AddressInfo).port}`;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  process.env = savedEnv;
});

let cpMock: AwsClientStub<CodePipelineClient>;
let cdMock: AwsClientStub<CodeDeployClient>;
let logSpy: jest.SpyInstance;
let errorSpy: jest.SpyInstance;

beforeEach(() => {
  cpMock = mockClient(CodePipelineClient);
  cdMock = mockClient(CodeDeployClient);
  cpMock.onAnyCommand().resolves({});
  cdMock.onAnyCommand().resolves({});
  logSpy = jest.spyOn(console, 'log').mockImplementation(() => undefined);
  errorSpy = jest.spyOn(console, 'error').mockImplementation(() => undefined);
  for (const name of SMOKE_ENV) delete process.env[name];
  process.env.SMOKE_TEST_BASE_URL = serverUrl;
  process.env.SMOKE_TEST_EXPECTED_PHRASE = 'Welcome';
  process.env.SMOKE_TEST_ATTEMPTS = '2';
  process.env.SMOKE_TEST_RETRY_DELAY_MS = '1';
  process.env.SMOKE_TEST_REQUEST_TIMEOUT_MS = '5000';
  routes = {
    '/healthcheck': json(200, { status: 'ok', version: '2.0.0' }),
    '/': html(200, '<h1>Welcome to the sample service</h1>'),
  };
  requests.length = 0;
});

afterEach(() => {
  cpMock.restore();
  cdMock.restore();
  jest.restoreAllMocks();
});

const context = { getRemainingTimeInMillis: () => 60_000 };

const pipelineEvent = (userParameters?: string) => ({
  'CodePipeline.job': {
    id: '11111111-abcd-1111-abcd-111111111111',
    accountId: '123456789012',
    data: {
      actionConfiguration: { configuration: { FunctionName: 'smoke-test', ...(userParameters === undefined ? {} : { UserParameters: userParameters }) } },
      inputArtifacts: [],
      outputArtifacts: [],
    },
  },
});
const JOB_ID = '11111111-abcd-1111-abcd-111111111111';

const codeDeployEvent = {
  DeploymentId: 'd-ABCDEF123',
  LifecycleEventHookExecutionId: 'eyJlbmNyeXB0ZWREYXRhIjoi',
};

const GREEN = 'arn:aws:ecs:us-west-2:123456789012:service-revision/my-cluster/my-service/9313423515462893900';
const BLUE = 'arn:aws:ecs:us-west-2:123456789012:service-revision/my-cluster/my-service/1920498462936580504';
/** The payload shape of "Lambda hooks for Amazon ECS service deployments" (Amazon ECS Developer Guide). */
const ecsEvent = (overrides: Partial<EcsLifecycleHookEvent> = {}): EcsLifecycleHookEvent => ({
  executionId: '3a0345ba-b029-404b-890d-7da2a4b266aa',
  lifecycleStage: 'POST_TEST_TRAFFIC_SHIFT',
  resourceArn: 'arn:aws:ecs:us-west-2:123456789012:service-deployment/my-cluster/my-service/EZe5RNVLH6PPzHXINuP28',
  executionDetails: {
    serviceArn: 'arn:aws:ecs:us-west-2:123456789012:service/my-cluster/my-service',
    targetServiceRevisionArn: GREEN,
    testTrafficWeights: {},
    productionTrafficWeights: {},
  },
  ...overrides,
});

/** The structured log lines the handler wrote with `console.log`. */
function loggedResults(): Array<{ invoker: string; result: SmokeTestResult }> {
  return logSpy.mock.calls
    .map(([line]) => JSON.parse(String(line)))
    .filter((entry) => entry.message === 'smoke test result');
}

describe('handler: direct invoke', () => {
  test('returns the passing result from a real server', async () => {
    const result = (await handler({}, context)) as SmokeTestResult;
    expect(result.passed).toBe(true);
    expectFacts(result.summary, ['passed', 'GET', '/healthcheck', '200', '2.0.0', 'GET', '"Welcome"']);
    expect(requests).toEqual(['/healthcheck', '/']);
  });

  test('returns a failed result instead of throwing, after the configured attempts', async () => {
    routes['/'] = html(200, '<h1>Hello</h1>');
    const result = (await handler({}, context)) as SmokeTestResult;
    expect(result.passed).toBe(false);
    expectFacts(result.summary, ['failed', 'GET', '"Welcome"', '200', '2']);
    expect(requests).toEqual(['/healthcheck', '/', '/healthcheck', '/']);
    expect(cpMock).not.toHaveReceivedAnyCommand();
    expect(cdMock).not.toHaveReceivedAnyCommand();
  });

  test('times out against a real server that never answers', async () => {
    routes['/healthcheck'] = neverAnswer;
    process.env.SMOKE_TEST_REQUEST_TIMEOUT_MS = '150';
    const started = Date.now();
    const result = (await handler({}, context)) as SmokeTestResult;
    expect(Date.now() - started).toBeLessThan(3_000);
    expectFacts(result.summary, ['failed', 'GET', '/healthcheck', 'timed out', '150', '2']);
  });

  test('reports a refused connection with its cause', async () => {
    process.env.SMOKE_TEST_BASE_URL = closedPortUrl;
    const result = (await handler({}, context)) as SmokeTestResult;
    expect(result.passed).toBe(false);
    expect(result.summary).toMatch(/GET \/healthcheck failed: fetch failed \(.*ECONNREFUSED.*\)/);
  });

  test('takes overrides from the event and ignores keys it does not know', async () => {
    routes['/status'] = json(200, { status: 'ok' });
    const result = (await handler({ healthPath: '/status', expectedPhrase: '', key1: 'value1' }, context)) as SmokeTestResult;
    expect(result.passed).toBe(true);
    expect(requests).toEqual(['/status']);
  });

  test('works without a Lambda context (no deadline)', async () => {
    const result = (await handler(undefined)) as SmokeTestResult;
    expect(result.passed).toBe(true);
  });
});

describe('handler: CodePipeline Lambda invoke action', () => {
  test('reports success with PutJobSuccessResult and nothing else', async () => {
    await expect(handler(pipelineEvent(), context)).resolves.toBeUndefined();
    expect(cpMock).toHaveReceivedCommandTimes(PutJobSuccessResultCommand, 1);
    expect(cpMock.commandCalls(PutJobSuccessResultCommand)[0].args[0].input).toEqual({ jobId: JOB_ID });
    expect(cpMock).not.toHaveReceivedCommand(PutJobFailureResultCommand);
    expect(loggedResults()).toEqual([expect.objectContaining({ invoker: 'CodePipeline', result: expect.objectContaining({ passed: true }) })]);
  });

  test('reports a failed check with PutJobFailureResult carrying the summary', async () => {
    routes['/healthcheck'] = json(500, { status: 'error' });
    await expect(handler(pipelineEvent(), context)).resolves.toBeUndefined();
    expect(cpMock.commandCalls(PutJobFailureResultCommand)[0].args[0].input).toEqual({
      jobId: JOB_ID,
      failureDetails: { type: 'JobFailed', message: 'smoke test failed: GET /healthcheck returned 500 (after 2 attempts)' },
    });
    expect(cpMock).not.toHaveReceivedCommand(PutJobSuccessResultCommand);
  });

  test('cuts the failure message to CodePipeline\'s 5000 characters, and logs it whole', async () => {
    const longPhrase = 'x'.repeat(6_000);
    await handler(pipelineEvent(JSON.stringify({ expectedPhrase: longPhrase })), context);
    const message = cpMock.commandCalls(PutJobFailureResultCommand)[0].args[0].input.failureDetails?.message ?? '';
    expect(message).toHaveLength(CODEPIPELINE_MESSAGE_LIMIT);
    expect(message.startsWith('smoke test failed: GET / did not contain "xxx')).toBe(true);
    expect(message.endsWith('…')).toBe(true);
    expect(loggedResults()[0].result.summary.length).toBeGreaterThan(6_000);
  });

  test('reports invalid UserParameters as a failure without testing anything', async () => {
    await handler(pipelineEvent('{not json'), context);
    const input = cpMock.commandCalls(PutJobFailureResultCommand)[0].args[0].input;
    expect(input.jobId).toBe(JOB_ID);
    expect(input.failureDetails?.type).toBe('JobFailed');
    expect(input.failureDetails?.message).toMatch(/^smoke test failed: invalid configuration: UserParameters is not valid JSON/);
    expect(requests).toEqual([]);
  });

  test('tests the base URL, health path and phrase given in UserParameters', async () => {
    process.env.SMOKE_TEST_BASE_URL = closedPortUrl; // would fail: proves the override is used
    routes['/internal/health'] = json(200, { status: 'ok', version: '3.1.4' });
    routes['/'] = html(200, 'Bonjour');
    const userParameters = JSON.stringify({ baseUrl: serverUrl, healthPath: '/internal/health', expectedPhrase: 'Bonjour' });
    await handler(pipelineEvent(userParameters), context);
    expect(requests).toEqual(['/internal/health', '/']);
    expect(cpMock).toHaveReceivedCommandWith(PutJobSuccessResultCommand, { jobId: JOB_ID });
    expectFacts(loggedResults()[0].result.summary, ['passed', 'GET', '/internal/health', '200', '3.1.4', 'GET', '"Bonjour"']);
  });

  test('reports an invalid base URL from the environment as a failure', async () => {
    process.env.SMOKE_TEST_BASE_URL = 'my-alb-123.us-east-1.elb.amazonaws.com';
    await handler(pipelineEvent(), context);
    expect(cpMock.commandCalls(PutJobFailureResultCommand)[0].args[0].input.failureDetails?.message).toBe(
      'smoke test failed: invalid configuration: SMOKE_TEST_BASE_URL must be an absolute http(s) URL, got "my-alb-123.us-east-1.elb.amazonaws.com"',
    );
  });

  test('rejects when CodePipeline denies access, after logging the verdict and the error', async () => {
    const denied = Object.assign(new Error('User is not authorized to perform: codepipeline:PutJobSuccessResult'), {
      name: 'AccessDeniedException',
      $fault: 'client',
      $metadata: {},
    });
    cpMock.on(PutJobSuccessResultCommand).rejects(denied);
    await expect(handler(pipelineEvent(), context)).rejects.toThrow(/not authorized/);
    expect(loggedResults()).toHaveLength(1);
    expect(errorSpy).toHaveBeenCalledTimes(1);
    const logged = JSON.parse(String(errorSpy.mock.calls[0][0]));
    expect(logged).toMatchObject({ level: 'ERROR', jobId: JOB_ID, error: { name: 'AccessDeniedException' } });
    // The verdict is logged before the reporting error.
    expect(logSpy.mock.invocationCallOrder[0]).toBeLessThan(errorSpy.mock.invocationCallOrder[0]);
  });

  test('gets a throttled PutJobSuccessResult through on the SDK\'s own retry', async () => {
    // Through the real client stack (retry, signing, deserializing); only the HTTP exchange is faked.
    cpMock.restore();
    const env = process.env;
    process.env = { ...env, AWS_REGION: 'us-east-1', AWS_ACCESS_KEY_ID: 'AKIAIOSFODNN7EXAMPLE', AWS_SECRET_ACCESS_KEY: 'not-a-real-secret' };
    const exchanges: string[] = [];
    codePipeline.middlewareStack.add(
      () => async (args) => {
        const target = String((args.request as { headers: Record<string, string> }).headers['x-amz-target']);
        exchanges.push(target);
        const throttled = exchanges.length === 1;
        const body = throttled ? { __type: 'ThrottlingException', message: 'Rate exceeded' } : {};
        return {
          response: {
            statusCode: throttled ? 400 : 200,
            headers: { 'content-type': 'application/x-amz-json-1.1', 'x-amzn-requestid': `req-${exchanges.length}` },
            body: new TextEncoder().encode(JSON.stringify(body)),
          },
        };
      },
      { step: 'deserialize', priority: 'low', name: 'fakeHttpExchange' },
    );
    try {
      await expect(handler(pipelineEvent(), context)).resolves.toBeUndefined();
    } finally {
      codePipeline.middlewareStack.remove('fakeHttpExchange');
      process.env = env;
    }
    expect(exchanges).toEqual(['CodePipeline_20150709.PutJobSuccessResult', 'CodePipeline_20150709.PutJobSuccessResult']);
    expect(errorSpy).not.toHaveBeenCalled();
  });
});

describe('handler: CodeDeploy lifecycle hook', () => {
  test('reports Succeeded', async () => {
    await expect(handler(codeDeployEvent, context)).resolves.toBeUndefined();
    expect(cdMock).toHaveReceivedCommandTimes(PutLifecycleEventHookExecutionStatusCommand, 1);
    expect(cdMock.commandCalls(PutLifecycleEventHookExecutionStatusCommand)[0].args[0].input).toEqual({
      deploymentId: 'd-ABCDEF123',
      lifecycleEventHookExecutionId: 'eyJlbmNyeXB0ZWREYXRhIjoi',
      status: 'Succeeded',
    });
    expect(cpMock).not.toHaveReceivedAnyCommand();
  });

  test('reports Failed when a check fails', async () => {
    routes['/healthcheck'] = json(200, { status: 'starting' });
    await handler(codeDeployEvent, context);
    expect(cdMock.commandCalls(PutLifecycleEventHookExecutionStatusCommand)[0].args[0].input).toEqual({
      deploymentId: 'd-ABCDEF123',
      lifecycleEventHookExecutionId: 'eyJlbmNyeXB0ZWREYXRhIjoi',
      status: 'Failed',
    });
    expect(loggedResults()[0].result.summary).toMatch(/"status" is "starting"/);
  });

  test('reports Failed for an invalid health path', async () => {
    process.env.SMOKE_TEST_HEALTH_PATH = 'healthcheck';
    await handler(codeDeployEvent, context);
    expect(cdMock).toHaveReceivedCommandWith(PutLifecycleEventHookExecutionStatusCommand, { status: 'Failed' });
    expectFacts(loggedResults()[0].result.summary, ['failed', 'invalid configuration', 'SMOKE_TEST_HEALTH_PATH', '"/"', '"healthcheck"']);
    expect(requests).toEqual([]);
  });

  test('reports Failed in time when the Lambda deadline leaves no room for a check', async () => {
    routes['/healthcheck'] = neverAnswer;
    const started = Date.now();
    await handler(codeDeployEvent, { getRemainingTimeInMillis: () => 3_100 });
    expect(Date.now() - started).toBeLessThan(1_000);
    expect(cdMock).toHaveReceivedCommandWith(PutLifecycleEventHookExecutionStatusCommand, { status: 'Failed' });
    expect(requests).toEqual([]);
  });

  test('rejects when CodeDeploy denies access, after logging the verdict', async () => {
    const denied = Object.assign(new Error('not authorized to perform: codedeploy:PutLifecycleEventHookExecutionStatus'), {
      name: 'AccessDeniedException',
    });
    cdMock.on(PutLifecycleEventHookExecutionStatusCommand).rejects(denied);
    await expect(handler(codeDeployEvent, context)).rejects.toBe(denied);
    expect(loggedResults()).toEqual([expect.objectContaining({ invoker: 'CodeDeploy' })]);
    expect(JSON.parse(String(errorSpy.mock.calls[0][0]))).toMatchObject({ deploymentId: 'd-ABCDEF123', status: 'Succeeded' });
  });
});

describe('handler: Amazon ECS deployment lifecycle hook', () => {
  test('answers SUCCEEDED when the checks pass, and calls no AWS API', async () => {
    await expect(handler(ecsEvent(), context)).resolves.toEqual({ hookStatus: 'SUCCEEDED' });
    expect(cpMock).not.toHaveReceivedAnyCommand();
    expect(cdMock).not.toHaveReceivedAnyCommand();
  });

  test('answers FAILED at once when a healthy target serves the wrong content', async () => {
    routes['/'] = html(200, 'Hello');
    await expect(handler(ecsEvent(), context)).resolves.toEqual({ hookStatus: 'FAILED' });
  });

  test('answers IN_PROGRESS with a callback delay while the target is not ready, counting invocations in hookDetails', async () => {
    routes['/healthcheck'] = html(503, 'Service Unavailable');
    const response = (await handler(ecsEvent({ hookDetails: { S3_BUCKET_NAME: 'unrelated' } }), context)) as EcsLifecycleHookResponse;
    expect(response).toEqual({ hookStatus: 'IN_PROGRESS', callBackDelay: ECS_CALLBACK_DELAY_SECONDS, hookDetails: { [ECS_INVOCATIONS_KEY]: 1 } });
    expect(requests).toEqual(['/healthcheck', '/healthcheck']);
  });

  test('answers IN_PROGRESS when the target does not answer at all', async () => {
    process.env.SMOKE_TEST_BASE_URL = closedPortUrl;
    const response = (await handler(ecsEvent({ hookDetails: { [ECS_INVOCATIONS_KEY]: 2 } }), context)) as EcsLifecycleHookResponse;
    expect(response).toEqual({ hookStatus: 'IN_PROGRESS', callBackDelay: ECS_CALLBACK_DELAY_SECONDS, hookDetails: { [ECS_INVOCATIONS_KEY]: 3 } });
  });

  test('answers FAILED once the last invocation still finds the target not ready', async () => {
    routes['/healthcheck'] = html(503, 'Service Unavailable');
    const event = ecsEvent({ hookDetails: { [ECS_INVOCATIONS_KEY]: ECS_MAX_INVOCATIONS - 1 } });
    await expect(handler(event, context)).resolves.toEqual({ hookStatus: 'FAILED' });
  });

  test('answers FAILED, not IN_PROGRESS, for a bad configuration', async () => {
    delete process.env.SMOKE_TEST_BASE_URL;
    await expect(handler(ecsEvent(), context)).resolves.toEqual({ hookStatus: 'FAILED' });
    expect(loggedResults()[0].result.summary).toBe(
      'smoke test failed: invalid configuration: SMOKE_TEST_BASE_URL is not set: the base URL of the test endpoint is required',
    );
  });

  test('takes baseUrl, healthPath and expectedPhrase from hookDetails', async () => {
    process.env.SMOKE_TEST_BASE_URL = closedPortUrl;
    routes['/ping'] = json(200, { status: 'ok' });
    routes['/'] = html(200, 'Hola');
    const hookDetails = { baseUrl: serverUrl, healthPath: '/ping', expectedPhrase: 'Hola' };
    await expect(handler(ecsEvent({ hookDetails }), context)).resolves.toEqual({ hookStatus: 'SUCCEEDED' });
    expect(requests).toEqual(['/ping', '/']);
  });

  test('answers SUCCEEDED without testing while ECS rolls the deployment back', async () => {
    routes['/healthcheck'] = html(503, 'Service Unavailable');
    const rollback = ecsEvent({
      lifecycleStage: 'PRODUCTION_TRAFFIC_SHIFT',
      executionDetails: { targetServiceRevisionArn: GREEN, testTrafficWeights: {}, productionTrafficWeights: { [GREEN]: 0, [BLUE]: 100 } },
    });
    await expect(handler(rollback, context)).resolves.toEqual({ hookStatus: 'SUCCEEDED' });
    expect(requests).toEqual([]);
  });
});
