import { Aspects, CfnResource, IAspect, Stack } from 'aws-cdk-lib';
import { IConstruct } from 'constructs';

const PRUNED = Symbol.for('cdk-delivery-pipelines.redundant-depends-on');
const PRUNING_STACK = Symbol.for('cdk-delivery-pipelines.redundant-depends-on.stack');

/**
 * Prunes redundant `DependsOn` in the whole stack of a construct (once per stack): aws-cdk-lib's own redundant
 * entries also sit on stack-level singletons, such as the auto-delete provider.
 * @internal
 */
export function pruneRedundantDependsOn(scope: IConstruct): void {
  const stack = Stack.of(scope) as any;
  if (!stack[PRUNING_STACK]) {
    stack[PRUNING_STACK] = true;
    Aspects.of(stack).add(new RedundantDependsOnPruner());
  }
}

/**
 * Removes `DependsOn` entries that a `Ref`, `Fn::GetAtt` or `Fn::Sub` in the same resource already enforces.
 *
 * aws-cdk-lib adds many such entries (policies before the resources that use their role, ...); CloudFormation
 * ignores them, but its linter reports each as W3005. A reference already orders the two resources, so removing
 * the explicit entry changes nothing in deployment order.
 *
 * Dependencies are final only after the app is prepared (construct-level dependencies become `DependsOn` then),
 * so the aspect registers a validation on each resource, which runs after preparation and before synthesis.
 * @internal
 */
export class RedundantDependsOnPruner implements IAspect {
  public visit(node: IConstruct): void {
    if (!CfnResource.isCfnResource(node) || (node as any)[PRUNED]) {
      return;
    }
    (node as any)[PRUNED] = true;
    node.node.addValidation({
      validate: () => {
        pruneResource(node);
        return [];
      },
    });
  }
}

function pruneResource(resource: CfnResource): void {
  const stack = Stack.of(resource);
  const referenced = new Set<string>();
  collectReferences(stack.resolve((resource as any).cfnProperties), referenced);
  collectReferences(stack.resolve((resource as any).rawOverrides), referenced);
  for (const target of resource.obtainDependencies()) {
    if (!CfnResource.isCfnResource(target) || Stack.of(target) !== stack) continue;
    if (referenced.has(stack.resolve(target.logicalId))) {
      removeDependency(resource, target);
    }
  }
}

function collectReferences(value: unknown, into: Set<string>): void {
  if (Array.isArray(value)) {
    value.forEach((v) => collectReferences(v, into));
    return;
  }
  if (value === null || typeof value !== 'object') {
    return;
  }
  for (const [key, inner] of Object.entries(value as Record<string, unknown>)) {
    if (key === 'Ref' && typeof inner === 'string') {
      into.add(inner);
    } else if (key === 'Fn::GetAtt') {
      const target = Array.isArray(inner) ? inner[0] : typeof inner === 'string' ? inner.split('.')[0] : undefined;
      if (typeof target === 'string') into.add(target);
    } else if (key === 'Fn::Sub') {
      const template = Array.isArray(inner) ? inner[0] : inner;
      const variables = Array.isArray(inner) && inner[1] && typeof inner[1] === 'object' ? Object.keys(inner[1]) : [];
      if (typeof template === 'string') {
        for (const match of template.matchAll(/\$\{([^!}][^}.]*)(?:\.[^}]*)?\}/g)) {
          if (!variables.includes(match[1])) into.add(match[1]);
        }
      }
    }
    collectReferences(inner, into);
  }
}

/** `removeResourceDependency` replaced `removeDependency` after the lowest aws-cdk-lib this library supports. */
function removeDependency(resource: CfnResource, target: CfnResource): void {
  const current = (resource as any).removeResourceDependency;
  if (typeof current === 'function') {
    current.call(resource, target);
  } else {
    resource.removeDependency(target);
  }
}
