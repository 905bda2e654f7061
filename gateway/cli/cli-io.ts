import { closeSync, openSync, readFileSync, writeSync } from 'node:fs';
import tty from 'node:tty';
import { parseArgs, type ParseArgsConfig } from 'node:util';

export class UsageError extends Error {}

export type Options = NonNullable<ParseArgsConfig['options']>;

export const COMMON_OPTIONS = {
  config: { type: 'string' },
  json: { type: 'boolean', default: false },
  help: { type: 'boolean', short: 'h', default: false },
} as const satisfies Options;

/**
 * `--from -5m` reads as an option followed by a negative relative time, not as two options:
 * parseArgs alone calls it ambiguous. Joined as `--from=-5m` for options that take a value.
 */
function joinNegativeValues(args: string[], options: Options): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i] as string;
    const next = args[i + 1];
    const name = a.startsWith('--') && !a.includes('=') ? a.slice(2) : null;
    if (name !== null && options[name]?.type === 'string' && next !== undefined && /^-\d/.test(next)) {
      out.push(`${a}=${next}`);
      i += 1;
    } else out.push(a);
  }
  return out;
}

export function parse<O extends Options>(args: string[], options: O, positionals = 0) {
  try {
    const all = { ...COMMON_OPTIONS, ...options };
    const r = parseArgs({ args: joinNegativeValues(args, all), options: all, allowPositionals: true, strict: true });
    if (r.positionals.length > positionals) throw new UsageError(`unexpected argument ${JSON.stringify(r.positionals[positionals])}`);
    return r;
  } catch (err) {
    if (err instanceof UsageError) throw err;
    throw new UsageError((err as Error).message);
  }
}

let stdinText: string | null = null;
let actorCredentialsFirst = false;

function stdinAll(what: string): string {
  if (stdinText === null) {
    try {
      stdinText = readFileSync(0, 'utf8');
    } catch {
      throw new UsageError(`could not read the ${what} from standard input`);
    }
  }
  return stdinText;
}

/** With --actor-credentials-stdin, standard input begins with the actor's two lines; a secret a command reads (--password-stdin) is what follows them. */
export function actorCredentialsComeFirstOnStdin(): void {
  actorCredentialsFirst = true;
}

const FIRST_TWO_LINES = /^([^\n]*)\n([^\n]*)(?:\n|$)/;

/** --actor-credentials-stdin: line 1 of standard input is the actor's password, line 2 their current TOTP code. */
export function readActorCredentials(): { password: string; totp: string } {
  const m = FIRST_TWO_LINES.exec(stdinAll("actor's password and TOTP code"));
  const password = m?.[1]?.replace(/\r$/, '') ?? '';
  const totp = m?.[2]?.replace(/\r$/, '').trim() ?? '';
  if (!password || !totp) throw new UsageError('--actor-credentials-stdin: standard input must begin with two lines: the password, then the current TOTP code');
  return { password, totp };
}

/** Secrets come on standard input, never in arguments (they would show in `ps` and shell history). */
export function readStdinSecret(what: string): string {
  let text = stdinAll(what);
  if (actorCredentialsFirst) text = text.slice(FIRST_TWO_LINES.exec(text)?.[0].length ?? text.length);
  const value = text.replace(/\r?\n$/, '');
  if (value.length === 0) throw new UsageError(`the ${what} on standard input is empty`);
  return value;
}

export function required(value: string | undefined, flag: string): string {
  if (value === undefined || value === '') throw new UsageError(`--${flag} is required`);
  return value;
}

export class Output {
  constructor(readonly json: boolean) {}

  /** JSON mode prints the object; text mode prints the lines. */
  result(obj: unknown, lines: string[]): void {
    if (this.json) process.stdout.write(`${JSON.stringify(obj, null, 2)}\n`);
    else if (lines.length) process.stdout.write(`${lines.join('\n')}\n`);
  }
}

/**
 * Asks on the controlling terminal (/dev/tty) with echo off, so that standard input stays free for
 * data and the answer shows neither on screen nor in the shell's history. Null when the process
 * has no terminal (a pipeline, a service, a test): the caller then needs another proof.
 */
export async function askTerminalHidden(question: string): Promise<string | null> {
  let fd: number;
  try {
    fd = openSync('/dev/tty', 'r+');
  } catch {
    return null;
  }
  if (!tty.isatty(fd)) {
    closeSync(fd);
    return null;
  }
  const input = new tty.ReadStream(fd);
  // Echo off before the prompt shows: whatever is typed once it is visible is never echoed.
  input.setRawMode(true);
  writeSync(fd, question);
  return new Promise<string>((resolve, reject) => {
    let text = '';
    const finish = (err: Error | null): void => {
      input.off('data', onData);
      input.setRawMode(false);
      writeSync(fd, '\n');
      input.destroy();
      if (err) reject(err);
      else resolve(text);
    };
    const onData = (buf: Buffer): void => {
      for (const ch of buf.toString('utf8')) {
        if (ch === '\r' || ch === '\n') return finish(null);
        if (ch === '\u0003' || ch === '\u0004') return finish(new UsageError('interrupted at the prompt; nothing was done'));
        if (ch === '\u007f' || ch === '\b') text = [...text].slice(0, -1).join('');
        else if (ch === '\u0015') text = '';
        else if (ch >= ' ') text += ch;
      }
    };
    input.on('data', onData);
  });
}
