import { App, Duration, Stack, Token } from 'aws-cdk-lib';
import { Capture, Match, Template } from 'aws-cdk-lib/assertions';
import * as codepipeline from 'aws-cdk-lib/aws-codepipeline';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import * as elbv2 from 'aws-cdk-lib/aws-elasticloadbalancingv2';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as ssm from 'aws-cdk-lib/aws-ssm';
import { Approval, BuildSecret, FargateBlueGreenPipeline, FargateBlueGreenPipelineProps } from '../../src';
import { checkApp, describeFailures } from '../compliance/harness';
import { flatten } from '../util/fixtures';
import { actionOf, actionsOf, buildEnvOf, buildSpecOf, ENV, grantsOf, idOf, onlyResource, parameterArn, pipelineOf, resourceOf, source, stageOf, statementsOfRole } from '../util/template';

const PLACEHOLDER = 'docker.io/traefik/whoami:v1.10.1';

/** The other stacks of the app: the image parameter stacks the patterns created. */
function imageStacksOf(app: App, owner: Stack): Stack[] {
  return app.node.children.filter((c): c is Stack => Stack.isStack(c) && c !== owner);
}

/** The only container definition. */
function containerOf(template: Template): any {
  const taskDefinition = onlyResource(template, 'AWS::ECS::TaskDefinition');
  expect(taskDefinition.Properties.ContainerDefinitions).toHaveLength(1);
  return taskDefinition.Properties.ContainerDefinitions[0];
}

function containerEnvOf(template: Template): Record<string, string> {
  return Object.fromEntries((containerOf(template).Environment as any[]).map((v) => [v.Name, v.Value]));
}

/** The Lambda function the RecordRelease action invokes. */
function recordFunctionOf(template: Template, pattern: FargateBlueGreenPipeline): any {
  const action = actionOf(template, pattern, 'Release', 'RecordRelease');
  return resourceOf(template, action.Configuration.FunctionName.Ref);
}

// ------------------------------------------------------------------------------------------------------------------
// One app with the defaults, shared by every default assertion (and the compliance check).
// ------------------------------------------------------------------------------------------------------------------
const app = new App();
const stack = new Stack(app, 'Shop', { env: ENV });
const web = new FargateBlueGreenPipeline(stack, 'Web', { source: source() });
const template = Template.fromStack(stack);
const imageStacks = imageStacksOf(app, stack);
const imageStack = imageStacks[0];
const imageTemplate = Template.fromStack(imageStack);

describe('FargateBlueGreenPipeline: the image parameter (ADR 0006)', () => {
  test('lives in a second stack of the app, named after the pattern, that the user stack depends on (deployed first)', () => {
    expect(imageStacks).toHaveLength(1);
    expect(imageStack.node.id).toMatch(/Image$/);
    expect(imageStack.node.scope).toBe(app);
    expect(stack.dependencies).toContain(imageStack);
    expect(imageStack.account).toBe(ENV.account);
    expect(imageStack.region).toBe(ENV.region);
  });

  test('has a name under /cdk-delivery-pipelines/ that CloudFormation and the release functions share', () => {
    expect(web.imageParameterName).toMatch(/^\/cdk-delivery-pipelines\/Shop\/[A-Za-z0-9]+\/image$/);
  });

  test('copies of one app under different stack names (one per branch) get their own parameter, image stack and pipeline name', () => {
    const names = ['shop-alice', 'shop-bob'].map((stackName) => {
      const otherApp = new App();
      const otherStack = new Stack(otherApp, 'Shop', { env: ENV, stackName });
      const pattern = new FargateBlueGreenPipeline(otherStack, 'Web', { source: source() });
      return {
        parameter: pattern.imageParameterName,
        imageStack: imageStacksOf(otherApp, otherStack).map((st) => st.stackName).join(),
        pipeline: (pattern.pipeline.pipeline.node.defaultChild as codepipeline.CfnPipeline).name,
      };
    });
    expect(names[0].parameter).not.toEqual(names[1].parameter);
    expect(names[0].imageStack).not.toEqual(names[1].imageStack);
    expect(names[0].pipeline).not.toEqual(names[1].pipeline);
    expect(names[0].pipeline).toMatch(/^shop-alice-/);
  });

  test('a stack with only a region (or only an account) gives its image stack that part, so the key can be shared across them', () => {
    for (const [id, env] of [['RegionOnly', { region: 'eu-west-1' }], ['AccountOnly', { account: '123456789012' }]] as const) {
      const partialApp = new App();
      const partialStack = new Stack(partialApp, id, { env });
      const pattern = new FargateBlueGreenPipeline(partialStack, 'Web', { source: source() });
      const [partialImageStack] = imageStacksOf(partialApp, partialStack);
      expect([partialImageStack.account, partialImageStack.region].filter((v) => !Token.isUnresolved(v)))
        .toEqual([partialStack.account, partialStack.region].filter((v) => !Token.isUnresolved(v)));
      expect(Stack.of(pattern.pipeline.artifactKey)).toBe(partialImageStack);
      expect(() => partialApp.synth()).not.toThrow();
    }
  });

  test('is created once by a custom resource with Overwrite false, so a stack update never puts the placeholder back over a released image', () => {
    const resource = onlyResource(imageTemplate, 'Custom::ImageParameter');
    const create = JSON.parse(resource.Properties.Create);
    expect(create).toMatchObject({
      service: 'SSM',
      action: 'putParameter',
      parameters: { Name: web.imageParameterName, Value: PLACEHOLDER, Type: 'String', Overwrite: false },
      physicalResourceId: { id: web.imageParameterName },
      ignoreErrorCodesMatching: 'ParameterAlreadyExists',
    });
    expect(resource.Properties.Update).toBeUndefined();
  });

  test('is deleted with its stack (deleteParameter, tolerating a parameter already gone)', () => {
    const resource = onlyResource(imageTemplate, 'Custom::ImageParameter');
    expect(JSON.parse(resource.Properties.Delete)).toMatchObject({
      service: 'SSM',
      action: 'deleteParameter',
      parameters: { Name: web.imageParameterName },
      ignoreErrorCodesMatching: 'ParameterNotFound',
    });
  });

  test('the custom resource may only put and delete that one parameter', () => {
    const policy = onlyResource(imageTemplate, 'AWS::IAM::Policy');
    expect(policy.Properties.PolicyDocument.Statement).toEqual([{
      Action: ['ssm:PutParameter', 'ssm:DeleteParameter'],
      Effect: 'Allow',
      Resource: parameterArn(web.imageParameterName),
    }]);
  });

  test('the container image is a Ref to an SSM parameter-value CFN parameter defaulting to the parameter name, read on every deploy', () => {
    const parameters = template.findParameters('*', {
      Type: 'AWS::SSM::Parameter::Value<String>',
      Default: web.imageParameterName,
    });
    const ids = Object.keys(parameters);
    expect(ids).toHaveLength(1);
    expect(containerOf(template).Image).toEqual({ Ref: ids[0] });
  });
});

