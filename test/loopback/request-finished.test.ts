/**
 * One "request finished" record per request, whatever happened to it: each outcome below writes
 * exactly one log line (the log is one of the record's subscribers), with the right outcome, and is
 * counted once in the metrics.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, beforeEach, describe, it } from 'node:test';
import { requestLogs, startHarness, type Harness } from '../helpers/harness.ts';
import { bearer, metricValue, readUntil, scrapeMetrics } from '../helpers/routes.ts';
import { waitFor } from '../helpers/wait.ts';
import { clockInsideMinute } from '../helpers/clock.ts';

const ALICE = 'alice-key-0123456789abcdef';
const LIMITED = 'limited-key-0123456789abcdef';

function ask(h: Harness, id: string, body: unknown, key = ALICE, signal?: AbortSignal): Promise<Response> {
  return fetch(`${h.url}/llm/query`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-request-id': id, ...bearer(key) },
    body: JSON.stringify(body),
    ...(signal ? { signal } : {}),
  });
}

function linesFor(h: Harness, id: string): Record<string, unknown>[] {
  return requestLogs(h).filter((line) => line.reqId === id);
}

describe('the finished record is emitted once per request, for every outcome', () => {
  let h: Harness;
  let n = 0;
  const outcomes = new Map<string, string>();
  const nextId = (): string => `finished-${++n}`;

  before(async () => {
    const keys = `alice:${ALICE}\nlimited:${LIMITED} rpm=1`;
    const file = join(mkdtempSync(join(tmpdir(), 'llmc-keys-')), 'keys');
    writeFileSync(file, keys);
    h = await startHarness({ SERVICE_API_KEYS_FILE: file }, { now: clockInsideMinute() });
  });
  after(async () => {
    h.app.server.closeAllConnections();
    await h.close();
  });
  beforeEach(() => {
    h.fake.reset();
  });

  /** Waits for the request's line, then for a later request's line, and checks there was one. */
  async function expectOne(id: string, outcome: string, status: number): Promise<void> {
    await waitFor(() => linesFor(h, id).length > 0, `the log line of ${id}`);
    outcomes.set(id, outcome);
    const [line] = linesFor(h, id);
    assert.equal(line?.outcome, outcome, id);
    assert.equal(line.status, status, id);
  }

  it('completed', async () => {
    const id = nextId();
    await (await ask(h, id, { prompt: 'Hi' })).text();
    await expectOne(id, 'ok', 200);
  });

  it('client gone before the first byte', async () => {
    const id = nextId();
    h.fake.queue({ kind: 'message', deltas: ['late'], headersDelayMs: 5_000 });
    const controller = new AbortController();
    const pending = ask(h, id, { prompt: 'Hi' }, ALICE, controller.signal).catch(() => 'aborted');
    await waitFor(() => h.fake.requests.length === 1, 'the upstream request');
    controller.abort();
    assert.equal(await pending, 'aborted');
    await expectOne(id, 'client_closed', 200);
  });

  it('client gone after the first byte', async () => {
    const id = nextId();
    h.fake.queue({
      kind: 'message',
      deltas: Array.from({ length: 100 }, (_, i) => `w${i} `),
      deltaDelayMs: 30,
    });
    const controller = new AbortController();
    const { reader } = await readUntil(await ask(h, id, { prompt: 'Hi' }, ALICE, controller.signal), 'w2 ');
    controller.abort();
    await reader.cancel().catch(() => undefined);
    await expectOne(id, 'client_closed', 200);
  });

  it('upstream error before the first byte', async () => {
    const id = nextId();
    h.fake.setScenario(() => ({ kind: 'error', status: 529, retryAfterMs: '1' }));
    assert.equal((await ask(h, id, { prompt: 'Hi' })).status, 503);
    await expectOne(id, 'upstream_error', 503);
  });

  it('upstream error after the first byte', async () => {
    const id = nextId();
    h.fake.queue({
      kind: 'message',
      deltas: ['a ', 'b ', 'c'],
      fault: { type: 'error', afterDeltas: 1, errorType: 'overloaded_error' },
    });
    await (await ask(h, id, { prompt: 'Hi' })).text();
    await expectOne(id, 'stream_error', 200);
  });

  it('upstream timeout', async () => {
    const id = nextId();
    h.fake.setScenario(() => ({ kind: 'stall' }));
    assert.equal((await ask(h, id, { prompt: 'Hi' })).status, 504);
    await expectOne(id, 'upstream_error', 504);
  });

  it('rejected by a limit', async () => {
    const first = nextId();
    await (await ask(h, first, { prompt: 'Hi' }, LIMITED)).text();
    await expectOne(first, 'ok', 200);
    const id = nextId();
    assert.equal((await ask(h, id, { prompt: 'Hi' }, LIMITED)).status, 429);
    await expectOne(id, 'client_error', 429);
  });

  it('rejected as invalid, and unauthenticated', async () => {
    const invalid = nextId();
    assert.equal((await ask(h, invalid, { prompt: '' })).status, 400);
    await expectOne(invalid, 'client_error', 400);
    const unauthenticated = nextId();
    assert.equal((await ask(h, unauthenticated, { prompt: 'Hi' }, 'wrong-key-0123456789')).status, 401);
    await expectOne(unauthenticated, 'client_error', 401);
  });

  it('after all of them, still one line each, and the requests counter moved once per request', async () => {
    // A last request that finishes after every other one: its line comes after any late duplicate.
    const last = nextId();
    await (await ask(h, last, { prompt: 'Hi' })).text();
    await expectOne(last, 'ok', 200);
    for (const id of outcomes.keys()) assert.equal(linesFor(h, id).length, 1, `one line for ${id}`);
    const families = await scrapeMetrics(h.url);
    const counted = metricValue(families, 'llmc_requests_total', { route: '/llm/query' });
    assert.equal(counted, outcomes.size);
  });
});
