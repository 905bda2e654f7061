import type { Grant } from '../../api/api-types.js';
import { PageHeader } from '../../components/page-header.js';
import { Empty, ResourceView } from '../../components/status-views.js';
import { TimeRange } from '../../components/time-range.js';
import { useResource } from '../../components/use-resource.js';
import { useI18n } from '../../i18n/i18n.js';
import { useLiveEvents } from '../../live/use-live-events.js';
import { href } from '../../nav/hash-router.js';
import { grantState } from './grant-state.js';

/** One card per grant the person may use right now: Connect opens the terminal (SSH) or the desktop (VNC, RDP). */
export default function ConnectPage() {
  const i18n = useI18n();
  const { t } = i18n;
  const res = useResource<{ grants: Grant[] }>('/api/grants?current=true');
  useLiveEvents(['request'], () => res.reload());
  const now = Date.now();

  return (
    <section class="page" data-page="connect">
      <PageHeader title={t('nav.connect')} intro={t('connect.intro')} />
      <ResourceView {...res}>
        {({ grants }) => {
          const current = grants.filter((g) => grantState(g, now) === 'current');
          const upcoming = grants.filter((g) => grantState(g, now) === 'upcoming');
          return (
            <>
              {current.length === 0 ? (
                <Empty>
                  <p>{t('connect.empty')}</p>
                  {upcoming.length > 0 && <p class="muted">{t('connect.upcoming', { n: upcoming.length, time: i18n.time(upcoming[0]?.from) })}</p>}
                  <a class="btn" href={href('/requests')}>{t('nav.myRequests')}</a>
                </Empty>
              ) : (
                <ul class="card-grid">
                  {current.map((g) => (
                    <li key={g.id} class="card grant-card" data-grant={g.id}>
                      <h2 class="card-title">{g.device}</h2>
                      <p class="small">{g.protocol.toUpperCase()} · {t('request.profileIs', { profile: g.profile ?? t('common.none') })}</p>
                      <p class="small">{t('connect.until', { time: i18n.time(g.until) })}</p>
                      <p class="muted small"><TimeRange from={g.from} until={g.until} /></p>
                      {g.protocol === 'ssh' ? (
                        <a class="btn btn-primary" href={href(`/connect/${encodeURIComponent(g.device)}`)} aria-label={t('connect.connectTo', { device: g.device })}>
                          {t('connect.connect')}
                        </a>
                      ) : (
                        <a class="btn btn-primary" href={href(`/connect/${encodeURIComponent(g.device)}/${encodeURIComponent(g.protocol)}`)}
                          aria-label={t('connect.openDesktopOf', { device: g.device, protocol: g.protocol.toUpperCase() })}>
                          {t('connect.openDesktop')}
                        </a>
                      )}
                    </li>
                  ))}
                </ul>
              )}
            </>
          );
        }}
      </ResourceView>
    </section>
  );
}
