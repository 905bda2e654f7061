import { useState } from 'preact/hooks';
import type { Grant } from '../../api/api-types.js';
import { PageHeader } from '../../components/page-header.js';
import { useResource } from '../../components/use-resource.js';
import { useI18n } from '../../i18n/i18n.js';
import { href } from '../../nav/hash-router.js';
import type { PageProps } from '../../nav/routes.js';
import { TerminalConsole } from '../../terminal/terminal-console.js';
import { grantState } from './grant-state.js';

export default function TerminalPage({ params }: PageProps) {
  const i18n = useI18n();
  const { t } = i18n;
  const device = params.device ?? '';
  const grants = useResource<{ grants: Grant[] }>(`/api/grants?current=true&device=${encodeURIComponent(device)}`);
  const grant = grants.data?.grants.find((g) => g.device === device && g.protocol === 'ssh' && grantState(g, Date.now()) === 'current');
  const [started] = useState(() => Date.now());

  return (
    <section class="page page-terminal" data-page="terminal">
      <PageHeader title={t('terminal.title', { device })}
        intro={grant ? t('terminal.grantEnds', { time: i18n.time(grant.until), profile: grant.profile ?? t('common.none') }) : t('terminal.intro')}>
        <a class="btn btn-small" href={href('/connect')}>{t('terminal.back')}</a>
      </PageHeader>
      <p class="hint">{t('terminal.help')}</p>
      <TerminalConsole key={`${device}-${started}`} path={`/api/terminal?device=${encodeURIComponent(device)}`} readOnly={false}
        label={t('terminal.ariaLabel', { device })} />
    </section>
  );
}
