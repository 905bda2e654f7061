import { createHash } from 'node:crypto';
import type { Duplex } from 'node:stream';
import { decodeInput, type RfbInputEvent } from '../../recordings/rfb-reader.js';
import { RGBX32, samePixelFormat } from '../../recordings/rfb-keyframe.js';
import type { RfbRecordingWriter } from '../../recordings/rfb-writer.js';
import type { ExitInfo, RelayEnd, SessionIo } from '../broker/session-io.js';
import { Framebuffer } from './framebuffer.js';
import type { RfbConnection } from './rfb-client.js';
import {
  clientMessage, MessageReader, RfbProtocolError, ScreenSize, serverMessage, type ClientMessage, type Parser, type ServerMessage,
} from './rfb-messages.js';
import { ENCODING, serverInitMsg, setEncodingsMsg, setPixelFormatMsg } from './rfb-wire.js';

/** How a desktop session's relay ends: a relay's ends, or a peer that broke the protocol. */
export type DesktopEnd = RelayEnd | 'protocol_error';

export interface ClipboardTransfer {
  direction: 'to-device' | 'from-device';
  allowed: boolean;
  /** The text, when it was allowed through; a refused transfer is audited by size and hash only. */
  text: string | null;
  bytes: number;
  /** SHA-256 of the bytes as they crossed (RFB cut text is Latin-1), hex. */
  sha256: string;
  /** How many transfers this way the session has had so far; past the first few only some are reported. */
  count: number;
}

/** Clipboard transfers reported one by one per direction; after that one in REPORT_EVERY (with the count). */
const REPORT_FIRST = 20;
const REPORT_EVERY = 100;
/** Ignored messages (colour maps, resize requests) recorded one by one; after that one in REPORT_EVERY. */
const NOTE_FIRST = 3;

export interface RfbProxyOptions {
  /**
   * Clipboard transfer the grant allows, each way on its own (off by default, R-6.3e, R-6.3f):
   * to the device (the browser's cut text) is an upload, from the device a download.
   */
  clipboard: { toDevice: boolean; fromDevice: boolean };
  /** Told of every clipboard transfer, allowed or refused, for the audit. */
  onClipboard?: (t: ClipboardTransfer) => void;
  /**
   * The browser may resize the remote screen (SetDesktopSize): for the RDP path's private Xvnc,
   * whose size follows the browser; a device's own screen is not the vendor's to change.
   */
  allowResize?: boolean;
  /**
   * With allowResize: the browser's SetDesktopSize goes here instead of to the device (the RDP
   * path resizes its display and reconnects xfreerdp at the new size).
   */
  onResizeRequest?: (width: number, height: number) => void;
  /** The largest clipboard text either way; a larger one ends the session. */
  maxCutTextBytes?: number;
  /** The browser must finish the RFB handshake within this time. */
  handshakeTimeoutMs?: number;
}

/**
 * Encodings the gateway can decode without state that spans messages, so every keyframe is a
 * true starting point: a recording (or a late watcher) can start decoding at any keyframe.
 * ZRLE and Tight keep zlib streams for the whole connection and are never negotiated; the
 * browser link is left to WebSocket permessage-deflate, the disk to the recording's block DEFLATE
 * (measured on a busy 1280x800 screen at 10 updates/s: Hextile 3.8 MiB/s, 1.2 MiB/s after
 * DEFLATE; ZRLE 1.0 MiB/s; lossless Tight 0.9 MiB/s).
 */
const DATA_ENCODINGS: readonly number[] = [ENCODING.copyRect, ENCODING.hextile, ENCODING.rre, ENCODING.raw];
/**
 * Pseudo-encodings passed on. Cursor (-239) keeps the pointer local and responsive for the user;
 * its shape goes into keyframes, and where the pointer was is in the recorded input. The VMware
 * cursor, extended clipboard, extended mouse buttons, XVP (power control), QEMU LED state and
 * quality hints are dropped: the gateway does not parse them.
 */
const PSEUDO_ENCODINGS: readonly number[] = [
  ENCODING.cursor, ENCODING.desktopSize, ENCODING.lastRect, ENCODING.qemuExtendedKeyEvent, ENCODING.desktopName,
  ENCODING.fence, ENCODING.continuousUpdates,
];

