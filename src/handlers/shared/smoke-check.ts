/**
 * The smoke test itself, shared by the handlers that run it (`smoke-test.lambda.ts` for every engine, and the ECS
 * release hook): the configuration, the checks over HTTP, and the ECS lifecycle hook's event and answer. No AWS
 * clients. How each engine runs it: ADR 0006 (ECS), 0007 (serverless), 0008 (EC2).
 */
import { clip, describeJson } from './common';
import type { Parsed } from './common';

// ---------------------------------------------------------------------------------------------------------------
// Limits and defaults
// ---------------------------------------------------------------------------------------------------------------

/** Time kept back from the Lambda deadline to report the verdict to the engine that waits for it. */
export const REPORTING_MARGIN_MS = 3_000;
/** A request is not started with less time than this before the deadline. */
export const MIN_REQUEST_TIME_MS = 250;
/** CodePipeline's limit for `failureDetails.message`. */
export const CODEPIPELINE_MESSAGE_LIMIT = 5_000;
/** How often the ECS hook answers `IN_PROGRESS` (targets not reachable yet) before it answers `FAILED`. */
export const ECS_MAX_INVOCATIONS = 5;
/** Seconds ECS waits before invoking the hook again after `IN_PROGRESS` (the documented default is 30). */
export const ECS_CALLBACK_DELAY_SECONDS = 30;
/** Key in the ECS `hookDetails` that counts this hook's invocations within one deployment. */
export const ECS_INVOCATIONS_KEY = 'smokeTestInvocations';

const DEFAULT_HEALTH_PATH = '/healthcheck';
const DEFAULT_REQUEST_TIMEOUT_MS = 5_000;
const DEFAULT_ATTEMPTS = 3;
const DEFAULT_RETRY_DELAY_MS = 2_000;
const USER_AGENT = 'cdk-delivery-pipelines-smoke-test';

// ---------------------------------------------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------------------------------------------

/** What the smoke test checks and how patiently. */
export interface SmokeTestConfig {
  /** Base URL of the test endpoint, without trailing slash, e.g. `http://my-alb-123.us-east-1.elb.amazonaws.com:8080`. */
  readonly baseUrl: string;
  /** Path of the health check, starting with `/`. */
  readonly healthPath: string;
  /** When set, `GET <base>/` must answer 200 and contain this text. */
  readonly expectedPhrase?: string;
  /** Timeout of each request. */
  readonly requestTimeoutMs: number;
  /** How many times a failing run of the checks is tried in all (1 = no retry). */
  readonly attempts: number;
  /** Pause between two attempts. */
  readonly retryDelayMs: number;
}

/** Per-invocation overrides, from CodePipeline `UserParameters`, ECS `hookDetails` or a direct invoke's event. */
export interface SmokeTestOverrides {
  readonly baseUrl?: string;
  readonly healthPath?: string;
  /** An empty string switches the phrase check off. */
  readonly expectedPhrase?: string;
}


const OVERRIDE_KEYS: ReadonlyArray<keyof SmokeTestOverrides> = ['baseUrl', 'healthPath', 'expectedPhrase'];

/**
 * Builds the configuration from the environment and the overrides, and validates it. Never throws: a bad value is
 * returned as an error message that names the setting and quotes the value.
 */
