import { DEFAULT_WELCOME_PHRASE } from '../src/app';
import { handler, resetForTests } from '../src/lambda';

describe('the sample service as a Lambda handler', () => {
  const saved = { ...process.env };
  beforeEach(() => {
    resetForTests();
    process.env = { ...saved, APP_VERSION: 'v7' };
    delete process.env.WELCOME_PHRASE;
    delete process.env.SECRET_PARAMETER_NAME;
  });
  afterAll(() => { process.env = saved; });

  test('GET / answers the welcome page with the phrase and the version', async () => {
    const result = await handler({ httpMethod: 'GET', path: '/' });
    expect(result.statusCode).toBe(200);
    expect(result.body).toContain(DEFAULT_WELCOME_PHRASE);
    expect(result.body).toContain('v7');
  });

  test('GET /healthcheck answers ok with the version', async () => {
    const result = await handler({ httpMethod: 'GET', path: '/healthcheck' });
    expect(result).toMatchObject({ statusCode: 200 });
    expect(JSON.parse(result.body)).toEqual({ status: 'ok', version: 'v7' });
  });

  test('GET /sleep/0 answers at once; /sleep/abc is a 400', async () => {
    expect((await handler({ httpMethod: 'GET', path: '/sleep/0' })).statusCode).toBe(200);
    expect((await handler({ httpMethod: 'GET', path: '/sleep/abc' })).statusCode).toBe(400);
  });

  test('HEAD keeps the status and headers but drops the body', async () => {
    const result = await handler({ httpMethod: 'HEAD', path: '/healthcheck' });
    const get = await handler({ httpMethod: 'GET', path: '/healthcheck' });
    expect(result.statusCode).toBe(200);
    expect(result.headers).toEqual(get.headers);
    expect(Object.keys(result.headers).length).toBeGreaterThan(0);
    expect(result.body).toBe('');
  });

  test('GET /secret without a configured parameter is a 503, an unknown path a 404', async () => {
    expect((await handler({ httpMethod: 'GET', path: '/secret' })).statusCode).toBe(503);
    expect((await handler({ httpMethod: 'GET', path: '/nope' })).statusCode).toBe(404);
  });
});
