import { createServer, type Server } from 'node:http';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expireRoleChanges } from '../../gateway/identity/role-changes.js';
import { verifyWebhookSignature } from '../../gateway/notify/webhook.js';
import type { AuditEntry } from '../../gateway/store/store.js';
import { signedIn, TotpSource, type ApiClient } from '../support/api-client.js';
import type { DeviceSshd } from '../support/device-sshd.js';
import { runCli, startGatewayFixture, startGatewayWithDevice, TEST_POLICY_TOML, type CliResult, type GatewayFixture, type TestUser } from '../support/gateway-fixture.js';

/**
 * Issue 13, "separation of duties that holds" (S-1.3, R-5.3c), from the side of the people who
 * would get round it: an admin raising their own roles, confirming their own change, the person
 * concerned confirming it, the host operator standing in for a second admin, a role change nobody
 * confirms, an approver swapping the profile for one that allows other commands, and someone whose
 * own privileged role change waits deciding a request. Through the JSON API and the CLI; every
 * refusal audited.
 */
interface ApiError { error: { code: string; message: string; detail?: string } }
interface RoleChange { id: string; user: string; requestedBy: string; added: string[]; status: string; expiresAt: string; requestedAt: string; decidedBy: string | null }
interface UserBody { name: string; roles: string[]; pendingChange: RoleChange | null }
interface RequestBody {
  id: string; status: string; stillNeeded: string[][]; effective: { profile: string; until: string }; approvals: Array<{ by: string }>;
  changes: Array<{ by: string; from: string; to: string; reason: string; lapsed: Array<{ by: string }>; before: { profile: string } }>;
}
interface Delivery { event: string; body: string; timestamp: string; signature: string }

const SECRET = 'webhook-secret-for-separation-of-duties';

/** diag (the level-3 default) and two more: one that allows what diag allows and less, one that allows other commands. */
const POLICY = `${TEST_POLICY_TOML}
[profiles.diag-less]
mode = "restricted"
rules = [
  { program = "uname", action = "allow" },
  { program = "reboot", action = "deny" },
]
[profiles.diag-more]
mode = "restricted"
rules = [
  { program = "uname", action = "allow" },
  { program = "journalctl", action = "allow" },
]
`;

const json = <T>(r: CliResult): T => {
  try {
    return JSON.parse(r.stdout) as T;
  } catch {
    throw new Error(`not JSON (exit ${r.code}): ${r.stdout} ${r.stderr}`);
  }
};
const ok = (r: CliResult, what: string): CliResult => {
  expect(r.code, `${what}: ${r.stderr}`).toBe(0);
  return r;
};
const refusedWith = (r: CliResult, code: string): void => {
  expect(r.code, r.stdout + r.stderr).toBe(1);
  expect(json<ApiError>(r).error.code).toBe(code);
};

