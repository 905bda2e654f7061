import { open, type FileHandle } from 'node:fs/promises';
import { promisify } from 'node:util';
import { inflateRaw } from 'node:zlib';
import { decodeVarint } from './pcrec-format.js';
import {
  BLOCK_CODEC_MASK, BLOCK_DEFLATE, BLOCK_INDEX, BLOCK_KEYFRAME, BLOCK_STORED, decodeBlockHeader, decodeTrailer, RFB_BLOCK_HEADER_BYTES,
  RFB_FRAME, RFB_MAGIC, RFB_TRAILER_BYTES, type BlockHeader, type RfbIndex, type RfbRecordingHeader,
} from './rfb-format.js';
import { decodeKeyframe, keyframeToRfb, type Keyframe } from './rfb-keyframe.js';

const inflateRawAsync = promisify(inflateRaw);
// The raw size is in the block header: one output chunk means one thread-pool round trip and no
// concatenation (zlib's default 16 KiB chunks cost a round trip each on a 3 MiB keyframe).
/** The writer never makes a block larger (a keyframe of the largest screen the gateway accepts is 59 MB). */
const MAX_BLOCK_BYTES = 128 * 1024 * 1024;
/** Inflates no more than the block says it holds: a crafted block cannot inflate into gigabytes. */
const inflateBlock = (stored: Buffer, rawLen: number): Promise<Buffer> => inflateRawAsync(stored, { chunkSize: Math.max(64, Math.min(rawLen, 64 * 1024 * 1024)), maxOutputLength: Math.max(1, rawLen) });

/** What the user did, decoded from a recorded client message. */
export type RfbInputEvent =
  | { kind: 'key'; down: boolean; keysym: number }
  | { kind: 'pointer'; buttons: number; x: number; y: number }
  | { kind: 'clipboard'; text: string }
  | { kind: 'other'; messageType: number };

export type RfbRecordedFrame =
  | { type: 'output'; micros: number; data: Buffer }
  | { type: 'input'; micros: number; data: Buffer; input: RfbInputEvent }
  | { type: 'event'; micros: number; event: Record<string, unknown> }
  | { type: 'keyframe'; micros: number; keyframe: Keyframe };

export interface RfbSeekResult {
  /** The time asked for, clamped to the recording. */
  micros: number;
  keyframeMicros: number;
  keyframe: Keyframe;
  /** A fresh noVNC fed these bytes shows the keyframe: handshake, ServerInit, one full update. */
  rfb: Buffer;
  /** Output after the keyframe up to the target: fed after `rfb`, they bring the screen to `micros`. */
  messages: Buffer[];
  /** Every frame after the keyframe up to the target (input and events too), in order. */
  frames: RfbRecordedFrame[];
}

export interface IdleStretch {
  startMs: number;
  endMs: number;
}

interface BlockRef {
  offset: number;
  header: BlockHeader;
}

export function decodeInput(data: Buffer): RfbInputEvent {
  const type = data[0] as number;
  if (type === 4 && data.length >= 8) return { kind: 'key', down: data[1] !== 0, keysym: data.readUInt32BE(4) };
  if (type === 5 && data.length >= 6) return { kind: 'pointer', buttons: data[1] as number, x: data.readUInt16BE(2), y: data.readUInt16BE(4) };
  if (type === 6 && data.length >= 8) return { kind: 'clipboard', text: data.subarray(8).toString('latin1') };
  if (type === 255 && data.length >= 12 && data[1] === 0) return { kind: 'key', down: data.readUInt16BE(2) !== 0, keysym: data.readUInt32BE(4) };
  return { kind: 'other', messageType: type };
}

function decodeFrames(raw: Buffer, firstMicros: number, file: string): RfbRecordedFrame[] {
  const out: RfbRecordedFrame[] = [];
  let micros = firstMicros;
  let off = 0;
  while (off < raw.length) {
    const type = raw[off] as number;
    const d = decodeVarint(raw, off + 1);
    const l = decodeVarint(raw, d.next);
    if (l.next + l.value > raw.length) throw new Error(`${file}: frame runs past its block`);
    const data = raw.subarray(l.next, l.next + l.value);
    off = l.next + l.value;
    micros += d.value;
    if (type === RFB_FRAME.output) out.push({ type: 'output', micros, data });
    else if (type === RFB_FRAME.input) out.push({ type: 'input', micros, data, input: decodeInput(data) });
    else if (type === RFB_FRAME.event) out.push({ type: 'event', micros, event: JSON.parse(data.toString('utf8')) as Record<string, unknown> });
    else if (type === RFB_FRAME.keyframe) out.push({ type: 'keyframe', micros, keyframe: decodeKeyframe(data) });
    else throw new Error(`${file}: unknown frame type ${type}`);
  }
  return out;
}

