import { CodeDeployClient, GetDeploymentCommand, PutLifecycleEventHookExecutionStatusCommand } from '@aws-sdk/client-codedeploy';
import { InvokeCommand, LambdaClient } from '@aws-sdk/client-lambda';
import type { InvokeCommandOutput } from '@aws-sdk/client-lambda';
import { AwsClientStub, mockClient } from 'aws-sdk-client-mock';
import 'aws-sdk-client-mock-jest';
import { expectFacts } from './shared/facts';
import type { PreTrafficProxyEvent } from '../../src/handlers/lambda-pre-traffic.lambda';
import { isThrottling } from '../../src/handlers/shared/retryable';

// The handler creates its SDK clients when loaded, and on Node < 22 the SDK then emits a NodeVersionSupportWarning,
// which keeps a jest worker from exiting cleanly. The Lambda runtime is nodejs24.x, where the warning does not apply,
// so the tests switch it off before loading the handler.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
const {
  REPORTING_MARGIN_MS,
  THROTTLE_RETRY_DELAYS_MS,
  USER_AGENT,
  buildProxyEvent,
  evaluate,
  handler,
  matchPath,
  parseDescription,
  parseRoutes,
  runPreTrafficHook,
  // eslint-disable-next-line @typescript-eslint/no-require-imports
}: typeof import('../../src/handlers/lambda-pre-traffic.lambda') = require('../../src/handlers/lambda-pre-traffic.lambda');

// ---------------------------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------------------------

const DEPLOYMENT_ID = 'd-ABCDEF123';
const HOOK_ID = 'eyJlbmNyeXB0ZWREYXRhIjoi';
const FUNCTION_NAME = 'api-GetSleepSecs-1A2B3C4D';
const event = { DeploymentId: DEPLOYMENT_ID, LifecycleEventHookExecutionId: HOOK_ID };
const context = { getRemainingTimeInMillis: () => 60_000 };

const DESCRIPTION = {
  functionId: 'GetSleepSecs',
  functionName: FUNCTION_NAME,
  aliasName: 'live',
  targetVersion: '7',
  previousVersion: '6',
};

const ROUTES = {
  GetSleepSecs: { method: 'GET', path: '/sleep/{secs}', smokeTestPath: '/sleep/0', expectedPhrase: 'slept' },
  GetHealth: { method: 'GET', path: '/health' },
  GetItem: { method: 'GET', path: '/items/{id}' },
  HeadItems: { method: 'HEAD', path: '/items' },
  AnyProxy: { method: 'ANY', path: '/files/{proxy+}', smokeTestPath: '/files/a/b.txt' },
  PostItem: { method: 'POST', path: '/items', smokeTestPath: '/items' },
};

/** An `Invoke` payload, as the SDK returns it. */
function payload(value: unknown): InvokeCommandOutput['Payload'] {
  return new TextEncoder().encode(typeof value === 'string' ? value : JSON.stringify(value)) as InvokeCommandOutput['Payload'];
}

function invokeOutput(value: unknown, extra: Partial<InvokeCommandOutput> = {}): Partial<InvokeCommandOutput> {
  return { StatusCode: 200, ExecutedVersion: '7', Payload: payload(value), ...extra };
}

function awsError(name: string, message: string, httpStatusCode: number): Error {
  return Object.assign(new Error(message), { name, $fault: 'client', $metadata: { httpStatusCode } });
}

let cdMock: AwsClientStub<CodeDeployClient>;
let lambdaMock: AwsClientStub<LambdaClient>;
let logSpy: jest.SpyInstance;
let errorSpy: jest.SpyInstance;
const savedRoutes = process.env.ROUTES;

function givenDescription(description: unknown): void {
  cdMock.on(GetDeploymentCommand).resolves({
    deploymentInfo: { deploymentId: DEPLOYMENT_ID, computePlatform: 'Lambda', ...(description === undefined ? {} : { description: description as string }) },
  });
}

function givenDeployment(overrides: Record<string, unknown> = {}): void {
  givenDescription(JSON.stringify({ ...DESCRIPTION, ...overrides }));
}

