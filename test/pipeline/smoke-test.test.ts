import { App, Duration, Stack } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import * as codedeploy from 'aws-cdk-lib/aws-codedeploy';
import * as iam from 'aws-cdk-lib/aws-iam';
import { DeliveryPipeline, PipelineSource, Release, SmokeTest } from '../../src';
import { checkApp, describeFailures } from '../compliance/harness';
import { CONNECTION_ARN, siteBucket } from '../util/fixtures';

describe('SmokeTest in a pipeline', () => {
  const app = new App();
  const stack = new Stack(app, 'Smoke');
  const smoke = new SmokeTest(stack, 'Smoke', { baseUrl: 'https://test.example.com', expectedPhrase: 'Welcome' });
  new DeliveryPipeline(stack, 'Delivery', {
    source: PipelineSource.connection('acme/site', 'main', { connectionArn: CONNECTION_ARN }),
    verifyActions: [smoke.pipelineAction({ runOrder: 2 })],
    release: Release.s3Bucket(siteBucket(stack)),
  });
  const template = Template.fromStack(stack);

  test('runs the bundled handler on nodejs24.x arm64 with a timeout long enough to report its verdict', () => {
    template.hasResourceProperties('AWS::Lambda::Function', {
      Runtime: 'nodejs24.x',
      Handler: 'index.handler',
      Architectures: ['arm64'],
      Timeout: 120,
      MemorySize: 256,
      TracingConfig: { Mode: 'Active' },
      Environment: {
        Variables: Match.objectLike({
          SMOKE_TEST_BASE_URL: 'https://test.example.com',
          SMOKE_TEST_HEALTH_PATH: '/healthcheck',
          SMOKE_TEST_EXPECTED_PHRASE: 'Welcome',
          SMOKE_TEST_ATTEMPTS: '3',
          SMOKE_TEST_REQUEST_TIMEOUT_MS: '5000',
        }),
      },
      LoggingConfig: { LogGroup: { Ref: stack.getLogicalId(smoke.logGroup.node.defaultChild as any) } },
    });
  });

  test('does not retry failed asynchronous invocations', () => {
    template.hasResourceProperties('AWS::Lambda::EventInvokeConfig', {
      MaximumRetryAttempts: 0,
      Qualifier: '$LATEST',
      DestinationConfig: { OnFailure: { Destination: Match.anyValue() } },
    });
    // One queue, once: no function dead-letter queue as well.
    template.hasResourceProperties('AWS::Lambda::Function', { Handler: 'index.handler', DeadLetterConfig: Match.absent() });
  });

  test('its role writes only to its own log group, with no managed policy', () => {
    template.hasResourceProperties('AWS::IAM::Policy', {
      PolicyDocument: {
        Statement: Match.arrayWith([Match.objectLike({
          Action: ['logs:CreateLogStream', 'logs:PutLogEvents'],
          Resource: { 'Fn::GetAtt': [stack.getLogicalId(smoke.logGroup.node.defaultChild as any), 'Arn'] },
        })]),
      },
    });
    const role = template.toJSON().Resources[stack.getLogicalId(smoke.role.node.defaultChild as any)];
    expect(role.Properties.AssumeRolePolicyDocument.Statement[0].Principal).toEqual({ Service: 'lambda.amazonaws.com' });
    expect(role.Properties.ManagedPolicyArns).toBeUndefined();
  });

  test('the pipeline invokes it as a Lambda action', () => {
    template.hasResourceProperties('AWS::CodePipeline::Pipeline', {
      Stages: Match.arrayWith([Match.objectLike({
        Name: 'Verify',
        Actions: [Match.objectLike({ ActionTypeId: Match.objectLike({ Category: 'Invoke', Provider: 'Lambda' }), RunOrder: 2 })],
      })]),
    });
  });

  test('passes cdk-nag and the validator', () => {
    expect(checkApp(app).map(describeFailures)).toEqual(['Smoke: clean']);
  });
});

describe('SmokeTest on its own', () => {
  const app = new App();
  const stack = new Stack(app, 'Alone');
  const smoke = new SmokeTest(stack, 'Smoke', { baseUrl: 'http://test.example.com:8080' });
  const application = new codedeploy.LambdaApplication(stack, 'App');
  const group = codedeploy.LambdaDeploymentGroup.fromLambdaDeploymentGroupAttributes(stack, 'Group', { application, deploymentGroupName: 'live' });
  smoke.grantReportToCodeDeploy(group);
  const template = Template.fromStack(stack);

  test('may report to the CodeDeploy deployment group it is given, and to no other', () => {
    template.hasResourceProperties('AWS::IAM::Policy', {
      PolicyDocument: {
        Statement: Match.arrayWith([Match.objectLike({
          Action: 'codedeploy:PutLifecycleEventHookExecutionStatus',
          Resource: Match.objectLike({ 'Fn::Join': Match.arrayWith([Match.arrayWith([Match.stringLikeRegexp(':deploymentgroup:')])]) }),
        })]),
      },
    });
  });

  test('passes cdk-nag and the validator without a pipeline', () => {
    expect(checkApp(app).map(describeFailures)).toEqual(['Alone: clean']);
  });

  test('a statement on * with another action added to its role keeps its finding', () => {
    const otherApp = new App();
    const other = new Stack(otherApp, 'Widened');
    const widened = new SmokeTest(other, 'Smoke', { baseUrl: 'http://test.example.com' });
    widened.role.addToPrincipalPolicy(new iam.PolicyStatement({ actions: ['s3:GetObject'], resources: ['*'] }));
    expect(checkApp(otherApp).map(describeFailures).join('\n')).toMatch(/AwsSolutions-IAM5\[Resource::\*\] at Widened\/Smoke\/Role/);
  });
});

describe('SmokeTest bad input', () => {
  const make = (props: Partial<ConstructorParameters<typeof SmokeTest>[2]>) => () => new SmokeTest(new Stack(), 'Smoke', { baseUrl: 'http://x.example.com', ...props });

  test.each(['x.example.com', 'ftp://x', 'http://', 'http://a b'])('baseUrl %p is refused', (baseUrl) => {
    expect(make({ baseUrl })).toThrow(new RegExp(`SmokeTest 'Default/Smoke': 'baseUrl' must be an http\\(s\\) URL.*got '${baseUrl.replace(/[/.]/g, '\\$&')}'`));
  });

  test.each(['healthcheck', '/health check'])('healthPath %p is refused', (healthPath) => {
    expect(make({ healthPath })).toThrow(/'healthPath' must start with '\/'/);
  });

  test.each([0, 21, 1.5])('attempts %p is refused', (attempts) => {
    expect(make({ attempts })).toThrow(/'attempts' must be a whole number from 1 to 20/);
  });

  test('a timeout Lambda does not allow, or too short to report, is refused', () => {
    expect(make({ timeout: Duration.seconds(10) })).toThrow(/'timeout' must be between 30 seconds and 15 minutes, got 10 seconds/);
    expect(make({ timeout: Duration.minutes(16) })).toThrow(/'timeout' must be between/);
    expect(make({ requestTimeout: Duration.minutes(2) })).toThrow(/'requestTimeout' must be between 1 second and 1 minute/);
  });
});
