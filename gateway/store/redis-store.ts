import { createHash, randomUUID } from 'node:crypto';
import { createClient, ErrorReply, SocketClosedUnexpectedlyError, type RedisClientType } from 'redis';
import { chainHash, GENESIS_HASH, hashedBody } from '../audit/audit-chain.js';
import type { Logger } from '../log/logger.js';
import { programsOf } from './command-programs.js';
import {
  ALERT_FIELDS, API_TOKEN_FIELDS, COMMAND_FIELDS, DEVICE_FIELDS, GRANT_FIELDS, NODE_FIELDS, ORG_FIELDS, RECORDING_FIELDS, REQUEST_FIELDS, SESSION_FIELDS,
  USER_FIELDS, WEB_SESSION_FIELDS, type Fields, ROLE_CHANGE_FIELDS,
} from './record-fields.js';
import {
  AlreadyExistsError, auditMatches, type AlertAcknowledgement, type AlertQuery, type AlertRecord, type ApiTokenRecord, StoreUnavailableError,
  type IntegrityMark, type AuditDraft, type AuditEntry, type AuditQuery, type CommandQuery, type CommandRecord, type CredentialRecord, type DeviceRecord,
  type ExportCursor, type GrantRecord, type NodeRecord, type OrgRecord, type RecordingRecord, type RequestQuery, type RequestRecord, type SessionEndPatch,
  type SessionQuery, type SessionRecord, type Store, type UserRecord, type WebSessionRecord, type RoleChangeQuery, type RoleChangeRecord,
} from './store.js';

/**
 * Lua runs atomically inside Redis: every check-then-write below is one script, so two gateway
 * nodes can never both pass the same check (two approvals of one version, two uses of one TOTP
 * step, two appends after the same audit entry).
 */
const SCRIPTS = {
  // KEYS: record, ids zset, unique hash, index zsets…  ARGV: id, score, unique value ('' none), field/value pairs…
  create: `
    if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
    if ARGV[3] ~= '' and redis.call('HEXISTS', KEYS[3], ARGV[3]) == 1 then return 0 end
    local n = tonumber(ARGV[4])
    redis.call('HSET', KEYS[1], unpack(ARGV, 5, 4 + n * 2))
    redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
    if ARGV[3] ~= '' then redis.call('HSET', KEYS[3], ARGV[3], ARGV[1]) end
    for i = 4, #KEYS do redis.call('ZADD', KEYS[i], ARGV[2], ARGV[1]) end
    return 1`,
  // Several records at once, all or nothing. KEYS: ids zset, unique hash, record keys…
  // ARGV: count, then per record: id, score, unique value ('' none), field count, field/value pairs…
  createMany: `
    local n = tonumber(ARGV[1])
    local seen, uniq = {}, {}
    local i = 2
    for r = 1, n do
      local id, u, nf = ARGV[i], ARGV[i + 2], tonumber(ARGV[i + 3])
      if seen[id] or redis.call('EXISTS', KEYS[2 + r]) == 1 then return 0 end
      if u ~= '' and (uniq[u] or redis.call('HEXISTS', KEYS[2], u) == 1) then return 0 end
      seen[id] = true
      if u ~= '' then uniq[u] = true end
      i = i + 4 + nf * 2
    end
    i = 2
    for r = 1, n do
      local id, score, u, nf = ARGV[i], ARGV[i + 1], ARGV[i + 2], tonumber(ARGV[i + 3])
      redis.call('HSET', KEYS[2 + r], unpack(ARGV, i + 4, i + 3 + nf * 2))
      redis.call('ZADD', KEYS[1], score, id)
      if u ~= '' then redis.call('HSET', KEYS[2], u, id) end
      i = i + 4 + nf * 2
    end
    return 1`,
  // KEYS: record, set to remove the member from on success (or the record key again for none)
  // ARGV: member, condition field ('' none), op (eq | lt | null), operand, field/value pairs…
  patch: `
    if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
    if ARGV[2] ~= '' then
      local cur = redis.call('HGET', KEYS[1], ARGV[2])
      if ARGV[3] == 'eq' and cur ~= ARGV[4] then return 0 end
      if ARGV[3] == 'lt' and not (cur and tonumber(cur) < tonumber(ARGV[4])) then return 0 end
      if ARGV[3] == 'null' and cur ~= 'null' then return 0 end
    end
    redis.call('HSET', KEYS[1], unpack(ARGV, 5))
    if KEYS[2] ~= KEYS[1] then redis.call('ZREM', KEYS[2], ARGV[1]) end
    return 1`,
  // A device's UDI is unique: moving it checks and updates the UDI → name hash in the same step.
  // KEYS: record, unique hash. ARGV: name, new UDI ('' for none), field/value pairs…
  patchUnique: `
    if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
    if ARGV[2] ~= '' then
      local owner = redis.call('HGET', KEYS[2], ARGV[2])
      if owner and owner ~= ARGV[1] then return -1 end
    end
    local old = redis.call('HGET', KEYS[1], 'udi')
    if old and old ~= 'null' then redis.call('HDEL', KEYS[2], cjson.decode(old)) end
    if ARGV[2] ~= '' then redis.call('HSET', KEYS[2], ARGV[2], ARGV[1]) end
    redis.call('HSET', KEYS[1], unpack(ARGV, 3))
    return 1`,
  incr: `
    if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
    return redis.call('HINCRBY', KEYS[1], ARGV[1], 1)`,
  // KEYS: head, entries hash, type zset, dedup key. ARGV: expected head, seq, entry JSON, new head, dedup TTL (s).
  append: `
    local done = redis.call('GET', KEYS[4])
    if done then return {'dup', done} end
    local head = redis.call('GET', KEYS[1]) or ''
    if head ~= ARGV[1] then return {'conflict', head} end
    redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
    redis.call('SET', KEYS[1], ARGV[4])
    redis.call('ZADD', KEYS[3], ARGV[2], ARGV[2])
    redis.call('SET', KEYS[4], ARGV[2], 'EX', ARGV[5])
    return {'ok', ARGV[2]}`,
  // The syslog export's lease and position (R-A.5c). KEYS: cursor hash. ARGV: holder, now, lease end.
  claimExport: `
    local h = redis.call('HGET', KEYS[1], 'holder') or ''
    local lease = tonumber(redis.call('HGET', KEYS[1], 'leaseUntil') or '0')
    if h == '' or h == ARGV[1] or lease <= tonumber(ARGV[2]) then
      redis.call('HSET', KEYS[1], 'holder', ARGV[1], 'leaseUntil', ARGV[3])
      if redis.call('HEXISTS', KEYS[1], 'position') == 0 then redis.call('HSET', KEYS[1], 'position', '0') end
    end
    return redis.call('HMGET', KEYS[1], 'position', 'holder', 'leaseUntil')`,
  // KEYS: cursor hash. ARGV: holder, position.
  advanceExport: `
    if (redis.call('HGET', KEYS[1], 'holder') or '') ~= ARGV[1] then return 0 end
    if tonumber(ARGV[2]) > tonumber(redis.call('HGET', KEYS[1], 'position') or '0') then redis.call('HSET', KEYS[1], 'position', ARGV[2]) end
    return 1`,
  // KEYS: cursor hash. ARGV: holder.
  releaseExport: `
    if (redis.call('HGET', KEYS[1], 'holder') or '') == ARGV[1] then redis.call('HSET', KEYS[1], 'holder', '', 'leaseUntil', '0') end
    return 1`,
  // KEYS: window zset. ARGV: member, at, oldest score to forget (inclusive), lifetime (ms).
  countInWindow: `
    redis.call('ZADD', KEYS[1], 'NX', ARGV[2], ARGV[1])
    redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[3])
    redis.call('PEXPIRE', KEYS[1], ARGV[4])
    return redis.call('ZRANGE', KEYS[1], 0, -1)`,
  // KEYS: claim hash. ARGV: holder, until, now.
  claim: `
    local cur = redis.call('HMGET', KEYS[1], 'holder', 'until')
    if cur[1] and cur[1] ~= ARGV[1] and tonumber(cur[2]) > tonumber(ARGV[3]) then return 0 end
    local ttl = tonumber(ARGV[2]) - tonumber(ARGV[3])
    if ttl <= 0 then
      redis.call('DEL', KEYS[1])
    else
      redis.call('HSET', KEYS[1], 'holder', ARGV[1], 'until', ARGV[2])
      redis.call('PEXPIRE', KEYS[1], ttl)
    end
    return 1`,
} as const;

