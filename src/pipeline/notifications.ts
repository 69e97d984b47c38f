import { Names, RemovalPolicy, Token } from 'aws-cdk-lib';
import * as chatbot from 'aws-cdk-lib/aws-chatbot';
import * as codepipeline from 'aws-cdk-lib/aws-codepipeline';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { acknowledgeKeyWildcardsOnlyFor } from '../private/acknowledgements';
import { consoleUrl } from '../private/console';
import { createEncryptedTopic } from '../private/encrypted-topic';
import { checkEmail, invalidInput } from '../private/validate';

/**
 * Who hears about a pipeline, and how.
 */
export interface PipelineNotificationsOptions {
  /**
   * Email addresses subscribed to the notification topic. Each address confirms its subscription once.
   *
   * @default - no email subscription
   */
  readonly emails?: string[];

  /**
   * The Slack workspace (team) ID, like `T0123ABCD`, for notifications through AWS Chatbot.
   *
   * The workspace must be authorized for AWS Chatbot in the console once. Needs `slackChannelId`.
   *
   * @default - no Slack notifications
   */
  readonly slackWorkspaceId?: string;

  /**
   * The Slack channel ID, like `C0123ABCD`. Needs `slackWorkspaceId`.
   *
   * @default - no Slack notifications
   */
  readonly slackChannelId?: string;

  /**
   * An existing AWS Chatbot Slack channel to notify, instead of `slackWorkspaceId` and `slackChannelId`.
   *
   * @default - no Slack notifications, unless `slackWorkspaceId` and `slackChannelId` are set
   */
  readonly slackChannel?: chatbot.ISlackChannelConfiguration;
}

/**
 * Properties of `PipelineNotifications`.
 */
export interface PipelineNotificationsProps extends PipelineNotificationsOptions {
  /**
   * The pipeline to report on.
   */
  readonly pipeline: codepipeline.IPipeline;

  /**
   * The key that encrypts the topic.
   *
   * @default - a new customer managed key with rotation
   */
  readonly encryptionKey?: kms.IKey;

  /**
   * What happens to the new key when the stack is deleted.
   *
   * @default RemovalPolicy.DESTROY - deleted after the minimum 7-day waiting period
   */
  readonly removalPolicy?: RemovalPolicy;

  /**
   * Whether the topic gets a short message when an execution fails or succeeds. `DeliveryPipeline` turns this off
   * when its `DeliveryMetrics` sends the readable release notifications instead (one message per event, no duplicates).
   *
   * @default true
   */
  readonly executionMessages?: boolean;
}

/**
 * Pipeline events in readable text on one encrypted, SSL-only SNS topic (for email and any other subscriber), and
 * optionally in a Slack channel through AWS Chatbot.
 *
 * Reports: the pipeline failed, the pipeline succeeded, a human approval is waiting. Releases add their own events
 * (a deployment rolled back, ...) with `notifyOnEvent()`.
 */
export class PipelineNotifications extends Construct {
  /** The topic that receives every notification in readable text. */
  public readonly topic: sns.ITopic;

  /** The key that encrypts the topic. */
  public readonly encryptionKey: kms.IKey;

  /**
   * Where notifications go that EventBridge could not publish to the topic, or SNS could not deliver to a subscriber;
   * kept 14 days.
   */
  public readonly deadLetterQueue: sqs.IQueue;

  /** The Slack channel, when one was asked for. */
  public readonly slackChannel?: chatbot.ISlackChannelConfiguration;

  private readonly pipeline: codepipeline.IPipeline;

  constructor(scope: Construct, id: string, props: PipelineNotificationsProps) {
    super(scope, id);
    this.pipeline = props.pipeline;
    this.validate(props);

    const { topic, key, deadLetterQueue } = createEncryptedTopic(this, {
      purpose: 'pipeline notifications',
      publisherService: 'events',
      emails: props.emails,
      encryptionKey: props.encryptionKey,
      removalPolicy: props.removalPolicy,
    });
    this.topic = topic;
    this.encryptionKey = key;
    this.deadLetterQueue = deadLetterQueue;

    if (props.executionMessages !== false) {
      const pipelineName = events.EventField.fromPath('$.detail.pipeline');
      const executionId = events.EventField.fromPath('$.detail.execution-id');
      const executionUrl = consoleUrl(`codesuite/codepipeline/pipelines/${pipelineName}/executions/${executionId}/timeline`);
      this.notifyOnEvent('Failed', {
        source: ['aws.codepipeline'],
        detailType: ['CodePipeline Pipeline Execution State Change'],
        detail: { state: ['FAILED'] },
      }, events.RuleTargetInput.fromText(
        `FAILED: pipeline ${pipelineName} failed in execution ${executionId}. Nothing after the failed action ran. Details: ${executionUrl}`));
      this.notifyOnEvent('Succeeded', {
        source: ['aws.codepipeline'],
        detailType: ['CodePipeline Pipeline Execution State Change'],
        detail: { state: ['SUCCEEDED'] },
      }, events.RuleTargetInput.fromText(
        `SUCCEEDED: pipeline ${pipelineName} released execution ${executionId}. Details: ${executionUrl}`));
    }

    if (props.slackChannel) {
      this.slackChannel = props.slackChannel;
    } else if (props.slackWorkspaceId && props.slackChannelId) {
      this.slackChannel = new chatbot.SlackChannelConfiguration(this, 'Slack', {
        slackChannelConfigurationName: Names.uniqueResourceName(this, { maxLength: 128, separator: '-' }),
        slackWorkspaceId: props.slackWorkspaceId,
        slackChannelId: props.slackChannelId,
        // What anyone in the channel may do through Chatbot: read the pipeline, nothing else.
        guardrailPolicies: [iam.ManagedPolicy.fromAwsManagedPolicyName('AWSCodePipeline_ReadOnlyAccess')],
      });
    }
    if (this.slackChannel) {
      // Chatbot renders CodePipeline's own notification events natively: target the channel directly.
      this.pipeline.notifyOn('SlackNotifications', this.slackChannel, {
        events: [
          codepipeline.PipelineNotificationEvents.PIPELINE_EXECUTION_FAILED,
          codepipeline.PipelineNotificationEvents.PIPELINE_EXECUTION_SUCCEEDED,
          codepipeline.PipelineNotificationEvents.MANUAL_APPROVAL_NEEDED,
        ],
      });
    }
  }

