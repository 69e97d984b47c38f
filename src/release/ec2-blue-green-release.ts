import { ArnFormat, CustomResource, Duration, RemovalPolicy, Stack, Token, Validations } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as codebuild from 'aws-cdk-lib/aws-codebuild';
import * as codepipeline from 'aws-cdk-lib/aws-codepipeline';
import * as actions from 'aws-cdk-lib/aws-codepipeline-actions';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as ssm from 'aws-cdk-lib/aws-ssm';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import * as tasks from 'aws-cdk-lib/aws-stepfunctions-tasks';
import { Construct } from 'constructs';
import { PatternRelease } from './pattern-release';
import { TrafficShift } from './traffic-shift';
import { Ec2ReleaseFunction } from '../handlers/ec2-release-function';
import { Ec2ReleaseGuardFunction } from '../handlers/ec2-release-guard-function';
import { ApprovalPlacement } from '../pipeline/approval';
import { DeliveryPipeline } from '../pipeline/delivery-pipeline';
import { ReleaseConfig, ReleaseContext } from '../pipeline/release';
import { SmokeTest } from '../pipeline/smoke-test';
import { acknowledge, acknowledgeStarResourceOnlyFor, nagPseudo, nagRef } from '../private/acknowledgements';
import { BundleReencryption } from '../private/bundle-reencryption';
import { createDeadLetterQueue } from '../private/encrypted-topic';
import { createLogGroup } from '../private/log-group';
import { uniquePhysicalName } from '../private/names';
import { grantReleaseProgress } from '../private/release-progress';
import { checkDuration, invalidInput } from '../private/validate';
import { BlueGreenEc2Fleet, COLORS, Color, NOT_RELEASED_BODY, RELEASES_PREFIX } from '../runtime/ec2-fleet';

/**
 * How long CodePipeline waits for the Step Functions invoke action: the one-hour limit of "all other actions" in
 * CodePipeline's quotas (ADR 0008: unverified for this action in particular).
 * @internal
 */
export const EC2_RELEASE_ACTION_LIMIT = Duration.minutes(60);
/** What the release keeps of that hour for its coordinated rollback and the last polls. @internal */
export const EC2_ROLLBACK_MARGIN = Duration.minutes(5);
/** How long the new color may take to become healthy behind the test listener, and the smoke test. @internal */
export const EC2_HEALTH_TIMEOUT = Duration.minutes(15);
/** The names the approval gate looks up in the pipeline. @internal */
export const EC2_RELEASE_STAGE_NAME = 'Release';
/** @internal */
export const EC2_APPROVAL_ACTION_NAME = 'ApproveProductionTraffic';

/**
 * Configuration of `Ec2BlueGreenRelease`.
 * @internal
 */
export interface Ec2BlueGreenReleaseProps {
  readonly fleet: BlueGreenEc2Fleet;
  readonly liveColorParameterName: string;
  readonly lockParameterName: string;
  readonly releaseParameterNames: { readonly blue: string; readonly green: string };
  readonly bakeTime?: Duration;
  readonly trafficShift?: TrafficShift;
  readonly expectedPhrase?: string;
  readonly logRetention?: logs.RetentionDays;
  /** Keep the bundle bucket when the stack is deleted (with the pipeline's artifacts). */
  readonly retainBundles?: boolean;
  /** The pipeline's name (known before the pipeline exists, so the function can look its approval up without a cycle). */
  readonly pipelineName: string;
}

/**
 * What `Ec2BlueGreenRelease.bind()` created.
 * @internal
 */
export interface Ec2BlueGreenReleaseConfig extends ReleaseConfig {
  /** The release workflow the pipeline starts. */
  readonly stateMachine: sfn.StateMachine;
  /** Where the build uploads the release bundles (`releases/<id>/bundle.tgz`), which the instances install. */
  readonly bundleBucket: s3.IBucket;
  /** Lets the build upload release bundles (`releases/*` of the bundle bucket, encrypted with the pipeline's key). */
  grantUpload(grantee: iam.IRole): void;
  /** Alarms that watch one color (its target group): they roll back a release onto that color. */
  watchColor(color: Color, alarms: cloudwatch.IAlarm[]): void;
  /** Alarms that roll back any release while it shifts and bakes. */
  addDeploymentAlarms(alarms: cloudwatch.IAlarm[]): void;
}

/**
 * Releases a `BlueGreenEc2Fleet` blue/green with a Step Functions workflow (ADR 0008). The Release stage starts the
 * workflow (and, with `Approval.beforeProductionTraffic()`, a manual approval alongside); the workflow calls one
 * decision function in a loop:
 *
 * 1. the idle color gets the release and the live color's capacity; its instances pass their local readiness check
 *    and the ALB health check behind the test listener;
 * 2. the smoke test runs through the test listener;
 * 3. with the gate, "ready for review" goes out with the test URL and the workflow waits for the approval;
 * 4. production traffic shifts (all at once or a canary step); the bake time follows, watched by the new color's
 *    alarms and the deployment alarms;
 * 5. success: the live color is recorded first, then the old color scales to zero. Any failure: production returns
 *    to the old color (never scaled in) and the new color scales to zero.
 *
 * A custom resource in the fleet's stack refuses a `cdk deploy` while a release runs.
 * @internal
 */
