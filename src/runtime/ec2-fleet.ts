import { ArnFormat, CfnCondition, Duration, Fn, Stack, Token } from 'aws-cdk-lib';
import * as autoscaling from 'aws-cdk-lib/aws-autoscaling';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as elbv2 from 'aws-cdk-lib/aws-elasticloadbalancingv2';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as ssm from 'aws-cdk-lib/aws-ssm';
import { Construct } from 'constructs';
import { InstanceSecret } from './instance-secret';
import { acknowledge, acknowledgeStarResourceOnlyFor, nagPseudo, nagRef } from '../private/acknowledgements';
import { createLogGroup } from '../private/log-group';
import { pruneRedundantDependsOn } from '../private/redundant-depends-on';
import { checkDuration, checkInteger, checkNotEmpty, checkSameRegion, invalidInput, looksLikeSecret } from '../private/validate';
import { createColorTargetGroups, createPublicVpc, createWebLoadBalancer } from '../private/web-front';

/** The two colors of a blue/green fleet. @internal */
export type Color = 'blue' | 'green';
/** @internal */
export const COLORS: readonly Color[] = ['blue', 'green'];

/** What production answers before the first release. @internal */
export const NOT_RELEASED_BODY = 'Not released yet: the first release of this service has not reached production.';

/** The name of the launch lifecycle hook every instance completes once it is ready. @internal */
export const READY_HOOK_NAME = 'app-ready';

/** How long a new instance may take to install its release and pass its local check. @internal */
export const READY_HOOK_TIMEOUT = Duration.minutes(10);

/** Where the release engine keeps the bundles, in the release bucket. @internal */
export const RELEASES_PREFIX = 'releases/';

/**
 * Configuration of `BlueGreenEc2Fleet`. Defaults are the pattern's (see `Ec2BlueGreenPipelineProps`).
 * @internal
 */
export interface BlueGreenEc2FleetProps {
  readonly vpc?: ec2.IVpc;
  readonly instanceType?: ec2.InstanceType;
  readonly architecture?: ec2.InstanceArchitecture;
  readonly machineImage?: ec2.IMachineImage;
  readonly capacity?: number;
  readonly port?: number;
  readonly healthCheckPath?: string;
  readonly deregistrationDelay?: Duration;
  readonly certificate?: elbv2.IListenerCertificate;
  readonly testListenerPort?: number;
  readonly testListenerPeers?: ec2.IPeer[];
  readonly startCommand?: string;
  readonly setupCommands?: string[];
  readonly environment?: { [name: string]: string };
  readonly secrets?: { [name: string]: InstanceSecret };
  readonly logRetention?: logs.RetentionDays;
  /** The SSM parameter holding the live color (`none`, `blue` or `green`); CloudFormation reads it on every update. */
  readonly liveColorParameterName: string;
  /** The SSM parameters holding the release each color's instances install at boot. */
  readonly releaseParameterNames: { readonly blue: string; readonly green: string };
}

/**
 * A web application on two EC2 Auto Scaling groups (blue and green) behind one internet-facing ALB with a production
 * listener and a test listener (ADR 0008).
 *
 * CloudFormation takes the live color from an SSM parameter the release engine writes: the production listener
 * forwards to the live color's target group (a fixed 503 before the first release), the test listener to the other
 * one; the live color's group has `capacity` instances and the idle color none. A `cdk deploy` with unchanged
 * infrastructure therefore declares exactly what production runs, and never moves traffic or capacity. An instance
 * installs the release its color's parameter names (a bundle under `releases/<id>/` of the release bucket), runs it
 * under systemd, and enters service only after its own readiness check passed (a launch lifecycle hook it completes).
 * @internal
 */
