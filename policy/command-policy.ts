/**
 * Least-privilege command profiles (R-6.3c): given a command line already parsed by a real
 * shell-grammar parser (the gateway's adapter produces a ParsedLine) and a profile, decide
 * allow / deny / review, with the rule that decided and a reason a vendor can read.
 *
 * This is a security boundary, not a guard against mistakes, so every choice leans closed:
 * default deny, first match wins, anything the parser could not reduce to a literal argv is
 * denied, and every simple command of a line is checked on its own.
 */
import type { ErrorCode } from './error-codes.js';

// ---------------------------------------------------------------------------------------------
// What the parser hands over: plain data, no AST, so policy never depends on the parser library.
// ---------------------------------------------------------------------------------------------

/**
 * The vocabulary of shell constructs a line can contain. The adapter may report strings outside
 * this list (anything it meets and does not understand); the engine denies those too.
 */
export const SHELL_CONSTRUCTS = [
  'pipeline', // a | b, a |& b
  'and-or', // a && b, a || b
  'sequence', // a ; b, or commands on several lines
  'background', // a &
  'subshell', // ( a )
  'group', // { a; }
  'command-substitution', // $(a), `a`
  'process-substitution', // <(a), >(a)
  'redirection', // > < >> 2>&1 &> >| <>
  'heredoc', // <<EOF
  'here-string', // <<<word
  'assignment', // NAME=value before a command, or alone
  'glob', // * ? [..]
  'extglob', // ?(..) *(..) +(..) @(..) !(..)
  'brace-expansion', // {a,b} {1..9}
  'tilde-expansion', // ~ ~user
  'parameter-expansion', // $X ${X} $1 $@
  'arithmetic', // $((..)) $[..] ((..))
  'history-expansion', // !! !$ ^a^b (interactive bash)
  'ansi-c-quote', // $'..': decoded differently by different shells, so never treated as literal
  'locale-quote', // $".."
  'equals-expansion', // =cmd (zsh)
  'bare-dollar', // a $ that bash keeps literally; other shells may not
  'function-definition', // f() { .. }, function f
  'control-flow', // if/for/while/until/case/select and their keywords
  'negation', // ! a
  'time', // time a
  'coproc', // coproc a
  'test-clause', // [[ .. ]]
  'comment', // # ..
  'line-continuation', // backslash-newline inside a line
] as const;
export type ShellConstruct = (typeof SHELL_CONSTRUCTS)[number];

/** The constructs a profile may allow in restricted and inspected modes: each element is still checked on its own. */
export const COMPOSABLE_CONSTRUCTS = ['pipeline', 'and-or', 'sequence'] as const;
export type ComposableConstruct = (typeof COMPOSABLE_CONSTRUCTS)[number];

/** One word after quote removal: either its exact literal value, or dynamic (the shell would compute it). */
export type ShellWord =
  | { literal: true; value: string; source: string }
  | { literal: false; source: string; features: readonly string[] };

/** The operator after a simple command at its own level; null for the last one. */
export type CommandJoin = '|' | '|&' | '&&' | '||' | ';' | '&' | null;

export interface SimpleCommand {
  /** The program and its arguments, assignments and redirections excluded. Empty when there is no program. */
  argv: readonly ShellWord[];
  /** Source text of NAME=value words before the program. */
  assignments: readonly string[];
  /** Redirection operators attached to this command (`>`, `2>&1` shows as `>&`, `<<`…). */
  redirections: readonly string[];
  next: CommandJoin;
  /** Inside a substitution, subshell, group, function or control-flow body. */
  nested: boolean;
}

export interface ParsedLine {
  /** Exactly what the user typed or pasted. */
  source: string;
  commands: readonly SimpleCommand[];
  /** Every construct present anywhere in the line, each once. */
  constructs: readonly string[];
  /** Set when the line could not be parsed or the two parsers disagreed: always denied outside full mode. */
  error?: string;
  /** The shell would wait for more input (open quote, here-document, trailing `|`, trailing backslash). */
  incomplete?: boolean;
}

// ---------------------------------------------------------------------------------------------
// Profiles
// ---------------------------------------------------------------------------------------------

export const COMMAND_MODES = ['restricted', 'inspected', 'full'] as const;
export type CommandMode = (typeof COMMAND_MODES)[number];
export const RULE_ACTIONS = ['allow', 'deny', 'review'] as const;
export type RuleAction = (typeof RULE_ACTIONS)[number];

/**
 * A pattern is exact text, a glob (unescaped `*`, `?` or `[..]`; a backslash quotes the next
 * character), or a regular expression written `/…/` (it must match the whole text; write `\/`
 * for a slash inside it).
 */
