import { useId, useState } from 'preact/hooks';
import { query } from '../../api/api-client.js';
import type { Recording } from '../../api/api-types.js';
import { Field } from '../../components/form-field.js';
import { PageHeader } from '../../components/page-header.js';
import { Empty, ResourceView } from '../../components/status-views.js';
import { useResource } from '../../components/use-resource.js';
import { useI18n } from '../../i18n/i18n.js';
import { href } from '../../nav/hash-router.js';
import { dayEnd, dayStart } from '../../components/day-bounds.js';

interface Filters {
  vendor: string;
  device: string;
  from: string;
  to: string;
  protocol: string;
}

const EMPTY: Filters = { vendor: '', device: '', from: '', to: '', protocol: '' };

export default function RecordingsPage() {
  const i18n = useI18n();
  const { t } = i18n;
  const ids = { vendor: useId(), device: useId(), from: useId(), to: useId(), protocol: useId() };
  const [draft, setDraft] = useState<Filters>(EMPTY);
  const [applied, setApplied] = useState<Filters>(EMPTY);
  const path = `/api/recordings${query({
    vendor: applied.vendor.trim(), device: applied.device.trim(), protocol: applied.protocol, from: dayStart(applied.from), to: dayEnd(applied.to), limit: 200,
  })}`;
  const res = useResource<{ recordings: Recording[] }>(path);
  const set = (k: keyof Filters) => (e: Event) => setDraft({ ...draft, [k]: (e.currentTarget as HTMLInputElement).value });

  return (
    <section class="page" data-page="recordings">
      <PageHeader title={t('nav.recordings')} intro={t('recordings.intro')} />
      <form class="filters" role="search" aria-label={t('recordings.filters')} onSubmit={(e) => { e.preventDefault(); setApplied(draft); }}>
        <Field id={ids.vendor} label={t('request.vendor')}><input id={ids.vendor} value={draft.vendor} onInput={set('vendor')} /></Field>
        <Field id={ids.device} label={t('grant.device')}><input id={ids.device} value={draft.device} onInput={set('device')} /></Field>
        <Field id={ids.from} label={t('filters.fromDay')}><input id={ids.from} type="date" value={draft.from} onInput={set('from')} /></Field>
        <Field id={ids.to} label={t('filters.toDay')}><input id={ids.to} type="date" value={draft.to} onInput={set('to')} /></Field>
        <Field id={ids.protocol} label={t('request.protocol')}>
          <select id={ids.protocol} value={draft.protocol} onChange={set('protocol')}>
            <option value="">{t('filters.any')}</option>
            <option value="ssh">SSH</option>
            <option value="vnc">VNC</option>
            <option value="rdp">RDP</option>
          </select>
        </Field>
        <div class="filters-actions">
          <button type="submit" class="btn btn-primary">{t('filters.apply')}</button>
          <button type="button" class="btn" onClick={() => { setDraft(EMPTY); setApplied(EMPTY); }}>{t('filters.clear')}</button>
        </div>
      </form>
      <ResourceView {...res}>
        {({ recordings }) => recordings.length === 0 ? <Empty><p>{t('recordings.empty')}</p></Empty> : (
          <div class="table-wrap">
            <table class="table">
              <caption class="sr-only">{t('nav.recordings')}</caption>
              <thead>
                <tr>
                  <th scope="col">{t('session.started')}</th>
                  <th scope="col">{t('session.user')}</th>
                  <th scope="col">{t('grant.device')}</th>
                  <th scope="col">{t('request.protocol')}</th>
                  <th scope="col">{t('session.ended')}</th>
                  <th scope="col">{t('recordings.size')}</th>
                  <th scope="col">{t('recordings.sealed')}</th>
                  <th scope="col"><span class="sr-only">{t('common.actions')}</span></th>
                </tr>
              </thead>
              <tbody>
                {recordings.map((r) => (
                  <tr key={r.id} data-recording={r.id}>
                    <td>{i18n.time(r.startedAt)}</td>
                    <td>{r.user}</td>
                    <td>{r.device}</td>
                    <td>{r.protocol.toUpperCase()}</td>
                    <td>{r.endedAt ? i18n.time(r.endedAt) : t('session.stillLive')}{r.endReason && <div class="muted small">{i18n.name('endReason', r.endReason)}</div>}</td>
                    <td class="num">{i18n.bytes(r.size)}</td>
                    <td>{r.sealed ? <span class="badge badge-ok">{t('recordings.isSealed')}</span> : <span class="badge badge-warn">{t('recordings.notSealed')}</span>}</td>
                    <td class="cell-actions">
                      <a class="btn btn-small btn-primary"
                        href={href(`/recordings/${encodeURIComponent(r.id)}${r.format === 'pcrfb' ? '/desktop' : ''}${query({ session: r.session, user: r.user, device: r.device, at: r.startedAt })}`)}
                        aria-label={t('recordings.replayLabel', { user: r.user, device: r.device })}>{t('recordings.replay')}</a>
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
