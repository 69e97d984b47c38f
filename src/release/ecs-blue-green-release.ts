import { ArnFormat, Duration, Stack, Token, Validations } from 'aws-cdk-lib';
import * as codebuild from 'aws-cdk-lib/aws-codebuild';
import * as codepipeline from 'aws-cdk-lib/aws-codepipeline';
import * as actions from 'aws-cdk-lib/aws-codepipeline-actions';
import * as ecr from 'aws-cdk-lib/aws-ecr';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as destinations from 'aws-cdk-lib/aws-lambda-destinations';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import { PatternRelease } from './pattern-release';
import { EcsReleaseHookFunction } from '../handlers/ecs-release-hook-function';
import { RecordReleaseFunction } from '../handlers/record-release-function';
import { ApprovalPlacement } from '../pipeline/approval';
import { DeliveryPipeline } from '../pipeline/delivery-pipeline';
import { ReleaseConfig, ReleaseContext } from '../pipeline/release';
import { acknowledge, acknowledgeStarResourceOnlyFor, nagPseudo, nagRef } from '../private/acknowledgements';
import { createDeadLetterQueue } from '../private/encrypted-topic';
import { ReleaseInvokeAction } from '../private/invoke-action';
import { createLogGroup } from '../private/log-group';
import { checkDuration, invalidInput } from '../private/validate';
import { BlueGreenFargateService } from '../runtime/fargate-service';

/**
 * The longest the CodePipeline ECS deploy action waits for a deployment (its `DeploymentTimeout`, 1 to 60 minutes).
 * @internal
 */
export const ECS_DEPLOY_ACTION_LIMIT = Duration.minutes(60);

/**
 * What a release keeps of the deploy action's hour for starting the new tasks, the smoke test and the traffic shifts.
 * @internal
 */
export const ECS_RELEASE_MARGIN = Duration.minutes(15);

/**
 * What the hook leaves of the deploy action's hour, after the bake time, for the production traffic shift and the
 * clean-up: the hook answers FAILED by `60 - 5 - bakeTime` minutes after the deploy action started.
 * @internal
 */
export const ECS_PRODUCTION_SHIFT_MARGIN = Duration.minutes(5);

/** The names the approval gate looks up in the pipeline. @internal */
export const RELEASE_STAGE_NAME = 'Release';
/** @internal */
export const PRODUCTION_APPROVAL_ACTION_NAME = 'ApproveProductionTraffic';
/** The ECS deploy action: the hook and the recorder find this release's service deployment by its start. @internal */
export const DEPLOY_ACTION_NAME = 'Deploy';

/**
 * Configuration of `EcsBlueGreenRelease`.
 * @internal
 */
export interface EcsBlueGreenReleaseProps {
  /** The service the pipeline releases. */
  readonly runtime: BlueGreenFargateService;
  /** The SSM parameter holding the image in production; CloudFormation reads it on every stack update. */
  readonly imageParameterName: string;
  /** The image the service runs before the first release. */
  readonly placeholderImage: string;
  /** The pipeline's name (known before the pipeline exists, so the hook can look its approval up without a cycle). */
  readonly pipelineName: string;
  /** The bake time of the service's deployments. */
  readonly bakeTime: Duration;
  /** Health path the smoke test checks. */
  readonly healthCheckPath: string;
  /** The phrase the welcome page must contain. */
  readonly expectedPhrase?: string;
  /** Log retention of the release functions. */
  readonly logRetention?: logs.RetentionDays;
}

/**
 * What `EcsBlueGreenRelease.bind()` created.
 * @internal
 */
export interface EcsBlueGreenReleaseConfig extends ReleaseConfig {
  /** The lifecycle hook: smoke test and approval gate (ECS invokes it). */
  readonly hookFunction: lambda.Function;
  /** The recorder of the image in production (CodePipeline invokes it). */
  readonly recordFunction: lambda.Function;
}

