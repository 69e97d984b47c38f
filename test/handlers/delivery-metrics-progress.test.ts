/**
 * The delivery metrics handler's traffic steps, lead time to full traffic and consecutive failed releases (ADR 0010,
 * "Traffic steps"). The CodePipeline event shapes are the User Guide's ("Monitoring CodePipeline events"); the traffic
 * step event is this library's own (src/handlers/shared/release-progress.ts).
 */
import { CloudWatchClient, PutMetricDataCommand } from '@aws-sdk/client-cloudwatch';
import type { MetricDatum } from '@aws-sdk/client-cloudwatch';
import { CodePipelineClient, GetPipelineExecutionCommand, ListActionExecutionsCommand, ListPipelineExecutionsCommand } from '@aws-sdk/client-codepipeline';
import type { ActionExecutionDetail, PipelineExecution, PipelineExecutionSummary } from '@aws-sdk/client-codepipeline';
import { ConditionalCheckFailedException, DeleteItemCommand, DynamoDBClient, PutItemCommand, UpdateItemCommand } from '@aws-sdk/client-dynamodb';
import type { AttributeValue } from '@aws-sdk/client-dynamodb';
import { EventBridgeClient, PutEventsCommand } from '@aws-sdk/client-eventbridge';
import { PublishCommand, SNSClient } from '@aws-sdk/client-sns';
import { mockClient } from 'aws-sdk-client-mock';
import 'aws-sdk-client-mock-jest';
import type { Config } from '../../src/handlers/delivery-metrics.lambda';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
const {
  handleEvent, isProgressEvent, METRICS, readConfig,
  // eslint-disable-next-line @typescript-eslint/no-require-imports
}: typeof import('../../src/handlers/delivery-metrics.lambda') = require('../../src/handlers/delivery-metrics.lambda');
const {
  publishProgress, progressEntry, progressEvents, PROGRESS_CLIENT_CONFIG,
  // eslint-disable-next-line @typescript-eslint/no-require-imports
}: typeof import('../../src/handlers/shared/release-progress') = require('../../src/handlers/shared/release-progress');

const cw = mockClient(CloudWatchClient);
const cp = mockClient(CodePipelineClient);
const ddb = mockClient(DynamoDBClient);
const topic = mockClient(SNSClient);
const bus = mockClient(EventBridgeClient);

const PIPELINE = 'myPipeline';
const EXEC = '12345678-1234-5678-abcd-12345678abcd';
const EXEC2 = '22345678-1234-5678-abcd-12345678abcd';
const EXEC3 = '32345678-1234-5678-abcd-12345678abcd';
const EXEC4 = '42345678-1234-5678-abcd-12345678abcd';
const COMMIT = '1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b';
const NOW = Date.parse('2020-01-24T23:00:00Z');

const config: Config = {
  pipelineName: PIPELINE,
  tableName: 'facts',
  namespace: 'DeliveryPipelines',
  topicArn: 'arn:aws:sns:us-east-1:123456789012:notifications',
  sourceStage: 'Source',
  releaseStage: 'Release',
  engineRollsBack: true,
  engineReportsTraffic: true,
  factTtlDays: 90,
  region: 'us-east-1',
};

/** A traffic step event as EventBridge delivers what the engine put (the envelope of a custom event). */
function stepEvent(step: number, steps: number, percent: number, shiftedAt: string, id = `step-${step}`, pipeline = PIPELINE) {
  return {
    'version': '0',
    id,
    'detail-type': 'Release Traffic Shifted',
    'source': 'cdk-delivery-pipelines.release',
    'account': '123456789012',
    'time': shiftedAt,
    'region': 'us-east-1',
    'resources': [],
    'detail': { pipeline, executionId: EXEC, engine: 'ec2-blue-green', step, steps, percent, shiftedAt },
  };
}

function executionEvent(state: string, executionId = EXEC, time = '2020-01-24T22:03:07Z') {
  return {
    'version': '0',
    'id': `exec-${executionId}-${state}`,
    'detail-type': 'CodePipeline Pipeline Execution State Change',
    'source': 'aws.codepipeline',
    'account': '123456789012',
    time,
    'region': 'us-east-1',
    'resources': [`arn:aws:codepipeline:us-east-1:123456789012:${PIPELINE}`],
    'detail': { 'pipeline': PIPELINE, 'execution-id': executionId, state, 'version': 1, 'pipeline-execution-attempt': 1 },
  };
}

const standardExecution: PipelineExecution = {
  pipelineName: PIPELINE,
  pipelineExecutionId: EXEC,
  status: 'Succeeded',
  executionType: 'STANDARD',
  trigger: { triggerType: 'WebhookV2' },
  artifactRevisions: [{ name: 'Source', revisionId: COMMIT, revisionUrl: `https://github.com/octo/app/commit/${COMMIT}` }],
};

