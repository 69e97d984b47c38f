import { Duration, Token, Validations } from 'aws-cdk-lib';
import * as codedeploy from 'aws-cdk-lib/aws-codedeploy';
import * as codepipeline from 'aws-cdk-lib/aws-codepipeline';
import * as actions from 'aws-cdk-lib/aws-codepipeline-actions';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as destinations from 'aws-cdk-lib/aws-lambda-destinations';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import { SmokeTestFunction } from '../handlers/smoke-test-function';
import { acknowledge, acknowledgeStarResourceOnlyFor, nagRef } from '../private/acknowledgements';
import { createDeadLetterQueue } from '../private/encrypted-topic';
import { createLogGroup } from '../private/log-group';
import { pruneRedundantDependsOn } from '../private/redundant-depends-on';
import { checkDuration, checkInteger, invalidInput } from '../private/validate';

/**
 * What a smoke test checks.
 */
export interface SmokeTestProps {
  /**
   * The base URL of the version under test, like `http://test.example.com:8080`.
   */
  readonly baseUrl: string;

  /**
   * The health path: it must answer 200 with JSON `{"status": "ok", ...}`.
   *
   * @default '/healthcheck'
   */
  readonly healthPath?: string;

  /**
   * A phrase `GET /` must contain.
   *
   * @default - the welcome page is not checked
   */
  readonly expectedPhrase?: string;

  /**
   * How often a failing check is tried (a target that is still registering does not fail the release).
   *
   * @default 3
   */
  readonly attempts?: number;

  /**
   * How long one request may take.
   *
   * @default Duration.seconds(5)
   */
  readonly requestTimeout?: Duration;

  /**
   * How long the whole smoke test may take; the verdict is always reported before this runs out.
   *
   * @default Duration.minutes(2)
   */
  readonly timeout?: Duration;

  /**
   * How long the smoke test's logs are kept.
   *
   * @default logs.RetentionDays.ONE_MONTH
   */
  readonly logRetention?: logs.RetentionDays;
}

/**
 * Options of the pipeline action that runs a smoke test.
 */
export interface SmokeTestActionOptions {
  /**
   * The name of the action.
   *
   * @default 'SmokeTest'
   */
  readonly actionName?: string;

  /**
   * The order of the action in its stage.
   *
   * @default 1
   */
  readonly runOrder?: number;
}

/**
 * A Lambda function that smoke-tests a new version through its test endpoint (health check and welcome phrase) and
 * reports the verdict to the engine that invoked it: a CodePipeline job, a CodeDeploy lifecycle hook, or an Amazon
 * ECS blue/green lifecycle hook. It never hangs and always reports a failure back.
 */
export class SmokeTest extends Construct {
  /** The function. */
  public readonly function: lambda.IFunction;

  /** The function's role. */
  public readonly role: iam.IRole;

  /** The function's log group. */
  public readonly logGroup: logs.ILogGroup;

