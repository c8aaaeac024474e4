/**
 * The types shared by the modules of the fake upstream: the scenarios a test can ask for, the
 * record of a request, the options and the public interface, and one request/response pair (the
 * exchange). Imports only a type from pacer.ts, so every other module of the fake can depend on it.
 */
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import type { Pacer } from './pacer.ts';

export type FakeScenario =
  | {
      kind: 'message';
      deltas?: string[];
      deltaDelayMs?: number;
      headersDelayMs?: number;
      stopReason?: string;
      usage?: {
        input_tokens?: number;
        output_tokens?: number;
        cache_creation_input_tokens?: number;
        cache_read_input_tokens?: number;
        /** The cache writes split by lifetime, sent in message_start (and the whole message) when given. */
        cache_creation?: { ephemeral_5m_input_tokens: number; ephemeral_1h_input_tokens: number };
      };
      pingAfterStart?: boolean;
      spacedJson?: boolean;
      chunking?: 'event' | 'byte' | 'coalesce';
      blocks?: FakeBlock[];
      fault?:
        | { type: 'stall'; afterDeltas: number }
        | { type: 'error'; afterDeltas: number; errorType?: string; message?: string }
        | { type: 'truncate'; afterDeltas: number }
        | { type: 'cut'; afterDeltas: number }
        | { type: 'badJson'; afterDeltas: number };
    }
  | {
      kind: 'error';
      status: number;
      errorType?: string;
      message?: string;
      retryAfter?: string;
      retryAfterMs?: string;
      shouldRetry?: boolean;
      headersDelayMs?: number;
    }
  | { kind: 'stall' }
  | { kind: 'hangup' };

export type FakeBlock =
  | { type: 'text'; text: string[] }
  | { type: 'thinking'; thinking: string[]; signature: string }
  | { type: 'tool_use'; id: string; name: string; inputJson: string[] };

export interface RecordedRequest {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  body: Buffer;
  json: unknown;
  receivedAt: number;
  closedEarly: boolean;
  finishedAt?: number;
  closed: Promise<void>;
}

export interface FakeUpstreamOptions {
  host?: string;
  port?: number;
  /** --mock mode: paced, clearly marked default answers. Also makes requireApiKey default to false. */
  simulated?: boolean;
  /** Default true (false when simulated): requests without a key get 401; key 'bad-key' always does. */
  requireApiKey?: boolean;
  /** Keep the requests to /v1/ in `requests` (default true; false when simulated: --mock keeps nothing). */
  record?: boolean;
  /** How many requests `requests` keeps when recording: the oldest go first (default 1000). */
  maxRecorded?: number;
}

export interface FakeUpstream {
  readonly url: string;
  /** The last `maxRecorded` requests to /v1/, oldest first (empty when not recording). */
  readonly requests: RecordedRequest[];
  /** Every request to /v1/ since the fake started, recorded or not; never drops (not even on reset). */
  readonly requestCount: number;
  /** n counts the POST /v1/messages requests that passed validation (0-based). */
  setScenario(fn: (req: RecordedRequest, n: number) => FakeScenario): void;
  queue(...scenarios: FakeScenario[]): void;
  reset(): void;
  close(): Promise<void>;
}

export type MessageScenario = Extract<FakeScenario, { kind: 'message' }>;
export type ErrorScenario = Extract<FakeScenario, { kind: 'error' }>;

/** One request/response pair of the fake. */
export interface Exchange {
  req: IncomingMessage;
  res: ServerResponse;
  pacer: Pacer;
  requestId: string;
  gone: boolean;
  settle: ((early: boolean) => void) | undefined;
}
