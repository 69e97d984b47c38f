import { CfnOutput, Duration, Validations } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as ecr from 'aws-cdk-lib/aws-ecr';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import * as elbv2 from 'aws-cdk-lib/aws-elasticloadbalancingv2';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as ssm from 'aws-cdk-lib/aws-ssm';
import { Construct } from 'constructs';
import { ServicePipelineProps } from './service-pipeline-props';
import { checkLatencyThreshold } from '../monitoring/alarm-thresholds';
import { addFargateServiceAlarms } from '../monitoring/fargate-service-alarms';
import { ServiceMonitoring } from '../monitoring/service-monitoring';
import { Approval } from '../pipeline/approval';
import { BuildArchitecture } from '../pipeline/build-step';
import { DeliveryPipeline } from '../pipeline/delivery-pipeline';
import { createImageParameter } from '../private/image-parameter';
import { uniquePhysicalName } from '../private/names';
import { checkNotEmpty, normalizeRepositoryDirectory } from '../private/validate';
import {
  checkBakeTime, checkPlaceholderEnvironment, EcsBlueGreenRelease, ecsImageBuildSpec, grantImagePush, RELEASE_STAGE_NAME,
} from '../release/ecs-blue-green-release';
import { BlueGreenFargateService } from '../runtime/fargate-service';

/**
 * The image the service runs before the pipeline's first release: `traefik/whoami` answers 200 on every path, on the
 * port in `WHOAMI_PORT_NUMBER`, for arm64 and x86_64.
 */
const DEFAULT_PLACEHOLDER_IMAGE = 'docker.io/traefik/whoami:v1.10.1';

/**
 * Properties of `FargateBlueGreenPipeline`.
 */
export interface FargateBlueGreenPipelineProps extends ServicePipelineProps {
  /**
   * Whether a human approves. `Approval.beforeProductionTraffic()` holds the release after the new version passed its
   * smoke test on the test listener; its timeout must fit the ECS deploy action's hour (at most 60 minutes minus the
   * bake time minus 15), and without one it waits that long (40 minutes with the default bake time), not 24 hours.
   *
   * @default Approval.none()
   */
  readonly approval?: Approval;

  /**
   * The directory of the source that holds the Dockerfile: the build's working directory and the Docker build context.
   *
   * @default '.' - the repository root
   */
  readonly dockerDirectory?: string;

  /**
   * Plain environment variables of the container.
   *
   * @default - none
   */
  readonly environment?: { [name: string]: string };

  /**
   * Secrets the container sees as environment variables, injected by ECS from SSM Parameter Store or Secrets Manager
   * (`ecs.Secret.fromSsmParameter`, `ecs.Secret.fromSecretsManager`); the task's execution role may read only these.
   *
   * @default - none
   */
  readonly secrets?: { [name: string]: ecs.Secret };

  /**
   * The VPC.
   *
   * @default - a new VPC with two public subnets in two AZs and no NAT gateway
   */
  readonly vpc?: ec2.IVpc;

  /**
   * The ECS cluster.
   *
   * @default - a new cluster in the VPC
   */
  readonly cluster?: ecs.ICluster;

  /**
   * Container Insights of the new cluster (ignored with `cluster`). Classic Container Insights costs about 8 USD a
   * month for this service (about 37 custom metrics), which would take the idle cost over 50 USD (about 46 USD without it); the alarms and the
   * dashboard use only the free metrics of the load balancer and of ECS.
   *
   * @default ecs.ContainerInsights.DISABLED
   */
  readonly containerInsights?: ecs.ContainerInsights;

  /**
   * The ECR repository the build pushes to.
   *
   * @default - a new repository: scan on push, immutable tags, the newest `imagesToKeep` released images and the
   *   newest `imagesToKeep` images overall, emptied on delete
   */
  readonly repository?: ecr.IRepository;

  /**
   * How many images the new repository keeps (a rollback needs the previous ones).
   *
   * @default 20
   */
  readonly imagesToKeep?: number;

