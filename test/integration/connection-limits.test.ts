import { connect, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DeviceSshd } from '../support/device-sshd.js';
import { startGatewayWithDevice, type GatewayFixture } from '../support/gateway-fixture.js';
import { runSsh } from '../support/ssh-client.js';

/** A half-open SSH client: says its version, then never finishes the handshake. */
function stalledClient(port: number): Promise<{ socket: Socket; closed: Promise<void> }> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    const closed = new Promise<void>((r) => socket.once('close', () => r()));
    socket.on('error', () => undefined);
    socket.resume(); // read (and drop) what the gateway says, so its hang-up is seen
    socket.once('connect', () => {
      socket.write('SSH-2.0-stalled_probe\r\n');
      resolve({ socket, closed });
    });
    socket.once('error', reject);
  });
}

const settle = (ms: number): Promise<'open'> => new Promise((r) => setTimeout(() => r('open'), ms));

// R-A.4d, R-A.5b: one address cannot hold every socket and sign-in slot of the gateway.
describe('connections that have not signed in are limited per address', () => {
  let device: DeviceSshd;
  let fx: GatewayFixture;

  beforeAll(async () => {
    ({ fx, device } = await startGatewayWithDevice('ct-01', 'max_unauthenticated_per_ip = 3'));
  });
  afterAll(async () => {
    await fx?.stop();
    await device?.stop();
  });

  it('closes the connection over the limit, keeps the others, and admits again once they are gone', async () => {
    const held = await Promise.all([1, 2, 3].map(() => stalledClient(fx.sshPort)));
    // Give the gateway time to register all three before the fourth arrives.
    await settle(500);
    const fourth = await stalledClient(fx.sshPort);
    expect(await Promise.race([fourth.closed.then(() => 'closed' as const), settle(5000)]), fx.logs.filter((l) => l.includes('ssh')).join('')).toBe('closed');
    expect(await Promise.race([...held.map((h) => h.closed.then(() => 'closed' as const)), settle(300)])).toBe('open');
    expect(fx.logs.join('')).toContain('too many unauthenticated connections from this address');

    const ana = await fx.addUser('ana');
    await fx.grant('ana', 'ct-01', 'now', '+1h');
    const refused = await runSsh({ port: fx.sshPort, login: 'ana#ct-01', password: ana.password, totpSecret: ana.totpSecret, command: 'echo in' });
    expect(refused.code).toBe(255);
    expect(refused.stdout).toBe('');

    for (const h of held) h.socket.destroy();
    await Promise.all(held.map((h) => h.closed));
    await settle(300);
    const admitted = await runSsh({ port: fx.sshPort, login: 'ana#ct-01', password: ana.password, totpSecret: ana.totpSecret, command: 'echo in' });
    expect(admitted.stdout).toBe('in\n');
    expect(admitted.code).toBe(0);
  });
});
