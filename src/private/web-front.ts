import { Duration, RemovalPolicy, Stack, Token, Validations } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as elbv2 from 'aws-cdk-lib/aws-elasticloadbalancingv2';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';
import { createLogGroup, logProviderFunctions } from './log-group';
import { invalidInput } from './validate';

/**
 * The VPC the patterns create: two public subnets in two AZs, no NAT gateway (nothing billed by the hour), rejected
 * traffic logged for a month, a default security group without any rule (aws-cdk-lib's provider function removes
 * them at creation; it logs to a group of its own).
 * @internal
 */
export function createPublicVpc(scope: Construct): ec2.Vpc {
  logProviderFunctions(scope);
  return new ec2.Vpc(scope, 'Vpc', {
    maxAzs: 2,
    natGateways: 0,
    restrictDefaultSecurityGroup: true,
    subnetConfiguration: [{ name: 'Public', subnetType: ec2.SubnetType.PUBLIC, cidrMask: 24 }],
    flowLogs: {
      Rejected: {
        destination: ec2.FlowLogDestination.toCloudWatchLogs(createLogGroup(scope, 'FlowLogs')),
        trafficType: ec2.FlowLogTrafficType.REJECT,
      },
    },
  });
}

/** @internal */
export interface WebLoadBalancerOptions {
  readonly vpc: ec2.IVpc;
  readonly productionPort: number;
  readonly testPort: number;
  readonly redirectHttp: boolean;
  readonly testListenerPeers?: ec2.IPeer[];
}

/**
 * An internet-facing ALB with its security group (production port open to anyone, the test port to the given peers,
 * no outbound rule until the caller adds one to its targets) and access logs kept 30 days.
 * @internal
 */
export function createWebLoadBalancer(scope: Construct, options: WebLoadBalancerOptions): {
  loadBalancer: elbv2.ApplicationLoadBalancer; securityGroup: ec2.SecurityGroup;
} {
  if (options.testListenerPeers !== undefined && options.testListenerPeers.length === 0) {
    throw invalidInput(scope, 'testListenerPeers', [],
      'must name at least one peer: nothing could reach the test listener, and every release would fail its smoke test');
  }
  const securityGroup = new ec2.SecurityGroup(scope, 'LoadBalancerSecurityGroup', {
    vpc: options.vpc,
    description: `Production and test listeners of ${scope.node.path}`,
    allowAllOutbound: false,
  });
  securityGroup.addIngressRule(ec2.Peer.anyIpv4(), ec2.Port.tcp(options.productionPort), 'Production traffic');
  if (options.redirectHttp) {
    securityGroup.addIngressRule(ec2.Peer.anyIpv4(), ec2.Port.tcp(80), 'Redirect to HTTPS');
  }
  for (const peer of options.testListenerPeers ?? [ec2.Peer.anyIpv4()]) {
    securityGroup.addIngressRule(peer, ec2.Port.tcp(options.testPort), 'Test traffic to the new version');
  }
  Validations.of(securityGroup).acknowledge({
    id: 'AwsSolutions-EC23',
    reason: 'An internet-facing web service: the production listener serves anyone; the test listener is open to ' +
      'the peers given in testListenerPeers (by default anyone, so that the smoke test reaches it).',
  });

  const loadBalancer = new elbv2.ApplicationLoadBalancer(scope, 'LoadBalancer', {
    vpc: options.vpc,
    internetFacing: true,
    securityGroup,
    dropInvalidHeaderFields: true,
  });
  if (Token.isUnresolved(Stack.of(scope).region)) {
    // ELB writes access logs as a principal that depends on the region, which an environment-agnostic stack lacks.
    Validations.of(loadBalancer).acknowledge({
      id: 'AwsSolutions-ELB2',
      reason: 'The stack has no region, which ELB access logging needs to grant the log writer; give the stack an ' +
        'env with a region and the access logs are written to a bucket kept 30 days.',
    });
  } else {
    const accessLogs = new s3.Bucket(scope, 'AccessLogs', {
      encryption: s3.BucketEncryption.S3_MANAGED,
      enforceSSL: true,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      lifecycleRules: [{ expiration: Duration.days(30) }],
      removalPolicy: RemovalPolicy.DESTROY,
      autoDeleteObjects: true,
    });
    logProviderFunctions(accessLogs);
    Validations.of(accessLogs).acknowledge({
      id: 'AwsSolutions-S1',
      reason: 'This bucket receives the load balancer access logs; logging its own access would need another bucket.',
    });
    loadBalancer.logAccessLogs(accessLogs);
  }
  return { loadBalancer, securityGroup };
}

/** @internal */
export interface ColorTargetGroupOptions {
  readonly vpc: ec2.IVpc;
  readonly targetType: elbv2.TargetType;
  readonly port: number;
  readonly healthCheckPath: string;
  readonly deregistrationDelay?: Duration;
}

/**
 * The blue and green target groups of a blue/green web service: HTTP, health-checked every 10 s (2 healthy checks
 * admit a target, 3 failed ones remove it, 200 only), 30 s deregistration delay unless given.
 * @internal
 */
export function createColorTargetGroups(scope: Construct, options: ColorTargetGroupOptions): {
  blue: elbv2.ApplicationTargetGroup; green: elbv2.ApplicationTargetGroup;
} {
  const targetGroup = (id: string) => new elbv2.ApplicationTargetGroup(scope, id, {
    vpc: options.vpc,
    targetType: options.targetType,
    port: options.port,
    protocol: elbv2.ApplicationProtocol.HTTP,
    deregistrationDelay: options.deregistrationDelay ?? Duration.seconds(30),
    healthCheck: {
      path: options.healthCheckPath,
      interval: Duration.seconds(10),
      timeout: Duration.seconds(5),
      healthyThresholdCount: 2,
      unhealthyThresholdCount: 3,
      healthyHttpCodes: '200',
    },
  });
  return { blue: targetGroup('BlueTargetGroup'), green: targetGroup('GreenTargetGroup') };
}
