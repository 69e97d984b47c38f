/**
 * Delivery metrics (the four DORA metrics) and readable release notifications, from this pipeline's own EventBridge
 * events.
 *
 * EventBridge delivers, for ONE pipeline (the rules name its ARN):
 * - `CodePipeline Pipeline Execution State Change`, `SUCCEEDED` and `FAILED`;
 * - `CodePipeline Stage Execution State Change` of the Source stage (`SUCCEEDED`) and of the Release stage
 *   (`STARTED`).
 *
 * What each event becomes (metrics in namespace `METRIC_NAMESPACE`, dimension `Pipeline` = `PIPELINE_NAME`, each
 * with the event's own time as its timestamp, so that the order of arrival does not matter):
 *
 * | event | metric | notification |
 * | --- | --- | --- |
 * | Source stage `SUCCEEDED` (standard execution) | - | `STARTED` (commit, author, message, link) |
 * | Release stage `STARTED` (standard execution) | `ReleasesStarted` 1 | `RELEASING` |
 * | execution `FAILED`, failed action in the Release stage | `ReleasesFailed` 1 (+ `TimeToRestore` when the release engine rolls back itself, unless an approval failed) | `ROLLED BACK` (why) |
 * | execution `FAILED`, elsewhere | - | `FAILED` (which action, why, link to the build and its reports) |
 * | execution `SUCCEEDED`, standard | `Deployments` 1, `LeadTime` (once per revision), `TimeToRestore` (when it ends an incident) | `RELEASED` (lead time) |
 * | `Release Traffic Shifted` (`cdk-delivery-pipelines.release`, the engine's step n of m) | `LeadTime` at 100 %, once the success is known too | `RELEASING` (share of production, step n of m) |
 * | execution `SUCCEEDED`, rollback | `TimeToRestore`; a manual rollback also counts `ReleasesFailed` for the release it undid | `ROLLED BACK` (time to restore) |
 *
 * Where the facts come from: `codepipeline:GetPipelineExecution` (execution type, trigger, artifact revision with
 * `revisionId`, `revisionSummary`, `revisionUrl`, `created`; rollback target), `codepipeline:ListActionExecutions`
 * of the execution (the source action's output variables `CommitId`, `CommitMessage`, `AuthorDate`, `BranchName`,
 * `FullRepositoryName`/`RepositoryName`; the failed action, its `errorDetails` and external execution link), and
 * `codepipeline:ListPipelineExecutions` (the history, for the time to restore and for what a manual rollback undid).
 * The API is the source of truth, not the order in which events arrive.
 *
 * Lead time starts at, in this order: the commit's `AuthorDate` (CodeCommit, GitHub/GitLab/Bitbucket through
 * CodeConnections); the artifact revision's `created` time (an S3 source: the object's upload); the event's
 * `execution-trigger` commit time, when present; the start of the source action (a manual start whose source gives
 * no time). It is published once per revision: a manual re-run of an already released commit is a deployment, not a
 * new change.
 *
 * With `ENGINE_REPORTS_TRAFFIC`, lead time ends at the engine's 100 % traffic step instead of the execution's
 * success: both halves go into the item `<execution>#lead-time-facts` (`UpdateItem`, `if_not_exists` per attribute,
 * `ReturnValues: ALL_NEW`), and whichever event comes last finds both and publishes the lead time (claimed once per
 * revision like every lead time). `ConsecutiveFailedReleases` is published at each release outcome from the history.
 *
 * Idempotency: EventBridge delivers at least once. Each fact (`<execution>#deployed`, `<execution>#failed`,
 * `revision#<id>#lead-time`, `<execution>#notify-released`, ...) is claimed with a conditional `PutItem` in the
 * table `TABLE_NAME` (`attribute_not_exists`, expiring after `FACT_TTL_DAYS`) before it is published; a duplicate
 * finds the claim and does nothing. When publishing fails, the claim is deleted again and the error is rethrown, so
 * that Lambda's retry of the asynchronous invocation publishes it (and a failed retry ends in the dead-letter queue).
 *
 * Configuration (environment): `PIPELINE_NAME`, `TABLE_NAME`, `METRIC_NAMESPACE`, `TOPIC_ARN` (empty: no
 * notifications), `SOURCE_STAGE_NAME`, `RELEASE_STAGE_NAME`, `ENGINE_ROLLS_BACK` (`true` when the release engine puts
 * production back itself, so that the Release stage has no stage rollback), `FACT_TTL_DAYS`.
 * IAM: `codepipeline:GetPipelineExecution`, `codepipeline:ListActionExecutions`,
 * `codepipeline:ListPipelineExecutions` on the pipeline; `cloudwatch:PutMetricData` (namespace condition);
 * `dynamodb:PutItem`, `dynamodb:DeleteItem` on the table; `sns:Publish` on the topic (and its key).
 *
 * References: CodePipeline User Guide, "Monitoring CodePipeline events" (detect-state-changes-cloudwatch-events.html:
 * event shapes, at-least-once delivery); CodePipeline API Reference, GetPipelineExecution, ListActionExecutions,
 * ListPipelineExecutions, ExecutionTrigger (trigger types), PipelineRollbackMetadata; CloudWatch API Reference,
 * PutMetricData (timestamps up to two weeks in the past); DynamoDB Developer Guide, condition expressions.
 */
