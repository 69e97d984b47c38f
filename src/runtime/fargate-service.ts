import { Duration, RemovalPolicy, Stack, Token, Validations } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as ecr from 'aws-cdk-lib/aws-ecr';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import * as elbv2 from 'aws-cdk-lib/aws-elasticloadbalancingv2';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import { acknowledgeStarResourceOnlyFor } from '../private/acknowledgements';
import { createLogGroup } from '../private/log-group';
import { pruneRedundantDependsOn } from '../private/redundant-depends-on';
import { checkDuration, checkInteger, checkNoSecretLikeNames, checkNoSharedNames, checkSameRegion, invalidInput } from '../private/validate';
import { createColorTargetGroups, createPublicVpc, createWebLoadBalancer } from '../private/web-front';

/**
 * Properties of `BlueGreenFargateService`.
 * @internal
 */
export interface BlueGreenFargateServiceProps {
  /** The image the service starts with. */
  readonly image: ecs.ContainerImage;
  /** @default - a new VPC with two public subnets in two AZs and no NAT gateway */
  readonly vpc?: ec2.IVpc;
  /** @default - a new cluster in the VPC with `containerInsights` */
  readonly cluster?: ecs.ICluster;
  /** @default ecs.ContainerInsights.DISABLED */
  readonly containerInsights?: ecs.ContainerInsights;
  /** @default ecs.CpuArchitecture.ARM64 */
  readonly cpuArchitecture?: ecs.CpuArchitecture;
  /** @default - none */
  readonly environment?: { [name: string]: string };
  /** @default - none */
  readonly secrets?: { [name: string]: ecs.Secret };
  /** @default - a new repository: scan on push, immutable tags, the last `imagesToKeep` images, emptied on delete */
  readonly repository?: ecr.IRepository;
  /** @default 20 */
  readonly imagesToKeep?: number;
  /** @default 8080 */
  readonly containerPort?: number;
  /** @default 256 */
  readonly cpu?: number;
  /** @default 512 */
  readonly memoryLimitMiB?: number;
  /** @default 2 */
  readonly desiredCount?: number;
  /** @default '/healthcheck' */
  readonly healthCheckPath?: string;
  /** @default - HTTP on port 80; with a certificate HTTPS on 443 and a redirect from 80 */
  readonly certificate?: elbv2.IListenerCertificate;
  /** @default 8080 */
  readonly testListenerPort?: number;
  /** @default - anyone (ec2.Peer.anyIpv4()) */
  readonly testListenerPeers?: ec2.IPeer[];
  /** @default Duration.minutes(5) */
  readonly bakeTime?: Duration;
  /** @default logs.RetentionDays.ONE_MONTH */
  readonly logRetention?: logs.RetentionDays;
  /**
   * A container health check (its command runs inside the image, so it depends on the image's tools).
   * @default - none: the target group's health check on `healthCheckPath` decides which tasks get traffic
   */
  readonly containerHealthCheck?: ecs.HealthCheck;
  /**
   * Run the container as uid:gid 1000:1000, whatever the image's USER; it may then listen only on ports 1024 and up.
   * @default true - the container runs as 1000:1000 (`node` in Node.js images)
   */
  readonly runAsNonRootUser?: boolean;
  /**
   * Make the container's root filesystem read-only, with a task volume at /tmp. ECS copies the image's /tmp (and its
   * mode) into the volume only when the image declares `VOLUME /tmp`; otherwise the volume is owned by root (0755),
   * and a non-root process cannot write there: declare `VOLUME ["/tmp"]` in the Dockerfile (as the sample service
   * does), or set this to false.
   * @default true - a read-only root filesystem, with a volume at /tmp
   */
  readonly readonlyRootFilesystem?: boolean;
  /**
   * Give the container a hard memory limit equal to the task's memory, so that it is stopped rather than the task
   * starved.
   * @default true - the container's hard memory limit is the task's memory
   */
  readonly containerMemoryLimit?: boolean;
}

/** The user the container runs as unless `runAsNonRootUser` is false: the `node` user of Node.js images. */
export const NON_ROOT_CONTAINER_USER = '1000:1000';

/** Whether two VPCs are one (the same object, or the same resolved id). */
function sameVpc(scope: Construct, a: ec2.IVpc, b: ec2.IVpc | undefined): boolean {
  if (b === undefined) return false;
  if (a === b) return true;
  const stack = Stack.of(scope);
  return JSON.stringify(stack.resolve(a.vpcId)) === JSON.stringify(stack.resolve(b.vpcId));
}

