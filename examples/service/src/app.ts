/**
 * The workshop's sample service: a tiny HTTP API on Node's own `http` module.
 *
 * The route logic lives in pure functions — `routeRequest(method, path, deps)` returns a `ServiceResponse`
 * (`{ statusCode, headers, body }`) and never touches a socket — so the same code can run behind the HTTP server
 * below (Fargate, EC2) or inside an AWS Lambda handler. `createServer` is only a thin adapter over it.
 */
import * as http from 'http';
import { GetParameterCommand, SSMClient } from '@aws-sdk/client-ssm';

export const DEFAULT_WELCOME_PHRASE = 'Welcome to the delivery pipelines sample service';
export const DEFAULT_VERSION = 'dev';
/** How long `/secret` waits for Parameter Store before answering 504. */
export const DEFAULT_SECRET_TIMEOUT_MS = 3_000;
/** The largest value `/sleep/{secs}` accepts. */
export const MAX_SLEEP_SECONDS = 30;

export interface ServiceOptions {
  /** Shown on the welcome page. @default env WELCOME_PHRASE, else DEFAULT_WELCOME_PHRASE */
  readonly welcomePhrase?: string;
  /** Reported by `/` and `/healthcheck`. @default env APP_VERSION, else 'dev' */
  readonly version?: string;
  /** Name of the SecureString parameter `/secret` describes. @default env SECRET_PARAMETER_NAME, else none (503) */
  readonly secretParameterName?: string;
  /** SSM client used by `/secret`. @default a new SSMClient with the default credential and region chain */
  readonly ssmClient?: SSMClient;
  /** Waits `ms` milliseconds; `/sleep` uses it. Inject a fake in tests. @default setTimeout based */
  readonly sleep?: (ms: number) => Promise<void>;
  /** Time limit for the Parameter Store call. @default 3000 */
  readonly secretTimeoutMs?: number;
  /** Where server-side errors are reported (never sent to clients). @default console */
  readonly logger?: Pick<Console, 'error'>;
}

/** Everything the routes need, with all defaults applied. */
export interface ServiceDeps {
  readonly welcomePhrase: string;
  readonly version: string;
  readonly secretParameterName?: string;
  readonly ssm: SSMClient;
  readonly sleep: (ms: number) => Promise<void>;
  readonly secretTimeoutMs: number;
  readonly logger: Pick<Console, 'error'>;
}

export interface ServiceResponse {
  readonly statusCode: number;
  readonly headers: Record<string, string>;
  readonly body: string;
}

type RouteHandler = (deps: ServiceDeps, param: string) => Promise<ServiceResponse>;

interface Route {
  /** Matches the request path; returns the path parameter ('' when there is none), or undefined for no match. */
  readonly match: (path: string) => string | undefined;
  readonly methods: readonly string[];
  readonly handler: RouteHandler;
}

const SECURITY_HEADERS: Record<string, string> = {
  'X-Content-Type-Options': 'nosniff',
  'Cache-Control': 'no-store',
};

const realSleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Applies the defaults: explicit option, then environment variable, then built-in default. */
export function resolveDeps(options: ServiceOptions = {}, env: NodeJS.ProcessEnv = process.env): ServiceDeps {
  return {
    welcomePhrase: options.welcomePhrase ?? (env.WELCOME_PHRASE || DEFAULT_WELCOME_PHRASE),
    version: options.version ?? (env.APP_VERSION || DEFAULT_VERSION),
    secretParameterName: options.secretParameterName ?? (env.SECRET_PARAMETER_NAME || undefined),
    ssm: options.ssmClient ?? new SSMClient({}),
    sleep: options.sleep ?? realSleep,
    secretTimeoutMs: options.secretTimeoutMs ?? DEFAULT_SECRET_TIMEOUT_MS,
    logger: options.logger ?? console,
  };
}

/** Escapes the five HTML special characters. */
export function escapeHtml(value: string): string {
  return value
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;');
}

export function jsonResponse(statusCode: number, payload: unknown, headers: Record<string, string> = {}): ServiceResponse {
  return {
    statusCode,
    headers: { ...SECURITY_HEADERS, 'Content-Type': 'application/json; charset=utf-8', ...headers },
    body: JSON.stringify(payload),
  };
}

