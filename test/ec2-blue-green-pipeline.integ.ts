/**
 * Ec2BlueGreenPipeline, deployed: the sample service released blue/green onto EC2 Auto Scaling with the defaults and
 * no approval. After the deploy the assertions check that the pipeline's first execution succeeded (the workflow put
 * the release on the idle color, health-checked and smoke-tested it behind the test listener, shifted production and
 * baked), that production answers with the welcome phrase from the released color, and that the test listener,
 * which forwards to the idle color once the release ended, no longer serves (the old color is scaled to zero).
 *
 *   npx projen integ:ec2-blue-green-pipeline:snapshot   (no AWS account; `npm test` compares the snapshot)
 *   INTEG_REPO=... INTEG_CONNECTION_ARN=... npx projen integ:ec2-blue-green-pipeline:deploy
 */
import { ExpectedResult, IntegTest, Match } from '@aws-cdk/integ-tests-alpha';
import { Stack } from 'aws-cdk-lib';
import { DEFAULT_WELCOME_PHRASE } from '../examples/service/src/app';
import { Approval, Ec2BlueGreenPipeline } from '../src';
import { FIRST_RELEASE_WAIT, HTTP_WAIT, integApp, integEnvironment, integSource } from './integ/integ-app';

const app = integApp();
const stack = new Stack(app, 'IntegEc2BlueGreen', { env: integEnvironment() });
const web = new Ec2BlueGreenPipeline(stack, 'Web', {
  source: integSource('my-org/cdk-delivery-pipelines', ['examples/service/**']),
  appDirectory: 'examples/service',
  expectedPhrase: DEFAULT_WELCOME_PHRASE,
  approval: Approval.none(),
});

const integ = new IntegTest(app, 'Ec2BlueGreenPipelineInteg', {
  testCases: [stack],
  diffAssets: false,
  stackUpdateWorkflow: false,
});

const firstRelease = integ.assertions
  .awsApiCall('CodePipeline', 'listPipelineExecutions', { pipelineName: web.pipeline.pipeline.pipelineName })
  .assertAtPath('pipelineExecutionSummaries.0.status', ExpectedResult.stringLikeRegexp('^Succeeded$'))
  .waitForAssertions(FIRST_RELEASE_WAIT);

const production = integ.assertions
  .httpApiCall(web.productionUrl)
  .expect(ExpectedResult.objectLike({ status: 200, body: Match.stringLikeRegexp(DEFAULT_WELCOME_PHRASE) }))
  .waitForAssertions(HTTP_WAIT);

const healthy = integ.assertions
  .httpApiCall(`${web.productionUrl}/healthcheck`)
  .expect(ExpectedResult.objectLike({ status: 200, body: Match.objectLike({ status: 'ok' }) }))
  .waitForAssertions(HTTP_WAIT);

// After the release the test listener forwards to the old color, which has no instances: the load balancer answers 503.
const idle = integ.assertions
  .httpApiCall(web.testUrl)
  .expect(ExpectedResult.objectLike({ status: 503 }))
  .waitForAssertions(HTTP_WAIT);

firstRelease.next(production).next(healthy).next(idle);