/** The CPU and memory pairs Fargate offers, for the sizes a web service uses. */
const FARGATE_MEMORY: Record<number, number[]> = {
  256: [512, 1024, 2048],
  512: [1024, 2048, 3072, 4096],
  1024: range(2048, 8192, 1024),
  2048: range(4096, 16384, 1024),
  4096: range(8192, 30720, 1024),
  8192: range(16384, 61440, 4096),
  16384: range(32768, 122880, 8192),
};

function range(from: number, to: number, step: number): number[] {
  const values: number[] = [];
  for (let v = from; v <= to; v += step) values.push(v);
  return values;
}

/**
 * An ECS Fargate service (ARM64 by default) behind an internet-facing ALB with a production listener and a test listener,
 * released by ECS native blue/green deployments: new tasks come up in the alternate target group behind the test
 * listener, then production traffic moves, then a bake time; the circuit breaker rolls a failed deployment back.
 * @internal
 */
export class BlueGreenFargateService extends Construct {
  public readonly vpc: ec2.IVpc;
  public readonly cluster: ecs.ICluster;
  public readonly repository: ecr.IRepository;
  public readonly taskDefinition: ecs.FargateTaskDefinition;
  public readonly container: ecs.ContainerDefinition;
  public readonly service: ecs.FargateService;
  public readonly loadBalancer: elbv2.ApplicationLoadBalancer;
  public readonly productionListener: elbv2.ApplicationListener;
  public readonly testListener: elbv2.ApplicationListener;
  public readonly blueTargetGroup: elbv2.ApplicationTargetGroup;
  public readonly greenTargetGroup: elbv2.ApplicationTargetGroup;
  public readonly logGroup: logs.LogGroup;
  /** The URL of the test listener, where the new version is reachable before production traffic moves. */
  public readonly testUrl: string;
  /** The URL of the production listener. */
  public readonly productionUrl: string;

