/**
 * `npm run bench` (desktop part, VNC): a busy 1280×800 screen on a real TigerVNC server (an
 * animation, a clock, text changing twice a second, grey-scale "slices" stepping like an image
 * viewer's), read directly from Xvnc and through the gateway's RfbProxy with recording on, in the
 * same run:
 *   - bytes/s and updates/s per encoding directly from Xvnc (Raw, Hextile with the gateway's
 *     encoding list, ZRLE, Tight lossless, Tight JPEG) against the gateway with noVNC's list, all
 *     with a viewer capped at 10 updates/s, and again uncapped (the gateway against the same
 *     encodings directly);
 *   - the recording: bytes on disk per minute, keyframes, and the time to seek to just before
 *     each keyframe (the worst place) and decode to the exact time;
 *   - the gateway's memory per VNC session: RSS and heap+external delta over N live sessions.
 * The viewers run in a child process (this file, forked), so the gateway, which runs in this
 * process, is not measured with them. Figures are printed, with ratios against the direct peer;
 * there is no pass/fail here, and only a broken set-up exits non-zero.
 *
 * Knobs (environment): BENCH_VNC_SECONDS (5, per measurement), BENCH_VNC_SESSIONS (8, for memory).
 */
import { fork, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import v8 from 'node:v8';
import { runInNewContext } from 'node:vm';
import { deflateRawSync } from 'node:zlib';
import { Framebuffer } from '../../gateway/desktop/framebuffer.js';
import { connectRfb } from '../../gateway/desktop/rfb-client.js';
import { serverMessage, type Parser, type ScreenSize, type ServerMessage } from '../../gateway/desktop/rfb-messages.js';
import { ENCODING, setEncodingsMsg, setPixelFormatMsg, updateRequestMsg } from '../../gateway/desktop/rfb-wire.js';
import { RGBX32 } from '../../recordings/rfb-keyframe.js';
import { RfbRecordingReader } from '../../recordings/rfb-reader.js';
import { NOVNC_ENCODINGS, startRecordedVncGateway, startXvnc, TestBrowser, until, VNC_PASSWORD, type RecordedVncGateway, type Xvnc } from '../support/desktop-peers.js';
import { fmt, median, ratio, table } from './bench-lib.js';

const envNum = (name: string, dflt: number): number => {
  const v = Number(process.env[name]);
  return Number.isFinite(v) && v > 0 ? v : dflt;
};
const SECONDS = envNum('BENCH_VNC_SECONDS', 5);
const SESSIONS = Math.round(envNum('BENCH_VNC_SESSIONS', 8));
const WARM_MS = 1000;
const CAP_MS = 100;
const ROLE_ENV = 'PORTCULLIS_BENCH_DESKTOP_ROLE';
/** What RfbProxy passes on to the device from noVNC's list (vnc-proxy.test.ts asserts it): Hextile and its pseudo-encodings. */
const GATEWAY_ENCODINGS = [1, 5, 2, 0, -223, -224, -258, -312, -313, -307, -239];
const KiB = 1024;
const MiB = 1024 * 1024;

// ---------------------------------------------------------------------------------------------
// The viewers' side (the child process): RFB clients opened, measured and closed on request.

type ToViewers =
  | { op: 'open'; port: number; password: string | null; encodings: number[]; countOnly: boolean; minIntervalMs: number }
  | { op: 'mark'; id: number }
  | { op: 'stats'; id: number }
  | { op: 'close'; id: number };
type Request = ToViewers & { re: number };
type Reply = { re: number; ok: true; value: unknown } | { re: number; ok: false; error: string };

interface WindowStats {
  bytes: number;
  updates: number;
  ms: number;
  /** The same bytes after one DEFLATE stream at level 1: about what the disk or permessage-deflate gets. */
  deflated: number;
}

function serveViewers(): void {
  const viewers = new Map<number, { browser: TestBrowser; bytes: number; chunks: Buffer[] | null; mark: { bytes: number; updates: number; at: number } }>();
  let nextId = 0;
  const handle = async (m: ToViewers): Promise<unknown> => {
    if (m.op === 'open') {
      const conn = await connectRfb({ target: { host: '127.0.0.1', port: m.port }, password: m.password, timeoutMs: 5000 });
      const browser = new TestBrowser(conn, m.countOnly ? measuredMessage : undefined);
      const v = { browser, bytes: 0, chunks: null as Buffer[] | null, mark: { bytes: 0, updates: 0, at: performance.now() } };
      conn.socket.on('data', (c: Buffer) => {
        v.bytes += c.length;
        v.chunks?.push(c);
      });
      browser.minIntervalMs = m.minIntervalMs;
      browser.send(setPixelFormatMsg(RGBX32));
      browser.send(setEncodingsMsg(m.encodings));
      browser.send(updateRequestMsg(false, 0, 0, browser.fb.width, browser.fb.height));
      const id = ++nextId;
      viewers.set(id, v);
      await until(() => browser.updates > 0, 'the first update', 10_000);
      return id;
    }
    const v = viewers.get(m.id);
    if (!v) throw new Error(`no viewer ${m.id}`);
    if (m.op === 'mark') {
      v.mark = { bytes: v.bytes, updates: v.browser.updates, at: performance.now() };
      v.chunks = [];
      return null;
    }
    if (m.op === 'stats') {
      const all = Buffer.concat(v.chunks ?? []);
      v.chunks = null;
      const s: WindowStats = { bytes: v.bytes - v.mark.bytes, updates: v.browser.updates - v.mark.updates, ms: performance.now() - v.mark.at, deflated: deflateRawSync(all, { level: 1 }).length };
      return s;
    }
    viewers.delete(m.id);
    v.browser.close();
    await v.browser.closed;
    return null;
  };
  process.on('message', (m: Request) => {
    handle(m).then(
      (value) => process.send?.({ re: m.re, ok: true, value } satisfies Reply),
      (err: unknown) => process.send?.({ re: m.re, ok: false, error: err instanceof Error ? err.message : String(err) } satisfies Reply),
    );
  });
  // Nothing outlives the bench: the viewers go when it does.
  process.once('disconnect', () => process.exit(0));
}

/**
 * Message boundaries for the encodings the gateway does not negotiate (ZRLE, Tight), only to
 * count their bytes; Hextile, RRE and CopyRect as the gateway parses them.
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
      // The gateway's own parser for one rectangle, wrapped as a one-rectangle update.
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

// ---------------------------------------------------------------------------------------------
// The gateway's side (this process).

class Viewers {
  private readonly child: ChildProcess;
  private seq = 0;
  private readonly waiting = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  private gone: Error | null = null;
  private readonly exited: Promise<void>;

  constructor() {
    this.child = fork(fileURLToPath(import.meta.url), [], { env: { ...process.env, [ROLE_ENV]: 'viewers' }, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    this.child.on('message', (m: Reply) => {
      const w = this.waiting.get(m.re);
      this.waiting.delete(m.re);
      if (m.ok) w?.resolve(m.value);
      else w?.reject(new Error(`viewer: ${m.error}`));
    });
    this.exited = new Promise((resolve) => this.child.once('exit', (code, signal) => {
      this.gone = new Error(`the viewers' process exited (${signal ?? code})`);
      for (const w of this.waiting.values()) w.reject(this.gone);
      this.waiting.clear();
      resolve();
    }));
  }

  private call<T>(m: ToViewers): Promise<T> {
    if (this.gone) return Promise.reject(this.gone);
    const re = ++this.seq;
    return new Promise<T>((resolve, reject) => {
      this.waiting.set(re, { resolve: resolve as (v: unknown) => void, reject });
      this.child.send({ ...m, re } satisfies Request);
    });
  }

  open(port: number, password: string | null, encodings: number[], opts: { countOnly?: boolean; minIntervalMs: number }): Promise<number> {
    return this.call({ op: 'open', port, password, encodings, countOnly: opts.countOnly ?? false, minIntervalMs: opts.minIntervalMs });
  }

  mark(id: number): Promise<void> {
    return this.call({ op: 'mark', id });
  }

  stats(id: number): Promise<WindowStats> {
    return this.call({ op: 'stats', id });
  }

  close(id: number): Promise<void> {
    return this.call({ op: 'close', id });
  }

  async stop(): Promise<void> {
    if (!this.gone) this.child.kill('SIGTERM');
    await this.exited;
  }
}

// GC on demand, so heap figures are what is live, not what is waiting for collection.
v8.setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

let x: Xvnc | null = null;
let viewers: Viewers | null = null;
let recDir: string | null = null;
const screenClients: ChildProcess[] = [];
const liveGateways = new Set<RecordedVncGateway>();
let cleaning: Promise<void> | null = null;

/** Stops the viewers, every gateway session, the screen's clients and Xvnc; safe to call more than once. */
function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    await viewers?.stop();
    for (const g of liveGateways) await g.abandon().catch(() => undefined);
    for (const c of screenClients) {
      if (c.pid !== undefined && c.exitCode === null && c.signalCode === null) {
        try { process.kill(-c.pid, 'SIGKILL'); } catch { /* gone */ }
      }
    }
    await x?.stop();
    if (recDir) rmSync(recDir, { recursive: true, force: true });
  })();
  return cleaning;
}

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
    for (let xx = 0; xx < w; xx++) {
      rnd = (rnd * 1103515245 + 12345) & 0x7fffffff;
      const d = Math.hypot(xx - w / 2, y - h / 2);
      const v = Math.max(0, Math.min(255, Math.round(128 + 90 * Math.sin(d / (6 + seed)) * Math.exp(-d / 300) + ((rnd >> 16) % 24) - 12)));
      px.writeUInt32LE((v << 16) | (v << 8) | v, (y * w + xx) * 4);
    }
  }
  return Buffer.concat([header, name, px]);
}

