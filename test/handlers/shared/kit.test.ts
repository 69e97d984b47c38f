import { CodePipelineClient, InvalidJobStateException, PutJobFailureResultCommand, PutJobSuccessResultCommand } from '@aws-sdk/client-codepipeline';
import { LambdaServiceException, TooManyRequestsException } from '@aws-sdk/client-lambda';
import { mockClient } from 'aws-sdk-client-mock';
import { expectFacts } from './facts';
import { AwsCallError, LambdaDeadlineError, awsCall, awsErrorOf, isAccessDenied, withDeadline } from '../../../src/handlers/shared/aws-call';
import { answerCustomResource } from '../../../src/handlers/shared/cloudformation-response';
import { isCodePipelineEvent, parseUserParametersObject, sendJobResult } from '../../../src/handlers/shared/codepipeline-job';
import { isRetryable, isThrottling, RETRYABLE_ERROR_NAMES } from '../../../src/handlers/shared/retryable';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';

describe('isRetryable: the SDK decides first', () => {
  test.each([
    ['an SDK throttling exception', new TooManyRequestsException({ message: 'rate', $metadata: {} })],
    ['an SDK throttling code the list does not name', { name: 'PriorRequestNotComplete' }],
    ['a throttling name in an XML Code', { Code: 'Throttling' }],
    ['HTTP 429', { name: 'Whatever', $metadata: { httpStatusCode: 429 } }],
    ['the $retryable trait', { name: 'Whatever', $retryable: {} }],
    ['an SDK transient code', { name: 'RequestTimeout' }],
    ['a Node timeout code', { code: 'ETIMEDOUT' }],
    ['HTTP 504', { $metadata: { httpStatusCode: 504 } }],
  ])('%s is retryable', (_label, err) => {
    expect(isRetryable(err)).toBe(true);
  });
});

describe('isRetryable: what the library adds to the SDK, and where it decides otherwise', () => {
  test.each([...RETRYABLE_ERROR_NAMES])('the name %s is retryable', (name) => {
    expect(isRetryable({ name })).toBe(true);
  });

  test.each([
    ['a server fault', { name: 'X', $fault: 'server' }, true],
    ['HTTP 599, beyond the SDK statuses', { $metadata: { httpStatusCode: 599 } }, true],
    ['a prefixed ServiceUnavailable name', { name: 'ServiceUnavailableError' }, true],
    ['a quota (LimitExceededException), which the SDK calls throttling', { name: 'LimitExceededException' }, false],
    ['TransactionInProgressException', { name: 'TransactionInProgressException' }, false],
    ['$retryable null', { name: 'X', $retryable: null }, false],
    ['$retryable false', { name: 'X', $retryable: false }, false],
    ['$metadata not an object', { $metadata: 503 }, false],
    ['a client fault', new LambdaServiceException({ name: 'ResourceConflictException', $fault: 'client', message: 'busy', $metadata: { httpStatusCode: 409 } }), false],
    ['access denied', { name: 'AccessDeniedException' }, false],
    ['HTTP 499', { $metadata: { httpStatusCode: 499 } }, false],
    ['a string', 'ThrottlingException', false],
    ['null', null, false],
  ])('%s: %s', (_label, err, expected) => {
    expect(isRetryable(err)).toBe(expected);
  });
});

describe('isThrottling: throttling only', () => {
  test.each([
    [{ name: 'TooManyRequestsException' }, true],
    [{ name: 'EC2ThrottledException' }, true],
    [{ name: 'X', $retryable: { throttling: true } }, true],
    [{ name: 'X', $retryable: null }, false],
    [{ name: 'LimitExceededException' }, false],
    [{ name: 'ServiceException', $fault: 'server', $metadata: { httpStatusCode: 500 } }, false],
    [{ name: 'RequestTimeout' }, false],
    [undefined, false],
  ])('%j: %s', (err, expected) => {
    expect(isThrottling(err)).toBe(expected);
  });
});

