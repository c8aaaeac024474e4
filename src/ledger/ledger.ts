import pg from 'pg';
import { Counter, Gauge, type Registry } from 'prom-client';
import type { Logger } from 'pino';
import type { RequestSubscriber } from '../http/request-events.ts';
import { RowBuffer } from './buffer.ts';
import { migrate } from './migrations.ts';
import { rowOf, type LedgerRow } from './row.ts';
import { redactPassword, redactUrl, type LedgerSettings } from './settings.ts';

/** Rows per INSERT; a buffer holding this many is written without waiting for the interval. */
export const BATCH_ROWS = 1000;
/** Retries after a failed write wait from this long, doubling, up to `MAX_BACKOFF_MS`. */
const MIN_BACKOFF_MS = 250;
const MAX_BACKOFF_MS = 30_000;
/** At most one warning per this long about failed writes, and one about dropped rows. */
const WARN_EVERY_MS = 30_000;
/** PostgreSQL calls that take longer fail (and are retried). */
const CONNECT_TIMEOUT_MS = 5_000;
const QUERY_TIMEOUT_MS = 15_000;

const COLUMNS = [
  ['id', 'uuid'],
  ['started_at', 'timestamptz'],
  ['request_id', 'text'],
  ['key_name', 'text'],
  ['route', 'text'],
  ['model_requested', 'text'],
  ['model', 'text'],
  ['status', 'smallint'],
  ['outcome', 'text'],
  ['error_type', 'text'],
  ['stop_reason', 'text'],
  ['input_tokens', 'integer'],
  ['output_tokens', 'integer'],
  ['cache_write_tokens', 'integer'],
  ['cache_read_tokens', 'integer'],
  ['cost_usd', 'numeric'],
  ['ttfb_ms', 'double precision'],
  ['duration_ms', 'double precision'],
  ['answer_mode', 'text'],
  ['attempts', 'smallint'],
  ['fallbacks', 'smallint'],
  ['upstream_status', 'smallint'],
] as const;

/** One statement for any batch size: each column is one array parameter, unnested into rows. */
const INSERT = `INSERT INTO llmc_ledger (${COLUMNS.map(([name]) => name).join(', ')})
  SELECT * FROM unnest(${COLUMNS.map(([, type], i) => `$${i + 1}::${type}[]`).join(', ')})
  ON CONFLICT (id) DO NOTHING`;

function columnsOf(rows: readonly LedgerRow[]): unknown[][] {
  const columns: unknown[][] = COLUMNS.map(() => new Array<unknown>(rows.length));
  rows.forEach((r, i) => {
    const values = [
      r.id,
      r.startedAt,
      r.requestId,
      r.keyName,
      r.route,
      r.modelRequested,
      r.model,
      r.status,
      r.outcome,
      r.errorType,
      r.stopReason,
      r.inputTokens,
      r.outputTokens,
      r.cacheWriteTokens,
      r.cacheReadTokens,
      r.costUsd,
      r.ttfbMs,
      r.durationMs,
      r.answerMode,
      r.attempts,
      r.fallbacks,
      r.upstreamStatus,
    ];
    values.forEach((value, c) => {
      (columns[c] as unknown[])[i] = value;
    });
  });
  return columns;
}

export interface LedgerMetrics {
  readonly written: Counter;
  readonly dropped: Counter;
  readonly writeErrors: Counter;
}

function ledgerMetrics(registry: Registry, buffered: () => number): LedgerMetrics {
  const registers = [registry];
  new Gauge({
    name: 'llmc_ledger_buffered_rows',
    help: 'Ledger rows waiting to be written to PostgreSQL (or being written)',
    registers,
    collect() {
      this.set(buffered());
    },
  });
  return {
    written: new Counter({
      name: 'llmc_ledger_rows_written_total',
      help: 'Ledger rows written to PostgreSQL',
      registers,
    }),
    dropped: new Counter({
      name: 'llmc_ledger_dropped_total',
      help: 'Ledger rows dropped unwritten: the oldest, when the buffer was full, or left when the drain time ran out',
      registers,
    }),
    writeErrors: new Counter({
      name: 'llmc_ledger_write_errors_total',
      help: 'Failed attempts to write ledger rows (or to migrate the table) to PostgreSQL; the rows are retried',
      registers,
    }),
  };
}

