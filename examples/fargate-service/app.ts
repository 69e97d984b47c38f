/**
 * FargateBlueGreenPipeline with few props: every push to `main` tests the sample service (examples/service), builds
 * its image, and releases it to ECS Fargate with a blue/green deployment. The new version is smoke-tested on the test
 * listener and waits for a human before production traffic moves to it.
 *
 *   cdk deploy --all -c connectionArn=arn:aws:codeconnections:<region>:<account>:connection/<id> -c repo=owner/repo
 *   cdk destroy --all
 */
import { App, AppProps, CfnOutput, Duration, Environment, Stack, StackProps } from 'aws-cdk-lib';
import * as ssm from 'aws-cdk-lib/aws-ssm';
import { Construct } from 'constructs';
import { Approval, FargateBlueGreenPipeline, PipelineSource } from '../../src';
import { callerEnvironment, repositoryFromContext } from '../caller-environment';
import { DEFAULT_WELCOME_PHRASE } from '../service/src/app';

export interface FargateServiceStackProps extends StackProps {
  /** `owner/repo` of the repository that holds examples/service. */
  readonly repo: string;
  /** The CodeConnections connection to the repository's provider. */
  readonly connectionArn: string;
}

export class FargateServiceStack extends Stack {
  public readonly web: FargateBlueGreenPipeline;

  constructor(scope: Construct, id: string, props: FargateServiceStackProps) {
    super(scope, id, props);

    // What the sample service's /secret route describes (never its value): a parameter of this stack.
    const secret = new ssm.StringParameter(this, 'SampleSecret', {
      description: 'Described (name and version only) by the sample service at /secret',
      stringValue: 'not-really-a-secret',
    });

    this.web = new FargateBlueGreenPipeline(this, 'Web', {
      source: PipelineSource.connection(props.repo, 'main', {
        connectionArn: props.connectionArn,
        triggerFilePaths: ['examples/service/**'],
      }),
      dockerDirectory: 'examples/service',
      expectedPhrase: DEFAULT_WELCOME_PHRASE,
      environment: { SECRET_PARAMETER_NAME: secret.parameterName },
      approval: Approval.beforeProductionTraffic({ timeout: Duration.minutes(30) }),
      notifications: { emails: ['release-team@example.com'] },
      alarmEmails: ['on-call@example.com'],
    });
    secret.grantRead(this.web.taskDefinition.taskRole);

    new CfnOutput(this, 'PipelineName', { value: this.web.pipeline.pipeline.pipelineName });
  }
}

/**
 * Builds the example app in the account and region of the caller's credentials; `npm run examples` and the tests call
 * this (the tests with a fixed environment), `cdk synth` runs the file.
 */
export function createApp(props: AppProps = {}, env: Environment | undefined = callerEnvironment()): App {
  const app = new App(props);
  new FargateServiceStack(app, 'FargateServiceExample', {
    env,
    ...repositoryFromContext(app, 'my-org/delivery-pipelines-sample'),
  });
  return app;
}

if (require.main === module) {
  createApp().synth();
}
