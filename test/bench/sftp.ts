/**
 * File-transfer throughput through the gateway against direct OpenSSH to the same device sshd,
 * in one run. The gateway follows every SFTP and SCP stream and puts each file in the audit with
 * its SHA-256 (gateway/transfer/sftp-watch.ts, scp-watch.ts), on top of relaying and recording
 * the bytes: this measures what that costs.
 *   direct   sftp/scp root@device (key; the device's own sshd and sftp-server)
 *   gateway  sftp/scp user#device@gateway (password + TOTP, recording on, file-transfer grant)
 * Cases: one big incompressible file (/dev/urandom) by sftp put, sftp get, scp put (its default
 * SFTP mode), scp -O put and scp -O get (the legacy scp protocol); `ssh … 'cat > file'`, the
 * same upload as an ordinary command no watcher follows (relay and recording only, for
 * reference); many small files by sftp put -r and scp -O -r (per-file overhead).
 * Each transferred file's SHA-256 is checked against its source (a failed or corrupted run is
 * reported as FAILED and left out of the figures), and every gateway sftp/scp run's files are
 * looked up in the audit (`file.transferred`) by op, bytes and SHA-256, and whether the entry's
 * path names the file.
 *
 * Timing: "transfer" runs from the first destination file's birth time to the last one's
 * modification time (kernel timestamps, a few ms granularity), so the sign-in is left out;
 * "incl. set-up" runs from spawning the client to its exit. Alongside: the machine's busy share
 * (/proc/stat) and the gateway process's CPU inside the transfer window, its RSS, and the size
 * of each session's recording. Timings are printed, never asserted; only a broken set-up fails
 * the run (exit 1).
 *
 * Knobs (environment): BENCH_SFTP_MIB (64), BENCH_SFTP_FILES (2000, of 4 KiB), BENCH_REPS (3),
 * BENCH_TIMEOUT_S (600), BENCH_SFTP_CASES (comma-separated case ids, see ALL_CASES).
 */
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { DeviceSshd } from '../support/device-sshd.js';
import { startGatewayWithDevice, type GatewayFixture } from '../support/gateway-fixture.js';
import { askpassScript, SSH_BASE_ARGS } from '../support/ssh-client.js';
import { benchCleanup, describeFailure, mb, runBench, UserPool, capture, epochMs, fmt, median, ratio, runProc, table, type ProcResult } from './bench-lib.js';

const MiB = 1024 * 1024;
const envNum = (name: string, dflt: number): number => {
  const v = Number(process.env[name]);
  return Number.isFinite(v) && v > 0 ? v : dflt;
};
const SIZE = Math.round(envNum('BENCH_SFTP_MIB', 64) * MiB);
const SMALL_COUNT = Math.round(envNum('BENCH_SFTP_FILES', 2000));
const SMALL_SIZE = 4096;
const REPS = Math.round(envNum('BENCH_REPS', 3));
const DEADLINE_MS = envNum('BENCH_TIMEOUT_S', 600) * 1000;
const DEVICE = 'ct-01';

type Route = 'direct' | 'gateway';
const ROUTES: Route[] = ['direct', 'gateway'];

interface Case {
  id: string;
  label: string;
  data: 'big' | 'small';
  direction: 'upload' | 'download';
  /** ssh: `ssh … 'cat > FILE' < FILE`, an ordinary command no watcher follows (the reference). */
  program: 'sftp' | 'scp' | 'ssh';
  /** scp -O: the legacy scp protocol (ScpWatch) instead of SFTP (SftpWatch). */
  legacy: boolean;
}

