import { RemovalPolicy, Stack, Validations } from 'aws-cdk-lib';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';

/** A connection ARN of the right shape for tests. */
export const CONNECTION_ARN = 'arn:aws:codeconnections:us-east-1:123456789012:connection/11111111-2222-3333-4444-555555555555';

/** A compliant bucket to release into: what a user of `Release.s3Bucket()` would bring. */
export function siteBucket(scope: Construct, id = 'Site'): s3.Bucket {
  const bucket = new s3.Bucket(scope, id, {
    enforceSSL: true,
    encryption: s3.BucketEncryption.S3_MANAGED,
    blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
    removalPolicy: RemovalPolicy.DESTROY,
  });
  Validations.of(bucket).acknowledge({
    id: 'AwsSolutions-S1',
    reason: 'Test fixture: the release target of the test stack is never deployed and serves no reader.',
  });
  return bucket;
}

/**
 * Flattens a rendered string that may be an `Fn::Join` into one string, writing `{Ref: X}` as `${X}` and
 * `{Fn::GetAtt: [X, A]}` as `${X.A}`, so that tests can match readable text built with tokens.
 */
export function flatten(stack: Stack, value: unknown): string {
  const resolved = stack.resolve(value);
  if (typeof resolved === 'string') return resolved;
  if (resolved && typeof resolved === 'object') {
    const obj = resolved as Record<string, any>;
    if (obj['Fn::Join']) {
      const [sep, parts] = obj['Fn::Join'];
      return (parts as unknown[]).map((p) => flatten(stack, p)).join(sep);
    }
    if (obj.Ref) return `\${${obj.Ref}}`;
    if (obj['Fn::GetAtt']) return `\${${obj['Fn::GetAtt'].join('.')}}`;
  }
  return JSON.stringify(resolved);
}