describe('FargateBlueGreenPipeline invariant 6: no CloudFormation update policy or property can move production traffic', () => {
  const json = template.toJSON();
  const resources: Record<string, any> = json.Resources;
  const ofType = (type: string) => Object.entries(resources).filter(([, r]) => r.Type === type);
  /** Every CloudFormation parameter the stack reads (the image parameter among them): values that change per release. */
  const parameterIds = Object.keys(json.Parameters ?? {});
  const references = (value: unknown): string[] => JSON.stringify(value).match(/"Ref":"([^"]+)"/g)?.map((m) => m.slice(7, -1)) ?? [];

  test('no resource of either stack has an UpdatePolicy, and neither template has a Transform or Hooks (no CodeDeploy blue/green hook)', () => {
    for (const t of [template, imageTemplate]) {
      const j = t.toJSON();
      expect(Object.entries(j.Resources).filter(([, r]: [string, any]) => r.UpdatePolicy !== undefined).map(([id]) => id)).toEqual([]);
      expect(j.Transform).toBeUndefined();
      expect(j.Hooks).toBeUndefined();
    }
    expect(ofType('AWS::CodeDeploy::DeploymentGroup')).toEqual([]);
  });

  test('the service is deployed by ECS itself (BLUE_GREEN, ECS controller), never by CodeDeploy or an external controller', () => {
    const [[, service]] = ofType('AWS::ECS::Service');
    expect(service.Properties.DeploymentController).toEqual({ Type: 'ECS' });
    expect(service.Properties.DeploymentConfiguration).toMatchObject({ Strategy: 'BLUE_GREEN' });
  });

  test('the listeners and their rules read no CloudFormation parameter and nothing of the task definition: a stack update with unchanged infrastructure, whatever image is recorded, leaves them alone', () => {
    const taskDefinitionId = ofType('AWS::ECS::TaskDefinition')[0][0];
    const traffic = [...ofType('AWS::ElasticLoadBalancingV2::Listener'), ...ofType('AWS::ElasticLoadBalancingV2::ListenerRule')];
    expect(traffic).toHaveLength(4);
    for (const [, resource] of traffic) {
      const refs = references(resource);
      expect(refs.filter((ref) => parameterIds.includes(ref))).toEqual([]);
      expect(refs).not.toContain(taskDefinitionId);
      expect(JSON.stringify(resource)).not.toContain('TaskDefinition');
    }
  });

  test('the rules declare blue 100 / green 0 once; a second synthesis (what a cdk deploy with unchanged props sends) has the very same listeners, rules and service', () => {
    const again = new App();
    const againStack = new Stack(again, 'Shop', { env: ENV });
    new FargateBlueGreenPipeline(againStack, 'Web', { source: source() });
    const againResources = Template.fromStack(againStack).toJSON().Resources;
    for (const type of ['AWS::ElasticLoadBalancingV2::Listener', 'AWS::ElasticLoadBalancingV2::ListenerRule', 'AWS::ECS::Service', 'AWS::ECS::TaskDefinition']) {
      for (const [id, resource] of ofType(type)) expect(againResources[id]).toEqual(resource);
    }
    for (const [, rule] of ofType('AWS::ElasticLoadBalancingV2::ListenerRule')) {
      expect(rule.Properties.Actions[0].ForwardConfig.TargetGroups.map((g: any) => g.Weight)).toEqual([100, 0]);
    }
  });

  test('the only thing that changes with a release is the image parameter\'s value, which only the task definition reads', () => {
    const readers = Object.entries(resources).filter(([, r]) => references(r).some((ref) => parameterIds.includes(ref))).map(([, r]) => r.Type);
    expect([...new Set(readers)]).toEqual(['AWS::ECS::TaskDefinition']);
  });
});

describe('FargateBlueGreenPipeline defaults: runtime', () => {
  test('an ECR repository that scans on push, never overwrites a tag, keeps the newest 20 released and 20 other images, and is emptied on delete', () => {
    const repository = resourceOf(template, idOf(web.repository));
    expect(repository.Properties).toMatchObject({
      ImageScanningConfiguration: { ScanOnPush: true },
      ImageTagMutability: 'IMMUTABLE',
      EmptyOnDelete: true,
    });
    const rules = JSON.parse(repository.Properties.LifecyclePolicy.LifecyclePolicyText).rules;
    // Released images (tagged released-<tag> by the recorder) are counted apart: unreleased builds cannot push the
    // image in production, or the ones a rollback needs, out of the repository.
    expect(rules).toEqual([
      {
        rulePriority: 1,
        description: expect.any(String),
        selection: { tagStatus: 'tagged', tagPrefixList: ['released-'], countType: 'imageCountMoreThan', countNumber: 20 },
        action: { type: 'expire' },
      },
      {
        rulePriority: 2,
        description: expect.any(String),
        selection: { tagStatus: 'any', countType: 'imageCountMoreThan', countNumber: 20 },
        action: { type: 'expire' },
      },
    ]);
    expect(repository.DeletionPolicy).toBe('Delete');
  });

  test('the cluster has Container Insights disabled (about 8 USD a month the free alarms do not need)', () => {
    expect(resourceOf(template, idOf(web.cluster)).Properties.ClusterSettings).toEqual([{ Name: 'containerInsights', Value: 'disabled' }]);
  });

  test('an ARM64 Linux task of 256 CPU units and 512 MiB', () => {
    template.hasResourceProperties('AWS::ECS::TaskDefinition', {
      Cpu: '256',
      Memory: '512',
      RuntimePlatform: { CpuArchitecture: 'ARM64', OperatingSystemFamily: 'LINUX' },
      RequiresCompatibilities: ['FARGATE'],
    });
  });

  test('the container listens on 8080 and tells the placeholder image that port through WHOAMI_PORT_NUMBER only', () => {
    expect(containerOf(template).PortMappings).toEqual([expect.objectContaining({ ContainerPort: 8080 })]);
    expect(containerEnvOf(template)).toEqual({ WHOAMI_PORT_NUMBER: '8080' });
    expect(containerOf(template).Secrets).toBeUndefined();
  });

  test('container logs go to a log group kept 30 days and deleted with the stack', () => {
    const container = containerOf(template);
    expect(container.LogConfiguration).toMatchObject({ LogDriver: 'awslogs', Options: { 'awslogs-group': { Ref: idOf(web.logGroup) } } });
    const logGroup = resourceOf(template, idOf(web.logGroup));
    expect(logGroup.Properties.RetentionInDays).toBe(30);
    expect(logGroup.DeletionPolicy).toBe('Delete');
  });

  test('two tasks, deployed BLUE_GREEN with a 5 minute bake and the circuit breaker rolling back', () => {
    template.hasResourceProperties('AWS::ECS::Service', {
      DesiredCount: 2,
      LaunchType: 'FARGATE',
      DeploymentConfiguration: Match.objectLike({
        Strategy: 'BLUE_GREEN',
        BakeTimeInMinutes: 5,
        DeploymentCircuitBreaker: { Enable: true, Rollback: true },
      }),
    });
  });

  test('the deployment rolls back on the 5xx, unhealthy-targets and latency alarms (not on RunningTasks, which fires during a deployment)', () => {
    const alarms = new Capture();
    template.hasResourceProperties('AWS::ECS::Service', {
      DeploymentConfiguration: Match.objectLike({ Alarms: { Enable: true, Rollback: true, AlarmNames: alarms } }),
    });
    expect(alarms.asArray()).toEqual(web.deploymentAlarms.map((alarm) => ({ Ref: idOf(alarm) })));
    const [http5xx, unhealthy, latency] = alarms.asArray().map((ref: any) => resourceOf(template, ref.Ref).Properties);
    expect(http5xx.MetricName).toBe('HTTPCode_Target_5XX_Count');
    expect(unhealthy.Metrics).toEqual(expect.arrayContaining([expect.objectContaining({ Label: 'Unhealthy targets' })]));
    expect(latency.MetricName).toBe('TargetResponseTime');
  });

  test('the POST_TEST_TRAFFIC_SHIFT lifecycle hook calls the release hook function with a role only ECS can assume', () => {
    const role = new Capture();
    template.hasResourceProperties('AWS::ECS::Service', {
      DeploymentConfiguration: Match.objectLike({
        LifecycleHooks: [{
          HookTargetArn: { 'Fn::GetAtt': [idOf(web.releaseHook), 'Arn'] },
          LifecycleStages: ['POST_TEST_TRAFFIC_SHIFT'],
          RoleArn: { 'Fn::GetAtt': [role, 'Arn'] },
        }],
      }),
    });
    const invokeRole = resourceOf(template, role.asString());
    expect(invokeRole.Properties.AssumeRolePolicyDocument.Statement).toEqual([
      expect.objectContaining({ Action: 'sts:AssumeRole', Principal: { Service: 'ecs.amazonaws.com' } }),
    ]);
    const invoke = grantsOf(statementsOfRole(template, role.asString()), 'lambda:InvokeFunction');
    expect(invoke).toHaveLength(1);
    expect(invoke[0].Resource).toContainEqual({ 'Fn::GetAtt': [idOf(web.releaseHook), 'Arn'] });
  });

  test('the tasks get a public IP in the public subnets (no NAT gateway to pull images through)', () => {
    template.hasResourceProperties('AWS::ECS::Service', {
      NetworkConfiguration: {
        AwsvpcConfiguration: Match.objectLike({
          AssignPublicIp: 'ENABLED',
          Subnets: web.vpc.publicSubnets.map((subnet) => ({ Ref: idOf(subnet) })),
        }),
      },
    });
  });

  test('a new VPC of 2 public subnets and no NAT gateway', () => {
    template.resourceCountIs('AWS::EC2::VPC', 1);
    template.resourceCountIs('AWS::EC2::NatGateway', 0);
    template.resourceCountIs('AWS::EC2::Subnet', 2);
    expect(web.vpc.publicSubnets).toHaveLength(2);
    expect(web.vpc.privateSubnets).toHaveLength(0);
    expect(web.vpc.isolatedSubnets).toHaveLength(0);
  });
});

