import type { Config } from '../config.ts';
import { ConfigError } from '../config-error.ts';
import { ClientKeyring, readServiceApiKeysFile } from './client-keys.ts';
import { createGuard, type Guard, type GuardLogger, type ReloadableGuard } from './guard.ts';
import type { LimitStore } from './limit-store.ts';
import { hasAnyLimit, type LimitSettings } from './limits.ts';
import { MemoryLimitStore } from './memory-store.ts';
import { RedisLimitStore } from './redis-store.ts';
import { createUpstreamGate } from './upstream-gate.ts';

/** The settings the guard is built from, all parsed by `loadConfig`. */
export type GuardSettings = Pick<
  Config,
  'host' | 'workers' | 'allowUnauthenticated' | 'clientKeys' | 'clientKeysFile' | 'limits'
> &
  Partial<Pick<Config, 'adminKeys'>>;

/**
 * What a reload of the keys file did. Unless `ok`, the old keys stay in force; `file` is undefined
 * when there is no file to re-read (the keys come from SERVICE_API_KEYS, or there are none).
 */
export type KeysReload =
  | { readonly ok: true; readonly file: string; readonly keys: number }
  | { readonly ok: false; readonly file: string | undefined; readonly error: string };

export interface GuardSetup {
  /** Undefined when there is nothing to guard (no keys, no limits): zero cost on the request path. */
  guard: Guard | undefined;
  authenticated: boolean;
  /**
   * Re-reads SERVICE_API_KEYS_FILE and, only if the whole file is valid, swaps in the new keys and
   * their limits for the next request. Never throws.
   */
  reloadKeys(): KeysReload;
  /** Waits for Redis (when configured) up to `ms`; true when ready. */
  waitUntilReady(ms: number): Promise<boolean>;
  close(): Promise<void>;
}

const LOOPBACK = /^(127\.\d+\.\d+\.\d+|::1|localhost)$/;

/**
 * The safety default: a service reachable from other machines without client keys would let
 * anyone spend the owner's Anthropic credit. Throws a one-line ConfigError unless told explicitly.
 */
export function checkExposure(
  settings: Pick<GuardSettings, 'host' | 'clientKeys' | 'allowUnauthenticated'>,
): void {
  const { host, clientKeys, allowUnauthenticated } = settings;
  if (clientKeys !== null || LOOPBACK.test(host) || allowUnauthenticated) return;
  throw new ConfigError(
    `refusing to listen on ${host} without client keys: anyone who can reach it could spend your Anthropic credit. Set SERVICE_API_KEYS (or SERVICE_API_KEYS_FILE), or ALLOW_UNAUTHENTICATED=true if something in front authenticates`,
  );
}

/** Per-client limits or budgets are set (by default or for a key): they need a store. */
function hasClientLimits(keyring: ClientKeyring | null, limits: LimitSettings): boolean {
  return (
    hasAnyLimit(limits.defaults) ||
    (keyring?.clients.some((client) => Object.keys(client.limits).length > 0) ?? false)
  );
}

/** Several workers must not each count the limits in memory: that would let through N × each limit. */
function checkLimitsShared(settings: GuardSettings, keyring: ClientKeyring | null): void {
  const { workers, limits } = settings;
  if (workers > 1 && limits.redisUrl === undefined && hasClientLimits(keyring, limits)) {
    throw new ConfigError(
      `${workers} workers with rate limits or budgets need REDIS_URL: each worker would keep its own counts in memory and let through ${workers} times each limit`,
    );
  }
}

/**
 * What the cluster primary checks before it forks N workers (each then builds its own guard): the
 * exposure check, and that per-client limits live in Redis, since a memory store per worker would
 * let through N × each limit. Client keys alone need no store; MAX_UPSTREAM_CONCURRENCY is per
 * process by design (N × the cap).
 */
export function checkClusterSetup(settings: GuardSettings): void {
  checkExposure(settings);
  checkLimitsShared(settings, settings.clientKeys);
}

/** Reads the keys file into a new keyring, whole or not at all. */
function reloadFrom(settings: GuardSettings, guard: ReloadableGuard | undefined): KeysReload {
  const file = settings.clientKeysFile;
  if (file === undefined || guard === undefined) {
    const error =
      settings.clientKeys === null ? 'client keys are off' : 'the keys come from SERVICE_API_KEYS';
    return { ok: false, file: undefined, error: `no SERVICE_API_KEYS_FILE to reload (${error})` };
  }
  try {
    const fromFile = new ClientKeyring(readServiceApiKeysFile(file));
    // ADMIN_API_KEYS come from the environment: they stay, beside the file's keys.
    const admins = settings.adminKeys ?? null;
    const keyring = admins === null ? fromFile : ClientKeyring.combine(fromFile, admins);
    checkLimitsShared(settings, keyring);
    guard.replaceKeyring(keyring);
    return { ok: true, file, keys: keyring.clients.length };
  } catch (error) {
    return { ok: false, file, error: error instanceof Error ? error.message : String(error) };
  }
}

/**
 * Builds the guard from the parsed settings (client keys, limits, Redis), after the exposure check;
 * throws ConfigError when the service must not start with them. `now` is the clock the rate and token
 * windows are read from (tests pin it inside a minute).
 */
export function setUpGuard(
  settings: GuardSettings,
  logger: GuardLogger,
  onRedisError: (error: Error) => void,
  now: () => number = Date.now,
): GuardSetup {
  checkExposure(settings);
  const { clientKeys, limits } = settings;
  const needed =
    clientKeys !== null || hasClientLimits(clientKeys, limits) || limits.maxUpstreamConcurrency > 0;
  if (!needed) {
    return {
      guard: undefined,
      authenticated: false,
      reloadKeys: () => reloadFrom(settings, undefined),
      waitUntilReady: () => Promise.resolve(true),
      close: () => Promise.resolve(),
    };
  }
  const redis =
    limits.redisUrl === undefined
      ? undefined
      : new RedisLimitStore({ url: limits.redisUrl, commandTimeoutMs: limits.redisTimeoutMs });
  const store: LimitStore = redis ?? new MemoryLimitStore();
  const guard = createGuard({
    keyring: clientKeys,
    limits,
    store,
    gate: createUpstreamGate({ max: limits.maxUpstreamConcurrency }),
    logger,
    onRedisError,
    now,
  });
  return {
    guard,
    authenticated: clientKeys !== null,
    reloadKeys: () => reloadFrom(settings, guard),
    waitUntilReady: (ms) => redis?.waitUntilReady(ms) ?? Promise.resolve(true),
    close: () => store.close(),
  };
}

export interface ReloadLogger {
  info(details: object, message: string): void;
  warn(details: object, message: string): void;
  error(details: object, message: string): void;
}

/** The one log line of a reload: the count of keys (never a key), or why the old keys stay. */
export function logKeysReload(result: KeysReload, logger: ReloadLogger): void {
  if (result.ok) logger.info({ file: result.file, keys: result.keys }, 'client keys reloaded');
  else if (result.file === undefined) logger.warn({}, `client keys not reloaded: ${result.error}`);
  else logger.error({ file: result.file }, `client keys not reloaded, the old keys stay: ${result.error}`);
}
