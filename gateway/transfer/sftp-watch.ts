/**
 * Follows an SFTP session (protocol version 3, what OpenSSH's sftp, scp and sftp-server speak)
 * from copies of its bytes, and reports every file opened (upload, download, with bytes and
 * SHA-256), every change to the device's file tree (remove, rename, mkdir, rmdir, links,
 * server-side copies) and every change of attributes (setstat: chmod, chown, truncate) once the
 * device has answered it. R-6.3e.
 *
 * How
 * - Both directions are cut into packets (uint32 length, type byte, payload). Requests are kept
 *   by their id until the device's answer (STATUS, HANDLE, DATA) arrives; a HANDLE for an OPEN
 *   starts a file, READ/DATA and WRITE count and hash its bytes, CLOSE (answered) settles it.
 * - Each direction of a file has its own count and hash, in file order. OpenSSH pipelines many
 *   requests with rising offsets; data that arrives ahead of the next expected offset waits in
 *   memory (at most `MAX_REORDER_BYTES` for the whole session) and is hashed once the gap fills.
 *   A write below what was hashed, a gap left at CLOSE, or more reordering than that budget
 *   makes the hash null; the byte count stays exact.
 * - What is reported follows what happened, not what the OPEN asked for: bytes read are a
 *   download even on an open without the READ flag (sftp-server opens read-only then); an open
 *   that may create or truncate is an upload even with no byte written.
 *
 * Strict, as the watcher's view must be the device's: anything a real client never sends, and
 * that could make the two disagree, ends the session (unreadable) — a request on a handle the
 * device has not given or that is being closed, a request id reused before its answer, an
 * answer to nothing, a handle given twice, a request type SFTP v3 does not have, an extension
 * outside the list below, a path longer than Linux's PATH_MAX. Changes still unanswered at the
 * end are reported as incomplete, as are files still open.
 *
 * Gating (a grant with one direction only, R-6.3e)
 * - Every byte goes through the watcher, one whole packet at a time; the device's answers reach
 *   the client only whole too, so the gateway's own answers always fall between two packets.
 * - Download is reading file content off the device: an OPEN that can read (READ, or neither
 *   READ nor WRITE, which sftp-server opens read-only), and READ.
 * - Upload is every change to the device's files: an OPEN that writes, appends, creates or
 *   truncates, WRITE, REMOVE, RENAME (and posix-rename), MKDIR, RMDIR, SETSTAT, FSETSTAT (and
 *   lsetstat), SYMLINK, hardlink and copy-data.
 * - Neither, allowed on any grant that allows one direction: listing directories and reading
 *   names and attributes (OPENDIR, READDIR, STAT, LSTAT, FSTAT, REALPATH, READLINK, statvfs),
 *   CLOSE and fsync. Both clients need them to find their way; they carry no file content.
 * - A request for the direction the grant lacks is not forwarded: the gateway answers it with
 *   SSH_FX_PERMISSION_DENIED and a message naming the code, tells the client's stderr, and
 *   reports it (outcome denied). The request id never reached the device, so it stays the
 *   client's. More than MAX_REFUSALS refusals in one session end it as unreadable: a client
 *   that keeps asking is not a real one, and must not fill the audit chain.
 *
 * What it cannot promise
 * - Bytes are counted as sent; a WRITE the device refused (its STATUS is an error) is taken
 *   back from the count, but a hash cannot be taken back: such an upload is reported with the
 *   refusal as `failed`.
 * - Another SFTP version (4–6) is reported as unreadable: OpenSSH never negotiates one.
 */
import { createHash, type Hash } from 'node:crypto';
import { ERROR_CATALOGUE } from '../../policy/error-codes.js';
import {
  peerText, type FileAttributes, type FileEvent, type FileEventSink, type TransferDirections, type TransferOutlet, type TransferRefusalCode, type TransferWatch,
} from './file-events.js';

/** OpenSSH's sftp-server refuses packets over 256 KiB; a little headroom for other servers. */
const MAX_PACKET = 512 * 1024;
/** Per session, all files together (a file each could otherwise hold this many times over). */
const MAX_REORDER_BYTES = 16 * 1024 * 1024;
/** Requests without an answer yet; OpenSSH keeps at most 64 in flight per transfer. */
const MAX_PENDING = 4096;
const MAX_OPEN_FILES = 1024;
/** Requests refused for their direction in one session before the session is ended. */
const MAX_REFUSALS = 256;
/** Refusals told on the client's stderr; the rest only in the audit. */
const MAX_NOTICES = 20;

