import { randomUUID } from 'node:crypto';
import { maxHeaderSize, STATUS_CODES, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ConnectorError, errorForStatus } from '../errors.ts';
import { connectionState } from './connections.ts';
import { renderError, type ErrorShape } from './error-shapes.ts';

/**
 * The errors Node and Fastify answer before any route runs (a request Node's parser refuses, a
 * request that does not arrive within REQUEST_TIMEOUT, a URL Fastify cannot route, a missing Host,
 * an unknown `Expect`) get the service's error envelope like every other error: the status Node or
 * Fastify chose, `X-Request-ID`, and on `/v1/*` paths the Anthropic or OpenAI shape.
 */

const REQUEST_ID = Symbol('llmc.requestId');
const UNMET_EXPECTATION = Symbol('llmc.unmetExpectation');
type TaggedRequest = IncomingMessage & { [REQUEST_ID]?: string; [UNMET_EXPECTATION]?: boolean };

/** Node's error for a connection, in words. Pure. */
export function connectionError(
  error: { code?: string | undefined; reason?: unknown },
  requestTimeoutMs: number,
): ConnectorError {
  switch (error.code) {
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return errorForStatus(
        408,
        `The request (headers and body) did not arrive within ${requestTimeoutMs / 1000} s (REQUEST_TIMEOUT)`,
      );
    case 'HPE_HEADER_OVERFLOW':
      return errorForStatus(431, `The request line and headers are larger than ${maxHeaderSize / 1024} KiB`);
    case 'HPE_CHUNK_EXTENSIONS_OVERFLOW':
      return errorForStatus(413, 'The chunk extensions of the request body are too large');
    default: {
      // llhttp's reasons are fixed texts ("Invalid method encountered", "Duplicate Content-Length"…).
      const reason =
        typeof error.reason === 'string' ? error.reason.replace(/[^\w ,.'-]/g, '').slice(0, 100) : '';
      return errorForStatus(
        400,
        reason === '' ? 'Malformed HTTP request' : `Malformed HTTP request: ${reason}`,
      );
    }
  }
}

/** Fastify's errors before routing, in words. Pure. */
export function frameworkError(error: Pick<FastifyError, 'code'>): ConnectorError {
  switch (error.code) {
    case 'FST_ERR_BAD_URL':
      return errorForStatus(400, 'The URL is not valid: it has a malformed percent-encoding');
    case 'FST_ERR_MAX_PARAM_LENGTH':
      return errorForStatus(414, 'A path segment of the URL is too long');
    default:
      return new ConnectorError('internal_error', 500, 'Internal error');
  }
}

/** The path of a request line at the start of `packet` (what Node's parser was reading), or ''. */
export function requestLinePath(packet: unknown): string {
  if (!Buffer.isBuffer(packet)) return '';
  const line = packet.toString('latin1', 0, Math.min(packet.length, 512));
  return /^[!-~]+ (\/[^ ?#\r\n]*)/.exec(line)?.[1] ?? '';
}

function pathOf(url: string | undefined): string {
  return (url ?? '').split('?', 1)[0] ?? '';
}

/** The error shape of the routes at a path (see RouteTable), for errors found before routing. */
export type ShapeFor = (path: string) => ErrorShape;

function body(shapeFor: ShapeFor, error: ConnectorError, path: string, requestId: string): string {
  return JSON.stringify(renderError(shapeFor(path), error, requestId));
}

/** A whole HTTP/1.1 error answer, written straight to a socket that has no response in progress. */
export function rawErrorAnswer(text: string, error: ConnectorError, requestId: string): string {
  return (
    `HTTP/1.1 ${error.status} ${STATUS_CODES[error.status] ?? 'Error'}\r\n` +
    `Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(text)}\r\n` +
    `X-Request-ID: ${requestId}\r\nConnection: close\r\n\r\n${text}`
  );
}

/**
 * Fastify's `clientErrorHandler`: what Node's own handler does (answer only when nothing of another
 * answer has been written on the socket, then close it), with the envelope. A request whose body was
 * still arriving (a 408, broken chunk framing) is answered on its own response, with its own id, so
 * that its log line has the status.
 */
function clientErrorHandler(shapeFor: ShapeFor) {
  return function onClientError(
    this: FastifyInstance,
    error: NodeJS.ErrnoException & { reason?: unknown; rawPacket?: unknown },
    socket: Socket,
  ): void {
    if (error.code === 'ECONNRESET' || socket.destroyed) return; // the client is gone
    const mapped = connectionError(error, this.server.requestTimeout);
    const state = connectionState(socket);
    const pending = state?.inFlight === 1 ? state.latest : undefined;
    if (pending && socket.writable && !pending.headersSent && !pending.req.complete) {
      const id = (pending.req as TaggedRequest)[REQUEST_ID] ?? randomUUID();
      const text = body(shapeFor, mapped, pathOf(pending.req.url), id);
      pending.writeHead(mapped.status, {
        'content-type': 'application/json',
        'content-length': Buffer.byteLength(text),
        'x-request-id': id,
        connection: 'close',
      });
      pending.end(text);
      return;
    }
    if (socket.writable && (state?.inFlight ?? 0) === 0) {
      const id = randomUUID();
      socket.write(rawErrorAnswer(body(shapeFor, mapped, requestLinePath(error.rawPacket), id), mapped, id));
      this.log.info({ reqId: id, status: mapped.status, code: error.code }, 'client error');
    }
    socket.destroy(error);
  };
}

function frameworkErrorHandler(shapeFor: ShapeFor) {
  return function onFrameworkError(error: FastifyError, request: FastifyRequest, reply: FastifyReply): void {
    const mapped = frameworkError(error);
    request.log.info({ status: mapped.status, code: error.code }, 'client error');
    void reply
      .code(mapped.status)
      .header('x-request-id', request.id)
      .type('application/json')
      .send(body(shapeFor, mapped, pathOf(request.url), request.id));
  };
}

/** Fastify options: Node's client errors and Fastify's routing errors in the envelope, in the path's shape. */
export function clientErrorOptions(routes: { shapeFor: ShapeFor }) {
  const shapeFor: ShapeFor = (path) => routes.shapeFor(path);
  return {
    clientErrorHandler: clientErrorHandler(shapeFor),
    frameworkErrors: frameworkErrorHandler(shapeFor),
  };
}

/** What Node leaves to the application: a request without Host, an `Expect` other than 100-continue. */
function protocolError(request: TaggedRequest): ConnectorError | undefined {
  if (request[UNMET_EXPECTATION] === true)
    return errorForStatus(417, 'Only "Expect: 100-continue" is supported');
  if (request.httpVersion === '1.1' && request.headers.host === undefined)
    return errorForStatus(400, 'An HTTP/1.1 request needs a Host header');
  return undefined;
}

/** Answers a missing Host and an unmet `Expect` through the error handler, and keeps each request's id for a later 408. */
export function installClientErrors(app: FastifyInstance): void {
  app.server.on('checkExpectation', (request: TaggedRequest, response: ServerResponse) => {
    request[UNMET_EXPECTATION] = true;
    app.server.emit('request', request, response);
  });
  app.addHook('onRequest', (request, _reply, done) => {
    const raw: TaggedRequest = request.raw;
    raw[REQUEST_ID] = request.id;
    done(protocolError(raw));
  });
}
