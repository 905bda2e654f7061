import type { DeviceState, Protocol, Role } from '../../policy/types.js';

/**
 * The state store, backend-neutral. Every method is async so that a networked backend (Redis)
 * fits behind the same interface; the SQLite backend answers synchronously underneath.
 * Records hold secrets only in sealed (encrypted) form; times are epoch milliseconds.
 * Both backends pass one contract suite (test/unit/store-contract.test.ts).
 */

/** A vendor's confidentiality agreement on file (R-5.3a). */
export interface NdaRecord {
  signedAt: number;
  expiresAt: number;
  /** The hospital's reference for the signed document (contract number, archive id). */
  reference: string | null;
}

export interface UserRecord {
  name: string;
  roles: Role[];
  /** The vendor organisation (OrgRecord.name) for vendor accounts. */
  org: string | null;
  passwordHash: string;
  /** TOTP secret sealed by the vault; null until enrolled. */
  totpSealed: string | null;
  /** Last TOTP time step accepted: a code at or before it is a replay. */
  totpLastStep: number;
  failedLogins: number;
  lockedUntil: number | null;
  disabled: boolean;
  expiresAt: number | null;
  /** OpenSSH-format public keys ("ssh-ed25519 AAAA… comment"). */
  publicKeys: string[];
  nda: NdaRecord | null;
  /** The console language the user chose (en, zh-CN); null for the browser's. */
  locale: string | null;
  /** A TOTP enrolment begun at first sign-in and not finished yet. */
  enrolment: PendingEnrolment | null;
  /** The identity-provider account this account signs in as through single sign-on (null: none). */
  sso: SsoLink | null;
  /**
   * A service account (automation: a CMDB import, a SIEM): no password or TOTP, it only holds API
   * tokens, and never takes a named person's decision. Read as false when absent (older records).
   */
  serviceAccount: boolean;
  createdAt: number;
}

/** An OIDC identity: the issuer and the subject it gives the person (never a name it could reuse). */
export interface SsoLink {
  issuer: string;
  subject: string;
}

export interface PendingEnrolment {
  /** SHA-256 of the enrolment token the browser holds (the token itself is never stored). */
  tokenHash: string;
  /** The new TOTP secret, sealed by the vault, until the first code proves it was scanned. */
  secretSealed: string;
  expiresAt: number;
}

/** A vendor organisation (Siemens Healthineers, Mindray…). */
export interface OrgRecord {
  name: string;
  displayName: string;
  contact: string | null;
  createdAt: number;
}

/** The inputs of appendix B's classification; the level is computed from them by policy/. */
export interface DeviceClassInputs {
  usageForm: string;
  contact: 'body' | 'none';
  /** Harm if out of control, for devices that touch or enter the body. */
  severity: string | null;
  /** Effect on the medical result, for devices that do not. */
  effect: string | null;
}

export type LifecycleEventType = 'registered' | 'quarantined' | 'security_checked' | 'decommissioned';

/** One step of a device's life (R-6.4b, R-6.5): who, when, and what was recorded. */
export interface LifecycleEvent {
  type: LifecycleEventType;
  at: number;
  by: string;
  /** For decommissioning: the admin who approved the disposal. */
  approvedBy: string | null;
  details: Record<string, string | number | boolean | null>;
}

export interface DeviceRecord {
  name: string;
  host: string;
  /** The port of each protocol the device offers. */
  ports: Partial<Record<Protocol, number>>;
  protocols: Protocol[];
  udi: string | null;
  ip: string | null;
  mac: string | null;
  type: string | null;
  manufacturer: string | null;
  model: string | null;
  department: string | null;
  location: string | null;
  /** null only for devices registered before classification existed: treated as level 3. */
  classification: DeviceClassInputs | null;
  state: DeviceState;
  lifecycle: LifecycleEvent[];
  /** Pinned SSH host key: algorithm and base64 blob, as OpenSSH writes them in known_hosts. */
  hostKeyAlgo: string | null;
  hostKeyBlob: string | null;
  /** Pinned RDP (TLS) certificate: SHA-256 of its DER, as colon-separated upper-case hex. */
  rdpCertSha256: string | null;
  createdAt: number;
}

export interface CredentialRecord {
  device: string;
  username: string;
  kind: 'password' | 'key';
  /** The password or private key, sealed by the vault. */
  sealed: string;
  updatedAt: number;
}

