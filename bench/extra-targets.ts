/**
 * Connector targets with a feature switched on, started only when named in `--targets`, each a
 * variant of this checkout (see `Variant` in targets.ts):
 * - `connector-ledger`: the request ledger on (DATABASE_URL), in a PostgreSQL schema of its own,
 *   created before it starts and dropped at the end of the run; BENCH_DATABASE_URL names the database
 *   (default: the test one on loopback).
 * - `resumable`: every streamed /llm/query with `"resumable": true`, answers kept in memory.
 * - `resumable-redis`: the same, answers in the Redis at BENCH_REDIS_URL (default database 9 of the
 *   Redis on loopback), kept 60 s (ANSWER_TTL_SECONDS); the service's keys there (`llmc:`: the
 *   answers and the usage buckets) are deleted at the end of the run.
 */
import { Redis } from 'ioredis';
import pg from 'pg';
import { parseVariant, type Skipped, type Variant } from './targets.ts';

export const EXTRA_TARGETS = ['connector-ledger', 'resumable', 'resumable-redis'] as const;

const DATABASE_URL = process.env.BENCH_DATABASE_URL ?? 'postgres://root@127.0.0.1:5432/test';
const REDIS_URL = process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379/9';
const SCHEMA = `llmc_bench_${process.pid}`;
let schemaCreated = false;
let redisUsed = false;

async function sql(text: string): Promise<void> {
  const client = new pg.Client({ connectionString: DATABASE_URL, connectionTimeoutMillis: 3_000 });
  client.on('error', () => undefined);
  try {
    await client.connect();
    await client.query(text);
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** The variant for one of EXTRA_TARGETS, or why it cannot run. */
export async function extraTarget(name: (typeof EXTRA_TARGETS)[number]): Promise<Variant | Skipped> {
  if (name === 'resumable') return parseVariant('resumable=field:resumable=true');
  if (name === 'resumable-redis') {
    redisUsed = true;
    return parseVariant(
      `resumable-redis=field:resumable=true;env:REDIS_URL=${REDIS_URL};env:ANSWER_TTL_SECONDS=60`,
    );
  }
  try {
    await sql(`CREATE SCHEMA ${SCHEMA}`);
  } catch (error) {
    return {
      name,
      reason: `no PostgreSQL at BENCH_DATABASE_URL: ${error instanceof Error ? error.message : String(error)}`,
    };
  }
  schemaCreated = true;
  const url = `${DATABASE_URL}${DATABASE_URL.includes('?') ? '&' : '?'}options=-c%20search_path%3D${SCHEMA}`;
  return parseVariant(`connector-ledger=env:DATABASE_URL=${url}`);
}

async function deleteRedisKeys(): Promise<void> {
  const redis = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1 });
  redis.on('error', () => undefined);
  try {
    await redis.connect();
    for await (const keys of redis.scanStream({ match: 'llmc:*', count: 1000 }) as AsyncIterable<string[]>)
      if (keys.length > 0) await redis.unlink(...keys);
  } finally {
    redis.disconnect();
  }
}

/** Drops the ledger's schema and deletes the service's keys in the bench's Redis database, if this run used them. */
export async function dropExtraTargetData(): Promise<void> {
  if (redisUsed) {
    redisUsed = false;
    await deleteRedisKeys().catch(() => undefined);
  }
  if (!schemaCreated) return;
  schemaCreated = false;
  await sql(`DROP SCHEMA IF EXISTS ${SCHEMA} CASCADE`).catch(() => undefined);
}
