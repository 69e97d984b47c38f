/**
 * Ec2BlueGreenPipeline with few props: every push to `main` tests the sample service (examples/service), builds it and
 * releases it blue/green onto EC2 Auto Scaling. The new color is smoke-tested on the test listener and waits for a
 * human before production traffic moves to it; alarms on the new color roll it back during the bake time.
 *
 *   cdk deploy --all -c connectionArn=arn:aws:codeconnections:<region>:<account>:connection/<id> -c repo=owner/repo
 *   cdk destroy --all
 *
 * The stacks deploy into the account and region of your credentials (CDK_DEFAULT_ACCOUNT / CDK_DEFAULT_REGION).
 */
import { App, AppProps, CfnOutput, Duration, Environment, Stack, StackProps, Validations } from 'aws-cdk-lib';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import * as ssm from 'aws-cdk-lib/aws-ssm';
import { Construct } from 'constructs';
import { Approval, Ec2BlueGreenPipeline, InstanceSecret, PipelineSource, TrafficShift } from '../../src';
import { callerEnvironment, repositoryFromContext } from '../caller-environment';
import { DEFAULT_WELCOME_PHRASE } from '../service/src/app';

export interface Ec2WebAppStackProps extends StackProps {
  /** `owner/repo` of the repository that holds examples/service. */
  readonly repo: string;
  /** The CodeConnections connection to the repository's provider. */
  readonly connectionArn: string;
}

export class Ec2WebAppStack extends Stack {
  public readonly web: Ec2BlueGreenPipeline;

  constructor(scope: Construct, id: string, props: Ec2WebAppStackProps) {
    super(scope, id, props);

    // What the sample service's /secret route describes (never its value): a parameter of this stack.
    const described = new ssm.StringParameter(this, 'SampleSecret', {
      description: 'Described (name and version only) by the sample service at /secret',
      stringValue: 'not-really-a-secret',
    });
    // A secret the instances read at boot and hand to the app as API_TOKEN (its value never reaches the template).
    const token = new secretsmanager.Secret(this, 'ApiToken', {
      description: 'A token the sample service receives as API_TOKEN',
      generateSecretString: { excludePunctuation: true, passwordLength: 32 },
    });
    Validations.of(token).acknowledge({
      id: 'AwsSolutions-SMG4',
      reason: 'An example token with no system behind it to rotate against; a real one would get a rotation schedule.',
    });

    this.web = new Ec2BlueGreenPipeline(this, 'Web', {
      source: PipelineSource.connection(props.repo, 'main', {
        connectionArn: props.connectionArn,
        triggerFilePaths: ['examples/service/**'],
      }),
      appDirectory: 'examples/service',
      expectedPhrase: DEFAULT_WELCOME_PHRASE,
      environment: { SECRET_PARAMETER_NAME: described.parameterName },
      secrets: { API_TOKEN: InstanceSecret.fromSecretsManager(token) },
      approval: Approval.beforeProductionTraffic({ timeout: Duration.minutes(40) }),
      trafficShift: TrafficShift.canary(10, Duration.minutes(5)),
      notifications: { emails: ['release-team@example.com'] },
      alarmEmails: ['on-call@example.com'],
    });
    described.grantRead(this.web.instanceRole);

    new CfnOutput(this, 'PipelineName', { value: this.web.pipeline.pipeline.pipelineName });
  }
}

/** Builds the example app; `npm run examples` and the tests call this (tests with a fixed env), `cdk synth` runs the file. */
export function createApp(props: AppProps = {}, env: Environment | undefined = callerEnvironment()): App {
  const app = new App(props);
  new Ec2WebAppStack(app, 'Ec2WebAppExample', {
    env,
    ...repositoryFromContext(app, 'my-org/delivery-pipelines-sample'),
  });
  return app;
}

if (require.main === module) {
  createApp().synth();
}
