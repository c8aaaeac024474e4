/**
 * The targets the load generator talks to, and how each is started: the fake upstream (the
 * `direct` floor), the connector (`node dist/server.js`, built first if stale), its `/v1/messages`
 * passthrough when it answers, and the baseline relay. Gateways are in gateways.ts.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync, symlinkSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { askOnce, type Endpoint, type Outcome } from './load.ts';
import { startChild, stopChild, treeRssMiB, type Child } from './procs.ts';

export const ROOT = join(import.meta.dirname, '..');
export const BENCH_DIR = import.meta.dirname;
export const TARGET_CORE = 0;
export const LOAD_CORE = 1;

export interface Target {
  name: string;
  endpoint: Endpoint;
  /** The process whose CPU, RSS and fds are measured (for `direct`: the fake itself). */
  pid: number;
  version: string;
  notes: string[];
  /** RSS of the process tree right after it answered its first request. */
  startRssMiB: number;
}

export interface Skipped {
  name: string;
  reason: string;
}

export interface LaunchContext {
  /** Origin of the fake upstream, e.g. http://127.0.0.1:41234 */
  fakeUrl: string;
  /** undefined when taskset is missing. */
  targetCore: number | undefined;
  logLevel: string;
  /** Extra node flags for the connector (e.g. --cpu-prof). */
  connectorNodeArgs: string[];
  /** Where compile.ts put the benchmark's own child scripts as JavaScript. */
  scriptsDir: string;
}

export const ANTHROPIC_HEADERS: Record<string, string> = {
  'anthropic-version': '2023-06-01',
  'x-api-key': 'bench-client-key',
};

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => {
        resolve(port);
      });
    });
  });
}

export function childEnv(extra: Record<string, string>): Record<string, string | undefined> {
  return { ...process.env, BENCH_PARENT_PID: String(process.pid), ...extra };
}

/** Sends one small streaming request until it is answered correctly (or the process died / time ran out). */
export async function probe(
  endpoint: Endpoint,
  child: Child | undefined,
  timeoutMs: number,
): Promise<Outcome> {
  const ask = { endpoint, shape: { deltas: 3, delayMs: 0 }, stream: true, run: 'probe' };
  const t0 = Date.now();
  let last: Outcome = { ok: false, ttftMs: 0, totalMs: 0, error: 'not tried' };
  while (Date.now() - t0 < timeoutMs) {
    if (child?.exited() === true)
      return {
        ...last,
        error: `exited (code ${String(child.proc.exitCode)}): ${child.output().trim().slice(-600)}`,
      };
    last = await askOnce(ask, 5000);
    if (last.ok || last.error?.startsWith('HTTP ') === true) return last;
    await sleep(200);
  }
  return last;
}

/** Starts a child and waits until it answers a probe; on failure it is stopped and a reason returned. */
export async function launch(
  name: string,
  child: Child,
  endpoint: Endpoint,
  info: { version: string; notes: string[] },
  timeoutMs = 30_000,
): Promise<Target | Skipped> {
  const outcome = await probe(endpoint, child, timeoutMs);
  if (!outcome.ok) {
    await stopChild(child);
    return {
      name,
      reason: `did not answer a probe correctly within ${timeoutMs / 1000} s: ${outcome.error ?? '?'}`,
    };
  }
  return { name, endpoint, pid: child.pid, ...info, startRssMiB: treeRssMiB(child.pid) };
}

function node(
  name: string,
  core: number | undefined,
  args: string[],
  env: Record<string, string>,
  cwd = ROOT,
): Child {
  return startChild({ name, core, command: process.execPath, args, cwd, env: childEnv(env) });
}

/**
 * The fake upstream: `lean` is bench/fake-server.ts (run compiled), `repo` the repository's
 * src/mock/fake-upstream.ts behind bench/fake-repo.ts (through tsx; only for the fake check).
 */
export async function startFake(
  kind: 'lean' | 'repo',
  core: number | undefined,
  scriptsDir: string,
): Promise<{ child: Child; url: string; target: Target | Skipped }> {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const args =
    kind === 'lean'
      ? [join(scriptsDir, 'fake-server.js'), String(port)]
      : ['--import', 'tsx', join(BENCH_DIR, 'fake-repo.ts'), String(port)];
  const child = node(`fake (${kind})`, core, args, {});
  const endpoint = {
    origin: url,
    path: '/v1/messages',
    headers: ANTHROPIC_HEADERS,
    protocol: 'anthropic' as const,
  };
  const target = await launch('direct', child, endpoint, {
    version: kind === 'lean' ? 'bench/fake-server.ts' : 'src/mock/fake-upstream.ts',
    notes: ['load generator straight to the fake upstream'],
  });
  return { child, url, target };
}

function newestMtime(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) newest = Math.max(newest, statSync(join(entry.parentPath, entry.name)).mtimeMs);
  }
  return newest;
}

