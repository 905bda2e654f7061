import { z } from 'zod';
import { DURATION_PATTERN, parseDuration } from './duration.js';

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
    })
    .prefault({}),
  auth: z
    .strictObject({
      lockout_threshold: z.number().int().min(1).max(100).default(5),
      lockout_duration: duration.default(parseDurationText('15m')),
      totp_issuer: z.string().min(1).max(64).default('Portcullis'),
      totp_window_steps: z.number().int().min(0).max(2).default(1),
    })
    .prefault({}),
  store: z
    .strictObject({
      backend: z.enum(['sqlite']).default('sqlite'),
      path: z.string().min(1).optional(),
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
