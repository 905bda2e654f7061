import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DeviceSshd } from '../support/device-sshd.js';
import { startGatewayWithDevice, type GatewayFixture } from '../support/gateway-fixture.js';
import { runSsh } from '../support/ssh-client.js';

// R-6.4a, R-A.3e: `ssh -J gateway device` works as vendors already type it. The jump leg signs in
// with password + TOTP; the inner leg to the device is answered by the gateway itself, so the
// session is brokered, recorded and sealed like any other.
describe('a ProxyJump session through the gateway', () => {
  let device: DeviceSshd;
  let fx: GatewayFixture;
  let work: string;
  let sshConfig: string;

  beforeAll(async () => {
    ({ fx, device } = await startGatewayWithDevice('ct-01'));
    work = mkdtempSync(path.join(os.tmpdir(), 'pc-jump-'));
    // -J runs a second ssh for the jump leg, which takes its options from the config file (-F is
    // passed on to it), not from our -o flags.
    sshConfig = path.join(work, 'ssh_config');
    writeFileSync(sshConfig, [
      'Host *',
      '  StrictHostKeyChecking no', '  UserKnownHostsFile /dev/null', '  GlobalKnownHostsFile /dev/null',
      '  PreferredAuthentications keyboard-interactive', '  NumberOfPasswordPrompts 1', '  ConnectTimeout 10',
      '  IdentitiesOnly yes', '  IdentityFile /dev/null', '  LogLevel ERROR', '',
    ].join('\n'));
  });
  afterAll(async () => {
    await fx?.stop();
    await device?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('runs the command on the device named in the jump, records it and seals the recording', async () => {
    const alice = await fx.addUser('alice');
    await fx.grant('alice', 'ct-01', 'now', '+1h');
    const r = await runSsh({
      // The inner leg: root@ct-01 on the device's port, reached through the gateway.
      port: device.port, login: 'root', password: alice.password, totpSecret: alice.totpSecret,
      args: ['-F', sshConfig, '-J', `alice@127.0.0.1:${fx.sshPort}`, '-o', 'HostName=ct-01'],
      command: 'echo via-jump',
    });
    expect(r.stdout, r.stderr).toBe('via-jump\n');
    expect(r.code, r.stderr).toBe(0);

    await expect.poll(async () => (await fx.gw.runtime.store.listSessions({ limit: 10 })).find((s) => s.user === 'alice')?.endedAt ?? null, { timeout: 30_000 }).not.toBeNull();
    const session = (await fx.gw.runtime.store.listSessions({ limit: 10 })).find((s) => s.user === 'alice');
    expect(session).toMatchObject({ via: 'proxyjump', device: 'ct-01', kind: 'exec', command: 'echo via-jump', exitStatus: 0, endReason: 'device_closed' });
    const start = (await fx.audit('session.start')).find((e) => e.data.session === session?.id);
    expect(start?.data).toMatchObject({ via: 'proxyjump', device: 'ct-01' });

    await expect.poll(async () => (await fx.gw.runtime.store.getRecording(session?.recordingId ?? ''))?.sealedAt ?? null, { timeout: 30_000 }).not.toBeNull();
    const sealed = (await fx.audit('recording.sealed')).find((e) => e.data.recording === session?.recordingId);
    expect(sealed).toBeDefined();

    const out = path.join(work, 'jump.cast');
    const exp = await fx.cli(['recording', 'export', session?.recordingId ?? '', '--format', 'asciicast', '-o', out]);
    expect(exp.code, exp.stderr).toBe(0);
    const output = readFileSync(out, 'utf8').trim().split('\n').slice(1)
      .map((l) => JSON.parse(l) as [number, string, string]).filter((e) => e[1] === 'o').map((e) => e[2]).join('');
    expect(output).toContain('via-jump');

    const verify = await fx.cli(['verify', '--json']);
    expect(verify.code, verify.stdout + verify.stderr).toBe(0);
  });
});
