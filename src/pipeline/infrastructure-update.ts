import { DefaultStackSynthesizer, Duration, Lazy, RemovalPolicy, Stack, Stage, Token } from 'aws-cdk-lib';
import * as codebuild from 'aws-cdk-lib/aws-codebuild';
import * as codepipeline from 'aws-cdk-lib/aws-codepipeline';
import * as actions from 'aws-cdk-lib/aws-codepipeline-actions';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as ssm from 'aws-cdk-lib/aws-ssm';
import { Construct, IConstruct } from 'constructs';
import { BuildStep, BuildStepOptions } from './build-step';
import { PipelineNotifications } from './notifications';
import { consoleUrl } from '../private/console';
import { checkDuration, describe, invalidInput, normalizeRepositoryDirectory } from '../private/validate';

/**
 * How the pipeline deploys the CDK app of the repository (`InfrastructureUpdate.cdkApp()`).
 */
export interface CdkAppInfrastructureOptions {
  /**
   * The directory of the CDK app in the repository: the one with its `cdk.json`, `package.json` and
   * `package-lock.json` (the app pins its own `aws-cdk` CLI as a dependency).
   */
  readonly directory: string;

  /**
   * The stacks to deploy, by construct path (`Web`, `Prod/Web`) or stack name. Each must be a stack of this app, in
   * the pipeline's account and region.
   *
   * @default - the stack that holds the pipeline and the stacks it depends on (a pattern's `...-Image` or
   * `...-State` stack)
   */
  readonly stacks?: string[];

  /**
   * The qualifier the account was bootstrapped with (`cdk bootstrap --qualifier`); it names the bootstrap roles the
   * pipeline deploys through.
   *
   * @default - the qualifier of the stack's synthesizer, which is `hnb659fds` unless the app sets another
   */
  readonly qualifier?: string;

  /**
   * Stop for a manual approval when a deployment would broaden permissions (a new IAM statement, a security group
   * opened), with the security diff in the approval's message, as CDK Pipelines' `confirmPermissionsBroadening`.
   *
   * @default true
   */
  readonly confirmPermissionsBroadening?: boolean;

  /**
   * Let the synth step assume the bootstrap lookup role (`cdk-<qualifier>-lookup-role-<account>-<region>`, read-only)
   * for context lookups (`Vpc.fromLookup`, ...) that the app's committed `cdk.context.json` does not answer.
   *
   * @default false - the synth step has no AWS permissions beyond its build; a lookup that `cdk.context.json` does
   * not answer fails the synth
   */
  readonly contextLookups?: boolean;

  /**
   * The version of the AWS CDK CLI that checks and deploys the synthesized cloud assembly (the synth step runs the
   * app's own pinned CLI). It must read the assembly the app's `aws-cdk-lib` writes.
   *
   * @default '2' - the newest AWS CDK CLI 2.x when the step runs
   */
  readonly cliVersion?: string;

  /**
   * How long the deployment may run.
   *
   * @default Duration.hours(1)
   */
  readonly timeout?: Duration;
}

/**
 * Infrastructure from the repository: the pipeline deploys the CDK app that defines it, from the same push, before
 * the release.
 *
 * The app is synthesized from the source revision with its own pinned CDK CLI and dependencies by a build that has
 * no deploy permissions; a library-written build then diffs the cloud assembly for permission broadening (a manual
 * approval with the diff when it finds any) and deploys it through the account's CDK bootstrap roles, the only roles
 * it may assume. The repository's code never runs with deploy power.
 */
export abstract class InfrastructureUpdate {
  /**
   * The CDK app in `directory` of the repository, deployed with `cdk deploy` through the bootstrap roles.
   */
  public static cdkApp(options: CdkAppInfrastructureOptions): InfrastructureUpdate {
    return new CdkAppInfrastructure(options);
  }

  /** A readable name, for notifications and errors. */
  public abstract readonly description: string;

  /**
   * Adds the stages of the update to the pipeline.
   * @internal
   */
  public abstract _bind(scope: Construct, context: InfrastructureUpdateContext): InfrastructureUpdateStages;
}

/**
 * What `DeliveryPipeline` gives an infrastructure update.
 * @internal
 */
