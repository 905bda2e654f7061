/**
 * Files copied with the legacy scp protocol (OpenSSH `scp -O`, and every scp before 9.0), seen
 * from copies of the session's bytes (R-6.3e). The client runs `scp -t TARGET` on the device to
 * upload (the client is the source, the device's scp the sink) or `scp -f PATH...` to download
 * (the device is the source). The source sends control lines — `C<mode> <size> <name>` and then
 * exactly `size` bytes of data and one trailing byte, `D<mode> 0 <name>` to enter a directory,
 * `E` to leave it, `T<mtime> 0 <atime> 0` for the times of the next record — and the sink answers
 * each line and each file's trailing byte with `\0` (ok) or `\1`/`\2` and a message line (error,
 * fatal). The sink also speaks first, with one answer before the source sends anything.
 *
 * The protocol is lock-step: the source waits for each answer before it goes on. The watcher
 * reads the two directions separately and pairs the answers with what they answer in order, so
 * neither side's bytes are ever held back, and file data is hashed as it passes (memory stays a
 * few kilobytes whatever the file size). Each file is reported once, when it is settled:
 *
 * - ok: the sink answered the file's trailing byte with `\0` (and the source's trailing byte was
 *   `\0`). bytes is the size, sha256 the hash of the data.
 * - failed: the sink refused the C line (bytes 0: no data went), or the source or the sink
 *   reported an error after the data (the first message is the detail, without control
 *   characters, at most 200 characters). An error after the data does not unsend it: bytes and
 *   sha256 are those of the data that went. In a download that includes the client (the sink)
 *   answering `\1 message` to the trailing byte: the data left the device all the same.
 * - incomplete: `end()` came before the file was settled; bytes and sha256 cover what passed.
 *
 * An error that is not about one file's data — the sink refusing to start (`scp -d -t` into a
 * missing directory), refusing a D or T line, or the source sending `\1`/`\2` where a record
 * belongs (a file it cannot read, a directory without -r) — is reported as a failed event
 * without bytes or sha256: the attempt is on record, with the message naming what it was about.
 * Its path is the directory being copied at that moment, or TARGET / the -f path named in the
 * message at the top level.
 *
 * Paths. Upload: with -r or -d, `TARGET/dirs.../name`; without, a top-level file is `TARGET`,
 * as the client named it. Download: a top-level record is the -f path it came from (the one
 * whose last component is its name; for a path the device's shell expanded, `*.log`, the name in
 * that path's directory); below a D, `that path/dirs.../name`.
 *
 * What it cannot promise:
 * - where the device really wrote an upload: `scp -t TARGET` without -d writes to TARGET, or
 *   into it when TARGET is a directory on the device (the watcher reports TARGET/name only when
 *   TARGET ends in `/`, `.` or `..`), and with -r a top-level D becomes
 *   TARGET/name when TARGET exists but TARGET itself when it does not. The watcher cannot see
 *   the device's disk; it reports the paths above and the client's own naming.
 * - that the data is what the sink stored: it is what went through. For a download, "ok" is the
 *   vendor's client saying so.
 * - exact names that are not UTF-8: they are decoded with U+FFFD for the invalid bytes.
 *
 * Reading as the device reads. What the device's scp reads (in an upload every line the client
 * sends; in a download the client's answers) the watcher must split where the device splits it,
 * or the two part ways and a file can ride past the audit in what the watcher took for a name.
 * OpenSSH's sink() reads a control line, and its response() an error message after the `\1`/`\2`,
 * into a 2048-byte buffer holding at most 2047 bytes with the '\n' (SCP_MAX_LINE: 2046 before
 * it). A longer line is cut there, no error, and its rest is read as what follows: file data,
 * the next record, the next answer. It then works on C strings, so a NUL ends a name there
 * (`C0644 5 ab\0x` creates `ab`). Both are unreadable here. What the device's scp writes (its
 * records in a download, its answers in an upload) it writes whole, so those lines are bound
 * only for memory: they name at most one of the command's paths or a path below one, and a name.
 *
 * Answers are paired in order. In an upload the device's scp answers only what it has read, and
 * the relay shows the watcher the client's bytes before the device gets them: an answer with
 * nothing awaiting one means the device read the stream differently, and is unreadable. In a
 * download the device reads the client's answers at the points the watcher expects them, so
 * answers the client sends ahead (a few, MAX_EARLY_ANSWERS) are the device's answers to the next
 * things it sends, as the device itself takes them: an early `\1` refuses the next record.
 *
 * A stream it cannot follow is reported as unreadable once, and then everything is ignored: a
 * line the device's scp would not read whole (above), a NUL in any line (every scp line is a C
 * string), an unknown record type, a malformed C/D/T line (the checks the device's own scp
 * makes), an answer that is not `\0`/`\1`/`\2`, E outside a directory, in an upload an answer
 * from the device to nothing, or a source that went on before the sink refused what it sent (the
 * two sides no longer agree what the bytes are). Files under way at that moment are first
 * reported as incomplete.
 */

