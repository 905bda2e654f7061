import { useEffect, useId, useMemo, useState } from 'preact/hooks';
import { api, query } from '../../api/api-client.js';
import type { AccessRequest, DeviceSummary, Policy } from '../../api/api-types.js';
import { LevelBadge } from '../../components/badges.js';
import { Field } from '../../components/form-field.js';
import { PageHeader } from '../../components/page-header.js';
import { ErrorNote, Loading } from '../../components/status-views.js';
import { useResource } from '../../components/use-resource.js';
import { useI18n } from '../../i18n/i18n.js';
import { navigate } from '../../nav/hash-router.js';

const PROTOCOL_ORDER = ['ssh', 'vnc', 'rdp'];

/** A datetime-local value ("2026-11-23T14:05") for a time, in the browser's zone. */
function localInput(d: Date): string {
  const p = (n: number): string => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
}

export default function NewRequestPage() {
  const i18n = useI18n();
  const { t } = i18n;
  const policy = useResource<Policy>('/api/policy');
  const ids = { search: useId(), profile: useId(), up: useId(), down: useId(), ft: useId() };

  const [search, setSearch] = useState('');
  const [debounced, setDebounced] = useState('');
  const [selected, setSelected] = useState<DeviceSummary[]>([]);
  const [protocols, setProtocols] = useState<string[]>(['ssh']);
  const [purpose, setPurpose] = useState('');
  const [workOrder, setWorkOrder] = useState('');
  const [startNow, setStartNow] = useState(true);
  const [start, setStart] = useState(() => localInput(new Date(Date.now() + 15 * 60_000)));
  const [duration, setDuration] = useState(60);
  const [profile, setProfile] = useState<string | null>(null);
  const [upload, setUpload] = useState(false);
  const [download, setDownload] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [problems, setProblems] = useState<Record<string, string>>({});

  useEffect(() => {
    const timer = setTimeout(() => setDebounced(search.trim()), 250);
    return () => clearTimeout(timer);
  }, [search]);
  const devices = useResource<{ devices: DeviceSummary[] }>(`/api/devices${query({ q: debounced })}`);

  const level = selected.reduce<number | null>((m, d) => (m === null || d.level > m ? d.level : m), null);
  const rule = policy.data?.levels.find((l) => l.level === level) ?? null;
  const maxMinutes = rule?.longestWindowMinutes ?? null;
  const profiles = useMemo(() => (policy.data?.profiles ?? []).filter((p) => !rule || rule.modes.includes(p.mode)), [policy.data, rule]);
  const offered = PROTOCOL_ORDER.filter((p) => selected.length === 0 || selected.every((d) => d.protocols.includes(p)));

  // A stricter device changes what may be asked: keep the choices inside what its level allows.
  useEffect(() => {
    if (!rule) return;
    if (profile === null || !profiles.some((p) => p.name === profile)) setProfile(rule.defaultProfile ?? profiles[0]?.name ?? null);
    if (maxMinutes !== null && duration > maxMinutes) setDuration(maxMinutes);
  }, [rule, profiles]);
  useEffect(() => {
    setProtocols((ps) => {
      const kept = ps.filter((p) => offered.includes(p));
      return kept.length ? kept : offered.slice(0, 1);
    });
  }, [offered.join(',')]);

  const toggleDevice = (d: DeviceSummary): void =>
    setSelected((s) => (s.some((x) => x.name === d.name) ? s.filter((x) => x.name !== d.name) : [...s, d]));

  function validate(): Record<string, string> {
    const p: Record<string, string> = {};
    if (selected.length === 0) p.devices = t('newRequest.needDevice');
    if (protocols.length === 0) p.protocols = t('newRequest.needProtocol');
    if (!purpose.trim()) p.purpose = t('form.required');
    if (!workOrder.trim()) p.workOrder = t('form.required');
    if (!startNow && !(Date.parse(start) > Date.now() - 60_000)) p.start = t('newRequest.startInPast');
    if (!Number.isInteger(duration) || duration < 1) p.duration = t('newRequest.durationInvalid');
    else if (maxMinutes !== null && duration > maxMinutes) p.duration = t('newRequest.durationTooLong', { max: i18n.minutes(maxMinutes) });
    return p;
  }

  async function submit(e: Event): Promise<void> {
    e.preventDefault();
    const p = validate();
    setProblems(p);
    if (Object.keys(p).length) return;
    setBusy(true);
    setError(null);
    try {
      const r = await api.post<AccessRequest>('/api/requests', {
        devices: selected.map((d) => d.name), protocols, purpose: purpose.trim(), workOrder: workOrder.trim(),
        from: startNow ? new Date().toISOString() : new Date(start).toISOString(), durationMinutes: duration, profile, upload, download,
      });
      navigate(`/requests?created=${encodeURIComponent(r.id)}`);
    } catch (err) {
      setError(err);
      setBusy(false);
    }
  }

  const describe = (key: string, hint: boolean): string | undefined =>
    [hint ? `${key}-hint` : null, problems[key] ? `${key}-error` : null].filter(Boolean).join(' ') || undefined;

  return (
    <section class="page" data-page="new-request">
      <PageHeader title={t('nav.newRequest')} intro={t('newRequest.intro')} />
      <form class="form form-wide" onSubmit={(e) => void submit(e)} noValidate>
        <fieldset class="fieldset">
          <legend>{t('newRequest.devicesLegend')}</legend>
          <Field id={ids.search} label={t('newRequest.search')} hint={t('newRequest.searchHint')}>
            <input id={ids.search} type="search" value={search} autocomplete="off" aria-describedby={`${ids.search}-hint`}
              onInput={(e) => setSearch(e.currentTarget.value)} />
          </Field>
          {devices.loading ? <Loading /> : devices.error ? <ErrorNote error={devices.error} onRetry={devices.reload} /> : (
            <div class="device-results" role="group" aria-label={t('newRequest.results')}>
              {(devices.data?.devices ?? []).length === 0 && <p class="state state-empty">{t('newRequest.noDevices')}</p>}
              {(devices.data?.devices ?? []).map((d) => {
                const lr = policy.data?.levels.find((l) => l.level === d.level);
                const checked = selected.some((x) => x.name === d.name);
                const inactive = d.state !== 'active';
                return (
                  <label key={d.name} class={`device-option${checked ? ' checked' : ''}${inactive ? ' disabled' : ''}`} data-device={d.name}>
                    <input type="checkbox" checked={checked} disabled={inactive} onChange={() => toggleDevice(d)} />
                    <span class="device-option-main">
                      <strong>{d.name}</strong> <LevelBadge level={d.level} />
                      {inactive && <span class="badge badge-warn">{i18n.name('deviceState', d.state)}</span>}
                      {[d.type, d.manufacturer, d.model, d.department, d.location].some(Boolean) && (
                        <span class="muted small block">
                          {[d.type, d.manufacturer, d.model].filter(Boolean).join(' · ')}
                          {(d.department || d.location) && ` — ${[d.department, d.location].filter(Boolean).join(', ')}`}
                        </span>
                      )}
                      <span class="small block">
                        {lr ? t('newRequest.levelAllows', { window: i18n.minutes(lr.longestWindowMinutes) }) : null}
                        {' · '}{d.protocols.map((p) => p.toUpperCase()).join(', ')}
                      </span>
                    </span>
                  </label>
                );
              })}
            </div>
          )}
          {problems.devices && <p class="field-error" role="alert">{problems.devices}</p>}
          {selected.length > 0 && (
            <p class="selected-summary" aria-live="polite">
              {t('newRequest.selected', { devices: selected.map((d) => d.name).join(', ') })}{' '}
              {level !== null && <LevelBadge level={level} />}
              {rule && <> {t('newRequest.ruleSummary', { window: i18n.minutes(rule.longestWindowMinutes), approvals: rule.approvals.length })}</>}
            </p>
          )}
        </fieldset>

        <fieldset class="fieldset">
          <legend>{t('request.protocol')}</legend>
          <div class="choice-row">
            {PROTOCOL_ORDER.map((p) => (
              <label key={p} class="choice">
                <input type="checkbox" checked={protocols.includes(p)} disabled={!offered.includes(p)}
                  onChange={(e) => {
                    const on = e.currentTarget.checked;
                    setProtocols((ps) => (on ? [...ps, p] : ps.filter((x) => x !== p)));
                  }} />
                {p.toUpperCase()}
              </label>
            ))}
          </div>
          {problems.protocols && <p class="field-error" role="alert">{problems.protocols}</p>}
        </fieldset>

        <fieldset class="fieldset">
          <legend>{t('newRequest.workLegend')}</legend>
          <Field id="purpose" label={t('request.purpose')} hint={t('newRequest.purposeHint')} required error={problems.purpose ?? null}>
            <textarea id="purpose" rows={3} maxLength={2000} required value={purpose} aria-invalid={!!problems.purpose || undefined}
              aria-describedby={describe('purpose', true)} onInput={(e) => setPurpose(e.currentTarget.value)} />
          </Field>
          <Field id="workOrder" label={t('request.workOrder')} hint={t('newRequest.workOrderHint')} required error={problems.workOrder ?? null}>
            <input id="workOrder" maxLength={100} required value={workOrder} aria-invalid={!!problems.workOrder || undefined}
              aria-describedby={describe('workOrder', true)} onInput={(e) => setWorkOrder(e.currentTarget.value)} />
          </Field>
        </fieldset>

        <fieldset class="fieldset">
          <legend>{t('request.window')}</legend>
          <div class="choice-row" role="radiogroup" aria-label={t('newRequest.startLegend')}>
            <label class="choice">
              <input type="radio" name="start-mode" checked={startNow} onChange={() => setStartNow(true)} />
              {t('newRequest.startNow')}
            </label>
            <label class="choice">
              <input type="radio" name="start-mode" checked={!startNow} onChange={() => setStartNow(false)} />
              {t('newRequest.startLater')}
            </label>
          </div>
          {!startNow && (
            <Field id="start" label={t('newRequest.start')} required error={problems.start ?? null}>
              <input id="start" type="datetime-local" value={start} min={localInput(new Date())} aria-describedby={describe('start', false)}
                onInput={(e) => setStart(e.currentTarget.value)} />
            </Field>
          )}
          <Field id="duration" label={t('newRequest.duration')} required error={problems.duration ?? null}
            hint={maxMinutes !== null ? t('newRequest.durationMax', { max: i18n.minutes(maxMinutes), level: level ?? '' }) : t('newRequest.durationChooseDevice')}>
            <input id="duration" type="number" min={1} max={maxMinutes ?? 24 * 60} step={5} value={duration} aria-describedby={describe('duration', true)}
              aria-invalid={!!problems.duration || undefined} onInput={(e) => setDuration(Number(e.currentTarget.value))} />
          </Field>
        </fieldset>

        <fieldset class="fieldset">
          <legend>{t('newRequest.commandsLegend')}</legend>
          {policy.loading ? <Loading /> : policy.error ? <ErrorNote error={policy.error} onRetry={policy.reload} /> : (
            <Field id={ids.profile} label={t('request.profile')} hint={rule ? t('newRequest.profileModes', { modes: rule.modes.map((m) => i18n.name('profileMode', m)).join(t('common.listSeparator')) }) : undefined}>
              <select id={ids.profile} value={profile ?? ''} aria-describedby={rule ? `${ids.profile}-hint` : undefined} onChange={(e) => setProfile(e.currentTarget.value || null)}>
                {!rule && <option value="">{t('newRequest.profileDefault')}</option>}
                {profiles.map((p) => (
                  <option key={p.name} value={p.name}>{p.name} ({i18n.name('profileMode', p.mode)})</option>
                ))}
              </select>
            </Field>
          )}
          {profile && (
            <ul class="profile-description small">
              {(profiles.find((p) => p.name === profile)?.description ?? []).map((line, i) => <li key={i}>{line}</li>)}
            </ul>
          )}
          <label class="choice">
            <input id={ids.up} type="checkbox" checked={upload} onChange={(e) => setUpload(e.currentTarget.checked)} aria-describedby={`${ids.ft}-hint`} />
            {t('newRequest.upload')}
          </label>
          <label class="choice">
            <input id={ids.down} type="checkbox" checked={download} onChange={(e) => setDownload(e.currentTarget.checked)} aria-describedby={`${ids.ft}-hint`} />
            {t('newRequest.download')}
          </label>
          <p class="hint" id={`${ids.ft}-hint`}>{t('newRequest.fileTransferHint')}</p>
        </fieldset>

        {Object.keys(problems).length > 0 && <p class="field-error" role="alert">{t('form.fixProblems')}</p>}
        {error !== null && <ErrorNote error={error} />}
        <div class="actions">
          <button type="submit" class="btn btn-primary" disabled={busy}>{busy ? t('common.working') : t('newRequest.submit')}</button>
          <a class="btn" href="#/requests">{t('common.cancel')}</a>
        </div>
      </form>
    </section>
  );
}
