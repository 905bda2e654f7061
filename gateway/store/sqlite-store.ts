import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import type { DeviceState, Protocol, Role } from '../../policy/types.js';
import { chainHash, GENESIS_HASH, hashedBody } from '../audit/audit-chain.js';
import { SQLITE_MIGRATIONS } from './sqlite-migrations.js';
import type {
  AuditDraft, AuditEntry, AuditQuery, CredentialRecord, DeviceRecord, GrantRecord, RecordingRecord,
  SessionRecord, Store, UserRecord,
} from './store.js';

type Row = Record<string, unknown>;

const USER_COLUMNS: Record<string, string> = {
  roles: 'roles', org: 'org', passwordHash: 'password_hash', totpSealed: 'totp_sealed', totpLastStep: 'totp_last_step',
  failedLogins: 'failed_logins', lockedUntil: 'locked_until', disabled: 'disabled', expiresAt: 'expires_at', publicKeys: 'public_keys',
};
const DEVICE_COLUMNS: Record<string, string> = {
  host: 'host', port: 'port', protocols: 'protocols', udi: 'udi', ip: 'ip', mac: 'mac', state: 'state',
  hostKeyAlgo: 'host_key_algo', hostKeyBlob: 'host_key_blob',
};
const SESSION_COLUMNS: Record<string, string> = {
  endedAt: 'ended_at', endReason: 'end_reason', exitStatus: 'exit_status', bytesIn: 'bytes_in', bytesOut: 'bytes_out',
};

function toDb(v: unknown): unknown {
  if (typeof v === 'boolean') return v ? 1 : 0;
  if (Array.isArray(v)) return JSON.stringify(v);
  return v;
}

const userFromRow = (r: Row): UserRecord => ({
  name: r.name as string,
  roles: JSON.parse(r.roles as string) as Role[],
  org: (r.org as string | null) ?? null,
  passwordHash: r.password_hash as string,
  totpSealed: (r.totp_sealed as string | null) ?? null,
  totpLastStep: r.totp_last_step as number,
  failedLogins: r.failed_logins as number,
  lockedUntil: (r.locked_until as number | null) ?? null,
  disabled: r.disabled === 1,
  expiresAt: (r.expires_at as number | null) ?? null,
  publicKeys: JSON.parse(r.public_keys as string) as string[],
  createdAt: r.created_at as number,
});

const deviceFromRow = (r: Row): DeviceRecord => ({
  name: r.name as string,
  host: r.host as string,
  port: r.port as number,
  protocols: JSON.parse(r.protocols as string) as Protocol[],
  udi: (r.udi as string | null) ?? null,
  ip: (r.ip as string | null) ?? null,
  mac: (r.mac as string | null) ?? null,
  state: r.state as DeviceState,
  hostKeyAlgo: (r.host_key_algo as string | null) ?? null,
  hostKeyBlob: (r.host_key_blob as string | null) ?? null,
  createdAt: r.created_at as number,
});

const grantFromRow = (r: Row): GrantRecord => ({
  id: r.id as string,
  user: r.user as string,
  device: r.device as string,
  protocol: r.protocol as Protocol,
  notBefore: r.not_before as number,
  notAfter: r.not_after as number,
  createdBy: r.created_by as string,
  createdAt: r.created_at as number,
  revokedAt: (r.revoked_at as number | null) ?? null,
  revokedBy: (r.revoked_by as string | null) ?? null,
  requestId: (r.request_id as string | null) ?? null,
  profile: (r.profile as string | null) ?? null,
  allowFileTransfer: r.allow_file_transfer === 1,
});

const sessionFromRow = (r: Row): SessionRecord => ({
  id: r.id as string,
  user: r.user as string,
  device: r.device as string,
  protocol: r.protocol as Protocol,
  grantId: r.grant_id as string,
  via: r.via as string,
  kind: r.kind as SessionRecord['kind'],
  command: (r.command as string | null) ?? null,
  clientAddress: r.client_address as string,
  node: r.node as string,
  startedAt: r.started_at as number,
  endedAt: (r.ended_at as number | null) ?? null,
  endReason: (r.end_reason as SessionRecord['endReason']) ?? null,
  exitStatus: (r.exit_status as number | null) ?? null,
  bytesIn: r.bytes_in as number,
  bytesOut: r.bytes_out as number,
  recordingId: r.recording_id as string,
});

