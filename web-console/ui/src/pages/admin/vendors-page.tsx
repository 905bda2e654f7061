import { useId, useState } from 'preact/hooks';
import { api } from '../../api/api-client.js';
import type { Organisation, User } from '../../api/api-types.js';
import { authStore } from '../../auth/auth-state.js';
import { Field } from '../../components/form-field.js';
import { ModalDialog } from '../../components/modal-dialog.js';
import { PageHeader } from '../../components/page-header.js';
import { Empty, ErrorNote, Notice, ResourceView } from '../../components/status-views.js';
import { useResource } from '../../components/use-resource.js';
import { useI18n } from '../../i18n/i18n.js';
import { allowed } from '../../nav/routes.js';
import { useStore } from '../../state/store.js';

function AddOrgDialog({ onClose }: { onClose: (added: string | null) => void }) {
  const { t } = useI18n();
  const ids = { name: useId(), display: useId(), contact: useId() };
  const [name, setName] = useState('');
  const [display, setDisplay] = useState('');
  const [contact, setContact] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [problem, setProblem] = useState<string | null>(null);

  async function submit(e: Event): Promise<void> {
    e.preventDefault();
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(name) || !display.trim()) {
      setProblem(t('vendors.fieldsRule'));
      return;
    }
    setBusy(true);
    setError(null);
    try {
      await api.post('/api/orgs', { name, displayName: display.trim(), contact: contact.trim() || null });
      onClose(display.trim());
    } catch (err) {
      setError(err);
      setBusy(false);
    }
  }

  return (
    <ModalDialog title={t('vendors.add')} onClose={() => onClose(null)}>
      <form class="form" onSubmit={(e) => void submit(e)} noValidate>
        <Field id={ids.name} label={t('vendors.id')} hint={t('vendors.idHint')} required>
          <input id={ids.name} value={name} required aria-describedby={`${ids.name}-hint`} onInput={(e) => setName(e.currentTarget.value)} />
        </Field>
        <Field id={ids.display} label={t('vendors.displayName')} required>
          <input id={ids.display} value={display} required maxLength={200} onInput={(e) => setDisplay(e.currentTarget.value)} />
        </Field>
        <Field id={ids.contact} label={t('vendors.contact')}>
          <input id={ids.contact} value={contact} maxLength={200} onInput={(e) => setContact(e.currentTarget.value)} />
        </Field>
        {problem && <p class="field-error" role="alert">{problem}</p>}
        {error !== null && <ErrorNote error={error} />}
        <div class="actions">
          <button type="submit" class="btn btn-primary" disabled={busy}>{busy ? t('common.working') : t('vendors.add')}</button>
          <button type="button" class="btn" onClick={() => onClose(null)}>{t('common.cancel')}</button>
        </div>
      </form>
    </ModalDialog>
  );
}

export default function VendorsPage() {
  const { t } = useI18n();
  const roles = useStore(authStore).me?.user.roles ?? [];
  const orgs = useResource<{ orgs: Organisation[] }>('/api/orgs');
  const users = useResource<{ users: User[] }>('/api/users');
  const [adding, setAdding] = useState(false);
  const [notice, setNotice] = useState<string | null>(null);

  return (
    <section class="page" data-page="vendors">
      <PageHeader title={t('nav.vendors')} intro={t('vendors.intro')}>
        {allowed(roles, 'org.manage') && <button type="button" class="btn btn-primary" onClick={() => setAdding(true)}>{t('vendors.add')}</button>}
      </PageHeader>
      {notice && <Notice kind="success">{notice}</Notice>}
      <ResourceView {...orgs}>
        {({ orgs: list }) => list.length === 0 ? <Empty><p>{t('vendors.empty')}</p></Empty> : (
          <div class="table-wrap">
            <table class="table">
              <caption class="sr-only">{t('nav.vendors')}</caption>
              <thead>
                <tr>
                  <th scope="col">{t('vendors.displayName')}</th>
                  <th scope="col">{t('vendors.id')}</th>
                  <th scope="col">{t('vendors.contact')}</th>
                  <th scope="col">{t('vendors.people')}</th>
                </tr>
              </thead>
              <tbody>
                {list.map((o) => {
                  const people = users.data?.users.filter((u) => u.org === o.name) ?? [];
                  return (
                    <tr key={o.name}>
                      <td><strong>{o.displayName}</strong></td>
                      <td><code>{o.name}</code></td>
                      <td>{o.contact ?? <span class="muted">{t('common.none')}</span>}</td>
                      <td>{people.length ? people.map((u) => u.name).join(', ') : <span class="muted">{t('common.none')}</span>}</td>
                    </tr>
                  );
                })}
              </tbody>
            </table>
          </div>
        )}
      </ResourceView>
      {adding && <AddOrgDialog onClose={(added) => { setAdding(false); if (added) { setNotice(t('vendors.added', { name: added })); orgs.reload(); } }} />}
    </section>
  );
}
