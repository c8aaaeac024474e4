/**
 * The request side of an exchange: reading the body with a size cap, recording it for the tests and
 * validating headers and body.
 */
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import { performance } from 'node:perf_hooks';
import type { RecordedRequest } from './types.ts';
import { invalid, notFound } from './wire.ts';
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

export function bodyProblem(body: JsonObject, needMaxTokens: boolean): Problem | undefined {
  if (typeof body.model !== 'string') return invalid('model: Field required');
  if (needMaxTokens && typeof body.max_tokens !== 'number') return invalid('max_tokens: Field required');
  if (!Array.isArray(body.messages)) return invalid('messages: Field required');
  if (body.model === 'claude-does-not-exist') {
    return notFound(`model: ${body.model}`);
  }
  return undefined;
}
