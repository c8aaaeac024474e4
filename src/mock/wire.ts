/**
 * Wire-format primitives of the fake Anthropic API: SSE framing, the live API's spaced JSON, error
 * bodies and the status → error-type table (docs/anthropic-api.md). No I/O.
 */

export type JsonObject = Record<string, unknown>;
export type Serialize = (value: unknown) => string;
export type HeaderMap = Record<string, string>;

export interface Problem {
  status: number;
  type: string;
  message: string;
}

const ERROR_TYPES: Readonly<Record<number, string>> = {
  400: 'invalid_request_error',
  401: 'authentication_error',
  402: 'billing_error',
  403: 'permission_error',
  404: 'not_found_error',
  409: 'conflict_error',
  413: 'request_too_large',
  429: 'rate_limit_error',
  500: 'api_error',
  504: 'timeout_error',
  529: 'overloaded_error',
};

export const ERROR_MESSAGES: Readonly<Record<string, string>> = {
  overloaded_error: 'Overloaded',
  rate_limit_error: 'Number of requests has exceeded your rate limit',
  api_error: 'Internal server error',
  timeout_error: 'Request timed out',
};

export function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function asArray(value: unknown): readonly unknown[] {
  return Array.isArray(value) ? (value as unknown[]) : [];
}

export function errorTypeFor(status: number): string {
  return ERROR_TYPES[status] ?? (status >= 500 ? 'api_error' : 'invalid_request_error');
}

export function invalid(message: string): Problem {
  return { status: 400, type: 'invalid_request_error', message };
}

export function notFound(message: string): Problem {
  return { status: 404, type: 'not_found_error', message };
}

/** JSON as the live API formats it: `{"a": 1, "b": [2, 3]}`. */
export function spacedJson(value: unknown): string {
  if (Array.isArray(value)) return `[${(value as unknown[]).map(spacedJson).join(', ')}]`;
  if (isObject(value)) {
    const parts = Object.entries(value).map(([k, v]) => `${JSON.stringify(k)}: ${spacedJson(v)}`);
    return `{${parts.join(', ')}}`;
  }
  return JSON.stringify(value);
}

export function sse(type: string, data: string): string {
  return `event: ${type}\ndata: ${data}\n\n`;
}

export function errorBody(type: string, message: string, requestId?: string): JsonObject {
  const body: JsonObject = { type: 'error', error: { type, message } };
  if (requestId !== undefined) body.request_id = requestId;
  return body;
}