export interface GrantRecord {
  id: string;
  user: string;
  device: string;
  protocol: Protocol;
  notBefore: number;
  notAfter: number;
  createdBy: string;
  createdAt: number;
  revokedAt: number | null;
  revokedBy: string | null;
  /** The access request this grant came from (null for grants made directly by an admin). */
  requestId: string | null;
  /** The command profile (R-6.3c); null means the gateway's default for the device's level. */
  profile: string | null;
  /** Files to the device: SFTP/SCP uploads and every change to its files; clipboard to the device (R-6.3e). */
  allowUpload: boolean;
  /** Files from the device: SFTP/SCP downloads; clipboard from the device. Data export, R-6.3e. */
  allowDownload: boolean;
}

export type RequestStatus = 'pending' | 'approved' | 'denied' | 'cancelled' | 'expired' | 'revoked';

/** What an approver narrowed: a later start, an earlier end, a stricter profile (by name), no upload, no download. */
export interface StoredNarrowing {
  notBefore?: number;
  notAfter?: number;
  profile?: string;
  /** false: the upload asked for is struck. */
  upload?: boolean;
  /** false: the download asked for is struck. */
  download?: boolean;
}

export interface ApprovalEntry {
  by: string;
  roles: Role[];
  at: number;
  narrowing: StoredNarrowing | null;
  comment: string | null;
}

/**
 * An approver swapped the request's profile for one that is not provably narrower (S-1.3): the
 * approvals given until then lapsed, kept here with the terms the request stood for before.
 */
export interface RequestChange {
  at: number;
  by: string;
  kind: 'profile';
  from: string;
  to: string;
  /** Why the new profile is not provably narrower. */
  reason: string;
  /** The request's own terms before the change (for the first change: what the vendor asked for). */
  before: { notBefore: number; notAfter: number; profile: string; upload: boolean; download: boolean };
  lapsed: ApprovalEntry[];
}

/** A vendor's application for access (R-5.3c): what, why, when, and who decided. */
export interface RequestRecord {
  id: string;
  requester: string;
  devices: string[];
  protocols: Protocol[];
  purpose: string;
  workOrder: string;
  notBefore: number;
  notAfter: number;
  /** The command profile asked for (R-6.3c). */
  profile: string;
  /** Upload asked for (files to the device, changes to its files). */
  upload: boolean;
  /** Download asked for (files from the device: data export, R-6.3e). */
  download: boolean;
  status: RequestStatus;
  approvals: ApprovalEntry[];
  decidedAt: number | null;
  decidedBy: string | null;
  /** Why it was denied, cancelled or revoked. */
  reason: string | null;
  grantIds: string[];
  /** Profile swaps that made earlier approvals lapse, oldest first; null on requests stored before there were any. */
  changes: RequestChange[] | null;
  createdAt: number;
  /** Bumped by every update: approvals on two nodes at once cannot both win. */
  version: number;
}

export interface RequestQuery {
  requester?: string;
  status?: RequestStatus;
  device?: string;
  limit?: number;
}

export type RoleChangeStatus = 'pending' | 'confirmed' | 'rejected' | 'expired';

/** A privileged role given to someone, waiting for a second admin's confirmation (S-1.3). */
export interface RoleChangeRecord {
  id: string;
  /** The person whose roles change. */
  user: string;
  requestedBy: string;
  requestedAt: number;
  /** Unconfirmed by then, it expires. */
  expiresAt: number;
  /** The person's roles when it was asked. */
  rolesBefore: Role[];
  /** The privileged roles it gives. */
  added: Role[];
  status: RoleChangeStatus;
  decidedBy: string | null;
  decidedAt: number | null;
  reason: string | null;
}

export interface RoleChangeQuery {
  status?: RoleChangeStatus;
  user?: string;
  limit?: number;
}

export type SessionEndReason =
  | 'client_closed'
  | 'device_closed'
  | 'grant_ended'
  | 'access_revoked'
  | 'idle_timeout'
  | 'recording_failed'
  | 'gateway_shutdown'
  | 'killed'
  /** An exec request whose command line the profile refused (R-6.3c): nothing reached the device. */
  | 'command_denied'
  /**
   * A desktop peer broke the RFB protocol (malformed, oversized or unknown message), or an SFTP or
   * SCP stream could not be followed file by file (R-6.3e): ended, fail closed.
   */
  | 'protocol_error'
  /** The node that held the session stopped answering (crash, power, network). */
  | 'interrupted'
  | 'error';

