import { deny, type Decision, type Role } from './types.js';

/**
 * Single sign-on for staff (R-A.4d): what an identity provider's claims are worth to Portcullis.
 * The IdP says who someone is and which groups they are in; these rules decide which Portcullis
 * roles that gives, whether its sign-in counts as multi-factor, and which account it may use.
 */

/** The roles single sign-on may give: staff. Vendors keep local accounts with password + TOTP. */
export const SSO_STAFF_ROLES = ['admin', 'approver', 'device_manager', 'security'] as const satisfies readonly Role[];

export interface SsoRoleRule {
  /** Group (or app role) name → the Portcullis roles a member holds. */
  groupRoles: Readonly<Record<string, readonly Role[]>>;
  /** The roles that may sign in through SSO (a subset of SSO_STAFF_ROLES). */
  allowedRoles: readonly Role[];
}

/** The groups claim as the IdP sent it: a list of names, or one name. Anything else is no groups. */
export function claimedGroups(claim: unknown): string[] {
  if (typeof claim === 'string') return [claim];
  if (Array.isArray(claim)) return claim.filter((g): g is string => typeof g === 'string');
  return [];
}

/**
 * The roles a person's groups give. None at all: refused (SSO_NO_ROLE). Only roles SSO may not
 * give (vendor, or a staff role the hospital keeps local): refused (SSO_ROLE_NOT_ALLOWED). Roles
 * outside `allowedRoles` beside allowed ones are dropped, and said in `dropped` for the audit entry.
 */
export function ssoRoles(groups: readonly string[], rule: SsoRoleRule): Decision<{ roles: Role[]; dropped: Role[] }> {
  const mapped = new Set<Role>();
  for (const g of groups) for (const r of rule.groupRoles[g] ?? []) mapped.add(r);
  if (mapped.size === 0) return deny('SSO_NO_ROLE', `no role is mapped from the groups ${JSON.stringify([...groups].sort())}`);
  const staff: readonly Role[] = SSO_STAFF_ROLES;
  const allowed = (r: Role): boolean => rule.allowedRoles.includes(r) && staff.includes(r);
  const roles = [...mapped].filter(allowed).sort();
  const dropped = [...mapped].filter((r) => !allowed(r)).sort();
  if (roles.length === 0) return deny('SSO_ROLE_NOT_ALLOWED', `the groups map only to ${dropped.join(', ')}, which may not sign in through SSO`);
  return { allow: true, value: { roles, dropped } };
}

export interface SsoMfaRule {
  /** `amr` values (RFC 8176) any one of which means the IdP checked more than one factor. */
  amr: readonly string[];
  /** `acr` values that mean the same. */
  acr: readonly string[];
}

/**
 * Did the IdP assert a multi-factor sign-in? Only what the ID token says counts, and only values
 * the hospital listed; no claim, an unlisted value, or a malformed claim is "no", and Portcullis
 * asks for its own TOTP code.
 */
export function mfaAsserted(claims: { amr?: unknown; acr?: unknown }, rule: SsoMfaRule): { asserted: boolean; by: string | null } {
  const amr = Array.isArray(claims.amr) ? claims.amr.filter((v): v is string => typeof v === 'string') : [];
  const viaAmr = amr.find((v) => rule.amr.includes(v));
  if (viaAmr !== undefined) return { asserted: true, by: `amr ${viaAmr}` };
  if (typeof claims.acr === 'string' && rule.acr.includes(claims.acr)) return { asserted: true, by: `acr ${claims.acr}` };
  return { asserted: false, by: null };
}

const USER_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/**
 * The Portcullis name a new SSO account gets: the user-name claim, with an e-mail style
 * `name@domain` (Azure AD's preferred_username) cut to its local part. Only used to create an
 * account; an existing account is found by issuer + subject, never by this name.
 */
export function ssoAccountName(claim: unknown): Decision<string> {
  if (typeof claim !== 'string' || claim === '') return deny('SSO_NAME_INVALID', 'the identity provider sent no user-name claim');
  const at = claim.lastIndexOf('@');
  const name = at > 0 ? claim.slice(0, at) : claim;
  if (!USER_NAME.test(name)) return deny('SSO_NAME_INVALID', `${JSON.stringify(claim)} is not a Portcullis user name`);
  return { allow: true, value: name };
}

export interface SsoLinkFacts {
  /** The account linked to this issuer + subject, if any. */
  linked: { name: string } | null;
  /** The account that holds the name the IdP's claim gives, if any (and its own link). */
  sameName: { name: string; sso: { issuer: string; subject: string } | null } | null;
}

/**
 * Which account an SSO sign-in uses. The link (issuer + subject) decides; a name the IdP could
 * give to someone else never does: an existing account of the same name that is not linked to
 * this subject is refused, never taken over, and an administrator links it by hand.
 */
export function ssoAccount(f: SsoLinkFacts): Decision<{ kind: 'linked'; name: string } | { kind: 'create' }> {
  if (f.linked) return { allow: true, value: { kind: 'linked', name: f.linked.name } };
  if (f.sameName) {
    const why = f.sameName.sso ? 'is linked to another identity-provider account' : 'is a local account not linked to single sign-on';
    return deny('SSO_ACCOUNT_NOT_LINKED', `account ${f.sameName.name} ${why}`);
  }
  return { allow: true, value: { kind: 'create' } };
}

/** How the roles of an account change at this sign-in, for the audit entry (empty lists: no change). */
export function roleChange(before: readonly Role[], after: readonly Role[]): { added: Role[]; removed: Role[] } {
  return { added: after.filter((r) => !before.includes(r)), removed: before.filter((r) => !after.includes(r)) };
}
