import { endianness } from 'node:os';
import { keyframeToRfb, type CursorShape, type Keyframe } from '../../recordings/rfb-keyframe.js';
import { runParser, serverMessage, type RectSink, type ScreenState } from './rfb-messages.js';

// Pixels are filled as u32 values read little-endian off the wire; a big-endian host would swap them.
if (endianness() !== 'LE') throw new Error('the desktop framebuffer assumes a little-endian host');

/**
 * The screen as the user has been shown it, kept by decoding every update the gateway forwards.
 * It is the source of keyframes and of what a late watcher sees first. It only ever holds the
 * state after a whole message: updates are applied once they are complete.
 */
export class Framebuffer implements ScreenState, RectSink {
  width: number;
  height: number;
  name: string;
  pixels: Uint8Array;
  private words: Uint32Array;
  cursorShape: CursorShape | null = null;

  constructor(width: number, height: number, name = '') {
    this.width = width;
    this.height = height;
    this.name = name;
    this.pixels = new Uint8Array(width * height * 4);
    this.words = new Uint32Array(this.pixels.buffer);
  }

  /** A framebuffer holding a keyframe, to replay recorded messages onto (a player's seek). */
  static fromKeyframe(k: Keyframe): Framebuffer {
    const fb = new Framebuffer(k.width, k.height, k.name);
    fb.pixels.set(k.pixels.subarray(0, k.width * k.height * 4));
    fb.cursorShape = k.cursor;
    return fb;
  }

  /** Decodes one complete server message (as cut by MessageReader) into the screen. */
  apply(message: Buffer): void {
    runParser(serverMessage(this, this, Number.MAX_SAFE_INTEGER), message);
  }

  resize(width: number, height: number): void {
    if (width === this.width && height === this.height) return;
    // Keep the overlap: a resize is followed by a full update anyway, but a recording seeks
    // better when nothing flashes black in between.
    const next = new Uint8Array(width * height * 4);
    const w = Math.min(width, this.width) * 4;
    for (let y = 0; y < Math.min(height, this.height); y++) next.set(this.pixels.subarray(y * this.width * 4, y * this.width * 4 + w), y * width * 4);
    this.width = width;
    this.height = height;
    this.pixels = next;
    this.words = new Uint32Array(next.buffer);
  }

  putRows(x: number, y: number, w: number, h: number, data: Buffer): void {
    const rowBytes = w * 4;
    for (let r = 0; r < h; r++) {
      this.pixels.set(data.subarray(r * rowBytes, (r + 1) * rowBytes), ((y + r) * this.width + x) * 4);
    }
  }

  fill(x: number, y: number, w: number, h: number, pixel: number): void {
    for (let r = y; r < y + h; r++) {
      const start = r * this.width + x;
      this.words.fill(pixel, start, start + w);
    }
  }

  copy(sx: number, sy: number, dx: number, dy: number, w: number, h: number): void {
    const rowBytes = w * 4;
    // Rows in the order that never reads a row already overwritten; within a row copyWithin is a memmove.
    const down = dy > sy;
    for (let i = 0; i < h; i++) {
      const r = down ? h - 1 - i : i;
      const from = ((sy + r) * this.width + sx) * 4;
      this.pixels.copyWithin(((dy + r) * this.width + dx) * 4, from, from + rowBytes);
    }
  }

  cursor(shape: CursorShape): void {
    this.cursorShape = shape.width > 0 && shape.height > 0 ? shape : null;
  }

  setName(name: string): void {
    this.name = name;
  }

  /**
   * The current screen as a keyframe. Its pixels are the live buffer, valid until the next
   * update: RfbRecordingWriter.keyframe() copies them at once, so no second copy is made here.
   */
  keyframe(): Keyframe {
    return { width: this.width, height: this.height, name: this.name, pixels: this.pixels, cursor: this.cursorShape };
  }

  /** The bytes a fresh RFB client needs to show this screen now (a watcher who joins late). */
  toRfb(): Buffer {
    return keyframeToRfb({ width: this.width, height: this.height, name: this.name, pixels: this.pixels, cursor: this.cursorShape });
  }

  /** The pixel at (x, y) as 0xRRGGBB, for checks. */
  rgbAt(x: number, y: number): number {
    const o = (y * this.width + x) * 4;
    return ((this.pixels[o] as number) << 16) | ((this.pixels[o + 1] as number) << 8) | (this.pixels[o + 2] as number);
  }
}
