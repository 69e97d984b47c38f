import { Aws } from 'aws-cdk-lib';

/**
 * A link into the AWS console of the stack's region (standard `aws` partition).
 * @internal
 */
export function consoleUrl(path: string): string {
  return `https://${Aws.REGION}.console.aws.amazon.com/${path}${path.includes('?') ? '&' : '?'}region=${Aws.REGION}`;
}