const T = {
  INIT: 1, VERSION: 2, OPEN: 3, CLOSE: 4, READ: 5, WRITE: 6, LSTAT: 7, FSTAT: 8, SETSTAT: 9, FSETSTAT: 10, OPENDIR: 11, READDIR: 12,
  REMOVE: 13, MKDIR: 14, RMDIR: 15, REALPATH: 16, STAT: 17, RENAME: 18, READLINK: 19, SYMLINK: 20,
  STATUS: 101, HANDLE: 102, DATA: 103, EXTENDED: 200,
} as const;
const FXF_READ = 0x1;
const FXF_WRITE = 0x2;
const FXF_APPEND = 0x4;
const FXF_CREAT = 0x8;
const FXF_TRUNC = 0x10;
const ATTR = { SIZE: 0x1, UIDGID: 0x2, PERMISSIONS: 0x4, ACMODTIME: 0x8, EXTENDED: 0x80000000 } as const;
/** Linux's PATH_MAX: a longer path is no real client's. */
const MAX_PATH_BYTES = 4096;
const FX_OK = 0;
const FX_EOF = 1;
const FX_PERMISSION_DENIED = 3;
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
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new Unreadable('a file offset or size beyond 2^53');
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
  path(): string {
    const raw = this.bytes();
    if (raw.length > MAX_PATH_BYTES) throw new Unreadable(`a path of ${raw.length} bytes (at most ${MAX_PATH_BYTES})`);
    return raw.toString('utf8');
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
      // The whole packet, length included: a gating watcher passes it on as it came.
      yield this.take(4 + len);
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

/** Out-of-order data all files of one session may hold back at once, waiting for a gap to fill. */
interface ReorderBudget {
  used: number;
}

/** The bytes of one file in one direction: counted, and hashed in file order while they make one gapless run. */
class OrderedRun {
  bytes = 0;
  private hash: Hash | null = createHash('sha256');
  private next: number | null = null;
  private first: number | null = null;
  private readonly ahead = new Map<number, Buffer>();
  private aheadBytes = 0;

  constructor(private readonly budget: ReorderBudget) {}

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
    this.bytes += data.length;
    // The first byte's offset is the lowest one that went, even when the hash cannot be kept.
    if (this.first === null || offset < this.first) this.first = offset;
    if (this.hash === null) return;
    this.next ??= offset;
    if (offset < this.next) {
      // Written again below what was hashed (or overlapping): no single run any more.
      this.dropHash();
      return;
    }
    if (offset > this.next) {
      if (this.ahead.has(offset) || this.budget.used + data.length > MAX_REORDER_BYTES) {
        this.dropHash();
        return;
      }
      this.ahead.set(offset, Buffer.from(data));
      this.aheadBytes += data.length;
      this.budget.used += data.length;
      return;
    }
    this.hash.update(data);
    this.next += data.length;
    for (let more = this.ahead.get(this.next); more !== undefined; more = this.ahead.get(this.next)) {
      this.ahead.delete(this.next);
      this.aheadBytes -= more.length;
      this.budget.used -= more.length;
      this.hash.update(more);
      this.next += more.length;
    }
  }

  /** Gives back what waits in memory; the hash is gone. */
  dropHash(): void {
    this.hash = null;
    this.budget.used -= this.aheadBytes;
    this.ahead.clear();
    this.aheadBytes = 0;
  }

  /** The hash, or null when the bytes were not one gapless run. Once only: the run is done. */
  digest(): { sha256: string | null; offset: number } {
    const offset = this.first ?? 0;
    const sha256 = this.hash === null || this.ahead.size > 0 ? null : this.hash.digest('hex');
    this.dropHash();
    return { sha256, offset };
  }
}

/** One opened file: the bytes each way, each in its own run. */
class OpenFile {
  readonly down: OrderedRun;
  readonly up: OrderedRun;
  /** The device refused a WRITE: the upload failed, whatever CLOSE says (a hash cannot be taken back). */
  uploadFailed: string | null = null;

  constructor(
    readonly path: string,
    /** Opened to write, append, create or truncate: a change to the device's file, even with no byte written. */
    readonly changes: boolean,
    readonly mode: string | undefined,
    budget: ReorderBudget,
  ) {
    this.down = new OrderedRun(budget);
    this.up = new OrderedRun(budget);
  }
}

