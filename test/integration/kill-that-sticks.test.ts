import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TotpSource, signedIn, type ApiClient } from '../support/api-client.js';
import type { DeviceSshd } from '../support/device-sshd.js';
import { startGatewayWithDevice, type GatewayFixture, type TestUser } from '../support/gateway-fixture.js';
import { interactiveSsh, runSsh, type Interactive } from '../support/ssh-client.js';

/**
 * R-A.5b, R-5.5c: a kill that sticks. Security ends a live OpenSSH session and, in the same
 * action, revokes the grant or locks the account. The vendor's own ssh client prints the reason
 * and what else happened; the next `ssh` on that grant is refused (GRANT_REVOKED), the next
 * sign-in of a locked account too (ACCOUNT_LOCKED) until security unlocks it; every part is audited.
 */
describe('a kill that sticks', () => {
  let fx: GatewayFixture;
  let device: DeviceSshd;
  let sec: ApiClient;
  const totp = new TotpSource();

  beforeAll(async () => {
    ({ fx, device } = await startGatewayWithDevice('ct-01'));
    sec = await signedIn(fx.gw.web.port, await fx.addUser('sec-kim', ['security']), totp);
  });
  afterAll(async () => {
    await fx?.stop();
    await device?.stop();
  });

  const openShell = async (u: TestUser, marker: string): Promise<{ s: Interactive; id: string }> => {
    const s = interactiveSsh({ port: fx.sshPort, login: `${u.name}#ct-01`, password: u.password, totpCode: await totp.code(u.totpSecret) });
    s.type(`echo ${marker}-$((6*7))\r`);
    await s.waitFor(`${marker}-42`);
    const live = await sec.get<{ sessions: Array<{ id: string }> }>(`/api/sessions?open=true&user=${u.name}`);
    const id = live.body.sessions[0]?.id;
    expect(id).toBeTruthy();
    return { s, id: id as string };
  };

  it('kill + revoke: the vendor reads the reason, and a new ssh on the same grant is refused and audited', async () => {
    const kim = await fx.addUser('kim');
    const grantId = await fx.grant('kim', 'ct-01', 'now', '+1h');
    const { s, id } = await openShell(kim, 'kim');

    const kill = await sec.post<{ grantRevoked: boolean; lockedUntil: string | null }>(`/api/sessions/${id}/kill`, { reason: 'unplanned firmware change', revokeGrant: true });
    expect(kill.status, JSON.stringify(kill.body)).toBe(202);
    expect(kill.body).toMatchObject({ grantRevoked: true, lockedUntil: null });
    const run = await s.done;
    const told = run.stdout + run.stderr;
    expect(told).toContain('unplanned firmware change');
    expect(told).toContain('Your access grant for this device was revoked.');
    expect(told).toContain('[SESSION_KILLED]');
    expect(run.code).toBe(255);

    // The grant is gone: the same person, the same device, a fresh sign-in is refused.
    const again = await runSsh({ port: fx.sshPort, login: 'kim#ct-01', password: kim.password, totpCode: await totp.code(kim.totpSecret), command: 'echo should-not-run' });
    expect(again.code).not.toBe(0);
    expect(again.stdout).not.toContain('should-not-run');
    expect(again.stderr).toContain('GRANT_REVOKED');

    // Each part is its own audit entry: the kill (naming what else it asked for), the revocation, the refusal.
    await expect.poll(async () => (await fx.audit('session.end')).find((e) => e.data.session === id)?.data.reason, { timeout: 30_000 }).toBe('killed');
    const killEntry = (await fx.audit('session.kill')).find((e) => e.data.session === id);
    expect(killEntry).toMatchObject({ actor: 'sec-kim', outcome: 'ok', data: { user: 'kim', reason: 'unplanned firmware change', revokeGrant: true, grant: grantId, lockedUntil: null } });
    const revoked = (await fx.audit('grant.revoked')).find((e) => e.data.grant === grantId);
    expect(revoked).toMatchObject({ actor: 'sec-kim', data: { user: 'kim', device: 'ct-01' } });
    expect(String(revoked?.data.reason)).toContain('unplanned firmware change');
    const refused = (await fx.audit('session.refused')).filter((e) => e.actor === 'kim');
    expect(refused.map((e) => e.code)).toContain('GRANT_REVOKED');
    expect((await fx.gw.runtime.store.getGrant(grantId))?.revokedBy).toBe('sec-kim');
  });

  it('kill + lock: sign-in is refused (locked) until security unlocks the account', async () => {
    const lou = await fx.addUser('lou');
    await fx.grant('lou', 'ct-01', 'now', '+1h');
    const { s, id } = await openShell(lou, 'lou');

    const kill = await sec.post<{ grantRevoked: boolean; lockedUntil: string | null }>(`/api/sessions/${id}/kill`, { reason: 'shared account suspected', lockMinutes: 120 });
    expect(kill.status, JSON.stringify(kill.body)).toBe(202);
    const until = kill.body.lockedUntil as string;
    expect(Date.parse(until) - Date.now()).toBeGreaterThan(110 * 60_000);
    const run = await s.done;
    expect(run.stdout + run.stderr).toContain('shared account suspected');
    expect(run.stdout + run.stderr).toContain(`Your account is locked until ${until}.`);

    // Locked: said before any prompt, whatever the password.
    const locked = await runSsh({ port: fx.sshPort, login: 'lou#ct-01', password: lou.password, totpCode: '000000', command: 'echo should-not-run' });
    expect(locked.code).not.toBe(0);
    expect(locked.stderr).toContain('ACCOUNT_LOCKED');
    expect(locked.stdout).not.toContain('should-not-run');
    const lockEntry = (await fx.audit('account.locked')).find((e) => e.data.user === 'lou');
    expect(lockEntry).toMatchObject({ actor: 'sec-kim', data: { until, byHand: true } });
    expect((await fx.audit('session.kill')).find((e) => e.data.session === id)?.data).toMatchObject({ revokeGrant: false, lockedUntil: until });

    // Unlocked by security: the grant was never touched, so the vendor is back in.
    expect((await sec.post(`/api/users/lou/unlock`, {})).status).toBe(200);
    const back = await runSsh({ port: fx.sshPort, login: 'lou#ct-01', password: lou.password, totpCode: await totp.code(lou.totpSecret), command: 'echo back-$((40+2))' });
    expect(back.stdout, back.stderr).toContain('back-42');
  });

  it('refuses to lock the killer\'s own account, and changes nothing when it does', async () => {
    const me = await fx.addUser('sec-self', ['security', 'vendor']);
    await fx.grant('sec-self', 'ct-01', 'now', '+1h');
    const { s, id } = await openShell(me, 'self');
    const selfApi = await signedIn(fx.gw.web.port, me, totp);
    const r = await selfApi.post<{ error: { code: string } }>(`/api/sessions/${id}/kill`, { reason: 'x', revokeGrant: true, lockMinutes: 5 });
    expect(r.status).toBe(400);
    expect(r.body.error.code).toBe('INVALID_INPUT');
    // Nothing happened: no kill request, the grant stands, the session lives on.
    expect((await fx.gw.runtime.store.getSession(id))?.killRequest).toBeNull();
    expect((await fx.gw.runtime.store.listGrants({ user: 'sec-self' })).every((g) => g.revokedAt === null)).toBe(true);
    s.type('echo still-$((1+1))\r');
    await s.waitFor('still-2');
    s.type('exit\r');
    await s.done;
  });
});
