import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { deflateRawSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { Framebuffer } from '../../gateway/desktop/framebuffer.js';
import { MessageReader, RfbProtocolError, ScreenSize, serverMessage, type ServerMessage } from '../../gateway/desktop/rfb-messages.js';
import { ENCODING } from '../../gateway/desktop/rfb-wire.js';
import { RFB_BLOCK_HEADER_BYTES, RFB_MAGIC } from '../../recordings/rfb-format.js';
import { RfbRecordingReader } from '../../recordings/rfb-reader.js';

// Issue 7, from a hostile device's side (R-6.4a): RFB messages that cost the device a few bytes
// and the gateway seconds or gigabytes — a huge or repeated resize, RRE and CopyRect rectangles
// painted over and over — end the session instead (protocol_error). Honest updates still pass.

function rect(x: number, y: number, w: number, h: number, enc: number, body: Buffer = Buffer.alloc(0)): Buffer {
  const head = Buffer.alloc(12);
  head.writeUInt16BE(x, 0);
  head.writeUInt16BE(y, 2);
  head.writeUInt16BE(w, 4);
  head.writeUInt16BE(h, 6);
  head.writeInt32BE(enc, 8);
  return Buffer.concat([head, body]);
}

function update(rects: Buffer[]): Buffer {
  const head = Buffer.alloc(4);
  head.writeUInt16BE(rects.length, 2);
  return Buffer.concat([head, ...rects]);
}

/** Parses `bytes` as the gateway does (decoding into a framebuffer); what came out, or the refusal. */
function parse(width: number, height: number, bytes: Buffer): { messages: ServerMessage[]; error: Error | null; fb: Framebuffer } {
  const fb = new Framebuffer(width, height, 'device');
  const screen = new ScreenSize(width, height);
  const reader = new MessageReader<ServerMessage>(() => serverMessage(screen, null, 1 << 20), () => Math.max(16 << 20, screen.width * screen.height * 8 + (1 << 20)));
  const messages: ServerMessage[] = [];
  try {
    reader.push(bytes, (m, raw) => {
      messages.push(m);
      fb.apply(raw);
    });
    return { messages, error: null, fb };
  } catch (err) {
    return { messages, error: err as Error, fb };
  }
}

const rre = (count: number, w: number, h: number): Buffer => {
  const b = Buffer.alloc(8 + count * 12);
  b.writeUInt32BE(count, 0);
  for (let i = 0; i < count; i++) {
    b.writeUInt32LE(i, 8 + i * 12);
    b.writeUInt16BE(w, 8 + i * 12 + 8);
    b.writeUInt16BE(h, 8 + i * 12 + 10);
  }
  return b;
};

describe('a hostile VNC device', () => {
  it('cannot make the gateway hold a giant screen: 16384x16384, or an area past 5K, ends the session', () => {
    for (const [w, h] of [[16384, 16384], [8192, 8192], [10000, 4000]] as const) {
      const r = parse(1024, 768, update([rect(0, 0, w, h, ENCODING.desktopSize)]));
      expect(r.error, `${w}x${h}`).toBeInstanceOf(RfbProtocolError);
      expect(r.error?.message).toMatch(/not acceptable/);
      expect([r.fb.width, r.fb.height]).toEqual([1024, 768]);
    }
    // A real 5K or 8K-wide panel is a screen, not an attack.
    expect(parse(1024, 768, update([rect(0, 0, 5120, 2880, ENCODING.desktopSize)])).error).toBeNull();
    expect(parse(1024, 768, update([rect(0, 0, 7680, 1440, ENCODING.desktopSize)])).error).toBeNull();
  });

  it('cannot resize back and forth inside one update (a new framebuffer and a copy each time)', () => {
    const flip = update([rect(0, 0, 4000, 3000, ENCODING.desktopSize), rect(0, 0, 800, 600, ENCODING.desktopSize), rect(0, 0, 4000, 3000, ENCODING.desktopSize)]);
    const r = parse(1024, 768, flip);
    expect(r.error?.message).toMatch(/second change of size/);
    // TigerVNC's reply repeating the size in force, beside the change, is fine.
    const reply = update([rect(0, 0, 800, 600, ENCODING.desktopSize), rect(0, 0, 800, 600, ENCODING.desktopSize)]);
    expect(parse(1024, 768, reply).error).toBeNull();
  });

  it('cannot paint the screen thousands of times over with RRE subrectangles or CopyRect for a few bytes each', () => {
    // 20 000 full-screen subrectangles: 240 KB that held the event loop for 6 s before the bound.
    const r1 = parse(1920, 1080, update([rect(0, 0, 1920, 1080, ENCODING.rre, rre(20_000, 1920, 1080))]));
    expect(r1.error?.message).toMatch(/paints more than 4 screens/);
    const copies = Array.from({ length: 20_000 }, () => rect(0, 0, 1920, 1080, ENCODING.copyRect, Buffer.from([0, 0, 0, 0])));
    const r2 = parse(1920, 1080, update(copies));
    expect(r2.error?.message).toMatch(/paints more than 4 screens/);
    expect(r2.messages).toHaveLength(0);
  });

  it('still shows honest updates: a full Raw screen, a scroll (CopyRect plus the new strip), RRE with small subrectangles', () => {
    const raw = rect(0, 0, 640, 480, ENCODING.raw, Buffer.alloc(640 * 480 * 4, 0x7f));
    const scroll = [rect(0, 0, 640, 460, ENCODING.copyRect, Buffer.from([0, 0, 0, 20])), rect(0, 460, 640, 20, ENCODING.raw, Buffer.alloc(640 * 20 * 4, 0x10))];
    const small = rect(0, 0, 640, 480, ENCODING.rre, rre(1000, 8, 8));
    const r = parse(640, 480, Buffer.concat([update([raw]), update(scroll), update([small])]));
    expect(r.error).toBeNull();
    expect(r.messages.map((m) => m.type)).toEqual(['update', 'update', 'update']);
  });
});

// R-A.3e: a recording file is evidence, but the shared recordings folder is writable by more than
// the gateway; a crafted file must not take the web node down when someone replays it.
describe('a crafted desktop recording', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'pc-hostile-rec-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  function file(name: string, headerLen: number, blocks: Buffer[]): string {
    const header = Buffer.from(JSON.stringify({ format: 'pcrfb', version: 1, width: 64, height: 48 }));
    const len = Buffer.alloc(4);
    len.writeUInt32BE(headerLen === -1 ? header.length : headerLen);
    const f = path.join(dir, name);
    writeFileSync(f, Buffer.concat([RFB_MAGIC, len, header, ...blocks]));
    return f;
  }

  function block(flags: number, rawLen: number, stored: Buffer): Buffer {
    const h = Buffer.alloc(RFB_BLOCK_HEADER_BYTES);
    h.writeUInt8(flags, 0);
    h.writeUInt32BE(rawLen, 1);
    h.writeUInt32BE(stored.length, 5);
    return Buffer.concat([h, stored]);
  }

  it('refuses a header length larger than the file, before allocating it', async () => {
    await expect(RfbRecordingReader.open(file('huge-header.pcrfb', 0xffffffff, []))).rejects.toThrow(/not plausible/);
  });

  it('does not inflate a DEFLATE bomb past the length its block declares', async () => {
    // 256 MiB of zeros in about 256 KB, declared as 100 bytes.
    const bomb = deflateRawSync(Buffer.alloc(256 * 1024 * 1024));
    const reader = await RfbRecordingReader.open(file('bomb.pcrfb', -1, [block(1, 100, bomb)]));
    const before = process.memoryUsage().arrayBuffers;
    await expect((async () => { for await (const f of reader.frames()) void f; })()).rejects.toThrow();
    expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(64 * 1024 * 1024);
    await reader.close();
  });
});
