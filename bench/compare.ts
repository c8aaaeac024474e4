/**
 * Paired comparison of two targets of one benchmark run, round by round (the machine's state changes
 * between rounds, so ratios within a round are steadier than ratios of medians):
 *
 *   node --import tsx bench/compare.ts bench/results/partial.json connector socket
 *
 * Several result files (runs of the same targets) are pooled: each of their rounds counts once.
 * For each timing scenario: CPU per stream of A / B (and in how many rounds A cost more), throughput
 * A / B, A's added TTFT p50 (over `direct` in the same round) minus B's, and each one's added TTFT p99;
 * median [interquartile range] (min–max) over the rounds.
 */
import { readFileSync } from 'node:fs';

interface Run {
  scenario: string;
  target: string;
  round: number;
  metrics: Record<string, number | undefined>;
}

/** The p-th quantile, linearly interpolated (R's type 7): the median of an even count is the mean of the middle two. */
function quantile(sorted: readonly number[], p: number): number {
  const at = (sorted.length - 1) * p;
  const low = sorted[Math.floor(at)] ?? NaN;
  const high = sorted[Math.ceil(at)] ?? NaN;
  return low + (high - low) * (at - Math.floor(at));
}

function spread(values: number[], digits: number): string {
  if (values.length === 0) return '-';
  const sorted = [...values].sort((x, y) => x - y);
  const f = (v: number): string => v.toFixed(digits);
  const iqr = `${f(quantile(sorted, 0.25))}–${f(quantile(sorted, 0.75))}`;
  return `${f(quantile(sorted, 0.5))} [${iqr}] (${f(sorted[0] ?? NaN)}–${f(sorted[sorted.length - 1] ?? NaN)})`;
}

export function compare(runs: Run[], a: string, b: string): string {
  const lines = [`${a} vs ${b}, per round: median [interquartile range] (min–max)`];
  const scenarios = [...new Set(runs.map((r) => r.scenario))];
  for (const scenario of scenarios) {
    const at = (target: string, round: number): Run | undefined =>
      runs.find((r) => r.scenario === scenario && r.target === target && r.round === round);
    const rounds = [...new Set(runs.filter((r) => r.scenario === scenario).map((r) => r.round))];
    const cpu: number[] = [];
    const rps: number[] = [];
    const p99a: number[] = [];
    const p99b: number[] = [];
    const p50diff: number[] = [];
    for (const round of rounds) {
      const ra = at(a, round)?.metrics;
      const rb = at(b, round)?.metrics;
      if (ra === undefined || rb === undefined) continue;
      if (ra.cpuMsPerReq !== undefined && rb.cpuMsPerReq !== undefined)
        cpu.push(ra.cpuMsPerReq / rb.cpuMsPerReq);
      if (ra.rps !== undefined && rb.rps !== undefined) rps.push(ra.rps / rb.rps);
      const direct = at('direct', round)?.metrics;
      if (direct?.ttftP99 !== undefined && ra.ttftP99 !== undefined && rb.ttftP99 !== undefined) {
        p99a.push(ra.ttftP99 - direct.ttftP99);
        p99b.push(rb.ttftP99 - direct.ttftP99);
      }
      if (ra.ttftP50 !== undefined && rb.ttftP50 !== undefined) p50diff.push(ra.ttftP50 - rb.ttftP50);
    }
    if (cpu.length === 0) continue;
    const above = cpu.filter((ratio) => ratio > 1).length;
    lines.push(
      `${scenario} (${cpu.length} rounds): CPU/stream ${spread(cpu, 3)}x (A above B in ${above}), ` +
        `req/s ${spread(rps, 2)}x, TTFT p50 A − B ${spread(p50diff, 3)} ms, ` +
        `added TTFT p99 ${spread(p99a, 1)} vs ${spread(p99b, 1)} ms`,
    );
  }
  return lines.join('\n');
}

if (import.meta.filename === process.argv[1]) {
  const args = process.argv.slice(2);
  const [a, b] = args.slice(-2);
  const files = args.slice(0, -2);
  if (files.length === 0 || a === undefined || b === undefined)
    throw new Error('usage: bench/compare.ts <results.json>... <target A> <target B>');
  // Rounds of later files are numbered after those of the earlier ones, so that each pairs only within its run.
  const runs = files.flatMap((file, i) =>
    (JSON.parse(readFileSync(file, 'utf8')) as { runs: Run[] }).runs.map((r) => ({
      ...r,
      round: i * 1000 + r.round,
    })),
  );
  process.stdout.write(`${compare(runs, a, b)}\n`);
}
