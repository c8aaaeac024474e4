/**
 * One "replica" for the cross-process test: connects its own RedisLimitStore, says `ready`, waits
 * for `go` on stdin, fires `count` admissions at once and prints the tally as JSON.
 * Arguments: url prefix identity count nowMs limitsJson
 */
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import type { LimitValues } from '../../src/limits/limits.ts';
import { RedisLimitStore } from '../../src/limits/redis-store.ts';

const [url = '', prefix = '', identity = '', count = '0', nowMs = '0', limitsJson = '{}'] =
  process.argv.slice(2);
const limits = JSON.parse(limitsJson) as LimitValues;
const store = new RedisLimitStore({ url, prefix, commandTimeoutMs: 5_000 });
if (!(await store.waitUntilReady(5_000))) throw new Error('Redis not ready');

const lines = createInterface({ input: process.stdin });
process.stdout.write('ready\n');
await once(lines, 'line');

const results = await Promise.all(
  Array.from({ length: Number(count) }, (_, i) =>
    store.admit({ identity, limits, nowMs: Number(nowMs), reserveTokens: 0, leaseId: `${process.pid}-${i}` }),
  ),
);
const tally = { allowed: 0, denied: 0, unavailable: 0 };
for (const result of results) tally[result.outcome]++;
process.stdout.write(`${JSON.stringify(tally)}\n`);
lines.close();
await store.close();
