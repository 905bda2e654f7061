import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import os from 'node:os';
import { signedIn, TotpSource } from '../support/api-client.js';
import type { DeviceSshd } from '../support/device-sshd.js';
import { startGatewayWithDevice, type CliResult, type GatewayFixture, type TestUser } from '../support/gateway-fixture.js';
import { runSsh, type SshRun } from '../support/ssh-client.js';

/**
 * Issue 13: a device registered at the wrong level is corrected with `device set` (or PATCH
 * /api/devices/:name). The correction is audited field by field, a new level has its own entry,
 * and every live grant on the device is decided again under the new level's rule (R-5.3c, R-6.3c,
 * 5.2d): a grant the level would not give now is revoked with the reason and its session ends;
 * one it would still give stays.
 */
const json = <T>(r: CliResult): T => {
  try {
    return JSON.parse(r.stdout) as T;
  } catch {
    throw new Error(`not JSON (exit ${r.code}): ${r.stdout} ${r.stderr}`);
  }
};
interface SetBody { level: number; levelFrom: number; changed: Record<string, { from: unknown; to: unknown }>; grantsRevoked: Array<{ grant: string; user: string; code: string; reason: string }> }
const LEVEL_2 = ['--usage-form', 'diagnosis-monitoring', '--contact', 'body', '--severity', 'harm'];
const LEVEL_3 = ['--usage-form', 'ionising-radiation', '--contact', 'body', '--severity', 'serious'];