type ScriptName = keyof typeof SCRIPTS;
const SHA: Record<ScriptName, string> = Object.fromEntries(
  Object.entries(SCRIPTS).map(([k, v]) => [k, createHash('sha1').update(v).digest('hex')]),
) as Record<ScriptName, string>;

/** A retried append (reply lost after Redis applied it) is recognised for this long. */
const DEDUP_TTL_S = 7 * 86_400;

/** Entries written before channels were recorded have neither field: they read as null. */
const withChannel = (e: AuditEntry): AuditEntry => ({ ...e, channel: e.channel ?? null, source: e.source ?? null });
/** How many records a filtered scan fetches per round trip. */
const PAGE = 256;

export interface RedisStoreOptions {
  url: string;
  prefix: string;
  log: Logger;
  /** Applied to every command: a Redis that stopped answering is unavailable, not a hang. */
  commandTimeoutMs?: number;
  tlsCa?: string;
  /** Replicas that must hold an audit entry, a seal or a session's end before it counts as written (WAIT). */
  waitReplicas?: number;
}

type Enc = Record<string, string>;

interface Index<T> {
  /** Index name, and the value(s) of the record it is filed under. */
  name: string;
  values: (r: T) => Array<string | null>;
}

/** A record type kept as one hash per record, an id zset for order, and secondary index zsets. */
class Collection<T extends object> {
  constructor(
    readonly table: string,
    readonly fields: Fields<T>,
    readonly idOf: (r: T) => string,
    /** Order within the collection (and its indexes); equal scores sort by id. */
    readonly scoreOf: (r: T) => number,
    readonly indexes: ReadonlyArray<Index<T>> = [],
    /** Rewrites a hash stored by an older Portcullis into today's fields, as it is read. */
    readonly upgrade: (h: Enc) => Enc = (h) => h,
  ) {}

  encode(r: Partial<T>): string[] {
    const out: string[] = [];
    for (const [k, v] of Object.entries(r)) {
      if (v === undefined) continue;
      if (!(k in this.fields)) throw new Error(`${this.table}: no field ${k}`);
      out.push(k, JSON.stringify(v));
    }
    return out;
  }

  decode(stored: Enc): T | null {
    if (Object.keys(stored).length === 0) return null;
    const h = this.upgrade(stored);
    const out: Record<string, unknown> = {};
    for (const [k, kind] of Object.entries(this.fields as Record<string, string>)) {
      const raw = h[k];
      if (raw === undefined) out[k] = kind.endsWith('?') ? null : undefined;
      else out[k] = JSON.parse(raw);
    }
    return out as T;
  }
}

/**
 * Upload and download became separate permissions (issue 13, R-6.3e): a grant or request stored
 * before then with file transfer allows both, and an approval that struck file transfer strikes
 * both. Done as the record is read, every time (Redis has no migrations); new fields win over the old one.
 */
function splitFileTransfer(h: Enc, old: string, up: string, down: string): Enc {
  const was = h[old];
  const approvals = h.approvals;
  if (was === undefined && !approvals?.includes('"fileTransfer"')) return h;
  const out: Enc = { ...h };
  if (was !== undefined) {
    out[up] ??= was;
    out[down] ??= was;
  }
  if (approvals?.includes('"fileTransfer"')) {
    const list = JSON.parse(approvals) as Array<{ narrowing?: Record<string, unknown> | null }>;
    for (const a of list) {
      const n = a.narrowing;
      if (!n || !('fileTransfer' in n)) continue;
      if (n.fileTransfer === false) Object.assign(n, { upload: false, download: false });
      delete n.fileTransfer;
    }
    out.approvals = JSON.stringify(list);
  }
  return out;
}

