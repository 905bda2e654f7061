import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiClient, oathtoolCode } from '../support/api-client.js';
import type { CliResult } from '../support/gateway-fixture.js';
import type { GatewayProcess } from '../support/gateway-process.js';
import { interactiveSsh, runSsh, type SshRun } from '../support/ssh-client.js';
import { startTwoNodes, type NodeUser, type TwoNodes } from '../support/two-nodes.js';
import { openSocket } from '../support/web-socket.js';

/**
 * Two gateway processes on one Redis (issue 3): whatever happens on one node takes effect on the
 * session the other holds, security state is shared, and a node that dies has its sessions
 * marked interrupted. Real processes, real Redis, real OpenSSH on both sides.
 */
// What these tests assert is that a kill, revoke, disable or lock made on one node ends a session
// on another, with the reason. How fast (R-5.3d: within a second) is measured by the cluster bench
// (`npm run bench`, test/bench/cluster.ts) against a same-node kill in the same run: a timed
// assertion here would only measure how loaded the machine running the suite is.
describe('two gateway nodes on one Redis', () => {
  let nodes: TwoNodes;
  let a: GatewayProcess;
  let b: GatewayProcess;
  // The heartbeat is fast so that a node that dies is noticed within the test (node_timeout).
  beforeAll(async () => {
    nodes = await startTwoNodes({ tag: 'cluster', extraToml: ['heartbeat_interval = "250ms"', 'node_timeout = "2s"', '[log]', 'level = "debug"'] });
    ({ a, b } = nodes);
  });
  afterAll(async () => {
    await nodes?.stop();
  });
  const addUser = (name: string, role?: string): Promise<NodeUser> => nodes.addUser(name, role);
  const grant = (user: string): Promise<CliResult> => nodes.grant(user);
  const openSession = (node: GatewayProcess, u: NodeUser): { started: Promise<void>; done: Promise<SshRun> } => nodes.openSession(node, u);
  const cli = (args: string[], stdin?: string): Promise<CliResult> => nodes.cli(args, stdin);

  it('lists the live sessions of both nodes in one list, each with its node', async () => {
    const vic = await addUser('vic');
    const wes = await addUser('wes');
    const sec = await addUser('sec-list', 'security');
    await grant('vic');
    await grant('wes');
    const onA = openSession(a, vic);
    const onB = openSession(b, wes);
    await Promise.all([onA.started, onB.started]);
    const api = new ApiClient(a.webPort);
    expect((await api.login(sec.name, sec.password, { secret: sec.secret })).status).toBe(200);
    const live = await api.get<{ sessions: Array<{ user: string; node: string; nodeAlive: boolean; endedAt: string | null }>; nodes: Array<{ id: string }> }>('/api/sessions?open=true');
    expect(live.status).toBe(200);
    const mine = live.body.sessions.filter((s) => s.user === 'vic' || s.user === 'wes').map((s) => [s.user, s.node, s.nodeAlive]);
    expect(mine.sort()).toEqual([['vic', 'gw-a', true], ['wes', 'gw-b', true]]);
    expect(live.body.nodes.map((n) => n.id).sort()).toEqual(['gw-a', 'gw-b']);
    // Ended from the other node's API, both of them.
    const apiB = new ApiClient(b.webPort);
    await apiB.login(sec.name, sec.password, { code: oathtoolCode(sec.secret, new Date(Date.now() + 30_000)) });
    for (const s of (await apiB.get<{ sessions: Array<{ id: string; user: string }> }>('/api/sessions?open=true')).body.sessions) {
      if (s.user === 'vic' || s.user === 'wes') expect((await apiB.post(`/api/sessions/${s.id}/kill`, { reason: 'test over' })).status).toBe(202);
    }
    await Promise.all([onA.done, onB.done]);
  });

  it('ends a session on node A when security kills it from node B; the vendor is told why', async () => {
    const alice = await addUser('alice');
    const sec = await addUser('sec-kill', 'security');
    await grant('alice');
    const s = openSession(a, alice);
    await s.started;
    const api = new ApiClient(b.webPort);
    await api.login(sec.name, sec.password, { secret: sec.secret });
    const live = await api.get<{ sessions: Array<{ id: string; user: string; node: string }> }>('/api/sessions?open=true&user=alice');
    const target = live.body.sessions[0];
    expect(target?.node).toBe('gw-a');
    const kill = await api.post(`/api/sessions/${target?.id}/kill`, { reason: 'unexpected firmware download' });
    expect(kill.status).toBe(202);
    const run = await s.done;
    expect(run.stderr).toContain('[SESSION_KILLED]');
    expect(run.stderr).toContain('unexpected firmware download');
    // The same session cannot be killed twice; another user's API call cannot kill at all.
    await expect.poll(async () => (await api.get<{ sessions: Array<{ endReason: string | null }> }>('/api/sessions?user=alice')).body.sessions[0]?.endReason, { timeout: 30_000 }).toBe('killed');
    expect((await api.post(`/api/sessions/${target?.id}/kill`, { reason: 'again' })).status).toBe(409);
    const vendorApi = new ApiClient(b.webPort);
    await vendorApi.login(alice.name, alice.password, { code: oathtoolCode(alice.secret, new Date(Date.now() + 30_000)) });
    expect((await vendorApi.post(`/api/sessions/${target?.id}/kill`, { reason: 'x' })).status).toBe(403);
  });

  it('lets security on node B watch, live, a session that node A holds', async () => {
    const walt = await addUser('walt');
    const sec = await addUser('sec-watch-x', 'security');
    await grant('walt');
    const u = walt;
    const s = interactiveSsh({ port: a.sshPort, login: 'walt#ct-01', password: u.password, totpSecret: u.secret });
    s.type('echo before-watch\r');
    await s.waitFor('before-watch');
    const api = new ApiClient(b.webPort);
    await api.login(sec.name, sec.password, { secret: sec.secret });
    const id = (await api.get<{ sessions: Array<{ id: string; node: string }> }>('/api/sessions?open=true&user=walt')).body.sessions[0]?.id;
    const watch = await openSocket(b.webPort, `/api/sessions/${id}/watch`, api);
    // First the recent screen (the backlog), then what happens from now on.
    await watch.waitFor(() => watch.text().includes('before-watch'));
    s.type('echo seen-from-$((2*21))\r');
    await watch.waitFor(() => watch.text().includes('seen-from-42'));
    s.type('exit\r');
    await s.done;
    await watch.closed;
    expect(watch.controls.at(-1)).toMatchObject({ type: 'end' });
  });

  it('refuses on node B a TOTP code already used on node A', async () => {
    const tom = await addUser('tom');
    await grant('tom');
    const code = oathtoolCode(tom.secret);
    const first = await runSsh({ port: a.sshPort, login: 'tom#ct-01', password: tom.password, totpCode: code, command: 'echo ok' });
    expect(first.stdout).toBe('ok\n');
    const replay = await runSsh({ port: b.sshPort, login: 'tom#ct-01', password: tom.password, totpCode: code, command: 'echo ok' });
    expect(replay.code).toBe(255);
    expect(replay.stderr).toContain('[TOTP_REPLAYED]');
    expect(replay.stdout).toBe('');
  });

  it('locks an account after five failures spread over two nodes, and the lock ends its live session on either node', async () => {
    const lou = await addUser('lou');
    await grant('lou');
    const s = openSession(b, lou);
    await s.started;
    const onA = new ApiClient(a.webPort);
    const onB = new ApiClient(b.webPort);
    const statuses: number[] = [];
    for (const [api, n] of [[onA, 3], [onB, 2]] as const) {
      for (let i = 0; i < n; i++) statuses.push((await api.login('lou', 'a-wrong-password-here', { secret: lou.secret })).status);
    }
    // The fifth failure (on B) locks the account, and says so: from here the session has a second to end.
    expect(statuses).toEqual([401, 401, 401, 401, 423]);
    const locked = await onA.login('lou', lou.password, { secret: lou.secret });
    expect(locked.status).toBe(423);
    expect(locked.body.error?.code).toBe('ACCOUNT_LOCKED');
    const run = await s.done;
    expect(run.stderr).toContain('[ACCOUNT_LOCKED]');
  });

  it('ends the session on node B when the grant is revoked (from a third process)', async () => {
    const rita = await addUser('rita');
    const id = (JSON.parse((await grant('rita')).stdout) as { id: string }).id;
    const s = openSession(b, rita);
    await s.started;
    await cli(['grant', 'revoke', id]);
    const run = await s.done;
    expect(run.stderr).toContain('[GRANT_REVOKED]');
  });

  it('ends the session on node A when the user is disabled', async () => {
    const dora = await addUser('dora');
    await grant('dora');
    const s = openSession(a, dora);
    await s.started;
    await cli(['user', 'disable', 'dora']);
    const run = await s.done;
    expect(run.stderr).toContain('[ACCOUNT_DISABLED]');
  });

  it('marks the sessions of a node that dies as interrupted once its heartbeat lapses', async () => {
    const zed = await addUser('zed');
    const sec = await addUser('sec-watch', 'security');
    await grant('zed');
    const s = openSession(b, zed);
    await s.started;
    const api = new ApiClient(a.webPort);
    await api.login(sec.name, sec.password, { secret: sec.secret });
    const id = (await api.get<{ sessions: Array<{ id: string }> }>('/api/sessions?open=true&user=zed')).body.sessions[0]?.id;
    expect(id).toBeDefined();
    await b.kill();
    await s.done;
    await expect.poll(async () => (await api.get<{ sessions: Array<{ id: string; endReason: string | null }> }>('/api/sessions?user=zed')).body.sessions[0]?.endReason, { timeout: 30_000, interval: 250 })
      .toBe('interrupted');
    const audit = JSON.parse((await cli(['audit', '--type', 'session.interrupted', '--json'])).stdout) as Array<{ data: { session: string; detectedBy: string; node: string } }>;
    expect(audit.filter((e) => e.data.session === id)).toEqual([expect.objectContaining({ data: expect.objectContaining({ node: 'gw-b', detectedBy: 'gw-a' }) })]);
    const nodes = (await api.get<{ nodes: Array<{ id: string }> }>('/api/sessions?open=true')).body.nodes.map((n) => n.id);
    expect(nodes).toEqual(['gw-a']);
  });

  it('keeps one audit chain that verifies, written by both nodes', async () => {
    const r = await cli(['verify', '--json']);
    const report = JSON.parse(r.stdout) as { ok: boolean; auditEntries: number; recordingsVerified: number };
    expect(report.ok).toBe(true);
    expect(report.recordingsVerified).toBeGreaterThanOrEqual(6);
    const starts = JSON.parse((await cli(['audit', '--type', 'gateway.started', '--json'])).stdout) as Array<{ data: { node: string } }>;
    expect(starts.map((e) => e.data.node).sort()).toEqual(['gw-a', 'gw-b']);
  });
});
