import { useId, useState } from 'preact/hooks';
import {
  BODY_USAGE_FORMS, EFFECTS, NON_BODY_USAGE_FORMS, SEVERITIES, classifyDevice,
} from '../../../../../policy/device-classification.js';
import { PROTOCOLS } from '../../../../../policy/types.js';
import { ApiFailure, api, query } from '../../api/api-client.js';
import type { Device } from '../../api/api-types.js';
import { authStore } from '../../auth/auth-state.js';
import { ActionButton } from '../../components/action-dialog.js';
import { LevelBadge, StatusBadge } from '../../components/badges.js';
import { Field } from '../../components/form-field.js';
import { ModalDialog } from '../../components/modal-dialog.js';
import { PageHeader } from '../../components/page-header.js';
import { Empty, ErrorNote, Loading, Notice, ResourceView } from '../../components/status-views.js';
import { useResource } from '../../components/use-resource.js';
import { useI18n } from '../../i18n/i18n.js';
import { allowed } from '../../nav/routes.js';
import { useStore } from '../../state/store.js';

const DATA_WIPING = ['completed', 'not-required', 'pending'] as const;

/**
 * Registers a device, or (given `device`) corrects one registered with a wrong identity or
 * classification (PATCH: protocols, ports and the name stay; a new level re-decides its grants).
 */
