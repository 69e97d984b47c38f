import {
  ChangeFacts,
  describeChange,
  describeTrigger,
  failedMessage,
  firstLine,
  formatDuration,
  principalName,
  QUOTE_LIMIT,
  releasedMessage,
  releasingMessage,
  rollbackDoneMessage,
  rolledBackMessage,
  startedMessage,
} from '../../src/handlers/delivery-metrics-messages';

const URL = 'https://us-east-1.console.aws.amazon.com/codesuite/codepipeline/pipelines/shop/executions/e-1/timeline?region=us-east-1';
const commit: ChangeFacts = {
  pipeline: 'shop',
  executionId: 'e-1',
  executionUrl: URL,
  commitId: '1a2b3c4d5e6f',
  commitMessage: 'Fix the login page\n\nThe button was hidden.',
  commitUrl: 'https://github.com/octo/shop/commit/1a2b3c4d5e6f',
  author: 'Jane Doe',
  branch: 'main',
  repository: 'octo/shop',
  triggerType: 'WebhookV2',
};
const s3Manual: ChangeFacts = {
  pipeline: 'shop',
  executionId: 'e-2',
  executionUrl: URL,
  revisionId: 'v3.Version-ABC',
  triggerType: 'StartPipelineExecution',
  triggerDetail: 'arn:aws:iam::123456789012:user/jane',
};

describe('formatDuration', () => {
  test.each([
    [0, '0 s'], [12_400, '12 s'], [59_499, '59 s'], [60_000, '1 min'], [250_000, '4 min 10 s'], [3_600_000, '1 h'],
    [7_500_000, '2 h 5 min'], [47 * 3_600_000, '47 h'], [48 * 3_600_000, '2 d'], [50 * 3_600_000, '2 d 2 h'],
    [-1, 'unknown'], [Number.NaN, 'unknown'], [Number.POSITIVE_INFINITY, 'unknown'],
  ])('%p ms is "%s"', (ms, text) => {
    expect(formatDuration(ms)).toBe(text);
  });
});

describe('pieces', () => {
  test('firstLine: the first non-empty line, trimmed, cut with a mark', () => {
    expect(firstLine('\n  hello  \nworld')).toBe('hello');
    expect(firstLine('   \n  ')).toBeUndefined();
    expect(firstLine(undefined)).toBeUndefined();
    const long = 'x'.repeat(QUOTE_LIMIT + 10);
    expect(firstLine(long)).toHaveLength(QUOTE_LIMIT);
    expect(firstLine(long)!.endsWith('…')).toBe(true);
    expect(firstLine('x'.repeat(QUOTE_LIMIT))).toBe('x'.repeat(QUOTE_LIMIT));
  });

  test('describeChange: a commit with its message, author and place; a revision; nothing known', () => {
    expect(describeChange(commit)).toBe('commit 1a2b3c4 "Fix the login page" by Jane Doe (octo/shop main)');
    expect(describeChange({ ...commit, author: undefined, commitMessage: undefined, repository: undefined })).toBe('commit 1a2b3c4 (main)');
    expect(describeChange({ ...commit, branch: undefined, repository: undefined })).toBe('commit 1a2b3c4 "Fix the login page" by Jane Doe');
    expect(describeChange(s3Manual)).toBe('revision v3.Version-ABC');
    expect(describeChange({ pipeline: 'shop', executionId: 'e', executionUrl: URL })).toBe('the latest revision of the source');
  });

  test.each([
    ['Webhook', undefined, 'a change in the source'],
    ['WebhookV2', undefined, 'a change in the source'],
    ['CloudWatchEvent', undefined, 'a change in the source'],
    ['PollForSourceChanges', undefined, 'a change in the source'],
    ['PutActionRevision', undefined, 'a change in the source'],
    ['StartPipelineExecution', 'arn:aws:sts::123456789012:assumed-role/Admin/jane', 'a manual start by Admin/jane'],
    ['StartPipelineExecution', undefined, 'a manual start'],
    ['CreatePipeline', undefined, 'the creation of the pipeline'],
    ['ManualRollback', 'arn:aws:iam::123456789012:role/Deployer', 'a manual rollback by Deployer'],
    ['ManualRollback', undefined, 'a manual rollback'],
    ['AutomatedRollback', undefined, 'an automated rollback'],
    ['SomethingNew', undefined, 'SomethingNew'],
    ['', undefined, undefined],
    [undefined, undefined, undefined],
  ])('describeTrigger(%p, %p) is %p', (triggerType, triggerDetail, text) => {
    expect(describeTrigger({ pipeline: 'p', executionId: 'e', executionUrl: URL, triggerType, triggerDetail })).toBe(text);
  });

  test('principalName keeps what is not an IAM or STS ARN', () => {
    expect(principalName('arn:aws:codeconnections:us-east-1:1:connection/x')).toBe('arn:aws:codeconnections:us-east-1:1:connection/x');
    expect(principalName('jane')).toBe('jane');
  });
});

