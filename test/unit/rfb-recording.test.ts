import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Framebuffer } from '../../gateway/desktop/framebuffer.js';
import { sha256File } from '../../gateway/verify.js';
import { RFB_BLOCK_HEADER_BYTES } from '../../recordings/rfb-format.js';
import { RGBX32, serverHandshake, type Keyframe } from '../../recordings/rfb-keyframe.js';
import { RfbRecordingReader, type RfbRecordedFrame } from '../../recordings/rfb-reader.js';
import { RfbRecordingWriter } from '../../recordings/rfb-writer.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'pc-rfbfmt-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const HOUR = 3600 * 1_000_000;
const IDLE_FROM = 20 * 60 * 1_000_000;
const IDLE_TO = 25 * 60 * 1_000_000;

function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Builds FramebufferUpdate messages in every encoding the gateway decodes, the way a server would. */
class UpdateBuilder {
  private rects: Buffer[] = [];
  private count = 0;
  constructor(private readonly rnd: () => number) {}

  private header(x: number, y: number, w: number, h: number, enc: number): Buffer {
    const b = Buffer.alloc(12);
    b.writeUInt16BE(x, 0);
    b.writeUInt16BE(y, 2);
    b.writeUInt16BE(w, 4);
    b.writeUInt16BE(h, 6);
    b.writeInt32BE(enc, 8);
    return b;
  }

  private colour(): number {
    return Math.floor(this.rnd() * 0x1000000);
  }

  private px(v: number): Buffer {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(v, 0);
    return b;
  }

  raw(x: number, y: number, w: number, h: number, noise: number): this {
    const data = Buffer.alloc(w * h * 4);
    const base = this.colour();
    for (let i = 0; i < w * h; i++) data.writeUInt32LE(this.rnd() < noise ? this.colour() : (base + ((i % w) >> 3)) & 0xffffff, i * 4);
    this.rects.push(this.header(x, y, w, h, 0), data);
    this.count++;
    return this;
  }

  rre(x: number, y: number, w: number, h: number): this {
    const n = Math.floor(this.rnd() * 6);
    const head = Buffer.alloc(8);
    head.writeUInt32BE(n, 0);
    head.writeUInt32LE(this.colour(), 4);
    const subs: Buffer[] = [];
    for (let i = 0; i < n; i++) {
      const sw = 1 + Math.floor(this.rnd() * w);
      const sh = 1 + Math.floor(this.rnd() * h);
      const s = Buffer.alloc(12);
      s.writeUInt32LE(this.colour(), 0);
      s.writeUInt16BE(Math.floor(this.rnd() * (w - sw + 1)), 4);
      s.writeUInt16BE(Math.floor(this.rnd() * (h - sh + 1)), 6);
      s.writeUInt16BE(sw, 8);
      s.writeUInt16BE(sh, 10);
      subs.push(s);
    }
    this.rects.push(this.header(x, y, w, h, 2), head, ...subs);
    this.count++;
    return this;
  }

  hextile(x: number, y: number, w: number, h: number): this {
    const parts: Buffer[] = [this.header(x, y, w, h, 5)];
    for (let ty = y; ty < y + h; ty += 16) {
      for (let tx = x; tx < x + w; tx += 16) {
        const tw = Math.min(16, x + w - tx);
        const th = Math.min(16, y + h - ty);
        const kind = this.rnd();
        if (kind < 0.15) {
          const data = Buffer.alloc(tw * th * 4);
          for (let i = 0; i < tw * th; i++) data.writeUInt32LE(this.colour(), i * 4);
          parts.push(Buffer.from([1]), data);
        } else if (kind < 0.4) {
          parts.push(Buffer.from([2]), this.px(this.colour()));
        } else if (kind < 0.5) {
          parts.push(Buffer.from([0])); // same background as the tile before
        } else {
          const coloured = kind > 0.75;
          const n = 1 + Math.floor(this.rnd() * 8);
          const subBufs: Buffer[] = [];
          for (let i = 0; i < n; i++) {
            const sw = 1 + Math.floor(this.rnd() * tw);
            const sh = 1 + Math.floor(this.rnd() * th);
            const sx = Math.floor(this.rnd() * (tw - sw + 1));
            const sy = Math.floor(this.rnd() * (th - sh + 1));
            if (coloured) subBufs.push(this.px(this.colour()));
            subBufs.push(Buffer.from([(sx << 4) | sy, ((sw - 1) << 4) | (sh - 1)]));
          }
          parts.push(Buffer.from([coloured ? 2 | 8 | 16 : 2 | 4 | 8]), this.px(this.colour()));
          if (!coloured) parts.push(this.px(this.colour()));
          parts.push(Buffer.from([n]), ...subBufs);
        }
      }
    }
    this.rects.push(...parts);
    this.count++;
    return this;
  }

