import { CloudWatchClient, PutMetricDataCommand } from '@aws-sdk/client-cloudwatch';
import type { MetricDatum } from '@aws-sdk/client-cloudwatch';
import {
  CodePipelineClient,
  GetPipelineExecutionCommand,
  ListActionExecutionsCommand,
  ListPipelineExecutionsCommand,
  PipelineExecutionNotFoundException,
} from '@aws-sdk/client-codepipeline';
import type { ActionExecutionDetail, PipelineExecution, PipelineExecutionSummary } from '@aws-sdk/client-codepipeline';
import {
  ConditionalCheckFailedException,
  DeleteItemCommand,
  DynamoDBClient,
  ProvisionedThroughputExceededException,
  PutItemCommand,
  UpdateItemCommand,
} from '@aws-sdk/client-dynamodb';
import { PublishCommand, SNSClient } from '@aws-sdk/client-sns';
import { mockClient } from 'aws-sdk-client-mock';
import 'aws-sdk-client-mock-jest';
import type { Config } from '../../src/handlers/delivery-metrics.lambda';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
const {
  handleEvent, handler, readConfig, isPipelineEvent, summaryMessage, executionUrl, METRICS, INCIDENT_SCAN_LIMIT, CLAIM_LEASE_MS,
  // eslint-disable-next-line @typescript-eslint/no-require-imports
}: typeof import('../../src/handlers/delivery-metrics.lambda') = require('../../src/handlers/delivery-metrics.lambda');

const cw = mockClient(CloudWatchClient);
const cp = mockClient(CodePipelineClient);
const ddb = mockClient(DynamoDBClient);
const topic = mockClient(SNSClient);

const PIPELINE = 'myPipeline';
const EXEC = '12345678-1234-5678-abcd-12345678abcd';
const EXEC2 = '22345678-1234-5678-abcd-12345678abcd';
const ROLLBACK_EXEC = '92345678-1234-5678-abcd-12345678abcd';
const TOPIC = 'arn:aws:sns:us-east-1:123456789012:notifications';
const COMMIT = '1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b';

const config: Config = {
  pipelineName: PIPELINE,
  tableName: 'facts',
  namespace: 'DeliveryPipelines',
  topicArn: TOPIC,
  sourceStage: 'Source',
  releaseStage: 'Release',
  engineRollsBack: true,
  engineReportsTraffic: false,
  factTtlDays: 90,
  region: 'us-east-1',
};
const stageRollback: Config = { ...config, engineRollsBack: false };
const NOW = Date.parse('2020-01-24T23:00:00Z');

// Event shapes as the CodePipeline User Guide shows them ("Monitoring CodePipeline events": pipeline-level and
// stage-level events, with the V2 `execution-trigger`).
function executionEvent(state: string, executionId = EXEC, time = '2020-01-24T22:03:07Z', id = '01234567-EXAMPLE') {
  return {
    'version': '0',
    id,
    'detail-type': 'CodePipeline Pipeline Execution State Change',
    'source': 'aws.codepipeline',
    'account': '123456789012',
    time,
    'region': 'us-east-1',
    'resources': [`arn:aws:codepipeline:us-east-1:123456789012:${PIPELINE}`],
    'detail': {
      'pipeline': PIPELINE,
      'execution-id': executionId,
      'execution-trigger': {
        'trigger-type': 'StartPipelineExecution',
        'trigger-detail': 'arn:aws:sts::123456789012:assumed-role/Admin/my-user',
      },
      state,
      'version': 1,
      'pipeline-execution-attempt': 1,
    },
  };
}

function stageEvent(stage: string, state: string, executionId = EXEC, time = '2020-01-24T22:00:07Z', id = '01234567-STAGE') {
  return {
    'version': '0',
    id,
    'detail-type': 'CodePipeline Stage Execution State Change',
    'source': 'aws.codepipeline',
    'account': '123456789012',
    time,
    'region': 'us-east-1',
    'resources': [`arn:aws:codepipeline:us-east-1:123456789012:${PIPELINE}`],
    'detail': {
      'pipeline': PIPELINE,
      'execution-id': executionId,
      'execution-trigger': { 'trigger-type': 'Webhook', 'trigger-detail': 'arn:aws:codeconnections:us-east-1:123456789012:connection/abc' },
      stage,
      state,
      'version': 1,
      'pipeline-execution-attempt': 1,
    },
  };
}

const standardExecution: PipelineExecution = {
  pipelineName: PIPELINE,
  pipelineExecutionId: EXEC,
  status: 'Succeeded',
  executionType: 'STANDARD',
  trigger: { triggerType: 'WebhookV2', triggerDetail: 'arn:aws:codeconnections:us-east-1:123456789012:connection/abc' },
  artifactRevisions: [{
    name: 'Source',
    revisionId: COMMIT,
    revisionSummary: '{"ProviderType":"GitHub","CommitMessage":"Fix the login page\\n\\nLonger text"}',
    revisionUrl: `https://github.com/octo/app/commit/${COMMIT}`,
  }],
};

