/**
 * A keyframe of a desktop recording: the whole screen as the user saw it at one message boundary,
 * and how it becomes RFB bytes that a fresh noVNC (player or late watcher) can display without
 * anything that came before it.
 *
 * Pixels are always in the one format the gateway forces on every device (RGBX32, below): the
 * format noVNC asks for, so nothing on the way is translated.
 */

export interface PixelFormat {
  bitsPerPixel: number;
  depth: number;
  bigEndian: boolean;
  trueColour: boolean;
  redMax: number;
  greenMax: number;
  blueMax: number;
  redShift: number;
  greenShift: number;
  blueShift: number;
}

/** 32 bits per pixel, little-endian, red in the lowest byte: in memory R, G, B, unused. */
export const RGBX32: Readonly<PixelFormat> = Object.freeze({
  bitsPerPixel: 32, depth: 24, bigEndian: false, trueColour: true,
  redMax: 255, greenMax: 255, blueMax: 255, redShift: 0, greenShift: 8, blueShift: 16,
});

export function encodePixelFormat(pf: PixelFormat): Buffer {
  const b = Buffer.alloc(16);
  b.writeUInt8(pf.bitsPerPixel, 0);
  b.writeUInt8(pf.depth, 1);
  b.writeUInt8(pf.bigEndian ? 1 : 0, 2);
  b.writeUInt8(pf.trueColour ? 1 : 0, 3);
  b.writeUInt16BE(pf.redMax, 4);
  b.writeUInt16BE(pf.greenMax, 6);
  b.writeUInt16BE(pf.blueMax, 8);
  b.writeUInt8(pf.redShift, 10);
  b.writeUInt8(pf.greenShift, 11);
  b.writeUInt8(pf.blueShift, 12);
  return b;
}

export function decodePixelFormat(b: Buffer, at = 0): PixelFormat {
  return {
    bitsPerPixel: b.readUInt8(at), depth: b.readUInt8(at + 1), bigEndian: b.readUInt8(at + 2) !== 0, trueColour: b.readUInt8(at + 3) !== 0,
    redMax: b.readUInt16BE(at + 4), greenMax: b.readUInt16BE(at + 6), blueMax: b.readUInt16BE(at + 8),
    redShift: b.readUInt8(at + 10), greenShift: b.readUInt8(at + 11), blueShift: b.readUInt8(at + 12),
  };
}

/** Whether two formats describe the same pixels (a true-colour format's endianness matters only above 8 bpp). */
export function samePixelFormat(a: PixelFormat, b: PixelFormat): boolean {
  return a.bitsPerPixel === b.bitsPerPixel && a.depth === b.depth && a.trueColour === b.trueColour
    && (a.bitsPerPixel === 8 || a.bigEndian === b.bigEndian)
    && a.redMax === b.redMax && a.greenMax === b.greenMax && a.blueMax === b.blueMax
    && a.redShift === b.redShift && a.greenShift === b.greenShift && a.blueShift === b.blueShift;
}

export interface CursorShape {
  hotX: number;
  hotY: number;
  width: number;
  height: number;
  /** width × height pixels in RGBX32. */
  pixels: Buffer;
  /** One bit per pixel, rows padded to whole bytes, most significant bit first (RFC 6143 §7.8.1). */
  mask: Buffer;
}

export interface Keyframe {
  width: number;
  height: number;
  name: string;
  /** width × height × 4 bytes, RGBX32. */
  pixels: Uint8Array;
  cursor: CursorShape | null;
}

const KEYFRAME_VERSION = 1;

/**
 * keyframe = version(u8) width(u16) height(u16) nameLen(u16) name(UTF-8)
 *            hasCursor(u8) [hotX(u16) hotY(u16) cw(u16) ch(u16) cursorPixels(cw·ch·4) mask(⌈cw/8⌉·ch)]
 *            pixels(width·height·4, RGBX32)
 * Pixels are stored as they are in memory: one copy on the relay's thread and no per-pixel work
 * there; the block's DEFLATE (off the main thread) makes the unused fourth byte cost next to nothing.
 */
/** How many bytes writeKeyframe() writes. */
export function keyframeSize(k: Keyframe): number {
  const c = k.cursor;
  return 8 + Math.min(Buffer.byteLength(k.name, 'utf8'), 0xffff) + (c ? 8 + c.pixels.length + c.mask.length : 0) + k.width * k.height * 4;
}

