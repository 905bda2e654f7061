/**
 * `npm run bench`: the gateway's SSH data path side by side with plain OpenSSH, in one run against
 * one local OpenSSH sshd (the "device"):
 *   direct     ssh root@device 'cat FILE'
 *   ProxyJump  ssh -J root@device root@device 'cat FILE'   (the same sshd is its own jump host)
 *   gateway    ssh user#device@gateway 'cat FILE'         (password + TOTP, recording on)
 * Each client's stdout goes to `dd of=/dev/null` (not through this process, which is the
 * gateway's), which ends at the last expected byte: the time is taken there, so a client that is
 * not let go after the data (seen with the gateway) does not spoil the figure and is reported.
 * It measures bulk download throughput (text and incompressible binary), session set-up time,
 * recording size on disk against the bytes that crossed, and the gateway's RSS (it runs in this
 * process). Targets are printed as PASS/MISS; a miss never fails the run (exit 0), only a broken
 * set-up does.
 *
 * Knobs (environment): BENCH_MIB (256), BENCH_REPS (3), BENCH_SETUP_RUNS (20), BENCH_TIMEOUT_S (1200),
 * BENCH_SKIP_SETUP=1, BENCH_SKIP_THROUGHPUT=1, BENCH_PATHS=direct,proxyjump,gateway,
 * BENCH_GATEWAY_TOML (extra gateway config, e.g. '[recordings]\ncompression = "none"').
 */
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { startDeviceSshd, type DeviceSshd } from '../support/device-sshd.js';
import { startGatewayFixture, type GatewayFixture } from '../support/gateway-fixture.js';
import { askpassScript, SSH_BASE_ARGS } from '../support/ssh-client.js';
import { benchCleanup, describeFailure, mb, runBench, UserPool, capture, fmt, median, percentile, ratio, runProc, table, type ProcResult } from './bench-lib.js';

const MiB = 1024 * 1024;
const envNum = (name: string, dflt: number): number => {
  const v = Number(process.env[name]);
  return Number.isFinite(v) && v > 0 ? v : dflt;
};
const SIZE = Math.round(envNum('BENCH_MIB', 256) * MiB);
const REPS = Math.round(envNum('BENCH_REPS', 3));
const SETUP_RUNS = Math.round(envNum('BENCH_SETUP_RUNS', 20));
const DEADLINE_MS = envNum('BENCH_TIMEOUT_S', 1200) * 1000;
const SKIP_SETUP = process.env.BENCH_SKIP_SETUP === '1';
const SKIP_THROUGHPUT = process.env.BENCH_SKIP_THROUGHPUT === '1';
const DEVICE = 'bench-dev';

type PathName = 'direct' | 'proxyjump' | 'gateway';
const ALL_PATHS: PathName[] = ['direct', 'proxyjump', 'gateway'];
const PATHS = ALL_PATHS.filter((p) => (process.env.BENCH_PATHS ?? ALL_PATHS.join(',')).split(',').includes(p));
const LABEL: Record<PathName, string> = { direct: 'direct OpenSSH', proxyjump: 'OpenSSH ProxyJump', gateway: 'gateway (recording on)' };
type DataKind = 'text' | 'binary';
const KINDS: DataKind[] = ['text', 'binary'];

let device: DeviceSshd | null = null;
let fx: GatewayFixture | null = null;
let benchDir: string | null = null;

const cleanup = benchCleanup(() => ({ gateway: fx, device, dir: benchDir }));

// ---------------------------------------------------------------------------------------------
// Memory sampling (the gateway runs in this process; the harness itself adds a little).

let rssPeak = 0;
const rssTimer = setInterval(() => { rssPeak = Math.max(rssPeak, process.memoryUsage().rss); }, 100);
rssTimer.unref();

// ---------------------------------------------------------------------------------------------
// The three paths.

let sshConfig = '';
const users = new UserPool();

interface PathRun {
  proc: ProcResult;
  user: string | null;
}

const GRACE_MS = 10_000;

