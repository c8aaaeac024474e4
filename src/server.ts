import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { buildApp } from './app.ts';
import { ConfigError, loadConfig, parseArgs, readEnvFile, type Config } from './config.ts';
import { startFakeUpstream, type FakeUpstream } from './mock/fake-upstream.ts';
import { createUpstreamClient } from './upstream/anthropic-client.ts';

const DRAIN_MS = 10_000;
const projectRoot = resolve(fileURLToPath(import.meta.url), '../..');

function fail(message: string): never {
  process.stderr.write(`error: ${message}\n`);
  process.exit(1);
}

function configure(): Config {
  try {
    const flags = parseArgs(process.argv.slice(2));
    return loadConfig({ ...readEnvFile(resolve(projectRoot, '.env')), ...process.env }, flags);
  } catch (error) {
    if (error instanceof ConfigError) fail(error.message);
    throw error;
  }
}

async function main(): Promise<void> {
  let config = configure();
  let mock: FakeUpstream | undefined;
  if (config.mock) {
    mock = await startFakeUpstream({ simulated: true });
    config = Object.freeze({ ...config, upstreamOrigin: mock.url, upstreamPathPrefix: '' });
  }
  const logger = pino({ level: config.logLevel });
  const upstream = createUpstreamClient({
    origin: config.upstreamOrigin,
    pathPrefix: config.upstreamPathPrefix,
    apiKey: config.anthropicApiKey,
    maxRetries: config.maxRetries,
    connectTimeoutMs: config.connectTimeoutMs,
    readTimeoutMs: config.readTimeoutMs,
  });
  const app = await buildApp(config, { upstream, logger });
  try {
    await app.listen({ host: config.host, port: config.port });
  } catch (error) {
    const code = (error as { code?: string }).code;
    if (code === 'EADDRINUSE') fail(`port ${config.port} on ${config.host} is already in use (set PORT or --port)`);
    if (code === 'EADDRNOTAVAIL' || code === 'ENOTFOUND') fail(`cannot listen on HOST ${config.host}: no such local address`);
    if (code === 'EACCES') fail(`no permission to listen on port ${config.port} (set PORT or --port)`);
    throw error;
  }
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : config.port;
  logger.info(
    { url: `http://${config.host}:${port}`, mock: config.mock, upstream: config.mock ? 'simulated' : config.upstreamOrigin },
    config.mock ? 'listening (mock mode: answers come from a simulated Claude, no key used)' : 'listening',
  );

  let stopping = false;
  const shutdown = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'draining: no new requests, open answers may finish for up to 10 s');
    const force = setTimeout(() => {
      app.server.closeAllConnections();
    }, DRAIN_MS);
    force.unref();
    void app
      .close()
      .then(() => Promise.all([upstream.close(), mock?.close()]))
      .finally(() => {
        clearTimeout(force);
        logger.flush();
        process.exit(0);
      });
  };
  process.once('SIGTERM', shutdown);
  process.once('SIGINT', shutdown);
}

main().catch((error: unknown) => {
  fail(error instanceof Error ? error.message : String(error));
});
