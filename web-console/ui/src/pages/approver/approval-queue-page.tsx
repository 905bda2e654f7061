import { useId, useState } from 'preact/hooks';
import { PROFILE_MODES, type ProfileMode } from '../../../../../policy/approval-rules.js';
import { api } from '../../api/api-client.js';
import type { AccessRequest, MaintenanceRecord, Policy, Profile } from '../../api/api-types.js';
import { authStore } from '../../auth/auth-state.js';
import { ActionButton } from '../../components/action-dialog.js';
import { ApprovalList, RequestChanges, StillNeeded } from '../../components/approval-needs.js';
import { LevelBadge, StatusBadge } from '../../components/badges.js';
import { Field } from '../../components/form-field.js';
import { ModalDialog } from '../../components/modal-dialog.js';
import { PageHeader } from '../../components/page-header.js';
import { Empty, ErrorNote, Loading, Notice, ResourceView } from '../../components/status-views.js';
import { TimeRange } from '../../components/time-range.js';
import { transferText } from '../../components/transfer-text.js';
import { useResource } from '../../components/use-resource.js';
import { useI18n } from '../../i18n/i18n.js';
import { LiveIndicator } from '../../live/live-indicator.js';
import { useLiveEvents } from '../../live/use-live-events.js';
import { useStore } from '../../state/store.js';

const rank = (mode: string | undefined): number => PROFILE_MODES.indexOf(mode as ProfileMode);

function localInput(iso: string): string {
  const d = new Date(iso);
  const p = (n: number): string => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
}

