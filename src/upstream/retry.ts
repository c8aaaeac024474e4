/**
 * The retry decision of the official Anthropic SDKs, as pure functions:
 * `x-should-retry` decides when present; otherwise 408, 409, 429 and every status >= 500 are retried.
 * The wait is the server's `retry-after-ms` / `retry-after` when 0 < value <= 60 s, else
 * min(0.5 * 2^n, 8) s with up to 25 % jitter off, n = retries already taken.
 */
export type HeaderBag = Readonly<Record<string, string | string[] | undefined>>;

const MAX_SERVER_WAIT_MS = 60_000;
const INITIAL_DELAY_MS = 500;
const MAX_DELAY_MS = 8_000;

export function header(headers: HeaderBag, name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value[0] : value;
}

export function shouldRetryStatus(status: number, headers: HeaderBag): boolean {
  const explicit = header(headers, 'x-should-retry');
  if (explicit === 'true') return true;
  if (explicit === 'false') return false;
  return status === 408 || status === 409 || status === 429 || status >= 500;
}

/** The server's requested wait in ms, if it gave a usable one. */
export function serverRetryAfterMs(headers: HeaderBag, now: number = Date.now()): number | undefined {
  const ms = Number.parseFloat(header(headers, 'retry-after-ms') ?? '');
  if (Number.isFinite(ms) && ms > 0 && ms <= MAX_SERVER_WAIT_MS) return ms;
  const raw = header(headers, 'retry-after');
  if (raw === undefined) return undefined;
  const seconds = Number.parseFloat(raw);
  let wait = Number.isFinite(seconds) && /^\s*[\d.]+\s*$/.test(raw) ? seconds * 1000 : Date.parse(raw) - now;
  if (!Number.isFinite(wait)) return undefined;
  wait = Math.round(wait);
  return wait > 0 && wait <= MAX_SERVER_WAIT_MS ? wait : undefined;
}

export function backoffMs(retriesTaken: number, random: () => number = Math.random): number {
  const base = Math.min(INITIAL_DELAY_MS * 2 ** retriesTaken, MAX_DELAY_MS);
  return Math.round(base * (1 - 0.25 * random()));
}

export function retryDelayMs(
  retriesTaken: number,
  headers: HeaderBag,
  random: () => number = Math.random,
): number {
  return serverRetryAfterMs(headers) ?? backoffMs(retriesTaken, random);
}
