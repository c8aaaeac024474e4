import { ConnectorError } from '../errors.ts';
import { MAX_JSON_DEPTH, nestsDeeperThan, tooDeepPath } from '../json-depth.ts';

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Strict JSON body parsing: invalid UTF-8 is rejected, never replaced with U+FFFD, and so is a body
 * nesting objects and arrays deeper than MAX_JSON_DEPTH (before anything walks it recursively).
 */
export function parseJsonBody(body: Buffer): unknown {
  let text: string;
  try {
    text = utf8.decode(body);
  } catch {
    throw new ConnectorError('invalid_request_error', 400, 'Request body is not valid UTF-8');
  }
  const tooDeep = nestsDeeperThan(text, MAX_JSON_DEPTH);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new ConnectorError('invalid_request_error', 400, 'Request body is not valid JSON');
  }
  if (tooDeep) {
    const path = tooDeepPath(value, MAX_JSON_DEPTH) ?? '(the body)';
    throw new ConnectorError(
      'invalid_request_error',
      400,
      `${path} nests objects and arrays deeper than ${MAX_JSON_DEPTH} levels (the most a request may)`,
      { param: path },
    );
  }
  return value;
}
