import { afterEach, describe, expect, it } from 'vitest';
import { DEFAULT_ALERT_SETTINGS } from '../../policy/alert-rules.js';
import { AlertEngine } from '../../gateway/alerts/alert-engine.js';
import { AuditLog } from '../../gateway/audit/audit-log.js';
import { RedisBus } from '../../gateway/cluster/redis-bus.js';
import { Membership } from '../../gateway/cluster/membership.js';
import { createLogger } from '../../gateway/log/logger.js';
import { NO_NOTIFIER, type Notifier } from '../../gateway/notify/notifier.js';
import type { RedisStore } from '../../gateway/store/redis-store.js';
import type { AuditEntry, DeviceRecord } from '../../gateway/store/store.js';
import { openTestRedisStore, uniquePrefix } from '../support/redis.js';

/**
 * Issue 14: alerts in a cluster are raised once, not once per node. Two nodes on one real Redis
 * (each its own store connection, audit log, bus and alert engine) watch a third that stops
 * beating, share one failed-sign-in count, and sample a delivery queue through the hook the syslog
 * export uses; and the level-3 rules look the device up in the store.
 */
interface Node { store: RedisStore; audit: AuditLog; engine: AlertEngine; bus: RedisBus; membership: Membership | null; sent: Array<[string, Record<string, unknown>]> }

const log = createLogger('error');
const cleanup: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c();
});

async function cluster(n: number): Promise<{ nodes: Node[]; store: RedisStore }> {
  const prefix = uniquePrefix();
  const nodes: Node[] = [];
  for (let i = 0; i < n; i++) {
    const store = await openTestRedisStore(prefix);
    const bus = await RedisBus.open(store, log);
    const audit = new AuditLog(store, log);
    const sent: Node['sent'] = [];
    const webhook: Notifier = { ...NO_NOTIFIER, notify: (event, data) => { sent.push([event, data]); } };
    const engine = new AlertEngine({ store, audit, bus, webhook, log, node: `gw-${i}`, settings: DEFAULT_ALERT_SETTINGS, sampleEveryMs: 50 });
    nodes.push({ store, audit, engine, bus, membership: null, sent });
  }
  const store = nodes[0]?.store as RedisStore;
  cleanup.push(async () => {
    for (const x of nodes) {
      await x.membership?.stop();
      await x.engine.stop();
      await x.bus.close();
    }
    await store.dropAll();
    for (const x of nodes) await x.store.close();
  });
  return { nodes, store };
}

