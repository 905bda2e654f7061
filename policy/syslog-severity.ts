/**
 * The syslog severity of an audit entry (R-A.5c), so a SIEM can page on what matters without
 * knowing every entry type. Numbers are RFC 5424's (0 emergency … 7 debug).
 *
 * 1. An alert (`alert.*`) carries its own: data.severity as a name (`critical`, `warning`…) or
 *    a number 0-7; warning (4) when it names none or one that is not a severity. An alert that
 *    [alerts.routes] routes away from syslog (data.receivers without it) is informational (6):
 *    the feed still carries the entry, as it carries every entry, but pages nobody.
 * 2. A failed integrity check (`audit.verified` or `integrity.*` with data.ok = false, or denied):
 *    critical (2). The evidence may have been altered.
 * 3. Any other refusal (outcome `denied`): warning (4).
 * 4. Events security staff look at although nothing was refused (an account locked, a session
 *    killed or interrupted, access revoked, a TOTP reset): notice (5).
 * 5. Everything else: informational (6).
 */
export type SyslogSeverity = 0 | 1 | 2 | 3 | 4 | 5 | 6 | 7;

export const SEVERITY_NAMES: Readonly<Record<string, SyslogSeverity>> = {
  emergency: 0, emerg: 0, alert: 1, critical: 2, crit: 2, error: 3, err: 3, warning: 4, warn: 4, notice: 5, info: 6, informational: 6, debug: 7,
};

export const NOTICE_TYPES: ReadonlySet<string> = new Set([
  'account.locked', 'session.kill', 'session.interrupted', 'grant.revoked', 'request.revoked', 'user.totp_reset',
]);

export interface SeverityFacts {
  type: string;
  outcome: 'ok' | 'denied' | 'info';
  data: Readonly<Record<string, unknown>>;
}

export function syslogSeverity(e: SeverityFacts): SyslogSeverity {
  if (e.type.startsWith('alert.')) {
    if (Array.isArray(e.data.receivers) && !e.data.receivers.includes('syslog')) return 6;
    return namedSeverity(e.data.severity) ?? 4;
  }
  if ((e.type === 'audit.verified' || e.type.startsWith('integrity.')) && (e.data.ok === false || e.outcome === 'denied')) return 2;
  if (e.outcome === 'denied') return 4;
  if (NOTICE_TYPES.has(e.type)) return 5;
  return 6;
}

function namedSeverity(v: unknown): SyslogSeverity | null {
  if (typeof v === 'number') return Number.isInteger(v) && v >= 0 && v <= 7 ? (v as SyslogSeverity) : null;
  if (typeof v === 'string') return SEVERITY_NAMES[v.toLowerCase()] ?? null;
  return null;
}