function RegisterDialog({ onClose, device }: { onClose: (name: string | null) => void; device?: Device }) {
  const i18n = useI18n();
  const { t } = i18n;
  const fid = useId();
  const id = (k: string): string => `${fid}-${k}`;
  const c0 = device?.classification;
  const [f, setF] = useState({
    name: device?.name ?? '', host: device?.host ?? '', udi: device?.udi ?? '', ip: device?.ip ?? '', mac: device?.mac ?? '', type: device?.type ?? '',
    manufacturer: device?.manufacturer ?? '', model: device?.model ?? '', department: device?.department ?? '', location: device?.location ?? '',
    contact: (c0?.contact ?? 'body') as 'body' | 'none', usageForm: c0?.usageForm ?? 'diagnosis-monitoring', severity: c0?.severity ?? 'harm', effect: c0?.effect ?? 'indirect',
  });
  const [protocols, setProtocols] = useState<string[]>(['ssh']);
  const [ports, setPorts] = useState<Record<string, string>>({ ssh: '22', vnc: '5900', rdp: '3389' });
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [problem, setProblem] = useState<string | null>(null);
  const set = (k: keyof typeof f) => (e: Event) => setF({ ...f, [k]: (e.currentTarget as HTMLInputElement).value });
  const forms = f.contact === 'body' ? BODY_USAGE_FORMS : NON_BODY_USAGE_FORMS;
  const classification = { usageForm: f.usageForm, contact: f.contact, ...(f.contact === 'body' ? { severity: f.severity } : { effect: f.effect }) };
  const level = classifyDevice(classification);

  async function submit(e: Event): Promise<void> {
    e.preventDefault();
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(f.name) || !f.host.trim() || !f.udi.trim() || protocols.length === 0) {
      setProblem(t('devices.registerRule'));
      return;
    }
    if (!level.allow) {
      setProblem(t('devices.classInvalid'));
      return;
    }
    setProblem(null);
    setBusy(true);
    setError(null);
    const opt = (v: string): string | null => v.trim() || null;
    try {
      if (device) {
        await api.patch(`/api/devices/${encodeURIComponent(device.name)}`, {
          host: f.host.trim(), udi: f.udi.trim(), ip: opt(f.ip), mac: opt(f.mac), type: opt(f.type), manufacturer: opt(f.manufacturer), model: opt(f.model),
          department: opt(f.department), location: opt(f.location), usageForm: f.usageForm, contact: f.contact,
          severity: f.contact === 'body' ? f.severity : null, effect: f.contact === 'body' ? null : f.effect,
        });
        onClose(device.name);
        return;
      }
      await api.post('/api/devices', {
        name: f.name, host: f.host.trim(), protocols, udi: f.udi.trim(),
        ports: Object.fromEntries(protocols.map((p) => [p, Number(ports[p])]).filter(([, n]) => Number.isInteger(n) && (n as number) > 0)),
        ip: opt(f.ip), mac: opt(f.mac), type: opt(f.type), manufacturer: opt(f.manufacturer), model: opt(f.model), department: opt(f.department), location: opt(f.location),
        ...classification,
      });
      onClose(f.name);
    } catch (err) {
      setError(err);
      setBusy(false);
    }
  }

  const text = (k: 'name' | 'host' | 'udi' | 'ip' | 'mac' | 'type' | 'manufacturer' | 'model' | 'department' | 'location', label: string, required = false) => (
    <Field id={id(k)} label={label} required={required}>
      <input id={id(k)} value={f[k]} required={required} maxLength={k === 'host' ? 253 : 100} onInput={set(k)} disabled={device !== undefined && k === 'name'} />
    </Field>
  );

  return (
    <ModalDialog title={device ? t('devices.correctTitle', { device: device.name }) : t('devices.register')} onClose={() => onClose(null)} wide>
      <form class="form" onSubmit={(e) => void submit(e)} noValidate>
        <div class="form-row">
          {text('name', t('devices.name'), true)}
          {text('udi', t('devices.udi'), true)}
        </div>
        <div class="form-row">
          {text('host', t('devices.host'), true)}
          {text('ip', t('devices.ip'))}
          {text('mac', t('devices.mac'))}
        </div>
        {!device && <fieldset class="fieldset">
          <legend>{t('devices.protocolsPorts')}</legend>
          <div class="form-row">
            {PROTOCOLS.map((p) => (
              <div key={p} class="protocol-port">
                <label class="choice">
                  <input type="checkbox" checked={protocols.includes(p)}
                    onChange={(e) => setProtocols(e.currentTarget.checked ? [...protocols, p] : protocols.filter((x) => x !== p))} />
                  {p.toUpperCase()}
                </label>
                <label class="sr-only" for={id(`port-${p}`)}>{t('devices.portOf', { protocol: p.toUpperCase() })}</label>
                <input id={id(`port-${p}`)} type="number" min={1} max={65535} value={ports[p]} disabled={!protocols.includes(p)}
                  onInput={(e) => setPorts({ ...ports, [p]: e.currentTarget.value })} />
              </div>
            ))}
          </div>
        </fieldset>}
        <div class="form-row">
          {text('type', t('devices.type'))}
          {text('manufacturer', t('devices.manufacturer'))}
          {text('model', t('devices.model'))}
        </div>
        <div class="form-row">
          {text('department', t('devices.department'))}
          {text('location', t('devices.location'))}
        </div>
        <fieldset class="fieldset">
          <legend>{t('devices.classification')}</legend>
          <div class="choice-row">
            {(['body', 'none'] as const).map((c) => (
              <label key={c} class="choice">
                <input type="radio" name={id('contact')} checked={f.contact === c}
                  onChange={() => setF({ ...f, contact: c, usageForm: (c === 'body' ? BODY_USAGE_FORMS : NON_BODY_USAGE_FORMS)[0] })} />
                {i18n.name('contact', c)}
              </label>
            ))}
          </div>
          <div class="form-row">
            <Field id={id('usage')} label={t('devices.usageForm')}>
              <select id={id('usage')} value={f.usageForm} onChange={set('usageForm')}>
                {forms.map((u) => <option key={u} value={u}>{i18n.name('usageForm', u)}</option>)}
              </select>
            </Field>
            {f.contact === 'body' ? (
              <Field id={id('severity')} label={t('devices.severity')}>
                <select id={id('severity')} value={f.severity} onChange={set('severity')}>
                  {SEVERITIES.map((s) => <option key={s} value={s}>{i18n.name('severity', s)}</option>)}
                </select>
              </Field>
            ) : (
              <Field id={id('effect')} label={t('devices.effect')}>
                <select id={id('effect')} value={f.effect} onChange={set('effect')}>
                  {EFFECTS.map((x) => <option key={x} value={x}>{i18n.name('effect', x)}</option>)}
                </select>
              </Field>
            )}
          </div>
          <p class="computed-level" aria-live="polite">
            {level.allow ? <>{t('devices.computedLevel')} <LevelBadge level={level.value} /></> : <span class="field-error">{t('devices.classInvalid')}</span>}
          </p>
          {device && level.allow && level.value !== device.level && (
            <Notice kind="warning">{t('devices.levelChangeWarning', { from: device.level, to: level.value })}</Notice>
          )}
        </fieldset>
        {problem && <p class="field-error" role="alert">{problem}</p>}
        {error !== null && <ErrorNote error={error} />}
        <div class="actions">
          <button type="submit" class="btn btn-primary" disabled={busy}>{busy ? t('common.working') : device ? t('devices.correct') : t('devices.register')}</button>
          <button type="button" class="btn" onClick={() => onClose(null)}>{t('common.cancel')}</button>
        </div>
      </form>
    </ModalDialog>
  );
}

