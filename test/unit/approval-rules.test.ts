import { describe, expect, it } from 'vitest';
import {
  checkApprovalRules,
  decideApproval,
  decideCancel,
  decideDirectGrant,
  decideDenial,
  decideRevoke,
  DEFAULT_APPROVAL_RULES,
  effectiveTerms,
  governingRule,
  loosenedRules,
  requestStatusAt,
  START_GRACE_MS,
  TEXT_LIMITS,
  validateNewRequest,
  type AccessRequest,
  type ApprovalRule,
  type Narrowing,
  type NewAccessRequest,
  type RequestedDevice,
  type RulesByLevel,
} from '../../policy/approval-rules.js';
import type { CommandProfile } from '../../policy/command-policy.js';
import type { DeviceLevel } from '../../policy/device-classification.js';
import type { Decision, GrantFacts, Role } from '../../policy/types.js';

const NOW = Date.parse('2026-11-23T12:00:00Z');
const MIN = 60_000;
const H = 60 * MIN;
const DAY = 24 * H;

const PEOPLE: Record<string, readonly Role[]> = {
  vera: ['vendor'], // the requester throughout
  victor: ['vendor'],
  anna: ['approver'],
  dora: ['device_manager'],
  dmitri: ['device_manager'],
  sam: ['security'],
  bea: ['device_manager', 'security'],
  ada: ['admin'],
  hal: ['vendor', 'device_manager'],
  nemo: [],
};
const rolesOf = (name: string): readonly Role[] => {
  const roles = PEOPLE[name];
  if (roles === undefined) throw new Error(`no test person ${name}`);
  return roles;
};

const device = (level: DeviceLevel, over: Partial<RequestedDevice> = {}): RequestedDevice => ({
  name: `dev-l${level}`, level, state: 'active', protocols: ['ssh', 'vnc'], ...over,
});

const newRequest = (over: Partial<NewAccessRequest> = {}): NewAccessRequest => ({
  requester: { name: 'vera', roles: ['vendor'], nda: { signedAt: NOW - 100 * DAY, expiresAt: NOW + 365 * DAY }, expiresAt: NOW + 90 * DAY },
  devices: [device(1)],
  protocols: ['ssh'],
  purpose: 'Replace the detector firmware',
  workOrder: 'WO-2026-0042',
  notBefore: NOW + H,
  notAfter: NOW + 2 * H,
  profile: { name: 'ct-service', mode: 'restricted' },
  upload: false,
  download: false,
  ...over,
});

const request = (level: DeviceLevel, over: Partial<AccessRequest> = {}): AccessRequest => ({
  ...newRequest({ devices: [device(level)] }),
  id: 'req-1',
  status: 'pending',
  approvals: [],
  ...over,
});

const rulesWith = (level: DeviceLevel, over: Partial<ApprovalRule>): RulesByLevel => {
  const rules: Record<DeviceLevel, ApprovalRule> = { ...DEFAULT_APPROVAL_RULES };
  rules[level] = { ...DEFAULT_APPROVAL_RULES[level], ...over };
  return rules;
};

const outcome = <T>(d: Decision<T>): string => (d.allow ? 'allow' : d.code);
const detailOf = <T>(d: Decision<T>): string => (d.allow ? '' : d.detail);

/** Approves in turn; stops at the first refusal. Returns the request as it then stands and the last outcome. */
function approveInTurn(req: AccessRequest, steps: ReadonlyArray<[string, Narrowing?]>, rule: ApprovalRule, now = NOW): { req: AccessRequest; last: string; detail: string } {
  let current = req;
  let last = 'pending';
  let detail = '';
  for (const [name, narrowing] of steps) {
    const d = decideApproval(current, { approver: name, roles: rolesOf(name), narrowing: narrowing ?? null }, rule, now);
    if (!d.allow) return { req: current, last: d.code, detail: d.detail };
    current = { ...current, approvals: d.value.approvals, status: d.value.status };
    last = d.value.status;
    detail = '';
  }
  return { req: current, last, detail };
}

describe('5.2d: default approval rules by level', () => {
  it.each([
    [1, [['approver', 'device_manager', 'security']], 8 * H, ['restricted', 'inspected', 'full'], false],
    [2, [['device_manager']], 4 * H, ['restricted', 'inspected', 'full'], false],
    [3, [['device_manager'], ['security']], 2 * H, ['restricted'], true],
  ] as const)('level %i: approvals %j, window %i ms, modes %j, alert %s', (level, approvals, window, modes, alert) => {
    const rule = DEFAULT_APPROVAL_RULES[level];
    expect(rule.level).toBe(level);
    expect(rule.approvals).toEqual(approvals);
    expect(rule.longestWindowMs).toBe(window);
    expect(rule.modes).toEqual(modes);
    expect(rule.alertSecurityOnStart).toBe(alert);
  });

  it('the defaults are valid, loosen nothing, and cannot be mutated', () => {
    expect(checkApprovalRules(DEFAULT_APPROVAL_RULES).allow).toBe(true);
    expect(loosenedRules(DEFAULT_APPROVAL_RULES, DEFAULT_APPROVAL_RULES)).toEqual([]);
    expect(Object.isFrozen(DEFAULT_APPROVAL_RULES[3].approvals)).toBe(true);
    expect(Object.isFrozen(DEFAULT_APPROVAL_RULES[3].approvals[0])).toBe(true);
  });

  it('5.2d: a request covering several devices is governed by the highest level among them', () => {
    const d = governingRule([device(1, { name: 'lab-1' }), device(3, { name: 'vent-3' }), device(2, { name: 'pump-2' })], DEFAULT_APPROVAL_RULES);
    expect(d.allow && d.value.level).toBe(3);
    const tooLong = validateNewRequest(newRequest({ devices: [device(1, { name: 'lab-1' }), device(3, { name: 'vent-3' })], notAfter: NOW + 4 * H }), DEFAULT_APPROVAL_RULES, NOW);
    expect(outcome(tooLong)).toBe('WINDOW_TOO_LONG');
    expect(detailOf(tooLong)).toContain('vent-3');
  });
});