type BrowserStep =
  | { type: 'version'; text: string }
  | { type: 'securityChoice'; choice: number }
  | { type: 'clientInit' }
  | ClientMessage;

/**
 * A FramebufferUpdate with one ExtendedDesktopSize rectangle answering the browser's
 * SetDesktopSize: reason 1 (this client asked), status 4 ("request forwarded, may complete
 * asynchronously"), one screen of the size the display has now.
 *
 * Not status 0: noVNC takes "accepted" at a size other than the one it asked for as out of sync
 * and asks again 100 ms later, which would restart the follower's settling for ever (and a size
 * the follower rounds or clamps would never match). After a non-zero status it asks again only
 * when its window changes; the display's own size change reaches it as the server's (reason 0).
 */
function extendedDesktopSizeAnswer(width: number, height: number): Buffer {
  const b = Buffer.alloc(4 + 12 + 4 + 16);
  b.writeUInt16BE(1, 2); // one rectangle
  b.writeUInt16BE(1, 4); // x: the reason, "requested by this client"
  b.writeUInt16BE(4, 6); // y: the status, "request forwarded"
  b.writeUInt16BE(width, 8);
  b.writeUInt16BE(height, 10);
  b.writeInt32BE(ENCODING.extendedDesktopSize, 12);
  b.writeUInt8(1, 16); // one screen (id 0, at 0,0, flags 0)
  b.writeUInt16BE(width, 28);
  b.writeUInt16BE(height, 30);
  return b;
}

function* step<T>(n: number, make: (b: Buffer) => T): Parser<T> {
  return make(yield n);
}

/**
 * One desktop session between the browser (noVNC over a WebSocket, raw RFB bytes) and the device.
 * To the browser the gateway is an RFB server offering security type None (the user is already
 * authenticated and authorised); to the device it is the client that authenticated with the
 * vaulted password. Every message both ways is parsed, and only whole, known messages pass:
 * anything malformed, oversized or unknown ends the session (fail closed).
 *
 * Device updates are decoded into the gateway's framebuffer before they are forwarded, so the
 * recorder can take keyframes between messages and a late watcher can start from the screen as
 * it is. Backpressure both ways: a slow browser, device or disk pauses the source.
 */
export class RfbProxy implements SessionIo {
  /** Every server message the browser is shown after the handshake, whole; a watcher starts from snapshot(). */
  onOutput?: (chunk: Buffer) => void;
  /** A gateway notice for the user (grant ending): the front door shows it beside the screen. */
  onNotice?: (text: string) => void;
  /** Every key, pointer and clipboard event forwarded to the device (a watcher's pointer overlay). */
  onInput?: (event: RfbInputEvent) => void;
  bytesIn = 0;
  bytesOut = 0;
  lastInputAt = Date.now();
  exit: ExitInfo | null = null;
  /** Why the session ended on a protocol error, for the log and the audit. */
  failure: string | null = null;

  readonly framebuffer: Framebuffer;
  private readonly screen: ScreenSize;
  private phase: 'version' | 'security' | 'init' | 'normal' = 'version';
  private readonly browserReader: MessageReader<BrowserStep>;
  private readonly deviceReader: MessageReader<ServerMessage>;
  private readonly downBlockers = new Set<string>();
  private readonly upBlockers = new Set<string>();
  private finished = false;
  private handshakeTimer: NodeJS.Timeout | null = null;
  private readonly maxCutText: number;
  private readonly device: Duplex;

  constructor(
    private readonly browser: Duplex,
    private readonly connection: RfbConnection,
    private readonly recorder: RfbRecordingWriter,
    private readonly onFinish: (why: DesktopEnd) => void,
    private readonly opts: RfbProxyOptions,
  ) {
    const { width, height, name } = connection.serverInit;
    this.device = connection.socket;
    this.framebuffer = new Framebuffer(width, height, name);
    this.screen = new ScreenSize(width, height);
    this.maxCutText = opts.maxCutTextBytes ?? 1024 * 1024;
    this.browserReader = new MessageReader<BrowserStep>(() => this.browserParser(), () => this.maxCutText + 64);
    // Room for a full screen twice over in Raw (the paint budget bounds what a message may draw),
    // and never less than 16 MiB.
    this.deviceReader = new MessageReader<ServerMessage>(
      () => serverMessage(this.screen, null, this.maxCutText),
      () => Math.max(16 * 1024 * 1024, this.screen.width * this.screen.height * 8 + 1024 * 1024),
    );
  }

