/**
 * Paired comparison of two targets of one benchmark run, round by round (the machine's state changes
 * between rounds, so ratios within a round are steadier than ratios of medians):
 *
 *   node --import tsx bench/compare.ts bench/results/partial.json connector socket
 *
 * For each timing scenario: CPU per stream of A / B, throughput A / B, and each one's added TTFT p99
 * over `direct` in the same round; median [min–max] over the rounds.
 */
import { readFileSync } from 'node:fs';
import { percentile } from './stats.ts';

interface Run {
  scenario: string;
  target: string;
  round: number;
  metrics: Record<string, number | undefined>;
}

function spread(values: number[], digits: number): string {
  if (values.length === 0) return '-';
  const sorted = [...values].sort((x, y) => x - y);
  const f = (v: number): string => v.toFixed(digits);
  return `${f(percentile(sorted, 50))} [${f(sorted[0] ?? NaN)}–${f(sorted[sorted.length - 1] ?? NaN)}]`;
}

export function compare(runs: Run[], a: string, b: string): string {
  const lines = [`${a} vs ${b}, per round: median [min–max]`];
  const scenarios = [...new Set(runs.map((r) => r.scenario))];
  for (const scenario of scenarios) {
    const at = (target: string, round: number): Run | undefined =>
      runs.find((r) => r.scenario === scenario && r.target === target && r.round === round);
    const rounds = [...new Set(runs.filter((r) => r.scenario === scenario).map((r) => r.round))];
    const cpu: number[] = [];
    const rps: number[] = [];
    const p99a: number[] = [];
    const p99b: number[] = [];
    for (const round of rounds) {
      const ra = at(a, round)?.metrics;
      const rb = at(b, round)?.metrics;
      if (ra === undefined || rb === undefined) continue;
      if (ra.cpuMsPerReq !== undefined && rb.cpuMsPerReq !== undefined)
        cpu.push(ra.cpuMsPerReq / rb.cpuMsPerReq);
      if (ra.rps !== undefined && rb.rps !== undefined) rps.push(ra.rps / rb.rps);
      const direct = at('direct', round)?.metrics.ttftP99;
      if (direct !== undefined && ra.ttftP99 !== undefined && rb.ttftP99 !== undefined) {
        p99a.push(ra.ttftP99 - direct);
        p99b.push(rb.ttftP99 - direct);
      }
    }
    if (cpu.length === 0) continue;
    lines.push(
      `${scenario} (${cpu.length} rounds): CPU/stream ${spread(cpu, 2)}x, req/s ${spread(rps, 2)}x, ` +
        `added TTFT p99 ${spread(p99a, 1)} vs ${spread(p99b, 1)} ms`,
    );
  }
  return lines.join('\n');
}

if (import.meta.filename === process.argv[1]) {
  const [file, a, b] = process.argv.slice(2);
  if (file === undefined || a === undefined || b === undefined)
    throw new Error('usage: bench/compare.ts <results.json> <target A> <target B>');
  const { runs } = JSON.parse(readFileSync(file, 'utf8')) as { runs: Run[] };
  process.stdout.write(`${compare(runs, a, b)}\n`);
}
