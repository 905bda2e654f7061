import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes, X509Certificate } from 'node:crypto';
import { appendFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fetchRdpCertificate, RdpCertificateError } from '../../gateway/desktop/rdp-certificate.js';
import { RdpDisplayError, startRdpDisplay, sweepLeftoverRdpDisplays, type RdpDisplay, type RdpDisplayExit, type RdpDisplayOptions } from '../../gateway/desktop/rdp-display.js';
import { createLogger } from '../../gateway/log/logger.js';
import { freePort } from '../support/device-sshd.js';
import { startRdpDevice, type RdpDevice } from '../support/desktop-peers.js';

// R-6.3e, R-6.3f, R-A.3e: the RDP path's process side. A real RDP device on loopback
// (freerdp-shadow-cli shadowing an Xvfb screen, NLA against a SAM file), reached by xfreerdp
// inside a private Xvnc, whose framebuffer is read back over its unix socket.

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
// Distinctive so that a search of every process's command line cannot hit anything else.
const DEVICE_PASSWORD = `Pw-${randomBytes(9).toString('base64url')}`;
// What the device shows: this root colour, and an xlogo window.
const DEVICE_RGB = [0xaa, 0x33, 0x66] as const;

const log = createLogger((process.env.PORTCULLIS_TEST_LOG as 'debug' | undefined) ?? 'error');

// ---------------------------------------------------------------------------------------------
// Processes and /proc

function stat(pid: number): { pgrp: number; start: string } | null {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return { pgrp: Number(f[2]), start: f[19] ?? '' };
  } catch {
    return null;
  }
}

function allPids(): number[] {
  return readdirSync('/proc').filter((n) => /^\d+$/.test(n)).map(Number);
}

/** Live (not zombie-reaped) processes of a process group. */
function groupMembers(pgid: number): number[] {
  return allPids().filter((p) => stat(p)?.pgrp === pgid);
}

/** No such process, or only a zombie waiting for its parent. */
function isGone(pid: number): boolean {
  try {
    return /\) Z /.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return true;
  }
}

function procText(pid: number, what: 'cmdline' | 'environ'): string {
  try {
    return readFileSync(`/proc/${pid}/${what}`).toString('latin1').replace(/\0/g, ' ');
  } catch {
    return '';
  }
}

async function waitFor(cond: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The sessions' processes, by what the gateway was told and by group (xkbcomp, stdbuf…). */
function sessionProcesses(d: RdpDisplay): number[] {
  return [...new Set([d.pids.xvnc, d.pids.xfreerdp, ...groupMembers(d.pids.xvnc), ...groupMembers(d.pids.xfreerdp)])].filter((p) => p > 0);
}

function exitOf(d: RdpDisplay): Promise<RdpDisplayExit> {
  return new Promise((resolve) => d.onExit(resolve));
}

function tcpListenersOf(pid: number): number {
  const inodes = new Set<string>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m?.[1]) inodes.add(m[1]);
    } catch {
      // fd closed meanwhile
    }
  }
  let n = 0;
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    for (const line of readFileSync(table, 'utf8').split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f[3] === '0A' && f[9] && inodes.has(f[9])) n += 1;
    }
  }
  return n;
}

// ---------------------------------------------------------------------------------------------
// A minimal RFB client: security None, 32-bit true colour, one full framebuffer.

interface Frame {
  width: number;
  height: number;
  /** 4 bytes a pixel: B, G, R, unused (little-endian 0x00RRGGBB). */
  pixels: Buffer;
}

