import { CloudWatchClient, CloudWatchServiceException, DeleteAlarmsCommand, DescribeAlarmsCommand } from '@aws-sdk/client-cloudwatch';
import { AwsClientStub, mockClient } from 'aws-sdk-client-mock';
import 'aws-sdk-client-mock-jest';
import { expectFacts } from './shared/facts';
import type { CloudFormationResponse } from '../../src/handlers/shared/cloudformation-response';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
const {
  ALARMS_PER_CALL,
  CALL_ATTEMPTS,
  MAX_PAGES,
  RETRY_DELAY_MS,
  cleanup,
  cloudWatch,
  handler,
// eslint-disable-next-line @typescript-eslint/no-require-imports
}: typeof import('../../src/handlers/release-cleanup.lambda') = require('../../src/handlers/release-cleanup.lambda');

const PREFIX = 'Stack-Service-LambdaRelease-1A2B3C';
const RESPONSE_URL = 'https://cloudformation-custom-resource-response.example/abc?signature=x';

let cw: AwsClientStub<CloudWatchClient>;
let put: jest.Mock<Promise<void>, [string, string]>;
let sleep: jest.Mock<Promise<void>, [number]>;

beforeAll(() => {
  cw = mockClient(cloudWatch);
});

beforeEach(() => {
  cw.reset();
  put = jest.fn(async (_url: string, _body: string) => undefined);
  sleep = jest.fn(async (_ms: number) => undefined);
  jest.spyOn(console, 'log').mockImplementation(() => undefined);
  jest.spyOn(console, 'error').mockImplementation(() => undefined);
});

afterEach(() => jest.restoreAllMocks());

function request(requestType: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    RequestType: requestType,
    ResponseURL: RESPONSE_URL,
    StackId: 'arn:aws:cloudformation:eu-west-1:111111111111:stack/Stack/guid',
    RequestId: 'req-1',
    LogicalResourceId: 'ReleaseAlarmCleanup',
    ResourceType: 'Custom::ReleaseAlarmCleanup',
    ResourceProperties: { ServiceToken: 'arn:aws:lambda:eu-west-1:111111111111:function:cleanup', AlarmNamePrefix: PREFIX },
    ...extra,
  };
}

const deleteRequest = () => request('Delete', { PhysicalResourceId: `release-cleanup-${PREFIX}` });

function alarms(names: string[]) {
  return names.map((AlarmName) => ({ AlarmName }));
}

function sent(): CloudFormationResponse {
  expect(put).toHaveBeenCalledTimes(1);
  expect(put.mock.calls[0][0]).toBe(RESPONSE_URL);
  return JSON.parse(put.mock.calls[0][1]) as CloudFormationResponse;
}

const run = (event: unknown) => cleanup(event, { put, sleep });

