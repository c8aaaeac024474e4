import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { describe, it } from 'node:test';
import { Redis } from 'ioredis';

/** The shared development/CI Redis (TEST_REDIS_URL overrides). Tests only touch keys under their own prefix. */
export const SHARED_REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

export async function redisReachable(url = SHARED_REDIS_URL): Promise<boolean> {
  const client = new Redis(url, {
    lazyConnect: true,
    retryStrategy: () => null,
    connectTimeout: 1_000,
    maxRetriesPerRequest: 0,
  });
  client.on('error', () => undefined);
  try {
    await client.connect();
    await client.ping();
    return true;
  } catch {
    return false;
  } finally {
    client.disconnect();
  }
}

/**
 * `describe` for tests that need something (Redis, redis-server): runs them when `available`; else
 * fails loudly when CI is set, and skips with `why` elsewhere.
 */
export function describeIf(available: boolean, why: string, name: string, body: () => void): void {
  if (available) describe(name, body);
  else if (process.env.CI) {
    describe(name, () => {
      it('has what it needs', () => {
        assert.fail(`${why} (CI is set, so this fails instead of skipping)`);
      });
    });
  } else describe(name, { skip: `${why}; skipped (set CI to make this fail)` }, body);
}

/** A key prefix no other test run uses. */
export function uniquePrefix(): string {
  return `llmc-test:${randomUUID()}:`;
}

/** Deletes every key under `prefix`. */
export async function deleteKeys(url: string, prefix: string): Promise<void> {
  const client = new Redis(url, { maxRetriesPerRequest: 0 });
  try {
    let cursor = '0';
    do {
      const [next, keys] = await client.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length > 0) await client.del(...keys);
    } while (cursor !== '0');
  } finally {
    client.disconnect();
  }
}

export async function countKeys(url: string, prefix: string): Promise<number> {
  const client = new Redis(url, { maxRetriesPerRequest: 0 });
  try {
    return (await client.keys(`${prefix}*`)).length;
  } finally {
    client.disconnect();
  }
}

export function redisServerInstalled(): boolean {
  return spawnSync('redis-server', ['--version']).status === 0;
}

async function freePort(): Promise<number> {
  const server = createServer().listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  server.close();
  if (address === null || typeof address === 'string') throw new Error('no port');
  return address.port;
}

/** A private, throw-away redis-server on loopback, for outage tests (never the shared one). */
export class PrivateRedis {
  readonly port: number;
  #child: ChildProcess | undefined;

  private constructor(port: number) {
    this.port = port;
  }

  static async start(): Promise<PrivateRedis> {
    const redis = new PrivateRedis(await freePort());
    await redis.restart();
    return redis;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  /** Starts it (again, on the same port, empty) and waits until it answers. */
  async restart(): Promise<void> {
    const args = ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'];
    this.#child = spawn('redis-server', args, { stdio: 'ignore' });
    const deadline = Date.now() + 5_000;
    while (!(await redisReachable(this.url))) {
      if (Date.now() > deadline) throw new Error(`redis-server on port ${this.port} did not start`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  /** Kills it at once, like a crash. */
  async kill(): Promise<void> {
    const child = this.#child;
    if (child?.exitCode !== null || child.signalCode !== null) return;
    const exited = once(child, 'exit');
    child.kill('SIGKILL');
    await exited;
  }

  /** Freezes it: connections stay open, nothing answers. */
  pause(): void {
    this.#child?.kill('SIGSTOP');
  }

  resume(): void {
    this.#child?.kill('SIGCONT');
  }

  async stop(): Promise<void> {
    this.resume();
    await this.kill();
  }
}

/**
 * Deletes what services under the default `llmc:` prefix recorded in the usage reports for the key
 * `names` (fields `<count>:<name>:<model>` of the hourly hashes `llmc:usage:<hour>`), and nothing else.
 */
export async function deleteUsageOf(url: string, names: readonly string[]): Promise<void> {
  const client = new Redis(url, { maxRetriesPerRequest: 0 });
  try {
    let cursor = '0';
    do {
      const [next, keys] = await client.scan(cursor, 'MATCH', 'llmc:usage:*', 'COUNT', 1000);
      cursor = next;
      for (const key of keys) {
        const fields = (await client.hkeys(key)).filter((field) =>
          names.some((name) => field.split(':')[1] === name),
        );
        if (fields.length > 0) await client.hdel(key, ...fields);
      }
    } while (cursor !== '0');
  } finally {
    client.disconnect();
  }
}