async function readFramebuffer(socketPath: string): Promise<Frame> {
  const sock = net.connect(socketPath);
  let buf = Buffer.alloc(0);
  let waiting: (() => void) | null = null;
  let failure: Error | null = null;
  sock.on('data', (d: Buffer) => { buf = Buffer.concat([buf, d]); waiting?.(); });
  sock.on('error', (e) => { failure = e; waiting?.(); });
  sock.on('close', () => { failure ??= new Error('closed'); waiting?.(); });
  const read = async (n: number): Promise<Buffer> => {
    while (buf.length < n) {
      if (failure) throw failure;
      await new Promise<void>((r) => { waiting = r; });
      waiting = null;
    }
    const out = buf.subarray(0, n);
    buf = buf.subarray(n);
    return out;
  };
  try {
    expect((await read(12)).toString()).toMatch(/^RFB 003\.00[78]\n$/);
    sock.write('RFB 003.008\n');
    const types = await read((await read(1))[0] ?? 0);
    expect([...types]).toEqual([1]); // None is the only security type offered
    sock.write(Buffer.from([1]));
    expect((await read(4)).readUInt32BE(0)).toBe(0);
    sock.write(Buffer.from([1]));
    const init = await read(24);
    const width = init.readUInt16BE(0);
    const height = init.readUInt16BE(2);
    await read(init.readUInt32BE(20));
    const pf = Buffer.from([0, 0, 0, 0, 32, 24, 0, 1, 0, 255, 0, 255, 0, 255, 16, 8, 0, 0, 0, 0]);
    const enc = Buffer.from([2, 0, 0, 1, 0, 0, 0, 0]); // Raw only
    const req = Buffer.alloc(10);
    req.writeUInt8(3, 0);
    req.writeUInt16BE(width, 6);
    req.writeUInt16BE(height, 8);
    sock.write(Buffer.concat([pf, enc, req]));
    const pixels = Buffer.alloc(width * height * 4);
    for (;;) {
      const type = (await read(1))[0];
      if (type === 0) break;
      if (type === 3) await read((await read(7)).readUInt32BE(3));
      else if (type !== 2) throw new Error(`unexpected RFB message ${String(type)}`);
    }
    const n = (await read(3)).readUInt16BE(1);
    for (let i = 0; i < n; i++) {
      const h = await read(12);
      const [x, y, w, hh, e] = [h.readUInt16BE(0), h.readUInt16BE(2), h.readUInt16BE(4), h.readUInt16BE(6), h.readInt32BE(8)];
      expect(e).toBe(0);
      const data = await read(w * hh * 4);
      for (let row = 0; row < hh; row++) data.copy(pixels, ((y + row) * width + x) * 4, row * w * 4, (row + 1) * w * 4);
    }
    return { width, height, pixels };
  } finally {
    sock.destroy();
  }
}

/** Pixels within 8 of the device's colour in each channel (RDP codecs may be lossy; a 16-bit display rounds to RGB565). */
function deviceColourPixels(f: Frame): number {
  let n = 0;
  for (let i = 0; i < f.pixels.length; i += 4) {
    const b = f.pixels[i] ?? 0;
    const g = f.pixels[i + 1] ?? 0;
    const r = f.pixels[i + 2] ?? 0;
    if (Math.abs(r - DEVICE_RGB[0]) <= 8 && Math.abs(g - DEVICE_RGB[1]) <= 8 && Math.abs(b - DEVICE_RGB[2]) <= 8) n += 1;
  }
  return n;
}

// ---------------------------------------------------------------------------------------------

