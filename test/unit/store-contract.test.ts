import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { ChainVerifier, GENESIS_HASH } from '../../gateway/audit/audit-chain.js';
import { SqliteStore } from '../../gateway/store/sqlite-store.js';
import type {
  CommandRecord, DeviceRecord, GrantRecord, RequestRecord, SessionRecord, Store, UserRecord,
} from '../../gateway/store/store.js';
import { openTestRedisStore, uniquePrefix } from '../support/redis.js';

/**
 * The one contract every Store backend passes. A backend is a factory of fresh, empty stores,
 * each with a `peer()`: a second, independent connection to the same data (a second gateway
 * node). A new backend adds an entry to BACKENDS and must pass all of it unchanged.
 */
interface Opened {
  store: Store;
  peer(): Promise<Store>;
  dispose(): Promise<void>;
}

const dir = mkdtempSync(path.join(os.tmpdir(), 'pc-store-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;

const BACKENDS: Array<[string, () => Promise<Opened>]> = [
  ['sqlite', async () => {
    const file = path.join(dir, `s${n++}.db`);
    const peers: Store[] = [];
    return {
      store: new SqliteStore(file),
      async peer() {
        const s = new SqliteStore(file);
        peers.push(s);
        return s;
      },
      async dispose() {
        for (const p of peers) await p.close();
      },
    };
  }],
  ['redis', async () => {
    const prefix = uniquePrefix();
    const store = await openTestRedisStore(prefix);
    const peers: Store[] = [];
    return {
      store,
      async peer() {
        const s = await openTestRedisStore(prefix);
        peers.push(s);
        return s;
      },
      async dispose() {
        for (const p of peers) await p.close();
        const cleaner = await openTestRedisStore(prefix);
        await cleaner.dropAll();
        await cleaner.close();
      },
    };
  }],
];

const T = 1_800_000_000_000;
const user = (name: string): UserRecord => ({
  name, roles: ['vendor'], org: 'Acme', passwordHash: 'scrypt$x', totpSealed: 'v1:abc', totpLastStep: 0, failedLogins: 0,
  lockedUntil: null, disabled: false, expiresAt: null, publicKeys: [], nda: null, locale: null, enrolment: null, createdAt: T,
});
const device = (name: string, udi: string | null = null): DeviceRecord => ({
  name, host: '10.0.0.1', ports: { ssh: 22 }, protocols: ['ssh'], udi, ip: null, mac: null, type: null, manufacturer: null, model: null,
  department: null, location: null, classification: null, state: 'active', lifecycle: [], hostKeyAlgo: null, hostKeyBlob: null, rdpCertSha256: null, createdAt: T,
});
const grant = (id: string, u: string, d: string, createdAt = T): GrantRecord => ({
  id, user: u, device: d, protocol: 'ssh', notBefore: T, notAfter: T + 3_600_000, createdBy: 'admin', createdAt, revokedAt: null,
  revokedBy: null, requestId: null, profile: null, allowFileTransfer: false,
});
const session = (id: string, u: string, d: string, startedAt: number): SessionRecord => ({
  id, user: u, device: d, protocol: 'ssh', grantId: 'g1', via: 'ssh', kind: 'exec', command: 'ls', clientAddress: '127.0.0.1:1',
  node: 'n1', startedAt, endedAt: null, endReason: null, exitStatus: null, bytesIn: 0, bytesOut: 0, recordingId: id, killRequest: null,
});
const request = (id: string, requester: string, devices: string[], createdAt: number): RequestRecord => ({
  id, requester, devices, protocols: ['ssh'], purpose: 'firmware check', workOrder: 'WO-1', notBefore: T, notAfter: T + 3_600_000,
  profile: 'ct-diag', fileTransfer: false, status: 'pending', approvals: [], decidedAt: null, decidedBy: null, reason: null, grantIds: [],
  createdAt, version: 0,
});
const command = (id: string, s: string, at: number, line: string): CommandRecord => ({
  id, session: s, user: 'erin', device: 'mri-1', at, line, mode: 'restricted', decision: 'allow', rule: 'p#0', reason: null, reviewer: null,
  exitStatus: null, exitSignal: null,
});

describe.each(BACKENDS)('Store contract: %s', (_name, open) => {
  let opened: Opened;
  let store: Store;
  beforeEach(async () => {
    opened = await open();
    store = opened.store;
    return async () => {
      await store.close();
      await opened.dispose();
    };
  });

  it('creates, reads, patches and lists users; refuses a duplicate name', async () => {
    await store.createUser(user('bob'));
    await store.createUser(user('alice'));
    await expect(store.createUser(user('alice'))).rejects.toMatchObject({ code: 'ALREADY_EXISTS' });
    const nda = { signedAt: T - 1000, expiresAt: T + 86_400_000, reference: 'NDA-7' };
    await store.updateUser('alice', { roles: ['vendor', 'security'], publicKeys: ['ssh-ed25519 AAAA x'], lockedUntil: T + 5, disabled: true, nda, locale: 'zh-CN' });
    expect(await store.getUser('alice')).toMatchObject({ roles: ['vendor', 'security'], publicKeys: ['ssh-ed25519 AAAA x'], lockedUntil: T + 5, disabled: true, org: 'Acme', nda, locale: 'zh-CN' });
    await store.updateUser('alice', { lockedUntil: null, nda: null });
    expect(await store.getUser('alice')).toMatchObject({ lockedUntil: null, nda: null });
    expect(await store.getUser('nobody')).toBeNull();
    expect((await store.listUsers()).map((u) => u.name)).toEqual(['alice', 'bob']);
    // Patching someone who does not exist creates nobody.
    await store.updateUser('ghost', { disabled: true });
    expect(await store.getUser('ghost')).toBeNull();
  });

  it('counts login failures atomically, across nodes too (R-A.4d)', async () => {
    await store.createUser(user('carol'));
    const peer = await opened.peer();
    const counts = await Promise.all([1, 2, 3, 4, 5, 6].map((i) => (i % 2 ? store : peer).incrementLoginFailures('carol')));
    expect([...counts].sort()).toEqual([1, 2, 3, 4, 5, 6]);
    expect((await peer.getUser('carol'))?.failedLogins).toBe(6);
    expect(await store.incrementLoginFailures('nobody')).toBe(0);
  });

  it('accepts each TOTP step once and never an earlier one, whichever node asks (replay refusal)', async () => {
    await store.createUser(user('dave'));
    const peer = await opened.peer();
    expect(await store.consumeTotpStep('dave', 100)).toBe(true);
    expect(await peer.consumeTotpStep('dave', 100)).toBe(false);
    expect(await store.consumeTotpStep('dave', 99)).toBe(false);
    const racing = await Promise.all([store.consumeTotpStep('dave', 101), peer.consumeTotpStep('dave', 101), store.consumeTotpStep('dave', 101)]);
    expect(racing.filter(Boolean)).toHaveLength(1);
    expect(await store.consumeTotpStep('nobody', 5)).toBe(false);
  });

  it('keeps vendor organisations', async () => {
    await store.createOrg({ name: 'siemens', displayName: 'Siemens Healthineers', contact: null, createdAt: T });
    await store.createOrg({ name: 'mindray', displayName: 'Mindray', contact: 'service@mindray.example', createdAt: T });
    await expect(store.createOrg({ name: 'siemens', displayName: 'x', contact: null, createdAt: T })).rejects.toMatchObject({ code: 'ALREADY_EXISTS' });
    await store.updateOrg('siemens', { contact: '+49 1' });
    expect(await store.getOrg('siemens')).toEqual({ name: 'siemens', displayName: 'Siemens Healthineers', contact: '+49 1', createdAt: T });
    expect((await store.listOrgs()).map((o) => o.name)).toEqual(['mindray', 'siemens']);
  });

  it('keeps devices with unique UDIs, their inventory and lifecycle, and one credential per device', async () => {
    await store.createDevice(device('ct-01', 'UDI-1'));
    await store.createDevice(device('ct-03', 'UDI-3'));
    await expect(store.createDevice(device('ct-02', 'UDI-1'))).rejects.toMatchObject({ code: 'ALREADY_EXISTS' });
    await expect(store.createDevice(device('ct-01', 'UDI-9'))).rejects.toMatchObject({ code: 'ALREADY_EXISTS' });
    const classification = { usageForm: 'ionising-radiation', contact: 'body' as const, severity: 'serious', effect: null };
    const event = { type: 'quarantined' as const, at: T + 1, by: 'sec', approvedBy: null, details: { reason: 'back from repair', vendorTicket: 7, wiped: false } };
    await store.updateDevice('ct-01', {
      hostKeyAlgo: 'ssh-ed25519', hostKeyBlob: 'AAAA', state: 'quarantined', ports: { ssh: 2222, vnc: 5901 }, protocols: ['ssh', 'vnc'], rdpCertSha256: 'AB:CD',
      classification, lifecycle: [event], department: 'Radiology', location: 'B2-014', manufacturer: 'Siemens', model: 'SOMATOM', type: 'CT',
    });
    expect(await store.getDevice('ct-01')).toMatchObject({
      hostKeyAlgo: 'ssh-ed25519', hostKeyBlob: 'AAAA', state: 'quarantined', protocols: ['ssh', 'vnc'], ports: { ssh: 2222, vnc: 5901 }, rdpCertSha256: 'AB:CD',
      classification, lifecycle: [event], department: 'Radiology', udi: 'UDI-1',
    });
    // A UDI moves only to a value nobody else holds; the old one is free again afterwards.
    await expect(store.updateDevice('ct-03', { udi: 'UDI-1' })).rejects.toMatchObject({ code: 'ALREADY_EXISTS' });
    await store.updateDevice('ct-01', { udi: 'UDI-1b' });
    await store.createDevice(device('ct-04', 'UDI-1'));
    expect((await store.listDevices()).map((d) => d.name)).toEqual(['ct-01', 'ct-03', 'ct-04']);

    await store.putCredential({ device: 'ct-01', username: 'svc', kind: 'password', sealed: 'v1:one', updatedAt: T });
    await store.putCredential({ device: 'ct-01', username: 'svc2', kind: 'key', sealed: 'v1:two', updatedAt: T + 1 });
    expect(await store.getCredential('ct-01')).toEqual({ device: 'ct-01', username: 'svc2', kind: 'key', sealed: 'v1:two', updatedAt: T + 1 });
    expect(await store.getCredential('ct-02')).toBeNull();
    await store.deleteCredential('ct-01');
    expect(await store.getCredential('ct-01')).toBeNull();
  });

  it('creates a batch of devices all or nothing (CSV import)', async () => {
    await store.createDevice(device('lab-1', 'UDI-L1'));
    // A taken name, a taken UDI, or a UDI twice in the batch: nothing of the batch is created.
    for (const bad of [
      [device('lab-2', 'UDI-L2'), device('lab-1', 'UDI-new')],
      [device('lab-2', 'UDI-L2'), device('lab-3', 'UDI-L1')],
      [device('lab-2', 'UDI-L2'), device('lab-3', 'UDI-L2')],
      [device('lab-2', 'UDI-L2'), device('lab-2', 'UDI-L3')],
    ]) {
      await expect(store.createDevices(bad)).rejects.toMatchObject({ code: 'ALREADY_EXISTS' });
      expect((await store.listDevices()).map((d) => d.name)).toEqual(['lab-1']);
    }
    await store.createDevices([device('lab-2', 'UDI-L2'), device('lab-3', null), { ...device('lab-4', 'UDI-L4'), classification: { usageForm: 'laboratory', contact: 'none', severity: null, effect: 'indirect' } }]);
    expect((await store.listDevices()).map((d) => d.name)).toEqual(['lab-1', 'lab-2', 'lab-3', 'lab-4']);
    expect((await store.getDevice('lab-4'))?.classification?.effect).toBe('indirect');
    await expect(store.createDevice(device('lab-5', 'UDI-L4'))).rejects.toMatchObject({ code: 'ALREADY_EXISTS' });
  });

  it('filters and revokes grants, once', async () => {
    await store.createUser(user('erin'));
    await store.createUser(user('finn'));
    await store.createDevice(device('mri-1'));
    await store.createDevice(device('mri-2'));
    await store.createGrant(grant('g1', 'erin', 'mri-1', T));
    await store.createGrant(grant('g2', 'erin', 'mri-2', T + 1));
    await store.createGrant({ ...grant('g3', 'finn', 'mri-1', T + 2), requestId: 'r-9', profile: 'p', allowFileTransfer: true });
    expect((await store.listGrants({ user: 'erin' })).map((g) => g.id)).toEqual(['g1', 'g2']);
    expect((await store.listGrants({ user: 'erin', device: 'mri-1' })).map((g) => g.id)).toEqual(['g1']);
    expect((await store.listGrants({ device: 'mri-1' })).map((g) => g.id)).toEqual(['g1', 'g3']);
    expect(await store.listGrants({ requestId: 'r-9' })).toMatchObject([{ id: 'g3', profile: 'p', allowFileTransfer: true }]);
    expect((await store.listGrants({})).map((g) => g.id)).toEqual(['g1', 'g2', 'g3']);
    await store.revokeGrant('g1', T + 10, 'sec');
    await store.revokeGrant('g1', T + 20, 'later');
    expect(await store.getGrant('g1')).toMatchObject({ revokedAt: T + 10, revokedBy: 'sec' });
    expect(await store.getGrant('nope')).toBeNull();
  });

  it('keeps access requests, filters them, and lets only one of two concurrent updates win', async () => {
    await store.createRequest(request('r1', 'erin', ['mri-1'], T));
    await store.createRequest(request('r2', 'erin', ['mri-1', 'mri-2'], T + 1));
    await store.createRequest(request('r3', 'finn', ['mri-2'], T + 2));
    await expect(store.createRequest(request('r1', 'x', [], T))).rejects.toMatchObject({ code: 'ALREADY_EXISTS' });
    expect((await store.listRequests({})).map((r) => r.id)).toEqual(['r3', 'r2', 'r1']);
    expect((await store.listRequests({ requester: 'erin' })).map((r) => r.id)).toEqual(['r2', 'r1']);
    expect((await store.listRequests({ device: 'mri-2' })).map((r) => r.id)).toEqual(['r3', 'r2']);
    expect((await store.listRequests({ limit: 1 })).map((r) => r.id)).toEqual(['r3']);

    const peer = await opened.peer();
    const approval = (by: string) => ({ approvals: [{ by, roles: ['device_manager' as const], at: T + 5, narrowing: { notAfter: T + 60_000, profile: 'ct-read' }, comment: null }] });
    const results = await Promise.all([store.updateRequestIf('r1', 0, approval('mgr-a')), peer.updateRequestIf('r1', 0, approval('mgr-b'))]);
    expect(results.filter(Boolean)).toHaveLength(1);
    const r1 = await store.getRequest('r1');
    expect(r1?.version).toBe(1);
    expect(r1?.approvals).toHaveLength(1);
    expect(r1?.approvals[0]?.narrowing).toEqual({ notAfter: T + 60_000, profile: 'ct-read' });
    expect(await store.updateRequestIf('r1', 1, { status: 'approved', decidedAt: T + 6, decidedBy: 'mgr-a', grantIds: ['g1'] })).toBe(true);
    expect(await store.getRequest('r1')).toMatchObject({ status: 'approved', version: 2, grantIds: ['g1'] });
    expect((await store.listRequests({ status: 'pending' })).map((r) => r.id)).toEqual(['r3', 'r2']);
    expect(await store.updateRequestIf('nope', 0, { status: 'denied' })).toBe(false);
  });

  it('records sessions, finds them by user, device, time and openness, and ends each once', async () => {
    await store.createSession(session('s1', 'erin', 'mri-1', T));
    await store.createSession(session('s2', 'erin', 'mri-2', T + 1000));
    await store.createSession(session('s3', 'finn', 'mri-1', T + 2000));
    await store.updateSession('s1', { endedAt: T + 5, endReason: 'device_closed', exitStatus: 0, bytesIn: 3, bytesOut: 9 });
    expect(await store.getSession('s1')).toMatchObject({ endedAt: T + 5, endReason: 'device_closed', exitStatus: 0, bytesIn: 3, bytesOut: 9, command: 'ls' });
    expect((await store.listSessions({ limit: 10 })).map((s) => s.id)).toEqual(['s3', 's2', 's1']);
    expect((await store.listSessions({ limit: 2 })).map((s) => s.id)).toEqual(['s3', 's2']);
    expect((await store.listSessions({ limit: 10, user: 'erin' })).map((s) => s.id)).toEqual(['s2', 's1']);
    expect((await store.listSessions({ limit: 10, device: 'mri-1' })).map((s) => s.id)).toEqual(['s3', 's1']);
    expect((await store.listSessions({ limit: 10, from: T + 500, to: T + 2000 })).map((s) => s.id)).toEqual(['s2']);
    expect((await store.listSessions({ limit: 10, open: true })).map((s) => s.id)).toEqual(['s3', 's2']);

    const kill = { by: 'sec', at: T + 3000, reason: 'suspicious' };
    await store.updateSession('s2', { killRequest: kill });
    expect((await store.getSession('s2'))?.killRequest).toEqual(kill);

    const peer = await opened.peer();
    const end = { endedAt: T + 4000, endReason: 'interrupted' as const, exitStatus: null, bytesIn: 0, bytesOut: 0 };
    const ended = await Promise.all([store.endSessionIfOpen('s2', end), peer.endSessionIfOpen('s2', { ...end, endReason: 'killed' })]);
    expect(ended.filter(Boolean)).toHaveLength(1);
    expect(await store.endSessionIfOpen('s1', end)).toBe(false);
    expect((await store.listSessions({ limit: 10, open: true })).map((s) => s.id)).toEqual(['s3']);
  });

  it('indexes recordings and seals them', async () => {
    await store.createRecording({ id: 's1', sessionId: 's1', path: 'a/b.pcrec', format: 'pcrec', startedAt: T, sealedAt: null, size: null, sha256: null });
    await store.createRecording({ id: 's2', sessionId: 's2', path: 'a/c.pcrec', format: 'pcrec', startedAt: T + 1, sealedAt: null, size: null, sha256: null });
    await store.sealRecording('s1', { sealedAt: T + 6, size: 123, sha256: 'f'.repeat(64) });
    expect(await store.getRecording('s1')).toMatchObject({ sealedAt: T + 6, size: 123, sha256: 'f'.repeat(64) });
    expect((await store.listRecordings()).map((r) => r.id)).toEqual(['s1', 's2']);
  });

  it('logs commands and finds them by session and by text taken literally (R-6.4c)', async () => {
    await store.createCommand(command('c1', 's1', T, 'systemctl status sshd'));
    await store.createCommand(command('c2', 's1', T + 1, 'systemctl restart sshd'));
    await store.createCommand({ ...command('c3', 's2', T + 2, 'ls 100%_done'), user: 'finn', decision: 'deny' });
    await store.updateCommand('c2', { exitStatus: 0, reviewer: 'mgr', decision: 'review' });
    expect((await store.listCommands({ limit: 10, session: 's1' })).map((c) => c.id)).toEqual(['c2', 'c1']);
    expect(await store.listCommands({ limit: 10, text: 'systemctl restart' })).toMatchObject([{ id: 'c2', exitStatus: 0, reviewer: 'mgr', decision: 'review' }]);
    expect((await store.listCommands({ limit: 10, text: '%_' })).map((c) => c.id)).toEqual(['c3']);
    expect((await store.listCommands({ limit: 10, user: 'finn' })).map((c) => c.id)).toEqual(['c3']);
    expect((await store.listCommands({ limit: 10, device: 'mri-1', text: 'sshd' })).map((c) => c.id)).toEqual(['c2', 'c1']);
    // A command the device ended with a signal rather than an exit status.
    await store.updateCommand('c1', { exitStatus: null, exitSignal: 'SIGTERM' });
    expect(await store.getCommand('c1')).toMatchObject({ exitStatus: null, exitSignal: 'SIGTERM' });
    expect(await store.getCommand('c3')).toMatchObject({ exitStatus: null, exitSignal: null });
    expect((await store.listCommands({ limit: 10, decision: 'deny' })).map((c) => c.id)).toEqual(['c3']);
    expect(await store.getCommand('c3')).toMatchObject({ line: 'ls 100%_done', user: 'finn' });
    expect(await store.getCommand('nope')).toBeNull();
  });

  it('settles a command held for review exactly once, whichever node answers first', async () => {
    await store.createCommand({ ...command('held', 's9', T, 'reboot'), decision: 'review' });
    const peer = await opened.peer();
    const answers = await Promise.all([
      store.resolveCommandReview('held', { decision: 'allow', reviewer: 'mgr', reason: 'planned' }),
      peer.resolveCommandReview('held', { decision: 'deny', reviewer: 'portcullis', reason: 'review timed out' }),
    ]);
    expect(answers.filter(Boolean)).toHaveLength(1);
    const settled = await store.getCommand('held');
    expect(settled?.decision).toBe(answers[0] ? 'allow' : 'deny');
    expect(await store.resolveCommandReview('held', { decision: 'allow', reviewer: 'late', reason: null })).toBe(false);
    expect(await store.resolveCommandReview('c-none', { decision: 'allow', reviewer: 'x', reason: null })).toBe(false);
  });

  it('keeps web sessions until they expire or are deleted', async () => {
    // Real times: Redis expires keys by the wall clock.
    const now = Date.now();
    const far = now + 3_600_000;
    const base = { user: 'erin', csrf: 'c', createdAt: now, lastSeenAt: now, address: '127.0.0.1' };
    await store.createWebSession({ ...base, id: 'w1', expiresAt: far });
    await store.createWebSession({ ...base, id: 'w2', expiresAt: far });
    await store.createWebSession({ ...base, id: 'w3', user: 'finn', expiresAt: far });
    expect(await store.getWebSession('w1', now)).toMatchObject({ user: 'erin', csrf: 'c' });
    expect(await store.getWebSession('w1', far)).toBeNull();
    await store.touchWebSession('w1', now + 10, far + 10);
    expect(await store.getWebSession('w1', far)).toMatchObject({ lastSeenAt: now + 10 });
    await store.deleteWebSession('w1');
    expect(await store.getWebSession('w1', now)).toBeNull();
    await store.deleteWebSessionsOf('erin');
    expect(await store.getWebSession('w2', now)).toBeNull();
    expect(await store.getWebSession('w3', now)).not.toBeNull();
  });

  it('lists the nodes whose heartbeat has not lapsed', async () => {
    const now = Date.now();
    const node = (id: string, instance: string, expiresAt: number) => ({ id, instance, startedAt: now, lastSeenAt: now, expiresAt, ssh: ':2222', web: ':8443' });
    await store.heartbeat(node('gw-a', 'i1', now + 60_000));
    await store.heartbeat(node('gw-b', 'i2', now + 60_000));
    expect((await store.listNodes(now)).map((x) => x.id)).toEqual(['gw-a', 'gw-b']);
    expect((await store.listNodes(now + 61_000)).map((x) => x.id)).toEqual([]);
    // Only the instance that wrote a heartbeat removes it: a restarted node is not removed by its old self.
    await store.removeNode('gw-a', 'someone-else');
    await store.removeNode('gw-b', 'i2');
    expect((await store.listNodes(now)).map((x) => x.id)).toEqual(['gw-a']);
  });

  it('appends one linear hash chain, with concurrent appends from two nodes, and pages through it', async () => {
    const peer = await opened.peer();
    const drafts = Array.from({ length: 30 }, (_, i) => ({ type: i % 3 ? 't' : 'u', actor: `a${i}`, outcome: 'info' as const, code: null, data: { i, nested: { z: 1, a: [1, 'x'] } } }));
    await Promise.all(drafts.map((d, i) => (i % 2 ? store : peer).appendAudit(d, T + i)));
    const first = await store.listAudit({ limit: 10 });
    const rest = await peer.listAudit({ afterSeq: 10, limit: 100 });
    const all = [...first, ...rest];
    expect(all.map((e) => e.seq)).toEqual(Array.from({ length: 30 }, (_, i) => i + 1));
    expect(all[0]?.prevHash).toBe(GENESIS_HASH);
    const v = new ChainVerifier();
    for (const e of all) expect(v.check(e)).toBeNull();
    expect(new Set(all.map((e) => e.actor)).size).toBe(30);
    expect((await store.listAudit({ type: 'u' })).map((e) => e.seq)).toEqual(all.filter((e) => e.type === 'u').map((e) => e.seq));
    expect((await store.listAudit({ type: 'u', afterSeq: 10, limit: 2 })).every((e) => e.seq > 10 && e.type === 'u')).toBe(true);
    expect((await store.listAudit({ type: 'nope' })).length).toBe(0);
  });

  it('filters the audit chain by actor, outcome, time and a literal text in the data, paging in chain order', async () => {
    const outcomes = ['ok', 'denied', 'info'] as const;
    for (let i = 0; i < 2500; i++) {
      await store.appendAudit({ type: i % 2 ? 'session.started' : 'login', actor: i % 5 === 0 ? 'mallory' : `u${i % 7}`, outcome: outcomes[i % 3] as 'ok', code: null,
        data: { device: i === 2400 ? 'ct-100%_x' : `dev-${i % 4}`, i } }, T + i * 1000);
    }
    const seqs = (es: Array<{ seq: number }>): number[] => es.map((e) => e.seq);
    // Matches far apart in the chain (past the first thousand entries) are still found.
    const mallory = await store.listAudit({ actor: 'mallory', outcome: 'denied', limit: 5000 });
    expect(seqs(mallory)).toEqual(Array.from({ length: 2500 }, (_, i) => i).filter((i) => i % 5 === 0 && i % 3 === 1).map((i) => i + 1));
    expect(mallory.every((e) => e.actor === 'mallory' && e.outcome === 'denied')).toBe(true);
    const page = await store.listAudit({ actor: 'mallory', outcome: 'denied', limit: 3, afterSeq: mallory[10]?.seq });
    expect(seqs(page)).toEqual(seqs(mallory.slice(11, 14)));
    const since = new Date(T + 2000 * 1000).toISOString();
    const until = new Date(T + 2009 * 1000).toISOString(); // inclusive
    expect(seqs(await store.listAudit({ since, until, limit: 100 }))).toEqual(Array.from({ length: 10 }, (_, i) => 2001 + i));
    expect(seqs(await store.listAudit({ since, until, type: 'login', limit: 100 }))).toEqual([2001, 2003, 2005, 2007, 2009]);
    // Taken literally: % and _ are no wildcards.
    expect(seqs(await store.listAudit({ text: 'ct-100%_x', limit: 100 }))).toEqual([2401]);
    expect(await store.listAudit({ text: 'ct-1%', limit: 100 })).toEqual([]);
    expect(await store.listAudit({ actor: 'nobody' })).toEqual([]);
  });

  it('keeps each entry\'s channel and source under the hash chain, filters by channel, and still verifies entries written without them', async () => {
    // An entry from before channels were recorded (a draft without them), then entries from three doors.
    await store.appendAudit({ type: 'login.ok', actor: 'old', outcome: 'ok', code: null, data: {} }, T);
    await store.appendAudit({ type: 'login.ok', actor: 'vic', outcome: 'ok', code: null, data: {}, channel: 'web', source: '10.0.0.7' }, T + 1);
    await store.appendAudit({ type: 'grant.created', actor: 'dora', outcome: 'ok', code: null, data: {}, channel: 'cli', source: 'root' }, T + 2);
    await store.appendAudit({ type: 'session.start', actor: 'vic', outcome: 'ok', code: null, data: {}, channel: 'ssh', source: '10.0.0.7' }, T + 3);
    const all = await store.listAudit({});
    expect(all.map((e) => [e.actor, e.channel, e.source])).toEqual([['old', null, null], ['vic', 'web', '10.0.0.7'], ['dora', 'cli', 'root'], ['vic', 'ssh', '10.0.0.7']]);
    const v = new ChainVerifier();
    for (const e of all) expect(v.check(e)).toBeNull();
    // The hash covers them: a channel changed after the fact (cli claimed to be web) breaks the chain there.
    const forged = all.map((e) => (e.actor === 'dora' ? { ...e, channel: 'web' } : e));
    const fv = new ChainVerifier();
    expect(forged.map((e) => fv.check(e)?.seq ?? null).find((x) => x !== null)).toBe(3);
    expect((await store.listAudit({ channel: 'cli' })).map((e) => e.actor)).toEqual(['dora']);
    expect((await store.listAudit({ channel: 'ssh', actor: 'vic' })).map((e) => e.type)).toEqual(['session.start']);
    expect(await store.listAudit({ channel: 'sso' })).toEqual([]);
  });

  it('makes a retried append with the same id a no-op that returns the first entry', async () => {
    const draft = { type: 'session.end', actor: 'erin', outcome: 'info' as const, code: null, data: { session: 's1' } };
    const a = await store.appendAudit(draft, T, 'dedup-1');
    const peer = await opened.peer();
    const b = await peer.appendAudit(draft, T + 50, 'dedup-1');
    await store.appendAudit({ ...draft, data: { session: 's2' } }, T + 60, 'dedup-2');
    expect(b).toEqual(a);
    expect((await store.listAudit({})).map((e) => e.data.session)).toEqual(['s1', 's2']);
  });

  it('answers a readiness ping', async () => {
    await expect(store.ping()).resolves.toBeUndefined();
  });
});
