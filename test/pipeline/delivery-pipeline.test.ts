import { App, Duration, NestedStack, Stack, Validations } from 'aws-cdk-lib';
import { Capture, Match, Template } from 'aws-cdk-lib/assertions';
import * as codebuild from 'aws-cdk-lib/aws-codebuild';
import * as codepipeline from 'aws-cdk-lib/aws-codepipeline';
import * as actions from 'aws-cdk-lib/aws-codepipeline-actions';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';
import { Approval, ArtifactStore, BuildArchitecture, DeliveryPipeline, PipelineSource, Release, ReleaseConfig, ReleaseContext, SmokeTest } from '../../src';
import { checkApp, describeFailures } from '../compliance/harness';
import { CONNECTION_ARN, flatten, siteBucket } from '../util/fixtures';

function source() {
  return PipelineSource.connection('acme/site', 'main', { connectionArn: CONNECTION_ARN });
}

describe('DeliveryPipeline with defaults', () => {
  const app = new App();
  const stack = new Stack(app, 'Defaults');
  const site = siteBucket(stack);
  const delivery = new DeliveryPipeline(stack, 'Delivery', { source: source(), release: Release.s3Bucket(site) });
  const template = Template.fromStack(stack);
  const artifactBucketId = stack.getLogicalId(delivery.artifactBucket.node.defaultChild as s3.CfnBucket);

  test('is a V2 pipeline with Source, Build and Release in that order', () => {
    const stages = new Capture();
    template.hasResourceProperties('AWS::CodePipeline::Pipeline', {
      PipelineType: 'V2',
      Stages: stages,
      RestartExecutionOnUpdate: false,
    });
    expect(stages.asArray().map((s: any) => s.Name)).toEqual(['Source', 'Build', 'Release']);
  });

  test('rolls the Release stage back to the last successful execution when it fails', () => {
    template.hasResourceProperties('AWS::CodePipeline::Pipeline', {
      Stages: Match.arrayWith([Match.objectLike({ Name: 'Release', OnFailure: { Result: 'ROLLBACK' } })]),
    });
  });

  test('stores artifacts in its own bucket, encrypted with its own rotating key', () => {
    template.hasResourceProperties('AWS::CodePipeline::Pipeline', {
      ArtifactStore: { Type: 'S3', Location: { Ref: artifactBucketId } },
    });
    template.hasResourceProperties('AWS::S3::Bucket', {
      BucketEncryption: {
        ServerSideEncryptionConfiguration: [{
          ServerSideEncryptionByDefault: { SSEAlgorithm: 'aws:kms', KMSMasterKeyID: Match.anyValue() },
          BucketKeyEnabled: true,
        }],
      },
      VersioningConfiguration: { Status: 'Enabled' },
      PublicAccessBlockConfiguration: {
        BlockPublicAcls: true, BlockPublicPolicy: true, IgnorePublicAcls: true, RestrictPublicBuckets: true,
      },
      LifecycleConfiguration: {
        Rules: [Match.objectLike({
          Status: 'Enabled',
          ExpirationInDays: 30,
          NoncurrentVersionExpiration: { NoncurrentDays: 1 },
          AbortIncompleteMultipartUpload: { DaysAfterInitiation: 1 },
        })],
      },
    });
    template.hasResourceProperties('AWS::KMS::Key', {
      EnableKeyRotation: true,
      Description: Match.stringLikeRegexp('pipeline artifacts'),
    });
  });

  test('denies every request to the artifact bucket that is not over TLS', () => {
    template.hasResourceProperties('AWS::S3::BucketPolicy', {
      Bucket: { Ref: artifactBucketId },
      PolicyDocument: {
        Statement: Match.arrayWith([Match.objectLike({
          Effect: 'Deny',
          Action: 's3:*',
          Condition: { Bool: { 'aws:SecureTransport': 'false' } },
        })]),
      },
    });
  });

  test('leaves nothing behind on cdk destroy: bucket emptied and deleted, key scheduled for deletion', () => {
    template.hasResource('AWS::S3::Bucket', {
      Properties: Match.objectLike({ VersioningConfiguration: { Status: 'Enabled' } }),
      DeletionPolicy: 'Delete',
      UpdateReplacePolicy: 'Delete',
    });
    template.hasResourceProperties('Custom::S3AutoDeleteObjects', { BucketName: { Ref: artifactBucketId } });
    template.hasResource('AWS::KMS::Key', {
      Properties: Match.objectLike({ PendingWindowInDays: 7 }),
      DeletionPolicy: 'Delete',
    });
  });

  test('keeps nothing on cdk destroy: no resource of the default stack is retained', () => {
    const retained = Object.entries(template.toJSON().Resources)
      .filter(([, r]: [string, any]) => r.DeletionPolicy === 'Retain' || r.UpdateReplacePolicy === 'Retain')
      .map(([id]) => id);
    expect(retained).toEqual([]);
  });

  test('builds with the source buildspec and hands it the pipeline execution id', () => {
    template.hasResourceProperties('AWS::CodeBuild::Project', {
      Source: { Type: 'CODEPIPELINE', BuildSpec: 'buildspec.yml' },
    });
    template.hasResourceProperties('AWS::CodePipeline::Pipeline', {
      Stages: Match.arrayWith([Match.objectLike({
        Name: 'Build',
        Actions: [Match.objectLike({
          ActionTypeId: Match.objectLike({ Provider: 'CodeBuild' }),
          Configuration: Match.objectLike({
            EnvironmentVariables: Match.stringLikeRegexp('PIPELINE_EXECUTION_ID.*#\\{codepipeline.PipelineExecutionId\\}'),
          }),
          OutputArtifacts: [{ Name: 'Build' }],
        })],
      })]),
    });
  });

  test('has no Approve or Verify stage and no manual approval action', () => {
    const stages = new Capture();
    template.hasResourceProperties('AWS::CodePipeline::Pipeline', { Stages: stages });
    const categories = stages.asArray().flatMap((s: any) => s.Actions.map((a: any) => a.ActionTypeId.Category));
    expect(categories).not.toContain('Approval');
  });

  test('notifies failures and successes in readable text on an encrypted, SSL-only topic', () => {
    const topicId = stack.getLogicalId(delivery.notificationTopic.node.defaultChild as any);
    template.hasResourceProperties('AWS::SNS::Topic', { KmsMasterKeyId: Match.anyValue() });
    template.hasResourceProperties('AWS::SNS::TopicPolicy', {
      PolicyDocument: {
        Statement: Match.arrayWith([Match.objectLike({
          Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } },
        })]),
      },
    });
    // The readable messages come from DeliveryMetrics (on by default; test/monitoring/delivery-metrics.test.ts checks
    // them and the short texts of `deliveryMetrics: false`).
    template.hasResourceProperties('AWS::Events::Rule', {
      EventPattern: Match.objectLike({
        'detail-type': ['CodePipeline Pipeline Execution State Change'],
        'detail': { state: ['SUCCEEDED', 'FAILED'] },
      }),
      Targets: [Match.objectLike({
        Arn: { 'Fn::GetAtt': [stack.getLogicalId(delivery.deliveryMetrics!.handler.node.defaultChild as any), 'Arn'] },
        DeadLetterConfig: Match.objectLike({ Arn: Match.anyValue() }),
      })],
    });
    template.hasResourceProperties('AWS::Lambda::Function', { Environment: { Variables: Match.objectLike({ TOPIC_ARN: { Ref: topicId } }) } });
  });

  test('exposes what it created', () => {
    expect(delivery.pipeline).toBeInstanceOf(codepipeline.Pipeline);
    expect(delivery.buildStep.project).toBeInstanceOf(codebuild.PipelineProject);
    expect(delivery.notifications.deadLetterQueue).toBeDefined();
    expect(delivery.releaseStage.stageName).toBe('Release');
    expect(delivery.approval.placement).toBe('NONE');
  });

  test('passes cdk-nag and the CloudFormation validator with zero findings', () => {
    const [report] = checkApp(app);
    expect(describeFailures(report)).toBe('Defaults: clean');
  });
});

