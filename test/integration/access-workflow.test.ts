import { createServer, type Server } from 'node:http';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expireRequests } from '../../gateway/access/requests.js';
import { verifyWebhookSignature } from '../../gateway/notify/webhook.js';
import type { ApiClient} from '../support/api-client.js';
import { signedIn, TotpSource } from '../support/api-client.js';
import type { DeviceSshd } from '../support/device-sshd.js';
import { startGatewayWithDevice, type CliResult, type GatewayFixture, type TestUser } from '../support/gateway-fixture.js';
import { runSsh, type SshRun } from '../support/ssh-client.js';

/**
 * Issue 4 end to end, as the hospital runs it: a vendor asks through the JSON API, the people the
 * device's level names approve, the grant lets the real OpenSSH client in, and revocation,
 * disabling, quarantine and decommissioning take it away again — on a real sshd.
 * R-5.3a, R-5.3c, R-5.3d, R-6.4b, R-6.4c, R-6.5a-c, R-A.4a, S-1.3.
 */
interface Delivery { event: string; body: string; timestamp: string; signature: string }

const SECRET = 'webhook-secret-for-the-test-receiver';

describe('the access workflow, through the API and the CLI', () => {
  let fx: GatewayFixture;
  let device: DeviceSshd;
  let receiver: Server;
  const deliveries: Delivery[] = [];
  const users: Record<string, TestUser> = {};
  const api: Record<string, ApiClient> = {};
  const totp = new TotpSource();

  const signIn = (name: string): Promise<ApiClient> => signedIn(fx.gw.web.port, users[name] as TestUser, totp);
  /** The CLI as that person, proven as an operator would: password and next TOTP code on standard input. */
  const cliAs = async (name: string, args: string[]): Promise<CliResult> => {
    const u = users[name] as TestUser;
    return fx.cli(['--actor', name, '--actor-credentials-stdin', ...args], `${u.password}\n${await totp.code(u.totpSecret)}\n`);
  };
  /** The real OpenSSH client, signing in with the next unused TOTP code of that person. */
  const ssh = async (name: string, device: string, command: string, onStdout?: (c: string) => void): Promise<SshRun> => {
    const u = users[name] as TestUser;
    return runSsh({ port: fx.sshPort, login: `${name}#${device}`, password: u.password, totpCode: await totp.code(u.totpSecret), command, timeoutMs: 60_000, ...(onStdout ? { onStdout } : {}) });
  };
  /** A session that stays open; `started` once the device answered (or fails with what the client saw). */
  const openOn = (name: string, dev: string, command = 'echo up; sleep 30'): { started: Promise<void>; done: Promise<SshRun> } => {
    let ready: () => void = () => undefined;
    const up = new Promise<void>((r) => { ready = r; });
    const done = ssh(name, dev, command, (c) => { if (c.includes('up')) ready(); });
    const started = Promise.race([up, done.then((r) => { throw new Error(`the session did not start: ${r.stderr}`); })]);
    return { started, done };
  };
  const inAnHour = () => new Date(Date.now() + 3_600_000).toISOString();
  const now = () => new Date().toISOString();

  beforeAll(async () => {
    receiver = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (d: Buffer) => chunks.push(d));
      req.on('end', () => {
        deliveries.push({
          event: String(req.headers['x-portcullis-event']), body: Buffer.concat(chunks).toString(),
          timestamp: String(req.headers['x-portcullis-timestamp']), signature: String(req.headers['x-portcullis-signature']),
        });
        res.writeHead(204).end();
      });
    });
    await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', () => r()));
    const port = (receiver.address() as { port: number }).port;
    const secretFile = path.join(process.env.TMPDIR ?? '/tmp', `pc-webhook-secret-${port}`);
    writeFileSync(secretFile, SECRET, { mode: 0o600 });
    ({ fx, device } = await startGatewayWithDevice('mon-2', `[notifications]\nwebhook_url = "http://127.0.0.1:${port}/hooks/portcullis"\nwebhook_secret_file = "${secretFile}"`));
    await fx.addDevice('ct-3', device, 3);
    for (const [name, roles] of [
      ['vera', ['vendor']], ['otto', ['vendor']], ['quin', ['vendor']], ['dana', ['vendor']], ['nora', ['vendor']], ['dm', ['device_manager']], ['sec', ['security']], ['appr', ['approver']], ['adm', ['admin']],
      ['sec2', ['security', 'device_manager']], ['dm3', ['device_manager']],
    ] as const) users[name] = await fx.addUser(name, [...roles]);
    // dm3 only uses the CLI (and the console's sign-in is rate-limited per address).
    for (const name of Object.keys(users).filter((n) => n !== 'dm3')) api[name] = await signIn(name);
  });
  afterAll(async () => {
    await fx?.stop();
    await device?.stop();
    await new Promise<void>((r) => receiver?.close(() => r()));
  });

  let l3Request = '';

  it('takes a vendor\'s request for a level-3 device to grants only after device management and security both approve', async () => {
    const vera = api.vera as ApiClient;
    const created = await vera.post<{ id: string; level: number; status: string; stillNeeded: string[][]; effective: { profile: string } }>('/api/requests', {
      devices: ['ct-3'], protocols: ['ssh'], purpose: 'Replace the tube-current calibration table', workOrder: 'WO-4711', from: now(), durationMinutes: 90,
    });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    l3Request = created.body.id;
    expect(created.body).toMatchObject({ level: 3, status: 'pending', stillNeeded: [['device_manager'], ['security']], effective: { profile: 'diag' } });

    // The vendor cannot decide at all; a plain approver fills no level-3 approval.
    expect((await vera.post(`/api/requests/${l3Request}/approve`, {})).status).toBe(403);
    const appr = await (api.appr as ApiClient).post<{ error: { code: string; detail: string } }>(`/api/requests/${l3Request}/approve`, {});
    expect(appr.body.error.code).toBe('APPROVER_ROLE_NOT_NEEDED');
    expect(appr.body.error.detail).toContain('device_manager');

    // Device management approves and narrows the window to 45 minutes.
    const until = new Date(Date.now() + 45 * 60_000).toISOString();
    const first = await (api.dm as ApiClient).post<{ approved: boolean; request: { stillNeeded: string[][]; effective: { until: string } } }>(
      `/api/requests/${l3Request}/approve`, { narrowing: { until }, comment: 'calibration only' });
    expect(first.status, JSON.stringify(first.body)).toBe(200);
    expect(first.body.approved).toBe(false);
    expect(first.body.request.stillNeeded).toEqual([['security']]);
    expect(first.body.request.effective.until).toBe(until);
    expect((await (api.dm as ApiClient).post<{ error: { code: string } }>(`/api/requests/${l3Request}/approve`, {})).body.error.code).toBe('DUPLICATE_APPROVAL');

    // Security may not widen what device management narrowed, nor pick a more permissive profile.
    const widen = await (api.sec as ApiClient).post<{ error: { code: string } }>(`/api/requests/${l3Request}/approve`, { narrowing: { until: inAnHour() } });
    expect(widen.body.error.code).toBe('APPROVAL_WIDENS_WINDOW');
    const profile = await (api.sec as ApiClient).post<{ error: { code: string } }>(`/api/requests/${l3Request}/approve`, { narrowing: { profile: 'full' } });
    expect(profile.body.error.code).toBe('APPROVAL_WIDENS_PROFILE');

    const second = await (api.sec as ApiClient).post<{ approved: boolean; grants: Array<{ device: string; until: string; profile: string; request: string }> }>(
      `/api/requests/${l3Request}/approve`, {});
    expect(second.body.approved).toBe(true);
    expect(second.body.grants).toEqual([expect.objectContaining({ device: 'ct-3', until, profile: 'diag', request: l3Request })]);

    const r = await ssh('vera', 'ct-3', 'echo calibrated');
    expect(r.stdout).toBe('calibrated\n');
  });

  it('lets nobody decide their own request, and needs a reason to deny', async () => {
    const sec2 = api.sec2 as ApiClient;
    const own = await sec2.post<{ id: string }>('/api/requests', { devices: ['mon-2'], protocols: ['ssh'], purpose: 'Check the alarm log', workOrder: 'INC-88', from: now(), durationMinutes: 60 });
    expect(own.status).toBe(201);
    const self = await sec2.post<{ error: { code: string } }>(`/api/requests/${own.body.id}/approve`, {});
    expect(self.body.error.code).toBe('SELF_APPROVAL');
    expect((await (api.dm as ApiClient).post<{ error: { code: string } }>(`/api/requests/${own.body.id}/deny`, { reason: '   ' })).body.error.code).toBe('DENIAL_REASON_INVALID');
    expect((await (api.otto as ApiClient).post<{ error: { code: string } }>(`/api/requests/${own.body.id}/cancel`)).status).toBe(404);
    const denied = await (api.dm as ApiClient).post<{ status: string; reason: string }>(`/api/requests/${own.body.id}/deny`, { reason: 'Use the on-site engineer this week' });
    expect(denied.body).toMatchObject({ status: 'denied', reason: 'Use the on-site engineer this week' });
    expect((await (api.dm as ApiClient).post<{ error: { code: string } }>(`/api/requests/${own.body.id}/approve`, {})).body.error.code).toBe('REQUEST_NOT_PENDING');
  });

  it('gives no direct grant where the level needs more approvals than one person can give (S-1.3, R-5.3c)', async () => {
    const refusals = (await fx.audit('grant.refused')).length;
    // Level 3 needs device management and security, two distinct people: not the host operator,
    // and not one person holding both roles.
    for (const actor of [null, 'sec2']) {
      const args = ['grant', 'add', '--user', 'otto', '--device', 'ct-3', '--protocol', 'ssh', '--from', 'now', '--until', '+1h', '--json'];
      const r = actor ? await cliAs(actor, args) : await fx.cli(args);
      expect(r.code, r.stderr).not.toBe(0);
      expect(JSON.parse(r.stdout)).toMatchObject({ error: { code: 'DIRECT_GRANT_NOT_ALLOWED' } });
      expect(r.stderr).toContain('file an access request');
    }
    // Level 2 needs device management: a plain approver cannot give it, a device manager can.
    const appr = await cliAs('appr', ['grant', 'add', '--user', 'otto', '--device', 'mon-2', '--protocol', 'ssh', '--from', 'now', '--until', '+1h', '--json']);
    expect(JSON.parse(appr.stdout)).toMatchObject({ error: { code: 'DIRECT_GRANT_NOT_ALLOWED' } });
    expect(appr.stderr).toContain('device_manager');
    const dm = await cliAs('dm', ['grant', 'add', '--user', 'otto', '--device', 'mon-2', '--protocol', 'ssh', '--from', 'now', '--until', '+1h', '--json']);
    expect(dm.code, dm.stderr).toBe(0);
    expect(JSON.parse(dm.stdout)).toMatchObject({ device: 'mon-2', createdBy: 'dm' });
    const refused = (await fx.audit('grant.refused')).slice(refusals);
    expect(refused.map((e) => e.code)).toEqual(['DIRECT_GRANT_NOT_ALLOWED', 'DIRECT_GRANT_NOT_ALLOWED', 'DIRECT_GRANT_NOT_ALLOWED']);
    expect((await fx.gw.runtime.store.listGrants({ user: 'otto', device: 'ct-3' })).length).toBe(0);
  });

  it('refuses requests that do not fit the device level, and lets the requester cancel', async () => {
    const vera = api.vera as ApiClient;
    const tooLong = await vera.post<{ error: { code: string; detail: string } }>('/api/requests', {
      devices: ['ct-3'], protocols: ['ssh'], purpose: 'x', workOrder: 'WO-1', from: now(), durationMinutes: 180,
    });
    expect(tooLong.body.error.code).toBe('WINDOW_TOO_LONG');
    const fullOnL3 = await vera.post<{ error: { code: string } }>('/api/requests', {
      devices: ['ct-3'], protocols: ['ssh'], purpose: 'x', workOrder: 'WO-1', from: now(), durationMinutes: 30, profile: 'full',
    });
    expect(fullOnL3.body.error.code).toBe('PROFILE_MODE_NOT_ALLOWED');
    const past = await vera.post<{ error: { code: string } }>('/api/requests', {
      devices: ['mon-2'], protocols: ['ssh'], purpose: 'x', workOrder: 'WO-1', from: new Date(Date.now() - 3_600_000).toISOString(), durationMinutes: 30,
    });
    expect(past.body.error.code).toBe('WINDOW_STARTS_IN_PAST');
    const mine = await vera.post<{ id: string }>('/api/requests', { devices: ['mon-2'], protocols: ['ssh'], purpose: 'Log review', workOrder: 'WO-2', from: now(), durationMinutes: 30 });
    expect((await (api.otto as ApiClient).post(`/api/requests/${mine.body.id}/cancel`)).status).toBe(404);
    expect((await vera.post<{ status: string }>(`/api/requests/${mine.body.id}/cancel`)).body.status).toBe('cancelled');
    // A vendor sees only their own requests; an approver sees everyone's.
    const seen = await (api.otto as ApiClient).get<{ requests: Array<{ requester: string }> }>('/api/requests');
    expect(seen.body.requests.every((r) => r.requester === 'otto')).toBe(true);
    const queue = await (api.dm as ApiClient).get<{ requests: Array<{ requester: string }> }>('/api/requests');
    expect(queue.body.requests.some((r) => r.requester === 'vera')).toBe(true);
  });

  it('expires a request nobody decided before its window ended, once, and says so on the webhook', async () => {
    const r = await (api.otto as ApiClient).post<{ id: string }>('/api/requests', {
      devices: ['mon-2'], protocols: ['ssh'], purpose: 'quick look', workOrder: 'WO-3', from: now(), until: new Date(Date.now() + 1500).toISOString(),
    });
    expect(r.status).toBe(201);
    await new Promise((res) => setTimeout(res, 1700));
    expect((await (api.otto as ApiClient).get<{ status: string }>(`/api/requests/${r.body.id}`)).body.status).toBe('expired');
    expect(await expireRequests(fx.gw.runtime)).toContain(r.body.id);
    expect(await expireRequests(fx.gw.runtime)).not.toContain(r.body.id);
    await expect.poll(() => deliveries.filter((d) => d.event === 'request.expired' && d.body.includes(r.body.id)).length).toBe(1);
  });

  it('ends the vendor\'s live session when security revokes the request', async () => {
    const s = openOn('vera', 'ct-3', 'echo up; sleep 30');
    await s.started;
    const revoked = await (api.sec as ApiClient).post<{ grantsRevoked: string[] }>(`/api/requests/${l3Request}/revoke`, { reason: 'calibration done on site' });
    expect(revoked.status, JSON.stringify(revoked.body)).toBe(200);
    expect(revoked.body.grantsRevoked).toHaveLength(1);
    const run = await s.done;
    expect(run.stderr).toContain('[GRANT_REVOKED]');
  });

  it('ends a live session when an admin disables the vendor, and revokes the vendor\'s grants (R-5.3d)', async () => {
    await fx.grant('otto', 'mon-2', 'now', '+1h');
    const s = openOn('otto', 'mon-2');
    await s.started;
    const r = await (api.adm as ApiClient).post<{ grantsRevoked: string[] }>('/api/users/otto/disable');
    expect(r.status).toBe(200);
    expect(r.body.grantsRevoked.length).toBeGreaterThanOrEqual(1);
    const run = await s.done;
    expect(run.stderr).toContain('[ACCOUNT_DISABLED]');
    // Their browser session is gone too.
    expect((await (api.otto as ApiClient).get('/api/requests')).status).toBe(401);
  });

  it('keeps a quarantined device off limits until security records a passed check (R-6.4b)', async () => {
    await fx.grant('quin', 'mon-2', 'now', '+1h');
    const s = openOn('quin', 'mon-2');
    await s.started;
    const q = await (api.dm as ApiClient).post<{ state: string }>('/api/devices/mon-2/quarantine', { reason: 'back from repair at the manufacturer' });
    expect(q.body.state).toBe('quarantined');
    expect((await s.done).stderr).toContain('[DEVICE_QUARANTINED]');
    const refused = await ssh('quin', 'mon-2', 'echo no');
    expect(refused.stderr).toContain('[DEVICE_QUARANTINED]');
    const req = await (api.quin as ApiClient).post<{ error: { code: string } }>('/api/requests', { devices: ['mon-2'], protocols: ['ssh'], purpose: 'x', workOrder: 'WO-9', from: now(), durationMinutes: 30 });
    expect(req.body.error.code).toBe('DEVICE_QUARANTINED');
    // Only security records the check: not a device manager, and not the gateway's host operator either.
    expect((await (api.dm as ApiClient).post('/api/devices/mon-2/security-check', { passed: true, notes: 'looked fine' })).status).toBe(403);
    const byHost = await fx.cli(['device', 'check', 'mon-2', '--passed', '--notes', 'looked fine', '--json']);
    expect(byHost.code).not.toBe(0);
    expect(byHost.stderr).toContain('named person');
    expect(JSON.parse(byHost.stdout)).toMatchObject({ error: { code: 'PERSON_REQUIRED' } });
    const byDm = await cliAs('dm3', ['device', 'check', 'mon-2', '--passed', '--notes', 'looked fine', '--json']);
    expect(JSON.parse(byDm.stdout)).toMatchObject({ error: { code: 'FORBIDDEN' } });
    expect(byDm.code).not.toBe(0);
    expect((await fx.gw.runtime.store.getDevice('mon-2'))?.state).toBe('quarantined');
    const failed = await (api.sec as ApiClient).post<{ state: string }>('/api/devices/mon-2/security-check', { passed: false, notes: 'unknown USB firmware' });
    expect(failed.body.state).toBe('quarantined');
    const passed = await (api.sec as ApiClient).post<{ state: string; lifecycle: Array<{ type: string; details: { result?: string } }> }>(
      '/api/devices/mon-2/security-check', { passed: true, notes: 'firmware 4.2.1 verified against the manufacturer hash; AV scan clean' });
    expect(passed.body.state).toBe('active');
    expect(passed.body.lifecycle.map((e) => [e.type, e.details.result ?? null])).toEqual([
      ['registered', null], ['quarantined', null], ['security_checked', 'failed'], ['security_checked', 'passed'],
    ]);
    const back = await ssh('quin', 'mon-2', 'echo back');
    expect(back.stdout).toBe('back\n');
  });

  it('shows the maintenance records of the sessions that ran, with vendor, level, approvers and work order (R-6.4c)', async () => {
    const sec = api.sec as ApiClient;
    const records = await sec.get<{ records: Array<{ session: string; vendor: string; organisation: string; deviceLevel: number; approvers: string[]; workOrder: string | null; endReason: string }> }>('/api/records?device=ct-3');
    const sessions = await fx.gw.runtime.store.listSessions({ limit: 100, device: 'ct-3' });
    expect(records.body.records.map((r) => r.session).sort()).toEqual(sessions.map((s) => s.id).sort());
    expect(records.body.records.length).toBe(2);
    for (const r of records.body.records) {
      expect(r).toMatchObject({ vendor: 'vera', organisation: 'Test Vendor GmbH', deviceLevel: 3, approvers: ['dm', 'sec'], workOrder: 'WO-4711' });
    }
    const csv = await sec.get<string>('/api/records/export.csv?device=ct-3');
    expect(csv.headers['content-type']).toContain('text/csv');
    const rows = csv.body.trim().split('\r\n');
    expect(rows[0]).toContain('session,vendor,organisation,device,device_level');
    expect(rows.slice(1).map((l) => l.split(',')[0]).sort()).toEqual(sessions.map((s) => s.id).sort());
    const cli = await fx.cli(['records', '--device', 'ct-3', '--format', 'json']);
    expect((JSON.parse(cli.stdout) as Array<{ session: string }>).map((r) => r.session).sort()).toEqual(sessions.map((s) => s.id).sort());
    // A vendor cannot read them.
    expect((await (api.vera as ApiClient).get('/api/records')).status).toBe(403);
  });

  it('cuts a decommissioned device off at once and for good (R-6.5)', async () => {
    await fx.grant('dana', 'mon-2', 'now', '+1h');
    const s = openOn('dana', 'mon-2');
    await s.started;
    expect((await (api.dm as ApiClient).post('/api/devices/mon-2/decommission', { method: 'returned to manufacturer', dataWiping: 'completed' })).status).toBe(403);
    const byHost = await fx.cli(['device', 'decommission', 'mon-2', '--method', 'shredded', '--data-wiping', 'completed', '--json']);
    expect(byHost.code).not.toBe(0);
    expect(JSON.parse(byHost.stdout)).toMatchObject({ error: { code: 'PERSON_REQUIRED' } });
    expect(byHost.stderr).toContain('named person');
    expect((await fx.gw.runtime.store.getDevice('mon-2'))?.state).toBe('active');
    const d = await (api.adm as ApiClient).post<{ state: string; grantsRevoked: string[]; lifecycle: Array<{ type: string; approvedBy: string | null; details: Record<string, unknown> }> }>(
      '/api/devices/mon-2/decommission', { method: 'returned to manufacturer', dataWiping: 'completed', notes: 'disk wiped per DoD 5220.22-M' });
    expect(d.status, JSON.stringify(d.body)).toBe(200);
    expect(d.body.state).toBe('decommissioned');
    expect(d.body.grantsRevoked.length).toBeGreaterThanOrEqual(1);
    expect(d.body.lifecycle.at(-1)).toMatchObject({ type: 'decommissioned', approvedBy: 'adm', details: { method: 'returned to manufacturer', dataWiping: 'completed' } });
    expect((await s.done).stderr).toMatch(/\[(DEVICE_DECOMMISSIONED|GRANT_REVOKED)\]/);
    const again = await ssh('dana', 'mon-2', 'echo no');
    expect(again.code).toBe(1);
    expect(await fx.gw.runtime.store.getCredential('mon-2')).toBeNull();
    const listed = await (api.dana as ApiClient).get<{ devices: Array<{ name: string }> }>('/api/devices');
    expect(listed.body.devices.map((x) => x.name)).not.toContain('mon-2');
    expect((await fx.cli(['grant', 'add', '--user', 'dana', '--device', 'mon-2', '--protocol', 'ssh', '--from', 'now', '--until', '+1h'])).stderr).toContain('decommissioned');
  });

  it('refuses a vendor without a confidentiality agreement: no request, no session (R-5.3a)', async () => {
    // Approved while the agreement was on file; then it is withdrawn.
    const created = await (api.nora as ApiClient).post<{ id: string }>('/api/requests', { devices: ['ct-3'], protocols: ['ssh'], purpose: 'x', workOrder: 'WO-5', from: now(), durationMinutes: 30 });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    for (const who of ['dm', 'sec']) expect((await (api[who] as ApiClient).post(`/api/requests/${created.body.id}/approve`, {})).status).toBe(200);
    await fx.gw.runtime.store.updateUser('nora', { nda: null });
    const r = await (api.nora as ApiClient).post<{ error: { code: string } }>('/api/requests', { devices: ['ct-3'], protocols: ['ssh'], purpose: 'x', workOrder: 'WO-5', from: now(), durationMinutes: 30 });
    expect(r.body.error.code).toBe('NDA_MISSING');
    const s = await ssh('nora', 'ct-3', 'echo no');
    expect(s.stderr).toContain('[NDA_MISSING]');
  });

  it('sent every workflow event to the webhook, signed so the receiver can verify it', async () => {
    const events = deliveries.map((d) => d.event);
    for (const e of ['request.created', 'request.approval', 'request.approved', 'request.denied', 'request.cancelled', 'request.revoked', 'request.expired', 'session.watch_alert']) {
      expect(events, e).toContain(e);
    }
    const nowS = Math.floor(Date.now() / 1000);
    for (const d of deliveries) expect(verifyWebhookSignature(SECRET, d, d.body, nowS)).toBe(true);
    // Other events share the webhook (alerts, role_change.* for the people added above): take the request's own.
    const first = deliveries.find((d) => d.event === 'request.created') as Delivery;
    expect(verifyWebhookSignature(SECRET, first, first.body.replace('WO-4711', 'WO-0000'), nowS)).toBe(false);
    expect(verifyWebhookSignature('another-secret-entirely', first, first.body, nowS)).toBe(false);
    const approved = JSON.parse(deliveries.find((d) => d.event === 'request.approved')?.body ?? '{}') as { data: { approvers: string[] } };
    expect(approved.data.approvers).toEqual(['dm', 'sec']);
  });
});
