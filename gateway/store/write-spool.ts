import { randomUUID } from 'node:crypto';
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import path from 'node:path';
import type { Logger } from '../log/logger.js';
import { StoreUnavailableError, type AuditDraft, type AuditEntry, type CommandFinishPatch, type SessionEndPatch, type Store } from './store.js';

/**
 * Writes that record what already happened: a session ended, a recording was sealed, a command
 * finished, a refusal was made. They cannot be undone by refusing, so when the store is unreachable they wait here,
 * in a file on this node's disk (fsync'd), and go to the store in order once it answers again.
 * Audit appends carry an id, so one that reached the store before the connection broke is not
 * appended twice when it is replayed.
 */
export type SpoolOp =
  | { op: 'audit'; id: string; draft: AuditDraft; now: number }
  | { op: 'sealRecording'; id: string; seal: { sealedAt: number; size: number; sha256: string } }
  | { op: 'endSession'; id: string; patch: SessionEndPatch }
  | { op: 'finishCommand'; id: string; patch: CommandFinishPatch };

const RETRY_MS = 1000;

export class WriteSpool {
  private readonly file: string | null;
  private queue: SpoolOp[] = [];
  private draining: Promise<void> | null = null;
  private timer: NodeJS.Timeout | null = null;
  private closed = false;

  /** Told of every audit entry the spool writes, late ones included (the log mirror for the SIEM). */
  onAuditWritten: (entry: AuditEntry) => void = () => undefined;

  /**
   * `dir` null: no spool, every write goes straight to the store and fails with it (the CLI: its
   * user sees the failure and can retry, and a short-lived process must not leave writes behind).
   */
  constructor(dir: string | null, node: string, private readonly store: Store, private readonly log: Logger) {
    this.file = dir === null ? null : path.join(dir, `${node}.jsonl`);
    if (dir !== null) mkdirSync(dir, { recursive: true, mode: 0o700 });
    this.queue = this.load();
    if (this.queue.length > 0) {
      log.warn('store writes left from an earlier run are waiting to be written', { pending: this.queue.length });
      this.schedule(0);
    }
  }

  get pending(): number {
    return this.queue.length;
  }

  /**
   * Writes now if nothing is waiting and the store answers; otherwise keeps the write for later.
   * Returns the audit entry when an audit append was written at once.
   */
  async submit(op: SpoolOp): Promise<AuditEntry | null> {
    if (this.file === null) return this.apply(op);
    if (this.queue.length === 0 && !this.closed) {
      try {
        return await this.apply(op);
      } catch (err) {
        if (!(err instanceof StoreUnavailableError)) throw err;
        this.log.warn('store unreachable: a write waits in the spool', { op: op.op, error: err.message });
      }
    }
    this.queue.push(op);
    this.append(op);
    this.schedule(RETRY_MS);
    return null;
  }

  audit(draft: AuditDraft, now: number): Promise<AuditEntry | null> {
    return this.submit({ op: 'audit', id: randomUUID(), draft, now });
  }

  private async apply(op: SpoolOp): Promise<AuditEntry | null> {
    switch (op.op) {
      case 'audit': {
        const entry = await this.store.appendAudit(op.draft, op.now, op.id);
        this.onAuditWritten(entry);
        return entry;
      }
      case 'sealRecording':
        await this.store.sealRecording(op.id, op.seal);
        return null;
      case 'endSession':
        await this.store.updateSession(op.id, op.patch);
        return null;
      case 'finishCommand':
        await this.store.updateCommand(op.id, op.patch);
        return null;
    }
  }

  private load(): SpoolOp[] {
    if (this.file === null) return [];
    let text: string;
    try {
      text = readFileSync(this.file, 'utf8');
    } catch {
      return [];
    }
    const ops: SpoolOp[] = [];
    for (const line of text.split('\n')) {
      if (line.trim() === '') continue;
      try {
        ops.push(JSON.parse(line) as SpoolOp);
      } catch {
        // A line cut short by a crash mid-write: the write it held never completed anywhere.
        this.log.error('skipped a torn line in the store spool', { file: this.file });
      }
    }
    return ops;
  }

  private append(op: SpoolOp): void {
    if (this.file === null) return;
    const fd = openSync(this.file, 'a', 0o600);
    try {
      writeSync(fd, `${JSON.stringify(op)}\n`);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  }

  /** The file holds exactly what is still queued. */
  private rewrite(): void {
    if (this.file === null) return;
    if (this.queue.length === 0) {
      rmSync(this.file, { force: true });
      return;
    }
    const tmp = `${this.file}.tmp`;
    writeFileSync(tmp, this.queue.map((op) => `${JSON.stringify(op)}\n`).join(''), { mode: 0o600 });
    renameSync(tmp, this.file);
  }

  private schedule(ms: number): void {
    if (this.timer || this.closed) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.drain();
    }, ms);
    this.timer.unref();
  }

  /** Writes what waits, oldest first, until the queue is empty or the store fails again. */
  drain(): Promise<void> {
    this.draining ??= (async () => {
      let done = 0;
      try {
        while (this.queue.length > 0) {
          await this.apply(this.queue[0] as SpoolOp);
          this.queue.shift();
          done += 1;
        }
        if (done > 0) this.log.info('spooled store writes written', { count: done });
      } catch (err) {
        if (!(err instanceof StoreUnavailableError)) this.log.error('a spooled store write failed', { error: (err as Error).message });
        this.schedule(RETRY_MS);
      } finally {
        if (done > 0) this.rewrite();
        this.draining = null;
      }
    })();
    return this.draining;
  }

  /** Tries once more to write everything, then stops; what is left stays on disk for the next start. */
  async close(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (this.queue.length > 0) await this.drain();
    this.closed = true;
    if (this.queue.length > 0) this.log.warn('store writes remain in the spool for the next start', { pending: this.queue.length, file: this.file });
  }
}
