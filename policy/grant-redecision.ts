import { approvalProgress, decideDirectGrant, type ApprovalRule, type ProfileMode } from './approval-rules.js';
import { deny, type Decision, type Role } from './types.js';

/** A live grant's terms, as far as a device level's rule judges them. */
export interface LiveGrantTerms {
  notBefore: number;
  notAfter: number;
  /** The mode of the grant's command profile; null when its profile no longer resolves. */
  profileMode: ProfileMode | null;
  profileName: string | null;
  /** A grant from a request: the roles of each approval it was given on. */
  approvals: ReadonlyArray<{ approver: string; roles: readonly Role[] }> | null;
  /** A direct grant: its grantor's roles now, or the host operator (null: no longer known, which fills nothing). */
  grantor: { roles: readonly Role[] } | 'host-operator' | null;
}

/**
 * Would this grant be given under this rule? Asked of every live grant on a device whose level
 * was corrected (issue 13): a grant the new level would not give (a longer window, a profile mode
 * the level forbids, approvals it would not count as enough) is revoked with this reason.
 */
export function redecideGrant(rule: ApprovalRule, g: LiveGrantTerms): Decision<null> {
  const hours = (ms: number): string => `${Math.round((ms / 3_600_000) * 100) / 100} h`;
  if (g.notAfter - g.notBefore > rule.longestWindowMs) {
    return deny('WINDOW_TOO_LONG', `its window (${hours(g.notAfter - g.notBefore)}) is longer than level ${rule.level} allows (${hours(rule.longestWindowMs)})`);
  }
  if (g.profileMode === null) return deny('PROFILE_UNKNOWN', `its command profile ${JSON.stringify(g.profileName)} does not resolve at level ${rule.level}`);
  if (!rule.modes.includes(g.profileMode)) {
    return deny('PROFILE_MODE_NOT_ALLOWED', `its profile ${g.profileName ?? ''} runs in ${g.profileMode} mode; level ${rule.level} allows ${rule.modes.join(', ')} (R-6.3c)`);
  }
  if (g.approvals !== null) {
    const progress = approvalProgress(g.approvals.map((a) => ({ approver: a.approver, roles: a.roles, at: 0, narrowing: null })), rule);
    if (!progress.complete) {
      return deny('APPROVER_ROLE_NOT_NEEDED', `level ${rule.level} needs approvals its approvers (${g.approvals.map((a) => a.approver).join(', ') || 'none'}) do not fill`);
    }
  } else {
    const direct = decideDirectGrant(rule, g.grantor ?? { roles: [] });
    if (!direct.allow) return direct;
  }
  return { allow: true, value: null };
}