describe('FargateBlueGreenPipeline defaults: load balancer', () => {
  test('both target groups health-check /healthcheck every 10 s, healthy after 2, and drain in 30 s', () => {
    for (const group of [web.blueTargetGroup, web.greenTargetGroup]) {
      const properties = resourceOf(template, idOf(group)).Properties;
      expect(properties).toMatchObject({
        HealthCheckPath: '/healthcheck',
        HealthCheckIntervalSeconds: 10,
        HealthyThresholdCount: 2,
        Port: 8080,
        TargetType: 'ip',
      });
      expect(properties.TargetGroupAttributes).toContainEqual({ Key: 'deregistration_delay.timeout_seconds', Value: '30' });
    }
  });

  test('production listens on HTTP 80, the test listener on HTTP 8080, and there is no redirect listener', () => {
    template.resourceCountIs('AWS::ElasticLoadBalancingV2::Listener', 2);
    expect(resourceOf(template, idOf(web.productionListener)).Properties).toMatchObject({ Port: 80, Protocol: 'HTTP' });
    expect(resourceOf(template, idOf(web.testListener)).Properties).toMatchObject({ Port: 8080, Protocol: 'HTTP' });
  });

  test('the load balancer security group lets anyone reach 80 and 8080 (the smoke test runs outside the VPC), nothing else', () => {
    const group = resourceOf(template, idOf(web.loadBalancer.connections.securityGroups[0]));
    const ingress = (group.Properties.SecurityGroupIngress as any[]).map((rule) => [rule.CidrIp, rule.FromPort, rule.ToPort]);
    expect(ingress).toEqual(expect.arrayContaining([['0.0.0.0/0', 80, 80], ['0.0.0.0/0', 8080, 8080]]));
    expect(ingress).toHaveLength(2);
  });

  test('the production and test URLs are the load balancer DNS name on http, the test one with :8080', () => {
    expect(flatten(stack, web.productionUrl)).toBe(`http://\${${idOf(web.loadBalancer)}.DNSName}`);
    expect(flatten(stack, web.testUrl)).toBe(`http://\${${idOf(web.loadBalancer)}.DNSName}:8080`);
  });
});

