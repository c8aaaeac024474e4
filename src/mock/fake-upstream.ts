/**
 * A faithful fake of the Anthropic Messages API on loopback, built on node:http only.
 *
 * Used as the "simulated Claude" of `--mock` mode, as the fake upstream of the loopback tests
 * (scenarios and fault modes) and by the benchmark. Wire format follows
 * shared/reference/anthropic-api.md: SSE events `event: <type>\ndata: <json>\n\n`, error bodies
 * `{"type":"error","error":{type,message},"request_id"}` and a `request-id` header on every answer.
 *
 * Hot path: each SSE event is serialised once into a string before streaming starts, then written
 * with a single `res.write`; pacing uses one timer slot per response, cleared when the client leaves.
 *
 * This module holds the public types and the server (request bookkeeping, scenarios, routing);
 * answers.ts writes the answers, message-render.ts builds them, sse-player.ts plays the streams,
 * requests.ts reads and validates requests, simulated.ts knows the models and the default text.
 */
import { createServer } from 'node:http';
import type { IncomingHttpHeaders, IncomingMessage, Server, ServerResponse } from 'node:http';
import {
  answerCountTokens,
  answerError,
  answerMessage,
  answerModel,
  sendJson,
  sendProblem,
  validBody,
} from './answers.ts';
import { TOO_LARGE, headerProblem, newRecord, readBody } from './requests.ts';
import type { Exchange } from './requests.ts';
import { MODEL_LIST } from './simulated.ts';
import { Pacer } from './sse-player.ts';
import { notFound } from './wire.ts';

export type FakeScenario =
  | {
      kind: 'message';
      deltas?: string[];
      deltaDelayMs?: number;
      headersDelayMs?: number;
      stopReason?: string;
      usage?: {
        input_tokens?: number;
        output_tokens?: number;
        cache_creation_input_tokens?: number;
        cache_read_input_tokens?: number;
      };
      pingAfterStart?: boolean;
      spacedJson?: boolean;
      chunking?: 'event' | 'byte' | 'coalesce';
      blocks?: FakeBlock[];
      fault?:
        | { type: 'stall'; afterDeltas: number }
        | { type: 'error'; afterDeltas: number; errorType?: string; message?: string }
        | { type: 'truncate'; afterDeltas: number }
        | { type: 'cut'; afterDeltas: number }
        | { type: 'badJson'; afterDeltas: number };
    }
  | {
      kind: 'error';
      status: number;
      errorType?: string;
      message?: string;
      retryAfter?: string;
      retryAfterMs?: string;
      shouldRetry?: boolean;
      headersDelayMs?: number;
    }
  | { kind: 'stall' }
  | { kind: 'hangup' };

export type FakeBlock =
  | { type: 'text'; text: string[] }
  | { type: 'thinking'; thinking: string[]; signature: string }
  | { type: 'tool_use'; id: string; name: string; inputJson: string[] };

export interface RecordedRequest {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  body: Buffer;
  json: unknown;
  receivedAt: number;
  closedEarly: boolean;
  finishedAt?: number;
  closed: Promise<void>;
}

export interface FakeUpstreamOptions {
  host?: string;
  port?: number;
  /** --mock mode: paced, clearly marked default answers. Also makes requireApiKey default to false. */
  simulated?: boolean;
  /** Default true (false when simulated): requests without a key get 401; key 'bad-key' always does. */
  requireApiKey?: boolean;
  /** Keep the requests to /v1/ in `requests` (default true; false when simulated: --mock keeps nothing). */
  record?: boolean;
  /** How many requests `requests` keeps when recording: the oldest go first (default 1000). */
  maxRecorded?: number;
}

export interface FakeUpstream {
  readonly url: string;
  /** The last `maxRecorded` requests to /v1/, oldest first (empty when not recording). */
  readonly requests: RecordedRequest[];
  /** Every request to /v1/ since the fake started, recorded or not; never drops (not even on reset). */
  readonly requestCount: number;
  /** n counts the POST /v1/messages requests that passed validation (0-based). */
  setScenario(fn: (req: RecordedRequest, n: number) => FakeScenario): void;
  queue(...scenarios: FakeScenario[]): void;
  reset(): void;
  close(): Promise<void>;
}

const DEFAULT_SCENARIO: FakeScenario = { kind: 'message' };

/** Enough for any test's assertions; bounds what a long run holds (about 2 KiB per request plus its body). */
export const DEFAULT_MAX_RECORDED = 1000;

class Fake implements FakeUpstream {
  url = '';
  readonly requests: RecordedRequest[] = [];
  requestCount = 0;
  private readonly server: Server;
  private readonly active = new Set<Pacer>();
  private readonly queued: FakeScenario[] = [];
  private scenarioFn: ((req: RecordedRequest, n: number) => FakeScenario) | undefined;
  private served = 0;
  private requestSeq = 0;
  private messageSeq = 0;
  private readonly simulated: boolean;
  private readonly requireApiKey: boolean;
  private readonly maxRecorded: number;

