import { createHash } from 'node:crypto';
import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConnectorError } from '../../gateway/connectors/ssh-connector.js';
import { Framebuffer } from '../../gateway/desktop/framebuffer.js';
import { connectRfb } from '../../gateway/desktop/rfb-client.js';
import { RfbProxy, type ClipboardTransfer, type DesktopEnd, type RfbProxyOptions } from '../../gateway/desktop/rfb-proxy.js';
import { cutTextMsg, keyEventMsg, pointerEventMsg, setPixelFormatMsg } from '../../gateway/desktop/rfb-wire.js';
import { RGBX32 } from '../../recordings/rfb-keyframe.js';
import { RfbRecordingReader } from '../../recordings/rfb-reader.js';
import { RfbRecordingWriter } from '../../recordings/rfb-writer.js';
import {
  deviceScreen, differingPixels, fbRgb, NOVNC_ENCODINGS, startRecordedVncGateway, startXvnc, TestBrowser, until, VNC_PASSWORD as PASSWORD, type Xvnc,
} from '../support/desktop-peers.js';

const run = promisify(execFile);
const ROOT_COLOUR = 0x336699;
const sha256Hex = (text: string): string => createHash('sha256').update(text, 'latin1').digest('hex');

interface Session {
  browser: TestBrowser;
  proxy: RfbProxy;
  ended: Promise<DesktopEnd>;
  clipboard: ClipboardTransfer[];
  file: string;
  recorder: RfbRecordingWriter;
  close(): Promise<void>;
}

let recDir = '';

/** What the broker will do: connect to the device, open the recording, and relay a browser's connection. */
async function openSession(x: Xvnc, opts: Partial<RfbProxyOptions> = {}, encodings = NOVNC_ENCODINGS): Promise<Session> {
  const gateway = await startRecordedVncGateway(x, recDir, opts);
  const browser = await TestBrowser.connect(gateway.port, encodings).catch(async (err: unknown) => {
    await gateway.abandon();
    throw err;
  });
  const { ended, clipboard, file, recorder } = gateway;
  return {
    browser, proxy: await gateway.proxy, ended, clipboard, file, recorder,
    async close() {
      browser.close();
      await ended;
      await recorder.close();
    },
  };
}

/**
 * Reads and sets the device's X clipboard (python3-tk: Tk is the one selection tool this host
 * has). One process for the whole file, since starting Tk costs about a second; it keeps Tk's
 * event loop running, so it can serve the clipboard it owns.
 */
class DeviceClipboard {
  private readonly proc: ChildProcess;
  private buf = '';
  private waiting: Array<(line: string) => void> = [];

  constructor(x: Xvnc) {
    const py = [
      'import sys, json, tkinter as t', 'r = t.Tk()', 'r.withdraw()',
      'def on_line(fd, mask):',
      '  line = sys.stdin.readline()',
      '  if not line:', '    r.destroy()', '    return',
      '  cmd = json.loads(line)',
      '  if cmd[0] == "get":',
      '    try:', '      v = r.clipboard_get()', '    except t.TclError:', '      v = None',
      // Let go first, so that every set is a new claim the X server (and so Xvnc) sees, even when Tk owned it already.
      '  else:', '    r.selection_clear(selection="CLIPBOARD")', '    r.update()', '    r.clipboard_clear()', '    r.clipboard_append(cmd[1])', '    r.update()', '    v = True',
      '  print(json.dumps(v), flush=True)',
      'r.tk.createfilehandler(sys.stdin, t.READABLE, on_line)',
      'r.mainloop()',
    ].join('\n');
    this.proc = spawn('python3', ['-c', py], { env: x.env, stdio: ['pipe', 'pipe', 'ignore'] });
    this.proc.stdout?.on('data', (c: Buffer) => {
      this.buf += c.toString();
      let nl: number;
      while ((nl = this.buf.indexOf('\n')) >= 0) {
        const line = this.buf.slice(0, nl);
        this.buf = this.buf.slice(nl + 1);
        this.waiting.shift()?.(line);
      }
    });
  }

  private ask(cmd: unknown[]): Promise<unknown> {
    return new Promise((resolve) => {
      this.waiting.push((line) => resolve(JSON.parse(line)));
      this.proc.stdin?.write(`${JSON.stringify(cmd)}\n`);
    });
  }

