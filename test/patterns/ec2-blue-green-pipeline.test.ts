import * as fs from 'fs';
import * as path from 'path';
import { App, Duration, Stack, Token } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as elbv2 from 'aws-cdk-lib/aws-elasticloadbalancingv2';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import * as ssm from 'aws-cdk-lib/aws-ssm';
import {
  Approval, BuildSecret, Ec2BlueGreenPipeline, Ec2BlueGreenPipelineProps, InstanceSecret, TrafficShift,
} from '../../src';
import { SESSION_MANAGER_ACTIONS } from '../../src/runtime/ec2-fleet';
import { checkApp, describeFailures, StackReport } from '../compliance/harness';
import { flatten } from '../util/fixtures';
import { actionOf, actionsOf, buildSpecOf, ENV, grantsOf, idOf, onlyResource, parameterArn, pipelineOf, resourceOf, resourcesOf, source, stageOf, statementsOfRole } from '../util/template';

const CERTIFICATE_ARN = 'arn:aws:acm:us-east-1:123456789012:certificate/abc';
/** Synthesis, cdk-nag and the validator over a whole app take a while on a 2-core machine. */
const COMPLIANCE_TIMEOUT = 300_000;

/** The other stacks of the app that a pattern stack depends on: the pattern's State stacks. */
function stateStacksOf(app: App, owner: Stack): Stack[] {
  return app.node.children.filter((c): c is Stack => Stack.isStack(c) && owner.dependencies.includes(c));
}

/** Whether an IAM action pattern (with * wildcards) covers an action. */
function covers(pattern: string, action: string): boolean {
  const regex = new RegExp(`^${pattern.split('*').map((part) => part.replace(/[.?+^$()[\]{}|\\]/g, '\\$&')).join('.*')}$`, 'i');
  return regex.test(action);
}

function buildEnvOf(template: Template): Record<string, any> {
  const project = onlyResource(template, 'AWS::CodeBuild::Project');
  return Object.fromEntries((project.Properties.Environment.EnvironmentVariables as any[]).map((v) => [v.Name, v]));
}

/** The state machine the Release stage's Deploy action starts. */
function stateMachineOf(template: Template, pattern: Ec2BlueGreenPipeline): any {
  return resourceOf(template, idOf(pattern.stateMachine));
}

/** The decision function: the Lambda function whose environment names the live-color parameter of the pattern. */
function releaseFunctionOf(template: Template, pattern: Ec2BlueGreenPipeline): any {
  const found = Object.entries(template.findResources('AWS::Lambda::Function'))
    .filter(([, fn]: [string, any]) => fn.Properties.Environment?.Variables?.LIVE_COLOR_PARAMETER === pattern.liveColorParameterName);
  expect(found).toHaveLength(1);
  return { logicalId: found[0][0], ...(found[0][1] as any) };
}

function releaseEnvOf(template: Template, pattern: Ec2BlueGreenPipeline): Record<string, any> {
  return releaseFunctionOf(template, pattern).Properties.Environment.Variables;
}

function releaseStatementsOf(template: Template, pattern: Ec2BlueGreenPipeline): any[] {
  return statementsOfRole(template, releaseFunctionOf(template, pattern).Properties.Role['Fn::GetAtt'][0]);
}

/** The guard function: the one the Custom::ReleaseGuard resource calls. */
function guardOf(template: Template): any {
  return onlyResource(template, 'Custom::ReleaseGuard');
}

/** The smoke test function: the one whose environment has SMOKE_TEST_BASE_URL. */
function smokeEnvOf(template: Template): Record<string, any> {
  const found = Object.values(template.findResources('AWS::Lambda::Function'))
    .filter((fn: any) => fn.Properties.Environment?.Variables?.SMOKE_TEST_BASE_URL !== undefined);
  expect(found).toHaveLength(1);
  return (found[0] as any).Properties.Environment.Variables;
}

/** The user data of a launch template, flattened to text. */
function userDataOf(stack: Stack, template: Template, launchTemplateLogicalId: string): string {
  const data = resourceOf(template, launchTemplateLogicalId).Properties.LaunchTemplateData.UserData['Fn::Base64'];
  return flatten(stack, data);
}

function launchTemplateIdOf(template: Template, groupLogicalId: string): string {
  return resourceOf(template, groupLogicalId).Properties.LaunchTemplate.LaunchTemplateId.Ref;
}

/** The CloudFormation parameter (an SSM-typed one) that CloudFormation resolves from an SSM parameter name. */
function ssmParameterIdOf(template: Template, parameterName: string, type = 'AWS::SSM::Parameter::Value<String>'): string {
  const ids = Object.keys(template.findParameters('*', { Type: type, Default: parameterName }));
  expect(ids).toHaveLength(1);
  return ids[0];
}

/**
 * What CloudFormation declares when the live-color parameter holds `liveColor`: resolves every `Fn::If` of a value
 * whose conditions compare the live-color CFN parameter with a literal (any other condition fails the test).
 */
function whenLive(template: Template, pattern: Ec2BlueGreenPipeline, liveColor: string, value: unknown): any {
  const json = template.toJSON();
  const parameterId = ssmParameterIdOf(template, pattern.liveColorParameterName);
  const resolveValue = (v: any): any => {
    if (Array.isArray(v)) return v.map(resolveValue);
    if (v && typeof v === 'object') {
      if (v.Ref === parameterId) return liveColor;
      if (v['Fn::If']) {
        const [condition, whenTrue, whenFalse] = v['Fn::If'];
        return isTrue(condition) ? resolveValue(whenTrue) : resolveValue(whenFalse);
      }
      return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, resolveValue(x)]));
    }
    return v;
  };
  const isTrue = (condition: string): boolean => {
    const expression = json.Conditions?.[condition];
    expect(Object.keys(expression ?? {})).toEqual(['Fn::Equals']);
    const [a, b] = expression['Fn::Equals'].map(resolveValue);
    expect(typeof a === 'string' && typeof b === 'string').toBe(true);
    return a === b;
  };
  return resolveValue(value);
}

/** Which target group a list of listener actions forwards to (by logical id), or `503` for the fixed response. */
function servedBy(actions: any[]): string {
  expect(actions).toHaveLength(1);
  const [action] = actions;
  if (action.Type === 'fixed-response') return action.FixedResponseConfig.StatusCode;
  expect(action.Type).toBe('forward');
  const groups = action.ForwardConfig?.TargetGroups ?? [{ TargetGroupArn: action.TargetGroupArn }];
  expect(groups).toHaveLength(1);
  return groups[0].TargetGroupArn.Ref;
}

