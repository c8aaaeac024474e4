import type { Redis } from 'ioredis';
import type { RequestFinished } from '../http/request-record.ts';
import { ANONYMOUS } from '../limits/limits.ts';
import { costByKind, tokenCount, type PriceTable } from '../pricing/cost.ts';
import { connectRedis, redisReady } from '../limits/redis-client.ts';

export const HOUR_MS = 3_600_000;

/** What the answers of one key on one model added up to in one hour. */
export interface UsageCounts {
  /** Answers that reported usage. */
  requests: number;
  /** `input_tokens`: input neither written to nor read from the cache. */
  uncachedInput: number;
  /** Cache writes whose duration the usage gave (`cache_creation.ephemeral_5m/1h_input_tokens`)… */
  cacheWrite5m: number;
  cacheWrite1h: number;
  /** …and those it did not (priced, and reported, as 5-minute writes). */
  cacheWriteUnsplit: number;
  cacheRead: number;
  output: number;
  /** Tokens of answers whose cost is unknown (a model without a price). */
  unpricedTokens: number;
  /** Integer pico-dollars (1e-12 USD) of the priced answers… */
  costPicoUsd: bigint;
  /** …and the part of it each kind of token cost (for the cost report's `description` rows). */
  costInput: bigint;
  costCacheWrite5m: bigint;
  costCacheWrite1h: bigint;
  costCacheRead: bigint;
  costOutput: bigint;
}

/** The counts that are pico-dollars (bigint). */
export const COST_FIELDS = [
  'costPicoUsd',
  'costInput',
  'costCacheWrite5m',
  'costCacheWrite1h',
  'costCacheRead',
  'costOutput',
] as const;
type CostField = (typeof COST_FIELDS)[number];
const isCost = (field: keyof UsageCounts): field is CostField =>
  (COST_FIELDS as readonly string[]).includes(field);

/** One hour × client × model. */
export interface UsageRow extends UsageCounts {
  /** Start of the UTC hour, epoch ms. */
  readonly hourMs: number;
  /** The client key's name, or `anonymous`. */
  readonly key: string;
  readonly model: string;
}

export interface UsageStore {
  /** Adds one answer's counts to the current hour. Never throws, never waits: it runs off the response path. */
  record(key: string, model: string, counts: UsageCounts): void;
  /** The rows of the hours from `fromMs` (inclusive) to `toMs` (exclusive) that are still kept. */
  read(fromMs: number, toMs: number): Promise<UsageRow[]>;
  close(): Promise<void>;
}

export function emptyCounts(): UsageCounts {
  return {
    requests: 0,
    uncachedInput: 0,
    cacheWrite5m: 0,
    cacheWrite1h: 0,
    cacheWriteUnsplit: 0,
    cacheRead: 0,
    output: 0,
    unpricedTokens: 0,
    costPicoUsd: 0n,
    costInput: 0n,
    costCacheWrite5m: 0n,
    costCacheWrite1h: 0n,
    costCacheRead: 0n,
    costOutput: 0n,
  };
}

export function addCounts(into: UsageCounts, add: UsageCounts): void {
  into.requests += add.requests;
  into.uncachedInput += add.uncachedInput;
  into.cacheWrite5m += add.cacheWrite5m;
  into.cacheWrite1h += add.cacheWrite1h;
  into.cacheWriteUnsplit += add.cacheWriteUnsplit;
  into.cacheRead += add.cacheRead;
  into.output += add.output;
  into.unpricedTokens += add.unpricedTokens;
  for (const field of COST_FIELDS) into[field] += add[field];
}

/**
 * What one finished request adds to the usage, or undefined when no answer began (no usage). Pure.
 * A cost of null (a model without a price), or none at all while usage is known, counts every token
 * of the answer as unpriced.
 */
