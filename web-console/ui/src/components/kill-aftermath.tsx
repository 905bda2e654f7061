import { useI18n } from '../i18n/i18n.js';

/** What a kill did besides ending the session, as the gateway's `end` message says it. */
export interface KillInfo {
  reason: string;
  grantRevoked: boolean;
  /** ISO time, or null when the account was not locked. */
  lockedUntil: string | null;
}

/** The `kill` of an `end` message, if it is one (anything else is ignored). */
export function killOf(v: unknown): KillInfo | null {
  if (!v || typeof v !== 'object') return null;
  const k = v as Record<string, unknown>;
  if (typeof k.reason !== 'string') return null;
  return { reason: k.reason, grantRevoked: k.grantRevoked === true, lockedUntil: typeof k.lockedUntil === 'string' ? k.lockedUntil : null };
}

/** After a kill that revoked the grant or locked the account, connecting again cannot work: it is not offered. */
export function killBarsReconnect(k: KillInfo | null | undefined): boolean {
  return Boolean(k && (k.grantRevoked || k.lockedUntil));
}

/** The lines under a killed session's reason: the grant is gone, the account is locked until … */
export function KillAftermath({ kill }: { kill: KillInfo | null | undefined }) {
  const i18n = useI18n();
  const { t } = i18n;
  if (!kill) return null;
  return (
    <>
      {kill.grantRevoked && <p class="session-end-detail" data-kill="grant-revoked">{t('kill.grantRevoked')}</p>}
      {kill.lockedUntil && <p class="session-end-detail" data-kill="account-locked">{t('kill.accountLocked', { time: i18n.time(kill.lockedUntil) })}</p>}
    </>
  );
}