export function parseConfig(env: Record<string, string | undefined>, overrides: SmokeTestOverrides = {}): Parsed<SmokeTestConfig> {
  const rawBaseUrl = overrides.baseUrl ?? nonEmpty(env.SMOKE_TEST_BASE_URL);
  const baseUrlSource = overrides.baseUrl !== undefined ? 'baseUrl' : 'SMOKE_TEST_BASE_URL';
  if (rawBaseUrl === undefined) {
    return { ok: false, error: 'SMOKE_TEST_BASE_URL is not set: the base URL of the test endpoint is required' };
  }
  const baseUrl = parseBaseUrl(baseUrlSource, rawBaseUrl);
  if (!baseUrl.ok) return baseUrl;

  const healthPath = overrides.healthPath ?? nonEmpty(env.SMOKE_TEST_HEALTH_PATH) ?? DEFAULT_HEALTH_PATH;
  if (!healthPath.startsWith('/')) {
    const source = overrides.healthPath !== undefined ? 'healthPath' : 'SMOKE_TEST_HEALTH_PATH';
    return { ok: false, error: `${source} must start with "/", got ${JSON.stringify(healthPath)}` };
  }

  // Not trimmed: leading or trailing spaces may be part of the phrase.
  const envPhrase = env.SMOKE_TEST_EXPECTED_PHRASE;
  const expectedPhrase = overrides.expectedPhrase ?? (nonEmpty(envPhrase) === undefined ? undefined : envPhrase);

  const requestTimeoutMs = parseInteger(env, 'SMOKE_TEST_REQUEST_TIMEOUT_MS', DEFAULT_REQUEST_TIMEOUT_MS, 1, 900_000);
  if (!requestTimeoutMs.ok) return requestTimeoutMs;
  const attempts = parseInteger(env, 'SMOKE_TEST_ATTEMPTS', DEFAULT_ATTEMPTS, 1, 20);
  if (!attempts.ok) return attempts;
  const retryDelayMs = parseInteger(env, 'SMOKE_TEST_RETRY_DELAY_MS', DEFAULT_RETRY_DELAY_MS, 0, 300_000);
  if (!retryDelayMs.ok) return retryDelayMs;

  return {
    ok: true,
    value: {
      baseUrl: baseUrl.value,
      healthPath,
      expectedPhrase: expectedPhrase === '' ? undefined : expectedPhrase,
      requestTimeoutMs: requestTimeoutMs.value,
      attempts: attempts.value,
      retryDelayMs: retryDelayMs.value,
    },
  };
}

/**
 * Reads the overrides from an object. `strict` rejects keys it does not know (for CodePipeline `UserParameters`,
 * where a misspelt key would silently test the default URL); otherwise other keys are ignored (ECS `hookDetails` is a
 * bag shared with other data, and a direct invoke may carry anything).
 */
export function parseOverrides(value: unknown, source: string, strict: boolean): Parsed<SmokeTestOverrides> {
  if (value === undefined || value === null) return { ok: true, value: {} };
  if (typeof value !== 'object' || Array.isArray(value)) {
    return { ok: false, error: `${source} must be a JSON object, got ${describeJson(value)}` };
  }
  const record = value as Record<string, unknown>;
  if (strict) {
    const unknownKeys = Object.keys(record).filter((key) => !(OVERRIDE_KEYS as readonly string[]).includes(key));
    if (unknownKeys.length > 0) {
      return {
        ok: false,
        error: `${source} has unknown key(s) ${unknownKeys.map((k) => JSON.stringify(k)).join(', ')}; allowed: ${OVERRIDE_KEYS.join(', ')}`,
      };
    }
  }
  const overrides: Record<string, string> = {};
  for (const key of OVERRIDE_KEYS) {
    const v = record[key];
    if (v === undefined) continue;
    if (typeof v !== 'string') {
      return { ok: false, error: `${source}.${key} must be a string, got ${describeJson(v)}` };
    }
    overrides[key] = v;
  }
  return { ok: true, value: overrides };
}

/** Parses CodePipeline's `UserParameters`: empty, or a JSON object with `baseUrl`, `expectedPhrase`, `healthPath`. */
export function parseUserParameters(userParameters: unknown): Parsed<SmokeTestOverrides> {
  if (userParameters === undefined || userParameters === null) return { ok: true, value: {} };
  if (typeof userParameters !== 'string') {
    return { ok: false, error: `UserParameters must be a string of JSON, got ${describeJson(userParameters)}` };
  }
  if (userParameters.trim() === '') return { ok: true, value: {} };
  let parsed: unknown;
  try {
    parsed = JSON.parse(userParameters);
  } catch (err) {
    return { ok: false, error: `UserParameters is not valid JSON (${errorMessage(err)}): ${JSON.stringify(clip(userParameters, 200))}` };
  }
  return parseOverrides(parsed, 'UserParameters', true);
}

function parseBaseUrl(source: string, raw: string): Parsed<string> {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return { ok: false, error: `${source} must be an absolute http(s) URL, got ${JSON.stringify(raw)}` };
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    return { ok: false, error: `${source} must use http or https, got ${JSON.stringify(raw)}` };
  }
  if (url.search !== '' || url.hash !== '') {
    return { ok: false, error: `${source} must not contain a query or fragment, got ${JSON.stringify(raw)}` };
  }
  return { ok: true, value: raw.replace(/\/+$/, '') };
}