describe('DeliveryPipeline with overrides', () => {
  const app = new App();
  const stack = new Stack(app, 'Overrides', { env: { account: '123456789012', region: 'eu-west-1' } });
  const site = siteBucket(stack);
  const verifyProject = new codebuild.PipelineProject(stack, 'Verify');
  let delivery: DeliveryPipeline;
  delivery = new DeliveryPipeline(stack, 'Delivery', {
    source: source(),
    release: Release.s3Bucket(site, {
      objectKey: 'www',
      smokeTest: new SmokeTest(stack, 'SiteSmokeTest', { baseUrl: 'https://www.example.com', expectedPhrase: 'Welcome' }),
    }),
    approval: Approval.beforeRelease({ timeout: Duration.hours(4), message: 'Check the report', reviewUrl: 'https://review.example.com' }),
    retainArtifacts: true,
    artifactExpiration: Duration.days(90),
    executionMode: codepipeline.ExecutionMode.QUEUED,
    verifyStep: { architecture: BuildArchitecture.X86_64, buildSpec: codebuild.BuildSpec.fromObject({ version: '0.2', phases: { build: { commands: ['npm run integ'] } } }) },
    verifyActions: [new actions.CodeBuildAction({
      actionName: 'IntegrationTests',
      project: verifyProject,
      input: new codepipeline.Artifact('Build'),
    })],
    notifications: { emails: ['ops@example.com'], slackWorkspaceId: 'T0123ABCD', slackChannelId: 'C0123ABCD' },
  });
  // A project the user brings into the Verify stage is the user's to acknowledge, like any CodeBuild project.
  const idOf = (c: any) => stack.resolve(stack.getLogicalId(c.node.defaultChild));
  Validations.of(verifyProject).acknowledge(...[
    'AwsSolutions-CB4',
    `AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:logs:eu-west-1:123456789012:log-group:/aws/codebuild/<${idOf(verifyProject)}>:*]`,
    `AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:codebuild:eu-west-1:123456789012:report-group/<${idOf(verifyProject)}>-*]`,
    'AwsSolutions-IAM5[Action::s3:GetObject*]',
    'AwsSolutions-IAM5[Action::s3:GetBucket*]',
    'AwsSolutions-IAM5[Action::s3:List*]',
    `AwsSolutions-IAM5[Resource::<${idOf(delivery.artifactBucket)}.Arn>/*]`,
    'AwsSolutions-IAM5[Action::kms:ReEncrypt*]',
    'AwsSolutions-IAM5[Action::kms:GenerateDataKey*]',
  ].map((id) => ({ id, reason: 'Test fixture: the verify project stands for one a user brings, with aws-cdk-lib default grants.' })));
  const template = Template.fromStack(stack);

  test('orders Source, Build, Verify, Approve, Release', () => {
    const stages = new Capture();
    template.hasResourceProperties('AWS::CodePipeline::Pipeline', { Stages: stages, ExecutionMode: 'QUEUED' });
    expect(stages.asArray().map((s: any) => s.Name)).toEqual(['Source', 'Build', 'Verify', 'Approve', 'Release']);
  });

  test('the verify build reads the source (its buildspec) with the build output as secondary input, before the other verify actions', () => {
    template.hasResourceProperties('AWS::CodePipeline::Pipeline', {
      Stages: Match.arrayWith([Match.objectLike({
        Name: 'Verify',
        Actions: [
          Match.objectLike({
            Name: 'Verify',
            ActionTypeId: Match.objectLike({ Provider: 'CodeBuild' }),
            InputArtifacts: [{ Name: 'Source' }, { Name: 'Build' }],
            Configuration: Match.objectLike({ PrimarySource: 'Source' }),
          }),
          Match.objectLike({ Name: 'IntegrationTests' }),
        ],
      })]),
    });
    expect(delivery.verifyBuildStep).toBeDefined();
    const buildSpec = new Capture();
    template.hasResourceProperties('AWS::CodeBuild::Project', {
      Description: 'Build step of Overrides/Delivery/Verify',
      Environment: Match.objectLike({ Type: 'LINUX_CONTAINER' }),
      Source: Match.objectLike({ BuildSpec: buildSpec }),
    });
    expect(flatten(stack, buildSpec.asObject())).toContain('npm run integ');
  });

  test('the approval carries the timeout, the message and the review URL', () => {
    template.hasResourceProperties('AWS::CodePipeline::Pipeline', {
      Stages: Match.arrayWith([Match.objectLike({
        Name: 'Approve',
        Actions: [Match.objectLike({
          ActionTypeId: Match.objectLike({ Category: 'Approval', Provider: 'Manual' }),
          TimeoutInMinutes: 240,
          Configuration: { CustomData: 'Check the report', ExternalEntityLink: 'https://review.example.com' },
        })],
      })]),
    });
  });

  test('tells the topic in readable text that an approval waits, with the review URL', () => {
    const text = new Capture();
    template.hasResourceProperties('AWS::Events::Rule', {
      EventPattern: Match.objectLike({
        'detail-type': ['CodePipeline Action Execution State Change'],
        'detail': { stage: ['Approve'], action: ['Approve'], state: ['STARTED'] },
      }),
      Targets: [Match.objectLike({
        InputTransformer: Match.objectLike({ InputTemplate: text }),
      })],
    });
    expect(flatten(stack, text.asObject())).toMatch(/^"APPROVAL NEEDED: pipeline <detail-pipeline> waits .* Review the new version at https:\/\/review.example.com first\./);
  });

  test('retains the artifact bucket and key, with the asked expiration, and no auto-delete', () => {
    template.hasResource('AWS::S3::Bucket', {
      Properties: Match.objectLike({
        LifecycleConfiguration: { Rules: [Match.objectLike({ ExpirationInDays: 90 })] },
      }),
      DeletionPolicy: 'Retain',
    });
    template.resourceCountIs('Custom::S3AutoDeleteObjects', 0);
    template.hasResource('AWS::KMS::Key', {
      Properties: Match.objectLike({ Description: Match.stringLikeRegexp('pipeline artifacts') }),
      DeletionPolicy: 'Retain',
    });
  });

  test('subscribes the emails with a dead-letter queue and sends Slack notifications through Chatbot', () => {
    template.hasResourceProperties('AWS::SNS::Subscription', {
      Protocol: 'email',
      Endpoint: 'ops@example.com',
      RedrivePolicy: { deadLetterTargetArn: Match.anyValue() },
    });
    template.hasResourceProperties('AWS::Chatbot::SlackChannelConfiguration', {
      SlackWorkspaceId: 'T0123ABCD',
      SlackChannelId: 'C0123ABCD',
      GuardrailPolicies: [Match.objectLike({ 'Fn::Join': Match.arrayWith([Match.arrayWith([Match.stringLikeRegexp('AWSCodePipeline_ReadOnlyAccess')])]) })],
    });
    template.hasResourceProperties('AWS::CodeStarNotifications::NotificationRule', {
      EventTypeIds: Match.arrayWith([
        'codepipeline-pipeline-pipeline-execution-failed',
        'codepipeline-pipeline-pipeline-execution-succeeded',
        'codepipeline-pipeline-manual-approval-needed',
      ]),
      Targets: [{ TargetType: 'AWSChatbotSlack', TargetAddress: Match.anyValue() }],
    });
    expect(delivery.notifications.slackChannel).toBeDefined();
  });

  test('releases into the asked prefix of the bucket, then smoke-tests the site, rolling back when it fails', () => {
    template.hasResourceProperties('AWS::CodePipeline::Pipeline', {
      Stages: Match.arrayWith([Match.objectLike({
        Name: 'Release',
        OnFailure: { Result: 'ROLLBACK' },
        Actions: [
          Match.objectLike({
            Name: 'Deploy',
            RunOrder: 1,
            ActionTypeId: Match.objectLike({ Category: 'Deploy', Provider: 'S3' }),
            Configuration: Match.objectLike({ Extract: 'true', ObjectKey: 'www' }),
          }),
          Match.objectLike({ Name: 'SmokeTest', RunOrder: 2, ActionTypeId: Match.objectLike({ Category: 'Invoke', Provider: 'Lambda' }) }),
        ],
      })]),
    });
  });

  test('stays clean under cdk-nag and the validator with every option on', () => {
    const [report] = checkApp(app);
    expect(describeFailures(report)).toBe('Overrides: clean');
  });
});

describe('DeliveryPipeline bad input', () => {
  function make(props: Partial<ConstructorParameters<typeof DeliveryPipeline>[2]>) {
    const stack = new Stack();
    const site = new s3.Bucket(stack, 'Site');
    return new DeliveryPipeline(stack, 'Delivery', { source: source(), release: Release.s3Bucket(site), ...props });
  }

  test('beforeProductionTraffic is refused for a release without a test endpoint, naming both', () => {
    expect(() => make({ approval: Approval.beforeProductionTraffic() }))
      .toThrow(/DeliveryPipeline 'Default\/Delivery': 'approval' cannot be used with Release.s3Bucket\(Default\/Site\).*Approval.beforeRelease/);
  });

  test('an empty verifyActions list is refused instead of rendering an empty stage', () => {
    expect(() => make({ verifyActions: [] })).toThrow(/'verifyActions' must list at least one action/);
  });

  test('an artifact expiration under a day, or not in whole days, is refused with the property the user set', () => {
    expect(() => make({ artifactExpiration: Duration.hours(2) })).toThrow(/DeliveryPipeline 'Default\/Delivery': 'artifactExpiration' must be between 1 day and 3650 days, got 2 hours/);
    expect(() => make({ artifactExpiration: Duration.hours(36) })).toThrow(/'artifactExpiration' must be a whole number of days, got 1 day 12 hours/);
  });

  test('PARALLEL execution is refused: CodePipeline does not roll a stage back in that mode', () => {
    expect(() => make({ executionMode: codepipeline.ExecutionMode.PARALLEL })).toThrow(/'executionMode' must be SUPERSEDED or QUEUED.*got 'PARALLEL'/);
  });

  test('releasing with a key of its own stays clean under cdk-nag: the key grant is acknowledged on the deploy role', () => {
    const app = new App();
    const stack = new Stack(app, 'Keyed');
    const key = new kms.Key(stack, 'SiteKey', { enableKeyRotation: true });
    new DeliveryPipeline(stack, 'Delivery', { source: source(), release: Release.s3Bucket(siteBucket(stack), { encryptionKey: key }) });
    expect(checkApp(app).map(describeFailures)).toEqual(['Keyed: clean']);
  });

  test('an imported bucket can be released into', () => {
    const stack = new Stack();
    const imported = s3.Bucket.fromBucketName(stack, 'Imported', 'my-site-bucket');
    expect(() => new DeliveryPipeline(stack, 'Delivery', { source: source(), release: Release.s3Bucket(imported) })).not.toThrow();
    expect(() => Template.fromStack(stack)).not.toThrow();
  });

  test('a malformed email is refused with the address', () => {
    expect(() => make({ notifications: { emails: ['ops.example.com'] } })).toThrow(/'emails' must be an email address.*got 'ops.example.com'/);
  });
});

describe('DeliveryPipeline extension points used by the patterns', () => {
  /** A release that records what it was given and turns the automatic stage rollback off. */
  class RecordingRelease extends Release {
    public readonly description = 'a recording release';
    public given?: ReleaseContext;
    public bind(_scope: Construct, context: ReleaseContext): ReleaseConfig {
      this.given = context;
      return {
        actions: [new actions.ManualApprovalAction({ actionName: 'Check' })],
        rollbackOnFailure: false,
      };
    }
  }

  const stack = new Stack();
  const release = new RecordingRelease();
  const delivery = new DeliveryPipeline(stack, 'Delivery', { source: source(), release, pipelineName: 'orders-delivery' });
  const template = Template.fromStack(stack);

  test('pipelineName names the pipeline, so a hook can find it before it exists', () => {
    template.hasResourceProperties('AWS::CodePipeline::Pipeline', { Name: 'orders-delivery' });
  });

  test('the Build action exports its variables under BuildVariables, which a release reads as #{BuildVariables.NAME}', () => {
    const pipeline = Object.values(template.findResources('AWS::CodePipeline::Pipeline'))[0];
    const build = pipeline.Properties.Stages.find((s: any) => s.Name === 'Build').Actions[0];
    expect(build.Namespace).toBe(DeliveryPipeline.BUILD_VARIABLES_NAMESPACE);
    expect(DeliveryPipeline.BUILD_VARIABLES_NAMESPACE).toBe('BuildVariables');
  });

  test('a release is given the artifact bucket and key of the pipeline', () => {
    expect(release.given?.artifactBucket).toBe(delivery.artifactBucket);
    expect(release.given?.artifactKey).toBe(delivery.artifactKey);
  });

  test('a release that rolls back by itself (rollbackOnFailure false) gets a Release stage without automatic stage rollback', () => {
    const pipeline = Object.values(template.findResources('AWS::CodePipeline::Pipeline'))[0];
    const stage = pipeline.Properties.Stages.find((s: any) => s.Name === 'Release');
    expect(stage.OnFailure).toBeUndefined();
  });

  test('a pipeline name CodePipeline does not accept is refused with the name', () => {
    const other = new Stack();
    expect(() => new DeliveryPipeline(other, 'Delivery', { source: source(), release: new RecordingRelease(), pipelineName: 'orders delivery' }))
      .toThrow(/'pipelineName' must be 1 to 100 letters, digits or \. @ _ -, got 'orders delivery'/);
  });
});

describe('DeliveryPipeline with an artifactKey of a stack it depends on', () => {
  const env = { account: '123456789012', region: 'eu-west-1' };
  const app = new App();
  const keyStack = new Stack(app, 'Keys', { env });
  const key = new kms.Key(keyStack, 'Key', { enableKeyRotation: true });
  const stack = new Stack(app, 'Pipeline', { env });
  stack.addDependency(keyStack);
  const site = siteBucket(stack);
  const delivery = new DeliveryPipeline(stack, 'Delivery', { source: source(), release: Release.s3Bucket(site), artifactKey: key });
  const template = Template.fromStack(stack);
  const keyTemplate = Template.fromStack(keyStack);
  const importsKeyArn = { 'Fn::ImportValue': Match.stringLikeRegexp('^Keys:ExportsOutputFnGetAttKey.*Arn') };

  test('uses that key for the artifacts, the topic and the log groups, and creates none of its own', () => {
    expect(delivery.artifactKey).toBe(key);
    template.resourceCountIs('AWS::KMS::Key', 0);
    template.hasResourceProperties('AWS::S3::Bucket', {
      BucketEncryption: { ServerSideEncryptionConfiguration: [Match.objectLike({ ServerSideEncryptionByDefault: { SSEAlgorithm: 'aws:kms', KMSMasterKeyID: importsKeyArn } })] },
    });
    template.hasResourceProperties('AWS::SNS::Topic', { KmsMasterKeyId: importsKeyArn });
    const groups = Object.values(template.findResources('AWS::Logs::LogGroup')) as any[];
    expect(groups.length).toBeGreaterThan(0);
    for (const group of groups) {
      expect(group.Properties.KmsKeyId).toEqual({ 'Fn::ImportValue': expect.stringMatching(/^Keys:ExportsOutputFnGetAttKey.*Arn/) });
    }
  });

  test('the key\'s policy names no principal of the pipeline\'s stack (which would be a cycle), and lets CloudWatch Logs in', () => {
    const policy = JSON.stringify(keyTemplate.toJSON().Resources);
    expect(policy).not.toContain('Fn::ImportValue');
    keyTemplate.hasResourceProperties('AWS::KMS::Key', {
      KeyPolicy: { Statement: Match.arrayWith([Match.objectLike({ Sid: 'AllowCloudWatchLogsForThisAccountsLogGroups' })]) },
    });
  });

  test('refuses a key of a stack it does not depend on, of a stack that depends on it, or of another region or an unknown one', () => {
    const other = new App();
    const lone = new Stack(other, 'Lone', { env });
    const elsewhere = new Stack(other, 'Elsewhere', { env: { ...env, region: 'us-east-1' } });
    const agnostic = new Stack(other, 'Agnostic');
    const pipelineStack = new Stack(other, 'P', { env });
    const after = new Stack(other, 'After', { env });
    after.addDependency(pipelineStack);
    pipelineStack.addDependency(elsewhere);
    pipelineStack.addDependency(agnostic);
    const make = (id: string, artifactKey: kms.Key) => () => new DeliveryPipeline(pipelineStack, id, {
      source: source(), release: Release.s3Bucket(siteBucket(pipelineStack, `Site${id}`)), artifactKey,
    });
    expect(make('A', new kms.Key(lone, 'Key'))).toThrow(
      "DeliveryPipeline 'P/A': 'artifactKey' must be in stack 'P' or in a stack it depends on; call addDependency on stack 'P' with stack 'Lone' first, got 'Lone/Key'");
    expect(make('B', new kms.Key(after, 'Key'))).toThrow(
      "DeliveryPipeline 'P/B': 'artifactKey' must be in stack 'P' or in a stack it depends on; the key's stack 'After' depends on this one, so that would be a cycle: create the key here or in a stack both depend on, got 'After/Key'");
    expect(make('C', new kms.Key(elsewhere, 'Key'))).toThrow(
      "DeliveryPipeline 'P/C': 'artifactKey' must be in the account and region of stack 'P' (123456789012/eu-west-1); its stack 'Elsewhere' is in 123456789012/us-east-1, got 'Elsewhere/Key'");
    expect(make('D', new kms.Key(agnostic, 'Key'))).toThrow(
      "DeliveryPipeline 'P/D': 'artifactKey' must be in the account and region of stack 'P' (123456789012/eu-west-1); its stack 'Agnostic' is in any account/any region, got 'Agnostic/Key'");
  });

  test('ArtifactStore refuses an encryptionKey its stack cannot use, in its own words', () => {
    const other = new App();
    const lone = new Stack(other, 'Lone', { env });
    const storeStack = new Stack(other, 'S', { env });
    expect(() => new ArtifactStore(storeStack, 'Store', { encryptionKey: new kms.Key(lone, 'Key') })).toThrow(
      "ArtifactStore 'S/Store': 'encryptionKey' must be in stack 'S' or in a stack it depends on; call addDependency on stack 'S' with stack 'Lone' first, got 'Lone/Key'");
  });

  test('accepts a key of a stack the pipeline depends on through another, and encrypts a nested stack\'s log groups with it', () => {
    const other = new App();
    const base = new Stack(other, 'Base', { env });
    const baseKey = new kms.Key(base, 'Key', { enableKeyRotation: true });
    const middle = new Stack(other, 'Middle', { env });
    middle.addDependency(base);
    const top = new Stack(other, 'Top', { env });
    top.addDependency(middle);
    const nested = new NestedStack(top, 'Nested');
    const nestedDelivery = new DeliveryPipeline(nested, 'Delivery', {
      source: source(), release: Release.s3Bucket(siteBucket(nested)), artifactKey: baseKey,
    });
    expect(nestedDelivery.artifactKey).toBe(baseKey);
    const groups = Object.values(Template.fromStack(nested).findResources('AWS::Logs::LogGroup')) as any[];
    expect(groups.length).toBeGreaterThan(0);
    for (const group of groups) expect(group.Properties.KmsKeyId).toEqual({ 'Fn::ImportValue': expect.stringMatching(/^Base:ExportsOutputFnGetAttKey[0-9A-F]{8}Arn/) });
  });
});
