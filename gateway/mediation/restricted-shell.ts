/**
 * The prompt the gateway owns in restricted mode (R-6.3c, DESIGN "Command mediation"). The vendor
 * never reaches the device's shell: each line is parsed and decided here, and only an allowed
 * line runs, each command as its own exec request with its argv re-quoted.
 *
 * It is written against a plain duplex (the broker hands it an ssh2 ServerChannel with a PTY)
 * and callbacks the broker injects, so it can be driven byte by byte in unit tests.
 */
import { StringDecoder } from 'node:string_decoder';
import {
  allowedProgramNames,
  describeProfile,
  type CommandDecision,
  type CommandProfile,
  type ParsedLine,
} from '../../policy/command-policy.js';
import { parseCommandLine, quoteArgv, quoteWord } from './shell-parse.js';

export interface ShellChannel {
  write(data: string | Buffer): unknown;
  on(event: 'data', listener: (data: Buffer | string) => void): unknown;
}

export interface DecideContext {
  /** The shell's working directory, as `deviceCommandLine` takes it. */
  cwd: string;
  /** Tell the vendor something while the decision is pending (e.g. "waiting for approval"). */
  say(text: string): void;
}

export interface RunResult {
  exitStatus: number | null;
}

export interface RestrictedShellHost {
  /** For `help` and tab completion; deciding is `decide`'s job. */
  profile: CommandProfile;
  /** Decide one line (the broker records it: audit entry and command-index row). */
  decide(line: string, parsed: ParsedLine, ctx: DecideContext): Promise<CommandDecision>;
  /** For a `review` decision: resolve to the approver's allow or deny, or deny on timeout. Absent: review means deny. */
  review?(line: string, parsed: ParsedLine, decision: CommandDecision, ctx: DecideContext): Promise<CommandDecision>;
  /** Run one allowed command on the device (its own exec request with a PTY); see deviceCommandLine. */
  run(argv: readonly string[], cwd: string): Promise<RunResult>;
  /** Run an allowed pipeline as one exec request; absent: pipelines are refused even if the profile allows them. */
  runPipeline?(stages: readonly (readonly string[])[], cwd: string): Promise<RunResult>;
  /** Keystrokes while a command runs, so full-screen programs work. */
  forward(data: Buffer): void;
  /** A built-in ran (cd, pwd, history, help, exit): nothing reached the device, but the broker may log it. */
  onBuiltin?(line: string, argv: readonly string[], cwd: string): void;
}

export interface RestrictedShellOptions {
  /** Shown before the directory in the prompt, e.g. "alice@ct-01". */
  promptLabel?: string;
  columns?: number;
  historySize?: number;
  /** Written once before the first prompt. */
  banner?: string;
}

export type ShellEnd = 'exit' | 'eof' | 'closed';

// ---------------------------------------------------------------------------------------------
// The device side of a command
// ---------------------------------------------------------------------------------------------

/**
 * Exported for every command. An allowed program may start a pager or an editor (systemctl and
 * journalctl page their output on a terminal, `systemctl edit`, `git`, `man`), and those open a
 * shell with `!sh`; plain `cat` as pager and secure mode for less and systemd's pager close that.
 */
export const DEVICE_ENVIRONMENT: Readonly<Record<string, string>> = {
  LESSSECURE: '1',
  LESSHISTFILE: '-',
  PAGER: 'cat',
  MANPAGER: 'cat',
  GIT_PAGER: 'cat',
  SYSTEMD_PAGER: 'cat',
  SYSTEMD_PAGERSECURE: '1',
  EDITOR: 'false',
  VISUAL: 'false',
  SYSTEMD_EDITOR: 'false',
};

