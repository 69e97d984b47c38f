/**
 * Re-encrypts the live EC2 release bundles under the bundle bucket's current key: a Lambda-backed CloudFormation
 * custom resource in the EC2 pattern's service stack (ADR 0012, "Upgrading").
 *
 * Why: an upgrade from a version whose pipeline key lived in the service stack creates the new key in the state
 * stack and, in the update's cleanup phase, schedules the old key for deletion; a key pending deletion cannot
 * decrypt. The bundles the instances install at boot (`<Prefix><release>/bundle.tgz`, named by the colors'
 * `<color>-release` SSM parameters) were written under the old key: without this resource every instance launched
 * after the upgrade (scale-out, replacement, a rollback's relaunch) could not install its release.
 *
 * - Create, Update (the property `KeyArn` is the bucket key's ARN, so an upgrade creates the resource and a key
 *   change updates it; both run in the update phase, before the cleanup phase deletes the old key): reads the two
 *   parameters named by `ReleaseParameterNames` (`GetParameter`; `none`, an id the instances would refuse, or a
 *   parameter that does not exist names nothing), and for each bundle named: `HeadObject`; a bundle that no longer
 *   exists is skipped, one already under `KeyArn` (`SSEKMSKeyId`) is skipped; else `CopyObject` onto itself with
 *   `ServerSideEncryption: aws:kms`, `SSEKMSKeyId: KeyArn`, `BucketKeyEnabled: true`, `MetadataDirective: COPY`.
 *   Only keys under `Prefix` are ever touched. Throttling and transient errors are tried again after a pause
 *   (`shared/retryable.ts`); any other error answers FAILED naming the API, the object and the error, and
 *   CloudFormation rolls the upgrade back, which keeps the old key.
 * - Delete: nothing to do (the bundles go with the bucket, or stay with a retained one).
 *
 * Always responds to CloudFormation (`shared/cloudformation-response.ts`). IAM: `s3:GetObject` and `s3:PutObject` on
 * `<bucket>/<Prefix>*`, `s3:ListBucket` on the bucket (without it a missing object answers 403), `ssm:GetParameter`
 * on the two parameters, `kms:Encrypt` and `kms:GenerateDataKey` on the new key, `kms:Decrypt` through S3 for this
 * bucket's objects (the old key's ARN is not in the new template).
 */
