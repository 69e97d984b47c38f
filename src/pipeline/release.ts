import * as codepipeline from 'aws-cdk-lib/aws-codepipeline';
import * as actions from 'aws-cdk-lib/aws-codepipeline-actions';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';
import { Approval } from './approval';
import { PipelineNotifications } from './notifications';
import { SmokeTest } from './smoke-test';
import { acknowledge, bucketGrantFindings } from '../private/acknowledgements';

/**
 * What a release is given by the pipeline it runs in.
 */
export interface ReleaseContext {
  /** The pipeline. */
  readonly pipeline: codepipeline.IPipeline;

  /** The source revision. */
  readonly sourceOutput: codepipeline.Artifact;

  /** What the build step produced. */
  readonly buildOutput: codepipeline.Artifact;

  /** The approval the pipeline was given; a release that can gate production traffic honours `beforeProductionTraffic`. */
  readonly approval: Approval;

  /** The pipeline's notifications, for the release's own events. */
  readonly notifications: PipelineNotifications;

  /** The key that encrypts the pipeline's artifacts. */
  readonly artifactKey: kms.IKey;

  /**
   * The pipeline's artifact bucket, where a release may keep what it ships (under its own prefix).
   *
   * @default - not given: the release keeps nothing there
   */
  readonly artifactBucket?: s3.IBucket;
}

/**
 * A release, bound to a pipeline.
 */
export interface ReleaseConfig {
  /** The actions of the Release stage, ordered by their `runOrder`. */
  readonly actions: codepipeline.IAction[];

  /**
   * Whether the release puts a human approval between its test endpoint and production traffic when the approval is
   * `Approval.beforeProductionTraffic()`.
   *
   * @default false
   */
  readonly gatesProductionTraffic?: boolean;

  /**
   * Whether a failed Release stage rolls back on its own to the last successful execution (CodePipeline V2 stage
   * rollback). A release whose engine already returns production to the previous version on failure turns it off:
   * re-running an older execution would only redeploy what production already runs.
   *
   * @default true
   */
  readonly rollbackOnFailure?: boolean;

  /**
   * Whether the release sends a traffic step event (source `cdk-delivery-pipelines.release`, detail-type
   * `Release Traffic Shifted`, on the default bus) at each production traffic step, the last at 100 %: the delivery
   * metrics then end the lead time at full traffic instead of the execution's success (ADR 0010).
   *
   * @default false
   */
  readonly reportsTrafficSteps?: boolean;
}

/**
 * Options for releasing build output into an S3 bucket.
 */
export interface S3BucketReleaseOptions {
  /**
   * A prefix (folder) in the bucket to release into.
   *
   * @default - the root of the bucket
   */
  readonly objectKey?: string;

  /**
   * `Cache-Control` of the released objects.
   *
   * @default - S3 and CloudFront defaults
   */
  readonly cacheControl?: actions.CacheControl[];

  /**
   * The key that encrypts the released objects.
   *
   * @default - the bucket's default encryption
   */
  readonly encryptionKey?: kms.IKey;

  /**
   * A smoke test that runs after the files are released. When it fails, the Release stage fails and rolls back to
   * the files of the last successful execution.
   *
   * @default - no smoke test
   */
  readonly smokeTest?: SmokeTest;
}

/**
 * How a built revision reaches production.
 *
 * The patterns of this library bring their own releases (ECS blue/green, Lambda canary, EC2 blue/green); `s3Bucket()`
 * releases static files, and a subclass can release anything a CodePipeline action can.
 */
export abstract class Release {
  /**
   * Releases the build output into an S3 bucket, unzipped (a static web site behind CloudFront, say).
   * Rolling back redeploys the files of the last successful execution.
   */
  public static s3Bucket(bucket: s3.IBucket, options: S3BucketReleaseOptions = {}): Release {
    return new S3BucketRelease(bucket, options);
  }

  /** A readable name of the target, for notifications and errors. */
  public abstract readonly description: string;

  /**
   * Creates the actions of the Release stage.
   */
  public abstract bind(scope: Construct, context: ReleaseContext): ReleaseConfig;
}

class S3BucketRelease extends Release {
  public readonly description: string;

  constructor(private readonly bucket: s3.IBucket, private readonly options: S3BucketReleaseOptions) {
    super();
    this.description = `Release.s3Bucket(${bucket.node.path})`;
  }

  public bind(_scope: Construct, context: ReleaseContext): ReleaseConfig {
    const deploy = new S3ReleaseAction({
      actionName: 'Deploy',
      runOrder: 1,
      bucket: this.bucket,
      input: context.buildOutput,
      extract: true,
      objectKey: this.options.objectKey,
      cacheControl: this.options.cacheControl,
      encryptionKey: this.options.encryptionKey,
    });
    const smokeTest = this.options.smokeTest?.pipelineAction({ actionName: 'SmokeTest', runOrder: 2 });
    return { actions: smokeTest ? [deploy, smokeTest] : [deploy] };
  }
}

/** Deploys into the bucket, and acknowledges on the action's own role the grant aws-cdk-lib writes for it. */
class S3ReleaseAction extends actions.S3DeployAction {
  constructor(private readonly releaseProps: actions.S3DeployActionProps) {
    super(releaseProps);
  }

  protected bound(scope: Construct, stage: codepipeline.IStage, options: codepipeline.ActionBindOptions): codepipeline.ActionConfig {
    const config = super.bound(scope, stage, options);
    const bucket = this.releaseProps.bucket;
    acknowledge(options.role, bucketGrantFindings(bucket),
      'The release reads the build output from the pipeline\'s artifact bucket and writes it into the objects of ' +
      `${bucket.node.path} (Resource is that bucket's ARN and its /*), with the object-level action families ` +
      'aws-cdk-lib grants for S3 deploy actions.');
    if (this.releaseProps.encryptionKey) {
      acknowledge(options.role, ['AwsSolutions-IAM5[Action::kms:ReEncrypt*]', 'AwsSolutions-IAM5[Action::kms:GenerateDataKey*]'],
        `aws-cdk-lib grants encrypt/decrypt on the artifact key and on ${this.releaseProps.encryptionKey.node.path}, the ` +
        'key of the released objects, only; the wildcards cover the data-key variants S3 uses with SSE-KMS.');
    }
    return config;
  }
}
