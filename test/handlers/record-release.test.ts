import {
  CodePipelineClient,
  CodePipelineServiceException,
  InvalidJobStateException,
  ListActionExecutionsCommand,
  PutJobFailureResultCommand,
  PutJobSuccessResultCommand,
} from '@aws-sdk/client-codepipeline';
import type { ActionExecutionDetail } from '@aws-sdk/client-codepipeline';
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
  DescribeServiceRevisionsCommand,
  ECSClient,
  ECSServiceException,
  InvalidParameterException,
  ListServiceDeploymentsCommand,
  ServerException,
  ServiceNotFoundException,
  StopServiceDeploymentCommand,
} from '@aws-sdk/client-ecs';
import type { ServiceDeploymentBrief, ServiceDeploymentStatus } from '@aws-sdk/client-ecs';
import { DeleteParameterCommand, ParameterLimitExceeded, PutParameterCommand, SSMClient, SSMServiceException, TooManyUpdates } from '@aws-sdk/client-ssm';
import { AwsClientStub, mockClient } from 'aws-sdk-client-mock';
import 'aws-sdk-client-mock-jest';
import { expectFacts } from './shared/facts';
import type { JobOutcome, RecordReleaseDeps } from '../../src/handlers/record-release.lambda';
import { isRetryable } from '../../src/handlers/shared/retryable';

