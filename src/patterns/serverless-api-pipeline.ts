import { ArnFormat, CfnOutput, Duration, Lazy, Names, RemovalPolicy, Stack, Token, Validations } from 'aws-cdk-lib';
import * as apigateway from 'aws-cdk-lib/aws-apigateway';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as codebuild from 'aws-cdk-lib/aws-codebuild';
import * as codedeploy from 'aws-cdk-lib/aws-codedeploy';
import * as actions from 'aws-cdk-lib/aws-codepipeline-actions';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as destinations from 'aws-cdk-lib/aws-lambda-destinations';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as sns from 'aws-cdk-lib/aws-sns';
import { Construct, IConstruct } from 'constructs';
import { LambdaPreTrafficFunction } from '../handlers/lambda-pre-traffic-function';
import { ServerlessReleaseFunction } from '../handlers/serverless-release-function';
import {
  LAMBDA_INVOKE_ACTION_LIMIT_MINUTES, MAX_WAIT_LIMIT_MINUTES, ROLLBACK_LIMIT_MINUTES, TEST_AND_BAKE_MINUTES,
} from '../handlers/serverless-release-limits';
import { ServiceMonitoring } from '../monitoring/service-monitoring';
import { Approval } from '../pipeline/approval';
import { BuildSecret } from '../pipeline/build-step';
import { DeliveryPipeline } from '../pipeline/delivery-pipeline';
import { InfrastructureUpdate } from '../pipeline/infrastructure-update';
import { PipelineNotificationsOptions } from '../pipeline/notifications';
import { acknowledge, acknowledgeStarResourceOnlyFor, nagPseudo, nagRef } from '../private/acknowledgements';
import { createDeadLetterQueue } from '../private/encrypted-topic';
import { checkDuration, checkInteger, checkNotEmpty, invalidInput, normalizeRepositoryDirectory } from '../private/validate';
import { Release, ReleaseConfig, ReleaseContext } from '../release/release';
import { checkEntry, checkFunctionLimits, ParsedRoute, parseRoute, ServerlessApi } from '../runtime/serverless-api';
import { PipelineSource } from '../source/pipeline-source';

/** The esbuild the build runs to bundle each route (fetched by npx from the npm registry). */
const ESBUILD = 'esbuild@0.28.2';

/**
 * Routes per pattern: the controller's environment lists each function with its generated name and deployment group
 * (up to about 300 bytes each, of Lambda's 4 KB for all variables).
 */
const MAX_ROUTES = 10;

/** How long each predefined configuration shifts traffic, in minutes. */
const SHIFT_MINUTES: { [name: string]: number } = {
  'CodeDeployDefault.LambdaAllAtOnce': 0,
  'CodeDeployDefault.LambdaCanary10Percent5Minutes': 5,
  'CodeDeployDefault.LambdaCanary10Percent10Minutes': 10,
  'CodeDeployDefault.LambdaCanary10Percent15Minutes': 15,
  'CodeDeployDefault.LambdaCanary10Percent30Minutes': 30,
  'CodeDeployDefault.LambdaLinear10PercentEvery1Minute': 10,
  'CodeDeployDefault.LambdaLinear10PercentEvery2Minutes': 20,
  'CodeDeployDefault.LambdaLinear10PercentEvery3Minutes': 30,
  'CodeDeployDefault.LambdaLinear10PercentEvery10Minutes': 100,
};

/** CodeDeploy's predefined Lambda deployment configurations. */
const LAMBDA_DEPLOYMENT_CONFIGS = [
  'CodeDeployDefault.LambdaAllAtOnce',
  'CodeDeployDefault.LambdaCanary10Percent5Minutes',
  'CodeDeployDefault.LambdaCanary10Percent10Minutes',
  'CodeDeployDefault.LambdaCanary10Percent15Minutes',
  'CodeDeployDefault.LambdaCanary10Percent30Minutes',
  'CodeDeployDefault.LambdaLinear10PercentEvery1Minute',
  'CodeDeployDefault.LambdaLinear10PercentEvery2Minutes',
  'CodeDeployDefault.LambdaLinear10PercentEvery3Minutes',
  'CodeDeployDefault.LambdaLinear10PercentEvery10Minutes',
];

/**
 * The default pattern of the unhandled-errors metric: what the Node.js runtime logs for an error a handler did not
 * catch, an unhandled promise rejection, and a timeout.
 */
const UNHANDLED_ERRORS_PATTERN = '?"Invoke Error" ?"Runtime.UnhandledPromiseRejection" ?"Task timed out"';

/**
 * One route of the API and the handler that serves it.
 */
export interface ApiRoute {
  /** `METHOD /path`, e.g. `GET /`, `GET /sleep/{secs}`, `ANY /files/{path+}`. */
  readonly route: string;

  /** The handler's source file in the repository (TypeScript or JavaScript), bundled by esbuild: `src/sleep.ts`. */
  readonly entry: string;

  /**
   * The name of the exported handler function in `entry`.
   *
   * @default 'handler'
   */
  readonly handler?: string;

  /**
   * Memory of this route's function in MB (Lambda: 128 to 10240).
   *
   * @default - the pattern's `memorySize`
   */
  readonly memorySize?: number;

  /**
   * Timeout of this route's function (Lambda: 1 second to 15 minutes; API Gateway answers 504 after 29 seconds).
   *
   * @default - the pattern's `timeout`
   */
  readonly timeout?: Duration;

  /**
   * Environment variables of this route's function, on top of the pattern's `environment`.
   *
   * @default - none
   */
  readonly environment?: { [name: string]: string };

