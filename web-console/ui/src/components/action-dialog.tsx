import type { ComponentChildren } from 'preact';
import { useId, useState } from 'preact/hooks';
import { useI18n } from '../i18n/i18n.js';
import { Field } from './form-field.js';
import { ModalDialog } from './modal-dialog.js';
import { ErrorNote } from './status-views.js';

export interface ReasonSpec {
  label: string;
  hint?: string;
  required: boolean;
  maxLength: number;
}

/**
 * A button that asks before it acts (and for a reason when the action needs one), then runs the
 * call and shows its refusal in place: cancel, deny, revoke, kill, disable…
 */
export function ActionButton({ label, title, body, confirmLabel, danger, reason, onConfirm, onDone, small = true, disabled }: {
  label: string;
  title: string;
  body?: ComponentChildren;
  confirmLabel: string;
  danger?: boolean;
  reason?: ReasonSpec;
  onConfirm: (reason: string) => Promise<unknown>;
  onDone?: () => void;
  small?: boolean;
  disabled?: boolean;
}) {
  const [open, setOpen] = useState(false);
  return (
    <>
      <button type="button" class={`btn${small ? ' btn-small' : ''}${danger ? ' btn-danger' : ''}`} onClick={() => setOpen(true)} disabled={disabled}>
        {label}
      </button>
      {open && (
        <ConfirmDialog title={title} body={body} confirmLabel={confirmLabel} danger={danger} reason={reason} onConfirm={onConfirm}
          onClose={(done) => { setOpen(false); if (done) onDone?.(); }} />
      )}
    </>
  );
}

export function ConfirmDialog({ title, body, confirmLabel, danger, reason, onConfirm, onClose }: {
  title: string; body?: ComponentChildren; confirmLabel: string; danger?: boolean | undefined; reason?: ReasonSpec | undefined;
  onConfirm: (reason: string) => Promise<unknown>; onClose: (done: boolean) => void;
}) {
  const { t } = useI18n();
  const id = useId();
  const [text, setText] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [missing, setMissing] = useState(false);

  async function submit(e: Event): Promise<void> {
    e.preventDefault();
    if (reason?.required && !text.trim()) {
      setMissing(true);
      return;
    }
    setBusy(true);
    setError(null);
    try {
      await onConfirm(text.trim());
      onClose(true);
    } catch (err) {
      setError(err);
      setBusy(false);
    }
  }

  return (
    <ModalDialog title={title} onClose={() => onClose(false)}>
      <form class="form" onSubmit={(e) => void submit(e)}>
        {body && <div class="dialog-text">{body}</div>}
        {reason && (
          <Field id={id} label={reason.label} hint={reason.hint} required={reason.required} error={missing ? t('form.reasonRequired') : null}>
            <textarea id={id} rows={3} maxLength={reason.maxLength} required={reason.required} value={text}
              aria-invalid={missing || undefined} aria-describedby={missing ? `${id}-error` : reason.hint ? `${id}-hint` : undefined}
              onInput={(e) => { setText(e.currentTarget.value); setMissing(false); }} />
          </Field>
        )}
        {error !== null && <ErrorNote error={error} />}
        <div class="actions">
          <button type="submit" class={`btn ${danger ? 'btn-danger' : 'btn-primary'}`} disabled={busy}>
            {busy ? t('common.working') : confirmLabel}
          </button>
          <button type="button" class="btn" onClick={() => onClose(false)}>
            {t('common.cancel')}
          </button>
        </div>
      </form>
    </ModalDialog>
  );
}
