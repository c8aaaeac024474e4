import { readFileSync } from 'node:fs';
import { parseEnv } from 'node:util';
import { ConfigError } from './config-error.ts';
import { ClientKeyring, loadAdminKeys, loadClientKeys } from './limits/client-keys.ts';
import { parseLimitSettings, type LimitSettings } from './limits/limits.ts';
import type { PriceTable } from './pricing/cost.ts';
import { loadPriceTable } from './pricing/price-table.ts';
import { parseLedgerSettings, type LedgerSettings } from './ledger/settings.ts';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error' | 'silent';

export interface Config {
  readonly anthropicApiKey: string;
  /** Origin of the upstream, e.g. `https://api.anthropic.com`. */
  readonly upstreamOrigin: string;
  /** Path prefix before `/v1/...` (usually empty). */
  readonly upstreamPathPrefix: string;
  readonly defaultModel: string;
  readonly defaultMaxTokens: number;
  readonly host: string;
  readonly port: number;
  readonly maxRetries: number;
  readonly connectTimeoutMs: number;
  readonly readTimeoutMs: number;
  readonly keepAliveIntervalMs: number;
  readonly maxBodyBytes: number;
  /** Longest a client may take to send a whole request, headers and body (408 after it). */
  readonly requestTimeoutMs: number;
  /** Longest a connection may stay idle between two requests. */
  readonly keepAliveTimeoutMs: number;
  /** Open connections per process (0 = no cap); see src/http/connections.ts. */
  readonly maxConnections: number;
  readonly logLevel: LogLevel;
  readonly mock: boolean;
  /** Browser origins allowed to call the service (CORS); empty = none. */
  readonly corsOrigins: readonly string[];
  /** Models to try, in order, when the requested one is overloaded or rate-limited; empty = none. */
  readonly fallbackModels: readonly string[];
  /** Worker processes (node:cluster) sharing the port; 1 = no cluster. */
  readonly workers: number;
  /** With client keys on, /metrics also needs one (METRICS_REQUIRE_KEY). */
  readonly metricsRequireKey: boolean;
  /** Listen beyond loopback without client keys (ALLOW_UNAUTHENTICATED). */
  readonly allowUnauthenticated: boolean;
  /** The client keys as digests, names and limits (no key itself), admin keys included; null: authentication is off. */
  readonly clientKeys: ClientKeyring | null;
  /** ADMIN_API_KEYS alone (also in `clientKeys`), kept to be added again when the keys file is reloaded. */
  readonly adminKeys: ClientKeyring | null;
  /** Hours of usage kept for the usage and cost reports (USAGE_RETENTION_DAYS × 24). */
  readonly usageRetentionHours: number;
  /** SERVICE_API_KEYS_FILE, re-read on SIGHUP; undefined when the keys come from SERVICE_API_KEYS or are off. */
  readonly clientKeysFile: string | undefined;
  /** Default limits per client, the upstream cap and the limit store (RATE_LIMIT_*, REDIS_URL…). */
  readonly limits: LimitSettings;
  /** Model prices: the shipped table with MODEL_PRICES_FILE merged over it. */
  readonly prices: PriceTable;
  /** The request ledger in PostgreSQL (DATABASE_URL, LEDGER_*); null: no ledger. */
  readonly ledger: LedgerSettings | null;
  /** Resumable and background answers of /llm/query (RESUMABLE_ANSWERS, RESUME_GRACE_SECONDS, ANSWER_TTL_SECONDS). */
  readonly answers: AnswerSettings;
}

export interface AnswerSettings {
  /** Off: `resumable` and `background` are refused (400). */
  readonly enabled: boolean;
  /** How long a resumable answer goes on once nobody follows it. */
  readonly graceMs: number;
  /** How long an answer is kept after it ended. */
  readonly ttlMs: number;
}

export { ConfigError };

type Source = Readonly<Record<string, string | undefined>>;

export interface CliFlags {
  mock: boolean;
  host?: string;
  port?: string;
  workers?: string;
}

const LOG_LEVELS: readonly LogLevel[] = ['debug', 'info', 'warn', 'error', 'silent'];

/** Parses `--mock`, `--host H`, `--port P`, `--workers N` (or `--name=value`). Unknown flags are an error. */
export function parseArgs(argv: readonly string[]): CliFlags {
  const flags: CliFlags = { mock: false };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? '';
    if (arg === '--mock') {
      flags.mock = true;
      continue;
    }
    const match = /^--(host|port|workers)(?:=(.*))?$/.exec(arg);
    if (!match)
      throw new ConfigError(`Unknown argument "${arg}" (expected --mock, --host, --port, --workers)`);
    const name = match[1] as 'host' | 'port' | 'workers';
    const value = match[2] ?? argv[++i];
    if (value === undefined || value === '') throw new ConfigError(`--${name} needs a value`);
    flags[name] = value;
  }
  return flags;
}