import {
  CloudWatchClient,
  PutMetricDataCommand,
} from '@aws-sdk/client-cloudwatch';
import type { MetricDatum, StandardUnit } from '@aws-sdk/client-cloudwatch';
import {
  CodePipelineClient,
  GetPipelineExecutionCommand,
  ListActionExecutionsCommand,
  ListPipelineExecutionsCommand,
} from '@aws-sdk/client-codepipeline';
import type { ActionExecutionDetail, PipelineExecution, PipelineExecutionSummary } from '@aws-sdk/client-codepipeline';
import { DeleteItemCommand, DynamoDBClient, PutItemCommand, UpdateItemCommand } from '@aws-sdk/client-dynamodb';
import { PublishCommand, SNSClient } from '@aws-sdk/client-sns';
import {
  ChangeFacts,
  FailedActionFacts,
  Notification,
  failedMessage,
  releasedMessage,
  releasingMessage,
  rollbackDoneMessage,
  rolledBackMessage,
  snsMessage,
  startedMessage,
  trafficMessage,
} from './delivery-metrics-messages';
import { errorMessage, isObject, log, logError } from './shared/common';

const REQUEST_HANDLER = { connectionTimeout: 3_000, requestTimeout: 10_000 };

/** Exported for tests. */
export const codePipeline = new CodePipelineClient({ maxAttempts: 4, requestHandler: REQUEST_HANDLER });
/** Exported for tests. */
export const cloudWatch = new CloudWatchClient({ maxAttempts: 4, requestHandler: REQUEST_HANDLER });
/** Exported for tests. */
export const dynamoDb = new DynamoDBClient({ maxAttempts: 4, requestHandler: REQUEST_HANDLER });
/** Exported for tests. */
export const sns = new SNSClient({ maxAttempts: 4, requestHandler: REQUEST_HANDLER });

/** Metric names; the construct draws the dashboard from the same names. */
export const METRICS = {
  deployments: 'Deployments',
  leadTime: 'LeadTime',
  releasesStarted: 'ReleasesStarted',
  releasesFailed: 'ReleasesFailed',
  timeToRestore: 'TimeToRestore',
  consecutiveFailedReleases: 'ConsecutiveFailedReleases',
} as const;

/** The release engines' traffic step events (kept in step with src/handlers/shared/release-progress.ts). */
export const PROGRESS_SOURCE = 'cdk-delivery-pipelines.release';
export const PROGRESS_DETAIL_TYPE = 'Release Traffic Shifted';

/** Executions of the history read for the time to restore (two pages). */
export const HISTORY_LIMIT = 100;
/** Failed executions of one incident whose actions are read, at most. */
export const INCIDENT_SCAN_LIMIT = 10;

/** The part of a CodePipeline EventBridge event the handler reads. */
export interface PipelineEvent {
  readonly 'id': string;
  readonly 'detail-type': string;
  readonly 'source': string;
  readonly 'time': string;
  readonly 'detail': {
    readonly 'pipeline': string;
    readonly 'execution-id': string;
    readonly 'state': string;
    readonly 'stage'?: string;
    readonly 'execution-trigger'?: Record<string, unknown>;
  };
}

export interface Config {
  readonly pipelineName: string;
  readonly tableName: string;
  readonly namespace: string;
  readonly topicArn?: string;
  readonly sourceStage: string;
  readonly releaseStage: string;
  readonly engineRollsBack: boolean;
  /** The release engine sends a traffic step event at 100 %: lead time ends there (`ENGINE_REPORTS_TRAFFIC`). */
  readonly engineReportsTraffic: boolean;
  readonly factTtlDays: number;
  readonly region: string;
}

/** What one invocation did: the facts it published and the ones it found already claimed. */
export interface Outcome {
  readonly kind: string;
  readonly published: string[];
  readonly duplicates: string[];
}

export class ConfigurationError extends Error {
  public readonly name = 'ConfigurationError';
}

export function readConfig(env: Record<string, string | undefined> = process.env): Config {
  const required = (name: string): string => {
    const value = env[name];
    if (value === undefined || value === '') throw new ConfigurationError(`environment variable ${name} is not set`);
    return value;
  };
  const ttl = Number(env.FACT_TTL_DAYS ?? '90');
  if (!Number.isInteger(ttl) || ttl < 1) throw new ConfigurationError(`FACT_TTL_DAYS must be a whole number of days, got ${env.FACT_TTL_DAYS}`);
  return {
    pipelineName: required('PIPELINE_NAME'),
    tableName: required('TABLE_NAME'),
    namespace: required('METRIC_NAMESPACE'),
    topicArn: env.TOPIC_ARN ? env.TOPIC_ARN : undefined,
    sourceStage: env.SOURCE_STAGE_NAME || 'Source',
    releaseStage: env.RELEASE_STAGE_NAME || 'Release',
    engineRollsBack: env.ENGINE_ROLLS_BACK === 'true',
    engineReportsTraffic: env.ENGINE_REPORTS_TRAFFIC === 'true',
    factTtlDays: ttl,
    region: env.AWS_REGION || 'us-east-1',
  };
}

/** True for a CodePipeline event with the fields the handler reads. */
export function isPipelineEvent(event: unknown): event is PipelineEvent {
  if (!isObject(event) || event.source !== 'aws.codepipeline' || typeof event.id !== 'string') return false;
  if (typeof event['detail-type'] !== 'string' || typeof event.time !== 'string' || Number.isNaN(Date.parse(event.time))) return false;
  const detail = event.detail;
  return isObject(detail) && typeof detail.pipeline === 'string' && typeof detail['execution-id'] === 'string' && typeof detail.state === 'string';
}