export class Ec2BlueGreenRelease extends PatternRelease<Ec2BlueGreenReleaseConfig> {
  public readonly description = 'an EC2 blue/green release of the built bundle';
  public readonly bakeTime: Duration;
  public readonly trafficShift: TrafficShift;

  constructor(private readonly props: Ec2BlueGreenReleaseProps) {
    super();
    this.bakeTime = props.bakeTime ?? Duration.minutes(5);
    this.trafficShift = props.trafficShift ?? TrafficShift.allAtOnce();
    const scope = props.fleet.node.scope ?? props.fleet;
    checkDuration(scope, 'bakeTime', props.bakeTime, Duration.minutes(0), Duration.minutes(30), 'minutes');
    if (this.bakeTime.isUnresolved()) {
      throw invalidInput(scope, 'bakeTime', this.bakeTime, 'must be a literal duration (the release fits it into its hour at synth time)');
    }
    if (this.busyMinutes() > this.releaseMinutes()) {
      throw invalidInput(scope, 'bakeTime', this.bakeTime,
        `with the canary step (${this.trafficShift.interval.toMinutes()} minutes) must fit what is left of the release's hour ` +
        `after ${EC2_HEALTH_TIMEOUT.toMinutes()} minutes for the new instances and the smoke test: at most ` +
        `${this.releaseMinutes() - EC2_HEALTH_TIMEOUT.toMinutes()} minutes together`);
    }
  }

  /** Minutes the release may run before it rolls back on its own: the action's hour minus the rollback margin. */
  public releaseMinutes(): number {
    return EC2_RELEASE_ACTION_LIMIT.toMinutes() - EC2_ROLLBACK_MARGIN.toMinutes();
  }

  /** Minutes a release needs besides the approval: the new instances and the smoke test, the canary step, the bake. */
  public busyMinutes(): number {
    return EC2_HEALTH_TIMEOUT.toMinutes() + this.trafficShift.interval.toMinutes() + this.bakeTime.toMinutes();
  }

  /** The longest the approval may wait: what is left after the instances, the canary step and the bake time. */
  public approvalWindow(): Duration {
    return Duration.minutes(this.releaseMinutes() - this.busyMinutes());
  }

