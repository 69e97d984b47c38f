import { App, CfnElement, CfnParameter, Lazy, Stack } from 'aws-cdk-lib';
import { Capture, Match, Template } from 'aws-cdk-lib/assertions';
import * as codecommit from 'aws-cdk-lib/aws-codecommit';
import * as codepipeline from 'aws-cdk-lib/aws-codepipeline';
import * as actions from 'aws-cdk-lib/aws-codepipeline-actions';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { IConstruct } from 'constructs';
import { DeliveryPipeline } from '../../src/pipeline/delivery-pipeline';
import { Release } from '../../src/pipeline/release';
import { PipelineSource } from '../../src/source/pipeline-source';
import { CONNECTION_ARN, siteBucket } from '../util/fixtures';

const LEGACY_CONNECTION_ARN = 'arn:aws:codestar-connections:us-east-1:123456789012:connection/abc-123';
const ENV = { account: '123456789012', region: 'eu-west-1' };

function logicalId(construct: IConstruct): string {
  return Stack.of(construct).getLogicalId(construct.node.defaultChild as CfnElement);
}

/** The properties of one resource of the template, found by its construct. */
function propertiesOf(template: Template, construct: IConstruct): any {
  const resource = template.toJSON().Resources[logicalId(construct)];
  expect(resource).toBeDefined();
  return resource.Properties;
}

/** Fails with aws-cdk-lib's own mismatch report when `actual` does not match the (objectLike) pattern. */
function expectLike(actual: unknown, pattern: object): void {
  const result = Match.objectLike(pattern as { [key: string]: any }).test(actual);
  expect(result.hasFailed() ? result.renderMismatch() : 'matches').toBe('matches');
}

/** Binds a source into a minimal V2 pipeline (Source + a manual approval), the way DeliveryPipeline does. */
function pipelineWith(scope: Stack, id: string, source: PipelineSource, artifactBucket: s3.IBucket): codepipeline.Pipeline {
  const config = source.bind(scope, { output: new codepipeline.Artifact('Source') });
  const pipeline = new codepipeline.Pipeline(scope, id, {
    pipelineType: codepipeline.PipelineType.V2,
    artifactBucket,
    triggers: config.trigger ? [config.trigger] : undefined,
  });
  pipeline.addStage({ stageName: 'Source', actions: [config.action] });
  pipeline.addStage({ stageName: 'Approve', actions: [new actions.ManualApprovalAction({ actionName: 'Approve' })] });
  return pipeline;
}

function sourceActionOf(template: Template, pipeline: codepipeline.Pipeline): any {
  const stages = propertiesOf(template, pipeline).Stages;
  expect(stages[0].Name).toBe('Source');
  expect(stages[0].Actions).toHaveLength(1);
  return stages[0].Actions[0];
}

function connection(repoString: string, branch: string, options: object = {}): PipelineSource {
  return PipelineSource.connection(repoString, branch, { connectionArn: CONNECTION_ARN, ...options });
}

describe('PipelineSource.connection() in a DeliveryPipeline', () => {
  let template: Template;

  beforeAll(() => {
    const stack = new Stack(new App(), 'ConnectionPipeline', { env: ENV });
    new DeliveryPipeline(stack, 'Delivery', {
      source: connection('owner/repo', 'main'),
      release: Release.s3Bucket(siteBucket(stack)),
    });
    template = Template.fromStack(stack);
  });

  test('the pipeline is a CodePipeline V2', () => {
    template.resourcePropertiesCountIs('AWS::CodePipeline::Pipeline', { PipelineType: 'V2' }, 1);
  });

  test('the Source stage holds one CodeStarSourceConnection action on owner/repo@main with the connection ARN', () => {
    template.hasResourceProperties('AWS::CodePipeline::Pipeline', {
      Stages: Match.arrayWith([{
        Name: 'Source',
        Actions: [Match.objectLike({
          Name: 'Source',
          ActionTypeId: { Category: 'Source', Owner: 'AWS', Provider: 'CodeStarSourceConnection', Version: '1' },
          Configuration: {
            FullRepositoryId: 'owner/repo',
            BranchName: 'main',
            ConnectionArn: CONNECTION_ARN,
            DetectChanges: true,
            OutputArtifactFormat: Match.absent(),
          },
          OutputArtifacts: [{ Name: 'Source' }],
        })],
      }]),
    });
  });

  test('the Build stage reads the artifact the source writes', () => {
    template.hasResourceProperties('AWS::CodePipeline::Pipeline', {
      Stages: Match.arrayWith([Match.objectLike({
        Name: 'Build',
        Actions: [Match.objectLike({ InputArtifacts: [{ Name: 'Source' }] })],
      })]),
    });
  });

  test('one push trigger on the connection filters on the source branch only', () => {
    const triggers = new Capture();
    template.hasResourceProperties('AWS::CodePipeline::Pipeline', { Triggers: triggers });
    expect(triggers.asArray()).toEqual([{
      ProviderType: 'CodeStarSourceConnection',
      GitConfiguration: {
        SourceActionName: 'Source',
        Push: [{ Branches: { Includes: ['main'] } }],
      },
    }]);
  });

  test('only the pipeline\'s source action role may use the connection: no full clone, so the build role may not', () => {
    const useConnection = Match.objectLike({ Action: 'codestar-connections:UseConnection', Resource: CONNECTION_ARN });
    const policies = template.findResources('AWS::IAM::Policy', {
      Properties: { PolicyDocument: { Statement: Match.arrayWith([useConnection]) } },
    });
    expect(Object.keys(policies)).toHaveLength(1);
    expect(Object.keys(policies)[0]).toMatch(/SourceCodePipelineActionRole/);
  });
});

