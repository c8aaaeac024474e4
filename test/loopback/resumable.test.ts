import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import type { AnswerStore } from '../../src/answers/answer-store.ts';
import { MemoryAnswerStore } from '../../src/answers/memory-answer-store.ts';
import type { FakeScenario } from '../../src/mock/fake-upstream.ts';
import { requestLogOf, requestLogs, startHarness, type Harness } from '../helpers/harness.ts';
import { SseClient, joinedText, postQuery, type IdEvent } from '../helpers/sse-client.ts';
import { closedWithin, upstreamRequest, waitFor } from '../helpers/wait.ts';

const WORDS = Array.from({ length: 24 }, (_, i) => `w${i} `);
const FULL = WORDS.join('');

function ids(events: readonly IdEvent[]): (number | undefined)[] {
  return events.map((e) => e.id);
}

function range(from: number, to: number): number[] {
  return Array.from({ length: to - from + 1 }, (_, i) => from + i);
}

function follow(h: Harness, id: string, headers: Record<string, string> = {}, query = ''): SseClient {
  return new SseClient(`${h.url}/llm/answers/${id}/events${query}`, { headers });
}

async function snapshot(h: Harness, id: string, headers: Record<string, string> = {}) {
  const res = await fetch(`${h.url}/llm/answers/${id}`, { headers });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

describe('resumable answers (memory store)', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness({ RESUME_GRACE_SECONDS: '30' });
  });
  after(async () => {
    await h.close();
  });
  beforeEach(() => {
    h.fake.reset();
  });

  it('numbers every event, names the answer in X-Answer-ID and the start event', async () => {
    h.fake.queue({ kind: 'message', deltas: ['Hello', ' world'] });
    const client = postQuery(h.url, { prompt: 'hi', resumable: true });
    await client.closed;
    assert.equal(client.status, 200);
    const answerId = client.headers['x-answer-id'];
    assert.match(String(answerId), /^[0-9a-f-]{36}$/);
    assert.deepEqual(ids(client.events), [1, 2, 3, 4]);
    assert.deepEqual(
      client.events.map((e) => e.event),
      ['start', 'delta', 'delta', 'done'],
    );
    const start = client.events[0]?.data as { id: string; answer_id: string };
    assert.equal(start.answer_id, answerId);
    assert.notEqual(start.id, answerId, 'the answer id is not the request id');
    assert.equal(joinedText(client.events), 'Hello world');
  });

  it("the events are a plain stream's, byte for byte, but for the id: lines and answer_id", async () => {
    const scenario: FakeScenario = {
      kind: 'message',
      deltas: ['Hel', 'lo ', 'wörld 🌍', ' "q"\n'],
      usage: { input_tokens: 12, output_tokens: 4, cache_read_input_tokens: 3 },
    };
    h.fake.queue(scenario);
    const plain = postQuery(h.url, { prompt: 'x' }, { 'x-request-id': 'same-id' });
    await plain.closed;
    h.fake.queue(scenario);
    const resumable = postQuery(h.url, { prompt: 'x', resumable: true }, { 'x-request-id': 'same-id' });
    await resumable.closed;
    const answerId = String(resumable.headers['x-answer-id']);
    const stripped = resumable.body.replace(/^id: \d+\n/gm, '').replace(`,"answer_id":"${answerId}"`, '');
    assert.equal(stripped, plain.body);
    assert.match(resumable.body, /"cost_usd":"0\.0000646"/);
  });

  it('a client cut after K events resumes with Last-Event-ID: K, with no word lost or doubled', async () => {
    h.fake.queue({ kind: 'message', deltas: WORDS, deltaDelayMs: 15 });
    const first = postQuery(h.url, { prompt: 'long', resumable: true });
    await first.received(5);
    first.cut();
    const answerId = String(first.headers['x-answer-id']);
    const seen = first.events.slice(0, 5);
    const last = seen.at(-1)?.id;
    assert.equal(last, 5);
    const upstream = await upstreamRequest(h.fake);
    const resumed = follow(h, answerId, { 'last-event-id': String(last) });
    await resumed.closed;
    assert.equal(resumed.status, 200);
    assert.equal(resumed.headers['x-answer-id'], answerId);
    const all = [...seen, ...resumed.events];
    assert.deepEqual(ids(all), range(1, WORDS.length + 2));
    assert.equal(joinedText(all), FULL);
    assert.equal(all.at(-1)?.event, 'done');
    assert.equal(h.fake.requests.length, 1, 'one upstream request');
    await upstream.closed;
    assert.equal(upstream.closedEarly, false, 'the upstream ran to its end');
  });

  it('following a finished answer replays it and ends; ?after=N skips the first N', async () => {
    h.fake.queue({ kind: 'message', deltas: ['a', 'b', 'c'] });
    const first = postQuery(h.url, { prompt: 'x', resumable: true });
    await first.closed;
    const answerId = String(first.headers['x-answer-id']);
    const replay = follow(h, answerId);
    await replay.closed;
    assert.deepEqual(replay.events, first.events);
    const tail = follow(h, answerId, {}, '?after=3');
    await tail.closed;
    assert.deepEqual(tail.events, first.events.slice(3));
    const snap = await snapshot(h, answerId);
    assert.equal(snap.status, 200);
    assert.deepEqual(
      { ...snap.body, usage: undefined },
      {
        id: answerId,
        status: 'completed',
        model: 'claude-sonnet-5',
        text: 'abc',
        stop_reason: 'end_turn',
        usage: undefined,
        error: null,
      },
    );
  });

  it('bad Last-Event-ID or after: 400 naming it', async () => {
    h.fake.queue({ kind: 'message', deltas: ['a'] });
    const first = postQuery(h.url, { prompt: 'x', resumable: true });
    await first.closed;
    const answerId = String(first.headers['x-answer-id']);
    for (const [headers, query, name] of [
      [{ 'last-event-id': 'abc' }, '', 'Last-Event-ID'],
      [{ 'last-event-id': '-1' }, '', 'Last-Event-ID'],
      [{}, '?after=1.5', '"after"'],
      [{}, '?after=', '"after"'],
    ] as const) {
      const res = await fetch(`${h.url}/llm/answers/${answerId}/events${query}`, { headers });
      assert.equal(res.status, 400);
      const body = (await res.json()) as { error: { type: string; message: string } };
      assert.equal(body.error.type, 'invalid_request_error');
      assert.ok(body.error.message.includes(name), body.error.message);
    }
  });

  it('unknown ids: 404 on all three routes', async () => {
    for (const id of ['3b241101-e2bb-4255-8caf-4136c566a962', 'nope']) {
      assert.equal((await fetch(`${h.url}/llm/answers/${id}`)).status, 404);
      assert.equal((await fetch(`${h.url}/llm/answers/${id}/events`)).status, 404);
      assert.equal((await fetch(`${h.url}/llm/answers/${id}/cancel`, { method: 'POST' })).status, 404);
    }
  });

  it('an upstream failure before the answer begins keeps its real status and leaves no answer', async () => {
    h.fake.queue({ kind: 'error', status: 400, message: 'bad thing' });
    const client = postQuery(h.url, { prompt: 'x', resumable: true });
    await client.closed;
    assert.equal(client.status, 400);
    assert.equal(client.headers['x-answer-id'], undefined);
    assert.equal(
      (JSON.parse(client.body) as { error: { type: string } }).error.type,
      'invalid_request_error',
    );
  });

  it('"resumable" with "stream": false is refused before the upstream', async () => {
    const res = await fetch(`${h.url}/llm/query`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ prompt: 'x', resumable: true, stream: false }),
    });
    assert.equal(res.status, 400);
    assert.match(((await res.json()) as { error: { message: string } }).error.message, /"resumable"/);
    assert.equal(h.fake.requests.length, 0);
  });

  it('background: 202 at once with id, status and Location; polled to completed', async () => {
    h.fake.queue({ kind: 'message', deltas: ['one ', 'two'], deltaDelayMs: 5 });
    const res = await fetch(`${h.url}/llm/query`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ prompt: 'x', background: true }),
    });
    assert.equal(res.status, 202);
    const body = (await res.json()) as { id: string; status: string; model: string };
    assert.equal(body.status, 'in_progress');
    assert.equal(body.model, 'claude-sonnet-5');
    assert.equal(res.headers.get('location'), `/llm/answers/${body.id}`);
    assert.equal(res.headers.get('x-answer-id'), body.id);
    await waitFor(async () => (await snapshot(h, body.id)).body.status === 'completed', 'completed');
    const snap = await snapshot(h, body.id);
    assert.equal(snap.body.text, 'one two');
    const replay = follow(h, body.id);
    await replay.closed;
    assert.deepEqual(ids(replay.events), [1, 2, 3, 4]);
    assert.equal(joinedText(replay.events), 'one two');
  });

  it('background: an upstream failure before the answer begins shows as failed', async () => {
    h.fake.queue({ kind: 'error', status: 400, message: 'nope' });
    const res = await fetch(`${h.url}/llm/query`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ prompt: 'x', background: true }),
    });
    assert.equal(res.status, 202);
    const { id } = (await res.json()) as { id: string };
    await waitFor(async () => (await snapshot(h, id)).body.status !== 'in_progress', 'the end');
    const snap = await snapshot(h, id);
    assert.equal(snap.body.status, 'failed');
    assert.equal((snap.body.error as { type: string }).type, 'invalid_request_error');
    const replay = follow(h, id);
    await replay.closed;
    assert.deepEqual(
      replay.events.map((e) => [e.id, e.event]),
      [[1, 'error']],
    );
  });

  it('cancel stops the upstream; followers get an error event of type cancelled', async () => {
    h.fake.queue({ kind: 'message', deltas: WORDS, fault: { type: 'stall', afterDeltas: 2 } });
    const first = postQuery(h.url, { prompt: 'x', resumable: true });
    await first.received(3);
    const answerId = String(first.headers['x-answer-id']);
    const upstream = await upstreamRequest(h.fake);
    const cancel = await fetch(`${h.url}/llm/answers/${answerId}/cancel`, { method: 'POST' });
    assert.equal(cancel.status, 200);
    const body = (await cancel.json()) as { status: string; text: string };
    assert.equal(body.status, 'cancelled');
    assert.equal(body.text, WORDS.slice(0, 2).join(''));
    await closedWithin(upstream, 1000);
    await first.closed;
    const last = first.events.at(-1);
    assert.equal(last?.event, 'error');
    assert.equal((last.data as { error: { type: string } }).error.type, 'cancelled');
    assert.deepEqual(ids(first.events), [1, 2, 3, 4]);
    const again = await fetch(`${h.url}/llm/answers/${answerId}/cancel`, { method: 'POST' });
    assert.equal(((await again.json()) as { status: string }).status, 'cancelled', 'a no-op');
  });
});