  copy(sx: number, sy: number, dx: number, dy: number, w: number, h: number): this {
    const src = Buffer.alloc(4);
    src.writeUInt16BE(sx, 0);
    src.writeUInt16BE(sy, 2);
    this.rects.push(this.header(dx, dy, w, h, 1), src);
    this.count++;
    return this;
  }

  cursor(w: number, h: number): this {
    const pixels = Buffer.alloc(w * h * 4, 0x7f);
    const mask = Buffer.alloc(((w + 7) >> 3) * h, 0xaa);
    this.rects.push(this.header(2, 3, w, h, -239), pixels, mask);
    this.count++;
    return this;
  }

  desktopSize(w: number, h: number): this {
    this.rects.push(this.header(0, 0, w, h, -223));
    this.count++;
    return this;
  }

  build(): Buffer {
    const head = Buffer.alloc(4);
    head.writeUInt16BE(this.count, 2);
    return Buffer.concat([head, ...this.rects]);
  }
}

function keyMsg(down: boolean, keysym: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeUInt8(4, 0);
  b.writeUInt8(down ? 1 : 0, 1);
  b.writeUInt32BE(keysym, 4);
  return b;
}

function pointerMsg(x: number, y: number): Buffer {
  const b = Buffer.alloc(6);
  b.writeUInt8(5, 0);
  b.writeUInt16BE(x, 2);
  b.writeUInt16BE(y, 4);
  return b;
}

/** Replays output frames into a framebuffer, as a fresh player would. */
function replay(keyframe: Keyframe, outputs: Buffer[]): Framebuffer {
  const fb = Framebuffer.fromKeyframe(keyframe);
  for (const m of outputs) fb.apply(m);
  return fb;
}

function sameScreen(a: Framebuffer, b: Framebuffer): boolean {
  return a.width === b.width && a.height === b.height && Buffer.from(a.pixels).equals(Buffer.from(b.pixels));
}

const HANDSHAKE_BYTES = serverHandshake(1024, 768, 'synthetic').length;

