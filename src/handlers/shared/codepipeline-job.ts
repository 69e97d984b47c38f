/** The CodePipeline job event of the "Lambda invoke" action, and what the job handlers take from outside. */
import { PutJobFailureResultCommand, PutJobSuccessResultCommand } from '@aws-sdk/client-codepipeline';
import type { CodePipelineClient } from '@aws-sdk/client-codepipeline';
import { clip, describeError, describeJson, errorMessage, isObject, log, logError } from './common';
import type { Parsed } from './common';

/** The part of CodePipeline's job event the handlers read. */
export interface CodePipelineJobEvent {
  readonly 'CodePipeline.job': {
    readonly id: string;
    readonly data?: {
      readonly actionConfiguration?: { readonly configuration?: { readonly UserParameters?: unknown } };
      readonly continuationToken?: unknown;
    };
  };
}

/** True for a CodePipeline job event (it has a job id). */
export function isCodePipelineEvent(event: unknown): event is CodePipelineJobEvent {
  return isObject(event) && isObject(event['CodePipeline.job']) && typeof event['CodePipeline.job'].id === 'string';
}

/** What a job handler needs from the outside world; each defaults to the real thing. */
export interface JobDeps {
  /** @default `setTimeout` */
  readonly sleep?: (ms: number) => Promise<void>;
  /** @default `Date.now` */
  readonly now?: () => number;
  /** Time, on the `now` clock, when the Lambda function times out. @default none: the pause is the handler's full poll delay */
  readonly deadline?: number;
  /** @default `process.env` */
  readonly env?: Record<string, string | undefined>;
}

/**
 * Sends a job's result to CodePipeline. Any error is logged and rethrown, except, with `duplicateIsDone`,
 * `InvalidJobStateException`: the job already has a result (a duplicate invocation whose twin reported first).
 */
export async function sendJobResult(
  client: CodePipelineClient,
  jobId: string,
  command: PutJobSuccessResultCommand | PutJobFailureResultCommand,
  fields: Record<string, unknown>,
  options: { readonly duplicateIsDone?: boolean } = {},
): Promise<void> {
  try {
    // Two overloads of `send`; the union of commands needs one branch each.
    if (command instanceof PutJobSuccessResultCommand) await client.send(command);
    else await client.send(command);
  } catch (err) {
    if (options.duplicateIsDone === true && (err as { name?: unknown } | undefined)?.name === 'InvalidJobStateException') {
      log('WARN', 'the job already has a result (duplicate invocation): nothing more to report', { ...fields, jobId, error: describeError(err) });
      return;
    }
    logError('could not report the job result to CodePipeline', err, { ...fields, jobId });
    throw err;
  }
}

/**
 * The first steps of parsing a CodePipeline action's `UserParameters`: present, a string, JSON, an object; `expected`
 * shows the shape in the messages. The caller checks the keys. Never throws.
 */
export function parseUserParametersObject(userParameters: unknown, expected: string): Parsed<Record<string, unknown>> {
  if (userParameters === undefined || userParameters === null || userParameters === '') {
    return { ok: false, error: `UserParameters is missing: expected ${expected}` };
  }
  if (typeof userParameters !== 'string') {
    return { ok: false, error: `UserParameters must be a string of JSON, got ${describeJson(userParameters)}` };
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(userParameters);
  } catch (err) {
    return { ok: false, error: `UserParameters is not valid JSON (${errorMessage(err)}): ${JSON.stringify(clip(userParameters, 200))}` };
  }
  if (!isObject(parsed)) {
    return { ok: false, error: `UserParameters must be a JSON object like ${expected}, got ${describeJson(parsed)}` };
  }
  return { ok: true, value: parsed };
}
