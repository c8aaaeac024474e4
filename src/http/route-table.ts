import type { FastifyInstance } from 'fastify';
import type { ErrorShape } from './error-shapes.ts';

interface Entry {
  readonly url: string;
  readonly pattern: RegExp;
  readonly methods: Set<string>;
  readonly shape: ErrorShape;
  /** Client keys and limits apply (see answerRoute). */
  readonly guarded: boolean;
}

/** One registered path, as `list()` gives it. */
export interface RouteInfo {
  readonly url: string;
  readonly methods: readonly string[];
  readonly shape: ErrorShape;
  readonly guarded: boolean;
}

function patternOf(url: string): RegExp {
  const escaped = url
    .split('/')
    .map((part) =>
      part.startsWith(':') ? '[^/]+' : part === '*' ? '.*' : part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'),
    )
    .join('/');
  return new RegExp(`^${escaped}$`);
}

/**
 * What is registered, as the error paths need it: the methods a path allows (for a 405's `Allow`) and
 * the error shape of its routes (also for requests that matched no route, such as a 404 under a
 * prefix that an API family declared, or a malformed request Node refused before routing).
 */
export class RouteTable {
  private readonly entries = new Map<string, Entry>();
  private readonly prefixes: { prefix: string; shape: ErrorShape }[] = [];

  /** Fills the table from every route `app` registers from now on. */
  watch(app: FastifyInstance): void {
    app.addHook('onRoute', (route) => {
      if (route.url === '*' || route.url.startsWith('/docs')) return;
      const methods = Array.isArray(route.method) ? route.method : [route.method];
      this.add(route.url, methods, route.config?.errorShape ?? 'default', route.config?.guarded === true);
    });
  }

  add(url: string, methods: readonly string[], shape: ErrorShape, guarded = false): void {
    const entry = this.entries.get(url) ?? {
      url,
      pattern: patternOf(url),
      methods: new Set<string>(),
      shape,
      guarded,
    };
    for (const method of methods) entry.methods.add(method);
    this.entries.set(url, entry);
  }

  /** Requests under `prefix` that match no route are answered in `shape` (e.g. `/v1/` in Anthropic's). */
  declarePrefix(prefix: string, shape: ErrorShape): void {
    this.prefixes.push({ prefix, shape });
    this.prefixes.sort((a, b) => b.prefix.length - a.prefix.length);
  }

  /** Every registered path with its methods (for tests that walk the routes, and for docs). */
  list(): RouteInfo[] {
    return [...this.entries.values()].map(({ url, methods, shape, guarded }) => ({
      url,
      methods: [...methods],
      shape,
      guarded,
    }));
  }

  private match(path: string): Entry | undefined {
    for (const entry of this.entries.values()) if (entry.pattern.test(path)) return entry;
    return undefined;
  }

  /** The methods `path` allows (`GET, HEAD`), or undefined when no route has that path. */
  allowed(path: string): string | undefined {
    const entry = this.match(path);
    return entry === undefined ? undefined : [...entry.methods].join(', ');
  }

  /** The error shape for a request to `path`, routed or not. */
  shapeFor(path: string): ErrorShape {
    return (
      this.match(path)?.shape ?? this.prefixes.find((p) => path.startsWith(p.prefix))?.shape ?? 'default'
    );
  }
}