  /**
   * The concrete path the pre-traffic test requests, for a route with path parameters: `/sleep/0`.
   *
   * @default - the route's path when it has no parameters; a route with parameters is not invoked by the test
   */
  readonly smokeTestPath?: string;
}

/**
 * Properties of `ServerlessApiPipeline`.
 */
export interface ServerlessApiPipelineProps {
  /** Where the revisions come from: the repository holds the handlers (`routes[].entry`). */
  readonly source: PipelineSource;

  /** The routes of the API, each served by its own Lambda function. */
  readonly routes: ApiRoute[];

  /**
   * Whether a human approves a release (`Approval.beforeRelease()`); the API has no test endpoint, so
   * `Approval.beforeProductionTraffic()` is refused.
   *
   * @default Approval.none()
   */
  readonly approval?: Approval;

  /**
   * The directory of the source where `npm ci`, the tests and esbuild run; `routes[].entry` is relative to it.
   *
   * @default '.' - the repository root
   */
  readonly sourceDirectory?: string;

  /**
   * Commands that install and test, in `sourceDirectory`, before the handlers are bundled. JUnit XML files written to
   * `reports/junit` under `sourceDirectory` appear as test reports.
   *
   * @default - `npm ci` and `npm run test --if-present` when `sourceDirectory` has a `package.json`, otherwise none
   */
  readonly testCommands?: string[];

  /**
   * Plain environment variables of the build.
   *
   * @default - none
   */
  readonly buildEnvironmentVariables?: { [name: string]: string };

  /**
   * Secrets the build sees as environment variables (from SSM Parameter Store or Secrets Manager).
   *
   * @default - none
   */
  readonly buildSecrets?: { [name: string]: BuildSecret };

  /**
   * Memory of each function in MB (Lambda: 128 to 10240).
   *
   * @default 256
   */
  readonly memorySize?: number;

  /**
   * Timeout of each function (Lambda: 1 second to 15 minutes).
   *
   * @default Duration.seconds(10)
   */
  readonly timeout?: Duration;

  /**
   * The Lambda runtime of the functions; esbuild targets its Node.js version.
   *
   * @default lambda.Runtime.NODEJS_24_X
   */
  readonly runtime?: lambda.Runtime;

  /**
   * The processor architecture of the functions.
   *
   * @default lambda.Architecture.ARM_64
   */
  readonly architecture?: lambda.Architecture;

  /**
   * Environment variables of every function: configuration only; read secrets at run time from SSM Parameter Store
   * or Secrets Manager (grant through `functions`).
   *
   * @default - none
   */
  readonly environment?: { [name: string]: string };

  /**
   * How traffic shifts to a release: a predefined `codedeploy.LambdaDeploymentConfig` or one you create.
   *
   * @default codedeploy.LambdaDeploymentConfig.CANARY_10PERCENT_5MINUTES
   */
  readonly deploymentConfig?: codedeploy.ILambdaDeploymentConfig;

  /**
   * A phrase the answer of the `GET /` route must contain in the pre-traffic test (ignored without a `GET /` route).
   *
   * @default - the test checks only that each route it calls answers below 500
   */
  readonly expectedPhrase?: string;

  /**
   * Steady-state requests per second of the stage.
   *
   * @default 100
   */
  readonly throttlingRateLimit?: number;

  /**
   * Burst of requests of the stage.
   *
   * @default 200
   */
  readonly throttlingBurstLimit?: number;

  /**
   * The CloudWatch Logs filter pattern counted as the custom metric `UnhandledErrors` on every function's logs.
   *
   * @default - unhandled errors, unhandled promise rejections and timeouts of the Node.js runtime
   */
  readonly logMetricFilterPattern?: string;

  /**
   * The p99 latency above which the latency alarm fires (10 milliseconds to 29 seconds, API Gateway's limit).
   *
   * @default Duration.seconds(3)
   */
  readonly latencyThreshold?: Duration;

  /**
   * The name of the API's stage.
   *
   * @default 'prod'
   */
  readonly stageName?: string;

  /**
   * How long function and access logs are kept.
   *
   * @default logs.RetentionDays.ONE_MONTH
   */
  readonly logRetention?: logs.RetentionDays;

  /**
   * Who hears about the pipeline (failures, successes, approvals).
   *
   * @default - a new encrypted topic without subscriptions
   */
  readonly notifications?: PipelineNotificationsOptions;

  /**
   * Deploy the CDK app of the repository from the same push, before the release (`InfrastructureUpdate.cdkApp()`):
   * synthesized without deploy permissions, checked for permission broadening, deployed through the account's
   * bootstrap roles. Needs the stack's account and region.
   *
   * @default - none: infrastructure changes are deployed with `cdk deploy`
   */
  readonly infrastructure?: InfrastructureUpdate;

  /**
   * Email addresses subscribed to the alarm topic.
   *
   * @default - no subscription
   */
  readonly alarmEmails?: string[];

  /**
   * Keep the pipeline's artifacts (and the released code in them) and their key when the stack is deleted.
   *
   * @default false - `cdk destroy` removes everything
   */
  readonly retainArtifacts?: boolean;
}

/**
 * A REST API on API Gateway whose routes each run in their own Lambda function, released from a git push: the build
 * runs the tests and bundles each route; a release publishes a new version of every changed function and shifts their
 * `live` aliases together with CodeDeploy (canary or linear), after a pre-traffic test of each new version, watched by
 * alarms on the new versions only; any failure rolls every function back.
 */
