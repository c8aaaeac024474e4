import { setTimeout as sleep } from 'node:timers/promises';
import type { Dispatcher } from 'undici';
import type { Config } from '../config.ts';
import { ConnectorError, clientClosed } from '../errors.ts';
import { retryDelayMs, shouldRetryStatus, type HeaderBag } from './retry.ts';
import { UndiciPool as Pool } from './undici-pool.ts';
import { UpstreamBody } from './upstream-body.ts';
import type { Cancel } from '../cancel.ts';

export const ANTHROPIC_VERSION = '2023-06-01';

/** What the upstream client needs of the configuration. */
export type UpstreamOptions = Pick<
  Config,
  | 'upstreamOrigin'
  | 'upstreamPathPrefix'
  | 'anthropicApiKey'
  | 'maxRetries'
  | 'connectTimeoutMs'
  | 'readTimeoutMs'
>;

/** The timeouts, which error messages name. */
export type UpstreamTimeouts = Pick<UpstreamOptions, 'connectTimeoutMs' | 'readTimeoutMs'>;

export interface UpstreamRequest {
  method: 'GET' | 'POST';
  /** Path from `/v1`, e.g. `/v1/messages`. */
  path: string;
  body?: string | Buffer;
  /** Extra headers (e.g. `anthropic-beta`); never credentials. */
  headers?: Record<string, string>;
  /** Cancelled when the client has gone: the attempt is aborted, a retry's wait cut short. */
  cancel: Cancel;
}

/** What the caller wants to know about the attempts, filled in as they happen. */
export interface AttemptTrace {
  attempts: number;
  upstreamStatus: number | undefined;
  /** performance.now() when the first attempt was sent, and when the final answer's headers arrived. */
  upstreamSentAt: number | undefined;
  upstreamAnsweredAt: number | undefined;
}

/** A 2xx answer whose body is still to be read, or a final error answer whose body was read. */
export type UpstreamAnswer =
  | { ok: true; statusCode: number; headers: HeaderBag; body: UpstreamBody }
  | { ok: false; statusCode: number; headers: HeaderBag; errorBody: Buffer };

export interface UpstreamClient {
  /** Sends the request, retrying retryable failures, until an answer begins or retries are spent. */
  open(request: UpstreamRequest, trace: AttemptTrace): Promise<UpstreamAnswer>;
  close(): Promise<void>;
}

const TIMEOUT_CODES = new Set(['UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT']);

/** Turns an undici/network error into the service's error; `null` when the client aborted. */
export function classifyNetworkError(error: unknown, options: UpstreamTimeouts): ConnectorError {
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && TIMEOUT_CODES.has(code)) {
    return new ConnectorError(
      'upstream_timeout',
      504,
      `Upstream was silent for ${options.readTimeoutMs / 1000} s`,
      { cause: error },
    );
  }
  if (code === 'UND_ERR_CONNECT_TIMEOUT') {
    return new ConnectorError(
      'upstream_unreachable',
      502,
      `Could not connect to the upstream within ${options.connectTimeoutMs / 1000} s`,
      {
        cause: error,
      },
    );
  }
  const detail = typeof code === 'string' ? ` (${code})` : '';
  return new ConnectorError('upstream_unreachable', 502, `Could not reach the upstream${detail}`, {
    cause: error,
  });
}

