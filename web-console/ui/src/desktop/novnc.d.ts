/**
 * The part of noVNC's RFB class (docs/API.md of @novnc/novnc, which ships no types) the console
 * uses. The second constructor argument may be a WebSocket-like channel instead of a URL: that
 * is how the gateway's socket, the watch socket and a recording reach it (rfb-channel.ts).
 */
declare module '@novnc/novnc' {
  export interface RfbChannelLike {
    binaryType: string;
    protocol: string;
    readyState: number | string;
    onopen: ((e: Event) => void) | null;
    onmessage: ((e: { data: ArrayBuffer }) => void) | null;
    onclose: ((e: { code: number; reason: string; wasClean: boolean }) => void) | null;
    onerror: ((e: Event) => void) | null;
    send(data: ArrayBuffer | ArrayBufferView): void;
    close(): void;
  }

  export interface RfbOptions {
    shared?: boolean;
    credentials?: { username?: string; password?: string; target?: string };
    repeaterID?: string;
    wsProtocols?: string[];
  }

  export default class RFB extends EventTarget {
    constructor(target: HTMLElement, urlOrChannel: string | RfbChannelLike, options?: RfbOptions);
    viewOnly: boolean;
    scaleViewport: boolean;
    clipViewport: boolean;
    resizeSession: boolean;
    focusOnClick: boolean;
    showDotCursor: boolean;
    background: string;
    qualityLevel: number;
    compressionLevel: number;
    readonly capabilities: { power: boolean };
    disconnect(): void;
    sendCtrlAltDel(): void;
    sendKey(keysym: number, code: string | null, down?: boolean): void;
    focus(options?: FocusOptions): void;
    blur(): void;
    getImageData(): ImageData;
    toDataURL(type?: string, encoderOptions?: number): string;
  }
}
