/**
 * Follows an SFTP session (protocol version 3, what OpenSSH's sftp, scp and sftp-server speak)
 * from copies of its bytes, and reports every file opened (upload, download, with bytes and
 * SHA-256) and every change to the device's file tree (remove, rename, mkdir, rmdir, links,
 * server-side copies) once the device has answered it. R-6.3e.
 *
 * How
 * - Both directions are cut into packets (uint32 length, type byte, payload). Requests are kept
 *   by their id until the device's answer (STATUS, HANDLE, DATA) arrives; a HANDLE for an OPEN
 *   starts a file, READ/DATA and WRITE count and hash its bytes, CLOSE (answered) settles it.
 * - Hash in file order. OpenSSH pipelines many requests with rising offsets; data that arrives
 *   ahead of the next expected offset waits in memory (at most `MAX_REORDER_BYTES` per file),
 *   and is hashed once the gap fills. A write below what was hashed, a gap left at CLOSE, or more
 *   reordering than that budget makes the hash null; the byte count stays exact.
 * - A download reports what was read; a short read at end of file counts what the device sent.
 *
 * What it cannot promise
 * - Bytes are counted as sent; a WRITE the device refused (its STATUS is an error) is taken
 *   back from the count, but a hash cannot be taken back: such a file is reported with the
 *   refusal as `failed`.
 * - Another SFTP version (4–6) is reported as unreadable: OpenSSH never negotiates one.
 */
import { createHash, type Hash } from 'node:crypto';
import type { FileEvent, FileEventSink, TransferWatch } from './file-events.js';

/** OpenSSH's sftp-server refuses packets over 256 KiB; a little headroom for other servers. */
const MAX_PACKET = 512 * 1024;
const MAX_REORDER_BYTES = 8 * 1024 * 1024;
/** Requests without an answer yet; OpenSSH keeps at most 64 in flight per transfer. */
const MAX_PENDING = 4096;
const MAX_OPEN_FILES = 1024;

const T = {
  INIT: 1, VERSION: 2, OPEN: 3, CLOSE: 4, READ: 5, WRITE: 6, REMOVE: 13, MKDIR: 14, RMDIR: 15, RENAME: 18, SYMLINK: 20,
  STATUS: 101, HANDLE: 102, DATA: 103, EXTENDED: 200,
} as const;
const FXF_READ = 0x1;
const FXF_WRITE = 0x2;
const FX_OK = 0;
const FX_EOF = 1;
const STATUS_NAMES: Readonly<Record<number, string>> = {
  2: 'no such file', 3: 'permission denied', 4: 'failure', 5: 'bad message', 8: 'operation unsupported',
};

class Unreadable extends Error {}

/** Reads SFTP's big-endian fields from one packet. */
class Fields {
  private at = 0;
  constructor(private readonly b: Buffer) {}
  u32(): number {
    if (this.at + 4 > this.b.length) throw new Unreadable('a packet is shorter than its fields');
    const v = this.b.readUInt32BE(this.at);
    this.at += 4;
    return v;
  }
  u64(): number {
    if (this.at + 8 > this.b.length) throw new Unreadable('a packet is shorter than its fields');
    const v = this.b.readBigUInt64BE(this.at);
    this.at += 8;
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new Unreadable('a file offset beyond 2^53');
    return Number(v);
  }
  bytes(): Buffer {
    const n = this.u32();
    if (this.at + n > this.b.length) throw new Unreadable('a string runs past the end of its packet');
    const v = this.b.subarray(this.at, this.at + n);
    this.at += n;
    return v;
  }
  text(): string {
    return this.bytes().toString('utf8');
  }
}

/** Splits one direction's bytes into whole packets, without copying file data more than once. */
class Packets {
  private parts: Buffer[] = [];
  private size = 0;

