import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { PROTOCOLS as KNOWN_PROTOCOLS } from '../../policy/types.js';
import type { AuditDraft } from '../store/store.js';

/** What the broker tells the metrics about one live session, read only when Prometheus scrapes. */
export interface LiveSessionFigures {
  protocol: string;
  /** Bytes from the user towards the device, and back, relayed so far (the relay's own counters). */
  bytesIn: number;
  bytesOut: number;
  /** Recording bytes accepted but not yet on disk. */
  recordingBacklog: number;
}

/**
 * A label value that can only take a few values: anything else (a made-up method name, a future
 * mode) is counted as `other`, so no input can make the series grow without bound.
 */
const bounded = (value: unknown, allowed: ReadonlySet<string>): string => (typeof value === 'string' && allowed.has(value) ? value : 'other');

const SIGN_IN_METHODS: ReadonlySet<string> = new Set(['password+totp', 'publickey+totp', 'totp-enrolment', 'oidc', 'oidc+totp']);
const COMMAND_MODES: ReadonlySet<string> = new Set(['restricted', 'inspected', 'full']);
const COMMAND_DECISIONS: ReadonlySet<string> = new Set(['allow', 'deny', 'review', 'logged']);
const PROTOCOLS: ReadonlySet<string> = new Set(KNOWN_PROTOCOLS);
const END_REASONS: ReadonlySet<string> = new Set([
  'client_closed', 'device_closed', 'grant_ended', 'access_revoked', 'idle_timeout', 'killed', 'recording_failed', 'gateway_shutdown',
  'command_denied', 'protocol_error', 'interrupted', 'error',
]);

/**
 * The gateway's Prometheus metrics (R-A.5b, R-5.5a: central monitoring and early warning), one
 * registry per running gateway. Nothing here is on the relay's byte path: bytes are read from the
 * relay's own counters when Prometheus scrapes, and everything else is counted per event (a
 * sign-in, a command, a store call, a recording block). No label carries a user name, session id,
 * device name or address: those are in the audit log, and a label per person or session would
 * grow without bound and hand the monitoring system who-did-what.
 */
export class GatewayMetrics {
  readonly registry = new Registry();
  private live: () => Iterable<LiveSessionFigures> = () => [];
  /** Bytes of sessions that have ended here, by protocol and direction; live ones are added at scrape time. */
  private readonly endedBytes = new Map<string, number>();
  private readonly queues = new Map<string, () => number>();

  private readonly signIns: Counter<'outcome' | 'method' | 'channel'>;
  private readonly commands: Counter<'mode' | 'decision'>;
  private readonly sessionsEnded: Counter<'protocol' | 'reason'>;
  private readonly recordingWrite: Histogram;
  private readonly recordedBytes: Counter;
  private readonly storeLatency: Histogram<'operation'>;
  private readonly storeErrors: Counter<'operation'>;

