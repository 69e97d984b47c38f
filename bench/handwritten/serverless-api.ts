/**
 * The serverless example written against aws-cdk-lib alone (no library), as a baseline for `npm run bench`: a REST
 * API with the sample service's four routes, one ARM64 Node.js function per route with an alias `live`, a CodeDeploy
 * deployment group per function (canary 10 % for 5 minutes) with an errors alarm, and a pipeline Source
 * (CodeConnections) -> Build (CodeBuild) -> Release (a Lambda invoke action that would update the functions). It
 * leaves out what the library adds (the release controller's coordinated rollback, the pre-traffic hook, the
 * per-release alarms, the dashboard, the cdk-nag acknowledgements): a lower bound for the same infrastructure.
 */
import { App, Stack } from 'aws-cdk-lib';
import * as apigateway from 'aws-cdk-lib/aws-apigateway';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as codebuild from 'aws-cdk-lib/aws-codebuild';
import * as codedeploy from 'aws-cdk-lib/aws-codedeploy';
import * as codepipeline from 'aws-cdk-lib/aws-codepipeline';
import * as actions from 'aws-cdk-lib/aws-codepipeline-actions';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { Construct } from 'constructs';

export class HandwrittenServerless extends Construct {
  constructor(scope: Construct, id: string) {
    super(scope, id);
    const api = new apigateway.RestApi(this, 'Api', { deployOptions: { stageName: 'prod', tracingEnabled: true } });
    const application = new codedeploy.LambdaApplication(this, 'App');
    const routes: Array<[string, string]> = [['GET', '/'], ['GET', '/healthcheck'], ['GET', '/sleep/{secs}'], ['GET', '/secret']];
    routes.forEach(([method, route], i) => {
      const fn = new lambda.Function(this, `Fn${i}`, {
        runtime: lambda.Runtime.NODEJS_24_X,
        architecture: lambda.Architecture.ARM_64,
        handler: 'index.handler',
        memorySize: 256,
        code: lambda.Code.fromInline('exports.handler = async () => ({ statusCode: 503, body: "not released yet" });'),
        tracing: lambda.Tracing.ACTIVE,
      });
      const alias = new lambda.Alias(this, `Live${i}`, { aliasName: 'live', version: fn.currentVersion });
      const resource = route === '/' ? api.root : api.root.resourceForPath(route);
      resource.addMethod(method, new apigateway.LambdaIntegration(alias));
      const errors = new cloudwatch.Alarm(this, `Errors${i}`, { metric: alias.metricErrors(), threshold: 1, evaluationPeriods: 1 });
      new codedeploy.LambdaDeploymentGroup(this, `Deploy${i}`, {
        application, alias, alarms: [errors], deploymentConfig: codedeploy.LambdaDeploymentConfig.CANARY_10PERCENT_5MINUTES,
      });
    });
    const releaser = new lambda.Function(this, 'Releaser', {
      runtime: lambda.Runtime.NODEJS_24_X,
      architecture: lambda.Architecture.ARM_64,
      handler: 'index.handler',
      code: lambda.Code.fromInline('exports.handler = async () => undefined;'),
    });
    const source = new codepipeline.Artifact();
    const built = new codepipeline.Artifact();
    const build = new codebuild.PipelineProject(this, 'Build', { environment: { buildImage: codebuild.LinuxArmBuildImage.AMAZON_LINUX_2023_STANDARD_3_0 } });
    const pipeline = new codepipeline.Pipeline(this, 'Pipeline', { pipelineType: codepipeline.PipelineType.V2 });
    pipeline.addStage({ stageName: 'Source', actions: [new actions.CodeStarConnectionsSourceAction({ actionName: 'Source', owner: 'my-org', repo: 'my-api', branch: 'main', connectionArn: 'arn:aws:codeconnections:us-east-1:123456789012:connection/11111111-2222-3333-4444-555555555555', output: source })] });
    pipeline.addStage({ stageName: 'Build', actions: [new actions.CodeBuildAction({ actionName: 'Build', project: build, input: source, outputs: [built] })] });
    pipeline.addStage({ stageName: 'Release', actions: [new actions.LambdaInvokeAction({ actionName: 'Release', lambda: releaser, inputs: [built] })] });
    new cloudwatch.Alarm(this, 'Latency', { metric: api.metricLatency({ statistic: 'p99' }), threshold: 3000, evaluationPeriods: 3 });
  }
}

if (require.main === module) {
  const app = new App();
  new HandwrittenServerless(new Stack(app, 'HandwrittenServerless'), 'Api');
  app.synth();
}