function htmlResponse(statusCode: number, html: string): ServiceResponse {
  return {
    statusCode,
    headers: {
      ...SECURITY_HEADERS,
      'Content-Type': 'text/html; charset=utf-8',
      'Content-Security-Policy': "default-src 'none'; style-src 'unsafe-inline'",
    },
    body: html,
  };
}

/** Quotes a user-supplied value for an error message, cut short so a long path cannot blow up the response. */
function quote(value: string): string {
  const shown = value.length > 40 ? `${value.slice(0, 40)}...` : value;
  return JSON.stringify(shown);
}

// ---------------------------------------------------------------------------------------------------------------
// Routes
// ---------------------------------------------------------------------------------------------------------------

export async function welcome(deps: ServiceDeps): Promise<ServiceResponse> {
  const phrase = escapeHtml(deps.welcomePhrase);
  const version = escapeHtml(deps.version);
  return htmlResponse(200, [
    '<!DOCTYPE html>',
    '<html lang="en">',
    '<head>',
    '<meta charset="utf-8">',
    `<title>${phrase}</title>`,
    '<style>body{font-family:sans-serif;margin:3rem;}</style>',
    '</head>',
    '<body>',
    `<h1>${phrase}</h1>`,
    `<p>Version: <code>${version}</code></p>`,
    '</body>',
    '</html>',
    '',
  ].join('\n'));
}

export async function healthcheck(deps: ServiceDeps): Promise<ServiceResponse> {
  return jsonResponse(200, { status: 'ok', version: deps.version });
}

/**
 * Parses the `{secs}` of `/sleep/{secs}`: ASCII digits only (no sign, no decimal point, no whitespace), 0..30.
 * Returns the number of seconds, or an error message naming the value and the allowed range.
 */
export function parseSleepSeconds(raw: string): { readonly seconds: number } | { readonly error: string } {
  const range = `an integer number of seconds from 0 to ${MAX_SLEEP_SECONDS}`;
  if (raw === '') {
    return { error: `Missing sleep duration: use /sleep/{secs} with ${range}` };
  }
  if (!/^[0-9]+$/.test(raw)) {
    return { error: `Invalid sleep duration ${quote(raw)}: must be ${range}` };
  }
  const seconds = Number(raw);
  if (seconds > MAX_SLEEP_SECONDS) {
    return { error: `Invalid sleep duration ${quote(raw)}: must be ${range}` };
  }
  return { seconds };
}

export async function sleepRoute(deps: ServiceDeps, raw: string): Promise<ServiceResponse> {
  const parsed = parseSleepSeconds(raw);
  if ('error' in parsed) {
    return jsonResponse(400, { error: parsed.error });
  }
  await deps.sleep(parsed.seconds * 1000);
  return jsonResponse(200, { slept: parsed.seconds });
}

class SecretTimeoutError extends Error {
  constructor(ms: number) {
    super(`GetParameter did not answer within ${ms} ms`);
    this.name = 'SecretTimeoutError';
  }
}

/**
 * Describes the configured SecureString parameter: its name and version, never its value. The parameter is read
 * with `WithDecryption: false`, so the role needs `ssm:GetParameter` only (no `kms:Decrypt`) and the plaintext
 * never even reaches this process.
 */
export async function secretRoute(deps: ServiceDeps): Promise<ServiceResponse> {
  const name = deps.secretParameterName;
  if (!name) {
    return jsonResponse(503, { error: 'No secret parameter is configured (set SECRET_PARAMETER_NAME)' });
  }

  const controller = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      // Abort the SDK call too, so the socket is not left hanging, and answer without waiting for it.
      controller.abort();
      reject(new SecretTimeoutError(deps.secretTimeoutMs));
    }, deps.secretTimeoutMs);
  });

  try {
    const output = await Promise.race([
      deps.ssm.send(new GetParameterCommand({ Name: name, WithDecryption: false }), { abortSignal: controller.signal }),
      timeout,
    ]);
    return jsonResponse(200, {
      name: output.Parameter?.Name ?? name,
      version: output.Parameter?.Version ?? null,
    });
  } catch (err) {
    const errorName = err instanceof Error ? err.name : 'UnknownError';
    deps.logger.error(`GET /secret: reading parameter ${name} failed: ${errorName}: ${err instanceof Error ? err.message : String(err)}`);
    return secretErrorResponse(errorName);
  } finally {
    clearTimeout(timer);
  }
}

