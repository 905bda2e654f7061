import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../gateway/log/logger.js';
import { RedisStore } from '../../gateway/store/redis-store.js';
import type { AuditEntry } from '../../gateway/store/store.js';
import { ApiClient, TotpSource } from '../support/api-client.js';
import { freePort, type DeviceSshd } from '../support/device-sshd.js';
import { CLI, startGatewayFixture, startGatewayWithDevice, TEST_POLICY_TOML, type GatewayFixture } from '../support/gateway-fixture.js';
import { TEST_REDIS_URL, uniquePrefix } from '../support/redis.js';
import { runSsh } from '../support/ssh-client.js';

/**
 * Issue 3, two promises of the Redis backend: it speaks TLS (`rediss://`, trusting the CA named
 * by `store.tls_ca`) and refuses to start, saying why, when the URL or the certificate is wrong;
 * and several deployments share one Redis by `prefix` without seeing or touching each other.
 * A redis-server of the test's own serves TLS only (its plain port is off), with certificates
 * made by openssl; the prefix half runs on the suite's ordinary Redis.
 */
const dir = mkdtempSync(path.join(os.tmpdir(), 'pc-redis-tls-'));
const file = (name: string): string => path.join(dir, name);

function openssl(...args: string[]): void {
  execFileSync('openssl', args, { stdio: 'pipe' });
}

/** A CA, and a server certificate it signed for 127.0.0.1 (the name node checks against the URL's host). */
function makeCertificates(): void {
  for (const ca of ['ca', 'other-ca']) {
    openssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', file(`${ca}.key`), '-out', file(`${ca}.crt`),
      '-days', '2', '-subj', `/CN=Portcullis test ${ca}`);
  }
  openssl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', file('redis.key'), '-out', file('redis.csr'), '-subj', '/CN=127.0.0.1');
  writeFileSync(file('redis.ext'), 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n');
  openssl('x509', '-req', '-in', file('redis.csr'), '-CA', file('ca.crt'), '-CAkey', file('ca.key'), '-CAcreateserial', '-out', file('redis.crt'),
    '-days', '2', '-extfile', file('redis.ext'));
}

function tlsCli(port: number, ...args: string[]): string {
  return execFileSync('redis-cli', ['--tls', '--cacert', file('ca.crt'), '-h', '127.0.0.1', '-p', String(port), ...args], { encoding: 'utf8', stdio: 'pipe' }).trim();
}

/** redis-server with TLS on `port` and no plain-TCP port at all, so whatever reaches it came over TLS. */
async function startTlsRedis(port: number): Promise<ChildProcess> {
  const child = spawn('redis-server', ['--port', '0', '--tls-port', String(port), '--bind', '127.0.0.1',
    '--tls-cert-file', file('redis.crt'), '--tls-key-file', file('redis.key'), '--tls-ca-cert-file', file('ca.crt'), '--tls-auth-clients', 'no',
    '--save', '', '--appendonly', 'no', '--dir', dir, '--logfile', file('redis.log')], { stdio: 'ignore' });
  for (let i = 0; i < 100; i++) {
    if (child.exitCode !== null) throw new Error(`redis-server exited with ${child.exitCode}`);
    try {
      if (tlsCli(port, 'PING') === 'PONG') return child;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  child.kill('SIGTERM');
  throw new Error('redis-server with TLS did not answer');
}

async function stopProcess(child: ChildProcess | undefined): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  await exited;
}

/**
 * `portcullis serve` that is expected to refuse to start: its exit code and what it said. One that
 * serves after all, or hangs, is killed (after 20 s at most) and reported as such.
 */
function serveOnce(configFile: string): Promise<string> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, 'serve', '--config', configFile], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    const timer = setTimeout(() => { out += '[still starting after 20 s]'; child.kill('SIGKILL'); }, 20_000);
    child.stderr.on('data', (d: Buffer) => { out += d.toString(); });
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('Portcullis is serving')) child.kill('SIGTERM');
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      resolve(`exit ${code ?? signal}: ${out}`);
    });
  });
}

