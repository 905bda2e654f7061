/**
 * The access workflow's decisions (R-5.3c): who may ask for access to which devices, who must
 * approve it at each device level (5.2d), and how approvals, denials, cancellations, expiry and
 * revocation change a request. Plain data in, a decision with its reason out; `now` is passed in.
 */
import type { CommandProfile } from './command-policy.js';
import { DEVICE_LEVELS, type DeviceLevel } from './device-classification.js';
import { provablyNarrower } from './profile-narrowing.js';
import { can } from './roles.js';
import { deny, ROLES, type Decision, type DeviceFacts, type GrantFacts, type Protocol, type Role } from './types.js';

/** Command-profile modes, least permissive first: the order is what "narrowing" compares. */
export const PROFILE_MODES = ['restricted', 'inspected', 'full'] as const;
export type ProfileMode = (typeof PROFILE_MODES)[number];

export function modeRank(mode: ProfileMode): number {
  return PROFILE_MODES.indexOf(mode);
}

/** One approval a request needs: filled by one approver holding any of these roles. */
export type ApprovalSlot = readonly Role[];

export interface ApprovalRule {
  level: DeviceLevel;
  /** Each approval fills one slot; the request is approved when every slot is filled by a distinct person. */
  approvals: readonly ApprovalSlot[];
  longestWindowMs: number;
  /** Command-profile modes a grant at this level may use (R-6.3c). */
  modes: readonly ProfileMode[];
  /** Alert security to watch live when a session starts (R-A.5b). */
  alertSecurityOnStart: boolean;
}

export type RulesByLevel = Readonly<Record<DeviceLevel, ApprovalRule>>;

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;

// Frozen, because a stray mutation of the defaults would silently loosen every comparison with them.
const frozenRule = (rule: ApprovalRule): ApprovalRule =>
  Object.freeze({
    ...rule,
    approvals: Object.freeze(rule.approvals.map((slot) => Object.freeze([...slot]))),
    modes: Object.freeze([...rule.modes]),
  });

/** The REQUIREMENTS table "Default approval rules by level". */
export const DEFAULT_APPROVAL_RULES: RulesByLevel = Object.freeze({
  1: frozenRule({
    level: 1,
    approvals: [['approver', 'device_manager', 'security']],
    longestWindowMs: 8 * HOUR,
    modes: PROFILE_MODES,
    alertSecurityOnStart: false,
  }),
  2: frozenRule({
    level: 2,
    approvals: [['device_manager']],
    longestWindowMs: 4 * HOUR,
    modes: PROFILE_MODES,
    alertSecurityOnStart: false,
  }),
  3: frozenRule({
    level: 3,
    approvals: [['device_manager'], ['security']],
    longestWindowMs: 2 * HOUR,
    modes: ['restricted'],
    alertSecurityOnStart: true,
  }),
});

// ---------------------------------------------------------------------------------------------
// Helpers shared by the decisions below.

const iso = (t: number): string => new Date(t).toISOString();

