/**
 * The secure defaults of ADR 0012, checked on every example app (the quick starts): each synthesized once.
 */
import * as fs from 'fs';
import * as path from 'path';
import { App } from 'aws-cdk-lib';

const examplesDir = path.join(__dirname, '..', '..', 'examples');
const apps = fs.readdirSync(examplesDir).filter((name) => fs.existsSync(path.join(examplesDir, name, 'app.ts'))).sort();

interface Template { readonly Resources: Record<string, any> }

const ofType = (t: Template, type: string) => Object.entries(t.Resources).filter(([, r]) => r.Type === type);

describe.each(apps)('example %s', (name) => {
  let templates: Array<{ stack: string; template: Template }>;
  beforeAll(() => {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { createApp } = require(path.join(examplesDir, name, 'app.ts')) as { createApp: () => App };
    templates = createApp().synth().stacks.map((s) => ({ stack: s.stackName, template: s.template }));
  });

  test('every Lambda function logs to a log group of the stack with a retention that the stack deletes', () => {
    const problems: string[] = [];
    let functions = 0;
    for (const { stack, template } of templates) {
      for (const [id, fn] of ofType(template, 'AWS::Lambda::Function')) {
        functions++;
        const ref = fn.Properties?.LoggingConfig?.LogGroup?.Ref;
        const group = ref && template.Resources[ref];
        if (!group || group.Type !== 'AWS::Logs::LogGroup') problems.push(`${stack}/${id}: no log group of the stack`);
        else if (!group.Properties?.RetentionInDays || group.DeletionPolicy !== 'Delete') problems.push(`${stack}/${id}: ${ref} kept or never expires`);
      }
    }
    expect(functions).toBeGreaterThan(0);
    expect(problems).toEqual([]);
  });

  test('every CodeBuild project logs to a log group of the stack, and its role may not create report groups (nothing made at run time outlives the stack)', () => {
    const problems: string[] = [];
    let projects = 0;
    for (const { stack, template } of templates) {
      const denies = ofType(template, 'AWS::IAM::Policy').flatMap(([, p]) => (p.Properties.PolicyDocument.Statement as any[])
        .filter((st) => st.Effect === 'Deny' && st.Action === 'codebuild:CreateReportGroup')
        .flatMap(() => (p.Properties.Roles as any[]).map((r) => r.Ref)));
      for (const [id, project] of ofType(template, 'AWS::CodeBuild::Project')) {
        projects++;
        const logs = project.Properties.LogsConfig?.CloudWatchLogs;
        const group = logs?.GroupName?.Ref && template.Resources[logs.GroupName.Ref];
        if (logs?.Status !== 'ENABLED' || !group || group.Type !== 'AWS::Logs::LogGroup') problems.push(`${stack}/${id}: no log group of the stack`);
        const role = project.Properties.ServiceRole?.['Fn::GetAtt']?.[0];
        if (!denies.includes(role)) problems.push(`${stack}/${id}: its role ${role} may create report groups`);
      }
    }
    expect(projects).toBeGreaterThan(0);
    expect(problems).toEqual([]);
  });

  test('every state machine logs to a log group of the stack under /aws/vendedlogs/ (one entry of the account\'s log resource policy for all)', () => {
    const problems: string[] = [];
    for (const { stack, template } of templates) {
      for (const [id, machine] of ofType(template, 'AWS::StepFunctions::StateMachine')) {
        const arn = machine.Properties.LoggingConfiguration?.Destinations?.[0]?.CloudWatchLogsLogGroup?.LogGroupArn;
        const group = arn?.['Fn::GetAtt'] && template.Resources[arn['Fn::GetAtt'][0]];
        if (!group || group.Type !== 'AWS::Logs::LogGroup') problems.push(`${stack}/${id}: no log group of the stack`);
        else if (!String(group.Properties.LogGroupName).startsWith('/aws/vendedlogs/')) problems.push(`${stack}/${id}: ${group.Properties.LogGroupName}`);
      }
    }
    expect(problems).toEqual([]);
  });

  // The app's key that encrypts a log group: one of its own stack, or one a stack it depends on exports (the patterns'
  // pipeline key lives in their small state stack, ADR 0012).
  const keyOf = (group: any): string | undefined => {
    const kmsKeyId = group.Properties?.KmsKeyId;
    if (kmsKeyId?.['Fn::GetAtt']?.[1] === 'Arn') return kmsKeyId['Fn::GetAtt'][0];
    const imported = /:ExportsOutputFnGetAtt(Key[0-9A-F]{8})Arn[0-9A-F]{8}$/.exec(kmsKeyId?.['Fn::ImportValue'] ?? '');
    return imported?.[1];
  };

  test('one customer managed key per app (1 USD a month), and every log group has a retention, is deleted with the stack and is encrypted with it', () => {
    const keys = templates.flatMap(({ stack, template }) => ofType(template, 'AWS::KMS::Key').map(([id]) => ({ stack, id })));
    expect(keys).toHaveLength(1);
    const problems: string[] = [];
    let groups = 0;
    for (const { stack, template } of templates) {
      for (const [id, group] of ofType(template, 'AWS::Logs::LogGroup')) {
        groups++;
        if (!group.Properties?.RetentionInDays) problems.push(`${stack}/${id}: no retention`);
        if (group.DeletionPolicy !== 'Delete') problems.push(`${stack}/${id}: ${group.DeletionPolicy}`);
        const keyId = keyOf(group);
        const own = group.Properties?.KmsKeyId?.['Fn::GetAtt'] !== undefined;
        if (keyId !== keys[0].id || (own && keys[0].stack !== stack)) problems.push(`${stack}/${id}: not encrypted with the app's key (${JSON.stringify(group.Properties?.KmsKeyId)})`);
      }
    }
    expect(groups).toBeGreaterThan(0);
    expect(problems).toEqual([]);
  });

  test('every key lets CloudWatch Logs use it only for this account\'s log groups, when a log group uses it', () => {
    const used = new Set(templates.flatMap(({ template }) => ofType(template, 'AWS::Logs::LogGroup').map(([, g]) => keyOf(g))));
    let checked = 0;
    for (const { template } of templates) {
      for (const [id, key] of ofType(template, 'AWS::KMS::Key').filter(([keyId]) => used.has(keyId))) {
        checked++;
        const statement = key.Properties.KeyPolicy.Statement.find((s: any) => s.Sid === 'AllowCloudWatchLogsForThisAccountsLogGroups');
        expect({ id, principal: JSON.stringify(statement?.Principal), condition: JSON.stringify(statement?.Condition) }).toEqual({
          id,
          principal: expect.stringMatching(/"logs\.",\{"Ref":"AWS::Region"\}|logs\.[a-z0-9-]+\.amazonaws\.com/),
          condition: expect.stringMatching(/"ArnLike":\{"kms:EncryptionContext:aws:logs:arn":.*:log-group:\*/),
        });
      }
    }
    // Each example has a pipeline, whose key its log groups use.
    expect(checked).toBeGreaterThanOrEqual(1);
  });

  test('every key denies grants that are neither for an AWS resource nor made by an AWS service', () => {
    let keys = 0;
    for (const { template } of templates) {
      for (const [, key] of ofType(template, 'AWS::KMS::Key')) {
        keys++;
        expect(key.Properties.KeyPolicy.Statement).toContainEqual({
          Sid: 'DenyGrantsExceptForAwsResources',
          Effect: 'Deny',
          Principal: { AWS: '*' },
          Action: 'kms:CreateGrant',
          Resource: '*',
          Condition: { BoolIfExists: { 'kms:GrantIsForAWSResource': 'false' }, Bool: { 'aws:PrincipalIsAWSService': 'false' } },
        });
      }
    }
    expect(keys).toBeGreaterThan(0);
  });

  test('every VPC created has its default security group emptied', () => {
    for (const { template } of templates) {
      for (const [id] of ofType(template, 'AWS::EC2::VPC')) {
        expect(ofType(template, 'Custom::VpcRestrictDefaultSG').map(([, r]) => r.Properties.DefaultSecurityGroupId))
          .toContainEqual({ 'Fn::GetAtt': [id, 'DefaultSecurityGroup'] });
      }
    }
  });
});
