/**
 * CodeDeploy `BeforeAllowTraffic` hook for the Lambda deployments of a serverless REST API: it invokes the new version
 * of one route's function with an API Gateway (REST, v1) proxy event before CodeDeploy moves the alias to it, and
 * reports the verdict with `PutLifecycleEventHookExecutionStatus`.
 *
 * Each route of the API has its own function behind an alias (`live`). The release controller starts one CodeDeploy
 * deployment per function and writes into the deployment's `description` the JSON string
 * `{"functionId":"GetSleepSecs","functionName":"...","aliasName":"live","targetVersion":"7","previousVersion":"6"}`.
 * CodeDeploy invokes the hook with `{ DeploymentId, LifecycleEventHookExecutionId }` only, so:
 *
 * 1. `GetDeployment` → `deploymentInfo.description` → which function, which new version (`parseDescription`).
 * 2. `ROUTES[functionId]` → the route: method, path template, `smokeTestPath`, `expectedPhrase` (`parseRoutes`).
 * 3. Only `GET`, `HEAD` and `ANY` routes are invoked (always as `GET`): any other method could change data, so those
 *    routes pass without a call. A route whose path has parameters (`/sleep/{secs}`) and no `smokeTestPath` passes
 *    without a call too, since there is no concrete path to ask for. Both cases say so in the log.
 * 4. `Invoke` of the new version itself (`Qualifier: targetVersion`; the alias still points at the old one) with the
 *    proxy event of `buildProxyEvent` (`RequestResponse`).
 * 5. `evaluate`: the invocation passes when there is no `FunctionError`, the payload is a JSON object with a numeric
 *    `statusCode` below 500 (a 4xx is a valid answer, e.g. 404 for an unknown record), a string `body` if any, and
 *    the (base64-decoded when `isBase64Encoded`) body contains `expectedPhrase` when that is set.
 * 6. `PutLifecycleEventHookExecutionStatus` `Succeeded` or `Failed`.
 *
 * Every path reports: a deployment that cannot be read, a description or configuration that does not parse, an
 * invoke error or timeout are all `Failed`. Throttling of the invoke is retried twice after a short pause; any other
 * AWS error is final. The invoke is aborted before the Lambda deadline so that there is time left to report. Only a
 * failure to *report* makes the invocation fail (logged, then rethrown): CodeDeploy then fails the lifecycle event
 * after its timeout, which rolls the deployment back.
 *
 * Configuration (environment): `ROUTES`, a JSON object keyed by functionId:
 * `{ "GetSleepSecs": { "method": "GET", "path": "/sleep/{secs}", "smokeTestPath": "/sleep/0", "expectedPhrase": "..." } }`.
 * `smokeTestPath` may carry a query string (`/items?limit=1`).
 *
 * AWS API actions: `codedeploy:GetDeployment`, `codedeploy:PutLifecycleEventHookExecutionStatus`, `lambda:InvokeFunction`
 * (on the qualified ARNs of the functions, `<function-arn>:*`).
 */
import { CodeDeployClient, GetDeploymentCommand, PutLifecycleEventHookExecutionStatusCommand } from '@aws-sdk/client-codedeploy';
import type { LifecycleEventStatus } from '@aws-sdk/client-codedeploy';
import { InvokeCommand, LambdaClient } from '@aws-sdk/client-lambda';
import type { InvokeCommandOutput } from '@aws-sdk/client-lambda';
import type { Context } from 'aws-lambda';
import { withDeadline } from './shared/aws-call';
import { clip, defaultSleep, describeError, describeJson, errorMessage, isObject, log, logError } from './shared/common';
import type { Parsed } from './shared/common';
import { isThrottling } from './shared/retryable';

// ---------------------------------------------------------------------------------------------------------------
// AWS clients: module scope, so that warm invocations reuse connections. CodeDeploy calls keep the SDK's standard
// retries (reporting the verdict matters most). The Lambda client makes one attempt per `send`: the hook retries
// throttling itself, with its own short pauses, and never repeats an invocation after any other error (a timeout
// or reset could mean the function ran). No request timeout on Lambda: the deadline's AbortController bounds it.
// ---------------------------------------------------------------------------------------------------------------

