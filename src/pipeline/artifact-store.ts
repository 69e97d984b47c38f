import { Duration, RemovalPolicy, Validations } from 'aws-cdk-lib';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';
import { checkKeyUsable, createCustomerManagedKey } from '../private/key';
import { checkDuration } from '../private/validate';

/**
 * Properties of `ArtifactStore`.
 */
export interface ArtifactStoreProps {
  /**
   * Keep the bucket, its artifacts and the key when the stack is deleted.
   *
   * @default false - `cdk destroy` empties and deletes the bucket and schedules the key for deletion
   */
  readonly retain?: boolean;

  /**
   * How long an artifact is kept after it was written. Rolling back needs the artifacts of the execution rolled
   * back to, so keep this longer than the time between two releases.
   *
   * @default Duration.days(30)
   */
  readonly expiration?: Duration;

  /**
   * The key that encrypts the artifacts: a key of this stack or of a stack this stack depends on, in the same account
   * and region (a `kms.Key`, not an imported `IKey`, because the library adds to its policy the statements the
   * services it encrypts for need). Its removal policy is the caller's to set; `retain` does not change it.
   *
   * @default - a new key in this construct, rotating yearly, kept or deleted with the bucket (`retain`)
   */
  readonly encryptionKey?: kms.Key;
}

/**
 * The pipeline's artifact bucket: KMS encrypted with a rotating key, SSL only, no public access, versioned, old
 * artifacts expiring, and by default gone (with its objects) after `cdk destroy`.
 */
export class ArtifactStore extends Construct {
  /** The bucket. */
  public readonly bucket: s3.Bucket;

  /** The key that encrypts the artifacts (and the build's output). */
  public readonly encryptionKey: kms.Key;

  /** What happens to the store's resources when the stack is deleted. */
  public readonly removalPolicy: RemovalPolicy;

  constructor(scope: Construct, id: string, props: ArtifactStoreProps = {}) {
    super(scope, id);
    checkKeyUsable(this, 'encryptionKey', props.encryptionKey);
    checkDuration(this, 'expiration', props.expiration, Duration.days(1), Duration.days(3650), 'days');
    const retain = props.retain ?? false;
    const removalPolicy = retain ? RemovalPolicy.RETAIN : RemovalPolicy.DESTROY;
    this.removalPolicy = removalPolicy;
    const expiration = props.expiration ?? Duration.days(30);

    this.encryptionKey = props.encryptionKey ??
      createCustomerManagedKey(this, 'Key', `Encrypts the pipeline artifacts of ${this.node.path}`, removalPolicy);
    this.bucket = new s3.Bucket(this, 'Bucket', {
      encryption: s3.BucketEncryption.KMS,
      encryptionKey: this.encryptionKey,
      bucketKeyEnabled: true,
      enforceSSL: true,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      versioned: true,
      lifecycleRules: [{
        id: 'ExpireOldArtifacts',
        expiration,
        noncurrentVersionExpiration: Duration.days(1),
        abortIncompleteMultipartUploadAfter: Duration.days(1),
      }],
      removalPolicy,
      autoDeleteObjects: !retain,
    });
    Validations.of(this.bucket).acknowledge({
      id: 'AwsSolutions-S1',
      reason: 'Artifacts are written and read only by this pipeline\'s own roles, and every pipeline execution is ' +
        'recorded by CodePipeline; an access-log bucket would add a second bucket that outlives `cdk destroy`.',
    });
  }
}