describe('Delete', () => {
  test('deletes every metric and composite alarm with the prefix, and answers SUCCESS', async () => {
    cw.on(DescribeAlarmsCommand).resolves({
      MetricAlarms: alarms([`${PREFIX}-r1-1`, `${PREFIX}-r1-2`]),
      CompositeAlarms: alarms([`${PREFIX}-r2-1`]),
    });
    cw.on(DeleteAlarmsCommand).resolves({});
    const outcome = await run(deleteRequest());
    expect(outcome).toMatchObject({ status: 'SUCCESS', deleted: [`${PREFIX}-r1-1`, `${PREFIX}-r1-2`, `${PREFIX}-r2-1`] });
    expect(cw).toHaveReceivedCommandWith(DescribeAlarmsCommand, {
      AlarmNamePrefix: `${PREFIX}-`, AlarmTypes: ['MetricAlarm', 'CompositeAlarm'], MaxRecords: ALARMS_PER_CALL,
    });
    expect(cw).toHaveReceivedCommandTimes(DeleteAlarmsCommand, 1);
    expect(cw).toHaveReceivedCommandWith(DeleteAlarmsCommand, { AlarmNames: [`${PREFIX}-r1-1`, `${PREFIX}-r1-2`, `${PREFIX}-r2-1`] });
    expect(sent()).toMatchObject({
      Status: 'SUCCESS',
      PhysicalResourceId: `release-cleanup-${PREFIX}`,
      RequestId: 'req-1',
      LogicalResourceId: 'ReleaseAlarmCleanup',
      StackId: 'arn:aws:cloudformation:eu-west-1:111111111111:stack/Stack/guid',
    });
  });

  test('reads every page and deletes in batches of 100', async () => {
    const page1 = Array.from({ length: 100 }, (_, i) => `${PREFIX}-a-${i}`);
    const page2 = Array.from({ length: 100 }, (_, i) => `${PREFIX}-b-${i}`);
    const page3 = [`${PREFIX}-c-0`];
    cw.on(DescribeAlarmsCommand)
      .resolvesOnce({ MetricAlarms: alarms(page1), NextToken: 't1' })
      .resolvesOnce({ MetricAlarms: alarms(page2), NextToken: 't2' })
      .resolvesOnce({ MetricAlarms: alarms(page3) });
    cw.on(DeleteAlarmsCommand).resolves({});
    const outcome = await run(deleteRequest());
    expect(outcome?.deleted).toHaveLength(201);
    expect(cw).toHaveReceivedCommandTimes(DescribeAlarmsCommand, 3);
    expect(cw.commandCalls(DescribeAlarmsCommand).map((c) => c.args[0].input.NextToken)).toEqual([undefined, 't1', 't2']);
    const batches = cw.commandCalls(DeleteAlarmsCommand).map((c) => c.args[0].input.AlarmNames ?? []);
    expect(batches.map((b) => b.length)).toEqual([100, 100, 1]);
    expect(batches.flat()).toEqual([...page1, ...page2, ...page3]);
    expect(sent().Status).toBe('SUCCESS');
  });

  test('stops after MAX_PAGES pages of a token that never ends, and deletes what it read', async () => {
    let n = 0;
    cw.on(DescribeAlarmsCommand).callsFake(async () => ({ MetricAlarms: alarms([`${PREFIX}-p-${n++}`]), NextToken: 'again' }));
    cw.on(DeleteAlarmsCommand).resolves({});
    const outcome = await run(deleteRequest());
    expect(cw).toHaveReceivedCommandTimes(DescribeAlarmsCommand, MAX_PAGES);
    expect(outcome?.deleted).toHaveLength(MAX_PAGES);
  });

  test('ignores a name the prefix filter should not have returned', async () => {
    cw.on(DescribeAlarmsCommand).resolves({ MetricAlarms: alarms([`${PREFIX}-r-1`, `${PREFIX}X-r-1`, 'other-alarm']) });
    cw.on(DeleteAlarmsCommand).resolves({});
    await run(deleteRequest());
    expect(cw).toHaveReceivedCommandWith(DeleteAlarmsCommand, { AlarmNames: [`${PREFIX}-r-1`] });
  });

  test('nothing to delete: no DeleteAlarms, SUCCESS', async () => {
    cw.on(DescribeAlarmsCommand).resolves({ MetricAlarms: [], CompositeAlarms: [] });
    const outcome = await run(deleteRequest());
    expect(outcome).toMatchObject({ status: 'SUCCESS', deleted: [] });
    expect(cw).not.toHaveReceivedCommand(DeleteAlarmsCommand);
    expect(sent().Status).toBe('SUCCESS');
  });

  test('a duplicate Delete (the alarms are gone already) succeeds the same way', async () => {
    cw.on(DescribeAlarmsCommand)
      .resolvesOnce({ MetricAlarms: alarms([`${PREFIX}-r-1`]) })
      .resolves({ MetricAlarms: [] });
    cw.on(DeleteAlarmsCommand).resolves({});
    await run(deleteRequest());
    const second = await cleanup(deleteRequest(), { put, sleep });
    expect(second).toMatchObject({ status: 'SUCCESS', deleted: [] });
    expect(cw).toHaveReceivedCommandTimes(DeleteAlarmsCommand, 1);
    expect(put).toHaveBeenCalledTimes(2);
    expect(JSON.parse(put.mock.calls[1][1])).toMatchObject({ Status: 'SUCCESS', PhysicalResourceId: `release-cleanup-${PREFIX}` });
  });

  test('throttling is tried again after a pause, then succeeds', async () => {
    const throttled = new CloudWatchServiceException({ name: 'Throttling', $fault: 'client', message: 'Rate exceeded', $metadata: { httpStatusCode: 400 } });
    cw.on(DescribeAlarmsCommand).rejectsOnce(throttled).resolves({ MetricAlarms: alarms([`${PREFIX}-r-1`]) });
    cw.on(DeleteAlarmsCommand).rejectsOnce(throttled).resolves({});
    const outcome = await run(deleteRequest());
    expect(outcome).toMatchObject({ status: 'SUCCESS', deleted: [`${PREFIX}-r-1`] });
    expect(cw).toHaveReceivedCommandTimes(DescribeAlarmsCommand, 2);
    expect(cw).toHaveReceivedCommandTimes(DeleteAlarmsCommand, 2);
    expect(sleep.mock.calls).toEqual([[RETRY_DELAY_MS], [RETRY_DELAY_MS]]);
  });

  test('throttling that never ends: CALL_ATTEMPTS tries, then FAILED naming the call and what is left', async () => {
    const throttled = new CloudWatchServiceException({ name: 'Throttling', $fault: 'client', message: 'Rate exceeded', $metadata: { httpStatusCode: 400 } });
    cw.on(DescribeAlarmsCommand).rejects(throttled);
    const outcome = await run(deleteRequest());
    expect(cw).toHaveReceivedCommandTimes(DescribeAlarmsCommand, CALL_ATTEMPTS);
    expect(sleep.mock.calls.map(([ms]) => ms)).toEqual(Array.from({ length: CALL_ATTEMPTS - 1 }, (_, i) => RETRY_DELAY_MS * (i + 1)));
    expect(outcome?.status).toBe('FAILED');
    expect(sent().Status).toBe('FAILED');
    expect(sent().Reason).toContain('cloudwatch:DescribeAlarms');
  });

  test('access denied: not tried again, FAILED with the error, the alarms named', async () => {
    const denied = new CloudWatchServiceException({ name: 'AccessDenied', $fault: 'client', message: 'not authorized', $metadata: { httpStatusCode: 403 } });
    cw.on(DescribeAlarmsCommand).resolves({ MetricAlarms: alarms([`${PREFIX}-r-1`]) });
    cw.on(DeleteAlarmsCommand).rejects(denied);
    const outcome = await run(deleteRequest());
    expect(cw).toHaveReceivedCommandTimes(DeleteAlarmsCommand, 1);
    expect(sleep).not.toHaveBeenCalled();
    expect(outcome).toMatchObject({ status: 'FAILED', deleted: [] });
    const response = sent();
    expect(response.Status).toBe('FAILED');
    expect(response.Reason).toContain('AccessDenied');
    expect(response.Reason).toContain(`${PREFIX}-*`);
  });

  test('a failure after some batches reports how many were deleted', async () => {
    const names = Array.from({ length: 150 }, (_, i) => `${PREFIX}-r-${i}`);
    cw.on(DescribeAlarmsCommand).resolves({ MetricAlarms: alarms(names) });
    cw.on(DeleteAlarmsCommand)
      .resolvesOnce({})
      .rejects(new CloudWatchServiceException({ name: 'AccessDenied', $fault: 'client', message: 'no', $metadata: {} }));
    const outcome = await run(deleteRequest());
    expect(outcome).toMatchObject({ status: 'FAILED' });
    expect(outcome?.deleted).toHaveLength(100);
  });

  test('a Delete without a valid prefix succeeds without calling CloudWatch: it never had alarms', async () => {
    const outcome = await run(request('Delete', { PhysicalResourceId: 'release-cleanup-invalid', ResourceProperties: { AlarmNamePrefix: '*' } }));
    expect(outcome?.status).toBe('SUCCESS');
    expect(cw).not.toHaveReceivedCommand(DescribeAlarmsCommand);
  });
});

