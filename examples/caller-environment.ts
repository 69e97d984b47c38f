import { App, Environment } from 'aws-cdk-lib';

/**
 * The account and region of the caller's credentials, as the CDK CLI sets them for `cdk deploy` and `cdk synth`
 * (`CDK_DEFAULT_ACCOUNT`, `CDK_DEFAULT_REGION`); none (an environment-agnostic stack) when an example is synthesized
 * without them. Tests pass a fixed environment instead.
 */
export function callerEnvironment(): Environment | undefined {
  const account = process.env.CDK_DEFAULT_ACCOUNT;
  const region = process.env.CDK_DEFAULT_REGION;
  return account && region ? { account, region } : undefined;
}

/** A connection ARN of the right shape, for synthesizing an example without `-c connectionArn=...`. */
const PLACEHOLDER_CONNECTION_ARN = 'arn:aws:codeconnections:us-east-1:123456789012:connection/11111111-2222-3333-4444-555555555555';

/**
 * The repository and CodeConnections connection an example releases from: `cdk deploy -c repo=owner/repo
 * -c connectionArn=...`, or placeholders of the right shape when synthesized without them.
 */
export function repositoryFromContext(app: App, defaultRepo: string): { repo: string; connectionArn: string } {
  return {
    repo: app.node.tryGetContext('repo') ?? defaultRepo,
    connectionArn: app.node.tryGetContext('connectionArn') ?? PLACEHOLDER_CONNECTION_ARN,
  };
}