/**
 * Reads a .pcrfb recording without reading it from the start: the trailer points to the index,
 * the index to the keyframe before any time, and block headers say which blocks to skip. A file
 * that was never closed (the gateway crashed) has no index: its block headers are scanned once
 * instead, up to the last whole block.
 */
export class RfbRecordingReader {
  private constructor(
    private readonly fh: FileHandle,
    readonly file: string,
    readonly header: RfbRecordingHeader,
    /** Where the first block starts. */
    private readonly dataStart: number,
    /** Where the last whole data block ends. */
    private readonly dataEnd: number,
    /** True when the index was found; false when it was rebuilt by scanning (a crash). */
    readonly indexed: boolean,
    readonly keyframes: ReadonlyArray<{ micros: number; offset: number }>,
    readonly durationMicros: number,
    private readonly index: RfbIndex | null,
  ) {}

  static async open(file: string): Promise<RfbRecordingReader> {
    const fh = await open(file, 'r');
    try {
      const size = (await fh.stat()).size;
      const head = await readAt(fh, 0, RFB_MAGIC.length + 4);
      if (head.length < RFB_MAGIC.length + 4 || !head.subarray(0, RFB_MAGIC.length).equals(RFB_MAGIC)) throw new Error(`${file}: not a Portcullis desktop recording`);
      const headerLen = head.readUInt32BE(RFB_MAGIC.length);
      // Lengths in the file are checked against the file before anything is allocated for them.
      if (headerLen > Math.min(size, 1024 * 1024)) throw new Error(`${file}: header length ${headerLen} is not plausible`);
      const headerBuf = await readAt(fh, head.length, headerLen);
      if (headerBuf.length < headerLen) throw new Error(`${file}: truncated header`);
      const header = JSON.parse(headerBuf.toString('utf8')) as RfbRecordingHeader;
      const dataStart = head.length + headerLen;

      const indexed = size >= dataStart + RFB_BLOCK_HEADER_BYTES + RFB_TRAILER_BYTES
        ? await readIndex(fh, size, dataStart)
        : null;
      if (indexed) {
        const { index, indexOffset } = indexed;
        return new RfbRecordingReader(fh, file, header, dataStart, indexOffset, true,
          index.keyframes.map(([micros, offset]) => ({ micros, offset })), index.durationMicros, index);
      }
      const blocks = await scanBlocks(fh, dataStart, size);
      const keyframes = blocks.filter((b) => b.header.flags & BLOCK_KEYFRAME).map((b) => ({ micros: b.header.firstMicros, offset: b.offset }));
      const last = blocks[blocks.length - 1];
      const dataEnd = last ? last.offset + RFB_BLOCK_HEADER_BYTES + last.header.storedLen : dataStart;
      return new RfbRecordingReader(fh, file, header, dataStart, dataEnd, false, keyframes, last?.header.lastMicros ?? 0, null);
    } catch (err) {
      await fh.close();
      throw err;
    }
  }

  get durationMs(): number {
    return this.durationMicros / 1000;
  }

  async close(): Promise<void> {
    await this.fh.close();
  }