const sourceAction: ActionExecutionDetail = {
  pipelineExecutionId: EXEC,
  stageName: 'Source',
  actionName: 'Source',
  status: 'Succeeded',
  startTime: new Date('2020-01-24T21:58:00Z'),
  lastUpdateTime: new Date('2020-01-24T21:58:30Z'),
  output: { outputVariables: { CommitId: COMMIT, CommitMessage: 'Fix the login page', AuthorDate: '2020-01-24T20:03:07Z', BranchName: 'main', FullRepositoryName: 'octo/app' } },
};

const releaseFailure: ActionExecutionDetail = {
  stageName: 'Release',
  actionName: 'Release',
  status: 'Failed',
  startTime: new Date('2020-01-24T22:00:00Z'),
  lastUpdateTime: new Date('2020-01-24T22:10:00Z'),
  input: { actionTypeId: { category: 'Invoke', owner: 'AWS', provider: 'StepFunctions', version: '1' } },
  output: { executionResult: { errorDetails: { code: 'JobFailed', message: 'alarm green-5xx went into ALARM during the bake' } } },
};
const buildFailure: ActionExecutionDetail = { ...releaseFailure, stageName: 'Build', actionName: 'Build' };

/** DynamoDB in memory: conditional puts, deletes, and the lead-time item's `if_not_exists` updates behave like the real ones. */
let items: Map<string, Record<string, AttributeValue>>;

function metric(name: string): MetricDatum[] {
  return cw.commandCalls(PutMetricDataCommand).flatMap((c) => c.args[0].input.MetricData ?? []).filter((m) => m.MetricName === name);
}
function messages(): string[] {
  return topic.commandCalls(PublishCommand).map((c) => JSON.parse(c.args[0].input.Message ?? '{}').default ?? '');
}
function subjects(): string[] {
  return topic.commandCalls(PublishCommand).map((c) => c.args[0].input.Subject ?? '');
}
const summary = (id: string, status: string, start: string, executionType = 'STANDARD'): PipelineExecutionSummary => ({
  pipelineExecutionId: id, status: status as PipelineExecutionSummary['status'], startTime: new Date(start), lastUpdateTime: new Date(start), executionType: executionType as 'STANDARD',
});

