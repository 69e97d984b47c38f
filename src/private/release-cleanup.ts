import { ArnFormat, CustomResource, Stack, Token } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import { acknowledge, acknowledgeStarResourceOnlyFor, nagPseudo } from './acknowledgements';
import { customResourceHandlerOptions } from './custom-resource-function';
import { createLogGroup } from './log-group';
import { pruneRedundantDependsOn } from './redundant-depends-on';
import { ReleaseCleanupFunction } from '../handlers/release-cleanup-function';

/** @internal */
export interface ReleaseAlarmCleanupProps {
  /** The release's alarm prefix: every alarm named `<alarmPrefix>-...` is deleted with the stack. */
  readonly alarmPrefix: string;
  /** @default logs.RetentionDays.ONE_MONTH */
  readonly logRetention?: logs.RetentionDays;
}

/**
 * Deletes, when the stack is deleted, the CloudWatch alarms a release created outside CloudFormation (the serverless
 * release controller's per-release alarms): a custom resource backed by `release-cleanup.lambda.ts`, allowed to
 * describe and delete the alarms named `<alarmPrefix>-*` only. ADR 0007 ("Consequences").
 *
 * Whatever creates such alarms should depend on `resource` (`node.addDependency`), so that CloudFormation deletes it
 * first and the cleanup runs after it.
 * @internal
 */
export class ReleaseAlarmCleanup extends Construct {
  /** The custom resource; its Delete deletes the alarms. */
  public readonly resource: CustomResource;
  /** The function behind it. */
  public readonly function: lambda.Function;

  constructor(scope: Construct, id: string, props: ReleaseAlarmCleanupProps) {
    super(scope, id);
    const prefix = props.alarmPrefix;
    if (!Token.isUnresolved(prefix) && !/^[^\s*?][^*?]{0,199}$/.test(prefix)) {
      throw new Error(`${this.node.path}: alarmPrefix must be 1 to 200 characters, not starting with a space, without * or ?; got ${JSON.stringify(prefix)}`);
    }
    const stack = Stack.of(this);
    const logGroup = createLogGroup(this, 'Logs', props.logRetention);
    const role = new iam.Role(this, 'Role', {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      description: `Deletes the release alarms ${prefix}-* when ${stack.stackName} is deleted`,
    });
    role.addToPolicy(new iam.PolicyStatement({ actions: ['logs:CreateLogStream', 'logs:PutLogEvents'], resources: [logGroup.logGroupArn] }));
    const alarms = stack.formatArn({ service: 'cloudwatch', resource: 'alarm', resourceName: `${prefix}-*`, arnFormat: ArnFormat.COLON_RESOURCE_NAME });
    role.addToPolicy(new iam.PolicyStatement({ actions: ['cloudwatch:DescribeAlarms', 'cloudwatch:DeleteAlarms'], resources: [alarms] }));

    this.function = new ReleaseCleanupFunction(this, 'Function', customResourceHandlerOptions(role, logGroup, `Deletes the release alarms ${prefix}-* when the stack is deleted`));
    this.resource = new CustomResource(this, 'Resource', {
      serviceToken: this.function.functionArn,
      resourceType: 'Custom::ReleaseAlarmCleanup',
      properties: { AlarmNamePrefix: prefix },
    });

    const where = `${nagPseudo(stack.region, 'Region')}:${nagPseudo(stack.account, 'AccountId')}`;
    acknowledge(role, [`AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:cloudwatch:${where}:alarm:${prefix}-*]`],
      'The release names its alarms <prefix>-<release id>-<n> at run time: the cleanup may describe and delete those alone.');
    acknowledgeStarResourceOnlyFor(role, ['xray:PutTraceSegments', 'xray:PutTelemetryRecords'],
      'xray:PutTraceSegments and PutTelemetryRecords, for tracing, have no resource-level permissions.');
    acknowledge(this.function, ['Serverless-LambdaDLQ'],
      'CloudFormation invokes the cleanup of a custom resource and waits for its answer; there is no lost event to keep.');
    pruneRedundantDependsOn(this);
    acknowledge(this.function, ['Serverless-LambdaDefaultMemorySize'],
      'The cleanup makes a few CloudWatch calls and one HTTPS request per stack deletion; 128 MB is enough.');
  }
}
