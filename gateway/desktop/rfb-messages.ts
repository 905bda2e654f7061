import { decodePixelFormat, type CursorShape, type PixelFormat } from '../../recordings/rfb-keyframe.js';
import { CLIENT_MSG, ENCODING, SERVER_MSG } from './rfb-wire.js';

/**
 * Parsers for every RFB message the gateway lets through, in both directions. A parser is a
 * generator that yields how many bytes it needs next and is resumed with exactly those bytes, so
 * a message split over any number of TCP or WebSocket chunks is parsed once, in linear time, and
 * nothing is buffered beyond the message in hand. Anything the parser does not know, or that
 * breaks a bound, throws RfbProtocolError: the session then ends (fail closed).
 *
 * The gateway forces one pixel format (RGBX32) on the device, so pixel values are always 4 bytes.
 */
export class RfbProtocolError extends Error {}

export type Parser<T> = Generator<number, T, Buffer>;

const BPP = 4;
/**
 * No real screen is larger (8K wide, or 5K: 5120x2880 = 14.7 Mpx); anything beyond is a hostile
 * or broken peer. The area bound keeps one session's framebuffer under 60 MB.
 */
export const MAX_SCREEN_SIDE = 8192;
export const MAX_SCREEN_PIXELS = 5120 * 2880;
/**
 * What one update may paint, in screens: an honest encoder covers each pixel about once
 * (Hextile: a tile's background and its subrectangles, about twice). RRE and CopyRect paint a
 * whole rectangle for 12 or 16 bytes, so without this bound a few hundred kilobytes would hold the
 * event loop for seconds.
 */
const MAX_PAINT_SCREENS = 4;
const MAX_CURSOR_SIDE = 512;
const MAX_NAME_BYTES = 64 * 1024;
const MAX_ENCODINGS = 1024;
const MAX_FENCE_PAYLOAD = 64;

function fail(why: string): never {
  throw new RfbProtocolError(why);
}

export interface ScreenState {
  readonly width: number;
  readonly height: number;
  resize(width: number, height: number): void;
}

/** Where a decoded update goes (the framebuffer); pixels are u32 values in RGBX32, little-endian. */
export interface RectSink {
  putRows(x: number, y: number, w: number, h: number, data: Buffer): void;
  fill(x: number, y: number, w: number, h: number, pixel: number): void;
  copy(sx: number, sy: number, dx: number, dy: number, w: number, h: number): void;
  cursor(shape: CursorShape): void;
  setName(name: string): void;
}

/** Tracks only the size, for the pass that finds message boundaries without decoding. */
export class ScreenSize implements ScreenState {
  constructor(public width: number, public height: number) {}
  resize(width: number, height: number): void {
    this.width = width;
    this.height = height;
  }
}

export type ServerMessage =
  | { type: 'update'; rects: number; encodings: number[]; resized: boolean }
  | { type: 'colourMap'; first: number; count: number }
  | { type: 'bell' }
  | { type: 'cutText'; text: Buffer }
  | { type: 'endOfContinuousUpdates' }
  | { type: 'fence'; flags: number; payload: Buffer };

export type ClientMessage =
  | { type: 'setPixelFormat'; format: PixelFormat }
  | { type: 'setEncodings'; encodings: number[] }
  | { type: 'updateRequest'; incremental: boolean; x: number; y: number; w: number; h: number }
  | { type: 'key'; down: boolean; keysym: number }
  | { type: 'pointer'; mask: number; x: number; y: number }
  | { type: 'cutText'; text: Buffer }
  | { type: 'enableContinuousUpdates'; enable: boolean; x: number; y: number; w: number; h: number }
  | { type: 'fence'; flags: number; payload: Buffer }
  | { type: 'setDesktopSize'; width: number; height: number; screens: number }
  | { type: 'qemuKey'; down: boolean; keysym: number; keycode: number };

function checkInside(screen: ScreenState, x: number, y: number, w: number, h: number, what: string): void {
  if (x + w > screen.width || y + h > screen.height) fail(`${what} rectangle ${w}x${h}+${x}+${y} lies outside the ${screen.width}x${screen.height} screen`);
}