export default function ApprovalQueuePage() {
  const { t } = useI18n();
  const pending = useResource<{ requests: AccessRequest[] }>('/api/requests?status=pending');
  const approved = useResource<{ requests: AccessRequest[] }>('/api/requests?status=approved');
  const policy = useResource<Policy>('/api/policy');
  const [updated, setUpdated] = useState(0);
  const [notice, setNotice] = useState<string | null>(null);
  const live = useLiveEvents(['request'], () => {
    pending.reload();
    approved.reload();
    setUpdated((n) => n + 1);
  });
  const reloadAll = (): void => {
    pending.reload();
    approved.reload();
  };

  return (
    <section class="page" data-page="approvals">
      <PageHeader title={t('nav.approvals')} intro={t('approvals.intro')}>
        <LiveIndicator state={live} />
      </PageHeader>
      <p class="sr-only" aria-live="polite">{updated > 0 ? t('approvals.updated') : ''}</p>
      {notice && <Notice kind="success">{notice}</Notice>}
      <h2>{t('approvals.pending')}</h2>
      <ResourceView {...pending}>
        {({ requests }) => requests.length === 0 ? (
          <Empty><p>{t('approvals.empty')}</p></Empty>
        ) : (
          <ul class="request-list">
            {requests.map((r) => <PendingCard key={r.id} r={r} profiles={policy.data?.profiles ?? []} onDone={(msg) => { setNotice(msg); reloadAll(); }} />)}
          </ul>
        )}
      </ResourceView>

      <h2>{t('approvals.approved')}</h2>
      <p class="hint">{t('approvals.approvedHint')}</p>
      <ResourceView {...approved}>
        {({ requests }) => {
          const active = requests.filter((r) => Date.parse(r.effective.until) > Date.now());
          return active.length === 0 ? <Empty><p>{t('approvals.noneApproved')}</p></Empty> : (
            <div class="table-wrap">
              <table class="table">
                <caption class="sr-only">{t('approvals.approved')}</caption>
                <thead>
                  <tr>
                    <th scope="col">{t('request.id')}</th>
                    <th scope="col">{t('request.vendor')}</th>
                    <th scope="col">{t('request.devices')}</th>
                    <th scope="col">{t('request.window')}</th>
                    <th scope="col">{t('request.approvals')}</th>
                    <th scope="col"><span class="sr-only">{t('common.actions')}</span></th>
                  </tr>
                </thead>
                <tbody>
                  {active.map((r) => (
                    <tr key={r.id}>
                      <td><code>{r.id}</code></td>
                      <td>{r.requester}{r.organisation && <div class="muted small">{r.organisation}</div>}</td>
                      <td>{r.devices.join(', ')} <LevelBadge level={r.level} /></td>
                      <td><TimeRange from={r.effective.from} until={r.effective.until} /></td>
                      <td><ApprovalList approvals={r.approvals} /></td>
                      <td class="cell-actions">
                        <ActionButton label={t('approvals.revoke')} danger title={t('approvals.revokeTitle', { id: r.id })}
                          body={t('approvals.revokeBody')} confirmLabel={t('approvals.revoke')}
                          reason={{ label: t('common.reason'), required: true, maxLength: 500, hint: t('approvals.revokeReasonHint') }}
                          onConfirm={(reason) => api.post(`/api/requests/${encodeURIComponent(r.id)}/revoke`, { reason })} onDone={reloadAll} />
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          );
        }}
      </ResourceView>
    </section>
  );
}

function PendingCard({ r, profiles, onDone }: { r: AccessRequest; profiles: Profile[]; onDone: (message: string | null) => void }) {
  const i18n = useI18n();
  const { t } = i18n;
  const me = useStore(authStore).me;
  const [approving, setApproving] = useState(false);
  const own = me?.user.name === r.requester;

  return (
    <li class="card request-card" data-request={r.id}>
      <div class="request-card-head">
        <h3 class="card-title">
          {r.devices.join(', ')} <LevelBadge level={r.level} />
        </h3>
        <StatusBadge list="requestStatus" value={r.status} />
      </div>
      <dl class="facts">
        <div><dt>{t('request.vendor')}</dt><dd>{r.requester}</dd></div>
        <div><dt>{t('request.organisation')}</dt><dd>{r.organisation ?? t('common.none')}</dd></div>
        <div><dt>{t('request.purpose')}</dt><dd>{r.purpose}</dd></div>
        <div><dt>{t('request.workOrder')}</dt><dd>{r.workOrder}</dd></div>
        <div><dt>{t('request.window')}</dt><dd><TimeRange from={r.requested.from} until={r.requested.until} /></dd></div>
        <div><dt>{t('request.profile')}</dt><dd>{r.requested.profile} · {r.protocols.map((p) => p.toUpperCase()).join(', ')}
          {` · ${transferText(t, r.requested.upload, r.requested.download)}`}</dd></div>
        <div><dt>{t('request.approvals')}</dt><dd><ApprovalList approvals={r.approvals} /><RequestChanges changes={r.changes} /></dd></div>
        <div><dt>{t('request.stillNeeded')}</dt><dd><StillNeeded slots={r.stillNeeded} /></dd></div>
        <div><dt>{t('request.id')}</dt><dd><code>{r.id}</code> · {i18n.time(r.createdAt)}</dd></div>
      </dl>
      <VendorHistory id={r.id} vendor={r.requester} />
      {own ? (
        <p class="hint">{t('approvals.ownRequest')}</p>
      ) : (
        <div class="actions">
          <button type="button" class="btn btn-primary" onClick={() => setApproving(true)}>{t('approvals.approve')}</button>
          <ActionButton label={t('approvals.deny')} danger small={false} title={t('approvals.denyTitle', { id: r.id })} confirmLabel={t('approvals.deny')}
            reason={{ label: t('approvals.denyReason'), required: true, maxLength: 2000, hint: t('approvals.denyReasonHint') }}
            onConfirm={(reason) => api.post(`/api/requests/${encodeURIComponent(r.id)}/deny`, { reason })} onDone={() => onDone(t('approvals.denied', { id: r.id }))} />
        </div>
      )}
      {approving && (
        <ApproveDialog r={r} profiles={profiles} onClose={(msg) => {
          setApproving(false);
          if (msg) onDone(msg);
        }} />
      )}
    </li>
  );
}

/** The vendor's recent sessions on the devices asked for: what an approver weighs before saying yes. */
function VendorHistory({ id, vendor }: { id: string; vendor: string }) {
  const i18n = useI18n();
  const { t } = i18n;
  const res = useResource<{ sessions: MaintenanceRecord[] }>(`/api/requests/${encodeURIComponent(id)}/history`);
  return (
    <details class="history">
      <summary>{t('approvals.history', { vendor })}{res.data ? ` (${res.data.sessions.length})` : ''}</summary>
      {res.loading ? <Loading /> : res.error ? <ErrorNote error={res.error} onRetry={res.reload} /> : (res.data?.sessions.length ?? 0) === 0 ? (
        <p class="muted">{t('approvals.noHistory')}</p>
      ) : (
        <table class="table table-compact">
          <caption class="sr-only">{t('approvals.history', { vendor })}</caption>
          <thead>
            <tr>
              <th scope="col">{t('grant.device')}</th>
              <th scope="col">{t('session.started')}</th>
              <th scope="col">{t('session.ended')}</th>
              <th scope="col">{t('request.workOrder')}</th>
            </tr>
          </thead>
          <tbody>
            {res.data?.sessions.slice(0, 10).map((s) => (
              <tr key={s.session}>
                <td>{s.device}</td>
                <td>{i18n.time(s.start)}</td>
                <td>{s.end ? i18n.time(s.end) : t('session.stillLive')}{s.endReason && <div class="muted small">{i18n.name('endReason', s.endReason)}</div>}</td>
                <td>{s.workOrder ?? t('common.none')}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </details>
  );
}

function ApproveDialog({ r, profiles, onClose }: { r: AccessRequest; profiles: Profile[]; onClose: (message: string | null) => void }) {
  const i18n = useI18n();
  const { t } = i18n;
  const ids = { from: useId(), until: useId(), profile: useId(), comment: useId() };
  const requestedMode = profiles.find((p) => p.name === r.requested.profile)?.mode;
  const stricter = profiles.filter((p) => requestedMode === undefined || rank(p.mode) <= rank(requestedMode));
  const [from, setFrom] = useState(localInput(r.effective.from));
  const [until, setUntil] = useState(localInput(r.effective.until));
  const [profile, setProfile] = useState(r.effective.profile);
  const [upload, setUpload] = useState(r.effective.upload);
  const [download, setDownload] = useState(r.effective.download);
  const [comment, setComment] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);

  async function submit(e: Event): Promise<void> {
    e.preventDefault();
    setBusy(true);
    setError(null);
    const narrowing: Record<string, unknown> = {};
    // Only what the approver changed is sent: an unchanged field is no narrowing.
    if (from !== localInput(r.effective.from)) narrowing.from = new Date(from).toISOString();
    if (until !== localInput(r.effective.until)) narrowing.until = new Date(until).toISOString();
    if (profile !== r.effective.profile) narrowing.profile = profile;
    // Each direction can be struck on its own (R-6.3e).
    if (r.effective.upload && !upload) narrowing.upload = false;
    if (r.effective.download && !download) narrowing.download = false;
    try {
      const res = await api.post<{ approved: boolean; request: AccessRequest }>(`/api/requests/${encodeURIComponent(r.id)}/approve`, {
        ...(Object.keys(narrowing).length ? { narrowing } : {}), comment: comment.trim() || null,
      });
      onClose(res.approved ? t('approvals.nowApproved', { id: r.id }) : t('approvals.approvalRecorded', { id: r.id }));
    } catch (err) {
      setError(err);
      setBusy(false);
    }
  }

  return (
    <ModalDialog title={t('approvals.approveTitle', { id: r.id })} onClose={() => onClose(null)} wide>
      <form class="form" onSubmit={(e) => void submit(e)}>
        <p class="dialog-text">{t('approvals.narrowIntro')}</p>
        <div class="form-row">
          <Field id={ids.from} label={t('approvals.startAt')}>
            <input id={ids.from} type="datetime-local" value={from} min={localInput(r.effective.from)} max={localInput(r.effective.until)}
              onInput={(e) => setFrom(e.currentTarget.value)} />
          </Field>
          <Field id={ids.until} label={t('approvals.endAt')}>
            <input id={ids.until} type="datetime-local" value={until} min={localInput(r.effective.from)} max={localInput(r.effective.until)}
              onInput={(e) => setUntil(e.currentTarget.value)} />
          </Field>
        </div>
        <Field id={ids.profile} label={t('request.profile')} hint={t('approvals.profileHint')}>
          <select id={ids.profile} value={profile} aria-describedby={`${ids.profile}-hint`} onChange={(e) => setProfile(e.currentTarget.value)}>
            {(stricter.length ? stricter : [{ name: r.effective.profile, mode: requestedMode ?? '', description: [] }]).map((p) => (
              <option key={p.name} value={p.name}>{p.name}{p.mode ? ` (${i18n.name('profileMode', p.mode)})` : ''}</option>
            ))}
          </select>
        </Field>
        {r.effective.upload && (
          <label class="choice">
            <input type="checkbox" checked={upload} onChange={(e) => setUpload(e.currentTarget.checked)} />
            {t('approvals.allowUpload')}
          </label>
        )}
        {r.effective.download && (
          <label class="choice">
            <input type="checkbox" checked={download} onChange={(e) => setDownload(e.currentTarget.checked)} />
            {t('approvals.allowDownload')}
          </label>
        )}
        <Field id={ids.comment} label={t('approvals.comment')}>
          <textarea id={ids.comment} rows={2} maxLength={500} value={comment} onInput={(e) => setComment(e.currentTarget.value)} />
        </Field>
        {error !== null && <ErrorNote error={error} />}
        <div class="actions">
          <button type="submit" class="btn btn-primary" disabled={busy}>{busy ? t('common.working') : t('approvals.approve')}</button>
          <button type="button" class="btn" onClick={() => onClose(null)}>{t('common.cancel')}</button>
        </div>
      </form>
    </ModalDialog>
  );
}
