import { randomUUID } from 'node:crypto';
import type { Logger } from '../log/logger.js';
import type { AuditEntry, Store } from '../store/store.js';
import { openSyslogConnection, type SyslogConnection, type SyslogTarget } from './syslog-connection.js';
import { frame, syslogMessage, type SyslogFormat, type SyslogFraming } from './syslog-message.js';

export interface SyslogExportOptions {
  store: Store;
  log: Logger;
  node: string;
  target: SyslogTarget;
  format: SyslogFormat;
  /** tcp only may choose LF; tls is octet-counted (RFC 5425), udp one datagram per message. */
  framing: SyslogFraming;
  /** An entry written to a TCP/TLS connection counts as delivered once the connection outlived it by this. */
  confirmAfterMs: number;
  retryMaxMs: number;
  leaseMs: number;
  /** Entries read from the chain per round. */
  batch?: number;
  clock?: () => number;
}

/** What a metrics endpoint reads (R-A.5c, issue 14's spool depth). */
export interface SyslogExportStatus {
  /** This node holds the lease and is the one sending. */
  sending: boolean;
  connected: boolean;
  /** The chain's last seq, as last seen. */
  head: number;
  /** The last seq confirmed delivered (persisted in the store). */
  delivered: number;
  /** head − delivered: entries waiting for the receiver. */
  backlog: number;
}

const EXPORT_NAME = 'syslog';
const FIRST_RETRY_MS = 250;
const IDLE_POLL_MS = 1000;
const CLOSE_WAIT_MS = 2000;
/** A failure that repeats is logged again at most this often. */
const REPEAT_LOG_MS = 60_000;

/**
 * The SIEM feed (R-A.5c): every audit entry, in chain order, as one RFC 5424 message.
 *
 * The audit chain in the store is the spool: the exporter keeps only a position (the last seq
 * delivered) and reads what follows from the chain by seq, so an entry cannot be lost between
 * the chain and the feed, nor stored twice, and an outage of any length waits in the chain.
 *
 * Delivery is at-least-once. Syslog over TCP has no acknowledgement (RFC 5425/6587); a write the
 * kernel accepted is lost if the receiver dies before reading it. So an entry counts as
 * delivered only when the connection stayed up `confirmAfterMs` after it was written, or when
 * the receiver closed the connection in order after our FIN (it had read everything). When a
 * connection breaks, everything after the last confirmed entry is sent again on the next one:
 * the only duplicates are those entries, exact repeats, and a SIEM removes them by seq. UDP
 * confirms on send: it is lossy.
 *
 * In a cluster one node sends: it holds a lease in the store (claimExport), renewed every third
 * of its length, and only the holder can move the position. When it stops renewing (node lost,
 * store unreachable) another node takes the lease once it lapses and continues from the stored
 * position. A sender that cannot renew stops sending before its lease could have lapsed.
 */
export class SyslogExport {
  private readonly holder: string;
  private readonly clock: () => number;
  private readonly batch: number;
  private holding = false;
  private leaseUntil = 0;
  /** Confirmed delivered (and persisted, or about to be). */
  private confirmed = 0;
  private persisted = 0;
  /** Written on the current connection. */
  private written = 0;
  private inFlight: Array<{ seq: number; at: number }> = [];
  private head = 0;
  private conn: SyslogConnection | null = null;
  private retryMs = FIRST_RETRY_MS;
  private retryAt = 0;
  private stopped = false;
  private pump: Promise<void> | null = null;
  private timer: NodeJS.Timeout | null = null;
  private ticking: Promise<void> | null = null;
  private lastClaimAt = -Infinity;
  private wake: (() => void) | null = null;
  private readonly lastLogged = new Map<string, number>();

  constructor(private readonly o: SyslogExportOptions) {
    this.holder = `${o.node}/${randomUUID()}`;
    this.clock = o.clock ?? Date.now;
    this.batch = o.batch ?? 500;
  }

  get status(): SyslogExportStatus {
    return { sending: this.holding, connected: this.conn !== null, head: this.head, delivered: this.confirmed, backlog: this.backlog };
  }

  /** Entries written to the chain and not yet confirmed delivered (the feed's spool depth). */
  get backlog(): number {
    return Math.max(0, this.head - this.confirmed);
  }

