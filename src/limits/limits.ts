import { ConfigError } from '../config-error.ts';
import { decimalUnits } from '../pricing/cost.ts';

/**
 * The limit model. Per client key: requests per minute, tokens (input + output + cache) per minute,
 * tokens per UTC day, concurrently open answers, and what the answers may cost per UTC day and per
 * calendar month (in nano-dollars, 1e-9 USD, so that the counters stay exact integers). 0 means no limit.
 */
export interface LimitValues {
  readonly rpm: number;
  readonly tpm: number;
  readonly daily: number;
  readonly streams: number;
  readonly usd_daily: number;
  readonly usd_monthly: number;
}

export const NANO_PER_USD = 1_000_000_000;
/** The largest dollar budget: its nano-dollars stay below 2^53 (exact in JavaScript and in Redis's Lua). */
export const MAX_BUDGET_USD = 9_000_000;

export type LimitName = keyof LimitValues;

/** Per-key overrides from the keys file; a missing field takes the default. */
export type LimitOverrides = { readonly [K in LimitName]?: number };

export type RedisErrorPolicy = 'open' | 'closed';

export interface LimitSettings {
  readonly defaults: LimitValues;
  /** Concurrent upstream requests per process; 0 = no cap. */
  readonly maxUpstreamConcurrency: number;
  readonly redisUrl: string | undefined;
  readonly redisErrorPolicy: RedisErrorPolicy;
  /** Longest wait for one Redis call before it counts as a Redis error. */
  readonly redisTimeoutMs: number;
}

/** The identity every request shares when no client keys are configured. */
export const ANONYMOUS = 'anonymous';

type Source = Readonly<Record<string, string | undefined>>;

/** A limit value: an integer >= 0 (0 = unlimited). Throws with `where` naming the setting. */
export function parseLimitValue(raw: string, where: string): number {
  const value = /^\d+$/.test(raw) ? Number(raw) : Number.NaN;
  if (!Number.isSafeInteger(value)) {
    throw new ConfigError(`${where} must be an integer >= 0 (0 = no limit), got "${raw}"`);
  }
  return value;
}

/** A budget in US dollars (`50`, `12.5`; at most 9 decimals), as nano-dollars (0 = no budget). */
export function parseUsdBudget(raw: string, where: string): number {
  const nano = decimalUnits(raw, 9);
  if (nano === null || nano > BigInt(MAX_BUDGET_USD) * BigInt(NANO_PER_USD))
    throw new ConfigError(
      `${where} must be an amount of US dollars from 0 to ${MAX_BUDGET_USD} (0 = no budget), e.g. 50 or 12.5, got "${raw}"`,
    );
  return Number(nano);
}

function budgetFromEnv(env: Source, name: string): number {
  const raw = env[name]?.trim();
  return raw === undefined || raw === '' ? 0 : parseUsdBudget(raw, name);
}

function limitFromEnv(env: Source, name: string): number {
  const raw = env[name]?.trim();
  return raw === undefined || raw === '' ? 0 : parseLimitValue(raw, name);
}

function redisUrl(env: Source): string | undefined {
  const raw = env.REDIS_URL?.trim();
  if (raw === undefined || raw === '') return undefined;
  let url: URL | undefined;
  try {
    url = new URL(raw);
  } catch {
    url = undefined;
  }
  // The value may hold a password: never echo it.
  if (url?.protocol !== 'redis:' && url?.protocol !== 'rediss:') {
    throw new ConfigError('REDIS_URL must be a redis:// or rediss:// URL (e.g. redis://127.0.0.1:6379)');
  }
  return raw;
}

function redisErrorPolicy(env: Source): RedisErrorPolicy {
  const raw = env.RATE_LIMIT_ON_REDIS_ERROR?.trim().toLowerCase() || 'open';
  if (raw !== 'open' && raw !== 'closed') {
    throw new ConfigError(`RATE_LIMIT_ON_REDIS_ERROR must be "open" or "closed", got "${raw}"`);
  }
  return raw;
}

function redisTimeoutMs(env: Source): number {
  const raw = env.REDIS_TIMEOUT_MS?.trim() || '200';
  const value = /^\d+$/.test(raw) ? Number(raw) : Number.NaN;
  if (!(value >= 1 && value <= 60_000)) {
    throw new ConfigError(`REDIS_TIMEOUT_MS must be an integer from 1 to 60000 (milliseconds), got "${raw}"`);
  }
  return value;
}

/** Reads the limit settings; throws ConfigError with a one-line message naming the variable. */
export function parseLimitSettings(env: Source): LimitSettings {
  return Object.freeze({
    defaults: Object.freeze({
      rpm: limitFromEnv(env, 'RATE_LIMIT_RPM'),
      tpm: limitFromEnv(env, 'RATE_LIMIT_TPM'),
      daily: limitFromEnv(env, 'TOKEN_BUDGET_DAILY'),
      streams: limitFromEnv(env, 'MAX_CONCURRENT_STREAMS'),
      usd_daily: budgetFromEnv(env, 'BUDGET_USD_DAILY'),
      usd_monthly: budgetFromEnv(env, 'BUDGET_USD_MONTHLY'),
    }),
    maxUpstreamConcurrency: limitFromEnv(env, 'MAX_UPSTREAM_CONCURRENCY'),
    redisUrl: redisUrl(env),
    redisErrorPolicy: redisErrorPolicy(env),
    redisTimeoutMs: redisTimeoutMs(env),
  });
}

/** The defaults with a key's overrides on top. */
export function resolveLimits(defaults: LimitValues, overrides: LimitOverrides): LimitValues {
  return {
    rpm: overrides.rpm ?? defaults.rpm,
    tpm: overrides.tpm ?? defaults.tpm,
    daily: overrides.daily ?? defaults.daily,
    streams: overrides.streams ?? defaults.streams,
    usd_daily: overrides.usd_daily ?? defaults.usd_daily,
    usd_monthly: overrides.usd_monthly ?? defaults.usd_monthly,
  };
}

export function hasAnyLimit(limits: LimitValues): boolean {
  return (
    limits.rpm > 0 ||
    limits.tpm > 0 ||
    limits.daily > 0 ||
    limits.streams > 0 ||
    limits.usd_daily > 0 ||
    limits.usd_monthly > 0
  );
}

/** A dollar budget applies: the request's worst-case cost must be known before it is admitted. */
export function hasUsdBudget(limits: LimitValues): boolean {
  return limits.usd_daily > 0 || limits.usd_monthly > 0;
}

/** Pico-dollars as the nano-dollars the budgets count, rounded up (a budget is never under-counted). */
export function picoToNano(pico: bigint): number {
  return pico <= 0n ? 0 : Number((pico + 999n) / 1000n);
}

/** Token usage as Anthropic reports it; every kind counts against the token limits. */
export interface TokenUsage {
  readonly input_tokens?: number | undefined;
  readonly output_tokens?: number | undefined;
  readonly cache_creation_input_tokens?: number | undefined;
  readonly cache_read_input_tokens?: number | undefined;
}

export function countTokens(usage: TokenUsage | undefined): number {
  if (usage === undefined) return 0;
  const parts = [
    usage.input_tokens,
    usage.output_tokens,
    usage.cache_creation_input_tokens,
    usage.cache_read_input_tokens,
  ];
  let total = 0;
  for (const part of parts)
    if (part !== undefined && Number.isFinite(part) && part > 0) total += Math.floor(part);
  return total;
}