export interface CommandRule {
  program: string;
  /** Per-argument patterns; a final `"**"` matches any remaining arguments; absent: any arguments. */
  args?: readonly string[];
  /** A `/regex/` that must match the whole command as `displayCommand` shows it. */
  line?: string;
  action: RuleAction;
}

export interface CommandProfile {
  name: string;
  mode: CommandMode;
  rules: readonly CommandRule[];
  /** Composite forms allowed in restricted and inspected modes; the parts are still checked one by one. */
  allowConstructs?: readonly ComposableConstruct[];
}

/** Per the limits of a terminal line; longer input is a paste or an attack, never a command a vendor types. */
export const MAX_COMMAND_LINE_BYTES = 4096;

// ---------------------------------------------------------------------------------------------
// Patterns
// ---------------------------------------------------------------------------------------------

/** A compiled pattern (see CommandRule). */
export type PatternMatcher =
  | { kind: 'exact'; text: string }
  | { kind: 'glob'; re: RegExp; leadingDash: boolean }
  | { kind: 'regex'; re: RegExp }
  | { kind: 'rest' };

/** The args matcher that stands for "any remaining arguments". */
export const REST_OF_ARGS = '**';

/** `/…/` with no unescaped `/` inside; so `/var/log/x` stays a path and `/^ls$/` is a regex. */
export function isRegexPattern(p: string): boolean {
  if (p.length < 3 || !p.startsWith('/') || !p.endsWith('/')) return false;
  const body = p.slice(1, -1);
  for (let i = 0; i < body.length; i++) {
    if (body[i] === '\\') i++;
    else if (body[i] === '/') return false;
  }
  return !body.endsWith('\\') || body.endsWith('\\\\');
}

export function isGlobPattern(p: string): boolean {
  for (let i = 0; i < p.length; i++) {
    const c = p[i];
    if (c === '\\') i++;
    else if (c === '*' || c === '?' || c === '[') return true;
  }
  return false;
}

const escapeRe = (s: string): string => s.replace(/[\\^$.*+?()[\]{}|/-]/g, '\\$&');
/** Inside a character class without the `u` flag, a backslash before any non-alphanumeric is that character. */
const classChar = (c: string): string => (/[A-Za-z0-9]/.test(c) ? c : `\\${c}`);

/**
 * Globs here are path-aware: `*`, `?` and `[..]` never match `/`, so `/var/log/*` does not reach
 * into sub-directories. Two further rules live in matchGlob: a value with a `..` segment never
 * matches a glob (so `/var/log/../../etc/shadow` is not "under /var/log"), and a value starting
 * with `-` matches only a glob that itself starts with `-` (options must be named, the way `*`
 * in a shell does not match dot-files), so `status *` does not let `--host=…` through.
 */
function compileGlob(p: string): { re: RegExp } | { error: string } {
  let out = '';
  for (let i = 0; i < p.length; i++) {
    const c = p[i] as string;
    if (c === '\\') {
      const n = p[i + 1];
      if (n === undefined) return { error: 'ends with a lone backslash' };
      out += escapeRe(n);
      i++;
    } else if (c === '*') {
      if (p[i + 1] === '*') return { error: '`**` is only allowed as a whole argument pattern, last, meaning "any remaining arguments"' };
      out += '[^/]*';
    } else if (c === '?') {
      out += '[^/]';
    } else if (c === '[') {
      let j = i + 1;
      let negate = false;
      if (p[j] === '!' || p[j] === '^') {
        negate = true;
        j++;
      }
      let cls = '';
      let first = true;
      while (j < p.length && (p[j] !== ']' || first)) {
        let a = p[j] as string;
        if (a === '\\' && j + 1 < p.length) a = p[++j] as string;
        if (p[j + 1] === '-' && p[j + 2] !== undefined && p[j + 2] !== ']') {
          let b = p[j + 2] as string;
          j += 2;
          if (b === '\\' && j + 1 < p.length) b = p[++j] as string;
          if (b < a) return { error: `bad range ${a}-${b} in [..]` };
          cls += `${classChar(a)}-${classChar(b)}`;
        } else {
          cls += classChar(a);
        }
        first = false;
        j++;
      }
      if (j >= p.length) return { error: 'has an unclosed `[`' };
      out += `(?!/)[${negate ? '^' : ''}${cls}]`;
      i = j;
    } else {
      out += escapeRe(c);
    }
  }
  return { re: new RegExp(`^(?:${out})$`) };
}

function compileRegex(p: string): { re: RegExp } | { error: string } {
  try {
    // Anchored: a rule names the whole program or argument, never a part of it (`/ls/` must
    // not admit `/tmp/evil-ls`).
    return { re: new RegExp(`^(?:${p.slice(1, -1)})$`) };
  } catch (err) {
    return { error: `invalid regular expression ${p}: ${(err as Error).message}` };
  }
}