describe('the Redis store over TLS (rediss://)', () => {
  let redis: ChildProcess | undefined;
  let port = 0;
  let fx: GatewayFixture;
  let device: DeviceSshd;
  const prefix = uniquePrefix();
  const totp = new TotpSource();

  beforeAll(async () => {
    makeCertificates();
    port = await freePort();
    redis = await startTlsRedis(port);
    ({ fx, device } = await startGatewayWithDevice('ct-01', [
      '[store]', 'backend = "redis"', `url = "rediss://127.0.0.1:${port}/0"`, `prefix = "${prefix}"`, `tls_ca = "${file('ca.crt')}"`,
    ].join('\n')));
  });
  afterAll(async () => {
    await fx?.stop();
    await device?.stop();
    await stopProcess(redis);
    rmSync(dir, { recursive: true, force: true });
  });

  it('signs in through the API, records an SSH session and verifies the chain, with Redis reachable over TLS only', async () => {
    const api = new ApiClient(fx.gw.web.port);
    expect((await api.get('/readyz')).status).toBe(200);
    const sue = await fx.addUser('sue', ['security']);
    const login = await api.login(sue.name, sue.password, { code: await totp.code(sue.totpSecret) });
    expect(login.status, JSON.stringify(login.body)).toBe(200);

    const vic = await fx.addUser('vic');
    await fx.grant('vic', 'ct-01', 'now', '+1h');
    const r = await runSsh({ port: fx.sshPort, login: 'vic#ct-01', password: vic.password, totpSecret: vic.totpSecret, command: 'echo over-tls-$((6*7))' });
    expect(r.stdout).toBe('over-tls-42\n');
    expect(r.code).toBe(0);
    await expect.poll(async () => (await fx.audit('session.end')).filter((e) => e.actor === 'vic').length, { timeout: 30_000 }).toBe(1);
    const sessions = await api.get<{ sessions: Array<{ user: string; device: string }> }>('/api/sessions');
    expect(sessions.body.sessions.some((s) => s.user === 'vic' && s.device === 'ct-01')).toBe(true);

    // The CLI (a separate process, dist/) reads the same chain over TLS; the recording is sealed into it.
    const verified = await fx.cli(['verify', '--json']);
    expect(verified.code, verified.stdout + verified.stderr).toBe(0);
    const report = JSON.parse(verified.stdout) as { ok: boolean; recordingsVerified: number; auditEntries: number };
    expect(report.ok).toBe(true);
    expect(report.recordingsVerified).toBeGreaterThanOrEqual(1);

    // Everything went to the TLS server: it has no plain port, and it holds the prefix's keys.
    expect(tlsCli(port, 'CONFIG', 'GET', 'port').split('\n')).toEqual(['port', '0']);
    expect(tlsCli(port, '--scan', '--pattern', `${prefix}*`).split('\n').length).toBeGreaterThan(5);
  });

  it('refuses to start, naming the cause, when the URL, the CA or tls_ca is wrong', async () => {
    const attempt = async (name: string, store: string[]): Promise<{ message: string; ms: number }> => {
      const cfg = file(`${name}.toml`);
      writeFileSync(cfg, [
        `data_dir = "${path.join(fx.dir, 'data')}"`, '[ssh]', 'listen = "127.0.0.1:0"', '[web]', 'listen = "127.0.0.1:0"',
        '[store]', 'backend = "redis"', `prefix = "${prefix}"`, ...store, TEST_POLICY_TOML,
      ].join('\n'));
      const t0 = Date.now();
      const message = await serveOnce(cfg);
      return { message, ms: Date.now() - t0 };
    };
    writeFileSync(file('not-a-cert.pem'), 'hello\n');
    const [plain, noCa, otherCa, missingCa, caOnPlain, notPem] = await Promise.all([
      attempt('plain-to-tls-port', [`url = "redis://127.0.0.1:${port}/0"`]),
      attempt('no-ca', [`url = "rediss://127.0.0.1:${port}/0"`]),
      attempt('other-ca', [`url = "rediss://127.0.0.1:${port}/0"`, `tls_ca = "${file('other-ca.crt')}"`]),
      attempt('missing-ca', [`url = "rediss://127.0.0.1:${port}/0"`, `tls_ca = "${file('missing.crt')}"`]),
      attempt('ca-on-plain', [`url = "redis://127.0.0.1:${port}/0"`, `tls_ca = "${file('ca.crt')}"`]),
      attempt('not-pem', [`url = "rediss://127.0.0.1:${port}/0"`, `tls_ca = "${file('not-a-cert.pem')}"`]),
    ]);

    // Redis answers, but not as the URL says: the store is unreachable (exit 1), and the message says what to change.
    expect(plain.message).toMatch(/^exit 1: /);
    expect(plain.message).toContain(`the state store is unreachable: redis://127.0.0.1:${port}/0`);
    expect(plain.message).toContain('if that port expects TLS, use a rediss:// URL');
    for (const untrusted of [noCa, otherCa]) {
      expect(untrusted.message).toMatch(/^exit 1: /);
      expect(untrusted.message).toContain(`the state store is unreachable: rediss://127.0.0.1:${port}/0`);
      expect(untrusted.message).toMatch(/self-signed certificate|unable to verify/);
      expect(untrusted.message).toContain('set store.tls_ca to the CA certificate that signed it');
    }
    // A wrong tls_ca is a configuration error (exit 78, EX_CONFIG) naming the file, the key and the reason.
    expect(missingCa.message).toMatch(/^exit 78: /);
    expect(missingCa.message).toContain(`invalid configuration: ${file('missing-ca.toml')}: store.tls_ca: cannot read ${file('missing.crt')} (ENOENT)`);
    expect(caOnPlain.message).toMatch(/^exit 78: /);
    expect(notPem.message).toMatch(/^exit 78: /);
    expect(caOnPlain.message).toContain(`invalid configuration: ${file('ca-on-plain.toml')}: store.tls_ca: a CA certificate is for TLS, but the Redis URL is redis:// (plain TCP); use rediss://`);
    expect(notPem.message).toContain(`invalid configuration: ${file('not-pem.toml')}: store.tls_ca: ${file('not-a-cert.pem')} holds no PEM certificate`);
    // Failing, not retrying for ever: start-up gives its answer at once.
    for (const a of [plain, noCa, otherCa, missingCa, caOnPlain, notPem]) expect(a.ms).toBeLessThan(15_000);
    // The refused starts changed nothing for the gateway already running on this Redis: it is still ready.
    expect((await new ApiClient(fx.gw.web.port).get('/readyz')).status).toBe(200);
  });
});

