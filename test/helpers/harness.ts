import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../../src/app.ts';
import type { AnswerStore } from '../../src/answers/answer-store.ts';
import { loadConfig, type Config } from '../../src/config.ts';
import type { RequestSubscriber } from '../../src/http/request-events.ts';
import { startFakeUpstream, type FakeUpstream } from '../../src/mock/fake-upstream.ts';
import { setUpGuard } from '../../src/limits/setup.ts';
import { createMetrics } from '../../src/observability/metrics.ts';
import type { UsageStore } from '../../src/reports/usage-store.ts';
import { createUpstreamClient } from '../../src/upstream/anthropic-client.ts';
import { waitFor } from './wait.ts';

export const SECRET_KEY = 'sk-ant-test-SECRET-7f3a9c';

export interface Harness {
  url: string;
  fake: FakeUpstream;
  app: FastifyInstance;
  config: Config;
  /** Every log line the service wrote, as text. */
  logs: string[];
  /** The clock the limits read (Date.now unless the test gave one). */
  now: () => number;
  close(): Promise<void>;
}

export interface HarnessOptions {
  /** The limits' clock, e.g. `clockInsideMinute()` for exact per-minute numbers. */
  now?: () => number;
  /** More subscribers to every finished request (e.g. a ledger). */
  subscribers?: readonly RequestSubscriber[];
  /** Where the usage reports are kept (default: from the settings). */
  usage?: UsageStore;
  /** Where resumable answers live (default: the service's own choice, in memory). */
  answerStore?: AnswerStore;
}

/** A real service on an ephemeral port, in front of a real fake upstream on loopback. */
export async function startHarness(
  env: Record<string, string> = {},
  options: HarnessOptions = {},
): Promise<Harness> {
  const now = options.now ?? Date.now;
  const fake = await startFakeUpstream();
  const fullEnv = {
    ANTHROPIC_API_KEY: SECRET_KEY,
    ANTHROPIC_BASE_URL: fake.url,
    PORT: '0',
    UPSTREAM_CONNECT_TIMEOUT: '2',
    UPSTREAM_READ_TIMEOUT: '1',
    LOG_LEVEL: 'debug',
    ...env,
  };
  const config = loadConfig(fullEnv);
  const logs: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      logs.push(chunk.toString('utf8'));
      callback();
    },
  });
  const upstream = createUpstreamClient(config);
  const metrics = createMetrics({ defaultMetrics: false });
  const logger = pino({ level: config.logLevel }, sink);
  const limits = setUpGuard(
    config,
    logger,
    () => {
      metrics.redisErrors.inc();
    },
    now,
  );
  await limits.waitUntilReady(2000);
  const app = await buildApp(config, {
    upstream,
    logger,
    metrics,
    guard: limits.guard,
    subscribers: options.subscribers ?? [],
    ...(options.usage ? { usage: options.usage } : {}),
    ...(options.answerStore ? { answerStore: options.answerStore } : {}),
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const address = app.server.address();
  if (address === null || typeof address === 'string') throw new Error('no address');
  return {
    url: `http://127.0.0.1:${address.port}`,
    fake,
    app,
    config,
    logs,
    now,
    async close() {
      await app.close();
      await upstream.close();
      await limits.close();
      await fake.close();
    },
  };
}

/** The `request` log lines written so far, parsed, in order. */
export function requestLogs(h: Pick<Harness, 'logs'>): Record<string, unknown>[] {
  return h.logs
    .flatMap((chunk) => chunk.split('\n'))
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as Record<string, unknown>)
    .filter((line) => line.msg === 'request');
}

/**
 * The `request` log line of the request sent with `x-request-id: id`. It is written once the
 * response has closed and the route handler has returned: after it, the service makes no further
 * upstream attempt for that request.
 */
export async function requestLogOf(h: Pick<Harness, 'logs'>, id: string): Promise<Record<string, unknown>> {
  let line: Record<string, unknown> | undefined;
  await waitFor(
    () => (line = requestLogs(h).find((l) => l.reqId === id)) !== undefined,
    `the log line of request ${id}`,
  );
  assert.ok(line);
  return line;
}

/** Request options that name the request `id` (see `requestLogOf`). */
export function withRequestId(id: string, init: RequestInit = {}): RequestInit {
  return { ...init, headers: { 'content-type': 'application/json', 'x-request-id': id } };
}

/** The last `request` log line, if one was written yet. */
export function lastRequestLog(h: Pick<Harness, 'logs'>): Record<string, unknown> | undefined {
  return requestLogs(h).at(-1);
}

export interface SseMessage {
  event: string;
  data: unknown;
}

/** A deliberately naive SSE splitter, independent of the service's decoder. */
export function parseSse(text: string): SseMessage[] {
  return text
    .split('\n\n')
    .filter((block) => block.trim() !== '' && !block.startsWith(':'))
    .map((block) => {
      const lines = block.split('\n').filter((l) => !l.startsWith(':'));
      const event = lines.find((l) => l.startsWith('event: '))?.slice(7) ?? 'message';
      const data = lines.find((l) => l.startsWith('data: '))?.slice(6) ?? '';
      return { event, data: JSON.parse(data) as unknown };
    });
}

export function query(url: string, body: unknown, init: RequestInit = {}): Promise<Response> {
  return fetch(`${url}/llm/query`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: typeof body === 'string' ? body : JSON.stringify(body),
    ...init,
  });
}

export function deltaText(messages: SseMessage[]): string {
  return messages
    .filter((m) => m.event === 'delta')
    .map((m) => (m.data as { text: string }).text)
    .join('');
}
