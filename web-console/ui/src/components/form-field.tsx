import type { ComponentChildren } from 'preact';

/** A label above its control, with an optional hint and error tied to it by aria-describedby. */
export function Field({ id, label, hint, error, required, children }: {
  id: string; label: string; hint?: ComponentChildren; error?: string | null; required?: boolean; children: ComponentChildren;
}) {
  return (
    <div class={`field${error ? ' field-invalid' : ''}`}>
      <label for={id}>
        {label}
        {required && <span class="required" aria-hidden="true"> *</span>}
      </label>
      {children}
      {hint && <p class="hint" id={`${id}-hint`}>{hint}</p>}
      {error && <p class="field-error" id={`${id}-error`}>{error}</p>}
    </div>
  );
}

/** The aria-describedby value for a control inside <Field>. */
export function describedBy(id: string, hint: boolean, error: boolean): string | undefined {
  const ids = [hint ? `${id}-hint` : null, error ? `${id}-error` : null].filter(Boolean);
  return ids.length ? ids.join(' ') : undefined;
}
