import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { Usage } from '../anthropic/message-stream.ts';
import {
  ANSWER_LOST,
  PRODUCER_LOST_AFTER_MS,
  errorEvent,
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
import {
  APPEND,
  CANCEL,
  CREATE,
  FINISH,
  FOLLOWERS,
  HEARTBEAT,
  READ,
  SNAPSHOT,
  type AnswerScript,
} from './redis-answer-scripts.ts';
import { connectRedis, redisReady } from '../limits/redis-client.ts';

export interface RedisAnswerStoreOptions extends AnswerStoreOptions {
  readonly url: string;
  /** Namespace of every key; default `llmc:`. */
  readonly prefix?: string;
  /** Longest wait for one Redis call before it counts as failed; default 500 ms. */
  readonly commandTimeoutMs?: number;
  /** A producer that wrote no event and no heartbeat for this long is lost; default PRODUCER_LOST_AFTER_MS. */
  readonly producerLostAfterMs?: number;
  /** A waiting follower looks again (counts itself, checks for a lost producer) this often; default 2 s. */
  readonly pollMs?: number;
  /**
   * The events of the upstream chunks that come within this many ms go in one write (the live client
   * never waits for it; followers elsewhere see the events this much later); default 200 ms (at 50 ms the
   * connector's CPU per paced resumable stream was 1.60x the plain path's, at 200 ms 1.42x, same runs).
   */
  readonly batchMs?: number;
  /** Every connection error, including each failed reconnect attempt: count it, don't log each. */
  readonly onConnectionError?: (error: Error) => void;
}

const DEFAULT_BATCH_MS = 200;
/** An unfinished answer's keys outlive its last heartbeat this long (a crashed producer's keys expire). */
const IN_PROGRESS_EXTRA_TTL_MS = 5 * 60_000;
/** Events per XRANGE / XREAD reply. */
const READ_COUNT = 1_000;
/** How long the shared reader blocks in one XREAD (it is woken early when a follower joins). */
const BLOCK_MS = 5_000;
/** The longest a new answer waits for the cancel subscription (the heartbeat brings a cancel anyway). */
const SUBSCRIBE_WAIT_MS = 1_000;
/** Events a channel keeps for a follower that was busy writing when they came. */
const RECENT_EVENTS = 256;
/** A follower counts for this many poll intervals after its last look (a crashed replica's followers expire). */
const FOLLOWER_POLLS = 3;

/** An event as read back: `end` on the answer's last event. */
interface ReadEvent extends AnswerEvent {
  readonly end: boolean;
}

/**
 * Answers in Redis, shared by every replica: events in a stream per answer (one XADD batch per
 * append, in one script with the text and the heartbeat), the snapshot in a hash. Followers read the
 * kept events with XRANGE, then wait on one shared XREAD BLOCK connection per process (whatever the
 * number of followers: one blocking connection, one XREAD for all the answers followed here), or,
 * for answers produced in this process, get the events as soon as Redis acknowledged them. Cancels
 * reach the producer through pub/sub, and through its heartbeat's reply should a message be lost.
 * A call never waits longer than the command timeout; while disconnected, calls fail at once.
 */
export class RedisAnswerStore implements AnswerStore {
  readonly #ttlMs: number;
  readonly #inProgressTtlMs: number;
  readonly #aliveTtlMs: number;
  readonly #pollMs: number;
  readonly #batchMs: number;
  readonly #prefix: string;
  readonly #options: RedisAnswerStoreOptions;
  readonly #redis: Redis;
  readonly #instance = randomUUID();
  readonly #producers = new Map<string, RedisProducer>();
  readonly #channels = new Map<string, Channel>();
  #subscriber: Redis | undefined;
  #subscribed: Promise<void> | undefined;
  #reader: SharedReader | undefined;
  /** The producers whose next write waits for the batch timer. */
  readonly #dirty = new Set<RedisProducer>();
  #flushTimer: NodeJS.Timeout | undefined;
  #followers = 0;
  #closed = false;

  constructor(options: RedisAnswerStoreOptions) {
    this.#options = options;
    this.#ttlMs = Math.max(1, Math.round(options.ttlMs));
    this.#inProgressTtlMs = this.#ttlMs + IN_PROGRESS_EXTRA_TTL_MS;
    this.#aliveTtlMs = options.producerLostAfterMs ?? PRODUCER_LOST_AFTER_MS;
    this.#pollMs = options.pollMs ?? 2_000;
    this.#batchMs = options.batchMs ?? DEFAULT_BATCH_MS;
    this.#prefix = options.prefix ?? 'llmc:';
    this.#redis = this.#connect('llm-connector-answers', options.commandTimeoutMs ?? 500, true);
  }

  healthy(): boolean {
    return this.#redis.status === 'ready';
  }

  /** Resolves when connected (true) or after `timeoutMs` (false); for start-up and tests. */
  waitUntilReady(timeoutMs: number): Promise<boolean> {
    return redisReady(this.#redis, timeoutMs);
  }

  async create(answer: NewAnswer): Promise<AnswerProducer> {
    const lost = errorEvent(0, ANSWER_LOST, answer.requestId).data;
    const [reply] = await Promise.all([
      this.#run(CREATE, answer.id, [
        this.#inProgressTtlMs,
        this.#aliveTtlMs,
        answer.owner === null ? 0 : 1,
        answer.owner ?? '',
        answer.model,
        answer.requestId,
        lost,
        JSON.stringify(ANSWER_LOST),
      ]),
      // A cancel must find the producer listening; should pub/sub fail, the heartbeat still brings it.
      this.#subscribe().catch(() => undefined),
    ]);
    if (reply !== 1) throw new Error(`answer ${answer.id} exists`);
    const producer = new RedisProducer(this, answer.id);
    this.#producers.set(answer.id, producer);
    return producer;
  }

  async get(id: string): Promise<StoredAnswer | null> {
    const reply = await this.#run(SNAPSHOT, id, [this.#ttlMs]);
    if (!Array.isArray(reply) || reply.length < 2) return null;
    return storedAnswer(id, reply[0] as string[], String(reply[1]));
  }

  async *read(id: string, after: number, signal: AbortSignal): AsyncGenerator<readonly AnswerEvent[]> {
    const stopped = (): boolean => signal.aborted || this.#closed;
    if (stopped()) return;
    const member = `${this.#instance}:${++this.#followers}`;
    const channel = this.#channel(id);
    let pos = after;
    let counted = false;
    let failingSince: number | undefined;
    try {
      while (!stopped()) {
        let reply: unknown;
        try {
          reply = await this.#run(READ, id, [
            pos,
            READ_COUNT,
            this.#ttlMs,
            member,
            this.#pollMs * FOLLOWER_POLLS,
          ]);
          failingSince = undefined;
        } catch (error) {
          // Nothing read yet: the caller can still answer with an error status.
          if (!counted) throw error;
          failingSince ??= Date.now();
          if (Date.now() - failingSince > this.#aliveTtlMs) throw error;
          await pause(Math.min(this.#pollMs, 500), signal);
          continue;
        }
        if (!Array.isArray(reply) || reply.length < 3) return; // unknown or expired
        counted = true;
        const status = String(reply[0]) as AnswerStatus;
        const lastSeq = Number(reply[2]);
        const events = parseEntries(reply[1]).filter((event) => event.seq > pos);
        if (events.length > 0) {
          pos = lastOf(events).seq;
          yield events.map(plain);
          if (lastOf(events).end) return;
          if (events.length >= READ_COUNT) continue;
        }
        if (status !== 'in_progress' && events.length === 0) return;
        // Caught up: take live events from the shared reader (or the local producer) while they come
        // without a gap, and look again through READ at least every poll interval.
        const lookedAt = Date.now();
        for (;;) {
          const waitMs = this.#pollMs - (Date.now() - lookedAt);
          if (waitMs <= 0) break;
          const live = await channel.wait(pos, signal, waitMs, Math.min(pos, lastSeq));
          if (live === null || stopped()) break;
          const next = live.filter((event) => event.seq > pos);
          if (next.length === 0) {
            if (live.some((event) => event.end)) return; // it ended (a read past its last event)
            continue;
          }
          if (next[0]?.seq !== pos + 1) break; // a gap: read the kept events
          pos = lastOf(next).seq;
          yield next.map(plain);
          if (lastOf(next).end) return;
        }
      }
    } finally {
      channel.release();
      if (channel.users === 0) this.#dropChannel(channel);
      if (counted) await this.#redis.zrem(this.#key(id, 'followers'), member).catch(() => undefined);
    }
  }

  async cancel(id: string): Promise<StoredAnswer | null> {
    const reply = await this.#run(CANCEL, id, [this.#cancelChannel(), id]);
    if (reply !== 1) return null;
    return this.get(id);
  }

  async close(): Promise<void> {
    this.#closed = true;
    // Writes waiting for the batch timer go out now (or fail): none is left hanging.
    clearTimeout(this.#flushTimer);
    this.#flushTimer = undefined;
    for (const producer of this.#dirty) producer.flush();
    this.#dirty.clear();
    for (const channel of this.#channels.values()) channel.wakeAll();
    this.#reader?.close();
    await Promise.all([
      quit(this.#redis),
      this.#subscriber === undefined ? undefined : quit(this.#subscriber),
    ]);
  }

  // ---- for the producer

  /** Runs a script on one answer's keys. */
  async run(script: AnswerScript, id: string, args: readonly (string | number)[]): Promise<unknown> {
    return this.#run(script, id, args);
  }

  get inProgressTtlMs(): number {
    return this.#inProgressTtlMs;
  }

  get aliveTtlMs(): number {
    return this.#aliveTtlMs;
  }

  get ttlMs(): number {
    return this.#ttlMs;
  }

  get batchMs(): number {
    return this.#batchMs;
  }

  /**
   * Begins `producer`'s next write at the end of the batch interval: one timer for every answer of
   * the process, so that their writes go out together (auto-pipelined: one socket write for all).
   */
  flushLater(producer: RedisProducer): void {
    this.#dirty.add(producer);
    if (this.#flushTimer !== undefined) return;
    this.#flushTimer = setTimeout(() => {
      this.#flushTimer = undefined;
      const dirty = [...this.#dirty];
      this.#dirty.clear();
      for (const one of dirty) one.flush();
    }, this.#batchMs);
  }

  /** Events Redis has just acknowledged, for the followers in this process. */
  delivered(id: string, events: readonly ReadEvent[]): void {
    if (events.length > 0) this.#channels.get(id)?.deliver(events);
  }

  ended(id: string): void {
    this.#producers.delete(id);
  }

  // ---- internals

  /** A connection; `commandTimeout` 0: none (a subscriber waits for messages). */
  #connect(name: string, commandTimeout: number, autoPipeline = false): Redis {
    const redis = connectRedis(this.#options.url, name, {
      // The commands of one event-loop turn (e.g. every answer's batch) go out in one socket write.
      enableAutoPipelining: autoPipeline,
      ...(commandTimeout > 0 ? { commandTimeout } : {}),
      // A subscriber's SUBSCRIBE waits for the connection (ioredis subscribes again after a reconnect).
      enableOfflineQueue: commandTimeout === 0,
    });
    redis.on('error', (error: Error) => this.#options.onConnectionError?.(error));
    return redis;
  }

  #key(id: string, suffix: string): string {
    return `${this.#prefix}answer:{${id}}:${suffix}`;
  }

  #keys(id: string): string[] {
    return ['meta', 'events', 'text', 'alive', 'followers'].map((suffix) => this.#key(id, suffix));
  }

  #cancelChannel(): string {
    return `${this.#prefix}answers:cancel`;
  }

  /** EVALSHA, and EVAL once when the server does not know the script (e.g. after a restart). */
  async #run(script: AnswerScript, id: string, args: readonly (string | number)[]): Promise<unknown> {
    const keys = this.#keys(id);
    try {
      return await this.#redis.evalsha(script.sha, keys.length, ...keys, ...args);
    } catch (error) {
      if (!(error instanceof Error) || !error.message.startsWith('NOSCRIPT')) throw error;
      return await this.#redis.eval(script.lua, keys.length, ...keys, ...args);
    }
  }

  /** One subscriber connection per process for the cancel messages of the answers produced here. */
  #subscribe(): Promise<void> {
    if (this.#subscribed !== undefined) return this.#subscribed;
    if (this.#subscriber === undefined) {
      this.#subscriber = this.#connect('llm-connector-answers-cancel', 0);
      this.#subscriber.on('message', (_channel: string, id: string) => {
        this.#producers.get(id)?.cancelRequestedNow();
      });
    }
    const subscribed = withTimeout(
      this.#subscriber.subscribe(this.#cancelChannel()).then(() => undefined),
      SUBSCRIBE_WAIT_MS,
    );
    this.#subscribed = subscribed;
    // A failed subscription is tried again by the next answer.
    subscribed.catch(() => {
      if (this.#subscribed === subscribed) this.#subscribed = undefined;
    });
    return subscribed;
  }

  #channel(id: string): Channel {
    let channel = this.#channels.get(id);
    if (channel === undefined) {
      channel = new Channel(id, this.#key(id, 'events'), () => {
        this.#readerFor().watch();
      });
      this.#channels.set(id, channel);
    }
    channel.users++;
    return channel;
  }

  #dropChannel(channel: Channel): void {
    if (this.#channels.get(channel.id) === channel) this.#channels.delete(channel.id);
  }

  #readerFor(): SharedReader {
    this.#reader ??= new SharedReader(
      () => this.#connect('llm-connector-answers-follow', BLOCK_MS + 2_000),
      this.#channels,
      (clientId) => this.#redis.client('UNBLOCK', clientId),
    );
    return this.#reader;
  }
}