// The handler creates its SDK clients when loaded, and on Node < 22 the SDK then emits a NodeVersionSupportWarning,
// which keeps a jest worker from exiting cleanly. The Lambda runtime is nodejs24.x, where the warning does not apply,
// so the tests switch it off before loading the handler.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
const {
  CLOCK_SKEW_MS,
  CODEPIPELINE_MESSAGE_LIMIT,
  HARD_LIMIT_MS,
  LIST_PAGE_SIZE,
  MANIFEST_MEDIA_TYPES,
  MISSING_GRACE_MS,
  POLL_DELAY_MS,
  RELEASED_TAG_PREFIX,
  REPORTING_MARGIN_MS,
  WAIT_LIMIT_MS,
  continuationToken,
  findReleaseDeployment,
  handler,
  parseContinuationToken,
  parseImageUri,
  parseUserParameters,
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
const PIPELINE = 'web-pipeline';
const STAGE = 'Release';
const DEPLOY = 'Deploy';
const EXECUTION = 'c5b1a8f0-1111-2222-3333-444455556666';
const ENV = {
  CLUSTER_NAME: CLUSTER,
  SERVICE_NAME: SERVICE,
  CONTAINER_NAME: CONTAINER,
  IMAGE_PARAMETER_NAME: PARAMETER,
  REPOSITORY_NAME: REPOSITORY,
  PIPELINE_NAME: PIPELINE,
  RELEASE_STAGE_NAME: STAGE,
  DEPLOY_ACTION_NAME: DEPLOY,
};

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

const LATER_DEPLOYMENT = DEPLOYMENT_ARN('LaterLaterLaterLaterLat');
const RED = `arn:aws:ecs:us-east-1:123456789012:service-revision/${CLUSTER}/${SERVICE}/5550001112223334445`;

const T_OLDER = new Date('2025-06-01T08:00:00Z');
const T_OLD = new Date('2025-06-02T08:00:00Z');
/** When the latest run of this execution's Deploy action started. */
const T_DEPLOY = new Date('2025-06-03T07:59:00Z');
const T_NEW = new Date('2025-06-03T08:00:00Z');
const T_LATER = new Date('2025-06-03T08:20:00Z');
/** The job's clock: its first invocation runs at T_JOB. */
const T_JOB = Date.parse('2025-06-03T08:30:00Z');

/** Which revision each deployment targets: NEW deploys GREEN (the built image), LATER deploys RED, others BLUE. */
const TARGETS: Record<string, string> = { [NEW_DEPLOYMENT]: GREEN, [LATER_DEPLOYMENT]: RED };

function brief(
  serviceDeploymentArn: string,
  createdAt: Date,
  status: ServiceDeploymentStatus = 'SUCCESSFUL',
  statusReason?: string,
): ServiceDeploymentBrief {
  return {
    serviceDeploymentArn,
    createdAt,
    status,
    targetServiceRevisionArn: TARGETS[serviceDeploymentArn] ?? BLUE,
    ...(statusReason === undefined ? {} : { statusReason }),
  };
}

/** The event of "Invoke an AWS Lambda function in a pipeline in CodePipeline", with the fields this handler reads. */
function jobEvent(options: { userParameters?: string | null; continuationToken?: string; id?: string } = {}) {
  const userParameters = options.userParameters === undefined
    ? JSON.stringify({ imageUri: IMAGE, pipelineExecutionId: EXECUTION })
    : options.userParameters;
  return {
    'CodePipeline.job': {
      id: options.id ?? JOB_ID,
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

/**
 * ECS answers: an older deployment (before the Deploy action started) and this release's deployment NEW_DEPLOYMENT in
 * `status`, whose target revision GREEN runs `image` (the built image unless said otherwise); `later` adds
 * deployments created after it.
 */
function ecsAnswers(
  status: ServiceDeploymentStatus | string,
  options: { statusReason?: string; image?: string; later?: ServiceDeploymentBrief[]; redImage?: string } = {},
) {
  ecsMock.on(ListServiceDeploymentsCommand).resolves({
    serviceDeployments: [
      brief(OLD_DEPLOYMENT, T_OLD),
      brief(NEW_DEPLOYMENT, T_NEW, status as ServiceDeploymentStatus, options.statusReason),
      ...(options.later ?? []),
    ],
  });
  ecsMock.on(DescribeServiceRevisionsCommand).resolves({
    serviceRevisions: [
      {
        serviceRevisionArn: GREEN,
        containerImages: [
          { containerName: 'log-router', image: 'public.ecr.aws/aws-observability/aws-for-fluent-bit:stable' },
          { containerName: CONTAINER, image: options.image ?? IMAGE, imageDigest: 'sha256:5e1f0c8e' },
        ],
      },
      { serviceRevisionArn: RED, containerImages: [{ containerName: CONTAINER, image: options.redImage ?? OLD_IMAGE }] },
      { serviceRevisionArn: BLUE, containerImages: [{ containerName: CONTAINER, image: OLD_IMAGE }] },
    ],
    failures: [],
  });
}

/** The Deploy action of this execution: started at T_DEPLOY (a retried earlier run and other actions around it). */
function deployActionAnswers(details: ActionExecutionDetail[] = [
  { pipelineExecutionId: EXECUTION, stageName: 'Build', actionName: 'Build', startTime: T_OLD, status: 'Succeeded' },
  { pipelineExecutionId: EXECUTION, stageName: STAGE, actionName: DEPLOY, startTime: T_OLDER, status: 'Failed' },
  { pipelineExecutionId: EXECUTION, stageName: STAGE, actionName: DEPLOY, startTime: T_DEPLOY, status: 'Succeeded' },
  { pipelineExecutionId: EXECUTION, stageName: STAGE, actionName: 'RecordRelease', startTime: T_NEW, status: 'InProgress' },
]) {
  cpMock.on(ListActionExecutionsCommand).resolves({ actionExecutionDetails: details });
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
  deployActionAnswers();
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

const LIST_ACTIONS: [string, unknown] = ['ListActionExecutionsCommand', { pipelineName: PIPELINE, filter: { pipelineExecutionId: EXECUTION }, maxResults: LIST_PAGE_SIZE }];
const SINCE = new Date(T_DEPLOY.getTime() - CLOCK_SKEW_MS);
const LIST: [string, unknown] = ['ListServiceDeploymentsCommand', { cluster: CLUSTER, service: SERVICE, createdAt: { after: SINCE }, maxResults: LIST_PAGE_SIZE }];
const DESCRIBE_GREEN: [string, unknown] = ['DescribeServiceRevisionsCommand', { serviceRevisionArns: [GREEN] }];
/** The look at the service that finds this release's deployment. */
const CHECK = [LIST_ACTIONS, LIST, DESCRIBE_GREEN];
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
const RECORDED = `production runs ${IMAGE}, recorded in ${PARAMETER}`;
const jobSuccess = (summary = `${RECORDED}; tagged released-${TAG}`): [string, unknown] =>
  ['PutJobSuccessResultCommand', { jobId: JOB_ID, outputVariables: { imageUri: IMAGE }, executionDetails: { summary } }];
const JOB_SUCCESS = jobSuccess();
/** The whole successful job, in order: find the deployment, write the parameter, then tag, then report. */
const RECORD = [...CHECK, PUT_PARAMETER, BATCH_GET, PUT_IMAGE, JOB_SUCCESS];
const continueWith = (polls: number, startedAt = T_JOB, stopRequestedAt?: number): [string, unknown] =>
  ['PutJobSuccessResultCommand', { jobId: JOB_ID, continuationToken: JSON.stringify({ polls, startedAt, ...(stopRequestedAt === undefined ? {} : { stopRequestedAt }) }) }];
const failureWith = (message: string | jest.AsymmetricMatcher, type = 'JobFailed'): [string, unknown] =>
  ['PutJobFailureResultCommand', { jobId: JOB_ID, failureDetails: { type, message } }];
/** A continuation token of an earlier invocation of this job, `minutes` before T_JOB. */
const tokenFrom = (minutes: number, polls = 3, stopRequestedAt?: number) =>
  continuationToken({ polls, startedAt: T_JOB - minutes * 60_000, ...(stopRequestedAt === undefined ? {} : { stopRequestedAt }) });

/** The failure message sent to CodePipeline (exactly one failure expected). */
function failureMessage(): string {
  expect(cpMock).toHaveReceivedCommandTimes(PutJobFailureResultCommand, 1);
  return cpMock.commandCalls(PutJobFailureResultCommand)[0].args[0].input.failureDetails?.message ?? '';
}

/** Runs the handler's logic with a fake sleep that records its pauses instead of waiting. */
async function run(event: unknown, deps: RecordReleaseDeps = {}): Promise<{ outcome: JobOutcome | undefined; sleeps: number[] }> {
  const sleeps: number[] = [];
  const outcome = await recordRelease(event, { sleep: async (ms) => { sleeps.push(ms); }, now: () => T_JOB, ...deps });
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
  const params = { imageUri: IMAGE, pipelineExecutionId: EXECUTION };

  test('reads imageUri and pipelineExecutionId and ignores other keys', () => {
    expect(parseUserParameters(JSON.stringify(params))).toEqual({ ok: true, value: params });
    expect(parseUserParameters(JSON.stringify({ ...params, note: 'x' }))).toEqual({ ok: true, value: params });
  });

  const expected = '{"imageUri":"<image URI>","pipelineExecutionId":"<pipeline execution id>"}';
  test.each([
    [undefined, `UserParameters is missing: expected ${expected}`],
    [null, `UserParameters is missing: expected ${expected}`],
    ['', `UserParameters is missing: expected ${expected}`],
    [42, 'UserParameters must be a string of JSON, got 42'],
    ['[1]', `UserParameters must be a JSON object like ${expected}, got [1]`],
    ['"web:1"', `UserParameters must be a JSON object like ${expected}, got "web:1"`],
    ['{}', 'UserParameters.imageUri must be a non-empty string, got missing'],
    [`{"imageUri":"","pipelineExecutionId":"${EXECUTION}"}`, 'UserParameters.imageUri must be a non-empty string, got ""'],
    ['{"imageUri":"  "}', 'UserParameters.imageUri must be a non-empty string, got "  "'],
    ['{"imageUri":7}', 'UserParameters.imageUri must be a non-empty string, got 7'],
    ['{"imageUri":"web:1 web:2"}', 'UserParameters.imageUri must not contain whitespace, got "web:1 web:2"'],
    [`{"imageUri":"${IMAGE}"}`, 'UserParameters.pipelineExecutionId must be a non-empty string, got missing'],
    [`{"imageUri":"${IMAGE}","pipelineExecutionId":" "}`, 'UserParameters.pipelineExecutionId must be a non-empty string, got " "'],
    [`{"imageUri":"${IMAGE}","pipelineExecutionId":"a b"}`, 'UserParameters.pipelineExecutionId must not contain whitespace, got "a b"'],
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
    expect(parseContinuationToken(null)).toEqual({ polls: 0, valid: true });
    expect(parseContinuationToken('')).toEqual({ polls: 0, valid: true });
  });

  test('reads the polls, the start and the rollback request an earlier invocation wrote', () => {
    expect(parseContinuationToken('{"polls":0,"startedAt":0}')).toEqual({ polls: 0, startedAt: 0, valid: true });
    expect(parseContinuationToken(continuationToken({ polls: 42, startedAt: T_JOB }))).toEqual({ polls: 42, startedAt: T_JOB, valid: true });
    expect(parseContinuationToken(continuationToken({ polls: 2, startedAt: T_JOB, stopRequestedAt: T_JOB + 1 })))
      .toEqual({ polls: 2, startedAt: T_JOB, stopRequestedAt: T_JOB + 1, valid: true });
  });

  test('a token of the previous version (polls only) is valid and has no start: the clock starts now', () => {
    expect(parseContinuationToken('{"polls":7}')).toEqual({ polls: 7, valid: true });
  });

  test.each([
    'not json', '[]', '{}', '{"polls":-1}', '{"polls":1.5}', '{"polls":"3"}', 'null', 12,
    '{"polls":1,"startedAt":"2025-06-03"}', '{"polls":1,"startedAt":-5}', '{"polls":1,"stopRequestedAt":1.5}',
  ])('reads %j as 0 polls, flagged invalid', (token) => {
    expect(parseContinuationToken(token)).toEqual({ polls: 0, valid: false });
  });
});

describe('isRetryable', () => {
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
    expect(isRetryable(err)).toBe(true);
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
    expect(isRetryable(err)).toBe(false);
  });
});

describe('findReleaseDeployment', () => {
  const images = new Map<string, string | undefined>([[GREEN, IMAGE], [BLUE, OLD_IMAGE], [RED, undefined]]);

  test('the oldest deployment whose target revision runs the image, not the newest', () => {
    const deployments = [
      brief(OLD_DEPLOYMENT, T_OLD),
      brief(NEW_DEPLOYMENT, T_NEW),
      { ...brief(LATER_DEPLOYMENT, T_LATER), targetServiceRevisionArn: GREEN },
    ];
    expect(findReleaseDeployment(deployments, images, IMAGE)?.serviceDeploymentArn).toBe(NEW_DEPLOYMENT);
    expect(findReleaseDeployment(deployments, images, OLD_IMAGE)?.serviceDeploymentArn).toBe(OLD_DEPLOYMENT);
  });

  test('none when no target revision runs it, or a deployment names no target revision', () => {
    expect(findReleaseDeployment([brief(OLD_DEPLOYMENT, T_OLD), brief(LATER_DEPLOYMENT, T_LATER)], images, IMAGE)).toBeUndefined();
    expect(findReleaseDeployment([{ serviceDeploymentArn: NEW_DEPLOYMENT, createdAt: T_NEW }], new Map([['', IMAGE]]), IMAGE)).toBeUndefined();
    expect(findReleaseDeployment([], images, IMAGE)).toBeUndefined();
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
    ['/web:1'],
    ['123456789012.dkr.ecr.us-east-1.amazonaws.com/web'],
    ['123456789012.dkr.ecr.us-east-1.amazonaws.com/web:'],
    ['123456789012.dkr.ecr.us-east-1.amazonaws.com/:abc'],
    ['123456789012.dkr.ecr.us-east-1.amazonaws.com//web:abc'],
    ['123456789012.dkr.ecr.us-east-1.amazonaws.com/web/:abc'],
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
  test('reads the eight variables, trimmed', () => {
    expect(readConfig({ ...ENV, CLUSTER_NAME: ` ${CLUSTER} ` })).toEqual({
      ok: true,
      value: {
        clusterName: CLUSTER,
        serviceName: SERVICE,
        containerName: CONTAINER,
        imageParameterName: PARAMETER,
        repositoryName: REPOSITORY,
        pipelineName: PIPELINE,
        releaseStageName: STAGE,
        deployActionName: DEPLOY,
      },
    });
  });

  test('names every missing variable', () => {
    expect(readConfig({ CLUSTER_NAME: CLUSTER, CONTAINER_NAME: ' ', PIPELINE_NAME: PIPELINE })).toEqual({
      ok: false,
      error: 'environment variable(s) not set: SERVICE_NAME, CONTAINER_NAME, IMAGE_PARAMETER_NAME, REPOSITORY_NAME, RELEASE_STAGE_NAME, DEPLOY_ACTION_NAME',
    });
  });
});

// ---------------------------------------------------------------------------------------------------------------
// The job
// ---------------------------------------------------------------------------------------------------------------

describe('successful release', () => {
  test('writes the parameter first, then tags the image, then reports success with the output variable and a summary', async () => {
    const { outcome, sleeps } = await run(jobEvent());
    expect(outcome).toEqual({ result: 'recorded', imageUri: IMAGE });
    expect(sent()).toEqual(RECORD);
    expect(cpMock).not.toHaveReceivedCommand(PutJobFailureResultCommand);
    expect(sleeps).toEqual([]);
  });

  test('tags the image released-<tag> with its own manifest, after the parameter', async () => {
    expect(RELEASED_TAG_PREFIX).toBe('released-');
    expect(MANIFEST_MEDIA_TYPES).toEqual((BATCH_GET[1] as { acceptedMediaTypes: string[] }).acceptedMediaTypes);
    await run(jobEvent());
    const putParameter = ssmMock.commandCalls(PutParameterCommand)[0];
    const batchGet = ecrMock.commandCalls(BatchGetImageCommand)[0];
    expect(putParameter.calledBefore(batchGet)).toBe(true);
    expect(logLines()).toEqual([expect.objectContaining({ level: 'INFO', repositoryName: REPOSITORY, releasedTag: `released-${TAG}`, tagged: true, tag: `tagged released-${TAG}` })]);
  });

  test('an image that already has the released tag (re-release, stage rollback, duplicate invocation) is still recorded', async () => {
    ecrMock.on(PutImageCommand).rejects(awsError(new ImageAlreadyExistsException({
      message: `Image with digest 'sha256:5e1f0c8e' and tag 'released-${TAG}' already exists in the repository`,
      $metadata: {},
    })));
    const { outcome } = await run(jobEvent());
    expect(outcome).toEqual({ result: 'recorded', imageUri: IMAGE });
    expect(sent()).toEqual([...CHECK, PUT_PARAMETER, BATCH_GET, PUT_IMAGE, jobSuccess(`${RECORDED}; already tagged released-${TAG}`)]);
    expect(logLines()).toEqual([expect.objectContaining({ message: 'release recorded: production runs the image', tagged: true })]);
  });

  test('a repository path with slashes is the repository name', async () => {
    const image = '123456789012.dkr.ecr.us-east-1.amazonaws.com/team/web:1a2b3c4-17';
    process.env.REPOSITORY_NAME = 'team/web';
    ecsAnswers('SUCCESSFUL', { image });
    await run(jobEvent({ userParameters: JSON.stringify({ imageUri: image, pipelineExecutionId: EXECUTION }) }));
    expect(ecrMock).toHaveReceivedCommandWith(BatchGetImageCommand, { repositoryName: 'team/web', imageIds: [{ imageTag: '1a2b3c4-17' }] });
    expect(ecrMock).toHaveReceivedCommandWith(PutImageCommand, { repositoryName: 'team/web', imageTag: 'released-1a2b3c4-17' });
    expect(ssmMock).toHaveReceivedCommandWith(PutParameterCommand, { Name: PARAMETER, Value: image });
  });

  test('through the Lambda entry point, with a context', async () => {
    await expect(handler(jobEvent(), { getRemainingTimeInMillis: () => 60_000 })).resolves.toEqual({ result: 'recorded', imageUri: IMAGE });
    expect(sent()).toEqual(RECORD);
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
      pipelineExecutionId: EXECUTION,
      serviceDeploymentArn: NEW_DEPLOYMENT,
      status: 'SUCCESSFUL',
      parameterName: PARAMETER,
    })]);
    expect(JSON.stringify([logSpy.mock.calls, errorSpy.mock.calls])).not.toContain(SECRET);
  });

  test('records even when the poll just before the hard limit finds the deployment finished', async () => {
    await run(jobEvent({ continuationToken: tokenFrom(HARD_LIMIT_MS / 60_000 - 1) }));
    expect(sent()).toEqual(RECORD);
  });

  test('records when the deployment succeeded although this job asked for its rollback (the stop came too late)', async () => {
    await run(jobEvent({ continuationToken: tokenFrom(70, 3, T_JOB - 5 * 60_000) }));
    expect(sent()).toEqual(RECORD);
  });
});

