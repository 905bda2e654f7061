import { randomUUID } from 'node:crypto';
import {
  approvalProgress, decideApproval, decideCancel, decideDenial, decideRevoke, effectiveTerms, governingRule, requestStatusAt, validateNewRequest,
  type AccessRequest, type ApprovalRecord, type ApprovalRule, type Narrowing, type ProfileChoice, type ProfileMode, type RequestedDevice,
} from '../../policy/approval-rules.js';
import { PROTOCOLS, type Protocol } from '../../policy/types.js';
import { pendingRoleChangeOf } from '../identity/role-changes.js';
import { InputError, refuse } from '../identity/users.js';
import { deviceLevel } from '../inventory/devices.js';
import type { Runtime } from '../runtime.js';
import type { ApprovalEntry, DeviceRecord, GrantRecord, RequestChange, RequestRecord, StoredNarrowing, UserRecord } from '../store/store.js';

/**
 * The access workflow (R-5.3c): a vendor asks, named people approve by the device's level, grants
 * follow, and everything can be revoked. policy/approval-rules.ts decides; this file loads the
 * facts, stores the outcome, audits every decision and tells the webhook.
 */

export interface RequestInput {
  devices: string[];
  protocols: string[];
  purpose: string;
  workOrder: string;
  notBefore: number;
  notAfter: number;
  /** Null: the default profile of the request's level. */
  profile: string | null;
  /** Files to the device (and changes to its files). */
  upload: boolean;
  /** Files from the device: data export (R-6.3e). */
  download: boolean;
}

export interface NarrowingInput {
  notBefore?: number;
  notAfter?: number;
  profile?: string;
  /** Only false narrows: strikes the upload asked for. */
  upload?: boolean;
  /** Only false narrows: strikes the download asked for. */
  download?: boolean;
}

type Rt = Runtime;

const iso = (t: number | null): string | null => (t === null ? null : new Date(t).toISOString());

/**
 * A profile by name, as policy sees it, with its rules (what tells a narrower profile from a
 * change); one no longer configured counts as the strictest mode, with nothing provable about it.
 */
function profileChoice(rt: Runtime, name: string): ProfileChoice {
  const p = rt.config.commandProfiles.get(name);
  return { name, mode: (p?.mode ?? 'restricted') as ProfileMode, definition: p ?? null };
}

function knownProfile(rt: Runtime, name: string): ProfileChoice {
  const p = rt.config.commandProfiles.get(name);
  if (!p) {
    const names = [...rt.config.commandProfiles.keys()];
    throw new InputError('PROFILE_UNKNOWN', `no command profile named ${JSON.stringify(name)}${names.length ? `; configured: ${names.join(', ')}` : ''}`);
  }
  return { name, mode: p.mode, definition: p };
}

const requestedDevice = (d: DeviceRecord): RequestedDevice => ({ name: d.name, state: d.state, protocols: d.protocols, level: deviceLevel(d) });

async function loadDevices(rt: Runtime, names: readonly string[]): Promise<DeviceRecord[]> {
  const devices: DeviceRecord[] = [];
  for (const name of names) {
    const d = await rt.store.getDevice(name);
    if (!d) throw new InputError('DEVICE_UNKNOWN', `no device named ${name}`);
    devices.push(d);
  }
  return devices;
}

function toNarrowing(rt: Runtime, n: StoredNarrowing | null): Narrowing | null {
  if (!n) return null;
  return {
    ...(n.notBefore !== undefined ? { notBefore: n.notBefore } : {}),
    ...(n.notAfter !== undefined ? { notAfter: n.notAfter } : {}),
    ...(n.profile !== undefined ? { profile: profileChoice(rt, n.profile) } : {}),
    ...(n.upload !== undefined ? { upload: n.upload } : {}),
    ...(n.download !== undefined ? { download: n.download } : {}),
  };
}

const toApprovalRecord = (rt: Runtime, a: ApprovalEntry): ApprovalRecord => ({ approver: a.by, roles: a.roles, at: a.at, narrowing: toNarrowing(rt, a.narrowing) });

