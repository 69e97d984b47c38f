/**
 * Each pattern's quick start with `infrastructure` added: compliant, deploys its stack and the stack it adds, and
 * keeps its drift guarantee when the pipeline itself runs `cdk deploy` (ADRs 0006-0009).
 *
 * Each app is synthesized once. "Before" is the app as the pipeline synthesizes it for a revision; "after" is the same
 * revision synthesized again after a release wrote its state (the release changes nothing in the repository);
 * "changed" is a later push that also changes the infrastructure. What production runs is then resolved from the
 * template the pipeline would deploy and the state the release left (SSM parameters, the alias the controller moved).
 */
import { App, Stack } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import { IConstruct } from 'constructs';
import {
  Ec2BlueGreenPipeline, Ec2BlueGreenPipelineProps, FargateBlueGreenPipeline, FargateBlueGreenPipelineProps,
  InfrastructureUpdate, PipelineSource, ServerlessApiPipeline, ServerlessApiPipelineProps,
} from '../../src';
import { checkApp, describeFailures, StackReport } from '../compliance/harness';
import { CONNECTION_ARN, flatten } from '../util/fixtures';

const ENV = { account: '123456789012', region: 'eu-west-1' };
const INFRASTRUCTURE_STAGES = ['Infrastructure', 'InfrastructureApproval', 'InfrastructureDeploy'];

function source(repo: string): PipelineSource {
  return PipelineSource.connection(repo, 'main', { connectionArn: CONNECTION_ARN });
}

function idOf(construct: IConstruct): string {
  const child = (construct.node.defaultChild ?? construct) as any;
  return Stack.of(construct).resolve(child.logicalId);
}

/** Every stack of an app, by construct path, with its synthesized template. */
function templatesOf(app: App): Record<string, any> {
  const assembly = app.synth();
  return Object.fromEntries(app.node.findAll().filter((c): c is Stack => Stack.isStack(c))
    .map((s) => [s.node.path, assembly.getStackArtifact(s.artifactId).template]));
}

/**
 * What CloudFormation deploys for a value, given the SSM parameters' values: resolves `Ref`s to SSM-typed parameters
 * and every `Fn::If` whose condition is an `Fn::Equals` of such values.
 */
function resolveWith(template: any, ssm: Record<string, string>, value: unknown): any {
  const parameters = template.Parameters ?? {};
  const resolve = (v: any): any => {
    if (Array.isArray(v)) return v.map(resolve);
    if (v && typeof v === 'object') {
      if (typeof v.Ref === 'string' && String(parameters[v.Ref]?.Type).startsWith('AWS::SSM::Parameter::Value')) {
        const name = parameters[v.Ref].Default;
        expect(Object.keys(ssm)).toContain(name);
        return ssm[name];
      }
      if (v['Fn::If']) {
        const [condition, whenTrue, whenFalse] = v['Fn::If'];
        const [a, b] = template.Conditions[condition]['Fn::Equals'].map(resolve);
        return a === b ? resolve(whenTrue) : resolve(whenFalse);
      }
      return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, resolve(x)]));
    }
    return v;
  };
  return resolve(value);
}

function stagesOf(template: any): string[] {
  const [pipeline] = Object.values(template.Resources).filter((r: any) => r.Type === 'AWS::CodePipeline::Pipeline') as any[];
  return pipeline.Properties.Stages.map((s: any) => s.Name);
}

/** The `cdk deploy` command of the pipeline's deploy step. */
type WithInfrastructure = { pipeline: { infrastructureUpdate?: { deployStep: { project: IConstruct } } } };
function deployCommandOf(stack: Stack, template: any, pattern: WithInfrastructure): string {
  const project = template.Resources[idOf(pattern.pipeline.infrastructureUpdate!.deployStep.project)];
  const spec = JSON.parse(flatten(stack, project.Properties.Source.BuildSpec));
  return (spec.phases.build.commands as string[]).find((c) => c.startsWith('cdk deploy'))!;
}

function expectClean(reports: StackReport[]): void {
  expect(reports.length).toBeGreaterThan(1);
  expect(reports.map(describeFailures)).toEqual(reports.map((r) => `${r.stackName}: clean`));
}

interface Synthesized<P> {
  readonly app: App;
  readonly stack: Stack;
  readonly pattern: P;
  readonly templates: Record<string, any>;
  readonly reports?: StackReport[];
}

function synthesize<P>(make: (stack: Stack) => P, check = false): Synthesized<P> {
  const app = new App();
  const stack = new Stack(app, 'Web', { env: ENV });
  const pattern = make(stack);
  // checkApp synthesizes; the templates then come from the same (cached) assembly.
  const reports = check ? checkApp(app) : undefined;
  return { app, stack, pattern, templates: templatesOf(app), reports };
}