  constructor(scope: Construct, id: string, props: BlueGreenFargateServiceProps) {
    super(scope, id);
    const containerPort = props.containerPort ?? 8080;
    const cpu = props.cpu ?? 256;
    const memory = props.memoryLimitMiB ?? 512;
    const desiredCount = props.desiredCount ?? 2;
    const healthCheckPath = props.healthCheckPath ?? '/healthcheck';
    const productionPort = props.certificate ? 443 : 80;
    const testPort = props.testListenerPort ?? 8080;
    this.validate(props, { containerPort, cpu, memory, desiredCount, healthCheckPath, productionPort, testPort });

    this.vpc = props.vpc ?? createPublicVpc(this);
    const containerInsights = props.containerInsights ?? ecs.ContainerInsights.DISABLED;
    this.cluster = props.cluster ?? new ecs.Cluster(this, 'Cluster', {
      vpc: this.vpc,
      containerInsightsV2: containerInsights,
    });
    if (!props.cluster && containerInsights === ecs.ContainerInsights.DISABLED) {
      Validations.of(this.cluster).acknowledge({
        id: 'AwsSolutions-ECS4',
        reason: 'Container Insights is off by default to keep the idle cost near 46 USD a month (its custom metrics ' +
          'add about 8 USD); the alarms and the dashboard use the free load balancer and ECS metrics. Turn it on with ' +
          'containerInsights.',
      });
    }
    this.repository = props.repository ?? new ecr.Repository(this, 'Repository', {
      imageScanOnPush: true,
      imageTagMutability: ecr.TagMutability.IMMUTABLE,
      // Released images carry a second tag, `released-<tag>` (added by the pipeline after a successful release): the
      // newest of them are kept apart, so builds that never reached production cannot push the image in production
      // (or the ones a rollback needs) out of the repository.
      lifecycleRules: [
        {
          rulePriority: 1,
          description: 'Keep the newest released images',
          tagStatus: ecr.TagStatus.TAGGED,
          tagPrefixList: ['released-'],
          maxImageCount: props.imagesToKeep ?? 20,
        },
        {
          rulePriority: 2,
          description: 'Keep the newest other images',
          tagStatus: ecr.TagStatus.ANY,
          maxImageCount: props.imagesToKeep ?? 20,
        },
      ],
      removalPolicy: RemovalPolicy.DESTROY,
      emptyOnDelete: true,
    });

    this.logGroup = createLogGroup(this, 'Logs', props.logRetention);
    this.taskDefinition = new ecs.FargateTaskDefinition(this, 'TaskDefinition', {
      cpu,
      memoryLimitMiB: memory,
      runtimePlatform: {
        cpuArchitecture: props.cpuArchitecture ?? ecs.CpuArchitecture.ARM64,
        operatingSystemFamily: ecs.OperatingSystemFamily.LINUX,
      },
    });
    this.container = this.taskDefinition.addContainer('App', {
      image: props.image,
      essential: true,
      portMappings: [{ containerPort }],
      logging: ecs.LogDrivers.awsLogs({ logGroup: this.logGroup, streamPrefix: 'app' }),
      healthCheck: props.containerHealthCheck,
      environment: props.environment,
      secrets: props.secrets,
      // Hardened by default (ADR 0012); each can be turned off for an image that needs it.
      user: props.runAsNonRootUser === false ? undefined : NON_ROOT_CONTAINER_USER,
      readonlyRootFilesystem: props.readonlyRootFilesystem !== false,
      memoryLimitMiB: props.containerMemoryLimit === false ? undefined : memory,
    });
    if (props.readonlyRootFilesystem !== false) {
      // A bind mount: task storage, gone with the task. ECS copies what the image has at /tmp when the image declares
      // `VOLUME /tmp` (with its owner and mode); otherwise the directory belongs to root (0755).
      this.taskDefinition.addVolume({ name: 'tmp' });
      this.container.addMountPoints({ sourceVolume: 'tmp', containerPath: '/tmp', readOnly: false });
    }
    const executionRole = this.taskDefinition.obtainExecutionRole();
    this.repository.grantPull(executionRole);
    acknowledgeStarResourceOnlyFor(executionRole, ['ecr:GetAuthorizationToken'],
      'ecr:GetAuthorizationToken, which pulling from ECR needs, does not support resource-level permissions; ' +
      'the image actions are limited to the one repository.');

    const front = createWebLoadBalancer(this, {
      vpc: this.vpc,
      productionPort,
      testPort,
      redirectHttp: props.certificate !== undefined,
      testListenerPeers: props.testListenerPeers,
    });
    const albSecurityGroup = front.securityGroup;
    this.loadBalancer = front.loadBalancer;

    const targetGroups = createColorTargetGroups(this, {
      vpc: this.vpc, targetType: elbv2.TargetType.IP, port: containerPort, healthCheckPath,
    });
    this.blueTargetGroup = targetGroups.blue;
    this.greenTargetGroup = targetGroups.green;

    const notFound = elbv2.ListenerAction.fixedResponse(404, { contentType: 'text/plain', messageBody: 'Not found' });
    this.productionListener = this.loadBalancer.addListener('Production', {
      port: productionPort,
      protocol: props.certificate ? elbv2.ApplicationProtocol.HTTPS : elbv2.ApplicationProtocol.HTTP,
      certificates: props.certificate ? [props.certificate] : undefined,
      sslPolicy: props.certificate ? elbv2.SslPolicy.RECOMMENDED_TLS : undefined,
      defaultAction: notFound,
      open: false,
    });
    if (props.certificate) {
      this.loadBalancer.addRedirect({ sourcePort: 80, targetPort: 443 });
    }
    this.testListener = this.loadBalancer.addListener('Test', {
      port: testPort,
      protocol: elbv2.ApplicationProtocol.HTTP,
      defaultAction: notFound,
      open: false,
    });
    // Both target groups sit in both rules, weighted; ECS moves the weights on every deployment. After a release
    // the live weights differ from these, so the rules must never be changed through CloudFormation again (a
    // change would put the declared weights back and could send production traffic to the drained group).
    const rule = (name: string, listener: elbv2.ApplicationListener) => new elbv2.ApplicationListenerRule(this, name, {
      listener,
      priority: 1,
      conditions: [elbv2.ListenerCondition.pathPatterns(['/*'])],
      action: elbv2.ListenerAction.weightedForward([
        { targetGroup: this.blueTargetGroup, weight: 100 },
        { targetGroup: this.greenTargetGroup, weight: 0 },
      ]),
    });
    const productionRule = rule('ProductionRule', this.productionListener);
    const testRule = rule('TestRule', this.testListener);

    const serviceSecurityGroup = new ec2.SecurityGroup(this, 'ServiceSecurityGroup', {
      vpc: this.vpc,
      description: `Tasks of ${this.node.path}: only the load balancer reaches them`,
    });
    serviceSecurityGroup.addIngressRule(albSecurityGroup, ec2.Port.tcp(containerPort), 'From the load balancer');
    albSecurityGroup.addEgressRule(serviceSecurityGroup, ec2.Port.tcp(containerPort), 'To the tasks');

    this.service = new ecs.FargateService(this, 'Service', {
      cluster: this.cluster,
      taskDefinition: this.taskDefinition,
      desiredCount,
      // No NAT gateway: tasks pull images through their public IP; only the load balancer may connect to them.
      assignPublicIp: true,
      vpcSubnets: { subnetType: ec2.SubnetType.PUBLIC },
      securityGroups: [serviceSecurityGroup],
      minHealthyPercent: 100,
      maxHealthyPercent: 200,
      deploymentStrategy: ecs.DeploymentStrategy.BLUE_GREEN,
      bakeTime: props.bakeTime ?? Duration.minutes(5),
      circuitBreaker: { enable: true, rollback: true },
      healthCheckGracePeriod: Duration.seconds(30),
    });
    this.service.loadBalancerTarget({
      containerName: this.container.containerName,
      containerPort,
      alternateTarget: new ecs.AlternateTarget('Alternate', {
        alternateTargetGroup: this.greenTargetGroup,
        productionListener: ecs.ListenerRuleConfiguration.applicationListenerRule(productionRule),
        testListener: ecs.ListenerRuleConfiguration.applicationListenerRule(testRule),
      }),
    }).attachToApplicationTargetGroup(this.blueTargetGroup);
    const alternateRole = this.service.node.tryFindChild('AlternateRole');
    if (alternateRole) {
      Validations.of(alternateRole).acknowledge({
        id: 'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/AmazonECSInfrastructureRolePolicyForLoadBalancers]',
        reason: 'The AWS-maintained policy with which ECS moves listener rules and targets during blue/green deployments; ' +
          'AWS updates it when ECS needs new load balancer actions, and only ecs.amazonaws.com may assume the role.',
      });
    }

    const scheme = props.certificate ? 'https' : 'http';
    this.productionUrl = `${scheme}://${this.loadBalancer.loadBalancerDnsName}`;
    this.testUrl = `http://${this.loadBalancer.loadBalancerDnsName}:${testPort}`;
    pruneRedundantDependsOn(this);
  }

