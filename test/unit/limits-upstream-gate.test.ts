import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createUpstreamGate, type GateResult, type GatePermit } from '../../src/limits/upstream-gate.ts';
import { Cancel } from '../../src/cancel.ts';

function permitOf(result: GateResult): GatePermit {
  assert.equal(result.ok, true);
  return result.permit;
}

describe('upstream gate (MAX_UPSTREAM_CONCURRENCY)', () => {
  it('admits up to the cap at once', async () => {
    const gate = createUpstreamGate({ max: 2 });
    permitOf(await gate.acquire());
    permitOf(await gate.acquire());
    assert.equal(gate.active, 2);
  });

  it('queues beyond the cap and hands a released slot to the longest waiter first', async () => {
    const gate = createUpstreamGate({ max: 1, queueTimeoutMs: 1_000 });
    const first = permitOf(await gate.acquire());
    const order: string[] = [];
    const inOrder = async (name: string): Promise<GateResult> => {
      const result = await gate.acquire();
      order.push(name);
      return result;
    };
    const second = inOrder('second');
    const third = inOrder('third');
    assert.equal(gate.queued, 2);
    first.release();
    const secondPermit = permitOf(await second);
    assert.deepEqual(order, ['second']);
    assert.equal(gate.active, 1);
    secondPermit.release();
    permitOf(await third).release();
    assert.deepEqual(order, ['second', 'third']);
    assert.equal(gate.active, 0);
  });

  it('turns a request away with Retry-After once it has waited the queue timeout', async () => {
    const gate = createUpstreamGate({ max: 1, queueTimeoutMs: 50 });
    permitOf(await gate.acquire());
    const started = performance.now();
    assert.deepEqual(await gate.acquire(), { ok: false, reason: 'busy', retryAfterSeconds: 1 });
    const waited = performance.now() - started;
    assert.ok(waited >= 45 && waited < 1_000, `waited ${waited} ms`);
    assert.equal(gate.queued, 0);
  });

  it('turns a request away at once when the queue is full', async () => {
    const gate = createUpstreamGate({ max: 1, queueTimeoutMs: 1_000, maxQueued: 1 });
    const held = permitOf(await gate.acquire());
    const queued = gate.acquire();
    assert.deepEqual(await gate.acquire(), { ok: false, reason: 'busy', retryAfterSeconds: 1 });
    held.release();
    permitOf(await queued).release();
  });

  it('release is idempotent: a second call frees nothing more', async () => {
    const gate = createUpstreamGate({ max: 1, queueTimeoutMs: 30 });
    const permit = permitOf(await gate.acquire());
    const waiter = gate.acquire();
    permit.release();
    permit.release();
    const next = permitOf(await waiter);
    assert.equal(gate.active, 1);
    assert.equal((await gate.acquire()).ok, false, 'the double release did not open a second slot');
    next.release();
    next.release();
    assert.equal(gate.active, 0);
  });

  it('a waiter whose client went away leaves the queue', async () => {
    const gate = createUpstreamGate({ max: 1, queueTimeoutMs: 5_000 });
    const held = permitOf(await gate.acquire());
    const cancel = new Cancel();
    const waiting = gate.acquire(cancel);
    cancel.abort();
    assert.deepEqual(await waiting, { ok: false, reason: 'aborted', retryAfterSeconds: 1 });
    assert.equal(gate.queued, 0);
    const cancelled = new Cancel();
    cancelled.abort();
    assert.deepEqual(await gate.acquire(cancelled), {
      ok: false,
      reason: 'aborted',
      retryAfterSeconds: 1,
    });
    held.release();
    assert.equal(gate.active, 0);
  });

  it('max 0: no cap', async () => {
    const gate = createUpstreamGate({ max: 0 });
    const permits = await Promise.all(Array.from({ length: 100 }, () => gate.acquire()));
    assert.ok(permits.every((p) => p.ok));
  });
});