const recordingFromRow = (r: Row): RecordingRecord => ({
  id: r.id as string,
  sessionId: r.session_id as string,
  path: r.path as string,
  format: r.format as string,
  startedAt: r.started_at as number,
  sealedAt: (r.sealed_at as number | null) ?? null,
  size: (r.size as number | null) ?? null,
  sha256: (r.sha256 as string | null) ?? null,
});

const auditFromRow = (r: Row): AuditEntry => ({
  seq: r.seq as number,
  ts: r.ts as string,
  type: r.type as string,
  actor: r.actor as string,
  outcome: r.outcome as AuditEntry['outcome'],
  code: (r.code as string | null) ?? null,
  data: JSON.parse(r.data as string) as Record<string, unknown>,
  prevHash: r.prev_hash as string,
  hash: r.hash as string,
});

function conflict(err: unknown, what: string): never {
  if (err instanceof Error && /UNIQUE|PRIMARY KEY/.test(err.message)) {
    const e = new Error(`${what} already exists`);
    (e as Error & { code: string }).code = 'ALREADY_EXISTS';
    throw e;
  }
  throw err;
}

/** The embedded backend: one file, WAL, one gateway node. */
export class SqliteStore implements Store {
  readonly backend = 'sqlite';
  private readonly db: Database.Database;

  constructor(file: string) {
    mkdirSync(path.dirname(file), { recursive: true });
    this.db = new Database(file);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = NORMAL');
    this.db.pragma('foreign_keys = ON');
    this.db.pragma('busy_timeout = 5000');
    this.migrate();
  }

  private migrate(): void {
    const current = this.db.pragma('user_version', { simple: true }) as number;
    if (current > SQLITE_MIGRATIONS.length) {
      throw new Error(`the database schema (version ${current}) is newer than this Portcullis (${SQLITE_MIGRATIONS.length}); upgrade Portcullis`);
    }
    for (let v = current; v < SQLITE_MIGRATIONS.length; v++) {
      this.db.transaction(() => {
        this.db.exec(SQLITE_MIGRATIONS[v] as string);
        this.db.pragma(`user_version = ${v + 1}`);
      }).immediate();
    }
  }

  private patch(table: string, key: string, keyValue: string, columns: Record<string, string>, patch: object): void {
    const sets: string[] = [];
    const values: unknown[] = [];
    for (const [k, v] of Object.entries(patch)) {
      const col = columns[k];
      if (!col) throw new Error(`${table}: cannot update ${k}`);
      sets.push(`${col} = ?`);
      values.push(toDb(v));
    }
    if (sets.length === 0) return;
    this.db.prepare(`UPDATE ${table} SET ${sets.join(', ')} WHERE ${key} = ?`).run(...values, keyValue);
  }

  async createUser(u: UserRecord): Promise<void> {
    try {
      this.db.prepare(`INSERT INTO users (name, roles, org, password_hash, totp_sealed, totp_last_step, failed_logins, locked_until, disabled, expires_at, public_keys, created_at)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`).run(
        u.name, JSON.stringify(u.roles), u.org, u.passwordHash, u.totpSealed, u.totpLastStep, u.failedLogins, u.lockedUntil,
        u.disabled ? 1 : 0, u.expiresAt, JSON.stringify(u.publicKeys), u.createdAt);
    } catch (err) {
      conflict(err, `user ${u.name}`);
    }
  }

  async getUser(name: string): Promise<UserRecord | null> {
    const r = this.db.prepare('SELECT * FROM users WHERE name = ?').get(name) as Row | undefined;
    return r ? userFromRow(r) : null;
  }

  async listUsers(): Promise<UserRecord[]> {
    return (this.db.prepare('SELECT * FROM users ORDER BY name').all() as Row[]).map(userFromRow);
  }

  async updateUser(name: string, patch: Partial<UserRecord>): Promise<void> {
    this.patch('users', 'name', name, USER_COLUMNS, patch);
  }

