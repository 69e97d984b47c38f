import { CfnOutput, Duration, Lazy } from 'aws-cdk-lib';
import * as autoscaling from 'aws-cdk-lib/aws-autoscaling';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as elbv2 from 'aws-cdk-lib/aws-elasticloadbalancingv2';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import { Construct } from 'constructs';
import { ServicePipelineProps } from './service-pipeline-props';
import { checkLatencyThreshold } from '../monitoring/alarm-thresholds';
import { addBlueGreenFleetAlarms } from '../monitoring/fleet-alarms';
import { ServiceMonitoring } from '../monitoring/service-monitoring';
import { Approval } from '../pipeline/approval';
import { BuildArchitecture } from '../pipeline/build-step';
import { DeliveryPipeline } from '../pipeline/delivery-pipeline';
import { createStateParameters } from '../private/image-parameter';
import { uniquePhysicalName } from '../private/names';
import { checkNotEmpty, normalizeRepositoryDirectory } from '../private/validate';
import { ec2BundleBuildSpec, Ec2BlueGreenRelease, EC2_RELEASE_STAGE_NAME } from '../release/ec2-blue-green-release';
import { TrafficShift } from '../release/traffic-shift';
import { BlueGreenEc2Fleet, COLORS } from '../runtime/ec2-fleet';
import { InstanceSecret } from '../runtime/instance-secret';

/**
 * Properties of `Ec2BlueGreenPipeline`.
 */
export interface Ec2BlueGreenPipelineProps extends ServicePipelineProps {
  /**
   * Whether a human approves. `Approval.beforeProductionTraffic()` holds the release after the new version passed its
   * smoke test on the test listener; its timeout must fit the release's hour (55 minutes minus 15 for the new
   * instances, the canary step and the bake time: 35 minutes with the defaults), and without one it waits that long.
   *
   * @default Approval.none()
   */
  readonly approval?: Approval;

  /**
   * The directory of the source that holds the application: the build's working directory, and what the release
   * bundle contains.
   *
   * @default '.' - the repository root
   */
  readonly appDirectory?: string;

  /**
   * Commands that turn the tested source into what the instances run, in `appDirectory`; everything in `appDirectory`
   * afterwards (but `.git`) is the release bundle.
   *
   * @default - `npm run build --if-present` and `npm prune --omit=dev` when `appDirectory` has a `package.json`
   */
  readonly buildCommands?: string[];

  /**
   * The command that starts the application in the release directory, run by systemd as an unprivileged user with
   * `PORT` set to `port`.
   *
   * @default 'npm start'
   */
  readonly startCommand?: string;

  /**
   * Commands an instance runs at boot before it installs the release (as root). They must install the runtime the
   * application needs and the CloudWatch agent.
   *
   * @default - `dnf install -y nodejs22 nodejs22-npm amazon-cloudwatch-agent` (Node.js 22 of Amazon Linux 2023, the
   *   version the build runs)
   */
  readonly setupCommands?: string[];

  /**
   * Plain environment variables of the application.
   *
   * @default - none
   */
  readonly environment?: { [name: string]: string };

  /**
   * Secrets the application sees as environment variables. Each instance reads them at boot with its own role, which
   * may read only these; their values never appear in the template, the launch template or the user data.
   *
   * @default - none
   */
  readonly secrets?: { [name: string]: InstanceSecret };

  /**
   * The VPC.
   *
   * @default - a new VPC with two public subnets in two AZs and no NAT gateway
   */
  readonly vpc?: ec2.IVpc;

  /**
   * The processor architecture of the instances; the bundle is built on a CodeBuild host of the same architecture.
   *
   * @default ec2.InstanceArchitecture.ARM_64
   */
  readonly architecture?: ec2.InstanceArchitecture;

  /**
   * The instance type, of `architecture`.
   *
   * @default - t4g.micro (ARM_64), t3.micro (X86_64)
   */
  readonly instanceType?: ec2.InstanceType;

