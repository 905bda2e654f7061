import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { revokeGrant } from '../../gateway/access/requests.js';
import { lockUser } from '../../gateway/identity/users.js';
import { deviceLevel } from '../../gateway/inventory/devices.js';
import type { Runtime } from '../../gateway/runtime.js';
import type { SessionRecord } from '../../gateway/store/store.js';
import { ApiError, authorize, route } from './api-route.js';

const iso = (t: number | null): string | null => (t === null ? null : new Date(t).toISOString());

/** Looks each key up once per request, however many sessions share it. */
function memo<T>(get: (key: string) => Promise<T>): (key: string) => Promise<T> {
  const cache = new Map<string, Promise<T>>();
  return (key) => {
    let p = cache.get(key);
    if (!p) {
      p = get(key);
      cache.set(key, p);
    }
    return p;
  };
}

export const sessionSchema = z.object({
  id: z.string(),
  user: z.string(),
  device: z.string(),
  protocol: z.string(),
  via: z.string(),
  kind: z.string(),
  command: z.string().nullable(),
  client: z.string(),
  node: z.string(),
  /** Whether that node's heartbeat is current (false: the node is gone and the session will be marked interrupted). */
  nodeAlive: z.boolean(),
  startedAt: z.string(),
  endedAt: z.string().nullable(),
  endReason: z.string().nullable(),
  exitStatus: z.number().nullable(),
  bytesIn: z.number(),
  bytesOut: z.number(),
  recordingId: z.string(),
  grantId: z.string(),
  grantEnds: z.string().nullable(),
  deviceLevel: z.number().nullable(),
  killRequested: z.object({ by: z.string(), at: z.string(), reason: z.string(), grantRevoked: z.boolean(), lockedUntil: z.string().nullable() }).nullable(),
}).meta({ id: 'Session' });

export function sessionView(s: SessionRecord, alive: ReadonlySet<string>, extra: { grantEnds: number | null; deviceLevel: number | null } = { grantEnds: null, deviceLevel: null }): z.input<typeof sessionSchema> {
  return {
    grantEnds: iso(extra.grantEnds), deviceLevel: extra.deviceLevel,
    id: s.id, user: s.user, device: s.device, protocol: s.protocol, via: s.via, kind: s.kind, command: s.command, client: s.clientAddress,
    node: s.node, nodeAlive: alive.has(s.node), startedAt: iso(s.startedAt) as string, endedAt: iso(s.endedAt), endReason: s.endReason,
    exitStatus: s.exitStatus, bytesIn: s.bytesIn, bytesOut: s.bytesOut, recordingId: s.recordingId, grantId: s.grantId,
    killRequested: s.killRequest ? {
      by: s.killRequest.by, at: iso(s.killRequest.at) as string, reason: s.killRequest.reason,
      grantRevoked: s.killRequest.grantRevoked ?? false, lockedUntil: iso(s.killRequest.lockedUntil ?? null),
    } : null,
  };
}