export function usageOf(
  finished: Pick<RequestFinished, 'usage' | 'costPicoUsd'> & { readonly model?: string | undefined },
  prices?: PriceTable,
): UsageCounts | undefined {
  const { usage } = finished;
  if (usage === undefined) return undefined;
  const written = tokenCount(usage.cache_creation_input_tokens);
  const split = (usage as { cache_creation?: unknown }).cache_creation;
  let cacheWrite5m = 0;
  let cacheWrite1h = 0;
  if (typeof split === 'object' && split !== null) {
    const given = split as { ephemeral_5m_input_tokens?: unknown; ephemeral_1h_input_tokens?: unknown };
    cacheWrite1h = Math.min(written, tokenCount(given.ephemeral_1h_input_tokens));
    cacheWrite5m = Math.min(written - cacheWrite1h, tokenCount(given.ephemeral_5m_input_tokens));
  }
  const counts: UsageCounts = {
    ...emptyCounts(),
    requests: 1,
    uncachedInput: tokenCount(usage.input_tokens),
    cacheWrite5m,
    cacheWrite1h,
    cacheWriteUnsplit: written - cacheWrite5m - cacheWrite1h,
    cacheRead: tokenCount(usage.cache_read_input_tokens),
    output: tokenCount(usage.output_tokens),
  };
  const cost = finished.costPicoUsd;
  if (typeof cost === 'bigint') {
    counts.costPicoUsd = cost;
    const price = finished.model === undefined ? undefined : prices?.get(finished.model);
    if (price !== undefined) {
      // The parts of the answer's cost (`costOf` is their sum).
      const parts = costByKind(price, usage);
      counts.costInput = parts.input;
      counts.costCacheWrite5m = parts.cacheWrite5m;
      counts.costCacheWrite1h = parts.cacheWrite1h;
      counts.costCacheRead = parts.cacheRead;
      counts.costOutput = parts.output;
    }
  } else counts.unpricedTokens = counts.uncachedInput + written + counts.cacheRead + counts.output;
  return counts;
}

/** The request subscriber that adds every finished answer to the store (after the response has closed). */
export function usageRecorder(store: UsageStore, prices?: PriceTable) {
  return {
    finished(finished: RequestFinished): void {
      if (finished.model === undefined) return;
      const counts = usageOf(finished, prices);
      if (counts === undefined) return;
      store.record(finished.key ?? ANONYMOUS, finished.model, counts);
    },
  };
}

export function hourOf(ms: number): number {
  return Math.floor(ms / HOUR_MS) * HOUR_MS;
}

export interface UsageStoreOptions {
  /** Hours kept, the current one included (USAGE_RETENTION_DAYS × 24). */
  retentionHours: number;
  now?: () => number;
}

/** Rows kept per hour in memory; past it, an hour's new (key, model) pairs are added up under OTHER_MODEL. */
export const MAX_ROWS_PER_HOUR = 10_000;
export const OTHER_MODEL = '(other)';

/** Usage in this process's memory: one process's answers, gone on restart. */
export class MemoryUsageStore implements UsageStore {
  readonly #hours = new Map<number, Map<string, UsageRow>>();
  readonly #retentionHours: number;
  readonly #now: () => number;

  constructor(options: UsageStoreOptions) {
    this.#retentionHours = options.retentionHours;
    this.#now = options.now ?? Date.now;
  }