beforeEach(() => {
  for (const mock of [cw, cp, ddb, topic, bus]) mock.reset();
  items = new Map();
  ddb.on(PutItemCommand).callsFake((input) => {
    const key = input.Item.id.S as string;
    if (items.has(key)) throw new ConditionalCheckFailedException({ message: 'The conditional request failed', $metadata: {} });
    items.set(key, input.Item);
    return {};
  });
  ddb.on(DeleteItemCommand).callsFake((input) => {
    items.delete(input.Key.id.S as string);
    return {};
  });
  ddb.on(UpdateItemCommand).callsFake((input) => {
    const key = input.Key.id.S as string;
    const item = { ...(items.get(key) ?? { id: { S: key } }) };
    const expression: string = input.UpdateExpression;
    for (const [, name, value] of expression.matchAll(/(#?\w+) = if_not_exists\(\S+, (:\w+)\)/g)) {
      const attribute = name.startsWith('#') ? input.ExpressionAttributeNames[name] : name;
      if (item[attribute] === undefined) item[attribute] = input.ExpressionAttributeValues[value];
    }
    if (/SET #state = :done/.test(expression)) item.state = { S: 'done' };
    items.set(key, item);
    return input.ReturnValues === 'ALL_NEW' ? { Attributes: item } : {};
  });
  cw.on(PutMetricDataCommand).resolves({});
  topic.on(PublishCommand).resolves({ MessageId: 'm-1' });
  cp.on(GetPipelineExecutionCommand).resolves({ pipelineExecution: standardExecution });
  cp.on(ListActionExecutionsCommand).resolves({ actionExecutionDetails: [sourceAction] });
  cp.on(ListPipelineExecutionsCommand).resolves({ pipelineExecutionSummaries: [summary(EXEC, 'Succeeded', '2020-01-24T21:58:00Z')] });
  jest.spyOn(console, 'log').mockImplementation(() => undefined);
  jest.spyOn(console, 'error').mockImplementation(() => undefined);
});

afterEach(() => jest.restoreAllMocks());

describe('traffic step messages', () => {
  test('one readable message per step: commit, share of production, step n of m; no metric', async () => {
    const outcome = await handleEvent(stepEvent(1, 4, 25, '2020-01-24T22:01:00Z'), config, NOW);
    expect(outcome).toMatchObject({ kind: 'traffic-shifted', published: [`${EXEC}#traffic#1`] });
    expect(subjects()).toEqual(['RELEASING: myPipeline commit 1a2b3c4: 25 % of production (step 1 of 4)']);
    expect(messages()[0].split('\n')[0]).toBe(
      'RELEASING commit 1a2b3c4 "Fix the login page" (octo/app main): 25 % of production traffic on the new version (step 1 of 4).');
    expect(messages()[0]).toContain(`/executions/${EXEC}/timeline`);
    expect(cw).not.toHaveReceivedCommand(PutMetricDataCommand);
  });

  test('the same step twice (a retried engine, EventBridge at least once): one message', async () => {
    await handleEvent(stepEvent(1, 2, 10, '2020-01-24T22:01:00Z', 'a'), config, NOW);
    const second = await handleEvent(stepEvent(1, 2, 10, '2020-01-24T22:01:02Z', 'b'), config, NOW + 5_000);
    expect(second).toMatchObject({ published: [], duplicates: [`${EXEC}#traffic#1`] });
    expect(topic).toHaveReceivedCommandTimes(PublishCommand, 1);
  });

  test('a manual start without a commit: the message names the revision the source gave', async () => {
    cp.on(GetPipelineExecutionCommand).resolves({
      pipelineExecution: {
        ...standardExecution,
        trigger: { triggerType: 'StartPipelineExecution' },
        artifactRevisions: [{ name: 'Source', revisionId: 'v3.Lw0bQ7eYxzx0', created: new Date('2020-01-24T21:00:00Z') }],
      },
    });
    cp.on(ListActionExecutionsCommand).resolves({ actionExecutionDetails: [{ ...sourceAction, output: { outputVariables: {} } }] });
    await handleEvent(stepEvent(1, 1, 100, '2020-01-24T22:01:00Z'), config, NOW);
    expect(messages()[0].split('\n')[0]).toBe('RELEASING revision v3.Lw0bQ7eYxzx0: 100 % of production traffic on the new version (step 1 of 1).');
  });

  test('another pipeline\'s step, or a malformed one: ignored, nothing read', async () => {
    expect(await handleEvent(stepEvent(1, 2, 10, '2020-01-24T22:01:00Z', 'x', 'otherPipeline'), config, NOW)).toMatchObject({ kind: 'ignored' });
    expect(await handleEvent(stepEvent(3, 2, 10, '2020-01-24T22:01:00Z'), config, NOW)).toMatchObject({ kind: 'ignored' });
    expect(await handleEvent(stepEvent(1, 2, 110, '2020-01-24T22:01:00Z'), config, NOW)).toMatchObject({ kind: 'ignored' });
    expect(cp).not.toHaveReceivedAnyCommand();
    expect(isProgressEvent({ ...stepEvent(1, 2, 10, 'not a time') })).toBe(false);
  });

  test('SNS failing: the claim is withdrawn and the error rethrown, so that Lambda\'s retry sends the message', async () => {
    topic.on(PublishCommand).rejectsOnce(Object.assign(new Error('Rate exceeded'), { name: 'Throttling' }));
    await expect(handleEvent(stepEvent(1, 2, 10, '2020-01-24T22:01:00Z'), config, NOW)).rejects.toThrow(/Rate exceeded/);
    expect(items.has(`${EXEC}#traffic#1`)).toBe(false);
    const retry = await handleEvent(stepEvent(1, 2, 10, '2020-01-24T22:01:00Z'), config, NOW + 60_000);
    expect(retry.published).toEqual([`${EXEC}#traffic#1`]);
  });
});

describe('trafficMessage (the formatter)', () => {
  const {
    trafficMessage,
    // eslint-disable-next-line @typescript-eslint/no-require-imports
  }: typeof import('../../src/handlers/delivery-metrics-messages') = require('../../src/handlers/delivery-metrics-messages');
  const change = { pipeline: 'p'.repeat(90), executionId: EXEC, executionUrl: 'https://console/x', commitId: COMMIT };

  test('the subject stays within SNS\'s 100 characters; a partial step says the rest stays on the previous version', () => {
    const message = trafficMessage(change, { step: 1, steps: 10, percent: 10, engine: 'lambda-alias' });
    expect(message.subject.length).toBeLessThanOrEqual(100);
    expect(message.message).toContain('The rest of production traffic stays on the previous version');
    expect(message.message).not.toContain('Lead time');
  });
});

describe('lead time ends at 100 % of production traffic', () => {
  // Author date 20:03:07; full traffic 22:01:00; execution success (after the bake) 22:03:07.
  const fullTraffic = () => stepEvent(2, 2, 100, '2020-01-24T22:01:00Z');

  test('100 % first, then the success: lead time to full traffic, stamped at full traffic, once', async () => {
    await handleEvent(stepEvent(1, 2, 10, '2020-01-24T21:59:00Z'), config, NOW);
    await handleEvent(fullTraffic(), config, NOW);
    expect(metric(METRICS.leadTime)).toEqual([]);
    await handleEvent(executionEvent('SUCCEEDED'), config, NOW);
    expect(metric(METRICS.leadTime)).toEqual([expect.objectContaining({ Value: 7073, Unit: 'Seconds', Timestamp: new Date('2020-01-24T22:01:00Z') })]);
    expect(messages()[2]).toContain('Lead time: 1 h 57 min from the commit to all production traffic.');
  });

  test('out of order: the success first (no lead time yet, the message says so), then 100 %: published once, in the step message', async () => {
    const success = await handleEvent(executionEvent('SUCCEEDED'), config, NOW);
    expect(success.published).not.toContain(`revision#${COMMIT}#lead-time`);
    expect(metric(METRICS.leadTime)).toEqual([]);
    expect(messages()[0]).toContain('it is published once the release engine\'s traffic event is in');
    await handleEvent(fullTraffic(), config, NOW);
    expect(metric(METRICS.leadTime)).toEqual([expect.objectContaining({ Value: 7073, Timestamp: new Date('2020-01-24T22:01:00Z') })]);
    expect(messages()[1]).toContain('Lead time: 1 h 57 min from the commit to all production traffic.');
    // Duplicates of both, in any order: nothing more.
    await handleEvent(fullTraffic(), config, NOW + 1000);
    await handleEvent(executionEvent('SUCCEEDED'), config, NOW + 1000);
    expect(metric(METRICS.leadTime)).toHaveLength(1);
    expect(topic).toHaveReceivedCommandTimes(PublishCommand, 2);
  });

  test('a step below 100 % never ends the lead time', async () => {
    await handleEvent(executionEvent('SUCCEEDED'), config, NOW);
    await handleEvent(stepEvent(1, 2, 10, '2020-01-24T21:59:00Z'), config, NOW);
    expect(metric(METRICS.leadTime)).toEqual([]);
  });

  test('an engine without traffic events: lead time to the execution\'s success, as before', async () => {
    await handleEvent(executionEvent('SUCCEEDED'), { ...config, engineReportsTraffic: false }, NOW);
    expect(metric(METRICS.leadTime)).toEqual([expect.objectContaining({ Value: 7200, Timestamp: new Date('2020-01-24T22:03:07Z') })]);
    expect(ddb).not.toHaveReceivedCommandWith(UpdateItemCommand, { Key: { id: { S: `${EXEC}#lead-time-facts` } } });
  });

  test('a manual start without a commit time: from the start of the source action to full traffic', async () => {
    cp.on(GetPipelineExecutionCommand).resolves({ pipelineExecution: { ...standardExecution, trigger: { triggerType: 'StartPipelineExecution' }, artifactRevisions: [] } });
    cp.on(ListActionExecutionsCommand).resolves({ actionExecutionDetails: [{ ...sourceAction, output: { outputVariables: {} } }] });
    await handleEvent(fullTraffic(), config, NOW);
    await handleEvent(executionEvent('SUCCEEDED'), config, NOW);
    // 21:58:00 -> 22:01:00
    expect(metric(METRICS.leadTime)).toEqual([expect.objectContaining({ Value: 180 })]);
  });
});

describe('ConsecutiveFailedReleases', () => {
  beforeEach(() => {
    cp.on(GetPipelineExecutionCommand).resolves({ pipelineExecution: { ...standardExecution, status: 'Failed' } });
    cp.on(ListActionExecutionsCommand).resolves({ actionExecutionDetails: [sourceAction, releaseFailure] });
  });
  const history = (...summaries: PipelineExecutionSummary[]) =>
    cp.on(ListPipelineExecutionsCommand).resolves({ pipelineExecutionSummaries: summaries });

  test('two failed releases in a row: 2 (a failed build between them, a rollback and a stopped execution do not break the run)', async () => {
    history(
      summary(EXEC, 'Failed', '2020-01-24T22:00:00Z'),
      summary('rollback-1', 'Succeeded', '2020-01-24T21:50:00Z', 'ROLLBACK'),
      summary(EXEC3, 'Failed', '2020-01-24T21:40:00Z'),
      summary('stopped-1', 'Stopped', '2020-01-24T21:35:00Z'),
      summary(EXEC2, 'Failed', '2020-01-24T21:30:00Z'),
      summary(EXEC4, 'Succeeded', '2020-01-24T21:00:00Z'),
    );
    cp.on(ListActionExecutionsCommand, { filter: { pipelineExecutionId: EXEC3 } }).resolves({ actionExecutionDetails: [buildFailure] });
    await handleEvent(executionEvent('FAILED'), config, NOW);
    expect(metric(METRICS.consecutiveFailedReleases)).toEqual([expect.objectContaining({ Value: 2, Unit: 'Count', Timestamp: new Date('2020-01-24T22:03:07Z') })]);
  });

  test('across a success: the run starts again at 1', async () => {
    history(
      summary(EXEC, 'Failed', '2020-01-24T22:00:00Z'),
      summary(EXEC2, 'Succeeded', '2020-01-24T21:30:00Z'),
      summary(EXEC3, 'Failed', '2020-01-24T21:00:00Z'),
    );
    await handleEvent(executionEvent('FAILED'), config, NOW);
    expect(metric(METRICS.consecutiveFailedReleases)).toEqual([expect.objectContaining({ Value: 1 })]);
  });

  test('a success publishes 0, and a duplicate of the outcome publishes nothing more', async () => {
    cp.on(GetPipelineExecutionCommand).resolves({ pipelineExecution: standardExecution });
    cp.on(ListActionExecutionsCommand).resolves({ actionExecutionDetails: [sourceAction] });
    history(summary(EXEC, 'Succeeded', '2020-01-24T22:00:00Z'), summary(EXEC2, 'Failed', '2020-01-24T21:30:00Z'));
    await handleEvent(executionEvent('SUCCEEDED'), config, NOW);
    await handleEvent(executionEvent('SUCCEEDED'), config, NOW + 1000);
    expect(metric(METRICS.consecutiveFailedReleases)).toEqual([expect.objectContaining({ Value: 0 })]);
  });

  test('a failed build is not a failed release: no metric', async () => {
    cp.on(ListActionExecutionsCommand).resolves({ actionExecutionDetails: [sourceAction, buildFailure] });
    history(summary(EXEC, 'Failed', '2020-01-24T22:00:00Z'));
    await handleEvent(executionEvent('FAILED'), config, NOW);
    expect(metric(METRICS.consecutiveFailedReleases)).toEqual([]);
  });
});

describe('the engines\' emitter (shared/release-progress.ts)', () => {
  const detail = { pipeline: PIPELINE, executionId: EXEC, engine: 'lambda-alias', step: 1, steps: 2, percent: 10, shiftedAt: '2020-01-24T22:01:00.000Z' };

  test('one entry on the default bus (no EventBusName), the documented source and detail-type, the time of the shift', async () => {
    bus.on(PutEventsCommand).resolves({ FailedEntryCount: 0, Entries: [{ EventId: 'e-1' }] });
    expect(await publishProgress(detail)).toBe(true);
    expect(bus).toHaveReceivedCommandWith(PutEventsCommand, { Entries: [progressEntry(detail)] });
    expect(progressEntry(detail)).toEqual({
      Source: 'cdk-delivery-pipelines.release', DetailType: 'Release Traffic Shifted', Detail: JSON.stringify(detail), Time: new Date(detail.shiftedAt),
    });
  });

  test('one attempt with short timeouts: a slow or failing EventBridge never holds a release up', async () => {
    expect(await progressEvents.config.maxAttempts()).toBe(1);
    expect(PROGRESS_CLIENT_CONFIG).toEqual({ maxAttempts: 1, requestHandler: { connectionTimeout: 2_000, requestTimeout: 3_000 } });
  });

  test('a rejected call or an entry not taken: false, never a throw', async () => {
    bus.on(PutEventsCommand).rejects(Object.assign(new Error('timeout'), { name: 'TimeoutError' }));
    await expect(publishProgress(detail)).resolves.toBe(false);
    bus.on(PutEventsCommand).resolves({ FailedEntryCount: 1, Entries: [{ ErrorCode: 'ThrottlingException', ErrorMessage: 'slow down' }] });
    await expect(publishProgress(detail)).resolves.toBe(false);
  });

  test('ENGINE_REPORTS_TRAFFIC configures the lead time\'s end', () => {
    const env = { PIPELINE_NAME: 'p', TABLE_NAME: 't', METRIC_NAMESPACE: 'n' };
    expect(readConfig({ ...env, ENGINE_REPORTS_TRAFFIC: 'true' }).engineReportsTraffic).toBe(true);
    expect(readConfig(env).engineReportsTraffic).toBe(false);
  });
});
