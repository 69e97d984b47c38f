/**
 * `npm run examples`: synthesizes every example app (examples/<name>/app.ts exporting `createApp`) into
 * cdk.out/<name>/, runs the compliance harness on each stack and prints a table per stack.
 * Exits non-zero when any stack has an unacknowledged cdk-nag violation or a validator ERROR/WARN.
 *
 *   npm run examples                  # every example
 *   npm run examples -- delivery-pipeline   # only the named ones
 */
import * as fs from 'fs';
import * as path from 'path';
import { App } from 'aws-cdk-lib';
import { checkApp, StackReport } from '../test/compliance/harness';

const root = path.join(__dirname, '..');
const examplesDir = path.join(root, 'examples');

function exampleApps(only: string[]): string[] {
  return fs.readdirSync(examplesDir)
    .filter((name) => fs.existsSync(path.join(examplesDir, name, 'app.ts')))
    .filter((name) => only.length === 0 || only.includes(name))
    .sort();
}

function table(rows: string[][]): string {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  const line = (r: string[]) => r.map((c, i) => c.padEnd(widths[i])).join('  ');
  return [line(rows[0]), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.slice(1).map(line)].join('\n');
}

function main(): number {
  const only = process.argv.slice(2);
  const names = exampleApps(only);
  if (names.length === 0) {
    console.error(`no example app found${only.length ? ` for ${only.join(', ')}` : ''} under ${examplesDir}`);
    return 1;
  }
  let failed = 0;
  for (const name of names) {
    const outdir = path.join(root, 'cdk.out', name);
    fs.rmSync(outdir, { recursive: true, force: true });
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { createApp } = require(path.join(examplesDir, name, 'app.ts')) as { createApp: (props: { outdir: string }) => App };
    const started = Date.now();
    const reports: StackReport[] = checkApp(createApp({ outdir }));
    const seconds = ((Date.now() - started) / 1000).toFixed(1);
    console.log(`\n${name}  (cdk.out/${name}, synthesized and checked in ${seconds} s)`);
    console.log(table([
      ['stack', 'resources', 'nag violations', 'acknowledgements', 'validator ERROR', 'validator WARN', 'result'],
      ...reports.map((r) => [
        r.stackName,
        String(r.resources),
        String(r.nagViolations.length),
        String(r.acknowledgements.length),
        String(r.validatorFindings.filter((f) => f.severity !== 'WARN').length),
        String(r.validatorFindings.filter((f) => f.severity === 'WARN').length),
        r.passed ? 'PASS' : 'FAIL',
      ]),
    ]));
    for (const report of reports.filter((r) => !r.passed)) {
      failed++;
      for (const v of report.nagViolations) console.log(`  nag ${v.ruleId} at ${v.paths.join(', ')}`);
      for (const f of report.validatorFindings) console.log(`  validator ${f.severity} ${f.ruleId} at ${f.resource ?? '-'}: ${f.message}`);
    }
  }
  console.log(failed ? `\n${failed} stack(s) failed the compliance checks` : '\nall example stacks pass cdk-nag and the CloudFormation validator');
  return failed ? 1 : 0;
}

process.exitCode = main();
