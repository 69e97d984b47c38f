import { App, CfnElement, Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import { Capture, Match, Template } from 'aws-cdk-lib/assertions';
import * as codebuild from 'aws-cdk-lib/aws-codebuild';
import * as codepipeline from 'aws-cdk-lib/aws-codepipeline';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import * as ssm from 'aws-cdk-lib/aws-ssm';
import { IConstruct } from 'constructs';
import { BuildArchitecture, BuildSecret, BuildStep, BuildStepProps } from '../../src/pipeline/build-step';
import { flatten } from '../util/fixtures';

const ENV = { account: '123456789012', region: 'eu-west-1' };
const IMPORTED_SECRET_ARN = 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:other-AbCdEf';

function logicalId(construct: IConstruct): string {
  return Stack.of(construct).getLogicalId(construct.node.defaultChild as CfnElement);
}

/** The resource (Type, Properties, DeletionPolicy, ...) of a construct in the template. */
function resourceOf(template: Template, construct: IConstruct): any {
  const resource = template.toJSON().Resources[logicalId(construct)];
  expect(resource).toBeDefined();
  return resource;
}

/** Fails with aws-cdk-lib's own mismatch report when `actual` does not match the (objectLike) pattern. */
function expectLike(actual: unknown, pattern: object): void {
  const result = Match.objectLike(pattern as { [key: string]: any }).test(actual);
  expect(result.hasFailed() ? result.renderMismatch() : 'matches').toBe('matches');
}

/** All statements of the IAM policies attached to the step's role. */
function roleStatements(template: Template, step: BuildStep): any[] {
  const policies = template.findResources('AWS::IAM::Policy', {
    Properties: { Roles: Match.arrayWith([{ Ref: logicalId(step.role) }]) },
  });
  return Object.values(policies).flatMap((policy) => policy.Properties.PolicyDocument.Statement);
}

function actionsOf(statement: any): string[] {
  return ([] as string[]).concat(statement.Action);
}

function resourcesOf(statement: any): any[] {
  return ([] as any[]).concat(statement.Resource);
}

describe('BuildStep defaults', () => {
  let template: Template;
  let step: BuildStep;
  let key: kms.Key;
  let project: any;

  beforeAll(() => {
    const stack = new Stack(new App(), 'Defaults', { env: ENV });
    key = new kms.Key(stack, 'Key');
    step = new BuildStep(stack, 'Build', { encryptionKey: key });
    template = Template.fromStack(stack);
    project = resourceOf(template, step.project).Properties;
  });

  test('one CodeBuild project', () => {
    template.resourceCountIs('AWS::CodeBuild::Project', 1);
  });

  test('builds on a small ARM container with the Amazon Linux 2023 aarch64 standard 3.0 image, unprivileged', () => {
    expectLike(project.Environment, {
      Type: 'ARM_CONTAINER',
      Image: 'aws/codebuild/amazonlinux-aarch64-standard:3.0',
      ComputeType: 'BUILD_GENERAL1_SMALL',
      PrivilegedMode: false,
    });
  });

  test('encrypts with the given key', () => {
    expect(project.EncryptionKey).toEqual({ 'Fn::GetAtt': [logicalId(key), 'Arn'] });
  });

  test('times out after 30 minutes', () => {
    expect(project.TimeoutInMinutes).toBe(30);
  });

  test('caches locally: source and custom caches, no Docker layer cache when unprivileged', () => {
    expect(project.Cache).toEqual({ Type: 'LOCAL', Modes: ['LOCAL_SOURCE_CACHE', 'LOCAL_CUSTOM_CACHE'] });
  });

  test('reads buildspec.yml from the source revision', () => {
    expect(project.Source).toEqual({ Type: 'CODEPIPELINE', BuildSpec: 'buildspec.yml' });
  });

  test('logs to its own log group', () => {
    expect(project.LogsConfig).toEqual({
      CloudWatchLogs: { Status: 'ENABLED', GroupName: { Ref: logicalId(step.logGroup) } },
    });
  });

  test('the log group keeps logs 30 days and is deleted with the stack', () => {
    template.resourceCountIs('AWS::Logs::LogGroup', 1);
    expectLike(resourceOf(template, step.logGroup), {
      Type: 'AWS::Logs::LogGroup',
      Properties: { RetentionInDays: 30 },
      DeletionPolicy: 'Delete',
      UpdateReplacePolicy: 'Delete',
    });
  });

  test('the report group is a TEST group whose reports are deleted with it', () => {
    template.resourceCountIs('AWS::CodeBuild::ReportGroup', 1);
    expectLike(resourceOf(template, step.reportGroup), {
      Type: 'AWS::CodeBuild::ReportGroup',
      Properties: { Type: 'TEST', DeleteReports: true },
      DeletionPolicy: 'Delete',
    });
  });

  test('the only environment variable is JUNIT_REPORT_GROUP_ARN, the report group ARN in plain text', () => {
    expect(project.Environment.EnvironmentVariables).toEqual([{
      Name: 'JUNIT_REPORT_GROUP_ARN',
      Type: 'PLAINTEXT',
      Value: { 'Fn::GetAtt': [logicalId(step.reportGroup), 'Arn'] },
    }]);
    expect(Stack.of(step).resolve(step.reportGroup.reportGroupArn)).toEqual({ 'Fn::GetAtt': [logicalId(step.reportGroup), 'Arn'] });
  });

  test('runs as its own role, which only CodeBuild may assume', () => {
    expect(project.ServiceRole).toEqual({ 'Fn::GetAtt': [logicalId(step.role), 'Arn'] });
    expect(step.project.role).toBe(step.role);
    expectLike(resourceOf(template, step.role).Properties, {
      AssumeRolePolicyDocument: {
        Statement: [{ Action: 'sts:AssumeRole', Effect: 'Allow', Principal: { Service: 'codebuild.amazonaws.com' } }],
      },
    });
  });

  test('the role may write test reports into the report group', () => {
    expect(roleStatements(template, step)).toContainEqual({
      Effect: 'Allow',
      Action: ['codebuild:CreateReport', 'codebuild:UpdateReport', 'codebuild:BatchPutTestCases'],
      Resource: { 'Fn::GetAtt': [logicalId(step.reportGroup), 'Arn'] },
    });
  });

  test('the role may write into its log group and use the key', () => {
    const statements = roleStatements(template, step);
    expect(statements).toContainEqual(expect.objectContaining({
      Action: expect.arrayContaining(['logs:PutLogEvents']),
      Resource: { 'Fn::GetAtt': [logicalId(step.logGroup), 'Arn'] },
    }));
    expect(statements).toContainEqual(expect.objectContaining({
      Action: expect.arrayContaining(['kms:Decrypt', 'kms:GenerateDataKey*']),
      Resource: { 'Fn::GetAtt': [logicalId(key), 'Arn'] },
    }));
  });

  test('without secrets the role reads no parameter and no secret', () => {
    const actions = roleStatements(template, step).flatMap(actionsOf);
    expect(actions.length).toBeGreaterThan(0);
    expect(actions.filter((action) => /^(ssm|secretsmanager):/.test(action))).toEqual([]);
  });
});

describe('BuildStep overrides', () => {
  let template: Template;
  let x86: BuildStep;
  let kept: BuildStep;
  let project: any;

  beforeAll(() => {
    const stack = new Stack(new App(), 'Overrides', { env: ENV });
    const key = new kms.Key(stack, 'Key');
    x86 = new BuildStep(stack, 'X86', {
      encryptionKey: key,
      architecture: BuildArchitecture.X86_64,
      privileged: true,
      computeType: codebuild.ComputeType.LARGE,
      timeout: Duration.minutes(5),
      logRetention: logs.RetentionDays.ONE_WEEK,
      buildSpec: codebuild.BuildSpec.fromObject({
        version: '0.2',
        phases: { build: { commands: ['make test'] } },
        reports: { coverage: { 'files': ['coverage.xml'], 'file-format': 'COBERTURAXML' } },
      }),
      testReportDirectory: 'out/junit',
    });
    kept = new BuildStep(stack, 'Kept', {
      encryptionKey: key,
      removalPolicy: RemovalPolicy.RETAIN,
      timeout: Duration.hours(36),
      buildImage: codebuild.LinuxBuildImage.STANDARD_7_0,
      cache: codebuild.Cache.none(),
      buildSpec: codebuild.BuildSpec.fromObject({ version: '0.2', phases: { build: { commands: ['make'] } } }),
    });
    template = Template.fromStack(stack);
    project = resourceOf(template, x86.project).Properties;
  });

  test('X86_64 builds on a Linux container with the Amazon Linux 2023 x86_64 standard 5.0 image', () => {
    expectLike(project.Environment, {
      Type: 'LINUX_CONTAINER',
      Image: 'aws/codebuild/amazonlinux-x86_64-standard:5.0',
    });
  });

  test('privileged runs in privileged mode and adds the Docker layer cache', () => {
    expect(project.Environment.PrivilegedMode).toBe(true);
    expect(project.Cache).toEqual({
      Type: 'LOCAL',
      Modes: ['LOCAL_SOURCE_CACHE', 'LOCAL_CUSTOM_CACHE', 'LOCAL_DOCKER_LAYER_CACHE'],
    });
  });

  test('computeType and timeout (5 minutes, the minimum) are passed on', () => {
    expect(project.Environment.ComputeType).toBe('BUILD_GENERAL1_LARGE');
    expect(project.TimeoutInMinutes).toBe(5);
  });

  test('logRetention sets the retention of the log group', () => {
    expect(resourceOf(template, x86.logGroup).Properties.RetentionInDays).toBe(7);
  });

  test('an inline buildspec gets a JUNITXML report on the report group ARN, keeping its own phases and reports', () => {
    const buildSpec = new Capture();
    template.hasResourceProperties('AWS::CodeBuild::Project', {
      Description: `Build step of ${x86.node.path}`,
      Source: { Type: 'CODEPIPELINE', BuildSpec: buildSpec },
    });
    const parsed = JSON.parse(flatten(Stack.of(x86), buildSpec.asObject()));
    expect(parsed.version).toBe('0.2');
    expect(parsed.phases).toEqual({ build: { commands: ['make test'] } });
    expect(parsed.reports).toEqual({
      coverage: { 'files': ['coverage.xml'], 'file-format': 'COBERTURAXML' },
      [`\${${logicalId(x86.reportGroup)}.Arn}`]: { 'files': ['**/*.xml'], 'base-directory': 'out/junit', 'file-format': 'JUNITXML' },
    });
  });

  test('a YAML inline buildspec (fromObjectToYaml) gets the JUNITXML report too, instead of failing to merge', () => {
    const stack = new Stack();
    const step = new BuildStep(stack, 'Yaml', {
      encryptionKey: new kms.Key(stack, 'Key'),
      buildSpec: codebuild.BuildSpec.fromObjectToYaml({ version: '0.2', phases: { build: { commands: ['make'] } } }),
    });
    const rendered = flatten(stack, Template.fromStack(stack).toJSON().Resources[logicalId(step.project)].Properties.Source.BuildSpec);
    expect(rendered).toMatch(/^version: "0.2"/);
    expect(rendered).toContain(`\${${logicalId(step.reportGroup)}.Arn}`);
    expect(rendered).toMatch(/file-format: JUNITXML/);
    expect(rendered).toMatch(/base-directory: reports\/junit/);
  });

  test('an inline buildspec without testReportDirectory reports from reports/junit', () => {
    const buildSpec = resourceOf(template, kept.project).Properties.Source.BuildSpec;
    expect(JSON.parse(flatten(Stack.of(kept), buildSpec)).reports).toEqual({
      [`\${${logicalId(kept.reportGroup)}.Arn}`]: { 'files': ['**/*.xml'], 'base-directory': 'reports/junit', 'file-format': 'JUNITXML' },
    });
  });

  test('buildImage, cache and a 36 hour timeout (the maximum) are passed on', () => {
    expectLike(resourceOf(template, kept.project).Properties, {
      Environment: { Image: 'aws/codebuild/standard:7.0', Type: 'LINUX_CONTAINER' },
      Cache: { Type: 'NO_CACHE' },
      TimeoutInMinutes: 2160,
    });
  });

  test('RemovalPolicy.RETAIN keeps the log group and the report group with its reports', () => {
    expectLike(resourceOf(template, kept.logGroup), { DeletionPolicy: 'Retain', UpdateReplacePolicy: 'Retain' });
    expectLike(resourceOf(template, kept.reportGroup), {
      Properties: { DeleteReports: false },
      DeletionPolicy: 'Retain',
      UpdateReplacePolicy: 'Retain',
    });
  });

  test('the default removal policy of the other step still deletes', () => {
    expectLike(resourceOf(template, x86.logGroup), { DeletionPolicy: 'Delete' });
    expectLike(resourceOf(template, x86.reportGroup), { Properties: { DeleteReports: true }, DeletionPolicy: 'Delete' });
  });
});

describe('BuildStep secrets', () => {
  let template: Template;
  let step: BuildStep;
  let secret: secretsmanager.Secret;
  let variables: any[];

  beforeAll(() => {
    const stack = new Stack(new App(), 'Secrets', { env: ENV });
    secret = new secretsmanager.Secret(stack, 'ApiSecret');
    const parameter = ssm.StringParameter.fromSecureStringParameterAttributes(stack, 'DbPassword', {
      parameterName: '/app/db-password',
    });
    step = new BuildStep(stack, 'Build', {
      encryptionKey: new kms.Key(stack, 'Key'),
      environmentVariables: { STAGE: 'prod' },
      secrets: {
        DB_PASSWORD: BuildSecret.fromSsmParameter(parameter),
        API: BuildSecret.fromSecretsManager(secret, 'token'),
        WHOLE: BuildSecret.fromSecretsManager(secretsmanager.Secret.fromSecretCompleteArn(stack, 'Other', IMPORTED_SECRET_ARN)),
      },
    });
    template = Template.fromStack(stack);
    variables = resourceOf(template, step.project).Properties.Environment.EnvironmentVariables;
  });

  test('plain environment variables are PLAINTEXT', () => {
    expect(variables).toContainEqual({ Name: 'STAGE', Type: 'PLAINTEXT', Value: 'prod' });
  });

  test('an SSM parameter is a PARAMETER_STORE variable holding the parameter name', () => {
    expect(variables).toContainEqual({ Name: 'DB_PASSWORD', Type: 'PARAMETER_STORE', Value: '/app/db-password' });
  });

  test('a Secrets Manager JSON field is a SECRETS_MANAGER variable holding <secretArn>:<field>', () => {
    expect(variables).toContainEqual({
      Name: 'API',
      Type: 'SECRETS_MANAGER',
      Value: { 'Fn::Join': ['', [{ Ref: logicalId(secret) }, ':token']] },
    });
  });

  test('a whole secret is a SECRETS_MANAGER variable holding the secret ARN', () => {
    expect(variables).toContainEqual({ Name: 'WHOLE', Type: 'SECRETS_MANAGER', Value: IMPORTED_SECRET_ARN });
  });

  test('secrets and plain variables sit next to JUNIT_REPORT_GROUP_ARN, each once', () => {
    expect(variables.map((variable) => variable.Name).sort()).toEqual(['API', 'DB_PASSWORD', 'JUNIT_REPORT_GROUP_ARN', 'STAGE', 'WHOLE']);
  });

  test('the role may read the parameter, by its ARN', () => {
    template.hasResourceProperties('AWS::IAM::Policy', {
      Roles: [{ Ref: logicalId(step.role) }],
      PolicyDocument: {
        Statement: Match.arrayWith([Match.objectLike({
          Effect: 'Allow',
          Action: Match.arrayWith(['ssm:GetParameters']),
          Resource: { 'Fn::Join': ['', Match.arrayWith([':ssm:eu-west-1:123456789012:parameter/app/db-password'])] },
        })]),
      },
    });
  });

  test('SSM permissions name that parameter only', () => {
    const ssmStatements = roleStatements(template, step).filter((s) => actionsOf(s).some((a) => a.startsWith('ssm:')));
    expect(ssmStatements.length).toBeGreaterThan(0);
    for (const resource of ssmStatements.flatMap(resourcesOf)) {
      expect(JSON.stringify(resource)).toMatch(/:parameter\/app\/db-password"/);
    }
  });

  test('the role may get the value of both secrets', () => {
    const statements = roleStatements(template, step);
    expect(statements).toContainEqual(expect.objectContaining({
      Action: expect.arrayContaining(['secretsmanager:GetSecretValue']),
      Resource: { Ref: logicalId(secret) },
    }));
    expect(statements).toContainEqual(expect.objectContaining({
      Action: expect.arrayContaining(['secretsmanager:GetSecretValue']),
      Resource: IMPORTED_SECRET_ARN,
    }));
  });

  test('Secrets Manager permissions name those two secrets only, never a wildcard', () => {
    const secretStatements = roleStatements(template, step).filter((s) => actionsOf(s).some((a) => a.startsWith('secretsmanager:')));
    const resources = secretStatements.flatMap(resourcesOf);
    expect(resources.length).toBeGreaterThan(0);
    for (const resource of resources) {
      if (typeof resource === 'string') {
        // aws-cdk-lib's CodeBuild project appends '*' to a complete ARN for the version suffixes it reads.
        expect(resource).toMatch(new RegExp(`^${IMPORTED_SECRET_ARN}\\*?$`));
      } else {
        expect(resource).toEqual({ Ref: logicalId(secret) });
      }
    }
  });
});

describe('BuildStep bad input', () => {
  const escape = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

  /** Creates a BuildStep with these props in a stack of its own (nothing is synthesized). */
  function build(props: Partial<BuildStepProps>): () => BuildStep {
    return () => {
      const stack = new Stack();
      return new BuildStep(stack, 'Build', { encryptionKey: new kms.Key(stack, 'Key'), ...props });
    };
  }

  function someSecret(): secretsmanager.ISecret {
    return secretsmanager.Secret.fromSecretNameV2(new Stack(), 'Secret', 'some-secret');
  }

  test.each(['DB_PASSWORD', 'GITHUB_TOKEN', 'api_key', 'ClientSecret'])('environmentVariables refuses %p in plain text: it looks like a secret', (name) => {
    const create = build({ environmentVariables: { [name]: 'x' } });
    expect(create).toThrow(/'environmentVariables' must not carry secrets in plain text: pass it in 'secrets'/);
    expect(create).toThrow(`got '${name}'`);
  });

  test.each(['1ABC', 'CODEBUILD_X', 'A-B', 'A B', ''])('environmentVariables refuses the name %p, which CodeBuild does not allow', (name) => {
    expect(build({ environmentVariables: { [name]: 'x' } })).toThrow(new RegExp(`'environmentVariables' must name variables .*got '${escape(name)}'`));
  });

  test.each(['1ABC', 'CODEBUILD_X', 'A-B'])('secrets refuses the name %p, which CodeBuild does not allow', (name) => {
    expect(build({ secrets: { [name]: BuildSecret.fromSecretsManager(someSecret()) } })).toThrow(new RegExp(`'secrets' must name variables .*got '${escape(name)}'`));
  });

  test.each(['JUNIT_REPORT_GROUP_ARN', 'PIPELINE_EXECUTION_ID'])('environmentVariables refuses %p, which the build step sets itself', (name) => {
    expect(build({ environmentVariables: { [name]: 'x' } })).toThrow(new RegExp(`'environmentVariables' must name variables .*not JUNIT_REPORT_GROUP_ARN or PIPELINE_EXECUTION_ID, got '${name}'`));
  });

  test('environmentVariables refuses a secret-looking name even when its value is a token (an unwrapped secret)', () => {
    const secret = someSecret();
    expect(build({ environmentVariables: { DB_PASSWORD: secret.secretValue.unsafeUnwrap() } })).toThrow(/must not carry secrets in plain text/);
  });

  test('well-formed names are accepted', () => {
    const step = build({ environmentVariables: { _PRIVATE_DIR: 'x', stage2: 'y' }, secrets: { NPM_TOKEN: BuildSecret.fromSecretsManager(someSecret()) } })();
    expect(step.project).toBeDefined();
  });

  test('secrets refuses API, a name environmentVariables already has', () => {
    const create = build({ environmentVariables: { API: 'x' }, secrets: { API: BuildSecret.fromSecretsManager(someSecret()) } });
    expect(create).toThrow(/'secrets' must not repeat a name of 'environmentVariables', got 'API'/);
  });

  test('timeout refuses 1 minute, under the 5 minutes CodeBuild allows', () => {
    expect(build({ timeout: Duration.minutes(1) })).toThrow(/'timeout' must be between 5 minutes and 1 day 12 hours, got 1 minute/);
  });

  test('timeout refuses a value that is not whole minutes', () => {
    expect(build({ timeout: Duration.seconds(301) })).toThrow(/'timeout' must be a whole number of minutes/);
  });

  test('timeout refuses 37 hours, over the 36 hours CodeBuild allows', () => {
    expect(build({ timeout: Duration.hours(37) })).toThrow(/'timeout' must be between 5 minutes and 1 day 12 hours, got 1 day 13 hours/);
  });

  test('testReportDirectory refuses the absolute path /abs: it is relative to the source root', () => {
    expect(build({ testReportDirectory: '/abs' })).toThrow(/'testReportDirectory' must be relative to the source root, got '\/abs'/);
  });

  test.each(['', '  '])('testReportDirectory refuses the empty directory %p', (directory) => {
    expect(build({ testReportDirectory: directory })).toThrow(new RegExp(`'testReportDirectory' must not be empty, got '${directory}'`));
  });

  test.each(['', ' '])('BuildSecret.fromSecretsManager refuses the empty jsonField %p', (jsonField) => {
    const secret = someSecret();
    expect(() => BuildSecret.fromSecretsManager(secret, jsonField))
      .toThrow(new RegExp(`BuildSecret\\.fromSecretsManager: 'jsonField' must not be empty, got '${jsonField}'`));
  });

  test('the error names the construct path', () => {
    expect(build({ timeout: Duration.minutes(1) })).toThrow(/^BuildStep 'Default\/Build': /);
  });
});

describe('BuildStep.pipelineAction variables namespace', () => {
  const stack = new Stack();
  const key = new kms.Key(stack, 'Key');
  const step = new BuildStep(stack, 'Build', { encryptionKey: key });
  const input = new codepipeline.Artifact('Source');

  test('the action exports the build\'s variables under the namespace it is given (by default aws-cdk-lib names one only when a variable is read)', () => {
    const named = step.pipelineAction({ actionName: 'Build', input, variablesNamespace: 'BuildVariables' }) as any;
    const plain = step.pipelineAction({ actionName: 'Build', input }) as any;
    expect(named.actionProperties.variablesNamespace).toBe('BuildVariables');
    expect(plain.actionProperties.variablesNamespace).not.toBe('BuildVariables');
  });

  test('a namespace CodePipeline does not accept is refused with the namespace', () => {
    expect(() => step.pipelineAction({ actionName: 'Build', input, variablesNamespace: 'build vars' }))
      .toThrow(/'variablesNamespace' must be 1 to 100 letters, digits or @ _ -, got 'build vars'/);
  });
});

describe('BuildStep.pipelineAction environment variables', () => {
  const stack = new Stack();
  const key = new kms.Key(stack, 'Key');
  const step = new BuildStep(stack, 'Build', {
    encryptionKey: key,
    secrets: { NPM_AUTH: BuildSecret.fromSsmParameter(ssm.StringParameter.fromStringParameterName(stack, 'Npm', '/npm/auth')) },
  });
  const input = new codepipeline.Artifact('Source');
  const action = (environmentVariables: { [name: string]: string }) =>
    () => step.pipelineAction({ actionName: 'Build', input, environmentVariables });

  test('a variable read from an earlier action and a token pass', () => {
    expect(action({ IMAGE_URI: '#{Build.IMAGE_URI}', BUCKET: key.keyArn })).not.toThrow();
  });

  test.each(['1ST', 'MY-VAR', 'my var', ''])('a name the build shell cannot use (%p) is refused with the name', (name) => {
    expect(action({ [name]: 'x' })).toThrow(new RegExp(`^BuildStep 'Default/Build': 'environmentVariables' must name variables with letters, digits and '_'.*, got '${name}'$`));
  });

  test('a name starting with CODEBUILD_ is refused: CodeBuild reserves the prefix', () => {
    expect(action({ CODEBUILD_SRC_DIR: '/tmp' })).toThrow(/'environmentVariables' .*'CODEBUILD_'.*, got 'CODEBUILD_SRC_DIR'/);
  });

  test.each(['PIPELINE_EXECUTION_ID', 'JUNIT_REPORT_GROUP_ARN'])('%s is refused: the step sets it itself and would lose it silently', (name) => {
    expect(action({ [name]: 'x' })).toThrow(new RegExp(`'environmentVariables' must not set JUNIT_REPORT_GROUP_ARN or PIPELINE_EXECUTION_ID, which the build step sets itself, got '${name}'`));
  });

  test('a name of the step\'s secrets is refused: the plain value would replace the secret', () => {
    expect(action({ NPM_AUTH: 'x' })).toThrow(/'environmentVariables' must not override a variable of the step's 'secrets' with a plain-text value, got 'NPM_AUTH'/);
  });

  test('a name that looks like a secret is refused and points to secrets; a name that only locates one passes', () => {
    expect(action({ DB_PASSWORD: 'x' })).toThrow(/'environmentVariables' must not carry secrets in plain text: .*'secrets'.*, got 'DB_PASSWORD'/);
    expect(action({ DB_PASSWORD_SECRET_ARN: '#{Build.ARN}' })).not.toThrow();
  });

  test('more than CodePipeline\'s 1,000 characters of configuration is refused with the length; exactly 1,000 passes', () => {
    // `[{"name":"V","type":"PLAINTEXT","value":""},{"name":"PIPELINE_EXECUTION_ID",...}]` is 142 characters.
    const fill = 1000 - 142;
    expect(action({ V: 'x'.repeat(fill) })).not.toThrow();
    expect(action({ V: 'x'.repeat(fill + 1) })).toThrow(/'environmentVariables' must fit, with PIPELINE_EXECUTION_ID, in CodePipeline's 1000 characters .*, got '1001 characters'/);
  });
});

describe('BuildStep leaves nothing behind', () => {
  const stack = new Stack();
  const step = new BuildStep(stack, 'Build', { encryptionKey: new kms.Key(stack, 'Key') });
  const template = Template.fromStack(stack);

  test('the build may not create report groups other than its own (CodeBuild would, for a buildspec naming one, and nothing deletes them)', () => {
    const denies = roleStatements(template, step).filter((st) => st.Effect === 'Deny');
    expect(denies).toEqual([{
      Effect: 'Deny',
      Action: 'codebuild:CreateReportGroup',
      NotResource: { 'Fn::GetAtt': [stack.getLogicalId(step.reportGroup.node.defaultChild as CfnElement), 'Arn'] },
    }]);
  });
});
