import type { Usage } from '../anthropic/message-stream.ts';
import {
  eventBytes,
  type AnswerEnding,
  type AnswerError,
  type AnswerEvent,
  type AnswerProducer,
  type AnswerStatus,
  type AnswerStore,
  type AnswerStoreOptions,
  type NewAnswer,
  type StoredAnswer,
} from './answer-store.ts';

interface Entry {
  readonly id: string;
  readonly owner: string | null;
  model: string;
  status: AnswerStatus;
  text: string;
  stopReason: string | null;
  usage: Usage | null;
  error: AnswerError | null;
  readonly events: AnswerEvent[];
  /** Woken on every change (events, end, expiry). */
  readonly waiters: Set<() => void>;
  followers: number;
  readonly cancel: AbortController;
  expiry: NodeJS.Timeout | undefined;
  /** What its events and text hold in memory, about. */
  bytes: number;
}

export interface MemoryAnswerStoreOptions extends AnswerStoreOptions {
  /**
   * At most this many bytes of events kept (`ANSWER_MEMORY_BYTES`): past it, the answers that have
   * ended are forgotten before their TTL, the longest-ended first. Running answers are never dropped
   * (their number is bounded by the service).
   */
  readonly maxBytes?: number;
  /** Called for each ended answer forgotten before its TTL to stay within `maxBytes`. */
  readonly onEvicted?: () => void;
}

/**
 * Answers in this process's memory: for a single process (with `--workers` > 1, the Redis store is
 * required). A JavaScript turn is atomic, so each append is seen whole or not at all. An answer is
 * forgotten `ttlMs` after it ended; one still running lives as long as its producer.
 */
export class MemoryAnswerStore implements AnswerStore {
  readonly #ttlMs: number;
  readonly #maxBytes: number;
  readonly #onEvicted: () => void;
  readonly #entries = new Map<string, Entry>();
  /** The answers that have ended, in the order they ended (the first is forgotten first). */
  readonly #endedOrder = new Set<Entry>();
  #bytes = 0;

  constructor(options: MemoryAnswerStoreOptions) {
    this.#ttlMs = options.ttlMs;
    this.#maxBytes = options.maxBytes ?? Number.POSITIVE_INFINITY;
    this.#onEvicted =
      options.onEvicted ??
      (() => {
        // Nobody counts them.
      });
  }

  /** About how many bytes the stored answers' events and text hold. */
  get bytes(): number {
    return this.#bytes;
  }

  create(answer: NewAnswer): Promise<AnswerProducer> {
    if (this.#entries.has(answer.id)) return Promise.reject(new Error(`answer ${answer.id} exists`));
    const entry: Entry = {
      id: answer.id,
      owner: answer.owner,
      model: answer.model,
      status: 'in_progress',
      text: '',
      stopReason: null,
      usage: null,
      error: null,
      events: [],
      waiters: new Set(),
      followers: 0,
      cancel: new AbortController(),
      expiry: undefined,
      bytes: 0,
    };
    this.#entries.set(answer.id, entry);
    return Promise.resolve(
      new MemoryProducer(
        entry,
        (bytes) => {
          this.#grew(entry, bytes);
        },
        () => {
          this.#ended(entry);
        },
      ),
    );
  }

  get(id: string): Promise<StoredAnswer | null> {
    const entry = this.#entries.get(id);
    return Promise.resolve(entry === undefined ? null : stored(entry));
  }

  async *read(id: string, after: number, signal: AbortSignal): AsyncGenerator<readonly AnswerEvent[]> {
    const entry = this.#entries.get(id);
    if (entry === undefined) return;
    let next = after; // events[next] has seq next + 1
    entry.followers++;
    try {
      while (!signal.aborted && this.#entries.get(id) === entry) {
        if (entry.events.length > next) {
          const batch = entry.events.slice(next);
          next = entry.events.length;
          yield batch;
          continue;
        }
        if (entry.status !== 'in_progress') return;
        await changed(entry, signal);
      }
    } finally {
      entry.followers--;
    }
  }

  cancel(id: string): Promise<StoredAnswer | null> {
    const entry = this.#entries.get(id);
    if (entry === undefined) return Promise.resolve(null);
    if (entry.status === 'in_progress') entry.cancel.abort();
    return Promise.resolve(stored(entry));
  }

  close(): Promise<void> {
    for (const entry of this.#entries.values()) {
      clearTimeout(entry.expiry);
      wake(entry);
    }
    this.#entries.clear();
    this.#endedOrder.clear();
    this.#bytes = 0;
    return Promise.resolve();
  }

  #grew(entry: Entry, bytes: number): void {
    entry.bytes += bytes;
    this.#bytes += bytes;
    this.#evict();
  }

