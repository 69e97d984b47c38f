import * as http from 'http';
import { AddressInfo } from 'net';
import { GetParameterCommand, ParameterNotFound, SSMClient } from '@aws-sdk/client-ssm';
import { mockClient } from 'aws-sdk-client-mock';
import 'aws-sdk-client-mock-jest';
import {
  createServer,
  DEFAULT_SECRET_TIMEOUT_MS,
  DEFAULT_VERSION,
  DEFAULT_WELCOME_PHRASE,
  escapeHtml,
  parseSleepSeconds,
  pathOf,
  resolveDeps,
  routeRequest,
  ServiceDeps,
  ServiceOptions,
} from '../src/app';

const PARAMETER_NAME = '/delivery-pipelines/sample/secret';
const SECRET_VALUE = 'super-secret-plaintext-value-42';

const ssmMock = mockClient(SSMClient);

/** An SDK-style error (what the SDK throws for a service error it has no class for). */
function awsError(name: string, message: string): Error {
  return Object.assign(new Error(message), { name, $fault: 'client', $metadata: { httpStatusCode: 400 } });
}

function fakeSleep() {
  return jest.fn((_ms: number) => Promise.resolve());
}

function quietLogger() {
  return { error: jest.fn() };
}

function newSsmClient(): SSMClient {
  return new SSMClient({ region: 'eu-west-1', credentials: { accessKeyId: 'AKIDTEST', secretAccessKey: 'test' } });
}

/** Dependencies for the pure router, with no environment involved. */
function deps(overrides: ServiceOptions = {}): ServiceDeps {
  return resolveDeps({ ssmClient: newSsmClient(), sleep: fakeSleep(), logger: quietLogger(), ...overrides }, {});
}

beforeEach(() => {
  ssmMock.reset();
});