export class ServerlessApiPipeline extends Construct {
  /** The delivery pipeline (Source, Build, Release). */
  public readonly pipeline: DeliveryPipeline;
  /** The REST API. */
  public readonly api: apigateway.RestApi;
  /** The API's URL (its stage). */
  public readonly url: string;
  /** Each route's function, by route (`GET /sleep/{secs}`). */
  public readonly functions: { [route: string]: lambda.IFunction };
  /** Each route's `live` alias, by route. */
  public readonly aliases: { [route: string]: lambda.IAlias };
  /** The CodeDeploy application of the functions' deployment groups. */
  public readonly application: codedeploy.ILambdaApplication;
  /** The function that ships a release and shifts the aliases. */
  public readonly releaseController: lambda.IFunction;
  /** The pre-traffic test of each new version. */
  public readonly preTrafficHook: lambda.IFunction;
  /** Alarms, alarm topic and dashboard. */
  public readonly monitoring: ServiceMonitoring;
  /** The alarm topic. */
  public readonly alarmTopic: sns.ITopic;
  /** The dashboard. */
  public readonly dashboard: cloudwatch.Dashboard;
  /** The command that rolls every function back to an earlier successful execution (fill in its id). */
  public readonly rollbackCommand: string;

  constructor(scope: Construct, id: string, props: ServerlessApiPipelineProps) {
    super(scope, id);
    const memorySize = props.memorySize ?? 256;
    const timeout = props.timeout ?? Duration.seconds(10);
    checkFunctionLimits(this, '', memorySize, timeout);
    const sourceDirectory = normalizeRepositoryDirectory(this, 'sourceDirectory', props.sourceDirectory);
    const routes = this.parseRoutes(props, memorySize, timeout);
    const deploymentConfig = props.deploymentConfig ?? codedeploy.LambdaDeploymentConfig.CANARY_10PERCENT_5MINUTES;
    checkDeploymentConfig(this, deploymentConfig);
    checkDeploymentConfigDuration(this, deploymentConfig);
    checkInteger(this, 'throttlingRateLimit', props.throttlingRateLimit, 1, 10000);
    checkInteger(this, 'throttlingBurstLimit', props.throttlingBurstLimit, 0, 5000);
    if (props.expectedPhrase !== undefined) checkNotEmpty(this, 'expectedPhrase', props.expectedPhrase);
    if (props.logMetricFilterPattern !== undefined) checkNotEmpty(this, 'logMetricFilterPattern', props.logMetricFilterPattern);
    checkDuration(this, 'latencyThreshold', props.latencyThreshold, Duration.millis(10), Duration.seconds(29));
    props.testCommands?.forEach((command) => checkNotEmpty(this, 'testCommands', command));
    const stageName = props.stageName ?? 'prod';
    if (!Token.isUnresolved(stageName) && !/^[A-Za-z0-9_]{1,128}$/.test(stageName)) {
      throw invalidInput(this, 'stageName', stageName, 'must be 1 to 128 letters, digits or underscores');
    }
    const runtime = props.runtime ?? lambda.Runtime.NODEJS_24_X;
    if (runtime.family !== lambda.RuntimeFamily.NODEJS) {
      throw invalidInput(this, 'runtime', runtime.name, 'must be a Node.js runtime: the build bundles the handlers with esbuild');
    }

    const service = new ServerlessApi(this, 'Service', {
      routes,
      runtime,
      architecture: props.architecture ?? lambda.Architecture.ARM_64,
      logRetention: props.logRetention ?? logs.RetentionDays.ONE_MONTH,
      throttlingRateLimit: props.throttlingRateLimit ?? 100,
      throttlingBurstLimit: props.throttlingBurstLimit ?? 200,
      deploymentConfig,
      stageName,
    });
    this.api = service.api;
    this.url = service.api.url;
    this.application = service.application;
    this.functions = {};
    this.aliases = {};
    for (const rf of service.routeFunctions) {
      this.functions[rf.route.route] = rf.function;
      this.aliases[rf.route.route] = rf.alias;
    }

    const release = new LambdaAliasRelease(service, routes, props.expectedPhrase, props.logRetention, deploymentConfig);
    this.pipeline = new DeliveryPipeline(this, 'Pipeline', {
      source: props.source,
      approval: props.approval,
      notifications: props.notifications,
      infrastructure: props.infrastructure,
      retainArtifacts: props.retainArtifacts,
      buildStep: {
        buildSpec: bundleBuildSpec(routes, runtime, props.testCommands),
        environmentVariables: {
          ...props.buildEnvironmentVariables,
          SOURCE_DIRECTORY: sourceDirectory,
          // The build uploads each route's bundle next to the pipeline's artifacts, under releases/.
          ARTIFACT_BUCKET: Lazy.string({ produce: () => this.pipeline.artifactBucket.bucketName }),
        },
        secrets: props.buildSecrets,
        testReportDirectory: sourceDirectory === '.' ? 'reports/junit' : `${sourceDirectory}/reports/junit`,
      },
      release,
    });
    this.releaseController = release.controller!;
    this.preTrafficHook = release.hook!;
    release.acknowledgeFindings(this.pipeline);

    this.monitoring = new ServiceMonitoring(this, 'Monitoring', {
      alarmEmails: props.alarmEmails,
      encryptionKey: this.pipeline.artifactKey,
      title: `${this.node.path}: API, functions and releases`,
    });
    this.alarmTopic = this.monitoring.alarmTopic;
    this.dashboard = this.monitoring.dashboard;
    release.alarmTopic = this.alarmTopic;
    this.addAlarms(service, props);

    const pipelineName = this.pipeline.pipeline.pipelineName;
    this.rollbackCommand = `aws codepipeline rollback-stage --pipeline-name ${pipelineName} --stage-name Release ` +
      '--target-pipeline-execution-id <id of an earlier successful execution>';
    new CfnOutput(this, 'ApiUrl', { value: this.url, description: 'The API' });
    new CfnOutput(this, 'RollbackCommand', { value: this.rollbackCommand, description: 'Rolls every function back to an earlier release' });
  }