  private async readBlock(offset: number): Promise<{ header: BlockHeader; frames: RfbRecordedFrame[]; next: number }> {
    const header = decodeBlockHeader(await readAt(this.fh, offset, RFB_BLOCK_HEADER_BYTES));
    if (header.storedLen > MAX_BLOCK_BYTES || header.rawLen > MAX_BLOCK_BYTES || offset + RFB_BLOCK_HEADER_BYTES + header.storedLen > this.dataEnd) {
      throw new Error(`${this.file}: block at ${offset} claims ${header.storedLen} stored / ${header.rawLen} raw bytes, more than the file or any block holds`);
    }
    const stored = await readAt(this.fh, offset + RFB_BLOCK_HEADER_BYTES, header.storedLen);
    if (stored.length < header.storedLen) throw new Error(`${this.file}: truncated block at ${offset}`);
    const codec = header.flags & BLOCK_CODEC_MASK;
    let raw: Buffer;
    if (codec === BLOCK_STORED) raw = stored;
    else if (codec === BLOCK_DEFLATE) raw = await inflateBlock(stored, header.rawLen);
    else throw new Error(`${this.file}: unknown block codec ${codec}`);
    if (raw.length !== header.rawLen) throw new Error(`${this.file}: block length mismatch at ${offset}`);
    return { header, frames: decodeFrames(raw, header.firstMicros, this.file), next: offset + RFB_BLOCK_HEADER_BYTES + header.storedLen };
  }

  private async readHeaderAt(offset: number): Promise<BlockHeader> {
    return decodeBlockHeader(await readAt(this.fh, offset, RFB_BLOCK_HEADER_BYTES));
  }

  /** The last keyframe at or before a time (the first one for times before it). */
  private keyframeFor(micros: number): { micros: number; offset: number } | null {
    let lo = 0;
    let hi = this.keyframes.length - 1;
    let found = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if ((this.keyframes[mid] as { micros: number }).micros <= micros) {
        found = mid;
        lo = mid + 1;
      } else {
        hi = mid - 1;
      }
    }
    return this.keyframes[Math.max(found, 0)] ?? null;
  }

  /**
   * The screen at a time, as a keyframe plus the output from there to that time: reads the
   * keyframe's block and the blocks after it up to the time, nothing before.
   */
  async seek(ms: number): Promise<RfbSeekResult> {
    const target = Math.max(0, Math.min(Math.round(ms * 1000), this.durationMicros));
    const kf = this.keyframeFor(target);
    if (!kf) throw new Error(`${this.file}: no keyframe to start from`);
    let keyframe: Keyframe | null = null;
    const frames: RfbRecordedFrame[] = [];
    let offset = kf.offset;
    scan: while (offset < this.dataEnd) {
      if (keyframe && (await this.readHeaderAt(offset)).firstMicros > target) break;
      const block = await this.readBlock(offset);
      for (const f of block.frames) {
        if (!keyframe) {
          if (f.type !== 'keyframe') throw new Error(`${this.file}: the index points to a block without a keyframe`);
          keyframe = f.keyframe;
          continue;
        }
        if (f.micros > target) break scan;
        frames.push(f);
      }
      offset = block.next;
    }
    if (!keyframe) throw new Error(`${this.file}: keyframe block missing`);
    return {
      micros: target, keyframeMicros: kf.micros, keyframe, rfb: keyframeToRfb(keyframe),
      messages: frames.filter((f): f is Extract<RfbRecordedFrame, { type: 'output' }> => f.type === 'output').map((f) => f.data), frames,
    };
  }

  /**
   * Every frame in order, for playback. From 0 the stream starts at the recording's first byte
   * (the handshake as the browser got it) and needs no keyframe. From a later time it starts
   * with the keyframe before that time: a player shows it (keyframeToRfb), feeds the output
   * frames without waiting until it reaches the time it wanted, then plays in real time.
   * Keyframe blocks along the way are skipped unread unless asked for: a keyframe is alone in
   * its block, and a player going forward has no use for it.
   */
  async *frames(fromMs = 0, opts: { keyframes?: boolean } = {}): AsyncGenerator<RfbRecordedFrame> {
    const from = Math.round(fromMs * 1000);
    const kf = from > 0 ? this.keyframeFor(from) : null;
    yield* this.framesFrom(kf ? kf.offset : this.dataStart, kf !== null, opts.keyframes === true);
  }

  private async *framesFrom(offset: number, firstKeyframe: boolean, allKeyframes = false): AsyncGenerator<RfbRecordedFrame> {
    let first = true;
    while (offset < this.dataEnd) {
      const header = await this.readHeaderAt(offset);
      if (header.flags & BLOCK_INDEX) return;
      if (header.flags & BLOCK_KEYFRAME && !allKeyframes && !(first && firstKeyframe)) {
        offset += RFB_BLOCK_HEADER_BYTES + header.storedLen;
        first = false;
        continue;
      }
      first = false;
      const block = await this.readBlock(offset);
      for (const f of block.frames) yield f;
      offset = block.next;
    }
  }

  /**
   * The frames after a time, to go on playing after seek(ms): together the two hold every
   * output frame once. Starts reading at the keyframe block before that time.
   */
  async *framesAfter(ms: number): AsyncGenerator<RfbRecordedFrame> {
    const after = Math.round(ms * 1000);
    const kf = this.keyframeFor(after);
    // Never from the file's start: the handshake there is already in seek()'s keyframe bytes.
    for await (const f of this.framesFrom(kf ? kf.offset : this.dataStart, false)) {
      if (f.micros > after) yield f;
    }
  }

  /** Stretches of at least minMs without output or input, for the player's skip-idle. */
  async idleStretches(minMs: number): Promise<IdleStretch[]> {
    const min = minMs * 1000;
    if (this.index && min >= this.index.idleMinMicros) {
      return this.index.idle.filter(([a, b]) => b - a >= min).map(([a, b]) => ({ startMs: a / 1000, endMs: b / 1000 }));
    }
    // No index (a crash) or a finer threshold than it holds: one pass over the frames.
    const out: IdleStretch[] = [];
    let last = 0;
    let end = 0;
    for await (const f of this.frames(0)) {
      end = f.micros;
      if (f.type !== 'output' && f.type !== 'input') continue;
      if (f.micros - last >= min) out.push({ startMs: last / 1000, endMs: f.micros / 1000 });
      last = f.micros;
    }
    if (end - last >= min) out.push({ startMs: last / 1000, endMs: end / 1000 });
    return out;
  }
}

