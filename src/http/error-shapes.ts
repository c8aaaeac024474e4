import type { ConnectorError, ErrorType } from '../errors.ts';
import { errorEnvelope } from '../errors.ts';
import { openAIErrorBody } from '../openai/error-body.ts';

/**
 * Each API family renders the service's errors in the shape its clients (and SDKs) expect.
 * A route picks its shape with `config: { errorShape: 'anthropic' }`; the default is the
 * service's own envelope `{"error":{"type","message"},"request_id"}`.
 */
export type ErrorShape = 'default' | 'anthropic' | 'openai';

declare module 'fastify' {
  interface FastifyContextConfig {
    errorShape?: ErrorShape;
  }
}

/** The Anthropic API's own `error.type` for each of the service's errors. */
const ANTHROPIC_TYPES: Partial<Record<ErrorType, string>> = {
  unsupported_media_type: 'invalid_request_error',
  method_not_allowed: 'invalid_request_error',
  request_timeout: 'timeout_error',
  upstream_authentication_error: 'api_error',
  upstream_unreachable: 'api_error',
  upstream_error: 'api_error',
  stream_incomplete: 'api_error',
  upstream_timeout: 'timeout_error',
  internal_error: 'api_error',
};

export function anthropicErrorType(type: string): string {
  return ANTHROPIC_TYPES[type as ErrorType] ?? type;
}

/** `{"type":"error","error":{"type","message"},"request_id"}`, as Anthropic answers. */
export function anthropicErrorBody(type: string, message: string, requestId: string): object {
  return { type: 'error', error: { type: anthropicErrorType(type), message }, request_id: requestId };
}

export function renderError(shape: ErrorShape, error: ConnectorError, requestId: string): object {
  switch (shape) {
    case 'anthropic':
      return anthropicErrorBody(error.type, error.message, requestId);
    case 'openai':
      return openAIErrorBody(error.type, error.message, error.param ?? null);
    case 'default':
      return errorEnvelope(error.type, error.message, requestId);
  }
}