  /**
   * The image the instances boot from (it must have the AWS CLI, curl, systemd and what `setupCommands` use).
   *
   * @default - the latest Amazon Linux 2023 for `architecture`, looked up at deploy time
   */
  readonly machineImage?: ec2.IMachineImage;

  /**
   * How many instances serve production, spread over the VPC's AZs (the idle color has none between releases).
   *
   * @default 2
   */
  readonly capacity?: number;

  /**
   * The port the application listens on (it gets it as `PORT`).
   *
   * @default 8080
   */
  readonly port?: number;

  /**
   * The path of the health check: the instance's readiness check, the target groups and the smoke test; it must
   * answer 200 with `{"status": "ok"}`.
   *
   * @default '/healthcheck'
   */
  readonly healthCheckPath?: string;

  /**
   * A phrase the welcome page (`/` on the test listener) must contain for the smoke test to pass.
   *
   * @default - the smoke test checks the health path only
   */
  readonly expectedPhrase?: string;

  /**
   * How long the load balancer lets requests to an old instance finish (0 to 30 seconds).
   *
   * @default Duration.seconds(30)
   */
  readonly deregistrationDelay?: Duration;

  /**
   * A certificate for HTTPS: production then listens on 443, and 80 redirects to it.
   *
   * @default - production listens on HTTP 80
   */
  readonly certificate?: elbv2.IListenerCertificate;

  /**
   * The port of the test listener, where the new version serves before production traffic shifts.
   *
   * @default 8080
   */
  readonly testListenerPort?: number;

  /**
   * Who may reach the test listener. The smoke test runs outside the VPC and reaches it over the internet, so
   * restricting it to your network also stops the smoke test.
   *
   * @default - anyone (ec2.Peer.anyIpv4())
   */
  readonly testListenerPeers?: ec2.IPeer[];

  /**
   * How production traffic moves to the new color.
   *
   * @default TrafficShift.allAtOnce()
   */
  readonly trafficShift?: TrafficShift;

  /**
   * How long the old color keeps running after all production traffic moved; an alarm in that time rolls back.
   * 0 to 30 minutes in whole minutes; with the canary step it must leave the release's hour room (see `approval`).
   *
   * @default Duration.minutes(5)
   */
  readonly bakeTime?: Duration;

  /**
   * More alarms that roll a release back while its traffic shifts and bakes (the pattern's own alarms on the new
   * color always do).
   *
   * @default - none
   */
  readonly deploymentAlarms?: cloudwatch.IAlarm[];

  /**
   * The p99 target response time above which a color's latency alarm fires (it rolls back a release onto that color).
   *
   * @default Duration.seconds(2)
   */
  readonly latencyThreshold?: Duration;

  /**
   * The p95 response time of the load balancer above which the service's latency alarm fires (the workshop's alarm).
   *
   * @default Duration.seconds(1)
   */
  readonly p95LatencyThreshold?: Duration;
}

/**
 * A web application on EC2 Auto Scaling behind an ALB, released from a git push blue/green: the build runs the unit
 * tests and uploads a release bundle; the idle color's instances install it, pass their own readiness check and the
 * load balancer's health check behind the test listener, pass a smoke test and (optionally) a human approval; then
 * production traffic shifts, alarms on the new color roll back during the bake time, and the old color scales to
 * zero. A later `cdk deploy` keeps the live color and its release (ADR 0008).
 */