  private browserParser(): Parser<BrowserStep> {
    switch (this.phase) {
      case 'version': return step(12, (b) => ({ type: 'version', text: b.toString('latin1') }));
      case 'security': return step(1, (b) => ({ type: 'securityChoice', choice: b[0] as number }));
      case 'init': return step(1, () => ({ type: 'clientInit' }));
      default: return clientMessage(this.maxCutText);
    }
  }

  start(): void {
    const { browser, device, recorder } = this;
    browser.on('data', (chunk: Buffer) => {
      this.bytesIn += chunk.length;
      this.guard('browser', () => this.browserReader.push(chunk, (m, bytes) => this.fromBrowser(m, bytes)));
    });
    browser.on('end', () => this.finish('client_closed'));
    browser.on('close', () => this.finish('client_closed'));
    browser.on('error', () => this.finish('client_closed'));
    browser.on('drain', () => this.unblock(this.downBlockers, 'browser'));

    device.on('data', (chunk: Buffer) => {
      this.guard('device', () => this.deviceReader.push(chunk, (m, bytes) => this.fromDevice(m, bytes)));
    });
    device.on('end', () => this.deviceClosed());
    device.on('close', () => this.deviceClosed());
    device.on('error', () => this.deviceClosed());
    device.on('drain', () => this.unblock(this.upBlockers, 'device'));

    recorder.on('drain', () => {
      this.unblock(this.downBlockers, 'recorder');
      this.unblock(this.upBlockers, 'recorder');
    });
    recorder.on('error', () => this.finish('recording_failed'));

    this.handshakeTimer = setTimeout(() => {
      this.protocolError('browser', `the browser did not finish the RFB handshake within ${this.opts.handshakeTimeoutMs ?? 10_000} ms`);
    }, this.opts.handshakeTimeoutMs ?? 10_000);
    this.handshakeTimer.unref();
    recorder.event({
      start: 'rfb', device: { width: this.screen.width, height: this.screen.height, name: this.framebuffer.name, version: this.connection.version },
      clipboard: this.opts.clipboard, resize: this.opts.allowResize === true,
    });
    this.toBrowser(Buffer.from('RFB 003.008\n', 'latin1'), false);
    browser.resume();
  }

  /** Runs a parse step; a broken message ends the session instead of throwing into the stream. */
  private guard(from: 'browser' | 'device', fn: () => void): void {
    if (this.finished) return;
    try {
      fn();
    } catch (err) {
      if (err instanceof RfbProtocolError) this.protocolError(from, err.message);
      else this.protocolError(from, `internal error: ${(err as Error).message}`);
    }
  }

  private protocolError(from: 'browser' | 'device', why: string): void {
    if (this.finished) return;
    this.failure = `${from}: ${why}`;
    this.recorder.event({ protocolError: why, from });
    this.finish('protocol_error');
  }

