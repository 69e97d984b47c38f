import { Duration, Token } from 'aws-cdk-lib';
import { IConstruct } from 'constructs';

/**
 * Builds the error every bad input gets: the construct, the property, the value received and what is allowed.
 * @internal
 */
export function invalidInput(construct: IConstruct | string, property: string, value: unknown, allowed: string): Error {
  const where = typeof construct === 'string' ? construct : `${construct.constructor.name} '${construct.node.path}'`;
  return new Error(`${where}: '${property}' ${allowed}, got ${describe(value)}`);
}

/** @internal */
export function describe(value: unknown): string {
  if (value === undefined) return 'undefined';
  if (value instanceof Duration) return value.toHumanString();
  if (typeof value === 'string') return `'${value}'`;
  return JSON.stringify(value);
}

/** True when a value can be checked now (not a token resolved at deploy time). @internal */
export function isResolved(value: unknown): boolean {
  if (value === undefined || value === null) return false;
  if (value instanceof Duration) return !value.isUnresolved();
  return !Token.isUnresolved(value);
}

/** Checks a duration against inclusive bounds (and, when a unit is named, whole units), skipping tokens. @internal */
export function checkDuration(construct: IConstruct | string, property: string, value: Duration | undefined, min: Duration, max: Duration,
  unit?: 'seconds' | 'minutes' | 'days'): void {
  if (value === undefined || !isResolved(value)) return;
  const seconds = value.toSeconds({ integral: false });
  if (seconds < min.toSeconds({ integral: false }) || seconds > max.toSeconds({ integral: false })) {
    throw invalidInput(construct, property, value, `must be between ${min.toHumanString()} and ${max.toHumanString()}`);
  }
  const unitSeconds = unit === 'days' ? 86_400 : unit === 'minutes' ? 60 : 1;
  if (unit && seconds % unitSeconds !== 0) {
    throw invalidInput(construct, property, value, `must be a whole number of ${unit}`);
  }
}

/** Checks a whole number against inclusive bounds, skipping tokens. @internal */
export function checkInteger(construct: IConstruct | string, property: string, value: number | undefined, min: number, max: number): void {
  if (value === undefined || Token.isUnresolved(value)) return;
  if (!Number.isInteger(value) || value < min || value > max) {
    throw invalidInput(construct, property, value, `must be a whole number from ${min} to ${max}`);
  }
}

/** Checks a plain string is not empty, skipping tokens. @internal */
export function checkNotEmpty(construct: IConstruct | string, property: string, value: string): void {
  if (Token.isUnresolved(value)) return;
  if (value.trim() === '') {
    throw invalidInput(construct, property, value, 'must not be empty');
  }
}

// A dot-atom local part (no leading, trailing or double dots) and a domain of labels of at most 63 characters whose
// top-level label has letters.
const EMAIL = /^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;

/** Checks an email address has the shape SNS accepts, skipping tokens. @internal */
export function checkEmail(construct: IConstruct | string, property: string, value: string): void {
  if (Token.isUnresolved(value)) return;
  if (!EMAIL.test(value)) {
    throw invalidInput(construct, property, value, 'must be an email address like ops@example.com');
  }
}

/** Variable names that suggest a secret value. @internal */
export const SECRET_LIKE_NAME = /(PASSWORD|PASSWD|SECRET|TOKEN|PRIVATE_KEY|API_KEY|CREDENTIAL)/i;

/**
 * Whether a plain environment variable's name suggests it carries a secret value: a secret-like word, unless the name
 * says it only names or locates one (`SECRET_PARAMETER_NAME`, `TOKEN_ARN`).
 * @internal
 */
export function looksLikeSecret(name: string): boolean {
  return SECRET_LIKE_NAME.test(name) && !/_(NAME|ARN|ID|PATH|URL)$/i.test(name);
}

/**
 * A directory of the repository as a build may `cd` into: `.` by default, no leading `/`, no `..`, a few safe
 * characters; `./x/` becomes `x`. Tokens pass unchanged.
 * @internal
 */
export function normalizeRepositoryDirectory(construct: IConstruct, property: string, directory: string | undefined): string {
  if (directory === undefined) return '.';
  if (Token.isUnresolved(directory)) return directory;
  const trimmed = directory.replace(/^\.\//, '').replace(/\/+$/, '') || '.';
  if (trimmed.startsWith('/') || trimmed.split('/').includes('..') || !/^[A-Za-z0-9._\-/]+$/.test(trimmed)) {
    throw invalidInput(construct, property, directory, 'must be a path inside the repository (letters, digits, . _ - /; no .. or leading /)');
  }
  return trimmed;
}
