import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, rmSync, writeSync } from 'node:fs';
import type { GatewayFixture, TestUser } from '../support/gateway-fixture.js';

/** Wall-clock time in epoch milliseconds with sub-millisecond resolution (same clock as `date +%s%N`). */
export function epochMs(): number {
  return performance.timeOrigin + performance.now();
}

export function median(xs: number[]): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

export function percentile(xs: number[], p: number): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))] as number;
}

export interface ProcResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
  /** Epoch ms when spawn() was called and when the process exited. */
  startedAt: number;
  exitedAt: number;
  timedOut: boolean;
  /** With `sinkBytes`: bytes the client wrote to its stdout, and when the last expected one arrived. */
  sink?: { bytes: number; lastByteAt: number };
  /** With `sinkBytes`: the client had everything but did not exit within `graceMs`, and was killed. */
  hungAfterData?: boolean;
}

/** Children of this benchmark still running, killed by process group on cleanup. */
const live = new Set<ChildProcess>();

function killGroup(child: ChildProcess): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(-child.pid, 'SIGKILL');
  } catch {
    try { child.kill('SIGKILL'); } catch { /* already gone */ }
  }
}

export function killAllChildren(): void {
  for (const c of live) killGroup(c);
  live.clear();
}

export interface RunOptions {
  env?: NodeJS.ProcessEnv;
  timeoutMs: number;
  /**
   * Send the client's stdout to `dd of=/dev/null`, which stops after this many bytes: the moment
   * it exits is when the last byte reached the client's stdout, whether or not the client then
   * exits. Without it stdout goes straight to /dev/null.
   */
  sinkBytes?: number;
  /** With `sinkBytes`: how long the client may take to exit after the last byte. */
  graceMs?: number;
  /** With `sinkBytes`: called as soon as the sink has ended. */
  onLastByte?: () => void;
}

/**
 * Runs a command with stdin from /dev/null, stdout to /dev/null (or to a `dd` sink, see
 * RunOptions), stderr collected. Nothing is copied through this process, which is also the
 * gateway's. The child gets its own process group (no controlling terminal, so ssh uses
 * SSH_ASKPASS), and the whole group is killed on timeout: a ProxyJump's inner `ssh -W` goes too.
 */
export function runProc(cmd: string, args: string[], opts: RunOptions): Promise<ProcResult> {
  return new Promise((resolve, reject) => {
    let sink: ChildProcess | null = null;
    let sinkErr = '';
    let sinkDone: Promise<number> | null = null;
    if (opts.sinkBytes !== undefined) {
      const s = spawn('dd', ['of=/dev/null', 'bs=1M', 'iflag=fullblock,count_bytes', `count=${opts.sinkBytes}`], {
        stdio: ['pipe', 'ignore', 'pipe'], detached: true,
      });
      sink = s;
      live.add(s);
      s.stderr?.on('data', (d: Buffer) => { sinkErr += d.toString(); });
      let sinkExitAt = 0;
      s.once('exit', () => { sinkExitAt = epochMs(); });
      // Resolved on 'close' (all of dd's report read), with the time it exited.
      sinkDone = new Promise((res) => s.once('close', () => {
        live.delete(s);
        res(sinkExitAt || epochMs());
      }));
    }
    const devnull = sink ? null : openSync('/dev/null', 'w');
    const startedAt = epochMs();
    let child: ChildProcess;
    try {
      child = spawn(cmd, args, { stdio: ['ignore', sink?.stdin ?? devnull, 'pipe'], detached: true, env: { ...process.env, ...opts.env } });
    } finally {
      if (devnull !== null) closeSync(devnull);
      sink?.stdin?.destroy(); // the client holds the write end now
    }
    live.add(child);
    let stderr = '';
    let exitedAt = 0;
    let timedOut = false;
    let hungAfterData = false;
    let sinkInfo: ProcResult['sink'];
    child.stderr?.on('data', (d: Buffer) => {
      if (stderr.length < 64 * 1024) stderr += d.toString();
    });
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup(child);
      if (sink) killGroup(sink);
    }, opts.timeoutMs);
    let graceTimer: NodeJS.Timeout | null = null;
    void sinkDone?.then((at) => {
      const bytes = Number(/^(\d+) bytes/m.exec(sinkErr)?.[1] ?? 0);
      sinkInfo = { bytes, lastByteAt: at };
      opts.onLastByte?.();
      if (child.exitCode === null && child.signalCode === null) {
        graceTimer = setTimeout(() => {
          hungAfterData = true;
          killGroup(child);
        }, opts.graceMs ?? 10_000);
      }
    });
    child.once('exit', () => { exitedAt = epochMs(); });
    child.once('error', (err) => {
      clearTimeout(timer);
      live.delete(child);
      reject(err);
    });
    child.once('close', (code, signal) => {
      live.delete(child);
      const done = (): void => {
        clearTimeout(timer);
        if (graceTimer) clearTimeout(graceTimer);
        resolve({
          code, signal, stderr, startedAt, exitedAt: exitedAt || epochMs(), timedOut,
          ...(sinkInfo ? { sink: sinkInfo } : {}), ...(sink ? { hungAfterData } : {}),
        });
      };
      // The sink ends when the client's stdout closes, if it has not already.
      if (sinkDone) void sinkDone.then(() => setImmediate(done));
      else done();
    });
  });
}

