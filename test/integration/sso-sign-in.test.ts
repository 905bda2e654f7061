import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { oathtoolCode, TotpSource } from '../support/api-client.js';
import { freePort } from '../support/device-sshd.js';
import { startGatewayFixture, type GatewayFixture, type TestUser } from '../support/gateway-fixture.js';
import { SsoBrowser, startTestIdp, type IdpUser, type TestIdp } from '../support/oidc-idp.js';

// Issue 13, build item 1: single sign-on for staff through a real OpenID provider (oidc-provider,
// its own process on loopback), from the attacker's side too. R-A.4d (identify and authenticate;
// OIDC for staff, TOTP still), S-1.3 (a vendor never signs in as staff; no account taken over by name).

const GROUP_ROLES = `mfa_amr = ["mfa"]
[sso.oidc.group_roles]
"pc-approvers" = ["approver"]
"pc-security" = ["security"]
"pc-device-managers" = ["device_manager"]
"vendor-engineers" = ["vendor"]
`;

const PEOPLE: Record<string, IdpUser> = {
  dora: { sub: 'a1b2c3-dora', password: 'idp-pw-dora', groups: ['pc-approvers', 'canteen'] },
  nils: { sub: 'd4e5f6-nils', password: 'idp-pw-nils', groups: ['pc-device-managers'], preferred_username: 'nils@hospital.example' },
  vic: { sub: 'v7-vic', password: 'idp-pw-vic', groups: ['vendor-engineers'] },
  carl: { sub: 'c8-carl', password: 'idp-pw-carl', groups: ['canteen'] },
  sam: { sub: 's9-sam', password: 'idp-pw-sam', groups: ['pc-security'] },
};

