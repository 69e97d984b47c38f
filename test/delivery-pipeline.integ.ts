/**
 * DeliveryPipeline, deployed: the worked example (examples/delivery-pipeline), a static site released into a private
 * bucket behind CloudFront, smoke-tested after the release. After the deploy the assertions check that the first
 * execution succeeded and that the site answers through CloudFront with its welcome phrase and the health file the
 * build wrote.
 *
 *   npx projen integ:delivery-pipeline:snapshot   (no AWS account; `npm test` compares the snapshot)
 *   INTEG_REPO=owner/site INTEG_CONNECTION_ARN=... npx projen integ:delivery-pipeline:deploy
 *
 * The repository is a site: `site/index.html` carrying the phrase (examples/delivery-pipeline/site is one).
 */
import { ExpectedResult, IntegTest, Match } from '@aws-cdk/integ-tests-alpha';
import { DEPLOYING, FIRST_RELEASE_WAIT, HTTP_WAIT, integApp, integEnvironment } from './integ/integ-app';
import { StaticSiteStack } from '../examples/delivery-pipeline/app';

const PLACEHOLDER_CONNECTION_ARN = 'arn:aws:codeconnections:us-east-1:123456789012:connection/11111111-2222-3333-4444-555555555555';

const app = integApp();
const stack = new StaticSiteStack(app, 'IntegDeliveryPipeline', {
  env: integEnvironment(),
  repo: (DEPLOYING && process.env.INTEG_REPO) || 'my-org/my-static-site',
  connectionArn: (DEPLOYING && process.env.INTEG_CONNECTION_ARN) || PLACEHOLDER_CONNECTION_ARN,
});
const siteUrl = `https://${stack.distribution.distributionDomainName}`;

const integ = new IntegTest(app, 'DeliveryPipelineInteg', {
  testCases: [stack],
  diffAssets: false,
  stackUpdateWorkflow: false,
});

const firstRelease = integ.assertions
  .awsApiCall('CodePipeline', 'listPipelineExecutions', { pipelineName: stack.pipeline.pipeline.pipelineName })
  .assertAtPath('pipelineExecutionSummaries.0.status', ExpectedResult.stringLikeRegexp('^Succeeded$'))
  .waitForAssertions(FIRST_RELEASE_WAIT);

const page = integ.assertions
  .httpApiCall(siteUrl)
  .expect(ExpectedResult.objectLike({ status: 200, body: Match.stringLikeRegexp('Welcome to the delivery pipelines example') }))
  .waitForAssertions(HTTP_WAIT);

const health = integ.assertions
  .httpApiCall(`${siteUrl}/healthcheck.json`)
  .expect(ExpectedResult.objectLike({ status: 200, body: Match.objectLike({ status: 'ok' }) }))
  .waitForAssertions(HTTP_WAIT);

firstRelease.next(page).next(health);
