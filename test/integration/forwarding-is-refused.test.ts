import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer, type Server } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { freePort, type DeviceSshd } from '../support/device-sshd.js';
import { startGatewayWithDevice, type GatewayFixture, type TestUser } from '../support/gateway-fixture.js';
import { runSsh } from '../support/ssh-client.js';

/** What a connection to a local port brought back before it closed. */
function readUntilClosed(port: number): Promise<{ connected: boolean; data: string }> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    let connected = false;
    let data = '';
    s.on('connect', () => { connected = true; });
    s.on('data', (d: Buffer) => { data += d.toString(); });
    s.on('error', () => undefined);
    s.on('close', () => resolve({ connected, data }));
  });
}

// R-6.3f: a device's data-exchange interfaces stay closed. The gateway refuses every kind of
// forwarding OpenSSH offers (remote, local, agent, X11) and audits each refusal.
describe('forwarding through the gateway is refused and audited', () => {
  let device: DeviceSshd;
  let fx: GatewayFixture;
  let work: string;
  let seq = 0;
  /** TOTP steps are single-use per user, so every sign-in gets its own user with a grant. */
  const grantedUser = async (prefix: string): Promise<TestUser> => {
    const u = await fx.addUser(`${prefix}${++seq}`);
    await fx.grant(u.name, 'ct-01', 'now', '+1h');
    return u;
  };
  const refusedFor = async (user: string): Promise<Array<{ code: string | null; data: Record<string, unknown> }>> =>
    (await fx.audit('forwarding.refused')).filter((e) => e.actor === user).map((e) => ({ code: e.code, data: e.data }));

  beforeAll(async () => {
    ({ fx, device } = await startGatewayWithDevice('ct-01'));
    work = mkdtempSync(path.join(os.tmpdir(), 'pc-fwd-'));
  });
  afterAll(async () => {
    await fx?.stop();
    await device?.stop();
    rmSync(work, { recursive: true, force: true });
  });

  // A service the forwards point at: if a forward ever got through, its greeting would arrive.
  let service: Server;
  let servicePort: number;
  let serviceConnections = 0;
  beforeAll(async () => {
    service = createServer((s) => {
      serviceConnections++;
      s.end('SECRET-FROM-SERVICE\n');
    });
    await new Promise<void>((resolve) => service.listen(0, '127.0.0.1', resolve));
    servicePort = (service.address() as { port: number }).port;
  });
  afterAll(async () => {
    await new Promise((resolve) => service.close(resolve));
  });

  it('refuses a remote forward (ssh -R): ssh gives up, and forwarding.refused names tcpip-forward', async () => {
    const u = await grantedUser('remote');
    const r = await runSsh({
      port: fx.sshPort, login: `${u.name}#ct-01`, password: u.password, totpSecret: u.totpSecret,
      args: ['-o', 'ExitOnForwardFailure=yes', '-R', `0:127.0.0.1:${servicePort}`], command: 'echo session-ran',
    });
    expect(r.code, r.stderr).toBe(255);
    expect(r.stderr).toMatch(/remote port forwarding failed/i);
    await expect.poll(async () => (await refusedFor(u.name)).map((e) => e.code)).toEqual(['FORWARDING_REFUSED']);
    expect((await refusedFor(u.name))[0]?.data).toMatchObject({ request: 'tcpip-forward' });
  });

  it('refuses a local forward (ssh -L): the forwarded connection closes with no data, and direct-tcpip is audited', async () => {
    const u = await grantedUser('local');
    const localPort = await freePort();
    const stopFile = path.join(work, `stop-${u.name}`);
    // The session itself stays up until the test is done with the forward.
    const session = runSsh({
      port: fx.sshPort, login: `${u.name}#ct-01`, password: u.password, totpSecret: u.totpSecret,
      args: ['-L', `${localPort}:127.0.0.1:${servicePort}`],
      command: `echo session-up; while [ ! -e '${stopFile}' ]; do sleep 0.1; done; echo session-done`,
    });
    let seen = '';
    // ssh listens on the local port once signed in; until then connections are refused.
    await expect.poll(async () => {
      const attempt = await readUntilClosed(localPort);
      seen += attempt.data;
      return attempt.connected;
    }, { timeout: 30_000, interval: 200 }).toBe(true);
    writeFileSync(stopFile, '');
    const r = await session;
    expect(seen).toBe('');
    expect(serviceConnections).toBe(0);
    expect(r.stdout).toBe('session-up\nsession-done\n');
    expect(r.code).toBe(0);
    const audited = await refusedFor(u.name);
    expect(audited.length).toBeGreaterThanOrEqual(1);
    for (const e of audited) {
      expect(e.code).toBe('FORWARDING_REFUSED');
      expect(e.data).toMatchObject({ request: 'direct-tcpip', destination: `127.0.0.1:${servicePort}`, device: 'ct-01' });
    }
  });

  describe('agent forwarding (ssh -A)', () => {
    let agent: ChildProcess | null = null;
    afterEach(async () => {
      if (agent && agent.exitCode === null && agent.signalCode === null) {
        const exited = new Promise((resolve) => agent?.once('exit', resolve));
        agent.kill('SIGTERM');
        await exited;
      }
      agent = null;
    });

    it('is refused with AGENT_FORWARDING_REFUSED while the command still runs, without an agent on the device', async () => {
      const socket = path.join(work, 'agent.sock');
      agent = spawn('ssh-agent', ['-D', '-a', socket], { stdio: 'ignore' });
      await expect.poll(() => socketReady(socket), { timeout: 30_000, interval: 50 }).toBe(true);

      const u = await grantedUser('agent');
      const r = await runSsh({
        port: fx.sshPort, login: `${u.name}#ct-01`, password: u.password, totpSecret: u.totpSecret,
        args: ['-A'], env: { SSH_AUTH_SOCK: socket }, command: 'echo "agent=[${SSH_AUTH_SOCK:-none}]"',
      });
      expect(r.stdout, r.stderr).toBe('agent=[none]\n');
      expect(r.code).toBe(0);
      await expect.poll(async () => (await refusedFor(u.name)).map((e) => e.code)).toEqual(['AGENT_FORWARDING_REFUSED']);
      expect((await refusedFor(u.name))[0]?.data).toMatchObject({ request: 'auth-agent-req@openssh.com', device: 'ct-01' });
    });
  });

  it('refuses X11 forwarding (ssh -X) with X11_FORWARDING_REFUSED while the command still runs', async () => {
    const u = await grantedUser('xeleven');
    const r = await runSsh({
      port: fx.sshPort, login: `${u.name}#ct-01`, password: u.password, totpSecret: u.totpSecret,
      args: ['-X'], env: { DISPLAY: ':0' }, command: 'echo "display=[${DISPLAY:-none}]"',
    });
    expect(r.stdout, r.stderr).toBe('display=[none]\n');
    expect(r.code).toBe(0);
    await expect.poll(async () => (await refusedFor(u.name)).map((e) => e.code)).toEqual(['X11_FORWARDING_REFUSED']);
    expect((await refusedFor(u.name))[0]?.data).toMatchObject({ request: 'x11-req', device: 'ct-01' });
  });
});

function socketReady(file: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(file);
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
}
