import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { createClient } from 'redis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { approveRequest } from '../../gateway/access/requests.js';
import { createApiToken, useApiToken } from '../../gateway/identity/api-tokens.js';
import type { UserRecord } from '../../gateway/store/store.js';
import { PERMISSIONS, type Action } from '../../policy/roles.js';
import { ROLES } from '../../policy/types.js';
import { DECLARED_ROUTES } from '../../web-console/server/api-route.js';
import { ApiClient, signedIn, TotpSource, type ApiResponse } from '../support/api-client.js';
import { CLASS_OF_LEVEL, startGatewayFixture, type GatewayFixture, type TestUser } from '../support/gateway-fixture.js';
import { openTestRedisStore, TEST_REDIS_URL, uniquePrefix } from '../support/redis.js';

/**
 * Issue 13, item 5, from the attacker's side, through the real API over HTTPS: API tokens are
 * refused past expiry, after revocation, outside their scope, when their owner is disabled or has
 * lost the role; never accepted on the terminal, desktop, watch or event-stream routes; need no
 * CSRF token while cookies still do; never mint a wider token; leave no secret in the store, the
 * logs or any answer but the first; and a service account never signs in or approves.
 * R-5.3c, R-5.3d, R-A.3d, R-A.4b, R-A.4d, S-1.3.
 */
type ErrorBody = { error?: { code: string; detail?: string } };
type Created = { token: { id: string; scope: string[]; state: string; owner: string }; secret: string };

const inDays = (d: number): string => new Date(Date.now() + d * 86_400_000).toISOString();

/** A request carrying only the bearer token: no cookie, no CSRF token. */
function withToken<T = ErrorBody>(port: number, token: string, method: string, url: string, body?: unknown): Promise<ApiResponse<T>> {
  return new ApiClient(port).call<T>(method, url, body ?? (method === 'GET' ? undefined : {}), { authorization: `Bearer ${token}` });
}

/** A WebSocket upgrade carrying a bearer token (and this site's Origin): the status and body of the refusal, or 101. */
function upgradeWithToken(port: number, url: string, token: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`wss://127.0.0.1:${port}${url}`, { headers: { authorization: `Bearer ${token}`, origin: `https://127.0.0.1:${port}` }, rejectUnauthorized: false });
    ws.once('unexpected-response', (_req, res) => {
      let body = '';
      res.on('data', (d: Buffer) => { body += d.toString(); });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    ws.once('open', () => { ws.close(); resolve({ status: 101, body: '' }); });
    ws.once('error', (err) => { if (!/Unexpected server response/.test(err.message)) reject(err); });
  });
}