describe('invariant 2: the record follows production before any best-effort step', () => {
  const notTagged = (detail: string) => jobSuccess(`${RECORDED}; the image is not tagged released-${TAG} (${detail}): tag it by hand to keep it from the lifecycle rule`);

  test('an ECR failure after a successful deployment leaves the parameter on the new image and says production runs it', async () => {
    ecrMock.on(PutImageCommand).rejects(awsError(new ECRServiceException({
      name: 'AccessDeniedException',
      $fault: 'client',
      message: 'User: arn:aws:sts::123456789012:assumed-role/record-release/fn is not authorized to perform: ecr:PutImage',
      $metadata: {},
    })));
    const { outcome } = await run(jobEvent());
    expect(outcome).toEqual({ result: 'recorded', imageUri: IMAGE });
    const detail = 'ecr:PutImage failed: AccessDeniedException: User: arn:aws:sts::123456789012:assumed-role/record-release/fn is not authorized to perform: ecr:PutImage';
    expect(sent()).toEqual([...CHECK, PUT_PARAMETER, BATCH_GET, PUT_IMAGE, notTagged(detail)]);
    expect(logLines()).toEqual([expect.objectContaining({ level: 'WARN', message: 'release recorded: production runs the image', tagged: false, tag: detail })]);
  });

  test('a throttled PutImage does not hold the record back either', async () => {
    ecrMock.on(PutImageCommand).rejects(awsError(new ECRServiceException({ name: 'ThrottlingException', $fault: 'client', message: 'Rate exceeded', $metadata: {} })));
    await run(jobEvent());
    expect(sent()).toEqual([...CHECK, PUT_PARAMETER, BATCH_GET, PUT_IMAGE, notTagged('ecr:PutImage failed: ThrottlingException: Rate exceeded')]);
  });

  test('BatchGetImage reports the image missing: recorded, not tagged, no PutImage', async () => {
    ecrMock.on(BatchGetImageCommand).resolves({
      images: [],
      failures: [{ imageId: { imageTag: TAG }, failureCode: 'ImageNotFound', failureReason: 'Requested image not found' }],
    });
    await run(jobEvent());
    expect(sent()).toEqual([...CHECK, PUT_PARAMETER, BATCH_GET,
      notTagged(`ecr:BatchGetImage found no image ${REPOSITORY}:${TAG} (failures: ImageNotFound: Requested image not found)`)]);
  });

  test('BatchGetImage returns no image and no failure, or a failure without a reason: recorded, not tagged', async () => {
    ecrMock.on(BatchGetImageCommand).resolvesOnce({}).resolvesOnce({ images: [{ imageManifest: MANIFEST }], failures: [{}] });
    await run(jobEvent());
    await run(jobEvent());
    expect(cpMock.commandCalls(PutJobSuccessResultCommand).map((c) => c.args[0].input.executionDetails?.summary)).toEqual([
      `${RECORDED}; the image is not tagged released-${TAG} (ecr:BatchGetImage found no image ${REPOSITORY}:${TAG}): tag it by hand to keep it from the lifecycle rule`,
      `${RECORDED}; the image is not tagged released-${TAG} (ecr:BatchGetImage found no image ${REPOSITORY}:${TAG} (failures: no reason given)): tag it by hand to keep it from the lifecycle rule`,
    ]);
    expect(ecrMock).not.toHaveReceivedCommand(PutImageCommand);
  });

  test('RepositoryNotFound on BatchGetImage: recorded, the summary names the API', async () => {
    ecrMock.on(BatchGetImageCommand).rejects(awsError(new RepositoryNotFoundException({ message: 'The repository with name \'web\' does not exist', $metadata: {} })));
    await run(jobEvent());
    expect(sent()).toEqual([...CHECK, PUT_PARAMETER, BATCH_GET,
      notTagged('ecr:BatchGetImage failed: RepositoryNotFoundException: The repository with name \'web\' does not exist')]);
  });

  test('the released tag on another digest (ImageTagAlreadyExists): recorded, not tagged', async () => {
    ecrMock.on(PutImageCommand).rejects(awsError(new ImageTagAlreadyExistsException({ message: `The image tag 'released-${TAG}' already exists`, $metadata: {} })));
    await run(jobEvent());
    expect(sent()).toEqual([...CHECK, PUT_PARAMETER, BATCH_GET, PUT_IMAGE,
      notTagged(`ecr:PutImage failed: ImageTagAlreadyExistsException: The image tag 'released-${TAG}' already exists`)]);
  });

  test('the summary is cut to CodePipeline\'s 2048 characters', async () => {
    ecrMock.on(BatchGetImageCommand).rejects(awsError(new RepositoryNotFoundException({ message: 'x'.repeat(3_000), $metadata: {} })));
    await run(jobEvent());
    const summary = cpMock.commandCalls(PutJobSuccessResultCommand)[0].args[0].input.executionDetails?.summary ?? '';
    expect(summary).toHaveLength(2_048);
    expect(summary.startsWith(RECORDED)).toBe(true);
  });

  test('PutJobSuccessResult fails after the write: the handler rejects, and the parameter already names the image in production', async () => {
    const denied = accessDenied('codepipeline:PutJobSuccessResult');
    cpMock.on(PutJobSuccessResultCommand).rejects(denied);
    await expect(handler(jobEvent(), { getRemainingTimeInMillis: () => 60_000 })).rejects.toBe(denied);
    expect(sent()).toEqual(RECORD);
    expect(errorSpy).toHaveBeenCalledTimes(1);
    expect(JSON.parse(String(errorSpy.mock.calls[0][0]))).toMatchObject({
      level: 'ERROR',
      message: 'could not report the job result to CodePipeline',
      jobId: JOB_ID,
      decision: 'recorded',
      summary: RECORDED,
      error: { name: 'AccessDeniedException' },
    });
  });

  test('AccessDenied on PutParameter: fails saying production runs the image and the parameter is unchanged', async () => {
    ssmMock.on(PutParameterCommand).rejects(accessDenied('ssm:PutParameter'));
    const { outcome } = await run(jobEvent());
    const message = 'ssm:PutParameter failed: AccessDeniedException: User: arn:aws:sts::123456789012:assumed-role/record-release/fn '
      + `is not authorized to perform: ssm:PutParameter; production runs ${IMAGE}, but the parameter ${PARAMETER} is unchanged`;
    expect(outcome).toEqual({ result: 'failed', message });
    expect(sent()).toEqual([...CHECK, PUT_PARAMETER, failureWith(message, 'PermissionError')]);
    expect(ecrMock).not.toHaveReceivedAnyCommand();
  });

  test('ParameterLimitExceeded on PutParameter: fails', async () => {
    ssmMock.on(PutParameterCommand).rejects(awsError(new ParameterLimitExceeded({ message: 'You have exceeded the number of parameters', $metadata: {} })));
    await run(jobEvent());
    const message = `ssm:PutParameter failed: ParameterLimitExceeded: You have exceeded the number of parameters; production runs ${IMAGE}, but the parameter ${PARAMETER} is unchanged`;
    expect(sent()).toEqual([...CHECK, PUT_PARAMETER, failureWith(message)]);
  });

  test('the image parameter is gone (its stack deleted at teardown): the write that created it is deleted again and the job fails, not tagged', async () => {
    ssmMock.on(PutParameterCommand).resolves({ Version: 1 });
    ssmMock.on(DeleteParameterCommand).resolves({});
    const { outcome } = await run(jobEvent());
    expect(outcome).toMatchObject({ result: 'failed' });
    expectFacts((outcome as { message?: string } | undefined)?.message, ['ssm:PutParameter failed', 'StateParameterGoneError', PARAMETER, 'did not exist', 'deleted again', IMAGE, PARAMETER, 'unchanged']);
    expect(sent().map(([name]) => name)).toEqual([...CHECK.map(([name]) => name), 'PutParameterCommand', 'DeleteParameterCommand', 'PutJobFailureResultCommand']);
    expect(ssmMock).toHaveReceivedCommandWith(DeleteParameterCommand, { Name: PARAMETER });
    expect(ecrMock).not.toHaveReceivedAnyCommand();
  });

  test('throttled PutParameter: checks and writes again at the next invocation, no tag before the write', async () => {
    let writes = 0;
    ssmMock.on(PutParameterCommand).callsFake(async () => {
      writes++;
      if (writes === 1) throw new SSMServiceException({ name: 'ThrottlingException', $fault: 'client', message: 'Rate exceeded', $metadata: {} });
      return { Version: 8 };
    });
    await run(jobEvent());
    expect(sent()).toEqual([...CHECK, PUT_PARAMETER, continueWith(1)]);
    expect(ecrMock).not.toHaveReceivedAnyCommand();
    for (const mock of [ecsMock, ssmMock, cpMock, ecrMock]) mock.resetHistory();
    await run(jobEvent({ continuationToken: String((continueWith(1)[1] as { continuationToken: string }).continuationToken) }));
    expect(sent()).toEqual(RECORD);
  });
});

