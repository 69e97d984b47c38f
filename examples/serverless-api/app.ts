/**
 * ServerlessApiPipeline with few props: the sample service's routes (examples/service) as Lambda functions behind
 * API Gateway. Every route runs the service's own code through its Lambda adapter (examples/service/src/lambda.ts);
 * every push to `main` tests the service, bundles each route, and shifts all functions to the new code together,
 * 10% first for 5 minutes, rolling all of them back if the new versions fail.
 *
 *   cdk deploy -c connectionArn=arn:aws:codeconnections:<region>:<account>:connection/<id> -c repo=owner/repo
 *   cdk destroy
 */
import { App, AppProps, CfnOutput, Duration, Environment, Stack, StackProps } from 'aws-cdk-lib';
import * as ssm from 'aws-cdk-lib/aws-ssm';
import { Construct } from 'constructs';
import { PipelineSource, ServerlessApiPipeline } from '../../src';
import { callerEnvironment, repositoryFromContext } from '../caller-environment';
import { DEFAULT_WELCOME_PHRASE } from '../service/src/app';

export interface ServerlessApiStackProps extends StackProps {
  /** `owner/repo` of the repository that holds examples/service. */
  readonly repo: string;
  /** The CodeConnections connection to the repository's provider. */
  readonly connectionArn: string;
}

/** The sample service's routes; all served by the same adapter, each in its own function. */
export const SAMPLE_ROUTES = ['GET /', 'GET /healthcheck', 'GET /sleep/{secs}', 'GET /secret'];

export class ServerlessApiStack extends Stack {
  public readonly api: ServerlessApiPipeline;

  constructor(scope: Construct, id: string, props: ServerlessApiStackProps) {
    super(scope, id, props);

    // What the /secret route describes (its name and version, never its value).
    const secret = new ssm.StringParameter(this, 'SampleSecret', {
      description: 'Described (name and version only) by the sample service at /secret',
      stringValue: 'not-really-a-secret',
    });

    this.api = new ServerlessApiPipeline(this, 'Api', {
      source: PipelineSource.connection(props.repo, 'main', {
        connectionArn: props.connectionArn,
        triggerFilePaths: ['examples/service/**'],
      }),
      sourceDirectory: 'examples/service',
      routes: SAMPLE_ROUTES.map((route) => ({
        route,
        entry: 'src/lambda.ts',
        smokeTestPath: route === 'GET /sleep/{secs}' ? '/sleep/0' : undefined,
        // /sleep/{secs} waits up to 30 seconds: a shorter timeout would let any caller fail the new version.
        timeout: route === 'GET /sleep/{secs}' ? Duration.seconds(35) : undefined,
        environment: route === 'GET /secret' ? { SECRET_PARAMETER_NAME: secret.parameterName } : undefined,
      })),
      expectedPhrase: DEFAULT_WELCOME_PHRASE,
      notifications: { emails: ['release-team@example.com'] },
      alarmEmails: ['on-call@example.com'],
    });
    secret.grantRead(this.api.functions['GET /secret']);

    new CfnOutput(this, 'PipelineName', { value: this.api.pipeline.pipeline.pipelineName });
  }
}

/**
 * Builds the example app in the account and region of the caller's credentials; `npm run examples` and the tests call
 * this (the tests with a fixed environment), `cdk synth` runs the file.
 */
export function createApp(props: AppProps = {}, env: Environment | undefined = callerEnvironment()): App {
  const app = new App(props);
  new ServerlessApiStack(app, 'ServerlessApiExample', {
    env,
    ...repositoryFromContext(app, 'my-org/delivery-pipelines-sample'),
  });
  return app;
}

if (require.main === module) {
  createApp().synth();
}
