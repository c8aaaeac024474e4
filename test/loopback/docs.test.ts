import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startHarness, type Harness } from '../helpers/harness.ts';

interface OpenApi {
  openapi: string;
  paths: Record<
    string,
    Record<
      string,
      {
        requestBody?: {
          content: Record<
            string,
            { schema: Record<string, unknown>; examples?: Record<string, { value: unknown }> }
          >;
        };
        responses: Record<string, { content?: Record<string, unknown>; headers?: Record<string, unknown> }>;
      }
    >
  >;
}

describe('docs and health', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness();
  });
  after(async () => {
    assert.equal(h.fake.requests.length, 0, 'docs or health called the upstream');
    await h.close();
  });

  it('GET /healthz answers 200 without calling the upstream', async () => {
    const res = await fetch(`${h.url}/healthz`);
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { status: 'ok' });
  });

  it('/openapi.json documents /llm/query: request schema with examples, SSE and JSON answers, error envelope', async () => {
    const spec = (await (await fetch(`${h.url}/openapi.json`)).json()) as OpenApi;
    assert.match(spec.openapi, /^3\./);
    const op = spec.paths['/llm/query']?.post;
    assert.ok(op, 'no POST /llm/query');
    const media = op.requestBody?.content['application/json'];
    const schema = media?.schema;
    assert.ok(schema);
    assert.equal(schema.additionalProperties, false);
    const properties = schema.properties as Record<string, unknown>;
    for (const field of [
      'prompt',
      'messages',
      'system',
      'model',
      'max_tokens',
      'temperature',
      'top_p',
      'top_k',
      'stop_sequences',
      'stream',
      'resumable',
      'background',
    ]) {
      assert.ok(field in properties, `request schema lacks ${field}`);
    }
    const examples = Object.values(media.examples ?? {});
    assert.ok(examples.length >= 2, 'no request examples');
    assert.ok(examples.some((e) => (e.value as { prompt?: unknown }).prompt !== undefined));
    assert.deepEqual(Object.keys(op.responses['200']?.content ?? {}).sort(), [
      'application/json',
      'text/event-stream',
    ]);
    assert.deepEqual(Object.keys(op.responses['200']?.headers ?? {}).sort(), [
      'x-answer-id',
      'x-request-id',
      'x-served-model',
    ]);
    assert.deepEqual(Object.keys(op.responses['202']?.headers ?? {}).sort(), ['location', 'x-answer-id']);
    for (const status of ['400', '413', '415', '429', '502', '503', '504']) {
      const envelope = JSON.stringify(op.responses[status]?.content ?? {});
      assert.match(envelope, /"error"/, `status ${status} lacks the error envelope`);
    }
  });

  it("/openapi.json documents the stored answers' routes", async () => {
    const doc = (await (await fetch(`${h.url}/openapi.json`)).json()) as {
      paths: Record<string, Record<string, { responses: Record<string, unknown> }>>;
    };
    for (const [path, method] of [
      ['/llm/answers/{id}/events', 'get'],
      ['/llm/answers/{id}', 'get'],
      ['/llm/answers/{id}/cancel', 'post'],
    ] as const) {
      const op = doc.paths[path]?.[method];
      assert.ok(op, `${method} ${path} is not documented`);
      assert.ok(op.responses['200'] && op.responses['404'], `${method} ${path}: 200 and 404`);
    }
  });

  it('/docs serves Swagger UI with its assets from the service itself (no CDN)', async () => {
    const html = await (await fetch(`${h.url}/docs/`)).text();
    assert.match(html, /swagger-ui/i);
    const sources = [...html.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1] ?? '');
    assert.ok(sources.length > 0);
    for (const src of sources) {
      assert.doesNotMatch(src, /^(https?:)?\/\//, `external asset ${src}`);
      const asset = await fetch(new URL(src, `${h.url}/docs/`));
      assert.equal(asset.status, 200, src);
      await asset.arrayBuffer();
    }
  });
});