  protected create(scope: Construct, context: ReleaseContext): Ec2BlueGreenReleaseConfig {
    const fleet = this.props.fleet;
    const owner = fleet.node.scope ?? fleet;
    const stack = Stack.of(fleet);
    const resources = new Construct(scope, 'Ec2Release');
    const gate = context.approval.placement === ApprovalPlacement.BEFORE_PRODUCTION_TRAFFIC;
    const window = this.approvalWindow();
    const actionTimeout = Duration.minutes(EC2_HEALTH_TIMEOUT.toMinutes() + window.toMinutes());
    if (gate) {
      const why = `the release has ${this.releaseMinutes()} minutes of CodePipeline's hour for the Step Functions action, of ` +
        `which ${EC2_HEALTH_TIMEOUT.toMinutes()} go to the new instances and the smoke test, ${this.trafficShift.interval.toMinutes()} to the ` +
        `canary step and ${this.bakeTime.toMinutes()} to the bake time`;
      if (window.toMinutes() < 5) {
        throw invalidInput(owner, 'bakeTime', this.bakeTime, `must leave the approval at least 5 minutes with Approval.beforeProductionTraffic(): ${why}`);
      }
      // The approval action starts with the workflow: its timeout also covers the new instances and the smoke test.
      const given = context.approval.givenTimeout;
      if (given !== undefined && !given.isUnresolved() && given.toSeconds() > actionTimeout.toSeconds()) {
        throw invalidInput('Approval.beforeProductionTraffic', 'timeout', given,
          `must be at most ${actionTimeout.toMinutes()} minutes with an EC2 blue/green release (it starts with the release, ` +
          `${EC2_HEALTH_TIMEOUT.toMinutes()} minutes before the new version can be ready for review): ${why}`);
      }
      if (given !== undefined && !given.isUnresolved() && given.toSeconds() < EC2_HEALTH_TIMEOUT.toSeconds() + 5 * 60) {
        throw invalidInput('Approval.beforeProductionTraffic', 'timeout', given,
          `must be at least ${EC2_HEALTH_TIMEOUT.toMinutes() + 5} minutes with an EC2 blue/green release: it starts with the release, ` +
          `which may take ${EC2_HEALTH_TIMEOUT.toMinutes()} minutes before the new version is ready for review`);
      }
    }
    // The bundles live apart from the pipeline's artifacts, which expire: an instance replaced by Auto Scaling or an
    // instance refresh installs the live release again, however old it is. Small (one archive per release), they are
    // kept until the stack is deleted.
    const bundles = new s3.Bucket(resources, 'Bundles', {
      encryption: s3.BucketEncryption.KMS,
      encryptionKey: context.artifactKey,
      bucketKeyEnabled: true,
      enforceSSL: true,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      lifecycleRules: [{ abortIncompleteMultipartUploadAfter: Duration.days(1) }],
      removalPolicy: this.props.retainBundles ? RemovalPolicy.RETAIN : RemovalPolicy.DESTROY,
      autoDeleteObjects: !this.props.retainBundles,
    });
    Validations.of(bundles).acknowledge({
      id: 'AwsSolutions-S1',
      reason: 'Release bundles, written only by this pipeline\'s build and read only by this fleet\'s instances; an ' +
        'access-log bucket would outlive cdk destroy.',
    });
    fleet.bindReleaseStore(bundles, context.artifactKey);
    // An upgrade that moved the key (ADR 0012, "Upgrading"): the live bundles are re-encrypted under the new key
    // before the old one is deleted, and before the groups can launch instances that read them with the new grants.
    const reencryption = new BundleReencryption(resources, 'BundleReencryption', {
      bucket: bundles,
      key: context.artifactKey,
      prefix: RELEASES_PREFIX,
      releaseParameterNames: this.props.releaseParameterNames,
      logRetention: this.props.logRetention,
    });
    [fleet.blueGroup, fleet.greenGroup, ...fleet.launchTemplates].forEach((target) => target.node.addDependency(reencryption.resource));

    const stackName = stack.stackName;
    const stateMachineName = uniquePhysicalName(resources, 19);
    const stateMachineArn = stack.formatArn({
      service: 'states', resource: 'stateMachine', resourceName: stateMachineName, arnFormat: ArnFormat.COLON_RESOURCE_NAME,
    });
    const executionsArn = stack.formatArn({
      service: 'states', resource: 'execution', resourceName: `${stateMachineName}:*`, arnFormat: ArnFormat.COLON_RESOURCE_NAME,
    });
    const parameterArn = (name: string) => stack.formatArn({ service: 'ssm', resource: 'parameter', resourceName: name.replace(/^\//, '') });
    const retention = this.props.logRetention ?? logs.RetentionDays.ONE_MONTH;

    // The decision function the workflow calls in a loop.
    const releaseLogs = createLogGroup(resources, 'ReleaseFunctionLogs', retention);
    const describeActions = ['autoscaling:DescribeAutoScalingGroups', 'elasticloadbalancing:DescribeTargetHealth', 'elasticloadbalancing:DescribeListeners'];
    const releaseRole = lambdaRole(resources, 'ReleaseFunctionRole', releaseLogs, describeActions,
      'The read-only Auto Scaling and ELB describe calls have none either; the calls that change anything name this ' +
      'fleet\'s groups and production listener.');
    const releaseFunction = new Ec2ReleaseFunction(resources, 'ReleaseFunction', {
      role: releaseRole,
      logGroup: releaseLogs,
      description: `Decides each step of the blue/green releases of ${fleet.node.path}`,
      // A step makes up to about 8 AWS calls, each bounded by its client's timeouts and attempts.
      timeout: Duration.minutes(2),
      memorySize: 256,
      architecture: lambda.Architecture.ARM_64,
      tracing: lambda.Tracing.ACTIVE,
      environment: {
        LIVE_COLOR_PARAMETER: this.props.liveColorParameterName,
        LOCK_PARAMETER: this.props.lockParameterName,
        RELEASE_PARAMETER_BLUE: this.props.releaseParameterNames.blue,
        RELEASE_PARAMETER_GREEN: this.props.releaseParameterNames.green,
        BLUE_GROUP_NAME: fleet.blueGroup.autoScalingGroupName,
        GREEN_GROUP_NAME: fleet.greenGroup.autoScalingGroupName,
        BLUE_TARGET_GROUP_ARN: fleet.blueTargetGroup.targetGroupArn,
        GREEN_TARGET_GROUP_ARN: fleet.greenTargetGroup.targetGroupArn,
        PRODUCTION_LISTENER_ARN: fleet.productionListener.listenerArn,
        TEST_LISTENER_ARN: fleet.testListener.listenerArn,
        NOT_RELEASED_BODY,
        DEFAULT_CAPACITY: String(fleet.capacity),
        RELEASE_DEADLINE_SECONDS: String(this.releaseMinutes() * 60),
        HEALTH_TIMEOUT_SECONDS: String(EC2_HEALTH_TIMEOUT.toSeconds()),
        BAKE_SECONDS: String(this.bakeTime.toSeconds()),
        CANARY_PERCENT: String(this.trafficShift.percent),
        CANARY_SECONDS: String(this.trafficShift.interval.toSeconds()),
        STACK_NAME: stackName,
        STATE_MACHINE_ARN: stateMachineArn,
        TEST_URL: fleet.testUrl,
        PRODUCTION_URL: fleet.productionUrl,
        NOTIFY_TOPIC_ARN: context.notifications.topic.topicArn,
        // Names the traffic step events (src/handlers/shared/release-progress.ts).
        PIPELINE_NAME: this.props.pipelineName,
        ...(gate ? {
          APPROVAL_PIPELINE_NAME: this.props.pipelineName,
          APPROVAL_STAGE_NAME: EC2_RELEASE_STAGE_NAME,
          APPROVAL_ACTION_NAME: EC2_APPROVAL_ACTION_NAME,
          // From "ready for review" on: what is left of the approval action's own timeout at the earliest.
          APPROVAL_TIMEOUT_SECONDS: String(window.toSeconds()),
        } : {}),
        AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: '1',
      },
    });
    // DeleteParameter only undoes a write that created a parameter after its stack deleted it (ADR 0012).
    releaseRole.addToPolicy(new iam.PolicyStatement({
      actions: ['ssm:GetParameter', 'ssm:GetParameters', 'ssm:PutParameter', 'ssm:DeleteParameter'],
      resources: [
        this.props.liveColorParameterName, this.props.lockParameterName,
        this.props.releaseParameterNames.blue, this.props.releaseParameterNames.green,
      ].map(parameterArn),
    }));
    releaseRole.addToPolicy(new iam.PolicyStatement({
      actions: ['autoscaling:UpdateAutoScalingGroup'],
      resources: COLORS.map((color) => stack.formatArn({
        service: 'autoscaling',
        resource: 'autoScalingGroup',
        resourceName: `*:autoScalingGroupName/${fleet.group(color).autoScalingGroupName}`,
        arnFormat: ArnFormat.COLON_RESOURCE_NAME,
      })),
    }));
    releaseRole.addToPolicy(new iam.PolicyStatement({
      actions: describeActions,
      resources: ['*'],
    }));
    releaseRole.addToPolicy(new iam.PolicyStatement({
      actions: ['elasticloadbalancing:ModifyListener'],
      resources: [fleet.productionListener.listenerArn, fleet.testListener.listenerArn],
    }));
    releaseRole.addToPolicy(new iam.PolicyStatement({ actions: ['states:ListExecutions'], resources: [stateMachineArn] }));
    releaseRole.addToPolicy(new iam.PolicyStatement({
      actions: ['cloudformation:DescribeStacks'],
      resources: [stack.formatArn({ service: 'cloudformation', resource: 'stack', resourceName: `${stackName}/*` })],
    }));
    if (gate) {
      releaseRole.addToPolicy(new iam.PolicyStatement({
        actions: ['codepipeline:ListActionExecutions'],
        resources: [stack.formatArn({ service: 'codepipeline', resource: this.props.pipelineName })],
      }));
    }
    context.notifications.topic.grantPublish(releaseRole);
    grantReleaseProgress(releaseRole);
    Validations.of(releaseFunction).acknowledge({
      id: 'Serverless-LambdaDLQ',
      reason: 'Step Functions invokes the function synchronously and reads its answer (retrying throttling and service ' +
        'errors); a failure becomes a rollback in the workflow, so there is no asynchronous event to keep.',
    });

    // The smoke test through the test listener, invoked by the workflow.
    const smokeTest = new SmokeTest(resources, 'SmokeTest', {
      baseUrl: fleet.testUrl,
      healthPath: fleet.healthCheckPath,
      expectedPhrase: this.props.expectedPhrase,
      logRetention: this.props.logRetention,
    });

    // The workflow: a loop around the decision function (every wait is a Wait state, bounded by the function's clock).
    const machineLogs = createLogGroup(resources, 'StateMachineLogs', retention);
    // Step Functions adds each log group it delivers to to the account's CloudWatch Logs resource policy (5,120
    // characters, kept after the stack is deleted); one entry, `/aws/vendedlogs/*`, covers groups under that prefix.
    (machineLogs.node.defaultChild as logs.CfnLogGroup).logGroupName = `/aws/vendedlogs/states/${stateMachineName}`;
    const stateMachine = new sfn.StateMachine(resources, 'StateMachine', {
      stateMachineName,
      stateMachineType: sfn.StateMachineType.STANDARD,
      comment: `Blue/green releases of ${fleet.node.path} (ADR 0008)`,
      definitionBody: sfn.DefinitionBody.fromChainable(workflow(new Construct(resources, 'Workflow'), releaseFunction, smokeTest.function)),
      // A last resort behind the function's own deadline, which rolls back first.
      timeout: EC2_RELEASE_ACTION_LIMIT,
      tracingEnabled: true,
      logs: { destination: machineLogs, level: sfn.LogLevel.ALL, includeExecutionData: true },
      removalPolicy: RemovalPolicy.DESTROY,
    });

    // The guard: a `cdk deploy` while a release runs fails before it touches the listeners or the groups.
    const guardLogs = createLogGroup(resources, 'GuardFunctionLogs', retention);
    const guardRole = lambdaRole(resources, 'GuardFunctionRole', guardLogs);
    const guardFunction = new Ec2ReleaseGuardFunction(resources, 'GuardFunction', {
      role: guardRole,
      logGroup: guardLogs,
      description: `Refuses a stack update of ${fleet.node.path} while one of its releases runs`,
      timeout: Duration.minutes(2),
      memorySize: 128,
      architecture: lambda.Architecture.ARM_64,
      tracing: lambda.Tracing.ACTIVE,
      environment: { AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: '1' },
    });
    guardRole.addToPolicy(new iam.PolicyStatement({ actions: ['states:DescribeExecution'], resources: [executionsArn] }));
    Validations.of(guardFunction).acknowledge(
      {
        id: 'Serverless-LambdaDLQ',
        reason: 'CloudFormation invokes the guard of a custom resource and waits for its answer; a failure fails the stack ' +
          'update, so there is no lost event to keep.',
      },
      {
        id: 'Serverless-LambdaDefaultMemorySize',
        reason: 'The guard makes one Step Functions call and one HTTPS request per stack update; 128 MB is enough.',
      },
    );
    const guard = new CustomResource(fleet, 'ReleaseGuard', {
      serviceToken: guardFunction.functionArn,
      resourceType: 'Custom::ReleaseGuard',
      properties: {
        Lock: ssm.StringParameter.valueForStringParameter(fleet, this.props.lockParameterName),
        StackName: stackName,
      },
    });
    // Everything a running release uses waits for the guard: a refused update changes none of it.
    for (const target of [
      fleet.productionListener, fleet.testListener, fleet.blueGroup, fleet.greenGroup, fleet.blueTargetGroup, fleet.greenTargetGroup,
      ...fleet.launchTemplates, releaseFunction, releaseRole, stateMachine,
    ]) {
      target.node.addDependency(guard);
    }

    const alarms = new WatchedAlarms(releaseFunction);
    alarms.apply();

    // A workflow that ends without its own rollback (stopped, timed out, or its rollback failed) still rolls back:
    // the function undoes what the execution holding the lock changed, and nothing when it holds none.
    new events.Rule(resources, 'UnfinishedReleases', {
      description: `Rolls back a release of ${fleet.node.path} whose workflow ended without finishing (ADR 0008)`,
      eventPattern: {
        source: ['aws.states'],
        detailType: ['Step Functions Execution Status Change'],
        detail: { stateMachineArn: [stateMachineArn], status: ['ABORTED', 'TIMED_OUT', 'FAILED'] },
      },
      targets: [new targets.LambdaFunction(releaseFunction, {
        event: events.RuleTargetInput.fromObject({
          action: 'rollback',
          executionArn: events.EventField.fromPath('$.detail.executionArn'),
          state: { reason: `the release workflow ended ${events.EventField.fromPath('$.detail.status')}` },
        }),
        retryAttempts: 8,
        maxEventAge: Duration.hours(2),
        deadLetterQueue: createDeadLetterQueue(resources, 'rollbacks of unfinished releases'),
      })],
    });

    const releaseActions: codepipeline.IAction[] = [
      new ReleaseWorkflowAction({
        actionName: 'Deploy',
        runOrder: 1,
        stateMachine,
        stateMachineInput: actions.StateMachineInput.literal({
          release: `#{${DeliveryPipeline.BUILD_VARIABLES_NAMESPACE}.RELEASE_ID}`,
          pipelineExecutionId: '#{codepipeline.PipelineExecutionId}',
        }),
      }),
    ];
    if (gate) {
      const approve = context.approval.createAction({
        actionName: EC2_APPROVAL_ACTION_NAME,
        runOrder: 1,
        defaultReviewUrl: fleet.testUrl,
        defaultTimeout: actionTimeout,
        defaultMessage: `The new version runs on the test listener (${fleet.testUrl}) and passed its smoke test. ` +
          'Approve to shift production traffic to it; rejecting, or letting the approval time out, rolls it back. ' +
          'An approval given before the "ready for review" message also rolls it back.',
      });
      releaseActions.push(approve!);
      context.notifications.notifyOnApprovalNeeded(EC2_RELEASE_STAGE_NAME, EC2_APPROVAL_ACTION_NAME, fleet.testUrl);
    }
    acknowledgeFindings(fleet, { releaseRole, guardRole, stateMachine, stateMachineName, invoked: [releaseFunction, smokeTest.function] });
    // The workflow already returns production to the previous color when a release fails.
    return {
      actions: releaseActions,
      gatesProductionTraffic: true,
      rollbackOnFailure: false,
      // The decision function's shift step sends one event per traffic step (src/handlers/ec2-release/follow.ts).
      reportsTrafficSteps: true,
      stateMachine,
      bundleBucket: bundles,
      grantUpload: (grantee) => grantUpload(bundles, grantee),
      watchColor: (color, watched) => alarms.watchColor(color, watched),
      addDeploymentAlarms: (deployment) => alarms.addDeploymentAlarms(deployment),
    };
  }
}

/** Lets the build upload release bundles into the bucket, and acknowledges the prefix wildcard of that grant. */
function grantUpload(bucket: s3.IBucket, grantee: iam.IRole): void {
  grantee.addToPrincipalPolicy(new iam.PolicyStatement({ actions: ['s3:PutObject'], resources: [bucket.arnForObjects(`${RELEASES_PREFIX}*`)] }));
  const ref = nagRef(bucket, 'Arn');
  if (ref) {
    acknowledge(grantee, [`AwsSolutions-IAM5[Resource::${ref}/${RELEASES_PREFIX}*]`],
      'The build uploads one bundle per release under releases/<commit>-<build>/ of the release\'s own bundle bucket.');
  }
}

/** The alarms the decision function watches: per color, and for every release. */
class WatchedAlarms {
  private readonly watched: Record<Color, cloudwatch.IAlarm[]> = { blue: [], green: [] };
  private readonly deploymentAlarms: cloudwatch.IAlarm[] = [];
  private readonly readable = new Set<cloudwatch.IAlarm>();

  constructor(private readonly fn: lambda.Function) {}

  public watchColor(color: Color, alarms: cloudwatch.IAlarm[]): void {
    this.watched[color].push(...alarms);
    this.apply();
  }

  public addDeploymentAlarms(alarms: cloudwatch.IAlarm[]): void {
    this.deploymentAlarms.push(...alarms);
    this.apply();
  }

  /** Tells the decision function which alarms to watch, and lets it read them (again on each change). */
  public apply(): void {
    const names = (alarms: cloudwatch.IAlarm[]) => alarms.map((alarm) => alarm.alarmName).join(',');
    this.fn.addEnvironment('ALARMS_BLUE', names(this.watched.blue));
    this.fn.addEnvironment('ALARMS_GREEN', names(this.watched.green));
    this.fn.addEnvironment('DEPLOYMENT_ALARMS', names(this.deploymentAlarms));
    const all = [...this.watched.blue, ...this.watched.green, ...this.deploymentAlarms];
    const fresh = all.filter((alarm) => !this.readable.has(alarm));
    if (fresh.length > 0) {
      this.fn.addToRolePolicy(new iam.PolicyStatement({ actions: ['cloudwatch:DescribeAlarms'], resources: fresh.map((alarm) => alarm.alarmArn) }));
      fresh.forEach((alarm) => this.readable.add(alarm));
    }
  }
}

/** What the release created whose findings it acknowledges. */
interface Ec2ReleaseResources {
  readonly releaseRole: iam.Role;
  readonly guardRole: iam.Role;
  readonly stateMachine: sfn.StateMachine;
  readonly stateMachineName: string;
  /** The functions the workflow invokes. */
  readonly invoked: lambda.IFunction[];
}

/** The wildcards of the release's roles, each narrowed to what it names. */
function acknowledgeFindings(fleet: BlueGreenEc2Fleet, created: Ec2ReleaseResources): void {
  const stack = Stack.of(fleet);
  const region = nagPseudo(stack.region, 'Region');
  const account = nagPseudo(stack.account, 'AccountId');
  const { releaseRole, guardRole } = created;
  const groupFindings = [fleet.blueGroup, fleet.greenGroup].map((group) => nagRef(group))
    .filter((ref): ref is string => ref !== undefined)
    .map((ref) => `AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:autoscaling:${region}:${account}:autoScalingGroup:*:autoScalingGroupName/${ref}]`);
  acknowledge(releaseRole, groupFindings,
    'autoscaling:UpdateAutoScalingGroup on the two groups of this fleet only (Auto Scaling puts a generated id in a group\'s ARN).');
  const stackName = Token.isUnresolved(stack.stackName) ? '<AWS::StackName>' : stack.stackName;
  acknowledge(releaseRole, [`AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:cloudformation:${region}:${account}:stack/${stackName}/*]`],
    'cloudformation:DescribeStacks (read only) on this fleet\'s own stack, whose ARN ends in a generated id.');
  const name = created.stateMachineName;
  if (!Token.isUnresolved(name)) {
    acknowledge(guardRole, [`AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:states:${region}:${account}:execution:${name}:*]`],
      'states:DescribeExecution (read only) on the executions of this fleet\'s release workflow, whose names CodePipeline creates.');
  }
  const machineRole = created.stateMachine.role;
  const refs = created.invoked.map((fn) => nagRef(fn, 'Arn')).filter((ref): ref is string => ref !== undefined);
  acknowledge(machineRole, refs.map((ref) => `AwsSolutions-IAM5[Resource::${ref}:*]`),
    'The workflow may invoke its decision function and the smoke test, and their versions (aws-cdk-lib\'s LambdaInvoke grant).');
  acknowledgeStarResourceOnlyFor(machineRole, ['xray:PutTraceSegments', 'xray:PutTelemetryRecords', 'xray:GetSamplingRules',
    'xray:GetSamplingTargets', 'logs:CreateLogDelivery', 'logs:GetLogDelivery', 'logs:UpdateLogDelivery', 'logs:DeleteLogDelivery',
    'logs:ListLogDeliveries', 'logs:PutResourcePolicy', 'logs:DescribeResourcePolicies', 'logs:DescribeLogGroups'],
  'Tracing and execution logging of the workflow (aws-cdk-lib\'s grants for Step Functions logs and X-Ray); these ' +
    'actions have no resource-level permissions.');
}

/**
 * CodePipeline's Step Functions action that starts the release workflow; it acknowledges, on the action role aws-cdk-lib
 * creates for it, that role's grant on the workflow's executions.
 */
class ReleaseWorkflowAction extends actions.StepFunctionInvokeAction {
  constructor(private readonly workflowProps: actions.StepFunctionsInvokeActionProps) {
    super(workflowProps);
  }

  protected bound(scope: Construct, stage: codepipeline.IStage, options: codepipeline.ActionBindOptions): codepipeline.ActionConfig {
    const config = super.bound(scope, stage, options);
    const machineRef = nagRef(this.workflowProps.stateMachine);
    if (machineRef) {
      const part = (i: number) => `{"Fn::Select":[${i},{"Fn::Split":[":",{"Ref":"${machineRef.slice(1, -1)}"}]}]}`;
      acknowledge(options.role, [`AwsSolutions-IAM5[Resource::arn:${part(1)}:states:${part(3)}:${part(4)}:execution:${part(6)}:*]`],
        'CodePipeline\'s Step Functions action may describe the executions of the one release workflow it starts ' +
        '(aws-cdk-lib\'s grant; execution names are created per pipeline execution).');
    }
    return config;
  }
}

/** A function's own role: its log group, and X-Ray. */
function lambdaRole(scope: Construct, id: string, logGroup: logs.ILogGroup, starActions: string[] = [], starReason = ''): iam.Role {
  const role = new iam.Role(scope, id, {
    assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
    description: `Runs ${scope.node.path}/${id.replace(/Role$/, '')}`,
  });
  role.addToPolicy(new iam.PolicyStatement({ actions: ['logs:CreateLogStream', 'logs:PutLogEvents'], resources: [logGroup.logGroupArn] }));
  acknowledgeStarResourceOnlyFor(role, ['xray:PutTraceSegments', 'xray:PutTelemetryRecords', ...starActions],
    `xray:PutTraceSegments and PutTelemetryRecords, for tracing, have no resource-level permissions.${starReason ? ` ${starReason}` : ''}`);
  return role;
}

/**
 * The workflow: Start, then a loop of the decision function routed on `$.next`; the smoke test where it says so;
 * a Wait state where it asks for one; a rollback step on any error.
 */
function workflow(scope: Construct, fn: lambda.IFunction, smoke: lambda.IFunction): sfn.IChainable {
  const retry = (task: tasks.LambdaInvoke): tasks.LambdaInvoke => {
    task.addRetry({
      errors: ['Lambda.ServiceException', 'Lambda.AWSLambdaException', 'Lambda.SdkClientException', 'Lambda.TooManyRequestsException', 'RetryableError'],
      interval: Duration.seconds(5),
      maxAttempts: 6,
      backoffRate: 2,
      maxDelay: Duration.seconds(60),
    });
    return task;
  };
  const invoke = (id: string, payload: sfn.TaskInput) => retry(new tasks.LambdaInvoke(scope, id, {
    lambdaFunction: fn,
    payload,
    payloadResponseOnly: true,
    retryOnServiceExceptions: false,
  }));
  const start = invoke('Start', sfn.TaskInput.fromObject({
    action: 'start',
    input: sfn.JsonPath.objectAt('$$.Execution.Input'),
    executionArn: sfn.JsonPath.stringAt('$$.Execution.Id'),
    startedAt: sfn.JsonPath.stringAt('$$.Execution.StartTime'),
  }));
  const step = invoke('Step', sfn.TaskInput.fromObject({ action: sfn.JsonPath.stringAt('$.next'), state: sfn.JsonPath.entirePayload }));
  const afterSmoke = invoke('AfterSmokeTest', sfn.TaskInput.fromObject({ action: 'afterSmoke', state: sfn.JsonPath.entirePayload }));
  // The execution's id too: when Start failed after taking the lock, the state is only the execution's input.
  const rollback = invoke('Rollback', sfn.TaskInput.fromObject({
    action: 'rollback', state: sfn.JsonPath.entirePayload, executionArn: sfn.JsonPath.stringAt('$$.Execution.Id'),
  }));
  const smokeTest = retry(new tasks.LambdaInvoke(scope, 'SmokeTest', {
    lambdaFunction: smoke,
    payload: sfn.TaskInput.fromObject({}),
    resultSelector: { 'passed.$': '$.Payload.passed', 'summary.$': '$.Payload.summary' },
    resultPath: '$.smoke',
    retryOnServiceExceptions: false,
  }));
  const wait = new sfn.Wait(scope, 'Wait', { time: sfn.WaitTime.secondsPath('$.waitSeconds') });
  const succeeded = new sfn.Succeed(scope, 'Released', { comment: 'Production runs the new release; the record says so' });
  const failed = new sfn.Fail(scope, 'RolledBack', { error: 'ReleaseFailed', causePath: '$.message' });
  const rollbackFailed = new sfn.Fail(scope, 'RollbackFailed', {
    error: 'RollbackFailed',
    cause: 'The rollback did not finish: check the production listener and both groups, then run the release again.',
  });
  const route = new sfn.Choice(scope, 'Route')
    .when(sfn.Condition.stringEquals('$.next', 'succeeded'), succeeded)
    .when(sfn.Condition.stringEquals('$.next', 'failed'), failed)
    .when(sfn.Condition.stringEquals('$.next', 'smoke'), smokeTest)
    .when(sfn.Condition.numberGreaterThan('$.waitSeconds', 0), wait)
    .otherwise(step);
  for (const task of [start, step, afterSmoke, smokeTest]) {
    task.addCatch(rollback, { errors: ['States.ALL'], resultPath: '$.caught' });
  }
  rollback.addCatch(rollbackFailed, { errors: ['States.ALL'], resultPath: '$.caught' });
  start.next(route);
  step.next(route);
  afterSmoke.next(route);
  rollback.next(route);
  smokeTest.next(afterSmoke);
  wait.next(step);
  return start;
}

/**
 * The build of an EC2 release: unit tests, the build commands, then the bundle under releases/<id>/ (where the fleet's
 * instances find it) and the exported `RELEASE_ID` the workflow releases.
 * @internal
 */
export function ec2BundleBuildSpec(testCommands: string[] | undefined, buildCommands: string[] | undefined): codebuild.BuildSpec {
  const tests = testCommands ?? ['if [ -f package.json ]; then npm ci && npm run test --if-present; else echo "no package.json: no unit tests to run"; fi'];
  const build = buildCommands ?? ['if [ -f package.json ]; then npm run build --if-present && npm prune --omit=dev; fi'];
  return codebuild.BuildSpec.fromObject({
    version: '0.2',
    env: { 'shell': 'bash', 'exported-variables': ['RELEASE_ID'] },
    phases: {
      // The Node.js major the instances install by default, so that native modules built here load there.
      install: { 'runtime-versions': { nodejs: 22 } },
      pre_build: {
        commands: [
          'cd "$CODEBUILD_SRC_DIR/$APP_DIRECTORY"',
          ...tests,
        ],
      },
      build: {
        commands: [
          'cd "$CODEBUILD_SRC_DIR/$APP_DIRECTORY"',
          ...build,
          // Commit (or S3 object version) and build number: unique, never reused.
          'REVISION=$(printf "%s" "${CODEBUILD_RESOLVED_SOURCE_VERSION:-unknown}" | tr -c "A-Za-z0-9_.-" "-" | cut -c1-40)',
          'export RELEASE_ID="${REVISION}-${CODEBUILD_BUILD_NUMBER}"',
          'tar --exclude=./.git --exclude=./reports -czf /tmp/bundle.tgz -C "$CODEBUILD_SRC_DIR/$APP_DIRECTORY" .',
          `aws s3 cp /tmp/bundle.tgz "s3://$BUNDLE_BUCKET/${RELEASES_PREFIX}$RELEASE_ID/bundle.tgz" --only-show-errors`,
          'printf \'{"release":"%s"}\' "$RELEASE_ID" > "$CODEBUILD_SRC_DIR/release.json"',
        ],
      },
    },
    artifacts: { files: ['release.json'] },
  });
}