beforeEach(() => {
  cdMock = mockClient(CodeDeployClient);
  lambdaMock = mockClient(LambdaClient);
  cdMock.on(PutLifecycleEventHookExecutionStatusCommand).resolves({ lifecycleEventHookExecutionId: HOOK_ID });
  givenDeployment();
  lambdaMock.on(InvokeCommand).resolves(invokeOutput({ statusCode: 200, headers: {}, body: '{"message":"slept 0 seconds"}' }));
  logSpy = jest.spyOn(console, 'log').mockImplementation(() => undefined);
  errorSpy = jest.spyOn(console, 'error').mockImplementation(() => undefined);
  process.env.ROUTES = JSON.stringify(ROUTES);
});

afterEach(() => {
  cdMock.restore();
  lambdaMock.restore();
  jest.restoreAllMocks();
});

afterAll(() => {
  if (savedRoutes === undefined) delete process.env.ROUTES;
  else process.env.ROUTES = savedRoutes;
});

/** The structured log lines the handler wrote with `console.log`. */
function logLines(): Array<Record<string, unknown>> {
  return logSpy.mock.calls.map(([line]) => JSON.parse(String(line)));
}

function resultLog(): Record<string, unknown> {
  const lines = logLines().filter((line) => line.message === 'pre-traffic test result');
  expect(lines).toHaveLength(1);
  return lines[0];
}

function expectReported(status: 'Succeeded' | 'Failed'): void {
  expect(cdMock).toHaveReceivedCommandTimes(PutLifecycleEventHookExecutionStatusCommand, 1);
  expect(cdMock.commandCalls(PutLifecycleEventHookExecutionStatusCommand)[0].args[0].input).toEqual({
    deploymentId: DEPLOYMENT_ID,
    lifecycleEventHookExecutionId: HOOK_ID,
    status,
  });
}

/** The proxy event sent with the n-th `Invoke`. */
function sentEvent(n = 0): PreTrafficProxyEvent {
  const input = lambdaMock.commandCalls(InvokeCommand)[n].args[0].input;
  return JSON.parse(new TextDecoder().decode(input.Payload as Uint8Array));
}

// ---------------------------------------------------------------------------------------------------------------
// Pure helpers
// ---------------------------------------------------------------------------------------------------------------

describe('parseDescription', () => {
  test('reads the release controller description', () => {
    expect(parseDescription(JSON.stringify(DESCRIPTION))).toEqual({ ok: true, value: DESCRIPTION });
    expect(parseDescription('{"functionId":"F","functionName":"fn","targetVersion":"12"}')).toEqual({
      ok: true,
      value: { functionId: 'F', functionName: 'fn', targetVersion: '12' },
    });
  });

  test.each([
    [undefined, /has no description .* got missing/],
    ['', /has no description/],
    ['Deployed by CloudFormation', /is not JSON .*"Deployed by CloudFormation"/],
    ['["GetSleepSecs"]', /must be a JSON object, got \["GetSleepSecs"\]/],
    ['{"functionName":"fn","targetVersion":"7"}', /has no functionId \(a non-empty string\), got missing/],
    ['{"functionId":"F","functionName":"","targetVersion":"7"}', /has no functionName/],
    ['{"functionId":"F","functionName":"fn","targetVersion":7}', /has no targetVersion .* got 7/],
    ['{"functionId":"F","functionName":"fn","targetVersion":"$LATEST"}', /targetVersion must be a published version number, got "\$LATEST"/],
    ['{"functionId":"F","functionName":"fn","targetVersion":"7","aliasName":1}', /aliasName must be a string/],
  ])('rejects %j', (description, error) => {
    const parsed = parseDescription(description);
    expect(parsed.ok).toBe(false);
    expect(!parsed.ok && parsed.error).toMatch(error);
  });
});

