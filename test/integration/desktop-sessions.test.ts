import { spawn, spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { openSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Duplex } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cutTextMsg, CLIENT_MSG, ENCODING, keyEventMsg, pointerEventMsg } from '../../gateway/desktop/rfb-wire.js';
import { ApiClient, TotpSource } from '../support/api-client.js';
import { deviceScreen, fbRgb, differingPixels, startRdpDevice, startXvnc, TestBrowser, until, VNC_PASSWORD, type RdpDevice, type Xvnc, xfreerdpFor } from '../support/desktop-peers.js';
import { CLASS_OF_LEVEL, startGatewayFixture, type GatewayFixture, type TestUser } from '../support/gateway-fixture.js';
import { openBinarySocket, type BinarySocket } from '../support/web-socket.js';

// Issue 7: VNC and RDP desktops through the web console's front door, from the browser's side:
// the same grant check, vault, recording, watch, kill and grant end as SSH (R-5.3c, R-6.3e,
// R-6.3f, R-A.3e, R-A.5b). The devices are real: TigerVNC's Xvnc, and freerdp-shadow-cli on Xvfb.

const VNC_ROOT = 0x336699;
const RDP_ROOT = 0xaa3366;

interface Desktop {
  sock: BinarySocket;
  browser: TestBrowser;
  session: string;
}

