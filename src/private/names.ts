import { Names, Stack, Token } from 'aws-cdk-lib';
import { Construct } from 'constructs';

/**
 * A physical name unique per stack name and construct path, known at synth time (so that a role can name the resource
 * before it exists, without a dependency cycle): at most `stackPrefixLength` characters of the stack's name, then
 * the construct's path and hash (at most 60 characters).
 * @internal
 */
export function uniquePhysicalName(scope: Construct, stackPrefixLength: number): string {
  const stackName = Stack.of(scope).stackName;
  const unique = Names.uniqueResourceName(scope, { maxLength: 60, separator: '-' });
  return Token.isUnresolved(stackName) || unique.startsWith(`${stackName}-`)
    ? unique
    : `${stackName.slice(0, stackPrefixLength)}-${unique}`;
}
