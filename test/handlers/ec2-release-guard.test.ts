import * as http from 'http';
import type { AddressInfo } from 'net';
import { DescribeExecutionCommand, ExecutionDoesNotExist, SFNClient } from '@aws-sdk/client-sfn';
import { AwsClientStub, mockClient } from 'aws-sdk-client-mock';
import 'aws-sdk-client-mock-jest';
import { expectFacts } from './shared/facts';
import type { CloudFormationResponse } from '../../src/handlers/ec2-release-guard.lambda';

// The handler creates its SDK client when loaded; on Node < 22 the SDK then emits a NodeVersionSupportWarning, which
// keeps a jest worker from exiting cleanly (the Lambda runtime is nodejs24.x). Switched off before loading it.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
const {
  PHYSICAL_ID_PREFIX,
  REASON_LIMIT,
  RESPONSE_ATTEMPTS,
  RETRY_DELAY_MS,
  guard,
  handler,
  physicalId,
  putJson,
  sfn,
  // eslint-disable-next-line @typescript-eslint/no-require-imports
}: typeof import('../../src/handlers/ec2-release-guard.lambda') = require('../../src/handlers/ec2-release-guard.lambda');

const EXECUTION = 'arn:aws:states:us-east-1:123456789012:execution:web-release:exec-42';
const STACK_ID = 'arn:aws:cloudformation:us-east-1:123456789012:stack/web-fleet/5b8a3f10-0000-11ef-aaaa-0a1b2c3d4e5f';
const RESPONSE_URL = 'https://cloudformation-custom-resource-response.example/response?X-Amz-Signature=abc';

function request(requestType: string, lock: unknown, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    RequestType: requestType,
    ServiceToken: 'arn:aws:lambda:us-east-1:123456789012:function:guard',
    ResponseURL: RESPONSE_URL,
    StackId: STACK_ID,
    RequestId: 'req-1',
    ResourceType: 'Custom::ReleaseGuard',
    LogicalResourceId: 'ReleaseGuard',
    ...(requestType === 'Create' ? {} : { PhysicalResourceId: 'release-guard-web-fleet' }),
    ResourceProperties: { ServiceToken: 'arn:aws:lambda:us-east-1:123456789012:function:guard', Lock: lock, StackName: 'web-fleet' },
    ...(requestType === 'Update' ? { OldResourceProperties: { Lock: 'free', StackName: 'web-fleet' } } : {}),
    ...extra,
  };
}

let sfnMock: AwsClientStub<SFNClient>;
let puts: Array<{ url: string; response: CloudFormationResponse }>;
let sleeps: number[];
const put = async (url: string, body: string) => { puts.push({ url, response: JSON.parse(body) }); };
const sleep = async (ms: number) => { sleeps.push(ms); };

beforeEach(() => {
  sfnMock = mockClient(SFNClient);
  puts = [];
  sleeps = [];
  jest.spyOn(console, 'log').mockImplementation(() => undefined);
  jest.spyOn(console, 'error').mockImplementation(() => undefined);
});

afterEach(() => {
  sfnMock.restore();
  jest.restoreAllMocks();
});

/** Runs the guard and returns the one response it sent. */
async function respond(event: unknown): Promise<CloudFormationResponse> {
  await guard(event, { put, sleep });
  expect(puts).toHaveLength(1);
  expect(puts[0].url).toBe(RESPONSE_URL);
  return puts[0].response;
}

