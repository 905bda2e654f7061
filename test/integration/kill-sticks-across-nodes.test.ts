import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiClient, oathtoolCode } from '../support/api-client.js';
import { runSsh } from '../support/ssh-client.js';
import { startTwoNodes, type TwoNodes } from '../support/two-nodes.js';

/**
 * Issue 14 item 5 across a cluster (R-A.5b): security on node B kills a session node A holds,
 * revoking its grant and locking the account in the same call. The vendor's ssh client (on A)
 * prints the reason and both parts; the lock holds on both nodes until security unlocks, and then
 * the revoked grant still refuses a new session. Real processes, real Redis, real OpenSSH.
 */
describe('a kill that sticks, across two nodes', () => {
  let nodes: TwoNodes;
  beforeAll(async () => {
    nodes = await startTwoNodes({ tag: 'kill-nodes' });
  });
  afterAll(async () => {
    await nodes?.stop();
  });

  it('the vendor on node A reads the reason and both parts; the lock, then the revocation, refuse them on either node', async () => {
    const { a, b } = nodes;
    const ava = await nodes.addUser('ava', 'vendor');
    const sec = await nodes.addUser('sec-nodes', 'security');
    await nodes.grant('ava');
    const session = nodes.openSession(a, ava);
    await session.started;

    const api = new ApiClient(b.webPort);
    expect((await api.login(sec.name, sec.password, { secret: sec.secret })).status).toBe(200);
    const live = await api.get<{ sessions: Array<{ id: string; node: string }> }>('/api/sessions?open=true&user=ava');
    const target = live.body.sessions[0];
    expect(target?.node).toBe('gw-a');
    const kill = await api.post<{ lockedUntil: string }>(`/api/sessions/${target?.id}/kill`, { reason: 'data copied off the device', revokeGrant: true, lockMinutes: 30 });
    expect(kill.status, JSON.stringify(kill.body)).toBe(202);

    const ended = await session.done;
    expect(ended.stderr).toContain('(data copied off the device)');
    expect(ended.stderr).toContain('Your access grant for this device was revoked.');
    expect(ended.stderr).toContain(`Your account is locked until ${kill.body.lockedUntil}.`);
    expect(ended.stderr).toContain('[SESSION_KILLED]');
    const listed = await api.get<{ sessions: Array<{ endReason: string | null; killRequested: { grantRevoked: boolean; lockedUntil: string | null } | null }> }>('/api/sessions?user=ava');
    expect(listed.body.sessions[0]?.killRequested).toMatchObject({ grantRevoked: true, lockedUntil: kill.body.lockedUntil });

    // Locked on both nodes (said before any prompt).
    for (const node of [a, b]) {
      const r = await runSsh({ port: node.sshPort, login: 'ava#ct-01', password: ava.password, totpCode: '000000', command: 'echo in-$((1+1))' });
      expect(r.stderr).toContain('ACCOUNT_LOCKED');
      expect(r.stdout).not.toContain('in-2');
    }
    // Unlocked from node B: the sign-in works again, and the revoked grant still opens nothing.
    expect((await api.post('/api/users/ava/unlock', {})).status).toBe(200);
    const after = await runSsh({ port: a.sshPort, login: 'ava#ct-01', password: ava.password, totpCode: oathtoolCode(ava.secret, new Date(Date.now() + 30_000)), command: 'echo should-not-run' });
    expect(after.stderr).toContain('GRANT_REVOKED');
    expect(after.stdout).not.toContain('should-not-run');
  });
});
