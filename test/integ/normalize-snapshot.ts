/**
 * Makes an integration test's cloud assembly comparable across runs: `npx projen integ:<name>:snapshot` and
 * `integ:<name>:assert` run it on what `cdk synth` wrote, before the snapshot is committed or compared.
 *
 *   ts-node --transpile-only test/integ/normalize-snapshot.ts <cdk.out directory>
 *
 * What it neutralizes, and why that hides nothing the snapshot is for:
 * - asset hashes (64 hex digits: S3 keys of Lambda bundles, `asset.<hash>` paths, the keys of `*.assets.json`)
 *   become `ASSET_HASH`. They change with every edit of a handler, of the bundled assertion provider or of
 *   esbuild's output; the handlers' behaviour is covered by their unit tests, and the snapshot is about the
 *   infrastructure. The asset files themselves (`asset.*`) are excluded from the comparison and not committed.
 *   The destination ids of `*.assets.json` (`current_account-current_region-<8 hex digits>`) hash the destination,
 *   object key included, and become `...-DESTINATION`.
 * - Lambda version logical ids carry an MD5 of the function's configuration and code (`...CurrentVersion<hash>`);
 *   the 32-hex-digit suffix becomes `CODEHASH` for the same reason.
 * - `salt` of @aws-cdk/integ-tests-alpha's assertion resources is `Date.now()` (it makes CloudFormation re-run the
 *   assertion on every deploy); it becomes `SALT`.
 * Everything else (resources, properties, logical ids, outputs, the assertions) is compared byte for byte.
 */
import * as fs from 'fs';
import * as path from 'path';

export function normalize(text: string): string {
  return text
    .replace(/[a-f0-9]{64}/g, 'ASSET_HASH')
    .replace(/(current_account-current_region)-[a-f0-9]{8}/g, '$1-DESTINATION')
    .replace(/(CurrentVersion[A-Za-z0-9]{8})[a-f0-9]{32}/g, '$1CODEHASH')
    .replace(/("salt":\s*")\d+(")/g, '$1SALT$2');
}

function normalizeDirectory(dir: string): number {
  let changed = 0;
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const file = path.join(dir, entry.name);
    if (entry.isDirectory()) {
      // Nested assemblies (stages) are directories too; asset directories are not compared.
      if (!entry.name.startsWith('asset.')) changed += normalizeDirectory(file);
    } else if (entry.name.endsWith('.json')) {
      const text = fs.readFileSync(file, 'utf8');
      const normalized = normalize(text);
      if (normalized !== text) {
        fs.writeFileSync(file, normalized);
        changed += 1;
      }
    }
  }
  return changed;
}

if (require.main === module) {
  const dir = process.argv[2];
  if (!dir || !fs.existsSync(dir)) {
    console.error(`normalize-snapshot: no cloud assembly at '${dir}'`);
    process.exit(1);
  }
  normalizeDirectory(dir);
}