/** Exported for tests. */
export const codeDeploy = new CodeDeployClient({ maxAttempts: 3, requestHandler: { connectionTimeout: 3_000, requestTimeout: 5_000 } });
/** Exported for tests. */
export const lambdaClient = new LambdaClient({ maxAttempts: 1, requestHandler: { connectionTimeout: 3_000 } });

// ---------------------------------------------------------------------------------------------------------------
// Limits
// ---------------------------------------------------------------------------------------------------------------

/** Time kept back from the Lambda deadline to report the verdict to CodeDeploy. */
export const REPORTING_MARGIN_MS = 3_000;
/** An AWS call is not started with less time than this before the deadline. */
export const MIN_CALL_TIME_MS = 250;
/** Pauses before the second and third attempt of a throttled invoke. */
export const THROTTLE_RETRY_DELAYS_MS: readonly number[] = [200, 600];
/** How much of a response body or error message goes into a reason. */
const SNIPPET_LENGTH = 300;

export const USER_AGENT = 'cdk-delivery-pipelines pre-traffic test';
export const STAGE = 'pre-traffic';

/** Methods whose route is invoked (as GET); the others could change data. */
const SAFE_METHODS: ReadonlySet<string> = new Set(['GET', 'HEAD', 'ANY']);
const KNOWN_METHODS: ReadonlySet<string> = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'ANY']);

// ---------------------------------------------------------------------------------------------------------------
// Inputs
// ---------------------------------------------------------------------------------------------------------------

export type { Parsed } from './shared/common';

/** What the release controller writes into the description of the CodeDeploy deployment. */
export interface DeploymentDescription {
  readonly functionId: string;
  readonly functionName: string;
  readonly targetVersion: string;
  readonly aliasName?: string;
  readonly previousVersion?: string;
}

/** One route of the API, from `ROUTES`. */
export interface RouteConfig {
  /** Upper case: GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS or ANY. */
  readonly method: string;
  /** Resource path template, e.g. `/sleep/{secs}` or `/files/{proxy+}`. */
  readonly path: string;
  /** Concrete path to invoke, matching `path`, optionally with a query string, e.g. `/sleep/0`. */
  readonly smokeTestPath?: string;
  /** When set, the response body must contain it. */
  readonly expectedPhrase?: string;
}

export type Routes = Readonly<Record<string, RouteConfig>>;

/**
 * Parses the deployment description: a JSON object with non-empty string `functionId`, `functionName` and
 * `targetVersion` (a published version number), and optional string `aliasName` and `previousVersion`. Never throws.
 */
export function parseDescription(description: unknown): Parsed<DeploymentDescription> {
  if (typeof description !== 'string' || description.trim() === '') {
    return { ok: false, error: `the deployment has no description (expected the JSON written by the release controller), got ${describeJson(description)}` };
  }
  let json: unknown;
  try {
    json = JSON.parse(description);
  } catch (err) {
    return { ok: false, error: `the deployment description is not JSON (${errorMessage(err)}): ${JSON.stringify(clip(description, SNIPPET_LENGTH))}` };
  }
  if (!isObject(json)) return { ok: false, error: `the deployment description must be a JSON object, got ${describeJson(json)}` };
  for (const key of ['functionId', 'functionName', 'targetVersion']) {
    if (typeof json[key] !== 'string' || (json[key] as string).trim() === '') {
      return { ok: false, error: `the deployment description has no ${key} (a non-empty string), got ${describeJson(json[key])}` };
    }
  }
  for (const key of ['aliasName', 'previousVersion']) {
    if (json[key] !== undefined && typeof json[key] !== 'string') {
      return { ok: false, error: `the deployment description's ${key} must be a string, got ${describeJson(json[key])}` };
    }
  }
  const targetVersion = json.targetVersion as string;
  if (!/^[0-9]+$/.test(targetVersion)) {
    return { ok: false, error: `the deployment description's targetVersion must be a published version number, got ${JSON.stringify(targetVersion)}` };
  }
  return {
    ok: true,
    value: {
      functionId: json.functionId as string,
      functionName: json.functionName as string,
      targetVersion,
      ...(json.aliasName === undefined ? {} : { aliasName: json.aliasName as string }),
      ...(json.previousVersion === undefined ? {} : { previousVersion: json.previousVersion as string }),
    },
  };
}

