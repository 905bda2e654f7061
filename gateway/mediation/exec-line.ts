import type { ParsedLine } from '../../policy/command-policy.js';
import { DEVICE_ENVIRONMENT } from './restricted-shell.js';
import { quoteArgv, quoteWord } from './shell-parse.js';

/**
 * The command an allowed exec request (`ssh gw#dev 'cmd'`) sends to the device in restricted and
 * inspected modes: what was decided, re-quoted so the device's shell cannot read it another way.
 * Each pipeline runs in a subshell, each program by `exec` (no function, alias or built-in of the
 * same name); `&&`, `||` and `;` join them as the vendor wrote. The environment closes the pagers'
 * and editors' shell escapes first. Anything else in the line (a redirection, a substitution, an
 * assignment) makes it unrunnable: null, and the caller refuses it.
 */
export function execLineFor(parsed: ParsedLine): string | null {
  if (parsed.error !== undefined || parsed.commands.length === 0) return null;
  const joinable = new Set(['pipeline', 'and-or', 'sequence']);
  if (parsed.constructs.some((c) => !joinable.has(c))) return null;
  let out = '';
  let stages: string[] = [];
  for (const c of parsed.commands) {
    if (c.nested || c.argv.length === 0 || c.assignments.length > 0 || c.redirections.length > 0) return null;
    if (c.argv.some((w) => !w.literal)) return null;
    stages.push(`exec ${quoteArgv(c.argv.map((w) => (w.literal ? w.value : '')))}`);
    if (c.next === '|') continue;
    if (c.next !== null && c.next !== '&&' && c.next !== '||' && c.next !== ';') return null;
    out += `( ${stages.join(' | ')} )${c.next === null ? '' : ` ${c.next} `}`;
    stages = [];
  }
  if (stages.length > 0) return null;
  const env = `export ${Object.entries(DEVICE_ENVIRONMENT).map(([k, v]) => `${k}=${quoteWord(v)}`).join(' ')}; unset LESSOPEN LESSCLOSE; `;
  return env + out.trim();
}