  start(): void {
    const every = Math.min(500, Math.max(50, Math.floor(this.o.confirmAfterMs / 2)));
    this.timer = setInterval(() => { this.ticking ??= this.tick().finally(() => { this.ticking = null; }); }, every);
    this.timer.unref();
    this.ticking = this.tick().finally(() => { this.ticking = null; });
    this.pump = this.run();
  }

  /** An entry reached the chain on this node: send it now rather than at the next poll. */
  entryWritten(entry: AuditEntry): void {
    this.head = Math.max(this.head, entry.seq);
    this.wake?.();
  }

  /** Closes the connection in order, records how far it got and gives the lease up. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.wake?.();
    // A connection attempt to a silent host may take its whole timeout: shutdown does not wait for it (connect() drops a late connection).
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.pump, new Promise((resolve) => { timer = setTimeout(resolve, CLOSE_WAIT_MS); })]);
    clearTimeout(timer);
    await this.ticking;
    // The last entries (the gateway's own `gateway.stopped` among them) go out before the connection closes.
    if (this.holding && this.conn) await this.sendBatch(true).catch(() => false);
    const conn = this.conn;
    this.conn = null;
    if (conn && (await conn.end(CLOSE_WAIT_MS)) && this.written > this.confirmed) this.confirmed = this.written;
    if (!this.holding) return;
    try {
      if (this.confirmed > this.persisted) await this.o.store.advanceExport(EXPORT_NAME, this.holder, this.confirmed);
      await this.o.store.releaseExport(EXPORT_NAME, this.holder);
    } catch (err) {
      this.o.log.warn('syslog: could not record the feed position at stop; the next sender resends from the last one recorded', { error: (err as Error).message });
    }
    this.holding = false;
  }

  // ── the lease, confirmation and the stored position ──

  private async tick(): Promise<void> {
    if (this.stopped) return;
    const now = this.clock();
    this.confirmUpTo(now - this.o.confirmAfterMs);
    try {
      if (now - this.lastClaimAt >= this.o.leaseMs / 3) await this.claim(now);
      if (this.holding && this.confirmed > this.persisted) {
        const to = this.confirmed;
        if (await this.o.store.advanceExport(EXPORT_NAME, this.holder, to)) this.persisted = Math.max(this.persisted, to);
        else this.lose('another node took the syslog lease over');
      }
    } catch (err) {
      this.note('store', 'syslog: the store did not answer; the feed waits', { error: (err as Error).message });
      // Never send on a lease that may have lapsed: another node may have taken it by now.
      if (this.holding && this.clock() >= this.leaseUntil - this.o.leaseMs / 3) this.lose('the syslog lease could not be renewed');
    }
  }

  private async claim(now: number): Promise<void> {
    const [cursor, head] = await Promise.all([
      this.o.store.claimExport(EXPORT_NAME, this.holder, now, this.o.leaseMs),
      this.o.store.lastAuditSeq(),
    ]);
    this.lastClaimAt = now;
    this.head = Math.max(this.head, head);
    if (cursor.holder !== this.holder) {
      if (this.holding) this.lose(`node ${cursor.holder ?? '?'} holds the syslog lease`);
      this.confirmed = cursor.position;
      return;
    }
    this.leaseUntil = cursor.leaseUntil;
    if (!this.holding) {
      // Newly the sender: continue where the last one confirmed.
      this.holding = true;
      this.confirmed = this.persisted = this.written = cursor.position;
      this.inFlight = [];
      this.o.log.info('syslog: this node sends the SIEM feed', { from: cursor.position + 1, head: this.head });
      this.wake?.();
    }
  }

  private lose(why: string): void {
    this.o.log.warn('syslog: this node stops sending the feed', { reason: why });
    this.holding = false;
    this.drop();
  }

  /** Entries written at or before `before` on a connection still up are delivered. */
  private confirmUpTo(before: number): void {
    while (this.inFlight.length > 0 && (this.inFlight[0] as { at: number }).at <= before) {
      this.delivered((this.inFlight.shift() as { seq: number }).seq);
    }
  }

  /** Whether this node's lease still runs by its own clock: past its end another node may be sending. */
  private leaseRuns(): boolean {
    return this.clock() < this.leaseUntil;
  }

  /** The next connection attempt waits: 250ms, doubling up to retryMaxMs, back to 250ms once something is delivered. */
  private backOff(): void {
    this.retryAt = this.clock() + this.retryMs;
    this.retryMs = Math.min(this.retryMs * 2, this.o.retryMaxMs);
  }

