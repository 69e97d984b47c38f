import { ArnFormat, Duration, Names, Stack, Token, Validations } from 'aws-cdk-lib';
import * as codebuild from 'aws-cdk-lib/aws-codebuild';
import * as codedeploy from 'aws-cdk-lib/aws-codedeploy';
import * as codepipeline from 'aws-cdk-lib/aws-codepipeline';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as destinations from 'aws-cdk-lib/aws-lambda-destinations';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as sns from 'aws-cdk-lib/aws-sns';
import { Construct, IConstruct } from 'constructs';
import { PatternRelease } from './pattern-release';
import { LambdaPreTrafficFunction } from '../handlers/lambda-pre-traffic-function';
import { ServerlessReleaseFunction } from '../handlers/serverless-release-function';
import {
  LAMBDA_INVOKE_ACTION_LIMIT_MINUTES, MAX_WAIT_LIMIT_MINUTES, ROLLBACK_LIMIT_MINUTES, TEST_AND_BAKE_MINUTES,
} from '../handlers/serverless-release-limits';
import { DeliveryPipeline } from '../pipeline/delivery-pipeline';
import { ReleaseConfig, ReleaseContext } from '../pipeline/release';
import { acknowledge, acknowledgeStarResourceOnlyFor, nagPseudo, nagRef } from '../private/acknowledgements';
import { createDeadLetterQueue } from '../private/encrypted-topic';
import { ReleaseInvokeAction } from '../private/invoke-action';
import { createLogGroup } from '../private/log-group';
import { ReleaseAlarmCleanup } from '../private/release-cleanup';
import { grantReleaseProgress } from '../private/release-progress';
import { invalidInput } from '../private/validate';
import { ParsedRoute, ServerlessApi } from '../runtime/serverless-api';

/** The esbuild the build runs to bundle each route (fetched by npx from the npm registry). */
const ESBUILD = 'esbuild@0.28.2';

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
 * Configuration of `LambdaAliasRelease`.
 * @internal
 */
export interface LambdaAliasReleaseProps {
  /** The API whose functions the pipeline releases. */
  readonly service: ServerlessApi;
  /** Its routes, as parsed. */
  readonly routes: ParsedRoute[];
  /** The phrase the answer of `GET /` must contain in the pre-traffic test. */
  readonly expectedPhrase?: string;
  /** Log retention of the release functions. */
  readonly logRetention?: logs.RetentionDays;
  /** How CodeDeploy shifts each alias (checked with `checkLambdaDeploymentConfig`). */
  readonly deploymentConfig: codedeploy.ILambdaDeploymentConfig;
  /**
   * The pipeline's name, known before the pipeline exists (a literal: the release action cannot refer to its own
   * pipeline): names the controller's traffic step events. Without it, the controller sends none.
   */
  readonly pipelineName?: string;
}

/**
 * What `LambdaAliasRelease.bind()` created.
 * @internal
 */
export interface LambdaAliasReleaseConfig extends ReleaseConfig {
  /** The function that ships a release and shifts the aliases (CodePipeline invokes it). */
  readonly controller: lambda.Function;
  /** The pre-traffic test of each new version (CodeDeploy invokes it). */
  readonly hook: lambda.Function;
  /** Makes the per-release alarms the controller creates notify this topic. */
  notifyAlarmsTo(topic: sns.ITopic): void;
}

/**
 * Releases the code of every route with CodeDeploy: the release controller ships each function's bundle, publishes a
 * version, and shifts all `live` aliases together (ADR 0007).
 * @internal
 */
export class LambdaAliasRelease extends PatternRelease<LambdaAliasReleaseConfig> {
  public readonly description = 'a coordinated CodeDeploy shift of every function\'s live alias';

  constructor(private readonly props: LambdaAliasReleaseProps) {
    super();
  }

