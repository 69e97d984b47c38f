import { App, CfnOutput, Duration, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import * as apigateway from 'aws-cdk-lib/aws-apigateway';
import * as codedeploy from 'aws-cdk-lib/aws-codedeploy';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Approval, PipelineSource, ServerlessApiPipeline, ServerlessApiPipelineProps } from '../../src';
import { checkApp, describeFailures } from '../compliance/harness';
import { CONNECTION_ARN, flatten } from '../util/fixtures';
import { actionsOf, buildEnvOf, buildSpecOf, ENV, grantsOf, idOf, pipelineOf, resourceOf, source, stageOf, statementsOfRole } from '../util/template';

const ROOT = 'GET /';
const SLEEP = 'GET /sleep/{secs}';

/** Every resource an action is granted on, flattened to text and sorted (robust to statement merging). */
function resourcesGranted(stack: Stack, statements: any[], action: string): string[] {
  return grantsOf(statements, action)
    .flatMap((s) => ([] as unknown[]).concat(s.Resource))
    .map((r) => flatten(stack, r))
    .sort();
}

/** The resource of an alarm the pattern's monitoring created, by its id (Api5xx, LatencyP99, ...). */
function alarmOf(template: Template, pattern: ServerlessApiPipeline, id: string): any {
  const alarm = pattern.monitoring.alarms.find((a) => a.node.id === id);
  expect(alarm).toBeDefined();
  return resourceOf(template, idOf(alarm!)).Properties;
}

/** The function resource of a route. */
function functionOf(template: Template, pattern: ServerlessApiPipeline, route: string): any {
  return resourceOf(template, idOf(pattern.functions[route])).Properties;
}

/** The log group resource of a route's function (through its LoggingConfig). */
function functionLogGroupIdOf(template: Template, pattern: ServerlessApiPipeline, route: string): string {
  return functionOf(template, pattern, route).LoggingConfig.LogGroup.Ref;
}

/** The deployment groups of the pattern, by the route id of the function they shift. */
function deploymentGroupsOf(pattern: ServerlessApiPipeline): Record<string, codedeploy.LambdaDeploymentGroup> {
  const groups = pattern.node.findAll().filter((c): c is codedeploy.LambdaDeploymentGroup => c instanceof codedeploy.LambdaDeploymentGroup);
  return Object.fromEntries(groups.map((g) => [g.node.scope!.node.id, g]));
}

/** The API Gateway method resource of a route. */
function methodOf(template: Template, pattern: ServerlessApiPipeline, httpMethod: string, path: string): any {
  const method = pattern.api.methods.find((m) => m.httpMethod === httpMethod && m.resource.path === path);
  expect(method).toBeDefined();
  return resourceOf(template, idOf(method!)).Properties;
}

function controllerEnvOf(template: Template, pattern: ServerlessApiPipeline): Record<string, any> {
  return resourceOf(template, idOf(pattern.releaseController)).Properties.Environment.Variables;
}

/** The controller's FUNCTIONS variable, parsed (references flattened to `${Id}`). */
function controllerFunctionsOf(stack: Stack, template: Template, pattern: ServerlessApiPipeline): any[] {
  return JSON.parse(flatten(stack, controllerEnvOf(template, pattern).FUNCTIONS));
}

function hookRoutesOf(template: Template, pattern: ServerlessApiPipeline): any {
  return JSON.parse(resourceOf(template, idOf(pattern.preTrafficHook)).Properties.Environment.Variables.ROUTES);
}

/** The flattened ARN of a deployment group of the stack's CodeDeploy application. */
function groupArn(pattern: ServerlessApiPipeline, group: codedeploy.LambdaDeploymentGroup): string {
  return `arn:\${AWS::Partition}:codedeploy:us-east-1:123456789012:deploymentgroup:\${${idOf(pattern.application)}}/\${${idOf(group)}}`;
}

// ------------------------------------------------------------------------------------------------------------------
// One app with the defaults, shared by every default assertion (and the compliance check).
// ------------------------------------------------------------------------------------------------------------------
const app = new App();
const stack = new Stack(app, 'Shop', { env: ENV });
const api = new ServerlessApiPipeline(stack, 'Api', {
  source: source(),
  routes: [
    { route: ROOT, entry: 'src/root.ts' },
    { route: SLEEP, entry: 'src/sleep.ts' },
  ],
});
const template = Template.fromStack(stack);
const ROUTE_IDS: Record<string, string> = { [ROOT]: 'GetRoot', [SLEEP]: 'GetSleepSecs' };

describe('ServerlessApiPipeline defaults: API', () => {
  test('one REST API with a REGIONAL endpoint (no edge-optimized CloudFront distribution in front)', () => {
    template.resourceCountIs('AWS::ApiGateway::RestApi', 1);
    expect(resourceOf(template, idOf(api.api)).Properties.EndpointConfiguration).toEqual({ Types: ['REGIONAL'] });
  });

  test('the stage is "prod", traced with X-Ray, throttled at 100 requests/s with bursts of 200, with metrics enabled', () => {
    const stage = resourceOf(template, idOf(api.api.deploymentStage)).Properties;
    expect(stage.StageName).toBe('prod');
    expect(stage.TracingEnabled).toBe(true);
    expect(stage.MethodSettings).toEqual([expect.objectContaining({
      HttpMethod: '*', ResourcePath: '/*', ThrottlingRateLimit: 100, ThrottlingBurstLimit: 200, MetricsEnabled: true,
    })]);
  });

  test('the stage writes JSON access logs carrying the request id to its own log group (execution logging stays off)', () => {
    const stage = resourceOf(template, idOf(api.api.deploymentStage)).Properties;
    const logGroupId = stage.AccessLogSetting.DestinationArn['Fn::GetAtt'][0];
    expect(stage.AccessLogSetting.DestinationArn).toEqual({ 'Fn::GetAtt': [logGroupId, 'Arn'] });
    expect(resourceOf(template, logGroupId).Type).toBe('AWS::Logs::LogGroup');
    expect(JSON.parse(stage.AccessLogSetting.Format)).toMatchObject({ requestId: '$context.requestId', status: '$context.status' });
  });

  test('GET /sleep/{secs} requires its path parameter and has a validator checking request parameters (API Gateway refuses it before Lambda runs)', () => {
    const method = methodOf(template, api, 'GET', '/sleep/{secs}');
    expect(method.RequestParameters).toEqual({ 'method.request.path.secs': true });
    const validator = resourceOf(template, method.RequestValidatorId.Ref);
    expect(validator.Type).toBe('AWS::ApiGateway::RequestValidator');
    expect(validator.Properties).toMatchObject({ ValidateRequestParameters: true });
  });

  test('GET / has no path parameter, so neither request parameters nor a validator', () => {
    const method = methodOf(template, api, 'GET', '/');
    expect(method.RequestParameters).toBeUndefined();
    expect(method.RequestValidatorId).toBeUndefined();
  });

  test('each method proxies (AWS_PROXY) to its route\'s live ALIAS, never to the function\'s $LATEST, so only a release changes what answers', () => {
    for (const [route, path] of [[ROOT, '/'], [SLEEP, '/sleep/{secs}']]) {
      const integration = methodOf(template, api, 'GET', path).Integration;
      expect(integration).toMatchObject({ Type: 'AWS_PROXY', IntegrationHttpMethod: 'POST' });
      const uri = flatten(stack, integration.Uri);
      expect(uri).toBe(`arn:\${AWS::Partition}:apigateway:us-east-1:lambda:path/2015-03-31/functions/\${${idOf(api.aliases[route])}}/invocations`);
      expect(uri).not.toContain(idOf(api.functions[route]));
    }
  });

  test('API Gateway\'s invoke permissions name the alias (the function itself cannot be invoked by the API)', () => {
    const permissions = Object.values(template.findResources('AWS::Lambda::Permission', {
      Properties: { Principal: 'apigateway.amazonaws.com' },
    })) as any[];
    expect(permissions.length).toBeGreaterThan(0);
    const aliasIds = [ROOT, SLEEP].map((r) => idOf(api.aliases[r]));
    for (const permission of permissions) {
      expect(aliasIds).toContain(permission.Properties.FunctionName.Ref);
    }
  });
});

