/**
 * The self-updating example: the pipeline deploys the app in examples/self-updating/infra before it releases the
 * service of examples/service, and a push to either starts it.
 */
import { Stack } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { createApp, SelfUpdatingStack } from './app';
import { flatten } from '../../test/util/fixtures';

const app = createApp({}, { account: '123456789012', region: 'us-east-1' });
const stack = app.node.findChild('SelfUpdatingExample') as SelfUpdatingStack;
const template = Template.fromStack(stack);
const pipeline = Object.values(template.findResources('AWS::CodePipeline::Pipeline'))[0].Properties;

function buildSpecOf(project: { node: { defaultChild?: unknown } }): any {
  const id = Stack.of(stack).resolve((project.node.defaultChild as any).logicalId);
  return JSON.parse(flatten(stack, template.toJSON().Resources[id].Properties.Source.BuildSpec));
}

test('the infrastructure is deployed between Build and Release', () => {
  expect(pipeline.Stages.map((s: any) => s.Name))
    .toEqual(['Source', 'Build', 'Infrastructure', 'InfrastructureApproval', 'InfrastructureDeploy', 'Release']);
});

test('the synth runs in examples/self-updating/infra, the build in examples/service', () => {
  const update = stack.web.pipeline.infrastructureUpdate!;
  expect(buildSpecOf(update.synthStep.project).phases.install.commands[0]).toBe('cd "$CODEBUILD_SRC_DIR/examples/self-updating/infra"');
  template.hasResourceProperties('AWS::CodeBuild::Project', {
    Environment: Match.objectLike({
      EnvironmentVariables: Match.arrayWith([{ Name: 'DOCKER_DIRECTORY', Type: 'PLAINTEXT', Value: 'examples/service' }]),
    }),
  });
});

test('a push to the service or to the CDK app starts the pipeline', () => {
  const push = pipeline.Triggers[0].GitConfiguration.Push[0];
  expect(push.FilePaths.Includes).toEqual(['examples/service/**', 'examples/self-updating/infra/**']);
});

test('the deployment covers the service\'s stack and its ...-Image stack', () => {
  const commands = buildSpecOf(stack.web.pipeline.infrastructureUpdate!.deployStep.project).phases.build.commands as string[];
  const deploys = commands.filter((c) => c.startsWith('cdk deploy'));
  expect(deploys).toHaveLength(1);
  expect(deploys[0]).toMatch(/^cdk deploy --app "\$CODEBUILD_SRC_DIR" 'SelfUpdatingExample' '[A-Za-z0-9]+Image' --require-approval never/);
});