/** The stored request as policy decides over it, with today's facts about its requester and devices. */
async function facts(rt: Runtime, r: RequestRecord): Promise<{ request: AccessRequest; devices: DeviceRecord[]; rule: ApprovalRule }> {
  const [requester, devices] = await Promise.all([rt.store.getUser(r.requester), loadDevices(rt, r.devices)]);
  const request: AccessRequest = {
    id: r.id, status: r.status,
    requester: { name: r.requester, roles: requester?.roles ?? [], nda: requester?.nda ?? null, expiresAt: requester?.expiresAt ?? null },
    devices: devices.map(requestedDevice), protocols: r.protocols, purpose: r.purpose, workOrder: r.workOrder, notBefore: r.notBefore,
    notAfter: r.notAfter, profile: profileChoice(rt, r.profile), upload: r.upload, download: r.download, approvals: r.approvals.map((a) => toApprovalRecord(rt, a)),
  };
  const rule = governingRule(request.devices, rt.config.approvalRules);
  if (!rule.allow) refuse(rule);
  return { request, devices, rule: rule.value };
}

async function load(rt: Runtime, id: string): Promise<RequestRecord> {
  const r = await rt.store.getRequest(id);
  if (!r) throw new InputError('NOT_FOUND', `no access request ${id}`);
  return r;
}

/** What the API and CLI show of a request: its status as of now, the terms after narrowing, and who approved. */
export async function requestView(rt: Runtime, r: RequestRecord) {
  const now = rt.clock();
  let progress: { slots: Array<{ roles: readonly string[]; filledBy: string | null }>; complete: boolean } | null = null;
  let level: number | null = null;
  let terms = { notBefore: r.notBefore, notAfter: r.notAfter, profile: r.profile, upload: r.upload, download: r.download };
  let status = r.status;
  try {
    const f = await facts(rt, r);
    level = f.rule.level;
    progress = approvalProgress(f.request.approvals, f.rule);
    const t = effectiveTerms(f.request);
    terms = { notBefore: t.notBefore, notAfter: t.notAfter, profile: t.profile.name, upload: t.upload, download: t.download };
    status = requestStatusAt(f.request, now);
  } catch {
    // A device deleted from under an old request: show what is stored.
  }
  const requester = await rt.store.getUser(r.requester);
  const org = requester?.org ? await rt.store.getOrg(requester.org) : null;
  return {
    id: r.id, requester: r.requester, organisation: org?.displayName ?? requester?.org ?? null,
    devices: r.devices, protocols: r.protocols, purpose: r.purpose, workOrder: r.workOrder,
    requested: { from: iso(r.notBefore) as string, until: iso(r.notAfter) as string, profile: r.profile, upload: r.upload, download: r.download },
    effective: { from: iso(terms.notBefore) as string, until: iso(terms.notAfter) as string, profile: terms.profile, upload: terms.upload, download: terms.download },
    level, status,
    approvals: r.approvals.map((a) => ({
      by: a.by, roles: a.roles, at: iso(a.at) as string, comment: a.comment,
      narrowing: a.narrowing ? {
        ...(a.narrowing.notBefore !== undefined ? { from: iso(a.narrowing.notBefore) as string } : {}),
        ...(a.narrowing.notAfter !== undefined ? { until: iso(a.narrowing.notAfter) as string } : {}),
        ...(a.narrowing.profile !== undefined ? { profile: a.narrowing.profile } : {}),
        ...(a.narrowing.upload !== undefined ? { upload: a.narrowing.upload } : {}),
        ...(a.narrowing.download !== undefined ? { download: a.narrowing.download } : {}),
      } : null,
    })),
    stillNeeded: progress ? progress.slots.filter((s) => s.filledBy === null).map((s) => [...s.roles]) : [],
    // S-1.3: each profile swap that made earlier approvals lapse, so the requester and the next approvers see it.
    changes: (r.changes ?? []).map((c) => ({
      at: iso(c.at) as string, by: c.by, kind: c.kind, from: c.from, to: c.to, reason: c.reason,
      before: { from: iso(c.before.notBefore) as string, until: iso(c.before.notAfter) as string, profile: c.before.profile, upload: c.before.upload, download: c.before.download },
      lapsed: c.lapsed.map((a) => ({ by: a.by, at: iso(a.at) as string })),
    })),
    decidedAt: iso(r.decidedAt), decidedBy: r.decidedBy, reason: r.reason, grantIds: r.grantIds, createdAt: iso(r.createdAt) as string,
  };
}

