import type { ServerResponse } from 'node:http';
import type { Usage } from '../anthropic/message-stream.ts';
import { INCOMPLETE, pumpMessageStream, type PumpHooks, type PumpResult } from '../http/message-pump.ts';
import type { AnswerFraming } from '../http/pipeline.ts';
import { SseBatch } from '../http/sse-writer.ts';
import type { UpstreamTimeouts } from '../upstream/anthropic-client.ts';
import type { UpstreamBody } from '../upstream/upstream-body.ts';
import {
  HEARTBEAT_INTERVAL_MS,
  formatEvents,
  type AnswerError,
  type AnswerEvent,
  type AnswerProducer,
  type AnswerStatus,
} from './answer-store.ts';

/** Why the service stopped an answer before its end. */
export type StopReason = 'cancelled' | 'grace' | 'shutdown';

const STOPS: Record<StopReason, { status: 'cancelled' | 'failed'; error: AnswerError }> = {
  cancelled: { status: 'cancelled', error: { type: 'cancelled', message: 'The answer was cancelled' } },
  grace: {
    status: 'cancelled',
    error: {
      type: 'cancelled',
      message: 'Nobody followed the answer when the resume grace period (RESUME_GRACE_SECONDS) ended',
    },
  },
  shutdown: {
    status: 'failed',
    error: {
      type: 'stream_incomplete',
      message: 'The service shut down before the answer was complete; ask again',
    },
  },
};

/** While a client follows again, the producer checks this often whether it still does. */
const FOLLOWER_POLL_MS = 1_000;

export interface RunOptions {
  readonly producer: AnswerProducer;
  readonly body: UpstreamBody;
  readonly framing: AnswerFraming;
  /** The model that serves (after a fallback, the fallback). */
  readonly model: string;
  /** The first client, its head written (by `writeSseHead`); null for a background answer. */
  readonly live: ServerResponse | null;
  /** What `writeSseHead` said of the live client's head: its body is chunked. */
  readonly liveChunked: boolean;
  /** Aborts the upstream request. */
  readonly abortUpstream: () => void;
  readonly config: UpstreamTimeouts & { readonly keepAliveIntervalMs: number };
  /** How long the answer goes on once nobody follows it; null: to the end (background). */
  readonly graceMs: number | null;
  /** A store write failed (called once per answer; the live client is served all the same). */
  readonly storeFailed: (error: unknown) => void;
  readonly onGraceExpired?: () => void;
  readonly onCancelled?: () => void;
}

export interface RunEnd {
  readonly status: Exclude<AnswerStatus, 'in_progress'>;
  readonly pump: PumpResult;
  readonly stopped: StopReason | null;
  readonly error: AnswerError | null;
  readonly usage: Usage;
}

/**
 * One answer that outlives its connection, from its upstream body to its end: numbers its events,
 * writes each upstream chunk's events to the live client (if any) and, in one store write, to the
 * answer store; stops on a cancel request, when the resume grace ends with nobody following, or on
 * shutdown; and finishes the stored answer with its terminal event.
 */
export class AnswerRun {
  #stopped: StopReason | null = null;
  #ended = false;
  readonly #options: RunOptions;
  readonly done: Promise<RunEnd>;

  constructor(options: RunOptions) {
    this.#options = options;
    this.done = this.#run();
  }

  get stopped(): StopReason | null {
    return this.#stopped;
  }

