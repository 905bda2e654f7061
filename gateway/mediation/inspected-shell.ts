/**
 * Inspected mode (R-6.3c, DESIGN "Command mediation"): the vendor has a real interactive shell on
 * the device, and the gateway, which sees every byte both ways, checks each command line at the
 * moment the shell is about to run it. This is best effort by nature (the shell, not the gateway,
 * owns the line editor), so every doubt ends in a denial. Level-3 devices never use this mode;
 * restricted mode is the boundary that holds against a determined user.
 *
 * How it works
 * - Every byte from the device feeds a private `@xterm/headless` terminal of the session's size, so
 *   the gateway sees what the vendor sees. The line is read from that screen, not from the typed
 *   bytes, because editing keys, history recall (Up, Ctrl-R) and tab completion are carried out by
 *   the device's shell and only the screen shows their result.
 * - Prompt. When device output has been quiet for `settleMs` and the cursor sits at the end of its
 *   line right after one of `$ `, `# `, `> `, `% `, that text (the whole screen line before the
 *   cursor, wrapped rows joined) is taken as the prompt. The first prompt fixes which of the four
 *   endings the shell uses; later prompts must end the same way, so a `> ` continuation prompt
 *   (PS2) or a program's own prompt is not mistaken for the shell's. After a released line or
 *   Ctrl-C, a prompt is only recognised once the device wrote something, and (a) if nothing was
 *   sent since, or (b) if what was sent since is plain text and the screen shows exactly that
 *   text after the prompt (type-ahead: it becomes the line being edited), or (c) if it is exactly
 *   the previous prompt and a full-screen program ran since. Otherwise typed text ending in `$ `
 *   could pose as a prompt. `> ` alone on a line after a released command is taken as the
 *   shell's continuation prompt.
 * - At a prompt, keys pass straight through. At Enter (CR, LF, CR LF, or Ctrl-O, which bash also
 *   takes as "run this line"), the Enter is held; once the echo of everything typed has arrived
 *   and output is quiet, the line is the text after the prompt on the prompt's screen line (rows
 *   joined where the terminal wrapped or a row is filled to its last column, since readline's
 *   redraws clear xterm's wrap flag). The typed bytes are a second witness: while they hold only
 *   printable text and simple editing keys (Backspace, Delete, Left/Right, Home/End, Ctrl-U,
 *   Ctrl-K) the gateway replays them and the screen must show exactly that line; otherwise
 *   (history, completion, word keys…) the screen alone decides, and only after the device
 *   answered the last key. The line then goes to `decide`; `allow` releases the Enter, `deny`
 *   sends Ctrl-C instead (bash and dash, and zsh, drop the line on it, a PS2 continuation
 *   included, and add nothing to the history; Ctrl-U would leave a continuation open) and shows
 *   `portcullis: denied: <reason> [COMMAND_DENIED]`; `review` shows that an approver is being
 *   waited for and lets `review` give the final allow or deny. Input typed meanwhile waits, in
 *   order; Ctrl-C cancels the wait (and the line). After a denied line, keys typed before the
 *   shell has answered the gateway's Ctrl-C with a fresh prompt wait for it (at most
 *   `echoTimeoutMs`), so they start the next line instead of joining the cancelled one; a shell
 *   that answers the Ctrl-C but keeps the cancelled line on screen gets a second one.
 * - Denied without asking `decide`: Enter before any prompt was recognised, with a full-screen
 *   program where the prompt should be, with the screen still changing, when screen and typed
 *   bytes disagree, when the screen shows a typed control character as ^X (the shell then holds
 *   other bytes than the screen shows, e.g. dash echoing an arrow key as ^[[D), a line ending in
 *   a backslash (continuation), a line over 4096 bytes or taller than the screen, Enter at a `> `
 *   continuation prompt, and a line typed ahead while a command ran.
 * - Keys that make bash run or rewrite-and-run a line without Enter are refused at the prompt:
 *   Ctrl-X (edit-and-execute-command, keyboard macros), Alt-# (insert-comment accepts the line,
 *   and with an argument un-comments it), Alt-Enter/Alt-Ctrl-J (switch to vi editing mode).
 * - Pastes (bracketed, or one chunk holding several line ends) are decided line by line before
 *   any of it is sent: the first line joined to what is already on the prompt line at the cursor.
 *   If every line is allowed, the lines are sent as typed text with CR after each; if one is
 *   denied, none is sent, Ctrl-C clears the prompt line, and the vendor is told which line and
 *   why. A paste holding a tab or another control character is refused whole (a tab would
 *   complete, a control character would edit).
 * - Running command. After a released line the component is "in a command": keys pass through.
 *   An Enter is released at once to a program that owns the keyboard (alternate screen,
 *   application cursor or keypad mode: less, vi, top…). On the normal screen the gateway cannot
 *   tell a program reading a line from type-ahead the shell would run later without a check
 *   (`sleep 9` then `rm …⏎`), so the Enter is held until the prompt returns and is then checked
 *   there like any other; if keys the gateway cannot replay were typed ahead (so the prompt is
 *   not recognised), the old prompt on the cursor line means the line is cancelled and must be
 *   typed again. Ctrl-C ends the wait.
 *
 * What it cannot promise (README "Inspected mode")
 * - The decided text is what the screen shows; the shell may still expand it differently
 *   (aliases, functions, history expansion, variables): the engine must deny those constructs.
 * - Programs the profile allows can run anything they like themselves (shell escapes from
 *   pagers and editors, interpreters' prompts); what is typed into a full-screen program is not
 *   checked at all.
 * - Line-oriented programs on the normal screen (confirmation prompts, `read`, password prompts,
 *   REPLs) cannot be given an Enter; only full-screen programs can.
 * - Readline's emacs key map with its default bindings is assumed. vi editing mode (from the
 *   device's inputrc), user key bindings, horizontal-scroll-mode, and shells that redraw in other
 *   ways may run lines the gateway never saw an Enter for, or be read wrongly.
 * - A prompt must end in `$ `, `# `, `> ` or `% ` and differ from PS2. A prompt that changes on
 *   its own (a clock) makes the line after a redraw (Ctrl-L) unreadable, so it is denied; the
 *   prompt is learned again after the next released command or Ctrl-C.
 * - Timing: after keys the gateway cannot replay (Up, Tab, Ctrl-W…), the line is read once the
 *   device has answered and gone quiet for `settleMs`; a device that stalls longer than that in
 *   the middle of answering keys typed just before Enter could make it read a stale line.
 * - The session's window size must be the one given here (`resize`) for wrapped lines to read
 *   correctly.
 */