/** Sessions of every node, from the shared store; kill reaches the node holding the session through the cluster bus. */
export function registerSessions(app: FastifyInstance, rt: Runtime): void {
  const { store, clock, bus } = rt;

  route(app, {
    method: 'GET', url: '/api/sessions', access: 'session.list', tags: ['sessions'],
    summary: 'Sessions of all gateway nodes, newest first; open=true lists the live ones with the node holding each',
    query: z.object({
      open: z.enum(['true', 'false']).optional().transform((v) => v === 'true'),
      user: z.string().max(64).optional(),
      device: z.string().max(64).optional(),
      limit: z.coerce.number().int().min(1).max(1000).default(100),
    }),
    response: z.object({ sessions: z.array(sessionSchema), nodes: z.array(z.object({ id: z.string(), ssh: z.string(), web: z.string(), startedAt: z.string() })) }),
  }, async ({ query }) => {
    const [sessions, nodes] = await Promise.all([
      store.listSessions({ limit: query.limit, open: query.open, ...(query.user ? { user: query.user } : {}), ...(query.device ? { device: query.device } : {}) }),
      store.listNodes(clock()),
    ]);
    const alive = new Set(nodes.map((n) => n.id));
    const grantEnd = memo((id) => store.getGrant(id).then((g) => g?.notAfter ?? null));
    const level = memo((name) => store.getDevice(name).then((d) => (d ? deviceLevel(d) : null)));
    return {
      sessions: await Promise.all(sessions.map(async (s) => sessionView(s, alive, { grantEnds: await grantEnd(s.grantId), deviceLevel: await level(s.device) }))),
      nodes: nodes.map((n) => ({ id: n.id, ssh: n.ssh, web: n.web, startedAt: new Date(n.startedAt).toISOString() })),
    };
  });

  route(app, {
    method: 'POST', url: '/api/sessions/:id/kill', access: 'session.kill', tags: ['sessions'], status: 202,
    summary: 'End a live session on whichever node holds it (within a second), optionally also revoking its grant and locking the account; the vendor is told the reason',
    params: z.object({ id: z.string().min(1).max(64) }),
    body: z.object({
      reason: z.string().trim().min(1).max(500),
      /** Also revoke the grant the session runs on: no new session on it (GRANT_REVOKED). */
      revokeGrant: z.boolean().default(false),
      /** Also lock the vendor's account for this long (1 minute to 1 year; security unlocks earlier by hand). */
      lockMinutes: z.number().int().min(1).max(525_600).optional(),
    }),
    response: z.object({ session: z.string(), node: z.string(), status: z.literal('killing'), grantRevoked: z.boolean(), lockedUntil: z.string().nullable() }),
  }, async ({ params, body, principal }) => {
    const s = await store.getSession(params.id);
    if (!s) throw new ApiError('NOT_FOUND', `no session ${params.id}`);
    if (s.endedAt !== null) throw new ApiError('SESSION_NOT_LIVE', `session ${s.id} already ended (${s.endReason ?? 'unknown'})`);
    const by = principal.user.name;
    // Every part is checked before any is done: a kill that could only half happen does not start.
    if (body.revokeGrant) authorize('grant.revoke', principal);
    if (body.lockMinutes !== undefined) {
      authorize('user.lock', principal);
      if (s.user === by) throw new ApiError('INVALID_INPUT', 'you cannot lock your own account');
      if (!(await store.getUser(s.user))) throw new ApiError('NOT_FOUND', `no account ${s.user}`);
    }
    const grant = body.revokeGrant ? await store.getGrant(s.grantId) : null;
    const lockedUntil = body.lockMinutes !== undefined ? clock() + body.lockMinutes * 60_000 : null;
    // The request is kept with the session first, with what else it does (the holding node's tick
    // acts on it even if the bus message is lost, and a tick that sees the revocation or the lock
    // before the kill reads it again and tells the vendor the kill's reason), audited, then the
    // grant and the account (each its own audit entry), then announced so the node acts at once.
    await store.updateSession(s.id, { killRequest: { by, at: clock(), reason: body.reason, grantRevoked: body.revokeGrant, lockedUntil } });
    await rt.audit.record('session.kill', {
      actor: by, outcome: 'ok',
      data: { session: s.id, user: s.user, device: s.device, node: s.node, reason: body.reason, revokeGrant: body.revokeGrant, grant: s.grantId, lockedUntil: iso(lockedUntil) },
    });
    if (grant && grant.revokedAt === null) await revokeGrant(rt, principal.user, by, grant.id, `session ${s.id} killed: ${body.reason}`);
    if (lockedUntil !== null) await lockUser(rt, s.user, lockedUntil, `session ${s.id} killed: ${body.reason}`, by);
    await bus.publish({ type: 'session.kill', session: s.id, by, reason: body.reason, from: rt.node, grantRevoked: body.revokeGrant, lockedUntil });
    return { session: s.id, node: s.node, status: 'killing' as const, grantRevoked: body.revokeGrant, lockedUntil: iso(lockedUntil) };
  });
}
