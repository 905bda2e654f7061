/**
 * The gateway's shell-grammar adapter: one command line (or a multi-line paste) in, the plain
 * ParsedLine that policy/command-policy.ts decides over out.
 *
 * Two parsers read every line and must agree, or the line is refused:
 *  - sh-syntax (mvdan/sh compiled to WASM, bash dialect) is the grammar authority. Its JSON only
 *    exposes top-level statements (positions, negation, background, redirections with their
 *    word parts) and no command types or arguments, so it cannot produce argv on its own.
 *  - A small scanner here produces the words, their quote removal and every construct, and is
 *    then checked against sh-syntax: the same statements at the same offsets, the same
 *    redirections, and each word re-parsed by sh-syntax on its own (as `: > WORD`) must have the
 *    same extent and the same quoted/expanded parts.
 * The scanner leans closed: whatever it is unsure of becomes a construct, which policy denies.
 */
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { getProcessor, LangVariant, ParseError, type File as ShFile, type Node as ShNode, type Stmt as ShStmt } from 'sh-syntax';
import type { CommandJoin, ParsedLine, ShellWord, SimpleCommand } from '../../policy/command-policy.js';

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** Far above policy's limit: policy explains a long line; the parser only refuses to spend time on a flood. */
export const MAX_PARSE_BYTES = 64 * 1024;

// ---------------------------------------------------------------------------------------------
// Quoting for the device
// ---------------------------------------------------------------------------------------------

/**
 * Single-quote one argument for a POSIX shell (sh, bash, dash, ash, ksh, zsh). Inside single
 * quotes nothing is special, a newline included, so the only character to handle is `'` itself,
 * written `'\''`. NUL cannot be part of an argument at all.
 */
