import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CLI, runCli } from '../support/gateway-fixture.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'pc-first-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function serve(config: string): Promise<{ stdout: string; stop: () => Promise<number | string>; web: number }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, 'serve', '--init-if-needed', '--config', config], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
      const m = /web on https:\/\/[^:]+:(\d+)/.exec(stdout);
      if (m) {
        resolve({
          stdout, web: Number(m[1]),
          // A death by signal shows which signal and what the gateway last wrote, not just "not 0".
          stop: () => new Promise((res) => {
            child.once('exit', (code, signal) => res(code ?? `killed by ${signal}; stderr: ${stderr.slice(-2000)}`));
            child.kill('SIGTERM');
          }),
        });
      }
    });
    child.once('exit', (code) => reject(new Error(`serve exited ${code}: ${stderr}`)));
  });
}

function getJson(port: number, p: string): Promise<{ status: number; body: unknown; headers: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    request({ host: '127.0.0.1', port, path: p, rejectUnauthorized: false, minVersion: 'TLSv1.2' }, (res) => {
      let text = '';
      res.on('data', (d: Buffer) => { text += d.toString(); });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text), headers: res.headers }));
    }).on('error', reject).end();
  });
}

describe('a fresh gateway starts with one command', () => {
  const config = path.join(dir, 'gateway.config.toml');
  writeFileSync(config, 'data_dir = "./state"\n[ssh]\nlisten = "127.0.0.1:0"\n[web]\nlisten = "127.0.0.1:0"\n');

  it('initialises keys, certificate and the first admin, then serves SSH and HTTPS', async () => {
    const gw = await serve(config);
    // The service log never carries the admin's secrets: they are in a 0600 file to read once.
    const firstAdmin = path.join(dir, 'state', 'first-admin.txt');
    expect(gw.stdout).toContain(firstAdmin);
    expect(gw.stdout).not.toMatch(/password: |otpauth:/);
    const secrets = readFileSync(firstAdmin, 'utf8');
    expect(secrets).toContain('First admin: admin');
    expect(secrets).toMatch(/password: \S{20,}/);
    expect(secrets).toMatch(/otpauth:\/\/totp\/Portcullis:admin\?secret=[A-Z2-7]+/);
    for (const f of ['master.key', 'ssh_host_ed25519_key', 'web-tls.key', 'first-admin.txt']) {
      expect((statSync(path.join(dir, 'state', f)).mode & 0o777).toString(8), f).toBe('600');
    }
    const health = await getJson(gw.web, '/healthz');
    expect(health).toMatchObject({ status: 200, body: { status: 'ok' } });
    expect(health.headers['strict-transport-security']).toBeDefined();
    expect(await getJson(gw.web, '/readyz')).toMatchObject({ status: 200, body: { status: 'ready' } });
    expect(await gw.stop()).toBe(0);
  });

  it('a second start reuses what is there and prints no new credentials', async () => {
    const gw = await serve(config);
    expect(gw.stdout).not.toContain('first admin account');
    expect(await gw.stop()).toBe(0);
    const audit = await runCli(['audit', '--json'], { config });
    const types = (JSON.parse(audit.stdout) as Array<{ type: string }>).map((e) => e.type);
    expect(types.filter((t) => t === 'gateway.started')).toHaveLength(2);
    expect(types.filter((t) => t === 'user.created')).toHaveLength(1);
  });

  it('a bad config key stops start-up with the file, the key and the reason', async () => {
    const bad = path.join(dir, 'bad.toml');
    writeFileSync(bad, 'data_dir = "./state"\n[ssh]\nlisten = "127.0.0.1:0"\nidle_timout = "5m"\n');
    const r = await runCli(['serve'], { config: bad });
    expect(r.code).toBe(78);
    expect(r.stderr).toContain(`${bad}: ssh.idle_timout: unknown key`);
  });

  it('never shows secrets: the master key and TOTP seeds are not in the log or the database in clear', async () => {
    const audit = await runCli(['audit', '--json'], { config });
    const key = (await import('node:fs')).readFileSync(path.join(dir, 'state', 'master.key'), 'utf8').trim();
    expect(audit.stdout).not.toContain(key);
    const db = (await import('node:fs')).readFileSync(path.join(dir, 'state', 'portcullis.db'));
    expect(db.includes(Buffer.from(key))).toBe(false);
  });
});
