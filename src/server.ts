import cluster from 'node:cluster';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pino, type Logger } from 'pino';
import { buildApp } from './app.ts';
import { setUpAnswerStore } from './answers/setup.ts';
import { MOCK_UPSTREAM_ENV, onDrainRequest, onReloadKeysRequest } from './cluster/messages.ts';
import { clusterMetricsSource } from './cluster/metrics-ipc.ts';
import { runPrimary } from './cluster/primary.ts';
import { ConfigError, loadConfig, parseArgs, readEnvFile, type Config } from './config.ts';
import { Ledger } from './ledger/ledger.ts';
import { checkClusterSetup, logKeysReload, setUpGuard, type GuardSetup } from './limits/setup.ts';
import { startFakeUpstream, type FakeUpstream } from './mock/fake-upstream.ts';
import { logDestination } from './observability/log-destination.ts';
import { createMetrics, type Metrics } from './observability/metrics.ts';
import { createUpstreamClient } from './upstream/anthropic-client.ts';

const DRAIN_MS = 10_000;
const REDIS_STARTUP_WAIT_MS = 2_000;
const POSTGRES_STARTUP_WAIT_MS = 2_000;
const projectRoot = resolve(fileURLToPath(import.meta.url), '../..');

type Env = Record<string, string | undefined>;

function fail(message: string): never {
  process.stderr.write(`error: ${message}\n`);
  process.exit(1);
}

/** Runs a start-up step; a ConfigError becomes one line on stderr and exit 1, never a stack trace. */
function orFail<T>(step: () => T): T {
  try {
    return step();
  } catch (error) {
    if (error instanceof ConfigError) fail(error.message);
    throw error;
  }
}

function configure(env: Env): Config {
  return orFail(() => loadConfig(env, parseArgs(process.argv.slice(2))));
}

function guardFor(config: Config, logger: Logger, metrics: Metrics): GuardSetup {
  const setup = orFail(() =>
    setUpGuard(config, logger, () => {
      metrics.redisErrors.inc();
    }),
  );
  // SIGHUP (or, in a worker, the primary passing it on) re-reads SERVICE_API_KEYS_FILE.
  const reload = (): void => {
    logKeysReload(setup.reloadKeys(), logger);
  };
  process.on('SIGHUP', reload);
  if (cluster.isWorker) onReloadKeysRequest(reload);
  return setup;
}

async function main(): Promise<void> {
  const env: Env = { ...readEnvFile(resolve(projectRoot, '.env')), ...process.env };
  let config = configure(env);
  // Log lines are written off the request path, in batches, and what waits when the process exits
  // is written then (see logDestination).
  const logOutput = logDestination(1);
  const logger = pino({ level: config.logLevel }, logOutput);
  if (config.workers > 1 && cluster.isPrimary) {
    orFail(() => {
      checkClusterSetup(config);
    });
    await runPrimary({
      workers: config.workers,
      host: config.host,
      logger,
      mock: config.mock,
      drainMs: DRAIN_MS,
      flushMs: config.ledger?.drainTimeoutMs ?? 0,
      keysFile: config.clientKeysFile,
    });
    return;
  }
  const metrics = createMetrics();
  logOutput.onDrop((lines) => {
    metrics.logLinesDropped.inc(lines);
  });
  const limits = guardFor(config, logger, metrics);
  let mock: FakeUpstream | undefined;
  if (config.mock) {
    // In a cluster the primary runs one simulated upstream for all workers.
    let url = cluster.isWorker ? env[MOCK_UPSTREAM_ENV] : undefined;
    if (url === undefined) {
      mock = await startFakeUpstream({ simulated: true });
      url = mock.url;
    }
    config = Object.freeze({ ...config, upstreamOrigin: url, upstreamPathPrefix: '' });
  }
  const answers = setUpAnswerStore(config, () => {
    metrics.redisErrors.inc();
  });
  const [limitsReady, answersReady] = await Promise.all([
    limits.waitUntilReady(REDIS_STARTUP_WAIT_MS),
    answers.waitUntilReady(REDIS_STARTUP_WAIT_MS),
  ]);
  if (!limitsReady) {
    logger.warn('Redis is not reachable yet: limits follow RATE_LIMIT_ON_REDIS_ERROR until it is');
  }
  const ledger = config.ledger ? new Ledger(config.ledger, logger, metrics.registry) : undefined;
  if (ledger && !(await ledger.start(POSTGRES_STARTUP_WAIT_MS))) {
    logger.warn('PostgreSQL is not reachable yet: ledger rows wait in the buffer until it is');
  }
  if (!answersReady) {
    logger.warn('Redis is not reachable yet: resumable and background answers get 503 until it is');
  }
  const upstream = createUpstreamClient(config);
  let draining = false;
  const scrapeMetrics = cluster.isWorker ? clusterMetricsSource(metrics.registry) : undefined;
  const app = await buildApp(config, {
    upstream,
    logger,
    metrics,
    scrapeMetrics,
    guard: limits.guard,
    ...(answers.store === undefined ? {} : { answerStore: answers.store }),
    isDraining: () => draining,
    subscribers: ledger ? [ledger.subscriber] : [],
    answerDrainMs: DRAIN_MS,
  });
  try {
    await app.listen({ host: config.host, port: config.port });
  } catch (error) {
    const code = (error as { code?: string }).code;
    if (code === 'EADDRINUSE')
      fail(`port ${config.port} on ${config.host} is already in use (set PORT or --port)`);
    if (code === 'EADDRNOTAVAIL' || code === 'ENOTFOUND')
      fail(`cannot listen on HOST ${config.host}: no such local address`);
    if (code === 'EACCES') fail(`no permission to listen on port ${config.port} (set PORT or --port)`);
    throw error;
  }
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : config.port;
  logger.info(
    {
      url: `http://${config.host}:${port}`,
      mock: config.mock,
      upstream: config.mock ? 'simulated' : config.upstreamOrigin,
      auth: limits.authenticated,
    },
    config.mock ? 'listening (mock mode: answers come from a simulated Claude, no key used)' : 'listening',
  );

  const shutdown = (signal: string): void => {
    if (draining) return;
    draining = true;
    logger.info({ signal }, 'draining: no new requests, open answers may finish for up to 10 s');
    // Resumable and background answers run on for the drain, then end `failed` (their followers told).
    const answers = app.answers?.drain(DRAIN_MS) ?? Promise.resolve();
    const force = setTimeout(() => {
      // The answers first, so that a client still following one gets its last event.
      void answers.finally(() => {
        app.server.closeAllConnections();
      });
    }, DRAIN_MS);
    force.unref();
    // Every request has finished once the app has closed and the answers have ended: the ledger
    // then writes what is left.
    void Promise.all([app.close(), answers])
      .then(() => Promise.all([upstream.close(), mock?.close(), limits.close(), ledger?.close()]))
      .finally(() => {
        clearTimeout(force);
        logger.flush();
        process.exit(0);
      });
  };
  // `on`, not `once`: a repeated signal must not fall back to Node's default (exit at once). Ctrl-C
  // under `npm start` delivers SIGINT twice, from the terminal and forwarded by npm.
  process.on('SIGTERM', shutdown);
  process.on('SIGINT', shutdown);
  if (cluster.isWorker) {
    onDrainRequest(() => {
      shutdown('drain (from the primary)');
    });
  }
}

main().catch((error: unknown) => {
  fail(error instanceof Error ? error.message : String(error));
});