  protected create(scope: Construct, context: ReleaseContext): LambdaAliasReleaseConfig {
    const service = this.props.service;
    const resources = new Construct(scope, 'LambdaRelease');
    const stack = Stack.of(scope);
    const retention = this.props.logRetention ?? logs.RetentionDays.ONE_MONTH;
    const alarmPrefix = Names.uniqueResourceName(resources, { maxLength: 120, separator: '-' });
    const routeFunctions = service.routeFunctions;
    const artifactBucket = context.artifactBucket;
    if (!artifactBucket) {
      throw new Error(`${service.node.path}: the pipeline must give the release its artifact bucket`);
    }

    // The pre-traffic test: CodeDeploy invokes it before it shifts any traffic; it invokes the new version.
    const hookLogs = createLogGroup(resources, 'HookLogs', retention);
    const hookRole = new iam.Role(resources, 'HookRole', {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      description: `Tests each new version of ${service.node.path} before it gets traffic`,
    });
    hookRole.addToPolicy(new iam.PolicyStatement({ actions: ['logs:CreateLogStream', 'logs:PutLogEvents'], resources: [hookLogs.logGroupArn] }));
    const routesEnv: { [id: string]: unknown } = {};
    for (const route of this.props.routes) {
      routesEnv[route.id] = {
        method: route.method,
        path: route.path,
        smokeTestPath: route.smokeTestPath,
        expectedPhrase: route.method === 'GET' && route.path === '/' ? this.props.expectedPhrase : undefined,
      };
    }
    const hook = new LambdaPreTrafficFunction(resources, 'Hook', {
      role: hookRole,
      logGroup: hookLogs,
      description: `Pre-traffic test of each new version of ${service.node.path}`,
      // Long enough to wait for the slowest route (it invokes each new version synchronously) and still report.
      timeout: Duration.seconds(Math.min(900, Math.max(120,
        ...this.props.routes.filter((r) => !r.timeout.isUnresolved()).map((r) => r.timeout.toSeconds() + 30)))),
      memorySize: 256,
      architecture: lambda.Architecture.ARM_64,
      tracing: lambda.Tracing.ACTIVE,
      environment: { ROUTES: JSON.stringify(routesEnv), AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: '1' },
    });
    hook.grantInvoke(service.deploymentRole);
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
    Validations.of(hook).acknowledge({
      id: 'Serverless-LambdaDLQ',
      reason: 'CodeDeploy waits for the hook\'s verdict and fails the deployment (rolling back) when none comes; a ' +
        'queued event could not be answered in time anyway.',
    });

    // The controller: CodePipeline invokes it; it polls with continuation tokens until every shift has finished.
    const controllerLogs = createLogGroup(resources, 'ControllerLogs', retention);
    const controllerRole = new iam.Role(resources, 'ControllerRole', {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      description: `Ships the releases of ${service.node.path}`,
    });
    controllerRole.addToPolicy(new iam.PolicyStatement({ actions: ['logs:CreateLogStream', 'logs:PutLogEvents'], resources: [controllerLogs.logGroupArn] }));
    const functionsEnv = routeFunctions.map((rf) => ({
      id: rf.route.id,
      functionName: rf.function.functionName,
      aliasName: rf.alias.aliasName,
      deploymentGroupName: rf.deploymentGroup.deploymentGroupName,
    }));
    const controller = new ServerlessReleaseFunction(resources, 'Controller', {
      role: controllerRole,
      logGroup: controllerLogs,
      description: `Ships each release of ${service.node.path} and shifts its aliases together`,
      timeout: Duration.minutes(5),
      memorySize: 256,
      architecture: lambda.Architecture.ARM_64,
      tracing: lambda.Tracing.ACTIVE,
      environment: {
        FUNCTIONS: stack.toJsonString(functionsEnv),
        CODEDEPLOY_APPLICATION: service.application.applicationName,
        ARTIFACT_BUCKET: artifactBucket.bucketName,
        PRE_TRAFFIC_HOOK: hook.functionName,
        ALARM_PREFIX: alarmPrefix,
        // The pattern's alarm topic, set by notifyAlarmsTo(): it is created after the pipeline, with the pipeline's key.
        ALARM_TOPIC_ARN: '',
        // How long a release may wait, wall-clock: the configuration's shift plus 30 minutes for tests and bake; an
        // imported configuration, whose length is unknown here, gets the longest wait that still leaves the rollback
        // time before CodePipeline's 24 hours (checked at synth time, see checkDeploymentConfig).
        MAX_WAIT_MINUTES: String(maxWaitMinutes(this.props.deploymentConfig)),
        // Numbers the traffic step events (src/handlers/serverless-release/progress.ts); unknown: only the 100 % step.
        TRAFFIC_STEPS: trafficSteps(this.props.deploymentConfig)?.join(',') ?? '',
        AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: '1',
      },
    });
    // The per-release alarms the controller creates outside CloudFormation are deleted with the stack: CloudFormation
    // deletes the controller first, then the cleanup runs (ADR 0007, "Consequences").
    const cleanup = new ReleaseAlarmCleanup(resources, 'AlarmCleanup', { alarmPrefix, logRetention: retention });
    controller.node.addDependency(cleanup.resource);
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
    const application = service.application.applicationName;
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
    if (this.props.pipelineName) grantReleaseProgress(controllerRole);
    controllerRole.addToPolicy(new iam.PolicyStatement({
      actions: ['codedeploy:GetDeploymentConfig'],
      resources: [this.props.deploymentConfig.deploymentConfigArn],
    }));
    new lambda.EventInvokeConfig(resources, 'ControllerInvokeConfig', {
      function: controller,
      retryAttempts: 0,
      onFailure: new destinations.SqsDestination(createDeadLetterQueue(resources, 'release controller invocations')),
    });
    Validations.of(controller).acknowledge({
      id: 'Serverless-LambdaDLQ',
      reason: 'Failed asynchronous invocations go to the on-failure destination queue of the invoke configuration; a ' +
        'dead-letter queue as well would receive every failure twice.',
    });

    acknowledgeFindings(service, { controller, controllerRole, hook, hookRole, alarmPrefix, artifactBucket });

    return {
      actions: [new ReleaseInvokeAction({
        actionName: 'Release',
        lambda: controller,
        userParameters: {
          prefix: `#{${DeliveryPipeline.BUILD_VARIABLES_NAMESPACE}.RELEASE_PREFIX}`,
          // The traffic step events name the pipeline and its execution.
          ...(this.props.pipelineName ? { pipeline: this.props.pipelineName, executionId: codepipeline.GlobalVariables.executionId } : {}),
        },
        purpose: 'release controller',
      })],
      gatesProductionTraffic: false,
      // The controller has already returned every alias to its previous version when a release fails.
      rollbackOnFailure: false,
      reportsTrafficSteps: this.props.pipelineName !== undefined,
      controller,
      hook,
      notifyAlarmsTo: (topic) => controller.addEnvironment('ALARM_TOPIC_ARN', topic.topicArn),
    };
  }
}

