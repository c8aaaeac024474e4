import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));

/**
 * Every setting that changes what a spawned service guards, blanked: an empty value in the
 * environment wins over a developer's `.env`, so each test states exactly what it sets.
 */
const BLANK_ENV: Record<string, string> = {
  ANTHROPIC_API_KEY: '',
  HOST: '',
  SERVICE_API_KEYS: '',
  SERVICE_API_KEYS_FILE: '',
  ALLOW_UNAUTHENTICATED: '',
  RATE_LIMIT_RPM: '',
  RATE_LIMIT_TPM: '',
  TOKEN_BUDGET_DAILY: '',
  MAX_CONCURRENT_STREAMS: '',
  BUDGET_USD_DAILY: '',
  BUDGET_USD_MONTHLY: '',
  MODEL_PRICES_FILE: '',
  MAX_UPSTREAM_CONCURRENCY: '',
  REDIS_URL: '',
  RATE_LIMIT_ON_REDIS_ERROR: '',
  CORS_ORIGINS: '',
  DATABASE_URL: '',
  RESUMABLE_ANSWERS: '',
  RESUME_GRACE_SECONDS: '',
  ANSWER_TTL_SECONDS: '',
};

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface ServiceProcess {
  readonly child: ChildProcess;
  /** `http://127.0.0.1:<port>` (a wildcard host is reached through loopback). */
  readonly url: string;
  readonly exit: Promise<Exit>;
  /** Everything written to stdout so far (the JSON log lines). */
  stdout(): string;
  /** The JSON log lines written so far, parsed. */
  logLines(): Record<string, unknown>[];
  /** SIGTERM, then waits for the exit. */
  stop(): Promise<Exit>;
}

/** Spawns `node dist/server.js` with only PATH and HOME from this environment, plus `env`. */
export function runService(
  env: Record<string, string>,
  args: readonly string[] = [],
): { child: ChildProcess; exit: Promise<Exit>; output: { stdout: string; stderr: string } } {
  const child = spawn(process.execPath, ['dist/server.js', ...args], {
    cwd: root,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...BLANK_ENV, PORT: '0', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const output = { stdout: '', stderr: '' };
  child.stdout.on('data', (c: Buffer) => (output.stdout += c.toString()));
  child.stderr.on('data', (c: Buffer) => (output.stderr += c.toString()));
  const exit = once(child, 'exit').then(([code, signal]) => ({
    code: code as number | null,
    signal: signal as NodeJS.Signals | null,
    stdout: output.stdout,
    stderr: output.stderr,
  }));
  return { child, exit, output };
}

/** Starts the service and resolves once it logs the URL it listens on (rejects if it exits first). */
export async function startService(
  env: Record<string, string>,
  args: readonly string[] = [],
): Promise<ServiceProcess> {
  const { child, exit, output } = runService(env, args);
  let giveUp: NodeJS.Timeout | undefined;
  const url = await new Promise<string>((resolve, reject) => {
    const look = (): void => {
      const match = /"url":"http:\/\/([^"/]+):(\d+)"/.exec(output.stdout);
      if (match?.[2] === undefined) return;
      child.stdout?.off('data', look);
      const host = match[1] === '0.0.0.0' || match[1] === '[::]' ? '127.0.0.1' : (match[1] ?? '127.0.0.1');
      resolve(`http://${host}:${match[2]}`);
    };
    child.stdout?.on('data', look);
    void exit.then((e) => {
      reject(new Error(`the service exited (${String(e.code)}) before listening: ${e.stderr}`));
    });
    // The URL is in the `listening` line, logged at info: LOG_LEVEL must not hide it.
    giveUp = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`the service did not log its URL within 30 s: ${output.stdout}${output.stderr}`));
    }, 30_000).unref();
  }).finally(() => {
    // Only for the start: a service that runs longer than 30 s must not be killed by it.
    clearTimeout(giveUp);
  });
  return {
    child,
    url,
    exit,
    stdout: () => output.stdout,
    logLines: () =>
      output.stdout
        .split('\n')
        .filter((line) => line.startsWith('{'))
        .map((line) => JSON.parse(line) as Record<string, unknown>),
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      return exit;
    },
  };
}
