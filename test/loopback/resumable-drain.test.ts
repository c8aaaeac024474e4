/**
 * SIGTERM with answers that outlive their connection: they run on for the drain (10 s), those still
 * running then end `failed` with a clear message that their followers receive, and the process exits 0.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startFakeUpstream, type FakeUpstream } from '../../src/mock/fake-upstream.ts';
import { SECRET_KEY } from '../helpers/harness.ts';
import { runService, startService } from '../helpers/service-process.ts';
import { SseClient, joinedText, postQuery } from '../helpers/sse-client.ts';
import { upstreamRequest } from '../helpers/wait.ts';

describe('SIGTERM drains resumable and background answers', () => {
  let fake: FakeUpstream;
  before(async () => {
    fake = await startFakeUpstream();
  });
  after(async () => {
    await fake.close();
  });

  it('an answer that ends within the drain completes; one still running then fails, its followers told', async () => {
    const service = await startService({ ANTHROPIC_API_KEY: SECRET_KEY, ANTHROPIC_BASE_URL: fake.url });
    try {
      const words = Array.from({ length: 20 }, (_, i) => `w${i} `);
      fake.setScenario((req) =>
        JSON.stringify(req.json).includes('short')
          ? { kind: 'message', deltas: words, deltaDelayMs: 50 }
          : { kind: 'message', deltas: words, fault: { type: 'stall', afterDeltas: 2 } },
      );
      const long = postQuery(service.url, { prompt: 'long', resumable: true });
      await long.received(3);
      const res = await fetch(`${service.url}/llm/query`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ prompt: 'short', background: true }),
      });
      assert.equal(res.status, 202);
      const { id } = (await res.json()) as { id: string };
      const follower = new SseClient(`${service.url}/llm/answers/${id}/events`);
      await follower.received(1);
      await upstreamRequest(fake, 2);
      service.child.kill('SIGTERM');
      await follower.closed;
      assert.equal(follower.events.at(-1)?.event, 'done', 'the short answer ran to its end during the drain');
      assert.equal(joinedText(follower.events), words.join(''));
      await long.closed;
      const last = long.events.at(-1);
      assert.equal(last?.event, 'error');
      const error = (last.data as { error: { type: string; message: string } }).error;
      assert.equal(error.type, 'stream_incomplete');
      assert.match(error.message, /shut down/);
      assert.deepEqual(
        long.events.map((e) => e.id),
        [1, 2, 3, 4],
      );
      const exit = await service.exit;
      assert.equal(exit.code, 0, exit.stderr);
      const line = service.logLines().find((l) => l.msg === 'request' && l.answer_mode === 'resumable');
      assert.equal(line?.outcome, 'stream_error');
    } finally {
      await service.stop();
    }
  });
});

describe('resumable answers with several workers', () => {
  it('RESUMABLE_ANSWERS=true with --workers 2 and no REDIS_URL: the service does not start, and says why', async () => {
    const { exit } = runService({ RESUMABLE_ANSWERS: 'true' }, ['--mock', '--workers', '2']);
    const result = await exit;
    assert.equal(result.code, 1);
    assert.match(result.stderr, /^error: RESUMABLE_ANSWERS with 2 workers needs REDIS_URL/m);
  });
});
