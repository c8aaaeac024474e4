import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { after, before, beforeEach, describe, it } from 'node:test';
import { query, SECRET_KEY, startHarness, type Harness } from '../helpers/harness.ts';

interface Envelope {
  error: { type: string; message: string };
  request_id: string;
}

async function expectError(res: Response, status: number, type: string): Promise<Envelope> {
  const text = await res.text();
  assert.equal(res.status, status, text);
  assert.match(res.headers.get('content-type') ?? '', /^application\/json/);
  const body = JSON.parse(text) as Envelope;
  assert.equal(body.error.type, type, text);
  assert.equal(typeof body.error.message, 'string');
  assert.equal(body.request_id, res.headers.get('x-request-id'));
  assert.ok(!text.includes(SECRET_KEY));
  return body;
}

/** Sends raw bytes, since fetch cannot send invalid UTF-8 as it is. */
function rawPost(
  url: string,
  body: Buffer,
  contentType: string,
): Promise<{ status: number; body: Envelope }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      `${url}/llm/query`,
      { method: 'POST', headers: { 'content-type': contentType } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          resolve({
            status: res.statusCode ?? 0,
            body: JSON.parse(Buffer.concat(chunks).toString()) as Envelope,
          });
        });
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

describe('client errors never reach the upstream', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness({ MAX_BODY_BYTES: '2048' });
  });
  after(async () => {
    assert.equal(h.fake.requests.length, 0, 'a bad request reached the upstream');
    await h.close();
  });

  const invalid: [string, unknown][] = [
    ['bad JSON', '{"prompt": '],
    ['not an object', '"just a string"'],
    ['no prompt or messages', {}],
    ['both prompt and messages', { prompt: 'a', messages: [{ role: 'user', content: 'b' }] }],
    ['blank prompt', { prompt: '  \n ' }],
    ['prompt of wrong type', { prompt: 5 }],
    ['unknown field', { prompt: 'a', temprature: 1 }],
    ['max_tokens too large', { prompt: 'a', max_tokens: 128001 }],
    ['max_tokens not an integer', { prompt: 'a', max_tokens: 1.5 }],
    ['max_tokens as a string', { prompt: 'a', max_tokens: '5' }],
    ['temperature above 1', { prompt: 'a', temperature: 1.5 }],
    ['top_p below 0', { prompt: 'a', top_p: -0.1 }],
    ['negative top_k', { prompt: 'a', top_k: -1 }],
    ['empty stop sequence', { prompt: 'a', stop_sequences: [''] }],
    ['stream not boolean', { prompt: 'a', stream: 'false' }],
    ['bad role', { messages: [{ role: 'system', content: 'x' }] }],
    ['empty messages', { messages: [] }],
    ['extra field in a message', { messages: [{ role: 'user', content: 'x', name: 'y' }] }],
  ];
  for (const [label, body] of invalid) {
    it(`400 for ${label}`, async () => {
      await expectError(await query(h.url, body), 400, 'invalid_request_error');
    });
  }

  it('400 for a body that is not UTF-8', async () => {
    const res = await rawPost(
      h.url,
      Buffer.from([0x7b, 0x22, 0x70, 0x72, 0x6f, 0x6d, 0x70, 0x74, 0x22, 0x3a, 0x22, 0xff, 0xfe, 0x22, 0x7d]),
      'application/json',
    );
    assert.equal(res.status, 400);
    assert.equal(res.body.error.type, 'invalid_request_error');
    assert.match(res.body.error.message, /UTF-8/);
  });

  it('413 for a body over MAX_BODY_BYTES', async () => {
    await expectError(await query(h.url, { prompt: 'x'.repeat(4096) }), 413, 'request_too_large');
  });

  it('415 for a body that is not application/json', async () => {
    await expectError(
      await query(h.url, 'prompt=hi', { headers: { 'content-type': 'text/plain' } }),
      415,
      'unsupported_media_type',
    );
    await expectError(
      await query(h.url, 'prompt=hi', { headers: { 'content-type': 'application/x-www-form-urlencoded' } }),
      415,
      'unsupported_media_type',
    );
  });

  it('405 with Allow for a wrong method, 404 for an unknown path', async () => {
    const wrong = await fetch(`${h.url}/llm/query`);
    assert.equal(wrong.headers.get('allow'), 'POST');
    await expectError(wrong, 405, 'method_not_allowed');
    await expectError(await fetch(`${h.url}/nope`), 404, 'not_found_error');
  });
});