describe('FargateBlueGreenPipeline defaults: pipeline', () => {
  test('the ECS deploy action runs with its own narrow role: this service, this cluster\'s tasks, and only the task definition\'s two roles to pass', () => {
    const roleArn = actionOf(template, web, 'Release', 'Deploy').RoleArn;
    expect(roleArn['Fn::GetAtt']).toBeDefined();
    const statements = statementsOfRole(template, roleArn['Fn::GetAtt'][0]);
    expect(grantsOf(statements, 'ecs:UpdateService')).toEqual([expect.objectContaining({ Resource: { Ref: idOf(web.service) } })]);
    const passRole = grantsOf(statements, 'iam:PassRole');
    expect(passRole).toHaveLength(1);
    expect(passRole[0].Resource).toEqual([
      { 'Fn::GetAtt': [idOf(web.taskDefinition.taskRole), 'Arn'] },
      { 'Fn::GetAtt': [idOf(web.taskDefinition.executionRole!), 'Arn'] },
    ]);
    // Only the actions without resource-level permissions stay on `*` (ListTasks under an ecs:cluster condition).
    const onStar = statements.filter((st) => ([] as unknown[]).concat(st.Resource).includes('*'));
    expect(onStar.flatMap(actionsOf).sort()).toEqual(['ecs:DescribeTaskDefinition', 'ecs:ListTasks', 'ecs:RegisterTaskDefinition']);
    expect(grantsOf(statements, 'ecs:ListTasks')[0].Condition).toEqual({ ArnEquals: { 'ecs:cluster': { 'Fn::GetAtt': [idOf(web.cluster), 'Arn'] } } });
  });

  test('a CodePipeline V2 with a literal name (the hook looks the pipeline up by it) and stages Source, Build, Release, no Approve', () => {
    const pipeline = pipelineOf(template, web);
    expect(pipeline.PipelineType).toBe('V2');
    expect(typeof pipeline.Name).toBe('string');
    expect(pipeline.Name).toMatch(/^Shop-Web-/);
    expect((pipeline.Stages as any[]).map((s) => s.Name)).toEqual(['Source', 'Build', 'Release']);
  });

  test('the Build action exports its variables under the BuildVariables namespace (RecordRelease reads IMAGE_URI there)', () => {
    expect(actionOf(template, web, 'Build', 'Build').Namespace).toBe('BuildVariables');
  });

  test('the image is built on a privileged ARM container host, like the ARM64 tasks', () => {
    const project = onlyResource(template, 'AWS::CodeBuild::Project');
    expect(project.Properties.Environment).toMatchObject({ Type: 'ARM_CONTAINER', PrivilegedMode: true });
  });

  test('the build gets the repository URI, the container name and the Docker directory "."', () => {
    const env = buildEnvOf(template);
    expect(env.CONTAINER_NAME).toBe(web.container.containerName);
    expect(env.DOCKER_DIRECTORY).toBe('.');
    expect(flatten(stack, env.REPOSITORY_URI)).toContain(`\${${idOf(web.repository)}}`);
  });

  test('the buildspec exports IMAGE_URI and tags the image with the commit and the build number, never :latest', () => {
    const spec = buildSpecOf(stack, template);
    expect(spec.env['exported-variables']).toContain('IMAGE_URI');
    const build: string[] = spec.phases.build.commands;
    const revision = build.find((c) => c.startsWith('REVISION='));
    expect(revision).toContain('CODEBUILD_RESOLVED_SOURCE_VERSION');
    const tag = build.find((c) => c.startsWith('export IMAGE_TAG='));
    expect(tag).toContain('${REVISION}');
    expect(tag).toContain('CODEBUILD_BUILD_NUMBER');
    expect(build).toContain('export IMAGE_URI="${REPOSITORY_URI}:${IMAGE_TAG}"');
    expect(build).toContain('docker push "$IMAGE_URI"');
    expect(JSON.stringify(spec)).not.toContain(':latest');
  });

  test('the buildspec writes imagedefinitions.json for the ECS deploy action and makes it the artifact', () => {
    const spec = buildSpecOf(stack, template);
    const build: string[] = spec.phases.build.commands;
    expect(build[build.length - 1]).toMatch(/\$CONTAINER_NAME.*\$IMAGE_URI.*> "\$CODEBUILD_SRC_DIR\/imagedefinitions\.json"$/);
    expect(spec.artifacts.files).toEqual(['imagedefinitions.json']);
  });

  test('the unit tests run before the image is built: npm ci and the test script (if any), only when the directory has a package.json', () => {
    const spec = buildSpecOf(stack, template);
    expect(spec.phases.pre_build.commands).toEqual([
      'cd "$CODEBUILD_SRC_DIR/$DOCKER_DIRECTORY"',
      expect.stringMatching(/^if \[ -f package\.json \]; then npm ci && npm run test --if-present; else .*fi$/),
    ]);
    expect(Object.values(spec.reports)).toEqual([expect.objectContaining({ 'base-directory': 'reports/junit' })]);
  });

  test('Release runs the ECS deploy action first (timeout 60 minutes), then RecordRelease with the built IMAGE_URI', () => {
    const release = stageOf(template, web, 'Release');
    expect((release.Actions as any[]).map((a) => [a.Name, a.ActionTypeId.Provider, a.RunOrder])).toEqual([
      ['Deploy', 'ECS', 1],
      ['RecordRelease', 'Lambda', 2],
    ]);
    const deploy = actionOf(template, web, 'Release', 'Deploy');
    expect(deploy.Configuration).toMatchObject({
      ClusterName: { Ref: idOf(web.cluster) },
      ServiceName: { 'Fn::GetAtt': [idOf(web.service), 'Name'] },
      DeploymentTimeout: 60,
    });
    expect(deploy.InputArtifacts).toEqual([{ Name: 'Build' }]);
    const record = actionOf(template, web, 'Release', 'RecordRelease');
    // The pipeline execution id lets the recorder judge this release's service deployment, not the newest one.
    expect(JSON.parse(record.Configuration.UserParameters)).toEqual({
      imageUri: '#{BuildVariables.IMAGE_URI}',
      pipelineExecutionId: '#{codepipeline.PipelineExecutionId}',
    });
  });

  test('a failed Release stage does not roll back on its own: ECS has already put production back, and re-running an older execution would only redeploy it', () => {
    expect(stageOf(template, web, 'Release').OnFailure).toBeUndefined();
  });

  test('the documented rollback (rollback-stage) has what it needs: a V2 pipeline whose Release stage the recorder ends, and released images kept', () => {
    expect(pipelineOf(template, web).PipelineType).toBe('V2');
    expect(stageOf(template, web, 'Release').Actions.map((a: any) => a.Name)).toEqual(expect.arrayContaining(['Deploy', 'RecordRelease']));
    expect(web.rollbackCommand).toMatch(/^aws codepipeline rollback-stage --pipeline-name \S+ --stage-name Release --target-pipeline-execution-id /);
  });

  test('invariant 5 with Approval.none(): the hook has the release guard (pipeline, stage, deploy action, parameter) but no approval action', () => {
    const hook = resourceOf(template, idOf(web.releaseHook));
    const variables = hook.Properties.Environment.Variables;
    expect(Object.keys(variables).filter((name) => name.startsWith('APPROVAL_') || name === 'NOTIFY_TOPIC_ARN')).toEqual([]);
    expect(variables).toMatchObject({
      SMOKE_TEST_HEALTH_PATH: '/healthcheck',
      PLACEHOLDER_IMAGE: PLACEHOLDER,
      IMAGE_PARAMETER_NAME: web.imageParameterName,
      PIPELINE_NAME: pipelineOf(template, web).Name,
      RELEASE_STAGE_NAME: 'Release',
      DEPLOY_ACTION_NAME: 'Deploy',
    });
    expect(flatten(stack, variables.SMOKE_TEST_BASE_URL)).toBe(flatten(stack, web.testUrl));
  });

  test('invariant 5 with Approval.none(): the hook may read the image parameter, that pipeline\'s state and action executions, and the cluster\'s service deployments', () => {
    const statements = statementsOfRole(template, idOf(web.releaseHook.role!));
    const name = pipelineOf(template, web).Name;
    expect(grantsOf(statements, 'ssm:GetParameter').map((st) => st.Resource)).toEqual([parameterArn(web.imageParameterName)]);
    for (const action of ['codepipeline:GetPipelineState', 'codepipeline:ListActionExecutions']) {
      expect(grantsOf(statements, action).map((st) => flatten(stack, st.Resource))).toEqual([`arn:\${AWS::Partition}:codepipeline:us-east-1:123456789012:${name}`]);
    }
    expect(grantsOf(statements, 'ecs:ListServiceDeployments').map((st) => flatten(stack, st.Resource)))
      .toEqual([`arn:\${AWS::Partition}:ecs:us-east-1:123456789012:service/\${${idOf(web.cluster)}}/*`]);
    expect(statements.flatMap(actionsOf).filter((a) => a.startsWith('sns:'))).toEqual([]);
  });

  test('invariant 4: the hook gives up 60 - 5 - bake minutes after the deploy action started (50 with the default 5 minutes of bake)', () => {
    expect(resourceOf(template, idOf(web.releaseHook)).Properties.Environment.Variables.HOOK_TIME_LIMIT_SECONDS).toBe(String(50 * 60));
  });
});

