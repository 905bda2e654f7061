import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { parseCommandLine, quoteArgv, quoteWord } from '../../gateway/mediation/shell-parse.js';
import type { ParsedLine } from '../../policy/command-policy.js';
import { shellEnv } from '../support/hermetic-shell.js';

const argvOf = (p: ParsedLine): (string | null)[][] => p.commands.map((c) => c.argv.map((w) => (w.literal ? w.value : null)));

describe('quote removal gives the literal argv bash would run', () => {
  const cases: Array<[string, string[]]> = [
    [`'a'"b"\\c`, ['abc']],
    ['ls -la /var/log', ['ls', '-la', '/var/log']],
    ['  ls\t -l  ', ['ls', '-l']],
    [`ec''ho hi`, ['echo', 'hi']],
    ['l\\s', ['ls']],
    [`"a\\"b"`, ['a"b']],
    [`"a\\b"`, ['a\\b']],
    [`"a\\\\b"`, ['a\\b']],
    [`"\\$HOME"`, ['$HOME']],
    [`'$HOME'`, ['$HOME']],
    [`'it'\\''s'`, ["it's"]],
    [`ls ''`, ['ls', '']],
    [`ls ""`, ['ls', '']],
    [`ls 'a b'`, ['ls', 'a b']],
    ['ls a\\ b', ['ls', 'a b']],
    [`ls '*' "?" \\[`, ['ls', '*', '?', '[']],
    [`ls 'a;b' "c|d" e\\&f`, ['ls', 'a;b', 'c|d', 'e&f']],
    [`ls '!!'`, ['ls', '!!']],
    ['find . ! -name x', ['find', '.', '!', '-name', 'x']],
    ['ls a#b', ['ls', 'a#b']],
    ['ls file~', ['ls', 'file~']],
    ['ls a}', ['ls', 'a}']],
    ['ls é ü', ['ls', 'é', 'ü']],
    ["ls 'a\nb'", ['ls', 'a\nb']],
  ];
  it.each(cases)('%j', async (line, argv) => {
    const p = await parseCommandLine(line);
    expect(p.error).toBeUndefined();
    expect(p.constructs).toEqual([]);
    expect(argvOf(p)).toEqual([argv]);
  });

  it('agrees with bash on random quoting (differential test)', async () => {
    // Deterministic pseudo-random lines built from the characters quoting is made of.
    let seed = 42;
    const rnd = (n: number): number => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    const pieces = ['a', 'b', ' ', "'", '"', '\\', 'x y', "'q'", '"d"', '\\ ', '-', '/', '.', ',', '=', '%', ':', '@', '+', '\\"', "\\'", "'\\'"];
    const lines: string[] = [];
    for (let n = 0; n < 300; n++) {
      let args = '';
      const len = 1 + rnd(8);
      for (let k = 0; k < len; k++) args += pieces[rnd(pieces.length)];
      lines.push(`printf ${args}`);
    }
    const parsed = await Promise.all(lines.map((l) => parseCommandLine(l)));
    // One bash for all lines: each runs through eval, so a syntax error ends only its own line.
    const script = lines
      .map((l) => `eval ${quoteWord(l.replace(/^printf/, "printf '[%s]\\n' START"))} 2>/dev/null || printf 'ERROR\\n'; printf '\\036\\n'`)
      .join('\n');
    const outputs = execFileSync('bash', ['-c', script], { encoding: 'utf8', env: shellEnv(), stdio: ['ignore', 'pipe', 'pipe'] }).split('\u001e\n');
    let compared = 0;
    lines.forEach((line, n) => {
      const p = parsed[n] as ParsedLine;
      const out = outputs[n] ?? '';
      // Refusing is always safe; accepting needs bash to accept too, with the same words.
      if (p.error !== undefined) return;
      expect(out, line).not.toContain('ERROR');
      if (p.constructs.length > 0) return;
      const bash = [...out.matchAll(/\[([^\]]*)\]\n/g)].map((m) => m[1] ?? '').slice(1);
      const ours = argvOf(p)[0]?.slice(1) ?? [];
      if (ours.some((a) => a !== null && a.includes(']'))) return;
      expect(ours, JSON.stringify(line)).toEqual(bash);
      compared++;
    });
    expect(compared).toBeGreaterThan(50);
  });
});

