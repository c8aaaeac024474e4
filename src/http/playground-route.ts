import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { FastifyInstance } from 'fastify';

/** The package's `public/` folder: `../../public` from both `src/http/` (tsx) and `dist/http/` (built). */
const PUBLIC_DIR = new URL('../../public/', import.meta.url);

/** URL path → file in PUBLIC_DIR and its content type. */
const FILES: ReadonlyArray<readonly [path: string, file: string, type: string]> = [
  ['/', 'index.html', 'text/html; charset=utf-8'],
  ['/playground/playground.js', 'playground.js', 'text/javascript; charset=utf-8'],
  ['/playground/sse.js', 'sse.js', 'text/javascript; charset=utf-8'],
  ['/playground/usage.js', 'usage.js', 'text/javascript; charset=utf-8'],
  ['/playground/playground.css', 'playground.css', 'text/css; charset=utf-8'],
];

/** The page loads only its own scripts and styles and talks only to this service. */
const CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "connect-src 'self'",
  "img-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

/**
 * Serves the streaming playground at `GET /` and its assets under `/playground/`, read once at
 * start-up. No content hashes in the names, so browsers revalidate (`no-cache`) against an ETag.
 */
export async function playgroundRoutes(app: FastifyInstance): Promise<void> {
  const files = await Promise.all(
    FILES.map(async ([path, file, type]) => ({
      path,
      type,
      body: await readFile(new URL(file, PUBLIC_DIR)),
    })),
  );
  for (const { path, type, body } of files) {
    const etag = `"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"`;
    app.get(path, { schema: { hide: true } }, (request, reply) => {
      void reply.headers({
        'content-type': type,
        'cache-control': 'no-cache',
        etag,
        'content-security-policy': CSP,
        'x-content-type-options': 'nosniff',
        'referrer-policy': 'no-referrer',
      });
      if (request.headers['if-none-match'] === etag) return reply.code(304).send();
      return reply.send(body);
    });
  }
}
