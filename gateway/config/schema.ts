import { z } from 'zod';
import { ALERT_KINDS, ALERT_SEVERITIES, type AlertKind } from '../../policy/alert-rules.js';
import { PROFILE_MODES } from '../../policy/approval-rules.js';
import { SSO_STAFF_ROLES } from '../../policy/sso-rules.js';
import { ROLES } from '../../policy/types.js';
import { SYSLOG_FACILITIES, type SyslogFacility } from '../audit/syslog-message.js';
import { DURATION_PATTERN, parseDuration } from './duration.js';
import { profilesSchema } from './profiles-schema.js';

/**
 * The one schema of gateway.config.toml: validation, defaults and documentation come from here.
 * Every object is strict, so a misspelt key stops start-up instead of being silently ignored.
 */
const duration = z
  .string()
  .regex(DURATION_PATTERN, { message: 'expected a duration such as "90s", "15m" or "8h"' })
  .transform(parseDuration);

const listen = z
  .string()
  .regex(/^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):\d{1,5}$/, { message: 'expected "host:port", e.g. "0.0.0.0:2222"' })
  .refine((s) => {
    const port = Number(s.slice(s.lastIndexOf(':') + 1));
    return port >= 0 && port <= 65535;
  }, { message: 'port must be 0-65535' });

/** Loopback only: 127.0.0.0/8, ::1 or localhost (brackets of an IPv6 listen address allowed). */
export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[(.*)\]$/, '$1').toLowerCase();
  return h === 'localhost' || h === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h);
}

export const RECORDING_RETENTION_FLOOR_DAYS = 180; // S-3.3
export const AUDIT_RETENTION_FLOOR_DAYS = 1095; // S-4.4: three years

/**
 * One level's approval rule; every key left out takes the default of REQUIREMENTS.md's table
 * (policy/approval-rules.ts). Loosening a default is allowed and logged at start-up.
 */
const approvalRule = z
  .strictObject({
    /** Each inner list is one approval: given by a distinct person holding one of its roles. */
    approvals: z.array(z.array(z.enum(ROLES)).min(1)).min(1).max(5).optional(),
    longest_window: duration.optional(),
    /** Command-profile modes grants at this level may use (R-6.3c). */
    modes: z.array(z.enum(PROFILE_MODES)).min(1).optional(),
    alert_security_on_start: z.boolean().optional(),
    /** The profile a request at this level gets when it names none. */
    default_profile: z.string().min(1).max(64).optional(),
  })
  .prefault({});

const LOOPBACK_HOSTS = new Set(['127.0.0.1', 'localhost', '[::1]']);

/** An https:// URL; plain http only to this host itself (an IdP on loopback, as the tests run one). */
const secureUrl = (what: string) => z.string().refine((s) => {
  let u: URL;
  try {
    u = new URL(s);
  } catch {
    return false;
  }
  return u.protocol === 'https:' || (u.protocol === 'http:' && LOOPBACK_HOSTS.has(u.hostname));
}, { message: `expected the ${what} as an https:// URL (http:// only on loopback)` });

/** The path of the gateway's OIDC callback (web-console/server/sso-api.ts); the redirect URL registered at the IdP ends with it. */
export const SSO_CALLBACK_PATH = '/api/auth/sso/callback';

