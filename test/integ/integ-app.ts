/**
 * What every integration test (test/*.integ.ts) shares: where it releases from, where it deploys, and how long its
 * assertions wait. `npx projen integ:<name>:snapshot` synthesizes with the placeholders below, so the committed
 * snapshot never depends on who ran it; `npx projen integ:<name>:deploy` deploys into the account and region of your
 * credentials and releases from the repository you name:
 *
 *   INTEG_REPO=owner/repo INTEG_CONNECTION_ARN=arn:aws:codeconnections:... npx projen integ:<name>:deploy
 *
 * The repository must hold this project (the patterns build examples/service; DeliveryPipeline builds site/). A deploy
 * leaves its own (normalized) assembly as the snapshot, with your repository and environment in it: run
 * `npx projen integ:<name>:snapshot` before committing.
 *
 * Not verified without an AWS account (no deploy has run): that ECS leaves the test listener's rule on the new tasks
 * once a blue/green deployment ended (the Fargate test asserts it); that the test listener answers 503 after an EC2
 * release (the old color scaled to zero); that @aws-cdk/integ-tests-alpha 2.245.0-alpha.0's assertion provider works
 * against stacks of aws-cdk-lib 2.276; that a first release fits the 55 minutes the assertions wait.
 */
import { App, Duration, Environment } from 'aws-cdk-lib';
import { PipelineSource } from '../../src';

/** A connection ARN of the right shape: enough to synthesize, never to deploy. */
const PLACEHOLDER_CONNECTION_ARN = 'arn:aws:codeconnections:us-east-1:123456789012:connection/11111111-2222-3333-4444-555555555555';

/** Set by the `integ:<name>:deploy` task (see .projenrc.ts): deploy into the caller's account and region. */
export const DEPLOYING = process.env.INTEG_DEPLOY === '1';

/**
 * The caller's account and region when deploying (the CDK CLI sets `CDK_DEFAULT_ACCOUNT`/`CDK_DEFAULT_REGION`);
 * environment-agnostic when snapshotting, so a snapshot is the same with or without credentials.
 */
export function integEnvironment(): Environment | undefined {
  const account = process.env.CDK_DEFAULT_ACCOUNT;
  const region = process.env.CDK_DEFAULT_REGION;
  return DEPLOYING && account && region ? { account, region } : undefined;
}

/** The source of an integration test's pipeline: `INTEG_REPO` and `INTEG_CONNECTION_ARN`, or placeholders. */
export function integSource(defaultRepo: string, filePaths?: string[]): PipelineSource {
  const repo = (DEPLOYING && process.env.INTEG_REPO) || defaultRepo;
  const connectionArn = (DEPLOYING && process.env.INTEG_CONNECTION_ARN) || PLACEHOLDER_CONNECTION_ARN;
  return PipelineSource.connection(repo, 'main', { connectionArn, triggerFilePaths: filePaths });
}

/**
 * How long the assertions wait for the pipeline's first execution (it starts when the pipeline is created): below
 * the hour CloudFormation gives a custom resource, polling once a minute.
 */
export const FIRST_RELEASE_WAIT = { totalTimeout: Duration.minutes(55), interval: Duration.minutes(1) };

/** How long an HTTP check retries once the release succeeded (load balancer DNS, CloudFront propagation). */
export const HTTP_WAIT = { totalTimeout: Duration.minutes(10), interval: Duration.seconds(30) };

/**
 * The app of an integration test. The assertion stack reads the test stack's outputs through exports: strong
 * references, said explicitly (CloudFormation then refuses to delete an export while the assertions use it).
 */
export function integApp(): App {
  return new App({ context: { '@aws-cdk/core:defaultCrossStackReferences': 'strong' } });
}
