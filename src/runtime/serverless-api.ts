import { Duration, Names, Stack, Token, Validations } from 'aws-cdk-lib';
import * as apigateway from 'aws-cdk-lib/aws-apigateway';
import * as codedeploy from 'aws-cdk-lib/aws-codedeploy';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import { ApiRoute } from './api-route';
import { acknowledgeStarResourceOnlyFor } from '../private/acknowledgements';
import { createLogGroup } from '../private/log-group';
import { pruneRedundantDependsOn } from '../private/redundant-depends-on';
import { checkDuration, checkInteger, checkLambdaEnvironment, checkNotEmpty, invalidInput } from '../private/validate';

/** The HTTP methods a route may use. @internal */
export const ROUTE_METHODS = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD', 'OPTIONS', 'ANY'];

/**
 * A route of the API as the runtime needs it.
 * @internal
 */
export interface ParsedRoute {
  /** `GET /sleep/{secs}` as given. */
  readonly route: string;
  readonly method: string;
  readonly path: string;
  /** Path parameter names, in order. */
  readonly parameters: string[];
  /** A construct id and artifact name derived from the route: `GetSleepSecs`. */
  readonly id: string;
  /** The handler file in the repository. */
  readonly entry: string;
  /** The exported function name in the entry. */
  readonly handler: string;
  readonly memorySize: number;
  readonly timeout: Duration;
  readonly environment: { [name: string]: string };
  readonly smokeTestPath?: string;
}

/**
 * Parses `METHOD /path` and checks the path against API Gateway's syntax: literal segments, `{name}` parameters and
 * a greedy `{name+}` as the last segment.
 * @internal
 */
