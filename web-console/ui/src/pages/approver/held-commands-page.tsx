import { api } from '../../api/api-client.js';
import type { CommandLine } from '../../api/api-types.js';
import { ActionButton } from '../../components/action-dialog.js';
import { PageHeader } from '../../components/page-header.js';
import { Empty, ResourceView } from '../../components/status-views.js';
import { useResource } from '../../components/use-resource.js';
import { useI18n } from '../../i18n/i18n.js';
import { LiveIndicator } from '../../live/live-indicator.js';
import { useLiveEvents } from '../../live/use-live-events.js';

/** Commands a profile holds for review: the vendor's session waits until someone here answers (or it times out). */
export default function HeldCommandsPage() {
  const i18n = useI18n();
  const { t } = i18n;
  const res = useResource<{ commands: CommandLine[] }>('/api/commands/held');
  const live = useLiveEvents(['command'], () => res.reload());
  const review = (id: string, approve: boolean, comment: string) =>
    api.post(`/api/commands/${encodeURIComponent(id)}/review`, { approve, comment: comment || null });

  return (
    <section class="page" data-page="held-commands">
      <PageHeader title={t('nav.heldCommands')} intro={t('held.intro')}>
        <LiveIndicator state={live} />
      </PageHeader>
      <ResourceView {...res}>
        {({ commands }) => commands.length === 0 ? <Empty><p>{t('held.empty')}</p></Empty> : (
          <ul class="request-list">
            {commands.map((c) => (
              <li key={c.id} class="card" data-command={c.id}>
                <p class="command-line"><code>{c.line}</code></p>
                <dl class="facts">
                  <div><dt>{t('session.user')}</dt><dd>{c.user}</dd></div>
                  <div><dt>{t('grant.device')}</dt><dd>{c.device}</dd></div>
                  <div><dt>{t('held.asked')}</dt><dd>{i18n.time(c.at)}</dd></div>
                  <div><dt>{t('held.rule')}</dt><dd>{c.rule ?? t('common.none')}{c.reason && <div class="muted small">{c.reason}</div>}</dd></div>
                  <div><dt>{t('session.id')}</dt><dd><code>{c.session}</code></dd></div>
                </dl>
                <div class="actions">
                  <ActionButton label={t('held.allow')} small={false} title={t('held.allowTitle')} body={<code>{c.line}</code>} confirmLabel={t('held.allow')}
                    reason={{ label: t('approvals.comment'), required: false, maxLength: 500 }}
                    onConfirm={(comment) => review(c.id, true, comment)} onDone={res.reload} />
                  <ActionButton label={t('held.reject')} danger small={false} title={t('held.rejectTitle')} body={<code>{c.line}</code>} confirmLabel={t('held.reject')}
                    reason={{ label: t('approvals.comment'), required: false, maxLength: 500 }}
                    onConfirm={(comment) => review(c.id, false, comment)} onDone={res.reload} />
                </div>
              </li>
            ))}
          </ul>
        )}
      </ResourceView>
    </section>
  );
}
