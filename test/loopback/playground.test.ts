import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startHarness, type Harness } from '../helpers/harness.ts';

describe('playground files', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness();
  });
  after(async () => {
    assert.equal(h.fake.requests.length, 0, 'serving the playground called the upstream');
    await h.close();
  });

  it('GET / serves the page with a self-only CSP, and every asset it links', async () => {
    const res = await fetch(`${h.url}/`);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'text/html; charset=utf-8');
    assert.equal(res.headers.get('cache-control'), 'no-cache');
    assert.match(res.headers.get('content-security-policy') ?? '', /^default-src 'none'; script-src 'self';/);
    const html = await res.text();
    const assets = [...html.matchAll(/(?:src|href)="([^"]+)"/g)]
      .map((m) => m[1] ?? '')
      .filter((src) => src !== 'docs');
    assert.deepEqual(assets.sort(), [
      'playground/playground.css',
      'playground/playground.js',
      'playground/usage.js',
    ]);
    const types = { css: 'text/css; charset=utf-8', js: 'text/javascript; charset=utf-8' };
    for (const src of [...assets, 'playground/sse.js']) {
      const asset = await fetch(new URL(src, `${h.url}/`));
      assert.equal(asset.status, 200, src);
      assert.equal(asset.headers.get('content-type'), types[src.endsWith('.css') ? 'css' : 'js'], src);
      assert.equal(asset.headers.get('x-content-type-options'), 'nosniff');
      await asset.arrayBuffer();
    }
  });

  it('revalidates with the ETag and answers HEAD', async () => {
    const first = await fetch(`${h.url}/playground/playground.js`);
    await first.arrayBuffer();
    const etag = first.headers.get('etag');
    assert.ok(etag);
    const again = await fetch(`${h.url}/playground/playground.js`, { headers: { 'if-none-match': etag } });
    assert.equal(again.status, 304);
    assert.equal(await again.text(), '');
    const head = await fetch(`${h.url}/`, { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(head.headers.get('content-type'), 'text/html; charset=utf-8');
  });

  it('POST / is a 405 naming GET, HEAD, and / is not an API operation', async () => {
    const res = await fetch(`${h.url}/`, { method: 'POST' });
    assert.equal(res.status, 405);
    assert.equal(res.headers.get('allow'), 'GET, HEAD');
    assert.equal(((await res.json()) as { error: { type: string } }).error.type, 'method_not_allowed');
    const spec = (await (await fetch(`${h.url}/openapi.json`)).json()) as { paths: Record<string, unknown> };
    assert.deepEqual(
      Object.keys(spec.paths).filter((path) => path === '/' || path.startsWith('/playground')),
      [],
    );
  });
});
