import { describeCode, type ErrorCode } from '../../policy/error-codes.js';
import { loginAllowed } from '../../policy/lockout.js';
import { claimedGroups, mfaAsserted, roleChange, ssoAccount, ssoAccountName, ssoRoles } from '../../policy/sso-rules.js';
import type { Runtime } from '../runtime.js';
import { AlreadyExistsError, type UserRecord } from '../store/store.js';
import { principalFacts } from './authenticator.js';
import type { IdTokenClaims, SsoOidcConfig } from './oidc-client.js';
import { hashPassword } from './password.js';
import { generatePassword } from './users.js';

export type SsoAccountResult =
  | { ok: true; user: UserRecord; mfa: { asserted: boolean; by: string | null } }
  | { ok: false; code: ErrorCode; message: string };

/**
 * The Portcullis account behind a verified ID token (R-A.4d). Found by the IdP's issuer + subject;
 * created at the first sign-in with the roles the person's groups map to; re-mapped at every
 * sign-in. Refused, and audited, when the account is disabled, expired or locked in Portcullis
 * (whatever the IdP says), when the groups give no staff role, or when the name the IdP gives
 * belongs to an account not linked to this subject. Every step is an audit entry carrying
 * `via: 'sso'` and the issuer.
 */
export async function ssoAccountFor(rt: Runtime, settings: SsoOidcConfig, claims: IdTokenClaims, source: string): Promise<SsoAccountResult> {
  const issuer = claims.iss;
  const subject = claims.sub;
  const groups = claimedGroups(claims[settings.groups_claim]);
  const base = { source, method: 'sso', via: 'sso', issuer, subject };
  const refuse = async (actor: string, code: ErrorCode, detail: string): Promise<SsoAccountResult> => {
    await rt.audit.record('login.refused', { actor, outcome: 'denied', code, data: { ...base, user: actor, groups, detail } });
    return { ok: false, code, message: `${describeCode(code)} (${detail})` };
  };

  const linked = await rt.store.findUserBySso(issuer, subject);
  const now = rt.clock();
  if (linked) {
    // Disabled, expired or locked here: the IdP's word does not reopen the account.
    const allowed = loginAllowed(principalFacts(linked), now);
    if (!allowed.allow) return refuse(linked.name, allowed.code, allowed.detail);
  }
  const mapped = ssoRoles(groups, { groupRoles: settings.group_roles, allowedRoles: settings.allowed_roles });
  const name = linked ? { allow: true as const, value: linked.name } : ssoAccountName(claims[settings.username_claim]);
  const actor = name.allow ? name.value : `sso:${subject}`;
  if (!mapped.allow) return refuse(actor, mapped.code, mapped.detail);
  if (!name.allow) return refuse(actor, name.code, name.detail);
  const sameName = linked ? null : await rt.store.getUser(name.value);
  const which = ssoAccount({ linked, sameName });
  if (!which.allow) return refuse(name.value, which.code, which.detail);
  const mfa = mfaAsserted({ amr: claims.amr, acr: claims.acr }, { amr: settings.mfa_amr, acr: settings.mfa_acr });
  const { roles, dropped } = mapped.value;

  if (which.value.kind === 'create') {
    const user: UserRecord = {
      // No password anyone knows: the account signs in through the IdP (or with a key + TOTP over SSH).
      name: name.value, roles, org: null, passwordHash: await hashPassword(generatePassword()), totpSealed: null, totpLastStep: 0, failedLogins: 0,
      lockedUntil: null, disabled: false, expiresAt: null, publicKeys: [], nda: null, locale: null, enrolment: null, sso: { issuer, subject }, serviceAccount: false, createdAt: now,
    };
    try {
      await rt.store.createUser(user);
    } catch (err) {
      // Two first sign-ins at once, or a local account made meanwhile: the name is not taken over.
      if (err instanceof AlreadyExistsError) return refuse(name.value, 'SSO_ACCOUNT_NOT_LINKED', `account ${name.value} was created meanwhile`);
      throw err;
    }
    await rt.audit.record('user.created', {
      actor: 'portcullis', outcome: 'ok', data: { ...base, user: user.name, roles, groups, ...(dropped.length ? { rolesNotAllowed: dropped } : {}), totp: 'at first sign-in' },
    });
    return { ok: true, user, mfa };
  }

  const current = linked as UserRecord;
  const change = roleChange(current.roles, roles);
  if (change.added.length > 0 || change.removed.length > 0) {
    await rt.store.updateUser(current.name, { roles });
    await rt.audit.record('user.roles_mapped', {
      actor: 'portcullis', outcome: 'ok',
      data: { ...base, user: current.name, before: current.roles, roles, added: change.added, removed: change.removed, groups, ...(dropped.length ? { rolesNotAllowed: dropped } : {}) },
    });
    // Live sessions and grants are re-decided under the new roles, on every node.
    await rt.bus.publish({ type: 'access.changed', from: rt.node, user: current.name });
  }
  return { ok: true, user: { ...current, roles }, mfa };
}