  async incrementLoginFailures(name: string): Promise<number> {
    const r = this.db.prepare('UPDATE users SET failed_logins = failed_logins + 1 WHERE name = ? RETURNING failed_logins').get(name) as Row | undefined;
    return (r?.failed_logins as number | undefined) ?? 0;
  }

  async consumeTotpStep(name: string, step: number): Promise<boolean> {
    const res = this.db.prepare('UPDATE users SET totp_last_step = ? WHERE name = ? AND totp_last_step < ?').run(step, name, step);
    return res.changes === 1;
  }

  async createDevice(d: DeviceRecord): Promise<void> {
    try {
      this.db.prepare(`INSERT INTO devices (name, host, port, protocols, udi, ip, mac, state, host_key_algo, host_key_blob, created_at)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`).run(
        d.name, d.host, d.port, JSON.stringify(d.protocols), d.udi, d.ip, d.mac, d.state, d.hostKeyAlgo, d.hostKeyBlob, d.createdAt);
    } catch (err) {
      conflict(err, `device ${d.name} (or its UDI)`);
    }
  }

  async getDevice(name: string): Promise<DeviceRecord | null> {
    const r = this.db.prepare('SELECT * FROM devices WHERE name = ?').get(name) as Row | undefined;
    return r ? deviceFromRow(r) : null;
  }

  async listDevices(): Promise<DeviceRecord[]> {
    return (this.db.prepare('SELECT * FROM devices ORDER BY name').all() as Row[]).map(deviceFromRow);
  }

  async updateDevice(name: string, patch: Partial<DeviceRecord>): Promise<void> {
    this.patch('devices', 'name', name, DEVICE_COLUMNS, patch);
  }

  async putCredential(c: CredentialRecord): Promise<void> {
    this.db.prepare(`INSERT INTO credentials (device, username, kind, sealed, updated_at) VALUES (?, ?, ?, ?, ?)
      ON CONFLICT(device) DO UPDATE SET username = excluded.username, kind = excluded.kind, sealed = excluded.sealed, updated_at = excluded.updated_at`)
      .run(c.device, c.username, c.kind, c.sealed, c.updatedAt);
  }

  async getCredential(device: string): Promise<CredentialRecord | null> {
    const r = this.db.prepare('SELECT * FROM credentials WHERE device = ?').get(device) as Row | undefined;
    if (!r) return null;
    return { device: r.device as string, username: r.username as string, kind: r.kind as CredentialRecord['kind'], sealed: r.sealed as string, updatedAt: r.updated_at as number };
  }

  async createGrant(g: GrantRecord): Promise<void> {
    this.db.prepare(`INSERT INTO grants (id, user, device, protocol, not_before, not_after, created_by, created_at, revoked_at, revoked_by, request_id, profile, allow_file_transfer)
      VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`).run(
      g.id, g.user, g.device, g.protocol, g.notBefore, g.notAfter, g.createdBy, g.createdAt, g.revokedAt, g.revokedBy, g.requestId, g.profile,
      g.allowFileTransfer ? 1 : 0);
  }

  async getGrant(id: string): Promise<GrantRecord | null> {
    const r = this.db.prepare('SELECT * FROM grants WHERE id = ?').get(id) as Row | undefined;
    return r ? grantFromRow(r) : null;
  }

  async listGrants(filter: { user?: string; device?: string }): Promise<GrantRecord[]> {
    const where: string[] = [];
    const args: string[] = [];
    if (filter.user !== undefined) { where.push('user = ?'); args.push(filter.user); }
    if (filter.device !== undefined) { where.push('device = ?'); args.push(filter.device); }
    const sql = `SELECT * FROM grants ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY created_at`;
    return (this.db.prepare(sql).all(...args) as Row[]).map(grantFromRow);
  }

  async revokeGrant(id: string, at: number, by: string): Promise<void> {
    this.db.prepare('UPDATE grants SET revoked_at = ?, revoked_by = ? WHERE id = ? AND revoked_at IS NULL').run(at, by, id);
  }