export type RequestView = Awaited<ReturnType<typeof requestView>>;

/** A vendor's application (R-5.3c): checked against the level of its strictest device before it is stored. */
export async function createRequest(rt: Rt, requester: UserRecord, input: RequestInput): Promise<RequestRecord> {
  const now = rt.clock();
  const badProtocol = input.protocols.find((p) => !(PROTOCOLS as readonly string[]).includes(p));
  if (badProtocol) throw new InputError('INVALID_INPUT', `unknown protocol ${JSON.stringify(badProtocol)} (${PROTOCOLS.join(', ')})`);
  const devices = await loadDevices(rt, [...new Set(input.devices)]);
  const requested = devices.map(requestedDevice);
  const rule = governingRule(requested, rt.config.approvalRules);
  if (!rule.allow) refuse(rule);
  const profileName = input.profile ?? rt.config.defaultProfiles[rule.value.level];
  if (!profileName) throw new InputError('PROFILE_UNKNOWN', `name a command profile: level ${rule.value.level} has no default profile configured`);
  const profile = knownProfile(rt, profileName);
  const decision = validateNewRequest({
    requester: { name: requester.name, roles: requester.roles, nda: requester.nda, expiresAt: requester.expiresAt },
    devices: requested, protocols: [...new Set(input.protocols)] as Protocol[], purpose: input.purpose, workOrder: input.workOrder,
    notBefore: input.notBefore, notAfter: input.notAfter, profile, upload: input.upload, download: input.download,
  }, rt.config.approvalRules, now);
  if (!decision.allow) {
    await rt.audit.record('request.refused', {
      actor: requester.name, outcome: 'denied', code: decision.code,
      data: { devices: input.devices, protocols: input.protocols, workOrder: input.workOrder, detail: decision.detail },
    });
    refuse(decision);
  }
  const record: RequestRecord = {
    id: `r-${randomUUID().slice(0, 8)}`, requester: requester.name, devices: requested.map((d) => d.name), protocols: [...new Set(input.protocols)] as Protocol[],
    purpose: input.purpose.trim(), workOrder: input.workOrder.trim(), notBefore: input.notBefore, notAfter: input.notAfter, profile: profile.name,
    upload: input.upload, download: input.download, status: 'pending', approvals: [], decidedAt: null, decidedBy: null, reason: null, grantIds: [], changes: [], createdAt: now, version: 0,
  };
  await rt.store.createRequest(record);
  const summary = {
    request: record.id, requester: record.requester, org: requester.org, devices: record.devices, level: decision.value.level, protocols: record.protocols,
    purpose: record.purpose, workOrder: record.workOrder, from: iso(record.notBefore), until: iso(record.notAfter), profile: record.profile, upload: record.upload, download: record.download,
  };
  await rt.audit.record('request.created', { actor: requester.name, outcome: 'info', data: summary });
  rt.notifier.notify('request.created', summary);
  return record;
}

/**
 * Decisions race between approvers (and nodes): each is applied only to the version it was
 * decided on; on a clash the request is read again and decided again.
 */
async function decideAndStore<T>(rt: Runtime, id: string, step: (r: RequestRecord) => Promise<{ patch: Partial<RequestRecord>; result: T } | null>): Promise<T> {
  for (let attempt = 0; attempt < 5; attempt++) {
    const r = await load(rt, id);
    const out = await step(r);
    if (out === null) throw new InputError('REQUEST_NOT_PENDING', `request ${id} changed meanwhile`);
    if (await rt.store.updateRequestIf(id, r.version, out.patch)) return out.result;
  }
  throw new InputError('REQUEST_NOT_PENDING', `request ${id} kept changing while this decision was made; reload it`);
}