export function parseRoute(where: string, route: string): { method: string; path: string; parameters: string[]; id: string } {
  const match = /^([A-Z]+) (\/\S*)$/.exec(route);
  if (!match || !ROUTE_METHODS.includes(match[1])) {
    throw invalidInput(where, 'routes', route, `must be 'METHOD /path' with METHOD one of ${ROUTE_METHODS.join(', ')}, e.g. 'GET /sleep/{secs}'`);
  }
  const [, method, path] = match;
  const parameters: string[] = [];
  if (path !== '/') {
    const segments = path.slice(1).split('/');
    segments.forEach((segment, index) => {
      const parameter = /^\{([A-Za-z_][A-Za-z0-9_]*)(\+?)\}$/.exec(segment);
      if (parameter) {
        if (parameter[2] === '+' && index !== segments.length - 1) {
          throw invalidInput(where, 'routes', route, "may use a greedy parameter '{name+}' only as the last segment");
        }
        if (parameters.includes(parameter[1])) {
          throw invalidInput(where, 'routes', route, `must not repeat the path parameter '${parameter[1]}'`);
        }
        parameters.push(parameter[1]);
      } else if (!/^[A-Za-z0-9._~:@!$&'()*+,;=-]+$/.test(segment)) {
        throw invalidInput(where, 'routes', route,
          `has an invalid path segment '${segment}': use literal characters (letters, digits, - . _ ~ ...) or a parameter '{name}' / '{name+}'`);
      }
    });
  }
  const words = `${method.toLowerCase()} ${path}`.split(/[^A-Za-z0-9]+/).filter((w) => w.length > 0);
  const id = words.map((w) => w[0].toUpperCase() + w.slice(1)).join('') + (path === '/' ? 'Root' : '');
  return { method, path, parameters, id };
}

/**
 * Routes per API: the release controller's environment lists each function with its generated name and deployment
 * group (up to about 300 bytes each, of Lambda's 4 KB for all variables).
 * @internal
 */
export const MAX_ROUTES = 10;

/**
 * Defaults a route takes from the pattern.
 * @internal
 */
export interface RouteDefaults {
  readonly memorySize: number;
  readonly timeout: Duration;
  readonly environment?: { [name: string]: string };
}

/**
 * Parses and checks the routes of an API against API Gateway's and Lambda's rules and against each other; errors name
 * `scope` (the construct whose `routes` they are).
 * @internal
 */
export function parseRoutes(scope: Construct, routes: ApiRoute[], defaults: RouteDefaults): ParsedRoute[] {
  if (routes.length === 0) {
    throw invalidInput(scope, 'routes', [], 'must list at least one route');
  }
  if (routes.length > MAX_ROUTES) {
    throw invalidInput(scope, 'routes', routes.length,
      `must list at most ${MAX_ROUTES} routes: the release controller's environment (4 KB in all) names every function and deployment group`);
  }
  const seen = new Map<string, string>();
  const ids = new Map<string, string>();
  // API Gateway allows one variable child per resource: `/a/{x}` and `/a/{y}` (or `/a/{x+}`) cannot both exist,
  // whatever their methods.
  const variableChild = new Map<string, { segment: string; route: string }>();
  return routes.map((r) => {
    const parsed = parseRoute(`${scope.constructor.name} '${scope.node.path}'`, r.route);
    const segments = parsed.path === '/' ? [] : parsed.path.slice(1).split('/');
    segments.forEach((segment, index) => {
      if (!segment.startsWith('{')) return;
      const parent = '/' + segments.slice(0, index).join('/');
      const existing = variableChild.get(parent);
      if (existing && existing.segment !== segment) {
        throw invalidInput(scope, 'routes', r.route,
          `conflicts with '${existing.route}': API Gateway allows one path parameter under '${parent}', here ${existing.segment} and ${segment}`);
      }
      variableChild.set(parent, { segment, route: r.route });
    });
    if (parsed.id.length > 100) {
      throw invalidInput(scope, 'routes', r.route, 'is too long: its name (method and path without punctuation) must be at most 100 characters');
    }
    // API Gateway: one method per path; sibling parameters must share a name (`/a/{x}` and `/a/{y}` conflict).
    const shape = `${parsed.method} ${parsed.path.replace(/\{[^}]+\}/g, '{}')}`;
    const previous = seen.get(shape);
    if (previous !== undefined) {
      throw invalidInput(scope, 'routes', r.route, `duplicates the route '${previous}'`);
    }
    seen.set(shape, r.route);
    if (ids.has(parsed.id)) {
      throw invalidInput(scope, 'routes', r.route, `is too similar to '${ids.get(parsed.id)}' (both would be named ${parsed.id})`);
    }
    ids.set(parsed.id, r.route);
    checkEntry(scope, r.entry);
    const handler = r.handler ?? 'handler';
    if (!Token.isUnresolved(handler) && !/^[A-Za-z_$][A-Za-z0-9_$]*$/.test(handler)) {
      throw invalidInput(scope, 'routes[].handler', handler, 'must be the name of an exported function');
    }
    const routeMemory = r.memorySize ?? defaults.memorySize;
    const routeTimeout = r.timeout ?? defaults.timeout;
    checkFunctionLimits(scope, 'routes[].', routeMemory, routeTimeout);
    if (r.smokeTestPath !== undefined && !Token.isUnresolved(r.smokeTestPath)) {
      checkSmokeTestPath(scope, r.route, parsed, r.smokeTestPath);
    }
    return {
      route: r.route,
      ...parsed,
      entry: r.entry,
      handler,
      memorySize: routeMemory,
      timeout: routeTimeout,
      environment: { ...defaults.environment, ...r.environment },
      smokeTestPath: r.smokeTestPath,
    };
  });
}

/** The pre-traffic test requests only a concrete path of a route whose method reads. */
function checkSmokeTestPath(scope: Construct, route: string, parsed: { method: string; path: string }, smokeTestPath: string): void {
  if (!['GET', 'HEAD', 'ANY'].includes(parsed.method)) {
    throw invalidInput(scope, 'routes[].smokeTestPath', smokeTestPath,
      `is only for GET, HEAD and ANY routes: the pre-traffic test does not call '${route}', whose method may change data`);
  }
  const pattern = new RegExp('^' + parsed.path.split('/').map((segment) =>
    /^\{[^}]+\+\}$/.test(segment) ? '[^/{}?]+(/[^/{}?]+)*' : /^\{[^}]+\}$/.test(segment) ? '[^/{}?]+' : segment.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('/') + '$');
  if (!pattern.test(smokeTestPath.split('?')[0])) {
    throw invalidInput(scope, 'routes[].smokeTestPath', smokeTestPath, `must be a concrete path of the route '${route}'`);
  }
}

/**
 * Checks the name of the API's stage.
 * @internal
 */
export function checkStageName(scope: Construct, stageName: string): void {
  if (!Token.isUnresolved(stageName) && !/^[A-Za-z0-9_]{1,128}$/.test(stageName)) {
    throw invalidInput(scope, 'stageName', stageName, 'must be 1 to 128 letters, digits or underscores');
  }
}

/**
 * Properties of `ServerlessApi`.
 * @internal
 */
export interface ServerlessApiProps {
  readonly routes: ParsedRoute[];
  readonly runtime: lambda.Runtime;
  readonly architecture: lambda.Architecture;
  readonly logRetention: logs.RetentionDays;
  readonly throttlingRateLimit: number;
  readonly throttlingBurstLimit: number;
  readonly deploymentConfig: codedeploy.ILambdaDeploymentConfig;
  readonly stageName: string;
}

