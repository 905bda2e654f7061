import { randomBytes } from 'node:crypto';
import ssh2 from 'ssh2';
import type { ErrorCode } from '../../policy/error-codes.js';
import type { Role } from '../../policy/types.js';
import { fingerprint } from '../connectors/host-key.js';
import type { Runtime } from '../runtime.js';
import type { NdaRecord, RoleChangeRecord, UserRecord } from '../store/store.js';
import { checkPasswordStrength, hashPassword } from './password.js';
import { fileRoleChange, planRoles } from './role-changes.js';
import { newTotpSecret, totpUri } from './totp.js';

// ssh2 is CommonJS: its named exports are reached through the default export.
const { utils } = ssh2;

/** A refusal of what a person asked for, with its catalogue code: the CLI prints it, the API answers with its status. */
export class InputError extends Error {
  constructor(readonly code: ErrorCode, message: string) {
    super(message);
  }
}

/** Turns a policy refusal into the error the CLI and API report. */
export function refuse(d: { code: ErrorCode; detail: string }): never {
  throw new InputError(d.code, d.detail);
}

export const USER_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

export function generatePassword(): string {
  // 18 random bytes → 24 base64url characters, about 144 bits.
  return randomBytes(18).toString('base64url');
}

export interface NewUser {
  name: string;
  roles: Role[];
  org: string | null;
  password: string;
  expiresAt: number | null;
  nda?: NdaRecord | null;
}

function checkNda(nda: NdaRecord | null | undefined): void {
  if (!nda) return;
  if (!Number.isFinite(nda.signedAt) || !Number.isFinite(nda.expiresAt) || nda.expiresAt <= nda.signedAt) {
    throw new InputError('INVALID_INPUT', 'a confidentiality agreement needs a signing date before its expiry date');
  }
  if (nda.reference !== null && (nda.reference.length > 100 || /\p{Cc}/u.test(nda.reference))) {
    throw new InputError('INVALID_INPUT', 'the agreement reference is at most 100 characters on one line');
  }
}

/** A vendor belongs to a registered organisation; staff may name none. */
async function checkOrg(rt: Runtime, roles: readonly Role[], org: string | null): Promise<void> {
  if (org === null) {
    if (roles.includes('vendor')) throw new InputError('INVALID_INPUT', 'a vendor account needs --org: the vendor organisation it works for');
    return;
  }
  if (!(await rt.store.getOrg(org))) throw new InputError('NOT_FOUND', `no organisation ${JSON.stringify(org)}; add it first (portcullis org add)`);
}

/**
 * Creates a user with exactly these roles, which the caller has decided it may give: `init`'s
 * first admin (the host operator's authority at installation), and addUser below once separation
 * of duties has had its say. The API and the CLI call addUser, never this. Enrolled in TOTP at
 * once (the enrolment URI is returned, shown once and never stored in clear), or, with
 * `enrolOnFirstSignIn`, left for the person to enrol themselves at their first sign-in in the
 * console (the secret then never passes through an administrator).
 */
export async function createUser(rt: Runtime, u: NewUser & { enrolOnFirstSignIn?: boolean; rolesAwaiting?: Role[] }, actor: string): Promise<{ user: UserRecord; otpauthUri: string | null }> {
  if (!USER_NAME.test(u.name)) throw new InputError('INVALID_INPUT', `user name ${JSON.stringify(u.name)} must be 1-64 letters, digits, '.', '_' or '-'`);
  // An account may start with no role while its privileged ones wait for a second admin.
  if (u.roles.length === 0 && !u.rolesAwaiting?.length) throw new InputError('INVALID_INPUT', 'a user needs at least one role');
  const weak = checkPasswordStrength(u.password);
  if (weak) throw new InputError('INVALID_INPUT', weak);
  if (await rt.store.getUser(u.name)) throw new InputError('ALREADY_EXISTS', `user ${u.name} already exists`);
  checkNda(u.nda);
  await checkOrg(rt, u.roles, u.org);
  const secret = u.enrolOnFirstSignIn ? null : newTotpSecret();
  const user: UserRecord = {
    name: u.name, roles: u.roles, org: u.org, passwordHash: await hashPassword(u.password), totpSealed: secret === null ? null : rt.vault.sealTotp(u.name, secret),
    totpLastStep: 0, failedLogins: 0, lockedUntil: null, disabled: false, expiresAt: u.expiresAt, publicKeys: [], nda: u.nda ?? null, locale: null,
    enrolment: null, sso: null, serviceAccount: false, createdAt: rt.clock(),
  };
  await rt.store.createUser(user);
  await rt.audit.record('user.created', {
    actor, outcome: 'ok',
    data: {
      user: u.name, roles: u.roles, org: u.org, expiresAt: u.expiresAt, nda: ndaView(u.nda ?? null), totp: secret === null ? 'at first sign-in' : 'enrolled',
      ...(u.rolesAwaiting?.length ? { rolesAwaiting: u.rolesAwaiting } : {}),
    },
  });
  return { user, otpauthUri: secret === null ? null : totpUri(secret, rt.config.auth.totp_issuer, u.name) };
}

