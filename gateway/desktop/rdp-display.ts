/**
 * The RDP path's process side. guacd is not in Debian, so for each RDP session the gateway runs
 * FreeRDP's `xfreerdp` inside a private TigerVNC `Xvnc`; the broker then reads that display
 * over RFB like any VNC device, so recording, watching and replay are the VNC path's.
 *
 * What keeps a session private:
 * - Xvnc listens for RFB on a unix socket only (mode 0600, in a 0700 directory; `-rfbport -1`,
 *   because `-rfbport 0` still opens TCP 5900 when a unix path is given), with security type
 *   None on that socket and nothing else;
 * - its X display takes connections only with a per-session MIT cookie (`-auth`) and never over
 *   TCP: without the cookie any local user could read the screen with `xwd`. The abstract
 *   socket stays on purpose: with `-displayfd` the X server takes no lock file, and binding
 *   the abstract name is what keeps two servers off one display number (with `-nolisten
 *   local`, Xvnc unlinks another server's /tmp/.X11-unix socket and takes its number, and
 *   xfreerdp, which tries the abstract name first, then talks to the other server);
 * - the device password goes to xfreerdp on stdin (`/from-stdin:force`), never on a command
 *   line, in an environment variable or in a log line;
 * - the device certificate is pinned (`/cert:deny,fingerprint:sha256:…`), with HOME and the
 *   OpenSSL CA paths pointed at empty private places, so neither a remembered known_hosts entry
 *   nor a public CA can stand in for the pin;
 * - no rdpdr channel at all (`-heartbeat` and no network auto-detect, which would otherwise pull
 *   it in), so drives, printers, smartcards and serial ports cannot be redirected; the clipboard
 *   only in the directions the grant allows (upload: to the device; download: from it), and then
 *   it crosses the RFB stream, so it is recorded and the proxy holds back the other direction.
 *
 * No Xvnc or xfreerdp may outlive its session. Each child runs in its own process group, which
 * is killed as a whole; either child ending ends the other; a process-wide `exit` hook signals
 * whatever is still running; a small watchdog shell (one per gateway process) holds a pipe from
 * the gateway and kills every registered group when that pipe closes, which also covers a
 * SIGKILLed gateway; Xvnc itself exits once no RFB client has been connected for
 * `maxDisconnectionSeconds` (the broker stays connected for the whole session because it records
 * every frame), and xfreerdp dies with its X server; and at the next start, leftovers of dead
 * gateways are found by their private directories and killed.
 *
 * The broker's part: connect one RFB client to `socketPath` (shared, so nothing else is pushed
 * off) as soon as `ready` resolves — the display's own probe disconnects then and Xvnc starts
 * counting `maxDisconnectionSeconds` — and keep it for the whole session; call `resize()` when
 * the browser's size changes, and `stop()` on every end path (`stopAllRdpDisplays()` at
 * shutdown).
 */
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync, appendFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import type { Logger } from '../log/logger.js';
import { fetchRdpCertificate, normalizeRdpFingerprint } from './rdp-certificate.js';

// ---------------------------------------------------------------------------------------------
// Public types

export type RdpFailure =
  | 'unreachable'
  | 'certificate-mismatch'
  | 'auth-failed'
  | 'timeout'
  | 'display-failed'
  | 'invalid-request';

/** Stable codes for the error catalogue; the first two already exist there, the rest are new. */
export type RdpFailureCode =
  | 'DEVICE_UNREACHABLE'
  | 'DEVICE_AUTH_FAILED'
  | 'RDP_CERT_MISMATCH'
  | 'DEVICE_TIMEOUT'
  | 'DESKTOP_START_FAILED'
  | 'INVALID_INPUT';

const FAILURES: Record<RdpFailure, { code: RdpFailureCode; sentence: string }> = {
  unreachable: { code: 'DEVICE_UNREACHABLE', sentence: 'The device could not be reached over RDP' },
  'certificate-mismatch': { code: 'RDP_CERT_MISMATCH', sentence: "The device's RDP certificate does not match the pinned certificate; the session was refused" },
  'auth-failed': { code: 'DEVICE_AUTH_FAILED', sentence: 'The device refused the stored credential' },
  timeout: { code: 'DEVICE_TIMEOUT', sentence: 'The device did not show its desktop in time' },
  'display-failed': { code: 'DESKTOP_START_FAILED', sentence: 'The gateway could not start the desktop display for this session' },
  'invalid-request': { code: 'INVALID_INPUT', sentence: 'The RDP session request is not valid' },
};

/** A refusal or failure; its message never contains the password. */
export class RdpDisplayError extends Error {
  readonly code: RdpFailureCode;
  constructor(readonly kind: RdpFailure, readonly detail: string) {
    super(`${FAILURES[kind].sentence}: ${detail}`);
    this.name = 'RdpDisplayError';
    this.code = FAILURES[kind].code;
  }
}

/** Knobs measured by test/bench/rdp-display.ts; the defaults are what it settled on. */
export interface RdpTuning {
  /**
   * Xvnc's depth (`-depth`). 16 saves ~8 MB a session at 1280×800 but shows 65 536 colours
   * (visible banding in grey ramps and images); the browser is sent 32-bit pixels either way.
   */
  depth: 16 | 24;
  /**
   * xfreerdp's session colour depth (`/bpp`). null leaves it to FreeRDP 2, which then asks for
   * 32 bits and the RDP 8 graphics pipeline (~13 MB more).
   */
  bpp: 16 | 24 | 32 | null;
  /** Xvnc's GLX extension: off saves ~10 MB of Mesa state that nothing here uses. */
  glx: boolean;
  /** RDP 8 graphics pipeline (`/gfx`). */
  gfx: boolean;
  /** Xvnc's `-FrameRate`, the cap on updates per second per RFB client. */
  frameRate: number;
  /** Xvnc exits after this long without any RFB client (a backstop should the gateway vanish). */
  maxDisconnectionSeconds: number;
  /** How long to wait for a painted frame after the RDP connection is active (a black desktop never paints). */
  paintGraceMs: number;
  /** For measurements only. */
  extraXvncArgs: string[];
  extraXfreerdpArgs: string[];
}

