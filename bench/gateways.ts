/**
 * Other gateways, installed by the benchmark into bench/.gateways/<name>/ (git-ignored, each with
 * its own package.json; never dependencies of the service) and started pointing at the fake.
 *
 * - Portkey `@portkey-ai/gateway` 1.15.2, with `@hono/node-server` pinned to 1.14.1 via npm
 *   `overrides` (later versions make its streaming fail with HTTP 500). Anthropic requests go to
 *   its `/v1/messages` with `x-portkey-provider: anthropic` and `x-portkey-custom-host: <fake>/v1`.
 *   Its start script has no host option, so a one-line preload makes it listen on 127.0.0.1 only.
 * - claude-code-router `@musistudio/claude-code-router` 2.0.0, run in the foreground with
 *   `ccr start` and HOME pointing at bench/.gateways/ccr/home, whose config.json declares the fake
 *   as a provider with the `Anthropic` transformer (requests and answers pass unchanged).
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { startChild } from './procs.ts';
import {
  ANTHROPIC_HEADERS,
  BENCH_DIR,
  childEnv,
  freePort,
  launch,
  type LaunchContext,
  type Skipped,
  type Target,
} from './targets.ts';

const run = promisify(execFile);
const GATEWAYS_DIR = join(BENCH_DIR, '.gateways');
const INSTALL_TIMEOUT_MS = 300_000;

interface Manifest {
  dir: string;
  dependencies: Record<string, string>;
  overrides?: Record<string, string>;
}

const PORTKEY: Manifest = {
  dir: 'portkey',
  dependencies: { '@portkey-ai/gateway': '1.15.2' },
  overrides: { '@hono/node-server': '1.14.1' },
};
const CCR: Manifest = { dir: 'ccr', dependencies: { '@musistudio/claude-code-router': '2.0.0' } };

/** Every `net.Server#listen(port[, host])` without a host binds 127.0.0.1. */
const LOOPBACK_PRELOAD =
  'data:text/javascript,' +
  encodeURIComponent(`import net from 'node:net';
const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...a) {
  if (typeof a[0] === 'number' && typeof a[1] !== 'string') {
    if (a[1] === undefined || a[1] === null) a[1] = '127.0.0.1'; else a.splice(1, 0, '127.0.0.1');
  } else if (typeof a[0] === 'object' && a[0] !== null && a[0].path === undefined && !a[0].host) {
    a[0] = { ...a[0], host: '127.0.0.1' };
  }
  return listen.apply(this, a);
};`);

function installedVersion(dir: string, pkg: string): string | undefined {
  try {
    return (
      JSON.parse(readFileSync(join(dir, 'node_modules', pkg, 'package.json'), 'utf8')) as { version: string }
    ).version;
  } catch {
    return undefined;
  }
}

/** npm install into bench/.gateways/<dir> unless the pinned versions are already there. */
async function ensureInstalled(m: Manifest, log: (line: string) => void): Promise<string | undefined> {
  const dir = join(GATEWAYS_DIR, m.dir);
  const pins = { ...m.dependencies, ...m.overrides };
  if (Object.entries(pins).every(([pkg, version]) => installedVersion(dir, pkg) === version))
    return undefined;
  mkdirSync(dir, { recursive: true });
  const manifest = {
    name: `bench-gateway-${m.dir}`,
    private: true,
    dependencies: m.dependencies,
    ...(m.overrides ? { overrides: m.overrides } : {}),
  };
  writeFileSync(join(dir, 'package.json'), `${JSON.stringify(manifest, null, 2)}\n`);
  log(
    `installing ${Object.entries(m.dependencies)
      .map(([p, v]) => `${p}@${v}`)
      .join(', ')} into bench/.gateways/${m.dir}`,
  );
  try {
    await run('npm', ['install', '--no-audit', '--no-fund', '--ignore-scripts', '--loglevel=error'], {
      cwd: dir,
      timeout: INSTALL_TIMEOUT_MS,
    });
  } catch (error) {
    return `npm install failed: ${String((error as { stderr?: unknown }).stderr ?? error)
      .trim()
      .slice(-400)}`;
  }
  const wrong = Object.entries(pins).find(([pkg, version]) => installedVersion(dir, pkg) !== version);
  return wrong
    ? `installed ${wrong[0]} is ${installedVersion(dir, wrong[0]) ?? 'missing'}, wanted ${wrong[1]}`
    : undefined;
}