  /**
   * Publishes a readable message to the topic whenever a manual approval of this pipeline starts waiting.
   *
   * @param stageName the stage of the approval action
   * @param actionName the approval action
   * @param reviewUrl what the approver should look at
   */
  public notifyOnApprovalNeeded(stageName: string, actionName: string, reviewUrl?: string): events.Rule {
    const pipelineName = events.EventField.fromPath('$.detail.pipeline');
    const approveUrl = consoleUrl(`codesuite/codepipeline/pipelines/${pipelineName}/view`);
    const review = reviewUrl ? ` Review the new version at ${reviewUrl} first.` : '';
    return this.notifyOnEvent(`Approval${stageName}${actionName}`, {
      source: ['aws.codepipeline'],
      detailType: ['CodePipeline Action Execution State Change'],
      detail: { stage: [stageName], action: [actionName], state: ['STARTED'] },
    }, events.RuleTargetInput.fromText(
      `APPROVAL NEEDED: pipeline ${pipelineName} waits for approval in stage ${stageName} (action ${actionName}).${review} ` +
      `Approve or reject at ${approveUrl} - rejecting, or letting the approval time out, stops the release.`));
  }

  /**
   * Publishes a message to the topic for every event of this pipeline's account and region that matches the pattern.
   *
   * Events of `aws.codepipeline` are narrowed to this pipeline.
   *
   * @param id the construct id of the rule
   * @param pattern the EventBridge event pattern
   * @param message the text to publish, usually built with `events.EventField`
   */
  public notifyOnEvent(id: string, pattern: events.EventPattern, message: events.RuleTargetInput): events.Rule {
    const isPipelineEvent = pattern.source?.length === 1 && pattern.source[0] === 'aws.codepipeline';
    const rule = new events.Rule(this, `${id}Rule`, {
      description: `Notifies ${this.node.path}: ${id}`,
      eventPattern: isPipelineEvent
        ? { ...pattern, resources: [this.pipeline.pipelineArn] }
        : pattern,
      // A role of this account publishes (no service-principal grant that rules of other accounts could use).
      targets: [new targets.SnsTopic(this.topic, { message, deadLetterQueue: this.deadLetterQueue, authorizeUsingRole: true })],
    });
    const role = rule.node.tryFindChild('EventsRole');
    if (role) {
      acknowledgeKeyWildcardsOnlyFor(role, this.encryptionKey,
        'The rule\'s role encrypts what it publishes with the notification topic\'s own key only (the statement names ' +
        'that key); kms:GenerateDataKey* covers the data-key variants SNS uses.');
    }
    return rule;
  }

  private validate(props: PipelineNotificationsProps): void {
    props.emails?.forEach((email) => checkEmail(this, 'emails', email));
    const duplicate = props.emails?.find((email, i) => props.emails!.indexOf(email) !== i);
    if (duplicate !== undefined) {
      throw invalidInput(this, 'emails', duplicate, 'must list each address once');
    }
    const workspace = props.slackWorkspaceId;
    const channel = props.slackChannelId;
    if ((workspace === undefined) !== (channel === undefined)) {
      throw invalidInput(this, workspace === undefined ? 'slackWorkspaceId' : 'slackChannelId', undefined,
        'must be set together with ' + (workspace === undefined ? "'slackChannelId'" : "'slackWorkspaceId'"));
    }
    if (props.slackChannel && workspace !== undefined) {
      throw invalidInput(this, 'slackChannel', props.slackChannel.slackChannelConfigurationName,
        "cannot be combined with 'slackWorkspaceId' and 'slackChannelId'");
    }
    if (workspace !== undefined && !Token.isUnresolved(workspace) && !/^[0-9A-Z]{1,255}$/.test(workspace)) {
      throw invalidInput(this, 'slackWorkspaceId', workspace, 'must be a Slack workspace ID like T0123ABCD (upper-case letters and digits)');
    }
    if (channel !== undefined && !Token.isUnresolved(channel) && !/^[A-Za-z0-9]{1,255}$/.test(channel)) {
      throw invalidInput(this, 'slackChannelId', channel, 'must be a Slack channel ID like C0123ABCD (letters and digits)');
    }
  }
}
