/**
 * Inspected mode (R-6.3c) when the device's shell answers the gateway's Ctrl-C but keeps the
 * denied line. CI caught real bash doing this once in some hundred runs of the stopped-shell test
 * in test/integration/inspected-shell-reader.test.ts: it echoed `^C`, redrew the cancelled line
 * (cursor moved back to its end) and dropped it only at the next interrupt. That race cannot be
 * provoked on demand, so the device here replays the bytes bash wrote in that run; everything
 * else is the real component.
 */
import { describe, expect, it } from 'vitest';
import { InspectedShell, type LineOutcome } from '../../gateway/mediation/inspected-shell.js';

const PROMPT = 'user@ct-01:~$ ';
const ON = '\u001b[?2004h';
const OFF = '\u001b[?2004l';

/** A bash-like device: echoes text, runs `echo` lines, and answers Ctrl-C the way it is told to. */
class ReplayedBash {
  readonly decided: Array<[string, string]> = [];
  notices = '';
  sent = '';
  line = '';
  /** How many Ctrl-Cs this device shrugs off (echo ^C, redraw the line) before it drops the line. */
  constructor(private keeps: number) {}

  readonly shell = new InspectedShell({
    cols: 80,
    rows: 24,
    settleMs: 20,
    echoTimeoutMs: 1500,
    decide: async (line) => (/\btouch\b/.test(line) ? { action: 'deny', reason: 'no rule allows `touch`' } : { action: 'allow', reason: 'test profile' }),
    toDevice: (data) => {
      this.sent += data.toString('latin1');
      // A real device answers a little later, never inside the write.
      setTimeout(() => this.answer(data.toString('latin1')), 5);
    },
    toUser: (text) => {
      this.notices += text;
    },
    onDecided: (line: string, outcome: LineOutcome) => {
      this.decided.push([line, outcome.action]);
    },
  });

  private write(text: string): void {
    this.shell.fromDevice(Buffer.from(text, 'latin1'));
  }

  start(): void {
    this.write(`${ON}${PROMPT}`);
  }

  private answer(data: string): void {
    for (const ch of data) {
      if (ch === '\u0003') {
        if (this.keeps > 0) {
          this.keeps--;
          // What bash wrote in the CI run: ^C, leave and re-enter readline, cursor back to the line's end.
          this.write(`^C${OFF}\r${ON}${'\u001b[C'.repeat(PROMPT.length + this.line.length)}`);
        } else {
          this.line = '';
          this.write(`^C${OFF}\r${ON}${OFF}\r\r\n${ON}${PROMPT}`);
        }
      } else if (ch === '\r') {
        const run = this.line;
        this.line = '';
        const out = /^echo (.*)$/.exec(run)?.[1];
        this.write(`\r\n${OFF}\r${out !== undefined ? `${out}\r\n` : ''}${ON}${PROMPT}`);
      } else {
        this.line += ch;
        this.write(ch);
      }
    }
  }

  async until(cond: () => boolean, what: string): Promise<void> {
    const deadline = Date.now() + 4000;
    while (!cond()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; sent ${JSON.stringify(this.sent)}; notices ${JSON.stringify(this.notices)}`);
      await new Promise((r) => setTimeout(r, 5));
    }
  }
}

const ctrlCs = (s: string): number => [...s].filter((c) => c === '\u0003').length;

async function denyThenType(device: ReplayedBash): Promise<void> {
  device.start();
  await device.until(() => device.shell.state === 'prompt', 'the prompt');
  await device.shell.fromUser(Buffer.from('touch /tmp/x'));
  await device.until(() => device.line === 'touch /tmp/x', 'the echo');
  const enter = device.shell.fromUser(Buffer.from('\r'));
  await device.until(() => device.notices.includes('[COMMAND_DENIED]'), 'the denial');
  // The vendor types the next line at once, before the shell has dealt with the Ctrl-C.
  const next = device.shell.fromUser(Buffer.from('echo after'));
  const nextEnter = device.shell.fromUser(Buffer.from('\r'));
  await Promise.all([enter, next, nextEnter]);
}

describe('inspected mode: a shell that keeps the denied line after Ctrl-C', () => {
  it('gets a second Ctrl-C, and the line typed meanwhile starts afresh and runs', async () => {
    const device = new ReplayedBash(1);
    await denyThenType(device);
    await device.until(() => device.decided.length === 2, 'the second decision');
    expect(device.decided).toEqual([['touch /tmp/x', 'deny'], ['echo after', 'allow']]);
    // The typed line reached the shell only after its fresh prompt: never glued to the denied one.
    expect(device.sent).toBe('touch /tmp/x\u0003\u0003echo after\r');
    device.shell.dispose();
  });

  it('a shell that drops the line at the first Ctrl-C gets only that one', async () => {
    const device = new ReplayedBash(0);
    await denyThenType(device);
    await device.until(() => device.decided.length === 2, 'the second decision');
    expect(device.decided).toEqual([['touch /tmp/x', 'deny'], ['echo after', 'allow']]);
    expect(ctrlCs(device.sent)).toBe(1);
    device.shell.dispose();
  });

  it('a shell that keeps the line whatever it is sent gets two Ctrl-Cs, not a stream, and nothing typed after runs', async () => {
    const device = new ReplayedBash(Number.POSITIVE_INFINITY);
    await denyThenType(device);
    await device.until(() => device.decided.length === 2, 'the second decision');
    // The line the shell holds is the denied one with the new keys glued on: refused, not run.
    expect(device.decided[1]?.[1]).toBe('deny');
    expect(device.sent).not.toMatch(/after\r/);
    expect(device.notices).toContain('type it again at the prompt');
    // Two for the denied line, one for the refused typed-ahead line.
    expect(ctrlCs(device.sent)).toBe(3);
    device.shell.dispose();
  });
});
