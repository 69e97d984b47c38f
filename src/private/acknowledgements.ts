import { Aspects, CfnResource, IAspect, Stack, Token, Validations } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { IConstruct } from 'constructs';

/**
 * How cdk-nag writes a reference to a resource in a finding: `<LogicalId>` or `<LogicalId.Attribute>`.
 * @internal
 */
export function nagRef(construct: IConstruct, attribute?: string): string | undefined {
  const resource = CfnResource.isCfnResource(construct) ? construct : construct.node.defaultChild;
  if (!resource || !CfnResource.isCfnResource(resource)) {
    // An imported resource: cdk-nag prints its literal ARN, which the user acknowledges if it is theirs to accept.
    return undefined;
  }
  const logicalId = Stack.of(resource).resolve(resource.logicalId);
  return attribute ? `<${logicalId}.${attribute}>` : `<${logicalId}>`;
}

/** The wildcard action families aws-cdk-lib's bucket read/write grants write. @internal */
export const S3_OBJECT_ACTION_FINDINGS = [
  'AwsSolutions-IAM5[Action::s3:GetObject*]',
  'AwsSolutions-IAM5[Action::s3:GetBucket*]',
  'AwsSolutions-IAM5[Action::s3:List*]',
  'AwsSolutions-IAM5[Action::s3:DeleteObject*]',
  'AwsSolutions-IAM5[Action::s3:Abort*]',
];

/**
 * The findings of an aws-cdk-lib read/write grant on one bucket: its object action families and `<bucket>/*`.
 * @internal
 */
export function bucketGrantFindings(bucket: IConstruct): string[] {
  const ref = nagRef(bucket, 'Arn');
  return ref ? [...S3_OBJECT_ACTION_FINDINGS, `AwsSolutions-IAM5[Resource::${ref}/*]`] : [...S3_OBJECT_ACTION_FINDINGS];
}

const WILDCARD_S3 = /^s3:(GetObject|GetBucket|List|DeleteObject|Abort)\*$/;
const WILDCARD_KMS = /^kms:(ReEncrypt|GenerateDataKey)\*$/;

/**
 * Whether every statement of a policy that uses a wildcard action of the given kind names only the given resources.
 * @internal
 */
export function wildcardsOnlyOn(policy: iam.Policy, kind: 's3' | 'kms', allowed: string[]): boolean {
  const stack = Stack.of(policy);
  const allowedResolved = allowed.map((a) => JSON.stringify(stack.resolve(a)));
  const pattern = kind === 's3' ? WILDCARD_S3 : WILDCARD_KMS;
  const statements: any[] = stack.resolve(policy.document.toJSON())?.Statement ?? [];
  const relevant = statements.filter((st) => ([] as string[]).concat(st.Action ?? []).some((a) => pattern.test(a)));
  return relevant.length > 0 && relevant.every((st) =>
    ([] as unknown[]).concat(st.Resource ?? []).every((r) => allowedResolved.includes(JSON.stringify(r))));
}