describe('verdicts', () => {
  test('Create: SUCCESS with a physical id from the stack name, whatever the lock says', async () => {
    expect(await respond(request('Create', `running ${EXECUTION}`))).toEqual({
      Status: 'SUCCESS',
      Reason: 'created: the guard checks the release lock on updates',
      PhysicalResourceId: 'release-guard-web-fleet',
      StackId: STACK_ID,
      RequestId: 'req-1',
      LogicalResourceId: 'ReleaseGuard',
    });
    expect(sfnMock).not.toHaveReceivedCommand(DescribeExecutionCommand);
  });

  test('Delete: SUCCESS, keeping the physical id, even with a running release or garbage properties', async () => {
    sfnMock.on(DescribeExecutionCommand).resolves({ status: 'RUNNING' } as never);
    expect(await respond(request('Delete', `running ${EXECUTION}`))).toMatchObject({ Status: 'SUCCESS', PhysicalResourceId: 'release-guard-web-fleet' });
    puts = [];
    expect(await respond(request('Delete', 42, { ResourceProperties: 'garbage' }))).toMatchObject({ Status: 'SUCCESS' });
    expect(sfnMock).not.toHaveReceivedCommand(DescribeExecutionCommand);
  });

  test('Update with the lock free (also the Update of a CloudFormation rollback): SUCCESS, no call', async () => {
    expect(await respond(request('Update', 'free'))).toMatchObject({ Status: 'SUCCESS', Reason: 'no release is running', PhysicalResourceId: 'release-guard-web-fleet' });
    expect(sfnMock).not.toHaveReceivedCommand(DescribeExecutionCommand);
  });

  test('Update while the release named by the lock runs: FAILED, saying what to do', async () => {
    sfnMock.on(DescribeExecutionCommand, { executionArn: EXECUTION }).resolves({ executionArn: EXECUTION, status: 'RUNNING' } as never);
    const response = await respond(request('Update', `running ${EXECUTION}`));
    expect(response).toMatchObject({ Status: 'FAILED', PhysicalResourceId: 'release-guard-web-fleet' });
    expectFacts(response.Reason, [EXECUTION, 'is running', 'stop-execution', 'execution-arn', EXECUTION]);
    expect(sfnMock).toHaveReceivedCommandWith(DescribeExecutionCommand, { executionArn: EXECUTION });
  });

  test.each(['SUCCEEDED', 'FAILED', 'TIMED_OUT', 'ABORTED'])('Update with a stale lock (the execution is %s): SUCCESS', async (status) => {
    sfnMock.on(DescribeExecutionCommand).resolves({ executionArn: EXECUTION, status } as never);
    const response = await respond(request('Update', `running ${EXECUTION}`));
    expect(response).toMatchObject({ Status: 'SUCCESS', Reason: `the release ${EXECUTION} that left the lock is ${status}, not running: a stale lock` });
  });

  test('Update with a lock naming an execution that does not exist: SUCCESS (stale)', async () => {
    sfnMock.on(DescribeExecutionCommand).rejects(new ExecutionDoesNotExist({ message: 'Execution Does Not Exist', $metadata: {} }));
    expect(await respond(request('Update', `running ${EXECUTION}`))).toMatchObject({ Status: 'SUCCESS' });
  });

  test.each([
    ['throttled', Object.assign(new Error('Rate exceeded'), { name: 'ThrottlingException', $metadata: { httpStatusCode: 400 } }), ' (transient)'],
    ['denied', Object.assign(new Error('not authorized to perform: states:DescribeExecution'), { name: 'AccessDeniedException', $metadata: { httpStatusCode: 400 } }), ''],
  ])('Update when the execution cannot be checked (%s): FAILED (the deployment waits rather than overtakes)', async (_label, err, transient) => {
    sfnMock.on(DescribeExecutionCommand).rejects(err);
    const response = await respond(request('Update', `running ${EXECUTION}`));
    expect(response.Status).toBe('FAILED');
    expectFacts(response.Reason, [EXECUTION, 'is running', transient, err.name, err.message]);
  });

  test('the reason stays within REASON_LIMIT characters', async () => {
    const longArn = `arn:aws:states:us-east-1:123456789012:execution:web-release:${'x'.repeat(1200)}`;
    sfnMock.on(DescribeExecutionCommand).resolves({ status: 'RUNNING' } as never);
    const response = await respond(request('Update', `running ${longArn}`));
    expect(response.Status).toBe('FAILED');
    expect(response.Reason.length).toBeLessThanOrEqual(REASON_LIMIT);
    expect(response.Reason.length).toBe(REASON_LIMIT);
    expect(response.Reason.endsWith('…')).toBe(true);
  });
});