// Issue 7, recording: a one-hour desktop session, written fast with a fake clock (times are data).
describe('the .pcrfb desktop recording: keyframes, index, seek, crash recovery', () => {
  const file = path.join(dir, 'hour.pcrfb');
  const targets = [0, 0.5, 61.2, 599.9, 1199.99, 1320, 1800.5, 2711, 3333.3, 3600].map((s) => Math.round(s * 1_000_000));
  let writeMs = 0;
  let sealed: { size: number; sha256: string };
  let outputBytes = 0;

  beforeAll(async () => {
    const t0 = performance.now();
    let now = 0;
    const w = await RfbRecordingWriter.create(file, {
      format: 'pcrfb', version: 1, recordingId: 'hour', sessionId: 'hour', user: 'vendor', device: 'ct-01', protocol: 'vnc',
      startedAt: Date.parse('2025-01-01T08:00:00Z'), width: 1024, height: 768, pixelFormat: RGBX32, name: 'synthetic',
    }, { flushIntervalMs: 1000, compression: 'deflate', clock: () => now });
    const rnd = prng(7);
    const fb = new Framebuffer(1024, 768, 'synthetic');
    const write = async (ok: boolean): Promise<void> => {
      if (!ok) await once(w, 'drain');
    };
    // As the proxy does: the handshake, a first keyframe, then messages with keyframes between them.
    await write(w.output(serverHandshake(1024, 768, 'synthetic')));
    await write(w.keyframe(fb.keyframe()));
    const bursts = [300, 900, 1500, 2400, 3000];
    let resized = false;
    while (now < HOUR) {
      now += Math.round((0.05 + rnd() * 1.9) * 1_000_000);
      if (now >= IDLE_FROM && now < IDLE_TO) now = IDLE_TO + Math.round(rnd() * 1000);
      if (now > HOUR) now = HOUR;
      const b = new UpdateBuilder(rnd);
      const sec = Math.floor(now / 1_000_000);
      const W = fb.width;
      const H = fb.height;
      if (!resized && now > 45 * 60 * 1_000_000) {
        b.desktopSize(1280, 720);
        resized = true;
      } else if (bursts.length > 0 && sec >= (bursts[0] as number)) {
        b.raw(0, 0, W, H, 0.02); // a full-screen repaint
        bursts.shift();
      } else {
        const n = 1 + Math.floor(rnd() * 4);
        for (let i = 0; i < n; i++) {
          const kind = rnd();
          const rw = 16 + Math.floor(rnd() * 150);
          const rh = 16 + Math.floor(rnd() * 110);
          const x = Math.floor(rnd() * (W - rw));
          const y = Math.floor(rnd() * (H - rh));
          if (kind < 0.4) b.hextile(x, y, rw, rh);
          else if (kind < 0.6) b.rre(x, y, rw, rh);
          else if (kind < 0.75) b.raw(x, y, Math.min(rw, 64), Math.min(rh, 48), 0.3);
          else if (kind < 0.97) b.copy(x, y, Math.floor(rnd() * (W - rw)), Math.floor(rnd() * (H - rh)), rw, rh);
          else b.cursor(12 + Math.floor(rnd() * 20), 12 + Math.floor(rnd() * 20));
        }
      }
      const msg = b.build();
      fb.apply(msg);
      outputBytes += msg.length;
      await write(w.output(msg));
      if (w.keyframeDue()) await write(w.keyframe(fb.keyframe()));
      if (rnd() < 0.5) {
        await write(w.input(pointerMsg(Math.floor(rnd() * 1024), Math.floor(rnd() * 720))));
        const k = 0x61 + Math.floor(rnd() * 26);
        await write(w.input(keyMsg(true, k)));
        await write(w.input(keyMsg(false, k)));
      }
      if (now === HOUR) break;
    }
    w.event({ end: 'client_closed' });
    sealed = await w.close();
    writeMs = performance.now() - t0;
  }, 120_000);

  it('is sealed like the SSH recordings: size and SHA-256 of the whole file', async () => {
    expect(sealed.size).toBe(statSync(file).size);
    expect(sealed.sha256).toBe(await sha256File(file));
    const r = await RfbRecordingReader.open(file);
    expect(r.indexed).toBe(true);
    expect(r.header).toMatchObject({ format: 'pcrfb', protocol: 'vnc', width: 1024, height: 768, pixelFormat: RGBX32 });
    expect(r.durationMicros).toBe(HOUR);
    console.log(`[measure] one synthetic hour: ${(outputBytes / 1048576).toFixed(1)} MiB of RFB output written in ${writeMs.toFixed(0)} ms; file ${(sealed.size / 1048576).toFixed(1)} MiB with ${r.keyframes.length} keyframes`);
    await r.close();
  });

  it('seeks to any point from the nearest keyframe, giving the same screen as replaying from the start', async () => {
    // The reference: every output frame from the first byte, as a player starting at 0 would.
    const r = await RfbRecordingReader.open(file);
    const reference = new Map<number, Framebuffer>();
    const fb = new Framebuffer(1024, 768);
    let i = 0;
    let skip = HANDSHAKE_BYTES;
    const sorted = [...targets].sort((a, b) => a - b);
    const snapshot = (): Framebuffer => {
      const c = new Framebuffer(fb.width, fb.height);
      c.pixels.set(fb.pixels);
      return c;
    };
    for await (const f of r.frames(0)) {
      while (i < sorted.length && f.micros > (sorted[i] as number)) reference.set(sorted[i++] as number, snapshot());
      if (f.type !== 'output') continue;
      if (skip > 0) { // the handshake is not an update
        skip -= f.data.length;
        continue;
      }
      fb.apply(f.data);
    }
    while (i < sorted.length) reference.set(sorted[i++] as number, snapshot());
    await r.close();

    for (const t of targets) {
      const t0 = performance.now();
      const reader = await RfbRecordingReader.open(file);
      const s = await reader.seek(t / 1000);
      const ms = performance.now() - t0;
      const got = replay(s.keyframe, s.messages);
      console.log(`[measure] seek to ${(t / 1e6).toFixed(2)} s: ${ms.toFixed(1)} ms (open + index + keyframe at ${(s.keyframeMicros / 1e6).toFixed(1)} s + ${s.messages.length} messages, ${(s.messages.reduce((n, m) => n + m.length, 0) / 1024).toFixed(0)} KiB)`);
      expect(sameScreen(got, reference.get(t) as Framebuffer), `screen at ${t / 1e6} s`).toBe(true);
      // What a player must decode after the keyframe is bounded by bytes (keyframeEveryBytes and
      // the message that crossed it), not by how long the session was idle.
      expect(s.messages.reduce((n, m) => n + m.length, 0)).toBeLessThan(8 * 1024 * 1024);
      // The keyframe as RFB bytes is what a fresh noVNC needs: handshake and a full Raw update.
      expect(s.rfb.subarray(0, 12).toString('latin1')).toBe('RFB 003.008\n');
      await reader.close();
    }

    // A player that seeks and then plays on: seek(t) and framesAfter(t) together hold every message once.
    const reader = await RfbRecordingReader.open(file);
    const t = targets[4] as number;
    const s = await reader.seek(t / 1000);
    const after: Buffer[] = [];
    for await (const f of reader.framesAfter(t / 1000)) if (f.type === 'output') after.push(f.data);
    expect(sameScreen(replay(s.keyframe, [...s.messages, ...after]), reference.get(HOUR) as Framebuffer)).toBe(true);
    await reader.close();
  });

  it('lists the idle stretches for skip-idle, from the index', async () => {
    const r = await RfbRecordingReader.open(file);
    const idle = await r.idleStretches(60_000);
    expect(idle).toHaveLength(1);
    expect(idle[0]?.startMs).toBeLessThan(IDLE_FROM / 1000);
    expect(idle[0]?.endMs).toBeGreaterThanOrEqual(IDLE_TO / 1000);
    // A finer threshold than the index holds is answered by a pass over the frames, and agrees.
    const fine = await r.idleStretches(1_500);
    expect(fine.length).toBeGreaterThan(1);
    expect(fine).toContainEqual(idle[0]);
    await r.close();
  });

  it('reads a file cut off mid-block (a crash) up to its last whole block, and still seeks', async () => {
    const whole = readFileSync(file);
    const full = await RfbRecordingReader.open(file);
    // Cut in the middle of a block about two thirds in.
    const kf = full.keyframes[Math.floor(full.keyframes.length * 2 / 3)] as { offset: number; micros: number };
    const cut = kf.offset + RFB_BLOCK_HEADER_BYTES + 1000;
    const crashed = path.join(dir, 'crashed.pcrfb');
    writeFileSync(crashed, whole.subarray(0, cut));

    const t0 = performance.now();
    const r = await RfbRecordingReader.open(crashed);
    const openMs = performance.now() - t0;
    expect(r.indexed).toBe(false);
    expect(r.keyframes.map((k) => k.offset)).toEqual(full.keyframes.filter((k) => k.offset < kf.offset).map((k) => k.offset));
    expect(r.durationMicros).toBeLessThan(kf.micros + 1);
    console.log(`[measure] crashed file: index rebuilt from ${r.keyframes.length} keyframe blocks by scanning block headers in ${openMs.toFixed(1)} ms`);

    const frames: RfbRecordedFrame[] = [];
    for await (const f of r.frames(0)) frames.push(f);
    const expected: RfbRecordedFrame[] = [];
    for await (const f of full.frames(0)) {
      if (f.micros > r.durationMicros) break;
      if (f.type !== 'keyframe') expected.push(f);
    }
    expect(frames.filter((f) => f.type !== 'keyframe').length).toBe(expected.length);
    expect(frames.at(-1)?.micros).toBe(r.durationMicros);

    const at = r.durationMicros - 30_000_000;
    const a = await r.seek(at / 1000);
    const b = await full.seek(at / 1000);
    expect(sameScreen(replay(a.keyframe, a.messages), replay(b.keyframe, b.messages))).toBe(true);
    await r.close();
    await full.close();
  });

  it('pushes back when the disk falls behind: write() returns false, then drain', async () => {
    let now = 0;
    const w = await RfbRecordingWriter.create(path.join(dir, 'bp.pcrfb'), {
      format: 'pcrfb', version: 1, recordingId: 'bp', sessionId: 'bp', user: 'u', device: 'd', protocol: 'rdp', startedAt: 0,
      width: 64, height: 64, pixelFormat: RGBX32, name: '',
    }, { flushIntervalMs: 1000, compression: 'deflate', highWaterBytes: 1024 * 1024, clock: () => now });
    let refused = 0;
    for (let i = 0; i < 16; i++) {
      now += 1000;
      if (!w.output(Buffer.alloc(256 * 1024, i))) {
        refused++;
        await once(w, 'drain');
      }
    }
    expect(refused).toBeGreaterThan(0);
    const s = await w.close();
    expect(s.rawBytes).toBe(16 * 256 * 1024);
  });
});