/** The producer's side of one answer: one write in flight at a time, never awaited by the live stream. */
class RedisProducer implements AnswerProducer {
  readonly id: string;
  readonly #store: RedisAnswerStore;
  readonly #cancel = new AbortController();
  readonly cancelRequested: AbortSignal;
  /** Events of the calls made since the last write began: the next write takes them all. */
  #unsent: AnswerEvent[] = [];
  #unsentText = '';
  /** The seq of the last event queued (written or not). */
  #lastQueued = 0;
  #ending: AnswerEnding | undefined;
  #finished = false;
  /** The write in flight (at most one). */
  #writing: Promise<void> | undefined;
  /** The next write, shared by every call made until it begins. */
  #next: { promise: Promise<void>; begin: () => void } | undefined;

  constructor(store: RedisAnswerStore, id: string) {
    this.#store = store;
    this.id = id;
    this.cancelRequested = this.#cancel.signal;
  }

  cancelRequestedNow(): void {
    if (!this.#cancel.signal.aborted) this.#cancel.abort();
  }

  append(events: readonly AnswerEvent[], text: string): Promise<void> {
    if (this.#ending !== undefined) return Promise.reject(new Error(`answer ${this.id} has ended`));
    const refused = this.#queue(events, text);
    if (refused !== undefined) return Promise.reject(refused);
    return this.#schedule(false);
  }

  finish(ending: AnswerEnding): Promise<void> {
    if (this.#ending !== undefined) return Promise.resolve();
    const refused = this.#queue(ending.events, ending.text);
    if (refused !== undefined) return Promise.reject(refused);
    this.#ending = ending;
    return this.#schedule(true).finally(() => {
      // Ended or not in Redis, this process forgets it (a lost end: followers see it lost).
      this.#store.ended(this.id);
    });
  }

  async heartbeat(): Promise<void> {
    if (this.#finished) return;
    const store = this.#store;
    const reply = await store.run(HEARTBEAT, this.id, [store.inProgressTtlMs, store.aliveTtlMs]);
    if (Array.isArray(reply) && reply[1] === '1') this.cancelRequestedNow();
  }

  async followers(): Promise<number> {
    return Number(await this.#store.run(FOLLOWERS, this.id, []));
  }

  /** Queues the events for the next write; an error unless they go on from the last queued one. */
  #queue(events: readonly AnswerEvent[], text: string): Error | undefined {
    let previous = this.#lastQueued;
    for (const event of events) {
      if (event.seq !== previous + 1) {
        return new Error(`answer ${this.id}: event ${event.seq} does not follow event ${previous}`);
      }
      previous = event.seq;
    }
    for (const event of events) this.#unsent.push(event);
    this.#unsentText += text;
    this.#lastQueued = previous;
    return undefined;
  }

  /**
   * The write that will carry what was just queued: it begins `batchMs` after the first event that
   * waits for it (`now`: at once), and never while another is in flight, so that the events of
   * several upstream chunks go in one write.
   */
  #schedule(now: boolean): Promise<void> {
    let next = this.#next;
    if (next === undefined) {
      let begin!: () => void;
      const started = new Promise<void>((resolve) => {
        begin = resolve;
      });
      next = {
        begin,
        promise: started.then(() => {
          this.#writing = this.#write().finally(() => {
            this.#writing = undefined;
            if (this.#next !== undefined) this.#arm(this.#ending !== undefined);
          });
          return this.#writing;
        }),
      };
      this.#next = next;
    }
    this.#arm(now);
    return next.promise;
  }

