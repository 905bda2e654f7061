import { useI18n } from '../i18n/i18n.js';

export function TimeRange({ from, until }: { from: string; until: string }) {
  const i18n = useI18n();
  const minutes = Math.round((Date.parse(until) - Date.parse(from)) / 60_000);
  return (
    <span class="time-range">
      <time dateTime={from}>{i18n.time(from)}</time>
      {' – '}
      <time dateTime={until}>{i18n.sameDay(from, until) ? i18n.clock(until) : i18n.time(until)}</time>
      {Number.isFinite(minutes) && minutes > 0 && <span class="muted"> ({i18n.minutes(minutes)})</span>}
    </span>
  );
}

export function Time({ iso }: { iso: string | null | undefined }) {
  const i18n = useI18n();
  if (!iso) return <span class="muted">{i18n.t('common.none')}</span>;
  return <time dateTime={iso}>{i18n.time(iso)}</time>;
}
