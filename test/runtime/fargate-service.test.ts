import { App, Duration, Stack } from 'aws-cdk-lib';
import { Capture, Match, Template } from 'aws-cdk-lib/assertions';
import * as acm from 'aws-cdk-lib/aws-certificatemanager';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import * as elbv2 from 'aws-cdk-lib/aws-elasticloadbalancingv2';
import * as iam from 'aws-cdk-lib/aws-iam';
import { BlueGreenFargateService, BlueGreenFargateServiceProps } from '../../src/runtime/fargate-service';
import { checkApp, describeFailures } from '../compliance/harness';

const image = ecs.ContainerImage.fromRegistry('public.ecr.aws/docker/library/node:22-alpine');
const idOf = (stack: Stack, c: any) => stack.resolve(stack.getLogicalId(c.node.defaultChild ?? c));

describe('BlueGreenFargateService defaults', () => {
  const app = new App();
  const stack = new Stack(app, 'Fargate', { env: { account: '123456789012', region: 'us-east-1' } });
  const web = new BlueGreenFargateService(stack, 'Web', { image });
  const template = Template.fromStack(stack);

  test('a VPC of two public subnets and no NAT gateway, with rejected traffic logged', () => {
    template.resourceCountIs('AWS::EC2::NatGateway', 0);
    template.resourceCountIs('AWS::EC2::Subnet', 2);
    template.hasResourceProperties('AWS::EC2::Subnet', { MapPublicIpOnLaunch: true });
    template.hasResourceProperties('AWS::EC2::FlowLog', { TrafficType: 'REJECT' });
  });

  test('an ECR repository that scans on push, never overwrites a tag, keeps the newest 20 images and is emptied on delete', () => {
    template.hasResource('AWS::ECR::Repository', {
      Properties: Match.objectLike({
        ImageScanningConfiguration: { ScanOnPush: true },
        ImageTagMutability: 'IMMUTABLE',
        EmptyOnDelete: true,
        LifecyclePolicy: { LifecyclePolicyText: Match.stringLikeRegexp('"countType":"imageCountMoreThan","countNumber":20') },
      }),
      DeletionPolicy: 'Delete',
    });
  });

  test('a cluster without Container Insights by default (its custom metrics cost about 8 USD a month)', () => {
    template.hasResourceProperties('AWS::ECS::Cluster', {
      ClusterSettings: [{ Name: 'containerInsights', Value: 'disabled' }],
    });
  });

  test('an ARM64 task of 0.25 vCPU and 512 MiB, health-checked by the target groups (no image-specific container check)', () => {
    template.hasResourceProperties('AWS::ECS::TaskDefinition', {
      Cpu: '256',
      Memory: '512',
      RuntimePlatform: { CpuArchitecture: 'ARM64', OperatingSystemFamily: 'LINUX' },
      ContainerDefinitions: [Match.objectLike({
        PortMappings: [Match.objectLike({ ContainerPort: 8080 })],
        HealthCheck: Match.absent(),
        LogConfiguration: Match.objectLike({ LogDriver: 'awslogs' }),
      })],
    });
    template.hasResourceProperties('AWS::Logs::LogGroup', { RetentionInDays: 30 });
  });

  test('the container runs as a non-root user, on a read-only root filesystem with a writable /tmp, within the task\'s memory', () => {
    template.hasResourceProperties('AWS::ECS::TaskDefinition', {
      Volumes: [{ Name: 'tmp' }],
      ContainerDefinitions: [Match.objectLike({
        User: '1000:1000',
        ReadonlyRootFilesystem: true,
        Memory: 512,
        MountPoints: [{ SourceVolume: 'tmp', ContainerPath: '/tmp', ReadOnly: false }],
      })],
    });
  });

  test('two tasks spread by ECS, released blue/green with a 5 minute bake and the circuit breaker rolling back', () => {
    template.hasResourceProperties('AWS::ECS::Service', {
      DesiredCount: 2,
      LaunchType: 'FARGATE',
      DeploymentConfiguration: Match.objectLike({
        Strategy: 'BLUE_GREEN',
        BakeTimeInMinutes: 5,
        DeploymentCircuitBreaker: { Enable: true, Rollback: true },
        MinimumHealthyPercent: 100,
        MaximumPercent: 200,
      }),
      DeploymentController: { Type: 'ECS' },
      NetworkConfiguration: { AwsvpcConfiguration: Match.objectLike({ AssignPublicIp: 'ENABLED' }) },
    });
  });

  test('the service serves from the blue target group; ECS shifts the production and test rules to the green one', () => {
    const lb = new Capture();
    template.hasResourceProperties('AWS::ECS::Service', { LoadBalancers: lb });
    expect(lb.asArray()).toHaveLength(1);
    const config = lb.asArray()[0];
    expect(config.TargetGroupArn).toEqual({ Ref: idOf(stack, web.blueTargetGroup) });
    expect(config.AdvancedConfiguration.AlternateTargetGroupArn).toEqual({ Ref: idOf(stack, web.greenTargetGroup) });
    expect(config.AdvancedConfiguration.ProductionListenerRule.Ref).toMatch(/ProductionRule/);
    expect(config.AdvancedConfiguration.TestListenerRule.Ref).toMatch(/TestRule/);
    expect(config.AdvancedConfiguration.RoleArn['Fn::GetAtt'][0]).toMatch(/AlternateRole/);
  });

  test('an HTTP production listener on 80 and a test listener on 8080, both forwarding every path to blue (100) and green (0)', () => {
    template.hasResourceProperties('AWS::ElasticLoadBalancingV2::Listener', { Port: 80, Protocol: 'HTTP' });
    template.hasResourceProperties('AWS::ElasticLoadBalancingV2::Listener', { Port: 8080, Protocol: 'HTTP' });
    template.resourcePropertiesCountIs('AWS::ElasticLoadBalancingV2::ListenerRule', {
      Priority: 1,
      Conditions: [{ Field: 'path-pattern', PathPatternConfig: { Values: ['/*'] } }],
      Actions: [Match.objectLike({
        Type: 'forward',
        ForwardConfig: {
          TargetGroups: [
            { TargetGroupArn: { Ref: idOf(stack, web.blueTargetGroup) }, Weight: 100 },
            { TargetGroupArn: { Ref: idOf(stack, web.greenTargetGroup) }, Weight: 0 },
          ],
        },
      })],
    }, 2);
    expect(web.testUrl).toMatch(/^http:\/\/.*:8080$/);
  });

  test('target groups check /healthcheck fast (10 s, 2 healthy) and drain in 30 s instead of 300', () => {
    template.resourcePropertiesCountIs('AWS::ElasticLoadBalancingV2::TargetGroup', {
      TargetType: 'ip',
      Port: 8080,
      HealthCheckPath: '/healthcheck',
      HealthCheckIntervalSeconds: 10,
      HealthyThresholdCount: 2,
      Matcher: { HttpCode: '200' },
      TargetGroupAttributes: Match.arrayWith([{ Key: 'deregistration_delay.timeout_seconds', Value: '30' }]),
    }, 2);
  });

  test('only the load balancer reaches the tasks; the listeners are open to the internet', () => {
    template.hasResourceProperties('AWS::EC2::SecurityGroupIngress', {
      FromPort: 8080,
      ToPort: 8080,
      IpProtocol: 'tcp',
      SourceSecurityGroupId: { 'Fn::GetAtt': [Match.stringLikeRegexp('LoadBalancerSecurityGroup'), 'GroupId'] },
    });
    const albSg = template.findResources('AWS::EC2::SecurityGroup', { Properties: { GroupDescription: Match.stringLikeRegexp('Production and test listeners') } });
    const ingress = (Object.values(albSg)[0] as any).Properties.SecurityGroupIngress;
    expect(ingress.map((r: any) => [r.CidrIp, r.FromPort])).toEqual([['0.0.0.0/0', 80], ['0.0.0.0/0', 8080]]);
  });

  test('a statement on * other than ecr:GetAuthorizationToken on the execution role keeps its finding', () => {
    const otherApp = new App();
    const other = new Stack(otherApp, 'Extra');
    const extra = new BlueGreenFargateService(other, 'Web', { image });
    extra.taskDefinition.obtainExecutionRole().addToPrincipalPolicy(new iam.PolicyStatement({ actions: ['s3:GetObject'], resources: ['*'] }));
    expect(checkApp(otherApp).map(describeFailures).join('\n')).toMatch(/AwsSolutions-IAM5\[Resource::\*\] at Extra\/Web\/TaskDefinition\/ExecutionRole/);
  });

  test('writes access logs to a bucket kept 30 days when the stack has a region', () => {
    template.hasResourceProperties('AWS::ElasticLoadBalancingV2::LoadBalancer', {
      LoadBalancerAttributes: Match.arrayWith([{ Key: 'access_logs.s3.enabled', Value: 'true' }]),
    });
  });

  test('passes cdk-nag and the validator', () => {
    expect(checkApp(app).map(describeFailures)).toEqual(['Fargate: clean']);
  });
});

