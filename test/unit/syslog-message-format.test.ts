import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { canonicalJson } from '../../gateway/audit/canonical-json.js';
import { syslogExportFromConfig } from '../../gateway/audit/syslog-from-config.js';
import { escapeSdValue, frame, syslogMessage, type SyslogFormat } from '../../gateway/audit/syslog-message.js';
import { ConfigError, parseConfig } from '../../gateway/config/load.js';
import { createLogger } from '../../gateway/log/logger.js';
import type { AuditEntry, Store } from '../../gateway/store/store.js';
import { syslogSeverity } from '../../policy/syslog-severity.js';
import { makeTestCa } from '../support/rsyslog.js';

// R-A.5c: the SIEM feed's wire format (RFC 5424 with RFC 5425/6587 framing) and its configuration.
const FORMAT: SyslogFormat = { facility: 10, hostname: 'gw-a', appName: 'portcullis', sdId: 'portcullis@32473', maxBytes: 8192 };
const entry = (over: Partial<AuditEntry> = {}): AuditEntry => ({
  seq: 42, ts: '2026-12-06T09:30:00.123Z', type: 'login.failed', actor: 'mallory', outcome: 'denied', code: 'AUTH_FAILED',
  data: { address: '10.0.0.9', user: 'vera' }, channel: null, source: null, prevHash: 'a'.repeat(64), hash: 'b'.repeat(64), ...over,
});
const BOM = '\uFEFF';

describe('an audit entry as an RFC 5424 message', () => {
  it('carries PRI, the entry time, MSGID = type, seq and hash as structured data, and the entry as canonical JSON after a BOM', () => {
    const e = entry();
    const text = syslogMessage(e, FORMAT).toString('utf8');
    expect(text).toBe(`<84>1 2026-12-06T09:30:00.123Z gw-a portcullis - login.failed [portcullis@32473 seq="42" hash="${'b'.repeat(64)}" prevHash="${'a'.repeat(64)}" actor="mallory" outcome="denied" code="AUTH_FAILED"] ${BOM}${canonicalJson(e)}`);
    // authpriv (10) × 8 + warning (4) = 84; no code, no code parameter.
    expect(syslogMessage(entry({ code: null, outcome: 'ok', type: 'login.ok' }), FORMAT).toString()).toMatch(/^<86>1 .* login\.ok \[portcullis@32473 [^\]]*outcome="ok"\] /);
  });

  it('escapes ", \\ and ] in parameter values and never lets a control character into the header', () => {
    expect(escapeSdValue('a"b\\c]d')).toBe('a\\"b\\\\c\\]d');
    const text = syslogMessage(entry({ actor: 'evil"] [x@1 seq="1"]\nline', type: 'weird type\u00e9' }), FORMAT).toString('utf8');
    expect(text).toContain('actor="evil\\"\\] [x@1 seq=\\"1\\"\\]\uFFFDline"');
    expect(text).toContain(' weird_type_ [');
    expect(text.split('\n')).toHaveLength(1);
  });

  it('cuts an entry longer than max_message_size on a character boundary and says so; seq and hash stay whole', () => {
    const e = entry({ data: { text: '数'.repeat(5000) } });
    const b = syslogMessage(e, { ...FORMAT, maxBytes: 1000 });
    expect(b.length).toBeLessThanOrEqual(1000);
    expect(b.length).toBeGreaterThan(990);
    const text = b.toString('utf8');
    expect(text).not.toContain('\uFFFD');
    expect(text).toContain('seq="42"');
    expect(text).toContain(`hash="${'b'.repeat(64)}"`);
    expect(text).toContain('truncated="true"');
    expect(syslogMessage(entry(), FORMAT).toString()).not.toContain('truncated');
  });

  it('frames by octet count in bytes (RFC 5425), by LF, or not at all for a datagram', () => {
    const msg = Buffer.from('<86>1 - - - - - - é', 'utf8');
    expect(frame(msg, 'octet-counted').toString('utf8')).toBe(`${msg.length} <86>1 - - - - - - é`);
    expect(msg.length).toBe(20);
    expect(frame(msg, 'lf').toString('utf8')).toBe('<86>1 - - - - - - é\n');
    expect(frame(msg, 'datagram')).toEqual(msg);
  });
});

describe('the severity of an audit entry', () => {
  const cases: Array<[string, Parameters<typeof syslogSeverity>[0], number]> = [
    ['an ordinary event is informational', { type: 'login.ok', outcome: 'ok', data: {} }, 6],
    ['a refusal is a warning', { type: 'session.refused', outcome: 'denied', data: {} }, 4],
    ['a locked account is a notice', { type: 'account.locked', outcome: 'ok', data: {} }, 5],
    ['a killed session is a notice', { type: 'session.kill', outcome: 'ok', data: {} }, 5],
    ['a failed verification is critical', { type: 'audit.verified', outcome: 'denied', data: { ok: false } }, 2],
    ['a passed verification is informational', { type: 'audit.verified', outcome: 'ok', data: { ok: true } }, 6],
    ['a failed scheduled integrity check is critical', { type: 'integrity.checked', outcome: 'info', data: { ok: false } }, 2],
    ['an alert carries its own severity by name', { type: 'alert.raised', outcome: 'info', data: { severity: 'critical' } }, 2],
    ['or by number', { type: 'alert.raised', outcome: 'info', data: { severity: 1 } }, 1],
    ['an alert without one is a warning', { type: 'alert.raised', outcome: 'info', data: {} }, 4],
    ['an alert with a nonsense one is a warning', { type: 'alert.raised', outcome: 'info', data: { severity: 'apocalyptic' } }, 4],
  ];
  it.each(cases)('%s', (_what, facts, severity) => {
    expect(syslogSeverity(facts)).toBe(severity);
  });
});

