import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
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
export async function verifyAll(config: GatewayConfig, store: Store): Promise<VerifyReport> {
  const problems: string[] = [];
  const chain = new ChainVerifier();
  const sealed = new Map<string, { sha256: string; size: number }>();
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
      if (e.type === 'recording.sealed') sealed.set(String(e.data.recording), { sha256: String(e.data.sha256), size: Number(e.data.size) });
    }
    if (broken) break;
    after = (page[page.length - 1] as { seq: number }).seq;
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
