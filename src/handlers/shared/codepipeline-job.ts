/** The CodePipeline job event of the "Lambda invoke" action, and what the job handlers take from outside. */
import { isObject } from './common';

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
