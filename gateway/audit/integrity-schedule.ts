import { randomUUID } from 'node:crypto';
import { inBackground } from '../log/background.js';
import type { Runtime } from '../runtime.js';
import { StoreUnavailableError } from '../store/store.js';
import { verifyIncrement } from '../verify.js';

/** A run longer than this (a first run over years of recordings) lets another node start one too. */
const RUN_LEASE_MS = 3_600_000;

/**
 * The scheduled integrity check (S-3.5, R-5.5a): every `[integrity] interval`, one node of the
 * cluster verifies what was added since the last verified anchor (verify.ts, verifyIncrement),
 * writes the new anchor into the chain (`integrity.verified`, so the SIEM feed carries it) and
 * sends it to the webhook (`integrity.anchor`), so copies live outside the gateway for
 * `portcullis verify --anchor`. A failure is written as `integrity.failed`, which raises the
 * integrity alert; the anchor then stays where it was, and the next run finds the failure again.
 *
 * Which node runs: each node asks every interval for a claim `integrity:due` that lasts one
 * interval; the one that gets it runs, the others find it taken. No clock is shared beyond the
 * store's claims.
 */
export class IntegritySchedule {
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private readonly intervalMs: number;

  constructor(private readonly rt: Runtime) {
    this.intervalMs = rt.config.integrity.interval;
  }

  start(): void {
    if (!this.rt.config.integrity.enabled || this.timer) return;
    // Asked more often than the interval, so a node that stopped holding the turn is replaced soon.
    this.timer = setInterval(() => this.tick(), Math.min(this.intervalMs, 30_000));
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.running;
  }

  private tick(): void {
    if (this.running) return;
    // A store outage skips this turn quietly; the next one (on whichever node) catches up.
    const run = this.turn().then(() => undefined, (err: unknown) => {
      if (!(err instanceof StoreUnavailableError)) throw err;
    });
    this.running = run.catch(() => undefined).finally(() => { this.running = null; });
    inBackground(this.rt.log, 'scheduled integrity check', run);
  }

  /** Runs one check if it is this node's turn; resolves false when it was not. */
  async turn(): Promise<boolean> {
    const { store, clock } = this.rt;
    const now = clock();
    if (!(await store.claim('integrity:due', randomUUID(), now + this.intervalMs, now))) return false;
    const run = randomUUID();
    if (!(await store.claim('integrity:running', run, now + RUN_LEASE_MS, now))) return false;
    try {
      await this.check(now);
    } finally {
      await store.claim('integrity:running', run, clock(), clock()).catch(() => undefined);
    }
    return true;
  }

  private async check(started: number): Promise<void> {
    const { store, audit, notifier, config, node, log } = this.rt;
    const mark = await store.getIntegrityMark();
    const from = mark ? { seq: mark.seq, hash: mark.hash } : null;
    const report = await verifyIncrement(config, store, from, mark?.at ?? 0);
    if (!report.ok || !report.anchor) {
      log.error('scheduled integrity check failed', { problems: report.problems.slice(0, 5) });
      await audit.record('integrity.failed', {
        actor: 'portcullis', outcome: 'denied',
        data: { from: from?.seq ?? 0, problems: report.problems.slice(0, 20), problemCount: report.problems.length, node },
      });
      return;
    }
    const anchor = report.anchor;
    await store.setIntegrityMark({ seq: anchor.seq, hash: anchor.hash, at: started });
    const data = { anchor: `${anchor.seq}:${anchor.hash}`, seq: anchor.seq, hash: anchor.hash, from: from?.seq ?? 0, entries: report.auditEntries, recordings: report.recordingsVerified, node };
    await audit.record('integrity.verified', { actor: 'portcullis', outcome: 'ok', data });
    notifier.notify('integrity.anchor', data);
  }
}
