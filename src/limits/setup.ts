import { ConfigError } from '../config.ts';
import { ClientKeyring, loadClientKeys } from './client-keys.ts';
import { createGuard, type Guard, type GuardLogger } from './guard.ts';
import type { LimitStore } from './limit-store.ts';
import { hasAnyLimit, parseLimitSettings } from './limits.ts';
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

/** Builds the guard from the environment (client keys, limits, Redis); throws ConfigError on bad settings. */
export function setUpGuard(env: Source, logger: GuardLogger, onRedisError: (error: Error) => void): GuardSetup {
  const entries = loadClientKeys(env);
  const limits = parseLimitSettings(env);
  const overrides = entries?.some((entry) => Object.keys(entry.limits).length > 0) ?? false;
  const needed = entries !== null || overrides || hasAnyLimit(limits.defaults) || limits.maxUpstreamConcurrency > 0;
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
  });
  return {
    guard,
    authenticated: entries !== null,
    waitUntilReady: (ms) => redis?.waitUntilReady(ms) ?? Promise.resolve(true),
    close: () => store.close(),
  };
}