/** What one route gets. @internal */
export interface RouteFunction {
  readonly route: ParsedRoute;
  readonly function: lambda.Function;
  readonly alias: lambda.Alias;
  readonly logGroup: logs.LogGroup;
  readonly role: iam.Role;
  readonly deploymentGroup: codedeploy.LambdaDeploymentGroup;
}

/**
 * A REST API whose routes each go to their own Lambda function through an alias `live`. CloudFormation pins every
 * alias to a bootstrap version that serves a "not released yet" answer; releases move the aliases, CloudFormation
 * never does (ADR 0007).
 * @internal
 */
export class ServerlessApi extends Construct {
  public readonly api: apigateway.RestApi;
  public readonly accessLogs: logs.LogGroup;
  public readonly application: codedeploy.LambdaApplication;
  public readonly routeFunctions: RouteFunction[] = [];
  public readonly deploymentRole: iam.Role;

  constructor(scope: Construct, id: string, props: ServerlessApiProps) {
    super(scope, id);
    this.accessLogs = createLogGroup(this, 'AccessLogs', props.logRetention);
    this.api = new apigateway.RestApi(this, 'Api', {
      // The API's metrics are keyed by its name: unique per stack and construct path.
      restApiName: apiName(this),
      description: `Routes of ${this.node.path}`,
      cloudWatchRole: false,
      endpointTypes: [apigateway.EndpointType.REGIONAL],
      deployOptions: {
        stageName: props.stageName,
        accessLogDestination: new apigateway.LogGroupLogDestination(this.accessLogs),
        accessLogFormat: apigateway.AccessLogFormat.jsonWithStandardFields(),
        tracingEnabled: true,
        throttlingRateLimit: props.throttlingRateLimit,
        throttlingBurstLimit: props.throttlingBurstLimit,
        metricsEnabled: true,
      },
    });
    Validations.of(this.api).acknowledge(
      {
        id: 'AwsSolutions-APIG2',
        reason: 'Every method with path parameters has a request validator that requires them; the API has no request ' +
          'bodies of its own to model (the handlers validate what they read).',
      },
      {
        id: 'AwsSolutions-APIG3',
        reason: 'A web ACL costs at least 5 USD a month plus 1 USD per rule, more than this pattern\'s whole idle budget; ' +
          'the stage is throttled. Associate a WAF web ACL with the stage through `api` where needed.',
      },
      {
        id: 'AwsSolutions-APIG4',
        reason: 'A public API by design, as the workshop\'s sample service; add an authorizer to the methods through ' +
          '`api` for private routes.',
      },
      {
        id: 'AwsSolutions-COG4',
        reason: 'A public API by design; a Cognito authorizer is the user\'s choice (see APIG4).',
      },
    );
    const stage = this.api.deploymentStage;
    Validations.of(stage).acknowledge(
      {
        id: 'AwsSolutions-APIG6',
        reason: 'Execution logging needs the account-wide API Gateway CloudWatch role, which a construct must not ' +
          'overwrite; every request is in the JSON access log, and X-Ray traces each call.',
      },
      {
        id: 'Serverless-APIGWStructuredLogging',
        reason: 'The access log is JSON (jsonWithStandardFields); the finding concerns execution logging, off for the ' +
          'reason given for AwsSolutions-APIG6.',
      },
    );

    const validator = new apigateway.RequestValidator(this, 'ParametersValidator', {
      restApi: this.api,
      validateRequestParameters: true,
      validateRequestBody: false,
    });

    this.application = new codedeploy.LambdaApplication(this, 'Application');
    this.deploymentRole = new iam.Role(this, 'DeploymentRole', {
      assumedBy: new iam.ServicePrincipal('codedeploy.amazonaws.com'),
      description: `CodeDeploy shifts the aliases of ${this.node.path}`,
      managedPolicies: [iam.ManagedPolicy.fromAwsManagedPolicyName('service-role/AWSCodeDeployRoleForLambdaLimited')],
    });
    Validations.of(this.deploymentRole).acknowledge({
      id: 'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSCodeDeployRoleForLambdaLimited]',
      reason: 'The AWS-maintained policy with which CodeDeploy shifts Lambda aliases and reads alarms; AWS keeps it ' +
        'current and only codedeploy.amazonaws.com may assume the role.',
    });

    for (const route of props.routes) {
      this.routeFunctions.push(this.addRoute(route, props, validator));
    }
    pruneRedundantDependsOn(this);
  }