  /**
   * The port the container listens on; the placeholder image is told to listen there too.
   *
   * @default 8080
   */
  readonly containerPort?: number;

  /**
   * The processor architecture of the tasks; the image is built on a CodeBuild host of the same architecture.
   *
   * @default ecs.CpuArchitecture.ARM64
   */
  readonly cpuArchitecture?: ecs.CpuArchitecture;

  /**
   * CPU units of a task.
   *
   * @default 256
   */
  readonly cpu?: number;

  /**
   * Memory of a task in MiB, a value Fargate offers with `cpu`.
   *
   * @default 512
   */
  readonly memoryLimitMiB?: number;

  /**
   * How many tasks run, spread over the VPC's AZs.
   *
   * @default 2
   */
  readonly desiredCount?: number;

  /**
   * The path of the health check of the target groups and of the smoke test.
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
   * A container health check (its command runs inside the image).
   *
   * @default - none: the target groups' health check on `healthCheckPath` decides
   */
  readonly containerHealthCheck?: ecs.HealthCheck;

  /**
   * Run the container as uid:gid 1000:1000 (the `node` user of Node.js images) whatever the image's `USER`; false
   * for an image that must run as root or as another user. A non-root container may listen only on ports 1024 and up.
   *
   * @default true - the container runs as 1000:1000
   */
  readonly runAsNonRootUser?: boolean;

  /**
   * Make the container's root filesystem read-only, with an empty writable volume at `/tmp` (declare `VOLUME /tmp`
   * in the image for a non-root user to write there); false for an image that writes elsewhere.
   *
   * @default true - read-only root filesystem, writable /tmp volume
   */
  readonly readonlyRootFilesystem?: boolean;

  /**
   * Give the container a hard memory limit, the task's memory; false to leave the limit to the task alone.
   *
   * @default true - the container's hard limit is the task's memory
   */
  readonly containerMemoryLimit?: boolean;

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
   * How long both versions keep running after production traffic shifted; an alarm in that time rolls back.
   * 0 to 45 minutes in whole minutes, 0 to 40 with `Approval.beforeProductionTraffic()` (the ECS deploy action waits at
   * most 60 minutes for the whole deployment).
   *
   * @default Duration.minutes(5)
   */
  readonly bakeTime?: Duration;

  /**
   * The p99 target response time above which the latency alarm fires.
   *
   * @default Duration.seconds(2)
   */
  readonly latencyThreshold?: Duration;

  /**
   * The image the service runs before the first release. It must answer 200 on `healthCheckPath` at `containerPort`.
   *
   * @default 'docker.io/traefik/whoami:v1.10.1', which answers 200 on every path
   */
  readonly placeholderImage?: string;
}

/**
 * A container service on ECS Fargate, released from a git push with ECS native blue/green deployments: the build
 * runs the unit tests and pushes an image tagged with the commit and the build number; the new tasks serve on a test
 * listener, pass a smoke test and (optionally) a human approval before production traffic shifts; alarms roll back
 * during the bake time; a later `cdk deploy` keeps the image in production.
 */
