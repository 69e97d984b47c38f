import { App, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import * as codecommit from 'aws-cdk-lib/aws-codecommit';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as codebuild from 'aws-cdk-lib/aws-codebuild';
import * as fs from 'fs';
import { DeliveryPipeline } from '../../src/pipeline/delivery-pipeline';
import { BuildStep, BuildArchitecture } from '../../src/pipeline/build-step';
import { Release } from '../../src/release/release';
import { PipelineSource } from '../../src/source/pipeline-source';

test('explore', () => {
  const t0 = Date.now();
  const app = new App();
  const stack = new Stack(app, 'S', { env: { account: '123456789012', region: 'us-east-1' } });
  const bucket = new s3.Bucket(stack, 'Site');
  new DeliveryPipeline(stack, 'DP', {
    source: PipelineSource.connection('owner/repo', 'main', { connectionArn: 'arn:aws:codeconnections:us-east-1:123456789012:connection/abc-123', triggerTags: ['v*'], triggerFilePaths: ['src/**'], ignoreFilePaths: ['docs/**'], fullClone: true }),
    release: Release.s3Bucket(bucket),
  });
  const t = Template.fromStack(stack);
  console.log('synth ms', Date.now() - t0);
  fs.writeFileSync('/tmp/explore/dp.json', JSON.stringify(t.toJSON(), null, 1));
  const s2 = new Stack(new App(), 'S2');
  const repo = new codecommit.Repository(s2, 'Repo', { repositoryName: 'r' });
  const b2 = new s3.Bucket(s2, 'Site');
  new DeliveryPipeline(s2, 'DP', { source: PipelineSource.codeCommit(repo, 'main'), release: Release.s3Bucket(b2) });
  fs.writeFileSync('/tmp/explore/cc.json', JSON.stringify(Template.fromStack(s2).toJSON(), null, 1));
  const s3s = new Stack(new App(), 'S3');
  const key = new kms.Key(s3s, 'Key');
  new BuildStep(s3s, 'Build', { encryptionKey: key });
  new BuildStep(s3s, 'Build2', { encryptionKey: key, architecture: BuildArchitecture.X86_64, privileged: true, buildSpec: codebuild.BuildSpec.fromObject({ version: '0.2', phases: { build: { commands: ['make'] } } }), testReportDirectory: 'out/tests' });
  fs.writeFileSync('/tmp/explore/bs.json', JSON.stringify(Template.fromStack(s3s).toJSON(), null, 1));
  console.log('total ms', Date.now() - t0);
});
