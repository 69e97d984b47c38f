import { CodePipelineClient, PutJobFailureResultCommand, PutJobSuccessResultCommand } from '@aws-sdk/client-codepipeline';
import {
  BatchGetImageCommand,
  ECRClient,
  ECRServiceException,
  ImageAlreadyExistsException,
  ImageTagAlreadyExistsException,
  PutImageCommand,
  RepositoryNotFoundException,
} from '@aws-sdk/client-ecr';
import {
  AccessDeniedException,
  ClusterNotFoundException,
  DescribeServiceDeploymentsCommand,
  DescribeServiceRevisionsCommand,
  ECSClient,
  ECSServiceException,
  InvalidParameterException,
  ListServiceDeploymentsCommand,
  ServerException,
  ServiceNotFoundException,
} from '@aws-sdk/client-ecs';
import type { ServiceDeploymentBrief, ServiceDeploymentStatus } from '@aws-sdk/client-ecs';
import { ParameterLimitExceeded, PutParameterCommand, SSMClient, SSMServiceException, TooManyUpdates } from '@aws-sdk/client-ssm';
import { AwsClientStub, mockClient } from 'aws-sdk-client-mock';
import 'aws-sdk-client-mock-jest';
import type { JobOutcome, RecordReleaseDeps } from '../../src/handlers/record-release.lambda';

// The handler creates its SDK clients when loaded, and on Node < 22 the SDK then emits a NodeVersionSupportWarning,
// which keeps a jest worker from exiting cleanly. The Lambda runtime is nodejs24.x, where the warning does not apply,
// so the tests switch it off before loading the handler.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
const {
  CODEPIPELINE_MESSAGE_LIMIT,
  LIST_PAGE_SIZE,
  MANIFEST_MEDIA_TYPES,
  MAX_POLLS,
  POLL_DELAY_MS,
  RELEASED_TAG_PREFIX,
  REPORTING_MARGIN_MS,
  handler,
  isThrottling,
  parseContinuationToken,
  parseImageUri,
  parseUserParameters,
  pickNewest,
  readConfig,
  recordRelease,
  // eslint-disable-next-line @typescript-eslint/no-require-imports
}: typeof import('../../src/handlers/record-release.lambda') = require('../../src/handlers/record-release.lambda');

// ---------------------------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------------------------

const CLUSTER = 'release-cluster';
const SERVICE = 'web';
const CONTAINER = 'app';
const PARAMETER = '/delivery/web/image-uri';
const REPOSITORY = 'web';
const ENV = { CLUSTER_NAME: CLUSTER, SERVICE_NAME: SERVICE, CONTAINER_NAME: CONTAINER, IMAGE_PARAMETER_NAME: PARAMETER, REPOSITORY_NAME: REPOSITORY };

const IMAGE = '123456789012.dkr.ecr.us-east-1.amazonaws.com/web:abc1234';
const OLD_IMAGE = '123456789012.dkr.ecr.us-east-1.amazonaws.com/web:0ff1ce0';
const TAG = 'abc1234';
const MANIFEST = JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', layers: [] });
const MANIFEST_TYPE = 'application/vnd.oci.image.manifest.v1+json';
const JOB_ID = '11111111-abcd-1111-abcd-111111111111';
const SECRET = 'artifact-secret-that-must-never-be-logged';

const DEPLOYMENT_ARN = (id: string) => `arn:aws:ecs:us-east-1:123456789012:service-deployment/${CLUSTER}/${SERVICE}/${id}`;
const NEW_DEPLOYMENT = DEPLOYMENT_ARN('NewNewNewNewNewNewNewNe');
const OLD_DEPLOYMENT = DEPLOYMENT_ARN('OldOldOldOldOldOldOldOl');
const OLDER_DEPLOYMENT = DEPLOYMENT_ARN('OlderOlderOlderOlderOld');
const GREEN = `arn:aws:ecs:us-east-1:123456789012:service-revision/${CLUSTER}/${SERVICE}/9313423515462893900`;
const BLUE = `arn:aws:ecs:us-east-1:123456789012:service-revision/${CLUSTER}/${SERVICE}/1920498462936580504`;

const T_OLDER = new Date('2025-06-01T08:00:00Z');
const T_OLD = new Date('2025-06-02T08:00:00Z');
const T_NEW = new Date('2025-06-03T08:00:00Z');

function brief(serviceDeploymentArn: string, createdAt: Date, status: ServiceDeploymentStatus = 'SUCCESSFUL'): ServiceDeploymentBrief {
  return { serviceDeploymentArn, createdAt, status, targetServiceRevisionArn: serviceDeploymentArn === NEW_DEPLOYMENT ? GREEN : BLUE };
}