/** [sso.oidc]: staff sign in through the hospital's OpenID Connect provider (R-A.4d). */
const ssoOidc = z.strictObject({
  /** Shown on the sign-in button: "Sign in with <display_name>". */
  display_name: z.string().min(1).max(64).default('single sign-on'),
  /** The IdP's issuer; its discovery document is at <issuer>/.well-known/openid-configuration. */
  issuer: secureUrl('issuer'),
  client_id: z.string().min(1).max(255),
  /** A file (mode 0600) holding the client secret. */
  client_secret_file: z.string().min(1),
  /** This gateway's callback as registered at the IdP: https://<gateway>/api/auth/sso/callback. */
  redirect_url: secureUrl('redirect URL').refine((s) => URL.canParse(s) && new URL(s).pathname === SSO_CALLBACK_PATH && new URL(s).search === '', {
    message: `the redirect URL must end with ${SSO_CALLBACK_PATH} (and carry no query)`,
  }),
  scopes: z.array(z.string().regex(/^[\x21\x23-\x5B\x5D-\x7E]+$/, { message: 'a scope is one word of printable characters' })).min(1).max(20)
    .default(['openid', 'profile', 'email'])
    .refine((s) => s.includes('openid'), { message: 'the scopes must include "openid"' }),
  /** The ID-token claim a new account's name comes from (an e-mail style value is cut at "@"). */
  username_claim: z.string().min(1).max(100).default('preferred_username'),
  /** The ID-token claim listing the person's groups: "groups" (Keycloak), "roles" (Azure AD app roles). */
  groups_claim: z.string().min(1).max(100).default('groups'),
  /** Group (or app role) name = the Portcullis roles its members hold. */
  group_roles: z.record(z.string().min(1).max(256), z.array(z.enum(ROLES)).min(1)).refine((m) => Object.keys(m).length > 0, {
    message: 'map at least one group to Portcullis roles, e.g. "portcullis-approvers" = ["approver"]',
  }),
  /** The roles that may sign in through SSO: staff only. */
  allowed_roles: z.array(z.enum(ROLES)).min(1).default([...SSO_STAFF_ROLES])
    .refine((rs) => rs.every((r) => (SSO_STAFF_ROLES as readonly string[]).includes(r)), {
      message: `only staff roles (${SSO_STAFF_ROLES.join(', ')}) may sign in through SSO; vendors keep local accounts with password + TOTP`,
    }),
  /** amr values that mean the IdP checked more than one factor; otherwise Portcullis asks for its TOTP code too. */
  mfa_amr: z.array(z.string().min(1).max(100)).max(20).default(['mfa']),
  /** acr values that mean the same (e.g. a Keycloak level of authentication). */
  mfa_acr: z.array(z.string().min(1).max(200)).max(20).default([]),
});
/** One alert kind's rule (policy/alert-rules.ts); each key left out keeps the default of DEFAULT_ALERT_RULES. */
const alertRule = z
  .strictObject({
    enabled: z.boolean().optional(),
    /** Syslog's words (RFC 5424): emerg, alert, crit, err, warning, notice, info. */
    severity: z.enum(ALERT_SEVERITIES, { message: `expected one of ${ALERT_SEVERITIES.join(', ')}` }).optional(),
    /** How many facts with one subject make an alert (for delivery_queue: the queue's depth). */
    threshold: z.number().int().min(1).max(1_000_000).optional(),
    window: duration.refine((ms) => ms >= 1000 && ms <= 7 * 86_400_000, { message: 'must be between 1s and 7d' }).optional(),
    /** After an alert, the same kind and subject stay quiet this long. */
    suppress: duration.refine((ms) => ms <= 7 * 86_400_000, { message: 'must be at most 7d' }).optional(),
  })
  .prefault({});

/** A list of alert kinds, or ["all"]. */
const alertKindList = z.array(z.enum([...ALERT_KINDS, 'all'], { message: `expected an alert kind (${ALERT_KINDS.join(', ')}) or "all"` })).max(ALERT_KINDS.length + 1);

const alertRules = Object.fromEntries(ALERT_KINDS.map((k) => [k, alertRule])) as Record<AlertKind, typeof alertRule>;

