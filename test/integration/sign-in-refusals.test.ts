import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import ssh2 from 'ssh2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { describeCode } from '../../policy/error-codes.js';
import { sshKeygen, type DeviceSshd } from '../support/device-sshd.js';
import { startGatewayWithDevice, type GatewayFixture, type TestUser } from '../support/gateway-fixture.js';
import { runSsh, type SshOptions, type SshRun } from '../support/ssh-client.js';
import { ApiClient } from '../support/api-client.js';

const { Client } = ssh2; // CommonJS module

const DEVICE = 'ct-01';
/** What the device prints when a sign-in got all the way through. */
const REACHED = 'device reached';
const COMMAND = `echo '${REACHED}'`;
const PASSWORD_AND_TOTP = ['Password: ', 'TOTP code: '];
const TOTP_ONLY = ['TOTP code: '];

/** The code oathtool (not the gateway's own TOTP code) gives at a time `at` in GNU date syntax. */
function oathtool(secret: string, at = 'now'): string {
  return execFileSync('oathtool', ['--totp', '-b', '-N', at, secret], { encoding: 'utf8' }).trim();
}

/** A well-formed six-digit code that is not valid in any step the gateway accepts (±1). */
function wrongCode(secret: string): string {
  const valid = ['now - 30 seconds', 'now', 'now + 30 seconds', 'now + 60 seconds'].map((t) => oathtool(secret, t));
  let code = valid[1] as string;
  do code = `${code.slice(0, -1)}${(Number(code.at(-1)) + 1) % 10}`;
  while (valid.includes(code));
  return code;
}

/** The line OpenSSH printed for the gateway's refusal ("<message> [CODE]"), if any. */
function refusalLine(r: SshRun, code: string): string | undefined {
  return r.stderr.split(/\r?\n/).find((l) => l.includes(`[${code}]`))?.trim();
}

/** The prompts the user was asked, without the "(login@host) " OpenSSH puts before each. */
function asked(r: SshRun): string[] {
  return r.prompts.map((p) => p.replace(/^\([^)]*\) /, ''));
}

function expectRefused(r: SshRun): void {
  expect(r.code, r.stderr).toBe(255);
  expect(r.stderr).toContain('Permission denied');
  expect(r.stdout).not.toContain(REACHED);
}

