import type { IncomingMessage, ServerOptions, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { FastifyInstance } from 'fastify';
import type { Config } from '../config.ts';
import type { Metrics } from '../observability/metrics.ts';

/**
 * Bounds on what a client holds with a connection. None of them cuts an answer being written: they
 * bound what the client sends, not what the service answers.
 *
 * - `REQUEST_TIMEOUT`: the whole request, headers and body, must arrive within it, counted from the
 *   connection (or, on a kept-alive one, from the request's first byte); then 408 (client-errors.ts).
 *   Node stops counting once the request is complete, so a long answer is never cut by it.
 * - `KEEP_ALIVE_TIMEOUT`: how long a connection may stay idle between two requests.
 * - `MAX_CONNECTIONS`: open connections per process. At the cap the connection idle the longest
 *   (no request in flight: connected but silent, or between requests) is closed to make room; when
 *   every connection has a request in flight the new one is closed at once and counted in
 *   `llmc_connections_refused_total`. Node's own `server.maxConnections` is not used: in a cluster
 *   worker a refused connection goes back to the primary, which hands it to the next worker, round
 *   and round, while no worker has room.
 * - Closing the app closes idle connections at once (those on which no request has begun to arrive)
 *   and the others as soon as their answer ends: Node 20's `closeIdleConnections()` misses a
 *   connection that has never sent a byte (clients open them ahead of time), and Node stops its
 *   request timeouts on close, so such a connection held the drain until the forced close.
 */

interface Connection {
  /** Requests received on the connection whose response has not closed yet. */
  inFlight: number;
  /** The response to the last of them (pipelined requests are answered in order). */
  latest: ServerResponse | undefined;
  /** `socket.bytesRead` when the connection last became idle: more means a request is arriving. */
  idleSinceByte: number;
}

const CONNECTION = Symbol('llmc.connection');
type TrackedSocket = Socket & { [CONNECTION]?: Connection };

/** Node's timeouts for receiving a request; Fastify copies `requestTimeout` and `keepAliveTimeout` onto the server. */
export function connectionOptions(config: Pick<Config, 'requestTimeoutMs' | 'keepAliveTimeoutMs'>): {
  requestTimeout: number;
  keepAliveTimeout: number;
  http: ServerOptions;
} {
  const requestTimeout = config.requestTimeoutMs;
  return {
    requestTimeout,
    keepAliveTimeout: config.keepAliveTimeoutMs,
    http: {
      requestTimeout,
      headersTimeout: requestTimeout,
      // Node looks for late requests every 30 s by default: a 30 s timeout would act after up to 60 s.
      connectionsCheckingInterval: Math.min(1000, requestTimeout),
      // A request without Host is answered by client-errors.ts in the error envelope instead of
      // Node's empty 400.
      requireHostHeader: false,
    },
  };
}

/** The requests in flight on a connection, and the response to the last one (for client-errors.ts). */
export function connectionState(socket: Socket): Readonly<Connection> | undefined {
  return (socket as TrackedSocket)[CONNECTION];
}

/** Caps open connections, tracks which are idle, and closes idle ones at once when the app closes. */
export function installConnectionLimits(
  app: FastifyInstance,
  maxConnections: number,
  metrics: Metrics | undefined,
): void {
  const server = app.server;
  /** Connections with no request in flight, the longest idle first. */
  const idle = new Set<TrackedSocket>();
  let open = 0;
  let draining = false;

  const closeLongestIdle = (): boolean => {
    const oldest = idle.values().next().value;
    if (oldest === undefined) return false;
    idle.delete(oldest);
    oldest.destroy();
    return true;
  };

  server.on('connection', (socket: TrackedSocket) => {
    if (draining || (maxConnections > 0 && open >= maxConnections && !closeLongestIdle())) {
      if (!draining) metrics?.connectionsRefused.inc();
      socket.destroy();
      return;
    }
    open++;
    metrics?.openConnections.inc();
    socket[CONNECTION] = { inFlight: 0, latest: undefined, idleSinceByte: 0 };
    idle.add(socket);
    socket.once('close', () => {
      open--;
      metrics?.openConnections.dec();
      idle.delete(socket);
    });
  });

  server.on('request', (request: IncomingMessage, response: ServerResponse) => {
    const socket: TrackedSocket = request.socket;
    const state = socket[CONNECTION];
    if (state === undefined) return;
    state.inFlight++;
    state.latest = response;
    idle.delete(socket);
    response.on('close', () => {
      if (--state.inFlight > 0) return;
      state.latest = undefined;
      state.idleSinceByte = socket.bytesRead;
      if (socket.destroyed) return;
      if (draining) socket.destroy();
      else idle.add(socket);
    });
  });

  // A connection on which a request has begun to arrive is left to finish it: it is answered (503
  // while closing, with Connection: close) and closed when that answer has.
  app.addHook('preClose', (done) => {
    draining = true;
    for (const socket of idle) if (socket.bytesRead === socket[CONNECTION]?.idleSinceByte) socket.destroy();
    idle.clear();
    done();
  });
}