const sourceAction: ActionExecutionDetail = {
  pipelineExecutionId: EXEC,
  stageName: 'Source',
  actionName: 'Source',
  status: 'Succeeded',
  startTime: new Date('2020-01-24T21:58:00Z'),
  lastUpdateTime: new Date('2020-01-24T21:58:30Z'),
  input: { actionTypeId: { category: 'Source', owner: 'AWS', provider: 'CodeStarSourceConnection', version: '1' } },
  output: {
    outputVariables: {
      CommitId: COMMIT,
      CommitMessage: 'Fix the login page',
      AuthorDate: '2020-01-24T20:03:07Z',
      BranchName: 'main',
      FullRepositoryName: 'octo/app',
    },
  },
};

function failed(stageName: string, actionName: string, provider: string, message: string, start: string, end: string,
  url?: string): ActionExecutionDetail {
  return {
    stageName,
    actionName,
    status: 'Failed',
    startTime: new Date(start),
    lastUpdateTime: new Date(end),
    input: { actionTypeId: { category: 'Build', owner: 'AWS', provider, version: '1' } },
    output: { executionResult: { errorDetails: { code: 'JobFailed', message }, externalExecutionUrl: url } },
  };
}

/** A DynamoDB table in memory: conditional puts and deletes behave like the real ones. */
let facts: Map<string, unknown>;

function metrics(): MetricDatum[] {
  return cw.commandCalls(PutMetricDataCommand).flatMap((c) => c.args[0].input.MetricData ?? []);
}
function metric(name: string): MetricDatum[] {
  return metrics().filter((m) => m.MetricName === name);
}
function messages(): string[] {
  return topic.commandCalls(PublishCommand).map((c) => JSON.parse(c.args[0].input.Message ?? '{}').default ?? '');
}

beforeEach(() => {
  cw.reset();
  cp.reset();
  ddb.reset();
  topic.reset();
  facts = new Map();
  ddb.on(PutItemCommand).callsFake((input) => {
    const key = input.Item.id.S as string;
    if (facts.has(key)) throw new ConditionalCheckFailedException({ message: 'The conditional request failed', $metadata: {} });
    facts.set(key, input.Item);
    return {};
  });
  ddb.on(DeleteItemCommand).callsFake((input) => {
    facts.delete(input.Key.id.S as string);
    return {};
  });
  cw.on(PutMetricDataCommand).resolves({});
  topic.on(PublishCommand).resolves({ MessageId: 'm-1' });
  cp.on(GetPipelineExecutionCommand).resolves({ pipelineExecution: standardExecution });
  cp.on(ListActionExecutionsCommand).resolves({ actionExecutionDetails: [sourceAction] });
  cp.on(ListPipelineExecutionsCommand).resolves({ pipelineExecutionSummaries: [] });
  jest.spyOn(console, 'log').mockImplementation(() => undefined);
  jest.spyOn(console, 'error').mockImplementation(() => undefined);
});

afterEach(() => jest.restoreAllMocks());

describe('a release that reaches production', () => {
  test('the Release stage starting counts a started release at the event\'s time, and says so', async () => {
    const outcome = await handleEvent(stageEvent('Release', 'STARTED'), config, NOW);
    expect(outcome.published).toEqual([`${EXEC}#release-started`, `${EXEC}#notify-releasing`]);
    expect(cw).toHaveReceivedCommandWith(PutMetricDataCommand, {
      Namespace: 'DeliveryPipelines',
      MetricData: [{
        MetricName: METRICS.releasesStarted,
        Dimensions: [{ Name: 'Pipeline', Value: PIPELINE }],
        Timestamp: new Date('2020-01-24T22:00:07Z'),
        Value: 1,
        Unit: 'Count',
      }],
    });
    expect(messages()[0]).toMatch(/^RELEASING: pipeline myPipeline releases commit 1a2b3c4 "Fix the login page" \(octo\/app main\)\./);
  });

  test('the Source stage succeeding announces the change: commit, message, branch, link', async () => {
    await handleEvent(stageEvent('Source', 'SUCCEEDED'), config, NOW);
    expect(metrics()).toEqual([]);
    expect(topic).toHaveReceivedCommandTimes(PublishCommand, 1);
    const publish = topic.commandCalls(PublishCommand)[0].args[0].input;
    expect(publish.TopicArn).toBe(TOPIC);
    expect(publish.Subject).toBe('STARTED: myPipeline builds commit 1a2b3c4');
    expect(publish.MessageStructure).toBe('json');
    const perProtocol = JSON.parse(publish.Message!);
    // Email gets the text; HTTPS subscribers (AWS Chatbot's Slack/Teams channels) its custom notification format.
    expect(perProtocol.email).toBe(perProtocol.default);
    expect(JSON.parse(perProtocol.https)).toEqual({
      version: '1.0',
      source: 'custom',
      id: `${EXEC}#notify-started`,
      content: { textType: 'client-markdown', title: publish.Subject, description: perProtocol.default },
    });
    expect(perProtocol.default).toBe([
      'STARTED: pipeline myPipeline builds commit 1a2b3c4 "Fix the login page" (octo/app main), after a change in the source.',
      `Change: https://github.com/octo/app/commit/${COMMIT}`,
      `Follow the release: ${executionUrl(config, EXEC)}`,
    ].join('\n'));
  });

  test('the execution succeeding counts a deployment and the lead time from the commit, and says so', async () => {
    const outcome = await handleEvent(executionEvent('SUCCEEDED'), config, NOW);
    expect(outcome.published).toEqual([`${EXEC}#deployed`, `${EXEC}#consecutive-failures`, `revision#${COMMIT}#lead-time`, `${EXEC}#notify-released`]);
    expect(metric(METRICS.deployments)).toEqual([expect.objectContaining({ Value: 1, Unit: 'Count', Timestamp: new Date('2020-01-24T22:03:07Z') })]);
    // 20:03:07 (author date) -> 22:03:07 (SUCCEEDED)
    expect(metric(METRICS.leadTime)).toEqual([expect.objectContaining({ Value: 7200, Unit: 'Seconds' })]);
    expect(metric(METRICS.timeToRestore)).toEqual([]);
    expect(messages()[0]).toContain('RELEASED: pipeline myPipeline put commit 1a2b3c4 "Fix the login page" (octo/app main) into production.');
    expect(messages()[0]).toContain('Lead time: 2 h from the commit to production.');
    expect(messages()[0]).not.toMatch(/[{}]/);
  });

  test('the event ignores other pipelines and events it does not use', async () => {
    const other = executionEvent('SUCCEEDED');
    (other.detail as { pipeline: string }).pipeline = 'another';
    for (const event of [other, executionEvent('STARTED'), executionEvent('SUPERSEDED'), stageEvent('Build', 'FAILED'),
      stageEvent('Source', 'STARTED'), stageEvent('Release', 'SUCCEEDED'), { source: 'aws.codepipeline' }, null, 'text']) {
      expect((await handleEvent(event, config, NOW)).kind).toBe('ignored');
    }
    expect(cp.calls()).toHaveLength(0);
    expect(ddb.calls()).toHaveLength(0);
  });
});

