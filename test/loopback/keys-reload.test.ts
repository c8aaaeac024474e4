/**
 * Rotating client keys without a restart: SIGHUP makes the real server process (`node
 * dist/server.js`, built by `npm test`'s pretest) re-read SERVICE_API_KEYS_FILE. Checked over HTTP:
 * added keys work, removed keys get 401 while their open streams finish, a broken file changes
 * nothing, new limits apply, requests in flight during reloads all succeed, and with --workers the
 * primary passes the signal on to every worker.
 */
import assert from 'node:assert/strict';
import { EventEmitter, once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, beforeEach, describe, it } from 'node:test';
import { startFakeUpstream, type FakeUpstream } from '../../src/mock/fake-upstream.ts';
import { parseSse } from '../helpers/harness.ts';
import { ask, bearer, expectAnswer, expectError } from '../helpers/routes.ts';
import { startService, type ServiceProcess } from '../helpers/service-process.ts';
import { within } from '../helpers/wait.ts';

const ALICE = 'alice-key-0123456789abcdef';
const BOB = 'bob-key-0123456789abcdef';
const CAROL = 'carol-key-0123456789abcdef';
const KEYS = [ALICE, BOB, CAROL];

type LogLine = Record<string, unknown>;
/** A bound for waits, so that a signal that never arrives fails the test instead of hanging it. */
const WAIT_MS = 30_000;

const dir = mkdtempSync(join(tmpdir(), 'keys-reload-'));
let files = 0;

/** A new keys file holding `text`; `write` replaces its contents. */
function keysFile(text: string): { path: string; write(text: string): void } {
  const path = join(dir, `keys-${++files}`);
  writeFileSync(path, text);
  return {
    path,
    write(next) {
      writeFileSync(path, next);
    },
  };
}

/** The complete JSON log lines written so far (a line still being written is left out). */
function lines(service: ServiceProcess): LogLine[] {
  const text = service.stdout();
  return text
    .slice(0, text.lastIndexOf('\n') + 1)
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as LogLine);
}

const isReload = (line: LogLine): boolean =>
  typeof line.msg === 'string' && line.msg.startsWith('client keys');

/** Resolves once `count` log lines match (checked whenever the service writes to stdout). */
function untilLines(
  service: ServiceProcess,
  match: (line: LogLine) => boolean,
  count = 1,
): Promise<LogLine[]> {
  const stdout = service.child.stdout;
  assert.ok(stdout);
  const found = new Promise<LogLine[]>((resolve, reject) => {
    const check = (): void => {
      const found = lines(service).filter(match);
      if (found.length < count) return;
      stop();
      resolve(found);
    };
    const exited = (): void => {
      stop();
      reject(new Error(`the service exited while waiting for a log line: ${service.stdout()}`));
    };
    const stop = (): void => {
      stdout.off('data', check);
      service.child.off('exit', exited);
    };
    stdout.on('data', check);
    service.child.once('exit', exited);
    check();
  });
  return within(found, WAIT_MS, `${count} log line(s) matching ${match.toString()}`);
}

/** Sends SIGHUP and resolves with the reload's log line (the `n`th one this service wrote). */
async function sighup(service: ServiceProcess): Promise<LogLine> {
  const before = lines(service).filter(isReload).length;
  service.child.kill('SIGHUP');
  const found = await untilLines(service, isReload, before + 1);
  return found[before] as LogLine;
}

function assertNoKeyLogged(service: ServiceProcess): void {
  for (const key of KEYS) assert.ok(!service.stdout().includes(key), 'a client key was logged');
}