/**
 * Gives another checkout its dependencies: a link to this checkout's node_modules when both lockfiles
 * are the same, else its own `npm ci` (from npm's cache where it can).
 */
function installDependencies(root: string, log: (line: string) => void): void {
  const lock = (dir: string): string => readFileSync(join(dir, 'package-lock.json'), 'utf8');
  if (lock(root) === lock(ROOT)) {
    symlinkSync(join(ROOT, 'node_modules'), join(root, 'node_modules'));
    return;
  }
  log(`${root}: its package-lock.json differs from this checkout's: npm ci there`);
  execFileSync('npm', ['ci', '--prefer-offline', '--no-audit', '--no-fund', '--ignore-scripts'], {
    cwd: root,
    stdio: 'inherit',
    timeout: 300_000,
  });
}

/**
 * Builds dist/ of `root` (this checkout, or a variant's) when dist/server.js is missing or older than
 * a file in src/ (another checkout without node_modules gets them first).
 */
export function buildIfStale(log: (line: string) => void, root = ROOT): void {
  if (!existsSync(join(root, 'node_modules'))) installDependencies(root, log);
  let built = 0;
  try {
    built = statSync(join(root, 'dist/server.js')).mtimeMs;
  } catch {
    built = 0;
  }
  if (built >= newestMtime(join(root, 'src'))) return;
  log(`${root === ROOT ? 'dist/' : `${root}/dist/`} is stale: building it`);
  try {
    const tsc = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
    execFileSync(process.execPath, [tsc, '-p', 'tsconfig.build.json'], {
      cwd: root,
      stdio: 'inherit',
      timeout: 180_000,
    });
  } catch {
    throw new Error(
      'npm run build failed (see above); fix the build, or run with --no-build to use dist/ as it is',
    );
  }
}

export function serviceVersion(root = ROOT): { version: string; commit: string; dirty: boolean } {
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string };
  const git = (args: string[]): string => {
    try {
      return execFileSync('git', ['--no-optional-locks', ...args], { cwd: root, encoding: 'utf8' }).trim();
    } catch {
      return '';
    }
  };
  return {
    version: pkg.version,
    commit: git(['rev-parse', 'HEAD']) || 'unknown',
    dirty: git(['status', '--porcelain', '--untracked-files=no']) !== '',
  };
}

/** The Node flags `npm start` passes (package.json), so that the connector runs as its users run it. */
export function startScriptNodeArgs(root = ROOT): string[] {
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as {
    scripts?: Record<string, string>;
  };
  const words = (pkg.scripts?.start ?? '').split(/\s+/);
  const end = words.indexOf('dist/server.js');
  return words.slice(words.indexOf('node') + 1, end === -1 ? 0 : end).filter((word) => word.startsWith('--'));
}

/**
 * Another build of the connector run beside the main one in the same run (`--variant`), so that two
 * versions compare round by round on the same machine state: another checkout (`tree:DIR`, e.g. a
 * `git worktree add` of a commit), another Node.js binary (`node:PATH`), `--workers N`
 * (`workers:N`), pinned to other cores (`cores:0,1`). Keys combine, separated by `;`.
 */
export interface Variant {
  name: string;
  root: string;
  nodePath: string;
  workers: number;
  /** taskset's core list, or undefined for the targets' core. */
  cores: string | undefined;
}

/** Parses `NAME=key:value;key:value` (keys: tree, node, workers, cores). */
export function parseVariant(spec: string): Variant {
  const eq = spec.indexOf('=');
  const name = spec.slice(0, eq);
  if (eq < 1 || !/^[\w.-]+$/.test(name)) throw new Error(`--variant ${spec}: expected NAME=key:value;…`);
  const variant: Variant = { name, root: ROOT, nodePath: process.execPath, workers: 1, cores: undefined };
  for (const part of spec
    .slice(eq + 1)
    .split(';')
    .filter(Boolean)) {
    const colon = part.indexOf(':');
    const key = part.slice(0, colon);
    const value = part.slice(colon + 1);
    if (key === 'tree') variant.root = value;
    else if (key === 'node') variant.nodePath = value;
    else if (key === 'workers' && /^[1-9]\d*$/.test(value)) variant.workers = Number(value);
    else if (key === 'cores' && /^[\d,-]+$/.test(value)) variant.cores = value;
    else throw new Error(`--variant ${spec}: unknown or bad "${part}" (keys: tree, node, workers, cores)`);
  }
  return variant;
}