describe('device set corrects a device and re-decides its live grants', () => {
  let fx: GatewayFixture;
  let device: DeviceSshd;
  const users: Record<string, TestUser> = {};
  const totp = new TotpSource();

  /** A session held open on the device until the gateway ends it. */
  const openOn = (name: string, dev: string): { started: Promise<void>; done: Promise<SshRun> } => {
    const u = users[name] as TestUser;
    let ready: () => void = () => undefined;
    const up = new Promise<void>((r) => { ready = r; });
    const done = totp.code(u.totpSecret).then((totpCode) => runSsh({
      port: fx.sshPort, login: `${name}#${dev}`, password: u.password, totpCode, command: 'echo up; sleep 60', timeoutMs: 90_000,
      onStdout: (c) => { if (c.includes('up')) ready(); },
    }));
    const started = Promise.race([up, done.then((r) => { throw new Error(`the session did not start: ${r.stderr}`); })]);
    return { started, done };
  };

  beforeAll(async () => {
    ({ fx, device } = await startGatewayWithDevice('lab-1'));
    for (const name of ['vic', 'vera', 'otto']) users[name] = await fx.addUser(name);
    users.adm = await fx.addUser('adm', ['admin']);
    // Registered as a level-1 lab analyser by mistake: it is a patient monitor.
    for (const args of [['device', 'add', 'mon-3', '--host', '127.0.0.1', '--port', String(device.port), '--protocol', 'ssh', '--udi', 'UDI-mon-3',
      '--usage-form', 'laboratory', '--contact', 'none', '--effect', 'none'], ['device', 'credential', 'mon-3', '--username', 'root', '--key-file', device.clientKeyFile],
    ['device', 'trust', 'mon-3']]) {
      const r = await fx.cli(args);
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(0);
    }
  });
  afterAll(async () => {
    await fx?.stop();
    await device?.stop();
  });

  it('raises a level: a grant longer than the new level allows is revoked and its session ends, one that fits stays', async () => {
    const long = await fx.grant('vic', 'mon-3', 'now', '+6h'); // level 1 allows 8 h, level 2 only 4 h
    const short = await fx.grant('vera', 'mon-3', 'now', '+1h');
    const s = openOn('vic', 'mon-3');
    await s.started;

    const r = await fx.cli(['device', 'set', 'mon-3', ...LEVEL_2, '--location', 'ICU-2 bed 4', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const body = json<SetBody>(r);
    expect(body).toMatchObject({ level: 2, levelFrom: 1 });
    expect(Object.keys(body.changed).sort()).toEqual(['classification', 'location']);
    expect(body.grantsRevoked).toEqual([expect.objectContaining({ grant: long, user: 'vic', code: 'WINDOW_TOO_LONG' })]);
    expect(body.grantsRevoked[0]?.reason).toMatch(/^device mon-3 is now level 2: its window \(6 h\) is longer than level 2 allows \(4 h\)$/);

    expect((await s.done).stderr).toContain('[GRANT_REVOKED]');
    expect((await fx.gw.runtime.store.getGrant(long))?.revokedAt).not.toBeNull();
    expect((await fx.gw.runtime.store.getGrant(short))?.revokedAt).toBeNull();
    const audit = await fx.audit();
    const host = `local:${os.userInfo().username}`;
    expect(audit.filter((e) => e.type === 'device.level_changed').map((e) => [e.actor, e.data.device, e.data.from, e.data.to, e.channel]))
      .toEqual([[host, 'mon-3', 1, 2, 'cli']]);
    expect(audit.find((e) => e.type === 'device.updated')?.data.changed).toMatchObject({ location: { from: null, to: 'ICU-2 bed 4' } });
    expect(audit.filter((e) => e.type === 'grant.revoked' && e.data.grant === long).map((e) => e.data.reason)).toEqual([body.grantsRevoked[0]?.reason]);
  });

  it('raises to level 3: a direct grant and a full-mode profile are no longer given, so the grant goes', async () => {
    const live = (await fx.gw.runtime.store.listGrants({ device: 'mon-3' })).filter((g) => g.revokedAt === null);
    expect(live.map((g) => g.user)).toEqual(['vera']);
    const r = await fx.cli(['device', 'set', 'mon-3', ...LEVEL_3, '--json']);
    const body = json<SetBody>(r);
    expect(body).toMatchObject({ level: 3, levelFrom: 2 });
    expect(body.grantsRevoked.map((g) => [g.user, g.code])).toEqual([['vera', 'PROFILE_MODE_NOT_ALLOWED']]);
    expect((await fx.gw.runtime.store.listGrants({ device: 'mon-3' })).every((g) => g.revokedAt !== null)).toBe(true);
  });

  it('lowers a level through the API: grants given under the stricter rule stay, and a correction of identity changes no grant', async () => {
    const otto = await fx.grant('otto', 'lab-1', 'now', '+1h');
    const adm = await signedIn(fx.gw.web.port, users.adm as TestUser, totp);
    const lowered = await adm.call<SetBody & { ip: string }>('PATCH', '/api/devices/lab-1', { usageForm: 'laboratory', contact: 'none', effect: 'none', severity: null, ip: '10.20.0.16' });
    expect(lowered.status, JSON.stringify(lowered.body)).toBe(200);
    expect(lowered.body).toMatchObject({ level: 1, levelFrom: 2, ip: '10.20.0.16', grantsRevoked: [] });
    expect((await fx.gw.runtime.store.getGrant(otto))?.revokedAt).toBeNull();
    expect((await fx.audit('device.level_changed')).at(-1)).toMatchObject({ actor: 'adm', channel: 'web', data: { device: 'lab-1', from: 2, to: 1 } });
    // A vendor may not correct a device, and a wrong classification is refused with its code.
    const vic = await signedIn(fx.gw.web.port, users.vic as TestUser, totp);
    expect((await vic.call('PATCH', '/api/devices/lab-1', { location: 'x' })).status).toBe(403);
    const bad = await fx.cli(['device', 'set', 'lab-1', '--usage-form', 'standalone-software', '--json']);
    expect(json<{ error: { code: string } }>(bad).error.code).toBe('DEVICE_CLASS_INVALID');
    expect((await fx.gw.runtime.store.getDevice('lab-1'))?.classification?.usageForm).toBe('laboratory');
  });
});
