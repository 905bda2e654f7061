/** Plain facts that policy decides over. Times are epoch milliseconds; `now` is always passed in. */
import type { ErrorCode } from './error-codes.js';

/** `approver`: any named approver (level 1); `device_manager`: clinical engineering / device management (levels 2-3); `security`: information security. */
export const ROLES = ['admin', 'approver', 'device_manager', 'security', 'vendor'] as const;
export type Role = (typeof ROLES)[number];

export const PROTOCOLS = ['ssh', 'vnc', 'rdp'] as const;
export type Protocol = (typeof PROTOCOLS)[number];

export const DEVICE_STATES = ['active', 'quarantined', 'decommissioned'] as const;
export type DeviceState = (typeof DEVICE_STATES)[number];

export interface PrincipalFacts {
  name: string;
  roles: readonly Role[];
  disabled: boolean;
  expiresAt: number | null;
  lockedUntil: number | null;
  /** A vendor's confidentiality agreement (R-5.3a); absent for checks that do not concern it (sign-in). */
  nda?: { signedAt: number; expiresAt: number } | null;
}

export interface DeviceFacts {
  name: string;
  state: DeviceState;
  protocols: readonly Protocol[];
}

export interface GrantFacts {
  id: string;
  user: string;
  device: string;
  protocol: Protocol;
  notBefore: number;
  notAfter: number;
  revokedAt: number | null;
}

/** A decision carries its reason: the user, the audit entry and the test all read it. */
export type Decision<T> =
  | { allow: true; value: T }
  | { allow: false; code: ErrorCode; detail: string };

export function deny(code: ErrorCode, detail: string): { allow: false; code: ErrorCode; detail: string } {
  return { allow: false, code, detail };
}
