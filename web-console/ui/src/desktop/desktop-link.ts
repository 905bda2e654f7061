import { RfbChannel } from './rfb-channel.js';

/** A JSON text frame of the gateway's desktop and watch sockets. */
export interface DesktopControl {
  type?: string;
  state?: string;
  session?: string;
  text?: string;
  code?: string | null;
  reason?: string | null;
  message?: string | null;
  /** On `end` after a kill: its reason, and whether the grant was revoked or the account locked. */
  kill?: unknown;
}

export interface DesktopLink {
  channel: RfbChannel;
  /** Closes the socket from this side (the person disconnected, or left the page). */
  close(): void;
}

export function socketUrl(path: string): string {
  return `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}${path}`;
}

/**
 * One of the gateway's desktop WebSockets (`/api/desktop` for the vendor, the watch socket for
 * security) as a channel noVNC runs over: binary frames are RFB and pass through both ways (or,
 * view only, only towards noVNC: a watcher's input is dropped here as well as at the gateway);
 * JSON text frames go to `onControl`. `onClosed` runs before noVNC hears of the close, so the
 * page can keep the last picture (noVNC takes its canvas away when it disconnects).
 */
export function openDesktopLink(path: string, opts: {
  input: boolean;
  onControl: (msg: DesktopControl) => void;
  onClosed: (code: number) => void;
}): DesktopLink {
  const ws = new WebSocket(socketUrl(path));
  ws.binaryType = 'arraybuffer';
  let closed = false;
  const channel = new RfbChannel(
    opts.input ? (bytes) => { if (ws.readyState === WebSocket.OPEN) ws.send(bytes); } : null,
    () => ws.close(),
  );
  ws.onopen = () => channel.open();
  ws.onmessage = (ev: MessageEvent<ArrayBuffer | string>) => {
    if (typeof ev.data !== 'string') {
      channel.deliver(new Uint8Array(ev.data));
      return;
    }
    let msg: DesktopControl;
    try {
      msg = JSON.parse(ev.data) as DesktopControl;
    } catch {
      return;
    }
    if (msg && typeof msg === 'object') opts.onControl(msg);
  };
  ws.onclose = (ev) => {
    if (closed) return;
    closed = true;
    opts.onClosed(ev.code);
    channel.end(ev.code === 1005 ? 1000 : ev.code, ev.reason);
  };
  return {
    channel,
    close() {
      ws.close();
    },
  };
}
