/**
 * ServerlessApiPipeline, deployed: the sample service's routes as Lambda functions behind API Gateway, released with
 * the default canary (10 % for 5 minutes). After the deploy the assertions check that the pipeline's first execution
 * succeeded, that the API answers with the welcome phrase, and that every route serves the released code (until the
 * first release each answers 503 `not released yet`).
 *
 *   npx projen integ:serverless-api-pipeline:snapshot   (no AWS account; `npm test` compares the snapshot)
 *   INTEG_REPO=... INTEG_CONNECTION_ARN=... npx projen integ:serverless-api-pipeline:deploy
 */
import { ExpectedResult, IntegTest, Match } from '@aws-cdk/integ-tests-alpha';
import { Duration, Stack } from 'aws-cdk-lib';
import { DEFAULT_WELCOME_PHRASE } from '../examples/service/src/app';
import { ServerlessApiPipeline } from '../src';
import { FIRST_RELEASE_WAIT, HTTP_WAIT, integApp, integEnvironment, integSource } from './integ/integ-app';

const app = integApp();
const stack = new Stack(app, 'IntegServerlessApi', { env: integEnvironment() });
const api = new ServerlessApiPipeline(stack, 'Api', {
  source: integSource('my-org/cdk-delivery-pipelines', ['examples/service/**']),
  sourceDirectory: 'examples/service',
  routes: [
    { route: 'GET /', entry: 'src/lambda.ts' },
    { route: 'GET /healthcheck', entry: 'src/lambda.ts' },
    { route: 'GET /sleep/{secs}', entry: 'src/lambda.ts', smokeTestPath: '/sleep/0', timeout: Duration.seconds(35) },
  ],
  expectedPhrase: DEFAULT_WELCOME_PHRASE,
});

const integ = new IntegTest(app, 'ServerlessApiPipelineInteg', {
  testCases: [stack],
  diffAssets: false,
  stackUpdateWorkflow: false,
});

const firstRelease = integ.assertions
  .awsApiCall('CodePipeline', 'listPipelineExecutions', { pipelineName: api.pipeline.pipeline.pipelineName })
  .assertAtPath('pipelineExecutionSummaries.0.status', ExpectedResult.stringLikeRegexp('^Succeeded$'))
  .waitForAssertions(FIRST_RELEASE_WAIT);

const welcome = integ.assertions
  .httpApiCall(api.url)
  .expect(ExpectedResult.objectLike({ status: 200, body: Match.stringLikeRegexp(DEFAULT_WELCOME_PHRASE) }))
  .waitForAssertions(HTTP_WAIT);

// A route with a path parameter: its function was released too (the bootstrap code answers 503).
const sleep = integ.assertions
  .httpApiCall(`${api.url}sleep/0`)
  .expect(ExpectedResult.objectLike({ status: 200 }))
  .waitForAssertions(HTTP_WAIT);

firstRelease.next(welcome).next(sleep);
