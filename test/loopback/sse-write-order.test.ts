/**
 * An upstream whose whole stream arrives in one read hands the service many chunks in one tick.
 * Node 24 holds a response's writes until the end of the tick: bytes the service writes to the
 * socket itself in that tick must not overtake them (they did: the client got a chunk before the
 * head and failed to parse the answer).
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { deltaText, parseSse, query, startHarness, type Harness } from '../helpers/harness.ts';
import { parseAnswer, rawConnection } from '../helpers/raw-http.ts';

const WORDS = ['One ', 'two ', 'three ', 'four ', 'five.'];

function event(type: string, fields: Record<string, unknown>): string {
  return `event: ${type}\ndata: ${JSON.stringify({ type, ...fields })}\n\n`;
}

/** A complete Messages stream, one HTTP chunk per SSE event, as one string of bytes. */
function wholeResponse(): string {
  const events = [
    event('message_start', {
      message: {
        id: 'msg_1',
        type: 'message',
        role: 'assistant',
        model: 'claude-sonnet-5',
        content: [],
        stop_reason: null,
        stop_sequence: null,
        usage: { input_tokens: 3, output_tokens: 1 },
      },
    }),
    event('content_block_start', { index: 0, content_block: { type: 'text', text: '' } }),
    ...WORDS.map((text) => event('content_block_delta', { index: 0, delta: { type: 'text_delta', text } })),
    event('content_block_stop', { index: 0 }),
    event('message_delta', {
      delta: { stop_reason: 'end_turn', stop_sequence: null },
      usage: { output_tokens: WORDS.length },
    }),
    event('message_stop', {}),
  ];
  const head =
    'HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n';
  const chunks = events.map((e) => `${Buffer.byteLength(e).toString(16)}\r\n${e}\r\n`);
  return `${head}${chunks.join('')}0\r\n\r\n`;
}

describe('an upstream stream that arrives in one read', () => {
  let upstream: Server;
  let h: Harness;
  before(async () => {
    // Answers every request with the whole stream in one socket write, bypassing Node's framing.
    upstream = createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        res.socket?.end(wholeResponse());
      });
    });
    upstream.listen(0, '127.0.0.1');
    await once(upstream, 'listening');
    const address = upstream.address();
    assert.ok(address && typeof address === 'object');
    h = await startHarness({ ANTHROPIC_BASE_URL: `http://127.0.0.1:${address.port}` });
  });
  after(async () => {
    await h.close();
    upstream.closeAllConnections();
    upstream.close();
  });

  it('reaches the client whole and in order', async () => {
    for (let i = 0; i < 3; i++) {
      const res = await query(h.url, { prompt: 'Count to five' });
      assert.equal(res.status, 200);
      const events = parseSse(await res.text());
      assert.deepEqual(
        events.map((e) => e.event),
        ['start', ...WORDS.map(() => 'delta'), 'done'],
      );
      assert.equal(deltaText(events), WORDS.join(''));
    }
  });
});

/**
 * The answer's chunks after the first are framed by the service and written to the socket itself
 * (see SseBatch): they must stay valid HTTP/1.1 chunks, in order, even when requests are pipelined on
 * one connection; an HTTP/1.0 client gets no chunk framing at all.
 */
describe('SSE answers written to the socket', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness();
  });
  after(() => h.close());

  const body = JSON.stringify({ prompt: 'Count' });
  const post = (version: string): string =>
    `POST /llm/query ${version}\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;

  it('two pipelined streams arrive whole, each validly chunked, in order', async () => {
    const first = ['a1 ', 'a2 ', 'a3 ', 'a4'];
    const second = ['b1 ', 'b2 ', 'b3'];
    h.fake.queue({ kind: 'message', deltas: first, deltaDelayMs: 5 });
    h.fake.queue({ kind: 'message', deltas: second, deltaDelayMs: 5 });
    const conn = rawConnection(h.url, post('HTTP/1.1') + post('HTTP/1.1'));
    try {
      const a = await conn.answer;
      assert.equal(a.status, 200);
      assert.equal(a.headers['transfer-encoding'], 'chunked');
      assert.equal(deltaText(parseSse(a.body)), first.join(''));
      // The second answer follows the first's terminating chunk on the same connection.
      await conn.received(/0\r\n\r\nHTTP\/1\.1 200[\s\S]*\r\n0\r\n\r\n$/);
      const all = conn.text();
      const b = parseAnswer(Buffer.from(all.slice(all.indexOf('0\r\n\r\nHTTP/1.1') + 5), 'latin1'));
      assert.ok(b, 'a second complete answer');
      assert.equal(deltaText(parseSse(b.body)), second.join(''));
      assert.equal(parseSse(b.body).at(-1)?.event, 'done');
    } finally {
      conn.socket.destroy();
    }
  });

  it('an HTTP/1.0 client gets the events unframed, then the connection closes', async () => {
    const words = ['x1 ', 'x2 ', 'x3'];
    h.fake.queue({ kind: 'message', deltas: words, deltaDelayMs: 5 });
    const conn = rawConnection(h.url, post('HTTP/1.0'));
    await conn.closed;
    const raw = conn.text();
    const head = raw.slice(0, raw.indexOf('\r\n\r\n'));
    assert.match(head, /^HTTP\/1\.1 200 /);
    assert.doesNotMatch(head, /transfer-encoding/i);
    const events = parseSse(raw.slice(raw.indexOf('\r\n\r\n') + 4));
    assert.deepEqual(
      events.map((e) => e.event),
      ['start', 'delta', 'delta', 'delta', 'done'],
    );
    assert.equal(deltaText(events), words.join(''));
  });
});