/** The environment variable names the decision function reads, taken from its source. */
function handlerEnvironmentNames(): { all: string[]; approval: string[] } {
  // The entry file and its modules (src/handlers/ec2-release/), where the configuration is read.
  const dir = path.join(__dirname, '../../src/handlers/ec2-release');
  const text = [path.join(dir, '../ec2-release.lambda.ts'), ...fs.readdirSync(dir).filter((f) => f.endsWith('.ts')).map((f) => path.join(dir, f))]
    .map((file) => fs.readFileSync(file, 'utf-8')).join('\n');
  const names = new Set<string>();
  const add = (name: string) => {
    if (name.includes('${prefix}')) ['BLUE', 'GREEN'].forEach((prefix) => names.add(name.replace('${prefix}', prefix)));
    else names.add(name);
  };
  for (const m of text.matchAll(/\b(?:text|int)\(\s*[`'"]([A-Z0-9_${}a-z]+)[`'"]/g)) add(m[1]);
  for (const m of text.matchAll(/\benv\.([A-Z][A-Z0-9_]+)/g)) add(m[1]);
  for (const m of text.matchAll(/\benv\[`([^`]+)`\]/g)) add(m[1]);
  for (const list of ['REQUIRED', 'APPROVAL_VARIABLES']) {
    const body = new RegExp(`const ${list} = \\[([^\\]]*)\\]`).exec(text);
    expect(body).not.toBeNull();
    for (const m of body![1].matchAll(/'([A-Z][A-Z0-9_]+)'/g)) add(m[1]);
  }
  const all = [...names].sort();
  return { all, approval: all.filter((name) => name.startsWith('APPROVAL_')) };
}

/** The alarm whose construct id ends with `id` (under the pattern's Monitoring). */
function alarmIdOf(template: Template, pattern: Ec2BlueGreenPipeline, id: string): string {
  const child = pattern.monitoring.node.tryFindChild(id);
  expect(child).toBeDefined();
  const logicalId = idOf(child!);
  resourceOf(template, logicalId);
  return logicalId;
}

const COLOR_ALARMS = ['BlueHttp5xx', 'BlueUnhealthyHosts', 'BlueLatencyP99', 'GreenHttp5xx', 'GreenUnhealthyHosts', 'GreenLatencyP99'];

// ------------------------------------------------------------------------------------------------------------------
// App A: the defaults, in a stack with an environment, and a second stack of the same app with the same pattern.
// ------------------------------------------------------------------------------------------------------------------
const app = new App();
const stack = new Stack(app, 'Shop', { env: ENV });
const web = new Ec2BlueGreenPipeline(stack, 'Web', { source: source() });
const sibling = new Stack(app, 'Shop2', { env: ENV });
const siblingWeb = new Ec2BlueGreenPipeline(sibling, 'Web', { source: source() });
const template = Template.fromStack(stack);
const siblingTemplate = Template.fromStack(sibling);
const stateStack = stateStacksOf(app, stack)[0];
const stateTemplate = Template.fromStack(stateStack);
const ids = {
  blueGroup: idOf(web.blueGroup),
  greenGroup: idOf(web.greenGroup),
  blueTargetGroup: idOf(web.blueTargetGroup),
  greenTargetGroup: idOf(web.greenTargetGroup),
  production: idOf(web.productionListener),
  test: idOf(web.testListener),
  instanceRole: idOf(web.instanceRole),
  bucket: idOf(web.pipeline.artifactBucket),
  bundles: idOf(web.bundleBucket),
  key: idOf(web.pipeline.artifactKey),
};

describe('Ec2BlueGreenPipeline: the State stack (ADR 0008)', () => {
  const env = releaseEnvOf(template, web);
  const names = {
    'live-color': web.liveColorParameterName,
    'release-lock': env.LOCK_PARAMETER,
    'blue-release': env.RELEASE_PARAMETER_BLUE,
    'green-release': env.RELEASE_PARAMETER_GREEN,
  };

  test('is a sibling stack of the app, named after the pattern, in the same environment, deployed before the pattern\'s stack', () => {
    expect(stateStacksOf(app, stack)).toHaveLength(1);
    expect(stateStack.node.scope).toBe(app);
    expect(stateStack.node.id).toMatch(/State$/);
    expect(stateStack.stackName).toMatch(/^Shop-.*-State$/);
    expect(stateStack.account).toBe(ENV.account);
    expect(stateStack.region).toBe(ENV.region);
  });

  test('the four parameters share the pattern\'s prefix under /cdk-delivery-pipelines/<stack>/ and end in their key', () => {
    const prefix = web.liveColorParameterName.replace(/\/live-color$/, '');
    expect(prefix).toMatch(/^\/cdk-delivery-pipelines\/Shop\/[A-Za-z0-9]+$/);
    for (const [key, name] of Object.entries(names)) expect(name).toBe(`${prefix}/${key}`);
  });

  test.each([
    ['LiveColor', 'live-color', 'none'],
    ['ReleaseLock', 'release-lock', 'free'],
    ['BlueRelease', 'blue-release', 'none'],
    ['GreenRelease', 'green-release', 'none'],
  ] as const)('%s is created once with %s = %s (Overwrite false, an existing value is kept) and deleted with the State stack',
    (id, key, initial) => {
      const resource = onlyResource(stateTemplate, `Custom::${id}Parameter`);
      expect(JSON.parse(resource.Properties.Create)).toMatchObject({
        service: 'SSM',
        action: 'putParameter',
        parameters: { Name: names[key], Value: initial, Type: 'String', Overwrite: false },
        ignoreErrorCodesMatching: 'ParameterAlreadyExists',
      });
      expect(resource.Properties.Update).toBeUndefined();
      expect(JSON.parse(resource.Properties.Delete)).toMatchObject({ action: 'deleteParameter', parameters: { Name: names[key] } });
    });

  test.each([
    ['LiveColor', 'live-color', 'none'],
    ['ReleaseLock', 'release-lock', 'free'],
    ['BlueRelease', 'blue-release', 'none'],
    ['GreenRelease', 'green-release', 'none'],
  ] as const)('deleting the pattern\'s stack alone puts %s back to its initial value (%s = %s), so a new stack starts from scratch',
    (id, key, initial) => {
      const reset = onlyResource(template, `Custom::${id}ParameterReset`);
      expect(reset.Properties.Create).toBeUndefined();
      expect(reset.Properties.Update).toBeUndefined();
      expect(JSON.parse(reset.Properties.Delete)).toMatchObject({
        action: 'putParameter', parameters: { Name: names[key], Value: initial, Overwrite: true },
      });
    });

  test('the live color reaches CloudFormation as an SSM-typed parameter of the pattern\'s stack, compared with blue and green', () => {
    const parameterId = ssmParameterIdOf(template, web.liveColorParameterName);
    const conditions = Object.values(template.toJSON().Conditions) as any[];
    expect(conditions).toEqual(expect.arrayContaining([
      { 'Fn::Equals': [{ Ref: parameterId }, 'blue'] },
      { 'Fn::Equals': [{ Ref: parameterId }, 'green'] },
    ]));
  });
});

describe('Ec2BlueGreenPipeline defaults: network and load balancer', () => {
  test('a new VPC of 2 public subnets and no NAT gateway', () => {
    template.resourceCountIs('AWS::EC2::VPC', 1);
    template.resourceCountIs('AWS::EC2::NatGateway', 0);
    template.resourceCountIs('AWS::EC2::Subnet', 2);
    expect(web.vpc.publicSubnets).toHaveLength(2);
    expect(web.vpc.privateSubnets).toHaveLength(0);
    expect(web.vpc.isolatedSubnets).toHaveLength(0);
  });

  test('an internet-facing ALB with access logs', () => {
    const properties = resourceOf(template, idOf(web.loadBalancer)).Properties;
    expect(properties.Scheme).toBe('internet-facing');
    expect(properties.LoadBalancerAttributes).toContainEqual({ Key: 'access_logs.s3.enabled', Value: 'true' });
  });

  test('production listens on HTTP 80, the test listener on HTTP 8080, and there is no third listener', () => {
    template.resourceCountIs('AWS::ElasticLoadBalancingV2::Listener', 2);
    expect(resourceOf(template, ids.production).Properties).toMatchObject({ Port: 80, Protocol: 'HTTP' });
    expect(resourceOf(template, ids.test).Properties).toMatchObject({ Port: 8080, Protocol: 'HTTP' });
  });

  test('before any release (live color none) production answers a 503 that says so, and the release function knows that body', () => {
    const actions = whenLive(template, web, 'none', resourceOf(template, ids.production).Properties.DefaultActions);
    expect(servedBy(actions)).toBe('503');
    expect(actions[0].FixedResponseConfig.MessageBody).toMatch(/not released yet/i);
    expect(releaseEnvOf(template, web).NOT_RELEASED_BODY).toBe(actions[0].FixedResponseConfig.MessageBody);
  });

  test.each([
    ['none', '503', 'blue'],
    ['blue', 'blue', 'green'],
    ['green', 'green', 'blue'],
  ])('live color %s: production serves %s and the test listener serves the idle color %s', (live, production, test) => {
    const expected = (color: string) => (color === 'blue' ? ids.blueTargetGroup : color === 'green' ? ids.greenTargetGroup : color);
    expect(servedBy(whenLive(template, web, live, resourceOf(template, ids.production).Properties.DefaultActions))).toBe(expected(production));
    expect(servedBy(whenLive(template, web, live, resourceOf(template, ids.test).Properties.DefaultActions))).toBe(expected(test));
  });

  test('the load balancer security group lets anyone reach 80 and 8080, nothing else', () => {
    const group = resourceOf(template, idOf(web.loadBalancer.connections.securityGroups[0]));
    const ingress = (group.Properties.SecurityGroupIngress as any[]).map((rule) => [rule.CidrIp, rule.FromPort, rule.ToPort]);
    expect(ingress.sort()).toEqual([['0.0.0.0/0', 80, 80], ['0.0.0.0/0', 8080, 8080]]);
  });

  test('the instances can be reached only from the load balancer, on the app port 8080 (no SSH, no other source)', () => {
    const instanceGroup = idOf(web.instanceSecurityGroup);
    expect(resourceOf(template, instanceGroup).Properties.SecurityGroupIngress).toBeUndefined();
    const ingress = (Object.values(template.findResources('AWS::EC2::SecurityGroupIngress')) as any[])
      .filter((rule) => rule.Properties.GroupId['Fn::GetAtt']?.[0] === instanceGroup);
    expect(ingress).toEqual([expect.objectContaining({
      Properties: expect.objectContaining({
        IpProtocol: 'tcp',
        FromPort: 8080,
        ToPort: 8080,
        SourceSecurityGroupId: { 'Fn::GetAtt': [idOf(web.loadBalancer.connections.securityGroups[0]), 'GroupId'] },
      }),
    })]);
  });

  test.each(['blue', 'green'] as const)('the %s target group checks /healthcheck at most every 10 s, healthy after 2, and drains in at most 30 s', (color) => {
    const properties = resourceOf(template, color === 'blue' ? ids.blueTargetGroup : ids.greenTargetGroup).Properties;
    expect(properties).toMatchObject({ HealthCheckPath: '/healthcheck', HealthyThresholdCount: 2, Port: 8080, TargetType: 'instance', Matcher: { HttpCode: '200' } });
    expect(properties.HealthCheckIntervalSeconds).toBeLessThanOrEqual(10);
    const delay = (properties.TargetGroupAttributes as any[]).find((a) => a.Key === 'deregistration_delay.timeout_seconds');
    expect(Number(delay.Value)).toBeLessThanOrEqual(30);
    expect(delay.Value).toBe('30');
  });

  test('the production and test URLs are the load balancer DNS name on http, the test one with :8080', () => {
    expect(flatten(stack, web.productionUrl)).toBe(`http://\${${idOf(web.loadBalancer)}.DNSName}`);
    expect(flatten(stack, web.testUrl)).toBe(`http://\${${idOf(web.loadBalancer)}.DNSName}:8080`);
  });
});

describe('Ec2BlueGreenPipeline defaults: the two Auto Scaling groups', () => {
  const groups = [['blue', ids.blueGroup, ids.blueTargetGroup], ['green', ids.greenGroup, ids.greenTargetGroup]] as const;

  test.each([
    ['none', 0, 0],
    ['blue', 2, 0],
    ['green', 0, 2],
  ])('live color %s: MinSize and DesiredCapacity are blue %i, green %i (the idle color costs nothing)', (live, blue, green) => {
    for (const [groupId, expected] of [[ids.blueGroup, blue], [ids.greenGroup, green]] as const) {
      const properties = whenLive(template, web, live, resourceOf(template, groupId).Properties);
      expect([properties.MinSize, properties.DesiredCapacity]).toEqual([String(expected), String(expected)]);
    }
  });

  test.each(groups)('%s: MaxSize is twice the capacity (4), in both public subnets, behind its own target group', (_color, groupId, targetGroupId) => {
    const properties = resourceOf(template, groupId).Properties;
    expect(properties.MaxSize).toBe('4');
    expect(properties.VPCZoneIdentifier).toEqual(web.vpc.publicSubnets.map((subnet) => ({ Ref: idOf(subnet) })));
    expect(properties.TargetGroupARNs).toEqual([{ Ref: targetGroupId }]);
  });

  test.each(groups)('%s: a launch lifecycle hook app-ready that abandons an instance not ready within 600 s', (_color, groupId) => {
    expect(resourceOf(template, groupId).Properties.LifecycleHookSpecificationList).toEqual([{
      LifecycleHookName: 'app-ready',
      LifecycleTransition: 'autoscaling:EC2_INSTANCE_LAUNCHING',
      DefaultResult: 'ABANDON',
      HeartbeatTimeout: 600,
    }]);
  });

  test.each(groups)('%s: ELB health checks after a grace period no shorter than the hook', (_color, groupId) => {
    const properties = resourceOf(template, groupId).Properties;
    expect(properties.HealthCheckType).toBe('ELB');
    expect(properties.HealthCheckGracePeriod).toBeGreaterThanOrEqual(600);
  });

  test.each(groups)('%s: an infrastructure change reaches it by an instance refresh, launch before terminate (min 100 %%, max 200 %%)', (_color, groupId) => {
    expect(resourceOf(template, groupId).UpdatePolicy.AutoScalingInstanceRefresh).toMatchObject({
      Preferences: { MinHealthyPercentage: 100, MaxHealthyPercentage: 200 },
    });
  });

  test.each(groups)('%s: launches, terminations and their errors go to the alarm topic', (_color, groupId) => {
    expect(resourceOf(template, groupId).Properties.NotificationConfigurations).toEqual([{
      TopicARN: stack.resolve(web.alarmTopic.topicArn),
      NotificationTypes: expect.arrayContaining([
        'autoscaling:EC2_INSTANCE_LAUNCH', 'autoscaling:EC2_INSTANCE_LAUNCH_ERROR',
        'autoscaling:EC2_INSTANCE_TERMINATE', 'autoscaling:EC2_INSTANCE_TERMINATE_ERROR',
      ]),
    }]);
  });

  test('each color has its own launch template', () => {
    expect(launchTemplateIdOf(template, ids.blueGroup)).not.toBe(launchTemplateIdOf(template, ids.greenGroup));
    template.resourceCountIs('AWS::EC2::LaunchTemplate', 2);
  });
});

describe('Ec2BlueGreenPipeline defaults: launch templates', () => {
  const launchTemplates = [['blue', launchTemplateIdOf(template, ids.blueGroup)], ['green', launchTemplateIdOf(template, ids.greenGroup)]] as const;

  test.each(launchTemplates)('%s: t4g.micro on the latest Amazon Linux 2023 for arm64', (_color, launchTemplateId) => {
    const data = resourceOf(template, launchTemplateId).Properties.LaunchTemplateData;
    expect(data.InstanceType).toBe('t4g.micro');
    const parameter = template.toJSON().Parameters[data.ImageId.Ref];
    expect(parameter.Type).toBe('AWS::SSM::Parameter::Value<AWS::EC2::Image::Id>');
    expect(parameter.Default).toMatch(/^\/aws\/service\/ami-amazon-linux-latest\/al2023-ami-.*-arm64$/);
  });

  test.each(launchTemplates)('%s: IMDSv2 required, an encrypted gp3 root volume, no key pair', (_color, launchTemplateId) => {
    const data = resourceOf(template, launchTemplateId).Properties.LaunchTemplateData;
    expect(data.MetadataOptions).toMatchObject({ HttpTokens: 'required' });
    expect(data.BlockDeviceMappings).toEqual([expect.objectContaining({ Ebs: expect.objectContaining({ Encrypted: true, VolumeType: 'gp3' }) })]);
    expect(data.KeyName).toBeUndefined();
  });

  test.each(launchTemplates)('%s: the instance profile carries the instance role', (_color, launchTemplateId) => {
    const profileId = resourceOf(template, launchTemplateId).Properties.LaunchTemplateData.IamInstanceProfile.Arn['Fn::GetAtt'][0];
    expect(resourceOf(template, profileId).Properties.Roles).toEqual([{ Ref: ids.instanceRole }]);
  });

  test.each(launchTemplates)('%s: the user data installs the release its own color\'s parameter names, never the other\'s', (color, launchTemplateId) => {
    const env = releaseEnvOf(template, web);
    const own = color === 'blue' ? env.RELEASE_PARAMETER_BLUE : env.RELEASE_PARAMETER_GREEN;
    const other = color === 'blue' ? env.RELEASE_PARAMETER_GREEN : env.RELEASE_PARAMETER_BLUE;
    const userData = userDataOf(stack, template, launchTemplateId);
    expect(userData).toContain(`aws ssm get-parameter --name '${own}'`);
    expect(userData).not.toContain(other);
    expect(userData).toContain(`s3://\${${ids.bundles}}/releases/$RELEASE/bundle.tgz`);
    expect(userData).toContain(`APP_COLOR=${color}`);
  });

  test('the user data runs `npm start` with PORT=8080 and checks http://127.0.0.1:8080/healthcheck before it completes the hook', () => {
    const userData = userDataOf(stack, template, launchTemplateIdOf(template, ids.blueGroup));
    expect(userData).toContain('exec npm start');
    expect(userData).toContain('PORT=8080');
    expect(userData).toMatch(/curl [^\n]*"http:\/\/127\.0\.0\.1:8080\/healthcheck"[^\n]*finish_hook CONTINUE/);
    expect(userData).toContain('dnf install -y nodejs22 nodejs22-npm amazon-cloudwatch-agent');
  });

  test('the application logs go to a log group kept 30 days and deleted with the stack, named in the user data', () => {
    const logGroup = resourceOf(template, idOf(web.logGroup));
    expect(logGroup.Properties.RetentionInDays).toBe(30);
    expect(logGroup.DeletionPolicy).toBe('Delete');
    expect(userDataOf(stack, template, launchTemplateIdOf(template, ids.blueGroup))).toContain(`s|__LOG_GROUP__|\${${idOf(web.logGroup)}}|g`);
  });

  test('without secrets the user data reads no secret and the secrets file stays empty', () => {
    const userData = userDataOf(stack, template, launchTemplateIdOf(template, ids.blueGroup));
    expect(userData).not.toContain('SECRET_VALUE=$(');
    expect(userData).not.toContain('secretsmanager');
    expect(userData).not.toContain('--with-decryption');
  });
});

describe('Ec2BlueGreenPipeline defaults: the instance role (least privilege)', () => {
  const statements = statementsOfRole(template, ids.instanceRole);

  test('its statements grant exactly: the release parameters, the bundles, the key, its logs, its lifecycle hook and Session Manager', () => {
    expect(statements.flatMap(actionsOf).sort()).toEqual([
      'autoscaling:CompleteLifecycleAction',
      'autoscaling:DescribeAutoScalingInstances',
      'ec2messages:AcknowledgeMessage',
      'ec2messages:DeleteMessage',
      'ec2messages:FailMessage',
      'ec2messages:GetEndpoint',
      'ec2messages:GetMessages',
      'ec2messages:SendReply',
      'kms:Decrypt',
      'logs:CreateLogStream',
      'logs:DescribeLogStreams',
      'logs:PutLogEvents',
      's3:GetObject',
      'ssm:GetParameter',
      'ssm:UpdateInstanceInformation',
      'ssmmessages:CreateControlChannel',
      'ssmmessages:CreateDataChannel',
      'ssmmessages:OpenControlChannel',
      'ssmmessages:OpenDataChannel',
    ]);
  });

  test('S3: only GetObject, only under releases/ of the bundle bucket', () => {
    const s3 = statements.filter((s) => actionsOf(s).some((a) => a.startsWith('s3:')));
    expect(s3).toHaveLength(1);
    expect(actionsOf(s3[0])).toEqual(['s3:GetObject']);
    expect(resourcesOf(s3[0]).map((r) => flatten(stack, r))).toEqual([`\${${ids.bundles}.Arn}/releases/*`]);
  });

  test('SSM: only GetParameter on the two release parameters (no lock, no live color, no other parameter)', () => {
    const env = releaseEnvOf(template, web);
    const get = grantsOf(statements, 'ssm:GetParameter');
    expect(get).toHaveLength(1);
    expect(resourcesOf(get[0])).toEqual([parameterArn(env.RELEASE_PARAMETER_BLUE), parameterArn(env.RELEASE_PARAMETER_GREEN)]);
  });

  test('logs: only its own log group; KMS: only Decrypt with the artifact key; lifecycle: only the two groups', () => {
    expect(resourcesOf(grantsOf(statements, 'logs:PutLogEvents')[0])).toEqual([{ 'Fn::GetAtt': [idOf(web.logGroup), 'Arn'] }]);
    // The key lives in the State stack, which this stack depends on (ADR 0012), and comes in as an import.
    expect(resourcesOf(grantsOf(statements, 'kms:Decrypt')[0]))
      .toEqual([{ 'Fn::ImportValue': expect.stringMatching(new RegExp(`-State:ExportsOutputFnGetAtt${ids.key}Arn`)) }]);
    const complete = resourcesOf(grantsOf(statements, 'autoscaling:CompleteLifecycleAction')[0]).map((r) => flatten(stack, r));
    expect(complete).toEqual([ids.blueGroup, ids.greenGroup].map((id) =>
      `arn:\${AWS::Partition}:autoscaling:us-east-1:123456789012:autoScalingGroup:*:autoScalingGroupName/\${${id}}`));
  });

  test('without secrets it may read no secret', () => {
    expect(statements.flatMap(actionsOf).filter((a) => a.startsWith('secretsmanager:') || a === 'ssm:GetParameters')).toEqual([]);
  });

  test('its managed policies grant no parameter read beyond its own statements (AmazonSSMManagedInstanceCore allows ssm:GetParameter(s) on *)', () => {
    // AmazonSSMManagedInstanceCore (v2) allows ssm:GetParameter and ssm:GetParameters on "*": with it, an instance
    // reads every String parameter of the account (other patterns' releases, locks) and SecureStrings under aws/ssm.
    // It is acceptable only with a Deny that limits those reads to what the role's own statements name.
    const role = resourceOf(template, ids.instanceRole).Properties;
    const managed = (role.ManagedPolicyArns ?? []).map((arn: unknown) => flatten(stack, arn));
    if (managed.some((arn: string) => arn.endsWith(':policy/AmazonSSMManagedInstanceCore'))) {
      const denies = statements.filter((s) => s.Effect === 'Deny'
        && ['ssm:GetParameter', 'ssm:GetParameters'].every((action) => actionsOf(s).some((pattern) => covers(pattern, action))));
      expect(denies).toHaveLength(1);
      expect(denies[0].NotResource).toBeDefined();
    }
  });
});

describe('Ec2BlueGreenPipeline defaults: the release guard', () => {
  test('a custom resource whose Lock is the release-lock parameter, resolved by CloudFormation on every deployment', () => {
    const lock = releaseEnvOf(template, web).LOCK_PARAMETER;
    expect(guardOf(template).Properties).toMatchObject({
      Lock: { Ref: ssmParameterIdOf(template, lock) },
      StackName: 'Shop',
    });
  });

  test('the listeners and both groups depend on it, so a refused update fails before it touches them', () => {
    const guardId = Object.keys(template.findResources('Custom::ReleaseGuard'))[0];
    for (const id of [ids.production, ids.test, ids.blueGroup, ids.greenGroup]) {
      expect(resourceOf(template, id).DependsOn).toContain(guardId);
    }
  });

  test('its function may only describe the executions of the release state machine', () => {
    const functionId = guardOf(template).Properties.ServiceToken['Fn::GetAtt'][0];
    const roleId = resourceOf(template, functionId).Properties.Role['Fn::GetAtt'][0];
    const statements = statementsOfRole(template, roleId);
    const describe = grantsOf(statements, 'states:DescribeExecution');
    expect(describe).toHaveLength(1);
    const name = stateMachineOf(template, web).Properties.StateMachineName;
    expect(resourcesOf(describe[0]).map((r) => flatten(stack, r))).toEqual([`arn:\${AWS::Partition}:states:us-east-1:123456789012:execution:${name}:*`]);
    expect(statements.flatMap(actionsOf).sort()).toEqual(['logs:CreateLogStream', 'logs:PutLogEvents', 'states:DescribeExecution', 'xray:PutTelemetryRecords', 'xray:PutTraceSegments']);
  });
});

describe('Ec2BlueGreenPipeline defaults: the pipeline and its Release stage', () => {
  test('stages Source, Build, Release (no Approve stage)', () => {
    expect((pipelineOf(template, web).Stages as any[]).map((s) => s.Name)).toEqual(['Source', 'Build', 'Release']);
    expect(pipelineOf(template, web).PipelineType).toBe('V2');
  });

  test('Release starts the release state machine with the built RELEASE_ID and the pipeline execution id; nothing else runs there', () => {
    const release = stageOf(template, web, 'Release');
    expect((release.Actions as any[]).map((a) => [a.Name, a.ActionTypeId.Category, a.ActionTypeId.Provider, a.RunOrder]))
      .toEqual([['Deploy', 'Invoke', 'StepFunctions', 1]]);
    const deploy = actionOf(template, web, 'Release', 'Deploy');
    expect(deploy.Configuration.StateMachineArn).toEqual({ Ref: idOf(web.stateMachine) });
    expect(deploy.Configuration.InputType).toBe('Literal');
    expect(JSON.parse(deploy.Configuration.Input)).toEqual({
      release: '#{BuildVariables.RELEASE_ID}',
      pipelineExecutionId: '#{codepipeline.PipelineExecutionId}',
    });
    expect(actionOf(template, web, 'Build', 'Build').Namespace).toBe('BuildVariables');
  });

  test('a failed Release stage does not roll back on its own (the workflow already put production back)', () => {
    expect(stageOf(template, web, 'Release').OnFailure).toBeUndefined();
  });

  test('the state machine has a literal name that starts with the stack name', () => {
    expect(stateMachineOf(template, web).Properties.StateMachineName).toMatch(/^Shop-Web-/);
  });
});

describe('Ec2BlueGreenPipeline defaults: the release function', () => {
  const env = releaseEnvOf(template, web);

  test('it gets every environment variable the handler reads (but the approval gate\'s), and none the handler ignores', () => {
    const { all, approval } = handlerEnvironmentNames();
    expect(all).toEqual(expect.arrayContaining(['LIVE_COLOR_PARAMETER', 'ALARMS_BLUE', 'DEPLOYMENT_ALARMS', 'CANARY_SECONDS']));
    const runtime = ['AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED', 'AWS_NODEJS_CONNECTION_REUSE_ENABLED'];
    expect(Object.keys(env).filter((name) => !runtime.includes(name)).sort()).toEqual(all.filter((name) => !approval.includes(name)));
  });

  test('the names and ARNs of this fleet: parameters, groups, target groups, production listener, stack, state machine', () => {
    expect(env).toMatchObject({
      LIVE_COLOR_PARAMETER: web.liveColorParameterName,
      BLUE_GROUP_NAME: { Ref: ids.blueGroup },
      GREEN_GROUP_NAME: { Ref: ids.greenGroup },
      BLUE_TARGET_GROUP_ARN: { Ref: ids.blueTargetGroup },
      GREEN_TARGET_GROUP_ARN: { Ref: ids.greenTargetGroup },
      PRODUCTION_LISTENER_ARN: { Ref: ids.production },
      STACK_NAME: 'Shop',
      NOTIFY_TOPIC_ARN: stack.resolve(web.pipeline.notifications.topic.topicArn),
    });
    const name = stateMachineOf(template, web).Properties.StateMachineName;
    expect(flatten(stack, env.STATE_MACHINE_ARN)).toBe(`arn:\${AWS::Partition}:states:us-east-1:123456789012:stateMachine:${name}`);
    expect(flatten(stack, env.TEST_URL)).toBe(flatten(stack, web.testUrl));
    expect(flatten(stack, env.PRODUCTION_URL)).toBe(flatten(stack, web.productionUrl));
  });

  test('the timing of the defaults: capacity 2, 55 minutes, 15 minutes to become healthy, a 5 minute bake, all at once', () => {
    expect(env).toMatchObject({
      DEFAULT_CAPACITY: '2',
      RELEASE_DEADLINE_SECONDS: '3300',
      HEALTH_TIMEOUT_SECONDS: '900',
      BAKE_SECONDS: '300',
      CANARY_PERCENT: '0',
      CANARY_SECONDS: '0',
    });
  });

  test('ALARMS_BLUE and ALARMS_GREEN list that color\'s three alarms; DEPLOYMENT_ALARMS is empty', () => {
    for (const color of ['Blue', 'Green']) {
      const expected = ['Http5xx', 'UnhealthyHosts', 'LatencyP99'].map((name) => `\${${alarmIdOf(template, web, `${color}${name}`)}}`);
      expect(flatten(stack, env[`ALARMS_${color.toUpperCase()}`]).split(',')).toEqual(expected);
    }
    expect(env.DEPLOYMENT_ALARMS).toBe('');
  });

  test('UpdateAutoScalingGroup on the two groups only', () => {
    const update = grantsOf(releaseStatementsOf(template, web), 'autoscaling:UpdateAutoScalingGroup');
    expect(update).toHaveLength(1);
    expect(actionsOf(update[0])).toEqual(['autoscaling:UpdateAutoScalingGroup']);
    expect(resourcesOf(update[0]).map((r) => flatten(stack, r))).toEqual([ids.blueGroup, ids.greenGroup].map((id) =>
      `arn:\${AWS::Partition}:autoscaling:us-east-1:123456789012:autoScalingGroup:*:autoScalingGroupName/\${${id}}`));
  });

  test('ModifyListener on the production listener, and on no listener of anything else', () => {
    const modify = grantsOf(releaseStatementsOf(template, web), 'elasticloadbalancing:ModifyListener');
    expect(modify).toHaveLength(1);
    expect(actionsOf(modify[0])).toEqual(['elasticloadbalancing:ModifyListener']);
    const resources = resourcesOf(modify[0]);
    expect(resources).toContainEqual({ Ref: ids.production });
    for (const resource of resources) expect([{ Ref: ids.production }, { Ref: ids.test }]).toContainEqual(resource);
  });

  test('DescribeAlarms on the six per-color alarms only', () => {
    const describe = grantsOf(releaseStatementsOf(template, web), 'cloudwatch:DescribeAlarms');
    const resources = describe.flatMap(resourcesOf);
    expect(resources.sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b))))
      .toEqual(COLOR_ALARMS.map((id) => ({ 'Fn::GetAtt': [alarmIdOf(template, web, id), 'Arn'] }))
        .sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b))));
  });

  test('SSM: read and write exactly the four state parameters (and delete them, only to undo a write that created one)', () => {
    const put = grantsOf(releaseStatementsOf(template, web), 'ssm:PutParameter');
    expect(put).toHaveLength(1);
    expect(resourcesOf(put[0])).toEqual([env.LIVE_COLOR_PARAMETER, env.LOCK_PARAMETER, env.RELEASE_PARAMETER_BLUE, env.RELEASE_PARAMETER_GREEN]
      .map(parameterArn));
    expect(actionsOf(put[0]).sort()).toEqual(['ssm:DeleteParameter', 'ssm:GetParameter', 'ssm:GetParameters', 'ssm:PutParameter']);
    expect(grantsOf(releaseStatementsOf(template, web), 'ssm:DeleteParameter')).toEqual(put);
  });

  test('traffic step events: PutEvents on the default bus only, with its source and detail-type, and the pipeline named', () => {
    const put = grantsOf(releaseStatementsOf(template, web), 'events:PutEvents');
    expect(put).toEqual([{
      Effect: 'Allow',
      Action: 'events:PutEvents',
      Resource: { 'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, ':events:us-east-1:123456789012:event-bus/default']] },
      Condition: {
        'ForAllValues:StringEquals': { 'events:source': ['cdk-delivery-pipelines.release'], 'events:detail-type': ['Release Traffic Shifted'] },
        'Null': { 'events:source': 'false', 'events:detail-type': 'false' },
      },
    }]);
    expect(env.PIPELINE_NAME).toBe(pipelineOf(template, web).Name);
  });

  test('without the approval gate it may not read the pipeline', () => {
    expect(releaseStatementsOf(template, web).flatMap(actionsOf).filter((a) => a.startsWith('codepipeline:'))).toEqual([]);
  });

  test('the test listener follows the idle color after a release: the release function is told the test listener and may point it at the new idle color', () => {
    // After a release production runs the new color, but the test listener still forwards to what CloudFormation
    // declared at the last `cdk deploy`; without the release moving it, the next release's smoke test and review
    // would hit the live color instead of the new one.
    expect(Object.values(env)).toContainEqual({ Ref: ids.test });
    const modify = grantsOf(releaseStatementsOf(template, web), 'elasticloadbalancing:ModifyListener').flatMap(resourcesOf);
    expect(modify).toContainEqual({ Ref: ids.test });
  });
});