async function refusedDecision(rt: Runtime, actor: string, type: string, id: string, d: { code: Parameters<typeof refuse>[0]['code']; detail: string }): Promise<never> {
  await rt.audit.record(type, { actor, outcome: 'denied', code: d.code, data: { request: id, detail: d.detail } });
  refuse(d);
}

/** One approval (optionally narrowing); the last one needed turns the request into grants. */
export async function approveRequest(rt: Rt, approver: UserRecord, id: string, narrowing: NarrowingInput | null, comment: string | null): Promise<{ approved: boolean; grants: GrantRecord[]; change: RequestChange | null }> {
  // Approvals are a named person's (R-5.3c, S-1.3): a service account never gives one, whatever its roles.
  if (approver.serviceAccount === true) await refusedDecision(rt, approver.name, 'request.approval_refused', id, { code: 'SERVICE_ACCOUNT_NOT_A_PERSON', detail: `${approver.name} is a service account` });
  if (narrowing?.profile !== undefined) knownProfile(rt, narrowing.profile);
  const now = rt.clock();
  const roleChangePending = (await pendingRoleChangeOf(rt, approver.name)) !== null;
  const outcome = await decideAndStore(rt, id, async (r) => {
    const { request, devices, rule } = await facts(rt, r);
    // Devices are re-checked at approval: one quarantined or decommissioned since the request is not granted.
    for (const d of devices) {
      if (d.state === 'quarantined') await refusedDecision(rt, approver.name, 'request.approval_refused', id, { code: 'DEVICE_QUARANTINED', detail: `device ${d.name} is quarantined (R-6.4b)` });
      if (d.state === 'decommissioned') await refusedDecision(rt, approver.name, 'request.approval_refused', id, { code: 'DEVICE_DECOMMISSIONED', detail: `device ${d.name} was decommissioned (R-6.5)` });
    }
    const d = decideApproval(request, { approver: approver.name, roles: approver.roles, narrowing: toNarrowing(rt, narrowing ?? null), roleChangePending }, rule, now);
    if (!d.allow) return refusedDecision(rt, approver.name, 'request.approval_refused', id, d);
    const pc = d.value.profileChange;
    // After a profile change the new profile is the request's own, so this approval no longer narrows it.
    const { profile: _swapped, ...kept } = narrowing ?? {};
    const stored = pc ? kept : narrowing ?? {};
    const entry: ApprovalEntry = { by: approver.name, roles: [...approver.roles], at: now, narrowing: Object.keys(stored).length ? stored : null, comment };
    const change: RequestChange | null = pc ? {
      at: now, by: approver.name, kind: 'profile', from: pc.from.name, to: pc.to.name, reason: pc.reason,
      before: { notBefore: r.notBefore, notAfter: r.notAfter, profile: r.profile, upload: r.upload, download: r.download }, lapsed: r.approvals,
    } : null;
    const grants: GrantRecord[] = d.value.fullyApproved
      ? r.devices.flatMap((device) => r.protocols.map((protocol): GrantRecord => ({
        id: `g-${randomUUID().slice(0, 8)}`, user: r.requester, device, protocol, notBefore: d.value.terms.notBefore, notAfter: d.value.terms.notAfter,
        createdBy: approver.name, createdAt: now, revokedAt: null, revokedBy: null, requestId: r.id, profile: d.value.terms.profile.name,
        allowUpload: d.value.terms.upload, allowDownload: d.value.terms.download,
      })))
      : [];
    return {
      patch: {
        approvals: pc ? [entry] : [...r.approvals, entry], status: d.value.status,
        // The request now stands for the new profile, with the window and file transfer as narrowed before.
        ...(pc && change ? {
          profile: pc.to.name, notBefore: pc.base.notBefore, notAfter: pc.base.notAfter, upload: pc.base.upload, download: pc.base.download, changes: [...(r.changes ?? []), change],
        } : {}),
        ...(d.value.fullyApproved ? { decidedAt: now, decidedBy: approver.name, grantIds: grants.map((g) => g.id) } : {}),
      },
      result: { r, outcome: d.value, grants, level: rule.level, change },
    };
  });
  const { r, grants, change } = outcome;
  if (change) {
    // The requester is told (R-5.3c): the request they made is not the one now being approved.
    const changed = {
      request: id, requester: r.requester, devices: r.devices, by: approver.name, from: change.from, to: change.to, reason: change.reason,
      lapsedApprovals: change.lapsed.map((a) => a.by),
    };
    await rt.audit.record('request.changed', { actor: approver.name, outcome: 'info', data: changed });
    for (const a of change.lapsed) {
      await rt.audit.record('request.approval_lapsed', { actor: approver.name, outcome: 'info', data: { request: id, approver: a.by, approvedAt: iso(a.at), because: `profile ${change.from} → ${change.to}` } });
    }
    rt.notifier.notify('request.changed', changed);
  }
  const data = {
    request: id, requester: r.requester, devices: r.devices, level: outcome.level, approver: approver.name, roles: approver.roles,
    narrowing: narrowing ?? null, comment, stillNeeded: outcome.outcome.slots.filter((s) => s.filledBy === null).map((s) => s.roles),
  };
  await rt.audit.record('request.approval', { actor: approver.name, outcome: 'ok', data });
  if (outcome.outcome.fullyApproved) {
    for (const g of grants) {
      await rt.store.createGrant(g);
      await rt.audit.record('grant.created', {
        actor: approver.name, outcome: 'ok',
        data: { grant: g.id, request: id, user: g.user, device: g.device, protocol: g.protocol, from: iso(g.notBefore), until: iso(g.notAfter), profile: g.profile, allowUpload: g.allowUpload, allowDownload: g.allowDownload },
      });
    }
    const t = outcome.outcome.terms;
    const approved = { request: id, requester: r.requester, devices: r.devices, approvers: outcome.outcome.approvals.map((a) => a.approver), from: iso(t.notBefore), until: iso(t.notAfter), profile: t.profile.name, upload: t.upload, download: t.download, grants: grants.map((g) => g.id) };
    await rt.audit.record('request.approved', { actor: approver.name, outcome: 'ok', data: approved });
    rt.notifier.notify('request.approved', approved);
  } else {
    rt.notifier.notify('request.approval', data);
  }
  return { approved: outcome.outcome.fullyApproved, grants, change };
}