describe('resumable answers: grace, TTL, ownership', () => {
  it('nobody follows when the grace ends: the upstream is aborted and the answer cancelled', async () => {
    const h = await startHarness({ RESUME_GRACE_SECONDS: '0.2' });
    try {
      h.fake.queue({ kind: 'message', deltas: WORDS, fault: { type: 'stall', afterDeltas: 3 } });
      const first = postQuery(h.url, { prompt: 'x', resumable: true });
      await first.received(2);
      const answerId = String(first.headers['x-answer-id']);
      first.cut();
      const upstream = await upstreamRequest(h.fake);
      await closedWithin(upstream, 5000);
      await waitFor(async () => (await snapshot(h, answerId)).body.status === 'cancelled', 'cancelled');
    } finally {
      await h.close();
    }
  });

  it('a follower back within the grace keeps the answer going to its end', async () => {
    const h = await startHarness({ RESUME_GRACE_SECONDS: '0.3' });
    try {
      h.fake.queue({ kind: 'message', deltas: WORDS, deltaDelayMs: 40 });
      const first = postQuery(h.url, { prompt: 'x', resumable: true });
      await first.received(2);
      first.cut();
      const answerId = String(first.headers['x-answer-id']);
      const resumed = follow(h, answerId, { 'last-event-id': '2' });
      await resumed.closed;
      assert.equal(resumed.events.at(-1)?.event, 'done');
      assert.equal(joinedText([...first.events.slice(0, 2), ...resumed.events]), FULL);
      assert.equal(h.fake.requests[0]?.closedEarly, false);
    } finally {
      await h.close();
    }
  });

  it('an answer is forgotten ANSWER_TTL_SECONDS after it ended: 404', async () => {
    const h = await startHarness({ ANSWER_TTL_SECONDS: '0.2' });
    try {
      h.fake.queue({ kind: 'message', deltas: ['a'] });
      const first = postQuery(h.url, { prompt: 'x', resumable: true });
      await first.closed;
      const answerId = String(first.headers['x-answer-id']);
      assert.equal((await snapshot(h, answerId)).status, 200);
      await waitFor(async () => (await snapshot(h, answerId)).status === 404, 'the answer to expire');
      assert.equal((await fetch(`${h.url}/llm/answers/${answerId}/events`)).status, 404);
    } finally {
      await h.close();
    }
  });

  it("another key's answer is a 404 on all three routes; its own key sees it", async () => {
    const alice = 'sk-alice-0123456789abcdef0123';
    const bob = 'sk-bob-0123456789abcdef012345';
    const h = await startHarness({ SERVICE_API_KEYS: `alice:${alice},bob:${bob}` });
    try {
      h.fake.queue({ kind: 'message', deltas: ['secret'] });
      const first = postQuery(h.url, { prompt: 'x', resumable: true }, { authorization: `Bearer ${alice}` });
      await first.closed;
      assert.equal(first.status, 200);
      const answerId = String(first.headers['x-answer-id']);
      const asBob = { authorization: `Bearer ${bob}` };
      assert.equal((await fetch(`${h.url}/llm/answers/${answerId}`, { headers: asBob })).status, 404);
      assert.equal((await fetch(`${h.url}/llm/answers/${answerId}/events`, { headers: asBob })).status, 404);
      const cancel = await fetch(`${h.url}/llm/answers/${answerId}/cancel`, {
        method: 'POST',
        headers: asBob,
      });
      assert.equal(cancel.status, 404);
      assert.equal((await fetch(`${h.url}/llm/answers/${answerId}`)).status, 401);
      const own = await snapshot(h, answerId, { authorization: `Bearer ${alice}` });
      assert.equal(own.status, 200);
      assert.equal(own.body.text, 'secret');
    } finally {
      await h.close();
    }
  });
});