describe('R-5.3c: filing an access request', () => {
  const lvl = (level: DeviceLevel, over: Partial<NewAccessRequest> = {}): Partial<NewAccessRequest> => ({ devices: [device(level)], ...over });
  const refusals: Array<[string, Partial<NewAccessRequest>, string, string]> = [
    ['a requester with no role that may connect', { requester: { name: 'nobody', roles: [], nda: null, expiresAt: null } }, 'FORBIDDEN', 'nobody'],
    ['an empty purpose', { purpose: '   ' }, 'PURPOSE_INVALID', 'empty'],
    ['a purpose that is too long', { purpose: 'x'.repeat(TEXT_LIMITS.purpose + 1) }, 'PURPOSE_INVALID', String(TEXT_LIMITS.purpose)],
    ['an empty work order', { workOrder: '' }, 'WORK_ORDER_INVALID', 'empty'],
    ['a work order that is too long', { workOrder: 'W'.repeat(TEXT_LIMITS.workOrder + 1) }, 'WORK_ORDER_INVALID', String(TEXT_LIMITS.workOrder)],
    ['a work order spanning two lines', { workOrder: 'WO-1\nforged log line' }, 'WORK_ORDER_INVALID', 'one line'],
    ['no device', { devices: [] }, 'DEVICES_REQUIRED', 'at least one'],
    ['no protocol', { protocols: [] }, 'PROTOCOLS_REQUIRED', 'ssh, vnc or rdp'],
    ['R-6.4b: a quarantined device', { devices: [device(1), device(2, { name: 'ct-7', state: 'quarantined' })] }, 'DEVICE_QUARANTINED', 'ct-7'],
    ['R-6.5: a decommissioned device', { devices: [device(1, { state: 'decommissioned' })] }, 'DEVICE_DECOMMISSIONED', 'dev-l1'],
    ['a device that does not offer a protocol asked', { protocols: ['ssh', 'rdp'] }, 'PROTOCOL_NOT_ENABLED', 'rdp'],
    ['a start more than the grace in the past', { notBefore: NOW - START_GRACE_MS - 1 }, 'WINDOW_STARTS_IN_PAST', 'passed'],
    ['an end before the start', { notBefore: NOW + 2 * H, notAfter: NOW + H }, 'WINDOW_INVALID', 'not after'],
    ['an end equal to the start', { notAfter: NOW + H }, 'WINDOW_INVALID', 'not after'],
    ['a time that is not a number', { notAfter: Number.NaN }, 'WINDOW_INVALID', 'invalid'],
    ['5.2d level 1: a window longer than 8 h', lvl(1, { notAfter: NOW + 9 * H + 1 }), 'WINDOW_TOO_LONG', '8 h'],
    ['5.2d level 2: a window longer than 4 h', lvl(2, { notAfter: NOW + 5 * H + 30 * MIN }), 'WINDOW_TOO_LONG', '4 h 30 min is longer than the 4 h'],
    ['5.2d level 3: a window longer than 2 h', lvl(3, { notAfter: NOW + 3 * H + 1 * MIN }), 'WINDOW_TOO_LONG', '2 h 1 min is longer than the 2 h'],
    ['R-6.3c level 3: an inspected profile', lvl(3, { profile: { name: 'mri-shell', mode: 'inspected' } }), 'PROFILE_MODE_NOT_ALLOWED', 'restricted'],
    ['R-6.3c level 3: a full profile', lvl(3, { profile: { name: 'mri-root', mode: 'full' } }), 'PROFILE_MODE_NOT_ALLOWED', 'mri-root'],
    ['R-5.3a: a vendor with no NDA on file', { requester: { name: 'vera', roles: ['vendor'], nda: null, expiresAt: null } }, 'NDA_MISSING', 'vera'],
    ['R-5.3a: an NDA ending before the window ends', { requester: { name: 'vera', roles: ['vendor'], nda: { signedAt: NOW - DAY, expiresAt: NOW + 90 * MIN }, expiresAt: null } }, 'NDA_EXPIRES_TOO_SOON', 'expires at'],
    ['R-5.3a: an NDA that has already expired', { requester: { name: 'vera', roles: ['vendor'], nda: { signedAt: NOW - 400 * DAY, expiresAt: NOW - DAY }, expiresAt: null } }, 'NDA_EXPIRED', 'expired at'],
    ['R-5.3d: an account expiring before the window ends', { requester: { name: 'vera', roles: ['vendor'], nda: { signedAt: NOW - DAY, expiresAt: NOW + DAY }, expiresAt: NOW + 90 * MIN } }, 'ACCOUNT_EXPIRES_TOO_SOON', 'extended'],
    ['R-5.3d: an account that has already expired', { requester: { name: 'vera', roles: ['vendor'], nda: { signedAt: NOW - DAY, expiresAt: NOW + DAY }, expiresAt: NOW - 1 } }, 'ACCOUNT_EXPIRED', 'expired at'],
  ];
  it.each(refusals)('refuses %s', (_name, over, code, mention) => {
    const d = validateNewRequest(newRequest(over), DEFAULT_APPROVAL_RULES, NOW);
    expect(outcome(d)).toBe(code);
    expect(detailOf(d)).toContain(mention);
  });

  const accepted: Array<[string, Partial<NewAccessRequest>, DeviceLevel]> = [
    ['a plain level 1 request', {}, 1],
    ['5.2d level 1: exactly 8 h in full mode', lvl(1, { notBefore: NOW, notAfter: NOW + 8 * H, profile: { name: 'lab-admin', mode: 'full' } }), 1],
    ['5.2d level 2: exactly 4 h in inspected mode', lvl(2, { notAfter: NOW + 5 * H, profile: { name: 'pump-shell', mode: 'inspected' } }), 2],
    ['5.2d level 3: exactly 2 h in restricted mode', lvl(3, { notAfter: NOW + 3 * H }), 3],
    ['a start within the 60 s grace', { notBefore: NOW - START_GRACE_MS }, 1],
    ['R-5.3a: an NDA ending exactly when the window ends', { requester: { name: 'vera', roles: ['vendor'], nda: { signedAt: NOW - DAY, expiresAt: NOW + 2 * H }, expiresAt: NOW + 2 * H } }, 1],
    ['R-5.3a: hospital staff need no NDA', { requester: { name: 'dora', roles: ['device_manager'], nda: null, expiresAt: null } }, 1],
    ['several devices that each offer every protocol asked', { devices: [device(1, { name: 'a' }), device(2, { name: 'b' })], protocols: ['ssh', 'vnc'] }, 2],
  ];
  it.each(accepted)('accepts %s', (_name, over, level) => {
    const d = validateNewRequest(newRequest(over), DEFAULT_APPROVAL_RULES, NOW);
    expect(outcome(d)).toBe('allow');
    expect(d.allow && d.value.level).toBe(level);
  });
});