  async read(): Promise<string | null> {
    return (await this.ask(['get'])) as string | null;
  }

  async set(text: string): Promise<void> {
    await this.ask(['set', text]);
  }

  stop(): void {
    this.proc.kill();
  }
}

// Issue 7 (VNC): the gateway between the browser and a real TigerVNC device, recorded.
describe('the VNC path through the gateway, with a real TigerVNC device', () => {
  let x: Xvnc;
  let xevLog: string;
  let clip: DeviceClipboard;

  beforeAll(async () => {
    recDir = mkdtempSync(path.join(os.tmpdir(), 'pc-rfbrec-'));
    x = await startXvnc('1024x768');
    await run('xsetroot', ['-solid', '#336699'], { env: x.env });
    x.client('xlogo', ['-geometry', '200x150+700+500']);
    xevLog = path.join(x.dir, 'xev.log');
    // Line-buffered, so every key the device receives is in the file at once.
    x.client('stdbuf', ['-oL', 'xev', '-root', '-event', 'keyboard'], xevLog);
    clip = new DeviceClipboard(x);
    await until(() => spawnSync('xwininfo', ['-name', 'xlogo'], { env: x.env }).status === 0, 'xlogo to map');
  });
  afterAll(async () => {
    clip?.stop();
    await x?.stop();
    if (recDir) rmSync(recDir, { recursive: true, force: true });
  });

  it("shows the device's screen: the root colour, and the same pixels as the device and the gateway's framebuffer", async () => {
    const s = await openSession(x);
    await until(() => s.browser.updates > 0 && s.browser.fb.rgbAt(10, 10) === ROOT_COLOUR, 'the first update');
    await new Promise((r) => setTimeout(r, 300)); // let the xlogo window's update arrive too
    expect(s.browser.fb.rgbAt(10, 10)).toBe(ROOT_COLOUR);
    expect(s.browser.fb.rgbAt(1000, 10)).toBe(ROOT_COLOUR);
    expect(Buffer.from(s.proxy.framebuffer.pixels).equals(Buffer.from(s.browser.fb.pixels))).toBe(true);
    const device = await deviceScreen(x);
    expect([device.width, device.height]).toEqual([1024, 768]);
    expect(differingPixels(device.rgb, fbRgb(s.browser.fb))).toBe(0);
    // The xlogo window is really there (not just the root colour everywhere).
    expect(s.browser.fb.rgbAt(800, 575)).not.toBe(ROOT_COLOUR);

    // Only encodings the gateway decodes statelessly reached the device.
    await s.close();
    const r = await RfbRecordingReader.open(s.file);
    const events: Array<Record<string, unknown>> = [];
    for await (const f of r.frames()) if (f.type === 'event') events.push(f.event);
    const enc = events.find((e) => 'encodings' in e) as { encodings: number[]; dropped: number[] };
    expect(enc.encodings).toEqual([1, 5, 2, 0, -223, -224, -258, -312, -313, -307, -239]);
    expect(enc.dropped).toEqual(expect.arrayContaining([7, 16, 21, -260, -308, -309, -1063131698, 1464686180, -316]));
    // The recording ends with the screen the browser had.
    const seek = await r.seek(r.durationMs);
    const replay = Framebuffer.fromKeyframe(seek.keyframe);
    for (const m of seek.messages) replay.apply(m);
    expect(differingPixels(fbRgb(replay), fbRgb(s.browser.fb))).toBe(0);
    await r.close();
  });

  it('passes typed keys to the device (seen there by xev) and counts them as input', async () => {
    const s = await openSession(x);
    await until(() => s.browser.updates > 0, 'the first update');
    const before = s.proxy.lastInputAt;
    await new Promise((r) => setTimeout(r, 5));
    s.browser.send(pointerEventMsg(0, 5, 5)); // over the root window, which has the focus
    for (const keysym of [0x70, 0x63]) { // "p", "c"
      s.browser.send(keyEventMsg(true, keysym));
      s.browser.send(keyEventMsg(false, keysym));
    }
    // noVNC's QEMU extended key event (keysym and XT scan code) once the device acknowledged it: "q".
    for (const down of [1, 0]) {
      const q = Buffer.alloc(12);
      q.writeUInt8(255, 0);
      q.writeUInt16BE(down, 2);
      q.writeUInt32BE(0x71, 4);
      q.writeUInt32BE(0x10, 8);
      s.browser.send(q);
    }
    await until(() => /keysym 0x71, q\)/.test(readFileSync(xevLog, 'utf8')), 'xev to see the keys');
    const log = readFileSync(xevLog, 'utf8');
    expect(log).toMatch(/KeyPress event[\s\S]*keysym 0x70, p\)/);
    expect(log).toMatch(/KeyRelease event[\s\S]*keysym 0x63, c\)/);
    expect(s.proxy.lastInputAt).toBeGreaterThan(before);
    await s.close();
    const r = await RfbRecordingReader.open(s.file);
    const inputs = [];
    for await (const f of r.frames()) if (f.type === 'input') inputs.push(f.input);
    expect(inputs).toEqual([
      { kind: 'pointer', buttons: 0, x: 5, y: 5 },
      { kind: 'key', down: true, keysym: 0x70 }, { kind: 'key', down: false, keysym: 0x70 },
      { kind: 'key', down: true, keysym: 0x63 }, { kind: 'key', down: false, keysym: 0x63 },
      { kind: 'key', down: true, keysym: 0x71 }, { kind: 'key', down: false, keysym: 0x71 },
    ]);
    await r.close();
  });

  it('follows the device when its screen changes size, and lets the browser resize it only where allowed', async () => {
    const s = await openSession(x);
    await until(() => s.browser.fb.rgbAt(10, 10) === ROOT_COLOUR, 'the first update');
    await run('xrandr', ['-s', '800x600'], { env: x.env });
    try {
      await until(() => s.browser.fb.width === 800 && s.proxy.framebuffer.width === 800, 'the new size to reach the browser');
      await until(() => Buffer.from(s.proxy.framebuffer.pixels).equals(Buffer.from(s.browser.fb.pixels)) && s.browser.fb.rgbAt(5, 595) === ROOT_COLOUR, 'the repaint');
      // A device's own screen is not the vendor's to change: SetDesktopSize is dropped.
      const setSize = Buffer.alloc(24);
      setSize.writeUInt8(251, 0);
      setSize.writeUInt16BE(640, 2);
      setSize.writeUInt16BE(480, 4);
      setSize.writeUInt8(1, 6);
      setSize.writeUInt16BE(640, 16);
      setSize.writeUInt16BE(480, 18);
      s.browser.send(setSize);
      await new Promise((r) => setTimeout(r, 300));
      expect((await run('xdpyinfo', [], { env: x.env })).stdout).toMatch(/dimensions:\s+800x600/);
      await s.close();
      const r = await RfbRecordingReader.open(s.file);
      const events: Array<Record<string, unknown>> = [];
      for await (const f of r.frames()) if (f.type === 'event') events.push(f.event);
      expect(events).toContainEqual({ resized: { width: 800, height: 600 } });
      expect(events).toContainEqual({ setDesktopSize: { width: 640, height: 480 }, allowed: false });
      const end = await r.seek(r.durationMs);
      expect([end.keyframe.width, end.keyframe.height]).toEqual([1024, 768]);
      const fb = Framebuffer.fromKeyframe(end.keyframe);
      for (const m of end.messages) fb.apply(m);
      expect([fb.width, fb.height]).toEqual([800, 600]);
      await r.close();

      // The RDP path's own Xvnc follows the browser's size.
      const rdp = await openSession(x, { allowResize: true });
      await until(() => rdp.browser.updates > 0, 'the first update');
      rdp.browser.send(setSize);
      await until(() => rdp.browser.fb.width === 640 && rdp.browser.fb.height === 480, 'the browser-driven resize');
      expect((await run('xdpyinfo', [], { env: x.env })).stdout).toMatch(/dimensions:\s+640x480/);
      await rdp.close();
    } finally {
      await run('xrandr', ['-s', '1024x768'], { env: x.env });
    }
  });

  it('refuses a wrong vaulted password with DEVICE_AUTH_FAILED, and says so when TigerVNC blacklists the gateway', async () => {
    const err = await connectRfb({ target: { host: '127.0.0.1', port: x.port }, password: 'not-it', timeoutMs: 5000 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConnectorError);
    expect((err as ConnectorError).code).toBe('DEVICE_AUTH_FAILED');
    expect((err as ConnectorError).detail).toMatch(/refused the stored password/);

    const strict = await startXvnc('64x64', ['-BlacklistThreshold', '1']);
    try {
      await expect(connectRfb({ target: { host: '127.0.0.1', port: strict.port }, password: 'not-it' })).rejects.toMatchObject({ code: 'DEVICE_AUTH_FAILED' });
      const second = await connectRfb({ target: { host: '127.0.0.1', port: strict.port }, password: PASSWORD }).catch((e: unknown) => e);
      expect(second).toMatchObject({ code: 'DEVICE_AUTH_FAILED', detail: expect.stringMatching(/repeated authentication failures/) });
    } finally {
      await strict.stop();
    }
  });

  it('refuses clipboard text both ways unless the grant allows it, and audits every transfer', async () => {
    const off = await openSession(x, { clipboard: { toDevice: false, fromDevice: false } });
    await until(() => off.browser.updates > 0, 'the first update');
    off.browser.send(cutTextMsg(6, 'secret-from-vendor'));
    await until(() => off.clipboard.length > 0, 'the clipboard callback');
    expect(off.clipboard).toEqual([{ direction: 'to-device', allowed: false, text: null, bytes: 18, sha256: sha256Hex('secret-from-vendor'), count: 1 }]);
    // The session goes on after a refusal: the next key still reaches the device.
    off.browser.send(keyEventMsg(true, 0x7a));
    off.browser.send(keyEventMsg(false, 0x7a));
    await until(() => /keysym 0x7a, z\)/.test(readFileSync(xevLog, 'utf8')), 'the key after the refusal');
    expect(await clip.read()).not.toBe('secret-from-vendor');
    await clip.set('secret-on-device');
    await until(() => off.clipboard.length > 1, 'the device clipboard to be offered');
    expect(off.clipboard[1]).toEqual({ direction: 'from-device', allowed: false, text: null, bytes: 16, sha256: sha256Hex('secret-on-device'), count: 1 });
    expect(off.browser.messages.filter((m) => m.type === 'cutText')).toEqual([]);
    await off.close();

    const on = await openSession(x, { clipboard: { toDevice: true, fromDevice: true } });
    await until(() => on.browser.updates > 0, 'the first update');
    on.browser.send(cutTextMsg(6, 'allowed-text'));
    await until(() => on.clipboard.length > 0, 'the clipboard callback');
    expect(on.clipboard[0]).toEqual({ direction: 'to-device', allowed: true, text: 'allowed-text', bytes: 12, sha256: sha256Hex('allowed-text'), count: 1 });
    expect(await clip.read()).toBe('allowed-text');
    await clip.set('device-text');
    await until(() => on.browser.messages.some((m) => m.type === 'cutText'), 'the device clipboard to reach the browser');
    const got = on.browser.messages.find((m) => m.type === 'cutText') as { text: Buffer };
    expect(got.text.toString('latin1')).toBe('device-text');
    expect(on.clipboard).toContainEqual({ direction: 'from-device', allowed: true, text: 'device-text', bytes: 11, sha256: sha256Hex('device-text'), count: 1 });
    await on.close();

    const events: Array<Record<string, unknown>> = [];
    const r = await RfbRecordingReader.open(off.file);
    for await (const f of r.frames()) if (f.type === 'event') events.push(f.event);
    expect(events).toContainEqual({ clipboard: 'refused', direction: 'to-device', bytes: 18, count: 1 });
    expect(events).toContainEqual({ clipboard: 'refused', direction: 'from-device', bytes: 16, count: 1 });
    await r.close();

    // A browser repeating a refused paste cannot flood the audit chain or the recording: the first
    // twenty are reported one by one, then one in a hundred with the running count.
    const flood = await openSession(x, { clipboard: { toDevice: false, fromDevice: false } });
    await until(() => flood.browser.updates > 0, 'the first update');
    for (let i = 0; i < 1000; i++) flood.browser.send(cutTextMsg(6, `paste ${i}`));
    flood.browser.send(keyEventMsg(true, 0x79));
    flood.browser.send(keyEventMsg(false, 0x79));
    await until(() => /keysym 0x79, y\)/.test(readFileSync(xevLog, 'utf8')), 'the key after the flood');
    expect(flood.clipboard.map((t) => t.count)).toEqual([...Array.from({ length: 20 }, (_, i) => i + 1), 100, 200, 300, 400, 500, 600, 700, 800, 900, 1000]);
    await flood.close();
    const fr = await RfbRecordingReader.open(flood.file);
    let refusals = 0;
    for await (const f of fr.frames()) if (f.type === 'event' && f.event.clipboard === 'refused') refusals++;
    await fr.close();
    expect(refusals).toBe(30);
  });

  it('R-6.3e: opens the clipboard one way only, as the grant allows: to the device with upload, from it with download', async () => {
    const up = await openSession(x, { clipboard: { toDevice: true, fromDevice: false } });
    await until(() => up.browser.updates > 0, 'the first update');
    up.browser.send(cutTextMsg(6, 'settings-in'));
    await until(() => up.clipboard.length > 0, 'the clipboard callback');
    expect(up.clipboard[0]).toMatchObject({ direction: 'to-device', allowed: true, text: 'settings-in' });
    expect(await clip.read()).toBe('settings-in');
    await clip.set('record-out');
    await until(() => up.clipboard.length > 1, 'the device clipboard to be offered');
    expect(up.clipboard[1]).toEqual({ direction: 'from-device', allowed: false, text: null, bytes: 10, sha256: sha256Hex('record-out'), count: 1 });
    expect(up.browser.messages.filter((m) => m.type === 'cutText')).toEqual([]);
    await up.close();

    const down = await openSession(x, { clipboard: { toDevice: false, fromDevice: true } });
    await until(() => down.browser.updates > 0, 'the first update');
    down.browser.send(cutTextMsg(6, 'pasted-in'));
    await until(() => down.clipboard.length > 0, 'the clipboard callback');
    expect(down.clipboard[0]).toEqual({ direction: 'to-device', allowed: false, text: null, bytes: 9, sha256: sha256Hex('pasted-in'), count: 1 });
    expect(await clip.read()).not.toBe('pasted-in');
    await clip.set('log-out');
    await until(() => down.browser.messages.some((m) => m.type === 'cutText'), 'the device clipboard to reach the browser');
    expect((down.browser.messages.find((m) => m.type === 'cutText') as { text: Buffer }).text.toString('latin1')).toBe('log-out');
    await down.close();
  });

  it("connects to the RDP path's own Xvnc: a 0600 unix socket with security type None, and refuses None where a password is needed", async () => {
    const sockDir = mkdtempSync(path.join(os.tmpdir(), 'pc-xvnc-sock-'));
    const sock = path.join(sockDir, 'rfb.sock');
    const own = await startXvnc('320x200', ['-rfbport', '-1', '-rfbunixpath', sock, '-rfbunixmode', '0600', '-SecurityTypes', 'None']);
    try {
      expect(statSync(sock).mode & 0o777).toBe(0o600);
      const c = await connectRfb({ target: { path: sock }, password: null });
      expect(c.serverInit).toMatchObject({ width: 320, height: 200 });
      c.socket.destroy();
      // A device that only offers None must not be taken for one that checked the vaulted password.
      await expect(connectRfb({ target: { path: sock }, password: PASSWORD })).rejects.toMatchObject({ code: 'DEVICE_UNREACHABLE', detail: expect.stringMatching(/offers security types \[1\]/) });
      await expect(connectRfb({ target: { host: '127.0.0.1', port: x.port }, password: null })).rejects.toMatchObject({ code: 'DEVICE_UNREACHABLE' });
    } finally {
      await own.stop();
      rmSync(sockDir, { recursive: true, force: true });
    }
  });

  it('ends the session when the device sends what no screen holds, before the browser sees it (an RFB 3.3 device)', async () => {
    // Not a TigerVNC: a peer that misbehaves on purpose, speaking the oldest version the client accepts.
    const fake = createServer((s) => {
      s.on('error', () => undefined);
      s.write('RFB 003.003\n');
      s.once('data', () => {
        const sec = Buffer.alloc(4);
        sec.writeUInt32BE(1, 0); // 3.3: the server decides, None, and no SecurityResult follows
        const init = Buffer.alloc(24);
        init.writeUInt16BE(64, 0);
        init.writeUInt16BE(48, 2);
        s.write(Buffer.concat([sec]));
        s.once('data', () => {
          s.write(init); // ClientInit read; ServerInit with an empty name
          s.once('data', () => {
            const bad = Buffer.alloc(4 + 12);
            bad.writeUInt16BE(1, 2);
            bad.writeUInt16BE(60, 4); // x
            bad.writeUInt16BE(10, 8); // w: 60 + 10 > 64
            bad.writeUInt16BE(1, 10);
            s.write(bad);
          });
        });
      });
    });
    await new Promise<void>((r) => fake.listen(0, '127.0.0.1', r));
    const device = await connectRfb({ target: { host: '127.0.0.1', port: (fake.address() as { port: number }).port }, password: null });
    expect(device.version).toBe('3.3');
    const recorder = await RfbRecordingWriter.create(path.join(recDir, 'fake.pcrfb'), {
      format: 'pcrfb', version: 1, recordingId: 'f', sessionId: 'f', user: 'u', device: 'fake', protocol: 'vnc', startedAt: Date.now(), width: 64, height: 48, pixelFormat: RGBX32, name: '',
    }, { flushIntervalMs: 1000, compression: 'deflate' });
    const front = createServer();
    await new Promise<void>((r) => front.listen(0, '127.0.0.1', r));
    let endWith: (why: DesktopEnd) => void = () => undefined;
    const ended = new Promise<DesktopEnd>((r) => { endWith = r; });
    const proxy = new Promise<RfbProxy>((resolve) => front.once('connection', (sock: Socket) => {
      const p = new RfbProxy(sock, device, recorder, endWith, { clipboard: { toDevice: false, fromDevice: false } });
      p.start();
      resolve(p);
    }));
    const browser = await TestBrowser.connect((front.address() as { port: number }).port);
    expect(await ended).toBe('protocol_error');
    expect((await proxy).failure).toMatch(/^device: Raw rectangle 10x1\+60\+0 lies outside the 64x48 screen/);
    await browser.closed;
    expect(browser.messages).toEqual([]);
    await recorder.close();
    front.close();
    fake.close();
  });

  it('ends the session on a malformed or oversized message from the browser (fail closed)', async () => {
    const s = await openSession(x);
    await until(() => s.browser.updates > 0, 'the first update');
    s.browser.send(Buffer.from([77, 0, 0, 0]));
    expect(await s.ended).toBe('protocol_error');
    expect(s.proxy.failure).toMatch(/unknown client message type 77/);
    await s.browser.closed;
    await s.recorder.close();

    const big = await openSession(x, { clipboard: { toDevice: true, fromDevice: true }, maxCutTextBytes: 1000 });
    await until(() => big.browser.updates > 0, 'the first update');
    big.browser.send(cutTextMsg(6, 'x'.repeat(1001)));
    expect(await big.ended).toBe('protocol_error');
    expect(big.proxy.failure).toMatch(/exceeds the limit/);
    expect(big.clipboard).toEqual([]);
    await big.recorder.close();

    const pf = await openSession(x);
    await until(() => pf.browser.updates > 0, 'the first update');
    pf.browser.send(setPixelFormatMsg({ ...RGBX32, bitsPerPixel: 16, depth: 16, redMax: 31, greenMax: 63, blueMax: 31, redShift: 11, greenShift: 5, blueShift: 0 }));
    expect(await pf.ended).toBe('protocol_error');
    expect(pf.proxy.failure).toMatch(/pixel format/);
    await pf.recorder.close();
  });

  it('gives a late watcher the screen as it is now, and the notice hook the grant warning', async () => {
    const s = await openSession(x);
    await until(() => s.browser.fb.rgbAt(10, 10) === ROOT_COLOUR, 'the first update');
    const notices: string[] = [];
    s.proxy.onNotice = (t) => notices.push(t);
    s.proxy.notice('Your access grant ends in 5 minutes.');
    expect(notices).toEqual(['Your access grant ends in 5 minutes.']);

    // A watcher's noVNC is fed snapshot() and then what onOutput taps: decode it the same way.
    const snap = s.proxy.snapshot();
    const watcher = new Framebuffer(1, 1);
    const hs = snap.subarray(0, 12 + 2 + 4 + 24 + Buffer.byteLength(s.proxy.framebuffer.name));
    expect(hs.subarray(0, 12).toString('latin1')).toBe('RFB 003.008\n');
    watcher.resize(s.proxy.framebuffer.width, s.proxy.framebuffer.height);
    watcher.apply(snap.subarray(hs.length));
    expect(Buffer.from(watcher.pixels).equals(Buffer.from(s.proxy.framebuffer.pixels))).toBe(true);
    s.proxy.terminate(255);
    await s.browser.closed;
    await s.recorder.close();
  });
});