export const DEFAULT_RDP_TUNING: Readonly<RdpTuning> = Object.freeze({
  depth: 24,
  bpp: 32,
  glx: false,
  gfx: false,
  frameRate: 30,
  maxDisconnectionSeconds: 30,
  paintGraceMs: 1500,
  extraXvncArgs: [],
  extraXfreerdpArgs: [],
});

export interface RdpDisplayOptions {
  host: string;
  port: number;
  username: string;
  /** The vaulted password: written to xfreerdp's stdin once, never logged. */
  password: string;
  domain?: string;
  /** SHA-256 of the device certificate as pinned at registration (`AA:BB:…`). */
  certFingerprint: string;
  /** The browser's size; Xvnc starts at it and xfreerdp asks the device for it. */
  width: number;
  height: number;
  /** Clipboard redirection, each way only as the grant allows: to the device (upload), from it (download). R-6.3e. */
  clipboard: { toDevice: boolean; fromDevice: boolean };
  /** From spawn to a painted frame. */
  timeoutMs: number;
  log: Logger;
  /**
   * Parent of the private directories; default `$XDG_RUNTIME_DIR/portcullis-rdp` or
   * `<tmp>/portcullis-rdp-<uid>`. Process-wide: the first display started decides it.
   */
  runtimeDir?: string;
  tuning?: Partial<RdpTuning>;
}

export type RdpExitReason =
  /** stop() was called. */
  | 'stopped'
  /** The display never became ready (see `error`). */
  | 'failed'
  /** xfreerdp ended after the session was up: the device disconnected, logged off, or it crashed. */
  | 'rdp-ended'
  /** Xvnc ended after the session was up. */
  | 'display-ended';

export interface RdpDisplayExit {
  reason: RdpExitReason;
  error?: RdpDisplayError;
  /** xfreerdp's exit code when it ended on its own (FreeRDP's XF_EXIT_* values). */
  rdpExitCode?: number | null;
}

export interface RdpDisplayTimings {
  /** Milliseconds from the call to Xvnc accepting connections. */
  displayMs: number;
  /** … to the RDP connection becoming active (authenticated, capabilities exchanged). */
  connectedMs: number | null;
  /** … to the first non-black frame in the Xvnc framebuffer (null: none within the grace time). */
  paintedMs: number | null;
}

export interface RdpDisplay {
  /** Xvnc's RFB socket: security type None, mode 0600. */
  readonly socketPath: string;
  readonly width: number;
  readonly height: number;
  /** Resolves when the device's desktop is on the display; rejects with RdpDisplayError (the display is then already stopped). */
  readonly ready: Promise<void>;
  /** The X display (`:N`) and its cookie file, for diagnostics and tests; the cookie grants full access to the screen. */
  readonly xDisplay: string;
  readonly xauthorityPath: string;
  readonly pids: { readonly xvnc: number; readonly xfreerdp: number };
  readonly timings: RdpDisplayTimings;
  /**
   * Follows a new browser size: Xvnc is resized through RandR, then xfreerdp reconnects at the
   * new size (a Windows device reattaches the same user session). Resolves when the new frame
   * is painted.
   */
  resize(width: number, height: number): Promise<void>;
  /** Ends the session: both process groups, the private directory. Idempotent. */
  stop(): Promise<void>;
  /** Called once, after everything is cleaned up, however the display ended. */
  onExit(cb: (exit: RdpDisplayExit) => void): void;
}

// ---------------------------------------------------------------------------------------------
// Input checks

const MIN_SIZE = 200;
const MAX_SIZE = 8192;
// Unix socket paths are limited to 107 bytes plus NUL on Linux.
const SUN_PATH_MAX = 107;

function validate(o: RdpDisplayOptions): { fingerprint: string } {
  const bad = (why: string): never => {
    throw new RdpDisplayError('invalid-request', why);
  };
  if (!/^[A-Za-z0-9.-]{1,253}$/.test(o.host) && net.isIP(o.host) === 0) bad('the device host is not a host name or IP address');
  if (!Number.isInteger(o.port) || o.port < 1 || o.port > 65535) bad('the device port is not a TCP port');
  // xfreerdp parses /u: and /d: itself; control characters would let a value end early.
  const plain = /^[^\p{Cc}]{1,256}$/u;
  if (!plain.test(o.username)) bad('the user name is empty, too long or contains control characters');
  if (o.domain !== undefined && o.domain !== '' && !plain.test(o.domain)) bad('the domain contains control characters');
  // The password travels as one line on stdin, into a 512-byte buffer.
  if (o.password.length === 0 || /[\r\n\0]/.test(o.password) || Buffer.byteLength(o.password) > 511) {
    bad('the stored password cannot be passed to an RDP client (empty, longer than 511 bytes, or contains a line break)');
  }
  for (const [name, v] of [['width', o.width], ['height', o.height]] as const) {
    if (!Number.isInteger(v) || v < MIN_SIZE || v > MAX_SIZE) bad(`${name} must be an integer between ${MIN_SIZE} and ${MAX_SIZE}`);
  }
  if (!(o.timeoutMs > 0)) bad('timeoutMs must be positive');
  let fingerprint = '';
  try {
    fingerprint = normalizeRdpFingerprint(o.certFingerprint);
  } catch (e) {
    bad((e as Error).message);
  }
  return { fingerprint };
}

// ---------------------------------------------------------------------------------------------
// Process groups, the watchdog, and leftovers of dead gateways

/** Field 22 of /proc/PID/stat: tells a live process from a later one that reused its pid. */
function processStartTime(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return fields[19] ?? null;
  } catch {
    return null;
  }
}

/**
 * The process that wrote an owner line is still running: same pid, same start time, and not a
 * zombie (a gateway that died is a zombie until its parent reaps it, with its start time intact).
 */