export class BlueGreenEc2Fleet extends Construct {
  public readonly vpc: ec2.IVpc;
  public readonly loadBalancer: elbv2.ApplicationLoadBalancer;
  public readonly productionListener: elbv2.ApplicationListener;
  public readonly testListener: elbv2.ApplicationListener;
  public readonly blueTargetGroup: elbv2.ApplicationTargetGroup;
  public readonly greenTargetGroup: elbv2.ApplicationTargetGroup;
  public readonly blueGroup: autoscaling.AutoScalingGroup;
  public readonly greenGroup: autoscaling.AutoScalingGroup;
  public readonly instanceRole: iam.Role;
  public readonly instanceSecurityGroup: ec2.SecurityGroup;
  public readonly logGroup: logs.LogGroup;
  public readonly productionUrl: string;
  public readonly testUrl: string;
  public readonly capacity: number;
  public readonly port: number;
  public readonly healthCheckPath: string;
  /** The launch templates of both colors. */
  public readonly launchTemplates: ec2.LaunchTemplate[] = [];
  private readonly userData = {} as Record<Color, ec2.UserData>;
  private readonly scripts = {} as Record<Color, InstanceScriptOptions>;
  private releaseBucket?: s3.IBucket;
  private readonly lifecyclePolicy: iam.Policy;

