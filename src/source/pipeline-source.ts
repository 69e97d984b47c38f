import { Stack, Token } from 'aws-cdk-lib';
import * as codecommit from 'aws-cdk-lib/aws-codecommit';
import * as codepipeline from 'aws-cdk-lib/aws-codepipeline';
import * as actions from 'aws-cdk-lib/aws-codepipeline-actions';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';
import { checkBranchName, checkNotEmpty, invalidInput } from '../private/validate';

/**
 * Options for a source that lives in GitHub, GitLab or Bitbucket and is reached through AWS CodeConnections.
 */
export interface ConnectionSourceOptions {
  /**
   * The ARN of the CodeConnections (formerly CodeStar Connections) connection to the provider.
   *
   * Create and authorize the connection once in the console; it cannot be authorized from CloudFormation.
   */
  readonly connectionArn: string;

  /**
   * Start the pipeline when a matching push arrives.
   *
   * @default true
   */
  readonly triggerOnPush?: boolean;

  /**
   * Glob patterns of the branches whose pushes start the pipeline (at most 8).
   *
   * @default - only the source branch
   */
  readonly triggerBranches?: string[];

  /**
   * Glob patterns of git tags whose pushes also start the pipeline (at most 8).
   *
   * @default - pushing a tag does not start the pipeline
   */
  readonly triggerTags?: string[];

  /**
   * Glob patterns of file paths: a push starts the pipeline only when it changes one of them (at most 8).
   *
   * @default - a change to any file starts the pipeline
   */
  readonly triggerFilePaths?: string[];

  /**
   * Glob patterns of file paths whose changes alone never start the pipeline (at most 8), for example `docs/**`.
   *
   * @default - no path is excluded
   */
  readonly ignoreFilePaths?: string[];

  /**
   * Hand the build a full git clone instead of a zip of the revision, so that it can read the git history.
   *
   * The build role is then allowed to use the connection.
   *
   * @default false
   */
  readonly fullClone?: boolean;
}

/**
 * Options for a source in an AWS CodeCommit repository.
 */
export interface CodeCommitSourceOptions {
  /**
   * Start the pipeline when the branch changes (through an EventBridge rule).
   *
   * @default true
   */
  readonly triggerOnPush?: boolean;
}

/**
 * Options for a source that is a zip file in Amazon S3.
 */
export interface S3SourceOptions {
  /**
   * Start the pipeline when a new version of the object is written.
   *
   * Uses an EventBridge rule, which needs a CloudTrail trail that records data events for the bucket.
   *
   * @default true
   */
  readonly triggerOnUpload?: boolean;
}

/**
 * What a pipeline needs to know when it adds a source.
 */
export interface SourceBindOptions {
  /**
   * The artifact the source action writes the revision into.
   */
  readonly output: codepipeline.Artifact;
}

/**
 * A source, bound to a pipeline.
 */
export interface SourceConfig {
  /**
   * The action of the Source stage.
   */
  readonly action: codepipeline.IAction;

  /**
   * The V2 pipeline trigger with its filters.
   *
   * @default - the action starts the pipeline itself (or does not start it at all)
   */
  readonly trigger?: codepipeline.TriggerProps;
}

/**
 * Where the revisions a pipeline delivers come from.
 *
 * Use one of the static factories: `connection()` for GitHub, GitLab or Bitbucket, `codeCommit()` or `s3()`.
 */
export abstract class PipelineSource {
  /**
   * A repository on GitHub, GitLab or Bitbucket, reached through an AWS CodeConnections connection.
   *
   * The pipeline is a V2 pipeline with a push trigger; branches, tags and file paths filter which pushes start it.
   *
   * @param repoString the repository as `owner/repo`
   * @param branch the branch to deliver
   */
  public static connection(repoString: string, branch: string, options: ConnectionSourceOptions): PipelineSource {
    return new ConnectionSource(repoString, branch, options);
  }

  /**
   * A branch of an AWS CodeCommit repository.
   */
  public static codeCommit(repository: codecommit.IRepository, branch: string, options: CodeCommitSourceOptions = {}): PipelineSource {
    return new CodeCommitSource(repository, branch, options);
  }

  /**
   * A zip file in an Amazon S3 bucket. The bucket must be versioned.
   *
   * @param bucket the versioned bucket holding the zip
   * @param key the object key, ending in `.zip`
   */
  public static s3(bucket: s3.IBucket, key: string, options: S3SourceOptions = {}): PipelineSource {
    return new S3Source(bucket, key, options);
  }

  /**
   * A readable name of the source, for notifications and the console (`owner/repo@branch`, ...).
   */
  public abstract readonly description: string;

  /**
   * Creates the source action (and trigger) for a pipeline.
   */
  public abstract bind(scope: Construct, options: SourceBindOptions): SourceConfig;
}

const CONNECTION_ARN = /^arn:aws[a-z-]*:(codestar-connections|codeconnections):[a-z0-9-]+:\d{12}:connection\/[A-Za-z0-9-]+$/;
const REPO_STRING = /^[^/\s]+\/[^\s]+$/;
const MAX_FILTER_PATTERNS = 8;

class ConnectionSource extends PipelineSource {
  public readonly description: string;
  private readonly owner: string;
  private readonly repo: string;

