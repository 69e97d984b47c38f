/**
 * The one way the release engines write a state parameter (the image in production, the live color, a color's
 * release, the release lock): overwrite a parameter that its state stack created, and never leave behind one that the
 * write itself created (ADR 0012, "State parameters at teardown").
 *
 * SSM has no conditional write, and IAM cannot tell a creation from an overwrite (`ssm:Overwrite` is the request's
 * `Overwrite` flag, not whether the parameter exists), so the check comes after the write: a parameter's first
 * version is 1, and one the state stack created has been written at least once before, so an overwrite answers 2 or
 * more. A write that answers version 1 created the parameter after its stack deleted it (a release in flight at
 * `cdk destroy`, or the state stack deleted on its own): the parameter is deleted again at once and the write fails
 * with `StateParameterGoneError`, which is final (not retryable: a retry would find version 1 and overwrite it).
 */
import { DeleteParameterCommand, PutParameterCommand } from '@aws-sdk/client-ssm';
import type { SSMClient } from '@aws-sdk/client-ssm';
import { describeError } from './common';

/**
 * The state parameter did not exist: the write created it, and it has been deleted again (or, when `deleteError` is
 * set, deleting it failed and it is left for a person to delete). Final, never retried: a retry would overwrite what
 * the write created and take it for the state stack's parameter.
 */
export class StateParameterGoneError extends Error {
  constructor(readonly parameterName: string, readonly deleteError?: string) {
    super(`the state parameter ${parameterName} did not exist (its state stack was deleted, or someone deleted the parameter): the write created it and ` +
      (deleteError === undefined
        ? 'it was deleted again; nothing is recorded'
        : `deleting it again failed (${deleteError}): delete it by hand; nothing is recorded`));
    this.name = 'StateParameterGoneError';
  }
}

/**
 * Overwrites the String parameter `name` with `value`; returns the new version (undefined only if SSM did not say).
 * Throws the SSM error of the write, or `StateParameterGoneError` when the parameter did not exist (after deleting
 * what the write created; the SDK's own retries cover a throttled delete).
 */
export async function overwriteStateParameter(ssm: SSMClient, name: string, value: string): Promise<number | undefined> {
  const put = await ssm.send(new PutParameterCommand({ Name: name, Value: value, Type: 'String', Overwrite: true }));
  if (put.Version !== 1) return put.Version;
  try {
    await ssm.send(new DeleteParameterCommand({ Name: name }));
  } catch (err) {
    // Someone else deleted it in between: what the write created is gone either way.
    if ((err as { name?: unknown } | undefined)?.name !== 'ParameterNotFound') {
      throw new StateParameterGoneError(name, describeError(err));
    }
  }
  throw new StateParameterGoneError(name);
}
