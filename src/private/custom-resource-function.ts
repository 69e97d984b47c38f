import { Duration } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';

/**
 * The settings the library's custom resource handlers share (release cleanup, bundle re-encryption): ARM64, 128 MB,
 * five minutes, traced, their own role and log group, and the AWS SDK's Node.js version warning off.
 * @internal
 */
export function customResourceHandlerOptions(role: iam.IRole, logGroup: logs.ILogGroup, description: string): lambda.FunctionOptions {
  return {
    role,
    logGroup,
    description,
    timeout: Duration.minutes(5),
    memorySize: 128,
    architecture: lambda.Architecture.ARM_64,
    tracing: lambda.Tracing.ACTIVE,
    environment: { AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: '1' },
  };
}