/**
 * Releases a `BlueGreenFargateService` with Amazon ECS native blue/green deployments (ADR 0006):
 *
 * - Release stage, run order 1: CodePipeline's ECS deploy action registers a task definition revision with the
 *   built image and updates the service; ECS starts the new tasks behind the test listener. With
 *   `Approval.beforeProductionTraffic()` a manual approval runs alongside, its link the test listener.
 * - The service's `POST_TEST_TRAFFIC_SHIFT` hook smoke-tests the new tasks through the test listener, then holds the
 *   deployment until the approval is given (rejected or timed out: ECS rolls back). Production traffic then shifts;
 *   the deployment alarms watch the bake time.
 * - Run order 2: `RecordRelease` waits until the deployment succeeded with the built image and writes that image to the
 *   SSM parameter from which CloudFormation takes the image, so a later `cdk deploy` keeps it.
 * @internal
 */
export class EcsBlueGreenRelease extends PatternRelease<EcsBlueGreenReleaseConfig> {
  public readonly description: string;

  constructor(private readonly props: EcsBlueGreenReleaseProps) {
    super();
    this.description = 'an ECS blue/green deployment of the built image';
  }

  /**
   * The longest the approval may wait: what is left of the deploy action's hour after the bake time and the margin.
   */
  public approvalWindow(): Duration {
    return Duration.minutes(ECS_DEPLOY_ACTION_LIMIT.toMinutes() - ECS_RELEASE_MARGIN.toMinutes() - this.props.bakeTime.toMinutes());
  }

  /**
   * The longest the hook holds this release's deployment, from the deploy action's start: what is left of the deploy
   * action's hour after the bake time and the production shift. With a bake time that is not a literal, the longest
   * bake time (45 minutes) is assumed.
   */
  public hookTimeLimit(): Duration {
    const maxBake = ECS_DEPLOY_ACTION_LIMIT.toMinutes() - ECS_RELEASE_MARGIN.toMinutes();
    const bake = this.props.bakeTime.isUnresolved() ? maxBake : this.props.bakeTime.toMinutes();
    return Duration.minutes(ECS_DEPLOY_ACTION_LIMIT.toMinutes() - ECS_PRODUCTION_SHIFT_MARGIN.toMinutes() - bake);
  }