import { createHash, type Hash } from 'node:crypto';
import { peerText, type FileEvent, type FileEventSink, type FileOp, type TransferWatch } from './file-events.js';

/**
 * Longest line, without its '\n', that the device's scp reads whole: a control line (its first
 * byte included) in sink(), an error message after its `\1`/`\2` in response(). Both read into
 * `char buf[2048]` until the '\n' or 2047 bytes, whichever comes first (checked against the real
 * OpenSSH 9.2 `scp -t` and `scp -f`: 2046 bytes and '\n' are one line, 2047 are cut before it).
 */
export const SCP_MAX_LINE = 2046;
/**
 * Lines the device's scp writes are whole: bound only for memory. Its messages name a path below
 * the command's (at most PATH_MAX, 4096) or one of the command's paths, and a name the client
 * sent (under SCP_MAX_LINE); this is that with room to spare, plus the longest command path.
 */
const DEVICE_LINE_SLACK = 8192;
/** Records the source may send ahead of their answers (an honest source waits for each). */
const MAX_UNANSWERED = 64;
/** Answers a download's client may send ahead of what they answer (an upload's device cannot: unreadable). */
const MAX_EARLY_ANSWERS = 8;
const MAX_DIR_DEPTH = 256;

const NEWLINE = 0x0a;
const ERROR = 0x01;
const FATAL = 0x02;

/** OpenSSH scp.c's getopt string, split: letters alone, and letters taking a value. */
const SCP_FLAGS = new Set('12346ABCTdfOpqRrstv');
const SCP_VALUE_OPTIONS = new Set('DFJMPScilXo');

export interface ScpCommand {
  /** upload: `scp -t`, the device receives; download: `scp -f`, the device sends. */
  op: 'upload' | 'download';
  /** -r */
  recursive: boolean;
  /** -d: the target must be a directory. */
  targetIsDir: boolean;
  /** upload: the one TARGET; download: the paths to send. */
  paths: string[];
}

/**
 * The device-side scp command as scp's own getopt reads it: options (grouped as `-rdt`, a value
 * in the same word or the next) up to `--` or the first word not starting with '-'.
 */
export function parseScpCommand(argv: string[]): ScpCommand {
  const flags = new Set<string>();
  let i = 1;
  for (; i < argv.length; i++) {
    const word = argv[i] ?? '';
    if (word === '--') {
      i++;
      break;
    }
    if (!word.startsWith('-') || word === '-') break;
    if (readOptionWord(word, flags)) {
      i++;
      if (i >= argv.length) throw new Error(`scp option ${word} needs a value`);
    }
  }
  const paths = argv.slice(i);
  const to = flags.has('t');
  const from = flags.has('f');
  if (to && from) throw new Error('scp command has both -t and -f: it cannot be both the sink and the source');
  if (!to && !from) throw new Error('scp command has neither -t nor -f: not a legacy scp transfer');
  if (to && paths.length !== 1) throw new Error(`scp -t needs exactly one target, got ${paths.length}`);
  if (from && paths.length === 0) throw new Error('scp -f names no file to send');
  return { op: to ? 'upload' : 'download', recursive: flags.has('r'), targetIsDir: flags.has('d'), paths };
}

