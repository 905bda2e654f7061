import { useEffect, useId, useRef, useState } from 'preact/hooks';
import { PageHeader } from '../../components/page-header.js';
import { ErrorNote, Loading } from '../../components/status-views.js';
import { useResource } from '../../components/use-resource.js';
import type { DesktopOutline, DesktopReplayer } from '../../desktop/desktop-replayer.js';
import type { DesktopViewer } from '../../desktop/desktop-viewer.js';
import { failureText } from '../../i18n/failure-text.js';
import { useI18n } from '../../i18n/i18n.js';
import { href } from '../../nav/hash-router.js';
import type { PageProps } from '../../nav/routes.js';

const SPEEDS = [1, 2, 4, 8, 16];

function clock(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const p = (n: number): string => String(n).padStart(2, '0');
  return h ? `${h}:${p(m)}:${p(s % 60)}` : `${m}:${p(s % 60)}`;
}

const pct = (ms: number, duration: number): string => `${duration > 0 ? Math.min(100, Math.max(0, (ms / duration) * 100)) : 0}%`;

/**
 * A desktop recording (.pcrfb) played into noVNC: play/pause, speed 1–16×, a timeline that seeks
 * (the gateway composes the screen at any time from the nearest keyframe), idle stretches marked
 * and skipped if asked. R-A.3e, R-5.5d.
 */
export default function DesktopReplayPage({ params, query }: PageProps) {
  const i18n = useI18n();
  const { t } = i18n;
  const id = params.id ?? '';
  const ids = { speed: useId(), seek: useId(), idle: useId() };
  const outline = useResource<DesktopOutline>(`/api/recordings/${encodeURIComponent(id)}/desktop`);
  const host = useRef<HTMLDivElement>(null);
  const player = useRef<DesktopReplayer | null>(null);
  const viewer = useRef<DesktopViewer | null>(null);
  const [, redraw] = useState(0);
  const [time, setTime] = useState(0);
  const [error, setError] = useState<unknown>(null);
  const [attempt, setAttempt] = useState(0);
  const [loadFailed, setLoadFailed] = useState(false);
  const o = outline.data;

  useEffect(() => {
    if (!o) return undefined;
    let disposed = false;
    setError(null);
    Promise.all([import('../../desktop/desktop-replayer.js'), import('../../desktop/desktop-viewer.js')]).then(([{ DesktopReplayer }, { DesktopViewer }]) => {
      if (disposed) return;
      const p = new DesktopReplayer(id, o, {
        onChannel: (channel) => {
          viewer.current?.dispose();
          const el = host.current;
          if (!el) return;
          viewer.current = new DesktopViewer(el, channel, { viewOnly: true, label: t('replay.desktopAriaLabel') });
        },
        onChange: () => redraw((n) => n + 1),
        onError: (err) => setError(err),
      });
      player.current = p;
      p.seek(0);
    }, () => {
      if (!disposed) setLoadFailed(true);
    });
    return () => {
      disposed = true;
      player.current?.dispose();
      player.current = null;
      viewer.current?.dispose();
      viewer.current = null;
    };
  }, [o, attempt]);

  // The clock has no event of its own: the position is read a few times a second.
  useEffect(() => {
    const timer = setInterval(() => {
      const p = player.current;
      if (p) setTime(p.position);
    }, 200);
    return () => clearInterval(timer);
  }, []);

  const p = player.current;
  const playing = p?.playing ?? false;
  const duration = o?.durationMs ?? 0;
  const idleTotal = o ? o.idle.reduce((n, s) => n + (s.endMs - s.startMs), 0) : 0;
  const seek = (ms: number): void => {
    player.current?.seek(ms);
    setTime(ms);
  };
  const user = o?.user ?? query.get('user');
  const device = o?.device ?? query.get('device');

  return (
    <section class="page page-terminal page-desktop" data-page="desktop-replay">
      <PageHeader title={user && device ? t('replay.titleOf', { user, device }) : t('nav.desktopReplay')}
        intro={o ? <>{t('replay.desktopIntro', { protocol: o.protocol.toUpperCase(), id, width: o.width, height: o.height })}{query.get('at') ? ` · ${i18n.time(query.get('at'))}` : ''}</> : <code>{id}</code>}>
        <a class="btn btn-small" href={href('/recordings')}>{t('replay.back')}</a>
      </PageHeader>
      {outline.error !== null && outline.error !== undefined ? <ErrorNote error={outline.error} onRetry={outline.reload} /> : !o ? <Loading label={t('replay.loading')} /> : (
        <>
          <div class="replay-controls" role="group" aria-label={t('replay.controls')}>
            <button type="button" class="btn btn-primary" disabled={!p} aria-pressed={playing}
              onClick={() => (playing ? player.current?.pause() : player.current?.play())}>
              {playing ? t('replay.pause') : t('replay.play')}
            </button>
            <div class="timeline">
              <label for={ids.seek} class="sr-only">{t('replay.position')}</label>
              <input id={ids.seek} class="seek" type="range" min={0} max={Math.max(duration, 1)} step={100} value={time} disabled={!p}
                aria-valuetext={`${clock(time)} / ${clock(duration)}`} onInput={(e) => seek(Number(e.currentTarget.value))} />
              <div class="timeline-marks" aria-hidden="true">
                {o.idle.map((s) => <span key={s.startMs} class="timeline-idle" style={{ left: pct(s.startMs, duration), width: pct(s.endMs - s.startMs, duration) }} />)}
              </div>
            </div>
            <span class="replay-time" data-position-ms={Math.round(time)}>{clock(time)} / {clock(duration)}</span>
            <label for={ids.speed}>{t('replay.speed')}</label>
            <select id={ids.speed} value={String(p?.speed ?? 1)} disabled={!p} onChange={(e) => player.current?.setSpeed(Number(e.currentTarget.value))}>
              {SPEEDS.map((s) => <option key={s} value={String(s)}>{`${s}×`}</option>)}
            </select>
            <label class="replay-check" for={ids.idle}>
              <input id={ids.idle} type="checkbox" checked={p?.skipIdle ?? true} disabled={!p}
                onChange={(e) => { if (player.current) player.current.skipIdle = e.currentTarget.checked; redraw((n) => n + 1); }} />
              {t('replay.skipIdle')}
            </label>
            {o.idle.length > 0 && <span class="muted small">{t('replay.idleSummary', { n: o.idle.length, time: clock(idleTotal) })}</span>}
          </div>
          {p?.ended && <p class="hint" role="status">{t('replay.atEnd')}</p>}
          {loadFailed && <div class="note note-error" role="alert"><p class="note-title">{t('desktop.loadFailed')}</p></div>}
          {error !== null && (
            <div class="note note-error" role="alert">
              <p class="note-title">{t('replay.desktopFailed')}</p>
              <p class="note-detail">{failureText(error, i18n).message}</p>
              <button type="button" class="btn btn-small" onClick={() => setAttempt((n) => n + 1)}>{t('common.retry')}</button>
            </div>
          )}
          <div class="desktop-screen desktop-replay-screen" ref={host} data-protocol={o.protocol} />
        </>
      )}
    </section>
  );
}