/** The execution's page in the CodePipeline console. */
export function executionUrl(config: Config, executionId: string): string {
  return `https://${config.region}.console.aws.amazon.com/codesuite/codepipeline/pipelines/${encodeURIComponent(config.pipelineName)}` +
    `/executions/${executionId}/timeline?region=${config.region}`;
}

// ---------------------------------------------------------------------------------------------------------------
// Facts about an execution
// ---------------------------------------------------------------------------------------------------------------

/** All action executions of one pipeline execution (up to three pages). */
export async function listActions(config: Config, executionId: string): Promise<ActionExecutionDetail[]> {
  const details: ActionExecutionDetail[] = [];
  let nextToken: string | undefined;
  for (let page = 0; page < 3; page++) {
    const out = await codePipeline.send(new ListActionExecutionsCommand({
      pipelineName: config.pipelineName,
      filter: { pipelineExecutionId: executionId },
      maxResults: 100,
      nextToken,
    }));
    details.push(...out.actionExecutionDetails ?? []);
    nextToken = out.nextToken;
    if (!nextToken) break;
  }
  return details;
}

async function getExecution(config: Config, executionId: string): Promise<PipelineExecution> {
  const out = await codePipeline.send(new GetPipelineExecutionCommand({ pipelineName: config.pipelineName, pipelineExecutionId: executionId }));
  return out.pipelineExecution ?? {};
}

function str(value: unknown): string | undefined {
  return typeof value === 'string' && value !== '' ? value : undefined;
}

/** The commit message inside a `revisionSummary`, which CodeConnections writes as JSON (`{"CommitMessage": ...}`). */
export function summaryMessage(summary: string | undefined): string | undefined {
  if (!summary) return undefined;
  if (summary.trimStart().startsWith('{')) {
    try {
      const parsed: unknown = JSON.parse(summary);
      return isObject(parsed) ? str(parsed.CommitMessage) : undefined;
    } catch {
      return summary;
    }
  }
  return summary;
}

/** The latest run of the Source stage's action that succeeded in this execution. */
function sourceAction(config: Config, actions: ActionExecutionDetail[]): ActionExecutionDetail | undefined {
  return latest(actions.filter((a) => a.stageName === config.sourceStage && a.status === 'Succeeded'));
}

function latest(actions: ActionExecutionDetail[]): ActionExecutionDetail | undefined {
  return [...actions].sort((a, b) => time(b.lastUpdateTime) - time(a.lastUpdateTime))[0];
}

function time(date: Date | undefined): number {
  return date ? date.getTime() : 0;
}

/** What the execution delivers, from the source action, the artifact revision and the event's trigger. */
export function changeFacts(config: Config, event: PipelineEvent, execution: PipelineExecution, actions: ActionExecutionDetail[]): ChangeFacts {
  const variables = sourceAction(config, actions)?.output?.outputVariables ?? {};
  const revision = execution.artifactRevisions?.[0];
  const trigger = event.detail['execution-trigger'] ?? {};
  const commitId = str(variables.CommitId) ?? str(trigger['commit-id']);
  return {
    pipeline: config.pipelineName,
    executionId: event.detail['execution-id'],
    executionUrl: executionUrl(config, event.detail['execution-id']),
    commitId,
    commitMessage: str(variables.CommitMessage) ?? str(trigger['commit-message']) ?? (commitId ? summaryMessage(revision?.revisionSummary) : undefined),
    commitUrl: str(revision?.revisionUrl),
    author: str(trigger['author-display-name']),
    branch: str(variables.BranchName) ?? str(trigger['branch-name']),
    repository: str(variables.FullRepositoryName) ?? str(variables.RepositoryName) ?? str(trigger['full-repository-name']),
    revisionId: commitId ? undefined : str(revision?.revisionId) ?? str(variables.VersionId),
    triggerType: str(execution.trigger?.triggerType) ?? str(trigger['trigger-type']),
    triggerDetail: str(execution.trigger?.triggerDetail) ?? str(trigger['trigger-detail']),
  };
}

/** When the change was made, and what that time is; undefined when nothing tells. */
export function changeTime(config: Config, execution: PipelineExecution, actions: ActionExecutionDetail[], event: PipelineEvent):
{ at: number; from: string } | undefined {
  const source = sourceAction(config, actions);
  const authored = Date.parse(source?.output?.outputVariables?.AuthorDate ?? '');
  if (!Number.isNaN(authored)) return { at: authored, from: 'the commit' };
  const created = execution.artifactRevisions?.[0]?.created;
  if (created) return { at: created.getTime(), from: 'the revision\'s upload' };
  const triggerTime = Date.parse(str(event.detail['execution-trigger']?.['commit-time']) ?? '');
  if (!Number.isNaN(triggerTime)) return { at: triggerTime, from: 'the commit' };
  if (source?.startTime) return { at: source.startTime.getTime(), from: 'the start of the execution' };
  return undefined;
}

/** The action whose failure failed the execution: the latest failed one. */
export function failedAction(actions: ActionExecutionDetail[]): FailedActionFacts | undefined {
  const failed = latest(actions.filter((a) => a.status === 'Failed'));
  if (!failed) return undefined;
  const result = failed.output?.executionResult;
  return {
    stage: failed.stageName ?? 'unknown stage',
    action: failed.actionName ?? 'unknown action',
    reason: str(result?.errorDetails?.message) ?? str(result?.externalExecutionSummary),
    url: str(result?.externalExecutionUrl),
    provider: str(failed.input?.actionTypeId?.provider),
  };
}

