import { CopyObjectCommand, HeadObjectCommand, S3Client, S3ServiceException } from '@aws-sdk/client-s3';
import { GetParameterCommand, ParameterNotFound, SSMClient } from '@aws-sdk/client-ssm';
import { AwsClientStub, mockClient } from 'aws-sdk-client-mock';
import 'aws-sdk-client-mock-jest';
import type { CloudFormationResponse } from '../../src/handlers/shared/cloudformation-response';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
const {
  CALL_ATTEMPTS,
  RETRY_DELAY_MS,
  reencrypt,
  s3,
  ssm,
// eslint-disable-next-line @typescript-eslint/no-require-imports
}: typeof import('../../src/handlers/bundle-reencrypt.lambda') = require('../../src/handlers/bundle-reencrypt.lambda');

const NEW_KEY = 'arn:aws:kms:eu-west-1:111111111111:key/11111111-2222-3333-4444-555555555555';
const OLD_KEY = 'arn:aws:kms:eu-west-1:111111111111:key/99999999-8888-7777-6666-555555555555';
const BUCKET = 'shop-web-bundles-abc123';
const BLUE = '/shop/web/blue-release';
const GREEN = '/shop/web/green-release';
const RESPONSE_URL = 'https://cloudformation-custom-resource-response.example/abc?signature=x';

let s3Mock: AwsClientStub<S3Client>;
let ssmMock: AwsClientStub<SSMClient>;
let put: jest.Mock<Promise<void>, [string, string]>;
let sleep: jest.Mock<Promise<void>, [number]>;

beforeAll(() => {
  s3Mock = mockClient(s3);
  ssmMock = mockClient(ssm);
});

beforeEach(() => {
  s3Mock.reset();
  ssmMock.reset();
  put = jest.fn(async (_url: string, _body: string) => undefined);
  sleep = jest.fn(async (_ms: number) => undefined);
  jest.spyOn(console, 'log').mockImplementation(() => undefined);
  jest.spyOn(console, 'error').mockImplementation(() => undefined);
});

afterEach(() => jest.restoreAllMocks());

function request(requestType: string, properties: Record<string, unknown> = {}, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    RequestType: requestType,
    ResponseURL: RESPONSE_URL,
    StackId: 'arn:aws:cloudformation:eu-west-1:111111111111:stack/Shop/guid',
    RequestId: 'req-1',
    LogicalResourceId: 'BundleReencryption',
    ResourceType: 'Custom::ReleaseBundleReencryption',
    ResourceProperties: {
      ServiceToken: 'arn:aws:lambda:eu-west-1:111111111111:function:reencrypt',
      KeyArn: NEW_KEY,
      BucketName: BUCKET,
      Prefix: 'releases/',
      ReleaseParameterNames: [BLUE, GREEN],
      ...properties,
    },
    ...extra,
  };
}

function releases(blue: string, green: string): void {
  ssmMock.on(GetParameterCommand, { Name: BLUE }).resolves({ Parameter: { Name: BLUE, Value: blue } });
  ssmMock.on(GetParameterCommand, { Name: GREEN }).resolves({ Parameter: { Name: GREEN, Value: green } });
}

function copyInput(key: string) {
  return {
    Bucket: BUCKET,
    Key: key,
    CopySource: `${BUCKET}/${key}`,
    ServerSideEncryption: 'aws:kms',
    SSEKMSKeyId: NEW_KEY,
    BucketKeyEnabled: true,
    MetadataDirective: 'COPY',
  };
}

function s3Error(name: string, status: number, fault: 'client' | 'server' = 'client'): S3ServiceException {
  return new S3ServiceException({ name, $fault: fault, $metadata: { httpStatusCode: status }, message: `${name} (test)` });
}

function sent(): CloudFormationResponse {
  expect(put).toHaveBeenCalledTimes(1);
  expect(put.mock.calls[0][0]).toBe(RESPONSE_URL);
  return JSON.parse(put.mock.calls[0][1]) as CloudFormationResponse;
}

const run = (event: unknown) => reencrypt(event, { put, sleep });

