/**
 * The CDK app of a repository that deploys itself: the sample service (examples/service) released to ECS Fargate by
 * FargateBlueGreenPipeline, and every change to this app (in examples/self-updating/infra) deployed by the same
 * pipeline from the same push, before the release.
 *
 * Once, from a laptop, in this directory (the pipeline cannot deploy itself before it exists):
 *
 *   npx cdk bootstrap aws://<account>/<region>
 *   npx cdk deploy --all -c connectionArn=arn:aws:codeconnections:<region>:<account>:connection/<id> -c repo=owner/repo
 *
 * Then push: a change of the service is released, a change of this app is deployed first (a permission broadening
 * waits for a human). In a repository of your own, import from 'cdk-delivery-pipelines' instead of '../../../src'
 * and commit the package-lock.json that `npm install` writes next to package.json (the synth runs `npm ci`).
 */
import { App, AppProps, CfnOutput, Environment, Stack, StackProps } from 'aws-cdk-lib';
import { Construct } from 'constructs';
import { FargateBlueGreenPipeline, InfrastructureUpdate, PipelineSource } from '../../../src';
import { callerEnvironment, repositoryFromContext } from '../../caller-environment';
import { DEFAULT_WELCOME_PHRASE } from '../../service/src/app';

/** Where the two halves of the repository are. */
export const SERVICE_DIRECTORY = 'examples/service';
export const INFRA_DIRECTORY = 'examples/self-updating/infra';

export interface SelfUpdatingStackProps extends StackProps {
  /** `owner/repo` of the repository that holds the service and this app. */
  readonly repo: string;
  /** The CodeConnections connection to the repository's provider. */
  readonly connectionArn: string;
}

export class SelfUpdatingStack extends Stack {
  public readonly web: FargateBlueGreenPipeline;

  constructor(scope: Construct, id: string, props: SelfUpdatingStackProps) {
    super(scope, id, props);

    this.web = new FargateBlueGreenPipeline(this, 'Web', {
      source: PipelineSource.connection(props.repo, 'main', {
        connectionArn: props.connectionArn,
        // A push that changes either half starts the pipeline.
        triggerFilePaths: [`${SERVICE_DIRECTORY}/**`, `${INFRA_DIRECTORY}/**`],
      }),
      dockerDirectory: SERVICE_DIRECTORY,
      expectedPhrase: DEFAULT_WELCOME_PHRASE,
      // The stack of the construct and its ...-Image stack are deployed by the pipeline from now on.
      infrastructure: InfrastructureUpdate.cdkApp({ directory: INFRA_DIRECTORY }),
      notifications: { emails: ['release-team@example.com'] },
    });

    new CfnOutput(this, 'PipelineName', { value: this.web.pipeline.pipeline.pipelineName });
  }
}

/**
 * The account and region of the caller's credentials (`cdk deploy` sets them); without credentials, a placeholder
 * environment of the right shape, so that `npm run examples` and the tests synthesize it. The pipeline may only
 * assume the bootstrap roles of this one environment, so the stack cannot be environment-agnostic.
 */
export function createApp(props: AppProps = {}, env: Environment = callerEnvironment() ?? { account: '123456789012', region: 'us-east-1' }): App {
  const app = new App(props);
  new SelfUpdatingStack(app, 'SelfUpdatingExample', {
    env,
    ...repositoryFromContext(app, 'my-org/delivery-pipelines-sample'),
  });
  return app;
}

if (require.main === module) {
  createApp().synth();
}
