/**
 * The repository's own fake upstream (src/mock/fake-upstream.ts) answering the benchmark's prompt
 * directives, run only to compare it with bench/fake-server.ts (is the lean fake needed?).
 *
 * Run: node --import tsx bench/fake-repo.ts <port>
 */
import { startFakeUpstream } from '../src/mock/fake-upstream.ts';
import { exitWithParent } from './orphan-guard.ts';
import { deltaText, parsePrompt } from './wire.ts';

async function main(): Promise<void> {
  const fake = await startFakeUpstream({
    port: Number(process.argv[2] ?? 0),
    record: false,
    requireApiKey: false,
  });
  fake.setScenario((req) => {
    const shape = parsePrompt(JSON.stringify(req.json));
    const deltas = Array.from({ length: shape.deltas }, (_, i) => deltaText(i));
    return { kind: 'message', deltas, deltaDelayMs: shape.delayMs };
  });
  exitWithParent();
  process.once('SIGTERM', () => process.exit(0));
}

void main();