describe('defect: the newest deployment is not this release', () => {
  test('a cdk deploy refused during the poll (newer, rolled back) does not hide that this release succeeded', async () => {
    // The race: this release's deployment succeeded; meanwhile a `cdk deploy` started a newer deployment of the old
    // image, which the release hook refused and ECS rolled back (to this release's revision).
    ecsAnswers('SUCCESSFUL', { later: [brief(LATER_DEPLOYMENT, T_LATER, 'ROLLBACK_SUCCESSFUL', 'hook ReleaseHook failed')] });
    const { outcome } = await run(jobEvent());
    expect(outcome).toEqual({ result: 'recorded', imageUri: IMAGE });
    expect(sent()).toEqual([LIST_ACTIONS, LIST, ['DescribeServiceRevisionsCommand', { serviceRevisionArns: [GREEN, RED] }], PUT_PARAMETER, BATCH_GET, PUT_IMAGE, JOB_SUCCESS]);
  });

  test('a newer deployment still in progress (held by the hook) does not hide it either', async () => {
    ecsAnswers('SUCCESSFUL', { later: [brief(LATER_DEPLOYMENT, T_LATER, 'IN_PROGRESS')] });
    await expect(run(jobEvent())).resolves.toMatchObject({ outcome: { result: 'recorded' } });
  });

  test('nor does this release being listed after the newer one', async () => {
    ecsMock.on(ListServiceDeploymentsCommand).resolves({
      serviceDeployments: [brief(LATER_DEPLOYMENT, T_LATER, 'ROLLBACK_SUCCESSFUL'), brief(NEW_DEPLOYMENT, T_NEW), brief(OLD_DEPLOYMENT, T_OLD)],
    });
    await expect(run(jobEvent())).resolves.toMatchObject({ outcome: { result: 'recorded' } });
  });

  test('superseded: a newer deployment succeeded after this one, so production runs that one: fails naming it, parameter unchanged', async () => {
    ecsAnswers('SUCCESSFUL', { later: [brief(LATER_DEPLOYMENT, T_LATER, 'SUCCESSFUL')] });
    const { outcome } = await run(jobEvent());
    const message = `ECS deployment ${NEW_DEPLOYMENT} of ${IMAGE} succeeded, but the newer deployment ${LATER_DEPLOYMENT} succeeded after it: `
      + `production runs ${OLD_IMAGE}, not ${IMAGE}; the parameter ${PARAMETER} is unchanged`;
    expect(outcome).toEqual({ result: 'failed', message });
    expect(ssmMock).not.toHaveReceivedAnyCommand();
  });

  test('superseded by a newer deployment whose revision ECS does not describe: names the revision', async () => {
    ecsAnswers('SUCCESSFUL', { later: [brief(LATER_DEPLOYMENT, T_LATER, 'SUCCESSFUL'), { ...brief(OLDER_DEPLOYMENT, T_LATER, 'SUCCESSFUL'), targetServiceRevisionArn: undefined }] });
    ecsMock.on(DescribeServiceRevisionsCommand).resolves({
      serviceRevisions: [{ serviceRevisionArn: GREEN, containerImages: [{ containerName: CONTAINER, image: IMAGE }] }],
    });
    await run(jobEvent());
    expect(failureMessage()).toContain(`the newer deployment ${OLDER_DEPLOYMENT} succeeded after it: production runs service revision (unknown), not ${IMAGE}`);
  });

  test('superseded: this release was stopped by a newer deployment: names it instead of claiming the previous image', async () => {
    ecsAnswers('STOPPED', { statusReason: 'replaced', later: [brief(LATER_DEPLOYMENT, T_LATER, 'IN_PROGRESS'), { ...brief(OLDER_DEPLOYMENT, T_LATER), status: undefined }] });
    await run(jobEvent());
    expectFacts(failureMessage(), ['ECS', NEW_DEPLOYMENT, IMAGE, 'STOPPED', OLDER_DEPLOYMENT, 'UNKNOWN', IMAGE, PARAMETER, 'unchanged']);
  });

  test('deployments created before the Deploy action started do not count, even with the built image (a stage rollback to it)', async () => {
    ecsMock.on(ListServiceDeploymentsCommand).resolves({
      serviceDeployments: [{ ...brief(OLDER_DEPLOYMENT, new Date(SINCE.getTime() - 1)), targetServiceRevisionArn: GREEN }, brief(NEW_DEPLOYMENT, T_NEW, 'IN_PROGRESS')],
    });
    const { outcome } = await run(jobEvent());
    expect(outcome).toEqual({ result: 'continue', polls: 1 });
    expect(ssmMock).not.toHaveReceivedAnyCommand();
  });

  test('a deployment created within the clock skew before the Deploy action\'s start counts', async () => {
    ecsMock.on(ListServiceDeploymentsCommand).resolves({ serviceDeployments: [brief(NEW_DEPLOYMENT, SINCE)] });
    await expect(run(jobEvent())).resolves.toMatchObject({ outcome: { result: 'recorded' } });
  });

  test('the latest run of the Deploy action counts (a retried stage)', async () => {
    deployActionAnswers([
      { pipelineExecutionId: EXECUTION, stageName: STAGE, actionName: DEPLOY, startTime: T_DEPLOY, status: 'Succeeded' },
      { pipelineExecutionId: EXECUTION, stageName: STAGE, actionName: DEPLOY, startTime: T_OLDER, status: 'Failed' },
      { pipelineExecutionId: EXECUTION, stageName: 'Other', actionName: DEPLOY, startTime: T_LATER, status: 'Succeeded' },
      { pipelineExecutionId: EXECUTION, stageName: STAGE, actionName: 'Other', startTime: T_LATER, status: 'Succeeded' },
    ]);
    await run(jobEvent());
    expect(sent()).toEqual(RECORD);
  });

  test('follows nextToken through ListActionExecutions and ListServiceDeployments', async () => {
    cpMock.on(ListActionExecutionsCommand)
      .resolvesOnce({ actionExecutionDetails: [], nextToken: 'actions-2' })
      .resolvesOnce({ actionExecutionDetails: [{ stageName: STAGE, actionName: DEPLOY, startTime: T_DEPLOY }] });
    ecsMock.on(ListServiceDeploymentsCommand)
      .resolvesOnce({ serviceDeployments: [brief(OLD_DEPLOYMENT, T_OLD)], nextToken: 'page-2' })
      .resolvesOnce({ serviceDeployments: [brief(NEW_DEPLOYMENT, T_NEW), brief(OLDER_DEPLOYMENT, T_OLDER)] });
    await run(jobEvent());
    expect(sent()).toEqual([
      LIST_ACTIONS,
      ['ListActionExecutionsCommand', { pipelineName: PIPELINE, filter: { pipelineExecutionId: EXECUTION }, maxResults: LIST_PAGE_SIZE, nextToken: 'actions-2' }],
      LIST,
      ['ListServiceDeploymentsCommand', { cluster: CLUSTER, service: SERVICE, createdAt: { after: SINCE }, maxResults: LIST_PAGE_SIZE, nextToken: 'page-2' }],
      DESCRIBE_GREEN,
      PUT_PARAMETER, BATCH_GET, PUT_IMAGE, JOB_SUCCESS,
    ]);
  });

  test('reads at most 5 pages of each list', async () => {
    cpMock.on(ListActionExecutionsCommand).resolves({ actionExecutionDetails: [{ stageName: STAGE, actionName: DEPLOY, startTime: T_DEPLOY }], nextToken: 'more' });
    ecsMock.on(ListServiceDeploymentsCommand).resolves({ serviceDeployments: [brief(NEW_DEPLOYMENT, T_NEW)], nextToken: 'more' });
    await run(jobEvent());
    expect(cpMock).toHaveReceivedCommandTimes(ListActionExecutionsCommand, 5);
    expect(ecsMock).toHaveReceivedCommandTimes(ListServiceDeploymentsCommand, 5);
  });

  test('describes the target revisions in batches of 20', async () => {
    const many = Array.from({ length: 21 }, (_, i) => ({
      ...brief(DEPLOYMENT_ARN(`d${i}`), new Date(T_NEW.getTime() + i)),
      targetServiceRevisionArn: `${BLUE}-${i}`,
    }));
    ecsMock.on(ListServiceDeploymentsCommand).resolves({ serviceDeployments: [...many, brief(NEW_DEPLOYMENT, T_LATER)] });
    await run(jobEvent());
    const batches = ecsMock.commandCalls(DescribeServiceRevisionsCommand).map((c) => c.args[0].input.serviceRevisionArns?.length);
    expect(batches).toEqual([20, 2]);
    expect(ssmMock).toHaveReceivedCommand(PutParameterCommand);
  });
});

