import { describe, expect, it } from 'vitest';
import { authorizeSession, checkGrantWindow, warningsDue } from '../../policy/grant-check.js';
import type { DeviceFacts, GrantFacts, PrincipalFacts } from '../../policy/types.js';

const NOW = Date.parse('2026-11-23T12:00:00Z');
const H = 3_600_000;
const alice: PrincipalFacts = { name: 'alice', roles: ['vendor'], disabled: false, expiresAt: null, lockedUntil: null, nda: { signedAt: NOW - 100 * H, expiresAt: NOW + 1000 * H } };
const ct: DeviceFacts = { name: 'ct-01', state: 'active', protocols: ['ssh'] };
const grant = (over: Partial<GrantFacts> = {}): GrantFacts => ({
  id: 'g-1', user: 'alice', device: 'ct-01', protocol: 'ssh', notBefore: NOW - H, notAfter: NOW + H, revokedAt: null, ...over,
});

// R-5.3c, R-A.4b: access only on a grant for this user, device, protocol and time.
describe('authorizeSession decides with a reason', () => {
  const cases: Array<[string, Partial<Parameters<typeof authorizeSession>[0]>, string]> = [
    ['a current grant allows', {}, 'allow'],
    ['no grant at all', { grants: [] }, 'NO_GRANT'],
    ["another user's grant", { grants: [grant({ user: 'bob' })] }, 'NO_GRANT'],
    ["another device's grant", { grants: [grant({ device: 'mri-02' })] }, 'NO_GRANT'],
    ['a grant for another protocol', { grants: [grant({ protocol: 'vnc' })], device: { ...ct, protocols: ['ssh', 'vnc'] } }, 'NO_GRANT'],
    ['a grant that has not started', { grants: [grant({ notBefore: NOW + H, notAfter: NOW + 2 * H })] }, 'GRANT_NOT_STARTED'],
    ['a grant that ended', { grants: [grant({ notBefore: NOW - 2 * H, notAfter: NOW - H })] }, 'GRANT_EXPIRED'],
    ['a grant ending exactly now', { grants: [grant({ notAfter: NOW })] }, 'GRANT_EXPIRED'],
    ['a revoked grant', { grants: [grant({ revokedAt: NOW - 1 })] }, 'GRANT_REVOKED'],
    ['a disabled account', { user: { ...alice, disabled: true } }, 'ACCOUNT_DISABLED'],
    ['an expired account', { user: { ...alice, expiresAt: NOW - 1 } }, 'ACCOUNT_EXPIRED'],
    ['a locked account', { user: { ...alice, lockedUntil: NOW + 1000 } }, 'ACCOUNT_LOCKED'],
    ['an unknown device', { device: null }, 'DEVICE_UNKNOWN'],
    ['a quarantined device (R-6.4b)', { device: { ...ct, state: 'quarantined' } }, 'DEVICE_QUARANTINED'],
    ['a decommissioned device (R-6.5)', { device: { ...ct, state: 'decommissioned' } }, 'DEVICE_DECOMMISSIONED'],
    ['a device without the protocol', { device: { ...ct, protocols: ['vnc'] } }, 'PROTOCOL_NOT_ENABLED'],
    ['a vendor without a confidentiality agreement (R-5.3a)', { user: { ...alice, nda: null } }, 'NDA_MISSING'],
    ['a vendor whose agreement has ended (R-5.3a)', { user: { ...alice, nda: { signedAt: NOW - 10 * H, expiresAt: NOW } } }, 'NDA_EXPIRED'],
    ['staff need no agreement', { user: { ...alice, roles: ['security'], nda: null } }, 'allow'],
  ];
  it.each(cases)('%s', (_name, over, expected) => {
    const d = authorizeSession({ user: alice, device: ct, deviceName: 'ct-01', protocol: 'ssh', grants: [grant()], now: NOW, ...over });
    expect(d.allow ? 'allow' : d.code).toBe(expected);
    if (!d.allow) expect(d.detail.length).toBeGreaterThan(0);
  });

  it('picks the grant that lasts longest when several are current', () => {
    const d = authorizeSession({
      user: alice, device: ct, deviceName: 'ct-01', protocol: 'ssh', now: NOW,
      grants: [grant({ id: 'short', notAfter: NOW + H }), grant({ id: 'long', notAfter: NOW + 3 * H }), grant({ id: 'revoked', notAfter: NOW + 9 * H, revokedAt: NOW - 5 })],
    });
    expect(d.allow && d.value.id).toBe('long');
  });

  it('an expired lock no longer refuses', () => {
    const d = authorizeSession({ user: { ...alice, lockedUntil: NOW - 1 }, device: ct, deviceName: 'ct-01', protocol: 'ssh', grants: [grant()], now: NOW });
    expect(d.allow).toBe(true);
  });
});

describe('grant windows and warnings', () => {
  it('refuses windows that end before they start or have already ended', () => {
    expect(checkGrantWindow(NOW, NOW + H, NOW).allow).toBe(true);
    expect(checkGrantWindow(NOW + H, NOW, NOW).allow).toBe(false);
    expect(checkGrantWindow(NOW - 2 * H, NOW - H, NOW).allow).toBe(false);
    expect(checkGrantWindow(Number.NaN, NOW, NOW).allow).toBe(false);
  });

  it('warns 5 and 1 minutes before the end, once each', () => {
    const end = NOW + 4 * 60_000;
    expect(warningsDue(end, [300_000, 60_000], new Set(), NOW)).toEqual([300_000]);
    expect(warningsDue(end, [300_000, 60_000], new Set([300_000]), NOW)).toEqual([]);
    expect(warningsDue(end, [300_000, 60_000], new Set([300_000]), end - 30_000)).toEqual([60_000]);
    expect(warningsDue(end, [300_000, 60_000], new Set(), end + 1)).toEqual([]);
  });
});
