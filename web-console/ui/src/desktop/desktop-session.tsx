import { useEffect, useRef, useState } from 'preact/hooks';
import { useI18n } from '../i18n/i18n.js';
import { openDesktopLink, type DesktopLink } from './desktop-link.js';
import type { DesktopViewer } from './desktop-viewer.js';
import { GrantBanner, SessionEndNote, grantWarningTime, isClosingNotice, type DesktopEnd } from './session-banners.js';
import { killBarsReconnect, killOf } from '../components/kill-aftermath.js';

export type DesktopState = 'loading' | 'connecting' | 'connected' | 'ended';

const clamp = (n: number, lo: number, hi: number): number => Math.max(lo, Math.min(hi, Math.round(n)));

/**
 * The vendor's desktop: noVNC over `/api/desktop` (the gateway offers security None: the person
 * is signed in, the grant was checked at the upgrade), the enforcement banner above the screen,
 * and the toolbar (state, Ctrl+Alt+Del for RDP, disconnect / connect again). The remote screen
 * is scaled to fit; an RDP display is made at this box's size when the session opens, and
 * follows it when the box changes size (noVNC asks; the gateway settles and rate-limits).
 */
export function DesktopSession({ device, protocol, grantUntil, onState }: {
  device: string;
  protocol: 'vnc' | 'rdp';
  grantUntil: string | null;
  onState?: (state: DesktopState, end: DesktopEnd | null) => void;
}) {
  const i18n = useI18n();
  const { t } = i18n;
  const host = useRef<HTMLDivElement>(null);
  const viewer = useRef<DesktopViewer | null>(null);
  const link = useRef<DesktopLink | null>(null);
  const finishRef = useRef<(e: DesktopEnd) => void>(() => undefined);
  const [attempt, setAttempt] = useState(0);
  const [state, setState] = useState<DesktopState>('loading');
  const [end, setEnd] = useState<DesktopEnd | null>(null);
  const [wasConnected, setWasConnected] = useState(false);
  const [warningAt, setWarningAt] = useState<string | null>(null);
  const [notice, setNotice] = useState<string | null>(null);
  const [size, setSize] = useState<{ width: number; height: number } | null>(null);
  const [loadFailed, setLoadFailed] = useState(false);
  const label = t('desktop.ariaLabel', { device });

  const report = (s: DesktopState, e: DesktopEnd | null): void => {
    setState(s);
    setEnd(e);
    onState?.(s, e);
  };

  useEffect(() => {
    let disposed = false;
    let ended = false;
    setWasConnected(false);
    setWarningAt(null);
    setNotice(null);
    setSize(null);
    report('loading', null);
    const finish = (e: DesktopEnd): void => {
      if (ended || disposed) return;
      ended = true;
      // The picture as it was when the session ended stays, dimmed, under the reason.
      viewer.current?.freeze();
      report('ended', e);
    };
    finishRef.current = finish;

    import('./desktop-viewer.js').then(({ DesktopViewer }) => {
      const el = host.current;
      if (disposed || !el) return;
      const width = clamp(el.clientWidth, 320, 3840);
      const height = clamp(el.clientHeight, 240, 2160);
      const l = openDesktopLink(`/api/desktop?device=${encodeURIComponent(device)}&protocol=${protocol}&width=${width}&height=${height}`, {
        input: true,
        onControl: (m) => {
          if (m.type === 'status' && m.state === 'connected') {
            setWasConnected(true);
          } else if (m.type === 'notice' && typeof m.text === 'string') {
            const at = grantWarningTime(m.text);
            if (at) setWarningAt(at);
            else if (!isClosingNotice(m.text)) setNotice(m.text);
          } else if (m.type === 'end') {
            finish({ code: m.code ?? null, reason: m.reason ?? null, message: m.message ?? null, kill: killOf(m.kill) });
          }
        },
        onClosed: () => finish({ code: null, reason: null, message: null, lost: true }),
      });
      link.current = l;
      viewer.current = new DesktopViewer(el, l.channel, {
        viewOnly: false,
        label,
        onConnect: (s) => {
          setSize(s);
          setWasConnected(true);
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
      link.current?.close();
      link.current = null;
      viewer.current?.dispose();
      viewer.current = null;
    };
    // A new attempt is a new socket, a new session and a fresh screen.
  }, [device, protocol, attempt]);

  function disconnect(): void {
    // Said first, so the banner reads "you disconnected", not "connection lost".
    finishRef.current({ code: null, reason: null, message: null, byMe: true });
    link.current?.close();
  }

  return (
    <div class="desktop-console" data-state={state}>
      {state !== 'ended' ? <GrantBanner until={grantUntil} warningAt={warningAt} notice={notice} /> : end && (
        <SessionEndNote end={end} title={wasConnected || end.byMe ? t('desktop.sessionEnded') : t('desktop.refused')} />
      )}
      <div class="desktop-toolbar">
        <span class={`conn conn-${state}`} role="status" aria-live="polite">
          {state === 'loading' && t('desktop.loading')}
          {state === 'connecting' && t('desktop.connecting')}
          {state === 'connected' && t('desktop.connected')}
          {state === 'ended' && t('desktop.ended')}
        </span>
        {size && <span class="desktop-size">{t('desktop.screenSize', size)}</span>}
        <span class="toolbar-spacer" />
        {protocol === 'rdp' && state === 'connected' && (
          <button type="button" class="btn btn-small" onClick={() => viewer.current?.sendCtrlAltDel()}>{t('desktop.ctrlAltDel')}</button>
        )}
        {(state === 'connecting' || state === 'connected') && (
          <button type="button" class="btn btn-small btn-danger" onClick={disconnect}>{t('desktop.disconnect')}</button>
        )}
        {state === 'ended' && end?.code !== 'UNAUTHENTICATED' && !killBarsReconnect(end?.kill) && (
          <button type="button" class="btn btn-small btn-primary" onClick={() => setAttempt((n) => n + 1)}>{t('desktop.reconnect')}</button>
        )}
      </div>
      {loadFailed && <div class="note note-error" role="alert"><p class="note-title">{t('desktop.loadFailed')}</p></div>}
      <div key={attempt} class={`desktop-screen ${state === 'ended' ? 'desktop-screen-ended' : ''}`} ref={host} data-protocol={protocol} />
    </div>
  );
}