  private validate(props: BlueGreenFargateServiceProps, v: {
    containerPort: number; cpu: number; memory: number; desiredCount: number; healthCheckPath: string; productionPort: number; testPort: number;
  }): void {
    checkInteger(this, 'desiredCount', v.desiredCount, 1, 100);
    checkSameRegion(this, 'certificate', props.certificate?.certificateArn, Stack.of(this).region);
    if (props.cluster && !sameVpc(this, props.cluster.vpc, props.vpc)) {
      throw invalidInput(this, 'cluster', props.cluster.node.path,
        props.vpc ? "must be a cluster of 'vpc': the load balancer and the tasks must share one VPC"
          : "needs its VPC given as 'vpc' too (vpc: cluster.vpc): without it a new VPC is created, which the cluster is not in");
    }
    checkNoSecretLikeNames(this, 'environment', props.environment,
      "pass it in 'secrets' with ecs.Secret.fromSsmParameter() or ecs.Secret.fromSecretsManager(), which ECS injects at start");
    checkNoSharedNames(this, 'secrets', props.environment, props.secrets);
    checkInteger(this, 'containerPort', v.containerPort, 1, 65535);
    if (props.runAsNonRootUser !== false && !Token.isUnresolved(v.containerPort) && v.containerPort < 1024) {
      throw invalidInput(this, 'containerPort', v.containerPort,
        'must be 1024 or more while the container runs as a non-root user (only root may listen below 1024): ' +
        'move the application to a port such as 8080, or set runAsNonRootUser: false');
    }
    checkInteger(this, 'testListenerPort', v.testPort, 1, 65535);
    if (!Token.isUnresolved(v.cpu) && !Token.isUnresolved(v.memory) && !(FARGATE_MEMORY[v.cpu] ?? []).includes(v.memory)) {
      const allowed = FARGATE_MEMORY[v.cpu];
      throw invalidInput(this, 'memoryLimitMiB', v.memory, allowed
        ? `must be one of ${allowed.join(', ')} with cpu ${v.cpu} (the pairs Fargate offers)`
        : `must come with a cpu Fargate offers (${Object.keys(FARGATE_MEMORY).join(', ')}), cpu is ${v.cpu}`);
    }
    if (v.testPort === v.productionPort || (props.certificate && v.testPort === 80)) {
      throw invalidInput(this, 'testListenerPort', v.testPort, `must differ from the production listener's port${props.certificate ? 's (443 and 80)' : ' (80)'}`);
    }
    if (!Token.isUnresolved(v.healthCheckPath) && !/^\/[A-Za-z0-9._~\-/]*$/.test(v.healthCheckPath)) {
      throw invalidInput(this, 'healthCheckPath', v.healthCheckPath, "must start with '/' and use only letters, digits and . _ ~ - /");
    }
    checkInteger(this, 'imagesToKeep', props.imagesToKeep, 1, 1000);
    checkDuration(this, 'bakeTime', props.bakeTime, Duration.minutes(0), Duration.minutes(1440), 'minutes');
  }
}