/** Reads `.env` from `dir` if present; the process environment wins over it. */
export function readEnvFile(path: string): Record<string, string> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return {};
  }
  return parseEnv(text) as Record<string, string>;
}

function number(
  env: Source,
  name: string,
  fallback: number,
  opts: { integer?: boolean; min: number; max?: number },
): number {
  const raw = env[name]?.trim();
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  const kind = opts.integer ? 'an integer' : 'a number';
  const range = opts.max === undefined ? `>= ${opts.min}` : `from ${opts.min} to ${opts.max}`;
  if (
    !Number.isFinite(value) ||
    (opts.integer && !Number.isInteger(value)) ||
    value < opts.min ||
    (opts.max !== undefined && value > opts.max)
  ) {
    throw new ConfigError(`${name} must be ${kind} ${range}, got "${raw}"`);
  }
  return value;
}

/** The one rule for on/off settings: true/1 or false/0 in any case; blank is the default (false). */
function flag(env: Source, name: string): boolean {
  const raw = env[name]?.trim().toLowerCase() ?? '';
  if (raw === '' || raw === 'false' || raw === '0') return false;
  if (raw === 'true' || raw === '1') return true;
  throw new ConfigError(`${name} must be true or false (or 1 or 0), got "${env[name] ?? ''}"`);
}

function positiveSeconds(env: Source, name: string, fallback: number): number {
  const seconds = number(env, name, fallback, { min: 0.001 });
  return Math.round(seconds * 1000);
}

/** Splits a base URL into origin and path prefix, accepting a trailing `/` or `/v1`. */
export function parseBaseUrl(raw: string, name = 'ANTHROPIC_BASE_URL'): { origin: string; prefix: string } {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new ConfigError(`${name} must be an http(s) URL, got "${raw}"`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new ConfigError(`${name} must be an http(s) URL, got "${raw}"`);
  }
  if (url.search || url.hash || url.username || url.password) {
    throw new ConfigError(`${name} must not contain credentials, a query or a fragment`);
  }
  const prefix = url.pathname.replace(/\/+$/, '').replace(/\/v1$/, '');
  return { origin: url.origin, prefix };
}

/** `CORS_ORIGINS`: comma-separated origins such as `https://app.example.com`. */
export function parseOrigins(raw: string | undefined): string[] {
  const origins = (raw ?? '')
    .split(',')
    .map((o) => o.trim())
    .filter((o) => o !== '');
  for (const origin of origins) {
    let valid = false;
    try {
      valid = new URL(origin).origin === origin;
    } catch {
      valid = false;
    }
    if (!valid)
      throw new ConfigError(
        `CORS_ORIGINS must list origins like https://app.example.com (no path), got "${origin}"`,
      );
  }
  return origins;
}

const MODEL_ID = /^[\w.:@/-]{1,200}$/;

/** `FALLBACK_MODELS`: comma-separated model ids, in the order they are tried. */
export function parseModelList(raw: string | undefined, name = 'FALLBACK_MODELS'): string[] {
  const models = (raw ?? '')
    .split(',')
    .map((m) => m.trim())
    .filter((m) => m !== '');
  for (const [index, model] of models.entries()) {
    if (!MODEL_ID.test(model))
      throw new ConfigError(
        `${name} must list model ids separated by commas, got ${JSON.stringify(model.slice(0, 80))}`,
      );
    if (models.indexOf(model) !== index) throw new ConfigError(`${name} lists "${model}" twice`);
  }
  return models;
}

/** Admin keys from ADMIN_API_KEYS, kept only as a keyring (digests). */
function adminKeyring(env: Source): ClientKeyring | null {
  const entries = loadAdminKeys(env);
  return entries === null ? null : new ClientKeyring(entries);
}

/** Client keys from SERVICE_API_KEYS or SERVICE_API_KEYS_FILE, and the admin keys, kept only as a keyring (digests). */
function clientKeyring(env: Source, admins: ClientKeyring | null): ClientKeyring | null {
  const entries = loadClientKeys(env);
  if (entries === null) return admins;
  const clients = new ClientKeyring(entries);
  return admins === null ? clients : ClientKeyring.combine(clients, admins);
}

/**
 * `RESUMABLE_ANSWERS` (default: on, except with several workers and no REDIS_URL, where each worker
 * would hold its own answers and a resume landing on another worker would not find them). Asking for
 * it in that setup is a start-up error.
 */