  constructor(repoString: string, private readonly branch: string, private readonly options: ConnectionSourceOptions) {
    super();
    const where = 'PipelineSource.connection';
    // Owner and repository are split at synth time, so a token cannot be accepted here.
    if (Token.isUnresolved(repoString) || !REPO_STRING.test(repoString)) {
      throw invalidInput(where, 'repoString', repoString, "must be a literal 'owner/repo' (GitLab groups as 'group/subgroup/repo'), not a token");
    }
    checkBranchName(where, 'branch', branch);
    if (!Token.isUnresolved(options.connectionArn) && !CONNECTION_ARN.test(options.connectionArn)) {
      throw invalidInput(where, 'connectionArn', options.connectionArn,
        "must be a CodeConnections connection ARN like 'arn:aws:codeconnections:us-east-1:123456789012:connection/<id>'");
    }
    for (const [property, patterns] of Object.entries({
      triggerBranches: options.triggerBranches,
      triggerTags: options.triggerTags,
      triggerFilePaths: options.triggerFilePaths,
      ignoreFilePaths: options.ignoreFilePaths,
    })) {
      if (patterns === undefined) continue;
      if (patterns.length === 0 || patterns.length > MAX_FILTER_PATTERNS) {
        throw invalidInput(where, property, patterns, `must list 1 to ${MAX_FILTER_PATTERNS} glob patterns`);
      }
      patterns.forEach((p) => checkNotEmpty(where, property, p));
    }
    if (options.triggerOnPush === false) {
      const filters = ['triggerBranches', 'triggerTags', 'triggerFilePaths', 'ignoreFilePaths'] as const;
      const given = filters.find((f) => options[f] !== undefined);
      if (given) {
        throw invalidInput(where, given, options[given], "cannot be used with 'triggerOnPush: false', which starts the pipeline on no push");
      }
    }
    const slash = repoString.indexOf('/');
    this.owner = repoString.slice(0, slash);
    this.repo = repoString.slice(slash + 1);
    this.description = `${repoString}@${branch}`;
  }

  public bind(_scope: Construct, options: SourceBindOptions): SourceConfig {
    const triggerOnPush = this.options.triggerOnPush ?? true;
    const action = new actions.CodeStarConnectionsSourceAction({
      actionName: 'Source',
      owner: this.owner,
      repo: this.repo,
      branch: this.branch,
      connectionArn: this.options.connectionArn,
      output: options.output,
      triggerOnPush,
      codeBuildCloneOutput: this.options.fullClone ?? false,
    });
    if (!triggerOnPush) {
      return { action };
    }
    const pushFilter: codepipeline.GitPushFilter[] = [{
      branchesIncludes: this.options.triggerBranches ?? [this.branch],
      filePathsIncludes: this.options.triggerFilePaths,
      filePathsExcludes: this.options.ignoreFilePaths,
    }];
    if (this.options.triggerTags) {
      pushFilter.push({ tagsIncludes: this.options.triggerTags });
    }
    return {
      action,
      trigger: {
        providerType: codepipeline.ProviderType.CODE_STAR_SOURCE_CONNECTION,
        gitConfiguration: { sourceAction: action, pushFilter },
      },
    };
  }
}

class CodeCommitSource extends PipelineSource {
  public readonly description: string;

  constructor(
    private readonly repository: codecommit.IRepository,
    private readonly branch: string,
    private readonly options: CodeCommitSourceOptions) {
    super();
    checkBranchName('PipelineSource.codeCommit', 'branch', branch);
    this.description = `${repository.repositoryName}@${branch}`;
  }

  public bind(_scope: Construct, options: SourceBindOptions): SourceConfig {
    return {
      action: new actions.CodeCommitSourceAction({
        actionName: 'Source',
        repository: this.repository,
        branch: this.branch,
        output: options.output,
        trigger: (this.options.triggerOnPush ?? true) ? actions.CodeCommitTrigger.EVENTS : actions.CodeCommitTrigger.NONE,
      }),
    };
  }
}

class S3Source extends PipelineSource {
  public readonly description: string;

  constructor(private readonly bucket: s3.IBucket, private readonly key: string, private readonly options: S3SourceOptions) {
    super();
    const where = 'PipelineSource.s3';
    checkNotEmpty(where, 'key', key);
    if (!Token.isUnresolved(key) && (!key.endsWith('.zip') || key.startsWith('/'))) {
      throw invalidInput(where, 'key', key, "must be the key of a zip file, like 'releases/app.zip' (no leading '/')");
    }
    this.description = `s3://${bucket.bucketName}/${key}`;
  }

  public bind(_scope: Construct, options: SourceBindOptions): SourceConfig {
    // A bucket of this app can be checked: CodePipeline's S3 source reads object versions, and fails at the first run
    // on a bucket without versioning.
    const bucket = this.bucket.node.defaultChild;
    if (bucket instanceof s3.CfnBucket && (Stack.of(bucket).resolve(bucket.versioningConfiguration) as { status?: string } | undefined)?.status !== 'Enabled') {
      throw invalidInput('PipelineSource.s3', 'bucket', this.bucket.node.path, "must be versioned (versioned: true): CodePipeline's S3 source reads object versions");
    }
    return {
      action: new actions.S3SourceAction({
        actionName: 'Source',
        bucket: this.bucket,
        bucketKey: this.key,
        output: options.output,
        trigger: (this.options.triggerOnUpload ?? true) ? actions.S3Trigger.EVENTS : actions.S3Trigger.NONE,
      }),
    };
  }
}