  async createSession(s: SessionRecord): Promise<void> {
    this.db.prepare(`INSERT INTO sessions (id, user, device, protocol, grant_id, via, kind, command, client_address, node, started_at, ended_at, end_reason, exit_status, bytes_in, bytes_out, recording_id)
      VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`).run(
      s.id, s.user, s.device, s.protocol, s.grantId, s.via, s.kind, s.command, s.clientAddress, s.node, s.startedAt, s.endedAt, s.endReason,
      s.exitStatus, s.bytesIn, s.bytesOut, s.recordingId);
  }

  async updateSession(id: string, patch: Partial<SessionRecord>): Promise<void> {
    this.patch('sessions', 'id', id, SESSION_COLUMNS, patch);
  }

  async getSession(id: string): Promise<SessionRecord | null> {
    const r = this.db.prepare('SELECT * FROM sessions WHERE id = ?').get(id) as Row | undefined;
    return r ? sessionFromRow(r) : null;
  }

  async listSessions(limit: number): Promise<SessionRecord[]> {
    return (this.db.prepare('SELECT * FROM sessions ORDER BY started_at DESC, rowid DESC LIMIT ?').all(limit) as Row[]).map(sessionFromRow);
  }

  async createRecording(r: RecordingRecord): Promise<void> {
    this.db.prepare('INSERT INTO recordings (id, session_id, path, format, started_at, sealed_at, size, sha256) VALUES (?, ?, ?, ?, ?, ?, ?, ?)')
      .run(r.id, r.sessionId, r.path, r.format, r.startedAt, r.sealedAt, r.size, r.sha256);
  }

  async sealRecording(id: string, seal: { sealedAt: number; size: number; sha256: string }): Promise<void> {
    this.db.prepare('UPDATE recordings SET sealed_at = ?, size = ?, sha256 = ? WHERE id = ?').run(seal.sealedAt, seal.size, seal.sha256, id);
  }

  async getRecording(id: string): Promise<RecordingRecord | null> {
    const r = this.db.prepare('SELECT * FROM recordings WHERE id = ?').get(id) as Row | undefined;
    return r ? recordingFromRow(r) : null;
  }

  async listRecordings(): Promise<RecordingRecord[]> {
    return (this.db.prepare('SELECT * FROM recordings ORDER BY started_at').all() as Row[]).map(recordingFromRow);
  }

  private readonly appendTx = (): Database.Transaction<(draft: AuditDraft, now: number) => AuditEntry> => {
    const last = this.db.prepare('SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1');
    const insert = this.db.prepare('INSERT INTO audit (seq, ts, type, actor, outcome, code, data, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)');
    return this.db.transaction((draft: AuditDraft, now: number): AuditEntry => {
      const prev = last.get() as { seq: number; hash: string } | undefined;
      const seq = (prev?.seq ?? 0) + 1;
      const prevHash = prev?.hash ?? GENESIS_HASH;
      const body = { ...draft, seq, ts: new Date(now).toISOString() };
      const hash = chainHash(prevHash, hashedBody(body));
      insert.run(seq, body.ts, draft.type, draft.actor, draft.outcome, draft.code, JSON.stringify(draft.data), prevHash, hash);
      return { ...body, prevHash, hash };
    });
  };

  private appendAuditTx: Database.Transaction<(draft: AuditDraft, now: number) => AuditEntry> | null = null;

  async appendAudit(draft: AuditDraft, now: number): Promise<AuditEntry> {
    this.appendAuditTx ??= this.appendTx();
    return this.appendAuditTx.immediate(draft, now);
  }

  async listAudit(q: AuditQuery): Promise<AuditEntry[]> {
    const where = ['seq > ?'];
    const args: unknown[] = [q.afterSeq ?? 0];
    if (q.type) { where.push('type = ?'); args.push(q.type); }
    const rows = this.db.prepare(`SELECT * FROM audit WHERE ${where.join(' AND ')} ORDER BY seq LIMIT ?`).all(...args, q.limit ?? 1000) as Row[];
    return rows.map(auditFromRow);
  }

  async close(): Promise<void> {
    this.db.close();
  }
}