/** This pipeline's most recent executions, newest first. */
async function history(config: Config): Promise<PipelineExecutionSummary[]> {
  const summaries: PipelineExecutionSummary[] = [];
  let nextToken: string | undefined;
  while (summaries.length < HISTORY_LIMIT) {
    const out = await codePipeline.send(new ListPipelineExecutionsCommand({ pipelineName: config.pipelineName, maxResults: 50, nextToken }));
    summaries.push(...out.pipelineExecutionSummaries ?? []);
    nextToken = out.nextToken;
    if (!nextToken) break;
  }
  return summaries.sort((a, b) => time(b.startTime) - time(a.startTime));
}

/**
 * The start of the incident that the execution `executionId` ends: the end of the earliest execution that failed in
 * the Release stage since the last execution that succeeded before it. Undefined when production was healthy.
 */
export async function incidentStart(config: Config, executionId: string, summaries: PipelineExecutionSummary[]): Promise<number | undefined> {
  const index = summaries.findIndex((s) => s.pipelineExecutionId === executionId);
  if (index < 0) return undefined;
  let earliest: number | undefined;
  let scanned = 0;
  for (const earlier of summaries.slice(index + 1)) {
    if (earlier.status === 'Succeeded') break;
    if (earlier.status !== 'Failed' || earlier.executionType === 'ROLLBACK' || !earlier.pipelineExecutionId) continue;
    if (++scanned > INCIDENT_SCAN_LIMIT) break;
    const actions = await listActions(config, earlier.pipelineExecutionId);
    if (failedAction(actions)?.stage === config.releaseStage && earlier.lastUpdateTime) {
      earliest = earlier.lastUpdateTime.getTime();
    }
  }
  return earliest;
}

// ---------------------------------------------------------------------------------------------------------------
// Publishing, once
// ---------------------------------------------------------------------------------------------------------------

function isConditionalCheckFailed(err: unknown): boolean {
  return (err as { name?: unknown } | undefined)?.name === 'ConditionalCheckFailedException';
}

/**
 * How long a claim in progress holds: longer than the function's timeout (1 minute, monitoring/delivery-metrics.ts),
 * shorter than Lambda's first retry of a failed invocation (about a minute after it failed), so a retry of an
 * invocation that crashed or timed out takes the fact over instead of finding it claimed forever.
 */
export const CLAIM_LEASE_MS = 90_000;

/**
 * Runs `work` unless the fact `key` was published, or is being published, by another delivery: the claim is a
 * conditional `PutItem` of a `pending` item, which a later delivery may take over once its lease ran out (the
 * invocation that claimed it crashed or timed out); when `work` succeeds the claim becomes `done` for good; when it
 * fails the claim is withdrawn (best effort) and the error rethrown, so that a retry does the work.
 */
export async function once(config: Config, outcome: Outcome, key: string, now: number, work: () => Promise<void>): Promise<boolean> {
  try {
    await dynamoDb.send(new PutItemCommand({
      TableName: config.tableName,
      Item: {
        id: { S: key },
        state: { S: 'pending' },
        claimedAt: { N: String(now) },
        expiresAt: { N: String(Math.floor(now / 1000) + config.factTtlDays * 86_400) },
      },
      ConditionExpression: 'attribute_not_exists(id) OR (#state = :pending AND claimedAt < :expired)',
      ExpressionAttributeNames: { '#state': 'state' },
      ExpressionAttributeValues: { ':pending': { S: 'pending' }, ':expired': { N: String(now - CLAIM_LEASE_MS) } },
    }));
  } catch (err) {
    if (isConditionalCheckFailed(err)) {
      outcome.duplicates.push(key);
      log('INFO', 'already published', { fact: key });
      return false;
    }
    throw err;
  }
  try {
    await work();
  } catch (err) {
    try {
      await dynamoDb.send(new DeleteItemCommand({ TableName: config.tableName, Key: { id: { S: key } } }));
    } catch (deleteErr) {
      logError('could not withdraw the claim: a retry takes it over once its lease ran out', deleteErr, { fact: key });
    }
    throw err;
  }
  try {
    await dynamoDb.send(new UpdateItemCommand({
      TableName: config.tableName,
      Key: { id: { S: key } },
      UpdateExpression: 'SET #state = :done',
      ExpressionAttributeNames: { '#state': 'state' },
      ExpressionAttributeValues: { ':done': { S: 'done' } },
    }));
  } catch (err) {
    // Published already; a delivery after the lease could publish it once more (counted twice), never lose it.
    logError('could not mark the claim done', err, { fact: key });
  }
  outcome.published.push(key);
  return true;
}

function datum(config: Config, name: string, value: number, unit: StandardUnit, at: number): MetricDatum {
  return {
    MetricName: name,
    Dimensions: [{ Name: 'Pipeline', Value: config.pipelineName }],
    Timestamp: new Date(at),
    Value: value,
    Unit: unit,
  };
}

async function putMetric(config: Config, name: string, value: number, unit: StandardUnit, at: number): Promise<void> {
  await cloudWatch.send(new PutMetricDataCommand({ Namespace: config.namespace, MetricData: [datum(config, name, value, unit, at)] }));
  log('INFO', 'metric', { metric: name, value, unit, at: new Date(at).toISOString(), pipeline: config.pipelineName });
}

