import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { ChainVerifier } from './audit/audit-chain.js';
import type { GatewayConfig } from './config/load.js';
import type { Store } from './store/store.js';

export interface VerifyReport {
  ok: boolean;
  auditEntries: number;
  recordingsVerified: number;
  recordingsUnsealed: string[];
  problems: string[];
}

export function sha256File(file: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const h = createHash('sha256');
    createReadStream(file).on('data', (c) => h.update(c)).on('error', reject).on('end', () => resolve(h.digest('hex')));
  });
}

/**
 * Checks the audit hash chain end to end, then every sealed recording against the SHA-256 that
 * the chain holds for it (S-3.5). The chain is the reference: the recordings table could be
 * edited along with a file, the chain cannot without breaking.
 */
export interface ChainAnchor {
  seq: number;
  hash: string;
}

export function parseAnchor(text: string): ChainAnchor | null {
  const m = /^(\d+):([0-9a-f]{64})$/.exec(text.trim());
  return m ? { seq: Number(m[1]), hash: m[2] as string } : null;
}

export async function verifyAll(config: GatewayConfig, store: Store, anchors: readonly ChainAnchor[] = []): Promise<VerifyReport> {
  const problems: string[] = [];
  const chain = new ChainVerifier();
  const sealed = new Map<string, { sha256: string; size: number }>();
  const wanted = new Set(anchors.map((a) => a.seq));
  const seen = new Map<number, string>();
  let after = 0;
  let broken = false;
  for (;;) {
    const page = await store.listAudit({ afterSeq: after, limit: 2000 });
    if (page.length === 0) break;
    for (const e of page) {
      const problem = chain.check(e);
      if (problem) {
        problems.push(`audit entry ${problem.seq}: ${problem.reason}`);
        broken = true;
        break;
      }
      if (wanted.has(e.seq)) seen.set(e.seq, e.hash);
      if (e.type === 'recording.sealed') sealed.set(String(e.data.recording), { sha256: String(e.data.sha256), size: Number(e.data.size) });
    }
    if (broken) break;
    after = (page[page.length - 1] as { seq: number }).seq;
  }

  // Anchors kept outside the store (the SIEM's copy of the audit log lines) catch what the
  // chain alone cannot: a cut-off tail, or a chain re-hashed from an edited entry onwards.
  if (!broken) {
    for (const a of anchors) {
      const h = seen.get(a.seq);
      if (h === undefined) problems.push(`audit entry ${a.seq}: missing, but anchored outside the store (the chain was cut off)`);
      else if (h !== a.hash) problems.push(`audit entry ${a.seq}: differs from its anchor (the chain was rewritten)`);
    }
  }

  let verified = 0;
  const unsealed: string[] = [];
  const recordings = await store.listRecordings();
  const indexed = new Set(recordings.map((r) => r.id));
  // A seal in the chain whose recording vanished from the index is evidence removed.
  for (const id of sealed.keys()) {
    if (!indexed.has(id)) problems.push(`recording ${id}: sealed in the audit chain but missing from the recordings index`);
  }
  for (const rec of recordings) {
    const file = path.join(config.paths.recordings, rec.path);
    const seal = sealed.get(rec.id);
    if (!seal) {
      if (rec.sealedAt !== null) problems.push(`recording ${rec.id} (${file}): marked sealed but its seal is not in the audit chain`);
      else unsealed.push(rec.id);
      continue;
    }
    let actual: string;
    try {
      actual = await sha256File(file);
    } catch (err) {
      problems.push(`recording ${rec.id} (${file}): cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
      continue;
    }
    if (actual !== seal.sha256) problems.push(`recording ${rec.id} (${file}): SHA-256 does not match the sealed value (the file was changed)`);
    else if (rec.sha256 !== null && rec.sha256 !== seal.sha256) problems.push(`recording ${rec.id}: the recordings index disagrees with the audit chain`);
    else verified += 1;
  }
  return { ok: problems.length === 0, auditEntries: chain.count, recordingsVerified: verified, recordingsUnsealed: unsealed, problems };
}

export interface IncrementReport {
  ok: boolean;
  /** The last entry verified: where the next increment starts (the previous anchor when nothing was appended). */
  anchor: ChainAnchor | null;
  /** The anchor this increment started after (null: from the genesis). */
  from: ChainAnchor | null;
  auditEntries: number;
  recordingsVerified: number;
  problems: string[];
}

/**
 * One increment of the scheduled integrity check: the chain from the last verified anchor on
 * (which must itself still be in the chain, unchanged), the recordings sealed in that part, and
 * every older sealed recording whose file was modified (time or size) since `since`. A full
 * `verifyAll` (`portcullis verify`) still re-hashes every file, for a change that kept its mtime.
 */
export async function verifyIncrement(config: GatewayConfig, store: Store, from: ChainAnchor | null, since: number): Promise<IncrementReport> {
  const problems: string[] = [];
  if (from) {
    const [at] = await store.listAudit({ afterSeq: from.seq - 1, limit: 1 });
    if (!at || at.seq !== from.seq) problems.push(`audit entry ${from.seq}: missing, but verified before (the chain was cut off)`);
    else if (at.hash !== from.hash) problems.push(`audit entry ${from.seq}: differs from the anchor verified before (the chain was rewritten)`);
    if (problems.length > 0) return { ok: false, anchor: null, from, auditEntries: 0, recordingsVerified: 0, problems };
  }
  const chain = new ChainVerifier(from);
  const sealedNow = new Map<string, { sha256: string; size: number }>();
  let anchor = from;
  let after = from?.seq ?? 0;
  for (;;) {
    const page = await store.listAudit({ afterSeq: after, limit: 2000 });
    if (page.length === 0) break;
    let broken = false;
    for (const e of page) {
      const problem = chain.check(e);
      if (problem) {
        problems.push(`audit entry ${problem.seq}: ${problem.reason}`);
        broken = true;
        break;
      }
      anchor = { seq: e.seq, hash: e.hash };
      if (e.type === 'recording.sealed') sealedNow.set(String(e.data.recording), { sha256: String(e.data.sha256), size: Number(e.data.size) });
    }
    if (broken) break;
    after = (page[page.length - 1] as { seq: number }).seq;
  }

  let verified = 0;
  const recordings = new Map((await store.listRecordings()).map((r) => [r.id, r]));
  for (const id of sealedNow.keys()) {
    if (!recordings.has(id)) problems.push(`recording ${id}: sealed in the audit chain but missing from the recordings index`);
  }
  for (const rec of recordings.values()) {
    const file = path.join(config.paths.recordings, rec.path);
    const seal = sealedNow.get(rec.id);
    if (!seal && rec.sha256 === null) continue;
    if (!seal) {
      // Sealed before this increment: re-hashed only when its file changed since the last run.
      const st = await stat(file).catch((err: NodeJS.ErrnoException) => err);
      if (st instanceof Error) {
        problems.push(`recording ${rec.id} (${file}): cannot be read (${st.code ?? 'error'})`);
        continue;
      }
      if (st.mtimeMs <= since && st.size === rec.size) continue;
    }
    let actual: string;
    try {
      actual = await sha256File(file);
    } catch (err) {
      problems.push(`recording ${rec.id} (${file}): cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
      continue;
    }
    const expected = seal?.sha256 ?? rec.sha256;
    if (actual !== expected) problems.push(`recording ${rec.id} (${file}): SHA-256 does not match the sealed value (the file was changed)`);
    else if (seal && rec.sha256 !== seal.sha256) problems.push(`recording ${rec.id}: the recordings index disagrees with the audit chain`);
    else verified += 1;
  }
  return { ok: problems.length === 0, anchor: problems.length === 0 ? anchor : null, from, auditEntries: chain.count, recordingsVerified: verified, problems };
}
