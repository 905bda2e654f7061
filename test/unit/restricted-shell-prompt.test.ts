import { execFileSync } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { decideCommand, type CommandDecision, type CommandProfile } from '../../policy/command-policy.js';
import { parseCommandLine, quoteArgv } from '../../gateway/mediation/shell-parse.js';
import {
  RestrictedShell,
  changeDirectory,
  deviceCommandLine,
  displayDirectory,
  type RestrictedShellHost,
  type RunResult,
  type ShellEnd,
} from '../../gateway/mediation/restricted-shell.js';
import { BYPASS_CORPUS, BYPASS_PROFILE } from '../support/bypass-corpus.js';
import { shellEnv } from '../support/hermetic-shell.js';

const ESC = '\u001b';
const PROMPT_MARK = `${ESC}[?2004h`; // written at every prompt
const CURSOR_MOVES = new RegExp(`${ESC}\\[\\d*[A-Z]`, 'g');
const KEY = {
  enter: '\r', backspace: '\u007f', left: `${ESC}[D`, right: `${ESC}[C`, up: `${ESC}[A`, down: `${ESC}[B`, home: `${ESC}[H`, end: `${ESC}[F`,
  delete: `${ESC}[3~`, ctrlA: '\u0001', ctrlC: '\u0003', ctrlD: '\u0004', ctrlE: '\u0005', ctrlF: '\u0006', ctrlK: '\u000b', ctrlL: '\u000c',
  ctrlU: '\u0015', ctrlW: '\u0017', tab: '\t', pasteStart: `${ESC}[200~`, pasteEnd: `${ESC}[201~`,
};

class MemoryChannel extends EventEmitter {
  out = '';
  write(data: string | Buffer): boolean {
    this.out += String(data);
    return true;
  }
  send(text: string): void {
    this.emit('data', Buffer.from(text, 'utf8'));
  }
}

const PROFILE: CommandProfile = {
  name: 'ct-diag',
  mode: 'restricted',
  allowConstructs: ['pipeline', 'and-or', 'sequence'],
  rules: [
    { program: 'ls', action: 'allow' },
    { program: 'df', action: 'allow' },
    { program: 'uptime', action: 'allow' },
    { program: 'true', action: 'allow' },
    { program: 'false', action: 'allow' },
    { program: 'wc', action: 'allow' },
    { program: 'systemctl', args: ['status', '*'], action: 'allow' },
    { program: 'top', action: 'allow' },
    { program: 'reboot', args: [], action: 'review' },
  ],
};

interface Harness {
  ch: MemoryChannel;
  shell: RestrictedShell;
  runs: { argv: string[]; cwd: string }[];
  pipelines: string[][][];
  decided: string[];
  builtins: string[][];
  forwarded: string[];
  ended: Promise<ShellEnd>;
  /** Send bytes and wait until the shell has shown `prompts` more prompts. */
  send(text: string, prompts?: number): Promise<void>;
  /** The text after the last prompt mark: the line as currently shown. */
  screenLine(): string;
}