/** The event of "Invoke an AWS Lambda function in a pipeline in CodePipeline", with the fields this handler reads. */
function jobEvent(options: { userParameters?: string | null; continuationToken?: string } = {}) {
  const userParameters = options.userParameters === undefined ? JSON.stringify({ imageUri: IMAGE }) : options.userParameters;
  return {
    'CodePipeline.job': {
      id: JOB_ID,
      accountId: '123456789012',
      data: {
        actionConfiguration: {
          configuration: { FunctionName: 'record-release', ...(userParameters === null ? {} : { UserParameters: userParameters }) },
        },
        inputArtifacts: [],
        outputArtifacts: [],
        artifactCredentials: { accessKeyId: 'AKIAIOSFODNN7EXAMPLE', secretAccessKey: SECRET, sessionToken: SECRET },
        ...(options.continuationToken === undefined ? {} : { continuationToken: options.continuationToken }),
      },
    },
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Mocks
// ---------------------------------------------------------------------------------------------------------------

let ecsMock: AwsClientStub<ECSClient>;
let ssmMock: AwsClientStub<SSMClient>;
let ecrMock: AwsClientStub<ECRClient>;
let cpMock: AwsClientStub<CodePipelineClient>;
let logSpy: jest.SpyInstance;
let errorSpy: jest.SpyInstance;
const savedEnv = process.env;

/** ECS answers: the newest deployment (listed after an older one) has `status`; its target revision runs `image`. */
function ecsAnswers(status: ServiceDeploymentStatus | string, options: { statusReason?: string; image?: string } = {}) {
  ecsMock.on(ListServiceDeploymentsCommand).resolves({
    serviceDeployments: [brief(OLD_DEPLOYMENT, T_OLD), brief(NEW_DEPLOYMENT, T_NEW, status as ServiceDeploymentStatus)],
  });
  ecsMock.on(DescribeServiceDeploymentsCommand).resolves({
    serviceDeployments: [{
      serviceDeploymentArn: NEW_DEPLOYMENT,
      status: status as ServiceDeploymentStatus,
      ...(options.statusReason === undefined ? {} : { statusReason: options.statusReason }),
      sourceServiceRevisions: [{ arn: BLUE }],
      targetServiceRevision: { arn: GREEN },
    }],
    failures: [],
  });
  ecsMock.on(DescribeServiceRevisionsCommand).resolves({
    serviceRevisions: [{
      serviceRevisionArn: GREEN,
      containerImages: [
        { containerName: 'log-router', image: 'public.ecr.aws/aws-observability/aws-for-fluent-bit:stable' },
        { containerName: CONTAINER, image: options.image ?? IMAGE, imageDigest: 'sha256:5e1f0c8e' },
      ],
    }],
    failures: [],
  });
}

beforeEach(() => {
  process.env = { ...savedEnv, ...ENV };
  ecsMock = mockClient(ECSClient);
  ssmMock = mockClient(SSMClient);
  ecrMock = mockClient(ECRClient);
  cpMock = mockClient(CodePipelineClient);
  ecrMock.on(BatchGetImageCommand).resolves({
    images: [{ repositoryName: REPOSITORY, imageId: { imageTag: TAG, imageDigest: 'sha256:5e1f0c8e' }, imageManifest: MANIFEST, imageManifestMediaType: MANIFEST_TYPE }],
    failures: [],
  });
  ecrMock.on(PutImageCommand).resolves({ image: { repositoryName: REPOSITORY, imageId: { imageTag: `released-${TAG}`, imageDigest: 'sha256:5e1f0c8e' } } });
  ssmMock.onAnyCommand().resolves({ Version: 7, Tier: 'Standard' });
  cpMock.onAnyCommand().resolves({});
  ecsAnswers('SUCCESSFUL');
  logSpy = jest.spyOn(console, 'log').mockImplementation(() => undefined);
  errorSpy = jest.spyOn(console, 'error').mockImplementation(() => undefined);
});

afterEach(() => {
  ecsMock.restore();
  ssmMock.restore();
  ecrMock.restore();
  cpMock.restore();
  jest.restoreAllMocks();
  jest.useRealTimers();
  process.env = savedEnv;
});

/** Every command sent to ECS, ECR, SSM and CodePipeline, in the order sent, as `[command name, input]`. */
function sent(): Array<[string, unknown]> {
  const calls = [...ecsMock.calls(), ...ecrMock.calls(), ...ssmMock.calls(), ...cpMock.calls()].sort((a, b) => (a.calledBefore(b) ? -1 : 1));
  return calls.map((c) => {
    const command = c.args[0] as { constructor: { name: string }; input: unknown };
    return [command.constructor.name, command.input];
  });
}

const LIST: [string, unknown] = ['ListServiceDeploymentsCommand', { cluster: CLUSTER, service: SERVICE, maxResults: LIST_PAGE_SIZE }];
const DESCRIBE_NEW: [string, unknown] = ['DescribeServiceDeploymentsCommand', { serviceDeploymentArns: [NEW_DEPLOYMENT] }];
const DESCRIBE_GREEN: [string, unknown] = ['DescribeServiceRevisionsCommand', { serviceRevisionArns: [GREEN] }];
const BATCH_GET: [string, unknown] = ['BatchGetImageCommand', {
  repositoryName: REPOSITORY,
  imageIds: [{ imageTag: TAG }],
  acceptedMediaTypes: [
    'application/vnd.docker.distribution.manifest.v2+json',
    'application/vnd.docker.distribution.manifest.list.v2+json',
    'application/vnd.oci.image.manifest.v1+json',
    'application/vnd.oci.image.index.v1+json',
  ],
}];
const PUT_IMAGE: [string, unknown] = ['PutImageCommand', {
  repositoryName: REPOSITORY,
  imageManifest: MANIFEST,
  imageManifestMediaType: MANIFEST_TYPE,
  imageTag: `released-${TAG}`,
}];
const PUT_PARAMETER: [string, unknown] = ['PutParameterCommand', { Name: PARAMETER, Value: IMAGE, Type: 'String', Overwrite: true }];
const JOB_SUCCESS: [string, unknown] = ['PutJobSuccessResultCommand', { jobId: JOB_ID, outputVariables: { imageUri: IMAGE } }];
const continueWith = (polls: number): [string, unknown] => ['PutJobSuccessResultCommand', { jobId: JOB_ID, continuationToken: JSON.stringify({ polls }) }];
const failureWith = (message: string | jest.AsymmetricMatcher, type = 'JobFailed'): [string, unknown] =>
  ['PutJobFailureResultCommand', { jobId: JOB_ID, failureDetails: { type, message } }];

/** The failure message sent to CodePipeline (exactly one failure expected). */
function failureMessage(): string {
  expect(cpMock).toHaveReceivedCommandTimes(PutJobFailureResultCommand, 1);
  return cpMock.commandCalls(PutJobFailureResultCommand)[0].args[0].input.failureDetails?.message ?? '';
}

/** Runs the handler's logic with a fake sleep that records its pauses instead of waiting. */
async function run(event: unknown, deps: RecordReleaseDeps = {}): Promise<{ outcome: JobOutcome | undefined; sleeps: number[] }> {
  const sleeps: number[] = [];
  const outcome = await recordRelease(event, { sleep: async (ms) => { sleeps.push(ms); }, ...deps });
  return { outcome, sleeps };
}

/** The structured log lines written with `console.log`. */
function logLines(): Array<Record<string, unknown>> {
  return logSpy.mock.calls.map(([line]) => JSON.parse(String(line)));
}

function awsError<T extends Error>(error: T, httpStatusCode = 400): T {
  return Object.assign(error, { $metadata: { httpStatusCode } });
}

const accessDenied = (action: string) => awsError(new AccessDeniedException({
  message: `User: arn:aws:sts::123456789012:assumed-role/record-release/fn is not authorized to perform: ${action}`,
  $metadata: {},
}));
const throttled = () => awsError(new ECSServiceException({ name: 'ThrottlingException', $fault: 'client', message: 'Rate exceeded', $metadata: {} }));

// ---------------------------------------------------------------------------------------------------------------
// Pure helpers
// ---------------------------------------------------------------------------------------------------------------

describe('parseUserParameters', () => {
  test('reads imageUri and ignores other keys', () => {
    expect(parseUserParameters(JSON.stringify({ imageUri: IMAGE }))).toEqual({ ok: true, value: { imageUri: IMAGE } });
    expect(parseUserParameters(JSON.stringify({ imageUri: IMAGE, note: 'x' }))).toEqual({ ok: true, value: { imageUri: IMAGE } });
  });

  test.each([
    [undefined, 'UserParameters is missing: expected {"imageUri":"<image URI>"}'],
    ['', 'UserParameters is missing: expected {"imageUri":"<image URI>"}'],
    [42, 'UserParameters must be a string of JSON, got 42'],
    ['[1]', 'UserParameters must be a JSON object like {"imageUri":"<image URI>"}, got [1]'],
    ['"web:1"', 'UserParameters must be a JSON object like {"imageUri":"<image URI>"}, got "web:1"'],
    ['{}', 'UserParameters.imageUri must be a non-empty string, got missing'],
    ['{"imageUri":""}', 'UserParameters.imageUri must be a non-empty string, got ""'],
    ['{"imageUri":"  "}', 'UserParameters.imageUri must be a non-empty string, got "  "'],
    ['{"imageUri":7}', 'UserParameters.imageUri must be a non-empty string, got 7'],
    ['{"imageUri":"web:1 web:2"}', 'UserParameters.imageUri must not contain whitespace, got "web:1 web:2"'],
  ])('rejects %j', (input, error) => {
    expect(parseUserParameters(input)).toEqual({ ok: false, error });
  });

  test('rejects text that is not JSON, quoting it', () => {
    const parsed = parseUserParameters('imageUri=web:1');
    expect(parsed.ok).toBe(false);
    expect(!parsed.ok && parsed.error).toMatch(/^UserParameters is not valid JSON \(.+\): "imageUri=web:1"$/);
  });
});

describe('parseContinuationToken', () => {
  test('no token: the first invocation', () => {
    expect(parseContinuationToken(undefined)).toEqual({ polls: 0, valid: true });
    expect(parseContinuationToken('')).toEqual({ polls: 0, valid: true });
  });

  test('reads the polls an earlier invocation wrote', () => {
    expect(parseContinuationToken('{"polls":0}')).toEqual({ polls: 0, valid: true });
    expect(parseContinuationToken('{"polls":42}')).toEqual({ polls: 42, valid: true });
  });

  test.each(['not json', '[]', '{}', '{"polls":-1}', '{"polls":1.5}', '{"polls":"3"}', 'null', 12])('reads %j as 0 polls, flagged invalid', (token) => {
    expect(parseContinuationToken(token)).toEqual({ polls: 0, valid: false });
  });
});

describe('isThrottling', () => {
  test.each([
    ['ECS ThrottlingException', throttled()],
    ['ECS ServerException', new ServerException({ message: 'Service unavailable', $metadata: {} })],
    ['SSM TooManyUpdates', new TooManyUpdates({ message: 'concurrent updates', $metadata: {} })],
    ['TooManyRequestsException', { name: 'TooManyRequestsException' }],
    ['Throttling', { name: 'Throttling' }],
    ['RequestLimitExceeded', { name: 'RequestLimitExceeded' }],
    ['ServiceUnavailableError', { name: 'ServiceUnavailableError' }],
    ['InternalServerError', { name: 'InternalServerError' }],
    ['HTTP 503', { name: 'UnknownError', $metadata: { httpStatusCode: 503 } }],
    ['$retryable', { name: 'SomethingNew', $retryable: { throttling: true } }],
    ['network reset', Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' })],
  ])('true for %s', (_label, err) => {
    expect(isThrottling(err)).toBe(true);
  });

  test.each([
    ['AccessDeniedException', accessDenied('ecs:ListServiceDeployments')],
    ['ClusterNotFoundException', new ClusterNotFoundException({ message: 'Cluster not found.', $metadata: {} })],
    ['ServiceNotFoundException', new ServiceNotFoundException({ message: 'Service not found.', $metadata: {} })],
    ['InvalidParameterException', new InvalidParameterException({ message: 'bad ARN', $metadata: {} })],
    ['ParameterLimitExceeded', new ParameterLimitExceeded({ message: 'too many parameters', $metadata: {} })],
    ['a plain Error', new Error('boom')],
    ['a string', 'ThrottlingException'],
    ['undefined', undefined],
  ])('false for %s', (_label, err) => {
    expect(isThrottling(err)).toBe(false);
  });
});

describe('pickNewest', () => {
  test('goes by createdAt, not by position', () => {
    const deployments = [brief(OLDER_DEPLOYMENT, T_OLDER), brief(NEW_DEPLOYMENT, T_NEW), brief(OLD_DEPLOYMENT, T_OLD)];
    expect(pickNewest(deployments)?.serviceDeploymentArn).toBe(NEW_DEPLOYMENT);
    expect(pickNewest([...deployments].reverse())?.serviceDeploymentArn).toBe(NEW_DEPLOYMENT);
  });

  test('skips entries without an ARN and counts entries without a date as oldest', () => {
    expect(pickNewest([{ createdAt: T_NEW }, { serviceDeploymentArn: OLD_DEPLOYMENT }, brief(OLDER_DEPLOYMENT, T_OLDER)])?.serviceDeploymentArn)
      .toBe(OLDER_DEPLOYMENT);
    expect(pickNewest([])).toBeUndefined();
  });
});

describe('parseImageUri', () => {
  test.each([
    [IMAGE, { registry: '123456789012.dkr.ecr.us-east-1.amazonaws.com', repository: 'web', tag: TAG }],
    ['123456789012.dkr.ecr.us-east-1.amazonaws.com/team/web/api:1a2b3c4-17', { registry: '123456789012.dkr.ecr.us-east-1.amazonaws.com', repository: 'team/web/api', tag: '1a2b3c4-17' }],
    ['registry.example:5000/web:v1', { registry: 'registry.example:5000', repository: 'web', tag: 'v1' }],
  ])('splits %s', (uri, parts) => {
    expect(parseImageUri(uri)).toEqual({ ok: true, value: parts });
  });

  test.each([
    ['web:1'],
    ['123456789012.dkr.ecr.us-east-1.amazonaws.com/web'],
    ['123456789012.dkr.ecr.us-east-1.amazonaws.com/web:'],
    ['123456789012.dkr.ecr.us-east-1.amazonaws.com/:abc'],
    ['registry.example:5000/web'],
  ])('refuses %s', (uri) => {
    expect(parseImageUri(uri)).toEqual({ ok: false, error: `imageUri must be <registry>/<repository>:<tag>, got ${JSON.stringify(uri)}` });
  });

  test('refuses a digest reference', () => {
    const uri = '123456789012.dkr.ecr.us-east-1.amazonaws.com/web@sha256:5e1f0c8e';
    expect(parseImageUri(uri)).toEqual({
      ok: false,
      error: `imageUri must be <registry>/<repository>:<tag>, got ${JSON.stringify(uri)} (a digest reference has no tag to release)`,
    });
  });
});

describe('readConfig', () => {
  test('reads the five variables', () => {
    expect(readConfig(ENV)).toEqual({
      ok: true,
      value: { clusterName: CLUSTER, serviceName: SERVICE, containerName: CONTAINER, imageParameterName: PARAMETER, repositoryName: REPOSITORY },
    });
  });

  test('names every missing variable', () => {
    expect(readConfig({ CLUSTER_NAME: CLUSTER, CONTAINER_NAME: ' ' })).toEqual({
      ok: false,
      error: 'environment variable(s) not set: SERVICE_NAME, CONTAINER_NAME, IMAGE_PARAMETER_NAME, REPOSITORY_NAME',
    });
  });
});

// ---------------------------------------------------------------------------------------------------------------
// The job
// ---------------------------------------------------------------------------------------------------------------

describe('successful release', () => {
  test('records the image, then reports success with the output variable', async () => {
    const { outcome, sleeps } = await run(jobEvent());
    expect(outcome).toEqual({ result: 'recorded', imageUri: IMAGE });
    expect(sent()).toEqual([LIST, DESCRIBE_NEW, DESCRIBE_GREEN, BATCH_GET, PUT_IMAGE, PUT_PARAMETER, JOB_SUCCESS]);
    expect(ssmMock).toHaveReceivedCommandWith(PutParameterCommand, { Name: PARAMETER, Value: IMAGE, Type: 'String', Overwrite: true });
    expect(cpMock).not.toHaveReceivedCommand(PutJobFailureResultCommand);
    expect(sleeps).toEqual([]);
    // The parameter is written before CodePipeline hears about the success.
    const putParameter = ssmMock.commandCalls(PutParameterCommand)[0];
    const jobSuccess = cpMock.commandCalls(PutJobSuccessResultCommand)[0];
    expect(putParameter.calledBefore(jobSuccess)).toBe(true);
  });

  test('tags the image released-<tag> with its own manifest before writing the parameter', async () => {
    expect(RELEASED_TAG_PREFIX).toBe('released-');
    expect(MANIFEST_MEDIA_TYPES).toEqual((BATCH_GET[1] as { acceptedMediaTypes: string[] }).acceptedMediaTypes);
    await run(jobEvent());
    expect(ecrMock).toHaveReceivedCommandTimes(BatchGetImageCommand, 1);
    expect(ecrMock).toHaveReceivedCommandTimes(PutImageCommand, 1);
    expect(ecrMock.commandCalls(BatchGetImageCommand)[0].args[0].input).toEqual(BATCH_GET[1]);
    expect(ecrMock.commandCalls(PutImageCommand)[0].args[0].input).toEqual(PUT_IMAGE[1]);
    const putImage = ecrMock.commandCalls(PutImageCommand)[0];
    const putParameter = ssmMock.commandCalls(PutParameterCommand)[0];
    expect(ecrMock.commandCalls(BatchGetImageCommand)[0].calledBefore(putImage)).toBe(true);
    expect(putImage.calledBefore(putParameter)).toBe(true);
    expect(logLines()).toEqual([expect.objectContaining({ repositoryName: REPOSITORY, releasedTag: `released-${TAG}`, alreadyTagged: false })]);
  });

  test('an image that already has the released tag (re-release, stage rollback) is still recorded', async () => {
    ecrMock.on(PutImageCommand).rejects(awsError(new ImageAlreadyExistsException({
      message: `Image with digest 'sha256:5e1f0c8e' and tag 'released-${TAG}' already exists in the repository`,
      $metadata: {},
    })));
    const { outcome } = await run(jobEvent());
    expect(outcome).toEqual({ result: 'recorded', imageUri: IMAGE });
    expect(sent()).toEqual([LIST, DESCRIBE_NEW, DESCRIBE_GREEN, BATCH_GET, PUT_IMAGE, PUT_PARAMETER, JOB_SUCCESS]);
    expect(logLines()).toEqual([expect.objectContaining({ message: 'release recorded: production runs the image', alreadyTagged: true })]);
  });

  test('a repository path with slashes is the repository name', async () => {
    const image = '123456789012.dkr.ecr.us-east-1.amazonaws.com/team/web:1a2b3c4-17';
    process.env.REPOSITORY_NAME = 'team/web';
    ecsAnswers('SUCCESSFUL', { image });
    await run(jobEvent({ userParameters: JSON.stringify({ imageUri: image }) }));
    expect(ecrMock).toHaveReceivedCommandWith(BatchGetImageCommand, { repositoryName: 'team/web', imageIds: [{ imageTag: '1a2b3c4-17' }] });
    expect(ecrMock).toHaveReceivedCommandWith(PutImageCommand, { repositoryName: 'team/web', imageTag: 'released-1a2b3c4-17' });
    expect(ssmMock).toHaveReceivedCommandWith(PutParameterCommand, { Name: PARAMETER, Value: image });
  });

  test('through the Lambda entry point, with a context', async () => {
    await expect(handler(jobEvent(), { getRemainingTimeInMillis: () => 60_000 })).resolves.toEqual({ result: 'recorded', imageUri: IMAGE });
    expect(sent()).toEqual([LIST, DESCRIBE_NEW, DESCRIBE_GREEN, BATCH_GET, PUT_IMAGE, PUT_PARAMETER, JOB_SUCCESS]);
  });

  test('logs one JSON line for the decision, and never the event (it carries artifact credentials)', async () => {
    await run(jobEvent());
    expect(logLines()).toEqual([expect.objectContaining({
      level: 'INFO',
      message: 'release recorded: production runs the image',
      jobId: JOB_ID,
      cluster: CLUSTER,
      service: SERVICE,
      imageUri: IMAGE,
      serviceDeploymentArn: NEW_DEPLOYMENT,
      status: 'SUCCESSFUL',
      parameterName: PARAMETER,
    })]);
    expect(JSON.stringify([logSpy.mock.calls, errorSpy.mock.calls])).not.toContain(SECRET);
  });

  test('records even when the last allowed poll finds the deployment finished', async () => {
    await run(jobEvent({ continuationToken: JSON.stringify({ polls: MAX_POLLS }) }));
    expect(sent()).toEqual([LIST, DESCRIBE_NEW, DESCRIBE_GREEN, BATCH_GET, PUT_IMAGE, PUT_PARAMETER, JOB_SUCCESS]);
  });
});

describe('deployment not finished', () => {
  test.each(['IN_PROGRESS', 'PENDING'])('%s: pauses, then asks CodePipeline to invoke again with polls 1', async (status) => {
    ecsAnswers(status, { statusReason: 'ECS deployment is shifting production traffic' });
    const { outcome, sleeps } = await run(jobEvent());
    expect(outcome).toEqual({ result: 'continue', polls: 1 });
    expect(sleeps).toEqual([POLL_DELAY_MS]);
    expect(sent()).toEqual([LIST, DESCRIBE_NEW, continueWith(1)]);
    expect(ssmMock).not.toHaveReceivedAnyCommand();
    expect(logLines()).toEqual([expect.objectContaining({
      message: 'release not finished: checking again later',
      status,
      polls: 0,
      nextPolls: 1,
      reason: `ECS deployment ${NEW_DEPLOYMENT} is ${status}: ECS deployment is shifting production traffic`,
    })]);
  });

  test('counts polls across invocations through the continuation token', async () => {
    ecsAnswers('IN_PROGRESS');
    await run(jobEvent({ continuationToken: JSON.stringify({ polls: 7 }) }));
    expect(sent()).toEqual([LIST, DESCRIBE_NEW, continueWith(8)]);
  });

  test('still continues on the poll before the limit', async () => {
    ecsAnswers('IN_PROGRESS');
    await run(jobEvent({ continuationToken: JSON.stringify({ polls: MAX_POLLS - 1 }) }));
    expect(sent()).toEqual([LIST, DESCRIBE_NEW, continueWith(MAX_POLLS)]);
  });

  test('fails once MAX_POLLS answers have been given, without pausing or writing the parameter', async () => {
    ecsAnswers('IN_PROGRESS');
    const { outcome, sleeps } = await run(jobEvent({ continuationToken: JSON.stringify({ polls: MAX_POLLS }) }));
    const message = `the ECS deployment did not finish in time: still not finished after ${MAX_POLLS + 1} checks `
      + `(ECS deployment ${NEW_DEPLOYMENT} is IN_PROGRESS); the parameter ${PARAMETER} is unchanged`;
    expect(outcome).toEqual({ result: 'failed', message });
    expect(sent()).toEqual([LIST, DESCRIBE_NEW, failureWith(message)]);
    expect(ssmMock).not.toHaveReceivedAnyCommand();
    expect(sleeps).toEqual([]);
  });

  test('pauses before reporting, never past the Lambda deadline minus the reporting margin', async () => {
    ecsAnswers('IN_PROGRESS');
    const now = () => 1_000_000;
    const reportsAtSleep: number[] = [];
    const sleeps: number[] = [];
    const sleep = async (ms: number) => {
      sleeps.push(ms);
      reportsAtSleep.push(cpMock.calls().length);
    };
    await recordRelease(jobEvent(), { sleep, now, deadline: now() + 12_000 });
    await recordRelease(jobEvent(), { sleep, now, deadline: now() + REPORTING_MARGIN_MS - 1 });
    await recordRelease(jobEvent(), { sleep, now, deadline: now() + 600_000 });
    expect(sleeps).toEqual([12_000 - REPORTING_MARGIN_MS, 0, POLL_DELAY_MS]);
    expect(reportsAtSleep).toEqual([0, 1, 2]);
    expect(sent()).toEqual([LIST, DESCRIBE_NEW, continueWith(1), LIST, DESCRIBE_NEW, continueWith(1), LIST, DESCRIBE_NEW, continueWith(1)]);
  });

  test('the Lambda entry point really waits POLL_DELAY_MS before reporting (fake timers)', async () => {
    ecsAnswers('IN_PROGRESS');
    jest.useFakeTimers();
    const done = handler(jobEvent(), { getRemainingTimeInMillis: () => 60_000 });
    await jest.advanceTimersByTimeAsync(POLL_DELAY_MS - 1);
    expect(cpMock).not.toHaveReceivedAnyCommand();
    await jest.advanceTimersByTimeAsync(1);
    await expect(done).resolves.toEqual({ result: 'continue', polls: 1 });
    expect(sent()).toEqual([LIST, DESCRIBE_NEW, continueWith(1)]);
  });

  test('an invalid continuation token counts as polls 0 (documented choice), with a warning', async () => {
    ecsAnswers('IN_PROGRESS');
    await run(jobEvent({ continuationToken: 'garbage' }));
    expect(sent()).toEqual([LIST, DESCRIBE_NEW, continueWith(1)]);
    expect(logLines()[0]).toEqual({
      level: 'WARN',
      message: 'invalid continuation token: counting polls from 0',
      jobId: JOB_ID,
      continuationToken: 'garbage',
    });
  });
});

describe('release rolled back or stopped', () => {
  const REASON = 'ECS deployment circuit breaker: alarm web-5xx in ALARM state.';

  test.each([
    ['ROLLBACK_REQUESTED', 'ECS is rolling the release back; production keeps the previous image'],
    ['ROLLBACK_IN_PROGRESS', 'ECS is rolling the release back; production keeps the previous image'],
    ['ROLLBACK_SUCCESSFUL', 'ECS rolled the release back; production keeps the previous image'],
    ['ROLLBACK_FAILED', 'ECS tried to roll the release back and the rollback failed; check the service before releasing again'],
    ['STOP_REQUESTED', 'the deployment is being stopped before it completed; production keeps the previous image'],
    ['STOPPED', 'the deployment was stopped before it completed; production keeps the previous image'],
  ])('%s: fails the job naming status and reason, parameter unchanged', async (status, meaning) => {
    ecsAnswers(status, { statusReason: REASON });
    const { outcome, sleeps } = await run(jobEvent());
    const message = `ECS deployment ${NEW_DEPLOYMENT} ended with status ${status}: ${REASON}; ${meaning}; the parameter ${PARAMETER} is unchanged`;
    expect(outcome).toEqual({ result: 'failed', message });
    expect(sent()).toEqual([LIST, DESCRIBE_NEW, failureWith(message)]);
    expect(ssmMock).not.toHaveReceivedCommand(PutParameterCommand);
    expect(cpMock).not.toHaveReceivedCommand(PutJobSuccessResultCommand);
    expect(sleeps).toEqual([]);
  });

  test('says so when ECS gives no reason', async () => {
    ecsAnswers('ROLLBACK_SUCCESSFUL');
    await run(jobEvent());
    expect(failureMessage()).toBe(
      `ECS deployment ${NEW_DEPLOYMENT} ended with status ROLLBACK_SUCCESSFUL (no status reason given); `
      + `ECS rolled the release back; production keeps the previous image; the parameter ${PARAMETER} is unchanged`,
    );
  });

  test('cuts the failure message to CodePipeline\'s 5000 characters', async () => {
    ecsAnswers('ROLLBACK_SUCCESSFUL', { statusReason: 'x'.repeat(6_000) });
    const { outcome } = await run(jobEvent());
    const message = failureMessage();
    expect(message).toHaveLength(CODEPIPELINE_MESSAGE_LIMIT);
    expect(message.endsWith('…')).toBe(true);
    expect(outcome?.result === 'failed' && outcome.message.length).toBeGreaterThan(6_000);
    expect(sent()).toEqual([LIST, DESCRIBE_NEW, failureWith(message)]);
  });

  test('an unknown status fails the job', async () => {
    ecsAnswers('PAUSED');
    await run(jobEvent());
    const message = `ECS deployment ${NEW_DEPLOYMENT} has an unknown status "PAUSED"; the parameter ${PARAMETER} is unchanged`;
    expect(sent()).toEqual([LIST, DESCRIBE_NEW, failureWith(message)]);
  });
});

describe('successful deployment that is not this release', () => {
  test('another image in production: fails, parameter unchanged', async () => {
    ecsAnswers('SUCCESSFUL', { image: OLD_IMAGE });
    const { outcome } = await run(jobEvent());
    const message = `the newest successful deployment (${NEW_DEPLOYMENT}) runs ${OLD_IMAGE}, not ${IMAGE}; the parameter ${PARAMETER} is unchanged`;
    expect(outcome).toEqual({ result: 'failed', message });
    expect(sent()).toEqual([LIST, DESCRIBE_NEW, DESCRIBE_GREEN, failureWith(message)]);
    expect(ssmMock).not.toHaveReceivedAnyCommand();
  });

  test('no container of the configured name: a configuration error', async () => {
    process.env.CONTAINER_NAME = 'application';
    await run(jobEvent());
    const message = `service revision ${GREEN} has no container named application (containers: log-router, app); the parameter ${PARAMETER} is unchanged`;
    expect(sent()).toEqual([LIST, DESCRIBE_NEW, DESCRIBE_GREEN, failureWith(message, 'ConfigurationError')]);
  });

  test('a successful deployment without a target revision: fails', async () => {
    ecsMock.on(DescribeServiceDeploymentsCommand).resolves({ serviceDeployments: [{ serviceDeploymentArn: NEW_DEPLOYMENT, status: 'SUCCESSFUL' }] });
    await run(jobEvent());
    const message = `ECS deployment ${NEW_DEPLOYMENT} is SUCCESSFUL but names no target service revision; the parameter ${PARAMETER} is unchanged`;
    expect(sent()).toEqual([LIST, DESCRIBE_NEW, failureWith(message)]);
  });

  test('a revision ECS cannot describe: fails with ECS\'s failure reason', async () => {
    ecsMock.on(DescribeServiceRevisionsCommand).resolves({ serviceRevisions: [], failures: [{ arn: GREEN, reason: 'MISSING' }] });
    await run(jobEvent());
    const message = `ecs:DescribeServiceRevisions did not describe ${GREEN} (failures: MISSING); the parameter ${PARAMETER} is unchanged`;
    expect(sent()).toEqual([LIST, DESCRIBE_NEW, DESCRIBE_GREEN, failureWith(message)]);
  });
});

describe('finding the deployment', () => {
  test('no deployment at all: fails', async () => {
    ecsMock.on(ListServiceDeploymentsCommand).resolves({ serviceDeployments: [] });
    const { outcome } = await run(jobEvent());
    const message = `no deployment found for service ${SERVICE} in cluster ${CLUSTER} (ecs:ListServiceDeployments returned none); the parameter ${PARAMETER} is unchanged`;
    expect(outcome).toEqual({ result: 'failed', message });
    expect(sent()).toEqual([LIST, failureWith(message)]);
  });

  test('picks the newest by createdAt when the API lists older ones first', async () => {
    ecsMock.on(ListServiceDeploymentsCommand).resolves({
      serviceDeployments: [brief(OLD_DEPLOYMENT, T_OLD), brief(OLDER_DEPLOYMENT, T_OLDER), brief(NEW_DEPLOYMENT, T_NEW)],
    });
    await run(jobEvent());
    expect(sent()).toEqual([LIST, DESCRIBE_NEW, DESCRIBE_GREEN, BATCH_GET, PUT_IMAGE, PUT_PARAMETER, JOB_SUCCESS]);
  });

  test('reads further pages when there are more', async () => {
    ecsMock.on(ListServiceDeploymentsCommand)
      .resolvesOnce({ serviceDeployments: [brief(OLD_DEPLOYMENT, T_OLD)], nextToken: 'page-2' })
      .resolvesOnce({ serviceDeployments: [brief(NEW_DEPLOYMENT, T_NEW), brief(OLDER_DEPLOYMENT, T_OLDER)] });
    await run(jobEvent());
    expect(sent()).toEqual([
      LIST,
      ['ListServiceDeploymentsCommand', { cluster: CLUSTER, service: SERVICE, maxResults: LIST_PAGE_SIZE, nextToken: 'page-2' }],
      DESCRIBE_NEW,
      DESCRIBE_GREEN,
      BATCH_GET,
      PUT_IMAGE,
      PUT_PARAMETER,
      JOB_SUCCESS,
    ]);
  });

  test('a deployment ECS cannot describe: fails with ECS\'s failure reason', async () => {
    ecsMock.on(DescribeServiceDeploymentsCommand).resolves({ serviceDeployments: [], failures: [{ arn: NEW_DEPLOYMENT, reason: 'MISSING', detail: 'gone' }] });
    await run(jobEvent());
    const message = `ecs:DescribeServiceDeployments did not describe ${NEW_DEPLOYMENT} (failures: MISSING: gone); the parameter ${PARAMETER} is unchanged`;
    expect(sent()).toEqual([LIST, DESCRIBE_NEW, failureWith(message)]);
  });
});

describe('tagging the released image', () => {
  const unchanged = `the parameter ${PARAMETER} is unchanged`;

  test('BatchGetImage reports the image missing: fails, no PutImage, no PutParameter', async () => {
    ecrMock.on(BatchGetImageCommand).resolves({
      images: [],
      failures: [{ imageId: { imageTag: TAG }, failureCode: 'ImageNotFound', failureReason: 'Requested image not found' }],
    });
    const { outcome } = await run(jobEvent());
    const message = `ecr:BatchGetImage found no image ${REPOSITORY}:${TAG} (failures: ImageNotFound: Requested image not found); ${unchanged}`;
    expect(outcome).toEqual({ result: 'failed', message });
    expect(sent()).toEqual([LIST, DESCRIBE_NEW, DESCRIBE_GREEN, BATCH_GET, failureWith(message)]);
    expect(ecrMock).not.toHaveReceivedCommand(PutImageCommand);
    expect(ssmMock).not.toHaveReceivedAnyCommand();
    expect(cpMock).not.toHaveReceivedCommand(PutJobSuccessResultCommand);
  });

  test('BatchGetImage returns no image and no failure: fails', async () => {
    ecrMock.on(BatchGetImageCommand).resolves({});
    await run(jobEvent());
    const message = `ecr:BatchGetImage found no image ${REPOSITORY}:${TAG}; ${unchanged}`;
    expect(sent()).toEqual([LIST, DESCRIBE_NEW, DESCRIBE_GREEN, BATCH_GET, failureWith(message)]);
  });

  test('the image is in another repository than REPOSITORY_NAME: a configuration error, before any call', async () => {
    process.env.REPOSITORY_NAME = 'api';
    const { outcome } = await run(jobEvent());
    const message = `invalid configuration: imageUri ${IMAGE} is in repository web, not in REPOSITORY_NAME api`;
    expect(outcome).toEqual({ result: 'failed', message });
    expect(sent()).toEqual([failureWith(message, 'ConfigurationError')]);
  });

  test('a digest reference: a configuration error, before any call', async () => {
    const uri = '123456789012.dkr.ecr.us-east-1.amazonaws.com/web@sha256:5e1f0c8e';
    await run(jobEvent({ userParameters: JSON.stringify({ imageUri: uri }) }));
    expect(sent()).toEqual([failureWith(expect.stringMatching(/^invalid configuration: imageUri must be <registry>\/<repository>:<tag>/), 'ConfigurationError')]);
  });

  test('throttled PutImage: checks (and tags and writes) again later', async () => {
    ecrMock.on(PutImageCommand).rejects(awsError(new ECRServiceException({ name: 'ThrottlingException', $fault: 'client', message: 'Rate exceeded', $metadata: {} })));
    const { outcome, sleeps } = await run(jobEvent({ continuationToken: '{"polls":2}' }));
    expect(outcome).toEqual({ result: 'continue', polls: 3 });
    expect(sleeps).toEqual([POLL_DELAY_MS]);
    expect(sent()).toEqual([LIST, DESCRIBE_NEW, DESCRIBE_GREEN, BATCH_GET, PUT_IMAGE, continueWith(3)]);
    expect(ssmMock).not.toHaveReceivedAnyCommand();
    expect(logLines()[0]).toMatchObject({
      serviceDeploymentArn: NEW_DEPLOYMENT,
      status: 'SUCCESSFUL',
      reason: 'ecr:PutImage failed with a transient error: ThrottlingException: Rate exceeded',
    });
  });

  test('ECR server error on BatchGetImage: checks again later', async () => {
    ecrMock.on(BatchGetImageCommand).rejects(awsError(new ECRServiceException({ name: 'ServerException', $fault: 'server', message: 'Internal error', $metadata: {} }), 500));
    await run(jobEvent());
    expect(sent()).toEqual([LIST, DESCRIBE_NEW, DESCRIBE_GREEN, BATCH_GET, continueWith(1)]);
  });

  test('RepositoryNotFound on BatchGetImage: fails naming the API', async () => {
    ecrMock.on(BatchGetImageCommand).rejects(awsError(new RepositoryNotFoundException({ message: 'The repository with name \'web\' does not exist', $metadata: {} })));
    await run(jobEvent());
    const message = `ecr:BatchGetImage failed: RepositoryNotFoundException: The repository with name 'web' does not exist; ${unchanged}`;
    expect(sent()).toEqual([LIST, DESCRIBE_NEW, DESCRIBE_GREEN, BATCH_GET, failureWith(message)]);
  });

  test('AccessDenied on PutImage: a permission error, parameter unchanged', async () => {
    ecrMock.on(PutImageCommand).rejects(awsError(new ECRServiceException({
      name: 'AccessDeniedException',
      $fault: 'client',
      message: 'User: arn:aws:sts::123456789012:assumed-role/record-release/fn is not authorized to perform: ecr:PutImage',
      $metadata: {},
    })));
    await run(jobEvent());
    const message = 'ecr:PutImage failed: AccessDeniedException: User: arn:aws:sts::123456789012:assumed-role/record-release/fn '
      + `is not authorized to perform: ecr:PutImage; ${unchanged}`;
    expect(sent()).toEqual([LIST, DESCRIBE_NEW, DESCRIBE_GREEN, BATCH_GET, PUT_IMAGE, failureWith(message, 'PermissionError')]);
  });

  test('the released tag on another digest (ImageTagAlreadyExists): fails', async () => {
    ecrMock.on(PutImageCommand).rejects(awsError(new ImageTagAlreadyExistsException({ message: `The image tag 'released-${TAG}' already exists`, $metadata: {} })));
    await run(jobEvent());
    const message = `ecr:PutImage failed: ImageTagAlreadyExistsException: The image tag 'released-${TAG}' already exists; ${unchanged}`;
    expect(sent()).toEqual([LIST, DESCRIBE_NEW, DESCRIBE_GREEN, BATCH_GET, PUT_IMAGE, failureWith(message)]);
  });
});

describe('invalid input', () => {
  test.each([
    ['missing', null, 'invalid configuration: UserParameters is missing: expected {"imageUri":"<image URI>"}'],
    ['empty imageUri', '{"imageUri":""}', 'invalid configuration: UserParameters.imageUri must be a non-empty string, got ""'],
    ['not JSON', '{imageUri:', expect.stringMatching(/^invalid configuration: UserParameters is not valid JSON \(.+\): "\{imageUri:"$/)],
  ])('UserParameters %s: fails without calling ECS or SSM', async (_label, userParameters, message) => {
    const { outcome } = await run(jobEvent({ userParameters }));
    expect(outcome?.result).toBe('failed');
    expect(sent()).toEqual([failureWith(message, 'ConfigurationError')]);
    expect(ecsMock).not.toHaveReceivedAnyCommand();
    expect(ssmMock).not.toHaveReceivedAnyCommand();
  });

  test('missing environment: fails without calling ECS or SSM', async () => {
    delete process.env.IMAGE_PARAMETER_NAME;
    await run(jobEvent());
    expect(sent()).toEqual([failureWith('invalid configuration: environment variable(s) not set: IMAGE_PARAMETER_NAME', 'ConfigurationError')]);
  });

  test('an event that is not a CodePipeline job: nothing to report to, logged, no call', async () => {
    await expect(run({ hello: 'world' })).resolves.toEqual({ outcome: undefined, sleeps: [] });
    expect(sent()).toEqual([]);
    expect(JSON.parse(String(errorSpy.mock.calls[0][0]))).toMatchObject({ level: 'ERROR', eventKeys: ['hello'] });
  });
});

describe('AWS errors', () => {
  test('throttled ListServiceDeployments: checks again later (continuation)', async () => {
    ecsMock.on(ListServiceDeploymentsCommand).rejects(throttled());
    const { outcome, sleeps } = await run(jobEvent({ continuationToken: '{"polls":3}' }));
    expect(outcome).toEqual({ result: 'continue', polls: 4 });
    expect(sleeps).toEqual([POLL_DELAY_MS]);
    expect(sent()).toEqual([LIST, continueWith(4)]);
    expect(logLines()[0]).toMatchObject({ reason: 'ecs:ListServiceDeployments failed with a transient error: ThrottlingException: Rate exceeded' });
  });

  test('ECS ServerException on DescribeServiceRevisions: checks again later', async () => {
    ecsMock.on(DescribeServiceRevisionsCommand).rejects(awsError(new ServerException({ message: 'Internal error', $metadata: {} }), 500));
    await run(jobEvent());
    expect(sent()).toEqual([LIST, DESCRIBE_NEW, DESCRIBE_GREEN, continueWith(1)]);
  });

  test('throttled on the last allowed poll: fails as not finished in time', async () => {
    ecsMock.on(DescribeServiceDeploymentsCommand).rejects(throttled());
    await run(jobEvent({ continuationToken: JSON.stringify({ polls: MAX_POLLS }) }));
    const message = `the ECS deployment did not finish in time: still not finished after ${MAX_POLLS + 1} checks `
      + `(ecs:DescribeServiceDeployments failed with a transient error: ThrottlingException: Rate exceeded); the parameter ${PARAMETER} is unchanged`;
    expect(sent()).toEqual([LIST, DESCRIBE_NEW, failureWith(message)]);
  });

  test('AccessDenied on ListServiceDeployments: fails naming the API and the error', async () => {
    ecsMock.on(ListServiceDeploymentsCommand).rejects(accessDenied('ecs:ListServiceDeployments'));
    const { outcome, sleeps } = await run(jobEvent());
    const message = 'ecs:ListServiceDeployments failed: AccessDeniedException: User: arn:aws:sts::123456789012:assumed-role/record-release/fn '
      + `is not authorized to perform: ecs:ListServiceDeployments; the parameter ${PARAMETER} is unchanged`;
    expect(outcome).toEqual({ result: 'failed', message });
    expect(sent()).toEqual([LIST, failureWith(message, 'PermissionError')]);
    expect(sleeps).toEqual([]);
  });

  test.each([
    ['ClusterNotFoundException', new ClusterNotFoundException({ message: 'Cluster not found.', $metadata: {} })],
    ['ServiceNotFoundException', new ServiceNotFoundException({ message: 'Service not found.', $metadata: {} })],
    ['InvalidParameterException', new InvalidParameterException({ message: 'Invalid service deployment ARN.', $metadata: {} })],
  ])('%s from ECS: fails the job', async (name, error) => {
    ecsMock.on(ListServiceDeploymentsCommand).rejects(awsError(error));
    await run(jobEvent());
    const message = `ecs:ListServiceDeployments failed: ${name}: ${error.message}; the parameter ${PARAMETER} is unchanged`;
    expect(sent()).toEqual([LIST, failureWith(message)]);
  });

  test('AccessDenied on PutParameter: fails, no job success', async () => {
    ssmMock.on(PutParameterCommand).rejects(accessDenied('ssm:PutParameter'));
    const { outcome } = await run(jobEvent());
    const message = 'ssm:PutParameter failed: AccessDeniedException: User: arn:aws:sts::123456789012:assumed-role/record-release/fn '
      + `is not authorized to perform: ssm:PutParameter; the parameter ${PARAMETER} is unchanged`;
    expect(outcome).toEqual({ result: 'failed', message });
    expect(sent()).toEqual([LIST, DESCRIBE_NEW, DESCRIBE_GREEN, BATCH_GET, PUT_IMAGE, PUT_PARAMETER, failureWith(message, 'PermissionError')]);
    expect(cpMock).not.toHaveReceivedCommand(PutJobSuccessResultCommand);
  });

  test('ParameterLimitExceeded on PutParameter: fails', async () => {
    ssmMock.on(PutParameterCommand).rejects(awsError(new ParameterLimitExceeded({ message: 'You have exceeded the number of parameters', $metadata: {} })));
    await run(jobEvent());
    const message = `ssm:PutParameter failed: ParameterLimitExceeded: You have exceeded the number of parameters; the parameter ${PARAMETER} is unchanged`;
    expect(sent()).toEqual([LIST, DESCRIBE_NEW, DESCRIBE_GREEN, BATCH_GET, PUT_IMAGE, PUT_PARAMETER, failureWith(message)]);
  });

  test('throttled PutParameter: checks (and writes) again later', async () => {
    ssmMock.on(PutParameterCommand).rejects(new SSMServiceException({ name: 'ThrottlingException', $fault: 'client', message: 'Rate exceeded', $metadata: {} }));
    await run(jobEvent());
    expect(sent()).toEqual([LIST, DESCRIBE_NEW, DESCRIBE_GREEN, BATCH_GET, PUT_IMAGE, PUT_PARAMETER, continueWith(1)]);
  });
});

describe('reporting to CodePipeline fails', () => {
  test('PutJobSuccessResult fails: the handler rejects after writing the parameter and logging the error', async () => {
    const denied = accessDenied('codepipeline:PutJobSuccessResult');
    cpMock.on(PutJobSuccessResultCommand).rejects(denied);
    await expect(handler(jobEvent(), { getRemainingTimeInMillis: () => 60_000 })).rejects.toBe(denied);
    expect(sent()).toEqual([LIST, DESCRIBE_NEW, DESCRIBE_GREEN, BATCH_GET, PUT_IMAGE, PUT_PARAMETER, JOB_SUCCESS]);
    expect(errorSpy).toHaveBeenCalledTimes(1);
    expect(JSON.parse(String(errorSpy.mock.calls[0][0]))).toMatchObject({
      level: 'ERROR',
      message: 'could not report the job result to CodePipeline',
      jobId: JOB_ID,
      decision: 'recorded',
      error: { name: 'AccessDeniedException' },
    });
  });

  test('PutJobSuccessResult with a continuation token fails: the handler rejects', async () => {
    ecsAnswers('IN_PROGRESS');
    cpMock.on(PutJobSuccessResultCommand).rejects(throttled());
    await expect(run(jobEvent())).rejects.toThrow('Rate exceeded');
    expect(sent()).toEqual([LIST, DESCRIBE_NEW, continueWith(1)]);
  });

  test('PutJobFailureResult fails: the handler rejects', async () => {
    ecsAnswers('ROLLBACK_SUCCESSFUL');
    cpMock.on(PutJobFailureResultCommand).rejects(accessDenied('codepipeline:PutJobFailureResult'));
    await expect(run(jobEvent())).rejects.toThrow(/not authorized to perform: codepipeline:PutJobFailureResult/);
    expect(sent()).toEqual([LIST, DESCRIBE_NEW, failureWith(expect.stringContaining('ROLLBACK_SUCCESSFUL'))]);
    expect(JSON.parse(String(errorSpy.mock.calls[0][0]))).toMatchObject({ decision: 'failed', jobId: JOB_ID });
  });
});
