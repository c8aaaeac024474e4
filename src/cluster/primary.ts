import cluster, { type Worker } from 'node:cluster';
import type { Logger } from 'pino';
import { startFakeUpstream, type FakeUpstream } from '../mock/fake-upstream.ts';
import {
  DRAIN,
  MOCK_UPSTREAM_ENV,
  RELOAD_KEYS,
  type DrainMessage,
  type ReloadKeysMessage,
} from './messages.ts';
import { serveClusterMetrics } from './metrics-ipc.ts';

/**
 * `--workers N`: the primary forks N workers that share the port (node:cluster hands out the
 * connections), restarts a worker that dies (with a growing delay, never in a tight loop) and, on
 * SIGTERM or SIGINT, asks every worker to drain and exits 0 once all have; on SIGHUP, asks every
 * worker to re-read the keys file. It serves no requests.
 */
export interface PrimaryOptions {
  workers: number;
  host: string;
  logger: Logger;
  /** --mock: the simulated upstream runs once, here, and the workers are given its URL. */
  mock: boolean;
  /** How long workers may take to drain; they force-close their connections after it. */
  drainMs: number;
  /** How long workers may take after draining to write what they hold (the ledger's buffer); default 0. */
  flushMs?: number;
  /** SERVICE_API_KEYS_FILE, which SIGHUP makes every worker re-read; undefined: nothing to reload. */
  keysFile: string | undefined;
}

const FIRST_RESTART_DELAY_MS = 250;
const MAX_RESTART_DELAY_MS = 30_000;
/** A worker that ran this long before dying starts its slot's backoff over. */
const STABLE_UPTIME_MS = 30_000;
/** Past the drain time, workers still alive are killed. */
const DRAIN_GRACE_MS = 2_000;

/** Pure: the wait before restarting a worker; `crashesInARow` counts quick deaths (0 after a worker that ran a while). */
export function restartDelayMs(crashesInARow: number): number {
  return Math.min(FIRST_RESTART_DELAY_MS * 2 ** crashesInARow, MAX_RESTART_DELAY_MS);
}

/** One of the N places a worker runs in, kept across restarts. */
interface Slot {
  readonly index: number;
  worker: Worker | undefined;
  startedAt: number;
  listening: boolean;
  crashes: number;
}

class Supervisor {
  private readonly slots: Slot[];
  private readonly bySlot = new Map<Worker, Slot>();
  private readonly restarts = new Set<NodeJS.Timeout>();
  private ready = false;
  private stopping = false;
  private exitCode = 0;
  private readonly options: PrimaryOptions;
  private readonly env: Record<string, string>;
  private readonly mock: FakeUpstream | undefined;

  constructor(options: PrimaryOptions, mock: FakeUpstream | undefined) {
    this.options = options;
    this.mock = mock;
    this.env = mock ? { [MOCK_UPSTREAM_ENV]: mock.url } : {};
    this.slots = Array.from({ length: options.workers }, (_, index) => ({
      index,
      worker: undefined,
      startedAt: 0,
      listening: false,
      crashes: 0,
    }));
  }

  /** The workers that are up: listening, and still connected. */
  readyWorkers(): Worker[] {
    const ready: Worker[] = [];
    for (const slot of this.slots) if (slot.listening && slot.worker?.isConnected()) ready.push(slot.worker);
    return ready;
  }

  /** The first worker starts alone, so that a start-up error is reported once; then the others. */
  start(): void {
    cluster.on('listening', this.onListening);
    cluster.on('exit', this.onExit);
    const first = this.slots[0];
    if (first) this.fork(first);
  }

  private fork(slot: Slot): void {
    const worker = cluster.fork(this.env);
    slot.worker = worker;
    slot.startedAt = performance.now();
    slot.listening = false;
    this.bySlot.set(worker, slot);
  }

  private readonly onListening = (worker: Worker, address: { port: number }): void => {
    const slot = this.bySlot.get(worker);
    if (!slot || this.stopping) return;
    slot.listening = true;
    if (this.ready) {
      this.options.logger.info({ worker: slot.index, worker_pid: worker.process.pid }, 'worker restarted');
      return;
    }
    if (slot.index === 0) for (const other of this.slots.slice(1)) this.fork(other);
    if (this.slots.every((s) => s.listening)) {
      this.ready = true;
      const { host, workers, mock } = this.options;
      this.options.logger.info(
        { url: `http://${host}:${address.port}`, workers, mock },
        `listening with ${workers} workers`,
      );
    }
  };

