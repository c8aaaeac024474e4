import type { FastifyInstance } from 'fastify';
import { ConnectorError } from '../errors.ts';
import type { Guard } from '../limits/guard.ts';

/**
 * Authentication runs on every guarded (or authenticated) route before the body is even read: a missing
 * or wrong key is a 401 in the route's own error shape, and the key's name (never the key) goes to the log.
 */
export function installAuthentication(app: FastifyInstance, guard: Guard | undefined): void {
  app.decorateRequest('client', null);
  if (!guard) return;
  app.addHook('onRequest', (request, _reply, done) => {
    const { guarded, authenticated } = request.routeOptions.config;
    if (guarded !== true && authenticated !== true) {
      done();
      return;
    }
    const client = guard.authenticate(request.headers);
    if (client === 'missing' || client === 'invalid') {
      const message =
        client === 'missing'
          ? 'A client key is required: send Authorization: Bearer <key> or x-api-key: <key>'
          : 'The client key is not valid';
      done(new ConnectorError('authentication_error', 401, message));
      return;
    }
    request.client = client;
    request.record.keyName = client?.name;
    done();
  });
}
