import { execFileSync } from 'node:child_process';
import { shellEnv } from './hermetic-shell.js';

/** Debian's `asciinema cat` insists on a terminal (/dev/tty): give it one with script(1). */
export function asciinemaCat(file: string): string {
  return execFileSync('script', ['-qec', `asciinema cat '${file}'`, '/dev/null'], { stdio: ['ignore', 'pipe', 'pipe'], env: shellEnv() }).toString();
}