describe('API tokens, attacked through the real API', () => {
  let fx: GatewayFixture;
  const totp = new TotpSource();
  const users: Record<string, TestUser> = {};
  const api: Record<string, ApiClient> = {};
  const secrets: string[] = [];
  let port = 0;

  const make = async (who: string, body: Record<string, unknown>): Promise<ApiResponse<Created & ErrorBody>> => {
    const r = await (api[who] as ApiClient).post<Created & ErrorBody>('/api/tokens', body);
    if (r.status === 201) secrets.push(r.body.secret);
    return r;
  };
  const refusals = async (code: string, tokenId: string): Promise<number> =>
    (await fx.audit('token.refused')).filter((e) => e.code === code && e.data.token === tokenId && e.outcome === 'denied').length;

  beforeAll(async () => {
    fx = await startGatewayFixture();
    port = fx.gw.web.port;
    for (const [name, roles] of [['vic', ['vendor']], ['sam', ['security']], ['ada', ['admin']], ['dora', ['approver']], ['mo', ['device_manager', 'security']]] as const) {
      users[name] = await fx.addUser(name, [...roles]);
      api[name] = await signedIn(port, users[name] as TestUser, totp);
    }
  });
  afterAll(async () => {
    await fx?.stop();
  });

  it('shows the secret once, with its prefix, and lets it in with no CSRF token; the cookie still needs one', async () => {
    const r = await make('sam', { name: 'siem pull', scope: ['audit.read', 'session.list', 'session.kill'], expiresAt: inDays(30) });
    expect(r.status, JSON.stringify(r.body)).toBe(201);
    expect(r.body.secret).toMatch(/^pcx_[0-9a-f]{16}_[A-Za-z0-9_-]{43}$/);
    expect(r.body.token).toMatchObject({ scope: ['audit.read', 'session.kill', 'session.list'], state: 'active', owner: 'sam' });
    const list = await (api.sam as ApiClient).get<{ tokens: Array<Record<string, unknown>> }>('/api/tokens');
    expect(list.body.tokens.map((t) => t.id)).toContain(r.body.token.id);
    expect(JSON.stringify(list.body)).not.toContain(r.body.secret.slice(22));
    expect(Object.keys(list.body.tokens[0] ?? {})).not.toContain('secretHash');

    const read = await withToken<{ entries?: unknown[] } & ErrorBody>(port, r.body.secret, 'GET', '/api/audit?limit=5');
    expect(read.status, JSON.stringify(read.body)).toBe(200);
    // A state change with the bearer token and no X-CSRF-Token: allowed (the kill finds no session).
    const kill = await withToken(port, r.body.secret, 'POST', '/api/sessions/no-such-session/kill', { reason: 'test' });
    expect(kill.body.error?.code).not.toBe('CSRF_INVALID');
    expect([404, 409], JSON.stringify(kill.body)).toContain(kill.status);
    // The same with the cookie and no CSRF token: refused.
    const cookieOnly = new ApiClient(port);
    cookieOnly.cookie = (api.sam as ApiClient).cookie;
    const forged = await cookieOnly.post<ErrorBody>('/api/sessions/no-such-session/kill', { reason: 'test' });
    expect(forged.status).toBe(403);
    expect(forged.body.error?.code).toBe('CSRF_INVALID');
    // A cookie does not rescue a bad bearer token: the bearer request is the token's alone.
    const both = await (api.sam as ApiClient).call<ErrorBody>('GET', '/api/audit?limit=1', undefined, { authorization: 'Bearer pcx_0000000000000000_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA' });
    expect(both.status).toBe(401);
    expect(both.body.error?.code).toBe('TOKEN_INVALID');
    // Every write is audited with the token; reads at least once.
    const used = (await fx.audit('token.used')).filter((e) => e.data.token === r.body.token.id);
    expect(used.some((e) => e.data.write === true && e.data.request === 'POST /api/sessions/:id/kill' && e.actor === 'sam')).toBe(true);
    expect(used.some((e) => e.data.write === false)).toBe(true);
    const after = await (api.sam as ApiClient).get<{ tokens: Array<{ id: string; lastUsedAt: string | null }> }>('/api/tokens');
    expect(after.body.tokens.find((t) => t.id === r.body.token.id)?.lastUsedAt).not.toBeNull();
  });

  it('refuses a wrong or altered secret, and a token used outside its scope, each with its own code, audited', async () => {
    const r = await make('sam', { name: 'audit only', scope: ['audit.read'], expiresAt: inDays(1) });
    const { id } = r.body.token;
    const altered = `${r.body.secret.slice(0, -1)}${r.body.secret.endsWith('A') ? 'B' : 'A'}`;
    const wrong = await withToken(port, altered, 'GET', '/api/audit');
    expect([wrong.status, wrong.body.error?.code]).toEqual([401, 'TOKEN_INVALID']);
    expect(await refusals('TOKEN_INVALID', id)).toBe(1);
    const garbage = await withToken(port, 'not-a-token', 'GET', '/api/audit');
    expect([garbage.status, garbage.body.error?.code]).toEqual([401, 'TOKEN_INVALID']);

    // sam's roles allow session.list, but this token does not hold it.
    const outside = await withToken(port, r.body.secret, 'GET', '/api/sessions');
    expect([outside.status, outside.body.error?.code]).toEqual([403, 'TOKEN_SCOPE']);
    expect(await refusals('TOKEN_SCOPE', id)).toBe(1);
    // Nor does it hold the right to make tokens.
    const mint = await withToken(port, r.body.secret, 'POST', '/api/tokens', { name: 'x', scope: ['audit.read'], expiresAt: inDays(1) });
    expect(mint.body.error?.code).toBe('TOKEN_SCOPE');
    // A signed-in route that changes something has no action to scope a token to: refused.
    const cancel = await withToken(port, r.body.secret, 'POST', '/api/requests/whatever/cancel');
    expect(cancel.body.error?.code).toBe('TOKEN_NOT_ACCEPTED');
  });

  it('cannot make a token wider than its owner may act, or than the token making it', async () => {
    // vic (vendor) cannot give a token the security role's actions.
    const wide = await make('vic', { name: 'greedy', scope: ['request.create', 'audit.read'], expiresAt: inDays(1) });
    expect([wide.status, wide.body.error?.code]).toEqual([403, 'TOKEN_SCOPE_WIDENS']);
    // No expiry, or more than a year: refused.
    expect((await make('vic', { name: 'forever', scope: ['request.create'] })).status).toBe(400);
    expect((await make('vic', { name: 'too long', scope: ['request.create'], expiresAt: inDays(366) })).body.error?.code).toBe('TOKEN_EXPIRY_INVALID');
    expect((await make('vic', { name: 'past', scope: ['request.create'], expiresAt: inDays(-1) })).body.error?.code).toBe('TOKEN_EXPIRY_INVALID');

    const parent = await make('sam', { name: 'parent', scope: ['token.manage', 'audit.read'], expiresAt: inDays(10) });
    expect(parent.status).toBe(201);
    const child = await withToken<Created & ErrorBody>(port, parent.body.secret, 'POST', '/api/tokens', { name: 'child', scope: ['audit.read', 'session.kill'], expiresAt: inDays(5) });
    expect([child.status, child.body.error?.code]).toEqual([403, 'TOKEN_SCOPE_WIDENS']);
    const longer = await withToken<Created & ErrorBody>(port, parent.body.secret, 'POST', '/api/tokens', { name: 'child', scope: ['audit.read'], expiresAt: inDays(20) });
    expect(longer.body.error?.code).toBe('TOKEN_EXPIRY_INVALID');
    const narrower = await withToken<Created & ErrorBody>(port, parent.body.secret, 'POST', '/api/tokens', { name: 'child', scope: ['audit.read'], expiresAt: inDays(5) });
    expect(narrower.status, JSON.stringify(narrower.body)).toBe(201);
    secrets.push(narrower.body.secret);
    // A token never makes one for someone else, not even with user.manage in its scope unless it has it.
    const forOther = await withToken<ErrorBody>(port, parent.body.secret, 'POST', '/api/tokens', { name: 'x', scope: ['audit.read'], expiresAt: inDays(1), user: 'vic' });
    expect(forOther.status).toBe(403);
    expect((await fx.audit('token.refused')).filter((e) => e.actor === 'sam' && e.code === 'TOKEN_SCOPE_WIDENS').length).toBeGreaterThanOrEqual(1);
  });

  it('refuses a token after revocation, and past its expiry', async () => {
    const r = await make('vic', { name: 'ci', scope: ['device.search'], expiresAt: inDays(1) });
    expect((await withToken(port, r.body.secret, 'GET', '/api/devices')).status).toBe(200);
    // Someone else's token reads as unknown to vic's peers; the owner revokes it.
    expect((await (api.dora as ApiClient).post<ErrorBody>(`/api/tokens/${r.body.token.id}/revoke`)).status).toBe(404);
    expect((await (api.vic as ApiClient).post(`/api/tokens/${r.body.token.id}/revoke`)).status).toBe(200);
    expect((await (api.vic as ApiClient).post<ErrorBody>(`/api/tokens/${r.body.token.id}/revoke`)).body.error?.code).toBe('ALREADY_REVOKED');
    const revoked = await withToken(port, r.body.secret, 'GET', '/api/devices');
    expect([revoked.status, revoked.body.error?.code]).toEqual([401, 'TOKEN_REVOKED']);
    expect(await refusals('TOKEN_REVOKED', r.body.token.id)).toBe(1);

    const short = await make('vic', { name: 'short', scope: ['device.search'], expiresAt: new Date(Date.now() + 2500).toISOString() });
    expect(short.status).toBe(201);
    // Waits for the expiry to pass (a condition, not a fixed sleep).
    let last: ApiResponse<ErrorBody> = await withToken(port, short.body.secret, 'GET', '/api/devices');
    while (last.status === 200) {
      await new Promise((res) => setTimeout(res, 200));
      last = await withToken(port, short.body.secret, 'GET', '/api/devices');
    }
    expect([last.status, last.body.error?.code]).toEqual([401, 'TOKEN_EXPIRED']);
    expect(await refusals('TOKEN_EXPIRED', short.body.token.id)).toBeGreaterThanOrEqual(1);
  });

  it('follows its owner: a lost role is gone from the token, a disabled owner takes it down', async () => {
    const r = await make('mo', { name: 'watchdog', scope: ['session.list', 'device.search'], expiresAt: inDays(7) });
    expect((await withToken(port, r.body.secret, 'GET', '/api/sessions')).status).toBe(200);
    // mo loses security (session.list); device_manager keeps device.search.
    expect((await (api.ada as ApiClient).call('PATCH', '/api/users/mo', { roles: ['device_manager'] })).status).toBe(200);
    const lost = await withToken(port, r.body.secret, 'GET', '/api/sessions');
    expect([lost.status, lost.body.error?.code]).toEqual([403, 'FORBIDDEN']);
    expect(await refusals('FORBIDDEN', r.body.token.id)).toBe(1);
    expect((await withToken(port, r.body.secret, 'GET', '/api/devices')).status).toBe(200);
    // Disabled: nothing at all.
    expect((await (api.ada as ApiClient).post('/api/users/mo/disable')).status).toBe(200);
    const off = await withToken(port, r.body.secret, 'GET', '/api/devices');
    expect([off.status, off.body.error?.code]).toEqual([403, 'ACCOUNT_DISABLED']);
    expect(await refusals('ACCOUNT_DISABLED', r.body.token.id)).toBe(1);
    expect((await (api.ada as ApiClient).post('/api/users/mo/enable')).status).toBe(200);
    expect((await withToken(port, r.body.secret, 'GET', '/api/devices')).status).toBe(200);
  });

  it('is never accepted on the terminal, desktop, watch or event-stream routes, nor the sign-in session routes', async () => {
    const r = await make('sam', { name: 'everything sam may', scope: ['session.connect', 'session.watch', 'session.list', 'audit.read'], expiresAt: inDays(1) });
    const sockets = DECLARED_ROUTES.filter((d) => d.produces === 'websocket');
    expect(sockets.map((d) => d.url).sort()).toEqual(['/api/desktop', '/api/sessions/:id/watch', '/api/terminal']);
    for (const url of ['/api/terminal?device=any', '/api/desktop?device=any&protocol=vnc', '/api/sessions/any/watch']) {
      const res = await upgradeWithToken(port, url, r.body.secret);
      expect(res.status, url).toBe(403);
      expect((JSON.parse(res.body) as ErrorBody).error?.code, url).toBe('TOKEN_NOT_ACCEPTED');
    }
    const events = await withToken(port, r.body.secret, 'GET', '/api/events');
    expect([events.status, events.body.error?.code]).toEqual([403, 'TOKEN_NOT_ACCEPTED']);
    for (const [method, url] of [['GET', '/api/auth/me'], ['POST', '/api/auth/logout'], ['PUT', '/api/auth/me/locale']] as const) {
      const res = await withToken(port, r.body.secret, method, url, method === 'PUT' ? { locale: 'en' } : undefined);
      expect(res.body.error?.code, url).toBe('TOKEN_NOT_ACCEPTED');
    }
    expect(await refusals('TOKEN_NOT_ACCEPTED', r.body.token.id)).toBe(7);
  });

  it('keeps a service account out of sign-in and out of every approval', async () => {
    const sa = await (api.ada as ApiClient).post<{ name: string; serviceAccount: boolean } & ErrorBody>('/api/service-accounts', { name: 'cmdb', roles: ['approver', 'admin'] });
    expect(sa.status, JSON.stringify(sa.body)).toBe(201);
    expect(sa.body.serviceAccount).toBe(true);
    // Only admins make service accounts and their tokens; a person's tokens are their own.
    expect((await make('sam', { name: 'x', scope: ['device.search'], expiresAt: inDays(1), user: 'cmdb' })).status).toBe(403);
    expect((await make('ada', { name: 'as vic', scope: ['device.search'], expiresAt: inDays(1), user: 'vic' })).status).toBe(403);
    // No token of a service account may hold a person's decision.
    const decide = await make('ada', { name: 'approve bot', scope: ['request.decide'], expiresAt: inDays(1), user: 'cmdb' });
    expect([decide.status, decide.body.error?.code]).toEqual([403, 'SERVICE_ACCOUNT_NOT_A_PERSON']);
    const t = await make('ada', { name: 'inventory import', scope: ['device.manage', 'device.read'], expiresAt: inDays(90), user: 'cmdb' });
    expect(t.status, JSON.stringify(t.body)).toBe(201);
    const adaList = await (api.ada as ApiClient).get<{ tokens: Array<{ id: string; owner: string; ownerIsServiceAccount: boolean }> }>('/api/tokens?all=true');
    expect(adaList.body.tokens.find((x) => x.id === t.body.token.id)).toMatchObject({ owner: 'cmdb', ownerIsServiceAccount: true });
    expect((await (api.vic as ApiClient).get<ErrorBody>('/api/tokens?all=true')).status).toBe(403);

    // A request a level-1 device's approver could approve…
    const added = await fx.cli(['device', 'add', 'lab-9', '--host', '127.0.0.1', '--port', '22', '--protocol', 'ssh', '--udi', 'UDI-LAB-9', ...CLASS_OF_LEVEL[1]]);
    expect(added.code, added.stderr).toBe(0);
    const req = await (api.vic as ApiClient).post<{ id: string }>('/api/requests', {
      devices: ['lab-9'], protocols: ['ssh'], purpose: 'calibration', workOrder: 'WO-9', from: new Date(Date.now() + 60_000).toISOString(), durationMinutes: 30,
    });
    expect(req.status, JSON.stringify(req.body)).toBe(201);
    // …is not the service account's to approve: not through its token,
    const viaToken = await withToken(port, t.body.secret, 'POST', `/api/requests/${req.body.id}/approve`, {});
    expect([viaToken.status, viaToken.body.error?.code]).toEqual([403, 'TOKEN_SCOPE']);
    // nor inside the gateway, whatever front door called (the CLI included),
    const cmdb = (await fx.gw.runtime.store.getUser('cmdb')) as UserRecord;
    await expect(approveRequest(fx.gw.runtime, cmdb, req.body.id, null, null)).rejects.toMatchObject({ code: 'SERVICE_ACCOUNT_NOT_A_PERSON' });
    expect((await fx.audit('request.approval_refused')).some((e) => e.actor === 'cmdb' && e.code === 'SERVICE_ACCOUNT_NOT_A_PERSON')).toBe(true);
    // and it cannot sign in to do it by hand, even after someone set it a password.
    await fx.gw.runtime.store.updateUser('cmdb', { passwordHash: (await fx.gw.runtime.store.getUser('vic'))?.passwordHash as string });
    const login = await new ApiClient(port).post<ErrorBody>('/api/auth/login', { username: 'cmdb', password: (users.vic as TestUser).password, totp: '000000' });
    expect(login.body.error?.code).toBe('AUTH_FAILED');
    expect((await fx.audit('login.failed')).some((e) => e.actor === 'cmdb' && String(e.data.reason).includes('service account'))).toBe(true);
    // The request still waits for a person.
    expect((await (api.dora as ApiClient).get<{ status: string }>(`/api/requests/${req.body.id}`)).body.status).toBe('pending');
  });

  it('is made, listed and revoked from the CLI too; a service account\'s token printed once works over HTTPS', async () => {
    const json = <T>(r: { code: number; stdout: string; stderr: string }): T => {
      expect(r.code, r.stderr).toBe(0);
      return JSON.parse(r.stdout) as T;
    };
    // --help prints the usage and makes nothing.
    const help = await fx.cli(['token', 'create', '--name', 'x', '--scope', 'audit.read', '--expires', '+1d', '--user', 'siem', '--help']);
    expect([help.code, help.stdout.includes('token create --name N')]).toEqual([0, true]);
    // A privileged role on a service account is a named admin's to give (S-1.3), not the host operator's.
    const byOperator = await fx.cli(['service-account', 'add', 'siem', '--role', 'security', '--json']);
    expect(byOperator.code).not.toBe(0);
    expect(byOperator.stdout + byOperator.stderr).toContain('PERSON_REQUIRED');
    json(await fx.cliAs(fx.admin, ['service-account', 'add', 'siem', '--role', 'security', '--json']));
    // The host operator has no tokens of its own.
    const own = await fx.cli(['token', 'create', '--name', 'mine', '--scope', 'audit.read', '--expires', '+30d']);
    expect(own.code).not.toBe(0);
    expect(own.stderr).toContain('service account');
    const tooLong = await fx.cli(['token', 'create', '--user', 'siem', '--name', 'pull', '--scope', 'audit.read', '--expires', '+400d']);
    expect(tooLong.stderr).toMatch(/more than a year/);
    const made = json<Created>(await fx.cli(['token', 'create', '--user', 'siem', '--name', 'pull', '--scope', 'audit.read', '--scope', 'session.list', '--expires', '+30d', '--json']));
    secrets.push(made.secret);
    expect(made.token).toMatchObject({ owner: 'siem', scope: ['audit.read', 'session.list'] });
    expect((await withToken(port, made.secret, 'GET', '/api/audit?limit=1')).status).toBe(200);
    // No password, no TOTP: the service account is in the list, and cannot be given request.decide.
    expect(json<Array<{ name: string }>>(await fx.cli(['service-account', 'list', '--json'])).map((a) => a.name)).toContain('siem');
    const listed = json<Array<{ id: string; lastUsedAt: string | null }>>(await fx.cli(['token', 'list', '--user', 'siem', '--json']));
    expect(listed.find((t) => t.id === made.token.id)?.lastUsedAt).not.toBeNull();
    expect(JSON.stringify(listed)).not.toContain(made.secret.slice(22));
    const text = await fx.cli(['token', 'list', '--all']);
    expect(text.stdout).toContain(made.token.id);
    expect(text.stdout).not.toContain(made.secret.slice(22));
    json(await fx.cli(['token', 'revoke', made.token.id, '--json']));
    expect((await withToken(port, made.secret, 'GET', '/api/audit?limit=1')).body.error?.code).toBe('TOKEN_REVOKED');
    expect((await fx.audit('token.revoked')).some((e) => e.data.token === made.token.id && String(e.actor).startsWith('local:'))).toBe(true);
  });

  it('proves an actor outside the API (the CLI\'s PORTCULLIS_TOKEN) with the same checks, audited', async () => {
    const r = await make('dora', { name: 'cli', scope: ['request.read_all'], expiresAt: inDays(1) });
    const rt = fx.gw.runtime;
    const where = { source: 'cli test', channel: 'cli', request: 'request list' };
    await expect(useApiToken(rt, r.body.secret, { action: 'request.read_all', ...where })).resolves.toMatchObject({ user: { name: 'dora' }, token: { id: r.body.token.id } });
    await expect(useApiToken(rt, r.body.secret, { action: 'request.decide', ...where })).rejects.toMatchObject({ code: 'TOKEN_SCOPE' });
    await expect(useApiToken(rt, `${r.body.secret}x`, { action: 'request.read_all', ...where })).rejects.toMatchObject({ code: 'TOKEN_INVALID' });
    const entries = (await fx.audit()).filter((e) => e.data.token === r.body.token.id && e.data.channel === 'cli');
    expect(entries.map((e) => `${e.type} ${e.code ?? ''}`)).toEqual(['token.used ', 'token.refused TOKEN_SCOPE']);
  });

  it('refuses a token over its rate per minute, and audits that once a minute', async () => {
    // A gateway of its own whose limit is 3 a minute (read at its first bearer request).
    const small = await startGatewayFixture();
    try {
      small.gw.runtime.config.web.token_requests_per_minute = 3;
      const u = await small.addUser('rita', ['security']);
      const c = await signedIn(small.gw.web.port, u, totp);
      const r = await c.post<Created>('/api/tokens', { name: 'rate', scope: ['audit.read'], expiresAt: inDays(1) });
      expect(r.status).toBe(201);
      const statuses: number[] = [];
      for (let i = 0; i < 5; i++) statuses.push((await withToken(small.gw.web.port, r.body.secret, 'GET', '/api/audit?limit=1')).status);
      expect(statuses).toEqual([200, 200, 200, 429, 429]);
      const limited = await withToken(small.gw.web.port, r.body.secret, 'GET', '/api/audit?limit=1');
      expect(limited.body.error?.code).toBe('TOKEN_RATE_LIMITED');
      const entries = (await small.audit('token.refused')).filter((e) => e.code === 'TOKEN_RATE_LIMITED' && e.data.token === r.body.token.id);
      expect(entries).toHaveLength(1);
      // Another token of the same person has its own count.
      const other = await c.post<Created>('/api/tokens', { name: 'rate 2', scope: ['audit.read'], expiresAt: inDays(1) });
      expect((await withToken(small.gw.web.port, other.body.secret, 'GET', '/api/audit?limit=1')).status).toBe(200);
    } finally {
      await small.stop();
    }
  });

  it('opens no route a cookie would not: every declared route, with a token holding all its owner may do, per role (R-A.4b)', async () => {
    const mismatches: string[] = [];
    for (const role of ROLES) {
      const u = await fx.addUser(`tm-${role.replace('_', '-')}`, [role]);
      const all = (Object.keys(PERMISSIONS) as Action[]).filter((a) => (PERMISSIONS[a] as readonly string[]).includes(role));
      // Made in-process (the console's sign-ins per address are limited); the same function POST /api/tokens calls.
      const owner = (await fx.gw.runtime.store.getUser(u.name)) as UserRecord;
      const r = { body: await createApiToken(fx.gw.runtime, { owner: u.name, name: 'everything', scope: all, expiresAt: Date.now() + 86_400_000 }, { actor: u.name, user: owner, viaToken: null, mayManageUsers: false }) };
      secrets.push(r.body.secret);
      for (const d of DECLARED_ROUTES) {
        const url = d.url.replace(/:([A-Za-z]+)/g, 'no-such-$1');
        const browserOnly = d.url.startsWith('/api/auth/') || d.produces === 'websocket' || d.produces === 'text/event-stream';
        const want = browserOnly || (d.access === 'signed-in' && d.method !== 'GET') ? 'TOKEN_NOT_ACCEPTED'
          : d.access === 'public' || d.access === 'signed-in' || all.includes(d.access as Action) ? 'allowed' : 'TOKEN_SCOPE';
        const res = await withToken(port, r.body.secret, d.method, url);
        const code = res.body && typeof res.body === 'object' ? res.body.error?.code : undefined;
        const got = code === 'TOKEN_NOT_ACCEPTED' || code === 'TOKEN_SCOPE' || code === 'FORBIDDEN' || code === 'UNAUTHENTICATED' || code === 'CSRF_INVALID' ? code : 'allowed';
        if (got !== want) mismatches.push(`${d.method} ${d.url} as ${role}'s token: expected ${want}, got ${res.status} ${code ?? ''}`);
        if (res.status >= 500) mismatches.push(`${d.method} ${d.url} as ${role}'s token: server error ${res.status}`);
      }
    }
    expect(mismatches).toEqual([]);
  });

  it('leaves the secret nowhere: not in the database files, the audit data, the logs or any later answer', async () => {
    expect(secrets.length).toBeGreaterThan(5);
    const dataDir = path.join(fx.dir, 'data');
    const files = readdirSync(dataDir, { recursive: true, withFileTypes: true }).filter((d) => d.isFile()).map((d) => path.join(d.parentPath, d.name));
    expect(files.some((f) => f.endsWith('.db'))).toBe(true);
    const blobs = files.map((f) => readFileSync(f).toString('latin1'));
    const audit = JSON.stringify(await fx.audit());
    const logs = fx.logs.join('\n');
    for (const s of secrets) {
      const secretPart = s.slice(22);
      for (const [i, b] of blobs.entries()) expect(b.includes(secretPart), files[i]).toBe(false);
      expect(audit.includes(secretPart)).toBe(false);
      expect(logs.includes(secretPart)).toBe(false);
    }
    // The token ids are there (they are not secret), so the search above looked in the right place.
    expect(blobs.some((b) => b.includes((secrets[0] as string).slice(4, 20)))).toBe(true);
    expect(audit).toContain((secrets[0] as string).slice(4, 20));
  });
});