/**
 * The request ledger: a subscriber puts one row per answered request in a bounded buffer (never
 * touching PostgreSQL on the request path); a flusher writes the buffer in batches every interval, or
 * at once when a batch is full, retrying with backoff while PostgreSQL is unreachable. `close` writes
 * what is left, within the drain time.
 */
export class Ledger {
  readonly subscriber: RequestSubscriber;
  private readonly pool: pg.Pool;
  private readonly buffer: RowBuffer<LedgerRow>;
  private readonly metrics: LedgerMetrics;
  private migrated = false;
  private flushing: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private failures = 0;
  private closed = false;
  private lastFailureWarn = 0;
  private lastDropWarn = 0;
  private droppedSinceWarn = 0;

  private readonly settings: LedgerSettings;
  private readonly logger: Logger;

  constructor(settings: LedgerSettings, logger: Logger, registry: Registry) {
    this.settings = settings;
    this.logger = logger;
    this.pool = new pg.Pool({
      connectionString: settings.databaseUrl,
      max: 1,
      connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
      query_timeout: QUERY_TIMEOUT_MS,
      idleTimeoutMillis: 30_000,
      keepAlive: true,
      application_name: 'llm-connector',
    });
    // An idle connection that breaks (PostgreSQL restarted) is dropped by the pool; the next write reconnects.
    this.pool.on('error', () => undefined);
    this.buffer = new RowBuffer(settings.bufferRows, settings.bufferBytes, (count) => {
      this.dropped(count);
    });
    this.metrics = ledgerMetrics(registry, () => this.buffer.size);
    this.subscriber = {
      finished: (finished) => {
        if (this.closed) return;
        const row = rowOf(finished, Date.now());
        if (row === undefined) return;
        this.buffer.push(row);
        if (this.buffer.waiting >= BATCH_ROWS && this.failures === 0 && !this.flushing) {
          this.schedule(0);
        }
      },
    };
  }

  /** Rows waiting or being written. */
  get buffered(): number {
    return this.buffer.size;
  }