describe('parseRoutes', () => {
  test('reads the routes, upper-casing methods and dropping an empty phrase', () => {
    const parsed = parseRoutes(JSON.stringify({ A: { method: 'get', path: '/a/{id}', smokeTestPath: '/a/1?x=1', expectedPhrase: '' } }));
    expect(parsed).toEqual({ ok: true, value: { A: { method: 'GET', path: '/a/{id}', smokeTestPath: '/a/1?x=1' } } });
    expect(parseRoutes(JSON.stringify(ROUTES))).toEqual({ ok: true, value: ROUTES });
    expect(parseRoutes('{}')).toEqual({ ok: true, value: {} });
  });

  test.each([
    [undefined, 'ROUTES is not set'],
    ['{not json', /^ROUTES is not valid JSON/],
    ['[]', /^ROUTES must be a JSON object keyed by functionId, got \[\]/],
    ['{"A":"GET /a"}', /^ROUTES\["A"\] must be an object/],
    ['{"A":{"path":"/a"}}', /^ROUTES\["A"\]\.method must be a string, got missing/],
    ['{"A":{"method":"FETCH","path":"/a"}}', /^ROUTES\["A"\]\.method must be one of GET, HEAD, POST, .* got "FETCH"/],
    ['{"A":{"method":"GET","path":"a"}}', /^ROUTES\["A"\]\.path must start with "\/"/],
    ['{"A":{"method":"GET","path":"/a/{p+}/b"}}', /greedy \{name\+\} parameter as its last segment/],
    ['{"A":{"method":"GET","path":"/a/x{id}"}}', /parameters as whole segments/],
    ['{"A":{"method":"GET","path":"/a/"}}', /trailing/],
    ['{"A":{"method":"GET","path":"/a/{id}","smokeTestPath":"/b/1"}}', /smokeTestPath "\/b\/1" does not match the route path "\/a\/\{id\}"/],
    ['{"A":{"method":"GET","path":"/a/{id}","smokeTestPath":"/a/{id}"}}', /smokeTestPath must be a concrete path/],
    ['{"A":{"method":"GET","path":"/a","expectedPhrase":1}}', /expectedPhrase must be a string, got 1/],
  ])('rejects %j', (raw, error) => {
    const parsed = parseRoutes(raw);
    expect(parsed.ok).toBe(false);
    expect(!parsed.ok && parsed.error).toMatch(error);
  });
});

describe('matchPath', () => {
  test.each([
    ['/sleep/{secs}', '/sleep/0', { secs: '0' }],
    ['/users/{userId}/orders/{orderId}', '/users/u1/orders/o%202', { userId: 'u1', orderId: 'o%202' }],
    ['/files/{proxy+}', '/files/a/b.txt', { proxy: 'a/b.txt' }],
    ['/health', '/health', {}],
    ['/', '/', {}],
  ])('%s matches %s', (template, path, params) => {
    expect(matchPath(template, path)).toEqual(params);
  });

  test.each([
    ['/sleep/{secs}', '/sleep'],
    ['/sleep/{secs}', '/sleep/'],
    ['/sleep/{secs}', '/sleep/0/1'],
    ['/sleep/{secs}', '/wake/0'],
    ['/files/{proxy+}', '/files'],
    ['/health', '/health/'],
    ['/health', 'health'],
  ])('%s does not match %s', (template, path) => {
    expect(matchPath(template, path)).toBeUndefined();
  });
});

describe('buildProxyEvent', () => {
  test('builds a REST proxy GET event with the path parameters', () => {
    expect(buildProxyEvent('/sleep/{secs}', '/sleep/0', DEPLOYMENT_ID)).toEqual({
      resource: '/sleep/{secs}',
      path: '/sleep/0',
      httpMethod: 'GET',
      headers: { 'user-agent': USER_AGENT },
      multiValueHeaders: { 'user-agent': [USER_AGENT] },
      queryStringParameters: null,
      multiValueQueryStringParameters: null,
      pathParameters: { secs: '0' },
      stageVariables: null,
      requestContext: {
        resourcePath: '/sleep/{secs}',
        httpMethod: 'GET',
        path: '/sleep/0',
        stage: 'pre-traffic',
        requestId: DEPLOYMENT_ID,
        identity: { sourceIp: '127.0.0.1', userAgent: USER_AGENT },
      },
      body: null,
      isBase64Encoded: false,
    });
    expect(USER_AGENT).toBe('cdk-delivery-pipelines pre-traffic test');
  });

  test('has null pathParameters without parameters, and reads a query string', () => {
    const built = buildProxyEvent('/items', '/items?limit=1&tag=a&tag=b', 'r');
    expect(built.pathParameters).toBeNull();
    expect(built.path).toBe('/items');
    expect(built.queryStringParameters).toEqual({ limit: '1', tag: 'b' });
    expect(built.multiValueQueryStringParameters).toEqual({ limit: ['1'], tag: ['a', 'b'] });
  });

  test('throws when the path does not match the template', () => {
    expect(() => buildProxyEvent('/sleep/{secs}', '/wake/0', 'r')).toThrow('"/wake/0" does not match the route path "/sleep/{secs}"');
  });
});

