import { useId, useState } from 'preact/hooks';
import { ROLES, type Role } from '../../../../../policy/types.js';
import { api } from '../../api/api-client.js';
import type { Organisation, RoleChange, User } from '../../api/api-types.js';
import { authStore } from '../../auth/auth-state.js';
import { ActionButton } from '../../components/action-dialog.js';
import { Field } from '../../components/form-field.js';
import { LockUserButton } from '../../components/lock-user-button.js';
import { ModalDialog } from '../../components/modal-dialog.js';
import { PageHeader } from '../../components/page-header.js';
import { QrCode } from '../../components/qr-code.js';
import { Empty, ErrorNote, Notice, ResourceView } from '../../components/status-views.js';
import { useResource } from '../../components/use-resource.js';
import { useI18n } from '../../i18n/i18n.js';
import { allowed } from '../../nav/routes.js';
import { useStore } from '../../state/store.js';
import { dayEnd, dayStart } from '../../components/day-bounds.js';

const day = (iso: string | null | undefined): string => (iso ? iso.slice(0, 10) : '');

/** The otpauth URI of a new or reset account: shown once, as a QR code and as the secret. */
function EnrolmentShown({ user, uri, onClose }: { user: string; uri: string; onClose: () => void }) {
  const { t } = useI18n();
  const secret = (() => {
    try {
      return new URL(uri).searchParams.get('secret') ?? '';
    } catch {
      return '';
    }
  })();
  return (
    <ModalDialog title={t('users.enrolTitle', { user })} onClose={onClose}>
      <p class="dialog-text">{t('users.enrolBody')}</p>
      <div class="enrol-grid">
        <QrCode text={uri} label={t('enrol.qrLabel')} />
        <div>
          <p class="label-text">{t('enrol.secretLabel')}</p>
          <p class="secret"><code>{secret.replace(/(.{4})(?=.)/g, '$1 ')}</code></p>
        </div>
      </div>
      <div class="actions"><button type="button" class="btn btn-primary" onClick={onClose}>{t('common.done')}</button></div>
    </ModalDialog>
  );
}

function RolePicker({ value, onChange, legend }: { value: Role[]; onChange: (roles: Role[]) => void; legend: string }) {
  const { name } = useI18n();
  return (
    <fieldset class="fieldset fieldset-inline">
      <legend>{legend}</legend>
      <div class="choice-row">
        {ROLES.map((r) => (
          <label key={r} class="choice">
            <input type="checkbox" checked={value.includes(r)} onChange={(e) => onChange(e.currentTarget.checked ? [...value, r] : value.filter((x) => x !== r))} />
            {name('role', r)}
          </label>
        ))}
      </div>
    </fieldset>
  );
}

/**
 * Privileged roles waiting for a second admin (S-1.3): who asked, for whom, when, until when.
 * The admin who asked and the person concerned see why they cannot confirm; the server refuses them anyway.
 */
