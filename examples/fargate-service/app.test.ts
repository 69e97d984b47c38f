/**
 * The Fargate example wires the sample service: its directory, its welcome phrase, an approval before production
 * traffic, and the parameter its /secret route describes.
 */
import * as fs from 'fs';
import * as path from 'path';
import { Template, Match } from 'aws-cdk-lib/assertions';
import { createApp, FargateServiceStack } from './app';
import { DEFAULT_WELCOME_PHRASE } from '../service/src/app';

const app = createApp({}, { account: '123456789012', region: 'us-east-1' });
const stack = app.node.findChild('FargateServiceExample') as FargateServiceStack;
const template = Template.fromStack(stack);

test('the build works in examples/service, where the sample service and its Dockerfile are', () => {
  template.hasResourceProperties('AWS::CodeBuild::Project', {
    Environment: Match.objectLike({
      PrivilegedMode: true,
      EnvironmentVariables: Match.arrayWith([{ Name: 'DOCKER_DIRECTORY', Type: 'PLAINTEXT', Value: 'examples/service' }]),
    }),
  });
});

test('the smoke test looks for the sample service\'s welcome phrase', () => {
  template.hasResourceProperties('AWS::Lambda::Function', {
    Environment: { Variables: Match.objectLike({ SMOKE_TEST_EXPECTED_PHRASE: DEFAULT_WELCOME_PHRASE, SMOKE_TEST_HEALTH_PATH: '/healthcheck' }) },
  });
});

test('a human approves before production traffic, in the Release stage', () => {
  const pipelines = template.findResources('AWS::CodePipeline::Pipeline');
  type Stage = { Name: string; Actions: Array<{ Name: string; ActionTypeId: { Category: string } }> };
  const stages = Object.values(pipelines)[0].Properties.Stages as Stage[];
  expect(stages.map((s) => s.Name)).toEqual(['Source', 'Build', 'Release']);
  const release = stages.find((s) => s.Name === 'Release')!;
  expect(release.Actions.map((a) => `${a.Name}:${a.ActionTypeId.Category}`)).toEqual(
    expect.arrayContaining(['Deploy:Deploy', 'ApproveProductionTraffic:Approval', 'RecordRelease:Invoke']));
});

test('the container knows the parameter its /secret route describes, and may read it', () => {
  template.hasResourceProperties('AWS::ECS::TaskDefinition', {
    ContainerDefinitions: [Match.objectLike({
      Environment: Match.arrayWith([Match.objectLike({ Name: 'SECRET_PARAMETER_NAME' })]),
    })],
  });
  const taskRole = stack.getLogicalId(stack.web.taskDefinition.taskRole.node.defaultChild as never);
  template.hasResourceProperties('AWS::IAM::Policy', {
    Roles: [{ Ref: taskRole }],
    PolicyDocument: { Statement: Match.arrayWith([Match.objectLike({ Action: Match.arrayWith(['ssm:GetParameter']) })]) },
  });
});

test('the sample service\'s image runs as a non-root user (uid 1000, which the task also sets) and declares /tmp a volume', () => {
  const dockerfile = fs.readFileSync(path.join(__dirname, '..', 'service', 'Dockerfile'), 'utf8');
  const stages = dockerfile.split(/^FROM /m);
  const runtime = stages[stages.length - 1];
  expect(runtime).toMatch(/^\$\{NODE_IMAGE\}|^node:/);
  expect(dockerfile).toMatch(/^ARG NODE_IMAGE=node:/m);
  const users = [...runtime.matchAll(/^USER\s+(\S+)/gm)].map((m) => m[1]);
  // The last USER decides; `node` is uid 1000 in the official Node.js images.
  expect(users[users.length - 1]).toBe('node');
  expect(runtime).toMatch(/^VOLUME \["\/tmp"\]/m);
  template.hasResourceProperties('AWS::ECS::TaskDefinition', {
    ContainerDefinitions: [Match.objectLike({ User: '1000:1000', ReadonlyRootFilesystem: true })],
  });
});