function duration(ms: number): string {
  const seconds = Math.round(ms / 1000);
  const h = Math.floor(seconds / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  const s = seconds % 60;
  const parts = [h > 0 ? `${h} h` : '', m > 0 ? `${m} min` : '', s > 0 ? `${s} s` : ''].filter((p) => p !== '');
  return parts.length > 0 ? parts.join(' ') : `${ms} ms`;
}

// The vendor role never counts towards an approval, even if a slot were configured to list it:
// the people being let in must not be the ones letting themselves in.
const approvingRoles = (roles: readonly Role[]): Role[] => roles.filter((r) => r !== 'vendor');
const fitsSlot = (roles: readonly Role[], slot: ApprovalSlot): boolean =>
  slot.some((r) => r !== 'vendor' && roles.includes(r));

/**
 * A maximum bipartite matching (Kuhn's augmenting paths). Returns, for each right vertex, the left
 * vertex matched to it or -1. The sizes here are a handful of slots, so the simple algorithm is plenty.
 */
function maxMatching(leftCount: number, rightCount: number, edge: (left: number, right: number) => boolean): number[] {
  const ownerOf = new Array<number>(rightCount).fill(-1);
  const augment = (left: number, seen: boolean[]): boolean => {
    for (let right = 0; right < rightCount; right++) {
      if (seen[right] === true || !edge(left, right)) continue;
      seen[right] = true;
      const owner = ownerOf[right] ?? -1;
      if (owner === -1 || augment(owner, seen)) {
        ownerOf[right] = left;
        return true;
      }
    }
    return false;
  };
  for (let left = 0; left < leftCount; left++) augment(left, new Array<boolean>(rightCount).fill(false));
  return ownerOf;
}

/**
 * Which approver fills which slot. A matching rather than first-come assignment: someone holding
 * both device_manager and security may fill either slot but only one, and whichever they fill is
 * chosen so that the others' approvals count too.
 */
function assignSlots(rule: ApprovalRule, approverRoles: readonly (readonly Role[])[]): number[] {
  return maxMatching(approverRoles.length, rule.approvals.length, (a, s) => {
    const roles = approverRoles[a];
    const slot = rule.approvals[s];
    return roles !== undefined && slot !== undefined && fitsSlot(roles, slot);
  });
}

const filledCount = (assignment: readonly number[]): number => assignment.filter((a) => a !== -1).length;

/** Roles that would fill one more slot if an approver holding just that role approved next. */
function rolesStillNeeded(rule: ApprovalRule, approverRoles: readonly (readonly Role[])[]): Role[] {
  const filled = filledCount(assignSlots(rule, approverRoles));
  return approvingRoles(ROLES).filter((role) => filledCount(assignSlots(rule, [...approverRoles, [role]])) > filled);
}

function oneOf(roles: readonly Role[]): string {
  if (roles.length === 0) return 'a role no one can hold (the approval rule needs fixing)';
  return roles.length === 1 ? `the role ${roles[0] ?? ''}` : `one of the roles ${roles.join(', ')}`;
}

// ---------------------------------------------------------------------------------------------
// Rule configuration.

export type WeakenedClause = 'R-5.3c' | 'R-6.3c' | 'R-5.2d' | 'R-A.5b';

export interface RuleWarning {
  level: DeviceLevel;
  clause: WeakenedClause;
  /** Ready for the start-up log: names the level, the loosening and the clause. */
  message: string;
}

/**
 * Every way the configured rules are looser than the defaults, one warning each. A hospital may
 * loosen a rule, but never silently: start-up logs these. Tightening is not reported.
 */
export function loosenedRules(rules: RulesByLevel, defaults: RulesByLevel = DEFAULT_APPROVAL_RULES): RuleWarning[] {
  const warnings: RuleWarning[] = [];
  for (const level of DEVICE_LEVELS) {
    const rule = rules[level];
    const base = defaults[level];
    const warn = (clause: WeakenedClause, text: string): void => {
      warnings.push({ level, clause, message: `approval rule for level ${level}: ${text}, which weakens ${clause}` });
    };

    if (rule.approvals.length < base.approvals.length) {
      warn('R-5.3c', `${rule.approvals.length} approval(s) needed where the default needs ${base.approvals.length}`);
    }
    // The configured rule is at least as strict when each default slot can be paired with its own
    // configured slot that accepts no role the default slot does not. Default slots left unpaired
    // are compared with the leftover configured slot closest to them, to name the extra roles.
    const accepted = (slot: ApprovalSlot): Role[] => approvingRoles(slot);
    const pairOf = maxMatching(base.approvals.length, rule.approvals.length, (d, c) =>
      accepted(rule.approvals[c] ?? []).every((r) => (base.approvals[d] ?? []).includes(r)),
    );
    const leftover = rule.approvals.map((_, c) => c).filter((c) => pairOf[c] === -1);
    base.approvals.forEach((baseSlot, d) => {
      if (pairOf.includes(d)) return;
      const extrasOf = (c: number): Role[] => accepted(rule.approvals[c] ?? []).filter((r) => !baseSlot.includes(r));
      const closest = leftover.reduce<number | undefined>(
        (best, c) => (best === undefined || extrasOf(c).length < extrasOf(best).length ? c : best),
        undefined,
      );
      if (closest === undefined) return; // already reported as fewer approvals
      leftover.splice(leftover.indexOf(closest), 1);
      warn('R-5.3c', `an approval accepts ${extrasOf(closest).join(', ')}, which the default approval (${baseSlot.join(', ')}) does not`);
    });

    if (rule.longestWindowMs > base.longestWindowMs) {
      warn('R-5.2d', `the longest window ${duration(rule.longestWindowMs)} is longer than the default ${duration(base.longestWindowMs)}`);
    }
    for (const mode of rule.modes) {
      if (!base.modes.includes(mode)) {
        warn('R-6.3c', `command-profile mode ${mode} is allowed where the default allows only ${base.modes.join(', ')}`);
      }
    }
    if (base.alertSecurityOnStart && !rule.alertSecurityOnStart) {
      warn('R-A.5b', 'the live-watch alert to security on session start is turned off');
    }
  }
  return warnings;
}

/**
 * Rules that make sense at all: a rule with no approval slot would let requests through unseen,
 * and one whose slot lists only the vendor role could never be approved.
 */
export function checkApprovalRules(rules: RulesByLevel): Decision<RulesByLevel> {
  for (const level of DEVICE_LEVELS) {
    const rule = rules[level];
    const where = `approval rule for level ${level}`;
    if (rule.level !== level) return deny('CONFIG_INVALID', `${where} says it is for level ${rule.level}`);
    if (rule.approvals.length === 0) return deny('CONFIG_INVALID', `${where} needs at least one approval (R-5.3c)`);
    for (const slot of rule.approvals) {
      if (slot.includes('vendor')) return deny('CONFIG_INVALID', `${where}: the vendor role cannot approve access (S-1.3)`);
      if (slot.length === 0) return deny('CONFIG_INVALID', `${where}: an approval must name at least one role`);
      if (slot.some((r) => !ROLES.includes(r))) return deny('CONFIG_INVALID', `${where}: roles must be among ${ROLES.join(', ')}`);
    }
    if (!Number.isFinite(rule.longestWindowMs) || rule.longestWindowMs <= 0) {
      return deny('CONFIG_INVALID', `${where}: the longest window must be a positive duration`);
    }
    if (rule.modes.length === 0) return deny('CONFIG_INVALID', `${where} must allow at least one command-profile mode`);
    if (rule.modes.some((m) => !PROFILE_MODES.includes(m))) {
      return deny('CONFIG_INVALID', `${where}: modes must be among ${PROFILE_MODES.join(', ')}`);
    }
  }
  return { allow: true, value: rules };
}

// ---------------------------------------------------------------------------------------------
// Access requests as plain data.

export const REQUEST_STATUSES = ['pending', 'approved', 'denied', 'cancelled', 'expired', 'revoked'] as const;
export type RequestStatus = (typeof REQUEST_STATUSES)[number];

/** Length bounds on free text: enough for a real work order, short enough for a banner and a log line. */
export const TEXT_LIMITS = { purpose: 2000, workOrder: 100, denialReason: 2000 } as const;

/**
 * A request may start this much before `now`: a form filled in with "now" reaches the gateway a
 * moment later, and a browser's clock may lag a little behind the gateway's.
 */
export const START_GRACE_MS = 60_000;

export interface Nda {
  signedAt: number;
  expiresAt: number;
}

export interface Requester {
  name: string;
  roles: readonly Role[];
  /** The confidentiality agreement on file (R-5.3a); null when none. */
  nda: Nda | null;
  /** When the account expires (R-5.3d); null when it does not. */
  expiresAt: number | null;
}

export interface RequestedDevice extends DeviceFacts {
  level: DeviceLevel;
}

export interface ProfileChoice {
  name: string;
  mode: ProfileMode;
  /** Its rules, when configured: what tells a narrower profile from a change (profile-narrowing.ts). */
  definition?: CommandProfile | null;
}

/** What an approver may take away from a request; never add to it. */
export interface Narrowing {
  notBefore?: number;
  notAfter?: number;
  profile?: ProfileChoice;
  /** Only `false` narrows: an approver may strike the upload asked for (R-6.3e). */
  upload?: boolean;
  /** Only `false` narrows: an approver may strike the download asked for (data export, R-6.3e). */
  download?: boolean;
}

export interface ApprovalRecord {
  approver: string;
  /** The roles the approver held when approving. */
  roles: readonly Role[];
  at: number;
  narrowing: Narrowing | null;
}

export interface NewAccessRequest {
  requester: Requester;
  devices: readonly RequestedDevice[];
  protocols: readonly Protocol[];
  purpose: string;
  workOrder: string;
  notBefore: number;
  notAfter: number;
  profile: ProfileChoice;
  /** Files to the device (SFTP/SCP uploads, changes to its files; clipboard to the device). */
  upload: boolean;
  /** Files from the device (SFTP/SCP downloads; clipboard from the device): data export, R-6.3e. */
  download: boolean;
}

export interface AccessRequest extends NewAccessRequest {
  id: string;
  status: RequestStatus;
  approvals: readonly ApprovalRecord[];
}

/** The window, profile and upload/download permissions a request stands for after its approvals' narrowings. */
export interface RequestTerms {
  notBefore: number;
  notAfter: number;
  profile: ProfileChoice;
  upload: boolean;
  download: boolean;
}

// Written as max/min/rank so that even an unchecked stored narrowing can only narrow.
function applyNarrowing(terms: RequestTerms, narrowing: Narrowing | null | undefined): RequestTerms {
  if (narrowing === null || narrowing === undefined) return terms;
  const { notBefore, notAfter, profile, upload, download } = narrowing;
  return {
    notBefore: typeof notBefore === 'number' ? Math.max(terms.notBefore, notBefore) : terms.notBefore,
    notAfter: typeof notAfter === 'number' ? Math.min(terms.notAfter, notAfter) : terms.notAfter,
    profile: profile !== undefined && profile !== null && modeRank(profile.mode) <= modeRank(terms.profile.mode) ? profile : terms.profile,
    upload: terms.upload && upload !== false,
    download: terms.download && download !== false,
  };
}

/** Narrowings accumulate in approval order; each can only take away, so the narrowest wins. */
export function effectiveTerms(request: Pick<AccessRequest, 'notBefore' | 'notAfter' | 'profile' | 'upload' | 'download' | 'approvals'>): RequestTerms {
  const asked: RequestTerms = {
    notBefore: request.notBefore,
    notAfter: request.notAfter,
    profile: request.profile,
    upload: request.upload,
    download: request.download,
  };
  return request.approvals.reduce((terms, a) => applyNarrowing(terms, a.narrowing), asked);
}

/** A request undecided when its (narrowed) window ends can no longer be granted: it has expired. */
export function requestStatusAt(request: AccessRequest, now: number): RequestStatus {
  if (request.status === 'pending' && now >= effectiveTerms(request).notAfter) return 'expired';
  return request.status;
}

/** The highest level among the devices; null for no devices. */
export function requestLevel(devices: readonly { level: DeviceLevel }[]): DeviceLevel | null {
  return devices.reduce<DeviceLevel | null>((max, d) => (max === null || d.level > max ? d.level : max), null);
}

/** A request covering several devices is governed by the strictest rule among them: the highest level's. */
export function governingRule(devices: readonly RequestedDevice[], rules: RulesByLevel): Decision<ApprovalRule> {
  const level = requestLevel(devices);
  if (level === null) return deny('DEVICES_REQUIRED', 'the request names no device');
  return { allow: true, value: rules[level] };
}

const strictest = (devices: readonly RequestedDevice[], level: DeviceLevel): string =>
  devices.filter((d) => d.level === level).map((d) => d.name).join(', ');

// ---------------------------------------------------------------------------------------------
// Filing a request.

/** May this request be filed? On success, the rule that governs it. */
export function validateNewRequest(req: NewAccessRequest, rules: RulesByLevel, now: number): Decision<ApprovalRule> {
  const { requester } = req;
  if (!can(requester.roles, 'session.connect').allow) {
    return deny('FORBIDDEN', `${requester.name} holds no role that may connect to devices, so cannot ask for access`);
  }

  const purpose = req.purpose.trim();
  if (purpose === '') return deny('PURPOSE_INVALID', 'the purpose is empty; say what work you will do on the device (R-5.3c)');
  if (purpose.length > TEXT_LIMITS.purpose) {
    return deny('PURPOSE_INVALID', `the purpose is ${purpose.length} characters; keep it to ${TEXT_LIMITS.purpose}`);
  }
  const workOrder = req.workOrder.trim();
  if (workOrder === '') return deny('WORK_ORDER_INVALID', 'the work-order reference is empty; give the number of the work order or ticket');
  if (workOrder.length > TEXT_LIMITS.workOrder) {
    return deny('WORK_ORDER_INVALID', `the work-order reference is ${workOrder.length} characters; keep it to ${TEXT_LIMITS.workOrder}`);
  }
  // It is shown in SSH banners and one-line logs, where a control character could forge a line.
  if (/\p{Cc}/u.test(workOrder)) {
    return deny('WORK_ORDER_INVALID', 'the work-order reference contains a control character (such as a line break); give it on one line');
  }

  if (req.devices.length === 0) return deny('DEVICES_REQUIRED', 'the request names no device; choose at least one');
  if (req.protocols.length === 0) return deny('PROTOCOLS_REQUIRED', 'the request names no protocol; choose ssh, vnc or rdp');
  for (const device of req.devices) {
    if (device.state === 'quarantined') {
      return deny('DEVICE_QUARANTINED', `device ${device.name} is quarantined after repair until its security check is recorded (R-6.4b)`);
    }
    if (device.state === 'decommissioned') {
      return deny('DEVICE_DECOMMISSIONED', `device ${device.name} is decommissioned and no longer reachable (R-6.5)`);
    }
    if (device.state !== 'active') return deny('DEVICE_NOT_ACTIVE', `device ${device.name} is ${String(device.state)}`);
  }
  for (const device of req.devices) {
    const missing = req.protocols.filter((p) => !device.protocols.includes(p));
    if (missing.length > 0) {
      const offered = device.protocols.length > 0 ? device.protocols.join(', ') : 'none';
      return deny('PROTOCOL_NOT_ENABLED', `device ${device.name} does not offer ${missing.join(', ')} (it offers: ${offered})`);
    }
  }

  const ruled = governingRule(req.devices, rules);
  if (!ruled.allow) return ruled;
  const rule = ruled.value;

  const { notBefore, notAfter } = req;
  if (!Number.isFinite(notBefore) || !Number.isFinite(notAfter)) return deny('WINDOW_INVALID', 'the window has an invalid start or end time');
  if (notBefore < now - START_GRACE_MS) {
    return deny('WINDOW_STARTS_IN_PAST', `the window starts at ${iso(notBefore)}, which has passed (now ${iso(now)}); choose a start from now on`);
  }
  if (notAfter <= notBefore) {
    return deny('WINDOW_INVALID', `the window ends at ${iso(notAfter)}, not after its start at ${iso(notBefore)}`);
  }
  const length = notAfter - notBefore;
  if (length > rule.longestWindowMs) {
    return deny(
      'WINDOW_TOO_LONG',
      `the window of ${duration(length)} is longer than the ${duration(rule.longestWindowMs)} allowed for level ${rule.level} devices (${strictest(req.devices, rule.level)}); ask for at most ${duration(rule.longestWindowMs)}`,
    );
  }
  if (!rule.modes.includes(req.profile.mode)) {
    return deny(
      'PROFILE_MODE_NOT_ALLOWED',
      `profile ${req.profile.name} runs in ${req.profile.mode} mode, but level ${rule.level} devices (${strictest(req.devices, rule.level)}) allow only ${rule.modes.join(', ')} (R-6.3c)`,
    );
  }

  // Validity is judged over the half-open window [notBefore, notAfter), as grants are: an NDA or
  // account ending exactly at notAfter still covers every moment of it.
  if (requester.roles.includes('vendor')) {
    if (requester.nda === null) {
      return deny('NDA_MISSING', `no confidentiality agreement is on file for ${requester.name} (R-5.3a); ask the hospital to record yours`);
    }
    if (requester.nda.expiresAt <= now) {
      // Already over: no window helps, only a renewal.
      return deny('NDA_EXPIRED', `the confidentiality agreement of ${requester.name} expired at ${iso(requester.nda.expiresAt)} (R-5.3a); ask the hospital to record the renewed one`);
    }
    if (requester.nda.expiresAt < notAfter) {
      return deny(
        'NDA_EXPIRES_TOO_SOON',
        `the confidentiality agreement of ${requester.name} expires at ${iso(requester.nda.expiresAt)}, before the window ends at ${iso(notAfter)} (R-5.3a); renew it or end the window earlier`,
      );
    }
  }
  if (requester.expiresAt !== null) {
    if (requester.expiresAt <= now) {
      return deny('ACCOUNT_EXPIRED', `the account ${requester.name} expired at ${iso(requester.expiresAt)} (R-5.3d)`);
    }
    if (requester.expiresAt < notAfter) {
      return deny(
        'ACCOUNT_EXPIRES_TOO_SOON',
        `the account ${requester.name} expires at ${iso(requester.expiresAt)}, before the window ends at ${iso(notAfter)} (R-5.3d); end the window earlier or ask for the account to be extended`,
      );
    }
  }
  return { allow: true, value: rule };
}

// ---------------------------------------------------------------------------------------------
// Deciding a request.

export interface ApprovalAttempt {
  approver: string;
  roles: readonly Role[];
  narrowing?: Narrowing | null;
  /** A privileged role change for the approver waits for confirmation (S-1.3): they decide nothing meanwhile. */
  roleChangePending?: boolean;
}

export interface SlotFill {
  roles: ApprovalSlot;
  filledBy: string | null;
}

/**
 * An approval that swaps the profile for one that is not provably narrower changes the request:
 * the approvals given on the earlier terms lapse, and the request needs them again.
 */
export interface ProfileChange {
  from: ProfileChoice;
  to: ProfileChoice;
  /** Why the new profile is not provably narrower (profile-narrowing.ts). */
  reason: string;
  /** Approvals given before the change: they no longer count. */
  lapsed: ApprovalRecord[];
  /** What the request stands for from now on, before this approval's own narrowing: the window and file transfer as narrowed so far, and the new profile. */
  base: RequestTerms;
}

export interface ApprovalOutcome {
  /** The request's approvals including this one (after a profile change: this one alone). */
  approvals: ApprovalRecord[];
  /** Each slot of the rule and who fills it in an optimal assignment. */
  slots: SlotFill[];
  fullyApproved: boolean;
  status: 'pending' | 'approved';
  /** The window, profile and file transfer after every narrowing so far. */
  terms: RequestTerms;
  profileChange: ProfileChange | null;
}

/** Checks every decision on a request starts with: the right rule, and a request still open. */
function openRequest(request: AccessRequest, rule: ApprovalRule, now: number): Decision<null> {
  const level = requestLevel(request.devices);
  if (level !== null && rule.level !== level) {
    return deny('INVALID_INPUT', `request ${request.id} is level ${level} but was checked against the level ${rule.level} rule`);
  }
  return stillPending(request, now);
}

function stillPending(request: AccessRequest, now: number): Decision<null> {
  const status = requestStatusAt(request, now);
  if (status === 'expired') {
    return deny('REQUEST_EXPIRED', `request ${request.id} was not decided before its window ended at ${iso(effectiveTerms(request).notAfter)}`);
  }
  if (status !== 'pending') return deny('REQUEST_NOT_PENDING', `request ${request.id} is already ${status}`);
  return { allow: true, value: null };
}

/** The checks approving and denying share: not one's own request (S-1.3), and not as a vendor. */
function deciderAllowed(request: AccessRequest, name: string, roles: readonly Role[], verb: 'approve' | 'deny', roleChangePending = false): Decision<null> {
  if (name === request.requester.name) {
    return deny('SELF_APPROVAL', `${name} made request ${request.id} and so cannot ${verb} it (S-1.3)${verb === 'deny' ? '; cancel it instead' : ''}`);
  }
  if (roleChangePending) {
    return deny('DECIDER_ROLE_CHANGE_PENDING', `a privileged role change for ${name} waits for confirmation, so ${name} cannot ${verb} request ${request.id} until it is confirmed, rejected or expired (S-1.3)`);
  }
  // A person with no role at all falls through to the role check, which says what is needed.
  if (roles.includes('vendor') && approvingRoles(roles).length === 0) {
    return deny('VENDOR_CANNOT_APPROVE', `${name} holds only the vendor role, which cannot ${verb} access requests`);
  }
  return { allow: true, value: null };
}

/**
 * One approver's approval, with any narrowing. On success: the new approvals, who fills which
 * slot, whether the request is now approved, and the terms it now stands for.
 */
export function decideApproval(request: AccessRequest, approval: ApprovalAttempt, rule: ApprovalRule, now: number): Decision<ApprovalOutcome> {
  const open = openRequest(request, rule, now);
  if (!open.allow) return open;
  const { approver, roles } = approval;
  const allowed = deciderAllowed(request, approver, roles, 'approve', approval.roleChangePending);
  if (!allowed.allow) return allowed;
  if (request.approvals.some((a) => a.approver === approver)) {
    return deny('DUPLICATE_APPROVAL', `${approver} has already approved request ${request.id}; another approver must give the next approval`);
  }

  const priorRoles = request.approvals.map((a) => a.roles);
  const before = filledCount(assignSlots(rule, priorRoles));
  if (before === rule.approvals.length) {
    return deny('APPROVER_ROLE_NOT_NEEDED', `request ${request.id} already has every approval its level ${rule.level} rule needs`);
  }
  const current = effectiveTerms(request);
  const asked = approval.narrowing ?? null;
  if (asked !== null) {
    const widened = wideningIn(current, asked);
    if (!widened.allow) return widened;
  }
  // A profile that is not provably narrower than the current one changes the request (S-1.3):
  // the approvals given so far lapse, and this approval is the first on the new terms.
  let profileChange: ProfileChange | null = null;
  let narrowing = asked;
  if (asked?.profile !== undefined) {
    const compared = provablyNarrower(asked.profile, current.profile);
    if (!compared.narrower) {
      const { profile, ...rest } = asked;
      profileChange = { from: current.profile, to: profile, reason: compared.reason, lapsed: [...request.approvals], base: { ...current, profile } };
      narrowing = Object.keys(rest).length > 0 ? rest : null;
    }
  }
  const counted = profileChange ? [] : priorRoles;
  const after = assignSlots(rule, [...counted, roles]);
  if (filledCount(after) === filledCount(assignSlots(rule, counted))) {
    const needed = rolesStillNeeded(rule, counted);
    return deny(
      'APPROVER_ROLE_NOT_NEEDED',
      `${approver} holds ${roles.join(', ')}, which fills none of the approvals request ${request.id} still needs; still needed: an approver with ${oneOf(needed)}`,
    );
  }
  const terms = applyNarrowing(profileChange ? profileChange.base : current, narrowing);
  if (terms.notAfter <= terms.notBefore) {
    return deny('NARROWED_WINDOW_EMPTY', `the narrowed window from ${iso(terms.notBefore)} to ${iso(terms.notAfter)} is empty`);
  }
  if (terms.notAfter <= now) {
    return deny('NARROWED_WINDOW_EMPTY', `the narrowed window ends at ${iso(terms.notAfter)}, which has already passed`);
  }
  // The rule passed in is today's; if it was tightened after the request was filed, the approver
  // must narrow the request to fit it rather than grant what the rule no longer allows.
  if (terms.notAfter - terms.notBefore > rule.longestWindowMs) {
    return deny(
      'WINDOW_TOO_LONG',
      `the window of ${duration(terms.notAfter - terms.notBefore)} is longer than the ${duration(rule.longestWindowMs)} the level ${rule.level} rule now allows; narrow it`,
    );
  }
  if (!rule.modes.includes(terms.profile.mode)) {
    return deny(
      'PROFILE_MODE_NOT_ALLOWED',
      `profile ${terms.profile.name} runs in ${terms.profile.mode} mode, but the level ${rule.level} rule now allows only ${rule.modes.join(', ')} (R-6.3c); narrow the profile`,
    );
  }

  const record: ApprovalRecord = { approver, roles: [...roles], at: now, narrowing };
  const approvals = profileChange ? [record] : [...request.approvals, record];
  const fullyApproved = filledCount(after) === rule.approvals.length;
  return {
    allow: true,
    value: {
      approvals,
      slots: rule.approvals.map((slot, s) => ({ roles: slot, filledBy: approvals[after[s] ?? -1]?.approver ?? null })),
      fullyApproved,
      status: fullyApproved ? 'approved' : 'pending',
      terms,
      profileChange,
    },
  };
}

/** A narrowing may only take away from the terms as they stand (requested, then narrowed so far). */
function wideningIn(current: RequestTerms, narrowing: Narrowing): Decision<null> {
  const { notBefore, notAfter, profile, upload, download } = narrowing;
  if ((notBefore !== undefined && !Number.isFinite(notBefore)) || (notAfter !== undefined && !Number.isFinite(notAfter))) {
    return deny('WINDOW_INVALID', 'the narrowed window has an invalid start or end time');
  }
  if (notBefore !== undefined && notBefore < current.notBefore) {
    return deny('APPROVAL_WIDENS_WINDOW', `the start ${iso(notBefore)} is earlier than the current start ${iso(current.notBefore)}; an approval may only move the start later`);
  }
  if (notAfter !== undefined && notAfter > current.notAfter) {
    return deny('APPROVAL_WIDENS_WINDOW', `the end ${iso(notAfter)} is later than the current end ${iso(current.notAfter)}; an approval may only move the end earlier`);
  }
  if (profile !== undefined && modeRank(profile.mode) > modeRank(current.profile.mode)) {
    return deny(
      'APPROVAL_WIDENS_PROFILE',
      `profile ${profile.name} runs in ${profile.mode} mode, more permissive than the ${current.profile.mode} mode of the current profile ${current.profile.name}`,
    );
  }
  // Each direction on its own: striking one never touches the other (R-6.3e).
  if (upload === true && !current.upload) {
    return deny('APPROVAL_WIDENS_FILE_TRANSFER', 'the request (as narrowed so far) does not include upload, so an approval cannot add it');
  }
  if (download === true && !current.download) {
    return deny('APPROVAL_WIDENS_FILE_TRANSFER', 'the request (as narrowed so far) does not include download, so an approval cannot add it');
  }
  return { allow: true, value: null };
}

export interface DenialAttempt {
  denier: string;
  roles: readonly Role[];
  reason: string;
  /** As for approvals: someone whose privileged role change waits decides nothing meanwhile. */
  roleChangePending?: boolean;
}

/**
 * A denial ends the request. Anyone whose roles fit any approval of the rule may deny, even one
 * already filled: refusing access is the safe direction, and a second device manager who spots a
 * bogus work order should be able to stop it.
 */
export function decideDenial(request: AccessRequest, denial: DenialAttempt, rule: ApprovalRule, now: number): Decision<{ status: 'denied'; reason: string }> {
  const open = openRequest(request, rule, now);
  if (!open.allow) return open;
  const allowed = deciderAllowed(request, denial.denier, denial.roles, 'deny', denial.roleChangePending);
  if (!allowed.allow) return allowed;
  if (!rule.approvals.some((slot) => fitsSlot(denial.roles, slot))) {
    const roles = [...new Set(rule.approvals.flatMap((slot) => approvingRoles(slot)))];
    return deny(
      'APPROVER_ROLE_NOT_NEEDED',
      `${denial.denier} holds ${denial.roles.join(', ')}; deciding a level ${rule.level} request needs ${oneOf(roles)}`,
    );
  }
  const reason = denial.reason.trim();
  if (reason === '') return deny('DENIAL_REASON_INVALID', 'a denial needs a reason the requester can read');
  if (reason.length > TEXT_LIMITS.denialReason) {
    return deny('DENIAL_REASON_INVALID', `the reason is ${reason.length} characters; keep it to ${TEXT_LIMITS.denialReason}`);
  }
  return { allow: true, value: { status: 'denied', reason } };
}

/** Only the requester may withdraw their request, and only while it is still pending. */
export function decideCancel(request: AccessRequest, actorName: string, now: number): Decision<{ status: 'cancelled' }> {
  if (actorName !== request.requester.name) {
    return deny('CANCEL_NOT_REQUESTER', `request ${request.id} was made by ${request.requester.name}; only they may cancel it`);
  }
  const pending = stillPending(request, now);
  if (!pending.allow) return pending;
  return { allow: true, value: { status: 'cancelled' } };
}

export interface Revocation {
  kind: 'grant' | 'request';
  id: string;
  revokedBy: string;
}

/**
 * Revoking takes back access already given: a grant, or an approved request (whose grants the
 * caller then revokes). Approvers, device managers, security and admins may; vendors may not.
 */
export function decideRevoke(actorRoles: readonly Role[], actorName: string, target: GrantFacts | AccessRequest): Decision<Revocation> {
  const permitted = can(actorRoles, 'grant.revoke');
  if (!permitted.allow) return deny('FORBIDDEN', `${actorName} may not revoke access: ${permitted.detail}`);
  if ('status' in target) {
    if (target.status === 'revoked') return deny('ALREADY_REVOKED', `request ${target.id} is already revoked`);
    if (target.status !== 'approved') {
      return deny('NOT_REVOCABLE', `request ${target.id} is ${target.status}; only an approved request can be revoked`);
    }
    return { allow: true, value: { kind: 'request', id: target.id, revokedBy: actorName } };
  }
  if (target.revokedAt !== null) {
    return deny('ALREADY_REVOKED', `grant ${target.id} was already revoked at ${iso(target.revokedAt)}`);
  }
  return { allow: true, value: { kind: 'grant', id: target.id, revokedBy: actorName } };
}

/**
 * A direct grant (no request) is its grantor's own approval, so it stands only where the level's
 * rule needs a single approval and the grantor's roles fill it. The host operator (the gateway
 * machine's own authority, as at `init`) may give one where a single approval suffices; a rule of
 * two or more approvals (level 3 by default: device management and security, distinct people) is
 * never met by one person, so those devices are reached through a request (R-5.3c, S-1.3).
 */
export function decideDirectGrant(rule: ApprovalRule, grantor: { roles: readonly Role[]; roleChangePending?: boolean } | 'host-operator'): Decision<null> {
  if (rule.approvals.length !== 1) {
    const slots = rule.approvals.map((slot) => oneOf(slot)).join(' and ');
    return deny('DIRECT_GRANT_NOT_ALLOWED', `level ${rule.level} devices need ${rule.approvals.length} approvals from distinct people (${slots}); file an access request instead (portcullis request create, or the web console)`);
  }
  if (grantor === 'host-operator') return { allow: true, value: null };
  // As for approvals (S-1.3): someone whose own privileged role change waits grants nothing meanwhile.
  if (grantor.roleChangePending) return deny('DECIDER_ROLE_CHANGE_PENDING', 'a privileged role change for the grantor waits for confirmation; no direct grant until it is confirmed, rejected or expired (S-1.3)');
  const slot = rule.approvals[0] ?? [];
  if (!fitsSlot(grantor.roles, slot)) {
    return deny('DIRECT_GRANT_NOT_ALLOWED', `a level ${rule.level} grant needs the approval of someone with ${oneOf(slot)}`);
  }
  return { allow: true, value: null };
}

/** Who fills which approval so far, and whether every one is filled: for an approver's queue. */
export function approvalProgress(approvals: readonly ApprovalRecord[], rule: ApprovalRule): { slots: SlotFill[]; complete: boolean } {
  const assigned = assignSlots(rule, approvals.map((a) => a.roles));
  const slots = rule.approvals.map((slot, s) => ({ roles: slot, filledBy: approvals[assigned[s] ?? -1]?.approver ?? null }));
  return { slots, complete: slots.every((s) => s.filledBy !== null) };
}
