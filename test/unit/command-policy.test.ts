import { describe, expect, it } from 'vitest';
import {
  MAX_COMMAND_LINE_BYTES,
  SHELL_CONSTRUCTS,
  allowedProgramNames,
  decideCommand,
  describeProfile,
  profileErrors,
  shellEscapeOf,
  type CommandProfile,
  type CommandRule,
  type ComposableConstruct,
  type ParsedLine,
  type ShellWord,
  type SimpleCommand,
} from '../../policy/command-policy.js';

// The engine is pure: these tables build ParsedLine by hand, so each row tests one rule of the
// engine and nothing of the parser.
const lit = (value: string): ShellWord => ({ literal: true, value, source: value });
const dyn = (source: string, ...features: string[]): ShellWord => ({ literal: false, source, features });
const cmd = (...argv: (string | ShellWord)[]): SimpleCommand => ({
  argv: argv.map((a) => (typeof a === 'string' ? lit(a) : a)),
  assignments: [],
  redirections: [],
  next: null,
  nested: false,
});
const words = (text: string): SimpleCommand => cmd(...text.split(' '));
const line = (commands: SimpleCommand[], constructs: string[] = [], extra: Partial<ParsedLine> = {}): ParsedLine => ({
  source: commands.map((c) => c.argv.map((w) => w.source).join(' ')).join(' ; '),
  commands,
  constructs,
  ...extra,
});
const profile = (rules: CommandRule[], mode: CommandProfile['mode'] = 'restricted', allowConstructs?: ComposableConstruct[]): CommandProfile => ({
  name: 'test',
  mode,
  rules,
  ...(allowConstructs ? { allowConstructs } : {}),
});
const allow = (program: string, args?: string[], extra: Partial<CommandRule> = {}): CommandRule => ({ program, action: 'allow', ...(args ? { args } : {}), ...extra });
const decide = (text: string, rules: CommandRule[]): string => decideCommand(line([words(text)]), profile(rules)).action;

describe('matching a program', () => {
  const cases: Array<[string, CommandRule[], string, string]> = [
    ['exact name', [allow('ls')], 'ls', 'allow'],
    ['exact name is not a prefix', [allow('ls')], 'lsblk', 'deny'],
    ['glob name', [allow('system*')], 'systemctl status x', 'allow'],
    ['glob ? matches one character', [allow('d?')], 'df', 'allow'],
    ['glob class', [allow('[dl]s')], 'ls', 'allow'],
    ['negated glob class', [allow('[!d]f')], 'df', 'deny'],
    ['regex', [allow('/(ls|df)/')], 'df -h', 'allow'],
    ['regex is anchored: no partial match', [allow('/ls/')], 'xlsx', 'deny'],
    ['regex alternation is anchored as a whole', [allow('/ls|df/')], 'lsx', 'deny'],
    // A path program matches only a rule that names that path, never its basename.
    ['bare rule does not match a path', [allow('ls')], '/bin/ls', 'deny'],
    ['bare rule does not match ./ls', [allow('ls')], './ls', 'deny'],
    ['path rule matches that path', [allow('/bin/ls')], '/bin/ls -l', 'allow'],
    ['path rule does not match the bare name', [allow('/bin/ls')], 'ls', 'deny'],
    ['glob * does not cross /', [allow('*')], '/bin/ls', 'deny'],
    ['glob * matches a bare name', [allow('*')], 'uptime', 'allow'],
    ['path glob matches within its directory', [allow('/opt/vendor/bin/*')], '/opt/vendor/bin/diag', 'allow'],
    ['path glob does not reach a sub-directory', [allow('/opt/vendor/bin/*')], '/opt/vendor/bin/x/diag', 'deny'],
    ['path glob refuses ..', [allow('/opt/vendor/bin/*')], '/opt/vendor/bin/../../../bin/sh', 'deny'],
    ['an escaped glob character is literal', [allow('ls', ['a\\*'])], 'ls a*', 'allow'],
    ['an escaped glob character matches only itself', [allow('ls', ['a\\*'])], 'ls ab', 'deny'],
  ];
  it.each(cases)('%s', (_n, rules, text, expected) => expect(decide(text, rules)).toBe(expected));
});

