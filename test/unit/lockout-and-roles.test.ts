import { describe, expect, it } from 'vitest';
import { lockAfterFailure, loginAllowed } from '../../policy/lockout.js';
import { can } from '../../policy/roles.js';

const NOW = 1_800_000_000_000;
const rule = { threshold: 5, durationMs: 15 * 60_000 };

// R-A.4d: lockout after repeated failures.
describe('lockout', () => {
  it('locks on the fifth consecutive failure, for the configured time', () => {
    for (let n = 1; n < 5; n++) expect(lockAfterFailure(n, rule, NOW).lock).toBe(false);
    expect(lockAfterFailure(5, rule, NOW)).toEqual({ lock: true, until: NOW + 15 * 60_000 });
  });

  it('refuses a locked account until the lock ends, and says until when', () => {
    const u = { name: 'a', roles: ['vendor' as const], disabled: false, expiresAt: null, lockedUntil: NOW + 1000 };
    const d = loginAllowed(u, NOW);
    expect(d.allow).toBe(false);
    if (!d.allow) {
      expect(d.code).toBe('ACCOUNT_LOCKED');
      expect(d.detail).toContain(new Date(NOW + 1000).toISOString());
    }
    expect(loginAllowed(u, NOW + 1000).allow).toBe(true);
  });
});

// S-1.3: separation of duties.
describe('roles', () => {
  it('only admins and approvers create grants; vendors and security do not', () => {
    expect(can(['admin'], 'grant.create').allow).toBe(true);
    expect(can(['approver'], 'grant.create').allow).toBe(true);
    expect(can(['vendor'], 'grant.create').allow).toBe(false);
    expect(can(['security'], 'grant.create').allow).toBe(false);
  });
  it('admins cannot watch recordings by role alone; security can', () => {
    expect(can(['admin'], 'recording.read').allow).toBe(false);
    expect(can(['security'], 'recording.read').allow).toBe(true);
  });
});
