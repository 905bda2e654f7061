import { randomUUID } from 'node:crypto';
import {
  alertCandidate, needsDeviceLevel, queueCandidate, receiversFor, thresholdReached, type AlertCandidate, type AlertSettings,
} from '../../policy/alert-rules.js';
import type { AuditLog } from '../audit/audit-log.js';
import type { ClusterBus } from '../cluster/bus.js';
import { deviceLevel } from '../inventory/devices.js';
import { inBackground } from '../log/background.js';
import type { Logger } from '../log/logger.js';
import type { Notifier } from '../notify/notifier.js';
import type { AlertRecord, AuditEntry, Store } from '../store/store.js';

export interface AlertEngineOptions {
  store: Store;
  audit: AuditLog;
  bus: ClusterBus;
  /** The webhook itself (not LiveEvents): an alert routed away from the webhook must not reach it. */
  webhook: Notifier;
  log: Logger;
  node: string;
  settings: AlertSettings;
  clock?: () => number;
  /** How often the delivery queues are sampled. */
  sampleEveryMs?: number;
}

/**
 * Raises alerts (R-A.5b, R-5.5a, R-5.5c) from the audit entries this process commits: every alert
 * is derived from a fact already in the chain, and each entry is seen by the one node that wrote
 * it, so a fact makes its alert once in a cluster. What counts across nodes (failed sign-ins from
 * one address, denied commands in one session) is counted in the store, and the suppression
 * window after an alert is a claim in the store, so two nodes never both raise it.
 *
 * An alert is an audit entry `alert.<kind>` (the SIEM gets it with the rest of the chain), a row
 * of the console's alert list, a webhook event `alert.raised` when routed there, and an event on
 * the cluster bus for the consoles' live lists. Work runs one entry at a time in the background:
 * the writer of an entry never waits for its alert.
 */
export class AlertEngine {
  private readonly o: Required<Omit<AlertEngineOptions, 'clock' | 'sampleEveryMs'>>;
  private readonly clock: () => number;
  private readonly sampleEveryMs: number;
  private work: Promise<void> = Promise.resolve();
  private readonly queues = new Map<string, () => number>();
  private sampler: NodeJS.Timeout | null = null;
  private stopped = false;

  constructor(o: AlertEngineOptions) {
    this.o = { store: o.store, audit: o.audit, bus: o.bus, webhook: o.webhook, log: o.log, node: o.node, settings: o.settings };
    this.clock = o.clock ?? Date.now;
    this.sampleEveryMs = o.sampleEveryMs ?? 5_000;
    o.audit.onCommitted((e) => this.observe(e));
  }

  get settings(): AlertSettings {
    return this.o.settings;
  }

  /**
   * A delivery queue this node keeps, sampled every few seconds: an alert when it holds
   * `[alerts.delivery_queue] threshold` items or more. The webhook's retry queue is watched from
   * the start; the syslog spool registers itself here.
   */
  watchQueue(name: string, depth: () => number): void {
    this.queues.set(name, depth);
  }

  /** Starts sampling the delivery queues (the serving gateway; the CLI does not). */
  start(): void {
    if (this.sampler || this.stopped) return;
    this.sampler = setInterval(() => this.sample(), this.sampleEveryMs);
    this.sampler.unref();
  }

  /** Stops sampling and waits for the alerts already under way (before the store closes). */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.sampler) clearInterval(this.sampler);
    this.sampler = null;
    await this.work;
  }

  /** Resolves once the entries seen so far have been considered (and their alerts raised). */
  idle(): Promise<void> {
    return this.work;
  }

  private enqueue(what: string, job: () => Promise<void>): void {
    const run = this.work.then(job);
    this.work = run.catch(() => undefined);
    inBackground(this.o.log, what, run);
  }

  private observe(entry: AuditEntry): void {
    // Alerts and their acknowledgements are facts about alerts: they never raise another.
    if (entry.type.startsWith('alert.') || entry.type.startsWith('alerts.')) return;
    this.enqueue('alert rule', () => this.onEntry(entry));
  }

  private sample(): void {
    for (const [name, depth] of this.queues) {
      let n: number;
      try {
        n = depth();
      } catch {
        continue;
      }
      const c = queueCandidate(name, this.o.node, n, this.o.settings.rules.delivery_queue);
      if (c) this.enqueue('delivery queue alert', () => this.suppressThenRaise(c, []));
    }
  }

  private async onEntry(e: AuditEntry): Promise<void> {
    let level: number | null = null;
    if (needsDeviceLevel(e.type, e.data) && typeof e.data.device === 'string') {
      const device = await this.o.store.getDevice(e.data.device);
      level = device ? deviceLevel(device) : null;
    }
    const c = alertCandidate({ seq: e.seq, type: e.type, actor: e.actor, outcome: e.outcome, code: e.code, data: e.data, deviceLevel: level });
    if (!c) return;
    const rule = this.o.settings.rules[c.kind];
    if (!rule.enabled) return;
    let triggers = [e.seq];
    if (rule.threshold > 1) {
      const inWindow = await this.o.store.countInWindow(`${c.kind}:${c.subject}`, String(e.seq), Date.parse(e.ts), rule.windowMs);
      if (!thresholdReached(inWindow.length, rule)) return;
      triggers = inWindow.map(Number);
    }
    await this.suppressThenRaise(c, triggers);
  }

  /** One alert per kind and subject per suppression window, whichever node gets there first. */
  private async suppressThenRaise(c: AlertCandidate, triggers: number[]): Promise<void> {
    const rule = this.o.settings.rules[c.kind];
    if (!rule.enabled) return;
    const now = this.clock();
    if (rule.suppressMs > 0 && !(await this.o.store.claim(`suppress:${c.kind}:${c.subject}`, randomUUID(), now + rule.suppressMs, now))) return;
    await this.raise(c, triggers);
  }

  private async raise(c: AlertCandidate, triggers: number[]): Promise<void> {
    const { store, audit, bus, webhook, node, settings } = this.o;
    const severity = settings.rules[c.kind].severity;
    const receivers = receiversFor(c.kind, settings.routes);
    const entry = await audit.record(`alert.${c.kind}`, {
      actor: 'portcullis', outcome: 'info',
      data: { kind: c.kind, severity, subject: c.subject, triggers, summary: c.summary, receivers, node },
    });
    const alert: AlertRecord = {
      id: `al-${entry.seq}`, seq: entry.seq, kind: c.kind, severity, subject: c.subject, summary: c.summary, triggers,
      raisedAt: Date.parse(entry.ts), node, acknowledgement: null,
    };
    await store.createAlert(alert);
    const event = { alert: alert.id, seq: alert.seq, kind: c.kind, severity, subject: c.subject, summary: c.summary, triggers, raisedAt: entry.ts, node };
    if (receivers.includes('webhook')) webhook.notify('alert.raised', event);
    // Best effort, as for every console event: the list reloads on the next one or on reconnecting.
    await bus.publish({ type: 'event', topic: 'alert', action: 'raised', data: event, from: node }).catch(() => undefined);
  }
}
