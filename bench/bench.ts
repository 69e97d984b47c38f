/**
 * `npm run bench`: one table (stdout) and bench/results.json. Not part of `npm test`; no timed assertion anywhere.
 *
 *   npm run bench                                   medians of 5 runs, measures nothing of `npm test`
 *   npm run bench -- --npm-test-seconds 812         quote a previously measured `npm test` wall time
 *   npm run bench -- --measure-npm-test             run `npm test` once and time it (slow)
 *   npm run bench -- --runs 3                       fewer runs (medians of 3)
 *
 * 1. Synth wall time of each example app (a fresh process: Node, ts-node, aws-cdk-lib, construction, synth and
 *    aws-cdk-lib's built-in template validation, as `cdk synth` would run it), next to a hand-written aws-cdk-lib
 *    app of the same pattern without the library (bench/handwritten/), measured alternately in the same run.
 * 2. Marginal synth time per extra pattern instance: 1, 10 and 25 default instances in one app (one stack each),
 *    construction and synth only, aws-cdk-lib's built-in validation off (CDK_VALIDATION=false: it scales with the
 *    templates' size whatever wrote them, and would make this part take an hour on two cores).
 * 3. Resources and template bytes per pattern (default props) against CloudFormation's limits.
 * 4. The modelled time from "build finished" to 100 % production traffic and to the end of the release, with the
 *    default settings read from the synthesized templates, step by step, and the props that shorten each step.
 * 5. `npm test` wall time on this machine, if measured or given.
 */
