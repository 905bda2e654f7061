import type { ComponentChildren } from 'preact';
import { failureText } from '../i18n/failure-text.js';
import { useI18n } from '../i18n/i18n.js';

export function Loading({ label }: { label?: string }) {
  const { t } = useI18n();
  return (
    <p class="state state-loading" role="status">
      <span class="spinner" aria-hidden="true" />
      {label ?? t('common.loading')}
    </p>
  );
}

export function Empty({ children }: { children: ComponentChildren }) {
  return <div class="state state-empty">{children}</div>;
}

/** A refusal or failure in the reader's language, with what the server added, and a retry when it helps. */
export function ErrorNote({ error, onRetry }: { error: unknown; onRetry?: () => void }) {
  const i18n = useI18n();
  const { message, detail } = failureText(error, i18n);
  return (
    <div class="note note-error" role="alert">
      <p class="note-title">{message}</p>
      {detail && <p class="note-detail">{detail}</p>}
      {onRetry && (
        <button type="button" class="btn btn-small" onClick={onRetry}>
          {i18n.t('common.retry')}
        </button>
      )}
    </div>
  );
}

export function Notice({ kind = 'info', children }: { kind?: 'info' | 'success' | 'warning'; children: ComponentChildren }) {
  return (
    <div class={`note note-${kind}`} role={kind === 'warning' ? 'alert' : 'status'}>
      {children}
    </div>
  );
}

/** Loading, failed or loaded: the three states of every list, in one place. */
export function ResourceView<T>({ data, error, loading, reload, children }: {
  data: T | null; error: unknown; loading: boolean; reload: () => void; children: (data: T) => ComponentChildren;
}) {
  if (loading) return <Loading />;
  if (error && data === null) return <ErrorNote error={error} onRetry={reload} />;
  if (data === null) return <Loading />;
  return (
    <>
      {error ? <ErrorNote error={error} onRetry={reload} /> : null}
      {children(data)}
    </>
  );
}