function ownerRunning(pid: number, start: string | undefined): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return fields[0] !== 'Z' && fields[19] === start;
  } catch {
    return false;
  }
}

function signalGroup(pgid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pgid, signal);
  } catch {
    // ESRCH: the whole group is gone already.
  }
}

function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch {
    return false;
  }
}

// One watchdog per gateway process. It reads "+PGID" / "-PGID" lines; when its stdin reaches
// EOF (the gateway exited or was killed: the kernel closes the pipe either way) it sends TERM,
// then KILL, to every group still registered and removes the gateway's runtime directory.
const WATCHDOG_SCRIPT = `
root=$1
groups=
reap() {
  for g in $groups; do kill -s TERM -- "-$g" 2>/dev/null; done
  [ -n "$groups" ] && sleep 1
  for g in $groups; do kill -s KILL -- "-$g" 2>/dev/null; done
  rm -rf -- "$root"
  exit 0
}
trap '' INT HUP
trap reap TERM
while IFS= read -r line; do
  case $line in
    +[0-9]*) groups="$groups \${line#+}" ;;
    -[0-9]*) keep=; for g in $groups; do [ "$g" = "\${line#-}" ] || keep="$keep $g"; done; groups=$keep ;;
  esac
done
reap
`;

interface Runtime {
  base: string;
  /** This gateway process's directory under base. */
  root: string;
  watchdog: ChildProcess;
}

let runtime: Promise<Runtime> | null = null;
/** Every process group this module started and has not yet seen die. */
const liveGroups = new Set<number>();
const liveSessions = new Set<Session>();

function defaultRuntimeBase(): string {
  const uid = process.getuid?.() ?? 0;
  const xdg = process.env.XDG_RUNTIME_DIR;
  return xdg ? path.join(xdg, 'portcullis-rdp') : path.join(os.tmpdir(), `portcullis-rdp-${uid}`);
}

/** Creates `dir` 0700 or accepts it only if it is ours, a real directory and 0700. */
function ensurePrivateDir(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const st = lstatSync(dir);
  const uid = process.getuid?.();
  if (!st.isDirectory() || (uid !== undefined && st.uid !== uid) || (st.mode & 0o077) !== 0) {
    throw new RdpDisplayError('display-failed', `${dir} must be a directory owned by this user with mode 0700`);
  }
}

function ownerLine(): string {
  return `${process.pid} ${processStartTime(process.pid) ?? '?'}\n`;
}

/**
 * Kills what dead gateways left under `base` (their watchdog should have, but it can be killed
 * too: `kill -9` of a whole process group, the OOM killer) and removes their directories.
 * Directories of live gateways sharing the base are left alone. Returns the groups killed.
 */
export function sweepLeftoverRdpDisplays(runtimeDir?: string): number {
  const base = runtimeDir ?? defaultRuntimeBase();
  if (!existsSync(base)) return 0;
  let killed = 0;
  for (const name of readdirSync(base)) {
    if (!name.startsWith('gw-')) continue;
    const dir = path.join(base, name);
    let owner: string[] = [];
    try {
      owner = readFileSync(path.join(dir, 'owner'), 'utf8').trim().split(' ');
    } catch {
      // No owner file: a gateway that died while creating its directory.
    }
    const ownerPid = Number(owner[0]);
    if (Number.isInteger(ownerPid) && ownerPid > 0 && ownerRunning(ownerPid, owner[1])) continue;
    let sessions: string[] = [];
    try {
      sessions = readdirSync(dir);
    } catch {
      continue;
    }
    for (const s of sessions) {
      let lines: string[] = [];
      try {
        lines = readFileSync(path.join(dir, s, 'groups'), 'utf8').split('\n');
      } catch {
        continue;
      }
      for (const line of lines) {
        const [pg, start] = line.trim().split(' ');
        const pgid = Number(pg);
        if (!Number.isInteger(pgid) || pgid <= 1) continue;
        // The leader may be gone while others of its group live on; if it is alive, it must be
        // the very process we started (same start time), not a stranger with a reused pid.
        const leaderStart = processStartTime(pgid);
        if (leaderStart !== null && leaderStart !== start) continue;
        if (groupAlive(pgid)) {
          signalGroup(pgid, 'SIGKILL');
          killed += 1;
        }
      }
    }
    rmSync(dir, { recursive: true, force: true });
  }
  return killed;
}

async function ensureRuntime(runtimeDir: string | undefined): Promise<Runtime> {
  if (runtime) return runtime;
  runtime = (async () => {
    let base = runtimeDir ?? defaultRuntimeBase();
    try {
      ensurePrivateDir(base);
    } catch (err) {
      if (runtimeDir !== undefined) throw err;
      // The usual place in /tmp is taken by someone else (another local user could make it first
      // to stop RDP here): a fresh private directory instead. Leftovers of a crash are then found
      // by the watchdog and Xvnc's own timeout, not by the sweep.
      base = mkdtempSync(path.join(os.tmpdir(), `portcullis-rdp-${process.getuid?.() ?? 0}-`));
    }
    sweepLeftoverRdpDisplays(base);
    const root = path.join(base, `gw-${process.pid}`);
    rmSync(root, { recursive: true, force: true });
    mkdirSync(root, { mode: 0o700 });
    writeFileSync(path.join(root, 'owner'), ownerLine(), { mode: 0o600 });
    const watchdog = spawn('/bin/sh', ['-c', WATCHDOG_SCRIPT, 'portcullis-rdp-watchdog', root], {
      detached: true, // its own group: a Ctrl-C or group kill aimed at the gateway must not take it too
      stdio: ['pipe', 'ignore', 'ignore'],
      // A HOME of its own: no shell here starts with it unset (and so reads nobody's start-up files).
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: root },
    });
    watchdog.on('error', () => { /* reported below through the missing pid */ });
    if (watchdog.pid === undefined) throw new RdpDisplayError('display-failed', 'the watchdog could not be started (/bin/sh)');
    watchdog.stdin?.on('error', () => { /* the watchdog died; leftovers are swept at the next start */ });
    // Neither may keep the gateway's event loop alive.
    watchdog.unref();
    (watchdog.stdin as unknown as net.Socket | null)?.unref();
    process.once('exit', () => {
      // Synchronous last word on a normal exit; the watchdog follows up with KILL.
      for (const pg of liveGroups) signalGroup(pg, 'SIGTERM');
    });
    return { base, root, watchdog };
  })();
  try {
    return await runtime;
  } catch (e) {
    runtime = null;
    throw e;
  }
}