describe('BlueGreenFargateService overrides', () => {
  const app = new App();
  const stack = new Stack(app, 'FargateHttps');
  const vpc = new ec2.Vpc(stack, 'Vpc', { natGateways: 0, subnetConfiguration: [{ name: 'p', subnetType: ec2.SubnetType.PUBLIC }] });
  const certificate = elbv2.ListenerCertificate.fromCertificateManager(
    acm.Certificate.fromCertificateArn(stack, 'Cert', 'arn:aws:acm:us-east-1:123456789012:certificate/abc'));
  new BlueGreenFargateService(stack, 'Web', {
    image,
    vpc,
    certificate,
    testListenerPort: 9000,
    testListenerPeers: [ec2.Peer.ipv4('203.0.113.0/24')],
    cpu: 512,
    memoryLimitMiB: 2048,
    desiredCount: 3,
    healthCheckPath: '/health',
    bakeTime: Duration.minutes(15),
    containerHealthCheck: { command: ['CMD-SHELL', 'wget -q -O- http://127.0.0.1:8080/health || exit 1'], interval: Duration.seconds(15) },
    runAsNonRootUser: false,
    readonlyRootFilesystem: false,
    containerMemoryLimit: false,
  });
  const template = Template.fromStack(stack);

  test('each container hardening can be turned off: the image\'s user, a writable root filesystem, no container memory limit', () => {
    template.hasResourceProperties('AWS::ECS::TaskDefinition', {
      Volumes: Match.absent(),
      ContainerDefinitions: [Match.objectLike({
        User: Match.absent(),
        ReadonlyRootFilesystem: false,
        Memory: Match.absent(),
        MountPoints: Match.absent(),
      })],
    });
  });

  test('HTTPS on 443 with the certificate, and 80 redirects to it', () => {
    template.hasResourceProperties('AWS::ElasticLoadBalancingV2::Listener', {
      Port: 443, Protocol: 'HTTPS', Certificates: [{ CertificateArn: 'arn:aws:acm:us-east-1:123456789012:certificate/abc' }],
    });
    template.hasResourceProperties('AWS::ElasticLoadBalancingV2::Listener', {
      Port: 80, DefaultActions: [Match.objectLike({ Type: 'redirect', RedirectConfig: Match.objectLike({ Port: '443', Protocol: 'HTTPS' }) })],
    });
  });

  test('the test listener listens where asked, only for the given peers', () => {
    template.hasResourceProperties('AWS::ElasticLoadBalancingV2::Listener', { Port: 9000, Protocol: 'HTTP' });
    const albSg = template.findResources('AWS::EC2::SecurityGroup', { Properties: { GroupDescription: Match.stringLikeRegexp('Production and test listeners') } });
    const ingress = (Object.values(albSg)[0] as any).Properties.SecurityGroupIngress;
    expect(ingress.map((r: any) => [r.CidrIp, r.FromPort])).toEqual([['0.0.0.0/0', 443], ['0.0.0.0/0', 80], ['203.0.113.0/24', 9000]]);
  });

  test('a container health check runs when one is given', () => {
    template.hasResourceProperties('AWS::ECS::TaskDefinition', {
      ContainerDefinitions: [Match.objectLike({ HealthCheck: Match.objectLike({ Command: ['CMD-SHELL', 'wget -q -O- http://127.0.0.1:8080/health || exit 1'], Interval: 15 }) })],
    });
  });

  test('size, count, health path and bake time are passed on, in the VPC given', () => {
    template.hasResourceProperties('AWS::ECS::TaskDefinition', { Cpu: '512', Memory: '2048' });
    template.hasResourceProperties('AWS::ECS::Service', {
      DesiredCount: 3, DeploymentConfiguration: Match.objectLike({ BakeTimeInMinutes: 15 }),
    });
    template.hasResourceProperties('AWS::ElasticLoadBalancingV2::TargetGroup', { HealthCheckPath: '/health' });
    template.resourceCountIs('AWS::EC2::VPC', 1);
  });

  test('without a region, access logging is acknowledged instead of failing synthesis, and the stack stays clean', () => {
    template.hasResourceProperties('AWS::ElasticLoadBalancingV2::LoadBalancer', {
      LoadBalancerAttributes: Match.not(Match.arrayWith([{ Key: 'access_logs.s3.enabled', Value: 'true' }])),
    });
    const failures = checkApp(app).map(describeFailures);
    // The VPC of this test is the user's; everything the construct creates is clean.
    expect(failures.join('\n').split('\n').filter((l) => l.includes('/Web/'))).toEqual([]);
  });
});