const collections = {
  users: new Collection('users', USER_FIELDS, (u) => u.name, () => 0),
  orgs: new Collection('orgs', ORG_FIELDS, (o) => o.name, () => 0),
  devices: new Collection('devices', DEVICE_FIELDS, (d) => d.name, () => 0),
  grants: new Collection('grants', GRANT_FIELDS, (g) => g.id, (g) => g.createdAt, [
    { name: 'user', values: (g) => [g.user] },
    { name: 'device', values: (g) => [g.device] },
    { name: 'request', values: (g) => [g.requestId] },
  ], (h) => splitFileTransfer(h, 'allowFileTransfer', 'allowUpload', 'allowDownload')),
  requests: new Collection('requests', REQUEST_FIELDS, (r) => r.id, (r) => r.createdAt, [
    { name: 'requester', values: (r) => [r.requester] },
    { name: 'device', values: (r) => r.devices },
  ], (h) => splitFileTransfer(h, 'fileTransfer', 'upload', 'download')),
  roleChanges: new Collection('role_changes', ROLE_CHANGE_FIELDS, (c) => c.id, (c) => c.requestedAt, [
    { name: 'user', values: (c) => [c.user] },
  ]),
  sessions: new Collection('sessions', SESSION_FIELDS, (s) => s.id, (s) => s.startedAt, [
    { name: 'user', values: (s) => [s.user] },
    { name: 'device', values: (s) => [s.device] },
    // Filed under open:1 while it runs; ending the session removes it (the patch script's ZREM).
    { name: 'open', values: (s) => (s.endedAt === null ? ['1'] : []) },
  ]),
  recordings: new Collection('recordings', RECORDING_FIELDS, (r) => r.id, (r) => r.startedAt),
  commands: new Collection('commands', COMMAND_FIELDS, (c) => c.id, (c) => c.at, [
    { name: 'session', values: (c) => [c.session] },
    { name: 'user', values: (c) => [c.user] },
    { name: 'device', values: (c) => [c.device] },
  ]),
  webSessions: new Collection('web_sessions', WEB_SESSION_FIELDS, (s) => s.id, (s) => s.createdAt, [{ name: 'user', values: (s) => [s.user] }]),
  nodes: new Collection('nodes', NODE_FIELDS, (n) => n.id, () => 0),
  apiTokens: new Collection('api_tokens', API_TOKEN_FIELDS, (t) => t.id, (t) => t.createdAt, [{ name: 'owner', values: (t) => [t.owner] }]),
  alerts: new Collection('alerts', ALERT_FIELDS, (a) => a.id, (a) => a.raisedAt, [
    // Filed under open:1 until acknowledged (the patch script's ZREM takes it out).
    { name: 'open', values: (a) => (a.acknowledgement === null ? ['1'] : []) },
  ]),
};

function pairs(flat: unknown): Enc {
  const out: Enc = {};
  if (Array.isArray(flat)) {
    for (let i = 0; i + 1 < flat.length; i += 2) out[String(flat[i])] = String(flat[i + 1]);
  } else if (flat && typeof flat === 'object') {
    for (const [k, v] of Object.entries(flat)) out[k] = String(v);
  }
  return out;
}

/**
 * The shared backend: several gateway nodes on one Redis (a single primary, with replicas or
 * Sentinel for failover; a sharded Redis Cluster is not supported, as the scripts touch several
 * keys). Every key starts with the prefix, so deployments can share one Redis. A Redis that
 * cannot be reached makes every call fail at once with StoreUnavailableError (no offline
 * queue): callers refuse what they cannot decide (fail closed) and never hang.
 */
export class RedisStore implements Store {
  readonly backend = 'redis';
  private readonly client: RedisClientType;
  private readonly p: string;
  private readonly log: Logger;
  /** Audit appends from this process go one at a time; other nodes are handled by the script. */
  private appendQueue: Promise<unknown> = Promise.resolve();
  /** The chain head as this node last saw it: usually right, so an append costs one round trip. */
  private head: string | null = null;
  private lastErrorLogged = 0;
  private lastReplicaWarning = 0;
  private readonly waitReplicas: number;
  private readonly commandTimeoutMs: number;
  /** Until the first connection succeeds a failure is reported, not retried: a wrong URL or certificate must not hang start-up. */
  private everReady = false;

  private constructor(opts: RedisStoreOptions) {
    this.p = opts.prefix;
    this.log = opts.log;
    this.waitReplicas = opts.waitReplicas ?? 0;
    this.commandTimeoutMs = opts.commandTimeoutMs ?? 5000;
    this.client = createClient({
      url: opts.url,
      disableOfflineQueue: true,
      pingInterval: 1000,
      commandOptions: { timeout: opts.commandTimeoutMs ?? 5000 },
      socket: {
        connectTimeout: 5000,
        reconnectStrategy: (retries: number) => (this.everReady ? Math.min(100 * 2 ** Math.min(retries, 5), 2000) : false),
        ...(opts.tlsCa ? { tls: true as const, ca: opts.tlsCa } : {}),
      },
    }) as RedisClientType;
    this.client.on('error', (err: Error) => {
      // While Redis is away the client reports every reconnection attempt; once a few seconds is enough.
      const now = Date.now();
      if (now - this.lastErrorLogged > 5000) {
        this.lastErrorLogged = now;
        this.log.warn('redis connection problem', { error: err.message });
      }
    });
    this.client.on('ready', () => {
      this.everReady = true;
      this.head = null;
      this.log.info('redis connected');
    });
  }

  /** Connects, or fails with StoreUnavailableError when Redis does not answer. */
  static async open(opts: RedisStoreOptions): Promise<RedisStore> {
    const store = new RedisStore(opts);
    try {
      await store.client.connect();
    } catch (err) {
      // A first connection that failed has closed itself; destroying it again would hide the cause.
      if (store.client.isOpen) await store.client.destroy();
      throw new StoreUnavailableError(`${redactUrl(opts.url)}: ${(err as Error).message}${connectHint(opts.url, err)}`);
    }
    return store;
  }

