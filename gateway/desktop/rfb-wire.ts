import { encodePixelFormat, type PixelFormat } from '../../recordings/rfb-keyframe.js';

/** RFB message types and encodings the gateway speaks (RFC 6143 and the community registry). */
export const CLIENT_MSG = {
  setPixelFormat: 0,
  setEncodings: 2,
  framebufferUpdateRequest: 3,
  keyEvent: 4,
  pointerEvent: 5,
  clientCutText: 6,
  enableContinuousUpdates: 150,
  fence: 248,
  setDesktopSize: 251,
  qemu: 255,
} as const;

export const SERVER_MSG = {
  framebufferUpdate: 0,
  setColourMapEntries: 1,
  bell: 2,
  serverCutText: 3,
  endOfContinuousUpdates: 150,
  fence: 248,
} as const;

export const ENCODING = {
  raw: 0,
  copyRect: 1,
  rre: 2,
  hextile: 5,
  tight: 7,
  zrle: 16,
  desktopSize: -223,
  lastRect: -224,
  cursor: -239,
  qemuExtendedKeyEvent: -258,
  desktopName: -307,
  extendedDesktopSize: -308,
  fence: -312,
  continuousUpdates: -313,
} as const;

export const SECURITY = { invalid: 0, none: 1, vncAuth: 2 } as const;

export function rfbVersionString(minor: 3 | 7 | 8): Buffer {
  return Buffer.from(`RFB 003.00${minor}\n`, 'latin1');
}

export function setPixelFormatMsg(pf: PixelFormat): Buffer {
  return Buffer.concat([Buffer.from([CLIENT_MSG.setPixelFormat, 0, 0, 0]), encodePixelFormat(pf)]);
}

export function setEncodingsMsg(encodings: readonly number[]): Buffer {
  const b = Buffer.alloc(4 + encodings.length * 4);
  b.writeUInt8(CLIENT_MSG.setEncodings, 0);
  b.writeUInt16BE(encodings.length, 2);
  encodings.forEach((e, i) => b.writeInt32BE(e, 4 + i * 4));
  return b;
}

export function updateRequestMsg(incremental: boolean, x: number, y: number, w: number, h: number): Buffer {
  const b = Buffer.alloc(10);
  b.writeUInt8(CLIENT_MSG.framebufferUpdateRequest, 0);
  b.writeUInt8(incremental ? 1 : 0, 1);
  b.writeUInt16BE(x, 2);
  b.writeUInt16BE(y, 4);
  b.writeUInt16BE(w, 6);
  b.writeUInt16BE(h, 8);
  return b;
}

export function keyEventMsg(down: boolean, keysym: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeUInt8(CLIENT_MSG.keyEvent, 0);
  b.writeUInt8(down ? 1 : 0, 1);
  b.writeUInt32BE(keysym >>> 0, 4);
  return b;
}

export function pointerEventMsg(buttonMask: number, x: number, y: number): Buffer {
  const b = Buffer.alloc(6);
  b.writeUInt8(CLIENT_MSG.pointerEvent, 0);
  b.writeUInt8(buttonMask, 1);
  b.writeUInt16BE(x, 2);
  b.writeUInt16BE(y, 4);
  return b;
}

/** ClientCutText and ServerCutText share their layout; the text is Latin-1 by the RFC. */
export function cutTextMsg(type: typeof CLIENT_MSG.clientCutText | typeof SERVER_MSG.serverCutText, text: string): Buffer {
  const body = Buffer.from(text, 'latin1');
  const b = Buffer.alloc(8 + body.length);
  b.writeUInt8(type, 0);
  b.writeUInt32BE(body.length, 4);
  body.copy(b, 8);
  return b;
}

export function serverInitMsg(width: number, height: number, pf: PixelFormat, name: string): Buffer {
  const nameBytes = Buffer.from(name, 'utf8');
  const b = Buffer.alloc(24);
  b.writeUInt16BE(width, 0);
  b.writeUInt16BE(height, 2);
  encodePixelFormat(pf).copy(b, 4);
  b.writeUInt32BE(nameBytes.length, 20);
  return Buffer.concat([b, nameBytes]);
}
