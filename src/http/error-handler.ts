import type { FastifyError, FastifyInstance } from 'fastify';
import { ConnectorError, errorForStatus } from '../errors.ts';
import { renderError } from './error-shapes.ts';
import { retryHeaders } from './pipeline.ts';
import type { RouteTable } from './route-table.ts';
import { plainValidation } from './validation-message.ts';

/** Maps anything thrown (our errors, Fastify's own) to the service's error. Pure. */
export function toConnectorError(error: unknown): ConnectorError {
  if (error instanceof ConnectorError) return error;
  const fastifyError = error as Partial<FastifyError>;
  if (fastifyError.validation) {
    const plain = plainValidation(fastifyError.validation);
    return new ConnectorError('invalid_request_error', 400, plain.message, { param: plain.param });
  }
  switch (fastifyError.code) {
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new ConnectorError('unsupported_media_type', 415, 'Content-Type must be application/json');
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new ConnectorError('request_too_large', 413, 'Request body is larger than MAX_BODY_BYTES');
    default:
  }
  const status = fastifyError.statusCode;
  if (typeof status === 'number' && status >= 400 && status < 500) {
    return errorForStatus(status, fastifyError.message ?? 'Invalid request');
  }
  return new ConnectorError('internal_error', 500, 'Internal error', { cause: error });
}

/** Renders every error, from routes and from the framework, in the route's error shape. */
export function installErrorHandling(app: FastifyInstance, routes: RouteTable): void {
  app.setErrorHandler((error, request, reply) => {
    const mapped = toConnectorError(error);
    request.record.errorType = mapped.type;
    if (mapped.type === 'client_closed' || reply.raw.headersSent) {
      // Nothing can be said any more: the client is gone or the stream has begun.
      request.record.outcome = mapped.type === 'client_closed' ? 'client_closed' : 'internal_error';
      if (mapped.type !== 'client_closed') request.log.error({ err: error }, 'error after the answer began');
      reply.hijack();
      reply.raw.destroy();
      return;
    }
    if (mapped.status >= 500 && mapped.type === 'internal_error')
      request.log.error({ err: error }, 'unexpected error');
    if (mapped.retryAfter !== undefined) void reply.header('retry-after', mapped.retryAfter);
    void reply.headers(retryHeaders(request.record));
    return reply
      .code(mapped.status)
      .send(renderError(request.routeOptions.config.errorShape ?? 'default', mapped, request.id));
  });

  app.setNotFoundHandler((request, reply) => {
    const path = request.url.split('?', 1)[0] ?? '';
    const allow = routes.allowed(path);
    let error: ConnectorError;
    if (allow === undefined) {
      error = new ConnectorError('not_found_error', 404, `No route for ${request.method} ${path}`);
    } else {
      void reply.header('allow', allow);
      error = new ConnectorError(
        'method_not_allowed',
        405,
        `${request.method} is not allowed on ${path}; use ${allow}`,
      );
    }
    request.record.errorType = error.type;
    return reply.code(error.status).send(renderError(routes.shapeFor(path), error, request.id));
  });
}