type Handle = { kind: 'file'; file: OpenFile } | { kind: 'dir' };

type Pending =
  | { kind: 'open'; path: string; changes: boolean; reads: boolean; mode: string | undefined }
  | { kind: 'opendir' }
  | { kind: 'read'; handle: string; offset: number }
  | { kind: 'write'; handle: string; bytes: number }
  | { kind: 'close'; handle: string }
  | { kind: 'op'; event: Omit<FileEvent, 'outcome' | 'protocol'> }
  | { kind: 'other' };

/** Extensions OpenSSH's client sends that change nothing and carry no handle. */
const HARMLESS_EXTENSIONS = new Set(['statvfs@openssh.com', 'limits@openssh.com', 'expand-path@openssh.com', 'home-directory', 'users-groups-by-id@openssh.com']);

export class SftpWatch implements TransferWatch {
  private readonly up = new Packets();
  private readonly down = new Packets();
  private readonly pending = new Map<number, Pending>();
  private readonly handles = new Map<string, Handle>();
  /** Handles with a CLOSE sent: nothing more may use them. */
  private readonly closing = new Set<string>();
  private readonly budget: ReorderBudget = { used: 0 };
  private broken = false;
  readonly gates: boolean;
  private outlet: TransferOutlet | null = null;
  private refusals = 0;

  constructor(private readonly sink: FileEventSink, private readonly allowed: TransferDirections = { upload: true, download: true }) {
    this.gates = !allowed.upload || !allowed.download;
  }

  attach(outlet: TransferOutlet): void {
    this.outlet = outlet;
  }

  fromClient(chunk: Buffer): void {
    this.guard(() => {
      for (const whole of this.up.feed(chunk)) {
        const refusal = this.request(whole.subarray(4));
        if (!this.gates) continue;
        const outlet = this.gateOutlet();
        if (refusal === null) outlet.toDevice(whole);
        else this.refuse(outlet, refusal);
      }
    });
  }

  fromDevice(chunk: Buffer): void {
    this.guard(() => {
      for (const whole of this.down.feed(chunk)) {
        this.answer(whole.subarray(4));
        if (this.gates) this.gateOutlet().toClient(whole);
      }
    });
  }

  private gateOutlet(): TransferOutlet {
    // A gate with nowhere to send would drop the session's bytes: fail loudly instead.
    if (this.outlet === null) throw new Error('a gating SFTP watcher was not attached to its relay');
    return this.outlet;
  }