/** Adds one option word's letters to `flags`; true when its last letter takes the next word as value. */
function readOptionWord(word: string, flags: Set<string>): boolean {
  for (let j = 1; j < word.length; j++) {
    const letter = word.charAt(j);
    if (SCP_VALUE_OPTIONS.has(letter)) return j === word.length - 1;
    if (!SCP_FLAGS.has(letter)) throw new Error(`scp command has an unknown option -${letter}`);
    flags.add(letter);
  }
  return false;
}

/** Collects one line, up to and without its '\n', holding at most `limit` bytes. */
class LineReader {
  private parts: Buffer[] = [];
  private length = 0;

  constructor(private readonly limit: number) {}

  /** Takes bytes from `chunk` at `from`; `line` is set once the '\n' came, `tooLong` if it will not. */
  take(chunk: Buffer, from: number): { taken: number; line: Buffer | null; tooLong: boolean } {
    const newline = chunk.indexOf(NEWLINE, from);
    const end = newline < 0 ? chunk.length : newline;
    if (this.length + (end - from) > this.limit) return { taken: 0, line: null, tooLong: true };
    this.parts.push(chunk.subarray(from, end));
    this.length += end - from;
    if (newline < 0) return { taken: end - from, line: null, tooLong: false };
    const line = Buffer.concat(this.parts, this.length);
    this.parts = [];
    this.length = 0;
    return { taken: end - from + 1, line, tooLong: false };
  }
}

interface OpenFile {
  path: string;
  size: number;
  received: number;
  hash: Hash;
  /** The source's own error in place of the trailing `\0`. */
  sourceError: string | null;
  reported: boolean;
}

/** Something the source sent that the sink answers; `at` is the source offset just after it. */
type Awaiting =
  | { kind: 'start'; at: number }
  | { kind: 'times'; at: number }
  | { kind: 'dir'; at: number; path: string }
  | { kind: 'leave'; at: number }
  | { kind: 'header'; at: number; file: OpenFile }
  | { kind: 'trailer'; at: number; file: OpenFile };

interface Answer {
  ok: boolean;
  message: string;
}

type SourcePhase = 'record' | 'data' | 'trailer' | 'trailer-message';

export class ScpWatch implements TransferWatch {
  private readonly command: ScpCommand;
  private readonly op: FileOp;
  private stopped = false;

  /** Bytes of the source stream consumed so far. */
  private sourceOffset = 0;
  private phase: SourcePhase = 'record';
  private current: OpenFile | null = null;
  /** Longest line from the source, and in an answer (SCP_MAX_LINE for what the device reads). */
  private readonly sourceLimit: number;
  private readonly answerLimit: number;
  private readonly sourceLine: LineReader;
  /** Full paths of the directories the source is in. */
  private readonly dirs: string[] = [];

  private answerLine: LineReader | null = null;
  private readonly unanswered: Awaiting[] = [{ kind: 'start', at: 0 }];
  private readonly earlyAnswers: Answer[] = [];
  /** An scp server runs one way (-t or -f), decided before the device is contacted: nothing to gate here. */
  readonly gates = false;

  constructor(argv: string[], private readonly sink: FileEventSink) {
    this.command = parseScpCommand(argv);
    this.op = this.command.op;
    const written = DEVICE_LINE_SLACK + Math.max(0, ...this.command.paths.map((p) => Buffer.byteLength(p)));
    this.sourceLimit = this.op === 'upload' ? SCP_MAX_LINE : written;
    this.answerLimit = this.op === 'upload' ? written : SCP_MAX_LINE;
    this.sourceLine = new LineReader(this.sourceLimit);
  }

  attach(): void {
    // Never gates.
  }

  fromClient(chunk: Buffer): void {
    this.guard(() => (this.op === 'upload' ? this.sourceBytes(chunk) : this.answerBytes(chunk)));
  }

  fromDevice(chunk: Buffer): void {
    this.guard(() => (this.op === 'upload' ? this.answerBytes(chunk) : this.sourceBytes(chunk)));
  }

  end(): void {
    this.guard(() => {
      this.reportUnsettled();
      this.stopped = true;
    });
  }

  private guard(work: () => void): void {
    if (this.stopped) return;
    try {
      work();
    } catch (err) {
      this.unreadable(`scp watch failed: ${err instanceof Error ? err.message : String(err)}`);
    }
  }

