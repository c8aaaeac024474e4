import { ConnectorError } from '../errors.ts';

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Strict JSON body parsing: invalid UTF-8 is rejected, never replaced with U+FFFD. */
export function parseJsonBody(body: Buffer): unknown {
  let text: string;
  try {
    text = utf8.decode(body);
  } catch {
    throw new ConnectorError('invalid_request_error', 400, 'Request body is not valid UTF-8');
  }
  try {
    return JSON.parse(text);
  } catch {
    throw new ConnectorError('invalid_request_error', 400, 'Request body is not valid JSON');
  }
}