describe('PipelineSource bound to a pipeline', () => {
  let template: Template;
  let filtered: codepipeline.Pipeline;
  let noPush: codepipeline.Pipeline;
  let parameterArn: codepipeline.Pipeline;
  let lazyArn: codepipeline.Pipeline;
  let gitLab: codepipeline.Pipeline;
  let codeCommit: codepipeline.Pipeline;
  let codeCommitQuiet: codepipeline.Pipeline;
  let repository: codecommit.Repository;
  let quietRepository: codecommit.Repository;
  let s3Source: codepipeline.Pipeline;
  let s3Quiet: codepipeline.Pipeline;
  let releases: s3.Bucket;
  let quietReleases: s3.Bucket;

  beforeAll(() => {
    const stack = new Stack(new App(), 'BoundSources', { env: ENV });
    const artifacts = new s3.Bucket(stack, 'Artifacts');

    filtered = pipelineWith(stack, 'Filtered', connection('owner/repo', 'main', {
      triggerBranches: ['main', 'release/*'],
      triggerTags: ['v*'],
      triggerFilePaths: ['src/**', 'package.json'],
      ignoreFilePaths: ['docs/**'],
      fullClone: true,
    }), artifacts);
    noPush = pipelineWith(stack, 'NoPush', connection('owner/quiet', 'main', { triggerOnPush: false }), artifacts);
    const arnParameter = new CfnParameter(stack, 'ConnectionArn', { type: 'String' });
    parameterArn = pipelineWith(stack, 'ParameterArn',
      PipelineSource.connection('owner/param', 'develop', { connectionArn: arnParameter.valueAsString }), artifacts);
    lazyArn = pipelineWith(stack, 'LazyArn',
      PipelineSource.connection('owner/lazy', 'main', { connectionArn: Lazy.string({ produce: () => LEGACY_CONNECTION_ARN }) }), artifacts);
    gitLab = pipelineWith(stack, 'GitLab', connection('group/subgroup/repo', 'trunk'), artifacts);

    repository = new codecommit.Repository(stack, 'Repo', { repositoryName: 'app' });
    quietRepository = new codecommit.Repository(stack, 'QuietRepo', { repositoryName: 'quiet-app' });
    codeCommit = pipelineWith(stack, 'CodeCommit', PipelineSource.codeCommit(repository, 'main'), artifacts);
    codeCommitQuiet = pipelineWith(stack, 'CodeCommitQuiet',
      PipelineSource.codeCommit(quietRepository, 'main', { triggerOnPush: false }), artifacts);

    releases = new s3.Bucket(stack, 'Releases', { versioned: true });
    quietReleases = new s3.Bucket(stack, 'QuietReleases', { versioned: true });
    s3Source = pipelineWith(stack, 'S3', PipelineSource.s3(releases, 'releases/app.zip'), artifacts);
    s3Quiet = pipelineWith(stack, 'S3Quiet', PipelineSource.s3(quietReleases, 'app.zip', { triggerOnUpload: false }), artifacts);

    template = Template.fromStack(stack);
  });

  describe('connection()', () => {
    test('every pipeline is V2', () => {
      template.resourcePropertiesCountIs('AWS::CodePipeline::Pipeline', { PipelineType: 'V2' }, 9);
    });

    test('branch, file path and tag filters render, tags as a push filter of their own', () => {
      expect(propertiesOf(template, filtered).Triggers).toEqual([{
        ProviderType: 'CodeStarSourceConnection',
        GitConfiguration: {
          SourceActionName: 'Source',
          Push: [
            {
              Branches: { Includes: ['main', 'release/*'] },
              FilePaths: { Includes: ['src/**', 'package.json'], Excludes: ['docs/**'] },
            },
            { Tags: { Includes: ['v*'] } },
          ],
        },
      }]);
    });

    test('fullClone hands the build a git clone (CODEBUILD_CLONE_REF)', () => {
      expectLike(sourceActionOf(template, filtered), {
        Configuration: { FullRepositoryId: 'owner/repo', BranchName: 'main', OutputArtifactFormat: 'CODEBUILD_CLONE_REF' },
      });
    });

    test('triggerOnPush: false leaves the pipeline without Triggers and the action without change detection', () => {
      expect(propertiesOf(template, noPush).Triggers).toBeUndefined();
      expectLike(sourceActionOf(template, noPush), {
        ActionTypeId: { Provider: 'CodeStarSourceConnection' },
        Configuration: { FullRepositoryId: 'owner/quiet', DetectChanges: false },
      });
    });

    test('a CfnParameter connection ARN is passed through as a Ref', () => {
      expectLike(sourceActionOf(template, parameterArn), {
        Configuration: { ConnectionArn: { Ref: 'ConnectionArn' }, FullRepositoryId: 'owner/param', BranchName: 'develop' },
      });
      expect(propertiesOf(template, parameterArn).Triggers[0].GitConfiguration.Push).toEqual([{ Branches: { Includes: ['develop'] } }]);
    });

    test('a Lazy connection ARN renders what it produces', () => {
      expectLike(sourceActionOf(template, lazyArn), {
        Configuration: { ConnectionArn: LEGACY_CONNECTION_ARN, FullRepositoryId: 'owner/lazy' },
      });
    });

    test('a GitLab group/subgroup/repo is kept whole as FullRepositoryId', () => {
      expectLike(sourceActionOf(template, gitLab), {
        Configuration: { FullRepositoryId: 'group/subgroup/repo', BranchName: 'trunk' },
      });
    });
  });

  describe('codeCommit()', () => {
    test('the action reads the branch of the repository without polling', () => {
      expectLike(sourceActionOf(template, codeCommit), {
        ActionTypeId: { Category: 'Source', Owner: 'AWS', Provider: 'CodeCommit' },
        Configuration: {
          RepositoryName: { 'Fn::GetAtt': [logicalId(repository), 'Name'] },
          BranchName: 'main',
          PollForSourceChanges: false,
        },
      });
    });

    test('a CodeCommit source needs no V2 trigger: the EventBridge rule starts the pipeline', () => {
      expect(propertiesOf(template, codeCommit).Triggers).toBeUndefined();
    });

    test('an EventBridge rule on the repository\'s branch starts the pipeline', () => {
      template.hasResourceProperties('AWS::Events::Rule', {
        EventPattern: {
          'source': ['aws.codecommit'],
          'resources': [{ 'Fn::GetAtt': [logicalId(repository), 'Arn'] }],
          'detail-type': ['CodeCommit Repository State Change'],
          'detail': { referenceName: ['main'] },
        },
        Targets: [Match.objectLike({
          Arn: { 'Fn::Join': ['', Match.arrayWith([{ Ref: logicalId(codeCommit) }])] },
        })],
      });
    });

    test('triggerOnPush: false creates no rule and does not poll either', () => {
      const rulesOn = (repo: codecommit.Repository) => Object.keys(template.findResources('AWS::Events::Rule', {
        Properties: { EventPattern: { resources: [{ 'Fn::GetAtt': [logicalId(repo), 'Arn'] }] } },
      }));
      expect(rulesOn(repository)).toHaveLength(1);
      expect(rulesOn(quietRepository)).toEqual([]);
      expectLike(sourceActionOf(template, codeCommitQuiet), {
        Configuration: { BranchName: 'main', PollForSourceChanges: false },
      });
    });
  });

  describe('s3()', () => {
    test('the action reads the object key from the bucket without polling', () => {
      expectLike(sourceActionOf(template, s3Source), {
        ActionTypeId: { Category: 'Source', Owner: 'AWS', Provider: 'S3' },
        Configuration: {
          S3Bucket: { Ref: logicalId(releases) },
          S3ObjectKey: 'releases/app.zip',
          PollForSourceChanges: false,
        },
      });
    });

    test('an EventBridge rule on writes of that key starts the pipeline', () => {
      template.hasResourceProperties('AWS::Events::Rule', {
        EventPattern: {
          source: ['aws.s3'],
          detail: Match.objectLike({
            requestParameters: Match.objectLike({
              bucketName: [{ Ref: logicalId(releases) }],
              key: ['releases/app.zip'],
            }),
          }),
        },
        Targets: [Match.objectLike({
          Arn: { 'Fn::Join': ['', Match.arrayWith([{ Ref: logicalId(s3Source) }])] },
        })],
      });
    });

    test('triggerOnUpload: false creates no rule for the bucket', () => {
      const rulesOn = (bucket: s3.Bucket) => Object.keys(template.findResources('AWS::Events::Rule', {
        Properties: { EventPattern: { detail: { requestParameters: { bucketName: [{ Ref: logicalId(bucket) }] } } } },
      }));
      expect(rulesOn(releases)).toHaveLength(1);
      expect(rulesOn(quietReleases)).toEqual([]);
      expectLike(sourceActionOf(template, s3Quiet), {
        Configuration: { S3ObjectKey: 'app.zip', PollForSourceChanges: false },
      });
    });
  });
});