async function runPath(p: PathName, command: string, timeoutMs: number, extraArgs: string[] = [], download?: { bytes: number; onLastByte: () => void }): Promise<PathRun> {
  const dev = device as DeviceSshd;
  const sink = download ? { sinkBytes: download.bytes, graceMs: GRACE_MS, onLastByte: download.onLastByte } : {};
  if (p === 'direct') {
    return { proc: await runProc('ssh', ['-F', sshConfig, ...extraArgs, '-p', String(dev.port), 'root@127.0.0.1', command], { timeoutMs, ...sink }), user: null };
  }
  if (p === 'proxyjump') {
    // `bench-jump` is 127.0.0.1:devport under another name: OpenSSH refuses `-J` to the very
    // host:port it is asked to reach ("jumphost loop").
    const args = ['-F', sshConfig, ...extraArgs, '-J', `root@bench-jump:${dev.port}`, '-p', String(dev.port), 'root@127.0.0.1', command];
    return { proc: await runProc('ssh', args, { timeoutMs, ...sink }), user: null };
  }
  const g = fx as GatewayFixture;
  const u = users.take();
  const askpass = askpassScript(u.password, { secret: u.totpSecret });
  try {
    const args = [...SSH_BASE_ARGS, ...extraArgs, '-p', String(g.sshPort), `${u.name}#${DEVICE}@127.0.0.1`, command];
    const proc = await runProc('ssh', args, { timeoutMs, ...sink, env: { SSH_ASKPASS: askpass, SSH_ASKPASS_REQUIRE: 'force', DISPLAY: ':0' } });
    return { proc, user: u.name };
  } finally {
    rmSync(path.dirname(askpass), { recursive: true, force: true });
  }
}