describe('evaluate', () => {
  const out = (value: unknown, functionError?: string) => ({ Payload: payload(value), FunctionError: functionError });

  test('passes a 2xx or 4xx answer, with the phrase when one is expected', () => {
    expect(evaluate(out({ statusCode: 200, body: 'Welcome home' }), 'Welcome')).toEqual({ passed: true, statusCode: 200, detail: 'answered 200, body contains "Welcome"' });
    expect(evaluate(out({ statusCode: 404, body: '{"message":"not found"}' }))).toEqual({ passed: true, statusCode: 404, detail: 'answered 404' });
    expect(evaluate(out({ statusCode: 204 }))).toEqual({ passed: true, statusCode: 204, detail: 'answered 204' });
  });

  test('decodes a base64 body before looking for the phrase', () => {
    const body = Buffer.from('<h1>Welcome</h1>').toString('base64');
    expect(evaluate(out({ statusCode: 200, body, isBase64Encoded: true }), 'Welcome').passed).toBe(true);
    expect(evaluate(out({ statusCode: 200, body, isBase64Encoded: false }), 'Welcome').passed).toBe(false);
  });

  test.each([
    [{ statusCode: 502, body: 'bad gateway' }, undefined, 'answered 502: "bad gateway"'],
    [{ statusCode: 200, body: 'Hello' }, 'Welcome', 'answered 200 but the body does not contain "Welcome": "Hello"'],
    [{ statusCode: 200 }, 'Welcome', 'answered 200 but the body does not contain "Welcome": ""'],
    [{ statusCode: '200', body: 'ok' }, undefined, /not an API Gateway proxy response \(no numeric statusCode\)/],
    [[1, 2], undefined, /not an API Gateway proxy response/],
    [null, undefined, /not an API Gateway proxy response/],
    [{ statusCode: 42 }, undefined, "the payload's statusCode 42 is not an HTTP status"],
    [{ statusCode: 200, body: { message: 'ok' } }, undefined, /body that is not a string \(API Gateway answers 502 to that\)/],
    ['plain text', undefined, 'the payload is not JSON, so not an API Gateway proxy response: "plain text"'],
  ])('fails %j (phrase %j)', (value, phrase, detail) => {
    const text = typeof value === 'string' ? value : JSON.stringify(value);
    const evaluation = evaluate({ Payload: new TextEncoder().encode(text) }, phrase);
    expect(evaluation.passed).toBe(false);
    expect(evaluation.detail).toMatch(detail);
  });

  test('fails a FunctionError, with the error type and message', () => {
    const evaluation = evaluate(out({ errorType: 'TypeError', errorMessage: 'boom', trace: ['at x'] }, 'Unhandled'));
    expect(evaluation).toEqual({
      passed: false,
      detail: 'the function failed (FunctionError Unhandled): TypeError: boom',
      errorType: 'TypeError',
      errorMessage: 'boom',
    });
    expect(evaluate({ FunctionError: 'Unhandled', Payload: new TextEncoder().encode('oops') }).detail).toBe(
      'the function failed (FunctionError Unhandled): payload "oops"',
    );
  });

  test('fails an empty payload', () => {
    expect(evaluate({}).passed).toBe(false);
  });
});

describe('isThrottling', () => {
  test.each([
    [{ name: 'TooManyRequestsException' }, true],
    [{ name: 'EC2ThrottledException' }, true],
    [{ name: 'ThrottlingException' }, true],
    [{ name: 'Whatever', $retryable: { throttling: true } }, true],
    [{ name: 'Whatever', $metadata: { httpStatusCode: 429 } }, true],
    [{ name: 'ResourceConflictException', $metadata: { httpStatusCode: 409 } }, false],
    [{ name: 'ServiceException', $fault: 'server', $metadata: { httpStatusCode: 500 } }, false],
    [{ name: 'AccessDeniedException' }, false],
    ['TooManyRequestsException', false],
    [null, false],
  ])('%j → %s', (err, expected) => {
    expect(isThrottling(err)).toBe(expected);
  });
});

