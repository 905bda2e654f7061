import { useEffect, useRef, useState } from 'preact/hooks';
import { useI18n } from '../i18n/i18n.js';
import { openDesktopLink, type DesktopLink } from './desktop-link.js';
import type { DesktopViewer } from './desktop-viewer.js';
import type { DesktopState } from './desktop-session.js';
import { SessionEndNote, type DesktopEnd } from './session-banners.js';

/**
 * Security's live view of a desktop session: the watch socket sends a whole server-side RFB
 * stream (the screen as it is now, then every update the vendor gets), which noVNC shows view
 * only; nothing is sent back (the gateway ignores a watcher's bytes anyway).
 */
export function DesktopWatch({ session, onState }: { session: string; onState?: (state: DesktopState, end: DesktopEnd | null) => void }) {
  const i18n = useI18n();
  const { t } = i18n;
  const host = useRef<HTMLDivElement>(null);
  const [state, setState] = useState<DesktopState>('loading');
  const [end, setEnd] = useState<DesktopEnd | null>(null);
  const [size, setSize] = useState<{ width: number; height: number } | null>(null);
  const [loadFailed, setLoadFailed] = useState(false);

  const report = (s: DesktopState, e: DesktopEnd | null): void => {
    setState(s);
    setEnd(e);
    onState?.(s, e);
  };

  useEffect(() => {
    let disposed = false;
    let ended = false;
    let link: DesktopLink | null = null;
    let viewer: DesktopViewer | null = null;
    const finish = (e: DesktopEnd): void => {
      if (ended || disposed) return;
      ended = true;
      viewer?.freeze();
      report('ended', e);
    };
    import('./desktop-viewer.js').then(({ DesktopViewer }) => {
      const el = host.current;
      if (disposed || !el) return;
      link = openDesktopLink(`/api/sessions/${encodeURIComponent(session)}/watch`, {
        input: false,
        onControl: (m) => {
          if (m.type === 'end') finish({ code: m.code ?? null, reason: m.reason ?? null, message: m.message ?? null });
        },
        onClosed: () => finish({ code: null, reason: null, message: null, lost: true }),
      });
      viewer = new DesktopViewer(el, link.channel, {
        viewOnly: true,
        label: t('watch.desktopAriaLabel'),
        onConnect: (s) => {
          setSize(s);
          if (!ended) report('connected', null);
        },
        onResize: (s) => setSize(s),
        onDisconnect: (clean) => {
          if (!clean) finish({ code: null, reason: null, message: null, viewerFailed: true });
        },
      });
      report('connecting', null);
    }, () => {
      if (!disposed) setLoadFailed(true);
    });
    return () => {
      disposed = true;
      link?.close();
      viewer?.dispose();
    };
  }, [session]);

  return (
    <div class="desktop-console" data-state={state}>
      {state === 'ended' && end && <SessionEndNote end={end} title={t('watch.sessionEnded')} />}
      <div class="desktop-toolbar">
        <span class={`conn conn-${state}`} role="status" aria-live="polite">
          {state === 'loading' && t('desktop.loading')}
          {state === 'connecting' && t('watch.joining')}
          {state === 'connected' && t('watch.watching')}
          {state === 'ended' && t('desktop.ended')}
        </span>
        {size && <span class="desktop-size">{t('desktop.screenSize', size)}</span>}
      </div>
      {loadFailed && <div class="note note-error" role="alert"><p class="note-title">{t('desktop.loadFailed')}</p></div>}
      <div class={`desktop-screen ${state === 'ended' ? 'desktop-screen-ended' : ''}`} ref={host} />
    </div>
  );
}