export function checkScreenSize(w: number, h: number, what: string): void {
  if (w < 1 || h < 1 || w > MAX_SCREEN_SIDE || h > MAX_SCREEN_SIDE || w * h > MAX_SCREEN_PIXELS) fail(`${what} size ${w}x${h} is not acceptable`);
}

/** Pixels an update may still paint; spent by every rectangle and subrectangle drawn. */
class PaintBudget {
  constructor(private left: number) {}
  spend(pixels: number): void {
    this.left -= pixels;
    if (this.left < 0) fail(`an update paints more than ${MAX_PAINT_SCREENS} screens' worth of pixels`);
  }
}

function* rawRect(x: number, y: number, w: number, h: number, sink: RectSink | null): Parser<void> {
  if (w === 0 || h === 0) return;
  // Row bands of about 64 KiB: few resumptions, and no full-screen copy while the bytes arrive.
  const rowsPerStep = Math.max(1, Math.floor(65536 / (w * BPP)));
  for (let row = 0; row < h; row += rowsPerStep) {
    const n = Math.min(rowsPerStep, h - row);
    const data: Buffer = yield w * n * BPP;
    sink?.putRows(x, y + row, w, n, data);
  }
}

function* rreRect(x: number, y: number, w: number, h: number, sink: RectSink | null, budget: PaintBudget): Parser<void> {
  const head: Buffer = yield 4 + BPP;
  const count = head.readUInt32BE(0);
  sink?.fill(x, y, w, h, head.readUInt32LE(4));
  // Each subrectangle covers at least one pixel; more of them than pixels is not an image.
  if (count > w * h) fail(`RRE rectangle claims ${count} subrectangles for ${w * h} pixels`);
  const batch = 4096;
  for (let done = 0; done < count; done += batch) {
    const n = Math.min(batch, count - done);
    const subs: Buffer = yield n * (BPP + 8);
    for (let i = 0; i < n; i++) {
      const o = i * (BPP + 8);
      const sx = subs.readUInt16BE(o + BPP);
      const sy = subs.readUInt16BE(o + BPP + 2);
      const sw = subs.readUInt16BE(o + BPP + 4);
      const sh = subs.readUInt16BE(o + BPP + 6);
      if (sx + sw > w || sy + sh > h) fail('RRE subrectangle outside its rectangle');
      budget.spend(sw * sh);
      sink?.fill(x + sx, y + sy, sw, sh, subs.readUInt32LE(o));
    }
  }
}

const HEXTILE_RAW = 1;
const HEXTILE_BG = 2;
const HEXTILE_FG = 4;
const HEXTILE_SUBRECTS = 8;
const HEXTILE_COLOURED = 16;

function* hextileRect(x: number, y: number, w: number, h: number, sink: RectSink | null, budget: PaintBudget): Parser<void> {
  let bg = 0;
  let fg = 0;
  for (let ty = y; ty < y + h; ty += 16) {
    const th = Math.min(16, y + h - ty);
    for (let tx = x; tx < x + w; tx += 16) {
      const tw = Math.min(16, x + w - tx);
      const sub = (yield 1)[0] as number;
      if (sub & HEXTILE_RAW) {
        const data: Buffer = yield tw * th * BPP;
        sink?.putRows(tx, ty, tw, th, data);
        continue;
      }
      if (sub > 31) fail(`unknown Hextile subencoding ${sub}`);
      if (sub & HEXTILE_BG) bg = (yield BPP).readUInt32LE(0);
      sink?.fill(tx, ty, tw, th, bg);
      if (sub & HEXTILE_FG) fg = (yield BPP).readUInt32LE(0);
      if (!(sub & HEXTILE_SUBRECTS)) continue;
      const count = (yield 1)[0] as number;
      if (count === 0) continue;
      const coloured = (sub & HEXTILE_COLOURED) !== 0;
      const size = coloured ? BPP + 2 : 2;
      const subs: Buffer = yield count * size;
      for (let i = 0; i < count; i++) {
        const o = i * size;
        const colour = coloured ? subs.readUInt32LE(o) : fg;
        const xy = subs[o + size - 2] as number;
        const wh = subs[o + size - 1] as number;
        const sx = xy >> 4;
        const sy = xy & 15;
        const sw = (wh >> 4) + 1;
        const sh = (wh & 15) + 1;
        if (sx + sw > tw || sy + sh > th) fail('Hextile subrectangle outside its tile');
        budget.spend(sw * sh);
        sink?.fill(tx + sx, ty + sy, sw, sh, colour);
      }
    }
  }
}