function ImportDialog({ onClose }: { onClose: (imported: string[] | null) => void }) {
  const { t } = useI18n();
  const ids = { file: useId(), text: useId() };
  const [csv, setCsv] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [problems, setProblems] = useState<Array<{ line: number; message: string }>>([]);

  async function submit(e: Event): Promise<void> {
    e.preventDefault();
    if (!csv.trim()) return;
    setBusy(true);
    setError(null);
    setProblems([]);
    try {
      const r = await api.post<{ imported: string[]; problems: Array<{ line: number; message: string }> }>('/api/devices/import', { csv });
      onClose(r.imported);
    } catch (err) {
      // A file with bad rows comes back as 400 with the rows; nothing was imported.
      const rows = err instanceof ApiFailure ? (err.body as { problems?: unknown } | null)?.problems : undefined;
      if (Array.isArray(rows)) setProblems(rows as Array<{ line: number; message: string }>);
      else setError(err);
      setBusy(false);
    }
  }

  return (
    <ModalDialog title={t('devices.import')} onClose={() => onClose(null)} wide>
      <form class="form" onSubmit={(e) => void submit(e)}>
        <p class="dialog-text">{t('devices.importIntro')}</p>
        <Field id={ids.file} label={t('devices.importFile')}>
          <input id={ids.file} type="file" accept=".csv,text/csv" onChange={(e) => {
            const file = e.currentTarget.files?.[0];
            if (file) void file.text().then(setCsv);
          }} />
        </Field>
        <Field id={ids.text} label={t('devices.importText')}>
          <textarea id={ids.text} rows={8} class="mono" value={csv} onInput={(e) => setCsv(e.currentTarget.value)} />
        </Field>
        {problems.length > 0 && (
          <div class="note note-error" role="alert">
            <p class="note-title">{t('devices.importProblems')}</p>
            <ul>{problems.map((p) => <li key={p.line}>{t('devices.importLine', { line: p.line, message: p.message })}</li>)}</ul>
          </div>
        )}
        {error !== null && problems.length === 0 && <ErrorNote error={error} />}
        <div class="actions">
          <button type="submit" class="btn btn-primary" disabled={busy || !csv.trim()}>{busy ? t('common.working') : t('devices.importSubmit')}</button>
          <button type="button" class="btn" onClick={() => onClose(null)}>{t('common.cancel')}</button>
        </div>
      </form>
    </ModalDialog>
  );
}

