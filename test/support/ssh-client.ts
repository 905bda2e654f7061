import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export interface SshRun {
  code: number;
  stdout: string;
  stderr: string;
  /** The prompts ssh handed to the askpass program, in order (what the user was asked). */
  prompts: string[];
}

export interface SshOptions {
  port: number;
  /** The whole SSH user name, e.g. "alice#ct-01". */
  login: string;
  password: string;
  /** The code comes from oathtool, an implementation independent of the gateway's. */
  totpSecret?: string;
  /** A fixed code instead (wrong or replayed codes). */
  totpCode?: string;
  command?: string;
  /** Extra ssh arguments, before the destination. */
  args?: string[];
  /**
   * Replaces the base `PreferredAuthentications=keyboard-interactive`. OpenSSH keeps the first
   * `-o` of a kind, so this cannot be done through `args`.
   */
  preferredAuthentications?: string;
  /** Offers this private key (the base offers none); same first-wins reason as above. */
  identityFile?: string;
  stdin?: string;
  /** Keep stdin open and write these chunks with pauses (interactive use). */
  typed?: Array<{ text: string; afterMs: number }>;
  timeoutMs?: number;
  env?: NodeJS.ProcessEnv;
  onStdout?: (chunk: string) => void;
  /** The running client, for a test that types at its own pace (with `typed: []` stdin stays open). */
  onSpawn?: (child: ChildProcess) => void;
}

/**
 * Writes the SSH_ASKPASS program that answers the gateway's Password and TOTP prompts. It also
 * appends each prompt to `prompts` beside itself, so a test can tell what was asked.
 */
const askpassDirs = new Set<string>();
// Whoever forgets to remove theirs, the process does on its way out.
process.once('exit', () => {
  for (const d of askpassDirs) rmSync(d, { recursive: true, force: true });
});

export function askpassScript(password: string, totp: { secret?: string; code?: string }): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'pc-askpass-'));
  askpassDirs.add(dir);
  const file = path.join(dir, 'askpass.sh');
  const code = totp.code !== undefined ? `echo '${totp.code}'` : `oathtool --totp -b '${totp.secret ?? ''}'`;
  writeFileSync(file, `#!/bin/sh\nprintf '%s\\n' "$1" >> "$(dirname "$0")/prompts"\ncase "$1" in\n  *Password*) echo '${password}' ;;\n  *TOTP*) ${code} ;;\n  *) echo unexpected-prompt ;;\nesac\n`);
  chmodSync(file, 0o700);
  return file;
}

export const SSH_BASE_ARGS = [
  '-F', '/dev/null',
  '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'GlobalKnownHostsFile=/dev/null',
  '-o', 'PreferredAuthentications=keyboard-interactive', '-o', 'NumberOfPasswordPrompts=1', '-o', 'ConnectTimeout=10',
  '-o', 'IdentitiesOnly=yes', '-o', 'IdentityFile=/dev/null', '-o', 'LogLevel=INFO',
];

/** The base arguments with another PreferredAuthentications and/or IdentityFile. */
export function sshBaseArgs(o: { preferredAuthentications?: string; identityFile?: string } = {}): string[] {
  return SSH_BASE_ARGS.map((a) => {
    if (o.preferredAuthentications !== undefined && a.startsWith('PreferredAuthentications=')) return `PreferredAuthentications=${o.preferredAuthentications}`;
    if (o.identityFile !== undefined && a.startsWith('IdentityFile=')) return `IdentityFile=${o.identityFile}`;
    return a;
  });
}

/** Runs the real OpenSSH client against the gateway, answering its prompts through SSH_ASKPASS. */
export function runSsh(o: SshOptions): Promise<SshRun> {
  const askpass = askpassScript(o.password, { ...(o.totpSecret ? { secret: o.totpSecret } : {}), ...(o.totpCode ? { code: o.totpCode } : {}) });
  const promptsFile = path.join(path.dirname(askpass), 'prompts');
  const base = sshBaseArgs({
    ...(o.preferredAuthentications !== undefined ? { preferredAuthentications: o.preferredAuthentications } : {}),
    ...(o.identityFile !== undefined ? { identityFile: o.identityFile } : {}),
  });
  const args = [...base, '-p', String(o.port), ...(o.args ?? []), `${o.login}@127.0.0.1`, ...(o.command !== undefined ? [o.command] : [])];
  return new Promise((resolve, reject) => {
    const child = spawn('ssh', args, {
      env: { ...process.env, SSH_ASKPASS: askpass, SSH_ASKPASS_REQUIRE: 'force', DISPLAY: ':0', ...o.env },
      stdio: ['pipe', 'pipe', 'pipe'],
      detached: true, // no controlling terminal: ssh must use the askpass program
    });
    o.onSpawn?.(child);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
      o.onStdout?.(d.toString());
    });
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    const timer = setTimeout(() => child.kill('SIGKILL'), o.timeoutMs ?? 60_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      const prompts = existsSync(promptsFile) ? readFileSync(promptsFile, 'utf8').split('\n').filter((l) => l !== '') : [];
      rmSync(path.dirname(askpass), { recursive: true, force: true });
      resolve({ code: code ?? -1, stdout, stderr, prompts });
    });
    if (o.typed) {
      let t = 0;
      for (const step of o.typed) {
        t += step.afterMs;
        setTimeout(() => { if (child.stdin.writable) child.stdin.write(step.text); }, t);
      }
    } else {
      child.stdin.end(o.stdin ?? '');
    }
  });
}

export interface SshMaster {
  /** Runs one command as its own session channel over the signed-in connection (no new sign-in). */
  run(command: string, opts?: { stdin?: string; timeoutMs?: number }): Promise<SshRun>;
  close(): Promise<void>;
}