describe('Ec2BlueGreenPipeline defaults: the build', () => {
  const spec = buildSpecOf(stack, template);

  test('on an ARM container host (the instances are Graviton), not privileged', () => {
    expect(onlyResource(template, 'AWS::CodeBuild::Project').Properties.Environment).toMatchObject({ Type: 'ARM_CONTAINER', PrivilegedMode: false });
  });

  test('the unit tests run first: npm ci and the test script when the app has a package.json', () => {
    expect(spec.phases.pre_build.commands).toEqual([
      'cd "$CODEBUILD_SRC_DIR/$APP_DIRECTORY"',
      expect.stringMatching(/^if \[ -f package\.json \]; then npm ci && npm run test --if-present; else .*fi$/),
    ]);
    expect(Object.values(spec.reports)).toEqual([expect.objectContaining({ 'base-directory': 'reports/junit' })]);
  });

  test('then the build script and a production prune, then the bundle goes to releases/$RELEASE_ID/bundle.tgz of the bundle bucket', () => {
    const build: string[] = spec.phases.build.commands;
    const buildCommand = build.findIndex((c) => c.includes('npm run build --if-present && npm prune --omit=dev'));
    const exportId = build.findIndex((c) => c.startsWith('export RELEASE_ID='));
    const upload = build.findIndex((c) => c.startsWith('aws s3 cp /tmp/bundle.tgz "s3://$BUNDLE_BUCKET/releases/$RELEASE_ID/bundle.tgz"'));
    expect(buildCommand).toBeGreaterThan(0);
    expect(exportId).toBeGreaterThan(buildCommand);
    expect(upload).toBeGreaterThan(exportId);
    expect(build[exportId]).toContain('CODEBUILD_BUILD_NUMBER');
    expect(flatten(stack, buildEnvOf(template).BUNDLE_BUCKET.Value)).toBe(`\${${ids.bundles}}`);
    expect(buildEnvOf(template).APP_DIRECTORY.Value).toBe('.');
  });

  test('RELEASE_ID is an exported variable, and release.json is the artifact', () => {
    expect(spec.env['exported-variables']).toEqual(['RELEASE_ID']);
    expect(spec.artifacts.files).toEqual(['release.json']);
  });

  test('the RELEASE_ID the build makes is one the release function and the instances accept (letters, digits, . _ -)', () => {
    const build: string[] = spec.phases.build.commands;
    expect(build.find((c) => c.startsWith('REVISION='))).toContain('tr -c "A-Za-z0-9_.-" "-"');
  });

  test('the build role may write the bundle under releases/ of the bundle bucket, and nowhere else of it', () => {
    const roleId = onlyResource(template, 'AWS::CodeBuild::Project').Properties.ServiceRole['Fn::GetAtt'][0];
    const statements = statementsOfRole(template, roleId);
    const put = grantsOf(statements, 's3:PutObject');
    expect(put.flatMap(resourcesOf).map((r) => flatten(stack, r))).toContain(`\${${ids.bundles}.Arn}/releases/*`);
    const onBundles = statements.filter((st) => resourcesOf(st).some((r) => flatten(stack, r).includes(ids.bundles)));
    expect(onBundles.flatMap(actionsOf)).toEqual(['s3:PutObject']);
  });

  test('the release bundles the live color installs at every boot do not expire with the pipeline\'s other artifacts', () => {
    // An instance replaced by Auto Scaling, or an instance refresh from a `cdk deploy`, installs the live release's
    // bundle again: a lifecycle rule that expires it takes the live color down once it is older than the rule.
    expect(ids.bundles).not.toBe(ids.bucket);
    const rules = resourceOf(template, ids.bundles).Properties.LifecycleConfiguration?.Rules ?? [];
    const expiring = (rules as any[]).filter((rule) => rule.Status === 'Enabled' && rule.ExpirationInDays !== undefined);
    for (const rule of expiring) {
      const prefix: string | undefined = rule.Prefix;
      expect({ id: rule.Id, prefix }).toEqual({ id: rule.Id, prefix: expect.stringMatching(/^(?!releases\/)./) });
    }
  });
});

