/**
 * The side-by-side benchmark (issue 4). Starts everything on 127.0.0.1, runs the scenarios against
 * every target in interleaved rounds, prints tables, writes bench/results/{latest,quick}.{json,png}
 * and stops everything it started, also on error and Ctrl-C. Runs narrowed by options write
 * bench/results/partial.{json,png} instead of latest.
 *
 *   npm run bench                 full run (minutes): 3 rounds, all targets incl. Portkey and CCR
 *   npm run bench -- --quick      smoke test (seconds): 1 round, small sizes, no external gateways;
 *                                 exits non-zero if any target answered a request wrongly
 *   options: --rounds N  --targets direct,connector,...  --scenarios c1-short,unpaced-c64,...
 *            --log-level info|warn  --no-gateways  --no-build (use dist/ as it is)
 *            --cpu-prof (profile the connector under the load; a summary is printed)
 *            --budget-min M (default 14.5: the soak is shortened so the whole run fits)
 *            --variant NAME=tree:DIR;node:PATH;workers:N;cores:0,1 (repeatable: another build of the
 *              connector as one more target, e.g. a `git worktree add` of an older commit; bench/README.md)
 *            --scale-out (adds one process and `--workers 2`, both on both cores)
 */
import { mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { cpus, release, totalmem } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { renderChart } from './chart.ts';
import { compileChildScripts } from './compile.ts';
import { startCcr, startPortkey } from './gateways.ts';
import { summarizeProfile } from './profile-summary.ts';
import {
  cpuModel,
  fileLimits,
  hasTaskset,
  killAllNow,
  pinSelf,
  stopAll,
  stopChild,
  treeRssMiB,
} from './procs.ts';
import {
  chartPanels,
  connectorChecks,
  renderChecks,
  renderTables,
  Results,
  type RunRecord,
} from './report.ts';
import {
  fullScenarios,
  quickScenarios,
  runScenario,
  warmUp,
  type RunContext,
  type Scenario,
} from './scenarios.ts';
import { round } from './stats.ts';
import {
  BENCH_DIR,
  buildIfStale,
  LOAD_CORE,
  parseVariant,
  ROOT,
  serviceVersion,
  startBaseline,
  startBaselineFetch,
  startFloor,
  startConnector,
  startFake,
  TARGET_CORE,
  type Skipped,
  type Target,
  type Variant,
} from './targets.ts';

interface Options {
  quick: boolean;
  rounds: number;
  only: Set<string> | undefined;
  logLevel: string;
  scenarios: Set<string> | undefined;
  /** Directory for the connector's --cpu-prof output, or undefined. */
  profileDir: string | undefined;
  build: boolean;
  /** Wall-clock budget of the whole run; the soak is shortened to fit it. */
  budgetMs: number;
  gateways: boolean;
  /** Extra Node.js flags for the connector (`--node-args`), e.g. heap settings to compare. */
  nodeArgs: string[];
  /** Other builds of the connector run as more targets (`--variant`). */
  variants: Variant[];
}

/**
 * `--scale-out`: what a second core buys. One process and `--workers 2`, both free to use both cores
 * (the fake upstream and the load generator share core 1 with them), side by side.
 */
const SCALE_OUT = ['one-process=cores:0,1', 'workers-2=workers:2;cores:0,1'];

/** Targets the quick run (CI) must have; the others may be skipped with a reason. */
const REQUIRED = ['direct', 'connector', 'baseline'];

function options(): Options {
  const { values } = parseArgs({
    options: {
      quick: { type: 'boolean', default: false },
      rounds: { type: 'string' },
      targets: { type: 'string' },
      'log-level': { type: 'string', default: 'info' },
      scenarios: { type: 'string' },
      'cpu-prof': { type: 'boolean', default: false },
      'no-build': { type: 'boolean', default: false },
      'budget-min': { type: 'string', default: '14.5' },
      'no-gateways': { type: 'boolean', default: false },
      'node-args': { type: 'string', default: '' },
      variant: { type: 'string', multiple: true, default: [] },
      'scale-out': { type: 'boolean', default: false },
    },
  });
  const rounds = Number(values.rounds ?? (values.quick ? 1 : 3));
  if (!Number.isInteger(rounds) || rounds < 1 || rounds > 20)
    throw new Error('--rounds must be an integer from 1 to 20');
  return {
    quick: values.quick,
    rounds,
    only: values.targets === undefined ? undefined : new Set(values.targets.split(',')),
    logLevel: values['log-level'],
    scenarios: values.scenarios === undefined ? undefined : new Set(values.scenarios.split(',')),
    build: !values['no-build'],
    budgetMs: Number(values['budget-min']) * 60_000 || Infinity,
    profileDir: values['cpu-prof'] ? join(BENCH_DIR, 'results', 'profiles') : undefined,
    gateways: !values['no-gateways'] && (!values.quick || values.targets !== undefined),
    nodeArgs: values['node-args'].split(' ').filter(Boolean),
    variants: [...values.variant, ...(values['scale-out'] ? SCALE_OUT : [])].map(parseVariant),
  };
}

const t0 = Date.now();
/** Things the reader of the results should know about this run (also written to the JSON). */
const notes: string[] = [];
function log(line: string): void {
  process.stdout.write(`[${((Date.now() - t0) / 1000).toFixed(0).padStart(4)} s] ${line}\n`);
}

function installCleanup(): void {
  process.once('exit', killAllNow);
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(signal, () => {
      process.stderr.write(`\n${signal}: stopping everything the benchmark started\n`);
      killAllNow();
      process.exit(130);
    });
  }
}

