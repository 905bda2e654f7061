import { EventEmitter } from 'node:events';
import { deflateRaw, deflateRawSync } from 'node:zlib';
import { HashedFile } from './hashed-file.js';
import {
  BLOCK_HEADER_BYTES, CODEC_DEFLATE, CODEC_STORED, FRAME, frameHeader, MAGIC, type FrameType, type RecordingHeader,
} from './pcrec-format.js';

export interface RecordingWriterOptions {
  flushIntervalMs: number;
  compression: 'deflate' | 'none';
  /** A block is cut when this many raw bytes are pending, whatever the timer says. */
  blockBytes?: number;
  /** write() returns false above this many bytes not yet on disk; 'drain' fires below half. */
  highWaterBytes?: number;
  /** Told after each block reaches the disk: how long the write took and the bytes written (for /metrics). */
  onBlockWritten?: (seconds: number, bytes: number) => void;
}

export interface SealedRecording {
  size: number;
  sha256: string;
  rawBytes: number;
}

// One thread-pool round trip per block: zlib's default 16 KiB output chunk would make it dozens.
const ZLIB_CHUNK = 1 << 20;

function deflateAsync(buf: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => deflateRaw(buf, { level: 1, chunkSize: ZLIB_CHUNK }, (err, out) => (err ? reject(err) : resolve(out))));
}

const SAMPLE_BYTES = 4096;

/**
 * Whether a block is worth compressing, judged from a 4 KiB sample in about 20 µs: random or
 * already-compressed data (firmware images, archives) is stored as it is instead of costing a
 * full DEFLATE pass for nothing.
 */
function looksCompressible(chunks: readonly Buffer[]): boolean {
  let sample: Buffer | undefined;
  for (const c of chunks) {
    if (c.length >= SAMPLE_BYTES) {
      sample = c.subarray(0, SAMPLE_BYTES);
      break;
    }
  }
  if (!sample) return true; // small interactive blocks: text, compress
  return deflateRawSync(sample, { level: 1 }).length < sample.length * 0.9;
}

/**
 * Writes one session's recording. On the relay's path it only appends the chunk and a few header
 * bytes to a list; compression (on libuv's thread pool), hashing and file writes happen per
 * block. write() returns false while too much is pending, and the relay then pauses its source:
 * recording is never skipped to keep up. Any I/O error is sticky and reported through 'error',
 * so the broker can end the session (fail closed).
 */
export class RecordingWriter extends EventEmitter {
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  /** Bytes accepted but not yet on disk (pending + in flight). */
  private unwritten = 0;
  private lastMicros = 0;
  private readonly startHr: bigint;
  private chain: Promise<void> = Promise.resolve();
  private timer: NodeJS.Timeout | null = null;
  private rawBytes = 0;
  private failed: Error | null = null;
  private closed = false;
  private needDrain = false;
  private readonly blockBytes: number;
  private readonly highWater: number;

  private constructor(private readonly out: HashedFile, readonly file: string, private readonly opts: RecordingWriterOptions) {
    super();
    this.startHr = process.hrtime.bigint();
    this.blockBytes = opts.blockBytes ?? 512 * 1024;
    this.highWater = opts.highWaterBytes ?? 8 * 1024 * 1024;
  }

  /** Bytes accepted but not yet on disk (the recording's backlog, for /metrics). */
  get backlogBytes(): number {
    return this.unwritten;
  }

  /** Creates the file and writes the header; throws if the recording cannot be opened. */
  static async create(file: string, header: RecordingHeader, opts: RecordingWriterOptions): Promise<RecordingWriter> {
    const w = new RecordingWriter(await HashedFile.create(file), file, opts);
    const json = Buffer.from(JSON.stringify(header), 'utf8');
    const len = Buffer.alloc(4);
    len.writeUInt32BE(json.length);
    await w.out.write(Buffer.concat([MAGIC, len, json]));
    w.timer = setInterval(() => w.flush(), opts.flushIntervalMs);
    w.timer.unref();
    return w;
  }

  get error(): Error | null {
    return this.failed;
  }

  private now(): number {
    return Number((process.hrtime.bigint() - this.startHr) / 1000n);
  }

  /** Microseconds since the recording started. */
  elapsedMicros(): number {
    return this.now();
  }

  private append(type: FrameType, payload: Buffer): boolean {
    if (this.closed) return false;
    const t = this.now();
    const delta = Math.max(0, t - this.lastMicros);
    this.lastMicros = Math.max(t, this.lastMicros);
    const head = frameHeader(type, delta, payload.length);
    this.pending.push(head, payload);
    const n = head.length + payload.length;
    this.pendingBytes += n;
    this.unwritten += n;
    this.rawBytes += payload.length;
    if (this.pendingBytes >= this.blockBytes) this.flush();
    if (this.unwritten >= this.highWater) {
      // Push out what is pending now, so 'drain' follows as soon as the disk catches up.
      this.flush();
      this.needDrain = true;
      return false;
    }
    return this.failed === null;
  }

  output(chunk: Buffer): boolean {
    return this.append(FRAME.output, chunk);
  }

  input(chunk: Buffer): boolean {
    return this.append(FRAME.input, chunk);
  }

  resize(cols: number, rows: number): boolean {
    const b = Buffer.alloc(4);
    b.writeUInt16BE(Math.min(cols, 0xffff), 0);
    b.writeUInt16BE(Math.min(rows, 0xffff), 2);
    return this.append(FRAME.resize, b);
  }

  event(data: Record<string, unknown>): boolean {
    return this.append(FRAME.event, Buffer.from(JSON.stringify(data), 'utf8'));
  }

  /** Cuts the pending frames into a block and queues it for compression and writing. */
  flush(): void {
    if (this.pendingBytes === 0 || this.failed) return;
    const chunks = this.pending;
    const rawLen = this.pendingBytes;
    this.pending = [];
    this.pendingBytes = 0;
    const compress = this.opts.compression === 'deflate' && looksCompressible(chunks);
    // Stored blocks go to disk as the chunks they are (writev), with no copy.
    const packed: Promise<Buffer[]> = compress ? deflateAsync(Buffer.concat(chunks, rawLen)).then((b) => [b]) : Promise.resolve(chunks);
    this.chain = this.chain.then(async () => {
      if (this.failed) return;
      let stored = await packed;
      let codec = compress ? CODEC_DEFLATE : CODEC_STORED;
      if (compress && (stored[0] as Buffer).length >= rawLen) {
        stored = chunks; // the sample misjudged: never store more than the raw bytes
        codec = CODEC_STORED;
      }
      const storedLen = stored.reduce((n, b) => n + b.length, 0);
      const head = Buffer.alloc(BLOCK_HEADER_BYTES);
      head.writeUInt8(codec, 0);
      head.writeUInt32BE(rawLen, 1);
      head.writeUInt32BE(storedLen, 5);
      const writeStart = process.hrtime.bigint();
      await this.out.write(head, ...stored);
      this.opts.onBlockWritten?.(Number(process.hrtime.bigint() - writeStart) / 1e9, head.length + storedLen);
      this.unwritten -= rawLen;
      if (this.needDrain && this.unwritten < this.highWater / 2) {
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

  /** Writes what is pending, closes the file, and returns its size and SHA-256 (the seal). */
  async close(): Promise<SealedRecording> {
    if (!this.closed) {
      this.flush();
      this.closed = true;
      if (this.timer) clearInterval(this.timer);
    }
    await this.chain;
    const sealed = await this.out.close();
    if (this.failed) throw this.failed;
    return { ...sealed, rawBytes: this.rawBytes };
  }
}