  /** A second connection for pub/sub (a subscribed connection can do nothing else). */
  duplicateClient(): RedisClientType {
    return this.client.duplicate() as RedisClientType;
  }

  get prefix(): string {
    return this.p;
  }

  get connected(): boolean {
    return this.client.isReady;
  }

  private async cmd<R = unknown>(args: string[]): Promise<R> {
    if (!this.client.isReady) throw new StoreUnavailableError('not connected to Redis');
    try {
      return (await this.client.sendCommand(args)) as R;
    } catch (err) {
      // A reply error is Redis refusing the command (a bug, or a script error): not an outage.
      if (err instanceof ErrorReply) throw err;
      throw new StoreUnavailableError((err as Error).message);
    }
  }

  /**
   * For the writes that record evidence: with `wait_replicas` set, also on that many replicas
   * before we go on, so a primary lost right after the write does not take it along. A replica
   * that does not answer in time is logged, not fatal: the primary has the write.
   */
  private async replicated(): Promise<void> {
    if (this.waitReplicas === 0) return;
    const acked = Number(await this.cmd(['WAIT', String(this.waitReplicas), String(Math.max(100, this.commandTimeoutMs - 500))]));
    if (acked < this.waitReplicas && Date.now() - this.lastReplicaWarning > 60_000) {
      this.lastReplicaWarning = Date.now();
      this.log.warn('fewer Redis replicas than wait_replicas acknowledged a write', { acked, wanted: this.waitReplicas });
    }
  }

  private async script<R = unknown>(name: ScriptName, keys: string[], args: Array<string | number>): Promise<R> {
    const argv = args.map(String);
    try {
      return await this.cmd<R>(['EVALSHA', SHA[name], String(keys.length), ...keys, ...argv]);
    } catch (err) {
      if (err instanceof ErrorReply && err.message.startsWith('NOSCRIPT')) {
        return this.cmd<R>(['EVAL', SCRIPTS[name], String(keys.length), ...keys, ...argv]);
      }
      throw err;
    }
  }

  private key<T extends object>(c: Collection<T>, id: string): string {
    return `${this.p}${c.table}:${id}`;
  }

  private ids<T extends object>(c: Collection<T>): string {
    return `${this.p}${c.table}:ids`;
  }

  private indexKey<T extends object>(c: Collection<T>, index: string, value: string): string {
    return `${this.p}${c.table}:by:${index}:${value}`;
  }

  private async insert<T extends object>(c: Collection<T>, r: T, what: string, unique?: { hash: string; value: string | null }): Promise<void> {
    const id = c.idOf(r);
    const indexKeys = c.indexes.flatMap((ix) => ix.values(r).filter((v): v is string => v !== null).map((v) => this.indexKey(c, ix.name, v)));
    const enc = c.encode(r);
    const ok = await this.script<number>('create', [this.key(c, id), this.ids(c), unique?.hash ?? this.ids(c), ...indexKeys], [
      id, c.scoreOf(r), unique?.value ?? '', enc.length / 2, ...enc,
    ]);
    if (ok !== 1) throw new AlreadyExistsError(what);
  }

  private async fetch<T extends object>(c: Collection<T>, id: string): Promise<T | null> {
    return c.decode(pairs(await this.cmd(['HGETALL', this.key(c, id)])));
  }

  private async fetchMany<T extends object>(c: Collection<T>, ids: string[]): Promise<T[]> {
    // Issued together, so the client sends them as one pipeline.
    const rows: Array<T | null> = await Promise.all(ids.map((id) => this.fetch(c, id)));
    return rows.filter((r): r is T => r !== null);
  }

  private async patch<T extends object>(
    c: Collection<T>, id: string, patch: Partial<T>, cond?: { field: keyof T & string; op: 'eq' | 'lt' | 'null'; value: string }, removeFrom?: string,
  ): Promise<boolean> {
    const enc = c.encode(patch);
    if (enc.length === 0) return false;
    const key = this.key(c, id);
    const r = await this.script<number>('patch', [key, removeFrom ?? key], [id, cond?.field ?? '', cond?.op ?? '', cond?.value ?? '', ...enc]);
    return r === 1;
  }

  /**
   * Walks an id zset in score order (newest first when `rev`), between optional score bounds,
   * fetching records a page at a time and keeping those the predicate accepts, up to `limit`.
   */
  private async scan<T extends object>(
    c: Collection<T>, zset: string, o: { rev: boolean; min?: number; max?: number; limit: number; keep?: (r: T) => boolean },
  ): Promise<T[]> {
    const out: T[] = [];
    const lo = o.min === undefined ? '-inf' : String(o.min);
    const hi = o.max === undefined ? '+inf' : `(${o.max}`;
    for (let offset = 0; out.length < o.limit; offset += PAGE) {
      const args = o.rev ? ['ZRANGE', zset, hi, lo, 'BYSCORE', 'REV'] : ['ZRANGE', zset, lo, hi, 'BYSCORE'];
      const ids = await this.cmd<string[]>([...args, 'LIMIT', String(offset), String(PAGE)]);
      for (const r of await this.fetchMany(c, ids)) {
        if (!o.keep || o.keep(r)) out.push(r);
        if (out.length >= o.limit) break;
      }
      if (ids.length < PAGE) break;
    }
    return out;
  }

  private async all<T extends object>(c: Collection<T>): Promise<T[]> {
    return this.scan(c, this.ids(c), { rev: false, limit: Number.MAX_SAFE_INTEGER });
  }

  // ── users and organisations ──

  async createUser(u: UserRecord): Promise<void> {
    await this.insert(collections.users, u, `user ${u.name}`);
  }

  async getUser(name: string): Promise<UserRecord | null> {
    return this.fetch(collections.users, name);
  }

  async listUsers(): Promise<UserRecord[]> {
    return this.all(collections.users);
  }

