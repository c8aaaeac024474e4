/**
 * The real server process (`node dist/server.js`, built by `npm test`'s pretest): the refusal to
 * listen unprotected beyond loopback, and readiness while draining.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { startFakeUpstream, type FakeUpstream } from '../../src/mock/fake-upstream.ts';
import { ask, bearer, expectAnswer, expectError } from '../helpers/routes.ts';
import { runService, startService } from '../helpers/service-process.ts';

const KEY = 'startup-key-0123456789abcdef';

async function expectRefusal(env: Record<string, string>, args: string[] = []): Promise<string> {
  const { exit } = runService({ ANTHROPIC_API_KEY: 'k', ...env }, args);
  const result = await exit;
  assert.equal(result.code, 1, result.stderr);
  const lines = result.stderr.split('\n').filter((line) => line !== '');
  assert.equal(lines.length, 1, `one line expected: ${result.stderr}`);
  assert.doesNotMatch(result.stdout, /listening/);
  return lines[0] ?? '';
}

describe('refusal to listen unprotected beyond loopback', () => {
  it('HOST=0.0.0.0 without client keys: exit 1 with one line saying why and what to set', async () => {
    const line = await expectRefusal({ HOST: '0.0.0.0' });
    assert.match(line, /^error: refusing to listen on 0\.0\.0\.0 without client keys/);
    assert.match(line, /spend your Anthropic credit/);
    assert.match(line, /SERVICE_API_KEYS/);
    assert.match(line, /ALLOW_UNAUTHENTICATED=true/);
  });

  it('the same for --host, for IPv6 and for ALLOW_UNAUTHENTICATED other than true', async () => {
    assert.match(await expectRefusal({}, ['--host', '0.0.0.0']), /refusing to listen on 0\.0\.0\.0/);
    assert.match(await expectRefusal({ HOST: '::' }), /refusing to listen on ::/);
    assert.match(
      await expectRefusal({ HOST: '0.0.0.0', ALLOW_UNAUTHENTICATED: 'false' }),
      /ALLOW_UNAUTHENTICATED/,
    );
    assert.match(
      await expectRefusal({ HOST: '0.0.0.0', ALLOW_UNAUTHENTICATED: 'yes' }),
      /ALLOW_UNAUTHENTICATED/,
    );
  });

  it('with ALLOW_UNAUTHENTICATED=true it starts, and serves without a key', async () => {
    const service = await startService({ HOST: '0.0.0.0', ALLOW_UNAUTHENTICATED: 'true' }, ['--mock']);
    try {
      const listening = service.logLines().find((line) => line.url !== undefined);
      assert.equal(listening?.auth, false);
      await expectAnswer('query', await ask(service.url, 'query'));
    } finally {
      assert.equal((await service.stop()).code, 0);
    }
  });

  it('with SERVICE_API_KEYS it starts, and requires the key', async () => {
    const service = await startService({ HOST: '0.0.0.0', SERVICE_API_KEYS: `ops:${KEY}` }, ['--mock']);
    try {
      assert.equal(service.logLines().find((line) => line.url !== undefined)?.auth, true);
      await expectError('query', await ask(service.url, 'query'), 401, 'authentication_error');
      await expectAnswer('query', await ask(service.url, 'query', { headers: bearer(KEY) }));
    } finally {
      await service.stop();
    }
    const requests = service.logLines().filter((line) => line.msg === 'request');
    assert.deepEqual(
      requests.map((line) => [line.status, line.key]),
      [
        [401, undefined],
        [200, 'ops'],
      ],
    );
    assert.ok(!service.stdout().includes(KEY), 'the key was logged');
  });
});

/** Reads one HTTP/1.1 response with a Content-Length body from a raw socket. */
async function readResponse(socket: Socket): Promise<{ status: number; head: string; body: string }> {
  let text = '';
  for (;;) {
    const end = text.indexOf('\r\n\r\n');
    if (end !== -1) {
      const head = text.slice(0, end);
      const length = Number(/content-length: (\d+)/i.exec(head)?.[1] ?? '0');
      if (Buffer.byteLength(text.slice(end + 4)) >= length) {
        return { status: Number(head.split(' ')[1]), head, body: text.slice(end + 4) };
      }
    }
    const [chunk] = (await Promise.race([
      once(socket, 'data'),
      once(socket, 'end').then(() => {
        throw new Error(`connection ended after: ${JSON.stringify(text)}`);
      }),
    ])) as [Buffer];
    text += chunk.toString('utf8');
  }
}

describe('/readyz and draining (SIGTERM) of a real server process', () => {
  let fake: FakeUpstream;
  before(async () => {
    fake = await startFakeUpstream();
  });
  after(() => fake.close());

  it('200 when ready; on SIGTERM new requests get 503 or a refused connection while the open stream completes', async () => {
    const service = await startService({
      ANTHROPIC_API_KEY: 'k',
      ANTHROPIC_BASE_URL: fake.url,
      SERVICE_API_KEYS: `ops:${KEY}`,
      MAX_CONCURRENT_STREAMS: '2',
    });
    const { port } = new URL(service.url);
    // A keep-alive connection that asks /readyz once now and once while the service drains.
    const socket = connect(Number(port), '127.0.0.1');
    await once(socket, 'connect');
    try {
      socket.write('GET /readyz HTTP/1.1\r\nHost: test\r\n\r\n');
      const ready = await readResponse(socket);
      assert.equal(ready.status, 200);
      assert.deepEqual(JSON.parse(ready.body), { status: 'ready' });

      fake.queue({
        kind: 'message',
        deltas: Array.from({ length: 10 }, (_, i) => `w${i} `),
        deltaDelayMs: 100,
      });
      const open = await ask(service.url, 'query', { headers: bearer(KEY) });
      assert.equal(open.status, 200);
      const answer = open.text();
      // The second request is under way (its head half sent) when SIGTERM arrives: an idle
      // connection would simply be closed by the draining server.
      socket.write('GET /readyz HTTP/1.1\r\nHost: test\r\n');
      await new Promise((resolve) => setTimeout(resolve, 100));
      service.child.kill('SIGTERM');
      await waitForLog(() => service.logLines(), 'draining');

      // A new connection is refused (or, in the instant before the listener closes, answered 503).
      const late = await fetch(`${service.url}/readyz`).then(
        (res) => res.status,
        () => 'refused',
      );
      assert.ok(late === 'refused' || late === 503, `a new request got ${late}`);
      socket.write('\r\n');
      const draining = await readResponse(socket);
      assert.equal(draining.status, 503, draining.head);
      assert.match(draining.head, /connection: close/i);

      const text = await answer;
      assert.match(text, /event: done\n/, 'the open stream was cut instead of drained');
      assert.match(text, /w9 /);
      const exit = await service.exit;
      assert.equal(exit.code, 0, exit.stderr);
      const lines = service.logLines().filter((line) => line.msg === 'request');
      assert.deepEqual(
        lines
          .filter((line) => line.route === '/llm/query')
          .map((line) => [line.status, line.outcome, line.key]),
        [[200, 'ok', 'ops']],
      );
    } finally {
      socket.destroy();
      await service.stop();
    }
  });
});

async function waitForLog(lines: () => Record<string, unknown>[], pattern: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!lines().some((line) => typeof line.msg === 'string' && line.msg.includes(pattern))) {
    if (Date.now() > deadline) assert.fail(`no "${pattern}" log line`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
