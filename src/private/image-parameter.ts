import { Names, RemovalPolicy, Stack, Stage, Token, Validations } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as cr from 'aws-cdk-lib/custom-resources';
import { Construct } from 'constructs';
import { createCustomerManagedKey } from './key';
import { encryptLogGroupsWith, logProviderFunctions } from './log-group';
import { pruneRedundantDependsOn } from './redundant-depends-on';

/**
 * Where the image a service runs comes from on every `cdk deploy` (ADR 0006).
 * @internal
 */
export interface ImageParameter {
  /** The SSM parameter's name. */
  readonly parameterName: string;
  /** The stack that creates the parameter; the service's stack depends on it. */
  readonly stack: Stack;
  /** The key of that stack, for the service's pipeline too (see `StateParameters.key`). */
  readonly key: kms.Key;
}

/**
 * Creates, in a small stack of its own that `scope`'s stack depends on, the SSM String parameter holding the image the
 * service runs, starting at `initialImage` (see `createStateParameters`).
 * @internal
 */
export function createImageParameter(scope: Construct, initialImage: string, retainKey?: boolean): ImageParameter {
  const state = createStateParameters(scope, {
    retainKey,
    stackSuffix: 'Image',
    stackDescription: `The image in production of ${scope.node.path} (written by its pipeline after each release)`,
    parameters: [{
      key: 'image',
      initialValue: initialImage,
      description: `Image in production of ${scope.node.path}; written by its pipeline after each successful release`,
    }],
  });
  return { parameterName: state.parameterNames.image, stack: state.stack, key: state.key };
}

/** One parameter of `createStateParameters`. @internal */
export interface StateParameterSpec {
  /** The last part of the parameter's name, lower case and dashes (`image`, `live-color`). */
  readonly key: string;
  /** Its value when it is first created, and again after the owning stack is deleted. */
  readonly initialValue: string;
  /** The parameter's description. */
  readonly description: string;
}

/** @internal */
export interface StateParametersOptions {
  /** The suffix of the new stack's id and name (`Image`, `State`). */
  readonly stackSuffix: string;
  readonly stackDescription: string;
  readonly parameters: StateParameterSpec[];
  /**
   * Whether the new stack's customer managed key, which the owner's pipeline uses too (`DeliveryPipelineProps.
   * artifactKey`), is kept when the stack is deleted.
   */
  readonly retainKey?: boolean;
}

/** @internal */
export interface StateParameters {
  /** The parameters' names by key. */
  readonly parameterNames: Record<string, string>;
  /** The stack that creates the parameters; the owning stack depends on it. */
  readonly stack: Stack;
  /**
   * The customer managed key of the new stack: it encrypts its provider's log group and is meant to be the owner's
   * pipeline key, so that one key (1 USD a month) serves both stacks. It lives here because the owning stack depends
   * on this one: a key in the owning stack could not encrypt a log group here without a cycle.
   */
  readonly key: kms.Key;
}

/**
 * Creates, in a small stack of its own that `scope`'s stack depends on, SSM String parameters holding what a release
 * engine writes and CloudFormation reads (the image in production, the live color).
 *
 * CloudFormation resolves an `AWS::SSM::Parameter::Value<String>` parameter when it creates a change set, so the SSM
 * parameter must exist before the owning stack is deployed: a separate stack, which `cdk deploy <stack>` deploys
 * first because it is a dependency. A custom resource (not an `AWS::SSM::Parameter`) creates each: it writes the
 * initial value only when the parameter does not exist and never again, so a change of this stack can never put an
 * older value back; deleting the stack deletes the parameters. When the owning stack is deleted alone (with what the
 * values describe), the parameters return to their initial values, so that creating it again starts from scratch.
 * @internal
 */
