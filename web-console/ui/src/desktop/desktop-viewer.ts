import RFB from '@novnc/novnc';
import type { RfbChannel } from './rfb-channel.js';

export interface ViewerHooks {
  /** The RFB handshake is done: the screen is shown. */
  onConnect?: (size: { width: number; height: number }) => void;
  /** noVNC let go of the connection (clean: the stream ended as RFB allows). */
  onDisconnect?: (clean: boolean) => void;
  /** The remote screen changed size (an RDP desktop following the window, a device's own change). */
  onResize?: (size: { width: number; height: number }) => void;
}

/**
 * noVNC's RFB object over one of our channels, in `host`: scaled to fit, view only for watching
 * and replay. The person's keyboard and pointer reach the device only through a channel with a
 * sink (the vendor's own session).
 */
export class DesktopViewer {
  readonly rfb: RFB;
  private frozen: HTMLCanvasElement | null = null;
  private disconnected = false;
  private sizeWatch: MutationObserver | null = null;
  width = 0;
  height = 0;

  constructor(private readonly host: HTMLElement, channel: RfbChannel, private readonly opts: { viewOnly: boolean; label: string } & ViewerHooks) {
    this.rfb = new RFB(host, channel, { shared: true });
    this.rfb.viewOnly = opts.viewOnly;
    this.rfb.scaleViewport = true;
    // Asks the gateway to follow the window's size; only an RDP desktop does (a VNC device's
    // screen is its own, and the gateway does not offer it the means to ask).
    this.rfb.resizeSession = !opts.viewOnly;
    this.rfb.focusOnClick = !opts.viewOnly;
    this.rfb.background = '#101418';
    this.rfb.addEventListener('connect', () => {
      const c = this.canvas();
      this.width = c?.width ?? 0;
      this.height = c?.height ?? 0;
      if (c) {
        c.setAttribute('aria-label', opts.label);
        c.setAttribute('role', 'img');
      }
      opts.onConnect?.({ width: this.width, height: this.height });
      if (!opts.viewOnly) this.rfb.focus({ preventScroll: true });
      // noVNC has no resize event; its canvas is sized to the remote screen (scaled by CSS).
      if (c && opts.onResize) {
        this.sizeWatch = new MutationObserver(() => {
          if (c.width === this.width && c.height === this.height) return;
          this.width = c.width;
          this.height = c.height;
          opts.onResize?.({ width: c.width, height: c.height });
        });
        this.sizeWatch.observe(c, { attributes: true, attributeFilter: ['width', 'height'] });
      }
    });
    this.rfb.addEventListener('disconnect', (e) => {
      this.disconnected = true;
      opts.onDisconnect?.((e as CustomEvent<{ clean: boolean }>).detail.clean);
    });
  }

  /** noVNC's canvas: what the person sees, at the remote screen's own size (scaled by CSS). */
  canvas(): HTMLCanvasElement | null {
    return this.frozen ? null : this.host.querySelector('canvas');
  }

  /**
   * Keeps the last picture: noVNC removes its canvas when the connection ends, and a blank box
   * would hide what the screen showed when the session was ended.
   */
  freeze(): void {
    if (this.frozen || this.disconnected) return;
    const live = this.host.querySelector('canvas');
    if (!live || live.width === 0 || live.height === 0) return;
    const still = document.createElement('canvas');
    still.width = live.width;
    still.height = live.height;
    still.className = 'desktop-frozen';
    still.setAttribute('role', 'img');
    still.setAttribute('aria-label', this.opts.label);
    still.getContext('2d')?.drawImage(live, 0, 0);
    this.frozen = still;
    this.host.append(still);
  }

  sendCtrlAltDel(): void {
    this.rfb.sendCtrlAltDel();
    this.rfb.focus({ preventScroll: true });
  }

  focus(): void {
    this.rfb.focus({ preventScroll: true });
  }

  dispose(): void {
    this.sizeWatch?.disconnect();
    this.sizeWatch = null;
    if (!this.disconnected) {
      try {
        this.rfb.disconnect();
      } catch {
        // already gone
      }
    }
    this.frozen?.remove();
    this.frozen = null;
  }
}
