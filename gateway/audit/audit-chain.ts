import { createHash } from 'node:crypto';
import type { AuditEntry } from '../store/store.js';
import { canonicalJson } from './canonical-json.js';

export const GENESIS_HASH = '0'.repeat(64);

/**
 * The part of an entry the hash covers: everything but the hashes themselves. Channel and source
 * are covered when the entry has them; entries from before they were recorded hash as they did.
 */
export function hashedBody(e: Omit<AuditEntry, 'hash' | 'prevHash' | 'channel' | 'source'> & { channel?: string | null; source?: string | null }): Record<string, unknown> {
  const body: Record<string, unknown> = { seq: e.seq, ts: e.ts, type: e.type, actor: e.actor, outcome: e.outcome, code: e.code, data: e.data };
  if (e.channel != null) {
    body.channel = e.channel;
    body.source = e.source ?? null;
  }
  return body;
}

/** hash = SHA-256(prev_hash ‖ canonical JSON of the entry), hex. */
export function chainHash(prevHash: string, body: Record<string, unknown>): string {
  return createHash('sha256').update(prevHash).update(canonicalJson(body)).digest('hex');
}

export type ChainProblem = { seq: number; reason: string };

/** Walks entries in order; returns the first break, or null when the chain holds. */
export class ChainVerifier {
  private prev: string;
  private expectedSeq: number;
  count = 0;

  /** From the start of the chain, or from an entry already verified (its seq and hash): the next is checked against it. */
  constructor(after: { seq: number; hash: string } | null = null) {
    this.prev = after?.hash ?? GENESIS_HASH;
    this.expectedSeq = (after?.seq ?? 0) + 1;
  }

  check(e: AuditEntry): ChainProblem | null {
    if (e.seq !== this.expectedSeq) return { seq: e.seq, reason: `sequence gap: expected entry ${this.expectedSeq}` };
    if (e.prevHash !== this.prev) return { seq: e.seq, reason: 'prev_hash does not match the previous entry (an entry was removed or reordered)' };
    const h = chainHash(e.prevHash, hashedBody(e));
    if (h !== e.hash) return { seq: e.seq, reason: 'content does not match its hash (the entry was edited)' };
    this.prev = e.hash;
    this.expectedSeq += 1;
    this.count += 1;
    return null;
  }
}
