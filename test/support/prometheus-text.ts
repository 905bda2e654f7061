import { spawn } from 'node:child_process';

/**
 * Prometheus's own check of an exposition (Debian's `promtool check metrics`, the parser and
 * linter of the Prometheus project): exit code and what it said.
 */
export function promtoolCheck(text: string): Promise<{ code: number; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('promtool', ['check', 'metrics'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d: Buffer) => { output += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { output += d.toString(); });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, output }));
    child.stdin.end(text);
  });
}

/**
 * The value of one sample, read from a text that promtool has accepted: `name` and every label
 * given must match (other labels may be present); several matching samples are summed.
 */
export function sample(text: string, name: string, labels: Record<string, string> = {}): number | null {
  let found: number | null = null;
  for (const line of text.split('\n')) {
    if (line.startsWith('#') || !line.startsWith(name)) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = new Map<string, string>();
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) have.set(l[1] as string, l[2] as string);
    if (!Object.entries(labels).every(([k, v]) => have.get(k) === v)) continue;
    found = (found ?? 0) + Number(m[3]);
  }
  return found;
}
