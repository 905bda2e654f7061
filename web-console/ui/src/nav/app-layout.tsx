import type { ComponentType } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import type { Me } from '../api/api-types.js';
import { signOut } from '../auth/auth-state.js';
import { ErrorNote, Loading } from '../components/status-views.js';
import { useI18n } from '../i18n/i18n.js';
import { LanguageMenu } from '../i18n/language-menu.js';
import { useUnreadAlerts } from '../live/use-unread-alerts.js';
import { href, match, navigate, routeQuery, usePath } from './hash-router.js';
import { NAV_GROUPS, ROUTES, allowed, homePath, type PageProps, type RouteDef } from './routes.js';

const loaded = new Map<RouteDef, ComponentType<PageProps>>();

function findRoute(path: string): { route: RouteDef; params: Record<string, string> } | null {
  const bare = path.split('?')[0] ?? path;
  for (const route of ROUTES) {
    const params = match(route.pattern, bare);
    if (params) return { route, params };
  }
  return null;
}

export function AppLayout({ me }: { me: Me }) {
  const { t, name } = useI18n();
  const path = usePath();
  const roles = me.user.roles;
  const found = findRoute(path);
  const main = useRef<HTMLElement>(null);
  const [busy, setBusy] = useState(false);

  useEffect(() => {
    if (path === '/' || path === '') navigate(homePath(roles));
  }, [path, roles]);

  // A new page moves focus to its content, so keyboard and screen-reader users start there.
  useEffect(() => {
    main.current?.focus({ preventScroll: true });
    window.scrollTo(0, 0);
  }, [found?.route.pattern]);

  const alerts = useUnreadAlerts(allowed(roles, 'alert.read'), path);
  // The alert page is offered to whom [alerts.routes] gives some kind (security and admin by default).
  const showAlerts = alerts ? alerts.kinds.length > 0 : roles.includes('security') || roles.includes('admin');
  const visibleGroups = NAV_GROUPS.map((g) => ({ ...g, routes: ROUTES.filter((r) => r.nav === g.id && allowed(roles, r.access) && (r.pattern !== '/alerts' || showAlerts)) }))
    .filter((g) => g.routes.length > 0);
  const active = found?.route;
  // A sub-page (terminal, watch, replay) lights up the list it belongs to.
  const isActive = (r: RouteDef): boolean => r === active || (!!active && !active.nav && active.pattern.startsWith(`${r.pattern}/`));

  return (
    <div class="app">
      <a class="skip-link" href="#main" onClick={(e) => { e.preventDefault(); main.current?.focus(); }}>{t('nav.skip')}</a>
      <header class="topbar">
        <a class="brand" href={href(homePath(roles))}>
          <span class="brand-mark" aria-hidden="true" />
          {t('app.name')}
        </a>
        <span class="toolbar-spacer" />
        <span class="whoami">
          <span class="whoami-name">{me.user.name}</span>
          <span class="whoami-roles">{roles.map((r) => name('role', r)).join(' · ')}</span>
        </span>
        <LanguageMenu />
        <button type="button" class="btn btn-small" disabled={busy} onClick={() => { setBusy(true); void signOut().finally(() => setBusy(false)); }}>
          {t('nav.signOut')}
        </button>
      </header>
      <div class="frame">
        <nav class="sidenav" aria-label={t('nav.label')}>
          {visibleGroups.map((g) => (
            <div class="nav-group" key={g.id}>
              <h2 class="nav-group-title">{t(g.label)}</h2>
              <ul>
                {g.routes.map((r) => (
                  <li key={r.pattern}>
                    <a href={href(r.pattern)} class={isActive(r) ? 'active' : ''} aria-current={r === active ? 'page' : undefined}>
                      {t(r.title)}
                      {r.pattern === '/alerts' && alerts && alerts.unread > 0 && (
                        <span class="nav-count" data-unread-alerts={alerts.unread} title={t('nav.unreadAlerts', { n: alerts.unread })}
                          aria-label={t('nav.unreadAlerts', { n: alerts.unread })}>
                          {alerts.capped ? '99+' : alerts.unread}
                        </span>
                      )}
                    </a>
                  </li>
                ))}
              </ul>
            </div>
          ))}
        </nav>
        <main id="main" class="content" ref={main} tabIndex={-1}>
          {!found ? (
            path === '/' ? <Loading /> : <NotFound />
          ) : !allowed(roles, found.route.access) ? (
            <NotAllowed />
          ) : (
            <PageLoader route={found.route} params={found.params} query={routeQuery(path)} />
          )}
        </main>
      </div>
    </div>
  );
}

function PageLoader({ route, params, query }: { route: RouteDef; params: Record<string, string>; query: URLSearchParams }) {
  const [Page, setPage] = useState<ComponentType<PageProps> | null>(() => loaded.get(route) ?? null);
  const [error, setError] = useState<unknown>(null);
  const [attempt, setAttempt] = useState(0);

  useEffect(() => {
    const cached = loaded.get(route);
    if (cached) {
      setPage(() => cached);
      return undefined;
    }
    let live = true;
    setPage(null);
    setError(null);
    route.load().then(
      (mod) => {
        loaded.set(route, mod.default);
        if (live) setPage(() => mod.default);
      },
      (err: unknown) => live && setError(err),
    );
    return () => {
      live = false;
    };
  }, [route, attempt]);

  if (error) return <ErrorNote error={error} onRetry={() => setAttempt((n) => n + 1)} />;
  if (!Page) return <Loading />;
  // Keyed by route: a different page starts with fresh state.
  return <Page key={route.pattern} params={params} query={query} />;
}

function NotAllowed() {
  const { t } = useI18n();
  return (
    <section class="page" data-page="not-allowed">
      <h1>{t('page.notAllowed.title')}</h1>
      <p>{t('page.notAllowed.body')}</p>
      <p><a href="#/">{t('page.backHome')}</a></p>
    </section>
  );
}

function NotFound() {
  const { t } = useI18n();
  return (
    <section class="page" data-page="not-found">
      <h1>{t('page.notFound.title')}</h1>
      <p>{t('page.notFound.body')}</p>
      <p><a href="#/">{t('page.backHome')}</a></p>
    </section>
  );
}
