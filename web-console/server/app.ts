import Fastify, { type FastifyInstance } from 'fastify';
import { readFileSync } from 'node:fs';
import type { Runtime } from '../../gateway/runtime.js';

/**
 * The web console's server. In this first cut it serves liveness and readiness for load
 * balancers over TLS 1.2+; the JSON API and the console land in their own issues.
 */
export async function buildWebApp(rt: Runtime): Promise<FastifyInstance> {
  const app = Fastify({
    logger: false,
    https: {
      key: readFileSync(rt.config.paths.tlsKey),
      cert: readFileSync(rt.config.paths.tlsCert),
      minVersion: 'TLSv1.2',
    },
  });
  app.addHook('onSend', async (_req, reply) => {
    reply.header('strict-transport-security', 'max-age=31536000');
    reply.header('x-content-type-options', 'nosniff');
    reply.header('cache-control', 'no-store');
  });
  const status = { type: 'object', properties: { status: { type: 'string' } }, required: ['status'] } as const;
  app.get('/healthz', { schema: { response: { 200: status } } }, async () => ({ status: 'ok' }));
  app.get('/readyz', { schema: { response: { 200: status, 503: status } } }, async (_req, reply) => {
    try {
      await rt.store.listAudit({ limit: 1 });
      return { status: 'ready' };
    } catch {
      return reply.code(503).send({ status: 'store unavailable' });
    }
  });
  return app;
}
