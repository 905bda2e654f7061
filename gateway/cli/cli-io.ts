import { readFileSync } from 'node:fs';
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

/** Secrets come on standard input, never in arguments (they would show in `ps` and shell history). */
export function readStdinSecret(what: string): string {
  let text: string;
  try {
    text = readFileSync(0, 'utf8');
  } catch {
    throw new UsageError(`could not read the ${what} from standard input`);
  }
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
