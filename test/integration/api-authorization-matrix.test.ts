import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PERMISSIONS } from '../../policy/roles.js';
import { ROLES, type Role } from '../../policy/types.js';
import { DECLARED_ROUTES } from '../../web-console/server/api-route.js';
import { ApiClient, TotpSource } from '../support/api-client.js';
import { startGatewayFixture, type GatewayFixture } from '../support/gateway-fixture.js';

/**
 * S-1.3, R-A.4b: every route of the JSON API, called as every role and without signing in, is
 * allowed or refused exactly as the one declared matrix (policy/roles.ts PERMISSIONS, and each
 * route's declared access) says. A route the server answers but never declared fails the test.
 */
type Caller = Role | 'anonymous';
const CALLERS: Caller[] = ['anonymous', ...ROLES];

/** Routes served outside the API's declarations, all public and read-only. */
const UNDECLARED_PUBLIC = new Set(['GET /healthz', 'GET /readyz', 'GET /api/openapi.json', 'GET /', 'GET /assets/*']);

function expected(access: string, caller: Caller): 'allowed' | 'unauthenticated' | 'forbidden' {
  if (access === 'public') return 'allowed';
  if (caller === 'anonymous') return 'unauthenticated';
  if (access === 'signed-in') return 'allowed';
  return (PERMISSIONS[access as keyof typeof PERMISSIONS] as readonly string[]).includes(caller) ? 'allowed' : 'forbidden';
}

describe('the API authorization matrix', () => {
  let fx: GatewayFixture;
  const clients = new Map<Caller, ApiClient>();

  beforeAll(async () => {
    fx = await startGatewayFixture();
    const totp = new TotpSource();
    clients.set('anonymous', new ApiClient(fx.gw.web.port));
    for (const role of ROLES) {
      const u = await fx.addUser(`matrix-${role.replace('_', '-')}`, [role]);
      const c = new ApiClient(fx.gw.web.port);
      const r = await c.login(u.name, u.password, { code: await totp.code(u.totpSecret) });
      expect(r.status, JSON.stringify(r.body)).toBe(200);
      clients.set(role, c);
    }
  });
  afterAll(async () => {
    await fx?.stop();
  });

  it('declares every route the server answers', () => {
    const declared = new Set(DECLARED_ROUTES.map((r) => `${r.method} ${r.url}`));
    const undeclared = fx.gw.webRoutes.map((r) => `${r.method} ${r.url}`).filter((r) => !declared.has(r) && !UNDECLARED_PUBLIC.has(r));
    expect(undeclared).toEqual([]);
    expect(DECLARED_ROUTES.length).toBeGreaterThan(25);
  });

  it('allows and refuses every route for every role exactly as declared', async () => {
    const mismatches: string[] = [];
    let calls = 0;
    for (const r of DECLARED_ROUTES) {
      // Made-up ids: an allowed caller gets past the role check and then finds nothing (404) or a bad body (400).
      const url = r.url.replace(/:([A-Za-z]+)/g, 'no-such-$1');
      for (const caller of CALLERS) {
        if (r.url === '/api/auth/logout' && caller !== 'anonymous') continue; // would sign the caller out for the rest of the matrix
        // An event stream never ends: read its status and headers, then hang up.
        const res = r.produces === 'text/event-stream'
          ? await (clients.get(caller) as ApiClient).head(url)
          : await (clients.get(caller) as ApiClient).call<{ error?: { code: string } }>(r.method, url, r.method === 'GET' ? undefined : {});
        calls += 1;
        const code = res.body && typeof res.body === 'object' ? res.body.error?.code : undefined;
        const got = res.status === 401 && code === 'UNAUTHENTICATED' ? 'unauthenticated' : res.status === 403 && code === 'FORBIDDEN' ? 'forbidden' : 'allowed';
        const want = expected(r.access, caller);
        if (got !== want) mismatches.push(`${r.method} ${r.url} as ${caller}: expected ${want}, got ${res.status} ${code ?? ''}`);
        if (res.status >= 500) mismatches.push(`${r.method} ${r.url} as ${caller}: server error ${res.status}`);
      }
    }
    expect(mismatches).toEqual([]);
    expect(calls).toBeGreaterThan(150);
  });

  it('refuses a state-changing call without the CSRF token, even with a valid session cookie', async () => {
    const sec = clients.get('security') as ApiClient;
    const noCsrf = await sec.call<{ error: { code: string } }>('POST', '/api/sessions/x/kill', { reason: 'x' }, { 'x-csrf-token': 'forged' });
    expect(noCsrf.status).toBe(403);
    expect(noCsrf.body.error.code).toBe('CSRF_INVALID');
  });

  it('publishes the OpenAPI document of every declared route', async () => {
    const doc = await (clients.get('anonymous') as ApiClient).get<{ openapi: string; paths: Record<string, Record<string, { 'x-portcullis-access': string }>> }>('/api/openapi.json');
    expect(doc.body.openapi).toBe('3.1.0');
    for (const r of DECLARED_ROUTES) {
      const op = doc.body.paths[r.url.replace(/:([A-Za-z]+)/g, '{$1}')]?.[r.method.toLowerCase()];
      expect(op?.['x-portcullis-access'], `${r.method} ${r.url}`).toBe(r.access);
    }
  });

  it('answers with security headers and no stack traces', async () => {
    const res = await (clients.get('admin') as ApiClient).call('POST', '/api/devices', '{not json');
    expect(res.status).toBe(400);
    expect(JSON.stringify(res.body)).not.toMatch(/at .*\.js:\d+/);
    expect(res.headers['strict-transport-security']).toContain('max-age=');
    expect(res.headers['x-content-type-options']).toBe('nosniff');
  });
});