/** Waits until the gateway has ended the session and sealed its recording. */
async function sealedSession(user: string): Promise<{ bytesOut: number; bytesIn: number; size: number; file: string }> {
  const g = fx as GatewayFixture;
  const until = Date.now() + 60_000;
  while (Date.now() < until) {
    const s = (await g.gw.runtime.store.listSessions({ limit: 500 })).find((x) => x.user === user);
    if (s?.endedAt != null) {
      const rec = await g.gw.runtime.store.getRecording(s.recordingId);
      if (rec?.sealedAt != null && rec.size != null) {
        return { bytesOut: s.bytesOut, bytesIn: s.bytesIn, size: rec.size, file: path.join(g.config.paths.recordings, rec.path) };
      }
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`session of ${user} was not sealed within 60 s`);
}

// ---------------------------------------------------------------------------------------------

interface ThroughputSample {
  /** MB/s from the device starting `cat` to the last byte on the client's stdout. */
  transfer: number;
  /** MB/s from spawning ssh to the last byte, connection set-up included. */
  wall: number;
}

async function main(): Promise<void> {
  const t0 = Date.now();
  const sshVersion = (await capture('ssh', ['-V'])).stderr.trim();
  console.log(`Portcullis benchmark — ${os.cpus().length} cores, node ${process.version}, ${sshVersion}`);
  console.log(`load average at start: ${os.loadavg().map((l) => l.toFixed(2)).join(' ')} (other work on this machine skews the figures)`);

  device = await startDeviceSshd();
  const extraToml = (process.env.BENCH_GATEWAY_TOML ?? '').replaceAll('\\n', '\n');
  fx = await startGatewayFixture(extraToml);
  if (extraToml) console.log(`gateway config added: ${JSON.stringify(extraToml)}`);
  await fx.addDevice(DEVICE, device);
  benchDir = mkdtempSync(path.join(os.tmpdir(), 'pc-bench-'));
  sshConfig = path.join(benchDir, 'ssh_config');
  // One config for direct and ProxyJump: `-J` passes `-F` on to the jump connection, so both hops
  // use the device's client key. No cipher options: the client's defaults are what is measured.
  writeFileSync(sshConfig, [
    'Host bench-jump', '  HostName 127.0.0.1', '',
    'Host *', '  User root', `  IdentityFile ${device.clientKeyFile}`, '  IdentitiesOnly yes', '  BatchMode yes',
    '  StrictHostKeyChecking no', '  UserKnownHostsFile /dev/null', '  GlobalKnownHostsFile /dev/null', '  LogLevel ERROR', '  ConnectTimeout 10', '',
  ].join('\n'));

  const files: Record<DataKind, string> = { text: path.join(device.dir, 'bench-text.log'), binary: path.join(device.dir, 'bench-binary.bin') };
  if (!SKIP_THROUGHPUT) {
    const t = Date.now();
    // In a child: the strings it builds would otherwise stay in this (the gateway's) heap.
    const genText = await capture(process.execPath, [...process.execArgv.filter((a) => !a.startsWith('--cpu-prof')), path.join(import.meta.dirname, 'gen-text.ts'), files.text, String(SIZE)], 300_000);
    if (genText.code !== 0 || statSync(files.text).size !== SIZE) throw new Error(`could not generate text data: ${genText.stderr}`);
    const gen = await capture('sh', ['-c', `head -c ${SIZE} /dev/urandom > '${files.binary}'`], 120_000);
    if (gen.code !== 0 || statSync(files.binary).size !== SIZE) throw new Error(`could not generate binary data: ${gen.stderr}`);
    // Warm the page cache so every path reads the files from memory.
    for (const f of Object.values(files)) await runProc('cat', [f], { timeoutMs: 60_000 });
    console.log(`data: ${SIZE / MiB} MiB of log-like text and ${SIZE / MiB} MiB from /dev/urandom, generated in ${((Date.now() - t) / 1000).toFixed(1)} s`);
  }

  // Fresh gateway users: a TOTP code is single-use per user and 30 s step.
  const needUsers = 1 + (PATHS.includes('gateway') ? (SKIP_THROUGHPUT ? 0 : KINDS.length * REPS) + (SKIP_SETUP ? 0 : SETUP_RUNS + 1) : 0);
  const tu = Date.now();
  await users.fill(fx as GatewayFixture, needUsers, { prefix: 'bench', device: DEVICE, until: '+4h' });
  console.log(`gateway users with grants: ${needUsers}, prepared in ${((Date.now() - tu) / 1000).toFixed(1)} s`);

  // Negotiated ciphers, from `ssh -v` (client's view; ProxyJump prints the jump hop first).
  const ciphers: Record<string, string> = {};
  for (const p of PATHS) {
    const r = await runPath(p, 'true', 30_000, ['-v']);
    if (r.proc.code !== 0) throw new Error(`${LABEL[p]}: probe failed, ${describeFailure(r.proc)}`);
    const found = [...r.proc.stderr.matchAll(/kex: server->client cipher: (\S+)/g)].map((m) => m[1] as string);
    ciphers[p] = p === 'proxyjump' && found.length >= 2 ? `jump hop ${found[0]}, to device ${found[1]}` : found.join(', ') || 'unknown';
    if (p === 'gateway') ciphers[p] += ' (client↔gateway); gateway↔device not measured, expected aes128-gcm@openssh.com (the connector\'s first choice)';
    if (r.user) await sealedSession(r.user);
  }
  console.log('ciphers negotiated (server->client):');
  for (const p of PATHS) console.log(`  ${LABEL[p].padEnd(24)} ${ciphers[p]}`);
  const rssBaseline = process.memoryUsage().rss;
  rssPeak = rssBaseline;

  // ------------------------------------------------------------------ throughput
  const tp: Record<DataKind, Record<PathName, ThroughputSample[]>> = {
    text: { direct: [], proxyjump: [], gateway: [] },
    binary: { direct: [], proxyjump: [], gateway: [] },
  };
  const rec: Record<DataKind, Array<{ crossed: number; onDisk: number }>> = { text: [], binary: [] };
  const gwCpu: Record<DataKind, number[]> = { text: [], binary: [] };
  const failures: string[] = [];
  const hangs: string[] = [];
  if (!SKIP_THROUGHPUT) {
    const timeoutMs = Math.max(180_000, (SIZE / 5e6) * 1000);
    for (let rep = 1; rep <= REPS; rep++) {
      for (const kind of KINDS) {
        for (const p of PATHS) {
          // The device stamps the moment `cat` starts (same clock as ours): the transfer phase is
          // from there to the client's exit, without the connection set-up.
          const cmd = `date +%s%N >&2; exec cat '${files[kind]}'`;
          const cpu0 = process.cpuUsage();
          let cpu = cpu0;
          const r = await runPath(p, cmd, timeoutMs, [], { bytes: SIZE, onLastByte: () => { cpu = process.cpuUsage(cpu0); } });
          const stamp = /^(\d{16,20})$/m.exec(r.proc.stderr)?.[1];
          const got = r.proc.sink?.bytes ?? 0;
          if ((r.proc.code !== 0 && !r.proc.hungAfterData) || !stamp || got !== SIZE || !r.proc.sink) {
            const why = `${describeFailure(r.proc)}; ${got} of ${SIZE} bytes arrived`;
            failures.push(`${LABEL[p]} ${kind} rep ${rep}: ${why}`);
            console.log(`  ${kind.padEnd(6)} rep ${rep} ${LABEL[p].padEnd(24)} FAILED ${why}`);
            if (r.user) await sealedSession(r.user).then((x) => rm(x.file, { force: true }), () => undefined);
            continue;
          }
          if (r.proc.hungAfterData) {
            hangs.push(`${LABEL[p]} ${kind} rep ${rep}: all ${SIZE} bytes arrived, but ssh had not exited ${GRACE_MS / 1000} s later (killed)`);
          }
          const catStart = Number(BigInt(stamp) / 1000n) / 1000;
          const transferS = (r.proc.sink.lastByteAt - catStart) / 1000;
          const wallS = (r.proc.sink.lastByteAt - r.proc.startedAt) / 1000;
          const sample = { transfer: SIZE / 1e6 / transferS, wall: SIZE / 1e6 / wallS };
          let extra = r.proc.hungAfterData ? '  [client not released: killed]' : '';
          if (r.user) {
            const s = await sealedSession(r.user);
            const crossed = s.bytesIn + s.bytesOut;
            if (s.bytesOut < SIZE) failures.push(`gateway ${kind} rep ${rep}: only ${s.bytesOut} of ${SIZE} bytes crossed`);
            rec[kind].push({ crossed, onDisk: s.size });
            const busy = (cpu.user + cpu.system) / 1e6;
            gwCpu[kind].push((busy / wallS) * 100);
            extra += `  recording ${(s.size / 1e6).toFixed(1)} MB for ${(crossed / 1e6).toFixed(1)} MB crossed; gateway process CPU ${((busy / wallS) * 100).toFixed(0)}% of one core`;
            await rm(s.file, { force: true }); // measured; free the disk for the next runs
          }
          tp[kind][p].push(sample);
          console.log(`  ${kind.padEnd(6)} rep ${rep} ${LABEL[p].padEnd(24)} ${fmt(sample.transfer).padStart(5)} MB/s (incl. set-up ${fmt(sample.wall)})${extra}`);
        }
      }
    }
  }

  // ------------------------------------------------------------------ set-up time
  const setup: Record<PathName, number[]> = { direct: [], proxyjump: [], gateway: [] };
  if (!SKIP_SETUP) {
    for (let i = 0; i <= SETUP_RUNS; i++) {
      for (const p of PATHS) {
        const r = await runPath(p, 'true', 30_000);
        if (r.proc.code !== 0) {
          failures.push(`${LABEL[p]} set-up run ${i}: ${describeFailure(r.proc)}`);
          continue;
        }
        if (i > 0) setup[p].push(r.proc.exitedAt - r.proc.startedAt); // run 0 is a warm-up
      }
    }
  }
  const rssAfter = process.memoryUsage().rss;

  // ------------------------------------------------------------------ report
  const med = (kind: DataKind, p: PathName): number => median(tp[kind][p].map((s) => s.transfer));
  const medWall = (kind: DataKind, p: PathName): number => median(tp[kind][p].map((s) => s.wall));
  const range = (kind: DataKind, p: PathName): string => {
    const xs = tp[kind][p].map((s) => s.transfer);
    return xs.length ? `${fmt(Math.min(...xs))}–${fmt(Math.max(...xs))}` : 'n/a';
  };

  console.log('');
  console.log('='.repeat(100));
  if (!SKIP_THROUGHPUT) {
    console.log(`\nBULK DOWNLOAD  ${SIZE / MiB} MiB per run, MB/s = 10^6 B/s, median of ${REPS} [min–max]`);
    console.log('transfer = device starts `cat` → last byte on the client\'s stdout; incl. set-up = ssh spawned → last byte\n');
    const rows: string[][] = [['path', 'text MB/s', '[range]', 'binary MB/s', '[range]', 'text incl. set-up', 'binary incl. set-up']];
    for (const p of PATHS) rows.push([LABEL[p], fmt(med('text', p)), range('text', p), fmt(med('binary', p)), range('binary', p), fmt(medWall('text', p)), fmt(medWall('binary', p))]);
    console.log(table(rows));
    if (PATHS.includes('gateway')) {
      console.log('');
      const r2: string[][] = [['ratio', 'text', 'binary']];
      if (PATHS.includes('direct')) r2.push(['gateway / direct', ratio(med('text', 'gateway'), med('text', 'direct')), ratio(med('binary', 'gateway'), med('binary', 'direct'))]);
      if (PATHS.includes('proxyjump')) r2.push(['gateway / ProxyJump', ratio(med('text', 'gateway'), med('text', 'proxyjump')), ratio(med('binary', 'gateway'), med('binary', 'proxyjump'))]);
      if (PATHS.includes('direct') && PATHS.includes('proxyjump')) r2.push(['(ProxyJump / direct)', ratio(med('text', 'proxyjump'), med('text', 'direct')), ratio(med('binary', 'proxyjump'), med('binary', 'direct'))]);
      r2.push(['gateway process CPU, % of one core (median)', `${fmt(median(gwCpu.text))}%`, `${fmt(median(gwCpu.binary))}%`]);
      console.log(table(r2));
    }
  }
  if (!SKIP_SETUP) {
    console.log(`\nSESSION SET-UP  connect → \`true\` → exit, ms, ${SETUP_RUNS} runs after 1 warm-up (gateway: password + TOTP via SSH_ASKPASS/oathtool)\n`);
    const rows: string[][] = [['path', 'median', 'p90', 'min', 'max']];
    for (const p of PATHS) {
      const xs = setup[p];
      rows.push([LABEL[p], fmt(median(xs), 1), fmt(percentile(xs, 90), 1), fmt(Math.min(...xs), 1), fmt(Math.max(...xs), 1)]);
    }
    console.log(table(rows));
    if (PATHS.includes('gateway')) {
      if (PATHS.includes('proxyjump')) console.log(`gateway / ProxyJump: ${ratio(median(setup.gateway), median(setup.proxyjump))}`);
      if (PATHS.includes('direct')) console.log(`gateway / direct:    ${ratio(median(setup.gateway), median(setup.direct))}`);
    }
  }
  const recRatio = (kind: DataKind): number => median(rec[kind].map((x) => x.onDisk / x.crossed));
  if (!SKIP_THROUGHPUT && PATHS.includes('gateway')) {
    console.log('\nRECORDING SIZE  on disk after sealing vs bytes that crossed (in + out), median\n');
    const rows: string[][] = [['data', 'crossed bytes', 'on disk bytes', 'on disk / crossed']];
    for (const kind of KINDS) {
      const x = rec[kind];
      rows.push([kind, fmt(median(x.map((v) => v.crossed))), fmt(median(x.map((v) => v.onDisk))), Number.isFinite(recRatio(kind)) ? recRatio(kind).toFixed(4) : 'n/a']);
    }
    console.log(table(rows));
  }

  console.log('\nTARGETS');
  const target = (name: string, value: number, ok: (v: number) => boolean, shown: string): void => {
    const verdict = Number.isFinite(value) ? (ok(value) ? 'PASS' : 'MISS') : 'n/a ';
    console.log(`  [${verdict}] ${name.padEnd(48)} ${shown}`);
  };
  const r = (a: number, b: number): number => a / b;
  if (!SKIP_THROUGHPUT && PATHS.includes('gateway')) {
    for (const kind of KINDS) {
      if (PATHS.includes('proxyjump')) {
        const v = r(med(kind, 'gateway'), med(kind, 'proxyjump'));
        target(`throughput ${kind}: gateway ≥ 1.0× ProxyJump`, v, (x) => x >= 1.0, `${v.toFixed(2)}×`);
      }
      if (PATHS.includes('direct')) {
        const v = r(med(kind, 'gateway'), med(kind, 'direct'));
        target(`throughput ${kind}: gateway ≥ 0.6× direct OpenSSH`, v, (x) => x >= 0.6, `${v.toFixed(2)}×`);
      }
    }
  }
  if (!SKIP_SETUP && PATHS.includes('gateway') && PATHS.includes('proxyjump')) {
    const v = r(median(setup.gateway), median(setup.proxyjump));
    target('set-up: gateway ≤ 1.0× ProxyJump', v, (x) => x <= 1.0, `${v.toFixed(2)}×`);
  }
  if (!SKIP_THROUGHPUT && PATHS.includes('gateway')) {
    const v = recRatio('binary');
    target('recording binary: on disk ≤ 1.2× crossed', v, (x) => x <= 1.2, `${v.toFixed(4)}×`);
  }

  console.log(`\nGATEWAY PROCESS RSS (gateway in-process, plus this harness): baseline ${mb(rssBaseline)}, peak during runs ${mb(rssPeak)}, after runs ${mb(rssAfter)}`);
  if (hangs.length) {
    console.log(`\nCLIENT NOT RELEASED AFTER THE LAST BYTE (${hangs.length}; the figures above still count, as every byte arrived):`);
    for (const h of hangs) console.log(`  ${h}`);
  }
  if (failures.length) {
    console.log(`\nFAILED RUNS (${failures.length}, left out of the figures):`);
    for (const f of failures) console.log(`  ${f}`);
  }
  console.log(`\nload average at end: ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}; total time ${((Date.now() - t0) / 1000).toFixed(0)} s`);
}

await runBench(main, DEADLINE_MS, cleanup);
