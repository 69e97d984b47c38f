/**
 * Which AWS errors are worth trying again later: one rule, `isRetryable`, for every release handler.
 *
 * The AWS SDK v3 decides first (`@smithy/core/retry`: its throttling codes, `$retryable` trait, transient codes and
 * HTTP statuses, Node network codes), the same classification its own retry strategy applies inside each call; the
 * list below only adds what the SDK leaves to the caller: server-side failures by name and any 5xx or server fault,
 * and this library's own deadline errors. Everything else (access denied, not found, invalid parameter, limits) is
 * final. Duck-typed: SDK errors, plain objects and errors from another realm all qualify.
 */
import { isThrottlingError, isTransientError } from '@smithy/core/retry';
import type { SdkError } from '@smithy/types';

/** Names (or `code`s) retried beyond the SDK's own classification. */
export const RETRYABLE_ERROR_NAMES: ReadonlySet<string> = new Set([
  'ServiceUnavailable',
  'ServiceUnavailableException',
  'InternalServerError',
  'InternalServerException',
  'InternalFailure',
  'ServerException', // ECS: "These errors are usually caused by a server issue."
  'TooManyUpdates', // SSM: concurrent updates of one parameter.
  'AbortError', // a call this library aborted at its own deadline: the next invocation tries again.
  'LambdaDeadlineError', // a call not started for lack of time before the Lambda deadline.
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
]);

/** SDK throttling codes this library also treats as final: a quota, not a rate (`LimitExceededException`). */
const NOT_RETRYABLE_THROTTLING: ReadonlySet<string> = new Set(['LimitExceededException', 'TransactionInProgressException']);

interface ErrorLike {
  readonly name?: unknown;
  readonly code?: unknown;
  readonly Code?: unknown;
  readonly $retryable?: unknown;
  readonly $fault?: unknown;
  readonly $metadata?: unknown;
}

/**
 * The error's fields the SDK's classifiers read, normalized so that they cannot throw on odd values: a `$retryable`
 * of `null` or `false` counts as absent, a `$metadata` that is not an object as none.
 */
function sdkView(e: ErrorLike): SdkError {
  const metadata = typeof e.$metadata === 'object' && e.$metadata !== null ? e.$metadata : undefined;
  const retryable = e.$retryable === null || e.$retryable === false ? undefined : e.$retryable;
  const message = (e as { message?: unknown }).message;
  return { name: e.name, code: e.code, message, $retryable: retryable, $metadata: metadata } as unknown as SdkError;
}

/** True for a throttling error: the SDK's rule (throttling codes, `$retryable.throttling`, HTTP 429). */
export function isThrottling(err: unknown): boolean {
  if (typeof err !== 'object' || err === null) return false;
  const e = err as ErrorLike;
  if (typeof e.name === 'string' && NOT_RETRYABLE_THROTTLING.has(e.name)) return false;
  return isThrottlingError(sdkView(e));
}

/**
 * True for an AWS error worth trying again later: throttling, a transient error, a 5xx or server fault, or a
 * network failure; false for anything else, including values that are not errors at all.
 */
export function isRetryable(err: unknown): boolean {
  if (typeof err !== 'object' || err === null) return false;
  const e = err as ErrorLike;
  const names = [e.name, e.code, e.Code].filter((value): value is string => typeof value === 'string');
  if (names.some((name) => RETRYABLE_ERROR_NAMES.has(name) || name.startsWith('ServiceUnavailable'))) return true;
  if (names.some((name) => NOT_RETRYABLE_THROTTLING.has(name))) return false;
  // The SDK's codes, whichever field carries them (`name`, a Node `code`, an XML `Code`), then its traits and statuses.
  const bySdkCode = (name: string) =>
    isThrottlingError({ name } as unknown as SdkError) || isTransientError({ name, code: name } as unknown as SdkError);
  if (names.some((name) => name !== 'AbortError' && bySdkCode(name))) return true;
  const view = sdkView(e);
  if (isThrottlingError(view) || (view.name !== 'AbortError' && isTransientError(view))) return true;
  if (e.$fault === 'server') return true;
  const status = (view.$metadata as { httpStatusCode?: unknown } | undefined)?.httpStatusCode;
  return typeof status === 'number' && status >= 500;
}