const ALL_CASES: Case[] = [
  { id: 'sftp-put', label: 'sftp put', data: 'big', direction: 'upload', program: 'sftp', legacy: false },
  { id: 'sftp-get', label: 'sftp get', data: 'big', direction: 'download', program: 'sftp', legacy: false },
  { id: 'scp-put', label: 'scp put (SFTP mode)', data: 'big', direction: 'upload', program: 'scp', legacy: false },
  { id: 'scp-O-put', label: 'scp -O put', data: 'big', direction: 'upload', program: 'scp', legacy: true },
  { id: 'scp-O-get', label: 'scp -O get', data: 'big', direction: 'download', program: 'scp', legacy: true },
  { id: 'ssh-cat-put', label: "ssh 'cat > file' (no watcher)", data: 'big', direction: 'upload', program: 'ssh', legacy: false },
  { id: 'sftp-put-r', label: 'sftp put -r (small files)', data: 'small', direction: 'upload', program: 'sftp', legacy: false },
  { id: 'scp-O-r', label: 'scp -O -r put (small files)', data: 'small', direction: 'upload', program: 'scp', legacy: true },
];
const CASES = process.env.BENCH_SFTP_CASES ? ALL_CASES.filter((c) => (process.env.BENCH_SFTP_CASES as string).split(',').includes(c.id)) : ALL_CASES;

let device: DeviceSshd | null = null;
let fx: GatewayFixture | null = null;
let benchDir: string | null = null;

const cleanup = benchCleanup(() => ({ gateway: fx, device, dir: benchDir }));

// Memory and CPU: the gateway runs in this process (the harness adds a little; hashes are taken
// by sha256sum in a child, so no file passes through this heap). During a run, CPU time is
// sampled too, to tell how busy the gateway was inside the transfer window.
let rssPeak = 0;
let runRssPeak = 0;
interface CpuSample {
  at: number;
  /** This process's CPU time, µs. */
  us: number;
  /** The machine's busy and total time over all cores, in clock ticks (/proc/stat), NaN elsewhere. */
  busy: number;
  total: number;
}
let cpuSamples: CpuSample[] | null = null;

function machineTicks(): { busy: number; total: number } {
  try {
    const f = (readFileSync('/proc/stat', 'latin1').split('\n')[0] ?? '').trim().split(/\s+/).slice(1, 9).map(Number);
    const total = f.reduce((a, b) => a + b, 0);
    return { busy: total - (f[3] ?? 0) - (f[4] ?? 0), total };
  } catch {
    return { busy: Number.NaN, total: Number.NaN };
  }
}

const sampler = setInterval(() => {
  const rss = process.memoryUsage().rss;
  rssPeak = Math.max(rssPeak, rss);
  runRssPeak = Math.max(runRssPeak, rss);
  if (cpuSamples) {
    const u = process.cpuUsage();
    cpuSamples.push({ at: epochMs(), us: u.user + u.system, ...machineTicks() });
  }
}, 50);
sampler.unref();

/**
 * From the samples inside [from, to] (epoch ms): this process's CPU as % of one core, and the
 * machine's busy share of all its cores; NaN when the window is too short to tell.
 */
function cpuIn(samples: CpuSample[], from: number, to: number): { own: number; machine: number } {
  const inside = samples.filter((x) => x.at >= from && x.at <= to);
  const a = inside[0];
  const b = inside.at(-1);
  if (!a || !b || b.at - a.at < 100) return { own: Number.NaN, machine: Number.NaN };
  return { own: ((b.us - a.us) / 1000 / (b.at - a.at)) * 100, machine: b.total > a.total ? ((b.busy - a.busy) / (b.total - a.total)) * 100 : Number.NaN };
}

const users = new UserPool();

// ---------------------------------------------------------------------------------------------
// Files.

/** SHA-256 of every file under `dir`, by base name (the bench's file names are unique within a tree). */
async function hashTree(dir: string): Promise<Map<string, string>> {
  const r = await capture('sh', ['-c', `cd '${dir}' && find . -type f -exec sha256sum {} +`], 120_000);
  if (r.code !== 0) throw new Error(`sha256sum under ${dir} failed: ${r.stderr}`);
  const out = new Map<string, string>();
  for (const line of r.stdout.split('\n')) {
    const m = /^([0-9a-f]{64}) {2}(.*)$/.exec(line);
    if (m) out.set(path.basename(m[2] as string), m[1] as string);
  }
  return out;
}

/** The destination files' first birth and last modification, in epoch ms. */
function fileWindow(dir: string): { first: number; last: number; count: number; bytes: number } {
  let first = Infinity;
  let last = 0;
  let count = 0;
  let bytes = 0;
  for (const rel of readdirSync(dir, { recursive: true }) as string[]) {
    const s = statSync(path.join(dir, rel));
    if (!s.isFile()) continue;
    count++;
    bytes += s.size;
    first = Math.min(first, s.birthtimeMs || s.ctimeMs);
    last = Math.max(last, s.mtimeMs);
  }
  return { first, last, count, bytes };
}