  /** Begins the next write now or after the batch interval, unless one is in flight. */
  #arm(now: boolean): void {
    if (this.#writing !== undefined) return; // it arms again when it is done
    if (now) {
      this.#begin();
    } else {
      this.#store.flushLater(this);
    }
  }

  /** The store's batch interval has passed: begin the next write (unless one is in flight). */
  flush(): void {
    if (this.#writing === undefined) this.#begin();
  }

  #begin(): void {
    const next = this.#next;
    this.#next = undefined;
    next?.begin();
  }

  async #write(): Promise<void> {
    const store = this.#store;
    const batch = this.#unsent;
    const text = this.#unsentText;
    this.#unsent = [];
    this.#unsentText = '';
    const ending = this.#ending;
    if (this.#finished) return;
    if (batch.length === 0 && ending === undefined) return;
    // A batch is consecutive: its first seq, its text, then each event's name and data.
    const args: (string | number)[] = [batch[0]?.seq ?? 0, text];
    for (const event of batch) args.push(event.event, event.data);
    let reply: unknown;
    if (ending === undefined) {
      reply = await store.run(APPEND, this.id, [store.inProgressTtlMs, store.aliveTtlMs, ...args]);
    } else {
      reply = await store.run(FINISH, this.id, [
        store.ttlMs,
        ending.status,
        JSON.stringify(ending.stopReason),
        JSON.stringify(ending.usage),
        JSON.stringify(ending.error),
        ending.model ?? '',
        ...args,
      ]);
    }
    if (ending !== undefined) {
      this.#finished = true;
      store.ended(this.id);
      if (reply !== 1) return; // it had already ended (e.g. as lost): nothing to deliver
    } else if (Array.isArray(reply)) {
      if (reply[0] !== 1) {
        throw new Error(`answer ${this.id} is no longer in progress (${String(reply[1])})`);
      }
      if (reply[1] === '1') this.cancelRequestedNow();
    }
    const last = batch.length - 1;
    store.delivered(
      this.id,
      batch.map((event, i) => ({ ...event, end: ending !== undefined && i === last })),
    );
  }
}

