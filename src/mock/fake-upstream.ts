/**
 * A faithful fake of the Anthropic Messages API on loopback, built on node:http only.
 *
 * Used as the "simulated Claude" of `--mock` mode, as the fake upstream of the loopback tests
 * (scenarios and fault modes) and by the benchmark. Wire format follows
 * docs/anthropic-api.md: SSE events `event: <type>\ndata: <json>\n\n`, error bodies
 * `{"type":"error","error":{type,message},"request_id"}` and a `request-id` header on every answer.
 *
 * Hot path: each SSE event is serialised once into a string before streaming starts, then written
 * with a single `res.write`; pacing uses one timer slot per response, cleared when the client leaves.
 *
 * This module holds the server (request bookkeeping, scenarios, routing) and re-exports the public
 * types of types.ts; answers.ts writes the answers, message-render.ts builds them, sse-player.ts
 * plays the streams, requests.ts reads and validates requests, simulated.ts knows the models and the
 * default text, types.ts holds the types they share. Imports run one way: fake-upstream → answers →
 * message-render, sse-player, requests → simulated, wire, pacer, types.
 */
import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import {
  answerCountTokens,
  answerError,
  answerMessage,
  answerModel,
  sendJson,
  sendProblem,
  validBody,
} from './answers.ts';
import { Pacer } from './pacer.ts';
import { TOO_LARGE, headerProblem, newRecord, readBody } from './requests.ts';
import { MODEL_LIST } from './simulated.ts';
import type { Exchange, FakeScenario, FakeUpstream, FakeUpstreamOptions, RecordedRequest } from './types.ts';
import { notFound } from './wire.ts';

export type { FakeBlock, FakeScenario, FakeUpstream, FakeUpstreamOptions, RecordedRequest } from './types.ts';

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
