/**
 * The scenarios (full and quick sizes) and how one scenario runs against one target, returning
 * plain metrics. CPU is the target's process tree (from /proc); "load core" is the fake plus this
 * process (the load generator), both pinned to the other core.
 */
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { request } from 'undici';
import type { RunStats } from './fake-server.ts';
import { closedLoop, holdStreams, type Ask, type LoadResult } from './load.ts';
import { treeCpuMs, treeFds, treeRssMiB } from './procs.ts';
import { percentile } from './stats.ts';
import type { Target } from './targets.ts';
import type { AnswerShape } from './wire.ts';

export type Kind = 'load' | 'idle' | 'storm' | 'soak';

export interface Scenario {
  id: string;
  title: string;
  kind: Kind;
  shape: AnswerShape;
  stream: boolean;
  concurrency: number;
  maxRequests: number;
  maxMs: number;
  /** Clients start spread over this many ms, so connections do not arrive as one SYN burst. */
  rampMs: number;
  /**
   * Timing scenarios (`load`) run in every round; `idle`, `storm` and `soak` (counts and RSS, not
   * timing) once per target after the rounds.
   */
  once: boolean;
  /** Whether `direct` (the fake alone) takes part. */
  direct: boolean;
}

export type Metrics = Record<string, number>;

export interface RunContext {
  fakeUrl: string;
  fakePid: number;
  /** Wait before counting fds so idle upstream keep-alive sockets have closed (0 in quick mode). */
  settleMs: number;
}

export interface RunOutput {
  metrics: Metrics;
  errorSamples: string[];
  series?: Record<string, number[]>;
}

const SHORT: AnswerShape = { deltas: 5, delayMs: 0 };
const PACED: AnswerShape = { deltas: 64, delayMs: 20 };
const UNPACED: AnswerShape = { deltas: 50, delayMs: 0 };
const IDLE: AnswerShape = { deltas: 1, delayMs: 50_000 };
/** Long enough that every client has its first delta well before any stream would end. */
const STORM: AnswerShape = { deltas: 20, delayMs: 1000 };

function scenario(
  id: string,
  title: string,
  kind: Kind,
  shape: AnswerShape,
  c: number,
  maxRequests: number,
  maxMs: number,
  more: Partial<Scenario> = {},
): Scenario {
  return {
    id,
    title,
    kind,
    shape,
    stream: true,
    concurrency: c,
    maxRequests,
    maxMs,
    rampMs: 0,
    once: kind !== 'load',
    direct: kind === 'load' || kind === 'storm',
    ...more,
  };
}

export function fullScenarios(): Scenario[] {
  const sweep = [
    [1, 2],
    [16, 32],
    [64, 128],
    [256, 256],
    [1024, 1024],
  ] as const;
  return [
    scenario('c1-short', 'c1 short answer (5 deltas, unpaced)', 'load', SHORT, 1, 500, 4000),
    ...sweep.map(([c, n]) =>
      scenario(`paced-c${c}`, `paced streams (64 deltas x 20 ms) at c${c}`, 'load', PACED, c, n, 30_000, {
        rampMs: Math.min(1000, c),
      }),
    ),
    scenario('unpaced-c64', 'unpaced 50-delta streams at c64', 'load', UNPACED, 64, 100_000, 2500),
    scenario('nonstream-c1', 'non-streaming, 50 deltas, c1', 'load', UNPACED, 1, 200, 5000, {
      stream: false,
    }),
    scenario('nonstream-c32', 'non-streaming, 50 deltas, c32', 'load', UNPACED, 32, 100_000, 1500, {
      stream: false,
    }),
    scenario(
      'soak',
      'soak: short streams at c64, up to 100k requests or 30 s',
      'soak',
      SHORT,
      64,
      100_000,
      30_000,
    ),
    scenario('idle-1000', '1,000 open idle streams', 'idle', IDLE, 1000, 1000, 20_000, { rampMs: 1000 }),
    scenario(
      'storm-1000',
      'disconnect storm: 1,000 streams (20 x 1 s) open; all clients leave once each has its first delta',
      'storm',
      STORM,
      1000,
      1000,
      15_000,
      { rampMs: 1000 },
    ),
  ];
}

