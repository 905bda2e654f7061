import type {
  AlertRecord, ApiTokenRecord, CommandRecord, DeviceRecord, GrantRecord, NodeRecord, OrgRecord, RecordingRecord, RequestRecord, RoleChangeRecord, SessionRecord, UserRecord,
  WebSessionRecord,
} from './store.js';

/**
 * How each record's fields are stored, declared once for both backends: `json` fields are
 * arrays or objects (a JSON text column in SQLite, a JSON string in a Redis hash), `bool` are
 * booleans, `num` and `str` are plain. A field that may be null says so with `?`.
 */
export type FieldKind = 'str' | 'str?' | 'num' | 'num?' | 'bool' | 'json' | 'json?';
export type Fields<T> = { readonly [K in keyof T]-?: FieldKind };

export const USER_FIELDS: Fields<UserRecord> = {
  name: 'str', roles: 'json', org: 'str?', passwordHash: 'str', totpSealed: 'str?', totpLastStep: 'num', failedLogins: 'num',
  lockedUntil: 'num?', disabled: 'bool', expiresAt: 'num?', publicKeys: 'json', nda: 'json?', locale: 'str?', enrolment: 'json?', sso: 'json?', serviceAccount: 'bool', createdAt: 'num',
};

export const ORG_FIELDS: Fields<OrgRecord> = { name: 'str', displayName: 'str', contact: 'str?', createdAt: 'num' };

export const DEVICE_FIELDS: Fields<DeviceRecord> = {
  name: 'str', host: 'str', ports: 'json', protocols: 'json', udi: 'str?', ip: 'str?', mac: 'str?', type: 'str?', manufacturer: 'str?',
  model: 'str?', department: 'str?', location: 'str?', classification: 'json?', state: 'str', lifecycle: 'json', hostKeyAlgo: 'str?',
  hostKeyBlob: 'str?', rdpCertSha256: 'str?', createdAt: 'num',
};

export const GRANT_FIELDS: Fields<GrantRecord> = {
  id: 'str', user: 'str', device: 'str', protocol: 'str', notBefore: 'num', notAfter: 'num', createdBy: 'str', createdAt: 'num',
  revokedAt: 'num?', revokedBy: 'str?', requestId: 'str?', profile: 'str?', allowUpload: 'bool', allowDownload: 'bool',
};

export const REQUEST_FIELDS: Fields<RequestRecord> = {
  id: 'str', requester: 'str', devices: 'json', protocols: 'json', purpose: 'str', workOrder: 'str', notBefore: 'num', notAfter: 'num',
  profile: 'str', upload: 'bool', download: 'bool', status: 'str', approvals: 'json', decidedAt: 'num?', decidedBy: 'str?', reason: 'str?',
  grantIds: 'json', changes: 'json?', createdAt: 'num', version: 'num',
};

export const ROLE_CHANGE_FIELDS: Fields<RoleChangeRecord> = {
  id: 'str', user: 'str', requestedBy: 'str', requestedAt: 'num', expiresAt: 'num', rolesBefore: 'json', added: 'json', status: 'str',
  decidedBy: 'str?', decidedAt: 'num?', reason: 'str?',
};

export const SESSION_FIELDS: Fields<SessionRecord> = {
  id: 'str', user: 'str', device: 'str', protocol: 'str', grantId: 'str', via: 'str', kind: 'str', command: 'str?', clientAddress: 'str',
  node: 'str', startedAt: 'num', endedAt: 'num?', endReason: 'str?', exitStatus: 'num?', bytesIn: 'num', bytesOut: 'num',
  recordingId: 'str', killRequest: 'json?',
};

export const RECORDING_FIELDS: Fields<RecordingRecord> = {
  id: 'str', sessionId: 'str', path: 'str', format: 'str', startedAt: 'num', sealedAt: 'num?', size: 'num?', sha256: 'str?',
};

export const COMMAND_FIELDS: Fields<CommandRecord> = {
  id: 'str', session: 'str', user: 'str', device: 'str', at: 'num', line: 'str', mode: 'str', decision: 'str', rule: 'str?',
  reason: 'str?', reviewer: 'str?', exitStatus: 'num?', exitSignal: 'str?',
};

export const WEB_SESSION_FIELDS: Fields<WebSessionRecord> = {
  id: 'str', user: 'str', csrf: 'str', createdAt: 'num', lastSeenAt: 'num', expiresAt: 'num', address: 'str', via: 'str',
};

export const API_TOKEN_FIELDS: Fields<ApiTokenRecord> = {
  id: 'str', owner: 'str', name: 'str', scope: 'json', secretHash: 'str', createdAt: 'num', createdBy: 'str', expiresAt: 'num',
  lastUsedAt: 'num?', revokedAt: 'num?', revokedBy: 'str?',
};

export const NODE_FIELDS: Fields<NodeRecord> = {
  id: 'str', instance: 'str', startedAt: 'num', lastSeenAt: 'num', expiresAt: 'num', ssh: 'str', web: 'str',
};

export const ALERT_FIELDS: Fields<AlertRecord> = {
  id: 'str', seq: 'num', kind: 'str', severity: 'str', subject: 'str', summary: 'str', triggers: 'json', raisedAt: 'num', node: 'str',
  acknowledgement: 'json?',
};

/** snake_case column names for SQLite. */
export function columnName(field: string): string {
  return field.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}
