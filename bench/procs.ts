/**
 * Child processes of the benchmark: started pinned to a core, each in its own process group, and
 * always stopped (on success, error, Ctrl-C or exit). Also the /proc readers for CPU, RSS and fds.
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

export interface StartOptions {
  name: string;
  /**
   * Core(s) to pin the process (and every thread it starts) to, as taskset's list (`0`, `0,1`), or
   * undefined when taskset is missing.
   */
  core: number | string | undefined;
  command: string;
  args: readonly string[];
  cwd: string;
  env: Record<string, string | undefined>;
  /** Keep the last bytes of stdout too (e.g. to read a "ready" line). */
  captureStdout?: boolean;
}

export interface Child {
  readonly name: string;
  readonly pid: number;
  readonly proc: ChildProcess;
  /** The last few KiB the process wrote to stderr (and stdout when captured), for error messages. */
  output(): string;
  exited(): boolean;
}

const OUTPUT_KEEP = 4096;
const running = new Set<Child>();

export const hasTaskset = ((): boolean => {
  try {
    execFileSync('taskset', ['-p', String(process.pid)], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

/** Pins this process (all its current threads, hence later ones too) to one core. */
export function pinSelf(core: number): void {
  if (hasTaskset)
    execFileSync('taskset', ['-a', '-p', '-c', String(core), String(process.pid)], { stdio: 'ignore' });
}

/** The soft and hard limits on open files of this process. */
export function fileLimits(): { soft: number; hard: number } {
  const line = /^Max open files\s+(\S+)\s+(\S+)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
  const parse = (v: string | undefined): number =>
    v === undefined || v === 'unlimited' ? Infinity : Number(v);
  return { soft: parse(line?.[1]), hard: parse(line?.[2]) };
}

/** Starts a process through `sh` (to raise its fd limit to the hard limit) and `taskset` (to pin it). */
export function startChild(opts: StartOptions): Child {
  const pin = opts.core === undefined ? [] : ['taskset', '-c', String(opts.core)];
  const argv = [...pin, opts.command, ...opts.args];
  const proc = spawn('/bin/sh', ['-c', 'ulimit -n "$(ulimit -H -n)" 2>/dev/null; exec "$@"', 'sh', ...argv], {
    cwd: opts.cwd,
    env: opts.env,
    detached: true,
    stdio: ['ignore', opts.captureStdout === true ? 'pipe' : 'ignore', 'pipe'],
  });
  let tail = '';
  const keep = (chunk: Buffer): void => {
    tail = (tail + chunk.toString('utf8')).slice(-OUTPUT_KEEP);
  };
  proc.stderr?.on('data', keep);
  proc.stdout?.on('data', keep);
  if (proc.pid === undefined) throw new Error(`could not start ${opts.name} (${opts.command})`);
  const child: Child = {
    name: opts.name,
    pid: proc.pid,
    proc,
    output: () => tail,
    exited: () => proc.exitCode !== null || proc.signalCode !== null,
  };
  running.add(child);
  proc.once('exit', () => running.delete(child));
  return child;
}

function signalGroup(child: Child, signal: NodeJS.Signals): void {
  try {
    process.kill(-child.pid, signal);
  } catch {
    // The group is already gone.
  }
}

/** SIGTERM to the child's process group, SIGKILL after `graceMs`; resolves once it exited. */
export async function stopChild(child: Child, graceMs = 5000): Promise<void> {
  if (child.exited()) {
    signalGroup(child, 'SIGKILL');
    return;
  }
  const exit = new Promise<void>((resolve) => {
    child.proc.once('exit', () => {
      resolve();
    });
  });
  signalGroup(child, 'SIGTERM');
  const forced = await Promise.race([exit.then(() => false), sleep(graceMs).then(() => true)]);
  signalGroup(child, 'SIGKILL');
  if (forced) await Promise.race([exit, sleep(2000)]);
}

export async function stopAll(): Promise<void> {
  await Promise.all([...running].map((child) => stopChild(child)));
}

/** Last resort (process 'exit', signals): synchronous SIGKILL of every group still running. */
export function killAllNow(): void {
  for (const child of running) signalGroup(child, 'SIGKILL');
}

// ---------------------------------------------------------------------------------------------
// /proc readers (Linux)

export const CLOCK_TICKS = ((): number => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

interface StatFields {
  ppid: number;
  /** utime + stime of the process (all threads), in ticks. */
  own: number;
  /** cutime + cstime: children that were waited for, in ticks. */
  reaped: number;
}

function readStat(pid: number): StatFields | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  const f = text.slice(text.lastIndexOf(')') + 2).split(' ');
  const n = (i: number): number => Number(f[i] ?? 0);
  return { ppid: n(1), own: n(11) + n(12), reaped: n(13) + n(14) };
}

/** The pid and all its descendants (read from /proc/<pid>/task/<tid>/children). */
export function processTree(pid: number): number[] {
  const out: number[] = [];
  const todo = [pid];
  for (let guard = 0; todo.length > 0 && guard < 10_000; guard++) {
    const p = todo.pop() as number;
    out.push(p);
    let tasks: string[];
    try {
      tasks = readdirSync(`/proc/${p}/task`);
    } catch {
      continue;
    }
    for (const tid of tasks) {
      try {
        const kids = readFileSync(`/proc/${p}/task/${tid}/children`, 'utf8').trim();
        if (kids !== '') todo.push(...kids.split(' ').map(Number));
      } catch {
        // The thread ended meanwhile.
      }
    }
  }
  return out;
}

/**
 * Nanoseconds on a CPU of the process's live threads (the first field of each
 * `/proc/<pid>/task/<tid>/schedstat`), or undefined where the kernel does not keep them. The ticks
 * of `/proc/<pid>/stat` count in 10 ms steps: 500 short answers at c1 are some 15 ticks, so one tick
 * more or less was 7 % of a round's figure. A thread that ends takes its time with it: the services
 * measured here keep theirs for their whole life.
 */
function threadsCpuNs(pid: number): number | undefined {
  let tasks: string[];
  try {
    tasks = readdirSync(`/proc/${pid}/task`);
  } catch {
    return undefined;
  }
  let ns = 0;
  for (const tid of tasks) {
    try {
      ns += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
    } catch {
      // The thread ended meanwhile, or no schedstat: counted as nothing.
    }
  }
  return Number.isFinite(ns) ? ns : undefined;
}

/**
 * CPU milliseconds used so far by the process tree (reaped children included, in ticks): to the
 * nanosecond where the kernel keeps per-thread run times, else in clock ticks.
 */
export function treeCpuMs(pid: number): number {
  let ms = 0;
  for (const p of processTree(pid)) {
    const stat = readStat(p);
    if (!stat) continue;
    const ns = threadsCpuNs(p);
    ms += ns === undefined ? (stat.own * 1000) / CLOCK_TICKS : ns / 1e6;
    if (p === pid) ms += (stat.reaped * 1000) / CLOCK_TICKS;
  }
  return ms;
}

/** Resident set size of the process tree in MiB. */
export function treeRssMiB(pid: number): number {
  let kib = 0;
  for (const p of processTree(pid)) {
    try {
      const match = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${p}/status`, 'utf8'));
      kib += Number(match?.[1] ?? 0);
    } catch {
      // Gone.
    }
  }
  return kib / 1024;
}

/** Open file descriptors of the process tree. */
export function treeFds(pid: number): number {
  let n = 0;
  for (const p of processTree(pid)) {
    try {
      n += readdirSync(`/proc/${p}/fd`).length;
    } catch {
      // Gone.
    }
  }
  return n;
}

/** The CPU model name from /proc/cpuinfo. */
export function cpuModel(): string {
  try {
    return /^model name\s*:\s*(.*)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? 'unknown';
  } catch {
    return 'unknown';
  }
}
