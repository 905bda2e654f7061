import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError, parseConfig } from '../../gateway/config/load.js';
import { OidcClient, readClientSecret, SsoError } from '../../gateway/identity/oidc-client.js';
import { createLogger } from '../../gateway/log/logger.js';
import { claimedGroups, mfaAsserted, roleChange, ssoAccount, ssoAccountName, ssoRoles, SSO_STAFF_ROLES } from '../../policy/sso-rules.js';

// Issue 13, build item 1: what [sso.oidc] accepts, and the pure rules that turn an IdP's claims
// into Portcullis roles, a multi-factor verdict and an account (R-A.4d, S-1.3).

const dir = mkdtempSync(path.join(os.tmpdir(), 'pc-sso-config-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const FILE = path.join(dir, 'gateway.config.toml');

const VALID = `[sso.oidc]
issuer = "https://login.hospital.example/realms/staff"
client_id = "portcullis"
client_secret_file = "oidc-client-secret"
redirect_url = "https://portcullis.hospital.example/api/auth/sso/callback"
[sso.oidc.group_roles]
"portcullis-approvers" = ["approver"]
`;

const errorOf = (text: string): ConfigError => {
  try {
    parseConfig(text, FILE);
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
  throw new Error('expected a ConfigError');
};

describe('[sso.oidc] in gateway.config.toml', () => {
  it('takes a minimal table and fills in the documented defaults', () => {
    const c = parseConfig(VALID, FILE);
    expect(c.sso.oidc).toMatchObject({
      display_name: 'single sign-on', scopes: ['openid', 'profile', 'email'], groups_claim: 'groups', username_claim: 'preferred_username',
      allowed_roles: [...SSO_STAFF_ROLES], mfa_amr: ['mfa'], mfa_acr: [],
    });
    expect(c.paths.ssoClientSecret).toBe(path.join(dir, 'oidc-client-secret'));
    expect(parseConfig('', FILE).sso.oidc).toBeUndefined();
  });

  it('names the file, the key and the reason for every bad value', () => {
    const cases: Array<[string, string, RegExp]> = [
      // A secret in the config file itself is not a key: it goes in client_secret_file.
      [VALID.replace('client_id = ', 'client_secret = "s3cret"\nclient_id = '), 'sso.oidc.client_secret', /unknown key/],
      [VALID.replace('https://login', 'http://login'), 'sso.oidc.issuer', /https:\/\/ URL \(http:\/\/ only on loopback\)/],
      [VALID.replace('/api/auth/sso/callback', '/callback'), 'sso.oidc.redirect_url', /must end with \/api\/auth\/sso\/callback/],
      [VALID.replace('[sso.oidc.group_roles]', 'allowed_roles = ["approver", "vendor"]\n[sso.oidc.group_roles]'), 'sso.oidc.allowed_roles', /only staff roles .* vendors keep local accounts/],
      [VALID.replace('[sso.oidc.group_roles]', 'scopes = ["profile"]\n[sso.oidc.group_roles]'), 'sso.oidc.scopes', /must include "openid"/],
      [VALID.replace('["approver"]', '["approver", "janitor"]'), 'sso.oidc.group_roles.portcullis-approvers.1', /expected one of/],
      [VALID.replace('"portcullis-approvers" = ["approver"]\n', ''), 'sso.oidc.group_roles', /map at least one group/],
      [VALID.replace('client_secret_file = "oidc-client-secret"\n', ''), 'sso.oidc.client_secret_file', /expected string/],
    ];
    for (const [text, key, reason] of cases) {
      const e = errorOf(text);
      expect(e.file).toBe(FILE);
      expect(e.key, text).toBe(key);
      expect(e.reason).toMatch(reason);
    }
    // Loopback may be plain http (a local IdP, the tests' own).
    expect(parseConfig(VALID.replace('https://login.hospital.example', 'http://127.0.0.1:9000'), FILE).sso.oidc?.issuer).toBe('http://127.0.0.1:9000/realms/staff');
  });

  it('reads the client secret only from a file its owner alone can read', () => {
    const c = parseConfig(VALID, FILE);
    const file = c.paths.ssoClientSecret as string;
    expect(() => readClientSecret(c)).toThrow(/sso\.oidc\.client_secret_file: cannot read .*ENOENT/);
    writeFileSync(file, 'the-client-secret\n', { mode: 0o644 });
    chmodSync(file, 0o644);
    expect(() => readClientSecret(c)).toThrow(/sso\.oidc\.client_secret_file: .* is readable by group or others; chmod 600 it/);
    chmodSync(file, 0o600);
    expect(readClientSecret(c)).toBe('the-client-secret');
  });
});

describe('the sign-in flow the browser carries', () => {
  it('is refused once older than its 10 minutes, before the IdP is even asked', async () => {
    const settings = parseConfig(VALID.replace('https://login.hospital.example', 'http://127.0.0.1:9'), FILE).sso.oidc;
    const client = new OidcClient(settings as NonNullable<typeof settings>, 'secret', createLogger('error', () => undefined));
    const cb = new URL('https://portcullis.hospital.example/api/auth/sso/callback?code=c&state=s');
    const late = client.finish(cb, { state: 's', nonce: 'n', verifier: 'v'.repeat(43), expiresAt: 1000 }, 1000);
    await expect(late).rejects.toBeInstanceOf(SsoError);
    await expect(late).rejects.toMatchObject({ code: 'SSO_FAILED', detail: expect.stringContaining('expired') });
    // A flow in time goes on to the IdP, which is not there: said as such, not as a sign-in failure.
    await expect(client.finish(cb, { state: 's', nonce: 'n', verifier: 'v'.repeat(43), expiresAt: 2000 }, 1000)).rejects.toMatchObject({ code: 'SSO_IDP_UNAVAILABLE' });
  });
});

describe('the single sign-on rules (policy/sso-rules.ts)', () => {
  const rule = { groupRoles: { approvers: ['approver'], sec: ['security'], vendors: ['vendor'], both: ['approver', 'vendor'] } as const, allowedRoles: [...SSO_STAFF_ROLES] };

  it('maps groups to staff roles, refuses no role and vendor-only, drops roles SSO may not give', () => {
    expect(ssoRoles(['approvers', 'sec', 'canteen'], rule)).toEqual({ allow: true, value: { roles: ['approver', 'security'], dropped: [] } });
    expect(ssoRoles(['canteen'], rule)).toMatchObject({ allow: false, code: 'SSO_NO_ROLE' });
    expect(ssoRoles([], rule)).toMatchObject({ allow: false, code: 'SSO_NO_ROLE' });
    expect(ssoRoles(['vendors'], rule)).toMatchObject({ allow: false, code: 'SSO_ROLE_NOT_ALLOWED' });
    expect(ssoRoles(['both'], rule)).toEqual({ allow: true, value: { roles: ['approver'], dropped: ['vendor'] } });
    // A hospital that keeps admins local: the admin group gives nothing through SSO.
    expect(ssoRoles(['admins'], { groupRoles: { admins: ['admin'] }, allowedRoles: ['approver'] })).toMatchObject({ allow: false, code: 'SSO_ROLE_NOT_ALLOWED' });
    // Even a configuration that lists vendor among the allowed roles gives no vendor through SSO.
    expect(ssoRoles(['vendors'], { groupRoles: rule.groupRoles, allowedRoles: ['vendor', 'approver'] })).toMatchObject({ allow: false, code: 'SSO_ROLE_NOT_ALLOWED' });
  });

  it('reads the groups claim as a list or one name, and nothing else', () => {
    expect(claimedGroups(['a', 'b', 3, null])).toEqual(['a', 'b']);
    expect(claimedGroups('a')).toEqual(['a']);
    expect(claimedGroups({ a: 1 })).toEqual([]);
    expect(claimedGroups(undefined)).toEqual([]);
  });

  it('accepts the IdP\'s multi-factor only from listed amr or acr values', () => {
    const mfa = { amr: ['mfa', 'otp'], acr: ['gold'] };
    expect(mfaAsserted({ amr: ['pwd', 'mfa'] }, mfa)).toEqual({ asserted: true, by: 'amr mfa' });
    expect(mfaAsserted({ amr: ['pwd'], acr: 'gold' }, mfa)).toEqual({ asserted: true, by: 'acr gold' });
    expect(mfaAsserted({ amr: ['pwd'] }, mfa).asserted).toBe(false);
    expect(mfaAsserted({}, mfa).asserted).toBe(false);
    expect(mfaAsserted({ amr: 'mfa', acr: ['gold'] }, mfa).asserted).toBe(false);
    expect(mfaAsserted({ amr: ['mfa'] }, { amr: [], acr: [] }).asserted).toBe(false);
  });

  it('names a new account from the claim, cut at "@", and refuses a name Portcullis cannot use', () => {
    expect(ssoAccountName('dora')).toEqual({ allow: true, value: 'dora' });
    expect(ssoAccountName('dora.meier@hospital.example')).toEqual({ allow: true, value: 'dora.meier' });
    expect(ssoAccountName('dora meier')).toMatchObject({ allow: false, code: 'SSO_NAME_INVALID' });
    expect(ssoAccountName('@hospital.example')).toMatchObject({ allow: false, code: 'SSO_NAME_INVALID' });
    expect(ssoAccountName(undefined)).toMatchObject({ allow: false, code: 'SSO_NAME_INVALID' });
  });

  it('uses the linked account, creates one for a free name, and never takes over an account by its name', () => {
    const link = { issuer: 'https://idp', subject: 'x' };
    expect(ssoAccount({ linked: { name: 'dora' }, sameName: null })).toEqual({ allow: true, value: { kind: 'linked', name: 'dora' } });
    expect(ssoAccount({ linked: null, sameName: null })).toEqual({ allow: true, value: { kind: 'create' } });
    expect(ssoAccount({ linked: null, sameName: { name: 'sam', sso: null } })).toMatchObject({ allow: false, code: 'SSO_ACCOUNT_NOT_LINKED' });
    expect(ssoAccount({ linked: null, sameName: { name: 'sam', sso: link } })).toMatchObject({ allow: false, code: 'SSO_ACCOUNT_NOT_LINKED', detail: expect.stringContaining('another identity-provider account') });
  });

  it('says which roles an account gains and loses', () => {
    expect(roleChange(['approver'], ['approver', 'security'])).toEqual({ added: ['security'], removed: [] });
    expect(roleChange(['approver', 'security'], ['security'])).toEqual({ added: [], removed: ['approver'] });
  });
});