  // --- the source's stream -------------------------------------------------------------------

  private sourceBytes(chunk: Buffer): void {
    let at = 0;
    while (at < chunk.length && !this.stopped) at += this.sourceStep(chunk, at);
  }

  /** Consumes what it can of `chunk` from `at` in the current phase; returns how much. */
  private sourceStep(chunk: Buffer, at: number): number {
    switch (this.phase) {
      case 'data':
        return this.dataStep(chunk, at);
      case 'trailer':
        return this.trailerStep(chunk[at] ?? 0);
      case 'record':
      case 'trailer-message':
        return this.lineStep(chunk, at);
    }
  }

  private dataStep(chunk: Buffer, at: number): number {
    const file = this.current;
    if (file === null) {
      this.unreadable('file data without a file');
      return 0;
    }
    const n = Math.min(file.size - file.received, chunk.length - at);
    file.hash.update(chunk.subarray(at, at + n));
    file.received += n;
    this.sourceOffset += n;
    if (file.received === file.size) this.phase = 'trailer';
    return n;
  }

  private trailerStep(byte: number): number {
    this.sourceOffset += 1;
    if (byte === 0) this.fileSent(null);
    else if (byte === ERROR || byte === FATAL) this.phase = 'trailer-message';
    else this.unreadable(`byte 0x${byte.toString(16).padStart(2, '0')} after a file's data, not \\0 or an error`);
    return 1;
  }

  private lineStep(chunk: Buffer, at: number): number {
    const what = this.phase === 'trailer-message' ? 'error message' : 'control line';
    const { taken, line, tooLong } = this.sourceLine.take(chunk, at);
    if (tooLong) {
      this.unreadable(tooLongReason(what, this.sourceLimit));
      return 0;
    }
    this.sourceOffset += taken;
    if (line === null) return taken;
    if (line.includes(0)) this.unreadable(NUL_REASON);
    // The `\1`/`\2` before a trailer message was its own step: the line is all message.
    else if (this.phase === 'trailer-message') this.fileSent(peerText(line));
    else this.record(line);
    return taken;
  }

  /** The source is done with the current file (`error`: its own message in place of `\0`). */
  private fileSent(error: string | null): void {
    const file = this.current;
    if (file === null) return this.unreadable('a file trailer without a file');
    file.sourceError = error;
    this.current = null;
    this.phase = 'record';
    this.expect({ kind: 'trailer', at: this.sourceOffset, file });
  }

  private record(line: Buffer): void {
    const type = line[0];
    if (type === undefined) return this.unreadable('empty scp control line');
    if (type === ERROR || type === FATAL) return this.sourceError(peerText(line.subarray(1)));
    const text = line.toString('utf8');
    switch (text.charAt(0)) {
      case 'C':
        return this.fileRecord(text);
      case 'D':
        return this.dirRecord(text);
      case 'E':
        return this.leaveRecord(text);
      case 'T':
        return this.timesRecord(text);
      default:
        return this.unreadable(`unknown scp record type 0x${type.toString(16).padStart(2, '0')}`);
    }
  }

  private fileRecord(text: string): void {
    const header = parseHeader(text);
    if (typeof header === 'string') return this.unreadable(header);
    const file: OpenFile = { path: this.pathOf(header.name), size: header.size, received: 0, hash: createHash('sha256'), sourceError: null, reported: false };
    this.current = file;
    this.phase = file.size > 0 ? 'data' : 'trailer';
    this.expect({ kind: 'header', at: this.sourceOffset, file });
  }

  private dirRecord(text: string): void {
    const header = parseHeader(text);
    if (typeof header === 'string') return this.unreadable(header);
    if (this.dirs.length >= MAX_DIR_DEPTH) return this.unreadable(`directories nested deeper than ${MAX_DIR_DEPTH}`);
    const path = this.pathOf(header.name);
    this.dirs.push(path);
    this.expect({ kind: 'dir', at: this.sourceOffset, path });
  }

  private leaveRecord(text: string): void {
    if (text !== 'E') return this.unreadable('malformed scp E line');
    if (this.dirs.pop() === undefined) return this.unreadable('scp E line outside any directory');
    this.expect({ kind: 'leave', at: this.sourceOffset });
  }

