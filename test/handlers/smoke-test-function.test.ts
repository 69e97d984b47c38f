import * as fs from 'node:fs';
import * as path from 'node:path';
import { App, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { SmokeTestFunction } from '../../src/handlers/smoke-test-function';

// The bundle is built by `npx projen bundle` (the test task runs it first).
const ASSET_DIR = path.join(__dirname, '..', '..', 'assets', 'handlers', 'smoke-test.lambda');

describe('SmokeTestFunction', () => {
  let template: Template;

  beforeAll(() => {
    const stack = new Stack(new App(), 'Stack');
    new SmokeTestFunction(stack, 'SmokeTest');
    template = Template.fromStack(stack);
  });

  test('runs the bundled handler on nodejs24.x', () => {
    template.resourceCountIs('AWS::Lambda::Function', 1);
    template.hasResourceProperties('AWS::Lambda::Function', {
      Runtime: 'nodejs24.x',
      Handler: 'index.handler',
    });
  });

  test('has a bundle with the handler, leaving the AWS SDK to the Lambda runtime', () => {
    const bundle = path.join(ASSET_DIR, 'index.js');
    expect(fs.existsSync(bundle)).toBe(true);
    const code = fs.readFileSync(bundle, 'utf8');
    expect(code).toContain('require("@aws-sdk/client-codepipeline")');
    expect(code).toContain('require("@aws-sdk/client-codedeploy")');
    // Loading the bundle creates its SDK clients; on Node < 22 (not the Lambda runtime) the SDK would emit a warning
    // that keeps the jest worker from exiting cleanly.
    process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const loaded = require(bundle) as { handler?: unknown };
    expect(typeof loaded.handler).toBe('function');
  });
});