// ---------------------------------------------------------------------------------------------
// Running one transfer.

interface Paths {
  big: string;
  small: string;
  out: string;
}
let P: Paths = { big: '', small: '', out: '' };
let directArgs: string[] = [];
let runSeq = 0;

interface Run {
  proc: ProcResult;
  user: string | null;
  /** Where the destination tree went (removed after the checks). */
  dest: string;
}

/**
 * One transfer as a vendor would type it. The sftp commands go on stdin (not `-b`: batch mode
 * turns off the gateway's keyboard-interactive sign-in), through a shell, as runProc gives the
 * client no stdin of its own.
 */
async function runCase(c: Case, route: Route, extra: string[] = [], batchOverride?: string): Promise<Run> {
  const dev = device as DeviceSshd;
  const g = fx as GatewayFixture;
  const dest = path.join(P.out, `run-${String(++runSeq).padStart(3, '0')}`);
  mkdirSync(dest, { recursive: true });
  const u = route === 'gateway' ? users.take() : null;
  const port = route === 'gateway' ? String(g.sshPort) : String(dev.port);
  const auth = route === 'gateway' ? [...SSH_BASE_ARGS] : [...directArgs];
  // Legacy scp refuses `#` in a source's user name; `%` is the other separator the gateway reads.
  const host = (source: boolean): string => (u === null ? 'root@127.0.0.1' : `${u.name}${source && c.legacy ? '%' : '#'}${DEVICE}@127.0.0.1`);
  const src = c.data === 'big' ? P.big : P.small;
  const askpass = u ? askpassScript(u.password, { secret: u.totpSecret }) : null;
  const env = askpass ? { SSH_ASKPASS: askpass, SSH_ASKPASS_REQUIRE: 'force', DISPLAY: ':0' } : {};
  const timeoutMs = Math.max(120_000, (SIZE / 2e6) * 1000);
  try {
    let proc: ProcResult;
    if (c.program === 'ssh') {
      // The device's shell creates the file once the command runs, so its birth time is after the sign-in here too.
      proc = await runProc('sh', ['-c', `exec ssh "$@" < '${src}'`, 'ssh', ...auth, ...extra, '-p', port, host(false), `cat > ${path.join(dest, 'big.bin')}`], { timeoutMs, env });
    } else if (c.program === 'sftp') {
      const target = c.data === 'big' ? path.join(dest, 'big.bin') : path.join(dest, 'small');
      const cmd = c.direction === 'upload' ? `put ${c.data === 'small' ? '-r ' : ''}${src} ${target}` : `get ${src} ${target}`;
      const batch = path.join(dest, '..', `batch-${runSeq}`);
      writeFileSync(batch, batchOverride ?? `${cmd}\nbye\n`);
      proc = await runProc('sh', ['-c', `exec sftp "$@" < '${batch}'`, 'sftp', ...auth, ...extra, '-P', port, host(false)], { timeoutMs, env });
      rmSync(batch, { force: true });
    } else {
      const from = c.direction === 'upload' ? src : `${host(true)}:${src}`;
      const to = c.direction === 'upload' ? `${host(false)}:${dest}/` : `${dest}/`;
      proc = await runProc('scp', [...auth, ...extra, ...(c.legacy ? ['-O'] : []), ...(c.data === 'small' ? ['-r'] : []), '-P', port, from, to], { timeoutMs, env });
    }
    return { proc, user: u?.name ?? null, dest };
  } finally {
    if (askpass) rmSync(path.dirname(askpass), { recursive: true, force: true });
  }
}

/** Polls until `test` gives a value (or the time is up: null). */
async function until<T>(test: () => Promise<T | null>, ms: number): Promise<T | null> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await test();
    if (v !== null) return v;
    if (Date.now() > end) return null;
    await new Promise((r) => setTimeout(r, 50));
  }
}