/** The suite's ordinary Redis, in a database of its own, so that every key appearing in it during the test is ours to account for. */
function isolatedDbUrl(): string {
  const u = new URL(TEST_REDIS_URL);
  u.pathname = '/13';
  return u.toString();
}

function redisCliKeys(url: string): Set<string> {
  const out = execFileSync('redis-cli', ['-u', url, '--scan'], { encoding: 'utf8' }).trim();
  return new Set(out ? out.split('\n') : []);
}

describe('two deployments on one Redis, kept apart by prefix', () => {
  const url = isolatedDbUrl();
  const prefixA = uniquePrefix();
  const prefixB = uniquePrefix();
  let a: GatewayFixture;
  let b: GatewayFixture;
  let before: Set<string>;
  const totp = new TotpSource();

  beforeAll(async () => {
    before = redisCliKeys(url);
    const store = (p: string): string => ['[store]', 'backend = "redis"', `url = "${url}"`, `prefix = "${p}"`].join('\n');
    // Both take the default node id (the host name): a shared registry of nodes would refuse the second.
    a = await startGatewayFixture(store(prefixA));
    b = await startGatewayFixture(store(prefixB));
  });
  afterAll(async () => {
    await a?.stop();
    await b?.stop();
    // After the stop: a gateway's last act is its gateway.stopped audit entry.
    for (const prefix of [prefixA, prefixB]) {
      const s = await RedisStore.open({ url, prefix, log: createLogger('error') });
      await s.dropAll();
      await s.close();
    }
  });

  it('shows neither one\'s users, devices nor web sessions to the other, and each audit chain verifies alone', async () => {
    const olga = await a.addUser('olga', ['security']);
    const quinn = await b.addUser('quinn', ['security']);
    const dev = await a.cli(['device', 'add', 'mri-a1', '--host', '127.0.0.1', '--port', '22', '--protocol', 'ssh', '--udi', 'UDI-mri-a1',
      '--usage-form', 'laboratory', '--contact', 'none', '--effect', 'none']);
    expect(dev.code, dev.stderr).toBe(0);

    const apiA = new ApiClient(a.gw.web.port);
    const apiB = new ApiClient(b.gw.web.port);
    expect((await apiA.login(olga.name, olga.password, { code: await totp.code(olga.totpSecret) })).status).toBe(200);
    expect((await apiB.login(quinn.name, quinn.password, { code: await totp.code(quinn.totpSecret) })).status).toBe(200);
    // olga does not exist for B: signing in there is refused.
    expect((await new ApiClient(b.gw.web.port).login(olga.name, olga.password, { code: await totp.code(olga.totpSecret) })).status).toBe(401);

    const usersA = (await apiA.get<{ users: Array<{ name: string }> }>('/api/users')).body.users.map((u) => u.name);
    const usersB = (await apiB.get<{ users: Array<{ name: string }> }>('/api/users')).body.users.map((u) => u.name);
    expect(usersA).toContain('olga');
    expect(usersA).not.toContain('quinn');
    expect(usersB).toContain('quinn');
    expect(usersB).not.toContain('olga');
    expect((await apiA.get('/api/devices/mri-a1')).status).toBe(200);
    expect((await apiB.get('/api/devices/mri-a1')).status).toBe(404);
    expect(await b.gw.runtime.store.getDevice('mri-a1')).toBeNull();

    // A's web session cookie means nothing to B.
    const stolen = new ApiClient(b.gw.web.port);
    stolen.cookie = apiA.cookie;
    expect((await stolen.get('/api/users')).status).toBe(401);

    for (const [fx, mine, theirs] of [[a, 'olga', 'quinn'], [b, 'quinn', 'olga']] as const) {
      const v = await fx.cli(['verify', '--json']);
      expect(v.code, v.stdout + v.stderr).toBe(0);
      expect((JSON.parse(v.stdout) as { ok: boolean }).ok).toBe(true);
      const entries = await fx.audit();
      const mentions = (name: string): AuditEntry[] => entries.filter((e) => e.actor === name || JSON.stringify(e.data).includes(`"${name}"`));
      expect(mentions(mine).length).toBeGreaterThan(0);
      // The other deployment's work is not in this chain; only olga's refused attempt on B is B's own record.
      expect(mentions(theirs).map((e) => `${e.type}:${e.outcome}`)).toEqual(fx === b ? ['login.failed:denied'] : []);
    }

    // Every key that appeared was written under one of the two prefixes, and each has its own.
    const added = [...redisCliKeys(url)].filter((k) => !before.has(k));
    expect(added.filter((k) => !k.startsWith(prefixA) && !k.startsWith(prefixB))).toEqual([]);
    expect(added.filter((k) => k.startsWith(prefixA)).length).toBeGreaterThan(5);
    expect(added.filter((k) => k.startsWith(prefixB)).length).toBeGreaterThan(5);
    // Each deployment listens on its own bus channel.
    const numsub = execFileSync('redis-cli', ['-u', url, 'PUBSUB', 'NUMSUB', `${prefixA}bus`, `${prefixB}bus`], { encoding: 'utf8' }).trim().split('\n');
    expect(Number(numsub[1])).toBeGreaterThanOrEqual(1);
    expect(Number(numsub[3])).toBeGreaterThanOrEqual(1);
  });
});
