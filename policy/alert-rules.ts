import type { Role } from './types.js';
import { PRIVILEGED_ROLES } from './role-changes.js';

/**
 * Alerts (R-A.5b, R-5.5a, R-5.5c): which audited facts are worth telling someone about, how many
 * make one alert, how long an alert keeps quiet afterwards, and who hears of it. Pure: the gateway
 * counts, stores and delivers; this file decides.
 */

export const ALERT_KINDS = [
  'account_locked',
  'failed_sign_ins',
  'denied_commands',
  'command_held',
  'session_killed',
  'integrity_failure',
  'level3_download',
  'level3_session',
  'privileged_role',
  'node_lost',
  'delivery_queue',
] as const;
export type AlertKind = (typeof ALERT_KINDS)[number];

/** Syslog's severities (RFC 5424), most severe first: an alert's severity is one of them. */
export const ALERT_SEVERITIES = ['emerg', 'alert', 'crit', 'err', 'warning', 'notice', 'info'] as const;
export type AlertSeverity = (typeof ALERT_SEVERITIES)[number];

export interface AlertRule {
  enabled: boolean;
  severity: AlertSeverity;
  /** Facts with the same subject that make one alert (1: every fact). */
  threshold: number;
  /** The window the threshold is counted in. */
  windowMs: number;
  /** After an alert, more of the same kind and subject stay quiet this long (no storms). */
  suppressMs: number;
}

const MIN = 60_000;
const HOUR = 60 * MIN;

/** The defaults of `[alerts.<kind>]`: each key a hospital leaves out keeps its value here. */
export const DEFAULT_ALERT_RULES: Readonly<Record<AlertKind, AlertRule>> = {
  account_locked: { enabled: true, severity: 'warning', threshold: 1, windowMs: MIN, suppressMs: 15 * MIN },
  failed_sign_ins: { enabled: true, severity: 'warning', threshold: 5, windowMs: 10 * MIN, suppressMs: 30 * MIN },
  denied_commands: { enabled: true, severity: 'warning', threshold: 3, windowMs: 12 * HOUR, suppressMs: 12 * HOUR },
  command_held: { enabled: true, severity: 'notice', threshold: 1, windowMs: MIN, suppressMs: HOUR },
  session_killed: { enabled: true, severity: 'notice', threshold: 1, windowMs: MIN, suppressMs: HOUR },
  integrity_failure: { enabled: true, severity: 'crit', threshold: 1, windowMs: MIN, suppressMs: 24 * HOUR },
  level3_download: { enabled: true, severity: 'warning', threshold: 1, windowMs: MIN, suppressMs: 15 * MIN },
  level3_session: { enabled: true, severity: 'notice', threshold: 1, windowMs: MIN, suppressMs: HOUR },
  privileged_role: { enabled: true, severity: 'warning', threshold: 1, windowMs: MIN, suppressMs: MIN },
  node_lost: { enabled: true, severity: 'err', threshold: 1, windowMs: MIN, suppressMs: HOUR },
  delivery_queue: { enabled: true, severity: 'warning', threshold: 100, windowMs: MIN, suppressMs: HOUR },
};

/** Roles a new grant of which is itself worth an alert: they decide access, watch, or administer. */

/** Who hears of an alert: staff roles in the console, and the receivers outside the gateway. */
export const ALERT_RECEIVERS = ['webhook', 'syslog'] as const;
export type AlertReceiver = (typeof ALERT_RECEIVERS)[number];
export const ALERT_ROLES = ['admin', 'approver', 'device_manager', 'security'] as const satisfies readonly Role[];
export type AlertRole = (typeof ALERT_ROLES)[number];
export type AlertRecipient = AlertRole | AlertReceiver;
export type AlertRoutes = Readonly<Record<AlertRecipient, readonly AlertKind[]>>;

export const DEFAULT_ALERT_ROUTES: AlertRoutes = {
  security: ALERT_KINDS,
  admin: ALERT_KINDS,
  approver: [],
  device_manager: [],
  webhook: ALERT_KINDS,
  syslog: ALERT_KINDS,
};

export interface AlertSettings {
  rules: Readonly<Record<AlertKind, AlertRule>>;
  routes: AlertRoutes;
}

export const DEFAULT_ALERT_SETTINGS: AlertSettings = { rules: DEFAULT_ALERT_RULES, routes: DEFAULT_ALERT_ROUTES };

/** An audit entry as the rules read it, with the one fact the chain does not hold: the device's level now. */
export interface AuditFact {
  seq: number;
  type: string;
  actor: string;
  outcome: 'ok' | 'denied' | 'info';
  code: string | null;
  data: Readonly<Record<string, unknown>>;
  /** The level of data.device, when the entry names one the gateway knows (see needsDeviceLevel). */
  deviceLevel: number | null;
}

/** What one fact contributes: a kind, the subject it is about, and the sentence a person reads. */
export interface AlertCandidate {
  kind: AlertKind;
  subject: string;
  summary: string;
}

const str = (v: unknown): string => (typeof v === 'string' ? v : v === undefined || v === null ? '' : String(v));

/** Entries whose rule needs the device's level (the gateway looks it up before asking): session starts and downloads. */
export function needsDeviceLevel(type: string, data: Readonly<Record<string, unknown>>): boolean {
  return type === 'session.start' || (type === 'file.transferred' && data.op === 'download');
}

/**
 * The address a sign-in came from, without its port or front door: `ssh 10.1.2.3:51234` and
 * `web 10.1.2.3` are one source. The SSH front door always appends the client's port.
 */