/**
 * Parses and validates `ROUTES` (see the file comment). Methods are accepted in any case and returned in upper case.
 * A `smokeTestPath` must match its route's path template. Never throws.
 */
export function parseRoutes(raw: string | undefined): Parsed<Routes> {
  if (raw === undefined || raw.trim() === '') return { ok: false, error: 'ROUTES is not set' };
  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch (err) {
    return { ok: false, error: `ROUTES is not valid JSON (${errorMessage(err)}): ${JSON.stringify(clip(raw, SNIPPET_LENGTH))}` };
  }
  if (!isObject(json)) return { ok: false, error: `ROUTES must be a JSON object keyed by functionId, got ${describeJson(json)}` };
  const routes: Record<string, RouteConfig> = {};
  for (const [functionId, entry] of Object.entries(json)) {
    const where = `ROUTES[${JSON.stringify(functionId)}]`;
    if (functionId === '') return { ok: false, error: 'ROUTES has an empty functionId' };
    if (!isObject(entry)) return { ok: false, error: `${where} must be an object, got ${describeJson(entry)}` };
    for (const key of ['method', 'path']) {
      if (typeof entry[key] !== 'string') return { ok: false, error: `${where}.${key} must be a string, got ${describeJson(entry[key])}` };
    }
    for (const key of ['smokeTestPath', 'expectedPhrase']) {
      if (entry[key] !== undefined && typeof entry[key] !== 'string') {
        return { ok: false, error: `${where}.${key} must be a string, got ${describeJson(entry[key])}` };
      }
    }
    const method = (entry.method as string).toUpperCase();
    if (!KNOWN_METHODS.has(method)) {
      return { ok: false, error: `${where}.method must be one of ${[...KNOWN_METHODS].join(', ')}, got ${JSON.stringify(entry.method)}` };
    }
    const path = entry.path as string;
    const templateError = checkTemplate(path);
    if (templateError !== undefined) return { ok: false, error: `${where}.path ${templateError}, got ${JSON.stringify(path)}` };
    const smokeTestPath = entry.smokeTestPath as string | undefined;
    if (smokeTestPath !== undefined) {
      const { path: concrete } = splitQuery(smokeTestPath);
      if (!concrete.startsWith('/') || /[{}#]/.test(smokeTestPath)) {
        return { ok: false, error: `${where}.smokeTestPath must be a concrete path starting with "/" (no {...}, no #), got ${JSON.stringify(smokeTestPath)}` };
      }
      if (matchPath(path, concrete) === undefined) {
        return { ok: false, error: `${where}.smokeTestPath ${JSON.stringify(smokeTestPath)} does not match the route path ${JSON.stringify(path)}` };
      }
    }
    const expectedPhrase = entry.expectedPhrase as string | undefined;
    routes[functionId] = {
      method,
      path,
      ...(smokeTestPath === undefined ? {} : { smokeTestPath }),
      ...(expectedPhrase === undefined || expectedPhrase === '' ? {} : { expectedPhrase }),
    };
  }
  return { ok: true, value: routes };
}

/** Why a resource path template is invalid, or `undefined` when it is valid. */
function checkTemplate(template: string): string | undefined {
  if (!template.startsWith('/')) return 'must start with "/"';
  const segments = template.split('/').slice(1);
  for (let i = 0; i < segments.length; i++) {
    const segment = segments[i];
    const parameter = /^\{([^{}+/]+)(\+)?\}$/.exec(segment);
    if (parameter) {
      if (parameter[2] === '+' && i !== segments.length - 1) return 'may only have a greedy {name+} parameter as its last segment';
      continue;
    }
    if (/[{}]/.test(segment)) return 'must have parameters as whole segments, like /items/{id}';
    if (segment === '' && !(segments.length === 1)) return 'must not have empty segments or a trailing "/"';
  }
  return undefined;
}

/** True when the path template has `{...}` parameters. */
function hasParameters(template: string): boolean {
  return /\{[^}]*\}/.test(template);
}