describe('awsCall', () => {
  test('returns the answer', async () => {
    await expect(awsCall('s3:GetObject', async () => 42)).resolves.toBe(42);
  });

  test('wraps a failure, naming the API and the subject, keeping the AWS error', async () => {
    const denied = Object.assign(new Error('not authorized'), { name: 'AccessDeniedException' });
    const err = await awsCall('lambda:GetAlias', async () => { throw denied; }, { subject: 'function a' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AwsCallError);
    expect(err).toMatchObject({ api: 'lambda:GetAlias', subject: 'function a', error: denied });
    expect((err as Error).message).toBe('lambda:GetAlias failed for function a: AccessDeniedException: not authorized');
    expect(awsErrorOf(err)).toBe(denied);
    expect(isAccessDenied(awsErrorOf(err))).toBe(true);
  });

  test('without a subject the message names the API only', async () => {
    const err = await awsCall('ssm:PutParameter', async () => { throw new Error('boom'); }).catch((e: unknown) => e);
    expect((err as Error).message).toBe('ssm:PutParameter failed: boom');
  });

  test('too little time before the deadline: not started, a retryable LambdaDeadlineError', async () => {
    const send = jest.fn(async () => 1);
    const err = await awsCall('x:Y', send, { deadline: 1_000, now: () => 700, minTimeMs: 500 }).catch((e: unknown) => e);
    expect(send).not.toHaveBeenCalled();
    expect(awsErrorOf(err)).toBeInstanceOf(LambdaDeadlineError);
    expect(isRetryable(awsErrorOf(err))).toBe(true);
  });

  test('a call that outlives the deadline is aborted and settled by the timer', async () => {
    let aborted = false;
    const never = (signal: AbortSignal) => new Promise<never>(() => { signal.addEventListener('abort', () => { aborted = true; }); });
    const err = await withDeadline(never, Date.now, Date.now() + 20, 0).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LambdaDeadlineError);
    expect(aborted).toBe(true);
  });

  test('non-authorization errors are not access denied', () => {
    expect(isAccessDenied({ name: 'ThrottlingException' })).toBe(false);
    expect(isAccessDenied({ name: 'UnauthorizedOperation' })).toBe(true);
    expect(isAccessDenied(undefined)).toBe(false);
  });
});

describe('sendJobResult', () => {
  const client = new CodePipelineClient({ region: 'us-east-1', credentials: { accessKeyId: 'a', secretAccessKey: 'b' } });
  const mock = mockClient(client);
  const late = new InvalidJobStateException({ message: 'job is not in progress', $metadata: {} });
  let errorSpy: jest.SpyInstance;
  let logSpy: jest.SpyInstance;
  beforeEach(() => {
    mock.reset();
    errorSpy = jest.spyOn(console, 'error').mockImplementation(() => undefined);
    logSpy = jest.spyOn(console, 'log').mockImplementation(() => undefined);
  });
  afterEach(() => jest.restoreAllMocks());

  test('a duplicate whose twin reported first is done when the caller says so', async () => {
    mock.on(PutJobSuccessResultCommand).rejects(late);
    await expect(sendJobResult(client, 'j', new PutJobSuccessResultCommand({ jobId: 'j' }), {}, { duplicateIsDone: true })).resolves.toBeUndefined();
    expect(JSON.parse(String(logSpy.mock.calls[0][0]))).toMatchObject({
      level: 'WARN', message: 'the job already has a result (duplicate invocation): nothing more to report', jobId: 'j',
    });
  });

  test('otherwise the error is logged and rethrown', async () => {
    mock.on(PutJobSuccessResultCommand).rejects(late);
    await expect(sendJobResult(client, 'j', new PutJobSuccessResultCommand({ jobId: 'j' }), { decision: 'succeeded' })).rejects.toBe(late);
    expect(JSON.parse(String(errorSpy.mock.calls[0][0]))).toMatchObject({ level: 'ERROR', jobId: 'j', decision: 'succeeded' });
  });
});

describe('sendJobResult: the failure result, and errors other than a late result', () => {
  const client = new CodePipelineClient({ region: 'us-east-1', credentials: { accessKeyId: 'a', secretAccessKey: 'b' } });
  const mock = mockClient(client);
  let errorSpy: jest.SpyInstance;
  beforeEach(() => {
    mock.reset();
    errorSpy = jest.spyOn(console, 'error').mockImplementation(() => undefined);
    jest.spyOn(console, 'log').mockImplementation(() => undefined);
  });
  afterEach(() => jest.restoreAllMocks());

  test('sends a failure result', async () => {
    mock.on(PutJobFailureResultCommand).resolves({});
    const command = new PutJobFailureResultCommand({ jobId: 'j', failureDetails: { type: 'JobFailed', message: 'no' } });
    await expect(sendJobResult(client, 'j', command, {})).resolves.toBeUndefined();
    expect(mock.commandCalls(PutJobFailureResultCommand).map((c) => c.args[0].input)).toEqual([{ jobId: 'j', failureDetails: { type: 'JobFailed', message: 'no' } }]);
  });

  test('with duplicateIsDone, another error is still logged and rethrown', async () => {
    const denied = Object.assign(new Error('not authorized'), { name: 'AccessDeniedException' });
    mock.on(PutJobFailureResultCommand).rejects(denied);
    const command = new PutJobFailureResultCommand({ jobId: 'j', failureDetails: { type: 'JobFailed', message: 'no' } });
    await expect(sendJobResult(client, 'j', command, {}, { duplicateIsDone: true })).rejects.toBe(denied);
    expect(JSON.parse(String(errorSpy.mock.calls[0][0]))).toMatchObject({
      level: 'ERROR', message: 'could not report the job result to CodePipeline', error: { name: 'AccessDeniedException' }, jobId: 'j',
    });
  });
});

