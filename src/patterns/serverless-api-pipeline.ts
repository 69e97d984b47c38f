import { CfnOutput, Duration, Lazy } from 'aws-cdk-lib';
import * as apigateway from 'aws-cdk-lib/aws-apigateway';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as codedeploy from 'aws-cdk-lib/aws-codedeploy';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as sns from 'aws-cdk-lib/aws-sns';
import { Construct } from 'constructs';
import { ServicePipelineProps } from './service-pipeline-props';
import { addServerlessApiAlarms } from '../monitoring/serverless-api-alarms';
import { ServiceMonitoring } from '../monitoring/service-monitoring';
import { Approval } from '../pipeline/approval';
import { DeliveryPipeline } from '../pipeline/delivery-pipeline';
import { uniquePhysicalName } from '../private/names';
import { checkDuration, checkInteger, checkNotEmpty, normalizeRepositoryDirectory } from '../private/validate';
import { checkBundledRuntime, checkLambdaDeploymentConfig, LambdaAliasRelease, lambdaBundleBuildSpec } from '../release/lambda-alias-release';
import { ApiRoute } from '../runtime/api-route';
import { checkFunctionLimits, checkStageName, parseRoutes, ServerlessApi } from '../runtime/serverless-api';

/**
 * Properties of `ServerlessApiPipeline`.
 */
export interface ServerlessApiPipelineProps extends ServicePipelineProps {
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
    const routes = parseRoutes(this, props.routes, { memorySize, timeout, environment: props.environment });
    const deploymentConfig = props.deploymentConfig ?? codedeploy.LambdaDeploymentConfig.CANARY_10PERCENT_5MINUTES;
    checkLambdaDeploymentConfig(this, deploymentConfig);
    checkInteger(this, 'throttlingRateLimit', props.throttlingRateLimit, 1, 10000);
    checkInteger(this, 'throttlingBurstLimit', props.throttlingBurstLimit, 0, 5000);
    if (props.expectedPhrase !== undefined) checkNotEmpty(this, 'expectedPhrase', props.expectedPhrase);
    if (props.logMetricFilterPattern !== undefined) checkNotEmpty(this, 'logMetricFilterPattern', props.logMetricFilterPattern);
    checkDuration(this, 'latencyThreshold', props.latencyThreshold, Duration.millis(10), Duration.seconds(29));
    props.testCommands?.forEach((command) => checkNotEmpty(this, 'testCommands', command));
    const stageName = props.stageName ?? 'prod';
    checkStageName(this, stageName);
    const runtime = props.runtime ?? lambda.Runtime.NODEJS_24_X;
    checkBundledRuntime(this, runtime);

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

    // Known before the pipeline exists, so that the release controller can name it in its traffic step events.
    const releasePipelineName = uniquePhysicalName(this, 39);
    const release = new LambdaAliasRelease({
      service,
      routes,
      expectedPhrase: props.expectedPhrase,
      logRetention: props.logRetention,
      deploymentConfig,
      pipelineName: releasePipelineName,
    });
    this.pipeline = new DeliveryPipeline(this, 'Pipeline', {
      pipelineName: releasePipelineName,
      source: props.source,
      approval: props.approval,
      notifications: props.notifications,
      infrastructure: props.infrastructure,
      retainArtifacts: props.retainArtifacts,
      buildStep: {
        buildSpec: lambdaBundleBuildSpec(routes, runtime, props.testCommands),
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
    this.releaseController = release.created.controller;
    this.preTrafficHook = release.created.hook;

    this.monitoring = new ServiceMonitoring(this, 'Monitoring', {
      alarmEmails: props.alarmEmails,
      encryptionKey: this.pipeline.artifactKey,
      title: `${this.node.path}: API, functions and releases`,
    });
    this.alarmTopic = this.monitoring.alarmTopic;
    this.dashboard = this.monitoring.dashboard;
    release.created.notifyAlarmsTo(this.alarmTopic);
    addServerlessApiAlarms(this, this.monitoring, service, {
      latencyThreshold: props.latencyThreshold, logMetricFilterPattern: props.logMetricFilterPattern,
    });

    // Delivery (DORA) rows and release markers on the service's graphs, on the pattern's own dashboard.
    this.pipeline.deliveryMetrics?.addToMonitoring(this.monitoring);

    const pipelineName = this.pipeline.pipeline.pipelineName;
    this.rollbackCommand = `aws codepipeline rollback-stage --pipeline-name ${pipelineName} --stage-name Release ` +
      '--target-pipeline-execution-id <id of an earlier successful execution>';
    new CfnOutput(this, 'ApiUrl', { value: this.url, description: 'The API' });
    new CfnOutput(this, 'RollbackCommand', { value: this.rollbackCommand, description: 'Rolls every function back to an earlier release' });
  }
}
