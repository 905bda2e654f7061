import os from 'node:os';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiClient, TotpSource } from '../support/api-client.js';
import { startGatewayFixture, type GatewayFixture, type TestUser } from '../support/gateway-fixture.js';

type Entry = { seq: number; ts: string; type: string; actor: string; outcome: string; data: Record<string, unknown>; channel: string | null; source: string | null };

/**
 * Security's questions of the audit log (R-A.5a, S-1.3) through the API the console's audit page
 * uses: what did this person do, which decisions were refusals, what happened on a day, what
 * touched this device — each answered by filters the store applies, in chain order.
 */
describe('the audit log, filtered', () => {
  let fx: GatewayFixture;
  const totp = new TotpSource();
  let security: ApiClient;
  let vendor: TestUser;

  const audit = async (q: string): Promise<Entry[]> => {
    const r = await security.get<{ entries: Entry[] }>(`/api/audit?limit=5000&${q}`);
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    return r.body.entries;
  };

  beforeAll(async () => {
    fx = await startGatewayFixture();
    const sec = await fx.addUser('sec-audit', ['security']);
    security = new ApiClient(fx.gw.web.port);
    await security.login(sec.name, sec.password, { code: await totp.code(sec.totpSecret) });
    vendor = await fx.addUser('mallory');
    // Three refused sign-ins of mallory's, one of someone unknown.
    for (let i = 0; i < 3; i++) expect((await new ApiClient(fx.gw.web.port).post('/api/auth/login', { username: 'mallory', password: `wrong-${i}` })).status).toBe(401);
    expect((await new ApiClient(fx.gw.web.port).post('/api/auth/login', { username: 'nobody-here', password: 'x' })).status).toBe(401);
    const dev = await fx.cli(['device', 'add', 'audit-ct-9', '--host', '127.0.0.1', '--port', '22', '--protocol', 'ssh', '--udi', 'UDI-AUDIT-9',
      '--usage-form', 'laboratory', '--contact', 'none', '--effect', 'indirect']);
    expect(dev.code, dev.stderr).toBe(0);
  });
  afterAll(async () => {
    await fx?.stop();
  });

  it('answers by actor and outcome, in chain order', async () => {
    const refused = await audit('actor=mallory&outcome=denied');
    expect(refused.length).toBeGreaterThanOrEqual(3);
    expect(refused.every((e) => e.actor === 'mallory' && e.outcome === 'denied')).toBe(true);
    expect(refused.map((e) => e.seq)).toEqual([...refused.map((e) => e.seq)].sort((a, b) => a - b));
    const all = await audit('');
    expect(refused).toEqual(all.filter((e) => e.actor === 'mallory' && e.outcome === 'denied'));
    expect(await audit('actor=mallory&outcome=ok')).toEqual(all.filter((e) => e.actor === 'mallory' && e.outcome === 'ok'));
    expect(vendor.name).toBe('mallory');
  });

  it('answers by time (both ends inclusive) and by a literal text in the details', async () => {
    const all = await audit('');
    const mid = all[Math.floor(all.length / 2)] as Entry;
    const from = encodeURIComponent(mid.ts);
    expect(await audit(`from=${from}`)).toEqual(all.filter((e) => e.ts >= mid.ts));
    expect(await audit(`to=${from}`)).toEqual(all.filter((e) => e.ts <= mid.ts));
    expect(await audit(`from=${encodeURIComponent(new Date(Date.now() + 3_600_000).toISOString())}`)).toEqual([]);
    const device = await audit('text=audit-ct-9');
    expect(device.length).toBeGreaterThan(0);
    expect(device.every((e) => JSON.stringify(e.data).includes('audit-ct-9'))).toBe(true);
    expect(device.map((e) => e.type)).toContain('device.created');
    // Literal: a wildcard character matches only itself.
    expect(await audit('text=audit-ct-%25')).toEqual([]);
  });

  it('answers by channel: the door each entry came in by, with its source (issue 13)', async () => {
    const all = await audit('');
    const web = await audit('channel=web');
    expect(web).toEqual(all.filter((e) => e.channel === 'web'));
    expect(web.filter((e) => e.type === 'login.failed' && e.actor === 'mallory').map((e) => e.source)).toEqual(['127.0.0.1', '127.0.0.1', '127.0.0.1']);
    const cli = await audit('channel=cli');
    expect(cli.map((e) => [e.type, e.data.name, e.source])).toEqual([['device.created', 'audit-ct-9', os.userInfo().username]]);
    expect(await audit('channel=sso')).toEqual([]);
    expect((await security.get('/api/audit?channel=telnet')).status).toBe(400);
  });

  it('refuses malformed filters with the field named, and the log to a vendor', async () => {
    const bad = await security.get<{ error: { code: string; message: string; detail?: string } }>('/api/audit?outcome=maybe');
    expect(bad.status).toBe(400);
    expect(bad.body.error.code).toBe('INVALID_INPUT');
    expect(JSON.stringify(bad.body.error)).toContain('outcome');
    expect((await security.get<{ error: { code: string } }>('/api/audit?from=yesterday')).body.error.code).toBe('INVALID_INPUT');
    const other = await fx.addUser('vera');
    const v = new ApiClient(fx.gw.web.port);
    await v.login(other.name, other.password, { code: await totp.code(other.totpSecret) });
    expect((await v.get('/api/audit?actor=mallory')).status).toBe(403);
  });
});
