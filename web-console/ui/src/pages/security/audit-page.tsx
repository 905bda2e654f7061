import { useEffect, useId, useState } from 'preact/hooks';
import { api, query } from '../../api/api-client.js';
import type { AuditEntry, VerifyReport } from '../../api/api-types.js';
import { dayEnd, dayStart } from '../../components/day-bounds.js';
import { Field } from '../../components/form-field.js';
import { PageHeader } from '../../components/page-header.js';
import { Empty, ErrorNote, Loading } from '../../components/status-views.js';
import { useI18n } from '../../i18n/i18n.js';
import { navigate } from '../../nav/hash-router.js';
import type { PageProps } from '../../nav/routes.js';

const PAGE = 200;
const ISO_TIME = /^\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d(\.\d+)?)?(Z|[+-]\d\d:?\d\d)$/;
// The types a reviewer looks for most; any other type can be typed in.
const COMMON_TYPES = [
  'login.ok', 'login.failed', 'login.refused', 'account.locked', 'request.created', 'request.approval', 'request.approved', 'request.denied',
  'request.revoked', 'grant.created', 'grant.revoked', 'session.start', 'session.kill', 'session.watched', 'command', 'command.reviewed',
  'recording.viewed', 'records.exported', 'audit.verified', 'user.created', 'device.created', 'device.credential_set',
];

/** One entry's data as "key: value" pairs a person can read, not a JSON dump. */
function DataPairs({ data }: { data: Record<string, unknown> }) {
  const i18n = useI18n();
  const entries = Object.entries(data).filter(([, v]) => v !== null && v !== undefined && v !== '');
  if (entries.length === 0) return null;
  const show = (v: unknown): string => {
    if (typeof v === 'string') return ISO_TIME.test(v) ? i18n.time(v) : v;
    if (typeof v === 'number' || typeof v === 'boolean') return String(v);
    if (Array.isArray(v)) return v.map(show).join(', ');
    if (typeof v === 'object' && v !== null) return Object.entries(v).map(([k, x]) => `${k}=${show(x)}`).join(', ');
    return String(v);
  };
  return (
    <dl class="pairs">
      {entries.map(([k, v]) => (
        <div key={k}><dt>{k}</dt><dd>{show(v)}</dd></div>
      ))}
    </dl>
  );
}

const FILTERS = ['type', 'after', 'actor', 'outcome', 'from', 'to', 'text'] as const;
type Filters = Record<(typeof FILTERS)[number], string>;

/** The filters live in the page's address (`#/audit?actor=mallory&outcome=denied`): a search can be bookmarked and sent on. */
function filtersOf(q: URLSearchParams): Filters {
  return Object.fromEntries(FILTERS.map((k) => [k, q.get(k) ?? ''])) as Filters;
}

