import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

let home: string | null = null;

/**
 * The environment for a shell a test starts itself (`bash -c`, `sh -c`, `script`): an empty HOME
 * of its own, `/bin/sh` as SHELL and nothing else of the host's. Bash reads `~/.bashrc` even for
 * `bash -c` when it believes sshd or rshd started it (SSH_CLIENT in the environment, or standard
 * input a socket, as Node's pipes are); with the host's HOME, or none (bash then finds the home in
 * the password file), that is the host user's start-up file, whose `pyenv init` once held every
 * such shell for 60 s. Use with `stdio: ['ignore', …]` or `input`, never an inherited socket.
 */
export function shellEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  if (home === null) {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'pc-shell-home-'));
    home = dir;
    process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  }
  return { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: home, SHELL: '/bin/sh', LANG: 'C.UTF-8', ...extra };
}
