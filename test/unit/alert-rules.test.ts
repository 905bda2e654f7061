import { describe, expect, it } from 'vitest';
import { syslogSeverity } from '../../policy/syslog-severity.js';
import {
  ALERT_KINDS, alertCandidate, DEFAULT_ALERT_RULES, kindsVisibleTo, queueCandidate, receiversFor, rolesFor, sourceAddress,
  thresholdReached, type AuditFact,
} from '../../policy/alert-rules.js';
import { alertSettings } from '../../gateway/alerts/alert-settings.js';
import { ConfigError, parseConfig } from '../../gateway/config/load.js';

/** Issue 14 (R-A.5b, R-5.5a, R-5.5c): which audited facts make which alerts, and who hears of them. */
const fact = (type: string, data: Record<string, unknown>, extra: Partial<AuditFact> = {}): AuditFact => ({
  seq: 7, type, actor: 'vic', outcome: 'info', code: null, data, deviceLevel: null, ...extra,
});

describe('alert rules (policy/alert-rules.ts)', () => {
  it('counts failed sign-ins by address, whichever front door and port they came through', () => {
    expect(sourceAddress('ssh 10.1.2.3:51234')).toBe('10.1.2.3');
    expect(sourceAddress('web 10.1.2.3')).toBe('10.1.2.3');
    expect(sourceAddress('ssh ::1:40000')).toBe('::1');
    expect(sourceAddress('ssh 10.1.2.3:51234 via ProxyJump')).toBe('10.1.2.3');
    expect(alertCandidate(fact('login.failed', { user: 'mallory', source: 'ssh 10.9.9.9:4242' }, { outcome: 'denied' })))
      .toMatchObject({ kind: 'failed_sign_ins', subject: '10.9.9.9' });
  });

  it('derives each default kind from the fact the audit log already holds, and nothing from alerts themselves', () => {
    const kinds = [
      alertCandidate(fact('account.locked', { user: 'mallory', failures: 5, until: 'x' })),
      alertCandidate(fact('command', { session: 's1', device: 'd', line: 'rm -rf /' }, { outcome: 'denied' })),
      alertCandidate(fact('command.review_requested', { command: 'c1', user: 'vic', device: 'd', line: 'reboot' })),
      alertCandidate(fact('session.kill', { session: 's1', user: 'vic', device: 'd', reason: 'r' }, { actor: 'sam' })),
      alertCandidate(fact('integrity.failed', { problems: ['recording r1: SHA-256 does not match'] }, { outcome: 'denied' })),
      alertCandidate(fact('audit.verified', { problems: ['audit entry 4: edited'] }, { outcome: 'denied' })),
      alertCandidate(fact('file.transferred', { session: 's1', device: 'ct', op: 'download', path: '/x', bytes: 3 }, { outcome: 'ok', deviceLevel: 3 })),
      alertCandidate(fact('session.start', { session: 's2', device: 'ct', protocol: 'ssh' }, { deviceLevel: 3 })),
      alertCandidate(fact('user.updated', { user: 'eve', roles: ['vendor', 'security'], rolesAdded: ['security'] }, { actor: 'admin' })),
      alertCandidate(fact('node.lost', { node: 'gw-b', instance: 'i1', detectedBy: 'gw-a' })),
    ].map((c) => c?.kind);
    expect(kinds).toEqual([
      'account_locked', 'denied_commands', 'command_held', 'session_killed', 'integrity_failure', 'integrity_failure',
      'level3_download', 'level3_session', 'privileged_role', 'node_lost',
    ]);
    expect(queueCandidate('webhook', 'gw-a', 100, DEFAULT_ALERT_RULES.delivery_queue)?.kind).toBe('delivery_queue');
    expect(queueCandidate('webhook', 'gw-a', 99, DEFAULT_ALERT_RULES.delivery_queue)).toBeNull();
  });

  it('leaves out what is not worth an alert', () => {
    expect(alertCandidate(fact('command', { session: 's1' }, { outcome: 'ok' }))).toBeNull();
    expect(alertCandidate(fact('audit.verified', { problems: [] }, { outcome: 'ok' }))).toBeNull();
    // Level 2, an upload, a failed download: no level-3 download alert.
    expect(alertCandidate(fact('file.transferred', { op: 'download' }, { outcome: 'ok', deviceLevel: 2 }))).toBeNull();
    expect(alertCandidate(fact('file.transferred', { op: 'upload' }, { outcome: 'ok', deviceLevel: 3 }))).toBeNull();
    expect(alertCandidate(fact('file.transferred', { op: 'download' }, { outcome: 'info', deviceLevel: 3 }))).toBeNull();
    expect(alertCandidate(fact('session.start', { session: 's' }, { deviceLevel: 2 }))).toBeNull();
    // A vendor role, or a change that adds no role, is not privileged.
    expect(alertCandidate(fact('user.created', { user: 'v', roles: ['vendor'] }))).toBeNull();
    expect(alertCandidate(fact('user.updated', { user: 'v', roles: ['security'] }))).toBeNull();
    expect(alertCandidate(fact('alert.account_locked', { user: 'x' }))).toBeNull();
    expect(alertCandidate(fact('alerts.acknowledged', { alert: 'al-1' }))).toBeNull();
    expect(thresholdReached(4, DEFAULT_ALERT_RULES.failed_sign_ins)).toBe(false);
    expect(thresholdReached(5, DEFAULT_ALERT_RULES.failed_sign_ins)).toBe(true);
    expect(thresholdReached(9, { ...DEFAULT_ALERT_RULES.failed_sign_ins, enabled: false })).toBe(false);
  });

  it('routes kinds to roles and receivers; syslog carries an alert\'s own severity only where routed', () => {
    const { routes } = alertSettings(parseConfig('[alerts.routes]\nadmin = ["integrity_failure", "node_lost"]\nwebhook = []\napprover = ["all"]\n', '/x.toml').alerts);
    expect(rolesFor('integrity_failure', routes)).toEqual(['admin', 'approver', 'security']);
    expect(rolesFor('account_locked', routes)).toEqual(['approver', 'security']);
    expect(kindsVisibleTo(['admin'], routes)).toEqual(['integrity_failure', 'node_lost']);
    expect(kindsVisibleTo(['vendor'], routes)).toEqual([]);
    expect(kindsVisibleTo(['device_manager'], routes)).toEqual([]);
    expect(receiversFor('account_locked', routes)).toEqual(['syslog']);
    // The SIEM feed carries every alert entry; routing decides whether it pages (its severity) or not (informational).
    expect(syslogSeverity({ type: 'alert.integrity_failure', outcome: 'info', data: { severity: 'crit', receivers: ['syslog'] } })).toBe(2);
    expect(syslogSeverity({ type: 'alert.integrity_failure', outcome: 'info', data: { severity: 'crit', receivers: ['webhook'] } })).toBe(6);
    expect(syslogSeverity({ type: 'login.failed', outcome: 'info', data: { severity: 'crit' } })).toBe(6);
    expect(syslogSeverity({ type: 'alert.x', outcome: 'info', data: { severity: 'loud' } })).toBe(4);
  });
});

