import { describe, expect, it } from 'vitest';
import { Framebuffer } from '../../gateway/desktop/framebuffer.js';
import { ENCODING } from '../../gateway/desktop/rfb-wire.js';
import { sizeChangeIn } from '../../web-console/ui/src/desktop/rfb-size.js';

// The replay player follows size changes in a recording (an RDP desktop following the browser's
// window), so that a seek back starts a noVNC at the keyframe's size.

function rect(x: number, y: number, w: number, h: number, encoding: number, data: Buffer = Buffer.alloc(0)): Buffer {
  const head = Buffer.alloc(12);
  head.writeUInt16BE(x, 0);
  head.writeUInt16BE(y, 2);
  head.writeUInt16BE(w, 4);
  head.writeUInt16BE(h, 6);
  head.writeInt32BE(encoding, 8);
  return Buffer.concat([head, data]);
}

function update(...rects: Buffer[]): Buffer {
  const head = Buffer.alloc(4);
  head.writeUInt16BE(rects.length, 2);
  return Buffer.concat([head, ...rects]);
}

const screens = (w: number, h: number): Buffer => {
  const b = Buffer.alloc(4 + 16);
  b.writeUInt8(1, 0);
  b.writeUInt16BE(w, 12);
  b.writeUInt16BE(h, 14);
  return b;
};
const px = (n: number): Buffer => Buffer.alloc(n * 4, 0x44);

describe('reading a size change out of a recorded server message', () => {
  // What TigerVNC sends after a RandR change: cursor first, the new size, then the picture.
  const cursor = rect(0, 0, 10, 12, ENCODING.cursor, Buffer.concat([px(10 * 12), Buffer.alloc(2 * 12)]));
  const hextileTiles = (): Buffer => {
    // 20×20: four tiles; raw, background only, fore+subrects, coloured subrects.
    const raw = Buffer.concat([Buffer.from([1]), px(16 * 16)]);
    const bg = Buffer.concat([Buffer.from([2]), px(1)]);
    const fg = Buffer.concat([Buffer.from([2 | 4 | 8]), px(2), Buffer.from([2, 0x00, 0x11, 0x20, 0x11])]);
    const coloured = Buffer.concat([Buffer.from([8 | 16]), Buffer.from([1]), px(1), Buffer.from([0x00, 0x00])]);
    return Buffer.concat([raw, bg, fg, coloured]);
  };

  it('finds ExtendedDesktopSize and DesktopSize after a cursor, and reads past every encoding the gateway allows', () => {
    const msg = update(
      cursor,
      rect(0, 0, 1016, 656, ENCODING.extendedDesktopSize, screens(1016, 656)),
      rect(0, 0, 20, 20, ENCODING.hextile, hextileTiles()),
      rect(0, 0, 3, 2, ENCODING.raw, px(6)),
      rect(4, 4, 3, 2, ENCODING.copyRect, Buffer.alloc(4)),
      rect(0, 0, 8, 8, ENCODING.rre, Buffer.concat([Buffer.from([0, 0, 0, 1]), px(1), px(1), Buffer.alloc(8)])),
    );
    // The gateway's own decoder takes it whole (so the lengths here are right).
    const fb = new Framebuffer(1280, 800);
    fb.apply(msg);
    expect([fb.width, fb.height]).toEqual([1016, 656]);
    expect(sizeChangeIn(msg)).toEqual({ width: 1016, height: 656 });
    expect(sizeChangeIn(update(rect(0, 0, 800, 600, ENCODING.desktopSize)))).toEqual({ width: 800, height: 600 });
  });

  it('says null for updates that keep the size and for other messages, and unknown for what it cannot read', () => {
    expect(sizeChangeIn(update(cursor, rect(0, 0, 20, 20, ENCODING.hextile, hextileTiles())))).toBeNull();
    expect(sizeChangeIn(Buffer.from([2]))).toBeNull(); // bell
    // A refused request of this client (x = 1, status 3) changes nothing.
    expect(sizeChangeIn(update(rect(1, 3, 1016, 656, ENCODING.extendedDesktopSize, screens(1016, 656))))).toBeNull();
    // A size after LastRect is never read; one before it is.
    expect(sizeChangeIn(update(rect(0, 0, 800, 600, ENCODING.desktopSize), rect(0, 0, 0, 0, ENCODING.lastRect), rect(0, 0, 9, 9, 16)))).toEqual({ width: 800, height: 600 });
    expect(sizeChangeIn(update(rect(0, 0, 9, 9, 16 /* ZRLE */, Buffer.alloc(20))))).toBe('unknown');
    expect(sizeChangeIn(update(rect(0, 0, 20, 20, ENCODING.raw, px(10))))).toBe('unknown');
  });
});
