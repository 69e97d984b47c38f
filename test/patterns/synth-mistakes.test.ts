/**
 * Ordinary mistakes that CloudFormation, the service or the first release would refuse later fail at synth, naming
 * the property and what is allowed (issue 10, ADR 0012). One test each; no synthesis (the constructors throw).
 */
import { App, Stack } from 'aws-cdk-lib';
import * as acm from 'aws-cdk-lib/aws-certificatemanager';
import * as codecommit from 'aws-cdk-lib/aws-codecommit';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import * as elbv2 from 'aws-cdk-lib/aws-elasticloadbalancingv2';
import * as ssm from 'aws-cdk-lib/aws-ssm';
import { Ec2BlueGreenPipeline, FargateBlueGreenPipeline, PipelineSource, ServerlessApiPipeline } from '../../src';
import { InstanceSecret } from '../../src/runtime/instance-secret';
import { CONNECTION_ARN } from '../util/fixtures';

const env = { account: '123456789012', region: 'eu-west-1' };
let n = 0;
const newStack = (withEnv = true) => new Stack(new App(), `Mistakes${n++}`, withEnv ? { env } : {});
const source = () => PipelineSource.connection('my-org/my-repo', 'main', { connectionArn: CONNECTION_ARN });
const certificateIn = (stack: Stack, region: string) => elbv2.ListenerCertificate.fromCertificateManager(
  acm.Certificate.fromCertificateArn(stack, `Cert${n++}`, `arn:aws:acm:${region}:123456789012:certificate/abc`));
const routes = [{ route: 'GET /', entry: 'src/index.ts' }];

