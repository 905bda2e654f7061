import { loginAllowed } from './lockout.js';
import { can, PERMISSIONS, type Action } from './roles.js';
import { deny, type Decision, type PrincipalFacts } from './types.js';

/** At most a year (R-A.4d asks for credentials that end): a token without an expiry is never made. */
export const MAX_TOKEN_LIFETIME_MS = 365 * 86_400_000;

export const ACTIONS = Object.keys(PERMISSIONS) as Action[];

/**
 * Decisions the clauses give to a named person (S-1.3, R-5.3c, R-6.4b, R-6.5): a service account
 * never makes them, whatever its roles, and no token of one may hold them.
 */
export const PERSON_ONLY_ACTIONS: readonly Action[] = ['request.decide', 'command.review', 'device.security_check', 'device.decommission'];

export interface TokenFacts {
  id: string;
  owner: string;
  scope: readonly Action[];
  expiresAt: number;
  revokedAt: number | null;
}

export interface TokenOwnerFacts extends PrincipalFacts {
  serviceAccount: boolean;
}

/**
 * The scope a new token may have: only actions its owner may do now, none of a person's
 * decisions for a service account, and, when a token is creating it, nothing that token lacks
 * (a token never mints a wider one).
 */
export function decideTokenScope(owner: TokenOwnerFacts, scope: readonly Action[], creatorScope: readonly Action[] | null): Decision<Action[]> {
  if (scope.length === 0) return deny('INVALID_INPUT', 'a token needs at least one action in its scope');
  const unique = [...new Set(scope)].sort();
  for (const a of unique) {
    if (!ACTIONS.includes(a)) return deny('INVALID_INPUT', `no action named ${a}`);
    if (!can(owner.roles, a).allow) return deny('TOKEN_SCOPE_WIDENS', `${owner.name} may not ${a} (roles ${owner.roles.join(', ') || 'none'})`);
    if (owner.serviceAccount && PERSON_ONLY_ACTIONS.includes(a)) return deny('SERVICE_ACCOUNT_NOT_A_PERSON', `${a} is a named person's decision; a service account's token cannot hold it`);
    if (creatorScope && !creatorScope.includes(a)) return deny('TOKEN_SCOPE_WIDENS', `the token making this one does not hold ${a}`);
  }
  return { allow: true, value: unique };
}

/** A token's expiry: required, in the future, at most MAX_TOKEN_LIFETIME_MS away. */
export function decideTokenExpiry(expiresAt: number, now: number): Decision<number> {
  if (!Number.isFinite(expiresAt) || expiresAt <= now) return deny('TOKEN_EXPIRY_INVALID', 'the expiry must be in the future');
  if (expiresAt - now > MAX_TOKEN_LIFETIME_MS) return deny('TOKEN_EXPIRY_INVALID', 'the expiry is more than a year away');
  return { allow: true, value: expiresAt };
}

/**
 * May this token be used at all, now? Revoked, expired, and an owner who may not sign in now
 * (disabled, expired, locked) each refuse with their own code: a token never outlives what its
 * owner may do.
 */
export function decideTokenUse(token: TokenFacts, owner: TokenOwnerFacts | null, now: number): Decision<null> {
  if (token.revokedAt !== null) return deny('TOKEN_REVOKED', `token ${token.id} was revoked at ${new Date(token.revokedAt).toISOString()}`);
  if (now >= token.expiresAt) return deny('TOKEN_EXPIRED', `token ${token.id} expired at ${new Date(token.expiresAt).toISOString()}`);
  if (!owner || owner.name !== token.owner) return deny('TOKEN_INVALID', `the owner of token ${token.id} no longer exists`);
  return loginAllowed(owner, now);
}

/**
 * May this token do this action? Its scope must hold it (TOKEN_SCOPE), its owner's roles must
 * allow it today (FORBIDDEN: a role taken away is gone from the token too), and a service
 * account never takes a person's decision.
 */
export function decideTokenAction(token: TokenFacts, owner: TokenOwnerFacts, action: Action): Decision<Action> {
  if (!token.scope.includes(action)) return deny('TOKEN_SCOPE', `token ${token.id} does not hold ${action} (it holds ${token.scope.join(', ')})`);
  if (owner.serviceAccount && PERSON_ONLY_ACTIONS.includes(action)) return deny('SERVICE_ACCOUNT_NOT_A_PERSON', `${action} is a named person's decision`);
  return can(owner.roles, action);
}
