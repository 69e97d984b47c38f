import * as logs from 'aws-cdk-lib/aws-logs';
import { BuildSecret } from '../pipeline/build-step';
import { InfrastructureUpdate } from '../pipeline/infrastructure-update';
import { PipelineNotificationsOptions } from '../pipeline/notifications';
import { PipelineSource } from '../source/pipeline-source';

/**
 * What every pattern of this library takes: where the service's code comes from, how its build runs the tests, who
 * hears about its pipeline and its alarms, how long its logs are kept and what `cdk destroy` leaves behind.
 * `FargateBlueGreenPipelineProps`, `ServerlessApiPipelineProps` and `Ec2BlueGreenPipelineProps` extend it.
 */
export interface ServicePipelineProps {
  /** Where the revisions come from: the repository that holds the service's code and its tests. */
  readonly source: PipelineSource;

  /**
   * Commands that install and run the unit tests before the pattern's build goes on, in the pattern's source
   * directory (`dockerDirectory`, `sourceDirectory` or `appDirectory`). A failing command stops the build. JUnit XML
   * files written to `reports/junit` under that directory appear as test reports.
   *
   * @default - `npm ci` and `npm run test --if-present` when that directory has a `package.json`, otherwise none
   */
  readonly testCommands?: string[];

  /**
   * Plain environment variables of the build.
   *
   * @default - none
   */
  readonly buildEnvironmentVariables?: { [name: string]: string };

  /**
   * Secrets the build sees as environment variables (from SSM Parameter Store or Secrets Manager).
   *
   * @default - none
   */
  readonly buildSecrets?: { [name: string]: BuildSecret };

  /**
   * How long the logs the pattern creates are kept: the service's (containers, functions or instances), the API's
   * access logs and the release functions'.
   *
   * @default logs.RetentionDays.ONE_MONTH
   */
  readonly logRetention?: logs.RetentionDays;

  /**
   * Who hears about the pipeline (failures, successes, approvals).
   *
   * @default - a new encrypted topic without subscriptions
   */
  readonly notifications?: PipelineNotificationsOptions;

  /**
   * Deploy the CDK app of the repository from the same push, before the release (`InfrastructureUpdate.cdkApp()`):
   * synthesized without deploy permissions, checked for permission broadening, deployed through the account's
   * bootstrap roles. Needs the stack's account and region.
   *
   * @default - none: infrastructure changes are deployed with `cdk deploy`
   */
  readonly infrastructure?: InfrastructureUpdate;

  /**
   * Email addresses subscribed to the alarm topic.
   *
   * @default - no subscription
   */
  readonly alarmEmails?: string[];

  /**
   * Keep the pipeline's artifacts, what the releases shipped from them (the serverless pattern's route bundles, the
   * EC2 pattern's release bundles) and their key when the stack is deleted.
   *
   * @default false - `cdk destroy` removes everything
   */
  readonly retainArtifacts?: boolean;
}