describe('SIGHUP re-reads SERVICE_API_KEYS_FILE', () => {
  let fake: FakeUpstream;
  let service: ServiceProcess | undefined;
  before(async () => {
    fake = await startFakeUpstream();
  });
  beforeEach(() => {
    fake.reset();
  });
  after(async () => {
    await service?.stop();
    await fake.close();
    rmSync(dir, { recursive: true, force: true });
  });

  async function serve(path: string, args: string[] = []): Promise<ServiceProcess> {
    await service?.stop();
    service = await startService(
      { ANTHROPIC_API_KEY: 'k', ANTHROPIC_BASE_URL: fake.url, SERVICE_API_KEYS_FILE: path },
      args,
    );
    return service;
  }

  it('an added key works after SIGHUP; one info line gives the count, never a key', async () => {
    const file = keysFile(`alice:${ALICE}\n`);
    const service = await serve(file.path);
    await expectError(
      'query',
      await ask(service.url, 'query', { headers: bearer(BOB) }),
      401,
      'authentication_error',
    );
    file.write(`alice:${ALICE}\nbob:${BOB}\n`);
    const line = await sighup(service);
    assert.equal(line.level, 30);
    assert.equal(line.msg, 'client keys reloaded');
    assert.equal(line.keys, 2);
    assert.equal(line.file, file.path);
    await expectAnswer('query', await ask(service.url, 'query', { headers: bearer(BOB) }));
    await expectAnswer('messages', await ask(service.url, 'messages', { headers: bearer(ALICE) }));
    assertNoKeyLogged(service);
  });

  it('a removed key gets 401 on its next request, while its open stream finishes', async () => {
    const file = keysFile(`alice:${ALICE}\nbob:${BOB}\n`);
    const service = await serve(file.path);
    const deltas = Array.from({ length: 40 }, (_, i) => `w${i} `);
    fake.queue({ kind: 'message', deltas, deltaDelayMs: 75 });
    const open = await ask(service.url, 'query', { headers: bearer(ALICE), maxTokens: 64 });
    assert.equal(open.status, 200);
    // Read until the first words have arrived: the stream is open and under way.
    assert.ok(open.body);
    const reader = open.body.pipeThrough(new TextDecoderStream()).getReader();
    let text = '';
    while (!text.includes('w0 ')) {
      const chunk = await reader.read();
      assert.ok(!chunk.done, 'the stream ended before its first words');
      text += chunk.value;
    }

    file.write(`bob:${BOB}\n`);
    assert.equal((await sighup(service)).keys, 1);
    await expectError(
      'query',
      await ask(service.url, 'query', { headers: bearer(ALICE) }),
      401,
      'authentication_error',
    );
    assert.equal(
      fake.requests[0]?.finishedAt,
      undefined,
      'the stream had already ended: nothing shows it survived the reload',
    );
    await expectAnswer('query', await ask(service.url, 'query', { headers: bearer(BOB) }));

    for (;;) {
      const chunk = await reader.read();
      if (chunk.done) break;
      text += chunk.value;
    }
    const events = parseSse(text);
    assert.equal(events.at(-1)?.event, 'done', 'the open stream was cut');
    assert.equal(
      events
        .filter((e) => e.event === 'delta')
        .map((e) => (e.data as { text: string }).text)
        .join(''),
      deltas.join(''),
    );
    // In the order they ended: the open stream last, as alice's, after her 401.
    const requests = await untilLines(service, (l) => l.msg === 'request', 3);
    assert.deepEqual(
      requests.map((l) => [l.status, l.key ?? null, l.outcome]),
      [
        [401, null, 'client_error'],
        [200, 'bob', 'ok'],
        [200, 'alice', 'ok'],
      ],
    );
    assertNoKeyLogged(service);
  });

  it('a file that no longer parses keeps every old key and logs one error line naming the file and the line', async () => {
    const file = keysFile(`alice:${ALICE}\n`);
    const service = await serve(file.path);
    file.write(`# rotated\nbob:${BOB}\ncarol ${CAROL}\n`);
    const line = await sighup(service);
    assert.equal(line.level, 50);
    assert.equal(line.file, file.path);
    assert.equal(
      line.msg,
      'client keys not reloaded, the old keys stay: SERVICE_API_KEYS_FILE line 3: expected name:key',
    );
    await expectAnswer('query', await ask(service.url, 'query', { headers: bearer(ALICE) }));
    // Never half a set: bob, on the valid line 2, is not let in either.
    await expectError(
      'query',
      await ask(service.url, 'query', { headers: bearer(BOB) }),
      401,
      'authentication_error',
    );
    await untilLines(service, (l) => l.msg === 'request', 2);
    assert.equal(lines(service).filter(isReload).length, 1);
    assertNoKeyLogged(service);
  });

  it('changed limits apply to the next request', async () => {
    const file = keysFile(`alice:${ALICE} rpm=1\n`);
    const service = await serve(file.path);
    const first = await ask(service.url, 'query', { headers: bearer(ALICE) });
    assert.equal(first.headers.get('ratelimit-limit'), '1');
    await expectAnswer('query', first);
    await expectError(
      'query',
      await ask(service.url, 'query', { headers: bearer(ALICE) }),
      429,
      'rate_limit_error',
    );
    file.write(`alice:${ALICE} rpm=5\n`);
    assert.equal((await sighup(service)).msg, 'client keys reloaded');
    const next = await ask(service.url, 'query', { headers: bearer(ALICE) });
    assert.equal(next.headers.get('ratelimit-limit'), '5');
    await expectAnswer('query', next);
  });

  it('requests in flight while SIGHUP is sent again and again all succeed', async () => {
    const file = keysFile(`alice:${ALICE}\nbob:${BOB}\n`);
    const service = await serve(file.path);
    const CLIENTS = 6;
    const EACH = 25;
    const RELOADS = 5;
    let done = 0;
    let inFlight = 0;
    const progress = new EventEmitter();
    const inFlightAtSignal: number[] = [];
    const failures: string[] = [];
    const client = async (): Promise<void> => {
      for (let i = 0; i < EACH; i++) {
        inFlight++;
        try {
          const res = await ask(service.url, 'query', { headers: bearer(ALICE) });
          const text = await res.text();
          if (res.status !== 200 || parseSse(text).at(-1)?.event !== 'done')
            failures.push(`${res.status} ${text.slice(0, 200)}`);
        } catch (error) {
          failures.push(String(error));
        } finally {
          inFlight--;
          done++;
          progress.emit('answer');
        }
      }
    };
    // Reloads are driven by the requests' progress: one after every few answers, the file
    // alternating between two sets that both hold alice.
    const reloads = (async () => {
      for (let n = 1; n <= RELOADS; n++) {
        const threshold = Math.floor((n * CLIENTS * EACH) / (RELOADS + 2));
        while (done < threshold) await once(progress, 'answer');
        file.write(n % 2 === 1 ? `carol:${CAROL}\nalice:${ALICE}\n` : `alice:${ALICE}\nbob:${BOB}\n`);
        inFlightAtSignal.push(inFlight);
        const line = await sighup(service);
        assert.equal(line.msg, 'client keys reloaded');
      }
    })();
    await Promise.all([...Array.from({ length: CLIENTS }, client), reloads]);
    assert.deepEqual(failures, []);
    assert.equal(done, CLIENTS * EACH);
    assert.equal(lines(service).filter(isReload).length, RELOADS);
    assert.ok(
      inFlightAtSignal.every((n) => n > 0),
      `no request was in flight at some SIGHUP: ${inFlightAtSignal.join(', ')}`,
    );
    // The last file holds carol, not bob.
    await expectAnswer('query', await ask(service.url, 'query', { headers: bearer(CAROL) }));
    await expectError(
      'query',
      await ask(service.url, 'query', { headers: bearer(BOB) }),
      401,
      'authentication_error',
    );
  });

  it('with --workers 2, SIGHUP to the primary reaches both workers', { timeout: 120_000 }, async () => {
    const file = keysFile(`alice:${ALICE}\n`);
    const service = await serve(file.path, ['--workers', '2']);
    await untilLines(service, (l) => l.workers === 2 && typeof l.url === 'string');
    file.write(`alice:${ALICE}\nbob:${BOB}\n`);
    service.child.kill('SIGHUP');
    const reloaded = await untilLines(service, (l) => l.msg === 'client keys reloaded', 2);
    const workers = new Set(reloaded.map((l) => l.pid));
    assert.equal(workers.size, 2, 'one worker reloaded twice instead of each once');
    assert.ok(!workers.has(service.child.pid), 'the primary reloaded instead of a worker');
    // The primary's own line may reach stdout after the workers' (each process flushes its own log).
    await untilLines(
      service,
      (l) =>
        l.pid === service.child.pid &&
        l.workers === 2 &&
        l.msg === 'SIGHUP: asking 2 workers to reload the client keys',
    );

    // Bob's key now works in each worker: new connections until both have served him.
    let sent = 0;
    const servedBy = (): Set<unknown> =>
      new Set(
        lines(service)
          .filter((l) => l.msg === 'request' && l.key === 'bob')
          .map((l) => l.pid),
      );
    while (servedBy().size < 2) {
      assert.ok(sent < 60, 'one worker served every request');
      assert.equal(await statusOnNewConnection(service.url, BOB), 200);
      sent++;
      await untilLines(service, (l) => l.msg === 'request' && l.key === 'bob', sent);
    }
    assert.deepEqual(servedBy(), workers);
    assertNoKeyLogged(service);
  });
});

/** A non-streamed /llm/query on a connection of its own, so that the primary deals it to either worker. */
function statusOnNewConnection(url: string, key: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(
      `${url}/llm/query`,
      { method: 'POST', agent: false, headers: { 'content-type': 'application/json', ...bearer(key) } },
      (res) => {
        res.resume();
        res.on('end', () => {
          resolve(res.statusCode ?? 0);
        });
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(JSON.stringify({ prompt: 'hi', stream: false }));
  });
}
