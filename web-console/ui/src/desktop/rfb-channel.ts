import type { RfbChannelLike } from '@novnc/novnc';

// WebSocket's readyState numbers (noVNC accepts these or RTCDataChannel's words).
const CONNECTING = 0;
const OPEN = 1;
const CLOSED = 3;

/**
 * How many bytes of an RFB 3.8 server stream are the handshake the gateway sends when it offers
 * security type None: version (12), the security types (1 + n), SecurityResult (4), ServerInit
 * (24 + name). Null while the bytes seen so far do not tell yet.
 */
export function serverHandshakeLength(seen: Uint8Array): number | null {
  if (seen.length < 13) return null;
  const types = seen[12] as number;
  const init = 13 + types + 4;
  if (seen.length < init + 24) return null;
  const view = new DataView(seen.buffer, seen.byteOffset, seen.byteLength);
  return init + 24 + view.getUint32(init + 20);
}

/** The width and height a server stream's ServerInit announces, once its handshake is complete. */
export function serverInitSize(handshake: Uint8Array): { width: number; height: number } | null {
  const total = serverHandshakeLength(handshake);
  if (total === null || handshake.length < total) return null;
  const init = 13 + (handshake[12] as number) + 4;
  const view = new DataView(handshake.buffer, handshake.byteOffset, handshake.byteLength);
  return { width: view.getUint16(init), height: view.getUint16(init + 2) };
}

/**
 * Cuts a server stream where noVNC stops reading. noVNC runs the handshake in a loop that stops
 * after it answers the server's version and again at "connected", leaving whatever followed in
 * the same message unread until another message comes. A watcher's first screen and a replay's
 * come in one piece with the handshake, and a screen that does not change sends nothing more:
 * it would stay black. Cut after the version and after ServerInit, every byte is read at once.
 */
class HandshakeSplitter {
  private seen = new Uint8Array(0);
  private done = false;

  split(chunk: Uint8Array): Uint8Array[] {
    if (this.done) return [chunk];
    const before = this.seen.length;
    const seen = new Uint8Array(before + chunk.length);
    seen.set(this.seen);
    seen.set(chunk, before);
    this.seen = seen;
    const total = serverHandshakeLength(seen);
    const cuts = [12, ...(total !== null ? [total] : [])].map((at) => at - before).filter((at) => at > 0 && at < chunk.length);
    if (total !== null && seen.length >= total) {
      this.done = true;
      this.seen = new Uint8Array(0);
    }
    const parts: Uint8Array[] = [];
    let from = 0;
    for (const at of cuts) {
      parts.push(chunk.subarray(from, at));
      from = at;
    }
    parts.push(chunk.subarray(from));
    return parts;
  }
}

/**
 * A WebSocket-shaped object that noVNC's RFB class runs over (it needs `binaryType`, `protocol`,
 * `readyState`, `send`, `close` and the four handlers). Whoever owns the channel feeds it the
 * server's RFB bytes (`deliver`) and says when the stream opens and ends; what noVNC sends goes
 * to `sink`, or nowhere for a view-only source (a watch, a replay). The gateway's JSON text
 * frames never come here: the owner routes them to the page.
 */
export class RfbChannel implements RfbChannelLike {
  binaryType = 'arraybuffer';
  protocol = '';
  readyState: number = CONNECTING;
  onopen: ((e: Event) => void) | null = null;
  onmessage: ((e: { data: ArrayBuffer }) => void) | null = null;
  onclose: ((e: { code: number; reason: string; wasClean: boolean }) => void) | null = null;
  onerror: ((e: Event) => void) | null = null;
  private readonly splitter = new HandshakeSplitter();

  constructor(
    /** Where noVNC's bytes go; null drops them (view only). */
    private readonly sink: ((bytes: Uint8Array) => void) | null,
    /** noVNC asked to close (disconnect): the owner closes its source and then calls end(). */
    private readonly onCloseRequest: () => void,
  ) {}

  /** Called by noVNC. */
  send(data: ArrayBuffer | ArrayBufferView): void {
    if (this.readyState !== OPEN || !this.sink) return;
    const bytes = data instanceof ArrayBuffer ? new Uint8Array(data) : new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    // noVNC reuses its send buffer: the copy is what leaves.
    this.sink(bytes.slice());
  }

  /** Called by noVNC. */
  close(): void {
    if (this.readyState === CLOSED) return;
    this.onCloseRequest();
  }

  get isOpen(): boolean {
    return this.readyState === OPEN;
  }

  open(): void {
    if (this.readyState !== CONNECTING) return;
    this.readyState = OPEN;
    this.onopen?.(new Event('open'));
  }

  /** Server bytes for noVNC: whole or partial RFB messages, in order. */
  deliver(bytes: Uint8Array): void {
    if (this.readyState !== OPEN || bytes.length === 0) return;
    for (const part of this.splitter.split(bytes)) {
      this.onmessage?.({ data: part.slice().buffer });
    }
  }

  end(code = 1000, reason = ''): void {
    if (this.readyState === CLOSED) return;
    this.readyState = CLOSED;
    this.onclose?.({ code, reason, wasClean: code === 1000 });
  }
}
