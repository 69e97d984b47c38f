import { Aspects, Aws, Duration } from 'aws-cdk-lib';
import * as codepipeline from 'aws-cdk-lib/aws-codepipeline';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as sns from 'aws-cdk-lib/aws-sns';
import { Construct } from 'constructs';
import { Approval, ApprovalPlacement } from './approval';
import { ArtifactStore } from './artifact-store';
import { BuildStep, BuildStepOptions } from './build-step';
import { PipelineNotifications, PipelineNotificationsOptions } from './notifications';
import { PipelineGrantAcknowledger } from '../private/acknowledgements';
import { consoleUrl } from '../private/console';
import { pruneRedundantDependsOn } from '../private/redundant-depends-on';
import { checkDuration, invalidInput } from '../private/validate';
import { Release } from '../release/release';
import { PipelineSource } from '../source/pipeline-source';

/**
 * Properties of `DeliveryPipeline`.
 */
export interface DeliveryPipelineProps {
  /**
   * Where the revisions come from.
   */
  readonly source: PipelineSource;

  /**
   * How a built revision reaches production.
   */
  readonly release: Release;

  /**
   * How the Build stage builds and tests.
   *
   * @default - ARM build on Amazon Linux 2023 with the `buildspec.yml` of the source revision
   */
  readonly buildStep?: BuildStepOptions;

  /**
   * A second CodeBuild step in the Verify stage (integration tests, scans, ...). Its primary input is the source
   * revision (its buildspec comes from there, or inline); the build output is its secondary input `Build`, at
   * `$CODEBUILD_SRC_DIR_Build`.
   *
   * @default - no verify build
   */
  readonly verifyStep?: BuildStepOptions;

  /**
   * More actions of the Verify stage between Build and Release. An action that
   * reads the build output takes an input artifact named `Build` (`new codepipeline.Artifact('Build')`), the name
   * the Build stage gives its output.
   *
   * @default - no other Verify actions; without `verifyStep` either, no Verify stage
   */
  readonly verifyActions?: codepipeline.IAction[];

  /**
   * Whether and where a human approves the release.
   *
   * @default Approval.none()
   */
  readonly approval?: Approval;

  /**
   * Who hears about failed and succeeded releases and waiting approvals.
   *
   * @default - the topic is created without subscribers
   */
  readonly notifications?: PipelineNotificationsOptions;

  /**
   * Keep the artifact bucket, its artifacts, its key and the build logs when the stack is deleted.
   *
   * @default false - `cdk destroy` leaves nothing billable behind
   */
  readonly retainArtifacts?: boolean;

  /**
   * How long pipeline artifacts are kept.
   *
   * @default Duration.days(30)
   */
  readonly artifactExpiration?: Duration;

  /**
   * How executions that overlap are handled.
   *
   * @default codepipeline.ExecutionMode.SUPERSEDED - a newer revision overtakes a waiting older one
   */
  readonly executionMode?: codepipeline.ExecutionMode;
}

/**
 * A CodePipeline V2 that delivers one source to one release: Source, Build, optional Verify, optional Approve,
 * Release. It owns a secure artifact store, a least-privilege build step, the approval and the notifications.
 *
 * Every pattern of this library is built on it; it is usable alone (see `Release.s3Bucket()`).
 */
export class DeliveryPipeline extends Construct {
  /** The CodePipeline V2 pipeline. */
  public readonly pipeline: codepipeline.Pipeline;

  /** The bucket that stores the pipeline's artifacts. */
  public readonly artifactBucket: s3.IBucket;

  /** The key that encrypts the artifacts, the build output and the build project. */
  public readonly artifactKey: kms.IKey;

  /** The build step (CodeBuild project, role, log group, report group). */
  public readonly buildStep: BuildStep;

  /** The notifications (topic, Slack channel). */
  public readonly notifications: PipelineNotifications;

  /** The topic that receives the pipeline's notifications. */
  public readonly notificationTopic: sns.ITopic;

  /** The revision as the source delivered it. */
  public readonly sourceOutput: codepipeline.Artifact;

  /** What the build produced. */
  public readonly buildOutput: codepipeline.Artifact;

  /** The approval of this pipeline. */
  public readonly approval: Approval;

  /** The Source stage. */
  public readonly sourceStage: codepipeline.IStage;

  /** The Build stage. */
  public readonly buildStage: codepipeline.IStage;

  /** The Verify stage, when `verifyStep` or `verifyActions` were given. */
  public readonly verifyStage?: codepipeline.IStage;

  /** The verify build step, when `verifyStep` was given. */
  public readonly verifyBuildStep?: BuildStep;

  /** The Approve stage, with `Approval.beforeRelease()`. */
  public readonly approveStage?: codepipeline.IStage;

  /** The Release stage. */
  public readonly releaseStage: codepipeline.IStage;

