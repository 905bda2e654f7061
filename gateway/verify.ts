import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { ChainVerifier } from './audit/audit-chain.js';
import type { GatewayConfig } from './config/load.js';
import type { AuditEntry, Store } from './store/store.js';

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

/** A recording's seal as the audit chain holds it. */
interface Seal {
  sha256: string;
  size: number;
}

interface ChainWalk {
  verifier: ChainVerifier;
  /** The recordings sealed in the part walked, by id. */
  sealed: Map<string, Seal>;
  /** The last entry that checked out (`from` when none did). */
  last: ChainAnchor | null;
  /** The first broken link, said as a problem; null when the chain held to its end. */
  problem: string | null;
}

/** Walks the chain after `from` (its start when null), checking every link, up to the first broken one. */
async function walkChain(store: Store, from: ChainAnchor | null, each: (e: AuditEntry) => void = () => undefined): Promise<ChainWalk> {
  const verifier = new ChainVerifier(from);
  const sealed = new Map<string, Seal>();
  let last = from;
  let after = from?.seq ?? 0;
  for (;;) {
    const page = await store.listAudit({ afterSeq: after, limit: 2000 });
    if (page.length === 0) return { verifier, sealed, last, problem: null };
    for (const e of page) {
      const problem = verifier.check(e);
      if (problem) return { verifier, sealed, last, problem: `audit entry ${problem.seq}: ${problem.reason}` };
      last = { seq: e.seq, hash: e.hash };
      each(e);
      if (e.type === 'recording.sealed') sealed.set(String(e.data.recording), { sha256: String(e.data.sha256), size: Number(e.data.size) });
    }
    after = (page[page.length - 1] as { seq: number }).seq;
  }
}

/** A seal in the chain whose recording vanished from the index is evidence removed. */
function sealsMissingFromIndex(sealed: ReadonlyMap<string, Seal>, indexed: { has(id: string): boolean }): string[] {
  return [...sealed.keys()].filter((id) => !indexed.has(id)).map((id) => `recording ${id}: sealed in the audit chain but missing from the recordings index`);
}

/** A recording's file hashed against the value it must have: null when it matches, else the problem. */
async function fileProblem(id: string, file: string, expected: string | null): Promise<string | null> {
  let actual: string;
  try {
    actual = await sha256File(file);
  } catch (err) {
    return `recording ${id} (${file}): cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'})`;
  }
  return actual === expected ? null : `recording ${id} (${file}): SHA-256 does not match the sealed value (the file was changed)`;
}

export async function verifyAll(config: GatewayConfig, store: Store, anchors: readonly ChainAnchor[] = []): Promise<VerifyReport> {
  const problems: string[] = [];
  const wanted = new Set(anchors.map((a) => a.seq));
  const seen = new Map<number, string>();
  const walk = await walkChain(store, null, (e) => {
    if (wanted.has(e.seq)) seen.set(e.seq, e.hash);
  });
  if (walk.problem) problems.push(walk.problem);

  // Anchors kept outside the store (the SIEM's copy of the audit log lines) catch what the
  // chain alone cannot: a cut-off tail, or a chain re-hashed from an edited entry onwards.
  if (!walk.problem) {
    for (const a of anchors) {
      const h = seen.get(a.seq);
      if (h === undefined) problems.push(`audit entry ${a.seq}: missing, but anchored outside the store (the chain was cut off)`);
      else if (h !== a.hash) problems.push(`audit entry ${a.seq}: differs from its anchor (the chain was rewritten)`);
    }
  }

  let verified = 0;
  const unsealed: string[] = [];
  const recordings = await store.listRecordings();
  problems.push(...sealsMissingFromIndex(walk.sealed, new Set(recordings.map((r) => r.id))));
  for (const rec of recordings) {
    const file = path.join(config.paths.recordings, rec.path);
    const seal = walk.sealed.get(rec.id);
    if (!seal) {
      if (rec.sealedAt !== null) problems.push(`recording ${rec.id} (${file}): marked sealed but its seal is not in the audit chain`);
      else unsealed.push(rec.id);
      continue;
    }
    const problem = await fileProblem(rec.id, file, seal.sha256);
    if (problem) problems.push(problem);
    else if (rec.sha256 !== null && rec.sha256 !== seal.sha256) problems.push(`recording ${rec.id}: the recordings index disagrees with the audit chain`);
    else verified += 1;
  }
  return { ok: problems.length === 0, auditEntries: walk.verifier.count, recordingsVerified: verified, recordingsUnsealed: unsealed, problems };
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
  const walk = await walkChain(store, from);
  if (walk.problem) problems.push(walk.problem);

  let verified = 0;
  const recordings = new Map((await store.listRecordings()).map((r) => [r.id, r]));
  problems.push(...sealsMissingFromIndex(walk.sealed, recordings));
  for (const rec of recordings.values()) {
    const file = path.join(config.paths.recordings, rec.path);
    const seal = walk.sealed.get(rec.id);
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
    const problem = await fileProblem(rec.id, file, seal?.sha256 ?? rec.sha256);
    if (problem) problems.push(problem);
    else if (seal && rec.sha256 !== seal.sha256) problems.push(`recording ${rec.id}: the recordings index disagrees with the audit chain`);
    else verified += 1;
  }
  return { ok: problems.length === 0, anchor: problems.length === 0 ? walk.last : null, from, auditEntries: walk.verifier.count, recordingsVerified: verified, problems };
}
