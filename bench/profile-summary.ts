/**
 * Summarises a V8 `.cpuprofile` (from `node --cpu-prof`): top functions by self time, and self
 * time per package (node_modules/<pkg>, node: internals, the service's own files, GC, idle).
 *
 * Run: node --import tsx bench/profile-summary.ts <file.cpuprofile> [top]
 */
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
}

interface Profile {
  nodes: ProfileNode[];
  samples?: number[];
  timeDeltas?: number[];
  startTime: number;
  endTime: number;
}

function area(url: string, fn: string): string {
  if (url === '') return fn.startsWith('(') ? fn : '(native/V8)';
  if (url.startsWith('node:')) return 'node: internals';
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (pkg?.[1] !== undefined) return pkg[1];
  const local = /\/(dist|src|bench)\/(.*)$/.exec(url);
  return local ? `${local[1] ?? ''}/${local[2] ?? ''}` : url;
}

/** Self milliseconds per node id, from the samples and their time deltas. */
function selfTimes(p: Profile): Map<number, number> {
  const self = new Map<number, number>();
  const samples = p.samples ?? [];
  const deltas = p.timeDeltas ?? [];
  for (let i = 0; i < samples.length; i++) {
    const id = samples[i] ?? 0;
    const next = deltas[i + 1] ?? 0;
    self.set(id, (self.get(id) ?? 0) + next / 1000);
  }
  return self;
}

export function summarizeProfile(path: string, top = 20): string {
  const p = JSON.parse(readFileSync(path, 'utf8')) as Profile;
  const self = selfTimes(p);
  const byFunction = new Map<string, number>();
  const byArea = new Map<string, number>();
  let total = 0;
  for (const node of p.nodes) {
    const ms = self.get(node.id) ?? 0;
    if (ms === 0) continue;
    const { functionName, url, lineNumber } = node.callFrame;
    const where =
      url === '' ? '' : ` ${url.replace(/^.*\/(node_modules|dist|src)\//, '$1/')}:${lineNumber + 1}`;
    const key = `${functionName || '(anonymous)'}${where}`;
    byFunction.set(key, (byFunction.get(key) ?? 0) + ms);
    const a = area(url, functionName);
    byArea.set(a, (byArea.get(a) ?? 0) + ms);
    total += ms;
  }
  const busy = total - (byArea.get('(idle)') ?? 0);
  const lines = (m: Map<string, number>, n: number): string[] =>
    [...m]
      .filter(([k]) => k !== '(idle)')
      .sort((a, b) => b[1] - a[1])
      .slice(0, n)
      .map(
        ([k, ms]) => `${((100 * ms) / busy).toFixed(1).padStart(5)} %  ${ms.toFixed(0).padStart(6)} ms  ${k}`,
      );
  return [
    `profile ${path}: ${(total / 1000).toFixed(1)} s sampled, ${(busy / 1000).toFixed(1)} s busy (percentages of busy time)`,
    'self time by package / area:',
    ...lines(byArea, 12),
    `top ${top} functions by self time:`,
    ...lines(byFunction, top),
  ].join('\n');
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const file = process.argv[2];
  if (file === undefined) {
    process.stderr.write('usage: node --import tsx bench/profile-summary.ts <file.cpuprofile> [top]\n');
    process.exit(2);
  }
  process.stdout.write(`${summarizeProfile(file, Number(process.argv[3] ?? 20))}\n`);
}
