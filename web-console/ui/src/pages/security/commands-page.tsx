import { useEffect, useId, useState } from 'preact/hooks';
import { api, query } from '../../api/api-client.js';
import type { CommandHit } from '../../api/api-types.js';
import { StatusBadge } from '../../components/badges.js';
import { dayEnd, dayStart } from '../../components/day-bounds.js';
import { Field } from '../../components/form-field.js';
import { PageHeader } from '../../components/page-header.js';
import { Empty, ErrorNote, Loading } from '../../components/status-views.js';
import { useI18n } from '../../i18n/i18n.js';
import { href, navigate } from '../../nav/hash-router.js';
import type { PageProps } from '../../nav/routes.js';

const LIMIT = 500;
const FILTERS = ['program', 'text', 'device', 'user', 'decision', 'from', 'to'] as const;
type Filters = Record<(typeof FILTERS)[number], string>;
const DECISIONS = ['allow', 'deny', 'review', 'logged'] as const;

function filtersOf(q: URLSearchParams): Filters {
  return Object.fromEntries(FILTERS.map((k) => [k, q.get(k) ?? ''])) as Filters;
}

/**
 * The command log across sessions (R-A.3d, R-6.4c): "which sessions ran systemctl restart on the
 * CT scanners last week?". Each hit opens the session's replay at its moment. The filters live in
 * the page's address, so a search can be bookmarked and sent on.
 */
export default function CommandsPage({ query: routeQuery }: PageProps) {
  const i18n = useI18n();
  const { t } = i18n;
  const ids = { program: useId(), text: useId(), device: useId(), user: useId(), decision: useId(), from: useId(), to: useId() };
  const NONE: Filters = { program: '', text: '', device: '', user: '', decision: '', from: '', to: '' };
  const applied = filtersOf(routeQuery);
  const appliedKey = FILTERS.map((k) => applied[k]).join('\u0000');
  const [draft, setDraft] = useState<Filters>(applied);
  const [hits, setHits] = useState<CommandHit[] | null>(null);
  const [error, setError] = useState<unknown>(null);
  const set = (k: keyof Filters) => (e: { currentTarget: { value: string } }): void => setDraft({ ...draft, [k]: e.currentTarget.value });
  const apply = (f: Filters): void => navigate(`/commands${query(Object.fromEntries(FILTERS.map((k) => [k, f[k].trim()])))}`);

  const load = async (): Promise<void> => {
    setError(null);
    setHits(null);
    try {
      const r = await api.get<{ commands: CommandHit[] }>(`/api/commands${query({
        program: applied.program.trim(), text: applied.text.trim(), device: applied.device.trim(), user: applied.user.trim(),
        decision: applied.decision, from: dayStart(applied.from), to: dayEnd(applied.to), limit: LIMIT,
      })}`);
      setHits(r.commands);
    } catch (err) {
      setError(err);
    }
  };

  useEffect(() => {
    setDraft(applied);
    void load();
  }, [appliedKey]);

  return (
    <section class="page" data-page="commands">
      <PageHeader title={t('nav.commands')} intro={t('commands.intro')} />
      <form class="filters" role="search" aria-label={t('commands.filters')} onSubmit={(e) => { e.preventDefault(); apply(draft); }}>
        <Field id={ids.program} label={t('commands.program')}><input id={ids.program} value={draft.program} onInput={set('program')} placeholder="systemctl" /></Field>
        <Field id={ids.text} label={t('commands.text')}><input id={ids.text} value={draft.text} onInput={set('text')} /></Field>
        <Field id={ids.device} label={t('grant.device')}><input id={ids.device} value={draft.device} onInput={set('device')} /></Field>
        <Field id={ids.user} label={t('request.vendor')}><input id={ids.user} value={draft.user} onInput={set('user')} /></Field>
        <Field id={ids.decision} label={t('commands.decision')}>
          <select id={ids.decision} value={draft.decision} onChange={set('decision')}>
            <option value="">{t('filters.any')}</option>
            {DECISIONS.map((d) => <option key={d} value={d}>{i18n.name('decision', d)}</option>)}
          </select>
        </Field>
        <Field id={ids.from} label={t('filters.fromDay')}><input id={ids.from} type="date" value={draft.from} onInput={set('from')} /></Field>
        <Field id={ids.to} label={t('filters.toDay')}><input id={ids.to} type="date" value={draft.to} onInput={set('to')} /></Field>
        <div class="filters-actions">
          <button type="submit" class="btn btn-primary">{t('filters.apply')}</button>
          <button type="button" class="btn" onClick={() => { setDraft(NONE); apply(NONE); }}>{t('filters.clear')}</button>
        </div>
      </form>
      {error !== null && <ErrorNote error={error} onRetry={() => void load()} />}
      {hits === null && error === null ? <Loading /> : hits !== null && hits.length === 0 ? <Empty><p>{t('commands.empty')}</p></Empty> : hits && (
        <>
          {hits.length === LIMIT && <p class="hint">{t('commands.limitHint', { n: LIMIT })}</p>}
          <div class="table-wrap">
            <table class="table table-compact">
              <caption class="sr-only">{t('nav.commands')}</caption>
              <thead>
                <tr>
                  <th scope="col">{t('audit.time')}</th>
                  <th scope="col">{t('request.vendor')}</th>
                  <th scope="col">{t('grant.device')}</th>
                  <th scope="col">{t('commands.line')}</th>
                  <th scope="col">{t('commands.decision')}</th>
                  <th scope="col">{t('commands.replay')}</th>
                </tr>
              </thead>
              <tbody>
                {hits.map((c) => (
                  <tr key={c.id} data-command={c.id}>
                    <td class="nowrap">{i18n.time(c.at)}</td>
                    <td>{c.user}</td>
                    <td>{c.device}</td>
                    <td><code>{c.line}</code><div class="muted small">{c.mode}{c.rule ? ` · ${c.rule}` : ''}{c.exitStatus !== null ? ` · exit ${c.exitStatus}` : c.exitSignal ? ` · ${c.exitSignal}` : ''}</div></td>
                    <td><StatusBadge list="decision" value={c.decision} />{c.reviewer && <div class="muted small">{c.reviewer}</div>}</td>
                    <td>{c.recording
                      ? <a href={href(`/recordings/${encodeURIComponent(c.recording)}${query({ session: c.session, device: c.device, user: c.user, seek: c.at })}`)}>{t('commands.openAt')}</a>
                      : t('common.none')}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        </>
      )}
    </section>
  );
}
