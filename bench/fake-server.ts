/**
 * A lean fake of the Anthropic Messages API for the benchmark (node:http only). Every answer's
 * frames are built once per shape and cached; pacing is one timer per stream, cleared when the
 * client leaves. It counts, per run tag, the upstream requests opened, completed and cancelled
 * (closed before the end), and reports them on `GET /__stats?run=<tag>`.
 *
 * Run: node --import tsx bench/fake-server.ts <port>
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { pathToFileURL } from 'node:url';
import { exitWithParent } from './orphan-guard.ts';
import { answerText, deltaText, MODEL, parsePrompt, type AnswerShape } from './wire.ts';

export interface RunStats {
  opened: number;
  completed: number;
  cancelled: number;
  active: number;
}

interface Frames {
  head: string;
  deltas: string[];
  tail: string;
  whole: string;
  json: string;
}

const sse = (type: string, data: unknown): string => `event: ${type}\ndata: ${JSON.stringify(data)}\n\n`;
const usage = { input_tokens: 12, cache_creation_input_tokens: 0, cache_read_input_tokens: 0 };

function buildFrames(deltas: number): Frames {
  const message = {
    id: 'msg_bench',
    type: 'message',
    role: 'assistant',
    model: MODEL,
    content: [],
    stop_reason: null,
    stop_sequence: null,
  };
  const head =
    sse('message_start', {
      type: 'message_start',
      message: { ...message, usage: { ...usage, output_tokens: 1 } },
    }) +
    'event: ping\ndata: {"type": "ping"}\n\n' +
    sse('content_block_start', {
      type: 'content_block_start',
      index: 0,
      content_block: { type: 'text', text: '' },
    });
  const list: string[] = [];
  for (let i = 0; i < deltas; i++) {
    list.push(
      sse('content_block_delta', {
        type: 'content_block_delta',
        index: 0,
        delta: { type: 'text_delta', text: deltaText(i) },
      }),
    );
  }
  const tail =
    sse('content_block_stop', { type: 'content_block_stop', index: 0 }) +
    sse('message_delta', {
      type: 'message_delta',
      delta: { stop_reason: 'end_turn', stop_sequence: null },
      usage: { output_tokens: deltas },
    }) +
    sse('message_stop', { type: 'message_stop' });
  const json = JSON.stringify({
    ...message,
    content: [{ type: 'text', text: answerText(deltas) }],
    stop_reason: 'end_turn',
    usage: { ...usage, output_tokens: deltas },
  });
  return { head, deltas: list, tail, whole: head + list.join('') + tail, json };
}

const SSE_HEADERS = { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache' };
const MAX_CACHED_SHAPES = 64;

export class BenchFake {
  readonly server = createServer((req, res) => {
    this.onRequest(req, res);
  });
  private readonly frames = new Map<number, Frames>();
  private readonly runs = new Map<string, RunStats>();
  private connections = 0;
  private seq = 0;

  constructor() {
    // Idle upstream connections close after 3 s, so a relay's pool settles quickly between runs.
    this.server.keepAliveTimeout = 3000;
    this.server.on('connection', (socket) => {
      this.connections++;
      socket.once('close', () => this.connections--);
    });
  }

  private framesFor(deltas: number): Frames {
    let f = this.frames.get(deltas);
    if (f === undefined) {
      f = buildFrames(deltas);
      if (this.frames.size < MAX_CACHED_SHAPES) this.frames.set(deltas, f);
    }
    return f;
  }

  private statsFor(run: string): RunStats {
    let s = this.runs.get(run);
    if (s === undefined) {
      s = { opened: 0, completed: 0, cancelled: 0, active: 0 };
      this.runs.set(run, s);
    }
    return s;
  }

  private onRequest(req: IncomingMessage, res: ServerResponse): void {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const path = (req.url ?? '/').split('?', 1)[0];
      if (req.method === 'POST' && path === '/v1/messages')
        this.messages(Buffer.concat(chunks).toString('utf8'), res);
      else if (req.method === 'GET' && path === '/__stats') this.stats(req, res);
      else this.send(res, 404, '{"type":"error","error":{"type":"not_found_error","message":"Not found"}}');
    });
  }

  private send(res: ServerResponse, status: number, json: string): void {
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(json) });
    res.end(json);
  }

  private stats(req: IncomingMessage, res: ServerResponse): void {
    const run = new URL(req.url ?? '/', 'http://x').searchParams.get('run');
    const body =
      run === null
        ? { connections: this.connections, runs: Object.fromEntries(this.runs) }
        : this.statsFor(run);
    this.send(res, 200, JSON.stringify(body));
  }

  private messages(body: string, res: ServerResponse): void {
    const shape = parsePrompt(body);
    const stats = this.statsFor(shape.run);
    const frames = this.framesFor(shape.deltas);
    stats.opened++;
    stats.active++;
    res.once('close', () => {
      stats.active--;
      if (res.writableFinished) stats.completed++;
      else stats.cancelled++;
    });
    res.setHeader('request-id', `req_bench_${++this.seq}`);
    if (!/"stream"\s*:\s*true/.test(body)) {
      this.send(res, 200, frames.json);
      return;
    }
    res.writeHead(200, SSE_HEADERS);
    if (shape.delayMs === 0) res.end(frames.whole);
    else this.paced(res, frames, shape);
  }

  /** Head at once, then one delta per `delayMs` (the tail goes with the last delta). */
  private paced(res: ServerResponse, frames: Frames, shape: AnswerShape): void {
    res.write(frames.head);
    let i = 0;
    const tick = (): void => {
      const delta = frames.deltas[i++] ?? '';
      if (i >= frames.deltas.length) {
        res.end(delta + frames.tail);
        return;
      }
      res.write(delta);
      timer.refresh();
    };
    const timer = setTimeout(tick, shape.delayMs);
    res.once('close', () => {
      clearTimeout(timer);
    });
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const port = Number(process.argv[2] ?? 0);
  const fake = new BenchFake();
  exitWithParent();
  // A deep accept queue: relays open up to ~1,000 upstream connections at once.
  fake.server.listen({ port, host: '127.0.0.1', backlog: 4096 });
  process.once('SIGTERM', () => process.exit(0));
}