describe('pure router', () => {
  test('resolveDeps: explicit options win over the environment, which wins over the defaults', () => {
    const env = { WELCOME_PHRASE: 'Hi from env', APP_VERSION: '1.2.3', SECRET_PARAMETER_NAME: '/from/env' };
    const fromEnv = resolveDeps({}, env);
    expect(fromEnv.welcomePhrase).toBe('Hi from env');
    expect(fromEnv.version).toBe('1.2.3');
    expect(fromEnv.secretParameterName).toBe('/from/env');
    expect(fromEnv.secretTimeoutMs).toBe(DEFAULT_SECRET_TIMEOUT_MS);

    const explicit = resolveDeps({ welcomePhrase: 'Hi', version: '9', secretParameterName: '/explicit' }, env);
    expect(explicit.welcomePhrase).toBe('Hi');
    expect(explicit.version).toBe('9');
    expect(explicit.secretParameterName).toBe('/explicit');

    const defaults = resolveDeps({}, { WELCOME_PHRASE: '', SECRET_PARAMETER_NAME: '' });
    expect(defaults.welcomePhrase).toBe(DEFAULT_WELCOME_PHRASE);
    expect(defaults.version).toBe(DEFAULT_VERSION);
    expect(defaults.secretParameterName).toBeUndefined();
  });

  test('GET / returns the escaped welcome page with the version', async () => {
    const res = await routeRequest('GET', '/', deps({ welcomePhrase: 'Tom & <Jerry>', version: 'v"1"' }));
    expect(res.statusCode).toBe(200);
    expect(res.headers['Content-Type']).toBe('text/html; charset=utf-8');
    expect(res.body).toContain('<h1>Tom &amp; &lt;Jerry&gt;</h1>');
    expect(res.body).toContain('v&quot;1&quot;');
    expect(res.body).not.toContain('<Jerry>');
  });

  test('GET /healthcheck returns status and version', async () => {
    const res = await routeRequest('GET', '/healthcheck', deps({ version: '2.0.0' }));
    expect(res.statusCode).toBe(200);
    expect(res.headers['Content-Type']).toBe('application/json; charset=utf-8');
    expect(JSON.parse(res.body)).toEqual({ status: 'ok', version: '2.0.0' });
  });

  test('HEAD is allowed on / and /healthcheck and answered like GET', async () => {
    expect((await routeRequest('HEAD', '/', deps())).statusCode).toBe(200);
    expect((await routeRequest('head', '/healthcheck', deps())).statusCode).toBe(200);
  });

  test('GET /sleep/{secs} sleeps secs * 1000 ms through the injected sleep', async () => {
    const sleep = fakeSleep();
    const res = await routeRequest('GET', '/sleep/7', deps({ sleep }));
    expect(res.statusCode).toBe(200);
    expect(JSON.parse(res.body)).toEqual({ slept: 7 });
    expect(sleep).toHaveBeenCalledTimes(1);
    expect(sleep).toHaveBeenCalledWith(7000);
  });

  test.each([
    ['0', 0],
    ['30', 30],
    ['05', 5],
  ])('parseSleepSeconds accepts %j', (raw, seconds) => {
    expect(parseSleepSeconds(raw)).toEqual({ seconds });
  });

  test.each(['-1', '31', 'abc', '1.5', '01x', '', '+1', ' 1', '1 ', '1e1', '0x1', '１', '99999999999999999999999'])(
    'parseSleepSeconds rejects %j with a message naming the allowed range',
    (raw) => {
      const parsed = parseSleepSeconds(raw);
      expect(parsed).toEqual({ error: expect.stringContaining('from 0 to 30') });
    },
  );

  test('a bad sleep value is quoted in the message and long values are cut short', async () => {
    const sleep = fakeSleep();
    const res = await routeRequest('GET', `/sleep/${'9'.repeat(100)}`, deps({ sleep }));
    expect(res.statusCode).toBe(400);
    const { error } = JSON.parse(res.body);
    expect(error).toContain(`"${'9'.repeat(40)}..."`);
    expect(error).not.toContain('9'.repeat(41));
    expect(sleep).not.toHaveBeenCalled();
  });

  test('the sleep value is percent-decoded before validation', async () => {
    expect((await routeRequest('GET', '/sleep/%32', deps())).statusCode).toBe(200);
    const res = await routeRequest('GET', '/sleep/%E0%A4%A', deps());
    expect(res.statusCode).toBe(400);
    expect(JSON.parse(res.body).error).toContain('"%E0%A4%A"');
  });

  test('unknown paths are 404 and known paths with other methods are 405 with Allow', async () => {
    const notFound = await routeRequest('GET', '/nope', deps());
    expect(notFound.statusCode).toBe(404);
    expect(JSON.parse(notFound.body)).toEqual({ error: 'Not found' });
    expect((await routeRequest('GET', '/healthcheck/', deps())).statusCode).toBe(404);
    expect((await routeRequest('GET', '/sleeper', deps())).statusCode).toBe(404);

    const post = await routeRequest('POST', '/', deps());
    expect(post.statusCode).toBe(405);
    expect(post.headers.Allow).toBe('GET, HEAD');
    const del = await routeRequest('DELETE', '/sleep/1', deps());
    expect(del.statusCode).toBe(405);
    expect(del.headers.Allow).toBe('GET');
    expect((await routeRequest('HEAD', '/secret', deps())).headers.Allow).toBe('GET');
  });

  test('GET /secret returns name and version only', async () => {
    ssmMock.on(GetParameterCommand).resolves({
      Parameter: { Name: PARAMETER_NAME, Type: 'SecureString', Value: SECRET_VALUE, Version: 3 },
    });
    const res = await routeRequest('GET', '/secret', deps({ secretParameterName: PARAMETER_NAME }));
    expect(res.statusCode).toBe(200);
    expect(JSON.parse(res.body)).toEqual({ name: PARAMETER_NAME, version: 3 });
    expect(res.body).not.toContain(SECRET_VALUE);
  });

  test('pathOf strips the query string and handles absolute-form targets', () => {
    expect(pathOf('/sleep/3?x=1')).toBe('/sleep/3');
    expect(pathOf('/healthcheck#frag')).toBe('/healthcheck');
    expect(pathOf('http://example.com/secret?a=b')).toBe('/secret');
    expect(pathOf('//evil.example/')).toBe('//evil.example/');
    expect(pathOf('*')).toBe('*');
  });

  test('escapeHtml escapes the five special characters', () => {
    expect(escapeHtml('<a href="x">\'&\'</a>')).toBe('&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;');
  });
});

