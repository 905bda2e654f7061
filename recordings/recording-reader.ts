import { open } from 'node:fs/promises';
import { inflateRawSync } from 'node:zlib';
import { BLOCK_HEADER_BYTES, CODEC_DEFLATE, CODEC_STORED, decodeVarint, FRAME, MAGIC, type RecordingHeader } from './pcrec-format.js';

export type RecordedFrame =
  | { type: 'output' | 'input'; micros: number; data: Buffer }
  | { type: 'resize'; micros: number; cols: number; rows: number }
  | { type: 'event'; micros: number; event: Record<string, unknown> };

/** Reads a .pcrec file block by block; memory stays at one block whatever the session's size. */
export async function* readRecording(file: string): AsyncGenerator<RecordingHeader | RecordedFrame> {
  const fh = await open(file, 'r');
  try {
    let pos = 0;
    const readExactly = async (n: number): Promise<Buffer | null> => {
      const buf = Buffer.alloc(n);
      let got = 0;
      while (got < n) {
        const { bytesRead } = await fh.read(buf, got, n - got, pos + got);
        if (bytesRead === 0) break;
        got += bytesRead;
      }
      if (got === 0) return null;
      if (got < n) throw new Error(`${file}: truncated at byte ${pos + got}`);
      pos += n;
      return buf;
    };
    const magic = await readExactly(MAGIC.length + 4);
    if (!magic || !magic.subarray(0, MAGIC.length).equals(MAGIC)) throw new Error(`${file}: not a Portcullis recording`);
    const headerBuf = await readExactly(magic.readUInt32BE(MAGIC.length));
    if (!headerBuf) throw new Error(`${file}: truncated header`);
    yield JSON.parse(headerBuf.toString('utf8')) as RecordingHeader;

    let micros = 0;
    for (;;) {
      const bh = await readExactly(BLOCK_HEADER_BYTES);
      if (!bh) break;
      const codec = bh.readUInt8(0);
      const rawLen = bh.readUInt32BE(1);
      const stored = await readExactly(bh.readUInt32BE(5));
      if (!stored) throw new Error(`${file}: truncated block`);
      let raw: Buffer;
      if (codec === CODEC_STORED) raw = stored;
      else if (codec === CODEC_DEFLATE) raw = inflateRawSync(stored);
      else throw new Error(`${file}: unknown block codec ${codec}`);
      if (raw.length !== rawLen) throw new Error(`${file}: block length mismatch`);
      let off = 0;
      while (off < raw.length) {
        const type = raw[off] as number;
        const d = decodeVarint(raw, off + 1);
        const l = decodeVarint(raw, d.next);
        const data = raw.subarray(l.next, l.next + l.value);
        off = l.next + l.value;
        micros += d.value;
        if (type === FRAME.output) yield { type: 'output', micros, data };
        else if (type === FRAME.input) yield { type: 'input', micros, data };
        else if (type === FRAME.resize) yield { type: 'resize', micros, cols: data.readUInt16BE(0), rows: data.readUInt16BE(2) };
        else if (type === FRAME.event) yield { type: 'event', micros, event: JSON.parse(data.toString('utf8')) as Record<string, unknown> };
        else throw new Error(`${file}: unknown frame type ${type}`);
      }
    }
  } finally {
    await fh.close();
  }
}

export function isHeader(x: RecordingHeader | RecordedFrame): x is RecordingHeader {
  return (x as RecordingHeader).format === 'pcrec';
}