describe('isCodePipelineEvent', () => {
  test.each([
    [{ 'CodePipeline.job': { id: 'j' } }, true],
    [{ 'CodePipeline.job': { id: 7 } }, false],
    [{ 'CodePipeline.job': 'j' }, false],
    [{ RequestType: 'Create' }, false],
    [null, false],
  ])('%j: %s', (event, expected) => {
    expect(isCodePipelineEvent(event)).toBe(expected);
  });
});

describe('parseUserParametersObject', () => {
  const EXPECTED = '{"prefix":"<key>"}';
  test('a JSON object string: the object', () => {
    expect(parseUserParametersObject('{"prefix":"a/b"}', EXPECTED)).toEqual({ ok: true, value: { prefix: 'a/b' } });
  });

  test.each([undefined, null, ''])('%j: missing, naming the shape expected', (input) => {
    expect(parseUserParametersObject(input, EXPECTED)).toEqual({ ok: false, error: `UserParameters is missing: expected ${EXPECTED}` });
  });

  test('not a string: refused, showing the value', () => {
    expect(parseUserParametersObject({ prefix: 'a' }, EXPECTED)).toEqual({ ok: false, error: 'UserParameters must be a string of JSON, got {"prefix":"a"}' });
  });

  test('not JSON: refused with the parser\'s message and the text, clipped to 200 characters', () => {
    const parsed = parseUserParametersObject('{prefix', EXPECTED);
    expect(parsed.ok).toBe(false);
    expectFacts(!parsed.ok && parsed.error, ['UserParameters is not valid JSON (', 'JSON', '): "{prefix"']);
    const long = parseUserParametersObject(`{${'x'.repeat(300)}`, EXPECTED);
    expect(!long.ok && long.error).toMatch(new RegExp(`: "\\{${'x'.repeat(198)}…"$`));
  });

  test.each([['[1]', '[1]'], ['"text"', '"text"'], ['null', 'null'], ['3', '3']])('JSON %s that is not an object: refused', (input, shown) => {
    expect(parseUserParametersObject(input, EXPECTED)).toEqual({ ok: false, error: `UserParameters must be a JSON object like ${EXPECTED}, got ${shown}` });
  });
});

describe('the names the library adds, spelled out (a test over RETRYABLE_ERROR_NAMES itself would change with it)', () => {
  test.each([
    'ServiceUnavailable', 'ServiceUnavailableException', 'InternalServerError', 'InternalServerException', 'InternalFailure',
    'ServerException', 'TooManyUpdates', 'AbortError', 'LambdaDeadlineError', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN',
  ])('%s is retryable, as a name and as a Node code', (name) => {
    expect(RETRYABLE_ERROR_NAMES.has(name)).toBe(true);
    expect(isRetryable({ name })).toBe(true);
    expect(isRetryable({ code: name })).toBe(true);
  });

  test('null is not throttling; $metadata null is no status', () => {
    expect(isThrottling(null)).toBe(false);
    expect(isRetryable({ name: 'X', $metadata: null })).toBe(false);
  });
});

