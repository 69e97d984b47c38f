/**
 * The EC2 example written against aws-cdk-lib alone (no library), as a baseline for `npm run bench`: the same VPC
 * (two public subnets, no NAT), ALB with a production and a test listener, blue and green Auto Scaling groups of
 * Graviton t4g.micro on Amazon Linux 2023 (IMDSv2, encrypted gp3) with their target groups, a bundle bucket, alarms
 * per color, and a pipeline Source (CodeConnections) -> Build (CodeBuild, uploads the bundle) -> Release (a Step
 * Functions workflow). It leaves out what the library adds (the release decision function and its workflow logic,
 * the lifecycle hooks, the guard, the state stack, the smoke test and approval gate, the dashboard, the cdk-nag
 * acknowledgements): a lower bound for the same infrastructure.
 */
import { App, Duration, Stack } from 'aws-cdk-lib';
import * as autoscaling from 'aws-cdk-lib/aws-autoscaling';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as codebuild from 'aws-cdk-lib/aws-codebuild';
import * as codepipeline from 'aws-cdk-lib/aws-codepipeline';
import * as actions from 'aws-cdk-lib/aws-codepipeline-actions';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as elbv2 from 'aws-cdk-lib/aws-elasticloadbalancingv2';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import { Construct } from 'constructs';

export class HandwrittenEc2 extends Construct {
  constructor(scope: Construct, id: string) {
    super(scope, id);
    const vpc = new ec2.Vpc(this, 'Vpc', { maxAzs: 2, natGateways: 0, subnetConfiguration: [{ name: 'public', subnetType: ec2.SubnetType.PUBLIC }] });
    const bundles = new s3.Bucket(this, 'Bundles', { enforceSSL: true, blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL });
    const lb = new elbv2.ApplicationLoadBalancer(this, 'Lb', { vpc, internetFacing: true });
    const groups = ['Blue', 'Green'].map((color) => {
      const role = new iam.Role(this, `${color}Role`, { assumedBy: new iam.ServicePrincipal('ec2.amazonaws.com') });
      bundles.grantRead(role);
      const template = new ec2.LaunchTemplate(this, `${color}Template`, {
        instanceType: new ec2.InstanceType('t4g.micro'),
        machineImage: ec2.MachineImage.latestAmazonLinux2023({ cpuType: ec2.AmazonLinuxCpuType.ARM_64 }),
        requireImdsv2: true,
        userData: ec2.UserData.forLinux(),
        role,
        securityGroup: new ec2.SecurityGroup(this, `${color}Instances`, { vpc }),
        blockDevices: [{ deviceName: '/dev/xvda', volume: ec2.BlockDeviceVolume.ebs(8, { encrypted: true, volumeType: ec2.EbsDeviceVolumeType.GP3 }) }],
      });
      const asg = new autoscaling.AutoScalingGroup(this, `${color}Group`, { vpc, launchTemplate: template, minCapacity: 0, maxCapacity: 4, vpcSubnets: { subnetType: ec2.SubnetType.PUBLIC } });
      const tg = new elbv2.ApplicationTargetGroup(this, `${color}Targets`, {
        vpc,
        port: 8080,
        protocol: elbv2.ApplicationProtocol.HTTP,
        targets: [asg],
        deregistrationDelay: Duration.seconds(30),
        healthCheck: { path: '/healthcheck', interval: Duration.seconds(10), healthyThresholdCount: 2 },
      });
      return tg;
    });
    lb.addListener('Prod', { port: 80, defaultTargetGroups: [groups[0]] });
    lb.addListener('Test', { port: 8080, protocol: elbv2.ApplicationProtocol.HTTP, defaultTargetGroups: [groups[1]] });
    groups.forEach((tg, i) => {
      const color = i === 0 ? 'Blue' : 'Green';
      new cloudwatch.Alarm(this, `${color}Latency`, { metric: tg.metrics.targetResponseTime({ statistic: 'p99' }), threshold: 2, evaluationPeriods: 3 });
      new cloudwatch.Alarm(this, `${color}5xx`, { metric: tg.metrics.httpCodeTarget(elbv2.HttpCodeTarget.TARGET_5XX_COUNT), threshold: 1, evaluationPeriods: 1 });
    });

    const workflow = new sfn.StateMachine(this, 'Release', { definitionBody: sfn.DefinitionBody.fromChainable(new sfn.Pass(this, 'Shift')) });
    const source = new codepipeline.Artifact();
    const built = new codepipeline.Artifact();
    const build = new codebuild.PipelineProject(this, 'Build', { environment: { buildImage: codebuild.LinuxArmBuildImage.AMAZON_LINUX_2023_STANDARD_3_0 } });
    bundles.grantWrite(build);
    const pipeline = new codepipeline.Pipeline(this, 'Pipeline', { pipelineType: codepipeline.PipelineType.V2 });
    pipeline.addStage({ stageName: 'Source', actions: [new actions.CodeStarConnectionsSourceAction({ actionName: 'Source', owner: 'my-org', repo: 'my-web-app', branch: 'main', connectionArn: 'arn:aws:codeconnections:us-east-1:123456789012:connection/11111111-2222-3333-4444-555555555555', output: source })] });
    pipeline.addStage({ stageName: 'Build', actions: [new actions.CodeBuildAction({ actionName: 'Build', project: build, input: source, outputs: [built] })] });
    pipeline.addStage({ stageName: 'Release', actions: [new actions.StepFunctionInvokeAction({ actionName: 'Deploy', stateMachine: workflow })] });
  }
}

if (require.main === module) {
  const app = new App();
  new HandwrittenEc2(new Stack(app, 'HandwrittenEc2'), 'Web');
  app.synth();
}
