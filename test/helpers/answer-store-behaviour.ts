import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { it } from 'node:test';
import type {
  AnswerEnding,
  AnswerEvent,
  AnswerProducer,
  AnswerStore,
  AnswerStoreOptions,
} from '../../src/answers/answer-store.ts';
import { waitFor, within } from './wait.ts';

export type AnswerStoreFactory = (options: AnswerStoreOptions) => AnswerStore | Promise<AnswerStore>;

const USAGE = {
  input_tokens: 3,
  output_tokens: 5,
  cache_creation_input_tokens: 0,
  cache_read_input_tokens: 0,
};

/** Event `seq` of a test answer: a delta carrying `t{seq}`. */
export function delta(seq: number): AnswerEvent {
  return { seq, event: 'delta', data: JSON.stringify({ text: `t${seq}` }) };
}

/** Events `from`..`to` as deltas. */
export function deltas(from: number, to: number): AnswerEvent[] {
  const out: AnswerEvent[] = [];
  for (let seq = from; seq <= to; seq++) out.push(delta(seq));
  return out;
}

export function textOf(events: readonly AnswerEvent[]): string {
  return events
    .map((e) => e.seq)
    .map((seq) => `t${seq}`)
    .join('');
}

/** A completed ending with `done` as event `seq`. */
export function completed(seq: number, extra: AnswerEvent[] = []): AnswerEnding {
  return {
    status: 'completed',
    events: [...extra, { seq, event: 'done', data: '{"stop_reason":"end_turn"}' }],
    text: textOf(extra),
    stopReason: 'end_turn',
    usage: USAGE,
    error: null,
  };
}

/** Every event `read` yields until it ends (batches flattened), and the batches' sizes. */
export async function readAll(
  store: AnswerStore,
  id: string,
  after: number,
  signal = new AbortController().signal,
): Promise<{ events: AnswerEvent[]; batches: number[] }> {
  const events: AnswerEvent[] = [];
  const batches: number[] = [];
  for await (const batch of store.read(id, after, signal)) {
    assert.ok(batch.length > 0, 'a batch is never empty');
    batches.push(batch.length);
    events.push(...batch);
  }
  return { events, batches };
}

const seqs = (events: readonly AnswerEvent[]): number[] => events.map((e) => e.seq);
const range = (from: number, to: number): number[] => deltas(from, to).map((e) => e.seq);

/**
 * The rules every AnswerStore must follow, so the memory and the Redis store are held to the same
 * behaviour. `make` gives a fresh store; each test uses its own answer ids.
 */