describe('this release\'s deployment not found', () => {
  const reason = (others: string) => `no service deployment of ${IMAGE} was created since action ${DEPLOY} started at ${T_DEPLOY.toISOString()} (other deployments since then: ${others})`;

  test('looks again for a short while (ListServiceDeployments may lag)', async () => {
    ecsMock.on(ListServiceDeploymentsCommand).resolves({ serviceDeployments: [brief(OLD_DEPLOYMENT, T_OLD)] });
    const { outcome } = await run(jobEvent());
    expect(outcome).toEqual({ result: 'continue', polls: 1 });
    expect(sent()).toEqual([LIST_ACTIONS, LIST, continueWith(1)]);
    expect(logLines()[0]).toMatchObject({ reason: reason('none') });
  });

  test('then fails: production does not run the image through this release; parameter unchanged', async () => {
    ecsAnswers('SUCCESSFUL', { image: OLD_IMAGE });
    ecsMock.on(DescribeServiceRevisionsCommand).resolves({
      serviceRevisions: [
        { serviceRevisionArn: GREEN, containerImages: [{ containerName: CONTAINER, image: OLD_IMAGE }] },
      ],
    });
    const { outcome } = await run(jobEvent({ continuationToken: tokenFrom(MISSING_GRACE_MS / 60_000) }));
    const message = `${reason(`${NEW_DEPLOYMENT} (${OLD_IMAGE})`)}; production does not run ${IMAGE} through this release; the parameter ${PARAMETER} is unchanged`;
    expect(outcome).toEqual({ result: 'failed', message });
    expect(ssmMock).not.toHaveReceivedAnyCommand();
  });

  test('still looks just before the grace ends', async () => {
    ecsMock.on(ListServiceDeploymentsCommand).resolves({ serviceDeployments: [] });
    const { outcome } = await run(jobEvent({ continuationToken: continuationToken({ polls: 2, startedAt: T_JOB - MISSING_GRACE_MS + 1 }) }));
    expect(outcome).toEqual({ result: 'continue', polls: 3 });
  });

  test('a revision without the configured container is named as such', async () => {
    process.env.CONTAINER_NAME = 'application';
    const { outcome } = await run(jobEvent({ continuationToken: tokenFrom(5) }));
    expect(outcome).toEqual({ result: 'failed', message: expect.stringContaining(`(other deployments since then: ${NEW_DEPLOYMENT} (no container application))`) });
  });

  test('the pipeline execution has no run of the Deploy action: a configuration error', async () => {
    deployActionAnswers([{ pipelineExecutionId: EXECUTION, stageName: STAGE, actionName: 'RecordRelease', startTime: T_NEW }]);
    const { outcome } = await run(jobEvent());
    const message = `pipeline ${PIPELINE} execution ${EXECUTION} has no run of action ${DEPLOY} in stage ${STAGE} (codepipeline:ListActionExecutions): `
      + `this job cannot tell which service deployment is its release; the parameter ${PARAMETER} is unchanged`;
    expect(outcome).toEqual({ result: 'failed', message });
    expect(sent()).toEqual([LIST_ACTIONS, failureWith(message, 'ConfigurationError')]);
  });

  test('a Deploy run without a start time counts as none', async () => {
    deployActionAnswers([{ pipelineExecutionId: EXECUTION, stageName: STAGE, actionName: DEPLOY }]);
    await run(jobEvent());
    expect(sent()).toEqual([LIST_ACTIONS, failureWith(expect.stringContaining('has no run of action Deploy'), 'ConfigurationError')]);
  });
});

