import { spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDeviceSshd, type DeviceSshd } from '../support/device-sshd.js';
import { shellEnv } from '../support/hermetic-shell.js';

// The suite's outcome must not depend on the host user's shell (a `pyenv init` in root's
// ~/.bashrc once made every device login wait 60 s): the device's shells read its own files.
describe('the test device is hermetic', () => {
  let device: DeviceSshd;
  beforeAll(async () => {
    device = await startDeviceSshd();
  });
  afterAll(async () => {
    await device.stop();
  });

  const ssh = (args: string[], input?: string): { status: number | null; stdout: string; stderr: string } => {
    const r = spawnSync('ssh', [
      '-F', '/dev/null', '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'LogLevel=ERROR',
      '-o', 'BatchMode=yes', '-i', device.clientKeyFile, '-p', String(device.port), ...args,
    ], { encoding: 'utf8', env: shellEnv(), input: input ?? '', timeout: 30_000 });
    return { status: r.status, stdout: r.stdout, stderr: r.stderr };
  };

  it('runs exec requests in its own HOME, reading no start-up file but its own', () => {
    const r = ssh(['root@127.0.0.1', 'echo "$HOME"; pwd; echo "[$PYENV_ROOT]"']);
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe(`${device.home}\n${device.home}\n[]\n`);
    expect(r.status).toBe(0);
  });

  it("gives an interactive shell the device's own prompt", () => {
    const r = ssh(['-tt', 'root@127.0.0.1'], 'echo "home=$HOME"; exit\n');
    expect(r.stdout).toContain('root@device:~# ');
    expect(r.stdout).toContain(`home=${device.home}`);
    expect(r.status).toBe(0);
  });

  it('a shell a test starts itself has a HOME of its own', () => {
    const r = spawnSync('bash', ['-c', 'echo "$HOME"; echo "[$PYENV_ROOT]"'], { encoding: 'utf8', env: shellEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    expect(r.stderr).toBe('');
    expect(r.stdout).toMatch(/^\/.*pc-shell-home-.*\n\[\]\n$/);
  });
});
