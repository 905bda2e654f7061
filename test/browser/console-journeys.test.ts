import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TotpSource } from '../support/api-client.js';
import { shot, SHOTS, signIn as signInAs, WAIT, waitForTerminal } from '../support/browser-pages.js';
import type { DeviceSshd } from '../support/device-sshd.js';
import { REPO, startGatewayWithDevice, type GatewayFixture, type TestUser } from '../support/gateway-fixture.js';

// Issue 6: every journey of the web console in real Chromium (Debian's, never a downloaded one),
// against a gateway started here with a real OpenSSH sshd as the device. R-5.3c, R-6.4c, R-A.3d,
// R-A.4d, R-A.5a, R-A.5b.

const CHROMIUM = '/usr/bin/chromium';
const UI_INDEX = path.join(REPO, 'dist/ui/index.html');
const DEVICE = 'ct-01';

describe('the web console in Chromium', () => {
  let device: DeviceSshd;
  let fx: GatewayFixture;
  let browser: Browser;
  let base: string;
  const totp = new TotpSource();
  const people: Record<'vendor' | 'dm' | 'sec' | 'admin' | 'locked', TestUser> = {} as Record<'vendor' | 'dm' | 'sec' | 'admin' | 'locked', TestUser>;
  const contexts: BrowserContext[] = [];
  /** Whatever Chromium reported as a Content-Security-Policy violation, on any page. */
  const violations: string[] = [];
  let vendor: Page;
  let dm: Page;
  let sec: Page;
  let requestId = '';
  const marker = `hello-from-the-browser-${Math.random().toString(36).slice(2, 8)}`;

  async function newPage(): Promise<Page> {
    const ctx = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1280, height: 860 }, locale: 'en-GB' });
    contexts.push(ctx);
    const page = await ctx.newPage();
    page.on('console', (m) => {
      if (/Content.Security.Policy/i.test(m.text())) violations.push(m.text());
    });
    return page;
  }

  const signIn = (page: Page, who: TestUser): Promise<void> => signInAs(page, base, who, totp);


  beforeAll(async () => {
    if (!existsSync(UI_INDEX)) {
      throw new Error(`${UI_INDEX} is missing: build the console first (npm run build, or npx vite build --config web-console/ui/vite.config.ts)`);
    }
    if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: install Debian's chromium (apt-get install -y chromium)`);
    mkdirSync(SHOTS, { recursive: true });
    // Nine sign-ins from one address fit the per-address limit (10 a minute); a lower lockout
    // threshold keeps the lockout journey at three of them.
    ({ fx, device } = await startGatewayWithDevice('lab-01', '[auth]\nlockout_threshold = 3\n'));
    await fx.addDevice(DEVICE, device, 3);
    people.vendor = await fx.addUser('vera', ['vendor']);
    people.dm = await fx.addUser('dora', ['device_manager']);
    people.sec = await fx.addUser('sam', ['security']);
    people.admin = await fx.addUser('adam', ['admin']);
    people.locked = await fx.addUser('lucy', ['vendor']);
    base = `https://127.0.0.1:${fx.gw.web.port}`;
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
  }, 120_000);

  afterAll(async () => {
    for (const c of contexts) await c.close().catch(() => undefined);
    await browser?.close();
    await fx?.stop();
    await device?.stop();
  });

  it('serves the page under a strict Content-Security-Policy', async () => {
    vendor = await newPage();
    const res = await vendor.goto(`${base}/`);
    const csp = res?.headers()['content-security-policy'] ?? '';
    expect(csp).toContain("script-src 'self'");
    expect(csp).toContain("style-src 'self'");
    expect(csp).not.toContain('unsafe-inline');
    expect(csp).toContain("frame-ancestors 'none'");
    await vendor.getByRole('heading', { name: 'Sign in' }).waitFor();
    await shot(vendor, 'sign-in');
  });

  it('a vendor asks for access to a level-3 device', async () => {
    await signIn(vendor, people.vendor);
    await vendor.getByRole('heading', { name: 'My requests' }).waitFor();
    await vendor.getByRole('link', { name: 'New request' }).first().click();
    await vendor.getByLabel('Search devices').fill('ct');
    const option = vendor.getByRole('checkbox', { name: new RegExp(DEVICE) });
    await option.check();
    // The level and the longest window its rule allows are shown before anything is sent.
    await expect.poll(() => vendor.locator('.selected-summary').innerText()).toContain('Level 3');
    await expect.poll(() => vendor.locator('.selected-summary').innerText()).toContain('2 h');
    await vendor.getByLabel('Purpose').fill('Check the gantry controller after the firmware update');
    await vendor.getByLabel('Work order').fill('WO-4711');
    await vendor.getByLabel('Duration (minutes)').fill('45');
    // Upload and download are asked for apart (R-6.3e).
    await vendor.getByLabel(/upload files to the device/).check();
    await vendor.getByLabel(/download files from the device/).check();
    expect(await vendor.getByLabel('Command profile').inputValue()).toBe('diag');
    await shot(vendor, 'new-request');
    await vendor.getByRole('button', { name: 'Send request' }).click();
    const sent = vendor.getByText(/Request r-\S+ was sent/);
    await sent.waitFor({ timeout: WAIT });
    requestId = /Request (r-\S+) was sent/.exec(await sent.innerText())?.[1] ?? '';
    expect(requestId).toMatch(/^r-/);
    const row = vendor.locator(`tr[data-request="${requestId}"]`);
    await expect.poll(() => row.innerText()).toContain('pending');
    expect(await row.innerText()).toMatch(/one device manager[\s\S]*one security/);
    await shot(vendor, 'vendor-requests');
  });

  it('device management and security approve it; the queue updates live', async () => {
    dm = await newPage();
    await signIn(dm, people.dm);
    await dm.getByRole('heading', { name: 'Approval queue' }).waitFor();
    const card = dm.locator(`li[data-request="${requestId}"]`);
    await card.waitFor({ timeout: WAIT });
    const text = await card.innerText();
    expect(text).toContain('vera');
    expect(text).toContain('WO-4711');
    expect(text).toContain('Level 3');
    expect(text).toContain('upload and download');
    await shot(dm, 'approver-queue');
    await card.getByRole('button', { name: 'Approve' }).click();
    // Device management strikes the download: no data leaves the device on this grant (R-6.3e).
    await dm.getByRole('dialog').getByLabel(/Allow download/).uncheck();
    await dm.getByRole('dialog').getByRole('button', { name: 'Approve' }).click();
    await dm.getByText(`Your approval of ${requestId} was recorded`).waitFor({ timeout: WAIT });
    await expect.poll(() => card.innerText()).toMatch(/Still needed[\s\S]*one security/i);

    sec = await newPage();
    await signIn(sec, people.sec);
    await sec.goto(`${base}/#/approvals`);
    const secCard = sec.locator(`li[data-request="${requestId}"]`);
    await secCard.getByRole('button', { name: 'Approve' }).click();
    await sec.getByRole('dialog').getByRole('button', { name: 'Approve' }).click();
    await sec.getByText(`Request ${requestId} is approved`).waitFor({ timeout: WAIT });
    // dora's page was not reloaded: the server-sent event took the request out of her queue.
    await card.waitFor({ state: 'detached', timeout: WAIT });
    // The grant carries what was left after the narrowing: upload, no download.
    const grants = await fx.gw.runtime.store.listGrants({ requestId });
    expect(grants.map((g) => [g.allowUpload, g.allowDownload])).toEqual([[true, false]]);
  });

  it('the vendor connects in the browser terminal, runs a command and sees its output', async () => {
    await vendor.goto(`${base}/#/connect`);
    await vendor.getByRole('link', { name: `Connect to ${DEVICE}` }).click();
    await vendor.getByText('Connected', { exact: true }).waitFor({ timeout: WAIT });
    await vendor.locator('.terminal-box').click();
    await vendor.keyboard.type(`echo ${marker}\n`);
    // Once as typed, once as the device's output.
    await waitForTerminal(vendor, (t) => t.split(marker).length - 1 >= 2, `the output of echo ${marker}`);
    await shot(vendor, 'terminal');
  });

  it('security sees the live session, watches the same output, and kills it; the vendor is told why', async () => {
    await sec.goto(`${base}/#/sessions`);
    const row = sec.locator('tr', { hasText: DEVICE }).filter({ hasText: 'vera' });
    await row.waitFor({ timeout: WAIT });
    expect(await row.innerText()).toContain('Level 3');
    await shot(sec, 'live-sessions');
    await row.getByRole('link', { name: 'Watch' }).click();
    await sec.getByText('Watching live', { exact: true }).waitFor({ timeout: WAIT });
    // The recent screen first…
    await waitForTerminal(sec, (t) => t.includes(marker), 'the recent screen');
    // …then live output, typed by the vendor while security watches.
    const second = `${marker}-live`;
    await vendor.locator('.terminal-box').click();
    await vendor.keyboard.type(`echo ${second}\n`);
    await waitForTerminal(sec, (t) => t.split(second).length - 1 >= 2, 'the live output');
    await shot(sec, 'watch');

    await sec.getByRole('button', { name: 'Kill' }).click();
    const dialog = sec.getByRole('dialog');
    await dialog.getByLabel('Reason').fill('Unplanned change seen during review');
    await dialog.getByRole('button', { name: 'Kill' }).click();
    const ended = vendor.locator('.session-end');
    await ended.waitFor({ timeout: WAIT });
    expect(await ended.getAttribute('data-end-code')).toBe('SESSION_KILLED');
    expect(await ended.innerText()).toContain('A security officer ended this session.');
    await shot(vendor, 'terminal-ended');
    await sec.locator('.session-end').waitFor({ timeout: WAIT });
  });

  it('security replays the recording and sees the command', async () => {
    await sec.goto(`${base}/#/recordings`);
    const row = sec.locator('tr', { hasText: DEVICE }).filter({ hasText: 'vera' }).first();
    await row.getByRole('link', { name: /Replay/ }).click();
    const commands = sec.locator('.command-list');
    await commands.waitFor({ timeout: WAIT });
    expect(await commands.innerText()).toContain(`echo ${marker}`);
    await sec.locator('.replay-controls').getByRole('button', { name: 'Play', exact: true }).click();
    const player = sec.locator('.player-box');
    const refusal = sec.getByRole('alert');
    // The player either shows the recorded screen or says why it could not start (its WebAssembly refused by the CSP).
    const shown = async (): Promise<string> => ((await refusal.count()) > 0 ? `player refused: ${await refusal.innerText()}` : player.innerText());
    await expect.poll(async () => { const s = await shown(); return s.includes(marker) || s.startsWith('player refused'); }, { timeout: WAIT }).toBe(true);
    await shot(sec, 'replay');
    expect(await shown()).toContain(marker);
    await sec.getByLabel('Speed').selectOption('4');
  });

  it('security verifies the integrity of the audit trail', async () => {
    await sec.goto(`${base}/#/audit`);
    await sec.getByRole('button', { name: 'Verify integrity' }).click();
    const report = sec.locator('.verify-report');
    await report.waitFor({ timeout: WAIT });
    expect(await report.getAttribute('data-verify-ok')).toBe('true');
    expect(await sec.locator('table').innerText()).toContain('session.kill');
    await shot(sec, 'audit');
    // What did sam do? Only sam's entries remain, the kill among them; then only what succeeded;
    // then everything that names the device.
    const search = sec.getByRole('search', { name: 'Filter the audit log' });
    const apply = (): Promise<void> => search.getByRole('button', { name: 'Apply filters' }).click();
    const column = (n: number): Promise<string[]> => sec.locator(`table tbody tr td:nth-child(${n})`).allInnerTexts();
    await search.getByLabel('Actor').fill('sam');
    await apply();
    await expect.poll(async () => [...new Set(await column(4))], { timeout: WAIT }).toEqual(['sam']);
    expect(await column(3)).toContain('session.kill');
    await search.getByRole('button', { name: 'Clear' }).click();
    await search.getByLabel('Outcome').selectOption('ok');
    await apply();
    await expect.poll(async () => [...new Set((await column(5)).map((c) => c.split('\n')[0]))], { timeout: WAIT }).toEqual(['ok']);
    await search.getByRole('button', { name: 'Clear' }).click();
    await search.getByLabel('Text in the details (device, session, command)').fill(DEVICE);
    await apply();
    await expect.poll(async () => (await column(3)).includes('session.kill') && (await column(3)).every((t) => t !== 'audit.verified'), { timeout: WAIT }).toBe(true);
    await shot(sec, 'audit-filtered');
  });

  it('an administrator manages users and devices, in English and in Chinese', async () => {
    const admin = await newPage();
    await signIn(admin, people.admin);
    await admin.getByRole('heading', { name: 'Users' }).waitFor();
    await admin.getByRole('button', { name: 'Create account' }).click();
    const dialog = admin.getByRole('dialog');
    await dialog.getByLabel('User name').fill('newbie');
    await dialog.getByLabel('Initial password').fill('newbie-long-password-1');
    await dialog.getByLabel('Vendor organisation').selectOption('test-vendor');
    await dialog.getByLabel('Signed on').fill('2026-01-01');
    await dialog.getByLabel('Valid until').fill('2030-12-31');
    expect(await dialog.getByLabel('The person sets up TOTP at first sign-in').isChecked()).toBe(true);
    await dialog.getByRole('button', { name: 'Create account' }).click();
    await admin.getByText('Account newbie was created').waitFor({ timeout: WAIT });
    await admin.locator('tr[data-user="newbie"]').waitFor();
    await shot(admin, 'admin-users');

    await admin.getByRole('link', { name: 'Devices' }).click();
    await admin.locator(`tr[data-device="${DEVICE}"]`).waitFor({ timeout: WAIT });
    expect(await admin.locator(`tr[data-device="${DEVICE}"]`).innerText()).toContain('Level 3');
    await shot(admin, 'admin-devices');
    // Correcting a device (issue 13): a new level is announced before it is saved; here only the location changes.
    await admin.locator(`tr[data-device="${DEVICE}"]`).getByRole('button', { name: 'Correct' }).click();
    const correct = admin.getByRole('dialog');
    await correct.getByLabel('Harm if out of control').selectOption('harm');
    await correct.getByText('The level changes from 3 to 2').waitFor();
    await correct.getByLabel('Harm if out of control').selectOption('serious');
    await correct.getByText('The level changes from 3 to 2').waitFor({ state: 'detached' });
    await correct.getByLabel('Location').fill('CT room B2-014');
    await correct.getByRole('button', { name: 'Correct' }).click();
    await admin.getByText(`Device ${DEVICE} was corrected.`).waitFor({ timeout: WAIT });
    // The notice comes with the answer; the list is read again after it.
    await expect.poll(async () => admin.locator(`tr[data-device="${DEVICE}"]`).innerText(), { timeout: WAIT }).toContain('CT room B2-014');
    expect((await fx.audit('device.updated')).at(-1)).toMatchObject({ actor: 'adam', channel: 'web', data: { device: DEVICE, changed: { location: { to: 'CT room B2-014' } } } });

    await admin.getByLabel('Language').selectOption('zh-CN');
    await admin.getByRole('heading', { name: '设备' }).waitFor();
    await admin.locator(`tr[data-device="${DEVICE}"]`).getByText('3 级').waitFor();
    await shot(admin, 'admin-devices-zh-CN');
    // Remembered by the account, not only by this browser.
    const me = await admin.evaluate(async () => (await fetch('/api/auth/me')).json() as Promise<{ user: { locale: string } }>);
    expect(me.user.locale).toBe('zh-CN');
  });

  it('a new person enrols TOTP at first sign-in from the QR code secret', async () => {
    const page = await newPage();
    await page.goto(`${base}/`);
    await page.getByLabel('User name').fill('newbie');
    await page.getByLabel('Password').fill('newbie-long-password-1');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { name: 'Set up your authenticator' }).waitFor({ timeout: WAIT });
    await page.getByRole('img', { name: 'QR code of your TOTP enrolment' }).waitFor();
    const secret = (await page.locator('.secret code').innerText()).replace(/\s+/g, '');
    expect(secret).toMatch(/^[A-Z2-7]{16,}$/);
    await shot(page, 'enrolment');
    await page.getByLabel('Code from your app').fill(await totp.code(secret));
    await page.getByRole('button', { name: 'Confirm and sign in' }).click();
    await page.getByRole('heading', { name: 'My requests' }).waitFor({ timeout: WAIT });
  });

  it('the sign-in page keeps the language chosen last in this browser', async () => {
    const page = await newPage();
    await page.goto(`${base}/`);
    await page.getByLabel('Language').selectOption('zh-CN');
    await page.getByRole('heading', { name: '登录' }).waitFor();
    await page.reload();
    await page.getByRole('heading', { name: '登录' }).waitFor({ timeout: WAIT });
    expect(await page.locator('html').getAttribute('lang')).toBe('zh-CN');
    await page.getByLabel('用户名').waitFor();
    await shot(page, 'sign-in-zh-CN');
  });

  it('repeated failures lock the account and say until when', async () => {
    const page = await newPage();
    await page.goto(`${base}/`);
    for (let i = 1; i <= 3; i++) {
      await page.getByLabel('User name').fill(people.locked.name);
      await page.getByLabel('Password').fill('not-the-password');
      await page.getByLabel('TOTP code').fill('123456');
      await page.getByRole('button', { name: 'Sign in' }).click();
      const alert = page.getByRole('alert');
      if (i < 3) await expect.poll(() => alert.innerText()).toContain('Sign-in failed: wrong user name, password or TOTP code.');
    }
    const alert = page.getByRole('alert');
    await expect.poll(() => alert.innerText()).toContain('The account is locked after repeated failed sign-ins.');
    expect(await alert.innerText()).toMatch(/Locked until .*\d/);
    await shot(page, 'sign-in-locked');
  });

  it('a vendor reaches neither the approver and admin pages nor their API, and is signed out when the session lapses', async () => {
    const nav = await vendor.locator('nav').innerText();
    for (const hidden of ['Approval queue', 'Live sessions', 'Users', 'Devices', 'Audit log']) expect(nav).not.toContain(hidden);
    for (const page of ['/approvals', '/sessions', '/admin/users', '/admin/devices', '/audit']) {
      await vendor.goto(`${base}/#${page}`);
      await vendor.getByRole('heading', { name: 'Not available to you' }).waitFor({ timeout: WAIT });
    }
    const answers = await vendor.evaluate(async (id) => {
      const me = await (await fetch('/api/auth/me')).json() as { csrfToken: string };
      const post = (url: string, body: unknown) => fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', 'x-csrf-token': me.csrfToken }, body: JSON.stringify(body) });
      const codeOf = async (r: Response) => ({ status: r.status, code: ((await r.json()) as { error?: { code: string } }).error?.code });
      return [
        await codeOf(await fetch('/api/users')),
        await codeOf(await fetch('/api/sessions?open=true')),
        await codeOf(await fetch('/api/audit')),
        await codeOf(await post(`/api/requests/${id}/approve`, {})),
        await codeOf(await post('/api/devices/ct-01/quarantine', { reason: 'x' })),
      ];
    }, requestId);
    for (const a of answers) expect(a).toEqual({ status: 403, code: 'FORBIDDEN' });

    // The session cookie gone (the idle timeout does the same): the next call lands on sign-in, with a note.
    await vendor.context().clearCookies();
    await vendor.goto(`${base}/#/grants`);
    await vendor.getByText('You were signed out after a period of inactivity.').waitFor({ timeout: WAIT });
  });

  it('reported no Content-Security-Policy violation but the ones documented', () => {
    // xterm.js's DOM renderer inserts <style> elements, which the policy blocks on purpose; the
    // console applies their rules through a constructed stylesheet instead (csp-style-mirror.ts).
    const unexpected = violations.filter((v) => !/Applying inline style violates/.test(v));
    expect(unexpected).toEqual([]);
  });
});