export async function denyRequest(rt: Rt, denier: UserRecord, id: string, reason: string): Promise<void> {
  if (denier.serviceAccount === true) await refusedDecision(rt, denier.name, 'request.denial_refused', id, { code: 'SERVICE_ACCOUNT_NOT_A_PERSON', detail: `${denier.name} is a service account` });
  const now = rt.clock();
  const roleChangePending = (await pendingRoleChangeOf(rt, denier.name)) !== null;
  const r = await decideAndStore(rt, id, async (rec) => {
    const { request, rule } = await facts(rt, rec);
    const d = decideDenial(request, { denier: denier.name, roles: denier.roles, reason, roleChangePending }, rule, now);
    if (!d.allow) return refusedDecision(rt, denier.name, 'request.denial_refused', id, d);
    return { patch: { status: 'denied', decidedAt: now, decidedBy: denier.name, reason: d.value.reason }, result: rec };
  });
  const data = { request: id, requester: r.requester, devices: r.devices, by: denier.name, reason: reason.trim() };
  await rt.audit.record('request.denied', { actor: denier.name, outcome: 'denied', data });
  rt.notifier.notify('request.denied', data);
}

export async function cancelRequest(rt: Rt, actor: UserRecord, id: string): Promise<void> {
  const now = rt.clock();
  const r = await decideAndStore(rt, id, async (rec) => {
    const { request } = await facts(rt, rec);
    const d = decideCancel(request, actor.name, now);
    if (!d.allow) return refusedDecision(rt, actor.name, 'request.cancel_refused', id, d);
    return { patch: { status: 'cancelled', decidedAt: now, decidedBy: actor.name }, result: rec };
  });
  const data = { request: id, requester: r.requester, devices: r.devices };
  await rt.audit.record('request.cancelled', { actor: actor.name, outcome: 'info', data });
  rt.notifier.notify('request.cancelled', data);
}