describe('Ec2BlueGreenPipeline defaults: monitoring and outputs', () => {
  test('8 alarms: 5xx, unhealthy hosts and p99 latency per color, p95 latency and healthy hosts; each notifies the alarm topic', () => {
    template.resourceCountIs('AWS::CloudWatch::Alarm', 8);
    for (const id of [...COLOR_ALARMS, 'LatencyP95', 'HealthyHosts']) alarmIdOf(template, web, id);
    const topic = stack.resolve(web.alarmTopic.topicArn);
    for (const alarm of Object.values(template.findResources('AWS::CloudWatch::Alarm')) as any[]) {
      expect(alarm.Properties.AlarmActions).toEqual([topic]);
    }
  });

  test.each(['Blue', 'Green'])('the %s alarms watch that color\'s target group: 5 5xx a minute, 1 unhealthy host, a p99 of 2 s', (color) => {
    const targetGroup = color === 'Blue' ? ids.blueTargetGroup : ids.greenTargetGroup;
    const dimension = { Name: 'TargetGroup', Value: { 'Fn::GetAtt': [targetGroup, 'TargetGroupFullName'] } };
    const alarm = (name: string) => resourceOf(template, alarmIdOf(template, web, `${color}${name}`)).Properties;
    expect(alarm('Http5xx')).toMatchObject({ MetricName: 'HTTPCode_Target_5XX_Count', Statistic: 'Sum', Threshold: 5 });
    expect(alarm('UnhealthyHosts')).toMatchObject({ MetricName: 'UnHealthyHostCount', Threshold: 1 });
    expect(alarm('LatencyP99')).toMatchObject({ MetricName: 'TargetResponseTime', ExtendedStatistic: 'p99', Threshold: 2 });
    for (const name of ['Http5xx', 'UnhealthyHosts', 'LatencyP99']) expect(alarm(name).Dimensions).toContainEqual(dimension);
  });

  test('LatencyP95 watches the load balancer\'s p95 at 1 s (the workshop\'s alarm)', () => {
    expect(resourceOf(template, alarmIdOf(template, web, 'LatencyP95')).Properties).toMatchObject({
      MetricName: 'TargetResponseTime',
      ExtendedStatistic: 'p95',
      Threshold: 1,
      Dimensions: [{ Name: 'LoadBalancer', Value: { 'Fn::GetAtt': [idOf(web.loadBalancer), 'LoadBalancerFullName'] } }],
    });
  });

  test('HealthyHosts fires below the capacity of healthy instances in both colors, and when there is no data', () => {
    expect(resourceOf(template, alarmIdOf(template, web, 'HealthyHosts')).Properties).toMatchObject({
      ComparisonOperator: 'LessThanThreshold',
      Threshold: 2,
      TreatMissingData: 'breaching',
      Metrics: expect.arrayContaining([expect.objectContaining({ Expression: 'FILL(blue, 0) + FILL(green, 0)' })]),
    });
  });

  test('a dashboard with both colors\' requests and healthy hosts', () => {
    const body = flatten(stack, resourceOf(template, idOf(web.dashboard)).Properties.DashboardBody);
    for (const id of [ids.blueTargetGroup, ids.greenTargetGroup]) expect(body).toContain(`\${${id}.TargetGroupFullName}`);
    expect(body).toContain('RequestCount');
    expect(body).toContain('HealthyHostCount');
    expect(body).toContain('Requests by color');
  });

  test('outputs ProductionUrl, TestUrl and RollbackCommand (rollback-stage of the Release stage)', () => {
    const outputs = template.toJSON().Outputs;
    const byName = (name: string) => {
      const found = Object.entries(outputs).filter(([id]) => id.startsWith(`Web${name}`));
      expect(found).toHaveLength(1);
      return flatten(stack, (found[0][1] as any).Value);
    };
    expect(byName('ProductionUrl')).toBe(flatten(stack, web.productionUrl));
    expect(byName('TestUrl')).toBe(flatten(stack, web.testUrl));
    expect(byName('RollbackCommand')).toBe(
      `aws codepipeline rollback-stage --pipeline-name \${${idOf(web.pipeline.pipeline)}} --stage-name Release `
      + '--target-pipeline-execution-id <id of an earlier successful execution>');
    expect(flatten(stack, web.rollbackCommand)).toBe(byName('RollbackCommand'));
  });
});