/**
 * Matches a concrete path (no query string) against a resource path template, as API Gateway does: `{name}` takes one
 * non-empty segment, a last `{name+}` takes the rest (one segment or more). Returns the path parameters (empty when
 * the template has none), or `undefined` when the path does not match. Values are kept as written (not decoded).
 */
export function matchPath(template: string, path: string): Record<string, string> | undefined {
  const templateSegments = template.split('/');
  const pathSegments = path.split('/');
  if (templateSegments[0] !== '' || pathSegments[0] !== '') return undefined;
  const params: Record<string, string> = {};
  for (let i = 1; i < templateSegments.length; i++) {
    const segment = templateSegments[i];
    const parameter = /^\{([^{}+/]+)(\+)?\}$/.exec(segment);
    if (parameter && parameter[2] === '+') {
      const rest = pathSegments.slice(i);
      if (rest.length === 0 || rest.some((s) => s === '')) return undefined;
      params[parameter[1]] = rest.join('/');
      return params;
    }
    if (i >= pathSegments.length) return undefined;
    if (parameter) {
      if (pathSegments[i] === '') return undefined;
      params[parameter[1]] = pathSegments[i];
    } else if (segment !== pathSegments[i]) {
      return undefined;
    }
  }
  return pathSegments.length === templateSegments.length ? params : undefined;
}

function splitQuery(pathAndQuery: string): { path: string; query?: string } {
  const index = pathAndQuery.indexOf('?');
  return index < 0 ? { path: pathAndQuery } : { path: pathAndQuery.slice(0, index), query: pathAndQuery.slice(index + 1) };
}

// ---------------------------------------------------------------------------------------------------------------
// The proxy event
// ---------------------------------------------------------------------------------------------------------------

/** The API Gateway REST (v1) proxy event the hook sends: the fields of `APIGatewayProxyEvent` a handler relies on. */
export interface PreTrafficProxyEvent {
  readonly resource: string;
  readonly path: string;
  readonly httpMethod: string;
  readonly headers: Record<string, string>;
  readonly multiValueHeaders: Record<string, string[]>;
  readonly queryStringParameters: Record<string, string> | null;
  readonly multiValueQueryStringParameters: Record<string, string[]> | null;
  readonly pathParameters: Record<string, string> | null;
  readonly stageVariables: null;
  readonly requestContext: {
    readonly resourcePath: string;
    readonly httpMethod: string;
    readonly path: string;
    readonly stage: string;
    readonly requestId: string;
    readonly identity: { readonly sourceIp: string; readonly userAgent: string };
  };
  readonly body: null;
  readonly isBase64Encoded: false;
}

/**
 * The GET proxy event for `smokeTestPath` (optionally with a query string) on the resource `template`. `requestId` is
 * the CodeDeploy deployment id, so that the function's logs of the test can be found. Throws when the path does not
 * match the template (`parseRoutes` rules that out).
 */
export function buildProxyEvent(template: string, smokeTestPath: string, requestId: string): PreTrafficProxyEvent {
  const { path, query } = splitQuery(smokeTestPath);
  const params = matchPath(template, path);
  if (params === undefined) throw new Error(`${JSON.stringify(smokeTestPath)} does not match the route path ${JSON.stringify(template)}`);
  let queryStringParameters: Record<string, string> | null = null;
  let multiValueQueryStringParameters: Record<string, string[]> | null = null;
  if (query !== undefined && query !== '') {
    queryStringParameters = {};
    multiValueQueryStringParameters = {};
    for (const [key, value] of new URLSearchParams(query)) {
      queryStringParameters[key] = value;
      (multiValueQueryStringParameters[key] ??= []).push(value);
    }
  }
  return {
    resource: template,
    path,
    httpMethod: 'GET',
    headers: { 'user-agent': USER_AGENT },
    multiValueHeaders: { 'user-agent': [USER_AGENT] },
    queryStringParameters,
    multiValueQueryStringParameters,
    pathParameters: Object.keys(params).length === 0 ? null : params,
    stageVariables: null,
    requestContext: {
      resourcePath: template,
      httpMethod: 'GET',
      path,
      stage: STAGE,
      requestId,
      identity: { sourceIp: '127.0.0.1', userAgent: USER_AGENT },
    },
    body: null,
    isBase64Encoded: false,
  };
}