/** The busy screen. Each client leads its own process group, so a shell loop goes with its children. */
function startScreenClients(xv: Xvnc): void {
  const start = (cmd: string, args: string[]): void => {
    const c = spawn(cmd, args, { env: xv.env, stdio: 'ignore', detached: true });
    c.once('error', (err) => console.error(`${cmd}: ${err.message}`));
    screenClients.push(c);
  };
  start('xsetroot', ['-solid', '#202830']);
  start('ico', ['-geometry', '500x500+20+20', '-sleep', '0.04', '-lw', '3']); // wire frame: -faces needs a colour map
  start('xclock', ['-geometry', '200x200+1040+20', '-update', '1']);
  start('sh', ['-c', 'while true; do xmessage -geometry +20+560 "$(date; ls -l /usr/bin | shuf -n 10)" & p=$!; sleep 0.5; kill $p; done']);
  start('sh', ['-c', slideShow(xv.dir)]);
}

interface Measured extends WindowStats {
  label: string;
  encodings: string;
}

/** One viewer directly on Xvnc: warm up, then one measured window. */
async function measureDirect(xv: Xvnc, v: Viewers, label: string, encodingsLabel: string, encodings: number[], opts: { countOnly: boolean; minIntervalMs: number }): Promise<Measured> {
  const id = await v.open(xv.port, VNC_PASSWORD, encodings, opts);
  try {
    await sleep(WARM_MS);
    await v.mark(id);
    await sleep(SECONDS * 1000);
    return { label, encodings: encodingsLabel, ...(await v.stats(id)) };
  } finally {
    await v.close(id);
  }
}