async function until(cond: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

function harness(opts: { profile?: CommandProfile; review?: (d: CommandDecision) => Promise<CommandDecision>; run?: (argv: readonly string[]) => Promise<RunResult>; pipelines?: boolean; columns?: number } = {}): Harness {
  const profile = opts.profile ?? PROFILE;
  const ch = new MemoryChannel();
  const h = { runs: [], pipelines: [], decided: [], builtins: [], forwarded: [] } as Pick<Harness, 'runs' | 'pipelines' | 'decided' | 'builtins' | 'forwarded'>;
  const host: RestrictedShellHost = {
    profile,
    decide: async (line, parsed) => {
      h.decided.push(line);
      return decideCommand(parsed, profile);
    },
    run: async (argv, cwd) => {
      h.runs.push({ argv: [...argv], cwd });
      if (opts.run) return opts.run(argv);
      return { exitStatus: argv[0] === 'false' ? 1 : 0 };
    },
    forward: (data) => h.forwarded.push(data.toString('utf8')),
    onBuiltin: (_line, argv) => h.builtins.push([...argv]),
    ...(opts.review ? { review: async (_l, _p, d) => (opts.review as (d: CommandDecision) => Promise<CommandDecision>)(d) } : {}),
    ...(opts.pipelines === false
      ? {}
      : {
          runPipeline: async (stages) => {
            h.pipelines.push(stages.map((s) => [...s]));
            return { exitStatus: 0 };
          },
        }),
  };
  const shell = new RestrictedShell(ch, host, { promptLabel: 'alice@ct-01', columns: opts.columns ?? 200 });
  const ended = shell.start();
  const prompts = (): number => ch.out.split(PROMPT_MARK).length - 1;
  return {
    ...h,
    ch,
    shell,
    ended,
    async send(text, more = 0) {
      const before = prompts();
      ch.send(text);
      await until(() => prompts() >= before + more, `${more} more prompt(s)`);
      await new Promise((r) => setTimeout(r, 5));
    },
    screenLine() {
      const last = ch.out.slice(ch.out.lastIndexOf(PROMPT_MARK));
      const afterClear = last.slice(last.lastIndexOf(`\r${ESC}[J`) + 4);
      return afterClear.replace(CURSOR_MOVES, '').replace(/\r.*$/s, '').replace(/^alice@ct-01:[^$]*\$ /, '');
    },
  };
}

describe('the restricted prompt runs allowed commands and nothing else', () => {
  it('shows a prompt with the user, the device and the directory', async () => {
    const h = harness();
    await until(() => h.ch.out.includes('alice@ct-01:~$ '), 'prompt');
  });

  it('an allowed command runs with its literal argv in the current directory', async () => {
    const h = harness();
    await h.send("ls -la '/var/log'\r", 1);
    expect(h.runs).toEqual([{ argv: ['ls', '-la', '/var/log'], cwd: '' }]);
    expect(h.decided).toEqual(["ls -la '/var/log'"]);
  });

  it('a denied line prints one line with the reason and the code, and never reaches run', async () => {
    const h = harness();
    await h.send('cat /etc/shadow\r', 1);
    expect(h.runs).toEqual([]);
    const denials = h.ch.out.split('\r\n').filter((l) => l.startsWith('portcullis: denied: '));
    expect(denials).toEqual(['portcullis: denied: no rule allows `cat` [COMMAND_DENIED]']);
  });

  it('a reviewed command is refused when no approver can be reached', async () => {
    const h = harness();
    await h.send('reboot\r', 1);
    expect(h.runs).toEqual([]);
    expect(h.ch.out).toContain('no approver can be reached from this session [COMMAND_DENIED]');
  });

  it('a reviewed command waits, then runs when approved', async () => {
    const h = harness({ review: async (d) => ({ ...d, action: 'allow', code: null, reason: 'approved by bob' }) });
    await h.send('reboot\r', 1);
    expect(h.ch.out).toContain('portcullis: waiting for an approver: `reboot` needs');
    expect(h.ch.out).toContain('portcullis: approved');
    expect(h.runs.map((r) => r.argv)).toEqual([['reboot']]);
  });

  it('a reviewed command that is rejected does not run', async () => {
    const h = harness({ review: async (d) => ({ ...d, action: 'deny', code: 'COMMAND_DENIED', reason: 'rejected by bob' }) });
    await h.send('reboot\r', 1);
    expect(h.runs).toEqual([]);
    expect(h.ch.out).toContain('portcullis: denied: rejected by bob [COMMAND_DENIED]');
  });

  it('no line of the bypass corpus ever runs a command the profile does not allow on its own', async () => {
    const h = harness({ profile: BYPASS_PROFILE });
    for (const c of BYPASS_CORPUS) {
      // As a paste, so that the line reaches the shell exactly, line ends included.
      await h.send(`${KEY.pasteStart}${c.line}${KEY.pasteEnd}\r`, 1 + (c.line.match(/\r\n|\r|\n/g)?.length ?? 0));
      await h.send(KEY.ctrlU);
    }
    for (const r of h.runs) {
      const d = decideCommand(await parseCommandLine(quoteArgv(r.argv)), BYPASS_PROFILE);
      expect({ argv: r.argv, action: d.action }).toEqual({ argv: r.argv, action: 'allow' });
    }
    expect(h.runs.some((r) => r.argv[0] === 'reboot')).toBe(false);
  });
});

describe('line editing', () => {
  const cases: Array<[string, string, string[]]> = [
    ['backspace', `lsx${KEY.backspace}`, ['ls']],
    ['home and end with Ctrl-A / Ctrl-E', `s${KEY.ctrlA}l${KEY.ctrlE} -l`, ['ls', '-l']],
    ['home and end keys', `s${KEY.home}l${KEY.end} -l`, ['ls', '-l']],
    ['SS3 home key', `s${ESC}OHl`, ['ls']],
    ['left and insert', `ls-l${KEY.left}${KEY.left} `, ['ls', '-l']],
    ['right after left', `l ${KEY.left}${KEY.left}${KEY.right}s`, ['ls']],
    ['delete under the cursor', `lxs${KEY.left}${KEY.left}${KEY.delete}`, ['ls']],
    ['Ctrl-D deletes under the cursor on a non-empty line', `lxs${KEY.left}${KEY.left}${KEY.ctrlD}`, ['ls']],
    ['Ctrl-U kills to the start', `rm -rf /${KEY.ctrlU}ls`, ['ls']],
    ['Ctrl-K kills to the end', `ls -la${KEY.ctrlA}${KEY.ctrlF}${KEY.ctrlF}${KEY.ctrlK}`, ['ls']],
    ['Ctrl-W deletes the word before the cursor', `ls -la${KEY.ctrlW}-l`, ['ls', '-l']],
    ['Ctrl-L redraws and keeps the line', `ls${KEY.ctrlL} -l`, ['ls', '-l']],
    ['Alt-b moves a word left', `ls l${ESC}b-`, ['ls', '-l']],
    ['UTF-8 arriving in pieces', 'ls caf\u00e9', ['ls', 'café']],
  ];
  it.each(cases)('%s', async (_n, keys, argv) => {
    const h = harness();
    await h.send(`${keys}\r`, 1);
    expect(h.runs.map((r) => r.argv)).toEqual([argv]);
  });

  it('a UTF-8 character split across two packets is one character', async () => {
    const h = harness();
    const bytes = Buffer.from('ls é\r', 'utf8');
    h.ch.emit('data', bytes.subarray(0, 4));
    await h.send('', 0);
    h.ch.emit('data', bytes.subarray(4));
    await until(() => h.runs.length === 1, 'run');
    expect(h.runs[0]?.argv).toEqual(['ls', 'é']);
  });

  it('up and down walk the history and come back to the draft', async () => {
    const h = harness();
    await h.send('df -h\r', 1);
    await h.send('uptime\r', 1);
    await h.send(`ls${KEY.up}${KEY.up}`);
    expect(h.screenLine()).toBe('df -h');
    await h.send(`${KEY.down}${KEY.down}`);
    expect(h.screenLine()).toBe('ls');
    await h.send(`${KEY.up}\r`, 1);
    expect(h.runs.map((r) => r.argv)).toEqual([['df', '-h'], ['uptime'], ['uptime']]);
  });

  it('Ctrl-C cancels the line: nothing is decided or run', async () => {
    const h = harness();
    await h.send(`reboot${KEY.ctrlC}`, 1);
    expect(h.ch.out).toContain('^C\r\n');
    expect(h.decided).toEqual([]);
    await h.send('ls\r', 1);
    expect(h.runs.map((r) => r.argv)).toEqual([['ls']]);
  });

  it('Ctrl-D on an empty line leaves', async () => {
    const h = harness();
    h.ch.send(KEY.ctrlD);
    await expect(h.ended).resolves.toBe('eof');
    expect(h.ch.out).toContain('logout');
  });

  it('an empty line just prompts again', async () => {
    const h = harness();
    await h.send('   \r', 1);
    expect(h.decided).toEqual([]);
  });

  it('control characters in the line are shown, not obeyed', async () => {
    const h = harness();
    await h.send(`${KEY.pasteStart}ls ${ESC}[2J${KEY.pasteEnd}`);
    expect(h.screenLine()).toBe('ls ^[[2J');
    await h.send('\r', 1);
    expect(h.runs).toEqual([]);
    expect(h.ch.out).toContain('control character (U+001B');
  });

  it('long lines wrap at the terminal width and still run', async () => {
    const h = harness({ columns: 20 });
    const arg = 'x'.repeat(45);
    await h.send(`ls ${arg}${KEY.home}${KEY.end}${KEY.left}${KEY.right}\r`, 1);
    expect(h.runs.map((r) => r.argv)).toEqual([['ls', arg]]);
    expect(h.ch.out).toMatch(new RegExp(`${ESC}\\[\\d+A`)); // moved up across wrapped rows
  });
});

describe('pastes', () => {
  it('a paste of several lines is checked and run line by line, never as one', async () => {
    const h = harness();
    await h.send(`${KEY.pasteStart}ls\r\ndf -h\nrebo${KEY.pasteEnd}`, 2);
    expect(h.decided).toEqual(['ls', 'df -h']);
    expect(h.screenLine()).toBe('rebo');
    await h.send('ot\r', 1);
    expect(h.decided).toEqual(['ls', 'df -h', 'reboot']);
    expect(h.runs.map((r) => r.argv)).toEqual([['ls'], ['df', '-h']]);
  });

  it('a pasted line with a separator is one denied line', async () => {
    const h = harness({ profile: BYPASS_PROFILE });
    await h.send(`${KEY.pasteStart}ls; reboot\n${KEY.pasteEnd}`, 1);
    expect(h.runs).toEqual([]);
    expect(h.ch.out).toContain('several commands on one line');
  });

  it('paste markers split across packets still delimit the paste', async () => {
    const h = harness();
    await h.send(`${ESC}[20`);
    await h.send(`0~ls\n`);
    await h.send(`df${ESC}[2`);
    await h.send(`01~\r`, 2);
    expect(h.decided).toEqual(['ls', 'df']);
  });

  it('typed lines in one packet (no bracketed paste) run one after the other, not into the first command', async () => {
    const h = harness();
    await h.send('ls\rdf\r', 2);
    expect(h.runs.map((r) => r.argv)).toEqual([['ls'], ['df']]);
    expect(h.forwarded).toEqual([]);
  });

  it('CR LF is one Enter', async () => {
    const h = harness();
    await h.send('ls\r\n', 1);
    await h.send('df\r\n', 1);
    expect(h.decided).toEqual(['ls', 'df']);
  });
});

describe('while a command runs', () => {
  it('keystrokes go to it, and the prompt comes back when it ends', async () => {
    let finish: (r: RunResult) => void = () => undefined;
    const h = harness({ run: (argv) => (argv[0] === 'top' ? new Promise((r) => { finish = r; }) : Promise.resolve({ exitStatus: 0 })) });
    await h.send('top\r');
    await until(() => h.runs.length === 1, 'run');
    expect(h.ch.out.endsWith(`${ESC}[?2004l`)).toBe(true); // bracketed paste off for the program
    h.ch.send('q');
    h.ch.send(KEY.ctrlC);
    expect(h.forwarded).toEqual(['q', '\u0003']);
    const before = h.ch.out.split(PROMPT_MARK).length;
    finish({ exitStatus: 0 });
    await until(() => h.ch.out.split(PROMPT_MARK).length > before, 'prompt');
    await h.send('ls\r', 1);
    expect(h.runs.map((r) => r.argv)).toEqual([['top'], ['ls']]);
  });

  it('a command that fails to start is reported and the prompt comes back', async () => {
    const h = harness({ run: async () => { throw new Error('channel refused'); } });
    await h.send('ls\r', 1);
    expect(h.ch.out).toContain('portcullis: the command could not be run (channel refused)');
  });
});

describe('lists a profile allows are carried out here', () => {
  it('&&, || and ; follow bash semantics, each command its own run', async () => {
    const h = harness();
    await h.send('false && ls || df; uptime\r', 1);
    expect(h.runs.map((r) => r.argv)).toEqual([['false'], ['df'], ['uptime']]);
  });

  it('a pipeline runs as one request with every stage', async () => {
    const h = harness();
    await h.send('ls -l | wc -l\r', 1);
    expect(h.pipelines).toEqual([[['ls', '-l'], ['wc', '-l']]]);
    expect(h.runs).toEqual([]);
  });

  it('without runPipeline a pipeline is refused', async () => {
    const h = harness({ pipelines: false });
    await h.send('ls | wc\r', 1);
    expect(h.ch.out).toContain('pipes are not available');
  });

  it('a host that allows more than the shell can carry out still runs nothing (e.g. a full profile)', async () => {
    const full: CommandProfile = { name: 'full', mode: 'full', rules: [] };
    const h = harness({ profile: full });
    await h.send('ls > /tmp/x\r', 1);
    await h.send('ls $(id)\r', 1);
    expect(h.runs).toEqual([]);
    expect(h.ch.out).toContain('does not carry out');
  });
});

describe('built-ins', () => {
  it('cd changes the directory the next commands run in; pwd shows it', async () => {
    const h = harness();
    await h.send('cd /var/log\r', 1);
    await h.send('ls\r', 1);
    await h.send('cd ..\r', 1);
    await h.send('pwd\r', 1);
    await h.send('cd -\r', 1);
    await h.send('cd\r', 1);
    await h.send('cd ~/logs\r', 1);
    await h.send('ls\r', 1);
    expect(h.runs).toEqual([{ argv: ['ls'], cwd: '/var/log' }, { argv: ['ls'], cwd: 'logs' }]);
    expect(h.ch.out).toContain('\r\n/var\r\n');
    expect(h.ch.out).toContain('alice@ct-01:~/logs$ ');
    expect(h.decided).toEqual(['ls', 'ls']); // built-ins never reach policy or the device
    expect(h.builtins.map((b) => b[0])).toEqual(['cd', 'cd', 'pwd', 'cd', 'cd', 'cd']);
  });

  it.each([
    ['cd /tmp && ls', 'on its own line'],
    ['cd $HOME', 'on its own line'],
    ['cd -P', 'plain directory name'],
    ['cd a b', 'one directory'],
  ])('%j is refused', async (line, why) => {
    const h = harness();
    await h.send(`${line}\r`, 1);
    expect(h.ch.out).toContain(why);
    expect(h.shell.directory).toBe('');
  });

  it('history lists what was typed', async () => {
    const h = harness();
    await h.send('ls\r', 1);
    await h.send('cat /etc/shadow\r', 1);
    await h.send('history\r', 1);
    expect(h.ch.out).toContain('    1  ls\r\n    2  cat /etc/shadow\r\n    3  history\r\n');
  });

  it('help lists what the profile allows in words', async () => {
    const h = harness();
    await h.send('help\r', 1);
    expect(h.ch.out).toContain('  systemctl status * (wildcard): allowed\r\n');
    expect(h.ch.out).toContain('  reboot with no arguments: needs approval\r\n');
    expect(h.ch.out).toContain('Anything not listed above is refused.');
  });

  it('exit leaves', async () => {
    const h = harness();
    h.ch.send('exit\r');
    await expect(h.ended).resolves.toBe('exit');
  });
});

describe('tab completion offers allowed program names', () => {
  it('completes a unique prefix', async () => {
    const h = harness();
    await h.send(`sys${KEY.tab}nginx`);
    expect(h.screenLine()).toBe('systemctl nginx');
  });

  it('lists the choices on a second Tab when ambiguous', async () => {
    const h = harness();
    await h.send(`t${KEY.tab}`);
    expect(h.screenLine()).toBe('t');
    await h.send(KEY.tab);
    expect(h.ch.out).toContain('\r\ntop  true\r\n');
  });

  it('offers built-ins and nothing for arguments', async () => {
    const h = harness();
    await h.send(`he${KEY.tab}`);
    expect(h.screenLine()).toBe('help ');
    await h.send(`${KEY.ctrlU}ls /va${KEY.tab}`);
    expect(h.screenLine()).toBe('ls /va');
  });
});

describe('the device side of a command', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'portcullis-shell-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it.each(['sh', 'bash', 'dash'])('%s runs exactly the argv, in the directory, with pagers made safe', (shell) => {
    const sub = path.join(dir, "it's here");
    execFileSync('mkdir', ['-p', sub]);
    const line = deviceCommandLine([['printf', '[%s]\\n', 'a b', "'", '$(id)', '*']], sub);
    expect(execFileSync(shell, ['-c', line], { encoding: 'utf8', env: shellEnv(), stdio: ['ignore', 'pipe', 'pipe'] })).toBe("[a b]\n[']\n[$(id)]\n[*]\n");
    const env = execFileSync(shell, ['-c', deviceCommandLine([['env']], '')], { encoding: 'utf8', env: shellEnv({ LESSOPEN: '|x %s' }), stdio: ['ignore', 'pipe', 'pipe'] });
    expect(env).toMatch(/^LESSSECURE=1$/m);
    expect(env).toMatch(/^PAGER=cat$/m);
    expect(env).toMatch(/^SYSTEMD_PAGERSECURE=1$/m);
    expect(env).not.toMatch(/^LESSOPEN=/m);
    expect(execFileSync(shell, ['-c', deviceCommandLine([['pwd']], sub)], { encoding: 'utf8', env: shellEnv(), stdio: ['ignore', 'pipe', 'pipe'] })).toBe(`${sub}\n`);
  });

  it('exec runs the program on PATH, not a shell function or alias of that name', () => {
    const rc = path.join(dir, 'bashenv');
    writeFileSync(rc, 'echo() { printf "hijacked\\n"; }\nalias echo="printf hijacked"\n');
    const out = execFileSync('bash', ['-c', deviceCommandLine([['echo', 'hello']], '')], { encoding: 'utf8', env: shellEnv({ BASH_ENV: rc }), stdio: ['ignore', 'pipe', 'pipe'] });
    expect(out).toBe('hello\n');
  });

  it('a directory that does not exist stops the command', () => {
    let status = 0;
    try {
      execFileSync('sh', ['-c', deviceCommandLine([['echo', 'ran']], path.join(dir, 'missing'))], { encoding: 'utf8', env: shellEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    } catch (err) {
      status = (err as { status: number }).status;
    }
    expect(status).not.toBe(0);
  });

  it('a pipeline runs its stages joined by |', () => {
    const out = execFileSync('sh', ['-c', deviceCommandLine([['printf', 'a\\nb\\n'], ['wc', '-l']], '')], { encoding: 'utf8', env: shellEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    expect(out.trim()).toBe('2');
  });

  it.each([
    ['', '/var/log', '/var/log'],
    ['/var/log', '..', '/var'],
    ['/var/log', '../../..', '/'],
    ['/var/log', 'nginx/./x/..', '/var/log/nginx'],
    ['', 'logs', 'logs'],
    ['', '..', '..'],
    ['logs', '../..', '..'],
    ['logs', '~', ''],
    ['/x', '~/y', 'y'],
    ['/x', '/', '/'],
  ])('cd from %j to %j is %j', (from, to, expected) => {
    expect(changeDirectory(from, to)).toBe(expected);
  });

  it('directories are shown relative to the login directory', () => {
    expect(['', 'a/b', '/etc', '..'].map(displayDirectory)).toEqual(['~', '~/a/b', '/etc', '~/..']);
  });
});
