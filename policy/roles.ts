import type { Role } from './types.js';
import { deny, type Decision } from './types.js';

/**
 * What each role may do: the one declared matrix that the CLI, the API and the console check, and
 * that the authorization-matrix test calls every API route against. Separation of duties (S-1.3):
 * admins administer (users, devices, credentials) but neither approve access nor watch sessions;
 * approvers and device managers decide requests; security watches, kills, replays and checks
 * integrity; vendors request and connect.
 */
const STAFF = ['admin', 'approver', 'device_manager', 'security'] as const;
const DECIDERS = ['approver', 'device_manager', 'security'] as const;

export const PERMISSIONS = {
  'user.manage': ['admin'],
  'user.read': ['admin', 'security'],
  'org.manage': ['admin'],
  'device.manage': ['admin'],
  /** The full inventory record (address, MAC, lifecycle); vendors see a shorter view through device.search. */
  'device.read': STAFF,
  'device.search': ['vendor', ...STAFF],
  'device.quarantine': ['admin', 'device_manager', 'security'],
  /** R-6.4b: the security check after external repair is recorded by security. */
  'device.security_check': ['security'],
  /** disposal is approved by an admin. */
  'device.decommission': ['admin'],
  'request.create': ['vendor', 'approver', 'device_manager', 'security'],
  'request.read_all': [...DECIDERS, 'admin'],
  'request.decide': DECIDERS,
  'grant.create': ['admin', 'approver', 'device_manager'],
  'grant.revoke': ['admin', 'approver', 'device_manager', 'security'],
  'grant.read_all': [...DECIDERS, 'admin'],
  'audit.read': ['admin', 'security'],
  'recording.read': ['security'],
  'session.list': ['security', 'admin'],
  'session.watch': ['security'],
  'session.kill': ['security'],
  'session.connect': ['vendor', ...STAFF],
  'user.lock': ['security', 'admin'],
  'record.read': ['security', 'admin', 'device_manager'],
  'command.read': ['security', 'admin'],
  'command.review': DECIDERS,
  'config.read': STAFF,
  /** One's own API tokens (create, list, revoke); an admin manages everyone's through user.manage. */
  'token.manage': ['vendor', ...STAFF],
  /** Alerts in the console (R-5.5a); which kinds each role sees is [alerts.routes] (policy/alert-rules.ts). */
  'alert.read': STAFF,
  'alert.acknowledge': STAFF,
} as const satisfies Record<string, readonly Role[]>;

export type Action = keyof typeof PERMISSIONS;

export function can(roles: readonly Role[], action: Action): Decision<Action> {
  const allowed: readonly Role[] = PERMISSIONS[action];
  if (roles.some((r) => allowed.includes(r))) return { allow: true, value: action };
  return deny('FORBIDDEN', `${action} needs one of the roles ${allowed.join(', ')}`);
}
