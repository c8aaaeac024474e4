import type { Pool } from 'pg';

/**
 * The ledger's schema, as numbered migrations applied in order and recorded in
 * `llmc_schema_migrations` (prefixed, so as not to meet another tool's `schema_migrations` in a shared
 * database). Tables go in the first schema of the connection's `search_path`. Never edit a migration
 * that has shipped: add the next one.
 */
export const MIGRATIONS: readonly { version: number; name: string; sql: string }[] = [
  {
    version: 1,
    name: 'create llmc_ledger',
    sql: `
      CREATE TABLE llmc_ledger (
        id uuid PRIMARY KEY,
        started_at timestamptz NOT NULL,
        request_id text NOT NULL,
        key_name text,
        route text NOT NULL,
        model_requested text,
        model text,
        status smallint NOT NULL,
        outcome text NOT NULL,
        error_type text,
        stop_reason text,
        input_tokens integer,
        output_tokens integer,
        cache_write_tokens integer,
        cache_read_tokens integer,
        cost_usd numeric(30, 12),
        ttfb_ms double precision,
        duration_ms double precision NOT NULL,
        answer_mode text NOT NULL,
        attempts smallint NOT NULL,
        fallbacks smallint NOT NULL,
        upstream_status smallint
      );
      CREATE INDEX llmc_ledger_started_at ON llmc_ledger (started_at);
      CREATE INDEX llmc_ledger_key_started_at ON llmc_ledger (key_name, started_at);
    `,
  },
];

/** The advisory lock's first key ("llmc" in ASCII); the second is the schema's hash. */
const LOCK_CLASS = 0x6c6c6d63;

/**
 * Brings the schema up to date. Safe when several replicas start at once: each takes a transaction-
 * scoped advisory lock on the schema first, so one migrates and the others then find it done.
 * Returns the versions it applied.
 */
export async function migrate(pool: Pool): Promise<number[]> {
  const client = await pool.connect();
  let failed = false;
  try {
    await client.query('BEGIN');
    const schema = await client.query<{ schema: string | null }>('SELECT current_schema() AS schema');
    if (!schema.rows[0]?.schema)
      throw new Error('the connection has no current schema: its search_path names no existing schema');
    await client.query('SELECT pg_advisory_xact_lock($1, hashtext(current_schema()))', [LOCK_CLASS]);
    await client.query(`
      CREATE TABLE IF NOT EXISTS llmc_schema_migrations (
        version integer PRIMARY KEY,
        name text NOT NULL,
        applied_at timestamptz NOT NULL DEFAULT now()
      )`);
    const done = await client.query<{ version: number }>('SELECT version FROM llmc_schema_migrations');
    const applied = new Set(done.rows.map((r) => r.version));
    const ran: number[] = [];
    for (const migration of MIGRATIONS) {
      if (applied.has(migration.version)) continue;
      await client.query(migration.sql);
      await client.query('INSERT INTO llmc_schema_migrations (version, name) VALUES ($1, $2)', [
        migration.version,
        migration.name,
      ]);
      ran.push(migration.version);
    }
    await client.query('COMMIT');
    return ran;
  } catch (error) {
    failed = true;
    await client.query('ROLLBACK').catch(() => undefined);
    throw error;
  } finally {
    client.release(failed);
  }
}