async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, ms = 20_000): Promise<T> {
  const until = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
const entries = (store: RedisStore, type: string): Promise<AuditEntry[]> => store.listAudit({ type, limit: 1000 });

describe('alerts across the nodes of a cluster (Redis)', () => {
  it('a node whose heartbeat lapses is lost once, whichever node notices; one that leaves cleanly is not', async () => {
    const { nodes, store } = await cluster(2);
    for (const [i, x] of nodes.entries()) {
      x.membership = new Membership(x.store, x.audit, log, { node: `gw-${i}`, heartbeatMs: 100, nodeTimeoutMs: 1000, ssh: ':2222', web: ':8443', liveHere: () => new Set() });
      await x.membership.start();
    }
    /**
     * Resolves once both watchers have finished a whole round (beat, then look at the others) that
     * began after `t`: a round's beat comes first, and rounds never overlap, so a second beat after
     * `t` means the round of the first one is over.
     */
    const roundsAfter = async (t: number): Promise<void> => {
      const beatAfter = async (after: number): Promise<number> => waitFor('both nodes beating', async () => {
        const mine = (await store.listNodes(Date.now())).filter((n) => n.id === 'gw-0' || n.id === 'gw-1');
        return mine.length === 2 && mine.every((n) => n.lastSeenAt > after) ? Math.max(...mine.map((n) => n.lastSeenAt)) : undefined;
      });
      await beatAfter(await beatAfter(t));
    };
    // A third node that beats once and dies (its record lapses), and a fourth that leaves cleanly.
    const now = Date.now();
    await store.heartbeat({ id: 'gw-dead', instance: 'i-dead', startedAt: now, lastSeenAt: now, expiresAt: now + 5000, ssh: ':1', web: ':1' });
    await store.heartbeat({ id: 'gw-left', instance: 'i-left', startedAt: now, lastSeenAt: now, expiresAt: now + 60_000, ssh: ':2', web: ':2' });
    // Both watchers have seen both before anything happens to them.
    await roundsAfter(Date.now());
    await store.removeNode('gw-left', 'i-left');
    const lost = await waitFor('node.lost', async () => (await entries(store, 'node.lost'))[0]);
    expect(lost.data).toMatchObject({ node: 'gw-dead', instance: 'i-dead' });
    const alert = await waitFor('alert.node_lost', async () => (await entries(store, 'alert.node_lost'))[0]);
    expect(alert.data).toMatchObject({ kind: 'node_lost', severity: 'err', subject: 'gw-dead/i-dead', triggers: [lost.seq] });
    // More heartbeat rounds on both nodes: still one of each, and the clean leaver never.
    for (let i = 0; i < 5; i++) await roundsAfter(Date.now());
    expect(await entries(store, 'node.lost')).toHaveLength(1);
    expect(await entries(store, 'alert.node_lost')).toHaveLength(1);
    expect(nodes.flatMap((x) => x.sent).filter(([e]) => e === 'alert.raised')).toHaveLength(1);
  });

  it('counts failed sign-ins from one address across nodes, and raises one alert', async () => {
    const { nodes, store } = await cluster(2);
    const fail = (i: number, user: string): Promise<AuditEntry> => (nodes[i % 2] as Node).audit.record('login.failed', {
      actor: user, outcome: 'denied', code: 'AUTH_FAILED', data: { user, source: `ssh 10.7.7.7:${40000 + i}`, reason: 'wrong password' },
    });
    const seqs: number[] = [];
    for (let i = 0; i < 4; i++) seqs.push((await fail(i, `u${i}`)).seq);
    // Four, spread over two nodes: below the threshold of five.
    const idle = (): Promise<unknown> => Promise.all(nodes.map((x) => x.engine.idle()));
    await idle();
    expect(await entries(store, 'alert.failed_sign_ins')).toEqual([]);
    seqs.push((await fail(4, 'u4')).seq);
    await idle();
    const raised = await entries(store, 'alert.failed_sign_ins');
    expect(raised).toHaveLength(1);
    expect(raised[0]?.data).toMatchObject({ subject: '10.7.7.7', triggers: seqs, node: 'gw-0' });
    // More from the same address, on either node, within the quiet period: nothing more.
    for (let i = 5; i < 9; i++) await fail(i, `u${i}`);
    await idle();
    expect(await entries(store, 'alert.failed_sign_ins')).toHaveLength(1);
  });

  it('raises level-3 alerts from the device the store knows, and samples a queue through the syslog hook once per quiet period', async () => {
    const { nodes, store } = await cluster(1);
    const node = nodes[0] as Node;
    const device = (name: string, level3: boolean): DeviceRecord => ({
      name, host: '10.0.0.1', ports: { ssh: 22 }, protocols: ['ssh'], udi: null, ip: null, mac: null, type: null, manufacturer: null, model: null,
      department: null, location: null, state: 'active', lifecycle: [], hostKeyAlgo: null, hostKeyBlob: null, rdpCertSha256: null, createdAt: Date.now(),
      classification: level3 ? { usageForm: 'ionising-radiation', contact: 'body', severity: 'serious', effect: null } : { usageForm: 'laboratory', contact: 'none', severity: null, effect: 'none' },
    });
    await store.createDevice(device('ct-01', true));
    await store.createDevice(device('lab-01', false));
    await node.audit.record('session.start', { actor: 'vic', outcome: 'ok', data: { session: 's-lab', device: 'lab-01', protocol: 'ssh' } });
    const start = await node.audit.record('session.start', { actor: 'vic', outcome: 'ok', data: { session: 's-ct', device: 'ct-01', protocol: 'ssh', client: '10.1.1.1' } });
    const dl = await node.audit.record('file.transferred', { actor: 'vic', outcome: 'ok', data: { session: 's-ct', device: 'ct-01', op: 'download', path: '/etc/ct.conf', bytes: 10, outcome: 'ok' } });
    await node.audit.record('file.transferred', { actor: 'vic', outcome: 'ok', data: { session: 's-ct', device: 'ct-01', op: 'download', path: '/etc/other', bytes: 10, outcome: 'ok' } });
    let depth = 99;
    let samples = 0;
    node.engine.watchQueue('syslog', () => { samples += 1; return depth; });
    node.engine.start();
    const samplesMore = async (n: number): Promise<void> => {
      const target = samples + n;
      await waitFor(`${n} samples`, async () => (samples >= target ? true : undefined));
      await node.engine.idle();
    };
    // Below the threshold of 100: nothing.
    await samplesMore(3);
    expect(await entries(store, 'alert.delivery_queue')).toEqual([]);
    depth = 150;
    const queue = await waitFor('alert.delivery_queue', async () => (await entries(store, 'alert.delivery_queue'))[0]);
    expect(queue.data).toMatchObject({ kind: 'delivery_queue', subject: 'gw-0/syslog', triggers: [] });
    expect(String(queue.data.summary)).toContain('150');
    // Still full on later samples: quiet for the suppression period.
    await samplesMore(3);
    await node.engine.stop();
    expect(await entries(store, 'alert.delivery_queue')).toHaveLength(1);
    const sessions = await entries(store, 'alert.level3_session');
    expect(sessions.map((e) => e.data.triggers)).toEqual([[start.seq]]);
    // The second download within the quiet period of that session raised nothing more.
    const downloads = await entries(store, 'alert.level3_download');
    expect(downloads.map((e) => e.data.triggers)).toEqual([[dl.seq]]);
    expect(String(downloads[0]?.data.summary)).toContain('/etc/ct.conf');
  });
});
