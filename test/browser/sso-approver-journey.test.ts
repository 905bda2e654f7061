import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { chromium, type Browser, type BrowserContext } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { oathtoolCode, signedIn, TotpSource } from '../support/api-client.js';
import { shot, SHOTS, WAIT } from '../support/browser-pages.js';
import { freePort, startDeviceSshd, type DeviceSshd } from '../support/device-sshd.js';
import { REPO, startGatewayFixture, type GatewayFixture } from '../support/gateway-fixture.js';
import { startTestIdp, type TestIdp } from '../support/oidc-idp.js';

// Issue 13, build item 1, in real Chromium: a hospital approver signs in through the hospital's
// OpenID provider (oidc-provider on loopback), owes the Portcullis TOTP code because the IdP
// asserted no second factor (enrolling it, as a first-time user), approves a vendor's level-1
// request, and signs out of the console and of the IdP. R-A.4d, R-5.3c.

const CHROMIUM = '/usr/bin/chromium';
const UI_INDEX = path.join(REPO, 'dist/ui/index.html');

describe('an approver signs in through the IdP in Chromium and approves', () => {
  let device: DeviceSshd;
  let idp: TestIdp;
  let fx: GatewayFixture;
  let browser: Browser;
  let context: BrowserContext;
  let base: string;
  const totp = new TotpSource();

  beforeAll(async () => {
    if (!existsSync(UI_INDEX)) throw new Error(`${UI_INDEX} is missing: build the console first (npm run build)`);
    if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: install Debian's chromium (apt-get install -y chromium)`);
    mkdirSync(SHOTS, { recursive: true });
    const port = await freePort();
    device = await startDeviceSshd();
    idp = await startTestIdp(port, { anna: { sub: 'e0a1-anna', password: 'idp-pw-anna', groups: ['pc-approvers'] } });
    fx = await startGatewayFixture(`${idp.ssoToml(port, '[sso.oidc.group_roles]\n"pc-approvers" = ["approver"]\n')}\n[web]\nlisten = "127.0.0.1:${port}"\n`);
    await fx.addDevice('lab-1', device, 1);
    base = `https://127.0.0.1:${port}`;
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    context = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1280, height: 860 }, locale: 'en-GB' });
  }, 90_000);

  afterAll(async () => {
    await context?.close().catch(() => undefined);
    await browser?.close();
    await fx?.stop();
    await idp?.stop();
    await device?.stop();
  });

  it('signs in through the IdP (then the Portcullis TOTP), approves the level-1 request, and signs out of both', async () => {
    // The vendor asks through the API, with password + TOTP, as vendors always do.
    const vera = await fx.addUser('vera', ['vendor']);
    const vendor = await signedIn(fx.gw.web.port, vera, totp);
    const created = await vendor.post<{ id: string; level: number; stillNeeded: string[][] }>('/api/requests', {
      devices: ['lab-1'], protocols: ['ssh'], purpose: 'Recalibrate the analyser', workOrder: 'WO-SSO-1', from: new Date().toISOString(), durationMinutes: 60,
    });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    expect(created.body.level).toBe(1);
    const requestId = created.body.id;

    const page = await context.newPage();
    await page.goto(`${base}/`);
    const button = page.getByRole('link', { name: 'Sign in with Hospital IdP' });
    await button.waitFor({ timeout: WAIT });
    await shot(page, 'sign-in-sso');
    await button.click();

    // At the IdP: its own form, answered as a person would; no second factor there.
    await page.getByLabel('IdP user').fill('anna');
    await page.getByLabel('IdP password').fill('idp-pw-anna');
    await page.getByRole('button', { name: 'Sign in at the IdP' }).click();

    // Back at the console: the IdP asserted no MFA, so Portcullis asks for its TOTP; anna has none yet and enrols.
    await page.getByRole('heading', { name: 'One more step' }).waitFor({ timeout: WAIT });
    expect(await page.getByText('confirmed you as anna').count()).toBe(1);
    await page.getByRole('button', { name: 'Continue' }).click();
    await page.getByRole('heading', { name: 'Set up your authenticator' }).waitFor({ timeout: WAIT });
    const secret = (await page.locator('p.secret').getAttribute('data-secret')) as string;
    await page.getByLabel('Code from your app').fill(oathtoolCode(secret, new Date(Date.now() - 3_600_000)));
    await page.getByRole('button', { name: 'Confirm and sign in' }).click();
    await page.getByRole('alert').waitFor({ timeout: WAIT });
    expect(await page.getByRole('button', { name: 'Sign out' }).count()).toBe(0);
    await page.getByLabel('Code from your app').fill(await totp.code(secret));
    await page.getByRole('button', { name: 'Confirm and sign in' }).click();
    await page.getByRole('button', { name: 'Sign out' }).waitFor({ timeout: WAIT });

    const anna = await fx.gw.runtime.store.getUser('anna');
    expect(anna).toMatchObject({ roles: ['approver'], sso: { issuer: idp.issuer, subject: 'e0a1-anna' } });

    await page.goto(`${base}/#/approvals`);
    const card = page.locator(`li[data-request="${requestId}"]`);
    await card.waitFor({ timeout: WAIT });
    expect(await card.innerText()).toContain('vera');
    await card.getByRole('button', { name: 'Approve' }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Approve' }).click();
    await page.getByText(`Request ${requestId} is approved`).waitFor({ timeout: WAIT });
    const approved = (await fx.audit()).filter((e) => e.actor === 'anna' && /approv/.test(e.type));
    expect(approved.length).toBeGreaterThan(0);
    const request = await fx.gw.runtime.store.getRequest(requestId);
    expect(request?.status).toBe('approved');
    expect(request?.approvals.map((a) => a.by)).toEqual(['anna']);

    // Sign-out ends the console session and goes on to the IdP's sign-out, which sends the browser back.
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByRole('button', { name: 'Sign out of the IdP' }).waitFor({ timeout: WAIT });
    await page.getByRole('button', { name: 'Sign out of the IdP' }).click();
    await page.getByRole('link', { name: 'Sign in with Hospital IdP' }).waitFor({ timeout: WAIT });
    expect(new URL(page.url()).origin).toBe(base);
    expect((await fx.audit('logout')).at(-1)).toMatchObject({ actor: 'anna', data: { via: 'sso' } });
    // The IdP's session is over too: starting again asks for the IdP password.
    await page.getByRole('link', { name: 'Sign in with Hospital IdP' }).click();
    await page.getByLabel('IdP password').waitFor({ timeout: WAIT });
  });
});
