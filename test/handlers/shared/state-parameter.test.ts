import { DeleteParameterCommand, PutParameterCommand, SSMClient } from '@aws-sdk/client-ssm';
import { mockClient } from 'aws-sdk-client-mock';
import 'aws-sdk-client-mock-jest';
import { isRetryable } from '../../../src/handlers/shared/retryable';
import { overwriteStateParameter, StateParameterGoneError } from '../../../src/handlers/shared/state-parameter';

const NAME = '/cdk-delivery-pipelines/web/live-color';
const ssm = new SSMClient({ region: 'eu-west-1', maxAttempts: 1 });
const ssmMock = mockClient(ssm);

function awsError(name: string, fault: 'client' | 'server' = 'client'): Error {
  return Object.assign(new Error(`${name}: message`), { name, $fault: fault, $metadata: { httpStatusCode: fault === 'server' ? 500 : 400 } });
}

beforeEach(() => ssmMock.reset());

describe('overwriteStateParameter', () => {
  test('an overwrite (version 2 or more) returns the version and deletes nothing', async () => {
    ssmMock.on(PutParameterCommand).resolves({ Version: 7 });
    await expect(overwriteStateParameter(ssm, NAME, 'green')).resolves.toBe(7);
    expect(ssmMock).toHaveReceivedCommandWith(PutParameterCommand, { Name: NAME, Value: 'green', Type: 'String', Overwrite: true });
    expect(ssmMock).not.toHaveReceivedCommand(DeleteParameterCommand);
  });

  test('a write that created the parameter (version 1) deletes it again and fails, not retryable', async () => {
    ssmMock.on(PutParameterCommand).resolves({ Version: 1 });
    ssmMock.on(DeleteParameterCommand).resolves({});
    const error = await overwriteStateParameter(ssm, NAME, 'green').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StateParameterGoneError);
    expect(error).toMatchObject({ parameterName: NAME, deleteError: undefined });
    expect(isRetryable(error)).toBe(false);
    expect(ssmMock).toHaveReceivedCommandWith(DeleteParameterCommand, { Name: NAME });
  });

  test('someone else deleted it in between (ParameterNotFound): the same final error', async () => {
    ssmMock.on(PutParameterCommand).resolves({ Version: 1 });
    ssmMock.on(DeleteParameterCommand).rejects(awsError('ParameterNotFound'));
    await expect(overwriteStateParameter(ssm, NAME, 'green')).rejects.toMatchObject({ name: 'StateParameterGoneError', deleteError: undefined });
  });

  test.each([['ThrottlingException', 'client'], ['InternalServerError', 'server'], ['AccessDeniedException', 'client']] as const)(
    'the delete fails with %s: final, naming the parameter and the error to delete it by hand', async (name, fault) => {
      ssmMock.on(PutParameterCommand).resolves({ Version: 1 });
      ssmMock.on(DeleteParameterCommand).rejects(awsError(name, fault));
      const error = await overwriteStateParameter(ssm, NAME, 'green').catch((e: unknown) => e);
      expect(error).toBeInstanceOf(StateParameterGoneError);
      expect((error as StateParameterGoneError).deleteError).toContain(name);
      expect((error as Error).message).toContain('delete it by hand');
      expect(isRetryable(error)).toBe(false);
    });

  test.each([['ThrottlingException', true], ['TooManyUpdates', true], ['ParameterLimitExceeded', false], ['AccessDeniedException', false]] as const)(
    'the write itself fails with %s: that error, unchanged (retryable: %s), nothing deleted', async (name, retryable) => {
      ssmMock.on(PutParameterCommand).rejects(awsError(name));
      const error = await overwriteStateParameter(ssm, NAME, 'green').catch((e: unknown) => e);
      expect((error as Error).name).toBe(name);
      expect(isRetryable(error)).toBe(retryable);
      expect(ssmMock).not.toHaveReceivedCommand(DeleteParameterCommand);
    });

  test('SSM answers no version: taken as an overwrite (nothing to tell it apart by)', async () => {
    ssmMock.on(PutParameterCommand).resolves({});
    await expect(overwriteStateParameter(ssm, NAME, 'green')).resolves.toBeUndefined();
    expect(ssmMock).not.toHaveReceivedCommand(DeleteParameterCommand);
  });
});