/** Newest first, a page at a time (R-A.3d): what happened last is what a reviewer asks about first. */
export default function AuditPage({ query: routeQuery }: PageProps) {
  const i18n = useI18n();
  const { t } = i18n;
  const ids = { type: useId(), after: useId(), list: useId(), actor: useId(), outcome: useId(), from: useId(), to: useId(), text: useId() };
  const NONE: Filters = { type: '', after: '', actor: '', outcome: '', from: '', to: '', text: '' };
  const applied = filtersOf(routeQuery);
  const appliedKey = FILTERS.map((k) => applied[k]).join('\u0000');
  const [draft, setDraft] = useState<Filters>(applied);
  const set = (k: keyof Filters) => (e: { currentTarget: { value: string } }): void => setDraft({ ...draft, [k]: e.currentTarget.value });
  const apply = (f: Filters): void => navigate(`/audit${query(Object.fromEntries(FILTERS.map((k) => [k, f[k].trim()])))}`);
  const after = Math.max(0, Number(applied.after) || 0);
  const [entries, setEntries] = useState<AuditEntry[] | null>(null);
  const [more, setMore] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [loadingMore, setLoadingMore] = useState(false);
  const [verifying, setVerifying] = useState(false);
  const [report, setReport] = useState<VerifyReport | null>(null);
  const [verifyError, setVerifyError] = useState<unknown>(null);

  // `before`: the oldest entry shown so far, for the next (older) page; null for the first page.
  const load = async (before: number | null, append: boolean): Promise<void> => {
    setError(null);
    try {
      const r = await api.get<{ entries: AuditEntry[] }>(`/api/audit${query({
        type: applied.type.trim(), actor: applied.actor.trim(), outcome: applied.outcome, from: dayStart(applied.from), to: dayEnd(applied.to),
        text: applied.text.trim(), after, before, order: 'desc', limit: PAGE,
      })}`);
      setEntries((prev) => (append && prev ? [...prev, ...r.entries] : r.entries));
      setMore(r.entries.length === PAGE);
    } catch (err) {
      setError(err);
    }
  };

  useEffect(() => {
    setDraft(applied);
    setEntries(null);
    void load(null, false);
  }, [appliedKey]);

  async function verify(): Promise<void> {
    setVerifying(true);
    setVerifyError(null);
    setReport(null);
    try {
      setReport(await api.post<VerifyReport>('/api/audit/verify', { anchors: [] }));
    } catch (err) {
      setVerifyError(err);
    } finally {
      setVerifying(false);
    }
  }

  return (
    <section class="page" data-page="audit">
      <PageHeader title={t('nav.audit')} intro={t('audit.intro')}>
        <button type="button" class="btn btn-primary" onClick={() => void verify()} disabled={verifying}>
          {verifying ? t('audit.verifying') : t('audit.verify')}
        </button>
      </PageHeader>
      {verifyError !== null && <ErrorNote error={verifyError} />}
      {report && (
        <div class={`note ${report.ok ? 'note-success' : 'note-error'} verify-report`} role="status" data-verify-ok={String(report.ok)}>
          <p class="note-title">{report.ok ? t('audit.verifyOk') : t('audit.verifyFailed')}</p>
          <p>{t('audit.verifyCounts', { entries: i18n.number(report.auditEntries), recordings: i18n.number(report.recordingsVerified) })}</p>
          {report.recordingsUnsealed.length > 0 && <p>{t('audit.unsealed', { list: report.recordingsUnsealed.join(', ') })}</p>}
          {report.problems.length > 0 && (
            <>
              <p>{t('audit.problems')}</p>
              <ul>{report.problems.map((p, i) => <li key={i}>{p}</li>)}</ul>
            </>
          )}
        </div>
      )}
      <form class="filters" role="search" aria-label={t('audit.filters')} onSubmit={(e) => { e.preventDefault(); apply(draft); }}>
        <Field id={ids.type} label={t('audit.type')}>
          <input id={ids.type} list={ids.list} value={draft.type} onInput={set('type')} />
          <datalist id={ids.list}>{COMMON_TYPES.map((c) => <option key={c} value={c} />)}</datalist>
        </Field>
        <Field id={ids.actor} label={t('audit.actor')}><input id={ids.actor} value={draft.actor} onInput={set('actor')} /></Field>
        <Field id={ids.outcome} label={t('audit.outcome')}>
          <select id={ids.outcome} value={draft.outcome} onChange={set('outcome')}>
            <option value="">{t('filters.any')}</option>
            {(['ok', 'denied', 'info'] as const).map((o) => <option key={o} value={o}>{i18n.name('outcome', o)}</option>)}
          </select>
        </Field>
        <Field id={ids.from} label={t('filters.fromDay')}><input id={ids.from} type="date" value={draft.from} onInput={set('from')} /></Field>
        <Field id={ids.to} label={t('filters.toDay')}><input id={ids.to} type="date" value={draft.to} onInput={set('to')} /></Field>
        <Field id={ids.text} label={t('audit.text')}><input id={ids.text} value={draft.text} onInput={set('text')} /></Field>
        <Field id={ids.after} label={t('audit.after')}>
          <input id={ids.after} type="number" min={0} value={draft.after} onInput={set('after')} />
        </Field>
        <div class="filters-actions">
          <button type="submit" class="btn btn-primary">{t('filters.apply')}</button>
          <button type="button" class="btn" onClick={() => { setDraft(NONE); apply(NONE); }}>{t('filters.clear')}</button>
        </div>
      </form>
      {error !== null && <ErrorNote error={error} onRetry={() => void load(null, false)} />}
      {entries === null && error === null ? <Loading /> : entries !== null && entries.length === 0 ? <Empty><p>{t('audit.empty')}</p></Empty> : entries && (
        <>
          <div class="table-wrap">
            <table class="table table-compact">
              <caption class="sr-only">{t('nav.audit')}</caption>
              <thead>
                <tr>
                  <th scope="col">#</th>
                  <th scope="col">{t('audit.time')}</th>
                  <th scope="col">{t('audit.type')}</th>
                  <th scope="col">{t('audit.actor')}</th>
                  <th scope="col">{t('audit.outcome')}</th>
                  <th scope="col">{t('audit.details')}</th>
                </tr>
              </thead>
              <tbody>
                {entries.map((e) => (
                  <tr key={e.seq}>
                    <td class="num">{e.seq}</td>
                    <td class="nowrap">{i18n.time(e.ts)}</td>
                    <td><code>{e.type}</code></td>
                    <td>{e.actor}</td>
                    <td>
                      <span class={`badge badge-${e.outcome === 'ok' ? 'ok' : e.outcome === 'denied' ? 'bad' : 'info'}`}>{i18n.name('outcome', e.outcome)}</span>
                      {e.code && <div class="small"><code>{e.code}</code></div>}
                    </td>
                    <td><DataPairs data={e.data} /></td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
          {more && (
            <button type="button" class="btn" disabled={loadingMore} onClick={() => {
              setLoadingMore(true);
              void load(entries[entries.length - 1]?.seq ?? null, true).finally(() => setLoadingMore(false));
            }}>{loadingMore ? t('common.loading') : t('audit.more')}</button>
          )}
        </>
      )}
    </section>
  );
}
