import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { after, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { T0 } from '../helpers/limit-store-behaviour.ts';
import { SHARED_REDIS_URL, deleteKeys, describeIf, redisReachable, uniquePrefix } from '../helpers/redis.ts';

const reachable = await redisReachable();
const prefix = uniquePrefix();
const WORKER = fileURLToPath(new URL('./admit-worker.ts', import.meta.url));

interface Tally {
  allowed: number;
  denied: number;
  unavailable: number;
}

/** Starts one worker process and resolves once it is connected, with a `go` that fires its load. */
async function startWorker(identity: string, count: number, limits: object) {
  const child = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      WORKER,
      SHARED_REDIS_URL,
      prefix,
      identity,
      String(count),
      String(T0),
      JSON.stringify(limits),
    ],
    {
      stdio: ['pipe', 'pipe', 'inherit'],
    },
  );
  const lines = createInterface({ input: child.stdout });
  const [first] = (await once(lines, 'line')) as [string];
  assert.equal(first, 'ready');
  return {
    async go(): Promise<Tally> {
      const tally = once(lines, 'line');
      child.stdin.write('go\n');
      const [line] = (await tally) as [string];
      await once(child, 'exit');
      return JSON.parse(line) as Tally;
    },
  };
}

describeIf(
  reachable,
  `Redis is not reachable at ${SHARED_REDIS_URL}`,
  'two processes sharing one Redis',
  () => {
    after(() => deleteKeys(SHARED_REDIS_URL, prefix));

    it(
      'rpm=50: 2 × 100 concurrent admissions from two processes admit exactly 50',
      { timeout: 30_000 },
      async (context) => {
        const limits = { rpm: 50, tpm: 0, daily: 0, streams: 0, usd_daily: 0, usd_monthly: 0 };
        const workers = await Promise.all([
          startWorker('replicas', 100, limits),
          startWorker('replicas', 100, limits),
        ]);
        const tallies = await Promise.all(workers.map((worker) => worker.go()));
        context.diagnostic(`per process: ${JSON.stringify(tallies)}`);
        const total = tallies.reduce((sum, t) => ({
          allowed: sum.allowed + t.allowed,
          denied: sum.denied + t.denied,
          unavailable: sum.unavailable + t.unavailable,
        }));
        assert.deepEqual(total, { allowed: 50, denied: 150, unavailable: 0 });
        // Both processes really competed for the same limit.
        assert.ok(tallies.every((t) => t.allowed + t.denied === 100));
      },
    );
  },
);