describe('Create and Update', () => {
  test.each(['Create', 'Update'])('%s touches no alarm and answers SUCCESS', async (requestType) => {
    const outcome = await run(request(requestType, requestType === 'Update' ? { PhysicalResourceId: `release-cleanup-${PREFIX}` } : {}));
    expect(outcome?.status).toBe('SUCCESS');
    expect(cw.calls()).toHaveLength(0);
    expect(sent()).toMatchObject({ Status: 'SUCCESS', PhysicalResourceId: `release-cleanup-${PREFIX}` });
  });

  test('the physical id holds the prefix, so a new prefix is a replacement', async () => {
    await run(request('Create', { ResourceProperties: { AlarmNamePrefix: 'Other-Prefix' } }));
    expect(sent().PhysicalResourceId).toBe('release-cleanup-Other-Prefix');
  });

  test.each([
    ['missing', undefined],
    ['empty', ''],
    ['a wildcard', 'a*'],
    ['not a string', 7],
    ['too long', 'x'.repeat(201)],
  ])('Create with an AlarmNamePrefix %s: FAILED', async (_label, prefix) => {
    const outcome = await run(request('Create', { ResourceProperties: { AlarmNamePrefix: prefix } }));
    expect(outcome?.status).toBe('FAILED');
    expect(sent().Status).toBe('FAILED');
  });

  test('an unknown RequestType: FAILED', async () => {
    const outcome = await run(request('Replace'));
    expect(outcome?.status).toBe('FAILED');
  });
});