describe('R-5.3c, S-1.3: approving a request at each level', () => {
  const flows: Array<[string, DeviceLevel, string[], string]> = [
    // level 1: one approver of any approving role
    ['level 1: an approver approves', 1, ['anna'], 'approved'],
    ['level 1: a device manager approves', 1, ['dora'], 'approved'],
    ['level 1: security approves', 1, ['sam'], 'approved'],
    ['level 1: an admin is not an approver', 1, ['ada'], 'APPROVER_ROLE_NOT_NEEDED'],
    ['level 1: a vendor cannot approve', 1, ['victor'], 'VENDOR_CANNOT_APPROVE'],
    ['level 1: someone holding no role at all fills no slot', 1, ['nemo'], 'APPROVER_ROLE_NOT_NEEDED'],
    ['level 1 S-1.3: the requester cannot approve their own request', 1, ['vera'], 'SELF_APPROVAL'],
    // level 2: one device manager
    ['level 2: a device manager approves', 2, ['dora'], 'approved'],
    ['level 2: a plain approver is the wrong role', 2, ['anna'], 'APPROVER_ROLE_NOT_NEEDED'],
    ['level 2: security is the wrong role', 2, ['sam'], 'APPROVER_ROLE_NOT_NEEDED'],
    ['level 2: a vendor cannot approve', 2, ['victor'], 'VENDOR_CANNOT_APPROVE'],
    ['level 2 S-1.3: the requester cannot approve their own request', 2, ['vera'], 'SELF_APPROVAL'],
    ['level 2: a vendor who is also a device manager counts as the device manager only', 2, ['hal'], 'approved'],
    // level 3: a device manager and security, two people
    ['level 3: a device manager alone leaves it pending', 3, ['dora'], 'pending'],
    ['level 3: security alone leaves it pending', 3, ['sam'], 'pending'],
    ['level 3: device manager then security approves', 3, ['dora', 'sam'], 'approved'],
    ['level 3: security then device manager approves', 3, ['sam', 'dora'], 'approved'],
    ['level 3: two device managers are not enough', 3, ['dora', 'dmitri'], 'APPROVER_ROLE_NOT_NEEDED'],
    ['level 3: a plain approver fills neither slot', 3, ['dora', 'anna'], 'APPROVER_ROLE_NOT_NEEDED'],
    ['level 3: one person with both roles does not complete it alone', 3, ['bea'], 'pending'],
    ['level 3: the same person cannot approve twice', 3, ['bea', 'bea'], 'DUPLICATE_APPROVAL'],
    ['level 3: the same device manager cannot approve twice', 3, ['dora', 'dora'], 'DUPLICATE_APPROVAL'],
    ['level 3: both-roles then a device manager completes it', 3, ['bea', 'dora'], 'approved'],
    ['level 3: both-roles then security completes it', 3, ['bea', 'sam'], 'approved'],
    ['level 3: a device manager then both-roles completes it', 3, ['dora', 'bea'], 'approved'],
    ['level 3: a vendor cannot approve', 3, ['dora', 'victor'], 'VENDOR_CANNOT_APPROVE'],
    ['level 3 S-1.3: the requester cannot approve their own request', 3, ['sam', 'vera'], 'SELF_APPROVAL'],
    ['level 3: nothing is left to approve once approved', 3, ['dora', 'sam', 'bea'], 'REQUEST_NOT_PENDING'],
  ];
  it.each(flows)('%s', (_name, level, approvers, expected) => {
    const { last } = approveInTurn(request(level), approvers.map((a) => [a]), DEFAULT_APPROVAL_RULES[level]);
    expect(last).toBe(expected);
  });

  it('level 3: a refused approver is told which role is still needed', () => {
    const { detail } = approveInTurn(request(3), [['dora'], ['dmitri']], DEFAULT_APPROVAL_RULES[3]);
    expect(detail).toContain('still needed: an approver with the role security');
    const level2 = approveInTurn(request(2), [['anna']], DEFAULT_APPROVAL_RULES[2]);
    expect(level2.detail).toContain('the role device_manager');
  });

  it('level 3: one person with both roles fills exactly one slot, and the assignment makes room for the next', () => {
    const rule = DEFAULT_APPROVAL_RULES[3];
    const first = decideApproval(request(3), { approver: 'bea', roles: rolesOf('bea') }, rule, NOW);
    expect(first.allow && first.value.slots.filter((s) => s.filledBy === 'bea')).toHaveLength(1);
    expect(first.allow && first.value.fullyApproved).toBe(false);
    if (!first.allow) return;
    const second = decideApproval({ ...request(3), approvals: first.value.approvals }, { approver: 'dora', roles: rolesOf('dora') }, rule, NOW);
    expect(second.allow && second.value.slots).toEqual([
      { roles: ['device_manager'], filledBy: 'dora' },
      { roles: ['security'], filledBy: 'bea' },
    ]);
    expect(second.allow && second.value.fullyApproved).toBe(true);
  });

  it('S-1.3: a staff requester who holds an approving role still cannot approve their own request', () => {
    const own = request(2, { requester: { name: 'dora', roles: ['device_manager'], nda: null, expiresAt: null } });
    const d = decideApproval(own, { approver: 'dora', roles: ['device_manager'] }, DEFAULT_APPROVAL_RULES[2], NOW);
    expect(outcome(d)).toBe('SELF_APPROVAL');
  });

  it('records the approval with the approver, roles and time', () => {
    const d = decideApproval(request(1), { approver: 'anna', roles: ['approver'] }, DEFAULT_APPROVAL_RULES[1], NOW);
    expect(d.allow && d.value.approvals).toEqual([{ approver: 'anna', roles: ['approver'], at: NOW, narrowing: null }]);
  });

  const notOpen: Array<[string, Partial<AccessRequest>, number, string]> = [
    ['an approved request', { status: 'approved' }, NOW, 'REQUEST_NOT_PENDING'],
    ['a denied request', { status: 'denied' }, NOW, 'REQUEST_NOT_PENDING'],
    ['a cancelled request', { status: 'cancelled' }, NOW, 'REQUEST_NOT_PENDING'],
    ['a revoked request', { status: 'revoked' }, NOW, 'REQUEST_NOT_PENDING'],
    ['a request marked expired', { status: 'expired' }, NOW, 'REQUEST_EXPIRED'],
    ['a pending request whose window has passed', {}, NOW + 2 * H, 'REQUEST_EXPIRED'],
  ];
  it.each(notOpen)('refuses to approve %s', (_name, over, at, code) => {
    expect(outcome(decideApproval(request(1, over), { approver: 'anna', roles: ['approver'] }, DEFAULT_APPROVAL_RULES[1], at))).toBe(code);
  });

  it('refuses when checked against the rule of another level', () => {
    expect(outcome(decideApproval(request(3), { approver: 'anna', roles: ['approver'] }, DEFAULT_APPROVAL_RULES[1], NOW))).toBe('INVALID_INPUT');
  });
});

