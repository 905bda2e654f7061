/**
 * The Portcullis recording format (.pcrec): binary-safe, compact, compressed in blocks.
 *
 *   file   = MAGIC(8) headerLen(u32 BE) header(JSON, UTF-8) block*
 *   block  = codec(u8) rawLen(u32 BE) storedLen(u32 BE) stored[storedLen]
 *            codec 0 = stored as is, 1 = raw DEFLATE; the raw bytes are a run of frames
 *   frame  = type(u8) deltaMicros(varint) length(varint) payload[length]
 *
 * Bytes are never re-encoded (a NUL stays one byte), each block is compressed off the main
 * thread, and a block is written at least every flush interval, so a crash loses at most that.
 * Times are deltas from the previous frame in microseconds; the first is relative to the start.
 */
export const MAGIC = Buffer.from('PCREC\x00\x01\n', 'latin1');
export const BLOCK_HEADER_BYTES = 9;

export const CODEC_STORED = 0;
export const CODEC_DEFLATE = 1;

export const FRAME = {
  /** Bytes the user saw (device stdout and stderr, and gateway notices). */
  output: 1,
  /** Bytes the user typed or sent. */
  input: 2,
  /** Terminal resize: cols(u16 BE) rows(u16 BE). */
  resize: 3,
  /** A gateway event (JSON): notice, exit status, end reason. */
  event: 4,
} as const;
export type FrameType = (typeof FRAME)[keyof typeof FRAME];

export interface RecordingHeader {
  format: 'pcrec';
  version: 1;
  recordingId: string;
  sessionId: string;
  user: string;
  device: string;
  protocol: string;
  kind: 'shell' | 'exec' | 'subsystem';
  command: string | null;
  /** Epoch milliseconds of time zero. */
  startedAt: number;
  term: string | null;
  cols: number;
  rows: number;
}

export function encodeVarint(value: number, out: number[]): void {
  let v = value;
  while (v >= 0x80) {
    out.push((v % 0x80) | 0x80);
    v = Math.floor(v / 0x80);
  }
  out.push(v);
}

export function decodeVarint(buf: Buffer, offset: number): { value: number; next: number } {
  let value = 0;
  let mul = 1;
  let i = offset;
  for (;;) {
    if (i >= buf.length) throw new Error('truncated varint');
    const b = buf[i++] as number;
    value += (b & 0x7f) * mul;
    if (b < 0x80) break;
    mul *= 0x80;
    if (mul > 2 ** 49) throw new Error('varint too long');
  }
  return { value, next: i };
}

export function frameHeader(type: FrameType, deltaMicros: number, length: number): Buffer {
  const bytes: number[] = [type];
  encodeVarint(deltaMicros, bytes);
  encodeVarint(length, bytes);
  return Buffer.from(bytes);
}