/**
 * The command string for the device's exec request:
 *
 *   export LESSSECURE='1' …; unset LESSOPEN LESSCLOSE; cd './dir' && exec 'prog' 'arg' | exec 'prog2'
 *
 * - Every word is single-quoted (quoteArgv), so the device shell sees no expansions.
 * - `exec` runs the program found on PATH, never a shell function, alias or built-in of the same
 *   name (a function from a startup file, or `printf -v`/`test -v` evaluating their arguments).
 * - The directory comes first with `&&`: if it does not exist, the device says so and nothing runs.
 *   A relative directory is written `./dir`, so CDPATH is never consulted.
 * The device account's shell must be POSIX (sh, bash, dash, ash, ksh, zsh); csh quoting differs,
 * and the `export` line then fails, so nothing runs.
 */
export function deviceCommandLine(stages: readonly (readonly string[])[], cwd: string): string {
  if (stages.length === 0) throw new RangeError('nothing to run');
  const env = `export ${Object.entries(DEVICE_ENVIRONMENT).map(([k, v]) => `${k}=${quoteWord(v)}`).join(' ')}; unset LESSOPEN LESSCLOSE; `;
  const cd = cwd === '' ? '' : `cd ${quoteWord(cwd.startsWith('/') ? cwd : `./${cwd}`)} && `;
  return env + cd + stages.map((argv) => `exec ${quoteArgv(argv)}`).join(' | ');
}

// ---------------------------------------------------------------------------------------------
// Working directory, tracked by the gateway
// ---------------------------------------------------------------------------------------------

/**
 * `cd` runs nothing on the device: the gateway keeps the directory as text ('' for the login
 * directory, `a/b` below it, or an absolute path), resolves `.` and `..` by name (like bash's
 * default `cd -L`), and every command runs as `cd DIR && …`. A directory that does not exist
 * shows up as the device's own error on the next command, which then does not run.
 */
export function changeDirectory(current: string, target: string): string {
  let parts: string[];
  let absolute: boolean;
  if (target === '~' || target === '') return '';
  if (target.startsWith('~/')) {
    parts = [];
    absolute = false;
    target = target.slice(2);
  } else if (target.startsWith('/')) {
    parts = [];
    absolute = true;
  } else {
    absolute = current.startsWith('/');
    parts = current.split('/').filter((p) => p !== '');
  }
  for (const seg of target.split('/')) {
    if (seg === '' || seg === '.') continue;
    if (seg === '..') {
      if (parts.length > 0 && parts[parts.length - 1] !== '..') parts.pop();
      else if (!absolute) parts.push('..');
    } else {
      parts.push(seg);
    }
  }
  return absolute ? `/${parts.join('/')}` : parts.join('/');
}

export function displayDirectory(cwd: string): string {
  return cwd === '' ? '~' : cwd.startsWith('/') ? cwd : `~/${cwd}`;
}

// ---------------------------------------------------------------------------------------------
// Showing text safely
// ---------------------------------------------------------------------------------------------

const INVISIBLE = /[\p{Cf}\p{Default_Ignorable_Code_Point}\p{Zl}\p{Zp}]|(?! )\p{Zs}/u;

/**
 * How one character of the line is shown: control characters as ^X, invisible and bidi
 * characters as <U+XXXX>, so that nothing the vendor types or pastes can move the cursor, recolour
 * the screen or hide part of what is about to be decided.
 */
function glyph(ch: string): string {
  const cp = ch.codePointAt(0) ?? 0;
  if (cp < 0x20) return `^${String.fromCharCode(cp + 0x40)}`;
  if (cp === 0x7f) return '^?';
  if (cp >= 0x80 && cp <= 0x9f) return `<U+${cp.toString(16).toUpperCase().padStart(4, '0')}>`;
  if (INVISIBLE.test(ch)) return `<U+${cp.toString(16).toUpperCase().padStart(4, '0')}>`;
  return ch;
}

export function visible(text: string): string {
  return [...text].map(glyph).join('');
}

// ---------------------------------------------------------------------------------------------
// Keys
// ---------------------------------------------------------------------------------------------

type Key =
  | { k: 'text'; text: string }
  | { k: 'paste'; text: string }
  | { k: 'enter' | 'backspace' | 'delete' | 'left' | 'right' | 'home' | 'end' | 'up' | 'down' | 'wordLeft' | 'wordRight' }
  | { k: 'killStart' | 'killEnd' | 'killWord' | 'killWordForward' | 'clear' | 'interrupt' | 'eof' | 'tab' };