async function revokeGrants(rt: Runtime, grants: GrantRecord[], actor: string, reason: string): Promise<string[]> {
  const now = rt.clock();
  const revoked: string[] = [];
  for (const g of grants) {
    if (g.revokedAt !== null) continue;
    await rt.store.revokeGrant(g.id, now, actor);
    revoked.push(g.id);
    await rt.audit.record('grant.revoked', { actor, outcome: 'ok', data: { grant: g.id, request: g.requestId, user: g.user, device: g.device, reason } });
  }
  // Every node re-decides its live sessions now: those on a revoked grant end within a second.
  if (revoked.length > 0) await rt.bus.publish({ type: 'access.changed', from: rt.node });
  return revoked;
}

/** An approver or security takes back an approved request: its grants end, and the sessions on them. */
export async function revokeRequest(rt: Rt, actor: UserRecord, id: string, reason: string): Promise<string[]> {
  const now = rt.clock();
  const r = await decideAndStore(rt, id, async (rec) => {
    const { request } = await facts(rt, rec);
    const d = decideRevoke(actor.roles, actor.name, { ...request, status: requestStatusAt(request, now) });
    if (!d.allow) return refusedDecision(rt, actor.name, 'request.revoke_refused', id, d);
    return { patch: { status: 'revoked', decidedAt: now, decidedBy: actor.name, reason: reason.trim() || null }, result: rec };
  });
  const revoked = await revokeGrants(rt, await rt.store.listGrants({ requestId: id }), actor.name, reason);
  const data = { request: id, requester: r.requester, devices: r.devices, by: actor.name, reason, grantsRevoked: revoked };
  await rt.audit.record('request.revoked', { actor: actor.name, outcome: 'ok', data });
  rt.notifier.notify('request.revoked', data);
  return revoked;
}

/** One grant taken back (CLI `grant revoke`, API): checked by the same policy as a request's revocation. */
export async function revokeGrant(rt: Rt, actor: UserRecord | null, actorName: string, grantId: string, reason: string): Promise<void> {
  const g = await rt.store.getGrant(grantId);
  if (!g) throw new InputError('NOT_FOUND', `no grant ${grantId}`);
  if (actor) {
    const d = decideRevoke(actor.roles, actor.name, { id: g.id, user: g.user, device: g.device, protocol: g.protocol, notBefore: g.notBefore, notAfter: g.notAfter, revokedAt: g.revokedAt });
    if (!d.allow) {
      await rt.audit.record('grant.revoke_refused', { actor: actorName, outcome: 'denied', code: d.code, data: { grant: grantId, detail: d.detail } });
      refuse(d);
    }
  } else if (g.revokedAt !== null) {
    throw new InputError('ALREADY_REVOKED', `grant ${grantId} was already revoked`);
  }
  await revokeGrants(rt, [g], actorName, reason);
  rt.notifier.notify('grant.revoked', { grant: g.id, request: g.requestId, user: g.user, device: g.device, by: actorName, reason });
}

/**
 * Requests nobody decided before their window passed become `expired`, once (the conditional
 * update makes one node do it), with an audit entry and a notification. Run periodically.
 */
export async function expireRequests(rt: Rt): Promise<string[]> {
  const now = rt.clock();
  const expired: string[] = [];
  for (const r of await rt.store.listRequests({ status: 'pending', limit: 10_000 })) {
    let status;
    try {
      status = requestStatusAt((await facts(rt, r)).request, now);
    } catch {
      status = r.notAfter <= now ? 'expired' : 'pending';
    }
    if (status !== 'expired') continue;
    if (!(await rt.store.updateRequestIf(r.id, r.version, { status: 'expired', decidedAt: now, decidedBy: 'portcullis' }))) continue;
    expired.push(r.id);
    const data = { request: r.id, requester: r.requester, devices: r.devices, windowEnded: iso(r.notAfter) };
    await rt.audit.record('request.expired', { actor: 'portcullis', outcome: 'info', data });
    rt.notifier.notify('request.expired', data);
  }
  return expired;
}