describe('FargateBlueGreenPipeline defaults: release function permissions', () => {
  test('the recorder may put exactly the image parameter (and delete it, to undo a write that created it), nothing else', () => {
    const recorder = recordFunctionOf(template, web);
    const statements = statementsOfRole(template, recorder.Properties.Role['Fn::GetAtt'][0]);
    const put = grantsOf(statements, 'ssm:PutParameter');
    expect(put).toHaveLength(1);
    expect(actionsOf(put[0])).toEqual(['ssm:PutParameter', 'ssm:DeleteParameter']);
    expect(grantsOf(statements, 'ssm:DeleteParameter')).toEqual(put);
    expect(put[0].Resource).toEqual(parameterArn(web.imageParameterName));
    expect(recorder.Properties.Environment.Variables.IMAGE_PARAMETER_NAME).toBe(web.imageParameterName);
  });

  test('the recorder may list the deployments of this one service (its ARN, not *)', () => {
    const recorder = recordFunctionOf(template, web);
    const list = grantsOf(statementsOfRole(template, recorder.Properties.Role['Fn::GetAtt'][0]), 'ecs:ListServiceDeployments');
    expect(list).toHaveLength(1);
    expect(list[0].Resource).toEqual(stack.resolve(web.service.serviceArn));
  });

  test('the recorder knows the pipeline, stage and deploy action that start its release, and may list that pipeline\'s action executions only', () => {
    const recorder = recordFunctionOf(template, web);
    expect(recorder.Properties.Environment.Variables).toMatchObject({
      PIPELINE_NAME: pipelineOf(template, web).Name,
      RELEASE_STAGE_NAME: 'Release',
      DEPLOY_ACTION_NAME: 'Deploy',
    });
    const list = grantsOf(statementsOfRole(template, recorder.Properties.Role['Fn::GetAtt'][0]), 'codepipeline:ListActionExecutions');
    expect(list).toHaveLength(1);
    expect(actionsOf(list[0])).toEqual(['codepipeline:ListActionExecutions']);
    expect(flatten(stack, list[0].Resource)).toBe(`arn:\${AWS::Partition}:codepipeline:us-east-1:123456789012:${pipelineOf(template, web).Name}`);
  });

  test('the recorder may roll back (StopServiceDeployment) only the deployments of this one service, for its wall-clock wait limit', () => {
    const recorder = recordFunctionOf(template, web);
    const stop = grantsOf(statementsOfRole(template, recorder.Properties.Role['Fn::GetAtt'][0]), 'ecs:StopServiceDeployment');
    expect(stop).toHaveLength(1);
    expect(actionsOf(stop[0])).toEqual(['ecs:StopServiceDeployment']);
    expect(flatten(stack, stop[0].Resource)).toBe(
      `arn:\${AWS::Partition}:ecs:us-east-1:123456789012:service-deployment/\${${idOf(web.cluster)}}/\${${idOf(web.service)}.Name}/*`);
  });

  test('the hook may describe the service revisions of this cluster (to tell the placeholder from a built image)', () => {
    const describeRevisions = grantsOf(statementsOfRole(template, idOf(web.releaseHook.role!)), 'ecs:DescribeServiceRevisions');
    expect(describeRevisions).toHaveLength(1);
    expect(flatten(stack, describeRevisions[0].Resource)).toBe(
      `arn:\${AWS::Partition}:ecs:us-east-1:123456789012:service-revision/\${${idOf(web.cluster)}}/*`);
  });
});

describe('FargateBlueGreenPipeline defaults: monitoring and outputs', () => {
  test('4 alarms, each notifying the alarm topic when it fires and when it clears', () => {
    template.resourceCountIs('AWS::CloudWatch::Alarm', 4);
    const topic = stack.resolve(web.alarmTopic.topicArn);
    for (const alarm of Object.values(template.findResources('AWS::CloudWatch::Alarm')) as any[]) {
      expect(alarm.Properties.AlarmActions).toEqual([topic]);
      expect(alarm.Properties.OKActions).toEqual([topic]);
    }
  });

  test('Http5xx fires at 5 target 5xx a minute', () => {
    template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      MetricName: 'HTTPCode_Target_5XX_Count', Statistic: 'Sum', Period: 60, Threshold: 5, EvaluationPeriods: 3, DatapointsToAlarm: 2,
    });
  });

  test('UnhealthyTargets sums both target groups and fires at 1', () => {
    template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      Threshold: 1,
      Metrics: Match.arrayWith([Match.objectLike({ Expression: 'FILL(blue, 0) + FILL(green, 0)', Label: 'Unhealthy targets' })]),
    });
  });

  test('LatencyP99 fires at a p99 of 2 seconds', () => {
    template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      MetricName: 'TargetResponseTime', ExtendedStatistic: 'p99', Threshold: 2,
    });
  });

  test('RunningTasks fires below desiredCount healthy tasks, and when the metric is missing (no task at all)', () => {
    template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      ComparisonOperator: 'LessThanThreshold',
      Threshold: 2,
      TreatMissingData: 'breaching',
      Metrics: Match.arrayWith([Match.objectLike({ Label: 'Healthy tasks' })]),
    });
  });

  test('a dashboard with the release graphs: requests and healthy targets by target group, CPU and memory', () => {
    template.resourceCountIs('AWS::CloudWatch::Dashboard', 1);
    const body = flatten(stack, resourceOf(template, idOf(web.dashboard)).Properties.DashboardBody);
    for (const title of ['Requests by target group (a release moves them from one to the other)', 'Healthy targets by target group',
      'CPU and memory of the service (%)']) {
      expect(body).toContain(`"title":"${title}"`);
    }
  });

  test('outputs the production URL, the test URL and the rollback command of the Release stage', () => {
    const outputs = template.toJSON().Outputs;
    const byName = (name: string) => {
      const found = Object.entries(outputs).filter(([id]) => id.startsWith(`Web${name}`));
      expect(found).toHaveLength(1);
      return flatten(stack, (found[0][1] as any).Value);
    };
    expect(byName('ProductionUrl')).toBe(flatten(stack, web.productionUrl));
    expect(byName('TestUrl')).toBe(flatten(stack, web.testUrl));
    const rollback = byName('RollbackCommand');
    expect(rollback).toContain('aws codepipeline rollback-stage');
    expect(rollback).toContain(`--pipeline-name \${${idOf(web.pipeline.pipeline)}}`);
    expect(rollback).toContain('--stage-name Release');
    expect(flatten(stack, web.rollbackCommand)).toBe(rollback);
  });
});

describe('FargateBlueGreenPipeline defaults: teardown and compliance', () => {
  test('no resource of either stack is retained: cdk destroy removes everything', () => {
    for (const t of [template, imageTemplate]) {
      const retained = Object.entries(t.toJSON().Resources as Record<string, any>)
        .filter(([, r]) => r.DeletionPolicy === 'Retain' || r.UpdateReplacePolicy === 'Retain' || r.DeletionPolicy === 'RetainExceptOnCreate')
        .map(([id]) => id);
      expect(retained).toEqual([]);
    }
  });

  test('both stacks pass cdk-nag (AwsSolutions, Serverless) and the CloudFormation validator', () => {
    const reports = checkApp(app);
    expect(reports.map((r) => r.stackName).sort()).toEqual([imageStack.stackName, stack.stackName].sort());
    expect(reports.map(describeFailures)).toEqual(reports.map((r) => `${r.stackName}: clean`));
  });
});

