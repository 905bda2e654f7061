import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import {
  decideTokenAction, decideTokenExpiry, decideTokenScope, decideTokenUse, type TokenFacts, type TokenOwnerFacts,
} from '../../policy/api-token-rules.js';
import type { ErrorCode } from '../../policy/error-codes.js';
import type { Action } from '../../policy/roles.js';
import type { Decision, Role } from '../../policy/types.js';
import type { Runtime } from '../runtime.js';
import type { ApiTokenRecord, UserRecord } from '../store/store.js';
import { InputError, USER_NAME } from './users.js';
import { PRIVILEGED_ROLES } from '../../policy/role-changes.js';

/**
 * API tokens for people and service accounts (issue 13): `pcx_<16 hex id>_<43 base64url secret>`,
 * 256 bits of secret behind a prefix that secret scanners (GitHub, gitleaks) can be taught to
 * find. The store keeps the id and the SHA-256 of the secret only: plain SHA-256 is enough for a
 * random 256-bit secret (nothing to guess), and the comparison runs in constant time. The secret
 * is returned once, by createApiToken, and appears nowhere else: not in the store, the audit
 * data, the logs or any other answer.
 */
export const TOKEN_PREFIX = 'pcx_';
const TOKEN_PATTERN = /^pcx_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$/;

const sha256 = (s: string): string => createHash('sha256').update(s).digest('hex');

/** What a service account holds instead of a password hash: no password verifies against it. */
export const NO_PASSWORD = '!service-account';

export function ownerFacts(u: UserRecord): TokenOwnerFacts {
  return { name: u.name, roles: u.roles, disabled: u.disabled, expiresAt: u.expiresAt, lockedUntil: u.lockedUntil, serviceAccount: u.serviceAccount === true };
}

export function tokenFacts(t: ApiTokenRecord): TokenFacts {
  return { id: t.id, owner: t.owner, scope: t.scope as Action[], expiresAt: t.expiresAt, revokedAt: t.revokedAt };
}

/** A token as it may be shown: everything but the hash. */
export interface ApiTokenView {
  id: string;
  owner: string;
  ownerIsServiceAccount: boolean;
  name: string;
  scope: string[];
  createdAt: string;
  createdBy: string;
  expiresAt: string;
  lastUsedAt: string | null;
  revokedAt: string | null;
  revokedBy: string | null;
  state: 'active' | 'expired' | 'revoked';
}

const iso = (t: number | null): string | null => (t === null ? null : new Date(t).toISOString());

export function tokenView(t: ApiTokenRecord, serviceAccount: boolean, now: number): ApiTokenView {
  return {
    id: t.id, owner: t.owner, ownerIsServiceAccount: serviceAccount, name: t.name, scope: t.scope, createdAt: iso(t.createdAt) as string, createdBy: t.createdBy,
    expiresAt: iso(t.expiresAt) as string, lastUsedAt: iso(t.lastUsedAt), revokedAt: iso(t.revokedAt), revokedBy: t.revokedBy,
    state: t.revokedAt !== null ? 'revoked' : now >= t.expiresAt ? 'expired' : 'active',
  };
}

/** Who is making a token: a signed-in person, a token (which can only hand on what it holds), or the host operator at the CLI. */
export interface TokenMaker {
  /** The audit actor: a user's name, or `local:<os user>`. */
  actor: string;
  /** The maker's account, or null for the host operator. */
  user: UserRecord | null;
  /** When a token is making this one: its scope bounds the new one. */
  viaToken: ApiTokenRecord | null;
  /** Whether the maker may manage other accounts (user.manage, or the host operator). */
  mayManageUsers: boolean;
}

/**
 * Makes a token and returns its secret, the only time it is ever shown. A person makes tokens for
 * themselves; an admin (or the host operator) makes them for service accounts, never for another
 * person (that would be acting as them).
 */