describe('bad input', () => {
  test.each([
    [undefined],
    [{ RequestType: 'Update' }],
    [{ RequestType: 'Update', ResponseURL: 'file:///etc/passwd' }],
  ])('no usable ResponseURL (%j): nothing to respond to, returns without throwing', async (event) => {
    await expect(guard(event, { put, sleep })).resolves.toBeUndefined();
    expect(puts).toEqual([]);
  });

  test('an unknown RequestType: FAILED', async () => {
    const response = await respond(request('Replace', 'free'));
    expect(response).toMatchObject({ Status: 'FAILED', Reason: 'unknown RequestType "Replace": expected Create, Update or Delete' });
  });

  test.each([
    [undefined, 'missing'],
    ['busy', '"busy"'],
    ['running', '"running"'],
    ['running not-an-arn', '"running not-an-arn"'],
  ])('an Update with Lock %j: FAILED, quoting it', async (lock, quoted) => {
    const response = await respond(request('Update', lock));
    expect(response).toMatchObject({ Status: 'FAILED', Reason: `the property Lock must be "free" or "running <executionArn>", got ${quoted}` });
  });

  test('no PhysicalResourceId and no StackName: one from the stack id', () => {
    expect(physicalId({ StackId: STACK_ID })).toBe(`${PHYSICAL_ID_PREFIX}web-fleet`);
    expect(physicalId({})).toBe(`${PHYSICAL_ID_PREFIX}unknown-stack`);
    expect(physicalId({ PhysicalResourceId: 'kept', ResourceProperties: { StackName: 'other' } })).toBe('kept');
  });

  test('its own unexpected error: FAILED on Update; a Delete reads nothing and succeeds', async () => {
    const broken = { send: async () => { throw new Error('unreachable'); } } as unknown as SFNClient;
    // A getter that throws when decide() reads the properties: an error outside every AWS call.
    const explode = (type: string) => Object.defineProperty(request(type, 'free'), 'ResourceProperties', { get: () => { throw new Error('boom'); }, enumerable: true });
    await guard(explode('Update'), { put, sleep, sfn: broken });
    await guard(explode('Delete'), { put, sleep, sfn: broken });
    expect(puts.map((p) => [p.response.Status, p.response.Reason])).toEqual([
      ['FAILED', 'release guard error: boom'],
      ['SUCCESS', 'deleted'],
    ]);
  });
});

describe('responding', () => {
  test('a failed PUT is retried with growing pauses', async () => {
    let attempts = 0;
    const flaky = async (url: string, body: string) => {
      attempts++;
      if (attempts < 3) throw new Error(`HTTP 503 Slow Down (attempt ${attempts})`);
      await put(url, body);
    };
    await guard(request('Update', 'free'), { put: flaky, sleep });
    expect(attempts).toBe(3);
    expect(sleeps).toEqual([RETRY_DELAY_MS, 2 * RETRY_DELAY_MS]);
    expect(puts[0].response.Status).toBe('SUCCESS');
  });

  test('every PUT fails: throws after RESPONSE_ATTEMPTS (Lambda runs the asynchronous invocation again)', async () => {
    let attempts = 0;
    const down = async () => { attempts++; throw new Error('ECONNRESET'); };
    await expect(guard(request('Create', 'free'), { put: down, sleep })).rejects.toThrow(`could not respond to CloudFormation after ${RESPONSE_ATTEMPTS} attempts: ECONNRESET`);
    expect(attempts).toBe(RESPONSE_ATTEMPTS);
    expect(sleeps).toHaveLength(RESPONSE_ATTEMPTS - 1);
  });
});

