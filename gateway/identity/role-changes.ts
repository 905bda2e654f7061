import { randomUUID } from 'node:crypto';
import {
  decideRoleChangeConfirmation, decideRoleChangeRejection, planRoleChange, roleChangeStatusAt, type RoleActor, type RolePlan,
} from '../../policy/role-changes.js';
import type { Role } from '../../policy/types.js';
import type { Runtime } from '../runtime.js';
import type { RoleChangeRecord, RoleChangeStatus, UserRecord } from '../store/store.js';
import { InputError, refuse } from './users.js';

/**
 * Separation of duties over roles (S-1.3): policy/role-changes.ts decides; this file loads the
 * facts, stores the outcome, audits every step and tells the webhook. A privileged role (admin,
 * security, device_manager, approver) given by one admin waits here until a second admin confirms
 * it, someone rejects it, or `auth.role_change_expiry` passes.
 */

/** CLI changes without a proven person are the host operator's, named `local:<os user>`. */
export const isHostOperator = (actor: string): boolean => actor.startsWith('local:');

const iso = (t: number | null): string | null => (t === null ? null : new Date(t).toISOString());

async function actorFacts(rt: Runtime, actor: string): Promise<RoleActor> {
  if (isHostOperator(actor)) return 'host-operator';
  const u = await rt.store.getUser(actor);
  if (!u) throw new InputError('FORBIDDEN', `${actor} is not a known user`);
  // Roles are named people's business (S-1.3): a service account (automation, tokens only) neither
  // asks for, confirms nor rejects a change, whatever its roles; else one admin and a token made
  // for it would be two admins.
  if (u.serviceAccount === true) {
    await rt.audit.record('user.role_change_refused', { actor, outcome: 'denied', code: 'SERVICE_ACCOUNT_NOT_A_PERSON', data: { detail: 'a service account takes no part in role changes' } });
    throw new InputError('SERVICE_ACCOUNT_NOT_A_PERSON', `${actor} is a service account: role changes are asked, confirmed and rejected by named people (S-1.3)`);
  }
  return { name: u.name, roles: u.roles };
}

/** Admins who could confirm today: people (not service accounts), enabled, unexpired holders of the admin role. */
export async function activeAdmins(rt: Runtime): Promise<string[]> {
  const now = rt.clock();
  return (await rt.store.listUsers()).filter((u) => u.roles.includes('admin') && u.serviceAccount !== true && !u.disabled && (u.expiresAt === null || u.expiresAt > now)).map((u) => u.name);
}

/** The change that waits for this person's confirmation, if any (one that has expired unswept does not count). */
export async function pendingRoleChangeOf(rt: Runtime, user: string): Promise<RoleChangeRecord | null> {
  const now = rt.clock();
  const pending = await rt.store.listRoleChanges({ user, status: 'pending', limit: 20 });
  return pending.find((c) => roleChangeStatusAt(c, now) === 'pending') ?? null;
}

/**
 * What asking for `wanted` as `target`'s roles does (target null: an account being created).
 * A refusal is audited (`user.role_change_refused`) and thrown.
 */
export async function planRoles(rt: Runtime, actor: string, name: string, current: readonly Role[], wanted: readonly Role[]): Promise<RolePlan> {
  const pending = await pendingRoleChangeOf(rt, name);
  const plan = planRoleChange(await actorFacts(rt, actor), { name, roles: current }, wanted, pending !== null);
  if (!plan.allow) {
    await rt.audit.record('user.role_change_refused', {
      actor, outcome: 'denied', code: plan.code, data: { user: name, rolesBefore: [...current], rolesAsked: [...wanted], detail: plan.detail },
    });
    refuse(plan);
  }
  return plan.value;
}

/** Files the privileged part of a plan as a change waiting for a second admin. */
export async function fileRoleChange(rt: Runtime, actor: string, name: string, rolesBefore: readonly Role[], added: readonly Role[]): Promise<RoleChangeRecord> {
  const now = rt.clock();
  const change: RoleChangeRecord = {
    id: `rc-${randomUUID().slice(0, 8)}`, user: name, requestedBy: actor, requestedAt: now, expiresAt: now + rt.config.auth.role_change_expiry,
    rolesBefore: [...rolesBefore], added: [...added], status: 'pending', decidedBy: null, decidedAt: null, reason: null,
  };
  await rt.store.createRoleChange(change);
  const data = { change: change.id, user: name, added: change.added, rolesBefore: change.rolesBefore, requestedBy: actor, expiresAt: iso(change.expiresAt) };
  await rt.audit.record('role_change.requested', { actor, outcome: 'info', data });
  rt.notifier.notify('role_change.requested', data);
  return change;
}

