import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiClient, TotpSource } from '../support/api-client.js';
import type { DeviceSshd } from '../support/device-sshd.js';
import { startGatewayWithDevice, type GatewayFixture, type TestUser } from '../support/gateway-fixture.js';
import { startPrivateRedis, type PrivateRedis } from '../support/redis.js';
import { interactiveSsh } from '../support/ssh-client.js';
import { openSocket } from '../support/web-socket.js';

/**
 * Issue 3, the deployment the README recommends: the gateway's Redis user may reach only its own
 * prefix (keys and pub/sub channels) and the commands the gateway uses, with the URL and its
 * password read from a 0600 file. Everything a node does works under that ACL (sign-in, TOTP
 * replay memory, a recorded session, live watch over the bus, kill, verify); another prefix's
 * keys are out of its reach; and the password shows in no log line.
 */
const PASSWORD = 'redis-acl-secret-9f2c';
const PREFIX = 'hospital-a:';

function redisCli(port: number, ...args: string[]): string {
  return execFileSync('redis-cli', ['-p', String(port), ...args], { encoding: 'utf8' }).trim();
}

describe('a gateway on a Redis user limited to its own prefix', () => {
  let redis: PrivateRedis;
  let fx: GatewayFixture;
  let device: DeviceSshd;
  const dir = mkdtempSync(path.join(os.tmpdir(), 'pc-redis-acl-'));
  const totp = new TotpSource();
  let vendor: TestUser;
  let securityApi: ApiClient;

  beforeAll(async () => {
    redis = await startPrivateRedis();
    // The README's ACL, word for word apart from the password and prefix.
    redisCli(redis.port, 'ACL', 'SETUSER', 'portcullis', 'on', `>${PASSWORD}`, 'resetkeys', `~${PREFIX}*`, 'resetchannels', `&${PREFIX}*`,
      '-@all', '+@read', '+@write', '+@pubsub', '+@scripting', '+@connection', '+@transaction', '-@dangerous', '+wait', '+info');
    redisCli(redis.port, 'SET', 'hospital-b:users:ada', 'not yours');
    const urlFile = path.join(dir, 'redis-url');
    writeFileSync(urlFile, `redis://portcullis:${PASSWORD}@127.0.0.1:${redis.port}/0\n`, { mode: 0o600 });
    ({ fx, device } = await startGatewayWithDevice('ct-01', ['[store]', 'backend = "redis"', `url_file = "${urlFile}"`, `prefix = "${PREFIX}"`].join('\n')));
    vendor = await fx.addUser('vic');
    await fx.grant('vic', 'ct-01', 'now', '+1h');
    const sec = await fx.addUser('sue', ['security']);
    securityApi = new ApiClient(fx.gw.web.port);
    await securityApi.login(sec.name, sec.password, { code: await totp.code(sec.totpSecret) });
  });
  afterAll(async () => {
    await fx?.stop();
    await device?.stop();
    await redis?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('signs in, records, watches live over the bus, kills and verifies with no more rights than that', async () => {
    const code = await totp.code(vendor.totpSecret);
    const s = interactiveSsh({ port: fx.sshPort, login: 'vic#ct-01', password: vendor.password, totpCode: code });
    await s.waitFor('# ');
    const live = await securityApi.get<{ sessions: Array<{ id: string; user: string; node: string }> }>('/api/sessions?open=true');
    const session = live.body.sessions.find((x) => x.user === 'vic');
    expect(session?.node).toBeTruthy();
    const watch = await openSocket(fx.gw.web.port, `/api/sessions/${session?.id}/watch`, securityApi);
    s.type('echo acl-$((40+2))\r');
    await watch.waitFor(() => watch.text().includes('acl-42'));
    expect((await securityApi.post(`/api/sessions/${session?.id}/kill`, { reason: 'end of test' })).status).toBe(202);
    expect((await s.done).stderr).toContain('[SESSION_KILLED]');

    // The code just used is remembered in Redis under the prefix: a second sign-in with it is refused.
    const replay = interactiveSsh({ port: fx.sshPort, login: 'vic#ct-01', password: vendor.password, totpCode: code });
    expect((await replay.done).stderr).toMatch(/TOTP_REPLAYED|AUTH_FAILED/);

    const verified = await fx.cli(['verify']);
    expect(verified.code, verified.stderr).toBe(0);
    expect(redisCli(redis.port, '--scan', '--pattern', `${PREFIX}*`).split('\n').length).toBeGreaterThan(5);
  });

  it('cannot reach another deployment\'s keys, and never logs the password', async () => {
    const other = execFileSync('redis-cli', ['-p', String(redis.port), '--user', 'portcullis', '--pass', PASSWORD, '--no-auth-warning', 'GET', 'hospital-b:users:ada'], { encoding: 'utf8' });
    expect(other).toContain('NOPERM');
    expect(fx.logs.some((l) => l.includes(PASSWORD))).toBe(false);
    expect(fx.logs.join('\n')).not.toContain(`portcullis:${PASSWORD}`);
  });
});