  /** Answers a refused request in the client's stream (between two whole packets), and tells stderr and the audit. */
  private refuse(outlet: TransferOutlet, r: Refusal): void {
    const message = `${ERROR_CATALOGUE[r.code].message} [${r.code}]`;
    outlet.toClient(statusPacket(r.id, FX_PERMISSION_DENIED, `portcullis: ${message}`));
    if (this.refusals <= MAX_NOTICES) outlet.notice(`${r.event.op} ${JSON.stringify(r.event.path)} refused: ${message}`);
    this.emit({ ...r.event, outcome: 'denied', code: r.code, detail: message });
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

  /**
   * The session is over (or cannot be followed): files still open, and changes the device had
   * not answered yet, are reported once, as incomplete; nothing is followed after this.
   */
  private settleOpen(): void {
    const open = [...this.handles.values()].flatMap((h) => (h.kind === 'file' ? [h.file] : []));
    const unanswered = [...this.pending.values()];
    this.handles.clear();
    this.pending.clear();
    const safely = (report: () => void): void => {
      try {
        report();
      } catch {
        // The sink's own failure: never thrown into the relay, and the rest still go.
      }
    };
    for (const f of open) safely(() => this.report(f, 'incomplete'));
    for (const req of unanswered) {
      if (req.kind === 'op') safely(() => this.emit({ ...req.event, outcome: 'incomplete' }));
      if (req.kind === 'open' && req.changes) safely(() => this.emit({ op: 'upload', path: req.path, bytes: 0, sha256: null, ...(req.mode ? { mode: req.mode } : {}), outcome: 'incomplete' }));
    }
  }

  /** Follows one request; when gating, the refusal if its direction is not granted (then nothing of it is followed). */
  private request(p: Buffer): Refusal | null {
    const type = p[0] as number;
    const f = new Fields(p.subarray(1));
    if (type === T.INIT) {
      const version = f.u32();
      if (version < 3) throw new Unreadable(`SFTP version ${version} asked for`);
      return null;
    }
    const id = f.u32();
    // Real clients never reuse an id still waiting for its answer: the answers could not be told apart.
    if (this.pending.has(id)) throw new Unreadable(`request ${id} sent again before its answer`);
    if (this.pending.size >= MAX_PENDING) throw new Unreadable(`more than ${MAX_PENDING} requests without an answer`);
    if (this.gates) {
      // Read from a copy of the fields: a refused request changes nothing here either.
      const refusal = this.refusalOf(id, type, new Fields(p.subarray(5)));
      if (refusal !== null) {
        if (++this.refusals > MAX_REFUSALS) throw new Unreadable(`more than ${MAX_REFUSALS} requests the grant does not allow`);
        return refusal;
      }
    }
    this.pending.set(id, this.pendingFor(type, f));
    return null;
  }

  /**
   * The direction a request needs, when the grant lacks it (see "Gating" above). READ, WRITE and
   * CLOSE are read here without pendingFor, whose reading of them changes what is followed.
   */
  private refusalOf(id: number, type: number, f: Fields): Refusal | null {
    const lacking = (direction: 'upload' | 'download'): TransferRefusalCode | null => {
      if (direction === 'upload') return this.allowed.upload ? null : 'FILE_UPLOAD_NOT_GRANTED';
      return this.allowed.download ? null : 'FILE_DOWNLOAD_NOT_GRANTED';
    };
    const onHandle = (op: 'upload' | 'download'): Refusal | null => {
      const code = lacking(op);
      if (code === null) return null;
      const path = this.fileOf(this.handle(f))?.path ?? '(a directory handle)';
      return { id, code, event: { op, path, bytes: 0, sha256: null } };
    };
    switch (type) {
      case T.READ:
        return onHandle('download');
      case T.WRITE:
        return onHandle('upload');
      case T.CLOSE:
      case T.FSTAT:
      case T.READDIR:
        return null;
      default:
        break;
    }
    const req = this.pendingFor(type, f);
    if (req.kind === 'open') {
      const code = (req.reads ? lacking('download') : null) ?? (req.changes ? lacking('upload') : null);
      if (code === null) return null;
      const op = code === 'FILE_UPLOAD_NOT_GRANTED' ? 'upload' : 'download';
      return { id, code, event: { op, path: req.path, bytes: 0, sha256: null, ...(req.mode && op === 'upload' ? { mode: req.mode } : {}) } };
    }
    if (req.kind === 'op') {
      const code = lacking('upload');
      return code === null ? null : { id, code, event: req.event };
    }
    return null;
  }

  /** A handle the device gave and that is not being closed; anything else is not a real client's request. */
  private handle(f: Fields): string {
    const handle = f.bytes().toString('hex');
    if (!this.handles.has(handle)) throw new Unreadable('a request on a handle the device has not given');
    if (this.closing.has(handle)) throw new Unreadable('a request on a handle being closed');
    return handle;
  }

  private fileOf(handle: string): OpenFile | null {
    const h = this.handles.get(handle);
    return h?.kind === 'file' ? h.file : null;
  }

  private pendingFor(type: number, f: Fields): Pending {
    switch (type) {
      case T.OPEN: {
        const path = f.path();
        const flags = f.u32();
        const { mode } = attributes(f);
        // sftp-server opens read-only when neither READ nor WRITE is set, and applies CREAT and TRUNC whatever the access.
        return {
          kind: 'open', path, changes: (flags & (FXF_WRITE | FXF_APPEND | FXF_CREAT | FXF_TRUNC)) !== 0,
          reads: (flags & FXF_READ) !== 0 || (flags & FXF_WRITE) === 0, mode,
        };
      }
      case T.OPENDIR:
        f.path();
        return { kind: 'opendir' };
      case T.READ: {
        const handle = this.handle(f);
        const offset = f.u64();
        this.fileOf(handle)?.down.asked(offset);
        return { kind: 'read', handle, offset };
      }
      case T.WRITE: {
        const handle = this.handle(f);
        const offset = f.u64();
        const data = f.bytes();
        const file = this.fileOf(handle);
        if (!file) throw new Unreadable('a WRITE on a directory handle');
        file.up.add(offset, data);
        return { kind: 'write', handle, bytes: data.length };
      }
      case T.CLOSE: {
        const handle = this.handle(f);
        this.closing.add(handle);
        return { kind: 'close', handle };
      }
      case T.FSTAT:
      case T.READDIR:
        this.handle(f);
        return { kind: 'other' };
      case T.SETSTAT: {
        const path = f.path();
        return { kind: 'op', event: { op: 'setstat', path, attributes: attributes(f) } };
      }
      case T.FSETSTAT: {
        const handle = this.handle(f);
        return { kind: 'op', event: { op: 'setstat', path: this.fileOf(handle)?.path ?? '(a directory handle)', attributes: attributes(f) } };
      }
      case T.REMOVE:
        return { kind: 'op', event: { op: 'remove', path: f.path() } };
      case T.MKDIR: {
        const path = f.path();
        const { mode } = attributes(f);
        return { kind: 'op', event: { op: 'mkdir', path, ...(mode ? { mode } : {}) } };
      }
      case T.RMDIR:
        return { kind: 'op', event: { op: 'rmdir', path: f.path() } };
      case T.RENAME: {
        const path = f.path();
        return { kind: 'op', event: { op: 'rename', path, to: f.path() } };
      }
      case T.SYMLINK: {
        // OpenSSH's server (and client) swap the fields against the draft: target first, then link path.
        const target = f.path();
        return { kind: 'op', event: { op: 'symlink', path: f.path(), to: target } };
      }
      case T.LSTAT:
      case T.STAT:
      case T.REALPATH:
      case T.READLINK:
        f.path();
        return { kind: 'other' };
      case T.EXTENDED:
        return this.extended(f);
      default:
        throw new Unreadable(`request type ${type}, which SFTP version 3 does not have`);
    }
  }

  private extended(f: Fields): Pending {
    const name = f.text();
    switch (name) {
      case 'posix-rename@openssh.com': {
        const path = f.path();
        return { kind: 'op', event: { op: 'rename', path, to: f.path() } };
      }
      case 'hardlink@openssh.com': {
        const path = f.path();
        return { kind: 'op', event: { op: 'hardlink', path, to: f.path() } };
      }
      case 'lsetstat@openssh.com': {
        const path = f.path();
        return { kind: 'op', event: { op: 'setstat', path, attributes: attributes(f) } };
      }
      case 'fsync@openssh.com':
      case 'fstatvfs@openssh.com':
        this.handle(f);
        return { kind: 'other' };
      case 'copy-data': {
        // Server-side copy between two open files: the data never crosses the gateway.
        const from = this.fileOf(this.handle(f));
        f.u64();
        const length = f.u64();
        const to = this.fileOf(this.handle(f));
        if (!from || !to) throw new Unreadable('copy-data on a directory handle');
        // A length of 0 copies to the end of the file: how much is not known here.
        return { kind: 'op', event: { op: 'copy', path: from.path, to: to.path, ...(length > 0 ? { bytes: length } : {}) } };
      }
      default:
        if (HARMLESS_EXTENSIONS.has(name)) return { kind: 'other' };
        // An extension not known here may change files in ways no entry would show: fail closed.
        throw new Unreadable(`the extension ${JSON.stringify(name.slice(0, 64))}, which the gateway cannot audit`);
    }
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
    if (!req) throw new Unreadable(`the device answered request ${id}, which was not asked`);
    this.pending.delete(id);
    if (type === T.STATUS) {
      const code = f.u32();
      const message = code === FX_OK || code === FX_EOF ? '' : statusText(code, f);
      this.status(req, code, message);
      return;
    }
    if (type === T.HANDLE) {
      if (req.kind !== 'open' && req.kind !== 'opendir') throw new Unreadable('a handle given for a request that opens nothing');
      const handle = f.bytes().toString('hex');
      if (this.handles.has(handle)) throw new Unreadable('the device gave a handle that is still open');
      if (this.handles.size >= MAX_OPEN_FILES) throw new Unreadable(`more than ${MAX_OPEN_FILES} files open at once`);
      this.handles.set(handle, req.kind === 'open' ? { kind: 'file', file: new OpenFile(req.path, req.changes, req.mode, this.budget) } : { kind: 'dir' });
      return;
    }
    if (type === T.DATA) {
      if (req.kind !== 'read') throw new Unreadable('data for a request that reads nothing');
      this.fileOf(req.handle)?.down.add(req.offset, f.bytes());
    }
  }

  private status(req: Pending, code: number, message: string): void {
    const failed = code !== FX_OK && code !== FX_EOF;
    switch (req.kind) {
      case 'open':
        if (failed) this.emit({ op: req.changes ? 'upload' : 'download', path: req.path, bytes: 0, sha256: null, outcome: 'failed', detail: message });
        return;
      case 'write': {
        const file = this.fileOf(req.handle);
        if (file && failed) {
          file.up.bytes -= req.bytes;
          file.uploadFailed ??= message;
        }
        return;
      }
      case 'close': {
        // sftp-server lets go of the handle whatever close() said.
        const h = this.handles.get(req.handle);
        this.handles.delete(req.handle);
        this.closing.delete(req.handle);
        if (h?.kind === 'file') this.report(h.file, failed ? 'failed' : 'ok', failed ? message : undefined);
        return;
      }
      case 'op':
        this.emit({ ...req.event, outcome: failed ? 'failed' : 'ok', ...(failed ? { detail: message } : {}) });
        return;
      default:
        return;
    }
  }

  /**
   * A file opened to change it is an upload even with no byte written (it was created or
   * truncated); bytes read are a download whatever the open asked for; a file that did neither
   * is a download of nothing. Each way has its own bytes, hash and outcome.
   */
  private report(file: OpenFile, outcome: FileEvent['outcome'], closeError?: string): void {
    const uploaded = file.changes || file.up.bytes > 0;
    const downloaded = file.down.bytes > 0 || !uploaded;
    const up = file.up.digest();
    const down = file.down.digest();
    if (uploaded) {
      const detail = file.uploadFailed ?? closeError;
      this.emit({
        op: 'upload', path: file.path, bytes: file.up.bytes, sha256: up.sha256, ...(up.offset > 0 ? { offset: up.offset } : {}),
        ...(file.mode ? { mode: file.mode } : {}), outcome: file.uploadFailed ? 'failed' : outcome, ...(detail ? { detail } : {}),
      });
    }
    if (downloaded) {
      this.emit({
        op: 'download', path: file.path, bytes: file.down.bytes, sha256: down.sha256, ...(down.offset > 0 ? { offset: down.offset } : {}),
        outcome, ...(closeError ? { detail: closeError } : {}),
      });
    }
  }

  private emit(e: Omit<FileEvent, 'protocol'>): void {
    this.sink.onFile({ protocol: 'sftp', ...e });
  }
}

/** A request the grant's directions do not allow: answered by the gateway, never forwarded. */
interface Refusal {
  id: number;
  code: TransferRefusalCode;
  event: Omit<FileEvent, 'outcome' | 'protocol'>;
}

/** SSH_FXP_STATUS for request `id`: the code, a message, and its language tag. */
function statusPacket(id: number, code: number, message: string): Buffer {
  const text = Buffer.from(message, 'utf8');
  const lang = Buffer.from('en', 'ascii');
  const body = Buffer.alloc(1 + 4 + 4 + 4 + text.length + 4 + lang.length);
  let at = body.writeUInt8(T.STATUS, 0);
  at = body.writeUInt32BE(id, at);
  at = body.writeUInt32BE(code, at);
  at = body.writeUInt32BE(text.length, at);
  at += text.copy(body, at);
  at = body.writeUInt32BE(lang.length, at);
  lang.copy(body, at);
  const head = Buffer.alloc(4);
  head.writeUInt32BE(body.length, 0);
  return Buffer.concat([head, body]);
}

/** SFTP v3 attributes: what a SETSTAT or a creating OPEN asks for. */
function attributes(f: Fields): FileAttributes & { mode?: string } {
  const flags = f.u32();
  const out: FileAttributes = {};
  if (flags & ATTR.SIZE) out.size = f.u64();
  if (flags & ATTR.UIDGID) {
    out.uid = f.u32();
    out.gid = f.u32();
  }
  if (flags & ATTR.PERMISSIONS) out.mode = (f.u32() & 0o7777).toString(8).padStart(4, '0');
  if (flags & ATTR.ACMODTIME) {
    out.atime = f.u32();
    out.mtime = f.u32();
  }
  if (flags & ATTR.EXTENDED) {
    const count = f.u32();
    for (let i = 0; i < count; i++) {
      f.bytes();
      f.bytes();
    }
  }
  return out;
}

function statusText(code: number, f: Fields): string {
  let message: Buffer = Buffer.alloc(0);
  try {
    message = f.bytes();
  } catch {
    // OpenSSH always sends a message; an old server may not.
  }
  return peerText(message) || STATUS_NAMES[code] || `status ${code}`;
}