interface Waiter {
  readonly pos: number;
  readonly done: (events: readonly ReadEvent[] | null) => void;
}

/** The followers of one answer in this process, woken with its new events. */
class Channel {
  readonly id: string;
  readonly key: string;
  users = 0;
  /** The last seq delivered here; the shared reader reads after it. */
  cursor = -1;
  readonly #waiters = new Set<Waiter>();
  /** The last events delivered, for a follower that was busy writing when they came. */
  #recent: ReadEvent[] = [];
  readonly #onWait: () => void;

  constructor(id: string, key: string, onWait: () => void) {
    this.id = id;
    this.key = key;
    this.#onWait = onWait;
  }

  /**
   * The events after `pos` delivered here: at once when they were delivered recently, else the next
   * ones; null after `ms`, when `signal` aborts, or when events after `pos` were delivered too long
   * ago (the caller reads them from Redis). `known`: the answer's last kept event, as far as `pos`.
   */
  wait(pos: number, signal: AbortSignal, ms: number, known: number): Promise<readonly ReadEvent[] | null> {
    if (signal.aborted) return Promise.resolve(null);
    if (this.cursor > pos) {
      const first = this.#recent[0];
      const kept = first !== undefined && first.seq <= pos + 1;
      return Promise.resolve(kept ? this.#recent.filter((event) => event.seq > pos) : null);
    }
    // The shared reader reads after the last event known to be kept (never past the end).
    if (this.cursor < known) this.cursor = known;
    return new Promise((resolve) => {
      const finish = (events: readonly ReadEvent[] | null): void => {
        clearTimeout(timer);
        signal.removeEventListener('abort', onAbort);
        this.#waiters.delete(waiter);
        resolve(events);
      };
      const onAbort = (): void => {
        finish(null);
      };
      const waiter: Waiter = { pos, done: finish };
      const timer = setTimeout(onAbort, ms);
      signal.addEventListener('abort', onAbort, { once: true });
      this.#waiters.add(waiter);
      this.#onWait();
    });
  }

  deliver(events: readonly ReadEvent[]): void {
    const fresh = events.filter((event) => event.seq > this.cursor);
    if (fresh.length === 0) return;
    // Contiguous with what was kept, else the kept events start over.
    if (this.#recent.length > 0 && lastOf(this.#recent).seq !== this.cursor) this.#recent = [];
    this.cursor = lastOf(fresh).seq;
    this.#recent.push(...fresh);
    if (this.#recent.length > RECENT_EVENTS) this.#recent = this.#recent.slice(-RECENT_EVENTS);
    for (const waiter of [...this.#waiters]) waiter.done(fresh);
  }

  wakeAll(): void {
    for (const waiter of [...this.#waiters]) waiter.done(null);
  }

  release(): void {
    this.users--;
  }
}

/**
 * One blocking connection per process, reading every followed answer's stream in one XREAD BLOCK:
 * the number of followers costs no connections. A follower that joins wakes it (CLIENT UNBLOCK)
 * so that its answer is read at once.
 */
class SharedReader {
  readonly #make: () => Redis;
  readonly #channels: ReadonlyMap<string, Channel>;
  readonly #unblock: (clientId: number) => Promise<unknown>;
  #redis: Redis | undefined;
  #clientId: number | undefined;
  /** The answers the XREAD in flight reads. */
  #reading = new Set<string>();
  #running = false;
  #closed = false;
  #wake: (() => void) | undefined;

  constructor(
    make: () => Redis,
    channels: ReadonlyMap<string, Channel>,
    unblock: (clientId: number) => Promise<unknown>,
  ) {
    this.#make = make;
    this.#channels = channels;
    this.#unblock = unblock;
  }

  /** A follower waits: make sure its answer is read. */
  watch(): void {
    if (this.#closed) return;
    if (!this.#running) {
      this.#running = true;
      void this.#loop();
      return;
    }
    this.#wake?.();
    const missing = [...this.#channels.values()].some((c) => c.cursor >= 0 && !this.#reading.has(c.id));
    if (missing && this.#clientId !== undefined) void this.#unblock(this.#clientId).catch(() => undefined);
  }

  close(): void {
    this.#closed = true;
    this.#wake?.();
    this.#redis?.disconnect();
  }

  async #loop(): Promise<void> {
    while (!this.#closed) {
      const channels = [...this.#channels.values()].filter((channel) => channel.cursor >= 0);
      if (channels.length === 0) {
        await new Promise<void>((resolve) => (this.#wake = resolve));
        this.#wake = undefined;
        continue;
      }
      try {
        const redis = await this.#connection();
        this.#reading = new Set(channels.map((channel) => channel.id));
        const reply = await redis.xread(
          'COUNT',
          READ_COUNT,
          'BLOCK',
          BLOCK_MS,
          'STREAMS',
          ...channels.map((channel) => channel.key),
          ...channels.map((channel) => `0-${channel.cursor}`),
        );
        for (const [key, entries] of reply ?? []) {
          const channel = channels.find((c) => c.key === key);
          const events = parseEntries(entries);
          if (channel !== undefined && events.length > 0) channel.deliver(events);
        }
      } catch {
        // Redis unavailable: the followers poll by themselves meanwhile; try again shortly.
        this.#clientId = undefined;
        await new Promise<void>((resolve) => {
          this.#wake = resolve;
          setTimeout(resolve, 500).unref();
        });
        this.#wake = undefined;
      } finally {
        this.#reading = new Set();
      }
    }
    this.#running = false;
  }

  async #connection(): Promise<Redis> {
    this.#redis ??= this.#make();
    const redis = this.#redis;
    if (redis.status !== 'ready') {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => {
          redis.off('ready', ready);
          reject(new Error('Redis is not ready'));
        }, 1_000);
        const ready = (): void => {
          clearTimeout(timer);
          resolve();
        };
        redis.once('ready', ready);
      });
      this.#clientId = undefined;
    }
    this.#clientId ??= await redis.client('ID');
    return redis;
  }
}

function parseEntries(raw: unknown): ReadEvent[] {
  if (!Array.isArray(raw)) return [];
  const events: ReadEvent[] = [];
  for (const entry of raw as [string, string[]][]) {
    const [id, fields] = entry;
    let event = '';
    let data = '';
    let end = false;
    for (let i = 0; i + 1 < fields.length; i += 2) {
      const value = fields[i + 1] ?? '';
      if (fields[i] === 'e') event = value;
      else if (fields[i] === 'd') data = value;
      else if (fields[i] === 'x') end = true;
    }
    events.push({ seq: Number(id.slice(id.indexOf('-') + 1)), event, data, end });
  }
  return events;
}

function plain({ seq, event, data }: ReadEvent): AnswerEvent {
  return { seq, event, data };
}

function lastOf<T>(items: readonly T[]): T {
  return items[items.length - 1] as T;
}

function parseJson(raw: string | undefined): unknown {
  if (raw === undefined || raw === '') return null;
  try {
    return JSON.parse(raw);
  } catch {
    return null;
  }
}

function storedAnswer(id: string, flat: readonly string[], text: string): StoredAnswer {
  const hash = new Map<string, string>();
  for (let i = 0; i + 1 < flat.length; i += 2) hash.set(flat[i] ?? '', flat[i + 1] ?? '');
  return {
    owner: hash.get('owner') ?? null,
    lastSeq: Number(hash.get('seq') ?? 0),
    snapshot: {
      id,
      status: (hash.get('status') ?? 'failed') as AnswerStatus,
      model: hash.get('model') ?? '',
      text,
      stop_reason: parseJson(hash.get('stop_reason')) as string | null,
      usage: parseJson(hash.get('usage')) as Usage | null,
      error: parseJson(hash.get('error')) as AnswerError | null,
    },
  };
}

/** Resolves after `ms`, or at once when `signal` aborts. */
function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}

function withTimeout(promise: Promise<void>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      reject(new Error(`no reply from Redis within ${ms} ms`));
    }, ms);
    timer.unref();
  });
  return Promise.race([promise, timeout]).finally(() => {
    clearTimeout(timer);
  });
}

async function quit(redis: Redis): Promise<void> {
  try {
    await redis.quit();
  } catch {
    redis.disconnect();
  }
}