import { performance } from 'node:perf_hooks';
import { StringDecoder } from 'node:string_decoder';
import xtermHeadless from '@xterm/headless';
import type { IBufferCell, IMarker, Terminal as HeadlessTerminal } from '@xterm/headless';
import { MAX_COMMAND_LINE_BYTES } from '../../policy/command-policy.js';
import { visible } from './restricted-shell.js';

// The package is CommonJS: Node's ESM loader only offers its exports as the default.
const { Terminal } = xtermHeadless;

export type LineAction = 'allow' | 'deny' | 'review';

export interface LineDecision {
  action: LineAction;
  reason: string;
}

export interface DecideContext {
  /** Aborted when the vendor cancels the line (Ctrl-C) or the component is disposed; the answer is then ignored. */
  signal: AbortSignal;
}

/** Who settled a line: the profile engine, an approver, this component (an unreadable line), or the vendor (Ctrl-C while waiting). */
export type DecidedBy = 'policy' | 'approver' | 'gateway' | 'user';

export interface LineOutcome {
  action: 'allow' | 'deny';
  reason: string;
  by: DecidedBy;
  /** 1-based line number within a paste. */
  pasteLine?: number;
}

export type InspectedState = 'unknown' | 'prompt' | 'command' | 'continuation';

export interface InspectedShellOptions {
  cols: number;
  rows: number;
  /** The profile engine (the broker wraps parseCommandLine + decideCommand). Should answer quickly; `review` is where waiting happens. */
  decide(line: string, ctx: DecideContext): Promise<LineDecision>;
  /**
   * Called after `decide` said `review` and the vendor was told an approver is being waited for:
   * resolve to the approver's allow or deny (or deny on timeout). Absent: review means deny.
   */
  review?(line: string, held: LineDecision, ctx: DecideContext): Promise<LineDecision>;
  /** Bytes for the device's shell, in order. */
  toDevice(data: Buffer): void;
  /** Notices for the vendor's terminal only (CRLF line ends); never sent to the device. */
  toUser(text: string): void;
  /** Every line that was settled, with its exact text, for the command log and audit. */
  onDecided?(line: string, outcome: LineOutcome): void;
  log?(message: string): void;
  /** Output quiet for this long means the screen is up to date. Default 50 ms. */
  settleMs?: number;
  /** How long an Enter waits for the device's echo before the line counts as unreadable. Default 1500 ms. */
  echoTimeoutMs?: number;
}

const PROMPT_ENDS = ['$ ', '# ', '> ', '% '] as const;
const CONTINUATION_PROMPT = '> ';
const CTRL_C = Buffer.from([0x03]);
const ESC = 0x1b;
const PASTE_START = '200';
const PASTE_END = Buffer.from('\u001b[201~', 'latin1');
const MAX_PASTE_BYTES = 256 * 1024;
/** While an Enter is held for a running command, how often the screen is looked at again. */
const HOLD_POLL_MS = 100;

// ---------------------------------------------------------------------------------------------
// Input: bytes from the vendor, cut into the pieces that matter here
// ---------------------------------------------------------------------------------------------

type EditKey = 'left' | 'right' | 'home' | 'end' | 'backspace' | 'delete' | 'killStart' | 'killEnd' | 'other';

type Token =
  | { t: 'text'; data: Buffer }
  | { t: 'key'; data: Buffer; key: EditKey }
  /** A lone ESC at the end of a chunk: the start of an Alt-key whose second byte is yet to come. */
  | { t: 'esc'; data: Buffer }
  | { t: 'enter'; data: Buffer }
  | { t: 'interrupt'; data: Buffer }
  | { t: 'refused'; data: Buffer; what: string }
  | { t: 'paste'; data: Buffer; text: string; bracketed: boolean; tooLarge: boolean };

const CONTROL_KEYS: Readonly<Record<number, EditKey>> = {
  0x01: 'home', 0x02: 'left', 0x05: 'end', 0x06: 'right', 0x08: 'backspace', 0x0b: 'killEnd', 0x15: 'killStart', 0x7f: 'backspace',
};

function csiKey(params: string, final: string): EditKey {
  if (params === '') {
    const plain: Readonly<Record<string, EditKey>> = { D: 'left', C: 'right', H: 'home', F: 'end' };
    return plain[final] ?? 'other';
  }
  if (final === '~') {
    const tilde: Readonly<Record<string, EditKey>> = { '1': 'home', '7': 'home', '4': 'end', '8': 'end', '3': 'delete' };
    return tilde[params] ?? 'other';
  }
  return 'other';
}

class InputTokenizer {
  private pending: Buffer = Buffer.alloc(0);
  private paste: Buffer[] | null = null;
  private pasteBytes = 0;
  private pasteTooLarge = false;

