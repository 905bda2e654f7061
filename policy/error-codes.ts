/**
 * The catalogue of refusals and errors (after Fastify's lib/errors.js): one stable code, the
 * sentence a user reads, and the HTTP status the API will use. The SSH banner, the API response,
 * the audit entry and the tests all speak in these codes.
 */
export const ERROR_CATALOGUE = {
  AUTH_FAILED: { status: 401, message: 'Sign-in failed: wrong user name, password or TOTP code.' },
  TOTP_REPLAYED: { status: 401, message: 'That TOTP code has already been used; wait for the next code.' },
  TOTP_NOT_ENROLLED: { status: 401, message: 'This account has no TOTP enrolment; ask an administrator.' },
  ACCOUNT_LOCKED: { status: 423, message: 'The account is locked after repeated failed sign-ins.' },
  ACCOUNT_DISABLED: { status: 403, message: 'The account is disabled.' },
  ACCOUNT_EXPIRED: { status: 403, message: 'The account has expired.' },
  FORBIDDEN: { status: 403, message: 'Your role does not allow this.' },
  DEVICE_UNKNOWN: { status: 404, message: 'No registered device has that name.' },
  DEVICE_NOT_ACTIVE: { status: 409, message: 'The device is not active (quarantined or decommissioned).' },
  PROTOCOL_NOT_ENABLED: { status: 409, message: 'The device does not offer that protocol.' },
  NO_GRANT: { status: 403, message: 'You have no access grant for this device.' },
  GRANT_NOT_STARTED: { status: 403, message: 'Your access grant for this device has not started yet.' },
  GRANT_EXPIRED: { status: 403, message: 'Your access grant for this device has expired.' },
  GRANT_REVOKED: { status: 403, message: 'Your access grant for this device was revoked.' },
  GRANT_INVALID: { status: 400, message: 'The grant is not valid.' },
  TARGET_REQUIRED: { status: 400, message: 'Name the device: ssh -p PORT user#device@gateway.' },
  HOST_KEY_NOT_PINNED: { status: 409, message: "The device's SSH host key has not been pinned; an administrator must run `portcullis device trust`." },
  HOST_KEY_MISMATCH: { status: 502, message: "The device's SSH host key does not match the pinned key; the session was refused." },
  CREDENTIAL_MISSING: { status: 409, message: 'No credential is stored for this device.' },
  DEVICE_UNREACHABLE: { status: 502, message: 'The device could not be reached.' },
  DEVICE_AUTH_FAILED: { status: 502, message: 'The device refused the stored credential.' },
  RECORDING_FAILED: { status: 503, message: 'The session could not be recorded, so it was not allowed (fail closed).' },
  FORWARDING_REFUSED: { status: 403, message: 'Port forwarding is not allowed through Portcullis (R-6.3f).' },
  AGENT_FORWARDING_REFUSED: { status: 403, message: 'Agent forwarding is not allowed through Portcullis (R-6.3f).' },
  X11_FORWARDING_REFUSED: { status: 403, message: 'X11 forwarding is not allowed through Portcullis (R-6.3f).' },
  FILE_TRANSFER_NOT_GRANTED: { status: 403, message: 'File transfer (SFTP/SCP) needs a grant that allows it; this grant does not.' },
  SUBSYSTEM_REFUSED: { status: 403, message: 'That SSH subsystem is not available through Portcullis.' },
  CONFIG_INVALID: { status: 500, message: 'The configuration is not valid.' },
  NOT_FOUND: { status: 404, message: 'Not found.' },
  ALREADY_EXISTS: { status: 409, message: 'That name is already taken.' },
  INVALID_INPUT: { status: 400, message: 'The input is not valid.' },
  STORE_UNAVAILABLE: { status: 503, message: 'The gateway cannot reach its state store, so it admits no new sign-ins or sessions (fail closed); live sessions go on being recorded.' },
  SESSION_KILLED: { status: 409, message: 'A security officer ended this session.' },
  UNAUTHENTICATED: { status: 401, message: 'Sign in first.' },
  CSRF_INVALID: { status: 403, message: 'The request did not carry a valid CSRF token; reload the page and try again.' },
  RATE_LIMITED: { status: 429, message: 'Too many attempts; wait a minute and try again.' },
} as const satisfies Record<string, { status: number; message: string }>;

export type ErrorCode = keyof typeof ERROR_CATALOGUE;

export function describeCode(code: ErrorCode): string {
  return ERROR_CATALOGUE[code].message;
}