async function load(rt: Runtime, id: string): Promise<RoleChangeRecord> {
  const c = await rt.store.getRoleChange(id);
  if (!c) throw new InputError('NOT_FOUND', `no role change ${id}`);
  return c;
}

async function refused(rt: Runtime, actor: string, type: string, c: RoleChangeRecord, d: { code: Parameters<typeof refuse>[0]['code']; detail: string }): Promise<never> {
  await rt.audit.record(type, { actor, outcome: 'denied', code: d.code, data: { change: c.id, user: c.user, added: c.added, requestedBy: c.requestedBy, detail: d.detail } });
  refuse(d);
}

/** A second admin (or, to bootstrap a single-admin install's second admin, the host operator) confirms: the roles apply now. */
export async function confirmRoleChange(rt: Runtime, id: string, actor: string): Promise<{ change: RoleChangeRecord; user: UserRecord }> {
  const c = await load(rt, id);
  const now = rt.clock();
  const d = decideRoleChangeConfirmation(c, await actorFacts(rt, actor), await activeAdmins(rt), now);
  if (!d.allow) return refused(rt, actor, 'role_change.confirm_refused', c, d);
  const settled = { status: 'confirmed' as const, decidedBy: actor, decidedAt: now, reason: null };
  if (!(await rt.store.settleRoleChange(id, settled))) throw new InputError('ROLE_CHANGE_NOT_PENDING', `role change ${id} was settled meanwhile`);
  const u = await rt.store.getUser(c.user);
  if (!u) throw new InputError('NOT_FOUND', `no user named ${c.user}`);
  const roles = [...new Set([...u.roles, ...c.added])];
  await rt.store.updateUser(c.user, { roles });
  const data = { change: id, user: c.user, added: c.added, roles, requestedBy: c.requestedBy, bootstrap: d.value.bootstrap };
  await rt.audit.record('role_change.confirmed', { actor, outcome: 'ok', data });
  rt.notifier.notify('role_change.confirmed', data);
  await rt.bus.publish({ type: 'access.changed', from: rt.node, user: c.user });
  return { change: { ...c, ...settled }, user: { ...u, roles } };
}

export async function rejectRoleChange(rt: Runtime, id: string, actor: string, reason: string | null): Promise<RoleChangeRecord> {
  const c = await load(rt, id);
  const now = rt.clock();
  const d = decideRoleChangeRejection(c, await actorFacts(rt, actor), now);
  if (!d.allow) return refused(rt, actor, 'role_change.reject_refused', c, d);
  const text = reason?.trim() ? reason.trim().slice(0, 500) : null;
  const settled = { status: 'rejected' as const, decidedBy: actor, decidedAt: now, reason: text };
  if (!(await rt.store.settleRoleChange(id, settled))) throw new InputError('ROLE_CHANGE_NOT_PENDING', `role change ${id} was settled meanwhile`);
  const data = { change: id, user: c.user, added: c.added, requestedBy: c.requestedBy, reason: text };
  await rt.audit.record('role_change.rejected', { actor, outcome: 'denied', data });
  rt.notifier.notify('role_change.rejected', data);
  return { ...c, ...settled };
}

/**
 * Changes nobody confirmed in time become `expired`, once (the store settles each only while it
 * is pending, so one node wins), with an audit entry and a notification. Run periodically.
 */
export async function expireRoleChanges(rt: Runtime): Promise<string[]> {
  const now = rt.clock();
  const expired: string[] = [];
  for (const c of await rt.store.listRoleChanges({ status: 'pending', limit: 10_000 })) {
    if (roleChangeStatusAt(c, now) !== 'expired') continue;
    if (!(await rt.store.settleRoleChange(c.id, { status: 'expired', decidedBy: 'portcullis', decidedAt: now, reason: 'not confirmed in time' }))) continue;
    expired.push(c.id);
    const data = { change: c.id, user: c.user, added: c.added, requestedBy: c.requestedBy, expiredAt: iso(c.expiresAt) };
    await rt.audit.record('role_change.expired', { actor: 'portcullis', outcome: 'info', data });
    rt.notifier.notify('role_change.expired', data);
  }
  return expired;
}

/** What the API and CLI show of a change: its status as of now. */
export function roleChangeView(c: RoleChangeRecord, now: number) {
  return {
    id: c.id, user: c.user, requestedBy: c.requestedBy, requestedAt: iso(c.requestedAt) as string, expiresAt: iso(c.expiresAt) as string,
    rolesBefore: c.rolesBefore, added: c.added, status: roleChangeStatusAt(c, now) as RoleChangeStatus,
    decidedBy: c.decidedBy, decidedAt: iso(c.decidedAt), reason: c.reason,
  };
}

export type RoleChangeView = ReturnType<typeof roleChangeView>;
