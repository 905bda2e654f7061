import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../gateway/log/logger.js';
import { RedisStore } from '../../gateway/store/redis-store.js';
import { startPrivateRedis, type PrivateRedis } from '../support/redis.js';

// S-3.5, R-A.3d: with `wait_replicas`, an audit entry counts as written only once a replica holds
// it too, so losing the primary right after does not lose the evidence.
describe('Redis replica acknowledgement (store.wait_replicas)', () => {
  let primary: PrivateRedis;
  let replica: PrivateRedis;
  const stores: RedisStore[] = [];

  beforeAll(async () => {
    primary = await startPrivateRedis();
    replica = await startPrivateRedis({ replicaOf: primary.port });
  });
  afterAll(async () => {
    for (const s of stores) await s.close();
    await replica?.close();
    await primary?.close();
  });

  it('returns from an audit append only once the replica has the entry', async () => {
    const log = createLogger('error');
    const onReplica = await RedisStore.open({ url: replica.url, prefix: 'w:', log });
    stores.push(onReplica);
    // Until the replica has synchronised, WAIT would count zero; wait for the link first.
    const writer = await RedisStore.open({ url: primary.url, prefix: 'w:', log, waitReplicas: 1, commandTimeoutMs: 3000 });
    stores.push(writer);
    await expect.poll(async () => {
      await writer.appendAudit({ type: 'probe', actor: 't', outcome: 'info', code: null, data: {} }, Date.now());
      return (await onReplica.listAudit({ type: 'probe' })).length;
    }, { timeout: 30_000, interval: 200 }).toBeGreaterThan(0);
    for (let i = 0; i < 20; i++) {
      const e = await writer.appendAudit({ type: 'evidence', actor: 't', outcome: 'info', code: null, data: { i } }, Date.now());
      // Read from the replica right after the append returned: it is there already.
      const there = await onReplica.listAudit({ afterSeq: e.seq - 1, limit: 1 });
      expect(there[0]?.hash).toBe(e.hash);
    }
  });

  it('still writes when the replica hangs, and says that the replica did not acknowledge', async () => {
    const lines: string[] = [];
    const writer = await RedisStore.open({ url: primary.url, prefix: 'w:', log: createLogger('warn', (l) => lines.push(l)), waitReplicas: 1, commandTimeoutMs: 1500 });
    stores.push(writer);
    replica.pause();
    try {
      const e = await writer.appendAudit({ type: 'evidence', actor: 't', outcome: 'info', code: null, data: { hung: true } }, Date.now());
      expect((await writer.listAudit({ afterSeq: e.seq - 1, limit: 1 }))[0]?.hash).toBe(e.hash);
    } finally {
      replica.resume();
    }
    const warning = lines.map((l) => JSON.parse(l) as { msg: string; acked?: number; wanted?: number }).find((l) => l.msg.includes('replicas'));
    expect(warning).toMatchObject({ acked: 0, wanted: 1 });
  });
});