  private delivered(seq: number): void {
    this.confirmed = Math.max(this.confirmed, seq);
    this.retryMs = FIRST_RETRY_MS;
    this.lastLogged.delete('broken');
    this.lastLogged.delete('connected');
  }

  /** Forgets the connection; what it did not confirm is sent again on the next. */
  private drop(): void {
    this.conn?.destroy();
    this.conn = null;
    this.inFlight = [];
    this.written = this.confirmed;
    this.wake?.();
  }

  private broken(conn: SyslogConnection, why: string): void {
    if (conn !== this.conn) return;
    // What the connection outlived by confirmAfterMs before it broke was read by the receiver.
    this.confirmUpTo(this.clock() - this.o.confirmAfterMs);
    const resend = this.written - this.confirmed;
    this.note('broken', 'syslog: the connection to the receiver broke', { reason: why, resendFrom: this.confirmed + 1, resend });
    this.drop();
    this.backOff();
  }

  // ── sending ──

  private async run(): Promise<void> {
    while (!this.stopped) {
      try {
        if (!this.holding || !this.leaseRuns()) {
          // Not the sender, or a lease not renewed in time (a stalled process): the tick renews it or lets go.
          await this.pause(this.holding ? 100 : IDLE_POLL_MS);
          continue;
        }
        if (!this.conn) {
          const wait = this.retryAt - this.clock();
          if (wait > 0) {
            await this.pause(wait, false);
            continue;
          }
          if (!(await this.connect())) {
            this.backOff();
            continue;
          }
        }
        if (!(await this.sendBatch())) await this.pause(IDLE_POLL_MS);
      } catch (err) {
        this.note('send', 'syslog: reading the chain failed; retrying', { error: (err as Error).message });
        await this.pause(IDLE_POLL_MS, false);
      }
    }
  }

  private async connect(): Promise<boolean> {
    const t = this.o.target;
    try {
      const conn = await openSyslogConnection(t);
      if (this.stopped || !this.holding) {
        conn.destroy();
        return false;
      }
      this.conn = conn;
      this.written = this.confirmed;
      this.inFlight = [];
      // The wait before the next attempt shrinks only once this connection delivers something:
      // a receiver that accepts and then drops us (say, it refuses our certificate) is not hammered.
      this.lastLogged.delete('connect');
      void conn.closed.then((why) => this.broken(conn, why));
      this.note('connected', 'syslog: connected to the receiver', { transport: t.transport, host: t.host, port: t.port, from: this.confirmed + 1 }, 'info');
      return true;
    } catch (err) {
      this.note('connect', 'syslog: cannot reach the receiver; entries wait in the audit chain', {
        transport: t.transport, host: t.host, port: t.port, error: (err as Error).message, retryInMs: this.retryMs,
      });
      return false;
    }
  }

  /** Sends what follows the written position; false when there was nothing to send. `final`: the last batch, while stopping. */
  private async sendBatch(final = false): Promise<boolean> {
    const conn = this.conn as SyslogConnection;
    const entries = await this.o.store.listAudit({ afterSeq: this.written, limit: this.batch });
    if (entries.length === 0) return false;
    for (const e of entries) {
      if ((this.stopped && !final) || !this.holding || !this.leaseRuns() || this.conn !== conn) return true;
      if (e.seq !== this.written + 1) this.o.log.error('syslog: the audit chain has a gap; `portcullis verify` tells more', { expected: this.written + 1, found: e.seq });
      try {
        await conn.write(frame(syslogMessage(e, this.o.format), this.o.framing));
      } catch (err) {
        this.broken(conn, (err as Error).message);
        return true;
      }
      if (this.conn !== conn) return true;
      this.written = e.seq;
      this.head = Math.max(this.head, e.seq);
      if (conn.stream) this.inFlight.push({ seq: e.seq, at: this.clock() });
      else this.delivered(e.seq); // UDP: sent is all anyone will know
    }
    return true;
  }

  /** Waits `ms`, or less when woken (new entries, a lost connection) unless `wakeable` is false; always ends on stop. */
  private pause(ms: number, wakeable = true): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.wake = null;
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.wake = wakeable ? done : () => { if (this.stopped) done(); };
    });
  }

  private note(key: string, message: string, fields: Record<string, unknown>, level: 'info' | 'warn' = 'warn'): void {
    const now = this.clock();
    if (now - (this.lastLogged.get(key) ?? -Infinity) < REPEAT_LOG_MS) return;
    this.lastLogged.set(key, now);
    this.o.log[level](message, fields);
  }
}
