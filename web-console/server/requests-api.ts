import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { REQUEST_STATUSES } from '../../policy/approval-rules.js';
import { PROTOCOLS } from '../../policy/types.js';
import {
  approveRequest, cancelRequest, createRequest, denyRequest, requestView, revokeGrant, revokeRequest,
} from '../../gateway/access/requests.js';
import { InputError } from '../../gateway/identity/users.js';
import { maintenanceRecords } from '../../gateway/access/maintenance-records.js';
import type { Runtime } from '../../gateway/runtime.js';
import type { GrantRecord, RequestRecord } from '../../gateway/store/store.js';
import { isoTime, permits, route, type Principal } from './api-route.js';

const iso = (t: number | null): string | null => (t === null ? null : new Date(t).toISOString());

const requestSchema = z.object({
  id: z.string(), requester: z.string(), organisation: z.string().nullable(), devices: z.array(z.string()), protocols: z.array(z.string()), purpose: z.string(), workOrder: z.string(),
  requested: z.object({ from: z.string(), until: z.string(), profile: z.string(), upload: z.boolean(), download: z.boolean() }),
  effective: z.object({ from: z.string(), until: z.string(), profile: z.string(), upload: z.boolean(), download: z.boolean() }),
  level: z.number().nullable(), status: z.string(),
  approvals: z.array(z.object({
    by: z.string(), roles: z.array(z.string()), at: z.string(), comment: z.string().nullable(),
    narrowing: z.object({ from: z.string().optional(), until: z.string().optional(), profile: z.string().optional(), upload: z.boolean().optional(), download: z.boolean().optional() }).nullable(),
  })),
  stillNeeded: z.array(z.array(z.string())),
  /** Profile swaps by an approver that were not provably narrower: the approvals before each lapsed (S-1.3). */
  changes: z.array(z.object({
    at: z.string(), by: z.string(), kind: z.literal('profile'), from: z.string(), to: z.string(), reason: z.string(),
    before: z.object({ from: z.string(), until: z.string(), profile: z.string(), upload: z.boolean(), download: z.boolean() }),
    lapsed: z.array(z.object({ by: z.string(), at: z.string() })),
  })),
  decidedAt: z.string().nullable(), decidedBy: z.string().nullable(), reason: z.string().nullable(), grantIds: z.array(z.string()), createdAt: z.string(),
}).meta({ id: 'AccessRequest' });

const grantSchema = z.object({
  id: z.string(), user: z.string(), device: z.string(), protocol: z.string(), from: z.string(), until: z.string(), request: z.string().nullable(),
  profile: z.string().nullable(), allowUpload: z.boolean(), allowDownload: z.boolean(), createdBy: z.string(), revokedAt: z.string().nullable(), revokedBy: z.string().nullable(),
}).meta({ id: 'Grant' });

export const grantView = (g: GrantRecord): z.input<typeof grantSchema> => ({
  id: g.id, user: g.user, device: g.device, protocol: g.protocol, from: iso(g.notBefore) as string, until: iso(g.notAfter) as string, request: g.requestId,
  profile: g.profile, allowUpload: g.allowUpload, allowDownload: g.allowDownload, createdBy: g.createdBy, revokedAt: iso(g.revokedAt), revokedBy: g.revokedBy,
});

const idParams = z.object({ id: z.string().min(1).max(64) });

