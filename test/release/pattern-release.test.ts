import { App, Stack } from 'aws-cdk-lib';
import * as codepipeline from 'aws-cdk-lib/aws-codepipeline';
import * as actions from 'aws-cdk-lib/aws-codepipeline-actions';
import { Construct } from 'constructs';
import { ReleaseConfig, ReleaseContext } from '../../src/pipeline/release';
import { PatternRelease } from '../../src/release/pattern-release';

interface ManualReleaseConfig extends ReleaseConfig {
  readonly scope: Construct;
}

/** The smallest pattern release: one manual approval, and the scope it created it in. */
class ManualRelease extends PatternRelease<ManualReleaseConfig> {
  public readonly description = 'a manual release';
  public creations = 0;

  protected create(scope: Construct, _context: ReleaseContext): ManualReleaseConfig {
    this.creations++;
    return { actions: [new actions.ManualApprovalAction({ actionName: 'Approve' })], scope };
  }
}

const context = {} as ReleaseContext;

describe('PatternRelease', () => {
  test('bind() returns what create() made, and created hands back that same result', () => {
    const scope = new Stack(new App(), 'Bound');
    const release = new ManualRelease();
    const config = release.bind(scope, context);
    expect(config.scope).toBe(scope);
    expect((config.actions[0] as codepipeline.IAction).actionProperties.actionName).toBe('Approve');
    expect(release.created).toBe(config);
    expect(release.creations).toBe(1);
  });

  test('reading created before bind() fails, naming the release', () => {
    expect(() => new ManualRelease().created).toThrow('a manual release is not bound to a pipeline yet');
  });

  test('a second bind() fails instead of creating the release twice', () => {
    const scope = new Stack(new App(), 'Twice');
    const release = new ManualRelease();
    release.bind(scope, context);
    expect(() => release.bind(scope, context)).toThrow('Twice: a manual release is already bound to a pipeline; create one release per pipeline');
    expect(release.creations).toBe(1);
  });
});