  constructor(scope: Construct, id: string, props: DeliveryPipelineProps) {
    super(scope, id);
    this.approval = props.approval ?? Approval.none();
    if (props.verifyActions !== undefined && props.verifyActions.length === 0) {
      throw invalidInput(this, 'verifyActions', [], 'must list at least one action, or be left out for no Verify stage');
    }

    if (props.executionMode === codepipeline.ExecutionMode.PARALLEL) {
      throw invalidInput(this, 'executionMode', 'PARALLEL',
        'must be SUPERSEDED or QUEUED: the Release stage rolls back on failure, which CodePipeline does not allow in PARALLEL mode');
    }
    checkDuration(this, 'artifactExpiration', props.artifactExpiration, Duration.days(1), Duration.days(3650), 'days');
    const store = new ArtifactStore(this, 'Artifacts', {
      retain: props.retainArtifacts,
      expiration: props.artifactExpiration,
    });
    this.artifactBucket = store.bucket;
    this.artifactKey = store.encryptionKey;

    this.sourceOutput = new codepipeline.Artifact('Source');
    this.buildOutput = new codepipeline.Artifact('Build');
    const source = props.source.bind(this, { output: this.sourceOutput });

    this.pipeline = new codepipeline.Pipeline(this, 'Pipeline', {
      pipelineType: codepipeline.PipelineType.V2,
      artifactBucket: store.bucket,
      restartExecutionOnUpdate: false,
      executionMode: props.executionMode,
      triggers: source.trigger ? [source.trigger] : undefined,
    });
    this.notifications = new PipelineNotifications(this, 'Notifications', {
      ...props.notifications,
      pipeline: this.pipeline,
      removalPolicy: store.removalPolicy,
    });
    this.notificationTopic = this.notifications.topic;

    this.sourceStage = this.pipeline.addStage({ stageName: 'Source', actions: [source.action] });

    // Build steps share the pipeline's key and its removal policy.
    const buildStep = (stepId: string, options: BuildStepOptions = {}) => new BuildStep(this, stepId, {
      ...options,
      encryptionKey: store.encryptionKey,
      removalPolicy: store.removalPolicy,
    });
    this.buildStep = buildStep('Build', props.buildStep);
    this.buildStage = this.pipeline.addStage({
      stageName: 'Build',
      actions: [this.buildStep.pipelineAction({ actionName: 'Build', input: this.sourceOutput, outputs: [this.buildOutput] })],
    });

    const verifyActions = [...props.verifyActions ?? []];
    if (props.verifyStep) {
      this.verifyBuildStep = buildStep('Verify', props.verifyStep);
      verifyActions.unshift(this.verifyBuildStep.pipelineAction({
        actionName: 'Verify', input: this.sourceOutput, extraInputs: [this.buildOutput],
      }));
    }
    if (verifyActions.length > 0) {
      this.verifyStage = this.pipeline.addStage({ stageName: 'Verify', actions: verifyActions });
    }

    if (this.approval.placement === ApprovalPlacement.BEFORE_RELEASE) {
      // The build's history with its test reports (a link to the pipeline itself would make it reference itself).
      const reviewUrl = this.approval.reviewUrl ??
        consoleUrl(`codesuite/codebuild/${Aws.ACCOUNT_ID}/projects/${this.buildStep.project.projectName}/history`);
      const approve = this.approval.createAction({
        actionName: 'Approve',
        defaultReviewUrl: reviewUrl,
        defaultMessage: `Approve to release ${props.source.description} with ${props.release.description}. Rejecting stops this execution.`,
      });
      this.approveStage = this.pipeline.addStage({ stageName: 'Approve', actions: [approve!] });
      this.notifications.notifyOnApprovalNeeded('Approve', 'Approve', reviewUrl);
    }

    const release = props.release.bind(this, {
      pipeline: this.pipeline,
      sourceOutput: this.sourceOutput,
      buildOutput: this.buildOutput,
      approval: this.approval,
      notifications: this.notifications,
      artifactKey: store.encryptionKey,
    });
    if (this.approval.placement === ApprovalPlacement.BEFORE_PRODUCTION_TRAFFIC && !release.gatesProductionTraffic) {
      throw invalidInput(this, 'approval', 'Approval.beforeProductionTraffic()',
        `cannot be used with ${props.release.description}, which has no test endpoint to approve; use Approval.beforeRelease()`);
    }
    if (release.actions.length === 0) {
      throw invalidInput(this, 'release', props.release.description, 'must create at least one action');
    }
    this.releaseStage = this.pipeline.addStage({
      stageName: 'Release',
      actions: release.actions,
      // A failed release redeploys the revision of the last successful execution (CodePipeline V2 stage rollback).
      onFailure: { result: codepipeline.Result.ROLLBACK },
    });

    Aspects.of(this).add(new PipelineGrantAcknowledger(store.bucket, store.encryptionKey));
    pruneRedundantDependsOn(this);
  }
}