// ---------------------------------------------------------------------------------------------------------------
// The hook
// ---------------------------------------------------------------------------------------------------------------

describe('handler: invokes the new version', () => {
  test('reports Succeeded for 200 with the phrase, invoking the target version with the proxy event', async () => {
    await expect(handler(event, context)).resolves.toEqual({
      status: 'Succeeded',
      reason: `GET /sleep/0 on ${FUNCTION_NAME}:7 answered 200, body contains "slept"`,
      invoked: true,
    });
    expect(cdMock).toHaveReceivedCommandTimes(GetDeploymentCommand, 1);
    expect(cdMock).toHaveReceivedCommandWith(GetDeploymentCommand, { deploymentId: DEPLOYMENT_ID });
    expect(lambdaMock).toHaveReceivedCommandTimes(InvokeCommand, 1);
    expect(lambdaMock).toHaveReceivedCommandWith(InvokeCommand, {
      FunctionName: FUNCTION_NAME,
      Qualifier: '7',
      InvocationType: 'RequestResponse',
    });
    expect(Object.keys(lambdaMock.commandCalls(InvokeCommand)[0].args[0].input).sort()).toEqual(['FunctionName', 'InvocationType', 'Payload', 'Qualifier']);
    expect(sentEvent()).toEqual(buildProxyEvent('/sleep/{secs}', '/sleep/0', DEPLOYMENT_ID));
    expect(sentEvent()).toMatchObject({ httpMethod: 'GET', path: '/sleep/0', resource: '/sleep/{secs}', pathParameters: { secs: '0' } });
    expectReported('Succeeded');
    expect(resultLog()).toMatchObject({
      level: 'INFO',
      deploymentId: DEPLOYMENT_ID,
      functionId: 'GetSleepSecs',
      functionName: FUNCTION_NAME,
      targetVersion: '7',
      previousVersion: '6',
      aliasName: 'live',
      method: 'GET',
      smokeTestPath: '/sleep/0',
      statusCode: 200,
      executedVersion: '7',
      status: 'Succeeded',
    });
    expect(errorSpy).not.toHaveBeenCalled();
  });

  test('counts a 404 as a valid answer', async () => {
    lambdaMock.on(InvokeCommand).resolves(invokeOutput({ statusCode: 404, body: '{"message":"no such record; slept"}' }));
    await expect(handler(event, context)).resolves.toMatchObject({ status: 'Succeeded' });
    expectReported('Succeeded');
  });

  test('reports Failed for a 500', async () => {
    lambdaMock.on(InvokeCommand).resolves(invokeOutput({ statusCode: 500, body: '{"message":"Internal Server Error"}' }));
    await expect(handler(event, context)).resolves.toEqual({
      status: 'Failed',
      reason: `GET /sleep/0 on ${FUNCTION_NAME}:7 answered 500: "{\\"message\\":\\"Internal Server Error\\"}"`,
      invoked: true,
    });
    expectReported('Failed');
    expect(resultLog()).toMatchObject({ level: 'WARN', statusCode: 500, status: 'Failed' });
  });

  test('reports Failed for a FunctionError, logging the error message', async () => {
    lambdaMock.on(InvokeCommand).resolves(invokeOutput(
      { errorType: 'Runtime.ImportModuleError', errorMessage: "Error: Cannot find module 'index'", trace: [] },
      { FunctionError: 'Unhandled' },
    ));
    const result = await handler(event, context);
    expect(result.status).toBe('Failed');
    expectFacts(result.reason, ['GET', '/sleep/0', FUNCTION_NAME, '7', 'failed', 'FunctionError', 'ImportModuleError']);
    expectReported('Failed');
    expect(resultLog()).toMatchObject({ errorType: 'Runtime.ImportModuleError', errorMessage: "Error: Cannot find module 'index'" });
  });

  test('reports Failed when the body lacks the expected phrase', async () => {
    lambdaMock.on(InvokeCommand).resolves(invokeOutput({ statusCode: 200, body: 'awake' }));
    const result = await handler(event, context);
    expect(result).toMatchObject({ status: 'Failed', invoked: true });
    expect(result.reason).toMatch(/answered 200 but the body does not contain "slept": "awake"$/);
    expectReported('Failed');
  });

  test('decodes a base64 body', async () => {
    const body = Buffer.from('{"message":"slept 0 seconds"}').toString('base64');
    lambdaMock.on(InvokeCommand).resolves(invokeOutput({ statusCode: 200, body, isBase64Encoded: true }));
    await expect(handler(event, context)).resolves.toMatchObject({ status: 'Succeeded' });
    expectReported('Succeeded');
  });

  test('reports Failed for a payload that is not JSON', async () => {
    lambdaMock.on(InvokeCommand).resolves(invokeOutput('Hello from Lambda'));
    const result = await handler(event, context);
    expect(result.status).toBe('Failed');
    expect(result.reason).toMatch(/the payload is not JSON, so not an API Gateway proxy response: "Hello from Lambda"$/);
    expectReported('Failed');
  });

  test('invokes a route without parameters at its own path', async () => {
    givenDeployment({ functionId: 'GetHealth' });
    lambdaMock.on(InvokeCommand).resolves(invokeOutput({ statusCode: 200, body: 'ok' }));
    await expect(handler(event, context)).resolves.toMatchObject({ status: 'Succeeded', invoked: true });
    expect(sentEvent()).toMatchObject({ resource: '/health', path: '/health', httpMethod: 'GET', pathParameters: null });
  });

  test('invokes HEAD and ANY routes as GET', async () => {
    givenDeployment({ functionId: 'HeadItems' });
    await handler(event, context);
    givenDeployment({ functionId: 'AnyProxy' });
    await handler(event, context);
    expect(lambdaMock).toHaveReceivedCommandTimes(InvokeCommand, 2);
    expect(sentEvent(0)).toMatchObject({ resource: '/items', path: '/items', httpMethod: 'GET' });
    expect(sentEvent(1)).toMatchObject({ resource: '/files/{proxy+}', path: '/files/a/b.txt', httpMethod: 'GET', pathParameters: { proxy: 'a/b.txt' } });
  });
});