export function quickScenarios(): Scenario[] {
  const paced: AnswerShape = { deltas: 8, delayMs: 5 };
  return [
    scenario('c1-short', 'c1 short answer (5 deltas, unpaced)', 'load', SHORT, 1, 100, 5000),
    ...[1, 16, 64].map((c) =>
      scenario(
        `paced-c${c}`,
        `paced streams (8 deltas x 5 ms) at c${c}`,
        'load',
        paced,
        c,
        Math.max(4, c),
        10_000,
      ),
    ),
    scenario('unpaced-c16', 'unpaced 50-delta streams at c16', 'load', UNPACED, 16, 20_000, 800),
    scenario('nonstream-c1', 'non-streaming, 50 deltas, c1', 'load', UNPACED, 1, 30, 5000, { stream: false }),
    scenario('nonstream-c8', 'non-streaming, 50 deltas, c8', 'load', UNPACED, 8, 20_000, 500, {
      stream: false,
    }),
    scenario('soak', 'soak: short streams at c16, 2,000 requests', 'soak', SHORT, 16, 2000, 10_000),
    scenario('idle-100', '100 open idle streams', 'idle', IDLE, 100, 100, 10_000, { rampMs: 100 }),
    scenario(
      'storm-100',
      'disconnect storm: 100 streams (10 x 300 ms) open; all clients leave once each has its first delta',
      'storm',
      { deltas: 10, delayMs: 300 },
      100,
      100,
      10_000,
      { rampMs: 100 },
    ),
  ];
}

export async function fakeStats(fakeUrl: string, run: string): Promise<RunStats> {
  const res = await request(`${fakeUrl}/__stats?run=${encodeURIComponent(run)}`, {
    headersTimeout: 5000,
    bodyTimeout: 5000,
  });
  return (await res.body.json()) as RunStats;
}

/** Polls the fake until no upstream request of `run` is open; returns how long that took (or NaN). */
async function upstreamClosed(
  fakeUrl: string,
  run: string,
  maxMs: number,
): Promise<{ ms: number; stats: RunStats }> {
  const t0 = performance.now();
  let stats = await fakeStats(fakeUrl, run);
  while (stats.active > 0 && performance.now() - t0 < maxMs) {
    await sleep(50);
    stats = await fakeStats(fakeUrl, run);
  }
  return { ms: stats.active > 0 ? NaN : performance.now() - t0, stats };
}

function loadMetrics(r: LoadResult): Metrics {
  return {
    requests: r.requests,
    ok: r.ok,
    errors: r.errors,
    rps: (r.ok * 1000) / r.elapsedMs,
    ttftP50: percentile(r.ttftMs, 50),
    ttftP99: percentile(r.ttftMs, 99),
    totalP50: percentile(r.totalMs, 50),
    totalP99: percentile(r.totalMs, 99),
  };
}

/** CPU of the target tree, of the fake, and how busy the load core (fake + this process) was, over `fn`. */
async function measured<T>(
  target: Target,
  ctx: RunContext,
  fn: () => Promise<T>,
): Promise<{ value: T; cpu: Metrics }> {
  const target0 = treeCpuMs(target.pid);
  const fake0 = treeCpuMs(ctx.fakePid);
  const self0 = process.cpuUsage();
  const t0 = performance.now();
  const value = await fn();
  const elapsed = performance.now() - t0;
  const self = process.cpuUsage(self0);
  const fakeMs = treeCpuMs(ctx.fakePid) - fake0;
  const loadCoreBusy = ((self.user + self.system) / 1000 + fakeMs) / elapsed;
  return { value, cpu: { cpuMs: treeCpuMs(target.pid) - target0, fakeCpuMs: fakeMs, loadCoreBusy } };
}

async function runLoad(s: Scenario, ask: Ask, target: Target, ctx: RunContext): Promise<RunOutput> {
  const { value: r, cpu } = await measured(target, ctx, () =>
    closedLoop({
      ...ask,
      concurrency: s.concurrency,
      maxRequests: s.maxRequests,
      maxMs: s.maxMs,
      rampMs: s.rampMs,
    }),
  );
  const m = {
    ...loadMetrics(r),
    ...cpu,
    cpuMsPerReq: (cpu.cpuMs ?? NaN) / r.ok,
    rssMiB: treeRssMiB(target.pid),
  };
  return { metrics: m, errorSamples: r.errorSamples };
}