function PendingRoleChanges({ me, manage, onDone }: { me: string | null; manage: boolean; onDone: (message: string) => void }) {
  const i18n = useI18n();
  const { t, name } = i18n;
  const changes = useResource<{ changes: RoleChange[] }>('/api/role-changes?status=pending');
  const roles = (list: string[]): string => list.map((r) => name('role', r)).join(t('common.listSeparator'));
  return (
    <section class="subsection" data-section="role-changes">
      <h2>{t('roleChanges.title')}</h2>
      <p class="hint">{t('roleChanges.intro')}</p>
      <ResourceView {...changes}>
        {({ changes: list }) => list.length === 0 ? <Empty><p>{t('roleChanges.empty')}</p></Empty> : (
          <div class="table-wrap">
            <table class="table">
              <caption class="sr-only">{t('roleChanges.title')}</caption>
              <thead>
                <tr>
                  <th scope="col">{t('users.account')}</th>
                  <th scope="col">{t('roleChanges.adds')}</th>
                  <th scope="col">{t('roleChanges.askedBy')}</th>
                  <th scope="col">{t('roleChanges.expires')}</th>
                  <th scope="col"><span class="sr-only">{t('common.actions')}</span></th>
                </tr>
              </thead>
              <tbody>
                {list.map((c) => {
                  const mine = c.requestedBy === me;
                  const concernsMe = c.user === me;
                  return (
                    <tr key={c.id} data-role-change={c.id} data-user={c.user}>
                      <td><strong>{c.user}</strong><div class="muted small">{t('roleChanges.now', { roles: c.rolesBefore.length ? roles(c.rolesBefore) : t('common.none') })}</div></td>
                      <td>{roles(c.added)}</td>
                      <td>{c.requestedBy}<div class="muted small">{i18n.time(c.requestedAt)}</div></td>
                      <td>{i18n.time(c.expiresAt)}</td>
                      <td class="cell-actions cell-actions-wide">
                        {manage && (mine || concernsMe) && <span class="muted small">{t(mine ? 'roleChanges.yoursToAsk' : 'roleChanges.yoursToGet')}</span>}
                        {manage && !mine && !concernsMe && (
                          <ActionButton label={t('roleChanges.confirm')} title={t('roleChanges.confirmTitle', { user: c.user, roles: roles(c.added) })}
                            body={t('roleChanges.confirmBody', { asker: c.requestedBy })} confirmLabel={t('roleChanges.confirm')}
                            onConfirm={() => api.post(`/api/role-changes/${encodeURIComponent(c.id)}/confirm`)}
                            onDone={() => { changes.reload(); onDone(t('roleChanges.confirmed', { user: c.user, roles: roles(c.added) })); }} />
                        )}
                        {manage && (
                          <ActionButton label={mine ? t('roleChanges.withdraw') : t('roleChanges.reject')} danger title={t('roleChanges.rejectTitle', { user: c.user, roles: roles(c.added) })}
                            confirmLabel={mine ? t('roleChanges.withdraw') : t('roleChanges.reject')} reason={{ label: t('common.reason'), required: false, maxLength: 500 }}
                            onConfirm={(reason) => api.post(`/api/role-changes/${encodeURIComponent(c.id)}/reject`, { reason: reason.trim() || null })}
                            onDone={() => { changes.reload(); onDone(t('roleChanges.rejected', { user: c.user })); }} />
                        )}
                      </td>
                    </tr>
                  );
                })}
              </tbody>
            </table>
          </div>
        )}
      </ResourceView>
    </section>
  );
}

