import type { Usage } from '../anthropic/message-stream.ts';

/**
 * Where resumable and background answers of `/llm/query` live while they are generated and for
 * `ANSWER_TTL_SECONDS` after they end: their SSE events (to replay and follow), their snapshot, and a
 * cancel flag. One producer (the request that called the upstream) writes an answer; any number of
 * followers, on any replica, read it.
 *
 * ## Sequence and ordering guarantees
 * - The producer numbers its events 1, 2, 3 … with no gap and hands them to `append` (and the last
 *   ones to `finish`) in that order. The store keeps each event verbatim: the same `seq`, `event` and
 *   `data` that were written to the first client.
 * - `append` and `finish` calls of one producer are applied in the order they were made; the producer
 *   need not await one before making the next (the live stream never waits on the store). `finish`
 *   is applied after every earlier `append`, and nothing may be appended after it.
 * - `read(id, after)` yields, in batches, every event with `seq > after` exactly once, in increasing
 *   `seq`, without gap, beginning with the events already kept and going on with live ones as they
 *   are appended. It ends (returns) once the answer has ended and its last event was yielded, at once
 *   for an unknown or expired answer, or when `signal` aborts (then without error). A batch is never
 *   empty.
 * - An event is yielded to followers only once the store holds it (e.g. after Redis acknowledged it).
 * - The last event of an answer that ended is its terminal event (`done` or `error`), written by the
 *   producer with `finish`, or, when the producer was lost (no event and no heartbeat for
 *   `PRODUCER_LOST_AFTER_MS`), by the store: `errorEvent(lastSeq + 1, ANSWER_LOST, requestId)`, with
 *   the answer then `failed`.
 */
export interface AnswerStore {
  /** Starts an answer (status `in_progress`, no events yet); the caller is its only producer. */
  create(answer: NewAnswer): Promise<AnswerProducer>;

  /** The answer's owner and snapshot; null when it is unknown or expired. */
  get(id: string): Promise<StoredAnswer | null>;

  /** Events after `after` (0: all), then the live ones, until the end; see the guarantees above. */
  read(id: string, after: number, signal: AbortSignal): AsyncIterable<readonly AnswerEvent[]>;

  /**
   * Asks the answer's producer, on whichever replica, to stop: its `cancelRequested` signal aborts
   * (within a second). Returns the answer as it is now (a finished answer is left as it is: a no-op);
   * null when unknown or expired. The producer then ends it `cancelled`.
   */
  cancel(id: string): Promise<StoredAnswer | null>;

  /** Releases the store's connections and timers (answers in memory are forgotten). */
  close(): Promise<void>;

  /**
   * False while the store is known to be unreachable (Redis disconnected): a new answer is then
   * refused before the upstream is asked. Absent: always reachable (memory).
   */
  healthy?(): boolean;
}

/** The producer's side of one answer, from `AnswerStore.create`. */
export interface AnswerProducer {
  readonly id: string;

  /**
   * Keeps the events one upstream chunk produced (at most one store write per call) and the text they
   * add to the answer (for the snapshot; '' when none). See the ordering guarantees on AnswerStore.
   * Rejects when the store could not keep them, and must then keep nothing of them; it must also
   * refuse a batch whose first `seq` is not the last kept `seq` + 1 (so that no gap is ever stored,
   * even when an earlier write failed after this one was sent). After a rejection the producer
   * writes nothing more for the answer (no append, no heartbeat, no finish) and goes on serving its
   * live client; followers elsewhere then end the answer by the lost-producer rule.
   */
  append(events: readonly AnswerEvent[], text: string): Promise<void>;

  /**
   * Ends the answer with its last events (its terminal `done` or `error` event, with whatever the last
   * chunk produced) and text, in the same write; the answer is then kept `ttlSeconds` more. Only the
   * first call counts.
   */
  finish(ending: AnswerEnding): Promise<void>;

  /**
   * Says the producer is alive; call it every `HEARTBEAT_INTERVAL_MS` while the answer runs. Followers
   * on other replicas end an answer whose producer has gone silent for `PRODUCER_LOST_AFTER_MS`. Also
   * keeps an unfinished answer from expiring.
   */
  heartbeat(): Promise<void>;

