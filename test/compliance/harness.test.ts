import { App, CfnResource, Stack, Validations } from 'aws-cdk-lib';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { acknowledgements, checkApp, describeFailures, nagViolations, validateTemplate, weakAcknowledgements } from './harness';

describe('compliance harness', () => {
  const app = new App();
  const stack = new Stack(app, 'Harness');
  new s3.Bucket(stack, 'Loose');
  const acknowledged = new s3.Bucket(stack, 'Acknowledged', { enforceSSL: true });
  Validations.of(acknowledged).acknowledge({ id: 'AwsSolutions-S1', reason: 'short' });
  new CfnResource(stack, 'Broken', { type: 'AWS::SQS::Queue', properties: { MessageRetentionPeriod: 'soon' } });
  const [report] = checkApp(app);

  test('fails a stack with an unacknowledged nag violation, naming the rule and the construct', () => {
    expect(report.passed).toBe(false);
    const s10 = report.nagViolations.find((v) => v.ruleId === 'AwsSolutions-S10');
    expect(s10?.paths).toEqual(['Harness/Loose/Resource']);
  });

  test('honours an acknowledgement on the construct it was made on only', () => {
    const s1 = report.nagViolations.find((v) => v.ruleId === 'AwsSolutions-S1');
    expect(s1?.paths).toEqual(['Harness/Loose/Resource']);
    expect(acknowledgements(stack)).toEqual([{ ruleId: 'AwsSolutions-S1', path: 'Harness/Acknowledged', reason: 'short' }]);
  });

  test('flags acknowledgements whose reason a reviewer could not check', () => {
    expect(weakAcknowledgements(report).map((a) => a.path)).toEqual(['Harness/Acknowledged']);
  });

  test('runs the Serverless pack too', () => {
    const serverlessStack = new Stack(new App(), 'Serverless');
    new lambda.CfnFunction(serverlessStack, 'Fn', {
      code: { zipFile: 'x' }, handler: 'index.handler', runtime: 'nodejs22.x', role: 'arn:aws:iam::123456789012:role/r',
    });
    expect(nagViolations(serverlessStack).map((v) => v.ruleId)).toEqual(expect.arrayContaining([expect.stringMatching(/^Serverless-/)]));
  });

  test('fails a template with a validator ERROR or worse, and reports the rule, severity and resource', () => {
    const broken = report.validatorFindings.find((f) => f.resource?.startsWith('Broken '));
    expect(broken).toEqual(expect.objectContaining({ severity: 'FATAL', ruleId: 'F3012', resource: 'Broken Properties.MessageRetentionPeriod' }));
    expect(describeFailures(report)).toMatch(/validator FATAL F3012 at Broken Properties.MessageRetentionPeriod: 'soon' is not of type 'integer'/);
  });

  test('passes an empty template', () => {
    expect(validateTemplate({ Resources: { Q: { Type: 'AWS::SQS::Queue' } } })).toEqual([]);
  });
});