  constructor(scope: Construct, id: string, props: BlueGreenEc2FleetProps) {
    super(scope, id);
    const architecture = props.architecture ?? ec2.InstanceArchitecture.ARM_64;
    const instanceType = props.instanceType ?? (architecture === ec2.InstanceArchitecture.ARM_64
      ? ec2.InstanceType.of(ec2.InstanceClass.T4G, ec2.InstanceSize.MICRO)
      : ec2.InstanceType.of(ec2.InstanceClass.T3, ec2.InstanceSize.MICRO));
    this.capacity = props.capacity ?? 2;
    this.port = props.port ?? 8080;
    this.healthCheckPath = props.healthCheckPath ?? '/healthcheck';
    const productionPort = props.certificate ? 443 : 80;
    const testPort = props.testListenerPort ?? 8080;
    const startCommand = props.startCommand ?? 'npm start';
    this.validate(props, { instanceType, architecture, productionPort, testPort, startCommand });

    this.vpc = props.vpc ?? createPublicVpc(this);
    const front = createWebLoadBalancer(this, {
      vpc: this.vpc,
      productionPort,
      testPort,
      redirectHttp: props.certificate !== undefined,
      testListenerPeers: props.testListenerPeers,
    });
    this.loadBalancer = front.loadBalancer;

    const targetGroups = createColorTargetGroups(this, {
      vpc: this.vpc,
      targetType: elbv2.TargetType.INSTANCE,
      port: this.port,
      healthCheckPath: this.healthCheckPath,
      deregistrationDelay: props.deregistrationDelay,
    });
    this.blueTargetGroup = targetGroups.blue;
    this.greenTargetGroup = targetGroups.green;

    // The live color, as the release engine recorded it; CloudFormation reads it on every stack update.
    const liveColor = ssm.StringParameter.valueForStringParameter(this, props.liveColorParameterName);
    const blueLive = new CfnCondition(this, 'BlueLive', { expression: Fn.conditionEquals(liveColor, 'blue') });
    const greenLive = new CfnCondition(this, 'GreenLive', { expression: Fn.conditionEquals(liveColor, 'green') });
    const forward = (group: elbv2.ApplicationTargetGroup) => [{
      Type: 'forward',
      ForwardConfig: { TargetGroups: [{ TargetGroupArn: group.targetGroupArn, Weight: 1 }] },
    }];
    const notReleased = [{
      Type: 'fixed-response',
      FixedResponseConfig: { StatusCode: '503', ContentType: 'text/plain', MessageBody: NOT_RELEASED_BODY },
    }];

    // The L2 listeners record which target group each serves (their metrics need it); the declared default actions
    // follow the live color.
    this.productionListener = this.loadBalancer.addListener('Production', {
      port: productionPort,
      protocol: props.certificate ? elbv2.ApplicationProtocol.HTTPS : elbv2.ApplicationProtocol.HTTP,
      certificates: props.certificate ? [props.certificate] : undefined,
      sslPolicy: props.certificate ? elbv2.SslPolicy.RECOMMENDED_TLS : undefined,
      defaultAction: elbv2.ListenerAction.forward([this.blueTargetGroup]),
      open: false,
    });
    (this.productionListener.node.defaultChild as elbv2.CfnListener).addPropertyOverride('DefaultActions',
      Fn.conditionIf(blueLive.logicalId, forward(this.blueTargetGroup),
        Fn.conditionIf(greenLive.logicalId, forward(this.greenTargetGroup), notReleased)));
    if (props.certificate) {
      this.loadBalancer.addRedirect({ sourcePort: 80, targetPort: 443 });
    }
    this.testListener = this.loadBalancer.addListener('Test', {
      port: testPort,
      protocol: elbv2.ApplicationProtocol.HTTP,
      defaultAction: elbv2.ListenerAction.forward([this.greenTargetGroup]),
      open: false,
    });
    (this.testListener.node.defaultChild as elbv2.CfnListener).addPropertyOverride('DefaultActions',
      Fn.conditionIf(blueLive.logicalId, forward(this.greenTargetGroup), forward(this.blueTargetGroup)));

    this.instanceSecurityGroup = new ec2.SecurityGroup(this, 'InstanceSecurityGroup', {
      vpc: this.vpc,
      description: `Instances of ${this.node.path}: only the load balancer reaches them`,
      // Packages, the release bundle, SSM, Auto Scaling and CloudWatch Logs over the public IP (no NAT gateway).
      allowAllOutbound: true,
    });
    this.instanceSecurityGroup.addIngressRule(front.securityGroup, ec2.Port.tcp(this.port), 'From the load balancer');
    front.securityGroup.addEgressRule(this.instanceSecurityGroup, ec2.Port.tcp(this.port), 'To the instances');

    this.logGroup = createLogGroup(this, 'Logs', props.logRetention);
    this.instanceRole = new iam.Role(this, 'InstanceRole', {
      assumedBy: new iam.ServicePrincipal('ec2.amazonaws.com'),
      description: `Instances of ${this.node.path}: read their release and secrets, write their logs`,
    });
    // Session Manager instead of SSH and a bastion: what the SSM agent needs to register and open sessions, and no
    // more (AmazonSSMManagedInstanceCore would also let the instances read every parameter of the account).
    this.instanceRole.addToPolicy(new iam.PolicyStatement({ actions: SESSION_MANAGER_ACTIONS, resources: ['*'] }));
    const stack = Stack.of(this);
    this.instanceRole.addToPolicy(new iam.PolicyStatement({
      actions: ['ssm:GetParameter'],
      resources: COLORS.map((color) => stack.formatArn({
        service: 'ssm', resource: 'parameter', resourceName: props.releaseParameterNames[color].replace(/^\//, ''),
      })),
    }));
    this.instanceRole.addToPolicy(new iam.PolicyStatement({
      actions: ['logs:CreateLogStream', 'logs:PutLogEvents', 'logs:DescribeLogStreams'],
      resources: [this.logGroup.logGroupArn],
    }));
    // An instance finds its group (to complete its lifecycle hook) from its own id: naming the group in the user data
    // would make the group depend on itself.
    this.instanceRole.addToPolicy(new iam.PolicyStatement({ actions: ['autoscaling:DescribeAutoScalingInstances'], resources: ['*'] }));
    const secretCommands = Object.entries(props.secrets ?? {}).map(([name, secret]) => ({ name, command: secret._bind(this.instanceRole) }));

    const groups: Record<Color, autoscaling.AutoScalingGroup> = {} as Record<Color, autoscaling.AutoScalingGroup>;
    for (const color of COLORS) {
      const Color = color === 'blue' ? 'Blue' : 'Green';
      const isLive = color === 'blue' ? blueLive : greenLive;
      const userData = ec2.UserData.forLinux();
      this.userData[color] = userData;
      this.scripts[color] = {
        color,
        region: stack.region,
        bucket: '',
        releaseParameter: props.releaseParameterNames[color],
        logGroup: this.logGroup.logGroupName,
        port: this.port,
        healthCheckPath: this.healthCheckPath,
        startCommand,
        setupCommands: props.setupCommands ?? DEFAULT_SETUP_COMMANDS,
        environment: props.environment ?? {},
        secrets: secretCommands,
      };
      const launchTemplate = new ec2.LaunchTemplate(this, `${Color}LaunchTemplate`, {
        instanceType,
        machineImage: props.machineImage ?? ec2.MachineImage.latestAmazonLinux2023({
          cpuType: architecture === ec2.InstanceArchitecture.ARM_64 ? ec2.AmazonLinuxCpuType.ARM_64 : ec2.AmazonLinuxCpuType.X86_64,
        }),
        role: this.instanceRole,
        securityGroup: this.instanceSecurityGroup,
        requireImdsv2: true,
        httpPutResponseHopLimit: 1,
        associatePublicIpAddress: true,
        detailedMonitoring: false,
        userData,
        blockDevices: [{
          deviceName: '/dev/xvda',
          volume: ec2.BlockDeviceVolume.ebs(8, { encrypted: true, volumeType: ec2.EbsDeviceVolumeType.GP3, deleteOnTermination: true }),
        }],
      });
      this.launchTemplates.push(launchTemplate);
      const group = new autoscaling.AutoScalingGroup(this, `${Color}Group`, {
        vpc: this.vpc,
        vpcSubnets: { subnetType: ec2.SubnetType.PUBLIC },
        launchTemplate,
        minCapacity: 0,
        maxCapacity: 2 * this.capacity,
        healthChecks: autoscaling.HealthChecks.withAdditionalChecks({
          additionalTypes: [autoscaling.AdditionalHealthCheckType.ELB],
          gracePeriod: READY_HOOK_TIMEOUT,
        }),
        // An infrastructure change (instance type, AMI, user data) reaches the live color launch-before-terminate:
        // new instances of the same release serve before the old ones go.
        updatePolicy: autoscaling.UpdatePolicy.instanceRefresh({
          strategy: autoscaling.InstanceRefreshStrategy.ROLLING,
          minHealthyPercentage: 100,
          maxHealthyPercentage: 200,
          skipMatching: true,
        }),
        groupMetrics: [autoscaling.GroupMetrics.all()],
      });
      group.attachToApplicationTargetGroup(color === 'blue' ? this.blueTargetGroup : this.greenTargetGroup);
      const cfnGroup = group.node.defaultChild as autoscaling.CfnAutoScalingGroup;
      // Capacity follows the live color, so that a `cdk deploy` declares what runs (the release moves it).
      cfnGroup.minSize = Fn.conditionIf(isLive.logicalId, String(this.capacity), '0').toString();
      cfnGroup.desiredCapacity = Fn.conditionIf(isLive.logicalId, String(this.capacity), '0').toString();
      // The hook exists with the group, before any instance launches.
      cfnGroup.lifecycleHookSpecificationList = [{
        lifecycleHookName: READY_HOOK_NAME,
        lifecycleTransition: 'autoscaling:EC2_INSTANCE_LAUNCHING',
        defaultResult: 'ABANDON',
        heartbeatTimeout: READY_HOOK_TIMEOUT.toSeconds(),
      }];
      groups[color] = group;
    }
    this.blueGroup = groups.blue;
    this.greenGroup = groups.green;
    // A policy of its own: the launch templates depend on the role's default policy, and this one names the groups.
    this.lifecyclePolicy = new iam.Policy(this, 'InstanceLifecyclePolicy', { roles: [this.instanceRole] });
    this.lifecyclePolicy.addStatements(new iam.PolicyStatement({
      actions: ['autoscaling:CompleteLifecycleAction'],
      resources: COLORS.map((color) => stack.formatArn({
        service: 'autoscaling',
        resource: 'autoScalingGroup',
        resourceName: `*:autoScalingGroupName/${groups[color].autoScalingGroupName}`,
        arnFormat: ArnFormat.COLON_RESOURCE_NAME,
      })),
    }));
    this.node.addValidation({
      validate: () => this.releaseBucket ? [] : [`${this.node.path}: no release store was bound (bindReleaseStore)`],
    });

    const scheme = props.certificate ? 'https' : 'http';
    this.productionUrl = `${scheme}://${this.loadBalancer.loadBalancerDnsName}`;
    this.testUrl = `http://${this.loadBalancer.loadBalancerDnsName}:${testPort}`;
    pruneRedundantDependsOn(this);
  }

  /**
   * Where the instances find their release bundles (`releases/<id>/bundle.tgz`): writes the boot scripts and lets the
   * instance role read them. Called once, by the release that uploads them.
   */
  public bindReleaseStore(bucket: s3.IBucket, key: kms.IKey): void {
    if (this.releaseBucket) {
      throw new Error(`${this.node.path}: the release store is already bound`);
    }
    this.releaseBucket = bucket;
    this.instanceRole.addToPolicy(new iam.PolicyStatement({ actions: ['s3:GetObject'], resources: [bucket.arnForObjects(`${RELEASES_PREFIX}*`)] }));
    this.instanceRole.addToPolicy(new iam.PolicyStatement({ actions: ['kms:Decrypt'], resources: [key.keyArn] }));
    for (const color of COLORS) {
      this.userData[color].addCommands(...instanceScript({ ...this.scripts[color], bucket: bucket.bucketName }));
    }
    this.acknowledgeInstanceRole(bucket);
  }

  /** The color's Auto Scaling group. */
  public group(color: Color): autoscaling.AutoScalingGroup {
    return color === 'blue' ? this.blueGroup : this.greenGroup;
  }

  /** The color's target group. */
  public targetGroup(color: Color): elbv2.ApplicationTargetGroup {
    return color === 'blue' ? this.blueTargetGroup : this.greenTargetGroup;
  }

  /**
   * Sends both groups' launch and termination events (and their errors) to a topic. Auto Scaling publishes with its
   * service-linked role, whose own permissions include no customer managed key: the topic's key lets that role
   * (and only it, by its ARN) encrypt for the topic.
   */
  public notifyScalingEvents(topic: sns.ITopic, topicKey?: kms.IKey): void {
    if (topicKey) {
      const stack = Stack.of(this);
      topicKey.addToResourcePolicy(new iam.PolicyStatement({
        sid: 'AutoScalingNotificationsToEncryptedTopics',
        principals: [new iam.AnyPrincipal()],
        actions: ['kms:GenerateDataKey*', 'kms:Decrypt'],
        resources: ['*'],
        conditions: {
          // By ARN in a condition: a principal that does not exist yet (no group in the account before this one)
          // would make the key policy invalid.
          ArnEquals: {
            'aws:PrincipalArn': `arn:${stack.partition}:iam::${stack.account}:role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling`,
          },
        },
      }));
    }
    for (const group of [this.blueGroup, this.greenGroup]) {
      (group.node.defaultChild as autoscaling.CfnAutoScalingGroup).notificationConfigurations = [{
        topicArn: topic.topicArn,
        notificationTypes: [
          'autoscaling:EC2_INSTANCE_LAUNCH',
          'autoscaling:EC2_INSTANCE_LAUNCH_ERROR',
          'autoscaling:EC2_INSTANCE_TERMINATE',
          'autoscaling:EC2_INSTANCE_TERMINATE_ERROR',
        ],
      }];
    }
  }

  private acknowledgeInstanceRole(releaseBucket: s3.IBucket): void {
    const stack = Stack.of(this);
    const region = nagPseudo(stack.region, 'Region');
    const account = nagPseudo(stack.account, 'AccountId');
    const bucket = nagRef(releaseBucket, 'Arn');
    const findings: string[] = [];
    if (bucket) findings.push(`AwsSolutions-IAM5[Resource::${bucket}/${RELEASES_PREFIX}*]`);
    const logGroup = nagRef(this.logGroup, 'Arn');
    if (logGroup) findings.push(`AwsSolutions-IAM5[Resource::${logGroup}]`);
    acknowledge(this.instanceRole, findings,
      'The instances read the release bundles under releases/ of the pipeline\'s artifact bucket (whose ids the ' +
      'pipeline creates per release) and write the streams of their own log group (one per instance id).');
    const groupFindings = [this.blueGroup, this.greenGroup].map((group) => nagRef(group)).filter((ref): ref is string => ref !== undefined)
      .map((ref) => `AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:autoscaling:${region}:${account}:autoScalingGroup:*:autoScalingGroupName/${ref}]`);
    acknowledge(this.lifecyclePolicy, groupFindings,
      'An instance completes the launch lifecycle hook of its own group: the two groups of this fleet (Auto Scaling ' +
      'puts a generated id in a group\'s ARN).');
    acknowledgeStarResourceOnlyFor(this.instanceRole, ['autoscaling:DescribeAutoScalingInstances', ...SESSION_MANAGER_ACTIONS],
      'autoscaling:DescribeAutoScalingInstances (read only; an instance finds its own group) and the SSM agent\'s ' +
      'registration and Session Manager channel actions have no resource-level permissions.');
  }

  private validate(props: BlueGreenEc2FleetProps, v: {
    instanceType: ec2.InstanceType; architecture: ec2.InstanceArchitecture; productionPort: number; testPort: number; startCommand: string;
  }): void {
    checkInteger(this, 'capacity', props.capacity, 1, 20);
    checkSameRegion(this, 'certificate', props.certificate?.certificateArn, Stack.of(this).region);
    checkInteger(this, 'port', props.port, 1, 65535);
    checkInteger(this, 'testListenerPort', props.testListenerPort, 1, 65535);
    if (v.testPort === v.productionPort || (props.certificate && v.testPort === 80)) {
      throw invalidInput(this, 'testListenerPort', v.testPort, `must differ from the production listener's port${props.certificate ? 's (443 and 80)' : ' (80)'}`);
    }
    const path = props.healthCheckPath;
    if (path !== undefined && !Token.isUnresolved(path) && !/^\/[A-Za-z0-9._~\-/]*$/.test(path)) {
      throw invalidInput(this, 'healthCheckPath', path, "must start with '/' and use only letters, digits and . _ ~ - /");
    }
    checkDuration(this, 'deregistrationDelay', props.deregistrationDelay, Duration.seconds(0), Duration.seconds(30), 'seconds');
    if (props.instanceType && !Token.isUnresolved(props.instanceType.toString())) {
      const name = props.instanceType.toString();
      const [family, size] = name.split('.');
      const families = new Set<string>(Object.values(ec2.InstanceClass));
      const sizes = new Set<string>(Object.values(ec2.InstanceSize));
      if (!families.has(family) || size === undefined || !sizes.has(size)) {
        throw invalidInput(this, 'instanceType', name, 'must be an EC2 instance type such as t4g.micro (a known family and size)');
      }
      const typeArchitecture = props.instanceType.architecture;
      if (typeArchitecture !== v.architecture) {
        throw invalidInput(this, 'instanceType', name,
          `must run the ${v.architecture} architecture of 'architecture' (${name} is ${typeArchitecture}; Graviton types ` +
          'such as t4g run arm64, types such as t3 run x86_64): set architecture to match, or choose another type');
      }
    }
    checkNotEmpty(this, 'startCommand', v.startCommand);
    if (!Token.isUnresolved(v.startCommand) && /[\r\n]/.test(v.startCommand)) {
      throw invalidInput(this, 'startCommand', v.startCommand, 'must be one line (a command systemd runs in the release directory)');
    }
    for (const command of props.setupCommands ?? []) {
      checkNotEmpty(this, 'setupCommands', command);
    }
    for (const [name, value] of Object.entries(props.environment ?? {})) {
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) {
        throw invalidInput(this, 'environment', name, 'must have names of letters, digits and _ that do not start with a digit');
      }
      if (!Token.isUnresolved(value) && /[\r\n]/.test(value)) {
        throw invalidInput(this, `environment.${name}`, value, 'must be one line');
      }
      if (name === 'PORT' || name === 'APP_COLOR' || name === 'APP_RELEASE') {
        throw invalidInput(this, 'environment', name, 'must not set PORT, APP_COLOR or APP_RELEASE, which the fleet sets');
      }
      if (looksLikeSecret(name)) {
        throw invalidInput(this, 'environment', name,
          "must not carry secrets in plain text (the user data holds it): pass it in 'secrets' with InstanceSecret.fromSsmParameter() or InstanceSecret.fromSecretsManager()");
      }
    }
    for (const name of Object.keys(props.secrets ?? {})) {
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) {
        throw invalidInput(this, 'secrets', name, 'must have names of letters, digits and _ that do not start with a digit');
      }
      if (name === 'PORT' || (props.environment && name in props.environment)) {
        throw invalidInput(this, 'secrets', name, 'must not repeat a name of environment, or PORT');
      }
    }
  }
}