describe('Create and Update: the live bundles move to the new key', () => {
  test('Create (the upgrade adds the resource): both colors\' bundles are copied onto themselves under the new key', async () => {
    releases('abc-1', 'def-2');
    s3Mock.on(HeadObjectCommand).resolves({ SSEKMSKeyId: OLD_KEY, ServerSideEncryption: 'aws:kms' });
    s3Mock.on(CopyObjectCommand).resolves({});
    const outcome = await run(request('Create'));
    expect(outcome).toMatchObject({
      status: 'SUCCESS',
      bundles: [{ key: 'releases/abc-1/bundle.tgz', result: 'reencrypted' }, { key: 'releases/def-2/bundle.tgz', result: 'reencrypted' }],
    });
    expect(ssmMock).toHaveReceivedCommandWith(GetParameterCommand, { Name: BLUE });
    expect(ssmMock).toHaveReceivedCommandWith(GetParameterCommand, { Name: GREEN });
    expect(s3Mock).toHaveReceivedCommandWith(HeadObjectCommand, { Bucket: BUCKET, Key: 'releases/abc-1/bundle.tgz' });
    expect(s3Mock).toHaveReceivedCommandTimes(CopyObjectCommand, 2);
    const inputs = s3Mock.commandCalls(CopyObjectCommand).map((call) => call.args[0].input);
    expect(inputs).toEqual([copyInput('releases/abc-1/bundle.tgz'), copyInput('releases/def-2/bundle.tgz')]);
    expect(sent()).toEqual({
      Status: 'SUCCESS',
      Reason: expect.stringContaining(`2 bundle(s) re-encrypted under ${NEW_KEY}`),
      PhysicalResourceId: `bundle-reencrypt-${BUCKET}`,
      StackId: 'arn:aws:cloudformation:eu-west-1:111111111111:stack/Shop/guid',
      RequestId: 'req-1',
      LogicalResourceId: 'BundleReencryption',
    });
  });

  test('Update (the key changed) keeps the physical id, so it is never a replacement', async () => {
    releases('abc-1', 'none');
    s3Mock.on(HeadObjectCommand).resolves({ SSEKMSKeyId: OLD_KEY });
    s3Mock.on(CopyObjectCommand).resolves({});
    await run(request('Update', {}, { PhysicalResourceId: 'bundle-reencrypt-earlier', OldResourceProperties: { KeyArn: OLD_KEY } }));
    expect(s3Mock).toHaveReceivedCommandWith(CopyObjectCommand, copyInput('releases/abc-1/bundle.tgz'));
    expect(sent()).toMatchObject({ Status: 'SUCCESS', PhysicalResourceId: 'bundle-reencrypt-earlier' });
  });

  test('both colors on one release: that bundle is copied once', async () => {
    releases('abc-1', 'abc-1');
    s3Mock.on(HeadObjectCommand).resolves({ SSEKMSKeyId: OLD_KEY });
    s3Mock.on(CopyObjectCommand).resolves({});
    await run(request('Create'));
    expect(s3Mock).toHaveReceivedCommandTimes(CopyObjectCommand, 1);
  });

  test('a color whose parameter says none has no bundle: nothing is read or copied for it', async () => {
    releases('none', 'def-2');
    s3Mock.on(HeadObjectCommand).resolves({ SSEKMSKeyId: OLD_KEY });
    s3Mock.on(CopyObjectCommand).resolves({});
    const outcome = await run(request('Create'));
    expect(s3Mock).toHaveReceivedCommandTimes(HeadObjectCommand, 1);
    expect(s3Mock).toHaveReceivedCommandWith(CopyObjectCommand, copyInput('releases/def-2/bundle.tgz'));
    expect(s3Mock).toHaveReceivedCommandTimes(CopyObjectCommand, 1);
    expect(outcome?.bundles).toEqual([{ key: 'releases/def-2/bundle.tgz', result: 'reencrypted' }]);
  });

  test('no release yet (both none), a missing parameter, or an id the instances refuse: nothing to do, SUCCESS', async () => {
    ssmMock.on(GetParameterCommand, { Name: BLUE }).resolves({ Parameter: { Name: BLUE, Value: 'none' } });
    ssmMock.on(GetParameterCommand, { Name: GREEN }).rejects(new ParameterNotFound({ message: 'not found', $metadata: {} }));
    await run(request('Create'));
    expect(s3Mock).toHaveReceivedCommandTimes(HeadObjectCommand, 0);
    expect(sent()).toMatchObject({ Status: 'SUCCESS', Reason: 'no release recorded for either color: nothing to re-encrypt' });

    put.mockClear();
    releases('../../etc', 'a/b');
    await run(request('Create'));
    expect(s3Mock).toHaveReceivedCommandTimes(HeadObjectCommand, 0);
    expect(s3Mock).toHaveReceivedCommandTimes(CopyObjectCommand, 0);
    expect(sent()).toMatchObject({ Status: 'SUCCESS' });
  });

  test('a bundle already under the new key (SSEKMSKeyId) is skipped: no copy', async () => {
    releases('abc-1', 'def-2');
    s3Mock.on(HeadObjectCommand, { Key: 'releases/abc-1/bundle.tgz' }).resolves({ SSEKMSKeyId: NEW_KEY });
    s3Mock.on(HeadObjectCommand, { Key: 'releases/def-2/bundle.tgz' }).resolves({ SSEKMSKeyId: OLD_KEY });
    s3Mock.on(CopyObjectCommand).resolves({});
    const outcome = await run(request('Create'));
    expect(s3Mock).toHaveReceivedCommandTimes(CopyObjectCommand, 1);
    expect(s3Mock).toHaveReceivedCommandWith(CopyObjectCommand, copyInput('releases/def-2/bundle.tgz'));
    expect(outcome?.bundles).toEqual([
      { key: 'releases/abc-1/bundle.tgz', result: 'already-current' },
      { key: 'releases/def-2/bundle.tgz', result: 'reencrypted' },
    ]);
    expect(sent().Status).toBe('SUCCESS');
  });

  test('a run again after success (both already under the new key) copies nothing', async () => {
    releases('abc-1', 'def-2');
    s3Mock.on(HeadObjectCommand).resolves({ SSEKMSKeyId: NEW_KEY });
    await run(request('Update', {}, { PhysicalResourceId: `bundle-reencrypt-${BUCKET}` }));
    expect(s3Mock).toHaveReceivedCommandTimes(CopyObjectCommand, 0);
    expect(sent().Status).toBe('SUCCESS');
  });

  test('a bundle that no longer exists (HEAD 404, or gone before the copy) is skipped', async () => {
    releases('abc-1', 'def-2');
    s3Mock.on(HeadObjectCommand, { Key: 'releases/abc-1/bundle.tgz' }).rejects(s3Error('NotFound', 404));
    s3Mock.on(HeadObjectCommand, { Key: 'releases/def-2/bundle.tgz' }).resolves({ SSEKMSKeyId: OLD_KEY });
    s3Mock.on(CopyObjectCommand).rejects(s3Error('NoSuchKey', 404));
    const outcome = await run(request('Create'));
    expect(outcome?.bundles).toEqual([
      { key: 'releases/abc-1/bundle.tgz', result: 'missing' },
      { key: 'releases/def-2/bundle.tgz', result: 'missing' },
    ]);
    expect(s3Mock).toHaveReceivedCommandTimes(CopyObjectCommand, 1);
    expect(sent().Status).toBe('SUCCESS');
  });

  test('only keys under the prefix are touched: another prefix is used as given', async () => {
    releases('abc-1', 'none');
    s3Mock.on(HeadObjectCommand).resolves({ SSEKMSKeyId: OLD_KEY });
    s3Mock.on(CopyObjectCommand).resolves({});
    await run(request('Create', { Prefix: 'bundles/' }));
    expect(s3Mock).toHaveReceivedCommandWith(CopyObjectCommand, copyInput('bundles/abc-1/bundle.tgz'));
    for (const call of s3Mock.calls()) expect((call.args[0].input as { Key: string }).Key.startsWith('bundles/')).toBe(true);
  });
});