describe('PipelineSource.description', () => {
  const stack = new Stack();

  test('connection() reads owner/repo@branch', () => {
    expect(connection('owner/repo', 'main').description).toBe('owner/repo@main');
    expect(connection('group/subgroup/repo', 'release/1.x').description).toBe('group/subgroup/repo@release/1.x');
  });

  test('codeCommit() reads repository@branch', () => {
    const repository = codecommit.Repository.fromRepositoryName(stack, 'Imported', 'my-repo');
    expect(PipelineSource.codeCommit(repository, 'main').description).toBe('my-repo@main');
  });

  test('s3() reads as an s3:// URL of the object', () => {
    const bucket = s3.Bucket.fromBucketName(stack, 'Bucket', 'my-releases');
    expect(PipelineSource.s3(bucket, 'releases/app.zip').description).toBe('s3://my-releases/releases/app.zip');
  });
});

describe('PipelineSource bad input', () => {
  test.each(['triggerBranches', 'triggerTags', 'triggerFilePaths', 'ignoreFilePaths'])(
    'connection() refuses %s with triggerOnPush: false, which would drop the filter silently', (filter) => {
      expect(() => connection('owner/repo', 'main', { triggerOnPush: false, [filter]: ['x'] }))
        .toThrow(new RegExp(`'${filter}' cannot be used with 'triggerOnPush: false'`));
    });

  test('connection() rejects a token repoString: owner and repository are split at synth time', () => {
    expect(() => connection(Lazy.string({ produce: () => 'owner/repo' }), 'main')).toThrow(/'repoString' must be a literal 'owner\/repo'.*not a token/);
  });

  const stack = new Stack();
  const repository = codecommit.Repository.fromRepositoryName(stack, 'Repo', 'app');
  const bucket = s3.Bucket.fromBucketName(stack, 'Bucket', 'releases');

  test.each(['ownerrepo', 'owner/', '/repo', 'owner/my repo'])('connection() rejects repoString %p, which is not owner/repo', (repoString) => {
    expect(() => connection(repoString, 'main')).toThrow(/PipelineSource\.connection: 'repoString' must be a literal 'owner\/repo'/);
    expect(() => connection(repoString, 'main')).toThrow(`got '${repoString}'`);
  });

  test.each(['', '  '])('connection() rejects the empty branch %p', (branch) => {
    expect(() => connection('owner/repo', branch)).toThrow(/'branch' must not be empty/);
    expect(() => connection('owner/repo', branch)).toThrow(`got '${branch}'`);
  });

  test.each([
    'not-an-arn',
    'arn:aws:s3:::bucket',
    'arn:aws:codeconnections:eu-west-1:123456789012:host/abc-123',
    'arn:aws:codeconnections:eu-west-1:12345:connection/abc-123',
  ])('connection() rejects connectionArn %p, which is not a connection ARN', (connectionArn) => {
    const create = () => PipelineSource.connection('owner/repo', 'main', { connectionArn });
    expect(create).toThrow(/'connectionArn' must be a CodeConnections connection ARN/);
    expect(create).toThrow(`got '${connectionArn}'`);
  });

  test('connection() accepts codeconnections and legacy codestar-connections ARNs in any partition', () => {
    for (const connectionArn of [
      CONNECTION_ARN,
      LEGACY_CONNECTION_ARN,
      'arn:aws-cn:codeconnections:cn-north-1:123456789012:connection/abc',
      'arn:aws-us-gov:codestar-connections:us-gov-west-1:123456789012:connection/abc',
    ]) {
      expect(PipelineSource.connection('owner/repo', 'main', { connectionArn }).description).toBe('owner/repo@main');
    }
  });

  test.each(['triggerBranches', 'triggerTags', 'triggerFilePaths', 'ignoreFilePaths'])('connection() rejects an empty %s list', (property) => {
    const create = () => connection('owner/repo', 'main', { [property]: [] });
    expect(create).toThrow(new RegExp(`'${property}' must list 1 to 8 glob patterns, got \\[\\]`));
  });

  test.each(['triggerBranches', 'triggerTags', 'triggerFilePaths', 'ignoreFilePaths'])('connection() rejects 9 %s patterns, more than the 8 CodePipeline allows', (property) => {
    const patterns = ['p1', 'p2', 'p3', 'p4', 'p5', 'p6', 'p7', 'p8', 'p9'];
    const create = () => connection('owner/repo', 'main', { [property]: patterns });
    expect(create).toThrow(new RegExp(`'${property}' must list 1 to 8 glob patterns`));
    expect(create).toThrow(JSON.stringify(patterns));
  });

  test('connection() accepts exactly 8 patterns', () => {
    const patterns = ['p1', 'p2', 'p3', 'p4', 'p5', 'p6', 'p7', 'p8'];
    expect(connection('owner/repo', 'main', { triggerTags: patterns }).description).toBe('owner/repo@main');
  });

  test('connection() rejects a blank pattern inside a filter list', () => {
    expect(() => connection('owner/repo', 'main', { ignoreFilePaths: ['docs/**', ' '] })).toThrow(/'ignoreFilePaths' must not be empty, got ' '/);
  });

  test.each(['', '  '])('codeCommit() rejects the empty branch %p', (branch) => {
    expect(() => PipelineSource.codeCommit(repository, branch)).toThrow(/PipelineSource\.codeCommit: 'branch' must not be empty/);
    expect(() => PipelineSource.codeCommit(repository, branch)).toThrow(`got '${branch}'`);
  });

  test('s3() rejects the key app.tar.gz, which is not a zip file', () => {
    expect(() => PipelineSource.s3(bucket, 'app.tar.gz')).toThrow(/PipelineSource\.s3: 'key' must be the key of a zip file/);
    expect(() => PipelineSource.s3(bucket, 'app.tar.gz')).toThrow("got 'app.tar.gz'");
  });

  test('s3() rejects the key /app.zip, whose leading / S3 keys do not have', () => {
    expect(() => PipelineSource.s3(bucket, '/app.zip')).toThrow(/'key' must be the key of a zip file.*no leading '\/'.*got '\/app\.zip'/);
  });

  test.each(['', ' '])('s3() rejects the empty key %p', (key) => {
    expect(() => PipelineSource.s3(bucket, key)).toThrow(/'key' must not be empty/);
  });

  test('s3() refuses, when bound, a bucket of the app without versioning (CodePipeline would fail at the first run)', () => {
    const own = new Stack(new App(), 'Unversioned');
    const plain = new s3.Bucket(own, 'Plain');
    expect(() => PipelineSource.s3(plain, 'app.zip').bind(own, { output: new codepipeline.Artifact('Source') }))
      .toThrow(/PipelineSource\.s3: 'bucket' must be versioned \(versioned: true\).*got 'Unversioned\/Plain'/);
    const versioned = new s3.Bucket(own, 'Versioned', { versioned: true });
    expect(() => PipelineSource.s3(versioned, 'app.zip').bind(own, { output: new codepipeline.Artifact('Source') })).not.toThrow();
  });

  test('connection() refuses a branch git refuses and a glob, pointing to triggerBranches', () => {
    expect(() => connection('owner/repo', 'my branch')).toThrow(/'branch' must be a branch name git accepts.*got 'my branch'/);
    expect(() => connection('owner/repo', 'feature/*')).toThrow(/'branch' must be one branch, not a glob.*'triggerBranches'/);
  });
});