export function answerStoreBehaviour(make: AnswerStoreFactory): void {
  const withStore = (
    name: string,
    body: (store: AnswerStore, start: (owner?: string | null) => Promise<AnswerProducer>) => Promise<void>,
    options: AnswerStoreOptions = { ttlMs: 60_000 },
  ): void => {
    it(name, async () => {
      const store = await make(options);
      const start = (owner: string | null = 'team-a'): Promise<AnswerProducer> =>
        store.create({ id: randomUUID(), owner, model: 'claude-test', requestId: `req-${randomUUID()}` });
      try {
        await within(body(store, start), 15_000, name);
      } finally {
        await store.close();
      }
    });
  };

  withStore('a new answer is in progress, with its owner and model, and no events', async (store, start) => {
    const producer = await start('team-a');
    assert.deepEqual(await store.get(producer.id), {
      owner: 'team-a',
      lastSeq: 0,
      snapshot: {
        id: producer.id,
        status: 'in_progress',
        model: 'claude-test',
        text: '',
        stop_reason: null,
        usage: null,
        error: null,
      },
    });
    const anonymous = await start(null);
    assert.equal((await store.get(anonymous.id))?.owner, null);
  });

  withStore('an unknown answer: get and cancel give null, read ends at once', async (store) => {
    const id = randomUUID();
    assert.equal(await store.get(id), null);
    assert.equal(await store.cancel(id), null);
    assert.deepEqual(await readAll(store, id, 0), { events: [], batches: [] });
  });

  withStore('the snapshot has the text so far, and the ending once finished', async (store, start) => {
    const producer = await start();
    await producer.append(deltas(1, 2), 't1t2');
    const running = await store.get(producer.id);
    assert.equal(running?.snapshot.text, 't1t2');
    assert.equal(running.lastSeq, 2);
    await producer.finish({ ...completed(4, [delta(3)]), model: 'claude-fallback' });
    assert.deepEqual(await store.get(producer.id), {
      owner: 'team-a',
      lastSeq: 4,
      snapshot: {
        id: producer.id,
        status: 'completed',
        model: 'claude-fallback',
        text: 't1t2t3',
        stop_reason: 'end_turn',
        usage: USAGE,
        error: null,
      },
    });
  });

  withStore('a failed answer keeps its error; only the first finish counts', async (store, start) => {
    const producer = await start();
    await producer.append([delta(1)], 't1');
    const error = { type: 'upstream_timeout', message: 'silent' };
    await producer.finish({
      status: 'failed',
      events: [{ seq: 2, event: 'error', data: JSON.stringify({ error }) }],
      text: '',
      stopReason: null,
      usage: null,
      error,
    });
    await producer.finish(completed(3));
    const answer = await store.get(producer.id);
    assert.equal(answer?.snapshot.status, 'failed');
    assert.deepEqual(answer.snapshot.error, error);
    assert.equal(answer.lastSeq, 2);
  });

  withStore('reading a finished answer replays every event verbatim, then ends', async (store, start) => {
    const producer = await start();
    const sent = [
      { seq: 1, event: 'start', data: '{"id":"x","model":"m"}' },
      { seq: 2, event: 'delta', data: '{"text":"a\\n\\"b\\""}' },
    ];
    await producer.append(sent, 'a\n"b"');
    await producer.finish(completed(3));
    const { events } = await readAll(store, producer.id, 0);
    assert.deepEqual(events, [...sent, ...completed(3).events]);
  });

  withStore('read after N yields only the events after N, exactly once, in order', async (store, start) => {
    const producer = await start();
    await producer.append(deltas(1, 3), '');
    await producer.append(deltas(4, 6), '');
    await producer.finish(completed(7));
    for (const after of [0, 1, 3, 4, 6]) {
      assert.deepEqual(
        seqs((await readAll(store, producer.id, after)).events),
        range(after + 1, 7),
        `after ${after}`,
      );
    }
    assert.deepEqual((await readAll(store, producer.id, 7)).events, []);
    assert.deepEqual((await readAll(store, producer.id, 100)).events, []);
  });

  withStore(
    'a follower gets the kept events, then the live ones as they come, until the end',
    async (store, start) => {
      const producer = await start();
      await producer.append(deltas(1, 2), '');
      const seen: AnswerEvent[] = [];
      const reading = (async () => {
        for await (const batch of store.read(producer.id, 1, new AbortController().signal)) {
          seen.push(...batch);
        }
      })();
      await waitFor(() => seen.length === 1, 'the kept event');
      await producer.append(deltas(3, 4), '');
      await waitFor(() => seen.length === 3, 'the live events');
      await producer.append([delta(5)], '');
      await producer.finish(completed(7, [delta(6)]));
      await reading;
      assert.deepEqual(seqs(seen), range(2, 7));
    },
  );

  withStore('appends made without waiting are kept in order', async (store, start) => {
    const producer = await start();
    const writes = [producer.append(deltas(1, 2), 't1t2'), producer.append([delta(3)], 't3')];
    writes.push(producer.finish(completed(5, [delta(4)])));
    await Promise.all(writes);
    assert.deepEqual(seqs((await readAll(store, producer.id, 0)).events), range(1, 5));
    assert.equal((await store.get(producer.id))?.snapshot.text, 't1t2t3t4');
  });

  withStore('several followers each get every event', async (store, start) => {
    const producer = await start();
    const readers = [
      readAll(store, producer.id, 0),
      readAll(store, producer.id, 2),
      readAll(store, producer.id, 0),
    ];
    await waitFor(async () => (await producer.followers()) === 3, 'three followers');
    for (let seq = 1; seq <= 5; seq++) await producer.append([delta(seq)], '');
    await producer.finish(completed(6));
    const [a, b, c] = await Promise.all(readers);
    assert.deepEqual(seqs(a?.events ?? []), range(1, 6));
    assert.deepEqual(seqs(b?.events ?? []), range(3, 6));
    assert.deepEqual(seqs(c?.events ?? []), range(1, 6));
  });

  withStore('followers are counted while they read, on every replica', async (store, start) => {
    const producer = await start();
    assert.equal(await producer.followers(), 0);
    const first = new AbortController();
    const second = new AbortController();
    const a = readAll(store, producer.id, 0, first.signal);
    const b = readAll(store, producer.id, 0, second.signal);
    await waitFor(async () => (await producer.followers()) === 2, 'two followers');
    first.abort();
    assert.deepEqual((await a).events, []);
    await waitFor(async () => (await producer.followers()) === 1, 'one follower left');
    await producer.append([delta(1)], '');
    second.abort();
    await b;
    await waitFor(async () => (await producer.followers()) === 0, 'no follower');
  });

  withStore('a follower that stops iterating is no longer counted', async (store, start) => {
    const producer = await start();
    await producer.append(deltas(1, 3), '');
    for await (const batch of store.read(producer.id, 0, new AbortController().signal)) {
      assert.ok(batch.length > 0);
      break;
    }
    await waitFor(async () => (await producer.followers()) === 0, 'no follower');
  });

  withStore(
    'an aborted read ends without error, even while it waits for live events',
    async (store, start) => {
      const producer = await start();
      await producer.append([delta(1)], '');
      const controller = new AbortController();
      const reading = readAll(store, producer.id, 0, controller.signal);
      await waitFor(async () => (await producer.followers()) === 1, 'the follower');
      controller.abort();
      assert.deepEqual(seqs((await reading).events), [1]);
      const already = new AbortController();
      already.abort();
      assert.deepEqual((await readAll(store, producer.id, 0, already.signal)).events, []);
    },
  );

  withStore('cancel tells the producer and returns the running answer', async (store, start) => {
    const producer = await start();
    await producer.append([delta(1)], 't1');
    const cancelled = new Promise<void>((resolve) => {
      producer.cancelRequested.addEventListener('abort', () => {
        resolve();
      });
    });
    const answer = await store.cancel(producer.id);
    assert.equal(answer?.snapshot.status, 'in_progress');
    assert.equal(answer.snapshot.text, 't1');
    await within(cancelled, 2_000, 'the cancel request');
    assert.equal(producer.cancelRequested.aborted, true);
    await producer.finish({
      status: 'cancelled',
      events: [{ seq: 2, event: 'error', data: '{"error":{"type":"cancelled"}}' }],
      text: '',
      stopReason: null,
      usage: USAGE,
      error: { type: 'cancelled', message: 'cancelled' },
    });
    assert.equal((await store.get(producer.id))?.snapshot.status, 'cancelled');
  });

  withStore('cancelling a finished answer changes nothing', async (store, start) => {
    const producer = await start();
    await producer.finish(completed(1));
    const answer = await store.cancel(producer.id);
    assert.equal(answer?.snapshot.status, 'completed');
    assert.equal((await store.get(producer.id))?.snapshot.status, 'completed');
  });

  withStore('heartbeats are accepted while the answer runs', async (store, start) => {
    const producer = await start();
    await producer.heartbeat();
    await producer.append([delta(1)], '');
    await producer.heartbeat();
    assert.equal((await store.get(producer.id))?.snapshot.status, 'in_progress');
  });

  withStore(
    'an answer is forgotten once its TTL after the end has passed; its followers end',
    async (store, start) => {
      const producer = await start();
      await producer.append([delta(1)], '');
      const other = await start();
      await producer.finish(completed(2));
      await waitFor(async () => (await store.get(producer.id)) === null, 'the answer to expire');
      assert.deepEqual(await readAll(store, producer.id, 0), { events: [], batches: [] });
      assert.equal(await store.cancel(producer.id), null);
      assert.equal((await store.get(other.id))?.snapshot.status, 'in_progress', 'a running answer is kept');
    },
    { ttlMs: 50 },
  );
}