describe('BlueGreenFargateService bad input', () => {
  const make = (props: Partial<BlueGreenFargateServiceProps>) => () => new BlueGreenFargateService(new Stack(), 'Web', { image, ...props });

  test.each([0, -1, 1.5, 101])('desiredCount %p is refused', (desiredCount) => {
    expect(make({ desiredCount })).toThrow(new RegExp(`BlueGreenFargateService 'Default/Web': 'desiredCount' must be a whole number from 1 to 100, got ${desiredCount}`));
  });

  test('a cpu/memory pair Fargate does not offer is refused, listing the memory allowed with that cpu', () => {
    expect(make({ cpu: 256, memoryLimitMiB: 4096 })).toThrow(/'memoryLimitMiB' must be one of 512, 1024, 2048 with cpu 256.*got 4096/);
    expect(make({ cpu: 300, memoryLimitMiB: 512 })).toThrow(/'memoryLimitMiB' must come with a cpu Fargate offers.*cpu is 300/);
  });

  test('a test listener on the production port is refused', () => {
    expect(make({ testListenerPort: 80 })).toThrow(/'testListenerPort' must differ from the production listener's port \(80\), got 80/);
  });

  test.each(['healthcheck', '/health check', '/a$b', '/a"b'])('the health check path %p is refused', (healthCheckPath) => {
    expect(make({ healthCheckPath })).toThrow(/'healthCheckPath' must start with '\/'/);
  });

  test('a bake time over 24 hours, or not whole minutes, is refused', () => {
    expect(make({ bakeTime: Duration.hours(25) })).toThrow(/'bakeTime' must be between 0 minutes and 1 day, got 1 day 1 hour/);
    expect(make({ bakeTime: Duration.seconds(90) })).toThrow(/'bakeTime' must be a whole number of minutes/);
  });
});