  private parseRoutes(props: ServerlessApiPipelineProps, memorySize: number, timeout: Duration): ParsedRoute[] {
    if (props.routes.length === 0) {
      throw invalidInput(this, 'routes', [], 'must list at least one route');
    }
    if (props.routes.length > MAX_ROUTES) {
      throw invalidInput(this, 'routes', props.routes.length,
        `must list at most ${MAX_ROUTES} routes: the release controller's environment (4 KB in all) names every function and deployment group`);
    }
    const seen = new Map<string, string>();
    const ids = new Map<string, string>();
    // API Gateway allows one variable child per resource: `/a/{x}` and `/a/{y}` (or `/a/{x+}`) cannot both exist,
    // whatever their methods.
    const variableChild = new Map<string, { segment: string; route: string }>();
    return props.routes.map((r) => {
      const parsed = parseRoute(`ServerlessApiPipeline '${this.node.path}'`, r.route);
      const segments = parsed.path === '/' ? [] : parsed.path.slice(1).split('/');
      segments.forEach((segment, index) => {
        if (!segment.startsWith('{')) return;
        const parent = '/' + segments.slice(0, index).join('/');
        const existing = variableChild.get(parent);
        if (existing && existing.segment !== segment) {
          throw invalidInput(this, 'routes', r.route,
            `conflicts with '${existing.route}': API Gateway allows one path parameter under '${parent}', here ${existing.segment} and ${segment}`);
        }
        variableChild.set(parent, { segment, route: r.route });
      });
      if (parsed.id.length > 100) {
        throw invalidInput(this, 'routes', r.route, 'is too long: its name (method and path without punctuation) must be at most 100 characters');
      }
      // API Gateway: one method per path; sibling parameters must share a name (`/a/{x}` and `/a/{y}` conflict).
      const shape = `${parsed.method} ${parsed.path.replace(/\{[^}]+\}/g, '{}')}`;
      const previous = seen.get(shape);
      if (previous !== undefined) {
        throw invalidInput(this, 'routes', r.route, `duplicates the route '${previous}'`);
      }
      seen.set(shape, r.route);
      if (ids.has(parsed.id)) {
        throw invalidInput(this, 'routes', r.route, `is too similar to '${ids.get(parsed.id)}' (both would be named ${parsed.id})`);
      }
      ids.set(parsed.id, r.route);
      checkEntry(this, r.entry);
      const handler = r.handler ?? 'handler';
      if (!Token.isUnresolved(handler) && !/^[A-Za-z_$][A-Za-z0-9_$]*$/.test(handler)) {
        throw invalidInput(this, 'routes[].handler', handler, 'must be the name of an exported function');
      }
      const routeMemory = r.memorySize ?? memorySize;
      const routeTimeout = r.timeout ?? timeout;
      checkFunctionLimits(this, 'routes[].', routeMemory, routeTimeout);
      if (r.smokeTestPath !== undefined && !Token.isUnresolved(r.smokeTestPath)) {
        if (!['GET', 'HEAD', 'ANY'].includes(parsed.method)) {
          throw invalidInput(this, 'routes[].smokeTestPath', r.smokeTestPath,
            `is only for GET, HEAD and ANY routes: the pre-traffic test does not call '${r.route}', whose method may change data`);
        }
        const pattern = new RegExp('^' + parsed.path.split('/').map((segment) =>
          /^\{[^}]+\+\}$/.test(segment) ? '[^/{}?]+(/[^/{}?]+)*' : /^\{[^}]+\}$/.test(segment) ? '[^/{}?]+' : segment.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('/') + '$');
        if (!pattern.test(r.smokeTestPath.split('?')[0])) {
          throw invalidInput(this, 'routes[].smokeTestPath', r.smokeTestPath, `must be a concrete path of the route '${r.route}'`);
        }
      }
      return {
        route: r.route,
        ...parsed,
        entry: r.entry,
        handler,
        memorySize: routeMemory,
        timeout: routeTimeout,
        environment: { ...props.environment, ...r.environment },
        smokeTestPath: r.smokeTestPath,
      };
    });
  }

  private addAlarms(service: ServerlessApi, props: ServerlessApiPipelineProps): void {
    const period = Duration.minutes(1);
    this.monitoring.addAlarm('Api5xx', {
      metric: this.api.metricServerError({ period, statistic: cloudwatch.Stats.SUM }),
      threshold: 5,
      evaluationPeriods: 3,
      datapointsToAlarm: 2,
      description: 'The API answers 5xx (5 or more a minute, 2 minutes out of 3)',
    });
    const latency = props.latencyThreshold ?? Duration.seconds(3);
    this.monitoring.addAlarm('LatencyP99', {
      metric: this.api.metricLatency({ period, statistic: cloudwatch.Stats.p(99) }),
      threshold: latency.toMilliseconds({ integral: false }),
      evaluationPeriods: 3,
      datapointsToAlarm: 3,
      description: `p99 latency above ${latency.isUnresolved() ? 'the latency threshold' : latency.toHumanString()} (3 minutes in a row)`,
    });
    // Metric math takes at most 10 metrics: one alarm per 10 functions.
    chunks(service.routeFunctions, 10).forEach((group, index, all) => {
      const usingMetrics: { [id: string]: cloudwatch.IMetric } = {};
      group.forEach((rf, i) => { usingMetrics[`t${i}`] = rf.function.metricThrottles({ period, statistic: cloudwatch.Stats.SUM }); });
      this.monitoring.addAlarm(all.length === 1 ? 'Throttles' : `Throttles${index + 1}`, {
        metric: new cloudwatch.MathExpression({
          expression: Object.keys(usingMetrics).map((k) => `FILL(${k}, 0)`).join(' + '),
          usingMetrics,
          label: 'Throttled invocations',
          period,
        }),
        threshold: 1,
        evaluationPeriods: 3,
        datapointsToAlarm: 2,
        description: `Lambda throttles the functions${all.length === 1 ? '' : ` (group ${index + 1})`}`,
      });
    });
    const namespace = 'DeliveryPipelines';
    const metricName = `UnhandledErrors-${Names.uniqueResourceName(this, { maxLength: 200 })}`;
    const pattern = props.logMetricFilterPattern ?? UNHANDLED_ERRORS_PATTERN;
    for (const rf of service.routeFunctions) {
      new logs.MetricFilter(rf.logGroup, 'UnhandledErrors', {
        logGroup: rf.logGroup,
        filterPattern: logs.FilterPattern.literal(pattern),
        metricNamespace: namespace,
        metricName,
        metricValue: '1',
        defaultValue: 0,
      });
    }
    this.monitoring.addAlarm('UnhandledErrors', {
      metric: new cloudwatch.Metric({ namespace, metricName, period: Duration.minutes(5), statistic: cloudwatch.Stats.SUM }),
      threshold: 1,
      evaluationPeriods: 1,
      datapointsToAlarm: 1,
      description: `Function logs match '${pattern}' (the custom metric ${metricName})`,
    });
    this.dashboard.addWidgets(
      new cloudwatch.GraphWidget({
        title: 'Requests and errors',
        left: [
          this.api.metricCount({ period, statistic: cloudwatch.Stats.SUM }),
          this.api.metricClientError({ period, statistic: cloudwatch.Stats.SUM }),
        ],
        width: 12,
      }),
      new cloudwatch.GraphWidget({
        title: 'Invocations by function (a release shows in the aliases\' versions)',
        left: service.routeFunctions.map((rf) => rf.alias.metricInvocations({
          period, statistic: cloudwatch.Stats.SUM, label: rf.route.route,
        })),
        width: 12,
      }),
    );
  }
}