  /**
   * Migrates the table (waiting up to `waitMs` for PostgreSQL) and starts the flusher. Resolves false
   * when PostgreSQL could not be reached in time: rows then wait in the buffer and the flusher goes on
   * trying (migrating first).
   */
  async start(waitMs: number): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const ready = await Promise.race([
      this.ensureMigrated().then(
        () => true,
        (error: unknown) => {
          this.failed(error);
          return false;
        },
      ),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => {
          resolve(false);
        }, waitMs);
      }),
    ]);
    clearTimeout(timer);
    this.schedule(this.settings.flushIntervalMs);
    return ready;
  }

  /**
   * Stops taking rows and writes those left, for at most the drain time; what could not be written is
   * counted as dropped and logged. Resolves with the counts.
   */
  async close(): Promise<{ written: number; unwritten: number }> {
    this.closed = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    let written = 0;
    const deadline = Date.now() + this.settings.drainTimeoutMs;
    const drain = async (): Promise<void> => {
      await this.flushing?.catch(() => undefined);
      while (this.buffer.size > 0 && Date.now() < deadline) {
        const before = this.buffer.size;
        const ok = await this.flushOnce();
        if (ok) written += before - this.buffer.size;
        else await delay(Math.min(this.backoffMs(), Math.max(0, deadline - Date.now())));
      }
    };
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      drain(),
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, this.settings.drainTimeoutMs);
      }),
    ]);
    clearTimeout(timer);
    const unwritten = this.buffer.clear();
    if (unwritten > 0) {
      this.metrics.dropped.inc(unwritten);
      this.logger.error(
        { unwritten, drainTimeoutMs: this.settings.drainTimeoutMs },
        'ledger: rows could not be written to PostgreSQL before exit (LEDGER_DRAIN_TIMEOUT) and are lost',
      );
    } else if (written > 0) this.logger.info({ written }, 'ledger: buffer written before exit');
    // Not awaited when rows were left: a write may hang on an unreachable server.
    const ending = this.pool.end().catch(() => undefined);
    if (unwritten === 0) await ending;
    return { written, unwritten };
  }

  private schedule(ms: number): void {
    if (this.closed) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.tick();
    }, ms);
    this.timer.unref();
  }

  /** One round of the flusher: write batches while full ones wait, then wait for the interval (or the backoff). */
  private async tick(): Promise<void> {
    if (this.closed || this.flushing) return;
    let ok = await this.flushOnce();
    // `close` may have begun while a batch was written: it then writes the rest itself.
    while (ok && !this.isClosed() && this.buffer.waiting >= BATCH_ROWS) ok = await this.flushOnce();
    this.schedule(ok ? this.settings.flushIntervalMs : this.backoffMs());
  }

  private isClosed(): boolean {
    return this.closed;
  }

  private backoffMs(): number {
    const base = Math.min(MAX_BACKOFF_MS, MIN_BACKOFF_MS * 2 ** Math.min(this.failures - 1, 16));
    return Math.round(base * (0.75 + Math.random() * 0.5));
  }

  /** Writes one batch (migrating first if needed). True when it was written or there was nothing to write. */
  private flushOnce(): Promise<boolean> {
    if (this.buffer.waiting === 0) return Promise.resolve(true);
    const run = async (): Promise<boolean> => {
      try {
        await this.ensureMigrated();
      } catch (error) {
        this.failed(error);
        return false;
      }
      const batch = this.buffer.take(BATCH_ROWS);
      try {
        await this.pool.query(INSERT, columnsOf(batch));
      } catch (error) {
        this.buffer.putBack(batch);
        this.failed(error);
        return false;
      }
      this.buffer.written();
      this.metrics.written.inc(batch.length);
      if (this.failures > 0) {
        this.logger.info({ buffered: this.buffer.size }, 'ledger: PostgreSQL is reachable again');
        this.failures = 0;
      }
      return true;
    };
    const result = run();
    this.flushing = result.then(() => undefined);
    return result.finally(() => {
      this.flushing = undefined;
    });
  }

  private async ensureMigrated(): Promise<void> {
    if (this.migrated) return;
    const ran = await migrate(this.pool);
    this.migrated = true;
    if (ran.length > 0) this.logger.info({ versions: ran }, 'ledger: table migrated');
  }

  private failed(error: unknown): void {
    this.failures++;
    this.metrics.writeErrors.inc();
    const now = Date.now();
    if (this.failures > 1 && now - this.lastFailureWarn < WARN_EVERY_MS) return;
    this.lastFailureWarn = now;
    const message = error instanceof Error ? error.message : String(error);
    this.logger.warn(
      {
        err: redactPassword(message, this.settings.databaseUrl),
        database: redactUrl(this.settings.databaseUrl),
        buffered: this.buffer.size,
        failures: this.failures,
      },
      'ledger: cannot write to PostgreSQL; rows wait in the buffer and are retried',
    );
  }

  private dropped(count: number): void {
    this.metrics.dropped.inc(count);
    this.droppedSinceWarn += count;
    const now = Date.now();
    if (now - this.lastDropWarn < WARN_EVERY_MS) return;
    this.lastDropWarn = now;
    this.logger.warn(
      {
        dropped: this.droppedSinceWarn,
        bufferRows: this.settings.bufferRows,
        bufferBytes: this.settings.bufferBytes,
      },
      'ledger: buffer full, the oldest rows were dropped unwritten (llmc_ledger_dropped_total)',
    );
    this.droppedSinceWarn = 0;
  }
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
