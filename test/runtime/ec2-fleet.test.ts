import { spawnSync } from 'child_process';
import { InstanceScriptOptions, instanceScript, READY_HOOK_NAME } from '../../src/runtime/ec2-fleet';

const SECRET_COMMAND = "aws ssm get-parameter --with-decryption --name '/shop/db-password' --query Parameter.Value --output text";

function options(overrides: Partial<InstanceScriptOptions> = {}): InstanceScriptOptions {
  return {
    color: 'green',
    region: 'eu-west-1',
    bucket: 'artifact-bucket',
    releaseParameter: '/cdk-delivery-pipelines/Shop/Web/green-release',
    logGroup: 'shop-logs',
    port: 3000,
    healthCheckPath: '/ping',
    startCommand: 'node server.js',
    setupCommands: ['dnf install -y nodejs24'],
    environment: { GREETING: 'say "hi" \\ bye' },
    secrets: [{ name: 'DB_PASSWORD', command: SECRET_COMMAND }],
    ...overrides,
  };
}

const lines = instanceScript(options());
const script = lines.join('\n');
const indexOf = (predicate: (line: string) => boolean) => {
  const index = lines.findIndex(predicate);
  expect(index).toBeGreaterThanOrEqual(0);
  return index;
};

describe('instanceScript', () => {
  test('is valid bash (bash -n), with every heredoc closed', () => {
    const result = spawnSync('bash', ['-n'], { input: `#!/bin/bash\n${script}\n`, encoding: 'utf-8' });
    expect(result.stderr).toBe('');
    expect(result.status).toBe(0);
    const opened = lines.filter((line) => line.includes("<<'CDK_DP_EOF'")).length;
    expect(lines.filter((line) => line === 'CDK_DP_EOF')).toHaveLength(opened);
  });

  test('stops at the first failure (set -Eeuo pipefail: also inside functions) and abandons the launch from an ERR trap set before anything can fail', () => {
    expect(lines[0]).toBe('set -Eeuo pipefail');
    const hook = indexOf((line) => line.startsWith('finish_hook() {'));
    const trap = indexOf((line) => line.startsWith('trap '));
    expect(lines[trap]).toMatch(/finish_hook ABANDON' ERR$/);
    expect(trap).toBeGreaterThan(hook);
    expect(trap).toBeLessThan(indexOf((line) => line === 'dnf install -y nodejs24'));
    expect(lines[hook]).toContain(`complete-lifecycle-action --lifecycle-hook-name ${READY_HOOK_NAME} `);
    expect(lines[hook]).toContain('--lifecycle-action-result "$1"');
  });

  test('completes the hook with CONTINUE only once the app answers {"status":"ok"} on the health path locally, after it started', () => {
    const continues = lines.filter((line) => line.includes('finish_hook CONTINUE'));
    expect(continues).toHaveLength(1);
    expect(continues[0]).toMatch(/if curl -fsS --max-time \d+ "http:\/\/127\.0\.0\.1:3000\/ping" \| grep -Eq '"status" \*: \*"ok"'; then finish_hook CONTINUE; exit 0; fi/);
    expect(indexOf((line) => line.includes('finish_hook CONTINUE'))).toBeGreaterThan(indexOf((line) => line.includes('systemctl enable --now app.service')));
  });

  test('abandons when the app never becomes ready, and exits with an error', () => {
    expect(lines.slice(-2)).toEqual(['finish_hook ABANDON', 'exit 1']);
    const loop = indexOf((line) => line.includes('finish_hook CONTINUE'));
    expect(lines[loop]).toMatch(/^for i in \$\(seq 1 \d+\); do .*; sleep \d+; done$/);
  });

  test('abandons when its color has no release (none) or a release id it does not trust', () => {
    const check = lines.find((line) => line.startsWith('if [ "$RELEASE" = "none" ]'));
    expect(check).toContain('grep -Eq "^[A-Za-z0-9._-]{1,128}$"');
    expect(check).toContain('finish_hook ABANDON; exit 1');
  });

  test('reads the release of its own color, and only that parameter', () => {
    expect(lines.filter((line) => line.includes('aws ssm get-parameter --name'))).toEqual([
      "RELEASE=$(aws ssm get-parameter --name '/cdk-delivery-pipelines/Shop/Web/green-release' --query Parameter.Value --output text)",
    ]);
    expect(script).toContain('aws s3 cp "s3://artifact-bucket/releases/$RELEASE/bundle.tgz" /tmp/bundle.tgz');
    expect(script).toContain('APP_COLOR=green');
    expect(script).toContain('"log_stream_name":"{instance_id}/green/app"');
    const blue = instanceScript(options({ color: 'blue', releaseParameter: '/p/blue-release' })).join('\n');
    expect(blue).toContain("--name '/p/blue-release'");
    expect(blue).not.toContain('green');
  });

  test('never prints a secret value: it is read into a variable, written to a root-only file created first, then unset', () => {
    const read = indexOf((line) => line.startsWith('SECRET_VALUE=$('));
    expect(lines[read]).toBe(`SECRET_VALUE=$(${SECRET_COMMAND})`);
    expect(lines[read + 1]).toMatch(/^printf '%s="%s"\\n' DB_PASSWORD "\$\(printf '%s' "\$SECRET_VALUE" \| sed .*\)" >> \/etc\/app\/secrets\.env$/);
    expect(indexOf((line) => line === 'install -m 600 -o root -g root /dev/null /etc/app/secrets.env')).toBeLessThan(read);
    expect(indexOf((line) => line === 'unset SECRET_VALUE')).toBeGreaterThan(read);
    const uses = lines.filter((line) => line.includes('SECRET_VALUE'));
    expect(uses).toHaveLength(3);
    expect(script).not.toMatch(/echo[^\n]*SECRET_VALUE/);
    expect(script).not.toMatch(/set -x|set -o xtrace/);
  });

  test('the plain environment file holds PORT, the color and the environment (quoted), and no secret', () => {
    const plain = /cat > \/etc\/app\/app\.env <<'CDK_DP_EOF'\n([\s\S]*?)\nCDK_DP_EOF/.exec(script)![1];
    expect(plain.split('\n')).toEqual(['PORT=3000', 'APP_COLOR=green', 'GREETING="say \\"hi\\" \\\\ bye"']);
  });

  test('without secrets nothing is read, and the secrets file systemd reads still exists (empty)', () => {
    const none = instanceScript(options({ secrets: [] }));
    expect(none.some((line) => line.startsWith('SECRET_VALUE='))).toBe(false);
    expect(none).toContain('install -m 600 -o root -g root /dev/null /etc/app/secrets.env');
    expect(none).toContain('EnvironmentFile=/etc/app/secrets.env');
  });

  test('quotes what it is given: environment values for systemd, the region and the parameter name for the shell', () => {
    const quoted = instanceScript(options({
      region: "us-'east'-1",
      releaseParameter: "/odd name/it's",
      environment: { PATHS: 'a\\b "c"' },
    })).join('\n');
    expect(quoted).toContain("export AWS_DEFAULT_REGION='us-'\\''east'\\''-1'");
    expect(quoted).toContain("--name '/odd name/it'\\''s'");
    expect(quoted).toContain('PATHS="a\\\\b \\"c\\""');
    const result = spawnSync('bash', ['-n'], { input: quoted, encoding: 'utf-8' });
    expect(result.status).toBe(0);
  });

  test('runs the start command as the unprivileged app user, from the release directory, with the environment files', () => {
    expect(script).toContain('cd /opt/app/current\nexec node server.js');
    for (const line of ['User=app', 'EnvironmentFile=/etc/app/app.env', 'EnvironmentFile=/etc/app/secrets.env', 'ExecStart=/opt/app/start.sh', 'NoNewPrivileges=true']) {
      expect(lines).toContain(line);
    }
  });

  test('ships the app and boot logs to CloudWatch Logs (the log group it is given), one stream per instance and color', () => {
    expect(script).toContain('sed -i "s|__LOG_GROUP__|shop-logs|g"');
    expect(script).toContain('"file_path":"/var/log/app/app.log"');
    expect(script).toContain('"log_stream_name":"{instance_id}/green/boot"');
    expect(script).toContain('amazon-cloudwatch-agent-ctl -a fetch-config -m ec2 -s');
  });

  test('uses IMDSv2 (a session token) to find its instance id', () => {
    expect(lines.find((line) => line.startsWith('TOKEN='))).toContain('-X PUT http://169.254.169.254/latest/api/token');
    expect(lines.find((line) => line.startsWith('INSTANCE_ID='))).toContain('-H "X-aws-ec2-metadata-token: $TOKEN"');
  });
});
