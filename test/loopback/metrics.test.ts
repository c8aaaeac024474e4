import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import { query, requestLogs, startHarness, type Harness } from '../helpers/harness.ts';
import { waitFor } from '../helpers/wait.ts';

type Families = ReturnType<typeof parsePrometheusTextFormat>;

function value(families: Families, name: string, labels: Record<string, string>): number {
  const family = families.find((f) => f.name === name);
  assert.ok(family, `no metric ${name}`);
  const matching = family.metrics.filter((m) =>
    Object.entries(labels).every(([k, v]) => m.labels?.[k] === v),
  );
  return matching.reduce((sum, m) => sum + Number(m.value ?? 0), 0);
}

/**
 * Observations in a histogram. The parser drops the labels of histogram samples when `le` comes
 * first (as prom-client writes them), so this counts every series: use it where one route was called.
 */
function observations(families: Families, name: string): number {
  const family = families.find((f) => f.name === name);
  assert.ok(family, `no metric ${name}`);
  assert.equal(family.type, 'HISTOGRAM');
  return family.metrics.reduce((sum, m) => sum + Number(m.buckets?.['+Inf'] ?? 0), 0);
}

describe('GET /metrics', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness({ MAX_RETRIES: '1' });
  });
  after(() => h.close());

  it('counts requests, outcomes, attempts, tokens and latencies as they happened', async () => {
    h.fake.queue(
      {
        kind: 'message',
        deltas: ['a', 'b'],
        usage: { input_tokens: 10, output_tokens: 2, cache_read_input_tokens: 5 },
      },
      { kind: 'message', deltas: ['c'], usage: { input_tokens: 7, output_tokens: 1 } },
      { kind: 'error', status: 529, retryAfterMs: '10' },
      { kind: 'error', status: 529, retryAfterMs: '10' },
    );
    await (await query(h.url, { prompt: 'one' })).text();
    await (await query(h.url, { prompt: 'two', stream: false })).text();
    assert.equal((await query(h.url, { prompt: 'three' })).status, 503);
    assert.equal((await query(h.url, { prompt: '' })).status, 400);
    // A request is counted when its response has closed (just after the client has read it), in the
    // same step that writes its log line. (Polling /metrics instead would add /metrics series.)
    await waitFor(() => requestLogs(h).length === 4, 'the 4 requests to be recorded');

    const res = await fetch(`${h.url}/metrics`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/plain/);
    const text = await res.text();
    const families = parsePrometheusTextFormat(text);
    const route = '/llm/query';
    assert.equal(value(families, 'llmc_requests_total', { route, status: '200', outcome: 'ok' }), 2);
    assert.equal(
      value(families, 'llmc_requests_total', { route, status: '503', outcome: 'upstream_error' }),
      1,
    );
    assert.equal(
      value(families, 'llmc_requests_total', { route, status: '400', outcome: 'client_error' }),
      1,
    );
    assert.equal(value(families, 'llmc_upstream_attempts_total', { route, result: 'retried' }), 1);
    assert.equal(value(families, 'llmc_upstream_attempts_total', { route, result: '529' }), 1);
    assert.equal(value(families, 'llmc_upstream_errors_total', { route, type: 'overloaded_error' }), 1);
    assert.equal(value(families, 'llmc_tokens_total', { direction: 'input', model: 'claude-sonnet-5' }), 17);
    assert.equal(value(families, 'llmc_tokens_total', { direction: 'output', model: 'claude-sonnet-5' }), 3);
    assert.equal(value(families, 'llmc_tokens_total', { direction: 'cache_read' }), 5);
    assert.equal(observations(families, 'llmc_time_to_first_byte_seconds'), 2);
    assert.equal(observations(families, 'llmc_added_latency_seconds'), 2);
    assert.equal(observations(families, 'llmc_request_duration_seconds'), 4);
    assert.equal(value(families, 'llmc_open_streams', { route }), 0);
  });

  it('shows a stream as open while it is being answered', async () => {
    h.fake.queue({ kind: 'message', deltas: ['slow ', 'answer'], deltaDelayMs: 300 });
    const pending = query(h.url, { prompt: 'slow' });
    const res = await pending;
    const families = parsePrometheusTextFormat(await (await fetch(`${h.url}/metrics`)).text());
    assert.equal(value(families, 'llmc_open_streams', { route: '/llm/query' }), 1);
    await res.text();
  });
});