/** One server-to-client message. With a sink, the message is also decoded into it. */
export function* serverMessage(screen: ScreenState, sink: RectSink | null, maxCutText: number): Parser<ServerMessage> {
  const type = (yield 1)[0] as number;
  switch (type) {
    case SERVER_MSG.framebufferUpdate: {
      const head: Buffer = yield 3;
      const rects = head.readUInt16BE(1);
      const encodings: number[] = [];
      let resized = false;
      // Counted against the screen as the message began: a resize inside it does not raise the bound.
      const budget = new PaintBudget(MAX_PAINT_SCREENS * Math.max(screen.width * screen.height, 640 * 480));
      // One change of size per update (each is a new framebuffer and a copy); repeating the size
      // in force (TigerVNC's reply to a resize request) is no change.
      let sizeChanged = false;
      const resize = (w: number, h: number, what: string): void => {
        checkScreenSize(w, h, what);
        resized = true;
        if (w === screen.width && h === screen.height) return;
        if (sizeChanged) fail(`${what}: a second change of size in one update`);
        sizeChanged = true;
        screen.resize(w, h);
      };
      for (let i = 0; i < rects; i++) {
        const r: Buffer = yield 12;
        const x = r.readUInt16BE(0);
        const y = r.readUInt16BE(2);
        const w = r.readUInt16BE(4);
        const h = r.readUInt16BE(6);
        const enc = r.readInt32BE(8);
        if (!encodings.includes(enc)) encodings.push(enc);
        if (enc === ENCODING.lastRect) break;
        switch (enc) {
          case ENCODING.raw:
            checkInside(screen, x, y, w, h, 'Raw');
            budget.spend(w * h);
            yield* rawRect(x, y, w, h, sink);
            break;
          case ENCODING.copyRect: {
            checkInside(screen, x, y, w, h, 'CopyRect');
            const src: Buffer = yield 4;
            const sx = src.readUInt16BE(0);
            const sy = src.readUInt16BE(2);
            checkInside(screen, sx, sy, w, h, 'CopyRect source');
            budget.spend(w * h);
            sink?.copy(sx, sy, x, y, w, h);
            break;
          }
          case ENCODING.rre:
            checkInside(screen, x, y, w, h, 'RRE');
            budget.spend(w * h);
            yield* rreRect(x, y, w, h, sink, budget);
            break;
          case ENCODING.hextile:
            checkInside(screen, x, y, w, h, 'Hextile');
            yield* hextileRect(x, y, w, h, sink, budget);
            break;
          case ENCODING.cursor: {
            if (w > MAX_CURSOR_SIDE || h > MAX_CURSOR_SIDE) fail(`cursor of ${w}x${h} is too large`);
            const pixels: Buffer = w * h > 0 ? yield w * h * BPP : Buffer.alloc(0);
            const maskLen = ((w + 7) >> 3) * h;
            const mask: Buffer = maskLen > 0 ? yield maskLen : Buffer.alloc(0);
            sink?.cursor({ hotX: x, hotY: y, width: w, height: h, pixels: Buffer.from(pixels), mask: Buffer.from(mask) });
            break;
          }
          case ENCODING.desktopSize:
            resize(w, h, 'DesktopSize');
            break;
          case ENCODING.extendedDesktopSize: {
            const n = (yield 4)[0] as number;
            if (n > 0) yield n * 16;
            // x = who asked, y = status: a refused request from this client leaves the size as it is.
            if (!(x === 1 && y !== 0)) {
              resize(w, h, 'ExtendedDesktopSize');
            }
            break;
          }
          case ENCODING.desktopName: {
            const len = (yield 4).readUInt32BE(0);
            if (len > MAX_NAME_BYTES) fail('desktop name too long');
            const name: Buffer = len > 0 ? yield len : Buffer.alloc(0);
            sink?.setName(name.toString('utf8'));
            break;
          }
          case ENCODING.qemuExtendedKeyEvent:
            break; // an acknowledgement without data
          default:
            fail(`rectangle in encoding ${enc}, which was not negotiated`);
        }
      }
      return { type: 'update', rects, encodings, resized };
    }
    case SERVER_MSG.setColourMapEntries: {
      const head: Buffer = yield 5;
      const count = head.readUInt16BE(3);
      if (count > 0) yield count * 6;
      return { type: 'colourMap', first: head.readUInt16BE(1), count };
    }
    case SERVER_MSG.bell:
      return { type: 'bell' };
    case SERVER_MSG.serverCutText: {
      const len = (yield 7).readUInt32BE(3);
      // A length with the top bit set is the extended clipboard, which is never negotiated.
      if (len > maxCutText) fail(`ServerCutText of ${len} bytes exceeds the limit`);
      const text: Buffer = len > 0 ? yield len : Buffer.alloc(0);
      return { type: 'cutText', text };
    }
    case SERVER_MSG.endOfContinuousUpdates:
      return { type: 'endOfContinuousUpdates' };
    case SERVER_MSG.fence: {
      const head: Buffer = yield 8;
      const len = head.readUInt8(7);
      if (len > MAX_FENCE_PAYLOAD) fail('fence payload too long');
      const payload: Buffer = len > 0 ? yield len : Buffer.alloc(0);
      return { type: 'fence', flags: head.readUInt32BE(3), payload };
    }
    default:
      return fail(`unknown server message type ${type}`);
  }
}