async function startTargets(
  opts: Options,
  ctx: { fakeUrl: string; fake: Target | Skipped; scriptsDir: string },
): Promise<{ targets: Target[]; skipped: Skipped[] }> {
  const launch = {
    fakeUrl: ctx.fakeUrl,
    targetCore: hasTaskset ? TARGET_CORE : undefined,
    logLevel: opts.logLevel,
    connectorNodeArgs: [
      ...opts.nodeArgs,
      ...(opts.profileDir === undefined ? [] : ['--cpu-prof', '--cpu-prof-dir', opts.profileDir]),
    ],
    scriptsDir: ctx.scriptsDir,
  };
  const variantNames = new Set(opts.variants.map((v) => v.name));
  const wanted = (name: string): boolean =>
    opts.only === undefined || opts.only.has(name) || name === 'direct' || variantNames.has(name);
  const all: (Target | Skipped)[] = [ctx.fake];
  if (wanted('connector') || wanted('connector-passthrough')) all.push(...(await startConnector(launch)));
  if (wanted('baseline')) all.push(await startBaseline(launch));
  if (wanted('baseline-fetch')) all.push(await startBaselineFetch(launch));
  if (wanted('floor')) all.push(await startFloor(launch));
  for (const variant of opts.variants) all.push(...(await startConnector(launch, variant)));
  const external = [
    ['portkey', startPortkey],
    ['claude-code-router', startCcr],
  ] as const;
  for (const [name, start] of external) {
    if (!wanted(name)) continue;
    if (!opts.gateways)
      all.push({
        name,
        reason: opts.quick ? 'not in --quick runs (installs from the npm registry)' : '--no-gateways',
      });
    else all.push(await start(launch, log));
  }
  const targets = all.filter((t): t is Target => 'endpoint' in t && wanted(t.name));
  const skipped = all.filter((t): t is Skipped => !('endpoint' in t));
  return { targets, skipped };
}

function rotate<T>(items: readonly T[], by: number): T[] {
  const k = by % Math.max(1, items.length);
  return [...items.slice(k), ...items.slice(0, k)];
}

function progress(r: RunRecord): string {
  const m = r.metrics;
  const parts = [`${m.ok ?? m.started ?? m.left ?? 0} ok`, `${m.errors ?? 0} err`];
  if (m.ttftP99 !== undefined)
    parts.push(`TTFT p50 ${m.ttftP50?.toFixed(2) ?? '-'} p99 ${m.ttftP99.toFixed(2)} ms`);
  if (m.rps !== undefined) parts.push(`${m.rps.toFixed(0)} req/s`);
  if (m.cpuMsPerReq !== undefined) parts.push(`${m.cpuMsPerReq.toFixed(3)} CPU ms/req`);
  if (m.upstreamStillOpen !== undefined) parts.push(`${m.upstreamStillOpen} upstream left open`);
  if (m.rssMiB !== undefined) parts.push(`RSS ${m.rssMiB.toFixed(1)} MiB`);
  return `r${r.round} ${r.scenario} ${r.target}: ${parts.join(', ')}`;
}