describe('desktops through the gateway', () => {
  let fx: GatewayFixture;
  let vnc: Xvnc;
  let rdp: RdpDevice;
  let xevLog: string;
  const totp = new TotpSource();
  let vendor: TestUser;
  let vendorApi: ApiClient;
  let securityApi: ApiClient;
  const open: BinarySocket[] = [];

  async function signIn(u: TestUser): Promise<ApiClient> {
    const api = new ApiClient(fx.gw.web.port);
    const r = await api.login(u.name, u.password, { code: await totp.code(u.totpSecret) });
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    return api;
  }

  async function connect(api: ApiClient, query: string): Promise<Desktop> {
    const sock = await openBinarySocket(fx.gw.web.port, `/api/desktop?${query}`, api);
    open.push(sock);
    const browser = await TestBrowser.connect(sock.stream);
    await sock.waitFor(() => sock.controls.some((c) => c.type === 'status'));
    const status = sock.controls.find((c) => c.type === 'status') as { session: string };
    return { sock, browser, session: status.session };
  }

  /** The refusal a desktop WebSocket ends with at once (no RFB at all). */
  async function refusal(api: ApiClient, query: string): Promise<{ code: string; message: string; binary: number }> {
    const sock = await openBinarySocket(fx.gw.web.port, `/api/desktop?${query}`, api);
    let binary = 0;
    sock.stream.on('data', (c: Buffer) => { binary += c.length; });
    await sock.closed;
    const end = sock.controls.find((c) => c.type === 'end') as { code: string; message: string };
    return { ...end, binary };
  }

  beforeAll(async () => {
    vnc = await startXvnc('1024x768');
    spawnSync('xsetroot', ['-solid', '#336699'], { env: vnc.env });
    vnc.client('xlogo', ['-geometry', '200x150+700+500']);
    xevLog = path.join(vnc.dir, 'xev.log');
    vnc.client('stdbuf', ['-oL', 'xev', '-root', '-event', 'keyboard'], xevLog);
    rdp = await startRdpDevice();
    fx = await startGatewayFixture('grant_warnings = ["3s"]');
    const steps: Array<[string[], string?]> = [
      [['device', 'add', 'us-02', '--host', '127.0.0.1', '--port', String(vnc.port), '--protocol', 'vnc', '--udi', 'UDI-us-02', ...CLASS_OF_LEVEL[2]]],
      [['device', 'credential', 'us-02', '--username', 'vnc', '--password-stdin'], `${VNC_PASSWORD}\n`],
      [['device', 'add', 'xr-03', '--host', '127.0.0.1', '--port', String(rdp.port), '--protocol', 'rdp', '--udi', 'UDI-xr-03', ...CLASS_OF_LEVEL[2]]],
      [['device', 'credential', 'xr-03', '--username', rdp.username, '--password-stdin'], `${rdp.password}\n`],
    ];
    for (const [args, stdin] of steps) {
      const r = await fx.cli(args, stdin);
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(0);
    }
    vendor = await fx.addUser('vera');
    vendorApi = await signIn(vendor);
    securityApi = await signIn(await fx.addUser('sol', ['security']));
    await until(() => spawnSync('xwininfo', ['-name', 'xlogo'], { env: vnc.env }).status === 0, 'xlogo to map');
  }, 120_000);

  afterAll(async () => {
    for (const s of open) s.ws.terminate();
    await fx?.stop();
    await vnc?.stop();
    await rdp?.stop();
  });

  it('refuses a desktop without a grant for that protocol, and says why; nothing of the device is shown', async () => {
    const none = await refusal(vendorApi, 'device=us-02&protocol=vnc');
    expect(none.code).toBe('NO_GRANT');
    expect(none.binary).toBe(0);
    // A grant for SSH is not a grant for the desktop.
    await fx.cli(['device', 'add', 'both-04', '--host', '127.0.0.1', '--port', `ssh=22`, '--port', `vnc=${vnc.port}`, '--protocol', 'ssh', '--protocol', 'vnc', '--udi', 'UDI-both-04', ...CLASS_OF_LEVEL[1]]);
    await fx.grant('vera', 'both-04', 'now', '+1h');
    expect((await refusal(vendorApi, 'device=both-04&protocol=vnc')).code).toBe('NO_GRANT');
    const audit = await fx.audit('session.refused');
    expect(audit.filter((e) => e.actor === 'vera' && (e.data as { protocol?: string }).protocol === 'vnc')).toHaveLength(2);
    // Malformed input is refused before anything else.
    expect((await refusal(vendorApi, 'device=us-02&protocol=telnet')).code).toBe('INVALID_INPUT');
    // Not signed in: no upgrade at all.
    await expect(openBinarySocket(fx.gw.web.port, '/api/desktop?device=us-02&protocol=vnc', new ApiClient(fx.gw.web.port))).rejects.toThrow(/401/);
  });

  it('shows a VNC device\'s screen as the device has it, passes typed keys, and records it all', async () => {
    await fx.grant('vera', 'us-02', 'now', '+1h', { protocol: 'vnc' });
    const d = await connect(vendorApi, 'device=us-02&protocol=vnc&width=1280&height=800');
    await until(() => d.browser.updates > 0 && d.browser.fb.rgbAt(10, 10) === VNC_ROOT, 'the first screen', 20_000);
    await new Promise((r) => setTimeout(r, 300));
    // The device's VNC size, not the browser's: a VNC device's screen is its own.
    expect([d.browser.fb.width, d.browser.fb.height]).toEqual([1024, 768]);
    expect(differingPixels((await deviceScreen(vnc)).rgb, fbRgb(d.browser.fb))).toBe(0);

    d.browser.send(pointerEventMsg(0, 5, 5));
    for (const keysym of [0x68, 0x69]) { // "h", "i"
      d.browser.send(keyEventMsg(true, keysym));
      d.browser.send(keyEventMsg(false, keysym));
    }
    await until(() => /keysym 0x69, i\)/.test(readFileSync(xevLog, 'utf8')), 'xev to see the keys');

    const live = await securityApi.get<{ sessions: Array<{ id: string; user: string; protocol: string; kind: string; via: string }> }>('/api/sessions?open=true');
    expect(live.body.sessions.find((s) => s.id === d.session)).toMatchObject({ user: 'vera', protocol: 'vnc', kind: 'desktop', via: 'web' });

    d.browser.close();
    await d.sock.closed;
    await expect.poll(async () => (await fx.gw.runtime.store.getSession(d.session))?.endedAt, { timeout: 30_000 }).not.toBeNull();
    const session = await fx.gw.runtime.store.getSession(d.session);
    expect(session?.endReason).toBe('client_closed');
    const rec = await fx.gw.runtime.store.getRecording(session?.recordingId ?? '');
    expect(rec?.format).toBe('pcrfb');
    expect(rec?.sealedAt).not.toBeNull();

    // Replay: the outline, and the screen at the end composed from the recording alone.
    const outline = await securityApi.get<{ durationMs: number; width: number; height: number; protocol: string; keyframesMs: number[] }>(`/api/recordings/${rec?.id}/desktop`);
    expect(outline.status).toBe(200);
    expect(outline.body).toMatchObject({ width: 1024, height: 768, protocol: 'vnc' });
    expect(outline.body.keyframesMs.length).toBeGreaterThan(0);
    const frames = await securityApi.bytes(`/api/recordings/${rec?.id}/desktop/frames?from=${Math.floor(outline.body.durationMs)}`);
    expect(frames.status).toBe(200);
    const len = frames.body.readUInt32BE(4);
    const first = frames.body.subarray(8, 8 + len);
    // The first frame is a whole RFB stream from the server's side: handshake, then the screen.
    expect(first.subarray(0, 12).toString()).toBe('RFB 003.008\n');
    const viewer = await TestBrowser.connect(streamOf(first));
    await until(() => viewer.updates > 0, 'the replayed screen');
    expect(differingPixels(fbRgb(viewer.fb), fbRgb(d.browser.fb))).toBe(0);
    viewer.close();
    // A vendor does not replay recordings.
    expect((await vendorApi.get(`/api/recordings/${rec?.id}/desktop`)).status).toBe(403);
    // The whole story is in the audit, and the chain verifies.
    const types = (await fx.audit()).filter((e) => JSON.stringify(e.data).includes(d.session)).map((e) => e.type);
    expect(types).toEqual(expect.arrayContaining(['session.start', 'session.end', 'recording.viewed']));
    const verify = await fx.cli(['verify']);
    expect(verify.code, verify.stdout + verify.stderr).toBe(0);
  });

  it('lets security watch a desktop live from its current screen, then kill it; the vendor is told why', async () => {
    const d = await connect(vendorApi, 'device=us-02&protocol=vnc');
    await until(() => d.browser.fb.rgbAt(10, 10) === VNC_ROOT, 'the first screen', 20_000);
    // Another vendor cannot watch, let alone kill.
    const other = await signIn(await fx.addUser('otto'));
    await expect(openBinarySocket(fx.gw.web.port, `/api/sessions/${d.session}/watch`, other)).rejects.toThrow(/403/);
    expect((await other.post(`/api/sessions/${d.session}/kill`, { reason: 'mine now' })).status).toBe(403);
    // Nor open a desktop of their own on the same device while this one is open: one person's
    // desktop per device (a second viewer would share the keyboard; a second RDP login would take
    // over the first one's Windows session).
    await fx.grant('otto', 'us-02', 'now', '+1h', { protocol: 'vnc' });
    const taken = await refusal(other, 'device=us-02&protocol=vnc');
    expect(taken.code).toBe('DEVICE_IN_USE');
    expect(taken.binary).toBe(0);

    const watch = await openBinarySocket(fx.gw.web.port, `/api/sessions/${d.session}/watch`, securityApi);
    open.push(watch);
    const watcher = await TestBrowser.connect(watch.stream);
    await until(() => watcher.updates > 0, 'the watcher\'s first screen', 20_000);
    expect(differingPixels(fbRgb(watcher.fb), fbRgb(d.browser.fb))).toBe(0);
    // The device's screen changes; the watcher sees the change live.
    spawnSync('xsetroot', ['-solid', '#117733'], { env: vnc.env });
    await until(() => watcher.fb.rgbAt(10, 10) === 0x117733, 'the watcher to see the change', 20_000);
    // The watcher's keys never reach the device.
    const before = readFileSync(xevLog, 'utf8').length;
    watcher.send(keyEventMsg(true, 0x7a));
    watcher.send(keyEventMsg(false, 0x7a));
    await new Promise((r) => setTimeout(r, 500));
    expect(readFileSync(xevLog, 'utf8').slice(before)).not.toMatch(/keysym 0x7a/);
    spawnSync('xsetroot', ['-solid', '#336699'], { env: vnc.env });

    const kill = await securityApi.post(`/api/sessions/${d.session}/kill`, { reason: 'unplanned change on the ultrasound' });
    expect(kill.status).toBe(202);
    await d.sock.closed;
    const end = d.sock.controls.find((c) => c.type === 'end') as { reason: string; message: string };
    expect(end.reason).toBe('killed');
    expect(end.message).toMatch(/unplanned change on the ultrasound/);
    await watch.closed;
    expect(watch.controls.find((c) => c.type === 'end')).toMatchObject({ reason: 'killed' });
    const audit = await fx.audit('session.watched');
    expect(audit.some((e) => e.actor === 'sol' && (e.data as { session: string }).session === d.session)).toBe(true);
  });

  it('keeps the clipboard shut unless the grant allows file transfer, and audits each attempt with its hash, never its text', async () => {
    const d = await connect(vendorApi, 'device=us-02&protocol=vnc');
    await until(() => d.browser.updates > 0, 'the first screen', 20_000);
    const secret = 'patient 4711 export';
    d.browser.send(cutTextMsg(CLIENT_MSG.clientCutText, secret));
    await expect.poll(async () => (await fx.audit('desktop.clipboard')).length, { timeout: 30_000 }).toBe(1);
    const [entry] = await fx.audit('desktop.clipboard');
    expect(entry).toMatchObject({ outcome: 'denied', code: 'FILE_TRANSFER_NOT_GRANTED', data: { direction: 'to-device' } });
    expect(JSON.stringify(entry)).not.toContain(secret);
    d.browser.close();
    await d.sock.closed;
  });

  it('R-6.3e: on a download-only grant the clipboard to the device stays shut, audited as an upload the grant lacks', async () => {
    await fx.cli(['device', 'add', 'us-06', '--host', '127.0.0.1', '--port', String(vnc.port), '--protocol', 'vnc', '--udi', 'UDI-us-06', ...CLASS_OF_LEVEL[1]]);
    await fx.cli(['device', 'credential', 'us-06', '--username', 'vnc', '--password-stdin'], `${VNC_PASSWORD}\n`);
    await fx.grant('vera', 'us-06', 'now', '+1h', { protocol: 'vnc', download: true });
    const d = await connect(vendorApi, 'device=us-06&protocol=vnc');
    await until(() => d.browser.updates > 0, 'the first screen', 10_000);
    const before = (await fx.audit('desktop.clipboard')).length;
    d.browser.send(cutTextMsg(CLIENT_MSG.clientCutText, 'new dosage table'));
    await expect.poll(async () => (await fx.audit('desktop.clipboard')).length, { timeout: 5000 }).toBe(before + 1);
    const entry = (await fx.audit('desktop.clipboard')).at(-1);
    expect(entry).toMatchObject({ outcome: 'denied', code: 'FILE_UPLOAD_NOT_GRANTED', data: { direction: 'to-device', device: 'us-06' } });
    d.browser.close();
    await d.sock.closed;
  });

  it('ends a desktop when its grant ends, with a warning first', async () => {
    await fx.cli(['device', 'add', 'us-05', '--host', '127.0.0.1', '--port', String(vnc.port), '--protocol', 'vnc', '--udi', 'UDI-us-05', ...CLASS_OF_LEVEL[1]]);
    await fx.cli(['device', 'credential', 'us-05', '--username', 'vnc', '--password-stdin'], `${VNC_PASSWORD}\n`);
    await fx.grant('vera', 'us-05', 'now', '+6s', { protocol: 'vnc' });
    const d = await connect(vendorApi, 'device=us-05&protocol=vnc');
    await d.sock.closed;
    expect(d.sock.controls.find((c) => c.type === 'notice')?.text).toMatch(/ends in 3s/);
    expect(d.sock.controls.find((c) => c.type === 'end')).toMatchObject({ code: 'GRANT_EXPIRED', reason: 'grant_ended' });
  }, 120_000);

  it('pins the RDP certificate and refuses a device that presents another, or none pinned', async () => {
    await fx.grant('vera', 'xr-03', 'now', '+1h', { protocol: 'rdp' });
    expect((await refusal(vendorApi, 'device=xr-03&protocol=rdp')).code).toBe('RDP_CERT_NOT_PINNED');
    const wrong = 'AA:'.repeat(31) + 'AA';
    const refused = await fx.cli(['device', 'trust', 'xr-03', '--expect-rdp', wrong]);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/RDP_CERT_MISMATCH|not the expected/);
    const onDisk = new X509Certificate(readFileSync(rdp.certFile)).fingerprint256;
    const trusted = await fx.cli(['device', 'trust', 'xr-03', '--expect-rdp', onDisk]);
    expect(trusted.code, trusted.stderr).toBe(0);
    // Another certificate pinned than the device presents: the session is refused, nothing is shown.
    await fx.gw.runtime.store.updateDevice('xr-03', { rdpCertSha256: wrong });
    const mismatch = await refusal(vendorApi, 'device=xr-03&protocol=rdp');
    expect(mismatch.code).toBe('RDP_CERT_MISMATCH');
    expect(mismatch.binary).toBe(0);
    expect(mismatch.message).not.toContain(rdp.password);
    await fx.gw.runtime.store.updateDevice('xr-03', { rdpCertSha256: onDisk });
    expect(xfreerdpFor(rdp.port)).toEqual([]);
  }, 120_000);

  it('shows an RDP device\'s screen at the browser\'s size, and leaves no RDP client behind when the session ends', async () => {
    const d = await connect(vendorApi, 'device=xr-03&protocol=rdp&width=1280&height=800');
    expect([d.browser.fb.width, d.browser.fb.height]).toEqual([1280, 800]);
    await until(() => d.browser.fb.rgbAt(10, 10) === RDP_ROOT, 'the device\'s screen', 20_000);
    expect(xfreerdpFor(rdp.port)).toHaveLength(1);
    // Keys typed in the browser reach the RDP device (through Xvnc, xfreerdp and the device's RDP server).
    const keys = path.join(vnc.dir, 'rdp-xev.log');
    const xev = spawn('stdbuf', ['-oL', 'xev', '-root', '-event', 'keyboard'], { env: rdp.env, stdio: ['ignore', openSync(keys, 'w'), 'ignore'] });
    try {
      await new Promise((r) => setTimeout(r, 300));
      d.browser.send(pointerEventMsg(0, 20, 20));
      for (const keysym of [0x72, 0x64]) { // "r", "d"
        d.browser.send(keyEventMsg(true, keysym));
        d.browser.send(keyEventMsg(false, keysym));
      }
      await until(() => /keysym 0x64, d\)/.test(readFileSync(keys, 'utf8')), 'the RDP device to see the keys', 20_000);
    } finally {
      xev.kill();
    }
    // The browser's window changes size: the RDP desktop follows. xrandr resizes the display
    // before the old xfreerdp goes, so the old picture at the new size proves nothing: wait for a
    // new RDP client (the old one gone), then for the device's screen from it.
    const [oldClient] = xfreerdpFor(rdp.port);
    d.browser.send(setDesktopSizeMsg(1024, 700));
    await until(() => {
      const now = xfreerdpFor(rdp.port);
      return now.length === 1 && now[0] !== oldClient;
    }, 'a new xfreerdp in place of the old one', 20_000);
    await until(() => d.browser.fb.width === 1024 && d.browser.fb.height === 696, 'the desktop to take the new size (rounded down to multiples of 8)', 20_000);
    await expect.poll(async () => (await fx.audit('desktop.resized')).filter((e) => (e.data as { session?: string }).session === d.session), { timeout: 20_000 })
      .toEqual([expect.objectContaining({ actor: 'vera', outcome: 'ok', data: expect.objectContaining({ device: 'xr-03', from: { width: 1280, height: 800 }, to: { width: 1024, height: 696 }, result: 'ok' }) })]);
    // The audit entry is written once the new client has painted: the device's screen is there again.
    await until(() => d.browser.fb.rgbAt(10, 10) === RDP_ROOT, 'the device\'s screen at the new size', 20_000);
    expect(xfreerdpFor(rdp.port)).toHaveLength(1);
    const recording = (await fx.gw.runtime.store.getSession(d.session))?.recordingId ?? '';
    // Security kills it; the private display and its RDP client go with the session.
    expect((await securityApi.post(`/api/sessions/${d.session}/kill`, { reason: 'end of test' })).status).toBe(202);
    await d.sock.closed;
    await until(() => xfreerdpFor(rdp.port).length === 0, 'xfreerdp to exit', 20_000);
    const outline = await securityApi.get<{ width: number; height: number; protocol: string }>(`/api/recordings/${recording}/desktop`);
    expect(outline.body).toMatchObject({ width: 1280, height: 800, protocol: 'rdp' });
    const frames = await securityApi.bytes(`/api/recordings/${recording}/desktop/frames?from=999999`);
    const viewer = await TestBrowser.connect(streamOf(frames.body.subarray(8, 8 + frames.body.readUInt32BE(4))));
    await until(() => viewer.updates > 0, 'the replayed end of the session');
    expect([viewer.fb.width, viewer.fb.height]).toEqual([1024, 696]);
    viewer.close();
  }, 120_000);

  it('lets security watch a live RDP desktop: the watcher sees the device\'s screen, and follows a resize', async () => {
    const d = await connect(vendorApi, 'device=xr-03&protocol=rdp&width=1280&height=800');
    await until(() => d.browser.fb.rgbAt(10, 10) === RDP_ROOT, 'the device\'s screen', 20_000);
    const watch = await openBinarySocket(fx.gw.web.port, `/api/sessions/${d.session}/watch`, securityApi);
    open.push(watch);
    const watcher = await TestBrowser.connect(watch.stream);
    await until(() => watcher.updates > 0 && watcher.fb.rgbAt(10, 10) === RDP_ROOT, 'the watcher to see the RDP device\'s screen', 20_000);
    expect([watcher.fb.width, watcher.fb.height]).toEqual([1280, 800]);
    expect(differingPixels(fbRgb(watcher.fb), fbRgb(d.browser.fb))).toBeLessThan(1280 * 800 * 0.01);

    // A window being dragged: 10 sizes within 200 ms are one resize, to the last size (rounded).
    const [oldClient] = xfreerdpFor(rdp.port);
    const answers = (): number => d.browser.messages.filter((m) => m.type === 'update' && m.encodings.includes(ENCODING.extendedDesktopSize)).length;
    const answered = answers();
    for (let i = 0; i < 10; i++) {
      d.browser.send(setDesktopSizeMsg(900 + i * 13, 600 + i * 7));
      await new Promise((r) => setTimeout(r, 15));
    }
    // Each request is answered at once as forwarded, at the size the screen has until the resize
    // (noVNC sends its next SetDesktopSize only after an answer to the last).
    await until(() => answers() - answered >= 10, 'an answer to each SetDesktopSize', 20_000);
    expect([d.browser.fb.width, d.browser.fb.height]).toEqual([1280, 800]);
    await until(() => {
      const now = xfreerdpFor(rdp.port);
      return now.length === 1 && now[0] !== oldClient;
    }, 'a new xfreerdp', 20_000);
    const [newClient] = xfreerdpFor(rdp.port);
    const resized = async (): Promise<unknown[]> => (await fx.audit('desktop.resized')).filter((e) => (e.data as { session?: string }).session === d.session);
    await expect.poll(resized, { timeout: 20_000 }).toHaveLength(1);
    expect(await resized()).toEqual([expect.objectContaining({ outcome: 'ok', data: expect.objectContaining({ from: { width: 1280, height: 800 }, to: { width: 1016, height: 656 } }) })]);
    await until(() => d.browser.fb.width === 1016 && d.browser.fb.height === 656 && d.browser.fb.rgbAt(10, 10) === RDP_ROOT, 'the vendor\'s screen at the last size', 20_000);
    await until(() => watcher.fb.width === 1016 && watcher.fb.height === 656 && watcher.fb.rgbAt(10, 10) === RDP_ROOT, 'the watcher to follow', 20_000);
    // Nothing more follows: no second login on the device.
    await new Promise((r) => setTimeout(r, 2000));
    expect(xfreerdpFor(rdp.port)).toEqual([newClient]);
    expect(await resized()).toHaveLength(1);

    d.browser.close();
    await d.sock.closed;
    await watch.closed;
    await until(() => xfreerdpFor(rdp.port).length === 0, 'xfreerdp to exit', 20_000);
  }, 120_000);

  it('ends an RDP desktop, named and audited, when the device refuses the login a resize needs', async () => {
    const d = await connect(vendorApi, 'device=xr-03&protocol=rdp&width=1280&height=800');
    await until(() => d.browser.fb.rgbAt(10, 10) === RDP_ROOT, 'the device\'s screen', 20_000);
    // The device's password changes under the session: the reconnect at the new size is refused.
    const sam = readFileSync(rdp.samFile);
    const other = spawnSync('winpr-hash', ['-u', rdp.username, '-p', 'Changed-on-the-device-1', '-f', 'sam']);
    expect(other.status).toBe(0);
    writeFileSync(rdp.samFile, other.stdout);
    try {
      d.browser.send(setDesktopSizeMsg(1024, 768));
      await d.sock.closed;
    } finally {
      writeFileSync(rdp.samFile, sam);
    }
    const end = d.sock.controls.find((c) => c.type === 'end') as { code: string; reason: string; message: string };
    expect(end).toMatchObject({ code: 'DEVICE_AUTH_FAILED', reason: 'error' });
    expect(end.message).toMatch(/could not follow the new window size/);
    expect(end.message).not.toContain(rdp.password);
    const failed = (await fx.audit('desktop.resized')).filter((e) => (e.data as { session?: string }).session === d.session);
    expect(failed).toEqual([expect.objectContaining({ outcome: 'denied', code: 'DEVICE_AUTH_FAILED', data: expect.objectContaining({ result: 'failed', to: { width: 1024, height: 768 } }) })]);
    await expect.poll(async () => (await fx.gw.runtime.store.getSession(d.session))?.endReason, { timeout: 30_000 }).toBe('error');
    await until(() => xfreerdpFor(rdp.port).length === 0, 'xfreerdp to exit', 20_000);
  }, 120_000);
});