describe('constructs are reported, never dropped', () => {
  const cases: Array<[string, string[]]> = [
    ['ls | wc', ['pipeline']],
    ['ls |& wc', ['pipeline', 'redirection']],
    ['ls && df', ['and-or']],
    ['ls || df', ['and-or']],
    ['ls; df', ['sequence']],
    ['ls\ndf', ['sequence']],
    ['ls;', []],
    ['ls &', ['background']],
    ['(ls)', ['subshell']],
    ['{ ls; }', ['group']],
    ['ls $(id)', ['command-substitution']],
    ['ls `id`', ['command-substitution']],
    ['ls <(id)', ['process-substitution']],
    ['ls >x', ['redirection']],
    ['ls 2>&1', ['redirection']],
    ['cat <<E\nx\nE', ['redirection', 'heredoc']],
    ['cat <<<x', ['redirection', 'here-string']],
    ['X=1 ls', ['assignment']],
    ['X=1', ['assignment']],
    ['ls *', ['glob']],
    ['ls ?', ['glob']],
    ['ls [ab]', ['glob']],
    ['ls @(a|b)', ['extglob']],
    ['ls {a,b}', ['brace-expansion']],
    ['ls ~', ['tilde-expansion']],
    ['ls $X', ['parameter-expansion']],
    ['ls ${X}', ['parameter-expansion']],
    ['ls "$X"', ['parameter-expansion']],
    ['ls $((1))', ['arithmetic']],
    ['((1))', ['arithmetic']],
    ['ls !!', ['history-expansion']],
    ["ls $'x'", ['ansi-c-quote']],
    ['ls $"x"', ['locale-quote']],
    ['ls =x', ['equals-expansion']],
    ['ls $', ['bare-dollar']],
    ['f() { ls; }', ['function-definition', 'group']],
    ['if ls; then ls; fi', ['control-flow', 'sequence']],
    ['for i in a; do ls; done', ['control-flow']],
    ['! ls', ['negation']],
    ['time ls', ['time']],
    ['coproc ls', ['coproc']],
    ['[[ -f x ]]', ['test-clause']],
    ['ls # x', ['comment']],
    ['ls \\\n-l', ['line-continuation']],
  ];
  it.each(cases)('%j', async (line, constructs) => {
    const p = await parseCommandLine(line);
    expect(p.error).toBeUndefined();
    expect([...p.constructs].sort()).toEqual([...constructs].sort());
  });

  it('commands inside a substitution are listed, marked nested', async () => {
    const p = await parseCommandLine('ls "$(reboot)"');
    expect(p.commands.map((c) => [c.argv[0]?.source, c.nested])).toEqual([['reboot', true], ['ls', false]]);
  });

  it('says how commands are joined', async () => {
    const p = await parseCommandLine('a | b && c; d');
    expect(p.commands.map((c) => [c.argv[0]?.source, c.next])).toEqual([['a', '|'], ['b', '&&'], ['c', ';'], ['d', null]]);
  });

  it('a dynamic word says which expansions it holds', async () => {
    const p = await parseCommandLine('ls "a$X"$(id)*');
    const w = p.commands.find((c) => !c.nested)?.argv[1];
    expect(w?.literal).toBe(false);
    if (w && !w.literal) expect([...w.features].sort()).toEqual(['command-substitution', 'glob', 'parameter-expansion']);
  });

  it('keeps offsets right after non-ASCII text', async () => {
    const p = await parseCommandLine('é ls; ls é');
    expect(p.error).toBeUndefined();
    expect(argvOf(p)).toEqual([['é', 'ls'], ['ls', 'é']]);
  });
});