/**
 * Releases the code of every route with CodeDeploy: the release controller ships each function's bundle, publishes a
 * version, and shifts all `live` aliases together (ADR 0007).
 */
class LambdaAliasRelease extends Release {
  public readonly description = 'a coordinated CodeDeploy shift of every function\'s live alias';
  public controller?: lambda.Function;
  public hook?: lambda.Function;
  public alarmTopic?: sns.ITopic;
  private controllerRole?: iam.Role;
  private alarmPrefix?: string;
  private artifactBucket?: s3.IBucket;
  private hookRole?: iam.Role;

  constructor(
    private readonly service: ServerlessApi,
    private readonly routes: ParsedRoute[],
    private readonly expectedPhrase: string | undefined,
    private readonly logRetention: logs.RetentionDays | undefined,
    private readonly deploymentConfig: codedeploy.ILambdaDeploymentConfig) {
    super();
  }

  public bind(scope: Construct, context: ReleaseContext): ReleaseConfig {
    const resources = new Construct(scope, 'LambdaRelease');
    const stack = Stack.of(scope);
    const retention = this.logRetention ?? logs.RetentionDays.ONE_MONTH;
    const alarmPrefix = Names.uniqueResourceName(resources, { maxLength: 120, separator: '-' });
    this.alarmPrefix = alarmPrefix;
    this.artifactBucket = context.artifactBucket;
    const routeFunctions = this.service.routeFunctions;
    const artifactBucket = context.artifactBucket;
    if (!artifactBucket) {
      throw new Error(`${this.service.node.path}: the pipeline must give the release its artifact bucket`);
    }

    // The pre-traffic test: CodeDeploy invokes it before it shifts any traffic; it invokes the new version.
    const hookLogs = new logs.LogGroup(resources, 'HookLogs', { retention, removalPolicy: RemovalPolicy.DESTROY });
    const hookRole = new iam.Role(resources, 'HookRole', {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      description: `Tests each new version of ${this.service.node.path} before it gets traffic`,
    });
    hookRole.addToPolicy(new iam.PolicyStatement({ actions: ['logs:CreateLogStream', 'logs:PutLogEvents'], resources: [hookLogs.logGroupArn] }));
    const routesEnv: { [id: string]: unknown } = {};
    for (const route of this.routes) {
      routesEnv[route.id] = {
        method: route.method,
        path: route.path,
        smokeTestPath: route.smokeTestPath,
        expectedPhrase: route.method === 'GET' && route.path === '/' ? this.expectedPhrase : undefined,
      };
    }
    this.hook = new LambdaPreTrafficFunction(resources, 'Hook', {
      role: hookRole,
      logGroup: hookLogs,
      description: `Pre-traffic test of each new version of ${this.service.node.path}`,
      // Long enough to wait for the slowest route (it invokes each new version synchronously) and still report.
      timeout: Duration.seconds(Math.min(900, Math.max(120,
        ...this.routes.filter((r) => !r.timeout.isUnresolved()).map((r) => r.timeout.toSeconds() + 30)))),
      memorySize: 256,
      architecture: lambda.Architecture.ARM_64,
      tracing: lambda.Tracing.ACTIVE,
      environment: { ROUTES: JSON.stringify(routesEnv), AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: '1' },
    });
    this.hookRole = hookRole;
    this.hook.grantInvoke(this.service.deploymentRole);
    for (const rf of routeFunctions) {
      rf.deploymentGroup.grantPutLifecycleEventHookExecutionStatus(hookRole);
      hookRole.addToPolicy(new iam.PolicyStatement({
        actions: ['lambda:InvokeFunction'],
        resources: [`${rf.function.functionArn}:*`],
      }));
    }
    hookRole.addToPolicy(new iam.PolicyStatement({
      actions: ['codedeploy:GetDeployment'],
      resources: routeFunctions.map((rf) => rf.deploymentGroup.deploymentGroupArn),
    }));
    Validations.of(this.hook).acknowledge({
      id: 'Serverless-LambdaDLQ',
      reason: 'CodeDeploy waits for the hook\'s verdict and fails the deployment (rolling back) when none comes; a ' +
        'queued event could not be answered in time anyway.',
    });

    // The controller: CodePipeline invokes it; it polls with continuation tokens until every shift has finished.
    const controllerLogs = new logs.LogGroup(resources, 'ControllerLogs', { retention, removalPolicy: RemovalPolicy.DESTROY });
    const controllerRole = new iam.Role(resources, 'ControllerRole', {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      description: `Ships the releases of ${this.service.node.path}`,
    });
    controllerRole.addToPolicy(new iam.PolicyStatement({ actions: ['logs:CreateLogStream', 'logs:PutLogEvents'], resources: [controllerLogs.logGroupArn] }));
    const functionsEnv = routeFunctions.map((rf) => ({
      id: rf.route.id,
      functionName: rf.function.functionName,
      aliasName: rf.alias.aliasName,
      deploymentGroupName: rf.deploymentGroup.deploymentGroupName,
    }));
    this.controller = new ServerlessReleaseFunction(resources, 'Controller', {
      role: controllerRole,
      logGroup: controllerLogs,
      description: `Ships each release of ${this.service.node.path} and shifts its aliases together`,
      timeout: Duration.minutes(5),
      memorySize: 256,
      architecture: lambda.Architecture.ARM_64,
      tracing: lambda.Tracing.ACTIVE,
      environment: {
        FUNCTIONS: stack.toJsonString(functionsEnv),
        CODEDEPLOY_APPLICATION: this.service.application.applicationName,
        ARTIFACT_BUCKET: artifactBucket.bucketName,
        PRE_TRAFFIC_HOOK: this.hook.functionName,
        ALARM_PREFIX: alarmPrefix,
        ALARM_TOPIC_ARN: Lazy.string({ produce: () => this.alarmTopic?.topicArn ?? '' }),
        // How long a release may wait, wall-clock: the configuration's shift plus 30 minutes for tests and bake; an
        // imported configuration, whose length is unknown here, gets the longest wait that still leaves the rollback
        // time before CodePipeline's 24 hours (checked at synth time, see checkDeploymentConfig).
        MAX_WAIT_MINUTES: String(maxWaitMinutes(this.deploymentConfig)),
        AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: '1',
      },
    });
    this.controllerRole = controllerRole;
    for (const rf of routeFunctions) {
      controllerRole.addToPolicy(new iam.PolicyStatement({
        actions: ['lambda:GetAlias', 'lambda:UpdateFunctionCode', 'lambda:GetFunctionConfiguration', 'lambda:PublishVersion', 'lambda:UpdateAlias'],
        resources: [rf.function.functionArn, `${rf.function.functionArn}:*`],
      }));
    }
    controllerRole.addToPolicy(new iam.PolicyStatement({
      actions: ['s3:GetObject', 's3:GetObjectVersion'],
      resources: [artifactBucket.arnForObjects('releases/*')],
    }));
    context.artifactKey.grantDecrypt(controllerRole);
    controllerRole.addToPolicy(new iam.PolicyStatement({
      actions: ['cloudwatch:PutMetricAlarm', 'cloudwatch:DeleteAlarms', 'cloudwatch:DescribeAlarms'],
      resources: [stack.formatArn({ service: 'cloudwatch', resource: 'alarm', resourceName: `${alarmPrefix}-*`, arnFormat: ArnFormat.COLON_RESOURCE_NAME })],
    }));
    const application = this.service.application.applicationName;
    controllerRole.addToPolicy(new iam.PolicyStatement({
      // UpdateDeploymentGroup: CreateDeployment with overrideAlarmConfiguration needs it (CodeDeploy API Reference);
      // ListDeployments: the check that no other release runs, and the stale-alarm sweep's check.
      actions: [
        'codedeploy:CreateDeployment', 'codedeploy:GetDeployment', 'codedeploy:ListDeployments', 'codedeploy:StopDeployment', 'codedeploy:UpdateDeploymentGroup',
      ],
      resources: routeFunctions.map((rf) => rf.deploymentGroup.deploymentGroupArn),
    }));
    controllerRole.addToPolicy(new iam.PolicyStatement({
      actions: ['codedeploy:GetApplicationRevision', 'codedeploy:RegisterApplicationRevision'],
      resources: [stack.formatArn({ service: 'codedeploy', resource: 'application', resourceName: application, arnFormat: ArnFormat.COLON_RESOURCE_NAME })],
    }));
    controllerRole.addToPolicy(new iam.PolicyStatement({
      actions: ['codedeploy:GetDeploymentConfig'],
      resources: [this.deploymentConfig.deploymentConfigArn],
    }));
    new lambda.EventInvokeConfig(resources, 'ControllerInvokeConfig', {
      function: this.controller,
      retryAttempts: 0,
      onFailure: new destinations.SqsDestination(createDeadLetterQueue(resources, 'release controller invocations')),
    });
    Validations.of(this.controller).acknowledge({
      id: 'Serverless-LambdaDLQ',
      reason: 'Failed asynchronous invocations go to the on-failure destination queue of the invoke configuration; a ' +
        'dead-letter queue as well would receive every failure twice.',
    });

    return {
      actions: [new actions.LambdaInvokeAction({
        actionName: 'Release',
        lambda: this.controller,
        userParameters: { prefix: `#{${DeliveryPipeline.BUILD_VARIABLES_NAMESPACE}.RELEASE_PREFIX}` },
      })],
      gatesProductionTraffic: false,
      // The controller has already returned every alias to its previous version when a release fails.
      rollbackOnFailure: false,
    };
  }