describe('HTTP server on loopback', () => {
  let server: http.Server | undefined;

  async function start(options: ServiceOptions = {}): Promise<string> {
    server = createServer({ ssmClient: newSsmClient(), sleep: fakeSleep(), logger: quietLogger(), ...options });
    const s = server;
    await new Promise<void>((resolve, reject) => {
      s.once('error', reject);
      s.listen(0, '127.0.0.1', () => resolve());
    });
    const { port } = s.address() as AddressInfo;
    return `http://127.0.0.1:${port}`;
  }

  afterEach(async () => {
    const s = server;
    server = undefined;
    if (s) {
      s.closeAllConnections();
      await new Promise<void>((resolve) => s.close(() => resolve()));
    }
  });

  test('createServer does not listen by itself', () => {
    server = createServer({ ssmClient: newSsmClient() });
    expect(server.listening).toBe(false);
  });

  test('GET / serves the welcome phrase and version', async () => {
    const base = await start({ welcomePhrase: 'Hello from the workshop', version: '1.4.2' });
    const res = await fetch(`${base}/`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(res.headers.get('x-content-type-options')).toBe('nosniff');
    const body = await res.text();
    expect(body).toContain('Hello from the workshop');
    expect(body).toContain('1.4.2');
  });

  test('GET / uses the default phrase when none is configured', async () => {
    const previous = process.env.WELCOME_PHRASE;
    delete process.env.WELCOME_PHRASE;
    try {
      const base = await start();
      expect(await (await fetch(`${base}/`)).text()).toContain(DEFAULT_WELCOME_PHRASE);
    } finally {
      if (previous !== undefined) {
        process.env.WELCOME_PHRASE = previous;
      }
    }
  });

  test('GET / HTML-escapes the welcome phrase', async () => {
    const base = await start({ welcomePhrase: 'Hi <script>alert("x")</script> & \'friends\'' });
    const body = await (await fetch(`${base}/`)).text();
    expect(body).toContain('Hi &lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;friends&#39;');
    expect(body).not.toContain('<script>');
  });

  test('HEAD / answers 200 without a body', async () => {
    const base = await start();
    const res = await fetch(`${base}/`, { method: 'HEAD' });
    expect(res.status).toBe(200);
    expect(await res.text()).toBe('');
  });

  test('GET /healthcheck returns JSON status and version', async () => {
    const base = await start({ version: '3.1.0' });
    const res = await fetch(`${base}/healthcheck?probe=alb`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/json; charset=utf-8');
    expect(await res.json()).toEqual({ status: 'ok', version: '3.1.0' });
  });

  test.each([0, 2, 30])('GET /sleep/%d sleeps through the injected function', async (secs) => {
    const sleep = fakeSleep();
    const base = await start({ sleep });
    const res = await fetch(`${base}/sleep/${secs}`);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ slept: secs });
    expect(sleep).toHaveBeenCalledTimes(1);
    expect(sleep).toHaveBeenCalledWith(secs * 1000);
  });

  test.each(['-1', '31', 'abc', '1.5', '01x', ''])('GET /sleep/%j is a 400 with a clear message', async (value) => {
    const sleep = fakeSleep();
    const base = await start({ sleep });
    const res = await fetch(`${base}/sleep/${value}`);
    expect(res.status).toBe(400);
    expect(res.headers.get('content-type')).toBe('application/json; charset=utf-8');
    const { error } = await res.json() as { error: string };
    expect(error).toContain('from 0 to 30');
    if (value !== '') {
      expect(error).toContain(JSON.stringify(value));
    } else {
      expect(error).toContain('Missing sleep duration');
    }
    expect(sleep).not.toHaveBeenCalled();
  });

  test('an unexpected failure is a generic 500 that does not leak the error', async () => {
    const logger = quietLogger();
    const base = await start({ logger, sleep: () => Promise.reject(new Error('internal detail /var/secret')) });
    const res = await fetch(`${base}/sleep/1`);
    expect(res.status).toBe(500);
    const body = await res.text();
    expect(JSON.parse(body)).toEqual({ error: 'Internal server error' });
    expect(body).not.toContain('internal detail');
    expect(logger.error).toHaveBeenCalledWith(expect.stringContaining('internal detail'));
  });

  describe('GET /secret', () => {
    test('returns name and version, never the value', async () => {
      ssmMock.on(GetParameterCommand).resolves({
        Parameter: { Name: PARAMETER_NAME, Type: 'SecureString', Value: SECRET_VALUE, Version: 5 },
      });
      const base = await start({ secretParameterName: PARAMETER_NAME });
      const res = await fetch(`${base}/secret`);
      expect(res.status).toBe(200);
      const body = await res.text();
      expect(JSON.parse(body)).toEqual({ name: PARAMETER_NAME, version: 5 });
      expect(body).not.toContain(SECRET_VALUE);
      expect(ssmMock).toHaveReceivedCommandTimes(GetParameterCommand, 1);
      expect(ssmMock).toHaveReceivedCommandWith(GetParameterCommand, { Name: PARAMETER_NAME, WithDecryption: false });
    });

    test('reads the parameter name from SECRET_PARAMETER_NAME', async () => {
      ssmMock.on(GetParameterCommand).resolves({ Parameter: { Name: '/from/env', Version: 1, Value: SECRET_VALUE } });
      const previous = process.env.SECRET_PARAMETER_NAME;
      process.env.SECRET_PARAMETER_NAME = '/from/env';
      try {
        const base = await start();
        const res = await fetch(`${base}/secret`);
        expect(await res.json()).toEqual({ name: '/from/env', version: 1 });
        expect(ssmMock).toHaveReceivedCommandWith(GetParameterCommand, { Name: '/from/env', WithDecryption: false });
      } finally {
        if (previous === undefined) {
          delete process.env.SECRET_PARAMETER_NAME;
        } else {
          process.env.SECRET_PARAMETER_NAME = previous;
        }
      }
    });

    test('without a configured parameter it is a 503 and SSM is not called', async () => {
      const previous = process.env.SECRET_PARAMETER_NAME;
      delete process.env.SECRET_PARAMETER_NAME;
      try {
        const base = await start();
        const res = await fetch(`${base}/secret`);
        expect(res.status).toBe(503);
        expect(await res.json()).toEqual({ error: expect.stringContaining('SECRET_PARAMETER_NAME') });
        expect(ssmMock).not.toHaveReceivedCommand(GetParameterCommand);
      } finally {
        if (previous !== undefined) {
          process.env.SECRET_PARAMETER_NAME = previous;
        }
      }
    });

    test.each([
      ['ParameterNotFound', 404, () => new ParameterNotFound({ message: 'Parameter arn:aws:ssm:eu-west-1:123456789012:parameter/x not found', $metadata: {} })],
      ['AccessDeniedException', 502, () => awsError('AccessDeniedException', 'User: arn:aws:sts::123456789012:assumed-role/task is not authorized')],
      ['ThrottlingException', 502, () => awsError('ThrottlingException', 'Rate exceeded for account 123456789012')],
      ['an unknown error', 502, () => new Error('socket hang up at 10.0.0.1 123456789012')],
    ])('%s is mapped to %i with a JSON error that leaks nothing', async (name, status, makeError) => {
      ssmMock.on(GetParameterCommand).rejects(makeError());
      const logger = quietLogger();
      const base = await start({ secretParameterName: PARAMETER_NAME, logger });
      const res = await fetch(`${base}/secret`);
      expect(res.status).toBe(status);
      expect(res.headers.get('content-type')).toBe('application/json; charset=utf-8');
      const body = await res.text();
      expect(JSON.parse(body)).toEqual({ error: expect.any(String) });
      expect(body).not.toContain('123456789012');
      expect(body).not.toContain(name);
      expect(logger.error).toHaveBeenCalledTimes(1);
    });

    test('a hanging SSM call times out with 504 within the configured timeout and is aborted', async () => {
      ssmMock.on(GetParameterCommand).callsFake(() => new Promise(() => { /* never settles */ }));
      const base = await start({ secretParameterName: PARAMETER_NAME, secretTimeoutMs: 100 });
      const started = Date.now();
      const res = await fetch(`${base}/secret`);
      const elapsed = Date.now() - started;
      expect(res.status).toBe(504);
      expect(await res.json()).toEqual({ error: 'Timed out reading the secret parameter' });
      expect(elapsed).toBeGreaterThanOrEqual(90);
      expect(elapsed).toBeLessThan(2_000);
      // The SDK call got an abort signal, and it was fired when the time was up.
      const options = (ssmMock.send.getCall(0).args as unknown[])[1] as { abortSignal?: AbortSignal } | undefined;
      expect(options?.abortSignal?.aborted).toBe(true);
    });
  });

  test('unknown paths are a JSON 404', async () => {
    const base = await start();
    const res = await fetch(`${base}/does/not/exist`);
    expect(res.status).toBe(404);
    expect(await res.json()).toEqual({ error: 'Not found' });
  });

  test('POST / is a 405 with an Allow header', async () => {
    const base = await start();
    const res = await fetch(`${base}/`, { method: 'POST', body: 'ignored' });
    expect(res.status).toBe(405);
    expect(res.headers.get('allow')).toBe('GET, HEAD');
    expect(await res.json()).toEqual({ error: 'Method POST is not allowed on this path' });
  });
});