async function runAll(
  opts: Options,
  scenarios: Scenario[],
  targets: Target[],
  ctx: RunContext,
): Promise<RunRecord[]> {
  const records: RunRecord[] = [];
  const runOne = async (s: Scenario, t: Target, roundNo: number): Promise<void> => {
    const out = await runScenario(s, t, `${s.id}.${t.name}.r${roundNo}`, ctx);
    const record: RunRecord = { scenario: s.id, target: t.name, round: roundNo, ...out };
    records.push(record);
    log(progress(record));
  };
  for (let r = 1; r <= opts.rounds; r++) {
    for (const s of scenarios.filter((x) => !x.once)) {
      for (const t of rotate(targets, r - 1).filter((x) => s.direct || x.name !== 'direct'))
        await runOne(s, t, r);
    }
  }
  for (const once of scenarios.filter((x) => x.once)) {
    const some = targets.filter((x) => once.direct || x.name !== 'direct');
    const s = once.kind === 'soak' ? fitSoak(opts, once, some.length, ctx.settleMs) : once;
    for (const t of some) await runOne(s, t, 1);
  }
  return records;
}

/** Time left for the idle and storm scenarios and the fake check, after the soak. */
const RESERVE_MS = 120_000;

/** Shortens the soak so that the whole run stays within --budget-min (the soak is the elastic part). */
function fitSoak(opts: Options, soak: Scenario, targets: number, settleMs: number): Scenario {
  const left = opts.budgetMs - (Date.now() - t0) - RESERVE_MS;
  const perTarget = Math.floor(left / Math.max(1, targets) - 2 * settleMs - 2000);
  const maxMs = Math.max(10_000, Math.min(soak.maxMs, perTarget));
  if (maxMs < soak.maxMs) {
    const note = `soak shortened to ${(maxMs / 1000).toFixed(0)} s per target to stay within the ${opts.budgetMs / 60_000} min budget`;
    notes.push(note);
    log(note);
  }
  return { ...soak, maxMs };
}

/** Is the lean fake needed? Direct throughput against the repository's fake vs bench/fake-server.ts. */
async function fakeCheck(
  scenario: Scenario | undefined,
  lean: Target,
  ctx: RunContext & { scriptsDir: string },
): Promise<Record<string, unknown>> {
  if (scenario === undefined) return {};
  const repo = await startFake('repo', hasTaskset ? LOAD_CORE : undefined, ctx.scriptsDir);
  if (!('endpoint' in repo.target)) return { skipped: repo.target.reason };
  try {
    const out: Record<string, unknown> = {};
    for (const [name, target, fakePid] of [
      ['bench/fake-server.ts', lean, ctx.fakePid],
      ['src/mock/fake-upstream.ts', repo.target, repo.child.pid],
    ] as const) {
      const { metrics } = await runScenario(scenario, target, `fakecheck.${name}`, { ...ctx, fakePid });
      out[name] = {
        rps: round(metrics.rps ?? NaN, 0),
        fakeCpuMsPerStream: round(metrics.cpuMsPerReq ?? NaN, 4),
        errors: metrics.errors,
      };
      log(
        `fake check ${name}: ${metrics.rps?.toFixed(0) ?? '?'} req/s direct, fake ${metrics.cpuMsPerReq?.toFixed(3) ?? '?'} CPU ms per 50-delta stream`,
      );
    }
    return out;
  } finally {
    await stopChild(repo.child);
  }
}

/** Summaries of the connector's .cpuprofile files written since `since` (ms epoch). */
function profileSummaries(dir: string, since: number): string[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith('.cpuprofile') && statSync(join(dir, f)).mtimeMs >= since)
    .map((f) => summarizeProfile(join(dir, f), 25));
}

/** `latest` only for a complete default full run; narrowed runs never overwrite it. */
function resultName(opts: Options): string {
  if (opts.quick) return 'quick';
  const narrowed =
    opts.only !== undefined ||
    opts.scenarios !== undefined ||
    opts.profileDir !== undefined ||
    opts.nodeArgs.length > 0 ||
    opts.variants.length > 0;
  return narrowed || opts.rounds !== 3 || !opts.gateways ? 'partial' : 'latest';
}