export async function startPortkey(
  ctx: LaunchContext,
  log: (line: string) => void,
): Promise<Target | Skipped> {
  const failure = await ensureInstalled(PORTKEY, log);
  if (failure !== undefined) return { name: 'portkey', reason: failure };
  const dir = join(GATEWAYS_DIR, PORTKEY.dir);
  const port = await freePort();
  const script = join(dir, 'node_modules/@portkey-ai/gateway/build/start-server.js');
  const child = startChild({
    name: 'portkey',
    core: ctx.targetCore,
    command: process.execPath,
    args: ['--import', LOOPBACK_PRELOAD, script, `--port=${port}`, '--headless'],
    cwd: dir,
    env: childEnv({}),
  });
  const headers = {
    ...ANTHROPIC_HEADERS,
    'x-portkey-provider': 'anthropic',
    'x-portkey-custom-host': `${ctx.fakeUrl}/v1`,
  };
  const hono = installedVersion(dir, '@hono/node-server') ?? '?';
  return launch(
    'portkey',
    child,
    { origin: `http://127.0.0.1:${port}`, path: '/v1/messages', headers, protocol: 'anthropic' },
    {
      version: `@portkey-ai/gateway ${installedVersion(dir, '@portkey-ai/gateway') ?? '?'} (@hono/node-server ${hono})`,
      notes: [
        '/v1/messages with x-portkey-provider: anthropic, x-portkey-custom-host: <fake>/v1',
        'bound to 127.0.0.1 by a listen() preload',
      ],
    },
  );
}

export async function startCcr(ctx: LaunchContext, log: (line: string) => void): Promise<Target | Skipped> {
  const failure = await ensureInstalled(CCR, log);
  if (failure !== undefined) return { name: 'claude-code-router', reason: failure };
  const dir = join(GATEWAYS_DIR, CCR.dir);
  const home = join(dir, 'home');
  const configDir = join(home, '.claude-code-router');
  mkdirSync(configDir, { recursive: true });
  rmSync(join(configDir, '.claude-code-router.pid'), { force: true });
  const port = await freePort();
  const config = {
    PORT: port,
    HOST: '127.0.0.1',
    LOG: false,
    LOG_LEVEL: 'warn',
    API_TIMEOUT_MS: 60_000,
    Providers: [
      {
        name: 'fake',
        api_base_url: `${ctx.fakeUrl}/v1/messages`,
        api_key: 'bench-service-key',
        models: ['claude-sonnet-5'],
        transformer: { use: ['Anthropic'] },
      },
    ],
    Router: { default: 'fake,claude-sonnet-5' },
  };
  writeFileSync(join(configDir, 'config.json'), `${JSON.stringify(config, null, 2)}\n`);
  const cli = join(dir, 'node_modules/@musistudio/claude-code-router/dist/cli.js');
  if (!existsSync(cli)) return { name: 'claude-code-router', reason: `${cli} missing after install` };
  const child = startChild({
    name: 'claude-code-router',
    core: ctx.targetCore,
    command: process.execPath,
    args: [cli, 'start'],
    cwd: dir,
    env: childEnv({ HOME: home }),
  });
  return launch(
    'claude-code-router',
    child,
    {
      origin: `http://127.0.0.1:${port}`,
      path: '/v1/messages',
      headers: ANTHROPIC_HEADERS,
      protocol: 'anthropic',
    },
    {
      version: `@musistudio/claude-code-router ${installedVersion(dir, '@musistudio/claude-code-router') ?? '?'}`,
      notes: [
        '`ccr start` in the foreground, HOME=bench/.gateways/ccr/home, provider "fake" with the Anthropic transformer, LOG false',
      ],
    },
  );
}