describe('FargateBlueGreenPipeline quick start with infrastructure', () => {
  const props = (extra: Partial<FargateBlueGreenPipelineProps> = {}): FargateBlueGreenPipelineProps => ({
    source: source('my-org/my-service'),
    infrastructure: InfrastructureUpdate.cdkApp({ directory: 'infra' }),
    ...extra,
  });
  const before = synthesize((s) => new FargateBlueGreenPipeline(s, 'Web', props()), true);
  const after = synthesize((s) => new FargateBlueGreenPipeline(s, 'Web', props()));
  const changed = synthesize((s) => new FargateBlueGreenPipeline(s, 'Web', props({ memoryLimitMiB: 1024 })));
  const imageStack = Object.keys(before.templates).find((p) => p !== 'Web')!;
  const imageOf = (run: Synthesized<FargateBlueGreenPipeline>, ssm: Record<string, string>) => {
    const template = run.templates.Web;
    const taskDefinition = template.Resources[idOf(run.pattern.taskDefinition)];
    return resolveWith(template, ssm, taskDefinition.Properties.ContainerDefinitions[0].Image);
  };

  test('0 cdk-nag AwsSolutions/Serverless violations and 0 validator ERROR/WARN in both stacks', () => {
    expectClean(before.reports!);
  });

  test('updates the infrastructure between Build and Release', () => {
    expect(stagesOf(before.templates.Web)).toEqual(['Source', 'Build', ...INFRASTRUCTURE_STAGES, 'Release']);
  });

  test('deploys the service\'s stack and its ...Image stack', () => {
    expect(imageStack).toMatch(/Image$/);
    expect(deployCommandOf(before.stack, before.templates.Web, before.pattern)).toContain(`'Web' '${imageStack}'`);
  });

  test('the templates the pipeline deploys do not depend on what was released', () => {
    expect(after.templates).toEqual(before.templates);
  });

  test('after a release, the pipeline\'s cdk deploy runs the released image, with or without an infrastructure change', () => {
    const name = before.pattern.imageParameterName;
    const placeholder = 'docker.io/traefik/whoami:v1.10.1';
    expect(imageOf(before, { [name]: placeholder })).toBe(placeholder);
    const released = '123456789012.dkr.ecr.eu-west-1.amazonaws.com/web:abc1234-7';
    expect(imageOf(after, { [name]: released })).toBe(released);
    expect(imageOf(changed, { [name]: released })).toBe(released);
    const memory = (run: Synthesized<FargateBlueGreenPipeline>) => run.templates.Web.Resources[idOf(run.pattern.taskDefinition)].Properties.Memory;
    expect([memory(before), memory(changed)]).toEqual(['512', '1024']);
  });

  test('a deployment of the ...Image stack never writes the image parameter again (created once, Overwrite false)', () => {
    const resources = Object.values(before.templates[imageStack].Resources) as any[];
    const parameter = resources.find((r) => r.Type === 'Custom::ImageParameter');
    const create = JSON.parse(flatten(before.stack, parameter.Properties.Create));
    expect(create.parameters.Overwrite).toBe(false);
    expect(parameter.Properties.Update).toBeUndefined();
    expect(changed.templates[imageStack]).toEqual(before.templates[imageStack]);
  });
});

describe('ServerlessApiPipeline quick start with infrastructure', () => {
  const ROOT = 'GET /';
  const SLEEP = 'GET /sleep/{secs}';
  const props = (memorySize?: number): ServerlessApiPipelineProps => ({
    source: source('my-org/my-api'),
    routes: [
      { route: ROOT, entry: 'src/welcome.ts' },
      { route: SLEEP, entry: 'src/sleep.ts', smokeTestPath: '/sleep/0' },
    ],
    memorySize,
    infrastructure: InfrastructureUpdate.cdkApp({ directory: 'infra' }),
  });
  const before = synthesize((s) => new ServerlessApiPipeline(s, 'Api', props()), true);
  const after = synthesize((s) => new ServerlessApiPipeline(s, 'Api', props()));
  const changed = synthesize((s) => new ServerlessApiPipeline(s, 'Api', props(512)));
  const resourceOf = (run: Synthesized<ServerlessApiPipeline>, id: string) => run.templates.Web.Resources[id];

  test('0 cdk-nag AwsSolutions/Serverless violations and 0 validator ERROR/WARN', () => {
    expect(before.reports!.length).toBe(1);
    expect(before.reports!.map(describeFailures)).toEqual(['Web: clean']);
  });

  test('updates the infrastructure between Build and Release, deploying the API\'s stack', () => {
    expect(stagesOf(before.templates.Web)).toEqual(['Source', 'Build', ...INFRASTRUCTURE_STAGES, 'Release']);
    expect(deployCommandOf(before.stack, before.templates.Web, before.pattern)).toContain('--app "$CODEBUILD_SRC_DIR" \'Web\' --require-approval never');
  });

  test('the templates the pipeline deploys do not depend on what was released', () => {
    expect(after.templates).toEqual(before.templates);
  });

  test('after a release, the pipeline\'s cdk deploy leaves every alias where the controller moved it, with or without an infrastructure change', () => {
    for (const route of [ROOT, SLEEP]) {
      const aliasId = idOf(before.pattern.aliases[route]);
      // CloudFormation updates a resource only when its properties change: the alias's (and its pinned bootstrap
      // version's) are the same in every template, so no deployment moves production off the released version.
      expect(idOf(changed.pattern.aliases[route])).toBe(aliasId);
      expect(resourceOf(changed, aliasId)).toEqual(resourceOf(before, aliasId));
      const versionId = resourceOf(before, aliasId).Properties.FunctionVersion['Fn::GetAtt'][0];
      expect(resourceOf(before, versionId).Type).toBe('AWS::Lambda::Version');
      expect(resourceOf(changed, versionId)).toEqual(resourceOf(before, versionId));
      // The infrastructure change reaches $LATEST only (the next release publishes it), never the alias.
      const fn = idOf(before.pattern.functions[route]);
      expect([resourceOf(before, fn).Properties.MemorySize, resourceOf(changed, fn).Properties.MemorySize]).not.toEqual([512, 512]);
      expect(resourceOf(changed, fn).Properties.MemorySize).toBe(512);
      expect(resourceOf(changed, fn).Properties.Code.ZipFile).toContain('not released yet');
    }
  });
});