  private timesRecord(text: string): void {
    const times = /^T\d+ (\d+) \d+ (\d+)$/.exec(text);
    if (times === null || Number(times[1]) > 999_999 || Number(times[2]) > 999_999) return this.unreadable('malformed scp T line');
    this.expect({ kind: 'times', at: this.sourceOffset });
  }

  /** `\1`/`\2` where a record belongs: the source could not send something. Nothing answers it. */
  private sourceError(message: string): void {
    this.failedAttempt(this.dirs.at(-1) ?? this.topPathNamedIn(message), message);
  }

  // --- the sink's answers --------------------------------------------------------------------

  private answerBytes(chunk: Buffer): void {
    let at = 0;
    while (at < chunk.length && !this.stopped) at += this.answerStep(chunk, at);
  }

  private answerStep(chunk: Buffer, at: number): number {
    if (this.answerLine === null) {
      const byte = chunk[at] ?? 0;
      if (byte === 0) this.answer({ ok: true, message: '' });
      else if (byte === ERROR || byte === FATAL) this.answerLine = new LineReader(this.answerLimit);
      else this.unreadable(`scp answer byte 0x${byte.toString(16).padStart(2, '0')}, not \\0, \\1 or \\2`);
      return 1;
    }
    const { taken, line, tooLong } = this.answerLine.take(chunk, at);
    if (tooLong) {
      this.unreadable(tooLongReason('error message', this.answerLimit));
      return 0;
    }
    if (line !== null) {
      this.answerLine = null;
      if (line.includes(0)) this.unreadable(NUL_REASON);
      else this.answer({ ok: false, message: peerText(line) });
    }
    return taken;
  }

  private expect(awaiting: Awaiting): void {
    const early = this.earlyAnswers.shift();
    if (early !== undefined) return this.settle(awaiting, early);
    if (this.unanswered.length >= MAX_UNANSWERED) return this.unreadable(`scp source ran ${MAX_UNANSWERED} records ahead of the answers`);
    this.unanswered.push(awaiting);
  }

  private answer(answer: Answer): void {
    const awaiting = this.unanswered.shift();
    if (awaiting !== undefined) return this.settle(awaiting, answer);
    // The device's scp answers what it has read, and the watcher sees the client's bytes first.
    if (this.op === 'upload') return this.unreadable('scp device answered while nothing awaited an answer: it read the stream differently');
    // A client answering ahead: the device reads it when it next asks, as expect() pairs it.
    if (this.earlyAnswers.length >= MAX_EARLY_ANSWERS) return this.unreadable('scp answers to nothing that was sent');
    this.earlyAnswers.push(answer);
  }

  private settle(awaiting: Awaiting, answer: Answer): void {
    if (awaiting.kind === 'trailer') return this.fileSettled(awaiting.file, answer);
    if (answer.ok || awaiting.kind === 'leave') return;
    // A refusal changes what the source sends next (nothing of what was refused).
    if (this.sourceOffset > awaiting.at) return this.unreadable('scp source went on before the sink refused what it sent');
    switch (awaiting.kind) {
      case 'start':
      case 'times':
        return this.failedAttempt(this.dirs.at(-1) ?? this.topPathNamedIn(answer.message), answer.message);
      case 'dir':
        this.dirs.pop();
        return this.failedAttempt(awaiting.path, answer.message);
      case 'header':
        this.current = null;
        this.phase = 'record';
        return this.report(awaiting.file, 'failed', answer.message);
    }
  }

  private fileSettled(file: OpenFile, answer: Answer): void {
    const error = file.sourceError ?? (answer.ok ? null : answer.message);
    this.report(file, error === null ? 'ok' : 'failed', error ?? undefined);
  }

  // --- reports -------------------------------------------------------------------------------

  private report(file: OpenFile, outcome: FileEvent['outcome'], detail?: string): void {
    if (file.reported) return;
    file.reported = true;
    const event: FileEvent = { protocol: 'scp', op: this.op, path: file.path, bytes: file.received, sha256: file.hash.digest('hex'), outcome };
    if (detail !== undefined) event.detail = detail;
    this.sink.onFile(event);
  }

