/** Which AWS errors are worth trying again later (shared by the release handlers that poll). */

export const TRANSIENT_ERROR_NAMES: ReadonlySet<string> = new Set([
  'ThrottlingException',
  'Throttling',
  'ThrottledException',
  'TooManyRequestsException',
  'RequestLimitExceeded',
  'RequestThrottled',
  'RequestThrottledException',
  'SlowDown',
  'ServiceUnavailable',
  'ServiceUnavailableException',
  'InternalServerError',
  'InternalServerException',
  'InternalFailure',
  'ServerException', // ECS: "These errors are usually caused by a server issue."
  'TooManyUpdates', // SSM: concurrent updates of one parameter.
  'TimeoutError',
  'RequestTimeout',
  'RequestTimeoutException',
]);

export const TRANSIENT_NETWORK_CODES: ReadonlySet<string> = new Set(['ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EAI_AGAIN', 'ECONNREFUSED']);

/**
 * True for an AWS error worth trying again later: throttling, a 5xx / server fault, an error the SDK marks
 * `$retryable`, or a network timeout or reset. Everything else (access denied, not found, invalid parameter,
 * limits) is final. Duck-typed: SDK errors, plain objects and errors from another realm all qualify.
 */
export function isThrottling(err: unknown): boolean {
  if (typeof err !== 'object' || err === null) return false;
  const e = err as {
    name?: unknown; code?: unknown; Code?: unknown; $retryable?: unknown; $fault?: unknown; $metadata?: { httpStatusCode?: unknown };
  };
  const names = [e.name, e.code, e.Code].filter((value): value is string => typeof value === 'string');
  if (names.some((name) => TRANSIENT_ERROR_NAMES.has(name) || name.startsWith('ServiceUnavailable') || TRANSIENT_NETWORK_CODES.has(name))) {
    return true;
  }
  if (e.$retryable !== undefined && e.$retryable !== null && e.$retryable !== false) return true;
  if (e.$fault === 'server') return true;
  const status = e.$metadata?.httpStatusCode;
  return typeof status === 'number' && status >= 500;
}