export function registerRequests(app: FastifyInstance, rt: Runtime): void {
  const { store } = rt;

  /** A vendor sees their own requests; deciders see all. Someone else's request reads as unknown, not as forbidden. */
  const visible = async (id: string, p: Principal): Promise<RequestRecord> => {
    const r = await store.getRequest(id);
    if (!r || (r.requester !== p.user.name && !permits(p, 'request.read_all'))) throw new InputError('NOT_FOUND', `no access request ${id}`);
    return r;
  };

  route(app, {
    method: 'GET', url: '/api/requests', access: 'signed-in', tags: ['requests'],
    summary: 'Access requests: your own, or (approvers, security, admins) everyone\'s; status=pending is the approval queue',
    query: z.object({
      status: z.enum(REQUEST_STATUSES).optional(), mine: z.enum(['true', 'false']).optional().transform((v) => v === 'true'),
      device: z.string().max(64).optional(), limit: z.coerce.number().int().min(1).max(1000).default(200),
    }),
    response: z.object({ requests: z.array(requestSchema) }),
  }, async ({ query, principal }) => {
    const all = permits(principal, 'request.read_all') && !query.mine;
    // Status is computed (a pending request whose window passed reads as expired), so filter after the view.
    const records = await store.listRequests({ ...(all ? {} : { requester: principal.user.name }), ...(query.device ? { device: query.device } : {}), limit: query.limit });
    const views = await Promise.all(records.map((r) => requestView(rt, r)));
    return { requests: views.filter((v) => !query.status || v.status === query.status) };
  });

  route(app, {
    method: 'GET', url: '/api/requests/:id', access: 'signed-in', tags: ['requests'], summary: 'One access request with its approvals and what it still needs',
    params: idParams, response: requestSchema,
  }, async ({ params, principal }) => requestView(rt, await visible(params.id, principal)));

  route(app, {
    method: 'GET', url: '/api/requests/:id/history', access: 'request.read_all', tags: ['requests'],
    summary: 'For the approver: the requester\'s recent sessions (maintenance records) on the devices of this request',
    params: idParams, response: z.object({ sessions: z.array(z.record(z.string(), z.unknown())) }),
  }, async ({ params, principal }) => {
    const r = await visible(params.id, principal);
    const perDevice = await Promise.all(r.devices.map((device) => maintenanceRecords(rt, { vendor: r.requester, device, limit: 10 })));
    const sessions = perDevice.flat().sort((a, b) => b.start.localeCompare(a.start)).slice(0, 20);
    return { sessions: sessions.map((m) => ({ ...m })) };
  });

  route(app, {
    method: 'POST', url: '/api/requests', access: 'request.create', tags: ['requests'], status: 201,
    summary: 'Ask for access (R-5.3c): devices, protocols, purpose, work order, window, command profile, upload, download (fileTransfer: true, the older form, asks for both)',
    body: z.object({
      devices: z.array(z.string().min(1).max(64)).min(1).max(20), protocols: z.array(z.enum(PROTOCOLS)).min(1),
      purpose: z.string().max(2000), workOrder: z.string().max(100), from: isoTime, until: isoTime.optional(),
      durationMinutes: z.number().int().min(1).max(24 * 60).optional(), profile: z.string().max(64).nullable().optional(),
      upload: z.boolean().optional(), download: z.boolean().optional(),
      /** The form before upload and download were split: true asks for both. */
      fileTransfer: z.boolean().optional(),
    }).refine((b) => (b.until === undefined) !== (b.durationMinutes === undefined), { message: 'give exactly one of until or durationMinutes' })
      .refine((b) => b.fileTransfer === undefined || (b.upload === undefined && b.download === undefined), { message: 'give upload and download, or the older fileTransfer, not both' }),
    response: requestSchema,
  }, async ({ body, principal }) => {
    const notAfter = body.until ?? body.from + (body.durationMinutes as number) * 60_000;
    const r = await createRequest(rt, principal.user, {
      devices: body.devices, protocols: body.protocols, purpose: body.purpose, workOrder: body.workOrder, notBefore: body.from, notAfter,
      profile: body.profile ?? null, upload: body.upload ?? body.fileTransfer ?? false, download: body.download ?? body.fileTransfer ?? false,
    });
    return requestView(rt, r);
  });

  route(app, {
    method: 'POST', url: '/api/requests/:id/approve', access: 'request.decide', tags: ['requests'],
    summary: 'Approve, optionally narrowing the window or the profile, or striking upload or download (fileTransfer: false strikes both); never widening. A profile that is not provably narrower changes the request: the approvals before lapse and the requester is told (request.changed). The last approval needed creates the grants',
    params: idParams,
    body: z.object({
      narrowing: z.object({
        from: isoTime.optional(), until: isoTime.optional(), profile: z.string().max(64).optional(),
        upload: z.literal(false).optional(), download: z.literal(false).optional(), fileTransfer: z.literal(false).optional(),
      }).optional(),
      comment: z.string().max(500).nullable().optional(),
    }),
    response: z.object({ request: requestSchema, approved: z.boolean(), grants: z.array(grantSchema) }),
  }, async ({ params, body, principal }) => {
    await visible(params.id, principal);
    const n = body.narrowing;
    const narrowing = n ? {
      ...(n.from !== undefined ? { notBefore: n.from } : {}), ...(n.until !== undefined ? { notAfter: n.until } : {}),
      ...(n.profile !== undefined ? { profile: n.profile } : {}),
      ...(n.upload === false || n.fileTransfer === false ? { upload: false } : {}), ...(n.download === false || n.fileTransfer === false ? { download: false } : {}),
    } : null;
    const r = await approveRequest(rt, principal.user, params.id, narrowing, body.comment ?? null);
    return { request: await requestView(rt, (await store.getRequest(params.id)) as RequestRecord), approved: r.approved, grants: r.grants.map(grantView) };
  });

  route(app, {
    method: 'POST', url: '/api/requests/:id/deny', access: 'request.decide', tags: ['requests'], summary: 'Deny a request, with the reason the vendor will read',
    params: idParams, body: z.object({ reason: z.string().max(2000) }), response: requestSchema,
  }, async ({ params, body, principal }) => {
    await visible(params.id, principal);
    await denyRequest(rt, principal.user, params.id, body.reason);
    return requestView(rt, (await store.getRequest(params.id)) as RequestRecord);
  });

  route(app, {
    method: 'POST', url: '/api/requests/:id/cancel', access: 'signed-in', tags: ['requests'], summary: 'The requester withdraws a pending request',
    params: idParams, response: requestSchema,
  }, async ({ params, principal }) => {
    await visible(params.id, principal);
    await cancelRequest(rt, principal.user, params.id);
    return requestView(rt, (await store.getRequest(params.id)) as RequestRecord);
  });

  route(app, {
    method: 'POST', url: '/api/requests/:id/revoke', access: 'grant.revoke', tags: ['requests'],
    summary: 'Revoke an approved request: its grants end, and live sessions on them within a second',
    params: idParams, body: z.object({ reason: z.string().min(1).max(500) }), response: z.object({ request: requestSchema, grantsRevoked: z.array(z.string()) }),
  }, async ({ params, body, principal }) => {
    await visible(params.id, principal);
    const grantsRevoked = await revokeRequest(rt, principal.user, params.id, body.reason);
    return { request: await requestView(rt, (await store.getRequest(params.id)) as RequestRecord), grantsRevoked };
  });

  route(app, {
    method: 'GET', url: '/api/grants', access: 'signed-in', tags: ['requests'], summary: 'Grants: your own, or (deciders, admins) everyone\'s',
    query: z.object({ user: z.string().max(64).optional(), device: z.string().max(64).optional(), current: z.enum(['true', 'false']).optional().transform((v) => v === 'true') }),
    response: z.object({ grants: z.array(grantSchema) }),
  }, async ({ query, principal }) => {
    const all = permits(principal, 'grant.read_all');
    const user = all ? query.user : principal.user.name;
    const now = rt.clock();
    const grants = (await store.listGrants({ ...(user ? { user } : {}), ...(query.device ? { device: query.device } : {}) }))
      .filter((g) => !query.current || (g.revokedAt === null && g.notAfter > now));
    return { grants: grants.map(grantView) };
  });

  route(app, {
    method: 'POST', url: '/api/grants/:id/revoke', access: 'grant.revoke', tags: ['requests'],
    summary: 'Revoke one grant: live sessions on it end within a second', params: idParams, body: z.object({ reason: z.string().min(1).max(500) }),
    response: grantSchema,
  }, async ({ params, body, principal }) => {
    await revokeGrant(rt, principal.user, principal.user.name, params.id, body.reason);
    return grantView((await store.getGrant(params.id)) as GrantRecord);
  });
}
