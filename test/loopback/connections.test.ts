/**
 * What a client can hold with a connection is bounded (REQUEST_TIMEOUT, KEEP_ALIVE_TIMEOUT,
 * MAX_CONNECTIONS), none of it cuts an answer being written, and closing the service closes idle
 * connections at once. Raw sockets, where the timing of bytes matters.
 */
import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import { deltaText, parseSse, query, requestLogs, startHarness, type Harness } from '../helpers/harness.ts';
import { connected, rawConnection, type RawConnection } from '../helpers/raw-http.ts';
import { within } from '../helpers/wait.ts';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const JSON_HEAD = 'Content-Type: application/json\r\n';

/** Writes `byte` every `everyMs` until the connection closes: a client sending its request too slowly. */
function trickle(connection: RawConnection, byte: string, everyMs: number): void {
  const timer = setInterval(() => {
    if (connection.socket.destroyed || !connection.socket.writable) clearInterval(timer);
    else connection.socket.write(byte);
  }, everyMs);
  void connection.closed.then(() => {
    clearInterval(timer);
  });
}

/** A metric's value, read on a connection of its own that the service then closes (no pooled socket left behind). */
async function metric(url: string, name: string): Promise<number> {
  const connection = rawConnection(url, 'GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
  const answer = await within(connection.answer, 5000, '/metrics');
  const match = new RegExp(`^${name} (\\S+)$`, 'm').exec(answer.body);
  assert.ok(match?.[1], `no ${name} in /metrics`);
  return Number(match[1]);
}

describe('REQUEST_TIMEOUT: a request must arrive whole within it', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness({ REQUEST_TIMEOUT: '0.5', UPSTREAM_READ_TIMEOUT: '10' });
  });
  after(() => h.close());
  beforeEach(() => {
    h.fake.reset();
    h.logs.length = 0;
  });

  it('headers and then no body: 408 in the route’s shape, its own request id, the connection closed, nothing upstream', async () => {
    const connection = rawConnection(
      h.url,
      `POST /v1/messages HTTP/1.1\r\nHost: x\r\nX-Request-ID: slow-body-1\r\n${JSON_HEAD}Content-Length: 100\r\n\r\n{"mod`,
    );
    const answer = await within(connection.answer, 15_000, 'a 408');
    assert.equal(answer.status, 408);
    assert.equal(answer.headers['x-request-id'], 'slow-body-1');
    assert.equal(answer.headers.connection, 'close');
    const body = JSON.parse(answer.body) as {
      type: string;
      error: { type: string; message: string };
      request_id: string;
    };
    assert.equal(body.type, 'error');
    assert.equal(body.error.type, 'timeout_error');
    assert.match(body.error.message, /REQUEST_TIMEOUT/);
    assert.equal(body.request_id, 'slow-body-1');
    await within(connection.closed, 5000, 'the server to close the connection');
    assert.ok(connection.closedByServer());
    const line = requestLogs(h).find((l) => l.reqId === 'slow-body-1');
    assert.equal(line?.status, 408);
    assert.equal(h.fake.requests.length, 0);
  });

  it('a chunked body one byte at a time, never finished: 408 (OpenAI shape on /v1/chat/completions)', async () => {
    const connection = rawConnection(
      h.url,
      `POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n${JSON_HEAD}Transfer-Encoding: chunked\r\n\r\n`,
    );
    trickle(connection, '1\r\n \r\n', 100);
    const answer = await within(connection.answer, 15_000, 'a 408');
    assert.equal(answer.status, 408);
    const body = JSON.parse(answer.body) as { error: { type: string; code: string; param: unknown } };
    assert.deepEqual(
      { type: body.error.type, code: body.error.code },
      { type: 'invalid_request_error', code: 'request_timeout' },
    );
    await within(connection.closed, 5000, 'the server to close the connection');
    assert.equal(h.fake.requests.length, 0);
  });

  it('headers sent one byte at a time: 408 with a fresh request id', async () => {
    const connection = rawConnection(h.url, 'GET /healthz HTTP/1.1\r\nHost: x\r\n');
    trickle(connection, 'X', 100);
    const answer = await within(connection.answer, 15_000, 'a 408');
    assert.equal(answer.status, 408);
    assert.match(answer.headers['x-request-id'] ?? '', UUID);
    const body = JSON.parse(answer.body) as { error: { type: string }; request_id: string };
    assert.equal(body.error.type, 'request_timeout');
    assert.equal(body.request_id, answer.headers['x-request-id']);
    await within(connection.closed, 5000, 'the server to close the connection');
  });

  it('a connection that never sends a byte is closed', async () => {
    const connection = rawConnection(h.url);
    await within(connection.closed, 15_000, 'the server to close the silent connection');
    assert.ok(connection.closedByServer());
  });

  it('a streamed answer lasting several times REQUEST_TIMEOUT is not cut', async () => {
    // 20 deltas 100 ms apart: 2 s, four times the timeout, whose deadline is checked every 0.5 s.
    h.fake.queue({
      kind: 'message',
      deltas: Array.from({ length: 20 }, (_, i) => `w${i} `),
      deltaDelayMs: 100,
    });
    const res = await query(h.url, { prompt: 'a long answer' });
    assert.equal(res.status, 200);
    const events = parseSse(await res.text());
    assert.equal(events.at(-1)?.event, 'done');
    assert.equal(deltaText(events).split(' ').length - 1, 20);
  });

  it('a non-streamed answer that takes several times REQUEST_TIMEOUT to come is not cut', async () => {
    h.fake.queue({
      kind: 'message',
      deltas: Array.from({ length: 20 }, (_, i) => `w${i} `),
      deltaDelayMs: 100,
    });
    const res = await query(h.url, { prompt: 'a long answer', stream: false });
    assert.equal(res.status, 200);
    const body = (await res.json()) as { text: string };
    assert.equal(body.text.split(' ').length - 1, 20);
  });
});

