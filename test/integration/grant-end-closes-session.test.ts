import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDeviceSshd, type DeviceSshd } from '../support/device-sshd.js';
import { startGatewayFixture, type GatewayFixture } from '../support/gateway-fixture.js';
import { runSsh } from '../support/ssh-client.js';

/** Where in `text` each needle first appears (-1 if it does not). */
const positions = (text: string, ...needles: string[]): number[] => needles.map((n) => text.indexOf(n));

// R-5.3c (issue item 9): access lasts exactly as long as the grant. A live shell is warned before
// its grant ends and closed by the gateway when it does, and an idle one is closed after the
// configured idle time; the user reads why, and the session record and the audit log say so.
describe('the gateway ends live sessions', () => {
  let device: DeviceSshd;
  beforeAll(async () => {
    device = await startDeviceSshd();
  });
  afterAll(async () => {
    await device?.stop();
  });

  describe('when the grant ends', () => {
    let fx: GatewayFixture;
    beforeAll(async () => {
      fx = await startGatewayFixture('grant_warnings = ["3s"]');
      await fx.addDevice('ct-01', device);
    });
    afterAll(async () => {
      await fx?.stop();
    });

    it('warns before the end, then closes a busy shell within about a second of it', async () => {
      const alice = await fx.addUser('alice');
      // Long enough to sign in and reach the device (~3 s here) before the 3 s warning is due.
      const grantId = await fx.grant('alice', 'ct-01', 'now', '+8s');
      const grant = await fx.gw.runtime.store.getGrant(grantId);
      const r = await runSsh({
        port: fx.sshPort, login: 'alice#ct-01', password: alice.password, totpSecret: alice.totpSecret, args: ['-tt'],
        // The device is kept busy past the grant's end: only the gateway can end this session.
        typed: [{ text: 'sleep 60\r', afterMs: 1000 }],
        timeoutMs: 45_000,
      });
      const seen = r.stdout + r.stderr;
      const [warning, closed, code] = positions(seen, 'ends in 3s', '[portcullis] Session closed', 'GRANT_EXPIRED');
      expect(warning, seen).toBeGreaterThanOrEqual(0);
      expect(closed, seen).toBeGreaterThan(warning ?? 0);
      expect(code, seen).toBeGreaterThan(closed ?? 0);
      expect(r.code, seen).toBe(255); // ended by the gateway, not by the shell (-1 if our timeout killed ssh)

      await expect.poll(async () => (await fx.gw.runtime.store.listSessions({ limit: 10 })).find((s) => s.user === 'alice')?.endedAt ?? null, { timeout: 30_000 }).not.toBeNull();
      const session = (await fx.gw.runtime.store.listSessions({ limit: 10 })).find((s) => s.user === 'alice');
      expect(session?.endReason).toBe('grant_ended');
      expect(session?.grantId).toBe(grantId);
      // Never after the grant has ended by more than the enforcement tick (0.5 s) plus sealing.
      const notAfter = grant?.notAfter ?? 0;
      expect(session?.endedAt ?? 0).toBeGreaterThanOrEqual(notAfter);
      expect((session?.endedAt ?? Infinity) - notAfter).toBeLessThan(2000);

      const end = (await fx.audit('session.end')).find((e) => e.data.session === session?.id);
      expect(end?.data).toMatchObject({ reason: 'grant_ended', device: 'ct-01' });
      expect(end?.actor).toBe('alice');
      // The recording was sealed, and it shows the notices as what the user saw.
      const rec = await fx.gw.runtime.store.getRecording(session?.recordingId ?? '');
      expect(rec?.sealedAt).not.toBeNull();
      const cast = path.join(fx.dir, 'alice.cast');
      const exp = await fx.cli(['recording', 'export', session?.recordingId ?? '', '--format', 'asciicast', '-o', cast]);
      expect(exp.code, exp.stderr).toBe(0);
      const shown = readFileSync(cast, 'utf8').split('\n').slice(1).filter((l) => l !== '')
        .map((l) => JSON.parse(l) as [number, string, string]).filter((e) => e[1] === 'o').map((e) => e[2]).join('');
      expect(positions(shown, 'ends in 3s', 'GRANT_EXPIRED').every((p) => p >= 0), shown).toBe(true);
    });
  });

  describe('when the shell is idle', () => {
    let fx: GatewayFixture;
    beforeAll(async () => {
      fx = await startGatewayFixture('idle_timeout = "2s"');
      await fx.addDevice('ct-01', device);
    });
    afterAll(async () => {
      await fx?.stop();
    });

    it('closes the session after the idle time, with IDLE_TIMEOUT', async () => {
      const bob = await fx.addUser('bob');
      await fx.grant('bob', 'ct-01', 'now', '+1h');
      const r = await runSsh({
        port: fx.sshPort, login: 'bob#ct-01', password: bob.password, totpSecret: bob.totpSecret, args: ['-tt'],
        typed: [{ text: 'sleep 60\r', afterMs: 500 }],
        timeoutMs: 45_000,
      });
      const seen = r.stdout + r.stderr;
      expect(seen).toContain('[portcullis] Session closed after 2s without input [IDLE_TIMEOUT]');
      expect(r.code, seen).toBe(255);

      await expect.poll(async () => (await fx.gw.runtime.store.listSessions({ limit: 10 })).find((s) => s.user === 'bob')?.endedAt ?? null, { timeout: 30_000 }).not.toBeNull();
      const session = (await fx.gw.runtime.store.listSessions({ limit: 10 })).find((s) => s.user === 'bob');
      expect(session?.endReason).toBe('idle_timeout');
      const end = (await fx.audit('session.end')).find((e) => e.data.session === session?.id);
      expect(end?.data).toMatchObject({ reason: 'idle_timeout' });
      // The grant still had most of an hour: idleness, not the grant, ended it.
      expect((await fx.audit('session.end')).filter((e) => e.data.reason === 'grant_ended')).toEqual([]);
    });
  });
});
