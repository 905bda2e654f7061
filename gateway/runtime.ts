import { readFileSync } from 'node:fs';
import path from 'node:path';
import { NO_NOTIFIER, type Notifier } from './notify/notifier.js';
import { LiveEvents } from './notify/live-events.js';
import { WebhookNotifier } from './notify/webhook.js';
import { AlertEngine } from './alerts/alert-engine.js';
import { alertSettings } from './alerts/alert-settings.js';
import { AuditLog } from './audit/audit-log.js';
import type { SyslogExport } from './audit/syslog-export.js';
import { syslogExportFromConfig } from './audit/syslog-from-config.js';
import { LocalBus, type ClusterBus } from './cluster/bus.js';
import { RedisBus } from './cluster/redis-bus.js';
import { ConfigError, type GatewayConfig } from './config/load.js';
import { Authenticator } from './identity/authenticator.js';
import { createLogger, type Logger } from './log/logger.js';
import type { GatewayMetrics } from './metrics/gateway-metrics.js';
import { timedStore } from './metrics/timed-store.js';
import { RedisStore } from './store/redis-store.js';
import { SqliteStore } from './store/sqlite-store.js';
import type { Store } from './store/store.js';
import { WriteSpool } from './store/write-spool.js';
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
  bus: ClusterBus;
  spool: WriteSpool;
  /** Workflow events to the configured webhook (or nowhere). */
  notifier: Notifier;
  /** The SIEM feed ([syslog], R-A.5c) of a serving gateway; null without one. Started by startGateway; its status has the backlog. */
  syslog: SyslogExport | null;
  /** Alerts from the audit entries this process commits (gateway/alerts). */
  alerts: AlertEngine;
  /**
   * Prometheus metrics of a serving gateway (metrics/gateway-metrics.ts); queues register there
   * with `metrics?.registerQueue`. Null in the CLI, which then never loads prom-client.
   */
  metrics: GatewayMetrics | null;
  node: string;
  clock: () => number;
  close(): Promise<void>;
}

