import { Aspects, Aws, CfnResource, IAspect, Lazy, RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct, IConstruct } from 'constructs';
import { keyUsableFrom } from './key';

// The key that encrypts the library's log groups under a construct (ADR 0012): registered by the construct that owns
// a customer managed key (DeliveryPipeline, on its parent and, first come, on its stack; a pattern's state stack, on
// itself), looked up at synthesis by each log group, nearest ancestor first, never up past the group's own stack, and
// only from that stack or a stack it depends on (a reference the other way would be a cycle).
const logKeys = new WeakMap<IConstruct, kms.Key>();
const keysOpenedToLogs = new WeakSet<kms.Key>();

/**
 * Lets CloudWatch Logs of this account and region use `key` for the log groups the library creates under `scope`,
 * and adds the key policy statement that allows it: only CloudWatch Logs, only for this account's log groups
 * (the `aws:logs:arn` encryption context). A scope that already has a key keeps it.
 * @internal
 */
export function encryptLogGroupsWith(scope: IConstruct, key: kms.Key): void {
  if (!logKeys.has(scope)) {
    logKeys.set(scope, key);
  }
  if (keysOpenedToLogs.has(key)) return;
  keysOpenedToLogs.add(key);
  const stack = Stack.of(key);
  key.addToResourcePolicy(new iam.PolicyStatement({
    sid: 'AllowCloudWatchLogsForThisAccountsLogGroups',
    principals: [new iam.ServicePrincipal(`logs.${stack.region}.amazonaws.com`)],
    actions: ['kms:Encrypt*', 'kms:Decrypt*', 'kms:ReEncrypt*', 'kms:GenerateDataKey*', 'kms:Describe*'],
    resources: ['*'],
    conditions: {
      ArnLike: { 'kms:EncryptionContext:aws:logs:arn': `arn:${Aws.PARTITION}:logs:${stack.region}:${stack.account}:log-group:*` },
    },
  }));
}

/**
 * The key registered on the nearest ancestor of `construct` in its own stack, if any. The key itself may live in a
 * stack this one depends on (the patterns' state stack), which CloudFormation creates first and deletes last.
 * @internal
 */
export function logKeyFor(construct: IConstruct): kms.Key | undefined {
  const stack = Stack.of(construct);
  for (let node: IConstruct | undefined = construct; node; node = node.node.scope) {
    const key = logKeys.get(node);
    if (key && keyUsableFrom(stack, key)) return key;
    if (node === stack) return undefined;
  }
  return undefined;
}

/**
 * A log group of the library: a retention (a month unless given), deleted with the stack unless told otherwise, and
 * encrypted with the key registered for its scope (`encryptLogGroupsWith`), resolved when the app is synthesized.
 * @internal
 */
export function createLogGroup(scope: Construct, id: string, retention?: logs.RetentionDays,
  removalPolicy: RemovalPolicy = RemovalPolicy.DESTROY): logs.LogGroup {
  const group = new logs.LogGroup(scope, id, { retention: retention ?? logs.RetentionDays.ONE_MONTH, removalPolicy });
  (group.node.defaultChild as logs.CfnLogGroup).kmsKeyId = Lazy.string({ produce: () => logKeyFor(group)?.keyArn });
  return group;
}

// The Lambda functions aws-cdk-lib adds to a stack by itself, one per stack each: the S3 auto-delete-objects and the
// VPC default-security-group providers (CustomResourceProvider, no log group option), and the AwsCustomResource
// singleton (whose `logGroup` option only the first AwsCustomResource of the stack would set).
const CDK_PROVIDER_FUNCTIONS = [
  'Custom::S3AutoDeleteObjectsCustomResourceProvider/Handler',
  'Custom::VpcRestrictDefaultSGCustomResourceProvider/Handler',
  'AWS679f53fac002430cb0da5b7982bd2287/Resource',
];
const stacksWithProviderLogs = new WeakSet<Stack>();

/**
 * Gives each of aws-cdk-lib's provider functions in the stack of `scope` that has no log group of its own one from
 * `createLogGroup` (a retention, deleted with the stack), so that nothing creates a never-expiring
 * `/aws/lambda/...` group at run time that outlives the stack. Checked when the app is synthesized, so a provider
 * created after this call is covered too. The function refers to its group, so CloudFormation creates the group first
 * and deletes it last, after the provider's final (delete) invocation.
 * @internal
 */
export function logProviderFunctions(scope: IConstruct, retention?: logs.RetentionDays): void {
  const stack = Stack.of(scope);
  if (stacksWithProviderLogs.has(stack)) return;
  stacksWithProviderLogs.add(stack);
  Aspects.of(stack).add(new ProviderLogGroups(stack, retention));
}

class ProviderLogGroups implements IAspect {
  constructor(private readonly stack: Stack, private readonly retention?: logs.RetentionDays) {}

  public visit(node: IConstruct): void {
    if (node !== this.stack) return;
    for (const path of CDK_PROVIDER_FUNCTIONS) {
      const fn = this.stack.node.tryFindChild(path.split('/')[0])?.node.tryFindChild(path.split('/')[1]);
      if (!fn || !CfnResource.isCfnResource(fn) || fn.cfnResourceType !== 'AWS::Lambda::Function') continue;
      // Already given a group (here, or by the user through AwsCustomResource's `logGroup`).
      if (fn.node.scope!.node.tryFindChild('Logs') || (fn as { loggingConfig?: unknown }).loggingConfig !== undefined) continue;
      const group = createLogGroup(fn.node.scope as Construct, 'Logs', this.retention);
      fn.addPropertyOverride('LoggingConfig.LogGroup', group.logGroupName);
    }
  }
}