describe('separation of duties through the API (S-1.3)', () => {
  let fx: GatewayFixture;
  let device: DeviceSshd;
  let receiver: Server;
  const deliveries: Delivery[] = [];
  const users: Record<string, TestUser> = {};
  const api: Record<string, ApiClient> = {};
  const totp = new TotpSource();
  const audit = async (type: string): Promise<AuditEntry[]> => fx.audit(type);
  const roleChange = async (id: string): Promise<RoleChange | undefined> =>
    (await (api.ana as ApiClient).get<{ changes: RoleChange[] }>('/api/role-changes')).body.changes.find((c) => c.id === id);
  const request = (c: ApiClient, device: string) =>
    c.post<RequestBody & ApiError>('/api/requests', { devices: [device], protocols: ['ssh'], purpose: 'Read the logs', workOrder: 'WO-SOD', from: new Date().toISOString(), durationMinutes: 60 });

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
    const secretFile = path.join(process.env.TMPDIR ?? '/tmp', `pc-sod-webhook-secret-${port}`);
    writeFileSync(secretFile, SECRET, { mode: 0o600 });
    ({ fx, device } = await startGatewayWithDevice('mon-2', `${POLICY}\n[notifications]\nwebhook_url = "http://127.0.0.1:${port}/hooks/portcullis"\nwebhook_secret_file = "${secretFile}"`));
    await fx.addDevice('ct-3', device, 3);
    for (const [name, roles] of [
      ['ana', ['admin']], ['ben', ['admin']], ['vera', ['vendor']], ['nina', ['vendor']], ['dora', ['device_manager']], ['dmitri', ['device_manager']], ['sam', ['security']],
    ] as const) users[name] = await fx.addUser(name, [...roles]);
    for (const name of Object.keys(users)) api[name] = await signedIn(fx.gw.web.port, users[name] as TestUser, totp);
  });
  afterAll(async () => {
    await fx?.stop();
    await device?.stop();
    await new Promise<void>((r) => receiver?.close(() => r()));
  });

  it('refuses an admin raising their own roles, or lowering them, and audits it', async () => {
    const ana = api.ana as ApiClient;
    const raise = await ana.call<ApiError>('PATCH', '/api/users/ana', { roles: ['admin', 'security', 'device_manager'] });
    expect(raise.status).toBe(403);
    expect(raise.body.error).toMatchObject({ code: 'SELF_ROLE_CHANGE', message: 'Nobody may change their own roles (S-1.3); another admin must do it.' });
    const lower = await ana.call<ApiError>('PATCH', '/api/users/ana', { roles: ['vendor'] });
    expect(lower.body.error.code).toBe('SELF_ROLE_CHANGE');
    // Sending one's own roles back unchanged (the console's form saving an expiry) is not a change.
    expect((await ana.call('PATCH', '/api/users/ana', { roles: ['admin'] })).status).toBe(200);
    expect((await fx.gw.runtime.store.getUser('ana'))?.roles).toEqual(['admin']);
    expect((await audit('user.role_change_refused')).filter((e) => e.actor === 'ana').map((e) => [e.outcome, e.code, e.data.rolesAsked]))
      .toEqual([['denied', 'SELF_ROLE_CHANGE', ['admin', 'security', 'device_manager']], ['denied', 'SELF_ROLE_CHANGE', ['vendor']]]);
  });

  it('holds a privileged role for a second admin: the asker and the person concerned cannot confirm; another admin does, and the roles apply', async () => {
    const ana = api.ana as ApiClient;
    const ben = api.ben as ApiClient;
    // ana gives ben (an admin) the security role: ben's roles do not change yet.
    const asked = await ana.call<UserBody>('PATCH', '/api/users/ben', { roles: ['admin', 'security'] });
    expect(asked.status, JSON.stringify(asked.body)).toBe(200);
    expect(asked.body.roles).toEqual(['admin']);
    const change = asked.body.pendingChange as RoleChange;
    expect(change).toMatchObject({ user: 'ben', requestedBy: 'ana', added: ['security'], status: 'pending' });
    const hours = (Date.parse(change.expiresAt) - Date.parse(change.requestedAt)) / 3_600_000;
    expect(hours).toBe(24);
    expect((await ben.get<{ changes: RoleChange[] }>('/api/role-changes?status=pending')).body.changes.map((c) => c.id)).toContain(change.id);
    // A second change for ben while this one waits is refused.
    expect((await ana.call<ApiError>('PATCH', '/api/users/ben', { roles: ['admin', 'device_manager'] })).body.error.code).toBe('ROLE_CHANGE_ALREADY_PENDING');

    const own = await ana.post<ApiError>(`/api/role-changes/${change.id}/confirm`);
    expect(own.status).toBe(403);
    expect(own.body.error.code).toBe('ROLE_CHANGE_SELF_CONFIRM');
    const target = await ben.post<ApiError>(`/api/role-changes/${change.id}/confirm`);
    expect(target.status).toBe(403);
    expect(target.body.error).toMatchObject({ code: 'ROLE_CHANGE_SELF_CONFIRM', detail: expect.stringContaining('nobody confirms their own roles') });
    // Security reads the list but confirms nothing.
    expect((await (api.sam as ApiClient).post<ApiError>(`/api/role-changes/${change.id}/confirm`)).status).toBe(403);
    expect((await fx.gw.runtime.store.getUser('ben'))?.roles).toEqual(['admin']);

    const nina = await ana.call<UserBody>('PATCH', '/api/users/nina', { roles: ['vendor', 'approver'] });
    expect(nina.body).toMatchObject({ roles: ['vendor'], pendingChange: { added: ['approver'] } });
    const confirmedByBen = await ben.post<{ change: RoleChange; user: UserBody }>(`/api/role-changes/${(nina.body.pendingChange as RoleChange).id}/confirm`);
    expect(confirmedByBen.status, JSON.stringify(confirmedByBen.body)).toBe(200);
    expect(confirmedByBen.body).toMatchObject({ change: { status: 'confirmed', decidedBy: 'ben' }, user: { roles: ['vendor', 'approver'] } });
    expect((await fx.gw.runtime.store.getUser('nina'))?.roles).toEqual(['vendor', 'approver']);
    // Confirmed once: a second confirmation (or a rejection) finds it settled.
    expect((await ben.post<ApiError>(`/api/role-changes/${(nina.body.pendingChange as RoleChange).id}/reject`, {})).body.error.code).toBe('ROLE_CHANGE_NOT_PENDING');

    // ben's own change is withdrawn by its asker.
    const withdrawn = await ana.post<RoleChange>(`/api/role-changes/${change.id}/reject`, { reason: 'asked by mistake' });
    expect(withdrawn.body).toMatchObject({ status: 'rejected', decidedBy: 'ana', reason: 'asked by mistake' });
    expect((await fx.gw.runtime.store.getUser('ben'))?.roles).toEqual(['admin']);

    const refusals = (await audit('role_change.confirm_refused')).map((e) => [e.actor, e.code, e.data.change]);
    expect(refusals).toEqual([['ana', 'ROLE_CHANGE_SELF_CONFIRM', change.id], ['ben', 'ROLE_CHANGE_SELF_CONFIRM', change.id]]);
    expect((await audit('role_change.confirmed')).filter((e) => e.data.user === 'nina').map((e) => [e.actor, e.data.requestedBy, e.data.added])).toEqual([['ben', 'ana', ['approver']]]);
    expect((await audit('role_change.rejected')).map((e) => [e.actor, e.data.change])).toEqual([['ana', change.id]]);
    await expect.poll(() => deliveries.filter((d) => d.event === 'role_change.requested' && d.body.includes(change.id)).length).toBe(1);
  });

  it('creates an account asked with a privileged role without it, until a second admin confirms', async () => {
    const created = await (api.ana as ApiClient).post<{ user: UserBody; pendingChange: RoleChange } & ApiError>('/api/users', {
      name: 'carla', roles: ['security'], password: 'carla long passphrase', enrolOnFirstSignIn: true,
    });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    expect(created.body.user.roles).toEqual([]);
    expect(created.body.pendingChange).toMatchObject({ user: 'carla', added: ['security'], requestedBy: 'ana' });
    const [entry] = (await audit('user.created')).filter((e) => e.data.user === 'carla');
    expect(entry?.data).toMatchObject({ roles: [], rolesAwaiting: ['security'] });
    expect((await (api.ben as ApiClient).post(`/api/role-changes/${created.body.pendingChange.id}/confirm`)).status).toBe(200);
    expect((await fx.gw.runtime.store.getUser('carla'))?.roles).toEqual(['security']);
  });

  it('lets a change nobody confirms expire: swept once, audited, notified, and no longer confirmable', async () => {
    const asked = await (api.ana as ApiClient).call<UserBody>('PATCH', '/api/users/vera', { roles: ['vendor', 'approver'] });
    const change = asked.body.pendingChange as RoleChange;
    expect(await expireRoleChanges(fx.gw.runtime)).not.toContain(change.id);
    // The sweep as it runs a day later (every node runs it every 30 s; the store lets one settle each).
    const later = { ...fx.gw.runtime, clock: () => Date.now() + 24 * 3_600_000 + 1000 };
    expect(await expireRoleChanges(later)).toEqual([change.id]);
    expect(await expireRoleChanges(later)).toEqual([]);
    expect(await roleChange(change.id)).toMatchObject({ status: 'expired', decidedBy: 'portcullis' });
    const late = await (api.ben as ApiClient).post<ApiError>(`/api/role-changes/${change.id}/confirm`);
    expect(late.status).toBe(409);
    expect(late.body.error.code).toBe('ROLE_CHANGE_EXPIRED');
    expect((await fx.gw.runtime.store.getUser('vera'))?.roles).toEqual(['vendor']);
    expect((await audit('role_change.expired')).map((e) => [e.actor, e.data.change])).toEqual([['portcullis', change.id]]);
    await expect.poll(() => deliveries.filter((d) => d.event === 'role_change.expired' && d.body.includes(change.id)).length).toBe(1);
  });

  it('refuses an approval or a denial from someone whose own privileged role change waits', async () => {
    const r = await request(api.vera as ApiClient, 'mon-2');
    expect(r.status, JSON.stringify(r.body)).toBe(201);
    const asked = await (api.ana as ApiClient).call<UserBody>('PATCH', '/api/users/dora', { roles: ['device_manager', 'security'] });
    const change = asked.body.pendingChange as RoleChange;
    const dora = api.dora as ApiClient;
    const approve = await dora.post<ApiError>(`/api/requests/${r.body.id}/approve`, {});
    expect(approve.status).toBe(403);
    expect(approve.body.error).toMatchObject({ code: 'DECIDER_ROLE_CHANGE_PENDING', detail: expect.stringContaining('dora') });
    expect((await dora.post<ApiError>(`/api/requests/${r.body.id}/deny`, { reason: 'no' })).body.error.code).toBe('DECIDER_ROLE_CHANGE_PENDING');
    expect((await audit('request.approval_refused')).filter((e) => e.actor === 'dora').map((e) => [e.code, e.data.request])).toEqual([['DECIDER_ROLE_CHANGE_PENDING', r.body.id]]);
    expect((await audit('request.denial_refused')).filter((e) => e.actor === 'dora').map((e) => e.code)).toEqual(['DECIDER_ROLE_CHANGE_PENDING']);
    // Nor a direct grant, which is its grantor's one approval.
    const doraUser = users.dora as TestUser;
    // dora proves who she is with the next TOTP step of this file's own codes (each works once).
    const grant = await fx.cli(['--actor', 'dora', '--actor-credentials-stdin', 'grant', 'add', '--user', 'vera', '--device', 'mon-2', '--protocol', 'ssh', '--from', 'now', '--until', '+1h', '--json'],
      `${doraUser.password}\n${await totp.code(doraUser.totpSecret)}\n`);
    refusedWith(grant, 'DECIDER_ROLE_CHANGE_PENDING');
    expect((await audit('grant.refused')).filter((e) => e.actor === 'dora').map((e) => e.code)).toEqual(['DECIDER_ROLE_CHANGE_PENDING']);
    // Once the change is settled, dora decides again.
    expect((await (api.ben as ApiClient).post(`/api/role-changes/${change.id}/reject`, {})).status).toBe(200);
    const approved = await dora.post<{ approved: boolean }>(`/api/requests/${r.body.id}/approve`, {});
    expect(approved.body.approved).toBe(true);
  });

  it('an approver swapping the profile for one that allows other commands voids the earlier approvals; the requester is told and it needs them again', async () => {
    const created = await request(api.vera as ApiClient, 'ct-3');
    expect(created.body).toMatchObject({ stillNeeded: [['device_manager'], ['security']], effective: { profile: 'diag' } });
    const id = created.body.id;
    const first = await (api.dora as ApiClient).post<{ request: RequestBody }>(`/api/requests/${id}/approve`, { narrowing: { until: new Date(Date.now() + 40 * 60_000).toISOString() } });
    expect(first.body.request.stillNeeded).toEqual([['security']]);

    // A narrower profile would be a narrowing; diag-more allows journalctl, which diag does not.
    const swapped = await (api.sam as ApiClient).post<{ approved: boolean; request: RequestBody; grants: unknown[] }>(`/api/requests/${id}/approve`, { narrowing: { profile: 'diag-more' } });
    expect(swapped.status, JSON.stringify(swapped.body)).toBe(200);
    expect(swapped.body.approved).toBe(false);
    expect(swapped.body.grants).toEqual([]);
    expect(swapped.body.request).toMatchObject({
      status: 'pending', stillNeeded: [['device_manager']], effective: { profile: 'diag-more', until: first.body.request.effective.until }, approvals: [{ by: 'sam' }],
      changes: [{ by: 'sam', from: 'diag', to: 'diag-more', lapsed: [{ by: 'dora' }], before: { profile: 'diag' } }],
    });
    expect(swapped.body.request.changes[0]?.reason).toContain('journalctl');

    // The requester sees it on the request, and the webhook told them.
    const seen = await (api.vera as ApiClient).get<RequestBody>(`/api/requests/${id}`);
    expect(seen.body.changes.map((c) => [c.from, c.to, c.lapsed.map((l) => l.by)])).toEqual([['diag', 'diag-more', ['dora']]]);
    await expect.poll(() => deliveries.filter((d) => d.event === 'request.changed' && d.body.includes(id)).length).toBe(1);
    const note = deliveries.find((d) => d.event === 'request.changed' && d.body.includes(id)) as Delivery;
    expect(verifyWebhookSignature(SECRET, { timestamp: note.timestamp, signature: note.signature }, note.body, Math.floor(Date.now() / 1000))).toBe(true);
    expect((JSON.parse(note.body) as { data: unknown }).data).toMatchObject({ request: id, requester: 'vera', by: 'sam', from: 'diag', to: 'diag-more', lapsedApprovals: ['dora'] });
    expect((await audit('request.approval_lapsed')).map((e) => [e.actor, e.data.request, e.data.approver])).toEqual([['sam', id, 'dora']]);
    expect((await audit('request.changed')).map((e) => [e.actor, e.data.request])).toEqual([['sam', id]]);

    // Device management approves again, and the grant carries the new profile and the narrowed end.
    const again = await (api.dmitri as ApiClient).post<{ approved: boolean; grants: Array<{ profile: string; until: string }> }>(`/api/requests/${id}/approve`, {});
    expect(again.body.approved).toBe(true);
    expect(again.body.grants).toEqual([expect.objectContaining({ profile: 'diag-more', until: first.body.request.effective.until })]);
  });

  it('a provably narrower profile is a narrowing: nothing lapses', async () => {
    const id = (await request(api.vera as ApiClient, 'ct-3')).body.id;
    await (api.dora as ApiClient).post(`/api/requests/${id}/approve`, {});
    const narrowed = await (api.sam as ApiClient).post<{ approved: boolean; request: RequestBody; grants: Array<{ profile: string }> }>(`/api/requests/${id}/approve`, { narrowing: { profile: 'diag-less' } });
    expect(narrowed.body.approved).toBe(true);
    expect(narrowed.body.request.changes).toEqual([]);
    expect(narrowed.body.grants).toEqual([expect.objectContaining({ profile: 'diag-less' })]);
  });
});

