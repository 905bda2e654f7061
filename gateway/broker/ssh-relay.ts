import type { ClientChannel, ServerChannel } from 'ssh2';
import type { RecordingWriter } from '../../recordings/recording-writer.js';

export type RelayEnd = 'client_closed' | 'device_closed' | 'recording_failed';

export interface ExitInfo {
  code: number | null;
  signal: string | null;
}

/**
 * Moves the bytes of one SSH session channel between the user and the device, every byte
 * through the recorder first. Both directions respect backpressure: a full client window, a full
 * device window or a recorder that has fallen behind pauses the source; nothing is dropped and
 * nothing grows without bound.
 */
export class SshRelay {
  bytesIn = 0;
  bytesOut = 0;
  lastInputAt = Date.now();
  exit: ExitInfo | null = null;
  private readonly downBlockers = new Set<string>();
  private readonly upBlockers = new Set<string>();
  private finished = false;

  constructor(
    private readonly client: ServerChannel,
    private readonly upstream: ClientChannel,
    private readonly recorder: RecordingWriter,
    private readonly onFinish: (why: RelayEnd) => void,
  ) {}

  start(): void {
    const { client, upstream, recorder } = this;

    client.on('data', (chunk: Buffer) => {
      this.bytesIn += chunk.length;
      this.lastInputAt = Date.now();
      if (!recorder.input(chunk)) this.block(this.upBlockers, 'recorder');
      if (!upstream.write(chunk)) this.block(this.upBlockers, 'device-window');
    });
    client.on('end', () => upstream.end());
    client.on('close', () => this.finish('client_closed'));
    upstream.on('drain', () => this.unblock(this.upBlockers, 'device-window'));

    const down = (chunk: Buffer, sink: NodeJS.WritableStream, label: string): void => {
      this.bytesOut += chunk.length;
      if (!recorder.output(chunk)) this.block(this.downBlockers, 'recorder');
      if (!sink.write(chunk)) {
        this.block(this.downBlockers, label);
        sink.once('drain', () => this.unblock(this.downBlockers, label));
      }
    };
    upstream.on('data', (chunk: Buffer) => down(chunk, client, 'client-window'));
    upstream.stderr.on('data', (chunk: Buffer) => down(chunk, client.stderr, 'client-stderr'));
    upstream.on('exit', (code: number | null, signal?: string) => {
      this.exit = { code: code ?? null, signal: signal ?? null };
    });
    upstream.on('close', () => this.deviceClosed());

    recorder.on('drain', () => {
      this.unblock(this.downBlockers, 'recorder');
      this.unblock(this.upBlockers, 'recorder');
    });
    recorder.on('error', () => this.finish('recording_failed'));

    client.resume();
  }

  private block(set: Set<string>, why: string): void {
    set.add(why);
    if (set === this.downBlockers) {
      this.upstream.pause();
      this.upstream.stderr.pause();
    } else {
      this.client.pause();
    }
  }

  private unblock(set: Set<string>, why: string): void {
    if (!set.delete(why) || set.size > 0 || this.finished) return;
    if (set === this.downBlockers) {
      this.upstream.resume();
      this.upstream.stderr.resume();
    } else {
      this.client.resume();
    }
  }

  /** The device's side is done: pass on its exit status after the last byte, then close. */
  private deviceClosed(): void {
    if (this.finished) return;
    const send = (): void => {
      const exit = this.exit;
      if (exit?.code !== null && exit?.code !== undefined) this.client.exit(exit.code);
      else if (exit?.signal) this.client.exit(exit.signal.replace(/^SIG/, ''), false, '');
      this.client.end();
      this.finish('device_closed');
    };
    if (this.client.writableLength > 0) this.client.once('drain', send);
    else send();
  }

  /** Writes a gateway notice to the user's terminal, and into the recording as what they saw. */
  notice(text: string): void {
    const bytes = Buffer.from(`\r\n[portcullis] ${text}\r\n`, 'utf8');
    this.recorder.output(bytes);
    this.recorder.event({ notice: text });
    if (this.client.writable) this.client.stderr.write(bytes);
  }

  resize(cols: number, rows: number, height: number, width: number): void {
    this.recorder.resize(cols, rows);
    this.upstream.setWindow(rows, cols, height, width);
  }

  signal(name: string): void {
    this.recorder.event({ signal: name });
    this.upstream.signal(name);
  }

  /** Ends the session from the gateway's side (grant ended, idle, killed). */
  terminate(exitCode: number): void {
    if (!this.finished) this.finished = true;
    this.upstream.close();
    if (this.client.writable) {
      this.client.exit(exitCode);
      this.client.end();
    }
  }

  private finish(why: RelayEnd): void {
    if (this.finished) return;
    this.finished = true;
    if (why !== 'device_closed') this.upstream.close();
    this.onFinish(why);
  }
}
