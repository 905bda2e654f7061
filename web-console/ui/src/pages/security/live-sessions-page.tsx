import { useEffect, useState } from 'preact/hooks';
import type { Session } from '../../api/api-types.js';
import { authStore } from '../../auth/auth-state.js';
import { KillSessionButton } from '../../components/kill-session-button.js';
import { LevelBadge } from '../../components/badges.js';
import { LockUserButton } from '../../components/lock-user-button.js';
import { PageHeader } from '../../components/page-header.js';
import { Empty, Notice, ResourceView } from '../../components/status-views.js';
import { useResource } from '../../components/use-resource.js';
import { useI18n } from '../../i18n/i18n.js';
import { LiveIndicator } from '../../live/live-indicator.js';
import { useLiveEvents } from '../../live/use-live-events.js';
import { href } from '../../nav/hash-router.js';
import { allowed } from '../../nav/routes.js';
import { useStore } from '../../state/store.js';

/** Byte counters move between events; a slow refresh keeps them honest while the page is in view. */
const REFRESH_MS = 10_000;

export default function LiveSessionsPage() {
  const i18n = useI18n();
  const { t } = i18n;
  const roles = useStore(authStore).me?.user.roles ?? [];
  const res = useResource<{ sessions: Session[] }>('/api/sessions?open=true');
  const [notice, setNotice] = useState<string | null>(null);
  const live = useLiveEvents(['session'], () => res.reload());
  useEffect(() => {
    const timer = setInterval(() => {
      if (document.visibilityState === 'visible') res.reload();
    }, REFRESH_MS);
    return () => clearInterval(timer);
  }, []);

  return (
    <section class="page" data-page="live-sessions">
      <PageHeader title={t('nav.liveSessions')} intro={t('sessions.intro')}>
        <LiveIndicator state={live} />
      </PageHeader>
      {notice && <Notice kind="success">{notice}</Notice>}
      <ResourceView {...res}>
        {({ sessions }) => sessions.length === 0 ? <Empty><p>{t('sessions.empty')}</p></Empty> : (
          <div class="table-wrap">
            <table class="table">
              <caption class="sr-only">{t('nav.liveSessions')}</caption>
              <thead>
                <tr>
                  <th scope="col">{t('session.user')}</th>
                  <th scope="col">{t('grant.device')}</th>
                  <th scope="col">{t('request.protocol')}</th>
                  <th scope="col">{t('session.node')}</th>
                  <th scope="col">{t('session.started')}</th>
                  <th scope="col">{t('session.grantEnds')}</th>
                  <th scope="col">{t('session.bytes')}</th>
                  <th scope="col"><span class="sr-only">{t('common.actions')}</span></th>
                </tr>
              </thead>
              <tbody>
                {sessions.map((s) => (
                  <tr key={s.id} data-session={s.id}>
                    <td><strong>{s.user}</strong><div class="muted small">{s.client}</div></td>
                    <td>{s.device} <LevelBadge level={s.deviceLevel} /></td>
                    <td>{s.protocol.toUpperCase()}<div class="muted small">{i18n.name('via', s.via)}</div></td>
                    <td>{s.node}{!s.nodeAlive && <div class="badge badge-bad">{t('session.nodeGone')}</div>}</td>
                    <td>{i18n.time(s.startedAt)}</td>
                    <td>{s.grantEnds ? i18n.time(s.grantEnds) : t('common.none')}</td>
                    <td class="num">{t('session.bytesInOut', { in: i18n.bytes(s.bytesIn), out: i18n.bytes(s.bytesOut) })}</td>
                    <td class="cell-actions">
                      {s.killRequested ? <span class="badge badge-warn">{t('sessions.killing')}</span> : (
                        <>
                          {allowed(roles, 'session.watch') && (
                            <a class="btn btn-small btn-primary" href={href(`/sessions/${encodeURIComponent(s.id)}/${s.kind === 'desktop' ? 'desktop' : 'watch'}`)}
                              aria-label={t('sessions.watchLabel', { user: s.user, device: s.device })}>{t('sessions.watch')}</a>
                          )}
                          {allowed(roles, 'session.kill') && (
                            <KillSessionButton session={s.id} user={s.user} device={s.device}
                              canRevoke={allowed(roles, 'grant.revoke')} canLock={allowed(roles, 'user.lock')}
                              onDone={(parts) => {
                                const also = [parts.revoked ? t('kill.doneRevoked') : '', parts.locked ? t('kill.doneLocked', { user: s.user }) : ''].filter(Boolean).join(' ');
                                setNotice(`${t('sessions.killed', { user: s.user, device: s.device })}${also ? ` ${also}` : ''}`);
                                res.reload();
                              }} />
                          )}
                          {allowed(roles, 'user.lock') && <LockUserButton user={s.user} onDone={() => { setNotice(t('lock.done', { user: s.user })); res.reload(); }} />}
                        </>
                      )}
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
      </ResourceView>
    </section>
  );
}
