/**
 * Readable release notifications: one short text per lifecycle event of a release, for the pipeline's notification
 * topic (email, and any other subscriber). Pure functions, no AWS clients: the delivery metrics handler gathers the
 * facts (from the event, `GetPipelineExecution` and `ListActionExecutions`) and publishes what these return.
 *
 * Every message starts with a word in capitals that says what happened (`STARTED`, `RELEASING`, `FAILED`,
 * `ROLLED BACK`, `RELEASED`), names the pipeline and the change, and ends with a console link. No JSON, no ids that a
 * reader cannot follow except the execution id in the link.
 */

/** What is known about the change an execution delivers. Each field is optional: an S3 source has no commit. */
export interface ChangeFacts {
  readonly pipeline: string;
  readonly executionId: string;
  /** The execution's page in the CodePipeline console. */
  readonly executionUrl: string;
  readonly commitId?: string;
  readonly commitMessage?: string;
  /** A link to the commit (from the artifact revision's `revisionUrl`). */
  readonly commitUrl?: string;
  readonly author?: string;
  readonly branch?: string;
  readonly repository?: string;
  /** An S3 object version, or any other revision id that is not a commit. */
  readonly revisionId?: string;
  /** `Webhook`, `StartPipelineExecution`, `ManualRollback`, ... */
  readonly triggerType?: string;
  /** The user or role ARN of a manual start, the connection of a webhook, ... */
  readonly triggerDetail?: string;
}

/** The action that failed, as `ListActionExecutions` reports it. */
export interface FailedActionFacts {
  readonly stage: string;
  readonly action: string;
  /** `errorDetails.message`, or the external execution's summary. */
  readonly reason?: string;
  /** The external execution's page: the CodeBuild build with its test reports, the deployment, ... */
  readonly url?: string;
  /** `CodeBuild`, `Manual`, `Lambda`, `ECS`, `CodeDeployToECS`, ... */
  readonly provider?: string;
}

/** The subject and the body of one notification. */
export interface Notification {
  /** At most 100 characters, one line (SNS's limit for email subjects). */
  readonly subject: string;
  readonly message: string;
}

/**
 * The SNS message of a notification, one per protocol (`MessageStructure: 'json'`): the readable text for email and
 * every other subscriber, and for HTTPS subscribers, which is how AWS Chatbot (Amazon Q Developer in chat
 * applications) subscribes a Slack or Teams channel, its custom notification format (version 1.0, source custom),
 * which Chatbot renders instead of ignoring a plain-text message.
 */
export function snsMessage(notification: Notification, id: string): string {
  const chat = {
    version: '1.0',
    source: 'custom',
    id,
    content: { textType: 'client-markdown', title: notification.subject, description: notification.message },
  };
  return JSON.stringify({ default: notification.message, email: notification.message, https: JSON.stringify(chat) });
}

/** The longest commit message line and failure reason quoted, in characters. */
export const QUOTE_LIMIT = 300;

