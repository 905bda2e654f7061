import type { Role } from './types.js';
import { deny, type Decision } from './types.js';

/** What each role may do. Separation of duties (S-1.3): admins administer, approvers grant, security watches. */
export const PERMISSIONS = {
  'user.manage': ['admin'],
  'device.manage': ['admin'],
  'grant.create': ['admin', 'approver', 'device_manager'],
  'grant.revoke': ['admin', 'approver', 'device_manager', 'security'],
  'audit.read': ['admin', 'security'],
  'recording.read': ['security'],
  'session.kill': ['security'],
  'session.connect': ['vendor', 'admin', 'approver', 'device_manager', 'security'],
} as const satisfies Record<string, readonly Role[]>;

export type Action = keyof typeof PERMISSIONS;

export function can(roles: readonly Role[], action: Action): Decision<Action> {
  const allowed: readonly Role[] = PERMISSIONS[action];
  if (roles.some((r) => allowed.includes(r))) return { allow: true, value: action };
  return deny('FORBIDDEN', `${action} needs one of the roles ${allowed.join(', ')}`);
}