function CredentialDialog({ device, onClose }: { device: string; onClose: (saved: boolean) => void }) {
  const { t } = useI18n();
  const ids = { user: useId(), secret: useId() };
  const [username, setUsername] = useState('');
  const [kind, setKind] = useState<'password' | 'key'>('password');
  const [secret, setSecret] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);

  async function submit(e: Event): Promise<void> {
    e.preventDefault();
    if (!username.trim() || !secret) return;
    setBusy(true);
    setError(null);
    try {
      await api.put(`/api/devices/${encodeURIComponent(device)}/credential`, { username: username.trim(), ...(kind === 'password' ? { password: secret } : { privateKey: secret }) });
      setSecret('');
      onClose(true);
    } catch (err) {
      setError(err);
      setBusy(false);
    }
  }

  return (
    <ModalDialog title={t('devices.credentialTitle', { device })} onClose={() => { setSecret(''); onClose(false); }}>
      <form class="form" onSubmit={(e) => void submit(e)} autocomplete="off">
        <p class="dialog-text">{t('devices.credentialIntro')}</p>
        <Field id={ids.user} label={t('devices.credentialUser')} required>
          <input id={ids.user} value={username} required autocomplete="off" onInput={(e) => setUsername(e.currentTarget.value)} />
        </Field>
        <div class="choice-row" role="radiogroup" aria-label={t('devices.credentialKind')}>
          <label class="choice"><input type="radio" name="cred-kind" checked={kind === 'password'} onChange={() => { setKind('password'); setSecret(''); }} />{t('devices.credentialPassword')}</label>
          <label class="choice"><input type="radio" name="cred-kind" checked={kind === 'key'} onChange={() => { setKind('key'); setSecret(''); }} />{t('devices.credentialKey')}</label>
        </div>
        <Field id={ids.secret} label={kind === 'password' ? t('devices.credentialPassword') : t('devices.credentialKey')} required>
          {kind === 'password' ? (
            <input id={ids.secret} type="password" autocomplete="new-password" value={secret} required onInput={(e) => setSecret(e.currentTarget.value)} />
          ) : (
            <textarea id={ids.secret} rows={6} class="mono secret-input" spellcheck={false} autocomplete="off" value={secret} required
              placeholder="-----BEGIN OPENSSH PRIVATE KEY-----" onInput={(e) => setSecret(e.currentTarget.value)} />
          )}
        </Field>
        {error !== null && <ErrorNote error={error} />}
        <div class="actions">
          <button type="submit" class="btn btn-primary" disabled={busy || !username.trim() || !secret}>{busy ? t('common.working') : t('devices.credentialSave')}</button>
          <button type="button" class="btn" onClick={() => { setSecret(''); onClose(false); }}>{t('common.cancel')}</button>
        </div>
      </form>
    </ModalDialog>
  );
}

function SecurityCheckDialog({ device, onClose }: { device: string; onClose: (done: boolean) => void }) {
  const { t } = useI18n();
  const notesId = useId();
  const [passed, setPassed] = useState(true);
  const [notes, setNotes] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);

  async function submit(e: Event): Promise<void> {
    e.preventDefault();
    if (!notes.trim()) return;
    setBusy(true);
    setError(null);
    try {
      await api.post(`/api/devices/${encodeURIComponent(device)}/security-check`, { passed, notes: notes.trim() });
      onClose(true);
    } catch (err) {
      setError(err);
      setBusy(false);
    }
  }

  return (
    <ModalDialog title={t('devices.checkTitle', { device })} onClose={() => onClose(false)}>
      <form class="form" onSubmit={(e) => void submit(e)}>
        <p class="dialog-text">{t('devices.checkIntro')}</p>
        <div class="choice-row" role="radiogroup" aria-label={t('devices.checkResult')}>
          <label class="choice"><input type="radio" name="check" checked={passed} onChange={() => setPassed(true)} />{t('devices.checkPassed')}</label>
          <label class="choice"><input type="radio" name="check" checked={!passed} onChange={() => setPassed(false)} />{t('devices.checkFailed')}</label>
        </div>
        <Field id={notesId} label={t('devices.checkNotes')} required>
          <textarea id={notesId} rows={3} maxLength={2000} value={notes} required onInput={(e) => setNotes(e.currentTarget.value)} />
        </Field>
        {error !== null && <ErrorNote error={error} />}
        <div class="actions">
          <button type="submit" class="btn btn-primary" disabled={busy || !notes.trim()}>{busy ? t('common.working') : t('devices.checkRecord')}</button>
          <button type="button" class="btn" onClick={() => onClose(false)}>{t('common.cancel')}</button>
        </div>
      </form>
    </ModalDialog>
  );
}