  async updateUser(name: string, patch: Partial<UserRecord>): Promise<void> {
    await this.patch(collections.users, name, patch);
  }

  async incrementLoginFailures(name: string): Promise<number> {
    return Number(await this.script('incr', [this.key(collections.users, name)], ['failedLogins']));
  }

  async consumeTotpStep(name: string, step: number): Promise<boolean> {
    return this.patch(collections.users, name, { totpLastStep: step }, { field: 'totpLastStep', op: 'lt', value: String(step) });
  }

  /** A scan of the users (a hospital's staff and vendors: hundreds, not millions), asked once per SSO sign-in. */
  async findUserBySso(issuer: string, subject: string): Promise<UserRecord | null> {
    return (await this.listUsers()).find((u) => u.sso !== null && u.sso.issuer === issuer && u.sso.subject === subject) ?? null;
  }

  async createOrg(o: OrgRecord): Promise<void> {
    await this.insert(collections.orgs, o, `organisation ${o.name}`);
  }

  async getOrg(name: string): Promise<OrgRecord | null> {
    return this.fetch(collections.orgs, name);
  }

  async listOrgs(): Promise<OrgRecord[]> {
    return this.all(collections.orgs);
  }

  async updateOrg(name: string, patch: Partial<OrgRecord>): Promise<void> {
    await this.patch(collections.orgs, name, patch);
  }

  // ── devices and credentials ──

  private get udiHash(): string {
    return `${this.p}devices:udi`;
  }

  async createDevice(d: DeviceRecord): Promise<void> {
    await this.insert(collections.devices, d, `device ${d.name} (or its UDI)`, { hash: this.udiHash, value: d.udi });
  }

  async createDevices(batch: DeviceRecord[]): Promise<void> {
    if (batch.length === 0) return;
    const c = collections.devices;
    const args: Array<string | number> = [batch.length];
    for (const d of batch) {
      const enc = c.encode(d);
      args.push(d.name, c.scoreOf(d), d.udi ?? '', enc.length / 2, ...enc);
    }
    const ok = await this.script<number>('createMany', [this.ids(c), this.udiHash, ...batch.map((d) => this.key(c, d.name))], args);
    if (ok !== 1) throw new AlreadyExistsError('a device name or UDI in the batch');
  }

  async getDevice(name: string): Promise<DeviceRecord | null> {
    return this.fetch(collections.devices, name);
  }

  async listDevices(): Promise<DeviceRecord[]> {
    return this.all(collections.devices);
  }

  async updateDevice(name: string, patch: Partial<DeviceRecord>): Promise<void> {
    if (patch.udi === undefined) {
      await this.patch(collections.devices, name, patch);
      return;
    }
    const enc = collections.devices.encode(patch);
    const r = await this.script<number>('patchUnique', [this.key(collections.devices, name), this.udiHash], [name, patch.udi ?? '', ...enc]);
    if (r === -1) throw new AlreadyExistsError(`a device with UDI ${patch.udi}`);
  }

  async putCredential(c: CredentialRecord): Promise<void> {
    await this.cmd(['HSET', `${this.p}credentials:${c.device}`, 'username', c.username, 'kind', c.kind, 'sealed', c.sealed, 'updatedAt', String(c.updatedAt)]);
  }

  async getCredential(device: string): Promise<CredentialRecord | null> {
    const h = pairs(await this.cmd(['HGETALL', `${this.p}credentials:${device}`]));
    if (h.username === undefined) return null;
    return { device, username: h.username, kind: h.kind as CredentialRecord['kind'], sealed: h.sealed ?? '', updatedAt: Number(h.updatedAt) };
  }

  async deleteCredential(device: string): Promise<void> {
    await this.cmd(['DEL', `${this.p}credentials:${device}`]);
  }

  // ── grants and requests ──

  async createGrant(g: GrantRecord): Promise<void> {
    await this.insert(collections.grants, g, `grant ${g.id}`);
  }

  async getGrant(id: string): Promise<GrantRecord | null> {
    return this.fetch(collections.grants, id);
  }

  async listGrants(filter: { user?: string; device?: string; requestId?: string }): Promise<GrantRecord[]> {
    const c = collections.grants;
    const zset = filter.requestId !== undefined ? this.indexKey(c, 'request', filter.requestId)
      : filter.user !== undefined ? this.indexKey(c, 'user', filter.user)
        : filter.device !== undefined ? this.indexKey(c, 'device', filter.device) : this.ids(c);
    return this.scan(c, zset, {
      rev: false, limit: Number.MAX_SAFE_INTEGER,
      keep: (g) => (filter.user === undefined || g.user === filter.user) && (filter.device === undefined || g.device === filter.device)
        && (filter.requestId === undefined || g.requestId === filter.requestId),
    });
  }

  async revokeGrant(id: string, at: number, by: string): Promise<void> {
    await this.patch(collections.grants, id, { revokedAt: at, revokedBy: by }, { field: 'revokedAt', op: 'null', value: '' });
  }

  async createRequest(r: RequestRecord): Promise<void> {
    await this.insert(collections.requests, r, `request ${r.id}`);
  }

  async getRequest(id: string): Promise<RequestRecord | null> {
    return this.fetch(collections.requests, id);
  }

  async listRequests(q: RequestQuery): Promise<RequestRecord[]> {
    const c = collections.requests;
    const zset = q.requester !== undefined ? this.indexKey(c, 'requester', q.requester)
      : q.device !== undefined ? this.indexKey(c, 'device', q.device) : this.ids(c);
    return this.scan(c, zset, {
      rev: true, limit: q.limit ?? 1000,
      keep: (r) => (q.requester === undefined || r.requester === q.requester) && (q.status === undefined || r.status === q.status)
        && (q.device === undefined || r.devices.includes(q.device)),
    });
  }

  async updateRequestIf(id: string, expectedVersion: number, patch: Partial<RequestRecord>): Promise<boolean> {
    return this.patch(collections.requests, id, { ...patch, version: expectedVersion + 1 }, { field: 'version', op: 'eq', value: String(expectedVersion) });
  }

  // ── privileged role changes ──