describe('REQUEST_TIMEOUT: a slow body that arrives within it is served', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness({ REQUEST_TIMEOUT: '20' });
  });
  after(() => h.close());

  it('a body sent in pieces, 150 ms apart', async () => {
    const body = JSON.stringify({ prompt: 'Hi there, slowly' });
    const connection = rawConnection(
      h.url,
      `POST /llm/query HTTP/1.1\r\nHost: x\r\n${JSON_HEAD}Content-Length: ${body.length}\r\n\r\n`,
    );
    try {
      await connected(connection.socket);
      const pieces = body.match(/.{1,5}/g) ?? [];
      for (const piece of pieces) {
        await new Promise((resolve) => setTimeout(resolve, 150));
        connection.socket.write(piece);
      }
      const answer = await within(connection.answer, 15_000, 'the answer');
      assert.equal(answer.status, 200);
      assert.equal(parseSse(answer.body).at(-1)?.event, 'done');
    } finally {
      connection.socket.destroy();
    }
  });
});

describe('KEEP_ALIVE_TIMEOUT', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness({ KEEP_ALIVE_TIMEOUT: '1' });
  });
  after(() => h.close());

  it('closes a connection idle after its answer, and says so in Keep-Alive', async () => {
    const connection = rawConnection(h.url, 'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
    const answer = await within(connection.answer, 5000, 'the answer');
    assert.equal(answer.status, 200);
    assert.equal(answer.headers['keep-alive'], 'timeout=1');
    await within(connection.closed, 15_000, 'the idle connection to be closed');
    assert.ok(connection.closedByServer());
  });
});

describe('MAX_CONNECTIONS', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness({ MAX_CONNECTIONS: '2' });
  });
  after(() => h.close());

  it('at the cap, the connection idle the longest makes room for a new one', async () => {
    const first = rawConnection(h.url);
    await connected(first.socket);
    const second = rawConnection(h.url, 'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
    await within(second.answer, 5000, 'the second answer');
    const third = rawConnection(h.url, 'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
    try {
      assert.equal((await within(third.answer, 5000, 'the third answer')).status, 200);
      await within(first.closed, 5000, 'the longest idle connection to be closed');
      assert.ok(!second.socket.destroyed);
    } finally {
      for (const c of [first, second, third]) c.socket.destroy();
    }
  });

  it('when every connection has a request in flight, a new one is closed at once and counted', async () => {
    const before = await metric(h.url, 'llmc_connections_refused_total');
    const body = JSON.stringify({ prompt: 'Hi' });
    const head = `POST /llm/query HTTP/1.1\r\nHost: x\r\n${JSON_HEAD}Expect: 100-continue\r\nContent-Length: ${body.length}\r\n\r\n`;
    // Two requests whose bodies have not been sent: both connections are busy once the service has
    // read their headers (it then asks for the body with 100 Continue).
    const busy = [rawConnection(h.url, head), rawConnection(h.url, head)];
    try {
      await Promise.all(busy.map((c) => within(c.received(/ 100 Continue\r\n/), 5000, '100 Continue')));
      const refused = rawConnection(h.url, 'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
      await within(refused.closed, 5000, 'the connection beyond the cap to be closed');
      await assert.rejects(refused.answer);
      // The busy requests are still served once their bodies arrive.
      for (const c of busy) c.socket.write(body);
      for (const c of busy)
        assert.equal((await within(c.answer, 5000, 'a busy request’s answer')).status, 200);
      assert.equal(await metric(h.url, 'llmc_connections_refused_total'), before + 1);
    } finally {
      for (const c of busy) c.socket.destroy();
    }
  });
});

describe('closing the service', () => {
  it('closes a connection that never sent a request at once, while an open answer still streams', async () => {
    const h = await startHarness({ UPSTREAM_READ_TIMEOUT: '10' });
    h.fake.queue({
      kind: 'message',
      deltas: Array.from({ length: 20 }, (_, i) => `w${i} `),
      deltaDelayMs: 100,
    });
    const res = await query(h.url, { prompt: 'a long answer' });
    assert.equal(res.status, 200);
    const silent = rawConnection(h.url);
    await connected(silent.socket);
    const order: string[] = [];
    const closing = h.close();
    try {
      const streamed = res.text().then((text) => {
        order.push('answer complete');
        return text;
      });
      // Node stops enforcing its request timeouts once closing has begun: without the service closing
      // it, a silent connection would hold the close for as long as the client keeps it open.
      await within(silent.closed, 20_000, 'the silent connection to be closed').then(() =>
        order.push('silent connection closed'),
      );
      const events = parseSse(await streamed);
      assert.equal(events.at(-1)?.event, 'done', 'the open answer was cut');
      assert.deepEqual(order, ['silent connection closed', 'answer complete']);
    } finally {
      silent.socket.destroy();
      await closing;
    }
  });
});