function register(rt: Runtime, sessionDir: string, child: ChildProcess): void {
  const pid = child.pid;
  if (pid === undefined) return;
  liveGroups.add(pid);
  rt.watchdog.stdin?.write(`+${pid}\n`);
  appendFileSync(path.join(sessionDir, 'groups'), `${pid} ${processStartTime(pid) ?? '?'}\n`, { mode: 0o600 });
}

function unregister(rt: Runtime, pid: number | undefined): void {
  if (pid === undefined) return;
  liveGroups.delete(pid);
  rt.watchdog.stdin?.write(`-${pid}\n`);
}

/** Stops every display this process runs (gateway shutdown). */
export async function stopAllRdpDisplays(): Promise<void> {
  await Promise.all([...liveSessions].map((s) => s.stop()));
}

// ---------------------------------------------------------------------------------------------
// X cookie

/** An Xauthority file with one wildcard entry (any address, any display) holding `cookie`. */
function writeXauthority(file: string, cookie: Buffer): void {
  const field = (b: Buffer): Buffer => {
    const len = Buffer.alloc(2);
    len.writeUInt16BE(b.length);
    return Buffer.concat([len, b]);
  };
  const family = Buffer.from([0xff, 0xff]); // FamilyWild
  const entry = Buffer.concat([family, field(Buffer.alloc(0)), field(Buffer.alloc(0)), field(Buffer.from('MIT-MAGIC-COOKIE-1')), field(cookie)]);
  writeFileSync(file, entry, { mode: 0o600 });
}

// ---------------------------------------------------------------------------------------------
// A minimal RFB reader: tells when the RDP desktop first paints into the Xvnc framebuffer.

class ByteReader {
  private chunks: Buffer[] = [];
  private length = 0;
  private waiter: { n: number; resolve: (b: Buffer) => void; reject: (e: Error) => void } | null = null;
  private failure: Error | null = null;

  constructor(sock: net.Socket) {
    sock.on('data', (d: Buffer) => {
      this.chunks.push(d);
      this.length += d.length;
      this.pump();
    });
    const end = (e?: Error): void => {
      this.failure = e ?? new Error('connection closed');
      this.pump();
    };
    sock.on('error', end);
    sock.on('close', () => end());
  }

  read(n: number): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      this.waiter = { n, resolve, reject };
      this.pump();
    });
  }

  private pump(): void {
    const w = this.waiter;
    if (!w) return;
    if (this.length >= w.n) {
      const all = this.chunks.length === 1 ? (this.chunks[0] as Buffer) : Buffer.concat(this.chunks, this.length);
      this.chunks = all.length > w.n ? [all.subarray(w.n)] : [];
      this.length = all.length - w.n;
      this.waiter = null;
      w.resolve(all.subarray(0, w.n));
    } else if (this.failure) {
      this.waiter = null;
      w.reject(this.failure);
    }
  }
}

/**
 * Connects to Xvnc as a shared RFB client in an 8-bit true-colour format (black is 0), asks for
 * the cursor as a pseudo-encoding so it is never drawn into the pixels, and reports the first
 * update with a non-black pixel. The root window is black and nothing but xfreerdp draws, so
 * that is the device's first frame.
 */
class PaintWatch {
  private readonly sock: net.Socket;
  private closed = false;

  constructor(socketPath: string, private readonly onPaint: () => void, private readonly onLost: () => void) {
    this.sock = net.connect(socketPath);
    this.sock.on('error', () => { /* surfaced through the reader */ });
    void this.run();
  }

  close(): void {
    this.closed = true;
    this.sock.destroy();
  }

  private async run(): Promise<void> {
    const r = new ByteReader(this.sock);
    try {
      const version = (await r.read(12)).toString('latin1');
      if (!version.startsWith('RFB 003.')) throw new Error('not RFB');
      this.sock.write('RFB 003.008\n');
      const nTypes = (await r.read(1))[0] ?? 0;
      const types = await r.read(nTypes);
      if (!types.includes(1)) throw new Error('security type None not offered');
      this.sock.write(Buffer.from([1]));
      if ((await r.read(4)).readUInt32BE(0) !== 0) throw new Error('security failed');
      this.sock.write(Buffer.from([1])); // shared: never push the broker's client off
      const init = await r.read(24);
      await r.read(init.readUInt32BE(20));
      const pf = Buffer.from([0, 0, 0, 0, 8, 8, 0, 1, 0, 7, 0, 7, 0, 3, 5, 2, 0, 0, 0, 0]);
      const enc = Buffer.alloc(4 + 8);
      enc.writeUInt8(2, 0);
      enc.writeUInt16BE(2, 2);
      enc.writeInt32BE(0, 4); // Raw
      enc.writeInt32BE(-239, 8); // Cursor pseudo-encoding
      this.sock.write(Buffer.concat([pf, enc, this.updateRequest(false, init.readUInt16BE(0), init.readUInt16BE(2))]));
      for (;;) {
        const type = (await r.read(1))[0];
        if (type === 0) {
          const nRects = (await r.read(3)).readUInt16BE(1);
          let lit = false;
          for (let i = 0; i < nRects; i++) {
            const h = await r.read(12);
            const w = h.readUInt16BE(4);
            const hh = h.readUInt16BE(6);
            const encoding = h.readInt32BE(8);
            if (encoding === 0) {
              const px = await r.read(w * hh);
              if (!lit && px.some((b) => b !== 0)) lit = true;
            } else if (encoding === -239) {
              await r.read(w * hh + ((w + 7) >> 3) * hh);
            } else {
              throw new Error(`unexpected encoding ${encoding}`);
            }
          }
          if (lit) {
            this.onPaint();
            this.close();
            return;
          }
          this.sock.write(this.updateRequest(true, 65535, 65535));
        } else if (type === 2) {
          // Bell: nothing follows.
        } else if (type === 3) {
          await r.read((await r.read(7)).readUInt32BE(3));
        } else {
          throw new Error(`unexpected message ${type ?? '?'}`);
        }
      }
    } catch {
      this.sock.destroy();
      if (!this.closed) this.onLost();
    }
  }

