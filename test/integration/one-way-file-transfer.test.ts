import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRequest } from '../../gateway/access/requests.js';
import type { AuditEntry, UserRecord } from '../../gateway/store/store.js';
import { signedIn, TotpSource, type ApiClient } from '../support/api-client.js';
import { startDeviceSshd, type DeviceSshd } from '../support/device-sshd.js';
import { runCli, startGatewayFixture, type CliResult, type GatewayFixture, type TestUser } from '../support/gateway-fixture.js';
import { runTransfer } from '../support/ssh-client.js';

const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

interface FileData { op: string; path: string; to?: string; bytes?: number; sha256?: string | null; outcome: string; code?: string; detail?: string }

/**
 * Upload and download are separate permissions (issue 13; R-6.3e: data export needs approval by
 * a named person). On a grant with one direction, the other never reaches the device: shown on
 * the device itself — its sftp-server's own log (every open with its flags, every change to the
 * file tree) and the commands its sshd received — and on its disk. The real OpenSSH sftp and scp
 * (SFTP mode and legacy `scp -O`) are the clients.
 */
describe('upload-only and download-only grants, with the real OpenSSH sftp and scp', () => {
  let device: DeviceSshd;
  let fx: GatewayFixture;
  /** The vendor's machine. */
  let local: string;
  /** A directory on the "device" (its sshd runs as root on this host). */
  let remote: string;
  let seq = 0;

  beforeAll(async () => {
    device = await startDeviceSshd({ logCommands: true, sftpLog: true });
    fx = await startGatewayFixture();
    await fx.addDevice('pump-7', device);
    local = mkdtempSync(path.join(os.tmpdir(), 'pc-vendor-'));
    remote = mkdtempSync(path.join(os.tmpdir(), 'pc-device-files-'));
  });
  afterAll(async () => {
    await fx?.stop();
    await device?.stop();
    if (local) rmSync(local, { recursive: true, force: true });
    if (remote) rmSync(remote, { recursive: true, force: true });
  });

  /** TOTP codes are single-use: every connection gets a fresh vendor. */
  const vendor = async (prefix: string, directions: { upload?: boolean; download?: boolean }): Promise<TestUser> => {
    const user = await fx.addUser(`${prefix}${++seq}`);
    await fx.grant(user.name, 'pump-7', 'now', '+1h', directions);
    return user;
  };
  const login = (u: TestUser): string => `${u.name}#pump-7@127.0.0.1`;
  const sftp = (u: TestUser, batch: string[]) => runTransfer('sftp', u, ['-P', String(fx.sshPort), login(u)], `${[...batch, 'bye'].join('\n')}\n`);

  const sessionEnd = async (user: string): Promise<Record<string, unknown>> => {
    await expect.poll(async () => (await fx.audit('session.end')).some((e) => e.actor === user), { timeout: 10_000 }).toBe(true);
    return (await fx.audit('session.end')).find((e) => e.actor === user)?.data as Record<string, unknown>;
  };
  const filesOf = async (user: string, count: number): Promise<Array<{ outcome: string; code: string | null; data: FileData }>> => {
    await sessionEnd(user);
    const read = async (): Promise<AuditEntry[]> => (await fx.audit('file.transferred')).filter((e) => e.actor === user);
    await expect.poll(async () => (await read()).length, { timeout: 5000 }).toBe(count);
    return (await read()).map((e) => ({ outcome: e.outcome, code: e.code, data: e.data as unknown as FileData }));
  };
  /** The lines of the device's sftp-server log that name this path (opens, removes, renames…). */
  const deviceSftpLines = (p: string): string[] => device.sftpLog().split('\n').filter((l) => l.includes(`"${p}"`));

  it('upload only: sftp get never reaches the device and the client reads why; put in the same session works and is audited', async () => {
    const user = await vendor('up', { upload: true });
    const secret = path.join(remote, 'patient-export.db');
    writeFileSync(secret, randomBytes(64 * 1024));
    const content = randomBytes(256 * 1024 + 5);
    const source = path.join(local, 'fw-up.bin');
    writeFileSync(source, content);
    const target = path.join(remote, 'fw-up.bin');
    const fetched = path.join(local, 'patient-export.db');
    // Refused, then an upload, then refused again: replies and request ids stay in step.
    const r = await sftp(user, [`-get ${secret} ${fetched}`, `put ${source} ${target}`, `-get ${target} ${path.join(local, 'back.bin')}`]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain('[FILE_DOWNLOAD_NOT_GRANTED]');
    expect(r.stderr).toMatch(/Permission denied/);
    expect(existsSync(fetched)).toBe(false);
    expect(existsSync(path.join(local, 'back.bin'))).toBe(false);
    expect(sha256(readFileSync(target))).toBe(sha256(content));

    // The device's sftp-server was never asked to open either file for reading; it did open the upload.
    expect(deviceSftpLines(secret)).toEqual([]);
    expect(deviceSftpLines(target).filter((l) => /^.*open /.test(l)).map((l) => /flags (\S+)/.exec(l)?.[1])).toEqual(['WRITE,CREATE,TRUNCATE']);

    const files = await filesOf(user.name, 3);
    expect(files).toEqual([
      { outcome: 'denied', code: 'FILE_DOWNLOAD_NOT_GRANTED', data: expect.objectContaining({ op: 'download', path: secret, bytes: 0, outcome: 'denied' }) },
      { outcome: 'ok', code: null, data: expect.objectContaining({ op: 'upload', path: target, bytes: content.length, sha256: sha256(content), outcome: 'ok' }) },
      { outcome: 'denied', code: 'FILE_DOWNLOAD_NOT_GRANTED', data: expect.objectContaining({ op: 'download', path: target, outcome: 'denied' }) },
    ]);
    // The session ended as the client closed it, not as a stream the gateway lost track of.
    expect((await sessionEnd(user.name)).reason).not.toBe('protocol_error');
  });

  it('upload only: scp in SFTP mode cannot fetch, and legacy scp -f is refused before the device is contacted; scp -t works', async () => {
    const secret = path.join(remote, 'scp-secret.log');
    writeFileSync(secret, 'device log\n');
    const sftpMode = await vendor('scpf', { upload: true });
    // scp will not take a `#` in the user of a source it fetches from: the login goes in -o User instead.
    const got = await runTransfer('scp', sftpMode, ['-P', String(fx.sshPort), '-o', `User=${sftpMode.name}#pump-7`, `127.0.0.1:${secret}`, path.join(local, 'scp-secret.log')]);
    expect(got.code).not.toBe(0);
    expect(got.stderr).toContain('[FILE_DOWNLOAD_NOT_GRANTED]');
    expect(existsSync(path.join(local, 'scp-secret.log'))).toBe(false);
    expect(deviceSftpLines(secret)).toEqual([]);

    const legacy = await vendor('scpo', { upload: true });
    const before = device.received().length;
    const old = await runTransfer('scp', legacy, ['-O', '-P', String(fx.sshPort), '-o', `User=${legacy.name}#pump-7`, `127.0.0.1:${secret}`, path.join(local, 'scp-legacy.log')]);
    expect(old.code).not.toBe(0);
    expect(old.stderr).toContain('[FILE_DOWNLOAD_NOT_GRANTED]');
    expect(existsSync(path.join(local, 'scp-legacy.log'))).toBe(false);
    expect(device.received().slice(before)).toEqual([]);
    const refused = (await fx.audit()).filter((e) => e.actor === legacy.name && e.outcome === 'denied');
    expect(refused.map((e) => e.code)).toEqual(['FILE_DOWNLOAD_NOT_GRANTED']);
    expect((await fx.audit('session.start')).filter((e) => e.actor === legacy.name)).toEqual([]);

    const upper = await vendor('scpt', { upload: true });
    const source = path.join(local, 'scp-up.txt');
    writeFileSync(source, 'new settings\n');
    const up = await runTransfer('scp', upper, ['-O', '-P', String(fx.sshPort), source, `${login(upper)}:${remote}/scp-up.txt`]);
    expect(up.code, up.stderr).toBe(0);
    expect(readFileSync(path.join(remote, 'scp-up.txt'), 'utf8')).toBe('new settings\n');
    expect(device.received().at(-1)).toMatch(/^scp .*-t /);
    expect((await filesOf(upper.name, 1))[0]).toMatchObject({ outcome: 'ok', data: { op: 'upload', path: `${remote}/scp-up.txt` } });
  });

  it('download only: put, rm, rename, mkdir, chmod and ln are refused and the device\'s disk is unchanged; get works', async () => {
    const user = await vendor('down', { download: true });
    const dir = path.join(remote, 'down-only');
    mkdirSync(dir);
    const keep = path.join(dir, 'settings.cfg');
    writeFileSync(keep, 'rate=5\n');
    const source = path.join(local, 'evil.cfg');
    writeFileSync(source, 'rate=500\n');
    const modeBefore = statSync(keep).mode;
    const fetched = path.join(local, 'settings.cfg');
    const r = await sftp(user, [
      `-put ${source} ${keep}`,
      `-put ${source} ${dir}/new.cfg`,
      `-rm ${keep}`,
      `-rename ${keep} ${dir}/moved.cfg`,
      `-mkdir ${dir}/sub`,
      `-chmod 777 ${keep}`,
      `-ln -s ${keep} ${dir}/link.cfg`,
      `get ${keep} ${fetched}`,
    ]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain('[FILE_UPLOAD_NOT_GRANTED]');
    expect(readFileSync(fetched, 'utf8')).toBe('rate=5\n');
    // Nothing changed on the device's disk.
    expect(readdirSync(dir)).toEqual(['settings.cfg']);
    expect(readFileSync(keep, 'utf8')).toBe('rate=5\n');
    expect(statSync(keep).mode).toBe(modeBefore);
    // The device's sftp-server saw only the read.
    const log = device.sftpLog();
    expect(log).not.toMatch(new RegExp(`(remove|rename|mkdir|set|symlink)[^\\n]*${dir}`));
    expect(deviceSftpLines(keep).filter((l) => / open /.test(l) || /^.*open "/.test(l)).map((l) => /flags (\S+)/.exec(l)?.[1])).toEqual(['READ']);
    expect(deviceSftpLines(`${dir}/new.cfg`)).toEqual([]);

    const files = await filesOf(user.name, 8);
    expect(files.slice(0, 7).map((f) => [f.data.op, f.outcome, f.code])).toEqual([
      ['upload', 'denied', 'FILE_UPLOAD_NOT_GRANTED'],
      ['upload', 'denied', 'FILE_UPLOAD_NOT_GRANTED'],
      ['remove', 'denied', 'FILE_UPLOAD_NOT_GRANTED'],
      ['rename', 'denied', 'FILE_UPLOAD_NOT_GRANTED'],
      ['mkdir', 'denied', 'FILE_UPLOAD_NOT_GRANTED'],
      ['setstat', 'denied', 'FILE_UPLOAD_NOT_GRANTED'],
      ['symlink', 'denied', 'FILE_UPLOAD_NOT_GRANTED'],
    ]);
    expect(files[7]).toMatchObject({ outcome: 'ok', data: { op: 'download', path: keep, bytes: 7 } });
  });

  it('download only: legacy scp -t is refused before the device is contacted', async () => {
    const user = await vendor('scpt-down', { download: true });
    const source = path.join(local, 'drop.txt');
    writeFileSync(source, 'x\n');
    const before = device.received().length;
    const r = await runTransfer('scp', user, ['-O', '-P', String(fx.sshPort), source, `${login(user)}:${remote}/drop.txt`]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('[FILE_UPLOAD_NOT_GRANTED]');
    expect(existsSync(path.join(remote, 'drop.txt'))).toBe(false);
    expect(device.received().slice(before)).toEqual([]);
  });

  it('an approver who strikes the download leaves a grant that uploads only, and the device sees no read (API)', async () => {
    const totp = new TotpSource();
    const dm = await fx.addUser(`dm${++seq}`, ['device_manager']);
    const api: ApiClient = await signedIn(fx.gw.web.port, dm, totp);
    const vera = await fx.addUser(`vera${++seq}`);
    const record = (await fx.gw.runtime.store.getUser(vera.name)) as UserRecord;
    const req = await createRequest(fx.gw.runtime, record, {
      devices: ['pump-7'], protocols: ['ssh'], purpose: 'Load the new drug library', workOrder: 'WO-DIR-1', notBefore: Date.now(), notAfter: Date.now() + 3_600_000,
      profile: null, upload: true, download: true,
    });
    // Adding back what was not asked for is refused; striking one direction is a narrowing.
    const approved = await api.post<{ approved: boolean; request: { effective: { upload: boolean; download: boolean } }; grants: Array<{ allowUpload: boolean; allowDownload: boolean }> }>(
      `/api/requests/${req.id}/approve`, { narrowing: { download: false }, comment: 'no data leaves the pump' });
    expect(approved.status, JSON.stringify(approved.body)).toBe(200);
    expect(approved.body.approved).toBe(true);
    expect(approved.body.request.effective).toMatchObject({ upload: true, download: false });
    expect(approved.body.grants).toEqual([expect.objectContaining({ allowUpload: true, allowDownload: false })]);
    const entry = (await fx.audit('grant.created')).find((e) => e.data.request === req.id);
    expect(entry?.data).toMatchObject({ allowUpload: true, allowDownload: false });

    const secret = path.join(remote, 'library-old.json');
    writeFileSync(secret, '{"old":true}\n');
    const r = await sftp(vera, [`-get ${secret} ${path.join(local, 'library-old.json')}`]);
    expect(r.stderr).toContain('[FILE_DOWNLOAD_NOT_GRANTED]');
    expect(existsSync(path.join(local, 'library-old.json'))).toBe(false);
    expect(deviceSftpLines(secret)).toEqual([]);
  });

  it('the CLI asks for and strikes each direction (--upload, --download, --no-download), and --file-transfer still means both', async () => {
    const dm = await fx.addUser(`dmc${++seq}`, ['device_manager']);
    const vic = await fx.addUser(`vicc${++seq}`);
    const json = <T>(r: { code: number; stdout: string; stderr: string }): T => {
      expect(r.code, r.stderr).toBe(0);
      return JSON.parse(r.stdout) as T;
    };
    // vic proves who he is once, for a token: three requests in a row need no three TOTP steps.
    const token = json<{ secret: string }>(await fx.cliAs(vic, ['token', 'create', '--name', 'dir', '--scope', 'request.create', '--expires', '+1d', '--json'])).secret;
    const asVic = (args: string[]): Promise<CliResult> => runCli(args, { config: fx.configFile, env: { PORTCULLIS_TOKEN: token } });
    const base = ['request', 'create', '--device', 'pump-7', '--protocol', 'ssh', '--purpose', 'Swap the log card', '--work-order', 'WO-DIR-3', '--from', 'now', '--duration', '30m', '--json'];
    const both = json<{ id: string; requested: { upload: boolean; download: boolean } }>(await asVic([...base, '--upload', '--download']));
    expect(both.requested).toMatchObject({ upload: true, download: true });
    const approved = json<{ effective: { upload: boolean; download: boolean }; grants: string[] }>(await fx.cliAs(dm, ['request', 'approve', both.id, '--no-download', '--json']));
    expect(approved.effective).toMatchObject({ upload: true, download: false });
    expect(await fx.gw.runtime.store.getGrant(approved.grants[0] as string)).toMatchObject({ allowUpload: true, allowDownload: false });
    const old = json<{ requested: { upload: boolean; download: boolean } }>(await asVic([...base, '--file-transfer']));
    expect(old.requested).toMatchObject({ upload: true, download: true });
    const none = json<{ requested: { upload: boolean; download: boolean } }>(await asVic(base));
    expect(none.requested).toMatchObject({ upload: false, download: false });
  });

  it('the API takes upload and download apart, and the older fileTransfer as both', async () => {
    const totp = new TotpSource();
    const vic = await fx.addUser(`vic${++seq}`);
    const api = await signedIn(fx.gw.web.port, vic, totp);
    const body = { devices: ['pump-7'], protocols: ['ssh'], purpose: 'Check the log', workOrder: 'WO-DIR-2', from: new Date().toISOString(), durationMinutes: 30 };
    const one = await api.post<{ requested: { upload: boolean; download: boolean } }>('/api/requests', { ...body, download: true });
    expect(one.status, JSON.stringify(one.body)).toBe(201);
    expect(one.body.requested).toMatchObject({ upload: false, download: true });
    const old = await api.post<{ requested: { upload: boolean; download: boolean } }>('/api/requests', { ...body, fileTransfer: true });
    expect(old.body.requested).toMatchObject({ upload: true, download: true });
    const both = await api.post<{ error: { code: string } }>('/api/requests', { ...body, fileTransfer: true, upload: false });
    expect(both.status).toBe(400);
  });
});