describe('at-least-once delivery and out-of-order arrival', () => {
  test('an event delivered twice counts once and notifies once', async () => {
    await handleEvent(executionEvent('SUCCEEDED'), config, NOW);
    const second = await handleEvent(executionEvent('SUCCEEDED'), config, NOW + 1000);
    expect(second.published).toEqual([]);
    expect(second.duplicates).toEqual([`${EXEC}#deployed`, `${EXEC}#consecutive-failures`, `revision#${COMMIT}#lead-time`, `${EXEC}#notify-released`]);
    expect(metric(METRICS.deployments)).toHaveLength(1);
    expect(metric(METRICS.leadTime)).toHaveLength(1);
    expect(topic).toHaveReceivedCommandTimes(PublishCommand, 1);
  });

  test('two events with different ids for the same step (a stage retried) count once', async () => {
    await handleEvent(stageEvent('Release', 'STARTED', EXEC, '2020-01-24T22:00:07Z', 'event-a'), config, NOW);
    await handleEvent(stageEvent('Release', 'STARTED', EXEC, '2020-01-24T22:10:07Z', 'event-b'), config, NOW);
    expect(metric(METRICS.releasesStarted)).toHaveLength(1);
    expect(topic).toHaveReceivedCommandTimes(PublishCommand, 1);
  });

  test('the success arriving before the start: both are counted, each at its own time', async () => {
    await handleEvent(executionEvent('SUCCEEDED', EXEC, '2020-01-24T22:03:07Z'), config, NOW);
    await handleEvent(stageEvent('Release', 'STARTED', EXEC, '2020-01-24T22:00:07Z'), config, NOW);
    expect(metric(METRICS.deployments)[0].Timestamp).toEqual(new Date('2020-01-24T22:03:07Z'));
    expect(metric(METRICS.releasesStarted)[0].Timestamp).toEqual(new Date('2020-01-24T22:00:07Z'));
  });

  test('the restore arriving before the failure it ends: the time to restore comes from the history, not from the order', async () => {
    const failedExecution: PipelineExecutionSummary = {
      pipelineExecutionId: EXEC,
      status: 'Failed',
      executionType: 'STANDARD',
      startTime: new Date('2020-01-24T21:00:00Z'),
      lastUpdateTime: new Date('2020-01-24T21:30:00Z'),
    };
    const rollback: PipelineExecutionSummary = {
      pipelineExecutionId: ROLLBACK_EXEC,
      status: 'Succeeded',
      executionType: 'ROLLBACK',
      startTime: new Date('2020-01-24T21:31:00Z'),
      lastUpdateTime: new Date('2020-01-24T21:45:00Z'),
    };
    cp.on(ListPipelineExecutionsCommand).resolves({ pipelineExecutionSummaries: [failedExecution, rollback] });
    cp.on(GetPipelineExecutionCommand, { pipelineExecutionId: ROLLBACK_EXEC }).resolves({
      pipelineExecution: { pipelineExecutionId: ROLLBACK_EXEC, executionType: 'ROLLBACK', trigger: { triggerType: 'AutomatedRollback' }, rollbackMetadata: { rollbackTargetPipelineExecutionId: EXEC2 } },
    });
    cp.on(ListActionExecutionsCommand, { filter: { pipelineExecutionId: EXEC } }).resolves({
      actionExecutionDetails: [sourceAction, failed('Release', 'Deploy', 'S3', 'Access Denied', '2020-01-24T21:20:00Z', '2020-01-24T21:30:00Z')],
    });
    // The rollback's success first ...
    await handleEvent(executionEvent('SUCCEEDED', ROLLBACK_EXEC, '2020-01-24T21:45:00Z'), stageRollback, NOW);
    // ... then the failure.
    await handleEvent(executionEvent('FAILED', EXEC, '2020-01-24T21:30:00Z'), stageRollback, NOW);
    expect(metric(METRICS.timeToRestore)).toEqual([expect.objectContaining({ Value: 15 * 60, Timestamp: new Date('2020-01-24T21:45:00Z') })]);
    expect(metric(METRICS.releasesFailed)).toEqual([expect.objectContaining({ Value: 1, Timestamp: new Date('2020-01-24T21:30:00Z') })]);
    expect(metric(METRICS.deployments)).toEqual([]);
  });
});

