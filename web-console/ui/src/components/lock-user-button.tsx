import { useId, useState } from 'preact/hooks';
import { api } from '../api/api-client.js';
import { useI18n } from '../i18n/i18n.js';
import { Field } from './form-field.js';
import { ModalDialog } from './modal-dialog.js';
import { ErrorNote } from './status-views.js';

/** Lock an account now (R-A.5b): it cannot sign in, and its live sessions end within a second. */
export function LockUserButton({ user, onDone }: { user: string; onDone?: () => void }) {
  const { t } = useI18n();
  const ids = { minutes: useId(), reason: useId() };
  const [open, setOpen] = useState(false);
  const [minutes, setMinutes] = useState(60);
  const [reason, setReason] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [missing, setMissing] = useState(false);

  async function submit(e: Event): Promise<void> {
    e.preventDefault();
    if (!reason.trim()) {
      setMissing(true);
      return;
    }
    setBusy(true);
    setError(null);
    try {
      await api.post(`/api/users/${encodeURIComponent(user)}/lock`, { minutes, reason: reason.trim() });
      setOpen(false);
      onDone?.();
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  }

  return (
    <>
      <button type="button" class="btn btn-small btn-danger" onClick={() => setOpen(true)}>{t('lock.button')}</button>
      {open && (
        <ModalDialog title={t('lock.title', { user })} onClose={() => setOpen(false)}>
          <form class="form" onSubmit={(e) => void submit(e)}>
            <p class="dialog-text">{t('lock.body')}</p>
            <Field id={ids.minutes} label={t('lock.minutes')} required>
              <input id={ids.minutes} type="number" min={1} max={525600} value={minutes} onInput={(e) => setMinutes(Number(e.currentTarget.value))} />
            </Field>
            <Field id={ids.reason} label={t('common.reason')} required error={missing ? t('form.reasonRequired') : null}>
              <textarea id={ids.reason} rows={2} maxLength={500} value={reason} aria-invalid={missing || undefined}
                aria-describedby={missing ? `${ids.reason}-error` : undefined}
                onInput={(e) => { setReason(e.currentTarget.value); setMissing(false); }} />
            </Field>
            {error !== null && <ErrorNote error={error} />}
            <div class="actions">
              <button type="submit" class="btn btn-danger" disabled={busy}>{busy ? t('common.working') : t('lock.confirm')}</button>
              <button type="button" class="btn" onClick={() => setOpen(false)}>{t('common.cancel')}</button>
            </div>
          </form>
        </ModalDialog>
      )}
    </>
  );
}