// ---------------------------------------------------------------------------------------------------------------
// The verdict on one invocation
// ---------------------------------------------------------------------------------------------------------------

/** What `evaluate` reads from the `Invoke` response. */
export interface InvokeResult {
  readonly FunctionError?: string;
  readonly Payload?: Uint8Array;
}

export interface Evaluation {
  readonly passed: boolean;
  /** One readable line, e.g. `answered 200, body contains "Welcome"`. */
  readonly detail: string;
  readonly statusCode?: number;
  /** From the payload of a `FunctionError`. */
  readonly errorType?: string;
  readonly errorMessage?: string;
}

/** Judges the response of the invocation (see the file comment, step 5). Never throws. */
export function evaluate(result: InvokeResult, expectedPhrase?: string): Evaluation {
  const text = result.Payload === undefined ? '' : new TextDecoder('utf-8').decode(result.Payload);
  let payload: unknown;
  let isJson = true;
  try {
    payload = JSON.parse(text);
  } catch {
    isJson = false;
  }

  if (result.FunctionError) {
    const record = isJson && isObject(payload) ? payload : {};
    const errorType = typeof record.errorType === 'string' ? record.errorType : undefined;
    const message = typeof record.errorMessage === 'string' ? clip(record.errorMessage, SNIPPET_LENGTH) : undefined;
    const what = [errorType, message].filter((s) => s !== undefined).join(': ') || `payload ${JSON.stringify(clip(text, SNIPPET_LENGTH))}`;
    return { passed: false, detail: `the function failed (FunctionError ${result.FunctionError}): ${what}`, errorType, errorMessage: message };
  }
  if (!isJson) {
    return { passed: false, detail: `the payload is not JSON, so not an API Gateway proxy response: ${JSON.stringify(clip(text, SNIPPET_LENGTH))}` };
  }
  if (!isObject(payload) || typeof payload.statusCode !== 'number') {
    return { passed: false, detail: `the payload is not an API Gateway proxy response (no numeric statusCode): ${clip(text, SNIPPET_LENGTH)}` };
  }
  const statusCode = payload.statusCode;
  if (!Number.isInteger(statusCode) || statusCode < 100 || statusCode > 599) {
    return { passed: false, statusCode, detail: `the payload's statusCode ${statusCode} is not an HTTP status` };
  }
  const body = payload.body;
  if (body !== undefined && body !== null && typeof body !== 'string') {
    return { passed: false, statusCode, detail: `answered ${statusCode} with a body that is not a string (API Gateway answers 502 to that): ${describeJson(body)}` };
  }
  let decoded = typeof body === 'string' ? body : '';
  if (payload.isBase64Encoded === true) decoded = Buffer.from(decoded, 'base64').toString('utf8');
  if (statusCode >= 500) {
    return { passed: false, statusCode, detail: `answered ${statusCode}: ${JSON.stringify(clip(decoded, SNIPPET_LENGTH))}` };
  }
  if (expectedPhrase !== undefined && expectedPhrase !== '') {
    if (!decoded.includes(expectedPhrase)) {
      return {
        passed: false,
        statusCode,
        detail: `answered ${statusCode} but the body does not contain ${JSON.stringify(expectedPhrase)}: ${JSON.stringify(clip(decoded, SNIPPET_LENGTH))}`,
      };
    }
    return { passed: true, statusCode, detail: `answered ${statusCode}, body contains ${JSON.stringify(expectedPhrase)}` };
  }
  return { passed: true, statusCode, detail: `answered ${statusCode}` };
}

// ---------------------------------------------------------------------------------------------------------------
// AWS calls: deadline, throttling
// ---------------------------------------------------------------------------------------------------------------

