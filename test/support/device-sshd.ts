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
  /**
   * The device user's own home: its start-up files are the only ones any shell on this device
   * reads, whatever the host user's `~/.bashrc` or `~/.profile` does (a slow `pyenv init` there
   * once made every login wait 60 s). Sessions start in it.
   */
  home: string;
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
  /**
   * With `sftpLog`: the device's own sftp-server log (INFO: every open with its flags, every
   * change to the file tree). What is not here never reached the device's SFTP server.
   */
  sftpLog(): string;
  stop(): Promise<void>;
}

export interface DeviceSshdOptions {
  /** Log every command the device receives (an sshd ForceCommand wrapper). */
  logCommands?: boolean;
  /** With logCommands: false to only log, never run anything (for attack corpora against a device run as root). */
  execute?: boolean;
  /** The sftp subsystem logs what it is asked to do (sftp-server -l INFO) to a file of the device's. */
  sftpLog?: boolean;
}

/** A real OpenSSH sshd on loopback playing the medical device. */
export async function startDeviceSshd(opts: DeviceSshdOptions = {}): Promise<DeviceSshd> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'pc-device-'));
  const home = writeDeviceHome(dir);
  const received = path.join(dir, 'received.log');
  const wrapper = path.join(dir, 'session.sh');
  // Every session goes through this wrapper, so what runs is the device's own doing and never the
  // host's: exec requests and subsystems (SSH_ORIGINAL_COMMAND) run under bash as sshd would run
  // them, and a shell is an interactive bash that reads only the device's own rc file.
  const run = opts.execute === false
    ? 'echo "device received it (not run)"; exit 0'
    : `if [ -n "$SSH_ORIGINAL_COMMAND" ]; then exec /bin/bash -c "$SSH_ORIGINAL_COMMAND"; else exec /bin/bash --noprofile --rcfile '${home}/.bashrc' -i; fi`;
  // NUL-separated: a command may hold newlines. SSH_ORIGINAL_COMMAND is exactly what the client sent.
  const log = opts.logCommands ? `printf '%s\\0' "\${SSH_ORIGINAL_COMMAND:-<shell>}" >> '${received}'\n` : '';
  writeFileSync(wrapper, `#!/bin/sh\ncd '${home}' || exit 1\n${log}${run}\n`);
  chmodSync(wrapper, 0o755);
  const sftpLogFile = path.join(dir, 'sftp-server.log');
  const sftpWrapper = path.join(dir, 'sftp-server-logged.sh');
  if (opts.sftpLog) {
    writeFileSync(sftpWrapper, `#!/bin/sh\nexec /usr/lib/openssh/sftp-server -e -l INFO 2>>'${sftpLogFile}'\n`);
    chmodSync(sftpWrapper, 0o755);
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
    `Subsystem sftp ${opts.sftpLog ? sftpWrapper : '/usr/lib/openssh/sftp-server'}`,
    'PermitRootLogin prohibit-password', 'PasswordAuthentication no', 'KbdInteractiveAuthentication no', 'UsePAM no', 'StrictModes no',
    `PidFile ${path.join(dir, 'sshd.pid')}`, 'AllowTcpForwarding yes', 'MaxStartups 100:30:200', 'MaxSessions 100', 'LogLevel ERROR',
    // The device user's HOME is the test's (sshd sets HOME from the password file, then SetEnv):
    // the login shell that runs the wrapper reads the device's rc file, not root's; no ~/.ssh/rc.
    `SetEnv HOME=${home}`, 'PermitUserRC no', 'PermitUserEnvironment no', `ForceCommand ${wrapper}`, '',
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
    port, dir, home, clientKeyFile, hostKeyFile,
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
    sftpLog() {
      try {
        return readFileSync(sftpLogFile, 'utf8');
      } catch {
        return '';
      }
    },
    async stop() {
      await stopChild();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * The device user's home with its own start-up files: a plain prompt (`root@device:~# `), and
 * nothing for a non-interactive shell (bash reads ~/.bashrc even for `bash -c` when sshd runs it).
 */
function writeDeviceHome(dir: string): string {
  const home = path.join(dir, 'home');
  mkdirSync(home, { mode: 0o700 });
  writeFileSync(path.join(home, '.bashrc'), [
    '# The test device\'s own shell start-up: nothing of the host user\'s configuration.',
    'case $- in *i*) ;; *) return ;; esac',
    "PS1='\\u@device:\\w\\$ '",
    'HISTFILE="$HOME/.bash_history"',
    '',
  ].join('\n'));
  for (const f of ['.profile', '.bash_profile']) writeFileSync(path.join(home, f), '. "$HOME/.bashrc"\n');
  return home;
}