// R-A.4d: users are identified and authenticated (password or key, always plus TOTP), and login
// failures are handled (refused, audited, locked out after repeated failures). Seen from the
// attacker's side: the real OpenSSH client against the gateway, a real sshd as the device.
describe('sign-in refusals seen by the OpenSSH client', () => {
  let device: DeviceSshd;
  let fx: GatewayFixture;
  let work: string;
  /** An ed25519 key pair the tests register on users (R-A.4d: key + TOTP). */
  let keyFile: string;

  beforeAll(async () => {
    work = mkdtempSync(path.join(os.tmpdir(), 'pc-signin-'));
    keyFile = path.join(work, 'vendor_ed25519');
    sshKeygen(keyFile);
    ({ fx, device } = await startGatewayWithDevice(DEVICE));
  });
  afterAll(async () => {
    await fx?.stop();
    await device?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  /** A fresh user with a grant, so a sign-in that passes would reach the device. */
  async function grantedUser(name: string): Promise<TestUser> {
    const u = await fx.addUser(name);
    await fx.grant(name, DEVICE, 'now', '+1h');
    return u;
  }

  function ssh(login: string, o: Omit<SshOptions, 'port' | 'login'>): Promise<SshRun> {
    return runSsh({ port: fx.sshPort, login: `${login}#${DEVICE}`, command: COMMAND, ...o });
  }

  async function auditFor(type: string, user: string): Promise<Array<{ code: string | null; data: Record<string, unknown> }>> {
    return (await fx.audit(type)).filter((e) => e.actor === user || e.data.user === user);
  }

  async function listedUser(name: string): Promise<{ name: string; locked: boolean; lockedUntil: string | null }> {
    const r = await fx.cli(['user', 'list', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const users = JSON.parse(r.stdout) as Array<{ name: string; locked: boolean; lockedUntil: string | null }>;
    const u = users.find((x) => x.name === name);
    if (!u) throw new Error(`user list has no ${name}: ${r.stdout}`);
    return u;
  }

  async function expectNoSession(user: string): Promise<void> {
    expect(await auditFor('session.start', user)).toEqual([]);
  }

  // R-A.4d: a wrong first factor is refused and audited with its real reason.
  it('refuses a wrong password with AUTH_FAILED, and audits why', async () => {
    const u = await grantedUser('wrong-pw');
    const r = await ssh(u.name, { password: `${u.password}-typo`, totpSecret: u.totpSecret });
    expectRefused(r);
    expect(asked(r)).toEqual(PASSWORD_AND_TOTP);
    expect(refusalLine(r, 'AUTH_FAILED')).toBe(`${describeCode('AUTH_FAILED')} [AUTH_FAILED]`);
    const failed = await auditFor('login.failed', u.name);
    expect(failed).toHaveLength(1);
    expect(failed[0]?.code).toBe('AUTH_FAILED');
    expect(failed[0]?.data).toMatchObject({ reason: 'wrong password', method: 'password+totp' });
    expect(await auditFor('login.ok', u.name)).toEqual([]);
    await expectNoSession(u.name);
  });

  // R-A.4d: the second factor is checked, and a wrong code reads like a wrong password.
  it('refuses a well-formed but wrong TOTP code with AUTH_FAILED, audited as a wrong code', async () => {
    const u = await grantedUser('wrong-totp');
    const r = await ssh(u.name, { password: u.password, totpCode: wrongCode(u.totpSecret) });
    expectRefused(r);
    expect(refusalLine(r, 'AUTH_FAILED')).toBe(`${describeCode('AUTH_FAILED')} [AUTH_FAILED]`);
    expect(r.stderr).not.toContain('TOTP_');
    const failed = await auditFor('login.failed', u.name);
    expect(failed.map((e) => [e.code, e.data.reason])).toEqual([['AUTH_FAILED', 'wrong TOTP code']]);
    await expectNoSession(u.name);
  });

  // R-A.4d: a TOTP code works once; someone who saw it (shoulder, log, phishing page) cannot reuse it.
  it('refuses a replayed TOTP code with TOTP_REPLAYED', async () => {
    const u = await grantedUser('replay');
    const code = oathtool(u.totpSecret);
    const first = await ssh(u.name, { password: u.password, totpCode: code });
    expect(first.code, first.stderr).toBe(0);
    expect(first.stdout).toBe(`${REACHED}\n`);

    const second = await ssh(u.name, { password: u.password, totpCode: code });
    expectRefused(second);
    expect(refusalLine(second, 'TOTP_REPLAYED')).toBe(`${describeCode('TOTP_REPLAYED')} [TOTP_REPLAYED]`);
    expect(await auditFor('login.ok', u.name)).toHaveLength(1);
    const failed = await auditFor('login.failed', u.name);
    expect(failed.map((e) => e.code)).toEqual(['TOTP_REPLAYED']);
    expect(await auditFor('session.start', u.name)).toHaveLength(1);
  });

  // R-A.4d, R-5.5a: repeated failures lock the account, even against the right secrets,
  // until an administrator unlocks it.
  describe('lockout after repeated failures', () => {
    it('locks after 5 consecutive failures, refuses even the right password and code, and `user unlock` lets the user back in', async () => {
      const u = await grantedUser('locked-out');
      const guesses: SshRun[] = [];
      for (let i = 1; i <= 5; i++) {
        if (i === 5) expect(await auditFor('account.locked', u.name)).toEqual([]); // not before the threshold
        guesses.push(await ssh(u.name, { password: `guess-${i}`, totpSecret: u.totpSecret }));
      }
      for (const g of guesses) expectRefused(g);
      for (const g of guesses.slice(0, 4)) expect(refusalLine(g, 'AUTH_FAILED')).toBeDefined();
      expect(refusalLine(guesses[4] as SshRun, 'ACCOUNT_LOCKED')).toContain(describeCode('ACCOUNT_LOCKED'));

      const locked = await auditFor('account.locked', u.name);
      expect(locked).toHaveLength(1);
      expect(locked[0]?.code).toBe('ACCOUNT_LOCKED');
      expect(locked[0]?.data.failures).toBe(5);
      expect((await auditFor('login.failed', u.name)).map((e) => e.data.consecutiveFailures)).toEqual([1, 2, 3, 4, 5]);

      // The right password and a valid code do not get through a lock; nothing is even asked.
      const right = await ssh(u.name, { password: u.password, totpSecret: u.totpSecret });
      expectRefused(right);
      expect(asked(right)).toEqual([]);
      expect(refusalLine(right, 'ACCOUNT_LOCKED')).toMatch(/^The account is locked after repeated failed sign-ins\. \(locked until \d{4}-\d\d-\d\dT[\d:.]+Z\) \[ACCOUNT_LOCKED\]$/);
      const refused = await auditFor('login.refused', u.name);
      expect(refused.map((e) => e.code)).toEqual(['ACCOUNT_LOCKED']);
      await expectNoSession(u.name);

      const listed = await listedUser(u.name);
      expect(listed.locked).toBe(true);
      // Default lockout_duration is 15 minutes.
      const until = Date.parse(listed.lockedUntil ?? '');
      expect(until - Date.now()).toBeGreaterThan(14 * 60_000);
      expect(until - Date.now()).toBeLessThanOrEqual(15 * 60_000);

      const unlock = await fx.cli(['user', 'unlock', u.name]);
      expect(unlock.code, unlock.stderr).toBe(0);
      expect((await listedUser(u.name)).locked).toBe(false);
      expect(await auditFor('account.unlocked', u.name)).toHaveLength(1);

      // No code of this user was consumed yet (every failure stopped before the code counted).
      const back = await ssh(u.name, { password: u.password, totpSecret: u.totpSecret });
      expect(back.code, back.stderr).toBe(0);
      expect(back.stdout).toBe(`${REACHED}\n`);
      expect(await auditFor('login.ok', u.name)).toHaveLength(1);
    });

    it('counts consecutive failures only: a successful sign-in resets the count', async () => {
      const u = await grantedUser('resets-count');
      for (let i = 1; i <= 4; i++) expectRefused(await ssh(u.name, { password: `guess-${i}`, totpSecret: u.totpSecret }));
      const ok = await ssh(u.name, { password: u.password, totpSecret: u.totpSecret });
      expect(ok.code, ok.stderr).toBe(0);
      const after = await ssh(u.name, { password: 'guess-5', totpSecret: u.totpSecret });
      expectRefused(after);
      expect(refusalLine(after, 'AUTH_FAILED')).toBeDefined();
      expect(await auditFor('account.locked', u.name)).toEqual([]);
      expect((await auditFor('login.failed', u.name)).at(-1)?.data.consecutiveFailures).toBe(1);
      expect((await listedUser(u.name)).locked).toBe(false);
    });
  });

  // R-A.4d (no user enumeration): an unknown name is asked the same questions and refused with
  // the same words as a known name with a wrong password.
  it('refuses an unknown user exactly like a wrong password', async () => {
    const known = await grantedUser('enum-known');
    const wrongPw = await ssh(known.name, { password: 'guess', totpSecret: known.totpSecret });
    const unknown = await ssh('enum-nobody', { password: 'guess', totpCode: '123456' });
    expectRefused(unknown);
    expect(asked(unknown)).toEqual(asked(wrongPw));
    expect(asked(unknown)).toEqual(PASSWORD_AND_TOTP);
    expect(refusalLine(unknown, 'AUTH_FAILED')).toBe(`${describeCode('AUTH_FAILED')} [AUTH_FAILED]`);
    expect(refusalLine(unknown, 'AUTH_FAILED')).toBe(refusalLine(wrongPw, 'AUTH_FAILED'));
    expect(unknown.stderr.replaceAll('enum-nobody', 'NAME')).toBe(wrongPw.stderr.replaceAll(known.name, 'NAME'));
    const failed = await auditFor('login.failed', 'enum-nobody');
    expect(failed.map((e) => [e.code, e.data.reason])).toEqual([['AUTH_FAILED', 'unknown user']]);
  });

  // R-A.4d (no user enumeration): a disabled or expired account says so only to someone who knows
  // its password; a guesser reads the same line as for a name that does not exist.
  it.each([
    ['disabled', ['user', 'disable']],
    ['expired', ['user', 'set', '--expires', '2020-01-01T00:00:00Z']],
  ])('tells only the account holder that the account is %s', async (state, command) => {
    const u = await grantedUser(`enum-${state}`);
    const r = await fx.cli([...command.slice(0, 2), u.name, ...command.slice(2)]);
    expect(r.code, r.stderr).toBe(0);
    const guess = await ssh(u.name, { password: 'guess', totpCode: '123456' });
    const nobody = await ssh(`enum-nobody-${state}`, { password: 'guess', totpCode: '123456' });
    expect(refusalLine(guess, 'AUTH_FAILED')).toBe(`${describeCode('AUTH_FAILED')} [AUTH_FAILED]`);
    expect(guess.stderr.replaceAll(u.name, 'NAME')).toBe(nobody.stderr.replaceAll(`enum-nobody-${state}`, 'NAME'));
    const holder = await ssh(u.name, { password: u.password, totpSecret: u.totpSecret });
    const code = state === 'disabled' ? 'ACCOUNT_DISABLED' : 'ACCOUNT_EXPIRED';
    expect(refusalLine(holder, code)).toContain(describeCode(code));
    await expectNoSession(u.name);
    // Both attempts are on record with what really stood in the way.
    expect((await auditFor('login.failed', u.name)).map((e) => [e.code, String(e.data.reason)])).toEqual([['AUTH_FAILED', expect.stringMatching(new RegExp(`^wrong password \\(account ${u.name} `))]]);
    expect((await auditFor('login.refused', u.name)).map((e) => e.code)).toEqual([code]);
  });

  // R-A.4d: a registered public key replaces the password, never the TOTP code.
  describe('public key + TOTP', () => {
    const keyAuth = (): Pick<SshOptions, 'preferredAuthentications' | 'identityFile'> => ({
      preferredAuthentications: 'publickey,keyboard-interactive', identityFile: keyFile,
    });
    async function keyUser(name: string): Promise<TestUser> {
      const u = await grantedUser(name);
      const r = await fx.cli(['user', 'key', name, '--key-file', `${keyFile}.pub`]);
      expect(r.code, r.stderr).toBe(0);
      return u;
    }

    it('asks only for the TOTP code after the key, and runs the command', async () => {
      const u = await keyUser('key-holder');
      // A wrong password in the askpass: had the gateway asked for (and used) it, this would fail.
      const r = await ssh(u.name, { ...keyAuth(), password: 'not-the-password', totpSecret: u.totpSecret });
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toBe(`${REACHED}\n`);
      expect(asked(r)).toEqual(TOTP_ONLY);
      const ok = await auditFor('login.ok', u.name);
      expect(ok.map((e) => e.data.method)).toEqual(['publickey+totp']);
    });

    it('does not let the key alone in', async () => {
      const u = await keyUser('key-only');
      const r = await ssh(u.name, { ...keyAuth(), preferredAuthentications: 'publickey', password: u.password, totpSecret: u.totpSecret });
      expectRefused(r);
      expect(asked(r)).toEqual([]);
      expect(r.stderr).toMatch(/Permission denied \(keyboard-interactive\)/);
      expect(await auditFor('login.ok', u.name)).toEqual([]);
      await expectNoSession(u.name);
    });

    it('refuses the key with a wrong TOTP code', async () => {
      const u = await keyUser('key-wrong-totp');
      const r = await ssh(u.name, { ...keyAuth(), password: u.password, totpCode: wrongCode(u.totpSecret) });
      expectRefused(r);
      expect(asked(r)).toEqual(TOTP_ONLY);
      expect(refusalLine(r, 'AUTH_FAILED')).toBe(`${describeCode('AUTH_FAILED')} [AUTH_FAILED]`);
      const failed = await auditFor('login.failed', u.name);
      expect(failed.map((e) => [e.code, e.data.reason, e.data.method])).toEqual([['AUTH_FAILED', 'wrong TOTP code', 'publickey+totp']]);
      await expectNoSession(u.name);
    });

    it("does not accept another user's key as the first factor: the password is still asked", async () => {
      await keyUser('key-owner');
      const victim = await grantedUser('key-victim');
      const r = await ssh(victim.name, { ...keyAuth(), password: 'guess', totpSecret: victim.totpSecret });
      expectRefused(r);
      expect(asked(r)).toEqual(PASSWORD_AND_TOTP);
      const failed = await auditFor('login.failed', victim.name);
      expect(failed.map((e) => [e.data.reason, e.data.method])).toEqual([['wrong password', 'password+totp']]);
    });
  });

  // R-A.4d: every sign-in needs the second factor, so the password method is never offered or accepted.
  describe('password alone', () => {
    it('is not offered to the OpenSSH client', async () => {
      const u = await grantedUser('pw-method');
      const r = await ssh(u.name, { preferredAuthentications: 'password', password: u.password, totpSecret: u.totpSecret });
      expectRefused(r);
      expect(r.stderr).toContain('Permission denied (publickey,keyboard-interactive).');
      expect(asked(r)).toEqual([]);
      expect(await auditFor('login.ok', u.name)).toEqual([]);
      await expectNoSession(u.name);
    });

    it('is refused when a client sends the password method anyway, with the right password', async () => {
      const u = await grantedUser('pw-forced');
      const offered: string[][] = [];
      const outcome = await new Promise<string>((resolve) => {
        const c = new Client();
        let tried = false;
        c.on('ready', () => {
          c.end();
          resolve('signed in');
        });
        c.on('error', (err: Error & { level?: string }) => resolve(`${err.level ?? ''}: ${err.message}`));
        c.connect({
          host: '127.0.0.1', port: fx.sshPort, username: `${u.name}#${DEVICE}`, readyTimeout: 10_000,
          authHandler: (methodsLeft, _partial, next) => {
            if (methodsLeft) offered.push([...methodsLeft]);
            if (tried) return false;
            tried = true;
            next({ type: 'password', username: `${u.name}#${DEVICE}`, password: u.password });
          },
        });
      });
      expect(outcome).toBe('client-authentication: All configured authentication methods failed');
      expect(offered).toEqual([['publickey', 'keyboard-interactive']]);
      expect(await auditFor('login.ok', u.name)).toEqual([]);
      await expectNoSession(u.name);
    });
  });

  // The console's sign-in: one address may try only so often (a password sprayer moves on to other
  // accounts, which lockout alone does not stop), and the refusal is audited.
  it('tells an address that tries to sign in too often to wait (429), before checking any password', async () => {
    const victim = await fx.addUser('sprayed');
    const api = new ApiClient(fx.gw.web.port);
    const statuses: number[] = [];
    for (let i = 0; i < 12; i++) statuses.push((await api.login(`nobody-${i}`, 'guess-guess-guess', { code: '123456' })).status);
    expect(statuses.slice(0, 10)).toEqual(Array(10).fill(401));
    expect(statuses.slice(10)).toEqual([429, 429]);
    // Even the right password and code are not looked at while the address waits.
    const right = await api.login(victim.name, victim.password, { secret: victim.totpSecret });
    expect(right.status).toBe(429);
    expect(right.body.error?.code).toBe('RATE_LIMITED');
    expect((await fx.audit('login.refused')).filter((e) => e.code === 'RATE_LIMITED').length).toBeGreaterThanOrEqual(3);
    expect(await auditFor('login.ok', victim.name)).toEqual([]);
  });
});
