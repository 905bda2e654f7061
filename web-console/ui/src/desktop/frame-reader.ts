/** One frame of `/api/recordings/:id/desktop/frames`: its time in the recording and its RFB bytes. */
export interface DesktopFrame {
  ms: number;
  bytes: Uint8Array;
}

/**
 * Reads the frames endpoint's stream (`u32 ms, u32 length, bytes`, big-endian) one frame at a
 * time, as the player needs them: the stream is pulled only as fast as it is played, so a long
 * recording is never held in memory whole.
 */
export class FrameReader {
  private chunks: Uint8Array[] = [];
  private buffered = 0;
  private finished = false;

  constructor(private readonly reader: ReadableStreamDefaultReader<Uint8Array>) {}

  /** The next frame, or null at the end of the stream. */
  async next(): Promise<DesktopFrame | null> {
    if (!(await this.fill(8))) return this.leftover();
    const head = this.peek(8);
    const view = new DataView(head.buffer, head.byteOffset, 8);
    const ms = view.getUint32(0);
    const length = view.getUint32(4);
    if (!(await this.fill(8 + length))) return this.leftover();
    const all = this.take(8 + length);
    return { ms, bytes: all.subarray(8) };
  }

  cancel(): void {
    this.finished = true;
    void this.reader.cancel().catch(() => undefined);
  }

  private leftover(): null {
    if (this.buffered > 0) throw new Error('the recording stream ended in the middle of a frame');
    return null;
  }

  private async fill(n: number): Promise<boolean> {
    while (this.buffered < n) {
      if (this.finished) return false;
      const { done, value } = await this.reader.read();
      if (done) {
        this.finished = true;
        return false;
      }
      if (value.length > 0) {
        this.chunks.push(value);
        this.buffered += value.length;
      }
    }
    return true;
  }

  private peek(n: number): Uint8Array {
    const first = this.chunks[0] as Uint8Array;
    if (first.length >= n) return first.subarray(0, n);
    return this.join(n, false);
  }

  private take(n: number): Uint8Array {
    return this.join(n, true);
  }

  private join(n: number, consume: boolean): Uint8Array {
    const first = this.chunks[0] as Uint8Array;
    if (consume && first.length === n) {
      this.chunks.shift();
      this.buffered -= n;
      return first;
    }
    const out = new Uint8Array(n);
    let filled = 0;
    let i = 0;
    while (filled < n) {
      const c = this.chunks[i] as Uint8Array;
      const part = Math.min(c.length, n - filled);
      out.set(c.subarray(0, part), filled);
      filled += part;
      if (consume) {
        if (part === c.length) {
          this.chunks.shift();
        } else {
          this.chunks[0] = c.subarray(part);
          i = 0;
        }
        continue;
      }
      i++;
    }
    if (consume) this.buffered -= n;
    return out;
  }
}