interface AuditedFile {
  op?: string;
  path?: string;
  bytes?: number;
  sha256?: string | null;
  outcome?: string;
}

/** The user's session ended and sealed; its file.transferred entries once `expected` are in (or what there is after 15 s). */
async function auditOf(user: string, expected: number): Promise<{ files: AuditedFile[]; recordingBytes: number | null }> {
  const g = fx as GatewayFixture;
  await until(async () => ((await g.audit('session.end')).some((e) => e.actor === user) ? true : null), 20_000);
  const read = async (): Promise<AuditedFile[]> => (await g.audit('file.transferred')).filter((e) => e.actor === user).map((e) => (e.data ?? {}) as AuditedFile);
  const files = (await until(async () => { const f = await read(); return f.length >= expected ? f : null; }, 15_000)) ?? (await read());
  const recordingBytes = await until(async () => {
    const s = (await g.gw.runtime.store.listSessions({ limit: 500 })).find((x) => x.user === user);
    if (s?.endedAt == null) return null;
    const rec = await g.gw.runtime.store.getRecording(s.recordingId);
    return rec?.sealedAt != null && rec.size != null ? rec.size : null;
  }, 30_000);
  return { files, recordingBytes };
}

// ---------------------------------------------------------------------------------------------

interface Sample {
  /** MB/s over first destination byte → last write. */
  transfer: number;
  /** MB/s over client spawn → exit. */
  wall: number;
  /** ms of the run outside the transfer window (connect, sign-in, channel, teardown). */
  overheadMs: number;
  /** files/s over the transfer window. */
  filesPerS: number;
  /** This process's CPU (gateway + idle harness) over the whole run, % of one core. */
  cpu: number;
  /** The same inside the transfer window (NaN when it is too short to tell). */
  cpuInTransfer: number;
  /** The machine's busy share of all its cores inside the transfer window. */
  machineInTransfer: number;
  /** This process's RSS peak during the run. */
  rssPeak: number;
}

