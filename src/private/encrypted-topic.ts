import { Annotations, Aws, Duration, RemovalPolicy, Validations } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as subs from 'aws-cdk-lib/aws-sns-subscriptions';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { denyGrantsExceptForAwsResources } from './key';

/** @internal */
export interface EncryptedTopicOptions {
  /** What the topic is for, in the key's description. */
  readonly purpose: string;
  /** The AWS service that publishes to the topic and must use its key (`events`, `cloudwatch`). */
  readonly publisherService: string;
  /** Email subscriptions. @default - none */
  readonly emails?: string[];
  /** A key to use instead of a new one. @default - a new key with rotation */
  readonly encryptionKey?: kms.IKey;
  /** What happens to a new key when the stack is deleted. @default RemovalPolicy.DESTROY */
  readonly removalPolicy?: RemovalPolicy;
}

/** @internal */
export interface EncryptedTopic {
  readonly topic: sns.Topic;
  readonly key: kms.IKey;
  readonly deadLetterQueue: sqs.Queue;
}

/**
 * An SNS topic encrypted with a customer managed key that one AWS service of this account may publish with,
 * SSL only, with email subscriptions and a dead-letter queue for what cannot be delivered.
 * @internal
 */
export function createEncryptedTopic(scope: Construct, options: EncryptedTopicOptions): EncryptedTopic {
  const key = options.encryptionKey ?? newKey(scope, options);
  if (!(key instanceof kms.Key)) {
    Annotations.of(scope).addWarningV2('cdk-delivery-pipelines:imported-topic-key',
      `The key of the ${options.purpose} is imported: its key policy must let ${options.publisherService}.amazonaws.com ` +
      'use kms:Decrypt and kms:GenerateDataKey*, or messages are dropped.');
  }
  const topic = new sns.Topic(scope, 'Topic', { masterKey: key, enforceSSL: true });
  // The SSL-only topic policy replaces SNS's default policy: the publishing service needs its own Allow, limited to
  // this account, and the key must let it encrypt. (EventBridge publishes through a role of this account instead.)
  const publisher = new iam.ServicePrincipal(`${options.publisherService}.amazonaws.com`);
  if (options.publisherService !== 'events') {
    topic.addToResourcePolicy(new iam.PolicyStatement({
      sid: `Allow${options.publisherService.replace(/^./, (c) => c.toUpperCase())}ToPublish`,
      principals: [publisher],
      actions: ['sns:Publish'],
      resources: [topic.topicArn],
      conditions: { StringEquals: { 'aws:SourceAccount': Aws.ACCOUNT_ID } },
    }));
    // Only through SNS topics of this account: SNS encrypts each message with the topic's ARN as encryption context
    // (the key may also protect other data, e.g. a pipeline's artifacts). Naming the topic itself would make the key
    // and the topic reference each other.
    key.addToResourcePolicy(new iam.PolicyStatement({
      sid: `Allow${options.publisherService.replace(/^./, (c) => c.toUpperCase())}ToUseKeyForTopics`,
      principals: [publisher],
      actions: ['kms:Decrypt', 'kms:GenerateDataKey*'],
      resources: ['*'],
      conditions: { ArnLike: { 'kms:EncryptionContext:aws:sns:topicArn': `arn:${Aws.PARTITION}:sns:${Aws.REGION}:${Aws.ACCOUNT_ID}:*` } },
    }));
  }

  const deadLetterQueue = createDeadLetterQueue(scope, options.purpose);
  for (const email of options.emails ?? []) {
    topic.addSubscription(new subs.EmailSubscription(email, { deadLetterQueue }));
  }
  return { topic, key, deadLetterQueue };
}

/**
 * An encrypted, SSL-only queue that keeps for 14 days what could not be delivered or processed.
 * @internal
 */
export function createDeadLetterQueue(scope: Construct, purpose: string): sqs.Queue {
  const queue = new sqs.Queue(scope, 'DeadLetterQueue', {
    encryption: sqs.QueueEncryption.SQS_MANAGED,
    enforceSSL: true,
    retentionPeriod: Duration.days(14),
  });
  const reason = `This queue is itself the dead-letter queue of the ${purpose}; a dead-letter queue of its ` +
    'own would only move the same undeliverable messages once more.';
  Validations.of(queue).acknowledge(
    { id: 'AwsSolutions-SQS3', reason },
    { id: 'Serverless-SQSRedrivePolicy', reason },
  );
  return queue;
}

function newKey(scope: Construct, options: EncryptedTopicOptions): kms.Key {
  const key = new kms.Key(scope, 'Key', {
    description: `Encrypts the ${options.purpose} of ${scope.node.path}`,
    enableKeyRotation: true,
    removalPolicy: options.removalPolicy ?? RemovalPolicy.DESTROY,
    pendingWindow: Duration.days(7),
  });
  denyGrantsExceptForAwsResources(key);
  return key;
}
