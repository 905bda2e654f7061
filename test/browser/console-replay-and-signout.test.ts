import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiClient, TotpSource } from '../support/api-client.js';
import { shot, SHOTS, signIn as signInAs, WAIT, waitForTerminal } from '../support/browser-pages.js';
import type { DeviceSshd } from '../support/device-sshd.js';
import { REPO, startGatewayWithDevice, type GatewayFixture, type TestUser } from '../support/gateway-fixture.js';

// Issue 6, the journeys console-journeys.test.ts leaves out, in real Chromium (Debian's) against a
// gateway started here with a real OpenSSH sshd as the device: seeking and speed in the replay of
// a browser-terminal recording, signing out with a terminal open, and the page's idle watch.

const CHROMIUM = '/usr/bin/chromium';
const UI_INDEX = path.join(REPO, 'dist/ui/index.html');
/** A level-2 device: its default profile runs any command line, so `sleep` and `;` are fine. */
const DEVICE = 'lab-01';
/** Recorded seconds between the two markers' output. */
const GAP_S = 3;
const FIRST = 'first-marker';
const SECOND = 'second-marker';

type Who = 'vendor' | 'sec' | 'idler';

/** The m:ss the replay page shows (its clock()). */
function clock(seconds: number): string {
  const s = Math.max(0, Math.floor(seconds));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
}

const count = (text: string, what: string): number => text.split(what).length - 1;