async function main(): Promise<void> {
  const t0 = Date.now();
  const sshVersion = (await capture('ssh', ['-V'])).stderr.trim();
  console.log(`Portcullis file-transfer benchmark — ${os.cpus().length} cores, node ${process.version}, ${sshVersion}`);
  console.log(`load average at start: ${os.loadavg().map((l) => l.toFixed(2)).join(' ')} (other work on this machine skews the figures)`);

  ({ fx, device } = await startGatewayWithDevice(DEVICE));
  benchDir = mkdtempSync(path.join(os.tmpdir(), 'pc-bench-sftp-'));
  P = { big: path.join(benchDir, 'data', 'big.bin'), small: path.join(benchDir, 'data', 'small'), out: path.join(benchDir, 'out') };
  mkdirSync(P.small, { recursive: true });
  mkdirSync(P.out, { recursive: true });
  directArgs = [
    '-F', '/dev/null', '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'GlobalKnownHostsFile=/dev/null',
    '-o', 'IdentitiesOnly=yes', '-i', device.clientKeyFile, '-o', 'BatchMode=yes', '-o', 'ConnectTimeout=10', '-o', 'LogLevel=ERROR',
  ];

  const tg = Date.now();
  const gen = await capture('sh', ['-c', `head -c ${SIZE} /dev/urandom > '${P.big}' && head -c ${SMALL_COUNT * SMALL_SIZE} /dev/urandom | split -b ${SMALL_SIZE} -a 5 -d - '${P.small}/f'`], 120_000);
  if (gen.code !== 0 || statSync(P.big).size !== SIZE) throw new Error(`could not generate data: ${gen.stderr}`);
  const expectBig = new Map([['big.bin', (await hashTree(path.dirname(P.big))).get('big.bin') ?? '']]);
  const expectSmall = await hashTree(P.small);
  if (expectSmall.size !== SMALL_COUNT) throw new Error(`generated ${expectSmall.size} small files, not ${SMALL_COUNT}`);
  // Warm the page cache so every run reads its source from memory.
  await runProc('sh', ['-c', `cat '${P.big}' '${P.small}'/* > /dev/null`], { timeoutMs: 60_000 });
  console.log(`data: ${SIZE / MiB} MiB from /dev/urandom; ${SMALL_COUNT} files of ${SMALL_SIZE / 1024} KiB; generated in ${((Date.now() - tg) / 1000).toFixed(1)} s`);

  const needUsers = 1 + CASES.length * REPS;
  const tu = Date.now();
  await users.fill(fx as GatewayFixture, needUsers, { prefix: 'xfer', device: DEVICE, until: '+1h', fileTransfer: true });
  console.log(`gateway users with file-transfer grants: ${needUsers}, prepared in ${((Date.now() - tu) / 1000).toFixed(1)} s`);

  // Probe (and warm-up): sign in, `bye`; the negotiated ciphers from `-v`.
  const probe = ALL_CASES[0] as Case;
  const ciphers: Record<Route, string> = { direct: 'unknown', gateway: 'unknown' };
  for (const route of ROUTES) {
    const r = await runCase(probe, route, ['-v'], 'bye\n');
    rmSync(r.dest, { recursive: true, force: true });
    if (r.proc.code !== 0) throw new Error(`${route}: probe failed, ${describeFailure(r.proc)}`);
    ciphers[route] = [...r.proc.stderr.matchAll(/kex: server->client cipher: (\S+)/g)].map((m) => m[1] as string).join(', ') || 'unknown';
    if (r.user) await auditOf(r.user, 0);
  }
  console.log(`ciphers negotiated (server->client): direct ${ciphers.direct}; gateway ${ciphers.gateway} (client↔gateway; gateway↔device not measured)`);
  const idle0 = machineTicks();
  await new Promise((r) => setTimeout(r, 1000));
  const idle1 = machineTicks();
  const busyBefore = idle1.total > idle0.total ? ((idle1.busy - idle0.busy) / (idle1.total - idle0.total)) * 100 : Number.NaN;
  console.log(`machine busy share of all cores for 1 s before the runs, nothing transferring: ${fmt(busyBefore)}%`);
  const rssBaseline = process.memoryUsage().rss;
  rssPeak = rssBaseline;

  const samples = new Map<string, Record<Route, Sample[]>>(CASES.map((c) => [c.id, { direct: [], gateway: [] }]));
  const recordings = new Map<string, number[]>(CASES.map((c) => [c.id, []]));
  const failures: string[] = [];
  const auditMisses: string[] = [];
  let audited = 0;
  let auditNamed = 0;
  const auditMisnamed: string[] = [];
  let auditExpected = 0;

  for (let rep = 1; rep <= REPS; rep++) {
    for (const c of CASES) {
      // Alternate which route goes first, so drift on the machine does not favour one.
      const order = rep % 2 === 1 ? ROUTES : [...ROUTES].reverse();
      for (const route of order) {
        const cpu0 = process.cpuUsage();
        runRssPeak = process.memoryUsage().rss;
        const samplesOfRun: CpuSample[] = [];
        cpuSamples = samplesOfRun;
        const r = await runCase(c, route);
        cpuSamples = null;
        const cpuUs = process.cpuUsage(cpu0);
        const peakOfRun = runRssPeak;
        const what = `${c.label} via ${route}, rep ${rep}${r.user ? ` (${r.user})` : ''}`;
        try {
          const expected = c.data === 'big' ? expectBig : expectSmall;
          const expectedBytes = c.data === 'big' ? SIZE : SMALL_COUNT * SMALL_SIZE;
          let ok = r.proc.code === 0 && !r.proc.timedOut;
          let why = ok ? '' : describeFailure(r.proc);
          const got = await hashTree(r.dest);
          const wrong = [...expected].filter(([name, sha]) => got.get(name) !== sha);
          if (ok && (wrong.length > 0 || got.size !== expected.size)) {
            ok = false;
            why = `${wrong.length} of ${expected.size} files missing or with another SHA-256 (${got.size} arrived)`;
          }
          const win = fileWindow(r.dest);
          if (ok && win.bytes !== expectedBytes) {
            ok = false;
            why = `${win.bytes} bytes arrived, not ${expectedBytes}`;
          }
          if (r.user) {
            const watched = c.program !== 'ssh';
            const { files, recordingBytes } = await auditOf(r.user, ok && watched ? expected.size : 0);
            if (ok && recordingBytes !== null) recordings.get(c.id)?.push(recordingBytes);
            if (ok && !watched && files.length > 0) auditMisses.push(`${what}: ${files.length} file.transferred entries for a plain command`);
            if (ok && watched) {
              auditExpected += expected.size;
              const size = c.data === 'big' ? SIZE : SMALL_SIZE;
              const bySha = new Map(files.filter((f) => f.op === c.direction && f.outcome === 'ok' && f.bytes === size && f.sha256).map((f) => [f.sha256 as string, f]));
              const missing = [...expected].filter(([, sha]) => !bySha.has(sha));
              const misnamed = [...expected].filter(([name, sha]) => bySha.has(sha) && path.basename(bySha.get(sha)?.path ?? '') !== name);
              audited += expected.size - missing.length;
              auditNamed += expected.size - missing.length - misnamed.length;
              if (missing.length) auditMisses.push(`${what}: ${missing.length} of ${expected.size} files without an entry of that op, bytes and SHA-256 (${files.length} file.transferred entries, e.g. ${JSON.stringify(files[0] ?? null)})`);
              if (misnamed.length) {
                const [name, sha] = misnamed[0] as [string, string];
                auditMisnamed.push(`${what}: ${misnamed.length} of ${expected.size} entries name another path, e.g. ${name} audited as ${JSON.stringify(bySha.get(sha)?.path)}`);
              }
            }
          }
          if (!ok) {
            failures.push(`${what}: ${why}`);
            continue;
          }
          const wallMs = r.proc.exitedAt - r.proc.startedAt;
          const xferMs = Math.max(1, win.last - win.first);
          const inWindow = cpuIn(samplesOfRun, win.first, win.last);
          samples.get(c.id)?.[route].push({
            transfer: expectedBytes / 1e3 / xferMs,
            wall: expectedBytes / 1e3 / wallMs,
            overheadMs: wallMs - xferMs,
            filesPerS: (expected.size * 1000) / xferMs,
            cpu: ((cpuUs.user + cpuUs.system) / 1000 / wallMs) * 100,
            cpuInTransfer: inWindow.own,
            machineInTransfer: inWindow.machine,
            rssPeak: peakOfRun,
          });
        } finally {
          rmSync(r.dest, { recursive: true, force: true });
        }
      }
    }
  }
  const rssAfter = process.memoryUsage().rss;

  // ------------------------------------------------------------------ report
  const xs = (id: string, route: Route, key: keyof Sample): number[] => (samples.get(id)?.[route] ?? []).map((s) => s[key]);
  const med = (id: string, route: Route, key: keyof Sample): number => median(xs(id, route, key));
  const range = (id: string, route: Route, key: keyof Sample, digits = 0): string => {
    const v = xs(id, route, key);
    return v.length ? `[${fmt(Math.min(...v), digits)}–${fmt(Math.max(...v), digits)}]` : '';
  };
  const peak = (id: string): string => {
    const v = xs(id, 'gateway', 'rssPeak');
    return v.length ? mb(Math.max(...v)) : 'n/a';
  };
  const n = (id: string, route: Route): string => `${samples.get(id)?.[route].length ?? 0}/${REPS}`;

  const big = CASES.filter((c) => c.data === 'big');
  const small = CASES.filter((c) => c.data === 'small');
  if (big.length) {
    console.log(`\nBIG FILE  ${SIZE / MiB} MiB from /dev/urandom per run, MB/s = 10^6 B/s, median of ${REPS} [min–max]`);
    console.log('transfer = first destination byte → last write (sign-in left out); incl. set-up = client spawned → exit\n');
    const rows: string[][] = [['case', 'direct MB/s', '[range]', 'gateway MB/s', '[range]', 'gw / direct', 'incl. set-up: direct', 'gateway', 'gw / direct', 'runs d/g']];
    for (const c of big) {
      rows.push([
        c.label, fmt(med(c.id, 'direct', 'transfer')), range(c.id, 'direct', 'transfer'), fmt(med(c.id, 'gateway', 'transfer')), range(c.id, 'gateway', 'transfer'),
        ratio(med(c.id, 'gateway', 'transfer'), med(c.id, 'direct', 'transfer')),
        fmt(med(c.id, 'direct', 'wall')), fmt(med(c.id, 'gateway', 'wall')), ratio(med(c.id, 'gateway', 'wall'), med(c.id, 'direct', 'wall')),
        `${n(c.id, 'direct')} ${n(c.id, 'gateway')}`,
      ]);
    }
    console.log(table(rows));
  }
  if (small.length) {
    console.log(`\nSMALL FILES  ${SMALL_COUNT} × ${SMALL_SIZE / 1024} KiB per run, files/s over the transfer window, median of ${REPS} [min–max]\n`);
    const rows: string[][] = [['case', 'direct files/s', '[range]', 'gateway files/s', '[range]', 'gw / direct', 'direct ms/file', 'gateway ms/file', 'runs d/g']];
    for (const c of small) {
      const d = med(c.id, 'direct', 'filesPerS');
      const g = med(c.id, 'gateway', 'filesPerS');
      rows.push([c.label, fmt(d), range(c.id, 'direct', 'filesPerS'), fmt(g), range(c.id, 'gateway', 'filesPerS'), ratio(g, d), fmt(1000 / d, 2), fmt(1000 / g, 2), `${n(c.id, 'direct')} ${n(c.id, 'gateway')}`]);
    }
    console.log(table(rows));
  }

  console.log('\nSET-UP AND TEARDOWN  ms of each run outside the transfer window (connect, sign-in, channel, exit), median\n');
  const rows: string[][] = [['case', 'direct', 'gateway', 'gateway − direct']];
  for (const c of CASES) {
    const d = med(c.id, 'direct', 'overheadMs');
    const g = med(c.id, 'gateway', 'overheadMs');
    rows.push([c.label, fmt(d), fmt(g), fmt(g - d)]);
  }
  console.log(table(rows));

  const pct = (v: number): string => (Number.isFinite(v) ? `${fmt(v)}%` : 'n/a');
  console.log(`\nCPU AND MEMORY  median. Machine: busy share of all ${os.cpus().length} cores inside the transfer window (every process`);
  console.log('on it). Gateway: this process (the gateway, plus the idle harness), % of one core, in the transfer window and over');
  console.log('the whole run; its RSS peak, highest of the runs; the session recording on disk after sealing, against the payload\n');
  const gr: string[][] = [['case', 'machine: direct', 'gateway', 'gw CPU: transfer', 'whole run', 'gw RSS peak', 'recording bytes', 'rec / payload']];
  for (const c of CASES) {
    const payload = c.data === 'big' ? SIZE : SMALL_COUNT * SMALL_SIZE;
    const m = median(recordings.get(c.id) ?? []);
    gr.push([
      c.label, pct(med(c.id, 'direct', 'machineInTransfer')), pct(med(c.id, 'gateway', 'machineInTransfer')),
      pct(med(c.id, 'gateway', 'cpuInTransfer')), pct(med(c.id, 'gateway', 'cpu')), peak(c.id), fmt(m), Number.isFinite(m) ? (m / payload).toFixed(3) : 'n/a',
    ]);
  }
  console.log(table(gr));

  console.log(`\nAUDIT  gateway sftp/scp runs that arrived intact, each file looked up in file.transferred by op, bytes and SHA-256`);
  console.log(`  audited with matching sha256: ${audited}/${auditExpected}`);
  for (const m of auditMisses) console.log(`  MISSING ${m}`);
  console.log(`  of those, the audited path ends in the file's own name: ${auditNamed}/${audited}`);
  for (const m of auditMisnamed) console.log(`  PATH ${m}`);

  console.log(`\nGATEWAY PROCESS RSS (gateway in-process, plus this harness): baseline ${mb(rssBaseline)}, peak during runs ${mb(rssPeak)}, after runs ${mb(rssAfter)}`);
  if (failures.length) {
    console.log(`\nFAILED RUNS (${failures.length}, left out of the figures):`);
    for (const f of failures) console.log(`  FAILED ${f}`);
  }
  console.log(`\nload average at end: ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}; total time ${((Date.now() - t0) / 1000).toFixed(0)} s`);
}

await runBench(main, DEADLINE_MS, cleanup);
