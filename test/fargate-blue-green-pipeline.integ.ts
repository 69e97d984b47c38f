/**
 * FargateBlueGreenPipeline, deployed: the sample service (examples/service) released to ECS Fargate blue/green with
 * the defaults and no approval, so the first release runs unattended. After the deploy the assertions check what a
 * user would: the pipeline's first execution succeeded, production answers with the welcome phrase, and the test
 * listener serves the released version too (ECS points both listeners' rules at the new tasks when it ends).
 *
 *   npx projen integ:fargate-blue-green-pipeline:snapshot   (no AWS account; `npm test` compares the snapshot)
 *   INTEG_REPO=... INTEG_CONNECTION_ARN=... npx projen integ:fargate-blue-green-pipeline:deploy
 */
import { ExpectedResult, IntegTest, Match } from '@aws-cdk/integ-tests-alpha';
import { Stack } from 'aws-cdk-lib';
import { DEFAULT_WELCOME_PHRASE } from '../examples/service/src/app';
import { Approval, FargateBlueGreenPipeline } from '../src';
import { FIRST_RELEASE_WAIT, HTTP_WAIT, integApp, integEnvironment, integSource } from './integ/integ-app';

const app = integApp();
const stack = new Stack(app, 'IntegFargateBlueGreen', { env: integEnvironment() });
const web = new FargateBlueGreenPipeline(stack, 'Web', {
  source: integSource('my-org/cdk-delivery-pipelines', ['examples/service/**']),
  dockerDirectory: 'examples/service',
  expectedPhrase: DEFAULT_WELCOME_PHRASE,
  approval: Approval.none(),
});

const integ = new IntegTest(app, 'FargateBlueGreenPipelineInteg', {
  testCases: [stack],
  diffAssets: false,
  // The stacks are deployed once; an update workflow would redeploy the previous snapshot first.
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

const testListener = integ.assertions
  .httpApiCall(`${web.testUrl}/healthcheck`)
  .expect(ExpectedResult.objectLike({ status: 200, body: Match.objectLike({ status: 'ok' }) }))
  .waitForAssertions(HTTP_WAIT);

firstRelease.next(production).next(testListener);