export const configSchema = z.strictObject({
  data_dir: z.string().min(1).default('./data').describe('State, keys and recordings live here.'),
  ssh: z
    .strictObject({
      listen: listen.default('0.0.0.0:2222'),
      host_key: z.string().min(1).optional(),
      idle_timeout: duration.default(parseDurationText('15m')),
      grant_warnings: z.array(duration).max(5).default(['5m', '1m'].map(parseDurationText)),
      login_grace: duration.default(parseDurationText('60s')),
      upstream_timeout: duration.default(parseDurationText('10s')),
      banner: z.string().max(2000).optional(),
      max_connections: z.number().int().min(1).max(100_000).default(1000),
      max_unauthenticated_per_ip: z.number().int().min(1).max(10_000).default(10),
    })
    .prefault({}),
  web: z
    .strictObject({
      listen: listen.default('0.0.0.0:8443'),
      tls_cert: z.string().min(1).optional(),
      tls_key: z.string().min(1).optional(),
      /** A signed-in browser with no request for this long is signed out. */
      session_idle_timeout: duration
        .default(parseDurationText('30m'))
        .refine((ms) => ms >= 60_000 && ms <= 12 * 3_600_000, { message: 'must be between 1m and 12h' }),
      /** And at the latest this long after signing in, whatever it does. */
      session_max_age: duration
        .default(parseDurationText('12h'))
        .refine((ms) => ms >= 5 * 60_000 && ms <= 86_400_000, { message: 'must be between 5m and 24h' }),
      /** Sign-in attempts one address may make per minute before it is told to wait (429). */
      login_rate_per_minute: z.number().int().min(1).max(1000).default(10),
      /** Requests one API token may make per minute before it is told to wait (429); refused tokens count against their address's sign-in rate. */
      token_requests_per_minute: z.number().int().min(1).max(100_000).default(600),
    })
    .prefault({}),
  auth: z
    .strictObject({
      lockout_threshold: z.number().int().min(1).max(100).default(5),
      lockout_duration: duration.default(parseDurationText('15m')),
      totp_issuer: z.string().min(1).max(64).default('Portcullis'),
      totp_window_steps: z.number().int().min(0).max(2).default(1),
      /** A privileged role given by one admin expires unless a second admin confirms it within this (S-1.3). */
      role_change_expiry: duration
        .default(parseDurationText('24h'))
        .refine((ms) => ms >= 10 * 60_000 && ms <= 7 * 86_400_000, { message: 'must be between 10m and 7d' }),
    })
    .prefault({}),
  store: z
    .strictObject({
      backend: z.enum(['sqlite', 'redis']).default('sqlite'),
      /** sqlite: the database file. */
      path: z.string().min(1).optional(),
      /** redis: redis://[user:password@]host:6379/0 or rediss:// for TLS. */
      url: z
        .string()
        .regex(/^rediss?:\/\/[^\s]+$/, { message: 'expected a redis:// or rediss:// URL, e.g. "redis://10.0.0.5:6379/0"' })
        .optional(),
      /** redis: a file holding the URL (keeps a password out of the config file). */
      url_file: z.string().min(1).optional(),
      prefix: z.string().regex(/^[A-Za-z0-9:_.-]{1,64}$/, { message: 'expected 1-64 letters, digits or : _ . -' }).default('portcullis:'),
      /** redis over TLS: a CA certificate file to trust besides the system's. */
      tls_ca: z.string().min(1).optional(),
      command_timeout: duration.default(parseDurationText('5s')),
      /** redis: replicas that must acknowledge audit entries, seals and session ends (Redis WAIT); 0 = the primary alone. */
      wait_replicas: z.number().int().min(0).max(10).default(0),
    })
    .prefault({})
    .superRefine((s, ctx) => {
      if (s.backend === 'redis' && !s.url === !s.url_file) {
        ctx.addIssue({ code: 'custom', path: [s.url ? 'url_file' : 'url'], message: 'the redis backend needs exactly one of url or url_file' });
      }
      if (s.backend === 'sqlite' && (s.url || s.url_file || s.tls_ca)) {
        ctx.addIssue({ code: 'custom', path: ['backend'], message: 'url, url_file and tls_ca belong to backend = "redis"' });
      }
    }),
  cluster: z
    .strictObject({
      /** This node's name in session lists and the audit log; unique among the nodes sharing a store. */
      node_id: z.string().regex(/^[A-Za-z0-9._-]{1,64}$/, { message: 'expected 1-64 letters, digits, ".", "_" or "-"' }).optional(),
      heartbeat_interval: duration
        .default(parseDurationText('1s'))
        .refine((ms) => ms >= 100 && ms <= 10_000, { message: 'must be between 100ms and 10s' }),
      /** A node silent this long is presumed dead: its sessions are marked interrupted. */
      node_timeout: duration
        .default(parseDurationText('5s'))
        .refine((ms) => ms >= 1000 && ms <= 300_000, { message: 'must be between 1s and 5m' }),
    })
    .prefault({})
    .refine((c) => c.node_timeout >= 3 * c.heartbeat_interval, { path: ['node_timeout'], message: 'must be at least three heartbeat intervals' }),
  vault: z
    .strictObject({
      /** The master key that seals device credentials and TOTP seeds; every node of a cluster needs the same one. */
      master_key: z.string().min(1).optional(),
    })
    .prefault({}),
  recordings: z
    .strictObject({
      path: z.string().min(1).optional(),
      retention_days: z
        .number()
        .int()
        .default(RECORDING_RETENTION_FLOOR_DAYS)
        .refine((d) => d >= RECORDING_RETENTION_FLOOR_DAYS, {
          message: `must be at least ${RECORDING_RETENTION_FLOOR_DAYS} days (S-3.3: access logs kept six months)`,
        }),
      flush_interval: duration
        .default(parseDurationText('1s'))
        .refine((ms) => ms >= 50 && ms <= 1000, { message: 'must be between 50ms and 1s (a crash may lose at most this much)' }),
      compression: z.enum(['deflate', 'none']).default('deflate'),
    })
    .prefault({}),
  audit: z
    .strictObject({
      retention_days: z
        .number()
        .int()
        .default(AUDIT_RETENTION_FLOOR_DAYS)
        .refine((d) => d >= AUDIT_RETENTION_FLOOR_DAYS, {
          message: `must be at least ${AUDIT_RETENTION_FLOOR_DAYS} days (S-4.4: audit data kept three years)`,
        }),
    })
    .prefault({}),
  approval: z
    .strictObject({ level_1: approvalRule, level_2: approvalRule, level_3: approvalRule })
    .prefault({}),
  desktop: z
    .strictObject({
      /** RDP desktops this node runs at once (each is an Xvnc and an xfreerdp, ~36 MB at 1280x800). */
      max_rdp_sessions: z.number().int().min(0).max(1000).default(16),
      /** Desktops (VNC and RDP) one person holds open on this node at once. */
      max_per_user: z.number().int().min(1).max(100).default(2),
    })
    .prefault({}),
  commands: z
    .strictObject({
      /** A command held for review (action "review") is denied if no approver answers within this. */
      review_timeout: duration
        .default(parseDurationText('2m'))
        .refine((ms) => ms >= 5_000 && ms <= 3_600_000, { message: 'must be between 5s and 1h' }),
    })
    .prefault({}),
  profiles: profilesSchema,
  notifications: z
    .strictObject({
      /** Receives request and session events as signed JSON POSTs (X-Portcullis-Signature: HMAC-SHA256). */
      webhook_url: z.string().regex(/^https?:\/\/\S+$/, { message: 'expected an http:// or https:// URL' }).optional(),
      /** The HMAC key, in a file of its own (mode 0600). */
      webhook_secret_file: z.string().min(1).optional(),
      /** An https receiver's CA certificate, if not in the system store. */
      webhook_ca: z.string().min(1).optional(),
    })
    .prefault({})
    .refine((n) => !n.webhook_url === !n.webhook_secret_file, { path: ['webhook_secret_file'], message: 'webhook_url and webhook_secret_file go together' }),
  sso: z
    .strictObject({ oidc: ssoOidc.optional() })
    .prefault({}),
  /**
   * The SIEM feed (R-A.5c): every audit entry as one RFC 5424 message, in chain order. Absent: no
   * feed. While the receiver is away the entries wait in the audit chain itself (the store), so
   * there is no spool directory to size: the backlog is read back from the chain by seq.
   */
  syslog: z
    .strictObject({
      /** tls: RFC 5425 (TCP, octet counting); tcp: plain TCP (RFC 6587); udp: RFC 5426, one datagram per entry, lossy. */
      transport: z.enum(['tls', 'tcp', 'udp']).default('tls'),
      host: z.string().regex(/^[A-Za-z0-9.:-]{1,253}$/, { message: 'expected a host name or an IP address' }),
      /** Default 6514 for tls, 514 for tcp and udp. */
      port: z.number().int().min(1).max(65535).optional(),
      /** tcp only: octet counting (default) or a line feed after each message (the older receivers' framing). */
      framing: z.enum(['octet-counted', 'lf']).default('octet-counted'),
      /** tls: the CA certificate(s) (PEM) that signed the receiver's certificate; default the system's. */
      ca: z.string().min(1).optional(),
      /** tls: a client certificate (PEM) for receivers that ask for one, with its key (a file of mode 0600). */
      cert: z.string().min(1).optional(),
      key: z.string().min(1).optional(),
      /** tls: the name the receiver's certificate must carry; default host. */
      server_name: z.string().regex(/^[A-Za-z0-9.-]{1,253}$/, { message: 'expected a DNS name' }).optional(),
      facility: z.enum(Object.keys(SYSLOG_FACILITIES) as [SyslogFacility, ...SyslogFacility[]]).default('authpriv'),
      app_name: z.string().regex(/^[\x21-\x7e]{1,48}$/, { message: 'expected 1-48 printable ASCII characters, no spaces' }).default('portcullis'),
      /** HOSTNAME of every message; default this node's id. */
      hostname: z.string().regex(/^[\x21-\x7e]{1,255}$/, { message: 'expected 1-255 printable ASCII characters, no spaces' }).optional(),
      /** The structured data's SD-ID is portcullis@<this>: a private enterprise number (32473 is the one reserved for documentation). */
      enterprise_number: z.number().int().min(1).max(4_294_967_295).default(32473),
      /** Longest message in bytes (framing excluded); a longer entry's JSON is cut and marked truncated="true". RFC 5425 receivers take 8192. */
      max_message_size: z.number().int().min(480).max(1_048_576).default(8192),
      /** tcp/tls: an entry counts as delivered once the connection stayed up this long after it was written. */
      confirm_after: duration
        .default(parseDurationText('2s'))
        .refine((ms) => ms >= 100 && ms <= 60_000, { message: 'must be between 100ms and 60s' }),
      /** Reconnection waits double from 250ms up to this. */
      retry_max: duration
        .default(parseDurationText('30s'))
        .refine((ms) => ms >= 250 && ms <= 600_000, { message: 'must be between 250ms and 10m' }),
      /** In a cluster one node sends; another takes over this long after it stops renewing. */
      lease: duration
        .default(parseDurationText('15s'))
        .refine((ms) => ms >= 3_000 && ms <= 300_000, { message: 'must be between 3s and 5m' }),
    })
    .superRefine((s, ctx) => {
      if (s.transport !== 'tls') {
        for (const k of ['ca', 'cert', 'key', 'server_name'] as const) {
          if (s[k] !== undefined) ctx.addIssue({ code: 'custom', path: [k], message: `${k} belongs to transport = "tls"` });
        }
      }
      if (s.framing === 'lf' && s.transport !== 'tcp') ctx.addIssue({ code: 'custom', path: ['framing'], message: 'LF framing is for transport = "tcp" (RFC 5425 requires octet counting; UDP sends one message per datagram)' });
      if (!s.cert !== !s.key) ctx.addIssue({ code: 'custom', path: [s.cert ? 'key' : 'cert'], message: 'cert and key go together' });
      if (s.transport === 'udp' && s.max_message_size > 65_507) ctx.addIssue({ code: 'custom', path: ['max_message_size'], message: 'a UDP datagram holds at most 65507 bytes' });
    })
    .optional(),
  /** Alerts (R-A.5b, R-5.5a, R-5.5c): one table per kind, and who gets which kinds. */
  alerts: z
    .strictObject({
      ...alertRules,
      /** Console roles and outside receivers, each with the kinds it gets (default: security, admin, webhook and syslog get all). */
      routes: z
        .strictObject({
          security: alertKindList.optional(),
          admin: alertKindList.optional(),
          approver: alertKindList.optional(),
          device_manager: alertKindList.optional(),
          webhook: alertKindList.optional(),
          syslog: alertKindList.optional(),
        })
        .prefault({}),
    })
    .prefault({}),
  /** The scheduled, incremental check of the audit chain and of newly sealed recordings. */
  integrity: z
    .strictObject({
      enabled: z.boolean().default(true),
      /** How often; the nodes of a cluster take turns through a lease, so the check runs once per interval in all. */
      interval: duration
        .default(parseDurationText('15m'))
        .refine((ms) => ms >= 1000 && ms <= 7 * 86_400_000, { message: 'must be between 1s and 7d' }),
    })
    .prefault({}),
  /** Prometheus metrics (R-A.5b): off unless one of these is set. */
  metrics: z
    .strictObject({
      /** A bearer token in a file of its own (mode 0600); without `listen`, /metrics is served on the console's HTTPS port. */
      token_file: z.string().min(1).optional(),
      /** A separate plain-HTTP listener for /metrics, on a loopback address only. */
      listen: listen
        .refine((s) => isLoopbackHost(s.slice(0, s.lastIndexOf(':'))), { message: 'plain HTTP is allowed on a loopback address only (127.0.0.1, ::1, localhost); from another host, scrape the console\'s HTTPS port with token_file' })
        .optional(),
    })
    .prefault({}),
  log: z
    .strictObject({
      level: z.enum(['debug', 'info', 'warn', 'error']).default('info'),
    })
    .prefault({}),
});

function parseDurationText(text: string): number {
  return parseDuration(text);
}

export type RawConfig = z.output<typeof configSchema>;