describe('errors', () => {
  test('throttling and a 503 are tried again after a pause, then the copy succeeds', async () => {
    releases('abc-1', 'none');
    ssmMock.on(GetParameterCommand, { Name: BLUE })
      .rejectsOnce(Object.assign(new Error('Rate exceeded'), { name: 'ThrottlingException', $metadata: { httpStatusCode: 400 } }))
      .resolves({ Parameter: { Name: BLUE, Value: 'abc-1' } });
    s3Mock.on(HeadObjectCommand).resolves({ SSEKMSKeyId: OLD_KEY });
    s3Mock.on(CopyObjectCommand)
      .rejectsOnce(s3Error('SlowDown', 503, 'server'))
      .rejectsOnce(s3Error('ServiceUnavailable', 503, 'server'))
      .resolves({});
    const outcome = await run(request('Create'));
    expect(outcome?.status).toBe('SUCCESS');
    expect(s3Mock).toHaveReceivedCommandTimes(CopyObjectCommand, 3);
    expect(ssmMock).toHaveReceivedCommandTimes(GetParameterCommand, 3);
    expect(sleep.mock.calls.map(([ms]) => ms)).toEqual([RETRY_DELAY_MS, RETRY_DELAY_MS, RETRY_DELAY_MS * 2]);
  });

  test('throttling that never ends fails after CALL_ATTEMPTS tries, naming the API and the object', async () => {
    releases('abc-1', 'none');
    s3Mock.on(HeadObjectCommand).rejects(s3Error('SlowDown', 503, 'server'));
    await run(request('Create'));
    expect(s3Mock).toHaveReceivedCommandTimes(HeadObjectCommand, CALL_ATTEMPTS);
    expect(sent()).toMatchObject({ Status: 'FAILED', Reason: expect.stringContaining(`s3:HeadObject failed for s3://${BUCKET}/releases/abc-1/bundle.tgz: SlowDown`) });
  });

  test('AccessDenied on the copy fails the resource at once with a clear reason (the rollback keeps the old key)', async () => {
    releases('abc-1', 'def-2');
    s3Mock.on(HeadObjectCommand).resolves({ SSEKMSKeyId: OLD_KEY });
    s3Mock.on(CopyObjectCommand).rejects(s3Error('AccessDenied', 403));
    const outcome = await run(request('Create'));
    expect(s3Mock).toHaveReceivedCommandTimes(CopyObjectCommand, 1);
    expect(sleep).not.toHaveBeenCalled();
    expect(outcome?.status).toBe('FAILED');
    const response = sent();
    expect(response.Status).toBe('FAILED');
    expect(response.Reason).toContain(`s3:CopyObject failed for s3://${BUCKET}/releases/abc-1/bundle.tgz: AccessDenied`);
    expect(response.Reason).toContain('CloudFormation rolls this update back, which keeps the old key');
  });

  test('AccessDenied on a parameter fails too: a live release not known is not skipped', async () => {
    ssmMock.on(GetParameterCommand).rejects(Object.assign(new Error('not authorized'), { name: 'AccessDeniedException', $metadata: { httpStatusCode: 400 } }));
    await run(request('Create'));
    expect(sent()).toMatchObject({ Status: 'FAILED', Reason: expect.stringContaining(`ssm:GetParameter failed for ${BLUE}: AccessDeniedException`) });
    expect(s3Mock.calls()).toHaveLength(0);
  });

  test.each([
    ['KeyArn', 'alias/aws/s3'],
    ['BucketName', ''],
    ['Prefix', '*'],
    ['ReleaseParameterNames', []],
  ])('a bad %s fails Create, naming the property', async (name, value) => {
    await run(request('Create', { [name]: value }));
    expect(sent()).toMatchObject({ Status: 'FAILED', Reason: expect.stringContaining(`the property ${name} must`) });
    expect(s3Mock.calls()).toHaveLength(0);
    expect(ssmMock.calls()).toHaveLength(0);
  });

  test('an unknown RequestType fails', async () => {
    await run(request('Rotate'));
    expect(sent()).toMatchObject({ Status: 'FAILED', Reason: expect.stringContaining('unknown RequestType "Rotate"') });
  });
});

