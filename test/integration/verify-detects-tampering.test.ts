import Database from 'better-sqlite3';
import { appendFileSync, copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { DeviceSshd } from '../support/device-sshd.js';
import { startGatewayWithDevice, type GatewayFixture } from '../support/gateway-fixture.js';
import { runSsh } from '../support/ssh-client.js';
import { createClient, type RedisClientType } from 'redis';
import { openTestRedisStore, TEST_REDIS_URL, uniquePrefix } from '../support/redis.js';

// S-3.5, R-5.5d: hash-chained audit and sealed recordings; `portcullis verify` names the first bad one.
describe('portcullis verify', () => {
  let device: DeviceSshd;
  let fx: GatewayFixture;
  let recordingFile = '';
  let recordingId = '';

  beforeAll(async () => {
    ({ fx, device } = await startGatewayWithDevice('lab-7'));
    const u = await fx.addUser('carol');
    await fx.grant('carol', 'lab-7', 'now', '+1h');
    const r = await runSsh({ port: fx.sshPort, login: 'carol#lab-7', password: u.password, totpSecret: u.totpSecret, command: 'echo evidence' });
    expect(r.stdout).toBe('evidence\n');
    await vi.waitFor(async () => expect((await fx.gw.runtime.store.listRecordings()).some((x) => x.sealedAt !== null)).toBe(true));
    const rec = (await fx.gw.runtime.store.listRecordings())[0];
    recordingId = rec?.id ?? '';
    recordingFile = path.join(fx.config.paths.recordings, rec?.path ?? '');
  });
  afterAll(async () => {
    await fx?.stop();
    await device?.stop();
  });

  it('passes on an untouched gateway', async () => {
    const r = await fx.cli(['verify']);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toContain('OK');
  });

  it('fails on an edited recording, naming the file', async () => {
    const backup = `${recordingFile}.bak`;
    copyFileSync(recordingFile, backup);
    appendFileSync(recordingFile, Buffer.from([0]));
    const r = await fx.cli(['verify']);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain(`recording ${recordingId}`);
    expect(r.stdout).toContain(recordingFile);
    expect(r.stdout).toContain('SHA-256 does not match');
    copyFileSync(backup, recordingFile);
    expect((await fx.cli(['verify'])).code).toBe(0);
  });

  it('catches a cut-off tail with an anchor kept outside the store (the log line of a later entry)', async () => {
    const anchorLine = fx.logs.map((l) => JSON.parse(l) as { audit?: { seq: number; hash: string } }).filter((l) => l.audit).at(-1)?.audit;
    expect(anchorLine?.hash).toMatch(/^[0-9a-f]{64}$/);
    const copy = path.join(fx.dir, 'cut.db');
    const live = new Database(fx.config.paths.database);
    live.prepare('VACUUM INTO ?').run(copy);
    live.close();
    const db = new Database(copy);
    db.exec('DROP TRIGGER IF EXISTS audit_no_delete');
    db.prepare('DELETE FROM audit WHERE seq >= ?').run(anchorLine?.seq ?? 0);
    db.close();
    const cfg = path.join(fx.dir, 'cut.toml');
    writeFileSync(cfg, readFileSync(fx.configFile, 'utf8').replace('[ssh]', `[store]\npath = "${copy}"\n[ssh]`));
    const { runCli } = await import('../support/gateway-fixture.js');
    const anchor = `${anchorLine?.seq}:${anchorLine?.hash}`;
    // Without the anchor a cut-off chain still looks whole; with it, the cut shows.
    expect((await runCli(['verify'], { config: cfg })).code).toBe(0);
    const r = await runCli(['verify', '--anchor', anchor], { config: cfg });
    expect(r.code).toBe(1);
    expect(r.stdout).toContain(`audit entry ${anchorLine?.seq}: missing, but anchored outside the store`);
    expect((await runCli(['verify', '--anchor', 'nonsense'], { config: cfg })).code).toBe(2);
  });

  it('fails on an edited audit row, naming the entry (after someone bypasses the append-only trigger)', async () => {
    const db = new Database(fx.config.paths.database);
    try {
      // The database itself refuses edits to the audit trail...
      expect(() => db.prepare("UPDATE audit SET actor = 'mallory' WHERE seq = 2").run()).toThrow(/append-only/);
      // ...so an attacker with file access drops the trigger first; the chain still catches it.
      db.exec('DROP TRIGGER audit_no_update');
      const row = db.prepare("SELECT seq, data FROM audit WHERE type = 'session.start' LIMIT 1").get() as { seq: number; data: string };
      const data = JSON.parse(row.data) as Record<string, unknown>;
      data.command = 'echo nothing to see';
      db.prepare('UPDATE audit SET data = ? WHERE seq = ?').run(JSON.stringify(data), row.seq);
      const r = await fx.cli(['verify', '--json']);
      expect(r.code).toBe(1);
      const report = JSON.parse(r.stdout) as { ok: boolean; problems: string[] };
      expect(report.ok).toBe(false);
      expect(report.problems[0]).toBe(`audit entry ${row.seq}: content does not match its hash (the entry was edited)`);
    } finally {
      db.close();
    }
  });

  it('fails when an audit row is deleted', async () => {
    const copy = path.join(fx.dir, 'copy.db');
    const live = new Database(fx.config.paths.database);
    live.prepare('VACUUM INTO ?').run(copy); // a consistent copy, WAL included
    live.close();
    const db = new Database(copy);
    db.exec('DROP TRIGGER IF EXISTS audit_no_delete');
    db.prepare('DELETE FROM audit WHERE seq = 3').run();
    db.close();
    const cfg = path.join(fx.dir, 'copy.toml');
    writeFileSync(cfg, readFileSync(fx.configFile, 'utf8').replace('[ssh]', `[store]\npath = "${copy}"\n[ssh]`));
    const { runCli } = await import('../support/gateway-fixture.js');
    const r = await runCli(['verify'], { config: cfg });
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('audit entry 4: sequence gap');
  });
});

// The same guarantees on the Redis backend: Redis cannot refuse an edit the way SQLite's triggers
// do, so the chain (and anchors kept elsewhere) are what catch it.
describe('portcullis verify on the Redis backend', () => {
  let device: DeviceSshd;
  let fx: GatewayFixture;
  let raw: RedisClientType;
  const prefix = uniquePrefix();

  beforeAll(async () => {
    ({ fx, device } = await startGatewayWithDevice('lab-8', ['[store]', 'backend = "redis"', `url = "${TEST_REDIS_URL}"`, `prefix = "${prefix}"`].join('\n')));
    const u = await fx.addUser('dave');
    await fx.grant('dave', 'lab-8', 'now', '+1h');
    const r = await runSsh({ port: fx.sshPort, login: 'dave#lab-8', password: u.password, totpSecret: u.totpSecret, command: 'echo evidence' });
    expect(r.stdout).toBe('evidence\n');
    await vi.waitFor(async () => expect((await fx.gw.runtime.store.listRecordings()).some((x) => x.sealedAt !== null)).toBe(true));
    raw = createClient({ url: TEST_REDIS_URL }) as RedisClientType;
    await raw.connect();
  });
  afterAll(async () => {
    await raw?.close();
    await fx?.stop();
    await device?.stop();
    const store = await openTestRedisStore(prefix);
    await store.dropAll();
    await store.close();
  });

  it('passes untouched, and names an edited audit entry', async () => {
    expect((await fx.cli(['verify'])).code).toBe(0);
    const entries = `${prefix}audit:entries`;
    const seq = (await fx.audit('session.start'))[0]?.seq ?? 0;
    const original = await raw.hGet(entries, String(seq)) as string;
    const edited = JSON.parse(original) as { data: Record<string, unknown> };
    edited.data.command = 'echo nothing to see';
    await raw.hSet(entries, String(seq), JSON.stringify(edited));
    const r = await fx.cli(['verify', '--json']);
    expect(r.code).toBe(1);
    expect((JSON.parse(r.stdout) as { problems: string[] }).problems[0]).toBe(`audit entry ${seq}: content does not match its hash (the entry was edited)`);
    await raw.hSet(entries, String(seq), original);
    expect((await fx.cli(['verify'])).code).toBe(0);
  });

  it('catches a deleted entry', async () => {
    const entries = `${prefix}audit:entries`;
    const original = await raw.hGet(entries, '3') as string;
    await raw.hDel(entries, '3');
    const r = await fx.cli(['verify']);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('audit entry 4: sequence gap');
    await raw.hSet(entries, '3', original);
  });
});