  /** The wildcards of the release's roles, each acknowledged for what it names. */
  public acknowledgeFindings(pipeline: DeliveryPipeline): void {
    const starReason = 'Only actions without resource-level permissions: X-Ray tracing and, for the function CodePipeline ' +
      'invokes, codepipeline:PutJobSuccessResult and PutJobFailureResult (the job id is only known to the function).';
    const starActions = ['xray:PutTraceSegments', 'xray:PutTelemetryRecords', 'codepipeline:PutJobSuccessResult', 'codepipeline:PutJobFailureResult'];
    for (const role of [this.controllerRole, this.hookRole]) {
      if (role) acknowledgeStarResourceOnlyFor(role, starActions, starReason);
    }
    const versionFindings = this.service.routeFunctions
      .map((rf) => nagRef(rf.function, 'Arn'))
      .filter((ref): ref is string => ref !== undefined)
      .map((ref) => `AwsSolutions-IAM5[Resource::${ref}:*]`);
    const stack = Stack.of(this.service);
    const region = nagPseudo(stack.region, 'Region');
    const account = nagPseudo(stack.account, 'AccountId');
    const bucketRef = this.artifactBucket ? nagRef(this.artifactBucket, 'Arn') : undefined;
    if (this.controllerRole && bucketRef) {
      acknowledge(this.controllerRole, [`AwsSolutions-IAM5[Resource::${bucketRef}/releases/*]`],
        'Read only, the bundles the build uploads under releases/<execution id>/ of this pipeline\'s own artifact bucket; ' +
        'Lambda reads them with the caller\'s permissions when the controller updates a function\'s code.');
    }
    if (this.controllerRole && this.alarmPrefix) {
      acknowledge(this.controllerRole, [`AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:cloudwatch:${region}:${account}:alarm:${this.alarmPrefix}-*]`],
        'The per-release alarms on the new versions, which the controller creates, lists (to sweep stale ones) and deletes under this release\'s own ' +
        'name prefix.');
    }
    const deploymentRole = this.service.deploymentRole;
    const hookRef = this.hook ? nagRef(this.hook, 'Arn') : undefined;
    if (hookRef) {
      acknowledge(deploymentRole, [`AwsSolutions-IAM5[Resource::${hookRef}:*]`],
        'CodeDeploy may invoke the one pre-traffic hook of this API and its versions (aws-cdk-lib\'s grantInvoke).');
    }
    if (this.controllerRole) {
      acknowledge(this.controllerRole, versionFindings,
        'The versions and the live alias of each of this API\'s functions, which the controller publishes and shifts; ' +
        'version numbers are created by each release.');
    }
    if (this.hookRole) {
      acknowledge(this.hookRole, versionFindings,
        'The pre-traffic test invokes the new version of each of this API\'s functions; version numbers are created by ' +
        'each release.');
    }
    const releaseAction = pipeline.pipeline.node.tryFindChild('Release')?.node.tryFindChild('Release')?.node.tryFindChild('CodePipelineActionRole');
    const controllerRef = this.controller ? nagRef(this.controller, 'Arn') : undefined;
    if (releaseAction && controllerRef) {
      acknowledge(releaseAction, [`AwsSolutions-IAM5[Resource::${controllerRef}:*]`],
        'CodePipeline\'s invoke action may invoke the one release controller and its versions (aws-cdk-lib).');
      acknowledgeStarResourceOnlyFor(releaseAction, ['lambda:ListFunctions'],
        'lambda:ListFunctions, which aws-cdk-lib grants CodePipeline\'s Lambda invoke action, has no resource-level permissions.');
    }
  }
}