async function readAt(fh: FileHandle, position: number, length: number): Promise<Buffer> {
  const buf = Buffer.alloc(length);
  let got = 0;
  while (got < length) {
    const { bytesRead } = await fh.read(buf, got, length - got, position + got);
    if (bytesRead === 0) break;
    got += bytesRead;
  }
  return got === length ? buf : buf.subarray(0, got);
}

async function readIndex(fh: FileHandle, size: number, dataStart: number): Promise<{ index: RfbIndex; indexOffset: number } | null> {
  const indexOffset = decodeTrailer(await readAt(fh, size - RFB_TRAILER_BYTES, RFB_TRAILER_BYTES));
  if (indexOffset === null || indexOffset < dataStart || indexOffset + RFB_BLOCK_HEADER_BYTES > size - RFB_TRAILER_BYTES) return null;
  const header = decodeBlockHeader(await readAt(fh, indexOffset, RFB_BLOCK_HEADER_BYTES));
  if (!(header.flags & BLOCK_INDEX) || indexOffset + RFB_BLOCK_HEADER_BYTES + header.storedLen !== size - RFB_TRAILER_BYTES) return null;
  const json = await readAt(fh, indexOffset + RFB_BLOCK_HEADER_BYTES, header.storedLen);
  try {
    return { index: JSON.parse(json.toString('utf8')) as RfbIndex, indexOffset };
  } catch {
    return null;
  }
}

/** Walks block headers (not their contents) up to the last block that is whole. */
async function scanBlocks(fh: FileHandle, dataStart: number, size: number): Promise<BlockRef[]> {
  const blocks: BlockRef[] = [];
  let offset = dataStart;
  while (offset + RFB_BLOCK_HEADER_BYTES <= size) {
    const header = decodeBlockHeader(await readAt(fh, offset, RFB_BLOCK_HEADER_BYTES));
    const known = BLOCK_CODEC_MASK | BLOCK_KEYFRAME | BLOCK_INDEX;
    if ((header.flags & ~known) !== 0 || (header.flags & BLOCK_CODEC_MASK) > BLOCK_DEFLATE) break;
    if (header.flags & BLOCK_INDEX) break;
    if (offset + RFB_BLOCK_HEADER_BYTES + header.storedLen > size) break; // cut off mid-block
    if (header.lastMicros < header.firstMicros) break;
    blocks.push({ offset, header });
    offset += RFB_BLOCK_HEADER_BYTES + header.storedLen;
  }
  return blocks;
}