function DecommissionDialog({ device, onClose }: { device: string; onClose: (done: boolean) => void }) {
  const i18n = useI18n();
  const { t } = i18n;
  const ids = { method: useId(), wiping: useId(), at: useId(), notes: useId() };
  const [method, setMethod] = useState('');
  const [wiping, setWiping] = useState<(typeof DATA_WIPING)[number]>('completed');
  const [at, setAt] = useState('');
  const [notes, setNotes] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);

  async function submit(e: Event): Promise<void> {
    e.preventDefault();
    if (!method.trim()) return;
    setBusy(true);
    setError(null);
    try {
      await api.post(`/api/devices/${encodeURIComponent(device)}/decommission`, {
        method: method.trim(), dataWiping: wiping, ...(at ? { disposedAt: new Date(at).toISOString() } : {}), notes: notes.trim() || null,
      });
      onClose(true);
    } catch (err) {
      setError(err);
      setBusy(false);
    }
  }

  return (
    <ModalDialog title={t('devices.decommissionTitle', { device })} onClose={() => onClose(false)}>
      <form class="form" onSubmit={(e) => void submit(e)}>
        <Notice kind="warning">{t('devices.decommissionWarning')}</Notice>
        <Field id={ids.method} label={t('devices.disposalMethod')} required>
          <input id={ids.method} value={method} maxLength={200} required onInput={(e) => setMethod(e.currentTarget.value)} />
        </Field>
        <Field id={ids.wiping} label={t('devices.dataWiping')} required>
          <select id={ids.wiping} value={wiping} onChange={(e) => setWiping(e.currentTarget.value as (typeof DATA_WIPING)[number])}>
            {DATA_WIPING.map((w) => <option key={w} value={w}>{i18n.name('dataWiping', w)}</option>)}
          </select>
        </Field>
        <Field id={ids.at} label={t('devices.disposedAt')} hint={t('devices.disposedAtHint')}>
          <input id={ids.at} type="datetime-local" value={at} onInput={(e) => setAt(e.currentTarget.value)} />
        </Field>
        <Field id={ids.notes} label={t('devices.notes')}>
          <textarea id={ids.notes} rows={2} maxLength={2000} value={notes} onInput={(e) => setNotes(e.currentTarget.value)} />
        </Field>
        {error !== null && <ErrorNote error={error} />}
        <div class="actions">
          <button type="submit" class="btn btn-danger" disabled={busy || !method.trim()}>{busy ? t('common.working') : t('devices.decommission')}</button>
          <button type="button" class="btn" onClick={() => onClose(false)}>{t('common.cancel')}</button>
        </div>
      </form>
    </ModalDialog>
  );
}

function DeviceDetails({ name, onClose }: { name: string; onClose: () => void }) {
  const i18n = useI18n();
  const { t } = i18n;
  const res = useResource<Device>(`/api/devices/${encodeURIComponent(name)}`);
  const d = res.data;
  return (
    <ModalDialog title={t('devices.detailsTitle', { device: name })} onClose={onClose} wide>
      {res.loading ? <Loading /> : res.error ? <ErrorNote error={res.error} onRetry={res.reload} /> : d && (
        <>
          <dl class="facts">
            <div><dt>{t('devices.udi')}</dt><dd>{d.udi ?? t('common.none')}</dd></div>
            <div><dt>{t('devices.host')}</dt><dd>{d.host} · {Object.entries(d.ports).map(([p, n]) => `${p.toUpperCase()} ${n}`).join(', ')}</dd></div>
            <div><dt>{t('devices.ip')} / {t('devices.mac')}</dt><dd>{d.ip ?? t('common.none')} / {d.mac ?? t('common.none')}</dd></div>
            <div><dt>{t('devices.classification')}</dt><dd>
              {d.classification ? [i18n.name('contact', d.classification.contact), i18n.name('usageForm', d.classification.usageForm),
                d.classification.severity ? i18n.name('severity', d.classification.severity) : i18n.name('effect', d.classification.effect)].join(' · ') : t('common.none')}
              {' '}<LevelBadge level={d.level} /></dd></div>
            <div><dt>{t('devices.hostKey')}</dt><dd>{d.hostKey ? <code>{d.hostKey.fingerprint}</code> : <span class="badge badge-warn">{t('devices.hostKeyMissing')}</span>}</dd></div>
            <div><dt>{t('devices.credential')}</dt><dd>{d.credentialStored ? t('devices.credentialStored') : <span class="badge badge-warn">{t('devices.credentialMissing')}</span>}</dd></div>
          </dl>
          <h3>{t('devices.lifecycle')}</h3>
          {d.lifecycle.length === 0 ? <p class="muted">{t('common.none')}</p> : (
            <ol class="timeline">
              {d.lifecycle.map((e, i) => (
                <li key={i}>
                  <strong>{i18n.name('lifecycle', e.type)}</strong> · {i18n.time(e.at)} · {t('devices.by', { name: e.by })}
                  {e.approvedBy && ` · ${t('devices.approvedBy', { name: e.approvedBy })}`}
                  {Object.keys(e.details).length > 0 && (
                    <div class="muted small">{Object.entries(e.details).filter(([, v]) => v !== null && v !== '').map(([k, v]) => `${k}: ${String(v)}`).join(' · ')}</div>
                  )}
                </li>
              ))}
            </ol>
          )}
        </>
      )}
    </ModalDialog>
  );
}

