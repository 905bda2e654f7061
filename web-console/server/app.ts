import Fastify, { type FastifyError, type FastifyInstance } from 'fastify';
import { readFileSync } from 'node:fs';
import { ERROR_CATALOGUE, type ErrorCode } from '../../policy/error-codes.js';
import type { SessionBroker } from '../../gateway/broker/session-broker.js';
import type { Runtime } from '../../gateway/runtime.js';
import { StoreUnavailableError } from '../../gateway/store/store.js';
import { InputError } from '../../gateway/identity/users.js';
import { runWithAuditContext } from '../../gateway/audit/audit-context.js';
import { ApiError, openApiDocument } from './api-route.js';
import { registerAlerts } from './alerts-api.js';
import { registerAuth } from './auth-api.js';
import { OidcClient, readClientSecret } from '../../gateway/identity/oidc-client.js';
import { registerSso } from './sso-api.js';
import websocket from '@fastify/websocket';
import { registerCommands } from './commands-api.js';
import { registerEvents } from './events-api.js';
import { registerRecordings } from './recordings-api.js';
import { registerStaticUi } from './static-ui.js';
import { registerTerminals } from './terminal-ws.js';
import { WebSocketSessions } from './web-session-keeper.js';
import { registerDevices } from './devices-api.js';
import { registerPeople } from './people-api.js';
import { registerRecords } from './records-api.js';
import { registerRequests } from './requests-api.js';
import { registerSessions } from './sessions-api.js';
import { registerTokens } from './tokens-api.js';

const VERSION = '0.2.0';

declare module 'fastify' {
  interface FastifyInstance {
    registeredRoutes: Array<{ method: string; url: string }>;
  }
}

/**
 * The web server: liveness and readiness for load balancers, and the JSON API, over TLS 1.2+.
 * Every route is declared once (api-route.ts); errors leave as `{ error: { code, message } }`
 * with the catalogue's status, never as a stack trace.
 */
export async function buildWebApp(rt: Runtime, broker: SessionBroker): Promise<FastifyInstance> {
  const routes: Array<{ method: string; url: string }> = [];
  const app = Fastify({
    logger: false,
    // The API takes small JSON bodies only.
    bodyLimit: 256 * 1024,
    https: {
      key: readFileSync(rt.config.paths.tlsKey),
      cert: readFileSync(rt.config.paths.tlsCert),
      minVersion: 'TLSv1.2',
    },
  });
  // Every route the server answers, for the authorization-matrix test (no route may escape its declaration).
  app.addHook('onRoute', (r) => {
    for (const m of [r.method].flat()) if (m !== 'HEAD') routes.push({ method: m, url: r.url });
  });
  app.decorate('registeredRoutes', routes);
  // The web's front door: every audit entry this request causes says so, with the client's
  // address; auth-api.ts narrows the channel once it knows how the caller signed in.
  app.addHook('onRequest', (req, _reply, done) => {
    runWithAuditContext({ channel: 'web', source: req.ip }, done);
  });
  app.addHook('onSend', async (_req, reply) => {
    reply.header('strict-transport-security', 'max-age=31536000');
    reply.header('x-content-type-options', 'nosniff');
    reply.header('x-frame-options', 'DENY');
    reply.header('referrer-policy', 'no-referrer');
    reply.header('cross-origin-opener-policy', 'same-origin');
    reply.header('permissions-policy', 'camera=(), microphone=(), geolocation=()');
    if (!reply.hasHeader('cache-control')) reply.header('cache-control', 'no-store');
  });
  app.setErrorHandler(async (err: FastifyError | ApiError | Error, req, reply) => {
    let code: ErrorCode;
    let status: number;
    let detail: string | null = null;
    if (err instanceof ApiError) {
      ({ code, status, detail } = err);
    } else if (err instanceof InputError) {
      code = err.code;
      status = ERROR_CATALOGUE[code].status;
      detail = err.message;
    } else if (err instanceof StoreUnavailableError) {
      code = 'STORE_UNAVAILABLE';
      status = 503;
    } else if ('statusCode' in err && typeof err.statusCode === 'number' && err.statusCode < 500) {
      // Fastify's own refusals: bad JSON, wrong content type, body too large.
      code = 'INVALID_INPUT';
      status = err.statusCode;
      detail = err.message;
    } else {
      rt.log.error('api request failed', { method: req.method, url: req.url, error: err.message });
      return reply.code(500).send({ error: { code: 'INTERNAL', message: 'Something went wrong on the gateway; the error was logged.' } });
    }
    return reply.code(status).send({ error: { code, message: ERROR_CATALOGUE[code].message, ...(detail ? { detail } : {}) } });
  });

  const status = { type: 'object', properties: { status: { type: 'string' } }, required: ['status'] } as const;
  app.get('/healthz', { schema: { response: { 200: status } } }, async () => ({ status: 'ok' }));
  // Ready while the store answers: a load balancer sends no new sign-ins to a node that would refuse them.
  app.get('/readyz', { schema: { response: { 200: status, 503: status } } }, async (_req, reply) => {
    try {
      await rt.store.ping();
      return { status: 'ready' };
    } catch {
      return reply.code(503).send({ status: 'store unavailable' });
    }
  });

  // WebSockets (browser terminal, live watch) at most 1 MiB a frame.
  // permessage-deflate: desktops are sent in stateless encodings (recordable, seekable) and rely on it.
  await app.register(websocket, { options: { maxPayload: 1024 * 1024, perMessageDeflate: { threshold: 1024 } } });
  const sockets = new WebSocketSessions(rt);
  // [sso.oidc]: a client secret file that cannot be read, or that others can read, stops start-up here.
  const sso = rt.config.sso.oidc ? new OidcClient(rt.config.sso.oidc, readClientSecret(rt.config), rt.log) : null;
  registerAuth(app, rt, sockets, sso);
  registerSso(app, rt, sso);
  registerSessions(app, rt);
  registerDevices(app, rt);
  registerPeople(app, rt);
  registerRequests(app, rt);
  registerRecords(app, rt);
  registerCommands(app, rt);
  registerTokens(app, rt);
  registerAlerts(app, rt);
  registerRecordings(app, rt);
  registerEvents(app, rt);
  registerTerminals(app, rt, broker, sockets);
  registerStaticUi(app);
  app.get('/api/openapi.json', async () => openApiDocument(VERSION));
  return app;
}
