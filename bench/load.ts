/**
 * The load generator: undici `Pool.dispatch` with a small handler per request (no Readable streams),
 * closed-loop concurrency, per-request time to first content event and to the end, and a strict
 * check of every answer (status, number of content events, terminal event, or the JSON text).
 */
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { Pool, type Dispatcher } from 'undici';
import { answerText, jsonAnswerText, markers, requestBody, type AnswerShape, type Protocol } from './wire.ts';

/** Where and how to send requests to one target. */
export interface Endpoint {
  origin: string;
  path: string;
  headers: Record<string, string>;
  protocol: Protocol;
  /** More fields of each streamed /llm/query body (a variant's `field:` keys). */
  fields?: Record<string, unknown>;
}

export interface Ask {
  endpoint: Endpoint;
  shape: AnswerShape;
  stream: boolean;
  /** Run tag, seen by the fake upstream (it counts requests per tag). */
  run: string;
}

export interface Outcome {
  ok: boolean;
  ttftMs: number;
  totalMs: number;
  error?: string;
}

export interface LoadResult {
  requests: number;
  ok: number;
  errors: number;
  errorSamples: string[];
  elapsedMs: number;
  ttftMs: number[];
  totalMs: number[];
}

const LEAVING = new Error('bench: client leaves');
const HARD_GRACE_MS = 30_000;

/** Counts a byte marker across chunk boundaries. */
class MarkerCounter {
  count = 0;
  private tail: Buffer = Buffer.alloc(0);
  private readonly marker: Buffer;

  constructor(marker: Buffer) {
    this.marker = marker;
  }

  push(chunk: Buffer): void {
    const keep = this.marker.length - 1;
    if (this.tail.length > 0)
      this.count += occurrences(Buffer.concat([this.tail, chunk.subarray(0, keep)]), this.marker);
    this.count += occurrences(chunk, this.marker);
    const joined = chunk.length >= keep ? chunk : Buffer.concat([this.tail, chunk]);
    this.tail = joined.subarray(Math.max(0, joined.length - keep));
  }
}

function occurrences(buf: Buffer, marker: Buffer): number {
  let n = 0;
  for (let i = buf.indexOf(marker); i !== -1; i = buf.indexOf(marker, i + marker.length)) n++;
  return n;
}

function pool(origin: string, connections: number): Pool {
  return new Pool(origin, {
    connections,
    pipelining: 1,
    connect: { timeout: 15_000 },
    headersTimeout: 30_000,
    bodyTimeout: 30_000,
    keepAliveTimeout: 10_000,
  });
}

interface ExchangeHooks {
  /** Response headers arrived (status known). */
  started?: (status: number) => void;
  /** The first content event arrived. */
  firstContent?: () => void;
}

/** One request/response, as an undici dispatch handler. */
class Exchange implements Dispatcher.DispatchHandler {
  private readonly t0 = performance.now();
  private status = 0;
  private ttft = -1;
  private readonly content: MarkerCounter;
  private readonly end: MarkerCounter;
  private readonly error: MarkerCounter;
  private readonly body: Buffer[] = [];
  private controller: Dispatcher.DispatchController | undefined;
  private left = false;
  private readonly ask: Ask;
  private readonly hooks: ExchangeHooks;
  private readonly done: (o: Outcome) => void;

  constructor(ask: Ask, hooks: ExchangeHooks, done: (o: Outcome) => void) {
    this.ask = ask;
    this.hooks = hooks;
    this.done = done;
    const m = markers(ask.endpoint.protocol);
    this.content = new MarkerCounter(m.content);
    this.end = new MarkerCounter(m.end);
    this.error = new MarkerCounter(m.error);
  }

  /** Aborts the request (the client leaves); resolves as `ok` if it had started. */
  leave(): void {
    this.left = true;
    this.controller?.abort(LEAVING);
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    if (this.left) controller.abort(LEAVING);
  }

  onResponseStart(_controller: Dispatcher.DispatchController, statusCode: number): void {
    this.status = statusCode;
    this.hooks.started?.(statusCode);
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (!this.ask.stream || this.status !== 200) {
      this.body.push(chunk);
      return;
    }
    this.content.push(chunk);
    if (this.ttft < 0 && this.content.count > 0) {
      this.ttft = performance.now() - this.t0;
      this.hooks.firstContent?.();
    }
    this.end.push(chunk);
    this.error.push(chunk);
  }

  onResponseEnd(): void {
    const totalMs = performance.now() - this.t0;
    const problem = this.check();
    this.done({
      ok: problem === undefined,
      ttftMs: this.ttft < 0 ? totalMs : this.ttft,
      totalMs,
      ...(problem === undefined ? {} : { error: problem }),
    });
  }

  onResponseError(_controller: Dispatcher.DispatchController, err: Error): void {
    const totalMs = performance.now() - this.t0;
    if (this.left) {
      // The client chose to leave (idle and storm scenarios): not a failure of the target.
      this.done({ ok: true, ttftMs: this.ttft < 0 ? totalMs : this.ttft, totalMs });
      return;
    }
    const code = (err as { code?: string }).code;
    this.done({ ok: false, ttftMs: totalMs, totalMs, error: `${code ?? err.name}: ${err.message}` });
  }

