import { useEffect, useMemo } from 'preact/hooks';
import { authStore, restoreSession } from './auth/auth-state.js';
import { useIdleWatch } from './auth/idle-watch.js';
import { SignInPage } from './auth/sign-in-page.js';
import { Loading } from './components/status-views.js';
import { I18nContext, localeStore, makeI18n } from './i18n/i18n.js';
import { AppLayout } from './nav/app-layout.js';
import { useStore } from './state/store.js';

export function App() {
  const locale = useStore(localeStore);
  const auth = useStore(authStore);
  const i18n = useMemo(() => makeI18n(locale), [locale]);

  useEffect(() => {
    document.documentElement.lang = locale;
    document.title = i18n.t('app.name');
  }, [locale, i18n]);

  useEffect(() => {
    void restoreSession();
  }, []);
  useIdleWatch(auth.me?.idleTimeoutSeconds ?? null);

  return (
    <I18nContext.Provider value={i18n}>
      {!auth.checked ? (
        <main class="splash"><Loading /></main>
      ) : auth.me ? (
        <AppLayout me={auth.me} />
      ) : (
        <SignInPage reason={auth.signedOutReason} />
      )}
    </I18nContext.Provider>
  );
}