/** The build: install and test, bundle each route with esbuild, upload the zips under releases/<execution id>/. */
function bundleBuildSpec(routes: ParsedRoute[], runtime: lambda.Runtime, testCommands: string[] | undefined): codebuild.BuildSpec {
  const tests = testCommands ?? ['if [ -f package.json ]; then npm ci && npm run test --if-present; else echo "no package.json: no tests to run"; fi'];
  const nodeMajor = /nodejs(\d+)/.exec(runtime.name)?.[1] ?? '22';
  const bundle = routes.flatMap((route) => [
    `npx --yes ${ESBUILD} ${shellQuote(route.entry)} --bundle --platform=node --target=node${nodeMajor} --format=cjs ` +
      `--sourcemap --outfile="$RELEASE_DIR/${route.id}/index.js"`,
    // Same bundle, same zip: fixed timestamps and order, no extra attributes, so Lambda sees unchanged code as unchanged.
    `(cd "$RELEASE_DIR/${route.id}" && find . -exec touch -h -d @315532800 {} + && find . -type f | LC_ALL=C sort | zip -q -X -D "../${route.id}.zip" -@)`,
    `aws s3 cp "$RELEASE_DIR/${route.id}.zip" "s3://$ARTIFACT_BUCKET/$RELEASE_PREFIX/${route.id}.zip" --only-show-errors`,
  ]);
  return codebuild.BuildSpec.fromObject({
    version: '0.2',
    env: { 'shell': 'bash', 'exported-variables': ['RELEASE_PREFIX'] },
    phases: {
      pre_build: {
        commands: [
          'cd "$CODEBUILD_SRC_DIR/$SOURCE_DIRECTORY"',
          ...tests,
        ],
      },
      build: {
        commands: [
          'cd "$CODEBUILD_SRC_DIR/$SOURCE_DIRECTORY"',
          'export RELEASE_PREFIX="releases/${PIPELINE_EXECUTION_ID:-$CODEBUILD_BUILD_NUMBER}"',
          'export RELEASE_DIR="$CODEBUILD_SRC_DIR/.release"',
          'mkdir -p "$RELEASE_DIR"',
          ...bundle,
          'printf \'{"prefix":"%s"}\' "$RELEASE_PREFIX" > "$CODEBUILD_SRC_DIR/release.json"',
        ],
      },
    },
    artifacts: { files: ['release.json'] },
  });
}