export async function createApiToken(
  rt: Runtime, req: { owner: string; name: string; scope: string[]; expiresAt: number }, maker: TokenMaker,
): Promise<{ token: ApiTokenView; secret: string }> {
  const name = req.name.trim();
  if (name === '' || name.length > 100 || /\p{Cc}/u.test(name)) throw new InputError('INVALID_INPUT', 'a token name is 1-100 characters on one line');
  const owner = await rt.store.getUser(req.owner);
  if (!owner) throw new InputError('NOT_FOUND', `no user named ${req.owner}`);
  const forSelf = maker.user !== null && maker.user.name === owner.name;
  if (!forSelf) {
    if (!maker.mayManageUsers) throw new InputError('FORBIDDEN', 'you may make tokens for yourself only; an admin makes them for service accounts');
    if (owner.serviceAccount !== true) throw new InputError('FORBIDDEN', `${owner.name} is a person: only they can make their own tokens`);
    // A token that manages users still cannot mint one wider than itself for a service account.
  }
  const now = rt.clock();
  const refuse = async (d: { code: ErrorCode; detail: string }): Promise<never> => {
    await rt.audit.record('token.refused', { actor: maker.actor, outcome: 'denied', code: d.code, data: { owner: owner.name, name, scope: req.scope, detail: d.detail, via: maker.viaToken ? maker.viaToken.id : null } });
    throw new InputError(d.code, d.detail);
  };
  const scope = decideTokenScope(ownerFacts(owner), req.scope as Action[], maker.viaToken ? (maker.viaToken.scope as Action[]) : null);
  if (!scope.allow) return refuse(scope);
  const expiry = decideTokenExpiry(req.expiresAt, now);
  if (!expiry.allow) return refuse(expiry);
  if (maker.viaToken && expiry.value > maker.viaToken.expiresAt) return refuse({ code: 'TOKEN_EXPIRY_INVALID', detail: 'a token cannot make one that outlives it' });
  const id = randomBytes(8).toString('hex');
  const secret = randomBytes(32).toString('base64url');
  const record: ApiTokenRecord = {
    id, owner: owner.name, name, scope: scope.value, secretHash: sha256(secret), createdAt: now, createdBy: maker.actor, expiresAt: expiry.value,
    lastUsedAt: null, revokedAt: null, revokedBy: null,
  };
  await rt.store.createApiToken(record);
  await rt.audit.record('token.created', {
    actor: maker.actor, outcome: 'ok',
    data: { token: id, owner: owner.name, name, scope: scope.value, expiresAt: iso(expiry.value), serviceAccount: owner.serviceAccount === true, via: maker.viaToken ? maker.viaToken.id : null },
  });
  return { token: tokenView(record, owner.serviceAccount === true, now), secret: `${TOKEN_PREFIX}${id}_${secret}` };
}

export type TokenVerdict =
  | { ok: true; user: UserRecord; token: ApiTokenRecord }
  | { ok: false; code: ErrorCode; detail: string; tokenId: string | null; owner: string | null };

/**
 * Is this the text of a token that may be used now? The owner user, the token, or a refusal with
 * its code: TOKEN_INVALID (malformed, unknown, wrong secret, owner gone), TOKEN_EXPIRED,
 * TOKEN_REVOKED, or the owner's own refusal (ACCOUNT_DISABLED, ACCOUNT_EXPIRED, ACCOUNT_LOCKED).
 * It audits nothing: the caller knows the channel and source (recordTokenRefusal).
 */
export async function verifyApiToken(rt: Runtime, text: string, now: number): Promise<TokenVerdict> {
  const m = TOKEN_PATTERN.exec(text);
  if (!m) return { ok: false, code: 'TOKEN_INVALID', detail: 'not a Portcullis API token (pcx_…)', tokenId: null, owner: null };
  const [, id, secret] = m as unknown as [string, string, string];
  const token = await rt.store.getApiToken(id);
  const given = Buffer.from(sha256(secret), 'hex');
  const stored = Buffer.from(token?.secretHash ?? '00'.repeat(32), 'hex');
  // Compared in constant time whether or not the id exists.
  if (!(stored.length === given.length && timingSafeEqual(stored, given)) || !token) {
    return { ok: false, code: 'TOKEN_INVALID', detail: token ? `wrong secret for token ${id}` : `no token ${id}`, tokenId: token ? id : null, owner: token?.owner ?? null };
  }
  const owner = await rt.store.getUser(token.owner);
  const d = decideTokenUse(tokenFacts(token), owner ? ownerFacts(owner) : null, now);
  if (!d.allow || !owner) {
    const refusal = d.allow ? { code: 'TOKEN_INVALID' as const, detail: 'owner gone' } : d;
    return { ok: false, code: refusal.code, detail: refusal.detail, tokenId: id, owner: token.owner };
  }
  return { ok: true, user: owner, token };
}

