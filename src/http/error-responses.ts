import type { JSONSchema } from 'json-schema-to-ts';

/**
 * The OpenAPI error answers shared by the answering routes, with the route's own error schema;
 * `invalid` describes its 400.
 */
export function errorResponses(schema: JSONSchema, invalid: string) {
  const response = (description: string) => ({ description, content: { 'application/json': { schema } } });
  return {
    400: response(invalid),
    413: response('Body larger than MAX_BODY_BYTES'),
    415: response('Content-Type is not application/json'),
    429: response('Upstream rate limit reached after retries (see Retry-After)'),
    502: response('Upstream unreachable, or it rejected the service credentials'),
    503: response('Upstream overloaded or failing after retries (see Retry-After)'),
    504: response('Upstream silent past UPSTREAM_READ_TIMEOUT'),
  };
}