export interface InfrastructureUpdateContext {
  readonly pipeline: codepipeline.Pipeline;
  readonly sourceOutput: codepipeline.Artifact;
  readonly notifications: PipelineNotifications;
  readonly artifactKey: kms.IKey;
  readonly removalPolicy: RemovalPolicy;
}

/**
 * The stages and build steps an infrastructure update added to a pipeline.
 */
export interface InfrastructureUpdateStages {
  /** The stages, in pipeline order: `Infrastructure`, `InfrastructureApproval` (when broadening is confirmed), `InfrastructureDeploy`. */
  readonly stages: codepipeline.IStage[];

  /** The build that synthesizes the app (no deploy permissions). */
  readonly synthStep: BuildStep;

  /** The build that diffs the cloud assembly for permission broadening, unless `confirmPermissionsBroadening` is false. */
  readonly securityCheckStep?: BuildStep;

  /** The build that deploys the cloud assembly through the bootstrap roles. */
  readonly deployStep: BuildStep;

  /** The synthesized cloud assembly. */
  readonly cloudAssembly: codepipeline.Artifact;
}

/** The stage and action names, which notifications and tests rely on. @internal */
export const INFRASTRUCTURE_STAGE = 'Infrastructure';
/** @internal */
export const INFRASTRUCTURE_APPROVAL_STAGE = 'InfrastructureApproval';
/** @internal */
export const INFRASTRUCTURE_DEPLOY_STAGE = 'InfrastructureDeploy';
/** The namespace of the security check's variables. @internal */
export const SECURITY_CHECK_NAMESPACE = 'InfrastructureCheck';

/** CDK's bootstrap template allows this for `--qualifier`. */
const QUALIFIER = /^[A-Za-z0-9_-]{1,10}$/;
/** An npm version or range of the CLI, without shell metacharacters. */
const CLI_VERSION = /^[0-9A-Za-z.^~<>=|* -]{1,40}$/;
/** CodePipeline's limit on a manual approval's message is 500 characters; the check keeps its summary below. */
const SUMMARY_LIMIT = 450;

class CdkAppInfrastructure extends InfrastructureUpdate {
  public readonly description: string;

  constructor(private readonly options: CdkAppInfrastructureOptions) {
    super();
    this.description = `InfrastructureUpdate.cdkApp(${describe(options.directory)})`;
    const where = 'InfrastructureUpdate.cdkApp';
    if (options.stacks !== undefined) {
      if (options.stacks.length === 0) {
        throw invalidInput(where, 'stacks', [], 'must name at least one stack, or be left out for the stack of the pipeline and its dependencies');
      }
      for (const name of options.stacks) {
        if (Token.isUnresolved(name) || !/^[A-Za-z0-9/_-]{1,256}$/.test(name)) {
          throw invalidInput(where, 'stacks', name, 'must name stacks by construct path or stack name (letters, digits, / _ -)');
        }
      }
    }
    if (options.qualifier !== undefined) checkQualifier(where, options.qualifier);
    if (options.cliVersion !== undefined && (Token.isUnresolved(options.cliVersion) || !CLI_VERSION.test(options.cliVersion))) {
      throw invalidInput(where, 'cliVersion', options.cliVersion, 'must be an npm version or range of aws-cdk, like \'2\' or \'2.1031.0\'');
    }
    checkDuration(where, 'timeout', options.timeout, Duration.minutes(5), Duration.hours(8), 'minutes');
  }

