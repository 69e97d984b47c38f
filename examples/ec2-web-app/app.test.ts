/**
 * The EC2 example wires the sample service: its directory, its welcome phrase, a secret from Secrets Manager, the
 * parameter its /secret route describes, a canary step and an approval before production traffic.
 */
import { Token } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { createApp, Ec2WebAppStack } from './app';
import { checkApp } from '../../test/compliance/harness';
import { DEFAULT_WELCOME_PHRASE } from '../service/src/app';

const app = createApp({}, { account: '123456789012', region: 'us-east-1' });
const stack = app.node.findChild('Ec2WebAppExample') as Ec2WebAppStack;
const template = Template.fromStack(stack);

test('the build tests and bundles examples/service, where the sample service is', () => {
  template.hasResourceProperties('AWS::CodeBuild::Project', {
    Environment: Match.objectLike({
      EnvironmentVariables: Match.arrayWith([{ Name: 'APP_DIRECTORY', Type: 'PLAINTEXT', Value: 'examples/service' }]),
    }),
  });
});

test('the smoke test looks for the sample service\'s welcome phrase on its health path', () => {
  template.hasResourceProperties('AWS::Lambda::Function', {
    Environment: { Variables: Match.objectLike({ SMOKE_TEST_EXPECTED_PHRASE: DEFAULT_WELCOME_PHRASE, SMOKE_TEST_HEALTH_PATH: '/healthcheck' }) },
  });
});

test('a human approves before production traffic, alongside the release workflow', () => {
  const pipelines = template.findResources('AWS::CodePipeline::Pipeline');
  type Stage = { Name: string; Actions: Array<{ Name: string; ActionTypeId: { Category: string; Provider: string }; RunOrder: number }> };
  const stages = Object.values(pipelines)[0].Properties.Stages as Stage[];
  expect(stages.map((s) => s.Name)).toEqual(['Source', 'Build', 'Release']);
  const release = stages.find((s) => s.Name === 'Release')!;
  expect(release.Actions.map((a) => `${a.Name}:${a.ActionTypeId.Provider}:${a.RunOrder}`).sort()).toEqual(
    ['ApproveProductionTraffic:Manual:1', 'Deploy:StepFunctions:1']);
});

test('the release shifts 10 % first, for 5 minutes', () => {
  template.hasResourceProperties('AWS::Lambda::Function', {
    Environment: { Variables: Match.objectLike({ CANARY_PERCENT: '10', CANARY_SECONDS: '300' }) },
  });
});

test('the instances read the token from Secrets Manager at boot, and may read the described parameter', () => {
  const role = stack.getLogicalId(stack.web.instanceRole.node.defaultChild as never);
  const policies = template.findResources('AWS::IAM::Policy', { Properties: { Roles: [{ Ref: role }] } });
  const actions = Object.values(policies).flatMap((p) => (p.Properties.PolicyDocument.Statement as Array<{ Action: string | string[] }>)
    .flatMap((s) => ([] as string[]).concat(s.Action)));
  expect(actions).toEqual(expect.arrayContaining(['secretsmanager:GetSecretValue', 'ssm:GetParameter']));
  const userData = JSON.stringify(template.findResources('AWS::EC2::LaunchTemplate'));
  expect(userData).toContain('API_TOKEN');
  expect(userData).toContain('secretsmanager get-secret-value');
  expect(userData).toContain('SECRET_PARAMETER_NAME');
});

test('the example deploys into the caller\'s account and region (CDK_DEFAULT_*), environment-agnostic without them', () => {
  const saved = { account: process.env.CDK_DEFAULT_ACCOUNT, region: process.env.CDK_DEFAULT_REGION };
  try {
    process.env.CDK_DEFAULT_ACCOUNT = '111122223333';
    process.env.CDK_DEFAULT_REGION = 'eu-west-1';
    const deployed = createApp().node.findChild('Ec2WebAppExample') as Ec2WebAppStack;
    expect({ account: deployed.account, region: deployed.region }).toEqual({ account: '111122223333', region: 'eu-west-1' });
    delete process.env.CDK_DEFAULT_ACCOUNT;
    const agnostic = createApp().node.findChild('Ec2WebAppExample') as Ec2WebAppStack;
    expect(Token.isUnresolved(agnostic.account)).toBe(true);
  } finally {
    for (const [name, value] of [['CDK_DEFAULT_ACCOUNT', saved.account], ['CDK_DEFAULT_REGION', saved.region]] as const) {
      if (value === undefined) delete process.env[name]; else process.env[name] = value;
    }
  }
  expect(stack.account).toBe('123456789012');
});

test('every stack passes cdk-nag and the validator', () => {
  const reports = checkApp(app);
  expect(reports.map((r) => ({ stack: r.stackName, nag: r.nagViolations.map((v) => v.ruleId), validator: r.validatorFindings.map((f) => f.ruleId) })))
    .toEqual(reports.map((r) => ({ stack: r.stackName, nag: [], validator: [] })));
});