describe('deployment not finished', () => {
  test.each(['IN_PROGRESS', 'PENDING'])('%s: pauses, then asks CodePipeline to invoke again, starting the clock', async (status) => {
    ecsAnswers(status, { statusReason: 'ECS deployment is shifting production traffic' });
    const { outcome, sleeps } = await run(jobEvent());
    expect(outcome).toEqual({ result: 'continue', polls: 1 });
    expect(sleeps).toEqual([POLL_DELAY_MS]);
    expect(sent()).toEqual([...CHECK, continueWith(1)]);
    expect(ssmMock).not.toHaveReceivedAnyCommand();
    expect(logLines()).toEqual([expect.objectContaining({
      message: 'release not finished: checking again later',
      status,
      polls: 0,
      nextPolls: 1,
      elapsedMs: 0,
      reason: `ECS deployment ${NEW_DEPLOYMENT} is ${status}: ECS deployment is shifting production traffic`,
    })]);
  });

  test('carries polls and the first invocation\'s time across invocations', async () => {
    ecsAnswers('IN_PROGRESS');
    await run(jobEvent({ continuationToken: continuationToken({ polls: 7, startedAt: T_JOB - 60_000 }) }));
    expect(sent()).toEqual([...CHECK, continueWith(8, T_JOB - 60_000)]);
  });

  test('invariant 4: the limit is wall-clock time, however few polls were counted', async () => {
    ecsAnswers('IN_PROGRESS');
    const { outcome } = await run(jobEvent({ continuationToken: continuationToken({ polls: 1, startedAt: T_JOB - HARD_LIMIT_MS }) }));
    expect(outcome).toEqual({ result: 'failed', message: expect.stringMatching(/^the ECS deployment did not finish in time: still not finished after 90 minutes /) });
    expect(sent()).toEqual([...CHECK, failureWith(expect.stringContaining('production may run either image'))]);
  });

  test('and no poll count ends the wait while time is left', async () => {
    ecsAnswers('IN_PROGRESS');
    const { outcome } = await run(jobEvent({ continuationToken: continuationToken({ polls: 100_000, startedAt: T_JOB - 60_000 }) }));
    expect(outcome).toEqual({ result: 'continue', polls: 100_001 });
  });

  test('invariant 4: the limits are far below CodePipeline\'s 24 hours for a Lambda invoke action, the rollback before the hard limit', () => {
    expect(WAIT_LIMIT_MS).toBe(60 * 60_000);
    expect(HARD_LIMIT_MS).toBe(90 * 60_000);
    expect(HARD_LIMIT_MS).toBeLessThan(24 * 3_600_000);
    expect(MISSING_GRACE_MS).toBeLessThan(WAIT_LIMIT_MS);
  });

  test('pauses before reporting, never past the Lambda deadline minus the reporting margin', async () => {
    ecsAnswers('IN_PROGRESS');
    const now = () => T_JOB;
    const reportsAtSleep: number[] = [];
    const sleeps: number[] = [];
    const sleep = async (ms: number) => {
      sleeps.push(ms);
      reportsAtSleep.push(cpMock.commandCalls(PutJobSuccessResultCommand).length);
    };
    await recordRelease(jobEvent(), { sleep, now, deadline: now() + 12_000 });
    await recordRelease(jobEvent(), { sleep, now, deadline: now() + REPORTING_MARGIN_MS - 1 });
    await recordRelease(jobEvent(), { sleep, now, deadline: now() + 600_000 });
    expect(sleeps).toEqual([12_000 - REPORTING_MARGIN_MS, 0, POLL_DELAY_MS]);
    expect(reportsAtSleep).toEqual([0, 1, 2]);
    expect(sent()).toEqual([...CHECK, continueWith(1), ...CHECK, continueWith(1), ...CHECK, continueWith(1)]);
  });

  test('the Lambda entry point really waits POLL_DELAY_MS before reporting (fake timers), and dates the first invocation', async () => {
    ecsAnswers('IN_PROGRESS');
    jest.useFakeTimers({ now: T_JOB });
    const done = handler(jobEvent(), { getRemainingTimeInMillis: () => 60_000 });
    await jest.advanceTimersByTimeAsync(POLL_DELAY_MS - 1);
    expect(cpMock).not.toHaveReceivedCommand(PutJobSuccessResultCommand);
    await jest.advanceTimersByTimeAsync(1);
    await expect(done).resolves.toEqual({ result: 'continue', polls: 1 });
    expect(sent()).toEqual([...CHECK, continueWith(1)]);
  });

  test('an invalid continuation token starts again from this invocation (documented choice), with a warning', async () => {
    ecsAnswers('IN_PROGRESS');
    await run(jobEvent({ continuationToken: 'garbage' }));
    expect(sent()).toEqual([...CHECK, continueWith(1)]);
    expect(logLines()[0]).toEqual({
      level: 'WARN',
      message: 'invalid continuation token: counting from this invocation',
      jobId: JOB_ID,
      continuationToken: 'garbage',
    });
  });
});

