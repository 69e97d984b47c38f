/**
 * The compliance harness: every stack of the library's tests and examples goes through cdk-nag 3
 * (AwsSolutions + Serverless packs) and AWS's offline CloudFormation validator (cfn-lint's rules).
 *
 * A stack passes when it has no unacknowledged nag violation and no validator ERROR or WARN.
 */
import * as path from 'path';
import { App, CfnResource, Stack, Stage, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks, ServerlessChecks } from 'cdk-nag';
import { IConstruct } from 'constructs';

// aws-cdk-lib ships a newer copy of the validator than the registry's beta: load that one.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const validator = require(path.join(path.dirname(require.resolve('aws-cdk-lib/package.json')), 'node_modules/@aws/cloudformation-validate'));

export interface NagFinding {
  /** Rule id as it must be acknowledged, e.g. `AwsSolutions-IAM5[Action::s3:*]`. */
  readonly ruleId: string;
  /** Construct paths of the resources it was found on. */
  readonly paths: string[];
  readonly description: string;
}

export interface ValidatorFinding {
  readonly ruleId: string;
  readonly severity: string;
  readonly message: string;
  readonly resource?: string;
}

export interface StackReport {
  readonly stackName: string;
  readonly resources: number;
  readonly nagViolations: NagFinding[];
  readonly acknowledgements: Acknowledgement[];
  readonly validatorFindings: ValidatorFinding[];
  /** No nag violation and no validator ERROR/WARN. */
  readonly passed: boolean;
}

export interface Acknowledgement {
  readonly ruleId: string;
  readonly path: string;
  readonly reason: string;
}

const FAILING_SEVERITIES = new Set(['WARN', 'ERROR', 'FATAL']);
let engine: any;

function nagPacks(scope: IConstruct) {
  return [new AwsSolutionsChecks(scope), new ServerlessChecks(scope)];
}

/** Runs cdk-nag's packs over a construct tree (acknowledgements honoured). */
export function nagViolations(scope: IConstruct): NagFinding[] {
  const findings: NagFinding[] = [];
  for (const pack of nagPacks(scope)) {
    const report = pack.validateScope(scope);
    for (const violation of report.violations) {
      findings.push({
        ruleId: violation.ruleName,
        paths: violation.violatingResources.map((r) => (r as any).constructPath ?? constructPathOf(scope, r.resourceLogicalId ?? '?')),
        description: violation.description,
      });
    }
  }
  return findings;
}

function constructPathOf(scope: IConstruct, logicalId: string): string {
  const resource = scope.node.findAll().find((c) => CfnResource.isCfnResource(c) && Stack.of(c).resolve(c.logicalId) === logicalId);
  return resource ? resource.node.path : logicalId;
}

/** Runs AWS's offline validator over one template; returns every finding at or above WARN. */
export function validateTemplate(template: object, name = 'template'): ValidatorFinding[] {
  engine ??= new validator.CompositeEngine();
  const report = engine.validateTemplate(new validator.TemplateContent(JSON.stringify(template), name));
  return (report.diagnostics as any[])
    .filter((d) => FAILING_SEVERITIES.has(d.severity))
    .map((d) => ({
      ruleId: d.ruleId,
      severity: d.severity,
      message: d.message,
      resource: [d.entity?.logicalId, d.propertyPath].filter(Boolean).join(' ') || undefined,
    }));
}

/** Every acknowledgement recorded under a scope. */
export function acknowledgements(scope: IConstruct): Acknowledgement[] {
  const found: Acknowledgement[] = [];
  for (const construct of scope.node.findAll()) {
    for (const entry of construct.node.metadata) {
      if (entry.type !== Validations.ACKNOWLEDGED_RULES_METADATA_KEY || !entry.data) continue;
      for (const [id, reason] of Object.entries(entry.data as Record<string, unknown>)) {
        found.push({ ruleId: id.replace(/^annotation::/i, ''), path: construct.node.path, reason: String(reason) });
      }
    }
  }
  return found;
}

/** All stacks of an app (including nested stages). */
export function stacksOf(scope: IConstruct): Stack[] {
  return scope.node.findAll().filter((c): c is Stack => Stack.isStack(c));
}

/**
 * Synthesizes the app (once) and checks every stack.
 */
export function checkApp(app: App | Stage): StackReport[] {
  const assembly = app.synth();
  return stacksOf(app).map((stack) => {
    const template = assembly.getStackArtifact(stack.artifactId).template;
    return checkStackTemplate(stack, template);
  });
}

/** Checks one stack whose template is already synthesized. */
export function checkStackTemplate(stack: Stack, template: any): StackReport {
  const nag = nagViolations(stack);
  const validatorFindings = validateTemplate(template, stack.stackName);
  return {
    stackName: stack.stackName,
    resources: Object.keys(template.Resources ?? {}).length,
    nagViolations: nag,
    acknowledgements: acknowledgements(stack),
    validatorFindings,
    passed: nag.length === 0 && validatorFindings.length === 0,
  };
}

/** A readable list of what made a report fail, for test failure messages. */
export function describeFailures(report: StackReport): string {
  const lines = [
    ...report.nagViolations.map((v) => `nag ${v.ruleId} at ${v.paths.join(', ')}: ${v.description}`),
    ...report.validatorFindings.map((f) => `validator ${f.severity} ${f.ruleId} at ${f.resource ?? '-'}: ${f.message}`),
  ];
  return lines.length ? `${report.stackName}:\n  ${lines.join('\n  ')}` : `${report.stackName}: clean`;
}

/** Every acknowledgement must carry a reason a reviewer can check. */
export function weakAcknowledgements(report: StackReport): Acknowledgement[] {
  return report.acknowledgements.filter((a) => a.reason.trim().length < 40);
}