describe('Ec2BlueGreenPipeline invariant 6: only the release moves traffic', () => {
  test('no resource has an UpdatePolicy that can move traffic: only the groups\' instance refresh and scheduled-action policies', () => {
    const withPolicy = Object.entries(template.toJSON().Resources as Record<string, any>).filter(([, r]) => r.UpdatePolicy !== undefined);
    expect(withPolicy.map(([id]) => id).sort()).toEqual([ids.blueGroup, ids.greenGroup].sort());
    for (const [, resource] of withPolicy) {
      for (const key of Object.keys(resource.UpdatePolicy)) {
        expect(['AutoScalingInstanceRefresh', 'AutoScalingScheduledAction']).toContain(key);
      }
    }
    expect(Object.keys(template.toJSON().Resources).filter((id) => template.toJSON().Resources[id].Type.startsWith('AWS::CodeDeploy::'))).toEqual([]);
  });

  test('nothing but the release function may modify a listener (no other statement, no wildcard, no managed policy)', () => {
    const releaseRole = releaseFunctionOf(template, web).Properties.Role['Fn::GetAtt'][0];
    const offenders: string[] = [];
    for (const [id, policy] of Object.entries(template.findResources('AWS::IAM::Policy')) as [string, any][]) {
      const roles = (policy.Properties.Roles ?? []).map((r: any) => r.Ref);
      for (const statement of policy.Properties.PolicyDocument.Statement) {
        if (statement.Effect !== 'Allow') continue;
        if (actionsOf(statement).some((a) => covers(a, 'elasticloadbalancing:ModifyListener')) && !(roles.length === 1 && roles[0] === releaseRole)) {
          offenders.push(id);
        }
      }
    }
    for (const [id, role] of Object.entries(template.findResources('AWS::IAM::Role')) as [string, any][]) {
      for (const inline of role.Properties.Policies ?? []) {
        if ((inline.PolicyDocument.Statement as any[]).some((s) => s.Effect === 'Allow' && actionsOf(s).some((a) => covers(a, 'elasticloadbalancing:ModifyListener')))) {
          offenders.push(id);
        }
      }
    }
    expect(offenders).toEqual([]);
    const managed = (Object.values(template.findResources('AWS::IAM::Role')) as any[])
      .flatMap((role) => role.Properties.ManagedPolicyArns ?? [])
      .map((arn: unknown) => /:policy\/([A-Za-z0-9/_+=,.@-]+)/.exec(JSON.stringify(stack.resolve(arn)))?.[1] ?? JSON.stringify(arn));
    expect([...new Set(managed)].sort()).toEqual(['service-role/AWSLambdaBasicExecutionRole']);
  });

  test('the Release stage holds no CloudFormation or CodeDeploy action that could move traffic outside the workflow', () => {
    const providers = (stageOf(template, web, 'Release').Actions as any[]).map((a) => a.ActionTypeId.Provider);
    expect(providers).toEqual(['StepFunctions']);
  });
});

describe('Ec2BlueGreenPipeline defaults: teardown, two stacks of one app, compliance', () => {
  test('no resource of the pattern\'s stacks is retained: cdk destroy removes everything', () => {
    for (const t of [template, stateTemplate]) {
      const retained = Object.entries(t.toJSON().Resources as Record<string, any>)
        .filter(([, r]) => r.DeletionPolicy === 'Retain' || r.UpdateReplacePolicy === 'Retain' || r.DeletionPolicy === 'RetainExceptOnCreate')
        .map(([id]) => id);
      expect(retained).toEqual([]);
    }
  });

  test('the same pattern in two stacks of one app gets its own state stack, parameters and state machine name', () => {
    const siblingState = stateStacksOf(app, sibling);
    expect(siblingState).toHaveLength(1);
    expect(siblingState[0].stackName).not.toBe(stateStack.stackName);
    expect(siblingWeb.liveColorParameterName).not.toBe(web.liveColorParameterName);
    expect(releaseEnvOf(siblingTemplate, siblingWeb).LOCK_PARAMETER).not.toBe(releaseEnvOf(template, web).LOCK_PARAMETER);
    expect(stateMachineOf(siblingTemplate, siblingWeb).Properties.StateMachineName)
      .not.toBe(stateMachineOf(template, web).Properties.StateMachineName);
  });

  test('all four stacks pass cdk-nag (AwsSolutions, Serverless) and the CloudFormation validator', () => {
    const reports: StackReport[] = checkApp(app);
    expect(reports.map((r) => r.stackName).sort()).toEqual(['Shop', 'Shop2', stateStack.stackName, stateStacksOf(app, sibling)[0].stackName].sort());
    expect(reports.map(describeFailures)).toEqual(reports.map((r) => `${r.stackName}: clean`));
  }, COMPLIANCE_TIMEOUT);
});

// ------------------------------------------------------------------------------------------------------------------
// App B: every override at once (approval gate, canary, certificate, secrets from SSM and Secrets Manager, x86).
// ------------------------------------------------------------------------------------------------------------------
const overApp = new App();
const overStack = new Stack(overApp, 'Custom', { env: ENV });
const userVpc = new ec2.Vpc(overStack, 'UserVpc', {
  maxAzs: 2,
  natGateways: 0,
  subnetConfiguration: [{ name: 'Public', subnetType: ec2.SubnetType.PUBLIC }],
  flowLogs: {
    Rejected: {
      destination: ec2.FlowLogDestination.toCloudWatchLogs(new logs.LogGroup(overStack, 'UserVpcFlowLogs', { retention: logs.RetentionDays.ONE_MONTH })),
      trafficType: ec2.FlowLogTrafficType.REJECT,
    },
  },
});
const secretKey = new kms.Key(overStack, 'SecretKey', { enableKeyRotation: true });
const dbPassword = ssm.StringParameter.fromSecureStringParameterAttributes(overStack, 'DbPassword', {
  parameterName: '/shop/db-password', encryptionKey: secretKey,
});
const apiSecret = secretsmanager.Secret.fromSecretNameV2(overStack, 'ApiSecret', 'shop/api');
const npmToken = ssm.StringParameter.fromSecureStringParameterAttributes(overStack, 'NpmToken', { parameterName: '/shop/npm-token' });
const ordersAlarm = cloudwatch.Alarm.fromAlarmArn(overStack, 'OrdersAlarm', 'arn:aws:cloudwatch:us-east-1:123456789012:alarm:orders-errors');
const custom = new Ec2BlueGreenPipeline(overStack, 'Web', {
  source: source(),
  approval: Approval.beforeProductionTraffic(),
  appDirectory: 'app/',
  testCommands: ['make test'],
  buildCommands: ['make bundle'],
  buildEnvironmentVariables: { NODE_ENV: 'production' },
  buildSecrets: { NPM_TOKEN: BuildSecret.fromSsmParameter(npmToken) },
  startCommand: 'node server.js',
  setupCommands: ['dnf install -y nodejs22 amazon-cloudwatch-agent'],
  environment: { GREETING: 'say "hi" \\ bye' },
  secrets: {
    DB_PASSWORD: InstanceSecret.fromSsmParameter(dbPassword),
    API_KEY: InstanceSecret.fromSecretsManager(apiSecret, 'key'),
  },
  vpc: userVpc,
  architecture: ec2.InstanceArchitecture.X86_64,
  instanceType: ec2.InstanceType.of(ec2.InstanceClass.T3, ec2.InstanceSize.SMALL),
  capacity: 3,
  port: 3000,
  healthCheckPath: '/ping',
  expectedPhrase: 'Welcome',
  deregistrationDelay: Duration.seconds(10),
  certificate: elbv2.ListenerCertificate.fromArn(CERTIFICATE_ARN),
  testListenerPort: 9000,
  testListenerPeers: [ec2.Peer.ipv4('10.1.0.0/16')],
  trafficShift: TrafficShift.canary(10, Duration.minutes(5)),
  bakeTime: Duration.minutes(10),
  deploymentAlarms: [ordersAlarm],
  latencyThreshold: Duration.millis(500),
  p95LatencyThreshold: Duration.millis(800),
  logRetention: logs.RetentionDays.ONE_WEEK,
  notifications: { emails: ['dev@example.com'] },
  alarmEmails: ['ops@example.com'],
  retainArtifacts: true,
});
// Parsed without the cycle check, so that every override is still asserted while the gate's cycle (a defect,
// asserted below) exists.
const overTemplate = Template.fromStack(overStack, { skipCyclicalDependenciesCheck: true });
const over = {
  blueGroup: idOf(custom.blueGroup),
  greenGroup: idOf(custom.greenGroup),
  blueTargetGroup: idOf(custom.blueTargetGroup),
  production: idOf(custom.productionListener),
  test: idOf(custom.testListener),
  instanceRole: idOf(custom.instanceRole),
};
const overUserData = userDataOf(overStack, overTemplate, launchTemplateIdOf(overTemplate, over.blueGroup));
const overEnv = releaseEnvOf(overTemplate, custom);

