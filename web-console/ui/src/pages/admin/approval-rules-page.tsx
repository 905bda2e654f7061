import type { Policy } from '../../api/api-types.js';
import { StillNeeded } from '../../components/approval-needs.js';
import { LevelBadge } from '../../components/badges.js';
import { PageHeader } from '../../components/page-header.js';
import { ResourceView } from '../../components/status-views.js';
import { useResource } from '../../components/use-resource.js';
import { useI18n } from '../../i18n/i18n.js';

/** The approval rules as configured in gateway.config.toml: read here, changed only in the file. */
export default function ApprovalRulesPage() {
  const i18n = useI18n();
  const { t } = i18n;
  const res = useResource<Policy>('/api/policy');
  return (
    <section class="page" data-page="rules">
      <PageHeader title={t('nav.rules')} intro={t('rules.intro')} />
      <ResourceView {...res}>
        {(policy) => (
          <>
            <div class="table-wrap">
              <table class="table">
                <caption>{t('rules.levels')}</caption>
                <thead>
                  <tr>
                    <th scope="col">{t('rules.level')}</th>
                    <th scope="col">{t('rules.approvals')}</th>
                    <th scope="col">{t('rules.longestWindow')}</th>
                    <th scope="col">{t('rules.modes')}</th>
                    <th scope="col">{t('rules.defaultProfile')}</th>
                    <th scope="col">{t('rules.alert')}</th>
                  </tr>
                </thead>
                <tbody>
                  {policy.levels.map((l) => (
                    <tr key={l.level}>
                      <td><LevelBadge level={l.level} /></td>
                      <td><StillNeeded slots={l.approvals} /></td>
                      <td>{i18n.minutes(l.longestWindowMinutes)}</td>
                      <td>{l.modes.map((m) => i18n.name('profileMode', m)).join(', ')}</td>
                      <td>{l.defaultProfile ?? t('common.none')}</td>
                      <td>{l.alertSecurityOnStart ? t('common.yes') : t('common.no')}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
            <h2>{t('rules.profiles')}</h2>
            <ul class="card-grid">
              {policy.profiles.map((p) => (
                <li key={p.name} class="card">
                  <h3 class="card-title">{p.name} <span class="badge badge-info">{i18n.name('profileMode', p.mode)}</span></h3>
                  <ul class="profile-description small">{p.description.map((line, i) => <li key={i}>{line}</li>)}</ul>
                </li>
              ))}
            </ul>
          </>
        )}
      </ResourceView>
    </section>
  );
}