export type PatternRole = 'program' | 'arg' | 'line';

/** Compile one pattern; the config schema uses this too, so a bad pattern stops start-up. */
export function compilePattern(p: string, role: PatternRole): { ok: true; matcher: PatternMatcher } | { ok: false; error: string } {
  if (role === 'line') {
    if (!isRegexPattern(p)) return { ok: false, error: 'a line pattern must be a regular expression written /…/' };
    const r = compileRegex(p);
    return 'error' in r ? { ok: false, error: r.error } : { ok: true, matcher: { kind: 'regex', re: r.re } };
  }
  if (p === '') return { ok: false, error: 'an empty pattern' };
  if (p === REST_OF_ARGS) {
    return role === 'arg' ? { ok: true, matcher: { kind: 'rest' } } : { ok: false, error: '`**` is not a program name' };
  }
  if (isRegexPattern(p)) {
    const r = compileRegex(p);
    return 'error' in r ? { ok: false, error: r.error } : { ok: true, matcher: { kind: 'regex', re: r.re } };
  }
  // A backslash always quotes the next character, so `a\*` names the literal `a*`; such a
  // pattern goes through the glob compiler even when nothing in it is a wildcard.
  if (isGlobPattern(p) || p.includes('\\')) {
    const g = compileGlob(p);
    return 'error' in g
      ? { ok: false, error: `glob ${JSON.stringify(p)} ${g.error}` }
      : { ok: true, matcher: { kind: 'glob', re: g.re, leadingDash: p.startsWith('-') || p.startsWith('\\-') } };
  }
  return { ok: true, matcher: { kind: 'exact', text: p } };
}

const hasDotDotSegment = (v: string): boolean => v.split('/').includes('..');

function matchOne(m: PatternMatcher, value: string): boolean {
  switch (m.kind) {
    case 'exact':
      return m.text === value;
    case 'glob':
      if (hasDotDotSegment(value)) return false;
      if (value.startsWith('-') && !m.leadingDash) return false;
      return m.re.test(value);
    case 'regex':
      return m.re.test(value);
    case 'rest':
      return true;
  }
}

interface CompiledRule {
  rule: CommandRule;
  program: PatternMatcher;
  args: PatternMatcher[] | null;
  line: PatternMatcher | null;
}

/** Check every pattern of a profile; an empty list means the profile is usable. */
export function profileErrors(profile: CommandProfile): string[] {
  const errors: string[] = [];
  profile.rules.forEach((rule, i) => {
    const where = `profile ${profile.name}, rules[${i}]`;
    const prog = compilePattern(rule.program, 'program');
    if (!prog.ok) errors.push(`${where}.program: ${prog.error}`);
    rule.args?.forEach((a, j) => {
      const m = compilePattern(a, 'arg');
      if (!m.ok) errors.push(`${where}.args[${j}]: ${m.error}`);
      else if (m.matcher.kind === 'rest' && j !== (rule.args?.length ?? 0) - 1) {
        errors.push(`${where}.args[${j}]: "**" may only be the last argument pattern`);
      }
    });
    if (rule.line !== undefined) {
      const m = compilePattern(rule.line, 'line');
      if (!m.ok) errors.push(`${where}.line: ${m.error}`);
    }
  });
  for (const c of profile.allowConstructs ?? []) {
    if (!(COMPOSABLE_CONSTRUCTS as readonly string[]).includes(c)) {
      errors.push(`profile ${profile.name}, allow_constructs: ${JSON.stringify(c)} cannot be allowed (only ${COMPOSABLE_CONSTRUCTS.join(', ')})`);
    }
  }
  return errors;
}

// Profiles are plain data that live for the life of the configuration; compiling once per profile
// object keeps decisions cheap without any state a caller could observe.
const compiledCache = new WeakMap<CommandProfile, CompiledRule[] | string>();

function compileProfile(profile: CommandProfile): CompiledRule[] | string {
  const cached = compiledCache.get(profile);
  if (cached !== undefined) return cached;
  const errors = profileErrors(profile);
  let result: CompiledRule[] | string;
  if (errors.length > 0) {
    result = errors[0] as string;
  } else {
    const must = (p: string, role: PatternRole): PatternMatcher => {
      const m = compilePattern(p, role);
      if (!m.ok) throw new Error(m.error); // unreachable: profileErrors checked it
      return m.matcher;
    };
    result = profile.rules.map((rule) => ({
      rule,
      program: must(rule.program, 'program'),
      args: rule.args ? rule.args.map((a) => must(a, 'arg')) : null,
      line: rule.line !== undefined ? must(rule.line, 'line') : null,
    }));
  }
  compiledCache.set(profile, result);
  return result;
}