export interface KillRequest {
  by: string;
  at: number;
  reason: string;
  /** The kill also revoked the session's grant (the vendor is told; the console offers no "Connect again"). */
  grantRevoked?: boolean;
  /** The kill also locked the account until then. */
  lockedUntil?: number | null;
}

export interface SessionRecord {
  id: string;
  user: string;
  device: string;
  protocol: Protocol;
  grantId: string;
  /** How the client arrived: `ssh` (user#device or picker), `proxyjump`, `web`. */
  via: string;
  kind: 'shell' | 'exec' | 'subsystem' | 'desktop';
  command: string | null;
  clientAddress: string;
  node: string;
  startedAt: number;
  endedAt: number | null;
  endReason: SessionEndReason | null;
  exitStatus: number | null;
  bytesIn: number;
  bytesOut: number;
  recordingId: string;
  /** Set when security asked for the session to end; the node holding it acts on it. */
  killRequest: KillRequest | null;
}

export interface SessionQuery {
  limit: number;
  user?: string;
  device?: string;
  /** Sessions that started at or after / before these times. */
  from?: number;
  to?: number;
  /** Only sessions that have not ended. */
  open?: boolean;
}

export type SessionEndPatch = Pick<SessionRecord, 'endedAt' | 'endReason' | 'exitStatus' | 'bytesIn' | 'bytesOut'>;
export type CommandFinishPatch = Pick<CommandRecord, 'exitStatus' | 'exitSignal'>;

export interface RecordingRecord {
  id: string;
  sessionId: string;
  /** Relative to the recordings directory. */
  path: string;
  format: string;
  startedAt: number;
  sealedAt: number | null;
  size: number | null;
  sha256: string | null;
}

/** One command line of a session and what the gateway decided about it (R-6.3c, R-6.4c). */
export interface CommandRecord {
  id: string;
  session: string;
  user: string;
  device: string;
  at: number;
  line: string;
  mode: 'restricted' | 'inspected' | 'full';
  decision: 'allow' | 'deny' | 'review' | 'logged';
  /** The rule that decided, as the profile names it ("ct-diag#2"), or null for the default. */
  rule: string | null;
  reason: string | null;
  reviewer: string | null;
  /**
   * How the command ended on the device, for a command the gateway ran as its own exec request
   * (every exec request, and each line of restricted mode): its exit status, or, when the device
   * reported a signal instead, that signal (`SIGTERM`). Both null while it runs, when it never ran,
   * and for lines typed into a device's own shell (inspected and full mode): a shell reports no
   * status per line.
   */
  exitStatus: number | null;
  exitSignal: string | null;
}

export interface CommandQuery {
  session?: string;
  user?: string;
  device?: string;
  /** Case-sensitive substring of the command line. */
  text?: string;
  /** A program the line runs, by name (`programsOf` in command-programs.ts). */
  program?: string;
  decision?: CommandRecord['decision'];
  /** Epoch milliseconds, both inclusive. */
  since?: number;
  until?: number;
  limit: number;
}

/** A signed-in browser or API client. The id is the SHA-256 of the cookie's token, never the token. */
export interface WebSessionRecord {
  id: string;
  user: string;
  csrf: string;
  createdAt: number;
  lastSeenAt: number;
  expiresAt: number;
  address: string;
  /** How the person signed in: password + TOTP, or single sign-on (their audit entries say so). */
  via: WebSessionVia;
}

export type WebSessionVia = 'password' | 'sso';
/**
 * An API token (`pcx_<id>_<secret>`). Only the SHA-256 of the secret is kept: the secret itself
 * is shown once, when the token is made. The scope holds actions of policy/roles.ts.
 */
export interface ApiTokenRecord {
  id: string;
  owner: string;
  name: string;
  scope: string[];
  secretHash: string;
  createdAt: number;
  createdBy: string;
  expiresAt: number;
  lastUsedAt: number | null;
  revokedAt: number | null;
  revokedBy: string | null;
}