  private fromBrowser(m: BrowserStep, bytes: Buffer): void {
    if (this.finished) return;
    switch (m.type) {
      case 'version':
        if (m.text !== 'RFB 003.008\n') throw new RfbProtocolError(`the browser speaks ${JSON.stringify(m.text)}, not RFB 3.8`);
        this.phase = 'security';
        this.toBrowser(Buffer.from([1, 1]), false); // one security type: None
        return;
      case 'securityChoice':
        if (m.choice !== 1) throw new RfbProtocolError(`the browser chose security type ${m.choice}; only None is offered`);
        this.phase = 'init';
        this.toBrowser(Buffer.alloc(4), false); // SecurityResult: OK
        return;
      case 'clientInit': {
        this.phase = 'normal';
        if (this.handshakeTimer) clearTimeout(this.handshakeTimer);
        const { width, height } = this.screen;
        this.toBrowser(serverInitMsg(width, height, RGBX32, this.framebuffer.name), false);
        // One pixel format for the whole session, set before any update is asked for.
        this.toDevice(setPixelFormatMsg(RGBX32));
        this.recorder.keyframe(this.framebuffer.keyframe());
        this.startDevice();
        return;
      }
      case 'setPixelFormat':
        if (!samePixelFormat(m.format, RGBX32)) {
          throw new RfbProtocolError(`the browser asked for a pixel format (${m.format.bitsPerPixel} bpp, depth ${m.format.depth}) the gateway does not translate`);
        }
        return; // already in force
      case 'setEncodings': {
        const allowed = new Set<number>([...DATA_ENCODINGS, ...PSEUDO_ENCODINGS, ...(this.opts.allowResize ? [ENCODING.extendedDesktopSize] : [])]);
        const kept = m.encodings.filter((e) => allowed.has(e));
        this.browserKnowsExtendedSize = kept.includes(ENCODING.extendedDesktopSize);
        this.recorder.event({ encodings: kept, dropped: m.encodings.filter((e) => !allowed.has(e)) });
        this.toDevice(setEncodingsMsg(kept));
        return;
      }
      case 'key':
      case 'pointer':
      case 'qemuKey':
        this.lastInputAt = Date.now();
        this.input(bytes);
        return;
      case 'cutText':
        if (!this.clipboard('to-device', m.text)) return;
        this.input(bytes);
        return;
      case 'setDesktopSize':
        this.note('up', 'setDesktopSize', { setDesktopSize: { width: m.width, height: m.height }, allowed: this.opts.allowResize === true });
        if (!this.opts.allowResize) return;
        if (!this.opts.onResizeRequest) {
          this.toDevice(bytes);
          return;
        }
        this.opts.onResizeRequest(m.width, m.height);
        // The gateway resizes later (settled, rate limited), and the display's own size change then
        // reaches the browser as the server's. noVNC sends its next request only after an answer
        // to this one, so it is answered at once: forwarded, at the size the screen has now.
        if (this.browserKnowsExtendedSize) this.toBrowser(extendedDesktopSizeAnswer(this.screen.width, this.screen.height), true);
        return;
      case 'updateRequest':
      case 'enableContinuousUpdates':
      case 'fence':
        this.toDevice(bytes);
        return;
    }
  }

  private pictureKeyframed = false;
  /** The browser asked for ExtendedDesktopSize (noVNC does, and only then sends SetDesktopSize). */
  private browserKnowsExtendedSize = false;
  private readonly clipboardCount = { 'to-device': 0, 'from-device': 0 };
  private readonly notes = new Map<string, number>();

  /**
   * A clipboard transfer either way: reported for the audit (the first few one by one, then one in
   * a hundred with the count, so a peer repeating it cannot flood the audit chain), and recorded
   * when refused. Whether it may pass.
   */
  private clipboard(direction: ClipboardTransfer['direction'], text: Buffer): boolean {
    const count = ++this.clipboardCount[direction];
    const allowed = direction === 'to-device' ? this.opts.clipboard.toDevice : this.opts.clipboard.fromDevice;
    if (count <= REPORT_FIRST || count % REPORT_EVERY === 0) {
      this.opts.onClipboard?.({
        direction, allowed, text: allowed ? text.toString('latin1') : null, bytes: text.length,
        sha256: createHash('sha256').update(text).digest('hex'), count,
      });
      if (!allowed) this.note(direction === 'to-device' ? 'up' : 'down', `clipboard ${direction}`, { clipboard: 'refused', direction, bytes: text.length, count }, true);
    }
    return allowed;
  }

  /**
   * Records what the gateway did not pass on: the first few of each kind, then one in a hundred.
   * A recorder that falls behind pauses the side that sent it, as for what is passed on.
   */
  private note(side: 'up' | 'down', kind: string, event: Record<string, unknown>, always = false): void {
    const n = (this.notes.get(kind) ?? 0) + 1;
    this.notes.set(kind, n);
    if (!always && n > NOTE_FIRST && n % REPORT_EVERY !== 0) return;
    if (!this.recorder.event(n > NOTE_FIRST ? { ...event, occurrences: n } : event)) this.block(side === 'up' ? this.upBlockers : this.downBlockers, 'recorder');
  }