export function quoteWord(word: string): string {
  if (word.includes('\u0000')) throw new RangeError('an argument cannot contain a NUL character');
  // A lone surrogate would be sent as U+FFFD: the device would get other bytes than policy saw.
  if (LONE_SURROGATE.test(word)) throw new RangeError('an argument cannot contain malformed Unicode');
  return `'${word.replaceAll("'", `'\\''`)}'`;
}

/** Re-quote a literal argv so the device's shell runs exactly these words and nothing else. */
export function quoteArgv(argv: readonly string[]): string {
  if (argv.length === 0) throw new RangeError('quoteArgv needs at least the program name');
  return argv.map(quoteWord).join(' ');
}

// ---------------------------------------------------------------------------------------------
// sh-syntax, loaded once
// ---------------------------------------------------------------------------------------------

type Processor = ReturnType<typeof getProcessor>;
let processorPromise: Promise<Processor> | null = null;

/**
 * sh-syntax's own `parse` recompiles its 750 kB WASM module on every call (~19 ms); compiling
 * once and instantiating per call (~7 ms) keeps an Enter key snappy.
 */
function shProcessor(): Promise<Processor> {
  processorPromise ??= (async () => {
    const wasmPath = createRequire(import.meta.url).resolve('sh-syntax/main.wasm');
    const module = await WebAssembly.compile(await readFile(wasmPath));
    return getProcessor((imports: WebAssembly.Imports) => WebAssembly.instantiate(module, imports));
  })().catch((err: unknown) => {
    processorPromise = null;
    throw err;
  });
  return processorPromise;
}

/** Compile the parser at start-up, so the first command of the day does not wait ~150 ms for it. */
export async function preloadShellParser(): Promise<void> {
  await shProcessor();
}

// One parse at a time: each call starts a Go runtime in its own instance, and nothing in
// sh-syntax promises that two may interleave.
let queue: Promise<unknown> = Promise.resolve();

async function shParse(text: string): Promise<{ file: ShFile } | { error: string; incomplete: boolean }> {
  const run = async (): Promise<{ file: ShFile } | { error: string; incomplete: boolean }> => {
    const proc = await shProcessor();
    try {
      return { file: await proc(text, { variant: LangVariant.LangBash, keepComments: false, recoverErrors: 0 }) };
    } catch (err) {
      if (err instanceof ParseError) return { error: err.Text, incomplete: err.Incomplete };
      return { error: err instanceof Error ? err.message : String(err), incomplete: false };
    }
  };
  const result = queue.then(run, run);
  queue = result.catch(() => undefined);
  return result;
}

/** mvdan/sh reports UTF-8 byte offsets; JavaScript indexes UTF-16 code units. */
function byteToIndexMap(s: string): Map<number, number> {
  const map = new Map<number, number>();
  let b = 0;
  let i = 0;
  for (const ch of s) {
    map.set(b, i);
    const cp = ch.codePointAt(0) ?? 0;
    b += cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
    i += ch.length;
  }
  map.set(b, i);
  return map;
}

// ---------------------------------------------------------------------------------------------
// The scanner
// ---------------------------------------------------------------------------------------------

type PartKind = 'lit' | 'sq' | 'dq' | 'ansi' | 'locale' | 'param' | 'cmdsubst' | 'arith' | 'procsubst' | 'extglob';
interface Part {
  kind: PartKind;
  start: number;
  end: number;
}

interface WordTok {
  start: number;
  end: number;
  /** Quote-removed value; meaningful only when `features` is empty. */
  value: string;
  features: Set<string>;
  parts: Part[];
  /** Any quoting or escaping at all: a quoted `if` is a command name, not a keyword. */
  quoted: boolean;
}

interface Redir {
  op: string;
  fd: string | null;
}

interface Building {
  argv: WordTok[];
  assigns: WordTok[];
  redirs: Redir[];
}

/** One statement of the outermost list, for comparison with sh-syntax's statements. */
interface TopStmt {
  start: number;
  negated: boolean;
  background: boolean;
  commands: number[];
  joins: number;
}

class ScanError extends Error {
  constructor(message: string, readonly incomplete: boolean) {
    super(message);
  }
}

const BLANK = new Set([' ', '\t']);
const WORD_END = new Set([' ', '\t', '\n', ';', '&', '|', '(', ')', '<', '>']);
const RESERVED = new Set(['if', 'then', 'else', 'elif', 'fi', 'do', 'done', 'case', 'esac', 'while', 'until', 'for', 'select', 'in', 'function', '{', '}', '!', '[[', ']]', 'time', 'coproc']);
const REDIRECT_OPS = ['&>>', '<<<', '<<-', '&>', '>>', '>|', '>&', '<&', '<>', '<<', '>', '<'];
const ASSIGNMENT = /^[A-Za-z_][A-Za-z0-9_]*\+?=/;

class Scanner {
  i = 0;
  readonly constructs = new Set<string>();
  readonly commands: SimpleCommand[] = [];
  readonly words: WordTok[] = [];
  readonly top: TopStmt[] = [];
  /** Top-level statements' redirections, by command index, for the single-command statements. */
  readonly redirsByCommand = new Map<number, Redir[]>();
  readonly wordsByCommand = new Map<number, WordTok[]>();
  /** Compound syntax seen: statement-level comparison with sh-syntax is skipped (the line is denied anyway). */
  compound = false;
  private compoundDepth = 0;
  private pendingHeredocs: { delim: string; stripTabs: boolean }[] = [];

  constructor(readonly src: string) {}

  peek(k = 0): string | undefined {
    return this.src[this.i + k];
  }

  fail(message: string, incomplete = false): never {
    throw new ScanError(message, incomplete);
  }

  /** Blanks and backslash-newline between tokens. */
  skipBlanks(): void {
    for (;;) {
      const c = this.peek();
      if (c !== undefined && BLANK.has(c)) this.i++;
      else if (c === '\\' && this.peek(1) === '\n') {
        this.constructs.add('line-continuation');
        this.i += 2;
        if (this.i >= this.src.length) this.fail('the line ends with a backslash continuation', true);
      } else return;
    }
  }

  // --- word parts ---------------------------------------------------------------------------

  readSingleQuoted(): string {
    const close = this.src.indexOf("'", this.i + 1);
    if (close < 0) this.fail('a single quote is not closed', true);
    const v = this.src.slice(this.i + 1, close);
    this.i = close + 1;
    return v;
  }

  /** `$'…'`: a backslash hides the next character, including a quote. */
  skipAnsiC(): void {
    this.i += 2;
    for (;;) {
      const c = this.peek();
      if (c === undefined) this.fail("a $'…' string is not closed", true);
      this.i++;
      if (c === '\\') this.i++;
      else if (c === "'") return;
    }
  }

  readDoubleQuoted(features: Set<string>): string {
    this.i++;
    let v = '';
    for (;;) {
      const c = this.peek();
      if (c === undefined) this.fail('a double quote is not closed', true);
      if (c === '"') {
        this.i++;
        return v;
      }
      if (c === '\\') {
        const n = this.peek(1);
        if (n === undefined) this.fail('a double quote is not closed', true);
        if (n === '\n') {
          features.add('line-continuation');
          this.i += 2;
        } else if (n === '$' || n === '`' || n === '"' || n === '\\') {
          v += n;
          this.i += 2;
        } else {
          v += '\\';
          this.i++;
        }
      } else if (c === '$') {
        this.readDollar(features, true);
      } else if (c === '`') {
        this.skipBackquote();
        features.add('command-substitution');
      } else {
        // Interactive bash expands `!` even inside double quotes.
        if (c === '!') features.add('history-expansion');
        v += c;
        this.i++;
      }
    }
  }

  skipBackquote(): void {
    this.i++;
    for (;;) {
      const c = this.peek();
      if (c === undefined) this.fail('a backquote is not closed', true);
      this.i++;
      if (c === '\\') this.i++;
      else if (c === '`') return;
    }
  }

  /**
   * Skip a bracketed region (`${…}`, `$((…))`, `$[…]`, extglob and array parentheses, `((…))`)
   * honouring quotes and nested substitutions. Precision here only matters for finding the end:
   * every such region is a construct that restricted mode refuses.
   */
  skipBalanced(open: string, close: string): void {
    let depth = 0;
    const features = new Set<string>();
    for (;;) {
      const c = this.peek();
      if (c === undefined) this.fail(`\`${open}\` is not closed`, true);
      if (c === open) {
        depth++;
        this.i++;
      } else if (c === close) {
        depth--;
        this.i++;
        if (depth === 0) return;
      } else if (c === '\\') {
        this.i += 2;
      } else if (c === "'") {
        this.readSingleQuoted();
      } else if (c === '"') {
        this.readDoubleQuoted(features);
      } else if (c === '`') {
        this.skipBackquote();
      } else if (c === '$' && this.peek(1) === '(' && open !== '(') {
        this.i++;
        this.skipBalanced('(', ')');
      } else {
        this.i++;
      }
    }
    // unreachable
  }

  /** At `$`: one expansion, recorded as a feature; returns the part kind, or 'lit' for a lone `$`. */
  readDollar(features: Set<string>, inDouble: boolean): PartKind {
    const n = this.peek(1);
    if (n === "'" && !inDouble) {
      this.skipAnsiC();
      features.add('ansi-c-quote');
      return 'ansi';
    }
    if (n === '"' && !inDouble) {
      this.i++;
      this.readDoubleQuoted(features);
      features.add('locale-quote');
      return 'locale';
    }
    if (n === '(' && this.peek(2) === '(') {
      this.i++;
      this.skipBalanced('(', ')');
      features.add('arithmetic');
      return 'arith';
    }
    if (n === '(') {
      this.i += 2;
      this.scanList(true, ')');
      features.add('command-substitution');
      return 'cmdsubst';
    }
    if (n === '[') {
      this.i++;
      this.skipBalanced('[', ']');
      features.add('arithmetic');
      return 'arith';
    }
    if (n === '{') {
      this.i++;
      this.skipBalanced('{', '}');
      features.add('parameter-expansion');
      return 'param';
    }
    if (n !== undefined && /[A-Za-z_]/.test(n)) {
      this.i += 2;
      while (/[A-Za-z0-9_]/.test(this.peek() ?? '')) this.i++;
      features.add('parameter-expansion');
      return 'param';
    }
    if (n !== undefined && /[0-9@*#?$!-]/.test(n)) {
      this.i += 2;
      features.add('parameter-expansion');
      return 'param';
    }
    // bash keeps a lone `$` as is; not every shell agrees, so it is not treated as literal.
    this.i++;
    features.add('bare-dollar');
    return 'lit';
  }

  /** One word from the current position (which is not a blank or an operator start). */
  readWord(): WordTok {
    const start = this.i;
    const parts: Part[] = [];
    const features = new Set<string>();
    let value = '';
    let quoted = false;
    let litStart = -1;
    let prevUnquoted = '';
    const openLit = (): void => {
      if (litStart < 0) litStart = this.i;
    };
    const closeLit = (): void => {
      if (litStart >= 0) parts.push({ kind: 'lit', start: litStart, end: this.i });
      litStart = -1;
    };
    const push = (kind: PartKind, from: number): void => {
      if (kind === 'lit') {
        if (litStart < 0) litStart = from;
      } else {
        parts.push({ kind, start: from, end: this.i });
      }
    };
    for (;;) {
      const c = this.peek();
      if (c === undefined) break;
      if ((c === '<' || c === '>') && this.peek(1) === '(') {
        closeLit();
        const from = this.i;
        this.i += 2;
        this.scanList(true, ')');
        features.add('process-substitution');
        push('procsubst', from);
        continue;
      }
      if (WORD_END.has(c)) break;
      if (c === '\\') {
        openLit();
        const n = this.peek(1);
        if (n === undefined) this.fail('the line ends with a backslash', true);
        if (n === '\n') {
          features.add('line-continuation');
          this.i += 2;
          if (this.i >= this.src.length) this.fail('the line ends with a backslash continuation', true);
          continue;
        }
        quoted = true;
        value += n;
        prevUnquoted = '';
        this.i += 2;
        continue;
      }
      if (c === "'") {
        closeLit();
        const from = this.i;
        value += this.readSingleQuoted();
        quoted = true;
        prevUnquoted = '';
        parts.push({ kind: 'sq', start: from, end: this.i });
        continue;
      }
      if (c === '"') {
        closeLit();
        const from = this.i;
        value += this.readDoubleQuoted(features);
        quoted = true;
        prevUnquoted = '';
        parts.push({ kind: 'dq', start: from, end: this.i });
        continue;
      }
      if (c === '$') {
        const from = this.i;
        // A lone `$` stays part of the literal run around it, as sh-syntax reports it.
        if (/^[\x27"({[A-Za-z0-9_@*#?$!-]$/.test(this.peek(1) ?? '')) closeLit();
        const kind = this.readDollar(features, false);
        push(kind, from);
        prevUnquoted = '';
        continue;
      }
      if (c === '`') {
        closeLit();
        const from = this.i;
        this.skipBackquote();
        features.add('command-substitution');
        parts.push({ kind: 'cmdsubst', start: from, end: this.i });
        continue;
      }
      if ('?*+@!'.includes(c) && this.peek(1) === '(') {
        closeLit();
        const from = this.i;
        this.i++;
        this.skipBalanced('(', ')');
        features.add('extglob');
        parts.push({ kind: 'extglob', start: from, end: this.i });
        continue;
      }
      openLit();
      if (c === '*' || c === '?' || c === '[') features.add('glob');
      else if (c === '{') features.add('brace-expansion');
      else if (c === '~' && (this.i === start || prevUnquoted === '=' || prevUnquoted === ':')) features.add('tilde-expansion');
      else if (c === '=' && this.i === start && this.i + 1 < this.src.length && !WORD_END.has(this.peek(1) ?? ' ')) features.add('equals-expansion');
      else if (c === '!') {
        // bash leaves `!` alone before a blank, `=`, `(` or the end of the line.
        const n = this.peek(1);
        if (!(n === undefined || WORD_END.has(n) || n === '=')) features.add('history-expansion');
      } else if (c === '^' && this.src.slice(this.src.lastIndexOf('\n', this.i - 1) + 1, this.i).trim() === '') {
        // `^old^new` at the start of a line is bash's quick history substitution.
        features.add('history-expansion');
      }
      value += c;
      prevUnquoted = c;
      this.i++;
    }
    closeLit();
    return { start, end: this.i, value, features, parts, quoted };
  }

  // --- lists ---------------------------------------------------------------------------------

  readHeredocBodies(): void {
    for (const h of this.pendingHeredocs) {
      for (;;) {
        if (this.i >= this.src.length) this.fail(`the here-document is not closed by a line "${h.delim}"`, true);
        const nl = this.src.indexOf('\n', this.i);
        const lineEnd = nl < 0 ? this.src.length : nl;
        let line = this.src.slice(this.i, lineEnd);
        if (h.stripTabs) line = line.replace(/^\t+/, '');
        this.i = nl < 0 ? this.src.length : nl + 1;
        if (line === h.delim) break;
        if (nl < 0) this.fail(`the here-document is not closed by a line "${h.delim}"`, true);
      }
    }
    this.pendingHeredocs = [];
  }

  commitWord(w: WordTok): void {
    this.words.push(w);
    for (const f of w.features) this.constructs.add(f);
  }

  toShellWord(w: WordTok): ShellWord {
    const source = this.src.slice(w.start, w.end);
    return w.features.size === 0 ? { literal: true, value: w.value, source } : { literal: false, source, features: [...w.features] };
  }

  /**
   * Scan a list of commands until the end of input, or, when `closer` is `)`, until the `)` that
   * closes a `$(`, `<(` or `>(` (consumed).
   */
  scanList(nested: boolean, closer: ')' | null): void {
    new ListScan(this, nested, closer).run();
  }

  // Used by ListScan, which holds the state of one list.
  compoundIn(): number {
    return this.compoundDepth;
  }

  enterCompound(kind: string): void {
    this.constructs.add(kind);
    this.compound = true;
    this.compoundDepth++;
  }

  leaveCompound(kind: string): void {
    this.constructs.add(kind);
    this.compound = true;
    if (this.compoundDepth > 0) this.compoundDepth--;
  }

  markCompound(kind: string): void {
    this.constructs.add(kind);
    this.compound = true;
  }



  heredocsPending(): boolean {
    return this.pendingHeredocs.length > 0;
  }





  recordCommand(b: Building, next: CommandJoin, nested: boolean): number {
    const index = this.commands.length;
    this.commands.push({
      argv: b.argv.map((w) => this.toShellWord(w)),
      assignments: b.assigns.map((w) => this.src.slice(w.start, w.end)),
      redirections: b.redirs.map((r) => r.op),
      next,
      nested: nested || this.compoundDepth > 0,
    });
    this.redirsByCommand.set(index, b.redirs);
    this.wordsByCommand.set(index, [...b.assigns, ...b.argv]);
    return index;
  }

  addHeredoc(delim: string, stripTabs: boolean): void {
    this.pendingHeredocs.push({ delim, stripTabs });
  }

}

/** The state of one list of commands (the whole line, or the inside of `$( … )`). */
class ListScan {
  private cur: Building | null = null;
  private atStart = true;
  /** After `|`, `&&` or `||`: a command must follow; newlines in between are skipped. */
  private expectCommand = false;
  /** The previous command ended with `;`, `&` or a newline: one more makes a sequence. */
  private separated = false;
  /** After for/select/case/function: the words up to one of these (or a separator) are names and lists, not commands. */
  private skipUntil: readonly string[] | null = null;
  private testClause = false;
  private parenDepth = 0;
  private stmt: TopStmt | null = null;
  private readonly outer: boolean;

  constructor(private readonly s: Scanner, private readonly nested: boolean, private readonly closer: ')' | null) {
    this.outer = !nested && closer === null;
  }

  private beginStmt(pos: number): void {
    if (this.outer && this.stmt === null && this.s.compoundIn() === 0) {
      this.stmt = { start: pos, negated: false, background: false, commands: [], joins: 0 };
    }
  }

  private endStmt(background: boolean): void {
    if (this.stmt !== null) {
      this.stmt.background = background;
      this.s.top.push(this.stmt);
      this.stmt = null;
    }
  }

  private building(pos: number): Building {
    if (this.cur === null) {
      if (this.separated) this.s.constructs.add('sequence');
      this.separated = false;
      this.cur = { argv: [], assigns: [], redirs: [] };
      this.beginStmt(pos);
    }
    return this.cur;
  }

  private finish(next: CommandJoin): void {
    if (this.cur !== null) {
      const index = this.s.recordCommand(this.cur, next, this.nested);
      this.stmt?.commands.push(index);
    }
    this.cur = null;
    this.atStart = true;
  }

  private separator(background: boolean): void {
    if (this.cur !== null) {
      this.finish(background ? '&' : ';');
      this.separated = true;
    }
    this.skipUntil = null;
    this.endStmt(background);
  }

  run(): void {
    const s: Scanner = this.s;
    const src = s.src;
    for (;;) {
      s.skipBlanks();
      const c = src[s.i];
      if (c === undefined) {
        if (this.closer) s.fail('a `$(`, `<(` or `>(` is not closed', true);
        if (this.expectCommand) s.fail('the line ends with an operator that needs another command', true);
        if (this.parenDepth > 0) s.fail('a `(` is not closed', true);
        if (s.heredocsPending()) s.fail('a here-document has no body', true);
        this.finish(null);
        this.endStmt(false);
        return;
      }
      if (c === '#') {
        // A comment runs to the end of the line; interactive bash drops it.
        s.constructs.add('comment');
        const nl = src.indexOf('\n', s.i);
        s.i = nl < 0 ? src.length : nl;
        continue;
      }
      if (c === '\n') {
        s.i++;
        if (s.heredocsPending()) s.readHeredocBodies();
        if (this.expectCommand) continue;
        this.separator(false);
        continue;
      }
      const two = src.slice(s.i, s.i + 2);
      const three = src.slice(s.i, s.i + 3);
      if (this.testClause && (c === '<' || c === '>' || c === '(' || c === ')' || two === '&&' || two === '||')) {
        // Inside [[ … ]] these compare and group; they are not shell operators.
        s.i += two === '&&' || two === '||' ? 2 : 1;
        continue;
      }
      if (c === '|') {
        const op = two === '||' ? '||' : two === '|&' ? '|&' : '|';
        s.i += op.length;
        s.constructs.add(op === '||' ? 'and-or' : 'pipeline');
        if (op === '|&') s.constructs.add('redirection');
        if (this.stmt) this.stmt.joins++;
        this.finish(op);
        this.expectCommand = true;
        this.skipUntil = null;
        continue;
      }
      if (c === '&' && two !== '&>') {
        if (two === '&&') {
          s.i += 2;
          s.constructs.add('and-or');
          if (this.stmt) this.stmt.joins++;
          this.finish('&&');
          this.expectCommand = true;
          this.skipUntil = null;
        } else {
          s.i++;
          s.constructs.add('background');
          this.separator(true);
        }
        continue;
      }
      if (c === ';') {
        if (three === ';;&' || two === ';;' || two === ';&') {
          s.i += three === ';;&' ? 3 : 2;
          s.markCompound('control-flow');
          this.finish(';');
          continue;
        }
        s.i++;
        this.separator(false);
        continue;
      }
      if (c === '(') {
        this.openParen(two);
        continue;
      }
      if (c === ')') {
        if (this.parenDepth > 0) {
          s.i++;
          this.parenDepth--;
          this.finish(';');
          s.leaveCompound('subshell');
          this.atStart = false;
          continue;
        }
        if (this.closer === ')') {
          s.i++;
          this.finish(null);
          return;
        }
        if (s.constructs.has('control-flow')) {
          s.i++; // a case pattern such as `a)`
          continue;
        }
        s.fail('unexpected `)`');
      }
      const redirOp = c === '<' || c === '>' || two === '&>' ? REDIRECT_OPS.find((op) => src.startsWith(op, s.i)) : undefined;
      if (redirOp !== undefined && !((c === '<' || c === '>') && src[s.i + 1] === '(')) {
        this.readRedirect(redirOp, null, this.building(s.i));
        continue;
      }
      this.word();
    }
  }

  private openParen(two: string): void {
    const s: Scanner = this.s;
    if (this.cur === null && this.atStart) {
      this.beginStmt(s.i);
      if (two === '((') {
        s.skipBalanced('(', ')');
        s.markCompound('arithmetic');
        this.atStart = false;
        return;
      }
      s.i++;
      this.parenDepth++;
      s.enterCompound('subshell');
      this.expectCommand = false;
      return;
    }
    const fn = /^\(\s*\)/.exec(s.src.slice(s.i));
    if (this.cur !== null && this.cur.argv.length === 1 && this.cur.assigns.length === 0 && fn) {
      // NAME () …: a function definition; the name is not a command.
      s.i += fn[0].length;
      this.cur = null;
      this.atStart = true;
      s.enterCompound('function-definition');
      return;
    }
    s.fail('unexpected `(`');
  }

  private readRedirect(op: string, fd: string | null, b: Building): void {
    const s: Scanner = this.s;
    s.i += op.length;
    s.constructs.add('redirection');
    if (op === '<<' || op === '<<-') s.constructs.add('heredoc');
    if (op === '<<<') s.constructs.add('here-string');
    s.skipBlanks();
    const c = s.src[s.i];
    if (c === undefined) s.fail(`\`${op}\` needs a word after it`, true);
    if (WORD_END.has(c) && !((c === '<' || c === '>') && s.src[s.i + 1] === '(')) s.fail(`\`${op}\` needs a word after it`);
    const target = s.readWord();
    s.commitWord(target);
    b.redirs.push({ op, fd });
    if (op === '<<' || op === '<<-') s.addHeredoc(target.value, op === '<<-');
    this.expectCommand = false;
  }

  private word(): void {
    const s: Scanner = this.s;
    const wordStart = s.i;
    const w = s.readWord();
    if (w.end === w.start) s.fail(`unexpected character ${JSON.stringify(s.src[s.i])}`);
    const after = s.src[s.i];
    if ((after === '<' || after === '>') && !w.quoted && w.features.size === 0 && /^[0-9]+$/.test(w.value) && s.src[s.i + 1] !== '(') {
      // `2>file`: the digits name a descriptor; they are not a word.
      const op = REDIRECT_OPS.find((o) => s.src.startsWith(o, s.i));
      if (op !== undefined) {
        this.readRedirect(op, w.value, this.building(wordStart));
        return;
      }
    }
    this.expectCommand = false;
    if (this.testClause) {
      s.commitWord(w);
      if (!w.quoted && w.features.size === 0 && w.value === ']]') this.testClause = false;
      return;
    }
    if (this.skipUntil !== null) {
      if (!w.quoted && this.skipUntil.includes(w.value)) {
        this.skipUntil = null;
        if (w.value === '{') {
          s.words.push(w);
          this.reserved('{', wordStart);
          return;
        }
      }
      s.commitWord(w);
      return;
    }
    // A keyword is recognised by its source text: `{`, `[[` and `!` would otherwise count as
    // brace, glob and history features; a quoted keyword is an ordinary word.
    const text = s.src.slice(w.start, w.end);
    const first = this.cur === null || (this.cur.argv.length === 0 && this.cur.assigns.length === 0 && this.cur.redirs.length === 0);
    if (this.atStart && first && !w.quoted && RESERVED.has(text)) {
      s.words.push(w);
      this.reserved(text, wordStart);
      return;
    }
    const b = this.building(wordStart);
    if (b.argv.length === 0 && ASSIGNMENT.test(s.src.slice(w.start, w.end))) {
      if (s.src[s.i] === '(' && s.src[w.end - 1] === '=') {
        // NAME=( … ): an array assignment.
        s.skipBalanced('(', ')');
        w.end = s.i;
        w.features.add('assignment');
      }
      s.constructs.add('assignment');
      s.commitWord(w);
      b.assigns.push(w);
      return;
    }
    s.commitWord(w);
    b.argv.push(w);
    this.atStart = false;
  }

  private reserved(word: string, pos: number): void {
    const s: Scanner = this.s;
    this.beginStmt(pos);
    switch (word) {
      case '!':
        s.constructs.add('negation');
        if (this.stmt) this.stmt.negated = true;
        return;
      case '{':
        s.enterCompound('group');
        return;
      case '}':
        s.leaveCompound('group');
        return;
      case 'if':
      case 'while':
      case 'until':
        s.enterCompound('control-flow');
        return;
      case 'fi':
      case 'done':
      case 'esac':
        s.leaveCompound('control-flow');
        return;
      case 'for':
      case 'select':
        s.enterCompound('control-flow');
        this.skipUntil = ['do'];
        return;
      case 'case':
        s.enterCompound('control-flow');
        this.skipUntil = ['in'];
        return;
      case 'function':
        s.enterCompound('function-definition');
        this.skipUntil = ['{', '('];
        return;
      case '[[':
        s.markCompound('test-clause');
        this.testClause = true;
        return;
      case ']]':
        s.markCompound('test-clause');
        return;
      case 'time':
      case 'coproc':
        s.markCompound(word);
        return;
      default:
        s.markCompound('control-flow');
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Agreement with sh-syntax
// ---------------------------------------------------------------------------------------------

/** What kind of word part sh-syntax saw, from the text it spans (its JSON carries no node types). */
function partKindOf(text: string): PartKind {
  if (text.startsWith("'")) return 'sq';
  if (text.startsWith('"')) return 'dq';
  if (text.startsWith("$'")) return 'ansi';
  if (text.startsWith('$"')) return 'locale';
  if (text.startsWith('$((') || text.startsWith('$[')) return 'arith';
  if (text.startsWith('$(') || text.startsWith('`')) return 'cmdsubst';
  if (text.length > 1 && text.startsWith('$')) return 'param';
  if (text.startsWith('<(') || text.startsWith('>(')) return 'procsubst';
  if (/^[?*+@!]\(/.test(text)) return 'extglob';
  return 'lit';
}

function mergeLits(parts: readonly Part[]): Part[] {
  const out: Part[] = [];
  for (const p of parts) {
    const last = out[out.length - 1];
    if (p.kind === 'lit' && last?.kind === 'lit' && last.end === p.start) last.end = p.end;
    else if (!(p.kind === 'lit' && p.start === p.end)) out.push({ ...p });
  }
  return out;
}

function statementsAgree(scan: Scanner, file: ShFile, toIndex: Map<number, number>): string | null {
  const at = (n: { Offset: number }): number => toIndex.get(n.Offset) ?? -1;
  if (file.Stmts.length !== scan.top.length) return `statement count ${file.Stmts.length} ≠ ${scan.top.length}`;
  for (let k = 0; k < scan.top.length; k++) {
    const mine = scan.top[k] as TopStmt;
    const theirs = file.Stmts[k] as ShStmt;
    if (at(theirs.Pos) !== mine.start) return `statement ${k} starts at ${at(theirs.Pos)} ≠ ${mine.start}`;
    if (theirs.Negated !== mine.negated || theirs.Background !== mine.background || theirs.Coprocess) return `statement ${k} flags differ`;
    if (mine.commands.length === 1 && mine.joins === 0) {
      const index = mine.commands[0] as number;
      const redirs = scan.redirsByCommand.get(index) ?? [];
      if (redirs.length !== theirs.Redirs.length) return `statement ${k} has ${theirs.Redirs.length} redirections ≠ ${redirs.length}`;
      for (let r = 0; r < redirs.length; r++) {
        const a = redirs[r] as Redir;
        const b = theirs.Redirs[r];
        if (!b || b.Op !== a.op || (b.N?.Value ?? null) !== a.fd) return `statement ${k} redirection ${r} differs`;
      }
      const words = scan.wordsByCommand.get(index) ?? [];
      const cmd: ShNode | null = theirs.Cmd;
      const firstWord = words[0];
      const lastWord = words[words.length - 1];
      if (firstWord === undefined || lastWord === undefined) {
        if (cmd !== null) return `statement ${k} has a command the scanner did not see`;
      } else if (cmd === null || at(cmd.Pos) !== firstWord.start || at(cmd.End) !== lastWord.end) {
        return `statement ${k} command extent differs`;
      }
    }
  }
  return null;
}

/** sh-syntax's WASM runs out of memory near 3000 statements in one call, so words go in batches. */
const WORDS_PER_REPARSE = 1000;

/** Re-parse every word alone as `: > WORD`: sh-syntax must find the same word and the same parts. */
async function wordsAgree(src: string, words: readonly WordTok[]): Promise<string | null> {
  for (let from = 0; from < words.length; from += WORDS_PER_REPARSE) {
    const problem = await batchAgrees(src, words.slice(from, from + WORDS_PER_REPARSE));
    if (problem) return problem;
  }
  return null;
}

async function batchAgrees(src: string, words: readonly WordTok[]): Promise<string | null> {
  const PREFIX = ': > ';
  let script = '';
  const lineStarts: number[] = [];
  for (const w of words) {
    lineStarts.push(script.length);
    script += `${PREFIX}${src.slice(w.start, w.end)}\n`;
  }
  const parsed = await shParse(script);
  if ('error' in parsed) return `word re-parse failed: ${parsed.error}`;
  const toIndex = byteToIndexMap(script);
  const at = (n: { Offset: number }): number => toIndex.get(n.Offset) ?? -1;
  if (parsed.file.Stmts.length !== words.length) return 'word re-parse found a different number of words';
  for (let k = 0; k < words.length; k++) {
    const w = words[k] as WordTok;
    const base = (lineStarts[k] as number) + PREFIX.length;
    const st = parsed.file.Stmts[k] as ShStmt;
    const redir = st.Redirs[0];
    if (!st.Cmd || at(st.Cmd.Pos) !== base - PREFIX.length || at(st.Cmd.End) !== base - PREFIX.length + 1) return `word ${k} re-parse differs`;
    if (st.Redirs.length !== 1 || !redir || redir.Op !== '>' || redir.N !== null) return `word ${k} re-parse differs`;
    const shift = (p: number): number => p - base + w.start;
    if (shift(at(redir.Word.Pos)) !== w.start || shift(at(redir.Word.End)) !== w.end) return `word ${k} (${src.slice(w.start, w.end)}) has a different extent`;
    const theirs = mergeLits(redir.Word.Parts.map((p) => {
      const s = at(p.Pos);
      const e = at(p.End);
      return { kind: partKindOf(script.slice(s, e)), start: shift(s), end: shift(e) };
    }));
    const mine = mergeLits(w.parts);
    const same = theirs.length === mine.length && theirs.every((p, j) => {
      const q = mine[j];
      return q !== undefined && q.kind === p.kind && q.start === p.start && q.end === p.end;
    });
    if (!same) return `word ${k} (${src.slice(w.start, w.end)}) is quoted differently`;
  }
  return null;
}

/**
 * Parse one command line, or a paste of several lines, into what policy decides over. Never
 * throws for bad input: an unparsable line comes back with `error` set (and `incomplete` when
 * the shell would have waited for more).
 */
export async function parseCommandLine(source: string): Promise<ParsedLine> {
  const refuse = (error: string, incomplete = false, partial?: Scanner): ParsedLine => ({
    source,
    commands: partial ? partial.commands : [],
    constructs: partial ? [...partial.constructs] : [],
    error,
    ...(incomplete ? { incomplete: true } : {}),
  });
  if (Buffer.byteLength(source, 'utf8') > MAX_PARSE_BYTES) return refuse(`longer than ${MAX_PARSE_BYTES} bytes`);
  if (source.includes('\u0000')) return refuse('contains a NUL character');
  if (LONE_SURROGATE.test(source)) return refuse('contains malformed Unicode');

  const scan = new Scanner(source);
  let scanError: ScanError | null = null;
  try {
    scan.scanList(false, null);
  } catch (err) {
    if (!(err instanceof ScanError)) throw err;
    scanError = err;
  }
  const grammar = await shParse(source);
  if ('error' in grammar) return refuse(grammar.error, grammar.incomplete || (scanError?.incomplete ?? false), scan);
  if (scanError) return refuse(scanError.message, scanError.incomplete, scan);

  // With compound syntax the line is refused for that construct; statement shapes are then
  // not worth comparing, but the words still are.
  if (!scan.compound) {
    const disagreement = statementsAgree(scan, grammar.file, byteToIndexMap(source));
    if (disagreement) return refuse(`the gateway's two shell parsers disagree (${disagreement})`, false, scan);
  }
  const wordDisagreement = await wordsAgree(source, scan.words);
  if (wordDisagreement) return refuse(`the gateway's two shell parsers disagree (${wordDisagreement})`, false, scan);

  return { source, commands: scan.commands, constructs: [...scan.constructs] };
}