describe('a manual start without a commit', () => {
  test('an S3 source: the revision is its object version, the lead time starts at its upload', async () => {
    cp.on(GetPipelineExecutionCommand).resolves({
      pipelineExecution: {
        pipelineExecutionId: EXEC,
        executionType: 'STANDARD',
        trigger: { triggerType: 'StartPipelineExecution', triggerDetail: 'arn:aws:sts::123456789012:assumed-role/Admin/my-user' },
        artifactRevisions: [{ name: 'Source', revisionId: 'v3.Version-ABC', created: new Date('2020-01-24T21:03:07Z') }],
      },
    });
    cp.on(ListActionExecutionsCommand).resolves({
      actionExecutionDetails: [{ ...sourceAction, output: { outputVariables: { ETag: 'abc', VersionId: 'v3.Version-ABC' } } }],
    });
    await handleEvent(stageEvent('Source', 'SUCCEEDED'), config, NOW);
    await handleEvent(executionEvent('SUCCEEDED'), config, NOW);
    expect(messages()[0]).toBe([
      'STARTED: pipeline myPipeline builds revision v3.Version-ABC, after a manual start by Admin/my-user.',
      `Follow the release: ${executionUrl(config, EXEC)}`,
    ].join('\n'));
    expect(metric(METRICS.leadTime)).toEqual([expect.objectContaining({ Value: 3600 })]);
    expect(messages()[1]).toContain('Lead time: 1 h from the revision\'s upload to production.');
    expect(facts.has('revision#v3.Version-ABC#lead-time')).toBe(true);
  });

  test('nothing tells the change\'s time: the lead time starts with the execution\'s source action', async () => {
    cp.on(GetPipelineExecutionCommand).resolves({ pipelineExecution: { pipelineExecutionId: EXEC, executionType: 'STANDARD', trigger: { triggerType: 'StartPipelineExecution' } } });
    cp.on(ListActionExecutionsCommand).resolves({ actionExecutionDetails: [{ ...sourceAction, output: {} }] });
    await handleEvent(executionEvent('SUCCEEDED'), config, NOW);
    // 21:58:00 (source action start) -> 22:03:07
    expect(metric(METRICS.leadTime)).toEqual([expect.objectContaining({ Value: 307 })]);
    expect(messages()[0]).toContain('put the latest revision of the source into production');
    expect(messages()[0]).toContain('from the start of the execution');
  });

  test('a re-run of a commit already released counts a deployment, not a second lead time', async () => {
    await handleEvent(executionEvent('SUCCEEDED', EXEC), config, NOW);
    await handleEvent(executionEvent('SUCCEEDED', EXEC2, '2020-01-25T10:00:00Z', 'other-event'), config, NOW);
    expect(metric(METRICS.deployments)).toHaveLength(2);
    expect(metric(METRICS.leadTime)).toHaveLength(1);
  });
});

