import { spawn, type ChildProcess } from 'node:child_process';
import { CLI } from './gateway-fixture.js';

export interface GatewayProcess {
  child: ChildProcess;
  sshPort: number;
  webPort: number;
  /** Everything the process wrote to stderr (its JSON log lines). */
  log(): string;
  /** SIGTERM and wait: sessions are told, closed and sealed. */
  stop(): Promise<number | null>;
  /** SIGKILL: the node dies without closing anything (a crash or power loss). */
  kill(): Promise<void>;
}

/** A gateway as its own operating-system process (`portcullis serve`), as a second cluster node would be. */
export function spawnGateway(configFile: string, env: NodeJS.ProcessEnv = {}): Promise<GatewayProcess> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, 'serve', '--config', configFile], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
    let stdout = '';
    let stderr = '';
    let started = false;
    child.stderr?.on('data', (d: Buffer) => { stderr += d.toString(); });
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    child.stdout?.on('data', (d: Buffer) => {
      stdout += d.toString();
      const m = /ssh on [^:]+:(\d+), web on https:\/\/[^:]+:(\d+)/.exec(stdout);
      if (m && !started) {
        started = true;
        resolve({
          child, sshPort: Number(m[1]), webPort: Number(m[2]), log: () => stderr,
          async stop() {
            if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
            child.kill('SIGTERM');
            await exited;
            return child.exitCode;
          },
          async kill() {
            if (child.exitCode !== null || child.signalCode !== null) return;
            child.kill('SIGKILL');
            await exited;
          },
        });
      }
    });
    child.once('exit', (code) => {
      if (!started) reject(new Error(`portcullis serve exited ${code} before serving: ${stderr}`));
    });
  });
}