describe('Delete, and what is not a CloudFormation request', () => {
  test('Delete does nothing and answers SUCCESS, with its physical id', async () => {
    const outcome = await run(request('Delete', {}, { PhysicalResourceId: `bundle-reencrypt-${BUCKET}` }));
    expect(outcome).toMatchObject({ status: 'SUCCESS', bundles: [] });
    expect(s3Mock.calls()).toHaveLength(0);
    expect(ssmMock.calls()).toHaveLength(0);
    expect(sent()).toMatchObject({ Status: 'SUCCESS', PhysicalResourceId: `bundle-reencrypt-${BUCKET}` });
  });

  test('Delete with bad properties still succeeds (a stack must be deletable)', async () => {
    await run(request('Delete', { KeyArn: 'nonsense' }, { PhysicalResourceId: 'x' }));
    expect(sent().Status).toBe('SUCCESS');
  });

  test('an event without ResponseURL is logged and not answered', async () => {
    expect(await run({ RequestType: 'Create' })).toBeUndefined();
    expect(put).not.toHaveBeenCalled();
  });

  test('a response PUT that fails is retried; when every PUT fails the handler throws (Lambda retries the event)', async () => {
    put.mockRejectedValueOnce(new Error('HTTP 500')).mockResolvedValueOnce(undefined);
    await run(request('Delete', {}, { PhysicalResourceId: 'x' }));
    expect(put).toHaveBeenCalledTimes(2);
    put.mockReset();
    put.mockRejectedValue(new Error('HTTP 500'));
    await expect(run(request('Delete', {}, { PhysicalResourceId: 'x' }))).rejects.toThrow(/could not respond to CloudFormation/);
  });

  test('a duplicate Create (CloudFormation or Lambda retried it) after a first success copies nothing more', async () => {
    releases('abc-1', 'none');
    s3Mock.on(HeadObjectCommand).resolvesOnce({ SSEKMSKeyId: OLD_KEY }).resolves({ SSEKMSKeyId: NEW_KEY });
    s3Mock.on(CopyObjectCommand).resolves({});
    await run(request('Create'));
    await run(request('Create'));
    expect(s3Mock).toHaveReceivedCommandTimes(CopyObjectCommand, 1);
    expect(put).toHaveBeenCalledTimes(2);
  });
});