describe('source branch', () => {
  test.each([
    ['my branch'], ['feature..x'], ['-main'], ['main.lock'], ['main/'], ['a:b'], ['.hidden'],
  ])('a branch git refuses (%s) is refused, naming branch and the rules', (branch) => {
    expect(() => PipelineSource.connection('my-org/my-repo', branch, { connectionArn: CONNECTION_ARN }))
      .toThrow(/PipelineSource.connection: 'branch' must be a branch name git accepts.*got '/);
  });

  test('a glob as the source branch is refused with a pointer to triggerBranches', () => {
    expect(() => PipelineSource.connection('my-org/my-repo', 'feature/*', { connectionArn: CONNECTION_ARN }))
      .toThrow(/'branch' must be one branch, not a glob.*'triggerBranches'.*got 'feature\/\*'/);
  });

  test('the CodeCommit source checks its branch the same way', () => {
    const stack = newStack();
    const repository = codecommit.Repository.fromRepositoryName(stack, 'Repo', 'repo');
    expect(() => PipelineSource.codeCommit(repository, 'release/[0-9]')).toThrow(/PipelineSource.codeCommit: 'branch' must be one branch, not a glob/);
  });

  test('ordinary branch names pass', () => {
    for (const branch of ['main', 'release/1.2', 'feature/JIRA-12_x', 'v1.0-rc']) {
      expect(() => PipelineSource.connection('my-org/my-repo', branch, { connectionArn: CONNECTION_ARN })).not.toThrow();
    }
  });
});

describe('testListenerPeers: [] (nothing could reach the test listener)', () => {
  test('FargateBlueGreenPipeline refuses it', () => {
    expect(() => new FargateBlueGreenPipeline(newStack(), 'Web', { source: source(), testListenerPeers: [] }))
      .toThrow(/'testListenerPeers' must name at least one peer.*got \[\]/);
  });

  test('Ec2BlueGreenPipeline refuses it', () => {
    expect(() => new Ec2BlueGreenPipeline(newStack(), 'Web', { source: source(), testListenerPeers: [] }))
      .toThrow(/'testListenerPeers' must name at least one peer.*got \[\]/);
  });
});

describe('a certificate from another region than the stack\'s', () => {
  test('FargateBlueGreenPipeline refuses it, naming both regions', () => {
    const stack = newStack();
    expect(() => new FargateBlueGreenPipeline(stack, 'Web', { source: source(), certificate: certificateIn(stack, 'us-east-1') }))
      .toThrow(/'certificate' must be in the stack's region eu-west-1 \(its region is us-east-1\)/);
  });

  test('Ec2BlueGreenPipeline refuses it', () => {
    const stack = newStack();
    expect(() => new Ec2BlueGreenPipeline(stack, 'Web', { source: source(), certificate: certificateIn(stack, 'us-east-1') }))
      .toThrow(/'certificate' must be in the stack's region eu-west-1/);
  });

  test('a certificate of the stack\'s region passes, and so does any when the stack has no region', () => {
    const stack = newStack();
    expect(() => new FargateBlueGreenPipeline(stack, 'Web', { source: source(), certificate: certificateIn(stack, 'eu-west-1') })).not.toThrow();
    const agnostic = newStack(false);
    expect(() => new FargateBlueGreenPipeline(agnostic, 'Web', { source: source(), certificate: certificateIn(agnostic, 'us-east-1') })).not.toThrow();
  });
});

describe('a cluster whose VPC is not vpc', () => {
  const vpcs = (stack: Stack) => [1, 2].map((i) => new ec2.Vpc(stack, `Vpc${i}`, {
    natGateways: 0, subnetConfiguration: [{ name: 'p', subnetType: ec2.SubnetType.PUBLIC }],
  }));

  test('is refused', () => {
    const stack = newStack();
    const [vpc, other] = vpcs(stack);
    const cluster = new ecs.Cluster(stack, 'Cluster', { vpc: other });
    expect(() => new FargateBlueGreenPipeline(stack, 'Web', { source: source(), vpc, cluster }))
      .toThrow(/'cluster' must be a cluster of 'vpc'.*got 'Mistakes\d+\/Cluster'/);
  });

  test('a cluster without vpc is refused too (a new VPC would be created beside it)', () => {
    const stack = newStack();
    const [vpc] = vpcs(stack);
    const cluster = new ecs.Cluster(stack, 'Cluster', { vpc });
    expect(() => new FargateBlueGreenPipeline(stack, 'Web', { source: source(), cluster })).toThrow(/'cluster' needs its VPC given as 'vpc' too/);
  });

  test('the cluster\'s own VPC passes', () => {
    const stack = newStack();
    const [vpc] = vpcs(stack);
    const cluster = new ecs.Cluster(stack, 'Cluster', { vpc });
    expect(() => new FargateBlueGreenPipeline(stack, 'Web', { source: source(), vpc, cluster })).not.toThrow();
  });
});

describe('runtime environment names that look like secrets', () => {
  test('the container refuses DB_PASSWORD, pointing to secrets', () => {
    expect(() => new FargateBlueGreenPipeline(newStack(), 'Web', { source: source(), environment: { DB_PASSWORD: 'x' } }))
      .toThrow(/'environment' must not carry secrets in plain text: pass it in 'secrets'.*got 'DB_PASSWORD'/);
  });

  test('the Lambda functions refuse API_KEY (pattern environment or route environment)', () => {
    expect(() => new ServerlessApiPipeline(newStack(), 'Api', { source: source(), routes, environment: { API_KEY: 'x' } }))
      .toThrow(/'environment \(with routes\[\]\.environment of 'GET \/'\)' must not carry secrets in plain text.*got 'API_KEY'/);
    expect(() => new ServerlessApiPipeline(newStack(), 'Api', { source: source(), routes: [{ ...routes[0], environment: { API_KEY: 'x' } }] }))
      .toThrow(/must not carry secrets in plain text.*got 'API_KEY'/);
  });

  test('names that only locate a secret pass', () => {
    expect(() => new ServerlessApiPipeline(newStack(), 'Api', { source: source(), routes, environment: { DB_PASSWORD_SECRET_NAME: 'db' } })).not.toThrow();
  });
});

describe('the same name in environment and secrets', () => {
  test('the container refuses it', () => {
    const stack = newStack();
    const parameter = ssm.StringParameter.fromStringParameterName(stack, 'P', '/db/url');
    expect(() => new FargateBlueGreenPipeline(stack, 'Web', {
      source: source(), environment: { DB_URL: 'x' }, secrets: { DB_URL: ecs.Secret.fromSsmParameter(parameter) },
    })).toThrow(/'secrets' must not repeat a name of 'environment'.*got 'DB_URL'/);
  });

  test('the EC2 fleet refuses it', () => {
    const stack = newStack();
    const parameter = ssm.StringParameter.fromStringParameterName(stack, 'P', '/db/url');
    expect(() => new Ec2BlueGreenPipeline(stack, 'Web', {
      source: source(), environment: { DB_URL: 'x' }, secrets: { DB_URL: InstanceSecret.fromSsmParameter(parameter) },
    })).toThrow(/'secrets' must not repeat a name of environment.*got 'DB_URL'/);
  });
});

describe('Lambda environments', () => {
  test('over 4 KB (the pattern\'s and the route\'s together) are refused', () => {
    expect(() => new ServerlessApiPipeline(newStack(), 'Api', {
      source: source(),
      environment: { BIG_A: 'a'.repeat(2100) },
      routes: [{ ...routes[0], environment: { BIG_B: 'b'.repeat(2100) } }],
    })).toThrow(/must stay within Lambda's 4096 bytes for all the variables of one function.*got '42\d\d bytes'/);
  });

  test('each half alone passes', () => {
    expect(() => new ServerlessApiPipeline(newStack(), 'Api', {
      source: source(), environment: { BIG_A: 'a'.repeat(2100) }, routes,
    })).not.toThrow();
  });

  test('a name Lambda reserves (AWS_REGION) is refused', () => {
    expect(() => new ServerlessApiPipeline(newStack(), 'Api', { source: source(), routes, environment: { AWS_REGION: 'eu-west-1' } }))
      .toThrow(/must not set a variable Lambda reserves for itself.*got 'AWS_REGION'/);
  });

  test('a name Lambda refuses (one character, or starting with _ or a digit) is refused', () => {
    for (const name of ['A', '_X', '1X', 'MY-VAR']) {
      expect(() => new ServerlessApiPipeline(newStack(), 'Api', { source: source(), routes, environment: { [name]: 'v' } }))
        .toThrow(/must name variables with a letter followed by letters, digits or _/);
    }
  });
});

describe('a container port below 1024 while the container runs as non-root (it could not listen there)', () => {
  test('is refused, pointing to a higher port or runAsNonRootUser: false', () => {
    expect(() => new FargateBlueGreenPipeline(newStack(), 'Web', { source: source(), containerPort: 80 }))
      .toThrow(/Web.*'containerPort' must be 1024 or more while the container runs as a non-root user.*runAsNonRootUser: false.*got 80/);
  });

  test('passes as root, and port 1024 passes as non-root', () => {
    expect(() => new FargateBlueGreenPipeline(newStack(), 'Web', { source: source(), containerPort: 80, runAsNonRootUser: false })).not.toThrow();
    expect(() => new FargateBlueGreenPipeline(newStack(), 'Web', { source: source(), containerPort: 1024 })).not.toThrow();
  });
});
