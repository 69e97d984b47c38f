import { App, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { Ec2BlueGreenPipeline } from '../../src';
import { BundleReencryption } from '../../src/private/bundle-reencryption';
import { RELEASES_PREFIX } from '../../src/runtime/ec2-fleet';
import { acknowledgements, nagViolations } from '../compliance/harness';
import { ENV, idOf, resourceOf, source } from '../util/template';

// One app: the EC2 pattern with its State stack (which holds the pipeline key), synthesized once.
const app = new App();
const stack = new Stack(app, 'Shop', { env: ENV });
const web = new Ec2BlueGreenPipeline(stack, 'Web', { source: source() });
const template = Template.fromStack(stack);
const stateStack = app.node.children.find((c): c is Stack => Stack.isStack(c) && stack.dependencies.includes(c))!;
const stateTemplate = Template.fromStack(stateStack);
const resources = template.toJSON().Resources as Record<string, any>;

const reencryptions = Object.entries(resources).filter(([, r]) => r.Type === 'Custom::ReleaseBundleReencryption');
const [reencryptionId, reencryption] = reencryptions[0] ?? [];
const functionId: string = reencryption?.Properties.ServiceToken['Fn::GetAtt'][0];
const roleId: string = resources[functionId]?.Properties.Role['Fn::GetAtt'][0];
const policiesOfRole = Object.entries(resources)
  .filter(([, r]) => r.Type === 'AWS::IAM::Policy' && (r.Properties.Roles as any[]).some((role) => role.Ref === roleId));
const statements = policiesOfRole.flatMap(([, p]) => p.Properties.PolicyDocument.Statement as any[]);
const bucketId = idOf(web.bundleBucket);
const keyId = idOf(web.pipeline.artifactKey);
// The parameters are custom resources of the State stack (`Custom::<Color>ReleaseParameter`), named after the live color's.
const parameterPrefix = web.liveColorParameterName.replace(/\/live-color$/, '');
const releaseParameterNames = ['blue', 'green'].map((color) => `${parameterPrefix}/${color}-release`);
const parameterIds = ['Blue', 'Green'].map((color) => Object.keys(stateTemplate.findResources(`Custom::${color}ReleaseParameter`)));
const paramArn = (name: string) => ({ 'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, `:ssm:us-east-1:123456789012:parameter/${name.replace(/^\//, '')}`]] });
const bundleObjects = { 'Fn::Join': ['', [{ 'Fn::GetAtt': [bucketId, 'Arn'] }, `/${RELEASES_PREFIX}*`]] };

/** The value an `Fn::ImportValue` in this stack reads: the State stack's output of that export. */
function exportedBy(importValue: any): any {
  expect(Object.keys(importValue)).toEqual(['Fn::ImportValue']);
  const outputs = stateTemplate.toJSON().Outputs as Record<string, any>;
  const output = Object.values(outputs).find((o) => JSON.stringify(o.Export?.Name) === JSON.stringify(importValue['Fn::ImportValue']));
  expect(output).toBeDefined();
  return output.Value;
}

describe('BundleReencryption in the EC2 pattern (ADR 0012, "Upgrading")', () => {
  test('one re-encryption resource, in the service stack, none in the State stack', () => {
    expect(reencryptions).toHaveLength(1);
    stateTemplate.resourceCountIs('Custom::ReleaseBundleReencryption', 0);
  });

  test('its KeyArn is the bundle bucket\'s key: the pipeline key\'s ARN, imported from the State stack', () => {
    const keyArn = reencryption.Properties.KeyArn;
    expect(exportedBy(keyArn)).toEqual({ 'Fn::GetAtt': [keyId, 'Arn'] });
    const encryption = resources[bucketId].Properties.BucketEncryption.ServerSideEncryptionConfiguration[0];
    expect(encryption).toEqual({
      ServerSideEncryptionByDefault: { SSEAlgorithm: 'aws:kms', KMSMasterKeyID: keyArn },
      BucketKeyEnabled: true,
    });
  });

  test('its other properties: the bucket, the bundle prefix, the blue and green release parameters', () => {
    expect(reencryption.Properties).toEqual({
      ServiceToken: { 'Fn::GetAtt': [functionId, 'Arn'] },
      KeyArn: expect.anything(),
      BucketName: { Ref: bucketId },
      Prefix: RELEASES_PREFIX,
      ReleaseParameterNames: releaseParameterNames,
    });
    expect(releaseParameterNames[0]).toMatch(/blue-release$/);
    expect(releaseParameterNames[1]).toMatch(/green-release$/);
  });

  test('the role has exactly: logs, X-Ray, S3 objects on the bundle prefix (and listing, for 404s), the two parameters, the new key, and Decrypt through S3 for this bucket', () => {
    const logGroupId = resources[functionId].Properties.LoggingConfig.LogGroup.Ref;
    expect(statements).toEqual([
      { Effect: 'Allow', Action: ['logs:CreateLogStream', 'logs:PutLogEvents'], Resource: { 'Fn::GetAtt': [logGroupId, 'Arn'] } },
      { Effect: 'Allow', Action: ['s3:GetObject', 's3:PutObject'], Resource: bundleObjects },
      { Effect: 'Allow', Action: 's3:ListBucket', Resource: { 'Fn::GetAtt': [bucketId, 'Arn'] } },
      { Effect: 'Allow', Action: 'ssm:GetParameter', Resource: releaseParameterNames.map(paramArn) },
      { Effect: 'Allow', Action: ['kms:Encrypt', 'kms:GenerateDataKey'], Resource: reencryption.Properties.KeyArn },
      { Effect: 'Allow', Action: ['xray:PutTraceSegments', 'xray:PutTelemetryRecords'], Resource: '*' },
      {
        Effect: 'Allow',
        Action: 'kms:Decrypt',
        Resource: '*',
        Condition: {
          StringEquals: {
            'kms:ViaService': 's3.us-east-1.amazonaws.com',
            'kms:EncryptionContext:aws:s3:arn': { 'Fn::GetAtt': [bucketId, 'Arn'] },
          },
        },
      },
    ]);
  });

  test('kms:Decrypt on * is in a policy of its own, and cdk-nag\'s IAM5 finding is acknowledged on that policy alone', () => {
    const decrypt = policiesOfRole.filter(([, p]) => (p.Properties.PolicyDocument.Statement as any[]).some((s) => s.Action === 'kms:Decrypt'));
    expect(decrypt).toHaveLength(1);
    const [decryptId, decryptPolicy] = decrypt[0];
    expect(decryptPolicy.Properties.PolicyDocument.Statement).toHaveLength(1);
    const construct = stack.node.findAll().find((c): c is BundleReencryption => c instanceof BundleReencryption)!;
    expect(idOf(construct.decryptPolicy)).toBe(decryptId);
    const star = acknowledgements(construct).filter((a) => a.ruleId === 'AwsSolutions-IAM5[Resource::*]');
    expect(star.map((a) => a.path).sort()).toEqual([construct.decryptPolicy.node.path, `${construct.node.path}/Role/DefaultPolicy`]);
    const onDecrypt = star.find((a) => a.path === construct.decryptPolicy.node.path)!;
    expect(onDecrypt.reason).toMatch(/kms:ViaService/);
    expect(onDecrypt.reason).toMatch(/kms:EncryptionContext:aws:s3:arn/);
    // The role's own policy is acknowledged for X-Ray only: its one statement on * is X-Ray's.
    const starStatements = statements.filter((st) => st.Resource === '*');
    expect(starStatements.map((st) => st.Action)).toEqual([['xray:PutTraceSegments', 'xray:PutTelemetryRecords'], 'kms:Decrypt']);
  });

  test('the function: Node.js 24 on ARM64, traced, with its own log group (encrypted with the pipeline key)', () => {
    const fn = resources[functionId].Properties;
    expect(fn.Runtime).toBe('nodejs24.x');
    expect(fn.Architectures).toEqual(['arm64']);
    expect(fn.TracingConfig).toEqual({ Mode: 'Active' });
    const group = resources[fn.LoggingConfig.LogGroup.Ref];
    expect(group.Type).toBe('AWS::Logs::LogGroup');
    expect(group.Properties.RetentionInDays).toBe(30);
    expect(group.Properties.KmsKeyId).toEqual(reencryption.Properties.KeyArn);
  });

  test('it runs after the bucket, the State stack (its key and parameters), the function\'s permissions; the groups wait for it', () => {
    // The bucket by reference, the key and the parameters in the State stack CloudFormation deploys first.
    expect(reencryption.Properties.BucketName).toEqual({ Ref: bucketId });
    expect(stack.dependencies).toContain(stateStack);
    expect(parameterIds.map((ids) => ids.length)).toEqual([1, 1]);
    const waitsFor = new Set<string>([...(reencryption.DependsOn ?? []), ...(resources[functionId].DependsOn ?? [])]);
    for (const [policyId] of policiesOfRole) expect(waitsFor).toContain(policyId);
    for (const group of [web.blueGroup, web.greenGroup]) {
      expect(resourceOf(template, idOf(group)).DependsOn).toContain(reencryptionId);
    }
  });
});

describe('BundleReencryption alone', () => {
  const alone = new App();
  const aloneStack = new Stack(alone, 'Alone', { env: ENV });
  const key = new kms.Key(aloneStack, 'Key', { enableKeyRotation: true });
  const bucket = new s3.Bucket(aloneStack, 'Bundles', { encryptionKey: key, bucketKeyEnabled: true, enforceSSL: true });
  new BundleReencryption(aloneStack, 'Reencryption', {
    bucket, key, prefix: RELEASES_PREFIX, releaseParameterNames: { blue: '/app/blue-release', green: '/app/green-release' },
  });

  test('cdk-nag (AwsSolutions, Serverless) finds nothing on the re-encryption\'s own resources', () => {
    alone.synth();
    const found = nagViolations(aloneStack).filter((v) => v.paths.some((path) => path.startsWith('Alone/Reencryption')));
    expect(found).toEqual([]);
  });

  test('a prefix that is not a folder is refused, naming the construct and the value', () => {
    const other = new Stack(new App(), 'Other', { env: ENV });
    const otherBucket = new s3.Bucket(other, 'B');
    expect(() => new BundleReencryption(other, 'R', {
      bucket: otherBucket, key: new kms.Key(other, 'K'), prefix: 'releases', releaseParameterNames: { blue: '/b', green: '/g' },
    })).toThrow('Other/R: prefix must be a folder like releases/ (letters, digits, . _ - and a final /); got "releases"');
  });
});
