import { api } from '../../api/api-client.js';
import type { AccessRequest } from '../../api/api-types.js';
import { ActionButton } from '../../components/action-dialog.js';
import { ApprovalList, RequestChanges, StillNeeded } from '../../components/approval-needs.js';
import { LevelBadge, StatusBadge } from '../../components/badges.js';
import { PageHeader } from '../../components/page-header.js';
import { Empty, Notice, ResourceView } from '../../components/status-views.js';
import { TimeRange } from '../../components/time-range.js';
import { transferText } from '../../components/transfer-text.js';
import { useResource } from '../../components/use-resource.js';
import { useI18n } from '../../i18n/i18n.js';
import { LiveIndicator } from '../../live/live-indicator.js';
import { useLiveEvents } from '../../live/use-live-events.js';
import { href } from '../../nav/hash-router.js';
import type { PageProps } from '../../nav/routes.js';

export default function MyRequestsPage({ query }: PageProps) {
  const i18n = useI18n();
  const { t } = i18n;
  const res = useResource<{ requests: AccessRequest[] }>('/api/requests?mine=true');
  const live = useLiveEvents(['request'], () => res.reload());
  const created = query.get('created');

  return (
    <section class="page" data-page="my-requests">
      <PageHeader title={t('nav.myRequests')} intro={t('myRequests.intro')}>
        <LiveIndicator state={live} />
        <a class="btn btn-primary" href={href('/requests/new')}>{t('nav.newRequest')}</a>
      </PageHeader>
      {created && <Notice kind="success">{t('newRequest.sent', { id: created })}</Notice>}
      <ResourceView {...res}>
        {({ requests }) => requests.length === 0 ? (
          <Empty>
            <p>{t('myRequests.empty')}</p>
            <a class="btn btn-primary" href={href('/requests/new')}>{t('nav.newRequest')}</a>
          </Empty>
        ) : (
          <div class="table-wrap">
            <table class="table">
              <caption class="sr-only">{t('nav.myRequests')}</caption>
              <thead>
                <tr>
                  <th scope="col">{t('request.id')}</th>
                  <th scope="col">{t('request.devices')}</th>
                  <th scope="col">{t('request.purpose')}</th>
                  <th scope="col">{t('request.window')}</th>
                  <th scope="col">{t('request.status')}</th>
                  <th scope="col">{t('request.approvals')}</th>
                  <th scope="col"><span class="sr-only">{t('common.actions')}</span></th>
                </tr>
              </thead>
              <tbody>
                {requests.map((r) => (
                  <tr key={r.id} data-request={r.id}>
                    <td><code>{r.id}</code><div class="muted small">{i18n.time(r.createdAt)}</div></td>
                    <td>
                      {r.devices.join(', ')} <LevelBadge level={r.level} />
                      <div class="muted small">{r.protocols.map((p) => p.toUpperCase()).join(', ')} · {t('request.profileIs', { profile: r.effective.profile })}
                        {r.effective.upload || r.effective.download ? ` · ${transferText(t, r.effective.upload, r.effective.download)}` : ''}</div>
                    </td>
                    <td>{r.purpose}<div class="muted small">{t('request.workOrderIs', { wo: r.workOrder })}</div></td>
                    <td>
                      <TimeRange from={r.effective.from} until={r.effective.until} />
                      {(r.effective.from !== r.requested.from || r.effective.until !== r.requested.until) && (
                        <div class="muted small">{t('request.narrowedFrom')} <TimeRange from={r.requested.from} until={r.requested.until} /></div>
                      )}
                    </td>
                    <td>
                      <StatusBadge list="requestStatus" value={r.status} />
                      {r.reason && <div class="small">{t('request.reasonIs', { reason: r.reason })}</div>}
                      {r.decidedBy && r.status !== 'approved' && <div class="muted small">{t('request.decidedBy', { name: r.decidedBy })}</div>}
                    </td>
                    <td>
                      <ApprovalList approvals={r.approvals} />
                      <RequestChanges changes={r.changes} />
                      {r.status === 'pending' && (
                        <div class="small"><span class="label-text">{t('request.stillNeeded')}</span> <StillNeeded slots={r.stillNeeded} /></div>
                      )}
                    </td>
                    <td class="cell-actions">
                      {r.status === 'pending' && (
                        <ActionButton label={t('common.cancel')} danger title={t('myRequests.cancelTitle', { id: r.id })}
                          body={t('myRequests.cancelBody')} confirmLabel={t('myRequests.cancelConfirm')}
                          onConfirm={() => api.post(`/api/requests/${encodeURIComponent(r.id)}/cancel`)} onDone={res.reload} />
                      )}
                      {r.status === 'approved' && <a class="btn btn-small btn-primary" href={href('/connect')}>{t('nav.connect')}</a>}
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