describe('incomplete and invalid lines', () => {
  const cases: Array<[string, boolean]> = [
    ["ls 'a", true],
    ['ls "a', true],
    ['ls $(id', true],
    ['ls `id', true],
    ['ls \\', true],
    ['ls \\\n', true],
    ['cat <<EOF\nx', true],
    ['ls |', true],
    ['ls &&', true],
    ['if true', true],
    ['ls )', false],
    ['; ls', false],
    ['ls ;;', false],
    ['ls\u0000x', false],
    ['ls \ud800', false],
  ];
  it.each(cases)('%j is refused (incomplete: %s)', async (line, incomplete) => {
    const p = await parseCommandLine(line);
    expect(p.error).toBeDefined();
    expect(p.incomplete ?? false).toBe(incomplete);
  });

  it('a very large paste is refused without parsing', async () => {
    const p = await parseCommandLine('ls '.repeat(30_000));
    expect(p.error).toMatch(/longer than/);
  });

  it('thousands of words still parse (the word check goes in batches)', async () => {
    const p = await parseCommandLine(`ls ${'a '.repeat(5000)}`);
    expect(p.error).toBeUndefined();
    expect(p.commands[0]?.argv.length).toBe(5001);
  });

  it('parses concurrently without mixing results', async () => {
    const lines = ['ls a', 'df -h', 'uptime', "cat 'x y'", 'ls; df'];
    const results = await Promise.all(lines.map((l) => parseCommandLine(l)));
    expect(results.map((r) => r.source)).toEqual(lines);
    expect(argvOf(results[3] as ParsedLine)).toEqual([['cat', 'x y']]);
  });
});

describe('quoteArgv re-quotes an argv so a POSIX shell runs exactly it', () => {
  const nasty = [
    'plain', '', ' ', "'", "''", "a'b", "'\\''", '"', '\\', '\\\\', "\\'", '$(id)', '`id`', '$HOME', '${X:-y}', '*', '?', '[a]', '~', '~root',
    '!!', '!$', '^a^b', ';', '|', '&', '&&', '>x', '<x', '(', ')', '{a,b}', '#', 'a b', 'a\tb', 'a\nb', '\n', 'line1\nline2\n', '-n', '-e',
    '--', 'é', '\u202e', '\u001b[2J', '%s', '%d', "it's a \"test\" \\ $x",
  ];

  it.each(['sh', 'bash', 'dash'])('through %s -c, printf sees the same arguments', (shell) => {
    const script = `printf '[%s]\\n' ${quoteArgv(nasty)}`;
    const out = execFileSync(shell, ['-c', script], { encoding: 'utf8', env: shellEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    expect(out).toBe(nasty.map((a) => `[${a}]\n`).join(''));
  });

  it('through bash -c with history expansion and extglob on, nothing changes', () => {
    const script = `set -H; shopt -s extglob; printf '[%s]\\n' ${quoteArgv(nasty)}`;
    const out = execFileSync('bash', ['-c', script], { encoding: 'utf8', env: shellEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    expect(out).toBe(nasty.map((a) => `[${a}]\n`).join(''));
  });

  it('our own parser reads a quoted argv back as the same literal argv', async () => {
    // Policy refuses control and bidi characters, so only the parser's view of the rest matters here.
    const refused = (a: string): boolean => [...a].some((ch) => ch < ' ' || ch === '\u202e');
    const argv = nasty.filter((a) => !refused(a) || a === 'a\nb');
    const p = await parseCommandLine(`printf ${quoteArgv(argv)}`);
    expect(p.error).toBeUndefined();
    expect(p.constructs).toEqual([]);
    expect(argvOf(p)).toEqual([['printf', ...argv]]);
  });

  it('quotes every word, even plain ones', () => {
    expect(quoteArgv(['ls', '-la'])).toBe("'ls' '-la'");
    expect(quoteWord("it's")).toBe("'it'\\''s'");
  });

  it('refuses NUL, malformed Unicode and an empty argv', () => {
    expect(() => quoteArgv(['a\u0000b'])).toThrow(/NUL/);
    expect(() => quoteArgv(['a\ud800'])).toThrow(/malformed/);
    expect(() => quoteArgv([])).toThrow(RangeError);
  });
});