describe('replay, sign-out and the idle watch of the web console in Chromium', () => {
  let device: DeviceSshd;
  let fx: GatewayFixture;
  let browser: Browser;
  let base: string;
  const totp = new TotpSource();
  const people = {} as Record<Who, TestUser>;
  const contexts: BrowserContext[] = [];
  let vendor: Page;
  let sec: Page;

  async function newPage(): Promise<Page> {
    const ctx = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1280, height: 860 }, locale: 'en-GB' });
    contexts.push(ctx);
    return ctx.newPage();
  }

  const signIn = (page: Page, who: TestUser): Promise<void> => signInAs(page, base, who, totp);


  /** The session cookie of a page's browser, as an ApiClient that carries it (to try it after the page lost it). */
  async function clientWithCookieOf(page: Page): Promise<ApiClient> {
    const cookie = (await page.context().cookies()).find((c) => c.name === 'pc_session');
    expect(cookie, 'the session cookie').toBeDefined();
    const client = new ApiClient(fx.gw.web.port);
    client.cookie = `pc_session=${cookie?.value ?? ''}`;
    return client;
  }

  /** The open sessions, asked by security's page of the API (its own cookie). */
  const openSessionIds = (): Promise<string[]> => sec.evaluate(async () => {
    const r = await fetch('/api/sessions?open=true');
    return ((await r.json()) as { sessions: Array<{ id: string }> }).sessions.map((s) => s.id);
  });

  beforeAll(async () => {
    if (!existsSync(UI_INDEX)) {
      throw new Error(`${UI_INDEX} is missing: build the console first (npm run build, or npx vite build --config web-console/ui/vite.config.ts)`);
    }
    if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: install Debian's chromium (apt-get install -y chromium)`);
    mkdirSync(SHOTS, { recursive: true });
    ({ fx, device } = await startGatewayWithDevice(DEVICE));
    people.vendor = await fx.addUser('vera', ['vendor']);
    people.sec = await fx.addUser('sam', ['security']);
    people.idler = await fx.addUser('ida', ['vendor']);
    await fx.grant('vera', DEVICE, 'now', '+1h');
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

  it('a vendor prints two markers three seconds apart in the browser terminal, and leaves', async () => {
    vendor = await newPage();
    await signIn(vendor, people.vendor);
    await vendor.goto(`${base}/#/connect`);
    await vendor.getByRole('link', { name: `Connect to ${DEVICE}` }).click();
    await vendor.getByText('Connected', { exact: true }).waitFor({ timeout: WAIT });
    await waitForTerminal(vendor, (t) => t.includes('#') || t.includes('$'), 'a prompt');
    await vendor.locator('.terminal-box').click();
    // The second marker as typed (second""-marker) is not the text the shell prints (second-marker):
    // only the output, three seconds later, puts it on the screen.
    await vendor.keyboard.type(`echo ${FIRST}; sleep ${GAP_S}; echo second""-marker\n`);
    await waitForTerminal(vendor, (t) => t.includes(SECOND), `the output of echo ${SECOND}`);
    // A moment more on the recording after the second marker, to seek past it.
    await vendor.waitForTimeout(1500);
    await vendor.keyboard.type('exit\n');
    await vendor.locator('.session-end').waitFor({ timeout: WAIT });
  });

  it('security replays it: a seek before the second marker shows only the first, past it both; at 4× it plays in about a quarter of the time', async () => {
    sec = await newPage();
    await signIn(sec, people.sec);
    await sec.goto(`${base}/#/recordings`);
    const row = sec.locator('tr', { hasText: DEVICE }).filter({ hasText: 'vera' }).first();
    await row.getByRole('link', { name: /Replay/ }).click();
    const controls = sec.getByRole('group', { name: 'Playback' });
    await controls.waitFor({ timeout: WAIT });
    const recordingId = decodeURIComponent(/#\/recordings\/([^?/]+)/.exec(sec.url())?.[1] ?? '');
    expect(recordingId).not.toBe('');

    // Where the markers are, from the recording itself (the same asciicast the page plays).
    const cast = await sec.evaluate(async (id) => (await fetch(`/api/recordings/${encodeURIComponent(id)}/asciicast`)).text(), recordingId);
    const events = cast.trim().split('\n').slice(1).map((l) => JSON.parse(l) as [number, string, string]);
    const output = events.filter((e) => e[1] === 'o');
    const tFirst = output.find((e) => e[2].includes(`${FIRST}\r\n`))?.[0];
    const tSecond = output.find((e) => e[2].includes(SECOND))?.[0];
    expect(tFirst, 'the first marker in the recording').toBeTypeOf('number');
    expect(tSecond, 'the second marker in the recording').toBeTypeOf('number');
    const [first, second] = [tFirst as number, tSecond as number];
    expect(second - first).toBeGreaterThan(GAP_S - 0.5);

    const slider = controls.getByRole('slider', { name: 'Position in the recording' });
    const playButton = controls.getByRole('button', { name: /^(Play|Pause)$/ });
    const player = sec.locator('.player-box');
    const screen = (): Promise<string> => player.innerText();
    // The seek bar's maximum is the recording's length, once the player has read it.
    await expect.poll(async () => Number(await slider.getAttribute('max')), { timeout: WAIT }).toBeGreaterThan(second);
    const duration = Number(await slider.getAttribute('max'));

    // Half-way between the markers: the first is on the replayed screen (typed and printed), the second not.
    const between = (first + second) / 2;
    await slider.fill(between.toFixed(1));
    await expect.poll(async () => { const s = await screen(); return count(s, FIRST) >= 2 && !s.includes(SECOND); }, { timeout: WAIT }).toBe(true);
    // The position as the page says it (m:ss of m:ss), within a second of where it was put.
    const [at, of] = (await slider.getAttribute('aria-valuetext') ?? '').split(' / ');
    expect(of).toBe(clock(duration));
    expect([clock(between - 1), clock(between), clock(between + 1)]).toContain(at);
    await shot(sec, 'replay-seek-between-markers');

    // Past the second: both.
    await slider.fill(Math.min(duration, second + 0.5).toFixed(1));
    await expect.poll(async () => { const s = await screen(); return count(s, FIRST) >= 2 && s.includes(SECOND); }, { timeout: WAIT }).toBe(true);
    await shot(sec, 'replay-seek-past-markers');

    // Back to the start, then 4×: the page makes a new player at that speed, from the same moment.
    await slider.fill('0');
    await expect.poll(async () => count(await screen(), FIRST), { timeout: WAIT }).toBe(0);
    const old = await player.locator(':scope > *').first().elementHandle();
    await sec.getByLabel('Speed').selectOption('4');
    await expect.poll(() => old.evaluate((el) => el.isConnected), { timeout: WAIT }).toBe(false);
    await old.dispose();
    await player.locator(':scope > *').first().waitFor({ timeout: WAIT });
    expect(await sec.getByLabel('Speed').inputValue()).toBe('4');

    const started = Date.now();
    await playButton.click();
    let seenFirst = 0;
    let seenSecond = 0;
    let ended = 0;
    while (!ended && Date.now() - started < WAIT + duration * 1000) {
      const s = await screen();
      const now = Date.now();
      if (!seenFirst && count(s, FIRST) >= 2) seenFirst = now;
      if (!seenSecond && s.includes(SECOND)) seenSecond = now;
      if (seenSecond && (await playButton.getAttribute('aria-pressed')) === 'false') ended = now;
      await sec.waitForTimeout(40);
    }
    expect(seenFirst, 'the first marker appeared while playing').toBeGreaterThan(0);
    expect(seenSecond, 'the second marker appeared while playing').toBeGreaterThan(0);
    expect(ended, 'playback ended').toBeGreaterThan(0);
    // In order, and the recorded gap shrunk to about a quarter (anything under half counts).
    expect(seenSecond).toBeGreaterThan(seenFirst);
    const gapWall = (seenSecond - seenFirst) / 1000;
    const allWall = (ended - started) / 1000;
    expect(gapWall).toBeLessThan((second - first) / 2);
    expect(allWall).toBeLessThan(duration / 2);
    // Played, not jumped to the end.
    expect(allWall).toBeGreaterThan(duration / 16);
    expect(await playButton.innerText()).toBe('Play');
    // The seek bar catches up (it reads the player's position four times a second).
    await expect.poll(async () => Number(await slider.inputValue()), { timeout: WAIT }).toBeGreaterThan(duration - 0.5);
    await shot(sec, 'replay-4x-ended');
  });

  it('the vendor signs out with a terminal open: the server closes its socket saying why, the device session ends, and the console asks to sign in', async () => {
    const frames: string[] = [];
    let sockets = 0;
    let closed = false;
    vendor.on('websocket', (ws) => {
      if (!ws.url().includes('/api/terminal')) return;
      sockets += 1;
      ws.on('framereceived', (f) => { if (typeof f.payload === 'string') frames.push(f.payload); });
      ws.on('close', () => { closed = true; });
    });
    const controlMessages = (): Array<Record<string, unknown>> => frames.map((f) => JSON.parse(f) as Record<string, unknown>);

    await vendor.goto(`${base}/#/connect`);
    await vendor.getByRole('link', { name: `Connect to ${DEVICE}` }).click();
    await vendor.getByText('Connected', { exact: true }).waitFor({ timeout: WAIT });
    await vendor.locator('.terminal-box').click();
    await vendor.keyboard.type('echo still-here\n');
    await waitForTerminal(vendor, (t) => count(t, 'still-here') >= 2, 'the output of echo still-here');
    const sessionId = controlMessages().find((m) => m.type === 'status' && m.state === 'connected')?.session as string;
    expect(sessionId).toBeTruthy();
    expect(await openSessionIds()).toContain(sessionId);
    const oldCookie = await clientWithCookieOf(vendor);
    await shot(vendor, 'terminal-before-sign-out');

    // The page drops the terminal as soon as the sign-out is answered, so whether it still reads
    // the socket's last message depends on which of the two arrives first. The answer (the real
    // server's) is held until the socket has spoken, so the terminal gets to show it.
    let release: () => void = () => undefined;
    const released = new Promise<void>((resolve) => { release = resolve; });
    let answered = false;
    await vendor.route('**/api/auth/logout', async (route) => {
      const response = await route.fetch();
      await Promise.race([released, new Promise((r) => setTimeout(r, WAIT))]);
      await route.fulfill({ response });
      answered = true;
    });
    await vendor.getByRole('button', { name: 'Sign out' }).click();
    // The server's word on the socket, then the socket closed; the terminal says why.
    await expect.poll(() => controlMessages().find((m) => m.type === 'end') ?? null, { timeout: WAIT }).toMatchObject({
      type: 'end', code: 'UNAUTHENTICATED', message: 'You signed out, so this session was closed.',
    });
    await expect.poll(() => closed, { timeout: WAIT }).toBe(true);
    const ended = vendor.locator('.session-end');
    await ended.waitFor({ timeout: WAIT });
    expect(await ended.getAttribute('data-end-code')).toBe('UNAUTHENTICATED');
    expect(await ended.innerText()).toContain('You signed out, so this session was closed.');
    // What happened, said once; not the bare "sign in first", and no "Connect again" into a session that is gone.
    expect(await ended.innerText()).not.toContain('Sign in first.');
    expect(await vendor.getByRole('button', { name: 'Connect again' }).count()).toBe(0);
    await shot(vendor, 'terminal-closed-by-sign-out');
    release();
    await expect.poll(() => answered, { timeout: WAIT }).toBe(true);
    await vendor.unroute('**/api/auth/logout');
    await vendor.getByRole('heading', { name: 'Sign in' }).waitFor({ timeout: WAIT });
    await vendor.getByText('You have signed out.').waitFor({ timeout: WAIT });

    // The device session behind it ended, and says so.
    await expect.poll(openSessionIds, { timeout: WAIT }).not.toContain(sessionId);
    const record = await sec.evaluate(async (id) => {
      const r = await fetch('/api/sessions?user=vera&limit=20');
      return ((await r.json()) as { sessions: Array<{ id: string; endedAt: string | null; endReason: string | null }> }).sessions.find((s) => s.id === id);
    }, sessionId);
    expect(record?.endedAt).toBeTruthy();
    expect(record?.endReason).toBeTruthy();
    // The cookie the browser had no longer works, even replayed from elsewhere.
    expect((await oldCookie.get('/api/auth/me')).status).toBe(401);

    // Back at the terminal's address: the sign-in page, and no new terminal.
    await vendor.goto(`${base}/#/connect/${DEVICE}`);
    await vendor.getByRole('heading', { name: 'Sign in' }).waitFor({ timeout: WAIT });
    await vendor.getByLabel('User name').waitFor();
    expect(await vendor.locator('.terminal-box').count()).toBe(0);
    expect(sockets).toBe(1);
    await shot(vendor, 'signed-out-with-terminal');
  });

  it('the page signs out a person who did nothing for the idle timeout, and not one who kept working', async () => {
    const page = await newPage();
    // The page's clock, not the server's: the server sees a few seconds pass, so a sign-out is the page's own doing.
    await page.clock.install();
    await signIn(page, people.idler);
    const me = await page.evaluate(async () => (await fetch('/api/auth/me')).json() as Promise<{ idleTimeoutSeconds: number }>);
    const idleMs = me.idleTimeoutSeconds * 1000;
    expect(idleMs).toBe(30 * 60_000);
    const cookie = await clientWithCookieOf(page);
    const signOutButton = page.getByRole('button', { name: 'Sign out' });

    // Most of the timeout with nobody at the screen, then a key: still signed in.
    await page.clock.fastForward(idleMs - 5 * 60_000);
    await page.waitForTimeout(300);
    expect(await signOutButton.isVisible()).toBe(true);
    await page.keyboard.press('Shift');
    // As long again: the timeout has passed since signing in but not since the key.
    await page.clock.fastForward(idleMs - 5 * 60_000);
    await page.waitForTimeout(300);
    expect(await signOutButton.isVisible()).toBe(true);
    expect((await cookie.get('/api/auth/me')).status).toBe(200);

    // Past the timeout since the key: signed out, here and on the server.
    await page.clock.fastForward(6 * 60_000);
    await page.getByText('You were signed out after a period of inactivity.').waitFor({ timeout: WAIT });
    await page.getByRole('heading', { name: 'Sign in' }).waitFor();
    expect((await cookie.get('/api/auth/me')).status).toBe(401);
    expect((await fx.audit('logout')).some((e) => e.actor === 'ida')).toBe(true);
    await shot(page, 'signed-out-idle');
  });
});
