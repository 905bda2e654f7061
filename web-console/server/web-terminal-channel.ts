import { Duplex, Writable } from 'node:stream';
import type { WebSocket } from 'ws';

/**
 * A browser terminal's WebSocket, shaped like the SSH session channel the broker already drives
 * (a duplex with `stderr`, `exit()`, backpressure and 'close'), so the web console is just another
 * front door into the one session broker: same checks, same recording, same enforcement.
 *
 * Binary frames carry terminal bytes both ways; text frames are JSON control messages, handed to
 * `onControl`. The socket is closed by the front door, after it has told the browser how the
 * session ended, not by the broker's end().
 */
export class WebTerminalChannel extends Duplex {
  readonly stderr: Writable;
  exitCode: number | null = null;
  onControl: (message: Record<string, unknown>) => void = () => undefined;
  private socketGone = false;

  constructor(private readonly ws: WebSocket) {
    super({ allowHalfOpen: true, autoDestroy: false, emitClose: false, highWaterMark: 256 * 1024 });
    this.stderr = new Writable({ write: (chunk: Buffer, enc: BufferEncoding, cb) => this._write(chunk, enc, cb) });
    ws.on('message', (data: Buffer | ArrayBuffer | Buffer[], isBinary: boolean) => {
      const buf = Array.isArray(data) ? Buffer.concat(data) : Buffer.isBuffer(data) ? data : Buffer.from(data);
      if (!isBinary) {
        try {
          const msg = JSON.parse(buf.toString('utf8')) as unknown;
          if (msg && typeof msg === 'object' && !Array.isArray(msg)) this.onControl(msg as Record<string, unknown>);
        } catch {
          // not JSON: ignored, as any malformed control message
        }
        return;
      }
      // The reading side is full (the device is slow): stop reading the socket until it drains.
      if (!this.push(buf)) ws.pause();
    });
    ws.on('close', () => this.gone());
    ws.on('error', () => this.gone());
  }

  private gone(): void {
    if (this.socketGone) return;
    this.socketGone = true;
    this.push(null);
    this.emit('close');
  }

  override _read(): void {
    this.ws.resume();
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    if (this.ws.readyState !== this.ws.OPEN) {
      cb();
      return;
    }
    this.ws.send(chunk, { binary: true }, () => cb());
  }

  /** The exit status (an SSH channel sends it; a browser reads it in the end message). */
  exit(code: number | string): void {
    this.exitCode = typeof code === 'number' ? code : null;
  }

  /** The broker asks to close: the front door closes the socket after the end message. */
  close(): void {
    this.end();
  }
}