function parseInteger(env: Record<string, string | undefined>, name: string, fallback: number, min: number, max: number): Parsed<number> {
  const raw = nonEmpty(env[name]);
  if (raw === undefined) return { ok: true, value: fallback };
  const value = Number(raw.trim());
  if (!/^\d+$/.test(raw.trim()) || value < min || value > max) {
    return { ok: false, error: `${name} must be an integer between ${min} and ${max}, got ${JSON.stringify(raw)}` };
  }
  return { ok: true, value };
}

// ---------------------------------------------------------------------------------------------------------------
// The smoke test
// ---------------------------------------------------------------------------------------------------------------

/** One check of one attempt. */
export interface CheckResult {
  /** `health` or `content`. */
  readonly name: string;
  readonly url: string;
  readonly passed: boolean;
  /** HTTP status, when a response arrived. */
  readonly status?: number;
  /** One readable line, e.g. `GET /healthcheck 200 (version 1.2.3)`. */
  readonly detail: string;
}

/** The verdict. `checks` are those of the last attempt. */
export interface SmokeTestResult {
  readonly passed: boolean;
  readonly checks: CheckResult[];
  /** One readable line, e.g. `smoke test passed: GET /healthcheck 200 (version 1.2.3); GET / contains "Welcome"`. */
  readonly summary: string;
}

/** The part of a fetch response the checks read. The global `Response` fits. */
export interface FetchResponseLike {
  readonly status: number;
  readonly headers?: { get(name: string): string | null };
  text(): Promise<string>;
}

/** The part of `fetch` the checks use. The global `fetch` fits. */
export type FetchLike = (
  url: string,
  init: { method: 'GET'; signal: AbortSignal; redirect: 'manual'; headers: Record<string, string> },
) => Promise<FetchResponseLike>;

/** What `runSmokeTest` needs from the outside world; each defaults to the real thing. */
export interface SmokeTestDeps {
  /** @default the global `fetch` */
  readonly fetch?: FetchLike;
  /** @default `setTimeout` */
  readonly sleep?: (ms: number) => Promise<void>;
  /** @default `Date.now` */
  readonly now?: () => number;
  /** Time, on the `now` clock, by which the checks must be over. @default none: only the per-request timeouts bound the run */
  readonly deadline?: number;
}

/**
 * Runs the checks, retrying a failed run up to `config.attempts` times, and returns the verdict. Never throws and
 * never outlives `deps.deadline`.
 */
export async function runSmokeTest(config: SmokeTestConfig, deps: SmokeTestDeps = {}): Promise<SmokeTestResult> {
  const fetchFn: FetchLike = deps.fetch ?? fetch;
  const sleep = deps.sleep ?? ((ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)));
  const now = deps.now ?? Date.now;
  const deadline = deps.deadline ?? Number.POSITIVE_INFINITY;

  try {
    let checks: CheckResult[] = [];
    let attempt = 0;
    let cutShort = false;
    while (attempt < config.attempts) {
      if (deadline - now() < MIN_REQUEST_TIME_MS) {
        cutShort = true;
        break;
      }
      attempt++;
      checks = await runChecksOnce(config, fetchFn, now, deadline);
      if (checks.every((check) => check.passed)) {
        return { passed: true, checks, summary: `smoke test passed: ${checks.map((check) => check.detail).join('; ')}` };
      }
      if (attempt >= config.attempts) break;
      if (now() + config.retryDelayMs + MIN_REQUEST_TIME_MS > deadline) {
        cutShort = true;
        break;
      }
      await sleep(config.retryDelayMs);
    }
    return { passed: false, checks, summary: failureSummary(checks, attempt, config.attempts, cutShort) };
  } catch (err) {
    // Defensive: the checks catch their own errors, but the verdict must be reported whatever happens.
    return failed(`unexpected error: ${errorMessage(err)}`);
  }
}