describe('[alerts] and [integrity] in gateway.config.toml', () => {
  const errorOf = (text: string): ConfigError => {
    try {
      parseConfig(text, '/etc/portcullis/gateway.config.toml');
    } catch (err) {
      if (err instanceof ConfigError) return err;
      throw err;
    }
    throw new Error('expected a ConfigError');
  };

  it('keeps every default a hospital leaves out and takes what it sets', () => {
    const c = parseConfig('[alerts.failed_sign_ins]\nthreshold = 20\nwindow = "15m"\n[alerts.level3_session]\nenabled = false\n[integrity]\ninterval = "1h"\n', '/x.toml');
    const s = alertSettings(c.alerts);
    expect(s.rules.failed_sign_ins).toEqual({ ...DEFAULT_ALERT_RULES.failed_sign_ins, threshold: 20, windowMs: 15 * 60_000 });
    expect(s.rules.level3_session.enabled).toBe(false);
    expect(s.rules.integrity_failure).toEqual(DEFAULT_ALERT_RULES.integrity_failure);
    expect(s.routes.security).toEqual(ALERT_KINDS);
    expect(c.integrity).toEqual({ enabled: true, interval: 3_600_000 });
    expect(parseConfig('', '/x.toml').integrity.interval).toBe(15 * 60_000);
  });

  it('refuses an unknown kind, an unknown severity, a zero threshold, an unknown recipient, with the key', () => {
    expect(errorOf('[alerts.lockout]\nthreshold = 3\n').key).toBe('alerts.lockout');
    const sev = errorOf('[alerts.node_lost]\nseverity = "high"\n');
    expect(sev.key).toBe('alerts.node_lost.severity');
    expect(sev.message).toContain('emerg, alert, crit, err, warning, notice, info');
    expect(errorOf('[alerts.failed_sign_ins]\nthreshold = 0\n').key).toBe('alerts.failed_sign_ins.threshold');
    expect(errorOf('[alerts.routes]\nvendor = ["all"]\n').key).toBe('alerts.routes.vendor');
    expect(errorOf('[alerts.routes]\nwebhook = ["everything"]\n').message).toContain('expected an alert kind');
    expect(errorOf('[integrity]\ninterval = "500ms"\n').key).toBe('integrity.interval');
  });
});