describe('resumable answers: limits, log lines, metrics', () => {
  const ALICE = 'sk-alice-0123456789abcdef0123';
  const asAlice = { authorization: `Bearer ${ALICE}` };

  it('the answer holds its stream slot until it ends, not until its client leaves', async () => {
    const h = await startHarness({ SERVICE_API_KEYS: `alice:${ALICE}`, MAX_CONCURRENT_STREAMS: '1' });
    try {
      h.fake.queue({ kind: 'message', deltas: WORDS, fault: { type: 'stall', afterDeltas: 2 } });
      const first = postQuery(h.url, { prompt: 'x', resumable: true }, asAlice);
      await first.received(2);
      first.cut();
      await first.closed;
      const answerId = String(first.headers['x-answer-id']);
      const refused = await query(h, asAlice);
      assert.equal(refused.status, 429, 'the running answer still holds the one slot');
      await refused.arrayBuffer();
      // Its own answer stays readable: the stored answers' routes hold no slot.
      assert.equal((await snapshot(h, answerId, asAlice)).body.status, 'in_progress');
      const cancel = await fetch(`${h.url}/llm/answers/${answerId}/cancel`, {
        method: 'POST',
        headers: asAlice,
      });
      assert.equal(cancel.status, 200);
      await waitFor(() => requestLogs(h).some((l) => l.answer_mode === 'resumable'), 'the answer to end');
      h.fake.queue({ kind: 'message', deltas: ['ok'] });
      const next = await query(h, asAlice);
      assert.equal(next.status, 200);
      await next.arrayBuffer();
    } finally {
      await h.close();
    }
  });

  it('the POST is logged once the answer ends, with its mode and final usage; each resume has its own line', async () => {
    const h = await startHarness();
    try {
      h.fake.queue({
        kind: 'message',
        deltas: WORDS,
        deltaDelayMs: 10,
        usage: { input_tokens: 11, output_tokens: 42 },
      });
      const first = postQuery(h.url, { prompt: 'x', resumable: true }, { 'x-request-id': 'resumable-post' });
      await first.received(3);
      first.cut();
      const answerId = String(first.headers['x-answer-id']);
      const resumed = follow(h, answerId, { 'last-event-id': '3', 'x-request-id': 'resume-1' });
      await resumed.closed;
      const post = await requestLogOf(h, 'resumable-post');
      assert.equal(post.answer_mode, 'resumable');
      assert.equal(post.outcome, 'ok');
      assert.equal(post.output_tokens, 42);
      const resume = await requestLogOf(h, 'resume-1');
      assert.equal(resume.route, '/llm/answers/:id/events');
      assert.equal(resume.status, 200);
      h.fake.queue({ kind: 'message', deltas: ['a'] });
      const background = await fetch(`${h.url}/llm/query`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-request-id': 'background-post' },
        body: JSON.stringify({ prompt: 'x', background: true }),
      });
      assert.equal(background.status, 202);
      const line = await requestLogOf(h, 'background-post');
      assert.equal(line.answer_mode, 'background');
      assert.equal(line.status, 202);
      const plain = await fetch(`${h.url}/llm/query`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-request-id': 'plain-post' },
        body: JSON.stringify({ prompt: 'x' }),
      });
      await plain.text();
      const plainLine = await requestLogOf(h, 'plain-post');
      assert.equal('answer_mode' in plainLine, false, 'a plain answer logs no mode');
    } finally {
      await h.close();
    }
  });

  it('metrics: answers started by mode, resumes, cancels, grace expiries, followers now', async () => {
    const h = await startHarness({ RESUME_GRACE_SECONDS: '0.1' });
    try {
      const metric = async (name: string): Promise<number> => {
        const text = await (await fetch(`${h.url}/metrics`)).text();
        const line = text.split('\n').find((l) => l.startsWith(name));
        return line === undefined ? 0 : Number(line.split(' ').at(-1));
      };
      h.fake.queue({ kind: 'message', deltas: WORDS, fault: { type: 'stall', afterDeltas: 2 } });
      const first = postQuery(h.url, { prompt: 'x', resumable: true });
      await first.received(2);
      const answerId = String(first.headers['x-answer-id']);
      const follower = follow(h, answerId);
      await waitFor(async () => (await metric('llmc_answer_followers')) === 1, 'one follower');
      assert.equal(await metric('llmc_answer_resumes_total'), 1);
      assert.equal(await metric('llmc_answers_started_total{mode="resumable"}'), 1);
      await fetch(`${h.url}/llm/answers/${answerId}/cancel`, { method: 'POST' });
      await follower.closed;
      assert.equal(await metric('llmc_answer_cancels_total'), 1);
      await waitFor(async () => (await metric('llmc_answer_followers')) === 0, 'no follower');
      h.fake.queue({ kind: 'message', deltas: WORDS, fault: { type: 'stall', afterDeltas: 2 } });
      const second = postQuery(h.url, { prompt: 'x', resumable: true });
      await second.received(2);
      second.cut();
      await waitFor(async () => (await metric('llmc_answer_grace_expiries_total')) === 1, 'a grace expiry');
      h.fake.queue({ kind: 'message', deltas: ['a'] });
      const background = await fetch(`${h.url}/llm/query`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ prompt: 'x', background: true }),
      });
      await background.arrayBuffer();
      assert.equal(await metric('llmc_answers_started_total{mode="background"}'), 1);
    } finally {
      await h.close();
    }
  });
});