/** A gateway node's heartbeat: the node is alive while now < expiresAt. */
export interface NodeRecord {
  id: string;
  /** Random per process start: tells a restarted node, or a second process claiming the same id. */
  instance: string;
  startedAt: number;
  lastSeenAt: number;
  expiresAt: number;
  ssh: string;
  web: string;
}

export interface AuditDraft {
  type: string;
  actor: string;
  /** 'ok' for a grant or success, 'denied' for a refusal, 'info' otherwise. */
  outcome: 'ok' | 'denied' | 'info';
  code: string | null;
  data: Record<string, unknown>;
  /**
   * The door the action came in by (web, ssh, cli, token, sso, system) and its source (client
   * address, or the OS user of a CLI run). Covered by the hash chain; null on entries written
   * before channels were recorded, which the chain hashes without them.
   */
  channel?: string | null;
  source?: string | null;
}

export interface AuditEntry extends AuditDraft {
  channel: string | null;
  source: string | null;
  seq: number;
  ts: string;
  prevHash: string;
  hash: string;
}

export interface AuditQuery {
  afterSeq?: number;
  /** Only entries before this sequence number (paging newest first). */
  beforeSeq?: number;
  /** Chain order (the default) or newest first. */
  order?: 'asc' | 'desc';
  limit?: number;
  type?: string;
  /** Who acted (a user's name, `portcullis`, `local:…`). */
  actor?: string;
  outcome?: AuditEntry['outcome'];
  channel?: string;
  /** ISO times, both inclusive. */
  since?: string;
  until?: string;
  /** Taken literally: a substring of the entry's data (a device, a session id, a command). */
  text?: string;
}

/** Whether an entry passes a query's filters other than afterSeq, beforeSeq, order, type and limit (the backends that cannot filter in their query language use it). */
export function auditMatches(e: AuditEntry, q: AuditQuery): boolean {
  return (q.actor === undefined || e.actor === q.actor)
    && (q.outcome === undefined || e.outcome === q.outcome)
    && (q.channel === undefined || (e.channel ?? null) === q.channel)
    && (q.since === undefined || e.ts >= q.since)
    && (q.until === undefined || e.ts <= q.until)
    && (q.text === undefined || JSON.stringify(e.data).includes(q.text));
}

/**
 * A feed of the audit chain to a receiver outside the gateway (the syslog export, R-A.5c): how far
 * it has delivered, and which node process sends it. Kept in the store so that another node
 * continues from the same place when the sender is lost.
 */
export interface ExportCursor {
  name: string;
  /** The seq of the last entry delivered (0: none yet). */
  position: number;
  /** The node process holding the lease, or null. */
  holder: string | null;
  /** The lease runs until then (epoch ms); renewed by its holder. */
  leaseUntil: number;
}

/** Who acknowledged an alert, when, and what they said. */
export interface AlertAcknowledgement {
  by: string;
  at: number;
  comment: string;
}

/**
 * An alert raised (R-5.5a): its audit entry (`alert.<kind>`, seq) is the record in the chain; this
 * is the console's list, with the acknowledgement.
 */
export interface AlertRecord {
  /** `al-<seq>`. */
  id: string;
  seq: number;
  kind: string;
  /** Syslog's word (crit, err, warning, notice…). */
  severity: string;
  subject: string;
  summary: string;
  /** The audit entries that made the alert. */
  triggers: number[];
  raisedAt: number;
  node: string;
  acknowledgement: AlertAcknowledgement | null;
}

export interface AlertQuery {
  kinds?: readonly string[];
  unacknowledged?: boolean;
  limit: number;
}

/** The last anchor the scheduled integrity check verified: the next run starts after it. */
export interface IntegrityMark {
  seq: number;
  hash: string;
  at: number;
}

type Patch<T, K extends keyof T> = Partial<Omit<T, K>>;

export interface Store {
  readonly backend: string;

  createUser(user: UserRecord): Promise<void>;
  getUser(name: string): Promise<UserRecord | null>;
  listUsers(): Promise<UserRecord[]>;
  updateUser(name: string, patch: Patch<UserRecord, 'name' | 'createdAt'>): Promise<void>;
  /** Atomically count one more failed sign-in; returns the new count. */
  incrementLoginFailures(name: string): Promise<number>;
  /**
   * Atomically accept a TOTP time step if it is later than the last one accepted. Returns false
   * for a replay, so that two simultaneous logins with one code cannot both pass.
   */
  consumeTotpStep(name: string, step: number): Promise<boolean>;
  /** The account linked to this OIDC issuer + subject, if any. */
  findUserBySso(issuer: string, subject: string): Promise<UserRecord | null>;