/** Writes the keyframe into `out` at `at` (keyframeSize(k) bytes), so a caller can frame it without another copy. */
export function writeKeyframe(k: Keyframe, out: Buffer, at: number): void {
  const name = Buffer.from(k.name, 'utf8').subarray(0, 0xffff);
  const c = k.cursor;
  let o = out.writeUInt8(KEYFRAME_VERSION, at);
  o = out.writeUInt16BE(k.width, o);
  o = out.writeUInt16BE(k.height, o);
  o = out.writeUInt16BE(name.length, o);
  o += name.copy(out, o);
  o = out.writeUInt8(c ? 1 : 0, o);
  if (c) {
    o = out.writeUInt16BE(c.hotX, o);
    o = out.writeUInt16BE(c.hotY, o);
    o = out.writeUInt16BE(c.width, o);
    o = out.writeUInt16BE(c.height, o);
    o += c.pixels.copy(out, o);
    o += c.mask.copy(out, o);
  }
  out.set(k.pixels.subarray(0, k.width * k.height * 4), o);
}

export function decodeKeyframe(b: Buffer): Keyframe {
  if (b.readUInt8(0) !== KEYFRAME_VERSION) throw new Error(`unknown keyframe version ${b.readUInt8(0)}`);
  const width = b.readUInt16BE(1);
  const height = b.readUInt16BE(3);
  const nameLen = b.readUInt16BE(5);
  let o = 7;
  const name = b.subarray(o, o + nameLen).toString('utf8');
  o += nameLen;
  let cursor: CursorShape | null = null;
  if (b.readUInt8(o++) === 1) {
    const hotX = b.readUInt16BE(o);
    const hotY = b.readUInt16BE(o + 2);
    const cw = b.readUInt16BE(o + 4);
    const ch = b.readUInt16BE(o + 6);
    o += 8;
    const pixels = Buffer.from(b.subarray(o, o + cw * ch * 4));
    o += cw * ch * 4;
    const maskLen = ((cw + 7) >> 3) * ch;
    const mask = Buffer.from(b.subarray(o, o + maskLen));
    o += maskLen;
    cursor = { hotX, hotY, width: cw, height: ch, pixels, mask };
  }
  if (b.length - o !== width * height * 4) throw new Error('keyframe size does not match its dimensions');
  // A copy with its own aligned buffer: the caller may view it as 32-bit words.
  const pixels = new Uint8Array(width * height * 4);
  pixels.set(b.subarray(o));
  return { width, height, name, pixels, cursor };
}

/** The bytes an RFB 3.8 server sends up to and including ServerInit, offering security type None. */
export function serverHandshake(width: number, height: number, name: string): Buffer {
  const nameBytes = Buffer.from(name, 'utf8');
  const init = Buffer.alloc(24);
  init.writeUInt16BE(width, 0);
  init.writeUInt16BE(height, 2);
  encodePixelFormat(RGBX32).copy(init, 4);
  init.writeUInt32BE(nameBytes.length, 20);
  // version; one security type (None); SecurityResult OK; ServerInit
  return Buffer.concat([Buffer.from('RFB 003.008\n', 'latin1'), Buffer.from([1, 1]), Buffer.alloc(4), init, nameBytes]);
}

const ENCODING_RAW = 0;
const ENCODING_CURSOR = -239;

function rectHeader(x: number, y: number, w: number, h: number, encoding: number): Buffer {
  const b = Buffer.alloc(12);
  b.writeUInt16BE(x, 0);
  b.writeUInt16BE(y, 2);
  b.writeUInt16BE(w, 4);
  b.writeUInt16BE(h, 6);
  b.writeInt32BE(encoding, 8);
  return b;
}

/** One FramebufferUpdate that paints the whole screen (one Raw rectangle) and sets the cursor shape. */
export function keyframeUpdate(k: Keyframe): Buffer {
  const parts: Buffer[] = [];
  const head = Buffer.alloc(4);
  head.writeUInt8(0, 0); // FramebufferUpdate
  head.writeUInt16BE(k.cursor ? 2 : 1, 2);
  parts.push(head, rectHeader(0, 0, k.width, k.height, ENCODING_RAW), Buffer.from(k.pixels.buffer, k.pixels.byteOffset, k.width * k.height * 4));
  if (k.cursor) {
    const c = k.cursor;
    parts.push(rectHeader(c.hotX, c.hotY, c.width, c.height, ENCODING_CURSOR), c.pixels, c.mask);
  }
  return Buffer.concat(parts);
}

/** Everything a fresh RFB client needs to show this keyframe: handshake, ServerInit, one full update. */
export function keyframeToRfb(k: Keyframe): Buffer {
  return Buffer.concat([serverHandshake(k.width, k.height, k.name), keyframeUpdate(k)]);
}
