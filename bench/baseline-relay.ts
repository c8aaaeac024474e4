/**
 * The reference "straightforward relay": Fastify + undici, written the way a typical gateway is.
 * POST /llm/query {prompt, max_tokens?, stream?} → upstream Messages stream; the SSE is split on
 * blank lines, each `data:` is JSON.parse'd and text deltas are re-emitted as `event: delta`.
 * No logging, no retries, no timeouts beyond undici's defaults; the upstream call is aborted when
 * the client leaves. Same answer format as the connector's /llm/query.
 *
 * With BASELINE_FETCH=1 in the environment the upstream is called with the global `fetch` (a web
 * ReadableStream body), as the official SDKs and many gateways do, instead of undici's `Pool.request`.
 *
 * Run: UPSTREAM_URL=http://127.0.0.1:PORT node --import tsx bench/baseline-relay.ts <port>
 */
import Fastify from 'fastify';
import { Pool } from 'undici';
import { exitWithParent } from './orphan-guard.ts';
import { MODEL } from './wire.ts';

interface QueryBody {
  prompt: string;
  max_tokens?: number;
  stream?: boolean;
}

interface UpstreamEvent {
  type: string;
  delta?: { type?: string; text?: string; stop_reason?: string };
  usage?: { output_tokens?: number };
}

const UPSTREAM_URL = process.env.UPSTREAM_URL ?? 'http://127.0.0.1:1';
const upstream = new Pool(UPSTREAM_URL);
const USE_FETCH = process.env.BASELINE_FETCH === '1';

interface Answer {
  statusCode: number;
  chunks: AsyncIterable<Uint8Array>;
  text(): Promise<string>;
}

/** POSTs the Messages request with undici's Pool.request, or with fetch under BASELINE_FETCH=1. */
async function post(
  path: string,
  headers: Record<string, string>,
  body: string,
  signal: AbortSignal,
): Promise<Answer> {
  if (USE_FETCH) {
    const res = await fetch(UPSTREAM_URL + path, { method: 'POST', headers, body, signal });
    const stream = res.body ?? new ReadableStream<Uint8Array>();
    return { statusCode: res.status, chunks: stream, text: () => res.text() };
  }
  const res = await upstream.request({ method: 'POST', path, headers, body, signal });
  return { statusCode: res.statusCode, chunks: res.body, text: () => res.body.text() };
}
const app = Fastify();

/** Parses the upstream SSE text into events, calling `onEvent` for each; returns the unparsed rest. */
function parseEvents(buffer: string, onEvent: (e: UpstreamEvent) => void): string {
  const parts = buffer.split('\n\n');
  const rest = parts.pop() ?? '';
  for (const part of parts) {
    for (const line of part.split('\n')) {
      if (line.startsWith('data: ')) onEvent(JSON.parse(line.slice(6)) as UpstreamEvent);
    }
  }
  return rest;
}

app.get('/healthz', () => ({ status: 'ok' }));

app.post('/llm/query', async (request, reply) => {
  const body = request.body as QueryBody;
  const abort = new AbortController();
  reply.raw.on('close', () => {
    if (!reply.raw.writableFinished) abort.abort();
  });
  const answer = await post(
    '/v1/messages',
    { 'content-type': 'application/json', 'x-api-key': 'bench', 'anthropic-version': '2023-06-01' },
    JSON.stringify({
      model: MODEL,
      max_tokens: body.max_tokens ?? 1024,
      stream: true,
      messages: [{ role: 'user', content: body.prompt }],
    }),
    abort.signal,
  );
  if (answer.statusCode !== 200) {
    return reply.code(502).send({ error: await answer.text() });
  }
  const decoder = new TextDecoder();
  let buffer = '';
  let text = '';
  let stopReason = '';
  const streaming = body.stream !== false;
  if (streaming) {
    reply.hijack();
    reply.raw.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache',
    });
    reply.raw.write(`event: start\ndata: ${JSON.stringify({ model: MODEL })}\n\n`);
  }
  const onEvent = (event: UpstreamEvent): void => {
    if (event.type === 'content_block_delta' && event.delta?.type === 'text_delta') {
      const piece = event.delta.text ?? '';
      if (streaming) reply.raw.write(`event: delta\ndata: ${JSON.stringify({ text: piece })}\n\n`);
      else text += piece;
    } else if (event.type === 'message_delta') {
      stopReason = event.delta?.stop_reason ?? '';
    }
  };
  try {
    for await (const chunk of answer.chunks) {
      buffer = parseEvents(buffer + decoder.decode(chunk, { stream: true }), onEvent);
    }
  } catch {
    reply.raw.destroy();
    return reply;
  }
  if (!streaming) return { text, stop_reason: stopReason };
  reply.raw.end(`event: done\ndata: ${JSON.stringify({ stop_reason: stopReason })}\n\n`);
  return reply;
});

exitWithParent();
app.listen({ host: '127.0.0.1', port: Number(process.argv[2] ?? 0) }).catch((error: unknown) => {
  process.stderr.write(`baseline relay: ${String(error)}\n`);
  process.exit(1);
});
process.once('SIGTERM', () => {
  void app.close().then(() => process.exit(0));
});
