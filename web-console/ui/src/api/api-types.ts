/**
 * The shapes the gateway's JSON API answers with, as its zod schemas declare them
 * (web-console/server/*.ts). Times are ISO 8601 strings.
 */
import type { Role } from '../../../../policy/types.js';

export type Locale = 'en' | 'zh-CN';

export interface Me {
  user: { name: string; roles: Role[]; org: string | null; locale: string | null };
  csrfToken: string;
  idleTimeoutSeconds: number;
  expiresAt: string;
}

export interface Enrolment {
  enrolment: { token: string; otpauthUri: string; secret: string };
}

/** GET /api/auth/sso: single sign-on's button, and a sign-in through it that waits for the TOTP code. */
export interface SsoState {
  enabled: boolean;
  displayName: string | null;
  pending: { user: string } | null;
}

export interface ErrorBody {
  error: { code: string; message: string; detail?: string | null };
}

export interface AccessWindow {
  from: string;
  until: string;
  profile: string;
  /** Files to the device (and changes to its files). */
  upload: boolean;
  /** Files from the device: data export (R-6.3e). */
  download: boolean;
}

export interface Approval {
  by: string;
  roles: Role[];
  at: string;
  comment: string | null;
  narrowing: { from?: string; until?: string; profile?: string; upload?: boolean; download?: boolean } | null;
}

export interface RequestChange {
  at: string;
  by: string;
  kind: 'profile';
  from: string;
  to: string;
  reason: string;
  before: AccessWindow;
  lapsed: Array<{ by: string; at: string }>;
}

/** A privileged role waiting for a second admin's confirmation (S-1.3). */
export interface RoleChange {
  id: string;
  user: string;
  requestedBy: string;
  requestedAt: string;
  expiresAt: string;
  rolesBefore: Role[];
  added: Role[];
  status: 'pending' | 'confirmed' | 'rejected' | 'expired';
  decidedBy: string | null;
  decidedAt: string | null;
  reason: string | null;
}

export interface AccessRequest {
  id: string;
  requester: string;
  /** The requester's vendor organisation, when the server sends it. */
  organisation?: string | null;
  devices: string[];
  protocols: string[];
  purpose: string;
  workOrder: string;
  requested: AccessWindow;
  effective: AccessWindow;
  level: number | null;
  status: string;
  approvals: Approval[];
  /** Each inner list is one approval still missing: any one of these roles fills it. */
  stillNeeded: Role[][];
  /** Profile swaps by an approver that were not provably narrower: the approvals before each lapsed (S-1.3). */
  changes: RequestChange[];
  decidedAt: string | null;
  decidedBy: string | null;
  reason: string | null;
  grantIds: string[];
  createdAt: string;
}

export interface Grant {
  id: string;
  user: string;
  device: string;
  protocol: string;
  from: string;
  until: string;
  request: string | null;
  profile: string | null;
  allowUpload: boolean;
  allowDownload: boolean;
  createdBy: string;
  revokedAt: string | null;
  revokedBy: string | null;
}

export interface DeviceSummary {
  name: string;
  type: string | null;
  manufacturer: string | null;
  model: string | null;
  department: string | null;
  location: string | null;
  protocols: string[];
  level: number;
  state: string;
}

export interface LifecycleEvent {
  type: string;
  at: string;
  by: string;
  approvedBy: string | null;
  details: Record<string, unknown>;
}

export interface Device extends DeviceSummary {
  host: string;
  ports: Record<string, number>;
  udi: string | null;
  ip: string | null;
  mac: string | null;
  classification: { usageForm: string; contact: string; severity: string | null; effect: string | null } | null;
  lifecycle: LifecycleEvent[];
  hostKey: { type: string | null; fingerprint: string } | null;
  credentialStored?: boolean;
  createdAt: string;
}

export interface PolicyLevel {
  level: number;
  approvals: Role[][];
  longestWindowMinutes: number;
  modes: string[];
  alertSecurityOnStart: boolean;
  defaultProfile: string | null;
}

export interface Profile {
  name: string;
  mode: string;
  description: string[];
}