describe('handler: succeeds without invoking', () => {
  test('a POST route, which could change data', async () => {
    givenDeployment({ functionId: 'PostItem' });
    await expect(handler(event, context)).resolves.toEqual({
      status: 'Succeeded',
      reason: 'not invoked: POST /items could change data, only GET, HEAD and ANY routes are smoke-tested',
      invoked: false,
    });
    expect(lambdaMock).not.toHaveReceivedCommand(InvokeCommand);
    expectReported('Succeeded');
    expect(resultLog()).toMatchObject({ functionId: 'PostItem', method: 'POST', reason: expect.stringContaining('not invoked') });
  });

  test('a route with path parameters and no smokeTestPath', async () => {
    givenDeployment({ functionId: 'GetItem' });
    await expect(handler(event, context)).resolves.toEqual({
      status: 'Succeeded',
      reason: 'not smoke-tested: /items/{id} has path parameters and the route has no smokeTestPath',
      invoked: false,
    });
    expect(lambdaMock).not.toHaveReceivedCommand(InvokeCommand);
    expectReported('Succeeded');
    expect(resultLog().reason).toMatch(/not smoke-tested/);
  });
});

describe('handler: reports Failed without invoking', () => {
  test.each([
    ['no description', undefined, /^the deployment has no description/],
    ['a description that is not JSON', 'Deployed by CloudFormation', /^the deployment description is not JSON/],
    ['a description without targetVersion', '{"functionId":"GetSleepSecs","functionName":"fn"}', /has no targetVersion/],
  ])('%s', async (_name, description, reason) => {
    givenDescription(description);
    const result = await handler(event, context);
    expect(result).toMatchObject({ status: 'Failed', invoked: false });
    expect(result.reason).toMatch(reason);
    expect(lambdaMock).not.toHaveReceivedCommand(InvokeCommand);
    expectReported('Failed');
  });

  test('an unknown functionId', async () => {
    givenDeployment({ functionId: 'DeleteEverything' });
    const result = await handler(event, context);
    expect(result.status).toBe('Failed');
    expectFacts(result.reason, ['ROUTES', '"DeleteEverything"', 'GetSleepSecs', 'GetHealth', 'GetItem', 'HeadItems', 'AnyProxy', 'PostItem']);
    expect(lambdaMock).not.toHaveReceivedCommand(InvokeCommand);
    expectReported('Failed');
  });

  test('a functionId that only exists on Object.prototype', async () => {
    givenDeployment({ functionId: 'toString' });
    await expect(handler(event, context)).resolves.toMatchObject({ status: 'Failed' });
    expectReported('Failed');
  });

  test.each([
    ['unset', undefined, 'invalid configuration: ROUTES is not set'],
    ['not JSON', '{"GetSleepSecs":', /^invalid configuration: ROUTES is not valid JSON/],
    ['a bad route', '{"GetSleepSecs":{"method":"GET","path":"/sleep/{secs}","smokeTestPath":"/wake/0"}}', /does not match the route path/],
  ])('ROUTES %s', async (_name, routes, reason) => {
    if (routes === undefined) delete process.env.ROUTES;
    else process.env.ROUTES = routes;
    const result = await handler(event, context);
    expect(result.status).toBe('Failed');
    expect(result.reason).toMatch(reason);
    expect(lambdaMock).not.toHaveReceivedCommand(InvokeCommand);
    expectReported('Failed');
  });

  test('GetDeployment denied', async () => {
    cdMock.on(GetDeploymentCommand).rejects(awsError('AccessDeniedException', 'User is not authorized to perform: codedeploy:GetDeployment', 400));
    const result = await handler(event, context);
    expect(result).toEqual({
      status: 'Failed',
      reason: `codedeploy:GetDeployment ${DEPLOYMENT_ID} failed: AccessDeniedException: User is not authorized to perform: codedeploy:GetDeployment`,
      invoked: false,
    });
    expect(lambdaMock).not.toHaveReceivedCommand(InvokeCommand);
    expectReported('Failed');
  });

  test('no time left before the deadline to invoke', async () => {
    const started = Date.now();
    const result = await handler(event, { getRemainingTimeInMillis: () => REPORTING_MARGIN_MS + 100 });
    expect(Date.now() - started).toBeLessThan(1_000);
    expect(result.status).toBe('Failed');
    expect(result.reason).toMatch(/no time left before the Lambda deadline/);
    expect(lambdaMock).not.toHaveReceivedCommand(InvokeCommand);
    expectReported('Failed');
  });
});

