import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer, type Server } from 'node:net';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { deltaText, parseSse, query } from '../helpers/harness.ts';
import { connected, rawConnection } from '../helpers/raw-http.ts';

const root = fileURLToPath(new URL('../..', import.meta.url));
/** An environment with no key anywhere (an empty value wins over a developer's .env). */
const BASE_ENV = { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ANTHROPIC_API_KEY: '' };

interface Exit {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(
  command: string,
  args: string[],
  env: Record<string, string>,
  detached = false,
): { child: ChildProcess; exit: Promise<Exit> } {
  const child = spawn(command, args, {
    cwd: root,
    env: { ...BASE_ENV, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached,
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  const exit = once(child, 'exit').then(([code]) => ({ code: code as number | null, stdout, stderr }));
  return { child, exit };
}

/** The stderr line the service wrote, without npm's own lines. */
function serviceError(stderr: string): string[] {
  return stderr.split('\n').filter((l) => l.startsWith('error: '));
}

async function expectStartupError(
  env: Record<string, string>,
  pattern: RegExp,
  args: string[] = [],
): Promise<void> {
  const { exit } = run('npm', ['start', '--silent', '--', ...args], env);
  const result = await exit;
  assert.notEqual(result.code, 0);
  const lines = serviceError(result.stderr);
  assert.equal(lines.length, 1, result.stderr);
  assert.match(lines[0] ?? '', pattern);
  assert.doesNotMatch(result.stderr, /^\s+at /m, 'a stack trace was printed');
}

/** Resolves with the URL and process id the service logs once it listens (rejects if it exits first). */
function listening(child: ChildProcess, exit: Promise<Exit>): Promise<{ url: string; pid: number }> {
  let buffered = '';
  return new Promise((resolve, reject) => {
    child.stdout?.on('data', (c: Buffer) => {
      buffered += c.toString();
      const match = /"pid":(\d+),[^\n]*"url":"(http:\/\/[^"]+)"/.exec(buffered);
      if (match?.[1] && match[2]) resolve({ pid: Number(match[1]), url: match[2] });
    });
    void exit.then((e) => {
      reject(new Error(`exited ${e.code}: ${e.stderr}`));
    });
  });
}

/** Starts the service and resolves with its URL once it logs that it listens. */
async function startService(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ child: ChildProcess; url: string; exit: Promise<Exit> }> {
  const { child, exit } = run('node', ['dist/server.js', ...args], env);
  const { url } = await listening(child, exit);
  return { child, url, exit };
}

/** `npm start -- --mock --port 0`, as a user or a process manager runs it; `detached` makes npm lead its own process group. */
async function startThroughNpm(
  detached: boolean,
): Promise<{ child: ChildProcess; url: string; pid: number; exit: Promise<Exit> }> {
  const { child, exit } = run('npm', ['start', '--', '--mock', '--port', '0'], {}, detached);
  return { child, exit, ...(await listening(child, exit)) };
}

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('start-up, as a new user runs it', () => {
  it('exits with one line naming ANTHROPIC_API_KEY and .env when no key is set', async () => {
    await expectStartupError({}, /ANTHROPIC_API_KEY.*\.env/);
  });

  it('names the variable of an invalid setting', async () => {
    await expectStartupError({ ANTHROPIC_API_KEY: 'k', PORT: 'abc' }, /^error: PORT /);
    await expectStartupError(
      { ANTHROPIC_API_KEY: 'k', UPSTREAM_READ_TIMEOUT: '-5' },
      /^error: UPSTREAM_READ_TIMEOUT /,
    );
    await expectStartupError({ ANTHROPIC_API_KEY: 'k' }, /--bogus/, ['--bogus']);
  });

  it('names the file and the field of an invalid MODEL_PRICES_FILE, and a bad budget', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'llmc-prices-'));
    try {
      const file = join(dir, 'prices.json');
      writeFileSync(file, '{"claude-x-1": {"input": "three", "output": 15}}');
      await expectStartupError(
        { ANTHROPIC_API_KEY: 'k', MODEL_PRICES_FILE: file },
        /^error: MODEL_PRICES_FILE .*prices\.json: "claude-x-1"\.input must be a non-negative number/,
      );
      await expectStartupError(
        { ANTHROPIC_API_KEY: 'k', BUDGET_USD_DAILY: 'lots' },
        /^error: BUDGET_USD_DAILY /,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('says so in one line when the port is in use', async () => {
    const blocker: Server = createServer();
    blocker.listen(0, '127.0.0.1');
    await once(blocker, 'listening');
    const address = blocker.address();
    assert.ok(address && typeof address === 'object');
    try {
      await expectStartupError({ ANTHROPIC_API_KEY: 'k', PORT: String(address.port) }, /already in use/);
    } finally {
      blocker.close();
    }
  });

  it('--mock serves a clearly simulated answer with no key', async () => {
    const service = await startService(['--mock', '--port', '0']);
    try {
      const res = await query(service.url, { prompt: 'Hello there' });
      assert.equal(res.status, 200);
      const events = parseSse(await res.text());
      assert.match(deltaText(events), /Simulated/);
      assert.equal(events.at(-1)?.event, 'done');
    } finally {
      service.child.kill('SIGTERM');
      await service.exit;
    }
  });

  it('on SIGTERM lets an open answer finish, then exits 0', async () => {
    const service = await startService(['--mock', '--port', '0']);
    const res = await query(service.url, { prompt: 'A question that gets a paced, simulated answer' });
    assert.equal(res.status, 200);
    service.child.kill('SIGTERM');
    const events = parseSse(await res.text());
    assert.equal(events.at(-1)?.event, 'done', 'the open stream was cut instead of drained');
    const exit = await service.exit;
    assert.equal(exit.code, 0);
    await assert.rejects(query(service.url, { prompt: 'too late' }));
  });

  it('SIGTERM to `npm start` reaches the service: an open answer finishes, then npm exits 0 and nothing holds the port', async () => {
    const service = await startThroughNpm(false);
    assert.notEqual(service.pid, service.child.pid, 'expected npm to run the service as its child');
    try {
      const res = await query(service.url, { prompt: 'A question that gets a paced, simulated answer' });
      assert.equal(res.status, 200);
      service.child.kill('SIGTERM');
      const events = parseSse(await res.text());
      assert.equal(events.at(-1)?.event, 'done', 'the open stream was cut instead of drained');
      const exit = await service.exit;
      assert.match(
        exit.stdout,
        /"signal":"SIGTERM"[^\n]*"msg":"draining/,
        'the service never saw the SIGTERM sent to npm',
      );
      assert.equal(exit.code, 0, exit.stderr);
      assert.equal(isRunning(service.pid), false, 'the service outlived npm');
      await assert.rejects(query(service.url, { prompt: 'too late' }));
    } finally {
      if (isRunning(service.pid)) process.kill(service.pid, 'SIGKILL');
    }
  });

  it('Ctrl-C on `npm start` (SIGINT to its process group, which npm forwards again) drains too', async () => {
    const service = await startThroughNpm(true);
    const group = service.child.pid ?? 0;
    try {
      const res = await query(service.url, { prompt: 'A question that gets a paced, simulated answer' });
      assert.equal(res.status, 200);
      process.kill(-group, 'SIGINT');
      const events = parseSse(await res.text());
      assert.equal(events.at(-1)?.event, 'done', 'the open stream was cut instead of drained');
      const exit = await service.exit;
      assert.match(exit.stdout, /"signal":"SIGINT"[^\n]*"msg":"draining/);
      assert.equal(exit.code, 0, exit.stderr);
      assert.equal(isRunning(service.pid), false, 'the service outlived npm');
    } finally {
      if (isRunning(service.pid)) process.kill(service.pid, 'SIGKILL');
      if (isRunning(group)) process.kill(-group, 'SIGKILL');
    }
  });

  it('on SIGTERM closes a connection that never sent a request at once, without waiting for the open answer', async () => {
    const service = await startService(['--mock', '--port', '0']);
    const res = await query(service.url, {
      prompt: 'a question long enough to make the paced, simulated answer last a while '.repeat(3),
    });
    assert.equal(res.status, 200);
    // Clients (undici after an abort, for one) open connections ahead of time and may never use them.
    const silent = rawConnection(service.url);
    await connected(silent.socket);
    const order: string[] = [];
    service.child.kill('SIGTERM');
    const answered = res.text().then((text) => {
      order.push('answer complete');
      return text;
    });
    await silent.closed.then(() => order.push('silent connection closed'));
    assert.equal(
      parseSse(await answered).at(-1)?.event,
      'done',
      'the open stream was cut instead of drained',
    );
    assert.deepEqual(
      order,
      ['silent connection closed', 'answer complete'],
      'the silent connection held the drain',
    );
    assert.equal((await service.exit).code, 0);
  });
});