describe('failures', () => {
  test('a failed build says which action, why, and links the build with its reports; no metric', async () => {
    cp.on(ListActionExecutionsCommand).resolves({
      actionExecutionDetails: [sourceAction, failed('Build', 'Build', 'CodeBuild', 'Error while executing command: npm test. Reason: exit status 1',
        '2020-01-24T22:00:00Z', '2020-01-24T22:02:00Z', 'https://console.aws.amazon.com/codesuite/codebuild/projects/p/build/p:1')],
    });
    const outcome = await handleEvent(executionEvent('FAILED'), config, NOW);
    expect(outcome.published).toEqual([`${EXEC}#notify-failed`]);
    expect(metrics()).toEqual([]);
    expect(messages()[0]).toBe([
      'FAILED: pipeline myPipeline stopped at Build / Build while building commit 1a2b3c4 "Fix the login page" (octo/app main). ' +
        'Nothing after the failed action ran; production is unchanged.',
      'Why: Error while executing command: npm test. Reason: exit status 1',
      'The build log and the test reports: https://console.aws.amazon.com/codesuite/codebuild/projects/p/build/p:1',
      `Execution: ${executionUrl(config, EXEC)}`,
    ].join('\n'));
  });

  test('a release rolled back by the engine (alarm, smoke test, rejection): a failed release, restored when the action ended', async () => {
    cp.on(ListActionExecutionsCommand).resolves({
      actionExecutionDetails: [sourceAction, failed('Release', 'Release', 'StepFunctions',
        'Rolled back: alarm web-5xx went to ALARM during the canary', '2020-01-24T22:00:00Z', '2020-01-24T22:12:00Z')],
    });
    await handleEvent(executionEvent('FAILED'), config, NOW);
    expect(metric(METRICS.releasesFailed)).toEqual([expect.objectContaining({ Value: 1, Timestamp: new Date('2020-01-24T22:03:07Z') })]);
    expect(metric(METRICS.timeToRestore)).toEqual([expect.objectContaining({ Value: 720, Unit: 'Seconds' })]);
    expect(messages()[0]).toContain('ROLLED BACK: pipeline myPipeline did not release commit 1a2b3c4');
    expect(messages()[0]).toContain('Why: Rolled back: alarm web-5xx went to ALARM during the canary');
    expect(messages()[0]).toContain('The release engine has put production back on the previous version.');
  });

  test('an approval rejected in the Release stage is a rolled-back release with the approver\'s answer', async () => {
    cp.on(ListActionExecutionsCommand).resolves({
      actionExecutionDetails: [sourceAction, { ...failed('Release', 'ApproveProduction', 'Manual', 'Rejected: the new header is wrong', '2020-01-24T22:00:00Z', '2020-01-24T22:01:00Z') }],
    });
    await handleEvent(executionEvent('FAILED'), config, NOW);
    expect(metric(METRICS.releasesFailed)).toHaveLength(1);
    // The approval gated the traffic shift: production never ran the new version.
    expect(metric(METRICS.timeToRestore)).toEqual([]);
    expect(messages()[0]).toContain('Release / ApproveProduction failed.\nWhy: Rejected: the new header is wrong');
  });

  test('a stage-rollback pipeline: the failure counts, the automated rollback\'s success ends the incident', async () => {
    const failedSummary: PipelineExecutionSummary = {
      pipelineExecutionId: EXEC,
      status: 'Failed',
      executionType: 'STANDARD',
      startTime: new Date('2020-01-24T21:00:00Z'),
      lastUpdateTime: new Date('2020-01-24T21:30:00Z'),
    };
    const rollback: PipelineExecutionSummary = {
      pipelineExecutionId: ROLLBACK_EXEC,
      status: 'Succeeded',
      executionType: 'ROLLBACK',
      trigger: { triggerType: 'AutomatedRollback' },
      startTime: new Date('2020-01-24T21:31:00Z'),
      lastUpdateTime: new Date('2020-01-24T21:40:00Z'),
    };
    const previous: PipelineExecutionSummary = {
      pipelineExecutionId: EXEC2,
      status: 'Succeeded',
      executionType: 'STANDARD',
      startTime: new Date('2020-01-23T21:00:00Z'),
      lastUpdateTime: new Date('2020-01-23T21:30:00Z'),
    };
    cp.on(ListPipelineExecutionsCommand).resolves({ pipelineExecutionSummaries: [rollback, failedSummary, previous] });
    cp.on(ListActionExecutionsCommand, { filter: { pipelineExecutionId: EXEC } }).resolves({
      actionExecutionDetails: [sourceAction, failed('Release', 'Deploy', 'S3', 'Access Denied', '2020-01-24T21:20:00Z', '2020-01-24T21:30:00Z')],
    });
    cp.on(GetPipelineExecutionCommand, { pipelineExecutionId: ROLLBACK_EXEC }).resolves({
      pipelineExecution: {
        pipelineExecutionId: ROLLBACK_EXEC,
        executionType: 'ROLLBACK',
        trigger: { triggerType: 'AutomatedRollback' },
        rollbackMetadata: { rollbackTargetPipelineExecutionId: EXEC2 },
      },
    });
    await handleEvent(executionEvent('FAILED', EXEC, '2020-01-24T21:30:00Z'), stageRollback, NOW);
    expect(metric(METRICS.timeToRestore)).toEqual([]);
    expect(messages()[0]).toContain('The pipeline now rolls the Release stage back to the last successful release.');
    await handleEvent(executionEvent('SUCCEEDED', ROLLBACK_EXEC, '2020-01-24T21:40:00Z'), stageRollback, NOW);
    expect(metric(METRICS.releasesFailed)).toHaveLength(1);
    expect(metric(METRICS.deployments)).toEqual([]);
    expect(metric(METRICS.timeToRestore)).toEqual([expect.objectContaining({ Value: 600 })]);
    expect(messages()[1]).toBe([
      `ROLLED BACK: pipeline myPipeline put the release of execution ${EXEC2} back into production, after an automated rollback.`,
      'Time to restore: 10 min.',
      `Execution: ${executionUrl(stageRollback, ROLLBACK_EXEC)}`,
    ].join('\n'));
  });

  test('a stage-rollback pipeline: the next successful release ends an incident that no rollback ended', async () => {
    cp.on(ListPipelineExecutionsCommand).resolves({
      pipelineExecutionSummaries: [
        { pipelineExecutionId: EXEC2, status: 'Succeeded', executionType: 'STANDARD', startTime: new Date('2020-01-24T23:00:00Z') },
        { pipelineExecutionId: 'superseded', status: 'Superseded', startTime: new Date('2020-01-24T22:30:00Z') },
        { pipelineExecutionId: 'build-failed', status: 'Failed', startTime: new Date('2020-01-24T22:10:00Z'), lastUpdateTime: new Date('2020-01-24T22:12:00Z') },
        { pipelineExecutionId: EXEC, status: 'Failed', startTime: new Date('2020-01-24T21:00:00Z'), lastUpdateTime: new Date('2020-01-24T21:30:00Z') },
        { pipelineExecutionId: 'healthy', status: 'Succeeded', startTime: new Date('2020-01-23T21:00:00Z') },
        { pipelineExecutionId: 'older-failure', status: 'Failed', startTime: new Date('2020-01-22T21:00:00Z'), lastUpdateTime: new Date('2020-01-22T21:30:00Z') },
      ],
    });
    cp.on(ListActionExecutionsCommand, { filter: { pipelineExecutionId: EXEC } }).resolves({
      actionExecutionDetails: [failed('Release', 'Deploy', 'S3', 'Access Denied', '2020-01-24T21:20:00Z', '2020-01-24T21:30:00Z')],
    });
    cp.on(ListActionExecutionsCommand, { filter: { pipelineExecutionId: 'build-failed' } }).resolves({
      actionExecutionDetails: [failed('Build', 'Build', 'CodeBuild', 'exit 1', '2020-01-24T22:10:00Z', '2020-01-24T22:12:00Z')],
    });
    await handleEvent(executionEvent('SUCCEEDED', EXEC2, '2020-01-24T23:30:00Z'), stageRollback, NOW);
    // 21:30 (release failed) -> 23:30; the build failure and the older incident do not count.
    expect(metric(METRICS.timeToRestore)).toEqual([expect.objectContaining({ Value: 2 * 3600 })]);
    expect(cp).not.toHaveReceivedCommandWith(ListActionExecutionsCommand, { filter: { pipelineExecutionId: 'older-failure' } });
  });

  test('a long incident reads the actions of at most INCIDENT_SCAN_LIMIT failed executions', async () => {
    const failures = Array.from({ length: INCIDENT_SCAN_LIMIT + 5 }, (_, i) => ({
      pipelineExecutionId: `f-${i}`, status: 'Failed' as const, startTime: new Date(Date.parse('2020-01-24T20:00:00Z') - i * 60_000),
    }));
    cp.on(ListPipelineExecutionsCommand).resolves({
      pipelineExecutionSummaries: [{ pipelineExecutionId: EXEC2, status: 'Succeeded', startTime: new Date('2020-01-24T23:00:00Z') }, ...failures],
    });
    await handleEvent(executionEvent('SUCCEEDED', EXEC2, '2020-01-24T23:30:00Z'), stageRollback, NOW);
    const lookedAt = cp.commandCalls(ListActionExecutionsCommand).map((c) => c.args[0].input.filter?.pipelineExecutionId);
    expect(lookedAt.filter((id) => id?.startsWith('f-'))).toHaveLength(INCIDENT_SCAN_LIMIT);
  });

  test('a manual rollback after a release: that release failed, restored when the rollback finished', async () => {
    cp.on(GetPipelineExecutionCommand, { pipelineExecutionId: ROLLBACK_EXEC }).resolves({
      pipelineExecution: {
        pipelineExecutionId: ROLLBACK_EXEC,
        executionType: 'ROLLBACK',
        trigger: { triggerType: 'ManualRollback', triggerDetail: 'arn:aws:sts::123456789012:assumed-role/Admin/jane' },
        rollbackMetadata: { rollbackTargetPipelineExecutionId: EXEC2 },
      },
    });
    cp.on(ListPipelineExecutionsCommand).resolves({
      pipelineExecutionSummaries: [
        { pipelineExecutionId: ROLLBACK_EXEC, status: 'Succeeded', executionType: 'ROLLBACK', startTime: new Date('2020-01-25T10:00:00Z') },
        { pipelineExecutionId: EXEC, status: 'Succeeded', executionType: 'STANDARD', startTime: new Date('2020-01-25T08:00:00Z') },
        { pipelineExecutionId: EXEC2, status: 'Succeeded', executionType: 'STANDARD', startTime: new Date('2020-01-24T08:00:00Z') },
      ],
    });
    await handleEvent(executionEvent('SUCCEEDED', ROLLBACK_EXEC, '2020-01-25T10:05:00Z'), config, NOW);
    expect(facts.has(`${EXEC}#failed`)).toBe(true);
    expect(metric(METRICS.releasesFailed)).toHaveLength(1);
    expect(metric(METRICS.timeToRestore)).toEqual([expect.objectContaining({ Value: 300 })]);
    expect(messages()[0]).toContain('after a manual rollback by Admin/jane.\nTime to restore: 5 min.');
  });

  test('a failed rollback says so and leaves the incident open (no metric)', async () => {
    cp.on(GetPipelineExecutionCommand).resolves({ pipelineExecution: { pipelineExecutionId: ROLLBACK_EXEC, executionType: 'ROLLBACK' } });
    cp.on(ListActionExecutionsCommand).resolves({
      actionExecutionDetails: [failed('Release', 'Deploy', 'S3', 'Access Denied', '2020-01-24T21:20:00Z', '2020-01-24T21:30:00Z')],
    });
    await handleEvent(executionEvent('FAILED', ROLLBACK_EXEC), config, NOW);
    expect(metrics()).toEqual([]);
    expect(messages()[0]).toMatch(/^FAILED: pipeline myPipeline stopped at Release \/ Deploy/);
  });

  test('a rollback execution\'s Release stage starting is not a new release', async () => {
    cp.on(GetPipelineExecutionCommand).resolves({ pipelineExecution: { pipelineExecutionId: ROLLBACK_EXEC, executionType: 'ROLLBACK' } });
    await handleEvent(stageEvent('Release', 'STARTED', ROLLBACK_EXEC), config, NOW);
    await handleEvent(stageEvent('Source', 'SUCCEEDED', ROLLBACK_EXEC), config, NOW);
    expect(metrics()).toEqual([]);
    expect(topic).not.toHaveReceivedCommand(PublishCommand);
    expect(ddb).not.toHaveReceivedCommand(PutItemCommand);
  });
});