/** A region or account as cdk-nag prints it: the literal, or the pseudo parameter. @internal */
export function nagPseudo(value: string, pseudo: string): string {
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
 * Acknowledges, on the role of a CodeBuild project, the permissions CodeBuild writes for that one project: its default
 * log streams and the report groups a buildspec may create under the project's name.
 * @internal
 */
export function acknowledgeCodeBuildDefaults(role: IConstruct, project: IConstruct): void {
  const stack = Stack.of(project);
  const region = nagPseudo(stack.region, 'Region');
  const account = nagPseudo(stack.account, 'AccountId');
  const ref = nagRef(project)!;
  acknowledge(role, [
    `AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:logs:${region}:${account}:log-group:/aws/codebuild/${ref}:*]`,
    `AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:codebuild:${region}:${account}:report-group/${ref}-*]`,
  ], 'CodeBuild\'s own permissions for this one project: its default log streams (/aws/codebuild/<project>:*) and ' +
    'the report groups a buildspec may create under the project\'s name (<project>-*); both are scoped to this project.');
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
    private readonly key: kms.IKey) {}

  public visit(node: IConstruct): void {
    if (!(node instanceof iam.Policy)) {
      return;
    }
    // Only where every wildcard statement is limited to this pipeline's own artifact bucket or key: a role that
    // also reaches another bucket or key keeps its findings.
    const artifactObjects = nagRef(this.bucket, 'Arn');
    acknowledge(node, [`AwsSolutions-IAM5[Resource::${artifactObjects}/*]`],
      'The objects of this pipeline\'s own artifact bucket, which CodePipeline and its actions read and write to pass ' +
      'artifacts between stages (aws-cdk-lib\'s artifact grants).');
    if (wildcardsOnlyOn(node, 's3', [this.bucket.bucketArn, this.bucket.arnForObjects('*')])) {
      acknowledge(node, S3_OBJECT_ACTION_FINDINGS,
        'aws-cdk-lib grants the pipeline and its actions read/write on the objects of this pipeline\'s own artifact ' +
        'bucket only (every statement with these wildcards names that bucket and its /*); the wildcards are the ' +
        'object-level action families CodePipeline needs to pass artifacts between stages.');
    }
    if (wildcardsOnlyOn(node, 'kms', [this.key.keyArn])) {
      acknowledge(node, [
        'AwsSolutions-IAM5[Action::kms:ReEncrypt*]',
        'AwsSolutions-IAM5[Action::kms:GenerateDataKey*]',
      ], 'aws-cdk-lib grants encrypt/decrypt on this pipeline\'s own artifact key only (Resource is that key\'s ARN); ' +
        'the wildcards cover the data-key variants S3 uses with SSE-KMS.');
    }
  }
}

/**
 * Acknowledges `AwsSolutions-IAM5[Resource::*]` on a role's policies only while every statement on `*` uses actions
 * from the given list (actions without resource-level permissions). Checked when the app is synthesized, so a
 * statement added later with another action on `*` keeps its finding.
 * @internal
 */
export function acknowledgeStarResourceOnlyFor(role: IConstruct, allowedActions: string[], reason: string): void {
  Aspects.of(role).add(new StarResourceAcknowledger(allowedActions, reason));
}

class StarResourceAcknowledger implements IAspect {
  constructor(private readonly allowedActions: string[], private readonly reason: string) {}

  public visit(node: IConstruct): void {
    if (!(node instanceof iam.Policy)) {
      return;
    }
    const statements: any[] = Stack.of(node).resolve(node.document.toJSON())?.Statement ?? [];
    // A Deny on `*` grants nothing (cdk-nag's IAM5 reads Allow statements only).
    const onStar = statements.filter((st) => st.Effect !== 'Deny' && ([] as unknown[]).concat(st.Resource ?? []).includes('*'));
    const onlyAllowed = onStar.every((st) => ([] as string[]).concat(st.Action ?? []).every((a) => this.allowedActions.includes(a)));
    if (onStar.length > 0 && onlyAllowed) {
      acknowledge(node, ['AwsSolutions-IAM5[Resource::*]'], this.reason);
    }
  }
}

/**
 * Acknowledges the KMS data-key wildcards on a role's policies only while every statement that uses them names the
 * given key alone.
 * @internal
 */
export function acknowledgeKeyWildcardsOnlyFor(role: IConstruct, key: kms.IKey, reason: string): void {
  Aspects.of(role).add(new KeyWildcardAcknowledger(key, reason));
}

class KeyWildcardAcknowledger implements IAspect {
  constructor(private readonly key: kms.IKey, private readonly reason: string) {}

  public visit(node: IConstruct): void {
    if (node instanceof iam.Policy && wildcardsOnlyOn(node, 'kms', [this.key.keyArn])) {
      acknowledge(node, ['AwsSolutions-IAM5[Action::kms:ReEncrypt*]', 'AwsSolutions-IAM5[Action::kms:GenerateDataKey*]'], this.reason);
    }
  }
}