describe('Ec2BlueGreenPipeline overrides: approval before production traffic', () => {
  test('the Release stage gets a manual ApproveProductionTraffic action at run order 1, beside the workflow', () => {
    expect((stageOf(overTemplate, custom, 'Release').Actions as any[]).map((a) => [a.Name, a.ActionTypeId.Provider, a.RunOrder])).toEqual([
      ['Deploy', 'StepFunctions', 1],
      ['ApproveProductionTraffic', 'Manual', 1],
    ]);
  });

  test('without a timeout the reviewer gets what the release\'s hour leaves: 55 - 15 (instances) - 5 (canary) - 10 (bake) = 25 minutes after "ready for review"', () => {
    // The approval action starts with the workflow, up to 15 minutes before the new version is ready for review.
    expect(actionOf(overTemplate, custom, 'Release', 'ApproveProductionTraffic').TimeoutInMinutes).toBe(15 + 25);
    expect(overEnv.APPROVAL_TIMEOUT_SECONDS).toBe('1500');
  });

  test('the approval links to the test URL and its message names it', () => {
    const configuration = actionOf(overTemplate, custom, 'Release', 'ApproveProductionTraffic').Configuration;
    expect(flatten(overStack, configuration.ExternalEntityLink)).toBe(flatten(overStack, custom.testUrl));
    expect(flatten(overStack, configuration.CustomData)).toContain(flatten(overStack, custom.testUrl));
  });

  test('the release function knows where the approval is and may list that pipeline\'s action executions', () => {
    expect(overEnv).toMatchObject({ APPROVAL_STAGE_NAME: 'Release', APPROVAL_ACTION_NAME: 'ApproveProductionTraffic' });
    expect(overEnv.APPROVAL_PIPELINE_NAME).toBe(pipelineOf(overTemplate, custom).Name);
    const list = grantsOf(releaseStatementsOf(overTemplate, custom), 'codepipeline:ListActionExecutions');
    expect(list).toHaveLength(1);
  });

  test('with the gate the function gets every variable the handler reads, the approval gate\'s too', () => {
    const runtime = ['AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED', 'AWS_NODEJS_CONNECTION_REUSE_ENABLED'];
    expect(Object.keys(overEnv).filter((name) => !runtime.includes(name)).sort()).toEqual(handlerEnvironmentNames().all);
  });

  test('a notification rule announces the approval', () => {
    overTemplate.hasResourceProperties('AWS::Events::Rule', {
      EventPattern: Match.objectLike({ detail: { stage: ['Release'], action: ['ApproveProductionTraffic'], state: ['STARTED'] } }),
    });
  });

  test('the gate adds no dependency cycle: the template is deployable', () => {
    expect(() => Template.fromStack(overStack)).not.toThrow();
  });

  test('the gate adds no dependency cycle: neither the release function\'s environment nor its policy reference the pipeline resource', () => {
    // The release function (its environment and its codepipeline:ListActionExecutions statement) referencing the
    // pipeline resource closes a cycle: pipeline -> state machine -> its role's policy -> release function -> the
    // function's policy -> pipeline. CloudFormation refuses such a template (the Fargate pattern names its pipeline).
    const pipelineId = idOf(custom.pipeline.pipeline);
    const references = (value: unknown) => JSON.stringify(value).includes(`"Ref":"${pipelineId}"`)
      || JSON.stringify(value).includes(`"Fn::GetAtt":["${pipelineId}"`);
    expect(Object.entries(overEnv).filter(([, value]) => references(value)).map(([name]) => name)).toEqual([]);
    const list = grantsOf(releaseStatementsOf(overTemplate, custom), 'codepipeline:ListActionExecutions');
    expect(list.filter(references).map((s) => flatten(overStack, s.Resource))).toEqual([]);
  });
});

describe('Ec2BlueGreenPipeline overrides: build', () => {
  const spec = buildSpecOf(overStack, overTemplate);

  test('appDirectory "app/" is normalized to "app", for the build and for the test reports', () => {
    expect(buildEnvOf(overTemplate).APP_DIRECTORY.Value).toBe('app');
    expect(Object.values(spec.reports)).toEqual([expect.objectContaining({ 'base-directory': 'app/reports/junit' })]);
  });

  test('testCommands replace the default npm test', () => {
    expect(spec.phases.pre_build.commands).toEqual(['cd "$CODEBUILD_SRC_DIR/$APP_DIRECTORY"', 'make test']);
  });

  test('buildCommands replace the default npm build and prune, before the upload', () => {
    const build: string[] = spec.phases.build.commands;
    expect(build.slice(0, 2)).toEqual(['cd "$CODEBUILD_SRC_DIR/$APP_DIRECTORY"', 'make bundle']);
    expect(JSON.stringify(build)).not.toContain('npm prune');
    expect(build.some((c) => c.includes('releases/$RELEASE_ID/bundle.tgz'))).toBe(true);
  });

  test('build environment variables and build secrets reach the build', () => {
    const env = buildEnvOf(overTemplate);
    expect(env.NODE_ENV).toEqual({ Name: 'NODE_ENV', Type: 'PLAINTEXT', Value: 'production' });
    expect(env.NPM_TOKEN).toMatchObject({ Type: 'PARAMETER_STORE', Value: '/shop/npm-token' });
  });

  test('X86_64 instances get their bundle built on an x86 host', () => {
    expect(onlyResource(overTemplate, 'AWS::CodeBuild::Project').Properties.Environment.Type).toBe('LINUX_CONTAINER');
  });

  test('retainArtifacts keeps the artifact bucket (and the bundles in it), and the pipeline key in the State stack', () => {
    expect(resourceOf(overTemplate, idOf(custom.pipeline.artifactBucket)).DeletionPolicy).toBe('Retain');
    const keyStack = Stack.of(custom.pipeline.artifactKey);
    expect(keyStack.stackName).toMatch(/-State$/);
    expect(resourceOf(Template.fromStack(keyStack), idOf(custom.pipeline.artifactKey)).DeletionPolicy).toBe('Retain');
    // The only key left in the service stack is the user's own.
    expect(Object.keys(overTemplate.findResources('AWS::KMS::Key'))).toEqual([idOf(secretKey)]);
  });

  test('notifications.emails subscribe to the pipeline\'s topic', () => {
    overTemplate.hasResourceProperties('AWS::SNS::Subscription', {
      Protocol: 'email', Endpoint: 'dev@example.com', TopicArn: overStack.resolve(custom.pipeline.notifications.topic.topicArn),
    });
  });
});

describe('Ec2BlueGreenPipeline overrides: fleet', () => {
  test('a user VPC is used as is: no VPC is created', () => {
    expect(Object.keys(overTemplate.findResources('AWS::EC2::VPC'))).toEqual([idOf(userVpc)]);
    expect(custom.vpc).toBe(userVpc);
  });

  test('architecture X86_64 and instanceType t3.small: the launch templates run t3.small on Amazon Linux 2023 for x86_64', () => {
    const data = resourceOf(overTemplate, launchTemplateIdOf(overTemplate, over.greenGroup)).Properties.LaunchTemplateData;
    expect(data.InstanceType).toBe('t3.small');
    expect(overTemplate.toJSON().Parameters[data.ImageId.Ref].Default).toMatch(/^\/aws\/service\/ami-amazon-linux-latest\/al2023-ami-.*-x86_64$/);
  });

  test('capacity 3: MaxSize 6, 3 instances on the live color, the release\'s default capacity and the healthy-hosts threshold', () => {
    expect(resourceOf(overTemplate, over.blueGroup).Properties.MaxSize).toBe('6');
    expect(whenLive(overTemplate, custom, 'blue', resourceOf(overTemplate, over.blueGroup).Properties.DesiredCapacity)).toBe('3');
    expect(overEnv.DEFAULT_CAPACITY).toBe('3');
    expect(resourceOf(overTemplate, alarmIdOf(overTemplate, custom, 'HealthyHosts')).Properties.Threshold).toBe(3);
  });

  test('port 3000: the target groups, the instance ingress and PORT', () => {
    expect(resourceOf(overTemplate, over.blueTargetGroup).Properties.Port).toBe(3000);
    overTemplate.hasResourceProperties('AWS::EC2::SecurityGroupIngress', {
      GroupId: { 'Fn::GetAtt': [idOf(custom.instanceSecurityGroup), 'GroupId'] }, FromPort: 3000, ToPort: 3000,
    });
    expect(overUserData).toContain('PORT=3000');
  });

  test('healthCheckPath /ping: the target groups, the local readiness check on the port, and the smoke test', () => {
    expect(resourceOf(overTemplate, over.blueTargetGroup).Properties.HealthCheckPath).toBe('/ping');
    expect(overUserData).toMatch(/curl [^\n]*"http:\/\/127\.0\.0\.1:3000\/ping"[^\n]*finish_hook CONTINUE/);
    expect(smokeEnvOf(overTemplate).SMOKE_TEST_HEALTH_PATH).toBe('/ping');
  });

  test('expectedPhrase reaches the smoke test, which runs against the test URL', () => {
    const smoke = smokeEnvOf(overTemplate);
    expect(smoke.SMOKE_TEST_EXPECTED_PHRASE).toBe('Welcome');
    expect(flatten(overStack, smoke.SMOKE_TEST_BASE_URL)).toBe(flatten(overStack, custom.testUrl));
  });

  test('deregistrationDelay 10 s', () => {
    expect(resourceOf(overTemplate, over.blueTargetGroup).Properties.TargetGroupAttributes)
      .toContainEqual({ Key: 'deregistration_delay.timeout_seconds', Value: '10' });
  });

  test('startCommand is what systemd runs in the release directory', () => {
    expect(overUserData).toContain('cd /opt/app/current\nexec node server.js\n');
    expect(overUserData).not.toContain('npm start');
  });

  test('setupCommands replace the default package installation', () => {
    expect(overUserData).toContain('dnf install -y nodejs22 amazon-cloudwatch-agent');
    expect(overUserData).not.toContain('nodejs24');
  });

  test('environment values are written quoted for systemd', () => {
    expect(overUserData).toContain('GREETING="say \\"hi\\" \\\\ bye"');
  });

  test('logRetention applies to the app logs, the release function\'s logs and the workflow\'s logs', () => {
    expect(resourceOf(overTemplate, idOf(custom.logGroup)).Properties.RetentionInDays).toBe(7);
    const functionLogs = releaseFunctionOf(overTemplate, custom).Properties.LoggingConfig.LogGroup.Ref;
    expect(resourceOf(overTemplate, functionLogs).Properties.RetentionInDays).toBe(7);
    const machineLogs = stateMachineOf(overTemplate, custom).Properties.LoggingConfiguration.Destinations[0]
      .CloudWatchLogsLogGroup.LogGroupArn['Fn::GetAtt'][0];
    expect(resourceOf(overTemplate, machineLogs).Properties.RetentionInDays).toBe(7);
  });
});