export function createUpstreamClient(options: UpstreamOptions): UpstreamClient {
  const pool = new Pool(options.upstreamOrigin, {
    connections: null,
    pipelining: 1,
    keepAliveTimeout: 30_000,
    connect: { timeout: options.connectTimeoutMs },
    headersTimeout: options.readTimeoutMs,
    bodyTimeout: options.readTimeoutMs,
  });
  const credentials = { 'x-api-key': options.anthropicApiKey };
  const baseHeaders: Record<string, string> = {
    'anthropic-version': ANTHROPIC_VERSION,
    'content-type': 'application/json',
    ...credentials,
  };

  function attempt(request: UpstreamRequest): Promise<UpstreamAnswer> {
    return new Promise((resolve, reject) => {
      pool.dispatch(
        {
          method: request.method,
          path: options.upstreamPathPrefix + request.path,
          // The caller's headers (anthropic-version, anthropic-beta) may override the defaults, never the key.
          headers: request.headers ? { ...baseHeaders, ...request.headers, ...credentials } : baseHeaders,
          body: request.body ?? null,
        },
        new AttemptHandler(request.cancel, resolve, reject),
      );
    });
  }

  async function open(request: UpstreamRequest, trace: AttemptTrace): Promise<UpstreamAnswer> {
    for (let retries = 0; ; retries++) {
      trace.attempts++;
      trace.upstreamSentAt ??= performance.now();
      let answer: UpstreamAnswer | undefined;
      let failure: ConnectorError | undefined;
      try {
        answer = await attempt(request);
        if (!answer.ok)
          answer = { ...answer, errorBody: redactKey(answer.errorBody, options.anthropicApiKey) };
        trace.upstreamAnsweredAt = performance.now();
        trace.upstreamStatus = answer.statusCode;
      } catch (error) {
        if (request.cancel.aborted) throw clientClosed();
        failure = classifyNetworkError(error, options);
      }
      const retryable = answer ? !answer.ok && shouldRetryStatus(answer.statusCode, answer.headers) : true;
      if (!retryable || retries >= options.maxRetries) {
        if (answer) return answer;
        throw failure ?? new ConnectorError('internal_error', 500, 'No upstream answer');
      }
      try {
        await sleep(retryDelayMs(retries, answer?.headers ?? {}), undefined, {
          signal: request.cancel.signal,
        });
      } catch {
        throw clientClosed();
      }
    }
  }

  return {
    open,
    close: () => pool.close(),
  };
}

/**
 * Defence in depth: should an error body ever contain the service's own key (a proxy in between
 * echoing the request's headers), it is cut out before the body goes anywhere (a client, a log).
 */
export function redactKey(body: Buffer, key: string): Buffer {
  if (key === '' || !body.includes(key)) return body;
  return Buffer.from(body.toString('utf8').replaceAll(key, '[redacted]'), 'utf8');
}

const ABORTED = new Error('The client closed the request');

/**
 * One upstream attempt as an undici dispatch handler: resolves when the answer's headers arrive
 * (a 2xx with its body still to be read; any other status once its body has been read), and feeds
 * the body to an UpstreamBody. Aborts the request when `cancel` is cancelled.
 */
class AttemptHandler implements Dispatcher.DispatchHandler {
  private controller: Dispatcher.DispatchController | null = null;
  private body: UpstreamBody | null = null;
  private readonly cancel: Cancel;
  private readonly resolve: (answer: UpstreamAnswer) => void;
  private readonly reject: (error: unknown) => void;
  private readonly onAbort = (): void => {
    this.controller?.abort(ABORTED);
  };

  constructor(cancel: Cancel, resolve: (answer: UpstreamAnswer) => void, reject: (error: unknown) => void) {
    this.cancel = cancel;
    this.resolve = resolve;
    this.reject = reject;
    cancel.onAbort(this.onAbort);
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    if (this.cancel.aborted) controller.abort(ABORTED);
  }

  onResponseStart(controller: Dispatcher.DispatchController, statusCode: number, headers: HeaderBag): void {
    const body = new UpstreamBody(controller);
    this.body = body;
    if (statusCode >= 200 && statusCode < 300) {
      this.resolve({ ok: true, statusCode, headers, body });
      return;
    }
    body.bytes().then((errorBody) => {
      this.resolve({ ok: false, statusCode, headers, errorBody });
    }, this.reject);
  }

  onResponseData(_controller: Dispatcher.DispatchController, chunk: Buffer): void {
    this.body?.push(chunk);
  }

  onResponseEnd(): void {
    this.cancel.offAbort(this.onAbort);
    this.body?.finish();
  }

  onResponseError(_controller: Dispatcher.DispatchController, error: Error): void {
    this.cancel.offAbort(this.onAbort);
    if (this.body) this.body.fail(error);
    else this.reject(error);
  }
}
