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
  // 2: the access workflow (orgs, NDA, inventory, lifecycle, requests), command log, web
  // sessions, cluster heartbeats, and idempotent audit appends.
  `
  ALTER TABLE users ADD COLUMN nda TEXT;
  ALTER TABLE users ADD COLUMN locale TEXT;
  CREATE TABLE orgs (
    name TEXT PRIMARY KEY,
    display_name TEXT NOT NULL,
    contact TEXT,
    created_at INTEGER NOT NULL
  );
  ALTER TABLE devices ADD COLUMN ports TEXT NOT NULL DEFAULT '{}';
  UPDATE devices SET ports = json_object('ssh', port);
  ALTER TABLE devices DROP COLUMN port;
  ALTER TABLE devices ADD COLUMN type TEXT;
  ALTER TABLE devices ADD COLUMN manufacturer TEXT;
  ALTER TABLE devices ADD COLUMN model TEXT;
  ALTER TABLE devices ADD COLUMN department TEXT;
  ALTER TABLE devices ADD COLUMN location TEXT;
  ALTER TABLE devices ADD COLUMN classification TEXT;
  ALTER TABLE devices ADD COLUMN lifecycle TEXT NOT NULL DEFAULT '[]';
  CREATE INDEX grants_request ON grants(request_id);
  CREATE TABLE requests (
    id TEXT PRIMARY KEY,
    requester TEXT NOT NULL,
    devices TEXT NOT NULL,
    protocols TEXT NOT NULL,
    purpose TEXT NOT NULL,
    work_order TEXT NOT NULL,
    not_before INTEGER NOT NULL,
    not_after INTEGER NOT NULL,
    profile TEXT,
    file_transfer INTEGER NOT NULL,
    status TEXT NOT NULL,
    approvals TEXT NOT NULL,
    decided_at INTEGER,
    decided_by TEXT,
    reason TEXT,
    grant_ids TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    version INTEGER NOT NULL
  );
  CREATE INDEX requests_requester ON requests(requester, created_at);
  CREATE INDEX requests_status ON requests(status, created_at);
  ALTER TABLE sessions ADD COLUMN kill_request TEXT;
  CREATE INDEX sessions_open ON sessions(ended_at) WHERE ended_at IS NULL;
  CREATE INDEX sessions_user ON sessions(user, started_at);
  CREATE INDEX sessions_device ON sessions(device, started_at);
  CREATE TABLE commands (
    id TEXT PRIMARY KEY,
    session TEXT NOT NULL,
    user TEXT NOT NULL,
    device TEXT NOT NULL,
    at INTEGER NOT NULL,
    line TEXT NOT NULL,
    mode TEXT NOT NULL,
    decision TEXT NOT NULL,
    rule TEXT,
    reason TEXT,
    reviewer TEXT,
    exit_status INTEGER
  );
  CREATE INDEX commands_session ON commands(session, at);
  CREATE INDEX commands_at ON commands(at);
  CREATE TABLE web_sessions (
    id TEXT PRIMARY KEY,
    user TEXT NOT NULL,
    csrf TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    address TEXT NOT NULL
  );
  CREATE INDEX web_sessions_user ON web_sessions(user);
  CREATE TABLE nodes (
    id TEXT PRIMARY KEY,
    instance TEXT NOT NULL,
    started_at INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    ssh TEXT NOT NULL,
    web TEXT NOT NULL
  );
  CREATE TABLE audit_dedup (
    id TEXT PRIMARY KEY,
    seq INTEGER NOT NULL
  );
  `,
  // 3: TOTP enrolment at first sign-in (the web console).
  `
  ALTER TABLE users ADD COLUMN enrolment TEXT;
  `,
  // 4: desktops: the pinned RDP certificate.
  `
  ALTER TABLE devices ADD COLUMN rdp_cert_sha256 TEXT;
  `,
  // 5: the command log: the signal that ended a command, when the device reported one instead of an exit status.
  `
  ALTER TABLE commands ADD COLUMN exit_signal TEXT;
  `,
  // 6: single sign-on for staff (OIDC): the identity-provider account an account is linked to
  // (unique per issuer + subject), and how each browser session signed in.
  `
  ALTER TABLE users ADD COLUMN sso TEXT;
  CREATE UNIQUE INDEX users_sso ON users(json_extract(sso, '$.issuer'), json_extract(sso, '$.subject')) WHERE sso IS NOT NULL;
  ALTER TABLE web_sessions ADD COLUMN via TEXT NOT NULL DEFAULT 'password';
  `,
  // 7: API tokens and service accounts (issue 13, item 5): tokens are kept as the SHA-256 of their secret only.
  `
  ALTER TABLE users ADD COLUMN service_account INTEGER NOT NULL DEFAULT 0;
  CREATE TABLE api_tokens (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    name TEXT NOT NULL,
    scope TEXT NOT NULL,
    secret_hash TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    created_by TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    last_used_at INTEGER,
    revoked_at INTEGER,
    revoked_by TEXT
  );
  CREATE INDEX api_tokens_owner ON api_tokens(owner, created_at);
  `,
  // 8: the syslog export (R-A.5c): how far each feed of the audit chain got, and which node sends it.
  `
  CREATE TABLE audit_exports (
    name TEXT PRIMARY KEY,
    position INTEGER NOT NULL,
    holder TEXT,
    lease_until INTEGER NOT NULL
  );
  `,
  // 9: alerts (issue 14): the console's alert list with acknowledgements, the counting windows and
  // claims (suppression, leases) the nodes share, and the scheduled integrity check's last anchor.
  `
  CREATE TABLE alerts (
    id TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    kind TEXT NOT NULL,
    severity TEXT NOT NULL,
    subject TEXT NOT NULL,
    summary TEXT NOT NULL,
    triggers TEXT NOT NULL,
    raised_at INTEGER NOT NULL,
    node TEXT NOT NULL,
    acknowledgement TEXT
  );
  CREATE INDEX alerts_raised ON alerts(raised_at);
  CREATE TABLE alert_windows (
    key TEXT NOT NULL,
    member TEXT NOT NULL,
    at INTEGER NOT NULL,
    PRIMARY KEY (key, member)
  );
  CREATE INDEX alert_windows_at ON alert_windows(at);
  CREATE TABLE claims (
    key TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    until INTEGER NOT NULL
  );
  CREATE TABLE integrity_mark (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    seq INTEGER NOT NULL,
    hash TEXT NOT NULL,
    at INTEGER NOT NULL
  );
  `,
  // 10: separation of duties (issue 13): privileged role changes wait for a second admin's
  // confirmation; a request keeps the profile swaps that made its earlier approvals lapse.
  `
  CREATE TABLE role_changes (
    id TEXT PRIMARY KEY,
    user TEXT NOT NULL,
    requested_by TEXT NOT NULL,
    requested_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    roles_before TEXT NOT NULL,
    added TEXT NOT NULL,
    status TEXT NOT NULL,
    decided_by TEXT,
    decided_at INTEGER,
    reason TEXT
  );
  CREATE INDEX role_changes_status ON role_changes(status, requested_at);
  CREATE INDEX role_changes_user ON role_changes(user, requested_at);
  ALTER TABLE requests ADD COLUMN changes TEXT;
  `,
  // 11: upload and download are separate permissions (issue 13, R-6.3e). A grant or request that
  // allowed file transfer allows both directions; an approval that struck file transfer strikes both.
  `
  ALTER TABLE grants ADD COLUMN allow_upload INTEGER NOT NULL DEFAULT 0;
  ALTER TABLE grants ADD COLUMN allow_download INTEGER NOT NULL DEFAULT 0;
  UPDATE grants SET allow_upload = allow_file_transfer, allow_download = allow_file_transfer;
  ALTER TABLE grants DROP COLUMN allow_file_transfer;
  ALTER TABLE requests ADD COLUMN upload INTEGER NOT NULL DEFAULT 0;
  ALTER TABLE requests ADD COLUMN download INTEGER NOT NULL DEFAULT 0;
  UPDATE requests SET upload = file_transfer, download = file_transfer;
  ALTER TABLE requests DROP COLUMN file_transfer;
  UPDATE requests SET approvals = (
    SELECT json_group_array(json(CASE
      WHEN json_type(a.value, '$.narrowing.fileTransfer') IS NULL THEN a.value
      WHEN json_type(a.value, '$.narrowing.fileTransfer') = 'false'
        THEN json_set(json_remove(a.value, '$.narrowing.fileTransfer'), '$.narrowing.upload', json('false'), '$.narrowing.download', json('false'))
      ELSE json_remove(a.value, '$.narrowing.fileTransfer') END) ORDER BY a.key)
    FROM json_each(requests.approvals) AS a)
  WHERE approvals LIKE '%"fileTransfer"%';
  `,
  // 12: 6 (issue 13, CLI actors and audit channels): the door each audit entry came in by and its source.
  // Older entries keep null here; the chain hashes them without these fields, as it did.
  `
  ALTER TABLE audit ADD COLUMN channel TEXT;
  ALTER TABLE audit ADD COLUMN source TEXT;
  CREATE INDEX audit_channel ON audit(channel, seq);
  `,
];
