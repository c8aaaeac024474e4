/**
 * One build alone under one load, for before/after measurements finer than a benchmark round: the CPU
 * time of the target's process tree per request (every thread's, from schedstat: the thread pool and
 * the collector included), and with --strace the system calls of the measured requests (`strace -c
 * -f`, attached after the warm-up). Run it alternately for the builds compared, several times each
 * (bench/README.md, "The request path in 0.3.2").
 *
 *   node --import tsx bench/ab.ts [--target connector|floor] [--tree DIR] [--requests N]
 *        [--concurrency C] [--deltas D] [--delay-ms MS] [--strace FILE]
 *
 * --tree: another checkout of the connector with its dist/ built (default this one, built if stale).
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { compileChildScripts } from './compile.ts';
import { closedLoop } from './load.ts';
import { stopAll, treeCpuMs } from './procs.ts';
import {
  BENCH_DIR,
  buildIfStale,
  parseVariant,
  startConnector,
  startFake,
  startFloor,
  type LaunchContext,
} from './targets.ts';

const { values } = parseArgs({
  options: {
    target: { type: 'string', default: 'connector' },
    tree: { type: 'string' },
    requests: { type: 'string', default: '3000' },
    concurrency: { type: 'string', default: '1' },
    deltas: { type: 'string', default: '5' },
    'delay-ms': { type: 'string', default: '0' },
    strace: { type: 'string' },
  },
});
const requests = Number(values.requests);
const concurrency = Number(values.concurrency);
const shape = { deltas: Number(values.deltas), delayMs: Number(values['delay-ms']) };

try {
  const scriptsDir = compileChildScripts(BENCH_DIR);
  if (values.tree === undefined) buildIfStale(() => undefined);
  const fake = await startFake('lean', undefined, scriptsDir);
  const ctx: LaunchContext = {
    fakeUrl: fake.url,
    targetCore: undefined,
    logLevel: 'info',
    connectorNodeArgs: [],
    scriptsDir,
  };
  const variant = values.tree === undefined ? undefined : parseVariant(`ab=tree:${values.tree}`);
  const target = values.target === 'floor' ? await startFloor(ctx) : (await startConnector(ctx, variant))[0];
  if (target === undefined || !('endpoint' in target)) {
    throw new Error(`${values.target} did not start: ${target?.reason ?? '?'}`);
  }
  const ask = { endpoint: target.endpoint, shape, stream: true, run: 'ab' };
  await closedLoop({ ...ask, concurrency, maxRequests: Math.min(500, requests), maxMs: 60_000 });
  const strace =
    values.strace === undefined
      ? undefined
      : spawn('strace', ['-c', '-f', '-o', values.strace, '-p', String(target.pid)], { stdio: 'ignore' });
  // strace has attached once the target's threads are listed as traced; a second is plenty.
  if (strace) await sleep(1000);
  const cpuBefore = treeCpuMs(target.pid);
  const result = await closedLoop({ ...ask, concurrency, maxRequests: requests, maxMs: 600_000 });
  const cpuMs = treeCpuMs(target.pid) - cpuBefore;
  if (strace) {
    strace.kill('SIGINT');
    await once(strace, 'exit');
  }
  console.log(
    JSON.stringify({
      target: values.target,
      tree: values.tree ?? '.',
      requests: result.requests,
      errors: result.errors,
      cpuUsPerRequest: Number(((cpuMs * 1000) / result.requests).toFixed(1)),
    }),
  );
  if (result.errors > 0) process.exitCode = 1;
} finally {
  await stopAll();
}
