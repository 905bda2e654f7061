import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TotpSource } from '../support/api-client.js';
import { shot, SHOTS, signIn as signInAs, WAIT } from '../support/browser-pages.js';
import { REPO, startGatewayFixture, type GatewayFixture, type TestUser } from '../support/gateway-fixture.js';

// Issue 13, separation of duties in the console (S-1.3): an admin gives someone a privileged role
// in the Users page; it waits, shown with who asked and until when; the admin who asked cannot
// confirm it; a second admin confirms it there, in English and in Chinese. Real Chromium.

const CHROMIUM = '/usr/bin/chromium';
const UI_INDEX = path.join(REPO, 'dist/ui/index.html');

describe('role changes waiting for a second admin, in the console', () => {
  let fx: GatewayFixture;
  let browser: Browser;
  let base: string;
  const totp = new TotpSource();
  const contexts: BrowserContext[] = [];
  const people: Record<string, TestUser> = {};

  async function signedInPage(who: TestUser): Promise<Page> {
    const ctx = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1280, height: 860 }, locale: 'en-GB' });
    contexts.push(ctx);
    const page = await ctx.newPage();
    await signInAs(page, base, who, totp);
    return page;
  }

  beforeAll(async () => {
    if (!existsSync(UI_INDEX)) throw new Error(`${UI_INDEX} is missing: build the console first (npm run build)`);
    if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: install Debian's chromium (apt-get install -y chromium)`);
    mkdirSync(SHOTS, { recursive: true });
    fx = await startGatewayFixture();
    people.ana = await fx.addUser('ana', ['admin']);
    people.ben = await fx.addUser('ben', ['admin']);
    people.nina = await fx.addUser('nina', ['vendor']);
    base = `https://127.0.0.1:${fx.gw.web.port}`;
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
  }, 90_000);

  afterAll(async () => {
    for (const c of contexts) await c.close().catch(() => undefined);
    await browser?.close();
    await fx?.stop();
  });

  it('an admin gives a vendor the approver role: it waits, and the admin who asked can only withdraw it', async () => {
    const ana = await signedInPage(people.ana as TestUser);
    await ana.getByRole('heading', { name: 'Users' }).waitFor();
    await ana.locator('tr[data-user="nina"]').getByRole('button', { name: 'Edit' }).click();
    const dialog = ana.getByRole('dialog');
    await dialog.getByRole('checkbox', { name: 'approver' }).check();
    await dialog.getByRole('button', { name: 'Save' }).click();
    await ana.getByText(/The role approver waits for a second admin's confirmation/).waitFor({ timeout: WAIT });
    // nina's roles are unchanged; the change is listed with who asked.
    expect(await ana.locator('tbody tr[data-user="nina"]:not([data-role-change])').innerText()).not.toContain('approver');
    const row = ana.locator('tr[data-role-change][data-user="nina"]');
    await row.waitFor({ timeout: WAIT });
    expect(await row.innerText()).toMatch(/nina[\s\S]*approver[\s\S]*ana/);
    expect(await row.getByRole('button', { name: 'Confirm' }).count()).toBe(0);
    await row.getByText('You asked for this: another admin confirms it.').waitFor();
    await row.getByRole('button', { name: 'Withdraw' }).waitFor();
    await shot(ana, 'admin-role-changes');
    // Changing one's own roles is refused with the catalogue's sentence.
    await ana.locator('tr[data-user="ana"]').getByRole('button', { name: 'Edit' }).click();
    await ana.getByRole('dialog').getByRole('checkbox', { name: 'security' }).check();
    await ana.getByRole('dialog').getByRole('button', { name: 'Save' }).click();
    await ana.getByRole('dialog').getByText('Nobody may change their own roles (S-1.3); another admin must do it.').waitFor({ timeout: WAIT });
  });

  it('a second admin confirms it, in Chinese, and the role applies', async () => {
    const ben = await signedInPage(people.ben as TestUser);
    await ben.getByLabel('Language').selectOption('zh-CN');
    await ben.getByRole('heading', { name: '待另一位管理员确认的角色变更' }).waitFor({ timeout: WAIT });
    const row = ben.locator('tr[data-role-change][data-user="nina"]');
    await row.waitFor({ timeout: WAIT });
    await row.getByRole('button', { name: '确认' }).click();
    await ben.getByRole('dialog').getByRole('button', { name: '确认' }).click();
    await ben.getByText('nina 现拥有 审批人 角色。').waitFor({ timeout: WAIT });
    await ben.getByText('没有待确认的角色变更。').waitFor({ timeout: WAIT });
    await shot(ben, 'admin-role-changes-zh-CN');
    expect((await fx.gw.runtime.store.getUser('nina'))?.roles).toEqual(['vendor', 'approver']);
    const [confirmed] = (await fx.audit('role_change.confirmed')).filter((e) => e.data.user === 'nina');
    expect(confirmed).toMatchObject({ actor: 'ben', data: { requestedBy: 'ana', added: ['approver'] } });
  });
});