  public _bind(scope: Construct, context: InfrastructureUpdateContext): InfrastructureUpdateStages {
    const directory = normalizeRepositoryDirectory(scope, 'infrastructure.directory', this.options.directory);
    if (Token.isUnresolved(directory)) {
      throw invalidInput(scope, 'infrastructure.directory', directory, 'must be a literal path inside the repository');
    }
    let stack = Stack.of(scope);
    while (stack.nestedStackParent) stack = stack.nestedStackParent;
    if (Token.isUnresolved(stack.account) || Token.isUnresolved(stack.region)) {
      throw invalidInput(scope, 'infrastructure', this.description,
        `needs the account and region of stack '${stack.node.path}': give it env: { account: '123456789012', region: 'eu-west-1' } ` +
        '(or process.env.CDK_DEFAULT_ACCOUNT and process.env.CDK_DEFAULT_REGION), so that the pipeline may assume the ' +
        'bootstrap roles of that one environment');
    }
    const qualifier = resolveQualifier(scope, stack, this.options.qualifier);
    const roles = bootstrapRoles(stack, qualifier);
    const stacks = new StackSelection(scope, stack, this.options.stacks);

    const buildStep = (id: string, options: BuildStepOptions) => new BuildStep(scope, id, {
      ...options,
      encryptionKey: context.artifactKey,
      removalPolicy: context.removalPolicy,
    });

    const cloudAssembly = new codepipeline.Artifact('CloudAssembly');
    const synthStep = buildStep('InfrastructureSynth', {
      buildSpec: synthBuildSpec(directory),
      timeout: Duration.minutes(30),
    });
    if (this.options.contextLookups === true) {
      synthStep.role.addToPrincipalPolicy(new iam.PolicyStatement({ actions: ['sts:AssumeRole'], resources: [roles.lookup] }));
    }

    const cli = this.options.cliVersion ?? '2';
    const checked = this.options.confirmPermissionsBroadening ?? true;
    const stageActions: codepipeline.IAction[] = [synthStep.pipelineAction({
      actionName: 'Synth', input: context.sourceOutput, outputs: [cloudAssembly],
    })];
    let securityCheckStep: BuildStep | undefined;
    if (checked) {
      securityCheckStep = buildStep('InfrastructureSecurityCheck', {
        buildSpec: securityCheckBuildSpec(cli, stacks),
        timeout: Duration.minutes(30),
      });
      // cdk diff reads the deployed templates with the lookup role (read-only); never the deploy role, so that nothing
      // in this build (whose input the repository's code wrote) could deploy.
      securityCheckStep.role.addToPrincipalPolicy(new iam.PolicyStatement({
        actions: ['sts:AssumeRole'], resources: [roles.lookup],
      }));
      stageActions.push(securityCheckStep.pipelineAction({
        actionName: 'SecurityCheck', input: cloudAssembly, variablesNamespace: SECURITY_CHECK_NAMESPACE, runOrder: 2,
      }));
    }
    const stages: codepipeline.IStage[] = [context.pipeline.addStage({ stageName: INFRASTRUCTURE_STAGE, actions: stageActions })];

    if (checked) {
      // The approval's stage is entered only when the check found broadening (VariableCheck rule; SKIP otherwise).
      const link = `#{${SECURITY_CHECK_NAMESPACE}.LINK}`;
      stages.push(context.pipeline.addStage({
        stageName: INFRASTRUCTURE_APPROVAL_STAGE,
        beforeEntry: {
          conditions: [{
            result: codepipeline.Result.SKIP,
            rules: [new codepipeline.Rule({
              name: 'PermissionsBroadened',
              provider: 'VariableCheck',
              version: '1',
              configuration: { Variable: `#{${SECURITY_CHECK_NAMESPACE}.BROADENING}`, Value: 'true', Operator: 'EQ' },
            })],
          }],
        },
        actions: [new actions.ManualApprovalAction({
          actionName: 'ConfirmBroadening',
          additionalInformation: `#{${SECURITY_CHECK_NAMESPACE}.SUMMARY}`,
          externalEntityLink: link,
          timeout: Duration.hours(24),
        })],
      }));
      context.notifications.notifyOnApprovalNeeded(INFRASTRUCTURE_APPROVAL_STAGE, 'ConfirmBroadening',
        consoleUrl(`codesuite/codebuild/${stack.account}/projects/${securityCheckStep!.project.projectName}/history`));
    }

    // Failed deployments of one assembly, counted so that a deployment that fails while changing the pipeline (each
    // update and its rollback restart the pipeline on the same commit) stops after two attempts instead of looping.
    const attempts = new ssm.StringParameter(scope, 'InfrastructureAttempts', {
      stringValue: 'none',
      description: `Failed infrastructure deployments of ${context.pipeline.node.path}: <assembly sha256>:<count>`,
    });
    const deployStep = buildStep('InfrastructureDeploy', {
      buildSpec: deployBuildSpec(cli, stacks, checked, attempts.parameterName),
      timeout: this.options.timeout ?? Duration.hours(1),
    });
    deployStep.role.addToPrincipalPolicy(new iam.PolicyStatement({
      actions: ['sts:AssumeRole'], resources: [roles.deploy, roles.filePublishing, roles.imagePublishing],
    }));
    deployStep.role.addToPrincipalPolicy(new iam.PolicyStatement({
      actions: ['ssm:GetParameter', 'ssm:PutParameter', 'ssm:DeleteParameter'], resources: [attempts.parameterArn],
    }));
    stages.push(context.pipeline.addStage({
      stageName: INFRASTRUCTURE_DEPLOY_STAGE,
      actions: [deployStep.pipelineAction({
        actionName: 'Deploy',
        input: cloudAssembly,
        environmentVariables: checked ? { CHECKED_ASSEMBLY_SHA256: `#{${SECURITY_CHECK_NAMESPACE}.ASSEMBLY_SHA256}` } : undefined,
      })],
    }));

    return { stages, synthStep, securityCheckStep, deployStep, cloudAssembly };
  }
}