  *feed(chunk: Buffer): Generator<Buffer> {
    this.parts.push(chunk);
    this.size += chunk.length;
    for (;;) {
      if (this.size < 4) return;
      const head = this.peek(4);
      const len = head.readUInt32BE(0);
      if (len < 1 || len > MAX_PACKET) throw new Unreadable(`a packet of ${len} bytes (at most ${MAX_PACKET})`);
      if (this.size < 4 + len) return;
      const whole = this.take(4 + len);
      yield whole.subarray(4);
    }
  }

  private peek(n: number): Buffer {
    // Joined once and kept joined: joining again for every small chunk of a packet still coming
    // would copy it over and over (a client sending 1-byte chunks would stall the gateway).
    if ((this.parts[0] as Buffer).length < n) this.parts = [Buffer.concat(this.parts)];
    return (this.parts[0] as Buffer).subarray(0, n);
  }

  private take(n: number): Buffer {
    const first = this.parts[0] as Buffer;
    let out: Buffer;
    if (first.length >= n) {
      out = first.subarray(0, n);
      if (first.length === n) this.parts.shift();
      else this.parts[0] = first.subarray(n);
    } else {
      const all = Buffer.concat(this.parts);
      out = all.subarray(0, n);
      this.parts = all.length > n ? [all.subarray(n)] : [];
    }
    this.size -= n;
    return out;
  }
}

/** One opened file: its bytes each way, hashed in file order. */
class OpenFile {
  bytesRead = 0;
  bytesWritten = 0;
  private hash: Hash | null = createHash('sha256');
  private next: number | null = null;
  private first: number | null = null;
  private readonly ahead = new Map<number, Buffer>();
  private aheadBytes = 0;
  failed: string | null = null;

  constructor(readonly path: string, readonly read: boolean, readonly write: boolean) {}

  /**
   * A READ asked for bytes at `offset`. The device may answer reads in any order, so the run
   * starts where the first read asked, not at whichever answer comes first.
   */
  asked(offset: number): void {
    if (this.next !== null) return;
    this.next = offset;
    this.first = offset;
  }

  /** Bytes at `offset`, in whatever order they come. */
  add(offset: number, data: Buffer): void {
    if (data.length === 0) return;
    // The first byte's offset is the lowest one that went, even when the hash cannot be kept.
    if (this.first === null || offset < this.first) this.first = offset;
    if (this.hash === null) return;
    this.next ??= offset;
    if (offset < this.next) {
      // Written again below what was hashed (or overlapping): no single run any more.
      this.hash = null;
      return;
    }
    if (offset > this.next) {
      if (this.ahead.has(offset) || this.aheadBytes + data.length > MAX_REORDER_BYTES) {
        this.dropHash();
        return;
      }
      this.ahead.set(offset, Buffer.from(data));
      this.aheadBytes += data.length;
      return;
    }
    this.hash.update(data);
    this.next += data.length;
    for (let more = this.ahead.get(this.next); more !== undefined; more = this.ahead.get(this.next)) {
      this.ahead.delete(this.next);
      this.aheadBytes -= more.length;
      this.hash.update(more);
      this.next += more.length;
    }
  }

  private dropHash(): void {
    this.hash = null;
    this.ahead.clear();
    this.aheadBytes = 0;
  }

  /** The hash, or null when the bytes were not one gapless run. */
  digest(): { sha256: string | null; offset: number } {
    const offset = this.first ?? 0;
    if (this.hash === null || this.ahead.size > 0) return { sha256: null, offset };
    return { sha256: this.hash.digest('hex'), offset };
  }
}

type Pending =
  | { kind: 'open'; path: string; read: boolean; write: boolean }
  | { kind: 'read'; handle: string; offset: number }
  | { kind: 'write'; handle: string; bytes: number }
  | { kind: 'close'; handle: string }
  | { kind: 'op'; event: Omit<FileEvent, 'outcome' | 'protocol'> }
  | { kind: 'other' };

export class SftpWatch implements TransferWatch {
  private readonly up = new Packets();
  private readonly down = new Packets();
  private readonly pending = new Map<number, Pending>();
  private readonly files = new Map<string, OpenFile>();
  private broken = false;

