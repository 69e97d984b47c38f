/**
 * Answers a CloudFormation custom resource request: the response JSON PUT to the pre-signed `ResponseURL`, with a
 * timeout per attempt and a few retries (CloudFormation User Guide, "Custom resources", crpg-ref-responses). Without a
 * response CloudFormation waits for up to an hour, so the handlers always respond, also on bad input.
 */
import * as http from 'http';
import * as https from 'https';
import { clip, defaultSleep, describeError, isObject, log, logError } from './common';

/** Longest `Reason` sent (CloudFormation shows it in the stack events; the response must stay under 4 KB). */
export const REASON_LIMIT = 1000;
/** PUT attempts, and the timeout of each. */
export const RESPONSE_ATTEMPTS = 4;
export const RESPONSE_TIMEOUT_MS = 10_000;
/** Pause before the n-th retry of the PUT: RETRY_DELAY_MS × n. */
export const RETRY_DELAY_MS = 1_000;

export interface CloudFormationResponse {
  readonly Status: 'SUCCESS' | 'FAILED';
  readonly Reason: string;
  readonly PhysicalResourceId: string;
  readonly StackId: string;
  readonly RequestId: string;
  readonly LogicalResourceId: string;
}

/** How the response is sent; each defaults to the real thing. */
export interface ResponseDeps {
  /** PUTs `body` to `url`; resolves on a 2xx, rejects otherwise. @default node's http(s), `RESPONSE_TIMEOUT_MS` */
  readonly put?: (url: string, body: string) => Promise<void>;
  /** @default `setTimeout` */
  readonly sleep?: (ms: number) => Promise<void>;
}

/** The request's `ResponseURL` when it is an http(s) URL. */
export function responseUrlOf(request: Record<string, unknown>): string | undefined {
  return typeof request.ResponseURL === 'string' && /^https?:\/\//.test(request.ResponseURL) ? request.ResponseURL : undefined;
}

/** The response to `request` with this status, reason and physical id (the reason clipped to `REASON_LIMIT`). */
export function responseTo(
  request: Record<string, unknown>,
  verdict: { readonly status: 'SUCCESS' | 'FAILED'; readonly reason: string },
  physicalResourceId: string,
): CloudFormationResponse {
  return {
    Status: verdict.status,
    Reason: clip(verdict.reason, REASON_LIMIT),
    PhysicalResourceId: physicalResourceId,
    StackId: String(request.StackId ?? ''),
    RequestId: String(request.RequestId ?? ''),
    LogicalResourceId: String(request.LogicalResourceId ?? ''),
  };
}

/** What a custom resource handler decided: the status and reason CloudFormation gets, and anything it reports. */
export interface CustomResourceVerdict {
  readonly status: 'SUCCESS' | 'FAILED';
  readonly reason: string;
}

/** One custom resource handler, for `answerCustomResource`. */
export interface CustomResourceHandler<V extends CustomResourceVerdict> {
  /** Names the handler in the logs (`release cleanup`). */
  readonly who: string;
  /** The physical id to answer with (the event's own on Update and Delete, so nothing is ever replaced). */
  readonly physicalId: (request: Record<string, unknown>) => string;
  /** The decision; it answers its own errors. */
  readonly decide: (request: Record<string, unknown>) => Promise<V>;
  /** The verdict when `decide` throws anyway (defensive): a Delete should succeed, or the stack cannot be deleted. */
  readonly onError: (request: Record<string, unknown>, error: unknown) => V;
  /** What the outcome adds to the log line. */
  readonly logFields?: (verdict: V, request: Record<string, unknown>) => Record<string, unknown>;
}

/**
 * The envelope every custom resource handler shares: no `ResponseURL`, nothing to answer (logged, `undefined`;
 * throwing would only make Lambda run it again); else decide, log the verdict, answer CloudFormation, and return the
 * verdict with its physical id.
 */
export async function answerCustomResource<V extends CustomResourceVerdict>(
  event: unknown,
  handler: CustomResourceHandler<V>,
  deps: ResponseDeps = {},
): Promise<(V & { readonly physicalResourceId: string }) | undefined> {
  const request = isObject(event) ? event : {};
  const responseUrl = responseUrlOf(request);
  const fields = { requestType: request.RequestType, logicalResourceId: request.LogicalResourceId, stackId: request.StackId };
  if (responseUrl === undefined) {
    logError('not a CloudFormation custom resource request (no ResponseURL): nothing to respond to', undefined, fields);
    return undefined;
  }
  const physicalResourceId = handler.physicalId(request);
  let verdict: V;
  try {
    verdict = await handler.decide(request);
  } catch (err) {
    verdict = handler.onError(request, err);
  }
  const response = responseTo(request, verdict, physicalResourceId);
  log(verdict.status === 'SUCCESS' ? 'INFO' : 'WARN', handler.who, {
    ...fields, status: verdict.status, reason: response.Reason, ...handler.logFields?.(verdict, request),
  });
  await respond(responseUrl, JSON.stringify(response), handler.who, deps);
  return { ...verdict, physicalResourceId };
}

/** The resource properties of a request, or `{}`. */
export function propertiesOf(request: Record<string, unknown>): Record<string, unknown> {
  return isObject(request.ResourceProperties) ? request.ResourceProperties : {};
}

/** PUTs the response, retrying failures; throws when every attempt failed. `who` names the handler in the logs. */
export async function respond(url: string, body: string, who: string, deps: ResponseDeps = {}): Promise<void> {
  const put = deps.put ?? ((u: string, b: string) => putJson(u, b, RESPONSE_TIMEOUT_MS));
  const sleep = deps.sleep ?? defaultSleep;
  let lastError: unknown;
  for (let attempt = 1; attempt <= RESPONSE_ATTEMPTS; attempt++) {
    try {
      await put(url, body);
      return;
    } catch (err) {
      lastError = err;
      log('WARN', `${who}: response PUT failed`, { attempt, error: describeError(err) });
      if (attempt < RESPONSE_ATTEMPTS) await sleep(RETRY_DELAY_MS * attempt);
    }
  }
  logError(`${who}: could not respond to CloudFormation`, lastError, { attempts: RESPONSE_ATTEMPTS });
  throw new Error(`could not respond to CloudFormation after ${RESPONSE_ATTEMPTS} attempts: ${describeError(lastError)}`);
}

/**
 * PUTs `body` to `url` as CloudFormation expects (no content type, explicit length); resolves on a 2xx, rejects on
 * anything else, a network error or after `timeoutMs`.
 */
export function putJson(url: string, body: string, timeoutMs: number): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const target = new URL(url);
    const send = target.protocol === 'http:' ? http.request : https.request;
    const request = send(target, {
      method: 'PUT',
      headers: { 'content-type': '', 'content-length': Buffer.byteLength(body) },
      timeout: timeoutMs,
    }, (response) => {
      response.resume(); // drain, so the socket is freed
      response.on('end', () => {
        const status = response.statusCode ?? 0;
        if (status >= 200 && status < 300) resolve();
        else reject(new Error(`HTTP ${status} ${response.statusMessage ?? ''}`.trim()));
      });
      response.on('error', reject);
    });
    request.on('timeout', () => request.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    request.on('error', reject);
    request.end(body);
  });
}