// ---------------------------------------------------------------------------------------------
// Programs with known shell escapes
// ---------------------------------------------------------------------------------------------

interface EscapeEntry {
  why: string;
  /** Only these arguments turn the program into a shell; absent: any use can. */
  when?: (args: readonly string[]) => boolean;
}

/** GNU getopt_long accepts any unambiguous prefix, so `--to-c=sh` is `--to-command=sh`. */
const longOption = (names: readonly string[], minLen = 3) => (args: readonly string[]): boolean =>
  args.some((a) => {
    if (!a.startsWith('--')) return false;
    const name = a.slice(2).split('=')[0] ?? '';
    return name.length >= minLen && names.some((n) => n.startsWith(name));
  });
/** A short option, alone or inside a cluster such as `-xvIf`. */
const shortOption = (letters: string) => (args: readonly string[]): boolean =>
  args.some((a) => /^-[^-]/.test(a) && [...a.slice(1)].some((ch) => letters.includes(ch)));
const anyOf = (...tests: ((args: readonly string[]) => boolean)[]) => (args: readonly string[]): boolean => tests.some((t) => t(args));

const ESCAPE_GROUPS: ReadonlyArray<[readonly string[], EscapeEntry]> = [
  // Editors run shell commands (:!sh, M-x shell, ^T in nano with a speller) and write any file.
  [['vi', 'vim', 'view', 'rvim', 'rview', 'vimdiff', 'nvim', 'gvim', 'ex', 'ed', 'red', 'nano', 'rnano', 'pico', 'emacs', 'emacsclient', 'joe', 'jed', 'mcedit', 'mg', 'micro', 'kak', 'hx', 'helix', 'editor', 'sensible-editor', 'select-editor', 'vipw', 'vigr', 'visudo', 'sudoedit', 'edquota'],
    { why: 'an editor can run a shell (e.g. :!sh)' }],
  // Pagers and viewers: `!sh` in less/more, man and info use a pager, text browsers run commands.
  [['less', 'more', 'most', 'pg', 'man', 'info', 'pinfo', 'perldoc', 'pydoc', 'w3m', 'lynx', 'links', 'elinks'],
    { why: 'a pager can run a shell (e.g. !sh in less)' }],
  // Interpreters: a one-liner is a program, whatever the profile meant.
  [['awk', 'gawk', 'mawk', 'nawk', 'perl', 'python', 'pypy', 'ruby', 'irb', 'node', 'nodejs', 'deno', 'bun', 'lua', 'luajit', 'php', 'tclsh', 'wish', 'expect', 'guile', 'racket', 'ocaml', 'ghci', 'julia', 'jshell', 'jrunscript', 'groovy', 'scala', 'r', 'rscript', 'dc', 'sed', 'm4', 'make', 'gdb', 'pdb', 'busybox', 'toybox'],
    { why: 'an interpreter runs whatever program it is given (awk system(), sed e, perl -e…)' }],
  // Shells and terminal multiplexers.
  [['sh', 'bash', 'rbash', 'dash', 'ash', 'zsh', 'ksh', 'mksh', 'pdksh', 'oksh', 'yash', 'posh', 'csh', 'tcsh', 'fish', 'elvish', 'nu', 'xonsh', 'pwsh', 'powershell', 'screen', 'tmux', 'byobu', 'script', 'mc', 'ranger', 'nnn', 'vifm'],
    { why: 'it is a shell' }],
  // Shell built-ins that evaluate text, change how later words are looked up, or run code on events.
  [['eval', 'exec', 'source', '.', 'command', 'builtin', 'alias', 'unalias', 'trap', 'enable', 'hash', 'fc', 'bind', 'complete', 'compgen', 'mapfile', 'readarray', 'let', 'declare', 'typeset', 'local', 'export', 'readonly', 'set', 'shopt', 'unset', 'coproc'],
    { why: 'a shell built-in that evaluates text or changes how commands are found' }],
  // Programs whose job is to run another program (their argument is a command line).
  [['env', 'xargs', 'sudo', 'su', 'doas', 'pkexec', 'runuser', 'setpriv', 'sg', 'newgrp', 'chroot', 'unshare', 'nsenter', 'nice', 'ionice', 'renice', 'nohup', 'timeout', 'stdbuf', 'setsid', 'taskset', 'chrt', 'flock', 'time', 'watch', 'strace', 'ltrace', 'valgrind', 'perf', 'firejail', 'bwrap', 'systemd-run', 'systemd-nspawn', 'machinectl', 'run-parts', 'parallel', 'sem', 'at', 'batch', 'crontab', 'start-stop-daemon', 'daemonize', 'setarch', 'linux32', 'linux64', 'capsh', 'fakeroot', 'proot', 'prlimit', 'numactl', 'cpulimit', 'chpst', 'softlimit', 'logsave', 'ssh-agent', 'dbus-run-session', 'dbus-launch', 'xvfb-run', 'faketime', 'torsocks', 'proxychains', 'unbuffer', 'rlwrap', 'entr', 'catchsegv', 'xdg-open'],
    { why: 'it runs another program given on its command line' }],
  // Remote access and file transfer: a new session or data export outside this one (R-6.3e, R-6.3f).
  [['ssh', 'scp', 'sftp', 'rsync', 'telnet', 'rsh', 'rlogin', 'nc', 'ncat', 'netcat', 'socat', 'ftp', 'lftp', 'tftp', 'mail', 'mailx'],
    { why: 'it opens a connection or a shell elsewhere, or moves files out of the session' }],
  // Package managers and containers run maintainer scripts or whole systems as root.
  [['apt', 'apt-get', 'aptitude', 'dpkg', 'rpm', 'yum', 'dnf', 'zypper', 'snap', 'flatpak', 'pip', 'pip3', 'npm', 'npx', 'yarn', 'gem', 'cpan', 'bundle', 'composer', 'cargo', 'go', 'docker', 'podman', 'kubectl', 'crictl', 'ctr', 'lxc', 'lxc-attach', 'virsh'],
    { why: 'it installs or runs software (package scripts, containers)' }],
  // Version control: pager, hooks, aliases with `!`, core.sshCommand, --upload-pack.
  [['git', 'hg', 'svn'], { why: 'version control runs pagers, hooks and configured commands' }],
  // Databases and monitors with a `!`/`\!`/`.shell` escape.
  [['mysql', 'mariadb', 'psql', 'sqlite3', 'iftop', 'nmap'], { why: 'it has a built-in shell escape' }],
];

