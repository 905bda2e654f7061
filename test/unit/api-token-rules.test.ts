import { describe, expect, it } from 'vitest';
import {
  decideTokenAction, decideTokenExpiry, decideTokenScope, decideTokenUse, MAX_TOKEN_LIFETIME_MS, PERSON_ONLY_ACTIONS, type TokenFacts, type TokenOwnerFacts,
} from '../../policy/api-token-rules.js';
import type { Action } from '../../policy/roles.js';

/** The pure rules of API tokens (issue 13, item 5): what a token may hold, and when it may be used. */
const T = 1_800_000_000_000;
const owner = (o: Partial<TokenOwnerFacts> = {}): TokenOwnerFacts => ({
  name: 'sam', roles: ['security'], disabled: false, expiresAt: null, lockedUntil: null, serviceAccount: false, ...o,
});
const token = (t: Partial<TokenFacts> = {}): TokenFacts => ({ id: 'abc', owner: 'sam', scope: ['audit.read'], expiresAt: T + 1000, revokedAt: null, ...t });

describe('API token rules', () => {
  it('holds only actions the owner may do, never a person\'s decision for a service account, never more than the token making it', () => {
    expect(decideTokenScope(owner(), ['session.list', 'audit.read', 'audit.read'], null)).toEqual({ allow: true, value: ['audit.read', 'session.list'] });
    expect(decideTokenScope(owner(), ['device.manage'], null)).toMatchObject({ allow: false, code: 'TOKEN_SCOPE_WIDENS' });
    expect(decideTokenScope(owner(), [], null)).toMatchObject({ allow: false, code: 'INVALID_INPUT' });
    expect(decideTokenScope(owner(), ['no.such' as Action], null)).toMatchObject({ allow: false, code: 'INVALID_INPUT' });
    expect(decideTokenScope(owner(), ['audit.read', 'session.kill'], ['audit.read', 'token.manage'])).toMatchObject({ allow: false, code: 'TOKEN_SCOPE_WIDENS' });
    const bot = owner({ name: 'cmdb', roles: ['approver', 'security', 'admin', 'device_manager'], serviceAccount: true });
    for (const a of PERSON_ONLY_ACTIONS) expect(decideTokenScope(bot, [a], null), a).toMatchObject({ allow: false, code: 'SERVICE_ACCOUNT_NOT_A_PERSON' });
    expect(decideTokenScope(owner({ roles: ['approver'] }), ['request.decide'], null).allow).toBe(true);
  });

  it('needs an expiry in the future, at most a year away', () => {
    expect(decideTokenExpiry(T + MAX_TOKEN_LIFETIME_MS, T).allow).toBe(true);
    expect(decideTokenExpiry(T + MAX_TOKEN_LIFETIME_MS + 1, T)).toMatchObject({ allow: false, code: 'TOKEN_EXPIRY_INVALID' });
    expect(decideTokenExpiry(T, T)).toMatchObject({ allow: false, code: 'TOKEN_EXPIRY_INVALID' });
    expect(decideTokenExpiry(Number.NaN, T)).toMatchObject({ allow: false, code: 'TOKEN_EXPIRY_INVALID' });
  });

  it('refuses a revoked or expired token, and one whose owner may not sign in now, each with its own code', () => {
    expect(decideTokenUse(token(), owner(), T).allow).toBe(true);
    expect(decideTokenUse(token({ revokedAt: T - 1 }), owner(), T)).toMatchObject({ allow: false, code: 'TOKEN_REVOKED' });
    expect(decideTokenUse(token(), owner(), T + 1000)).toMatchObject({ allow: false, code: 'TOKEN_EXPIRED' });
    expect(decideTokenUse(token(), null, T)).toMatchObject({ allow: false, code: 'TOKEN_INVALID' });
    expect(decideTokenUse(token(), owner({ name: 'someone-else' }), T)).toMatchObject({ allow: false, code: 'TOKEN_INVALID' });
    expect(decideTokenUse(token(), owner({ disabled: true }), T)).toMatchObject({ allow: false, code: 'ACCOUNT_DISABLED' });
    expect(decideTokenUse(token(), owner({ expiresAt: T }), T)).toMatchObject({ allow: false, code: 'ACCOUNT_EXPIRED' });
    expect(decideTokenUse(token(), owner({ lockedUntil: T + 5 }), T)).toMatchObject({ allow: false, code: 'ACCOUNT_LOCKED' });
  });

  it('lets a token act only within its scope and its owner\'s roles of today', () => {
    expect(decideTokenAction(token(), owner(), 'audit.read').allow).toBe(true);
    expect(decideTokenAction(token(), owner(), 'session.list')).toMatchObject({ allow: false, code: 'TOKEN_SCOPE' });
    expect(decideTokenAction(token(), owner({ roles: ['vendor'] }), 'audit.read')).toMatchObject({ allow: false, code: 'FORBIDDEN' });
    const bot = owner({ roles: ['approver'], serviceAccount: true });
    expect(decideTokenAction(token({ scope: ['request.decide'] }), bot, 'request.decide')).toMatchObject({ allow: false, code: 'SERVICE_ACCOUNT_NOT_A_PERSON' });
  });
});