// ------------------------------------------------------------------------------------------------------------------
// One app with every override combined.
// ------------------------------------------------------------------------------------------------------------------
const overApp = new App();
const overStack = new Stack(overApp, 'Custom', { env: ENV });
const userVpc = new ec2.Vpc(overStack, 'UserVpc', {
  maxAzs: 2, natGateways: 0, subnetConfiguration: [{ name: 'Public', subnetType: ec2.SubnetType.PUBLIC }],
});
const dbPassword = ssm.StringParameter.fromSecureStringParameterAttributes(overStack, 'DbPassword', { parameterName: '/shop/db-password' });
const npmToken = ssm.StringParameter.fromSecureStringParameterAttributes(overStack, 'NpmToken', { parameterName: '/shop/npm-token' });
const CERTIFICATE_ARN = 'arn:aws:acm:us-east-1:123456789012:certificate/abc';
const custom = new FargateBlueGreenPipeline(overStack, 'Web', {
  source: source(),
  approval: Approval.beforeProductionTraffic({ timeout: Duration.minutes(30) }),
  vpc: userVpc,
  containerInsights: ecs.ContainerInsights.ENABLED,
  imagesToKeep: 7,
  containerPort: 3000,
  cpuArchitecture: ecs.CpuArchitecture.X86_64,
  cpu: 512,
  memoryLimitMiB: 1024,
  desiredCount: 3,
  healthCheckPath: '/ping',
  expectedPhrase: 'Welcome',
  certificate: elbv2.ListenerCertificate.fromArn(CERTIFICATE_ARN),
  testListenerPort: 9000,
  testListenerPeers: [ec2.Peer.ipv4('10.1.0.0/16')],
  bakeTime: Duration.minutes(10),
  latencyThreshold: Duration.millis(500),
  placeholderImage: 'public.ecr.aws/nginx/nginx:stable',
  logRetention: logs.RetentionDays.ONE_WEEK,
  testCommands: ['make test', 'make lint'],
  dockerDirectory: 'app/',
  buildEnvironmentVariables: { NODE_ENV: 'production' },
  buildSecrets: { NPM_TOKEN: BuildSecret.fromSsmParameter(npmToken) },
  environment: { FOO: 'bar' },
  secrets: { DB_PASSWORD: ecs.Secret.fromSsmParameter(dbPassword) },
  alarmEmails: ['ops@example.com'],
  retainArtifacts: true,
});
const overTemplate = Template.fromStack(overStack);
const overImageStack = imageStacksOf(overApp, overStack)[0];
const overImageTemplate = Template.fromStack(overImageStack);

