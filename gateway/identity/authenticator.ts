import { describeCode, type ErrorCode } from '../../policy/error-codes.js';
import { lockAfterFailure, loginAllowed, type LockoutRule } from '../../policy/lockout.js';
import type { PrincipalFacts } from '../../policy/types.js';
import type { AuditLog } from '../audit/audit-log.js';
import { PerKeyLimit } from '../limits/per-key-limit.js';
import { StoreUnavailableError, type Store, type UserRecord } from '../store/store.js';
import type { Vault } from '../vault/vault.js';
import { dummyPasswordHash, verifyPassword } from './password.js';
import { matchTotp, newTotpSecret, totpUri } from './totp.js';
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

const sha256 = (s: string): string => createHash('sha256').update(s).digest('hex');
const safeEqual = (a: string, b: string): boolean => a.length === b.length && timingSafeEqual(Buffer.from(a), Buffer.from(b));

const MAX_CONCURRENT_SIGN_INS = 3;

export interface SignInAttempt {
  username: string;
  /** null when the first factor was a public key the front door already verified. */
  password: string | null;
  totp: string;
  /** The console may start a TOTP enrolment for an account that has none (after a right password). */
  allowEnrolment?: boolean;
  /** e.g. "ssh 127.0.0.1:53422" — for the audit entry. */
  source: string;
  method: string;
  /** More for the audit entries of this sign-in (single sign-on: via and the IdP's issuer). */
  context?: Record<string, string>;
}

export type SignInResult =
  | { ok: true; user: UserRecord }
  | { ok: false; code: ErrorCode; message: string; enrolment?: EnrolmentOffer };

/** A TOTP enrolment begun at first sign-in: shown to the person once, as a QR code and as text. */
export interface EnrolmentOffer {
  token: string;
  otpauthUri: string;
  secret: string;
}

const ENROLMENT_TTL_MS = 10 * 60_000;

export interface AuthenticatorOptions {
  lockout: LockoutRule;
  totpWindowSteps: number;
  totpIssuer?: string;
}

export function principalFacts(u: UserRecord): PrincipalFacts {
  return { name: u.name, roles: u.roles, disabled: u.disabled, expiresAt: u.expiresAt, lockedUntil: u.lockedUntil, nda: u.nda };
}

/**
 * Password (or verified public key) + TOTP, with replay refusal and lockout (R-A.4d). Every
 * outcome is audited. The user learns only what does not help a guesser: a wrong password and a
 * wrong code read the same; a replayed code is named only to someone whose first factor passed.
 */
export class Authenticator {
  constructor(
    private readonly store: Store,
    private readonly vault: Vault,
    private readonly audit: AuditLog,
    private readonly opts: AuthenticatorOptions,
    private readonly clock: () => number = Date.now,
  ) {}

  /**
   * Is the account locked? Asked before prompting, so a locked user is told so (and until when)
   * instead of typing a code for nothing. A refusal is audited. A disabled or expired account is
   * not said here: only signIn says it, and only to someone who gives its password.
   */
  async precheck(username: string, source: string): Promise<SignInResult | null> {
    try {
      return await this.precheckChecked(username, source);
    } catch (err) {
      if (err instanceof StoreUnavailableError) return this.storeDown(username, source, err);
      throw err;
    }
  }

  /**
   * Without the store nobody can be checked, so nobody signs in (fail closed); the refusal says
   * why, and its audit entry waits in the spool.
   */
  private async storeDown(username: string, source: string, err: StoreUnavailableError): Promise<SignInResult> {
    await this.audit.recordEventually('login.refused', { actor: username, outcome: 'denied', code: 'STORE_UNAVAILABLE', data: { user: username, source, detail: err.message } });
    return { ok: false, code: 'STORE_UNAVAILABLE', message: describeCode('STORE_UNAVAILABLE') };
  }

  private async precheckChecked(username: string, source: string): Promise<SignInResult | null> {
    const user = await this.store.getUser(username);
    if (!user) return null;
    const allowed = loginAllowed(principalFacts(user), this.clock());
    if (allowed.allow || allowed.code !== 'ACCOUNT_LOCKED') return null;
    await this.audit.record('login.refused', { actor: user.name, outcome: 'denied', code: allowed.code, data: { user: user.name, source, detail: allowed.detail } });
    return { ok: false, code: allowed.code, message: `${describeCode(allowed.code)} (${allowed.detail})` };
  }

  /** Sign-ins being evaluated per account: bounds how many guesses can race one lockout. */
  private readonly inFlight = new PerKeyLimit(MAX_CONCURRENT_SIGN_INS);