/** Profiles with their rules, as the gateway hands them to policy: what proves one narrower than another. */
const PROFILES: Record<string, CommandProfile> = {
  'pump-shell': { name: 'pump-shell', mode: 'inspected', rules: [{ program: 'ls', action: 'allow' }, { program: 'cat', args: ['/var/log/pump/*'], action: 'allow' }, { program: 'reboot', action: 'review' }] },
  'pump-readonly': { name: 'pump-readonly', mode: 'restricted', rules: [{ program: 'ls', action: 'allow' }] },
  'pump-logs': { name: 'pump-logs', mode: 'inspected', rules: [{ program: 'ls', action: 'allow' }, { program: 'tail', args: ['-n', '/[0-9]+/', '/var/log/pump/*'], action: 'allow' }] },
  'pump-root': { name: 'pump-root', mode: 'full', rules: [] },
};
const profile = (name: string) => {
  const p = PROFILES[name] as CommandProfile;
  return { name, mode: p.mode, definition: p };
};

describe('R-5.3c, R-6.3c: an approval may narrow the window and profile, never widen them', () => {
  // Level 2, inspected profile, upload and download asked for, window NOW+1h .. NOW+4h.
  const base = (over: Partial<AccessRequest> = {}): AccessRequest =>
    request(2, { notBefore: NOW + H, notAfter: NOW + 4 * H, profile: profile('pump-shell'), upload: true, download: true, ...over });
  const rule = DEFAULT_APPROVAL_RULES[2];
  const approveWith = (narrowing: Narrowing, req = base(), now = NOW) =>
    decideApproval(req, { approver: 'dora', roles: ['device_manager'], narrowing }, rule, now);

  const narrowings: Array<[string, Narrowing, Partial<ReturnType<typeof effectiveTerms>>]> = [
    ['a later start', { notBefore: NOW + 2 * H }, { notBefore: NOW + 2 * H, notAfter: NOW + 4 * H }],
    ['an earlier end', { notAfter: NOW + 3 * H }, { notBefore: NOW + H, notAfter: NOW + 3 * H }],
    ['both ends', { notBefore: NOW + 2 * H, notAfter: NOW + 3 * H }, { notBefore: NOW + 2 * H, notAfter: NOW + 3 * H }],
    ['a restricted profile whose every rule the requested one has', { profile: profile('pump-readonly') }, { profile: profile('pump-readonly') }],
    ['the same profile', { profile: profile('pump-shell') }, { profile: profile('pump-shell') }],
    ['R-6.3e: no upload (download stays)', { upload: false }, { upload: false, download: true }],
    ['R-6.3e: no download (upload stays)', { download: false }, { upload: true, download: false }],
    ['R-6.3e: neither upload nor download', { upload: false, download: false }, { upload: false, download: false }],
    ['nothing at all', {}, { notBefore: NOW + H, notAfter: NOW + 4 * H, upload: true, download: true }],
  ];
  it.each(narrowings)('narrowing to %s is accepted and takes effect', (_name, narrowing, expected) => {
    const d = approveWith(narrowing);
    expect(outcome(d)).toBe('allow');
    expect(d.allow && d.value.terms).toMatchObject(expected);
    expect(d.allow && d.value.approvals[0]?.narrowing).toEqual(narrowing);
    expect(d.allow && d.value.profileChange).toBeNull();
  });

  const widenings: Array<[string, Narrowing, string, string]> = [
    ['an earlier start', { notBefore: NOW + 30 * MIN }, 'APPROVAL_WIDENS_WINDOW', 'start'],
    ['a later end', { notAfter: NOW + 5 * H }, 'APPROVAL_WIDENS_WINDOW', 'end'],
    ['a more permissive profile', { profile: profile('pump-root') }, 'APPROVAL_WIDENS_PROFILE', 'full'],
    ['R-6.3e: upload not asked for', { upload: true }, 'APPROVAL_WIDENS_FILE_TRANSFER', 'upload'],
    ['R-6.3e: download not asked for', { download: true }, 'APPROVAL_WIDENS_FILE_TRANSFER', 'download'],
    ['an empty window', { notBefore: NOW + 3 * H, notAfter: NOW + 3 * H }, 'NARROWED_WINDOW_EMPTY', 'empty'],
    ['a window that ends before it starts', { notBefore: NOW + 3 * H, notAfter: NOW + 2 * H }, 'NARROWED_WINDOW_EMPTY', 'empty'],
    ['an invalid time', { notAfter: Number.NaN }, 'WINDOW_INVALID', 'invalid'],
  ];
  it.each(widenings)('narrowing to %s is refused', (_name, narrowing, code, mention) => {
    // The direction the narrowing tries to add is the one not asked for; the other is.
    const req = narrowing.upload === true ? base({ upload: false }) : narrowing.download === true ? base({ download: false }) : base();
    const d = approveWith(narrowing, req);
    expect(outcome(d)).toBe(code);
    expect(detailOf(d)).toContain(mention);
  });

  it('a narrowing that leaves a window already ended is refused', () => {
    const running = base({ notBefore: NOW - H, notAfter: NOW + H });
    const d = approveWith({ notAfter: NOW - MIN }, running);
    expect(outcome(d)).toBe('NARROWED_WINDOW_EMPTY');
    expect(detailOf(d)).toContain('already passed');
  });

  it('level 3: narrowings accumulate and the narrowest wins; a later approver cannot undo an earlier narrowing', () => {
    const rule3 = DEFAULT_APPROVAL_RULES[3];
    const req = request(3, { notBefore: NOW + H, notAfter: NOW + 3 * H });
    const { req: afterDora, last } = approveInTurn(req, [['dora', { notAfter: NOW + 2 * H }]], rule3);
    expect(last).toBe('pending');
    const undo = decideApproval(afterDora, { approver: 'sam', roles: ['security'], narrowing: { notAfter: NOW + 150 * MIN } }, rule3, NOW);
    expect(outcome(undo)).toBe('APPROVAL_WIDENS_WINDOW');
    const more = decideApproval(afterDora, { approver: 'sam', roles: ['security'], narrowing: { notBefore: NOW + 90 * MIN } }, rule3, NOW);
    expect(more.allow && more.value.status).toBe('approved');
    expect(more.allow && more.value.terms).toMatchObject({ notBefore: NOW + 90 * MIN, notAfter: NOW + 2 * H });
  });

  it('R-6.3e: a direction struck by one approver stays struck; a later approver cannot give it back', () => {
    const twoManagers: ApprovalRule = { ...rule, approvals: [['device_manager'], ['device_manager']] };
    const first = decideApproval(base(), { approver: 'dora', roles: ['device_manager'], narrowing: { download: false } }, twoManagers, NOW);
    if (!first.allow) throw new Error(first.detail);
    const next = { ...base(), approvals: first.value.approvals };
    expect(effectiveTerms(next)).toMatchObject({ upload: true, download: false });
    const giveBack = decideApproval(next, { approver: 'dmitri', roles: ['device_manager'], narrowing: { download: true } }, twoManagers, NOW);
    expect(outcome(giveBack)).toBe('APPROVAL_WIDENS_FILE_TRANSFER');
    const last = decideApproval(next, { approver: 'dmitri', roles: ['device_manager'] }, twoManagers, NOW);
    expect(last.allow && last.value.terms).toMatchObject({ upload: true, download: false });
  });

  it('profile narrowings accumulate across approvers too', () => {
    const twoManagers: ApprovalRule = { ...rule, approvals: [['device_manager'], ['device_manager']] };
    const req = base({ profile: profile('pump-root') });
    const first = decideApproval(req, { approver: 'dora', roles: ['device_manager'], narrowing: { profile: profile('pump-shell') } }, twoManagers, NOW);
    if (!first.allow) throw new Error(first.detail);
    expect(first.value.profileChange).toBeNull();
    const next = { ...req, approvals: first.value.approvals };
    expect(effectiveTerms(next).profile.mode).toBe('inspected');
    expect(outcome(decideApproval(next, { approver: 'dmitri', roles: ['device_manager'], narrowing: { profile: profile('pump-root') } }, twoManagers, NOW))).toBe('APPROVAL_WIDENS_PROFILE');
    const last = decideApproval(next, { approver: 'dmitri', roles: ['device_manager'], narrowing: { profile: profile('pump-readonly') } }, twoManagers, NOW);
    expect(last.allow && last.value.terms.profile).toEqual(profile('pump-readonly'));
    expect(last.allow && last.value.status).toBe('approved');
  });

  it('S-1.3: a profile of the same mode that allows other commands is a change: the approvals before it lapse, and it needs them again', () => {
    const twoManagers: ApprovalRule = { ...rule, approvals: [['device_manager'], ['device_manager']] };
    const first = decideApproval(base(), { approver: 'dora', roles: ['device_manager'], narrowing: { notAfter: NOW + 3 * H } }, twoManagers, NOW);
    if (!first.allow) throw new Error(first.detail);
    const afterDora = { ...base(), approvals: first.value.approvals };
    const swap = decideApproval(afterDora, { approver: 'dmitri', roles: ['device_manager'], narrowing: { profile: profile('pump-logs'), notBefore: NOW + 2 * H } }, twoManagers, NOW);
    if (!swap.allow) throw new Error(swap.detail);
    // Two approvals given, yet not approved: dora's was for another profile.
    expect(swap.value.status).toBe('pending');
    expect(swap.value.profileChange).toMatchObject({ from: { name: 'pump-shell' }, to: { name: 'pump-logs' }, lapsed: [{ approver: 'dora' }] });
    expect(swap.value.profileChange?.reason).toContain('tail');
    // Dora's narrowed end stays; the new profile is the request's own, and dmitri's later start applies.
    expect(swap.value.profileChange?.base).toMatchObject({ notBefore: NOW + H, notAfter: NOW + 3 * H, profile: { name: 'pump-logs' } });
    expect(swap.value.terms).toMatchObject({ notBefore: NOW + 2 * H, notAfter: NOW + 3 * H, profile: { name: 'pump-logs' } });
    expect(swap.value.approvals).toEqual([{ approver: 'dmitri', roles: ['device_manager'], at: NOW, narrowing: { notBefore: NOW + 2 * H } }]);
    expect(swap.value.slots.map((s) => s.filledBy)).toEqual(['dmitri', null]);
    // As the gateway stores it: the new terms, only dmitri's approval; dora approves again and it is approved.
    const changed = { ...afterDora, ...swap.value.profileChange?.base, approvals: swap.value.approvals };
    const again = decideApproval(changed, { approver: 'dora', roles: ['device_manager'] }, twoManagers, NOW);
    expect(again.allow && again.value).toMatchObject({ status: 'approved', profileChange: null, terms: { profile: { name: 'pump-logs' }, notBefore: NOW + 2 * H, notAfter: NOW + 3 * H } });
  });

  it('S-1.3: a profile that is not configured proves nothing, so it is a change; the first approver\'s swap lapses nothing', () => {
    const d = approveWith({ profile: { name: 'pump-gone', mode: 'restricted' } });
    expect(d.allow && d.value.profileChange).toMatchObject({ lapsed: [], to: { name: 'pump-gone' } });
    expect(d.allow && d.value.profileChange?.reason).toContain('not configured');
    expect(d.allow && d.value.status).toBe('approved');
  });

  it('S-1.3: a profile swap that leaves the swapping approver no approval to fill is refused like any approval of an unneeded role', () => {
    const level3 = DEFAULT_APPROVAL_RULES[3];
    const req = request(3, { profile: { name: 'ct-service', mode: 'restricted', definition: { name: 'ct-service', mode: 'restricted', rules: [{ program: 'ls', action: 'allow' }] } } });
    const dora = decideApproval(req, { approver: 'dora', roles: ['device_manager'] }, level3, NOW);
    if (!dora.allow) throw new Error(dora.detail);
    const other = { name: 'ct-other', mode: 'restricted' as const, definition: { name: 'ct-other', mode: 'restricted' as const, rules: [{ program: 'df', action: 'allow' as const }] } };
    // sam swaps: dora's approval lapses, sam's fills security; device management is needed again.
    const sam = decideApproval({ ...req, approvals: dora.value.approvals }, { approver: 'sam', roles: ['security'], narrowing: { profile: other } }, level3, NOW);
    expect(sam.allow && sam.value.slots.map((s) => s.filledBy)).toEqual([null, 'sam']);
    expect(sam.allow && sam.value.profileChange?.lapsed.map((a) => a.approver)).toEqual(['dora']);
  });

  it('5.2d, R-6.3c: a rule tightened after filing must be met by narrowing before approval', () => {
    const tighter: ApprovalRule = { ...rule, longestWindowMs: 2 * H, modes: ['restricted'] };
    expect(outcome(approveWith({}, base()))).toBe('allow');
    expect(outcome(decideApproval(base(), { approver: 'dora', roles: ['device_manager'] }, tighter, NOW))).toBe('WINDOW_TOO_LONG');
    const shorter = { notAfter: NOW + 3 * H };
    expect(outcome(decideApproval(base(), { approver: 'dora', roles: ['device_manager'], narrowing: shorter }, tighter, NOW))).toBe('PROFILE_MODE_NOT_ALLOWED');
    const both = { ...shorter, profile: profile('pump-readonly') };
    expect(outcome(decideApproval(base(), { approver: 'dora', roles: ['device_manager'], narrowing: both }, tighter, NOW))).toBe('allow');
  });
});