async function runChecksOnce(config: SmokeTestConfig, fetchFn: FetchLike, now: () => number, deadline: number): Promise<CheckResult[]> {
  const healthUrl = `${config.baseUrl}${config.healthPath}`;
  const health = evaluateHealth(config.healthPath, healthUrl, await get(fetchFn, healthUrl, config.requestTimeoutMs, now, deadline));
  const checks = [health];
  // The content check only makes sense against a healthy target; skipping it keeps an unreachable target's attempt short.
  if (health.passed && config.expectedPhrase !== undefined) {
    const rootUrl = `${config.baseUrl}/`;
    checks.push(evaluateContent(config.expectedPhrase, rootUrl, await get(fetchFn, rootUrl, config.requestTimeoutMs, now, deadline)));
  }
  return checks;
}

type Outcome =
  | { readonly kind: 'response'; readonly status: number; readonly body: string; readonly location?: string }
  | { readonly kind: 'timeout'; readonly afterMs: number; readonly byDeadline: boolean }
  | { readonly kind: 'error'; readonly message: string };

/**
 * One GET with its own timeout. The timer aborts the request (AbortController) and also settles the race on its own,
 * so that even a fetch that ignores its signal cannot hang the run. The timer covers reading the body too.
 */
async function get(fetchFn: FetchLike, url: string, timeoutMs: number, now: () => number, deadline: number): Promise<Outcome> {
  const remaining = deadline - now();
  if (remaining < MIN_REQUEST_TIME_MS) return { kind: 'timeout', afterMs: 0, byDeadline: true };
  const effectiveTimeout = Math.min(timeoutMs, remaining);
  const byDeadline = effectiveTimeout < timeoutMs;

  const controller = new AbortController();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<Outcome>((resolve) => {
    timer = setTimeout(() => {
      controller.abort();
      resolve({ kind: 'timeout', afterMs: effectiveTimeout, byDeadline });
    }, effectiveTimeout);
  });
  const request = (async (): Promise<Outcome> => {
    try {
      const response = await fetchFn(url, {
        method: 'GET',
        signal: controller.signal,
        // A redirect is a finding (wrong base URL or listener), not something to follow to another host.
        redirect: 'manual',
        headers: { 'user-agent': USER_AGENT, 'cache-control': 'no-cache' },
      });
      const body = await response.text();
      return { kind: 'response', status: response.status, body, location: response.headers?.get('location') ?? undefined };
    } catch (err) {
      return { kind: 'error', message: errorMessage(err) };
    }
  })();
  try {
    return await Promise.race([request, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

function evaluateHealth(path: string, url: string, outcome: Outcome): CheckResult {
  const what = `GET ${path}`;
  if (outcome.kind !== 'response') return { name: 'health', url, passed: false, detail: describeNoResponse(what, outcome) };
  const { status, body } = outcome;
  const fail = (detail: string): CheckResult => ({ name: 'health', url, passed: false, status, detail });
  if (status !== 200) return fail(describeStatus(what, outcome));
  let json: unknown;
  try {
    json = JSON.parse(body);
  } catch {
    return fail(`${what} 200 but the body is not JSON: ${JSON.stringify(clip(body, 100))}`);
  }
  const record = typeof json === 'object' && json !== null && !Array.isArray(json) ? (json as Record<string, unknown>) : undefined;
  if (record?.status !== 'ok') {
    const got = record === undefined ? `the body is ${describeJson(json)}` : `"status" is ${describeJson(record.status)}`;
    return fail(`${what} 200 but ${got}, expected "status": "ok"`);
  }
  const version = typeof record.version === 'string' || typeof record.version === 'number' ? String(record.version) : undefined;
  return { name: 'health', url, passed: true, status, detail: `${what} 200 (${version === undefined ? 'no version reported' : `version ${version}`})` };
}

function evaluateContent(phrase: string, url: string, outcome: Outcome): CheckResult {
  const what = 'GET /';
  if (outcome.kind !== 'response') return { name: 'content', url, passed: false, detail: describeNoResponse(what, outcome) };
  const { status, body } = outcome;
  if (status !== 200) return { name: 'content', url, passed: false, status, detail: describeStatus(what, outcome) };
  const passed = body.includes(phrase);
  const detail = passed ? `${what} contains ${JSON.stringify(phrase)}` : `${what} did not contain ${JSON.stringify(phrase)} (${status})`;
  return { name: 'content', url, passed, status, detail };
}

function describeNoResponse(what: string, outcome: Exclude<Outcome, { kind: 'response' }>): string {
  if (outcome.kind === 'error') return `${what} failed: ${outcome.message}`;
  if (outcome.afterMs === 0) return `${what} not sent: no time left before the Lambda deadline`;
  return `${what} timed out after ${outcome.afterMs} ms${outcome.byDeadline ? ' (cut short by the Lambda deadline)' : ''}`;
}

function describeStatus(what: string, outcome: Extract<Outcome, { kind: 'response' }>): string {
  const redirect = outcome.status >= 300 && outcome.status < 400 && outcome.location ? ` (redirect to ${outcome.location})` : '';
  return `${what} returned ${outcome.status}${redirect}`;
}

function failureSummary(checks: CheckResult[], attempts: number, maxAttempts: number, cutShort: boolean): string {
  const findings = checks.filter((check) => !check.passed).map((check) => check.detail);
  const what = findings.length > 0 ? findings.join('; ') : 'no check could run before the Lambda deadline';
  let suffix = '';
  if (cutShort && attempts > 0) suffix = ` (stopped after ${attempts} of ${maxAttempts} attempts: Lambda deadline)`;
  else if (attempts > 1) suffix = ` (after ${attempts} attempts)`;
  return `smoke test failed: ${what}${suffix}`;
}

/** A failed verdict without checks: the configuration or the run went wrong before any check. */
export function failed(message: string): SmokeTestResult {
  return { passed: false, checks: [], summary: `smoke test failed: ${message}` };
}

/**
 * Event of an Amazon ECS deployment lifecycle hook, as documented in "Lambda hooks for Amazon ECS service
 * deployments" (Amazon ECS Developer Guide, lambda-lifecycle-hooks.html, section "Lifecycle payloads").
 */
export interface EcsLifecycleHookEvent {
  readonly executionId: string;
  /** e.g. `POST_TEST_TRAFFIC_SHIFT` */
  readonly lifecycleStage: string;
  /** ARN of the service deployment. */
  readonly resourceArn?: string;
  readonly executionDetails: {
    readonly serviceArn?: string;
    readonly targetServiceRevisionArn?: string;
    /** Service revision ARN -> percentage of test traffic. */
    readonly testTrafficWeights?: Record<string, number>;
    /** Service revision ARN -> percentage of production traffic. */
    readonly productionTrafficWeights?: Record<string, number>;
  };
  /** From the hook configuration of the service, merged with what earlier `IN_PROGRESS` answers returned. */
  readonly hookDetails?: Record<string, unknown>;
}

/** The answer ECS reads from the hook's return value (same document). */
export interface EcsLifecycleHookResponse {
  readonly hookStatus: 'SUCCEEDED' | 'FAILED' | 'IN_PROGRESS';
  /** Seconds until ECS invokes the hook again after `IN_PROGRESS` (ECS default: 30). */
  readonly callBackDelay?: number;
  /** Returned with `IN_PROGRESS`; ECS merges it into the next invocation's `hookDetails`. */
  readonly hookDetails?: Record<string, unknown>;
}

/** The failing checks got no response or a 5xx: the target is probably still starting or registering. */
export function targetNotReady(result: SmokeTestResult): boolean {
  const failing = result.checks.filter((check) => !check.passed);
  return failing.length > 0 && failing.every((check) => check.status === undefined || check.status >= 500);
}

// Small helpers

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value.trim() === '' ? undefined : value.trim();
}

/**
 * An error's message, with the cause Node's fetch hides behind "fetch failed" (e.g. `connect ECONNREFUSED ...`).
 * Duck-typed rather than `instanceof Error`: errors from another realm (vm contexts, test runners) are errors too.
 */
function errorMessage(err: unknown): string {
  const message = messageOf(err);
  if (message === undefined) return String(err);
  const cause = messageOf((err as { cause?: unknown }).cause);
  return cause && cause !== message ? `${message} (${cause})` : message;
}

function messageOf(value: unknown): string | undefined {
  return typeof value === 'object' && value !== null && typeof (value as { message?: unknown }).message === 'string'
    ? (value as { message: string }).message
    : undefined;
}
