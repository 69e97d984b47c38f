import { parseRoute } from '../../src/runtime/serverless-api';

const WHERE = "ServerlessApiPipeline 'Test/Api'";

describe('parseRoute: valid routes', () => {
  test.each([
    {
      route: 'GET /',
      why: 'the root has no segment, so its id ends in Root instead of a path word',
      expected: { method: 'GET', path: '/', parameters: [], id: 'GetRoot' },
    },
    {
      route: 'GET /sleep/{secs}',
      why: 'a {name} segment is a path parameter and its name is part of the id',
      expected: { method: 'GET', path: '/sleep/{secs}', parameters: ['secs'], id: 'GetSleepSecs' },
    },
    {
      route: 'ANY /files/{path+}',
      why: 'ANY is a method and a greedy {name+} parameter is allowed as the last segment (its name without the +)',
      expected: { method: 'ANY', path: '/files/{path+}', parameters: ['path'], id: 'AnyFilesPath' },
    },
    {
      route: 'POST /orders/{id}/items',
      why: 'a plain parameter may sit between literal segments',
      expected: { method: 'POST', path: '/orders/{id}/items', parameters: ['id'], id: 'PostOrdersIdItems' },
    },
    {
      route: 'DELETE /orders/{orderId}/items/{itemId}',
      why: 'several parameters are listed in path order',
      expected: { method: 'DELETE', path: '/orders/{orderId}/items/{itemId}', parameters: ['orderId', 'itemId'], id: 'DeleteOrdersOrderIdItemsItemId' },
    },
    {
      route: 'GET /health-check.json',
      why: 'literal segments may hold - and . (they split words of the id)',
      expected: { method: 'GET', path: '/health-check.json', parameters: [], id: 'GetHealthCheckJson' },
    },
  ])('$route parses ($why)', ({ route, expected }) => {
    expect(parseRoute(WHERE, route)).toEqual(expected);
  });

  test('every method of API Gateway is accepted: GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS, ANY', () => {
    const methods = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD', 'OPTIONS', 'ANY'];
    expect(methods.map((m) => parseRoute(WHERE, `${m} /x`).method)).toEqual(methods);
  });

  test('ids are PascalCase words of the method and the path, usable as construct ids and artifact names', () => {
    for (const route of ['GET /', 'GET /sleep/{secs}', 'ANY /files/{path+}', 'PATCH /a_b/{c_d}']) {
      expect(parseRoute(WHERE, route).id).toMatch(/^[A-Z][A-Za-z0-9]*$/);
    }
  });
});

describe('parseRoute: invalid routes', () => {
  test.each([
    { route: 'GET sleep', why: 'the path must start with /', message: /'routes' must be 'METHOD \/path' with METHOD one of GET, POST, .*got 'GET sleep'/ },
    { route: 'FETCH /x', why: 'FETCH is not an HTTP method of API Gateway', message: /'routes' must be 'METHOD \/path' with METHOD one of .*ANY.*got 'FETCH \/x'/ },
    { route: 'get /x', why: 'methods are upper case', message: /'routes' must be 'METHOD \/path'.*got 'get \/x'/ },
    { route: 'GET  /x', why: 'method and path are separated by exactly one space', message: /'routes' must be 'METHOD \/path'.*got 'GET {2}\/x'/ },
    { route: 'GET /a b', why: 'a path has no spaces', message: /'routes' must be 'METHOD \/path'.*got 'GET \/a b'/ },
    { route: '', why: 'an empty route has neither method nor path', message: /'routes' must be 'METHOD \/path'.*got ''/ },
    { route: 'GET /a/{b', why: 'an unclosed parameter is neither a literal nor a parameter', message: /'routes' has an invalid path segment '\{b'.*got 'GET \/a\/\{b'/ },
    { route: 'GET /a/{}', why: 'a parameter needs a name', message: /'routes' has an invalid path segment '\{\}'.*got 'GET \/a\/\{\}'/ },
    { route: 'GET /a/{1x}', why: 'a parameter name starts with a letter or _', message: /'routes' has an invalid path segment '\{1x\}'.*got 'GET \/a\/\{1x\}'/ },
    { route: 'GET /a//b', why: 'an empty segment is not a resource', message: /'routes' has an invalid path segment ''.*got 'GET \/a\/\/b'/ },
    { route: 'GET /a/', why: 'a trailing slash makes an empty last segment', message: /'routes' has an invalid path segment ''.*got 'GET \/a\/'/ },
    { route: 'GET /a/{p+}/b', why: 'a greedy parameter must be the last segment', message: /'routes' may use a greedy parameter '\{name\+\}' only as the last segment, got 'GET \/a\/\{p\+\}\/b'/ },
    { route: 'GET /{id}/{id}', why: 'a parameter name may appear once', message: /'routes' must not repeat the path parameter 'id', got 'GET \/\{id\}\/\{id\}'/ },
    { route: 'GET /{id}/{id+}', why: 'a greedy parameter may not reuse a name either', message: /'routes' must not repeat the path parameter 'id'/ },
  ])('$route is refused ($why)', ({ route, message }) => {
    expect(() => parseRoute(WHERE, route)).toThrow(message);
  });

  test('the error starts with where the route was given, so the user finds the construct', () => {
    expect(() => parseRoute(WHERE, 'GET sleep')).toThrow(new RegExp(`^${WHERE.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}: 'routes' `));
  });
});