describe('Ec2BlueGreenPipeline overrides: secrets', () => {
  const statements = statementsOfRole(overTemplate, over.instanceRole);

  test('the user data names each secret and how to read it, and keeps it in the root-only secrets file', () => {
    expect(overUserData).toContain('SECRET_VALUE=$(aws ssm get-parameter --with-decryption --name \'/shop/db-password\' --query Parameter.Value --output text)');
    expect(overUserData).toMatch(/SECRET_VALUE=\$\(aws secretsmanager get-secret-value --secret-id 'arn:[^']*:secret:shop\/api' [^\n]*'key'\)/);
    expect(overUserData).toMatch(/printf '%s="%s"\\n' DB_PASSWORD [^\n]*>> \/etc\/app\/secrets\.env/);
    expect(overUserData).toMatch(/printf '%s="%s"\\n' API_KEY [^\n]*>> \/etc\/app\/secrets\.env/);
  });

  test('no secret value is in the template: no dynamic reference, and the names stay out of the plain environment file', () => {
    const everything = JSON.stringify(overTemplate.toJSON());
    expect(everything).not.toContain('{{resolve:');
    const plainEnvironment = /cat > \/etc\/app\/app\.env <<'CDK_DP_EOF'\n([\s\S]*?)\nCDK_DP_EOF/.exec(overUserData)![1];
    expect(plainEnvironment).not.toMatch(/DB_PASSWORD|API_KEY/);
    expect(plainEnvironment).toContain('GREETING=');
  });

  test('the instance role may read these secrets (and decrypt with their key), nothing on *', () => {
    const ssmRead = statements.filter((s) => actionsOf(s).includes('ssm:GetParameter') && JSON.stringify(s.Resource).includes('/shop/db-password'));
    expect(ssmRead).toHaveLength(1);
    expect(resourcesOf(ssmRead[0])).toEqual([parameterArn('/shop/db-password')]);
    const decrypt = grantsOf(statements, 'kms:Decrypt').flatMap(resourcesOf);
    expect(decrypt).toContainEqual({ 'Fn::GetAtt': [idOf(secretKey), 'Arn'] });
    const secretRead = grantsOf(statements, 'secretsmanager:GetSecretValue');
    expect(secretRead).toHaveLength(1);
    expect(resourcesOf(secretRead[0]).map((r) => flatten(overStack, r))).toEqual([expect.stringMatching(/:secret:shop\/api-\?{6}$/)]);
    const onStar = statements.filter((s) => resourcesOf(s).includes('*')).flatMap(actionsOf);
    // Only actions without resource-level permissions: finding its group, and the SSM agent's Session Manager calls.
    expect(onStar.sort()).toEqual(['autoscaling:DescribeAutoScalingInstances', ...SESSION_MANAGER_ACTIONS].sort());
    expect(onStar.filter((a) => /^(ssm:Get|secretsmanager:|kms:)/.test(a))).toEqual([]);
  });
});

describe('Ec2BlueGreenPipeline overrides: load balancer', () => {
  test('with a certificate, production listens on HTTPS 443 with it and port 80 redirects there', () => {
    expect(resourceOf(overTemplate, over.production).Properties).toMatchObject({
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

  test('the HTTPS listener\'s default actions still follow the live color', () => {
    const actions = resourceOf(overTemplate, over.production).Properties.DefaultActions;
    expect(servedBy(whenLive(overTemplate, custom, 'blue', actions))).toBe(over.blueTargetGroup);
    expect(servedBy(whenLive(overTemplate, custom, 'none', actions))).toBe('503');
  });

  test('testListenerPort moves the test listener and the test URL', () => {
    expect(resourceOf(overTemplate, over.test).Properties).toMatchObject({ Port: 9000, Protocol: 'HTTP' });
    expect(flatten(overStack, custom.testUrl)).toMatch(/^http:\/\/.*:9000$/);
  });

  test('testListenerPeers: only the given CIDR may reach the test port; 443 and 80 stay open to anyone', () => {
    const group = resourceOf(overTemplate, idOf(custom.loadBalancer.connections.securityGroups[0]));
    const ingress = (group.Properties.SecurityGroupIngress as any[]).map((rule) => [rule.CidrIp, rule.FromPort]);
    expect(ingress.sort()).toEqual([['0.0.0.0/0', 443], ['0.0.0.0/0', 80], ['10.1.0.0/16', 9000]]);
  });
});

describe('Ec2BlueGreenPipeline overrides: the release', () => {
  test('trafficShift canary 10 % for 5 minutes, and bakeTime 10 minutes, reach the release function', () => {
    expect(overEnv).toMatchObject({ CANARY_PERCENT: '10', CANARY_SECONDS: '300', BAKE_SECONDS: '600' });
  });

  test('deploymentAlarms are listed in DEPLOYMENT_ALARMS and readable by the release function', () => {
    expect(overEnv.DEPLOYMENT_ALARMS).toBe('orders-errors');
    const describe = grantsOf(releaseStatementsOf(overTemplate, custom), 'cloudwatch:DescribeAlarms').flatMap(resourcesOf);
    expect(describe).toContain('arn:aws:cloudwatch:us-east-1:123456789012:alarm:orders-errors');
    expect(describe).toHaveLength(7);
  });

  test('latencyThreshold 500 ms sets the per-color p99 alarms; p95LatencyThreshold 800 ms the service\'s', () => {
    for (const id of ['BlueLatencyP99', 'GreenLatencyP99']) {
      expect(resourceOf(overTemplate, alarmIdOf(overTemplate, custom, id)).Properties.Threshold).toBe(0.5);
    }
    expect(resourceOf(overTemplate, alarmIdOf(overTemplate, custom, 'LatencyP95')).Properties.Threshold).toBe(0.8);
  });

  test('alarmEmails subscribe to the alarm topic', () => {
    overTemplate.hasResourceProperties('AWS::SNS::Subscription', {
      Protocol: 'email', Endpoint: 'ops@example.com', TopicArn: overStack.resolve(custom.alarmTopic.topicArn),
    });
  });

  test('both stacks pass cdk-nag (AwsSolutions, Serverless) and the CloudFormation validator', () => {
    const reports = checkApp(overApp);
    expect(reports).toHaveLength(2);
    expect(reports.map(describeFailures)).toEqual(reports.map((r) => `${r.stackName}: clean`));
  }, COMPLIANCE_TIMEOUT);
});

// ------------------------------------------------------------------------------------------------------------------
// App C: an environment-agnostic stack with two patterns, the second with its own image and instance type.
// ------------------------------------------------------------------------------------------------------------------
describe('Ec2BlueGreenPipeline twice in one environment-agnostic stack', () => {
  const pairApp = new App();
  const pairStack = new Stack(pairApp, 'Pair');
  const first = new Ec2BlueGreenPipeline(pairStack, 'First', { source: source() });
  const second = new Ec2BlueGreenPipeline(pairStack, 'Second', {
    source: source(),
    machineImage: ec2.MachineImage.fromSsmParameter('/golden/web-ami'),
    instanceType: ec2.InstanceType.of(ec2.InstanceClass.T4G, ec2.InstanceSize.SMALL),
    capacity: 1,
  });
  const pairTemplate = Template.fromStack(pairStack);

  test('synthesizes, with a State stack per pattern (also environment-agnostic) that the stack depends on', () => {
    const stacks = stateStacksOf(pairApp, pairStack);
    expect(stacks).toHaveLength(2);
    for (const s of stacks) {
      expect(Token.isUnresolved(s.region)).toBe(true);
      Template.fromStack(s).resourceCountIs('Custom::LiveColorParameter', 1);
    }
    expect(stacks[0].stackName).not.toBe(stacks[1].stackName);
    pairTemplate.resourceCountIs('AWS::AutoScaling::AutoScalingGroup', 4);
  });

  test('the two get different parameters, state machine names and release locks', () => {
    expect(first.liveColorParameterName).not.toBe(second.liveColorParameterName);
    const names = [first, second].map((pattern) => stateMachineOf(pairTemplate, pattern).Properties.StateMachineName);
    expect(names[0]).not.toBe(names[1]);
    expect(releaseEnvOf(pairTemplate, first).LOCK_PARAMETER).not.toBe(releaseEnvOf(pairTemplate, second).LOCK_PARAMETER);
    pairTemplate.resourceCountIs('Custom::ReleaseGuard', 2);
  });

  test('each pattern\'s listeners follow its own live color', () => {
    for (const pattern of [first, second]) {
      const actions = resourceOf(pairTemplate, idOf(pattern.productionListener)).Properties.DefaultActions;
      expect(servedBy(whenLive(pairTemplate, pattern, 'green', actions))).toBe(idOf(pattern.greenTargetGroup));
    }
  });

  test('machineImage and instanceType t4g.small reach the second pattern\'s launch templates only', () => {
    const data = resourceOf(pairTemplate, launchTemplateIdOf(pairTemplate, idOf(second.blueGroup))).Properties.LaunchTemplateData;
    expect(data.InstanceType).toBe('t4g.small');
    expect(pairTemplate.toJSON().Parameters[data.ImageId.Ref].Default).toBe('/golden/web-ami');
    const firstData = resourceOf(pairTemplate, launchTemplateIdOf(pairTemplate, idOf(first.blueGroup))).Properties.LaunchTemplateData;
    expect(firstData.InstanceType).toBe('t4g.micro');
    expect(pairTemplate.toJSON().Parameters[firstData.ImageId.Ref].Default).toMatch(/al2023-ami-.*-arm64$/);
  });

  test('the stack and both State stacks pass cdk-nag and the CloudFormation validator', () => {
    const reports = checkApp(pairApp);
    expect(reports).toHaveLength(3);
    expect(reports.map(describeFailures)).toEqual(reports.map((r) => `${r.stackName}: clean`));
  }, COMPLIANCE_TIMEOUT);
});

// ------------------------------------------------------------------------------------------------------------------
// Bad input: each throws in the constructor, before synthesis, naming the property.
// ------------------------------------------------------------------------------------------------------------------
describe('Ec2BlueGreenPipeline bad input', () => {
  function build(props: Partial<Ec2BlueGreenPipelineProps>): () => Ec2BlueGreenPipeline {
    return () => new Ec2BlueGreenPipeline(new Stack(new App(), 'Bad', { env: ENV }), 'Web', { source: source(), ...props });
  }
  const certificate = () => elbv2.ListenerCertificate.fromArn(CERTIFICATE_ARN);
  const ssmSecret = (name: string) => InstanceSecret.fromSsmParameter(
    ssm.StringParameter.fromSecureStringParameterAttributes(new Stack(new App(), 'Lookup'), 'P', { parameterName: name }));

  test.each<[string, () => Partial<Ec2BlueGreenPipelineProps>, RegExp]>([
    ['an x86 instance type with the ARM default', () => ({ instanceType: ec2.InstanceType.of(ec2.InstanceClass.T3, ec2.InstanceSize.MICRO) }),
      /'instanceType' must run the arm64 architecture .*got 't3\.micro'/],
    ['an ARM instance type with X86_64', () => ({ architecture: ec2.InstanceArchitecture.X86_64, instanceType: ec2.InstanceType.of(ec2.InstanceClass.T4G, ec2.InstanceSize.MICRO) }),
      /'instanceType' must run the x86_64 architecture .*got 't4g\.micro'/],
    ['an unknown instance type', () => ({ instanceType: new ec2.InstanceType('zz9.huge') }), /'instanceType' must be an EC2 instance type .*got 'zz9\.huge'/],
    ['capacity 0', () => ({ capacity: 0 }), /'capacity' must be a whole number from 1 to 20, got 0/],
    ['capacity 21', () => ({ capacity: 21 }), /'capacity' must be a whole number from 1 to 20, got 21/],
    ['capacity 1.5', () => ({ capacity: 1.5 }), /'capacity' must be a whole number from 1 to 20, got 1.5/],
    ['a health check path without /', () => ({ healthCheckPath: 'healthcheck' }), /'healthCheckPath' must start with '\/'.*got 'healthcheck'/],
    ['the test listener on the production port 80', () => ({ testListenerPort: 80 }),
      /'testListenerPort' must differ from the production listener's port \(80\), got 80/],
    ['the test listener on 443 with a certificate', () => ({ testListenerPort: 443, certificate: certificate() }),
      /'testListenerPort' must differ from the production listener's ports \(443 and 80\), got 443/],
    ['the test listener on the redirect port 80 with a certificate', () => ({ testListenerPort: 80, certificate: certificate() }),
      /'testListenerPort' must differ from the production listener's ports \(443 and 80\), got 80/],
    ['port 0', () => ({ port: 0 }), /'port' must be a whole number from 1 to 65535, got 0/],
    ['port 65536', () => ({ port: 65536 }), /'port' must be a whole number from 1 to 65535, got 65536/],
    ['test listener port 0', () => ({ testListenerPort: 0 }), /'testListenerPort' must be a whole number from 1 to 65535, got 0/],
    ['test listener port 65536', () => ({ testListenerPort: 65536 }), /'testListenerPort' must be a whole number from 1 to 65535, got 65536/],
    ['a bake time of 31 minutes', () => ({ bakeTime: Duration.minutes(31) }), /'bakeTime' must be between 0 minutes and 30 minutes, got 31 minutes/],
    ['a bake time of 90 seconds', () => ({ bakeTime: Duration.seconds(90) }), /'bakeTime' must be a whole number of minutes, got 1 minute 30 seconds/],
    ['a canary step and a bake time that do not fit the release\'s hour (30 + 30 minutes)',
      () => ({ trafficShift: TrafficShift.canary(10, Duration.minutes(30)), bakeTime: Duration.minutes(30) }),
      /'bakeTime' with the canary step \(30 minutes\) must fit .* at most 40 minutes together, got 30 minutes/],
    ['an approval timeout over the window (51 minutes: 15 for the instances and 35 for the reviewer)',
      () => ({ approval: Approval.beforeProductionTraffic({ timeout: Duration.minutes(51) }) }),
      /'timeout' must be at most 50 minutes with an EC2 blue\/green release.*got 51 minutes/],
    ['an approval timeout that could end before the new version is ready for review (19 minutes)',
      () => ({ approval: Approval.beforeProductionTraffic({ timeout: Duration.minutes(19) }) }),
      /'timeout' must be at least 20 minutes with an EC2 blue\/green release.*got 19 minutes/],
    ['a bake time that leaves the approval less than 5 minutes (canary 6 + bake 30)',
      () => ({
        approval: Approval.beforeProductionTraffic(),
        trafficShift: TrafficShift.canary(10, Duration.minutes(6)),
        bakeTime: Duration.minutes(30),
      }),
      /'bakeTime' must leave the approval at least 5 minutes.*got 30 minutes/],
    ['an empty start command', () => ({ startCommand: '' }), /'startCommand' must not be empty/],
    ['a start command of two lines', () => ({ startCommand: 'npm ci\nnpm start' }), /'startCommand' must be one line/],
    ['an environment setting PORT', () => ({ environment: { PORT: '80' } }), /'environment' must not set PORT.*got 'PORT'/],
    ['an environment name that is not a variable name', () => ({ environment: { 'MY-VAR': 'x' } }), /'environment' must have names of letters, digits and _.*got 'MY-VAR'/],
    ['an environment value of two lines', () => ({ environment: { FOO: 'a\nb' } }), /'environment\.FOO' must be one line/],
    ['a secret name that is not a variable name', () => ({ secrets: { '1PASSWORD': ssmSecret('/x') } }), /'secrets' must have names of letters, digits and _.*got '1PASSWORD'/],
    ['a secret repeating an environment name', () => ({ environment: { DB: 'x' }, secrets: { DB: ssmSecret('/x') } }),
      /'secrets' must not repeat a name of environment, or PORT, got 'DB'/],
    ['a secret named PORT', () => ({ secrets: { PORT: ssmSecret('/x') } }), /'secrets' must not repeat a name of environment, or PORT, got 'PORT'/],
    ['a deregistration delay of 31 s', () => ({ deregistrationDelay: Duration.seconds(31) }), /'deregistrationDelay' must be between 0 seconds and 30 seconds, got 31 seconds/],
    ['an app directory outside the repository', () => ({ appDirectory: '../x' }), /'appDirectory' must be a path inside the repository.*got '\.\.\/x'/],
    ['an absolute app directory', () => ({ appDirectory: '/srv/app' }), /'appDirectory' must be a path inside the repository.*got '\/srv\/app'/],
    ['a latency threshold of 5 ms', () => ({ latencyThreshold: Duration.millis(5) }), /'latencyThreshold' must be between 10 milliseconds and 60 seconds, got 5 millis/],
    ['a p95 latency threshold of 2 minutes', () => ({ p95LatencyThreshold: Duration.minutes(2) }), /'p95LatencyThreshold' must be between 10 milliseconds and 60 seconds, got 2 minutes/],
    ['an empty expected phrase', () => ({ expectedPhrase: '' }), /'expectedPhrase' must not be empty/],
    ['an empty test command', () => ({ testCommands: ['make test', ' '] }), /'testCommands' must not be empty/],
    ['an empty build command', () => ({ buildCommands: [''] }), /'buildCommands' must not be empty/],
    ['an empty setup command', () => ({ setupCommands: [''] }), /'setupCommands' must not be empty/],
  ])('%s is refused, naming the property and the value', (_name, props, message) => {
    expect(build(props())).toThrow(message);
  });

  test.each<[string, () => unknown, RegExp]>([
    ['canary percent 0', () => TrafficShift.canary(0, Duration.minutes(5)), /TrafficShift\.canary: 'percent' must be a whole number from 1 to 99, got 0/],
    ['canary percent 100', () => TrafficShift.canary(100, Duration.minutes(5)), /TrafficShift\.canary: 'percent' must be a whole number from 1 to 99, got 100/],
    ['a canary interval of 31 minutes', () => TrafficShift.canary(10, Duration.minutes(31)),
      /TrafficShift\.canary: 'interval' must be between 1 minute and 30 minutes, got 31 minutes/],
  ])('TrafficShift: %s is refused, naming the parameter', (_name, make, message) => {
    expect(make).toThrow(message);
  });

  test('the limits themselves are accepted: capacity 20, bake 30 minutes, canary 99 % for 10 minutes, approval of exactly the window', () => {
    expect(build({ capacity: 20, bakeTime: Duration.minutes(30) })).not.toThrow();
    expect(build({ trafficShift: TrafficShift.canary(99, Duration.minutes(10)) })).not.toThrow();
    expect(build({ approval: Approval.beforeProductionTraffic({ timeout: Duration.minutes(35) }) })).not.toThrow();
  });
});

describe('Ec2BlueGreenPipeline: releases that end without their own rollback (review fixes)', () => {
  const rules = template.findResources('AWS::Events::Rule', {
    Properties: { EventPattern: { 'source': ['aws.states'], 'detail-type': ['Step Functions Execution Status Change'] } },
  });

  test('a rule on this workflow\'s stopped, timed-out and failed executions invokes the release function\'s rollback', () => {
    expect(Object.keys(rules)).toHaveLength(1);
    const rule = Object.values(rules)[0] as any;
    expect(rule.Properties.EventPattern.detail).toEqual({
      stateMachineArn: [expect.anything()],
      status: ['ABORTED', 'TIMED_OUT', 'FAILED'],
    });
    // The ARN from the workflow's name (known at synth: no dependency of the rule on the state machine is needed).
    const name = resourceOf(template, idOf(web.stateMachine)).Properties.StateMachineName;
    expect(flatten(stack, rule.Properties.EventPattern.detail.stateMachineArn[0])).toBe(`arn:\${AWS::Partition}:states:us-east-1:123456789012:stateMachine:${name}`);
    const [target] = rule.Properties.Targets;
    expect(target.Arn).toEqual({ 'Fn::GetAtt': [idOf(web.pipeline.node.findChild('Ec2Release').node.findChild('ReleaseFunction')), 'Arn'] });
    const input = target.InputTransformer;
    expect(input.InputPathsMap).toEqual(expect.objectContaining({ 'detail-executionArn': '$.detail.executionArn', 'detail-status': '$.detail.status' }));
    expect(input.InputTemplate).toContain('"action":"rollback"');
    expect(input.InputTemplate).toContain('"executionArn":<detail-executionArn>');
    expect(target.DeadLetterConfig.Arn).toBeDefined();
    expect(target.RetryPolicy).toEqual({ MaximumEventAgeInSeconds: 7200, MaximumRetryAttempts: 8 });
  });

  test('EventBridge may invoke the release function, and only from that rule', () => {
    const ruleId = Object.keys(rules)[0];
    template.hasResourceProperties('AWS::Lambda::Permission', {
      Action: 'lambda:InvokeFunction',
      Principal: 'events.amazonaws.com',
      SourceArn: { 'Fn::GetAtt': [ruleId, 'Arn'] },
    });
  });
});

describe('Ec2BlueGreenPipeline: the guard holds back everything a running release uses (review fixes)', () => {
  const guardId = Object.keys(template.findResources('Custom::ReleaseGuard'))[0];
  const release = web.pipeline.node.findChild('Ec2Release');
  test.each([
    ['the launch templates', () => template.findResources('AWS::EC2::LaunchTemplate')],
    ['the target groups', () => template.findResources('AWS::ElasticLoadBalancingV2::TargetGroup')],
    ['the release function', () => ({ fn: resourceOf(template, idOf(release.node.findChild('ReleaseFunction'))) })],
    ['the state machine', () => ({ sm: resourceOf(template, idOf(web.stateMachine)) })],
  ])('%s depend on the guard', (_what, resources) => {
    const found = Object.values(resources()) as any[];
    expect(found.length).toBeGreaterThan(0);
    for (const resource of found) expect(resource.DependsOn ?? []).toContain(guardId);
  });
});

describe('Ec2BlueGreenPipeline: Auto Scaling notifications reach the encrypted alarm topic (review fixes)', () => {
  test('the topic\'s key lets the Auto Scaling service-linked role, by ARN in a condition, encrypt for it', () => {
    const keyStack = Stack.of(web.pipeline.artifactKey);
    expect(keyStack).not.toBe(stack);
    const key = resourceOf(Template.fromStack(keyStack), idOf(web.pipeline.artifactKey));
    const statement = key.Properties.KeyPolicy.Statement.find((s: any) => s.Sid === 'AutoScalingNotificationsToEncryptedTopics');
    expect(statement).toMatchObject({ Effect: 'Allow', Principal: { AWS: '*' }, Action: ['kms:GenerateDataKey*', 'kms:Decrypt'] });
    expect(flatten(stack, statement.Condition.ArnEquals['aws:PrincipalArn']))
      .toBe('arn:${AWS::Partition}:iam::123456789012:role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling');
  });
});

describe('Ec2BlueGreenPipeline: the build runs the Node.js the instances run (review fixes)', () => {
  test('the build pins nodejs 22, the major version the default setup installs on the instances', () => {
    const spec = buildSpecOf(stack, template);
    expect(spec.phases.install['runtime-versions']).toEqual({ nodejs: 22 });
    for (const launchTemplate of Object.values(template.findResources('AWS::EC2::LaunchTemplate')) as any[]) {
      expect(flatten(stack, launchTemplate.Properties.LaunchTemplateData.UserData['Fn::Base64'])).toContain('dnf install -y nodejs22 ');
    }
  });
});