function CreateUserDialog({ orgs, onClose }: { orgs: Organisation[]; onClose: (created: { user: User; otpauthUri: string | null; pendingChange?: RoleChange | null } | null) => void }) {
  const { t } = useI18n();
  const ids = { name: useId(), password: useId(), org: useId(), expires: useId(), ndaSigned: useId(), ndaExpires: useId(), ndaRef: useId() };
  const [name, setName] = useState('');
  const [password, setPassword] = useState('');
  const [roles, setRoles] = useState<Role[]>(['vendor']);
  const [org, setOrg] = useState(orgs[0]?.name ?? '');
  const [expires, setExpires] = useState('');
  const [ndaSigned, setNdaSigned] = useState('');
  const [ndaExpires, setNdaExpires] = useState('');
  const [ndaRef, setNdaRef] = useState('');
  const [enrolLater, setEnrolLater] = useState(true);
  const [problems, setProblems] = useState<Record<string, string>>({});
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const vendor = roles.includes('vendor');

  async function submit(e: Event): Promise<void> {
    e.preventDefault();
    const p: Record<string, string> = {};
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(name)) p.name = t('users.nameRule');
    if (password.length < 12) p.password = t('users.passwordRule');
    if (roles.length === 0) p.roles = t('users.needRole');
    if (vendor && !org) p.org = t('users.vendorNeedsOrg');
    if ((ndaSigned || ndaExpires) && !(ndaSigned && ndaExpires)) p.nda = t('users.ndaBoth');
    setProblems(p);
    if (Object.keys(p).length) return;
    setBusy(true);
    setError(null);
    try {
      const r = await api.post<{ user: User; otpauthUri: string | null; pendingChange: RoleChange | null }>('/api/users', {
        name, password, roles, org: vendor || org ? org || null : null, expiresAt: dayEnd(expires),
        nda: ndaSigned && ndaExpires ? { signedAt: dayStart(ndaSigned), expiresAt: dayEnd(ndaExpires), reference: ndaRef.trim() || null } : null,
        ...(enrolLater ? { enrolOnFirstSignIn: true } : {}),
      });
      onClose(r);
    } catch (err) {
      setError(err);
      setBusy(false);
    }
  }

  return (
    <ModalDialog title={t('users.create')} onClose={() => onClose(null)} wide>
      <form class="form" onSubmit={(e) => void submit(e)} noValidate>
        <div class="form-row">
          <Field id={ids.name} label={t('users.name')} required error={problems.name ?? null}>
            <input id={ids.name} value={name} autocomplete="off" required onInput={(e) => setName(e.currentTarget.value)} />
          </Field>
          <Field id={ids.password} label={t('users.initialPassword')} hint={t('users.passwordRule')} required error={problems.password ?? null}>
            <input id={ids.password} type="password" autocomplete="new-password" value={password} required onInput={(e) => setPassword(e.currentTarget.value)} />
          </Field>
        </div>
        <RolePicker legend={t('users.roles')} value={roles} onChange={setRoles} />
        {problems.roles && <p class="field-error" role="alert">{problems.roles}</p>}
        <div class="form-row">
          <Field id={ids.org} label={t('users.org')} required={vendor} error={problems.org ?? null}>
            <select id={ids.org} value={org} onChange={(e) => setOrg(e.currentTarget.value)}>
              <option value="">{t('common.none')}</option>
              {orgs.map((o) => <option key={o.name} value={o.name}>{o.displayName}</option>)}
            </select>
          </Field>
          <Field id={ids.expires} label={t('users.expires')} hint={t('users.expiresHint')}>
            <input id={ids.expires} type="date" value={expires} onInput={(e) => setExpires(e.currentTarget.value)} />
          </Field>
        </div>
        {vendor && (
          <fieldset class="fieldset">
            <legend>{t('users.nda')}</legend>
            <div class="form-row">
              <Field id={ids.ndaSigned} label={t('users.ndaSigned')}><input id={ids.ndaSigned} type="date" value={ndaSigned} onInput={(e) => setNdaSigned(e.currentTarget.value)} /></Field>
              <Field id={ids.ndaExpires} label={t('users.ndaExpires')}><input id={ids.ndaExpires} type="date" value={ndaExpires} onInput={(e) => setNdaExpires(e.currentTarget.value)} /></Field>
              <Field id={ids.ndaRef} label={t('users.ndaRef')}><input id={ids.ndaRef} value={ndaRef} maxLength={100} onInput={(e) => setNdaRef(e.currentTarget.value)} /></Field>
            </div>
            {problems.nda && <p class="field-error" role="alert">{problems.nda}</p>}
          </fieldset>
        )}
        <label class="choice">
          <input type="checkbox" checked={enrolLater} onChange={(e) => setEnrolLater(e.currentTarget.checked)} />
          {t('users.enrolLater')}
        </label>
        <p class="hint">{t('users.enrolLaterHint')}</p>
        {error !== null && <ErrorNote error={error} />}
        <div class="actions">
          <button type="submit" class="btn btn-primary" disabled={busy}>{busy ? t('common.working') : t('users.create')}</button>
          <button type="button" class="btn" onClick={() => onClose(null)}>{t('common.cancel')}</button>
        </div>
      </form>
    </ModalDialog>
  );
}