async function runIdle(s: Scenario, ask: Ask, target: Target, ctx: RunContext): Promise<RunOutput> {
  const rssBefore = treeRssMiB(target.pid);
  const held = await holdStreams(ask, {
    count: s.concurrency,
    until: 'start',
    rampMs: s.rampMs,
    maxMs: s.maxMs,
  });
  await sleep(500);
  const rssMiB = treeRssMiB(target.pid);
  const fds = treeFds(target.pid);
  const open = await fakeStats(ctx.fakeUrl, ask.run);
  await held.leaveAll();
  const closed = await upstreamClosed(ctx.fakeUrl, ask.run, 5000);
  const metrics = {
    streams: s.concurrency,
    started: held.reached,
    errors: held.failed,
    rssMiB,
    rssGrowthMiB: rssMiB - rssBefore,
    fds,
    upstreamOpen: open.active,
    upstreamStillOpen: closed.stats.active,
    closeMs: closed.ms,
  };
  return { metrics, errorSamples: held.errorSamples };
}

async function runStorm(s: Scenario, ask: Ask, _target: Target, ctx: RunContext): Promise<RunOutput> {
  const held = await holdStreams(ask, {
    count: s.concurrency,
    until: 'content',
    rampMs: s.rampMs,
    maxMs: s.maxMs,
  });
  await held.leaveAll();
  const closed = await upstreamClosed(ctx.fakeUrl, ask.run, 10_000);
  const metrics = {
    clients: s.concurrency,
    left: held.reached,
    noDeltaInTime: s.concurrency - held.reached - held.failed,
    errors: held.failed,
    upstreamOpened: closed.stats.opened,
    upstreamCancelled: closed.stats.cancelled,
    upstreamCompleted: closed.stats.completed,
    upstreamStillOpen: closed.stats.active,
    closeMs: closed.ms,
  };
  return { metrics, errorSamples: held.errorSamples };
}

/** The samples cut into three consecutive parts of (nearly) equal length; all of them each when too few. */
function thirds(values: number[]): [number[], number[], number[]] {
  if (values.length < 3) return [values, values, values];
  const a = Math.round(values.length / 3);
  const b = Math.round((2 * values.length) / 3);
  return [values.slice(0, a), values.slice(a, b), values.slice(b)];
}

async function runSoak(s: Scenario, ask: Ask, target: Target, ctx: RunContext): Promise<RunOutput> {
  await sleep(ctx.settleMs);
  const fdsBefore = treeFds(target.pid);
  const rss: number[] = [];
  const sampler = setInterval(() => rss.push(treeRssMiB(target.pid)), 500);
  let out: RunOutput;
  try {
    out = await runLoad(s, ask, target, ctx);
  } finally {
    clearInterval(sampler);
  }
  rss.push(treeRssMiB(target.pid));
  await sleep(ctx.settleMs);
  const upstream = await fakeStats(ctx.fakeUrl, ask.run);
  // V8's heap grows and is collected in a sawtooth, so one sample can land on a peak or a trough:
  // start, middle and end are the medians of the first, middle and last third of the samples, and
  // their lows the least RSS in each third, what was left after a collection (a leak raises them).
  const [first, middle, last] = thirds(rss.slice(1));
  const metrics = {
    ...out.metrics,
    rssStartMiB: percentile(first, 50),
    rssMidMiB: percentile(middle, 50),
    rssEndMiB: percentile(last, 50),
    rssLowStartMiB: Math.min(...first),
    rssLowMidMiB: Math.min(...middle),
    rssLowEndMiB: Math.min(...last),
    rssMaxMiB: Math.max(...rss),
    fdsBefore,
    fdsAfter: treeFds(target.pid),
    upstreamStillOpen: upstream.active,
  };
  return {
    metrics,
    errorSamples: out.errorSamples,
    series: { rssMiB: rss.map((v) => Math.round(v * 10) / 10) },
  };
}

const RUNNERS: Record<Kind, (s: Scenario, ask: Ask, target: Target, ctx: RunContext) => Promise<RunOutput>> =
  {
    load: runLoad,
    idle: runIdle,
    storm: runStorm,
    soak: runSoak,
  };

export function runScenario(s: Scenario, target: Target, run: string, ctx: RunContext): Promise<RunOutput> {
  const ask: Ask = { endpoint: target.endpoint, shape: s.shape, stream: s.stream, run };
  return RUNNERS[s.kind](s, ask, target, ctx);
}

/** A short warm-up (JIT, pools) before the first measured round. */
export async function warmUp(target: Target, quick: boolean): Promise<void> {
  const ask: Ask = { endpoint: target.endpoint, shape: UNPACED, stream: true, run: 'warmup' };
  await closedLoop({ ...ask, concurrency: 16, maxRequests: quick ? 200 : 2000, maxMs: quick ? 300 : 1000 });
  await closedLoop({ ...ask, shape: SHORT, concurrency: 1, maxRequests: quick ? 50 : 200, maxMs: 500 });
}