describe('separation of duties through the CLI (S-1.3)', () => {
  let fx: GatewayFixture;
  beforeAll(async () => {
    fx = await startGatewayFixture();
  });
  afterAll(async () => {
    await fx?.stop();
  });
  const people: Record<string, TestUser> = {};
  const tokens: Record<string, string> = {};
  /**
   * As the named person, proven: by a token of theirs, made once with their password and TOTP code
   * (a code works once per 30-second step; a token as often as its scope allows). Null: the host operator.
   */
  const as = async (actor: string | null, args: string[], stdin?: string): Promise<CliResult> => {
    if (actor === null) return fx.cli([...args, '--json'], stdin);
    if (tokens[actor] === undefined) {
      const who = actor === 'admin' ? fx.admin : (people[actor] as TestUser);
      const made = await fx.cliAs(who, ['token', 'create', '--name', 'sod', '--scope', 'user.manage', '--scope', 'user.read', '--expires', '+1d', '--json']);
      tokens[actor] = json<{ secret: string }>(ok(made, `a token for ${actor}`)).secret;
    }
    return runCli([...args, '--json'], { config: fx.configFile, ...(stdin !== undefined ? { stdin } : {}), env: { PORTCULLIS_TOKEN: tokens[actor] as string } });
  };
  /** Someone `user add` made here: their password, and the TOTP secret in the answer's enrolment URI. */
  const added = (name: string, password: string, body: { otpauthUri?: string }): void => {
    people[name] = { name, password, totpSecret: new URL(body.otpauthUri ?? 'otpauth://totp/x').searchParams.get('secret') ?? '' };
  };

  it('bootstraps a fresh install: the first admin asks for a second admin, the host operator confirms that one only', async () => {
    // The host operator cannot give a privileged role at all.
    refusedWith(await as(null, ['user', 'add', 'dora', '--role', 'device_manager', '--password-stdin'], 'dora long passphrase'), 'PERSON_REQUIRED');
    const erin = json<{ roles: string[]; pendingChange: RoleChange; otpauthUri: string }>(ok(await as('admin', ['user', 'add', 'erin', '--role', 'admin', '--password-stdin'], 'erin long passphrase'), 'user add erin'));
    added('erin', 'erin long passphrase', erin);
    expect(erin).toMatchObject({ roles: [], pendingChange: { added: ['admin'], requestedBy: 'admin' } });
    // The first admin cannot confirm their own ask; on a single-admin install the host operator may.
    refusedWith(await as('admin', ['user', 'confirm-role-change', erin.pendingChange.id]), 'ROLE_CHANGE_SELF_CONFIRM');
    const boot = json<{ status: string; roles: string[] }>(ok(await as(null, ['user', 'confirm-role-change', erin.pendingChange.id]), 'bootstrap confirm'));
    expect(boot).toMatchObject({ status: 'confirmed', roles: ['admin'] });
    const [entry] = await fx.audit('role_change.confirmed');
    expect(entry).toMatchObject({ actor: expect.stringMatching(/^local:/), data: { user: 'erin', bootstrap: true } });

    // Two admins now: the host operator's stand-in is over.
    const fred = json<{ pendingChange: RoleChange; otpauthUri: string }>(ok(await as('admin', ['user', 'add', 'fred', '--role', 'admin', '--password-stdin'], 'fred long passphrase'), 'user add fred'));
    added('fred', 'fred long passphrase', fred);
    refusedWith(await as(null, ['user', 'confirm-role-change', fred.pendingChange.id]), 'ROLE_CHANGE_NEEDS_ADMIN');
    expect((await fx.audit('role_change.confirm_refused')).map((e) => e.code)).toEqual(['ROLE_CHANGE_SELF_CONFIRM', 'ROLE_CHANGE_NEEDS_ADMIN']);
    ok(await as('erin', ['user', 'confirm-role-change', fred.pendingChange.id]), 'erin confirms fred');
  });

  it('refuses an admin raising their own roles, and the person concerned confirming; a second admin confirms', async () => {
    refusedWith(await as('erin', ['user', 'set', 'erin', '--role', 'admin', '--role', 'security', '--role', 'device_manager']), 'SELF_ROLE_CHANGE');
    expect((await fx.gw.runtime.store.getUser('erin'))?.roles).toEqual(['admin']);
    const raised = json<{ roles: string[]; pendingChange: RoleChange }>(ok(await as('erin', ['user', 'set', 'fred', '--role', 'admin', '--role', 'security']), 'user set fred'));
    expect(raised).toMatchObject({ roles: ['admin'], pendingChange: { user: 'fred', added: ['security'] } });
    const pending = json<RoleChange[]>(ok(await as('admin', ['user', 'role-changes', '--status', 'pending']), 'role-changes'));
    expect(pending.map((c) => [c.id, c.user, c.requestedBy])).toEqual([[raised.pendingChange.id, 'fred', 'erin']]);
    refusedWith(await as('fred', ['user', 'confirm-role-change', raised.pendingChange.id]), 'ROLE_CHANGE_SELF_CONFIRM');
    refusedWith(await as('erin', ['user', 'confirm-role-change', raised.pendingChange.id]), 'ROLE_CHANGE_SELF_CONFIRM');
    const done = json<{ roles: string[] }>(ok(await as('admin', ['user', 'confirm-role-change', raised.pendingChange.id]), 'admin confirms'));
    expect(done.roles).toEqual(['admin', 'security']);
    // A non-privileged account needs nobody else; taking a role away applies at once.
    const vic = json<{ roles: string[]; pendingChange: null }>(ok(await as(null, ['user', 'add', 'vic', '--role', 'vendor', '--org', 'test-vendor', '--password-stdin'], 'vic long passphrase'), 'user add vic'));
    expect(vic).toMatchObject({ roles: ['vendor'], pendingChange: null });
    expect(json<{ roles: string[] }>(ok(await as('erin', ['user', 'set', 'fred', '--role', 'admin']), 'take security away')).roles).toEqual(['admin']);
    const rejected = json<{ pendingChange: RoleChange }>(ok(await as('erin', ['user', 'set', 'vic', '--role', 'vendor', '--role', 'approver']), 'user set vic'));
    ok(await as('fred', ['user', 'reject-role-change', rejected.pendingChange.id, '--reason', 'not an employee']), 'reject');
    expect((await fx.gw.runtime.store.getUser('vic'))?.roles).toEqual(['vendor']);
  });
});