/** `withDeadline` with this hook's least call time. */
function callWithin<T>(send: (signal: AbortSignal) => Promise<T>, now: () => number, deadline: number | undefined): Promise<T> {
  return withDeadline(send, now, deadline, MIN_CALL_TIME_MS);
}

// ---------------------------------------------------------------------------------------------------------------
// The hook
// ---------------------------------------------------------------------------------------------------------------

interface CodeDeployHookEvent {
  readonly DeploymentId: string;
  readonly LifecycleEventHookExecutionId: string;
}

/** What `runPreTrafficHook` needs from the outside world; each defaults to the real thing. */
export interface PreTrafficDeps {
  /** @default `process.env` */
  readonly env?: Record<string, string | undefined>;
  /** @default `setTimeout` */
  readonly sleep?: (ms: number) => Promise<void>;
  /** @default `Date.now` */
  readonly now?: () => number;
  /** Time, on the `now` clock, by which the AWS calls before the report must be over. @default none */
  readonly deadline?: number;
}

/** The verdict, as reported to CodeDeploy (and returned, for tests and direct invokes). */
export interface PreTrafficResult {
  readonly status: Extract<LifecycleEventStatus, 'Succeeded' | 'Failed'>;
  /** One readable line. */
  readonly reason: string;
  /** Whether the new version was invoked. */
  readonly invoked: boolean;
}

function isCodeDeployEvent(event: unknown): event is CodeDeployHookEvent {
  return isObject(event) && typeof event.DeploymentId === 'string' && event.DeploymentId !== ''
    && typeof event.LifecycleEventHookExecutionId === 'string' && event.LifecycleEventHookExecutionId !== '';
}

/**
 * Tests the new version and reports the verdict to CodeDeploy (see the file comment). Rejects only when the event is
 * not a CodeDeploy lifecycle hook event (nothing to report to) or when reporting fails.
 */
export async function runPreTrafficHook(event: unknown, deps: PreTrafficDeps = {}): Promise<PreTrafficResult> {
  if (!isCodeDeployEvent(event)) {
    const error = new Error('not a CodeDeploy lifecycle hook event (DeploymentId, LifecycleEventHookExecutionId): nothing to report to');
    logError(error.message, undefined, { eventKeys: isObject(event) ? Object.keys(event) : typeof event });
    throw error;
  }
  const deploymentId = event.DeploymentId;
  const lifecycleEventHookExecutionId = event.LifecycleEventHookExecutionId;
  const fields: Record<string, unknown> = { deploymentId };
  let result: PreTrafficResult;
  try {
    result = await check(deploymentId, deps, fields);
  } catch (err) {
    // Defensive: `check` catches its own errors, but the verdict must be reported whatever happens.
    result = { status: 'Failed', reason: `unexpected error: ${describeError(err)}`, invoked: false };
  }
  log(result.status === 'Succeeded' ? 'INFO' : 'WARN', 'pre-traffic test result', { ...fields, ...result });
  try {
    await codeDeploy.send(new PutLifecycleEventHookExecutionStatusCommand({ deploymentId, lifecycleEventHookExecutionId, status: result.status }));
  } catch (err) {
    logError('could not report the pre-traffic test result to CodeDeploy', err, { deploymentId, lifecycleEventHookExecutionId, status: result.status });
    throw err;
  }
  return result;
}

