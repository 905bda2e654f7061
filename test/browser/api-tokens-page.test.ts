import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiClient, TotpSource } from '../support/api-client.js';
import { shot, SHOTS, signIn, WAIT } from '../support/browser-pages.js';
import { REPO, startGatewayFixture, type GatewayFixture, type TestUser } from '../support/gateway-fixture.js';

// Issue 13, item 5, in real Chromium: a security officer makes an API token on the console's
// tokens page, sees the secret once and copies it, uses it over HTTPS, and revokes it.

const CHROMIUM = '/usr/bin/chromium';
const UI_INDEX = path.join(REPO, 'dist/ui/index.html');

describe('the API tokens page in Chromium', () => {
  let fx: GatewayFixture;
  let browser: Browser;
  let sam: TestUser;

  beforeAll(async () => {
    if (!existsSync(UI_INDEX)) throw new Error(`${UI_INDEX} is missing: build the console first (npm run build)`);
    if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: install Debian's chromium (apt-get install -y chromium)`);
    mkdirSync(SHOTS, { recursive: true });
    fx = await startGatewayFixture();
    sam = await fx.addUser('sam', ['security']);
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
  }, 60_000);
  afterAll(async () => {
    await browser?.close();
    await fx?.stop();
  });

  it('makes a token, shows its secret once with a copy button, and revokes it', async () => {
    const base = `https://127.0.0.1:${fx.gw.web.port}`;
    const ctx = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1280, height: 860 }, locale: 'en-GB' });
    await ctx.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: base });
    const page = await ctx.newPage();
    await signIn(page, base, sam, new TotpSource());
    await page.getByRole('link', { name: 'API tokens' }).click();
    await page.getByText('No API tokens yet.').waitFor({ timeout: WAIT });
    await page.getByRole('button', { name: 'New token' }).click();
    await page.getByLabel('Name').fill('SIEM pull');
    // Only the owner's actions are offered: security reads the audit log, never manages devices.
    await expect(page.locator('input[name="scope"][value="device.manage"]').count()).resolves.toBe(0);
    await page.locator('input[name="scope"][value="audit.read"]').check();
    await page.locator('form').getByRole('button', { name: 'New token' }).click();
    const secretBox = page.locator('[data-token-secret]');
    await secretBox.waitFor({ timeout: WAIT });
    const secret = (await secretBox.innerText()).trim();
    expect(secret).toMatch(/^pcx_[0-9a-f]{16}_[A-Za-z0-9_-]{43}$/);
    await page.getByRole('button', { name: 'Copy' }).click();
    await page.getByText('Copied to the clipboard.').waitFor({ timeout: WAIT });
    expect(await page.evaluate(() => navigator.clipboard.readText())).toBe(secret);
    await shot(page, 'api-token-created');
    await page.getByRole('button', { name: 'Done' }).click();

    // Listed without its secret; the secret works over HTTPS.
    const row = page.locator('tr', { hasText: 'SIEM pull' });
    await row.waitFor({ timeout: WAIT });
    expect(await page.content()).not.toContain(secret.slice(22));
    const use = () => new ApiClient(fx.gw.web.port).call<{ error?: { code: string } }>('GET', '/api/audit?limit=1', undefined, { authorization: `Bearer ${secret}` });
    expect((await use()).status).toBe(200);

    await row.getByRole('button', { name: 'Revoke' }).click();
    await row.getByRole('button', { name: 'Revoke now' }).click();
    await page.getByText(/was revoked/).waitFor({ timeout: WAIT });
    await row.getByText('revoked', { exact: true }).waitFor({ timeout: WAIT });
    expect((await use()).body.error?.code).toBe('TOKEN_REVOKED');
    await ctx.close();
  });
});
