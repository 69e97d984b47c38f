/**
 * One measurement for `npm run bench`: synthesizes `<count>` instances of a pattern with default props (each in its own
 * stack, as a user would: a stack holds at most 500 resources) in one app, and prints JSON: the wall time of
 * construction plus `app.synth()` in milliseconds (module loading excluded), and per stack the resources and the
 * template's bytes.
 *
 *   ts-node --transpile-only -P tsconfig.dev.json bench/scale.ts <fargate|serverless|ec2> <count>
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { App, Stack } from 'aws-cdk-lib';
import { Ec2BlueGreenPipeline, FargateBlueGreenPipeline, PipelineSource, ServerlessApiPipeline } from '../src';

const CONNECTION_ARN = 'arn:aws:codeconnections:us-east-1:123456789012:connection/11111111-2222-3333-4444-555555555555';
const ENV = { account: '123456789012', region: 'us-east-1' };

/** A default instance of each pattern: the README's quick starts. */
export const PATTERNS: Record<string, (stack: Stack) => void> = {
  fargate: (stack) => new FargateBlueGreenPipeline(stack, 'Web', { source: PipelineSource.connection('my-org/my-service', 'main', { connectionArn: CONNECTION_ARN }) }),
  serverless: (stack) => new ServerlessApiPipeline(stack, 'Api', {
    source: PipelineSource.connection('my-org/my-api', 'main', { connectionArn: CONNECTION_ARN }),
    routes: [
      { route: 'GET /', entry: 'src/welcome.ts' },
      { route: 'GET /sleep/{secs}', entry: 'src/sleep.ts', smokeTestPath: '/sleep/0' },
    ],
  }),
  ec2: (stack) => new Ec2BlueGreenPipeline(stack, 'Web', { source: PipelineSource.connection('my-org/my-web-app', 'main', { connectionArn: CONNECTION_ARN }) }),
};

export interface ScaleResult {
  readonly pattern: string;
  readonly count: number;
  readonly synthMs: number;
  readonly stacks: Array<{ name: string; resources: number; bytes: number; template: unknown }>;
}

export function measure(pattern: string, count: number, keepTemplates = false): ScaleResult {
  const add = PATTERNS[pattern];
  if (!add) throw new Error(`unknown pattern '${pattern}': one of ${Object.keys(PATTERNS).join(', ')}`);
  const outdir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-'));
  try {
    const started = process.hrtime.bigint();
    const app = new App({ outdir });
    for (let i = 0; i < count; i++) add(new Stack(app, `Bench${i}`, { env: ENV }));
    const assembly = app.synth();
    const synthMs = Number(process.hrtime.bigint() - started) / 1e6;
    const stacks = assembly.stacks.map((s) => {
      const text = fs.readFileSync(path.join(assembly.directory, s.templateFile), 'utf8');
      return {
        name: s.stackName,
        resources: Object.keys(s.template.Resources ?? {}).length,
        bytes: Buffer.byteLength(text),
        template: keepTemplates ? s.template : undefined,
      };
    });
    return { pattern, count, synthMs, stacks };
  } finally {
    fs.rmSync(outdir, { recursive: true, force: true });
  }
}

if (require.main === module) {
  const [pattern, count] = process.argv.slice(2);
  const result = measure(pattern, Number(count));
  process.stdout.write(JSON.stringify({ ...result, stacks: result.stacks.map(({ template: _, ...rest }) => rest) }) + '\n');
}
