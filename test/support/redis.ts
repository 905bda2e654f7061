import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { createLogger } from '../../gateway/log/logger.js';
import { RedisStore } from '../../gateway/store/redis-store.js';
import { freePort } from './device-sshd.js';

/** The Redis the suite shares (scripts/test-env.mjs makes sure one answers there). */
export const TEST_REDIS_URL = process.env.PORTCULLIS_TEST_REDIS ?? 'redis://127.0.0.1:6379/0';

/** A prefix nobody else uses, so tests share one Redis without seeing each other's keys. */
export function uniquePrefix(): string {
  return `pc-test-${randomUUID().slice(0, 8)}:`;
}

/** A store on the shared Redis under a fresh prefix; `drop` removes its keys. */
export async function openTestRedisStore(prefix = uniquePrefix()): Promise<RedisStore> {
  return RedisStore.open({ url: TEST_REDIS_URL, prefix, log: createLogger('error') });
}

export interface PrivateRedis {
  port: number;
  url: string;
  /** Stops the server (as an outage would); start() brings it back on the same port, empty unless AOF kept it. */
  stop(): Promise<void>;
  start(): Promise<void>;
  /** Freezes the process (SIGSTOP) as a hung server would be, and thaws it (SIGCONT). */
  pause(): void;
  resume(): void;
  /** Stops it for good and removes its files. */
  close(): Promise<void>;
}

function waitForPort(port: number, child: ChildProcess): Promise<void> {
  return new Promise((resolve, reject) => {
    let tries = 0;
    const attempt = (): void => {
      if (child.exitCode !== null) {
        reject(new Error(`redis-server exited with ${child.exitCode}`));
        return;
      }
      const s = connect(port, '127.0.0.1');
      s.once('connect', () => { s.destroy(); resolve(); });
      s.once('error', () => {
        if (++tries > 100) reject(new Error('redis-server did not start'));
        else setTimeout(attempt, 50);
      });
    };
    attempt();
  });
}

/**
 * A redis-server of the test's own on a loopback port, with AOF (appendfsync always) so that a
 * stop and start keeps the data, as a production Redis with persistence would.
 */
export async function startPrivateRedis(opts: { replicaOf?: number } = {}): Promise<PrivateRedis> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'pc-redis-'));
  const port = await freePort();
  let child: ChildProcess | null = null;
  const start = async (): Promise<void> => {
    child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'yes', '--appendfsync', 'always', '--logfile', path.join(dir, 'redis.log'),
      ...(opts.replicaOf ? ['--replicaof', '127.0.0.1', String(opts.replicaOf)] : [])], { stdio: 'ignore' });
    await waitForPort(port, child);
  };
  const stop = async (): Promise<void> => {
    const c = child as ChildProcess | null;
    if (!c || c.exitCode !== null || (c.signalCode !== null && c.signalCode !== 'SIGSTOP' && c.signalCode !== 'SIGCONT')) return;
    c.kill('SIGCONT');
    const exited = new Promise((r) => c.once('exit', r));
    c.kill('SIGTERM');
    await exited;
  };
  await start();
  return {
    port, url: `redis://127.0.0.1:${port}/0`, stop, start,
    pause: () => { (child as ChildProcess | null)?.kill('SIGSTOP'); },
    resume: () => { (child as ChildProcess | null)?.kill('SIGCONT'); },
    async close() {
      await stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
