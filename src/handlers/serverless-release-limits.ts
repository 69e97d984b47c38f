/**
 * Time limits of the serverless release controller, shared by the controller (`serverless-release.lambda.ts`) and the
 * pattern that configures it (`ServerlessApiPipeline`), so that the limit checked at synth time is the one the
 * controller enforces. Plain numbers, no AWS SDK: importing them adds nothing to the library or a bundle.
 *
 * CodePipeline fails a Lambda invoke action after 24 hours, continuation tokens included ("Quotas in AWS
 * CodePipeline": "If not successful after 24 hours, CodePipeline sets the Lambda invoke action state to failed"), and
 * after 20 minutes without a reply. The controller's own limits are wall-clock times kept in its continuation token
 * and end the release, rollback included, well before that: wait at most `MAX_WAIT_LIMIT_MINUTES`, then at most
 * `ROLLBACK_LIMIT_MINUTES` for the coordinated rollback, and `SAFETY_MARGIN_MINUTES` are kept for CodePipeline's own
 * delays between invocations and the first invocation.
 */

/** CodePipeline's limit for a Lambda invoke action with continuation tokens, in minutes (24 hours). */
export const LAMBDA_INVOKE_ACTION_LIMIT_MINUTES = 24 * 60;

/** How long the coordinated rollback may take before the controller reports what production runs and gives up. */
export const ROLLBACK_LIMIT_MINUTES = 30;

/** Kept free below CodePipeline's limit: its delays between invocations, the first invocation, reporting. */
export const SAFETY_MARGIN_MINUTES = 30;

/** The longest a release may wait for its deployments (`MAX_WAIT_MINUTES`): 23 hours. */
export const MAX_WAIT_LIMIT_MINUTES = LAMBDA_INVOKE_ACTION_LIMIT_MINUTES - ROLLBACK_LIMIT_MINUTES - SAFETY_MARGIN_MINUTES;

/** The wait when `MAX_WAIT_MINUTES` is not set. */
export const DEFAULT_MAX_WAIT_MINUTES = 60;

/** Time for pre-traffic tests and the last bake on top of a configuration's traffic shift. */
export const TEST_AND_BAKE_MINUTES = 30;