function checkQualifier(where: IConstruct | string, qualifier: string): void {
  if (Token.isUnresolved(qualifier)) {
    throw invalidInput(where, 'qualifier', qualifier,
      'must be a literal string known at synth time (it names the bootstrap roles the pipeline may assume)');
  }
  if (!QUALIFIER.test(qualifier)) {
    throw invalidInput(where, 'qualifier', qualifier, 'must be 1 to 10 letters, digits, _ or - (as cdk bootstrap --qualifier)');
  }
}

/** The qualifier asked for, checked against the one the stack is synthesized with. */
function resolveQualifier(scope: Construct, stack: Stack, given: string | undefined): string {
  const synthesizer = stack.synthesizer;
  if (!(synthesizer instanceof DefaultStackSynthesizer)) {
    throw invalidInput(scope, 'infrastructure', synthesizer.constructor.name,
      `needs stack '${stack.node.path}' to use DefaultStackSynthesizer, whose bootstrap roles the pipeline deploys through`);
  }
  const synthesized = synthesizer.bootstrapQualifier ?? DefaultStackSynthesizer.DEFAULT_QUALIFIER;
  if (Token.isUnresolved(synthesized)) {
    throw invalidInput(scope, 'infrastructure.qualifier', synthesized,
      'must be a literal string: the stack\'s synthesizer has a qualifier that is resolved only at deploy time');
  }
  if (given !== undefined && given !== synthesized) {
    throw invalidInput(scope, 'infrastructure.qualifier', given,
      `must be the qualifier stack '${stack.node.path}' is synthesized with ('${synthesized}'): set it on the stack's DefaultStackSynthesizer or the @aws-cdk/core:bootstrapQualifier context`);
  }
  checkQualifier(scope, synthesized);
  return synthesized;
}

interface BootstrapRoles {
  readonly deploy: string;
  readonly filePublishing: string;
  readonly imagePublishing: string;
  readonly lookup: string;
}

/** The ARNs of the bootstrap roles of the stack's account and region (the names `cdk bootstrap` gives them). */
function bootstrapRoles(stack: Stack, qualifier: string): BootstrapRoles {
  const role = (kind: string) => stack.formatArn({
    service: 'iam',
    region: '',
    account: stack.account,
    resource: 'role',
    resourceName: `cdk-${qualifier}-${kind}-role-${stack.account}-${stack.region}`,
  });
  return { deploy: role('deploy'), filePublishing: role('file-publishing'), imagePublishing: role('image-publishing'), lookup: role('lookup') };
}

/**
 * The stacks to deploy: named ones, checked against the app when it is synthesized, or the pipeline's stack and the
 * stacks it depends on.
 */
class StackSelection {
  constructor(private readonly scope: Construct, private readonly owner: Stack, private readonly names: string[] | undefined) {
    scope.node.addValidation({ validate: () => this.problems() });
  }

  /** The construct paths the CLI selects stacks by (`--app <assembly> <path>...`). */
  public selectors(): string[] {
    return this.stacks().map((s) => s.node.path);
  }

