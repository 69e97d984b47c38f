/**
 * The Fargate example written against aws-cdk-lib alone (no library), as a baseline for `npm run bench`: the same
 * VPC (two public subnets, no NAT), cluster, ARM64 Fargate service of 2 tasks behind an ALB with a production and a
 * test listener and two target groups, ECR repository, and a pipeline Source (CodeConnections) -> Build (CodeBuild,
 * docker build and push) -> Release (ECS deploy action), with notifications and the three alarms. It leaves out what
 * the library adds on top (the ECS native blue/green hook, smoke test and approval gate, the image parameter stack,
 * the recorder, the dashboard, the cdk-nag acknowledgements): a lower bound for the same infrastructure.
 */
import { App, Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as codebuild from 'aws-cdk-lib/aws-codebuild';
import * as codepipeline from 'aws-cdk-lib/aws-codepipeline';
import * as actions from 'aws-cdk-lib/aws-codepipeline-actions';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as ecr from 'aws-cdk-lib/aws-ecr';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import * as elbv2 from 'aws-cdk-lib/aws-elasticloadbalancingv2';
import * as sns from 'aws-cdk-lib/aws-sns';
import { Construct } from 'constructs';

export class HandwrittenFargate extends Construct {
  constructor(scope: Construct, id: string) {
    super(scope, id);
    const vpc = new ec2.Vpc(this, 'Vpc', { maxAzs: 2, natGateways: 0, subnetConfiguration: [{ name: 'public', subnetType: ec2.SubnetType.PUBLIC }] });
    const cluster = new ecs.Cluster(this, 'Cluster', { vpc });
    const repository = new ecr.Repository(this, 'Repo', { imageScanOnPush: true, removalPolicy: RemovalPolicy.DESTROY, emptyOnDelete: true });
    const task = new ecs.FargateTaskDefinition(this, 'Task', {
      cpu: 256, memoryLimitMiB: 512, runtimePlatform: { cpuArchitecture: ecs.CpuArchitecture.ARM64 },
    });
    task.addContainer('web', {
      image: ecs.ContainerImage.fromEcrRepository(repository, 'latest'),
      portMappings: [{ containerPort: 8080 }],
      logging: ecs.LogDrivers.awsLogs({ streamPrefix: 'web' }),
    });
    const service = new ecs.FargateService(this, 'Service', {
      cluster, taskDefinition: task, desiredCount: 2, assignPublicIp: true, circuitBreaker: { rollback: true },
    });
    const lb = new elbv2.ApplicationLoadBalancer(this, 'Lb', { vpc, internetFacing: true });
    const healthCheck = { path: '/healthcheck', interval: Duration.seconds(10), healthyThresholdCount: 2 };
    const blue = new elbv2.ApplicationTargetGroup(this, 'Blue', { vpc, port: 8080, protocol: elbv2.ApplicationProtocol.HTTP, targetType: elbv2.TargetType.IP, healthCheck, deregistrationDelay: Duration.seconds(30) });
    const green = new elbv2.ApplicationTargetGroup(this, 'Green', { vpc, port: 8080, protocol: elbv2.ApplicationProtocol.HTTP, targetType: elbv2.TargetType.IP, healthCheck, deregistrationDelay: Duration.seconds(30) });
    lb.addListener('Prod', { port: 80, defaultTargetGroups: [blue] });
    lb.addListener('Test', { port: 8080, protocol: elbv2.ApplicationProtocol.HTTP, defaultTargetGroups: [green] });
    service.attachToApplicationTargetGroup(blue);

    const source = new codepipeline.Artifact();
    const built = new codepipeline.Artifact();
    const build = new codebuild.PipelineProject(this, 'Build', {
      environment: { buildImage: codebuild.LinuxArmBuildImage.AMAZON_LINUX_2023_STANDARD_3_0, privileged: true },
      environmentVariables: { REPO: { value: repository.repositoryUri } },
      buildSpec: codebuild.BuildSpec.fromObject({
        version: '0.2',
        phases: { build: { commands: ['docker build -t $REPO:latest examples/service', 'docker push $REPO:latest', 'printf \'[{"name":"web","imageUri":"%s"}]\' $REPO:latest > imagedefinitions.json'] } },
        artifacts: { files: ['imagedefinitions.json'] },
      }),
    });
    repository.grantPullPush(build);
    const pipeline = new codepipeline.Pipeline(this, 'Pipeline', { pipelineType: codepipeline.PipelineType.V2 });
    pipeline.addStage({ stageName: 'Source', actions: [new actions.CodeStarConnectionsSourceAction({ actionName: 'Source', owner: 'my-org', repo: 'my-service', branch: 'main', connectionArn: 'arn:aws:codeconnections:us-east-1:123456789012:connection/11111111-2222-3333-4444-555555555555', output: source })] });
    pipeline.addStage({ stageName: 'Build', actions: [new actions.CodeBuildAction({ actionName: 'Build', project: build, input: source, outputs: [built] })] });
    pipeline.addStage({ stageName: 'Release', actions: [new actions.EcsDeployAction({ actionName: 'Deploy', service, input: built })] });
    const topic = new sns.Topic(this, 'Notifications');
    pipeline.notifyOnExecutionStateChange('Notify', topic);
    new cloudwatch.Alarm(this, 'Http5xx', { metric: lb.metrics.httpCodeTarget(elbv2.HttpCodeTarget.TARGET_5XX_COUNT), threshold: 1, evaluationPeriods: 1 });
    new cloudwatch.Alarm(this, 'Unhealthy', { metric: blue.metrics.unhealthyHostCount(), threshold: 1, evaluationPeriods: 2 });
    new cloudwatch.Alarm(this, 'Latency', { metric: lb.metrics.targetResponseTime({ statistic: 'p99' }), threshold: 2, evaluationPeriods: 3 });
  }
}

if (require.main === module) {
  const app = new App();
  new HandwrittenFargate(new Stack(app, 'HandwrittenFargate'), 'Web');
  app.synth();
}