  feed(chunk: Buffer): Token[] {
    const s = this.pending.length > 0 ? Buffer.concat([this.pending, chunk]) : chunk;
    this.pending = Buffer.alloc(0);
    const out: Token[] = [];
    let i = 0;
    while (i < s.length) {
      if (this.paste !== null) {
        const end = s.indexOf(PASTE_END, i);
        if (end < 0) {
          // The end marker may be split across chunks: keep what could be its beginning.
          let keep = 0;
          for (let n = Math.min(PASTE_END.length - 1, s.length - i); n > 0; n--) {
            if (s.subarray(s.length - n).equals(PASTE_END.subarray(0, n))) {
              keep = n;
              break;
            }
          }
          this.addPaste(s.subarray(i, s.length - keep));
          this.pending = Buffer.from(s.subarray(s.length - keep));
          return out;
        }
        this.addPaste(s.subarray(i, end));
        const data = Buffer.concat([Buffer.from('\u001b[200~', 'latin1'), ...this.paste, PASTE_END]);
        out.push({ t: 'paste', data, text: Buffer.concat(this.paste).toString('utf8'), bracketed: true, tooLarge: this.pasteTooLarge });
        this.paste = null;
        i = end + PASTE_END.length;
        continue;
      }
      const b = s[i] as number;
      if (b === ESC) {
        const n = s[i + 1];
        if (n === undefined) {
          out.push({ t: 'esc', data: Buffer.from(s.subarray(i)) });
          i++;
          continue;
        }
        if (n === 0x5b) {
          // CSI: parameter bytes, intermediate bytes, one final byte.
          let j = i + 2;
          while (j < s.length && (s[j] as number) >= 0x30 && (s[j] as number) <= 0x3f) j++;
          const paramsEnd = j;
          while (j < s.length && (s[j] as number) >= 0x20 && (s[j] as number) <= 0x2f) j++;
          if (j >= s.length) {
            this.pending = Buffer.from(s.subarray(i));
            return out;
          }
          const final = s[j] as number;
          if (final < 0x40 || final > 0x7e) {
            out.push({ t: 'key', data: Buffer.from(s.subarray(i, i + 2)), key: 'other' });
            i += 2;
            continue;
          }
          const params = s.subarray(i + 2, paramsEnd).toString('latin1');
          const finalChar = String.fromCharCode(final);
          if (params === PASTE_START && finalChar === '~' && paramsEnd === j) {
            this.paste = [];
            this.pasteBytes = 0;
            this.pasteTooLarge = false;
            i = j + 1;
            continue;
          }
          out.push({ t: 'key', data: Buffer.from(s.subarray(i, j + 1)), key: paramsEnd === j ? csiKey(params, finalChar) : 'other' });
          i = j + 1;
          continue;
        }
        if (n === 0x4f) {
          const f = s[i + 2];
          if (f === undefined) {
            this.pending = Buffer.from(s.subarray(i));
            return out;
          }
          out.push({ t: 'key', data: Buffer.from(s.subarray(i, i + 3)), key: csiKey('', String.fromCharCode(f)) });
          i += 3;
          continue;
        }
        const refused = altRefusal(n);
        const data = Buffer.from(s.subarray(i, i + 2));
        out.push(refused ? { t: 'refused', data, what: refused } : { t: 'key', data, key: 'other' });
        i += 2;
        continue;
      }
      if (b === 0x0d) {
        const len = s[i + 1] === 0x0a ? 2 : 1;
        out.push({ t: 'enter', data: Buffer.from(s.subarray(i, i + len)) });
        i += len;
        continue;
      }
      if (b === 0x0a || b === 0x0f) {
        out.push({ t: 'enter', data: Buffer.from(s.subarray(i, i + 1)) });
        i++;
        continue;
      }
      if (b === 0x03) {
        out.push({ t: 'interrupt', data: Buffer.from(s.subarray(i, i + 1)) });
        i++;
        continue;
      }
      if (b === 0x18) {
        out.push({ t: 'refused', data: Buffer.from(s.subarray(i, i + 1)), what: 'Ctrl-X key sequences (edit-and-execute, keyboard macros)' });
        i++;
        continue;
      }
      if (b < 0x20 || b === 0x7f) {
        out.push({ t: 'key', data: Buffer.from(s.subarray(i, i + 1)), key: CONTROL_KEYS[b] ?? 'other' });
        i++;
        continue;
      }
      let j = i + 1;
      while (j < s.length && (s[j] as number) >= 0x20 && s[j] !== 0x7f) j++;
      out.push({ t: 'text', data: Buffer.from(s.subarray(i, j)) });
      i = j;
    }
    return asPaste(out);
  }

  private addPaste(part: Buffer): void {
    if (this.paste === null || part.length === 0) return;
    this.pasteBytes += part.length;
    // Past the limit the rest is still swallowed up to the end marker, never taken as keys.
    if (this.pasteBytes > MAX_PASTE_BYTES) this.pasteTooLarge = true;
    else this.paste.push(Buffer.from(part));
  }
}

/** Alt (ESC-prefixed) keys that make readline run the line or change how keys are read. */
function altRefusal(second: number): string | null {
  if (second === 0x23) return 'Alt-# (insert-comment runs the line)';
  if (second === 0x0d || second === 0x0a) return 'Alt-Enter (switches the shell to vi editing mode)';
  if (second === 0x0f || second === 0x18) return 'Alt-Ctrl-O / Alt-Ctrl-X';
  return null;
}

/**
 * One chunk holding several line ends is a paste without markers (or keys typed faster than the
 * gateway reads them): all its lines are checked before any of it is sent.
 */
function asPaste(tokens: Token[]): Token[] {
  const enters = tokens.filter((t) => t.t === 'enter').length;
  if (enters < 2 || tokens.some((t) => t.t === 'paste' || t.t === 'interrupt')) return tokens;
  const data = Buffer.concat(tokens.map((t) => t.data));
  return [{ t: 'paste', data, text: data.toString('utf8'), bracketed: false, tooLarge: false }];
}

// ---------------------------------------------------------------------------------------------
// The typed bytes, replayed as far as the result is certain
// ---------------------------------------------------------------------------------------------

class TypedLine {
  chars: string[] = [];
  cursor = 0;
  /** False once a key was typed whose effect the gateway cannot replay (history, completion…). */
  predictable = true;
  /** Control characters typed since the prompt, to catch a shell that shows them as ^X. */
  readonly controls = new Set<number>();
  private decoder = new StringDecoder('utf8');

  reset(): void {
    this.chars = [];
    this.cursor = 0;
    this.predictable = true;
    this.controls.clear();
    this.decoder = new StringDecoder('utf8');
  }

  get text(): string {
    return this.chars.join('');
  }

  insert(data: Buffer): void {
    const add = [...this.decoder.write(data)];
    this.chars.splice(this.cursor, 0, ...add);
    this.cursor += add.length;
  }

