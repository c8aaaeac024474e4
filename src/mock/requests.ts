/**
 * The request side of an exchange: reading the body with a size cap, recording it for the tests and
 * validating headers and body.
 */
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import { performance } from 'node:perf_hooks';
import type { RecordedRequest } from './types.ts';
import { invalid, isObject, notFound } from './wire.ts';
import type { JsonObject, Problem } from './wire.ts';

const MAX_BODY_BYTES = 32 * 1024 * 1024;

export const TOO_LARGE: Problem = {
  status: 413,
  type: 'request_too_large',
  message: 'Request exceeds the maximum allowed number of bytes.',
};

export function readBody(req: IncomingMessage, done: (body: Buffer, tooLarge: boolean) => void): void {
  const chunks: Buffer[] = [];
  let size = 0;
  req.on('data', (chunk: Buffer) => {
    size += chunk.length;
    if (size <= MAX_BODY_BYTES) chunks.push(chunk);
  });
  req.on('end', () => {
    const tooLarge = size > MAX_BODY_BYTES;
    done(tooLarge ? Buffer.alloc(0) : Buffer.concat(chunks), tooLarge);
  });
}

/** The record of a request and the function that settles it (closedEarly, finishedAt, closed). */
export function newRecord(req: IncomingMessage, body: Buffer): [RecordedRequest, (early: boolean) => void] {
  let resolve: () => void = () => undefined;
  const closed = new Promise<void>((r) => {
    resolve = r;
  });
  let json: unknown;
  try {
    json = body.length > 0 ? (JSON.parse(body.toString('utf8')) as unknown) : undefined;
  } catch {
    json = undefined;
  }
  const rec: RecordedRequest = {
    method: req.method ?? 'GET',
    url: req.url ?? '/',
    headers: req.headers,
    body,
    json,
    receivedAt: performance.now(),
    closedEarly: false,
    closed,
  };
  const settle = (early: boolean): void => {
    if (rec.finishedAt !== undefined) return;
    rec.closedEarly = early;
    rec.finishedAt = performance.now();
    resolve();
  };
  return [rec, settle];
}

function bearer(authorization: string | undefined): string | undefined {
  return authorization?.startsWith('Bearer ') === true ? authorization.slice(7) : undefined;
}

export function headerProblem(headers: IncomingHttpHeaders, requireKey: boolean): Problem | undefined {
  const raw = headers['x-api-key'];
  const key = typeof raw === 'string' && raw !== '' ? raw : bearer(headers.authorization);
  if (key === 'bad-key') return { status: 401, type: 'authentication_error', message: 'invalid x-api-key' };
  if (requireKey && (key === undefined || key === '')) {
    return { status: 401, type: 'authentication_error', message: 'x-api-key header is required' };
  }
  if (headers['anthropic-version'] === undefined) return invalid('anthropic-version: header is required');
  return undefined;
}

/** What the real API says about `max_tokens` when it is missing, not an integer or below 1. */
function maxTokensProblem(value: unknown): Problem | undefined {
  if (value === undefined) return invalid('max_tokens: Field required');
  if (typeof value !== 'number' || !Number.isInteger(value)) {
    return invalid('max_tokens: Input should be a valid integer');
  }
  if (value < 1) return invalid('max_tokens: Input should be greater than or equal to 1');
  return undefined;
}

const SYSTEM_ROLE =
  'messages: Unexpected role "system". The Messages API accepts a top-level `system` parameter, not "system" as an input message role.';

const EMPTY_CONTENT =
  'all messages must have non-empty content except for the optional final assistant message';

function messageProblem(message: unknown, at: string, last: boolean): Problem | undefined {
  if (!isObject(message)) return invalid(`${at}: Input should be a valid dictionary`);
  const { role, content } = message;
  if (role === 'system') return invalid(SYSTEM_ROLE);
  if (role !== 'user' && role !== 'assistant') {
    return invalid(`${at}.role: Input should be 'user' or 'assistant'`);
  }
  if (content === undefined) return invalid(`${at}.content: Field required`);
  if (typeof content !== 'string' && !Array.isArray(content)) {
    return invalid(`${at}.content: Input should be a valid string or a list of content blocks`);
  }
  if (content.length === 0 && !(last && role === 'assistant')) return invalid(`${at}: ${EMPTY_CONTENT}`);
  return undefined;
}

/**
 * What the real API rejects in `messages`. Like the first-party API (not Bedrock), it accepts an
 * assistant message first and consecutive messages of one role, which it joins into one turn.
 */
function messagesProblem(messages: unknown): Problem | undefined {
  if (messages === undefined) return invalid('messages: Field required');
  if (!Array.isArray(messages)) return invalid('messages: Input should be a valid list');
  const list = messages as unknown[];
  if (list.length === 0) return invalid('messages: at least one message is required');
  for (const [i, message] of list.entries()) {
    const problem = messageProblem(message, `messages.${i}`, i === list.length - 1);
    if (problem !== undefined) return problem;
  }
  return undefined;
}

/** The body's first problem as the real API reports it (max_tokens only where it is required). */
export function bodyProblem(body: JsonObject, needMaxTokens: boolean): Problem | undefined {
  if (body.model === undefined) return invalid('model: Field required');
  if (typeof body.model !== 'string') return invalid('model: Input should be a valid string');
  const problem =
    (needMaxTokens ? maxTokensProblem(body.max_tokens) : undefined) ?? messagesProblem(body.messages);
  if (problem !== undefined) return problem;
  if (body.stream !== undefined && typeof body.stream !== 'boolean') {
    return invalid('stream: Input should be a valid boolean');
  }
  if (body.model === 'claude-does-not-exist') return notFound(`model: ${body.model}`);
  return undefined;
}