  private addRoute(route: ParsedRoute, props: ServerlessApiProps, validator: apigateway.RequestValidator): RouteFunction {
    const scope = new Construct(this, route.id);
    const logGroup = createLogGroup(scope, 'Logs', props.logRetention);
    const role = new iam.Role(scope, 'Role', {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      description: `Runs ${route.route} of ${this.node.path}`,
    });
    role.addToPolicy(new iam.PolicyStatement({
      actions: ['logs:CreateLogStream', 'logs:PutLogEvents'],
      resources: [logGroup.logGroupArn],
    }));
    // Until the pipeline's first release, every version answers 503: the bootstrap code is never the user's code, so
    // a stack update can never bring old code back.
    const fn = new lambda.Function(scope, 'Function', {
      description: `${route.route} (code released by the pipeline of ${this.node.path})`,
      runtime: props.runtime,
      architecture: props.architecture,
      handler: `index.${route.handler}`,
      code: lambda.Code.fromInline(
        `exports[${JSON.stringify(route.handler)}] = async () => ({ statusCode: 503, headers: { 'content-type': 'application/json' }, ` +
        "body: JSON.stringify({ error: 'not released yet: the pipeline has not released this route' }) });\n"),
      memorySize: route.memorySize,
      timeout: route.timeout,
      role,
      logGroup,
      tracing: lambda.Tracing.ACTIVE,
      environment: checkLambdaEnvironment(this, `environment (with routes[].environment of '${route.route}')`, { NODE_OPTIONS: '--enable-source-maps', ...route.environment }),
    });
    Validations.of(fn).acknowledge({
      id: 'Serverless-LambdaDLQ',
      reason: 'API Gateway invokes the function synchronously and returns its error to the caller; there is no ' +
        'asynchronous event to keep.',
    });
    acknowledgeStarResourceOnlyFor(role, ['xray:PutTraceSegments', 'xray:PutTelemetryRecords'],
      'X-Ray tracing: xray:PutTraceSegments and PutTelemetryRecords have no resource-level permissions.');
    // A fixed logical id and no properties that change: CloudFormation publishes it once and never again.
    const bootstrap = new lambda.Version(scope, 'Bootstrap', { lambda: fn });
    const alias = new lambda.Alias(scope, 'Live', { aliasName: 'live', version: bootstrap });

    const resource = this.api.root.resourceForPath(route.path);
    const requestParameters: { [name: string]: boolean } = {};
    for (const parameter of route.parameters) {
      requestParameters[`method.request.path.${parameter}`] = true;
    }
    resource.addMethod(route.method, new apigateway.LambdaIntegration(alias), {
      requestParameters: route.parameters.length > 0 ? requestParameters : undefined,
      requestValidator: route.parameters.length > 0 ? validator : undefined,
    });

    const deploymentGroup = new codedeploy.LambdaDeploymentGroup(scope, 'Deployment', {
      application: this.application,
      alias,
      deploymentConfig: props.deploymentConfig,
      role: this.deploymentRole,
      autoRollback: { failedDeployment: true, stoppedDeployment: true, deploymentInAlarm: false },
    });
    // LambdaDeploymentGroup gives the alias CloudFormation's CodeDeployLambdaAliasUpdate update policy: with it, a
    // stack update that touches the alias would start a CodeDeploy deployment of its own, shifting production outside
    // a release. Only the release controller moves traffic (ADR 0007, invariant 6): no update policy at all.
    (alias.node.defaultChild as lambda.CfnAlias).cfnOptions.updatePolicy = undefined;
    return { route, function: fn, alias, logGroup, role, deploymentGroup };
  }
}

/**
 * Checks the numbers of a route against Lambda's limits.
 * @internal
 */
export function checkFunctionLimits(where: Construct | string, property: string, memorySize: number, timeout: Duration): void {
  checkInteger(where, `${property}memorySize`, memorySize, 128, 10240);
  checkDuration(where, `${property}timeout`, timeout, Duration.seconds(1), Duration.minutes(15), 'seconds');
}

/** @internal */
export function checkEntry(where: Construct | string, entry: string): void {
  checkNotEmpty(where, 'routes[].entry', entry);
  if (!Token.isUnresolved(entry) && (entry.startsWith('/') || entry.split('/').includes('..') || !/^[A-Za-z0-9._\-/]+\.(ts|tsx|js|mjs|cjs)$/.test(entry))) {
    throw invalidInput(where, 'routes[].entry', entry, 'must be a .ts or .js file inside the repository (relative path, no ..)');
  }
}

/** `<stack name>-<construct path and hash>`: two copies of one app under different stack names get different names. */
function apiName(scope: Construct): string {
  const stackName = Stack.of(scope).stackName;
  const unique = Names.uniqueResourceName(scope, { maxLength: 150, separator: '-' });
  return Token.isUnresolved(stackName) || unique.startsWith(`${stackName}-`) ? unique : `${stackName.slice(0, 100)}-${unique}`;
}
