import { useId, useState } from 'preact/hooks';
import { api, query } from '../../api/api-client.js';
import type { MaintenanceRecord } from '../../api/api-types.js';
import { LevelBadge, StatusBadge } from '../../components/badges.js';
import { Field } from '../../components/form-field.js';
import { PageHeader } from '../../components/page-header.js';
import { Empty, ErrorNote, ResourceView } from '../../components/status-views.js';
import { useResource } from '../../components/use-resource.js';
import { useI18n } from '../../i18n/i18n.js';
import { dayEnd, dayStart } from '../../components/day-bounds.js';

interface Filters {
  device: string;
  vendor: string;
  org: string;
  from: string;
  to: string;
}

const EMPTY: Filters = { device: '', vendor: '', org: '', from: '', to: '' };
const PREVIEW = 100;

/** Maintenance records (R-6.4c): one per session; the CSV is what goes to the hospital's files. */
export default function RecordsPage() {
  const i18n = useI18n();
  const { t } = i18n;
  const ids = { device: useId(), vendor: useId(), org: useId(), from: useId(), to: useId() };
  const [draft, setDraft] = useState<Filters>(EMPTY);
  const [applied, setApplied] = useState<Filters>(EMPTY);
  const [downloading, setDownloading] = useState(false);
  const [downloadError, setDownloadError] = useState<unknown>(null);
  const params = {
    device: applied.device.trim(), vendor: applied.vendor.trim(), org: applied.org.trim(), from: dayStart(applied.from), to: dayEnd(applied.to),
  };
  const res = useResource<{ records: MaintenanceRecord[] }>(`/api/records${query({ ...params, limit: PREVIEW })}`);
  const set = (k: keyof Filters) => (e: Event) => setDraft({ ...draft, [k]: (e.currentTarget as HTMLInputElement).value });

  // Fetched rather than linked, so a lapsed session shows the sign-in page instead of saving an error as a .csv.
  async function download(): Promise<void> {
    setDownloading(true);
    setDownloadError(null);
    try {
      const csv = await api.text(`/api/records/export.csv${query(params)}`);
      const url = URL.createObjectURL(new Blob([csv], { type: 'text/csv;charset=utf-8' }));
      const a = document.createElement('a');
      a.href = url;
      a.download = `maintenance-records-${new Date().toISOString().slice(0, 10)}.csv`;
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10_000);
    } catch (err) {
      setDownloadError(err);
    } finally {
      setDownloading(false);
    }
  }

  return (
    <section class="page" data-page="records">
      <PageHeader title={t('nav.records')} intro={t('records.intro')}>
        <button type="button" class="btn btn-primary" onClick={() => void download()} disabled={downloading}>
          {downloading ? t('common.working') : t('records.download')}
        </button>
      </PageHeader>
      {downloadError !== null && <ErrorNote error={downloadError} />}
      <form class="filters" role="search" aria-label={t('records.filters')} onSubmit={(e) => { e.preventDefault(); setApplied(draft); }}>
        <Field id={ids.device} label={t('grant.device')}><input id={ids.device} value={draft.device} onInput={set('device')} /></Field>
        <Field id={ids.vendor} label={t('request.vendor')}><input id={ids.vendor} value={draft.vendor} onInput={set('vendor')} /></Field>
        <Field id={ids.org} label={t('request.organisation')}><input id={ids.org} value={draft.org} onInput={set('org')} /></Field>
        <Field id={ids.from} label={t('filters.fromDay')}><input id={ids.from} type="date" value={draft.from} onInput={set('from')} /></Field>
        <Field id={ids.to} label={t('filters.toDay')}><input id={ids.to} type="date" value={draft.to} onInput={set('to')} /></Field>
        <div class="filters-actions">
          <button type="submit" class="btn btn-primary">{t('filters.apply')}</button>
          <button type="button" class="btn" onClick={() => { setDraft(EMPTY); setApplied(EMPTY); }}>{t('filters.clear')}</button>
        </div>
      </form>
      <p class="hint">{t('records.previewHint', { n: PREVIEW })}</p>
      <ResourceView {...res}>
        {({ records }) => records.length === 0 ? <Empty><p>{t('records.empty')}</p></Empty> : (
          <div class="table-wrap">
            <table class="table table-compact">
              <caption class="sr-only">{t('nav.records')}</caption>
              <thead>
                <tr>
                  <th scope="col">{t('session.started')}</th>
                  <th scope="col">{t('request.vendor')}</th>
                  <th scope="col">{t('grant.device')}</th>
                  <th scope="col">{t('request.workOrder')}</th>
                  <th scope="col">{t('records.approvers')}</th>
                  <th scope="col">{t('session.ended')}</th>
                  <th scope="col">{t('session.bytes')}</th>
                  <th scope="col">{t('records.done')}</th>
                </tr>
              </thead>
              <tbody>
                {records.map((r) => (
                  <tr key={r.session}>
                    <td class="nowrap">{i18n.time(r.start)}</td>
                    <td>{r.vendor}{r.organisation && <div class="muted small">{r.organisation}</div>}</td>
                    <td>{r.device} <LevelBadge level={r.deviceLevel} /><div class="muted small">{r.protocol.toUpperCase()} · {i18n.name('via', r.via)}</div></td>
                    <td>{r.workOrder ?? t('common.none')}{r.purpose && <div class="muted small">{r.purpose}</div>}</td>
                    <td>{r.approvers.join(', ') || t('common.none')}</td>
                    <td>{r.end ? i18n.time(r.end) : t('session.stillLive')}{r.endReason && <div class="muted small">{i18n.name('endReason', r.endReason)}</div>}</td>
                    <td class="num">{t('session.bytesInOut', { in: i18n.bytes(r.bytesIn), out: i18n.bytes(r.bytesOut) })}</td>
                    <td>
                      {r.commands.length + r.files.length === 0 ? t('common.none') : (
                        <details class="record-content">
                          <summary>{t('records.doneSummary', { commands: r.commands.length, files: r.files.length })}</summary>
                          {r.commands.length > 0 && (
                            <ul class="plain-list">
                              {r.commands.map((c, i) => <li key={`c${i}`}><code>{c.line}</code> <StatusBadge list="decision" value={c.decision} /></li>)}
                            </ul>
                          )}
                          {r.files.length > 0 && (
                            <ul class="plain-list">
                              {r.files.map((f, i) => (
                                <li key={`f${i}`}>{t('records.file', { op: f.op, outcome: f.outcome })} <code>{f.path}</code>{f.to !== null && <> → <code>{f.to}</code></>}{f.bytes !== null && ` · ${i18n.bytes(f.bytes)}`}</li>
                              ))}
                            </ul>
                          )}
                        </details>
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