function query(h: Harness, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(`${h.url}/llm/query`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify({ prompt: 'x' }),
  });
}

describe('resumable answers: a failing store', () => {
  it('a failed append: the live client still gets the whole answer; nothing more is written for it', async () => {
    const memory = new MemoryAnswerStore({ ttlMs: 60_000 });
    const calls: string[] = [];
    const store: AnswerStore = {
      get: (id) => memory.get(id),
      read: (id, after, signal) => memory.read(id, after, signal),
      cancel: (id) => memory.cancel(id),
      close: () => memory.close(),
      async create(answer) {
        const producer = await memory.create(answer);
        let appends = 0;
        return {
          id: producer.id,
          cancelRequested: producer.cancelRequested,
          followers: () => producer.followers(),
          heartbeat: () => {
            calls.push('heartbeat');
            return producer.heartbeat();
          },
          append: (events, text) => {
            calls.push('append');
            return ++appends === 2 ? Promise.reject(new Error('store down')) : producer.append(events, text);
          },
          finish: (ending) => {
            calls.push('finish');
            return producer.finish(ending);
          },
        };
      },
    };
    const h = await startHarness({}, { answerStore: store });
    try {
      h.fake.queue({ kind: 'message', deltas: WORDS, deltaDelayMs: 5 });
      const client = postQuery(h.url, { prompt: 'x', resumable: true });
      await client.closed;
      assert.equal(joinedText(client.events), FULL);
      assert.deepEqual(ids(client.events), range(1, WORDS.length + 2));
      assert.deepEqual(
        calls.filter((c) => c !== 'heartbeat'),
        ['append', 'append'],
        'nothing written after the failed append',
      );
      await waitFor(() => h.logs.some((l) => l.includes('answer store failed')), 'the warning');
    } finally {
      await h.close();
    }
  });
});

