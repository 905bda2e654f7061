/** Schema migrations for the SQLite backend, applied in order; the applied count lives in user_version. */
export const SQLITE_MIGRATIONS: readonly string[] = [
  `
  CREATE TABLE users (
    name TEXT PRIMARY KEY,
    roles TEXT NOT NULL,
    org TEXT,
    password_hash TEXT NOT NULL,
    totp_sealed TEXT,
    totp_last_step INTEGER NOT NULL DEFAULT 0,
    failed_logins INTEGER NOT NULL DEFAULT 0,
    locked_until INTEGER,
    disabled INTEGER NOT NULL DEFAULT 0,
    expires_at INTEGER,
    public_keys TEXT NOT NULL DEFAULT '[]',
    created_at INTEGER NOT NULL
  );
  CREATE TABLE devices (
    name TEXT PRIMARY KEY,
    host TEXT NOT NULL,
    port INTEGER NOT NULL,
    protocols TEXT NOT NULL,
    udi TEXT UNIQUE,
    ip TEXT,
    mac TEXT,
    state TEXT NOT NULL,
    host_key_algo TEXT,
    host_key_blob TEXT,
    created_at INTEGER NOT NULL
  );
  CREATE TABLE credentials (
    device TEXT PRIMARY KEY REFERENCES devices(name),
    username TEXT NOT NULL,
    kind TEXT NOT NULL,
    sealed TEXT NOT NULL,
    updated_at INTEGER NOT NULL
  );
  CREATE TABLE grants (
    id TEXT PRIMARY KEY,
    user TEXT NOT NULL REFERENCES users(name),
    device TEXT NOT NULL REFERENCES devices(name),
    protocol TEXT NOT NULL,
    not_before INTEGER NOT NULL,
    not_after INTEGER NOT NULL,
    created_by TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER,
    revoked_by TEXT,
    request_id TEXT,
    profile TEXT,
    allow_file_transfer INTEGER NOT NULL DEFAULT 0
  );
  CREATE INDEX grants_user_device ON grants(user, device);
  CREATE TABLE sessions (
    id TEXT PRIMARY KEY,
    user TEXT NOT NULL,
    device TEXT NOT NULL,
    protocol TEXT NOT NULL,
    grant_id TEXT NOT NULL,
    via TEXT NOT NULL,
    kind TEXT NOT NULL,
    command TEXT,
    client_address TEXT NOT NULL,
    node TEXT NOT NULL,
    started_at INTEGER NOT NULL,
    ended_at INTEGER,
    end_reason TEXT,
    exit_status INTEGER,
    bytes_in INTEGER NOT NULL DEFAULT 0,
    bytes_out INTEGER NOT NULL DEFAULT 0,
    recording_id TEXT NOT NULL
  );
  CREATE INDEX sessions_started ON sessions(started_at);
  CREATE TABLE recordings (
    id TEXT PRIMARY KEY,
    session_id TEXT NOT NULL,
    path TEXT NOT NULL,
    format TEXT NOT NULL,
    started_at INTEGER NOT NULL,
    sealed_at INTEGER,
    size INTEGER,
    sha256 TEXT
  );
  CREATE TABLE audit (
    seq INTEGER PRIMARY KEY,
    ts TEXT NOT NULL,
    type TEXT NOT NULL,
    actor TEXT NOT NULL,
    outcome TEXT NOT NULL,
    code TEXT,
    data TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
  );
  -- The audit trail is append-only (S-1.3): the database itself refuses edits and deletes.
  CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
  CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
  `,
];
