import { CfnElement, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { IConstruct } from 'constructs';
import { CONNECTION_ARN, flatten } from './fixtures';
import { DeliveryPipeline, PipelineSource } from '../../src';

/** The environment of the test stacks. */
export const ENV = { account: '123456789012', region: 'us-east-1' };

/** A CodeConnections source of `owner/repo`, branch `main`. */
export function source(): PipelineSource {
  return PipelineSource.connection('owner/repo', 'main', { connectionArn: CONNECTION_ARN });
}

/** The logical id of a construct's CloudFormation resource. */
export function idOf(construct: IConstruct): string {
  const stack = Stack.of(construct);
  return stack.resolve(stack.getLogicalId((construct.node.defaultChild ?? construct) as CfnElement));
}

/** A resource of the template by its logical id; fails the test when there is none. */
export function resourceOf(template: Template, logicalId: string): any {
  const resource = template.toJSON().Resources[logicalId];
  expect(resource).toBeDefined();
  return resource;
}

/** The only resource of a type; fails the test when there are none or several. */
export function onlyResource(template: Template, type: string): any {
  const found = Object.values(template.findResources(type));
  expect(found).toHaveLength(1);
  return found[0];
}

/** Every IAM statement attached to a role through an AWS::IAM::Policy. */
export function statementsOfRole(template: Template, roleLogicalId: string): any[] {
  return Object.values(template.findResources('AWS::IAM::Policy'))
    .filter((policy: any) => (policy.Properties.Roles as any[]).some((role) => role.Ref === roleLogicalId))
    .flatMap((policy: any) => policy.Properties.PolicyDocument.Statement);
}

/** The actions of a statement, as a list. */
export function actionsOf(statement: any): string[] {
  return ([] as string[]).concat(statement.Action ?? []);
}

/** The resources of a statement, as a list. */
export function resourcesOf(statement: any): any[] {
  return ([] as any[]).concat(statement.Resource ?? []);
}

/** The statements granting an action. */
export function grantsOf(statements: any[], action: string): any[] {
  return statements.filter((s) => actionsOf(s).includes(action));
}

/** The ARN of an SSM parameter of the test environment, as the template renders it. */
export function parameterArn(name: string) {
  return { 'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, `:ssm:us-east-1:123456789012:parameter${name}`]] };
}

/** Anything that has a `DeliveryPipeline`: the patterns. */
export interface HasPipeline {
  readonly pipeline: DeliveryPipeline;
}

/** The CodePipeline resource's properties of a pattern. */
export function pipelineOf(template: Template, pattern: HasPipeline): any {
  return resourceOf(template, idOf(pattern.pipeline.pipeline)).Properties;
}

/** A stage of a pattern's pipeline, by name; fails the test when there is none. */
export function stageOf(template: Template, pattern: HasPipeline, name: string): any {
  const stage = (pipelineOf(template, pattern).Stages as any[]).find((s) => s.Name === name);
  expect(stage).toBeDefined();
  return stage;
}

/** An action of a stage, by name; fails the test when there is none. */
export function actionOf(template: Template, pattern: HasPipeline, stageName: string, actionName: string): any {
  const action = (stageOf(template, pattern, stageName).Actions as any[]).find((a) => a.Name === actionName);
  expect(action).toBeDefined();
  return action;
}

/** The buildspec of the only CodeBuild project, parsed (tokens flattened to `${Id.Attr}` text). */
export function buildSpecOf(stack: Stack, template: Template): any {
  const project = onlyResource(template, 'AWS::CodeBuild::Project');
  return JSON.parse(flatten(stack, project.Properties.Source.BuildSpec));
}

/** The values of the environment variables of the only CodeBuild project, by name. */
export function buildEnvOf(template: Template): Record<string, any> {
  const project = onlyResource(template, 'AWS::CodeBuild::Project');
  return Object.fromEntries((project.Properties.Environment.EnvironmentVariables as any[]).map((v) => [v.Name, v.Value]));
}
