import type { Cancel } from '../cancel.ts';

/**
 * MAX_UPSTREAM_CONCURRENCY: at most `max` upstream requests open at once in this process. A request
 * beyond that waits in a FIFO queue for up to `queueTimeoutMs`, then is turned away, rather than
 * piling onto Anthropic. Process-local on purpose: it protects this process's connection pool and
 * costs no round trip; with N replicas (or workers) the cap is N × max.
 */
export interface UpstreamGate {
  acquire(cancel?: Cancel): Promise<GateResult>;
  readonly active: number;
  readonly queued: number;
}

export type GateResult =
  | { readonly ok: true; readonly permit: GatePermit }
  | { readonly ok: false; readonly reason: 'busy' | 'aborted'; readonly retryAfterSeconds: number };

export interface GatePermit {
  /** Frees the slot; calling it again does nothing. */
  release(): void;
}

export interface GateOptions {
  /** 0 = no cap. */
  max: number;
  queueTimeoutMs?: number;
  /** Requests waiting at once beyond which new ones are turned away at once; default no bound. */
  maxQueued?: number;
}

/** How long a request may wait for a free upstream slot. */
export const DEFAULT_QUEUE_TIMEOUT_MS = 2_000;
const RETRY_AFTER_SECONDS = 1;

interface Waiter {
  grant(): void;
}

const UNLIMITED_PERMIT: GatePermit = { release: () => undefined };

export function createUpstreamGate(options: GateOptions): UpstreamGate {
  const queueTimeoutMs = options.queueTimeoutMs ?? DEFAULT_QUEUE_TIMEOUT_MS;
  const maxQueued = options.maxQueued ?? Number.POSITIVE_INFINITY;
  const waiters: Waiter[] = [];
  let active = 0;

  const permit = (): GatePermit => {
    let released = false;
    return {
      release() {
        if (released) return;
        released = true;
        const next = waiters.shift();
        // The slot passes straight to the longest waiter, so newcomers cannot overtake it.
        if (next === undefined) active--;
        else next.grant();
      },
    };
  };

  const busy = (reason: 'busy' | 'aborted'): GateResult => ({
    ok: false,
    reason,
    retryAfterSeconds: RETRY_AFTER_SECONDS,
  });

  return {
    get active() {
      return active;
    },
    get queued() {
      return waiters.length;
    },
    acquire(cancel) {
      if (options.max <= 0) return Promise.resolve({ ok: true, permit: UNLIMITED_PERMIT });
      if (cancel?.aborted) return Promise.resolve(busy('aborted'));
      if (active < options.max) {
        active++;
        return Promise.resolve({ ok: true, permit: permit() });
      }
      if (waiters.length >= maxQueued || queueTimeoutMs <= 0) return Promise.resolve(busy('busy'));
      return new Promise<GateResult>((resolve) => {
        const leave = (result: GateResult): void => {
          clearTimeout(timer);
          cancel?.offAbort(onAbort);
          const index = waiters.indexOf(waiter);
          if (index !== -1) waiters.splice(index, 1);
          resolve(result);
        };
        const waiter: Waiter = {
          grant: () => {
            leave({ ok: true, permit: permit() });
          },
        };
        const onAbort = (): void => {
          leave(busy('aborted'));
        };
        const timer = setTimeout(() => {
          leave(busy('busy'));
        }, queueTimeoutMs);
        cancel?.onAbort(onAbort);
        waiters.push(waiter);
      });
    },
  };
}
