import { awscdk, javascript } from 'projen';

/**
 * The lowest aws-cdk-lib a user may bring. cdk-nag 3 needs 2.257.0, which already has CodePipeline V2 triggers and
 * stage rollback, ECS native blue/green deployments and the manual approval timeout; but before 2.269.0
 * `Validations.acknowledge()` refuses finding-level ids that contain `::` twice (such as
 * `AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:...]`), which the constructs acknowledge. Checked by compiling and
 * running the unit tests against 2.269.0 (the offline validator bundled with it is older and lacks the engine the
 * compliance harness uses, so the harness needs the development version).
 */
const MIN_CDK_VERSION = '2.269.0';
/** What we develop and test against: a current release. */
const DEV_CDK_VERSION = '2.276.0';
/** The newest @aws-cdk/integ-tests-alpha the registry has; its peer range accepts DEV_CDK_VERSION. */
const INTEG_TESTS_ALPHA_VERSION = '2.245.0-alpha.0';

const project = new awscdk.AwsCdkConstructLibrary({
  name: 'cdk-delivery-pipelines',
  packageName: 'cdk-delivery-pipelines',
  description:
    'Safe delivery pipelines for AWS CDK: a CodePipeline V2 delivery core with smoke tests, approvals, notifications, monitoring and compliance checks, a Fargate blue/green pattern on ECS native blue/green deployments, a serverless API pattern with coordinated CodeDeploy canary releases, and an EC2 Auto Scaling blue/green pattern with a test listener and a Step Functions release workflow.',
  author: 'cdk-delivery-pipelines contributors',
  authorAddress: 'maintainers@cdk-delivery-pipelines.dev',
  repositoryUrl: 'https://github.com/cdk-delivery-pipelines/cdk-delivery-pipelines.git',
  license: 'Apache-2.0',
  keywords: ['cdk', 'aws-cdk', 'awscdk', 'codepipeline', 'blue-green', 'canary', 'ecs', 'fargate', 'lambda', 'ec2', 'autoscaling', 'ci-cd'],
  defaultReleaseBranch: 'main',
  packageManager: javascript.NodePackageManager.NPM,
  projenrcTs: true,
  jsiiVersion: '~6.0.0',
  typescriptVersion: '~6.0.0',
  // Node 22 and 24, the current LTS lines (Node 20 is end of life; jsii warns about it). The workflows run 24.
  minNodeVersion: '22.0.0',
  workflowNodeVersion: '24',

  cdkVersion: MIN_CDK_VERSION,
  constructsVersion: '10.5.1',
  peerDependencyOptions: { pinnedDevDependency: false },
  devDeps: [
    `aws-cdk-lib@${DEV_CDK_VERSION}`,
    'constructs@^10.8.1',
    'cdk-nag@^3.0.2',
    'esbuild',
    '@types/aws-lambda',
    '@aws-sdk/client-sns',
    '@aws-sdk/client-ssm',
    '@aws-sdk/client-codedeploy',
    '@aws-sdk/client-codepipeline',
    '@aws-sdk/client-ecr',
    '@aws-sdk/client-ecs',
    '@aws-sdk/client-lambda',
    '@aws-sdk/client-cloudwatch',
    '@aws-sdk/client-auto-scaling',
    '@aws-sdk/client-elastic-load-balancing-v2',
    '@aws-sdk/client-sfn',
    '@aws-sdk/client-cloudformation',
    '@aws-sdk/client-dynamodb',
    '@aws-sdk/client-s3',
    '@aws-sdk/client-eventbridge',
    // The SDK's own error classification (src/handlers/shared/retryable.ts), bundled into the handlers.
    '@smithy/core',
    '@smithy/types',
    // Only for test/docs/workshop.test.ts: the guide's `aws codestar-connections` command must be a real operation.
    '@aws-sdk/client-codestar-connections',
    'asl-validator',
    'aws-sdk-client-mock',
    'aws-sdk-client-mock-jest',
    // Assertions of the integration tests (test/*.integ.ts). Pinned: alpha modules break between releases; the
    // registry has no 2.276.0-alpha.0, and 2.245.0-alpha.0 declares aws-cdk-lib ^2.245.0 as its peer.
    `@aws-cdk/integ-tests-alpha@${INTEG_TESTS_ALPHA_VERSION}`,
  ],

  // Lambda handlers: src/**/*.lambda.ts, bundled by esbuild into assets/ and shipped in the npm package.
  lambdaOptions: {
    runtime: awscdk.LambdaRuntime.NODEJS_24_X,
    bundlingOptions: { sourcemap: false },
  },

  // jsii targets. Packaging for these runs in the release workflow, never in `npm test`.
  publishToPypi: { distName: 'cdk-delivery-pipelines', module: 'cdk_delivery_pipelines' },
  publishToMaven: {
    javaPackage: 'io.github.cdkdeliverypipelines',
    mavenGroupId: 'io.github.cdk-delivery-pipelines',
    mavenArtifactId: 'cdk-delivery-pipelines',
  },
  publishToNuget: { dotNetNamespace: 'CdkDeliveryPipelines', packageId: 'CdkDeliveryPipelines' },
  publishToGo: { moduleName: 'github.com/cdk-delivery-pipelines/cdk-delivery-pipelines-go' },

  tsconfigDevFile: 'tsconfig.dev.json',
  tsconfigDev: {
    include: ['examples/**/*.ts', 'scripts/**/*.ts', '.projenrc.ts'],
    compilerOptions: {},
  },
  eslintOptions: {
    // One program for everything, from the dev tsconfig (it includes src, test, examples and scripts).
    projectService: false,
    tsconfigPath: './tsconfig.dev.json',
    dirs: ['src'],
    devdirs: ['test', 'examples', 'scripts', 'bench', 'build-tools', 'projenrc', '.projenrc.ts'],
  },
  jestOptions: {
    updateSnapshot: javascript.UpdateSnapshot.NEVER,
    jestConfig: {
      testMatch: ['<rootDir>/test/**/*.test.ts', '<rootDir>/examples/**/*.test.ts'],
      // Synthesizing CDK apps is CPU bound: two workers on two cores.
      maxWorkers: 2,
      testTimeout: 120_000,
    },
  },
  gitignore: ['/.ci/tools/', 'cdk.out/', '*.d.ts.map', '.jsii.tabl.json', '/dist/', '.stryker-tmp*/', '/reports/'],
});