/** "2 h 5 min", "4 min 10 s", "12 s": a duration for people. */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return 'unknown';
  const seconds = Math.round(ms / 1000);
  if (seconds < 60) return `${seconds} s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return seconds % 60 === 0 ? `${minutes} min` : `${minutes} min ${seconds % 60} s`;
  const hours = Math.floor(minutes / 60);
  if (hours < 48) return minutes % 60 === 0 ? `${hours} h` : `${hours} h ${minutes % 60} min`;
  const days = Math.floor(hours / 24);
  return hours % 24 === 0 ? `${days} d` : `${days} d ${hours % 24} h`;
}

/** The first line of `text`, trimmed and cut to `max` characters. */
export function firstLine(text: string | undefined, max = QUOTE_LIMIT): string | undefined {
  if (text === undefined) return undefined;
  const line = text.split(/\r?\n/).map((l) => l.trim()).find((l) => l !== '');
  if (line === undefined) return undefined;
  return line.length <= max ? line : `${line.slice(0, max - 1)}…`;
}

/** "commit 1a2b3c4 "Fix the login" by Jane (main)", or "S3 object version abc", or "the latest revision". */
export function describeChange(change: ChangeFacts): string {
  const parts: string[] = [];
  if (change.commitId) {
    parts.push(`commit ${change.commitId.slice(0, 7)}`);
    const message = firstLine(change.commitMessage);
    if (message) parts.push(`"${message}"`);
    if (change.author) parts.push(`by ${change.author}`);
    const where = [change.repository, change.branch].filter((p): p is string => !!p).join(' ');
    if (where) parts.push(`(${where})`);
  } else if (change.revisionId) {
    parts.push(`revision ${change.revisionId}`);
  } else {
    parts.push('the latest revision of the source');
  }
  return parts.join(' ');
}

/** "a push", "a manual start by arn:...:assumed-role/Admin/jane", ... */
export function describeTrigger(change: ChangeFacts): string | undefined {
  switch (change.triggerType) {
    case undefined:
    case '':
      return undefined;
    case 'Webhook':
    case 'WebhookV2':
    case 'CloudWatchEvent':
    case 'PollForSourceChanges':
    case 'PutActionRevision':
      return 'a change in the source';
    case 'StartPipelineExecution':
      return change.triggerDetail ? `a manual start by ${principalName(change.triggerDetail)}` : 'a manual start';
    case 'CreatePipeline':
      return 'the creation of the pipeline';
    case 'ManualRollback':
      return change.triggerDetail ? `a manual rollback by ${principalName(change.triggerDetail)}` : 'a manual rollback';
    case 'AutomatedRollback':
      return 'an automated rollback';
    default:
      return change.triggerType;
  }
}

/** `arn:aws:sts::1:assumed-role/Admin/jane` -> `Admin/jane`; anything else unchanged. */
export function principalName(arn: string): string {
  const match = /^arn:[^:]+:(?:sts|iam)::\d*:(?:assumed-role|user|role)\/(.+)$/.exec(arn);
  return match ? match[1] : arn;
}

function subject(word: string, pipeline: string, rest: string): string {
  const text = `${word}: ${pipeline} ${rest}`.replace(/[\r\n]+/g, ' ');
  return text.length <= 100 ? text : `${text.slice(0, 99)}…`;
}

function lines(...parts: (string | undefined)[]): string {
  return parts.filter((p): p is string => p !== undefined && p !== '').join('\n');
}

/** The Source stage delivered the change: a new release starts. */
export function startedMessage(change: ChangeFacts): Notification {
  const trigger = describeTrigger(change);
  return {
    subject: subject('STARTED', change.pipeline, change.commitId ? `builds commit ${change.commitId.slice(0, 7)}` : 'builds a new revision'),
    message: lines(
      `STARTED: pipeline ${change.pipeline} builds ${describeChange(change)}${trigger ? `, after ${trigger}` : ''}.`,
      change.commitUrl ? `Change: ${change.commitUrl}` : undefined,
      `Follow the release: ${change.executionUrl}`,
    ),
  };
}

/** The Release stage started: the new version is deployed next to production, checked, then given traffic. */
export function releasingMessage(change: ChangeFacts): Notification {
  return {
    subject: subject('RELEASING', change.pipeline, 'shifts production to a new version'),
    message: lines(
      `RELEASING: pipeline ${change.pipeline} releases ${describeChange(change)}. The new version is deployed next to ` +
      'production and tested before it gets production traffic; an alarm, a failed smoke test, a rejection or a ' +
      'timed-out approval rolls it back.',
      `Follow the release: ${change.executionUrl}`,
    ),
  };
}

/** An action before the Release stage failed: nothing reached production. */
export function failedMessage(change: ChangeFacts, failed: FailedActionFacts | undefined): Notification {
  const where = failed ? `${failed.stage} / ${failed.action}` : 'an unknown action';
  const what = failed?.provider === 'CodeBuild' ? 'The build log and the test reports' : 'Details';
  return {
    subject: subject('FAILED', change.pipeline, failed ? `failed in ${where}` : 'failed'),
    message: lines(
      `FAILED: pipeline ${change.pipeline} stopped at ${where} while building ${describeChange(change)}. ` +
      'Nothing after the failed action ran; production is unchanged.',
      failed?.reason ? `Why: ${firstLine(failed.reason)}` : undefined,
      failed?.url ? `${what}: ${failed.url}` : undefined,
      `Execution: ${change.executionUrl}`,
    ),
  };
}

/**
 * The Release stage failed: the release was rolled back, by the release engine itself or by the stage rollback of
 * the pipeline.
 */
export function rolledBackMessage(change: ChangeFacts, failed: FailedActionFacts | undefined, engineRollsBack: boolean): Notification {
  const where = failed ? `${failed.stage} / ${failed.action}` : 'the Release stage';
  return {
    subject: subject('ROLLED BACK', change.pipeline, change.commitId ? `did not release commit ${change.commitId.slice(0, 7)}` : 'did not release'),
    message: lines(
      `ROLLED BACK: pipeline ${change.pipeline} did not release ${describeChange(change)}: ${where} failed.`,
      `Why: ${firstLine(failed?.reason) ?? 'the failed action gave no reason; see its details'}`,
      engineRollsBack
        ? 'The release engine has put production back on the previous version.'
        : 'The pipeline now rolls the Release stage back to the last successful release.',
      failed?.url ? `Details: ${failed.url}` : undefined,
      `Execution: ${change.executionUrl}`,
    ),
  };
}

/** The release reached production. */
export function releasedMessage(change: ChangeFacts, leadTimeMs: number | undefined, leadTimeFrom: string | undefined,
  leadTimeTo: string = 'production', leadTimePending: boolean = false): Notification {
  return {
    subject: subject('RELEASED', change.pipeline, change.commitId ? `released commit ${change.commitId.slice(0, 7)}` : 'released a new version'),
    message: lines(
      `RELEASED: pipeline ${change.pipeline} put ${describeChange(change)} into production.`,
      leadTimeMs !== undefined ? `Lead time: ${formatDuration(leadTimeMs)} from ${leadTimeFrom ?? 'the change'} to ${leadTimeTo}.` : undefined,
      leadTimeMs === undefined && leadTimePending
        ? 'Lead time: measured to the moment all production traffic moved; it is published once the release engine\'s traffic event is in.'
        : undefined,
      change.commitUrl ? `Change: ${change.commitUrl}` : undefined,
      `Execution: ${change.executionUrl}`,
    ),
  };
}

/** A rollback execution (CodePipeline stage rollback, automated or manual) succeeded. */
export function rollbackDoneMessage(change: ChangeFacts, targetExecutionId: string | undefined, timeToRestoreMs: number | undefined): Notification {
  const trigger = describeTrigger(change);
  return {
    subject: subject('ROLLED BACK', change.pipeline, 'runs the previous release again'),
    message: lines(
      `ROLLED BACK: pipeline ${change.pipeline} put the release of execution ${targetExecutionId ?? '(unknown)'} back into production` +
      `${trigger ? `, after ${trigger}` : ''}.`,
      timeToRestoreMs !== undefined ? `Time to restore: ${formatDuration(timeToRestoreMs)}.` : undefined,
      `Execution: ${change.executionUrl}`,
    ),
  };
}

/** What a release engine's traffic step event says (src/handlers/shared/release-progress.ts). */
export interface TrafficStepFacts {
  readonly step: number;
  readonly steps: number;
  /** Share of production traffic on the new version after the step. */
  readonly percent: number;
  /** `ec2-blue-green`, `lambda-alias`, ... */
  readonly engine: string;
}

/** A release engine moved production traffic: one message per step. */
export function trafficMessage(change: ChangeFacts, step: TrafficStepFacts, leadTimeMs?: number, leadTimeFrom?: string): Notification {
  const where = `${step.percent} % of production traffic on the new version (step ${step.step} of ${step.steps})`;
  const commit = change.commitId ? `commit ${change.commitId.slice(0, 7)}` : 'a new version';
  return {
    subject: subject('RELEASING', change.pipeline, `${commit}: ${step.percent} % of production (step ${step.step} of ${step.steps})`),
    message: lines(
      `RELEASING ${describeChange(change)}: ${where}.`,
      step.percent >= 100
        ? 'All production traffic is on the new version; until the release ends, an alarm still rolls it back.'
        : 'The rest of production traffic stays on the previous version; an alarm rolls the release back.',
      leadTimeMs !== undefined ? `Lead time: ${formatDuration(leadTimeMs)} from ${leadTimeFrom ?? 'the change'} to all production traffic.` : undefined,
      `Follow the release: ${change.executionUrl}`,
    ),
  };
}
