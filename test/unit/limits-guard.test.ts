import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConnectorError } from '../../src/errors.ts';
import { ClientKeyring, parseServiceApiKeysFile } from '../../src/limits/client-keys.ts';
import {
  createGuard,
  rejectionError,
  type Admission,
  type Admitted,
  type GuardOptions,
  type Rejection,
} from '../../src/limits/guard.ts';
import type { AdmitRequest, LimitStore, Reservation, SettleRequest } from '../../src/limits/limit-store.ts';
import type { LimitValues, RedisErrorPolicy } from '../../src/limits/limits.ts';
import { MemoryLimitStore } from '../../src/limits/memory-store.ts';
import { createUpstreamGate } from '../../src/limits/upstream-gate.ts';
import { waitFor } from '../helpers/wait.ts';
import { Cancel } from '../../src/cancel.ts';

const ALICE = 'alice-key-0123456789abcdef';
const BOB = 'bob-key-0123456789abcdef';
const T0 = Date.UTC(2026, 0, 15, 12, 0, 0);
const NONE: LimitValues = { rpm: 0, tpm: 0, daily: 0, streams: 0, usd_daily: 0, usd_monthly: 0 };

/** A MemoryLimitStore that records calls, or fails every call when `down`. */
class SpyStore implements LimitStore {
  readonly inner: MemoryLimitStore;
  readonly leaseTtlMs: number;
  readonly admits: AdmitRequest[] = [];
  readonly settles: SettleRequest[] = [];
  renewals = 0;
  down = false;

  constructor(leaseTtlMs = 60_000) {
    this.inner = new MemoryLimitStore({ leaseTtlMs });
    this.leaseTtlMs = leaseTtlMs;
  }

  admit(request: AdmitRequest) {
    this.admits.push(request);
    return this.down
      ? Promise.resolve({ outcome: 'unavailable' as const, error: new Error('connection refused') })
      : this.inner.admit(request);
  }

  settle(request: SettleRequest) {
    this.settles.push(request);
    return this.down
      ? Promise.resolve({ ok: false as const, error: new Error('connection refused') })
      : this.inner.settle(request);
  }

  renew(reservation: Reservation, nowMs: number) {
    this.renewals++;
    return this.inner.renew(reservation, nowMs);
  }

  healthy() {
    return !this.down;
  }

  close() {
    return this.inner.close();
  }
}

function setup(
  defaults: Partial<LimitValues>,
  extra: Partial<GuardOptions> & { policy?: RedisErrorPolicy } = {},
) {
  const store = extra.store instanceof SpyStore ? extra.store : new SpyStore();
  const warnings: object[] = [];
  const errors: Error[] = [];
  let clock = T0;
  const guard = createGuard({
    keyring: new ClientKeyring(parseServiceApiKeysFile(`alice:${ALICE} rpm=1\nbob:${BOB}`)),
    limits: {
      defaults: { ...NONE, ...defaults },
      maxUpstreamConcurrency: 0,
      redisUrl: undefined,
      redisErrorPolicy: extra.policy ?? 'open',
      redisTimeoutMs: 200,
    },
    store,
    gate: createUpstreamGate({ max: 0 }),
    logger: { warn: (details) => warnings.push(details) },
    onRedisError: (error) => errors.push(error),
    now: () => clock,
    ...extra,
  });
  return { guard, store, warnings, errors, tick: (ms: number) => (clock += ms) };
}

function admitted(admission: Admission): Admitted {
  assert.equal(admission.ok, true, JSON.stringify(admission));
  return admission;
}

function rejected(admission: Admission): Rejection {
  assert.equal(admission.ok, false);
  return admission;
}

describe('guard: authentication', () => {
  it('missing, invalid or the client of the key', () => {
    const { guard } = setup({});
    assert.equal(guard.authenticate({}), 'missing');
    assert.equal(guard.authenticate({ 'x-api-key': 'nope-nope-nope-nope' }), 'invalid');
    assert.equal(
      guard.authenticate({ authorization: `Bearer ${BOB}` }),
      guard.authenticate({ 'x-api-key': BOB }),
    );
    assert.deepEqual(guard.authenticate({ authorization: `Bearer ${ALICE}` }), {
      name: 'alice',
      limits: { rpm: 1 },
    });
  });

  it('without a keyring authentication is off: null, the anonymous client', async () => {
    const { guard } = setup({ rpm: 1 }, { keyring: null });
    assert.equal(guard.authenticate({}), null);
    assert.equal(admitted(await guard.admit(null, 0)).client, 'anonymous');
    assert.equal(rejected(await guard.admit(null, 0)).reason, 'rpm');
  });
});