  key(key: EditKey, data: Buffer): void {
    for (const b of data) if (b < 0x20 || b === 0x7f) this.controls.add(b);
    switch (key) {
      case 'left':
        this.cursor = Math.max(0, this.cursor - 1);
        return;
      case 'right':
        this.cursor = Math.min(this.chars.length, this.cursor + 1);
        return;
      case 'home':
        this.cursor = 0;
        return;
      case 'end':
        this.cursor = this.chars.length;
        return;
      case 'backspace':
        if (this.cursor > 0) {
          this.chars.splice(this.cursor - 1, 1);
          this.cursor--;
        }
        return;
      case 'delete':
        if (this.cursor < this.chars.length) this.chars.splice(this.cursor, 1);
        return;
      case 'killStart':
        this.chars.splice(0, this.cursor);
        this.cursor = 0;
        return;
      case 'killEnd':
        this.chars.splice(this.cursor);
        return;
      case 'other':
        this.predictable = false;
        return;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// The component
// ---------------------------------------------------------------------------------------------

interface ScreenLine {
  /** Absolute buffer row where the joined line starts. */
  start: number;
  text: string;
  /** Index into text of the cursor; text.length when the cursor is past its end. */
  cursor: number;
}

type Readout = { ok: true; line: string; cursor: number } | { ok: false; reason: string; text: string };

class Cancelled extends Error {
  constructor() {
    super('cancelled');
  }
}

const trimSpaces = (s: string): string => s.replace(/ +$/, '');
const isBlank = (s: string): boolean => s.trim() === '';
const caret = (c: number): string => `^${String.fromCharCode(c ^ 0x40)}`;
/** The first control character that may not be pasted: all but CR and LF (a tab would complete, the rest edit). */
function pasteControl(text: string): number | null {
  for (const ch of text) {
    const c = ch.codePointAt(0) ?? 0;
    if ((c < 0x20 && c !== 0x0a && c !== 0x0d) || (c >= 0x7f && c <= 0x9f)) return c;
  }
  return null;
}

export class InspectedShell {
  private readonly term: HeadlessTerminal;
  private cols: number;
  private rows: number;
  private readonly settleMs: number;
  private readonly echoTimeoutMs: number;

  private stateValue: InspectedState = 'unknown';
  private promptEnd: string | null = null;
  private prompt: { text: string; marker: IMarker | undefined } | null = null;
  private readonly typed = new TypedLine();

  private lastOutputAt = 0;
  private lastInputAt = 0;
  private writesInFlight = 0;
  private quietTimer: NodeJS.Timeout | null = null;
  private wakers: Array<() => void> = [];

  // Since the last released line or Ctrl-C: what makes a recognised prompt trustworthy.
  /**
   * The exact printable text sent ahead (typed during a command, or the unterminated last line
   * of a paste): the shell shows it after its next prompt. null once anything else was sent.
   */
  private ahead: Buffer[] | null = [];
  private outputSinceReset = false;
  private fullScreenSinceReset = false;

  private readonly tokenizer = new InputTokenizer();
  private queue: Token[] = [];
  private running = false;
  private drained: Promise<void> = Promise.resolve();
  private job: AbortController | null = null;
  private heldEsc: Buffer | null = null;
  private disposed = false;
  /** The gateway cancelled a line on the device; the next keys wait for the prompt to come back. */
  private settling = false;

  constructor(private readonly opts: InspectedShellOptions) {
    this.cols = Math.max(2, Math.floor(opts.cols));
    this.rows = Math.max(2, Math.floor(opts.rows));
    this.settleMs = opts.settleMs ?? 50;
    this.echoTimeoutMs = opts.echoTimeoutMs ?? 1500;
    this.term = new Terminal({ cols: this.cols, rows: this.rows, scrollback: 1000, allowProposedApi: true });
    this.term.buffer.onBufferChange(() => this.noteFullScreen());
  }

  /** Where the component believes the shell is; for the broker's status and for tests. */
  get state(): InspectedState {
    return this.stateValue;
  }

  /** The prompt text last recognised, or null. */
  get promptText(): string | null {
    return this.prompt?.text ?? null;
  }

  /** Every byte the device sends towards the vendor. */
  fromDevice(chunk: Buffer): void {
    if (this.disposed || chunk.length === 0) return;
    this.lastOutputAt = performance.now();
    this.outputSinceReset = true;
    this.writesInFlight++;
    this.term.write(chunk, () => {
      this.writesInFlight--;
      this.noteFullScreen();
      this.wake();
    });
    this.scheduleRecognition();
  }

  /**
   * Every byte the vendor types or pastes. Resolves once this input (and whatever was queued
   * before it) has been forwarded, refused or dropped; keys other than Enter are forwarded before
   * this returns when nothing is pending.
   */
  fromUser(chunk: Buffer): Promise<void> {
    if (this.disposed) return Promise.resolve();
    for (const token of this.tokenizer.feed(chunk)) {
      if (token.t === 'interrupt' && this.running) {
        // Ctrl-C does not queue: it withdraws the held line and everything typed after it.
        this.queue = [];
        this.job?.abort();
        this.interrupt(token.data);
        continue;
      }
      this.queue.push(token);
    }
    return this.drain();
  }

  /** The session's window changed; the broker passes the same size to the device's PTY. */
  resize(cols: number, rows: number): void {
    if (!Number.isFinite(cols) || !Number.isFinite(rows)) return;
    this.cols = Math.max(2, Math.floor(cols));
    this.rows = Math.max(2, Math.floor(rows));
    this.term.resize(this.cols, this.rows);
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.queue = [];
    this.job?.abort();
    if (this.quietTimer) clearTimeout(this.quietTimer);
    this.prompt?.marker?.dispose();
    this.term.dispose();
    this.wake();
  }

  // -------------------------------------------------------------------------------------------
  // Input processing
  // -------------------------------------------------------------------------------------------

  private drain(): Promise<void> {
    if (this.running) return this.drained;
    const run = async (): Promise<void> => {
      this.running = true;
      try {
        while (this.queue.length > 0 && !this.disposed) {
          if (this.settling) {
            // Keys typed right after a cancelled line wait for the shell's fresh prompt: had they
            // reached bash before it acted on the Ctrl-C, they would join the old line on screen.
            const job = new AbortController();
            this.job = job;
            try {
              await this.settle(job.signal);
            } catch (err) {
              if (!(err instanceof Cancelled)) throw err;
            } finally {
              this.job = null;
              this.settling = false;
            }
            continue;
          }
          const token = this.queue.shift() as Token;
          const pending = this.handle(token);
          if (!pending) continue;
          const job = new AbortController();
          this.job = job;
          try {
            await pending(job.signal);
          } catch (err) {
            if (!(err instanceof Cancelled)) {
              this.opts.log?.(`inspected shell: ${err instanceof Error ? err.message : String(err)}`);
              this.cancelLine('the gateway could not check this line');
            }
          } finally {
            this.job = null;
          }
        }
      } finally {
        this.running = false;
      }
    };
    // Runs synchronously up to the first held Enter, so plain typing is forwarded at once.
    this.drained = run();
    return this.drained;
  }

  /** Forward or refuse a token now, or return the work an Enter or a paste needs. */
  private handle(token: Token): ((signal: AbortSignal) => Promise<void>) | null {
    const atPrompt = this.stateValue === 'prompt';
    if (this.heldEsc) {
      const esc = this.heldEsc;
      this.heldEsc = null;
      if (atPrompt) {
        const next = token.data[0];
        if (token.t === 'enter' || token.t === 'refused' || ((token.t === 'text' || token.t === 'key') && next !== undefined && altRefusal(next) !== null)) {
          this.refuseKey(token.t === 'refused' ? token.what : altRefusal(next ?? 0x0d) ?? 'that Alt key');
          return null;
        }
        if (token.t === 'text' || token.t === 'key' || token.t === 'esc') {
          this.typed.key('other', esc);
          this.forward(Buffer.concat([esc, token.data]));
          if (token.t === 'esc') this.typed.key('other', token.data);
          return null;
        }
        // A paste or Ctrl-C after a lone ESC: the ESC meant nothing and is dropped.
      } else {
        this.forward(esc);
      }
    }
    switch (token.t) {
      case 'interrupt':
        this.interrupt(token.data);
        return null;
      case 'esc':
        if (atPrompt) this.heldEsc = token.data;
        else this.forward(token.data);
        return null;
      case 'text':
        if (atPrompt) this.typed.insert(token.data);
        this.forward(token.data, true);
        return null;
      case 'key':
        if (atPrompt) this.typed.key(token.key, token.data);
        this.forward(token.data);
        return null;
      case 'refused':
        if (atPrompt) this.refuseKey(token.what);
        else this.forward(token.data);
        return null;
      case 'enter':
        return (signal) => this.onLineEnd(token, signal);
      case 'paste':
        if (!token.tooLarge && !/[\r\n]/.test(token.text) && this.stateValue !== 'prompt') {
          this.forward(token.data);
          return null;
        }
        return (signal) => this.onLineEnd(token, signal);
    }
  }

  private async onLineEnd(token: Extract<Token, { t: 'enter' } | { t: 'paste' }>, signal: AbortSignal): Promise<void> {
    if (this.stateValue === 'unknown') {
      if (token.t === 'paste' && !/[\r\n]/.test(token.text) && !token.tooLarge) {
        this.forward(token.data);
        return;
      }
      // Only so that the log shows what was typed: nothing is released either way.
      await this.waitUntil(() => this.quiet() && this.echoed(), this.echoTimeoutMs, signal);
      this.refuseLine(this.cursorLineText(), 'no shell prompt has been recognised yet, so the gateway cannot tell what would run');
      return;
    }
    if (this.stateValue !== 'prompt') {
      const where = await this.awaitShell(signal);
      if (where === 'program') {
        this.forward(token.data);
        return;
      }
      if (where === 'continuation') {
        this.refuseLine(this.cursorLineText(), 'the shell is waiting for the rest of a multi-line command (its `> ` prompt); it was cancelled');
        return;
      }
      if (where === 'typeahead') {
        this.refuseLine(this.cursorLineText(), 'this line was typed while a command was still running and the gateway could not follow it; type it again at the prompt');
        return;
      }
    }
    if (token.t === 'paste') await this.pasteAtPrompt(token, signal);
    else await this.enterAtPrompt(token.data, signal);
  }

  private async enterAtPrompt(enter: Buffer, signal: AbortSignal): Promise<void> {
    const ready = await this.waitUntil(() => this.lineReady(), this.echoTimeoutMs, signal);
    const read = this.readPromptLine();
    if (!read.ok) {
      this.refuseLine(read.text, read.reason);
      return;
    }
    const shown = this.controlShown(read.line);
    if (shown !== null) {
      this.refuseLine(read.line, `the line shows a typed control character as ${caret(shown)}, so the shell holds other characters than the screen shows`);
      return;
    }
    if (!ready) {
      const why = !this.quiet()
        ? 'the screen kept changing, so the line could not be read'
        : this.typed.predictable
          ? `the screen shows \`${read.line}\` but the keys typed make \`${this.typed.text}\``
          : 'the device did not show the effect of the last keys in time, so the line could not be read';
      this.refuseLine(read.line, why);
      return;
    }
    // The typed text is exact (trailing spaces included, which a screen cannot show).
    const line = this.typed.predictable ? this.typed.text : read.line;
    if (isBlank(line)) {
      this.release(enter);
      return;
    }
    const outcome = await this.decideLine(line, signal);
    this.opts.onDecided?.(line, outcome);
    if (outcome.action === 'allow') this.release(enter);
    else this.cancelLine(outcome.reason);
  }

  private async pasteAtPrompt(paste: Extract<Token, { t: 'paste' }>, signal: AbortSignal): Promise<void> {
    const multiLine = /[\r\n]/.test(paste.text);
    const refuse = (reason: string): void => {
      this.opts.toUser(this.notice(`denied: ${reason} [COMMAND_DENIED]`));
      this.opts.onDecided?.(paste.text, { action: 'deny', reason, by: 'gateway' });
      if (multiLine) this.cancelDevice();
    };
    if (paste.tooLarge) {
      refuse(`the paste is larger than ${MAX_PASTE_BYTES / 1024} KiB and was dropped`);
      return;
    }
    const control = pasteControl(paste.text);
    if (control !== null) {
      refuse(`the paste contains a tab or control character (U+${control.toString(16).toUpperCase().padStart(4, '0')}) and was dropped`);
      return;
    }
    if (!multiLine) {
      // Without its markers the paste is plain typing, which the gateway can replay exactly.
      const data = Buffer.from(paste.text, 'utf8');
      this.typed.insert(data);
      this.forward(data);
      return;
    }
    const ready = await this.waitUntil(() => this.lineReady(), this.echoTimeoutMs, signal);
    const read = this.readPromptLine();
    if (!read.ok || !ready) {
      refuse(read.ok ? 'the line already on the prompt could not be read' : read.reason);
      return;
    }
    const shown = this.controlShown(read.line);
    if (shown !== null) {
      refuse(`the line already on the prompt shows a typed control character as ${caret(shown)}`);
      return;
    }
    const current = this.typed.predictable ? { line: this.typed.text, cursor: this.typed.cursor } : read;
    const parts = paste.text.split(/\r\n|\r|\n/);
    const trailing = parts.pop() ?? '';
    const cursor = Math.min(current.cursor, current.line.length);
    const lines = parts.map((p, i) => (i === 0 ? current.line.slice(0, cursor) + p + current.line.slice(cursor) : p));
    for (const [i, line] of lines.entries()) {
      if (isBlank(line)) continue;
      const outcome = await this.decideLine(line, signal);
      this.opts.onDecided?.(line, { ...outcome, pasteLine: i + 1 });
      if (outcome.action !== 'allow') {
        this.cancelLine(`line ${i + 1} of the paste (\`${line}\`): ${outcome.reason}`);
        return;
      }
    }
    this.release(Buffer.from(`${parts.join('\r')}\r`, 'utf8'));
    this.forward(Buffer.from(trailing, 'utf8'), true);
  }

  /** The decision for one line: the gateway's own refusals, then `decide`, then `review`. */
  private async decideLine(line: string, signal: AbortSignal): Promise<LineOutcome> {
    const deny = (reason: string, by: DecidedBy): LineOutcome => ({ action: 'deny', reason, by });
    if (/(^|[^\\])(\\\\)*\\$/.test(line)) {
      return deny('the line ends with a backslash (a line continuation): the shell would wait for more, which cannot be checked as one command', 'gateway');
    }
    const bytes = Buffer.byteLength(line, 'utf8');
    if (bytes > MAX_COMMAND_LINE_BYTES) return deny(`the line is too long (${bytes} bytes; at most ${MAX_COMMAND_LINE_BYTES})`, 'gateway');
    const ctx: DecideContext = { signal };
    try {
      const first = await this.orCancel(this.opts.decide(line, ctx), signal);
      if (first.action !== 'review') return { action: first.action, reason: first.reason, by: 'policy' };
      if (!this.opts.review) return deny(`${first.reason}, and no approver can be reached from this session`, 'policy');
      this.opts.toUser(this.notice('waiting for an approver to confirm this command…'));
      const final = await this.orCancel(this.opts.review(line, first, ctx), signal);
      if (final.action === 'allow') {
        this.opts.toUser(this.notice('approved'));
        return { action: 'allow', reason: final.reason, by: 'approver' };
      }
      return deny(final.reason, 'approver');
    } catch (err) {
      if (err instanceof Cancelled) {
        this.opts.onDecided?.(line, deny('cancelled with Ctrl-C before it was decided', 'user'));
        throw err;
      }
      return deny(`the gateway could not check this line (${err instanceof Error ? err.message : String(err)})`, 'gateway');
    }
  }

  /**
   * After the gateway's Ctrl-C, wait for the shell's fresh prompt. A shell that answered the
   * Ctrl-C (it wrote something) and then went quiet with the cancelled line still after its old
   * prompt has not dropped the line: bash does this now and then when the interrupt reaches it
   * while it is stopped or starved of CPU (it echoes ^C, redraws the line, and drops it only at the
   * next interrupt). It gets one more Ctrl-C; keys typed meanwhile still wait for the prompt.
   */
  private async settle(signal: AbortSignal): Promise<void> {
    let nudged = false;
    for (;;) {
      const back = await this.waitUntil(() => this.stateValue === 'prompt' || (!nudged && this.keptCancelledLine()), this.echoTimeoutMs, signal);
      if (!back || this.stateValue === 'prompt' || nudged) return;
      nudged = true;
      this.opts.log?.('inspected shell: the shell answered Ctrl-C but kept the cancelled line; sending Ctrl-C once more');
      this.forward(CTRL_C);
      this.afterLine();
    }
  }

  /** Quiet for a while after answering, with the old prompt and a non-blank line before the cursor. */
  private keptCancelledLine(): boolean {
    const prompt = this.prompt?.text;
    if (!prompt || !this.outputSinceReset || !this.quietFor(Math.max(5 * this.settleMs, 250))) return false;
    if (this.term.buffer.active.type !== 'normal') return false;
    const at = this.cursorLine();
    if (!at) return false;
    const before = at.text.slice(0, at.cursor);
    const i = before.lastIndexOf(prompt);
    return i >= 0 && !isBlank(before.slice(i + prompt.length));
  }

  /**
   * An Enter while a command runs: wait for output to settle, then see who would read it. Held
   * (with one notice) for as long as the answer is "a program on the normal screen".
   */
  private async awaitShell(signal: AbortSignal): Promise<'prompt' | 'program' | 'continuation' | 'typeahead'> {
    let told = false;
    for (;;) {
      await this.waitUntil(() => this.quiet() && this.echoed(), this.echoTimeoutMs, signal);
      this.recognise();
      if (this.stateValue === 'prompt') return 'prompt';
      if (this.stateValue === 'continuation') return 'continuation';
      if (this.term.buffer.active.type === 'alternate') return 'program';
      // Before keypad modes: readline itself turns keypad mode on at its prompt if `enable-keypad` is set.
      if (this.quiet() && this.typedAheadAtPrompt()) return 'typeahead';
      if (this.fullScreen()) return 'program';
      if (!told) {
        told = true;
        this.opts.toUser(this.notice('Enter held: a command is still running, and a line typed now could reach the shell unchecked; it goes through when the prompt is back (Ctrl-C cancels)'));
      }
      await this.waitUntil(() => false, HOLD_POLL_MS, signal);
    }
  }

  // -------------------------------------------------------------------------------------------
  // Outcomes
  // -------------------------------------------------------------------------------------------

  /** Send to the device; `printable` marks plain text, which the shell will show as typed. */
  private forward(data: Buffer, printable = false): void {
    if (this.disposed || data.length === 0) return;
    this.lastInputAt = performance.now();
    // Keys for a full-screen program are that program's, never text waiting for the shell.
    if (printable && !this.fullScreen()) this.ahead?.push(data);
    else this.ahead = null;
    this.opts.toDevice(data);
  }

  private release(data: Buffer): void {
    this.forward(data);
    this.stateValue = 'command';
    this.afterLine();
    this.opts.log?.('inspected shell: line released; in a command');
  }

  /** Tell the vendor, log the refusal, and drop the line on the device. */
  private refuseLine(line: string, reason: string): void {
    this.opts.onDecided?.(line, { action: 'deny', reason, by: 'gateway' });
    this.cancelLine(reason);
  }

  private cancelLine(reason: string): void {
    this.opts.toUser(this.notice(`denied: ${reason} [COMMAND_DENIED]`));
    this.cancelDevice();
  }

  private cancelDevice(): void {
    this.forward(CTRL_C);
    if (this.stateValue !== 'unknown') {
      this.stateValue = 'command';
      this.settling = true;
    }
    this.afterLine();
  }

  private interrupt(data: Buffer): void {
    this.heldEsc = null;
    this.forward(data);
    if (this.stateValue === 'prompt' || this.stateValue === 'continuation') this.stateValue = 'command';
    this.afterLine();
  }

  private afterLine(): void {
    this.ahead = [];
    this.outputSinceReset = false;
    this.fullScreenSinceReset = this.fullScreen();
    this.typed.reset();
  }

  private refuseKey(what: string): void {
    this.opts.toUser(this.notice(`denied: ${what} is not available at the prompt in inspected mode [COMMAND_DENIED]`));
  }

  /** A notice on a line of its own on the vendor's screen (the emulator mirrors where the cursor is). */
  private notice(text: string): string {
    const lead = this.term.buffer.active.cursorX > 0 ? '\r\n' : '';
    return `${lead}portcullis: ${visible(text)}\r\n`;
  }

  // -------------------------------------------------------------------------------------------
  // The screen
  // -------------------------------------------------------------------------------------------

  private quiet(): boolean {
    return this.quietFor(this.settleMs);
  }

  private quietFor(ms: number): boolean {
    const now = performance.now();
    return this.writesInFlight === 0 && now - this.lastOutputAt >= ms && now - this.lastInputAt >= ms;
  }

  /** Output has arrived since the last bytes were sent, so the device has started answering them. */
  private echoed(): boolean {
    return this.lastOutputAt >= this.lastInputAt;
  }

  private lineReady(): boolean {
    if (!this.quiet()) return false;
    const read = this.readPromptLine();
    // A control character shown as ^X settles it: that line is refused whatever else arrives.
    if (read.ok && this.echoed() && this.controlShown(read.line) !== null) return true;
    if (!this.typed.predictable) return this.echoed();
    return read.ok && read.line === trimSpaces(this.typed.text);
  }

  /** A control character typed since the prompt that the screen shows in caret notation (^[, ^A…). */
  private controlShown(line: string): number | null {
    return [...this.typed.controls].find((c) => line.includes(caret(c))) ?? null;
  }

  private fullScreen(): boolean {
    const modes = this.term.modes;
    return this.term.buffer.active.type === 'alternate' || modes.applicationCursorKeysMode || modes.applicationKeypadMode;
  }

  private noteFullScreen(): void {
    if (this.fullScreen()) this.fullScreenSinceReset = true;
  }

  private scheduleRecognition(): void {
    if (this.quietTimer) clearTimeout(this.quietTimer);
    this.quietTimer = setTimeout(() => {
      this.quietTimer = null;
      this.recognise();
    }, this.settleMs + 1);
  }

  /** Look for a shell prompt at the cursor; only ever moves the state towards "prompt" or "continuation". */
  private recognise(): void {
    if (this.disposed || this.stateValue === 'prompt') return;
    if (!this.quiet()) {
      // Keys were sent since the output: look again once they too are settleMs old.
      if (!this.quietTimer) this.scheduleRecognition();
      return;
    }
    if (this.term.buffer.active.type !== 'normal') return;
    const at = this.cursorLine();
    if (!at) return;
    const before = at.text.slice(0, at.cursor);
    if (!isBlank(at.text.slice(at.cursor))) return;
    const ahead = this.ahead === null ? null : Buffer.concat(this.ahead).toString('utf8');
    if (this.stateValue === 'unknown') {
      const end = PROMPT_ENDS.find((e) => before.endsWith(e));
      if (!end || ahead !== '') return;
      this.promptEnd = end;
      this.setPrompt(before, at.start, '');
      return;
    }
    if (!this.outputSinceReset || this.promptEnd === null) return;
    if (before === CONTINUATION_PROMPT && this.promptEnd !== CONTINUATION_PROMPT) {
      if (ahead === '') this.stateValue = 'continuation';
      return;
    }
    if (ahead === null) {
      // Keys went to a program: only a full-screen one, now gone, leaves the very same prompt behind.
      if (this.fullScreenSinceReset && before === this.prompt?.text) this.setPrompt(before, at.start, '');
      return;
    }
    // What was sent ahead is exactly what the shell shows after its prompt (and all it will read).
    if (!before.endsWith(ahead)) return;
    const promptText = before.slice(0, before.length - ahead.length);
    if (promptText.endsWith(this.promptEnd)) this.setPrompt(promptText, at.start, ahead);
  }

  private setPrompt(text: string, startRow: number, ahead: string): void {
    const buf = this.term.buffer.active;
    this.prompt?.marker?.dispose();
    this.prompt = { text, marker: this.term.registerMarker(startRow - (buf.baseY + buf.cursorY)) };
    this.stateValue = 'prompt';
    this.typed.reset();
    this.typed.insert(Buffer.from(ahead, 'utf8'));
    this.opts.log?.(`inspected shell: prompt ${JSON.stringify(text)}`);
  }

  /**
   * The previous prompt is back on the cursor line but was not recognised: the shell has read keys
   * typed while the command ran that the gateway cannot replay. The terminal may have echoed them
   * before the prompt too (when they arrived after the shell handed the terminal back to cooked
   * mode), so the prompt is looked for anywhere before the cursor. Only ever used to cancel.
   */
  private typedAheadAtPrompt(): boolean {
    const prompt = this.prompt?.text;
    if (!prompt || this.term.buffer.active.type !== 'normal') return false;
    const at = this.cursorLine();
    return at !== null && at.text.slice(0, at.cursor).includes(prompt);
  }

  /** The command line after the prompt, read from the screen. */
  private readPromptLine(): Readout {
    const fail = (reason: string): Readout => ({ ok: false, reason, text: trimSpaces(this.cursorLine()?.text ?? '') });
    if (this.term.buffer.active.type !== 'normal') return fail('a full-screen program has the screen where the shell prompt should be');
    const prompt = this.prompt;
    if (!prompt || this.stateValue !== 'prompt') return fail('no shell prompt has been recognised');
    const at = this.cursorLine();
    if (!at) return fail('the line is taller than the screen, so it cannot be read whole');
    const marker = prompt.marker;
    if (marker && !marker.isDisposed && marker.line === at.start) {
      if (!at.text.startsWith(prompt.text)) return fail('the prompt was overwritten, so the line cannot be read');
    } else if (!at.text.startsWith(prompt.text)) {
      // Redrawn elsewhere (Ctrl-L, a completion listing, a resize) is fine if it is the same prompt.
      return fail('the prompt is no longer on the cursor line, so the line cannot be read');
    }
    const cursor = at.cursor - prompt.text.length;
    if (cursor < 0) return fail('the cursor is inside the prompt, so the line cannot be read');
    return { ok: true, line: trimSpaces(at.text.slice(prompt.text.length)), cursor };
  }

  private cursorLineText(): string {
    return trimSpaces(this.cursorLine()?.text ?? '');
  }

  /**
   * The screen line holding the cursor, with the rows it continues from and onto joined. A row
   * continues the one above if the terminal wrapped into it or the row above is written up to its
   * last column: readline moves down with LF when it redraws an edited line, and xterm clears the
   * wrap flag on an explicit LF.
   */
  private cursorLine(): ScreenLine | null {
    const buf = this.term.buffer.active;
    const row = buf.baseY + buf.cursorY;
    const cell = buf.getNullCell();
    const lastWritten = (r: number): boolean => {
      const line = buf.getLine(r);
      if (!line) return false;
      const last = line.getCell(this.cols - 1, cell);
      if (!last) return false;
      if (last.getWidth() === 0) return (line.getCell(this.cols - 2, cell)?.getChars() ?? '') !== '';
      return last.getChars() !== '';
    };
    const joins = (r: number): boolean => r > 0 && r < buf.length && ((buf.getLine(r)?.isWrapped ?? false) || lastWritten(r - 1));
    let start = row;
    let end = row;
    while (joins(start)) {
      start--;
      if (end - start + 1 > this.rows) return null;
    }
    while (joins(end + 1)) {
      end++;
      if (end - start + 1 > this.rows) return null;
    }
    let text = '';
    let cursor = -1;
    const cursorX = Math.min(buf.cursorX, this.cols);
    for (let r = start; r <= end; r++) {
      const line = buf.getLine(r);
      if (!line) break;
      const cells: string[] = [];
      for (let x = 0; x < this.cols; x++) {
        const c: IBufferCell | undefined = line.getCell(x, cell);
        if (r === row && x === cursorX) cursor = text.length + cells.join('').length;
        if (!c || c.getWidth() === 0) continue;
        cells.push(c.getChars() === '' ? '\u0000' : c.getChars());
      }
      // A wide character that did not fit in the last column leaves that cell empty and wraps.
      const nextFirst = r < end ? buf.getLine(r + 1)?.getCell(0, cell)?.getWidth() : undefined;
      if (nextFirst === 2 && cells[cells.length - 1] === '\u0000') cells.pop();
      if (r === row && cursorX >= this.cols) cursor = text.length + cells.join('').length;
      text += cells.join('');
    }
    const joined = text.replaceAll('\u0000', ' ');
    return { start, text: joined, cursor: cursor < 0 ? joined.length : cursor };
  }

  // -------------------------------------------------------------------------------------------
  // Waiting
  // -------------------------------------------------------------------------------------------

  private wake(): void {
    const wakers = this.wakers;
    this.wakers = [];
    for (const w of wakers) w();
  }

  /** Resolves true when cond holds, false after timeoutMs; looks again on every output and every few ms (quiet is a matter of time). */
  private async waitUntil(cond: () => boolean, timeoutMs: number, signal: AbortSignal): Promise<boolean> {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      if (signal.aborted || this.disposed) throw new Cancelled();
      if (cond()) return true;
      const left = deadline - performance.now();
      if (left <= 0) return false;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, Math.min(left, Math.max(5, this.settleMs / 4)));
        const onAbort = (): void => done();
        function done(): void {
          clearTimeout(timer);
          signal.removeEventListener('abort', onAbort);
          resolve();
        }
        this.wakers.push(done);
        signal.addEventListener('abort', onAbort, { once: true });
      });
    }
  }

  private orCancel<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
    if (signal.aborted) return Promise.reject(new Cancelled());
    return new Promise<T>((resolve, reject) => {
      const onAbort = (): void => reject(new Cancelled());
      signal.addEventListener('abort', onAbort, { once: true });
      promise.then(
        (v) => {
          signal.removeEventListener('abort', onAbort);
          resolve(v);
        },
        (e: unknown) => {
          signal.removeEventListener('abort', onAbort);
          reject(e instanceof Error ? e : new Error(String(e)));
        },
      );
    });
  }
}
