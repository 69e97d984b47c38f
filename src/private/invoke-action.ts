import * as codepipeline from 'aws-cdk-lib/aws-codepipeline';
import * as actions from 'aws-cdk-lib/aws-codepipeline-actions';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { Construct } from 'constructs';
import { acknowledge, acknowledgeStarResourceOnlyFor, nagRef } from './acknowledgements';

/**
 * Options of `ReleaseInvokeAction`.
 * @internal
 */
export interface ReleaseInvokeActionProps extends actions.LambdaInvokeActionProps {
  /** What the function is, for the acknowledgement: `release controller`. */
  readonly purpose: string;
}

/**
 * CodePipeline's Lambda invoke action for a release's own function; it acknowledges, on the action role aws-cdk-lib
 * creates for it, the two wildcards of that role's grant: the function's versions, and lambda:ListFunctions.
 * @internal
 */
export class ReleaseInvokeAction extends actions.LambdaInvokeAction {
  constructor(private readonly invokeProps: ReleaseInvokeActionProps) {
    super(invokeProps);
  }

  protected bound(scope: Construct, stage: codepipeline.IStage, options: codepipeline.ActionBindOptions): codepipeline.ActionConfig {
    const config = super.bound(scope, stage, options);
    const fn = nagRef(this.invokeProps.lambda as lambda.IFunction, 'Arn');
    if (fn) {
      acknowledge(options.role, [`AwsSolutions-IAM5[Resource::${fn}:*]`],
        `CodePipeline's invoke action may invoke the one ${this.invokeProps.purpose} and its versions (aws-cdk-lib).`);
      acknowledgeStarResourceOnlyFor(options.role, ['lambda:ListFunctions'],
        'lambda:ListFunctions, which aws-cdk-lib grants CodePipeline\'s Lambda invoke action, has no resource-level permissions.');
    }
    return config;
  }
}
