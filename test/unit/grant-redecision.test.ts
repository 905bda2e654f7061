import { describe, expect, it } from 'vitest';
import { DEFAULT_APPROVAL_RULES } from '../../policy/approval-rules.js';
import { redecideGrant, type LiveGrantTerms } from '../../policy/grant-redecision.js';

/** Issue 13: a live grant on a device whose level was corrected, judged by the new level's rule (R-5.3c, R-6.3c, 5.2d). */
const H = 3_600_000;
const grant = (over: Partial<LiveGrantTerms> = {}): LiveGrantTerms => ({
  notBefore: 0, notAfter: H, profileMode: 'restricted', profileName: 'diag', approvals: null, grantor: 'host-operator', ...over,
});

describe('a live grant decided again under a new level', () => {
  it('keeps what the level would still give', () => {
    expect(redecideGrant(DEFAULT_APPROVAL_RULES[2], grant()).allow).toBe(true);
    expect(redecideGrant(DEFAULT_APPROVAL_RULES[3], grant({ approvals: [{ approver: 'dora', roles: ['device_manager'] }, { approver: 'sam', roles: ['security'] }] })).allow).toBe(true);
    // A grant from a level-3 request lives on when the level is lowered.
    expect(redecideGrant(DEFAULT_APPROVAL_RULES[1], grant({ approvals: [{ approver: 'dora', roles: ['device_manager'] }, { approver: 'sam', roles: ['security'] }] })).allow).toBe(true);
  });

  it.each([
    ['a window longer than the level allows', 2, grant({ notAfter: 6 * H }), 'WINDOW_TOO_LONG'],
    ['a profile mode the level forbids', 3, grant({ profileMode: 'full', profileName: 'full', approvals: [{ approver: 'd', roles: ['device_manager'] }, { approver: 's', roles: ['security'] }] }), 'PROFILE_MODE_NOT_ALLOWED'],
    ['a profile that no longer resolves', 1, grant({ profileMode: null, profileName: 'gone' }), 'PROFILE_UNKNOWN'],
    ['a direct grant where two people are needed', 3, grant(), 'DIRECT_GRANT_NOT_ALLOWED'],
    ['a direct grant by someone whose role fills nothing now', 2, grant({ grantor: { roles: ['approver'] } }), 'DIRECT_GRANT_NOT_ALLOWED'],
    ['a direct grant by a grantor no longer known', 2, grant({ grantor: null }), 'DIRECT_GRANT_NOT_ALLOWED'],
    ['a request approved by one person where two are needed', 3, grant({ approvals: [{ approver: 'dora', roles: ['device_manager'] }] }), 'APPROVER_ROLE_NOT_NEEDED'],
    ['a request approved by a role the level does not name', 2, grant({ approvals: [{ approver: 'ann', roles: ['approver'] }] }), 'APPROVER_ROLE_NOT_NEEDED'],
  ] as const)('revokes %s', (_what, level, g, code) => {
    const d = redecideGrant(DEFAULT_APPROVAL_RULES[level], g);
    expect(d.allow).toBe(false);
    if (!d.allow) expect(d.code).toBe(code);
  });
});