describe('handler: invoke errors', () => {
  const throttled = () => awsError('TooManyRequestsException', 'Rate Exceeded.', 429);

  test('retries throttling twice after short pauses, then succeeds', async () => {
    lambdaMock.on(InvokeCommand)
      .rejectsOnce(throttled())
      .rejectsOnce(throttled())
      .resolves(invokeOutput({ statusCode: 200, body: 'slept' }));
    const sleeps: number[] = [];
    const result = await runPreTrafficHook(event, { sleep: async (ms) => { sleeps.push(ms); } });
    expect(result.status).toBe('Succeeded');
    expect(sleeps).toEqual([...THROTTLE_RETRY_DELAYS_MS]);
    expect(lambdaMock).toHaveReceivedCommandTimes(InvokeCommand, 3);
    expect(lambdaMock).toHaveReceivedNthSpecificCommandWith(3, InvokeCommand, { FunctionName: FUNCTION_NAME, Qualifier: '7' });
    expectReported('Succeeded');
    expect(logLines().filter((line) => line.message === 'lambda:Invoke throttled: trying again')).toHaveLength(2);
  });

  test('retries throttling through the handler with real pauses', async () => {
    lambdaMock.on(InvokeCommand).rejectsOnce(throttled()).resolves(invokeOutput({ statusCode: 200, body: 'slept' }));
    await expect(handler(event, context)).resolves.toMatchObject({ status: 'Succeeded' });
    expect(lambdaMock).toHaveReceivedCommandTimes(InvokeCommand, 2);
  });

  test('reports Failed when throttling lasts', async () => {
    lambdaMock.on(InvokeCommand).rejects(throttled());
    const result = await runPreTrafficHook(event, { sleep: async () => undefined });
    expect(result).toEqual({
      status: 'Failed',
      reason: `GET /sleep/0 on ${FUNCTION_NAME}:7: lambda:Invoke failed: TooManyRequestsException: Rate Exceeded.`,
      invoked: true,
    });
    expect(lambdaMock).toHaveReceivedCommandTimes(InvokeCommand, 3);
    expectReported('Failed');
  });

  test('does not pause past the deadline for a throttled invoke', async () => {
    lambdaMock.on(InvokeCommand).rejects(throttled());
    let clock = 1_000_000;
    const sleeps: number[] = [];
    const result = await runPreTrafficHook(event, {
      now: () => clock,
      deadline: clock + 600,
      sleep: async (ms) => { sleeps.push(ms); clock += ms; },
    });
    expect(result.status).toBe('Failed');
    expect(sleeps).toEqual([200]);
    expect(lambdaMock).toHaveReceivedCommandTimes(InvokeCommand, 2);
  });

  test.each([
    ['AccessDeniedException', 403],
    ['ResourceNotFoundException', 404],
    ['ResourceConflictException', 409],
    ['ServiceException', 500],
  ])('reports Failed at once for %s', async (name, httpStatusCode) => {
    lambdaMock.on(InvokeCommand).rejects(awsError(name, 'something went wrong', httpStatusCode));
    const result = await handler(event, context);
    expect(result.status).toBe('Failed');
    expectFacts(result.reason, ['GET', '/sleep/0', FUNCTION_NAME, '7', 'lambda:Invoke', 'failed', name]);
    expect(lambdaMock).toHaveReceivedCommandTimes(InvokeCommand, 1);
    expectReported('Failed');
  });

  test('aborts an invoke that does not answer before the deadline, and reports Failed', async () => {
    lambdaMock.on(InvokeCommand).callsFake(() => new Promise(() => undefined));
    const started = Date.now();
    const result = await handler(event, { getRemainingTimeInMillis: () => REPORTING_MARGIN_MS + 300 });
    const elapsed = Date.now() - started;
    expect(elapsed).toBeGreaterThanOrEqual(250);
    expect(elapsed).toBeLessThan(1_500);
    expect(result.status).toBe('Failed');
    expect(result.reason).toMatch(/lambda:Invoke failed: .*timed out: no answer after \d+ ms/);
    const options = (lambdaMock.send.getCall(0).args as unknown[])[1] as { abortSignal: AbortSignal };
    expect(options.abortSignal.aborted).toBe(true);
    expectReported('Failed');
  });

  test('passes an abort signal that stays unset when the invoke answers in time', async () => {
    await handler(event, context);
    const options = (lambdaMock.send.getCall(0).args as unknown[])[1] as { abortSignal: AbortSignal };
    expect(options.abortSignal.aborted).toBe(false);
  });
});

