import { CustomResource, Stack, Token } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';
import { acknowledge, acknowledgeStarResourceOnlyFor, nagRef } from './acknowledgements';
import { customResourceHandlerOptions } from './custom-resource-function';
import { createLogGroup } from './log-group';
import { pruneRedundantDependsOn } from './redundant-depends-on';
import { BundleReencryptFunction } from '../handlers/bundle-reencrypt-function';

/** @internal */
export interface BundleReencryptionProps {
  /** The bucket of the release bundles. */
  readonly bucket: s3.IBucket;
  /** The key the bucket encrypts with now (the pipeline's key, in the pattern's state stack). */
  readonly key: kms.IKey;
  /** Where the bundles live in the bucket (`releases/`): nothing else is touched. */
  readonly prefix: string;
  /** The colors' `<color>-release` SSM parameters, which name the release each color installs at boot. */
  readonly releaseParameterNames: { readonly blue: string; readonly green: string };
  /** @default logs.RetentionDays.ONE_MONTH */
  readonly logRetention?: logs.RetentionDays;
}

/**
 * Re-encrypts, under the bucket's current key, the release bundles the instances may still install (those named by
 * the blue and green release parameters): a custom resource backed by `bundle-reencrypt.lambda.ts`, whose `KeyArn`
 * property is the key's ARN, so that CloudFormation runs it when an upgrade adds it (Create) and whenever the key
 * changes (Update), in the update phase, before the cleanup phase schedules an old key's deletion. ADR 0012
 * ("Upgrading").
 *
 * Its role: `s3:GetObject` and `s3:PutObject` on `<prefix>*` of the bucket, `s3:ListBucket` on the bucket (so that
 * a missing bundle answers 404, not 403), `ssm:GetParameter` on the two
 * parameters, `kms:Encrypt` and `kms:GenerateDataKey` on the key, and `kms:Decrypt` on any key (the old key's ARN is
 * not in the new template) only through S3 in this region and only for this bucket (`kms:EncryptionContext:aws:s3:arn`
 * is the bucket's ARN with S3 Bucket Keys), in a policy of its own so that cdk-nag's finding is acknowledged on that
 * statement alone.
 * @internal
 */
export class BundleReencryption extends Construct {
  /** The custom resource; its Create and Update re-encrypt. */
  public readonly resource: CustomResource;
  /** The function behind it. */
  public readonly function: lambda.Function;
  /** The policy with the `kms:Decrypt` statement (the previous key). */
  public readonly decryptPolicy: iam.Policy;

  constructor(scope: Construct, id: string, props: BundleReencryptionProps) {
    super(scope, id);
    const prefix = props.prefix;
    if (!Token.isUnresolved(prefix) && !/^[A-Za-z0-9._-]+\/$/.test(prefix)) {
      throw new Error(`${this.node.path}: prefix must be a folder like releases/ (letters, digits, . _ - and a final /); got ${JSON.stringify(prefix)}`);
    }
    const stack = Stack.of(this);
    const parameterArn = (name: string) => stack.formatArn({ service: 'ssm', resource: 'parameter', resourceName: name.replace(/^\//, '') });
    const logGroup = createLogGroup(this, 'Logs', props.logRetention);
    const role = new iam.Role(this, 'Role', {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      description: `Re-encrypts the live release bundles of ${props.bucket.node.path} under the bucket's current key`,
    });
    role.addToPolicy(new iam.PolicyStatement({ actions: ['logs:CreateLogStream', 'logs:PutLogEvents'], resources: [logGroup.logGroupArn] }));
    role.addToPolicy(new iam.PolicyStatement({ actions: ['s3:GetObject', 's3:PutObject'], resources: [props.bucket.arnForObjects(`${prefix}*`)] }));
    // Without it S3 answers a HEAD of a missing bundle 403 instead of 404, and a bundle that no longer exists could
    // not be told from a refusal (the bucket holds release bundles only).
    role.addToPolicy(new iam.PolicyStatement({ actions: ['s3:ListBucket'], resources: [props.bucket.bucketArn] }));
    role.addToPolicy(new iam.PolicyStatement({
      actions: ['ssm:GetParameter'],
      resources: [parameterArn(props.releaseParameterNames.blue), parameterArn(props.releaseParameterNames.green)],
    }));
    role.addToPolicy(new iam.PolicyStatement({ actions: ['kms:Encrypt', 'kms:GenerateDataKey'], resources: [props.key.keyArn] }));
    this.decryptPolicy = new iam.Policy(this, 'DecryptPolicy', {
      roles: [role],
      statements: [new iam.PolicyStatement({
        actions: ['kms:Decrypt'],
        resources: ['*'],
        conditions: {
          StringEquals: {
            'kms:ViaService': `s3.${stack.region}.amazonaws.com`,
            'kms:EncryptionContext:aws:s3:arn': props.bucket.bucketArn,
          },
        },
      })],
    });

    this.function = new BundleReencryptFunction(this, 'Function', customResourceHandlerOptions(role, logGroup, 'Re-encrypts the live release bundles under the bundle bucket\'s current key'));
    this.resource = new CustomResource(this, 'Resource', {
      serviceToken: this.function.functionArn,
      resourceType: 'Custom::ReleaseBundleReencryption',
      properties: {
        KeyArn: props.key.keyArn,
        BucketName: props.bucket.bucketName,
        Prefix: prefix,
        ReleaseParameterNames: [props.releaseParameterNames.blue, props.releaseParameterNames.green],
      },
    });
    // Its permissions exist before CloudFormation invokes it (the function already waits for the role's own policy).
    this.resource.node.addDependency(this.decryptPolicy);

    acknowledge(this.decryptPolicy, ['AwsSolutions-IAM5[Resource::*]'],
      'kms:Decrypt of the bundles written under the bucket\'s previous key, whose ARN the new template no longer has: ' +
      'only through S3 in this region (kms:ViaService) and only for this bucket\'s objects (kms:EncryptionContext:aws:s3:arn).');
    const objects = nagRef(props.bucket, 'Arn');
    if (objects) {
      acknowledge(role, [`AwsSolutions-IAM5[Resource::${objects}/${prefix}*]`],
        'The release bundles, releases/<release id>/bundle.tgz, of this release\'s own bundle bucket: the function reads and rewrites those alone.');
    }
    acknowledgeStarResourceOnlyFor(role, ['xray:PutTraceSegments', 'xray:PutTelemetryRecords'],
      'xray:PutTraceSegments and PutTelemetryRecords, for tracing, have no resource-level permissions.');
    acknowledge(this.function, ['Serverless-LambdaDLQ'],
      'CloudFormation invokes the function of a custom resource and waits for its answer; a failure fails the stack ' +
      'update, so there is no lost event to keep.');
    acknowledge(this.function, ['Serverless-LambdaDefaultMemorySize'],
      'The function makes a few S3 and SSM calls (server-side copies) per key change; 128 MB is enough.');
    pruneRedundantDependsOn(this);
  }
}
