import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiClient } from '../support/api-client.js';
import type { DeviceSshd } from '../support/device-sshd.js';
import { startGatewayWithDevice, type GatewayFixture, type TestUser } from '../support/gateway-fixture.js';
import { startPrivateRedis, type PrivateRedis } from '../support/redis.js';
import { interactiveSsh, runSsh, type Interactive } from '../support/ssh-client.js';

/**
 * Failing closed (issue 3): while Redis is unreachable nobody new gets in, and they are told why;
 * live sessions go on and are recorded; the node reconnects by itself; and what happened during
 * the outage reaches the audit chain afterwards, once each.
 */
const interactive = (port: number, u: TestUser): Interactive => interactiveSsh({ port, login: `${u.name}#ct-01`, password: u.password, totpSecret: u.totpSecret });

describe('Redis goes away mid-session and comes back', () => {
  let redis: PrivateRedis;
  let fx: GatewayFixture;
  let device: DeviceSshd;

  beforeAll(async () => {
    redis = await startPrivateRedis();
    ({ fx, device } = await startGatewayWithDevice('ct-01', [
      '[store]', 'backend = "redis"', `url = "${redis.url}"`, 'prefix = "outage:"', 'command_timeout = "1s"',
      '[cluster]', 'heartbeat_interval = "250ms"', 'node_timeout = "2s"',
    ].join('\n')));
  });
  afterAll(async () => {
    await fx?.stop();
    await device?.stop();
    await redis?.close();
  });

  const ready = async (): Promise<number> => (await new ApiClient(fx.gw.web.port).get('/readyz')).status;

  it('refuses new sign-ins while it is down, keeps live sessions recording, and loses or doubles nothing', async () => {
    const alice = await fx.addUser('alice');
    const carol = await fx.addUser('carol');
    const bob = await fx.addUser('bob');
    await fx.grant('alice', 'ct-01', 'now', '+1h');
    await fx.grant('carol', 'ct-01', 'now', '+1h');
    await fx.grant('bob', 'ct-01', 'now', '+1h');

    const a = interactive(fx.sshPort, alice);
    const c = interactive(fx.sshPort, carol);
    a.type('echo before-$((1+1))\r');
    c.type('echo carol-$((5+5))\r');
    await Promise.all([a.waitFor('before-2'), c.waitFor('carol-10')]);
    expect(await ready()).toBe(200);

    await redis.stop();
    await expect.poll(ready, { timeout: 30_000 }).toBe(503);
    // Liveness is not readiness: the process is up, so a load balancer must not restart it.
    expect((await new ApiClient(fx.gw.web.port).get('/healthz')).status).toBe(200);

    // Live sessions go on, and go on being recorded.
    a.type('echo during-$((2+2))\r');
    await a.waitFor('during-4');
    // One session even ends during the outage: its end and its seal wait in the spool.
    c.type('exit\r');
    const carolRun = await c.done;
    expect(carolRun.code).toBe(0);

    // Nobody new gets in, and they are told why.
    const refused = await runSsh({ port: fx.sshPort, login: 'bob#ct-01', password: bob.password, totpSecret: bob.totpSecret, command: 'echo never' });
    expect(refused.code).toBe(255);
    expect(refused.stdout).toBe('');
    expect(refused.stderr).toContain('[STORE_UNAVAILABLE]');
    const apiLogin = await new ApiClient(fx.gw.web.port).login('bob', bob.password, { secret: bob.totpSecret });
    expect(apiLogin.status).toBe(503);
    expect(apiLogin.body.error?.code).toBe('STORE_UNAVAILABLE');
    const spoolDir = path.join(fx.config.dataDir, 'spool');
    // The session's end reaches the spool once the gateway has closed it, which follows the client's exit.
    await expect.poll(() => readdirSync(spoolDir).some((f) => readFileSync(path.join(spoolDir, f), 'utf8').includes('"endSession"')), { timeout: 30_000 }).toBe(true);

    // The node reconnects by itself.
    await redis.start();
    await expect.poll(ready, { timeout: 30_000, interval: 200 }).toBe(200);
    a.type('echo after-$((3+3))\r');
    await a.waitFor('after-6');
    a.type('exit\r');
    expect((await a.done).code).toBe(0);

    // The spool empties into the store, and every end is there once.
    await expect.poll(() => readdirSync(spoolDir).filter((f) => existsSync(path.join(spoolDir, f))).length, { timeout: 30_000 }).toBe(0);
    const sessions = await fx.gw.runtime.store.listSessions({ limit: 10 });
    for (const name of ['alice', 'carol']) {
      const s = sessions.find((x) => x.user === name);
      expect(s?.endReason, name).toBe('device_closed'); // `exit` ends the shell on the device
      const ends = (await fx.audit('session.end')).filter((e) => e.data.session === s?.id);
      const seals = (await fx.audit('recording.sealed')).filter((e) => e.data.session === s?.id);
      expect([ends.length, seals.length], name).toEqual([1, 1]);
      expect((await fx.gw.runtime.store.getRecording(s?.recordingId ?? ''))?.sha256).toBe(seals[0]?.data.sha256);
    }
    const refusals = (await fx.audit('login.refused')).filter((e) => e.code === 'STORE_UNAVAILABLE' && e.actor === 'bob');
    expect(refusals.length).toBeGreaterThanOrEqual(2);

    // Alice's recording holds what she saw before, during and after the outage.
    const s = sessions.find((x) => x.user === 'alice');
    const out = path.join(fx.dir, 'alice.cast');
    const exp = await fx.cli(['recording', 'export', s?.recordingId ?? '', '--format', 'asciicast', '-o', out]);
    expect(exp.code, exp.stderr).toBe(0);
    const cast = readFileSync(out, 'utf8');
    for (const text of ['before-2', 'during-4', 'after-6']) expect(cast).toContain(text);

    const verify = await fx.cli(['verify', '--json']);
    expect(verify.code, verify.stdout).toBe(0);
    expect((JSON.parse(verify.stdout) as { recordingsVerified: number }).recordingsVerified).toBe(2);
  });

  it('lets people in again once Redis is back', async () => {
    const dan = await fx.addUser('dan');
    await fx.grant('dan', 'ct-01', 'now', '+1h');
    const r = await runSsh({ port: fx.sshPort, login: 'dan#ct-01', password: dan.password, totpSecret: dan.totpSecret, command: 'echo back' });
    expect(r.stdout).toBe('back\n');
  });
});
