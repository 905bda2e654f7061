import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiClient, TotpSource } from '../support/api-client.js';
import type { DeviceSshd } from '../support/device-sshd.js';
import { startGatewayWithDevice, type GatewayFixture } from '../support/gateway-fixture.js';
import { runSsh, runTransfer } from '../support/ssh-client.js';

type Hit = { id: string; session: string; user: string; device: string; at: string; line: string; decision: string; recording: string | null };
type Record_ = {
  session: string; vendor: string; recording: string;
  commands: Array<{ at: string; line: string; decision: string }>;
  files: Array<{ op: string; path: string; bytes: number | null; sha256: string | null; outcome: string }>;
};

const sha256 = (b: Buffer | string): string => createHash('sha256').update(b).digest('hex');

// Security's questions (issue 14 item 6; R-A.3d, R-6.4c): which sessions ran a program, across
// sessions and by time, each hit with its recording; what each maintenance session did (its
// command lines and files) in the records, the CSV and the CLI; the audit log newest first.
describe("security's questions: commands across sessions, records with their content, the audit newest first", () => {
  let device: DeviceSshd;
  let fx: GatewayFixture;
  let security: ApiClient;
  let local: string;
  let remote: string;
  const totp = new TotpSource();
  const upload = Buffer.from(`calibration table ${Date.now()}\n`.repeat(200));

  beforeAll(async () => {
    ({ fx, device } = await startGatewayWithDevice('ct-q'));
    local = mkdtempSync(path.join(os.tmpdir(), 'pc-vendor-'));
    remote = mkdtempSync(path.join(os.tmpdir(), 'pc-device-files-'));
    const sec = await fx.addUser('sec-q', ['security']);
    security = new ApiClient(fx.gw.web.port);
    await security.login(sec.name, sec.password, { code: await totp.code(sec.totpSecret) });
    // Two sessions of commands and one of a file (TOTP codes are single-use: one person each).
    for (const [name, command] of [['quinn', 'uname -s'], ['rhea', '/bin/echo calibrated && ls /']] as const) {
      const u = await fx.addUser(name);
      await fx.grant(name, 'ct-q', 'now', '+1h');
      const r = await runSsh({ port: fx.sshPort, login: `${name}#ct-q`, password: u.password, totpSecret: u.totpSecret, command });
      expect(r.code, r.stderr).toBe(0);
    }
    const sam = await fx.addUser('sami');
    await fx.grant('sami', 'ct-q', 'now', '+1h', { fileTransfer: true });
    const source = path.join(local, 'table.bin');
    writeFileSync(source, upload);
    const put = await runTransfer('sftp', { password: sam.password, totpSecret: sam.totpSecret }, ['-P', String(fx.sshPort), 'sami#ct-q@127.0.0.1'],
      `put ${source} ${path.join(remote, 'table.bin')}\nbye\n`);
    expect(put.code, put.stderr).toBe(0);
    // Every session over and its entries written (a hook cannot use expect.poll).
    for (let ended = 0; ended < 3; await new Promise((r) => setTimeout(r, 100))) {
      ended = (await fx.audit('session.end')).filter((e) => ['quinn', 'rhea', 'sami'].includes(e.actor)).length;
    }
  });
  afterAll(async () => {
    await fx?.stop();
    await device?.stop();
    if (local) rmSync(local, { recursive: true, force: true });
    if (remote) rmSync(remote, { recursive: true, force: true });
  });

  const hits = async (q: string): Promise<Hit[]> => {
    const r = await security.get<{ commands: Hit[] }>(`/api/commands?${q}`);
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    return r.body.commands;
  };

  it('finds the lines that ran a program, by its name and not by a mention, each with its session\'s recording', async () => {
    const sessions = (await fx.gw.runtime.store.listSessions({ limit: 50 })).filter((s) => s.device === 'ct-q');
    const uname = await hits('program=uname');
    expect(uname.map((h) => [h.user, h.line])).toEqual([['quinn', 'uname -s']]);
    expect(uname[0]?.recording).toBe(sessions.find((s) => s.user === 'quinn')?.recordingId);
    // A path and a second command of the line count; a word inside an argument does not.
    expect((await hits('program=echo')).map((h) => h.user)).toEqual(['rhea']);
    expect((await hits('program=ls')).map((h) => h.user)).toEqual(['rhea']);
    expect(await hits('program=calibrated')).toEqual([]);
    // Newest first, and bounded by time (inclusive).
    const both = await hits('device=ct-q');
    expect(both.map((h) => h.user).filter((u) => u !== 'sami')).toEqual(['rhea', 'quinn']);
    const at = both.find((h) => h.user === 'rhea')?.at ?? '';
    expect((await hits(`device=ct-q&from=${encodeURIComponent(at)}`)).map((h) => h.user)).toContain('rhea');
    expect((await hits(`device=ct-q&from=${encodeURIComponent(at)}`)).map((h) => h.user)).not.toContain('quinn');
    expect(await hits(`device=ct-q&from=${encodeURIComponent(new Date(Date.now() + 3_600_000).toISOString())}`)).toEqual([]);
    expect((await security.get<{ error: { code: string } }>('/api/commands?from=yesterday')).body.error.code).toBe('INVALID_INPUT');
  });

  it('answers the same question in the CLI, as text, CSV and JSON', async () => {
    const text = await fx.cli(['commands', '--program', 'uname', '--device', 'ct-q']);
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toMatch(/quinn → ct-q .*"uname -s"/);
    const csv = await fx.cli(['commands', '--vendor', 'rhea', '--format', 'csv']);
    expect(csv.stdout.split('\r\n')[0]).toBe('at,session,user,device,mode,decision,rule,reviewer,exit_status,exit_signal,line');
    expect(csv.stdout).toContain('/bin/echo calibrated && ls /');
    const json = JSON.parse((await fx.cli(['commands', '--program', 'ls', '--format', 'json'])).stdout) as Hit[];
    expect(json.map((h) => h.user)).toEqual(['rhea']);
    expect((await fx.cli(['commands', '--decision', 'maybe'])).code).toBe(2);
  });

  it('lists in each maintenance record what was done: the command lines and the files with their SHA-256 (API, CSV, CLI)', async () => {
    const r = await security.get<{ records: Record_[] }>('/api/records?device=ct-q');
    expect(r.status).toBe(200);
    const of = (vendor: string): Record_ | undefined => r.body.records.find((m) => m.vendor === vendor);
    expect(of('quinn')?.commands.map((c) => c.line)).toEqual(['uname -s']);
    expect(of('quinn')?.files).toEqual([]);
    expect(of('sami')?.files).toEqual([expect.objectContaining({ op: 'upload', path: path.join(remote, 'table.bin'), bytes: upload.length, sha256: sha256(upload), outcome: 'ok' })]);
    const csv = (await security.bytes('/api/records/export.csv?device=ct-q')).body.toString('utf8');
    expect(csv).toContain('uname -s');
    expect(csv).toContain(`sha256:${sha256(upload)}`);
    const cli = await fx.cli(['records', '--device', 'ct-q']);
    expect(cli.stdout).toContain('    $ ');
    expect(cli.stdout).toContain('"/bin/echo calibrated && ls /"');
    expect(cli.stdout).toContain(`file `);
  });

  it('reads the audit log newest first, a page at a time, with the filters still applied', async () => {
    type E = { seq: number; type: string; actor: string };
    const page = async (q: string): Promise<E[]> => (await security.get<{ entries: E[] }>(`/api/audit?order=desc&${q}`)).body.entries;
    const all = (await security.get<{ entries: E[] }>('/api/audit?limit=5000')).body.entries;
    const first = await page('limit=5');
    expect(first.map((e) => e.seq)).toEqual(all.slice(-5).reverse().map((e) => e.seq));
    const next = await page(`limit=5&before=${first.at(-1)?.seq ?? 0}`);
    expect(next.map((e) => e.seq)).toEqual(all.slice(-10, -5).reverse().map((e) => e.seq));
    const ends = await page('type=session.end&limit=2');
    expect(ends.map((e) => e.seq)).toEqual(all.filter((e) => e.type === 'session.end').slice(-2).reverse().map((e) => e.seq));
  });
});
