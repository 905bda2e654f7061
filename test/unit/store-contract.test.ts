import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { ChainVerifier, GENESIS_HASH } from '../../gateway/audit/audit-chain.js';
import { SqliteStore } from '../../gateway/store/sqlite-store.js';
import type {
  AlertRecord, ApiTokenRecord, CommandRecord, DeviceRecord, GrantRecord, RequestRecord, SessionRecord, Store, UserRecord, RoleChangeRecord,
} from '../../gateway/store/store.js';
import { openTestRedisStore, TEST_REDIS_URL, uniquePrefix } from '../support/redis.js';

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
  lockedUntil: null, disabled: false, expiresAt: null, publicKeys: [], nda: null, locale: null, enrolment: null, sso: null, serviceAccount: false, createdAt: T,
});
const device = (name: string, udi: string | null = null): DeviceRecord => ({
  name, host: '10.0.0.1', ports: { ssh: 22 }, protocols: ['ssh'], udi, ip: null, mac: null, type: null, manufacturer: null, model: null,
  department: null, location: null, classification: null, state: 'active', lifecycle: [], hostKeyAlgo: null, hostKeyBlob: null, rdpCertSha256: null, createdAt: T,
});
const grant = (id: string, u: string, d: string, createdAt = T): GrantRecord => ({
  id, user: u, device: d, protocol: 'ssh', notBefore: T, notAfter: T + 3_600_000, createdBy: 'admin', createdAt, revokedAt: null,
  revokedBy: null, requestId: null, profile: null, allowUpload: false, allowDownload: false,
});
const session = (id: string, u: string, d: string, startedAt: number): SessionRecord => ({
  id, user: u, device: d, protocol: 'ssh', grantId: 'g1', via: 'ssh', kind: 'exec', command: 'ls', clientAddress: '127.0.0.1:1',
  node: 'n1', startedAt, endedAt: null, endReason: null, exitStatus: null, bytesIn: 0, bytesOut: 0, recordingId: id, killRequest: null,
});
const request = (id: string, requester: string, devices: string[], createdAt: number): RequestRecord => ({
  id, requester, devices, protocols: ['ssh'], purpose: 'firmware check', workOrder: 'WO-1', notBefore: T, notAfter: T + 3_600_000,
  profile: 'ct-diag', upload: false, download: false, status: 'pending', approvals: [], decidedAt: null, decidedBy: null, reason: null, grantIds: [],
  changes: [], createdAt, version: 0,
});
const roleChange = (id: string, u: string, requestedAt: number): RoleChangeRecord => ({
  id, user: u, requestedBy: 'adm-a', requestedAt, expiresAt: requestedAt + 86_400_000, rolesBefore: ['vendor'], added: ['approver', 'security'],
  status: 'pending', decidedBy: null, decidedAt: null, reason: null,
});
const apiToken = (id: string, owner: string, createdAt: number): ApiTokenRecord => ({
  id, owner, name: `automation ${id}`, scope: ['device.read', 'audit.read'], secretHash: 'ab'.repeat(32), createdAt, createdBy: owner,
  expiresAt: createdAt + 86_400_000, lastUsedAt: null, revokedAt: null, revokedBy: null,
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

  it('finds an account by the OIDC issuer and subject it is linked to, not by its name (R-A.4d)', async () => {
    const idp = 'https://idp.example/realms/hospital';
    await store.createUser({ ...user('dora'), roles: ['approver'], org: null, sso: { issuer: idp, subject: 'f81d4fae-7dec' } });
    await store.createUser(user('local'));
    expect((await store.findUserBySso(idp, 'f81d4fae-7dec'))?.name).toBe('dora');
    expect(await store.findUserBySso(idp, 'dora')).toBeNull();
    expect(await store.findUserBySso('https://other.example', 'f81d4fae-7dec')).toBeNull();
    expect((await store.getUser('dora'))?.sso).toEqual({ issuer: idp, subject: 'f81d4fae-7dec' });
    expect((await store.getUser('local'))?.sso).toBeNull();
    // Linked by hand, unlinked again.
    await store.updateUser('local', { sso: { issuer: idp, subject: 'ab12' } });
    expect((await store.findUserBySso(idp, 'ab12'))?.name).toBe('local');
    await store.updateUser('local', { sso: null });
    expect(await store.findUserBySso(idp, 'ab12')).toBeNull();
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
    await store.createGrant({ ...grant('g3', 'finn', 'mri-1', T + 2), requestId: 'r-9', profile: 'p', allowUpload: true, allowDownload: false });
    await store.createGrant({ ...grant('g4', 'finn', 'mri-2', T + 3), allowUpload: false, allowDownload: true });
    expect((await store.listGrants({ user: 'erin' })).map((g) => g.id)).toEqual(['g1', 'g2']);
    expect((await store.listGrants({ user: 'erin', device: 'mri-1' })).map((g) => g.id)).toEqual(['g1']);
    expect((await store.listGrants({ device: 'mri-1' })).map((g) => g.id)).toEqual(['g1', 'g3']);
    // Upload and download are kept apart (R-6.3e): each one alone survives the round trip.
    expect(await store.listGrants({ requestId: 'r-9' })).toMatchObject([{ id: 'g3', profile: 'p', allowUpload: true, allowDownload: false }]);
    expect(await store.getGrant('g4')).toMatchObject({ allowUpload: false, allowDownload: true });
    expect((await store.listGrants({})).map((g) => g.id)).toEqual(['g1', 'g2', 'g3', 'g4']);
    await store.revokeGrant('g1', T + 10, 'sec');
    await store.revokeGrant('g1', T + 20, 'later');
    expect(await store.getGrant('g1')).toMatchObject({ revokedAt: T + 10, revokedBy: 'sec' });
    expect(await store.getGrant('nope')).toBeNull();
  });

  it('keeps access requests, filters them, and lets only one of two concurrent updates win', async () => {
    await store.createRequest(request('r1', 'erin', ['mri-1'], T));
    await store.createRequest(request('r2', 'erin', ['mri-1', 'mri-2'], T + 1));
    await store.createRequest({ ...request('r3', 'finn', ['mri-2'], T + 2), upload: false, download: true });
    expect(await store.getRequest('r3')).toMatchObject({ upload: false, download: true });
    await expect(store.createRequest(request('r1', 'x', [], T))).rejects.toMatchObject({ code: 'ALREADY_EXISTS' });
    expect((await store.listRequests({})).map((r) => r.id)).toEqual(['r3', 'r2', 'r1']);
    expect((await store.listRequests({ requester: 'erin' })).map((r) => r.id)).toEqual(['r2', 'r1']);
    expect((await store.listRequests({ device: 'mri-2' })).map((r) => r.id)).toEqual(['r3', 'r2']);
    expect((await store.listRequests({ limit: 1 })).map((r) => r.id)).toEqual(['r3']);

    const peer = await opened.peer();
    const approval = (by: string) => ({ approvals: [{ by, roles: ['device_manager' as const], at: T + 5, narrowing: { notAfter: T + 60_000, profile: 'ct-read', upload: false }, comment: null }] });
    const results = await Promise.all([store.updateRequestIf('r1', 0, approval('mgr-a')), peer.updateRequestIf('r1', 0, approval('mgr-b'))]);
    expect(results.filter(Boolean)).toHaveLength(1);
    const r1 = await store.getRequest('r1');
    expect(r1?.version).toBe(1);
    expect(r1?.approvals).toHaveLength(1);
    expect(r1?.approvals[0]?.narrowing).toEqual({ notAfter: T + 60_000, profile: 'ct-read', upload: false });
    expect(await store.updateRequestIf('r1', 1, { status: 'approved', decidedAt: T + 6, decidedBy: 'mgr-a', grantIds: ['g1'] })).toBe(true);
    expect(await store.getRequest('r1')).toMatchObject({ status: 'approved', version: 2, grantIds: ['g1'] });
    expect((await store.listRequests({ status: 'pending' })).map((r) => r.id)).toEqual(['r3', 'r2']);
    expect(await store.updateRequestIf('nope', 0, { status: 'denied' })).toBe(false);
  });

  it('keeps the profile changes of a request, and reads a request stored without any', async () => {
    await store.createRequest({ ...request('r9', 'erin', ['mri-1'], T), changes: null });
    expect((await store.getRequest('r9'))?.changes).toBeNull();
    const change = {
      at: T + 5, by: 'sam', kind: 'profile' as const, from: 'diagnostics', to: 'ct-service', reason: 'rule 2 lets through more',
      before: { notBefore: T, notAfter: T + 3_600_000, profile: 'diagnostics', upload: true, download: true },
      lapsed: [{ by: 'dora', roles: ['device_manager' as const], at: T + 1, narrowing: { notAfter: T + 60_000 }, comment: 'ok' }],
    };
    expect(await store.updateRequestIf('r9', 0, { profile: 'ct-service', changes: [change], approvals: [] })).toBe(true);
    expect(await store.getRequest('r9')).toMatchObject({ profile: 'ct-service', changes: [change], approvals: [], version: 1 });
  });

  it('keeps privileged role changes, lists them newest first by status and person, and settles each once (S-1.3)', async () => {
    await store.createRoleChange(roleChange('rc1', 'dora', T));
    await store.createRoleChange(roleChange('rc2', 'sam', T + 1));
    await store.createRoleChange({ ...roleChange('rc3', 'dora', T + 2), added: ['admin'] });
    await expect(store.createRoleChange(roleChange('rc1', 'x', T))).rejects.toMatchObject({ code: 'ALREADY_EXISTS' });
    expect(await store.getRoleChange('rc2')).toEqual(roleChange('rc2', 'sam', T + 1));
    expect(await store.getRoleChange('nope')).toBeNull();
    expect((await store.listRoleChanges({})).map((c) => c.id)).toEqual(['rc3', 'rc2', 'rc1']);
    expect((await store.listRoleChanges({ user: 'dora' })).map((c) => c.id)).toEqual(['rc3', 'rc1']);
    expect((await store.listRoleChanges({ limit: 1 })).map((c) => c.id)).toEqual(['rc3']);

    // A confirmation on one node and the expiry sweep on another: exactly one wins.
    const peer = await opened.peer();
    const answers = await Promise.all([
      store.settleRoleChange('rc1', { status: 'confirmed', decidedBy: 'adm-b', decidedAt: T + 10, reason: null }),
      peer.settleRoleChange('rc1', { status: 'expired', decidedBy: 'portcullis', decidedAt: T + 10, reason: 'not confirmed in time' }),
    ]);
    expect(answers.filter(Boolean)).toHaveLength(1);
    expect((await store.getRoleChange('rc1'))?.status).toBe(answers[0] ? 'confirmed' : 'expired');
    expect(await store.settleRoleChange('rc1', { status: 'rejected', decidedBy: 'adm-c', decidedAt: T + 11, reason: null })).toBe(false);
    expect(await store.settleRoleChange('nope', { status: 'rejected', decidedBy: 'adm-c', decidedAt: T + 11, reason: null })).toBe(false);
    expect(await store.settleRoleChange('rc2', { status: 'rejected', decidedBy: 'adm-c', decidedAt: T + 12, reason: 'wrong person' })).toBe(true);
    expect(await store.getRoleChange('rc2')).toMatchObject({ status: 'rejected', decidedBy: 'adm-c', decidedAt: T + 12, reason: 'wrong person' });
    expect((await store.listRoleChanges({ status: 'pending' })).map((c) => c.id)).toEqual(['rc3']);
    expect((await store.listRoleChanges({ status: 'pending', user: 'sam' }))).toEqual([]);
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
    // A kill that sticks keeps what else it did (grant revoked, account locked until) with the request.
    const sticking = { by: 'sec', at: T + 3100, reason: 'firmware change', grantRevoked: true, lockedUntil: T + 3_600_000 };
    await store.updateSession('s3', { killRequest: sticking });
    expect((await store.getSession('s3'))?.killRequest).toEqual(sticking);
    await store.updateSession('s3', { killRequest: null });

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

  it('finds commands by the program a line runs and by time, both bounds inclusive (R-A.3d)', async () => {
    await store.createCommand(command('p1', 's1', T, '/usr/bin/systemctl restart ctd'));
    await store.createCommand(command('p2', 's1', T + 10, 'journalctl -u ctd | grep systemctl'));
    await store.createCommand(command('p3', 's2', T + 20, "LANG=C s'y'stemctl status ctd && ls"));
    await store.createCommand(command('p4', 's2', T + 30, 'echo "systemctl"'));
    const ids = async (q: Omit<Parameters<Store['listCommands']>[0], 'limit'>): Promise<string[]> => (await store.listCommands({ limit: 10, ...q })).map((c) => c.id);
    // Run by name (a path, quotes, an assignment before it), not mentioned as an argument.
    expect(await ids({ program: 'systemctl' })).toEqual(['p3', 'p1']);
    expect(await ids({ program: 'grep' })).toEqual(['p2']);
    expect(await ids({ program: 'ls' })).toEqual(['p3']);
    expect(await ids({ program: 'systemd' })).toEqual([]);
    expect(await ids({ since: T + 10, until: T + 20 })).toEqual(['p3', 'p2']);
    expect(await ids({ since: T + 11, program: 'systemctl' })).toEqual(['p3']);
    expect(await ids({ until: T + 9, session: 's1' })).toEqual(['p1']);
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

  it('keeps service accounts apart from people, and API tokens by owner, revoked once, last use noted (issue 13)', async () => {
    await store.createUser({ ...user('cmdb'), passwordHash: '!', totpSealed: null, serviceAccount: true });
    await store.createUser(user('dora'));
    expect(await store.getUser('cmdb')).toMatchObject({ serviceAccount: true, totpSealed: null });
    expect((await store.getUser('dora'))?.serviceAccount).toBe(false);
    await store.createApiToken(apiToken('t2', 'dora', T + 2));
    await store.createApiToken(apiToken('t1', 'cmdb', T + 1));
    await store.createApiToken(apiToken('t3', 'cmdb', T + 3));
    await expect(store.createApiToken(apiToken('t1', 'dora', T))).rejects.toMatchObject({ code: 'ALREADY_EXISTS' });
    expect(await store.getApiToken('t1')).toEqual(apiToken('t1', 'cmdb', T + 1));
    expect(await store.getApiToken('nope')).toBeNull();
    expect((await store.listApiTokens({ owner: 'cmdb' })).map((t) => t.id)).toEqual(['t1', 't3']);
    expect((await store.listApiTokens({})).map((t) => t.id)).toEqual(['t1', 't2', 't3']);
    expect((await store.listApiTokens({ owner: 'nobody' }))).toEqual([]);
    const peer = await opened.peer();
    const [a, b] = await Promise.all([store.revokeApiToken('t1', T + 10, 'admin'), peer.revokeApiToken('t1', T + 11, 'security')]);
    expect([a, b].filter(Boolean)).toHaveLength(1);
    expect(await store.revokeApiToken('t1', T + 12, 'late')).toBe(false);
    expect(await store.revokeApiToken('ghost', T + 12, 'late')).toBe(false);
    const revoked = await store.getApiToken('t1');
    // The winner's time and actor, together.
    expect([{ at: T + 10, by: 'admin' }, { at: T + 11, by: 'security' }]).toContainEqual({ at: revoked?.revokedAt, by: revoked?.revokedBy });
    await store.touchApiToken('t2', T + 99);
    expect((await store.getApiToken('t2'))?.lastUsedAt).toBe(T + 99);
    await store.touchApiToken('ghost', T + 99);
    expect(await store.getApiToken('ghost')).toBeNull();
  });

  it('keeps web sessions until they expire or are deleted', async () => {
    // Real times: Redis expires keys by the wall clock.
    const now = Date.now();
    const far = now + 3_600_000;
    const base = { user: 'erin', csrf: 'c', createdAt: now, lastSeenAt: now, address: '127.0.0.1', via: 'password' as const };
    await store.createWebSession({ ...base, id: 'w1', expiresAt: far });
    await store.createWebSession({ ...base, id: 'w2', expiresAt: far, via: 'sso' });
    await store.createWebSession({ ...base, id: 'w3', user: 'finn', expiresAt: far });
    expect(await store.getWebSession('w1', now)).toMatchObject({ user: 'erin', csrf: 'c', via: 'password' });
    expect(await store.getWebSession('w2', now)).toMatchObject({ via: 'sso' });
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
    // Newest first, paged with beforeSeq, the filters still applied (with and without a type).
    expect(seqs(await store.listAudit({ order: 'desc', limit: 3 }))).toEqual([2500, 2499, 2498]);
    expect(seqs(await store.listAudit({ order: 'desc', limit: 3, beforeSeq: 2498 }))).toEqual([2497, 2496, 2495]);
    expect(seqs(await store.listAudit({ order: 'desc', type: 'login', limit: 2, beforeSeq: 2000 }))).toEqual([1999, 1997]);
    const newest = await store.listAudit({ actor: 'mallory', outcome: 'denied', order: 'desc', limit: 5000 });
    expect(seqs(newest)).toEqual(seqs(mallory).reverse());
    const older = await store.listAudit({ actor: 'mallory', outcome: 'denied', order: 'desc', limit: 3, beforeSeq: newest[10]?.seq });
    expect(seqs(older)).toEqual(seqs(newest.slice(11, 14)));
    expect(seqs(await store.listAudit({ order: 'desc', afterSeq: 2497, limit: 10 }))).toEqual([2500, 2499, 2498]);
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

  it('lets one node at a time hold an export lease, moves its position only forward and only for the holder, and hands over when it lapses (R-A.5c)', async () => {
    const peer = await opened.peer();
    expect(await store.lastAuditSeq()).toBe(0);
    for (let i = 0; i < 3; i++) await store.appendAudit({ type: 't', actor: 'a', outcome: 'info', code: null, data: {} }, T + i);
    expect(await peer.lastAuditSeq()).toBe(3);
    // Two nodes ask at once: exactly one wins.
    const [a, b] = await Promise.all([store.claimExport('syslog', 'node-a', T, 10_000), peer.claimExport('syslog', 'node-b', T, 10_000)]);
    expect(a.holder).toBe(b.holder);
    const [winner, loser, winnerName, loserName] = a.holder === 'node-a' ? [store, peer, 'node-a', 'node-b'] : [peer, store, 'node-b', 'node-a'];
    expect(a.position).toBe(0);
    expect(await winner.advanceExport('syslog', winnerName, 2)).toBe(true);
    expect(await winner.advanceExport('syslog', winnerName, 1)).toBe(true);
    expect(await loser.advanceExport('syslog', loserName, 3)).toBe(false);
    // Renewal keeps it; the other node still cannot take it while it runs.
    expect((await winner.claimExport('syslog', winnerName, T + 5_000, 10_000)).holder).toBe(winnerName);
    const refused = await loser.claimExport('syslog', loserName, T + 14_000, 10_000);
    expect(refused).toEqual({ name: 'syslog', position: 2, holder: winnerName, leaseUntil: T + 15_000 });
    // Lapsed: taken over at the position the first holder reached; the first can no longer move it.
    const taken = await loser.claimExport('syslog', loserName, T + 15_000, 10_000);
    expect(taken).toEqual({ name: 'syslog', position: 2, holder: loserName, leaseUntil: T + 25_000 });
    expect(await winner.advanceExport('syslog', winnerName, 3)).toBe(false);
    // Released: free at once. Another export has a cursor of its own.
    await loser.releaseExport('syslog', loserName);
    expect((await winner.claimExport('syslog', winnerName, T + 16_000, 10_000)).holder).toBe(winnerName);
    expect((await store.claimExport('other', 'node-a', T, 1000)).position).toBe(0);
  });

  // Alerts (issue 14, R-5.5a): the console's list, acknowledged once, and what the nodes share to
  // raise each alert once in a cluster: counting windows and claims.
  it('keeps alerts newest first, filters them by kind and acknowledgement, and acknowledges each once, whichever node answers first', async () => {
    const alert = (seq: number, kind: string, raisedAt: number): AlertRecord => ({
      id: `al-${seq}`, seq, kind, severity: 'warning', subject: `s${seq}`, summary: `alert ${seq}`, triggers: [seq - 1], raisedAt, node: 'n1', acknowledgement: null,
    });
    await store.createAlert(alert(3, 'account_locked', T));
    await store.createAlert(alert(7, 'failed_sign_ins', T + 10));
    await store.createAlert(alert(9, 'account_locked', T + 10));
    await expect(store.createAlert(alert(3, 'account_locked', T))).rejects.toThrow(/already exists/);
    expect((await store.listAlerts({ limit: 10 })).map((a) => a.id)).toEqual(['al-9', 'al-7', 'al-3']);
    expect((await store.listAlerts({ limit: 10, kinds: ['account_locked'] })).map((a) => a.id)).toEqual(['al-9', 'al-3']);
    expect(await store.listAlerts({ limit: 10, kinds: [] })).toEqual([]);
    expect((await store.listAlerts({ limit: 1 })).map((a) => a.id)).toEqual(['al-9']);
    expect(await store.getAlert('al-7')).toEqual(alert(7, 'failed_sign_ins', T + 10));
    const peer = await opened.peer();
    const answers = await Promise.all([
      store.acknowledgeAlert('al-7', { by: 'sam', at: T + 20, comment: 'seen' }),
      peer.acknowledgeAlert('al-7', { by: 'sue', at: T + 21, comment: 'me too' }),
    ]);
    expect(answers.filter(Boolean)).toHaveLength(1);
    const acked = await store.getAlert('al-7');
    expect(acked?.acknowledgement?.by).toBe(answers[0] ? 'sam' : 'sue');
    expect(await store.acknowledgeAlert('al-7', { by: 'x', at: T + 30, comment: '' })).toBe(false);
    expect(await store.acknowledgeAlert('al-404', { by: 'x', at: T + 30, comment: '' })).toBe(false);
    expect((await store.listAlerts({ limit: 10, unacknowledged: true })).map((a) => a.id)).toEqual(['al-9', 'al-3']);
    expect((await store.listAlerts({ limit: 10, unacknowledged: true, kinds: ['failed_sign_ins'] }))).toEqual([]);
  });

  it('counts facts in a sliding window shared by the nodes, each member once', async () => {
    const peer = await opened.peer();
    expect(await store.countInWindow('failed_sign_ins:10.0.0.9', '1', T, 60_000)).toEqual(['1']);
    expect(await peer.countInWindow('failed_sign_ins:10.0.0.9', '2', T + 1000, 60_000)).toEqual(['1', '2']);
    expect(await store.countInWindow('failed_sign_ins:10.0.0.9', '2', T + 1000, 60_000)).toEqual(['1', '2']);
    expect(await store.countInWindow('failed_sign_ins:10.0.0.8', '3', T + 1000, 60_000)).toEqual(['3']);
    // 60 s after the first, it has left the window.
    expect(await peer.countInWindow('failed_sign_ins:10.0.0.9', '4', T + 60_000, 60_000)).toEqual(['2', '4']);
  });

  it('gives a claim to one node at a time until it lapses or its holder releases it', async () => {
    const peer = await opened.peer();
    const both = await Promise.all([store.claim('lease:integrity', 'gw-a', T + 10_000, T), peer.claim('lease:integrity', 'gw-b', T + 10_000, T)]);
    expect(both.filter(Boolean)).toHaveLength(1);
    const [winner, loser] = both[0] ? ['gw-a', 'gw-b'] : ['gw-b', 'gw-a'];
    expect(await store.claim('lease:integrity', loser as string, T + 20_000, T + 5_000)).toBe(false);
    expect(await store.claim('lease:integrity', winner as string, T + 20_000, T + 5_000)).toBe(true);
    expect(await store.claim('lease:integrity', loser as string, T + 30_000, T + 15_000)).toBe(false);
    // Released by its holder: free at once.
    expect(await peer.claim('lease:integrity', winner as string, T + 15_000, T + 15_000)).toBe(true);
    expect(await store.claim('lease:integrity', loser as string, T + 30_000, T + 15_000)).toBe(true);
    // Other keys are independent.
    expect(await store.claim('suppress:x', 'one', T + 1000, T)).toBe(true);
    expect(await peer.claim('suppress:x', 'two', T + 1000, T + 500)).toBe(false);
  });

  it('keeps the integrity check\'s last anchor', async () => {
    expect(await store.getIntegrityMark()).toBeNull();
    await store.setIntegrityMark({ seq: 12, hash: 'a'.repeat(64), at: T });
    await store.setIntegrityMark({ seq: 40, hash: 'b'.repeat(64), at: T + 1 });
    const peer = await opened.peer();
    expect(await peer.getIntegrityMark()).toEqual({ seq: 40, hash: 'b'.repeat(64), at: T + 1 });
  });

  it('answers a readiness ping', async () => {
    await expect(store.ping()).resolves.toBeUndefined();
  });
});

/**
 * Grants and requests stored before upload and download were split (one file-transfer flag) read
 * as both directions, and an approval that struck file transfer strikes both (issue 13, R-6.3e).
 * Each backend is given the old shape its own way: SQLite at the schema before the split, Redis
 * with the old hash fields.
 */
describe('Store upgrade: one file-transfer flag becomes upload and download', () => {
  const legacyApprovals = JSON.stringify([
    { by: 'mgr', roles: ['device_manager'], at: T + 1, narrowing: { fileTransfer: false, notAfter: T + 60_000 }, comment: null },
    { by: 'sec', roles: ['security'], at: T + 2, narrowing: null, comment: 'ok' },
  ]);
  const expectUpgraded = async (store: Store): Promise<void> => {
    expect(await store.getGrant('g-both')).toMatchObject({ allowUpload: true, allowDownload: true });
    expect(await store.getGrant('g-none')).toMatchObject({ allowUpload: false, allowDownload: false });
    const r = await store.getRequest('r-old');
    expect(r).toMatchObject({ upload: true, download: true });
    expect(r?.approvals.map((a) => a.narrowing)).toEqual([{ notAfter: T + 60_000, upload: false, download: false }, null]);
  };

  it('sqlite: the migration maps file_transfer = 1 to both directions', async () => {
    const { default: Database } = await import('better-sqlite3');
    const { SQLITE_MIGRATIONS } = await import('../../gateway/store/sqlite-migrations.js');
    const file = path.join(dir, `legacy${n++}.db`);
    const db = new Database(file);
    // The schema as it stood before the split: the first five migrations.
    for (const m of SQLITE_MIGRATIONS.slice(0, 5)) db.exec(m);
    db.pragma('user_version = 5');
    db.pragma('foreign_keys = OFF');
    db.prepare(`INSERT INTO grants (id, user, device, protocol, not_before, not_after, created_by, created_at, allow_file_transfer)
      VALUES (?, 'erin', 'mri-1', 'ssh', ?, ?, 'admin', ?, ?)`).run('g-both', T, T + 1, T, 1);
    db.prepare(`INSERT INTO grants (id, user, device, protocol, not_before, not_after, created_by, created_at, allow_file_transfer)
      VALUES (?, 'erin', 'mri-1', 'ssh', ?, ?, 'admin', ?, ?)`).run('g-none', T, T + 1, T, 0);
    db.prepare(`INSERT INTO requests (id, requester, devices, protocols, purpose, work_order, not_before, not_after, profile, file_transfer, status,
      approvals, grant_ids, created_at, version) VALUES ('r-old', 'erin', '["mri-1"]', '["ssh"]', 'p', 'WO', ?, ?, 'ct-diag', 1, 'pending', ?, '[]', ?, 2)`)
      .run(T, T + 3_600_000, legacyApprovals, T);
    db.close();
    const store = new SqliteStore(file);
    try {
      await expectUpgraded(store);
    } finally {
      await store.close();
    }
  });

  it('redis: a hash with the old field reads as both directions', async () => {
    const prefix = uniquePrefix();
    const store = await openTestRedisStore(prefix);
    const { createClient } = await import('redis');
    const raw = createClient({ url: TEST_REDIS_URL });
    await raw.connect();
    try {
      await store.createGrant(grant('g-both', 'erin', 'mri-1'));
      await store.createGrant(grant('g-none', 'erin', 'mri-1', T + 1));
      await store.createRequest(request('r-old', 'erin', ['mri-1'], T));
      // As an older Portcullis wrote them: one flag, no upload/download fields.
      await raw.hDel(`${prefix}grants:g-both`, ['allowUpload', 'allowDownload']);
      await raw.hSet(`${prefix}grants:g-both`, 'allowFileTransfer', 'true');
      await raw.hDel(`${prefix}grants:g-none`, ['allowUpload', 'allowDownload']);
      await raw.hSet(`${prefix}grants:g-none`, 'allowFileTransfer', 'false');
      await raw.hDel(`${prefix}requests:r-old`, ['upload', 'download']);
      await raw.hSet(`${prefix}requests:r-old`, { fileTransfer: 'true', approvals: legacyApprovals });
      await expectUpgraded(store);
    } finally {
      await store.dropAll();
      await store.close();
      await raw.quit();
    }
  });
});