  createOrg(org: OrgRecord): Promise<void>;
  getOrg(name: string): Promise<OrgRecord | null>;
  listOrgs(): Promise<OrgRecord[]>;
  updateOrg(name: string, patch: Patch<OrgRecord, 'name' | 'createdAt'>): Promise<void>;

  createDevice(device: DeviceRecord): Promise<void>;
  /** All or nothing: if any name or UDI is taken (or repeated in the batch), none is created. */
  createDevices(devices: DeviceRecord[]): Promise<void>;
  getDevice(name: string): Promise<DeviceRecord | null>;
  listDevices(): Promise<DeviceRecord[]>;
  updateDevice(name: string, patch: Patch<DeviceRecord, 'name' | 'createdAt'>): Promise<void>;

  putCredential(credential: CredentialRecord): Promise<void>;
  getCredential(device: string): Promise<CredentialRecord | null>;
  deleteCredential(device: string): Promise<void>;

  createGrant(grant: GrantRecord): Promise<void>;
  getGrant(id: string): Promise<GrantRecord | null>;
  listGrants(filter: { user?: string; device?: string; requestId?: string }): Promise<GrantRecord[]>;
  /** Revokes once: a second revocation keeps the first time and actor. */
  revokeGrant(id: string, at: number, by: string): Promise<void>;

  createRequest(request: RequestRecord): Promise<void>;
  getRequest(id: string): Promise<RequestRecord | null>;
  listRequests(query: RequestQuery): Promise<RequestRecord[]>;
  /**
   * Applies the patch only if the stored version is still `expectedVersion` (and bumps it);
   * false when someone else updated the request first.
   */
  updateRequestIf(id: string, expectedVersion: number, patch: Patch<RequestRecord, 'id' | 'createdAt' | 'version'>): Promise<boolean>;

  createRoleChange(change: RoleChangeRecord): Promise<void>;
  getRoleChange(id: string): Promise<RoleChangeRecord | null>;
  /** Newest first. */
  listRoleChanges(query: RoleChangeQuery): Promise<RoleChangeRecord[]>;
  /**
   * Confirms, rejects or expires a change only while it is still pending: two admins (or an admin
   * and the expiry sweep, on different nodes) can race, and exactly one of them wins.
   */
  settleRoleChange(id: string, patch: Pick<RoleChangeRecord, 'status' | 'decidedBy' | 'decidedAt' | 'reason'>): Promise<boolean>;

  createSession(session: SessionRecord): Promise<void>;
  updateSession(id: string, patch: Partial<Pick<SessionRecord, 'endedAt' | 'endReason' | 'exitStatus' | 'bytesIn' | 'bytesOut' | 'killRequest'>>): Promise<void>;
  /** Ends a session only if it has not ended yet; false if it already had (someone else ended it). */
  endSessionIfOpen(id: string, patch: SessionEndPatch): Promise<boolean>;
  getSession(id: string): Promise<SessionRecord | null>;
  /** Newest first. */
  listSessions(query: SessionQuery): Promise<SessionRecord[]>;

  createRecording(recording: RecordingRecord): Promise<void>;
  sealRecording(id: string, seal: { sealedAt: number; size: number; sha256: string }): Promise<void>;
  getRecording(id: string): Promise<RecordingRecord | null>;
  listRecordings(): Promise<RecordingRecord[]>;

  createCommand(command: CommandRecord): Promise<void>;
  updateCommand(id: string, patch: Partial<Pick<CommandRecord, 'decision' | 'reviewer' | 'exitStatus' | 'exitSignal' | 'reason' | 'rule'>>): Promise<void>;
  /** Newest first. */
  listCommands(query: CommandQuery): Promise<CommandRecord[]>;
  getCommand(id: string): Promise<CommandRecord | null>;
  /**
   * Settles a command held for review, only if it is still held: an approver's answer and the
   * timeout can race (on different nodes), and exactly one of them wins.
   */
  resolveCommandReview(id: string, patch: Pick<CommandRecord, 'decision' | 'reviewer' | 'reason'>): Promise<boolean>;