/** The browser's SetDesktopSize (RFB ExtendedDesktopSize), one screen. */
function setDesktopSizeMsg(width: number, height: number): Buffer {
  const b = Buffer.alloc(24);
  b.writeUInt8(CLIENT_MSG.setDesktopSize, 0);
  b.writeUInt16BE(width, 2);
  b.writeUInt16BE(height, 4);
  b.writeUInt8(1, 6);
  b.writeUInt16BE(width, 16);
  b.writeUInt16BE(height, 18);
  return b;
}

/** The server side of an RFB stream from fixed bytes (a recording's frame); what the client writes is dropped. */
function streamOf(bytes: Buffer): Duplex {
  let given = false;
  return new Duplex({
    read() {
      if (given) return;
      given = true;
      this.push(bytes);
    },
    write(_c, _e, cb) { cb(); },
  });
}

// Issue 7 item 5: the enforcement SSH sessions get, on desktops too, and the RDP path's processes
// gone on every end (wrong password, grant end, revoke, disable, gateway shutdown).
describe('desktop enforcement and clean-up', () => {
  let fx: GatewayFixture;
  let vnc: Xvnc;
  let rdp: RdpDevice;
  const totp = new TotpSource();
  let vendorApi: ApiClient;
  const open: BinarySocket[] = [];
  let n = 0;
  /** The vendor vendorOn made last. */
  let vendor = '';

  async function desktop(device: string, protocol: 'vnc' | 'rdp'): Promise<Desktop & { ended: () => Record<string, unknown> | undefined }> {
    const sock = await openBinarySocket(fx.gw.web.port, `/api/desktop?device=${device}&protocol=${protocol}`, vendorApi);
    open.push(sock);
    const browser = await TestBrowser.connect(sock.stream);
    await sock.waitFor(() => sock.controls.some((c) => c.type === 'status'));
    const session = (sock.controls.find((c) => c.type === 'status') as { session: string }).session;
    return { sock, browser, session, ended: () => sock.controls.find((c) => c.type === 'end') };
  }

  /** A fresh grant (and user, so one test's revoke or disable does not touch the next). */
  async function vendorOn(device: string, protocol: 'vnc' | 'rdp', until = '+1h', fileTransfer = false): Promise<string> {
    vendor = `vic${++n}`;
    const u = await fx.addUser(vendor);
    vendorApi = new ApiClient(fx.gw.web.port);
    await vendorApi.login(u.name, u.password, { code: await totp.code(u.totpSecret) });
    return fx.grant(vendor, device, 'now', until, { protocol, fileTransfer });
  }

  beforeAll(async () => {
    vnc = await startXvnc('800x600');
    rdp = await startRdpDevice();
    fx = await startGatewayFixture('idle_timeout = "4s"\n[desktop]\nmax_rdp_sessions = 1');
    const steps: Array<[string[], string?]> = [
      [['device', 'add', 'vnc-ok', '--host', '127.0.0.1', '--port', String(vnc.port), '--protocol', 'vnc', '--udi', 'UDI-vnc-ok', ...CLASS_OF_LEVEL[1]]],
      [['device', 'credential', 'vnc-ok', '--username', 'vnc', '--password-stdin'], `${VNC_PASSWORD}\n`],
      [['device', 'add', 'vnc-bad', '--host', '127.0.0.1', '--port', String(vnc.port), '--protocol', 'vnc', '--udi', 'UDI-vnc-bad', ...CLASS_OF_LEVEL[1]]],
      [['device', 'credential', 'vnc-bad', '--username', 'vnc', '--password-stdin'], 'not-this\n'],
      [['device', 'add', 'rdp-ok', '--host', '127.0.0.1', '--port', String(rdp.port), '--protocol', 'rdp', '--udi', 'UDI-rdp-ok', ...CLASS_OF_LEVEL[1]]],
      [['device', 'credential', 'rdp-ok', '--username', rdp.username, '--password-stdin'], `${rdp.password}\n`],
      [['device', 'trust', 'rdp-ok']],
      [['device', 'add', 'rdp-bad', '--host', '127.0.0.1', '--port', String(rdp.port), '--protocol', 'rdp', '--udi', 'UDI-rdp-bad', ...CLASS_OF_LEVEL[1]]],
      [['device', 'credential', 'rdp-bad', '--username', rdp.username, '--password-stdin'], 'Wrong-password-1\n'],
      [['device', 'trust', 'rdp-bad']],
    ];
    for (const [args, stdin] of steps) {
      const r = await fx.cli(args, stdin);
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(0);
    }
  }, 120_000);

  afterAll(async () => {
    for (const s of open) s.ws.terminate();
    await fx?.stop();
    await vnc?.stop();
    await rdp?.stop();
  });

  async function refusedWith(device: string, protocol: 'vnc' | 'rdp'): Promise<{ code: string; message: string }> {
    const sock = await openBinarySocket(fx.gw.web.port, `/api/desktop?device=${device}&protocol=${protocol}`, vendorApi);
    await sock.closed;
    return sock.controls.find((c) => c.type === 'end') as { code: string; message: string };
  }

  it('refuses a wrong vaulted password clearly, for VNC and for RDP (NLA), without saying the password', async () => {
    await vendorOn('vnc-bad', 'vnc');
    const v = await refusedWith('vnc-bad', 'vnc');
    expect(v.code).toBe('DEVICE_AUTH_FAILED');
    expect(v.message).toMatch(/credential|password|authenticat/i);
    expect(v.message).not.toContain('not-this');
    await vendorOn('rdp-bad', 'rdp');
    const r = await refusedWith('rdp-bad', 'rdp');
    expect(r.code).toBe('DEVICE_AUTH_FAILED');
    expect(r.message).not.toContain('Wrong-password-1');
    expect(xfreerdpFor(rdp.port)).toEqual([]);
    const audit = (await fx.audit('session.refused')).filter((e) => e.code === 'DEVICE_AUTH_FAILED');
    expect(audit.map((e) => (e.data as { device: string }).device).sort()).toEqual(['rdp-bad', 'vnc-bad']);
    expect(JSON.stringify(audit)).not.toMatch(/not-this|Wrong-password-1/);
  }, 120_000);

  it('closes a desktop nobody touches after the idle limit, and keeps one that is used', async () => {
    await vendorOn('vnc-ok', 'vnc');
    const idle = await desktop('vnc-ok', 'vnc');
    const busy = await desktop('vnc-ok', 'vnc');
    let step = 0;
    const mover = setInterval(() => busy.browser.send(pointerEventMsg(0, 10 + (step++ % 50), 10)), 500);
    try {
      // Two desktops at once per person (desktop.max_per_user): a third is refused and audited.
      const third = await refusedWith('vnc-ok', 'vnc');
      expect(third.code).toBe('DESKTOP_LIMIT');
      await idle.sock.closed;
      expect(idle.ended()).toMatchObject({ reason: 'idle_timeout' });
      expect(busy.ended()).toBeUndefined();
    } finally {
      clearInterval(mover);
    }
    busy.browser.close();
    await busy.sock.closed;
  }, 120_000);

  it('ends a desktop at once when its grant is revoked or its user disabled', async () => {
    const grant = await vendorOn('vnc-ok', 'vnc');
    const a = await desktop('vnc-ok', 'vnc');
    const mover = setInterval(() => a.browser.send(pointerEventMsg(0, 10, 10)), 500);
    expect((await fx.cli(['grant', 'revoke', grant, '--reason', 'work order withdrawn'])).code).toBe(0);
    await a.sock.closed;
    clearInterval(mover);
    expect(a.ended()).toMatchObject({ reason: 'access_revoked' });

    // A session opened under a grant with file transfer (clipboard open) does not live on under
    // a remaining grant without it; one whose remaining grant has the same terms goes on.
    const withTransfer = await vendorOn('vnc-ok', 'vnc', '+1h', true);
    const c = await desktop('vnc-ok', 'vnc');
    const keepAlive = setInterval(() => c.browser.send(pointerEventMsg(0, 12, 12)), 500);
    const sameTerms = await fx.grant(vendor, 'vnc-ok', 'now', '+2h', { protocol: 'vnc', fileTransfer: true });
    const narrower = await fx.grant(vendor, 'vnc-ok', 'now', '+3h', { protocol: 'vnc' });
    expect((await fx.cli(['grant', 'revoke', withTransfer])).code).toBe(0);
    await new Promise((r) => setTimeout(r, 1500));
    expect(c.ended()).toBeUndefined();
    expect((await fx.cli(['grant', 'revoke', sameTerms])).code).toBe(0);
    await c.sock.closed;
    clearInterval(keepAlive);
    expect(c.ended()).toMatchObject({ reason: 'access_revoked' });
    expect(String(c.ended()?.message)).toMatch(/no longer applies/);
    void narrower;

    await vendorOn('vnc-ok', 'vnc');
    const b = await desktop('vnc-ok', 'vnc');
    // In use while the CLI runs (it can take longer than the 4 s idle limit on a loaded machine,
    // and an idle desktop would end for that reason first).
    const inUse = setInterval(() => b.browser.send(pointerEventMsg(0, 14, 14)), 500);
    try {
      expect((await fx.cli(['user', 'disable', vendor])).code).toBe(0);
      await b.sock.closed;
    } finally {
      clearInterval(inUse);
    }
    expect(b.ended()).toMatchObject({ reason: 'access_revoked' });
  }, 120_000);

  it('ends an RDP desktop at its grant\'s end and leaves no RDP client; a gateway shutdown does the same', async () => {
    // A window long enough to open this desktop and be refused a second one on a loaded machine
    // first: the refusal needs this desktop still running.
    await vendorOn('rdp-ok', 'rdp', '+30s');
    const d = await desktop('rdp-ok', 'rdp');
    const mover = setInterval(() => d.browser.send(pointerEventMsg(0, 10, 10)), 500);
    expect(xfreerdpFor(rdp.port)).toHaveLength(1);
    // This node runs one RDP desktop at most (desktop.max_rdp_sessions = 1): the next person waits.
    const first = vendorApi;
    await vendorOn('rdp-ok', 'rdp');
    expect((await refusedWith('rdp-ok', 'rdp')).code).toBe('DESKTOP_CAPACITY');
    expect(xfreerdpFor(rdp.port)).toHaveLength(1);
    vendorApi = first;
    await d.sock.closed;
    clearInterval(mover);
    expect(d.ended()).toMatchObject({ code: 'GRANT_EXPIRED', reason: 'grant_ended' });
    await until(() => xfreerdpFor(rdp.port).length === 0, 'xfreerdp to exit after the grant ended', 20_000);

    await vendorOn('rdp-ok', 'rdp');
    const e = await desktop('rdp-ok', 'rdp');
    const inUse = setInterval(() => e.browser.send(pointerEventMsg(0, 10, 10)), 500);
    expect(xfreerdpFor(rdp.port)).toHaveLength(1);
    try {
      await fx.gw.stop();
      await e.sock.closed;
    } finally {
      clearInterval(inUse);
    }
    expect(e.ended()).toMatchObject({ reason: 'gateway_shutdown' });
    expect(xfreerdpFor(rdp.port)).toEqual([]);
  }, 120_000);
});
