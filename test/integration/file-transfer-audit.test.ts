import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isHeader, readRecording } from '../../recordings/recording-reader.js';
import type { AuditEntry } from '../../gateway/store/store.js';
import type { DeviceSshd } from '../support/device-sshd.js';
import { startGatewayWithDevice, type GatewayFixture, type TestUser } from '../support/gateway-fixture.js';
import { runSsh, runTransfer } from '../support/ssh-client.js';

const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

interface FileEntry {
  outcome: string;
  data: {
    session: string; device: string; grant: string; protocol: string; op: string; path: string; to?: string; bytes?: number;
    sha256?: string | null; offset?: number; mode?: string; attributes?: Record<string, unknown>; outcome: string; detail?: string;
  };
}

// R-6.3e: a transfer on a grant that allows it goes through, and every file is in the audit
// chain with its name, size and SHA-256, as the real OpenSSH sftp and scp clients move it; what
// the gateway cannot follow file by file (rsync, a transfer server inside a longer command line,
// a stream that stops making sense) does not run.
describe('file transfers are audited file by file, with the real OpenSSH sftp and scp', () => {
  let device: DeviceSshd;
  let fx: GatewayFixture;
  /** The vendor's machine: files to send, and where fetched files land. */
  let local: string;
  /** A directory on the "device" (the device sshd runs as root on this host). */
  let remote: string;
  let seq = 0;

  beforeAll(async () => {
    ({ fx, device } = await startGatewayWithDevice('ct-01'));
    local = mkdtempSync(path.join(os.tmpdir(), 'pc-vendor-'));
    remote = mkdtempSync(path.join(os.tmpdir(), 'pc-device-files-'));
  });
  afterAll(async () => {
    await fx?.stop();
    await device?.stop();
    if (local) rmSync(local, { recursive: true, force: true });
    if (remote) rmSync(remote, { recursive: true, force: true });
  });

  /** TOTP codes are single-use, so every transfer gets a fresh vendor with a file-transfer grant. */
  const vendor = async (prefix: string, fileTransfer = true): Promise<{ user: TestUser; grant: string }> => {
    const user = await fx.addUser(`${prefix}${++seq}`);
    const grant = await fx.grant(user.name, 'ct-01', 'now', '+1h', { fileTransfer });
    return { user, grant };
  };

  /** The user's session.end entry, once the gateway has ended and sealed the session. */
  const sessionEnd = async (user: string): Promise<Record<string, unknown>> => {
    await expect.poll(async () => (await fx.audit('session.end')).some((e) => e.actor === user), { timeout: 30_000 }).toBe(true);
    return (await fx.audit('session.end')).find((e) => e.actor === user)?.data as Record<string, unknown>;
  };

  /** The user's file.transferred entries, once their session has ended (its entries are all written by then). */
  const filesOf = async (user: string, count?: number): Promise<FileEntry[]> => {
    await sessionEnd(user);
    const read = async (): Promise<AuditEntry[]> => (await fx.audit('file.transferred')).filter((e) => e.actor === user);
    if (count !== undefined) await expect.poll(async () => (await read()).length, { timeout: 30_000 }).toBe(count);
    return (await read()) as unknown as FileEntry[];
  };

  const login = (u: TestUser): string => `${u.name}#ct-01@127.0.0.1`;

  it('audits an sftp upload with the bytes and SHA-256 the vendor sent, and the file arrives whole', async () => {
    const { user, grant } = await vendor('put');
    const content = randomBytes(3 * 1024 * 1024 + 123);
    const source = path.join(local, 'firmware.bin');
    writeFileSync(source, content);
    const target = path.join(remote, 'firmware.bin');
    const r = await runTransfer('sftp', user, ['-P', String(fx.sshPort), login(user)], `put ${source} ${target}\nbye\n`);
    expect(r.code, r.stderr).toBe(0);
    expect(sha256(readFileSync(target))).toBe(sha256(content));

    const [entry, ...more] = await filesOf(user.name, 1);
    expect(more).toEqual([]);
    const session = (await fx.gw.runtime.store.listSessions({ limit: 200 })).find((s) => s.user === user.name);
    expect(entry).toMatchObject({
      outcome: 'ok',
      data: { protocol: 'sftp', op: 'upload', path: target, bytes: content.length, sha256: sha256(content), outcome: 'ok', device: 'ct-01', grant, session: session?.id },
    });

    // The recording carries the same event, so a replay shows when the file went.
    const recording = await fx.gw.runtime.store.getRecording(session?.recordingId ?? '');
    const events: Array<Record<string, unknown>> = [];
    for await (const frame of readRecording(path.join(fx.config.paths.recordings, recording?.path ?? ''))) {
      if (!isHeader(frame) && frame.type === 'event' && frame.event.file) events.push(frame.event.file as Record<string, unknown>);
    }
    expect(events).toEqual([expect.objectContaining({ op: 'upload', path: target, sha256: sha256(content) })]);
  });

  it('audits an sftp download with the SHA-256 of what left the device', async () => {
    const { user } = await vendor('get');
    const content = randomBytes(2 * 1024 * 1024 + 7);
    const source = path.join(remote, 'device.log');
    writeFileSync(source, content);
    const target = path.join(local, 'device.log');
    const r = await runTransfer('sftp', user, ['-P', String(fx.sshPort), login(user)], `get ${source} ${target}\nbye\n`);
    expect(r.code, r.stderr).toBe(0);
    expect(sha256(readFileSync(target))).toBe(sha256(content));
    const files = await filesOf(user.name, 1);
    expect(files.map((e) => e.data)).toEqual([expect.objectContaining({ protocol: 'sftp', op: 'download', path: source, bytes: content.length, sha256: sha256(content), outcome: 'ok' })]);
  });

  it('audits changes to the device\'s files (mkdir, rename, remove, rmdir), and a refused one with the device\'s reason', async () => {
    const { user } = await vendor('tree');
    const dir = path.join(remote, 'tree');
    writeFileSync(path.join(remote, 'old.cfg'), 'x=1\n');
    const batch = [
      `mkdir ${dir}`,
      `rename ${remote}/old.cfg ${dir}/new.cfg`,
      `rm ${dir}/new.cfg`,
      `rmdir ${dir}`,
      // `-`: the batch goes on after a failed command.
      `-rm ${remote}/never-there.cfg`,
      'bye',
    ].join('\n');
    // Not `-b`: batch mode turns off the keyboard-interactive sign-in. Commands on stdin run the same.
    const r = await runTransfer('sftp', user, ['-P', String(fx.sshPort), login(user)], `${batch}\n`);
    expect(r.stderr).toMatch(/no such file/i);
    expect(existsSync(dir)).toBe(false);
    const files = await filesOf(user.name, 5);
    expect(files.map((e) => ({ op: e.data.op, path: e.data.path, to: e.data.to, outcome: e.data.outcome, audit: e.outcome }))).toEqual([
      { op: 'mkdir', path: dir, to: undefined, outcome: 'ok', audit: 'ok' },
      { op: 'rename', path: `${remote}/old.cfg`, to: `${dir}/new.cfg`, outcome: 'ok', audit: 'ok' },
      { op: 'remove', path: `${dir}/new.cfg`, to: undefined, outcome: 'ok', audit: 'ok' },
      { op: 'rmdir', path: dir, to: undefined, outcome: 'ok', audit: 'ok' },
      { op: 'remove', path: `${remote}/never-there.cfg`, to: undefined, outcome: 'failed', audit: 'info' },
    ]);
    expect(files[4]?.data.detail).toMatch(/no such file/i);
  });

  it('audits chmod and chown (setstat) with what they set', async () => {
    const { user } = await vendor('chmod');
    const file = path.join(remote, 'tool.sh');
    writeFileSync(file, '#!/bin/sh\n');
    const r = await runTransfer('sftp', user, ['-P', String(fx.sshPort), login(user)], `chmod 755 ${file}\nchgrp 0 ${file}\nbye\n`);
    expect(r.code, r.stderr).toBe(0);
    const files = await filesOf(user.name);
    // sftp's chgrp reads the attributes first and sends uid and gid together.
    expect(files.map((e) => e.data)).toEqual([
      expect.objectContaining({ op: 'setstat', path: file, attributes: { mode: '0755' }, outcome: 'ok' }),
      expect.objectContaining({ op: 'setstat', path: file, attributes: expect.objectContaining({ gid: 0 }), outcome: 'ok' }),
    ]);
  });

  it('audits an upload the device refused as failed, with nothing stored', async () => {
    const { user } = await vendor('refusedput');
    const source = path.join(local, 'x.bin');
    writeFileSync(source, 'data\n');
    const target = path.join(remote, 'no-such-dir', 'x.bin');
    const r = await runTransfer('sftp', user, ['-P', String(fx.sshPort), login(user)], `put ${source} ${target}\nbye\n`);
    expect(r.stderr).toMatch(/no such file/i);
    expect(existsSync(target)).toBe(false);
    const files = await filesOf(user.name, 1);
    expect(files[0]?.data).toMatchObject({ op: 'upload', path: target, bytes: 0, sha256: null, outcome: 'failed' });
    expect(files[0]?.data.detail).toMatch(/no such file/i);
  });

  it('audits scp (its default SFTP mode) both ways', async () => {
    const { user } = await vendor('scp');
    const content = randomBytes(1024 * 1024);
    const source = path.join(local, 'scp-up.bin');
    writeFileSync(source, content);
    const up = await runTransfer('scp', user, ['-P', String(fx.sshPort), source, `${login(user)}:${remote}/scp-up.bin`]);
    expect(up.code, up.stderr).toBe(0);
    expect(sha256(readFileSync(path.join(remote, 'scp-up.bin')))).toBe(sha256(content));
    // scp sets the file's final size on the open handle (a truncate) before it closes it: both are on record.
    const files = await filesOf(user.name, 2);
    expect(files.map((e) => e.data)).toEqual([
      expect.objectContaining({ protocol: 'sftp', op: 'setstat', path: `${remote}/scp-up.bin`, attributes: { size: content.length }, outcome: 'ok' }),
      expect.objectContaining({ protocol: 'sftp', op: 'upload', path: `${remote}/scp-up.bin`, bytes: content.length, sha256: sha256(content), outcome: 'ok' }),
    ]);

    const second = await vendor('scpdown');
    const down = await runTransfer('scp', second.user, ['-P', String(fx.sshPort), `${second.user.name}%ct-01@127.0.0.1:${remote}/scp-up.bin`, path.join(local, 'scp-down.bin')]);
    expect(down.code, down.stderr).toBe(0);
    expect(sha256(readFileSync(path.join(local, 'scp-down.bin')))).toBe(sha256(content));
    const downloads = await filesOf(second.user.name, 1);
    expect(downloads.map((e) => e.data)).toEqual([
      expect.objectContaining({ protocol: 'sftp', op: 'download', path: `${remote}/scp-up.bin`, bytes: content.length, sha256: sha256(content), outcome: 'ok' }),
    ]);
  });

  it('audits legacy scp (scp -O, the scp protocol itself): a directory up with -r, a file down', async () => {
    const { user } = await vendor('scpo');
    const tree = path.join(local, 'logs-up');
    mkdirSync(path.join(tree, 'sub'), { recursive: true });
    const a = randomBytes(200_000);
    const b = Buffer.from('second file\n');
    writeFileSync(path.join(tree, 'a.bin'), a);
    writeFileSync(path.join(tree, 'sub', 'b.txt'), b);
    const up = await runTransfer('scp', user, ['-O', '-r', '-P', String(fx.sshPort), tree, `${login(user)}:${remote}/`]);
    expect(up.code, up.stderr).toBe(0);
    expect(readFileSync(path.join(remote, 'logs-up', 'sub', 'b.txt'))).toEqual(b);
    const uploads = (await filesOf(user.name, 2)).map((e) => e.data);
    expect(uploads).toEqual([
      expect.objectContaining({ protocol: 'scp', op: 'upload', path: `${remote}/logs-up/a.bin`, bytes: a.length, sha256: sha256(a), outcome: 'ok' }),
      expect.objectContaining({ protocol: 'scp', op: 'upload', path: `${remote}/logs-up/sub/b.txt`, bytes: b.length, sha256: sha256(b), outcome: 'ok' }),
    ]);

    const second = await vendor('scpodown');
    const content = randomBytes(500_000);
    writeFileSync(path.join(remote, 'trace.bin'), content);
    // Legacy scp refuses `#` in a source's user name; `%` is the other separator the gateway reads.
    const down = await runTransfer('scp', second.user, ['-O', '-P', String(fx.sshPort), `${second.user.name}%ct-01@127.0.0.1:${remote}/trace.bin`, path.join(local, 'trace.bin')]);
    expect(down.code, down.stderr).toBe(0);
    expect(sha256(readFileSync(path.join(local, 'trace.bin')))).toBe(sha256(content));
    const downloads = (await filesOf(second.user.name, 1)).map((e) => e.data);
    expect(downloads).toEqual([expect.objectContaining({ protocol: 'scp', op: 'download', path: `${remote}/trace.bin`, bytes: content.length, sha256: sha256(content), outcome: 'ok' })]);
  });

  it('audits sftp with the server named as a command (sftp -s)', async () => {
    const { user } = await vendor('sftps');
    const source = path.join(local, 'via-s.txt');
    writeFileSync(source, 'named server\n');
    const r = await runTransfer('sftp', user, ['-s', '/usr/lib/openssh/sftp-server', '-P', String(fx.sshPort), login(user)], `put ${source} ${remote}/via-s.txt\nbye\n`);
    expect(r.code, r.stderr).toBe(0);
    const files = await filesOf(user.name, 1);
    expect(files[0]?.data).toMatchObject({ protocol: 'sftp', op: 'upload', path: `${remote}/via-s.txt`, sha256: sha256(Buffer.from('named server\n')), outcome: 'ok' });
  });

  // What the rsync client sends for `rsync -a x host:dir`, and transfer servers hidden in longer lines.
  it.each([
    ['rsync (its delta protocol sends blocks, not files)', 'rsync --server -logDtpre.iLsfxCIvu . REMOTE/rsync-target', /rsync cannot be audited file by file/],
    ['scp after cd', 'cd REMOTE && scp -t scp-target', /runs only alone on its command line/],
    ['the sftp server behind exec', 'exec /usr/lib/openssh/sftp-server', /runs only alone on its command line/],
    ['scp with its output redirected', 'scp -t REMOTE/scp-target 2>/dev/null', /runs only alone on its command line/],
    ['scp with an option the gateway does not know', 'scp -Z -t REMOTE/scp-target', /cannot be followed file by file/],
    ['a server from a path the vendor could have uploaded to', 'REMOTE/scp -t REMOTE/scp-target', /runs only from where the system installs it/],
    ['the sftp server from the working directory', './sftp-server', /runs only from where the system installs it/],
  ])('refuses what it cannot follow file by file: %s', async (_name, command, reason) => {
    const { user } = await vendor('nofollow');
    const r = await runSsh({ port: fx.sshPort, login: `${user.name}#ct-01`, password: user.password, totpSecret: user.totpSecret, command: command.replaceAll('REMOTE', remote), stdin: 'C0644 5 x\nhello\0' });
    expect(r.stderr).toMatch(reason);
    expect(r.stderr).toContain('[COMMAND_DENIED]');
    expect(r.code).toBe(1);
    expect(existsSync(path.join(remote, 'rsync-target'))).toBe(false);
    expect(existsSync(path.join(remote, 'scp-target'))).toBe(false);
    const decided = (await fx.audit('command')).filter((e) => e.actor === user.name).map((e) => e.data as { line?: string; decision?: string });
    expect(decided).toEqual([expect.objectContaining({ line: command.replaceAll('REMOTE', remote), decision: 'deny' })]);
  });

  it('ends a session whose SFTP stream cannot be followed, and says why', async () => {
    const { user } = await vendor('garbage');
    // A packet that claims 1 GiB: no real client sends one, and the watcher cannot follow past it.
    const r = await runSsh({ port: fx.sshPort, login: `${user.name}#ct-01`, password: user.password, totpSecret: user.totpSecret, args: ['-s'], command: 'sftp', stdin: '\x40\x00\x00\x00\x03junk' });
    expect(r.stderr).toMatch(/SFTP stream could not be followed/);
    expect(await sessionEnd(user.name)).toMatchObject({ reason: 'protocol_error' });
  });

  it('still refuses a transfer on a grant without file transfer (nothing reaches the device)', async () => {
    const { user } = await vendor('nogrant', false);
    const source = path.join(local, 'refused.txt');
    writeFileSync(source, 'no\n');
    const r = await runTransfer('sftp', user, ['-P', String(fx.sshPort), login(user)], `put ${source} ${remote}/refused.txt\nbye\n`);
    expect(r.stderr).toContain('[FILE_TRANSFER_NOT_GRANTED]');
    expect(existsSync(path.join(remote, 'refused.txt'))).toBe(false);
    expect((await fx.audit('file.transferred')).filter((e) => e.actor === user.name)).toEqual([]);
  });
});
