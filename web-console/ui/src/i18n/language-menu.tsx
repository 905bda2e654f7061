import { chooseLocale } from '../auth/auth-state.js';
import { useId } from 'preact/hooks';
import { LOCALES, isLocale, useI18n } from './i18n.js';

/** On every page, signed in or not; the choice is kept by the account and by this browser. */
export function LanguageMenu() {
  const { locale, t } = useI18n();
  const id = useId();
  return (
    <div class="language-menu">
      <label for={id}>{t('language.label')}</label>
      <select
        id={id}
        value={locale}
        onChange={(e) => {
          const v = e.currentTarget.value;
          if (isLocale(v)) chooseLocale(v);
        }}
      >
        {LOCALES.map((l) => (
          <option key={l.id} value={l.id} lang={l.id}>
            {l.label}
          </option>
        ))}
      </select>
    </div>
  );
}
