import { EventEmitter } from 'node:events';
import { deflateRaw } from 'node:zlib';
import { HashedFile } from './hashed-file.js';
import { encodeVarint } from './pcrec-format.js';
import type { SealedRecording } from './recording-writer.js';
import {
  BLOCK_DEFLATE, BLOCK_INDEX, BLOCK_KEYFRAME, BLOCK_STORED, encodeBlockHeader, encodeTrailer, RFB_FRAME, RFB_MAGIC,
  type RfbFrameType, type RfbIndex, type RfbRecordingHeader,
} from './rfb-format.js';
import { keyframeSize, writeKeyframe, type Keyframe } from './rfb-keyframe.js';

export type { SealedRecording } from './recording-writer.js';

export interface RfbWriterOptions {
  /** A block is written at least this often (a crash loses at most this much). */
  flushIntervalMs: number;
  compression: 'deflate' | 'none';
  /** A block is cut when this many raw bytes are pending, whatever the timer says. */
  blockBytes?: number;
  /** write() returns false above this many bytes not yet on disk; 'drain' fires below half. */
  highWaterBytes?: number;
  /** A keyframe is due this long after the last one, if anything was shown since. */
  keyframeIntervalMs?: number;
  /** … or once this many output bytes have been recorded since the last one. */
  keyframeEveryBytes?: number;
  /** Gaps without output or input at least this long go into the index (for skip-idle). */
  idleMinMs?: number;
  /** Microseconds since the session started; tests pass a fake clock (times are data). */
  clock?: () => number;
  /** Told after each block reaches the disk: how long the write took and the bytes written (for /metrics). */
  onBlockWritten?: (seconds: number, bytes: number) => void;
}

export const RFB_WRITER_DEFAULTS = {
  blockBytes: 512 * 1024,
  highWaterBytes: 16 * 1024 * 1024,
  keyframeIntervalMs: 60_000,
  keyframeEveryBytes: 8 * 1024 * 1024,
  idleMinMs: 2_000,
} as const;

// One thread-pool round trip per block: zlib's default 16 KiB output chunk would make it dozens.
const ZLIB_CHUNK = 1 << 20;

function deflateAsync(buf: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => deflateRaw(buf, { level: 1, chunkSize: ZLIB_CHUNK }, (err, out) => (err ? reject(err) : resolve(out))));
}

/**
 * Writes one desktop session's recording (.pcrfb, see rfb-format.ts). The same contract as
 * RecordingWriter: on the relay's path a frame is only appended to a list; compression (libuv's
 * thread pool), hashing and file writes happen per block; a write returns false while too much is
 * pending and 'drain' follows; an I/O error is sticky and reported through 'error'; close()
 * returns the seal. In addition the relay offers keyframes at message boundaries when
 * keyframeDue() says so, and close() writes the index that makes seeking cheap.
 */
export class RfbRecordingWriter extends EventEmitter {
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private blockFirst = 0;
  private blockFlags = 0;
  private unwritten = 0;
  private lastMicros = 0;
  private readonly startHr = process.hrtime.bigint();
  private chain: Promise<void> = Promise.resolve();
  private timer: NodeJS.Timeout | null = null;
  private rawBytes = 0;
  private failed: Error | null = null;
  private closed = false;
  private sealing: Promise<SealedRecording> | null = null;
  private needDrain = false;
  private readonly opts: Required<Omit<RfbWriterOptions, 'clock' | 'onBlockWritten'>>;
  private readonly clock: () => number;
  private readonly onBlockWritten: ((seconds: number, bytes: number) => void) | null;
  private readonly keyframes: Array<[number, number]> = [];
  private lastKeyframeMicros = -1;
  private outputSinceKeyframe = 0;
  private lastActivity = 0;
  private readonly idle: Array<[number, number]> = [];
  private outputBytes = 0;
  private inputMessages = 0;
  /**
   * The last keyframe's buffer, back from the disk: reused for the next one, because touching a
   * fresh 4 MiB buffer costs page faults (measured 12–15 ms here) on the relay's thread.
   */
  private spare: Buffer | null = null;

