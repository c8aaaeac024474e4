import type { FastifyInstance } from 'fastify';
import type { Guard } from '../limits/guard.ts';
import type { Metrics } from '../observability/metrics.ts';

export interface SystemRouteDeps {
  metrics?: Metrics | undefined;
  /** The text `/metrics` serves; default: this process's registry. */
  scrapeMetrics?: (() => Promise<string>) | undefined;
  metricsRequireKey: boolean;
  isDraining?: (() => boolean) | undefined;
  isReady?: (() => boolean | Promise<boolean>) | undefined;
  guard?: Guard | undefined;
}

/** `/healthz`, `/readyz` and `/metrics`: for load balancers, orchestrators and Prometheus. */
export function systemRoutes(deps: SystemRouteDeps) {
  return (app: FastifyInstance, _options: unknown, done: () => void): void => {
    app.get('/healthz', { schema: { summary: 'Liveness: 200 without calling the upstream' } }, () => ({
      status: 'ok',
    }));
    app.get(
      '/readyz',
      {
        schema: {
          summary: 'Readiness: 200 when ready to serve, 503 while draining or when a dependency is down',
        },
      },
      async (_request, reply) => {
        const ready =
          !(deps.isDraining?.() ?? false) &&
          (deps.guard?.healthy() ?? true) &&
          (await (deps.isReady?.() ?? true));
        return reply.code(ready ? 200 : 503).send({ status: ready ? 'ready' : 'not_ready' });
      },
    );
    const { metrics } = deps;
    if (metrics) {
      const scrape = deps.scrapeMetrics ?? (() => metrics.registry.metrics());
      app.get(
        '/metrics',
        {
          schema: { summary: 'Prometheus metrics', hide: true },
          config: { authenticated: deps.metricsRequireKey },
        },
        async (_request, reply) => reply.type(metrics.registry.contentType).send(await scrape()),
      );
    }
    done();
  };
}
