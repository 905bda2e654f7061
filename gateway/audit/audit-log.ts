import type { ErrorCode } from '../../policy/error-codes.js';
import type { Logger } from '../log/logger.js';
import type { AuditEntry, Store } from '../store/store.js';

export interface AuditFields {
  actor: string;
  outcome?: 'ok' | 'denied' | 'info';
  code?: ErrorCode | null;
  data?: Record<string, unknown>;
}

/**
 * Every decision that grants or denies something goes through here (R-A.3d). Entries are also
 * mirrored to the structured log for a SIEM. A failed append is an error for the caller: a
 * decision that cannot be audited is not taken.
 */
export class AuditLog {
  constructor(private readonly store: Store, private readonly log: Logger, private readonly clock: () => number = Date.now) {}

  async record(type: string, f: AuditFields): Promise<AuditEntry> {
    const entry = await this.store.appendAudit(
      { type, actor: f.actor, outcome: f.outcome ?? 'info', code: f.code ?? null, data: f.data ?? {} },
      this.clock(),
    );
    // The hash goes out too: a SIEM that keeps these lines holds anchors that `verify --anchor`
    // checks, so a truncated or re-hashed chain no longer passes.
    this.log.info('audit', { audit: { seq: entry.seq, hash: entry.hash, type, actor: f.actor, outcome: entry.outcome, code: entry.code, data: entry.data } });
    return entry;
  }
}