  private input(bytes: Buffer): void {
    if (!this.recorder.input(bytes)) this.block(this.upBlockers, 'recorder');
    this.onInput?.(decodeInput(bytes));
    this.toDevice(bytes);
  }

  private startDevice(): void {
    const pending = this.connection.pending;
    if (pending.length > 0) this.guard('device', () => this.deviceReader.push(pending, (m, bytes) => this.fromDevice(m, bytes)));
    if (this.downBlockers.size === 0 && !this.finished) this.device.resume();
  }

  private fromDevice(m: ServerMessage, bytes: Buffer): void {
    if (this.finished) return;
    switch (m.type) {
      case 'update':
        this.framebuffer.apply(bytes);
        this.toBrowser(bytes, true);
        if (m.resized) this.recorder.event({ resized: { width: this.screen.width, height: this.screen.height } });
        // Between two messages the framebuffer is exactly what the browser has: a keyframe here
        // is a place a player can start from.
        // The first update is the whole screen (the browser asked for all of it): a keyframe right
        // after it, so a replay opens on the device's picture rather than the black before it.
        if (this.recorder.keyframeDue() || !this.pictureKeyframed) {
          this.pictureKeyframed = true;
          if (!this.recorder.keyframe(this.framebuffer.keyframe())) this.block(this.downBlockers, 'recorder');
        }
        return;
      case 'cutText':
        if (!this.clipboard('from-device', m.text)) return;
        this.toBrowser(bytes, true);
        return;
      case 'colourMap':
        // The session is true colour: a colour map means nothing to the browser (noVNC would fail on it).
        this.note('down', 'colourMap', { ignored: 'SetColourMapEntries', count: m.count });
        return;
      case 'bell':
      case 'endOfContinuousUpdates':
      case 'fence':
        this.toBrowser(bytes, true);
        return;
    }
  }

  private toBrowser(bytes: Buffer, message: boolean): void {
    this.bytesOut += bytes.length;
    if (!this.recorder.output(bytes)) this.block(this.downBlockers, 'recorder');
    if (message) this.onOutput?.(bytes);
    if (!this.browser.write(bytes)) this.block(this.downBlockers, 'browser');
  }

  private toDevice(bytes: Buffer): void {
    if (!this.device.write(bytes)) this.block(this.upBlockers, 'device');
  }

  private block(set: Set<string>, why: string): void {
    set.add(why);
    if (set === this.downBlockers) this.device.pause();
    else this.browser.pause();
  }

  private unblock(set: Set<string>, why: string): void {
    if (!set.delete(why) || set.size > 0 || this.finished) return;
    if (set === this.downBlockers) {
      if (this.phase === 'normal') this.device.resume();
    } else {
      this.browser.resume();
    }
  }

  /** The bytes a fresh noVNC needs to show the screen as the user sees it now (a watcher joining). */
  snapshot(): Buffer {
    return this.framebuffer.toRfb();
  }

  /** Records the notice and hands it to the front door, which shows it outside the RFB stream. */
  notice(text: string): void {
    this.recorder.event({ notice: text });
    this.onNotice?.(text);
  }

  /** The screen size follows SetDesktopSize in the RFB stream, not the SSH-style window change. */
  resize(): void {}

  signal(): void {}

  /** Ends the session from the gateway's side (grant ended, idle, killed). */
  terminate(_exitCode: number): void {
    this.stop();
    this.device.destroy();
    // Let what is queued reach the browser, but not wait on one that stopped reading.
    const timer = setTimeout(() => this.browser.destroy(), 1000);
    timer.unref();
    this.browser.end(() => clearTimeout(timer));
  }

  private stop(): void {
    this.finished = true;
    if (this.handshakeTimer) clearTimeout(this.handshakeTimer);
    this.browserReader.stop();
    this.deviceReader.stop();
  }

  private deviceClosed(): void {
    if (this.finished) return;
    this.stop();
    this.browser.end();
    this.onFinish('device_closed');
  }

  private finish(why: DesktopEnd): void {
    if (this.finished) return;
    this.stop();
    this.device.destroy();
    if (why !== 'client_closed') this.browser.end();
    this.onFinish(why);
  }
}
