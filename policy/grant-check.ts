import { loginAllowed } from './lockout.js';
import { can } from './roles.js';
import { deny, type Decision, type DeviceFacts, type GrantFacts, type PrincipalFacts, type Protocol } from './types.js';

export interface SessionRequest {
  user: PrincipalFacts;
  /** null when no registered device has the requested name. */
  device: DeviceFacts | null;
  deviceName: string;
  protocol: Protocol;
  /** The user's grants for this device (any protocol, any state); policy picks. */
  grants: readonly GrantFacts[];
  now: number;
}

const iso = (t: number): string => new Date(t).toISOString();

/**
 * May this user open a session to this device now (R-5.3c, R-A.4b)? The answer names the grant
 * that allows it, or the first reason it is refused. Checked again every second while the
 * session lives, so a revoked grant or a disabled account ends it.
 */
export function authorizeSession(req: SessionRequest): Decision<GrantFacts> {
  const { user, device, now } = req;
  const account = loginAllowed(user, now);
  if (!account.allow) return account;
  if (!can(user.roles, 'session.connect').allow) {
    return deny('FORBIDDEN', `user ${user.name} has no role that may connect`);
  }
  // R-5.3a: an outsider works under a confidentiality agreement, for as long as it runs.
  if (user.roles.includes('vendor')) {
    if (!user.nda) return deny('NDA_MISSING', `no confidentiality agreement is on file for ${user.name}`);
    if (now >= user.nda.expiresAt) return deny('NDA_EXPIRED', `the confidentiality agreement of ${user.name} ended at ${iso(user.nda.expiresAt)}`);
  }
  if (device === null) return deny('DEVICE_UNKNOWN', `no device named ${req.deviceName}`);
  if (device.state === 'quarantined') return deny('DEVICE_QUARANTINED', `device ${device.name} is quarantined until a security check is recorded (R-6.4b)`);
  if (device.state === 'decommissioned') return deny('DEVICE_DECOMMISSIONED', `device ${device.name} was decommissioned (R-6.5)`);
  if (!device.protocols.includes(req.protocol)) {
    return deny('PROTOCOL_NOT_ENABLED', `device ${device.name} does not offer ${req.protocol}`);
  }
  const mine = req.grants.filter((g) => g.user === user.name && g.device === device.name && g.protocol === req.protocol);
  if (mine.length === 0) return deny('NO_GRANT', `no ${req.protocol} grant for ${user.name} on ${device.name}`);

  const live = mine.filter((g) => g.revokedAt === null);
  const current = live.filter((g) => g.notBefore <= now && now < g.notAfter);
  if (current.length > 0) {
    // The grant that lasts longest decides when the session must end.
    const best = current.reduce((a, b) => (b.notAfter > a.notAfter ? b : a));
    return { allow: true, value: best };
  }
  const future = live.filter((g) => g.notBefore > now);
  if (future.length > 0) {
    const next = future.reduce((a, b) => (b.notBefore < a.notBefore ? b : a));
    return deny('GRANT_NOT_STARTED', `grant ${next.id} starts at ${iso(next.notBefore)}`);
  }
  if (live.length > 0) {
    const last = live.reduce((a, b) => (b.notAfter > a.notAfter ? b : a));
    return deny('GRANT_EXPIRED', `grant ${last.id} ended at ${iso(last.notAfter)}`);
  }
  return deny('GRANT_REVOKED', `every ${req.protocol} grant for ${user.name} on ${device.name} was revoked`);
}

/** A new grant's window must be a real interval that has not already ended. */
export function checkGrantWindow(notBefore: number, notAfter: number, now: number): Decision<null> {
  if (!Number.isFinite(notBefore) || !Number.isFinite(notAfter)) return deny('GRANT_INVALID', 'the window has an invalid time');
  if (notAfter <= notBefore) return deny('GRANT_INVALID', `the window ends (${iso(notAfter)}) before it starts (${iso(notBefore)})`);
  if (notAfter <= now) return deny('GRANT_INVALID', `the window already ended at ${iso(notAfter)}`);
  return { allow: true, value: null };
}

/** Devices the user may open a session to right now, for the interactive picker. */
export function grantedNow(user: PrincipalFacts, devices: readonly DeviceFacts[], grants: readonly GrantFacts[], protocol: Protocol, now: number): DeviceFacts[] {
  return devices.filter((device) =>
    authorizeSession({ user, device, deviceName: device.name, protocol, grants, now }).allow,
  );
}

/** The warnings still due before a grant ends: offsets (ms before the end) not yet passed. */
export function warningsDue(notAfter: number, offsetsMs: readonly number[], alreadySent: ReadonlySet<number>, now: number): number[] {
  return offsetsMs.filter((off) => !alreadySent.has(off) && now >= notAfter - off && now < notAfter);
}
