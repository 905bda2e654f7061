import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, chmodSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import os from 'node:os';
import path from 'node:path';

/** A free loopback port (closed again before it is handed out). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

export function sshKeygen(file: string, type: 'ed25519' | 'rsa' = 'ed25519'): void {
  const r = spawnSync('ssh-keygen', ['-q', '-t', type, '-N', '', '-C', 'portcullis-test', '-f', file]);
  if (r.status !== 0) throw new Error(`ssh-keygen failed: ${r.stderr.toString()}`);
}

export interface DeviceSshd {
  port: number;
  dir: string;
  /** Private key the gateway's vault uses to log in as root on this device. */
  clientKeyFile: string;
  hostKeyFile: string;
  /** Restart the device with a different host key (a swapped or compromised device). */
  replaceHostKey(): Promise<void>;
  /**
   * With `logCommands`: every command the device was asked to run, as it arrived (one entry per
   * exec request; `<shell>` for an interactive shell). What is not here never reached the device.
   */
  received(): string[];
  stop(): Promise<void>;
}

export interface DeviceSshdOptions {
  /** Log every command the device receives (an sshd ForceCommand wrapper). */
  logCommands?: boolean;
  /** With logCommands: false to only log, never run anything (for attack corpora against a device run as root). */
  execute?: boolean;
}

/** A real OpenSSH sshd on loopback playing the medical device. */
export async function startDeviceSshd(opts: DeviceSshdOptions = {}): Promise<DeviceSshd> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'pc-device-'));
  const received = path.join(dir, 'received.log');
  const wrapper = path.join(dir, 'force-command.sh');
  if (opts.logCommands) {
    // NUL-separated: a command may hold newlines. SSH_ORIGINAL_COMMAND is exactly what the client sent.
    const run = opts.execute === false
      ? 'echo "device received it (not run)"; exit 0'
      : 'if [ -n "$SSH_ORIGINAL_COMMAND" ]; then exec /bin/sh -c "$SSH_ORIGINAL_COMMAND"; else exec /bin/bash --norc --noprofile -i; fi';
    writeFileSync(wrapper, `#!/bin/sh\nprintf '%s\\0' "\${SSH_ORIGINAL_COMMAND:-<shell>}" >> '${received}'\n${run}\n`);
    chmodSync(wrapper, 0o755);
  }
  mkdirSync('/run/sshd', { recursive: true });
  const hostKeyFile = path.join(dir, 'host_ed25519');
  const clientKeyFile = path.join(dir, 'client_ed25519');
  sshKeygen(hostKeyFile);
  sshKeygen(clientKeyFile);
  const authorized = path.join(dir, 'authorized_keys');
  writeFileSync(authorized, readFileSync(`${clientKeyFile}.pub`));
  chmodSync(authorized, 0o600);
  const port = await freePort();
  const config = path.join(dir, 'sshd_config');
  writeFileSync(config, [
    `Port ${port}`, 'ListenAddress 127.0.0.1', `HostKey ${hostKeyFile}`, `AuthorizedKeysFile ${authorized}`,
    // A device's usual sftp server, as a separate program: sftp and scp use the subsystem, `sftp -s` execs it.
    'Subsystem sftp /usr/lib/openssh/sftp-server',
    'PermitRootLogin prohibit-password', 'PasswordAuthentication no', 'KbdInteractiveAuthentication no', 'UsePAM no', 'StrictModes no',
    `PidFile ${path.join(dir, 'sshd.pid')}`, 'AllowTcpForwarding yes', 'MaxStartups 100:30:200', 'MaxSessions 100', 'LogLevel ERROR',
    ...(opts.logCommands ? [`ForceCommand ${wrapper}`] : []), '',
  ].join('\n'));

  let child: ChildProcess;
  const start = async (): Promise<void> => {
    child = spawn('/usr/sbin/sshd', ['-D', '-e', '-f', config], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr?.on('data', (d: Buffer) => { err += d.toString(); });
    // Ready when the port accepts a connection.
    for (let i = 0; i < 100; i++) {
      if (child.exitCode !== null) throw new Error(`sshd exited: ${err}`);
      const ok = await new Promise<boolean>((resolve) => {
        const s = connect(port, '127.0.0.1');
        s.once('connect', () => { s.destroy(); resolve(true); });
        s.once('error', () => resolve(false));
      });
      if (ok) return;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`sshd did not start: ${err}`);
  };
  const stopChild = async (): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    await exited;
  };
  await start();
  return {
    port, dir, clientKeyFile, hostKeyFile,
    async replaceHostKey() {
      await stopChild();
      rmSync(hostKeyFile);
      rmSync(`${hostKeyFile}.pub`);
      sshKeygen(hostKeyFile);
      await start();
    },
    received() {
      try {
        return readFileSync(received, 'utf8').split('\0').filter((c) => c !== '');
      } catch {
        return [];
      }
    },
    async stop() {
      await stopChild();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
