import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ErrorCode } from '../../policy/error-codes.js';
import { startDeviceSshd, type DeviceSshd } from '../support/device-sshd.js';
import { startGatewayWithDevice, type GatewayFixture, type TestUser } from '../support/gateway-fixture.js';
import { runSsh, runTransfer, type SshRun } from '../support/ssh-client.js';

type Outcome = Pick<SshRun, 'code' | 'stdout' | 'stderr'>;

// R-5.3c, R-A.4b, R-6.3e: every session the rules do not allow is refused before the device is
// reached, the user reads why (the catalogue code), and the refusal is in the audit log.
describe('sessions the gateway refuses, with the real OpenSSH client', () => {
  let device: DeviceSshd;
  let fx: GatewayFixture;
  let seq = 0;
  /** TOTP steps are single-use per user, so every sign-in gets its own user. */
  const freshUser = (prefix: string): Promise<TestUser> => fx.addUser(`${prefix}${++seq}`);

  const refusals = async (user: string): Promise<Array<{ code: string | null; data: Record<string, unknown> }>> =>
    (await fx.audit('session.refused')).filter((e) => e.actor === user).map((e) => ({ code: e.code ?? null, data: e.data as Record<string, unknown> }));

  /** Refused: told why on stderr, exit status 1 (not ssh's own 255), audited, and no session started. */
  const expectRefused = async (r: Outcome, user: string, code: ErrorCode): Promise<void> => {
    expect(r.stderr, r.stderr).toContain(`[${code}]`);
    expect(r.stdout).toBe('');
    expect(r.code, r.stderr).toBe(1);
    const audited = await refusals(user);
    expect(audited.map((e) => e.code)).toEqual([code]);
    expect((await fx.audit('session.start')).filter((e) => e.actor === user)).toEqual([]);
  };

  beforeAll(async () => {
    ({ fx, device } = await startGatewayWithDevice('ct-01'));
  });
  afterAll(async () => {
    await fx?.stop();
    await device?.stop();
  });

  it('refuses a user with no grant for the device: NO_GRANT', async () => {
    const u = await freshUser('nogrant');
    const r = await runSsh({ port: fx.sshPort, login: `${u.name}#ct-01`, password: u.password, totpSecret: u.totpSecret, command: 'echo reached-device' });
    await expectRefused(r, u.name, 'NO_GRANT');
    expect(r.stderr).toContain('You have no access grant for this device.');
    const [entry] = await refusals(u.name);
    expect(entry?.data).toMatchObject({ device: 'ct-01', protocol: 'ssh', kind: 'exec', command: 'echo reached-device' });
  });

  it('refuses a grant whose window has not started: GRANT_NOT_STARTED, with the start time', async () => {
    const u = await freshUser('early');
    const grantId = await fx.grant(u.name, 'ct-01', '+1h', '+2h');
    const r = await runSsh({ port: fx.sshPort, login: `${u.name}#ct-01`, password: u.password, totpSecret: u.totpSecret, command: 'echo reached-device' });
    await expectRefused(r, u.name, 'GRANT_NOT_STARTED');
    expect(r.stderr).toContain(`grant ${grantId} starts at`);
  });

  it('refuses a grant whose window has ended: GRANT_EXPIRED', async () => {
    const u = await freshUser('late');
    // `grant add` refuses a window that has already ended, so make a short one and let it pass.
    const grantId = await fx.grant(u.name, 'ct-01', 'now', '+1s');
    const grant = await fx.gw.runtime.store.getGrant(grantId);
    expect(grant).not.toBeNull();
    await expect.poll(() => Date.now() > (grant?.notAfter ?? Infinity), { timeout: 5000, interval: 100 }).toBe(true);
    const r = await runSsh({ port: fx.sshPort, login: `${u.name}#ct-01`, password: u.password, totpSecret: u.totpSecret, command: 'echo reached-device' });
    await expectRefused(r, u.name, 'GRANT_EXPIRED');
    expect(r.stderr).toContain(`grant ${grantId} ended at`);
  });

  it('refuses a device name nobody registered: DEVICE_UNKNOWN', async () => {
    const u = await freshUser('lost');
    await fx.grant(u.name, 'ct-01', 'now', '+1h');
    const r = await runSsh({ port: fx.sshPort, login: `${u.name}#mri-99`, password: u.password, totpSecret: u.totpSecret, command: 'echo reached-device' });
    await expectRefused(r, u.name, 'DEVICE_UNKNOWN');
    expect((await refusals(u.name))[0]?.data).toMatchObject({ device: 'mri-99' });
  });

  it('refuses a command with no device named in the login: TARGET_REQUIRED', async () => {
    const u = await freshUser('vague');
    await fx.grant(u.name, 'ct-01', 'now', '+1h');
    const r = await runSsh({ port: fx.sshPort, login: u.name, password: u.password, totpSecret: u.totpSecret, command: 'echo reached-device' });
    await expectRefused(r, u.name, 'TARGET_REQUIRED');
    expect(r.stderr).toContain('Name the device');
  });

  describe('a device whose host key changed', () => {
    // Its own sshd: replacing the host key must not disturb the other tests' device.
    let swapped: DeviceSshd;
    beforeAll(async () => {
      swapped = await startDeviceSshd();
      await fx.addDevice('mri-02', swapped);
    });
    afterAll(async () => {
      await swapped?.stop();
    });

    it('is reached while its key matches the pin, and refused with HOST_KEY_MISMATCH once it does not', async () => {
      const before = await freshUser('pinned');
      await fx.grant(before.name, 'mri-02', 'now', '+1h');
      const ok = await runSsh({ port: fx.sshPort, login: `${before.name}#mri-02`, password: before.password, totpSecret: before.totpSecret, command: 'echo reached-device' });
      expect(ok.stdout, ok.stderr).toBe('reached-device\n');
      expect(ok.code).toBe(0);

      await swapped.replaceHostKey();
      const after = await freshUser('pinned');
      await fx.grant(after.name, 'mri-02', 'now', '+1h');
      const r = await runSsh({ port: fx.sshPort, login: `${after.name}#mri-02`, password: after.password, totpSecret: after.totpSecret, command: 'echo reached-device' });
      await expectRefused(r, after.name, 'HOST_KEY_MISMATCH');
      const [entry] = await refusals(after.name);
      expect(entry?.data).toMatchObject({ device: 'mri-02' });
      expect(String(entry?.data.detail)).toContain('does not match the pinned');
    });
  });

  describe('file transfer on a grant that does not allow it (R-6.3e)', () => {
    let dropDir: string;
    beforeAll(() => {
      // The device and the tests share this machine: a file that arrives would appear here.
      dropDir = mkdtempSync(path.join(os.tmpdir(), 'pc-drop-'));
    });
    afterAll(() => {
      rmSync(dropDir, { recursive: true, force: true });
    });

    const expectTransferRefused = async (r: Outcome, user: string): Promise<void> => {
      expect(r.stderr, r.stderr).toContain('[FILE_TRANSFER_NOT_GRANTED]');
      expect(r.code).not.toBe(0);
      const audited = await refusals(user);
      expect(audited.map((e) => e.code)).toEqual(['FILE_TRANSFER_NOT_GRANTED']);
      expect((await fx.audit('session.start')).filter((e) => e.actor === user)).toEqual([]);
    };

    it('refuses sftp', async () => {
      const u = await freshUser('sftp');
      await fx.grant(u.name, 'ct-01', 'now', '+1h');
      const target = path.join(dropDir, 'via-sftp.txt');
      const r = await runTransfer('sftp', u, ['-P', String(fx.sshPort), `${u.name}#ct-01@127.0.0.1`], `put /etc/hostname ${target}\nbye\n`);
      await expectTransferRefused(r, u.name);
      expect((await refusals(u.name))[0]?.data).toMatchObject({ device: 'ct-01', command: 'sftp' });
      expect(existsSync(target)).toBe(false);
    });

    it('refuses scp (its default SFTP mode)', async () => {
      const u = await freshUser('scp');
      await fx.grant(u.name, 'ct-01', 'now', '+1h');
      const target = path.join(dropDir, 'via-scp.txt');
      const r = await runTransfer('scp', u, ['-P', String(fx.sshPort), '/etc/hostname', `${u.name}#ct-01@127.0.0.1:${target}`]);
      await expectTransferRefused(r, u.name);
      expect(existsSync(target)).toBe(false);
    });

    it.each([
      ['a quoted server path', ['-s', '"/usr/lib/openssh/sftp-server"']],
      ['exec in front of it', ['-s', 'exec /usr/lib/openssh/sftp-server']],
      ['another distribution\'s path', ['-s', '/usr/libexec/openssh/sftp-server']],
    ])('refuses sftp with a server command of its own (%s)', async (_name, sArgs) => {
      const u = await freshUser(`sftps${sArgs[1]?.length ?? 0}`);
      await fx.grant(u.name, 'ct-01', 'now', '+1h');
      const target = path.join(dropDir, `via-sftp-s-${u.name}.txt`);
      const r = await runTransfer('sftp', u, [...sArgs, '-P', String(fx.sshPort), `${u.name}#ct-01@127.0.0.1`], `put /etc/hostname ${target}\nbye\n`);
      await expectTransferRefused(r, u.name);
      expect(existsSync(target)).toBe(false);
    });

    // The device's shell puts these names together from quoted pieces; the raw line never spells them.
    it.each([
      ['scp pieced from quotes', `s'c'p -t TARGET`],
      ['the sftp server pieced from quotes', `/usr/lib/openssh/sftp-ser""ver`],
      ['rsync pieced from quotes', `r"sync" --server -logDtpre.iLsfxC . TARGET`],
    ])('refuses a transfer server whose name the shell assembles (%s)', async (_name, command) => {
      const u = await freshUser('pieced');
      await fx.grant(u.name, 'ct-01', 'now', '+1h');
      const target = path.join(dropDir, `pieced-${u.name}.txt`);
      const r = await runSsh({ port: fx.sshPort, login: `${u.name}#ct-01`, password: u.password, totpSecret: u.totpSecret, command: command.replace('TARGET', target), stdin: 'C0644 5 x\nhello\0' });
      await expectTransferRefused(r, u.name);
      expect(existsSync(target)).toBe(false);
    });

    it('refuses scp in the legacy protocol (scp -O, an exec of `scp -t`)', async () => {
      const u = await freshUser('scpo');
      await fx.grant(u.name, 'ct-01', 'now', '+1h');
      const target = path.join(dropDir, 'via-scp-o.txt');
      const source = path.join(dropDir, 'source.txt');
      writeFileSync(source, 'device data must not leave or arrive\n');
      const r = await runTransfer('scp', u, ['-O', '-P', String(fx.sshPort), source, `${u.name}#ct-01@127.0.0.1:${target}`]);
      await expectTransferRefused(r, u.name);
      expect(String((await refusals(u.name))[0]?.data.command)).toMatch(/^scp .*-t/);
      expect(existsSync(target)).toBe(false);
    });
  });
});