describe('upstream errors get honest statuses', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness({ MAX_RETRIES: '0' });
  });
  after(() => h.close());
  beforeEach(() => {
    h.fake.reset();
  });

  it('upstream 400 → 400 with the upstream message passed on', async () => {
    h.fake.queue({ kind: 'error', status: 400, message: 'messages: roles must alternate' });
    const body = await expectError(await query(h.url, { prompt: 'a' }), 400, 'invalid_request_error');
    assert.equal(body.error.message, 'messages: roles must alternate');
  });

  it('upstream 404 for an unknown model → 400', async () => {
    const body = await expectError(
      await query(h.url, { prompt: 'a', model: 'claude-does-not-exist' }),
      400,
      'invalid_request_error',
    );
    assert.match(body.error.message, /claude-does-not-exist/);
  });

  for (const status of [401, 403]) {
    it(`upstream ${status} → 502 naming the service's credentials, never the key`, async () => {
      h.fake.queue({ kind: 'error', status, message: `bad key ${SECRET_KEY}` });
      const body = await expectError(
        await query(h.url, { prompt: 'a' }),
        502,
        'upstream_authentication_error',
      );
      assert.match(body.error.message, /credentials/);
    });
  }

  it('upstream 429 → 429 with Retry-After', async () => {
    h.fake.queue({ kind: 'error', status: 429, retryAfter: '13' });
    const res = await query(h.url, { prompt: 'a' });
    assert.equal(res.headers.get('retry-after'), '13');
    await expectError(res, 429, 'rate_limit_error');
  });

  for (const status of [500, 502, 503, 529]) {
    it(`upstream ${status} → 503 with Retry-After`, async () => {
      h.fake.queue({ kind: 'error', status });
      const res = await query(h.url, { prompt: 'a' });
      assert.match(res.headers.get('retry-after') ?? '', /^\d+$/);
      await expectError(res, 503, 'overloaded_error');
    });
  }

  it('the same statuses with "stream": false', async () => {
    h.fake.queue({ kind: 'error', status: 529 });
    await expectError(await query(h.url, { prompt: 'a', stream: false }), 503, 'overloaded_error');
  });

  it('upstream unreachable → 502', async () => {
    const down = await startHarness({ ANTHROPIC_BASE_URL: 'http://127.0.0.1:1', MAX_RETRIES: '0' });
    try {
      await expectError(await query(down.url, { prompt: 'a' }), 502, 'upstream_unreachable');
    } finally {
      await down.close();
    }
  });

  it('upstream hangs up without answering → 502', async () => {
    h.fake.queue({ kind: 'hangup' });
    await expectError(await query(h.url, { prompt: 'a' }), 502, 'upstream_unreachable');
  });

  it('upstream silent past the read timeout → 504', async () => {
    h.fake.queue({ kind: 'stall' });
    const started = performance.now();
    await expectError(await query(h.url, { prompt: 'a' }), 504, 'upstream_timeout');
    const took = performance.now() - started;
    assert.ok(took >= 900 && took < 5000, `took ${took} ms for a 1 s read timeout`);
  });

  it('a stream that stalls before any event, with "stream": false → 504', async () => {
    h.fake.queue({ kind: 'message', fault: { type: 'stall', afterDeltas: 0 } });
    await expectError(await query(h.url, { prompt: 'a', stream: false }), 504, 'upstream_timeout');
  });

  it('a broken stream with "stream": false → 502, never a partial answer', async () => {
    h.fake.queue({ kind: 'message', deltas: ['a ', 'b ', 'c'], fault: { type: 'truncate', afterDeltas: 1 } });
    await expectError(await query(h.url, { prompt: 'a', stream: false }), 502, 'upstream_error');
  });
});