/** Programs that are harmless unless given particular options. */
const CONDITIONAL_ESCAPES: ReadonlyArray<[string, EscapeEntry]> = [
  ['find', { why: 'find -exec/-execdir/-ok runs commands, -fprint* writes files', when: (args) => args.some((a) => ['-exec', '-execdir', '-ok', '-okdir', '-fprint', '-fprint0', '-fprintf', '-fls'].includes(a)) }],
  ['tar', {
    why: 'tar --to-command, --checkpoint-action, -I and volume scripts run commands',
    when: anyOf(
      longOption(['to-command', 'checkpoint-action', 'use-compress-program', 'info-script', 'new-volume-script', 'rsh-command', 'rmt-command']),
      shortOption('IF'),
      // Old-style bundled first argument without a dash: `tar xIf prog file`.
      (args) => args[0] !== undefined && !args[0].startsWith('-') && /[IF]/.test(args[0]),
    ),
  }],
  ['zip', { why: 'zip -TT / --unzip-command runs a command', when: anyOf(longOption(['unzip-command']), (args) => args.some((a) => /^-[^-]*TT/.test(a))) }],
  ['sort', { why: 'sort --compress-program runs a command', when: longOption(['compress-program']) }],
  ['split', { why: 'split --filter runs a command', when: longOption(['filter']) }],
  ['tcpdump', { why: 'tcpdump -z runs a command on each file', when: shortOption('z') }],
  ['ip', { why: 'ip netns exec and ip -batch run commands', when: (args) => args.some((a) => (a.length > 0 && 'exec'.startsWith(a)) || /^--?b/.test(a)) }],
  ['systemctl', { why: 'systemctl edit opens an editor', when: (args) => args.includes('edit') }],
  ['cpio', { why: 'cpio --rsh-command runs a command', when: longOption(['rsh-command']) }],
];

const ESCAPES: ReadonlyMap<string, EscapeEntry> = new Map([
  ...ESCAPE_GROUPS.flatMap(([names, entry]) => names.map((n): [string, EscapeEntry] => [n, entry])),
  ...CONDITIONAL_ESCAPES,
]);

/**
 * The escape entry for a program, by basename and ignoring version and flavour suffixes
 * (python3.11, lua5.4, vim.tiny, pip3): a path or a suffix must not hide what the program is.
 */
function escapeEntryFor(program: string): EscapeEntry | undefined {
  const base = (program.split('/').pop() ?? program).toLowerCase();
  const stem = base.split('.')[0] ?? base;
  const stripVersion = (s: string): string => s.replace(/-?[0-9][0-9.]*$/, '');
  for (const name of [base, stem, stripVersion(base), stripVersion(stem)]) {
    const e = name === '' ? undefined : ESCAPES.get(name);
    if (e) return e;
  }
  return undefined;
}

/** Does this program, used with these arguments, have a known way to a shell? */
export function shellEscapeOf(program: string, args: readonly string[]): string | null {
  const e = escapeEntryFor(program);
  if (!e) return null;
  if (e.when && !e.when(args)) return null;
  return e.why;
}

