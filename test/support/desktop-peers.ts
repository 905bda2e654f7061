import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer, type Socket } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { Duplex } from 'node:stream';
import { promisify } from 'node:util';
import { Framebuffer } from '../../gateway/desktop/framebuffer.js';
import { connectRfb, type RfbConnection } from '../../gateway/desktop/rfb-client.js';
import { MessageReader, ScreenSize, serverMessage, type Parser, type ServerMessage } from '../../gateway/desktop/rfb-messages.js';
import { RfbProxy, type ClipboardTransfer, type DesktopEnd, type RfbProxyOptions } from '../../gateway/desktop/rfb-proxy.js';
import { setEncodingsMsg, setPixelFormatMsg, updateRequestMsg } from '../../gateway/desktop/rfb-wire.js';
import { RGBX32 } from '../../recordings/rfb-keyframe.js';
import { RfbRecordingWriter } from '../../recordings/rfb-writer.js';
import { freePort } from './device-sshd.js';

// Desktop peers for tests (issue 7): a real TigerVNC server as a VNC device, the device's own view
// of its screen, and an RFB client in the browser's place (noVNC's handshake, encodings, update loop).

const run = promisify(execFile);
export const VNC_PASSWORD = 'dev1ce-pw';

/** What noVNC 1.5 sends in SetEncodings (decimal), so the gateway's filter meets the real list. */
export const NOVNC_ENCODINGS = [1, 7, -260, 16, 21, 5, 2, 0, -26, -254, -223, -224, -258, -261, -308, -309, -312, -313, -307, -1063131698, -316, 1464686180, -239];

export interface Xvnc {
  display: string;
  port: number;
  dir: string;
  env: NodeJS.ProcessEnv;
  /** Starts an X client on the display; stopped with the server. */
  client(cmd: string, args: string[], stdoutFile?: string): ChildProcess;
  stop(): Promise<void>;
}