async function notify(config: Config, notification: Notification, id: string): Promise<void> {
  if (!config.topicArn) return;
  await sns.send(new PublishCommand({
    TopicArn: config.topicArn,
    Subject: notification.subject,
    MessageStructure: 'json',
    Message: snsMessage(notification, id),
  }));
}

// ---------------------------------------------------------------------------------------------------------------
// Events
// ---------------------------------------------------------------------------------------------------------------

async function onSourceSucceeded(config: Config, event: PipelineEvent, outcome: Outcome, now: number): Promise<void> {
  const id = event.detail['execution-id'];
  const execution = await getExecution(config, id);
  if (execution.executionType === 'ROLLBACK') return;
  const actions = await listActions(config, id);
  const change = changeFacts(config, event, execution, actions);
  await once(config, outcome, `${id}#notify-started`, now, () => notify(config, startedMessage(change), `${id}#notify-started`));
}

async function onReleaseStarted(config: Config, event: PipelineEvent, outcome: Outcome, now: number): Promise<void> {
  const id = event.detail['execution-id'];
  const execution = await getExecution(config, id);
  if (execution.executionType === 'ROLLBACK') return;
  const at = Date.parse(event.time);
  await once(config, outcome, `${id}#release-started`, now, () => putMetric(config, METRICS.releasesStarted, 1, 'Count', at));
  const actions = await listActions(config, id);
  await once(config, outcome, `${id}#notify-releasing`, now, () => notify(config, releasingMessage(changeFacts(config, event, execution, actions)), `${id}#notify-releasing`));
}

async function onFailed(config: Config, event: PipelineEvent, outcome: Outcome, now: number): Promise<void> {
  const id = event.detail['execution-id'];
  const at = Date.parse(event.time);
  const execution = await getExecution(config, id);
  const actions = await listActions(config, id);
  const change = changeFacts(config, event, execution, actions);
  const failed = failedAction(actions);
  if (execution.executionType === 'ROLLBACK' || failed?.stage !== config.releaseStage) {
    // A failed rollback leaves the incident open: the next success ends it.
    await once(config, outcome, `${id}#notify-failed`, now, () => notify(config, failedMessage(change, failed), `${id}#notify-failed`));
    return;
  }
  await once(config, outcome, `${id}#failed`, now, () => putMetric(config, METRICS.releasesFailed, 1, 'Count', at));
  await publishConsecutiveFailures(config, outcome, id, at, now);
  if (config.engineRollsBack && failed.provider !== 'Manual') {
    // The engine put production back when the action failed: the exposure is at most the failed action's run. A
    // rejected or timed-out approval gated the traffic shift: production never ran the new version, nothing to restore.
    const action = latest(actions.filter((a) => a.status === 'Failed'));
    if (action?.startTime && action.lastUpdateTime) {
      const seconds = Math.max(0, (action.lastUpdateTime.getTime() - action.startTime.getTime()) / 1000);
      await once(config, outcome, `${id}#restored`, now, () => putMetric(config, METRICS.timeToRestore, seconds, 'Seconds', at));
    }
  }
  await once(config, outcome, `${id}#notify-rolled-back`, now, () => notify(config, rolledBackMessage(change, failed, config.engineRollsBack), `${id}#notify-rolled-back`));
  releaseLog('rolled back', change, { reason: failed?.reason?.slice(0, 120) });
}

async function onSucceeded(config: Config, event: PipelineEvent, outcome: Outcome, now: number): Promise<void> {
  const id = event.detail['execution-id'];
  const at = Date.parse(event.time);
  const execution = await getExecution(config, id);
  if (execution.executionType === 'ROLLBACK') {
    await onRollbackSucceeded(config, event, execution, outcome, now);
    return;
  }
  const actions = await listActions(config, id);
  const change = changeFacts(config, event, execution, actions);
  await once(config, outcome, `${id}#deployed`, now, () => putMetric(config, METRICS.deployments, 1, 'Count', at));

  const summaries = await publishConsecutiveFailures(config, outcome, id, at, now);

  const changed = changeTime(config, execution, actions, event);
  const revision = change.commitId ?? change.revisionId ?? id;
  let leadTimeMs: number | undefined;
  let leadTimeTo = 'production';
  let leadTimePending = false;
  if (changed && config.engineReportsTraffic) {
    // Lead time ends when all production traffic moved: a fact of the engine's 100 % event, which may come later.
    const facts = await recordLeadTimeFacts(config, id, { changeAt: changed.at, changeFrom: changed.from, revision, succeededAt: at }, now);
    const lead = await publishLeadTimeOnceKnown(config, outcome, facts, now);
    leadTimeMs = lead?.ms;
    leadTimeTo = 'all production traffic';
    leadTimePending = lead === undefined;
  } else if (changed) {
    const ms = leadTimeMs = Math.max(0, at - changed.at);
    await once(config, outcome, `revision#${revision}#lead-time`, now, () => putMetric(config, METRICS.leadTime, ms / 1000, 'Seconds', at));
  }
  if (!config.engineRollsBack) {
    const started = await incidentStart(config, id, summaries);
    if (started !== undefined) {
      await once(config, outcome, `${id}#restored`, now, () => putMetric(config, METRICS.timeToRestore, Math.max(0, at - started) / 1000, 'Seconds', at));
    }
  }
  await once(config, outcome, `${id}#notify-released`, now,
    () => notify(config, releasedMessage(change, leadTimeMs, changed?.from, leadTimeTo, leadTimePending), `${id}#notify-released`));
  releaseLog('released', change, { leadTimeMinutes: leadTimeMs === undefined ? undefined : Math.round(leadTimeMs / 60_000) });
}

