import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import path from 'node:path';
import { parse as parseToml, TomlError } from 'smol-toml';
import type { z } from 'zod';
import { checkApprovalRules, DEFAULT_APPROVAL_RULES, type ApprovalRule, type RulesByLevel } from '../../policy/approval-rules.js';
import type { CommandProfile } from '../../policy/command-policy.js';
import { DEVICE_LEVELS, type DeviceLevel } from '../../policy/device-classification.js';
import { toCommandProfiles } from './profiles-schema.js';
import { configSchema, type RawConfig } from './schema.js';

export interface GatewayConfig extends Omit<RawConfig, 'data_dir'> {
  /** Absolute path of the file this came from. */
  file: string;
  dataDir: string;
  paths: {
    hostKey: string;
    masterKey: string;
    database: string;
    recordings: string;
    tlsCert: string;
    tlsKey: string;
    /** Store writes waiting for the store to come back (Redis outage), per node. */
    spool: string;
    redisUrlFile: string | null;
    redisTlsCa: string | null;
    /** [sso.oidc] client_secret_file, resolved. */
    ssoClientSecret: string | null;
    /** [metrics] token_file, resolved. */
    metricsTokenFile: string | null;
  };
  /** This node's id: [cluster] node_id, else the host name. */
  nodeId: string;
  /** [approval.level_N] over the defaults of REQUIREMENTS.md. */
  approvalRules: RulesByLevel;
  /** The profile a request gets at each level when it names none (null: the request must name one). */
  defaultProfiles: Readonly<Record<DeviceLevel, string | null>>;
  /** [profiles.NAME], compiled. */
  commandProfiles: ReadonlyMap<string, CommandProfile>;
}

export class ConfigError extends Error {
  constructor(readonly file: string, readonly key: string, readonly reason: string) {
    super(`${file}: ${key ? `${key}: ` : ''}${reason}`);
    this.name = 'ConfigError';
  }
}

export function defaultConfigPath(env: NodeJS.ProcessEnv = process.env): string {
  return env.PORTCULLIS_CONFIG ?? path.resolve('gateway.config.toml');
}

function describeIssue(issue: z.core.$ZodIssue, input: unknown): { key: string; reason: string } {
  const key = issue.path.map(String).join('.');
  if (issue.code === 'unrecognized_keys') {
    const keys = issue.keys.map((k) => (key ? `${key}.${k}` : k));
    return { key: keys.join(', '), reason: `unknown key${keys.length > 1 ? 's' : ''} (not part of the configuration schema)` };
  }
  let got: unknown = input;
  for (const p of issue.path) got = got !== null && typeof got === 'object' ? (got as Record<PropertyKey, unknown>)[p as PropertyKey] : undefined;
  const shown = got === undefined ? '' : `, got ${JSON.stringify(got)}`;
  return { key, reason: `${issue.message}${shown}` };
}

