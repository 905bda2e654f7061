import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { deflateRawSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConnectorError } from '../../gateway/connectors/ssh-connector.js';
import { Framebuffer } from '../../gateway/desktop/framebuffer.js';
import { connectRfb } from '../../gateway/desktop/rfb-client.js';
import type { ScreenSize} from '../../gateway/desktop/rfb-messages.js';
import { serverMessage, type Parser, type ServerMessage } from '../../gateway/desktop/rfb-messages.js';
import { RfbProxy, type ClipboardTransfer, type DesktopEnd, type RfbProxyOptions } from '../../gateway/desktop/rfb-proxy.js';
import { cutTextMsg, ENCODING, keyEventMsg, pointerEventMsg, setEncodingsMsg, setPixelFormatMsg, updateRequestMsg } from '../../gateway/desktop/rfb-wire.js';
import { RGBX32 } from '../../recordings/rfb-keyframe.js';
import { RfbRecordingReader } from '../../recordings/rfb-reader.js';
import { RfbRecordingWriter } from '../../recordings/rfb-writer.js';
import { deviceScreen, differingPixels, fbRgb, NOVNC_ENCODINGS, startXvnc, TestBrowser, until, VNC_PASSWORD as PASSWORD, type Xvnc } from '../support/desktop-peers.js';

const run = promisify(execFile);
const ROOT_COLOUR = 0x336699;

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
let sessionNo = 0;