describe('AWS errors', () => {
  test('throttled metrics: the claim is withdrawn and the error rethrown, so that the retry publishes', async () => {
    cw.on(PutMetricDataCommand).rejectsOnce(Object.assign(new Error('Rate exceeded'), { name: 'ThrottlingException' })).resolves({});
    await expect(handleEvent(executionEvent('SUCCEEDED'), config, NOW)).rejects.toThrow(/Rate exceeded/);
    expect(ddb).toHaveReceivedCommandWith(DeleteItemCommand, { Key: { id: { S: `${EXEC}#deployed` } } });
    expect(facts.has(`${EXEC}#deployed`)).toBe(false);
    const retry = await handleEvent(executionEvent('SUCCEEDED'), config, NOW);
    expect(retry.published).toContain(`${EXEC}#deployed`);
    // One call refused, one accepted: the deployment counts once.
    expect(metric(METRICS.deployments)).toHaveLength(2);
    expect(retry.duplicates).toEqual([]);
  });

  test('a failed notification is retried without counting the deployment twice', async () => {
    topic.on(PublishCommand).rejectsOnce(Object.assign(new Error('KMS key disabled'), { name: 'KMSDisabledException' })).resolves({});
    await expect(handleEvent(executionEvent('SUCCEEDED'), config, NOW)).rejects.toThrow(/KMS key disabled/);
    await handleEvent(executionEvent('SUCCEEDED'), config, NOW);
    expect(metric(METRICS.deployments)).toHaveLength(1);
    expect(topic).toHaveReceivedCommandTimes(PublishCommand, 2);
  });

  test('the pipeline cannot be read: nothing is claimed, the error is rethrown', async () => {
    cp.on(GetPipelineExecutionCommand).rejects(new PipelineExecutionNotFoundException({ message: 'not found', $metadata: {} }));
    await expect(handleEvent(executionEvent('SUCCEEDED'), config, NOW)).rejects.toThrow(/not found/);
    expect(ddb).not.toHaveReceivedCommand(PutItemCommand);
    expect(metrics()).toEqual([]);
  });

  test('the table refuses a claim for another reason than a duplicate: rethrown, nothing published', async () => {
    ddb.on(PutItemCommand).rejects(new ProvisionedThroughputExceededException({ message: 'slow down', $metadata: {} }));
    await expect(handleEvent(executionEvent('SUCCEEDED'), config, NOW)).rejects.toThrow(/slow down/);
    expect(metrics()).toEqual([]);
  });

  test('withdrawing the claim fails too: the original error is the one rethrown', async () => {
    cw.on(PutMetricDataCommand).rejects(Object.assign(new Error('Rate exceeded'), { name: 'ThrottlingException' }));
    ddb.on(DeleteItemCommand).rejects(new Error('network down'));
    await expect(handleEvent(executionEvent('SUCCEEDED'), config, NOW)).rejects.toThrow(/Rate exceeded/);
  });

  test('without a topic, metrics are published and nothing is sent', async () => {
    const outcome = await handleEvent(executionEvent('SUCCEEDED'), { ...config, topicArn: undefined }, NOW);
    expect(outcome.published).toContain(`${EXEC}#deployed`);
    expect(topic).not.toHaveReceivedCommand(PublishCommand);
  });
});