/** One client-to-server message (after the handshake). */
export function* clientMessage(maxCutText: number): Parser<ClientMessage> {
  const type = (yield 1)[0] as number;
  switch (type) {
    case CLIENT_MSG.setPixelFormat:
      return { type: 'setPixelFormat', format: decodePixelFormat(yield 19, 3) };
    case CLIENT_MSG.setEncodings: {
      const n = (yield 3).readUInt16BE(1);
      if (n > MAX_ENCODINGS) fail(`SetEncodings with ${n} encodings`);
      const list: Buffer = n > 0 ? yield n * 4 : Buffer.alloc(0);
      const encodings: number[] = [];
      for (let i = 0; i < n; i++) encodings.push(list.readInt32BE(i * 4));
      return { type: 'setEncodings', encodings };
    }
    case CLIENT_MSG.framebufferUpdateRequest: {
      const b: Buffer = yield 9;
      return { type: 'updateRequest', incremental: b[0] !== 0, x: b.readUInt16BE(1), y: b.readUInt16BE(3), w: b.readUInt16BE(5), h: b.readUInt16BE(7) };
    }
    case CLIENT_MSG.keyEvent: {
      const b: Buffer = yield 7;
      return { type: 'key', down: b[0] !== 0, keysym: b.readUInt32BE(3) };
    }
    case CLIENT_MSG.pointerEvent: {
      const b: Buffer = yield 5;
      return { type: 'pointer', mask: b[0] as number, x: b.readUInt16BE(1), y: b.readUInt16BE(3) };
    }
    case CLIENT_MSG.clientCutText: {
      const len = (yield 7).readUInt32BE(3);
      if (len > maxCutText) fail(`ClientCutText of ${len} bytes exceeds the limit`);
      const text: Buffer = len > 0 ? yield len : Buffer.alloc(0);
      return { type: 'cutText', text };
    }
    case CLIENT_MSG.enableContinuousUpdates: {
      const b: Buffer = yield 9;
      return { type: 'enableContinuousUpdates', enable: b[0] !== 0, x: b.readUInt16BE(1), y: b.readUInt16BE(3), w: b.readUInt16BE(5), h: b.readUInt16BE(7) };
    }
    case CLIENT_MSG.fence: {
      const head: Buffer = yield 8;
      const len = head.readUInt8(7);
      if (len > MAX_FENCE_PAYLOAD) fail('fence payload too long');
      const payload: Buffer = len > 0 ? yield len : Buffer.alloc(0);
      return { type: 'fence', flags: head.readUInt32BE(3), payload };
    }
    case CLIENT_MSG.setDesktopSize: {
      const b: Buffer = yield 7;
      const screens = b.readUInt8(5);
      if (screens > 0) yield screens * 16;
      return { type: 'setDesktopSize', width: b.readUInt16BE(1), height: b.readUInt16BE(3), screens };
    }
    case CLIENT_MSG.qemu: {
      const subtype = (yield 1)[0] as number;
      if (subtype !== 0) fail(`QEMU client message subtype ${subtype} is not supported`);
      const b: Buffer = yield 10;
      return { type: 'qemuKey', down: b.readUInt16BE(0) !== 0, keysym: b.readUInt32BE(2), keycode: b.readUInt32BE(6) };
    }
    default:
      return fail(`unknown client message type ${type}`);
  }
}