function machine(): Record<string, unknown> {
  const { soft, hard } = fileLimits();
  return {
    nproc: cpus().length,
    cpuModel: cpuModel(),
    memGiB: round(totalmem() / 2 ** 30, 1),
    kernel: release(),
    taskset: hasTaskset,
    openFiles: { soft, hard },
  };
}

function write(name: string, json: unknown, png: Buffer): void {
  const dir = join(BENCH_DIR, 'results');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, `${name}.json`), `${JSON.stringify(json, null, 2)}\n`);
  writeFileSync(join(dir, `${name}.png`), png);
  log(`wrote bench/results/${name}.json and bench/results/${name}.png`);
}

async function main(): Promise<number> {
  const opts = options();
  installCleanup();
  const scenarios = (opts.quick ? quickScenarios() : fullScenarios()).filter(
    (s) => opts.scenarios === undefined || opts.scenarios.has(s.id),
  );
  if (scenarios.length === 0) throw new Error('--scenarios matched no scenario');
  const needFds = Math.max(...scenarios.map((s) => s.concurrency)) + 500;
  const limits = fileLimits();
  if (limits.soft < needFds)
    throw new Error(
      `open-file limit ${limits.soft} < ${needFds} needed: run \`ulimit -n ${Math.min(limits.hard, 65536)}\` first`,
    );
  if (hasTaskset && cpus().length >= 2) pinSelf(LOAD_CORE);
  else log('taskset missing or fewer than 2 cores: processes are not pinned, figures are less comparable');
  if (opts.build)
    for (const root of new Set([ROOT, ...opts.variants.map((v) => v.root)])) buildIfStale(log, root);
  else log('--no-build: using dist/ as it is');
  const scriptsDir = compileChildScripts(BENCH_DIR);

  const fake = await startFake('lean', hasTaskset ? LOAD_CORE : undefined, scriptsDir);
  if (!('endpoint' in fake.target)) throw new Error(`fake upstream: ${fake.target.reason}`);
  const { targets, skipped } = await startTargets(opts, { fakeUrl: fake.url, fake: fake.target, scriptsDir });
  for (const t of targets) {
    const where = `${t.endpoint.origin}${t.endpoint.path}`;
    log(
      `target ${t.name}: ${t.version}, ${where}, pid ${t.pid}, RSS at start ${t.startRssMiB.toFixed(1)} MiB`,
    );
  }
  for (const s of skipped) log(`SKIPPED ${s.name}: ${s.reason}`);
  const ctx: RunContext = { fakeUrl: fake.url, fakePid: fake.child.pid, settleMs: opts.quick ? 0 : 3500 };

  for (const t of targets) await warmUp(t, opts.quick);
  log(`warmed up; ${opts.rounds} round(s) of ${scenarios.length} scenarios`);
  const records = await runAll(opts, scenarios, targets, ctx);
  const fakeCheckResult = opts.quick
    ? {}
    : await fakeCheck(
        scenarios.find((s) => s.id === 'unpaced-c64'),
        fake.target,
        { ...ctx, scriptsDir },
      );
  await sleep(ctx.settleMs);
  const endRss = new Map(targets.map((t) => [t.name, treeRssMiB(t.pid)]));
  const connector = targets.find((t) => t.name === 'connector');
  const memory = connector === undefined ? null : await memoryBreakdown(connector.endpoint.origin);
  if (memory !== null) log(`connector memory at the end (MiB): ${memoryLine(memory)}`);
  await stopAll();
  const profiles = opts.profileDir === undefined ? [] : profileSummaries(opts.profileDir, t0);

  const res = new Results(records);
  const names = targets.map((t) => t.name);
  const checks = opts.quick ? [] : connectorChecks(res, 'soak', endRss.get('connector') ?? NaN);
  process.stdout.write(`\n${renderTables(res, scenarios, names)}\n\n`);
  const checkText = renderChecks(checks);
  if (checkText !== '') process.stdout.write(`${checkText}\n\n`);
  const rssLine = targets.map((t) => `${t.name} ${(endRss.get(t.name) ?? NaN).toFixed(1)}`).join(', ');
  process.stdout.write(`RSS after the runs (MiB): ${rssLine}\n`);
  for (const n of notes) process.stdout.write(`note: ${n}\n`);
  for (const s of skipped) process.stdout.write(`skipped ${s.name}: ${s.reason}\n`);
  for (const p of profiles) process.stdout.write(`\n${p}\n`);

  const json = {
    generated: new Date().toISOString(),
    mode: opts.quick ? 'quick' : 'full',
    command: `npm run bench${opts.quick ? ' -- --quick' : ''}`,
    durationS: Math.round((Date.now() - t0) / 1000),
    machine: machine(),
    versions: {
      node: process.version,
      service: serviceVersion(),
      targets: Object.fromEntries(targets.map((t) => [t.name, t.version])),
    },
    settings: {
      rounds: opts.rounds,
      pinning: hasTaskset ? { targets: TARGET_CORE, fakeAndLoadGenerator: LOAD_CORE } : 'none',
      connectorLogLevel: opts.logLevel,
      fake: 'bench/fake-server.ts (unpaced answers are written in one write; paced: one delta per timer tick)',
      scenarios,
    },
    targets: targets.map(({ name, version, notes, endpoint, startRssMiB }) => ({
      name,
      version,
      notes,
      startRssMiB: round(startRssMiB, 1),
      endRssMiB: round(endRss.get(name) ?? NaN, 1),
      path: endpoint.path,
      protocol: endpoint.protocol,
    })),
    skipped,
    checks,
    notes,
    fakeCheck: fakeCheckResult,
    connectorMemoryMiB: memory,
    profiles,
    results: res.summary(scenarios, names),
    runs: records,
  };
  const title = [
    `llm-connector benchmark, ${json.mode} run ${json.generated.slice(0, 16)}, node ${process.version}`,
    `median of ${opts.rounds} round(s): bar = median, line = min-max`,
  ];
  write(resultName(opts), json, renderChart(title, chartPanels(res, scenarios, names), names));

  const errors = records.reduce((n, r) => n + (r.metrics.errors ?? 0), 0);
  const missing = REQUIRED.filter(
    (name) => !names.includes(name) && (opts.only === undefined || opts.only.has(name)),
  );
  if (opts.quick && (errors > 0 || missing.length > 0)) {
    process.stderr.write(
      `quick run failed: ${errors} wrong or failed answers; missing targets: ${missing.join(', ') || 'none'}\n`,
    );
    return 1;
  }
  log('done');
  return 0;
}

