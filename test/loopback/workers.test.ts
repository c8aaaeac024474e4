import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { request } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import { parseSse } from '../helpers/harness.ts';

/**
 * `node dist/server.js --mock --workers 2` as a real cluster (build first: `npm run build`).
 * Requests go over a new connection each (agent: false), so that the primary deals them out to
 * both workers.
 */
const root = fileURLToPath(new URL('../..', import.meta.url));
/** No key anywhere (an empty value wins over a developer's .env); coverage collection passes through. */
const BASE_ENV = {
  PATH: process.env.PATH ?? '',
  HOME: process.env.HOME ?? '',
  ANTHROPIC_API_KEY: '',
  NODE_V8_COVERAGE: process.env.NODE_V8_COVERAGE ?? '',
};
const WAIT_MS = 60_000;

type LogLine = Record<string, unknown>;

interface Service {
  child: ChildProcess;
  url: string;
  lines: LogLine[];
  stderr: () => string;
  exit: Promise<number | null>;
}

function spawnService(args: string[], env: Record<string, string> = {}): Omit<Service, 'url'> {
  const child = spawn('node', ['dist/server.js', ...args], {
    cwd: root,
    env: { ...BASE_ENV, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: LogLine[] = [];
  let partial = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => {
    const parts = (partial + chunk.toString()).split('\n');
    partial = parts.pop() ?? '';
    for (const part of parts) {
      try {
        lines.push(JSON.parse(part) as LogLine);
      } catch {
        // not a log line
      }
    }
  });
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exit = once(child, 'exit').then(([code]) => code as number | null);
  return { child, lines, stderr: () => stderr, exit };
}

async function until<T>(
  what: string,
  probe: () => T | undefined | Promise<T | undefined>,
  timeoutMs = WAIT_MS,
): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  while (performance.now() < deadline) {
    const value = await probe();
    if (value !== undefined) return value;
    await sleep(50);
  }
  throw new Error(`timed out waiting for ${what}`);
}

async function startCluster(): Promise<Service> {
  const service = spawnService(['--mock', '--workers', '2', '--port', '0']);
  const exited = service.exit.then((code) => {
    throw new Error(`exited ${String(code)}: ${service.stderr()}`);
  });
  const ready = until('the cluster to listen', () =>
    service.lines.find((l) => typeof l.workers === 'number' && typeof l.url === 'string'),
  );
  const line = await Promise.race([ready, exited]);
  return { ...service, url: line.url as string };
}

interface Answer {
  status: number;
  body: string;
}

/** One request on a connection of its own. */
function send(url: string, method: 'GET' | 'POST', path: string, body?: unknown): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(
      `${url}${path}`,
      { method, agent: false, headers: body === undefined ? {} : { 'content-type': 'application/json' } },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (text += chunk));
        res.on('end', () => {
          resolve({ status: res.statusCode ?? 0, body: text });
        });
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body === undefined ? undefined : JSON.stringify(body));
  });
}

/** Resolves when the answer has begun; `rest` is the whole body. */
function startStream(url: string, body: unknown): Promise<{ status: number; rest: Promise<string> }> {
  return new Promise((resolve, reject) => {
    const req = request(
      `${url}/llm/query`,
      { method: 'POST', agent: false, headers: { 'content-type': 'application/json' } },
      (res) => {
        res.setEncoding('utf8');
        let text = '';
        const rest = new Promise<string>((done, fail) => {
          res.on('data', (chunk: string) => (text += chunk));
          res.on('end', () => {
            done(text);
          });
          res.on('error', fail);
        });
        resolve({ status: res.statusCode ?? 0, rest });
      },
    );
    req.on('error', reject);
    req.end(JSON.stringify(body));
  });
}

function requestLines(service: Service, route: string): LogLine[] {
  return service.lines.filter((l) => l.msg === 'request' && l.route === route);
}

function servedBy(service: Service, route: string): Set<unknown> {
  return new Set(requestLines(service, route).map((l) => l.pid));
}

function queriesCounted(metricsText: string): number {
  const family = parsePrometheusTextFormat(metricsText).find((f) => f.name === 'llmc_requests_total');
  assert.ok(family, 'no llmc_requests_total');
  return family.metrics
    .filter((m) => m.labels?.route === '/llm/query')
    .reduce((sum, m) => sum + Number(m.value ?? 0), 0);
}

