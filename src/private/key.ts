import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import { Construct } from 'constructs';

/**
 * Adds to a key's policy the statement every key of the library carries (ADR 0012): no grant on the key unless it is
 * for an AWS resource (`kms:GrantIsForAWSResource`, which an integrated service such as EBS, Lambda or ECS sets when
 * it creates a grant for its own resource) or the caller is an AWS service (`aws:PrincipalIsAWSService`). A grant is
 * a second, policy-less way to use a key; this keeps a principal allowed `kms:CreateGrant` from handing the key out.
 * @internal
 */
export function denyGrantsExceptForAwsResources(key: kms.Key): void {
  key.addToResourcePolicy(new iam.PolicyStatement({
    sid: 'DenyGrantsExceptForAwsResources',
    effect: iam.Effect.DENY,
    principals: [new iam.AnyPrincipal()],
    actions: ['kms:CreateGrant'],
    resources: ['*'],
    conditions: {
      // Both must be false for the Deny to apply (conditions of one statement are ANDed); a request without the grant
      // key (which KMS sets on every CreateGrant) counts as not for an AWS resource.
      BoolIfExists: { 'kms:GrantIsForAWSResource': 'false' },
      Bool: { 'aws:PrincipalIsAWSService': 'false' },
    },
  }));
}

/**
 * A customer managed key of the library: rotating yearly, a 7-day deletion window, `removalPolicy` on stack deletion,
 * and no grants except for AWS resources (`denyGrantsExceptForAwsResources`).
 * @internal
 */
export function createCustomerManagedKey(scope: Construct, id: string, description: string,
  removalPolicy: RemovalPolicy): kms.Key {
  const key = new kms.Key(scope, id, {
    description,
    enableKeyRotation: true,
    removalPolicy,
    pendingWindow: Duration.days(7),
  });
  denyGrantsExceptForAwsResources(key);
  return key;
}
