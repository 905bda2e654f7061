import { describe, expect, it } from 'vitest';
import {
  decideRoleChangeConfirmation, decideRoleChangeRejection, planRoleChange, roleChangeStatusAt, type RoleChangeFacts,
} from '../../policy/role-changes.js';
import type { Decision } from '../../policy/types.js';

/** S-1.3: separation of duties over roles, decided by policy/role-changes.ts. */
const NOW = Date.parse('2026-12-06T10:00:00Z');
const ada = { name: 'ada', roles: ['admin'] as const };
const ben = { name: 'ben', roles: ['admin'] as const };
const outcome = <T>(d: Decision<T>): string => (d.allow ? 'allow' : d.code);

describe('asking for roles', () => {
  it.each([
    ['an admin raising their own roles', ada, { name: 'ada', roles: ['admin'] as const }, ['admin', 'security', 'device_manager'], 'SELF_ROLE_CHANGE'],
    ['an admin dropping a role of their own', ada, { name: 'ada', roles: ['admin', 'security'] as const }, ['admin'], 'SELF_ROLE_CHANGE'],
    ['the host operator giving a privileged role', 'host-operator' as const, { name: 'dora', roles: [] as const }, ['device_manager'], 'ROLE_CHANGE_NEEDS_ADMIN'],
    ['a security officer giving one (the role check aside)', { name: 'sam', roles: ['security'] as const }, { name: 'dora', roles: ['vendor'] as const }, ['approver'], 'ROLE_CHANGE_NEEDS_ADMIN'],
    ['no role at all', ada, { name: 'dora', roles: ['vendor'] as const }, [], 'INVALID_INPUT'],
  ])('refuses %s', (_name, actor, target, wanted, code) => {
    expect(outcome(planRoleChange(actor, target, wanted as never, false))).toBe(code);
  });

  it('holds a privileged role for a second admin, applies the rest at once, and refuses a second change while one waits', () => {
    const d = planRoleChange(ada, { name: 'dora', roles: ['vendor'] }, ['device_manager', 'security'], false);
    expect(d).toEqual({ allow: true, value: { immediate: [], pendingAdd: ['device_manager', 'security'], added: ['device_manager', 'security'], removed: ['vendor'] } });
    expect(outcome(planRoleChange(ada, { name: 'dora', roles: ['vendor'] }, ['device_manager'], true))).toBe('ROLE_CHANGE_ALREADY_PENDING');
  });

  it('takes roles away at once (narrowing is safe), also from the host operator and while a change waits', () => {
    expect(planRoleChange('host-operator', { name: 'sam', roles: ['security', 'approver'] }, ['security'], true))
      .toEqual({ allow: true, value: { immediate: ['security'], pendingAdd: [], added: [], removed: ['approver'] } });
    expect(planRoleChange('host-operator', { name: 'new', roles: [] }, ['vendor'], false)).toMatchObject({ allow: true, value: { immediate: ['vendor'], pendingAdd: [] } });
  });

  it('lets anyone send their own roles back unchanged (a form that saves other fields)', () => {
    expect(planRoleChange(ada, { name: 'ada', roles: ['admin'] }, ['admin'], false)).toMatchObject({ allow: true, value: { pendingAdd: [], added: [], removed: [] } });
  });
});

describe('confirming and rejecting', () => {
  const change = (over: Partial<RoleChangeFacts> = {}): RoleChangeFacts => ({
    id: 'rc-1', user: 'dora', requestedBy: 'ada', added: ['device_manager'], status: 'pending', expiresAt: NOW + 3_600_000, ...over,
  });

  it.each([
    ['the admin who asked', ada, 'ROLE_CHANGE_SELF_CONFIRM'],
    ['the person it concerns, an admin too', { name: 'dora', roles: ['admin'] as const }, 'ROLE_CHANGE_SELF_CONFIRM'],
    ['someone who is not an admin', { name: 'sam', roles: ['security'] as const }, 'FORBIDDEN'],
    ['the host operator, for a role other than admin', 'host-operator' as const, 'ROLE_CHANGE_NEEDS_ADMIN'],
  ])('refuses a confirmation by %s', (_name, confirmer, code) => {
    expect(outcome(decideRoleChangeConfirmation(change(), confirmer, ['ada', 'ben'], NOW))).toBe(code);
  });

  it('a second admin confirms', () => {
    expect(decideRoleChangeConfirmation(change(), ben, ['ada', 'ben'], NOW)).toEqual({ allow: true, value: { bootstrap: false } });
  });

  it('the host operator confirms only a single-admin install\'s second admin, asked by that admin', () => {
    const second = change({ user: 'ben', added: ['admin'] });
    expect(decideRoleChangeConfirmation(second, 'host-operator', ['ada'], NOW)).toEqual({ allow: true, value: { bootstrap: true } });
    // Once another admin exists, that admin confirms.
    expect(outcome(decideRoleChangeConfirmation(change({ user: 'cy', added: ['admin'] }), 'host-operator', ['ada', 'ben'], NOW))).toBe('ROLE_CHANGE_NEEDS_ADMIN');
    // Asked by someone no longer an active admin (disabled since): nobody stands behind it.
    expect(outcome(decideRoleChangeConfirmation(second, 'host-operator', [], NOW))).toBe('ROLE_CHANGE_NEEDS_ADMIN');
  });

  it('expires unconfirmed, and a settled change is settled', () => {
    expect(roleChangeStatusAt(change(), NOW + 3_600_000)).toBe('expired');
    expect(roleChangeStatusAt(change(), NOW + 3_599_999)).toBe('pending');
    expect(outcome(decideRoleChangeConfirmation(change(), ben, ['ada', 'ben'], NOW + 3_600_000))).toBe('ROLE_CHANGE_EXPIRED');
    expect(outcome(decideRoleChangeConfirmation(change({ status: 'rejected' }), ben, ['ada', 'ben'], NOW))).toBe('ROLE_CHANGE_NOT_PENDING');
    expect(outcome(decideRoleChangeRejection(change({ status: 'confirmed' }), ben, NOW))).toBe('ROLE_CHANGE_NOT_PENDING');
  });

  it('any admin rejects, the one who asked included (withdrawing it), and the host operator; nobody else', () => {
    expect(outcome(decideRoleChangeRejection(change(), ada, NOW))).toBe('allow');
    expect(outcome(decideRoleChangeRejection(change(), 'host-operator', NOW))).toBe('allow');
    expect(outcome(decideRoleChangeRejection(change(), { name: 'dora', roles: ['vendor'] }, NOW))).toBe('FORBIDDEN');
  });
});
