/**
 * Whether one whole RFB server message changes the screen's size, and to what: the replay player
 * has to know the size its noVNC shows after playing on from a seek (an RDP desktop follows the
 * browser's window, so a recording can change size in the middle).
 *
 * The gateway lets only stateless encodings through (Raw, CopyRect, RRE, Hextile, and the
 * pseudo-encodings for cursor, desktop size, name, LED state and LastRect), all in 32-bit pixels,
 * so every rectangle's length can be worked out here without decoding it.
 */
export type SizeChange = { width: number; height: number } | null | 'unknown';

const RAW = 0;
const COPY_RECT = 1;
const RRE = 2;
const HEXTILE = 5;
const CURSOR = -239;
const DESKTOP_SIZE = -223;
const EXTENDED_DESKTOP_SIZE = -308;
const LAST_RECT = -224;
const DESKTOP_NAME = -307;
const QEMU_EXTENDED_KEY = -258;
const LED_STATE = -261;
const BYTES_PER_PIXEL = 4;

/**
 * The size the message leaves the screen at when it changes it, null when it does not, and
 * 'unknown' when the message cannot be read (an encoding this does not know, or cut short).
 */
export function sizeChangeIn(msg: Uint8Array): SizeChange {
  if (msg.length < 1 || msg[0] !== 0) return null; // not a FramebufferUpdate
  if (msg.length < 4) return 'unknown';
  const view = new DataView(msg.buffer, msg.byteOffset, msg.byteLength);
  const rects = view.getUint16(2);
  let at = 4;
  let size: { width: number; height: number } | null = null;
  const need = (n: number): boolean => at + n <= msg.length;
  for (let i = 0; i < rects; i++) {
    if (!need(12)) return 'unknown';
    const x = view.getUint16(at);
    const y = view.getUint16(at + 2);
    const w = view.getUint16(at + 4);
    const h = view.getUint16(at + 6);
    const encoding = view.getInt32(at + 8);
    at += 12;
    let length: number;
    switch (encoding) {
      case RAW: length = w * h * BYTES_PER_PIXEL; break;
      case COPY_RECT: length = 4; break;
      case RRE: {
        if (!need(4)) return 'unknown';
        length = 4 + BYTES_PER_PIXEL + view.getUint32(at) * (BYTES_PER_PIXEL + 8);
        break;
      }
      case HEXTILE: {
        const end = hextileEnd(view, at, w, h);
        if (end === null) return 'unknown';
        length = end - at;
        break;
      }
      case CURSOR: length = w * h * BYTES_PER_PIXEL + Math.floor((w + 7) / 8) * h; break;
      case DESKTOP_SIZE: size = { width: w, height: h }; length = 0; break;
      case EXTENDED_DESKTOP_SIZE: {
        if (!need(4)) return 'unknown';
        length = 4 + (msg[at] as number) * 16;
        // x: who asked; y: the status. A request of this client that was refused changes nothing.
        if (!(x === 1 && y !== 0)) size = { width: w, height: h };
        break;
      }
      case LAST_RECT: return size;
      case DESKTOP_NAME: {
        if (!need(4)) return 'unknown';
        length = 4 + view.getUint32(at);
        break;
      }
      case QEMU_EXTENDED_KEY: length = 0; break;
      case LED_STATE: length = 1; break;
      default: return 'unknown';
    }
    if (!need(length)) return 'unknown';
    at += length;
  }
  return size;
}

/** Where a Hextile rectangle's data starting at `at` ends; null when it runs past the message. */
function hextileEnd(view: DataView, start: number, w: number, h: number): number | null {
  let at = start;
  for (let ty = 0; ty < h; ty += 16) {
    const th = Math.min(16, h - ty);
    for (let tx = 0; tx < w; tx += 16) {
      const tw = Math.min(16, w - tx);
      if (at + 1 > view.byteLength) return null;
      const sub = view.getUint8(at);
      at += 1;
      if (sub & 1) {
        at += tw * th * BYTES_PER_PIXEL; // raw tile
        continue;
      }
      if (sub & 2) at += BYTES_PER_PIXEL; // background
      if (sub & 4) at += BYTES_PER_PIXEL; // foreground
      if (sub & 8) {
        if (at + 1 > view.byteLength) return null;
        const n = view.getUint8(at);
        at += 1 + n * ((sub & 16 ? BYTES_PER_PIXEL : 0) + 2);
      }
      if (at > view.byteLength) return null;
    }
  }
  return at;
}
