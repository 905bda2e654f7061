import { z } from 'zod';
import { PROFILE_MODES } from '../../policy/approval-rules.js';
import { ROLES } from '../../policy/types.js';
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