/** Steps 1 to 5; adds what it learns to `fields` (for the log). Never throws. */
async function check(deploymentId: string, deps: PreTrafficDeps, fields: Record<string, unknown>): Promise<PreTrafficResult> {
  const now = deps.now ?? Date.now;
  const failed = (reason: string): PreTrafficResult => ({ status: 'Failed', reason, invoked: false });

  let description: unknown;
  try {
    const command = new GetDeploymentCommand({ deploymentId });
    const response = await callWithin((abortSignal) => codeDeploy.send(command, { abortSignal }), now, deps.deadline);
    description = response.deploymentInfo?.description;
  } catch (err) {
    return failed(`codedeploy:GetDeployment ${deploymentId} failed: ${describeError(err)}`);
  }
  const target = parseDescription(description);
  if (!target.ok) return failed(target.error);
  const { functionId, functionName, targetVersion } = target.value;
  Object.assign(fields, target.value);

  const routes = parseRoutes((deps.env ?? process.env).ROUTES);
  if (!routes.ok) return failed(`invalid configuration: ${routes.error}`);
  const route = Object.prototype.hasOwnProperty.call(routes.value, functionId) ? routes.value[functionId] : undefined;
  if (route === undefined) {
    const known = Object.keys(routes.value);
    return failed(`ROUTES has no route for functionId ${JSON.stringify(functionId)} (known: ${known.join(', ') || 'none'})`);
  }
  Object.assign(fields, { method: route.method, path: route.path });

  if (!SAFE_METHODS.has(route.method)) {
    return { status: 'Succeeded', reason: `not invoked: ${route.method} ${route.path} could change data, only GET, HEAD and ANY routes are smoke-tested`, invoked: false };
  }
  const smokeTestPath = route.smokeTestPath ?? (hasParameters(route.path) ? undefined : route.path);
  if (smokeTestPath === undefined) {
    return { status: 'Succeeded', reason: `not smoke-tested: ${route.path} has path parameters and the route has no smokeTestPath`, invoked: false };
  }
  fields.smokeTestPath = smokeTestPath;

  const proxyEvent = buildProxyEvent(route.path, smokeTestPath, deploymentId);
  const what = `GET ${smokeTestPath} on ${functionName}:${targetVersion}`;
  let response: InvokeCommandOutput;
  try {
    response = await invoke(functionName, targetVersion, proxyEvent, deps, fields);
  } catch (err) {
    return { status: 'Failed', reason: `${what}: lambda:Invoke failed: ${describeError(err)}`, invoked: true };
  }
  fields.executedVersion = response.ExecutedVersion;
  const evaluation = evaluate(response, route.expectedPhrase);
  if (evaluation.statusCode !== undefined) fields.statusCode = evaluation.statusCode;
  if (evaluation.errorType !== undefined) fields.errorType = evaluation.errorType;
  if (evaluation.errorMessage !== undefined) fields.errorMessage = evaluation.errorMessage;
  return { status: evaluation.passed ? 'Succeeded' : 'Failed', reason: `${what} ${evaluation.detail}`, invoked: true };
}

/** `Invoke` of the version, retrying throttling after the pauses of `THROTTLE_RETRY_DELAYS_MS`, within the deadline. */
async function invoke(
  functionName: string,
  version: string,
  proxyEvent: PreTrafficProxyEvent,
  deps: PreTrafficDeps,
  fields: Record<string, unknown>,
): Promise<InvokeCommandOutput> {
  const now = deps.now ?? Date.now;
  const sleep = deps.sleep ?? defaultSleep;
  const payload = new TextEncoder().encode(JSON.stringify(proxyEvent));
  for (let attempt = 1; ; attempt++) {
    try {
      return await callWithin((abortSignal) => lambdaClient.send(new InvokeCommand({
        FunctionName: functionName,
        Qualifier: version,
        InvocationType: 'RequestResponse',
        Payload: payload,
      }), { abortSignal }), now, deps.deadline);
    } catch (err) {
      const delayMs = THROTTLE_RETRY_DELAYS_MS[attempt - 1];
      if (!isThrottling(err) || delayMs === undefined) throw err;
      if (deps.deadline !== undefined && now() + delayMs + MIN_CALL_TIME_MS > deps.deadline) throw err;
      log('WARN', 'lambda:Invoke throttled: trying again', { ...fields, attempt, delayMs, error: describeError(err) });
      await sleep(delayMs);
    }
  }
}

/** Lambda entry point: `runPreTrafficHook` with the Lambda deadline, less the time needed to report. */
export async function handler(event: unknown, context?: Pick<Context, 'getRemainingTimeInMillis'>): Promise<PreTrafficResult> {
  const remaining = typeof context?.getRemainingTimeInMillis === 'function' ? context.getRemainingTimeInMillis() : undefined;
  return runPreTrafficHook(event, { deadline: remaining === undefined ? undefined : Date.now() + remaining - REPORTING_MARGIN_MS });
}

// ---------------------------------------------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------------------------------------------


