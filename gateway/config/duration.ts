const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

export const DURATION_PATTERN = /^(\d+)(ms|s|m|h|d)$/;

/** "90s", "15m", "8h", "180d" → milliseconds. */
export function parseDuration(text: string): number {
  const m = DURATION_PATTERN.exec(text.trim());
  if (!m) throw new Error(`not a duration: ${JSON.stringify(text)} (use e.g. "90s", "15m", "8h")`);
  return Number(m[1]) * (UNITS[m[2] as string] as number);
}

export function formatDuration(ms: number): string {
  if (ms % 86_400_000 === 0) return `${ms / 86_400_000}d`;
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000}h`;
  if (ms % 60_000 === 0) return `${ms / 60_000}m`;
  if (ms % 1000 === 0) return `${ms / 1000}s`;
  return `${ms}ms`;
}

/** Times on the command line: ISO 8601, `now`, or an offset from now such as `+2h` or `-5m`. */
export function parseTimeSpec(text: string, now: number): number {
  const t = text.trim();
  if (t === 'now') return now;
  const rel = /^([+-])(\d+(?:ms|s|m|h|d))$/.exec(t);
  if (rel) return now + (rel[1] === '-' ? -1 : 1) * parseDuration(rel[2] as string);
  if (!/^\d{4}-\d{2}-\d{2}/.test(t)) throw new Error(`not a time: ${JSON.stringify(text)} (use ISO 8601, "now", "+2h" or "-5m")`);
  const v = Date.parse(t);
  if (Number.isNaN(v)) throw new Error(`not a time: ${JSON.stringify(text)} (use ISO 8601, "now", "+2h" or "-5m")`);
  return v;
}