describe('responding', () => {
  test('no ResponseURL: nobody to answer, nothing done', async () => {
    const outcome = await run({ RequestType: 'Delete', ResourceProperties: { AlarmNamePrefix: PREFIX } });
    expect(outcome).toBeUndefined();
    expect(put).not.toHaveBeenCalled();
    expect(cw.calls()).toHaveLength(0);
  });

  test('a failed PUT is tried again; when every PUT fails the invocation throws (Lambda retries it)', async () => {
    cw.on(DescribeAlarmsCommand).resolves({ MetricAlarms: [] });
    put.mockRejectedValue(new Error('HTTP 500'));
    await expect(run(deleteRequest())).rejects.toThrow(/could not respond to CloudFormation/);
    expect(put.mock.calls.length).toBeGreaterThan(1);
    expect(logged()).toContainEqual({ level: 'WARN', message: 'release cleanup: response PUT failed', attempt: 1, error: 'HTTP 500' });
  });
});

/** The JSON lines the handler logged with `console.log` (INFO, WARN) and `console.error` (ERROR). */
function logged(stream: 'log' | 'error' = 'log'): Array<Record<string, unknown>> {
  return (console[stream] as unknown as jest.Mock).mock.calls.map((args: unknown[]) => JSON.parse(String(args[0])) as Record<string, unknown>);
}

