import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { chainHash, GENESIS_HASH, hashedBody } from '../audit/audit-chain.js';
import { programsOf } from './command-programs.js';
import {
  ALERT_FIELDS, API_TOKEN_FIELDS, columnName, COMMAND_FIELDS, DEVICE_FIELDS, GRANT_FIELDS, NODE_FIELDS, ORG_FIELDS, RECORDING_FIELDS, REQUEST_FIELDS,
  SESSION_FIELDS, USER_FIELDS, WEB_SESSION_FIELDS, type Fields, ROLE_CHANGE_FIELDS,
} from './record-fields.js';
import { SQLITE_MIGRATIONS } from './sqlite-migrations.js';
import {
  AlreadyExistsError, type AlertAcknowledgement, type AlertQuery, type AlertRecord, type ApiTokenRecord, type AuditDraft, type AuditEntry, type AuditQuery, type CommandQuery,
  type CommandRecord, type CredentialRecord, type ExportCursor, type IntegrityMark,
  type DeviceRecord, type GrantRecord, type NodeRecord, type OrgRecord, type RecordingRecord, type RequestQuery, type RequestRecord,
  type RoleChangeQuery, type RoleChangeRecord, type SessionEndPatch, type SessionQuery, type SessionRecord, type Store, type UserRecord, type WebSessionRecord,
} from './store.js';

type Row = Record<string, unknown>;

/** One table whose columns follow a record's declared fields (record-fields.ts). */
class Table<T extends object> {
  private readonly keyColumn: string;
  private readonly insertStmt: Database.Statement;
  private readonly getStmt: Database.Statement;

  constructor(private readonly db: Database.Database, readonly name: string, private readonly fields: Fields<T>, key: keyof T & string) {
    const cols = Object.keys(fields);
    this.keyColumn = columnName(key);
    this.insertStmt = db.prepare(`INSERT INTO ${name} (${cols.map(columnName).join(', ')}) VALUES (${cols.map(() => '?').join(', ')})`);
    this.getStmt = db.prepare(`SELECT * FROM ${name} WHERE ${this.keyColumn} = ?`);
  }

  private toDb(field: string, v: unknown): unknown {
    const kind = (this.fields as Record<string, string>)[field];
    if (kind === undefined) throw new Error(`${this.name}: no field ${field}`);
    if (v === null || v === undefined) return null;
    if (kind === 'bool') return v ? 1 : 0;
    if (kind === 'json' || kind === 'json?') return JSON.stringify(v);
    return v;
  }

  fromRow(r: Row): T {
    const out: Record<string, unknown> = {};
    for (const [field, kind] of Object.entries(this.fields as Record<string, string>)) {
      const v = r[columnName(field)];
      if (v === null || v === undefined) out[field] = null;
      else if (kind === 'bool') out[field] = v === 1;
      else if (kind === 'json' || kind === 'json?') out[field] = JSON.parse(v as string);
      else out[field] = v;
    }
    return out as T;
  }

  insert(rec: T, what: string): void {
    try {
      this.insertStmt.run(...Object.keys(this.fields).map((f) => this.toDb(f, (rec as Record<string, unknown>)[f])));
    } catch (err) {
      if (err instanceof Error && /UNIQUE|PRIMARY KEY/.test(err.message)) throw new AlreadyExistsError(what);
      throw err;
    }
  }

  get(key: string): T | null {
    const r = this.getStmt.get(key) as Row | undefined;
    return r ? this.fromRow(r) : null;
  }

  select(tail: string, ...args: unknown[]): T[] {
    return (this.db.prepare(`SELECT * FROM ${this.name} ${tail}`).all(...args) as Row[]).map((r) => this.fromRow(r));
  }