/** May a verified token do this action now (its scope, its owner's roles today, a person's decisions)? */
export function tokenMay(v: { user: UserRecord; token: ApiTokenRecord }, action: Action): Decision<Action> {
  return decideTokenAction(tokenFacts(v.token), ownerFacts(v.user), action);
}

/** Every refused token use is audited: the code, the token id when known, never the text. */
export async function recordTokenRefusal(
  rt: Runtime, r: { code: ErrorCode; detail: string; tokenId: string | null; owner: string | null }, where: { source: string; channel: string; request?: string },
): Promise<void> {
  await rt.audit.recordEventually('token.refused', {
    actor: r.owner ?? 'unknown', outcome: 'denied', code: r.code,
    data: { token: r.tokenId, detail: r.detail, channel: where.channel, source: where.source, ...(where.request ? { request: where.request } : {}) },
  });
}

/** One step of the read-use audit: an entry at most this often per token (writes: every one). */
export const READ_AUDIT_EVERY_MS = 60_000;

/**
 * Use of a token that passed. A request that changes something is audited every time, before it
 * acts (if the entry cannot be written the request is refused); reads are audited at most once a
 * minute per token per node, with the number of reads since, and last-used is noted at the same
 * moments (so a read costs no store write most of the time).
 */
export class TokenUseLog {
  private readonly lastRead = new Map<string, { at: number; reads: number }>();

  constructor(private readonly rt: Runtime) {}

  async used(v: { user: UserRecord; token: ApiTokenRecord }, u: { write: boolean; request: string; source: string; channel: string }): Promise<void> {
    const now = this.rt.clock();
    const data = { token: v.token.id, name: v.token.name, request: u.request, channel: u.channel, source: u.source };
    if (u.write) {
      await this.rt.audit.record('token.used', { actor: v.user.name, outcome: 'ok', data: { ...data, write: true } });
      await this.rt.store.touchApiToken(v.token.id, now);
      return;
    }
    const seen = this.lastRead.get(v.token.id);
    if (seen && now - seen.at < READ_AUDIT_EVERY_MS) {
      seen.reads += 1;
      return;
    }
    this.lastRead.set(v.token.id, { at: now, reads: 0 });
    if (this.lastRead.size > 10_000) for (const [k, s] of this.lastRead) if (now - s.at >= READ_AUDIT_EVERY_MS) this.lastRead.delete(k);
    await this.rt.audit.record('token.used', { actor: v.user.name, outcome: 'ok', data: { ...data, write: false, readsSinceLastEntry: seen?.reads ?? 0 } });
    await this.rt.store.touchApiToken(v.token.id, now);
  }
}

/**
 * One use of a token outside the JSON API (the CLI's PORTCULLIS_TOKEN): verified, checked against
 * the action, refused with its code and audited, or audited as used (always: a CLI call is rare
 * and usually a change). Returns the owner and the token.
 */
export async function useApiToken(
  rt: Runtime, text: string, use: { action: Action; source: string; channel: string; request: string },
): Promise<{ user: UserRecord; token: ApiTokenRecord }> {
  const where = { source: use.source, channel: use.channel, request: use.request };
  const v = await verifyApiToken(rt, text, rt.clock());
  if (!v.ok) {
    await recordTokenRefusal(rt, v, where);
    throw new InputError(v.code, v.detail);
  }
  const d = tokenMay(v, use.action);
  if (!d.allow) {
    await recordTokenRefusal(rt, { code: d.code, detail: d.detail, tokenId: v.token.id, owner: v.user.name }, where);
    throw new InputError(d.code, d.detail);
  }
  await rt.audit.record('token.used', { actor: v.user.name, outcome: 'ok', data: { token: v.token.id, name: v.token.name, action: use.action, ...where, write: true } });
  await rt.store.touchApiToken(v.token.id, rt.clock());
  return { user: v.user, token: v.token };
}