  async createRoleChange(rc: RoleChangeRecord): Promise<void> {
    await this.insert(collections.roleChanges, rc, `role change ${rc.id}`);
  }

  async getRoleChange(id: string): Promise<RoleChangeRecord | null> {
    return this.fetch(collections.roleChanges, id);
  }

  async listRoleChanges(q: RoleChangeQuery): Promise<RoleChangeRecord[]> {
    const c = collections.roleChanges;
    return this.scan(c, q.user !== undefined ? this.indexKey(c, 'user', q.user) : this.ids(c), {
      rev: true, limit: q.limit ?? 1000,
      keep: (r) => (q.status === undefined || r.status === q.status) && (q.user === undefined || r.user === q.user),
    });
  }

  async settleRoleChange(id: string, patch: Pick<RoleChangeRecord, 'status' | 'decidedBy' | 'decidedAt' | 'reason'>): Promise<boolean> {
    // Fields are stored as JSON, so the pending state reads '"pending"'.
    return this.patch(collections.roleChanges, id, patch, { field: 'status', op: 'eq', value: JSON.stringify('pending') });
  }

  // ── sessions, recordings, commands ──

  private get openSessions(): string {
    return this.indexKey(collections.sessions, 'open', '1');
  }

  async createSession(s: SessionRecord): Promise<void> {
    await this.insert(collections.sessions, s, `session ${s.id}`);
  }

  async updateSession(id: string, patch: Partial<SessionRecord>): Promise<void> {
    const ending = patch.endedAt !== undefined && patch.endedAt !== null;
    await this.patch(collections.sessions, id, patch, undefined, ending ? this.openSessions : undefined);
    if (ending) await this.replicated();
  }

  async endSessionIfOpen(id: string, patch: SessionEndPatch): Promise<boolean> {
    return this.patch(collections.sessions, id, patch, { field: 'endedAt', op: 'null', value: '' }, this.openSessions);
  }

  async getSession(id: string): Promise<SessionRecord | null> {
    return this.fetch(collections.sessions, id);
  }

  async listSessions(q: SessionQuery): Promise<SessionRecord[]> {
    const c = collections.sessions;
    const zset = q.open ? this.openSessions
      : q.user !== undefined ? this.indexKey(c, 'user', q.user)
        : q.device !== undefined ? this.indexKey(c, 'device', q.device) : this.ids(c);
    return this.scan(c, zset, {
      rev: true, limit: q.limit, ...(q.from !== undefined ? { min: q.from } : {}), ...(q.to !== undefined ? { max: q.to } : {}),
      keep: (s) => (q.user === undefined || s.user === q.user) && (q.device === undefined || s.device === q.device)
        && (!q.open || s.endedAt === null),
    });
  }

  async createRecording(r: RecordingRecord): Promise<void> {
    await this.insert(collections.recordings, r, `recording ${r.id}`);
  }

  async sealRecording(id: string, seal: { sealedAt: number; size: number; sha256: string }): Promise<void> {
    await this.patch(collections.recordings, id, seal);
    await this.replicated();
  }

  async getRecording(id: string): Promise<RecordingRecord | null> {
    return this.fetch(collections.recordings, id);
  }

  async listRecordings(): Promise<RecordingRecord[]> {
    return this.all(collections.recordings);
  }

  async createCommand(cr: CommandRecord): Promise<void> {
    await this.insert(collections.commands, cr, `command ${cr.id}`);
  }

  async updateCommand(id: string, patch: Partial<CommandRecord>): Promise<void> {
    await this.patch(collections.commands, id, patch);
  }

  async listCommands(q: CommandQuery): Promise<CommandRecord[]> {
    const c = collections.commands;
    const zset = q.session !== undefined ? this.indexKey(c, 'session', q.session)
      : q.user !== undefined ? this.indexKey(c, 'user', q.user)
        : q.device !== undefined ? this.indexKey(c, 'device', q.device) : this.ids(c);
    return this.scan(c, zset, {
      rev: true, limit: q.limit,
      // Scored by time: the range is the index's; until is inclusive, the scan's upper bound is not.
      ...(q.since !== undefined ? { min: q.since } : {}), ...(q.until !== undefined ? { max: q.until + 1 } : {}),
      keep: (r) => (q.session === undefined || r.session === q.session) && (q.user === undefined || r.user === q.user)
        && (q.device === undefined || r.device === q.device) && (q.text === undefined || r.line.includes(q.text))
        && (q.program === undefined || programsOf(r.line).includes(q.program))
        && (q.decision === undefined || r.decision === q.decision),
    });
  }

  async getCommand(id: string): Promise<CommandRecord | null> {
    return this.fetch(collections.commands, id);
  }

  async resolveCommandReview(id: string, patch: Pick<CommandRecord, 'decision' | 'reviewer' | 'reason'>): Promise<boolean> {
    // Fields are stored as JSON, so the held state reads '"review"'.
    return this.patch(collections.commands, id, patch, { field: 'decision', op: 'eq', value: JSON.stringify('review') });
  }

  // ── web sessions and nodes: keys that expire by themselves ──

  async createWebSession(s: WebSessionRecord): Promise<void> {
    const c = collections.webSessions;
    await this.insert(c, s, 'web session');
    await this.cmd(['PEXPIREAT', this.key(c, s.id), String(s.expiresAt)]);
    // The records expire by themselves; their entries in the id list are trimmed here (no web
    // session outlives a day, see web-console/server/auth).
    await this.cmd(['ZREMRANGEBYSCORE', this.ids(c), '-inf', `(${s.createdAt - 86_400_000}`]);
  }

  async getWebSession(id: string, now: number): Promise<WebSessionRecord | null> {
    const s = await this.fetch(collections.webSessions, id);
    return s && s.expiresAt > now ? s : null;
  }

  async touchWebSession(id: string, lastSeenAt: number, expiresAt: number): Promise<void> {
    const c = collections.webSessions;
    if (await this.patch(c, id, { lastSeenAt, expiresAt })) await this.cmd(['PEXPIREAT', this.key(c, id), String(expiresAt)]);
  }