/**
 * What the connector's RSS is made of at the end, from its own /metrics (prom-client's default
 * process metrics): V8 heap (used and reserved, per space), external memory and array buffers.
 */
async function memoryBreakdown(origin: string): Promise<Record<string, number> | null> {
  try {
    const text = await (await fetch(`${origin}/metrics`)).text();
    const out: Record<string, number> = {};
    const pick =
      /^(?:llmc_)?(process_resident_memory_bytes|nodejs_heap_size_(?:used|total)_bytes|nodejs_external_memory_bytes|nodejs_heap_space_size_(?:used|total)_bytes\{space="(\w+)"\}) (\S+)$/gm;
    for (const m of text.matchAll(pick)) {
      const name = (m[1] ?? '').replace(/\{.*/, '') + (m[2] === undefined ? '' : `.${m[2]}`);
      out[name.replace(/^(process_|nodejs_)/, '').replace(/_bytes/, '')] = round(Number(m[3]) / 2 ** 20, 1);
    }
    return Object.keys(out).length > 0 ? out : null;
  } catch {
    return null;
  }
}

function memoryLine(memory: Record<string, number>): string {
  const keys = ['resident_memory', 'heap_size_total', 'heap_size_used', 'external_memory'];
  const spaces = Object.entries(memory)
    .filter(([k, v]) => k.startsWith('heap_space_size_total.') && v >= 1)
    .map(([k, v]) => `${k.slice('heap_space_size_total.'.length)} ${v}`);
  return [...keys.map((k) => `${k} ${memory[k] ?? '?'}`), `spaces: ${spaces.join(', ')}`].join(', ');
}

main().then(
  (code) => process.exit(code),
  async (error: unknown) => {
    process.stderr.write(
      `bench failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
    );
    await stopAll();
    process.exit(1);
  },
);
