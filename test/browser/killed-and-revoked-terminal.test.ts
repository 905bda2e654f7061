import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TotpSource } from '../support/api-client.js';
import { shot, SHOTS, signIn as signInAs, WAIT, waitForTerminal } from '../support/browser-pages.js';
import type { DeviceSshd } from '../support/device-sshd.js';
import { REPO, startGatewayWithDevice, type GatewayFixture, type TestUser } from '../support/gateway-fixture.js';

// Issue 14, item 5 (R-A.5b, R-5.5c): security kills a vendor's browser terminal from the live
// sessions page and revokes the grant in the same dialog. The vendor's page says why and that the
// grant is gone, and offers no "Connect again"; opening the device again is refused (GRANT_REVOKED).

const CHROMIUM = '/usr/bin/chromium';
const UI_INDEX = path.join(REPO, 'dist/ui/index.html');
const DEVICE = 'lab-01';
const REASON = 'Firmware change outside the work order';

describe('a kill that revokes the grant, in Chromium', () => {
  let device: DeviceSshd;
  let fx: GatewayFixture;
  let browser: Browser;
  let base: string;
  const totp = new TotpSource();
  const contexts: BrowserContext[] = [];
  let vera: TestUser;
  let sam: TestUser;

  async function newPage(locale = 'en-GB'): Promise<Page> {
    const ctx = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1280, height: 860 }, locale });
    contexts.push(ctx);
    return ctx.newPage();
  }

  beforeAll(async () => {
    if (!existsSync(UI_INDEX)) throw new Error(`${UI_INDEX} is missing: build the console first (npm run build)`);
    if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: install Debian's chromium (apt-get install -y chromium)`);
    mkdirSync(SHOTS, { recursive: true });
    ({ fx, device } = await startGatewayWithDevice(DEVICE));
    vera = await fx.addUser('vera', ['vendor']);
    sam = await fx.addUser('sam', ['security']);
    await fx.grant('vera', DEVICE, 'now', '+1h');
    base = `https://127.0.0.1:${fx.gw.web.port}`;
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
  }, 60_000);

  afterAll(async () => {
    for (const c of contexts) await c.close().catch(() => undefined);
    await browser?.close();
    await fx?.stop();
    await device?.stop();
  });

  it('the vendor reads the reason and that the grant is gone, with no "Connect again"; the device cannot be opened again', async () => {
    const vendor = await newPage();
    await signInAs(vendor, base, vera, totp);
    await vendor.goto(`${base}/#/connect`);
    await vendor.getByRole('link', { name: `Connect to ${DEVICE}` }).click();
    await vendor.getByText('Connected', { exact: true }).waitFor({ timeout: WAIT });
    await waitForTerminal(vendor, (t) => t.includes('#') || t.includes('$'), 'a prompt');
    await vendor.locator('.terminal-box').click();
    await vendor.keyboard.type('echo before-$((6*7))\n');
    await waitForTerminal(vendor, (t) => t.includes('before-42'), 'the marker');

    const sec = await newPage();
    await signInAs(sec, base, sam, totp);
    await sec.goto(`${base}/#/sessions`);
    const row = sec.locator('tr', { hasText: DEVICE }).filter({ hasText: 'vera' });
    await row.waitFor({ timeout: WAIT });
    await row.getByRole('button', { name: 'Kill' }).click();
    const dialog = sec.getByRole('dialog');
    await dialog.getByLabel('Reason').fill(REASON);
    await dialog.getByLabel('Also revoke the grant this session runs on').check();
    // The lock is offered too, with its length only once asked for.
    await expect.poll(() => dialog.getByLabel('Lock for').count()).toBe(0);
    await dialog.getByLabel('Also lock the account of vera').check();
    await dialog.getByLabel('Lock for').waitFor({ timeout: WAIT });
    await dialog.getByLabel('Also lock the account of vera').uncheck();
    await shot(sec, 'kill-dialog');
    await dialog.getByRole('button', { name: 'Kill' }).click();
    await sec.getByText('Its grant is revoked.').waitFor({ timeout: WAIT });

    const ended = vendor.locator('.session-end');
    await ended.waitFor({ timeout: WAIT });
    expect(await ended.getAttribute('data-end-code')).toBe('SESSION_KILLED');
    const said = await ended.innerText();
    expect(said).toContain('A security officer ended this session.');
    expect(said).toContain(REASON);
    expect(said).toContain('Your access grant for this device was revoked, so connecting again is not possible.');
    expect(await vendor.getByRole('button', { name: 'Connect again' }).count()).toBe(0);
    expect(await vendor.getByRole('button', { name: 'Disconnect' }).count()).toBe(0);
    await shot(vendor, 'terminal-killed-revoked');
    // The same end in Chinese: the page's words change, the reason stays as security wrote it.
    await vendor.getByLabel('Language').selectOption('zh-CN');
    await expect.poll(() => ended.innerText(), { timeout: WAIT }).toContain('您对此设备的访问授权已被撤销，无法重新连接。');
    expect(await ended.innerText()).toContain(REASON);
    expect(await vendor.getByRole('button', { name: '重新连接' }).count()).toBe(0);
    await shot(vendor, 'terminal-killed-revoked-zh-CN');
    await vendor.getByLabel('语言').selectOption('en');

    // From the console: the device is no longer offered, and its address opens nothing.
    await vendor.goto(`${base}/#/connect`);
    await vendor.getByRole('heading', { level: 1 }).waitFor({ timeout: WAIT });
    await expect.poll(() => vendor.getByRole('link', { name: `Connect to ${DEVICE}` }).count(), { timeout: WAIT }).toBe(0);
    await vendor.goto(`${base}/#/connect/${DEVICE}`);
    const refused = vendor.locator('.session-end');
    await refused.waitFor({ timeout: WAIT });
    expect(await refused.getAttribute('data-end-code')).toBe('GRANT_REVOKED');
    const refusals = (await fx.audit('session.refused')).filter((e) => e.actor === 'vera');
    expect(refusals.map((e) => e.code)).toContain('GRANT_REVOKED');
  });
});