  async signIn(a: SignInAttempt): Promise<SignInResult> {
    const release = this.inFlight.acquire(a.username);
    if (!release) {
      await this.audit.record('login.failed', {
        actor: a.username, outcome: 'denied', code: 'AUTH_FAILED',
        data: { user: a.username, source: a.source, method: a.method, reason: 'too many simultaneous sign-ins for this account' },
      });
      return { ok: false, code: 'AUTH_FAILED', message: describeCode('AUTH_FAILED') };
    }
    try {
      return await this.evaluate(a);
    } catch (err) {
      if (err instanceof StoreUnavailableError) return this.storeDown(a.username, a.source, err);
      throw err;
    } finally {
      release();
    }
  }

  private async evaluate(a: SignInAttempt): Promise<SignInResult> {
    const now = this.clock();
    const base = { user: a.username, source: a.source, method: a.method, ...a.context };
    const user = await this.store.getUser(a.username);
    if (!user) {
      await verifyPassword(a.password ?? '', await dummyPasswordHash());
      await this.audit.record('login.failed', { actor: a.username, outcome: 'denied', code: 'AUTH_FAILED', data: { ...base, reason: 'unknown user' } });
      return { ok: false, code: 'AUTH_FAILED', message: describeCode('AUTH_FAILED') };
    }
    if (user.serviceAccount === true) {
      // A service account acts only through API tokens: it never signs in, whatever password or key someone gave it.
      await verifyPassword(a.password ?? '', await dummyPasswordHash());
      await this.audit.record('login.failed', { actor: user.name, outcome: 'denied', code: 'AUTH_FAILED', data: { ...base, reason: 'service account: API tokens only' } });
      return { ok: false, code: 'AUTH_FAILED', message: describeCode('AUTH_FAILED') };
    }
    const allowed = loginAllowed(principalFacts(user), now);
    if (!allowed.allow) {
      // Disabled or expired: said only to someone who gives the account's password (or key); to
      // anyone else it reads like any failed sign-in, so names cannot be told apart. A lock is
      // said at once: the password is not even checked while it holds, or guessing would go on.
      if (allowed.code !== 'ACCOUNT_LOCKED' && a.password !== null && !(await verifyPassword(a.password, user.passwordHash))) {
        await this.audit.record('login.failed', { actor: user.name, outcome: 'denied', code: 'AUTH_FAILED', data: { ...base, reason: `wrong password (${allowed.detail})` } });
        return { ok: false, code: 'AUTH_FAILED', message: describeCode('AUTH_FAILED') };
      }
      await this.audit.record('login.refused', { actor: user.name, outcome: 'denied', code: allowed.code, data: { ...base, detail: allowed.detail } });
      return { ok: false, code: allowed.code, message: `${describeCode(allowed.code)} (${allowed.detail})` };
    }
    const firstFactor = a.password === null ? true : await verifyPassword(a.password, user.passwordHash);
    if (!user.totpSealed) {
      // Enrolment follows a first factor checked here (a password) or by the caller (single sign-on).
      if (firstFactor && a.allowEnrolment) {
        return { ok: false, code: 'TOTP_NOT_ENROLLED', message: describeCode('TOTP_NOT_ENROLLED'), enrolment: await this.beginEnrolment(user, base) };
      }
      return this.fail(user, base, 'TOTP_NOT_ENROLLED', 'no TOTP enrolment', firstFactor, now);
    }
    const step = matchTotp(this.vault.openTotp(user.name, user.totpSealed), a.totp.trim(), now, this.opts.totpWindowSteps);
    if (!firstFactor) return this.fail(user, base, 'AUTH_FAILED', 'wrong password', false, now);
    if (step === null) return this.fail(user, base, 'AUTH_FAILED', 'wrong TOTP code', true, now);
    if (!(await this.store.consumeTotpStep(user.name, step))) {
      return this.fail(user, base, 'TOTP_REPLAYED', 'TOTP code already used', true, now);
    }
    // A lock set while this attempt was being checked (by failures racing it) still holds.
    const current = await this.store.getUser(user.name);
    const still = current ? loginAllowed(principalFacts(current), this.clock()) : null;
    if (!still || !still.allow) {
      const code: ErrorCode = still && !still.allow ? still.code : 'AUTH_FAILED';
      await this.audit.record('login.refused', { actor: user.name, outcome: 'denied', code, data: { ...base, detail: 'account changed during sign-in' } });
      return { ok: false, code, message: describeCode(code) };
    }
    await this.store.updateUser(user.name, { failedLogins: 0, lockedUntil: null });
    await this.audit.record('login.ok', { actor: user.name, outcome: 'ok', data: base });
    return { ok: true, user };
  }