describe('awsCall and withDeadline: options and messages', () => {
  afterEach(() => jest.useRealTimers());

  test('the errors carry their names and default message', () => {
    expect(new AwsCallError('x:Y', new Error('boom'))).toMatchObject({ name: 'AwsCallError', message: 'x:Y failed: boom' });
    expect(new LambdaDeadlineError()).toMatchObject({ name: 'LambdaDeadlineError', message: 'no time left before the Lambda deadline' });
  });

  test('without a deadline the call gets no abort signal', async () => {
    const send = jest.fn(async (_options: { abortSignal?: AbortSignal }) => 42);
    await expect(awsCall('x:Y', send)).resolves.toBe(42);
    expect(send).toHaveBeenCalledWith({});
  });

  test('with a deadline the call gets an abort signal and its answer is returned', async () => {
    const send = jest.fn(async (_options: { abortSignal?: AbortSignal }) => 42);
    await expect(awsCall('x:Y', send, { deadline: 10_000, now: () => 0 })).resolves.toBe(42);
    expect(send).toHaveBeenCalledWith({ abortSignal: expect.any(AbortSignal) });
  });

  test('the deadline is on the given clock, with the given least time, else 500 ms', async () => {
    const ok = async () => 'ok';
    // On the real clock, a deadline of 10 s after the epoch is long past.
    await expect(awsCall('x:Y', ok, { deadline: 10_000, now: () => 0 })).resolves.toBe('ok');
    await expect(awsCall('x:Y', ok, { deadline: 1_000, now: () => 700, minTimeMs: 100 })).resolves.toBe('ok');
    const refused = await awsCall('x:Y', ok, { deadline: 1_000, now: () => 600 }).catch((e: unknown) => e);
    expect(awsErrorOf(refused)).toBeInstanceOf(LambdaDeadlineError);
    await expect(awsCall('x:Y', ok, { deadline: 1_000, now: () => 500 })).resolves.toBe('ok');
  });

  test('not started: the message says so', async () => {
    const err = await withDeadline(async () => 1, () => 900, 1_000, 500).catch((e: unknown) => e);
    expect(err).toMatchObject({ name: 'LambdaDeadlineError', message: 'not started: no time left before the Lambda deadline' });
  });

  test('timed out: the message gives the time waited', async () => {
    const start = Date.now();
    const never = () => new Promise<never>(() => undefined);
    const err = await withDeadline(never, () => start, start + 30, 0).catch((e: unknown) => e);
    expect(err).toMatchObject({ name: 'LambdaDeadlineError' });
    expectFacts((err as Error).message, ['timed out: no answer after 30 ms', 'aborted']);
  });

  test('without a deadline nothing times the call out', async () => {
    const slow = () => new Promise<string>((resolve) => setTimeout(() => resolve('late'), 30));
    await expect(withDeadline(slow, Date.now, undefined, 500)).resolves.toBe('late');
  });

  test('the timer is cleared once the call answers', async () => {
    jest.useFakeTimers();
    await expect(withDeadline(async () => 'fast', () => 0, 60_000, 0)).resolves.toBe('fast');
    expect(jest.getTimerCount()).toBe(0);
  });
});

describe('answerCustomResource: the envelope of the custom resource handlers', () => {
  const request = {
    RequestType: 'Create',
    ResponseURL: 'https://cloudformation-custom-resource-response.example/abc',
    StackId: 'arn:aws:cloudformation:eu-west-1:123456789012:stack/s/1',
    RequestId: 'r-1',
    LogicalResourceId: 'Thing',
    ResourceProperties: {},
  };
  const quiet = () => jest.spyOn(console, 'log').mockImplementation(() => undefined);

  test('answers what decide decided, with the physical id, and returns it', async () => {
    const spy = quiet();
    const puts: Array<[string, any]> = [];
    const result = await answerCustomResource<{ status: 'SUCCESS' | 'FAILED'; reason: string; extra: number }>(request, {
      who: 'thing',
      physicalId: () => 'thing-1',
      decide: async () => ({ status: 'SUCCESS' as const, reason: 'done', extra: 3 }),
      onError: () => ({ status: 'FAILED' as const, reason: 'never', extra: 0 }),
      logFields: (v) => ({ extra: v.extra }),
    }, { put: async (url, body) => { puts.push([url, JSON.parse(body)]); } });
    expect(result).toEqual({ status: 'SUCCESS', reason: 'done', extra: 3, physicalResourceId: 'thing-1' });
    expect(puts).toEqual([[request.ResponseURL, { Status: 'SUCCESS', Reason: 'done', PhysicalResourceId: 'thing-1', StackId: request.StackId, RequestId: 'r-1', LogicalResourceId: 'Thing' }]]);
    const line = spy.mock.calls.map(([l]) => JSON.parse(String(l))).find((l) => l.message === 'thing');
    expect(line).toMatchObject({ level: 'INFO', status: 'SUCCESS', reason: 'done', extra: 3, requestType: 'Create', logicalResourceId: 'Thing' });
    spy.mockRestore();
  });

  test('answers the onError verdict when decide throws, and nothing at all without a ResponseURL', async () => {
    const spy = quiet();
    const errSpy = jest.spyOn(console, 'error').mockImplementation(() => undefined);
    const puts: string[] = [];
    const handler = {
      who: 'thing',
      physicalId: () => 'thing-1',
      decide: async (): Promise<{ status: 'SUCCESS' | 'FAILED'; reason: string }> => { throw new Error('boom'); },
      onError: (_r: Record<string, unknown>, err: unknown) => ({ status: 'FAILED' as const, reason: `thing error: ${(err as Error).message}` }),
    };
    const deps = { put: async (_url: string, body: string) => { puts.push(JSON.parse(body).Reason); } };
    expect(await answerCustomResource(request, handler, deps)).toEqual({ status: 'FAILED', reason: 'thing error: boom', physicalResourceId: 'thing-1' });
    expect(puts).toEqual(['thing error: boom']);
    expect(await answerCustomResource({ ...request, ResponseURL: undefined }, handler, deps)).toBeUndefined();
    expect(puts).toHaveLength(1);
    spy.mockRestore();
    errSpy.mockRestore();
  });
});