/** What the SSM agent needs for Session Manager (registration, the session channels). @internal */
export const SESSION_MANAGER_ACTIONS = [
  'ssm:UpdateInstanceInformation',
  'ssmmessages:CreateControlChannel',
  'ssmmessages:CreateDataChannel',
  'ssmmessages:OpenControlChannel',
  'ssmmessages:OpenDataChannel',
  'ec2messages:AcknowledgeMessage',
  'ec2messages:DeleteMessage',
  'ec2messages:FailMessage',
  'ec2messages:GetEndpoint',
  'ec2messages:GetMessages',
  'ec2messages:SendReply',
];

/**
 * Node.js 22 from Amazon Linux 2023's own packages (the major version the build runs, so that native modules in the
 * bundle load), and the CloudWatch agent. @internal
 */
export const DEFAULT_SETUP_COMMANDS = ['dnf install -y nodejs22 nodejs22-npm amazon-cloudwatch-agent'];

/** @internal */
export interface InstanceScriptOptions {
  readonly color: Color;
  readonly region: string;
  readonly bucket: string;
  readonly releaseParameter: string;
  readonly logGroup: string;
  readonly port: number;
  readonly healthCheckPath: string;
  readonly startCommand: string;
  readonly setupCommands: string[];
  readonly environment: { [name: string]: string };
  readonly secrets: { name: string; command: string }[];
}