export class FargateBlueGreenPipeline extends Construct {
  /** The delivery pipeline (Source, Build, Release). */
  public readonly pipeline: DeliveryPipeline;
  /** The VPC. */
  public readonly vpc: ec2.IVpc;
  /** The ECS cluster. */
  public readonly cluster: ecs.ICluster;
  /** The ECR repository. */
  public readonly repository: ecr.IRepository;
  /** The task definition CloudFormation manages (each release registers a revision of it). */
  public readonly taskDefinition: ecs.FargateTaskDefinition;
  /** The application container. */
  public readonly container: ecs.ContainerDefinition;
  /** The Fargate service. */
  public readonly service: ecs.FargateService;
  /** The application load balancer. */
  public readonly loadBalancer: elbv2.ApplicationLoadBalancer;
  /** The production listener. */
  public readonly productionListener: elbv2.ApplicationListener;
  /** The test listener. */
  public readonly testListener: elbv2.ApplicationListener;
  /** The target group production starts on. */
  public readonly blueTargetGroup: elbv2.ApplicationTargetGroup;
  /** The alternate target group. */
  public readonly greenTargetGroup: elbv2.ApplicationTargetGroup;
  /** The container logs. */
  public readonly logGroup: logs.ILogGroup;
  /** The production URL. */
  public readonly productionUrl: string;
  /** The test listener's URL. */
  public readonly testUrl: string;
  /** The SSM parameter holding the image in production, which CloudFormation reads on every stack update. */
  public readonly imageParameterName: string;
  /** Alarms, alarm topic and dashboard. */
  public readonly monitoring: ServiceMonitoring;
  /** The alarm topic. */
  public readonly alarmTopic: sns.ITopic;
  /** The dashboard. */
  public readonly dashboard: cloudwatch.Dashboard;
  /** The alarms that roll a deployment back while it runs and bakes. */
  public readonly deploymentAlarms: cloudwatch.IAlarm[];
  /** The lifecycle hook: smoke test and approval gate. */
  public readonly releaseHook: lambda.IFunction;
  /** The command that rolls production back to an earlier successful execution (fill in its id). */
  public readonly rollbackCommand: string;