describe('resumable answers: bounded without a connection', () => {
  it('at most MAX_CONNECTIONS answers run per process, background ones included: then 503', async () => {
    const h = await startHarness({ MAX_CONNECTIONS: '2' });
    try {
      h.fake.setScenario(() => ({
        kind: 'message',
        deltas: WORDS,
        fault: { type: 'stall', afterDeltas: 1 },
      }));
      const start = () =>
        fetch(`${h.url}/llm/query`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', connection: 'close' },
          body: JSON.stringify({ prompt: 'x', background: true }),
        });
      const ids: string[] = [];
      for (let i = 0; i < 2; i++) {
        const res = await start();
        assert.equal(res.status, 202);
        ids.push(((await res.json()) as { id: string }).id);
      }
      await upstreamRequest(h.fake, 2);
      const refused = await start();
      assert.equal(refused.status, 503);
      assert.match(
        ((await refused.json()) as { error: { message: string } }).error.message,
        /MAX_CONNECTIONS/,
      );
      for (const id of ids) {
        const cancel = await fetch(`${h.url}/llm/answers/${id}/cancel`, {
          method: 'POST',
          headers: { connection: 'close' },
        });
        assert.equal(((await cancel.json()) as { status: string }).status, 'cancelled');
      }
      h.fake.setScenario(() => ({ kind: 'message', deltas: ['ok'] }));
      const again = await start();
      assert.equal(again.status, 202);
      await again.arrayBuffer();
    } finally {
      await h.close();
    }
  });
});