describe('FargateBlueGreenPipeline overrides: runtime', () => {
  test('placeholderImage is what the parameter starts with and what the hook treats as the placeholder', () => {
    const create = JSON.parse(onlyResource(overImageTemplate, 'Custom::ImageParameter').Properties.Create);
    expect(create.parameters.Value).toBe('public.ecr.aws/nginx/nginx:stable');
    expect(resourceOf(overTemplate, idOf(custom.releaseHook)).Properties.Environment.Variables.PLACEHOLDER_IMAGE)
      .toBe('public.ecr.aws/nginx/nginx:stable');
  });

  test('imagesToKeep sets the lifecycle rule count', () => {
    const text = resourceOf(overTemplate, idOf(custom.repository)).Properties.LifecyclePolicy.LifecyclePolicyText;
    expect(JSON.parse(text).rules[0].selection.countNumber).toBe(7);
  });

  test('containerInsights ENABLED turns Container Insights on', () => {
    expect(resourceOf(overTemplate, idOf(custom.cluster)).Properties.ClusterSettings)
      .toEqual([{ Name: 'containerInsights', Value: 'enabled' }]);
  });

  test('cpu, memoryLimitMiB and X86_64 size the task', () => {
    overTemplate.hasResourceProperties('AWS::ECS::TaskDefinition', {
      Cpu: '512',
      Memory: '1024',
      RuntimePlatform: { CpuArchitecture: 'X86_64', OperatingSystemFamily: 'LINUX' },
    });
  });

  test('X86_64 tasks get their image built on an x86 host (LINUX_CONTAINER), still privileged for Docker', () => {
    expect(onlyResource(overTemplate, 'AWS::CodeBuild::Project').Properties.Environment)
      .toMatchObject({ Type: 'LINUX_CONTAINER', PrivilegedMode: true });
  });

  test('containerPort is the port mapping, the target group port and WHOAMI_PORT_NUMBER; the user environment is kept', () => {
    expect(containerOf(overTemplate).PortMappings).toEqual([expect.objectContaining({ ContainerPort: 3000 })]);
    expect(containerEnvOf(overTemplate)).toEqual({ FOO: 'bar', WHOAMI_PORT_NUMBER: '3000' });
    expect(resourceOf(overTemplate, idOf(custom.blueTargetGroup)).Properties.Port).toBe(3000);
  });

  test('secrets reach the container as ValueFrom (injected by ECS), not as plain environment', () => {
    expect(containerOf(overTemplate).Secrets).toEqual([{
      Name: 'DB_PASSWORD',
      ValueFrom: { 'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, ':ssm:us-east-1:123456789012:parameter/shop/db-password']] },
    }]);
    expect(Object.keys(containerEnvOf(overTemplate))).not.toContain('DB_PASSWORD');
  });

  test('logRetention applies to the container logs and to the release functions\' logs', () => {
    expect(resourceOf(overTemplate, idOf(custom.logGroup)).Properties.RetentionInDays).toBe(7);
    const hookLogs = resourceOf(overTemplate, idOf(custom.releaseHook)).Properties.LoggingConfig.LogGroup.Ref;
    expect(resourceOf(overTemplate, hookLogs).Properties.RetentionInDays).toBe(7);
  });

  test('desiredCount and bakeTime reach the service, and RunningTasks alarms below the new count', () => {
    overTemplate.hasResourceProperties('AWS::ECS::Service', {
      DesiredCount: 3,
      DeploymentConfiguration: Match.objectLike({ Strategy: 'BLUE_GREEN', BakeTimeInMinutes: 10 }),
    });
    overTemplate.hasResourceProperties('AWS::CloudWatch::Alarm', { ComparisonOperator: 'LessThanThreshold', Threshold: 3 });
  });

  test('a user VPC is used as is: no VPC is created', () => {
    overTemplate.resourceCountIs('AWS::EC2::VPC', 1);
    expect(Object.keys(overTemplate.findResources('AWS::EC2::VPC'))).toEqual([idOf(userVpc)]);
    expect(custom.vpc).toBe(userVpc);
    overTemplate.resourceCountIs('AWS::EC2::FlowLog', 0);
  });

  test('latencyThreshold 500 ms sets the latency alarm at 0.5 s', () => {
    overTemplate.hasResourceProperties('AWS::CloudWatch::Alarm', { MetricName: 'TargetResponseTime', Threshold: 0.5 });
  });

  test('alarmEmails subscribe to the alarm topic', () => {
    overTemplate.hasResourceProperties('AWS::SNS::Subscription', {
      Protocol: 'email', Endpoint: 'ops@example.com', TopicArn: overStack.resolve(custom.alarmTopic.topicArn),
    });
  });
});

describe('FargateBlueGreenPipeline overrides: load balancer', () => {
  test('healthCheckPath sets both target groups\' health check and the smoke test path', () => {
    for (const group of [custom.blueTargetGroup, custom.greenTargetGroup]) {
      expect(resourceOf(overTemplate, idOf(group)).Properties.HealthCheckPath).toBe('/ping');
    }
    expect(resourceOf(overTemplate, idOf(custom.releaseHook)).Properties.Environment.Variables)
      .toMatchObject({ SMOKE_TEST_HEALTH_PATH: '/ping', SMOKE_TEST_EXPECTED_PHRASE: 'Welcome' });
  });

  test('with a certificate, production listens on HTTPS 443 with it and port 80 redirects there', () => {
    expect(resourceOf(overTemplate, idOf(custom.productionListener)).Properties).toMatchObject({
      Port: 443, Protocol: 'HTTPS', Certificates: [{ CertificateArn: CERTIFICATE_ARN }],
    });
    overTemplate.resourceCountIs('AWS::ElasticLoadBalancingV2::Listener', 3);
    overTemplate.hasResourceProperties('AWS::ElasticLoadBalancingV2::Listener', {
      Port: 80,
      Protocol: 'HTTP',
      DefaultActions: [Match.objectLike({ Type: 'redirect', RedirectConfig: Match.objectLike({ Port: '443', Protocol: 'HTTPS' }) })],
    });
    expect(flatten(overStack, custom.productionUrl)).toMatch(/^https:\/\//);
  });

  test('testListenerPort moves the test listener and the test URL', () => {
    expect(resourceOf(overTemplate, idOf(custom.testListener)).Properties).toMatchObject({ Port: 9000, Protocol: 'HTTP' });
    expect(flatten(overStack, custom.testUrl)).toMatch(/^http:\/\/.*:9000$/);
  });

  test('testListenerPeers: only the given CIDR may reach the test port', () => {
    const group = resourceOf(overTemplate, idOf(custom.loadBalancer.connections.securityGroups[0]));
    const onTestPort = (group.Properties.SecurityGroupIngress as any[]).filter((rule) => rule.FromPort === 9000 || rule.ToPort === 9000);
    expect(onTestPort).toEqual([expect.objectContaining({ CidrIp: '10.1.0.0/16', FromPort: 9000, ToPort: 9000 })]);
    const separate = Object.values(overTemplate.findResources('AWS::EC2::SecurityGroupIngress')) as any[];
    expect(separate.filter((rule) => rule.Properties.FromPort === 9000)).toEqual([]);
    const open = (group.Properties.SecurityGroupIngress as any[]).filter((rule) => rule.CidrIp === '0.0.0.0/0').map((rule) => rule.FromPort);
    expect(open.sort()).toEqual([443, 80]);
  });
});

describe('FargateBlueGreenPipeline overrides: build', () => {
  test('testCommands replace the default npm test', () => {
    const spec = buildSpecOf(overStack, overTemplate);
    expect(spec.phases.pre_build.commands).toEqual(['cd "$CODEBUILD_SRC_DIR/$DOCKER_DIRECTORY"', 'make test', 'make lint']);
    expect(JSON.stringify(spec)).not.toContain('npm test');
  });

  test('dockerDirectory "app/" is normalized to "app", for the build and for the test reports', () => {
    expect(buildEnvOf(overTemplate).DOCKER_DIRECTORY).toBe('app');
    const spec = buildSpecOf(overStack, overTemplate);
    expect(Object.values(spec.reports)).toEqual([expect.objectContaining({ 'base-directory': 'app/reports/junit' })]);
  });

  test('build environment variables and build secrets reach the build, next to the variables the buildspec needs', () => {
    const project = onlyResource(overTemplate, 'AWS::CodeBuild::Project');
    const variables = project.Properties.Environment.EnvironmentVariables as any[];
    expect(variables).toContainEqual({ Name: 'NODE_ENV', Type: 'PLAINTEXT', Value: 'production' });
    expect(variables).toContainEqual(expect.objectContaining({ Name: 'NPM_TOKEN', Type: 'PARAMETER_STORE', Value: '/shop/npm-token' }));
    expect(variables.map((v) => v.Name)).toEqual(expect.arrayContaining(['REPOSITORY_URI', 'CONTAINER_NAME', 'DOCKER_DIRECTORY']));
  });

  test('retainArtifacts keeps the artifact bucket, and the pipeline key in the Image stack', () => {
    expect(resourceOf(overTemplate, idOf(custom.pipeline.artifactBucket)).DeletionPolicy).toBe('Retain');
    expect(resourceOf(overImageTemplate, idOf(custom.pipeline.artifactKey)).DeletionPolicy).toBe('Retain');
    overTemplate.resourceCountIs('AWS::KMS::Key', 0);
  });
});

describe('FargateBlueGreenPipeline overrides: approval before production traffic', () => {
  test('the Release stage gets a manual ApproveProductionTraffic action at run order 1, beside the deploy, with the given timeout', () => {
    const release = stageOf(overTemplate, custom, 'Release');
    expect((release.Actions as any[]).map((a) => [a.Name, a.ActionTypeId.Category, a.ActionTypeId.Provider, a.RunOrder])).toEqual([
      ['Deploy', 'Deploy', 'ECS', 1],
      ['ApproveProductionTraffic', 'Approval', 'Manual', 1],
      ['RecordRelease', 'Invoke', 'Lambda', 2],
    ]);
    expect(actionOf(overTemplate, custom, 'Release', 'ApproveProductionTraffic').TimeoutInMinutes).toBe(30);
    expect((pipelineOf(overTemplate, custom).Stages as any[]).map((s) => s.Name)).toEqual(['Source', 'Build', 'Release']);
  });

  test('the approval links to the test URL (port 9000) and its message names it', () => {
    const configuration = actionOf(overTemplate, custom, 'Release', 'ApproveProductionTraffic').Configuration;
    expect(configuration.ExternalEntityLink['Fn::Join']).toBeDefined();
    expect(flatten(overStack, configuration.ExternalEntityLink)).toBe(flatten(overStack, custom.testUrl));
    expect(flatten(overStack, configuration.ExternalEntityLink)).toContain(':9000');
    expect(flatten(overStack, configuration.CustomData)).toContain(flatten(overStack, custom.testUrl));
  });

  test('the hook knows where the approval is: the pipeline\'s literal Name, stage Release, action ApproveProductionTraffic', () => {
    const name = pipelineOf(overTemplate, custom).Name;
    expect(typeof name).toBe('string');
    expect(resourceOf(overTemplate, idOf(custom.releaseHook)).Properties.Environment.Variables).toMatchObject({
      PIPELINE_NAME: name,
      RELEASE_STAGE_NAME: 'Release',
      DEPLOY_ACTION_NAME: 'Deploy',
      APPROVAL_ACTION_NAME: 'ApproveProductionTraffic',
    });
  });

  test('the hook may read the pipeline state and action executions of that pipeline and the image parameter', () => {
    const name = pipelineOf(overTemplate, custom).Name;
    const statements = statementsOfRole(overTemplate, idOf(custom.releaseHook.role!));
    const pipelineRead = grantsOf(statements, 'codepipeline:GetPipelineState');
    expect(pipelineRead).toHaveLength(1);
    expect(actionsOf(pipelineRead[0]).sort()).toEqual(['codepipeline:GetPipelineState', 'codepipeline:ListActionExecutions']);
    expect(flatten(overStack, pipelineRead[0].Resource)).toBe(`arn:\${AWS::Partition}:codepipeline:us-east-1:123456789012:${name}`);
    const parameterRead = grantsOf(statements, 'ssm:GetParameter');
    expect(parameterRead).toHaveLength(1);
    expect(parameterRead[0].Resource).toEqual(parameterArn(custom.imageParameterName));
  });

  test('a notification rule announces the approval', () => {
    overTemplate.hasResourceProperties('AWS::Events::Rule', {
      EventPattern: Match.objectLike({ detail: { stage: ['Release'], action: ['ApproveProductionTraffic'], state: ['STARTED'] } }),
    });
  });
});

// ------------------------------------------------------------------------------------------------------------------
// An environment-agnostic stack with two patterns, the second approved without a timeout.
// ------------------------------------------------------------------------------------------------------------------
describe('FargateBlueGreenPipeline in an environment-agnostic stack, twice', () => {
  const pairApp = new App();
  const pairStack = new Stack(pairApp, 'Pair');
  const first = new FargateBlueGreenPipeline(pairStack, 'First', { source: source() });
  const second = new FargateBlueGreenPipeline(pairStack, 'Second', { source: source(), approval: Approval.beforeProductionTraffic() });
  const pairTemplate = Template.fromStack(pairStack);

  test('synthesizes, with an image stack per pattern (also environment-agnostic) that the stack depends on', () => {
    const stacks = imageStacksOf(pairApp, pairStack);
    expect(stacks).toHaveLength(2);
    for (const s of stacks) {
      expect(s.node.id).toMatch(/Image$/);
      expect(Token.isUnresolved(s.region)).toBe(true);
      expect(pairStack.dependencies).toContain(s);
      Template.fromStack(s).resourceCountIs('Custom::ImageParameter', 1);
    }
    pairTemplate.resourceCountIs('AWS::ECS::Service', 2);
  });

  test('two patterns in one stack get different image parameters', () => {
    expect(first.imageParameterName).not.toBe(second.imageParameterName);
    const defaults = Object.values(pairTemplate.findParameters('*', { Type: 'AWS::SSM::Parameter::Value<String>' }))
      .map((p: any) => p.Default);
    expect(defaults).toEqual(expect.arrayContaining([first.imageParameterName, second.imageParameterName]));
  });

  test('without a timeout, the approval waits what the deploy action\'s hour leaves: 60 - 15 - 5 minutes bake = 40', () => {
    expect(actionOf(pairTemplate, second, 'Release', 'ApproveProductionTraffic').TimeoutInMinutes).toBe(40);
    expect((stageOf(pairTemplate, first, 'Release').Actions as any[]).map((a) => a.Name)).toEqual(['Deploy', 'RecordRelease']);
  });
});

// ------------------------------------------------------------------------------------------------------------------
// Bad input: each throws in the constructor, before synthesis.
// ------------------------------------------------------------------------------------------------------------------
describe('FargateBlueGreenPipeline bad input', () => {
  function build(props: Partial<FargateBlueGreenPipelineProps>): () => FargateBlueGreenPipeline {
    return () => new FargateBlueGreenPipeline(new Stack(new App(), 'Bad'), 'Web', { source: source(), ...props });
  }

  test.each<[string, Partial<FargateBlueGreenPipelineProps>, RegExp]>([
    ['an empty placeholder image', { placeholderImage: '' }, /'placeholderImage' must not be empty/],
    ['an empty expected phrase', { expectedPhrase: '' }, /'expectedPhrase' must not be empty/],
    ['an empty test command', { testCommands: ['npm ci', ''] }, /'testCommands' must not be empty/],
    ['a container port outside 1-65535', { containerPort: 70000 }, /'containerPort' must be a whole number from 1 to 65535, got 70000/],
    ['a test listener port outside 1-65535', { testListenerPort: 0 }, /'testListenerPort' must be a whole number from 1 to 65535, got 0/],
    ['the test port 80 when production is HTTPS with a redirect from 80',
      { testListenerPort: 80, certificate: elbv2.ListenerCertificate.fromArn('arn:aws:acm:us-east-1:123456789012:certificate/abc') },
      /'testListenerPort' must differ from the production listener's ports \(443 and 80\), got 80/],
    ['no images to keep', { imagesToKeep: 0 }, /'imagesToKeep' must be a whole number from 1 to 1000, got 0/],
    ['a malformed alarm email', { alarmEmails: ['ops.example.com'] }, /'alarmEmails' must be an email address.*got 'ops.example.com'/],
    ['a build variable that looks like a secret', { buildEnvironmentVariables: { DB_PASSWORD: 'x' } }, /'environmentVariables'.*DB_PASSWORD/],
  ])('%s is refused, naming the property and the value', (_name, props, message) => {
    expect(build(props)).toThrow(message);
  });

  test('desiredCount 0 is refused (a service must run a task)', () => {
    expect(build({ desiredCount: 0 })).toThrow(/'desiredCount' must be a whole number from 1 to 100, got 0/);
  });

  test('a memory Fargate does not offer with the cpu is refused (256 CPU units with 4096 MiB)', () => {
    expect(build({ cpu: 256, memoryLimitMiB: 4096 })).toThrow(/'memoryLimitMiB' must be one of 512, 1024, 2048 with cpu 256.*got 4096/);
  });

  test('a test listener on the production port 80 is refused', () => {
    expect(build({ testListenerPort: 80 })).toThrow(/'testListenerPort' must differ from the production listener's port \(80\), got 80/);
  });

  test('a health check path without a leading / is refused', () => {
    expect(build({ healthCheckPath: 'healthcheck' })).toThrow(/'healthCheckPath' must start with '\/'.*got 'healthcheck'/);
  });

  test('a bake time over 45 minutes is refused (the deploy action waits 60 minutes, 15 are kept for the rest)', () => {
    expect(build({ bakeTime: Duration.minutes(46) })).toThrow(/'bakeTime' must be between 0 minutes and 45 minutes, got 46 minutes/);
  });

  test('a bake time that is not whole minutes is refused (ECS takes minutes)', () => {
    expect(build({ bakeTime: Duration.seconds(90) })).toThrow(/'bakeTime' must be a whole number of minutes, got 1 minute 30 seconds/);
  });

  test('an approval timeout longer than the window (41 minutes with the default bake) is refused', () => {
    expect(build({ approval: Approval.beforeProductionTraffic({ timeout: Duration.minutes(41) }) }))
      .toThrow(/'timeout' must be at most 40 minutes with an ECS blue\/green release.*got 41 minutes/);
  });

  test('a bake time leaving the approval less than 5 minutes (41 minutes) is refused as a bakeTime error', () => {
    expect(build({ bakeTime: Duration.minutes(41), approval: Approval.beforeProductionTraffic() }))
      .toThrow(/'bakeTime' must leave the approval at least 5 minutes, so at most 40 minutes.*got 41 minutes/);
  });

  test('a bake time of 41 minutes without an approval is accepted (the window only matters to the approval)', () => {
    expect(build({ bakeTime: Duration.minutes(41) })).not.toThrow();
  });

  test('a Docker directory outside the repository is refused', () => {
    expect(build({ dockerDirectory: '../x' })).toThrow(/'dockerDirectory' must be a path inside the repository.*got '\.\.\/x'/);
  });

  test('a latency threshold over 60 seconds is refused', () => {
    expect(build({ latencyThreshold: Duration.minutes(2) })).toThrow(/'latencyThreshold' must be between 10 milliseconds and 60 seconds, got 2 minutes/);
  });

  test('an environment setting WHOAMI_PORT_NUMBER is refused (it would tell the placeholder the wrong port)', () => {
    expect(build({ environment: { WHOAMI_PORT_NUMBER: '80' } })).toThrow(/'environment' must not set WHOAMI_PORT_NUMBER.*got 'WHOAMI_PORT_NUMBER'/);
  });
});