/** One line per release outcome, for the dashboard's "recent releases" table (a Logs Insights query). */
function releaseLog(what: string, change: ChangeFacts, fields: Record<string, unknown>): void {
  log('INFO', 'release', {
    release: what,
    executionId: change.executionId,
    commit: change.commitId?.slice(0, 7) ?? change.revisionId,
    summary: change.commitMessage?.split('\n')[0]?.slice(0, 80),
    ...fields,
  });
}

async function onRollbackSucceeded(config: Config, event: PipelineEvent, execution: PipelineExecution, outcome: Outcome, now: number): Promise<void> {
  const id = event.detail['execution-id'];
  const at = Date.parse(event.time);
  const target = execution.rollbackMetadata?.rollbackTargetPipelineExecutionId;
  const summaries = await history(config);
  const self = summaries.find((s) => s.pipelineExecutionId === id);
  let restoreFrom = await incidentStart(config, id, summaries);
  if (execution.trigger?.triggerType === 'ManualRollback') {
    // Someone rolled back a release that had succeeded: that release failed. It is the latest standard success
    // that started before the rollback (other than the target).
    const rollbackStart = time(self?.startTime) || at;
    const undone = summaries.find((s) => s.status === 'Succeeded' && s.executionType !== 'ROLLBACK'
      && s.pipelineExecutionId !== target && time(s.startTime) < rollbackStart);
    if (undone?.pipelineExecutionId) {
      await once(config, outcome, `${undone.pipelineExecutionId}#failed`, now, () => putMetric(config, METRICS.releasesFailed, 1, 'Count', at));
    }
    restoreFrom = restoreFrom ?? rollbackStart;
  }
  const timeToRestoreMs = restoreFrom !== undefined ? Math.max(0, at - restoreFrom) : undefined;
  if (timeToRestoreMs !== undefined) {
    await once(config, outcome, `${id}#restored`, now, () => putMetric(config, METRICS.timeToRestore, timeToRestoreMs / 1000, 'Seconds', at));
  }
  const change = changeFacts(config, event, execution, []);
  await once(config, outcome, `${id}#notify-rolled-back`, now, () => notify(config, rollbackDoneMessage(change, target, timeToRestoreMs), `${id}#notify-rolled-back`));
  releaseLog('rollback done', change, { target, timeToRestoreMinutes: timeToRestoreMs === undefined ? undefined : Math.round(timeToRestoreMs / 60_000) });
}