  private updateRequest(incremental: boolean, w: number, h: number): Buffer {
    const b = Buffer.alloc(10);
    b.writeUInt8(3, 0);
    b.writeUInt8(incremental ? 1 : 0, 1);
    b.writeUInt16BE(Math.min(w, 65535), 6);
    b.writeUInt16BE(Math.min(h, 65535), 8);
    return b;
  }
}

// ---------------------------------------------------------------------------------------------
// The session

// FreeRDP 2's XF_EXIT_* codes that mean the device refused the credential or the account.
const AUTH_EXIT_CODES = new Set([132, 134, 135, 148, 149, 151, 152, 153, 154, 155, 156, 157, 158]);
const TLS_EXIT_CODE = 143;
const LOG_TAIL = 40;

function tail(lines: string[], line: string): void {
  lines.push(line);
  if (lines.length > LOG_TAIL) lines.shift();
}

function lines(stream: Readable | null, each: (line: string) => void): void {
  if (!stream) return;
  createInterface({ input: stream, crlfDelay: Infinity }).on('line', each);
}

interface RdpAttempt {
  child: ChildProcess;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  reachedNla: boolean;
  passedNla: boolean;
  connected: boolean;
  certTrouble: boolean;
  lastError: string | null;
}

class Session implements RdpDisplay {
  readonly socketPath: string;
  readonly xauthorityPath: string;
  xDisplay = '';
  width: number;
  height: number;
  readonly ready: Promise<void>;
  timings: RdpDisplayTimings = { displayMs: 0, connectedMs: null, paintedMs: null };

  private readonly t0 = performance.now();
  private readonly tuning: RdpTuning;
  private xvnc: ChildProcess | null = null;
  private xvncGoneChecked = false;
  private xvncExited: Promise<void> = Promise.resolve();
  private rdp: RdpAttempt | null = null;
  private readonly xvncLog: string[] = [];
  private readonly rdpLog: string[] = [];
  private exitInfo: RdpDisplayExit | null = null;
  private readonly exitCallbacks: Array<(e: RdpDisplayExit) => void> = [];
  private stopping: Promise<void> | null = null;
  /** RandR modes this display added for resizes (TigerVNC's built-in ones are never removed). */
  private readonly addedModes = new Set<string>();
  /** Set while a resize replaces xfreerdp, so its exit is not taken for the session's end. */
  private replacing = false;
  private isReady = false;
  /** The first failure, set as soon as it is known (teardown finishes later). */
  failure: RdpDisplayError | null = null;
  private settleReady: { resolve: () => void; reject: (e: RdpDisplayError) => void } = { resolve: () => {}, reject: () => {} };

  constructor(
    private readonly opts: RdpDisplayOptions,
    private readonly fingerprint: string,
    private readonly rt: Runtime,
    readonly dir: string,
  ) {
    this.tuning = { ...DEFAULT_RDP_TUNING, ...opts.tuning };
    this.width = opts.width;
    this.height = opts.height;
    this.socketPath = path.join(dir, 'rfb.sock');
    this.xauthorityPath = path.join(dir, 'xauthority');
    this.ready = new Promise<void>((resolve, reject) => {
      this.settleReady = { resolve, reject };
    });
    // The caller may never look at `ready` when start() itself fails; don't let that crash the process.
    this.ready.catch(() => {});
  }

  get pids(): { xvnc: number; xfreerdp: number } {
    return { xvnc: this.xvnc?.pid ?? 0, xfreerdp: this.rdp?.child.pid ?? 0 };
  }

  onExit(cb: (exit: RdpDisplayExit) => void): void {
    if (this.exitInfo) {
      const info = this.exitInfo;
      queueMicrotask(() => cb(info));
    } else {
      this.exitCallbacks.push(cb);
    }
  }

  private elapsed(): number {
    return Math.round(performance.now() - this.t0);
  }

  private redact(line: string): string {
    return line.split(this.opts.password).join('[redacted]');
  }

  /** Starts Xvnc and xfreerdp; `ready` settles later. */
  async start(): Promise<void> {
    writeXauthority(this.xauthorityPath, randomBytes(16));
    mkdirSync(path.join(this.dir, 'home'), { mode: 0o700 });
    mkdirSync(path.join(this.dir, 'no-ca'), { mode: 0o700 });
    const deadline = setTimeout(() => this.fail(new RdpDisplayError('timeout', `no desktop within ${this.opts.timeoutMs} ms`)), this.opts.timeoutMs);
    void this.ready.finally(() => clearTimeout(deadline)).catch(() => {});
    await this.startXvnc();
    if (this.failure) return;
    this.timings.displayMs = this.elapsed();
    this.watchPaint();
    this.launchRdp();
  }

  private xvncArgs(): string[] {
    const t = this.tuning;
    const args = [
      '-displayfd', '3',
      '-auth', this.xauthorityPath,
      '-geometry', `${this.width}x${this.height}`,
      '-depth', String(t.depth),
      '-rfbunixpath', this.socketPath,
      '-rfbunixmode', '0600',
      '-rfbport', '-1', // 0 would still mean 5900 + display
      '-SecurityTypes', 'None',
      '-nolisten', 'tcp',
      '-AllowOverride=', // no X client may turn the clipboard (or anything) back on via the VNC extension
      '-MaxDisconnectionTime', String(t.maxDisconnectionSeconds),
      '-FrameRate', String(t.frameRate),
      '-desktop', `RDP ${this.opts.host}`, // not the gateway's user@host
      '-s', '0', // no screen saver blanking a session someone is watching
      '-dpms',
      '-noreset', // a resize restarts xfreerdp, the only X client: no server reset in between
      '-br', // a black root: the first non-black pixel is the device's first frame
    ];
    // Xvnc sends cut text towards the browser (from the device) and accepts it from the browser (to the device).
    if (!this.opts.clipboard.fromDevice) args.push('-SendCutText=0', '-SendPrimary=0');
    if (!this.opts.clipboard.toDevice) args.push('-AcceptCutText=0', '-SetPrimary=0');
    if (!t.glx) args.push('-extension', 'GLX');
    return [...args, ...t.extraXvncArgs];
  }

