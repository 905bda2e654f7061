import type { DeviceState, Protocol, Role } from '../../policy/types.js';

/**
 * The state store, backend-neutral. Every method is async so that a networked backend (Redis)
 * fits behind the same interface; the SQLite backend answers synchronously underneath.
 * Records hold secrets only in sealed (encrypted) form; times are epoch milliseconds.
 */
export interface UserRecord {
  name: string;
  roles: Role[];
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
  createdAt: number;
}

export interface DeviceRecord {
  name: string;
  host: string;
  port: number;
  protocols: Protocol[];
  udi: string | null;
  ip: string | null;
  mac: string | null;
  state: DeviceState;
  /** Pinned SSH host key: algorithm and base64 blob, as OpenSSH writes them in known_hosts. */
  hostKeyAlgo: string | null;
  hostKeyBlob: string | null;
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
  /** Reserved for the request/approval workflow and command profiles. */
  requestId: string | null;
  profile: string | null;
  allowFileTransfer: boolean;
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
  | 'error';

export interface SessionRecord {
  id: string;
  user: string;
  device: string;
  protocol: Protocol;
  grantId: string;
  /** How the client arrived: `ssh` (user#device or picker) or `proxyjump`. */
  via: string;
  kind: 'shell' | 'exec';
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
}

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

export interface AuditDraft {
  type: string;
  actor: string;
  /** 'ok' for a grant or success, 'denied' for a refusal, 'info' otherwise. */
  outcome: 'ok' | 'denied' | 'info';
  code: string | null;
  data: Record<string, unknown>;
}

export interface AuditEntry extends AuditDraft {
  seq: number;
  ts: string;
  prevHash: string;
  hash: string;
}

export interface AuditQuery {
  afterSeq?: number;
  limit?: number;
  type?: string;
}

export interface Store {
  readonly backend: string;

  createUser(user: UserRecord): Promise<void>;
  getUser(name: string): Promise<UserRecord | null>;
  listUsers(): Promise<UserRecord[]>;
  updateUser(name: string, patch: Partial<Omit<UserRecord, 'name' | 'createdAt'>>): Promise<void>;
  /** Atomically count one more failed sign-in; returns the new count. */
  incrementLoginFailures(name: string): Promise<number>;
  /**
   * Atomically accept a TOTP time step if it is later than the last one accepted. Returns false
   * for a replay, so that two simultaneous logins with one code cannot both pass.
   */
  consumeTotpStep(name: string, step: number): Promise<boolean>;

  createDevice(device: DeviceRecord): Promise<void>;
  getDevice(name: string): Promise<DeviceRecord | null>;
  listDevices(): Promise<DeviceRecord[]>;
  updateDevice(name: string, patch: Partial<Omit<DeviceRecord, 'name' | 'createdAt'>>): Promise<void>;

  putCredential(credential: CredentialRecord): Promise<void>;
  getCredential(device: string): Promise<CredentialRecord | null>;

  createGrant(grant: GrantRecord): Promise<void>;
  getGrant(id: string): Promise<GrantRecord | null>;
  listGrants(filter: { user?: string; device?: string }): Promise<GrantRecord[]>;
  revokeGrant(id: string, at: number, by: string): Promise<void>;

  createSession(session: SessionRecord): Promise<void>;
  updateSession(id: string, patch: Partial<Pick<SessionRecord, 'endedAt' | 'endReason' | 'exitStatus' | 'bytesIn' | 'bytesOut'>>): Promise<void>;
  getSession(id: string): Promise<SessionRecord | null>;
  listSessions(limit: number): Promise<SessionRecord[]>;

  createRecording(recording: RecordingRecord): Promise<void>;
  sealRecording(id: string, seal: { sealedAt: number; size: number; sha256: string }): Promise<void>;
  getRecording(id: string): Promise<RecordingRecord | null>;
  listRecordings(): Promise<RecordingRecord[]>;

  /**
   * Append to the hash chain: the backend assigns the sequence number and time, links the entry
   * to the previous hash and computes its own, as one atomic step.
   */
  appendAudit(draft: AuditDraft, now: number): Promise<AuditEntry>;
  listAudit(query: AuditQuery): Promise<AuditEntry[]>;

  close(): Promise<void>;
}