  /** UPDATE … SET the patched fields WHERE key = ? [AND extra]; returns the rows changed. */
  patch(key: string, patch: object, extra = '', ...extraArgs: unknown[]): number {
    const entries = Object.entries(patch).filter(([, v]) => v !== undefined);
    if (entries.length === 0) return 0;
    const sets = entries.map(([f]) => `${columnName(f)} = ?`);
    const values = entries.map(([f, v]) => this.toDb(f, v));
    return this.db.prepare(`UPDATE ${this.name} SET ${sets.join(', ')} WHERE ${this.keyColumn} = ? ${extra}`).run(...values, key, ...extraArgs).changes;
  }
}

const auditFromRow = (r: Row): AuditEntry => ({
  seq: r.seq as number,
  ts: r.ts as string,
  type: r.type as string,
  actor: r.actor as string,
  outcome: r.outcome as AuditEntry['outcome'],
  code: (r.code as string | null) ?? null,
  data: JSON.parse(r.data as string) as Record<string, unknown>,
  channel: (r.channel as string | null) ?? null,
  source: (r.source as string | null) ?? null,
  prevHash: r.prev_hash as string,
  hash: r.hash as string,
});

/** Builds "WHERE a AND b" from the conditions that apply. */
function where(conds: Array<[boolean, string, unknown]>): { sql: string; args: unknown[] } {
  const on = conds.filter(([apply]) => apply);
  return { sql: on.length ? `WHERE ${on.map(([, c]) => c).join(' AND ')}` : '', args: on.map(([, , a]) => a) };
}

/** The embedded backend: one file, WAL, one gateway node. */
export class SqliteStore implements Store {
  readonly backend = 'sqlite';
  private readonly db: Database.Database;
  private readonly users: Table<UserRecord>;
  private readonly orgs: Table<OrgRecord>;
  private readonly devices: Table<DeviceRecord>;
  private readonly grants: Table<GrantRecord>;
  private readonly requests: Table<RequestRecord>;
  private readonly roleChanges: Table<RoleChangeRecord>;
  private readonly sessions: Table<SessionRecord>;
  private readonly recordings: Table<RecordingRecord>;
  private readonly commands: Table<CommandRecord>;
  private readonly webSessions: Table<WebSessionRecord>;
  private readonly nodes: Table<NodeRecord>;
  private readonly apiTokens: Table<ApiTokenRecord>;
  private readonly alerts: Table<AlertRecord>;
  private readonly appendTx: Database.Transaction<(draft: AuditDraft, now: number, dedupId: string | undefined) => AuditEntry>;

