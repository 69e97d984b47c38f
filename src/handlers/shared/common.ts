/**
 * Small helpers the release handlers share: JSON log lines, error descriptions, clipping. Pure functions, no AWS
 * clients, so importing them adds nothing else to a handler's bundle.
 */

/** A parse result: the value, or why the input is refused. */
export type Parsed<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly error: string };

export function defaultSleep(ms: number): Promise<void> {
  return new Promise<void>((resolve) => setTimeout(resolve, ms));
}

export function log(level: 'INFO' | 'WARN', message: string, fields: Record<string, unknown>): void {
  console.log(JSON.stringify({ level, message, ...fields }));
}

export function logError(message: string, err: unknown, fields: Record<string, unknown>): void {
  const error = err === undefined ? undefined : { name: (err as { name?: unknown } | undefined)?.name, message: errorMessage(err) };
  console.error(JSON.stringify({ level: 'ERROR', message, error, ...fields }));
}

/** The error's `name`, or `''`. */
export function errorName(err: unknown): string {
  const name = (err as { name?: unknown } | undefined)?.name;
  return typeof name === 'string' ? name : '';
}

export function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}


/** `Name: message` of an AWS error, e.g. `AccessDeniedException: User ... is not authorized to perform ...`. */
export function describeError(err: unknown): string {
  const name = (err as { name?: unknown } | undefined)?.name;
  const message = errorMessage(err);
  return typeof name === 'string' && name !== '' && name !== 'Error' && !message.startsWith(name) ? `${name}: ${message}` : message;
}

/** `text` cut to at most `max` characters, marking the cut. */
export function clip(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}

export function describeJson(value: unknown): string {
  if (value === undefined) return 'missing';
  return clip(JSON.stringify(value) ?? String(value), 100);
}

export function errorMessage(err: unknown): string {
  return typeof err === 'object' && err !== null && typeof (err as { message?: unknown }).message === 'string'
    ? (err as { message: string }).message
    : String(err);
}
