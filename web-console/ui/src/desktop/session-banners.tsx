import { useEffect, useState } from 'preact/hooks';
import { endText, noticeDetail } from '../i18n/failure-text.js';
import { useI18n, type I18n } from '../i18n/i18n.js';
import { KillAftermath, type KillInfo } from '../components/kill-aftermath.js';

/** How a desktop session ended, as the page learnt it. */
export interface DesktopEnd {
  code: string | null;
  reason: string | null;
  message: string | null;
  /** The socket closed without the gateway saying why. */
  lost?: boolean;
  /** The person disconnected here. */
  byMe?: boolean;
  /** noVNC gave up on the stream (not RFB, or broken). */
  viewerFailed?: boolean;
  /** Security killed it, and perhaps revoked the grant or locked the account too. */
  kill?: KillInfo | null;
}

/** The catalogue code of an end: sent as `code`, or the `[CODE]` tag the gateway's notice ends with (watch sockets send no code). */
export function endCodeOf(end: DesktopEnd): string | null {
  return end.code ?? (end.message ? /\[([A-Z_]+)\]\s*$/.exec(end.message.trim())?.[1] ?? null : null);
}

/**
 * A grant warning the gateway sends as a notice ("… ends in 5m (at 2026-…Z); …"): the time it
 * names, so the banner can say it in the reader's language and count down. Null for any other notice.
 */
export function grantWarningTime(text: string): string | null {
  if (!/\bends in\b/.test(text)) return null;
  return /\(at (\d{4}-\d\d-\d\dT[^)]+)\)/.exec(text)?.[1] ?? null;
}

/** A notice that only announces the end the next frame reports ("Session closed: … [CODE]"). */
export function isClosingNotice(text: string): boolean {
  return /^Session closed\b/.test(text.trim()) || /\[[A-Z_]+\]\s*\.?\s*$/.test(text.trim());
}

function timeLeft(untilMs: number, now: number, i18n: I18n): string {
  const s = Math.ceil((untilMs - now) / 1000);
  if (s <= 0) return i18n.t('desktop.now');
  if (s < 120) return i18n.t('desktop.inSeconds', { n: s });
  return i18n.t('desktop.inMinutes', { n: Math.ceil(s / 60) });
}

function useNow(periodMs: number): number {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    const timer = setInterval(() => setNow(Date.now()), periodMs);
    return () => clearInterval(timer);
  }, [periodMs]);
  return now;
}

/**
 * The enforcement banner above the screen: when the grant ends (counting down), and, once the
 * gateway has warned, the warning in the reader's language. Outside the canvas, so it is seen
 * whatever the device shows, and read out by screen readers (role=alert for the warning).
 */
export function GrantBanner({ until, warningAt, notice }: {
  /** The grant's end (ISO), when known. */
  until: string | null;
  /** The end a grant warning named, once one came. */
  warningAt: string | null;
  /** Another notice from the gateway, shown as it was said. */
  notice: string | null;
}) {
  const i18n = useI18n();
  const { t } = i18n;
  const now = useNow(1000);
  const end = warningAt ?? until;
  const endMs = end ? Date.parse(end) : NaN;
  return (
    <div class="desktop-banners">
      {warningAt ? (
        <div class="desktop-banner desktop-banner-warning" role="alert" data-banner="grant-warning">
          <span class="desktop-banner-icon" aria-hidden="true">!</span>
          {t('desktop.grantWarning', { left: timeLeft(endMs, now, i18n), time: i18n.time(warningAt) })}
        </div>
      ) : (
        <div class="desktop-banner" role="status" data-banner="grant">
          {Number.isFinite(endMs) ? t('desktop.grantEnds', { time: i18n.time(end), left: timeLeft(endMs, now, i18n) }) : t('desktop.grantEndsUnknown')}
          {' '}<span class="muted">{t('desktop.recorded')}</span>
        </div>
      )}
      {notice && (
        <div class="desktop-banner desktop-banner-warning" role="alert" data-banner="notice">
          {t('desktop.gatewayNotice', { message: notice })}
        </div>
      )}
    </div>
  );
}

/** Why the session ended, in the reader's language, with what the gateway added (a kill's reason). */
export function SessionEndNote({ end, title }: { end: DesktopEnd; title: string }) {
  const i18n = useI18n();
  const { t } = i18n;
  const code = endCodeOf(end);
  const line = end.byMe
    ? t('desktop.endedByYou')
    : end.viewerFailed && !code && !end.reason
      ? t('desktop.viewerFailed')
      : end.lost && !code && !end.reason
        ? t('desktop.connectionLost')
        : endText(code, end.reason, end.message, i18n);
  const detail = end.byMe ? null : noticeDetail(end.message, code);
  const extra = detail && detail !== line ? (code === 'SESSION_KILLED' ? t('desktop.killReason', { reason: detail }) : t('terminal.gatewaySaid', { message: detail })) : null;
  return (
    <div class={`session-end ${end.byMe ? 'session-end-neutral' : ''}`} role="alert" data-end-code={code ?? ''} data-end-reason={end.reason ?? ''}>
      <p class="session-end-title">{title}</p>
      <p class="session-end-reason">{line}</p>
      {extra && <p class="session-end-detail">{extra}</p>}
      <KillAftermath kill={end.kill} />
    </div>
  );
}