describe('claims and configuration', () => {
  test('a claim expires after the configured days', async () => {
    await handleEvent(stageEvent('Release', 'STARTED'), config, NOW);
    expect(ddb).toHaveReceivedCommandWith(PutItemCommand, {
      TableName: 'facts',
      Item: { id: { S: `${EXEC}#release-started` }, state: { S: 'pending' }, claimedAt: { N: String(NOW) }, expiresAt: { N: String(NOW / 1000 + 90 * 86_400) } },
      ConditionExpression: 'attribute_not_exists(id) OR (#state = :pending AND claimedAt < :expired)',
    });
  });

  test('a claim is pending until the work is done, then done; a pending claim whose lease ran out may be taken over', async () => {
    await handleEvent(stageEvent('Release', 'STARTED'), config, NOW);
    expect(ddb).toHaveReceivedCommandWith(PutItemCommand, {
      Item: expect.objectContaining({ id: { S: `${EXEC}#release-started` } }),
      ExpressionAttributeValues: { ':pending': { S: 'pending' }, ':expired': { N: String(NOW - CLAIM_LEASE_MS) } },
    });
    expect(ddb).toHaveReceivedCommandWith(UpdateItemCommand, {
      Key: { id: { S: `${EXEC}#release-started` } },
      UpdateExpression: 'SET #state = :done',
      ExpressionAttributeValues: { ':done': { S: 'done' } },
    });
    // Longer than the function's one-minute timeout, shorter than Lambda's retry schedule of about a minute later.
    expect(CLAIM_LEASE_MS).toBeGreaterThan(60_000);
    expect(CLAIM_LEASE_MS).toBeLessThan(120_000);
  });

  test('a claim that cannot be marked done still counts as published (never lost)', async () => {
    ddb.on(UpdateItemCommand).rejects(Object.assign(new Error('throttled'), { name: 'ThrottlingException' }));
    const outcome = await handleEvent(stageEvent('Release', 'STARTED'), config, NOW);
    expect(outcome.published).toContain(`${EXEC}#release-started`);
    expect(cw).toHaveReceivedCommand(PutMetricDataCommand);
  });

  test('readConfig reads the environment and refuses what is missing or wrong', () => {
    expect(readConfig({ PIPELINE_NAME: 'p', TABLE_NAME: 't', METRIC_NAMESPACE: 'n', AWS_REGION: 'eu-west-1', ENGINE_ROLLS_BACK: 'true' })).toEqual({
      pipelineName: 'p',
      tableName: 't',
      namespace: 'n',
      topicArn: undefined,
      sourceStage: 'Source',
      releaseStage: 'Release',
      engineRollsBack: true,
      engineReportsTraffic: false,
      factTtlDays: 90,
      region: 'eu-west-1',
    });
    expect(() => readConfig({ TABLE_NAME: 't', METRIC_NAMESPACE: 'n' })).toThrow(/PIPELINE_NAME is not set/);
    expect(() => readConfig({ PIPELINE_NAME: 'p', TABLE_NAME: 't', METRIC_NAMESPACE: 'n', FACT_TTL_DAYS: '0' })).toThrow(/FACT_TTL_DAYS/);
  });

  test('the handler entry point reads its configuration from the environment', async () => {
    const saved = { ...process.env };
    Object.assign(process.env, { PIPELINE_NAME: PIPELINE, TABLE_NAME: 'facts', METRIC_NAMESPACE: 'DeliveryPipelines', TOPIC_ARN: '' });
    try {
      const outcome = await handler(stageEvent('Release', 'STARTED'));
      expect(outcome.published).toEqual([`${EXEC}#release-started`, `${EXEC}#notify-releasing`]);
      expect(topic).not.toHaveReceivedCommand(PublishCommand);
    } finally {
      process.env = saved;
    }
  });

  test('isPipelineEvent and summaryMessage', () => {
    expect(isPipelineEvent(executionEvent('FAILED'))).toBe(true);
    expect(isPipelineEvent({ ...executionEvent('FAILED'), time: 'yesterday' })).toBe(false);
    expect(isPipelineEvent({ ...executionEvent('FAILED'), source: 'aws.s3' })).toBe(false);
    expect(summaryMessage('{"ProviderType":"GitHub","CommitMessage":"Hello"}')).toBe('Hello');
    expect(summaryMessage('{not json')).toBe('{not json');
    expect(summaryMessage('Plain message')).toBe('Plain message');
    expect(summaryMessage(undefined)).toBeUndefined();
  });
});