/**
 * A new account as an admin (API, console, CLI) asks for it (S-1.3): the non-privileged roles at
 * once; privileged ones (admin, security, device_manager, approver) wait for a second admin's
 * confirmation as a role change. The host operator may create only non-privileged accounts.
 */
export async function addUser(rt: Runtime, u: NewUser & { enrolOnFirstSignIn?: boolean }, actor: string): Promise<{ user: UserRecord; otpauthUri: string | null; pendingChange: RoleChangeRecord | null }> {
  if (u.roles.length === 0) throw new InputError('INVALID_INPUT', 'a user needs at least one role');
  if (await rt.store.getUser(u.name)) throw new InputError('ALREADY_EXISTS', `user ${u.name} already exists`);
  const plan = await planRoles(rt, actor, u.name, [], u.roles);
  const created = await createUser(rt, { ...u, roles: plan.immediate, rolesAwaiting: plan.pendingAdd }, actor);
  const pendingChange = plan.pendingAdd.length > 0 ? await fileRoleChange(rt, actor, u.name, plan.immediate, plan.pendingAdd) : null;
  return { ...created, pendingChange };
}

export async function addPublicKey(rt: Runtime, name: string, keyText: string, actor: string): Promise<string> {
  const user = await rt.store.getUser(name);
  if (!user) throw new InputError('NOT_FOUND', `no user named ${name}`);
  const line = keyText.trim().split('\n')[0] ?? '';
  const parsed = utils.parseKey(line);
  if (parsed instanceof Error || parsed.isPrivateKey()) throw new InputError('INVALID_INPUT', 'expected one OpenSSH public key line (e.g. the contents of id_ed25519.pub)');
  const fp = fingerprint(parsed.getPublicSSH());
  await rt.store.updateUser(name, { publicKeys: [...user.publicKeys, line] });
  await rt.audit.record('user.key_added', { actor, outcome: 'ok', data: { user: name, type: parsed.type, fingerprint: fp } });
  return fp;
}

const iso = (t: number): string => new Date(t).toISOString();

export function ndaView(n: NdaRecord | null): { signedAt: string; expiresAt: string; reference: string | null } | null {
  return n ? { signedAt: iso(n.signedAt), expiresAt: iso(n.expiresAt), reference: n.reference } : null;
}

async function existing(rt: Runtime, name: string): Promise<UserRecord> {
  const u = await rt.store.getUser(name);
  if (!u) throw new InputError('NOT_FOUND', `no user named ${name}`);
  return u;
}

/** Records (or replaces) a vendor's confidentiality agreement (R-5.3a). */
export async function setNda(rt: Runtime, name: string, nda: NdaRecord, actor: string): Promise<void> {
  await existing(rt, name);
  checkNda(nda);
  await rt.store.updateUser(name, { nda });
  await rt.audit.record('user.nda_recorded', { actor, outcome: 'ok', data: { user: name, nda: ndaView(nda) } });
  await rt.bus.publish({ type: 'access.changed', from: rt.node, user: name });
}

/**
 * Disabling ends a person's access at once (R-5.3d): their grants are revoked, their browser
 * sessions signed out, and every node ends their live sessions within a second.
 */
export async function setDisabled(rt: Runtime, name: string, disabled: boolean, actor: string): Promise<{ grantsRevoked: string[] }> {
  await existing(rt, name);
  await rt.store.updateUser(name, { disabled });
  const revoked: string[] = [];
  if (disabled) {
    await rt.store.deleteWebSessionsOf(name);
    const now = rt.clock();
    for (const g of await rt.store.listGrants({ user: name })) {
      if (g.revokedAt !== null || g.notAfter <= now) continue;
      await rt.store.revokeGrant(g.id, now, actor);
      revoked.push(g.id);
      await rt.audit.record('grant.revoked', { actor, outcome: 'ok', data: { grant: g.id, user: name, device: g.device, reason: 'account disabled' } });
    }
  }
  await rt.audit.record(disabled ? 'user.disabled' : 'user.enabled', { actor, outcome: 'ok', data: { user: name, grantsRevoked: revoked } });
  await rt.bus.publish({ type: 'access.changed', from: rt.node, user: name });
  return { grantsRevoked: revoked };
}

