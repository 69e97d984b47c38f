import { App, Aspects, CfnResource, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { RedundantDependsOnPruner } from '../../src/private/redundant-depends-on';
import { validateTemplate } from '../compliance/harness';

describe('RedundantDependsOnPruner', () => {
  const app = new App();
  const stack = new Stack(app, 'Prune');
  const target = new CfnResource(stack, 'Target', { type: 'AWS::SQS::Queue' });
  const other = new CfnResource(stack, 'Other', { type: 'AWS::SQS::Queue' });
  const viaRef = new CfnResource(stack, 'ViaRef', { type: 'AWS::SNS::Topic', properties: { DisplayName: target.ref } });
  viaRef.addDependency(target);
  viaRef.addDependency(other);
  const viaGetAtt = new CfnResource(stack, 'ViaGetAtt', { type: 'AWS::SNS::Topic', properties: { DisplayName: target.getAtt('QueueName') } });
  viaGetAtt.addDependency(target);
  const viaSub = new CfnResource(stack, 'ViaSub', {
    type: 'AWS::SNS::Topic',
    properties: { DisplayName: { 'Fn::Sub': ['${Target.QueueName}-${Other}-${Var}', { Var: 'x' }] } },
  });
  viaSub.addDependency(target);
  viaSub.addDependency(other);
  const viaSubVariable = new CfnResource(stack, 'ViaSubVariable', {
    type: 'AWS::SNS::Topic',
    // `Other` here is a Sub variable, not the resource: the DependsOn on Other must stay.
    properties: { DisplayName: { 'Fn::Sub': ['${Other}', { Other: 'literal' }] } },
  });
  viaSubVariable.addDependency(other);
  // A construct-level dependency becomes DependsOn only when the app is prepared: it must be seen too.
  const viaConstruct = new CfnResource(stack, 'ViaConstruct', { type: 'AWS::SNS::Topic', properties: { DisplayName: other.ref } });
  viaConstruct.node.addDependency(other);

  const before = validateTemplate(cloneTemplate());
  Aspects.of(stack).add(new RedundantDependsOnPruner());
  const template = Template.fromStack(stack).toJSON();

  function cloneTemplate() {
    const copyApp = new App();
    const copy = new Stack(copyApp, 'Copy');
    const t = new CfnResource(copy, 'Target', { type: 'AWS::SQS::Queue' });
    const r = new CfnResource(copy, 'ViaRef', { type: 'AWS::SNS::Topic', properties: { DisplayName: t.ref } });
    r.addDependency(t);
    return Template.fromStack(copy).toJSON();
  }

  test('the validator reports a DependsOn that a Ref already enforces (W3005)', () => {
    expect(before.map((f) => f.ruleId)).toContain('W3005');
  });

  test('removes DependsOn entries enforced by Ref, GetAtt and Sub, keeps the others', () => {
    expect(template.Resources.ViaRef.DependsOn).toEqual(['Other']);
    expect(template.Resources.ViaGetAtt.DependsOn).toBeUndefined();
    expect(template.Resources.ViaSub.DependsOn).toBeUndefined();
    expect(template.Resources.ViaSubVariable.DependsOn).toEqual(['Other']);
  });

  test('also prunes dependencies that were declared between constructs', () => {
    expect(template.Resources.ViaConstruct.DependsOn).toBeUndefined();
  });

  test('leaves a template without W3005 findings', () => {
    expect(validateTemplate(template).filter((f) => f.ruleId === 'W3005')).toEqual([]);
  });
});
