import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiClient, oathtoolCode, TotpSource } from '../support/api-client.js';
import { shot, SHOTS, signIn, WAIT } from '../support/browser-pages.js';
import { REPO, startGatewayFixture, type GatewayFixture, type TestUser } from '../support/gateway-fixture.js';

// Issue 14 (R-A.5b, R-5.5a) in Debian's Chromium: a security officer's alert list, updated live
// from the gateway's event stream, with the unread count in the navigation, a kind filter, and an
// acknowledgement with a comment.

const CHROMIUM = '/usr/bin/chromium';
const UI_INDEX = path.join(REPO, 'dist/ui/index.html');

describe('security\'s alert list in Chromium', () => {
  let fx: GatewayFixture;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  let sam: TestUser;
  const totp = new TotpSource();

  const badge = (): Promise<number> => page.locator('[data-unread-alerts]').getAttribute('data-unread-alerts').then(Number);
  const unreadFromApi = (): Promise<number> => page.evaluate(async () => ((await (await fetch('/api/alerts/unread')).json()) as { unread: number }).unread);

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
    context = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1280, height: 860 }, locale: 'en-GB' });
    page = await context.newPage();
  }, 90_000);

  afterAll(async () => {
    await context?.close().catch(() => undefined);
    await browser?.close();
    await fx?.stop();
  });

  it('shows the unread count, adds a lockout live, filters by kind, and acknowledges it with a comment', async () => {
    await signIn(page, `https://127.0.0.1:${fx.gw.web.port}`, sam, totp);
    // Giving sam the security role was itself an alert (and the first admin's, at init).
    const nav = page.getByRole('navigation').getByRole('link', { name: /^Alerts/ });
    await nav.locator('[data-unread-alerts]').waitFor({ timeout: WAIT });
    const before = await badge();
    expect(before).toBe(await unreadFromApi());
    expect(before).toBeGreaterThanOrEqual(2);
    await nav.click();
    await page.locator('[data-page="alerts"] [data-alert]').first().waitFor({ timeout: WAIT });
    await page.getByText('Live', { exact: true }).waitFor({ timeout: WAIT });

    // Someone guesses mallory's second factor five times, while the page is open.
    const mallory = await fx.addUser('mallory');
    const attacker = new ApiClient(fx.gw.web.port);
    const stranger = await fx.addUser('stranger');
    for (let i = 0; i < 5; i++) await attacker.login(mallory.name, mallory.password, { code: oathtoolCode(stranger.totpSecret) });
    const locked = page.locator('[data-alert-kind="account_locked"]');
    await locked.waitFor({ timeout: WAIT });
    await expect.poll(badge, { timeout: WAIT }).toBeGreaterThan(before);
    // Newest first: the lockout, or the burst of failed sign-ins it came with, now leads the list.
    await expect.poll(async () => page.locator('[data-alert]').first().getAttribute('data-alert-kind'), { timeout: WAIT }).toMatch(/^(account_locked|failed_sign_ins)$/);

    await page.getByLabel('Kind').selectOption({ label: 'Account locked' });
    await expect.poll(async () => page.locator('[data-alert]').count(), { timeout: WAIT }).toBe(1);
    expect(page.url()).toContain('kind=account_locked');
    await expect.poll(async () => (await page.locator('.alert-summary').innerText()), { timeout: WAIT }).toContain('mallory');
    await shot(page, 'alerts');

    const unreadNow = await badge();
    await locked.getByRole('button', { name: 'Acknowledge' }).click();
    const dialog = page.getByRole('dialog');
    await dialog.getByLabel(/^Comment/).fill('Called the vendor: a typo in their new authenticator.');
    await dialog.getByRole('button', { name: 'Acknowledge' }).click();
    await locked.locator('[data-acknowledgement]').waitFor({ timeout: WAIT });
    expect(await locked.locator('[data-acknowledgement]').innerText()).toContain('Acknowledged by sam');
    await expect.poll(badge, { timeout: WAIT }).toBe(unreadNow - 1);
    const acks = await fx.audit('alerts.acknowledged');
    expect(acks.map((e) => [e.actor, e.data.kind, e.data.comment])).toEqual([['sam', 'account_locked', 'Called the vendor: a typo in their new authenticator.']]);
  });
});