describe('R-5.3c: expiry of an undecided request', () => {
  it.each([
    ['pending before its window ends', 'pending', NOW + 2 * H - 1, 'pending'],
    ['pending when its window ends', 'pending', NOW + 2 * H, 'expired'],
    ['pending long after its window', 'pending', NOW + 30 * DAY, 'expired'],
    ['approved after its window (the grant simply ended)', 'approved', NOW + 3 * H, 'approved'],
    ['denied after its window', 'denied', NOW + 3 * H, 'denied'],
  ] as const)('a request %s is %s', (_name, status, at, expected) => {
    expect(requestStatusAt(request(1, { status }), at)).toBe(expected);
  });

  it('a request whose window was narrowed expires at the narrowed end', () => {
    const narrowed = request(3, { approvals: [{ approver: 'dora', roles: ['device_manager'], at: NOW, narrowing: { notAfter: NOW + 90 * MIN } }] });
    expect(requestStatusAt(narrowed, NOW + 90 * MIN)).toBe('expired');
    expect(outcome(decideApproval(narrowed, { approver: 'sam', roles: ['security'] }, DEFAULT_APPROVAL_RULES[3], NOW + 90 * MIN))).toBe('REQUEST_EXPIRED');
  });
});

describe('R-5.3c, S-1.3: denying a request', () => {
  const cases: Array<[string, DeviceLevel, string, string, Partial<AccessRequest>, number, string]> = [
    ['level 2: a device manager denies with a reason', 2, 'dora', 'Work order is closed', {}, NOW, 'allow'],
    ['a denial without a reason', 2, 'dora', '', {}, NOW, 'DENIAL_REASON_INVALID'],
    ['a denial whose reason is only spaces', 2, 'dora', '  \n ', {}, NOW, 'DENIAL_REASON_INVALID'],
    ['a denial whose reason is too long', 2, 'dora', 'r'.repeat(TEXT_LIMITS.denialReason + 1), {}, NOW, 'DENIAL_REASON_INVALID'],
    ['S-1.3: the requester denying their own request', 2, 'vera', 'changed my mind', {}, NOW, 'SELF_APPROVAL'],
    ['a vendor denying', 2, 'victor', 'competitor', {}, NOW, 'VENDOR_CANNOT_APPROVE'],
    ['level 2: a plain approver denying', 2, 'anna', 'no', {}, NOW, 'APPROVER_ROLE_NOT_NEEDED'],
    ['level 1: security denies', 1, 'sam', 'Suspicious purpose', {}, NOW, 'allow'],
    ['level 3: a second device manager may still deny', 3, 'dmitri', 'Bogus work order', { approvals: [{ approver: 'dora', roles: ['device_manager'], at: NOW, narrowing: null }] }, NOW, 'allow'],
    ['a request already approved', 2, 'dora', 'late', { status: 'approved' }, NOW, 'REQUEST_NOT_PENDING'],
    ['a request whose window passed undecided', 2, 'dora', 'late', {}, NOW + 2 * H, 'REQUEST_EXPIRED'],
  ];
  it.each(cases)('%s', (_name, level, denier, reason, over, at, expected) => {
    const d = decideDenial(request(level, over), { denier, roles: rolesOf(denier), reason }, DEFAULT_APPROVAL_RULES[level], at);
    expect(outcome(d)).toBe(expected);
  });

  it('keeps the reason, trimmed, and tells a requester to cancel instead', () => {
    const d = decideDenial(request(1), { denier: 'anna', roles: ['approver'], reason: '  Device in surgery all day  ' }, DEFAULT_APPROVAL_RULES[1], NOW);
    expect(d.allow && d.value).toEqual({ status: 'denied', reason: 'Device in surgery all day' });
    const own = decideDenial(request(1), { denier: 'vera', roles: ['vendor'], reason: 'x' }, DEFAULT_APPROVAL_RULES[1], NOW);
    expect(detailOf(own)).toContain('cancel');
  });
});

