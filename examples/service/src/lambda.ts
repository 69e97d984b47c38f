/**
 * The sample service as an AWS Lambda handler behind API Gateway (REST API, proxy integration): a thin adapter over
 * the same `routeRequest` the HTTP server uses, so the serverless example runs the very same routes.
 */
import { resolveDeps, routeRequest, ServiceDeps } from './app';

/** The part of an API Gateway REST proxy event the adapter reads. */
export interface ProxyEvent {
  readonly httpMethod: string;
  /** The request path without the stage, e.g. `/sleep/3`. */
  readonly path: string;
}

/** What API Gateway expects back from a proxy integration. */
export interface ProxyResult {
  readonly statusCode: number;
  readonly headers: Record<string, string>;
  readonly body: string;
}

let deps: ServiceDeps | undefined;

/** Answers one API Gateway request with the sample service's routes. HEAD gets the headers of GET and no body. */
export async function handler(event: ProxyEvent): Promise<ProxyResult> {
  deps ??= resolveDeps();
  const response = await routeRequest(event.httpMethod, event.path, deps);
  return {
    statusCode: response.statusCode,
    headers: response.headers,
    body: event.httpMethod.toUpperCase() === 'HEAD' ? '' : response.body,
  };
}

/** For tests: forget the dependencies resolved from the environment. */
export function resetForTests(): void {
  deps = undefined;
}