  private constructor(private readonly out: HashedFile, readonly file: string, opts: RfbWriterOptions) {
    super();
    const { clock, onBlockWritten, ...rest } = opts;
    this.opts = { ...RFB_WRITER_DEFAULTS, ...rest };
    this.onBlockWritten = onBlockWritten ?? null;
    this.clock = clock ?? (() => Number((process.hrtime.bigint() - this.startHr) / 1000n));
  }

  /** Bytes accepted but not yet on disk (the recording's backlog, for /metrics). */
  get backlogBytes(): number {
    return this.unwritten;
  }

  /** Creates the file and writes the header; throws if the recording cannot be opened. */
  static async create(file: string, header: RfbRecordingHeader, opts: RfbWriterOptions): Promise<RfbRecordingWriter> {
    const w = new RfbRecordingWriter(await HashedFile.create(file), file, opts);
    const json = Buffer.from(JSON.stringify(header), 'utf8');
    const len = Buffer.alloc(4);
    len.writeUInt32BE(json.length);
    await w.out.write(Buffer.concat([RFB_MAGIC, len, json]));
    w.timer = setInterval(() => w.flush(), opts.flushIntervalMs);
    w.timer.unref();
    return w;
  }

  get error(): Error | null {
    return this.failed;
  }

  /** Microseconds since the recording started. */
  elapsedMicros(): number {
    return this.clock();
  }

  private append(type: RfbFrameType, payload: Buffer): boolean {
    // After a failure nothing more is kept: the broker ends the session on 'error'.
    if (this.closed || this.failed) return false;
    const t = Math.max(this.clock(), this.lastMicros);
    const bytes: number[] = [type];
    encodeVarint(this.pendingBytes === 0 ? 0 : t - this.lastMicros, bytes);
    encodeVarint(payload.length, bytes);
    return this.push(type, t, [Buffer.from(bytes), payload], payload.length);
  }

  private push(type: RfbFrameType, t: number, parts: Buffer[], payloadLen: number): boolean {
    if (this.pendingBytes === 0) this.blockFirst = t;
    this.lastMicros = t;
    let n = 0;
    for (const p of parts) {
      this.pending.push(p);
      n += p.length;
    }
    this.pendingBytes += n;
    this.unwritten += n;
    this.rawBytes += payloadLen;
    if (type === RFB_FRAME.output || type === RFB_FRAME.input) {
      if (t - this.lastActivity >= this.opts.idleMinMs * 1000) this.idle.push([this.lastActivity, t]);
      this.lastActivity = t;
    }
    if (this.pendingBytes >= this.opts.blockBytes) this.flush();
    if (this.unwritten >= this.opts.highWaterBytes) {
      // Push out what is pending now, so 'drain' follows as soon as the disk catches up.
      this.flush();
      this.needDrain = true;
      return false;
    }
    return this.failed === null;
  }

  /** RFB bytes the browser was sent: whole messages (or the handshake). */
  output(chunk: Buffer): boolean {
    this.outputBytes += chunk.length;
    this.outputSinceKeyframe += chunk.length;
    return this.append(RFB_FRAME.output, chunk);
  }

  /** One client message forwarded to the device (key, pointer, clipboard), as on the wire. */
  input(message: Buffer): boolean {
    this.inputMessages += 1;
    return this.append(RFB_FRAME.input, message);
  }

  event(data: Record<string, unknown>): boolean {
    return this.append(RFB_FRAME.event, Buffer.from(JSON.stringify(data), 'utf8'));
  }

  /** Whether the relay should offer a keyframe at the next message boundary. */
  keyframeDue(): boolean {
    if (this.lastKeyframeMicros < 0) return true;
    if (this.outputSinceKeyframe === 0) return false;
    return this.outputSinceKeyframe >= this.opts.keyframeEveryBytes
      || this.clock() - this.lastKeyframeMicros >= this.opts.keyframeIntervalMs * 1000;
  }