describe('one readable message per lifecycle event', () => {
  test('started: commit, author, message, link', () => {
    expect(startedMessage(commit)).toEqual({
      subject: 'STARTED: shop builds commit 1a2b3c4',
      message: [
        'STARTED: pipeline shop builds commit 1a2b3c4 "Fix the login page" by Jane Doe (octo/shop main), after a change in the source.',
        'Change: https://github.com/octo/shop/commit/1a2b3c4d5e6f',
        `Follow the release: ${URL}`,
      ].join('\n'),
    });
  });

  test('started by hand without a commit', () => {
    expect(startedMessage(s3Manual)).toEqual({
      subject: 'STARTED: shop builds a new revision',
      message: `STARTED: pipeline shop builds revision v3.Version-ABC, after a manual start by jane.\nFollow the release: ${URL}`,
    });
    expect(startedMessage({ ...s3Manual, triggerType: undefined }).message).toMatch(/^STARTED: pipeline shop builds revision v3.Version-ABC\.\n/);
  });

  test('releasing', () => {
    const { subject, message } = releasingMessage(commit);
    expect(subject).toBe('RELEASING: shop shifts production to a new version');
    expect(message).toMatch(/^RELEASING: pipeline shop releases commit 1a2b3c4 .* an alarm, a failed smoke test, a rejection or a timed-out approval rolls it back\.\nFollow the release: /);
  });

  test('a build or tests failed: which action, why, the build with its reports', () => {
    expect(failedMessage(commit, {
      stage: 'Build', action: 'Build', provider: 'CodeBuild', reason: 'Tests failed: 3 of 120\nmore', url: 'https://build/1',
    })).toEqual({
      subject: 'FAILED: shop failed in Build / Build',
      message: [
        'FAILED: pipeline shop stopped at Build / Build while building commit 1a2b3c4 "Fix the login page" by Jane Doe (octo/shop main). ' +
          'Nothing after the failed action ran; production is unchanged.',
        'Why: Tests failed: 3 of 120',
        'The build log and the test reports: https://build/1',
        `Execution: ${URL}`,
      ].join('\n'),
    });
    expect(failedMessage(commit, { stage: 'Verify', action: 'Scan', provider: 'Lambda', url: 'https://x' }).message).toContain('\nDetails: https://x\n');
    const unknown = failedMessage(s3Manual, undefined);
    expect(unknown.subject).toBe('FAILED: shop failed');
    expect(unknown.message).toBe(`FAILED: pipeline shop stopped at an unknown action while building revision v3.Version-ABC. Nothing after the failed action ran; production is unchanged.\nExecution: ${URL}`);
  });

  test('rolled back: why, and who put production back', () => {
    const engine = rolledBackMessage(commit, { stage: 'Release', action: 'Deploy', reason: 'Alarm Http5xx is in ALARM', url: 'https://deployment' }, true);
    expect(engine).toEqual({
      subject: 'ROLLED BACK: shop did not release commit 1a2b3c4',
      message: [
        'ROLLED BACK: pipeline shop did not release commit 1a2b3c4 "Fix the login page" by Jane Doe (octo/shop main): Release / Deploy failed.',
        'Why: Alarm Http5xx is in ALARM',
        'The release engine has put production back on the previous version.',
        'Details: https://deployment',
        `Execution: ${URL}`,
      ].join('\n'),
    });
    const stage = rolledBackMessage(s3Manual, undefined, false);
    expect(stage.subject).toBe('ROLLED BACK: shop did not release');
    expect(stage.message).toContain('the Release stage failed.\nWhy: the failed action gave no reason; see its details\nThe pipeline now rolls the Release stage back');
  });

  test('released, with the lead time', () => {
    expect(releasedMessage(commit, 7_500_000, 'the commit')).toEqual({
      subject: 'RELEASED: shop released commit 1a2b3c4',
      message: [
        'RELEASED: pipeline shop put commit 1a2b3c4 "Fix the login page" by Jane Doe (octo/shop main) into production.',
        'Lead time: 2 h 5 min from the commit to production.',
        'Change: https://github.com/octo/shop/commit/1a2b3c4d5e6f',
        `Execution: ${URL}`,
      ].join('\n'),
    });
    expect(releasedMessage(s3Manual, undefined, undefined)).toEqual({
      subject: 'RELEASED: shop released a new version',
      message: `RELEASED: pipeline shop put revision v3.Version-ABC into production.\nExecution: ${URL}`,
    });
    expect(releasedMessage(s3Manual, 1000, undefined).message).toContain('Lead time: 1 s from the change to production.');
  });

  test('a rollback execution finished', () => {
    expect(rollbackDoneMessage({ ...commit, triggerType: 'AutomatedRollback' }, 'e-0', 600_000)).toEqual({
      subject: 'ROLLED BACK: shop runs the previous release again',
      message: `ROLLED BACK: pipeline shop put the release of execution e-0 back into production, after an automated rollback.\nTime to restore: 10 min.\nExecution: ${URL}`,
    });
    expect(rollbackDoneMessage({ ...s3Manual, triggerType: undefined }, undefined, undefined).message)
      .toBe(`ROLLED BACK: pipeline shop put the release of execution (unknown) back into production.\nExecution: ${URL}`);
  });

  test('no raw JSON, subjects on one line of at most 100 characters', () => {
    const long: ChangeFacts = { ...commit, pipeline: 'p'.repeat(120), commitMessage: '{"not": "json"} is quoted as text' };
    const all = [
      startedMessage(long), releasingMessage(long), failedMessage(long, undefined), rolledBackMessage(long, undefined, true),
      releasedMessage(long, 1, 'the commit'), rollbackDoneMessage(long, 'e', 1),
    ];
    for (const { subject, message } of all) {
      expect(subject.length).toBeLessThanOrEqual(100);
      expect(subject).not.toMatch(/\n/);
      expect(subject.endsWith('…')).toBe(true);
      expect(message).toMatch(/^[A-Z ]+: pipeline p+ /);
    }
    for (const { message } of [startedMessage(commit), releasedMessage(commit, 1, 'the commit'), failedMessage(commit, undefined)]) {
      expect(message).not.toMatch(/[{}[\]]/);
    }
  });
});
