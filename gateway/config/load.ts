import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import path from 'node:path';
import { parse as parseToml, TomlError } from 'smol-toml';
import type { z } from 'zod';
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
  };
  /** This node's id: [cluster] node_id, else the host name. */
  nodeId: string;
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
    },
    nodeId: raw.cluster.node_id ?? hostname(),
  };
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