  private startXvnc(): Promise<void> {
    return new Promise<void>((resolve) => {
      const child = spawn('Xvnc', this.xvncArgs(), {
        detached: true,
        stdio: ['ignore', 'ignore', 'pipe', 'pipe'],
        env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: path.join(this.dir, 'home') },
      });
      this.xvnc = child;
      child.on('error', (e: NodeJS.ErrnoException) => {
        tail(this.xvncLog, `spawn: ${e.code ?? e.message}`);
        if (child.pid === undefined) {
          this.fail(new RdpDisplayError('display-failed', `Xvnc could not be started (${e.code ?? e.message}); is tigervnc-standalone-server installed?`));
          resolve();
        }
      });
      register(this.rt, this.dir, child);
      lines(child.stderr, (l) => tail(this.xvncLog, l));
      this.xvncExited = new Promise<void>((done) => {
        child.once('close', (code, signal) => {
          signalGroup(child.pid ?? 0, 'SIGKILL');
          unregister(this.rt, child.pid);
          this.opts.log.debug('rdp display: Xvnc exited', { display: this.xDisplay, code, signal });
          done();
          if (!this.xDisplay) {
            this.fail(new RdpDisplayError('display-failed', `Xvnc exited before it was ready (${this.xvncLog.slice(-3).join(' | ') || `code ${String(code)}`})`));
            resolve();
          } else {
            this.childGone('xvnc', code);
          }
        });
      });
      let num = '';
      const fd3 = child.stdio[3] as Readable | null | undefined;
      fd3?.on('data', (d: Buffer) => {
        num += d.toString('latin1');
        const m = /^(\d+)\n/.exec(num);
        if (!m || this.xDisplay) return;
        this.xDisplay = `:${m[1]}`;
        if (!existsSync(this.socketPath)) {
          this.fail(new RdpDisplayError('display-failed', 'Xvnc started without its RFB socket'));
        }
        resolve();
      });
      fd3?.on('error', () => {});
    });
  }

  private xfreerdpArgs(): string[] {
    const o = this.opts;
    const t = this.tuning;
    const host = net.isIPv6(o.host) ? `[${o.host}]` : o.host;
    const args = [
      `/v:${host}`,
      `/port:${o.port}`,
      `/u:${o.username}`,
      ...(o.domain ? [`/d:${o.domain}`] : []),
      '/from-stdin:force',
      '/sec:nla',
      `/cert:deny,fingerprint:sha256:${this.fingerprint}`,
      '/f',
      '-toggle-fullscreen',
      '-decorations',
      ...(t.bpp === null ? [] : [`/bpp:${t.bpp}`]),
      o.clipboard.toDevice || o.clipboard.fromDevice ? '+clipboard' : '-clipboard',
      '/audio-mode:2',
      '-heartbeat',
      '/tune:FreeRDP_NetworkAutoDetect:FALSE',
      '/client-hostname:portcullis',
      '/log-level:ERROR',
      '/log-filters:com.freerdp.core.connection:DEBUG',
    ];
    if (t.gfx) args.push('/gfx');
    return [...args, ...t.extraXfreerdpArgs];
  }

  private launchRdp(): RdpAttempt {
    const o = this.opts;
    // WLog writes its debug lines with stdio, block-buffered into a pipe: the connection state
    // would arrive only at exit. stdbuf (coreutils) makes it line-buffered, then execs xfreerdp.
    const child = spawn('stdbuf', ['-oL', '-eL', 'xfreerdp', ...this.xfreerdpArgs()], {
      detached: true,
      stdio: ['pipe', 'pipe', 'pipe'],
      // Nothing of the gateway's environment (its secrets included) reaches the RDP client.
      env: {
        PATH: process.env.PATH ?? '/usr/bin:/bin',
        HOME: path.join(this.dir, 'home'),
        DISPLAY: this.xDisplay,
        XAUTHORITY: this.xauthorityPath,
        SSL_CERT_FILE: '/dev/null',
        SSL_CERT_DIR: path.join(this.dir, 'no-ca'),
        LANG: 'C.UTF-8',
      },
    });
    const attempt: RdpAttempt = {
      child,
      exited: new Promise((done) => child.once('close', (code, signal) => done({ code, signal }))),
      reachedNla: false,
      passedNla: false,
      connected: false,
      certTrouble: false,
      lastError: null,
    };
    this.rdp = attempt;
    child.on('error', (e: NodeJS.ErrnoException) => {
      tail(this.rdpLog, `spawn: ${e.code ?? e.message}`);
      if (child.pid === undefined) this.fail(new RdpDisplayError('display-failed', `xfreerdp could not be started (${e.code ?? e.message}); is freerdp2-x11 installed?`));
    });
    register(this.rt, this.dir, child);
    child.stdin?.on('error', () => {});
    child.stdin?.end(`${o.password}\n`);
    const onLine = (raw: string): void => {
      const line = this.redact(raw);
      tail(this.rdpLog, line);
      const state = /--> (CONNECTION_STATE_[A-Z_]+)/.exec(line)?.[1];
      if (state) o.log.debug('rdp display: connection state', { display: this.xDisplay, state, ms: this.elapsed() });
      if (line.includes('--> CONNECTION_STATE_NLA')) attempt.reachedNla = true;
      else if (line.includes('CONNECTION_STATE_NLA --> CONNECTION_STATE_MCS')) attempt.passedNla = true;
      if (line.includes('--> CONNECTION_STATE_ACTIVE') && !attempt.connected) {
        attempt.connected = true;
        attempt.passedNla = true;
        this.timings.connectedMs = this.elapsed();
        this.awaitPaint();
      }
      if (/certificate|fingerprint/i.test(line)) attempt.certTrouble = true;
      const err = /\b(ERRCONNECT_[A-Z_]+|ERRINFO_[A-Z_]+)\b/.exec(line);
      if (err) attempt.lastError = err[1] ?? null;
    };
    lines(child.stdout, onLine);
    lines(child.stderr, onLine);
    void attempt.exited.then(({ code, signal }) => {
      signalGroup(child.pid ?? 0, 'SIGKILL');
      unregister(this.rt, child.pid);
      o.log.debug('rdp display: xfreerdp exited', { display: this.xDisplay, code, signal, lastError: attempt.lastError });
      if (this.rdp !== attempt || this.replacing) return;
      if (!this.isReady) void this.classifyAndFail(attempt, code);
      else this.childGone('xfreerdp', code);
    });
    return attempt;
  }

  private paintWatch: PaintWatch | null = null;
  private painted = false;
  private graceTimer: NodeJS.Timeout | null = null;

  /**
   * Watches the framebuffer from before xfreerdp starts. Being connected also keeps Xvnc's
   * MaxDisconnectionTime from running out during a slow RDP connection. Losing the watch (the
   * broker connected unshared) leaves the grace timer in charge.
   */
  private watchPaint(): void {
    this.paintWatch?.close();
    this.painted = false;
    this.paintWatch = new PaintWatch(this.socketPath, () => {
      this.painted = true;
      this.timings.paintedMs = this.elapsed();
      this.maybeReady();
    }, () => {});
  }

  /** The RDP connection is active: the first painted frame, or the grace time, makes the display ready. */
  private awaitPaint(): void {
    if (this.graceTimer) clearTimeout(this.graceTimer);
    this.graceTimer = setTimeout(() => this.maybeReady(true), this.tuning.paintGraceMs);
    this.maybeReady();
  }

  private maybeReady(graceOver = false): void {
    if (!this.rdp?.connected || !(this.painted || graceOver)) return;
    if (this.graceTimer) clearTimeout(this.graceTimer);
    this.graceTimer = null;
    this.paintWatch?.close();
    this.paintWatch = null;
    this.markReady();
  }

  private markReady(): void {
    if (this.isReady || this.exitInfo) return;
    this.isReady = true;
    this.opts.log.info('rdp display ready', { display: this.xDisplay, host: this.opts.host, port: this.opts.port, ...this.timings });
    this.settleReady.resolve();
  }

  private async classifyAndFail(attempt: RdpAttempt, code: number | null): Promise<void> {
    if (this.exitInfo) return;
    const where = attempt.lastError ?? `xfreerdp exit code ${String(code)}`;
    if (attempt.certTrouble || code === TLS_EXIT_CODE) {
      // Ask the device which certificate it shows: a clear mismatch message needs both.
      try {
        const cert = await fetchRdpCertificate(this.opts.host, this.opts.port, { timeoutMs: 3000 });
        if (cert.fingerprint !== this.fingerprint) {
          this.fail(new RdpDisplayError('certificate-mismatch', `the device presented SHA-256 ${cert.fingerprint}, the pinned certificate is ${this.fingerprint}`));
          return;
        }
      } catch {
        // Fall through: the TLS failure is reported as such.
      }
      this.fail(new RdpDisplayError('unreachable', `TLS with the device failed (${where})`));
    } else if ((code !== null && AUTH_EXIT_CODES.has(code)) || (attempt.reachedNla && !attempt.passedNla)) {
      this.fail(new RdpDisplayError('auth-failed', `NLA authentication as ${this.opts.username} was refused (${where})`));
    } else {
      this.fail(new RdpDisplayError('unreachable', `${this.opts.host}:${this.opts.port} (${where})`));
    }
  }

  /** Before ready: reject `ready`, stop everything, report. */
  private fail(err: RdpDisplayError): void {
    if (this.exitInfo || this.stopping) return;
    this.failure = err;
    this.opts.log.warn('rdp display failed', { host: this.opts.host, port: this.opts.port, kind: err.kind, detail: err.detail, rdpLog: this.rdpLog.slice(-5) });
    this.settleReady.reject(err);
    void this.teardown({ reason: 'failed', error: err });
  }

  private childGone(which: 'xvnc' | 'xfreerdp', code: number | null): void {
    if (this.stopping || this.exitInfo) return;
    if (!this.isReady) {
      if (which === 'xvnc') this.fail(new RdpDisplayError('display-failed', `Xvnc exited (code ${String(code)})`));
      return;
    }
    if (which === 'xfreerdp' && !this.xvncGoneChecked) {
      // xfreerdp also exits when its X server dies, and the two exits may arrive in either order:
      // give Xvnc's a moment, so the reason names the process that ended first.
      this.xvncGoneChecked = true;
      setTimeout(() => {
        const xvncDead = this.xvnc !== null && (this.xvnc.exitCode !== null || this.xvnc.signalCode !== null);
        if (xvncDead) this.childGone('xvnc', this.xvnc?.exitCode ?? null);
        else this.childGone('xfreerdp', code);
      }, 150).unref();
      return;
    }
    this.opts.log.info('rdp display ended', { display: this.xDisplay, by: which, code, lastError: this.rdp?.lastError ?? null });
    void this.teardown(which === 'xfreerdp' ? { reason: 'rdp-ended', rdpExitCode: code } : { reason: 'display-ended' });
  }

  async resize(width: number, height: number): Promise<void> {
    for (const [name, v] of [['width', width], ['height', height]] as const) {
      if (!Number.isInteger(v) || v < MIN_SIZE || v > MAX_SIZE) throw new RdpDisplayError('invalid-request', `${name} must be an integer between ${MIN_SIZE} and ${MAX_SIZE}`);
    }
    await this.ready;
    if (this.stopping || this.exitInfo) throw new RdpDisplayError('display-failed', 'the display has ended');
    if (width === this.width && height === this.height) return;
    await this.xrandr(width, height);
    this.width = width;
    this.height = height;
    // xfreerdp's /dynamic-resolution would only help devices with the Display Control channel
    // (Windows 8.1+); a reconnect works with every RDP server and keeps the Windows session.
    const old = this.rdp;
    this.replacing = true;
    if (old?.child.pid) signalGroup(old.child.pid, 'SIGTERM');
    const killLater = setTimeout(() => old?.child.pid && signalGroup(old.child.pid, 'SIGKILL'), 2000);
    await old?.exited;
    clearTimeout(killLater);
    this.replacing = false;
    if (this.stopping || this.exitInfo) throw new RdpDisplayError('display-failed', 'the display has ended');
    this.isReady = false;
    const again = new Promise<void>((resolve, reject) => {
      this.settleReady = { resolve, reject };
    });
    again.catch(() => {});
    const deadline = setTimeout(() => this.fail(new RdpDisplayError('timeout', `no desktop within ${this.opts.timeoutMs} ms after resizing`)), this.opts.timeoutMs);
    this.timings = { displayMs: this.timings.displayMs, connectedMs: null, paintedMs: null };
    this.watchPaint();
    this.launchRdp();
    try {
      await again;
    } finally {
      clearTimeout(deadline);
    }
  }

  private async xrandr(width: number, height: number): Promise<void> {
    const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', DISPLAY: this.xDisplay, XAUTHORITY: this.xauthorityPath };
    const run = (args: string[]): Promise<string> =>
      new Promise((resolve, reject) => {
        execFile('xrandr', args, { env, timeout: 5000 }, (err, stdout, stderr) => (err ? reject(new Error(String(stderr).trim() || err.message)) : resolve(String(stdout))));
      });
    try {
      const state = await run([]);
      const output = /^(\S+) connected/m.exec(state)?.[1] ?? 'VNC-0';
      const mode = `${width}x${height}`;
      const modeListed = new RegExp(`^\\s+${mode}\\s`, 'm').test(state);
      if (!modeListed) {
        // TigerVNC's RandR takes any size as a new mode; the timings are meaningless for a virtual screen.
        await run(['--newmode', mode, '0', String(width), '0', '0', '0', String(height), '0', '0', '0']).catch(() => '');
        await run(['--addmode', output, mode]);
        this.addedModes.add(mode);
      }
      await run(['--output', output, '--mode', mode]);
      // Only the mode in use of those added here stays: a session resized all day keeps a short mode list.
      for (const old of [...this.addedModes].filter((m) => m !== mode)) {
        try {
          await run(['--delmode', output, old]);
          await run(['--rmmode', old]);
          this.addedModes.delete(old);
        } catch (e) {
          this.opts.log.debug('rdp display: an old mode could not be removed', { display: this.xDisplay, mode: old, error: (e as Error).message });
        }
      }
    } catch (e) {
      throw new RdpDisplayError('display-failed', `could not resize the display to ${width}x${height}: ${(e as Error).message}`);
    }
  }

  stop(): Promise<void> {
    if (this.exitInfo) return Promise.resolve();
    if (!this.isReady) this.settleReady.reject(new RdpDisplayError('display-failed', 'the session was stopped before the desktop appeared'));
    return this.teardown({ reason: 'stopped' });
  }

  private teardown(info: RdpDisplayExit): Promise<void> {
    if (this.stopping) return this.stopping;
    this.stopping = (async () => {
      this.paintWatch?.close();
      if (this.graceTimer) clearTimeout(this.graceTimer);
      const children = [this.rdp?.child, this.xvnc].filter((c): c is ChildProcess => c?.pid !== undefined);
      for (const c of children) signalGroup(c.pid as number, 'SIGTERM');
      // xfreerdp says goodbye to the device and Xvnc removes its lock files on TERM; neither may linger.
      const killLater = setTimeout(() => {
        for (const c of children) signalGroup(c.pid as number, 'SIGKILL');
      }, 1000);
      await Promise.all([this.rdp?.exited, this.xvncExited]);
      clearTimeout(killLater);
      for (const c of children) {
        signalGroup(c.pid as number, 'SIGKILL');
        unregister(this.rt, c.pid);
      }
      await rm(this.dir, { recursive: true, force: true });
      liveSessions.delete(this);
      this.exitInfo = info;
      for (const cb of this.exitCallbacks.splice(0)) {
        try {
          cb(info);
        } catch (e) {
          this.opts.log.error('rdp display: exit callback threw', { error: (e as Error).message });
        }
      }
    })();
    return this.stopping;
  }
}

/**
 * Starts a private display for one RDP session. Resolves once Xvnc accepts connections and
 * xfreerdp is launched (the broker may connect to `socketPath` right away); `ready` tells when
 * the device's desktop is on it, or why not.
 */
export async function startRdpDisplay(opts: RdpDisplayOptions): Promise<RdpDisplay> {
  const { fingerprint } = validate(opts);
  const rt = await ensureRuntime(opts.runtimeDir);
  const dir = await mkdtemp(path.join(rt.root, 's-'));
  if (Buffer.byteLength(path.join(dir, 'rfb.sock')) > SUN_PATH_MAX) {
    await rm(dir, { recursive: true, force: true });
    throw new RdpDisplayError('display-failed', `the runtime directory ${rt.base} is too deep for a unix socket path`);
  }
  const session = new Session(opts, fingerprint, rt, dir);
  liveSessions.add(session);
  try {
    await session.start();
  } catch (e) {
    await session.stop();
    throw e instanceof RdpDisplayError ? e : new RdpDisplayError('display-failed', (e as Error).message);
  }
  // A display that never came up is the caller's error now; device refusals arrive through `ready`.
  if (session.failure?.kind === 'display-failed') {
    await session.stop();
    throw session.failure;
  }
  return session;
}
