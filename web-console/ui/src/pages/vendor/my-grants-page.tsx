import type { Grant } from '../../api/api-types.js';
import { StatusBadge } from '../../components/badges.js';
import { PageHeader } from '../../components/page-header.js';
import { Empty, ResourceView } from '../../components/status-views.js';
import { TimeRange } from '../../components/time-range.js';
import { transferText } from '../../components/transfer-text.js';
import { useResource } from '../../components/use-resource.js';
import { useI18n } from '../../i18n/i18n.js';
import { useLiveEvents } from '../../live/use-live-events.js';
import { href } from '../../nav/hash-router.js';
import { grantState } from './grant-state.js';

export default function MyGrantsPage() {
  const i18n = useI18n();
  const { t } = i18n;
  const res = useResource<{ grants: Grant[] }>('/api/grants');
  useLiveEvents(['request'], () => res.reload());
  const now = Date.now();

  return (
    <section class="page" data-page="my-grants">
      <PageHeader title={t('nav.myGrants')} intro={t('myGrants.intro')} />
      <ResourceView {...res}>
        {({ grants }) => grants.length === 0 ? (
          <Empty><p>{t('myGrants.empty')}</p><a class="btn btn-primary" href={href('/requests/new')}>{t('nav.newRequest')}</a></Empty>
        ) : (
          <div class="table-wrap">
            <table class="table">
              <caption class="sr-only">{t('nav.myGrants')}</caption>
              <thead>
                <tr>
                  <th scope="col">{t('grant.device')}</th>
                  <th scope="col">{t('request.protocol')}</th>
                  <th scope="col">{t('request.window')}</th>
                  <th scope="col">{t('request.profile')}</th>
                  <th scope="col">{t('request.status')}</th>
                  <th scope="col"><span class="sr-only">{t('common.actions')}</span></th>
                </tr>
              </thead>
              <tbody>
                {[...grants].sort((a, b) => Date.parse(b.until) - Date.parse(a.until)).map((g) => {
                  const state = grantState(g, now);
                  return (
                    <tr key={g.id}>
                      <td><strong>{g.device}</strong><div class="muted small"><code>{g.id}</code>{g.request && <> · <code>{g.request}</code></>}</div></td>
                      <td>{g.protocol.toUpperCase()}</td>
                      <td><TimeRange from={g.from} until={g.until} /></td>
                      <td>{g.profile ?? t('common.none')}{(g.allowUpload || g.allowDownload) && <div class="small">{transferText(t, g.allowUpload, g.allowDownload)}</div>}</td>
                      <td>
                        <StatusBadge list="grantState" value={state} />
                        {g.revokedAt && <div class="muted small">{t('grant.revokedBy', { name: g.revokedBy ?? '?', time: i18n.time(g.revokedAt) })}</div>}
                      </td>
                      <td class="cell-actions">
                        {state === 'current' && g.protocol === 'ssh' && (
                          <a class="btn btn-small btn-primary" href={href(`/connect/${encodeURIComponent(g.device)}`)}>{t('connect.connect')}</a>
                        )}
                        {state === 'current' && (g.protocol === 'vnc' || g.protocol === 'rdp') && (
                          <a class="btn btn-small btn-primary" href={href(`/connect/${encodeURIComponent(g.device)}/${g.protocol}`)}
                            aria-label={t('connect.openDesktopOf', { device: g.device, protocol: g.protocol.toUpperCase() })}>{t('connect.openDesktop')}</a>
                        )}
                      </td>
                    </tr>
                  );
                })}
              </tbody>
            </table>
          </div>
        )}
      </ResourceView>
    </section>
  );
}