describe('R-5.3c: cancelling a request', () => {
  it.each([
    ['the requester cancels a pending request', 'vera', {}, NOW, 'allow'],
    ['an approver cannot cancel someone else\'s request', 'dora', {}, NOW, 'CANCEL_NOT_REQUESTER'],
    ['another vendor cannot cancel it', 'victor', {}, NOW, 'CANCEL_NOT_REQUESTER'],
    ['the requester cannot cancel an approved request', 'vera', { status: 'approved' }, NOW, 'REQUEST_NOT_PENDING'],
    ['the requester cannot cancel an expired request', 'vera', {}, NOW + 2 * H, 'REQUEST_EXPIRED'],
  ] as Array<[string, string, Partial<AccessRequest>, number, string]>)('%s', (_name, actor, over, at, expected) => {
    const d = decideCancel(request(1, over), actor, at);
    expect(outcome(d)).toBe(expected);
    if (d.allow) expect(d.value.status).toBe('cancelled');
  });
});

describe('R-5.3d, S-1.3: revoking access', () => {
  const grant = (over: Partial<GrantFacts> = {}): GrantFacts => ({
    id: 'g-1', user: 'vera', device: 'dev-l1', protocol: 'ssh', notBefore: NOW, notAfter: NOW + H, revokedAt: null, ...over,
  });
  it.each([
    ['an admin revokes an approved request', ['admin'], request(1, { status: 'approved' }), 'allow'],
    ['an approver revokes an approved request', ['approver'], request(1, { status: 'approved' }), 'allow'],
    ['a device manager revokes a grant', ['device_manager'], grant(), 'allow'],
    ['security revokes a grant', ['security'], grant(), 'allow'],
    ['a vendor cannot revoke a grant', ['vendor'], grant(), 'FORBIDDEN'],
    ['a vendor cannot revoke a request', ['vendor'], request(1, { status: 'approved' }), 'FORBIDDEN'],
    ['a revoked grant cannot be revoked again', ['security'], grant({ revokedAt: NOW - 1 }), 'ALREADY_REVOKED'],
    ['a revoked request cannot be revoked again', ['admin'], request(1, { status: 'revoked' }), 'ALREADY_REVOKED'],
    ['a pending request is denied or cancelled, not revoked', ['admin'], request(1), 'NOT_REVOCABLE'],
    ['a denied request cannot be revoked', ['admin'], request(1, { status: 'denied' }), 'NOT_REVOCABLE'],
  ] as Array<[string, Role[], GrantFacts | AccessRequest, string]>)('%s', (_name, roles, target, expected) => {
    const d = decideRevoke(roles, 'actor', target);
    expect(outcome(d)).toBe(expected);
    if (d.allow) expect(d.value).toMatchObject({ id: target.id, revokedBy: 'actor', kind: 'status' in target ? 'request' : 'grant' });
  });
});

