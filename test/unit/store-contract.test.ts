import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { ChainVerifier, GENESIS_HASH } from '../../gateway/audit/audit-chain.js';
import { SqliteStore } from '../../gateway/store/sqlite-store.js';
import type { DeviceRecord, GrantRecord, Store, UserRecord } from '../../gateway/store/store.js';

/**
 * The one contract every Store backend passes. A new backend adds a line to BACKENDS and must
 * pass all of it unchanged.
 */
const dir = mkdtempSync(path.join(os.tmpdir(), 'pc-store-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
const BACKENDS: Array<[string, () => Promise<Store>]> = [
  ['sqlite', async () => new SqliteStore(path.join(dir, `s${n++}.db`))],
];

const T = 1_800_000_000_000;
const user = (name: string): UserRecord => ({
  name, roles: ['vendor'], org: 'Acme', passwordHash: 'scrypt$x', totpSealed: 'v1:abc', totpLastStep: 0, failedLogins: 0,
  lockedUntil: null, disabled: false, expiresAt: null, publicKeys: [], createdAt: T,
});
const device = (name: string, udi: string | null = null): DeviceRecord => ({
  name, host: '10.0.0.1', port: 22, protocols: ['ssh'], udi, ip: null, mac: null, state: 'active', hostKeyAlgo: null, hostKeyBlob: null, createdAt: T,
});
const grant = (id: string, u: string, d: string): GrantRecord => ({
  id, user: u, device: d, protocol: 'ssh', notBefore: T, notAfter: T + 3_600_000, createdBy: 'admin', createdAt: T, revokedAt: null,
  revokedBy: null, requestId: null, profile: null, allowFileTransfer: false,
});

describe.each(BACKENDS)('Store contract: %s', (_name, open) => {
  let store: Store;
  beforeEach(async () => {
    store = await open();
    return async () => store.close();
  });

  it('creates, reads, patches and lists users; refuses a duplicate name', async () => {
    await store.createUser(user('alice'));
    await store.createUser(user('bob'));
    await expect(store.createUser(user('alice'))).rejects.toMatchObject({ code: 'ALREADY_EXISTS' });
    await store.updateUser('alice', { roles: ['vendor', 'security'], publicKeys: ['ssh-ed25519 AAAA x'], lockedUntil: T + 5, disabled: true });
    expect(await store.getUser('alice')).toMatchObject({ roles: ['vendor', 'security'], publicKeys: ['ssh-ed25519 AAAA x'], lockedUntil: T + 5, disabled: true, org: 'Acme' });
    expect(await store.getUser('nobody')).toBeNull();
    expect((await store.listUsers()).map((u) => u.name)).toEqual(['alice', 'bob']);
  });

  it('counts login failures atomically', async () => {
    await store.createUser(user('carol'));
    const counts = await Promise.all([1, 2, 3, 4, 5].map(() => store.incrementLoginFailures('carol')));
    expect([...counts].sort()).toEqual([1, 2, 3, 4, 5]);
    expect((await store.getUser('carol'))?.failedLogins).toBe(5);
  });

  it('accepts each TOTP step once and never an earlier one (replay refusal)', async () => {
    await store.createUser(user('dave'));
    expect(await store.consumeTotpStep('dave', 100)).toBe(true);
    expect(await store.consumeTotpStep('dave', 100)).toBe(false);
    expect(await store.consumeTotpStep('dave', 99)).toBe(false);
    const racing = await Promise.all([store.consumeTotpStep('dave', 101), store.consumeTotpStep('dave', 101)]);
    expect(racing.filter(Boolean)).toHaveLength(1);
  });

  it('keeps devices with unique UDIs, and one credential per device', async () => {
    await store.createDevice(device('ct-01', 'UDI-1'));
    await expect(store.createDevice(device('ct-02', 'UDI-1'))).rejects.toMatchObject({ code: 'ALREADY_EXISTS' });
    await store.updateDevice('ct-01', { hostKeyAlgo: 'ssh-ed25519', hostKeyBlob: 'AAAA', state: 'quarantined' });
    expect(await store.getDevice('ct-01')).toMatchObject({ hostKeyAlgo: 'ssh-ed25519', hostKeyBlob: 'AAAA', state: 'quarantined', protocols: ['ssh'] });
    await store.putCredential({ device: 'ct-01', username: 'svc', kind: 'password', sealed: 'v1:one', updatedAt: T });
    await store.putCredential({ device: 'ct-01', username: 'svc2', kind: 'key', sealed: 'v1:two', updatedAt: T + 1 });
    expect(await store.getCredential('ct-01')).toEqual({ device: 'ct-01', username: 'svc2', kind: 'key', sealed: 'v1:two', updatedAt: T + 1 });
    expect(await store.getCredential('ct-02')).toBeNull();
  });

  it('filters and revokes grants', async () => {
    await store.createUser(user('erin'));
    await store.createUser(user('finn'));
    await store.createDevice(device('mri-1'));
    await store.createDevice(device('mri-2'));
    await store.createGrant(grant('g1', 'erin', 'mri-1'));
    await store.createGrant(grant('g2', 'erin', 'mri-2'));
    await store.createGrant(grant('g3', 'finn', 'mri-1'));
    expect((await store.listGrants({ user: 'erin' })).map((g) => g.id)).toEqual(['g1', 'g2']);
    expect((await store.listGrants({ user: 'erin', device: 'mri-1' })).map((g) => g.id)).toEqual(['g1']);
    expect((await store.listGrants({ device: 'mri-1' })).map((g) => g.id)).toEqual(['g1', 'g3']);
    await store.revokeGrant('g1', T + 10, 'sec');
    await store.revokeGrant('g1', T + 20, 'later');
    expect(await store.getGrant('g1')).toMatchObject({ revokedAt: T + 10, revokedBy: 'sec' });
  });

  it('records sessions and recordings, and seals them', async () => {
    await store.createSession({
      id: 's1', user: 'erin', device: 'mri-1', protocol: 'ssh', grantId: 'g1', via: 'ssh', kind: 'exec', command: 'ls', clientAddress: '127.0.0.1:1',
      node: 'n1', startedAt: T, endedAt: null, endReason: null, exitStatus: null, bytesIn: 0, bytesOut: 0, recordingId: 's1',
    });
    await store.updateSession('s1', { endedAt: T + 5, endReason: 'device_closed', exitStatus: 0, bytesIn: 3, bytesOut: 9 });
    expect(await store.getSession('s1')).toMatchObject({ endedAt: T + 5, endReason: 'device_closed', exitStatus: 0, bytesIn: 3, bytesOut: 9, command: 'ls' });
    expect((await store.listSessions(10)).map((s) => s.id)).toEqual(['s1']);
    await store.createRecording({ id: 's1', sessionId: 's1', path: 'a/b.pcrec', format: 'pcrec', startedAt: T, sealedAt: null, size: null, sha256: null });
    await store.sealRecording('s1', { sealedAt: T + 6, size: 123, sha256: 'f'.repeat(64) });
    expect(await store.getRecording('s1')).toMatchObject({ sealedAt: T + 6, size: 123, sha256: 'f'.repeat(64) });
  });

  it('appends one linear hash chain, even with concurrent appends, and pages through it', async () => {
    const drafts = Array.from({ length: 25 }, (_, i) => ({ type: 't', actor: `a${i}`, outcome: 'info' as const, code: null, data: { i, nested: { z: 1, a: [1, 'x'] } } }));
    await Promise.all(drafts.map((d, i) => store.appendAudit(d, T + i)));
    const first = await store.listAudit({ limit: 10 });
    const rest = await store.listAudit({ afterSeq: 10, limit: 100 });
    const all = [...first, ...rest];
    expect(all.map((e) => e.seq)).toEqual(Array.from({ length: 25 }, (_, i) => i + 1));
    expect(all[0]?.prevHash).toBe(GENESIS_HASH);
    const v = new ChainVerifier();
    for (const e of all) expect(v.check(e)).toBeNull();
    expect((await store.listAudit({ type: 'nope' })).length).toBe(0);
  });
});
