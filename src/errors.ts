/**
 * The one error tree of the service. Every failure that reaches a client is a ConnectorError with a
 * stable machine-readable `type` (also the envelope's `error.type`) and the HTTP status it maps to.
 * Messages are written for humans and never contain secrets.
 */
export type ErrorType =
  | 'invalid_request_error'
  | 'permission_error'
  | 'request_timeout'
  | 'request_too_large'
  | 'unsupported_media_type'
  | 'not_found_error'
  | 'method_not_allowed'
  | 'authentication_error'
  | 'upstream_authentication_error'
  | 'rate_limit_error'
  | 'overloaded_error'
  | 'upstream_unreachable'
  | 'upstream_timeout'
  | 'upstream_error'
  | 'stream_incomplete'
  | 'client_closed'
  | 'internal_error';

export interface ConnectorErrorOptions {
  /** Seconds, for the `Retry-After` header. */
  retryAfter?: string | undefined;
  /** Status the upstream answered with, for logs. */
  upstreamStatus?: number | undefined;
  /** The request field at fault, when known (OpenAI's `error.param`). */
  param?: string | undefined;
  cause?: unknown;
}

export class ConnectorError extends Error {
  override readonly name = 'ConnectorError';
  readonly type: ErrorType;
  readonly status: number;
  readonly retryAfter: string | undefined;
  readonly upstreamStatus: number | undefined;
  readonly param: string | undefined;

  constructor(type: ErrorType, status: number, message: string, options: ConnectorErrorOptions = {}) {
    super(message, { cause: options.cause });
    this.type = type;
    this.status = status;
    this.retryAfter = options.retryAfter;
    this.upstreamStatus = options.upstreamStatus;
    this.param = options.param;
  }
}

export interface ErrorEnvelope {
  error: { type: string; message: string };
  request_id: string;
}

export function errorEnvelope(type: string, message: string, requestId: string): ErrorEnvelope {
  return { error: { type, message }, request_id: requestId };
}

const TYPE_BY_STATUS: ReadonlyMap<number, ErrorType> = new Map([
  [403, 'permission_error'],
  [404, 'not_found_error'],
  [405, 'method_not_allowed'],
  [408, 'request_timeout'],
  [413, 'request_too_large'],
  [414, 'request_too_large'],
  [415, 'unsupported_media_type'],
  [431, 'request_too_large'],
]);

/** A client error (4xx) that keeps its status, with the service's error type for it. */
export function errorForStatus(status: number, message: string): ConnectorError {
  return new ConnectorError(TYPE_BY_STATUS.get(status) ?? 'invalid_request_error', status, message);
}

/** The client went away; nothing is rendered, the upstream request is aborted. */
export function clientClosed(): ConnectorError {
  return new ConnectorError('client_closed', 499, 'The client closed the connection');
}
