// The service's own unit tests for its build pipelines: Node's built-in test runner on the compiled code (no
// dependencies beyond the service's own). The full suite (jest, mocked SSM) runs in the repository's tests.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DEFAULT_WELCOME_PHRASE, routeRequest, resolveDeps } from '../dist/app.js';
import { handler } from '../dist/lambda.js';

const deps = resolveDeps({ version: 'test', sleep: async () => {} }, {});

test('GET / shows the welcome phrase and the version', async () => {
  const response = await routeRequest('GET', '/', deps);
  assert.equal(response.statusCode, 200);
  assert.ok(response.body.includes(DEFAULT_WELCOME_PHRASE));
  assert.ok(response.body.includes('test'));
});

test('GET /healthcheck answers ok', async () => {
  const response = await routeRequest('GET', '/healthcheck', deps);
  assert.equal(response.statusCode, 200);
  assert.deepEqual(JSON.parse(response.body), { status: 'ok', version: 'test' });
});

test('GET /sleep checks its parameter', async () => {
  assert.equal((await routeRequest('GET', '/sleep/1', deps)).statusCode, 200);
  assert.equal((await routeRequest('GET', '/sleep/31', deps)).statusCode, 400);
  assert.equal((await routeRequest('GET', '/sleep/x', deps)).statusCode, 400);
});

test('unknown paths are 404, wrong methods 405', async () => {
  assert.equal((await routeRequest('GET', '/nope', deps)).statusCode, 404);
  assert.equal((await routeRequest('POST', '/healthcheck', deps)).statusCode, 405);
});

test('the Lambda adapter answers API Gateway events with the same routes', async () => {
  const result = await handler({ httpMethod: 'GET', path: '/healthcheck' });
  assert.equal(result.statusCode, 200);
  assert.equal(JSON.parse(result.body).status, 'ok');
});
