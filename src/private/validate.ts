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

/**
 * Refuses plain environment variables whose names suggest a secret value (`DB_PASSWORD`, `API_KEY`), pointing to the
 * property that carries secrets instead. Names that only locate a secret (`..._NAME`, `..._ARN`) pass.
 * @internal
 */
export function checkNoSecretLikeNames(construct: IConstruct | string, property: string,
  environment: { [name: string]: string } | undefined, secretsHint: string): void {
  for (const name of Object.keys(environment ?? {})) {
    if (looksLikeSecret(name)) {
      throw invalidInput(construct, property, name, `must not carry secrets in plain text: ${secretsHint}`);
    }
  }
}

/** Refuses a name given both as a plain variable and as a secret. @internal */
export function checkNoSharedNames(construct: IConstruct | string, property: string,
  environment: { [name: string]: unknown } | undefined, secrets: { [name: string]: unknown } | undefined, environmentProperty = 'environment'): void {
  for (const name of Object.keys(secrets ?? {})) {
    if (environment && Object.prototype.hasOwnProperty.call(environment, name)) {
      throw invalidInput(construct, property, name, `must not repeat a name of '${environmentProperty}' (one variable, one source)`);
    }
  }
}

/** What Lambda measures against its 4 KB limit: the variables as one JSON object, in bytes. @internal */
export const LAMBDA_ENVIRONMENT_LIMIT_BYTES = 4096;

// Variables Lambda sets itself and refuses in a function's configuration.
const LAMBDA_RESERVED_NAMES = new Set(['_HANDLER', '_X_AMZN_TRACE_ID', 'AWS_DEFAULT_REGION', 'AWS_REGION', 'AWS_EXECUTION_ENV',
  'AWS_LAMBDA_FUNCTION_NAME', 'AWS_LAMBDA_FUNCTION_MEMORY_SIZE', 'AWS_LAMBDA_FUNCTION_VERSION', 'AWS_LAMBDA_INITIALIZATION_TYPE',
  'AWS_LAMBDA_LOG_GROUP_NAME', 'AWS_LAMBDA_LOG_STREAM_NAME', 'AWS_ACCESS_KEY', 'AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY',
  'AWS_SESSION_TOKEN', 'AWS_LAMBDA_RUNTIME_API', 'LAMBDA_TASK_ROOT', 'LAMBDA_RUNTIME_DIR']);

/**
 * Checks the environment of a Lambda function as Lambda will at deployment: names of a letter then letters, digits
 * or `_`, none that Lambda reserves, nothing that looks like a secret, and at most 4 KB in all (values that are
 * tokens count as empty, so the check never refuses what Lambda might accept). Returns the environment.
 * @internal
 */
export function checkLambdaEnvironment(construct: IConstruct | string, property: string,
  environment: { [name: string]: string }): { [name: string]: string } {
  for (const name of Object.keys(environment)) {
    if (!/^[A-Za-z][A-Za-z0-9_]+$/.test(name)) {
      throw invalidInput(construct, property, name, 'must name variables with a letter followed by letters, digits or _ (two characters or more)');
    }
    if (LAMBDA_RESERVED_NAMES.has(name)) {
      throw invalidInput(construct, property, name, 'must not set a variable Lambda reserves for itself (AWS_REGION, AWS_LAMBDA_*, _HANDLER, ...)');
    }
  }
  checkNoSecretLikeNames(construct, property, environment,
    'keep it in Secrets Manager or SSM Parameter Store, pass its name (e.g. DB_PASSWORD_SECRET_NAME) and read it at run time');
  const measured = Object.fromEntries(Object.entries(environment).map(([k, v]) => [k, Token.isUnresolved(v) ? '' : v]));
  const bytes = Buffer.byteLength(JSON.stringify(measured), 'utf8');
  if (bytes > LAMBDA_ENVIRONMENT_LIMIT_BYTES) {
    throw invalidInput(construct, property, `${bytes} bytes`,
      `must stay within Lambda's ${LAMBDA_ENVIRONMENT_LIMIT_BYTES} bytes for all the variables of one function, names and values together`);
  }
  return environment;
}

/**
 * Checks a branch name as `git check-ref-format --branch` would, and refuses a glob, which belongs in the trigger
 * filter instead.
 * @internal
 */
export function checkBranchName(construct: IConstruct | string, property: string, branch: string): void {
  if (Token.isUnresolved(branch)) return;
  checkNotEmpty(construct, property, branch);
  if (/[*?[]/.test(branch)) {
    throw invalidInput(construct, property, branch,
      "must be one branch, not a glob: the source action fetches a single branch; list patterns in 'triggerBranches' to start the pipeline on pushes to several");
  }
  const invalid = /[\x00-\x20\x7f~^:\\]/.test(branch) || branch.includes('..') || branch.includes('@{') || branch === '@'
    || branch.startsWith('-') || branch.startsWith('/') || branch.endsWith('/') || branch.endsWith('.') || branch.includes('//')
    || branch.split('/').some((part) => part.startsWith('.') || part.endsWith('.lock'));
  if (invalid) {
    throw invalidInput(construct, property, branch,
      "must be a branch name git accepts: no spaces or control characters, none of ~ ^ : \\ * ? [, no '..' or '@{', no part starting with '.' or ending in '.lock', not starting with '-' or ending with '/' or '.'");
  }
}

/**
 * Refuses an ARN (a certificate, ...) whose region is known and differs from the stack's known region.
 * @internal
 */
export function checkSameRegion(construct: IConstruct, property: string, arn: string | undefined, stackRegion: string): void {
  if (arn === undefined || Token.isUnresolved(arn) || Token.isUnresolved(stackRegion)) return;
  const region = arn.split(':')[3];
  if (region && region !== stackRegion) {
    throw invalidInput(construct, property, arn, `must be in the stack's region ${stackRegion} (its region is ${region})`);
  }
}