  constructor(file: string) {
    mkdirSync(path.dirname(file), { recursive: true });
    this.db = new Database(file);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = NORMAL');
    this.db.pragma('foreign_keys = ON');
    this.db.pragma('busy_timeout = 5000');
    // The command log's search by program: the same reading of a line as the Redis backend's.
    this.db.function('line_runs', { deterministic: true }, (line: unknown, program: unknown) => (programsOf(String(line)).includes(String(program)) ? 1 : 0));
    this.migrate();
    this.users = new Table(this.db, 'users', USER_FIELDS, 'name');
    this.orgs = new Table(this.db, 'orgs', ORG_FIELDS, 'name');
    this.devices = new Table(this.db, 'devices', DEVICE_FIELDS, 'name');
    this.grants = new Table(this.db, 'grants', GRANT_FIELDS, 'id');
    this.requests = new Table(this.db, 'requests', REQUEST_FIELDS, 'id');
    this.roleChanges = new Table(this.db, 'role_changes', ROLE_CHANGE_FIELDS, 'id');
    this.sessions = new Table(this.db, 'sessions', SESSION_FIELDS, 'id');
    this.recordings = new Table(this.db, 'recordings', RECORDING_FIELDS, 'id');
    this.commands = new Table(this.db, 'commands', COMMAND_FIELDS, 'id');
    this.webSessions = new Table(this.db, 'web_sessions', WEB_SESSION_FIELDS, 'id');
    this.nodes = new Table(this.db, 'nodes', NODE_FIELDS, 'id');
    this.apiTokens = new Table(this.db, 'api_tokens', API_TOKEN_FIELDS, 'id');
    this.alerts = new Table(this.db, 'alerts', ALERT_FIELDS, 'id');
    this.appendTx = this.makeAppendTx();
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

  async createUser(u: UserRecord): Promise<void> {
    this.users.insert(u, `user ${u.name}`);
  }

  async getUser(name: string): Promise<UserRecord | null> {
    return this.users.get(name);
  }

  async listUsers(): Promise<UserRecord[]> {
    return this.users.select('ORDER BY name');
  }

  async updateUser(name: string, patch: Partial<UserRecord>): Promise<void> {
    this.users.patch(name, patch);
  }

  async incrementLoginFailures(name: string): Promise<number> {
    const r = this.db.prepare('UPDATE users SET failed_logins = failed_logins + 1 WHERE name = ? RETURNING failed_logins').get(name) as Row | undefined;
    return (r?.failed_logins as number | undefined) ?? 0;
  }

  async consumeTotpStep(name: string, step: number): Promise<boolean> {
    return this.users.patch(name, { totpLastStep: step }, 'AND totp_last_step < ?', step) === 1;
  }

  async findUserBySso(issuer: string, subject: string): Promise<UserRecord | null> {
    return this.users.select("WHERE sso IS NOT NULL AND json_extract(sso, '$.issuer') = ? AND json_extract(sso, '$.subject') = ?", issuer, subject)[0] ?? null;
  }

  async createOrg(o: OrgRecord): Promise<void> {
    this.orgs.insert(o, `organisation ${o.name}`);
  }

  async getOrg(name: string): Promise<OrgRecord | null> {
    return this.orgs.get(name);
  }

  async listOrgs(): Promise<OrgRecord[]> {
    return this.orgs.select('ORDER BY name');
  }

  async updateOrg(name: string, patch: Partial<OrgRecord>): Promise<void> {
    this.orgs.patch(name, patch);
  }

  async createDevice(d: DeviceRecord): Promise<void> {
    this.devices.insert(d, `device ${d.name} (or its UDI)`);
  }

  async createDevices(batch: DeviceRecord[]): Promise<void> {
    this.db.transaction(() => {
      for (const d of batch) this.devices.insert(d, `device ${d.name} (or its UDI)`);
    }).immediate();
  }

  async getDevice(name: string): Promise<DeviceRecord | null> {
    return this.devices.get(name);
  }

  async listDevices(): Promise<DeviceRecord[]> {
    return this.devices.select('ORDER BY name');
  }

  async updateDevice(name: string, patch: Partial<DeviceRecord>): Promise<void> {
    try {
      this.devices.patch(name, patch);
    } catch (err) {
      if (err instanceof Error && /UNIQUE/.test(err.message)) throw new AlreadyExistsError(`a device with UDI ${String(patch.udi)}`);
      throw err;
    }
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

  async deleteCredential(device: string): Promise<void> {
    this.db.prepare('DELETE FROM credentials WHERE device = ?').run(device);
  }

  async createGrant(g: GrantRecord): Promise<void> {
    this.grants.insert(g, `grant ${g.id}`);
  }

  async getGrant(id: string): Promise<GrantRecord | null> {
    return this.grants.get(id);
  }

  async listGrants(filter: { user?: string; device?: string; requestId?: string }): Promise<GrantRecord[]> {
    const w = where([
      [filter.user !== undefined, 'user = ?', filter.user],
      [filter.device !== undefined, 'device = ?', filter.device],
      [filter.requestId !== undefined, 'request_id = ?', filter.requestId],
    ]);
    return this.grants.select(`${w.sql} ORDER BY created_at, rowid`, ...w.args);
  }

  async revokeGrant(id: string, at: number, by: string): Promise<void> {
    this.grants.patch(id, { revokedAt: at, revokedBy: by }, 'AND revoked_at IS NULL');
  }

  async createRequest(r: RequestRecord): Promise<void> {
    this.requests.insert(r, `request ${r.id}`);
  }

  async getRequest(id: string): Promise<RequestRecord | null> {
    return this.requests.get(id);
  }

  async listRequests(q: RequestQuery): Promise<RequestRecord[]> {
    const w = where([
      [q.requester !== undefined, 'requester = ?', q.requester],
      [q.status !== undefined, 'status = ?', q.status],
      [q.device !== undefined, 'EXISTS (SELECT 1 FROM json_each(requests.devices) WHERE value = ?)', q.device],
    ]);
    return this.requests.select(`${w.sql} ORDER BY created_at DESC, rowid DESC LIMIT ?`, ...w.args, q.limit ?? 1000);
  }

  async updateRequestIf(id: string, expectedVersion: number, patch: Partial<RequestRecord>): Promise<boolean> {
    return this.requests.patch(id, { ...patch, version: expectedVersion + 1 }, 'AND version = ?', expectedVersion) === 1;
  }

  async createRoleChange(c: RoleChangeRecord): Promise<void> {
    this.roleChanges.insert(c, `role change ${c.id}`);
  }

  async getRoleChange(id: string): Promise<RoleChangeRecord | null> {
    return this.roleChanges.get(id);
  }

  async listRoleChanges(q: RoleChangeQuery): Promise<RoleChangeRecord[]> {
    const w = where([[q.status !== undefined, 'status = ?', q.status], [q.user !== undefined, 'user = ?', q.user]]);
    return this.roleChanges.select(`${w.sql} ORDER BY requested_at DESC, rowid DESC LIMIT ?`, ...w.args, q.limit ?? 1000);
  }

  async settleRoleChange(id: string, patch: Pick<RoleChangeRecord, 'status' | 'decidedBy' | 'decidedAt' | 'reason'>): Promise<boolean> {
    return this.roleChanges.patch(id, patch, "AND status = 'pending'") === 1;
  }

  async createSession(s: SessionRecord): Promise<void> {
    this.sessions.insert(s, `session ${s.id}`);
  }

  async updateSession(id: string, patch: Partial<SessionRecord>): Promise<void> {
    this.sessions.patch(id, patch);
  }

  async endSessionIfOpen(id: string, patch: SessionEndPatch): Promise<boolean> {
    return this.sessions.patch(id, patch, 'AND ended_at IS NULL') === 1;
  }

  async getSession(id: string): Promise<SessionRecord | null> {
    return this.sessions.get(id);
  }

  async listSessions(q: SessionQuery): Promise<SessionRecord[]> {
    const w = where([
      [q.user !== undefined, 'user = ?', q.user],
      [q.device !== undefined, 'device = ?', q.device],
      [q.from !== undefined, 'started_at >= ?', q.from],
      [q.to !== undefined, 'started_at < ?', q.to],
      [q.open === true, 'ended_at IS NULL', undefined],
    ]);
    const args = w.args.filter((a) => a !== undefined);
    return this.sessions.select(`${w.sql} ORDER BY started_at DESC, rowid DESC LIMIT ?`, ...args, q.limit);
  }

  async createRecording(r: RecordingRecord): Promise<void> {
    this.recordings.insert(r, `recording ${r.id}`);
  }

  async sealRecording(id: string, seal: { sealedAt: number; size: number; sha256: string }): Promise<void> {
    this.recordings.patch(id, seal);
  }

  async getRecording(id: string): Promise<RecordingRecord | null> {
    return this.recordings.get(id);
  }

  async listRecordings(): Promise<RecordingRecord[]> {
    return this.recordings.select('ORDER BY started_at, rowid');
  }

  async createCommand(c: CommandRecord): Promise<void> {
    this.commands.insert(c, `command ${c.id}`);
  }

  async updateCommand(id: string, patch: Partial<CommandRecord>): Promise<void> {
    this.commands.patch(id, patch);
  }

  async listCommands(q: CommandQuery): Promise<CommandRecord[]> {
    const w = where([
      [q.session !== undefined, 'session = ?', q.session],
      [q.user !== undefined, 'user = ?', q.user],
      [q.device !== undefined, 'device = ?', q.device],
      // instr(), not LIKE: the search text is taken literally, % and _ included.
      [q.text !== undefined, 'instr(line, ?) > 0', q.text],
      [q.program !== undefined, 'line_runs(line, ?) = 1', q.program],
      [q.decision !== undefined, 'decision = ?', q.decision],
      [q.since !== undefined, 'at >= ?', q.since],
      [q.until !== undefined, 'at <= ?', q.until],
    ]);
    return this.commands.select(`${w.sql} ORDER BY at DESC, rowid DESC LIMIT ?`, ...w.args, q.limit);
  }

  async getCommand(id: string): Promise<CommandRecord | null> {
    return this.commands.get(id);
  }

  async resolveCommandReview(id: string, patch: Pick<CommandRecord, 'decision' | 'reviewer' | 'reason'>): Promise<boolean> {
    return this.commands.patch(id, patch, "AND decision = 'review'") === 1;
  }

  async createWebSession(s: WebSessionRecord): Promise<void> {
    this.webSessions.insert(s, 'web session');
  }

  async getWebSession(id: string, now: number): Promise<WebSessionRecord | null> {
    const s = this.webSessions.get(id);
    return s && s.expiresAt > now ? s : null;
  }

  async touchWebSession(id: string, lastSeenAt: number, expiresAt: number): Promise<void> {
    this.webSessions.patch(id, { lastSeenAt, expiresAt });
  }

  async deleteWebSession(id: string): Promise<void> {
    this.db.prepare('DELETE FROM web_sessions WHERE id = ?').run(id);
  }

  async deleteWebSessionsOf(user: string): Promise<void> {
    this.db.prepare('DELETE FROM web_sessions WHERE user = ?').run(user);
  }

  async createApiToken(t: ApiTokenRecord): Promise<void> {
    this.apiTokens.insert(t, `API token ${t.id}`);
  }

  async getApiToken(id: string): Promise<ApiTokenRecord | null> {
    return this.apiTokens.get(id);
  }

  async listApiTokens(filter: { owner?: string }): Promise<ApiTokenRecord[]> {
    const w = where([[filter.owner !== undefined, 'owner = ?', filter.owner]]);
    return this.apiTokens.select(`${w.sql} ORDER BY created_at, rowid`, ...w.args);
  }

  async revokeApiToken(id: string, at: number, by: string): Promise<boolean> {
    return this.apiTokens.patch(id, { revokedAt: at, revokedBy: by }, 'AND revoked_at IS NULL') === 1;
  }

  async touchApiToken(id: string, lastUsedAt: number): Promise<void> {
    this.apiTokens.patch(id, { lastUsedAt });
  }

  async heartbeat(n: NodeRecord): Promise<void> {
    this.db.prepare(`INSERT INTO nodes (id, instance, started_at, last_seen_at, expires_at, ssh, web) VALUES (?, ?, ?, ?, ?, ?, ?)
      ON CONFLICT(id) DO UPDATE SET instance = excluded.instance, started_at = excluded.started_at, last_seen_at = excluded.last_seen_at,
      expires_at = excluded.expires_at, ssh = excluded.ssh, web = excluded.web`)
      .run(n.id, n.instance, n.startedAt, n.lastSeenAt, n.expiresAt, n.ssh, n.web);
  }

  async listNodes(now: number): Promise<NodeRecord[]> {
    return this.nodes.select('WHERE expires_at > ? ORDER BY id', now);
  }

  async removeNode(id: string, instance: string): Promise<void> {
    this.db.prepare('DELETE FROM nodes WHERE id = ? AND instance = ?').run(id, instance);
  }

  private makeAppendTx(): Database.Transaction<(draft: AuditDraft, now: number, dedupId: string | undefined) => AuditEntry> {
    const last = this.db.prepare('SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1');
    const insert = this.db.prepare('INSERT INTO audit (seq, ts, type, actor, outcome, code, data, channel, source, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)');
    const seen = this.db.prepare('SELECT a.* FROM audit_dedup d JOIN audit a ON a.seq = d.seq WHERE d.id = ?');
    const remember = this.db.prepare('INSERT INTO audit_dedup (id, seq) VALUES (?, ?)');
    return this.db.transaction((draft: AuditDraft, now: number, dedupId: string | undefined): AuditEntry => {
      if (dedupId !== undefined) {
        const done = seen.get(dedupId) as Row | undefined;
        if (done) return auditFromRow(done);
      }
      const prev = last.get() as { seq: number; hash: string } | undefined;
      const seq = (prev?.seq ?? 0) + 1;
      const prevHash = prev?.hash ?? GENESIS_HASH;
      const body = { ...draft, channel: draft.channel ?? null, source: draft.source ?? null, seq, ts: new Date(now).toISOString() };
      const hash = chainHash(prevHash, hashedBody(body));
      insert.run(seq, body.ts, draft.type, draft.actor, draft.outcome, draft.code, JSON.stringify(draft.data), body.channel, body.source, prevHash, hash);
      if (dedupId !== undefined) remember.run(dedupId, seq);
      return { ...body, prevHash, hash };
    });
  }

  async appendAudit(draft: AuditDraft, now: number, dedupId?: string): Promise<AuditEntry> {
    return this.appendTx.immediate(draft, now, dedupId);
  }

  async listAudit(q: AuditQuery): Promise<AuditEntry[]> {
    const w = where([
      [true, 'seq > ?', q.afterSeq ?? 0], [q.beforeSeq !== undefined, 'seq < ?', q.beforeSeq], [Boolean(q.type), 'type = ?', q.type],
      [q.actor !== undefined, 'actor = ?', q.actor], [q.outcome !== undefined, 'outcome = ?', q.outcome],
      [q.channel !== undefined, 'channel = ?', q.channel],
      [q.since !== undefined, 'ts >= ?', q.since], [q.until !== undefined, 'ts <= ?', q.until],
      // instr(), not LIKE: the search text is taken literally, % and _ included.
      [q.text !== undefined, 'instr(data, ?) > 0', q.text],
    ]);
    const rows = this.db.prepare(`SELECT * FROM audit ${w.sql} ORDER BY seq ${q.order === 'desc' ? 'DESC' : 'ASC'} LIMIT ?`).all(...w.args, q.limit ?? 1000) as Row[];
    return rows.map(auditFromRow);
  }

  async lastAuditSeq(): Promise<number> {
    const row = this.db.prepare('SELECT max(seq) AS seq FROM audit').get() as { seq: number | null };
    return row.seq ?? 0;
  }

  async claimExport(name: string, holder: string, now: number, leaseMs: number): Promise<ExportCursor> {
    const read = (): ExportCursor => {
      const r = this.db.prepare('SELECT position, holder, lease_until FROM audit_exports WHERE name = ?').get(name) as { position: number; holder: string | null; lease_until: number } | undefined;
      return r ? { name, position: r.position, holder: r.holder, leaseUntil: r.lease_until } : { name, position: 0, holder: null, leaseUntil: 0 };
    };
    return this.db.transaction((): ExportCursor => {
      const cur = read();
      if (cur.holder === null || cur.holder === holder || cur.leaseUntil <= now) {
        this.db.prepare(`INSERT INTO audit_exports (name, position, holder, lease_until) VALUES (?, 0, ?, ?)
          ON CONFLICT(name) DO UPDATE SET holder = excluded.holder, lease_until = excluded.lease_until`).run(name, holder, now + leaseMs);
      }
      return read();
    }).immediate();
  }

  async advanceExport(name: string, holder: string, position: number): Promise<boolean> {
    const r = this.db.prepare('UPDATE audit_exports SET position = max(position, ?) WHERE name = ? AND holder = ?').run(position, name, holder);
    return r.changes === 1;
  }

  async releaseExport(name: string, holder: string): Promise<void> {
    this.db.prepare('UPDATE audit_exports SET holder = NULL, lease_until = 0 WHERE name = ? AND holder = ?').run(name, holder);
  }

  async createAlert(a: AlertRecord): Promise<void> {
    this.alerts.insert(a, `alert ${a.id}`);
  }

  async getAlert(id: string): Promise<AlertRecord | null> {
    return this.alerts.get(id);
  }

  async listAlerts(q: AlertQuery): Promise<AlertRecord[]> {
    if (q.kinds !== undefined && q.kinds.length === 0) return [];
    const conds: string[] = [];
    const args: unknown[] = [];
    if (q.kinds !== undefined) {
      conds.push('kind IN (SELECT value FROM json_each(?))');
      args.push(JSON.stringify(q.kinds));
    }
    if (q.unacknowledged === true) conds.push('acknowledgement IS NULL');
    const sql = conds.length ? `WHERE ${conds.join(' AND ')}` : '';
    return this.alerts.select(`${sql} ORDER BY raised_at DESC, seq DESC LIMIT ?`, ...args, q.limit);
  }

  async acknowledgeAlert(id: string, ack: AlertAcknowledgement): Promise<boolean> {
    return this.alerts.patch(id, { acknowledgement: ack }, 'AND acknowledgement IS NULL') === 1;
  }

  async countInWindow(key: string, member: string, at: number, windowMs: number): Promise<string[]> {
    return this.db.transaction(() => {
      this.db.prepare('INSERT INTO alert_windows (key, member, at) VALUES (?, ?, ?) ON CONFLICT(key, member) DO NOTHING').run(key, member, at);
      this.db.prepare('DELETE FROM alert_windows WHERE key = ? AND at <= ?').run(key, at - windowMs);
      // Windows are at most 7 days (the config's bound): older rows of keys nobody counts any more go too.
      this.db.prepare('DELETE FROM alert_windows WHERE at <= ?').run(at - 8 * 86_400_000);
      return (this.db.prepare('SELECT member FROM alert_windows WHERE key = ? ORDER BY at, member').all(key) as Array<{ member: string }>).map((r) => r.member);
    }).immediate();
  }

  async claim(key: string, holder: string, until: number, now: number): Promise<boolean> {
    return this.db.transaction(() => {
      const cur = this.db.prepare('SELECT holder, until FROM claims WHERE key = ?').get(key) as { holder: string; until: number } | undefined;
      if (cur && cur.holder !== holder && cur.until > now) return false;
      if (until <= now) this.db.prepare('DELETE FROM claims WHERE key = ?').run(key);
      else this.db.prepare('INSERT INTO claims (key, holder, until) VALUES (?, ?, ?) ON CONFLICT(key) DO UPDATE SET holder = excluded.holder, until = excluded.until').run(key, holder, until);
      this.db.prepare('DELETE FROM claims WHERE until <= ?').run(now - 86_400_000);
      return true;
    }).immediate();
  }

  async getIntegrityMark(): Promise<IntegrityMark | null> {
    const r = this.db.prepare('SELECT seq, hash, at FROM integrity_mark WHERE id = 1').get() as IntegrityMark | undefined;
    return r ? { seq: r.seq, hash: r.hash, at: r.at } : null;
  }

  async setIntegrityMark(m: IntegrityMark): Promise<void> {
    this.db.prepare('INSERT INTO integrity_mark (id, seq, hash, at) VALUES (1, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash, at = excluded.at')
      .run(m.seq, m.hash, m.at);
  }

  async ping(): Promise<void> {
    this.db.prepare('SELECT 1').get();
  }

  async close(): Promise<void> {
    this.db.close();
  }
}