  createWebSession(session: WebSessionRecord): Promise<void>;
  /** null when unknown or expired at `now`. */
  getWebSession(id: string, now: number): Promise<WebSessionRecord | null>;
  touchWebSession(id: string, lastSeenAt: number, expiresAt: number): Promise<void>;
  deleteWebSession(id: string): Promise<void>;
  deleteWebSessionsOf(user: string): Promise<void>;

  createApiToken(token: ApiTokenRecord): Promise<void>;
  getApiToken(id: string): Promise<ApiTokenRecord | null>;
  /** Oldest first; one owner's, or every token. */
  listApiTokens(filter: { owner?: string }): Promise<ApiTokenRecord[]>;
  /** Revokes once: false when it was already revoked (the first time and actor stay) or is unknown. */
  revokeApiToken(id: string, at: number, by: string): Promise<boolean>;
  touchApiToken(id: string, lastUsedAt: number): Promise<void>;

  /** Records this node as alive until `node.expiresAt`. */
  heartbeat(node: NodeRecord): Promise<void>;
  /** Nodes whose heartbeat has not lapsed at `now`. */
  listNodes(now: number): Promise<NodeRecord[]>;
  removeNode(id: string, instance: string): Promise<void>;

  /**
   * Append to the hash chain: the backend assigns the sequence number, links the entry to the
   * previous hash and computes its own, as one atomic step, even with several nodes appending.
   * `dedupId` makes a retried append (the reply was lost, the write was not) a no-op that
   * returns the entry already written.
   */
  appendAudit(draft: AuditDraft, now: number, dedupId?: string): Promise<AuditEntry>;
  listAudit(query: AuditQuery): Promise<AuditEntry[]>;
  /** The seq of the chain's last entry; 0 for an empty chain. */
  lastAuditSeq(): Promise<number>;

  /**
   * Takes or renews the lease on a named export: granted when nobody holds it, when the lease
   * lapsed at `now`, or when `holder` holds it already; one holder wins, whichever node asks.
   * Returns the cursor as it stands afterwards (created at position 0): the lease is the
   * caller's when `holder` is theirs.
   */
  claimExport(name: string, holder: string, now: number, leaseMs: number): Promise<ExportCursor>;
  /** Moves the position forward (never back) if `holder` still holds the lease; false when it does not. */
  advanceExport(name: string, holder: string, position: number): Promise<boolean>;
  /** Gives the lease up (a node stopping), so another node takes over without waiting for it to lapse. */
  releaseExport(name: string, holder: string): Promise<void>;

  createAlert(alert: AlertRecord): Promise<void>;
  getAlert(id: string): Promise<AlertRecord | null>;
  /** Newest first. */
  listAlerts(query: AlertQuery): Promise<AlertRecord[]>;
  /** Acknowledges once: false when someone already had (the first keeps it). */
  acknowledgeAlert(id: string, ack: AlertAcknowledgement): Promise<boolean>;

  /**
   * A counting window shared by the nodes (alerts that count facts): adds `member` at `at` under
   * `key`, forgets the members at or before `at - windowMs`, and returns those left, oldest first.
   * Adding a member twice counts it once.
   */
  countInWindow(key: string, member: string, at: number, windowMs: number): Promise<string[]>;
  /**
   * A named claim (a lease, a suppression window): true when it was free at `now` (never taken,
   * lapsed, or already `holder`'s) and is now `holder`'s until `until`; false when another holds
   * it. Atomic across nodes. `until <= now` releases one's own claim.
   */
  claim(key: string, holder: string, until: number, now: number): Promise<boolean>;

  getIntegrityMark(): Promise<IntegrityMark | null>;
  setIntegrityMark(mark: IntegrityMark): Promise<void>;

  /** Does the store answer? (readiness) */
  ping(): Promise<void>;
  close(): Promise<void>;
}

export class StoreUnavailableError extends Error {
  readonly code = 'STORE_UNAVAILABLE';
  constructor(detail: string) {
    super(`the state store is unreachable: ${detail}`);
    this.name = 'StoreUnavailableError';
  }
}

export class AlreadyExistsError extends Error {
  readonly code = 'ALREADY_EXISTS';
  constructor(what: string) {
    super(`${what} already exists`);
    this.name = 'AlreadyExistsError';
  }
}
