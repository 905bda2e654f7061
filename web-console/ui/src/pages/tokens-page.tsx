import { useId, useState } from 'preact/hooks';
import type { Action } from '../../../../policy/roles.js';
import { api } from '../api/api-client.js';
import type { ApiToken, User } from '../api/api-types.js';
import { authStore } from '../auth/auth-state.js';
import { Field } from '../components/form-field.js';
import { ModalDialog } from '../components/modal-dialog.js';
import { PageHeader } from '../components/page-header.js';
import { Empty, ErrorNote, Notice, ResourceView } from '../components/status-views.js';
import { useResource } from '../components/use-resource.js';
import { useI18n } from '../i18n/i18n.js';
import { allowed } from '../nav/routes.js';
import { useStore } from '../state/store.js';

const DAY = 86_400_000;
const isoDay = (t: number): string => new Date(t).toISOString().slice(0, 10);

/** The new token's secret, shown this once: the server never sends it again. */
function SecretOnce({ secret, onDone }: { secret: string; onDone: () => void }) {
  const { t } = useI18n();
  const [copied, setCopied] = useState<boolean | null>(null);
  async function copy(): Promise<void> {
    try {
      await navigator.clipboard.writeText(secret);
      setCopied(true);
    } catch {
      setCopied(false);
    }
  }
  return (
    <ModalDialog title={t('tokens.secretTitle')} onClose={onDone}>
      <Notice kind="warning">{t('tokens.secretOnce')}</Notice>
      <p><code class="token-secret" data-token-secret>{secret}</code></p>
      <div class="actions">
        <button type="button" class="btn btn-primary" onClick={() => void copy()}>{t('tokens.copy')}</button>
        <button type="button" class="btn" onClick={onDone}>{t('common.done')}</button>
      </div>
      {copied === true && <p role="status">{t('tokens.copied')}</p>}
      {copied === false && <p role="alert">{t('tokens.copyDenied')}</p>}
    </ModalDialog>
  );
}

function CreateTokenDialog({ actions, serviceAccounts, onClose }: { actions: Action[]; serviceAccounts: User[]; onClose: (secret: string | null) => void }) {
  const { t } = useI18n();
  const me = useStore(authStore).me;
  const ids = { name: useId(), expires: useId(), owner: useId() };
  const [name, setName] = useState('');
  const [expires, setExpires] = useState(isoDay(Date.now() + 90 * DAY));
  const [owner, setOwner] = useState('');
  const [scope, setScope] = useState<Action[]>([]);
  // The scope offered is what the owner may do: the server refuses anything wider (TOKEN_SCOPE_WIDENS).
  const ownerRoles = owner ? serviceAccounts.find((u) => u.name === owner)?.roles ?? [] : me?.user.roles ?? [];
  const offered = actions.filter((a) => allowed(ownerRoles, a));
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [problem, setProblem] = useState<string | null>(null);

  async function submit(e: Event): Promise<void> {
    e.preventDefault();
    const until = Date.parse(`${expires}T23:59:59Z`);
    if (!name.trim() || scope.length === 0 || Number.isNaN(until)) {
      setProblem(t('tokens.fieldsRule'));
      return;
    }
    setBusy(true);
    setError(null);
    try {
      const r = await api.post<{ secret: string }>('/api/tokens', { name: name.trim(), scope, expiresAt: new Date(until).toISOString(), ...(owner ? { user: owner } : {}) });
      onClose(r.secret);
    } catch (err) {
      setError(err);
      setBusy(false);
    }
  }

  return (
    <ModalDialog title={t('tokens.create')} onClose={() => onClose(null)}>
      <form class="form" onSubmit={(e) => void submit(e)} noValidate>
        <Field id={ids.name} label={t('tokens.name')} hint={t('tokens.nameHint')} required>
          <input id={ids.name} name="token-name" value={name} required maxLength={100} onInput={(e) => setName(e.currentTarget.value)} />
        </Field>
        {serviceAccounts.length > 0 && (
          <Field id={ids.owner} label={t('tokens.owner')} hint={t('tokens.ownerHint')}>
            <select id={ids.owner} value={owner} onChange={(e) => { setOwner(e.currentTarget.value); setScope([]); }}>
              <option value="">{me?.user.name}</option>
              {serviceAccounts.map((u) => <option key={u.name} value={u.name}>{u.name}</option>)}
            </select>
          </Field>
        )}
        <Field id={ids.expires} label={t('tokens.expires')} hint={t('tokens.expiresHint')} required>
          <input id={ids.expires} type="date" value={expires} min={isoDay(Date.now() + DAY)} max={isoDay(Date.now() + 364 * DAY)} required onInput={(e) => setExpires(e.currentTarget.value)} />
        </Field>
        <fieldset class="fieldset">
          <legend>{t('tokens.scope')}</legend>
          <p class="hint">{t('tokens.scopeHint')}</p>
          <div class="choice-row">
            {offered.map((a) => (
              <label key={a} class="choice">
                <input type="checkbox" name="scope" value={a} checked={scope.includes(a)}
                  onChange={(e) => { const on = e.currentTarget.checked; setScope((s) => (on ? [...s, a] : s.filter((x) => x !== a))); }} />
                <code>{a}</code>
              </label>
            ))}
          </div>
        </fieldset>
        {problem && <p class="field-error" role="alert">{problem}</p>}
        {error !== null && <ErrorNote error={error} />}
        <div class="actions">
          <button type="submit" class="btn btn-primary" disabled={busy}>{busy ? t('common.working') : t('tokens.create')}</button>
          <button type="button" class="btn" onClick={() => onClose(null)}>{t('common.cancel')}</button>
        </div>
      </form>
    </ModalDialog>
  );
}