  /** The selected stacks' paths, names and environments (`aws://account/region`) as JSON, for the assembly guard. */
  public expected(): string {
    return Lazy.string({
      produce: () => JSON.stringify(this.stacks().map((s) => ({ path: s.node.path, stackName: s.stackName, environment: `aws://${s.account}/${s.region}` }))),
    });
  }

  /** The selectors as shell words, resolved when the buildspec is rendered. */
  public shellWords(): string {
    return Lazy.string({ produce: () => this.selectors().map((s) => `'${s}'`).join(' ') });
  }

  private stacks(): Stack[] {
    if (this.names === undefined) {
      return [this.owner, ...dependenciesOf(this.owner)];
    }
    const all = allStacks(this.owner);
    return this.names.map((name) => all.find((s) => matches(s, name))).filter((s): s is Stack => s !== undefined);
  }

  private problems(): string[] {
    const all = allStacks(this.owner);
    const problems: string[] = [];
    for (const name of this.names ?? []) {
      if (!all.some((s) => matches(s, name))) {
        const known = all.map((s) => s.node.path).join(', ');
        problems.push(invalidInput(this.scope, 'infrastructure.stacks', name, `must name a stack of this app (${known})`).message);
      }
    }
    for (const stack of this.stacks()) {
      if (stack.account !== this.owner.account || stack.region !== this.owner.region) {
        problems.push(invalidInput(this.scope, 'infrastructure.stacks', stack.node.path,
          `must name stacks in the pipeline's account and region (${this.owner.account}, ${this.owner.region}); ` +
          `it is in ${stack.account}, ${stack.region}`).message);
      }
    }
    return problems;
  }
}

function matches(stack: Stack, name: string): boolean {
  return stack.node.path === name || (!Token.isUnresolved(stack.stackName) && stack.stackName === name);
}

function allStacks(owner: Stack): Stack[] {
  const root = Stage.of(owner)?.node.root ?? owner.node.root;
  return root.node.findAll().filter((c): c is Stack => Stack.isStack(c) && !c.nested);
}

function dependenciesOf(stack: Stack, seen = new Set<Stack>()): Stack[] {
  for (const dependency of stack.dependencies) {
    if (!seen.has(dependency)) {
      seen.add(dependency);
      dependenciesOf(dependency, seen);
    }
  }
  return [...seen];
}

/**
 * The synth: the app's own dependencies and its pinned CLI (`npx --no` never downloads one), writing the cloud
 * assembly. It runs the repository's code, so its build has no AWS permissions beyond its own build.
 */
function synthBuildSpec(directory: string): codebuild.BuildSpec {
  return codebuild.BuildSpec.fromObject({
    version: '0.2',
    phases: {
      install: { commands: [`cd "$CODEBUILD_SRC_DIR/${directory}"`, 'npm ci'] },
      build: { commands: [`cd "$CODEBUILD_SRC_DIR/${directory}"`, 'npx --no -- cdk synth --output "$CODEBUILD_SRC_DIR/cdk.out.pipeline"'] },
    },
    artifacts: { 'base-directory': 'cdk.out.pipeline', 'files': ['**/*'] },
  });
}

/**
 * The guard both library builds run on the cloud assembly before the CLI reads it (its input was written by the
 * repository's code in the synth). It follows `manifest.json` as the CLI does (asset manifests and nested assemblies
 * by the names the manifests give, any name), and refuses:
 * - assets `cdk deploy` would build by running commands (executable file assets, Docker builds): they would run the
 *   repository's code with the publishing roles;
 * - CLI configuration (`cdk.json`, `cdk.context.json`: its `build` command or `plugin`s would run), symbolic links and
 *   paths leaving the assembly, artifacts of a type it does not know;
 * - selected stacks whose name or environment differ from the ones the pipeline was synthesized with (`EXPECTED_STACKS`):
 *   a commit may not point a selected stack at another stack of the account.
 * It prints the assembly's SHA-256 (every file's path and content), so the deploy can prove it deploys what the
 * security check diffed.
 */