describe('RDP sessions run xfreerdp inside a private Xvnc', () => {
  let dir: string;
  let runtimeDir: string;
  let device: RdpDevice;
  let fingerprint: string;
  const started: RdpDisplay[] = [];

  const options = (o: Partial<RdpDisplayOptions> = {}): RdpDisplayOptions => ({
    host: '127.0.0.1',
    port: device.port,
    username: device.username,
    password: DEVICE_PASSWORD,
    certFingerprint: fingerprint,
    width: 1280,
    height: 800,
    clipboard: { toDevice: false, fromDevice: false },
    timeoutMs: 15_000,
    log,
    runtimeDir,
    ...o,
  });
  const start = async (o: Partial<RdpDisplayOptions> = {}): Promise<RdpDisplay> => {
    const d = await startRdpDisplay(options(o));
    started.push(d);
    return d;
  };

  beforeAll(async () => {
    for (const bin of ['Xvnc', 'xfreerdp', 'Xvfb', 'freerdp-shadow-cli', 'winpr-hash', 'xsetroot', 'xlogo', 'xwd', 'xrandr', 'stdbuf']) {
      expect(spawnSync('sh', ['-c', `command -v ${bin}`]).status, `${bin} must be installed (see README: Debian packages)`).toBe(0);
    }
    dir = mkdtempSync(path.join(os.tmpdir(), 'pc-rdp-'));
    runtimeDir = path.join(dir, 'run');
    device = await startRdpDevice({ password: DEVICE_PASSWORD, rootColour: `#${DEVICE_RGB.map((c) => c.toString(16).padStart(2, '0')).join('')}` });
    fingerprint = (await fetchRdpCertificate('127.0.0.1', device.port)).fingerprint;
  });

  afterAll(async () => {
    await Promise.all(started.map((d) => d.stop()));
    await device?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('reads the device certificate over the RDP negotiation, as the device has it on disk', async () => {
    const onDisk = new X509Certificate(readFileSync(device.certFile));
    const fetched = await fetchRdpCertificate('127.0.0.1', device.port, { timeoutMs: 3000 });
    expect(fetched.fingerprint).toBe(onDisk.fingerprint256);
    expect(fetched.protocol).toBe('nla');
    expect(fetched.der.equals(onDisk.raw)).toBe(true);
    // Something that is not RDP, and nothing at all, are told apart.
    const notRdp = net.createServer((s) => s.end('SSH-2.0-OpenSSH_9.2\r\n'));
    await new Promise<void>((r) => notRdp.listen(0, '127.0.0.1', r));
    const notRdpPort = (notRdp.address() as net.AddressInfo).port;
    await expect(fetchRdpCertificate('127.0.0.1', notRdpPort, { timeoutMs: 2000 })).rejects.toMatchObject({ kind: 'not-rdp' });
    notRdp.close();
    const closed = await freePort();
    const err = await fetchRdpCertificate('127.0.0.1', closed, { timeoutMs: 2000 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RdpCertificateError);
    expect((err as RdpCertificateError).kind).toBe('unreachable');
  });

  it("shows the device's desktop on a display only the gateway can read, and leaves nothing behind when stopped", async () => {
    const d = await start();
    await d.ready;
    expect(d.timings.connectedMs).not.toBeNull();

    // The framebuffer, over the unix socket with security None, holds the device's screen.
    const frame = await readFramebuffer(d.socketPath);
    expect([frame.width, frame.height]).toEqual([1280, 800]);
    expect(deviceColourPixels(frame)).toBeGreaterThan(100_000);

    // The socket and its directory are private, and Xvnc listens on no TCP port at all.
    expect(statSync(d.socketPath).mode & 0o777).toBe(0o600);
    expect(statSync(path.dirname(d.socketPath)).mode & 0o777).toBe(0o700);
    expect(tcpListenersOf(d.pids.xvnc)).toBe(0);

    // The X display needs the session's cookie: xwd without it is refused, with it works.
    const emptyHome = mkdtempSync(path.join(dir, 'home-'));
    const base = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: emptyHome };
    const without = spawnSync('xwd', ['-root', '-silent', '-display', d.xDisplay], { env: base });
    expect(without.status).not.toBe(0);
    expect(without.stderr.toString()).toMatch(/unable to open display|Authorization required/);
    const withCookie = spawnSync('xwd', ['-root', '-silent', '-display', d.xDisplay], { env: { ...base, XAUTHORITY: d.xauthorityPath }, maxBuffer: 64 << 20 });
    expect(withCookie.status).toBe(0);
    expect(withCookie.stdout.length).toBeGreaterThan(1280 * 800);

    // The password is in no process's command line (ps shows all of them) and in neither child's environment.
    const procs = sessionProcesses(d);
    expect(procs).toContain(d.pids.xvnc);
    expect(procs).toContain(d.pids.xfreerdp);
    for (const pid of allPids()) expect(procText(pid, 'cmdline')).not.toContain(DEVICE_PASSWORD);
    for (const pid of procs) expect(procText(pid, 'environ')).not.toContain(DEVICE_PASSWORD);
    // Redirection is off: no clipboard either way, no drives, printers, smartcards or USB.
    const rdpCmd = procText(d.pids.xfreerdp, 'cmdline');
    expect(rdpCmd).toContain('-clipboard');
    expect(rdpCmd).not.toMatch(/\/drive|\/printer|\/smartcard|\/usb|\+drives|\+home-drive/);
    expect(procText(d.pids.xvnc, 'cmdline')).toContain('-AcceptCutText=0');

    const exit = exitOf(d);
    await d.stop();
    expect((await exit).reason).toBe('stopped');
    for (const pid of procs) expect(isGone(pid), `process ${pid} after stop()`).toBe(true);
    expect(existsSync(path.dirname(d.socketPath))).toBe(false);
  });

  it('refuses a wrong vaulted password (NLA), without ever showing it', async () => {
    const wrong = `Wrong-${randomBytes(6).toString('hex')}`;
    const d = await start({ password: wrong });
    const procs = sessionProcesses(d);
    const err = await d.ready.then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(RdpDisplayError);
    expect((err as RdpDisplayError).kind).toBe('auth-failed');
    expect((err as RdpDisplayError).code).toBe('DEVICE_AUTH_FAILED');
    expect((err as Error).message).not.toContain(wrong);
    expect((err as Error).message).not.toContain(DEVICE_PASSWORD);
    await d.stop();
    for (const pid of procs) expect(isGone(pid)).toBe(true);
  });

  it('refuses a device whose certificate is not the pinned one, and says which it saw', async () => {
    const pinned = fingerprint.replace(/^../, fingerprint.startsWith('00') ? '11' : '00');
    const d = await start({ certFingerprint: pinned });
    const err = (await d.ready.then(() => null, (e: unknown) => e)) as RdpDisplayError;
    expect(err.kind).toBe('certificate-mismatch');
    expect(err.message).toContain(fingerprint);
    expect(err.message).toContain(pinned);
    expect((await exitOf(d)).reason).toBe('failed');
    expect(sessionProcesses(d).filter((p) => !isGone(p))).toEqual([]);
  });

  it('reports an unreachable device and a silent one as such, and rejects requests it cannot pass on safely', async () => {
    const d = await start({ port: await freePort() });
    await expect(d.ready).rejects.toMatchObject({ kind: 'unreachable', code: 'DEVICE_UNREACHABLE' });
    await expect(startRdpDisplay(options({ password: 'line\nbreak' }))).rejects.toMatchObject({ kind: 'invalid-request' });
    await expect(startRdpDisplay(options({ certFingerprint: 'AA:BB' }))).rejects.toMatchObject({ kind: 'invalid-request' });
    await expect(startRdpDisplay(options({ host: '-bad host' }))).rejects.toMatchObject({ kind: 'invalid-request' });
    // A device that accepts the connection and never answers.
    const silent = net.createServer(() => {});
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    const hung = await start({ port: (silent.address() as net.AddressInfo).port, timeoutMs: 2500 });
    const procs = sessionProcesses(hung);
    await expect(hung.ready).rejects.toMatchObject({ kind: 'timeout', code: 'DEVICE_TIMEOUT' });
    await exitOf(hung);
    for (const pid of procs) expect(isGone(pid)).toBe(true);
    silent.close();
  });

  it('ends the whole display when xfreerdp dies, and when Xvnc dies', async () => {
    const [a, b] = await Promise.all([start(), start()]);
    await Promise.all([a.ready, b.ready]);
    const procsA = sessionProcesses(a);
    const procsB = sessionProcesses(b);
    const exitA = exitOf(a);
    const exitB = exitOf(b);
    process.kill(a.pids.xfreerdp, 'SIGKILL');
    process.kill(b.pids.xvnc, 'SIGKILL');
    expect((await exitA).reason).toBe('rdp-ended');
    expect((await exitB).reason).toBe('display-ended');
    for (const pid of [...procsA, ...procsB]) expect(isGone(pid), `process ${pid}`).toBe(true);
  });

  it('follows a new browser size (and redirects the clipboard, and only it, when the grant allows file transfer)', async () => {
    const d = await start({ width: 1024, height: 768, clipboard: { toDevice: true, fromDevice: true } });
    await d.ready;
    const rdpCmd = procText(d.pids.xfreerdp, 'cmdline');
    expect(rdpCmd).toContain('+clipboard');
    expect(rdpCmd).not.toMatch(/\/drive|\/printer|\/smartcard|\/usb|\+drives|\+home-drive/);
    expect(procText(d.pids.xvnc, 'cmdline')).not.toContain('-AcceptCutText=0');
    const before = d.pids.xfreerdp;
    await d.resize(1100, 700);
    expect([d.width, d.height]).toEqual([1100, 700]);
    const frame = await readFramebuffer(d.socketPath);
    expect([frame.width, frame.height]).toEqual([1100, 700]);
    expect(deviceColourPixels(frame)).toBeGreaterThan(50_000);
    // The shadow server has no Display Control channel: the reconnect is what resized the session.
    expect(d.pids.xfreerdp).not.toBe(before);
    expect(isGone(before)).toBe(true);
    // Each new size is a RandR mode; the one left behind is removed, so the list stays short.
    const modes = (): string[] => {
      const out = spawnSync('xrandr', [], { env: { PATH: process.env.PATH ?? '/usr/bin:/bin', DISPLAY: d.xDisplay, XAUTHORITY: d.xauthorityPath } });
      return [...out.stdout.toString().matchAll(/^\s+(\d+x\d+)\s/gm)].map((m) => m[1] as string);
    };
    expect(modes()).toContain('1100x700');
    await d.resize(1200, 704);
    expect(modes()).toContain('1200x704');
    expect(modes()).not.toContain('1100x700');
    // Back to a size TigerVNC lists itself: that mode stays, and ours goes.
    await d.resize(1024, 768);
    expect(modes()).not.toContain('1200x704');
    expect(modes()).toContain('1024x768');
    expect((await readFramebuffer(d.socketPath)).width).toBe(1024);
    await d.stop();
  }, 120_000);

  describe('when the gateway process itself ends', () => {
    const script = (): string => {
      const file = path.join(dir, 'hold-display.mts');
      writeFileSync(file, [
        `import { startRdpDisplay, stopAllRdpDisplays } from ${JSON.stringify(pathToFileURL(path.join(REPO, 'gateway/desktop/rdp-display.ts')).href)};`,
        `import { createLogger } from ${JSON.stringify(pathToFileURL(path.join(REPO, 'gateway/log/logger.ts')).href)};`,
        // Options (the password among them) come on stdin, never on this process's command line.
        `let input = ''; for await (const c of process.stdin) input += c;`,
        `const d = await startRdpDisplay({ ...JSON.parse(input), log: createLogger('error') });`,
        `await d.ready;`,
        // Like the broker: one RFB client stays connected for the whole session.
        `const { connect } = await import('node:net');`,
        `const rfb = connect(d.socketPath, () => rfb.write(Buffer.concat([Buffer.from('RFB 003.008\\n'), Buffer.from([1, 1])])));`,
        `rfb.on('data', () => {});`,
        // A gateway that shuts down properly (as \`portcullis serve\` does on SIGTERM/SIGINT).
        `process.on('SIGINT', () => { void stopAllRdpDisplays().then(() => process.exit(0)); });`,
        `process.stdout.write(JSON.stringify({ pids: d.pids }) + '\\n');`,
        `setInterval(() => {}, 1000);`,
      ].join('\n'));
      return file;
    };

    const holdDisplay = async (o: Partial<RdpDisplayOptions> = {}): Promise<{ gateway: ChildProcess; pids: { xvnc: number; xfreerdp: number }; procs: number[] }> => {
      const { log: _log, ...plain } = options(o);
      const gateway = spawn(process.execPath, ['--import', 'tsx', script()], { cwd: REPO, stdio: ['pipe', 'pipe', 'inherit'] });
      gateway.stdin?.end(JSON.stringify(plain));
      const line = await new Promise<string>((resolve, reject) => {
        let out = '';
        gateway.stdout?.on('data', (c: Buffer) => {
          out += c.toString();
          if (out.includes('\n')) resolve(out.split('\n')[0] ?? '');
        });
        gateway.once('exit', (code) => reject(new Error(`the gateway script exited (${String(code)}) before its display was ready`)));
      });
      const { pids } = JSON.parse(line) as { pids: { xvnc: number; xfreerdp: number } };
      const procs = [...new Set([pids.xvnc, pids.xfreerdp, ...groupMembers(pids.xvnc), ...groupMembers(pids.xfreerdp)])];
      return { gateway, pids, procs };
    };

    const watchdogOf = (gatewayPid: number): number | undefined =>
      allPids().find((p) => {
        const cmd = procText(p, 'cmdline');
        return cmd.includes('portcullis-rdp-watchdog') && cmd.includes(`gw-${gatewayPid}`) && !isGone(p);
      });

    it.each([
      ['SIGKILL', 'its watchdog kills the display at once'],
      ['SIGTERM', 'unhandled, Node dies without running exit hooks: the watchdog again'],
      ['SIGINT', 'handled by stopping every display before exiting'],
    ] as const)('%s to the gateway: %s', async (signal, _how) => {
      const { gateway, procs } = await holdDisplay();
      expect(watchdogOf(gateway.pid ?? 0)).toBeDefined();
      gateway.kill(signal);
      await waitFor(() => procs.every(isGone), 20_000, `Xvnc and xfreerdp to end after ${signal} to the gateway`);
      await waitFor(() => !existsSync(path.join(runtimeDir, `gw-${gateway.pid ?? 0}`)), 20_000, "the gateway's directory to be removed");
      await waitFor(() => watchdogOf(gateway.pid ?? 0) === undefined, 20_000, 'the watchdog to exit');
    });

    it('the next start sweeps what is left if the watchdog died with it', async () => {
      const { gateway, procs } = await holdDisplay();
      const watchdog = watchdogOf(gateway.pid ?? 0);
      expect(watchdog).toBeDefined();
      const gwDir = path.join(runtimeDir, `gw-${gateway.pid ?? 0}`);
      const exited = new Promise((r) => gateway.once('exit', r));
      process.kill(watchdog ?? 0, 'SIGKILL');
      gateway.kill('SIGKILL');
      await exited;
      // Once their gateway is gone, Xvnc and xfreerdp may end by themselves (their pipes to it
      // break; Xvnc gives up on its RFB reader), so whether they are still there when the sweep
      // runs is a race. The sweep's promise is about every process group the dead gateway
      // recorded: one that cannot end by itself (a stand-in that sleeps until killed), recorded
      // as the gateway records its own, makes its work certain.
      const standIn = spawn('sleep', ['600'], { detached: true, stdio: 'ignore' });
      const standInEnd = new Promise<NodeJS.Signals | null>((r) => standIn.once('exit', (_code, signal) => r(signal)));
      const standInPid = standIn.pid ?? 0;
      await waitFor(() => stat(standInPid) !== null, 10_000, 'the stand-in to start');
      const session = readdirSync(gwDir).find((n) => existsSync(path.join(gwDir, n, 'groups')));
      expect(session, 'the dead gateway left a session directory with its process groups').toBeDefined();
      appendFileSync(path.join(gwDir, session ?? '', 'groups'), `${standInPid} ${stat(standInPid)?.start ?? ''}\n`);
      try {
        expect(sweepLeftoverRdpDisplays(runtimeDir)).toBeGreaterThan(0);
        expect(await standInEnd).toBe('SIGKILL');
      } finally {
        standIn.kill('SIGKILL');
      }
      // The display itself is gone, whether the sweep or its own backstops ended it.
      await waitFor(() => procs.every(isGone), 20_000, 'the leftovers to be gone');
      expect(existsSync(gwDir)).toBe(false);
    });

    it('Xvnc gives up by itself once its RFB reader is gone, and xfreerdp with it (the last backstop)', async () => {
      const { gateway, procs } = await holdDisplay({ tuning: { maxDisconnectionSeconds: 2 } });
      const watchdog = watchdogOf(gateway.pid ?? 0);
      process.kill(watchdog ?? 0, 'SIGKILL');
      gateway.kill('SIGKILL');
      await waitFor(() => procs.every(isGone), 30_000, 'Xvnc to exit on MaxDisconnectionTime and xfreerdp to follow it');
      sweepLeftoverRdpDisplays(runtimeDir);
    });
  });
});
