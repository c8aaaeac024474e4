import { createRequire } from 'node:module';
import type { Pool } from 'undici';

/**
 * undici's Pool alone, by its private module path: undici's index also loads fetch, WebSocket, the
 * caches and the mocks, which the service never uses. Measured A/B in three runs, the index instead
 * of this path: RSS at start +6.4 to +7.9 MiB (of 86–90), after 256 paced streams +4 to +9 MiB; with
 * 1,000 open streams or after the whole run, within noise (−1.6 to +5.7 MiB). The path is private
 * API: undici is pinned to an exact version in package.json, and test/unit/undici-pool.test.ts fails
 * by name if a new version moves or changes it.
 */
export const UNDICI_POOL_MODULE = 'undici/lib/dispatcher/pool.js';

export const UndiciPool = createRequire(import.meta.url)(UNDICI_POOL_MODULE) as typeof Pool;
