import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createServer, Socket, type AddressInfo, type Server } from 'node:net';
import pg from 'pg';

/** The shared development/CI PostgreSQL (TEST_DATABASE_URL overrides). Tests only touch their own schema. */
export const SHARED_DATABASE_URL = process.env.TEST_DATABASE_URL ?? 'postgres://root@127.0.0.1:5432/test';

export async function postgresReachable(url = SHARED_DATABASE_URL): Promise<boolean> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2_000 });
  client.on('error', () => undefined);
  try {
    await client.connect();
    await client.query('SELECT 1');
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** `url` whose connections use `schema` (first on their search_path). */
export function withSchema(url: string, schema: string): string {
  const parsed = new URL(url);
  parsed.searchParams.set('options', `-c search_path=${schema}`);
  return parsed.toString();
}

export interface TestSchema {
  readonly name: string;
  /** The shared database's URL, its connections in this schema. */
  readonly url: string;
  /** A query on a connection of its own, in this schema. */
  query<R extends pg.QueryResultRow = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<R[]>;
  /** Drops the schema and everything in it. */
  drop(): Promise<void>;
}

/** A fresh schema of its own in the shared database, for one test. */
export async function createTestSchema(): Promise<TestSchema> {
  const name = `llmc_test_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Pool({ connectionString: SHARED_DATABASE_URL, max: 1 });
  admin.on('error', () => undefined);
  await admin.query(`CREATE SCHEMA ${name}`);
  const url = withSchema(SHARED_DATABASE_URL, name);
  const pool = new pg.Pool({ connectionString: url, max: 2 });
  pool.on('error', () => undefined);
  return {
    name,
    url,
    async query<R extends pg.QueryResultRow>(sql: string, params: unknown[] = []) {
      return (await pool.query<R>(sql, params)).rows;
    },
    async drop() {
      await pool.end();
      await admin.query(`DROP SCHEMA ${name} CASCADE`);
      await admin.end();
    },
  };
}

export interface TcpProxy {
  readonly port: number;
  /** An outage: open connections are destroyed and new ones are closed as soon as they arrive. */
  cut(): void;
  /** The outage ends: new connections reach the target again. */
  restore(): void;
  close(): Promise<void>;
}

/** A TCP proxy on loopback to `targetPort`, to simulate a PostgreSQL outage without touching the server. */
export async function startTcpProxy(targetPort: number, targetHost = '127.0.0.1'): Promise<TcpProxy> {
  const sockets = new Set<Socket>();
  let down = false;
  const server: Server = createServer((client) => {
    if (down) {
      client.destroy();
      return;
    }
    const upstream = new Socket();
    sockets.add(client);
    sockets.add(upstream);
    const forget = (): void => {
      sockets.delete(client);
      sockets.delete(upstream);
      client.destroy();
      upstream.destroy();
    };
    client.on('error', forget).on('close', forget);
    upstream.on('error', forget).on('close', forget);
    upstream.connect(targetPort, targetHost);
    client.pipe(upstream);
    upstream.pipe(client);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const cut = (): void => {
    down = true;
    for (const socket of sockets) socket.destroy();
    sockets.clear();
  };
  return {
    port: (server.address() as AddressInfo).port,
    cut,
    restore() {
      down = false;
    },
    async close() {
      cut();
      server.close();
      await once(server, 'close');
    },
  };
}

/** A loopback port where nothing listens (taken, then released). */
export async function closedPort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  server.close();
  await once(server, 'close');
  return port;
}

/** `url` pointing at 127.0.0.1:`port` instead. */
export function atPort(url: string, port: number): string {
  const parsed = new URL(url);
  parsed.hostname = '127.0.0.1';
  parsed.port = String(port);
  return parsed.toString();
}