describe('single sign-on for staff through an OpenID provider', () => {
  let idp: TestIdp;
  let fx: GatewayFixture;
  let gw: string;
  let localSam: TestUser;
  const totp = new TotpSource();
  const people = structuredClone(PEOPLE);

  beforeAll(async () => {
    const port = await freePort();
    idp = await startTestIdp(port, people);
    try {
      fx = await startGatewayFixture(`${idp.ssoToml(port, GROUP_ROLES)}\n[web]\nlisten = "127.0.0.1:${port}"\nlogin_rate_per_minute = 1000\n`);
    } catch (err) {
      await idp.stop();
      throw err;
    }
    gw = `https://127.0.0.1:${port}`;
    localSam = await fx.addUser('sam', ['security']);
  }, 60_000);

  afterAll(async () => {
    await fx?.stop();
    await idp?.stop();
  });

  /** Start at the gateway, sign in at the IdP's form; stops at the redirect back to the gateway's callback and returns its URL. */
  async function throughIdp(b: SsoBrowser, login: string, mfa: boolean): Promise<string> {
    const start = await b.request(`${gw}/api/auth/sso/start`);
    expect(start.status).toBe(303);
    const authorize = new URL(start.headers.location as string);
    expect(authorize.origin).toBe(idp.issuer);
    expect(authorize.searchParams.get('code_challenge_method')).toBe('S256');
    expect(authorize.searchParams.get('code_challenge')).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(authorize.searchParams.get('state')).toBeTruthy();
    expect(authorize.searchParams.get('nonce')).toBeTruthy();
    const form = await b.follow(authorize.href);
    expect(form.answer.body).toContain('Hospital IdP sign-in');
    const posted = await b.request(`${form.url}/login`, {
      form: { login, password: (people[login] as IdpUser).password, ...(mfa ? { mfa: 'yes' } : {}) },
    });
    expect(posted.status, posted.body).toBe(303);
    let callback = '';
    await b.follow(new URL(posted.headers.location as string, form.url).href, (loc) => {
      if (loc.origin !== gw) return false;
      callback = loc.href;
      return true;
    });
    expect(callback).toContain('/api/auth/sso/callback?');
    return callback;
  }

  /** The whole way: back at the console, where the callback sent the browser. */
  async function ssoSignIn(login: string, mfa: boolean, b = new SsoBrowser()): Promise<{ b: SsoBrowser; landed: string }> {
    const back = await b.request(await throughIdp(b, login, mfa));
    expect(back.status).toBe(303);
    return { b, landed: back.headers.location as string };
  }

  const me = (b: SsoBrowser) => b.request(`${gw}/api/auth/me`);
  const cookieOf = (b: SsoBrowser, name: string) => b.cookies(gw).get(name);

  it('creates a staff account at the first sign-in, with the mapped roles, audited with the IdP subject; the session says sso', async () => {
    const { b, landed } = await ssoSignIn('dora', true);
    expect(landed).toBe('/');
    const who = await me(b);
    expect(who.status).toBe(200);
    expect(JSON.parse(who.body).user).toMatchObject({ name: 'dora', roles: ['approver'], org: null });

    const created = (await fx.audit('user.created')).find((e) => e.data.user === 'dora');
    expect(created?.data).toMatchObject({ via: 'sso', issuer: idp.issuer, subject: 'a1b2c3-dora', roles: ['approver'] });
    const ok = (await fx.audit('login.ok')).filter((e) => e.actor === 'dora').at(-1);
    expect(ok?.data).toMatchObject({ via: 'sso', issuer: idp.issuer, mfa: 'amr mfa' });
    const stored = await fx.gw.runtime.store.getUser('dora');
    expect(stored?.sso).toEqual({ issuer: idp.issuer, subject: 'a1b2c3-dora' });
    const token = cookieOf(b, 'pc_session') as string;
    const session = await fx.gw.runtime.store.getWebSession(createHash('sha256').update(token).digest('hex'), Date.now());
    expect(session?.via).toBe('sso');
    // Nobody signs in to this account with a password: none was ever given out.
    const pw = await b.request(`${gw}/api/auth/login`, { json: { username: 'dora', password: 'idp-pw-dora', totp: '000000' } });
    expect(pw.status).toBe(401);
  });

  it('asks for the Portcullis TOTP code when the IdP did not assert multi-factor: enrolment first, a wrong code refused (audited), the right one signs in', async () => {
    const { b, landed } = await ssoSignIn('nils', false);
    expect(landed).toBe('/');
    expect(cookieOf(b, 'pc_session')).toBeUndefined();
    expect((await me(b)).status).toBe(401);
    const state = JSON.parse((await b.request(`${gw}/api/auth/sso`)).body);
    expect(state).toMatchObject({ enabled: true, displayName: 'Hospital IdP', pending: { user: 'nils' } });
    expect((await fx.audit('login.second_factor_required')).some((e) => e.actor === 'nils' && e.data.via === 'sso')).toBe(true);

    // A first-time SSO user enrols as a local user would: the secret is shown once.
    const offer = await b.request(`${gw}/api/auth/sso/totp`, { json: { totp: '' } });
    expect(offer.status).toBe(200);
    const enrolment = JSON.parse(offer.body).enrolment as { token: string; secret: string };
    const wrongFirst = await b.request(`${gw}/api/auth/sso/enrol`, { json: { token: enrolment.token, totp: '000000' } });
    expect(wrongFirst.status).toBe(401);
    expect(cookieOf(b, 'pc_session')).toBeUndefined();
    const enrolled = await b.request(`${gw}/api/auth/sso/enrol`, { json: { token: enrolment.token, totp: await totp.code(enrolment.secret) } });
    expect(enrolled.status, enrolled.body).toBe(200);
    expect(JSON.parse(enrolled.body).user).toMatchObject({ name: 'nils', roles: ['device_manager'] });
    expect((await me(b)).status).toBe(200);

    // The next sign-in without MFA at the IdP: a wrong code is refused and audited, the right one passes.
    const again = await ssoSignIn('nils', false);
    const wrong = await again.b.request(`${gw}/api/auth/sso/totp`, { json: { totp: oathtoolCode(enrolment.secret, new Date(Date.now() - 3_600_000)) } });
    expect(wrong.status).toBe(401);
    expect(JSON.parse(wrong.body).error.code).toBe('AUTH_FAILED');
    expect((await me(again.b)).status).toBe(401);
    const failed = (await fx.audit('login.failed')).filter((e) => e.actor === 'nils').at(-1);
    expect(failed?.data).toMatchObject({ via: 'sso', issuer: idp.issuer, method: 'sso+totp', reason: 'wrong TOTP code' });
    const right = await again.b.request(`${gw}/api/auth/sso/totp`, { json: { totp: await totp.code(enrolment.secret) } });
    expect(right.status, right.body).toBe(200);
    expect((await me(again.b)).status).toBe(200);
    expect(cookieOf(again.b, 'pc_sso_pending')).toBeUndefined();

    // The TOTP step without an IdP sign-in behind it (another browser, or a forged cookie) is refused.
    const stranger = new SsoBrowser();
    const none = await stranger.request(`${gw}/api/auth/sso/totp`, { json: { totp: oathtoolCode(enrolment.secret) } });
    expect(none.status).toBe(401);
    expect(JSON.parse(none.body).error.code).toBe('SSO_FAILED');
    stranger.cookies(gw).set('pc_sso_pending', encodeURIComponent('v1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA'));
    const forged = await stranger.request(`${gw}/api/auth/sso/totp`, { json: { totp: '123456' } });
    expect(JSON.parse(forged.body).error.code).toBe('SSO_FAILED');
  });

  it('keeps a disabled or expired Portcullis account out whatever the IdP says (audited)', async () => {
    expect((await fx.cli(['user', 'disable', 'dora'])).code).toBe(0);
    const { b, landed } = await ssoSignIn('dora', true);
    expect(landed).toBe('/?sso_error=ACCOUNT_DISABLED');
    expect((await me(b)).status).toBe(401);
    const refused = (await fx.audit('login.refused')).filter((e) => e.actor === 'dora').at(-1);
    expect(refused).toMatchObject({ code: 'ACCOUNT_DISABLED', data: { via: 'sso', issuer: idp.issuer, subject: 'a1b2c3-dora' } });
    expect((await fx.cli(['user', 'enable', 'dora'])).code).toBe(0);
    // Expired in Portcullis: the same.
    await fx.gw.runtime.store.updateUser('dora', { expiresAt: Date.now() - 60_000 });
    expect((await ssoSignIn('dora', true)).landed).toBe('/?sso_error=ACCOUNT_EXPIRED');
    await fx.gw.runtime.store.updateUser('dora', { expiresAt: null });
    expect((await ssoSignIn('dora', true)).landed).toBe('/');
  });

  it('re-maps the roles at each sign-in when the groups change at the IdP, and audits each change', async () => {
    people.dora = { ...(people.dora as IdpUser), groups: ['pc-approvers', 'pc-security'] };
    idp.setUsers(people);
    const first = await ssoSignIn('dora', true);
    expect(JSON.parse((await me(first.b)).body).user.roles).toEqual(['approver', 'security']);
    let mapped = (await fx.audit('user.roles_mapped')).filter((e) => e.data.user === 'dora').at(-1);
    expect(mapped?.data).toMatchObject({ via: 'sso', issuer: idp.issuer, before: ['approver'], added: ['security'], removed: [] });

    people.dora = { ...(people.dora as IdpUser), groups: ['pc-security'] };
    idp.setUsers(people);
    const second = await ssoSignIn('dora', true);
    expect(JSON.parse((await me(second.b)).body).user.roles).toEqual(['security']);
    mapped = (await fx.audit('user.roles_mapped')).filter((e) => e.data.user === 'dora').at(-1);
    expect(mapped?.data).toMatchObject({ added: [], removed: ['approver'] });
    expect((await fx.gw.runtime.store.getUser('dora'))?.roles).toEqual(['security']);
    // The same groups again: no change, no entry.
    const before = (await fx.audit('user.roles_mapped')).length;
    await ssoSignIn('dora', true);
    expect((await fx.audit('user.roles_mapped')).length).toBe(before);
  });

  it('refuses a vendor-only mapping and a person with no mapped group, creating no account', async () => {
    const vendor = await ssoSignIn('vic', true);
    expect(vendor.landed).toBe('/?sso_error=SSO_ROLE_NOT_ALLOWED');
    expect((await me(vendor.b)).status).toBe(401);
    expect(await fx.gw.runtime.store.getUser('vic')).toBeNull();
    const nobody = await ssoSignIn('carl', true);
    expect(nobody.landed).toBe('/?sso_error=SSO_NO_ROLE');
    expect(await fx.gw.runtime.store.getUser('carl')).toBeNull();
    const refusals = await fx.audit('login.refused');
    expect(refusals.find((e) => e.actor === 'vic')).toMatchObject({ code: 'SSO_ROLE_NOT_ALLOWED', data: { via: 'sso', subject: 'v7-vic' } });
    expect(refusals.find((e) => e.actor === 'carl')).toMatchObject({ code: 'SSO_NO_ROLE' });
  });

  it('never takes over a local account whose name the IdP gives; an administrator links it by issuer and subject', async () => {
    const { landed } = await ssoSignIn('sam', true);
    expect(landed).toBe('/?sso_error=SSO_ACCOUNT_NOT_LINKED');
    expect((await fx.gw.runtime.store.getUser('sam'))?.sso).toBeNull();
    // The local password sign-in is untouched.
    const local = new SsoBrowser();
    const pw = await local.request(`${gw}/api/auth/login`, { json: { username: 'sam', password: localSam.password, totp: await totp.code(localSam.totpSecret) } });
    expect(pw.status).toBe(200);

    const link = await fx.cli(['user', 'sso-link', 'sam', '--subject', 's9-sam']);
    expect(link.code, link.stderr).toBe(0);
    expect((await fx.audit('user.sso_linked')).at(-1)?.data).toMatchObject({ user: 'sam', issuer: idp.issuer, subject: 's9-sam' });
    const linked = await ssoSignIn('sam', true);
    expect(linked.landed).toBe('/');
    expect(JSON.parse((await me(linked.b)).body).user.name).toBe('sam');
    // Another account cannot be linked to the same IdP account.
    expect((await fx.cli(['user', 'sso-link', 'nils', '--subject', 's9-sam'])).code).not.toBe(0);
  });

  it('refuses a callback whose state was tampered with, one without the flow (and PKCE verifier) this browser started, and a replayed one', async () => {
    const countBefore = (await fx.audit('login.failed')).filter((e) => e.code === 'SSO_FAILED').length;
    // Tampered state.
    const a = new SsoBrowser();
    const cb = new URL(await throughIdp(a, 'dora', true));
    cb.searchParams.set('state', `${cb.searchParams.get('state')}x`);
    const tampered = await a.request(cb.href);
    expect(tampered.headers.location).toBe('/?sso_error=SSO_FAILED');
    expect((await me(a)).status).toBe(401);

    // A good callback taken to another browser: no flow cookie, so no state, nonce or code verifier to match.
    const c = new SsoBrowser();
    const good = await throughIdp(c, 'dora', true);
    const elsewhere = await new SsoBrowser().request(good);
    expect(elsewhere.headers.location).toBe('/?sso_error=SSO_FAILED');
    // A forged flow cookie does not open.
    const forger = new SsoBrowser();
    forger.cookies(gw).set('pc_sso_flow', encodeURIComponent('v1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA'));
    expect((await forger.request(good)).headers.location).toBe('/?sso_error=SSO_FAILED');
    // The browser that started a second flow holds that flow's cookie: the first flow's answer does not match it.
    const d = new SsoBrowser();
    const first = await throughIdp(d, 'dora', true);
    await d.request(`${gw}/api/auth/sso/start`);
    expect((await d.request(first)).headers.location).toBe('/?sso_error=SSO_FAILED');
    expect((await me(d)).status).toBe(401);

    // The right browser then signs in once with its own callback; the same callback again is refused.
    expect((await c.request(good)).headers.location).toBe('/');
    const replay = new SsoBrowser();
    for (const [k, v] of c.cookies(gw)) if (k !== 'pc_session') replay.cookies(gw).set(k, v);
    expect((await replay.request(good)).headers.location).toBe('/?sso_error=SSO_FAILED');

    const refusals = (await fx.audit('login.failed')).filter((e) => e.code === 'SSO_FAILED');
    expect(refusals.length - countBefore).toBeGreaterThanOrEqual(5);
    expect(refusals.every((e) => e.data.via === 'sso')).toBe(true);
    expect(JSON.stringify(refusals)).not.toContain(good.split('code=')[1]?.split('&')[0] ?? 'no-code');
  });

  it('signs out: the console session ends and the browser is given the IdP\'s end-session URL; a password session gets none', async () => {
    const { b } = await ssoSignIn('dora', true);
    const csrf = JSON.parse((await me(b)).body).csrfToken as string;
    const out = await b.request(`${gw}/api/auth/logout`, { method: 'POST', json: {}, headers: { 'x-csrf-token': csrf } });
    expect(out.status).toBe(200);
    const url = new URL(JSON.parse(out.body).endSessionUrl as string);
    expect(`${url.origin}${url.pathname}`).toBe(`${idp.issuer}/session/end`);
    expect(url.searchParams.get('client_id')).toBe('portcullis');
    expect(url.searchParams.get('post_logout_redirect_uri')).toBe(`${gw}/`);
    expect((await me(b)).status).toBe(401);
    expect((await fx.audit('logout')).at(-1)).toMatchObject({ actor: 'dora', data: { via: 'sso' } });
    // The IdP answers it with its sign-out page (RP-initiated logout).
    const idpPage = await b.follow(url.href);
    expect(idpPage.answer.body).toContain('Sign out of the test IdP');

    const local = new SsoBrowser();
    const pw = await local.request(`${gw}/api/auth/login`, { json: { username: 'sam', password: localSam.password, totp: await totp.code(localSam.totpSecret) } });
    const pwOut = await local.request(`${gw}/api/auth/logout`, { method: 'POST', json: {}, headers: { 'x-csrf-token': JSON.parse(pw.body).csrfToken as string } });
    expect(JSON.parse(pwOut.body)).toEqual({ signedOut: true, endSessionUrl: null });
  });
});