/** Names in the escape list, for documentation and tests. */
export function shellEscapePrograms(): string[] {
  return [...ESCAPES.keys()].sort();
}

// ---------------------------------------------------------------------------------------------
// Characters
// ---------------------------------------------------------------------------------------------

/** The first C0/DEL/C1 control character, if any; in a line, tab and newline are ordinary. */
function firstControl(s: string, inLine: boolean): string | null {
  for (const ch of s) {
    const cp = ch.codePointAt(0) ?? 0;
    if (inLine && (cp === 0x09 || cp === 0x0a)) continue;
    if (cp < 0x20 || (cp >= 0x7f && cp <= 0x9f)) return ch;
  }
  return null;
}

/**
 * Characters that are invisible or change how the rest of the line is shown (bidi overrides,
 * zero-width joiners, variation selectors, tags), and spaces that are not ASCII space: a reviewer
 * or a recording must see the command that runs.
 */
const INVISIBLE = /[\p{Cf}\p{Default_Ignorable_Code_Point}\p{Zl}\p{Zp}\p{Cs}\p{Cn}]|(?! )\p{Zs}/u;
/** A program name is plain ASCII: look-alike letters (Cyrillic с, fullwidth ｌｓ) can never name a program. */
const PROGRAM_NAME = /^[A-Za-z0-9._+:@,/-]+$/;

const utf8Length = (s: string): number => {
  let n = 0;
  for (const ch of s) {
    const cp = ch.codePointAt(0) ?? 0;
    n += cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
  }
  return n;
};

const codePoint = (ch: string): string => `U+${(ch.codePointAt(0) ?? 0).toString(16).toUpperCase().padStart(4, '0')}`;

// ---------------------------------------------------------------------------------------------
// Words in the vendor's language
// ---------------------------------------------------------------------------------------------

const CONSTRUCT_WORDS: Record<ShellConstruct, string> = {
  pipeline: 'pipes between commands (`|`)',
  'and-or': 'chaining commands with `&&` or `||`',
  sequence: 'several commands on one line (`;` or a new line)',
  background: 'running in the background (`&`)',
  subshell: 'subshells `( … )`',
  group: 'command groups `{ …; }`',
  'command-substitution': 'command substitution `$( … )` or backquotes',
  'process-substitution': 'process substitution `<( … )` / `>( … )`',
  redirection: 'redirections (`>`, `<`, `>>`, `2>&1` …)',
  heredoc: 'here-documents (`<<`)',
  'here-string': 'here-strings (`<<<`)',
  assignment: 'variable assignments (`NAME=value`)',
  glob: 'wildcards (`*`, `?`, `[…]`): type the exact name',
  extglob: 'extended wildcards (`@( … )` and the like)',
  'brace-expansion': 'braces `{ … }` (brace expansion)',
  'tilde-expansion': '`~` (home directory expansion): type the full path',
  'parameter-expansion': 'variables (`$NAME`, `${ … }`)',
  arithmetic: 'arithmetic `$(( … ))`',
  'history-expansion': 'history expansion (`!` or a leading `^`): quote it with single quotes',
  'ansi-c-quote': "`$'…'` strings",
  'locale-quote': '`$"…"` strings',
  'equals-expansion': 'a word starting with `=`',
  'bare-dollar': 'a lone `$`: quote it with single quotes',
  'function-definition': 'defining functions',
  'control-flow': 'if / for / while / case',
  negation: '`!` before a command',
  time: '`time`',
  coproc: '`coproc`',
  'test-clause': '`[[ … ]]`',
  comment: 'comments (`#`)',
  'line-continuation': 'a backslash at the end of a line',
};

export function describeConstruct(c: string): string {
  return (CONSTRUCT_WORDS as Record<string, string | undefined>)[c] ?? `a shell feature the gateway does not check (${c})`;
}