/** What the release created whose findings it acknowledges. */
interface LambdaAliasReleaseResources {
  readonly controller: lambda.Function;
  readonly controllerRole: iam.Role;
  readonly hook: lambda.Function;
  readonly hookRole: iam.Role;
  readonly alarmPrefix: string;
  readonly artifactBucket: s3.IBucket;
}

/** The wildcards of the release's roles, each acknowledged for what it names. */
function acknowledgeFindings(service: ServerlessApi, created: LambdaAliasReleaseResources): void {
  const { controllerRole, hookRole } = created;
  const starReason = 'Only actions without resource-level permissions: X-Ray tracing and, for the function CodePipeline ' +
    'invokes, codepipeline:PutJobSuccessResult and PutJobFailureResult (the job id is only known to the function).';
  const starActions = ['xray:PutTraceSegments', 'xray:PutTelemetryRecords', 'codepipeline:PutJobSuccessResult', 'codepipeline:PutJobFailureResult'];
  for (const role of [controllerRole, hookRole]) {
    acknowledgeStarResourceOnlyFor(role, starActions, starReason);
  }
  const versionFindings = service.routeFunctions
    .map((rf) => nagRef(rf.function, 'Arn'))
    .filter((ref): ref is string => ref !== undefined)
    .map((ref) => `AwsSolutions-IAM5[Resource::${ref}:*]`);
  const stack = Stack.of(service);
  const region = nagPseudo(stack.region, 'Region');
  const account = nagPseudo(stack.account, 'AccountId');
  const bucketRef = nagRef(created.artifactBucket, 'Arn');
  if (bucketRef) {
    acknowledge(controllerRole, [`AwsSolutions-IAM5[Resource::${bucketRef}/releases/*]`],
      'Read only, the bundles the build uploads under releases/<execution id>/ of this pipeline\'s own artifact bucket; ' +
      'Lambda reads them with the caller\'s permissions when the controller updates a function\'s code.');
  }
  acknowledge(controllerRole, [`AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:cloudwatch:${region}:${account}:alarm:${created.alarmPrefix}-*]`],
    'The per-release alarms on the new versions, which the controller creates, lists (to sweep stale ones) and deletes under this release\'s own ' +
    'name prefix.');
  const hookRef = nagRef(created.hook, 'Arn');
  if (hookRef) {
    acknowledge(service.deploymentRole, [`AwsSolutions-IAM5[Resource::${hookRef}:*]`],
      'CodeDeploy may invoke the one pre-traffic hook of this API and its versions (aws-cdk-lib\'s grantInvoke).');
  }
  acknowledge(controllerRole, versionFindings,
    'The versions and the live alias of each of this API\'s functions, which the controller publishes and shifts; ' +
    'version numbers are created by each release.');
  acknowledge(hookRole, versionFindings,
    'The pre-traffic test invokes the new version of each of this API\'s functions; version numbers are created by ' +
    'each release.');
}

