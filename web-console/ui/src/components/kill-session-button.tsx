import { useId, useState } from 'preact/hooks';
import { api } from '../api/api-client.js';
import { useI18n } from '../i18n/i18n.js';
import { Field } from './form-field.js';
import { ModalDialog } from './modal-dialog.js';
import { ErrorNote } from './status-views.js';

/** Lock lengths offered with a kill, in minutes: an hour to a year (security unlocks earlier by hand). */
const LOCK_CHOICES = [60, 24 * 60, 7 * 24 * 60, 30 * 24 * 60, 365 * 24 * 60] as const;

/**
 * Kill a live session (R-A.5b), and if need be make it stick: also revoke the grant it runs on
 * (no new session on it) and lock the account (no sign-in until the lock ends or is lifted). The
 * reason is shown to the vendor in their terminal or desktop, and each part is audited.
 */
export function KillSessionButton({ session, user, device, canRevoke, canLock, onDone }: {
  session: string;
  user: string;
  device: string;
  canRevoke: boolean;
  canLock: boolean;
  onDone?: (parts: { revoked: boolean; locked: boolean }) => void;
}) {
  const { t } = useI18n();
  const ids = { reason: useId(), lockFor: useId() };
  const [open, setOpen] = useState(false);
  const [reason, setReason] = useState('');
  const [revoke, setRevoke] = useState(false);
  const [lock, setLock] = useState(false);
  const [lockMinutes, setLockMinutes] = useState<number>(24 * 60);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [missing, setMissing] = useState(false);

  function close(): void {
    setOpen(false);
    setError(null);
    setMissing(false);
  }

  async function submit(e: Event): Promise<void> {
    e.preventDefault();
    if (!reason.trim()) {
      setMissing(true);
      return;
    }
    setBusy(true);
    setError(null);
    try {
      await api.post(`/api/sessions/${encodeURIComponent(session)}/kill`, {
        reason: reason.trim(), revokeGrant: revoke, ...(lock ? { lockMinutes } : {}),
      });
      close();
      onDone?.({ revoked: revoke, locked: lock });
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  }

  const lockLabel = (m: number): string => (m < 24 * 60 ? t('kill.lockHours', { n: m / 60 }) : m < 365 * 24 * 60 ? t('kill.lockDays', { n: m / (24 * 60) }) : t('kill.lockYear'));

  return (
    <>
      <button type="button" class="btn btn-small btn-danger" onClick={() => setOpen(true)}>{t('sessions.kill')}</button>
      {open && (
        <ModalDialog title={t('sessions.killTitle', { user, device })} onClose={close}>
          <form class="form kill-form" onSubmit={(e) => void submit(e)}>
            <p class="dialog-text">{t('sessions.killBody')}</p>
            <Field id={ids.reason} label={t('common.reason')} hint={t('kill.reasonHint')} required error={missing ? t('form.reasonRequired') : null}>
              <textarea id={ids.reason} rows={3} maxLength={500} required value={reason} aria-invalid={missing || undefined}
                aria-describedby={missing ? `${ids.reason}-error` : `${ids.reason}-hint`}
                onInput={(e) => { setReason(e.currentTarget.value); setMissing(false); }} />
            </Field>
            {canRevoke && (
              <>
                <label class="choice">
                  <input type="checkbox" name="revokeGrant" checked={revoke} onChange={(e) => setRevoke(e.currentTarget.checked)} />
                  {t('kill.alsoRevoke')}
                </label>
                <p class="hint">{t('kill.alsoRevokeHint')}</p>
              </>
            )}
            {canLock && (
              <>
                <label class="choice">
                  <input type="checkbox" name="lockAccount" checked={lock} onChange={(e) => setLock(e.currentTarget.checked)} />
                  {t('kill.alsoLock', { user })}
                </label>
                {lock && (
                  <Field id={ids.lockFor} label={t('kill.lockFor')}>
                    <select id={ids.lockFor} value={String(lockMinutes)} onChange={(e) => setLockMinutes(Number(e.currentTarget.value))}>
                      {LOCK_CHOICES.map((m) => <option key={m} value={String(m)}>{lockLabel(m)}</option>)}
                    </select>
                  </Field>
                )}
                <p class="hint">{t('kill.alsoLockHint')}</p>
              </>
            )}
            {error !== null && <ErrorNote error={error} />}
            <div class="actions">
              <button type="submit" class="btn btn-danger" disabled={busy}>{busy ? t('common.working') : t('sessions.kill')}</button>
              <button type="button" class="btn" onClick={close}>{t('common.cancel')}</button>
            </div>
          </form>
        </ModalDialog>
      )}
    </>
  );
}
