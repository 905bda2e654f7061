/**
 * Separation of duties over roles (S-1.3, R-5.3c): nobody changes their own roles, and giving
 * anyone a privileged role takes two admins — one asks, a second confirms. Taking roles away is
 * safe and takes effect at once. Plain data in, a decision with its reason out; `now` is passed in.
 */
import { deny, ROLES, type Decision, type Role } from './types.js';

/** The roles that decide access, read recordings or administer: giving one needs a second admin's confirmation. */
export const PRIVILEGED_ROLES = ['admin', 'security', 'device_manager', 'approver'] as const satisfies readonly Role[];

export const isPrivileged = (role: Role): boolean => (PRIVILEGED_ROLES as readonly Role[]).includes(role);

export const ROLE_CHANGE_STATUSES = ['pending', 'confirmed', 'rejected', 'expired'] as const;
export type RoleChangeStatus = (typeof ROLE_CHANGE_STATUSES)[number];

/** Who asks: a named person with their roles, or the host operator (the gateway machine's own authority, as at `init`). */
export type RoleActor = { name: string; roles: readonly Role[] } | 'host-operator';

export interface RolePlan {
  /** The roles the person holds from now on: removals and non-privileged additions apply at once. */
  immediate: Role[];
  /** Privileged roles that wait for a second admin's confirmation (empty: nothing waits). */
  pendingAdd: Role[];
  added: Role[];
  removed: Role[];
}

const sorted = (roles: readonly Role[]): Role[] => ROLES.filter((r) => roles.includes(r));
const list = (roles: readonly Role[]): string => roles.join(', ');

/**
 * What asking for `wanted` as the roles of `target` does. `current` is empty for an account being
 * created; `pendingForTarget` says a privileged change for them already waits. Refusals:
 * SELF_ROLE_CHANGE (anyone, their own roles, in either direction), ROLE_CHANGE_NEEDS_ADMIN (a
 * privileged role asked by someone who is not a named admin), ROLE_CHANGE_ALREADY_PENDING.
 */
export function planRoleChange(actor: RoleActor, target: { name: string; roles: readonly Role[] }, wanted: readonly Role[], pendingForTarget: boolean): Decision<RolePlan> {
  const want = sorted([...new Set(wanted)]);
  if (want.length === 0) return deny('INVALID_INPUT', 'a user needs at least one role');
  const current = sorted(target.roles);
  const added = want.filter((r) => !current.includes(r));
  const removed = current.filter((r) => !want.includes(r));
  if (added.length === 0 && removed.length === 0) return { allow: true, value: { immediate: current, pendingAdd: [], added, removed } };
  if (actor !== 'host-operator' && actor.name === target.name) {
    return deny('SELF_ROLE_CHANGE', `${actor.name} asked to change their own roles (${list(current)} → ${list(want)}); another admin must do it (S-1.3)`);
  }
  const pendingAdd = added.filter(isPrivileged);
  if (pendingAdd.length > 0) {
    if (actor === 'host-operator' || !actor.roles.includes('admin')) {
      return deny('ROLE_CHANGE_NEEDS_ADMIN', `giving ${target.name} the role ${list(pendingAdd)} is asked by a named admin and confirmed by a second one (S-1.3)${actor === 'host-operator' ? '; the host operator can do neither: give --actor NAME' : ''}`);
    }
    if (pendingForTarget) {
      return deny('ROLE_CHANGE_ALREADY_PENDING', `a privileged role change for ${target.name} already waits for confirmation; confirm or reject it first`);
    }
  }
  const immediate = sorted([...current.filter((r) => !removed.includes(r)), ...added.filter((r) => !isPrivileged(r))]);
  return { allow: true, value: { immediate, pendingAdd, added, removed } };
}

/** A pending privileged role change as policy decides over it. */
export interface RoleChangeFacts {
  id: string;
  /** The person whose roles change. */
  user: string;
  requestedBy: string;
  added: readonly Role[];
  status: RoleChangeStatus;
  expiresAt: number;
}

/** Pending until confirmed, rejected, or until it expires unconfirmed. */
export function roleChangeStatusAt(change: Pick<RoleChangeFacts, 'status' | 'expiresAt'>, now: number): RoleChangeStatus {
  return change.status === 'pending' && now >= change.expiresAt ? 'expired' : change.status;
}

function stillPending(change: RoleChangeFacts, now: number): Decision<null> {
  const status = roleChangeStatusAt(change, now);
  if (status === 'expired') return deny('ROLE_CHANGE_EXPIRED', `role change ${change.id} was not confirmed before ${new Date(change.expiresAt).toISOString()}; ask again`);
  if (status !== 'pending') return deny('ROLE_CHANGE_NOT_PENDING', `role change ${change.id} is already ${status}`);
  return { allow: true, value: null };
}

/**
 * Who confirms: a second admin, who is neither the one who asked nor the person whose roles
 * change. The host operator confirms only to bootstrap a single-admin install: a change that
 * makes an admin, asked by an admin who is still active, when no other active admin exists who
 * could confirm it (`activeAdmins`: enabled, unexpired holders of the admin role).
 */
export function decideRoleChangeConfirmation(change: RoleChangeFacts, confirmer: RoleActor, activeAdmins: readonly string[], now: number): Decision<{ bootstrap: boolean }> {
  const open = stillPending(change, now);
  if (!open.allow) return open;
  if (confirmer === 'host-operator') {
    const others = activeAdmins.filter((a) => a !== change.user && a !== change.requestedBy);
    if (!change.added.includes('admin')) {
      return deny('ROLE_CHANGE_NEEDS_ADMIN', `role change ${change.id} gives ${list(change.added)}: a second admin confirms it; the host operator confirms only the change that gives a single-admin install its second admin`);
    }
    if (others.length > 0) {
      return deny('ROLE_CHANGE_NEEDS_ADMIN', `role change ${change.id} is confirmed by another admin (${list(others as Role[])}); the host operator confirms only while no other admin exists`);
    }
    if (!activeAdmins.includes(change.requestedBy)) {
      return deny('ROLE_CHANGE_NEEDS_ADMIN', `role change ${change.id} was asked by ${change.requestedBy}, who is no longer an active admin`);
    }
    return { allow: true, value: { bootstrap: true } };
  }
  if (confirmer.name === change.requestedBy) {
    return deny('ROLE_CHANGE_SELF_CONFIRM', `${confirmer.name} asked for role change ${change.id} and so cannot confirm it; a second admin must (S-1.3)`);
  }
  if (confirmer.name === change.user) {
    return deny('ROLE_CHANGE_SELF_CONFIRM', `role change ${change.id} gives ${confirmer.name} the role ${list(change.added)}; nobody confirms their own roles (S-1.3)`);
  }
  if (!confirmer.roles.includes('admin')) return deny('FORBIDDEN', `confirming a role change needs the admin role; ${confirmer.name} holds ${list(confirmer.roles)}`);
  return { allow: true, value: { bootstrap: false } };
}

/** Rejecting is the safe direction: any admin (the one who asked withdraws it this way) or the host operator. */
export function decideRoleChangeRejection(change: RoleChangeFacts, rejecter: RoleActor, now: number): Decision<null> {
  const open = stillPending(change, now);
  if (!open.allow) return open;
  if (rejecter !== 'host-operator' && !rejecter.roles.includes('admin')) {
    return deny('FORBIDDEN', `rejecting a role change needs the admin role; ${rejecter.name} holds ${list(rejecter.roles)}`);
  }
  return { allow: true, value: null };
}