/** Security locks an account by hand (R-A.5b: stop the source of abnormal behaviour); its live sessions end. */
export async function lockUser(rt: Runtime, name: string, until: number, reason: string, actor: string): Promise<void> {
  await existing(rt, name);
  await rt.store.updateUser(name, { lockedUntil: until });
  await rt.store.deleteWebSessionsOf(name);
  await rt.audit.record('account.locked', { actor, outcome: 'ok', code: 'ACCOUNT_LOCKED', data: { user: name, until: iso(until), reason, byHand: true } });
  await rt.bus.publish({ type: 'access.changed', from: rt.node, user: name });
}

export async function unlockUser(rt: Runtime, name: string, actor: string): Promise<void> {
  await existing(rt, name);
  await rt.store.updateUser(name, { lockedUntil: null, failedLogins: 0 });
  await rt.audit.record('account.unlocked', { actor, outcome: 'ok', data: { user: name } });
}

export async function createOrg(rt: Runtime, o: { name: string; displayName: string; contact: string | null }, actor: string): Promise<void> {
  if (!USER_NAME.test(o.name)) throw new InputError('INVALID_INPUT', `organisation id ${JSON.stringify(o.name)} must be 1-64 letters, digits, '.', '_' or '-'`);
  if (o.displayName.trim() === '' || o.displayName.length > 200) throw new InputError('INVALID_INPUT', 'the display name is 1-200 characters');
  try {
    await rt.store.createOrg({ name: o.name, displayName: o.displayName.trim(), contact: o.contact, createdAt: rt.clock() });
  } catch (err) {
    if ((err as { code?: string }).code === 'ALREADY_EXISTS') throw new InputError('ALREADY_EXISTS', `organisation ${o.name} already exists`);
    throw err;
  }
  await rt.audit.record('org.created', { actor, outcome: 'ok', data: { org: o.name, displayName: o.displayName, contact: o.contact } });
}

/** The person's TOTP is forgotten; they enrol again at their next sign-in in the console (a lost phone). */
export async function resetTotp(rt: Runtime, name: string, actor: string): Promise<void> {
  await existing(rt, name);
  await rt.store.updateUser(name, { totpSealed: null, enrolment: null });
  await rt.store.deleteWebSessionsOf(name);
  await rt.audit.record('user.totp_reset', { actor, outcome: 'ok', data: { user: name } });
  await rt.bus.publish({ type: 'access.changed', from: rt.node, user: name });
}

/**
 * An admin changes who someone is: roles, organisation, account expiry. Their live sessions are
 * re-decided at once. Roles follow separation of duties (S-1.3, policy/role-changes.ts): nobody
 * changes their own; removals and non-privileged additions apply at once; privileged additions
 * wait for a second admin as `pendingChange`.
 */
export async function updateUserProfile(rt: Runtime, name: string, patch: { roles?: Role[]; org?: string | null; expiresAt?: number | null }, actor: string): Promise<UserRecord & { pendingChange: RoleChangeRecord | null }> {
  const u = await existing(rt, name);
  const plan = patch.roles ? await planRoles(rt, actor, name, u.roles, patch.roles) : null;
  const roles = plan ? plan.immediate : u.roles;
  const org = patch.org !== undefined ? patch.org : u.org;
  await checkOrg(rt, plan ? [...roles, ...plan.pendingAdd] : roles, org);
  const rolesChanged = plan !== null && (plan.added.length > plan.pendingAdd.length || plan.removed.length > 0);
  const changes = { ...(rolesChanged ? { roles } : {}), ...(patch.org !== undefined ? { org } : {}), ...(patch.expiresAt !== undefined ? { expiresAt: patch.expiresAt } : {}) };
  if (Object.keys(changes).length > 0) {
    await rt.store.updateUser(name, changes);
    // The roles added are named on their own: a privileged one raises an alert (policy/alert-rules.ts).
    const rolesAdded = rolesChanged ? roles.filter((r) => !u.roles.includes(r)) : [];
    await rt.audit.record('user.updated', { actor, outcome: 'ok', data: { user: name, ...changes, ...(rolesAdded.length ? { rolesAdded } : {}) } });
    await rt.bus.publish({ type: 'access.changed', from: rt.node, user: name });
  }
  const pendingChange = plan && plan.pendingAdd.length > 0 ? await fileRoleChange(rt, actor, name, roles, plan.pendingAdd) : null;
  return { ...u, ...changes, pendingChange };
}
