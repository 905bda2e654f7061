import type { PixelFormat } from './rfb-keyframe.js';

/**
 * The Portcullis desktop recording format (.pcrfb), for VNC sessions and for RDP sessions (which
 * reach the browser as VNC). It holds what the browser received, byte for byte, so noVNC can
 * play it; the user's input; the gateway's events; and keyframes with an index, so a player can
 * start anywhere without replaying from the beginning.
 *
 *   file     = MAGIC(8) headerLen(u32 BE) header(JSON, UTF-8) block* [indexBlock TRAILER]
 *   block    = flags(u8) rawLen(u32 BE) storedLen(u32 BE) firstMicros(u48 BE) lastMicros(u48 BE) stored[storedLen]
 *              flags bits 0-1: codec, 0 = stored as is, 1 = raw DEFLATE (each block on its own)
 *              flags bit 4: the block's first frame is a keyframe (a place to start decoding)
 *              flags bit 5: the index block; its raw bytes are JSON (RfbIndex), not frames
 *              first/lastMicros: times of the block's first and last frame, so a reader finds the
 *              block holding a time from the headers alone
 *   frames   = the raw bytes of a data block: frame*
 *   frame    = type(u8) deltaMicros(varint) length(varint) payload[length]
 *              deltaMicros: from the previous frame of the same block; the first from firstMicros
 *   TRAILER  = TRAILER_MAGIC(8) indexOffset(u64 BE): where the index block starts
 *
 * Frame types:
 *   1 output    RFB bytes the gateway sent the browser, as the browser got them, always whole
 *               messages: the handshake up to ServerInit first, then server messages.
 *   2 input     One client message as forwarded to the device (KeyEvent, PointerEvent, QEMU
 *               extended key event, ClientCutText when allowed), exactly as on the wire.
 *   3 event     A gateway event (JSON): notices, refused clipboard, pixel format, end reason.
 *   4 keyframe  The screen at that instant (rfb-keyframe.ts), taken between two output messages.
 *               A keyframe is alone in its block (flags bit 4), so a reader going forward skips
 *               it unread and a reader starting there reads nothing else.
 *
 * Times are microseconds since the session started (header.startedAt). A block is cut at least
 * every flush interval, and before every keyframe; so a crash loses at most one interval, and a
 * file cut off mid-block reads up to its last whole block (the reader then scans the block
 * headers to rebuild the index). The index block and trailer are written only by close().
 */
export const RFB_MAGIC = Buffer.from('PCRFB\x00\x01\n', 'latin1');
export const RFB_TRAILER_MAGIC = Buffer.from('PCRFBIX\n', 'latin1');
export const RFB_BLOCK_HEADER_BYTES = 21;
export const RFB_TRAILER_BYTES = 16;

export const BLOCK_CODEC_MASK = 0x03;
export const BLOCK_STORED = 0;
export const BLOCK_DEFLATE = 1;
export const BLOCK_KEYFRAME = 0x10;
export const BLOCK_INDEX = 0x20;

export const RFB_FRAME = { output: 1, input: 2, event: 3, keyframe: 4 } as const;
export type RfbFrameType = (typeof RFB_FRAME)[keyof typeof RFB_FRAME];

export interface RfbRecordingHeader {
  format: 'pcrfb';
  version: 1;
  recordingId: string;
  sessionId: string;
  user: string;
  device: string;
  /** What the device speaks; either way the recording holds RFB. */
  protocol: 'vnc' | 'rdp';
  /** Epoch milliseconds of time zero. */
  startedAt: number;
  /** Screen size at the start (it may change; keyframes carry their own). */
  width: number;
  height: number;
  /** The pixel format of every output frame and keyframe. */
  pixelFormat: PixelFormat;
  /** The desktop name the device announced. */
  name: string;
}

/** The index block's JSON. */
export interface RfbIndex {
  version: 1;
  /** Time of the last frame. */
  durationMicros: number;
  /** [time of the keyframe, file offset of its block], in time order. */
  keyframes: Array<[number, number]>;
  /** Gaps of at least idleMinMicros without output or input: [start, end]. */
  idle: Array<[number, number]>;
  idleMinMicros: number;
  outputBytes: number;
  inputMessages: number;
}

export interface BlockHeader {
  flags: number;
  rawLen: number;
  storedLen: number;
  firstMicros: number;
  lastMicros: number;
}

export function encodeBlockHeader(h: BlockHeader): Buffer {
  const b = Buffer.alloc(RFB_BLOCK_HEADER_BYTES);
  b.writeUInt8(h.flags, 0);
  b.writeUInt32BE(h.rawLen, 1);
  b.writeUInt32BE(h.storedLen, 5);
  b.writeUIntBE(h.firstMicros, 9, 6);
  b.writeUIntBE(h.lastMicros, 15, 6);
  return b;
}

export function decodeBlockHeader(b: Buffer): BlockHeader {
  return { flags: b.readUInt8(0), rawLen: b.readUInt32BE(1), storedLen: b.readUInt32BE(5), firstMicros: b.readUIntBE(9, 6), lastMicros: b.readUIntBE(15, 6) };
}

export function encodeTrailer(indexOffset: number): Buffer {
  const b = Buffer.alloc(RFB_TRAILER_BYTES);
  RFB_TRAILER_MAGIC.copy(b, 0);
  b.writeBigUInt64BE(BigInt(indexOffset), 8);
  return b;
}

/** The index offset, or null when these bytes are not a trailer (a file that was never closed). */
export function decodeTrailer(b: Buffer): number | null {
  if (b.length !== RFB_TRAILER_BYTES || !b.subarray(0, 8).equals(RFB_TRAILER_MAGIC)) return null;
  return Number(b.readBigUInt64BE(8));
}