  private failedAttempt(path: string, detail: string): void {
    this.sink.onFile({ protocol: 'scp', op: this.op, path, outcome: 'failed', detail });
  }

  /** Files not yet settled: incomplete, or failed when the source already said so. */
  private reportUnsettled(): void {
    if (this.current !== null) this.report(this.current, 'incomplete');
    for (const awaiting of this.unanswered) {
      if (awaiting.kind !== 'header' && awaiting.kind !== 'trailer') continue;
      const error = awaiting.file.sourceError;
      this.report(awaiting.file, error === null ? 'incomplete' : 'failed', error ?? undefined);
    }
  }

  private unreadable(reason: string): void {
    if (this.stopped) return;
    this.stopped = true;
    try {
      this.reportUnsettled();
    } catch {
      // The sink's own failure: the unreadable report below still goes.
    }
    try {
      this.sink.onUnreadable(reason);
    } catch {
      // Never throw into the relay.
    }
  }

  // --- paths ---------------------------------------------------------------------------------

  /** The path of a C or D record named `name` in the current directory. */
  private pathOf(name: string): string {
    const parent = this.dirs.at(-1);
    if (parent !== undefined) return joinPath(parent, name);
    const { op, recursive, targetIsDir, paths } = this.command;
    const target = paths[0] ?? '';
    // `scp file host:dir/` sends no -d, but a TARGET ending in `/` (or `.`) can only be a directory.
    if (op === 'upload') return recursive || targetIsDir || namesADirectory(target) ? joinPath(target, name) : target;
    return downloadPath(paths, name);
  }

  /** TARGET, or for a download the -f path `message` names (else the first one). */
  private topPathNamedIn(message: string): string {
    const paths = this.command.paths;
    const first = paths[0] ?? '';
    if (this.op === 'upload') return first;
    return paths.find((p) => message.startsWith(`scp: ${trimSlashes(p)}: `)) ?? first;
  }
}

const NUL_REASON = "scp line with a NUL byte, where the device's scp would end it";

function tooLongReason(what: string, limit: number): string {
  return limit === SCP_MAX_LINE ? `scp ${what} longer than the ${SCP_MAX_LINE} bytes the device's scp reads as one line` : `scp ${what} longer than ${limit} bytes`;
}

/** `C0644 12 name` / `D0755 0 name`, checked as the device's scp checks it; a string is why not. */
function parseHeader(text: string): { size: number; name: string } | string {
  const kind = text.charAt(0);
  const fields = /^[CD]([0-7]{4}) ([0-9]+) (.*)$/s.exec(text);
  if (fields === null) return `malformed scp ${kind} line`;
  const size = Number(fields[2]);
  if (!Number.isSafeInteger(size)) return `scp ${kind} line size out of range`;
  const name = fields[3] ?? '';
  if (name === '' || name === '.' || name === '..' || name.includes('/')) return `scp ${kind} line with an unsafe name`;
  return { size, name };
}

/** A top-level download record: the -f path whose last component is `name`, else `name` in the directory of the path the shell expanded. */
function downloadPath(paths: string[], name: string): string {
  const trimmed = paths.map(trimSlashes);
  const exact = trimmed.find((p) => lastComponent(p) === name);
  if (exact !== undefined) return exact;
  const expanded = trimmed.find((p) => /[*?[{$~`\\]/.test(lastComponent(p))) ?? (trimmed.length === 1 ? trimmed[0] : undefined);
  return expanded === undefined ? name : joinPath(parentOf(expanded), name);
}

function namesADirectory(path: string): boolean {
  return path.endsWith('/') || ['.', '..'].includes(lastComponent(path));
}

function trimSlashes(path: string): string {
  const trimmed = path.replace(/\/+$/, '');
  return trimmed === '' && path !== '' ? '/' : trimmed;
}

function lastComponent(path: string): string {
  return path.slice(path.lastIndexOf('/') + 1);
}

function parentOf(path: string): string {
  const slash = path.lastIndexOf('/');
  if (slash < 0) return '';
  return slash === 0 ? '/' : path.slice(0, slash);
}

function joinPath(base: string, name: string): string {
  const dir = trimSlashes(base);
  if (dir === '') return name;
  return dir === '/' ? `/${name}` : `${dir}/${name}`;
}