describe('putJson against a local server', () => {
  let server: http.Server;
  let url: string;
  let answers: Array<(req: http.IncomingMessage, res: http.ServerResponse, body: string) => void>;
  let received: Array<{ method?: string; headers: http.IncomingHttpHeaders; body: string }>;

  beforeEach(async () => {
    answers = [];
    received = [];
    server = http.createServer((req, res) => {
      let body = '';
      req.on('data', (chunk) => { body += chunk; });
      req.on('end', () => {
        received.push({ method: req.method, headers: req.headers, body });
        const answer = answers.shift() ?? ((_q, s) => { s.writeHead(200); s.end(); });
        answer(req, res, body);
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/response?X-Amz-Signature=abc`;
  });

  afterEach(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  test('PUTs the body with an empty content type and its length', async () => {
    await putJson(url, '{"Status":"SUCCESS"}', 2_000);
    expect(received).toEqual([{ method: 'PUT', headers: expect.objectContaining({ 'content-type': '', 'content-length': '20' }), body: '{"Status":"SUCCESS"}' }]);
  });

  test('a non-2xx answer rejects', async () => {
    answers.push((_q, s) => { s.writeHead(403, 'Forbidden'); s.end('expired'); });
    await expect(putJson(url, '{}', 2_000)).rejects.toThrow('HTTP 403 Forbidden');
  });

  test('a server that never answers: rejects after the timeout instead of hanging', async () => {
    answers.push(() => undefined); // never responds
    const started = Date.now();
    await expect(putJson(url, '{}', 300)).rejects.toThrow('no answer within 300 ms');
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  test('the guard retries a 500 through the real PUT, and the second answer counts', async () => {
    answers.push((_q, s) => { s.writeHead(500); s.end(); });
    await guard({ ...request('Create', 'free'), ResponseURL: url }, { sleep });
    expect(received).toHaveLength(2);
    expect(JSON.parse(received[1].body)).toMatchObject({ Status: 'SUCCESS', RequestId: 'req-1', LogicalResourceId: 'ReleaseGuard' });
  });
});

test('handler: the same guard with the real PUT', async () => {
  const bodies: string[] = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (chunk) => { body += chunk; });
    req.on('end', () => { bodies.push(body); res.writeHead(200); res.end(); });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/r`;
    await expect(handler({ ...request('Delete', 'free'), ResponseURL: url })).resolves.toBeUndefined();
    expect(bodies.map((b) => JSON.parse(b))).toEqual([expect.objectContaining({ Status: 'SUCCESS', Reason: 'deleted', RequestId: 'req-1' })]);
  } finally {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
});

// ---------------------------------------------------------------------------------------------------------------
// Edges found by mutation testing (stryker/ec2-release-guard.config.json)
// ---------------------------------------------------------------------------------------------------------------

/** The JSON lines the guard logged to stdout (console.log) and stderr (console.error). */
const logged = (stream: 'log' | 'error'): Array<Record<string, unknown>> =>
  (console[stream] as unknown as jest.Mock).mock.calls.map((args: unknown[]) => JSON.parse(String(args[0])));

describe('the SDK client', () => {
  test('the exported client makes at most 3 attempts', async () => {
    expect(await sfn.config.maxAttempts()).toBe(3);
  });
});

describe('logging', () => {
  test('a SUCCESS is logged as INFO with the request type, logical id, stack id and reason', async () => {
    await respond(request('Update', 'free'));
    expect(logged('log')).toEqual([{
      level: 'INFO',
      message: 'release guard',
      requestType: 'Update',
      logicalResourceId: 'ReleaseGuard',
      stackId: STACK_ID,
      status: 'SUCCESS',
      reason: 'no release is running',
    }]);
  });

  test('a FAILED is logged as WARN', async () => {
    sfnMock.on(DescribeExecutionCommand).resolves({ status: 'RUNNING' } as never);
    await respond(request('Update', `running ${EXECUTION}`));
    expect(logged('log')).toEqual([expect.objectContaining({ level: 'WARN', message: 'release guard', status: 'FAILED', requestType: 'Update' })]);
  });

  test('no ResponseURL: an ERROR line says there is nothing to respond to, with what the event had', async () => {
    await guard({ RequestType: 'Delete', LogicalResourceId: 'ReleaseGuard', StackId: STACK_ID }, { put, sleep });
    expect(logged('error')).toEqual([{
      level: 'ERROR',
      message: 'not a CloudFormation custom resource request (no ResponseURL): nothing to respond to',
      requestType: 'Delete',
      logicalResourceId: 'ReleaseGuard',
      stackId: STACK_ID,
    }]);
    expect(logged('log')).toEqual([]);
  });

  test('a non-string RequestType is logged as undefined (not echoed)', async () => {
    await respond(request('Update', 'free', { RequestType: 7 }));
    expect(logged('log')[0]).toMatchObject({ level: 'WARN', status: 'FAILED' });
    expect(logged('log')[0]).not.toHaveProperty('requestType');
  });

  test('each failed PUT is logged with its attempt and error; the last failure as an ERROR', async () => {
    const down = async () => { throw new Error('ECONNRESET'); };
    await expect(guard(request('Create', 'free'), { put: down, sleep })).rejects.toThrow();
    const warnings = logged('log').filter((l) => l.message === 'release guard: response PUT failed');
    expect(warnings).toEqual(Array.from({ length: RESPONSE_ATTEMPTS }, (_, i) => ({ level: 'WARN', message: 'release guard: response PUT failed', attempt: i + 1, error: 'ECONNRESET' })));
    expect(logged('error')).toEqual([{
      level: 'ERROR', message: 'release guard: could not respond to CloudFormation', error: { name: 'Error', message: 'ECONNRESET' }, attempts: RESPONSE_ATTEMPTS,
    }]);
  });
});

describe('more bad input', () => {
  test.each([
    [['https://cloudformation-custom-resource-response.example/r']],
    ['file:///tmp/x?https://cloudformation-custom-resource-response.example/r'],
    [42],
  ])('a ResponseURL that is not an http(s) URL string (%j): nothing is PUT', async (url) => {
    await guard({ ...request('Create', 'free'), ResponseURL: url }, { put, sleep });
    expect(puts).toEqual([]);
  });

  test('no RequestType: FAILED, saying it is missing', async () => {
    const { RequestType: _omitted, ...event } = request('Update', 'free');
    expect(await respond(event)).toMatchObject({ Status: 'FAILED', Reason: 'unknown RequestType missing: expected Create, Update or Delete' });
  });

  test('a request without StackId, RequestId and LogicalResourceId is still answered, with empty fields', async () => {
    const response = await respond({ RequestType: 'Create', ResponseURL: RESPONSE_URL, ResourceProperties: { StackName: 'web-fleet' } });
    expect(response).toEqual({ Status: 'SUCCESS', Reason: 'created: the guard checks the release lock on updates', PhysicalResourceId: 'release-guard-web-fleet', StackId: '', RequestId: '', LogicalResourceId: '' });
  });

  test('the Lock is trimmed: " free " is free', async () => {
    expect(await respond(request('Update', ' free\n'))).toMatchObject({ Status: 'SUCCESS', Reason: 'no release is running' });
  });

  test.each([
    [`xrunning ${EXECUTION}`],
    [`running ${EXECUTION} and more`],
  ])('a Lock that only contains "running <arn>" (%j): FAILED without asking Step Functions', async (lock) => {
    const response = await respond(request('Update', lock));
    expect(response).toMatchObject({ Status: 'FAILED', Reason: `the property Lock must be "free" or "running <executionArn>", got ${JSON.stringify(lock)}` });
    expect(sfnMock).not.toHaveReceivedCommand(DescribeExecutionCommand);
  });

  test('physicalId: an empty or non-string PhysicalResourceId is not kept; an empty or non-string StackName gives way to the stack id', () => {
    expect(physicalId({ PhysicalResourceId: '', ResourceProperties: { StackName: 'web-fleet' } })).toBe(`${PHYSICAL_ID_PREFIX}web-fleet`);
    expect(physicalId({ PhysicalResourceId: 42, ResourceProperties: { StackName: 'web-fleet' } })).toBe(`${PHYSICAL_ID_PREFIX}web-fleet`);
    expect(physicalId({ StackId: STACK_ID, ResourceProperties: { StackName: '' } })).toBe(`${PHYSICAL_ID_PREFIX}web-fleet`);
    expect(physicalId({ StackId: STACK_ID, ResourceProperties: { StackName: 42 } })).toBe(`${PHYSICAL_ID_PREFIX}web-fleet`);
    expect(physicalId({ StackId: STACK_ID, ResourceProperties: { StackName: 'named' } })).toBe(`${PHYSICAL_ID_PREFIX}named`);
  });
});

describe('more verdicts', () => {
  test('a stale lock naming an execution that does not exist: the reason says so', async () => {
    sfnMock.on(DescribeExecutionCommand).rejects(new ExecutionDoesNotExist({ message: 'Execution Does Not Exist', $metadata: {} }));
    expectFacts((await respond(request('Update', `running ${EXECUTION}`))).Reason, [EXECUTION, 'does not exist', 'stale lock']);
  });

  test('an execution without a status: SUCCESS (not RUNNING), saying its state is unknown', async () => {
    sfnMock.on(DescribeExecutionCommand).resolves({ executionArn: EXECUTION } as never);
    expect(await respond(request('Update', `running ${EXECUTION}`))).toMatchObject({
      Status: 'SUCCESS', Reason: `the release ${EXECUTION} that left the lock is in an unknown state, not running: a stale lock`,
    });
  });

  test('a client that throws undefined: FAILED as a check that could not be made (not a guard error)', async () => {
    const odd = { send: async () => { throw undefined; } } as unknown as SFNClient;
    await guard(request('Update', `running ${EXECUTION}`), { put, sleep, sfn: odd });
    expect(puts[0].response.Status).toBe('FAILED');
    expect(puts[0].response.Reason).toMatch(new RegExp(`^could not check whether the release ${EXECUTION} is running: .*; deploy again in a minute$`));
  });

  test('decide() throwing on a Delete still answers SUCCESS (the stack must stay deletable)', async () => {
    // RequestType reads 'Delete' for the guard's own look (type check and value), then throws (inside decide()).
    let reads = 0;
    const event = Object.defineProperty(request('Delete', 'free'), 'RequestType', {
      get: () => { reads++; if (reads > 2) throw new Error('boom'); return 'Delete'; }, enumerable: true,
    });
    await guard(event, { put, sleep });
    expect(puts.map((p) => [p.response.Status, p.response.Reason])).toEqual([['SUCCESS', 'guard error ignored on Delete: boom']]);
  });
});

describe('putJson edges', () => {
  let server: http.Server;
  let port: number;
  let answer: (res: http.ServerResponse) => void;

  beforeEach(async () => {
    answer = (s) => { s.writeHead(200); s.end(); };
    server = http.createServer((req, res) => { req.resume(); req.on('end', () => answer(res)); });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
  });

  afterEach(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  test('a 300 is not a success', async () => {
    answer = (s) => { s.writeHead(300, 'Multiple Choices'); s.end(); };
    await expect(putJson(`http://127.0.0.1:${port}/r`, '{}', 2_000)).rejects.toThrow('HTTP 300 Multiple Choices');
  });

  test('a 299 is a success', async () => {
    answer = (s) => { s.writeHead(299, 'Custom'); s.end(); };
    await expect(putJson(`http://127.0.0.1:${port}/r`, '{}', 2_000)).resolves.toBeUndefined();
  });

  test('an error status without a reason phrase: the message has no trailing space', async () => {
    answer = (s) => { s.writeHead(500, ''); s.end(); };
    await expect(putJson(`http://127.0.0.1:${port}/r`, '{}', 2_000)).rejects.toMatchObject({ message: 'HTTP 500' });
  });

  test('an https URL is spoken to with TLS (a plain-HTTP server does not answer it)', async () => {
    await expect(putJson(`https://127.0.0.1:${port}/r`, '{}', 2_000)).rejects.toThrow();
  });
});