  constructor(private readonly sink: FileEventSink) {}

  fromClient(chunk: Buffer): void {
    this.guard(() => {
      for (const p of this.up.feed(chunk)) this.request(p);
    });
  }

  fromDevice(chunk: Buffer): void {
    this.guard(() => {
      for (const p of this.down.feed(chunk)) this.answer(p);
    });
  }

  end(): void {
    if (this.broken) return;
    this.broken = true;
    this.settleOpen();
  }

  private guard(work: () => void): void {
    if (this.broken) return;
    try {
      work();
    } catch (err) {
      this.broken = true;
      const reason = err instanceof Unreadable ? err.message : `the watcher failed (${err instanceof Error ? err.message : String(err)})`;
      // Bytes of the files still open have already gone through: they are on record before the session ends.
      this.settleOpen();
      try {
        this.sink.onUnreadable(`the SFTP stream could not be followed: ${reason}`);
      } catch {
        // Never throw into the relay.
      }
    }
  }

  /** Files still open are reported once, as incomplete; nothing is followed after this. */
  private settleOpen(): void {
    const open = [...this.files.values()];
    this.files.clear();
    this.pending.clear();
    for (const f of open) {
      try {
        this.report(f, 'incomplete');
      } catch {
        // The sink's own failure: never thrown into the relay, and the other files still go.
      }
    }
  }

  private request(p: Buffer): void {
    const type = p[0] as number;
    const f = new Fields(p.subarray(1));
    if (type === T.INIT) {
      const version = f.u32();
      if (version < 3) throw new Unreadable(`SFTP version ${version} asked for`);
      return;
    }
    const id = f.u32();
    if (this.pending.size >= MAX_PENDING) throw new Unreadable(`more than ${MAX_PENDING} requests without an answer`);
    this.pending.set(id, this.pendingFor(type, f));
  }

  private pendingFor(type: number, f: Fields): Pending {
    switch (type) {
      case T.OPEN: {
        const path = f.text();
        const flags = f.u32();
        return { kind: 'open', path, read: (flags & FXF_READ) !== 0, write: (flags & FXF_WRITE) !== 0 };
      }
      case T.READ: {
        const handle = f.bytes().toString('hex');
        const offset = f.u64();
        this.files.get(handle)?.asked(offset);
        return { kind: 'read', handle, offset };
      }
      case T.WRITE: {
        const handle = f.bytes().toString('hex');
        const offset = f.u64();
        const data = f.bytes();
        const file = this.files.get(handle);
        if (file) {
          file.bytesWritten += data.length;
          file.add(offset, data);
        }
        return { kind: 'write', handle, bytes: data.length };
      }
      case T.CLOSE:
        return { kind: 'close', handle: f.bytes().toString('hex') };
      case T.REMOVE:
        return { kind: 'op', event: { op: 'remove', path: f.text() } };
      case T.MKDIR:
        return { kind: 'op', event: { op: 'mkdir', path: f.text() } };
      case T.RMDIR:
        return { kind: 'op', event: { op: 'rmdir', path: f.text() } };
      case T.RENAME: {
        const path = f.text();
        return { kind: 'op', event: { op: 'rename', path, to: f.text() } };
      }
      case T.SYMLINK: {
        // OpenSSH's server (and client) swap the fields against the draft: target first, then link path.
        const target = f.text();
        return { kind: 'op', event: { op: 'symlink', path: f.text(), to: target } };
      }
      case T.EXTENDED:
        return this.extended(f);
      default:
        return { kind: 'other' };
    }
  }

  private extended(f: Fields): Pending {
    const name = f.text();
    if (name === 'posix-rename@openssh.com') {
      const path = f.text();
      return { kind: 'op', event: { op: 'rename', path, to: f.text() } };
    }
    if (name === 'hardlink@openssh.com') {
      const path = f.text();
      return { kind: 'op', event: { op: 'hardlink', path, to: f.text() } };
    }
    if (name === 'copy-data') {
      // Server-side copy between two open handles: the data never crosses the gateway.
      const from = this.files.get(f.bytes().toString('hex'));
      f.u64();
      const length = f.u64();
      const to = this.files.get(f.bytes().toString('hex'));
      return { kind: 'op', event: { op: 'copy', path: from?.path ?? '(unknown handle)', to: to?.path ?? '(unknown handle)', bytes: length } };
    }
    return { kind: 'other' };
  }

