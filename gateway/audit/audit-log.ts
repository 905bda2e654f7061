import type { ErrorCode } from '../../policy/error-codes.js';
import { currentAuditContext } from './audit-context.js';
import type { Logger } from '../log/logger.js';
import type { AuditDraft, AuditEntry, Store } from '../store/store.js';
import type { WriteSpool } from '../store/write-spool.js';

export interface AuditFields {
  actor: string;
  outcome?: 'ok' | 'denied' | 'info';
  code?: ErrorCode | null;
  data?: Record<string, unknown>;
}

/**
 * Every decision that grants or denies something goes through here (R-A.3d). Entries are also
 * mirrored to the structured log for a SIEM.
 *
 * Two ways in: `record` for a decision that is only taken if it is audited (it throws when the
 * store cannot take the entry, and the caller refuses); `recordEventually` for what has already
 * happened (a refusal, a session's end): that entry waits in the node's spool through a store
 * outage and is appended, once, when the store is back.
 */
export class AuditLog {
  private readonly observers: Array<(entry: AuditEntry) => void> = [];

  constructor(
    private readonly store: Store,
    private readonly log: Logger,
    private readonly clock: () => number = Date.now,
    private readonly spool: WriteSpool | null = null,
  ) {
    if (spool) spool.onAuditWritten = (e) => this.mirror(e);
  }

  /** The channel and source come from the door the work came in by (audit-context.ts); outside any door, `system`. */
  private draft(type: string, f: AuditFields): AuditDraft {
    const door = currentAuditContext();
    return {
      type, actor: f.actor, outcome: f.outcome ?? 'info', code: f.code ?? null, data: f.data ?? {},
      channel: door?.channel ?? 'system', source: door?.source ?? null,
    };
  }

  async record(type: string, f: AuditFields): Promise<AuditEntry> {
    const entry = await this.store.appendAudit(this.draft(type, f), this.clock());
    this.mirror(entry);
    return entry;
  }

  async recordEventually(type: string, f: AuditFields): Promise<void> {
    if (!this.spool) {
      await this.record(type, f);
      return;
    }
    await this.spool.audit(this.draft(type, f), this.clock());
  }

  /**
   * Every entry this process commits, once, after it is in the chain: appended directly, or from
   * the spool when the store is back. The alert engine reads the facts it derives alerts from
   * here, and the syslog feed (R-A.5c) learns of new entries. An observer must return at once
   * and never throw (its work goes on in the background).
   */
  onCommitted(observer: (entry: AuditEntry) => void): void {
    this.observers.push(observer);
  }

  // The hash goes out too: a SIEM that keeps these lines holds anchors that `verify --anchor`
  // checks, so a truncated or re-hashed chain no longer passes.
  private mirror(entry: AuditEntry): void {
    this.log.info('audit', { audit: { seq: entry.seq, hash: entry.hash, type: entry.type, actor: entry.actor, outcome: entry.outcome, code: entry.code, channel: entry.channel, source: entry.source, data: entry.data } });
    for (const observe of this.observers) {
      try {
        observe(entry);
      } catch (err) {
        this.log.error('audit observer failed', { type: entry.type, seq: entry.seq, error: (err as Error).message });
      }
    }
  }
}