describe('matching arguments', () => {
  const cases: Array<[string, CommandRule[], string, string]> = [
    ['no args key: any arguments', [allow('ls')], 'ls -la /etc /root', 'allow'],
    ['empty args: no arguments at all', [allow('reboot', [])], 'reboot', 'allow'],
    ['empty args refuses an argument', [allow('reboot', [])], 'reboot -f', 'deny'],
    ['exact arguments', [allow('systemctl', ['status', 'nginx'])], 'systemctl status nginx', 'allow'],
    ['one argument too many', [allow('systemctl', ['status', 'nginx'])], 'systemctl status nginx x', 'deny'],
    ['one argument too few', [allow('systemctl', ['status', 'nginx'])], 'systemctl status', 'deny'],
    ['glob argument', [allow('systemctl', ['status', '*'])], 'systemctl status nginx', 'allow'],
    ['glob * does not match an option', [allow('systemctl', ['status', '*'])], 'systemctl status --host=evil', 'deny'],
    ['glob ? does not match an option either', [allow('kill', ['?'])], 'kill -9', 'deny'],
    ['a glob starting with - may match options', [allow('ls', ['-*'])], 'ls -la', 'allow'],
    ['regex argument may match options', [allow('ls', ['/-[al]+/'])], 'ls -la', 'allow'],
    ['path glob argument', [allow('cat', ['/var/log/*'])], 'cat /var/log/syslog', 'allow'],
    ['path glob does not cross /', [allow('cat', ['/var/log/*'])], 'cat /var/log/nginx/access.log', 'deny'],
    ['.. never matches a glob', [allow('cat', ['/var/log/*'])], 'cat /var/log/..', 'deny'],
    ['.. in the middle never matches a glob', [allow('cat', ['/var/log/*/x'])], 'cat /var/log/../x', 'deny'],
    ['.. matches only when written exactly', [allow('cd', ['..'])], 'cd ..', 'allow'],
    ['a file name with dots is not ..', [allow('cat', ['/var/log/*'])], 'cat /var/log/x..y', 'allow'],
    ['** takes the remaining arguments', [allow('journalctl', ['-u', '*', '**'])], 'journalctl -u x -n 100 --no-pager', 'allow'],
    ['** may take none', [allow('journalctl', ['-u', '*', '**'])], 'journalctl -u x', 'allow'],
    ['** still needs the fixed ones', [allow('journalctl', ['-u', '*', '**'])], 'journalctl', 'deny'],
    ['regex argument is anchored', [allow('ping', ['/[0-9.]+/'])], 'ping 10.0.0.1;reboot', 'deny'],
    ['line regex over the displayed command', [allow('ping', undefined, { line: '/ping -c [0-9]+ [0-9.]+/' })], 'ping -c 3 10.0.0.1', 'allow'],
    ['line regex must match the whole line', [allow('ping', undefined, { line: '/ping -c [0-9]+/' })], 'ping -c 3 10.0.0.1', 'deny'],
  ];
  it.each(cases)('%s', (_n, rules, text, expected) => expect(decide(text, rules)).toBe(expected));

  it('a line regex sees arguments with spaces quoted, so [^ ]+ cannot span two of them', () => {
    const p = profile([allow('grep', undefined, { line: "/grep [^ ]+ '[^']*'/" })]);
    expect(decideCommand(line([cmd('grep', 'x', 'a b')]), p).action).toBe('allow');
    expect(decideCommand(line([cmd('grep', 'x y', 'a b')]), p).action).toBe('deny');
  });

  it('a dynamic argument matches no pattern, only "any arguments"', () => {
    const p = profile([allow('cat', ['*']), allow('ls')], 'restricted');
    expect(decideCommand(line([cmd('cat', dyn('$F', 'parameter-expansion'))]), p).perCommand[0]?.action).toBe('deny');
    expect(decideCommand(line([cmd('ls', dyn('$F', 'parameter-expansion'))]), p).perCommand[0]?.action).toBe('allow');
  });
});