describe('R-5.3c, S-1.3: a direct grant is its grantor\'s one approval', () => {
  type Grantor = Role[] | 'host-operator';
  it.each([
    [1, 'host-operator', 'allow'],
    [1, ['approver'], 'allow'],
    [1, ['device_manager'], 'allow'],
    [1, ['security'], 'allow'],
    [1, ['admin'], 'DIRECT_GRANT_NOT_ALLOWED'],
    [1, ['vendor'], 'DIRECT_GRANT_NOT_ALLOWED'],
    [2, 'host-operator', 'allow'],
    [2, ['device_manager'], 'allow'],
    [2, ['approver'], 'DIRECT_GRANT_NOT_ALLOWED'],
    [2, ['security'], 'DIRECT_GRANT_NOT_ALLOWED'],
    [2, ['vendor'], 'DIRECT_GRANT_NOT_ALLOWED'],
    [3, 'host-operator', 'DIRECT_GRANT_NOT_ALLOWED'],
    [3, ['device_manager'], 'DIRECT_GRANT_NOT_ALLOWED'],
    [3, ['security'], 'DIRECT_GRANT_NOT_ALLOWED'],
    [3, ['device_manager', 'security'], 'DIRECT_GRANT_NOT_ALLOWED'],
    [3, ['admin', 'device_manager', 'security', 'approver'], 'DIRECT_GRANT_NOT_ALLOWED'],
  ] as Array<[DeviceLevel, Grantor, string]>)('level %s, grantor %j: %s', (level, grantor, expected) => {
    const d = decideDirectGrant(DEFAULT_APPROVAL_RULES[level], grantor === 'host-operator' ? grantor : { roles: grantor });
    expect(outcome(d)).toBe(expected);
    if (!d.allow && level === 3) expect(d.detail).toContain('file an access request');
  });
  it('follows a hospital\'s own rules: a level 1 rule tightened to two approvals takes a request too', () => {
    const two: ApprovalRule = { ...DEFAULT_APPROVAL_RULES[1], approvals: [['approver'], ['approver']] };
    expect(outcome(decideDirectGrant(two, 'host-operator'))).toBe('DIRECT_GRANT_NOT_ALLOWED');
    expect(outcome(decideDirectGrant(two, { roles: ['approver'] }))).toBe('DIRECT_GRANT_NOT_ALLOWED');
  });
});

