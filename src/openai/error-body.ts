/**
 * Pure: the service's errors in OpenAI's shape `{"error":{"message","type","param","code"}}`.
 * `type` is OpenAI's broad class; `code` is the service's own stable error type (e.g.
 * `rate_limit_error`, `upstream_timeout`), or the upstream's for a mid-stream `error` event.
 */
export interface OpenAIErrorBody {
  error: { message: string; type: string; param: string | null; code: string };
}

const TYPES: ReadonlyMap<string, string> = new Map([
  ['invalid_request_error', 'invalid_request_error'],
  ['request_too_large', 'invalid_request_error'],
  ['request_timeout', 'invalid_request_error'],
  ['permission_error', 'invalid_request_error'],
  ['unsupported_media_type', 'invalid_request_error'],
  ['not_found_error', 'invalid_request_error'],
  ['method_not_allowed', 'invalid_request_error'],
  ['upstream_authentication_error', 'authentication_error'],
  ['authentication_error', 'authentication_error'],
  ['rate_limit_error', 'rate_limit_error'],
]);

/** OpenAI's error class for one of the service's (or the upstream's) error types; `server_error` otherwise. */
export function openAIErrorType(type: string): string {
  return TYPES.get(type) ?? 'server_error';
}

export function openAIErrorBody(type: string, message: string, param: string | null = null): OpenAIErrorBody {
  return { error: { message, type: openAIErrorType(type), param, code: type } };
}
