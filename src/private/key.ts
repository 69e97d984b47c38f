import { Duration, NestedStack, RemovalPolicy, Stack, Token } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import { Construct, IConstruct } from 'constructs';
import { invalidInput } from './validate';

/**
 * Adds to a key's policy the statement every key of the library carries (ADR 0012): no grant on the key unless it is
 * for an AWS resource (`kms:GrantIsForAWSResource`, which an integrated service such as EBS, Lambda or ECS sets when
 * it creates a grant for its own resource) or the caller is an AWS service (`aws:PrincipalIsAWSService`). A grant is
 * a second, policy-less way to use a key; this keeps a principal allowed `kms:CreateGrant` from handing the key out.
 * @internal
 */
export function denyGrantsExceptForAwsResources(key: kms.Key): void {
  key.addToResourcePolicy(new iam.PolicyStatement({
    sid: 'DenyGrantsExceptForAwsResources',
    effect: iam.Effect.DENY,
    principals: [new iam.AnyPrincipal()],
    actions: ['kms:CreateGrant'],
    resources: ['*'],
    conditions: {
      // Both must be false for the Deny to apply (conditions of one statement are ANDed); a request without the grant
      // key (which KMS sets on every CreateGrant) counts as not for an AWS resource.
      BoolIfExists: { 'kms:GrantIsForAWSResource': 'false' },
      Bool: { 'aws:PrincipalIsAWSService': 'false' },
    },
  }));
}

/**
 * A customer managed key of the library: rotating yearly, a 7-day deletion window, `removalPolicy` on stack deletion,
 * and no grants except for AWS resources (`denyGrantsExceptForAwsResources`).
 * @internal
 */
export function createCustomerManagedKey(scope: Construct, id: string, description: string,
  removalPolicy: RemovalPolicy): kms.Key {
  const key = new kms.Key(scope, id, {
    description,
    enableKeyRotation: true,
    removalPolicy,
    pendingWindow: Duration.days(7),
  });
  denyGrantsExceptForAwsResources(key);
  return key;
}

/** The stack and, for a nested stack, the stacks it is nested in, innermost first. */
function stackChain(stack: Stack): Stack[] {
  const chain: Stack[] = [];
  for (let s: Stack | undefined = stack; s; s = NestedStack.isNestedStack(s) ? s.nestedStackParent : undefined) chain.push(s);
  return chain;
}

function dependsOn(stack: Stack, target: Stack, seen: Set<Stack>): boolean {
  if (seen.has(stack)) return false;
  seen.add(stack);
  return stack.dependencies.some((dependency) => dependency === target || dependsOn(dependency, target, seen));
}

/**
 * Whether a resource of `stack` may refer to `key` without a cycle: the key is in that stack, in a stack it is
 * nested in, or in a stack one of those depends on (directly or not), which CloudFormation creates first and deletes
 * last.
 * @internal
 */
export function keyUsableFrom(stack: Stack, key: IConstruct): boolean {
  const keyStack = Stack.of(key);
  return stackChain(stack).some((s) => s === keyStack || dependsOn(s, keyStack, new Set()));
}

/**
 * Refuses a key the construct's stack could not use (see `keyUsableFrom`) or that is in another account or region
 * (KMS keys are regional; an account or region known on one side only cannot be compared, so it is refused too).
 * @internal
 */
export function checkKeyUsable(scope: IConstruct, property: string, key: kms.Key | undefined): void {
  if (!key) return;
  const stack = Stack.of(scope);
  const keyStack = Stack.of(key);
  const sameValue = (a: string, b: string) => (Token.isUnresolved(a) && Token.isUnresolved(b)) || (!Token.isUnresolved(a) && a === b);
  const envOf = (s: Stack) => `${Token.isUnresolved(s.account) ? 'any account' : s.account}/${Token.isUnresolved(s.region) ? 'any region' : s.region}`;
  if (!sameValue(keyStack.account, stack.account) || !sameValue(keyStack.region, stack.region)) {
    throw invalidInput(scope, property, key.node.path,
      `must be in the account and region of stack '${stack.node.path}' (${envOf(stack)}); its stack '${keyStack.node.path}' is in ${envOf(keyStack)}`);
  }
  if (keyUsableFrom(stack, key)) return;
  const hint = stackChain(keyStack).some((s) => keyUsableFrom(s, scope))
    ? `the key's stack '${keyStack.node.path}' depends on this one, so that would be a cycle: create the key here or in a stack both depend on`
    : `call addDependency on stack '${stackChain(stack).pop()!.node.path}' with stack '${keyStack.node.path}' first`;
  throw invalidInput(scope, property, key.node.path, `must be in stack '${stack.node.path}' or in a stack it depends on; ${hint}`);
}