import { CopyObjectCommand, HeadObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { GetParameterCommand, SSMClient } from '@aws-sdk/client-ssm';
import { AwsCallError, awsCall, awsErrorOf } from './shared/aws-call';
import { answerCustomResource, propertiesOf } from './shared/cloudformation-response';
import type { ResponseDeps } from './shared/cloudformation-response';
import { clip, defaultSleep, describeError, errorName, log, logError } from './shared/common';
import { isRetryable } from './shared/retryable';

/** Exported for tests. */
export const s3 = new S3Client({ maxAttempts: 5, requestHandler: { connectionTimeout: 3_000, requestTimeout: 60_000 } });
export const ssm = new SSMClient({ maxAttempts: 5, requestHandler: { connectionTimeout: 3_000, requestTimeout: 10_000 } });

/** Tries of one call whose error is retryable (after the SDK's own attempts), with `RETRY_DELAY_MS` × n between. */
export const CALL_ATTEMPTS = 5;
export const RETRY_DELAY_MS = 2_000;
/** Prefix of the physical id, followed by the bucket name. */
export const PHYSICAL_ID_PREFIX = 'bundle-reencrypt-';
/** The parameter value that names no release. */
export const NO_RELEASE = 'none';
/** A release id the instances install (the same rule as their boot script, `ec2-fleet.ts`). */
const RELEASE_ID = /^[A-Za-z0-9._-]{1,128}$/;
const KEY_ARN = /^arn:aws[a-z0-9-]*:kms:[a-z0-9-]+:[0-9]{12}:key\/[A-Za-z0-9-]+$/;
const BUCKET_NAME = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;
const PREFIX = /^[A-Za-z0-9._-]+\/$/;

/** What the handler takes from outside; each defaults to the real thing. */
export interface ReencryptDeps extends ResponseDeps {
  readonly s3?: S3Client;
  readonly ssm?: SSMClient;
}

/** The resource properties, checked. */
export interface ReencryptProperties {
  readonly keyArn: string;
  readonly bucketName: string;
  readonly prefix: string;
  readonly releaseParameterNames: readonly string[];
}

/** What happened to one bundle. */
export interface BundleResult {
  readonly key: string;
  readonly result: 'reencrypted' | 'already-current' | 'missing';
}

/** What one request came to: the verdict sent to CloudFormation and each bundle's fate. */
export interface ReencryptOutcome {
  readonly status: 'SUCCESS' | 'FAILED';
  readonly reason: string;
  readonly physicalResourceId: string;
  readonly bundles: readonly BundleResult[];
}

/** Lambda entry point. */
export async function handler(event: unknown): Promise<ReencryptOutcome | undefined> {
  return reencrypt(event);
}

/** Decides (see the file comment), responds to CloudFormation, and returns what it did. */
export async function reencrypt(event: unknown, deps: ReencryptDeps = {}): Promise<ReencryptOutcome | undefined> {
  return answerCustomResource<Omit<ReencryptOutcome, 'physicalResourceId'>>(event, {
    who: 'bundle re-encryption',
    physicalId,
    decide: (request) => decide(request, deps),
    // Defensive: decide() answers its own errors. A Delete must not keep the stack.
    onError: (request, err) => request.RequestType === 'Delete'
      ? { status: 'SUCCESS', reason: `error ignored on Delete: ${describeError(err)}`, bundles: [] }
      : { status: 'FAILED', reason: `bundle re-encryption error: ${describeError(err)}`, bundles: [] },
    logFields: (outcome) => ({ bundles: outcome.bundles }),
  }, deps);
}

/** The event's own physical id (Update, Delete), else `bundle-reencrypt-<BucketName>`: stable, never a replacement. */
export function physicalId(request: Record<string, unknown>): string {
  if (typeof request.PhysicalResourceId === 'string' && request.PhysicalResourceId !== '') return request.PhysicalResourceId;
  const bucket = propertiesOf(request).BucketName;
  return clip(`${PHYSICAL_ID_PREFIX}${typeof bucket === 'string' && bucket !== '' ? bucket : 'invalid'}`, 255);
}

/** The properties when they are usable, else why not. */
export function propertiesFrom(request: Record<string, unknown>): ReencryptProperties | string {
  const props = propertiesOf(request);
  const { KeyArn: keyArn, BucketName: bucketName, Prefix: prefix, ReleaseParameterNames: names } = props;
  if (typeof keyArn !== 'string' || !KEY_ARN.test(keyArn)) return `the property KeyArn must be a KMS key ARN, got ${describe(keyArn)}`;
  if (typeof bucketName !== 'string' || !BUCKET_NAME.test(bucketName)) return `the property BucketName must be a bucket name, got ${describe(bucketName)}`;
  if (typeof prefix !== 'string' || !PREFIX.test(prefix)) return `the property Prefix must be a folder like releases/, got ${describe(prefix)}`;
  if (!Array.isArray(names) || names.length === 0 || names.length > 2 || !names.every((n) => typeof n === 'string' && n !== '')) {
    return `the property ReleaseParameterNames must list one or two parameter names, got ${describe(names)}`;
  }
  return { keyArn, bucketName, prefix, releaseParameterNames: names as string[] };
}

async function decide(request: Record<string, unknown>, deps: ReencryptDeps): Promise<Omit<ReencryptOutcome, 'physicalResourceId'>> {
  const requestType = request.RequestType;
  if (requestType === 'Delete') return { status: 'SUCCESS', reason: 'Delete: nothing to do', bundles: [] };
  if (requestType !== 'Create' && requestType !== 'Update') {
    return { status: 'FAILED', reason: `unknown RequestType ${clip(JSON.stringify(requestType) ?? 'missing', 60)}: expected Create, Update or Delete`, bundles: [] };
  }
  const props = propertiesFrom(request);
  if (typeof props === 'string') return { status: 'FAILED', reason: props, bundles: [] };

  const s3Client = deps.s3 ?? s3;
  const ssmClient = deps.ssm ?? ssm;
  const sleep = deps.sleep ?? defaultSleep;
  const bundles: BundleResult[] = [];
  try {
    const keys = new Set<string>();
    for (const name of props.releaseParameterNames) {
      const release = await releaseNamedBy(ssmClient, name, sleep);
      if (release !== undefined) keys.add(`${props.prefix}${release}/bundle.tgz`);
    }
    for (const key of keys) {
      bundles.push({ key, result: await reencryptBundle(s3Client, props, key, sleep) });
    }
    const done = bundles.filter((b) => b.result === 'reencrypted').length;
    const reason = keys.size === 0
      ? 'no release recorded for either color: nothing to re-encrypt'
      : `${done} bundle(s) re-encrypted under ${props.keyArn}; ${bundles.length - done} skipped (already under it, or no longer there)`;
    return { status: 'SUCCESS', reason, bundles };
  } catch (err) {
    logError('could not re-encrypt the release bundles', awsErrorOf(err), { bucket: props.bucketName, done: bundles });
    const what = err instanceof AwsCallError ? err.message : `unexpected error: ${describeError(err)}`;
    return {
      status: 'FAILED',
      reason: `${what}. The live release bundles must be readable with the bucket's new key ${props.keyArn} before the old ` +
        'key is deleted; CloudFormation rolls this update back, which keeps the old key',
      bundles,
    };
  }
}

/** The release a color's parameter names, or `undefined` for none (`none`, an id instances refuse, no parameter). */
async function releaseNamedBy(client: SSMClient, name: string, sleep: (ms: number) => Promise<void>): Promise<string | undefined> {
  let value: string | undefined;
  try {
    const output = await withRetries('ssm:GetParameter', name, sleep, () => client.send(new GetParameterCommand({ Name: name })));
    value = output.Parameter?.Value;
  } catch (err) {
    if (errorName(awsErrorOf(err)) !== 'ParameterNotFound') throw err;
    log('WARN', 'release parameter not found: no bundle to re-encrypt for it', { parameter: name });
    return undefined;
  }
  if (value === undefined || value === NO_RELEASE) return undefined;
  if (!RELEASE_ID.test(value) || value === '.' || value === '..') {
    // The instances refuse such a value too (they install nothing): there is no bundle they could fetch.
    log('WARN', 'release parameter holds no installable release id: nothing to re-encrypt for it', { parameter: name, value: clip(value, 140) });
    return undefined;
  }
  return value;
}

/** Copies one bundle onto itself under the new key, unless it is already under it or no longer exists. */
async function reencryptBundle(
  client: S3Client,
  props: ReencryptProperties,
  key: string,
  sleep: (ms: number) => Promise<void>,
): Promise<BundleResult['result']> {
  if (!key.startsWith(props.prefix)) throw new Error(`refusing to touch ${key}: not under ${props.prefix}`);
  const subject = `s3://${props.bucketName}/${key}`;
  let current: string | undefined;
  try {
    const head = await withRetries('s3:HeadObject', subject, sleep,
      () => client.send(new HeadObjectCommand({ Bucket: props.bucketName, Key: key })));
    current = head.SSEKMSKeyId;
  } catch (err) {
    if (isMissing(awsErrorOf(err))) return missing(subject);
    throw err;
  }
  if (current !== undefined && sameKey(current, props.keyArn)) {
    log('INFO', 'bundle already under the current key', { object: subject });
    return 'already-current';
  }
  try {
    await withRetries('s3:CopyObject', subject, sleep, () => client.send(new CopyObjectCommand({
      Bucket: props.bucketName,
      Key: key,
      CopySource: `${props.bucketName}/${key.split('/').map(encodeURIComponent).join('/')}`,
      ServerSideEncryption: 'aws:kms',
      SSEKMSKeyId: props.keyArn,
      BucketKeyEnabled: true,
      MetadataDirective: 'COPY',
    })));
  } catch (err) {
    if (isMissing(awsErrorOf(err))) return missing(subject);
    throw err;
  }
  log('INFO', 'bundle re-encrypted under the current key', { object: subject, from: current ?? 'unknown', to: props.keyArn });
  return 'reencrypted';
}

function missing(subject: string): 'missing' {
  log('WARN', 'bundle no longer exists: skipped', { object: subject });
  return 'missing';
}

/** True for S3's "no such object" answers (`NoSuchKey` of GET/COPY, `NotFound` of HEAD, a 404). */
function isMissing(err: unknown): boolean {
  const name = errorName(err);
  const status = (err as { $metadata?: { httpStatusCode?: unknown } } | undefined)?.$metadata?.httpStatusCode;
  return name === 'NoSuchKey' || name === 'NotFound' || status === 404;
}

/** The same KMS key: equal ARNs, or the same key id (S3 answers the ARN; compared by id to be safe). */
function sameKey(a: string, b: string): boolean {
  const id = (value: string) => value.slice(value.lastIndexOf('/') + 1);
  return a === b || id(a) === id(b);
}

/** One AWS call, tried again after `RETRY_DELAY_MS` × n while its error is retryable, `CALL_ATTEMPTS` times at most. */
async function withRetries<T>(
  api: string,
  subject: string,
  sleep: (ms: number) => Promise<void>,
  send: () => Promise<T>,
): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await awsCall(api, send, { subject });
    } catch (err) {
      if (attempt >= CALL_ATTEMPTS || !isRetryable(awsErrorOf(err))) throw err;
      log('WARN', `${api} failed with a transient error: trying again`, { attempt, subject, error: describeError(awsErrorOf(err)) });
      await sleep(RETRY_DELAY_MS * attempt);
    }
  }
}

function describe(value: unknown): string {
  return clip(JSON.stringify(value) ?? 'missing', 120);
}
