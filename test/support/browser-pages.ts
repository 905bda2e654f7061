import path from 'node:path';
import type { Page } from 'playwright-core';
import type { TotpSource } from './api-client.js';
import { REPO, type TestUser } from './gateway-fixture.js';

/** Where the browser tests leave their screenshots (README's come from here). */
export const SHOTS = path.join(REPO, 'test-artifacts/screenshots');
/** How long a browser test waits for what a person would wait for. */
export const WAIT = 30_000;

/** Signs in through the console's form, as a person types it: name, password, a fresh TOTP code. */
export async function signIn(page: Page, base: string, who: TestUser, totp: TotpSource): Promise<void> {
  await page.goto(`${base}/`);
  await page.getByLabel('User name').fill(who.name);
  await page.getByLabel('Password').fill(who.password);
  await page.getByLabel('TOTP code').fill(await totp.code(who.totpSecret));
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('button', { name: 'Sign out' }).waitFor({ timeout: WAIT });
}

export async function shot(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });
}

/** What the xterm.js DOM renderer of the browser terminal shows, as text. */
export const terminalText = (page: Page): Promise<string> => page.locator('.terminal-box .xterm-rows').innerText();

export async function waitForTerminal(page: Page, pred: (text: string) => boolean, what: string): Promise<void> {
  const end = Date.now() + WAIT;
  let last = '';
  while (Date.now() < end) {
    last = await terminalText(page);
    if (pred(last)) return;
    await page.waitForTimeout(100);
  }
  throw new Error(`the terminal never showed ${what}; it shows:\n${last}`);
}
