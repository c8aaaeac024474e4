import { request as httpRequest, type IncomingHttpHeaders, type IncomingMessage } from 'node:http';
import { waitFor } from './wait.ts';

/** One SSE event as a client sees it: its `id:` (undefined when none), name and parsed data. */
export interface IdEvent {
  id: number | undefined;
  event: string;
  data: unknown;
}

/** Parses complete SSE blocks (comments skipped); the incomplete tail is returned as `rest`. */
export function parseIdEvents(text: string): { events: IdEvent[]; rest: string; comments: number } {
  const blocks = text.split('\n\n');
  const rest = blocks.pop() ?? '';
  const events: IdEvent[] = [];
  let comments = 0;
  for (const block of blocks) {
    const lines = block.split('\n');
    if (lines.every((l) => l.startsWith(':'))) {
      comments++;
      continue;
    }
    const field = (name: string): string | undefined =>
      lines.find((l) => l.startsWith(`${name}: `))?.slice(name.length + 2);
    const id = field('id');
    events.push({
      id: id === undefined ? undefined : Number(id),
      event: field('event') ?? 'message',
      data: JSON.parse(field('data') ?? 'null') as unknown,
    });
  }
  return { events, rest, comments };
}

/** A streamed answer read as it arrives: its events so far, and a way to cut the connection. */
export class SseClient {
  status = 0;
  headers: IncomingHttpHeaders = {};
  readonly events: IdEvent[] = [];
  body = '';
  /** Resolves once the response has ended or the connection closed. */
  readonly closed: Promise<void>;
  private readonly req: ReturnType<typeof httpRequest>;
  private pending = '';

  constructor(url: string, init: { method?: string; headers?: Record<string, string>; body?: string } = {}) {
    let close!: () => void;
    this.closed = new Promise((resolve) => {
      close = resolve;
    });
    this.req = httpRequest(url, { method: init.method ?? 'GET', headers: init.headers ?? {} });
    this.req.on('response', (res: IncomingMessage) => {
      this.status = res.statusCode ?? 0;
      this.headers = res.headers;
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        this.body += chunk;
        const parsed = parseIdEvents(this.pending + chunk);
        this.pending = parsed.rest;
        if (/^text\/event-stream/.test(String(res.headers['content-type'])))
          this.events.push(...parsed.events);
      });
      res.on('close', close);
    });
    this.req.on('error', close);
    this.req.end(init.body);
  }

  /** Waits until `n` events have arrived. */
  async received(n: number): Promise<void> {
    await waitFor(() => this.events.length >= n, `${n} events`);
  }

  /** Drops the connection, as a client losing its network does. */
  cut(): void {
    this.req.destroy();
  }
}

/** POST /llm/query with `body`, streamed. */
export function postQuery(url: string, body: unknown, headers: Record<string, string> = {}): SseClient {
  return new SseClient(`${url}/llm/query`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
  });
}

/** The text of the `delta` events. */
export function joinedText(events: readonly IdEvent[]): string {
  return events
    .filter((e) => e.event === 'delta')
    .map((e) => (e.data as { text: string }).text)
    .join('');
}