  private answer(p: Buffer): void {
    const type = p[0] as number;
    const f = new Fields(p.subarray(1));
    if (type === T.VERSION) {
      const version = f.u32();
      if (version !== 3) throw new Unreadable(`the device answered with SFTP version ${version}`);
      return;
    }
    const id = f.u32();
    const req = this.pending.get(id);
    if (!req) return;
    this.pending.delete(id);
    if (type === T.STATUS) {
      const code = f.u32();
      const message = code === FX_OK || code === FX_EOF ? '' : statusText(code, f);
      this.status(req, code, message);
      return;
    }
    if (type === T.HANDLE && req.kind === 'open') {
      const handle = f.bytes().toString('hex');
      if (this.files.size >= MAX_OPEN_FILES) throw new Unreadable(`more than ${MAX_OPEN_FILES} files open at once`);
      this.files.set(handle, new OpenFile(req.path, req.read, req.write));
      return;
    }
    if (type === T.DATA && req.kind === 'read') {
      const data = f.bytes();
      const file = this.files.get(req.handle);
      if (file) {
        file.bytesRead += data.length;
        file.add(req.offset, data);
      }
    }
  }

  private status(req: Pending, code: number, message: string): void {
    const failed = code !== FX_OK && code !== FX_EOF;
    switch (req.kind) {
      case 'open':
        if (failed) this.emit({ op: req.write ? 'upload' : 'download', path: req.path, bytes: 0, sha256: null, outcome: 'failed', detail: message });
        return;
      case 'write': {
        const file = this.files.get(req.handle);
        if (file && failed) {
          file.bytesWritten -= req.bytes;
          file.failed ??= message;
        }
        return;
      }
      case 'close': {
        const file = this.files.get(req.handle);
        if (!file) return;
        this.files.delete(req.handle);
        this.report(file, failed ? 'failed' : 'ok', failed ? message : undefined);
        return;
      }
      case 'op':
        this.emit({ ...req.event, outcome: failed ? 'failed' : 'ok', ...(failed ? { detail: message } : {}) });
        return;
      default:
        return;
    }
  }

  private report(file: OpenFile, outcome: FileEvent['outcome'], closeError?: string): void {
    const { sha256, offset } = file.digest();
    const detail = file.failed ?? closeError;
    const result = file.failed ? 'failed' : outcome;
    const base = { path: file.path, sha256, ...(offset > 0 ? { offset } : {}), outcome: result, ...(detail ? { detail } : {}) } as const;
    // A file opened both ways reports each way that moved bytes; one opened to write is an
    // upload even when empty (it was created or truncated).
    if (file.write) this.emit({ op: 'upload', bytes: file.bytesWritten, ...base, sha256: file.bytesRead > 0 ? null : sha256 });
    if (file.read && (!file.write || file.bytesRead > 0)) this.emit({ op: 'download', bytes: file.bytesRead, ...base, sha256: file.bytesWritten > 0 ? null : sha256 });
  }

  private emit(e: Omit<FileEvent, 'protocol'>): void {
    this.sink.onFile({ protocol: 'sftp', ...e });
  }
}

function statusText(code: number, f: Fields): string {
  let message = '';
  try {
    message = f.text();
  } catch {
    // OpenSSH always sends a message; an old server may not.
  }
  // eslint-disable-next-line no-control-regex -- the device's text goes into the audit: no control characters.
  const clean = message.replace(/[\u0000-\u001f\u007f-\u009f]/g, ' ').trim().slice(0, 200);
  return clean || STATUS_NAMES[code] || `status ${code}`;
}
