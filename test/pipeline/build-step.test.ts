import { App, Duration, Stack, Token, Lazy } from 'aws-cdk-lib';
import * as codebuild from 'aws-cdk-lib/aws-codebuild';
import * as kms from 'aws-cdk-lib/aws-kms';
import { BuildStep } from '../../src/pipeline/build-step';
import { PipelineSource } from '../../src/source/pipeline-source';
import * as codepipeline from 'aws-cdk-lib/aws-codepipeline';

test('explore', () => {
  console.log(Duration.minutes(1).toHumanString(), '|', Duration.hours(37).toHumanString(), '|', Duration.hours(36).toHumanString());
  const s = new Stack(new App(), 'S');
  const key = new kms.Key(s, 'Key');
  try {
    new BuildStep(s, 'Y', { encryptionKey: key, buildSpec: codebuild.BuildSpec.fromObjectToYaml({ version: '0.2', phases: { build: { commands: ['x'] } } }) });
    console.log('yaml ok');
  } catch (e) { console.log('yaml err', (e as Error).message); }
  for (const bad of [{ environmentVariables: { '1ABC': 'x' } }, { environmentVariables: { DB_PASSWORD: 'x' } }, { timeout: Duration.minutes(1) }, { timeout: Duration.hours(37) }, { testReportDirectory: '' }, { testReportDirectory: '/abs' }]) {
    try { new BuildStep(new Stack(), 'B', { encryptionKey: key, ...bad }); } catch (e) { console.log((e as Error).message); }
  }
  const tok = Lazy.string({ produce: () => 'owner/repo' });
  const src = PipelineSource.connection(tok, 'main', { connectionArn: 'arn:aws:codeconnections:us-east-1:123456789012:connection/abc' });
  const cfg = src.bind(s, { output: new codepipeline.Artifact('Source') });
  console.log(Token.isUnresolved(tok), src.description);
  const st = new Stack(new App(), 'T');
  const p = new codepipeline.Pipeline(st, 'P', { pipelineType: codepipeline.PipelineType.V2 });
  p.addStage({ stageName: 'Source', actions: [cfg.action] });
  console.log(JSON.stringify(st.resolve((p.node.defaultChild as any)._toCloudFormation ? 0 : 0)));
  try { console.log(JSON.stringify((require('aws-cdk-lib/assertions').Template.fromStack(st).findResources('AWS::CodePipeline::Pipeline')))); } catch (e) { console.log('synth err', (e as Error).message); }
});