function shellQuote(value: string): string {
  return `'${value.replace(/'/g, "'\\''")}'`;
}

function chunks<T>(items: T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

function checkDeploymentConfig(scope: Construct, config: codedeploy.ILambdaDeploymentConfig): void {
  const name = config.deploymentConfigName;
  if (Token.isUnresolved(name)) return;
  if (name.startsWith('CodeDeployDefault.') && !LAMBDA_DEPLOYMENT_CONFIGS.includes(name)) {
    throw invalidInput(scope, 'deploymentConfig', name,
      `must be a Lambda deployment configuration: one of ${LAMBDA_DEPLOYMENT_CONFIGS.join(', ')}, or one you create with codedeploy.LambdaDeploymentConfig`);
  }
  if (!/^[A-Za-z0-9._+=,@-]{1,100}$/.test(name)) {
    throw invalidInput(scope, 'deploymentConfig', name, 'is not a valid deployment configuration name');
  }
}


/**
 * How long the traffic shift of a configuration takes, in minutes: predefined ones from CodeDeploy's list, those
 * created with `codedeploy.LambdaDeploymentConfig` from their traffic routing; `undefined` for an imported one.
 */
function shiftMinutes(config: codedeploy.ILambdaDeploymentConfig): number | undefined {
  const name = config.deploymentConfigName;
  if (!Token.isUnresolved(name) && SHIFT_MINUTES[name] !== undefined) return SHIFT_MINUTES[name];
  const cfn = (config as unknown as Partial<IConstruct>).node?.defaultChild;
  if (!(cfn instanceof codedeploy.CfnDeploymentConfig)) return undefined;
  const routing = Stack.of(cfn).resolve(cfn.trafficRoutingConfig) as {
    type?: string;
    timeBasedCanary?: { canaryInterval?: unknown };
    timeBasedLinear?: { linearInterval?: unknown; linearPercentage?: unknown };
  } | undefined;
  if (routing?.type === 'AllAtOnce') return 0;
  const canary = routing?.timeBasedCanary?.canaryInterval;
  if (routing?.type === 'TimeBasedCanary' && typeof canary === 'number') return canary;
  const interval = routing?.timeBasedLinear?.linearInterval;
  const percentage = routing?.timeBasedLinear?.linearPercentage;
  if (routing?.type === 'TimeBasedLinear' && typeof interval === 'number' && typeof percentage === 'number' && percentage > 0) {
    // As CodeDeploy's predefined LambdaLinear10PercentEvery1Minute, counted as 10 minutes.
    return interval * Math.ceil(100 / percentage);
  }
  return undefined;
}

function maxWaitMinutes(config: codedeploy.ILambdaDeploymentConfig): number {
  const shift = shiftMinutes(config);
  return shift === undefined ? MAX_WAIT_LIMIT_MINUTES : Math.min(MAX_WAIT_LIMIT_MINUTES, shift + TEST_AND_BAKE_MINUTES);
}

/** A configuration whose shift, with the tests, the bake and the rollback, cannot end before CodePipeline gives up. */
function checkDeploymentConfigDuration(scope: Construct, config: codedeploy.ILambdaDeploymentConfig): void {
  const shift = shiftMinutes(config);
  if (shift === undefined || shift + TEST_AND_BAKE_MINUTES <= MAX_WAIT_LIMIT_MINUTES) return;
  throw invalidInput(scope, 'deploymentConfig', `a traffic shift of ${shift} minutes`,
    `must shift traffic within ${MAX_WAIT_LIMIT_MINUTES - TEST_AND_BAKE_MINUTES} minutes: with ${TEST_AND_BAKE_MINUTES} minutes for tests and bake and `
    + `${ROLLBACK_LIMIT_MINUTES} for a rollback, a release must end before CodePipeline fails the release action after ${LAMBDA_INVOKE_ACTION_LIMIT_MINUTES / 60} hours`);
}
