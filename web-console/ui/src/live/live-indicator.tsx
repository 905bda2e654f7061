import { useI18n } from '../i18n/i18n.js';
import type { LiveState } from './use-live-events.js';

export function LiveIndicator({ state }: { state: LiveState }) {
  const { t } = useI18n();
  const label = state === 'live' ? t('live.on') : state === 'connecting' ? t('live.connecting') : t('live.reconnecting');
  return (
    <span class={`live live-${state}`} role="status">
      <span class="live-dot" aria-hidden="true" />
      {label}
    </span>
  );
}