describe('reasons, logs and ids', () => {
  test('Delete: the reason counts the alarms deleted, the INFO log names the prefix and the count', async () => {
    cw.on(DescribeAlarmsCommand).resolves({ MetricAlarms: alarms([`${PREFIX}-r-1`, `${PREFIX}-r-2`]) });
    cw.on(DeleteAlarmsCommand).resolves({});
    const outcome = await run(deleteRequest());
    expectFacts(outcome?.reason, ['deleted 2 alarm(s)', `${PREFIX}-*`]);
    expect(sent().Reason).toBe(outcome?.reason);
    expect(logged()).toContainEqual(expect.objectContaining({
      level: 'INFO',
      message: 'release cleanup',
      status: 'SUCCESS',
      alarmPrefix: PREFIX,
      deleted: 2,
      requestType: 'Delete',
      logicalResourceId: 'ReleaseAlarmCleanup',
      reason: outcome?.reason,
    }));
  });

  test('Delete with nothing to delete: the reason says so', async () => {
    cw.on(DescribeAlarmsCommand).resolves({});
    const outcome = await run(deleteRequest());
    expectFacts(outcome?.reason, ['no alarm named', `${PREFIX}-*`, 'nothing to delete']);
  });

  test('a failed Delete logs WARN with the verdict and ERROR with the AWS error; the reason names the call', async () => {
    const denied = new CloudWatchServiceException({ name: 'AccessDenied', $fault: 'client', message: 'not authorized', $metadata: { httpStatusCode: 403 } });
    cw.on(DescribeAlarmsCommand).resolves({ MetricAlarms: alarms([`${PREFIX}-r-1`]) });
    cw.on(DeleteAlarmsCommand).rejects(denied);
    const outcome = await run(deleteRequest());
    expect(outcome?.reason).toBe(
      `cloudwatch:DeleteAlarms failed: AccessDenied: not authorized; the alarms named ${PREFIX}-* are left: delete them, then delete the stack again`,
    );
    expect(logged()).toContainEqual(expect.objectContaining({ level: 'WARN', message: 'release cleanup', status: 'FAILED', deleted: 0 }));
    expect(logged('error')).toContainEqual(expect.objectContaining({
      level: 'ERROR', message: 'could not delete the release alarms', error: { name: 'AccessDenied', message: 'not authorized' }, alarmPrefix: PREFIX, deleted: 0,
    }));
  });

  test('a failure after a batch: the reason counts what was deleted before', async () => {
    const names = Array.from({ length: 150 }, (_, i) => `${PREFIX}-r-${i}`);
    cw.on(DescribeAlarmsCommand).resolves({ MetricAlarms: alarms(names) });
    cw.on(DeleteAlarmsCommand).resolvesOnce({}).rejects(new CloudWatchServiceException({ name: 'AccessDenied', $fault: 'client', message: 'no', $metadata: {} }));
    const outcome = await run(deleteRequest());
    expectFacts(outcome?.reason, ['cloudwatch:DeleteAlarms', 'AccessDenied', '(100 deleted before)', `${PREFIX}-*`]);
  });

  test('a retried call logs a WARN naming the call and the attempt', async () => {
    const throttled = new CloudWatchServiceException({ name: 'Throttling', $fault: 'client', message: 'Rate exceeded', $metadata: { httpStatusCode: 400 } });
    cw.on(DescribeAlarmsCommand).rejectsOnce(throttled).resolves({});
    await run(deleteRequest());
    expect(logged()).toContainEqual({
      level: 'WARN', message: 'cloudwatch:DescribeAlarms failed with a transient error: trying again', attempt: 1, error: 'Throttling: Rate exceeded',
    });
  });

  test('more pages than MAX_PAGES: a WARN says the rest is left', async () => {
    cw.on(DescribeAlarmsCommand).resolves({ MetricAlarms: alarms([`${PREFIX}-p`]), NextToken: 'again' });
    cw.on(DeleteAlarmsCommand).resolves({});
    await run(deleteRequest());
    expect(logged()).toContainEqual({ level: 'WARN', message: 'release cleanup: more alarm pages than read; the rest is left', alarmPrefix: PREFIX, pages: MAX_PAGES });
  });

  test('an empty NextToken ends the listing', async () => {
    cw.on(DescribeAlarmsCommand).resolves({ MetricAlarms: alarms([`${PREFIX}-r-1`]), NextToken: '' });
    cw.on(DeleteAlarmsCommand).resolves({});
    const outcome = await run(deleteRequest());
    expect(cw).toHaveReceivedCommandTimes(DescribeAlarmsCommand, 1);
    expect(outcome).toMatchObject({ status: 'SUCCESS', deleted: [`${PREFIX}-r-1`] });
  });

  test('an alarm without a name is skipped', async () => {
    cw.on(DescribeAlarmsCommand).resolves({ MetricAlarms: [{}, { AlarmName: `${PREFIX}-r-1` }], CompositeAlarms: [{}] });
    cw.on(DeleteAlarmsCommand).resolves({});
    const outcome = await run(deleteRequest());
    expect(outcome).toMatchObject({ status: 'SUCCESS', deleted: [`${PREFIX}-r-1`] });
  });

  test('Create and Update: the reason says the alarms go with the stack', async () => {
    const outcome = await run(request('Update', { PhysicalResourceId: `release-cleanup-${PREFIX}` }));
    expectFacts(outcome?.reason, ['Update', `${PREFIX}-*`, 'deleted with the stack']);
    expect(outcome?.deleted).toEqual([]);
  });

  test('an Update keeps the event\'s own physical id; an empty one is replaced by the prefix\'s', async () => {
    const kept = await run(request('Update', { PhysicalResourceId: 'an-older-id' }));
    expect(kept?.physicalResourceId).toBe('an-older-id');
    expect(JSON.parse(put.mock.calls[0][1])).toMatchObject({ PhysicalResourceId: 'an-older-id' });
    const replaced = await run(request('Update', { PhysicalResourceId: '' }));
    expect(replaced?.physicalResourceId).toBe(`release-cleanup-${PREFIX}`);
  });

  test('a Create without a valid prefix: the physical id says invalid, the reason shows what was given', async () => {
    const outcome = await run(request('Create', { ResourceProperties: { AlarmNamePrefix: 'a?b' } }));
    expect(outcome?.physicalResourceId).toBe('release-cleanup-invalid');
    expectFacts(outcome?.reason, ['AlarmNamePrefix', '1 to 200 characters', '"a?b"']);
    expect(outcome?.deleted).toEqual([]);
    const missing = await run(request('Create', { ResourceProperties: {} }));
    expectFacts(missing?.reason, ['AlarmNamePrefix', 'missing']);
  });

  test('a Delete without a valid prefix: the reason shows what was given', async () => {
    const outcome = await run(request('Delete', { PhysicalResourceId: 'release-cleanup-invalid', ResourceProperties: { AlarmNamePrefix: '' } }));
    expectFacts(outcome?.reason, ['no valid AlarmNamePrefix', '""', 'nothing to clean up']);
    expect(outcome?.deleted).toEqual([]);
  });

  test('an unknown or missing RequestType: the reason names it', async () => {
    const unknown = await run(request('Replace'));
    expectFacts(unknown?.reason, ['unknown RequestType', '"Replace"', 'Create, Update or Delete']);
    expect(unknown?.deleted).toEqual([]);
    expectFacts((await run(request('', { RequestType: undefined })))?.reason, ['unknown RequestType', 'missing']);
    expect(logged()).toContainEqual(expect.objectContaining({ level: 'WARN', status: 'FAILED' }));
  });

  test('an unexpected error while deciding still answers FAILED', async () => {
    // JSON cannot hold a BigInt: describing the property throws inside the decision.
    const outcome = await run(request('Create', { ResourceProperties: { AlarmNamePrefix: BigInt(7) } }));
    expect(outcome).toMatchObject({ status: 'FAILED', deleted: [], physicalResourceId: 'release-cleanup-invalid' });
    expectFacts(outcome?.reason, ['release cleanup error', 'BigInt']);
    expect(sent().Status).toBe('FAILED');
  });

  test('no ResponseURL: the Lambda entry point logs an ERROR naming the request', async () => {
    await expect(handler({ RequestType: 'Delete', LogicalResourceId: 'X' })).resolves.toBeUndefined();
    expect(logged('error')).toContainEqual(expect.objectContaining({
      level: 'ERROR', message: expect.stringContaining('no ResponseURL'), requestType: 'Delete', logicalResourceId: 'X',
    }));
  });

  test('the client tries each call 5 times itself', async () => {
    await expect(cloudWatch.config.maxAttempts()).resolves.toBe(5);
  });
});