  private readonly onExit = (worker: Worker, code: number | null, signal: string | null): void => {
    const slot = this.bySlot.get(worker);
    this.bySlot.delete(worker);
    if (!slot) return;
    slot.worker = undefined;
    if (this.stopping) {
      if (this.bySlot.size === 0) this.finish();
      return;
    }
    if (!this.ready) {
      this.failStartUp(code, signal);
      return;
    }
    const uptime = performance.now() - slot.startedAt;
    slot.crashes = uptime >= STABLE_UPTIME_MS ? 0 : slot.crashes + 1;
    const delay = restartDelayMs(slot.crashes);
    this.options.logger.error(
      { worker: slot.index, worker_pid: worker.process.pid, code, signal, restart_in_ms: delay },
      'worker died; restarting it',
    );
    const timer = setTimeout(() => {
      this.restarts.delete(timer);
      if (!this.stopping) this.fork(slot);
    }, delay);
    this.restarts.add(timer);
  };

  /** A worker that stops before the service is up: the same cause would stop every restart. */
  private failStartUp(code: number | null, signal: string | null): void {
    // Exit code 1 is the worker's own one-line start-up error, already on stderr.
    if (code !== 1)
      process.stderr.write(
        `error: a worker stopped during start-up (${signal ?? `exit code ${String(code)}`})\n`,
      );
    this.stopping = true;
    this.exitCode = 1;
    for (const worker of this.bySlot.keys()) worker.process.kill('SIGKILL');
    if (this.bySlot.size === 0) this.finish();
  }

  /** SIGTERM / SIGINT: no more restarts; every worker drains; exit 0 once all have gone. */
  readonly shutdown = (signal: string): void => {
    if (this.stopping) return;
    this.stopping = true;
    this.options.logger.info(
      { signal },
      `draining ${this.bySlot.size} workers: no new requests, open answers may finish for up to ${this.options.drainMs / 1000} s`,
    );
    for (const timer of this.restarts) clearTimeout(timer);
    this.restarts.clear();
    const drain: DrainMessage = { type: DRAIN };
    for (const worker of this.bySlot.keys()) {
      if (worker.isConnected()) worker.send(drain, () => undefined);
      else worker.process.kill('SIGTERM');
    }
    if (this.bySlot.size === 0) {
      this.finish();
      return;
    }
    setTimeout(
      () => {
        this.options.logger.warn(
          { workers: this.bySlot.size },
          'workers still running after the drain time: killing them',
        );
        for (const worker of this.bySlot.keys()) worker.process.kill('SIGKILL');
      },
      this.options.drainMs + (this.options.flushMs ?? 0) + DRAIN_GRACE_MS,
    ).unref();
  };

  /** SIGHUP: every worker re-reads the keys file and logs the outcome (a worker forked later reads it anyway). */
  readonly reloadKeys = (): void => {
    if (this.options.keysFile === undefined) {
      this.options.logger.warn('client keys not reloaded: no SERVICE_API_KEYS_FILE to reload');
      return;
    }
    const reload: ReloadKeysMessage = { type: RELOAD_KEYS };
    let asked = 0;
    for (const worker of this.bySlot.keys()) {
      if (!worker.isConnected()) continue;
      worker.send(reload, () => undefined);
      asked++;
    }
    this.options.logger.info(
      { file: this.options.keysFile, workers: asked },
      `SIGHUP: asking ${asked} workers to reload the client keys`,
    );
  };

  private finish(): void {
    void Promise.resolve(this.mock?.close()).finally(() => {
      this.options.logger.flush();
      process.exit(this.exitCode);
    });
  }
}

/** Runs the primary: the shared mock upstream if asked, the workers, metrics aggregation, the signals. */
export async function runPrimary(options: PrimaryOptions): Promise<void> {
  const mock = options.mock ? await startFakeUpstream({ simulated: true }) : undefined;
  const supervisor = new Supervisor(options, mock);
  serveClusterMetrics(() => supervisor.readyWorkers());
  // `on`, not `once`: a repeated signal (npm forwards the terminal's Ctrl-C again) is ignored, not fatal.
  process.on('SIGTERM', supervisor.shutdown);
  process.on('SIGINT', supervisor.shutdown);
  process.on('SIGHUP', supervisor.reloadKeys);
  supervisor.start();
}