  async deleteWebSession(id: string): Promise<void> {
    const c = collections.webSessions;
    const s = await this.fetch(c, id);
    await this.cmd(['DEL', this.key(c, id)]);
    await this.cmd(['ZREM', this.ids(c), id]);
    if (s) await this.cmd(['ZREM', this.indexKey(c, 'user', s.user), id]);
  }

  async deleteWebSessionsOf(user: string): Promise<void> {
    const c = collections.webSessions;
    const ids = await this.cmd<string[]>(['ZRANGE', this.indexKey(c, 'user', user), '0', '-1']);
    await Promise.all(ids.map((id) => this.cmd(['DEL', this.key(c, id)])));
    if (ids.length > 0) {
      await this.cmd(['ZREM', this.ids(c), ...ids]);
      await this.cmd(['DEL', this.indexKey(c, 'user', user)]);
    }
  }

  // ── API tokens ──

  async createApiToken(t: ApiTokenRecord): Promise<void> {
    await this.insert(collections.apiTokens, t, `API token ${t.id}`);
  }

  async getApiToken(id: string): Promise<ApiTokenRecord | null> {
    return this.fetch(collections.apiTokens, id);
  }

  async listApiTokens(filter: { owner?: string }): Promise<ApiTokenRecord[]> {
    const c = collections.apiTokens;
    const zset = filter.owner !== undefined ? this.indexKey(c, 'owner', filter.owner) : this.ids(c);
    return this.scan(c, zset, { rev: false, limit: Number.MAX_SAFE_INTEGER, keep: (t) => filter.owner === undefined || t.owner === filter.owner });
  }

  async revokeApiToken(id: string, at: number, by: string): Promise<boolean> {
    return this.patch(collections.apiTokens, id, { revokedAt: at, revokedBy: by }, { field: 'revokedAt', op: 'null', value: '' });
  }

  async touchApiToken(id: string, lastUsedAt: number): Promise<void> {
    await this.patch(collections.apiTokens, id, { lastUsedAt });
  }

  async heartbeat(n: NodeRecord): Promise<void> {
    const c = collections.nodes;
    await this.cmd(['HSET', this.key(c, n.id), ...c.encode(n)]);
    await this.cmd(['PEXPIREAT', this.key(c, n.id), String(n.expiresAt)]);
    await this.cmd(['ZADD', this.ids(c), '0', n.id]);
  }

  async listNodes(now: number): Promise<NodeRecord[]> {
    const all = await this.all(collections.nodes);
    return all.filter((n) => n.expiresAt > now);
  }

  async removeNode(id: string, instance: string): Promise<void> {
    const c = collections.nodes;
    const n = await this.fetch(c, id);
    if (n && n.instance === instance) await this.cmd(['DEL', this.key(c, id)]);
  }

  // ── alerts, counting windows, claims, the integrity mark ──

  async createAlert(a: AlertRecord): Promise<void> {
    await this.insert(collections.alerts, a, `alert ${a.id}`);
  }

  async getAlert(id: string): Promise<AlertRecord | null> {
    return this.fetch(collections.alerts, id);
  }

  async listAlerts(q: AlertQuery): Promise<AlertRecord[]> {
    if (q.kinds !== undefined && q.kinds.length === 0) return [];
    const c = collections.alerts;
    const zset = q.unacknowledged ? this.indexKey(c, 'open', '1') : this.ids(c);
    const alerts = await this.scan(c, zset, {
      rev: true, limit: q.limit,
      keep: (a) => (q.kinds === undefined || q.kinds.includes(a.kind)) && (!q.unacknowledged || a.acknowledgement === null),
    });
    // Equal times (several alerts in one millisecond) newest first by chain order, as in SQLite.
    return alerts.sort((x, y) => y.raisedAt - x.raisedAt || y.seq - x.seq);
  }

  async acknowledgeAlert(id: string, ack: AlertAcknowledgement): Promise<boolean> {
    const c = collections.alerts;
    return this.patch(c, id, { acknowledgement: ack }, { field: 'acknowledgement', op: 'null', value: '' }, this.indexKey(c, 'open', '1'));
  }

  async countInWindow(key: string, member: string, at: number, windowMs: number): Promise<string[]> {
    return this.script<string[]>('countInWindow', [`${this.p}window:${key}`], [member, at, at - windowMs, windowMs]);
  }

  async claim(key: string, holder: string, until: number, now: number): Promise<boolean> {
    return (await this.script<number>('claim', [`${this.p}claim:${key}`], [holder, until, now])) === 1;
  }

  async getIntegrityMark(): Promise<IntegrityMark | null> {
    const text = await this.cmd<string | null>(['GET', `${this.p}integrity:mark`]);
    return text ? (JSON.parse(text) as IntegrityMark) : null;
  }

  async setIntegrityMark(m: IntegrityMark): Promise<void> {
    await this.cmd(['SET', `${this.p}integrity:mark`, JSON.stringify({ seq: m.seq, hash: m.hash, at: m.at })]);
  }

  // ── the audit chain ──

  private auditKey(part: string): string {
    return `${this.p}audit:${part}`;
  }

  async appendAudit(draft: AuditDraft, now: number, dedupId?: string): Promise<AuditEntry> {
    const run = this.appendQueue.then(() => this.appendOnce(draft, now, dedupId ?? randomUUID()));
    this.appendQueue = run.catch(() => undefined);
    return run;
  }