  constructor(scope: Construct, id: string, props: SmokeTestProps) {
    super(scope, id);
    if (!Token.isUnresolved(props.baseUrl) && !/^https?:\/\/[^\s/]+(\/\S*)?$/.test(props.baseUrl)) {
      throw invalidInput(this, 'baseUrl', props.baseUrl, 'must be an http(s) URL like http://test.example.com:8080');
    }
    if (props.healthPath !== undefined && !Token.isUnresolved(props.healthPath) && !/^\/\S*$/.test(props.healthPath)) {
      throw invalidInput(this, 'healthPath', props.healthPath, "must start with '/' and contain no spaces");
    }
    const attempts = props.attempts ?? 3;
    checkInteger(this, 'attempts', attempts, 1, 20);
    checkDuration(this, 'requestTimeout', props.requestTimeout, Duration.seconds(1), Duration.minutes(1));
    checkDuration(this, 'timeout', props.timeout, Duration.seconds(30), Duration.minutes(15));

    this.logGroup = createLogGroup(this, 'Logs', props.logRetention);
    const role = new iam.Role(this, 'Role', {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      description: `Runs the smoke test ${this.node.path}`,
    });
    this.role = role;
    role.addToPolicy(new iam.PolicyStatement({
      actions: ['logs:CreateLogStream', 'logs:PutLogEvents'],
      resources: [this.logGroup.logGroupArn],
    }));

    const environment: { [key: string]: string } = {
      SMOKE_TEST_BASE_URL: props.baseUrl,
      SMOKE_TEST_HEALTH_PATH: props.healthPath ?? '/healthcheck',
      SMOKE_TEST_ATTEMPTS: String(attempts),
      SMOKE_TEST_REQUEST_TIMEOUT_MS: String((props.requestTimeout ?? Duration.seconds(5)).toMilliseconds()),
      AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: '1',
    };
    if (props.expectedPhrase !== undefined) {
      environment.SMOKE_TEST_EXPECTED_PHRASE = props.expectedPhrase;
    }
    const deadLetterQueue = createDeadLetterQueue(this, 'smoke test invocations');
    this.function = new SmokeTestFunction(this, 'Function', {
      role,
      logGroup: this.logGroup,
      timeout: props.timeout ?? Duration.minutes(2),
      memorySize: 256,
      architecture: lambda.Architecture.ARM_64,
      tracing: lambda.Tracing.ACTIVE,
      environment,
    });
    // A smoke test is invoked by an engine that waits for its answer; a retry of a failed invocation could report a
    // stale verdict, so failed asynchronous invocations are not retried: their records go to the queue (once: a
    // function dead-letter queue as well would receive each failure a second time).
    new lambda.EventInvokeConfig(this, 'InvokeConfig', {
      function: this.function,
      retryAttempts: 0,
      onFailure: new destinations.SqsDestination(deadLetterQueue),
    });
    Validations.of(this.function).acknowledge({
      id: 'Serverless-LambdaDLQ',
      reason: 'Failed asynchronous invocations go to the on-failure destination queue of the invoke configuration; a ' +
        'dead-letter queue as well would receive every failure twice.',
    });
    acknowledgeStarResourceOnlyFor(role, [
      'xray:PutTraceSegments', 'xray:PutTelemetryRecords',
      'codepipeline:PutJobSuccessResult', 'codepipeline:PutJobFailureResult',
    ], 'Only actions without resource-level permissions: xray:PutTraceSegments and PutTelemetryRecords for tracing and, ' +
      'when a pipeline invokes the test, codepipeline:PutJobSuccessResult and PutJobFailureResult (granted by ' +
      'aws-cdk-lib with the invoke action; the job id is only known to the invoked function).');
    pruneRedundantDependsOn(this);
  }

  /**
   * Lets the smoke test report its verdict to the lifecycle hooks of a CodeDeploy Lambda deployment group.
   */
  public grantReportToCodeDeploy(deploymentGroup: codedeploy.ILambdaDeploymentGroup): iam.Grant {
    return iam.Grant.addToPrincipal({
      grantee: this.role,
      actions: ['codedeploy:PutLifecycleEventHookExecutionStatus'],
      resourceArns: [deploymentGroup.deploymentGroupArn],
    });
  }

  /**
   * A CodePipeline action that runs the smoke test and passes or fails with its verdict.
   */
  public pipelineAction(options: SmokeTestActionOptions = {}): codepipeline.IAction {
    const action = new SmokeTestInvokeAction({
      actionName: options.actionName ?? 'SmokeTest',
      runOrder: options.runOrder,
      lambda: this.function,
    });
    return action;
  }
}

/** Invokes the smoke test, and acknowledges on the action's role the grants aws-cdk-lib writes for it. */
class SmokeTestInvokeAction extends actions.LambdaInvokeAction {
  protected bound(scope: Construct, stage: codepipeline.IStage, options: codepipeline.ActionBindOptions): codepipeline.ActionConfig {
    const config = super.bound(scope, stage, options);
    acknowledge(options.role, ['AwsSolutions-IAM5[Resource::*]'],
      'lambda:ListFunctions, which the CodePipeline Lambda invoke action needs, does not support resource-level permissions.');
    const fn = nagRef(this.actionProperties.resource!, 'Arn');
    if (fn) {
      acknowledge(options.role, [`AwsSolutions-IAM5[Resource::${fn}:*]`],
        'The action may invoke the versions and aliases of this one smoke-test function only.');
    }
    return config;
  }
}