function redisUrl(config: GatewayConfig): string {
  if (config.store.url) return config.store.url;
  const file = config.paths.redisUrlFile as string;
  let text: string;
  try {
    text = readFileSync(file, 'utf8').trim();
  } catch (err) {
    throw new ConfigError(config.file, 'store.url_file', `cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  if (!/^rediss?:\/\/\S+$/.test(text)) throw new ConfigError(config.file, 'store.url_file', `${file} does not hold a redis:// or rediss:// URL`);
  return text;
}

export async function openStore(config: GatewayConfig, log: Logger): Promise<Store> {
  switch (config.store.backend) {
    case 'sqlite':
      return new SqliteStore(config.paths.database);
    case 'redis': {
      const url = redisUrl(config);
      return RedisStore.open({
        url, prefix: config.store.prefix, log, commandTimeoutMs: config.store.command_timeout, waitReplicas: config.store.wait_replicas,
        ...(config.paths.redisTlsCa ? { tlsCa: redisTlsCa(config, config.paths.redisTlsCa, url) } : {}),
      });
    }
  }
}

function redisTlsCa(config: GatewayConfig, file: string, url: string): string {
  if (!url.startsWith('rediss:')) throw new ConfigError(config.file, 'store.tls_ca', 'a CA certificate is for TLS, but the Redis URL is redis:// (plain TCP); use rediss://');
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(config.file, 'store.tls_ca', `cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  if (!text.includes('-----BEGIN CERTIFICATE-----')) throw new ConfigError(config.file, 'store.tls_ca', `${file} holds no PEM certificate (-----BEGIN CERTIFICATE-----)`);
  return text;
}

export interface RuntimeOptions {
  log?: Logger;
  clock?: () => number;
  /** The serving gateway keeps a spool of store writes through outages; the CLI does not. */
  spool?: boolean;
}

function openNotifier(config: GatewayConfig, log: Logger, clock: () => number): Notifier {
  const n = config.notifications;
  if (!n.webhook_url || !n.webhook_secret_file) return NO_NOTIFIER;
  const read = (file: string, key: string): string => {
    const abs = path.resolve(path.dirname(config.file), file);
    try {
      return readFileSync(abs, 'utf8');
    } catch (err) {
      throw new ConfigError(config.file, key, `cannot read ${abs} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
    }
  };
  const secret = read(n.webhook_secret_file, 'notifications.webhook_secret_file').trim();
  if (secret.length < 16) throw new ConfigError(config.file, 'notifications.webhook_secret_file', 'the webhook secret must be at least 16 characters');
  return new WebhookNotifier({ url: n.webhook_url, secret, log, clock, ...(n.webhook_ca ? { ca: read(n.webhook_ca, 'notifications.webhook_ca') } : {}) });
}

export async function openRuntime(config: GatewayConfig, opts: RuntimeOptions = {}): Promise<Runtime> {
  const log = opts.log ?? createLogger(config.log.level);
  const clock = opts.clock ?? Date.now;
  const box = new SecretBox(readMasterKey(config.paths.masterKey));
  // Only a serving gateway is scraped: a CLI command starts without loading prom-client.
  const metrics = opts.spool ? new (await import('./metrics/gateway-metrics.js')).GatewayMetrics(config.nodeId, config.store.backend) : null;
  const opened = await openStore(config, log);
  const store = metrics ? timedStore(opened, metrics) : opened;
  let bus: ClusterBus;
  try {
    bus = store instanceof RedisStore ? await RedisBus.open(store, log) : new LocalBus();
  } catch (err) {
    await store.close();
    throw err;
  }
  const spool = new WriteSpool(opts.spool ? config.paths.spool : null, config.nodeId, store, log);
  const webhook = openNotifier(config, log, clock);
  const notifier = new LiveEvents(webhook, bus, config.nodeId);
  metrics?.registerQueue('webhook', () => notifier.pending());
  metrics?.registerQueue('write_spool', () => spool.pending);
  const audit = new AuditLog(store, log, clock, spool);
  let syslog: SyslogExport | null = null;
  try {
    syslog = opts.spool ? syslogExportFromConfig(config, store, log) : null;
  } catch (err) {
    await spool.close();
    await bus.close();
    await store.close();
    throw err;
  }
  if (syslog) {
    const feed = syslog;
    audit.onCommitted((e) => feed.entryWritten(e));
  }
  const alerts = new AlertEngine({ store, audit, bus, webhook, log, node: config.nodeId, settings: alertSettings(config.alerts), clock });
  if (webhook !== NO_NOTIFIER) alerts.watchQueue('webhook', () => webhook.pending());
  // The SIEM feed's backlog (entries not yet delivered) is a delivery queue too.
  if (syslog) {
    const feed = syslog;
    alerts.watchQueue('syslog', () => feed.backlog);
    metrics?.registerQueue('syslog', () => feed.backlog);
  }
  const vault = new Vault(box, store);
  const authenticator = new Authenticator(store, vault, audit, {
    lockout: { threshold: config.auth.lockout_threshold, durationMs: config.auth.lockout_duration },
    totpWindowSteps: config.auth.totp_window_steps,
    totpIssuer: config.auth.totp_issuer,
  }, clock);
  return {
    config, store, audit, vault, log, authenticator, bus, spool, notifier, syslog, alerts, metrics, node: config.nodeId, clock,
    async close() {
      // Alerts under way still need the store, and their webhook events the notifier.
      await alerts.stop();
      // A short-lived process (the CLI) gives its notifications a moment to go out before it exits.
      if (!opts.spool) for (let i = 0; i < 50 && notifier.pending() > 0; i++) await new Promise((r) => setTimeout(r, 100));
      await notifier.close();
      await spool.close();
      // After the spool: entries it wrote late still go out; before the store, which the feed reads.
      await syslog?.stop();
      await bus.close();
      await store.close();
    },
  };
}
