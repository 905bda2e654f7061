import { createHash } from 'node:crypto';
import { mkdir, open, type FileHandle } from 'node:fs/promises';
import path from 'node:path';

/**
 * A recording file as both writers (.pcrec, .pcrfb) keep it: created new (never over another),
 * mode 0640 in a 0750 folder, appended to only, hashed as it is written, so its SHA-256 — the
 * seal entered into the audit chain — needs no second read.
 */
export class HashedFile {
  private readonly hash = createHash('sha256');
  /** Bytes written so far (the offset the next write lands at). */
  size = 0;

  private constructor(private readonly fh: FileHandle) {}

  static async create(file: string): Promise<HashedFile> {
    await mkdir(path.dirname(file), { recursive: true, mode: 0o750 });
    return new HashedFile(await open(file, 'wx', 0o640));
  }

  async write(...bufs: Buffer[]): Promise<void> {
    for (const b of bufs) this.hash.update(b);
    await this.fh.writev(bufs);
    this.size += bufs.reduce((n, b) => n + b.length, 0);
  }

  /** Flushes to the disk and closes; the size and SHA-256 of everything written. */
  async close(): Promise<{ size: number; sha256: string }> {
    await this.fh.sync().catch(() => undefined);
    await this.fh.close().catch(() => undefined);
    return { size: this.size, sha256: this.hash.digest('hex') };
  }
}