export interface Policy {
  levels: PolicyLevel[];
  profiles: Profile[];
}

export interface MaintenanceRecord {
  session: string;
  vendor: string;
  organisation: string | null;
  device: string;
  deviceLevel: number | null;
  protocol: string;
  via: string;
  start: string;
  end: string | null;
  endReason: string | null;
  approvers: string[];
  request: string | null;
  workOrder: string | null;
  purpose: string | null;
  bytesIn: number;
  bytesOut: number;
  recording: string;
  node: string;
  commands: Array<{ at: string; line: string; decision: string; exitStatus: number | null }>;
  files: Array<{ at: string; op: string; path: string; to: string | null; bytes: number | null; sha256: string | null; outcome: string }>;
}

export interface Session {
  id: string;
  user: string;
  device: string;
  /** Sent for live sessions (open=true). */
  deviceLevel?: number | null;
  protocol: string;
  via: string;
  kind: string;
  command: string | null;
  client: string;
  node: string;
  nodeAlive: boolean;
  startedAt: string;
  /** When the grant the session rides on ends (open=true). */
  grantEnds?: string | null;
  endedAt: string | null;
  endReason: string | null;
  exitStatus: number | null;
  bytesIn: number;
  bytesOut: number;
  recordingId: string;
  grantId: string;
  killRequested: { by: string; at: string; reason: string; grantRevoked: boolean; lockedUntil: string | null } | null;
}

export interface Recording {
  id: string;
  session: string;
  user: string;
  device: string;
  protocol: string;
  startedAt: string;
  endedAt: string | null;
  endReason: string | null;
  size: number;
  sealed: boolean;
  /** 'pcrec' for a terminal (asciicast replay), 'pcrfb' for a desktop (noVNC replay). */
  format: string;
  kind: string;
}

/** An alert (GET /api/alerts); kinds and severities as policy/alert-rules.ts names them. */
export interface Alert {
  id: string;
  seq: number;
  kind: string;
  severity: string;
  subject: string;
  summary: string;
  triggers: number[];
  raisedAt: string;
  node: string;
  acknowledgement: { by: string; at: string; comment: string } | null;
}

export interface CommandLine {
  id: string;
  session: string;
  user: string;
  device: string;
  at: string;
  line: string;
  mode: string;
  decision: string;
  rule: string | null;
  reason: string | null;
  reviewer: string | null;
  exitStatus: number | null;
  exitSignal: string | null;
}

/** A command found by the search across sessions, with its session's recording (GET /api/commands). */
export interface CommandHit extends CommandLine {
  recording: string | null;
}

export interface AuditEntry {
  seq: number;
  ts: string;
  type: string;
  actor: string;
  outcome: string;
  code: string | null;
  data: Record<string, unknown>;
  prevHash: string;
  hash: string;
}

export interface VerifyReport {
  ok: boolean;
  auditEntries: number;
  recordingsVerified: number;
  recordingsUnsealed: string[];
  problems: string[];
}

export interface User {
  name: string;
  roles: Role[];
  org: string | null;
  nda: { signedAt: string; expiresAt: string; reference: string | null } | null;
  disabled: boolean;
  lockedUntil: string | null;
  expiresAt: string | null;
  publicKeys: number;
  locale: string | null;
  /** False until the person has set up their authenticator (at first sign-in, or after a reset). */
  totpEnrolled?: boolean;
  /** An automation account: no password or TOTP, API tokens only, never approves. */
  serviceAccount?: boolean;
  createdAt: string;
}

/** An API token as GET /api/tokens lists it (web-console/server/tokens-api.ts): never its secret. */
export interface ApiToken {
  id: string;
  owner: string;
  ownerIsServiceAccount: boolean;
  name: string;
  scope: string[];
  createdAt: string;
  createdBy: string;
  expiresAt: string;
  lastUsedAt: string | null;
  revokedAt: string | null;
  revokedBy: string | null;
  state: 'active' | 'expired' | 'revoked';
}

export interface Organisation {
  name: string;
  displayName: string;
  contact: string | null;
}