describe('invariant 1 and 4: past the wait limit, this job rolls its release back and follows the rollback', () => {
  const STOP: [string, unknown] = ['StopServiceDeploymentCommand', { serviceDeploymentArn: NEW_DEPLOYMENT, stopType: 'ROLLBACK' }];

  test('at WAIT_LIMIT_MS with the deployment still IN_PROGRESS: asks ECS to roll it back and keeps polling', async () => {
    ecsAnswers('IN_PROGRESS');
    const startedAt = T_JOB - WAIT_LIMIT_MS;
    const { outcome } = await run(jobEvent({ continuationToken: continuationToken({ polls: 40, startedAt }) }));
    expect(outcome).toEqual({ result: 'continue', polls: 41 });
    expect(sent()).toEqual([...CHECK, STOP, continueWith(41, startedAt, T_JOB)]);
    expect(ssmMock).not.toHaveReceivedAnyCommand();
    expect(logLines()[0]).toMatchObject({ level: 'WARN', message: 'release not finished within the wait limit: asked ECS to roll it back', serviceDeploymentArn: NEW_DEPLOYMENT });
  });

  test('just before the wait limit: no rollback', async () => {
    ecsAnswers('IN_PROGRESS');
    await run(jobEvent({ continuationToken: continuationToken({ polls: 40, startedAt: T_JOB - WAIT_LIMIT_MS + 1 }) }));
    expect(ecsMock).not.toHaveReceivedCommand(StopServiceDeploymentCommand);
  });

  test('asks only once', async () => {
    ecsAnswers('IN_PROGRESS');
    const stopRequestedAt = T_JOB - 60_000;
    await run(jobEvent({ continuationToken: tokenFrom(70, 5, stopRequestedAt) }));
    expect(ecsMock).not.toHaveReceivedCommand(StopServiceDeploymentCommand);
    expect(sent()).toEqual([...CHECK, continueWith(6, T_JOB - 70 * 60_000, stopRequestedAt)]);
  });

  test('not when the wait is about something else (a throttled check): the hard limit ends it', async () => {
    ecsMock.on(ListServiceDeploymentsCommand).rejects(throttled());
    await run(jobEvent({ continuationToken: tokenFrom(70) }));
    expect(ecsMock).not.toHaveReceivedCommand(StopServiceDeploymentCommand);
    expect(sent()).toEqual([LIST_ACTIONS, LIST, continueWith(4, T_JOB - 70 * 60_000)]);
  });

  test('a stop that fails is logged and tried again at the next poll', async () => {
    ecsAnswers('IN_PROGRESS');
    ecsMock.on(StopServiceDeploymentCommand).rejects(throttled());
    await run(jobEvent({ continuationToken: tokenFrom(61) }));
    expect(sent()).toEqual([...CHECK, STOP, continueWith(4, T_JOB - 61 * 60_000)]);
    expect(JSON.parse(String(errorSpy.mock.calls[0][0]))).toMatchObject({ message: 'could not ask ECS to roll the release back: trying again at the next poll', error: { name: 'ThrottlingException' } });
  });

  test('the rollback finished: fails saying production keeps the previous image and that this job asked for it', async () => {
    ecsAnswers('ROLLBACK_SUCCESSFUL', { statusReason: 'stopped by user' });
    const stopRequestedAt = T_JOB - 4 * 60_000;
    await run(jobEvent({ continuationToken: tokenFrom(65, 9, stopRequestedAt) }));
    expectFacts(failureMessage(), ['ECS', NEW_DEPLOYMENT, IMAGE, 'ROLLBACK_SUCCESSFUL', 'ECS', 'ECS', new Date(stopRequestedAt).toISOString(), '60', PARAMETER, 'unchanged']);
  });

  test('at the hard limit, still not finished after the rollback request: fails saying production may run either image', async () => {
    ecsAnswers('IN_PROGRESS');
    const stopRequestedAt = T_JOB - 30 * 60_000;
    const { outcome, sleeps } = await run(jobEvent({ continuationToken: tokenFrom(HARD_LIMIT_MS / 60_000, 200, stopRequestedAt) }));
    const message = `the ECS deployment did not finish in time: still not finished after 90 minutes (ECS deployment ${NEW_DEPLOYMENT} is IN_PROGRESS); `
      + `this job asked ECS to roll it back at ${new Date(stopRequestedAt).toISOString()}; production may run either image: check the service before releasing again; `
      + `the parameter ${PARAMETER} is unchanged`;
    expect(outcome).toEqual({ result: 'failed', message });
    expect(sleeps).toEqual([]);
  });

  test('at the hard limit without a rollback request (throttled all along): says so without claiming a rollback', async () => {
    ecsMock.on(ListServiceDeploymentsCommand).rejects(throttled());
    await run(jobEvent({ continuationToken: tokenFrom(HARD_LIMIT_MS / 60_000) }));
    expectFacts(failureMessage(), ['ECS', '90', 'ecs:ListServiceDeployments', 'failed', 'transient', 'ThrottlingException', PARAMETER, 'unchanged']);
  });
});