export function sourceAddress(source: string): string {
  const m = /^(ssh|web) (.+)$/.exec(source);
  if (!m) return source;
  const [, door, rest] = m as unknown as [string, string, string];
  if (door === 'ssh') {
    const viaProxy = rest.replace(/ via ProxyJump$/, '');
    return viaProxy.replace(/:\d+$/, '');
  }
  return rest;
}

/**
 * The alert kind an audit entry counts towards, or null. Alerts (`alert.*`) and their
 * acknowledgements (`alerts.acknowledged`) never count: an alert must not raise another.
 */
export function alertCandidate(f: AuditFact): AlertCandidate | null {
  const d = f.data;
  if (f.type.startsWith('alert.')) return null;
  switch (f.type) {
    case 'account.locked':
      return { kind: 'account_locked', subject: str(d.user), summary: `Account ${str(d.user)} was locked until ${str(d.until)}${d.byHand ? ` by ${f.actor}` : ` after ${str(d.failures)} failed sign-ins`}.` };
    case 'login.failed': {
      const source = sourceAddress(str(d.source));
      if (source === '') return null;
      return { kind: 'failed_sign_ins', subject: source, summary: `Repeated failed sign-ins from ${source} (last as ${str(d.user) || f.actor}).` };
    }
    case 'command':
      if (f.outcome !== 'denied') return null;
      return { kind: 'denied_commands', subject: str(d.session), summary: `Commands denied in session ${str(d.session)} of ${f.actor} on ${str(d.device)} (last: ${str(d.line).slice(0, 200)}).` };
    case 'command.review_requested':
      return { kind: 'command_held', subject: str(d.command), summary: `${str(d.user)} on ${str(d.device)} waits for a review of: ${str(d.line).slice(0, 200)}` };
    case 'session.kill':
      return { kind: 'session_killed', subject: str(d.session), summary: `${f.actor} killed session ${str(d.session)} of ${str(d.user)} on ${str(d.device)}: ${str(d.reason).slice(0, 200)}` };
    case 'integrity.failed':
    case 'audit.verified': {
      if (f.type === 'audit.verified' && f.outcome !== 'denied') return null;
      const problems = Array.isArray(d.problems) ? d.problems.map(str) : [];
      const first = problems[0] ?? 'verification failed';
      return { kind: 'integrity_failure', subject: first.slice(0, 200), summary: `Integrity check failed: ${first.slice(0, 300)}${problems.length > 1 ? ` (and ${problems.length - 1} more)` : ''}` };
    }
    case 'file.transferred':
      if (f.deviceLevel !== 3 || d.op !== 'download' || f.outcome !== 'ok') return null;
      return { kind: 'level3_download', subject: str(d.session), summary: `${f.actor} downloaded ${str(d.path).slice(0, 200)} (${str(d.bytes)} bytes) from level-3 device ${str(d.device)}.` };
    case 'session.start':
      if (f.deviceLevel !== 3) return null;
      return { kind: 'level3_session', subject: str(d.session), summary: `${f.actor} started a ${str(d.protocol)} session on level-3 device ${str(d.device)} from ${str(d.client)}.` };
    case 'user.created':
    case 'user.updated':
    case 'role_change.confirmed': // a privileged role a second admin confirmed (S-1.3)…
    case 'user.roles_mapped': { // …or one mapped from the hospital's identity provider
      const roles = f.type === 'user.created' ? d.roles : f.type === 'user.updated' ? d.rolesAdded : d.added;
      const added = Array.isArray(roles) ? roles.map(str).filter((r) => (PRIVILEGED_ROLES as readonly string[]).includes(r)) : [];
      if (added.length === 0) return null;
      return { kind: 'privileged_role', subject: `${str(d.user)}:${added.join(',')}`, summary: `${f.actor} gave ${str(d.user)} the role${added.length > 1 ? 's' : ''} ${added.join(', ')}.` };
    }
    case 'node.lost':
      return { kind: 'node_lost', subject: `${str(d.node)}/${str(d.instance)}`, summary: `Gateway node ${str(d.node)} stopped sending heartbeats (noticed by ${str(d.detectedBy)}).` };
    default:
      return null;
  }
}

/** A delivery queue sampled by the gateway (the webhook's retries; the syslog spool): an alert when it holds `threshold` or more. */
export function queueCandidate(queue: string, node: string, depth: number, rule: AlertRule): AlertCandidate | null {
  if (depth < rule.threshold) return null;
  return { kind: 'delivery_queue', subject: `${node}/${queue}`, summary: `The ${queue} delivery queue on ${node} holds ${depth} undelivered items (alert at ${rule.threshold}).` };
}

/** Whether a counted fact raises: the threshold is reached within the window (suppression, kept by the gateway, does the rest). */
export function thresholdReached(countInWindow: number, rule: AlertRule): boolean {
  return rule.enabled && countInWindow >= rule.threshold;
}

/** The console roles that see alerts of a kind. */
export function rolesFor(kind: AlertKind, routes: AlertRoutes): AlertRole[] {
  return ALERT_ROLES.filter((r) => routes[r].includes(kind));
}

/** The kinds anyone holding these roles sees in the console. */
export function kindsVisibleTo(roles: readonly Role[], routes: AlertRoutes): AlertKind[] {
  return ALERT_KINDS.filter((k) => roles.some((r) => (ALERT_ROLES as readonly string[]).includes(r) && routes[r as AlertRole].includes(k)));
}

/** The receivers outside the gateway that get a kind. */
export function receiversFor(kind: AlertKind, routes: AlertRoutes): AlertReceiver[] {
  return ALERT_RECEIVERS.filter((r) => routes[r].includes(kind));
}

