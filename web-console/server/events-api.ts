import type { FastifyInstance } from 'fastify';
import { kindsVisibleTo, type AlertRoutes } from '../../policy/alert-rules.js';
import { can } from '../../policy/roles.js';
import type { BusMessage } from '../../gateway/cluster/bus.js';
import type { Runtime } from '../../gateway/runtime.js';
import { authorize, declareRoute, type Principal } from './api-route.js';
import { CONTENT_SECURITY_POLICY } from './static-ui.js';

/** Who sees an event: deciders the whole queue, a vendor their own requests, security the sessions and held commands, staff the alerts routed to them. */
function visibleTo(p: Principal, m: Extract<BusMessage, { type: 'event' }>, alertRoutes: AlertRoutes): boolean {
  const roles = p.user.roles;
  switch (m.topic) {
    case 'request':
    case 'grant':
      return can(roles, 'request.read_all').allow || m.data.requester === p.user.name || m.data.user === p.user.name;
    case 'session':
      return can(roles, 'session.list').allow || m.data.user === p.user.name;
    case 'command':
      return can(roles, 'command.review').allow || can(roles, 'command.read').allow;
    case 'alert':
      return can(roles, 'alert.read').allow && (kindsVisibleTo(roles, alertRoutes) as string[]).includes(String(m.data.kind));
    default:
      return false;
  }
}

/**
 * Server-sent events for the console's live views (the approver queue, live sessions, held
 * commands), fed from the cluster bus, so an event on any node reaches every console.
 */
export function registerEvents(app: FastifyInstance, rt: Runtime): void {
  const listeners = new Set<(m: Extract<BusMessage, { type: 'event' }>) => void>();
  rt.bus.subscribe((m) => {
    if (m.type === 'event') for (const l of listeners) l(m);
  });
  declareRoute({
    method: 'GET', url: '/api/events', access: 'signed-in', tags: ['events'], produces: 'text/event-stream',
    summary: 'Server-sent events: request, session and command changes and alerts you may see (event: topic; data: {action, id, …})',
  });
  app.get('/api/events', { config: { access: 'signed-in' } }, async (req, reply) => {
    const principal = authorize('signed-in', req.principal) as Principal;
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-store', connection: 'keep-alive',
      'x-content-type-options': 'nosniff', 'strict-transport-security': 'max-age=31536000', 'content-security-policy': CONTENT_SECURITY_POLICY,
    });
    res.write(': portcullis events\n\n');
    const send = (m: Extract<BusMessage, { type: 'event' }>): void => {
      if (!visibleTo(principal, m, rt.alerts.settings.routes)) return;
      const id = m.data.alert ?? m.data.request ?? m.data.session ?? m.data.command ?? m.data.grant ?? null;
      res.write(`event: ${m.topic}\ndata: ${JSON.stringify({ action: m.action, id, ...m.data })}\n\n`);
    };
    listeners.add(send);
    // A comment now and then keeps proxies from closing an idle stream.
    const keepalive = setInterval(() => res.write(': keepalive\n\n'), 25_000);
    req.raw.on('close', () => {
      clearInterval(keepalive);
      listeners.delete(send);
    });
  });
}