describe('--workers 2', { timeout: 240_000 }, () => {
  let service: Service;
  before(async () => {
    service = await startCluster();
  });
  after(async () => {
    if (service.child.exitCode === null) {
      service.child.kill('SIGKILL');
      await service.exit;
    }
  });

  it('both workers serve, and /metrics on any worker counts the requests of all', async () => {
    let sent = 0;
    while (servedBy(service, '/llm/query').size < 2 || sent < 4) {
      assert.ok(sent < 60, 'one worker served every request');
      const res = await send(service.url, 'POST', '/llm/query', { prompt: 'hi', stream: false });
      assert.equal(res.status, 200);
      sent++;
      await until('the request log line', () =>
        requestLines(service, '/llm/query').length === sent ? true : undefined,
      );
    }
    let scrapes = 0;
    while (servedBy(service, '/metrics').size < 2) {
      assert.ok(scrapes < 60, 'one worker served every scrape');
      const res = await send(service.url, 'GET', '/metrics');
      assert.equal(res.status, 200);
      assert.equal(
        queriesCounted(res.body),
        sent,
        `a scrape counted ${queriesCounted(res.body)} of ${sent} requests`,
      );
      scrapes++;
      await until('the scrape log line', () =>
        requestLines(service, '/metrics').length === scrapes ? true : undefined,
      );
    }
  });

  it('a worker that dies is restarted, and the new one serves', async () => {
    const logged = requestLines(service, '/llm/query').length;
    const victim = [...servedBy(service, '/llm/query')][0];
    assert.equal(typeof victim, 'number');
    process.kill(victim as number, 'SIGKILL');
    const restarted = await until('the restart', () =>
      service.lines.find((l) => l.msg === 'worker restarted'),
    );
    const fresh = restarted.worker_pid;
    assert.notEqual(fresh, victim);
    const died = service.lines.find((l) => l.msg === 'worker died; restarting it');
    assert.equal(died?.signal, 'SIGKILL');
    assert.ok(Number(died.restart_in_ms) > 0);
    let sent = 0;
    while (!servedBy(service, '/llm/query').has(fresh)) {
      assert.ok(sent < 60, 'the restarted worker never served');
      assert.equal(
        (await send(service.url, 'POST', '/llm/query', { prompt: 'hi', stream: false })).status,
        200,
      );
      sent++;
      await until('the request log line', () =>
        requestLines(service, '/llm/query').length === logged + sent ? true : undefined,
      );
    }
    // The totals now leave out what the dead worker had counted, and nothing else.
    const living = requestLines(service, '/llm/query').filter((l) => l.pid !== victim).length;
    const scrape = await send(service.url, 'GET', '/metrics');
    assert.equal(scrape.status, 200);
    assert.equal(queriesCounted(scrape.body), living);
  });

  it('SIGTERM lets open answers finish in every worker, then exits 0', async () => {
    const workers = new Set(service.lines.map((l) => l.pid));
    workers.delete(service.child.pid);
    assert.ok(workers.size >= 2);
    const open = await Promise.all(
      [0, 1, 2, 3].map(() =>
        startStream(service.url, { prompt: 'A question that gets a paced, simulated answer' }),
      ),
    );
    service.child.kill('SIGTERM');
    for (const answer of open) {
      assert.equal(answer.status, 200);
      assert.equal(
        parseSse(await answer.rest).at(-1)?.event,
        'done',
        'an open stream was cut instead of drained',
      );
    }
    assert.equal(await service.exit, 0);
    for (const pid of workers)
      assert.throws(
        () => process.kill(pid as number, 0),
        /ESRCH/,
        `worker ${String(pid)} outlived the primary`,
      );
  });
});

describe('--workers with limits', () => {
  it('refuses to start without REDIS_URL, in one line saying why', async () => {
    const service = spawnService(['--mock', '--workers', '2', '--port', '0'], { RATE_LIMIT_RPM: '10' });
    assert.equal(await service.exit, 1);
    const errors = service
      .stderr()
      .split('\n')
      .filter((l) => l.startsWith('error: '));
    assert.equal(errors.length, 1, service.stderr());
    assert.match(errors[0] ?? '', /REDIS_URL/);
    assert.doesNotMatch(service.stderr(), /^\s+at /m);
  });
});