/** Runs a command to completion and returns its stdout (small outputs only). */
export function capture(cmd: string, args: string[], timeoutMs = 60_000): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    live.add(child);
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (d: Buffer) => { stdout += d.toString(); });
    child.stderr?.on('data', (d: Buffer) => { stderr += d.toString(); });
    const timer = setTimeout(() => killGroup(child), timeoutMs);
    child.once('error', (err) => { clearTimeout(timer); live.delete(child); reject(err); });
    child.once('close', (code) => { clearTimeout(timer); live.delete(child); resolve({ code, stdout, stderr }); });
  });
}

/** Small deterministic PRNG (xorshift32), so every run generates the same text. */
function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13; x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5; x >>>= 0;
    return x;
  };
}

const LEVELS = ['INFO', 'INFO', 'INFO', 'INFO', 'DEBUG', 'DEBUG', 'WARN', 'ERROR'];
const COMPONENTS = ['pump-ctrl', 'gantry', 'xray-tube', 'detector', 'recon', 'dicom-scu', 'netmon', 'ups', 'cooling', 'scheduler'];
const MESSAGES: Array<(r: () => number) => string> = [
  (r) => `infusion rate=${(r() % 5000) / 10} ml/h volume=${r() % 1000} ml channel=${r() % 4}`,
  (r) => `rotation speed=${(r() % 300) / 100}s/rev temp=${20 + (r() % 400) / 10}C`,
  (r) => `study ${r().toString(16)}.${r() % 100000} stored to PACS AE=PACS01 images=${r() % 2000}`,
  (r) => `heartbeat ok uptime=${r() % 10_000_000}s load=${(r() % 400) / 100}`,
  (r) => `tube current=${r() % 800} mA kV=${80 + (r() % 61)} exposure=${r() % 5000} ms`,
  (r) => `connection from 10.${r() % 256}.${r() % 256}.${r() % 256}:${1024 + (r() % 60000)} accepted`,
  (r) => `retrying association (attempt ${1 + (r() % 5)}) after timeout ${r() % 30000} ms`,
  (r) => `queue depth=${r() % 128} dropped=0 latency_us=${r() % 100000}`,
];

/** Writes `bytes` of log-like text lines (what a device's log looks like) to `file`. */
export function writeTextFile(file: string, bytes: number): void {
  const r = rng(0x5eed);
  const fd = openSync(file, 'w');
  try {
    let written = 0;
    let t = Date.UTC(2025, 0, 6, 7, 0, 0);
    let seq = 0;
    while (written < bytes) {
      const lines: string[] = [];
      let n = 0;
      while (n < 4 * 1024 * 1024) {
        t += r() % 250;
        const level = LEVELS[r() % LEVELS.length] as string;
        const comp = COMPONENTS[r() % COMPONENTS.length] as string;
        const msg = (MESSAGES[r() % MESSAGES.length] as (r: () => number) => string)(r);
        const line = `${new Date(t).toISOString()} ct-01 ${level.padEnd(5)} [${comp}] seq=${seq++} ${msg}\n`;
        lines.push(line);
        n += line.length;
      }
      let chunk = Buffer.from(lines.join(''), 'latin1');
      if (written + chunk.length > bytes) chunk = chunk.subarray(0, bytes - written);
      writeSync(fd, chunk);
      written += chunk.length;
    }
  } finally {
    closeSync(fd);
  }
}

export function fmt(n: number, digits = 0): string {
  return Number.isFinite(n) ? n.toFixed(digits) : 'n/a';
}