/** Minimal POSIX quoting: bare when safe, single quotes otherwise; what `line` rules see and logs show. */
export function displayWord(w: string): string {
  if (w !== '' && /^[A-Za-z0-9_@%+=:,./-]+$/.test(w)) return w;
  return `'${w.replace(/'/g, `'\\''`)}'`;
}

export function displayCommand(argv: readonly ShellWord[]): string {
  return argv.map((w) => (w.literal ? displayWord(w.value) : w.source)).join(' ');
}

// ---------------------------------------------------------------------------------------------
// Decisions
// ---------------------------------------------------------------------------------------------

export interface CommandVerdict {
  /** Index into ParsedLine.commands. */
  index: number;
  command: string;
  action: RuleAction;
  /** Index into profile.rules of the rule that decided, or null (default deny, or refused before any rule). */
  rule: number | null;
  reason: string;
}

export interface CommandDecision {
  action: RuleAction;
  /** The rule that decided the line: that of the first denied (else first held, else only) command; null otherwise. */
  rule: number | null;
  reason: string;
  /** null when allowed. */
  code: ErrorCode | null;
  perCommand: CommandVerdict[];
  profile: string;
  mode: CommandMode;
}

/** People count rules from 1, as they read them in the profile (the command log says "profile#N" too). */
const ruleLabel = (i: number, r: CommandRule): string => {
  const args = r.args === undefined ? '' : r.args.length === 0 ? ' (no arguments)' : ` ${r.args.join(' ')}`;
  return `rule ${i + 1} (${r.program}${args} → ${r.action})`;
};

function checkCommand(cmd: SimpleCommand, index: number, rules: CompiledRule[]): CommandVerdict {
  const command = cmd.argv.length > 0 ? displayCommand(cmd.argv) : [...cmd.assignments, ...cmd.redirections].join(' ');
  const verdict = (action: RuleAction, rule: number | null, reason: string): CommandVerdict => ({ index, command, action, rule, reason });
  const first = cmd.argv[0];
  if (first === undefined) return verdict('deny', null, 'there is no program to run (only an assignment or a redirection)');
  if (!first.literal) return verdict('deny', null, `the program name ${first.source} is computed by the shell, not typed out`);
  const program = first.value;
  if (!PROGRAM_NAME.test(program) || program.startsWith('-')) {
    return verdict('deny', null, `the program name ${JSON.stringify(program)} is not plain ASCII letters, digits and . _ - + / : @ ,`);
  }
  const args = cmd.argv.slice(1);
  const badArg = args.find((a) => a.literal && firstControl(a.value, false) !== null);
  if (badArg) return verdict('deny', null, 'an argument contains a control character');

  const literalArgs = args.map((a) => (a.literal ? a.value : a.source));
  const line = displayCommand(cmd.argv);
  const allLiteral = args.every((a) => a.literal);
  const idx = rules.findIndex((r) => {
    if (!matchOne(r.program, program)) return false;
    if (r.args) {
      const rest = r.args[r.args.length - 1]?.kind === 'rest';
      const fixed = rest ? r.args.length - 1 : r.args.length;
      if (rest ? args.length < fixed : args.length !== fixed) return false;
      for (let i = 0; i < fixed; i++) {
        const a = args[i];
        // A dynamic word has no value to compare, so only "any arguments" can cover it.
        if (!a?.literal || !matchOne(r.args[i] as PatternMatcher, a.value)) return false;
      }
    }
    if (r.line && (!allLiteral || !matchOne(r.line, line))) return false;
    return true;
  });
  const escape = shellEscapeOf(program, literalArgs);
  if (idx < 0) {
    // Say whether the program is known with other arguments: a vendor then knows what to change.
    const named = rules.some((r) => matchOne(r.program, program));
    const what = named && args.length > 0 ? `\`${line}\` (the rules for \`${program}\` allow other arguments)` : `\`${program}\``;
    return verdict('deny', null, `no rule allows ${what}${escape ? ` (${escape})` : ''}`);
  }
  const compiled = rules[idx] as CompiledRule;
  const { rule } = compiled;
  if (rule.action === 'deny') return verdict('deny', idx, `\`${program}\` is denied by ${ruleLabel(idx, rule)}`);
  // A program with a known shell escape must be named exactly: a glob or regex written for
  // something else must never hand out a shell by accident.
  if (escape && !(compiled.program.kind === 'exact' && compiled.program.text === program)) {
    return verdict('deny', idx, `\`${program}\` is not allowed: ${escape}; only a rule naming \`${program}\` exactly can allow it`);
  }
  if (rule.action === 'review') return verdict('review', idx, `\`${program}\` needs an approver's confirmation (${ruleLabel(idx, rule)})`);
  return verdict('allow', idx, `allowed by ${ruleLabel(idx, rule)}`);
}

/** Reasons the line as a whole is refused before its commands are looked at, in restricted and inspected modes. */
function lineRefusals(parsed: ParsedLine, profile: CommandProfile): string[] {
  const out: string[] = [];
  if (parsed.error !== undefined) {
    out.push(parsed.incomplete ? `the line is incomplete (${parsed.error})` : `the line could not be understood (${parsed.error})`);
  }
  const bytes = utf8Length(parsed.source);
  if (bytes > MAX_COMMAND_LINE_BYTES) out.push(`the line is too long (${bytes} bytes; at most ${MAX_COMMAND_LINE_BYTES})`);
  const ctl = firstControl(parsed.source, true);
  if (ctl !== null) out.push(`the line contains a control character (${codePoint(ctl)}, e.g. an escape sequence or a carriage return)`);
  const inv = INVISIBLE.exec(parsed.source);
  if (inv) out.push(`the line contains an invisible or direction-changing character (${codePoint(inv[0])})`);
  const allowed = new Set<string>(profile.allowConstructs ?? []);
  const refused = [...new Set(parsed.constructs)].filter((c) => !(allowed.has(c) && (COMPOSABLE_CONSTRUCTS as readonly string[]).includes(c)));
  if (refused.length > 0) out.push(`not allowed here: ${refused.map(describeConstruct).join('; ')}`);
  return out;
}