/** What the broker will do: connect to the device, open the recording, and relay a browser's connection. */
async function openSession(x: Xvnc, opts: Partial<RfbProxyOptions> = {}, encodings = NOVNC_ENCODINGS): Promise<Session> {
  const device = await connectRfb({ target: { host: '127.0.0.1', port: x.port }, password: PASSWORD, timeoutMs: 5000 });
  const id = `s${++sessionNo}`;
  const file = path.join(recDir, `${id}.pcrfb`);
  const { width, height, name } = device.serverInit;
  const recorder = await RfbRecordingWriter.create(file, {
    format: 'pcrfb', version: 1, recordingId: id, sessionId: id, user: 'vendor', device: 'xvnc', protocol: 'vnc', startedAt: Date.now(),
    width, height, pixelFormat: RGBX32, name,
  }, { flushIntervalMs: 1000, compression: 'deflate' });
  const clipboard: ClipboardTransfer[] = [];
  let endWith: (why: DesktopEnd) => void = () => undefined;
  const ended = new Promise<DesktopEnd>((r) => { endWith = r; });
  const server: Server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  const proxy = new Promise<RfbProxy>((resolve) => server.once('connection', (sock: Socket) => {
    server.close();
    const p = new RfbProxy(sock, device, recorder, endWith, { clipboard: false, onClipboard: (t) => clipboard.push(t), ...opts });
    p.start();
    resolve(p);
  }));
  const browser = await TestBrowser.connect(port, encodings);
  return {
    browser, proxy: await proxy, ended, clipboard, file, recorder,
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
      '  else:', '    r.clipboard_clear()', '    r.clipboard_append(cmd[1])', '    r.update()', '    v = True',
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
const hasTk = spawnSync('python3', ['-c', 'import tkinter']).status === 0;

// Issue 7 (VNC): the gateway between the browser and a real TigerVNC device, recorded.
describe('the VNC path through the gateway, with a real TigerVNC device', () => {
  let x: Xvnc;
  let xevLog: string;
  let clip: DeviceClipboard | null = null;

  beforeAll(async () => {
    recDir = mkdtempSync(path.join(os.tmpdir(), 'pc-rfbrec-'));
    x = await startXvnc('1024x768');
    await run('xsetroot', ['-solid', '#336699'], { env: x.env });
    x.client('xlogo', ['-geometry', '200x150+700+500']);
    xevLog = path.join(x.dir, 'xev.log');
    // Line-buffered, so every key the device receives is in the file at once.
    x.client('stdbuf', ['-oL', 'xev', '-root', '-event', 'keyboard'], xevLog);
    if (hasTk) clip = new DeviceClipboard(x);
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
    const off = await openSession(x, { clipboard: false });
    await until(() => off.browser.updates > 0, 'the first update');
    off.browser.send(cutTextMsg(6, 'secret-from-vendor'));
    await until(() => off.clipboard.length > 0, 'the clipboard callback');
    expect(off.clipboard).toEqual([{ direction: 'to-device', allowed: false, text: null, bytes: 18 }]);
    // The session goes on after a refusal: the next key still reaches the device.
    off.browser.send(keyEventMsg(true, 0x7a));
    off.browser.send(keyEventMsg(false, 0x7a));
    await until(() => /keysym 0x7a, z\)/.test(readFileSync(xevLog, 'utf8')), 'the key after the refusal');
    if (clip) {
      expect(await clip.read()).not.toBe('secret-from-vendor');
      await clip.set('secret-on-device');
      await until(() => off.clipboard.length > 1, 'the device clipboard to be offered');
      expect(off.clipboard[1]).toEqual({ direction: 'from-device', allowed: false, text: null, bytes: 16 });
    }
    expect(off.browser.messages.filter((m) => m.type === 'cutText')).toEqual([]);
    await off.close();

    const on = await openSession(x, { clipboard: true });
    await until(() => on.browser.updates > 0, 'the first update');
    on.browser.send(cutTextMsg(6, 'allowed-text'));
    await until(() => on.clipboard.length > 0, 'the clipboard callback');
    expect(on.clipboard[0]).toEqual({ direction: 'to-device', allowed: true, text: 'allowed-text', bytes: 12 });
    if (clip) {
      expect(await clip.read()).toBe('allowed-text');
      await clip.set('device-text');
      await until(() => on.browser.messages.some((m) => m.type === 'cutText'), 'the device clipboard to reach the browser');
      const got = on.browser.messages.find((m) => m.type === 'cutText') as { text: Buffer };
      expect(got.text.toString('latin1')).toBe('device-text');
      expect(on.clipboard).toContainEqual({ direction: 'from-device', allowed: true, text: 'device-text', bytes: 11 });
    }
    await on.close();

    const events: Array<Record<string, unknown>> = [];
    const r = await RfbRecordingReader.open(off.file);
    for await (const f of r.frames()) if (f.type === 'event') events.push(f.event);
    expect(events).toContainEqual({ clipboard: 'refused', direction: 'to-device', bytes: 18 });
    if (clip) expect(events).toContainEqual({ clipboard: 'refused', direction: 'from-device', bytes: 16 });
    await r.close();
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
      const p = new RfbProxy(sock, device, recorder, endWith, { clipboard: false });
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

    const big = await openSession(x, { clipboard: true, maxCutTextBytes: 1000 });
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

/**
 * Measurements for the report (not a test of behaviour): PORTCULLIS_RFB_MEASURE=1 npx vitest run
 * test/integration/vnc-proxy.test.ts. A busy screen (an animation, a clock, text scrolling and
 * grey-scale images changing, like a viewer stepping through slices), read for a few seconds
 * directly from Xvnc in each encoding, then through the gateway.
 */
describe.runIf(process.env.PORTCULLIS_RFB_MEASURE === '1')('measured: bandwidth per encoding on a busy screen, memory per session', () => {
  let x: Xvnc;
  const seconds = Number(process.env.PORTCULLIS_RFB_MEASURE_SECONDS ?? 6);

  beforeAll(async () => {
    recDir ||= mkdtempSync(path.join(os.tmpdir(), 'pc-rfbrec-'));
    x = await startXvnc('1280x800');
    await run('xsetroot', ['-solid', '#202830'], { env: x.env });
    x.client('ico', ['-geometry', '500x500+20+20', '-sleep', '0.04', '-lw', '3']); // wire frame: -faces needs a colour map
    x.client('xclock', ['-geometry', '200x200+1040+20', '-update', '1']);
    x.client('sh', ['-c', 'while true; do xmessage -geometry +20+560 "$(date; ls -l /usr/bin | shuf -n 10)" & p=$!; sleep 0.5; kill $p; done']);
    x.client('sh', ['-c', slideShow(x.dir)]);
    await new Promise((r) => setTimeout(r, 1500));
  }, 60_000);
  afterAll(async () => {
    await x?.stop();
    if (recDir) rmSync(recDir, { recursive: true, force: true });
  });

  for (const [label, encodings] of [
    ['Raw', [0]], ['Hextile (the gateway\'s choice)', [1, 5, 2, 0]], ['ZRLE', [1, 16, 0]], ['Tight (lossless)', [1, 7, 0, -256 + 6]], ['Tight (JPEG q6)', [1, 7, 0, -256 + 6, -32 + 6]],
  ] as const) {
    it(`directly from the device: ${label}`, async () => {
      const conn = await connectRfb({ target: { host: '127.0.0.1', port: x.port }, password: PASSWORD });
      const b = new TestBrowser(conn, (screen) => measuredMessage(screen));
      let bytes = 0;
      const stream: Buffer[] = [];
      conn.socket.on('data', (c: Buffer) => { bytes += c.length; stream.push(c); });
      b.send(setPixelFormatMsg(RGBX32));
      b.send(setEncodingsMsg([...encodings]));
      b.minIntervalMs = 100;
      b.send(updateRequestMsg(false, 0, 0, b.fb.width, b.fb.height));
      await new Promise((r) => setTimeout(r, 1000));
      const startBytes = bytes;
      const startUpdates = b.updates;
      stream.length = 0;
      await new Promise((r) => setTimeout(r, seconds * 1000));
      const perSecond = (bytes - startBytes) / seconds;
      const all = Buffer.concat(stream);
      const deflated = deflateRawSync(all, { level: 1 }).length / seconds;
      console.log(`[measure] ${label}: ${(perSecond / 1024).toFixed(0)} KiB/s, ${((b.updates - startUpdates) / seconds).toFixed(1)} updates/s; after DEFLATE level 1 (disk, and about what permessage-deflate sends): ${(deflated / 1024).toFixed(0)} KiB/s`);
      b.close();
    }, 60_000);
  }

  it('through the gateway: recording size, keyframes, seek time, memory per session', async () => {
    const heapBefore = process.memoryUsage();
    const s = await openSession(x, {}, NOVNC_ENCODINGS);
    s.browser.minIntervalMs = 100;
    const t0 = Date.now();
    await new Promise((r) => setTimeout(r, seconds * 1000));
    const mem = process.memoryUsage();
    const secs = (Date.now() - t0) / 1000;
    console.log(`[measure] gateway: ${(s.proxy.bytesOut / secs / 1024).toFixed(0)} KiB/s to the browser, ${(s.browser.updates / secs).toFixed(1)} updates/s; process RSS +${((mem.rss - heapBefore.rss) / 1048576).toFixed(1)} MiB during one 1280x800 session (gateway and test browser)`);
    await s.close();
    const size = statSync(s.file).size;
    const r = await RfbRecordingReader.open(s.file);
    let worst = 0;
    for (const k of [...r.keyframes.slice(1), { micros: r.durationMicros + 1 }]) {
      const t1 = performance.now();
      const seek = await r.seek((k.micros - 1) / 1000);
      const fb = Framebuffer.fromKeyframe(seek.keyframe);
      for (const m of seek.messages) fb.apply(m);
      worst = Math.max(worst, performance.now() - t1);
    }
    console.log(`[measure] recording: ${(size / secs / 1024).toFixed(0)} KiB/s on disk, ${r.keyframes.length} keyframes in ${secs.toFixed(0)} s; worst seek (just before a keyframe) with decoding to the exact time: ${worst.toFixed(0)} ms`);
    await r.close();
  }, 60_000);

  it('frame rate without a cap: directly (the same encodings) and through the gateway', async () => {
    const gatewayEncodings = [1, 5, 2, 0, -223, -224, -258, -312, -313, -307, -239];
    const conn = await connectRfb({ target: { host: '127.0.0.1', port: x.port }, password: PASSWORD });
    const direct = new TestBrowser(conn);
    direct.send(setPixelFormatMsg(RGBX32));
    direct.send(setEncodingsMsg(gatewayEncodings));
    direct.send(updateRequestMsg(false, 0, 0, direct.fb.width, direct.fb.height));
    await new Promise((r) => setTimeout(r, seconds * 1000));
    const directRate = direct.updates / seconds;
    direct.close();
    const s = await openSession(x, {}, NOVNC_ENCODINGS);
    await new Promise((r) => setTimeout(r, seconds * 1000));
    const viaRate = s.browser.updates / seconds;
    await s.close();
    console.log(`[measure] uncapped: ${directRate.toFixed(1)} updates/s direct, ${viaRate.toFixed(1)} through the gateway (same test client decoding both)`);
  }, 60_000);
});

/** Grey-scale "slices" shown one after another with xwud: a busy image viewer. */
function slideShow(dir: string): string {
  const files: string[] = [];
  for (let i = 0; i < 8; i++) {
    const f = path.join(dir, `slice${i}.xwd`);
    writeFileSync(f, greyXwd(512, 512, i));
    files.push(f);
  }
  return `while true; do for f in ${files.join(' ')}; do xwud -in $f -geometry +600+240 & p=$!; sleep 0.25; kill $p; done; done`;
}

/** An XWD (ZPixmap, 32 bpp TrueColor) image of smooth rings with noise, different per slice. */
function greyXwd(w: number, h: number, seed: number): Buffer {
  const name = Buffer.from('slice\0');
  const header = Buffer.alloc(100);
  const fields = [100 + name.length, 7, 2, 24, w, h, 0, 0, 32, 0, 32, 32, w * 4, 4, 0xff0000, 0xff00, 0xff, 8, 256, 0, w, h, 0, 0, 0];
  fields.forEach((v, i) => header.writeUInt32BE(v, i * 4));
  const px = Buffer.alloc(w * h * 4);
  let rnd = seed * 7919 + 1;
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      rnd = (rnd * 1103515245 + 12345) & 0x7fffffff;
      const d = Math.hypot(x - w / 2, y - h / 2);
      const v = Math.max(0, Math.min(255, Math.round(128 + 90 * Math.sin(d / (6 + seed)) * Math.exp(-d / 300) + ((rnd >> 16) % 24) - 12)));
      px.writeUInt32LE((v << 16) | (v << 8) | v, (y * w + x) * 4);
    }
  }
  return Buffer.concat([header, name, px]);
}

/**
 * Message boundaries for the encodings the gateway does not negotiate (ZRLE, Tight), only to
 * count their bytes here; everything else as the gateway parses it.
 */
function* measuredMessage(screen: ScreenSize): Parser<ServerMessage> {
  const type = (yield 1)[0] as number;
  if (type !== 0) throw new Error(`unexpected message ${type} while measuring`);
  const rects = (yield 3).readUInt16BE(1);
  for (let i = 0; i < rects; i++) {
    const r: Buffer = yield 12;
    const w = r.readUInt16BE(4);
    const h = r.readUInt16BE(6);
    const enc = r.readInt32BE(8);
    if (enc === ENCODING.lastRect) break;
    if (enc === ENCODING.zrle) {
      yield (yield 4).readUInt32BE(0);
    } else if (enc === ENCODING.tight) {
      yield* tightRect(w, h);
    } else if (enc === ENCODING.raw) {
      if (w * h > 0) yield w * h * 4;
    } else if (enc === ENCODING.copyRect) {
      yield 4;
    } else if (enc === ENCODING.hextile || enc === ENCODING.rre) {
      // Reuse the gateway's own parser for one rectangle by wrapping it as a one-rect update.
      const inner = serverMessage(screen, null, 1 << 24);
      inner.next();
      inner.next(Buffer.from([0]));
      inner.next(Buffer.from([0, 0, 1]));
      let step = inner.next(r);
      while (!step.done) step = inner.next(yield step.value);
    } else {
      throw new Error(`unexpected encoding ${enc} while measuring`);
    }
  }
  return { type: 'update', rects, encodings: [], resized: false };
}

function* tightRect(w: number, h: number): Parser<void> {
  const ctl = (yield 1)[0] as number;
  const kind = ctl >> 4;
  const compactLength = function* (): Parser<number> {
    let len = 0;
    for (let i = 0; i < 3; i++) {
      const b = (yield 1)[0] as number;
      len |= (b & (i === 2 ? 0xff : 0x7f)) << (7 * i);
      if (i < 2 && !(b & 0x80)) break;
    }
    return len;
  };
  if (kind === 8) { yield 3; return; } // fill: one TPIXEL
  if (kind === 9) { yield yield* compactLength(); return; } // JPEG
  let filter = 0;
  if (ctl & 0x40) filter = (yield 1)[0] as number;
  let size = w * h * 3;
  if (filter === 1) {
    const colours = ((yield 1)[0] as number) + 1;
    yield colours * 3;
    size = colours === 2 ? ((w + 7) >> 3) * h : w * h;
  }
  if (size < 12) { yield size; return; }
  yield yield* compactLength();
}
