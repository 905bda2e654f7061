import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { asciinemaCat } from '../support/asciinema.js';
import type { DeviceSshd } from '../support/device-sshd.js';
import { startGatewayWithDevice, type GatewayFixture } from '../support/gateway-fixture.js';
import { runSsh } from '../support/ssh-client.js';

// R-6.4a, R-A.3e, R-A.4d, R-5.3c: an approved vendor reaches a device with the plain OpenSSH
// client, signs in with password + TOTP, and every byte is recorded and audited.
describe('a recorded, approved SSH session with the real OpenSSH client', () => {
  let device: DeviceSshd;
  let fx: GatewayFixture;

  beforeAll(async () => {
    ({ fx, device } = await startGatewayWithDevice('ct-01'));
  });
  afterAll(async () => {
    await fx?.stop();
    await device?.stop();
  });

  it('runs a command on the device and passes its output and exit status through', async () => {
    const alice = await fx.addUser('alice');
    await fx.grant('alice', 'ct-01', 'now', '+1h');
    const r = await runSsh({ port: fx.sshPort, login: 'alice#ct-01', password: alice.password, totpSecret: alice.totpSecret, command: 'echo "device says $((6*7))"; echo to-stderr >&2; exit 7' });
    expect(r.stdout).toBe('device says 42\n');
    expect(r.stderr).toContain('to-stderr');
    expect(r.code).toBe(7);
    const starts = await fx.audit('session.start');
    expect(starts.at(-1)?.actor).toBe('alice');
    // Audited from the door it came in by (issue 13): the SSH front door and the client's address.
    expect(starts.at(-1)).toMatchObject({ channel: 'ssh', source: '127.0.0.1' });
    const ends = await fx.audit('session.end');
    await expect.poll(async () => (await fx.audit('session.end')).length).toBeGreaterThan(ends.length - 1);
    await expect.poll(async () => (await fx.audit('session.end')).filter((e) => e.actor === 'alice').map((e) => e.channel)).toEqual(['ssh']);
  });

  it('hands over the exit status only after the last byte of a bulk download, and then lets the client go', async () => {
    const fay = await fx.addUser('fay');
    await fx.grant('fay', 'ct-01', 'now', '+1h');
    const r = await runSsh({ port: fx.sshPort, login: 'fay#ct-01', password: fay.password, totpSecret: fay.totpSecret, command: 'head -c 33554432 /dev/zero; echo tail >&2; exit 3', timeoutMs: 60_000 });
    expect(r.stdout.length).toBe(33554432);
    expect(r.stderr).toContain('tail');
    expect(r.code).toBe(3);
  });

  it('records an interactive shell: what the user typed and what they saw, readable by asciinema', async () => {
    const bob = await fx.addUser('bob');
    await fx.grant('bob', 'ct-01', 'now', '+1h');
    const r = await runSsh({
      port: fx.sshPort, login: 'bob#ct-01', password: bob.password, totpSecret: bob.totpSecret, args: ['-tt'],
      typed: [{ text: 'echo typed-$((20+22))\r', afterMs: 1500 }, { text: 'exit 0\r', afterMs: 800 }],
    });
    expect(r.stdout).toContain('typed-42');
    expect(r.code).toBe(0);

    await expect.poll(async () => (await fx.gw.runtime.store.listSessions({ limit: 10 })).find((s) => s.user === 'bob')?.endedAt ?? null, { timeout: 30_000 }).not.toBeNull();
    const session = (await fx.gw.runtime.store.listSessions({ limit: 10 })).find((s) => s.user === 'bob');
    expect(session?.kind).toBe('shell');
    const out = path.join(fx.dir, 'bob.cast');
    const exp = await fx.cli(['recording', 'export', session?.recordingId ?? '', '--format', 'asciicast', '-o', out]);
    expect(exp.code, exp.stderr).toBe(0);
    const lines = readFileSync(out, 'utf8').trim().split('\n');
    const header = JSON.parse(lines[0] ?? '{}') as { version: number; width: number };
    expect(header.version).toBe(2);
    const events = lines.slice(1).map((l) => JSON.parse(l) as [number, string, string]);
    const typed = events.filter((e) => e[1] === 'i').map((e) => e[2]).join('');
    expect(typed).toContain('echo typed-$((20+22))');
    // asciinema (Debian's) reads the file back as what the user saw.
    const seen = asciinemaCat(out);
    expect(seen).toContain('typed-42');
    // Times never go backwards.
    const times = events.map((e) => e[0]);
    expect([...times].sort((a, b) => a - b)).toEqual(times);
  });

  it('shows a picker of granted devices when no device is named', async () => {
    const dave = await fx.addUser('dave');
    await fx.grant('dave', 'ct-01', 'now', '+1h');
    const r = await runSsh({
      port: fx.sshPort, login: 'dave', password: dave.password, totpSecret: dave.totpSecret, args: ['-tt'],
      typed: [{ text: '1\r', afterMs: 1500 }, { text: 'echo picked-$((40+2))\r', afterMs: 1500 }, { text: 'exit\r', afterMs: 800 }],
    });
    expect(r.stdout).toContain('1) ct-01');
    expect(r.stdout).toContain('picked-42');
    const session = (await fx.gw.runtime.store.listSessions({ limit: 20 })).find((s) => s.user === 'dave');
    expect(session?.device).toBe('ct-01');
  });

  it('never writes a secret to the log or the audit trail', async () => {
    const erin = await fx.addUser('erin');
    await fx.grant('erin', 'ct-01', 'now', '+1h');
    await runSsh({ port: fx.sshPort, login: 'erin#ct-01', password: erin.password, totpSecret: erin.totpSecret, command: 'true' });
    const everything = fx.logs.join('') + JSON.stringify(await fx.audit());
    const deviceKey = readFileSync(device.clientKeyFile, 'utf8').split('\n')[2] ?? 'unreachable';
    expect(deviceKey.length).toBeGreaterThan(20);
    for (const secret of [erin.password, erin.totpSecret, deviceKey]) expect(everything).not.toContain(secret);
  });

  it('seals every recording into the audit chain, and `portcullis verify` passes', async () => {
    const r = await fx.cli(['verify', '--json']);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const report = JSON.parse(r.stdout) as { ok: boolean; recordingsVerified: number; auditEntries: number };
    expect(report.ok).toBe(true);
    expect(report.recordingsVerified).toBeGreaterThanOrEqual(2);
  });
});