/** A real TigerVNC server with a VNC password file, as the device. Xvnc picks a free display itself (-displayfd). */
export async function startXvnc(geometry: string, extra: string[] = [], password = VNC_PASSWORD): Promise<Xvnc> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'pc-xvnc-'));
  const pwFile = path.join(dir, 'passwd');
  const pw = spawnSync('vncpasswd', ['-f'], { input: `${password}\n` });
  if (pw.error || pw.status !== 0) throw new Error(`vncpasswd failed (package tigervnc-tools): ${pw.error?.message ?? pw.stderr.toString()}`);
  writeFileSync(pwFile, pw.stdout, { mode: 0o600 });
  const port = await freePort();
  const server = spawn('Xvnc', [
    '-displayfd', '3', '-rfbport', String(port), '-localhost', '-SecurityTypes', 'VncAuth', '-PasswordFile', pwFile,
    '-geometry', geometry, '-depth', '24', '-nolisten', 'tcp', ...extra,
    // The device's own HOME: nothing of the host user's start-up files reaches it or its clients.
  ], { stdio: ['ignore', 'ignore', 'pipe', 'pipe'], env: { ...process.env, HOME: dir } });
  let log = '';
  server.stderr?.on('data', (c: Buffer) => { log += c.toString(); });
  const displayNo = await new Promise<string>((resolve, reject) => {
    let got = '';
    const fd3 = server.stdio[3] as NodeJS.ReadableStream;
    fd3.on('data', (c: Buffer) => {
      got += c.toString();
      if (got.includes('\n')) resolve(got.trim());
    });
    server.once('exit', (code) => reject(new Error(`Xvnc exited (${code}): ${log}`)));
    setTimeout(() => reject(new Error(`Xvnc did not start: ${log}`)), 10_000).unref();
  });
  const display = `:${displayNo}`;
  const env = { ...process.env, HOME: dir, DISPLAY: display };
  const clients: ChildProcess[] = [];
  return {
    display, port, dir, env,
    client(cmd, args, stdoutFile) {
      const out = stdoutFile ? openSync(stdoutFile, 'w') : 'ignore';
      const c = spawn(cmd, args, { env, stdio: ['ignore', out, 'ignore'] });
      clients.push(c);
      return c;
    },
    async stop() {
      for (const c of clients) if (c.exitCode === null && c.signalCode === null) c.kill('SIGTERM');
      // A server already ended by a signal has no exit code, and its 'exit' has been emitted.
      if (server.exitCode === null && server.signalCode === null) {
        const exited = new Promise((r) => server.once('exit', r));
        server.kill('SIGTERM');
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** The device's own view of its screen, from xwd: 0xRRGGBB per pixel. */
export async function deviceScreen(x: Xvnc): Promise<{ width: number; height: number; rgb: Uint32Array }> {
  const { stdout } = await run('xwd', ['-root', '-silent'], { env: x.env, encoding: 'buffer', maxBuffer: 64 * 1024 * 1024 });
  const h = (i: number): number => stdout.readUInt32BE(i * 4);
  const [headerSize, width, height, bpp, bytesPerLine, ncolors] = [h(0), h(4), h(5), h(11), h(12), h(19)];
  if (bpp !== 32 || h(7) !== 0) throw new Error('expected a 32 bpp LSB-first xwd image');
  const data = headerSize + ncolors * 12;
  const rgb = new Uint32Array(width * height);
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) rgb[y * width + x] = stdout.readUInt32LE(data + y * bytesPerLine + x * 4) & 0xffffff;
  return { width, height, rgb };
}

export function fbRgb(fb: Framebuffer): Uint32Array {
  const out = new Uint32Array(fb.width * fb.height);
  for (let i = 0; i < out.length; i++) out[i] = fb.rgbAt(i % fb.width, Math.floor(i / fb.width));
  return out;
}

export function differingPixels(a: Uint32Array, b: Uint32Array): number {
  let n = 0;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) n++;
  return n + Math.abs(a.length - b.length);
}

/** A test RFB client in the browser's place: noVNC's handshake, encodings and update loop. */
export class TestBrowser {
  readonly fb: Framebuffer;
  readonly messages: ServerMessage[] = [];
  private readonly reader: MessageReader<ServerMessage>;
  readonly closed: Promise<void>;
  updates = 0;

  /** With a parser of its own (measuring), messages are only counted, not decoded. */
  constructor(readonly conn: RfbConnection, private readonly parser?: (screen: ScreenSize) => Parser<ServerMessage>) {
    const { width, height, name } = conn.serverInit;
    this.fb = new Framebuffer(width, height, name);
    const screen = new ScreenSize(width, height);
    this.reader = new MessageReader(() => (this.parser ? this.parser(screen) : serverMessage(screen, null, 1 << 24)), () => 1 << 28);
    this.closed = new Promise((resolve) => conn.socket.once('close', () => resolve()));
    conn.socket.on('error', () => undefined);
    if (conn.pending.length > 0) this.reader.push(conn.pending, (m, bytes) => this.onMessage(m, bytes));
    conn.socket.on('data', (c: Buffer) => this.reader.push(c, (m, bytes) => this.onMessage(m, bytes)));
    conn.socket.resume();
  }

  /** Over a gateway's WebSocket the device side starts first (an RDP display takes seconds on a loaded machine): hence the long wait. */
  static async connect(port: number | Duplex, encodings = NOVNC_ENCODINGS): Promise<TestBrowser> {
    const target = typeof port === 'number' ? { host: '127.0.0.1', port } : { stream: port };
    const b = new TestBrowser(await connectRfb({ target, password: null, timeoutMs: typeof port === 'number' ? 5000 : 60_000 }));
    b.send(setPixelFormatMsg(RGBX32));
    b.send(setEncodingsMsg(encodings));
    b.send(updateRequestMsg(false, 0, 0, b.fb.width, b.fb.height));
    return b;
  }

  /** Like a viewer with a frame-rate cap (0: ask again at once, as noVNC does). */
  minIntervalMs = 0;
  private lastRequest = 0;

  onMessage(m: ServerMessage, bytes: Buffer): void {
    this.messages.push(m);
    if (m.type === 'fence' && m.flags & 0x80000000) {
      // Answer the server's fence as noVNC does; TigerVNC paces its updates by the answers.
      const reply = Buffer.alloc(9 + m.payload.length);
      reply.writeUInt8(248, 0);
      reply.writeUInt32BE(m.flags & 0x7, 4);
      reply.writeUInt8(m.payload.length, 8);
      m.payload.copy(reply, 9);
      this.send(reply);
    }
    if (m.type !== 'update') return;
    if (!this.parser) this.fb.apply(bytes);
    this.updates++;
    const wait = Math.max(0, this.lastRequest + this.minIntervalMs - Date.now());
    const ask = (): void => {
      this.lastRequest = Date.now();
      this.send(updateRequestMsg(true, 0, 0, this.fb.width, this.fb.height));
    };
    if (wait === 0) ask();
    else setTimeout(ask, wait);
  }

  send(b: Buffer): void {
    if (!this.conn.socket.destroyed) this.conn.socket.write(b);
  }

  close(): void {
    this.conn.socket.destroy();
  }
}

export interface RecordedVncGateway {
  /** Where the browser connects (127.0.0.1); the listener takes one connection. */
  port: number;
  file: string;
  recorder: RfbRecordingWriter;
  /** Every clipboard transfer the proxy reported, allowed or refused. */
  clipboard: ClipboardTransfer[];
  /** The proxy, once the browser has connected. */
  proxy: Promise<RfbProxy>;
  ended: Promise<DesktopEnd>;
  /** Gives up on a browser that never connected: closes the listener, the device and the recording. */
  abandon(): Promise<void>;
}

let recordedSessionNo = 0;

/**
 * What the broker does for a VNC session: connects to the device with the vaulted password, opens
 * the recording (the configuration's defaults: 1 s flush, DEFLATE), and relays the one browser
 * that connects to `port` through an RfbProxy.
 */
export async function startRecordedVncGateway(x: Xvnc, recDir: string, opts: Partial<RfbProxyOptions> = {}): Promise<RecordedVncGateway> {
  const device = await connectRfb({ target: { host: '127.0.0.1', port: x.port }, password: VNC_PASSWORD, timeoutMs: 5000 });
  const id = `s${++recordedSessionNo}`;
  const file = path.join(recDir, `${id}.pcrfb`);
  const { width, height, name } = device.serverInit;
  let recorder: RfbRecordingWriter;
  try {
    recorder = await RfbRecordingWriter.create(file, {
      format: 'pcrfb', version: 1, recordingId: id, sessionId: id, user: 'vendor', device: 'xvnc', protocol: 'vnc', startedAt: Date.now(),
      width, height, pixelFormat: RGBX32, name,
    }, { flushIntervalMs: 1000, compression: 'deflate' });
  } catch (err) {
    device.socket.destroy();
    throw err;
  }
  const clipboard: ClipboardTransfer[] = [];
  let endWith: (why: DesktopEnd) => void = () => undefined;
  const ended = new Promise<DesktopEnd>((r) => { endWith = r; });
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  let connected = false;
  const proxy = new Promise<RfbProxy>((resolve) => server.once('connection', (sock: Socket) => {
    connected = true;
    server.close();
    const p = new RfbProxy(sock, device, recorder, endWith, { clipboard: { toDevice: false, fromDevice: false }, onClipboard: (t) => clipboard.push(t), ...opts });
    p.start();
    resolve(p);
  }));
  return {
    port, file, recorder, clipboard, proxy, ended,
    async abandon() {
      if (connected) return;
      server.close();
      device.socket.destroy();
      await recorder.close();
    },
  };
}

export async function until(pred: () => boolean, what: string, timeoutMs = 20_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

function writeXauthCookie(file: string): void {
  const field = (b: Buffer): Buffer => Buffer.concat([Buffer.from([b.length >> 8, b.length & 0xff]), b]);
  // One wildcard entry (family 0xffff): any display, this cookie.
  writeFileSync(file, Buffer.concat([Buffer.from([0xff, 0xff]), field(Buffer.alloc(0)), field(Buffer.alloc(0)), field(Buffer.from('MIT-MAGIC-COOKIE-1')), field(randomBytes(16))]), { mode: 0o600 });
}

export interface RdpDevice {
  port: number;
  username: string;
  password: string;
  /** The certificate the device presents (PEM), to compare with what the gateway pins. */
  certFile: string;
  /** The SAM file NLA checks against (read at each login: rewriting it changes the password). */
  samFile: string;
  /** DISPLAY and XAUTHORITY of the device's own screen (xwd, xdotool…). */
  env: NodeJS.ProcessEnv;
  stop(): Promise<void>;
}

/**
 * A real RDP device on loopback: freerdp-shadow-cli sharing an Xvfb screen (a solid root colour
 * and an xlogo window), NLA against a SAM file made by winpr-hash. Every process is in its own
 * group and stopped with it.
 */
export async function startRdpDevice(opts: { username?: string; password?: string; rootColour?: string; geometry?: string } = {}): Promise<RdpDevice> {
  const username = opts.username ?? 'biomed';
  const password = opts.password ?? `Pw-${randomBytes(9).toString('base64url')}`;
  const dir = mkdtempSync(path.join(os.tmpdir(), 'pc-rdpdev-'));
  const children: ChildProcess[] = [];
  const stop = async (): Promise<void> => {
    // TERM first: Xvfb removes its socket in /tmp/.X11-unix on the way out.
    for (const signal of ['SIGTERM', 'SIGKILL'] as const) {
      for (const c of children) if (c.pid && c.exitCode === null && c.signalCode === null) try { process.kill(-c.pid, signal); } catch { /* gone */ }
      await new Promise((r) => setTimeout(r, 300));
    }
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const cookie = path.join(dir, 'device.xauth');
    writeXauthCookie(cookie);
    // -noreset: otherwise Xvfb resets (and forgets the root colour) when xsetroot disconnects.
    const xvfb = spawn('Xvfb', ['-displayfd', '3', '-screen', '0', `${opts.geometry ?? '1024x768'}x24`, '-nolisten', 'tcp', '-noreset', '-auth', cookie], { detached: true, stdio: ['ignore', 'ignore', 'ignore', 'pipe'] });
    children.push(xvfb);
    const display = await new Promise<string>((resolve, reject) => {
      let s = '';
      (xvfb.stdio[3] as NodeJS.ReadableStream).on('data', (d: Buffer) => {
        s += d.toString();
        if (s.includes('\n')) resolve(`:${s.trim()}`);
      });
      xvfb.once('exit', () => reject(new Error('Xvfb exited')));
      setTimeout(() => reject(new Error('Xvfb did not start')), 10_000).unref();
    });
    const home = path.join(dir, 'home');
    mkdirSync(home, { mode: 0o700 });
    const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: home, DISPLAY: display, XAUTHORITY: cookie };
    if (spawnSync('xsetroot', ['-solid', opts.rootColour ?? '#aa3366'], { env }).status !== 0) throw new Error('xsetroot failed');
    children.push(spawn('xlogo', ['-geometry', '240x240+600+300'], { env, detached: true, stdio: 'ignore' }));
    const hash = spawnSync('winpr-hash', ['-u', username, '-p', password, '-f', 'sam']);
    if (hash.status !== 0) throw new Error(`winpr-hash failed: ${hash.stderr.toString()}`);
    const sam = path.join(dir, 'sam');
    writeFileSync(sam, hash.stdout, { mode: 0o600 });
    const port = await freePort();
    children.push(spawn('freerdp-shadow-cli', ['/bind-address:127.0.0.1', `/port:${port}`, '+auth', '/sec:nla', `/sam-file:${sam}`], { env, detached: true, stdio: 'ignore' }));
    const end = Date.now() + 10_000;
    while (!(await new Promise<boolean>((resolve) => {
      const s = connect(port, '127.0.0.1', () => { s.destroy(); resolve(true); });
      s.on('error', () => resolve(false));
    }))) {
      if (Date.now() > end) throw new Error('the RDP device did not start listening');
      await new Promise((r) => setTimeout(r, 100));
    }
    return { port, username, password, certFile: path.join(home, '.config/freerdp/shadow/shadow.crt'), samFile: sam, env, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** The xfreerdp processes an RDP session started for one device port, by their command lines. */
export function xfreerdpFor(port: number): number[] {
  const out: number[] = [];
  for (const pid of readdirSync('/proc').filter((n) => /^\d+$/.test(n))) {
    try {
      const cmd = readFileSync(`/proc/${pid}/cmdline`).toString('latin1').split('\0');
      if (cmd.some((a) => a.endsWith('xfreerdp')) && cmd.includes(`/port:${port}`)) out.push(Number(pid));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}
