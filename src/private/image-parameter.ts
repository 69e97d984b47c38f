import { Names, Stack, Stage, Token, Validations } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as cr from 'aws-cdk-lib/custom-resources';
import { Construct } from 'constructs';
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
}

/**
 * Creates, in a small stack of its own that `scope`'s stack depends on, the SSM String parameter holding the image the
 * service runs, starting at `initialImage`.
 *
 * CloudFormation resolves an `AWS::SSM::Parameter::Value<String>` parameter when it creates a change set, so the SSM
 * parameter must exist before the service's stack is deployed: a separate stack, which `cdk deploy <stack>` deploys
 * first because it is a dependency. A custom resource (not an `AWS::SSM::Parameter`) creates it: it writes the initial
 * image only when the parameter does not exist and never again, so a change of this stack can never put an older image
 * back; deleting the stack deletes the parameter.
 * @internal
 */
export function createImageParameter(scope: Construct, initialImage: string): ImageParameter {
  const owner = Stack.of(scope);
  const stage = Stage.of(owner);
  if (!stage) {
    throw new Error(`${scope.node.path}: the stack must belong to an App or a Stage`);
  }
  const uniqueId = Names.uniqueId(scope);
  // The stack's name as well as the construct path: two copies of one app deployed under different stack names (one
  // per branch, say) must not share the parameter.
  const stackName = Token.isUnresolved(owner.stackName) ? undefined : owner.stackName;
  const parameterName = stackName
    ? `/cdk-delivery-pipelines/${stackName}/${uniqueId}/image`
    : `/cdk-delivery-pipelines/${uniqueId}/image`;
  const env = Token.isUnresolved(owner.account) || Token.isUnresolved(owner.region)
    ? undefined
    : { account: owner.account, region: owner.region };
  const stack = new Stack(stage, `${uniqueId}Image`, {
    env,
    stackName: stackName
      ? `${stackName.slice(0, 60)}-${Names.uniqueResourceName(scope, { maxLength: 60, separator: '-' })}-Image`
      : undefined,
    description: `The image in production of ${scope.node.path} (written by its pipeline after each release)`,
  });
  owner.addStackDependency(stack, 'the image parameter must exist before the stack reads it');

  const parameterArn = stack.formatArn({ service: 'ssm', resource: 'parameter', resourceName: parameterName.slice(1) });
  const resource = new cr.AwsCustomResource(stack, 'ImageParameter', {
    resourceType: 'Custom::ImageParameter',
    installLatestAwsSdk: false,
    onCreate: {
      service: 'SSM',
      action: 'putParameter',
      parameters: {
        Name: parameterName,
        Value: initialImage,
        Type: 'String',
        Overwrite: false,
        Description: `Image in production of ${scope.node.path}; written by its pipeline after each successful release`,
      },
      physicalResourceId: cr.PhysicalResourceId.of(parameterName),
      // The parameter survived an earlier stack: keep its value, which is the image in production.
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
  pruneRedundantDependsOn(stack);

  // When the service's stack is deleted alone, its repository (and the image in the parameter) goes with it: the
  // parameter returns to the placeholder, so that creating the stack again starts from an image that exists.
  const reset = new cr.AwsCustomResource(scope, 'ImageParameterReset', {
    resourceType: 'Custom::ImageParameterReset',
    installLatestAwsSdk: false,
    onDelete: {
      service: 'SSM',
      action: 'putParameter',
      parameters: { Name: parameterName, Value: initialImage, Type: 'String', Overwrite: true },
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
  return { parameterName, stack };
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
