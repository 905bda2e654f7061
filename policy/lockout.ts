import { deny, type Decision, type PrincipalFacts } from './types.js';

export interface LockoutRule {
  /** Consecutive failures that lock the account (R-A.4d). */
  threshold: number;
  /** How long a lock lasts, in milliseconds. */
  durationMs: number;
}

/** May this account try to sign in at all right now? Checked before any secret is looked at. */
export function loginAllowed(user: PrincipalFacts, now: number): Decision<null> {
  if (user.disabled) return deny('ACCOUNT_DISABLED', `account ${user.name} is disabled`);
  if (user.expiresAt !== null && now >= user.expiresAt) {
    return deny('ACCOUNT_EXPIRED', `account ${user.name} expired at ${new Date(user.expiresAt).toISOString()}`);
  }
  if (user.lockedUntil !== null && now < user.lockedUntil) {
    return deny('ACCOUNT_LOCKED', `locked until ${new Date(user.lockedUntil).toISOString()}`);
  }
  return { allow: true, value: null };
}

/** After a failure has been counted: does the account lock now, and until when? */
export function lockAfterFailure(failuresSoFar: number, rule: LockoutRule, now: number): { lock: boolean; until: number | null } {
  if (failuresSoFar >= rule.threshold) return { lock: true, until: now + rule.durationMs };
  return { lock: false, until: null };
}