  private async appendOnce(draft: AuditDraft, now: number, dedupId: string): Promise<AuditEntry> {
    const ts = new Date(now).toISOString();
    for (let attempt = 0; attempt < 100; attempt++) {
      const head = this.head ?? ((await this.cmd<string | null>(['GET', this.auditKey('head')])) ?? '');
      const [prevSeq, prevHash] = head === '' ? [0, GENESIS_HASH] : [Number(head.slice(0, head.indexOf(':'))), head.slice(head.indexOf(':') + 1)];
      const seq = prevSeq + 1;
      const body = { ...draft, channel: draft.channel ?? null, source: draft.source ?? null, seq, ts };
      const hash = chainHash(prevHash, hashedBody(body));
      const entry: AuditEntry = { ...body, prevHash, hash };
      const [status, value] = await this.script<[string, string]>('append',
        [this.auditKey('head'), this.auditKey('entries'), this.auditKey(`type:${draft.type}`), this.auditKey(`dedup:${dedupId}`)],
        [head, seq, JSON.stringify(entry), `${seq}:${hash}`, DEDUP_TTL_S]);
      if (status === 'ok') {
        this.head = `${seq}:${hash}`;
        await this.replicated();
        return entry;
      }
      if (status === 'dup') {
        const stored = await this.cmd<string | null>(['HGET', this.auditKey('entries'), value]);
        if (stored) return withChannel(JSON.parse(stored) as AuditEntry);
      }
      // Another node appended first: link after its entry.
      this.head = status === 'conflict' ? value : null;
    }
    throw new Error('audit append kept losing the race to other nodes');
  }

  async listAudit(q: AuditQuery): Promise<AuditEntry[]> {
    const limit = q.limit ?? 1000;
    const desc = q.order === 'desc';
    const filtered = q.actor !== undefined || q.outcome !== undefined || q.channel !== undefined || q.since !== undefined || q.until !== undefined || q.text !== undefined;
    const out: AuditEntry[] = [];
    const head = q.type ? null : await this.cmd<string | null>(['GET', this.auditKey('head')]);
    const last = head ? Number(head.slice(0, head.indexOf(':'))) : 0;
    // The open range of sequence numbers still to read: (low, high).
    let low = q.afterSeq ?? 0;
    let high = q.beforeSeq ?? Number.POSITIVE_INFINITY;
    // Read in pages of 1000 (in chain order, or newest first); with filters Redis cannot apply, read on until enough match.
    for (;;) {
      const page = filtered ? 1000 : Math.min(1000, limit - out.length);
      let seqs: string[];
      if (q.type) {
        const key = this.auditKey(`type:${q.type}`);
        const hi = Number.isFinite(high) ? `(${high}` : '+inf';
        seqs = desc
          ? await this.cmd<string[]>(['ZRANGE', key, hi, `(${low}`, 'BYSCORE', 'REV', 'LIMIT', '0', String(page)])
          : await this.cmd<string[]>(['ZRANGE', key, `(${low}`, hi, 'BYSCORE', 'LIMIT', '0', String(page)]);
      } else {
        seqs = [];
        const top = Math.min(last, high - 1);
        if (desc) for (let s = top; s > low && seqs.length < page; s--) seqs.push(String(s));
        else for (let s = low + 1; s <= top && seqs.length < page; s++) seqs.push(String(s));
      }
      if (seqs.length === 0) return out;
      const values = await this.cmd<Array<string | null>>(['HMGET', this.auditKey('entries'), ...seqs]);
      for (const v of values) {
        if (!v) continue;
        const e = withChannel(JSON.parse(v) as AuditEntry);
        if (filtered && !auditMatches(e, q)) continue;
        out.push(e);
        if (out.length >= limit) return out;
      }
      const edge = Number(seqs[seqs.length - 1]);
      if (desc) high = edge;
      else low = edge;
    }
  }

  async lastAuditSeq(): Promise<number> {
    const head = await this.cmd<string | null>(['GET', this.auditKey('head')]);
    return head ? Number(head.slice(0, head.indexOf(':'))) : 0;
  }

  // ── audit exports (the syslog feed's lease and position) ──

  private exportKey(name: string): string {
    return `${this.p}export:${name}`;
  }

  async claimExport(name: string, holder: string, now: number, leaseMs: number): Promise<ExportCursor> {
    const [position, h, lease] = await this.script<Array<string | null>>('claimExport', [this.exportKey(name)], [holder, now, now + leaseMs]);
    return { name, position: Number(position ?? 0), holder: h ? h : null, leaseUntil: Number(lease ?? 0) };
  }

  async advanceExport(name: string, holder: string, position: number): Promise<boolean> {
    const ok = (await this.script<number>('advanceExport', [this.exportKey(name)], [holder, position])) === 1;
    if (ok) await this.replicated();
    return ok;
  }

  async releaseExport(name: string, holder: string): Promise<void> {
    await this.script('releaseExport', [this.exportKey(name)], [holder]);
  }

  async ping(): Promise<void> {
    await this.cmd(['PING']);
  }

  /** For the cluster bus: publishing goes through the store's connection (and fails like it). */
  async publish(channel: string, message: string): Promise<void> {
    await this.cmd(['PUBLISH', channel, message]);
  }

  async close(): Promise<void> {
    if (this.client.isOpen) await this.client.close().catch(() => this.client.destroy());
  }

  /** Removes every key under this store's prefix (tests, and `portcullis` never does this itself). */
  async dropAll(): Promise<void> {
    let cursor = '0';
    do {
      const [next, keys] = await this.cmd<[string, string[]]>(['SCAN', cursor, 'MATCH', `${this.p}*`, 'COUNT', '1000']);
      if (keys.length > 0) await this.cmd(['DEL', ...keys]);
      cursor = next;
    } while (cursor !== '0');
  }
}

/** What a first connection's failure most likely means, when the error alone does not say. */
function connectHint(url: string, err: unknown): string {
  const code = (err as { code?: string }).code ?? '';
  if (url.startsWith('rediss:') && /SELF_SIGNED|UNABLE_TO_VERIFY|UNABLE_TO_GET_ISSUER|CERT_UNTRUSTED/.test(code)) {
    return ' (the Redis server\'s TLS certificate is not trusted: set store.tls_ca to the CA certificate that signed it)';
  }
  if (url.startsWith('redis:') && (code === 'ECONNRESET' || err instanceof SocketClosedUnexpectedlyError)) {
    return ' (the server closed the connection: if that port expects TLS, use a rediss:// URL)';
  }
  return '';
}

/** A Redis URL for messages: the password never appears. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return 'the configured Redis URL';
  }
}
