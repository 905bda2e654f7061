import { useEffect, useRef, useState } from 'preact/hooks';
import { endText, noticeDetail } from '../i18n/failure-text.js';
import { useI18n } from '../i18n/i18n.js';
import { KillAftermath, killBarsReconnect, killOf, type KillInfo } from '../components/kill-aftermath.js';
import type { MountedTerminal } from './xterm-terminal.js';

export type ConsoleState = 'loading' | 'connecting' | 'connected' | 'ended';

export interface SessionEnd {
  code: string | null;
  reason: string | null;
  message: string | null;
  /** The browser lost the socket without being told why. */
  lost?: boolean;
  /** The person closed it here. */
  byMe?: boolean;
  /** Security killed it, and perhaps revoked the grant or locked the account too. */
  kill?: KillInfo | null;
}

interface ControlMessage {
  type?: string;
  state?: string;
  code?: string | null;
  reason?: string | null;
  message?: string | null;
  kill?: unknown;
}

export function socketUrl(path: string): string {
  return `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}${path}`;
}

/**
 * A terminal over one of the gateway's WebSockets: binary frames are terminal bytes both ways,
 * text frames JSON control messages (`status`, `end`; `resize` from here). Read-only for watching.
 */
export function TerminalConsole({ path, readOnly, label, onState }: {
  /** The socket's path; cols and rows are added for a terminal that types. */
  path: string;
  readOnly: boolean;
  label: string;
  onState?: (state: ConsoleState, end: SessionEnd | null) => void;
}) {
  const i18n = useI18n();
  const { t } = i18n;
  const box = useRef<HTMLDivElement>(null);
  const mounted = useRef<MountedTerminal | null>(null);
  const socket = useRef<WebSocket | null>(null);
  const [state, setState] = useState<ConsoleState>('loading');
  const [end, setEnd] = useState<SessionEnd | null>(null);
  const [attempt, setAttempt] = useState(0);
  const [clipboardNote, setClipboardNote] = useState<string | null>(null);
  const [loadFailed, setLoadFailed] = useState(false);
  // An end before "connected" is a refusal (no grant, device unreachable): it never was a session.
  const [wasConnected, setWasConnected] = useState(false);

  const report = (s: ConsoleState, e: SessionEnd | null): void => {
    if (s === 'connected') setWasConnected(true);
    if (s === 'connecting') setWasConnected(false);
    setState(s);
    setEnd(e);
    onState?.(s, e);
  };

  useEffect(() => {
    let disposed = false;
    let ws: WebSocket | null = null;
    let ended = false;
    const encoder = new TextEncoder();
    const finish = (e: SessionEnd): void => {
      if (ended || disposed) return;
      ended = true;
      const term = mounted.current?.term;
      if (term) {
        term.options.disableStdin = true;
        term.options.cursorBlink = false;
        term.write('\x1b[?25l');
      }
      report('ended', e);
    };

    import('./xterm-terminal.js').then(({ mountTerminal }) => {
      if (disposed || !box.current) return;
      const m = mountTerminal(box.current, {
        readOnly,
        ariaLabel: label,
        onResize: (cols, rows) => {
          if (!readOnly && ws?.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type: 'resize', cols, rows }));
        },
      });
      mounted.current = m;
      const { term } = m;
      term.attachCustomKeyEventHandler((ev) => {
        // Ctrl+Shift+C copies the selection (Ctrl+C stays the interrupt the device expects);
        // Ctrl+Shift+V is left to the browser, whose paste event xterm turns into input.
        if (ev.type === 'keydown' && ev.ctrlKey && ev.shiftKey && (ev.key === 'C' || ev.key === 'c')) {
          void copySelection();
          return false;
        }
        if (ev.ctrlKey && ev.shiftKey && (ev.key === 'V' || ev.key === 'v')) return false;
        return true;
      });

      const sep = path.includes('?') ? '&' : '?';
      ws = new WebSocket(socketUrl(readOnly ? path : `${path}${sep}cols=${term.cols}&rows=${term.rows}`));
      ws.binaryType = 'arraybuffer';
      socket.current = ws;
      report('connecting', null);
      ws.onopen = () => {
        // Watching needs no "connected" word from the server: output starts at once.
        if (readOnly) report('connected', null);
      };
      ws.onmessage = (ev: MessageEvent<ArrayBuffer | string>) => {
        if (typeof ev.data !== 'string') {
          term.write(new Uint8Array(ev.data));
          return;
        }
        let msg: ControlMessage;
        try {
          msg = JSON.parse(ev.data) as ControlMessage;
        } catch {
          return;
        }
        if (msg.type === 'status' && msg.state === 'connected') {
          report('connected', null);
          if (!readOnly) {
            // The size may have changed while the session was being opened.
            ws?.send(JSON.stringify({ type: 'resize', cols: term.cols, rows: term.rows }));
            term.focus();
          }
        } else if (msg.type === 'end') {
          finish({ code: msg.code ?? null, reason: msg.reason ?? null, message: msg.message ?? null, kill: killOf(msg.kill) });
        }
      };
      ws.onclose = () => finish({ code: null, reason: null, message: null, lost: true });
      if (!readOnly) {
        term.onData((d) => {
          if (ws?.readyState === WebSocket.OPEN) ws.send(encoder.encode(d));
        });
        term.onBinary((d) => {
          if (ws?.readyState === WebSocket.OPEN) ws.send(Uint8Array.from(d, (c) => c.charCodeAt(0) & 0xff));
        });
      }
    }, () => {
      if (!disposed) setLoadFailed(true);
    });

    return () => {
      disposed = true;
      ws?.close();
      socket.current = null;
      mounted.current?.dispose();
      mounted.current = null;
    };
    // A new attempt (reconnect) is a new socket and a clean screen.
  }, [path, readOnly, attempt]);

  async function copySelection(): Promise<void> {
    const text = mounted.current?.term.getSelection() ?? '';
    if (!text) {
      setClipboardNote(t('terminal.nothingSelected'));
      return;
    }
    try {
      await navigator.clipboard.writeText(text);
      setClipboardNote(t('terminal.copied'));
    } catch {
      setClipboardNote(t('terminal.clipboardDenied'));
    }
  }

  async function paste(): Promise<void> {
    try {
      const text = await navigator.clipboard.readText();
      if (text) mounted.current?.term.paste(text);
      mounted.current?.term.focus();
    } catch {
      setClipboardNote(t('terminal.pasteDenied'));
    }
  }

  function disconnect(): void {
    const ws = socket.current;
    if (!ws) return;
    // Said before closing, so the banner reads "you disconnected", not "connection lost".
    ws.onclose = null;
    ws.close();
    const term = mounted.current?.term;
    if (term) term.options.disableStdin = true;
    report('ended', { code: null, reason: null, message: null, byMe: true });
  }

  const endLine = end
    ? end.byMe
      ? t('terminal.endedByYou')
      : end.lost && !end.code
        ? t('terminal.connectionLost')
        : endText(end.code, end.reason, end.message, i18n)
    : null;
  const detail = end && !end.byMe ? noticeDetail(end.message, end.code) : null;
  const serverNotice = detail && detail !== endLine ? detail : null;

  return (
    <div class="terminal-console">
      <div class="terminal-toolbar">
        <span class={`conn conn-${state}`} role="status" aria-live="polite">
          {state === 'loading' && t('terminal.loading')}
          {state === 'connecting' && t('terminal.connecting')}
          {state === 'connected' && (readOnly ? t('watch.watching') : t('terminal.connected'))}
          {state === 'ended' && t('terminal.ended')}
        </span>
        <span class="toolbar-spacer" />
        <button type="button" class="btn btn-small" onClick={() => void copySelection()} title={t('terminal.copyShortcut')}>
          {t('terminal.copy')}
        </button>
        {!readOnly && (
          <button type="button" class="btn btn-small" onClick={() => void paste()} disabled={state !== 'connected'} title={t('terminal.pasteShortcut')}>
            {t('terminal.paste')}
          </button>
        )}
        {!readOnly && state === 'connected' && (
          <button type="button" class="btn btn-small btn-danger" onClick={disconnect}>
            {t('terminal.disconnect')}
          </button>
        )}
        {!readOnly && state === 'ended' && end?.code !== 'UNAUTHENTICATED' && !killBarsReconnect(end?.kill) && (
          <button type="button" class="btn btn-small btn-primary" onClick={() => setAttempt((n) => n + 1)}>
            {t('terminal.reconnect')}
          </button>
        )}
      </div>
      {clipboardNote && <p class="hint clipboard-note" role="status">{clipboardNote}</p>}
      {loadFailed && <div class="note note-error" role="alert"><p class="note-title">{t('terminal.loadFailed')}</p></div>}
      {state === 'ended' && endLine && (
        <div class={`session-end ${end?.byMe ? 'session-end-neutral' : ''}`} role="alert" data-end-code={end?.code ?? ''}>
          <p class="session-end-title">{readOnly ? t('watch.sessionEnded') : wasConnected || end?.byMe ? t('terminal.sessionEnded') : t('terminal.refused')}</p>
          <p class="session-end-reason">{endLine}</p>
          {serverNotice && <p class="session-end-detail">{t('terminal.gatewaySaid', { message: serverNotice })}</p>}
          {!readOnly && <KillAftermath kill={end?.kill} />}
        </div>
      )}
      <div class="terminal-box" ref={box} />
    </div>
  );
}