  /** The first hour still kept; older hours are dropped. */
  #prune(): number {
    const oldest = hourOf(this.#now()) - (this.#retentionHours - 1) * HOUR_MS;
    for (const hour of this.#hours.keys()) if (hour < oldest) this.#hours.delete(hour);
    return oldest;
  }

  record(key: string, model: string, counts: UsageCounts): void {
    const hourMs = hourOf(this.#now());
    let rows = this.#hours.get(hourMs);
    if (rows === undefined) {
      this.#prune();
      rows = new Map();
      this.#hours.set(hourMs, rows);
    }
    let id = `${key}\n${model}`;
    let row = rows.get(id);
    if (row === undefined && rows.size >= MAX_ROWS_PER_HOUR) {
      id = `${key}\n${OTHER_MODEL}`;
      row = rows.get(id);
      model = OTHER_MODEL;
    }
    if (row === undefined) {
      row = { hourMs, key, model, ...emptyCounts() };
      rows.set(id, row);
    }
    addCounts(row, counts);
  }

  read(fromMs: number, toMs: number): Promise<UsageRow[]> {
    const oldest = this.#prune();
    const rows: UsageRow[] = [];
    for (const [hour, hourRows] of this.#hours) {
      if (hour < Math.max(fromMs, oldest) || hour >= toMs) continue;
      for (const row of hourRows.values()) rows.push({ ...row });
    }
    return Promise.resolve(rows);
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}

/** The hash fields, one per count: `<code>:<key>:<model>` (key names hold no `:`). */
const CODES = {
  requests: 'r',
  uncachedInput: 'in',
  cacheWrite5m: 'c5',
  cacheWrite1h: 'c1',
  cacheWriteUnsplit: 'cw',
  cacheRead: 'cr',
  output: 'out',
  unpricedTokens: 'up',
  costPicoUsd: 'usd',
  costInput: 'usd.in',
  costCacheWrite5m: 'usd.c5',
  costCacheWrite1h: 'usd.c1',
  costCacheRead: 'usd.cr',
  costOutput: 'usd.out',
} as const satisfies Record<keyof UsageCounts, string>;
const FIELDS = Object.fromEntries(Object.entries(CODES).map(([field, code]) => [code, field])) as Record<
  string,
  keyof UsageCounts
>;

export interface RedisUsageStoreOptions extends UsageStoreOptions {
  url: string;
  /** Namespace of every key; default `llmc:`. */
  prefix?: string;
  /** A record that could not be written (it is lost), or a connection error. */
  onError?: (error: Error) => void;
  /** Answers are added up in memory and written this often (and before a read); default 1 s. */
  flushIntervalMs?: number;
}

/** Rows (hour × key × model) that wait to be written (Redis unreachable); past it, answers are dropped and counted. */
export const MAX_PENDING_ROWS = 10_000;

/**
 * Usage in Redis, one report across replicas: a hash per UTC hour (`<prefix>usage:<hour>`), expiring
 * `retentionHours` after its hour ends. Answers are added up in memory per hour, key and model and
 * written once a second (one transaction per row), not one Redis write per answer: a short answer
 * would otherwise pay a Redis round trip's CPU for its usage alone. Another replica's report lags by
 * at most that second; a crash loses at most that second of usage (the ledger keeps every answer).
 */
export class RedisUsageStore implements UsageStore {
  readonly #redis: Redis;
  readonly #prefix: string;
  readonly #retentionHours: number;
  readonly #now: () => number;
  readonly #onError: (error: Error) => void;
  readonly #pending = new Map<string, UsageRow>();
  readonly #flushTimer: NodeJS.Timeout;
  #dropped = 0;

  constructor(options: RedisUsageStoreOptions) {
    this.#prefix = `${options.prefix ?? 'llmc:'}usage:`;
    this.#retentionHours = options.retentionHours;
    this.#now = options.now ?? Date.now;
    this.#onError = options.onError ?? (() => undefined);
    this.#redis = connectRedis(options.url, 'llm-connector-usage', { commandTimeout: 2_000 });
    this.#redis.on('error', (error: Error) => {
      this.#onError(error);
    });
    // Back after an outage: what waited is written now.
    this.#redis.on('ready', () => {
      this.#flush();
    });
    this.#flushTimer = setInterval(() => {
      this.#flush();
    }, options.flushIntervalMs ?? 1_000).unref();
  }

  #key(hourMs: number): string {
    return `${this.#prefix}${new Date(hourMs).toISOString().slice(0, 13)}`;
  }

  /** Waits for the connection up to `ms`; true when ready. */
  waitUntilReady(ms: number): Promise<boolean> {
    return redisReady(this.#redis, ms);
  }

  healthy(): boolean {
    return this.#redis.status === 'ready';
  }

  /** Answers that could not be counted: Redis lost a write's reply, or the waiting buffer was full. */
  get dropped(): number {
    return this.#dropped;
  }

  record(key: string, model: string, counts: UsageCounts): void {
    this.#keep(hourOf(this.#now()), key, model, counts);
  }

  #write(hourMs: number, key: string, model: string, counts: UsageCounts): void {
    const hash = this.#key(hourMs);
    // One transaction: a write is applied whole or not at all.
    const write = this.#redis.multi();
    for (const [field, code] of Object.entries(CODES) as [keyof UsageCounts, string][]) {
      const value = counts[field];
      if (value === 0 || value === 0n) continue;
      write.hincrby(hash, `${code}:${key}:${model}`, value.toString());
    }
    write.pexpireat(hash, hourMs + (this.#retentionHours + 1) * HOUR_MS);
    write.exec().then(
      (results) => {
        const failed = results?.find(([error]) => error !== null)?.[0];
        if (failed) this.#drop(failed);
      },
      (error: unknown) => {
        // Sent, but no answer: it may have been applied, so it is not written again (never counted twice).
        this.#drop(error instanceof Error ? error : new Error(String(error)));
      },
    );
  }

  /** Answers wait here (added up per hour, key and model) for the next write, or for Redis's return. */
  #keep(hourMs: number, key: string, model: string, counts: UsageCounts): void {
    const id = `${hourMs}\n${key}\n${model}`;
    let row = this.#pending.get(id);
    if (row === undefined) {
      if (this.#pending.size >= MAX_PENDING_ROWS) {
        this.#drop(new Error('usage not written: Redis is unreachable and the waiting buffer is full'));
        return;
      }
      row = { hourMs, key, model, ...emptyCounts() };
      this.#pending.set(id, row);
    }
    addCounts(row, counts);
  }

  #flush(): void {
    if (this.#pending.size === 0 || this.#redis.status !== 'ready') return;
    const rows = [...this.#pending.values()];
    this.#pending.clear();
    for (const row of rows) this.#write(row.hourMs, row.key, row.model, row);
  }

  #drop(error: Error): void {
    this.#dropped++;
    this.#onError(error);
  }

  async read(fromMs: number, toMs: number): Promise<UsageRow[]> {
    const oldest = hourOf(this.#now()) - (this.#retentionHours - 1) * HOUR_MS;
    const hours: number[] = [];
    for (let hour = hourOf(Math.max(fromMs, oldest)); hour < toMs; hour += HOUR_MS)
      if (hour >= fromMs) hours.push(hour);
    if (hours.length === 0) return [];
    // This process's own answers first: the read, on the same connection, comes after their writes.
    this.#flush();
    const pipeline = this.#redis.pipeline();
    for (const hour of hours) pipeline.hgetall(this.#key(hour));
    const results = (await pipeline.exec()) ?? [];
    const rows: UsageRow[] = [];
    results.forEach(([error, value], index) => {
      if (error) throw error;
      const hourMs = hours[index] as number;
      const byClient = new Map<string, UsageRow>();
      for (const [name, raw] of Object.entries(value as Record<string, string>)) {
        const first = name.indexOf(':');
        const second = name.indexOf(':', first + 1);
        const field = FIELDS[name.slice(0, first)];
        if (first === -1 || second === -1 || field === undefined) continue;
        const key = name.slice(first + 1, second);
        const model = name.slice(second + 1);
        const id = `${key}\n${model}`;
        let row = byClient.get(id);
        if (row === undefined) {
          row = { hourMs, key, model, ...emptyCounts() };
          byClient.set(id, row);
        }
        if (isCost(field)) row[field] = BigInt(raw);
        else row[field] = Number(raw);
      }
      rows.push(...byClient.values());
    });
    return rows;
  }

  /** Writes what waits (if Redis is there), then closes once every write has its answer. */
  async close(): Promise<void> {
    clearInterval(this.#flushTimer);
    this.#flush();
    for (let i = 0; i < this.#pending.size; i++)
      this.#drop(new Error('usage not written: Redis was unreachable until shutdown'));
    this.#pending.clear();
    await this.#redis.quit().catch(() => {
      this.#redis.disconnect();
    });
  }
}

/** The store the settings ask for: Redis with REDIS_URL (one report across replicas), else this process's memory. */
export function createUsageStore(
  settings: { usageRetentionHours: number; limits: { redisUrl: string | undefined } },
  onError?: (error: Error) => void,
): UsageStore {
  const retentionHours = settings.usageRetentionHours;
  const url = settings.limits.redisUrl;
  return url === undefined
    ? new MemoryUsageStore({ retentionHours })
    : new RedisUsageStore({ url, retentionHours, ...(onError ? { onError } : {}) });
}