export function createStateParameters(scope: Construct, options: StateParametersOptions): StateParameters {
  const owner = Stack.of(scope);
  const stage = Stage.of(owner);
  if (!stage) {
    throw new Error(`${scope.node.path}: the stack must belong to an App or a Stage`);
  }
  const uniqueId = Names.uniqueId(scope);
  // The stack's name as well as the construct path: two copies of one app deployed under different stack names (one
  // per branch, say) must not share the parameters.
  const stackName = Token.isUnresolved(owner.stackName) ? undefined : owner.stackName;
  const prefix = stackName ? `/cdk-delivery-pipelines/${stackName}/${uniqueId}` : `/cdk-delivery-pipelines/${uniqueId}`;
  // Each part of the environment that is known: the key of this stack is used from the owner's (an export), and a
  // cross-stack reference needs the region of both known, or of neither.
  const env = {
    account: Token.isUnresolved(owner.account) ? undefined : owner.account,
    region: Token.isUnresolved(owner.region) ? undefined : owner.region,
  };
  const stack = new Stack(stage, `${uniqueId}${options.stackSuffix}`, {
    env,
    stackName: stackName
      ? `${stackName.slice(0, 60)}-${Names.uniqueResourceName(scope, { maxLength: 60, separator: '-' })}-${options.stackSuffix}`
      : undefined,
    description: options.stackDescription,
  });
  owner.addStackDependency(stack, 'the state parameters must exist before the stack reads them');
  const key = createCustomerManagedKey(stack, 'Key',
    `Encrypts the pipeline artifacts, notifications and logs of ${scope.node.path} and the logs of this stack`,
    options.retainKey ? RemovalPolicy.RETAIN : RemovalPolicy.DESTROY);
  encryptLogGroupsWith(stack, key);
  logProviderFunctions(stack);
  logProviderFunctions(owner);

  const parameterNames: Record<string, string> = {};
  for (const spec of options.parameters) {
    const parameterName = `${prefix}/${spec.key}`;
    parameterNames[spec.key] = parameterName;
    const id = spec.key.split('-').map((part) => part.charAt(0).toUpperCase() + part.slice(1)).join('');
    const parameterArn = stack.formatArn({ service: 'ssm', resource: 'parameter', resourceName: parameterName.slice(1) });
    const resource = new cr.AwsCustomResource(stack, `${id}Parameter`, {
      resourceType: `Custom::${id}Parameter`,
      installLatestAwsSdk: false,
      onCreate: {
        service: 'SSM',
        action: 'putParameter',
        parameters: {
          Name: parameterName,
          Value: spec.initialValue,
          Type: 'String',
          Overwrite: false,
          Description: spec.description,
        },
        physicalResourceId: cr.PhysicalResourceId.of(parameterName),
        // The parameter survived an earlier stack: keep its value, which describes what runs.
        ignoreErrorCodesMatching: 'ParameterAlreadyExists',
      },
      onDelete: {
        service: 'SSM',
        action: 'deleteParameter',
        parameters: { Name: parameterName },
        ignoreErrorCodesMatching: 'ParameterNotFound',
      },
      policy: cr.AwsCustomResourcePolicy.fromStatements([
        new iam.PolicyStatement({ actions: ['ssm:PutParameter', 'ssm:DeleteParameter'], resources: [parameterArn] }),
      ]),
    });
    acknowledgeCustomResourceProvider(stack, resource);

    const reset = new cr.AwsCustomResource(scope, `${id}ParameterReset`, {
      resourceType: `Custom::${id}ParameterReset`,
      installLatestAwsSdk: false,
      onDelete: {
        service: 'SSM',
        action: 'putParameter',
        parameters: { Name: parameterName, Value: spec.initialValue, Type: 'String', Overwrite: true },
        ignoreErrorCodesMatching: 'ParameterNotFound',
      },
      policy: cr.AwsCustomResourcePolicy.fromStatements([
        new iam.PolicyStatement({
          actions: ['ssm:PutParameter'],
          resources: [owner.formatArn({ service: 'ssm', resource: 'parameter', resourceName: parameterName.slice(1) })],
        }),
      ]),
    });
    acknowledgeCustomResourceProvider(owner, reset);
  }
  pruneRedundantDependsOn(stack);
  return { parameterNames, stack, key };
}

/** The singleton Lambda of `AwsCustomResource` is aws-cdk-lib's; what cdk-nag finds on it is acknowledged there. */
function acknowledgeCustomResourceProvider(stack: Stack, resource: Construct): void {
  const provider = stack.node.tryFindChild('AWS679f53fac002430cb0da5b7982bd2287');
  if (!provider) {
    throw new Error(`${resource.node.path}: aws-cdk-lib's AwsCustomResource provider was not found`);
  }
  Validations.of(provider).acknowledge(
    {
      id: 'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]',
      reason: 'aws-cdk-lib\'s AwsCustomResource provider writes its own logs with the AWS managed basic execution ' +
        'policy; it runs only when this stack is created or deleted.',
    },
    {
      id: 'Serverless-LambdaDefaultMemorySize',
      reason: 'aws-cdk-lib\'s AwsCustomResource provider makes one SSM call when the stack is created or deleted; ' +
        'the default 128 MB is enough.',
    },
    {
      id: 'Serverless-LambdaDLQ',
      reason: 'CloudFormation invokes the custom resource provider and waits for its answer; a failure fails the stack ' +
        'operation, so there is no lost event to keep.',
    },
    {
      id: 'Serverless-LambdaTracing',
      reason: 'aws-cdk-lib\'s AwsCustomResource provider runs twice in the life of the stack (create, delete); ' +
        'tracing it would add nothing.',
    },
  );
}