  constructor(readonly node: string, readonly backend: string) {
    const registers = [this.registry];
    // prom-client's process metrics are left out: three of them (nodejs_active_*_total) are
    // gauges named like counters, which promtool rejects; node_exporter covers the host.
    // collect() runs with `this` as the metric; these read the gateway's state for it.
    const liveNow = (): Iterable<LiveSessionFigures> => this.live();
    const { endedBytes, queues } = this;

    new Gauge({
      name: 'portcullis_sessions_live', help: 'Sessions open on this node now, by protocol', labelNames: ['protocol', 'node'], registers,
      collect() {
        this.reset();
        for (const p of PROTOCOLS) this.set({ protocol: p, node: node }, 0);
        for (const s of liveNow()) this.inc({ protocol: bounded(s.protocol, PROTOCOLS), node: node });
      },
    });
    new Counter({
      name: 'portcullis_relayed_bytes_total',
      help: 'Session bytes relayed by this node since it started; direction "in" is user to device, "out" device to user',
      labelNames: ['protocol', 'direction'], registers,
      collect() {
        const sums = new Map(endedBytes);
        for (const s of liveNow()) {
          const p = bounded(s.protocol, PROTOCOLS);
          sums.set(`${p} in`, (sums.get(`${p} in`) ?? 0) + s.bytesIn);
          sums.set(`${p} out`, (sums.get(`${p} out`) ?? 0) + s.bytesOut);
        }
        this.reset();
        for (const [key, n] of sums) {
          const [protocol, direction] = key.split(' ') as [string, string];
          this.inc({ protocol, direction }, n);
        }
      },
    });
    new Gauge({
      name: 'portcullis_recording_backlog_bytes', help: 'Recording bytes accepted from live sessions on this node but not yet on disk', registers,
      collect() {
        let n = 0;
        for (const s of liveNow()) n += s.recordingBacklog;
        this.set(n);
      },
    });
    new Gauge({
      name: 'portcullis_queue_depth',
      help: 'Items waiting in a delivery queue of this node (webhook: notifications not yet delivered; other modules register theirs)',
      labelNames: ['queue'], registers,
      collect() {
        this.reset();
        for (const [queue, depth] of queues) this.set({ queue }, depth());
      },
    });
    this.sessionsEnded = new Counter({ name: 'portcullis_sessions_ended_total', help: 'Sessions ended on this node, by protocol and end reason', labelNames: ['protocol', 'reason'], registers });
    this.signIns = new Counter({
      name: 'portcullis_sign_ins_total', help: 'Sign-in attempts decided on this node: outcome ok, failed (wrong secret) or refused (locked, disabled, rate limited…)',
      labelNames: ['outcome', 'method', 'channel'], registers,
    });
    this.commands = new Counter({
      name: 'portcullis_command_decisions_total', help: 'Command lines decided on this node, by profile mode and decision', labelNames: ['mode', 'decision'], registers,
    });
    this.recordingWrite = new Histogram({
      name: 'portcullis_recording_write_duration_seconds', help: 'Time to write one recording block to disk',
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5], registers,
    });
    this.recordedBytes = new Counter({ name: 'portcullis_recorded_bytes_total', help: 'Recording bytes written to disk by this node (after compression)', registers });
    this.storeLatency = new Histogram({
      name: 'portcullis_store_operation_duration_seconds', help: 'Time a state-store operation took, by Store method (failed ones included)',
      labelNames: ['operation'], buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5], registers,
    });
    this.storeErrors = new Counter({ name: 'portcullis_store_errors_total', help: 'State-store operations that failed, by Store method', labelNames: ['operation'], registers });
    new Gauge({
      name: 'portcullis_store_info', help: 'The state-store backend this node uses (value 1)', labelNames: ['backend', 'node'], registers,
      collect() {
        this.set({ backend: backend, node: node }, 1);
      },
    });
  }

  /**
   * A queue whose depth Prometheus should see as `portcullis_queue_depth{queue="NAME"}` (the
   * webhook's; the syslog spool and the alert queue register theirs). `depth` is called at scrape
   * time and must be cheap. Registering a name again replaces the earlier function.
   */
  registerQueue(queue: string, depth: () => number): void {
    if (!/^[a-z][a-z0-9_]{0,31}$/.test(queue)) throw new Error(`queue name ${JSON.stringify(queue)} must be 1-32 of a-z, 0-9, _`);
    this.queues.set(queue, depth);
  }

  /** Where the live sessions come from (the broker), read at scrape time. */
  watchSessions(live: () => Iterable<LiveSessionFigures>): void {
    this.live = live;
  }

  /** A session ended here: its bytes move from the live sum to the ended totals in the same turn. */
  sessionEnded(s: LiveSessionFigures, reason: string): void {
    const p = bounded(s.protocol, PROTOCOLS);
    this.endedBytes.set(`${p} in`, (this.endedBytes.get(`${p} in`) ?? 0) + s.bytesIn);
    this.endedBytes.set(`${p} out`, (this.endedBytes.get(`${p} out`) ?? 0) + s.bytesOut);
    this.sessionsEnded.inc({ protocol: p, reason: bounded(reason, END_REASONS) });
  }

  /** One recording block reached the disk (both recording formats call this). */
  readonly recordingBlockWritten = (seconds: number, bytes: number): void => {
    this.recordingWrite.observe(seconds);
    this.recordedBytes.inc(bytes);
  };

  storeCall(operation: string, seconds: number, failed: boolean): void {
    this.storeLatency.observe({ operation }, seconds);
    if (failed) this.storeErrors.inc({ operation });
  }

  /**
   * Counts what the audit chain records as it is appended: every sign-in and command decision is
   * an audit entry already (one place, every front door, nothing to forget in a new one).
   */
  auditAppended(draft: AuditDraft): void {
    const d = draft.data;
    switch (draft.type) {
      case 'login.ok':
      case 'login.failed':
      case 'login.refused': {
        const source = typeof d.source === 'string' ? d.source : '';
        this.signIns.inc({
          outcome: draft.type.slice('login.'.length),
          method: bounded(d.method, SIGN_IN_METHODS),
          channel: source.startsWith('ssh ') ? 'ssh' : source.startsWith('web') ? 'web' : 'other',
        });
        break;
      }
      case 'command':
        this.commands.inc({ mode: bounded(d.mode, COMMAND_MODES), decision: bounded(d.decision, COMMAND_DECISIONS) });
        break;
      default:
    }
  }

  /** The text Prometheus scrapes. */
  async text(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}