export class Ec2BlueGreenPipeline extends Construct {
  /** The delivery pipeline (Source, Build, Release). */
  public readonly pipeline: DeliveryPipeline;
  /** The VPC. */
  public readonly vpc: ec2.IVpc;
  /** The application load balancer. */
  public readonly loadBalancer: elbv2.ApplicationLoadBalancer;
  /** The production listener. */
  public readonly productionListener: elbv2.ApplicationListener;
  /** The test listener. */
  public readonly testListener: elbv2.ApplicationListener;
  /** The blue Auto Scaling group. */
  public readonly blueGroup: autoscaling.AutoScalingGroup;
  /** The green Auto Scaling group. */
  public readonly greenGroup: autoscaling.AutoScalingGroup;
  /** The blue target group. */
  public readonly blueTargetGroup: elbv2.ApplicationTargetGroup;
  /** The green target group. */
  public readonly greenTargetGroup: elbv2.ApplicationTargetGroup;
  /** The role of the instances (both colors). */
  public readonly instanceRole: iam.IRole;
  /** The security group of the instances. */
  public readonly instanceSecurityGroup: ec2.ISecurityGroup;
  /** The application's logs (one stream per instance). */
  public readonly logGroup: logs.ILogGroup;
  /** The release bundles (`releases/<id>/bundle.tgz`), which the instances install; kept until the stack is deleted. */
  public readonly bundleBucket: s3.IBucket;
  /** The release workflow the pipeline starts. */
  public readonly stateMachine: sfn.IStateMachine;
  /** The production URL. */
  public readonly productionUrl: string;
  /** The test listener's URL. */
  public readonly testUrl: string;
  /** The SSM parameter holding the live color (`none`, `blue` or `green`), which CloudFormation reads on every update. */
  public readonly liveColorParameterName: string;
  /** Alarms, alarm topic and dashboard. */
  public readonly monitoring: ServiceMonitoring;
  /** The alarm topic. */
  public readonly alarmTopic: sns.ITopic;
  /** The dashboard. */
  public readonly dashboard: cloudwatch.Dashboard;
  /** The command that rolls production back to an earlier successful execution (fill in its id). */
  public readonly rollbackCommand: string;