describe('ServerlessApiPipeline defaults: functions', () => {
  test('one function per route (plus only the controller, the pre-traffic hook, the release alarm cleanup, the delivery metrics handler and the bucket auto-delete handler)', () => {
    template.resourceCountIs('AWS::Lambda::Function', 2 + 5);
    template.resourceCountIs('Custom::ReleaseAlarmCleanup', 1);
    expect(Object.keys(api.functions).sort()).toEqual([ROOT, SLEEP].sort());
  });

  test('each route runs nodejs24.x on ARM64 with 256 MB, 10 s and active X-Ray tracing', () => {
    for (const route of [ROOT, SLEEP]) {
      expect(functionOf(template, api, route)).toMatchObject({
        Runtime: 'nodejs24.x',
        Architectures: ['arm64'],
        MemorySize: 256,
        Timeout: 10,
        TracingConfig: { Mode: 'Active' },
      });
    }
  });

  test('the code in the template is an inline bootstrap answering 503 "not released yet" on index.handler, never the user\'s code', () => {
    for (const route of [ROOT, SLEEP]) {
      const fn = functionOf(template, api, route);
      expect(fn.Handler).toBe('index.handler');
      expect(Object.keys(fn.Code)).toEqual(['ZipFile']);
      expect(fn.Code.ZipFile).toContain('exports["handler"]');
      expect(fn.Code.ZipFile).toContain('statusCode: 503');
      expect(fn.Code.ZipFile).toContain('not released yet');
    }
  });

  test('without an environment, a function only gets NODE_OPTIONS=--enable-source-maps (esbuild writes source maps)', () => {
    for (const route of [ROOT, SLEEP]) {
      expect(functionOf(template, api, route).Environment.Variables).toEqual({ NODE_OPTIONS: '--enable-source-maps' });
    }
  });

  test('each function has its own role, which may write only to its own log group (besides X-Ray)', () => {
    const roles = [ROOT, SLEEP].map((route) => functionOf(template, api, route).Role['Fn::GetAtt'][0]);
    expect(new Set(roles).size).toBe(2);
    expect(roles).not.toContain(idOf(api.releaseController.role!));
    for (const route of [ROOT, SLEEP]) {
      const roleId = functionOf(template, api, route).Role['Fn::GetAtt'][0];
      const logWrites = grantsOf(statementsOfRole(template, roleId), 'logs:PutLogEvents');
      expect(logWrites.map((s) => s.Resource)).toEqual([{ 'Fn::GetAtt': [functionLogGroupIdOf(template, api, route), 'Arn'] }]);
    }
  });

  test('each function logs to its own log group kept 30 days and deleted with the stack', () => {
    const groups = [ROOT, SLEEP].map((route) => functionLogGroupIdOf(template, api, route));
    expect(new Set(groups).size).toBe(2);
    for (const id of groups) {
      const group = resourceOf(template, id);
      expect(group.Type).toBe('AWS::Logs::LogGroup');
      expect(group.Properties.RetentionInDays).toBe(30);
      expect(group.DeletionPolicy).toBe('Delete');
    }
  });
});

describe('ServerlessApiPipeline defaults: aliases and versions (ADR 0007: CloudFormation never moves production)', () => {
  test('each function has an alias "live" pinned to a Lambda version of that function (the bootstrap version)', () => {
    for (const route of [ROOT, SLEEP]) {
      const alias = resourceOf(template, idOf(api.aliases[route])).Properties;
      expect(alias.Name).toBe('live');
      expect(alias.FunctionName).toEqual({ Ref: idOf(api.functions[route]) });
      const versionId = alias.FunctionVersion['Fn::GetAtt'][0];
      expect(alias.FunctionVersion).toEqual({ 'Fn::GetAtt': [versionId, 'Version'] });
      const version = resourceOf(template, versionId);
      expect(version.Type).toBe('AWS::Lambda::Version');
      expect(version.Properties.FunctionName).toEqual({ Ref: idOf(api.functions[route]) });
    }
  });

  test('the alias has exactly FunctionName, FunctionVersion and Name: no routing config or description a stack update could change', () => {
    for (const route of [ROOT, SLEEP]) {
      expect(Object.keys(resourceOf(template, idOf(api.aliases[route])).Properties).sort())
        .toEqual(['FunctionName', 'FunctionVersion', 'Name']);
    }
  });

  test('the bootstrap version has only FunctionName: nothing (code hash, description) would make CloudFormation publish another', () => {
    for (const versionId of Object.keys(template.findResources('AWS::Lambda::Version'))) {
      expect(Object.keys(resourceOf(template, versionId).Properties)).toEqual(['FunctionName']);
    }
  });

  test('exactly one version per function (no currentVersion, whose hash would publish $LATEST on every config change)', () => {
    const versions = Object.values(template.findResources('AWS::Lambda::Version')) as any[];
    expect(versions).toHaveLength(2);
    expect(versions.map((v) => v.Properties.FunctionName.Ref).sort())
      .toEqual([ROOT, SLEEP].map((route) => idOf(api.functions[route])).sort());
  });
});

describe('ServerlessApiPipeline defaults: CodeDeploy', () => {
  const groups = deploymentGroupsOf(api);

  test('one Lambda CodeDeploy application and one deployment group per function, all in it', () => {
    template.resourceCountIs('AWS::CodeDeploy::Application', 1);
    expect(resourceOf(template, idOf(api.application)).Properties).toEqual({ ComputePlatform: 'Lambda' });
    template.resourceCountIs('AWS::CodeDeploy::DeploymentGroup', 2);
    expect(Object.keys(groups).sort()).toEqual(['GetRoot', 'GetSleepSecs']);
    for (const group of Object.values(groups)) {
      expect(resourceOf(template, idOf(group)).Properties.ApplicationName).toEqual({ Ref: idOf(api.application) });
    }
  });

  test('each group shifts with LambdaCanary10Percent5Minutes and rolls back on failure and on stop', () => {
    for (const group of Object.values(groups)) {
      expect(resourceOf(template, idOf(group)).Properties).toMatchObject({
        DeploymentConfigName: 'CodeDeployDefault.LambdaCanary10Percent5Minutes',
        AutoRollbackConfiguration: { Enabled: true, Events: ['DEPLOYMENT_FAILURE', 'DEPLOYMENT_STOP_ON_REQUEST'] },
      });
    }
  });

  test('no group has an AlarmConfiguration: the steady alarms would also see the old version\'s errors (the controller overrides alarms per release)', () => {
    for (const group of Object.values(groups)) {
      expect(resourceOf(template, idOf(group)).Properties.AlarmConfiguration).toBeUndefined();
      expect(JSON.stringify(resourceOf(template, idOf(group)).Properties.AutoRollbackConfiguration)).not.toContain('DEPLOYMENT_STOP_ON_ALARM');
    }
  });

  test('every group uses one shared service role that only CodeDeploy assumes, with AWSCodeDeployRoleForLambdaLimited', () => {
    const roles = Object.values(groups).map((g) => resourceOf(template, idOf(g)).Properties.ServiceRoleArn['Fn::GetAtt'][0]);
    expect(new Set(roles).size).toBe(1);
    const role = resourceOf(template, roles[0]).Properties;
    expect(role.AssumeRolePolicyDocument.Statement).toEqual([
      expect.objectContaining({ Action: 'sts:AssumeRole', Principal: { Service: 'codedeploy.amazonaws.com' } }),
    ]);
    expect(role.ManagedPolicyArns.map((arn: unknown) => flatten(stack, arn)))
      .toEqual(['arn:${AWS::Partition}:iam::aws:policy/service-role/AWSCodeDeployRoleForLambdaLimited']);
  });
});

