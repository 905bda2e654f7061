/**
 * Inspected mode against real interactive shells (bash with readline, dash without line editing)
 * under a real PTY (util-linux `script`): the component sits between the test's keystrokes and
 * the shell exactly as it will sit in the broker's relay. A denied line is proven not to have run
 * on the device side: its marker file is absent after a later allowed command has run, which the
 * shell can only have reached after it finished with the denied line.
 */
import { execFileSync, spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { StringDecoder } from 'node:string_decoder';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { InspectedShell, type DecideContext, type LineDecision, type LineOutcome } from '../../gateway/mediation/inspected-shell.js';

const COLS = 80;
const ROWS = 24;
const PS1 = 'user@ct-01:~$ ';
const KEY = { up: '\u001b[A', left: '\u001b[D', right: '\u001b[C', backspace: '\u007f', ctrlA: '\u0001', ctrlW: '\u0017', ctrlX: '\u0018', ctrlC: '\u0003' };
const paste = (text: string): string => `\u001b[200~${text}\u001b[201~`;
/** Output without its CSI escape sequences: the text a user reads. */
const plain = (s: string): string => s.replace(new RegExp(`${String.fromCharCode(27)}\\[[0-9;?]*[A-Za-z]`, 'g'), '');

const dir = mkdtempSync(path.join(tmpdir(), 'portcullis-inspected-'));
let markers = 0;
/** A path under /tmp that only a denied command would create. */
const marker = (): string => path.join(dir, `marker-${++markers}`);

/** Stand-in for the profile engine: deny any line that mentions touch or rm. */
async function fakeDecide(line: string): Promise<LineDecision> {
  return /\b(touch|rm)\b/.test(line) ? { action: 'deny', reason: 'no rule allows `touch` or `rm`' } : { action: 'allow', reason: 'test profile' };
}

interface StartOptions {
  ps1?: string;
  history?: string[];
  decide?: (line: string, ctx: DecideContext) => Promise<LineDecision>;
  review?: (line: string, held: LineDecision, ctx: DecideContext) => Promise<LineDecision>;
}

class Device {
  output = '';
  notices = '';
  sent = '';
  readonly decided: Array<{ line: string } & LineOutcome> = [];
  readonly shell: InspectedShell;
  private readonly child: ChildProcessWithoutNullStreams;
  private readonly decoder = new StringDecoder('utf8');

  constructor(command: string, opts: StartOptions = {}) {
    const histfile = path.join(dir, `history-${++markers}`);
    writeFileSync(histfile, (opts.history ?? []).map((h) => `${h}\n`).join(''));
    this.child = spawn('script', ['-qfec', `stty cols ${COLS} rows ${ROWS}; exec ${command}`, '/dev/null'], {
      env: {
        PATH: process.env.PATH ?? '/usr/bin:/bin',
        TERM: 'xterm',
        HOME: dir,
        LANG: 'C.UTF-8',
        PS1: opts.ps1 ?? PS1,
        HISTFILE: histfile,
        LESS: '',
        LESSHISTFILE: '-',
      },
    });
    this.shell = new InspectedShell({
      cols: COLS,
      rows: ROWS,
      settleMs: 40,
      decide: opts.decide ?? fakeDecide,
      ...(opts.review ? { review: opts.review } : {}),
      toDevice: (data) => {
        this.sent += data.toString('latin1');
        this.child.stdin.write(data);
      },
      toUser: (text) => {
        this.notices += text;
      },
      onDecided: (line, outcome) => {
        this.decided.push({ line, ...outcome });
      },
    });
    this.child.stdout.on('data', (chunk: Buffer) => {
      this.output += this.decoder.write(chunk);
      this.shell.fromDevice(chunk);
    });
    this.child.stderr.on('data', (chunk: Buffer) => {
      this.output += chunk.toString('utf8');
    });
  }

  type(text: string): Promise<void> {
    return this.shell.fromUser(Buffer.from(text, 'utf8'));
  }

  async waitFor(cond: () => boolean, what: string, ms = 5000): Promise<void> {
    const deadline = Date.now() + ms;
    while (!cond()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; state ${this.shell.state}; output tail ${JSON.stringify(this.output.slice(-400))}; notices ${JSON.stringify(this.notices)}`);
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  atPrompt(): Promise<void> {
    return this.waitFor(() => this.shell.state === 'prompt', 'a recognised prompt');
  }

  /** Run an allowed command and wait for its output: everything typed before it has been dealt with by the shell. */
  async sync(): Promise<void> {
    const token = `sync-${++markers}`;
    await this.atPrompt();
    await this.type(`echo ${token}-$((40+2))\r`);
    await this.waitFor(() => this.output.includes(`${token}-42`), `the output of ${token}`);
    await this.atPrompt();
  }

  lastDecided(): { line: string } & LineOutcome {
    const last = this.decided[this.decided.length - 1];
    if (!last) throw new Error('nothing was decided');
    return last;
  }

  /** The shell itself (the child of `script`), for tests that stop and continue it. */
  shellPid(): number {
    const out = execFileSync('pgrep', ['-P', String(this.child.pid)], { encoding: 'utf8' }).trim().split('\n')[0] ?? '';
    const pid = Number(out);
    if (!Number.isInteger(pid) || pid <= 0) throw new Error(`no shell under script (${this.child.pid})`);
    return pid;
  }

  continueScript(): void {
    this.child.kill('SIGCONT');
  }

  async stop(): Promise<void> {
    this.shell.dispose();
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const closed = new Promise((r) => this.child.once('close', r));
    // `script` lingers two seconds on SIGTERM; on SIGKILL the PTY closes and the shell gets SIGHUP.
    this.child.kill('SIGKILL');
    await closed;
  }
}

const devices: Device[] = [];
function start(command: string, opts?: StartOptions): Device {
  const d = new Device(command, opts);
  devices.push(d);
  return d;
}
const bash = (opts?: StartOptions): Device => start('bash --norc --noprofile -i', opts);

afterEach(async () => {
  await Promise.all(devices.splice(0).map((d) => d.stop()));
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe('inspected mode reads the command line from the screen of a real shell', () => {
  it('passes an allowed command, whose output appears, and logs the exact line', async () => {
    const d = bash();
    await d.atPrompt();
    expect(d.shell.promptText).toBe(PS1);
    await d.type('echo "ok-$((6*7))"\r');
    await d.waitFor(() => d.output.includes('ok-42'), 'the command output');
    expect(d.lastDecided()).toMatchObject({ line: 'echo "ok-$((6*7))"', action: 'allow', by: 'policy' });
    expect(d.notices).toBe('');
    await d.atPrompt();
  });

  it('never runs a denied command, tells the user why, and leaves the shell usable', async () => {
    const d = bash();
    const m = marker();
    await d.atPrompt();
    await d.type(`touch ${m}\r`);
    expect(d.notices).toMatch(/portcullis: denied: no rule allows `touch` or `rm` \[COMMAND_DENIED\]\r\n$/);
    expect(d.lastDecided()).toMatchObject({ line: `touch ${m}`, action: 'deny', by: 'policy' });
    expect(d.sent).not.toMatch(/touch [^\r\n]*\r/);
    await d.sync();
    expect(existsSync(m)).toBe(false);
  });

  it('starts a new line with keys typed right after a denial, even when the shell is slow to answer the Ctrl-C', async () => {
    // CI saw this: the vendor types the next line as soon as the notice shows, and a loaded device
    // echoes it onto the cancelled line before bash has acted on the gateway's Ctrl-C. Stopping
    // the shell makes the device that slow on purpose.
    const d = bash();
    const m = marker();
    await d.atPrompt();
    await d.type(`touch ${m}`);
    await d.waitFor(() => d.output.includes(`touch ${m}`), 'the echo of the line');
    const pid = d.shellPid();
    process.kill(pid, 'SIGSTOP');
    const typed: Array<Promise<void>> = [];
    try {
      typed.push(d.type('\r'));
      await d.waitFor(() => d.notices.includes('[COMMAND_DENIED]'), 'the denial');
      for (const key of 'echo after-$((20+1))\r') typed.push(d.type(key));
      await new Promise((r) => setTimeout(r, 300));
    } finally {
      // `script` stops itself when its child stops: both go on.
      process.kill(pid, 'SIGCONT');
      d.continueScript();
    }
    await Promise.all(typed);
    await d.waitFor(() => d.output.includes('after-21'), 'the next line\'s output');
    expect(d.decided.map((x) => [x.line, x.action])).toEqual([[`touch ${m}`, 'deny'], ['echo after-$((20+1))', 'allow']]);
    await d.sync();
    expect(existsSync(m)).toBe(false);
  });

  it('denies a history recall (Up) of a denied line: the screen shows it, the typed bytes do not', async () => {
    const m = marker();
    const d = bash({ history: [`touch ${m}`] });
    await d.atPrompt();
    await d.type(`${KEY.up}\r`);
    expect(d.lastDecided()).toMatchObject({ line: `touch ${m}`, action: 'deny' });
    await d.sync();
    expect(existsSync(m)).toBe(false);
  });

  it('decides a line edited with Left, Backspace and Ctrl-W on what the screen shows', async () => {
    const d = bash();
    const m = marker();
    await d.atPrompt();
    // Typed bytes spell "tuch …o"; the shell's line is "touch …".
    const tail = `uch ${m}`;
    await d.type(`t${tail}`);
    await d.type(KEY.left.repeat(tail.length));
    await d.type('o\r');
    expect(d.lastDecided()).toMatchObject({ line: `touch ${m}`, action: 'deny' });

    // Typed bytes contain "touch"; the shell's line does not.
    await d.atPrompt();
    await d.type(`echo touchy${KEY.backspace.repeat(6)}edited-$((1+1))\r`);
    await d.waitFor(() => d.output.includes('edited-2'), 'the edited command output');
    expect(d.lastDecided()).toMatchObject({ line: 'echo edited-$((1+1))', action: 'allow' });

    // Ctrl-W is the shell's business: the gateway does not replay it, the screen alone decides.
    await d.atPrompt();
    await d.type(`echo touch ${m}`);
    await d.type(`${KEY.ctrlW}${KEY.ctrlW}`);
    await d.type('word-$((2+2))\r');
    await d.waitFor(() => d.output.includes('word-4'), 'the Ctrl-W edited output');
    expect(d.lastDecided()).toMatchObject({ line: 'echo word-$((2+2))', action: 'allow' });

    await d.sync();
    expect(existsSync(m)).toBe(false);
  });

  it('checks every line of a multi-line paste: one denied line and nothing runs', async () => {
    const d = bash();
    const m = marker();
    await d.atPrompt();
    await d.type(paste(`echo first-$((1+1))\rtouch ${m}\recho third-$((1+2))\r`));
    expect(d.notices).toContain(`portcullis: denied: line 2 of the paste (\`touch ${m}\`)`);
    expect(d.decided.map((x) => [x.line, x.action, x.pasteLine])).toEqual([
      ['echo first-$((1+1))', 'allow', 1],
      [`touch ${m}`, 'deny', 2],
    ]);
    await d.sync();
    expect(d.output).not.toContain('first-2');
    expect(d.output).not.toContain('third-3');
    expect(existsSync(m)).toBe(false);

    // The same without paste markers: one chunk with several line ends.
    const m2 = marker();
    await d.type(`echo again-$((1+1))\ntouch ${m2}\n`);
    expect(d.notices).toContain(`line 2 of the paste (\`touch ${m2}\`)`);
    await d.sync();
    expect(d.output).not.toContain('again-2');
    expect(existsSync(m2)).toBe(false);
  });

  it('runs an allowed multi-line paste line by line, the unfinished last line left for Enter', async () => {
    const d = bash();
    await d.atPrompt();
    await d.type('echo pre');
    await d.type(paste('fix-$((3+3))\necho p2-$((2*5))\necho p3-$((3*5))'));
    await d.waitFor(() => d.output.includes('prefix-6') && d.output.includes('p2-10'), 'the pasted lines output');
    expect(d.decided.map((x) => x.line)).toEqual(['echo prefix-$((3+3))', 'echo p2-$((2*5))']);
    await d.atPrompt();
    expect(d.output).not.toContain('p3-15');
    await d.type('\r');
    await d.waitFor(() => d.output.includes('p3-15'), 'the last pasted line, after Enter');
    expect(d.lastDecided()).toMatchObject({ line: 'echo p3-$((3*5))', action: 'allow' });
  });

  it('denies a line continuation and anything typed at a continuation prompt', async () => {
    const d = bash();
    const m = marker();
    await d.atPrompt();
    await d.type('echo cont \\\r');
    expect(d.lastDecided()).toMatchObject({ line: 'echo cont \\', action: 'deny', by: 'gateway' });
    expect(d.notices).toContain('line continuation');
    await d.sync();

    // An open quote (allowed by the stand-in engine) brings up the `> ` prompt; what follows is refused.
    await d.type("echo 'open\r");
    await d.waitFor(() => d.shell.state === 'continuation', 'the continuation prompt');
    await d.type(`touch ${m}\r`);
    expect(d.notices).toContain('waiting for the rest of a multi-line command');
    await d.sync();
    expect(existsSync(m)).toBe(false);
  });

  it('reads a long line that wraps across rows whole, also after the shell redrew it', async () => {
    const d = bash();
    const m = marker();
    await d.atPrompt();
    // The denied part is on the third screen row.
    await d.type(`echo ${'a'.repeat(150)} ; touch ${m}\r`);
    expect(d.lastDecided()).toMatchObject({ line: `echo ${'a'.repeat(150)} ; touch ${m}`, action: 'deny' });
    await d.sync();
    expect(existsSync(m)).toBe(false);

    // An insertion at the start makes readline redraw the rows below with line feeds.
    const long = 'b'.repeat(170);
    await d.type(`echo ${long}`);
    await d.type(KEY.ctrlA + KEY.right.repeat(5));
    await d.type('X\r');
    await d.waitFor(() => d.output.includes(`X${long}\r\n`), 'the long command output');
    expect(d.lastDecided()).toMatchObject({ line: `echo X${long}`, action: 'allow' });

    // The same with a key the gateway does not replay (Ctrl-W), so only the screen is read.
    await d.atPrompt();
    const m2 = marker();
    await d.type(`echo ${'c'.repeat(150)} zz`);
    await d.type(KEY.ctrlW + KEY.ctrlA);
    await d.type(`touch ${m2}; \r`);
    expect(d.lastDecided()).toMatchObject({ line: `touch ${m2}; echo ${'c'.repeat(150)}`, action: 'deny' });
    await d.sync();
    expect(existsSync(m2)).toBe(false);
  });

  it("passes Enter to a full-screen program (less) and checks lines again once it exits", async () => {
    const file = path.join(dir, 'numbered.txt');
    writeFileSync(file, Array.from({ length: 100 }, (_, i) => `line-${String(i + 1).padStart(3, '0')}\n`).join(''));
    const d = bash();
    const m = marker();
    await d.atPrompt();
    await d.type(`less ${file}\r`);
    await d.waitFor(() => d.output.includes('line-023') && d.output.includes('\u001b[?1049h'), 'less on the alternate screen');
    expect(d.output).not.toContain('line-024');
    await d.type('\r');
    await d.waitFor(() => d.output.includes('line-024'), 'less scrolling one line on Enter');
    expect(d.decided).toHaveLength(1);
    await d.type('q');
    await d.atPrompt();
    await d.type(`touch ${m}\r`);
    expect(d.lastDecided()).toMatchObject({ line: `touch ${m}`, action: 'deny' });
    await d.sync();
    expect(existsSync(m)).toBe(false);
  });

  it('denies Enter before any prompt was recognised', async () => {
    // A prompt without a usual ending is never recognised.
    const d = bash({ ps1: 'READY>' });
    const m = marker();
    const prompts = (): number => d.output.split('READY>').length - 1;
    await d.waitFor(() => prompts() === 1, 'the shell to start');
    await d.type(`touch ${m}\r`);
    // The denial sent Ctrl-C, so the shell dropped the line and printed a fresh prompt.
    await d.waitFor(() => prompts() === 2, 'the prompt after the cancellation');
    await d.type('echo fine\r');
    await d.waitFor(() => prompts() === 3, 'the prompt after the second cancellation');
    expect(d.decided.map((x) => [x.line, x.action, x.by])).toEqual([[`READY>touch ${m}`, 'deny', 'gateway'], ['READY>echo fine', 'deny', 'gateway']]);
    expect(d.notices).toContain('no shell prompt has been recognised yet');
    await new Promise((r) => setTimeout(r, 200));
    expect(d.output).not.toMatch(/^fine\r?$/m);
    expect(existsSync(m)).toBe(false);
  });

  it('holds an Enter typed ahead while a command runs until the prompt is back, then checks the line', async () => {
    const d = bash();
    const m = marker();
    await d.atPrompt();
    await d.type('sleep 0.5\r');
    await d.waitFor(() => d.shell.state === 'command', 'the command to start');
    // Once sleep runs, the terminal is in cooked mode and echoes the keys before the next prompt too.
    await new Promise((r) => setTimeout(r, 150));
    await d.type(`touch ${m}\r`);
    expect(plain(d.output)).toContain(`touch ${m}${PS1}touch ${m}`);
    expect(d.notices).toContain('Enter held: a command is still running');
    expect(d.lastDecided()).toMatchObject({ line: `touch ${m}`, action: 'deny', by: 'policy' });
    await d.sync();
    expect(existsSync(m)).toBe(false);

    // Typed ahead with an editing key the gateway cannot replay: the line is cancelled unread.
    const m2 = marker();
    await d.type('sleep 0.5\r');
    await d.waitFor(() => d.shell.state === 'command', 'the second command to start');
    await new Promise((r) => setTimeout(r, 150));
    await d.type(`touch ${m2}x${KEY.backspace}`);
    await d.type('\r');
    expect(d.notices).toContain('typed while a command was still running');
    await d.sync();
    expect(existsSync(m2)).toBe(false);
  });

  it('holds the Enter of a line needing review, queues later keys, and follows the approver', async () => {
    const approver: { answer?: (d: LineDecision) => void } = {};
    const d = bash({
      decide: async (line) => (line.includes('needs-approval') ? { action: 'review', reason: 'held for an approver' } : fakeDecide(line)),
      review: () => new Promise((resolve) => (approver.answer = resolve)),
    });
    const answer = (decision: LineDecision): void => {
      if (!approver.answer) throw new Error('no review is waiting');
      approver.answer(decision);
    };
    const ok = marker();
    const no = marker();
    await d.atPrompt();
    const held = d.type(`echo needs-approval > ${ok}\r`);
    await d.waitFor(() => approver.answer !== undefined, 'the review to start');
    expect(d.notices).toContain('portcullis: waiting for an approver to confirm this command…\r\n');
    const queued = d.type('echo queued-$((5+5))');
    await new Promise((r) => setTimeout(r, 100));
    expect(d.sent).not.toContain('queued');
    answer({ action: 'allow', reason: 'approved by ops' });
    await held;
    await queued;
    expect(d.decided[0]).toMatchObject({ line: `echo needs-approval > ${ok}`, action: 'allow', by: 'approver' });
    await d.waitFor(() => existsSync(ok), 'the approved command to run');
    await d.atPrompt();
    await d.type('\r');
    await d.waitFor(() => d.output.includes('queued-10'), 'the queued line to run');

    delete approver.answer;
    await d.atPrompt();
    const rejected = d.type(`echo needs-approval > ${no}\r`);
    await d.waitFor(() => approver.answer !== undefined, 'the second review to start');
    answer({ action: 'deny', reason: 'not during surgery hours' });
    await rejected;
    expect(d.notices).toContain('portcullis: denied: not during surgery hours [COMMAND_DENIED]');
    await d.sync();
    expect(existsSync(no)).toBe(false);
  });

  it('refuses Ctrl-X at the prompt (edit-and-execute, macros): it never reaches the shell', async () => {
    const d = bash();
    await d.atPrompt();
    await d.type('echo ctrl');
    await d.type(`${KEY.ctrlX}\u0005`);
    expect(d.notices).toContain('Ctrl-X key sequences');
    expect(d.sent).not.toContain(KEY.ctrlX);
    await d.type('-x\r');
    await d.waitFor(() => d.output.includes('ctrl-x\r\n'), 'the command output');
  });
});

describe('inspected mode with dash (no line editor: the terminal echoes keys)', () => {
  const dash = (): Device => start('dash -i');

  it('passes allowed lines and denies denied ones', async () => {
    const d = dash();
    const m = marker();
    await d.atPrompt();
    await d.type('echo dash-$((3+4))\r');
    await d.waitFor(() => d.output.includes('dash-7'), 'the command output');
    await d.atPrompt();
    await d.type(`touch ${m}\r`);
    expect(d.lastDecided()).toMatchObject({ line: `touch ${m}`, action: 'deny' });
    await d.sync();
    expect(existsSync(m)).toBe(false);
  });

  it('denies a line where an arrow key became characters the screen shows as ^[', async () => {
    const d = dash();
    await d.atPrompt();
    await d.type('echo arrow');
    await d.type(KEY.left);
    await d.type('\r');
    expect(d.lastDecided()).toMatchObject({ action: 'deny', by: 'gateway' });
    await d.sync();
    expect(d.output).not.toMatch(/^arrow/m);
  });
});