/**
 * The boot script of an instance: install the color's release, run it under systemd, ship its log, and complete the
 * launch lifecycle hook with CONTINUE once the app answers `{"status":"ok"}` on the health path locally, or ABANDON
 * (Auto Scaling then replaces the instance) when anything fails. Secrets are fetched here with the instance's role and
 * kept in a root-only file; their values are never part of the script.
 * @internal
 */
export function instanceScript(o: InstanceScriptOptions): string[] {
  const envLines = Object.entries(o.environment).map(([name, value]) => `${name}=${systemdQuote(value)}`);
  return [
    // -E: the ERR trap also fires inside functions.
    'set -Eeuo pipefail',
    'exec > >(tee -a /var/log/app-install.log) 2>&1',
    'TOKEN=$(curl -sS -X PUT http://169.254.169.254/latest/api/token -H "X-aws-ec2-metadata-token-ttl-seconds: 300")',
    'INSTANCE_ID=$(curl -sS -H "X-aws-ec2-metadata-token: $TOKEN" http://169.254.169.254/latest/meta-data/instance-id)',
    `export AWS_DEFAULT_REGION=${shellQuote(o.region)}`,
    // The group this instance belongs to (Auto Scaling may report it a few seconds after launch).
    'GROUP=""',
    'for i in $(seq 1 30); do GROUP=$(aws autoscaling describe-auto-scaling-instances --instance-ids "$INSTANCE_ID" --query "AutoScalingInstances[0].AutoScalingGroupName" --output text || true); if [ -n "$GROUP" ] && [ "$GROUP" != "None" ]; then break; fi; GROUP=""; sleep 2; done',
    'if [ -z "$GROUP" ]; then echo "this instance does not know its Auto Scaling group; its launch lifecycle hook will time out (ABANDON)"; exit 1; fi',
    `finish_hook() { aws autoscaling complete-lifecycle-action --lifecycle-hook-name ${READY_HOOK_NAME} --auto-scaling-group-name "$GROUP" --instance-id "$INSTANCE_ID" --lifecycle-action-result "$1" || true; }`,
    'trap \'echo "boot failed at line $LINENO"; finish_hook ABANDON\' ERR',
    ...o.setupCommands,
    // Logs to CloudWatch Logs, one stream per instance; nothing is kept on the disk beyond the agent's buffer.
    'mkdir -p /var/log/app /etc/app /opt/app/releases',
    'cat > /opt/aws/amazon-cloudwatch-agent/etc/app.json <<\'CDK_DP_EOF\'',
    JSON.stringify({
      logs: {
        logs_collected: {
          files: {
            collect_list: [
              { file_path: '/var/log/app/app.log', log_group_name: '__LOG_GROUP__', log_stream_name: `{instance_id}/${o.color}/app` },
              { file_path: '/var/log/app-install.log', log_group_name: '__LOG_GROUP__', log_stream_name: `{instance_id}/${o.color}/boot` },
            ],
          },
        },
      },
    }),
    'CDK_DP_EOF',
    `sed -i "s|__LOG_GROUP__|${o.logGroup}|g" /opt/aws/amazon-cloudwatch-agent/etc/app.json`,
    '/opt/aws/amazon-cloudwatch-agent/bin/amazon-cloudwatch-agent-ctl -a fetch-config -m ec2 -s -c file:/opt/aws/amazon-cloudwatch-agent/etc/app.json',
    // The release of this color, as the release engine wrote it.
    `RELEASE=$(aws ssm get-parameter --name ${shellQuote(o.releaseParameter)} --query Parameter.Value --output text)`,
    'if [ "$RELEASE" = "none" ] || ! printf "%s" "$RELEASE" | grep -Eq "^[A-Za-z0-9._-]{1,128}$"; then echo "no release to install: $RELEASE"; finish_hook ABANDON; exit 1; fi',
    `aws s3 cp "s3://${o.bucket}/${RELEASES_PREFIX}$RELEASE/bundle.tgz" /tmp/bundle.tgz`,
    'id app >/dev/null 2>&1 || useradd --system --home-dir /opt/app --shell /sbin/nologin app',
    // One command a line: set -e and the ERR trap ignore a failure inside an && chain.
    'mkdir -p "/opt/app/releases/$RELEASE"',
    'tar -xzf /tmp/bundle.tgz -C "/opt/app/releases/$RELEASE"',
    'rm -f /tmp/bundle.tgz',
    'ln -sfn "/opt/app/releases/$RELEASE" /opt/app/current',
    'chown -R app:app /opt/app /var/log/app',
    // Plain settings, then the secrets (root only, read by systemd before it drops to the app user).
    'cat > /etc/app/app.env <<\'CDK_DP_EOF\'',
    `PORT=${o.port}`,
    `APP_COLOR=${o.color}`,
    ...envLines,
    'CDK_DP_EOF',
    'echo "APP_RELEASE=$RELEASE" >> /etc/app/app.env',
    'install -m 600 -o root -g root /dev/null /etc/app/secrets.env',
    // A failed read stops the boot (set -e on the assignment); the value is never echoed.
    ...o.secrets.flatMap(({ name, command }) => [
      `SECRET_VALUE=$(${command})`,
      `printf '%s="%s"\\n' ${name} "$(printf '%s' "$SECRET_VALUE" | sed -e 's/\\\\/\\\\\\\\/g' -e 's/"/\\\\"/g')" >> /etc/app/secrets.env`,
    ]),
    'unset SECRET_VALUE',
    'cat > /opt/app/start.sh <<\'CDK_DP_EOF\'',
    '#!/bin/bash',
    'cd /opt/app/current',
    `exec ${o.startCommand}`,
    'CDK_DP_EOF',
    'chmod 755 /opt/app/start.sh',
    'cat > /etc/systemd/system/app.service <<\'CDK_DP_EOF\'',
    '[Unit]',
    'Description=The application (cdk-delivery-pipelines)',
    'After=network-online.target',
    '[Service]',
    'User=app',
    'EnvironmentFile=/etc/app/app.env',
    'EnvironmentFile=/etc/app/secrets.env',
    'ExecStart=/opt/app/start.sh',
    'Restart=always',
    'RestartSec=2',
    'StandardOutput=append:/var/log/app/app.log',
    'StandardError=append:/var/log/app/app.log',
    'NoNewPrivileges=true',
    'ProtectSystem=full',
    'PrivateTmp=true',
    '[Install]',
    'WantedBy=multi-user.target',
    'CDK_DP_EOF',
    'systemctl daemon-reload',
    'systemctl enable --now app.service',
    // The local readiness check: the workshop's cfn-signal, done with the lifecycle hook.
    `for i in $(seq 1 60); do if curl -fsS --max-time 3 "http://127.0.0.1:${o.port}${o.healthCheckPath}" | grep -Eq '"status" *: *"ok"'; then finish_hook CONTINUE; exit 0; fi; sleep 5; done`,
    `echo "the app did not answer {\\"status\\":\\"ok\\"} on ${o.healthCheckPath} within 5 minutes"`,
    'finish_hook ABANDON',
    'exit 1',
  ];
}

function shellQuote(value: string): string {
  return Token.isUnresolved(value) ? `"${value}"` : `'${value.replace(/'/g, "'\\''")}'`;
}

function systemdQuote(value: string): string {
  return `"${value.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}