describe('ServerlessApiPipeline defaults: pipeline and build', () => {
  test('stages Source, Build, Release: no Approve stage without an approval', () => {
    expect((pipelineOf(template, api).Stages as any[]).map((s) => s.Name)).toEqual(['Source', 'Build', 'Release']);
  });

  test('Release has one action "Release" invoking the controller with the build\'s RELEASE_PREFIX', () => {
    const release = stageOf(template, api, 'Release');
    expect(release.Actions).toHaveLength(1);
    const action = release.Actions[0];
    expect(action.Name).toBe('Release');
    expect(action.ActionTypeId).toMatchObject({ Category: 'Invoke', Provider: 'Lambda' });
    expect(action.Configuration.FunctionName).toEqual({ Ref: idOf(api.releaseController) });
    expect(action.Configuration.UserParameters).toContain('#{BuildVariables.RELEASE_PREFIX}');
    // The pipeline's name (a literal, known before the pipeline) and execution name the controller's traffic step events.
    expect(JSON.parse(action.Configuration.UserParameters)).toEqual({
      prefix: '#{BuildVariables.RELEASE_PREFIX}', pipeline: pipelineOf(template, api).Name, executionId: '#{codepipeline.PipelineExecutionId}',
    });
  });

  test('the Release stage has no OnFailure rollback: the controller has already put every alias back when a release fails', () => {
    expect(stageOf(template, api, 'Release').OnFailure).toBeUndefined();
  });

  test('the Build action exports under BuildVariables and passes the execution id, so each execution uploads to its own prefix', () => {
    const build = stageOf(template, api, 'Build').Actions[0];
    expect(build.Namespace).toBe('BuildVariables');
    expect(JSON.parse(build.Configuration.EnvironmentVariables)).toContainEqual(
      expect.objectContaining({ name: 'PIPELINE_EXECUTION_ID', value: '#{codepipeline.PipelineExecutionId}' }));
  });

  test('the buildspec exports RELEASE_PREFIX under releases/ (what the controller may read), named after the execution', () => {
    const spec = buildSpecOf(stack, template);
    expect(spec.env['exported-variables']).toEqual(['RELEASE_PREFIX']);
    const build: string[] = spec.phases.build.commands;
    const prefix = build.find((c) => c.startsWith('export RELEASE_PREFIX='));
    expect(prefix).toMatch(/^export RELEASE_PREFIX="releases\/\$\{PIPELINE_EXECUTION_ID/);
  });

  test('the tests run first in the source directory: npm ci and the test script (if any), only when there is a package.json', () => {
    const spec = buildSpecOf(stack, template);
    expect(spec.phases.pre_build.commands).toEqual([
      'cd "$CODEBUILD_SRC_DIR/$SOURCE_DIRECTORY"',
      expect.stringMatching(/^if \[ -f package\.json \]; then npm ci && npm run test --if-present; else .*fi$/),
    ]);
    expect(Object.values(spec.reports)).toEqual([expect.objectContaining({ 'base-directory': 'reports/junit' })]);
  });

  test('each route is bundled by a pinned esbuild for node24 into <RouteId>/index.js, zipped and uploaded to s3://$ARTIFACT_BUCKET/$RELEASE_PREFIX/<RouteId>.zip', () => {
    const build: string[] = buildSpecOf(stack, template).phases.build.commands;
    for (const [entry, id] of [['src/root.ts', 'GetRoot'], ['src/sleep.ts', 'GetSleepSecs']]) {
      const bundle = build.findIndex((c) => c.startsWith('npx --yes esbuild@') && c.includes(`'${entry}'`));
      expect(bundle).toBeGreaterThan(build.findIndex((c) => c.startsWith('export RELEASE_PREFIX=')));
      expect(build[bundle]).toMatch(new RegExp(
        `^npx --yes esbuild@\\d+\\.\\d+\\.\\d+ '${entry.replace('.', '\\.')}' --bundle --platform=node --target=node24 .*` +
        `--outfile="\\$RELEASE_DIR/${id}/index\\.js"$`));
      // A reproducible zip (fixed timestamps and order, no extra attributes): unchanged code publishes no new version.
      expect(build[bundle + 1]).toBe(`(cd "$RELEASE_DIR/${id}" && find . -exec touch -h -d @315532800 {} + && `
        + `find . -type f | LC_ALL=C sort | zip -q -X -D "../${id}.zip" -@)`);
      expect(build[bundle + 2]).toMatch(new RegExp(
        `^aws s3 cp "\\$RELEASE_DIR/${id}\\.zip" "s3://\\$ARTIFACT_BUCKET/\\$RELEASE_PREFIX/${id}\\.zip"`));
    }
  });

  test('the build gets SOURCE_DIRECTORY "." and ARTIFACT_BUCKET, the pipeline\'s own artifact bucket', () => {
    const env = buildEnvOf(template);
    expect(env.SOURCE_DIRECTORY).toBe('.');
    expect(env.ARTIFACT_BUCKET).toEqual({ Ref: idOf(api.pipeline.artifactBucket) });
  });

  test('the rollback command re-runs the Release stage of an earlier execution of this pipeline', () => {
    expect(flatten(stack, api.rollbackCommand)).toMatch(new RegExp(
      `^aws codepipeline rollback-stage --pipeline-name \\$\\{${idOf(api.pipeline.pipeline)}\\} --stage-name Release --target-pipeline-execution-id `));
  });
});

describe('ServerlessApiPipeline defaults: release controller', () => {
  const controllerRoleId = idOf(api.releaseController.role!);
  const statements = statementsOfRole(template, controllerRoleId);
  const groups = deploymentGroupsOf(api);

  test('traffic step events: PutEvents on the default bus only, with its source and detail-type; the canary\'s steps', () => {
    expect(grantsOf(statements, 'events:PutEvents')).toEqual([{
      Effect: 'Allow',
      Action: 'events:PutEvents',
      Resource: { 'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, ':events:us-east-1:123456789012:event-bus/default']] },
      Condition: {
        'ForAllValues:StringEquals': { 'events:source': ['cdk-delivery-pipelines.release'], 'events:detail-type': ['Release Traffic Shifted'] },
        'Null': { 'events:source': 'false', 'events:detail-type': 'false' },
      },
    }]);
    const controller = resourceOf(template, idOf(api.releaseController)) as any;
    // The default CodeDeploy configuration: a 10 % canary, then all.
    expect(controller.Properties.Environment.Variables.TRAFFIC_STEPS).toBe('10,100');
  });

  test('FUNCTIONS lists one entry per route: its function, alias "live" and deployment group', () => {
    expect(controllerFunctionsOf(stack, template, api)).toEqual([ROOT, SLEEP].map((route) => ({
      id: ROUTE_IDS[route],
      functionName: `\${${idOf(api.functions[route])}}`,
      aliasName: 'live',
      deploymentGroupName: `\${${idOf(groups[ROUTE_IDS[route]])}}`,
    })));
  });

  test('it knows the CodeDeploy application, the artifact bucket, the pre-traffic hook, an alarm prefix and the alarm topic', () => {
    const env = controllerEnvOf(template, api);
    expect(env.CODEDEPLOY_APPLICATION).toEqual({ Ref: idOf(api.application) });
    expect(env.ARTIFACT_BUCKET).toEqual({ Ref: idOf(api.pipeline.artifactBucket) });
    expect(env.PRE_TRAFFIC_HOOK).toEqual({ Ref: idOf(api.preTrafficHook) });
    expect(env.ALARM_TOPIC_ARN).toEqual(stack.resolve(api.alarmTopic.topicArn));
    expect(env.ALARM_TOPIC_ARN).toEqual({ Ref: idOf(api.alarmTopic) });
    expect(typeof env.ALARM_PREFIX).toBe('string');
    expect(env.ALARM_PREFIX).toMatch(/^Shop-Api-[A-Za-z0-9-]+$/);
  });

  test('it may update the code of, publish versions of and move the alias of each function (ARN and ARN:*), nothing else in Lambda', () => {
    const expected = [ROOT, SLEEP].flatMap((route) => {
      const arn = `\${${idOf(api.functions[route])}.Arn}`;
      return [arn, `${arn}:*`];
    }).sort();
    for (const action of ['lambda:UpdateFunctionCode', 'lambda:PublishVersion', 'lambda:UpdateAlias']) {
      expect(resourcesGranted(stack, statements, action)).toEqual(expected);
    }
    expect(statements.flatMap(actionsOf).filter((a) => a.startsWith('lambda:') && !a.startsWith('lambda:Get'))
      .filter((a, i, all) => all.indexOf(a) === i).sort())
      .toEqual(['lambda:PublishVersion', 'lambda:UpdateAlias', 'lambda:UpdateFunctionCode']);
  });

  test('it may read objects only under releases/ of the artifact bucket, and write none', () => {
    expect(resourcesGranted(stack, statements, 's3:GetObject')).toEqual([`\${${idOf(api.pipeline.artifactBucket)}.Arn}/releases/*`]);
    const s3Actions = statements.flatMap(actionsOf).filter((a) => a.startsWith('s3:'));
    expect(s3Actions.filter((a) => !a.startsWith('s3:GetObject'))).toEqual([]);
  });

  test('it may create, describe and delete only the alarms named with its ALARM_PREFIX', () => {
    const prefix = controllerEnvOf(template, api).ALARM_PREFIX;
    const expected = [`arn:\${AWS::Partition}:cloudwatch:us-east-1:123456789012:alarm:${prefix}-*`];
    expect(resourcesGranted(stack, statements, 'cloudwatch:PutMetricAlarm')).toEqual(expected);
    expect(resourcesGranted(stack, statements, 'cloudwatch:DeleteAlarms')).toEqual(expected);
    // DescribeAlarms: the sweep of stale release alarms at the start of a release, in the same statement.
    expect(resourcesGranted(stack, statements, 'cloudwatch:DescribeAlarms')).toEqual(expected);
    const cloudWatchStatements = statements.filter((s) => actionsOf(s).some((a) => a.startsWith('cloudwatch:')));
    expect(cloudWatchStatements).toHaveLength(1);
    expect(actionsOf(cloudWatchStatements[0]).sort()).toEqual(['cloudwatch:DeleteAlarms', 'cloudwatch:DescribeAlarms', 'cloudwatch:PutMetricAlarm']);
  });

  test('cdk destroy deletes its alarms: a cleanup custom resource for the same prefix, deleted after the controller', () => {
    const prefix = controllerEnvOf(template, api).ALARM_PREFIX;
    const cleanups = template.findResources('Custom::ReleaseAlarmCleanup');
    expect(Object.values(cleanups).map((r: any) => r.Properties.AlarmNamePrefix)).toEqual([prefix]);
    // The controller depends on the cleanup, so CloudFormation deletes the controller first: no alarm after the cleanup.
    expect(resourceOf(template, idOf(api.releaseController)).DependsOn).toEqual(expect.arrayContaining(Object.keys(cleanups)));
  });

  test('it may create deployments only in this pattern\'s deployment groups', () => {
    expect(resourcesGranted(stack, statements, 'codedeploy:CreateDeployment'))
      .toEqual(Object.values(groups).map((g) => groupArn(api, g)).sort());
  });

  test('it may read only the configured deployment configuration (LambdaCanary10Percent5Minutes)', () => {
    const resources = resourcesGranted(stack, statements, 'codedeploy:GetDeploymentConfig');
    expect(resources).toHaveLength(1);
    expect(resources[0]).toMatch(/^arn:\$\{AWS::Partition\}:codedeploy:.*:deploymentconfig:CodeDeployDefault\.LambdaCanary10Percent5Minutes$/);
  });

  test('asynchronous invocations are never retried (a retry would start a second release) and failures go to a queue', () => {
    const configs = Object.values(template.findResources('AWS::Lambda::EventInvokeConfig', {
      Properties: { FunctionName: { Ref: idOf(api.releaseController) } },
    })) as any[];
    expect(configs).toHaveLength(1);
    const config = configs[0].Properties;
    expect(config.MaximumRetryAttempts).toBe(0);
    const queueId = config.DestinationConfig.OnFailure.Destination['Fn::GetAtt'][0];
    expect(resourceOf(template, queueId).Type).toBe('AWS::SQS::Queue');
  });
});

describe('ServerlessApiPipeline defaults: pre-traffic hook', () => {
  const hookRoleId = idOf(api.preTrafficHook.role!);
  const statements = statementsOfRole(template, hookRoleId);
  const groups = deploymentGroupsOf(api);

  test('ROUTES describes each route by id (method, path); without a smokeTestPath or expectedPhrase neither key is set', () => {
    expect(hookRoutesOf(template, api)).toEqual({
      GetRoot: { method: 'GET', path: '/' },
      GetSleepSecs: { method: 'GET', path: '/sleep/{secs}' },
    });
  });

  test('it may invoke the versions of each function (fn:*), not the unqualified $LATEST', () => {
    expect(resourcesGranted(stack, statements, 'lambda:InvokeFunction'))
      .toEqual([ROOT, SLEEP].map((route) => `\${${idOf(api.functions[route])}.Arn}:*`).sort());
  });

  test('it may read deployments and report its verdict only in this pattern\'s deployment groups', () => {
    const expected = Object.values(groups).map((g) => groupArn(api, g)).sort();
    expect(resourcesGranted(stack, statements, 'codedeploy:GetDeployment')).toEqual(expected);
    expect(resourcesGranted(stack, statements, 'codedeploy:PutLifecycleEventHookExecutionStatus')).toEqual(expected);
  });

  test('the CodeDeploy service role may invoke the hook (CodeDeploy calls it before shifting traffic)', () => {
    const roleId = resourceOf(template, idOf(Object.values(groups)[0])).Properties.ServiceRoleArn['Fn::GetAtt'][0];
    expect(resourcesGranted(stack, statementsOfRole(template, roleId), 'lambda:InvokeFunction'))
      .toContain(`\${${idOf(api.preTrafficHook)}.Arn}`);
  });
});

describe('ServerlessApiPipeline defaults: monitoring and outputs', () => {
  test('exactly the alarms Api5xx, LatencyP99, Throttles and UnhandledErrors, each notifying the alarm topic on ALARM and OK', () => {
    expect(api.monitoring.alarms.map((a) => a.node.id)).toEqual(['Api5xx', 'LatencyP99', 'Throttles', 'UnhandledErrors']);
    template.resourceCountIs('AWS::CloudWatch::Alarm', 4);
    const topic = stack.resolve(api.alarmTopic.topicArn);
    for (const alarm of Object.values(template.findResources('AWS::CloudWatch::Alarm')) as any[]) {
      expect(alarm.Properties.AlarmActions).toEqual([topic]);
      expect(alarm.Properties.OKActions).toEqual([topic]);
    }
  });

  test('Api5xx counts the API\'s 5XXError per minute', () => {
    expect(alarmOf(template, api, 'Api5xx')).toMatchObject({
      Namespace: 'AWS/ApiGateway', MetricName: '5XXError', Statistic: 'Sum', Period: 60, Threshold: 5,
    });
  });

  test('LatencyP99 fires at a p99 latency of 3000 ms', () => {
    expect(alarmOf(template, api, 'LatencyP99')).toMatchObject({
      Namespace: 'AWS/ApiGateway', MetricName: 'Latency', ExtendedStatistic: 'p99', Threshold: 3000,
    });
  });

  test('Throttles sums (metric math) the Throttles of every route\'s function', () => {
    const metrics = alarmOf(template, api, 'Throttles').Metrics as any[];
    expect(metrics.find((m) => m.Expression)).toMatchObject({ Expression: 'FILL(t0, 0) + FILL(t1, 0)', ReturnData: true });
    const throttled = metrics.filter((m) => m.MetricStat).map((m) => m.MetricStat.Metric);
    expect(throttled.every((m) => m.Namespace === 'AWS/Lambda' && m.MetricName === 'Throttles')).toBe(true);
    expect(throttled.map((m) => m.Dimensions[0].Value.Ref).sort()).toEqual([ROOT, SLEEP].map((r) => idOf(api.functions[r])).sort());
  });

  test('UnhandledErrors alarms on the metric fed by one MetricFilter per function log group (Invoke Error, Task timed out)', () => {
    const alarm = alarmOf(template, api, 'UnhandledErrors');
    const filters = Object.values(template.findResources('AWS::Logs::MetricFilter')) as any[];
    expect(filters.map((f) => f.Properties.LogGroupName.Ref).sort())
      .toEqual([ROOT, SLEEP].map((route) => functionLogGroupIdOf(template, api, route)).sort());
    for (const filter of filters) {
      expect(filter.Properties.FilterPattern).toContain('"Invoke Error"');
      expect(filter.Properties.FilterPattern).toContain('"Task timed out"');
      expect(filter.Properties.MetricTransformations).toEqual([expect.objectContaining({
        MetricNamespace: alarm.Namespace, MetricName: alarm.MetricName, MetricValue: '1',
      })]);
    }
    expect(alarm).toMatchObject({ Statistic: 'Sum', Threshold: 1 });
  });

  test('the alarm topic is encrypted with the pipeline\'s artifact key, the only KMS key of the stack', () => {
    template.resourceCountIs('AWS::KMS::Key', 1);
    expect(resourceOf(template, idOf(api.alarmTopic)).Properties.KmsMasterKeyId)
      .toEqual(stack.resolve(api.pipeline.artifactKey.keyArn));
  });

  test('a dashboard with requests and errors, and invocations by function', () => {
    template.resourceCountIs('AWS::CloudWatch::Dashboard', 1);
    const body = flatten(stack, resourceOf(template, idOf(api.dashboard)).Properties.DashboardBody);
    expect(body).toContain('"title":"Requests and errors"');
    expect(body).toContain('"title":"Invocations by function (a release shows in the aliases\' versions)"');
  });

  test('outputs ApiUrl (the stage URL) and RollbackCommand', () => {
    const outputs = template.toJSON().Outputs;
    const output = (id: string) => {
      const value = outputs[stack.resolve(stack.getLogicalId(api.node.findChild(id) as CfnOutput))];
      expect(value).toBeDefined();
      return flatten(stack, value.Value);
    };
    expect(output('ApiUrl')).toBe(flatten(stack, api.url));
    expect(output('ApiUrl')).toMatch(/^https:\/\/.*\/\$\{.*\}\/$/);
    expect(output('RollbackCommand')).toBe(flatten(stack, api.rollbackCommand));
  });
});

describe('ServerlessApiPipeline defaults: teardown, compliance and idle cost', () => {
  test('no resource is retained: cdk destroy removes everything', () => {
    const retained = Object.entries(template.toJSON().Resources as Record<string, any>)
      .filter(([, r]) => r.DeletionPolicy === 'Retain' || r.UpdateReplacePolicy === 'Retain' || r.DeletionPolicy === 'RetainExceptOnCreate')
      .map(([id]) => id);
    expect(retained).toEqual([]);
  });

  test('idle cost stays under the README\'s 5 USD a month: no VPC, no NAT gateway, one KMS key, one dashboard, at most 5 alarms', () => {
    template.resourceCountIs('AWS::EC2::VPC', 0);
    template.resourceCountIs('AWS::EC2::NatGateway', 0);
    template.resourceCountIs('AWS::KMS::Key', 1);
    template.resourceCountIs('AWS::CloudWatch::Dashboard', 1);
    expect(Object.keys(template.findResources('AWS::CloudWatch::Alarm')).length).toBeLessThanOrEqual(5);
  });

  test('the stack passes cdk-nag (AwsSolutions, Serverless) and the CloudFormation validator', () => {
    const reports = checkApp(app);
    expect(reports.map((r) => r.stackName)).toEqual([stack.stackName]);
    expect(reports.map(describeFailures)).toEqual([`${stack.stackName}: clean`]);
  });
});

// ------------------------------------------------------------------------------------------------------------------
// One app with every override combined.
// ------------------------------------------------------------------------------------------------------------------
const overApp = new App();
const overStack = new Stack(overApp, 'Custom', { env: ENV });
const custom = new ServerlessApiPipeline(overStack, 'Api', {
  source: source(),
  approval: Approval.beforeRelease(),
  routes: [
    { route: ROOT, entry: 'src/root.ts', handler: 'main', environment: { ROUTE: 'root', SHARED: 'route' } },
    { route: SLEEP, entry: 'src/sleep.ts', memorySize: 1024, timeout: Duration.seconds(29), smokeTestPath: '/sleep/0' },
  ],
  sourceDirectory: 'api/',
  testCommands: ['npm ci', 'npm run lint'],
  buildEnvironmentVariables: { NODE_ENV: 'production' },
  memorySize: 512,
  timeout: Duration.seconds(20),
  runtime: lambda.Runtime.NODEJS_22_X,
  architecture: lambda.Architecture.X86_64,
  environment: { STAGE: 'prod', SHARED: 'pattern' },
  deploymentConfig: codedeploy.LambdaDeploymentConfig.LINEAR_10PERCENT_EVERY_1MINUTE,
  expectedPhrase: 'Hello',
  throttlingRateLimit: 50,
  throttlingBurstLimit: 80,
  logMetricFilterPattern: '"ERROR"',
  latencyThreshold: Duration.millis(1500),
  stageName: 'v1',
  logRetention: logs.RetentionDays.ONE_WEEK,
  alarmEmails: ['ops@example.com'],
});
const overTemplate = Template.fromStack(overStack);

describe('ServerlessApiPipeline overrides: API and functions', () => {
  test('stageName, throttlingRateLimit and throttlingBurstLimit reach the stage', () => {
    const stage = resourceOf(overTemplate, idOf(custom.api.deploymentStage)).Properties;
    expect(stage.StageName).toBe('v1');
    expect(stage.MethodSettings).toEqual([expect.objectContaining({ ThrottlingRateLimit: 50, ThrottlingBurstLimit: 80 })]);
  });

  test('memorySize and timeout apply to every route unless the route sets its own', () => {
    expect(functionOf(overTemplate, custom, ROOT)).toMatchObject({ MemorySize: 512, Timeout: 20 });
    expect(functionOf(overTemplate, custom, SLEEP)).toMatchObject({ MemorySize: 1024, Timeout: 29 });
  });

  test('runtime and architecture reach every function', () => {
    for (const route of [ROOT, SLEEP]) {
      expect(functionOf(overTemplate, custom, route)).toMatchObject({ Runtime: 'nodejs22.x', Architectures: ['x86_64'] });
    }
  });

  test('handler "main" is index.main, and the bootstrap exports "main" so it answers 503 rather than a missing-handler error', () => {
    const fn = functionOf(overTemplate, custom, ROOT);
    expect(fn.Handler).toBe('index.main');
    expect(fn.Code.ZipFile).toContain('exports["main"]');
    expect(functionOf(overTemplate, custom, SLEEP).Handler).toBe('index.handler');
  });

  test('the pattern environment reaches every function; a route\'s environment adds to it and wins on conflicts', () => {
    expect(functionOf(overTemplate, custom, ROOT).Environment.Variables)
      .toEqual({ STAGE: 'prod', SHARED: 'route', ROUTE: 'root', NODE_OPTIONS: '--enable-source-maps' });
    expect(functionOf(overTemplate, custom, SLEEP).Environment.Variables)
      .toEqual({ STAGE: 'prod', SHARED: 'pattern', NODE_OPTIONS: '--enable-source-maps' });
  });

  test('the bootstrap versions keep their logical ids whatever the configuration (memory, timeout, environment, handler, runtime differ from the default stack): a config change never publishes a version or moves an alias', () => {
    const versionIds = (t: Template) => Object.keys(t.findResources('AWS::Lambda::Version')).sort();
    expect(versionIds(overTemplate)).toHaveLength(2);
    expect(versionIds(overTemplate)).toEqual(versionIds(template));
  });

  test('logRetention applies to the function logs, the access logs and the release functions\' logs', () => {
    const stage = resourceOf(overTemplate, idOf(custom.api.deploymentStage)).Properties;
    const groups = [
      ...[ROOT, SLEEP].map((route) => functionLogGroupIdOf(overTemplate, custom, route)),
      stage.AccessLogSetting.DestinationArn['Fn::GetAtt'][0],
      ...[custom.releaseController, custom.preTrafficHook].map((fn) => resourceOf(overTemplate, idOf(fn)).Properties.LoggingConfig.LogGroup.Ref),
    ];
    for (const id of groups) {
      expect(resourceOf(overTemplate, id).Properties.RetentionInDays).toBe(7);
    }
  });
});

describe('ServerlessApiPipeline overrides: release', () => {
  test('the release may take as long as the configuration shifts plus 30 minutes: 35 for the default canary, 40 for linear every minute', () => {
    expect(controllerEnvOf(template, api).MAX_WAIT_MINUTES).toBe('35');
    expect(controllerEnvOf(overTemplate, custom).MAX_WAIT_MINUTES).toBe('40');
  });

  test('deploymentConfig LINEAR_10PERCENT_EVERY_1MINUTE reaches every deployment group', () => {
    const groups = Object.values(overTemplate.findResources('AWS::CodeDeploy::DeploymentGroup')) as any[];
    expect(groups).toHaveLength(2);
    for (const group of groups) {
      expect(group.Properties.DeploymentConfigName).toBe('CodeDeployDefault.LambdaLinear10PercentEvery1Minute');
    }
  });

  test('the controller may read that configuration and no other', () => {
    const statements = statementsOfRole(overTemplate, idOf(custom.releaseController.role!));
    const resources = resourcesGranted(overStack, statements, 'codedeploy:GetDeploymentConfig');
    expect(resources).toHaveLength(1);
    expect(resources[0]).toMatch(/:deploymentconfig:CodeDeployDefault\.LambdaLinear10PercentEvery1Minute$/);
  });

  test('expectedPhrase is checked on GET / only; smokeTestPath lets the hook call GET /sleep/{secs}', () => {
    expect(hookRoutesOf(overTemplate, custom)).toEqual({
      GetRoot: { method: 'GET', path: '/', expectedPhrase: 'Hello' },
      GetSleepSecs: { method: 'GET', path: '/sleep/{secs}', smokeTestPath: '/sleep/0' },
    });
  });

  test('Approval.beforeRelease() adds an Approve stage between Build and Release', () => {
    expect((pipelineOf(overTemplate, custom).Stages as any[]).map((s) => s.Name)).toEqual(['Source', 'Build', 'Approve', 'Release']);
    expect(stageOf(overTemplate, custom, 'Approve').Actions.map((a: any) => [a.Name, a.ActionTypeId.Category]))
      .toEqual([['Approve', 'Approval']]);
    expect(stageOf(overTemplate, custom, 'Release').Actions.map((a: any) => a.Name)).toEqual(['Release']);
  });
});

describe('ServerlessApiPipeline overrides: build', () => {
  test('testCommands replace the default npm test', () => {
    const spec = buildSpecOf(overStack, overTemplate);
    expect(spec.phases.pre_build.commands).toEqual(['cd "$CODEBUILD_SRC_DIR/$SOURCE_DIRECTORY"', 'npm ci', 'npm run lint']);
    expect(JSON.stringify(spec)).not.toContain('npm run test --if-present');
  });

  test('sourceDirectory "api/" is normalized to "api", for the build and for the test reports', () => {
    expect(buildEnvOf(overTemplate).SOURCE_DIRECTORY).toBe('api');
    expect(Object.values(buildSpecOf(overStack, overTemplate).reports)).toEqual([expect.objectContaining({ 'base-directory': 'api/reports/junit' })]);
  });

  test('esbuild targets the Node.js version of the runtime (node22 for nodejs22.x)', () => {
    const bundles = (buildSpecOf(overStack, overTemplate).phases.build.commands as string[]).filter((c) => c.startsWith('npx --yes esbuild@'));
    expect(bundles).toHaveLength(2);
    for (const command of bundles) {
      expect(command).toContain('--target=node22 ');
    }
  });

  test('build environment variables reach the build, next to SOURCE_DIRECTORY and ARTIFACT_BUCKET', () => {
    const env = buildEnvOf(overTemplate);
    expect(env.NODE_ENV).toBe('production');
    expect(env.ARTIFACT_BUCKET).toEqual({ Ref: idOf(custom.pipeline.artifactBucket) });
  });
});

describe('ServerlessApiPipeline overrides: monitoring', () => {
  test('latencyThreshold 1500 ms sets the LatencyP99 threshold', () => {
    expect(alarmOf(overTemplate, custom, 'LatencyP99').Threshold).toBe(1500);
  });

  test('logMetricFilterPattern replaces the default pattern on every function\'s log group', () => {
    const filters = Object.values(overTemplate.findResources('AWS::Logs::MetricFilter')) as any[];
    expect(filters).toHaveLength(2);
    expect(filters.map((f) => f.Properties.FilterPattern)).toEqual(['"ERROR"', '"ERROR"']);
  });

  test('alarmEmails subscribe to the alarm topic', () => {
    overTemplate.hasResourceProperties('AWS::SNS::Subscription', {
      Protocol: 'email', Endpoint: 'ops@example.com', TopicArn: overStack.resolve(custom.alarmTopic.topicArn),
    });
  });
});

// ------------------------------------------------------------------------------------------------------------------
// Bad input: each throws in the constructor, before synthesis.
// ------------------------------------------------------------------------------------------------------------------
describe('ServerlessApiPipeline bad input', () => {
  const routes = [{ route: ROOT, entry: 'src/root.ts' }];

  function build(props: Partial<ServerlessApiPipelineProps> | ((s: Stack) => Partial<ServerlessApiPipelineProps>)): () => ServerlessApiPipeline {
    return () => {
      const badStack = new Stack(new App(), 'Bad');
      const given = typeof props === 'function' ? props(badStack) : props;
      return new ServerlessApiPipeline(badStack, 'Api', { source: source(), routes, ...given });
    };
  }

  function withRoutes(...r: ServerlessApiPipelineProps['routes']) {
    return build({ routes: r });
  }
  test.each<[string, Partial<ServerlessApiPipelineProps>, RegExp]>([
    ['a rate limit of 0', { throttlingRateLimit: 0 }, /'throttlingRateLimit' must be a whole number from 1 to 10000, got 0/],
    ['a negative burst', { throttlingBurstLimit: -1 }, /'throttlingBurstLimit' must be a whole number from 0 to 5000, got -1/],
    ['an empty log filter pattern', { logMetricFilterPattern: '' }, /'logMetricFilterPattern' must not be empty/],
    ['an empty expected phrase', { expectedPhrase: '' }, /'expectedPhrase' must not be empty/],
    ['an empty test command', { testCommands: [''] }, /'testCommands' must not be empty/],
    ['a source directory outside the repository', { sourceDirectory: '../api' }, /'sourceDirectory' must be a path inside the repository.*got '\.\.\/api'/],
    ['a latency threshold beyond API Gateway\'s 29 seconds', { latencyThreshold: Duration.seconds(30) }, /'latencyThreshold' must be between 10 millis and 29 seconds, got 30 seconds/],
    ['a malformed alarm email', { alarmEmails: ['ops.example.com'] }, /'alarmEmails' must be an email address.*got 'ops.example.com'/],
  ])('%s is refused, naming the property and the value', (_name, props, message) => {
    expect(build(props)).toThrow(message);
  });


  test('a route without a leading slash is refused (it must be METHOD /path)', () => {
    expect(withRoutes({ route: 'GET sleep', entry: 'src/x.ts' })).toThrow(/'routes' must be 'METHOD \/path'.*got 'GET sleep'/);
  });

  test('an unknown HTTP method is refused', () => {
    expect(withRoutes({ route: 'FETCH /x', entry: 'src/x.ts' })).toThrow(/'routes' must be 'METHOD \/path' with METHOD one of GET, .*got 'FETCH \/x'/);
  });

  test('an unclosed path parameter is refused as an invalid segment', () => {
    expect(withRoutes({ route: 'GET /a/{b', entry: 'src/x.ts' })).toThrow(/'routes' has an invalid path segment '\{b'.*got 'GET \/a\/\{b'/);
  });

  test('a greedy parameter before the last segment is refused (API Gateway only allows it last)', () => {
    expect(withRoutes({ route: 'GET /a/{p+}/b', entry: 'src/x.ts' })).toThrow(/'routes' may use a greedy parameter .* only as the last segment, got 'GET \/a\/\{p\+\}\/b'/);
  });

  test('a repeated path parameter is refused', () => {
    expect(withRoutes({ route: 'GET /{id}/{id}', entry: 'src/x.ts' })).toThrow(/'routes' must not repeat the path parameter 'id', got 'GET \/\{id\}\/\{id\}'/);
  });

  test('the same route twice is refused', () => {
    expect(withRoutes({ route: 'GET /x', entry: 'src/a.ts' }, { route: 'GET /x', entry: 'src/b.ts' }))
      .toThrow(/'routes' duplicates the route 'GET \/x', got 'GET \/x'/);
  });

  test('sibling parameters with different names on one path are refused (API Gateway allows one parameter resource per level)', () => {
    expect(withRoutes({ route: 'GET /a/{x}', entry: 'src/a.ts' }, { route: 'GET /a/{y}', entry: 'src/b.ts' }))
      .toThrow(/'routes' conflicts with 'GET \/a\/\{x\}': API Gateway allows one path parameter under '\/a', here \{x\} and \{y\}, got 'GET \/a\/\{y\}'/);
  });

  test.each([
    ['DELETE /a/{y}'], ['POST /a/{y+}'], ['GET /a/{y}/b'],
  ])('a sibling parameter conflicts whatever the method or depth: GET /a/{x} with %s', (other) => {
    expect(withRoutes({ route: 'GET /a/{x}', entry: 'src/a.ts' }, { route: other, entry: 'src/b.ts' }))
      .toThrow(/'routes' conflicts with 'GET \/a\/\{x\}'/);
  });

  test('the same parameter under one path with other methods or deeper paths is fine', () => {
    expect(withRoutes(
      { route: 'GET /a/{x}', entry: 'src/a.ts' },
      { route: 'DELETE /a/{x}', entry: 'src/b.ts' },
      { route: 'GET /a/{x}/b', entry: 'src/c.ts' },
    )).not.toThrow();
  });

  test('more than 10 routes are refused: the controller\'s 4 KB environment names each function', () => {
    const many = Array.from({ length: 11 }, (_, i) => ({ route: `GET /r${i}`, entry: 'src/a.ts' }));
    expect(withRoutes(...many)).toThrow(/'routes' must list at most 10 routes.*got 11/);
  });

  test('with 10 long routes and the longest names CloudFormation could generate, the controller\'s environment fits Lambda\'s 4 KB', () => {
    const longApp = new App();
    const longStack = new Stack(longApp, 'orders-service-production-eu', { env: ENV });
    const pattern = new ServerlessApiPipeline(longStack, 'OrdersApi', {
      source: source(),
      routes: Array.from({ length: 10 }, (_, i) => ({ route: `GET /v1/customers/{customerId}/orders/{orderId}/items${i}/{itemId}`, entry: 'src/a.ts' })),
    });
    const variables = longStack.resolve((pattern.releaseController.node.defaultChild as lambda.CfnFunction).environment).variables;
    // Every reference becomes a long value: 100 characters for a name (functions allow 64), 140 for an ARN.
    const longest = (value: unknown): string => {
      if (typeof value === 'string') return value;
      if (Array.isArray(value)) return value.map(longest).join('');
      const v = value as Record<string, unknown>;
      if (v['Fn::Join']) { const [sep, parts] = v['Fn::Join'] as [string, unknown[]]; return parts.map(longest).join(sep); }
      return 'x'.repeat(v.Ref ? 100 : 140);
    };
    const size = Object.entries(variables).reduce((sum, [key, value]) => sum + key.length + longest(value).length, 0);
    expect(size).toBeLessThan(4096);
  });

  test('a route whose name would exceed 100 characters is refused', () => {
    expect(withRoutes({ route: `GET /${'b'.repeat(110)}`, entry: 'src/a.ts' })).toThrow(/is too long: its name/);
  });

  test.each([
    ['/sleep/{secs}'], ['/files//b'],
  ])('a smokeTestPath that is not concrete (%s) is refused', (smokeTestPath) => {
    expect(withRoutes({ route: 'GET /sleep/{secs}', entry: 'src/a.ts', smokeTestPath })).toThrow(/'routes\[\]\.smokeTestPath' must be a concrete path/);
  });

  test('a smokeTestPath on a route the test does not call (POST) is refused', () => {
    expect(withRoutes({ route: 'POST /orders', entry: 'src/a.ts', smokeTestPath: '/orders' })).toThrow(/is only for GET, HEAD and ANY routes/);
  });

  test('two routes that would get the same id (GET / and GET /root are both GetRoot) are refused', () => {
    expect(withRoutes({ route: 'GET /', entry: 'src/a.ts' }, { route: 'GET /root', entry: 'src/b.ts' }))
      .toThrow(/'routes' is too similar to 'GET \/' \(both would be named GetRoot\), got 'GET \/root'/);
  });

  test('an empty list of routes is refused', () => {
    expect(withRoutes()).toThrow(/'routes' must list at least one route, got \[\]/);
  });

  test('memorySize 64 is refused (Lambda needs at least 128 MB)', () => {
    expect(build({ memorySize: 64 })).toThrow(/'memorySize' must be a whole number from 128 to 10240, got 64/);
  });

  test('memorySize 20000 is refused (Lambda offers at most 10240 MB)', () => {
    expect(build({ memorySize: 20000 })).toThrow(/'memorySize' must be a whole number from 128 to 10240, got 20000/);
  });

  test('a timeout of 16 minutes is refused (Lambda stops at 15)', () => {
    expect(build({ timeout: Duration.minutes(16) })).toThrow(/'timeout' must be between 1 second and 15 minutes, got 16 minutes/);
  });

  test('a timeout of 1500 ms is refused (Lambda takes whole seconds)', () => {
    expect(build({ timeout: Duration.millis(1500) })).toThrow(/'timeout' must be a whole number of seconds, got 1 second 500 millis/);
  });

  test('a route timeout of 0 seconds is refused, named as the route\'s property', () => {
    expect(withRoutes({ route: 'GET /x', entry: 'src/x.ts', timeout: Duration.seconds(0) }))
      .toThrow(/'routes\[\]\.timeout' must be between 1 second and 15 minutes, got 0 seconds/);
  });

  test('a CodeDeployDefault configuration that does not exist for Lambda (LambdaCanary50Percent1Minute) is refused', () => {
    expect(build((s) => ({
      deploymentConfig: codedeploy.LambdaDeploymentConfig.fromLambdaDeploymentConfigName(s, 'X', 'CodeDeployDefault.LambdaCanary50Percent1Minute'),
    }))).toThrow(/'deploymentConfig' must be a Lambda deployment configuration: one of .*got 'CodeDeployDefault\.LambdaCanary50Percent1Minute'/);
  });

  test('an entry outside the repository (../x.ts) is refused', () => {
    expect(withRoutes({ route: 'GET /x', entry: '../x.ts' })).toThrow(/'routes\[\]\.entry' must be a \.ts or \.js file inside the repository.*got '\.\.\/x\.ts'/);
  });

  test('an entry that esbuild cannot bundle as Node.js (src/x.py) is refused', () => {
    expect(withRoutes({ route: 'GET /x', entry: 'src/x.py' })).toThrow(/'routes\[\]\.entry' must be a \.ts or \.js file.*got 'src\/x\.py'/);
  });

  test('a handler that is not a JavaScript identifier is refused', () => {
    expect(withRoutes({ route: 'GET /x', entry: 'src/x.ts', handler: 'not-valid' }))
      .toThrow(/'routes\[\]\.handler' must be the name of an exported function, got 'not-valid'/);
  });

  test('a smokeTestPath that does not match its route is refused (the hook would invoke the wrong handler path)', () => {
    expect(withRoutes({ route: SLEEP, entry: 'src/sleep.ts', smokeTestPath: '/other' }))
      .toThrow(/'routes\[\]\.smokeTestPath' must be a concrete path of the route 'GET \/sleep\/\{secs\}', got '\/other'/);
  });

  test('a stage name with a hyphen is refused (API Gateway stage names are letters, digits and underscores)', () => {
    expect(build({ stageName: 'prod-1' })).toThrow(/'stageName' must be 1 to 128 letters, digits or underscores, got 'prod-1'/);
  });

  test('a non-Node.js runtime is refused (the build bundles with esbuild)', () => {
    expect(build({ runtime: lambda.Runtime.PYTHON_3_12 })).toThrow(/'runtime' must be a Node.js runtime.*got 'python3\.12'/);
  });

  test('Approval.beforeProductionTraffic() is refused: the API has no test endpoint for a human to approve', () => {
    expect(build({ approval: Approval.beforeProductionTraffic() }))
      .toThrow(/'approval' cannot be used with .*which has no test endpoint to approve.*got 'Approval\.beforeProductionTraffic\(\)'/);
  });
});

describe('ServerlessApiPipeline: names of copies', () => {
  test('copies of one app under different stack names get different API names, so their 5xx and latency alarms do not share metrics', () => {
    const names = ['shop-alice', 'shop-bob'].map((stackName) => {
      const otherApp = new App();
      const otherStack = new Stack(otherApp, 'Shop', { env: { account: '123456789012', region: 'us-east-1' }, stackName });
      const pattern = new ServerlessApiPipeline(otherStack, 'Api', {
        source: PipelineSource.connection('owner/repo', 'main', { connectionArn: CONNECTION_ARN }),
        routes: [{ route: 'GET /', entry: 'src/root.ts' }],
      });
      return (pattern.api.node.defaultChild as apigateway.CfnRestApi).name;
    });
    expect(names[0]).toMatch(/^shop-alice-/);
    expect(names[1]).toMatch(/^shop-bob-/);
  });
});

describe('ServerlessApiPipeline release invariants (issue 8, ADR 0007)', () => {
  /** A pattern with only a deployment configuration of its own, and its template. */
  function withConfig(config: (s: Stack) => codedeploy.ILambdaDeploymentConfig): { pattern: ServerlessApiPipeline; template: Template } {
    const s = new Stack(new App(), 'Configured', { env: ENV });
    const pattern = new ServerlessApiPipeline(s, 'Api', { source: source(), routes: [{ route: ROOT, entry: 'src/root.ts' }], deploymentConfig: config(s) });
    return { pattern, template: Template.fromStack(s) };
  }

  test('invariant 6: no alias has an UpdatePolicy (CodeDeployLambdaAliasUpdate): no CloudFormation update can shift traffic', () => {
    // aws-cdk-lib's LambdaDeploymentGroup adds CodeDeployLambdaAliasUpdate to its alias; the pattern removes it.
    for (const t of [template, overTemplate]) {
      const aliases = Object.values(t.findResources('AWS::Lambda::Alias')) as any[];
      expect(aliases).toHaveLength(2);
      for (const alias of aliases) expect(alias.UpdatePolicy).toBeUndefined();
      expect(JSON.stringify(t.toJSON())).not.toContain('CodeDeployLambdaAliasUpdate');
    }
  });

  test('invariant 5: a cdk deploy with other props and another approval setting (Approval.none() vs beforeRelease()) changes no alias, version or code', () => {
    // The default pattern has Approval.none(); the custom one Approval.beforeRelease() and other memory, timeouts,
    // environment, runtime and deployment configuration. What serves production must be the same in both templates:
    // the alias on its bootstrap version and the bootstrap code, so a stack update during a release moves nothing.
    for (const route of [ROOT, SLEEP]) {
      const aliasId = idOf(api.aliases[route]);
      expect(idOf(custom.aliases[route])).toBe(aliasId);
      expect(resourceOf(overTemplate, aliasId)).toEqual(resourceOf(template, aliasId));
      const versionId = resourceOf(template, aliasId).Properties.FunctionVersion['Fn::GetAtt'][0];
      expect(resourceOf(overTemplate, versionId)).toEqual(resourceOf(template, versionId));
      const code = (t: Template, p: ServerlessApiPipeline) => functionOf(t, p, route).Code.ZipFile as string;
      // Only the handler name differs (routes[].handler): the code is the bootstrap answer, never the user's code.
      expect(code(template, api)).toContain('not released yet');
      expect(code(overTemplate, custom)).toContain('not released yet');
      expect(code(overTemplate, custom).replace('"main"', '"handler"')).toBe(code(template, api));
    }
  });

  test('keeps codedeploy:UpdateDeploymentGroup: CreateDeployment with an alarm override (overrideAlarmConfiguration) needs it; it is not unused', () => {
    const statements = statementsOfRole(template, idOf(api.releaseController.role!));
    const groups = Object.values(deploymentGroupsOf(api)).map((g) => groupArn(api, g)).sort();
    expect(resourcesGranted(stack, statements, 'codedeploy:UpdateDeploymentGroup')).toEqual(groups);
  });

  test('the controller may list deployments of its own deployment groups (only one release at a time, the stale-alarm sweep)', () => {
    const statements = statementsOfRole(template, idOf(api.releaseController.role!));
    const groups = Object.values(deploymentGroupsOf(api)).map((g) => groupArn(api, g)).sort();
    expect(resourcesGranted(stack, statements, 'codedeploy:ListDeployments')).toEqual(groups);
    expect(resourcesGranted(stack, statements, 'codedeploy:GetDeployment')).toEqual(groups);
    expect(resourcesGranted(stack, statements, 'codedeploy:StopDeployment')).toEqual(groups);
  });

  test('invariant 4: the wait of a created canary configuration is its interval plus 30 minutes', () => {
    const { pattern, template: t } = withConfig((s) => new codedeploy.LambdaDeploymentConfig(s, 'Slow', {
      trafficRouting: codedeploy.TrafficRouting.timeBasedCanary({ interval: Duration.minutes(60), percentage: 5 }),
    }));
    expect(controllerEnvOf(t, pattern).MAX_WAIT_MINUTES).toBe('90');
  });

  test('invariant 4: the wait of a created linear configuration is its steps times its interval plus 30 minutes', () => {
    const { pattern, template: t } = withConfig((s) => new codedeploy.LambdaDeploymentConfig(s, 'Steps', {
      trafficRouting: codedeploy.TrafficRouting.timeBasedLinear({ interval: Duration.minutes(7), percentage: 30 }),
    }));
    expect(controllerEnvOf(t, pattern).MAX_WAIT_MINUTES).toBe(String(4 * 7 + 30));
  });

  test('invariant 4: an all-at-once configuration waits 30 minutes', () => {
    const { pattern, template: t } = withConfig((s) => new codedeploy.LambdaDeploymentConfig(s, 'Now', { trafficRouting: codedeploy.TrafficRouting.allAtOnce() }));
    expect(controllerEnvOf(t, pattern).MAX_WAIT_MINUTES).toBe('30');
    const predefined = withConfig(() => codedeploy.LambdaDeploymentConfig.ALL_AT_ONCE);
    expect(controllerEnvOf(predefined.template, predefined.pattern).MAX_WAIT_MINUTES).toBe('30');
  });

  test('invariant 4: an imported configuration (length unknown) waits at most 23 hours, below CodePipeline\'s 24 with the rollback', () => {
    const { pattern, template: t } = withConfig((s) => codedeploy.LambdaDeploymentConfig.fromLambdaDeploymentConfigName(s, 'Mine', 'my-team-canary'));
    expect(controllerEnvOf(t, pattern).MAX_WAIT_MINUTES).toBe('1380');
  });

  test('invariant 4: a created configuration whose shift cannot end before CodePipeline\'s 24 hours is refused at synth time', () => {
    expect(() => withConfig((s) => new codedeploy.LambdaDeploymentConfig(s, 'TooSlow', {
      trafficRouting: codedeploy.TrafficRouting.timeBasedLinear({ interval: Duration.minutes(136), percentage: 10 }),
    }))).toThrow("ServerlessApiPipeline 'Configured/Api': 'deploymentConfig' must shift traffic within 1350 minutes: with 30 minutes for tests and bake and 30 for a rollback, "
      + "a release must end before CodePipeline fails the release action after 24 hours, got 'a traffic shift of 1360 minutes'");
    // 1350 minutes fit exactly.
    const { pattern, template: t } = withConfig((s) => new codedeploy.LambdaDeploymentConfig(s, 'JustFits', {
      trafficRouting: codedeploy.TrafficRouting.timeBasedLinear({ interval: Duration.minutes(135), percentage: 10 }),
    }));
    expect(controllerEnvOf(t, pattern).MAX_WAIT_MINUTES).toBe('1380');
  });
});
