import { ConfigError } from '../config-error.ts';

/** The request ledger in PostgreSQL (DATABASE_URL); see docs/ledger.md. */
export interface LedgerSettings {
  /** The connection string, password included: never log it (see `redactUrl`). */
  readonly databaseUrl: string;
  /** Rows waiting to be written, at most (the oldest are dropped past it). */
  readonly bufferRows: number;
  /** Estimated bytes of the rows waiting, at most (the oldest are dropped past it). */
  readonly bufferBytes: number;
  /** How often the buffer is written (a full batch is written at once). */
  readonly flushIntervalMs: number;
  /** On SIGTERM, how long the buffer may take to be written before the process exits. */
  readonly drainTimeoutMs: number;
}

type Source = Readonly<Record<string, string | undefined>>;

export const DEFAULT_BUFFER_ROWS = 100_000;
export const DEFAULT_BUFFER_BYTES = 64 * 1024 * 1024;

/** `url` with its password (if any) replaced by `***`, for messages and logs. */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password === '') return url;
    parsed.password = '***';
    return parsed.toString();
  } catch {
    return '(unparseable URL)';
  }
}

/** `text` with every occurrence of the URL's password replaced by `***` (for driver errors). */
export function redactPassword(text: string, url: string): string {
  let password = '';
  try {
    password = decodeURIComponent(new URL(url).password);
  } catch {
    password = '';
  }
  return password === '' ? text : text.split(password).join('***');
}

function integer(env: Source, name: string, fallback: number, min: number): number {
  const raw = env[name]?.trim();
  if (raw === undefined || raw === '') return fallback;
  const value = /^\d+$/.test(raw) ? Number(raw) : Number.NaN;
  if (!Number.isSafeInteger(value) || value < min)
    throw new ConfigError(`${name} must be an integer >= ${min}, got "${raw}"`);
  return value;
}

function seconds(env: Source, name: string, fallback: number, max: number): number {
  const raw = env[name]?.trim();
  if (raw === undefined || raw === '') return fallback * 1000;
  const value = Number(raw);
  if (!Number.isFinite(value) || value < 0.001 || value > max)
    throw new ConfigError(`${name} must be a number of seconds from 0.001 to ${max}, got "${raw}"`);
  return Math.round(value * 1000);
}

/** The ledger's settings, or null when DATABASE_URL is not set (no ledger). */
export function parseLedgerSettings(env: Source): LedgerSettings | null {
  const databaseUrl = env.DATABASE_URL?.trim() ?? '';
  if (databaseUrl === '') return null;
  let url: URL | undefined;
  try {
    url = new URL(databaseUrl);
  } catch {
    url = undefined;
  }
  // The value may hold a password: never echo it.
  if (url?.protocol !== 'postgres:' && url?.protocol !== 'postgresql:') {
    throw new ConfigError(
      'DATABASE_URL must be a postgres:// or postgresql:// URL (e.g. postgres://user@127.0.0.1:5432/llmc)',
    );
  }
  return Object.freeze({
    databaseUrl,
    bufferRows: integer(env, 'LEDGER_BUFFER_ROWS', DEFAULT_BUFFER_ROWS, 1),
    bufferBytes: integer(env, 'LEDGER_BUFFER_BYTES', DEFAULT_BUFFER_BYTES, 1024),
    flushIntervalMs: seconds(env, 'LEDGER_FLUSH_INTERVAL', 1, 3600),
    drainTimeoutMs: seconds(env, 'LEDGER_DRAIN_TIMEOUT', 5, 300),
  });
}