/** Parse and validate a config text; `file` is used for messages and to resolve relative paths. */
export function parseConfig(text: string, file: string): GatewayConfig {
  const abs = path.resolve(file);
  let data: unknown;
  try {
    data = parseToml(text);
  } catch (err) {
    const where = err instanceof TomlError ? `line ${err.line}, column ${err.column}` : '';
    throw new ConfigError(abs, where, `not valid TOML: ${(err as Error).message.split('\n')[0]}`);
  }
  const result = configSchema.safeParse(data);
  if (!result.success) {
    const first = result.error.issues[0];
    const { key, reason } = first ? describeIssue(first, data) : { key: '', reason: 'invalid' };
    throw new ConfigError(abs, key, reason);
  }
  const raw = result.data;
  const { approvalRules, defaultProfiles, commandProfiles } = accessPolicy(raw, abs);
  const base = path.dirname(abs);
  const dataDir = path.resolve(base, raw.data_dir);
  const under = (p: string | undefined, dflt: string): string => (p ? path.resolve(base, p) : path.join(dataDir, dflt));
  const { data_dir: _ignored, ...rest } = raw;
  return {
    ...rest,
    file: abs,
    dataDir,
    paths: {
      hostKey: under(raw.ssh.host_key, 'ssh_host_ed25519_key'),
      masterKey: under(raw.vault.master_key, 'master.key'),
      database: under(raw.store.path, 'portcullis.db'),
      recordings: under(raw.recordings.path, 'recordings'),
      tlsCert: under(raw.web.tls_cert, 'web-tls.crt'),
      tlsKey: under(raw.web.tls_key, 'web-tls.key'),
      spool: path.join(dataDir, 'spool'),
      redisUrlFile: raw.store.url_file ? path.resolve(base, raw.store.url_file) : null,
      redisTlsCa: raw.store.tls_ca ? path.resolve(base, raw.store.tls_ca) : null,
      ssoClientSecret: raw.sso.oidc ? path.resolve(base, raw.sso.oidc.client_secret_file) : null,
      metricsTokenFile: raw.metrics.token_file ? path.resolve(base, raw.metrics.token_file) : null,
    },
    nodeId: raw.cluster.node_id ?? hostname(),
    approvalRules,
    defaultProfiles,
    commandProfiles,
  };
}

/** Approval rules and command profiles, checked together: a level's default profile must exist and fit the level. */
function accessPolicy(raw: RawConfig, file: string): Pick<GatewayConfig, 'approvalRules' | 'defaultProfiles' | 'commandProfiles'> {
  const commandProfiles = toCommandProfiles(raw.profiles);
  const rules = {} as Record<DeviceLevel, ApprovalRule>;
  const defaults = {} as Record<DeviceLevel, string | null>;
  for (const level of DEVICE_LEVELS) {
    const r = raw.approval[`level_${level}`];
    const base = DEFAULT_APPROVAL_RULES[level];
    rules[level] = {
      level,
      approvals: r.approvals ?? base.approvals,
      longestWindowMs: r.longest_window ?? base.longestWindowMs,
      modes: r.modes ?? base.modes,
      alertSecurityOnStart: r.alert_security_on_start ?? base.alertSecurityOnStart,
    };
    // R-6.3c: the highest class of device is maintained in restricted mode only, whatever else a hospital loosens.
    if (level === 3 && rules[level].modes.some((m) => m !== 'restricted')) {
      throw new ConfigError(file, 'approval.level_3.modes', 'level-3 devices may only be maintained in restricted mode (R-6.3c)');
    }
    defaults[level] = r.default_profile ?? null;
    if (r.default_profile !== undefined) {
      const p = commandProfiles.get(r.default_profile);
      if (!p) throw new ConfigError(file, `approval.level_${level}.default_profile`, `no profile named ${JSON.stringify(r.default_profile)} in [profiles]`);
      if (!rules[level].modes.includes(p.mode)) {
        throw new ConfigError(file, `approval.level_${level}.default_profile`, `profile ${p.name} is in ${p.mode} mode, which level ${level} does not allow (${rules[level].modes.join(', ')})`);
      }
    }
  }
  const checked = checkApprovalRules(rules);
  if (!checked.allow) throw new ConfigError(file, 'approval', checked.detail);
  return { approvalRules: rules, defaultProfiles: defaults, commandProfiles };
}

export function loadConfig(file: string): GatewayConfig {
  const abs = path.resolve(file);
  let text: string;
  try {
    text = readFileSync(abs, 'utf8');
  } catch (err) {
    throw new ConfigError(abs, '', `cannot read the configuration file (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  return parseConfig(text, abs);
}

export function splitListen(listen: string): { host: string; port: number } {
  const i = listen.lastIndexOf(':');
  const host = listen.slice(0, i).replace(/^\[|\]$/g, '');
  return { host, port: Number(listen.slice(i + 1)) };
}