describe('production alarms back to OK (time to restore)', () => {
  // The documented shape of a CloudWatch alarm state change event (EventBridge, source aws.cloudwatch).
  const alarmEvent = (value: string, previous: string, at = '2020-01-24T22:45:00.000+0000', since = '2020-01-24T22:30:00.000+0000') => ({
    'version': '0',
    'id': 'c4c1c1c9-6542-e61b-6ef0-8c4d36933a92',
    'detail-type': 'CloudWatch Alarm State Change',
    'source': 'aws.cloudwatch',
    'account': '123456789012',
    'time': at,
    'region': 'eu-west-1',
    'resources': ['arn:aws:cloudwatch:eu-west-1:123456789012:alarm:Web-Http5xx'],
    'detail': {
      alarmName: 'Web-Http5xx',
      state: { value, reason: 'Threshold Crossed', timestamp: at },
      previousState: { value: previous, reason: 'Threshold Crossed', timestamp: since },
      configuration: { metrics: [] },
    },
  });

  test('an alarm back from ALARM to OK publishes the time it spent in ALARM, at the OK time', async () => {
    const outcome = await handleEvent(alarmEvent('OK', 'ALARM'), config, NOW);
    expect(outcome.kind).toBe('alarm-restored');
    expect(metric(METRICS.timeToRestore)).toEqual([expect.objectContaining({
      Value: 15 * 60,
      Unit: 'Seconds',
      Timestamp: new Date(Date.parse('2020-01-24T22:45:00Z')),
      Dimensions: [{ Name: 'Pipeline', Value: config.pipelineName }],
    })]);
  });

  test('the same OK delivered twice counts once', async () => {
    ddb.on(PutItemCommand).resolvesOnce({}).rejects(new ConditionalCheckFailedException({ message: 'exists', $metadata: {} }));
    await handleEvent(alarmEvent('OK', 'ALARM'), config, NOW);
    const second = await handleEvent(alarmEvent('OK', 'ALARM'), config, NOW);
    expect(second.duplicates).toEqual(['alarm#Web-Http5xx#2020-01-24T22:45:00.000+0000#restored']);
    expect(metric(METRICS.timeToRestore)).toHaveLength(1);
  });

  test('other transitions (into ALARM, from INSUFFICIENT_DATA) publish nothing', async () => {
    for (const [value, previous] of [['ALARM', 'OK'], ['OK', 'INSUFFICIENT_DATA']]) {
      expect((await handleEvent(alarmEvent(value, previous), config, NOW)).kind).toBe('ignored');
    }
    expect(metrics()).toEqual([]);
  });

  test('a publish that fails is rethrown for Lambda to retry, the claim withdrawn', async () => {
    cw.on(PutMetricDataCommand).rejects(Object.assign(new Error('slow down'), { name: 'ThrottlingException' }));
    await expect(handleEvent(alarmEvent('OK', 'ALARM'), config, NOW)).rejects.toThrow(/slow down/);
    expect(ddb).toHaveReceivedCommand(DeleteItemCommand);
  });
});