/** Which handler an event goes to; undefined for events the handler ignores. */
export function classify(config: Config, event: PipelineEvent): string | undefined {
  const { state, stage } = event.detail;
  if (event['detail-type'] === 'CodePipeline Pipeline Execution State Change') {
    if (state === 'SUCCEEDED') return 'execution-succeeded';
    if (state === 'FAILED') return 'execution-failed';
  } else if (event['detail-type'] === 'CodePipeline Stage Execution State Change') {
    if (stage === config.sourceStage && state === 'SUCCEEDED') return 'source-succeeded';
    if (stage === config.releaseStage && state === 'STARTED') return 'release-started';
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------------------------
// Consecutive failed releases
// ---------------------------------------------------------------------------------------------------------------

/**
 * How many releases failed in a row, counting the execution `executionId` and the ones before it (newest first):
 * standard executions that failed in the Release stage count, a success ends the run, and executions that never
 * reached the Release stage (a failed build), rollbacks, and stopped or superseded executions are skipped. At most
 * `INCIDENT_SCAN_LIMIT` failed executions are read. 0 when `executionId` succeeded.
 */
export async function consecutiveFailures(config: Config, executionId: string, summaries: PipelineExecutionSummary[]): Promise<number> {
  const index = summaries.findIndex((s) => s.pipelineExecutionId === executionId);
  if (index < 0) return 0;
  let count = 0;
  let scanned = 0;
  for (const summary of summaries.slice(index)) {
    if (summary.executionType === 'ROLLBACK' || !summary.pipelineExecutionId) continue;
    if (summary.status === 'Succeeded') break;
    if (summary.status !== 'Failed') continue;
    if (++scanned > INCIDENT_SCAN_LIMIT) break;
    const actions = await listActions(config, summary.pipelineExecutionId);
    if (failedAction(actions)?.stage === config.releaseStage) count++;
  }
  return count;
}

/** Publishes `ConsecutiveFailedReleases` at a release outcome (once per execution). */
async function publishConsecutiveFailures(config: Config, outcome: Outcome, executionId: string, at: number, now: number,
  summaries?: PipelineExecutionSummary[]): Promise<PipelineExecutionSummary[]> {
  const read = summaries ?? await history(config);
  const count = await consecutiveFailures(config, executionId, read);
  await once(config, outcome, `${executionId}#consecutive-failures`, now,
    () => putMetric(config, METRICS.consecutiveFailedReleases, count, 'Count', at));
  return read;
}

// ---------------------------------------------------------------------------------------------------------------
// Traffic steps and the lead time to full traffic
// ---------------------------------------------------------------------------------------------------------------

/** A release engine's traffic step event (src/handlers/shared/release-progress.ts). */
export interface ProgressEvent {
  readonly 'id': string;
  readonly 'source': string;
  readonly 'detail-type': string;
  readonly 'time': string;
  readonly 'detail': {
    readonly pipeline: string;
    readonly executionId: string;
    readonly engine: string;
    readonly step: number;
    readonly steps: number;
    readonly percent: number;
    readonly shiftedAt: string;
  };
}

export function isProgressEvent(event: unknown): event is ProgressEvent {
  if (!isObject(event) || event.source !== PROGRESS_SOURCE || event['detail-type'] !== PROGRESS_DETAIL_TYPE || typeof event.id !== 'string') return false;
  const d = event.detail;
  if (!isObject(d) || typeof d.pipeline !== 'string' || typeof d.executionId !== 'string' || d.executionId === '' || typeof d.engine !== 'string') return false;
  const whole = (v: unknown, min: number, max: number) => Number.isInteger(v) && (v as number) >= min && (v as number) <= max;
  return whole(d.steps, 1, 100) && whole(d.step, 1, d.steps as number) && typeof d.percent === 'number' && d.percent >= 0 && d.percent <= 100
    && typeof d.shiftedAt === 'string' && !Number.isNaN(Date.parse(d.shiftedAt));
}

/** What the handler knows of one execution's lead time: the success side and the full-traffic side. */
export interface LeadTimeFacts {
  readonly executionId: string;
  readonly changeAt?: number;
  readonly changeFrom?: string;
  readonly revision?: string;
  readonly succeededAt?: number;
  readonly fullTrafficAt?: number;
}

/**
 * Adds what this event knows to the execution's lead-time item (`<execution>#lead-time-facts`, one `UpdateItem`
 * that keeps the first value of each attribute) and returns everything known so far. Whichever of the success and
 * the 100 % event comes last finds both halves.
 */
export async function recordLeadTimeFacts(config: Config, executionId: string,
  facts: Omit<LeadTimeFacts, 'executionId'>, now: number): Promise<LeadTimeFacts> {
  const names: Record<string, string> = {};
  const values: Record<string, { N: string } | { S: string }> = { ':expires': { N: String(Math.floor(now / 1000) + config.factTtlDays * 86_400) } };
  const sets = ['expiresAt = if_not_exists(expiresAt, :expires)'];
  for (const [key, value] of Object.entries(facts)) {
    if (value === undefined) continue;
    names[`#${key}`] = key;
    values[`:${key}`] = typeof value === 'number' ? { N: String(value) } : { S: value };
    sets.push(`#${key} = if_not_exists(#${key}, :${key})`);
  }
  const out = await dynamoDb.send(new UpdateItemCommand({
    TableName: config.tableName,
    Key: { id: { S: `${executionId}#lead-time-facts` } },
    UpdateExpression: `SET ${sets.join(', ')}`,
    ExpressionAttributeNames: names,
    ExpressionAttributeValues: values,
    ReturnValues: 'ALL_NEW',
  }));
  const item = out.Attributes ?? {};
  const num = (key: string) => (item[key]?.N !== undefined ? Number(item[key].N) : undefined);
  return {
    executionId,
    changeAt: num('changeAt'),
    changeFrom: item.changeFrom?.S,
    revision: item.revision?.S,
    succeededAt: num('succeededAt'),
    fullTrafficAt: num('fullTrafficAt'),
  };
}

/**
 * Publishes `LeadTime` (from the change to all production traffic, stamped at full traffic) once both halves are
 * known; once per revision, like every lead time. Returns the lead time, or undefined while a half is missing.
 */
async function publishLeadTimeOnceKnown(config: Config, outcome: Outcome, facts: LeadTimeFacts, now: number):
Promise<{ ms: number; from?: string } | undefined> {
  if (facts.changeAt === undefined || facts.succeededAt === undefined || facts.fullTrafficAt === undefined) return undefined;
  const fullTrafficAt = facts.fullTrafficAt;
  const ms = Math.max(0, fullTrafficAt - facts.changeAt);
  await once(config, outcome, `revision#${facts.revision ?? facts.executionId}#lead-time`, now,
    () => putMetric(config, METRICS.leadTime, ms / 1000, 'Seconds', fullTrafficAt));
  return { ms, from: facts.changeFrom };
}

/**
 * A traffic step: one message per step (claimed `<execution>#traffic#<step>`), and at 100 % the full-traffic half of
 * the lead time. The change is read from the API like every other message.
 */
async function onProgressEvent(config: Config, event: ProgressEvent, now: number): Promise<Outcome> {
  const d = event.detail;
  if (d.pipeline !== config.pipelineName) {
    log('INFO', 'traffic step of another pipeline: ignored', { pipeline: d.pipeline });
    return { kind: 'ignored', published: [], duplicates: [] };
  }
  const outcome: Outcome = { kind: 'traffic-shifted', published: [], duplicates: [] };
  const id = d.executionId;
  try {
    const asPipelineEvent: PipelineEvent = {
      'id': event.id,
      'detail-type': event['detail-type'],
      'source': event.source,
      'time': d.shiftedAt,
      'detail': { 'pipeline': d.pipeline, 'execution-id': id, 'state': 'TRAFFIC_SHIFTED' },
    };
    const execution = await getExecution(config, id);
    const actions = await listActions(config, id);
    const change = changeFacts(config, asPipelineEvent, execution, actions);
    let lead: { ms: number; from?: string } | undefined;
    if (d.percent >= 100 && config.engineReportsTraffic) {
      const facts = await recordLeadTimeFacts(config, id, { fullTrafficAt: Date.parse(d.shiftedAt) }, now);
      lead = await publishLeadTimeOnceKnown(config, outcome, facts, now);
    }
    const key = `${id}#traffic#${d.step}`;
    await once(config, outcome, key, now,
      () => notify(config, trafficMessage(change, { step: d.step, steps: d.steps, percent: d.percent, engine: d.engine },
        lead?.ms, lead?.from), key));
  } catch (err) {
    logError(`could not publish: ${errorMessage(err)}; Lambda retries the invocation`, err, { kind: outcome.kind, executionId: id, published: outcome.published });
    throw err;
  }
  log('INFO', 'handled', {
    kind: outcome.kind,
    eventId: event.id,
    executionId: id,
    step: d.step,
    steps: d.steps,
    percent: d.percent,
    published: outcome.published,
    duplicates: outcome.duplicates,
  });
  return outcome;
}

/** A CloudWatch alarm state change (EventBridge `aws.cloudwatch`), as the rule on the production alarms sends it. */
export interface AlarmEvent {
  readonly 'id': string;
  readonly 'source': 'aws.cloudwatch';
  readonly 'detail-type': 'CloudWatch Alarm State Change';
  readonly 'detail': {
    readonly alarmName: string;
    readonly state: { readonly value: string; readonly timestamp: string };
    readonly previousState: { readonly value: string; readonly timestamp: string };
  };
}

export function isAlarmEvent(event: unknown): event is AlarmEvent {
  if (!isObject(event) || event.source !== 'aws.cloudwatch' || event['detail-type'] !== 'CloudWatch Alarm State Change') return false;
  const detail = event.detail;
  const state = (s: unknown) => isObject(s) && typeof s.value === 'string' && typeof s.timestamp === 'string' && !Number.isNaN(Date.parse(s.timestamp));
  return isObject(detail) && typeof detail.alarmName === 'string' && state(detail.state) && state(detail.previousState);
}

/**
 * A production alarm back to OK restores service: time to restore is the time it spent in ALARM, both ends carried
 * by the OK event itself (`previousState.timestamp` to `state.timestamp`), so arrival order does not matter; counted
 * once per alarm and OK time.
 */
async function onAlarmEvent(config: Config, event: AlarmEvent, now: number): Promise<Outcome> {
  const outcome: Outcome = { kind: 'alarm-restored', published: [], duplicates: [] };
  const { alarmName, state, previousState } = event.detail;
  const restoredAt = Date.parse(state.timestamp);
  const seconds = Math.round((restoredAt - Date.parse(previousState.timestamp)) / 1000);
  if (state.value !== 'OK' || previousState.value !== 'ALARM' || seconds < 0) {
    log('INFO', 'alarm change not used', { alarmName, state: state.value, previousState: previousState.value });
    return { kind: 'ignored', published: [], duplicates: [] };
  }
  await once(config, outcome, `alarm#${alarmName}#${state.timestamp}#restored`, now,
    () => putMetric(config, METRICS.timeToRestore, seconds, 'Seconds', restoredAt));
  log('INFO', 'alarm restored', { alarmName, seconds, published: outcome.published, duplicates: outcome.duplicates });
  return outcome;
}

/**
 * Publishes the metrics and the notification of one event. Rethrows AWS errors (after withdrawing the claim), so that
 * Lambda retries the asynchronous invocation; ignores, with a log line, events it does not use.
 */
export async function handleEvent(event: unknown, config: Config, now: number = Date.now()): Promise<Outcome> {
  if (isAlarmEvent(event)) return onAlarmEvent(config, event, now);
  if (isProgressEvent(event)) return onProgressEvent(config, event, now);
  if (!isPipelineEvent(event)) {
    log('WARN', 'not a CodePipeline event with a pipeline, an execution id and a state: ignored', {});
    return { kind: 'ignored', published: [], duplicates: [] };
  }
  const kind = classify(config, event);
  if (event.detail.pipeline !== config.pipelineName || kind === undefined) {
    log('INFO', 'event not used', { pipeline: event.detail.pipeline, detailType: event['detail-type'], state: event.detail.state, stage: event.detail.stage });
    return { kind: 'ignored', published: [], duplicates: [] };
  }
  const outcome: Outcome = { kind, published: [], duplicates: [] };
  const fields = { kind, eventId: event.id, executionId: event.detail['execution-id'] };
  try {
    switch (kind) {
      case 'source-succeeded': await onSourceSucceeded(config, event, outcome, now); break;
      case 'release-started': await onReleaseStarted(config, event, outcome, now); break;
      case 'execution-failed': await onFailed(config, event, outcome, now); break;
      default: await onSucceeded(config, event, outcome, now); break;
    }
  } catch (err) {
    logError(`could not publish: ${errorMessage(err)}; Lambda retries the invocation`, err, { ...fields, published: outcome.published });
    throw err;
  }
  log('INFO', kind === 'execution-succeeded' ? 'released' : 'handled', { ...fields, published: outcome.published, duplicates: outcome.duplicates });
  return outcome;
}

export async function handler(event: unknown): Promise<Outcome> {
  return handleEvent(event, readConfig());
}