type Dialog =
  | { kind: 'register' } | { kind: 'import' } | { kind: 'details'; device: string } | { kind: 'credential'; device: string }
  | { kind: 'check'; device: string } | { kind: 'decommission'; device: string } | { kind: 'correct'; device: Device };

export default function DevicesPage() {
  const i18n = useI18n();
  const { t } = i18n;
  const roles = useStore(authStore).me?.user.roles ?? [];
  const qId = useId();
  const levelId = useId();
  const stateId = useId();
  const [q, setQ] = useState('');
  const [level, setLevel] = useState('');
  const [state, setState] = useState('');
  const [applied, setApplied] = useState({ q: '', level: '', state: '' });
  const res = useResource<{ devices: Device[] }>(`/api/devices${query({ q: applied.q.trim(), level: applied.level, state: applied.state })}`);
  const [dialog, setDialog] = useState<Dialog | null>(null);
  const [notice, setNotice] = useState<string | null>(null);
  const done = (message: string) => (ok: boolean | string | string[] | null) => {
    setDialog(null);
    if (ok) {
      setNotice(message);
      res.reload();
    }
  };
  const manage = allowed(roles, 'device.manage');

  return (
    <section class="page" data-page="devices">
      <PageHeader title={t('nav.devices')} intro={t('devices.intro')}>
        {manage && <button type="button" class="btn" onClick={() => setDialog({ kind: 'import' })}>{t('devices.import')}</button>}
        {manage && <button type="button" class="btn btn-primary" onClick={() => setDialog({ kind: 'register' })}>{t('devices.register')}</button>}
      </PageHeader>
      {notice && <Notice kind="success">{notice}</Notice>}
      <form class="filters" role="search" aria-label={t('devices.filters')} onSubmit={(e) => { e.preventDefault(); setApplied({ q, level, state }); }}>
        <Field id={qId} label={t('devices.search')}><input id={qId} type="search" value={q} onInput={(e) => setQ(e.currentTarget.value)} /></Field>
        <Field id={levelId} label={t('rules.level')}>
          <select id={levelId} value={level} onChange={(e) => setLevel(e.currentTarget.value)}>
            <option value="">{t('filters.any')}</option>
            {[1, 2, 3].map((n) => <option key={n} value={String(n)}>{t('device.levelN', { n })}</option>)}
          </select>
        </Field>
        <Field id={stateId} label={t('devices.state')}>
          <select id={stateId} value={state} onChange={(e) => setState(e.currentTarget.value)}>
            <option value="">{t('filters.any')}</option>
            {['active', 'quarantined', 'decommissioned'].map((s) => <option key={s} value={s}>{i18n.name('deviceState', s)}</option>)}
          </select>
        </Field>
        <div class="filters-actions">
          <button type="submit" class="btn btn-primary">{t('filters.apply')}</button>
          <button type="button" class="btn" onClick={() => { setQ(''); setLevel(''); setState(''); setApplied({ q: '', level: '', state: '' }); }}>{t('filters.clear')}</button>
        </div>
      </form>
      <ResourceView {...res}>
        {({ devices }) => devices.length === 0 ? <Empty><p>{t('devices.empty')}</p></Empty> : (
          <div class="table-wrap">
            <table class="table">
              <caption class="sr-only">{t('nav.devices')}</caption>
              <thead>
                <tr>
                  <th scope="col">{t('devices.name')}</th>
                  <th scope="col">{t('devices.what')}</th>
                  <th scope="col">{t('rules.level')} · {t('devices.state')}</th>
                  <th scope="col">{t('devices.access')}</th>
                  <th scope="col"><span class="sr-only">{t('common.actions')}</span></th>
                </tr>
              </thead>
              <tbody>
                {devices.map((d) => (
                  <tr key={d.name} data-device={d.name}>
                    <td class="nowrap"><strong>{d.name}</strong><div class="muted small">{d.udi}</div></td>
                    <td>
                      {[d.type, d.manufacturer, d.model].filter(Boolean).join(' · ') || <span class="muted">{t('common.none')}</span>}
                      {(d.department || d.location) && <div class="muted small">{[d.department, d.location].filter(Boolean).join(', ')}</div>}
                    </td>
                    <td><LevelBadge level={d.level} /> <StatusBadge list="deviceState" value={d.state} /></td>
                    <td>
                      {d.protocols.map((p) => p.toUpperCase()).join(', ')}
                      <div class="muted small">{d.host}</div>
                      {!d.hostKey && d.protocols.includes('ssh') && <div class="badge badge-warn">{t('devices.hostKeyMissing')}</div>}
                    </td>
                    <td class="cell-actions cell-actions-wide">
                      <button type="button" class="btn btn-small" onClick={() => setDialog({ kind: 'details', device: d.name })}>{t('devices.details')}</button>
                      {manage && d.state !== 'decommissioned' && (
                        <button type="button" class="btn btn-small" onClick={() => setDialog({ kind: 'credential', device: d.name })}>{t('devices.setCredential')}</button>
                      )}
                      {manage && d.state !== 'decommissioned' && (
                        <button type="button" class="btn btn-small" onClick={() => setDialog({ kind: 'correct', device: d })}>{t('devices.correct')}</button>
                      )}
                      {allowed(roles, 'device.quarantine') && d.state === 'active' && (
                        <ActionButton label={t('devices.quarantine')} title={t('devices.quarantineTitle', { device: d.name })} body={t('devices.quarantineBody')}
                          confirmLabel={t('devices.quarantine')} reason={{ label: t('common.reason'), required: true, maxLength: 500 }}
                          onConfirm={(reason) => api.post(`/api/devices/${encodeURIComponent(d.name)}/quarantine`, { reason })}
                          onDone={() => { setNotice(t('devices.quarantined', { device: d.name })); res.reload(); }} />
                      )}
                      {allowed(roles, 'device.security_check') && d.state === 'quarantined' && (
                        <button type="button" class="btn btn-small" onClick={() => setDialog({ kind: 'check', device: d.name })}>{t('devices.securityCheck')}</button>
                      )}
                      {allowed(roles, 'device.decommission') && d.state !== 'decommissioned' && (
                        <button type="button" class="btn btn-small btn-danger" onClick={() => setDialog({ kind: 'decommission', device: d.name })}>{t('devices.decommission')}</button>
                      )}
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
      </ResourceView>
      {dialog?.kind === 'register' && <RegisterDialog onClose={(name) => done(t('devices.registered', { device: name ?? '' }))(name)} />}
      {dialog?.kind === 'import' && <ImportDialog onClose={(list) => done(t('devices.imported', { n: list?.length ?? 0 }))(list)} />}
      {dialog?.kind === 'correct' && <RegisterDialog device={dialog.device} onClose={(name) => done(t('devices.corrected', { device: name ?? '' }))(name)} />}
      {dialog?.kind === 'details' && <DeviceDetails name={dialog.device} onClose={() => setDialog(null)} />}
      {dialog?.kind === 'credential' && <CredentialDialog device={dialog.device} onClose={done(t('devices.credentialSaved', { device: dialog.device }))} />}
      {dialog?.kind === 'check' && <SecurityCheckDialog device={dialog.device} onClose={done(t('devices.checkRecorded', { device: dialog.device }))} />}
      {dialog?.kind === 'decommission' && <DecommissionDialog device={dialog.device} onClose={done(t('devices.decommissioned', { device: dialog.device }))} />}
    </section>
  );
}