describe('rules are ordered and the first match wins; nothing matched is denied', () => {
  it('deny before allow', () => {
    const rules: CommandRule[] = [{ program: 'systemctl', args: ['stop', '**'], action: 'deny' }, allow('systemctl')];
    expect(decide('systemctl stop nginx', rules)).toBe('deny');
    expect(decide('systemctl status nginx', rules)).toBe('allow');
  });

  it('allow before deny', () => {
    expect(decide('ls', [allow('ls'), { program: 'ls', action: 'deny' }])).toBe('allow');
  });

  it('the decision names the rule that decided', () => {
    const d = decideCommand(line([words('df -h')]), profile([allow('ls'), allow('df')]));
    expect(d).toMatchObject({ action: 'allow', rule: 1, code: null });
    expect(d.reason).toContain('rule 2');
  });

  it('default deny: an empty profile allows nothing', () => {
    const d = decideCommand(line([words('ls')]), profile([]));
    expect(d).toMatchObject({ action: 'deny', rule: null, code: 'COMMAND_DENIED' });
    expect(d.reason).toBe('no rule allows `ls`');
  });

  it('default deny in inspected mode too', () => {
    expect(decideCommand(line([words('ls')]), profile([], 'inspected')).action).toBe('deny');
  });
});

describe('modes', () => {
  const rules = [allow('ls'), { program: 'reboot', action: 'review' } as CommandRule];
  it.each(['restricted', 'inspected'] as const)('%s mode applies the rules and the construct limits', (mode) => {
    expect(decideCommand(line([words('ls')]), profile(rules, mode)).action).toBe('allow');
    expect(decideCommand(line([words('rm -rf /')]), profile(rules, mode)).action).toBe('deny');
    expect(decideCommand(line([words('reboot')]), profile(rules, mode)).action).toBe('review');
    expect(decideCommand(line([words('ls'), words('ls')], ['pipeline']), profile(rules, mode)).action).toBe('deny');
  });

  it('full mode allows everything but says what the rules would have done', () => {
    const d = decideCommand(line([words('rm -rf /')], ['redirection'], { error: 'x' }), profile(rules, 'full'));
    expect(d).toMatchObject({ action: 'allow', code: null, mode: 'full' });
    expect(d.reason).toMatch(/^full mode: recorded, not filtered \(restricted mode would refuse: /);
    expect(d.perCommand[0]?.action).toBe('deny');
  });

  it('full mode with nothing to refuse says so plainly', () => {
    expect(decideCommand(line([words('ls')]), profile(rules, 'full')).reason).toBe('full mode: recorded, not filtered');
  });

  it('an invalid profile denies everything, whatever its mode (fail closed)', () => {
    for (const mode of ['restricted', 'inspected', 'full'] as const) {
      const d = decideCommand(line([words('ls')]), profile([allow('/(/')], mode));
      expect(d.action).toBe('deny');
      expect(d.reason).toContain('invalid regular expression');
    }
  });
});

describe('constructs', () => {
  const ls = [allow('ls'), allow('df')];
  const always = SHELL_CONSTRUCTS.filter((c) => !['pipeline', 'and-or', 'sequence'].includes(c));
  it.each(always.map((c) => [c]))('%s is refused in restricted mode even when every composable form is allowed', (c) => {
    const d = decideCommand(line([words('ls')], [c]), profile(ls, 'restricted', ['pipeline', 'and-or', 'sequence']));
    expect(d.action).toBe('deny');
    expect(d.reason).toMatch(/^not allowed here: /);
  });

  it.each([['pipeline'], ['and-or'], ['sequence']] as const)('%s is refused unless the profile allows it', (c) => {
    const two = line([{ ...words('ls'), next: c === 'pipeline' ? '|' : c === 'and-or' ? '&&' : ';' }, words('df')], [c]);
    expect(decideCommand(two, profile(ls)).action).toBe('deny');
    expect(decideCommand(two, profile(ls, 'restricted', [c])).action).toBe('allow');
  });

  it('an allowed pipeline still checks every element', () => {
    const d = decideCommand(line([words('ls'), words('sh')], ['pipeline']), profile(ls, 'restricted', ['pipeline']));
    expect(d).toMatchObject({ action: 'deny' });
    expect(d.perCommand.map((v) => v.action)).toEqual(['allow', 'deny']);
    expect(d.reason).toContain('`sh`');
  });

  it('allowing one composable form does not allow another', () => {
    const d = decideCommand(line([words('ls'), words('df')], ['pipeline', 'sequence']), profile(ls, 'restricted', ['pipeline']));
    expect(d.action).toBe('deny');
    expect(d.reason).toContain('several commands');
  });

  it('a construct the engine has never heard of is refused', () => {
    const d = decideCommand(line([words('ls')], ['quantum-expansion']), profile(ls));
    expect(d.action).toBe('deny');
    expect(d.reason).toContain('quantum-expansion');
  });

  it('a parse error or an incomplete line is refused', () => {
    expect(decideCommand(line([words('ls')], [], { error: 'unexpected `)`' }), profile(ls)).reason).toContain('could not be understood');
    expect(decideCommand(line([words('ls')], [], { error: 'quote not closed', incomplete: true }), profile(ls)).reason).toContain('incomplete');
  });

  it('a dynamic program name is refused even if a rule would match its text', () => {
    const d = decideCommand(line([cmd(dyn('$X', 'parameter-expansion'))]), profile([allow('*'), allow('/.*/')]));
    expect(d.perCommand[0]).toMatchObject({ action: 'deny', rule: null });
  });

  it('a command with only an assignment or a redirection has no program and is refused', () => {
    const d = decideCommand(line([{ ...cmd(), assignments: ['X=1'] }]), profile([allow('*')], 'restricted'));
    expect(d.perCommand[0]?.action).toBe('deny');
  });

  it('an empty line is allowed (there is nothing to run)', () => {
    expect(decideCommand(line([]), profile([]))).toMatchObject({ action: 'allow', reason: 'nothing to run' });
  });
});

describe('programs with known shell escapes', () => {
  const cases: Array<[string, CommandRule[], string, string]> = [
    ['an editor through a glob rule', [allow('*')], 'vim /etc/hosts', 'deny'],
    ['an editor through a regex rule', [allow('/v.*/')], 'vi /etc/hosts', 'deny'],
    ['an editor named exactly', [allow('vim')], 'vim /etc/hosts', 'allow'],
    ['a pager through a glob rule', [allow('l*')], 'less /var/log/syslog', 'deny'],
    ['an interpreter through a glob rule', [allow('*')], 'awk {print}', 'deny'],
    ['a versioned interpreter', [allow('python*')], 'python3.11 -c x', 'deny'],
    ['a flavoured editor', [allow('vim*')], 'vim.tiny x', 'deny'],
    ['a shell by path through a path glob', [allow('/bin/*')], '/bin/sh', 'deny'],
    ['a shell by path named exactly', [allow('/bin/sh')], '/bin/sh', 'allow'],
    ['the bare name does not count for a path', [allow('sh')], '/bin/sh', 'deny'],
    ['sudo through a glob', [allow('s*')], 'sudo ls', 'deny'],
    ['env through a glob', [allow('*')], 'env ls', 'deny'],
    ['eval through a glob', [allow('*')], 'eval ls', 'deny'],
    ['find without -exec through a glob', [allow('f*')], 'find /var/log -name x', 'allow'],
    ['find -exec through a glob', [allow('f*')], 'find / -exec sh ;', 'deny'],
    ['find -execdir through a glob', [allow('f*')], 'find / -execdir sh ;', 'deny'],
    ['find -fprintf through a glob', [allow('f*')], 'find / -fprintf /etc/x %p', 'deny'],
    ['find -exec named exactly', [allow('find')], 'find / -exec sh ;', 'allow'],
    ['tar without a command option', [allow('t*')], 'tar tf x.tar', 'allow'],
    ['tar --to-command', [allow('t*')], 'tar xf x.tar --to-command=sh', 'deny'],
    ['tar with an abbreviated --to-command', [allow('t*')], 'tar xf x.tar --to-c=sh', 'deny'],
    ['tar --checkpoint-action', [allow('t*')], 'tar cf x.tar --checkpoint=1 --checkpoint-action=exec=sh .', 'deny'],
    ['tar -I inside a cluster', [allow('t*')], 'tar -xIsh -f x.tar', 'deny'],
    ['tar old-style bundle with I', [allow('t*')], 'tar xIf sh x.tar', 'deny'],
    ['systemctl edit through a glob', [allow('systemctl')], 'systemctl edit nginx', 'allow'],
    ['systemctl edit through a regex', [allow('/systemc.*/')], 'systemctl edit nginx', 'deny'],
    ['git always', [allow('g*')], 'git status', 'deny'],
    ['ssh always', [allow('s*')], 'ssh host', 'deny'],
    ['rsync always', [allow('r*')], 'rsync a b', 'deny'],
    ['review of an escape program needs the exact name', [{ program: 'v*', action: 'review' }], 'vi x', 'deny'],
    ['review of an escape program named exactly', [{ program: 'vi', action: 'review' }], 'vi x', 'review'],
  ];
  it.each(cases)('%s', (_n, rules, text, expected) => expect(decide(text, rules)).toBe(expected));

  it.each([
    'vi', 'vim', 'nvim', 'nano', 'emacs', 'ed', 'ex', 'less', 'more', 'most', 'man', 'awk', 'gawk', 'mawk', 'nawk', 'perl', 'python',
    'python3', 'ruby', 'node', 'lua', 'php', 'tclsh', 'expect', 'env', 'xargs', 'sudo', 'su', 'doas', 'pkexec', 'nice', 'nohup',
    'timeout', 'stdbuf', 'setsid', 'chroot', 'unshare', 'nsenter', 'busybox', 'watch', 'script', 'strace', 'ltrace', 'gdb', 'sh',
    'bash', 'dash', 'zsh', 'ksh', 'csh', 'tcsh', 'fish', 'eval', 'exec', 'source', '.', 'command', 'builtin', 'alias', 'trap', 'git',
    'ssh', 'scp', 'sftp', 'telnet', 'nc', 'socat', 'crontab', 'systemd-run', 'rsync',
  ].map((p) => [p]))('%s is on the escape list', (p) => {
    expect(shellEscapeOf(p, [])).not.toBeNull();
  });

  it.each(['ls', 'cat', 'df', 'uptime', 'journalctl', 'systemctl', 'find', 'tar', 'reboot'].map((p) => [p]))('%s alone is not', (p) => {
    expect(shellEscapeOf(p, [])).toBeNull();
  });
});

describe('review', () => {
  const rules: CommandRule[] = [allow('ls'), { program: 'reboot', action: 'review' }];
  it('a review rule holds the command', () => {
    expect(decideCommand(line([words('reboot')]), profile(rules))).toMatchObject({ action: 'review', rule: 1, code: 'COMMAND_REVIEW_REQUIRED' });
  });

  it('review if any element needs review and none is denied', () => {
    const d = decideCommand(line([words('ls'), words('reboot')], ['sequence']), profile(rules, 'restricted', ['sequence']));
    expect(d).toMatchObject({ action: 'review', rule: 1 });
  });

  it('a denied element beats a review', () => {
    const d = decideCommand(line([words('reboot'), words('rm x')], ['sequence']), profile(rules, 'restricted', ['sequence']));
    expect(d).toMatchObject({ action: 'deny', code: 'COMMAND_DENIED', rule: null });
  });
});

describe('characters and size', () => {
  const p = profile([allow('ls'), allow('*')]);
  const text = (source: string, commands = [words('ls')]): ParsedLine => ({ source, commands, constructs: [] });
  it.each([
    ['carriage return', 'ls\r'],
    ['escape', 'ls \u001b[2J'],
    ['bell', 'ls\u0007'],
    ['DEL', 'ls\u007f'],
    ['C1 CSI', 'ls\u009b2J'],
    ['zero-width joiner', 'l\u200ds'],
    ['right-to-left override', 'ls \u202ex'],
    ['first-strong isolate', 'ls \u2068x'],
    ['variation selector', 'ls\ufe0f'],
    ['soft hyphen', 'l\u00ads'],
    ['ideographic space', 'ls\u3000x'],
    ['tag character', 'ls\u{e0041}'],
  ])('%s anywhere in the line is refused', (_n, source) => {
    expect(decideCommand(text(source), p).action).toBe('deny');
  });

  it('tab and newline are ordinary', () => {
    expect(decideCommand(text('ls\t-l'), p).action).toBe('allow');
  });

  it('non-ASCII text in an argument is fine; in a program name it is not', () => {
    expect(decideCommand(text('ls café', [cmd('ls', 'café')]), p).action).toBe('allow');
    expect(decideCommand(text('\u0441at', [cmd('\u0441at')]), p).action).toBe('deny');
    expect(decideCommand(text('ｌｓ', [cmd('ｌｓ')]), p).action).toBe('deny');
  });

  it('a control character in an argument value (e.g. from quotes) is refused', () => {
    expect(decideCommand(text('ls x', [cmd('ls', 'a\nb')]), p).action).toBe('deny');
  });

  it(`a line of ${MAX_COMMAND_LINE_BYTES} bytes is fine, one more byte is not`, () => {
    const ok = `ls ${'a'.repeat(MAX_COMMAND_LINE_BYTES - 3)}`;
    expect(decideCommand(text(ok, [cmd('ls', 'x')]), p).action).toBe('allow');
    expect(decideCommand(text(`${ok}a`, [cmd('ls', 'x')]), p).reason).toContain('too long');
    // Bytes, not characters: 2000 two-byte letters are 4000+ bytes.
    expect(decideCommand(text(`ls ${'é'.repeat(2100)}`, [cmd('ls', 'x')]), p).action).toBe('deny');
  });

  it('a program name starting with - is refused', () => {
    expect(decideCommand(text('-x', [cmd('-x')]), profile([allow('/.*/')])).action).toBe('deny');
  });
});

describe('profiles in words', () => {
  const p: CommandProfile = {
    name: 'ct-diag',
    mode: 'restricted',
    rules: [
      { program: 'systemctl', args: ['status', '*'], action: 'allow' },
      { program: 'ls', action: 'allow' },
      { program: 'reboot', action: 'review' },
      { program: '/opt/ct/bin/*', action: 'allow' },
    ],
  };

  it('help says what is allowed, one sentence per rule', () => {
    expect(describeProfile(p)).toEqual([
      'systemctl status * (wildcard): allowed',
      'ls with any arguments: allowed',
      'reboot with any arguments: needs approval',
      'programs named like /opt/ct/bin/* with any arguments: allowed',
      'Anything not listed above is refused.',
      'Type one command per line; pipes, `;`, `&&`, redirections, wildcards and variables are refused.',
    ]);
  });

  it('tab completion offers only exact allow rules', () => {
    expect(allowedProgramNames(p)).toEqual(['ls', 'systemctl']);
  });

  it('profileErrors names the profile and the rule index', () => {
    const bad: CommandProfile = { name: 'x', mode: 'restricted', rules: [allow('ls'), allow('cat', ['[a-'])] };
    expect(profileErrors(bad)).toEqual(['profile x, rules[1].args[0]: glob "[a-" has an unclosed `[`']);
    expect(profileErrors({ ...bad, rules: [allow('ls', ['**', 'x'])] })).toEqual(['profile x, rules[0].args[0]: "**" may only be the last argument pattern']);
    expect(profileErrors({ ...bad, rules: [allow('ls', undefined, { line: 'ls' })] })[0]).toContain('must be a regular expression');
    expect(profileErrors({ ...bad, rules: [allow('**')] })[0]).toContain('not a program name');
  });
});