interface RecordingFigures {
  label: string;
  seconds: number;
  bytesPerMinute: number;
  /** Recording size against the bytes the browser was sent. */
  diskPerWire: number;
  keyframes: number;
  seekMedianMs: number;
  seekWorstMs: number;
}

/** Seeks to just before each keyframe (and to the end), decoding to the exact time: the longest a player waits. */
async function recordingFigures(label: string, file: string, wireBytes: number): Promise<RecordingFigures> {
  const size = statSync(file).size;
  const r = await RfbRecordingReader.open(file);
  try {
    const seeks: number[] = [];
    for (const k of [...r.keyframes.slice(1), { micros: r.durationMicros + 1 }]) {
      const t0 = performance.now();
      const seek = await r.seek((k.micros - 1) / 1000);
      const fb = Framebuffer.fromKeyframe(seek.keyframe);
      for (const m of seek.messages) fb.apply(m);
      seeks.push(performance.now() - t0);
    }
    const seconds = r.durationMs / 1000;
    return { label, seconds, bytesPerMinute: (size / seconds) * 60, diskPerWire: size / wireBytes, keyframes: r.keyframes.length, seekMedianMs: median(seeks), seekWorstMs: Math.max(...seeks) };
  } finally {
    await r.close();
  }
}

/** One viewer through the gateway with recording on, noVNC's encodings: one measured window, then the recording. */
async function measureGateway(xv: Xvnc, v: Viewers, dir: string, label: string, minIntervalMs: number): Promise<{ m: Measured; rec: RecordingFigures; cpuMsPerS: number }> {
  const g = await startRecordedVncGateway(xv, dir);
  liveGateways.add(g);
  const id = await v.open(g.port, null, NOVNC_ENCODINGS, { minIntervalMs });
  const proxy = await g.proxy;
  liveGateways.delete(g);
  let m: Measured;
  let cpuMsPerS: number;
  try {
    await sleep(WARM_MS);
    await v.mark(id);
    const cpu0 = process.cpuUsage();
    await sleep(SECONDS * 1000);
    const cpu = process.cpuUsage(cpu0);
    m = { label, encodings: 'noVNC\'s list → Hextile', ...(await v.stats(id)) };
    cpuMsPerS = (cpu.user + cpu.system) / 1000 / (m.ms / 1000);
  } finally {
    await v.close(id);
    await g.ended;
    await g.recorder.close();
  }
  return { m, rec: await recordingFigures(label, g.file, proxy.bytesOut), cpuMsPerS };
}

