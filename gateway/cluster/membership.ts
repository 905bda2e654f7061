import { randomUUID } from 'node:crypto';
import type { AuditLog } from '../audit/audit-log.js';
import { inBackground } from '../log/background.js';
import type { Logger } from '../log/logger.js';
import { StoreUnavailableError, type NodeRecord, type Store } from '../store/store.js';

export interface MembershipOptions {
  node: string;
  heartbeatMs: number;
  nodeTimeoutMs: number;
  ssh: string;
  web: string;
  /** Sessions this process holds right now (never marked interrupted by it). */
  liveHere: () => ReadonlySet<string>;
  clock?: () => number;
}

/**
 * This node's heartbeat in the store, and the watch over the others': a session whose node has
 * stopped beating is marked `interrupted` (its recording stays unsealed; `verify` lists it). A
 * node only reaps after it has itself seen the other silent for a whole timeout while it was
 * connected, so coming back from a store outage (when every heartbeat looks stale) reaps nobody.
 */
export class Membership {
  readonly instance = randomUUID();
  private readonly startedAt: number;
  private timer: NodeJS.Timeout | null = null;
  /** Per node id: when this node first saw it without a heartbeat, since its last successful read. */
  private readonly silentSince = new Map<string, number>();
  /** The other nodes' last heartbeats this node read, to tell one that lapsed (lost) from one that left. */
  private readonly known = new Map<string, NodeRecord>();
  private beating = false;
  private readonly clock: () => number;

  constructor(private readonly store: Store, private readonly audit: AuditLog, private readonly log: Logger, private readonly o: MembershipOptions) {
    this.clock = o.clock ?? Date.now;
    this.startedAt = this.clock();
  }

  /** Claims the node id (refusing one that another live process holds), then beats. */
  async start(): Promise<void> {
    await this.claimId();
    await this.beat();
    await this.reapOwn();
    this.timer = setInterval(() => inBackground(this.log, 'cluster heartbeat', this.tick()), this.o.heartbeatMs);
    this.timer.unref();
  }

  /**
   * A heartbeat under our id from another instance is either a process still running (it keeps
   * beating: refuse to start) or this node's previous life that crashed (it lapses within the
   * timeout: wait for that).
   */
  private async claimId(): Promise<void> {
    const find = async () => (await this.store.listNodes(this.clock())).find((n) => n.id === this.o.node && n.instance !== this.instance);
    const first = await find();
    if (!first) return;
    const deadline = this.clock() + this.o.nodeTimeoutMs + this.o.heartbeatMs;
    while (this.clock() < deadline) {
      await new Promise((r) => setTimeout(r, this.o.heartbeatMs));
      const now = await find();
      if (!now) return;
      if (now.lastSeenAt !== first.lastSeenAt) {
        throw new Error(`another gateway process already runs as node "${this.o.node}" (ssh ${now.ssh}, started ${new Date(now.startedAt).toISOString()}); give each node its own [cluster] node_id`);
      }
    }
  }

  private async beat(): Promise<void> {
    const now = this.clock();
    await this.store.heartbeat({
      id: this.o.node, instance: this.instance, startedAt: this.startedAt, lastSeenAt: now, expiresAt: now + this.o.nodeTimeoutMs, ssh: this.o.ssh, web: this.o.web,
    });
  }

  private async tick(): Promise<void> {
    if (this.beating) return;
    this.beating = true;
    try {
      await this.beat();
      await this.reapOthers();
      await this.watchNodes();
    } catch (err) {
      // Through an outage we know nothing of the others; start watching afresh once it ends.
      this.silentSince.clear();
      this.known.clear();
      if (!(err instanceof StoreUnavailableError)) throw err;
    } finally {
      this.beating = false;
    }
  }

  /** Sessions this node left open when it last stopped without closing them (a crash). */
  private async reapOwn(): Promise<void> {
    const open = await this.store.listSessions({ limit: 100_000, open: true });
    const here = this.o.liveHere();
    for (const s of open) {
      if (s.node === this.o.node && !here.has(s.id)) await this.interrupt(s.id, s.user, s.device, s.node, s.startedAt, 'the node restarted');
    }
  }

  private async reapOthers(): Promise<void> {
    const now = this.clock();
    const alive = new Set((await this.store.listNodes(now)).map((n) => n.id));
    const open = await this.store.listSessions({ limit: 100_000, open: true });
    const silentNodes = new Set(open.map((s) => s.node).filter((id) => id !== this.o.node && !alive.has(id)));
    for (const id of [...this.silentSince.keys()]) if (!silentNodes.has(id)) this.silentSince.delete(id);
    for (const id of silentNodes) if (!this.silentSince.has(id)) this.silentSince.set(id, now);
    for (const s of open) {
      const since = this.silentSince.get(s.node);
      if (since !== undefined && now - since >= this.o.nodeTimeoutMs) {
        await this.interrupt(s.id, s.user, s.device, s.node, s.startedAt, `node ${s.node} stopped sending heartbeats`);
      }
    }
  }

  /**
   * A node whose heartbeat lapsed is lost (`node.lost` in the audit log, which raises the
   * node_lost alert); one that removed its heartbeat before it lapsed stopped cleanly. Every node
   * watches, and a claim in the store lets one of them write the entry, once per lost process.
   */
  private async watchNodes(): Promise<void> {
    const now = this.clock();
    const alive = await this.store.listNodes(now);
    const ids = new Set(alive.map((n) => n.id));
    for (const [id, last] of [...this.known]) {
      if (ids.has(id)) continue;
      this.known.delete(id);
      if (now < last.expiresAt) continue;
      if (!(await this.store.claim(`node.lost:${id}:${last.instance}`, this.instance, now + 86_400_000, now))) continue;
      await this.audit.record('node.lost', {
        actor: 'portcullis', outcome: 'info',
        data: { node: id, instance: last.instance, lastSeen: new Date(last.lastSeenAt).toISOString(), detectedBy: this.o.node },
      });
    }
    for (const n of alive) if (n.id !== this.o.node) this.known.set(n.id, n);
  }

  private async interrupt(id: string, user: string, device: string, node: string, startedAt: number, why: string): Promise<void> {
    const now = this.clock();
    // Only one node wins this, so the audit entry is written once.
    const won = await this.store.endSessionIfOpen(id, { endedAt: now, endReason: 'interrupted', exitStatus: null, bytesIn: 0, bytesOut: 0 });
    if (!won) return;
    this.log.warn('session marked interrupted', { session: id, node, why });
    await this.audit.record('session.interrupted', {
      actor: 'portcullis', outcome: 'info',
      data: { session: id, user, device, node, detectedBy: this.o.node, why, durationMs: now - startedAt },
    });
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.store.removeNode(this.o.node, this.instance).catch(() => undefined);
  }
}
