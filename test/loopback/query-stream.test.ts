import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { after, before, beforeEach, describe, it } from 'node:test';
import {
  deltaText,
  parseSse,
  query,
  requestLogOf,
  requestLogs,
  SECRET_KEY,
  startHarness,
  withRequestId,
  type Harness,
} from '../helpers/harness.ts';

describe('POST /llm/query streaming', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness();
  });
  after(() => h.close());
  beforeEach(() => {
    h.fake.reset();
  });

  it('streams start, deltas in order, then done with usage and stop reason', async () => {
    h.fake.queue({
      kind: 'message',
      deltas: ['Hel', 'lo ', 'wörld 🌍', ' "q"\n'],
      usage: { input_tokens: 12, output_tokens: 4, cache_read_input_tokens: 3 },
    });
    const res = await query(h.url, { prompt: 'Say hello' });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/event-stream/);
    const requestId = res.headers.get('x-request-id');
    assert.ok(requestId);
    const events = parseSse(await res.text());
    assert.deepEqual(
      events.map((e) => e.event),
      ['start', 'delta', 'delta', 'delta', 'delta', 'done'],
    );
    assert.deepEqual(events[0]?.data, { id: requestId, model: 'claude-sonnet-5' });
    assert.equal(deltaText(events), 'Hello wörld 🌍 "q"\n');
    assert.deepEqual(events.at(-1)?.data, {
      stop_reason: 'end_turn',
      usage: {
        input_tokens: 12,
        output_tokens: 4,
        cache_creation_input_tokens: 0,
        cache_read_input_tokens: 3,
      },
      // claude-sonnet-5: 12 × $2 + 4 × $10 + 3 × $0.20 per million tokens.
      cost_usd: '0.0000646',
    });
  });

  it("sends the documented upstream request with the service key, never the client's", async () => {
    const res = await query(
      h.url,
      {
        prompt: 'Hi',
        system: 'terse',
        model: 'claude-haiku-4-5',
        max_tokens: 7,
        temperature: 0.2,
        top_k: 5,
        stop_sequences: ['END'],
      },
      {
        headers: {
          'content-type': 'application/json',
          'x-api-key': 'client-key',
          authorization: 'Bearer client',
        },
      },
    );
    await res.text();
    const [received] = h.fake.requests;
    assert.ok(received);
    assert.equal(received.url, '/v1/messages');
    assert.equal(received.headers['x-api-key'], SECRET_KEY);
    assert.equal(received.headers.authorization, undefined);
    assert.equal(received.headers['anthropic-version'], '2023-06-01');
    assert.deepEqual(received.json, {
      model: 'claude-haiku-4-5',
      max_tokens: 7,
      messages: [{ role: 'user', content: 'Hi' }],
      stream: true,
      system: 'terse',
      temperature: 0.2,
      top_k: 5,
      stop_sequences: ['END'],
    });
  });

  it('relays each delta as it arrives, long before the upstream has finished', async () => {
    h.fake.queue({
      kind: 'message',
      deltas: ['first ', 'second ', 'third ', 'fourth ', 'fifth'],
      deltaDelayMs: 150,
    });
    const started = performance.now();
    const res = await query(h.url, { prompt: 'slow' });
    assert.ok(res.body);
    let text = '';
    let firstDeltaAt = 0;
    for await (const chunk of res.body as AsyncIterable<Uint8Array>) {
      text += Buffer.from(chunk).toString('utf8');
      if (firstDeltaAt === 0 && text.includes('event: delta')) firstDeltaAt = performance.now() - started;
    }
    const total = performance.now() - started;
    assert.equal(deltaText(parseSse(text)), 'first second third fourth fifth');
    assert.ok(total >= 700, `upstream pacing took ${total} ms`);
    assert.ok(firstDeltaAt < total - 400, `first delta at ${firstDeltaAt} ms of ${total} ms`);
  });

  it('holds the answer for a client that stops reading, then delivers it whole and in order', async () => {
    // ~24 MiB: more than the loopback socket buffers hold, so the service must wait for the client.
    const deltas = Array.from(
      { length: 384 },
      (_, i) => `${String(i).padStart(4, '0')}:${'é'.repeat(32 * 1024)}|`,
    );
    h.fake.queue({ kind: 'message', deltas });
    const body = JSON.stringify({ prompt: 'a lot' });
    const { text, pausedMs } = await new Promise<{ text: string; pausedMs: number }>((resolve, reject) => {
      const req = httpRequest(
        `${h.url}/llm/query`,
        { method: 'POST', headers: { 'content-type': 'application/json' } },
        (res) => {
          res.pause();
          const pausedAt = performance.now();
          setTimeout(() => {
            const chunks: Buffer[] = [];
            res.on('data', (c: Buffer) => chunks.push(c));
            res.on('end', () => {
              resolve({
                text: Buffer.concat(chunks).toString('utf8'),
                pausedMs: performance.now() - pausedAt,
              });
            });
            res.resume();
          }, 1000);
        },
      );
      req.on('error', reject);
      req.end(body);
    });
    assert.ok(pausedMs >= 1000);
    const events = parseSse(text);
    assert.equal(events[0]?.event, 'start');
    assert.equal(events.at(-1)?.event, 'done');
    assert.equal(deltaText(events), deltas.join(''));
  });

  it('answers one JSON object with "stream": false', async () => {
    h.fake.queue({
      kind: 'message',
      deltas: ['Four', '.'],
      stopReason: 'end_turn',
      usage: { input_tokens: 3, output_tokens: 2 },
    });
    const res = await query(h.url, { prompt: '2+2?', stream: false });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^application\/json/);
    const body = (await res.json()) as Record<string, unknown>;
    assert.deepEqual(body, {
      id: res.headers.get('x-request-id'),
      model: 'claude-sonnet-5',
      text: 'Four.',
      stop_reason: 'end_turn',
      usage: {
        input_tokens: 3,
        output_tokens: 2,
        cache_creation_input_tokens: 0,
        cache_read_input_tokens: 0,
      },
      cost_usd: '0.000026',
    });
  });

  it('supports multi-turn messages', async () => {
    const messages = [
      { role: 'user', content: 'Name a prime.' },
      { role: 'assistant', content: '7' },
      { role: 'user', content: 'Another?' },
    ];
    const res = await query(h.url, { messages, stream: false });
    assert.equal(((await res.json()) as { text: string }).text, 'You said: Another?');
    assert.deepEqual((h.fake.requests[0]?.json as { messages: unknown }).messages, messages);
  });

  it('keeps a sane client X-Request-ID and replaces an insane one', async () => {
    const kept = await query(
      h.url,
      { prompt: 'a', stream: false },
      { headers: { 'content-type': 'application/json', 'x-request-id': 'trace-42.a' } },
    );
    assert.equal(kept.headers.get('x-request-id'), 'trace-42.a');
    await kept.text();
    const replaced = await query(
      h.url,
      { prompt: 'a', stream: false },
      { headers: { 'content-type': 'application/json', 'x-request-id': 'bad id with spaces' } },
    );
    assert.notEqual(replaced.headers.get('x-request-id'), 'bad id with spaces');
    assert.match(replaced.headers.get('x-request-id') ?? '', /^[0-9a-f-]{36}$/);
    await replaced.text();
  });

  it('gives 100 concurrent streams each their own text', async () => {
    h.fake.setScenario(() => ({ kind: 'message', deltaDelayMs: 5 }));
    const results = await Promise.all(
      Array.from({ length: 100 }, async (_, i) => {
        const res = await query(h.url, { prompt: `number ${i} speaking` });
        return deltaText(parseSse(await res.text()));
      }),
    );
    results.forEach((text, i) => {
      assert.equal(text, `You said: number ${i} speaking`);
    });
  });

  it('logs one line per request with the outcome, and never the key or the prompt', async () => {
    h.logs.length = 0;
    const res = await query(h.url, { prompt: 'my secret prompt text' }, withRequestId('logged-once'));
    await res.text();
    await requestLogOf(h, 'logged-once');
    const lines = requestLogs(h).filter((l) => l.reqId === 'logged-once');
    assert.equal(lines.length, 1);
    const line = lines[0];
    assert.ok(line);
    assert.equal(line.route, '/llm/query');
    assert.equal(line.status, 200);
    assert.equal(line.outcome, 'ok');
    assert.equal(line.attempts, 1);
    assert.equal(line.model, 'claude-sonnet-5');
    assert.equal(typeof line.ttfb_ms, 'number');
    assert.equal(typeof line.output_tokens, 'number');
    const all = h.logs.join('');
    assert.ok(!all.includes(SECRET_KEY), 'key in logs');
    assert.ok(!all.includes('my secret prompt text'), 'prompt in logs');
  });
});