interface MemoryFigures {
  rssPerSession: number;
  heapPerSession: number;
  peakRssPerSession: number;
}

/**
 * N live recorded sessions through the gateway (viewers capped at 10 updates/s), measured in this
 * process after a GC: what N sessions add over the same process with none.
 */
async function measureMemory(xv: Xvnc, v: Viewers, dir: string): Promise<MemoryFigures> {
  const open = async (): Promise<{ g: RecordedVncGateway; id: number }> => {
    const g = await startRecordedVncGateway(xv, dir);
    liveGateways.add(g);
    const id = await v.open(g.port, null, NOVNC_ENCODINGS, { minIntervalMs: CAP_MS });
    await g.proxy;
    liveGateways.delete(g);
    return { g, id };
  };
  const close = async (s: { g: RecordedVncGateway; id: number }): Promise<void> => {
    await v.close(s.id);
    await s.g.ended;
    await s.g.recorder.close();
  };
  // One session first, so code loaded and compiled on first use is not counted per session.
  await close(await open().then(async (s) => { await sleep(WARM_MS); return s; }));
  gc();
  const before = process.memoryUsage();
  let peak = before.rss;
  const sampler = setInterval(() => { peak = Math.max(peak, process.memoryUsage().rss); }, 50);
  const sessions: Array<{ g: RecordedVncGateway; id: number }> = [];
  try {
    for (let i = 0; i < SESSIONS; i++) sessions.push(await open());
    await sleep(Math.max(SECONDS * 1000, 3000));
    gc();
    const live = process.memoryUsage();
    return {
      rssPerSession: (live.rss - before.rss) / SESSIONS,
      heapPerSession: (live.heapUsed + live.external - before.heapUsed - before.external) / SESSIONS,
      peakRssPerSession: (peak - before.rss) / SESSIONS,
    };
  } finally {
    clearInterval(sampler);
    for (const s of sessions) await close(s);
  }
}