const MAX_PASTE = 256 * 1024;
const PASTE_END = '\u001b[201~';

/** Turns terminal input into keys; keeps an unfinished escape sequence or paste for the next chunk. */
class KeyDecoder {
  private pending = '';
  private paste: string | null = null;
  private lastWasCR = false;
  pasteOverflow = false;

  feed(text: string): Key[] {
    const keys: Key[] = [];
    const s = this.pending + text;
    this.pending = '';
    let i = 0;
    const textRun = (): void => {
      let j = i;
      while (j < s.length && (s.codePointAt(j) ?? 0) >= 0x20 && s[j] !== '\u007f' && !((s.codePointAt(j) ?? 0) >= 0x80 && (s.codePointAt(j) ?? 0) <= 0x9f)) j++;
      if (j > i) keys.push({ k: 'text', text: s.slice(i, j) });
      i = j;
    };
    while (i < s.length) {
      if (this.paste !== null) {
        const end = s.indexOf(PASTE_END, i);
        if (end < 0) {
          // Keep a possible partial end marker for the next chunk.
          let keep = 0;
          for (let n = Math.min(PASTE_END.length - 1, s.length - i); n > 0; n--) {
            if (PASTE_END.startsWith(s.slice(s.length - n))) {
              keep = n;
              break;
            }
          }
          this.paste += s.slice(i, s.length - keep);
          this.pending = s.slice(s.length - keep);
          if (this.paste.length > MAX_PASTE) {
            this.paste = null;
            this.pasteOverflow = true;
            this.pending = '';
          }
          return keys;
        }
        this.paste += s.slice(i, end);
        keys.push({ k: 'paste', text: this.paste });
        this.paste = null;
        i = end + PASTE_END.length;
        continue;
      }
      const c = s[i] as string;
      const wasCR = this.lastWasCR;
      this.lastWasCR = c === '\r';
      if (c === '\u001b') {
        const seq = this.escape(s, i);
        if (seq === null) {
          this.pending = s.slice(i);
          return keys;
        }
        i += seq.length;
        if (seq.key === 'pasteStart') {
          this.paste = '';
          this.pasteOverflow = false;
        } else if (seq.key !== null) {
          keys.push(seq.key);
        }
        continue;
      }
      const code = c.charCodeAt(0);
      if (code >= 0x20 && code !== 0x7f && !(code >= 0x80 && code <= 0x9f)) {
        textRun();
        continue;
      }
      i++;
      const map: Record<number, Key | undefined> = {
        0x01: { k: 'home' }, 0x02: { k: 'left' }, 0x03: { k: 'interrupt' }, 0x04: { k: 'eof' }, 0x05: { k: 'end' },
        0x06: { k: 'right' }, 0x08: { k: 'backspace' }, 0x09: { k: 'tab' }, 0x0b: { k: 'killEnd' }, 0x0c: { k: 'clear' },
        0x0e: { k: 'down' }, 0x10: { k: 'up' }, 0x15: { k: 'killStart' }, 0x17: { k: 'killWord' }, 0x7f: { k: 'backspace' },
      };
      if (c === '\r') keys.push({ k: 'enter' });
      else if (c === '\n') {
        if (!wasCR) keys.push({ k: 'enter' });
      } else {
        const key = map[code];
        if (key) keys.push(key);
      }
    }
    return keys;
  }

