import type { CommandDecision } from '../../policy/command-policy.js';
import type { InputGate } from '../broker/ssh-relay.js';
import type { Logger } from '../log/logger.js';
import type { CommandMediator } from './command-mediator.js';
import xtermHeadless from '@xterm/headless';
import { InspectedShell, type LineDecision } from './inspected-shell.js';

// The package is CommonJS: Node's ESM loader only offers its exports as the default.
const { Terminal } = xtermHeadless;

interface Relay {
  toDevice(data: Buffer): void;
  toUser(text: string): void;
}

/**
 * Full mode: nothing is held or cancelled; at each Enter the line on the screen (its own terminal
 * emulator, fed with the device's output) goes into the command log, the prompt cut off at its
 * first `$ `, `# `, `% ` or `> `. Best effort: the recording holds every byte regardless.
 */
export function commandLogGate(mediator: CommandMediator, size: { cols: number; rows: number }, log: Logger): InputGate {
  const term = new Terminal({ cols: size.cols, rows: size.rows, allowProposedApi: true, scrollback: 0 });
  const cursorLine = (): string => {
    const buf = term.buffer.active;
    let y = buf.cursorY + buf.viewportY;
    let text = buf.getLine(y)?.translateToString(true) ?? '';
    while (y > 0 && buf.getLine(y)?.isWrapped) {
      y -= 1;
      text = (buf.getLine(y)?.translateToString(false) ?? '') + text;
    }
    return text;
  };
  // What was typed since the last Enter: exact while it is plain text (a paste, fast typing whose
  // echo has not come back yet); once an editing key is pressed only the screen knows the line.
  let typed = '';
  let plain = true;
  return {
    gates: false,
    fromUser: async (chunk) => {
      for (const part of chunk.toString('utf8').split(/(\r)/)) {
        if (part !== '\r') {
          typed += part;
          if (/[\p{Cc}]/u.test(part)) plain = false;
          continue;
        }
        const m = /^.*?[$#%>] (.*)$/.exec(cursorLine());
        const line = (plain ? typed : (m?.[1] ?? '')).trim();
        typed = '';
        plain = true;
        if (line) await mediator.record(line).catch((err: Error) => log.warn('command line could not be logged', { error: err.message }));
      }
    },
    fromDevice: (chunk) => term.write(chunk),
    resize: (cols, rows) => { if (cols > 0 && rows > 0) term.resize(cols, rows); },
    dispose: () => term.dispose(),
  };
}

/**
 * Inspected mode: the vendor's keystrokes reach the device's shell only through the inspector,
 * which decides each command line at Enter by the profile (and logs it) and cancels what is refused.
 */
export function inspectedGate(mediator: CommandMediator, relay: () => Relay, size: { cols: number; rows: number }, log: Logger): InputGate {
  // The profile's full answer for a line held for review (the inspector passes the short form back).
  const held = new Map<string, { id: string; decision: CommandDecision }>();
  const shell = new InspectedShell({
    cols: size.cols, rows: size.rows,
    log: (message) => log.debug(message),
    decide: async (line): Promise<LineDecision> => {
      // Leaving the shell is always allowed (and logged): it runs nothing, and Ctrl-D does the same.
      if (/^\s*(exit|logout)(\s+\d{1,3})?\s*$/.test(line)) {
        await mediator.record(line);
        return { action: 'allow', reason: 'leaving the shell' };
      }
      const { decision, commandId } = await mediator.decide(line);
      if (decision.action === 'review') held.set(line, { id: commandId, decision });
      return { action: decision.action, reason: decision.reason };
    },
    review: async (line) => {
      const h = held.get(line);
      held.delete(line);
      if (!h) return { action: 'deny', reason: 'the held command was lost' };
      const d = await mediator.review(h.id, line, h.decision);
      return { action: d.action === 'allow' ? 'allow' : 'deny', reason: d.reason };
    },
    toDevice: (data) => relay().toDevice(data),
    toUser: (text) => relay().toUser(text),
    onDecided: (line, outcome) => {
      // Lines the profile decided are logged by decide/review; these are the gateway's own refusals.
      if ((outcome.by === 'gateway' || outcome.by === 'user') && line.trim() !== '') {
        void mediator.refused(line, outcome.reason).catch((err: Error) => log.warn('refused line could not be logged', { error: err.message }));
      }
    },
  });
  return {
    gates: true,
    fromUser: (chunk) => shell.fromUser(chunk),
    fromDevice: (chunk) => shell.fromDevice(chunk),
    resize: (cols, rows) => { if (cols > 0 && rows > 0) shell.resize(cols, rows); },
    dispose: () => shell.dispose(),
  };
}
