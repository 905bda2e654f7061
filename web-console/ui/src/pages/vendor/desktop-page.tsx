import type { Grant } from '../../api/api-types.js';
import { PageHeader } from '../../components/page-header.js';
import { useResource } from '../../components/use-resource.js';
import { DesktopSession } from '../../desktop/desktop-session.js';
import { useI18n } from '../../i18n/i18n.js';
import { href } from '../../nav/hash-router.js';
import type { PageProps } from '../../nav/routes.js';
import { grantState } from './grant-state.js';

/** A VNC or RDP desktop on one of the vendor's grants (`#/connect/:device/:protocol`). */
export default function DesktopPage({ params }: PageProps) {
  const { t } = useI18n();
  const device = params.device ?? '';
  const raw = (params.protocol ?? '').toLowerCase();
  const protocol = raw === 'vnc' || raw === 'rdp' ? raw : null;
  const grants = useResource<{ grants: Grant[] }>(protocol ? `/api/grants?current=true&device=${encodeURIComponent(device)}` : null);
  const now = Date.now();
  // The grant that ends last, when two overlap: the gateway keeps the session while any is valid.
  const grant = grants.data?.grants
    .filter((g) => g.device === device && g.protocol === protocol && grantState(g, now) === 'current')
    .sort((a, b) => Date.parse(b.until) - Date.parse(a.until))[0];

  if (!protocol) {
    return (
      <section class="page" data-page="not-found">
        <h1>{t('page.notFound.title')}</h1>
        <p>{t('page.notFound.body')}</p>
        <p><a href={href('/connect')}>{t('desktop.back')}</a></p>
      </section>
    );
  }
  const name = protocol.toUpperCase();
  return (
    <section class="page page-terminal page-desktop" data-page="desktop">
      <PageHeader title={t('desktop.title', { protocol: name, device })} intro={t('desktop.intro', { protocol: name })}>
        <a class="btn btn-small" href={href('/connect')}>{t('desktop.back')}</a>
      </PageHeader>
      <DesktopSession device={device} protocol={protocol} grantUntil={grant?.until ?? null} />
    </section>
  );
}