describe('[syslog] in gateway.config.toml', () => {
  const FILE = '/etc/portcullis/gateway.config.toml';
  const errorOf = (text: string): ConfigError => {
    try {
      parseConfig(text, FILE);
    } catch (err) {
      if (err instanceof ConfigError) return err;
      throw err;
    }
    throw new Error('expected a ConfigError');
  };

  it('takes the documented defaults', () => {
    const c = parseConfig('[syslog]\nhost = "siem.hospital.example"\n', FILE);
    expect(c.syslog).toMatchObject({ transport: 'tls', framing: 'octet-counted', facility: 'authpriv', app_name: 'portcullis', enterprise_number: 32473, max_message_size: 8192, confirm_after: 2000, retry_max: 30_000, lease: 15_000 });
    expect(parseConfig('', FILE).syslog).toBeUndefined();
  });

  it('refuses what does not fit, naming the key', () => {
    expect(errorOf('[syslog]\nhost = "x"\ntransprot = "udp"\n').message).toBe(`${FILE}: syslog.transprot: unknown key (not part of the configuration schema)`);
    expect(errorOf('[syslog]\ntransport = "tls"\n').key).toBe('syslog.host');
    expect(errorOf('[syslog]\nhost = "x"\nframing = "lf"\n').key).toBe('syslog.framing');
    expect(errorOf('[syslog]\nhost = "x"\ntransport = "udp"\nca = "/etc/ca.pem"\n').message).toContain('syslog.ca: ca belongs to transport = "tls"');
    expect(errorOf('[syslog]\nhost = "x"\ncert = "/etc/c.pem"\n').key).toBe('syslog.key');
    expect(errorOf('[syslog]\nhost = "x"\nfacility = "local9"\n').key).toBe('syslog.facility');
    expect(errorOf('[syslog]\nhost = "x"\napp_name = "two words"\n').key).toBe('syslog.app_name');
    expect(errorOf('[syslog]\nhost = "x"\ntransport = "udp"\nmax_message_size = 70000\n').key).toBe('syslog.max_message_size');
  });

  describe('TLS files are checked at start-up', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'pc-syslog-cfg-'));
    afterAll(() => rmSync(dir, { recursive: true, force: true }));
    const ca = makeTestCa(dir);
    const store = {} as Store; // never used: the check fails before anything is opened
    const refusal = (toml: string): ConfigError => {
      const config = parseConfig(`[syslog]\nhost = "127.0.0.1"\n${toml}`, path.join(dir, 'gateway.config.toml'));
      try {
        syslogExportFromConfig(config, store, createLogger('error', () => undefined));
      } catch (err) {
        if (err instanceof ConfigError) return err;
        throw err;
      }
      throw new Error('expected a ConfigError');
    };

    it('a missing CA file, a client key others may read, or a key of another certificate', () => {
      expect(refusal('ca = "missing.pem"\n').message).toMatch(/syslog\.ca: cannot read .*missing\.pem \(ENOENT\)/);
      chmodSync(ca.keyFile, 0o644);
      expect(refusal(`ca = "${ca.caFile}"\ncert = "${ca.certFile}"\nkey = "${ca.keyFile}"\n`).message).toContain('may be read by others (mode 0644); chmod 600 it');
      chmodSync(ca.keyFile, 0o600);
      writeFileSync(path.join(dir, 'other.key'), '', { mode: 0o600 });
      const other = path.join(dir, 'ca.key');
      chmodSync(other, 0o600);
      expect(refusal(`ca = "${ca.caFile}"\ncert = "${ca.certFile}"\nkey = "${other}"\n`).message).toContain('is not the key of the certificate');
      expect(refusal(`ca = "${ca.caFile}"\ncert = "${ca.certFile}"\nkey = "${path.join(dir, 'other.key')}"\n`).key).toBe('syslog.key');
    });

    it('accepts a good CA, certificate and key', () => {
      const config = parseConfig(`[syslog]\nhost = "127.0.0.1"\nca = "${ca.caFile}"\ncert = "${ca.certFile}"\nkey = "${ca.keyFile}"\n`, path.join(dir, 'gateway.config.toml'));
      expect(syslogExportFromConfig(config, store, createLogger('error', () => undefined))).not.toBeNull();
    });
  });
});