  /** Stops the answer (the first reason counts); it then ends with its terminal event. */
  stop(reason: StopReason): void {
    if (this.#stopped !== null || this.#ended) return;
    this.#stopped = reason;
    this.#options.abortUpstream();
  }

  async #run(): Promise<RunEnd> {
    const o = this.#options;
    const { producer, framing, live } = o;
    let seq = 0;
    let events: AnswerEvent[] = [];
    let text = '';
    const emit = (event: string, data: string, added: string): void => {
      events.push({ seq: ++seq, event, data });
      text += added;
    };
    const take = (): { events: AnswerEvent[]; text: string } => {
      const out = { events, text };
      events = [];
      text = '';
      return out;
    };
    // After a failed store write nothing more is written for this answer, so that no gap is ever
    // stored; with its heartbeat stopped too, followers elsewhere end it by the lost-producer rule.
    const writes = { broken: false };
    const storeFailed = (error: unknown): void => {
      if (writes.broken) return;
      writes.broken = true;
      o.storeFailed(error);
    };
    const keep = (batch: { events: AnswerEvent[]; text: string }): void => {
      if (batch.events.length > 0 && !writes.broken)
        producer.append(batch.events, batch.text).catch(storeFailed);
    };

    let batch: SseBatch | null = null;
    let liveOn = false;
    let paused: (() => void) | null = null;
    let graceTimer: NodeJS.Timeout | undefined;
    const heartbeat = setInterval(() => {
      if (!writes.broken) producer.heartbeat().catch(storeFailed);
    }, HEARTBEAT_INTERVAL_MS);
    heartbeat.unref();
    const onCancel = (): void => {
      if (this.#stopped === null && !this.#ended) o.onCancelled?.();
      this.stop('cancelled');
    };
    producer.cancelRequested.addEventListener('abort', onCancel, { once: true });
    if (producer.cancelRequested.aborted) onCancel();

    const graceEnds = async (): Promise<void> => {
      const followers = await producer.followers().catch(() => 0);
      if (this.#ended) return;
      if (followers > 0) {
        graceTimer = setTimeout(watchFollowers, FOLLOWER_POLL_MS).unref();
        return;
      }
      if (this.#stopped === null) o.onGraceExpired?.();
      this.stop('grace');
    };
    const watchFollowers = (): void => {
      void producer
        .followers()
        .catch(() => 0)
        .then((followers) => {
          if (this.#ended || o.graceMs === null) return;
          graceTimer =
            followers > 0
              ? setTimeout(watchFollowers, FOLLOWER_POLL_MS).unref()
              : setTimeout(() => void graceEnds(), o.graceMs).unref();
        });
    };

    const start = framing.start(o.model);
    emit(start.event, start.data, '');
    const first = take();
    keep(first);
    if (live !== null) {
      batch = new SseBatch(live, o.liveChunked, o.config.keepAliveIntervalMs, formatEvents(first.events));
      liveOn = !live.destroyed;
      const liveBatch = batch;
      const gone = (): void => {
        liveOn = false;
        liveBatch.stop();
        // A slow client that left will never drain: the upstream reads on.
        const resume = paused;
        paused = null;
        resume?.();
        if (!this.#ended && o.graceMs !== null) {
          graceTimer = setTimeout(() => void graceEnds(), o.graceMs).unref();
        }
      };
      if (liveOn) live.once('close', gone);
      else gone();
    }

    const hooks: PumpHooks = {
      ...framing.readers(emit),
      beforeChunk: () => {
        if (liveOn) batch?.hooks.beforeChunk();
      },
      afterChunk: (resume) => {
        const out = take();
        keep(out);
        if (!liveOn || batch === null) return true;
        batch.add(formatEvents(out.events));
        const wrapped = (): void => {
          if (paused === wrapped) paused = null;
          resume();
        };
        const flowing = batch.hooks.afterChunk(wrapped);
        if (!flowing) paused = wrapped;
        return flowing;
      },
      clientGone: () => this.#stopped !== null,
    };
    const pump = await pumpMessageStream(o.body, hooks, o.config);

    const stopped = this.#stopped;
    let status: RunEnd['status'];
    let error: AnswerError | null;
    if (pump.outcome === 'completed') {
      const done = framing.done(pump.reader.stopReason, pump.reader.usage);
      emit(done.event, done.data, '');
      status = 'completed';
      error = null;
    } else {
      const stop = stopped === null ? null : STOPS[stopped];
      status = stop?.status ?? 'failed';
      error = stop?.error ?? pump.failure ?? INCOMPLETE;
      const last = framing.error(error);
      emit(last.event, last.data, '');
    }
    this.#ended = true;
    clearInterval(heartbeat);
    clearTimeout(graceTimer);
    producer.cancelRequested.removeEventListener('abort', onCancel);
    const last = take();
    // The live client first: it never waits on the store.
    if (liveOn) batch?.end(formatEvents(last.events));
    else batch?.stop();
    if (!writes.broken) {
      await producer
        .finish({
          status,
          events: last.events,
          text: last.text,
          stopReason: pump.reader.stopReason,
          usage: pump.reader.usage,
          error,
          model: o.model,
        })
        .catch(storeFailed);
    }
    return { status, pump, stopped, error, usage: pump.reader.usage };
  }
}