/**
 * Decide one parsed line against a profile. Restricted and inspected modes: default deny, the
 * line is allowed only if every simple command in it is allowed; review if any needs review and
 * none is denied. Full mode: always allowed, but the decision still says what the rules would
 * have done, for the command log.
 */
export function decideCommand(parsed: ParsedLine, profile: CommandProfile): CommandDecision {
  const base = { profile: profile.name, mode: profile.mode };
  const compiled = compileProfile(profile);
  if (typeof compiled === 'string') {
    // Fail closed: a profile that cannot be compiled allows nothing, whatever its mode.
    return { ...base, action: 'deny', rule: null, reason: `the command profile is invalid: ${compiled}`, code: 'COMMAND_DENIED', perCommand: [] };
  }
  const perCommand = parsed.commands.map((c, i) => checkCommand(c, i, compiled));
  const refusals = lineRefusals(parsed, profile);
  const denied = perCommand.find((v) => v.action === 'deny');
  const held = perCommand.find((v) => v.action === 'review');

  if (profile.mode === 'full') {
    const would = refusals[0] ?? denied?.reason ?? held?.reason ?? null;
    return { ...base, action: 'allow', rule: null, reason: `full mode: recorded, not filtered${would ? ` (restricted mode would refuse: ${would})` : ''}`, code: null, perCommand };
  }
  if (refusals.length > 0) return { ...base, action: 'deny', rule: null, reason: refusals.join('; '), code: 'COMMAND_DENIED', perCommand };
  if (denied) return { ...base, action: 'deny', rule: denied.rule, reason: denied.reason, code: 'COMMAND_DENIED', perCommand };
  if (held) return { ...base, action: 'review', rule: held.rule, reason: held.reason, code: 'COMMAND_REVIEW_REQUIRED', perCommand };
  if (perCommand.length === 0) return { ...base, action: 'allow', rule: null, reason: 'nothing to run', code: null, perCommand };
  const only = perCommand.length === 1 ? perCommand[0] : undefined;
  return { ...base, action: 'allow', rule: only ? only.rule : null, reason: only ? only.reason : 'every command is allowed', code: null, perCommand };
}

// ---------------------------------------------------------------------------------------------
// What a vendor is told
// ---------------------------------------------------------------------------------------------

const patternWords = (p: string): string =>
  isRegexPattern(p) ? `anything matching ${p}` : p === REST_OF_ARGS ? 'any further arguments' : isGlobPattern(p) ? `${p} (wildcard)` : p;

/** One sentence per rule, for the `help` built-in and the console. */
export function describeProfile(profile: CommandProfile): string[] {
  const verb: Record<RuleAction, string> = { allow: 'allowed', deny: 'refused', review: 'needs approval' };
  const lines = profile.rules.map((r) => {
    const prog = isRegexPattern(r.program) ? `programs matching ${r.program}` : isGlobPattern(r.program) ? `programs named like ${r.program}` : r.program;
    const args = r.args === undefined ? ' with any arguments' : r.args.length === 0 ? ' with no arguments' : ` ${r.args.map(patternWords).join(' ')}`;
    const line = r.line ? ` (whole command matching ${r.line})` : '';
    return `${prog}${args}${line}: ${verb[r.action]}`;
  });
  if (profile.mode === 'full') return ['Every command is allowed and recorded (full mode).', ...lines];
  const composable = (profile.allowConstructs ?? []).map(describeConstruct);
  return [
    ...lines,
    profile.rules.length === 0 ? 'No command is allowed.' : 'Anything not listed above is refused.',
    composable.length > 0 ? `Also allowed: ${composable.join('; ')}; each command is still checked.` : 'Type one command per line; pipes, `;`, `&&`, redirections, wildcards and variables are refused.',
  ];
}

/** Program names an exact allow rule names: the only ones worth offering for tab completion. */
export function allowedProgramNames(profile: CommandProfile): string[] {
  const names = profile.rules
    .filter((r) => r.action === 'allow' && !isRegexPattern(r.program) && !isGlobPattern(r.program))
    .map((r) => r.program);
  return [...new Set(names)].sort();
}