describe('release rolled back or stopped', () => {
  const REASON = 'ECS deployment circuit breaker: alarm web-5xx in ALARM state.';

  test.each(['ROLLBACK_REQUESTED', 'ROLLBACK_IN_PROGRESS', 'STOP_REQUESTED'])('invariant 1: %s is not the end: waits for it, says nothing about production yet', async (status) => {
    ecsAnswers(status, { statusReason: REASON });
    const { outcome } = await run(jobEvent());
    expect(outcome).toEqual({ result: 'continue', polls: 1 });
    expect(sent()).toEqual([...CHECK, continueWith(1)]);
    expect(logLines()[0]).toMatchObject({ reason: `ECS deployment ${NEW_DEPLOYMENT} is ${status}: ${REASON}: waiting for it to end` });
    expect(ecsMock).not.toHaveReceivedCommand(StopServiceDeploymentCommand);
  });

  test('a rollback still running past the wait limit is not stopped again', async () => {
    ecsAnswers('ROLLBACK_IN_PROGRESS');
    await run(jobEvent({ continuationToken: tokenFrom(70) }));
    expect(ecsMock).not.toHaveReceivedCommand(StopServiceDeploymentCommand);
  });

  test.each([
    ['ROLLBACK_SUCCESSFUL', 'ECS rolled the release back; production keeps the previous image'],
    ['ROLLBACK_FAILED', 'ECS tried to roll the release back and the rollback failed; check the service before releasing again'],
    ['STOPPED', 'the deployment was stopped before it completed; production keeps the previous image'],
  ])('%s: fails the job naming status and reason, parameter unchanged', async (status, meaning) => {
    ecsAnswers(status, { statusReason: REASON });
    const { outcome, sleeps } = await run(jobEvent());
    const message = `ECS deployment ${NEW_DEPLOYMENT} of ${IMAGE} ended with status ${status}: ${REASON}; ${meaning}; the parameter ${PARAMETER} is unchanged`;
    expect(outcome).toEqual({ result: 'failed', message });
    expect(sent()).toEqual([...CHECK, failureWith(message)]);
    expect(ssmMock).not.toHaveReceivedCommand(PutParameterCommand);
    expect(cpMock).not.toHaveReceivedCommand(PutJobSuccessResultCommand);
    expect(sleeps).toEqual([]);
  });

  test('says so when ECS gives no reason', async () => {
    ecsAnswers('ROLLBACK_SUCCESSFUL');
    await run(jobEvent());
    expect(failureMessage()).toBe(
      `ECS deployment ${NEW_DEPLOYMENT} of ${IMAGE} ended with status ROLLBACK_SUCCESSFUL (no status reason given); `
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
    expect(sent()).toEqual([...CHECK, failureWith(message)]);
  });

  test('an unknown status fails the job, and a missing one is UNKNOWN', async () => {
    ecsAnswers('PAUSED', { statusReason: 'why' });
    await run(jobEvent());
    ecsMock.on(ListServiceDeploymentsCommand).resolves({ serviceDeployments: [{ ...brief(NEW_DEPLOYMENT, T_NEW), status: undefined }] });
    await run(jobEvent());
    expect(cpMock.commandCalls(PutJobFailureResultCommand).map((c) => c.args[0].input.failureDetails?.message)).toEqual([
      `ECS deployment ${NEW_DEPLOYMENT} has an unknown status "PAUSED": why; the parameter ${PARAMETER} is unchanged`,
      `ECS deployment ${NEW_DEPLOYMENT} has an unknown status "UNKNOWN"; the parameter ${PARAMETER} is unchanged`,
    ]);
  });
});

describe('duplicate and retried invocations', () => {
  test('the same job invoked twice: both write the same value, the second report is refused and not rethrown', async () => {
    await run(jobEvent());
    cpMock.on(PutJobSuccessResultCommand).rejects(new InvalidJobStateException({ message: 'Job is in a terminal state', $metadata: {} }));
    const { outcome } = await run(jobEvent());
    expect(outcome).toEqual({ result: 'recorded', imageUri: IMAGE });
    expect(ssmMock.commandCalls(PutParameterCommand).map((c) => c.args[0].input)).toEqual([PUT_PARAMETER[1], PUT_PARAMETER[1]]);
    expect(logLines().filter((line) => line.level === 'WARN')).toEqual([expect.objectContaining({
      message: 'the job already has a result (duplicate invocation): nothing more to report',
      jobId: JOB_ID,
      error: 'InvalidJobStateException: Job is in a terminal state',
    })]);
    expect(errorSpy).not.toHaveBeenCalled();
  });

  test('a retried continuation (same token twice) asks ECS for the rollback again, which ECS accepts for a deployment already rolling back', async () => {
    ecsAnswers('IN_PROGRESS');
    const token = tokenFrom(61);
    await run(jobEvent({ continuationToken: token }));
    await run(jobEvent({ continuationToken: token }));
    expect(ecsMock).toHaveReceivedCommandTimes(StopServiceDeploymentCommand, 2);
    expect(cpMock.commandCalls(PutJobSuccessResultCommand).map((c) => c.args[0].input.continuationToken)).toEqual([
      continueWith(4, T_JOB - 61 * 60_000, T_JOB)[1], continueWith(4, T_JOB - 61 * 60_000, T_JOB)[1],
    ].map((input) => (input as { continuationToken: string }).continuationToken));
  });

  test('a duplicate failure report is refused and not rethrown', async () => {
    ecsAnswers('ROLLBACK_SUCCESSFUL');
    cpMock.on(PutJobFailureResultCommand).rejects(new InvalidJobStateException({ message: 'Job is in a terminal state', $metadata: {} }));
    await expect(run(jobEvent())).resolves.toMatchObject({ outcome: { result: 'failed' } });
  });

  test('another job of a later release sees its own deployment, not this one', async () => {
    // Job B releases LATER (image OLD_IMAGE re-released by a stage rollback); job A's deployment NEW succeeded before.
    ecsAnswers('SUCCESSFUL', { later: [brief(LATER_DEPLOYMENT, T_LATER, 'IN_PROGRESS')] });
    const { outcome } = await run(jobEvent({ id: 'job-b', userParameters: JSON.stringify({ imageUri: OLD_IMAGE, pipelineExecutionId: EXECUTION }) }));
    expect(outcome).toEqual({ result: 'continue', polls: 1 });
    expect(ssmMock).not.toHaveReceivedAnyCommand();
  });
});

describe('invalid input', () => {
  test.each([
    ['missing', null, 'invalid configuration: UserParameters is missing: expected {"imageUri":"<image URI>","pipelineExecutionId":"<pipeline execution id>"}'],
    ['empty imageUri', '{"imageUri":""}', 'invalid configuration: UserParameters.imageUri must be a non-empty string, got ""'],
    ['not JSON', '{imageUri:', expect.stringMatching(/^invalid configuration: UserParameters is not valid JSON \(.+\): "\{imageUri:"$/)],
  ])('UserParameters %s: fails without calling ECS or SSM', async (_label, userParameters, message) => {
    const { outcome } = await run(jobEvent({ userParameters }));
    expect(outcome?.result).toBe('failed');
    expect(sent()).toEqual([failureWith(message, 'ConfigurationError')]);
  });

  test('missing environment: fails without calling ECS or SSM', async () => {
    delete process.env.IMAGE_PARAMETER_NAME;
    await run(jobEvent());
    expect(sent()).toEqual([failureWith('invalid configuration: environment variable(s) not set: IMAGE_PARAMETER_NAME', 'ConfigurationError')]);
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
    await run(jobEvent({ userParameters: JSON.stringify({ imageUri: uri, pipelineExecutionId: EXECUTION }) }));
    expect(sent()).toEqual([failureWith(expect.stringMatching(/^invalid configuration: imageUri must be <registry>\/<repository>:<tag>/), 'ConfigurationError')]);
  });

  test('an event that is not a CodePipeline job: nothing to report to, logged, no call', async () => {
    await expect(run({ hello: 'world' })).resolves.toEqual({ outcome: undefined, sleeps: [] });
    await expect(run('hello')).resolves.toEqual({ outcome: undefined, sleeps: [] });
    expect(sent()).toEqual([]);
    expect(JSON.parse(String(errorSpy.mock.calls[0][0]))).toMatchObject({ level: 'ERROR', eventKeys: ['hello'] });
    expect(JSON.parse(String(errorSpy.mock.calls[1][0]))).toMatchObject({ level: 'ERROR', eventKeys: 'string' });
  });
});

describe('AWS errors', () => {
  test('throttled ListServiceDeployments: checks again later (continuation)', async () => {
    ecsMock.on(ListServiceDeploymentsCommand).rejects(throttled());
    const { outcome, sleeps } = await run(jobEvent({ continuationToken: tokenFrom(1) }));
    expect(outcome).toEqual({ result: 'continue', polls: 4 });
    expect(sleeps).toEqual([POLL_DELAY_MS]);
    expect(sent()).toEqual([LIST_ACTIONS, LIST, continueWith(4, T_JOB - 60_000)]);
    expect(logLines()[0]).toMatchObject({ reason: 'ecs:ListServiceDeployments failed with a transient error: ThrottlingException: Rate exceeded' });
  });

  test('throttled ListActionExecutions: checks again later', async () => {
    cpMock.on(ListActionExecutionsCommand).rejects(new CodePipelineServiceException({ name: 'ThrottlingException', $fault: 'client', message: 'Rate exceeded', $metadata: {} }));
    await run(jobEvent());
    expect(sent()).toEqual([LIST_ACTIONS, continueWith(1)]);
  });

  test('ECS ServerException on DescribeServiceRevisions: checks again later', async () => {
    ecsMock.on(DescribeServiceRevisionsCommand).rejects(awsError(new ServerException({ message: 'Internal error', $metadata: {} }), 500));
    await run(jobEvent());
    expect(sent()).toEqual([...CHECK, continueWith(1)]);
  });

  test('AccessDenied on ListServiceDeployments: fails naming the API and the error', async () => {
    ecsMock.on(ListServiceDeploymentsCommand).rejects(accessDenied('ecs:ListServiceDeployments'));
    const { outcome, sleeps } = await run(jobEvent());
    const message = 'ecs:ListServiceDeployments failed: AccessDeniedException: User: arn:aws:sts::123456789012:assumed-role/record-release/fn '
      + `is not authorized to perform: ecs:ListServiceDeployments; the parameter ${PARAMETER} is unchanged`;
    expect(outcome).toEqual({ result: 'failed', message });
    expect(sent()).toEqual([LIST_ACTIONS, LIST, failureWith(message, 'PermissionError')]);
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
    expect(sent()).toEqual([LIST_ACTIONS, LIST, failureWith(message)]);
  });

  test('an error that is not an AWS error is named as unexpected', async () => {
    ecsMock.on(ListServiceDeploymentsCommand).resolves(undefined as never);
    await run(jobEvent());
    expectFacts(failureMessage(), ['failed', 'TypeError', PARAMETER, 'unchanged']);
  });
});

describe('reporting to CodePipeline fails', () => {
  test('PutJobSuccessResult with a continuation token fails: the handler rejects', async () => {
    ecsAnswers('IN_PROGRESS');
    cpMock.on(PutJobSuccessResultCommand).rejects(throttled());
    await expect(run(jobEvent())).rejects.toThrow('Rate exceeded');
    expect(sent()).toEqual([...CHECK, continueWith(1)]);
  });

  test('PutJobFailureResult fails: the handler rejects', async () => {
    ecsAnswers('ROLLBACK_SUCCESSFUL');
    cpMock.on(PutJobFailureResultCommand).rejects(accessDenied('codepipeline:PutJobFailureResult'));
    await expect(run(jobEvent())).rejects.toThrow(/not authorized to perform: codepipeline:PutJobFailureResult/);
    expect(sent()).toEqual([...CHECK, failureWith(expect.stringContaining('ROLLBACK_SUCCESSFUL'))]);
    expect(JSON.parse(String(errorSpy.mock.calls[0][0]))).toMatchObject({ decision: 'failed', jobId: JOB_ID });
  });
});