  #ended(entry: Entry): void {
    this.#endedOrder.add(entry);
    entry.expiry = setTimeout(() => {
      this.#forget(entry);
    }, this.#ttlMs);
    entry.expiry.unref();
    this.#evict();
  }

  /** Forgets ended answers, the longest-ended first, until the events fit in `maxBytes`. */
  #evict(): void {
    for (const entry of this.#endedOrder) {
      if (this.#bytes <= this.#maxBytes) return;
      clearTimeout(entry.expiry);
      this.#forget(entry);
      this.#onEvicted();
    }
  }

  #forget(entry: Entry): void {
    if (this.#entries.get(entry.id) !== entry) return;
    this.#entries.delete(entry.id);
    this.#endedOrder.delete(entry);
    this.#bytes -= entry.bytes;
    wake(entry);
  }
}

class MemoryProducer implements AnswerProducer {
  readonly id: string;
  readonly cancelRequested: AbortSignal;
  readonly #entry: Entry;
  readonly #onGrow: (bytes: number) => void;
  readonly #onEnd: () => void;

  constructor(entry: Entry, onGrow: (bytes: number) => void, onEnd: () => void) {
    this.id = entry.id;
    this.#entry = entry;
    this.#onGrow = onGrow;
    this.#onEnd = onEnd;
    this.cancelRequested = entry.cancel.signal;
  }

  append(events: readonly AnswerEvent[], text: string): Promise<void> {
    const refused = this.#add(events, text);
    if (refused) return Promise.reject(refused);
    wake(this.#entry);
    return Promise.resolve();
  }

  finish(ending: AnswerEnding): Promise<void> {
    const entry = this.#entry;
    if (entry.status !== 'in_progress') return Promise.resolve();
    const refused = this.#add(ending.events, ending.text);
    if (refused) return Promise.reject(refused);
    entry.status = ending.status;
    entry.stopReason = ending.stopReason;
    entry.usage = ending.usage;
    entry.error = ending.error;
    if (ending.model !== undefined) entry.model = ending.model;
    this.#onEnd();
    wake(entry);
    return Promise.resolve();
  }

  heartbeat(): Promise<void> {
    return Promise.resolve();
  }

  followers(): Promise<number> {
    return Promise.resolve(this.#entry.followers);
  }

  /** Adds the events, or says why not (a producer's mistake: ended, or a gap in the seqs). */
  #add(events: readonly AnswerEvent[], text: string): Error | null {
    const entry = this.#entry;
    if (entry.status !== 'in_progress') return new Error(`answer ${entry.id} has ended`);
    let expected = entry.events.length + 1;
    for (const event of events) {
      if (event.seq !== expected)
        return new Error(`answer ${entry.id}: event ${event.seq}, expected ${expected}`);
      expected++;
    }
    let bytes = 2 * text.length;
    for (const event of events) {
      entry.events.push(event);
      bytes += eventBytes(event);
    }
    entry.text += text;
    this.#onGrow(bytes);
    return null;
  }
}

function stored(entry: Entry): StoredAnswer {
  return {
    owner: entry.owner,
    lastSeq: entry.events.length,
    snapshot: {
      id: entry.id,
      status: entry.status,
      model: entry.model,
      text: entry.text,
      stop_reason: entry.stopReason,
      usage: entry.usage,
      error: entry.error,
    },
  };
}

function wake(entry: Entry): void {
  const waiters = [...entry.waiters];
  entry.waiters.clear();
  for (const waiter of waiters) waiter();
}

/** Resolves on the entry's next change, or when `signal` aborts. */
function changed(entry: Entry, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      entry.waiters.delete(done);
      signal.removeEventListener('abort', done);
      resolve();
    };
    entry.waiters.add(done);
    signal.addEventListener('abort', done, { once: true });
  });
}
