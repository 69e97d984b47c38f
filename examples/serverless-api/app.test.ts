/**
 * The serverless example serves the sample service's routes, each from its own function running the service's own
 * code (its Lambda adapter), and tests the welcome phrase before traffic shifts.
 */
import { Match, Template } from 'aws-cdk-lib/assertions';
import { createApp, SAMPLE_ROUTES, ServerlessApiStack } from './app';
import { flatten } from '../../test/util/fixtures';
import { DEFAULT_WELCOME_PHRASE } from '../service/src/app';

const app = createApp({}, { account: '123456789012', region: 'us-east-1' });
const stack = app.node.findChild('ServerlessApiExample') as ServerlessApiStack;
const template = Template.fromStack(stack);

test('every route of the sample service is a function of its own', () => {
  expect(Object.keys(stack.api.functions).sort()).toEqual([...SAMPLE_ROUTES].sort());
  template.resourceCountIs('AWS::Lambda::Alias', SAMPLE_ROUTES.length);
});

test('the build bundles the service\'s Lambda adapter (shared code, not a copy) from examples/service', () => {
  const project = Object.values(template.findResources('AWS::CodeBuild::Project'))[0];
  const spec = JSON.parse(flatten(stack, project.Properties.Source.BuildSpec));
  const commands: string[] = spec.phases.build.commands;
  expect(commands.filter((c) => c.includes('esbuild')).every((c) => c.includes("'src/lambda.ts'"))).toBe(true);
  expect(commands.filter((c) => c.includes('esbuild'))).toHaveLength(SAMPLE_ROUTES.length);
  expect(project.Properties.Environment.EnvironmentVariables).toEqual(
    expect.arrayContaining([{ Name: 'SOURCE_DIRECTORY', Type: 'PLAINTEXT', Value: 'examples/service' }]));
});

test('the pre-traffic test checks the welcome phrase on GET / and calls /sleep/0 for GET /sleep/{secs}', () => {
  const hook = stack.resolve((stack.api.preTrafficHook.node.defaultChild as any).environment).variables;
  const routes = JSON.parse(hook.ROUTES);
  expect(routes.GetRoot).toMatchObject({ method: 'GET', path: '/', expectedPhrase: DEFAULT_WELCOME_PHRASE });
  expect(routes.GetSleepSecs).toMatchObject({ path: '/sleep/{secs}', smokeTestPath: '/sleep/0' });
});

test('only the /secret function knows and may read the parameter it describes', () => {
  template.hasResourceProperties('AWS::Lambda::Function', {
    Environment: { Variables: Match.objectLike({ SECRET_PARAMETER_NAME: Match.anyValue() }) },
  });
  const withSecret = Object.values(template.findResources('AWS::Lambda::Function'))
    .filter((fn) => fn.Properties.Environment?.Variables?.SECRET_PARAMETER_NAME !== undefined);
  expect(withSecret).toHaveLength(1);
  const role = stack.getLogicalId(stack.api.functions['GET /secret'].role!.node.defaultChild as never);
  template.hasResourceProperties('AWS::IAM::Policy', {
    Roles: [{ Ref: role }],
    PolicyDocument: { Statement: Match.arrayWith([Match.objectLike({ Action: Match.arrayWith(['ssm:GetParameter']) })]) },
  });
});