describe('guard: limits', () => {
  it('answers within limits carry RateLimit headers; over a limit is a 429 with Retry-After', async () => {
    const { guard } = setup({ rpm: 2 });
    const bob = guard.authenticate({ 'x-api-key': BOB });
    assert.ok(bob !== null && typeof bob === 'object');
    const first = admitted(await guard.admit(bob, 0));
    assert.equal(first.client, 'bob');
    assert.deepEqual(first.headers, {
      'ratelimit-limit': '2',
      'ratelimit-remaining': '1',
      'ratelimit-reset': '60',
    });
    admitted(await guard.admit(bob, 0));
    const denied = rejected(await guard.admit(bob, 0));
    assert.deepEqual(denied, {
      ok: false,
      status: 429,
      type: 'rate_limit_error',
      reason: 'rpm',
      message: 'Rate limit exceeded: 2 requests per minute; retry after 90 s',
      headers: {
        'ratelimit-limit': '2',
        'ratelimit-remaining': '0',
        'ratelimit-reset': '60',
        'retry-after': '90',
      },
    });
    const error = rejectionError(denied);
    assert.ok(error instanceof ConnectorError);
    assert.deepEqual([error.status, error.type, error.retryAfter], [429, 'rate_limit_error', '90']);
  });

  it('per-key overrides win over the defaults', async () => {
    const { guard } = setup({ rpm: 5 });
    const alice = guard.authenticate({ 'x-api-key': ALICE });
    assert.ok(alice !== null && typeof alice === 'object');
    admitted(await guard.admit(alice, 0));
    assert.equal(rejected(await guard.admit(alice, 0)).reason, 'rpm');
  });

  it('settle counts the real usage, including cache tokens, exactly once', async () => {
    const { guard, store } = setup({ tpm: 1000 });
    const first = admitted(await guard.admit(null, 1000));
    assert.equal(rejected(await guard.admit(null, 1)).reason, 'tpm');
    const usage = {
      input_tokens: 100,
      output_tokens: 50,
      cache_read_input_tokens: 40,
      cache_creation_input_tokens: 10,
    };
    await Promise.all([first.lease.settle(usage), first.lease.settle(usage)]);
    await first.lease.settle({ output_tokens: 999 });
    assert.equal(first.lease.settled, true);
    assert.equal(store.settles.length, 1);
    assert.equal(store.settles[0]?.actualTokens, 200);
    assert.equal(admitted(await guard.admit(null, 800)).headers['ratelimit-remaining'], '0');
  });

  it('no limits: the store is not asked at all', async () => {
    const { guard, store } = setup({});
    const admission = admitted(await guard.admit(null, 100));
    assert.deepEqual(admission.headers, {});
    await admission.lease.settle({ output_tokens: 3 });
    assert.deepEqual([store.admits.length, store.settles.length], [0, 0]);
  });

  it('keeps a stream lease alive while the answer is open, and frees it on settle', async () => {
    // A hand-driven interval: the test moves the guard's clock and the renewal timer together.
    const timers = new Set<{ tick: () => void; ms: number; due: number }>();
    let elapsed = 0;
    const every = (tick: () => void, ms: number) => {
      const timer = { tick, ms, due: elapsed + ms };
      timers.add(timer);
      return () => timers.delete(timer);
    };
    const store = new SpyStore(60);
    const { guard, tick } = setup({ streams: 1 }, { store, every });
    const advance = (ms: number): void => {
      for (let step = 0; step < ms; step += 10) {
        tick(10);
        elapsed += 10;
        for (const timer of timers) {
          if (timer.due <= elapsed) {
            timer.due += timer.ms;
            timer.tick();
          }
        }
      }
    };
    const open = admitted(await guard.admit(null, 0));
    assert.equal(timers.size, 1, 'one renewal timer while the lease is open');
    // Past the 60 ms lease: only renewals keep it.
    advance(150);
    assert.ok(store.renewals >= 2, `renewed ${store.renewals} times`);
    assert.equal(rejected(await guard.admit(null, 0)).reason, 'streams');
    await open.lease.settle();
    assert.equal(timers.size, 0, 'the renewal timer is stopped on settle');
    const renewals = store.renewals;
    advance(50);
    assert.equal(store.renewals, renewals, 'no renewals after settle');
    await admitted(await guard.admit(null, 0)).lease.settle();
  });
});

describe('guard: store failures', () => {
  it('fail open: admits without headers, counts every error, warns at most once per interval', async () => {
    const { guard, store, warnings, errors, tick } = setup({ rpm: 1 }, { warnIntervalMs: 10_000 });
    store.down = true;
    for (let i = 0; i < 5; i++) {
      const admission = admitted(await guard.admit(null, 10));
      assert.deepEqual(admission.headers, {});
      await admission.lease.settle({ output_tokens: 5 });
    }
    assert.equal(store.settles.length, 0, 'nothing reserved, nothing to settle');
    assert.equal(errors.length, 5);
    assert.equal(warnings.length, 1);
    tick(10_000);
    admitted(await guard.admit(null, 0));
    assert.deepEqual(warnings[1], { err: 'connection refused', during: 'admit', suppressed: 4 });
    assert.equal(guard.healthy(), false);
  });

  it('fail closed: 503 with Retry-After', async () => {
    const { guard, store, errors } = setup({ rpm: 1 }, { policy: 'closed' });
    store.down = true;
    const denied = rejected(await guard.admit(null, 0));
    assert.deepEqual(
      [denied.status, denied.type, denied.reason, denied.headers],
      [503, 'overloaded_error', 'limits_unavailable', { 'retry-after': '1' }],
    );
    assert.equal(errors.length, 1);
  });

  it('a store that breaks its promise and throws still only counts as unavailable', async () => {
    const store = new SpyStore();
    store.admit = () => Promise.reject(new Error('bug'));
    const { guard, errors } = setup({ rpm: 1 }, { store });
    admitted(await guard.admit(null, 0));
    assert.equal(errors[0]?.message, 'bug');
  });

  it('a failed settle is counted, never thrown', async () => {
    const { guard, store, errors } = setup({ tpm: 100 });
    const admission = admitted(await guard.admit(null, 10));
    store.down = true;
    await admission.lease.settle({ output_tokens: 5 });
    assert.equal(errors.length, 1);
  });
});