async function main(): Promise<void> {
  recDir = mkdtempSync(path.join(os.tmpdir(), 'pc-bench-desktop-'));
  x = await startXvnc('1280x800');
  startScreenClients(x);
  viewers = new Viewers();
  await sleep(1500);

  // Memory first, before the bandwidth runs have grown the heap and the allocator's free lists.
  const mem = await measureMemory(x, viewers, recDir);

  const capped = { minIntervalMs: CAP_MS };
  const direct: Measured[] = [];
  direct.push(await measureDirect(x, viewers, 'direct', 'Raw', [0], { countOnly: true, ...capped }));
  const hextile = await measureDirect(x, viewers, 'direct', 'Hextile (the gateway\'s list)', GATEWAY_ENCODINGS, { countOnly: false, ...capped });
  direct.push(hextile);
  const zrle = await measureDirect(x, viewers, 'direct', 'ZRLE', [1, 16, 0], { countOnly: true, ...capped });
  direct.push(zrle);
  direct.push(await measureDirect(x, viewers, 'direct', 'Tight lossless', [1, 7, 0, -256 + 6], { countOnly: true, ...capped }));
  direct.push(await measureDirect(x, viewers, 'direct', 'Tight JPEG q6', [1, 7, 0, -256 + 6, -32 + 6], { countOnly: true, ...capped }));
  const gwCapped = await measureGateway(x, viewers, recDir, 'capped at 10/s', CAP_MS);

  const directFree = await measureDirect(x, viewers, 'direct', 'Hextile (the gateway\'s list)', GATEWAY_ENCODINGS, { countOnly: false, minIntervalMs: 0 });
  const gwFree = await measureGateway(x, viewers, recDir, 'uncapped', 0);

  const perS = (m: WindowStats, n: number): number => n / (m.ms / 1000);
  const kibps = (m: WindowStats): string => fmt(perS(m, m.bytes) / KiB);
  const ups = (m: WindowStats): string => fmt(perS(m, m.updates), 1);
  const dkibps = (m: WindowStats): string => fmt(perS(m, m.deflated) / KiB);
  const g = gwCapped.m;

  console.log(`\nVNC, busy 1280×800 TigerVNC screen, viewer capped at 10 updates/s, ${SECONDS} s per row`);
  console.log('(after DEFLATE: one level-1 stream over the bytes, about what the disk or permessage-deflate gets)\n');
  console.log(table([
    ['path', 'encodings', 'KiB/s', 'updates/s', 'KiB/s after DEFLATE', 'gateway ÷ this (bytes)', 'gateway ÷ this (after DEFLATE)'],
    ...direct.map((d) => [d.label, d.encodings, kibps(d), ups(d), dkibps(d), ratio(perS(g, g.bytes), perS(d, d.bytes)), ratio(perS(g, g.deflated), perS(d, d.deflated))]),
    ['gateway, recording on', g.encodings, kibps(g), ups(g), dkibps(g), '', ''],
  ], 2));
  console.log(`\ngateway ÷ direct ZRLE: ${ratio(perS(g, g.bytes), perS(zrle, zrle.bytes))} bytes/s, ${ratio(perS(g, g.deflated), perS(zrle, zrle.deflated))} after DEFLATE; `
    + `gateway ÷ direct same encodings: ${ratio(perS(g, g.bytes), perS(hextile, hextile.bytes))} bytes/s, ${ratio(perS(g, g.updates), perS(hextile, hextile.updates))} updates/s`);

  const f = gwFree.m;
  console.log(`\nVNC uncapped (the viewer asks again at once, as noVNC does), ${SECONDS} s each\n`);
  console.log(table([
    ['path', 'encodings', 'updates/s', 'KiB/s', 'gateway CPU ms/s'],
    ['direct', directFree.encodings, ups(directFree), kibps(directFree), ''],
    ['gateway, recording on', f.encodings, ups(f), kibps(f), fmt(gwFree.cpuMsPerS)],
    ['gateway ÷ direct', '', ratio(perS(f, f.updates), perS(directFree, directFree.updates)), ratio(perS(f, f.bytes), perS(directFree, directFree.bytes)), ''],
  ], 2));

  console.log('\nRecordings (.pcrfb, DEFLATE; seek = to just before a keyframe, decoded to the exact time)\n');
  console.log(table([
    ['session', 'length s', 'MiB per minute', 'disk ÷ bytes to browser', 'keyframes', 'seek median ms', 'seek worst ms'],
    ...[gwCapped.rec, gwFree.rec].map((r) => [r.label, fmt(r.seconds, 1), fmt(r.bytesPerMinute / MiB, 1), ratio(r.diskPerWire, 1), String(r.keyframes), fmt(r.seekMedianMs, 1), fmt(r.seekWorstMs, 1)]),
  ]));

  console.log(`\nGateway memory per VNC session (1280×800, recording on, ${SESSIONS} live sessions capped at 10 updates/s, after GC; the viewers run in another process)\n`);
  console.log(table([
    ['', 'MiB per session'],
    ['RSS', fmt(mem.rssPerSession / MiB, 1)],
    ['peak RSS', fmt(mem.peakRssPerSession / MiB, 1)],
    ['heap + external', fmt(mem.heapPerSession / MiB, 1)],
  ]));
}

if (process.env[ROLE_ENV] === 'viewers') {
  serveViewers();
} else {
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      console.error(`\n${sig}: stopping`);
      void cleanup().finally(() => process.exit(130));
    });
  }
  let code = 0;
  try {
    await main();
  } catch (err) {
    console.error(`desktop bench failed: ${err instanceof Error ? err.stack ?? err.message : String(err)}`);
    code = 1;
  } finally {
    await cleanup();
  }
  process.exit(code);
}
