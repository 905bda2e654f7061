import { hostname } from 'node:os';
import { AuditLog } from './audit/audit-log.js';
import type { GatewayConfig } from './config/load.js';
import { Authenticator } from './identity/authenticator.js';
import { createLogger, type Logger } from './log/logger.js';
import { SqliteStore } from './store/sqlite-store.js';
import type { Store } from './store/store.js';
import { readMasterKey } from './vault/master-key.js';
import { SecretBox } from './vault/secret-box.js';
import { Vault } from './vault/vault.js';

/** The services every entry point (server, CLI) works through, wired once. */
export interface Runtime {
  config: GatewayConfig;
  store: Store;
  audit: AuditLog;
  vault: Vault;
  log: Logger;
  authenticator: Authenticator;
  node: string;
  clock: () => number;
}

export function openStore(config: GatewayConfig): Store {
  switch (config.store.backend) {
    case 'sqlite':
      return new SqliteStore(config.paths.database);
  }
}

export function openRuntime(config: GatewayConfig, opts: { log?: Logger; clock?: () => number } = {}): Runtime {
  const log = opts.log ?? createLogger(config.log.level);
  const clock = opts.clock ?? Date.now;
  const box = new SecretBox(readMasterKey(config.paths.masterKey));
  const store = openStore(config);
  const audit = new AuditLog(store, log, clock);
  const vault = new Vault(box, store);
  const authenticator = new Authenticator(store, vault, audit, {
    lockout: { threshold: config.auth.lockout_threshold, durationMs: config.auth.lockout_duration },
    totpWindowSteps: config.auth.totp_window_steps,
  }, clock);
  return { config, store, audit, vault, log, authenticator, node: hostname(), clock };
}