  /** One escape sequence at s[i]: its length and key, or null when more input is needed. */
  private escape(s: string, i: number): { length: number; key: Key | null | 'pasteStart' } | null {
    const n = s[i + 1];
    if (n === undefined) return null;
    if (n === '[') {
      let j = i + 2;
      while (j < s.length && /[0-9;?]/.test(s[j] as string)) j++;
      const final = s[j];
      if (final === undefined) return null;
      const params = s.slice(i + 2, j);
      const length = j - i + 1;
      const ctrl = params.endsWith(';5') || params.endsWith(';3');
      const k = (key: Key | null | 'pasteStart'): { length: number; key: Key | null | 'pasteStart' } => ({ length, key });
      switch (final) {
        case 'A': return k({ k: 'up' });
        case 'B': return k({ k: 'down' });
        case 'C': return k({ k: ctrl ? 'wordRight' : 'right' });
        case 'D': return k({ k: ctrl ? 'wordLeft' : 'left' });
        case 'H': return k({ k: 'home' });
        case 'F': return k({ k: 'end' });
        case '~':
          if (params === '200') return k('pasteStart');
          if (params === '1' || params === '7') return k({ k: 'home' });
          if (params === '4' || params === '8') return k({ k: 'end' });
          if (params === '3') return k({ k: 'delete' });
          return k(null);
        default:
          return k(null);
      }
    }
    if (n === 'O') {
      const f = s[i + 2];
      if (f === undefined) return null;
      const map: Record<string, Key> = { A: { k: 'up' }, B: { k: 'down' }, C: { k: 'right' }, D: { k: 'left' }, H: { k: 'home' }, F: { k: 'end' } };
      return { length: 3, key: map[f] ?? null };
    }
    // Alt+key arrives as ESC then the key.
    const alt: Record<string, Key> = { b: { k: 'wordLeft' }, f: { k: 'wordRight' }, d: { k: 'killWordForward' }, '\u007f': { k: 'killWord' }, '\b': { k: 'killWord' } };
    return { length: 2, key: alt[n] ?? null };
  }
}

// ---------------------------------------------------------------------------------------------
// The shell
// ---------------------------------------------------------------------------------------------

const BUILTINS = ['cd', 'pwd', 'history', 'exit', 'logout', 'help'] as const;
type Builtin = (typeof BUILTINS)[number];
const isBuiltin = (s: string): s is Builtin => (BUILTINS as readonly string[]).includes(s);
/** Constructs this shell can carry out itself; anything else in an allowed line is not run. */
const RUNNABLE_CONSTRUCTS = new Set(['pipeline', 'and-or', 'sequence']);
const MAX_LINE_CHARS = 8192;

type State = 'idle' | 'editing' | 'busy' | 'running' | 'closed';

export class RestrictedShell {
  private state: State = 'idle';
  private readonly utf8 = new StringDecoder('utf8');
  private readonly keys = new KeyDecoder();
  private queue: Key[] = [];
  private pumping = false;
  private buf: string[] = [];
  private cursor = 0;
  private renderedRow = 0;
  private readonly history: string[] = [];
  private historyIndex = 0;
  private draft: string[] = [];
  private lastTabPrefix: string | null = null;
  private cwd = '';
  private previousCwd = '';
  private columns: number;
  private finish: ((end: ShellEnd) => void) | null = null;
  private readonly ended: Promise<ShellEnd>;

  constructor(private readonly channel: ShellChannel, private readonly host: RestrictedShellHost, private readonly options: RestrictedShellOptions = {}) {
    this.columns = Math.max(20, options.columns ?? 80);
    this.ended = new Promise((resolve) => {
      this.finish = resolve;
    });
  }

  /** Show the prompt and serve until `exit`, Ctrl-D on an empty line, or close(). */
  start(): Promise<ShellEnd> {
    if (this.state !== 'idle') return this.ended;
    this.channel.on('data', (data) => this.onData(data));
    if (this.options.banner) this.write(`${this.options.banner.replace(/\r?\n/g, '\r\n')}\r\n`);
    this.prompt();
    return this.ended;
  }

  /** The broker's window-change: long lines wrap at this width. */
  resize(columns: number): void {
    if (Number.isFinite(columns) && columns >= 20) this.columns = Math.floor(columns);
  }

  close(): void {
    this.end('closed');
  }

  get directory(): string {
    return this.cwd;
  }

  /** Read through a method: the state changes while a decision or a command is awaited. */
  private closed(): boolean {
    return this.state === 'closed';
  }

