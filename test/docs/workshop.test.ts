/**
 * The workshop guide (docs/workshop/*.md) may only name what exists: every fenced `sh` block is parsed command by
 * command and each command checked against this repository (npm scripts, projen tasks, example apps and the context
 * keys they read, the synthesized examples' stacks, outputs, pipeline stages and actions, the sample service's
 * routes, the AWS CLI operations of the installed AWS SDK clients, the files `sed` edits and the text it replaces);
 * every `ts` block is type-checked against the library, together with the integration tests (test/*.integ.ts,
 * which `npm test` synthesizes without type-checking).
 */
import * as fs from 'fs';
import * as path from 'path';
import { Template } from 'aws-cdk-lib/assertions';
import * as ts from 'typescript';
import { createApp as ec2WebApp } from '../../examples/ec2-web-app/app';
import { createApp as fargateService } from '../../examples/fargate-service/app';
import { createApp as serverlessApi } from '../../examples/serverless-api/app';
import { resolveDeps, routeRequest } from '../../examples/service/src/app';

const ROOT = path.join(__dirname, '..', '..');
const GUIDE_DIR = path.join(ROOT, 'docs', 'workshop');
const ENV = { account: '123456789012', region: 'us-east-1' };

interface Block { readonly file: string; readonly lang: string; readonly code: string; readonly line: number }

/** The fenced code blocks of a Markdown file. */
export function fencedBlocks(file: string, text: string): Block[] {
  const blocks: Block[] = [];
  const re = /^```(\w*)\n([\s\S]*?)^```$/gm;
  for (let m = re.exec(text); m; m = re.exec(text)) {
    blocks.push({ file, lang: m[1], code: m[2], line: text.slice(0, m.index).split('\n').length });
  }
  return blocks;
}

/** A block's commands: continuation lines joined, comments and blank lines dropped. */
export function commandsOf(code: string): string[] {
  return code.replace(/\\\n\s*/g, ' ').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
}

/** Shell words of a command (single and double quotes; no expansion). */
export function words(command: string): string[] {
  const out: string[] = [];
  const re = /"((?:[^"\\]|\\.)*)"|'([^']*)'|(\S+)/g;
  let current = '';
  let last = -1;
  for (let m = re.exec(command); m; m = re.exec(command)) {
    const piece = m[1] ?? m[2] ?? m[3];
    if (m.index === last) {
      current += piece;
    } else {
      if (last !== -1) out.push(current);
      current = piece;
    }
    last = m.index + m[0].length;
  }
  if (last !== -1) out.push(current);
  return out;
}

const guides = fs.readdirSync(GUIDE_DIR).filter((f) => f.endsWith('.md'));
const blocks = guides.flatMap((f) => fencedBlocks(f, fs.readFileSync(path.join(GUIDE_DIR, f), 'utf8')));
const shellBlocks = blocks.filter((b) => b.lang === 'sh' || b.lang === 'bash');
const tsBlocks = blocks.filter((b) => b.lang === 'ts' || b.lang === 'typescript');

const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
const tasks = JSON.parse(fs.readFileSync(path.join(ROOT, '.projen', 'tasks.json'), 'utf8')).tasks as Record<string, unknown>;