  /**
   * A new secret for a person who has none, held (sealed) with the hash of a one-time token until
   * the first code from their authenticator proves they scanned it.
   */
  private async beginEnrolment(user: UserRecord, base: Record<string, unknown>): Promise<EnrolmentOffer> {
    const secret = newTotpSecret();
    const token = `${user.name}.${randomBytes(24).toString('base64url')}`;
    await this.store.updateUser(user.name, {
      enrolment: { tokenHash: sha256(token), secretSealed: this.vault.sealTotp(user.name, secret), expiresAt: this.clock() + ENROLMENT_TTL_MS },
    });
    await this.audit.record('totp.enrolment_started', { actor: user.name, outcome: 'info', data: base });
    return { token, secret, otpauthUri: totpUri(secret, this.opts.totpIssuer ?? 'Portcullis', user.name) };
  }

  /** The first code of a new enrolment: right, and the person is enrolled and signed in; wrong, and it counts as a failed sign-in. */
  async finishEnrolment(token: string, code: string, source: string, context: Record<string, string> = {}): Promise<SignInResult> {
    try {
      return await this.finishEnrolmentChecked(token, code, source, context);
    } catch (err) {
      if (err instanceof StoreUnavailableError) return this.storeDown(token.split('.')[0] ?? '', source, err);
      throw err;
    }
  }

  private async finishEnrolmentChecked(token: string, code: string, source: string, context: Record<string, string>): Promise<SignInResult> {
    const now = this.clock();
    const name = token.slice(0, Math.max(0, token.lastIndexOf('.')));
    const base = { user: name, source, method: 'totp-enrolment', ...context };
    const user = name ? await this.store.getUser(name) : null;
    const e = user?.enrolment;
    if (!user || !e || e.expiresAt <= now || !safeEqual(e.tokenHash, sha256(token))) {
      await this.audit.record('login.failed', { actor: name || 'unknown', outcome: 'denied', code: 'AUTH_FAILED', data: { ...base, reason: 'no such enrolment, or it expired' } });
      return { ok: false, code: 'AUTH_FAILED', message: 'The enrolment expired or is unknown; sign in again to start a new one.' };
    }
    const allowed = loginAllowed(principalFacts(user), now);
    if (!allowed.allow) return { ok: false, code: allowed.code, message: `${describeCode(allowed.code)} (${allowed.detail})` };
    const step = matchTotp(this.vault.openTotp(user.name, e.secretSealed), code.trim(), now, this.opts.totpWindowSteps);
    if (step === null) return this.fail(user, base, 'AUTH_FAILED', 'wrong first TOTP code', true, now);
    if (!(await this.store.consumeTotpStep(user.name, step))) return this.fail(user, base, 'TOTP_REPLAYED', 'TOTP code already used', true, now);
    await this.store.updateUser(user.name, { totpSealed: e.secretSealed, enrolment: null, failedLogins: 0, lockedUntil: null });
    await this.audit.record('totp.enrolled', { actor: user.name, outcome: 'ok', data: base });
    await this.audit.record('login.ok', { actor: user.name, outcome: 'ok', data: base });
    return { ok: true, user: { ...user, totpSealed: e.secretSealed, enrolment: null } };
  }

  private async fail(user: UserRecord, base: Record<string, unknown>, code: ErrorCode, reason: string, firstFactorOk: boolean, now: number): Promise<SignInResult> {
    const failures = await this.store.incrementLoginFailures(user.name);
    await this.audit.record('login.failed', { actor: user.name, outcome: 'denied', code, data: { ...base, reason, consecutiveFailures: failures } });
    const lock = lockAfterFailure(failures, this.opts.lockout, now);
    if (lock.lock && lock.until !== null) {
      await this.store.updateUser(user.name, { lockedUntil: lock.until, failedLogins: 0 });
      await this.audit.record('account.locked', {
        actor: 'portcullis', outcome: 'denied', code: 'ACCOUNT_LOCKED',
        data: { user: user.name, failures, until: new Date(lock.until).toISOString() },
      });
      return { ok: false, code: 'ACCOUNT_LOCKED', message: `${describeCode('ACCOUNT_LOCKED')} (until ${new Date(lock.until).toISOString()})` };
    }
    const shown: ErrorCode = firstFactorOk && code !== 'AUTH_FAILED' ? code : 'AUTH_FAILED';
    return { ok: false, code: shown, message: describeCode(shown) };
  }
}