  /** How many `read`s of this answer are following it now, on every replica (for the resume grace). */
  followers(): Promise<number>;

  /** Aborts (once) when `AnswerStore.cancel` was called for this answer, from any replica. */
  readonly cancelRequested: AbortSignal;
}

/** One SSE event of an answer, as written to the client: `id: {seq}\nevent: {event}\ndata: {data}\n\n`. */
export interface AnswerEvent {
  /** 1, 2, 3 … per answer. */
  readonly seq: number;
  readonly event: string;
  /** One line of JSON. */
  readonly data: string;
}

export type AnswerStatus = 'in_progress' | 'completed' | 'failed' | 'cancelled';

export interface AnswerError {
  readonly type: string;
  readonly message: string;
}

export interface NewAnswer {
  /** Made by the service (a UUID v4), never by the client. */
  readonly id: string;
  /** The client key's name; null when client keys are off (the id is then the only secret). */
  readonly owner: string | null;
  /** The model the answer is asked of (the served one once it is known). */
  readonly model: string;
  /** The request that produces it (the `request_id` of a store-written error event). */
  readonly requestId: string;
}

export interface AnswerEnding {
  readonly status: Exclude<AnswerStatus, 'in_progress'>;
  /** The last events (at least the terminal one), appended in the same write. */
  readonly events: readonly AnswerEvent[];
  /** Text the last events add ('' when none). */
  readonly text: string;
  readonly stopReason: string | null;
  /** Final usage; partial for a broken or cancelled answer; null when none was reported. */
  readonly usage: Usage | null;
  readonly error: AnswerError | null;
  /** The model that served, when it differs from the one given to `create` (a fallback). */
  readonly model?: string;
}

/** `GET /llm/answers/{id}`, as JSON. */
export interface AnswerSnapshot {
  readonly id: string;
  readonly status: AnswerStatus;
  readonly model: string;
  /** All the text so far. */
  readonly text: string;
  readonly stop_reason: string | null;
  readonly usage: Usage | null;
  readonly error: AnswerError | null;
}

export interface StoredAnswer {
  /** The key that created it (null: keys were off); another key must get a 404. */
  readonly owner: string | null;
  readonly snapshot: AnswerSnapshot;
  /** The `seq` of its last event so far (0: none yet). */
  readonly lastSeq: number;
}

export interface AnswerStoreOptions {
  /** How long an answer is kept after it ended (`ANSWER_TTL_SECONDS`), in milliseconds. */
  readonly ttlMs: number;
}

/** What an event costs the memory store: its strings (UTF-16) and the object around them. */
export function eventBytes(event: AnswerEvent): number {
  return 2 * (event.event.length + event.data.length) + 64;
}

/** The producer calls `heartbeat()` this often. */
export const HEARTBEAT_INTERVAL_MS = 2_000;
/** A follower ends an answer `failed` when it saw no event and no heartbeat for this long. */
export const PRODUCER_LOST_AFTER_MS = 10_000;

/** The error of an answer whose producer was lost (a replica that crashed or was killed). */
export const ANSWER_LOST: AnswerError = {
  type: 'stream_incomplete',
  message: 'The answer was lost: the replica generating it stopped before it was complete',
};

/** The terminal `error` event as `/llm/query` writes it (the same body as its error envelope). */
export function errorEvent(seq: number, error: AnswerError, requestId: string): AnswerEvent {
  return { seq, event: 'error', data: JSON.stringify({ error, request_id: requestId }) };
}

/** An SSE event's bytes: the `id:` line, the event name, the data. */
export function formatEvent(event: AnswerEvent): string {
  return `id: ${event.seq}\nevent: ${event.event}\ndata: ${event.data}\n\n`;
}

/** Each event of `events` as the client gets them, in one string (one write). */
export function formatEvents(events: readonly AnswerEvent[]): string {
  let out = '';
  for (const event of events) out += formatEvent(event);
  return out;
}