function EditUserDialog({ user, orgs, onClose }: { user: User; orgs: Organisation[]; onClose: (saved: boolean, pending?: RoleChange | null) => void }) {
  const { t } = useI18n();
  const ids = { org: useId(), expires: useId(), ndaSigned: useId(), ndaExpires: useId(), ndaRef: useId() };
  const [roles, setRoles] = useState<Role[]>(user.roles);
  const [org, setOrg] = useState(user.org ?? '');
  const [expires, setExpires] = useState(day(user.expiresAt));
  const [ndaSigned, setNdaSigned] = useState(day(user.nda?.signedAt));
  const [ndaExpires, setNdaExpires] = useState(day(user.nda?.expiresAt));
  const [ndaRef, setNdaRef] = useState(user.nda?.reference ?? '');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);

  async function submit(e: Event): Promise<void> {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const saved = await api.patch<{ pendingChange: RoleChange | null }>(`/api/users/${encodeURIComponent(user.name)}`, { roles, org: org || null, expiresAt: dayEnd(expires) });
      const ndaChanged = ndaSigned !== day(user.nda?.signedAt) || ndaExpires !== day(user.nda?.expiresAt) || ndaRef !== (user.nda?.reference ?? '');
      if (ndaChanged && ndaSigned && ndaExpires) {
        await api.put(`/api/users/${encodeURIComponent(user.name)}/nda`, { signedAt: dayStart(ndaSigned), expiresAt: dayEnd(ndaExpires), reference: ndaRef.trim() || null });
      }
      onClose(true, saved.pendingChange);
    } catch (err) {
      setError(err);
      setBusy(false);
    }
  }

  return (
    <ModalDialog title={t('users.editTitle', { user: user.name })} onClose={() => onClose(false)} wide>
      <form class="form" onSubmit={(e) => void submit(e)}>
        <RolePicker legend={t('users.roles')} value={roles} onChange={setRoles} />
        <div class="form-row">
          <Field id={ids.org} label={t('users.org')}>
            <select id={ids.org} value={org} onChange={(e) => setOrg(e.currentTarget.value)}>
              <option value="">{t('common.none')}</option>
              {orgs.map((o) => <option key={o.name} value={o.name}>{o.displayName}</option>)}
            </select>
          </Field>
          <Field id={ids.expires} label={t('users.expires')} hint={t('users.expiresHint')}>
            <input id={ids.expires} type="date" value={expires} onInput={(e) => setExpires(e.currentTarget.value)} />
          </Field>
        </div>
        <fieldset class="fieldset">
          <legend>{t('users.nda')}</legend>
          <div class="form-row">
            <Field id={ids.ndaSigned} label={t('users.ndaSigned')}><input id={ids.ndaSigned} type="date" value={ndaSigned} onInput={(e) => setNdaSigned(e.currentTarget.value)} /></Field>
            <Field id={ids.ndaExpires} label={t('users.ndaExpires')}><input id={ids.ndaExpires} type="date" value={ndaExpires} onInput={(e) => setNdaExpires(e.currentTarget.value)} /></Field>
            <Field id={ids.ndaRef} label={t('users.ndaRef')}><input id={ids.ndaRef} value={ndaRef} maxLength={100} onInput={(e) => setNdaRef(e.currentTarget.value)} /></Field>
          </div>
        </fieldset>
        {error !== null && <ErrorNote error={error} />}
        <div class="actions">
          <button type="submit" class="btn btn-primary" disabled={busy}>{busy ? t('common.working') : t('common.save')}</button>
          <button type="button" class="btn" onClick={() => onClose(false)}>{t('common.cancel')}</button>
        </div>
      </form>
    </ModalDialog>
  );
}