/** Context keys the examples read (`app.node.tryGetContext('<key>')`). */
const contextKeys = new Set(
  fs.readdirSync(path.join(ROOT, 'examples'), { recursive: true, encoding: 'utf8' })
    .filter((f) => f.endsWith('.ts') && !f.endsWith('.test.ts'))
    .flatMap((f) => [...fs.readFileSync(path.join(ROOT, 'examples', f), 'utf8').matchAll(/tryGetContext\('([^']+)'\)/g)].map((m) => m[1])),
);

/** The CLI name of each AWS service the guide may call, and the installed SDK client that proves an operation exists. */
const AWS_CLIENTS: Record<string, string> = {
  'cloudformation': '@aws-sdk/client-cloudformation',
  'codepipeline': '@aws-sdk/client-codepipeline',
  'codestar-connections': '@aws-sdk/client-codestar-connections',
  'cloudwatch': '@aws-sdk/client-cloudwatch',
  'ecs': '@aws-sdk/client-ecs',
  'stepfunctions': '@aws-sdk/client-sfn',
  'deploy': '@aws-sdk/client-codedeploy',
};

interface StackFacts { readonly outputs: string[]; readonly stages: Map<string, Set<string>> }
const stacks = new Map<string, StackFacts>();

/** In-memory copies of the files the guide edits with `sed`, so consecutive edits are checked in order. */
const edited = new Map<string, string>();

beforeAll(() => {
  for (const create of [fargateService, serverlessApi, ec2WebApp]) {
    for (const stack of create({}, ENV).synth().stacks) {
      const template = Template.fromJSON(stack.template).toJSON();
      const stages = new Map<string, Set<string>>();
      for (const resource of Object.values<any>(template.Resources ?? {})) {
        if (resource.Type !== 'AWS::CodePipeline::Pipeline') continue;
        for (const stage of resource.Properties.Stages) {
          stages.set(stage.Name, new Set(stage.Actions.map((a: { Name: string }) => a.Name)));
        }
      }
      stacks.set(stack.stackName, { outputs: Object.keys(template.Outputs ?? {}), stages });
    }
  }
}, 600_000);

/**
 * Splits a command into its command substitutions (`$(...)`, balanced, quotes respected) and what is left, with each
 * substitution replaced by a word.
 */
export function substitutions(command: string): { outer: string; inner: string[] } {
  const inner: string[] = [];
  let outer = '';
  for (let i = 0; i < command.length; i++) {
    if (command.startsWith('$(', i)) {
      let depth = 1;
      let quote = '';
      let j = i + 2;
      for (; j < command.length && depth > 0; j++) {
        const c = command[j];
        if (quote) {
          if (c === quote) quote = '';
        } else if (c === '"' || c === "'") {
          quote = c;
        } else if (c === '(') {
          depth++;
        } else if (c === ')') {
          depth--;
        }
      }
      inner.push(command.slice(i + 2, j - 1));
      outer += 'SUBSTITUTED';
      i = j - 1;
    } else {
      outer += command[i];
    }
  }
  return { outer, inner };
}

/** The simple commands of a command line: split on `|`, `&&` and `;` outside quotes. */
export function segments(command: string): string[] {
  const out: string[] = [];
  let quote = '';
  let current = '';
  for (let i = 0; i < command.length; i++) {
    const c = command[i];
    if (quote) {
      if (c === quote) quote = '';
    } else if (c === '"' || c === "'") {
      quote = c;
    } else if (c === '|' || c === ';' || (c === '&' && command[i + 1] === '&')) {
      out.push(current.trim());
      current = '';
      if (c === '&') i++;
      continue;
    }
    current += c;
  }
  out.push(current.trim());
  return out.filter(Boolean);
}

/** Problems with one command, empty when it names only what exists. */
async function check(command: string): Promise<string[]> {
  const problems: string[] = [];
  const { outer, inner } = substitutions(command);
  for (const sub of inner) problems.push(...await check(sub));
  for (const segment of segments(outer)) problems.push(...await checkSimple(words(segment)));
  return problems;
}

async function checkSimple(w: string[]): Promise<string[]> {
  const [tool, ...args] = w;
  switch (tool) {
    case 'export':
      return args.every((a) => /^[A-Z_]+=/.test(a)) ? [] : [`export: expected NAME=value, got ${args.join(' ')}`];
    case 'cd':
      return args[0] === 'cdk-delivery-pipelines' || fs.existsSync(path.join(ROOT, args[0])) ? [] : [`cd: no directory ${args[0]}`];
    case 'git':
      return ['clone', 'commit', 'push', 'revert'].includes(args[0]) ? [] : [`git: unexpected subcommand ${args[0]}`];
    case 'npm':
      if (args[0] === 'install' || args[0] === 'test') return [];
      if (args[0] === 'run') return pkg.scripts[args[1]] ? [] : [`npm run: no script ${args[1]}`];
      return [`npm: unexpected ${args[0]}`];
    case 'npx':
      return checkNpx(args);
    case 'aws':
      return checkAws(args);
    case 'curl':
      return checkCurl(args);
    case 'sed':
      return checkSed(args);
    case 'seq':
      return args.every((a) => /^\d+$/.test(a)) ? [] : [`seq: ${args.join(' ')}`];
    case 'xargs': {
      // Options, then the command xargs runs.
      let i = 0;
      while (i < args.length && args[i].startsWith('-')) i += /^-[PIn]$/.test(args[i]) ? 2 : 1;
      return checkSimple(args.slice(i));
    }
    default:
      return [`a command the guide may not use: ${w.join(' ')}`];
  }
}

function checkNpx(args: string[]): string[] {
  if (args[0] === 'projen') return tasks[args[1]] ? [] : [`npx projen: no task ${args[1]}`];
  if (args[0] !== 'cdk') return [`npx: unexpected ${args[0]}`];
  if (!pkg.devDependencies['aws-cdk']) return ['npx cdk: the aws-cdk CLI is not a dev dependency'];
  const problems: string[] = [];
  const sub = args[1];
  if (!['bootstrap', 'deploy', 'destroy', 'synth'].includes(sub)) problems.push(`npx cdk: unexpected ${sub}`);
  const appIndex = args.indexOf('--app');
  if (sub !== 'bootstrap') {
    const app = appIndex === -1 ? undefined : args[appIndex + 1];
    const file = app?.split(' ').find((part) => part.endsWith('.ts'));
    if (!file || !fs.existsSync(path.join(ROOT, file)) || !/^examples\/[^/]+\/app\.ts$/.test(file)) {
      problems.push(`npx cdk ${sub}: --app must run an example app, got ${app}`);
    }
  }
  args.forEach((a, i) => {
    if (a === '-c' || a === '--context') {
      const key = args[i + 1].split('=')[0];
      if (!contextKeys.has(key)) problems.push(`npx cdk: the examples read no context key ${key}`);
    }
  });
  return problems;
}

function option(args: string[], name: string): string | undefined {
  const i = args.indexOf(name);
  return i === -1 ? undefined : args[i + 1];
}

function checkAws(args: string[]): string[] {
  const [service, operation] = args;
  const client = AWS_CLIENTS[service];
  if (!client) return [`aws ${service}: not a service the guide may call`];
  const commandName = operation.split('-').map((p) => p[0].toUpperCase() + p.slice(1)).join('') + 'Command';
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  if (typeof require(client)[commandName] !== 'function') return [`aws ${service} ${operation}: ${client} has no ${commandName}`];
  const problems: string[] = [];
  const stackName = option(args, '--stack-name');
  const stack = stackName === undefined ? undefined : stacks.get(stackName);
  if (stackName !== undefined && !stack) problems.push(`--stack-name ${stackName}: no such stack in the examples`);
  const query = option(args, '--query') ?? '';
  for (const m of query.matchAll(/OutputKey(?:==|,)'([^']+)'/g)) {
    const exact = query.includes(`OutputKey=='${m[1]}'`);
    const found = stack?.outputs.some((o) => (exact ? o === m[1] : o.startsWith(m[1])));
    if (!found) problems.push(`--query: ${stackName} has no output ${exact ? '' : 'starting with '}${m[1]}`);
  }
  const allStages = [...stacks.values()].flatMap((s) => [...s.stages.entries()]);
  const stageNames = [option(args, '--stage-name'), ...[...query.matchAll(/stageName=='([^']+)'/g)].map((m) => m[1])].filter(Boolean);
  for (const stageName of stageNames) {
    if (!allStages.some(([name]) => name === stageName)) problems.push(`stage ${stageName}: no example pipeline has it`);
  }
  const actionNames = [option(args, '--action-name'), ...[...query.matchAll(/actionName=='([^']+)'/g)].map((m) => m[1])].filter(Boolean);
  for (const actionName of actionNames) {
    const inStage = allStages.some(([name, actions]) => (stageNames.length === 0 || stageNames.includes(name)) && actions.has(actionName!));
    if (!inStage) problems.push(`action ${actionName}: no example pipeline has it in stage ${stageNames.join(', ')}`);
  }
  return problems;
}

async function checkCurl(args: string[]): Promise<string[]> {
  const url = args.find((a) => a.startsWith('$'));
  const m = url && /^\$\{?([A-Z_]+)\}?(.*)$/.exec(url);
  if (!m) return [`curl: expected a URL from an exported variable, got ${args.join(' ')}`];
  const urlPath = m[1] === 'API_URL' ? `/${m[2]}` : m[2] || '/';
  const deps = resolveDeps({ sleep: async () => undefined, secretParameterName: undefined }, {});
  const response = await routeRequest('GET', urlPath, deps);
  return response.statusCode >= 400 ? [`curl ${urlPath}: the sample service answers ${response.statusCode}`] : [];
}

function checkSed(args: string[]): string[] {
  if (args[0] !== '-i' || args.length !== 3) return [`sed: expected sed -i 's/old/new/' <file>, got ${args.join(' ')}`];
  const [, script, file] = args;
  const m = /^s\/([^/]+)\/([^/]*)\/$/.exec(script);
  if (!m) return [`sed: expected s/old/new/, got ${script}`];
  const full = path.join(ROOT, file);
  if (!fs.existsSync(full)) return [`sed: no file ${file}`];
  const text = edited.get(full) ?? fs.readFileSync(full, 'utf8');
  const re = new RegExp(m[1]);
  if (!re.test(text)) return [`sed: ${file} does not contain ${m[1]} at this point of the guide`];
  edited.set(full, text.replace(re, m[2]));
  return [];
}

describe('the workshop guide', () => {
  test('has commands and code to check', () => {
    expect(shellBlocks.length).toBeGreaterThan(10);
    expect(tsBlocks.length).toBeGreaterThan(0);
  });

  test('every shell command names only what the repository has', async () => {
    const problems: string[] = [];
    for (const block of shellBlocks) {
      for (const command of commandsOf(block.code)) {
        for (const problem of await check(command)) problems.push(`${block.file}:${block.line}: ${problem}\n    ${command}`);
      }
    }
    expect(problems).toEqual([]);
  });

  test('the guide deploys, rolls back and tears down each pattern of the examples', () => {
    const all = shellBlocks.flatMap((b) => commandsOf(b.code)).join('\n');
    for (const example of ['fargate-service', 'serverless-api', 'ec2-web-app']) {
      expect(all).toContain(`npx cdk deploy --all --require-approval never --app "npx ts-node --prefer-ts-exts examples/${example}/app.ts"`);
      expect(all).toContain(`npx cdk destroy --all --force --app "npx ts-node --prefer-ts-exts examples/${example}/app.ts"`);
    }
    expect(all.match(/aws codepipeline rollback-stage/g)?.length).toBe(3);
    expect(all).toContain('/sleep/20');
  });

  test('the TypeScript snippets and the integration tests type-check against the library', () => {
    const config = ts.getParsedCommandLineOfConfigFile(path.join(ROOT, 'tsconfig.dev.json'), {}, {
      ...ts.sys,
      onUnRecoverableConfigFileDiagnostic: (d) => { throw new Error(ts.flattenDiagnosticMessageText(d.messageText, '\n')); },
    })!;
    const virtual = new Map(tsBlocks.map((b, i) => [path.join(ROOT, 'test', 'docs', `workshop-snippet-${i}.ts`), b.code]));
    const integ = fs.readdirSync(path.join(ROOT, 'test')).filter((f) => f.endsWith('.integ.ts')).map((f) => path.join(ROOT, 'test', f));
    expect(integ.length).toBeGreaterThanOrEqual(4);
    const options: ts.CompilerOptions = {
      ...config.options,
      noEmit: true,
      paths: { 'cdk-delivery-pipelines': [path.join(ROOT, 'src', 'index.ts')] },
    };
    const host = ts.createCompilerHost(options);
    const { getSourceFile, fileExists, readFile } = host;
    host.fileExists = (f) => virtual.has(f) || fileExists.call(host, f);
    host.readFile = (f) => virtual.get(f) ?? readFile.call(host, f);
    host.getSourceFile = (f, lang, ...rest) =>
      virtual.has(f) ? ts.createSourceFile(f, virtual.get(f)!, lang) : getSourceFile.call(host, f, lang, ...rest);
    const program = ts.createProgram([...virtual.keys(), ...integ], options, host);
    const diagnostics = ts.getPreEmitDiagnostics(program).map((d) => {
      const where = d.file ? `${path.relative(ROOT, d.file.fileName)}:${d.file.getLineAndCharacterOfPosition(d.start ?? 0).line + 1}` : '';
      return `${where} ${ts.flattenDiagnosticMessageText(d.messageText, '\n')}`;
    });
    expect(diagnostics).toEqual([]);
  });
});