/**
 * API tokens (issue 13): make one (its secret shown once, with a copy button), see them with
 * their scope, expiry and last use, revoke them. An admin sees everyone's, and makes tokens for
 * service accounts.
 */
export default function TokensPage() {
  const { t, time } = useI18n();
  const roles = useStore(authStore).me?.user.roles ?? [];
  const admin = allowed(roles, 'user.manage');
  const tokens = useResource<{ tokens: ApiToken[]; actions: Action[] }>(admin ? '/api/tokens?all=true' : '/api/tokens');
  const users = useResource<{ users: User[] }>(admin ? '/api/users' : null);
  const serviceAccounts = (users.data?.users ?? []).filter((u) => u.serviceAccount === true);
  const [creating, setCreating] = useState(false);
  const [secret, setSecret] = useState<string | null>(null);
  const [confirming, setConfirming] = useState<string | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [notice, setNotice] = useState<string | null>(null);

  async function revoke(id: string): Promise<void> {
    setError(null);
    try {
      await api.post(`/api/tokens/${encodeURIComponent(id)}/revoke`);
      setNotice(t('tokens.revoked', { id }));
      setConfirming(null);
      tokens.reload();
    } catch (err) {
      setError(err);
    }
  }

  return (
    <section class="page" data-page="tokens">
      <PageHeader title={t('nav.tokens')} intro={t('tokens.intro')}>
        <button type="button" class="btn btn-primary" onClick={() => setCreating(true)}>{t('tokens.create')}</button>
      </PageHeader>
      {notice && <Notice kind="success">{notice}</Notice>}
      {error !== null && <ErrorNote error={error} />}
      <ResourceView {...tokens}>
        {({ tokens: list }) => list.length === 0 ? <Empty><p>{t('tokens.empty')}</p></Empty> : (
          <div class="table-wrap">
            <table class="table">
              <caption class="sr-only">{t('nav.tokens')}</caption>
              <thead>
                <tr>
                  <th scope="col">{t('tokens.name')}</th>
                  {admin && <th scope="col">{t('tokens.owner')}</th>}
                  <th scope="col">{t('tokens.scope')}</th>
                  <th scope="col">{t('tokens.expires')}</th>
                  <th scope="col">{t('tokens.lastUsed')}</th>
                  <th scope="col">{t('tokens.state')}</th>
                  <th scope="col">{t('common.actions')}</th>
                </tr>
              </thead>
              <tbody>
                {list.map((k) => (
                  <tr key={k.id} data-token-id={k.id}>
                    <td><strong>{k.name}</strong><br /><code class="muted">pcx_{k.id}_…</code></td>
                    {admin && <td>{k.owner}{k.ownerIsServiceAccount && <span class="badge">{t('tokens.serviceAccount')}</span>}</td>}
                    <td>{k.scope.map((a) => <code key={a}>{a} </code>)}</td>
                    <td>{time(k.expiresAt)}</td>
                    <td>{k.lastUsedAt ? time(k.lastUsedAt) : <span class="muted">{t('tokens.never')}</span>}</td>
                    <td>{t(`tokens.state.${k.state}`)}</td>
                    <td>
                      {k.state === 'active' && (confirming === k.id
                        ? <button type="button" class="btn btn-danger" onClick={() => void revoke(k.id)}>{t('tokens.confirmRevoke')}</button>
                        : <button type="button" class="btn" onClick={() => setConfirming(k.id)}>{t('tokens.revoke')}</button>)}
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
      </ResourceView>
      {creating && tokens.data && (
        <CreateTokenDialog actions={tokens.data.actions} serviceAccounts={serviceAccounts}
          onClose={(s) => { setCreating(false); if (s) { setSecret(s); tokens.reload(); } }} />
      )}
      {secret && <SecretOnce secret={secret} onDone={() => setSecret(null)} />}
    </section>
  );
}
