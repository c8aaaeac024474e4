import { ConfigError } from '../config.ts';
import { ClientKeyring, loadClientKeys, type ClientKeyEntry } from './client-keys.ts';
import { createGuard, type Guard, type GuardLogger } from './guard.ts';
import type { LimitStore } from './limit-store.ts';
import { hasAnyLimit, parseLimitSettings, type LimitSettings } from './limits.ts';
import { MemoryLimitStore } from './memory-store.ts';
import { RedisLimitStore } from './redis-store.ts';
import { createUpstreamGate } from './upstream-gate.ts';

type Source = Readonly<Record<string, string | undefined>>;

export interface GuardSetup {
  /** Undefined when there is nothing to guard (no keys, no limits): zero cost on the request path. */
  guard: Guard | undefined;
  authenticated: boolean;
  /** Waits for Redis (when configured) up to `ms`; true when ready. */
  waitUntilReady(ms: number): Promise<boolean>;
  close(): Promise<void>;
}

const LOOPBACK = /^(127\.\d+\.\d+\.\d+|::1|localhost)$/;

/**
 * The safety default: a service reachable from other machines without client keys would let
 * anyone spend the owner's Anthropic credit. Throws a one-line ConfigError unless told explicitly.
 */
export function checkExposure(host: string, authenticated: boolean, env: Source): void {
  if (authenticated || LOOPBACK.test(host)) return;
  if (env.ALLOW_UNAUTHENTICATED?.trim().toLowerCase() === 'true') return;
  throw new ConfigError(
    `refusing to listen on ${host} without client keys: anyone who can reach it could spend your Anthropic credit. Set SERVICE_API_KEYS (or SERVICE_API_KEYS_FILE), or ALLOW_UNAUTHENTICATED=true if something in front authenticates`,
  );
}

/** Per-client limits or budgets are set (by default or for a key): they need a store. */
function hasClientLimits(entries: readonly ClientKeyEntry[] | null, limits: LimitSettings): boolean {
  return hasAnyLimit(limits.defaults) || (entries?.some((entry) => Object.keys(entry.limits).length > 0) ?? false);
}

/**
 * What the cluster primary checks before it forks N workers (each then builds its own guard): the
 * exposure check, and that per-client limits live in Redis, since a memory store per worker would
 * let through N × each limit. Client keys alone need no store; MAX_UPSTREAM_CONCURRENCY is per
 * process by design (N × the cap).
 */
export function checkClusterSetup(env: Source, host: string, workers: number): void {
  const entries = loadClientKeys(env);
  const limits = parseLimitSettings(env);
  checkExposure(host, entries !== null, env);
  if (workers > 1 && limits.redisUrl === undefined && hasClientLimits(entries, limits)) {
    throw new ConfigError(
      `${workers} workers with rate limits or budgets need REDIS_URL: each worker would keep its own counts in memory and let through ${workers} times each limit`,
    );
  }
}

/**
 * Builds the guard from the environment (client keys, limits, Redis); throws ConfigError on bad
 * settings. `now` is the clock the rate and token windows are read from (tests pin it inside a minute).
 */
export function setUpGuard(
  env: Source,
  logger: GuardLogger,
  onRedisError: (error: Error) => void,
  now: () => number = Date.now,
): GuardSetup {
  const entries = loadClientKeys(env);
  const limits = parseLimitSettings(env);
  const needed = entries !== null || hasClientLimits(entries, limits) || limits.maxUpstreamConcurrency > 0;
  if (!needed) {
    return { guard: undefined, authenticated: false, waitUntilReady: () => Promise.resolve(true), close: () => Promise.resolve() };
  }
  const redis = limits.redisUrl === undefined ? undefined : new RedisLimitStore({ url: limits.redisUrl });
  const store: LimitStore = redis ?? new MemoryLimitStore();
  const guard = createGuard({
    keyring: entries === null ? null : new ClientKeyring(entries),
    limits,
    store,
    gate: createUpstreamGate({ max: limits.maxUpstreamConcurrency }),
    logger,
    onRedisError,
    now,
  });
  return {
    guard,
    authenticated: entries !== null,
    waitUntilReady: (ms) => redis?.waitUntilReady(ms) ?? Promise.resolve(true),
    close: () => store.close(),
  };
}