/** Maps an SSM failure to a response that says what went wrong without leaking SDK internals. */
function secretErrorResponse(errorName: string): ServiceResponse {
  switch (errorName) {
    case 'ParameterNotFound':
    case 'ParameterVersionNotFound':
      return jsonResponse(404, { error: 'The configured secret parameter does not exist' });
    case 'AccessDeniedException':
      return jsonResponse(502, { error: 'The service is not allowed to read the secret parameter' });
    case 'SecretTimeoutError':
    case 'AbortError':
    case 'TimeoutError':
      return jsonResponse(504, { error: 'Timed out reading the secret parameter' });
    case 'ThrottlingException':
    case 'TooManyRequestsException':
      return jsonResponse(502, { error: 'Parameter Store is throttling requests; try again later' });
    default:
      return jsonResponse(502, { error: 'Could not read the secret parameter' });
  }
}

const ROUTES: readonly Route[] = [
  {
    match: (path) => (path === '/' ? '' : undefined),
    methods: ['GET', 'HEAD'],
    handler: (deps) => welcome(deps),
  },
  {
    match: (path) => (path === '/healthcheck' ? '' : undefined),
    methods: ['GET', 'HEAD'],
    handler: (deps) => healthcheck(deps),
  },
  {
    // `/sleep` and `/sleep/` are matched too, so a missing value gets a 400 that explains the route.
    match: (path) => {
      const m = /^\/sleep(?:\/(.*))?$/s.exec(path);
      return m ? decodePathSegment(m[1] ?? '') : undefined;
    },
    methods: ['GET'],
    handler: (deps, param) => sleepRoute(deps, param),
  },
  {
    match: (path) => (path === '/secret' ? '' : undefined),
    methods: ['GET'],
    handler: (deps) => secretRoute(deps),
  },
];

function decodePathSegment(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}

/**
 * The router: pure apart from what `deps` does (sleep, SSM). `path` is the URL path without the query string,
 * still percent-encoded. HEAD is answered like GET; the transport is responsible for dropping the body.
 */
export async function routeRequest(method: string, path: string, deps: ServiceDeps): Promise<ServiceResponse> {
  const verb = method.toUpperCase();
  for (const route of ROUTES) {
    const param = route.match(path);
    if (param === undefined) {
      continue;
    }
    if (!route.methods.includes(verb)) {
      return jsonResponse(405, { error: `Method ${verb} is not allowed on this path` }, { Allow: route.methods.join(', ') });
    }
    return route.handler(deps, param);
  }
  return jsonResponse(404, { error: 'Not found' });
}

/** The path part of a request target: origin-form (`/a?b`) or absolute-form (`http://host/a?b`). */
export function pathOf(requestTarget: string): string {
  const end = requestTarget.search(/[?#]/);
  const target = end === -1 ? requestTarget : requestTarget.slice(0, end);
  if (target.startsWith('/')) {
    return target;
  }
  try {
    return new URL(target).pathname;
  } catch {
    return target;
  }
}

/** Creates (but does not start) the HTTP server: a thin adapter over `routeRequest`. */
export function createServer(options: ServiceOptions = {}): http.Server {
  const deps = resolveDeps(options);
  return http.createServer((req, res) => {
    // Nothing reads request bodies; drain them so keep-alive connections stay usable.
    req.resume();
    const method = req.method ?? 'GET';
    routeRequest(method, pathOf(req.url ?? '/'), deps)
      .catch((err: unknown): ServiceResponse => {
        deps.logger.error(`${method} ${req.url}: unhandled error: ${err instanceof Error ? err.stack : String(err)}`);
        return jsonResponse(500, { error: 'Internal server error' });
      })
      .then((response) => {
        if (res.headersSent || res.destroyed) {
          return;
        }
        res.writeHead(response.statusCode, {
          ...response.headers,
          'Content-Length': Buffer.byteLength(response.body),
        });
        res.end(method.toUpperCase() === 'HEAD' ? undefined : response.body);
      })
      .catch((err: unknown) => {
        deps.logger.error(`${method} ${req.url}: could not write the response: ${String(err)}`);
        res.destroy();
      });
  });
}