export function ratio(a: number, b: number): string {
  return Number.isFinite(a) && Number.isFinite(b) && b > 0 ? `${(a / b).toFixed(2)}×` : 'n/a';
}

/** A plain text table: first row is the header. */
export function table(rows: string[][], rightAlignFrom = 1): string {
  const widths: number[] = [];
  for (const row of rows) row.forEach((c, i) => { widths[i] = Math.max(widths[i] ?? 0, c.length); });
  const line = (row: string[]): string => row.map((c, i) => (i >= rightAlignFrom ? c.padStart(widths[i] ?? 0) : c.padEnd(widths[i] ?? 0))).join('  ');
  const sep = widths.map((w) => '-'.repeat(w)).join('  ');
  return [line(rows[0] ?? []), sep, ...rows.slice(1).map(line)].join('\n');
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`${what} took longer than ${ms} ms`)), ms);
    p.then((v) => { clearTimeout(t); resolve(v); }, (e: unknown) => { clearTimeout(t); reject(e instanceof Error ? e : new Error(String(e))); });
  });
}

/** What a bench has started, read when it is stopped (the bench assigns them as it goes). */
export interface BenchServers {
  gateway: { stop(): Promise<void> } | null;
  device: { stop(): Promise<void> } | null;
  dir: string | null;
}

/**
 * The bench's one way out: stops every child, the gateway and the device, and removes the data,
 * once however often it is called; SIGINT and SIGTERM take it too.
 */
export function benchCleanup(started: () => BenchServers): () => Promise<void> {
  let cleaning: Promise<void> | null = null;
  const cleanup = (): Promise<void> => {
    cleaning ??= (async () => {
      killAllChildren();
      const { gateway, device, dir } = started();
      if (gateway) await withTimeout(gateway.stop(), 20_000, 'gateway stop').catch((e: unknown) => console.error(`cleanup: ${(e as Error).message}`));
      if (device) await withTimeout(device.stop(), 10_000, 'sshd stop').catch((e: unknown) => console.error(`cleanup: ${(e as Error).message}`));
      if (dir) rmSync(dir, { recursive: true, force: true });
    })();
    return cleaning;
  };
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      console.error(`\n${sig}: stopping servers`);
      void cleanup().finally(() => process.exit(130));
    });
  }
  return cleanup;
}

/** Runs a bench's main() under a deadline, and stops what it started whatever happens. */
export async function runBench(main: () => Promise<void>, deadlineMs: number, cleanup: () => Promise<void>): Promise<void> {
  const deadline = setTimeout(() => {
    console.error(`\nbenchmark exceeded ${deadlineMs / 1000} s: stopping`);
    void cleanup().finally(() => process.exit(2));
  }, deadlineMs);
  try {
    await main();
  } catch (err) {
    console.error(`benchmark failed: ${err instanceof Error ? err.stack ?? err.message : String(err)}`);
    process.exitCode = 1;
  } finally {
    clearTimeout(deadline);
    await cleanup();
  }
}

export const mb = (b: number): string => `${(b / 1e6).toFixed(0)} MB`;

/** A failed client run in one line: why it stopped, and the last lines it printed. */
export function describeFailure(r: ProcResult): string {
  const why = r.timedOut ? 'timed out' : `exit ${r.code ?? r.signal}`;
  return `${why}: ${r.stderr.trim().split('\n').slice(-3).join(' | ')}`;
}

/**
 * Gateway users with a grant, made before the runs: a TOTP code is single-use per user and
 * 30 s step, so every gateway run signs in as a new one.
 */
export class UserPool {
  private readonly left: TestUser[] = [];

  /** Adds `count` users named PREFIX000…, two at a time, each with a grant on `device` from now until `until`. */
  async fill(fx: GatewayFixture, count: number, o: { prefix: string; device: string; until: string; fileTransfer?: boolean }): Promise<void> {
    for (let i = 0; i < count; i += 2) {
      const batch = [i, i + 1].filter((n) => n < count).map(async (n) => {
        const name = `${o.prefix}${String(n).padStart(3, '0')}`;
        const u = await fx.addUser(name);
        await fx.grant(name, o.device, 'now', o.until, o.fileTransfer ? { fileTransfer: true } : {});
        return u;
      });
      this.left.push(...(await Promise.all(batch)));
    }
  }

  take(): TestUser {
    const u = this.left.shift();
    if (!u) throw new Error('ran out of prepared gateway users');
    return u;
  }
}
