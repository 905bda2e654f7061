import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { ALERT_KINDS, kindsVisibleTo } from '../../policy/alert-rules.js';
import { InputError } from '../../gateway/identity/users.js';
import type { Runtime } from '../../gateway/runtime.js';
import type { AlertRecord } from '../../gateway/store/store.js';
import { route } from './api-route.js';

const iso = (t: number): string => new Date(t).toISOString();

const alertSchema = z.object({
  id: z.string(),
  seq: z.number(),
  kind: z.string(),
  severity: z.string(),
  subject: z.string(),
  summary: z.string(),
  triggers: z.array(z.number()),
  raisedAt: z.string(),
  node: z.string(),
  acknowledgement: z.object({ by: z.string(), at: z.string(), comment: z.string() }).nullable(),
}).meta({ id: 'Alert' });

const view = (a: AlertRecord): z.input<typeof alertSchema> => ({
  ...a, raisedAt: iso(a.raisedAt), acknowledgement: a.acknowledgement ? { ...a.acknowledgement, at: iso(a.acknowledgement.at) } : null,
});

/** Most of a list a console page needs; the badge shows "99+" beyond it. */
const UNREAD_CAP = 100;

/**
 * Security's alert list (R-A.5b, R-5.5a): each person sees the kinds `[alerts.routes]` gives one of
 * their roles, newest first; an alert is unread until someone acknowledges it, with a comment
 * that goes into the audit log.
 */
export function registerAlerts(app: FastifyInstance, rt: Runtime): void {
  const { store } = rt;
  const routes = rt.alerts.settings.routes;

  route(app, {
    method: 'GET', url: '/api/alerts', access: 'alert.read', tags: ['alerts'],
    summary: 'Alerts of the kinds routed to your roles, newest first (kind filters; unacknowledged=true leaves out acknowledged ones)',
    query: z.object({
      kind: z.enum(ALERT_KINDS).optional(),
      unacknowledged: z.enum(['true', 'false']).optional(),
      limit: z.coerce.number().int().min(1).max(1000).default(200),
    }),
    response: z.object({ alerts: z.array(alertSchema) }),
  }, async ({ query, principal }) => {
    const visible = kindsVisibleTo(principal.user.roles, routes);
    const kinds = query.kind ? visible.filter((k) => k === query.kind) : visible;
    return { alerts: (await store.listAlerts({ kinds, limit: query.limit, ...(query.unacknowledged === 'true' ? { unacknowledged: true } : {}) })).map(view) };
  });

  route(app, {
    method: 'GET', url: '/api/alerts/unread', access: 'alert.read', tags: ['alerts'],
    summary: 'How many alerts routed to your roles nobody has acknowledged yet (at most 100 counted), and which kinds you see',
    response: z.object({ unread: z.number(), capped: z.boolean(), kinds: z.array(z.string()) }),
  }, async ({ principal }) => {
    const kinds = kindsVisibleTo(principal.user.roles, routes);
    const open = await store.listAlerts({ kinds, unacknowledged: true, limit: UNREAD_CAP });
    return { unread: open.length, capped: open.length >= UNREAD_CAP, kinds };
  });

  route(app, {
    method: 'POST', url: '/api/alerts/:id/acknowledge', access: 'alert.acknowledge', tags: ['alerts'],
    summary: 'Acknowledge an alert with a comment (what was done, or why nothing needs doing); audited, once per alert',
    params: z.object({ id: z.string().regex(/^al-\d{1,15}$/, { message: 'expected an alert id such as al-42' }) }),
    body: z.object({ comment: z.string().trim().min(1, { message: 'say what was done or why nothing needs doing' }).max(1000) }),
    response: alertSchema,
  }, async ({ params, body, principal }) => {
    const a = await store.getAlert(params.id);
    // An alert of a kind not routed to the caller's roles is answered as if it did not exist.
    if (!a || !kindsVisibleTo(principal.user.roles, routes).includes(a.kind as (typeof ALERT_KINDS)[number])) {
      throw new InputError('NOT_FOUND', `no alert ${params.id}`);
    }
    const ack = { by: principal.user.name, at: rt.clock(), comment: body.comment };
    if (!(await store.acknowledgeAlert(a.id, ack))) {
      const now = await store.getAlert(a.id);
      throw new InputError('ALERT_ALREADY_ACKNOWLEDGED', `acknowledged by ${now?.acknowledgement?.by ?? 'someone'}`);
    }
    await rt.audit.record('alerts.acknowledged', {
      actor: principal.user.name, outcome: 'ok',
      data: { alert: a.id, seq: a.seq, kind: a.kind, subject: a.subject, comment: body.comment },
    });
    await rt.bus.publish({ type: 'event', topic: 'alert', action: 'acknowledged', data: { alert: a.id, kind: a.kind, by: ack.by }, from: rt.node }).catch(() => undefined);
    return view({ ...a, acknowledgement: ack });
  });
}