  constructor(scope: Construct, id: string, props: FargateBlueGreenPipelineProps) {
    super(scope, id);
    const dockerDirectory = normalizeRepositoryDirectory(this, 'dockerDirectory', props.dockerDirectory);
    const bakeTime = props.bakeTime ?? Duration.minutes(5);
    checkBakeTime(this, props.bakeTime);
    const healthCheckPath = props.healthCheckPath ?? '/healthcheck';
    const containerPort = props.containerPort ?? 8080;
    const placeholderImage = props.placeholderImage ?? DEFAULT_PLACEHOLDER_IMAGE;
    checkNotEmpty(this, 'placeholderImage', placeholderImage);
    if (props.expectedPhrase !== undefined) checkNotEmpty(this, 'expectedPhrase', props.expectedPhrase);
    props.testCommands?.forEach((command) => checkNotEmpty(this, 'testCommands', command));
    checkLatencyThreshold(this, 'latencyThreshold', props.latencyThreshold);
    checkPlaceholderEnvironment(this, props.environment);

    // The image comes from an SSM parameter that the pipeline updates after each successful release (ADR 0006).
    const imageParameter = createImageParameter(this, placeholderImage, props.retainArtifacts);
    this.imageParameterName = imageParameter.parameterName;
    const image = ssm.StringParameter.valueForStringParameter(this, imageParameter.parameterName);

    const runtime = new BlueGreenFargateService(this, 'Service', {
      image: ecs.ContainerImage.fromRegistry(image),
      vpc: props.vpc,
      cluster: props.cluster,
      containerInsights: props.containerInsights,
      repository: props.repository,
      imagesToKeep: props.imagesToKeep,
      containerPort,
      cpuArchitecture: props.cpuArchitecture,
      cpu: props.cpu,
      memoryLimitMiB: props.memoryLimitMiB,
      desiredCount: props.desiredCount,
      healthCheckPath,
      certificate: props.certificate,
      testListenerPort: props.testListenerPort,
      testListenerPeers: props.testListenerPeers,
      bakeTime,
      logRetention: props.logRetention,
      containerHealthCheck: props.containerHealthCheck,
      runAsNonRootUser: props.runAsNonRootUser,
      readonlyRootFilesystem: props.readonlyRootFilesystem,
      containerMemoryLimit: props.containerMemoryLimit,
      environment: { ...props.environment, WHOAMI_PORT_NUMBER: String(containerPort) },
      secrets: props.secrets,
    });
    Validations.of(runtime.taskDefinition).acknowledge({
      id: 'AwsSolutions-ECS2',
      reason: 'Plain configuration only (the port the placeholder image listens on, and the environment prop); secrets ' +
        'reach the container through the secrets prop, which ECS injects from SSM Parameter Store or Secrets Manager.',
    });
    this.vpc = runtime.vpc;
    this.cluster = runtime.cluster;
    this.repository = runtime.repository;
    this.taskDefinition = runtime.taskDefinition;
    this.container = runtime.container;
    this.service = runtime.service;
    this.loadBalancer = runtime.loadBalancer;
    this.productionListener = runtime.productionListener;
    this.testListener = runtime.testListener;
    this.blueTargetGroup = runtime.blueTargetGroup;
    this.greenTargetGroup = runtime.greenTargetGroup;
    this.logGroup = runtime.logGroup;
    this.productionUrl = runtime.productionUrl;
    this.testUrl = runtime.testUrl;

    const architecture = props.cpuArchitecture === ecs.CpuArchitecture.X86_64 ? BuildArchitecture.X86_64 : BuildArchitecture.ARM_64;
    // Known before the pipeline exists (the approval gate looks it up), and unique per stack name and construct path.
    const pipelineName = uniquePhysicalName(this, 39);
    const release = new EcsBlueGreenRelease({
      runtime,
      imageParameterName: imageParameter.parameterName,
      placeholderImage,
      pipelineName,
      bakeTime,
      healthCheckPath,
      expectedPhrase: props.expectedPhrase,
      logRetention: props.logRetention,
    });
    this.pipeline = new DeliveryPipeline(this, 'Pipeline', {
      source: props.source,
      pipelineName,
      approval: props.approval,
      notifications: props.notifications,
      infrastructure: props.infrastructure,
      retainArtifacts: props.retainArtifacts,
      artifactKey: imageParameter.key,
      buildStep: {
        architecture,
        privileged: true,
        buildSpec: ecsImageBuildSpec(props.testCommands),
        environmentVariables: {
          ...props.buildEnvironmentVariables,
          REPOSITORY_URI: this.repository.repositoryUri,
          CONTAINER_NAME: this.container.containerName,
          DOCKER_DIRECTORY: dockerDirectory,
        },
        secrets: props.buildSecrets,
        testReportDirectory: dockerDirectory === '.' ? 'reports/junit' : `${dockerDirectory}/reports/junit`,
      },
      release,
    });
    grantImagePush(this.pipeline.buildStep.role, this.repository);
    this.releaseHook = release.created.hookFunction;

    // Monitoring: only free metrics (load balancer and ECS), so the alarms need no Container Insights.
    this.monitoring = new ServiceMonitoring(this, 'Monitoring', {
      alarmEmails: props.alarmEmails,
      // The pipeline's key: one customer managed key for the whole pattern (1 USD a month each).
      encryptionKey: this.pipeline.artifactKey,
      title: `${this.node.path}: Fargate service and its releases`,
    });
    this.alarmTopic = this.monitoring.alarmTopic;
    this.dashboard = this.monitoring.dashboard;
    this.deploymentAlarms = addFargateServiceAlarms(this.monitoring, runtime, {
      desiredCount: props.desiredCount, latencyThreshold: props.latencyThreshold,
    });
    this.service.enableDeploymentAlarms(this.deploymentAlarms.map((alarm) => alarm.alarmName), {
      behavior: ecs.AlarmBehavior.ROLLBACK_ON_ALARM,
    });

    // Delivery (DORA) rows and release markers on the service's graphs, on the pattern's own dashboard.
    this.pipeline.deliveryMetrics?.addToMonitoring(this.monitoring);

    this.rollbackCommand = 'aws codepipeline rollback-stage --pipeline-name ' + this.pipeline.pipeline.pipelineName +
      ` --stage-name ${RELEASE_STAGE_NAME} --target-pipeline-execution-id <id of an earlier successful execution>`;
    new CfnOutput(this, 'ProductionUrl', { value: this.productionUrl, description: 'The service in production' });
    new CfnOutput(this, 'TestUrl', { value: this.testUrl, description: 'The test listener: the new version during a release' });
    new CfnOutput(this, 'RollbackCommand', { value: this.rollbackCommand, description: 'Rolls production back to an earlier release' });
  }
}