/**
 * One signed-in OpenSSH connection (ControlMaster) that many commands share, as `ssh` itself
 * multiplexes: each command is a new session channel, so a corpus of hundreds of commands needs
 * one password + TOTP sign-in, not hundreds.
 */
export async function sshMaster(o: Pick<SshOptions, 'port' | 'login' | 'password' | 'totpSecret' | 'totpCode'>): Promise<SshMaster> {
  const askpass = askpassScript(o.password, { ...(o.totpSecret ? { secret: o.totpSecret } : {}), ...(o.totpCode ? { code: o.totpCode } : {}) });
  const sock = path.join(path.dirname(askpass), 'control');
  const target = `${o.login}@127.0.0.1`;
  const master = spawn('ssh', [...SSH_BASE_ARGS, '-p', String(o.port), '-M', '-S', sock, '-N', '-o', 'ControlPersist=no', target], {
    env: { ...process.env, SSH_ASKPASS: askpass, SSH_ASKPASS_REQUIRE: 'force', DISPLAY: ':0' }, stdio: ['ignore', 'ignore', 'pipe'], detached: true,
  });
  let masterErr = '';
  master.stderr?.on('data', (d: Buffer) => { masterErr += d.toString(); });
  const check = (): boolean => spawnSync('ssh', ['-S', sock, '-O', 'check', target], { stdio: 'ignore' }).status === 0;
  for (let i = 0; i < 200 && !check(); i++) {
    if (master.exitCode !== null) throw new Error(`ssh master exited: ${masterErr}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  if (!check()) throw new Error(`ssh master did not come up: ${masterErr}`);
  return {
    run(command, opts = {}) {
      return new Promise((resolve, reject) => {
        const child = spawn('ssh', ['-S', sock, '-o', 'ControlMaster=no', '-p', String(o.port), target, command], { stdio: ['pipe', 'pipe', 'pipe'] });
        let stdout = '';
        let stderr = '';
        child.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
        child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
        const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 60_000);
        child.on('error', reject);
        child.on('close', (code) => {
          clearTimeout(timer);
          resolve({ code: code ?? -1, stdout, stderr, prompts: [] });
        });
        child.stdin.end(opts.stdin ?? '');
      });
    },
    async close() {
      spawnSync('ssh', ['-S', sock, '-O', 'exit', target], { stdio: 'ignore' });
      if (master.exitCode === null && master.signalCode === null) {
        const exited = new Promise((r) => master.once('exit', r));
        master.kill('SIGTERM');
        await exited;
      }
      rmSync(path.dirname(askpass), { recursive: true, force: true });
    },
  };
}

export interface Interactive {
  /** Writes keystrokes to the session, as typed. */
  type(text: string): void;
  /** Resolves once the user's screen has shown `text` (anywhere in the output so far), or the output satisfies a test. */
  waitFor(text: string | RegExp | ((seen: string) => boolean), timeoutMs?: number): Promise<void>;
  /** Everything the user's terminal received so far. */
  seen(): string;
  done: Promise<SshRun>;
}

/** An interactive session with a terminal (`ssh -tt`) that a test types into at its own pace. */
export function interactiveSsh(o: Omit<SshOptions, 'typed' | 'onSpawn' | 'onStdout' | 'command'> & { command?: string }): Interactive {
  let child: ChildProcess | null = null;
  let seen = '';
  const waiters: Array<{ match: (s: string) => boolean; resolve: () => void }> = [];
  const done = runSsh({
    ...o, args: ['-tt', ...(o.args ?? [])], typed: [], timeoutMs: o.timeoutMs ?? 120_000,
    onSpawn: (c) => { child = c; },
    onStdout: (chunk) => {
      seen += chunk;
      for (const w of [...waiters]) {
        if (w.match(seen)) {
          w.resolve();
          waiters.splice(waiters.indexOf(w), 1);
        }
      }
    },
  });
  return {
    type: (text) => { (child as ChildProcess | null)?.stdin?.write(text); },
    seen: () => seen,
    waitFor: (text, timeoutMs = 30_000) => new Promise<void>((resolve, reject) => {
      const match = (s: string): boolean => (typeof text === 'string' ? s.includes(text) : typeof text === 'function' ? text(s) : text.test(s));
      if (match(seen)) return resolve();
      const timer = setTimeout(() => reject(new Error(`did not see ${String(text)} in: ${JSON.stringify(seen.slice(-600))}`)), timeoutMs);
      waiters.push({ match, resolve: () => { clearTimeout(timer); resolve(); } });
    }),
    done,
  };
}

/** sftp or scp (they run ssh underneath) with the same askpass answers as runSsh; `args` follow the base arguments. */
export function runTransfer(program: 'sftp' | 'scp', user: { password: string; totpSecret: string }, args: string[], stdin = ''): Promise<Omit<SshRun, 'prompts'>> {
  const askpass = askpassScript(user.password, { secret: user.totpSecret });
  return new Promise((resolve, reject) => {
    const child = spawn(program, [...SSH_BASE_ARGS, ...args], {
      env: { ...process.env, SSH_ASKPASS: askpass, SSH_ASKPASS_REQUIRE: 'force', DISPLAY: ':0' },
      stdio: ['pipe', 'pipe', 'pipe'],
      detached: true, // no controlling terminal: ssh must use the askpass program
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      rmSync(path.dirname(askpass), { recursive: true, force: true });
      resolve({ code: code ?? -1, stdout, stderr });
    });
    child.stdin.end(stdin);
  });
}