describe('5.2d: loosening a default rule is reported with the clause it weakens', () => {
  const loosenings: Array<[string, RulesByLevel, Array<[DeviceLevel, string]>, string]> = [
    ['R-5.3c level 3: one approval instead of two', rulesWith(3, { approvals: [['device_manager']] }), [[3, 'R-5.3c']], '1 approval(s) needed where the default needs 2'],
    ['R-5.3c level 2: no approval at all', rulesWith(2, { approvals: [] }), [[2, 'R-5.3c']], '0 approval(s)'],
    ['R-5.3c level 2: a plain approver accepted', rulesWith(2, { approvals: [['device_manager', 'approver']] }), [[2, 'R-5.3c']], 'accepts approver'],
    ['R-5.3c level 3: the security slot also accepts an approver', rulesWith(3, { approvals: [['device_manager'], ['security', 'approver']] }), [[3, 'R-5.3c']], 'accepts approver, which the default approval (security) does not'],
    ['R-5.3c level 3: one slot for either role', rulesWith(3, { approvals: [['device_manager', 'security']] }), [[3, 'R-5.3c'], [3, 'R-5.3c']], 'approval(s) needed'],
    ['R-5.3c level 1: an admin accepted', rulesWith(1, { approvals: [['approver', 'device_manager', 'security', 'admin']] }), [[1, 'R-5.3c']], 'accepts admin'],
    ['R-5.2d level 1: a 12 h window', rulesWith(1, { longestWindowMs: 12 * H }), [[1, 'R-5.2d']], 'longest window 12 h is longer than the default 8 h'],
    ['R-5.2d level 3: a 2 h 30 min window', rulesWith(3, { longestWindowMs: 150 * MIN }), [[3, 'R-5.2d']], '2 h 30 min'],
    ['R-6.3c level 3: inspected mode allowed', rulesWith(3, { modes: ['restricted', 'inspected'] }), [[3, 'R-6.3c']], 'mode inspected'],
    ['R-6.3c level 3: every mode allowed', rulesWith(3, { modes: ['restricted', 'inspected', 'full'] }), [[3, 'R-6.3c'], [3, 'R-6.3c']], 'mode full'],
    ['R-A.5b level 3: no alert to security', rulesWith(3, { alertSecurityOnStart: false }), [[3, 'R-A.5b']], 'alert'],
  ];
  it.each(loosenings)('%s', (_name, rules, expected, mention) => {
    const warnings = loosenedRules(rules, DEFAULT_APPROVAL_RULES);
    expect(warnings.map((w) => [w.level, w.clause])).toEqual(expected);
    expect(warnings.map((w) => w.message).join('\n')).toContain(mention);
    for (const w of warnings) {
      expect(w.message).toContain(`level ${w.level}`);
      expect(w.message).toContain(w.clause);
    }
  });

  it('several loosenings give one warning each', () => {
    const rules: RulesByLevel = {
      1: { ...DEFAULT_APPROVAL_RULES[1], longestWindowMs: 24 * H },
      2: { ...DEFAULT_APPROVAL_RULES[2], approvals: [['device_manager', 'security']] },
      3: { ...DEFAULT_APPROVAL_RULES[3], approvals: [['device_manager']], modes: ['restricted', 'full'], alertSecurityOnStart: false },
    };
    expect(loosenedRules(rules, DEFAULT_APPROVAL_RULES).map((w) => `${w.level} ${w.clause}`)).toEqual([
      '1 R-5.2d', '2 R-5.3c', '3 R-5.3c', '3 R-6.3c', '3 R-A.5b',
    ]);
  });

  const tightenings: Array<[string, RulesByLevel]> = [
    ['level 1: a device manager only', rulesWith(1, { approvals: [['device_manager']] })],
    ['level 1: two approvals', rulesWith(1, { approvals: [['approver', 'device_manager', 'security'], ['security']] })],
    ['level 2: a 1 h window', rulesWith(2, { longestWindowMs: H })],
    ['level 2: restricted mode only', rulesWith(2, { modes: ['restricted'] })],
    ['level 1: alert security too', rulesWith(1, { alertSecurityOnStart: true })],
    ['level 3: a third approval', rulesWith(3, { approvals: [['device_manager'], ['security'], ['approver']] })],
    ['level 3: the same slots in another order', rulesWith(3, { approvals: [['security'], ['device_manager']] })],
  ];
  it.each(tightenings)('tightening (%s) gives no warning', (_name, rules) => {
    expect(loosenedRules(rules, DEFAULT_APPROVAL_RULES)).toEqual([]);
  });
});

describe('R-5.3c, S-1.3: approval rules that cannot work are refused', () => {
  it.each([
    ['no approval at all', rulesWith(2, { approvals: [] }), 'at least one approval'],
    ['an approval naming no role', rulesWith(2, { approvals: [[]] }), 'at least one role'],
    ['a vendor as approver', rulesWith(1, { approvals: [['vendor']] }), 'vendor'],
    ['a zero window', rulesWith(1, { longestWindowMs: 0 }), 'positive'],
    ['no command-profile mode', rulesWith(3, { modes: [] }), 'at least one command-profile mode'],
    ['a rule filed under the wrong level', rulesWith(3, { level: 1 }), 'says it is for level 1'],
  ] as Array<[string, RulesByLevel, string]>)('%s', (_name, rules, mention) => {
    const d = checkApprovalRules(rules);
    expect(outcome(d)).toBe('CONFIG_INVALID');
    expect(detailOf(d)).toContain(mention);
  });
});

describe('S-1.3: nobody decides a request while a privileged role change of their own waits', () => {
  it.each([
    ['approve', (): Decision<unknown> => decideApproval(request(1), { approver: 'anna', roles: ['approver'], roleChangePending: true }, DEFAULT_APPROVAL_RULES[1], NOW)],
    ['deny', (): Decision<unknown> => decideDenial(request(1), { denier: 'anna', roles: ['approver'], reason: 'no', roleChangePending: true }, DEFAULT_APPROVAL_RULES[1], NOW)],
  ])('refuses to %s, and says why', (_verb, decide) => {
    const d = decide();
    expect(outcome(d)).toBe('DECIDER_ROLE_CHANGE_PENDING');
    expect(detailOf(d)).toContain('anna');
  });

  it('refuses a direct grant from someone whose change waits, too', () => {
    const d = decideDirectGrant(DEFAULT_APPROVAL_RULES[2], { roles: ['device_manager'], roleChangePending: true });
    expect(outcome(d)).toBe('DECIDER_ROLE_CHANGE_PENDING');
    expect(outcome(decideDirectGrant(DEFAULT_APPROVAL_RULES[2], { roles: ['device_manager'], roleChangePending: false }))).toBe('allow');
  });

  it('decides as usual once nothing waits', () => {
    expect(outcome(decideApproval(request(1), { approver: 'anna', roles: ['approver'], roleChangePending: false }, DEFAULT_APPROVAL_RULES[1], NOW))).toBe('allow');
  });
});