/**
 * Cuts a byte stream into whole messages with a parser. Bytes are kept as the slices they
 * arrived in until a message is complete, then handed out as one buffer, so the caller forwards
 * or records only whole, valid messages.
 */
export class MessageReader<M> {
  private chunks: Buffer[] = [];
  private headOffset = 0;
  private buffered = 0;
  private gen: Parser<M> | null = null;
  private need = 0;
  private parts: Buffer[] = [];
  private messageBytes = 0;
  private stopped = false;

  constructor(private readonly start: () => Parser<M>, private readonly maxMessageBytes: () => number) {}

  /** Bytes received but not yet part of a complete message. */
  get pending(): number {
    return this.buffered + this.messageBytes;
  }

  /**
   * Feeds bytes; each complete message goes to `handle` at once, before the next one is parsed,
   * so a handler that changes what comes next (a handshake step) takes effect in time. Throws
   * RfbProtocolError on a malformed or oversized message.
   */
  push(chunk: Buffer, handle: (message: M, bytes: Buffer) => void): void {
    if (chunk.length > 0) {
      this.chunks.push(chunk);
      this.buffered += chunk.length;
    }
    for (;;) {
      if (this.stopped) return;
      if (!this.gen) {
        if (this.buffered === 0) break;
        this.gen = this.start();
        this.advance(this.gen.next(), handle);
        continue;
      }
      if (this.buffered < this.need) break;
      const bytes = this.take(this.need);
      this.parts.push(bytes);
      this.messageBytes += bytes.length;
      this.advance(this.gen.next(bytes), handle);
    }
  }

  /** Drops what is buffered and parses nothing more (the session has ended). */
  stop(): void {
    this.stopped = true;
    this.chunks = [];
    this.parts = [];
    this.buffered = 0;
  }

  private advance(r: IteratorResult<number, M>, handle: (message: M, bytes: Buffer) => void): void {
    if (r.done) {
      const bytes = this.parts.length === 1 ? (this.parts[0] as Buffer) : Buffer.concat(this.parts, this.messageBytes);
      this.gen = null;
      this.parts = [];
      this.messageBytes = 0;
      this.need = 0;
      handle(r.value, bytes);
      return;
    }
    this.need = r.value;
    if (this.messageBytes + this.need > this.maxMessageBytes()) {
      throw new RfbProtocolError(`message larger than ${this.maxMessageBytes()} bytes`);
    }
  }

  private take(n: number): Buffer {
    const head = this.chunks[0];
    if (n === 0) return Buffer.alloc(0);
    if (head && head.length - this.headOffset >= n) {
      const b = head.subarray(this.headOffset, this.headOffset + n);
      this.consume(n);
      return b;
    }
    const out = Buffer.allocUnsafe(n);
    let got = 0;
    while (got < n) {
      const c = this.chunks[0] as Buffer;
      const k = Math.min(n - got, c.length - this.headOffset);
      c.copy(out, got, this.headOffset, this.headOffset + k);
      got += k;
      this.consume(k);
    }
    return out;
  }

  private consume(n: number): void {
    this.headOffset += n;
    this.buffered -= n;
    const head = this.chunks[0];
    if (head && this.headOffset >= head.length) {
      this.chunks.shift();
      this.headOffset = 0;
    }
  }
}

/** Runs a parser over one complete message already in memory (the decoding pass). */
export function runParser<T>(gen: Parser<T>, bytes: Buffer): T {
  let off = 0;
  let r = gen.next();
  while (!r.done) {
    const n = r.value;
    if (off + n > bytes.length) throw new RfbProtocolError('message ended early');
    r = gen.next(bytes.subarray(off, off + n));
    off += n;
  }
  if (off !== bytes.length) throw new RfbProtocolError('message longer than its parse');
  return r.value;
}