describe('guard: upstream gate', () => {
  it('queues, then 503 with Retry-After; the turned-away request and its tokens are given back', async () => {
    const { guard, store } = setup(
      { rpm: 3, tpm: 1000 },
      { gate: createUpstreamGate({ max: 1, queueTimeoutMs: 30 }) },
    );
    const first = admitted(await guard.admit(null, 400));
    const busy = rejected(await guard.admit(null, 400));
    assert.deepEqual(
      [busy.status, busy.type, busy.reason, busy.headers],
      [503, 'overloaded_error', 'upstream_busy', { 'retry-after': '1' }],
    );
    await waitFor(() => store.settles.length > 0, 'the turned-away request to be given back');
    assert.deepEqual(
      store.settles.map((s) => [s.actualTokens, s.refundRequest]),
      [[0, true]],
    );
    const waiting = guard.admit(null, 600);
    await first.lease.settle({ output_tokens: 400 });
    const next = admitted(await waiting);
    assert.deepEqual([next.headers['ratelimit-limit'], next.headers['ratelimit-remaining']], ['1000', '0']);
    await next.lease.settle();
  });

  it('a client that goes away while queued gets client_closed', async () => {
    const { guard } = setup({}, { gate: createUpstreamGate({ max: 1, queueTimeoutMs: 5_000 }) });
    const first = admitted(await guard.admit(null, 0));
    const cancel = new Cancel();
    const waiting = guard.admit(null, 0, cancel);
    cancel.abort();
    const gone = rejected(await waiting);
    assert.deepEqual([gone.status, gone.type], [499, 'client_closed']);
    await first.lease.settle();
  });
});

describe('guard: budgets in dollars', () => {
  /** A cost estimate that counts how often it is asked. */
  function estimate(worst: bigint | null, model = 'claude-x-1') {
    const asked = { count: 0 };
    return {
      asked,
      cost: {
        model,
        worstCase: () => {
          asked.count++;
          return worst;
        },
      },
    };
  }

  it('a client without a dollar budget never has its cost estimated', async () => {
    const { guard } = setup({ rpm: 5 });
    const { asked, cost } = estimate(1_000n);
    await admitted(await guard.admit(null, 0, undefined, cost)).lease.settle();
    assert.equal(asked.count, 0);
  });

  it('reserves the worst case in nano-dollars (rounded up) and settles the real cost', async () => {
    const { guard, store } = setup({ usd_daily: 2_000_000 });
    const { asked, cost } = estimate(400_000_001n); // pico-dollars: 400000.001 nano-dollars
    const first = admitted(await guard.admit(null, 0, undefined, cost));
    assert.equal(asked.count, 1);
    assert.equal(store.admits.at(-1)?.reserveUsdNano, 400_001);
    assert.deepEqual(first.headers, {
      'ratelimit-limit': '0',
      'ratelimit-remaining': '0',
      'ratelimit-reset': String(12 * 3600),
    });
    await first.lease.settle({ output_tokens: 3 }, 250_000_000n);
    assert.equal(store.settles.at(-1)?.actualUsdNano, 250_000);
    // An answer of unknown cost keeps its reservation; none begun gives it all back.
    await admitted(await guard.admit(null, 0, undefined, cost)).lease.settle({ output_tokens: 3 }, null);
    assert.equal(store.settles.at(-1)?.actualUsdNano, null);
    await admitted(await guard.admit(null, 0, undefined, cost)).lease.settle();
    assert.equal(store.settles.at(-1)?.actualUsdNano, 0);
  });

  it('a model with no price is refused with a 400 naming it and MODEL_PRICES_FILE', async () => {
    const { guard, store } = setup({ usd_monthly: 1_000 });
    const refused = rejected(await guard.admit(null, 0, undefined, estimate(null, 'claude-new').cost));
    assert.deepEqual(
      [refused.status, refused.type, refused.reason],
      [400, 'invalid_request_error', 'unpriced_model'],
    );
    assert.match(refused.message, /"claude-new" has no known price.*MODEL_PRICES_FILE/);
    assert.equal(store.admits.length, 0, 'nothing was counted');
    // A request that has no Messages answer (no estimate) reserves nothing.
    await admitted(await guard.admit(null, 0)).lease.settle();
    assert.equal(store.admits.at(-1)?.reserveUsdNano, 0);
  });
});
