import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiClient, oathtoolCode } from '../support/api-client.js';
import { startDeviceSshd, type DeviceSshd } from '../support/device-sshd.js';
import { CLASS_OF_LEVEL, runCli, TEST_POLICY_TOML, type CliResult } from '../support/gateway-fixture.js';
import { spawnGateway, type GatewayProcess } from '../support/gateway-process.js';
import { openTestRedisStore, TEST_REDIS_URL, uniquePrefix } from '../support/redis.js';
import { runSsh } from '../support/ssh-client.js';
import { staffInProcess } from '../support/staff-in-process.js';
import type { Role } from '../../policy/types.js';

/**
 * Issue 14 item 5 across a cluster (R-A.5b): security on node B kills a session node A holds,
 * revoking its grant and locking the account in the same call. The vendor's ssh client (on A)
 * prints the reason and both parts; the lock holds on both nodes until security unlocks, and then
 * the revoked grant still refuses a new session. Real processes, real Redis, real OpenSSH.
 */
const dir = mkdtempSync(path.join(os.tmpdir(), 'pc-kill-nodes-'));
const prefix = uniquePrefix();

function nodeConfig(node: string): string {
  const file = path.join(dir, `${node}.toml`);
  writeFileSync(file, [
    `data_dir = "./${node}"`,
    '[ssh]', 'listen = "127.0.0.1:0"', 'host_key = "./shared/ssh_host_ed25519_key"',
    '[web]', 'listen = "127.0.0.1:0"', 'tls_cert = "./shared/web-tls.crt"', 'tls_key = "./shared/web-tls.key"',
    '[store]', 'backend = "redis"', `url = "${TEST_REDIS_URL}"`, `prefix = "${prefix}"`,
    '[cluster]', `node_id = "${node}"`,
    '[vault]', 'master_key = "./shared/master.key"',
    '[recordings]', 'path = "./shared/recordings"',
    TEST_POLICY_TOML,
  ].join('\n'));
  return file;
}

describe('a kill that sticks, across two nodes', () => {
  let device: DeviceSshd;
  let a: GatewayProcess;
  let b: GatewayProcess;
  const configA = nodeConfig('gw-a');
  const configB = nodeConfig('gw-b');
  const cli = async (args: string[], stdin?: string): Promise<CliResult> => {
    const r = await runCli(args, { config: configA, ...(stdin !== undefined ? { stdin } : {}) });
    if (r.code !== 0) throw new Error(`portcullis ${args.join(' ')}: ${r.stderr}`);
    return r;
  };
  const addUser = async (name: string, role: string): Promise<{ name: string; password: string; secret: string }> => {
    const password = `pw-${name}-correct-horse`;
    if (role !== 'vendor') return { name, password, secret: await staffInProcess(configA, name, role as Role, password) };
    const r = await cli(['user', 'add', name, '--role', role, '--org', 'test-vendor', '--nda-signed=-1d', '--nda-expires=+365d', '--password-stdin', '--json'], password);
    return { name, password, secret: new URL((JSON.parse(r.stdout) as { otpauthUri: string }).otpauthUri).searchParams.get('secret') as string };
  };

  beforeAll(async () => {
    mkdirSync(path.join(dir, 'shared'), { recursive: true });
    await cli(['init', '--password-stdin'], 'initial-admin-password');
    await cli(['org', 'add', 'test-vendor', '--display-name', 'Test Vendor GmbH']);
    device = await startDeviceSshd();
    await cli(['device', 'add', 'ct-01', '--host', '127.0.0.1', '--port', String(device.port), '--protocol', 'ssh', '--udi', 'UDI-ct-01', ...CLASS_OF_LEVEL[2]]);
    await cli(['device', 'credential', 'ct-01', '--username', 'root', '--key-file', device.clientKeyFile]);
    await cli(['device', 'trust', 'ct-01']);
    [a, b] = await Promise.all([spawnGateway(configA), spawnGateway(configB)]);
  });
  afterAll(async () => {
    await a?.stop();
    await b?.stop();
    await device?.stop();
    const s = await openTestRedisStore(prefix);
    await s.dropAll();
    await s.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('the vendor on node A reads the reason and both parts; the lock, then the revocation, refuse them on either node', async () => {
    const ava = await addUser('ava', 'vendor');
    const sec = await addUser('sec-nodes', 'security');
    await cli(['grant', 'add', '--user', 'ava', '--device', 'ct-01', '--protocol', 'ssh', '--from', 'now', '--until', '+1h', '--json']);
    let up: () => void = () => undefined;
    const started = new Promise<void>((r) => { up = r; });
    const run = runSsh({
      port: a.sshPort, login: 'ava#ct-01', password: ava.password, totpSecret: ava.secret, command: 'echo session-up; sleep 60', timeoutMs: 90_000,
      onStdout: (chunk) => { if (chunk.includes('session-up')) up(); },
    });
    await started;

    const api = new ApiClient(b.webPort);
    expect((await api.login(sec.name, sec.password, { secret: sec.secret })).status).toBe(200);
    const live = await api.get<{ sessions: Array<{ id: string; node: string }> }>('/api/sessions?open=true&user=ava');
    const target = live.body.sessions[0];
    expect(target?.node).toBe('gw-a');
    const kill = await api.post<{ lockedUntil: string }>(`/api/sessions/${target?.id}/kill`, { reason: 'data copied off the device', revokeGrant: true, lockMinutes: 30 });
    expect(kill.status, JSON.stringify(kill.body)).toBe(202);

    const ended = await run;
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
