import { Construct } from 'constructs';
import { Release, ReleaseConfig, ReleaseContext } from '../pipeline/release';

/**
 * A pattern's release strategy. `bind()` creates the release's resources, acknowledges their cdk-nag findings, and
 * returns them with the Release stage's actions, typed (`C`); the pattern that handed the release to
 * `DeliveryPipeline` reads that same result back through `created` once the pipeline exists. A release binds to one
 * pipeline only.
 * @internal
 */
export abstract class PatternRelease<C extends ReleaseConfig> extends Release {
  private result?: C;

  public bind(scope: Construct, context: ReleaseContext): C {
    if (this.result) {
      throw new Error(`${scope.node.path}: ${this.description} is already bound to a pipeline; create one release per pipeline`);
    }
    this.result = this.create(scope, context);
    return this.result;
  }

  /** What `bind()` created and returned. */
  public get created(): C {
    if (!this.result) {
      throw new Error(`${this.description} is not bound to a pipeline yet: read what it created after the DeliveryPipeline exists`);
    }
    return this.result;
  }

  /** Creates the release's resources and the actions of the Release stage. */
  protected abstract create(scope: Construct, context: ReleaseContext): C;
}