function answerSettings(env: Source, workers: number, redisUrl: string | undefined): AnswerSettings {
  const shared = workers === 1 || redisUrl !== undefined;
  const asked = env.RESUMABLE_ANSWERS?.trim() ?? '';
  const enabled = asked === '' ? shared : flag(env, 'RESUMABLE_ANSWERS');
  if (enabled && !shared) {
    throw new ConfigError(
      `RESUMABLE_ANSWERS with ${workers} workers needs REDIS_URL: each worker would keep its own answers in memory, and a resume reaching another worker would not find them`,
    );
  }
  return {
    enabled,
    graceMs: positiveSeconds(env, 'RESUME_GRACE_SECONDS', 30),
    ttlMs: positiveSeconds(env, 'ANSWER_TTL_SECONDS', 600),
  };
}

/**
 * Builds the frozen configuration from the environment (which wins) over the `.env` file values:
 * every setting, client keys (reading SERVICE_API_KEYS_FILE) and limits included.
 * Throws ConfigError with a one-line message naming the offending setting.
 */
export function loadConfig(env: Source, flags: CliFlags = { mock: false }): Config {
  const key = env.ANTHROPIC_API_KEY?.trim() ?? '';
  if (!flags.mock && key === '') {
    throw new ConfigError(
      'ANTHROPIC_API_KEY is not set: put ANTHROPIC_API_KEY=<your key> in the environment or in a .env file at the project root (or run with --mock to try the service without a key)',
    );
  }
  const base = parseBaseUrl(env.ANTHROPIC_BASE_URL?.trim() || 'https://api.anthropic.com');
  const logLevel = (env.LOG_LEVEL?.trim() || 'info') as LogLevel;
  if (!LOG_LEVELS.includes(logLevel)) {
    throw new ConfigError(`LOG_LEVEL must be one of ${LOG_LEVELS.join(', ')}, got "${logLevel}"`);
  }
  const host = flags.host ?? (env.HOST?.trim() || '127.0.0.1');
  const portSource = flags.port === undefined ? env : { PORT: flags.port };
  const workersSource = flags.workers === undefined ? env : { '--workers': flags.workers };
  const adminKeys = adminKeyring(env);
  const workers = number(workersSource, flags.workers === undefined ? 'WORKERS' : '--workers', 1, {
    integer: true,
    min: 1,
    max: 256,
  });
  const limits = parseLimitSettings(env);
  return Object.freeze({
    anthropicApiKey: flags.mock ? 'mock-key' : key,
    upstreamOrigin: base.origin,
    upstreamPathPrefix: base.prefix,
    defaultModel: env.ANTHROPIC_MODEL?.trim() || 'claude-sonnet-5',
    defaultMaxTokens: number(env, 'ANTHROPIC_MAX_TOKENS', 1024, { integer: true, min: 1, max: 128000 }),
    host,
    port: number(portSource, 'PORT', 8000, { integer: true, min: 0, max: 65535 }),
    maxRetries: number(env, 'MAX_RETRIES', 2, { integer: true, min: 0, max: 10 }),
    connectTimeoutMs: positiveSeconds(env, 'UPSTREAM_CONNECT_TIMEOUT', 5),
    readTimeoutMs: positiveSeconds(env, 'UPSTREAM_READ_TIMEOUT', 60),
    keepAliveIntervalMs: positiveSeconds(env, 'SSE_KEEPALIVE_INTERVAL', 15),
    maxBodyBytes: number(env, 'MAX_BODY_BYTES', 1048576, { integer: true, min: 1 }),
    requestTimeoutMs: positiveSeconds(env, 'REQUEST_TIMEOUT', 30),
    keepAliveTimeoutMs: positiveSeconds(env, 'KEEP_ALIVE_TIMEOUT', 72),
    maxConnections: number(env, 'MAX_CONNECTIONS', 2048, { integer: true, min: 0 }),
    logLevel,
    mock: flags.mock,
    corsOrigins: parseOrigins(env.CORS_ORIGINS),
    fallbackModels: parseModelList(env.FALLBACK_MODELS),
    metricsRequireKey: flag(env, 'METRICS_REQUIRE_KEY'),
    workers,
    clientKeys: clientKeyring(env, adminKeys),
    adminKeys,
    usageRetentionHours: 24 * number(env, 'USAGE_RETENTION_DAYS', 35, { integer: true, min: 1, max: 3660 }),
    clientKeysFile: env.SERVICE_API_KEYS_FILE?.trim() || undefined,
    limits,
    prices: loadPriceTable(env.MODEL_PRICES_FILE?.trim() || undefined),
    ledger: parseLedgerSettings(env),
    answers: answerSettings(env, workers, limits.redisUrl),
    allowUnauthenticated: flag(env, 'ALLOW_UNAUTHENTICATED'),
  });
}