  constructor(opts: FakeUpstreamOptions) {
    this.simulated = opts.simulated ?? false;
    this.requireApiKey = opts.requireApiKey ?? !this.simulated;
    const record = opts.record ?? !this.simulated;
    this.maxRecorded = record ? Math.max(0, opts.maxRecorded ?? DEFAULT_MAX_RECORDED) : 0;
    this.server = createServer(this.onRequest);
  }

  listen(host: string, port: number): Promise<void> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => {
        this.server.off('error', reject);
        const address = this.server.address();
        const actualPort = typeof address === 'object' && address !== null ? address.port : port;
        this.url = `http://${host.includes(':') ? `[${host}]` : host}:${actualPort}`;
        resolve();
      });
    });
  }

  setScenario(fn: (req: RecordedRequest, n: number) => FakeScenario): void {
    this.scenarioFn = fn;
  }

  queue(...scenarios: FakeScenario[]): void {
    this.queued.push(...scenarios);
  }

  reset(): void {
    this.requests.splice(0);
    this.queued.splice(0);
    this.scenarioFn = undefined;
    this.served = 0;
  }

  async close(): Promise<void> {
    for (const pacer of this.active) pacer.stop();
    this.active.clear();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => {
      this.server.close(() => {
        resolve();
      });
    });
  }

  private readonly onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    const ex: Exchange = {
      req,
      res,
      pacer: new Pacer(),
      requestId: `req_fake_${++this.requestSeq}`,
      gone: false,
      settle: undefined,
    };
    this.active.add(ex.pacer);
    res.setHeader('request-id', ex.requestId);
    res.once('close', () => {
      ex.pacer.stop();
      this.active.delete(ex.pacer);
      ex.gone = true;
      ex.settle?.(!res.writableFinished);
    });
    readBody(req, (body, tooLarge) => {
      this.dispatch(ex, body, tooLarge);
    });
  };

  private dispatch(ex: Exchange, body: Buffer, tooLarge: boolean): void {
    const [rec, settle] = newRecord(ex.req, body);
    const path = rec.url.split('?', 1)[0] ?? '/';
    if (path.startsWith('/v1/')) this.keep(rec);
    ex.settle = settle;
    if (ex.gone) {
      settle(true);
      return;
    }
    try {
      const problem = tooLarge ? TOO_LARGE : headerProblem(rec.headers, this.requireApiKey);
      if (problem === undefined) this.route(ex, rec, path);
      else sendProblem(ex, problem);
    } catch (err) {
      const message = `Fake upstream failure: ${String(err)}`;
      if (ex.res.headersSent) ex.res.destroy();
      else sendProblem(ex, { status: 500, type: 'api_error', message });
    }
  }

  private keep(rec: RecordedRequest): void {
    this.requestCount++;
    if (this.maxRecorded === 0) return;
    this.requests.push(rec);
    const excess = this.requests.length - this.maxRecorded;
    if (excess > 0) this.requests.splice(0, excess);
  }

  private route(ex: Exchange, rec: RecordedRequest, path: string): void {
    const post = rec.method === 'POST';
    const get = rec.method === 'GET';
    if (post && path === '/v1/messages') this.messages(ex, rec);
    else if (post && path === '/v1/messages/count_tokens') answerCountTokens(ex, rec);
    else if (get && path === '/v1/models') sendJson(ex.res, 200, MODEL_LIST);
    else if (get && path.startsWith('/v1/models/')) answerModel(ex, path.slice('/v1/models/'.length));
    else sendProblem(ex, notFound(`Not found: ${rec.method} ${path}`));
  }

  private messages(ex: Exchange, rec: RecordedRequest): void {
    const body = validBody(ex, rec, true);
    if (body === undefined) return;
    const scenario = this.queued.shift() ?? this.scenarioFn?.(rec, this.served) ?? DEFAULT_SCENARIO;
    this.served++;
    switch (scenario.kind) {
      case 'message':
        answerMessage(ex, scenario, body, `msg_fake_${++this.messageSeq}`, this.simulated);
        break;
      case 'error':
        answerError(ex, scenario);
        break;
      case 'stall':
        break;
      case 'hangup':
        ex.res.destroy();
        break;
    }
  }
}

export async function startFakeUpstream(opts: FakeUpstreamOptions = {}): Promise<FakeUpstream> {
  const fake = new Fake(opts);
  await fake.listen(opts.host ?? '127.0.0.1', opts.port ?? 0);
  return fake;
}