for (const ignored of ['/examples/', '/scripts/', '/bench/', '/docs/', '/cdk.out/', '/.ci/', '/tsconfig.dev.json', '/stryker/', '/reports/']) {
  project.addPackageIgnore(ignored);
}

// `npm run examples`: synthesize every example app, run the compliance harness, print a table per stack.
project.addTask('examples', {
  description: 'Synthesize every example app into cdk.out/<example>/ and check it with cdk-nag and the CloudFormation validator',
  exec: 'ts-node --project tsconfig.dev.json scripts/examples.ts',
  receiveArgs: true,
});

// `npm run bench`: synth times against hand-written aws-cdk-lib apps, scaling, sizes against CloudFormation's limits,
// the modelled release time (bench/bench.ts). Slow and machine-dependent: never part of `npm test`.
project.addTask('bench', {
  description: 'Benchmark: synth times (vs hand-written aws-cdk-lib apps), scaling, template sizes, modelled release time; writes bench/results.json',
  exec: 'ts-node --transpile-only --project tsconfig.dev.json bench/bench.ts',
  receiveArgs: true,
});

// `npm test` also proves the jsii contract: compile, then generate code (no toolchains) for the four languages.
const pacmakCodeOnly = project.addTask('test:jsii-targets', {
  description: 'Generate Python, Java, .NET and Go sources from the jsii assembly (no language toolchains needed)',
  exec: 'jsii-pacmak --code-only --outdir dist/code-only --targets python java dotnet go',
});
const apiDocsInSync = project.addTask('test:api-docs', {
  description: 'Fail when API.md is not what jsii-docgen generates from the current API',
  steps: [
    { exec: 'jsii-docgen -o API.md' },
    { exec: 'git diff --exit-code -- API.md', name: 'API.md must be committed as generated' },
  ],
});
// The README's TypeScript examples must compile against the library (and translate to the other languages).
const rosettaStrict = project.addTask('test:readme-examples', {
  description: 'Compile the README code examples with jsii-rosetta in strict mode',
  exec: 'jsii-rosetta extract --strict',
});
// `npx projen mutation`: mutation testing of the release handlers (StrykerJS needs Node 22+; slow, so not in `npm test`).
// Issue 8's bar: each handler's tests kill at least 85 % of the mutants.
const MUTATED_HANDLERS = ['serverless-release', 'record-release', 'ecs-release-hook', 'ec2-release', 'ec2-release-guard', 'release-cleanup', 'handlers-shared'];
project.addTask('mutation', {
  description: 'Mutation testing of the release handlers with StrykerJS (Node 22+); each reports its score',
  steps: [
    { exec: 'npm install --no-save --no-audit --no-fund @stryker-mutator/core@10 @stryker-mutator/jest-runner@10' },
    ...MUTATED_HANDLERS.map((name) => ({ exec: `stryker run stryker/${name}.config.json`, name: `mutation testing of ${name}` })),
  ],
});
// The handlers' own modules (src/handlers/shared/, the controller's folder) are bundled by esbuild like the entry files.
project.eslint?.allowDevDeps('src/handlers/**/*.ts');
// Integration tests: projen discovers test/*.integ.ts and adds `integ:<name>:snapshot`, `:assert` (spawned by `npm test`),
// `:deploy`, `:destroy` and `:watch` (see docs/workshop/ and test/integ/integ-app.ts). Asset hashes, Lambda version
// hashes and the assertions' timestamp salt are neutralized before a snapshot is written or compared
// (test/integ/normalize-snapshot.ts explains why); the asset files are excluded and not committed.
// `npx projen integ:snapshot-all` regenerates every snapshot.
const normalizeSnapshot = (dir: string) => `ts-node --transpile-only --project tsconfig.dev.json test/integ/normalize-snapshot.ts ${dir}`;
// projen's exclusions, the construct metadata (annotations with stack traces of absolute paths in node_modules) and
// the synth timings aws-cdk-lib writes when a synth is slow.
const INTEG_EXCLUDED = ['asset.*', 'cdk.out', 'manifest.json', 'tree.json', '*.metadata.json', 'performance-counters.json'];
for (const integ of project.components.filter((c): c is awscdk.IntegrationTest => c instanceof awscdk.IntegrationTest)) {
  const name = integ.snapshotTask.name.replace(/^integ:(.*):snapshot$/, '$1');
  const snapshotDir = `test/${name}.integ.snapshot`;
  const tmpDir = `test/.tmp/${name}.integ`;
  // Transpile only: the integration apps are type-checked with the rest of test/ (test/docs/workshop.test.ts).
  const app = `ts-node --transpile-only -P tsconfig.dev.json test/${name}.integ.ts`;
  const cdkOptions = ['--app', `'${app}'`, '--no-notices', '--no-version-reporting', '--no-asset-metadata', '--no-path-metadata'].join(' ');
  const assertDir = `${tmpDir}/assert.cdk.out`;
  project.addGitIgnore(`${snapshotDir}/*.metadata.json`);
  project.addGitIgnore(`${snapshotDir}/performance-counters.json`);
  const deployDir = `${tmpDir}/deploy.cdk.out`;
  integ.snapshotTask.reset(`rm -rf ${snapshotDir}`);
  integ.snapshotTask.exec(`cdk synth --quiet ${cdkOptions} -o ${snapshotDir}`);
  integ.snapshotTask.exec(normalizeSnapshot(snapshotDir));
  // projen's first step (fail when there is no snapshot), then synth, normalize, compare.
  const exists = integ.assertTask.steps[0];
  integ.assertTask.reset();
  if (exists?.execArgs) integ.assertTask.execArgs(exists.execArgs);
  integ.assertTask.exec(`rm -rf ${assertDir}`);
  integ.assertTask.exec(`cdk synth --quiet ${cdkOptions} -o ${assertDir}`);
  integ.assertTask.exec(normalizeSnapshot(assertDir));
  integ.assertTask.exec(`diff -r ${INTEG_EXCLUDED.map((x) => `-x '${x}'`).join(' ')} ${snapshotDir}/ ${assertDir}/`, {
    name: `the synthesized ${name} must equal its committed snapshot (npx projen integ:${name}:snapshot updates it)`,
  });
  // Deploy into the caller's account (INTEG_DEPLOY=1, see test/integ/integ-app.ts); on success keep the assembly
  // as the snapshot (normalized, so it compares), then destroy.
  integ.deployTask.reset(`rm -rf ${deployDir}`);
  integ.deployTask.exec(`INTEG_DEPLOY=1 cdk deploy ${cdkOptions} '**' --require-approval=never -o ${deployDir}`);
  integ.deployTask.exec(`rm -rf ${snapshotDir} && mv ${deployDir} ${snapshotDir}`);
  integ.deployTask.exec(normalizeSnapshot(snapshotDir));
  integ.deployTask.spawn(integ.destroyTask);
}

project.testTask.prependSpawn(project.compileTask);
project.testTask.prependSpawn(project.bundler.bundleTask);
project.testTask.spawn(pacmakCodeOnly);
project.testTask.spawn(apiDocsInSync);
project.testTask.spawn(rosettaStrict);

project.synth();