  private end(how: ShellEnd): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.queue = [];
    this.finish?.(how);
  }

  private write(text: string): void {
    if (this.state !== 'closed') this.channel.write(text);
  }

  private onData(data: Buffer | string): void {
    if (this.state === 'closed') return;
    if (this.state === 'running') {
      // The command owns the terminal: bytes go to it untouched (Ctrl-C included).
      this.host.forward(typeof data === 'string' ? Buffer.from(data, 'utf8') : data);
      return;
    }
    const text = typeof data === 'string' ? data : this.utf8.write(data);
    this.queue.push(...this.keys.feed(text));
    if (this.keys.pasteOverflow) {
      this.keys.pasteOverflow = false;
      this.write(`\r\nportcullis: the paste is larger than ${MAX_PASTE / 1024} KiB and was dropped\r\n`);
      this.renderedRow = 0;
      if (this.state === 'editing') this.refresh();
    }
    void this.pump();
  }

  /** Handle queued keys one at a time; Enter waits for the line's decision and command. */
  private async pump(): Promise<void> {
    if (this.pumping) return;
    this.pumping = true;
    try {
      while (this.state === 'editing' && this.queue.length > 0) {
        const key = this.queue.shift() as Key;
        await this.handle(key);
      }
    } finally {
      this.pumping = false;
    }
  }

  private async handle(key: Key): Promise<void> {
    if (key.k !== 'tab') this.lastTabPrefix = null;
    switch (key.k) {
      case 'text':
        this.insert([...key.text]);
        return;
      case 'paste': {
        // Several lines are several commands, each parsed and decided on its own; the last line
        // (without a line end) stays in the editor. Pasted text goes in as characters, control
        // characters included, so that policy sees (and refuses) an escape sequence rather than
        // the editor acting on it.
        const lines = key.text.split(/\r\n|\r|\n/);
        const expanded: Key[] = [];
        lines.forEach((l, idx) => {
          if (l !== '') expanded.push({ k: 'text', text: l });
          if (idx < lines.length - 1) expanded.push({ k: 'enter' });
        });
        this.queue.unshift(...expanded);
        return;
      }
      case 'enter':
        await this.submit();
        return;
      case 'backspace':
        if (this.cursor > 0) {
          this.buf.splice(this.cursor - 1, 1);
          this.cursor--;
          this.refresh();
        }
        return;
      case 'delete':
        if (this.cursor < this.buf.length) {
          this.buf.splice(this.cursor, 1);
          this.refresh();
        }
        return;
      case 'left':
        if (this.cursor > 0) this.moveTo(this.cursor - 1);
        return;
      case 'right':
        if (this.cursor < this.buf.length) this.moveTo(this.cursor + 1);
        return;
      case 'home':
        this.moveTo(0);
        return;
      case 'end':
        this.moveTo(this.buf.length);
        return;
      case 'wordLeft':
        this.moveTo(this.wordStartBefore(this.cursor));
        return;
      case 'wordRight': {
        let j = this.cursor;
        while (j < this.buf.length && this.buf[j] === ' ') j++;
        while (j < this.buf.length && this.buf[j] !== ' ') j++;
        this.moveTo(j);
        return;
      }
      case 'killStart':
        this.buf.splice(0, this.cursor);
        this.cursor = 0;
        this.refresh();
        return;
      case 'killEnd':
        this.buf.splice(this.cursor);
        this.refresh();
        return;
      case 'killWord': {
        const from = this.wordStartBefore(this.cursor);
        this.buf.splice(from, this.cursor - from);
        this.cursor = from;
        this.refresh();
        return;
      }
      case 'killWordForward': {
        let j = this.cursor;
        while (j < this.buf.length && this.buf[j] === ' ') j++;
        while (j < this.buf.length && this.buf[j] !== ' ') j++;
        this.buf.splice(this.cursor, j - this.cursor);
        this.refresh();
        return;
      }
      case 'up':
        if (this.historyIndex > 0) {
          if (this.historyIndex === this.history.length) this.draft = this.buf;
          this.historyIndex--;
          this.setLine([...(this.history[this.historyIndex] ?? '')]);
        }
        return;
      case 'down':
        if (this.historyIndex < this.history.length) {
          this.historyIndex++;
          this.setLine(this.historyIndex === this.history.length ? this.draft : [...(this.history[this.historyIndex] ?? '')]);
        }
        return;
      case 'clear':
        this.write('\u001b[H\u001b[2J');
        this.renderedRow = 0;
        this.refresh();
        return;
      case 'interrupt':
        this.moveTo(this.buf.length);
        this.write('^C\r\n');
        this.renderedRow = 0;
        this.prompt();
        return;
      case 'eof':
        if (this.buf.length === 0) {
          this.write('logout\r\n');
          this.farewell();
          this.end('eof');
        } else if (this.cursor < this.buf.length) {
          this.buf.splice(this.cursor, 1);
          this.refresh();
        }
        return;
      case 'tab':
        this.complete();
        return;
    }
  }

  private wordStartBefore(pos: number): number {
    let j = pos;
    while (j > 0 && this.buf[j - 1] === ' ') j--;
    while (j > 0 && this.buf[j - 1] !== ' ') j--;
    return j;
  }

  private insert(chars: string[]): void {
    const room = MAX_LINE_CHARS - this.buf.length;
    if (room <= 0) {
      this.write('\u0007');
      return;
    }
    const add = chars.slice(0, room);
    this.buf.splice(this.cursor, 0, ...add);
    this.cursor += add.length;
    this.refresh();
  }

  private setLine(chars: string[]): void {
    this.buf = [...chars];
    this.cursor = this.buf.length;
    this.refresh();
  }

  private moveTo(pos: number): void {
    this.cursor = pos;
    this.refresh();
  }

  private promptText(): string {
    const label = visible(this.options.promptLabel ?? 'portcullis');
    return `${label}:${visible(displayDirectory(this.cwd))}$ `;
  }

  private prompt(): void {
    if (this.state === 'closed') return;
    this.buf = [];
    this.cursor = 0;
    this.renderedRow = 0;
    this.historyIndex = this.history.length;
    this.draft = [];
    this.state = 'editing';
    // Bracketed paste on: a paste arrives marked, so it is never mistaken for typed Enter keys.
    this.write('\u001b[?2004h');
    this.refresh();
  }

  /** Redraw prompt and line, wrapping at the terminal width (after linenoise's multi-line mode). */
  private refresh(): void {
    const cols = this.columns;
    const prompt = this.promptText();
    const glyphs = this.buf.map(glyph);
    const width = (gs: string[]): number => gs.reduce((n, g) => n + [...g].length, 0);
    const total = prompt.length + width(glyphs);
    const at = prompt.length + width(glyphs.slice(0, this.cursor));
    let out = this.renderedRow > 0 ? `\u001b[${this.renderedRow}A` : '';
    out += `\r\u001b[J${prompt}${glyphs.join('')}`;
    const endRow = Math.floor(total / cols);
    // At the margin the terminal holds the cursor until the next character; make the wrap real.
    if (total > 0 && total % cols === 0) out += '\r\n';
    const row = Math.floor(at / cols);
    const col = at % cols;
    if (endRow > row) out += `\u001b[${endRow - row}A`;
    out += `\r${col > 0 ? `\u001b[${col}C` : ''}`;
    this.renderedRow = row;
    this.write(out);
  }

  private complete(): void {
    const before = this.buf.slice(0, this.cursor).join('');
    const m = /^\s*(\S*)$/.exec(before);
    if (!m) {
      // Only the program name is completed: arguments live on the device, which the gateway does not list.
      this.write('\u0007');
      return;
    }
    const prefix = m[1] ?? '';
    const names = [...new Set([...allowedProgramNames(this.host.profile), ...BUILTINS.filter((b) => b !== 'logout')])].sort();
    const matches = names.filter((n) => n.startsWith(prefix));
    if (matches.length === 0) {
      this.write('\u0007');
      return;
    }
    if (matches.length === 1) {
      this.insert([...`${(matches[0] as string).slice(prefix.length)} `]);
      return;
    }
    let common = matches[0] as string;
    for (const n of matches) while (!n.startsWith(common)) common = common.slice(0, -1);
    if (common.length > prefix.length) {
      this.insert([...common.slice(prefix.length)]);
      return;
    }
    if (this.lastTabPrefix === prefix) {
      this.moveTo(this.buf.length);
      this.write(`\r\n${matches.join('  ')}\r\n`);
      this.renderedRow = 0;
      this.refresh();
    } else {
      this.write('\u0007');
    }
    this.lastTabPrefix = prefix;
  }

  private farewell(): void {
    this.write('\u001b[?2004l');
  }

  private say(text: string): void {
    this.write(`portcullis: ${visible(text)}\r\n`);
  }

  private refuse(reason: string, code: string): void {
    this.write(`portcullis: denied: ${visible(reason)} [${code}]\r\n`);
  }

  private async submit(): Promise<void> {
    const line = this.buf.join('');
    this.moveTo(this.buf.length);
    this.write('\r\n');
    this.renderedRow = 0;
    this.state = 'busy';
    try {
      if (line.trim() !== '') {
        if (this.history[this.history.length - 1] !== line) this.history.push(line);
        const max = this.options.historySize ?? 500;
        if (this.history.length > max) this.history.splice(0, this.history.length - max);
        await this.execute(line);
      }
    } catch (err) {
      this.refuse(`the gateway could not check this line (${err instanceof Error ? err.message : String(err)})`, 'COMMAND_DENIED');
    }
    if (this.closed()) return;
    this.prompt();
    void this.pump();
  }

  private async execute(line: string): Promise<void> {
    const parsed = await parseCommandLine(line);
    const ctx: DecideContext = { cwd: this.cwd, say: (t) => this.say(t) };

    // Built-ins run nothing on the device; they must stand alone on their line.
    const named = parsed.commands.find((c) => c.argv[0]?.literal && isBuiltin(c.argv[0].value));
    if (named && parsed.error === undefined) {
      const argv = named.argv.map((w) => (w.literal ? w.value : w.source));
      // `cd ~` and `cd ~/dir` are the one expansion the shell itself understands.
      const tildeOnly = parsed.constructs.every((c) => c === 'tilde-expansion') && named.argv.every((w) => w.literal || this.isTildeWord(w.source));
      if (parsed.commands.length !== 1 || !tildeOnly) {
        this.refuse(`\`${argv[0]}\` is a command of this gateway shell; type it on its own line, without quotes tricks or variables`, 'COMMAND_DENIED');
        return;
      }
      const words = named.argv.map((w) => (w.literal ? w.value : w.source));
      this.host.onBuiltin?.(line, words, this.cwd);
      this.builtin(words);
      return;
    }

    let decision = await this.host.decide(line, parsed, ctx);
    if (decision.action === 'review') {
      if (!this.host.review) {
        this.refuse(`${decision.reason}, and no approver can be reached from this session`, 'COMMAND_DENIED');
        return;
      }
      this.say(`waiting for an approver: ${decision.reason}`);
      decision = await this.host.review(line, parsed, decision, ctx);
      if (this.closed()) return;
      if (decision.action === 'allow') this.say('approved');
    }
    if (decision.action !== 'allow') {
      this.refuse(decision.reason, decision.code ?? 'COMMAND_DENIED');
      return;
    }
    await this.runAllowed(parsed);
  }

  private isTildeWord(source: string): boolean {
    return source === '~' || (source.startsWith('~/') && !/[$`"'\\*?[{]/.test(source));
  }

  /**
   * Carry out an allowed line: each pipeline as one exec request, `&&`, `||` and `;` here, with
   * bash's left-to-right semantics. Whatever else the line holds (a redirection, a
   * substitution…) was either refused by policy or cannot be carried out, so it is not run.
   */
  private async runAllowed(parsed: ParsedLine): Promise<void> {
    const extra = parsed.constructs.filter((c) => !RUNNABLE_CONSTRUCTS.has(c));
    if (parsed.error !== undefined || extra.length > 0 || parsed.commands.some((c) => c.nested || c.argv.length === 0 || c.argv.some((w) => !w.literal) || c.assignments.length > 0 || c.redirections.length > 0)) {
      this.refuse('this line holds shell syntax the restricted shell does not carry out', 'COMMAND_DENIED');
      return;
    }
    // Pipelines, each with the operator that follows it.
    const pipelines: { stages: string[][]; next: string | null }[] = [];
    let stages: string[][] = [];
    for (const c of parsed.commands) {
      stages.push(c.argv.map((w) => (w.literal ? w.value : '')));
      if (c.next === '|') continue;
      if (c.next !== null && c.next !== '&&' && c.next !== '||' && c.next !== ';') {
        this.refuse(`\`${c.next}\` is not carried out by the restricted shell`, 'COMMAND_DENIED');
        return;
      }
      pipelines.push({ stages, next: c.next });
      stages = [];
    }
    if (pipelines.some((p) => p.stages.length > 1) && !this.host.runPipeline) {
      this.refuse('pipes are not available through this gateway connection', 'COMMAND_DENIED');
      return;
    }
    let status: number | null = 0;
    let join: string | null = null;
    for (const p of pipelines) {
      const skip = (join === '&&' && status !== 0) || (join === '||' && status === 0);
      join = p.next;
      if (skip) continue;
      status = await this.runOne(p.stages);
      if (this.closed()) return;
    }
  }

  private async runOne(stages: string[][]): Promise<number | null> {
    this.state = 'running';
    this.write('\u001b[?2004l');
    try {
      const [only] = stages;
      const pipeline = this.host.runPipeline?.bind(this.host);
      if (stages.length === 1 && only) return (await this.host.run(only, this.cwd)).exitStatus;
      if (!pipeline) throw new Error('pipes are not available');
      return (await pipeline(stages, this.cwd)).exitStatus;
    } catch (err) {
      this.say(`the command could not be run (${err instanceof Error ? err.message : String(err)})`);
      return null;
    } finally {
      if (this.state === 'running') this.state = 'busy';
    }
  }

  private builtin(argv: string[]): void {
    const [name, ...args] = argv as [Builtin, ...string[]];
    switch (name) {
      case 'exit':
      case 'logout':
        this.write('logout\r\n');
        this.farewell();
        this.end('exit');
        return;
      case 'pwd':
        this.write(`${visible(displayDirectory(this.cwd))}\r\n`);
        return;
      case 'history':
        this.history.forEach((h, i) => this.write(`${String(i + 1).padStart(5)}  ${visible(h)}\r\n`));
        return;
      case 'help':
        this.help();
        return;
      case 'cd': {
        if (args.length > 1) {
          this.refuse('cd takes one directory', 'COMMAND_DENIED');
          return;
        }
        const target = args[0] ?? '~';
        if (target === '-') {
          [this.cwd, this.previousCwd] = [this.previousCwd, this.cwd];
          this.write(`${visible(displayDirectory(this.cwd))}\r\n`);
          return;
        }
        if (target.startsWith('-') || target.length > 1024 || [...target].some((ch) => glyph(ch) !== ch)) {
          this.refuse('cd takes a plain directory name (no options, no control or invisible characters)', 'COMMAND_DENIED');
          return;
        }
        this.previousCwd = this.cwd;
        this.cwd = changeDirectory(this.cwd, target);
        return;
      }
    }
  }

  private help(): void {
    const lines = [
      `This is a restricted shell run by Portcullis; the command profile "${this.host.profile.name}" says what may run on this device:`,
      ...describeProfile(this.host.profile).map((l) => `  ${l}`),
      'Commands of this shell: cd DIR, pwd, history, help, exit. Tab completes program names; Ctrl-C cancels a line; Ctrl-D on an empty line leaves.',
      'Every command and its result are recorded.',
    ];
    for (const l of lines) this.write(`${visible(l)}\r\n`);
  }
}