/**
 * The build of a Lambda alias release: install and test, bundle each route with esbuild, upload the zips under
 * releases/<execution id>/ of the artifact bucket (`ARTIFACT_BUCKET`), in `SOURCE_DIRECTORY`.
 * @internal
 */
export function lambdaBundleBuildSpec(routes: ParsedRoute[], runtime: lambda.Runtime, testCommands: string[] | undefined): codebuild.BuildSpec {
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

/**
 * Checks a deployment configuration for the release: a Lambda one, whose shift ends in time.
 * @internal
 */
export function checkLambdaDeploymentConfig(scope: Construct, config: codedeploy.ILambdaDeploymentConfig): void {
  checkDeploymentConfig(scope, config);
  checkDeploymentConfigDuration(scope, config);
}

/**
 * The build bundles the handlers with esbuild: the functions run Node.js.
 * @internal
 */
export function checkBundledRuntime(scope: Construct, runtime: lambda.Runtime): void {
  if (runtime.family !== lambda.RuntimeFamily.NODEJS) {
    throw invalidInput(scope, 'runtime', runtime.name, 'must be a Node.js runtime: the build bundles the handlers with esbuild');
  }
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

/**
 * The share of traffic on the new version after each step of `config` (`[10, 100]` for a 10 % canary, `[10, 20, ...,
 * 100]` for 10 % linear steps, `[100]` all at once); undefined when the configuration is imported.
 */
export function trafficSteps(config: codedeploy.ILambdaDeploymentConfig): number[] | undefined {
  const linear = (p: number) => Array.from({ length: Math.ceil(100 / p) }, (_, i) => Math.min(100, (i + 1) * p));
  const name = config.deploymentConfigName;
  if (!Token.isUnresolved(name)) {
    if (/^CodeDeployDefault\.LambdaAllAtOnce$/.test(name)) return [100];
    const canary = /^CodeDeployDefault\.LambdaCanary(\d+)Percent/.exec(name);
    if (canary) return [Number(canary[1]), 100];
    const lin = /^CodeDeployDefault\.LambdaLinear(\d+)Percent/.exec(name);
    if (lin) return linear(Number(lin[1]));
  }
  const cfn = (config as unknown as Partial<IConstruct>).node?.defaultChild;
  if (!(cfn instanceof codedeploy.CfnDeploymentConfig)) return undefined;
  const routing = Stack.of(cfn).resolve(cfn.trafficRoutingConfig) as {
    type?: string; timeBasedCanary?: { canaryPercentage?: unknown }; timeBasedLinear?: { linearPercentage?: unknown };
  } | undefined;
  if (routing?.type === 'AllAtOnce') return [100];
  const canaryPercent = routing?.timeBasedCanary?.canaryPercentage;
  if (routing?.type === 'TimeBasedCanary' && typeof canaryPercent === 'number' && canaryPercent > 0 && canaryPercent < 100) return [canaryPercent, 100];
  const linearPercent = routing?.timeBasedLinear?.linearPercentage;
  if (routing?.type === 'TimeBasedLinear' && typeof linearPercent === 'number' && linearPercent > 0) return linear(linearPercent);
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
