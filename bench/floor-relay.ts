/**
 * The floor: the least a Node.js relay built on node:http and undici can do per request, to show
 * what part of the connector's cost is its own. POST /v1/messages is forwarded to the upstream and
 * the answer's bytes are written back unchanged as they arrive (one socket write per upstream
 * chunk, through an undici dispatch handler: no Readable stream, no parsing, no validation, no
 * logging, no limits, no metrics). The upstream request is aborted when the client leaves.
 * Nobody should run this as a service: it checks nothing.
 *
 * Run: UPSTREAM_URL=http://127.0.0.1:PORT node bench/floor-relay.js <port>
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { Pool, type Dispatcher } from 'undici';
import { exitWithParent } from './orphan-guard.ts';

const upstream = new Pool(process.env.UPSTREAM_URL ?? 'http://127.0.0.1:1', { connections: null });
const HEADERS = {
  'content-type': 'application/json',
  'x-api-key': 'bench',
  'anthropic-version': '2023-06-01',
};

/** Writes the upstream answer to `res` as it arrives; pauses the upstream while the client drains. */
class Relay implements Dispatcher.DispatchHandler {
  private readonly res: ServerResponse;
  private controller: Dispatcher.DispatchController | null = null;

  constructor(res: ServerResponse) {
    this.res = res;
    res.on('close', () => {
      if (!res.writableFinished) this.controller?.abort(new Error('client left'));
    });
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    if (this.res.destroyed) controller.abort(new Error('client left'));
  }

  onResponseStart(
    _controller: Dispatcher.DispatchController,
    statusCode: number,
    headers: Record<string, string | string[] | undefined>,
  ): void {
    const type = headers['content-type'];
    this.res.writeHead(statusCode, {
      'content-type': typeof type === 'string' ? type : 'application/octet-stream',
    });
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (!this.res.write(chunk)) {
      controller.pause();
      this.res.once('drain', () => {
        controller.resume();
      });
    }
  }

  onResponseEnd(): void {
    this.res.end();
  }

  onResponseError(_controller: Dispatcher.DispatchController, error: Error): void {
    if (this.res.headersSent) this.res.destroy(error);
    else this.res.writeHead(502).end();
  }
}

function handle(req: IncomingMessage, res: ServerResponse): void {
  if (req.method !== 'POST' || req.url !== '/v1/messages') {
    res.writeHead(404).end();
    return;
  }
  const chunks: Buffer[] = [];
  req.on('data', (chunk: Buffer) => chunks.push(chunk));
  req.on('end', () => {
    const body = chunks.length === 1 && chunks[0] ? chunks[0] : Buffer.concat(chunks);
    upstream.dispatch({ method: 'POST', path: '/v1/messages', headers: HEADERS, body }, new Relay(res));
  });
}

/**
 * With FLOOR_FASTIFY=1 in the environment the same relay is served by Fastify (routing, its JSON body
 * parser, `reply.hijack()`), to measure what the framework alone adds:
 * `FLOOR_FASTIFY=1 npm run bench -- --targets floor --scenarios unpaced-c64`.
 */
async function listen(port: number): Promise<{ close(): unknown }> {
  if (process.env.FLOOR_FASTIFY !== '1') return createServer(handle).listen(port, '127.0.0.1');
  const { default: Fastify } = await import('fastify');
  const app = Fastify();
  app.post('/v1/messages', (request, reply) => {
    reply.hijack();
    upstream.dispatch(
      { method: 'POST', path: '/v1/messages', headers: HEADERS, body: JSON.stringify(request.body) },
      new Relay(reply.raw),
    );
  });
  await app.listen({ host: '127.0.0.1', port });
  return app;
}

exitWithParent();
const server = await listen(Number(process.argv[2] ?? 0));
process.once('SIGTERM', () => {
  server.close();
  void upstream.close().then(() => process.exit(0));
});
