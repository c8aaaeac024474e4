/**
 * Every setting the code reads from the environment is listed in .env.example and in the README's
 * settings table, so the documentation cannot silently fall behind the code.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';

const ROOT = join(import.meta.dirname, '../..');
const READS = [
  /\benv\.([A-Z][A-Z0-9_]+)/g,
  /\((?:env|[a-zA-Z]*Source), '([A-Z][A-Z0-9_]+)'/g,
  /\? '([A-Z][A-Z0-9_]+)' :/g,
];
/** Internal: set by the cluster primary for its workers, not by users. */
const INTERNAL = new Set(['LLMC_CLUSTER_MOCK_UPSTREAM']);

function settingsReadBy(dir: string): Set<string> {
  const names = new Set<string>();
  for (const entry of readdirSync(dir, { recursive: true, encoding: 'utf8' })) {
    if (!entry.endsWith('.ts')) continue;
    const source = readFileSync(join(dir, entry), 'utf8');
    for (const pattern of READS)
      for (const match of source.matchAll(pattern))
        if (match[1] && !INTERNAL.has(match[1])) names.add(match[1]);
  }
  return names;
}

describe('settings are documented', () => {
  const names = settingsReadBy(join(ROOT, 'src'));

  it('finds the settings the code reads', () => {
    for (const known of [
      'ANTHROPIC_API_KEY',
      'PORT',
      'WORKERS',
      'RATE_LIMIT_RPM',
      'METRICS_REQUIRE_KEY',
      'ALLOW_UNAUTHENTICATED',
      'SERVICE_API_KEYS_FILE',
      'REDIS_URL',
    ])
      assert.ok(names.has(known), known);
  });

  it('each is in .env.example and in the README settings table', () => {
    const example = readFileSync(join(ROOT, '.env.example'), 'utf8');
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
    const missing = [...names].filter(
      (name) =>
        !new RegExp(`^#?\\s*${name}=`, 'm').test(example) ||
        !new RegExp(`^\\|[^\\n]*\`${name}\``, 'm').test(readme),
    );
    assert.deepEqual(missing, []);
  });
});