describe('handler: reporting', () => {
  test('rejects when PutLifecycleEventHookExecutionStatus fails, after logging the verdict', async () => {
    const denied = awsError('AccessDeniedException', 'not authorized to perform: codedeploy:PutLifecycleEventHookExecutionStatus', 400);
    cdMock.on(PutLifecycleEventHookExecutionStatusCommand).rejects(denied);
    await expect(handler(event, context)).rejects.toBe(denied);
    expect(resultLog()).toMatchObject({ status: 'Succeeded' });
    expect(JSON.parse(String(errorSpy.mock.calls[0][0]))).toMatchObject({
      level: 'ERROR',
      message: 'could not report the pre-traffic test result to CodeDeploy',
      deploymentId: DEPLOYMENT_ID,
      lifecycleEventHookExecutionId: HOOK_ID,
      status: 'Succeeded',
      error: { name: 'AccessDeniedException' },
    });
  });

  test('rejects an event that is not a CodeDeploy lifecycle hook event, calling nothing', async () => {
    await expect(handler({ DeploymentId: DEPLOYMENT_ID }, context)).rejects.toThrow(/not a CodeDeploy lifecycle hook event/);
    expect(cdMock).not.toHaveReceivedAnyCommand();
    expect(lambdaMock).not.toHaveReceivedAnyCommand();
  });

  test('reports Failed for an unexpected error', async () => {
    const env = new Proxy({}, { get: () => { throw new Error('environment unavailable'); } });
    await expect(runPreTrafficHook(event, { env })).resolves.toEqual({
      status: 'Failed',
      reason: 'unexpected error: environment unavailable',
      invoked: false,
    });
    expectReported('Failed');
  });

  test('works without a context (no deadline)', async () => {
    await expect(handler(event)).resolves.toMatchObject({ status: 'Succeeded' });
    expectReported('Succeeded');
  });
});