/** The connector, plus its /v1/messages passthrough when that route answers. */
export async function startConnector(ctx: LaunchContext, variant?: Variant): Promise<(Target | Skipped)[]> {
  const port = await freePort();
  const origin = `http://127.0.0.1:${port}`;
  const env = {
    ANTHROPIC_API_KEY: 'bench-service-key',
    ANTHROPIC_BASE_URL: ctx.fakeUrl,
    PORT: String(port),
    HOST: '127.0.0.1',
    LOG_LEVEL: ctx.logLevel,
  };
  const root = variant?.root ?? ROOT;
  const name = variant?.name ?? 'connector';
  const startArgs = startScriptNodeArgs(root);
  const workers = variant !== undefined && variant.workers > 1 ? ['--workers', String(variant.workers)] : [];
  const args = [...startArgs, ...ctx.connectorNodeArgs, join(root, 'dist/server.js'), ...workers];
  const child = startChild({
    name,
    core: variant?.cores !== undefined && ctx.targetCore !== undefined ? variant.cores : ctx.targetCore,
    command: variant?.nodePath ?? process.execPath,
    args,
    cwd: root,
    env: childEnv(env),
  });
  const { version, commit, dirty } = serviceVersion(root);
  const nodeVersion = execFileSync(variant?.nodePath ?? process.execPath, ['--version'], {
    encoding: 'utf8',
  }).trim();
  const info = {
    version: `${version} @ ${commit.slice(0, 12)}${dirty ? ' (uncommitted changes)' : ''}, node ${nodeVersion}`,
    notes: [
      `LOG_LEVEL=${ctx.logLevel}`,
      `node flags as in npm start: ${startArgs.join(' ') || 'none'}`,
      ...(variant === undefined
        ? []
        : [
            `variant: ${root}${workers.length > 0 ? ` ${workers.join(' ')}` : ''}, cores ${variant.cores ?? 'as targets'}`,
          ]),
    ],
  };
  const query = await launch(
    name,
    child,
    { origin, path: '/llm/query', headers: {}, protocol: 'query' },
    info,
  );
  if (!('endpoint' in query) || variant !== undefined) return [query];
  const passthrough = {
    origin,
    path: '/v1/messages',
    headers: ANTHROPIC_HEADERS,
    protocol: 'anthropic' as const,
  };
  const answer = await probe(passthrough, child, 5000);
  if (!answer.ok) {
    return [
      query,
      { name: 'connector-passthrough', reason: `/v1/messages not usable: ${answer.error ?? '?'}` },
    ];
  }
  return [query, { ...query, name: 'connector-passthrough', endpoint: passthrough }];
}

/** The installed version of one of the service's dependencies. */
function dependencyVersion(name: string): string {
  return (
    JSON.parse(readFileSync(join(ROOT, 'node_modules', name, 'package.json'), 'utf8')) as { version: string }
  ).version;
}

/** One of the benchmark's own relays (bench/<script>.ts), pointed at the fake upstream. */
async function startOwnRelay(
  ctx: LaunchContext,
  name: string,
  script: string,
  route: Pick<Endpoint, 'path' | 'headers' | 'protocol'>,
  info: { version: string; notes: string[] },
  env: Record<string, string> = {},
): Promise<Target | Skipped> {
  const port = await freePort();
  const child = node(name, ctx.targetCore, [join(ctx.scriptsDir, `${script}.js`), String(port)], {
    ...env,
    UPSTREAM_URL: ctx.fakeUrl,
  });
  return launch(name, child, { origin: `http://127.0.0.1:${port}`, ...route }, info);
}

export function startBaseline(ctx: LaunchContext): Promise<Target | Skipped> {
  return startOwnRelay(
    ctx,
    'baseline',
    'baseline-relay',
    { path: '/llm/query', headers: {}, protocol: 'query' },
    {
      version: `fastify ${dependencyVersion('fastify')} + undici ${dependencyVersion('undici')}`,
      notes: ['bench/baseline-relay.ts, no logging'],
    },
  );
}

/**
 * The same relay calling the upstream with the global `fetch` (Node's bundled undici, WHATWG streams),
 * as the official SDKs and many gateways do.
 */
export function startBaselineFetch(ctx: LaunchContext): Promise<Target | Skipped> {
  return startOwnRelay(
    ctx,
    'baseline-fetch',
    'baseline-relay',
    { path: '/llm/query', headers: {}, protocol: 'query' },
    {
      version: `fastify ${dependencyVersion('fastify')} + fetch (Node's undici ${process.versions.undici ?? '?'})`,
      notes: ['bench/baseline-relay.ts with BASELINE_FETCH=1, no logging'],
    },
    { BASELINE_FETCH: '1' },
  );
}

/** The floor: node:http + undici passing the upstream's bytes through unchanged (bench/floor-relay.ts). */
export function startFloor(ctx: LaunchContext): Promise<Target | Skipped> {
  return startOwnRelay(
    ctx,
    'floor',
    'floor-relay',
    { path: '/v1/messages', headers: ANTHROPIC_HEADERS, protocol: 'anthropic' },
    {
      version: `node:http + undici ${dependencyVersion('undici')}`,
      notes: ['bench/floor-relay.ts: bytes passed through, nothing checked or logged'],
    },
  );
}