describe('Ec2BlueGreenPipeline quick start with infrastructure', () => {
  const props = (extra: Partial<Ec2BlueGreenPipelineProps> = {}): Ec2BlueGreenPipelineProps => ({
    source: source('my-org/my-web-app'),
    infrastructure: InfrastructureUpdate.cdkApp({ directory: 'infra' }),
    ...extra,
  });
  const before = synthesize((s) => new Ec2BlueGreenPipeline(s, 'Web', props()), true);
  const after = synthesize((s) => new Ec2BlueGreenPipeline(s, 'Web', props()));
  const changed = synthesize((s) => new Ec2BlueGreenPipeline(s, 'Web', props({ instanceType: new ec2.InstanceType('t4g.small') })));
  const stateStack = Object.keys(before.templates).find((p) => p !== 'Web')!;
  /** The target group production's listener forwards to, and each group's desired capacity, for a live color. */
  const production = (run: Synthesized<Ec2BlueGreenPipeline>, liveColor: string) => {
    const template = run.templates.Web;
    const ssm = { [run.pattern.liveColorParameterName]: liveColor };
    const listener = resolveWith(template, ssm, template.Resources[idOf(run.pattern.productionListener)].Properties.DefaultActions);
    const forward = listener[0].ForwardConfig?.TargetGroups ?? [{ TargetGroupArn: listener[0].TargetGroupArn }];
    const group = (g: IConstruct) => resolveWith(template, ssm, template.Resources[idOf(g)].Properties.DesiredCapacity);
    return {
      servedBy: listener[0].Type === 'fixed-response' ? listener[0].FixedResponseConfig.StatusCode : forward.map((t: any) => t.TargetGroupArn.Ref),
      blue: group(run.pattern.blueGroup),
      green: group(run.pattern.greenGroup),
    };
  };

  test('0 cdk-nag AwsSolutions/Serverless violations and 0 validator ERROR/WARN in both stacks', () => {
    expectClean(before.reports!);
  });

  test('updates the infrastructure between Build and Release, deploying the fleet\'s stack and its ...State stack', () => {
    expect(stagesOf(before.templates.Web)).toEqual(['Source', 'Build', ...INFRASTRUCTURE_STAGES, 'Release']);
    expect(stateStack).toMatch(/State$/);
    expect(deployCommandOf(before.stack, before.templates.Web, before.pattern)).toContain(`'Web' '${stateStack}'`);
  });

  test('the templates the pipeline deploys do not depend on what was released', () => {
    expect(after.templates).toEqual(before.templates);
  });

  test('after a release to green, the pipeline\'s cdk deploy keeps production on green, with or without an infrastructure change', () => {
    const green = idOf(before.pattern.greenTargetGroup);
    const blue = idOf(before.pattern.blueTargetGroup);
    expect(production(before, 'none').servedBy).toBe('503');
    expect(production(before, 'blue')).toEqual({ servedBy: [blue], blue: '2', green: '0' });
    for (const run of [after, changed]) {
      expect(production(run, 'green')).toEqual({ servedBy: [green], blue: '0', green: '2' });
    }
    const instanceTypeOf = (run: Synthesized<Ec2BlueGreenPipeline>) => Object.values(run.templates.Web.Resources)
      .filter((r: any) => r.Type === 'AWS::EC2::LaunchTemplate').map((r: any) => r.Properties.LaunchTemplateData.InstanceType);
    expect(instanceTypeOf(changed)).toEqual(['t4g.small', 't4g.small']);
    expect(changed.templates[stateStack]).toEqual(before.templates[stateStack]);
  });
});