  /**
   * Records the screen as it is between two output messages. It starts a block of its own, so
   * a reader can begin decoding there; the index learns the block's offset once it is written.
   */
  keyframe(k: Keyframe): boolean {
    if (this.closed || this.failed) return false;
    this.flush();
    // Framed in one buffer: the screen is copied once here, and not again when the block is cut.
    const size = keyframeSize(k);
    const head: number[] = [RFB_FRAME.keyframe];
    encodeVarint(0, head);
    encodeVarint(size, head);
    const frame = this.spare?.length === head.length + size ? this.spare : Buffer.allocUnsafe(head.length + size);
    this.spare = null;
    frame.set(head, 0);
    writeKeyframe(k, frame, head.length);
    this.blockFlags = BLOCK_KEYFRAME;
    const ok = this.push(RFB_FRAME.keyframe, Math.max(this.clock(), this.lastMicros), [frame], size);
    this.lastKeyframeMicros = this.lastMicros;
    this.outputSinceKeyframe = 0;
    this.flush();
    return ok;
  }

  /** Cuts the pending frames into a block and queues it for compression and writing. */
  flush(): void {
    if (this.pendingBytes === 0 || this.failed) return;
    const chunks = this.pending;
    const rawLen = this.pendingBytes;
    const first = this.blockFirst;
    const last = this.lastMicros;
    const keyframe = this.blockFlags === BLOCK_KEYFRAME;
    this.pending = [];
    this.pendingBytes = 0;
    this.blockFlags = 0;
    const compress = this.opts.compression === 'deflate';
    // Compression starts now on the thread pool; only the writes wait for their turn.
    const whole = chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, rawLen);
    const packed: Promise<Buffer[]> = compress ? deflateAsync(whole).then((b) => [b]) : Promise.resolve(chunks);
    this.chain = this.chain.then(async () => {
      if (this.failed) return;
      let stored = await packed;
      let codec = compress ? BLOCK_DEFLATE : BLOCK_STORED;
      if (compress && (stored[0] as Buffer).length >= rawLen) {
        stored = chunks; // incompressible: never store more than the raw bytes
        codec = BLOCK_STORED;
      }
      const storedLen = stored.reduce((n, b) => n + b.length, 0);
      const offset = this.out.size;
      const head = encodeBlockHeader({ flags: codec | (keyframe ? BLOCK_KEYFRAME : 0), rawLen, storedLen, firstMicros: first, lastMicros: last });
      const writeStart = process.hrtime.bigint();
      await this.out.write(head, ...stored);
      this.onBlockWritten?.(Number(process.hrtime.bigint() - writeStart) / 1e9, head.length + storedLen);
      if (keyframe) {
        this.keyframes.push([first, offset]);
        if (chunks.length === 1) this.spare = chunks[0] as Buffer;
      }
      this.unwritten -= rawLen;
      if (this.needDrain && this.unwritten < this.opts.highWaterBytes / 2) {
        this.needDrain = false;
        this.emit('drain');
      }
    }).catch((err: unknown) => this.fail(err));
  }

  private fail(err: unknown): void {
    if (this.failed) return;
    this.failed = err instanceof Error ? err : new Error(String(err));
    this.emit('error', this.failed);
  }

  /** Writes what is pending, the index and the trailer, closes the file, and returns the seal (once). */
  close(): Promise<SealedRecording> {
    this.sealing ??= this.seal();
    return this.sealing;
  }

  private async seal(): Promise<SealedRecording> {
    this.flush();
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    this.chain = this.chain.then(async () => {
      if (this.failed) return;
      const end = this.lastMicros;
      if (end - this.lastActivity >= this.opts.idleMinMs * 1000) this.idle.push([this.lastActivity, end]);
      const index: RfbIndex = {
        version: 1, durationMicros: end, keyframes: this.keyframes, idle: this.idle, idleMinMicros: this.opts.idleMinMs * 1000,
        outputBytes: this.outputBytes, inputMessages: this.inputMessages,
      };
      const json = Buffer.from(JSON.stringify(index), 'utf8');
      const offset = this.out.size;
      const head = encodeBlockHeader({ flags: BLOCK_STORED | BLOCK_INDEX, rawLen: json.length, storedLen: json.length, firstMicros: end, lastMicros: end });
      await this.out.write(head, json, encodeTrailer(offset));
    }).catch((err: unknown) => this.fail(err));
    await this.chain;
    const sealed = await this.out.close();
    if (this.failed) throw this.failed;
    return { ...sealed, rawBytes: this.rawBytes };
  }
}
