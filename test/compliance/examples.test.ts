/**
 * Every example app goes through the judges: cdk-nag (AwsSolutions, Serverless) and AWS's offline validator.
 * One synthesis per example.
 */
import * as fs from 'fs';
import * as path from 'path';
import { App } from 'aws-cdk-lib';
import { checkApp, describeFailures, StackReport, weakAcknowledgements } from './harness';

const examplesDir = path.join(__dirname, '..', '..', 'examples');
const apps = fs.readdirSync(examplesDir).filter((name) => fs.existsSync(path.join(examplesDir, name, 'app.ts'))).sort();

test('there is at least the delivery-pipeline example', () => {
  expect(apps).toContain('delivery-pipeline');
});

describe.each(apps)('example %s', (name) => {
  let reports: StackReport[];
  beforeAll(() => {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { createApp } = require(path.join(examplesDir, name, 'app.ts')) as { createApp: () => App };
    reports = checkApp(createApp());
  });

  test('has at least one stack', () => {
    expect(reports.length).toBeGreaterThan(0);
  });

  test('has no unacknowledged cdk-nag violation and no validator ERROR/WARN', () => {
    expect(reports.map(describeFailures)).toEqual(reports.map((r) => `${r.stackName}: clean`));
  });

  test('gives every acknowledgement a reason a reviewer can check', () => {
    expect(reports.flatMap(weakAcknowledgements)).toEqual([]);
  });
});