/** Tokens as their viewer may see them: their own, or (mayManageUsers) anyone's or one account's. */
export async function listApiTokens(rt: Runtime, filter: { owner?: string }): Promise<ApiTokenView[]> {
  const now = rt.clock();
  const tokens = await rt.store.listApiTokens(filter);
  const service = new Map<string, boolean>();
  for (const t of tokens) if (!service.has(t.owner)) service.set(t.owner, (await rt.store.getUser(t.owner))?.serviceAccount === true);
  return tokens.map((t) => tokenView(t, service.get(t.owner) === true, now));
}

/** Revokes a token: its owner may, and whoever may manage users. A second revocation is refused (the first stands). */
export async function revokeApiToken(rt: Runtime, id: string, by: { actor: string; user: UserRecord | null; mayManageUsers: boolean }): Promise<ApiTokenView> {
  const t = await rt.store.getApiToken(id);
  // Someone else's token reads as unknown, not as forbidden.
  if (!t || (!by.mayManageUsers && t.owner !== by.user?.name)) throw new InputError('NOT_FOUND', `no API token ${id}`);
  const now = rt.clock();
  if (!(await rt.store.revokeApiToken(id, now, by.actor))) throw new InputError('ALREADY_REVOKED', `token ${id} was already revoked`);
  await rt.audit.record('token.revoked', { actor: by.actor, outcome: 'ok', data: { token: id, owner: t.owner, name: t.name } });
  const owner = await rt.store.getUser(t.owner);
  return tokenView((await rt.store.getApiToken(id)) as ApiTokenRecord, owner?.serviceAccount === true, now);
}

/**
 * A service account: a user with no password (NO_PASSWORD never verifies) and no TOTP, so it
 * cannot sign in to the console or SSH; it acts only through tokens an admin makes for it. Its
 * roles are checked like anyone's, but it never takes a named person's decision
 * (PERSON_ONLY_ACTIONS: approve, deny, review a command, check or decommission a device).
 */
export async function createServiceAccount(rt: Runtime, s: { name: string; roles: Role[]; org: string | null }, actor: string): Promise<UserRecord> {
  if (!USER_NAME.test(s.name)) throw new InputError('INVALID_INPUT', `account name ${JSON.stringify(s.name)} must be 1-64 letters, digits, '.', '_' or '-'`);
  if (s.roles.length === 0) throw new InputError('INVALID_INPUT', 'a service account needs at least one role');
  if (await rt.store.getUser(s.name)) throw new InputError('ALREADY_EXISTS', `user ${s.name} already exists`);
  if (s.org !== null && !(await rt.store.getOrg(s.org))) throw new InputError('NOT_FOUND', `no organisation ${JSON.stringify(s.org)}`);
  if (s.roles.includes('vendor') && s.org === null) throw new InputError('INVALID_INPUT', 'a vendor service account needs --org: the vendor organisation it works for');
  // A privileged role is given by a named admin (S-1.3), never by the host operator or another
  // service account: else a root shell could mint itself an admin that holds tokens.
  if (s.roles.some((r) => (PRIVILEGED_ROLES as readonly string[]).includes(r))) {
    const by = actor.startsWith('local:') ? null : await rt.store.getUser(actor);
    if (!by || by.serviceAccount === true || !by.roles.includes('admin')) {
      await rt.audit.record('service_account.refused', { actor, outcome: 'denied', code: 'PERSON_REQUIRED', data: { account: s.name, roles: s.roles } });
      throw new InputError('PERSON_REQUIRED', `a service account with a privileged role (${s.roles.join(', ')}) is a named admin's decision, not ${actor}'s (S-1.3)`);
    }
  }
  const user: UserRecord = {
    name: s.name, roles: s.roles, org: s.org, passwordHash: NO_PASSWORD, totpSealed: null, totpLastStep: 0, failedLogins: 0, lockedUntil: null, disabled: false,
    expiresAt: null, publicKeys: [], nda: null, locale: null, enrolment: null, sso: null, serviceAccount: true, createdAt: rt.clock(),
  };
  await rt.store.createUser(user);
  await rt.audit.record('user.created', { actor, outcome: 'ok', data: { user: s.name, roles: s.roles, org: s.org, serviceAccount: true } });
  return user;
}