  constructor(scope: Construct, id: string, props: Ec2BlueGreenPipelineProps) {
    super(scope, id);
    const appDirectory = normalizeRepositoryDirectory(this, 'appDirectory', props.appDirectory);
    props.testCommands?.forEach((command) => checkNotEmpty(this, 'testCommands', command));
    props.buildCommands?.forEach((command) => checkNotEmpty(this, 'buildCommands', command));
    if (props.expectedPhrase !== undefined) checkNotEmpty(this, 'expectedPhrase', props.expectedPhrase);
    checkLatencyThreshold(this, 'latencyThreshold', props.latencyThreshold);
    checkLatencyThreshold(this, 'p95LatencyThreshold', props.p95LatencyThreshold);

    // What the release engine writes and CloudFormation reads, created before this stack (ADR 0008).
    const state = createStateParameters(this, {
      stackSuffix: 'State',
      retainKey: props.retainArtifacts,
      stackDescription: `The live color and the releases of ${this.node.path} (written by its release workflow)`,
      parameters: [
        { key: 'live-color', initialValue: 'none', description: `Color in production of ${this.node.path}: none, blue or green` },
        { key: 'release-lock', initialValue: 'free', description: `The release running on ${this.node.path}: free, or running <execution>` },
        ...COLORS.map((color) => ({
          key: `${color}-release`, initialValue: 'none', description: `Release the ${color} instances of ${this.node.path} install at boot`,
        })),
      ],
    });
    this.liveColorParameterName = state.parameterNames['live-color'];
    const releaseParameterNames = { blue: state.parameterNames['blue-release'], green: state.parameterNames['green-release'] };

    const fleet = new BlueGreenEc2Fleet(this, 'Fleet', {
      vpc: props.vpc,
      instanceType: props.instanceType,
      architecture: props.architecture,
      machineImage: props.machineImage,
      capacity: props.capacity,
      port: props.port,
      healthCheckPath: props.healthCheckPath,
      deregistrationDelay: props.deregistrationDelay,
      certificate: props.certificate,
      testListenerPort: props.testListenerPort,
      testListenerPeers: props.testListenerPeers,
      startCommand: props.startCommand,
      setupCommands: props.setupCommands,
      environment: props.environment,
      secrets: props.secrets,
      logRetention: props.logRetention,
      liveColorParameterName: this.liveColorParameterName,
      releaseParameterNames,
    });
    this.vpc = fleet.vpc;
    this.loadBalancer = fleet.loadBalancer;
    this.productionListener = fleet.productionListener;
    this.testListener = fleet.testListener;
    this.blueGroup = fleet.blueGroup;
    this.greenGroup = fleet.greenGroup;
    this.blueTargetGroup = fleet.blueTargetGroup;
    this.greenTargetGroup = fleet.greenTargetGroup;
    this.instanceRole = fleet.instanceRole;
    this.instanceSecurityGroup = fleet.instanceSecurityGroup;
    this.logGroup = fleet.logGroup;
    this.productionUrl = fleet.productionUrl;
    this.testUrl = fleet.testUrl;

    // Known before the pipeline exists (the release function looks its approval up), unique per stack name and path.
    const pipelineName = uniquePhysicalName(this, 39);
    const release = new Ec2BlueGreenRelease({
      fleet,
      pipelineName,
      liveColorParameterName: this.liveColorParameterName,
      lockParameterName: state.parameterNames['release-lock'],
      releaseParameterNames,
      bakeTime: props.bakeTime,
      trafficShift: props.trafficShift,
      expectedPhrase: props.expectedPhrase,
      logRetention: props.logRetention,
      retainBundles: props.retainArtifacts,
    });
    this.pipeline = new DeliveryPipeline(this, 'Pipeline', {
      source: props.source,
      pipelineName,
      approval: props.approval,
      notifications: props.notifications,
      infrastructure: props.infrastructure,
      retainArtifacts: props.retainArtifacts,
      artifactKey: state.key,
      buildStep: {
        architecture: props.architecture === ec2.InstanceArchitecture.X86_64 ? BuildArchitecture.X86_64 : BuildArchitecture.ARM_64,
        buildSpec: ec2BundleBuildSpec(props.testCommands, props.buildCommands),
        environmentVariables: {
          ...props.buildEnvironmentVariables,
          APP_DIRECTORY: appDirectory,
          // The build uploads the bundle to the release's bundle bucket, under releases/.
          BUNDLE_BUCKET: Lazy.string({ produce: () => release.created.bundleBucket.bucketName }),
        },
        secrets: props.buildSecrets,
        testReportDirectory: appDirectory === '.' ? 'reports/junit' : `${appDirectory}/reports/junit`,
      },
      release,
    });
    const created = release.created;
    created.grantUpload(this.pipeline.buildStep.role);
    this.bundleBucket = created.bundleBucket;
    this.stateMachine = created.stateMachine;

    // Monitoring: alarms per color roll back a release onto that color; the service's alarms watch production.
    this.monitoring = new ServiceMonitoring(this, 'Monitoring', {
      alarmEmails: props.alarmEmails,
      encryptionKey: this.pipeline.artifactKey,
      title: `${this.node.path}: EC2 fleet (blue/green) and its releases`,
    });
    this.alarmTopic = this.monitoring.alarmTopic;
    this.dashboard = this.monitoring.dashboard;
    fleet.notifyScalingEvents(this.alarmTopic, this.pipeline.artifactKey);
    const alarms = addBlueGreenFleetAlarms(this.monitoring, fleet, {
      latencyThreshold: props.latencyThreshold,
      p95LatencyThreshold: props.p95LatencyThreshold,
    });
    COLORS.forEach((color) => created.watchColor(color, alarms[color]));
    created.addDeploymentAlarms(props.deploymentAlarms ?? []);

    // Delivery (DORA) rows and release markers on the service's graphs, on the pattern's own dashboard.
    this.pipeline.deliveryMetrics?.addToMonitoring(this.monitoring);

    this.rollbackCommand = 'aws codepipeline rollback-stage --pipeline-name ' + this.pipeline.pipeline.pipelineName +
      ` --stage-name ${EC2_RELEASE_STAGE_NAME} --target-pipeline-execution-id <id of an earlier successful execution>`;
    new CfnOutput(this, 'ProductionUrl', { value: this.productionUrl, description: 'The service in production' });
    new CfnOutput(this, 'TestUrl', { value: this.testUrl, description: 'The test listener: the new version during a release' });
    new CfnOutput(this, 'RollbackCommand', { value: this.rollbackCommand, description: 'Rolls production back to an earlier release' });
  }
}
