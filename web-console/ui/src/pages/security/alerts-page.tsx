import { useId } from 'preact/hooks';
import { ALERT_KINDS } from '../../../../../policy/alert-rules.js';
import { api, query as toQuery } from '../../api/api-client.js';
import type { Alert } from '../../api/api-types.js';
import { ActionButton } from '../../components/action-dialog.js';
import { Field } from '../../components/form-field.js';
import { PageHeader } from '../../components/page-header.js';
import { Empty, ResourceView } from '../../components/status-views.js';
import { useResource } from '../../components/use-resource.js';
import { useI18n } from '../../i18n/i18n.js';
import { LiveIndicator } from '../../live/live-indicator.js';
import { useLiveEvents } from '../../live/use-live-events.js';
import { navigate } from '../../nav/hash-router.js';
import type { PageProps } from '../../nav/routes.js';

const SEVERITY_TONE: Record<string, string> = { emerg: 'bad', alert: 'bad', crit: 'bad', err: 'bad', warning: 'warn', notice: 'info', info: 'muted' };

/**
 * Security's live alert list (R-A.5b, R-5.5a): newest first, filtered by kind (kept in the URL),
 * updated by server-sent events from every node; acknowledging asks for a comment, which the
 * audit log keeps.
 */
export default function AlertsPage({ query }: PageProps) {
  const i18n = useI18n();
  const { t } = i18n;
  const ids = { kind: useId(), show: useId() };
  const kind = query.get('kind') ?? '';
  const open = query.get('open') === '1';
  const res = useResource<{ alerts: Alert[] }>(`/api/alerts${toQuery({ kind, unacknowledged: open ? 'true' : '' })}`);
  const live = useLiveEvents(['alert'], () => res.reload());
  const filter = (next: { kind?: string; open?: boolean }): void => {
    const k = next.kind ?? kind;
    const o = next.open ?? open;
    navigate(`/alerts${toQuery({ kind: k, open: o ? '1' : '' })}`);
  };
  const acknowledge = (id: string, comment: string) => api.post(`/api/alerts/${encodeURIComponent(id)}/acknowledge`, { comment });

  return (
    <section class="page" data-page="alerts">
      <PageHeader title={t('nav.alerts')} intro={t('alerts.intro')}>
        <LiveIndicator state={live} />
      </PageHeader>
      <form class="filters" role="search" onSubmit={(e) => e.preventDefault()}>
        <Field id={ids.kind} label={t('alerts.kind')}>
          <select id={ids.kind} value={kind} onChange={(e) => filter({ kind: e.currentTarget.value })}>
            <option value="">{t('filters.any')}</option>
            {ALERT_KINDS.map((k) => <option key={k} value={k}>{i18n.name('alertKind', k)}</option>)}
          </select>
        </Field>
        <Field id={ids.show} label={t('alerts.show')}>
          <select id={ids.show} value={open ? '1' : ''} onChange={(e) => filter({ open: e.currentTarget.value === '1' })}>
            <option value="">{t('alerts.showAll')}</option>
            <option value="1">{t('alerts.showOpen')}</option>
          </select>
        </Field>
      </form>
      <ResourceView {...res}>
        {({ alerts }) => alerts.length === 0 ? <Empty><p>{t('alerts.empty')}</p></Empty> : (
          <ul class="request-list">
            {alerts.map((a) => (
              <li key={a.id} class="card" data-alert={a.id} data-alert-kind={a.kind} data-acknowledged={String(a.acknowledgement !== null)}>
                <p>
                  <span class={`badge badge-${SEVERITY_TONE[a.severity] ?? 'muted'}`}>{i18n.name('alertSeverity', a.severity)}</span>{' '}
                  <strong>{i18n.name('alertKind', a.kind)}</strong>
                  {a.acknowledgement === null && <> {' '}<span class="badge badge-warn">{t('alerts.open')}</span></>}
                </p>
                <p class="alert-summary">{a.summary}</p>
                <dl class="facts">
                  <div><dt>{t('alerts.raised')}</dt><dd>{i18n.time(a.raisedAt)}</dd></div>
                  <div><dt>{t('alerts.subject')}</dt><dd><code>{a.subject}</code></dd></div>
                  <div><dt>{t('alerts.node')}</dt><dd>{a.node}</dd></div>
                  <div><dt>{t('alerts.triggers')}</dt><dd>{a.triggers.length > 0 ? a.triggers.map((s) => `#${s}`).join(', ') : t('common.none')}</dd></div>
                </dl>
                {a.acknowledgement ? (
                  <p class="muted small" data-acknowledgement>
                    {t('alerts.acknowledgedBy', { user: a.acknowledgement.by, time: i18n.time(a.acknowledgement.at) })}: {a.acknowledgement.comment}
                  </p>
                ) : (
                  <div class="actions">
                    <ActionButton label={t('alerts.acknowledge')} small={false} title={t('alerts.acknowledgeTitle')} body={<p>{a.summary}</p>}
                      confirmLabel={t('alerts.acknowledge')} reason={{ label: t('alerts.comment'), required: true, maxLength: 1000 }}
                      onConfirm={(comment) => acknowledge(a.id, comment)} onDone={res.reload} />
                  </div>
                )}
              </li>
            ))}
          </ul>
        )}
      </ResourceView>
    </section>
  );
}