const ASSEMBLY_GUARD = 'node -e \'' + [
  'const fs=require("fs"),path=require("path"),crypto=require("crypto");',
  'const root=path.resolve(process.env.CODEBUILD_SRC_DIR);const bad=[];const seen=new Map();',
  'const rel=(f)=>path.relative(root,f);',
  'const inside=(d,f)=>{const p=path.resolve(d,String(f));if(!p.startsWith(root+path.sep)){bad.push("a path outside the assembly: "+f);return undefined;}return p;};',
  'const walk=(d)=>fs.readdirSync(d,{withFileTypes:true}).flatMap((e)=>{const f=path.join(d,e.name);',
  'if(e.isSymbolicLink()){bad.push("a symbolic link "+rel(f));return [];}return e.isDirectory()?walk(f):[f];});',
  'const files=walk(root).map(rel).sort();',
  'for(const f of files)if(["cdk.json","cdk.context.json"].includes(path.basename(f)))bad.push("CLI configuration "+f);',
  'const assets=(f)=>{if(!f||!fs.existsSync(f))return;const m=JSON.parse(fs.readFileSync(f,"utf8"));',
  'for(const [id,a] of Object.entries(m.files||{}))if(a.source&&a.source.executable)bad.push(rel(f)+" file "+id);',
  'for(const [id,a] of Object.entries(m.dockerImages||{}))if(a.source&&(a.source.executable||a.source.directory))bad.push(rel(f)+" image "+id);};',
  'for(const f of files)if(f.endsWith(".assets.json"))assets(path.join(root,f));',
  'const assembly=(d)=>{const mf=inside(d,"manifest.json");if(!mf||!fs.existsSync(mf)){bad.push("no manifest.json in "+(rel(d)||"."));return;}',
  'const m=JSON.parse(fs.readFileSync(mf,"utf8"));for(const [id,a] of Object.entries(m.artifacts||{})){const p=a.properties||{};',
  'if(a.type==="aws:cloudformation:stack")seen.set(a.displayName||id,{stackName:p.stackName||id,environment:a.environment});',
  'else if(a.type==="cdk:asset-manifest")assets(inside(d,p.file));',
  'else if(a.type==="cdk:cloud-assembly"){const n=inside(d,p.directoryName);if(n)assembly(n);}',
  'else if(a.type!=="cdk:tree")bad.push("an artifact "+id+" of unknown type "+a.type);}};',
  'assembly(root);',
  'for(const e of JSON.parse(process.env.EXPECTED_STACKS||"[]")){const s=seen.get(e.path);',
  'if(!s)bad.push("no stack "+e.path);',
  'else if(s.stackName!==e.stackName||s.environment!==e.environment)bad.push("stack "+e.path+" is "+s.stackName+" in "+s.environment+", not "+e.stackName+" in "+e.environment);}',
  'if(bad.length){console.error("The cloud assembly is refused (the library deploys templates and file assets only, of the stacks the pipeline was built with): "+bad.join(", "));process.exit(1);}',
  'const h=crypto.createHash("sha256");for(const f of files){h.update(f+"\\0");h.update(fs.readFileSync(path.join(root,f)));h.update("\\0");}',
  'process.stdout.write(h.digest("hex"));',
].join('') + '\'';

/** The guard's commands: refuse a bad assembly, then leave it for an empty directory (no configuration the CLI reads). */
const GUARD_ASSEMBLY = [
  `ASSEMBLY_SHA256="$(${ASSEMBLY_GUARD})"`,
  'export ASSEMBLY_SHA256',
  'echo "cloud assembly sha256 $ASSEMBLY_SHA256"',
  'cd "$(mktemp -d)"',
];

/**
 * The second failed deployment of one assembly is the last: a third attempt (a restart on the same commit, after a
 * deployment that changed the pipeline rolled back) fails before deploying, so the execution fails and notifies.
 */
const FAILED_ATTEMPTS_CHECK = [
  'PREVIOUS="$(aws ssm get-parameter --name "$ATTEMPTS_PARAMETER" --query Parameter.Value --output text)"',
  'if [ "$PREVIOUS" = "$ASSEMBLY_SHA256:2" ]; then echo "This cloud assembly failed to deploy twice (CloudFormation rolled ' +
    'the stacks back); push a fix, or set parameter $ATTEMPTS_PARAMETER to none to try it again" >&2; exit 1; fi',
];