  private check(): string | undefined {
    const want = this.ask.shape.deltas;
    if (this.status !== 200)
      return `HTTP ${this.status}: ${Buffer.concat(this.body).toString('utf8').slice(0, 200)}`;
    if (!this.ask.stream) {
      const text = jsonAnswerText(this.ask.endpoint.protocol, Buffer.concat(this.body).toString('utf8'));
      return text === answerText(want) ? undefined : `wrong JSON answer text: ${String(text).slice(0, 80)}`;
    }
    if (this.error.count > 0) return 'error event in the stream';
    if (this.content.count !== want) return `${this.content.count} content events, expected ${want}`;
    if (this.end.count !== 1) return 'no terminal event';
    return undefined;
  }
}

function dispatch(p: Pool, ask: Ask, hooks: ExchangeHooks, done: (o: Outcome) => void): Exchange {
  const exchange = new Exchange(ask, hooks, done);
  const { endpoint } = ask;
  p.dispatch(
    {
      method: 'POST',
      path: endpoint.path,
      headers: { ...endpoint.headers, 'content-type': 'application/json' },
      body: requestBody(endpoint.protocol, ask.shape, ask.run, ask.stream, endpoint.fields),
    },
    exchange,
  );
  return exchange;
}

function exchangeOnce(p: Pool, ask: Ask, hooks: ExchangeHooks = {}): Promise<Outcome> {
  return new Promise((resolve) => dispatch(p, ask, hooks, resolve));
}

class Recorder {
  readonly result: LoadResult = {
    requests: 0,
    ok: 0,
    errors: 0,
    errorSamples: [],
    elapsedMs: 0,
    ttftMs: [],
    totalMs: [],
  };

  add(o: Outcome): void {
    const r = this.result;
    r.requests++;
    if (o.ok) {
      r.ok++;
      r.ttftMs.push(o.ttftMs);
      r.totalMs.push(o.totalMs);
    } else {
      r.errors++;
      if (r.errorSamples.length < 5 && o.error !== undefined) r.errorSamples.push(o.error);
    }
  }
}

/** A single request, for probes. */
export async function askOnce(ask: Ask, timeoutMs = 10_000): Promise<Outcome> {
  const p = pool(ask.endpoint.origin, 1);
  const guard = setTimeout(() => void p.destroy(new Error('probe timed out')), timeoutMs);
  try {
    return await exchangeOnce(p, ask);
  } finally {
    clearTimeout(guard);
    await p.destroy();
  }
}

export interface ClosedLoop extends Ask {
  concurrency: number;
  maxRequests: number;
  maxMs: number;
  /** Client i sends its first request after i x rampMs / concurrency (0: all at once). */
  rampMs?: number;
}

/** `concurrency` clients, each sending its next request when the previous one ended. */
export async function closedLoop(opts: ClosedLoop): Promise<LoadResult> {
  const p = pool(opts.endpoint.origin, opts.concurrency);
  const rec = new Recorder();
  const t0 = performance.now();
  const deadline = t0 + opts.maxMs;
  const guard = setTimeout(
    () => void p.destroy(new Error('bench: hard deadline')),
    opts.maxMs + HARD_GRACE_MS,
  );
  let sent = 0;
  const ramp = opts.rampMs ?? 0;
  const client = async (_: unknown, i: number): Promise<void> => {
    await untilMs(t0 + (i * ramp) / opts.concurrency);
    while (sent < opts.maxRequests && performance.now() < deadline) {
      sent++;
      rec.add(await exchangeOnce(p, opts));
    }
  };
  try {
    await Promise.all(Array.from({ length: opts.concurrency }, client));
  } finally {
    clearTimeout(guard);
    rec.result.elapsedMs = performance.now() - t0;
    await p.destroy();
  }
  return rec.result;
}

export interface HeldStreams {
  /** Streams that reached the wanted point (response began / first content event). */
  reached: number;
  failed: number;
  errorSamples: string[];
  /** Every client leaves at once; resolves when all requests ended. */
  leaveAll(): Promise<void>;
}

export interface Hold {
  count: number;
  /** Hold until the response began (`start`) or the first content event arrived (`content`). */
  until: 'start' | 'content';
  /** Client i starts after i x rampMs / count, so connections are not opened in one burst. */
  rampMs: number;
  /** How long to wait for all of them to reach that point. */
  maxMs: number;
}

/** Opens `count` streams and keeps them open until `leaveAll()`. */
export async function holdStreams(ask: Ask, hold: Hold): Promise<HeldStreams> {
  const p = pool(ask.endpoint.origin, hold.count);
  const rec = new Recorder();
  let reached = 0;
  const exchanges: Exchange[] = [];
  const ends: Promise<void>[] = [];
  const hooks: ExchangeHooks =
    hold.until === 'start'
      ? {
          started: (status) => {
            if (status === 200) reached++;
          },
        }
      : {
          firstContent: () => {
            reached++;
          },
        };
  const t0 = performance.now();
  for (let i = 0; i < hold.count; i++) {
    await untilMs(t0 + (i * hold.rampMs) / hold.count);
    ends.push(
      new Promise((resolve) => {
        const onEnd = (o: Outcome): void => {
          rec.add(o);
          resolve();
        };
        exchanges.push(dispatch(p, ask, hooks, onEnd));
      }),
    );
  }
  while (reached + rec.result.errors < hold.count && performance.now() - t0 < hold.maxMs) await sleep(20);
  return {
    reached,
    failed: rec.result.errors,
    errorSamples: rec.result.errorSamples,
    leaveAll: async () => {
      for (const e of exchanges) e.leave();
      await Promise.race([Promise.all(ends), sleep(HARD_GRACE_MS)]);
      await p.destroy();
    },
  };
}

/** Resolves at performance.now() >= at (at once when already past). */
function untilMs(at: number): Promise<void> | undefined {
  const wait = at - performance.now();
  return wait >= 1 ? sleep(wait) : undefined;
}
