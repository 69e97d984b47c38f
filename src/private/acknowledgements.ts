import { CfnResource, IAspect, Stack, Token, Validations } from 'aws-cdk-lib';
import * as codebuild from 'aws-cdk-lib/aws-codebuild';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { IConstruct } from 'constructs';

/**
 * How cdk-nag writes a reference to a resource in a finding: `<LogicalId>` or `<LogicalId.Attribute>`.
 * @internal
 */
export function nagRef(construct: IConstruct, attribute?: string): string {
  const resource = CfnResource.isCfnResource(construct) ? construct : construct.node.defaultChild as CfnResource;
  const logicalId = Stack.of(resource).resolve(resource.logicalId);
  return attribute ? `<${logicalId}.${attribute}>` : `<${logicalId}>`;
}

/** A region or account as cdk-nag prints it: the literal, or the pseudo parameter. @internal */
function nagPseudo(value: string, pseudo: string): string {
  return Token.isUnresolved(value) ? `<AWS::${pseudo}>` : value;
}

/**
 * Acknowledges findings on a construct, all with one reason.
 * @internal
 */
export function acknowledge(scope: IConstruct, findings: string[], reason: string): void {
  Validations.of(scope).acknowledge(...findings.map((id) => ({ id, reason })));
}

/**
 * Acknowledges, on each IAM policy of a pipeline (its role, its action roles) and of its build, the wildcards that
 * aws-cdk-lib's artifact grants write: object actions on this pipeline's own artifact bucket, and data-key actions
 * on its own key. An aspect, so that actions a pattern or user adds later are covered too.
 * @internal
 */
export class PipelineGrantAcknowledger implements IAspect {
  constructor(
    private readonly bucket: s3.IBucket,
    private readonly project: codebuild.IProject) {}

  public visit(node: IConstruct): void {
    if (!(node instanceof iam.Policy)) {
      return;
    }
    acknowledge(node, [
      'AwsSolutions-IAM5[Action::s3:GetObject*]',
      'AwsSolutions-IAM5[Action::s3:GetBucket*]',
      'AwsSolutions-IAM5[Action::s3:List*]',
      'AwsSolutions-IAM5[Action::s3:DeleteObject*]',
      'AwsSolutions-IAM5[Action::s3:Abort*]',
      `AwsSolutions-IAM5[Resource::${nagRef(this.bucket, 'Arn')}/*]`,
    ], 'aws-cdk-lib grants the pipeline and its actions read/write on the objects of this pipeline\'s own artifact ' +
      'bucket only (Resource is that bucket\'s ARN and its /*); the wildcards are the object-level action families ' +
      'CodePipeline needs to pass artifacts between stages.');
    acknowledge(node, [
      'AwsSolutions-IAM5[Action::kms:ReEncrypt*]',
      'AwsSolutions-IAM5[Action::kms:GenerateDataKey*]',
    ], 'aws-cdk-lib grants encrypt/decrypt on this pipeline\'s own artifact key only (Resource is that key\'s ARN); ' +
      'the wildcards cover the data-key variants S3 uses with SSE-KMS.');
    if (this.project.role && node.node.scope === this.project.role) {
      const stack = Stack.of(node);
      const region = nagPseudo(stack.region, 'Region');
      const account = nagPseudo(stack.account, 'AccountId');
      const project = nagRef(this.project);
      acknowledge(node, [
        `AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:logs:${region}:${account}:log-group:/aws/codebuild/${project}:*]`,
        `AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:codebuild:${region}:${account}:report-group/${project}-*]`,
      ], 'CodeBuild\'s own permissions for this one project: its default log streams (/aws/codebuild/<project>:*) and ' +
        'the report groups a buildspec may create under the project\'s name (<project>-*); both are scoped to this project.');
    }
  }
}
