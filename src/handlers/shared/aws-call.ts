/**
 * The AWS call wrapper the release handlers share: a failed call becomes an `AwsCallError` naming the API (and,
 * optionally, what it acted on); with a deadline, the call is aborted when the deadline comes and is not started
 * when too little time is left (`LambdaDeadlineError`, retryable: see `retryable.ts`).
 */
import { describeError } from './common';

/** An AWS call that failed, with the API (`service:Action`) and, when given, what it acted on. */
export class AwsCallError extends Error {
  constructor(readonly api: string, readonly error: unknown, readonly subject?: string) {
    super(`${api} failed${subject === undefined ? '' : ` for ${subject}`}: ${describeError(error)}`);
    this.name = 'AwsCallError';
  }
}

/** A call not started, or abandoned, for lack of time before the Lambda deadline. */
export class LambdaDeadlineError extends Error {
  constructor(message: string = 'no time left before the Lambda deadline') {
    super(message);
    this.name = 'LambdaDeadlineError';
  }
}

/** How an AWS call is made. */
export interface AwsCallOptions {
  /** What the call acts on, named in the error. @default none */
  readonly subject?: string;
  /** Time, on the `now` clock, by which the call must be over; it is aborted then. @default none: no abort */
  readonly deadline?: number;
  /** The least time a call is started with. @default 500 ms */
  readonly minTimeMs?: number;
  /** @default `Date.now` */
  readonly now?: () => number;
}

/** The error inside an `AwsCallError`, or the error itself. */
export function awsErrorOf(err: unknown): unknown {
  return err instanceof AwsCallError ? err.error : err;
}

/**
 * Runs `send` with an abort signal that fires at the deadline. The timer also settles the race on its own, so a
 * call that ignores the signal cannot hold the handler past the deadline.
 */
export async function withDeadline<T>(
  send: (signal: AbortSignal) => Promise<T>,
  now: () => number,
  deadline: number | undefined,
  minTimeMs: number,
): Promise<T> {
  if (deadline === undefined) return send(new AbortController().signal);
  const remaining = deadline - now();
  if (remaining < minTimeMs) throw new LambdaDeadlineError('not started: no time left before the Lambda deadline');
  const controller = new AbortController();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => {
      reject(new LambdaDeadlineError(`timed out: no answer after ${remaining} ms, aborted to leave time to report before the Lambda deadline`));
      controller.abort();
    }, remaining);
  });
  try {
    return await Promise.race([send(controller.signal), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Runs one AWS call; any failure is rethrown as an `AwsCallError` naming `api` (and the subject). */
export async function awsCall<T>(
  api: string,
  send: (options: { abortSignal?: AbortSignal }) => Promise<T>,
  options: AwsCallOptions = {},
): Promise<T> {
  try {
    if (options.deadline === undefined) return await send({});
    return await withDeadline((abortSignal) => send({ abortSignal }), options.now ?? Date.now, options.deadline, options.minTimeMs ?? 500);
  } catch (err) {
    throw new AwsCallError(api, err, options.subject);
  }
}

/** True for an authorization failure (`AccessDenied...`, `UnauthorizedOperation`, `NotAuthorized...`). */
export function isAccessDenied(err: unknown): boolean {
  const name = (err as { name?: unknown } | undefined)?.name;
  return typeof name === 'string' && /AccessDenied|UnauthorizedOperation|NotAuthorized/i.test(name);
}