describe('API tokens on the Redis store', () => {
  let fx: GatewayFixture;
  const prefix = uniquePrefix();

  beforeAll(async () => {
    fx = await startGatewayFixture(['[store]', 'backend = "redis"', `url = "${TEST_REDIS_URL}"`, `prefix = "${prefix}"`].join('\n'));
  });
  afterAll(async () => {
    await fx?.stop();
    const s = await openTestRedisStore(prefix);
    await s.dropAll();
    await s.close();
  });

  it('works through the API and keeps no secret in any Redis key', async () => {
    const totp = new TotpSource();
    const u = await fx.addUser('rosa', ['security']);
    const c = await signedIn(fx.gw.web.port, u, totp);
    const r = await c.post<Created>('/api/tokens', { name: 'siem', scope: ['audit.read'], expiresAt: inDays(2) });
    expect(r.status).toBe(201);
    expect((await withToken(fx.gw.web.port, r.body.secret, 'GET', '/api/audit?limit=1')).status).toBe(200);
    expect((await c.post(`/api/tokens/${r.body.token.id}/revoke`)).status).toBe(200);
    expect((await withToken(fx.gw.web.port, r.body.secret, 'GET', '/api/audit?limit=1')).body).toMatchObject({ error: { code: 'TOKEN_REVOKED' } });

    const client = createClient({ url: TEST_REDIS_URL });
    await client.connect();
    try {
      let dump = '';
      for await (const keys of client.scanIterator({ MATCH: `${prefix}*`, COUNT: 500 })) {
        for (const key of [keys].flat()) {
          const type = await client.type(key);
          const value = type === 'hash' ? await client.hGetAll(key) : type === 'string' ? await client.get(key) : type === 'zset' ? await client.zRange(key, 0, -1) : type === 'stream' ? await client.xRange(key, '-', '+') : null;
          dump += `${key} ${JSON.stringify(value)}\n`;
        }
      }
      expect(dump).toContain(r.body.token.id);
      expect(dump.includes(r.body.secret.slice(22))).toBe(false);
    } finally {
      await client.close();
    }
  });
});
