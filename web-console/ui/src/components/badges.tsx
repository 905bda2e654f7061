import { useI18n } from '../i18n/i18n.js';

export function LevelBadge({ level }: { level: number | null | undefined }) {
  const { t } = useI18n();
  if (level === null || level === undefined) return <span class="badge">{t('common.none')}</span>;
  return <span class={`badge badge-level-${level}`}>{t('device.levelN', { n: level })}</span>;
}

const STATUS_TONE: Record<string, string> = {
  pending: 'warn', approved: 'ok', denied: 'bad', cancelled: 'muted', expired: 'muted', revoked: 'bad',
  active: 'ok', quarantined: 'warn', decommissioned: 'muted', current: 'ok', upcoming: 'info', ended: 'muted',
  allow: 'ok', deny: 'bad', review: 'warn', logged: 'muted', ok: 'ok', denied_outcome: 'bad', info: 'info',
};

export function StatusBadge({ list, value }: { list: 'requestStatus' | 'deviceState' | 'grantState' | 'decision'; value: string }) {
  const i18n = useI18n();
  return <span class={`badge badge-${STATUS_TONE[value] ?? 'muted'}`}>{i18n.name(list, value)}</span>;
}