function cliInstall(cli: string): string {
  // From an empty directory: no .npmrc of the assembly's is read.
  return `cd "$(mktemp -d)" && npm install --global --ignore-scripts --no-audit --no-fund "aws-cdk@${cli}"`;
}

/**
 * The security check, as CDK Pipelines' confirmPermissionsBroadening: `cdk diff --security-only --fail` against the
 * deployed stacks; any failure counts as broadening (a human looks). Exports BROADENING, SUMMARY and LINK.
 */
function securityCheckBuildSpec(cli: string, stacks: StackSelection): codebuild.BuildSpec {
  return codebuild.BuildSpec.fromObject({
    version: '0.2',
    env: { 'variables': { EXPECTED_STACKS: stacks.expected() }, 'exported-variables': ['BROADENING', 'SUMMARY', 'LINK', 'ASSEMBLY_SHA256'] },
    phases: {
      install: { commands: [cliInstall(cli)] },
      build: {
        commands: [
          ...GUARD_ASSEMBLY,
          'export LINK="https://$AWS_REGION.console.aws.amazon.com/codesuite/codebuild/projects/$(echo "$CODEBUILD_BUILD_ID" | cut -d: -f1)/build/$CODEBUILD_BUILD_ID/log?region=$AWS_REGION"',
          Lazy.string({
            produce: () => `if cdk diff --app "$CODEBUILD_SRC_DIR" --security-only --no-change-set --fail ${stacks.shellWords()} > security-diff.txt 2>&1; ` +
              'then export BROADENING=false; export SUMMARY="No security-impacting changes."; ' +
              'else export BROADENING=true; export SUMMARY="$(node -e \'const t=require("fs").readFileSync("security-diff.txt","utf8")' +
              '.replace(/\\x1b\\[[0-9;]*m/g,"").replace(/\\s+/g," ").trim();' +
              `const p="Permissions broaden (cdk diff --security-only): ";process.stdout.write(p+t.slice(0,${SUMMARY_LIMIT}-p.length))')"; fi`,
          }),
          'cat security-diff.txt',
          'echo "BROADENING=$BROADENING"',
        ],
      },
    },
  });
}

/**
 * The deployment: the library's CLI against the synthesized assembly, through the bootstrap roles only. After a
 * security check, only the very assembly it diffed (`CHECKED_ASSEMBLY_SHA256`, from the check's variables) deploys.
 */
function deployBuildSpec(cli: string, stacks: StackSelection, checked: boolean, attemptsParameter: string): codebuild.BuildSpec {
  return codebuild.BuildSpec.fromObject({
    version: '0.2',
    env: { variables: { EXPECTED_STACKS: stacks.expected(), ATTEMPTS_PARAMETER: attemptsParameter } },
    phases: {
      install: { commands: [cliInstall(cli)] },
      build: {
        commands: [
          ...GUARD_ASSEMBLY,
          ...(checked ? ['if [ "$ASSEMBLY_SHA256" != "$CHECKED_ASSEMBLY_SHA256" ]; then echo "The cloud assembly is not the one the security ' +
            'check diffed ($CHECKED_ASSEMBLY_SHA256); refusing to deploy it" >&2; exit 1; fi'] : []),
          ...FAILED_ATTEMPTS_CHECK,
          Lazy.string({
            produce: () => `cdk deploy --app "$CODEBUILD_SRC_DIR" ${stacks.shellWords()} --require-approval never --ci --progress events` +
              ' || { if [ "$PREVIOUS" = "$ASSEMBLY_SHA256:1" ]; then N=2; else N=1; fi; ' +
              // Version 1: the parameter was gone (the pipeline's stack being deleted) and the write created it; undo it.
              'V="$(aws ssm put-parameter --name "$ATTEMPTS_PARAMETER" --value "$ASSEMBLY_SHA256:$N" --overwrite --query Version --output text)"; ' +
              'if [ "$V" = 1 ]; then aws ssm delete-parameter --name "$ATTEMPTS_PARAMETER"; fi; exit 1; }',
          }),
        ],
      },
    },
  });
}