import { execFileSync, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { measure } from './scale';

const ROOT = path.join(__dirname, '..');
const TS_NODE = [require.resolve('ts-node/dist/bin.js'), '--transpile-only', '-P', 'tsconfig.dev.json'];
const CFN_MAX_RESOURCES = 500;
const CFN_MAX_TEMPLATE_BYTES = 1_000_000;

interface Spread { readonly median: number; readonly min: number; readonly max: number; readonly runs: number[] }

function spread(values: number[]): Spread {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  const median = sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
  return { median, min: sorted[0], max: sorted[sorted.length - 1], runs: values };
}

function args(): { runs: number; npmTestSeconds?: number; measureNpmTest: boolean; out: string } {
  const argv = process.argv.slice(2);
  const value = (name: string) => {
    const i = argv.indexOf(name);
    return i === -1 ? undefined : argv[i + 1];
  };
  const runs = Number(value('--runs') ?? 5);
  if (!Number.isInteger(runs) || runs < 1) throw new Error(`--runs must be a whole number of at least 1, got ${value('--runs')}`);
  const given = value('--npm-test-seconds');
  return {
    runs,
    npmTestSeconds: given === undefined ? undefined : Number(given),
    measureNpmTest: argv.includes('--measure-npm-test'),
    out: value('--out') ?? path.join(ROOT, 'bench', 'results.json'),
  };
}

/** Wall time in seconds of one fresh process synthesizing `file` into a temporary directory. */
function synthProcess(file: string, env: NodeJS.ProcessEnv = {}): number {
  const outdir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-app-'));
  try {
    const started = process.hrtime.bigint();
    const result = spawnSync(process.execPath, [...TS_NODE, file], {
      cwd: ROOT,
      env: { ...process.env, CDK_OUTDIR: outdir, CDK_DEFAULT_ACCOUNT: '123456789012', CDK_DEFAULT_REGION: 'us-east-1', ...env },
      encoding: 'utf8',
    });
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    if (result.status !== 0) throw new Error(`${file} failed to synthesize:\n${result.stderr}`);
    return seconds;
  } finally {
    fs.rmSync(outdir, { recursive: true, force: true });
  }
}

/** One child process per measurement, so each starts from a cold module cache like the others. */
function scaleProcess(pattern: string, count: number): { synthMs: number } {
  const out = execFileSync(process.execPath, [...TS_NODE, 'bench/scale.ts', pattern, String(count)], {
    cwd: ROOT, env: { ...process.env, CDK_VALIDATION: 'false' }, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024,
  });
  return JSON.parse(out.trim().split('\n').pop()!);
}

// ---------------------------------------------------------------------------------------------------------------
// The release model: defaults read from the templates; AWS's own durations are assumptions, marked as such.
// ---------------------------------------------------------------------------------------------------------------

interface Step { readonly step: string; readonly seconds: number; readonly source: string; readonly shorten?: string }
interface Model { readonly pattern: string; readonly steps: Step[]; readonly toFullTraffic: number; readonly toReleased: number }

function resourcesOf(template: any, type: string): any[] {
  return Object.values<any>(template.Resources ?? {}).filter((r) => r.Type === type);
}

function targetGroupDefaults(template: any) {
  const tg = resourcesOf(template, 'AWS::ElasticLoadBalancingV2::TargetGroup')[0].Properties;
  const attr = (key: string) => Number((tg.TargetGroupAttributes ?? []).find((a: any) => a.Key === key)?.Value ?? 300);
  return { interval: tg.HealthCheckIntervalSeconds ?? 30, healthy: tg.HealthyThresholdCount ?? 5, deregistration: attr('deregistration_delay.timeout_seconds') };
}

function fargateModel(template: any): Model {
  const tg = targetGroupDefaults(template);
  const service = resourcesOf(template, 'AWS::ECS::Service')[0].Properties;
  const bake = Number(service.DeploymentConfiguration?.BakeTimeInMinutes ?? 0) * 60;
  const before: Step[] = [
    { step: 'CodePipeline starts the ECS deploy action', seconds: 5, source: 'assumption (AWS)' },
    { step: 'ECS starts the new tasks (ENI, image pull, container start)', seconds: 45, source: 'assumption (AWS)', shorten: 'a smaller image' },
    { step: `load balancer health checks: ${tg.healthy} x ${tg.interval} s`, seconds: tg.healthy * tg.interval, source: 'template (target group)' },
    { step: 'test traffic shift, hook smoke test on the test listener', seconds: 10, source: 'assumption (AWS) + hook', shorten: 'approval: Approval.none() (the default) adds no wait' },
    { step: 'production traffic shift (all at once)', seconds: 10, source: 'assumption (AWS)' },
  ];
  const after: Step[] = [
    { step: `bake: ${bake / 60} min with the alarms`, seconds: bake, source: 'template (BakeTimeInMinutes)', shorten: 'bakeTime (0 to 45 min)' },
    { step: `old tasks drain: deregistration delay ${tg.deregistration} s`, seconds: tg.deregistration, source: 'template (target group)' },
    { step: 'RecordRelease writes the image parameter', seconds: 5, source: 'assumption (AWS)' },
  ];
  return model('FargateBlueGreenPipeline', before, after);
}

function ec2Model(template: any): Model {
  const tg = targetGroupDefaults(template);
  const env = Object.values<any>(template.Resources).find((r) => r.Type === 'AWS::Lambda::Function' && r.Properties.Environment?.Variables?.BAKE_SECONDS)
    ?.Properties.Environment.Variables ?? {};
  const bake = Number(env.BAKE_SECONDS ?? 0);
  const canary = Number(env.CANARY_SECONDS ?? 0);
  const before: Step[] = [
    { step: 'CodePipeline starts the Step Functions workflow; start step checks the stack', seconds: 5, source: 'assumption (AWS)' },
    { step: 'idle color scaled up: EC2 launches the instances', seconds: 30, source: 'assumption (AWS)' },
    { step: 'boot: dnf installs Node.js and the CloudWatch agent, the bundle is installed, local health check, lifecycle hook CONTINUE', seconds: 90, source: 'assumption (AWS)', shorten: 'machineImage with Node.js baked in, setupCommands: []' },
    { step: `load balancer health checks: ${tg.healthy} x ${tg.interval} s, polled every 15 s`, seconds: tg.healthy * tg.interval + 15, source: 'template (target group) + handler (HEALTH_WAIT_SECONDS)' },
    { step: 'smoke test on the test listener', seconds: 5, source: 'assumption (AWS) + smoke test' },
    ...(canary ? [{ step: `canary step: ${canary / 60} min`, seconds: canary, source: 'template (CANARY_SECONDS)', shorten: 'trafficShift' }] : []),
    { step: `production listener shifts (${canary ? 'the rest' : 'all at once'})`, seconds: 2, source: 'assumption (AWS)' },
  ];
  const after: Step[] = [
    { step: `bake: ${bake / 60} min with the new color's alarms, checked every 30 s`, seconds: bake, source: 'template (BAKE_SECONDS)', shorten: 'bakeTime (0 to 30 min)' },
    { step: `old color drains (deregistration delay ${tg.deregistration} s) and scales to 0`, seconds: tg.deregistration, source: 'template (target group)', shorten: 'deregistrationDelay (0 to 30 s)' },
  ];
  return model('Ec2BlueGreenPipeline', before, after);
}

function serverlessModel(template: any): Model {
  const group = resourcesOf(template, 'AWS::CodeDeploy::DeploymentGroup')[0]?.Properties;
  const configName = String(group?.DeploymentConfigName ?? JSON.stringify(group?.DeploymentConfigName));
  const m = /Canary(\d+)Percent(\d+)Minutes|Linear(\d+)PercentEvery(\d+)Minute/.exec(configName);
  const canaryMinutes = m ? Number(m[2] ?? 0) || Number(m[4]) * Math.ceil(100 / Number(m[3])) : 0;
  const before: Step[] = [
    { step: 'CodePipeline invokes the release controller', seconds: 5, source: 'assumption (AWS)' },
    { step: 'controller updates each function, publishes versions, creates the release alarm', seconds: 10, source: 'assumption (AWS)' },
    { step: 'CodeDeploy starts; pre-traffic hook invokes each new version', seconds: 30, source: 'assumption (AWS)' },
    { step: `traffic shift: ${configName.replace(/^CodeDeployDefault\./, '')}`, seconds: canaryMinutes * 60, source: 'template (DeploymentConfigName)', shorten: 'deploymentConfig (LambdaDeploymentConfig.ALL_AT_ONCE: 0)' },
  ];
  const after: Step[] = [
    { step: 'controller sees every deployment succeed', seconds: 30, source: 'assumption (controller polling)' },
  ];
  return model('ServerlessApiPipeline', before, after);
}

function model(pattern: string, before: Step[], after: Step[]): Model {
  const toFullTraffic = before.reduce((t, s) => t + s.seconds, 0);
  return { pattern, steps: [...before, { step: '= 100 % of production traffic on the new version', seconds: 0, source: '' }, ...after], toFullTraffic, toReleased: toFullTraffic + after.reduce((t, s) => t + s.seconds, 0) };
}

// ---------------------------------------------------------------------------------------------------------------

function fmt(s: Spread, unit = 's', digits = 1): string {
  return `${s.median.toFixed(digits)} ${unit} (${s.min.toFixed(digits)}–${s.max.toFixed(digits)})`;
}

function machine(): string {
  const cpus = os.cpus();
  return `${os.type()} ${os.release()}, ${cpus.length} x ${cpus[0]?.model ?? 'unknown CPU'}, ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB, Node ${process.version}, load average ${os.loadavg().map((l) => l.toFixed(1)).join(' ')} at the start`;
}

function main(): void {
  const options = args();
  const startedAt = new Date().toISOString();
  const host = machine();
  const lines: string[] = [];
  const log = (line = '') => { lines.push(line); process.stdout.write(line + '\n'); };
  log(`# npm run bench: medians of ${options.runs} (min–max); ${startedAt}`);
  log(`machine: ${host}`);
  log();

  // 1. Example apps against hand-written ones.
  const apps = [
    { pattern: 'FargateBlueGreenPipeline', example: 'examples/fargate-service/app.ts', handwritten: 'bench/handwritten/fargate-service.ts' },
    { pattern: 'ServerlessApiPipeline', example: 'examples/serverless-api/app.ts', handwritten: 'bench/handwritten/serverless-api.ts' },
    { pattern: 'Ec2BlueGreenPipeline', example: 'examples/ec2-web-app/app.ts', handwritten: 'bench/handwritten/ec2-web-app.ts' },
  ];
  const synth = apps.map((a) => {
    const lib: number[] = [];
    const hand: number[] = [];
    for (let i = 0; i < options.runs; i++) {
      lib.push(synthProcess(a.example));
      hand.push(synthProcess(a.handwritten));
    }
    const library = spread(lib);
    const handwritten = spread(hand);
    return { ...a, library, handwritten, ratio: library.median / handwritten.median };
  });
  log('## Synth wall time: example app vs hand-written aws-cdk-lib app (fresh process each, built-in validation on)');
  log('| pattern | example app | hand-written, no library | ratio |');
  log('| --- | --- | --- | --- |');
  for (const s of synth) log(`| ${s.pattern} | ${fmt(s.library)} | ${fmt(s.handwritten)} | ${s.ratio.toFixed(2)} |`);
  log();

  // 2. Marginal time per instance.
  const counts = [1, 10, 25];
  const scaling = ['fargate', 'serverless', 'ec2'].map((pattern) => {
    const byCount = counts.map((count) => {
      const ms: number[] = [];
      for (let i = 0; i < options.runs; i++) ms.push(scaleProcess(pattern, count).synthMs);
      return { count, seconds: spread(ms.map((v) => v / 1000)) };
    });
    const marginal = (byCount[2].seconds.median - byCount[0].seconds.median) / (counts[2] - counts[0]);
    return { pattern, byCount, marginalSeconds: marginal };
  });
  log('## Synth time by number of default instances in one app (one stack each; construction + synth, validation off)');
  log('| pattern | 1 | 10 | 25 | marginal per extra instance |');
  log('| --- | --- | --- | --- | --- |');
  for (const s of scaling) log(`| ${s.pattern} | ${s.byCount.map((b) => fmt(b.seconds)).join(' | ')} | ${s.marginalSeconds.toFixed(2)} s |`);
  log();

  // 3. Size against CloudFormation's limits, and 4. the release model (one default instance each).
  process.env.CDK_VALIDATION = 'false'; // the size does not depend on it
  const single = ['fargate', 'serverless', 'ec2'].map((pattern) => measure(pattern, 1, true));
  log(`## Size of one default instance against CloudFormation's limits (${CFN_MAX_RESOURCES} resources, 1 MB template)`);
  log('| pattern | stack | resources | % of 500 | template bytes | % of 1 MB |');
  log('| --- | --- | --- | --- | --- | --- |');
  const sizes = single.flatMap((r) => r.stacks.map((s) => ({ pattern: r.pattern, stack: s.name, resources: s.resources, bytes: s.bytes })));
  for (const s of sizes) {
    log(`| ${s.pattern} | ${s.stack} | ${s.resources} | ${(100 * s.resources / CFN_MAX_RESOURCES).toFixed(0)} % | ${s.bytes} | ${(100 * s.bytes / CFN_MAX_TEMPLATE_BYTES).toFixed(1)} % |`);
  }
  log();

  // The pattern's main stack: the one with the most resources (not the small Image or State stack).
  const mainTemplate = (pattern: string) =>
    single.find((r) => r.pattern === pattern)!.stacks.reduce((a, b) => (a.resources >= b.resources ? a : b)).template;
  const models = [fargateModel(mainTemplate('fargate')), serverlessModel(mainTemplate('serverless')), ec2Model(mainTemplate('ec2'))];
  log('## Modelled time from "build finished" to 100 % production traffic (default settings, no approval)');
  for (const m of models) {
    log(`### ${m.pattern}: ${(m.toFullTraffic / 60).toFixed(1)} min to 100 % traffic, ${(m.toReleased / 60).toFixed(1)} min to the end of the release`);
    log('| step | seconds | from | shorten with |');
    log('| --- | --- | --- | --- |');
    for (const s of m.steps) log(`| ${s.step} | ${s.seconds || ''} | ${s.source} | ${s.shorten ?? ''} |`);
    log();
  }

  // 5. npm test.
  let npmTest: { seconds: number; how: string } | undefined;
  if (options.measureNpmTest) {
    const started = process.hrtime.bigint();
    const result = spawnSync('npm', ['test'], { cwd: ROOT, stdio: 'inherit' });
    npmTest = { seconds: Number(process.hrtime.bigint() - started) / 1e9, how: `measured once by this run (exit code ${result.status})` };
  } else if (options.npmTestSeconds !== undefined) {
    npmTest = { seconds: options.npmTestSeconds, how: 'measured earlier on this machine and passed with --npm-test-seconds' };
  }
  log('## npm test wall time');
  log(npmTest ? `${(npmTest.seconds / 60).toFixed(1)} min (${npmTest.seconds.toFixed(0)} s), ${npmTest.how}` : 'not measured (pass --measure-npm-test or --npm-test-seconds <s>)');
  log();
  log(`load average at the end: ${os.loadavg().map((l) => l.toFixed(1)).join(' ')}`);

  fs.writeFileSync(options.out, JSON.stringify({
    startedAt,
    machine: host,
    runs: options.runs,
    synth,
    scaling,
    sizes,
    limits: { resources: CFN_MAX_RESOURCES, templateBytes: CFN_MAX_TEMPLATE_BYTES },
    models,
    npmTest,
    table: lines.join('\n'),
  }, undefined, 2) + '\n');
}

main();
