import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApiClient} from '../support/api-client.js';
import { signedIn, TotpSource } from '../support/api-client.js';
import type { DeviceSshd } from '../support/device-sshd.js';
import { startGatewayWithDevice, type GatewayFixture, type TestUser } from '../support/gateway-fixture.js';
import { openSocket, type Socket } from '../support/web-socket.js';

const IDLE_MS = 30 * 60_000; // the default web.session_idle_timeout

/** The store key of the browser session behind an API client's cookie (the SHA-256 of its token). */
const sessionKey = (api: ApiClient): string => createHash('sha256').update((api.cookie ?? '').split('=')[1] ?? '').digest('hex');

/**
 * A WebSocket of the console (terminal, desktop, watch) lives exactly as long as the browser
 * session that opened it (R-A.4a: sign-in governs access; R-5.3d). While it is open it is use of
 * the console, so a vendor typing in a terminal for an hour is not signed out for sending no HTTP
 * requests; when the session ends (signed out here, or anywhere, or lapsed), the socket is told
 * why and closed, which ends the device session behind it.
 */
describe('browser sessions and the WebSockets they open', () => {
  let fx: GatewayFixture;
  let device: DeviceSshd;
  const totp = new TotpSource();
  let vendor: TestUser;
  /** Another vendor: a second sign-in of the same account would wait for the next TOTP window. */
  let other: TestUser;
  let security: TestUser;
  const open: Socket[] = [];

  const signIn = (u: TestUser): Promise<ApiClient> => signedIn(fx.gw.web.port, u, totp);
  const terminal = async (api: ApiClient): Promise<Socket> => {
    const term = await openSocket(fx.gw.web.port, '/api/terminal?device=wss-1&cols=100&rows=30', api);
    open.push(term);
    await term.waitFor(() => term.controls.some((c) => c.type === 'status' && c.state === 'connected'));
    return term;
  };
  const sessionIdOf = (term: Socket): string => term.controls.find((c) => c.type === 'status')?.session as string;
  /** As if the browser session had last been seen `ago` ms ago. */
  const lastSeen = async (api: ApiClient, ago: number): Promise<void> => {
    const now = Date.now();
    await fx.gw.runtime.store.touchWebSession(sessionKey(api), now - ago, now - ago + IDLE_MS);
  };

  beforeAll(async () => {
    ({ fx, device } = await startGatewayWithDevice('wss-1'));
    vendor = await fx.addUser('wes');
    await fx.grant('wes', 'wss-1', 'now', '+1h');
    other = await fx.addUser('wynn');
    await fx.grant('wynn', 'wss-1', 'now', '+1h');
    security = await fx.addUser('sec-wss', ['security']);
  });
  afterAll(async () => {
    for (const s of open) s.ws.close();
    await fx?.stop();
    await device?.stop();
  });

  it('keeps the browser session of a terminal in use from idling out, and lets one with nothing open lapse', async () => {
    const busy = await signIn(vendor);
    const idle = await signIn(vendor);
    const term = await terminal(busy);
    // Both were last seen 8 s short of the idle timeout (an open socket checks in every 5 s); only
    // the one with an open terminal is renewed.
    const set = Date.now();
    await lastSeen(busy, IDLE_MS - 8000);
    await lastSeen(idle, IDLE_MS - 8000);
    await expect.poll(async () => (await fx.gw.runtime.store.getWebSession(sessionKey(busy), Date.now()))?.lastSeenAt ?? 0, { timeout: 30_000 })
      .toBeGreaterThanOrEqual(set);
    await new Promise((r) => setTimeout(r, Math.max(0, set + 8500 - Date.now())));
    expect((await busy.get('/api/auth/me')).status).toBe(200);
    expect((await idle.get<{ error: { code: string } }>('/api/auth/me')).body.error.code).toBe('UNAUTHENTICATED');
    // The terminal still works.
    term.ws.send(Buffer.from('echo still-$((20+22))\r'), { binary: true });
    await term.waitFor(() => term.text().includes('still-42'));
  });

  it('closes the terminal at sign-out, telling the browser why, and ends the device session', async () => {
    const api = await signIn(vendor);
    const term = await terminal(api);
    const id = sessionIdOf(term);
    expect((await api.post('/api/auth/logout')).status).toBe(200);
    await term.closed;
    expect(term.controls.at(-1)).toMatchObject({ type: 'end', code: 'UNAUTHENTICATED', message: expect.stringContaining('signed out') });
    await expect.poll(async () => (await fx.gw.runtime.store.getSession(id))?.endReason ?? null, { timeout: 30_000 }).toBe('client_closed');
    // The cookie is spent, for new sockets too.
    await expect(openSocket(fx.gw.web.port, '/api/terminal?device=wss-1&cols=80&rows=24', api)).rejects.toThrow(/401/);
  });

  it('closes a live watch whose browser session ended elsewhere (another node signed it out)', async () => {
    const vendorApi = await signIn(other);
    const term = await terminal(vendorApi);
    const watcherApi = await signIn(security);
    const watch = await openSocket(fx.gw.web.port, `/api/sessions/${sessionIdOf(term)}/watch`, watcherApi);
    open.push(watch);
    term.ws.send(Buffer.from('echo watched-$((6*7))\r'), { binary: true });
    await watch.waitFor(() => watch.text().includes('watched-42'));
    // Another node's sign-out: the row is gone from the shared store, nothing is said to this node.
    await fx.gw.runtime.store.deleteWebSession(sessionKey(watcherApi));
    await watch.closed;
    expect(watch.controls.at(-1)).toMatchObject({ type: 'end', code: 'UNAUTHENTICATED', message: expect.stringContaining('Sign in again') });
    // The watched session goes on: only the watcher's sign-in ended.
    term.ws.send(Buffer.from('echo after-$((40+2))\r'), { binary: true });
    await term.waitFor(() => term.text().includes('after-42'));
  });
});
