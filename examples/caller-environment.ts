import { Environment } from 'aws-cdk-lib';

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
