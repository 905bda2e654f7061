import { useState } from 'preact/hooks';
import type { Session } from '../../api/api-types.js';
import { authStore } from '../../auth/auth-state.js';
import { KillSessionButton } from '../../components/kill-session-button.js';
import { LevelBadge } from '../../components/badges.js';
import { PageHeader } from '../../components/page-header.js';
import { Notice } from '../../components/status-views.js';
import { useResource } from '../../components/use-resource.js';
import type { DesktopState } from '../../desktop/desktop-session.js';
import { DesktopWatch } from '../../desktop/desktop-watch.js';
import { useI18n } from '../../i18n/i18n.js';
import { href } from '../../nav/hash-router.js';
import { allowed, type PageProps } from '../../nav/routes.js';
import { useStore } from '../../state/store.js';

/** Security watches a live VNC/RDP session read-only, and can kill it (R-A.5b). */
export default function DesktopWatchPage({ params }: PageProps) {
  const i18n = useI18n();
  const { t } = i18n;
  const id = params.id ?? '';
  const res = useResource<{ sessions: Session[] }>('/api/sessions?open=true');
  const s = res.data?.sessions.find((x) => x.id === id);
  const [state, setState] = useState<DesktopState>('loading');
  const [killed, setKilled] = useState(false);
  const roles = useStore(authStore).me?.user.roles ?? [];

  return (
    <section class="page page-terminal page-desktop" data-page="desktop-watch">
      <PageHeader title={s ? t('watch.titleOf', { user: s.user, device: s.device }) : t('nav.desktopWatch')}
        intro={s ? <>{t('watch.desktopIntro')} {s.protocol.toUpperCase()} · <LevelBadge level={s.deviceLevel} /> · {t('session.started')}: {i18n.time(s.startedAt)}
          {s.grantEnds ? ` · ${t('session.grantEnds')}: ${i18n.time(s.grantEnds)}` : ''}</> : t('watch.desktopIntro')}>
        <a class="btn btn-small" href={href('/sessions')}>{t('watch.back')}</a>
        {s && state !== 'ended' && !killed && (
          <KillSessionButton session={id} user={s.user} device={s.device} canRevoke={allowed(roles, 'grant.revoke')} canLock={allowed(roles, 'user.lock')}
            onDone={() => setKilled(true)} />
        )}
      </PageHeader>
      <p class="hint">{t('watch.desktopReadOnly')}</p>
      {killed && state !== 'ended' && <Notice kind="info">{t('watch.killRequested')}</Notice>}
      <DesktopWatch session={id} onState={(st) => setState(st)} />
    </section>
  );
}