export default function UsersPage() {
  const i18n = useI18n();
  const { t } = i18n;
  const me = useStore(authStore).me;
  const roles = me?.user.roles ?? [];
  const manage = allowed(roles, 'user.manage');
  const lock = allowed(roles, 'user.lock');
  const users = useResource<{ users: User[] }>('/api/users');
  const orgs = useResource<{ orgs: Organisation[] }>('/api/orgs');
  const [creating, setCreating] = useState(false);
  const [editing, setEditing] = useState<User | null>(null);
  const [enrolment, setEnrolment] = useState<{ user: string; uri: string } | null>(null);
  const [notice, setNotice] = useState<string | null>(null);
  const [changesKey, setChangesKey] = useState(0);
  const waiting = (c: RoleChange | null | undefined): string => (c ? ` ${t('roleChanges.waiting', { roles: c.added.map((r) => i18n.name('role', r)).join(t('common.listSeparator')), time: i18n.time(c.expiresAt) })}` : '');
  const orgName = (id: string | null): string => orgs.data?.orgs.find((o) => o.name === id)?.displayName ?? id ?? t('common.none');

  return (
    <section class="page" data-page="users">
      <PageHeader title={t('nav.users')} intro={t('users.intro')}>
        {manage && <button type="button" class="btn btn-primary" onClick={() => setCreating(true)}>{t('users.create')}</button>}
      </PageHeader>
      {notice && <Notice kind="success">{notice}</Notice>}
      <ResourceView {...users}>
        {({ users: list }) => list.length === 0 ? <Empty><p>{t('users.empty')}</p></Empty> : (
          <div class="table-wrap">
            <table class="table">
              <caption class="sr-only">{t('nav.users')}</caption>
              <thead>
                <tr>
                  <th scope="col">{t('users.account')}</th>
                  <th scope="col">{t('users.roles')}</th>
                  <th scope="col">{t('users.org')}</th>
                  <th scope="col">{t('users.nda')}</th>
                  <th scope="col">{t('users.expires')}</th>
                  <th scope="col"><span class="sr-only">{t('common.actions')}</span></th>
                </tr>
              </thead>
              <tbody>
                {list.map((u) => {
                  const expired = u.expiresAt !== null && Date.parse(u.expiresAt) < Date.now();
                  const self = u.name === me?.user.name;
                  return (
                    <tr key={u.name} data-user={u.name}>
                      <td>
                        <strong>{u.name}</strong>{' '}
                        {u.disabled ? <span class="badge badge-bad">{t('users.disabled')}</span>
                          : u.lockedUntil ? <span class="badge badge-warn">{t('users.lockedUntil', { time: i18n.time(u.lockedUntil) })}</span>
                          : expired ? <span class="badge badge-muted">{t('users.expired')}</span>
                          : <span class="badge badge-ok">{t('users.active')}</span>}
                        {u.totpEnrolled === false && <> <span class="badge badge-info">{t('users.totpPending')}</span></>}
                        <div class="muted small">{t('users.createdAt', { time: i18n.date(u.createdAt) })}</div>
                      </td>
                      <td>{u.roles.map((r) => i18n.name('role', r)).join(', ')}</td>
                      <td>{u.org ? orgName(u.org) : <span class="muted">{t('common.none')}</span>}</td>
                      <td>
                        {u.nda ? <>{i18n.date(u.nda.signedAt)} – {i18n.date(u.nda.expiresAt)}{u.nda.reference && <div class="muted small">{u.nda.reference}</div>}</>
                          : u.roles.includes('vendor') ? <span class="badge badge-warn">{t('users.noNda')}</span> : <span class="muted">{t('common.none')}</span>}
                      </td>
                      <td>{u.expiresAt ? i18n.date(u.expiresAt) : <span class="muted">{t('users.noExpiry')}</span>}</td>
                      <td class="cell-actions cell-actions-wide">
                        {manage && <button type="button" class="btn btn-small" onClick={() => setEditing(u)}>{t('common.edit')}</button>}
                        {manage && (
                          <ActionButton label={t('users.resetTotp')} title={t('users.resetTotpTitle', { user: u.name })} body={t('users.resetTotpBody')}
                            confirmLabel={t('users.resetTotp')}
                            onConfirm={async () => {
                              const r = await api.post<{ otpauthUri?: string | null }>(`/api/users/${encodeURIComponent(u.name)}/reset-totp`);
                              if (typeof r.otpauthUri === 'string') setEnrolment({ user: u.name, uri: r.otpauthUri });
                              else setNotice(t('users.resetTotpDone', { user: u.name }));
                            }} onDone={users.reload} />
                        )}
                        {manage && !self && (u.disabled ? (
                          <ActionButton label={t('users.enable')} title={t('users.enableTitle', { user: u.name })} confirmLabel={t('users.enable')}
                            onConfirm={() => api.post(`/api/users/${encodeURIComponent(u.name)}/enable`)} onDone={users.reload} />
                        ) : (
                          <ActionButton label={t('users.disable')} danger title={t('users.disableTitle', { user: u.name })} body={t('users.disableBody')}
                            confirmLabel={t('users.disable')} onConfirm={() => api.post(`/api/users/${encodeURIComponent(u.name)}/disable`)} onDone={users.reload} />
                        ))}
                        {lock && !self && (u.lockedUntil ? (
                          <ActionButton label={t('users.unlock')} title={t('users.unlockTitle', { user: u.name })} confirmLabel={t('users.unlock')}
                            onConfirm={() => api.post(`/api/users/${encodeURIComponent(u.name)}/unlock`)} onDone={users.reload} />
                        ) : !u.disabled && <LockUserButton user={u.name} onDone={users.reload} />)}
                      </td>
                    </tr>
                  );
                })}
              </tbody>
            </table>
          </div>
        )}
      </ResourceView>
      <PendingRoleChanges key={changesKey} me={me?.user.name ?? null} manage={manage} onDone={(message) => { users.reload(); setNotice(message); }} />
      {creating && (
        <CreateUserDialog orgs={orgs.data?.orgs ?? []} onClose={(created) => {
          setCreating(false);
          if (!created) return;
          users.reload();
          setChangesKey((k) => k + 1);
          setNotice((created.otpauthUri ? t('users.created', { user: created.user.name }) : t('users.createdEnrolLater', { user: created.user.name })) + waiting(created.pendingChange));
          if (created.otpauthUri) setEnrolment({ user: created.user.name, uri: created.otpauthUri });
        }} />
      )}
      {editing && <EditUserDialog user={editing} orgs={orgs.data?.orgs ?? []} onClose={(saved, pending) => {
        setEditing(null);
        if (saved) {
          users.reload();
          setChangesKey((k) => k + 1);
          setNotice(t('users.saved', { user: editing.name }) + waiting(pending));
        }
      }} />}
      {enrolment && <EnrolmentShown user={enrolment.user} uri={enrolment.uri} onClose={() => setEnrolment(null)} />}
    </section>
  );
}
