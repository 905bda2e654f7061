import { request } from 'node:https';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { confirmRoleChange } from '../../gateway/identity/role-changes.js';
import { ApiClient, oathtoolCode, TotpSource } from '../support/api-client.js';
import type { DeviceSshd } from '../support/device-sshd.js';
import { startGatewayWithDevice, type GatewayFixture, type TestUser } from '../support/gateway-fixture.js';
import { openSocket } from '../support/web-socket.js';

/**
 * The web console's own front doors, from a client's side: TOTP enrolment at first sign-in, the
 * browser terminal into the session broker (same checks, recording and enforcement as SSH), live
 * watch from security, the event stream, and replay of the recording (R-A.4d, R-A.5b, R-A.3e).
 */
describe('the web console\'s terminal, watch, events and replay', () => {
  let fx: GatewayFixture;
  let device: DeviceSshd;
  const totp = new TotpSource();
  let vendor: TestUser;
  let vendorApi: ApiClient;
  let securityApi: ApiClient;

  beforeAll(async () => {
    ({ fx, device } = await startGatewayWithDevice('mon-7'));
    vendor = await fx.addUser('wendy');
    await fx.grant('wendy', 'mon-7', 'now', '+1h');
    vendorApi = new ApiClient(fx.gw.web.port);
    await vendorApi.login(vendor.name, vendor.password, { code: await totp.code(vendor.totpSecret) });
    const sec = await fx.addUser('sally', ['security']);
    securityApi = new ApiClient(fx.gw.web.port);
    await securityApi.login(sec.name, sec.password, { code: await totp.code(sec.totpSecret) });
  });
  afterAll(async () => {
    await fx?.stop();
    await device?.stop();
  });

  it('enrols TOTP at the first sign-in: the password alone gets an enrolment, the first code finishes it', async () => {
    const admin = await fx.addUser('ada', ['admin']);
    const adminApi = new ApiClient(fx.gw.web.port);
    await adminApi.login(admin.name, admin.password, { code: await totp.code(admin.totpSecret) });
    const created = await adminApi.post<{ otpauthUri: string | null; user: { totpEnrolled: boolean }; pendingChange: { id: string } }>('/api/users', {
      name: 'newbie', roles: ['security'], password: 'a long first password', enrolOnFirstSignIn: true,
    });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ otpauthUri: null, user: { totpEnrolled: false, roles: [] }, pendingChange: { added: ['security'] } });
    // The security role waits for a second admin (S-1.3): init's admin confirms it.
    await confirmRoleChange(fx.gw.runtime, created.body.pendingChange.id, 'admin');

    const c = new ApiClient(fx.gw.web.port);
    expect((await c.post<{ error: { code: string } }>('/api/auth/login', { username: 'newbie', password: 'wrong password here' })).body.error.code).toBe('AUTH_FAILED');
    const started = await c.post<{ enrolment: { token: string; otpauthUri: string; secret: string } }>('/api/auth/login', { username: 'newbie', password: 'a long first password' });
    expect(started.status).toBe(200);
    const { token, otpauthUri, secret } = started.body.enrolment;
    expect(new URL(otpauthUri).searchParams.get('secret')).toBe(secret);
    expect(c.cookie).toBeNull();
    expect((await c.post<{ error: { code: string } }>('/api/auth/enrol', { token, totp: '000000' })).status).toBe(401);
    const done = await c.post<{ user: { name: string }; csrfToken: string }>('/api/auth/enrol', { token, totp: oathtoolCode(secret) });
    expect(done.status, JSON.stringify(done.body)).toBe(200);
    expect(done.body.user.name).toBe('newbie');
    expect((await c.get('/api/sessions')).status).toBe(200);
    // The token is spent, and the secret is now the account's: a password alone no longer gets anywhere.
    expect((await new ApiClient(fx.gw.web.port).post('/api/auth/enrol', { token, totp: oathtoolCode(secret, new Date(Date.now() + 30_000)) })).status).toBe(401);
    expect((await new ApiClient(fx.gw.web.port).post('/api/auth/login', { username: 'newbie', password: 'a long first password' })).status).toBe(401);
    const audit = await fx.audit('totp.enrolled');
    expect(audit.map((e) => e.actor)).toContain('newbie');
  });

  it('connects a browser terminal through the broker; security watches it live from the event stream, kills it, and replays it', async () => {
    const events: string[] = [];
    const sse = request({ host: '127.0.0.1', port: fx.gw.web.port, path: '/api/events', rejectUnauthorized: false, headers: { cookie: securityApi.cookie ?? '' } }, (res) => {
      res.on('data', (d: Buffer) => events.push(d.toString()));
    });
    sse.end();

    const term = await openSocket(fx.gw.web.port, '/api/terminal?device=mon-7&cols=100&rows=30', vendorApi);
    await term.waitFor(() => term.controls.some((c) => c.type === 'status' && c.state === 'connected'));
    await expect.poll(() => events.join('').includes('event: session'), { timeout: 30_000 }).toBe(true);
    expect(events.join('')).toContain('"action":"started"');

    const live = await securityApi.get<{ sessions: Array<{ id: string; user: string; via: string; deviceLevel: number; grantEnds: string }> }>('/api/sessions?open=true');
    const s = live.body.sessions.find((x) => x.user === 'wendy');
    expect(s).toMatchObject({ via: 'web', deviceLevel: 2 });
    expect(s?.grantEnds).toMatch(/^\d{4}-/);

    const watch = await openSocket(fx.gw.web.port, `/api/sessions/${s?.id}/watch`, securityApi);
    term.ws.send(Buffer.from('echo web-$((20+22))\r'), { binary: true });
    await term.waitFor(() => term.text().includes('web-42'));
    await watch.waitFor(() => watch.text().includes('web-42'));
    term.ws.send(JSON.stringify({ type: 'resize', cols: 120, rows: 40 }));
    term.ws.send(Buffer.from('stty size\r'), { binary: true });
    await term.waitFor(() => term.text().includes('40 120'));

    expect((await securityApi.post(`/api/sessions/${s?.id}/kill`, { reason: 'end of test' })).status).toBe(202);
    await term.closed;
    expect(term.controls.at(-1)).toMatchObject({ type: 'end', code: 'SESSION_KILLED' });
    expect(term.text()).toContain('end of test');
    await watch.closed;
    expect(watch.controls.at(-1)).toMatchObject({ type: 'end', reason: 'killed' });
    sse.destroy();

    const recs = await securityApi.get<{ recordings: Array<{ id: string; session: string; sealed: boolean }> }>('/api/recordings?vendor=wendy');
    const rec = recs.body.recordings.find((r) => r.session === s?.id);
    await expect.poll(async () => (await securityApi.get<{ recordings: Array<{ session: string; sealed: boolean }> }>('/api/recordings?vendor=wendy')).body.recordings.find((r) => r.session === s?.id)?.sealed).toBe(true);
    const cast = await securityApi.get<string>(`/api/recordings/${rec?.id}/asciicast`);
    expect(cast.headers['content-type']).toContain('application/x-asciicast');
    const lines = cast.body.trim().split('\n');
    expect(JSON.parse(lines[0] ?? '{}')).toMatchObject({ version: 2, width: 100, height: 30 });
    expect(cast.body).toContain('web-42');
    expect((await fx.audit('recording.viewed')).some((e) => e.actor === 'sally')).toBe(true);
    expect((await fx.audit('session.watched')).some((e) => e.actor === 'sally')).toBe(true);
    // Each entry from the door it came in by (issue 13): the browser's terminal and watch are web, from the client's address.
    expect((await fx.audit('session.start')).filter((e) => e.actor === 'wendy').map((e) => [e.channel, e.source])).toContainEqual(['web', '127.0.0.1']);
    expect((await fx.audit('session.watched')).filter((e) => e.actor === 'sally').every((e) => e.channel === 'web')).toBe(true);
  });

  it('refuses what it must: a cross-site socket, a vendor watching, a device without a grant, no cookie', async () => {
    await expect(openSocket(fx.gw.web.port, '/api/terminal?device=mon-7', vendorApi, 'https://evil.example')).rejects.toThrow(/403/);
    await expect(openSocket(fx.gw.web.port, '/api/sessions/whatever/watch', vendorApi)).rejects.toThrow(/403/);
    await expect(openSocket(fx.gw.web.port, '/api/terminal?device=mon-7', new ApiClient(fx.gw.web.port))).rejects.toThrow(/401/);
    const nogrant = await openSocket(fx.gw.web.port, '/api/terminal?device=ct-404', vendorApi);
    await nogrant.closed;
    expect(nogrant.controls.at(-1)).toMatchObject({ type: 'end', code: 'DEVICE_UNKNOWN' });
    expect((await fx.audit('session.refused')).some((e) => e.actor === 'wendy' && e.code === 'DEVICE_UNKNOWN')).toBe(true);
  });
});