  protected create(scope: Construct, context: ReleaseContext): EcsBlueGreenReleaseConfig {
    const runtime = this.props.runtime;
    const resources = new Construct(scope, 'EcsRelease');
    const gate = context.approval.placement === ApprovalPlacement.BEFORE_PRODUCTION_TRAFFIC;
    const window = this.approvalWindow();
    if (gate && this.props.bakeTime.isUnresolved()) {
      throw invalidInput(runtime.node.scope ?? runtime, 'bakeTime', this.props.bakeTime,
        'must be a literal duration with Approval.beforeProductionTraffic(), which must fit the approval into the ECS deploy action\'s hour');
    }
    if (gate) {
      const why = `CodePipeline's ECS deploy action waits at most ${ECS_DEPLOY_ACTION_LIMIT.toMinutes()} minutes for the whole ` +
        `deployment, of which the bake time takes ${this.props.bakeTime.toMinutes()} and starting the new tasks and the smoke test ` +
        `are given ${ECS_RELEASE_MARGIN.toMinutes()}`;
      if (window.toMinutes() < 5) {
        throw invalidInput(runtime.node.scope ?? runtime, 'bakeTime', this.props.bakeTime,
          `must leave the approval at least 5 minutes, so at most ${ECS_DEPLOY_ACTION_LIMIT.toMinutes() - ECS_RELEASE_MARGIN.toMinutes() - 5} minutes with Approval.beforeProductionTraffic(): ${why}`);
      }
      const given = context.approval.givenTimeout;
      if (given !== undefined && !given.isUnresolved() && given.toSeconds() > window.toSeconds()) {
        throw invalidInput('Approval.beforeProductionTraffic', 'timeout', given, `must be at most ${window.toMinutes()} minutes with an ECS blue/green release: ${why}`);
      }
    }

    const stack = Stack.of(scope);
    const parameterArn = stack.formatArn({
      service: 'ssm',
      resource: 'parameter',
      resourceName: this.props.imageParameterName.replace(/^\//, ''),
    });
    const pipelineArn = stack.formatArn({ service: 'codepipeline', resource: this.props.pipelineName });
    const clusterName = runtime.cluster.clusterName;
    const serviceName = runtime.service.serviceName;
    const serviceChildArn = (resource: string) => stack.formatArn({
      service: 'ecs',
      resource,
      resourceName: `${clusterName}/${serviceName}/*`,
      arnFormat: ArnFormat.SLASH_RESOURCE_NAME,
    });

    // The hook: smoke test, then (optionally) the approval gate. ECS invokes it synchronously.
    const hook = handlerFunction(resources, 'Hook', this.props.logRetention, (role, logGroup) => new EcsReleaseHookFunction(resources, 'HookFunction', {
      role,
      logGroup,
      description: `Smoke-tests new tasks of ${runtime.node.path} on the test listener${gate ? ' and holds production traffic until approved' : ''}`,
      timeout: Duration.minutes(2),
      memorySize: 256,
      architecture: lambda.Architecture.ARM_64,
      tracing: lambda.Tracing.ACTIVE,
      environment: {
        SMOKE_TEST_BASE_URL: runtime.testUrl,
        SMOKE_TEST_HEALTH_PATH: this.props.healthCheckPath,
        SMOKE_TEST_ATTEMPTS: '3',
        SMOKE_TEST_REQUEST_TIMEOUT_MS: '5000',
        ...(this.props.expectedPhrase !== undefined ? { SMOKE_TEST_EXPECTED_PHRASE: this.props.expectedPhrase } : {}),
        CONTAINER_NAME: runtime.container.containerName,
        PLACEHOLDER_IMAGE: this.props.placeholderImage,
        // The release guard, with every approval setting: a cdk deploy cannot overtake a release (ADR 0006).
        IMAGE_PARAMETER_NAME: this.props.imageParameterName,
        PIPELINE_NAME: this.props.pipelineName,
        RELEASE_STAGE_NAME: RELEASE_STAGE_NAME,
        DEPLOY_ACTION_NAME: DEPLOY_ACTION_NAME,
        HOOK_TIME_LIMIT_SECONDS: String(this.hookTimeLimit().toSeconds()),
        ...(gate ? {
          APPROVAL_ACTION_NAME: PRODUCTION_APPROVAL_ACTION_NAME,
          NOTIFY_TOPIC_ARN: context.notifications.topic.topicArn,
          TEST_URL: runtime.testUrl,
        } : {}),
        AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: '1',
      },
    }));
    // Revisions of the cluster's services: naming the service here would make the service (which references the hook)
    // depend on itself through this policy.
    hook.role.addToPrincipalPolicy(new iam.PolicyStatement({
      actions: ['ecs:DescribeServiceRevisions'],
      resources: [stack.formatArn({
        service: 'ecs',
        resource: 'service-revision',
        resourceName: `${clusterName}/*`,
        arnFormat: ArnFormat.SLASH_RESOURCE_NAME,
      })],
    }));
    // The release guard: the image in production, the release stage's state and actions, and the service's deployments
    // (of this cluster's services, for the same reason as above).
    hook.role.addToPrincipalPolicy(new iam.PolicyStatement({
      actions: ['ssm:GetParameter'],
      resources: [parameterArn],
    }));
    hook.role.addToPrincipalPolicy(new iam.PolicyStatement({
      actions: ['codepipeline:GetPipelineState', 'codepipeline:ListActionExecutions'],
      resources: [pipelineArn],
    }));
    hook.role.addToPrincipalPolicy(new iam.PolicyStatement({
      actions: ['ecs:ListServiceDeployments'],
      resources: [stack.formatArn({
        service: 'ecs',
        resource: 'service',
        resourceName: `${clusterName}/*`,
        arnFormat: ArnFormat.SLASH_RESOURCE_NAME,
      })],
    }));
    if (gate) {
      // The "ready for review" message goes to the pipeline's notification topic.
      context.notifications.topic.grantPublish(hook.role);
    }
    Validations.of(hook.fn).acknowledge({
      id: 'Serverless-LambdaDLQ',
      reason: 'ECS invokes the hook synchronously and reads its answer; an error makes ECS roll the deployment back, so ' +
        'there is no asynchronous invocation whose event a dead-letter queue could keep.',
    });
    const invokeRole = new iam.Role(resources, 'HookInvokeRole', {
      assumedBy: new iam.ServicePrincipal('ecs.amazonaws.com'),
      description: `Lets ECS call the release hook of ${runtime.node.path}`,
    });
    hook.fn.grantInvoke(invokeRole);
    runtime.service.addLifecycleHook(new ecs.DeploymentLifecycleLambdaTarget(hook.fn, 'ReleaseHook', {
      lifecycleStages: [ecs.DeploymentLifecycleStage.POST_TEST_TRAFFIC_SHIFT],
      role: invokeRole,
    }));
    // ECS may call the hook while CloudFormation creates the service: the invoke permission must exist by then.
    runtime.service.node.addDependency(invokeRole);

    // The recorder: CodePipeline invokes it after the deploy action.
    const record = handlerFunction(resources, 'Record', this.props.logRetention, (role, logGroup) => new RecordReleaseFunction(resources, 'RecordFunction', {
      role,
      logGroup,
      description: `Records the image in production of ${runtime.node.path} once its deployment succeeded`,
      timeout: Duration.minutes(1),
      memorySize: 256,
      architecture: lambda.Architecture.ARM_64,
      tracing: lambda.Tracing.ACTIVE,
      environment: {
        CLUSTER_NAME: clusterName,
        SERVICE_NAME: serviceName,
        CONTAINER_NAME: runtime.container.containerName,
        IMAGE_PARAMETER_NAME: this.props.imageParameterName,
        REPOSITORY_NAME: runtime.repository.repositoryName,
        PIPELINE_NAME: this.props.pipelineName,
        RELEASE_STAGE_NAME: RELEASE_STAGE_NAME,
        DEPLOY_ACTION_NAME: DEPLOY_ACTION_NAME,
        AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: '1',
      },
    }));
    // Released images get a second tag, `released-<tag>`, which the repository's lifecycle rule keeps apart.
    record.role.addToPrincipalPolicy(new iam.PolicyStatement({
      actions: ['ecr:BatchGetImage', 'ecr:PutImage'],
      resources: [runtime.repository.repositoryArn],
    }));
    record.role.addToPrincipalPolicy(new iam.PolicyStatement({
      actions: ['ecs:ListServiceDeployments'],
      resources: [runtime.service.serviceArn],
    }));
    // A deployment still running at the recorder's wait limit is rolled back, so that production matches the record.
    record.role.addToPrincipalPolicy(new iam.PolicyStatement({
      actions: ['ecs:StopServiceDeployment'],
      resources: [serviceChildArn('service-deployment')],
    }));
    // This release's deployment is the first of the built image since this execution's deploy action started.
    record.role.addToPrincipalPolicy(new iam.PolicyStatement({
      actions: ['codepipeline:ListActionExecutions'],
      resources: [pipelineArn],
    }));
    record.role.addToPrincipalPolicy(new iam.PolicyStatement({
      actions: ['ecs:DescribeServiceRevisions'],
      resources: [serviceChildArn('service-revision')],
    }));
    // DeleteParameter only undoes a write that created the parameter after its stack deleted it (ADR 0012).
    record.role.addToPrincipalPolicy(new iam.PolicyStatement({
      actions: ['ssm:PutParameter', 'ssm:DeleteParameter'],
      resources: [parameterArn],
    }));
    new lambda.EventInvokeConfig(resources, 'RecordInvokeConfig', {
      function: record.fn,
      retryAttempts: 0,
      onFailure: new destinations.SqsDestination(createDeadLetterQueue(resources, 'release recorder invocations')),
    });
    Validations.of(record.fn).acknowledge({
      id: 'Serverless-LambdaDLQ',
      reason: 'Failed asynchronous invocations go to the on-failure destination queue of the invoke configuration; a ' +
        'dead-letter queue as well would receive every failure twice.',
    });

    // The deploy action's own role, narrower than the one aws-cdk-lib would write (ECS actions on `*`, iam:PassRole of
    // any role to ecs-tasks): this service, this cluster's tasks, and the two roles of this task definition.
    const deployRole = new iam.Role(resources, 'DeployRole', {
      assumedBy: new iam.AccountRootPrincipal(),
      description: `CodePipeline's ECS deploy action for ${runtime.node.path}`,
    });
    deployRole.addToPolicy(new iam.PolicyStatement({
      actions: ['ecs:RegisterTaskDefinition', 'ecs:DescribeTaskDefinition'],
      resources: ['*'],
    }));
    deployRole.addToPolicy(new iam.PolicyStatement({
      actions: ['ecs:ListTasks'],
      resources: ['*'],
      conditions: { ArnEquals: { 'ecs:cluster': runtime.cluster.clusterArn } },
    }));
    deployRole.addToPolicy(new iam.PolicyStatement({
      actions: ['ecs:DescribeServices', 'ecs:UpdateService'],
      resources: [runtime.service.serviceArn],
    }));
    deployRole.addToPolicy(new iam.PolicyStatement({
      actions: ['ecs:DescribeTasks'],
      resources: [stack.formatArn({ service: 'ecs', resource: 'task', resourceName: `${clusterName}/*`, arnFormat: ArnFormat.SLASH_RESOURCE_NAME })],
    }));
    deployRole.addToPolicy(new iam.PolicyStatement({
      actions: ['ecs:TagResource'],
      resources: [stack.formatArn({
        service: 'ecs', resource: 'task-definition', resourceName: `${runtime.taskDefinition.family}:*`, arnFormat: ArnFormat.SLASH_RESOURCE_NAME,
      })],
    }));
    deployRole.addToPolicy(new iam.PolicyStatement({
      actions: ['iam:PassRole'],
      resources: [runtime.taskDefinition.taskRole.roleArn, runtime.taskDefinition.obtainExecutionRole().roleArn],
    }));
    context.artifactBucket?.grantRead(deployRole);

    const releaseActions: codepipeline.IAction[] = [
      new actions.EcsDeployAction({
        actionName: DEPLOY_ACTION_NAME,
        runOrder: 1,
        service: runtime.service,
        input: context.buildOutput,
        deploymentTimeout: ECS_DEPLOY_ACTION_LIMIT,
        // aws-cdk-lib's broader statements go nowhere: the policies above are the role's.
        role: deployRole.withoutPolicyUpdates(),
      }),
    ];
    if (gate) {
      const approve = context.approval.createAction({
        actionName: PRODUCTION_APPROVAL_ACTION_NAME,
        runOrder: 1,
        defaultReviewUrl: runtime.testUrl,
        defaultTimeout: window,
        defaultMessage: `The new version runs on the test listener (${runtime.testUrl}) and passed its smoke test. ` +
          'Approve to shift production traffic to it; rejecting, or letting the approval time out, rolls it back.',
      });
      releaseActions.push(approve!);
      context.notifications.notifyOnApprovalNeeded(RELEASE_STAGE_NAME, PRODUCTION_APPROVAL_ACTION_NAME, runtime.testUrl);
    }
    releaseActions.push(new ReleaseInvokeAction({
      actionName: 'RecordRelease',
      runOrder: 2,
      lambda: record.fn,
      userParameters: {
        imageUri: `#{${DeliveryPipeline.BUILD_VARIABLES_NAMESPACE}.IMAGE_URI}`,
        pipelineExecutionId: codepipeline.GlobalVariables.executionId,
      },
      purpose: 'release recorder function',
    }));
    this.acknowledgeFindings({ hook: hook.fn, hookRole: hook.role, recordRole: record.role, hookInvokeRole: invokeRole, deployRole });
    // ECS has already returned production to the previous tasks when a release fails.
    return { actions: releaseActions, gatesProductionTraffic: true, rollbackOnFailure: false, hookFunction: hook.fn, recordFunction: record.fn };
  }

  /** The wildcards of the release's roles, each narrowed to what it names. */
  private acknowledgeFindings(created: {
    hook: lambda.Function; hookRole: iam.Role; recordRole: iam.Role; hookInvokeRole: iam.Role; deployRole: iam.Role;
  }): void {
    const runtime = this.props.runtime;
    const stack = Stack.of(runtime);
    const region = nagPseudo(stack.region, 'Region');
    const account = nagPseudo(stack.account, 'AccountId');
    const cluster = nagRef(runtime.cluster);
    const service = nagRef(runtime.service, 'Name');
    const ecsArn = (resource: string, rest: string) => `arn:<AWS::Partition>:ecs:${region}:${account}:${resource}/${rest}`;
    const { hookInvokeRole, deployRole } = created;
    if (cluster) {
      acknowledge(created.hookRole, [
        `AwsSolutions-IAM5[Resource::${ecsArn('service-revision', `${cluster}/*`)}]`,
        `AwsSolutions-IAM5[Resource::${ecsArn('service', `${cluster}/*`)}]`,
      ], 'ecs:DescribeServiceRevisions and ecs:ListServiceDeployments (read only) on the revisions and services of this ' +
        'cluster: revision ids are created per deployment, and naming the service would make the service depend on its own hook.');
    }
    if (cluster && service) {
      acknowledge(created.recordRole, [
        `AwsSolutions-IAM5[Resource::${ecsArn('service-revision', `${cluster}/${service}/*`)}]`,
        `AwsSolutions-IAM5[Resource::${ecsArn('service-deployment', `${cluster}/${service}/*`)}]`,
      ], 'The deployments and revisions of this one service, whose ids ECS creates per deployment: read-only calls, and ' +
        'ecs:StopServiceDeployment, with which the recorder rolls back a deployment of its release still running at its wait limit.');
    }
    const hookRef = nagRef(created.hook, 'Arn');
    if (hookRef) {
      acknowledge(hookInvokeRole, [`AwsSolutions-IAM5[Resource::${hookRef}:*]`],
        'The role ECS assumes to call the release hook may invoke that one function and its versions (aws-cdk-lib\'s ' +
        'grantInvoke); only ecs.amazonaws.com may assume it.');
    }
    acknowledgeStarResourceOnlyFor(deployRole, ['ecs:RegisterTaskDefinition', 'ecs:DescribeTaskDefinition', 'ecs:ListTasks'],
      'ecs:RegisterTaskDefinition and DescribeTaskDefinition have no resource-level permissions; ecs:ListTasks is ' +
      'limited to this cluster by the ecs:cluster condition. The service, its tasks and the roles it may pass are named.');
    if (cluster) {
      acknowledge(deployRole, [`AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:ecs:${region}:${account}:task/${cluster}/*]`],
        'ecs:DescribeTasks on the tasks of this cluster, whose ids ECS creates.');
    }
    const family = runtime.taskDefinition.family;
    if (!Token.isUnresolved(family)) {
      acknowledge(deployRole, [`AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:ecs:${region}:${account}:task-definition/${family}:*]`],
        'ecs:TagResource on the revisions of this service\'s task definition family, which the deploy action registers.');
    }
  }
}

/** A handler with its own role and log group; only X-Ray (and CodePipeline's job results) need `*`. */
function handlerFunction(
  scope: Construct,
  id: string,
  retention: logs.RetentionDays | undefined,
  create: (role: iam.Role, logGroup: logs.LogGroup) => lambda.Function,
): { fn: lambda.Function; role: iam.Role } {
  const logGroup = createLogGroup(scope, `${id}Logs`, retention);
  const role = new iam.Role(scope, `${id}Role`, {
    assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
    description: `Runs ${scope.node.path}/${id}`,
  });
  role.addToPolicy(new iam.PolicyStatement({
    actions: ['logs:CreateLogStream', 'logs:PutLogEvents'],
    resources: [logGroup.logGroupArn],
  }));
  const fn = create(role, logGroup);
  acknowledgeStarResourceOnlyFor(role, [
    'xray:PutTraceSegments', 'xray:PutTelemetryRecords',
    'codepipeline:PutJobSuccessResult', 'codepipeline:PutJobFailureResult',
  ], 'Only actions without resource-level permissions: xray:PutTraceSegments and PutTelemetryRecords for tracing and, ' +
    'for the function CodePipeline invokes, codepipeline:PutJobSuccessResult and PutJobFailureResult (granted by ' +
    'aws-cdk-lib with the invoke action; the job id is only known to the invoked function).');
  return { fn, role };
}

/**
 * The placeholder image, the service's version before the first release, is told its port through
 * `WHOAMI_PORT_NUMBER`: the container's environment must leave it to the release.
 * @internal
 */
export function checkPlaceholderEnvironment(construct: Construct, environment: { [name: string]: string } | undefined): void {
  if (environment && 'WHOAMI_PORT_NUMBER' in environment) {
    throw invalidInput(construct, 'environment', 'WHOAMI_PORT_NUMBER', 'must not set WHOAMI_PORT_NUMBER, which tells the placeholder image its port');
  }
}

/**
 * The bake time must leave the margin of the deploy action's hour: 0 to 45 minutes, in whole minutes.
 * @internal
 */
export function checkBakeTime(construct: Construct, bakeTime: Duration | undefined): void {
  const max = Duration.minutes(ECS_DEPLOY_ACTION_LIMIT.toMinutes() - ECS_RELEASE_MARGIN.toMinutes());
  checkDuration(construct, 'bakeTime', bakeTime, Duration.minutes(0), max, 'minutes');
}

/**
 * The build of an ECS release: unit tests, then the image tagged `<commit>-<build number>`, pushed to
 * `REPOSITORY_URI`, and `imagedefinitions.json` naming `CONTAINER_NAME`, in `DOCKER_DIRECTORY`.
 * @internal
 */
export function ecsImageBuildSpec(testCommands: string[] | undefined): codebuild.BuildSpec {
  const tests = testCommands ?? ['if [ -f package.json ]; then npm ci && npm run test --if-present; else echo "no package.json: no unit tests to run"; fi'];
  return codebuild.BuildSpec.fromObject({
    version: '0.2',
    env: { 'shell': 'bash', 'exported-variables': ['IMAGE_URI', 'IMAGE_TAG'] },
    phases: {
      pre_build: {
        commands: [
          'cd "$CODEBUILD_SRC_DIR/$DOCKER_DIRECTORY"',
          ...tests,
        ],
      },
      build: {
        commands: [
          'cd "$CODEBUILD_SRC_DIR/$DOCKER_DIRECTORY"',
          // Commit (or S3 object version) and build number: unique, never reused, so ECR's immutable tags accept it.
          'REVISION=$(printf "%s" "${CODEBUILD_RESOLVED_SOURCE_VERSION:-unknown}" | tr -c "A-Za-z0-9_.-" "-" | cut -c1-40)',
          'export IMAGE_TAG="${REVISION}-${CODEBUILD_BUILD_NUMBER}"',
          'export IMAGE_URI="${REPOSITORY_URI}:${IMAGE_TAG}"',
          'aws ecr get-login-password --region "$AWS_REGION" | docker login --username AWS --password-stdin "${REPOSITORY_URI%%/*}"',
          'docker build --tag "$IMAGE_URI" .',
          'docker push "$IMAGE_URI"',
          'printf \'[{"name":"%s","imageUri":"%s"}]\' "$CONTAINER_NAME" "$IMAGE_URI" > "$CODEBUILD_SRC_DIR/imagedefinitions.json"',
        ],
      },
    },
    artifacts: { files: ['imagedefinitions.json'] },
  });
}

/**
 * Lets the build push the images the release deploys: pull and push on the one repository, and the ECR login.
 * @internal
 */
export function grantImagePush(buildRole: iam.IRole, repository: ecr.IRepository): void {
  repository.grantPullPush(buildRole);
  acknowledgeStarResourceOnlyFor(buildRole, ['ecr:GetAuthorizationToken'],
    'ecr:GetAuthorizationToken (docker login to ECR) has no resource-level permissions; pushing is limited to the one repository.');
}
