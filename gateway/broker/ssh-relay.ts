import type { ClientChannel, ServerChannel } from 'ssh2';
import type { RecordingWriter } from '../../recordings/recording-writer.js';
import type { TransferWatch } from '../transfer/file-events.js';
import { exitAtClose, type ExitInfo, type RelayEnd, type SessionIo } from './session-io.js';

export type { ExitInfo, RelayEnd } from './session-io.js';

/**
 * What sits between the user's keystrokes and the device in inspected mode (and, only watching,
 * in full mode): it sees the device's output and the user's input and, when it gates, decides
 * what reaches the device (mediation/inspected-shell.ts).
 */
export interface InputGate {
  /** true: input reaches the device only through the gate; false: the gate only watches. */
  gates: boolean;
  fromUser(chunk: Buffer): Promise<void>;
  fromDevice(chunk: Buffer): void;
  resize(cols: number, rows: number): void;
  dispose(): void;
}

type ClientStream = 'stdout' | 'stderr';
const other = (s: ClientStream): ClientStream => (s === 'stdout' ? 'stderr' : 'stdout');

export interface RelayOptions {
  /** Inspected and full-mode shells: the gate that sees (and in inspected mode decides) each line. */
  gate?: InputGate | null;
  /** With a PTY the gate's notices go where the shell's own messages go: the terminal's one stream. */
  pty?: boolean;
  /**
   * SFTP and SCP: reads copies of both directions and reports each file (R-6.3e). One that
   * gates (a grant with one direction) carries every byte instead, and passes what may go.
   */
  transfers?: TransferWatch | null;
}

/**
 * Moves the bytes of one SSH session channel between the user and the device, every byte
 * through the recorder first. Both directions respect backpressure: a full client window, a full
 * device window or a recorder that has fallen behind pauses the source; nothing is dropped and
 * nothing grows without bound.
 */
export class SshRelay implements SessionIo {
  onOutput?: (chunk: Buffer) => void;
  bytesIn = 0;
  bytesOut = 0;
  lastInputAt = Date.now();
  exit: ExitInfo | null = null;
  private readonly downBlockers = new Set<string>();
  private readonly upBlockers = new Set<string>();
  private finished = false;
  /** Writes to the client whose callback has not run yet, per stream; the exit status waits for them. */
  private readonly inFlight = { stdout: 0, stderr: 0 };
  /** Output held back so that stdout and stderr never wait for the client's window at once. */
  private readonly held: Array<{ stream: ClientStream; chunk: Buffer }> = [];
  private onClientWritesDone: (() => void) | null = null;

  /** Input goes through the gate one chunk after the other, in order. */
  private gateQueue: Promise<void> = Promise.resolve();

  constructor(
    private readonly client: ServerChannel,
    private readonly upstream: ClientChannel,
    private readonly recorder: RecordingWriter,
    private readonly onFinish: (why: RelayEnd) => void,
    options: RelayOptions = {},
  ) {
    this.gate = options.gate ?? null;
    this.pty = options.pty ?? false;
    this.transfers = options.transfers ?? null;
  }

  private readonly gate: InputGate | null;
  private readonly pty: boolean;
  private readonly transfers: TransferWatch | null;

  /** For the gate: bytes it lets through to the device. */
  toDevice(data: Buffer): void {
    if (!this.finished && !this.upstream.write(data)) this.block(this.upBlockers, 'device-window');
  }

  /** For the gate: a notice on the user's terminal only (recorded as what they saw). */
  toUser(text: string): void {
    const bytes = Buffer.from(text, 'utf8');
    this.recorder.output(bytes);
    this.onOutput?.(bytes);
    if (this.client.writable) this.toClient(this.pty ? 'stdout' : 'stderr', bytes);
  }

  start(): void {
    const { client, upstream, recorder } = this;

    const { gate, transfers } = this;
    const gating = transfers?.gates === true;
    client.on('data', (chunk: Buffer) => {
      this.bytesIn += chunk.length;
      this.lastInputAt = Date.now();
      if (!recorder.input(chunk)) this.block(this.upBlockers, 'recorder');
      transfers?.fromClient(chunk);
      // A gating watcher has passed on what may reach the device (toDevice below).
      if (gating) return;
      if (gate) {
        const step = this.gateQueue.then(() => gate.fromUser(chunk));
        this.gateQueue = step.catch(() => undefined);
        if (gate.gates) return;
      }
      if (!upstream.write(chunk)) this.block(this.upBlockers, 'device-window');
    });
    client.on('end', () => upstream.end());
    client.on('close', () => this.finish('client_closed'));
    upstream.on('drain', () => this.unblock(this.upBlockers, 'device-window'));

    const down = (chunk: Buffer, stream: ClientStream): void => {
      this.bytesOut += chunk.length;
      this.onOutput?.(chunk);
      gate?.fromDevice(chunk);
      if (!recorder.output(chunk)) this.block(this.downBlockers, 'recorder');
      this.toClient(stream, chunk);
    };
    if (transfers && gating) {
      // The device's packets reach the client whole, through the watcher, with the gateway's own answers between them.
      transfers.attach({ toDevice: (bytes) => this.toDevice(bytes), toClient: (bytes) => down(bytes, 'stdout'), notice: (text) => this.notice(text) });
    }
    upstream.on('data', (chunk: Buffer) => {
      // stderr is the transfer server's own log, not protocol.
      transfers?.fromDevice(chunk);
      if (!gating) down(chunk, 'stdout');
    });
    upstream.stderr.on('data', (chunk: Buffer) => down(chunk, 'stderr'));
    upstream.on('exit', (code: number | null, signal?: string) => {
      this.exit = { code: code ?? null, signal: signal ?? null };
    });
    upstream.on('close', (code?: number | null, signal?: string) => {
      this.exit = exitAtClose(this.exit, code, signal);
      this.deviceClosed();
    });

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

  /**
   * ssh2 keeps one "waiting for window" flag per channel: if stdout and stderr both wait for the
   * client's window, the window adjustment resumes only stdout and stderr hangs for good (and
   * the exit status with it). So a chunk for one stream waits while the other has writes in
   * flight; order between the two is kept, and the device is paused meanwhile.
   */
  private toClient(stream: ClientStream, chunk: Buffer): void {
    if (this.held.length > 0 || this.inFlight[other(stream)] > 0) {
      this.held.push({ stream, chunk });
      this.block(this.downBlockers, 'interleave');
      return;
    }
    this.writeNow(stream, chunk);
  }

  /** Output to the client not yet handed to ssh2's transport (written or held back). */
  private get clientOutputPending(): boolean {
    return this.inFlight.stdout + this.inFlight.stderr + this.held.length > 0;
  }

  private writeNow(stream: ClientStream, chunk: Buffer): void {
    const sink = stream === 'stdout' ? this.client : this.client.stderr;
    this.inFlight[stream] += 1;
    if (!sink.write(chunk, () => this.written(stream))) {
      const label = `client-${stream}`;
      this.block(this.downBlockers, label);
      sink.once('drain', () => this.unblock(this.downBlockers, label));
    }
  }

  private written(stream: ClientStream): void {
    this.inFlight[stream] -= 1;
    while (this.held.length > 0) {
      const next = this.held[0] as { stream: ClientStream; chunk: Buffer };
      if (this.inFlight[other(next.stream)] > 0) break;
      this.held.shift();
      this.writeNow(next.stream, next.chunk);
    }
    if (this.held.length === 0) this.unblock(this.downBlockers, 'interleave');
    if (!this.clientOutputPending && this.onClientWritesDone) {
      const done = this.onClientWritesDone;
      this.onClientWritesDone = null;
      done();
    }
  }

  /**
   * The device's side is done: pass on its exit status after the last byte, then close. "After"
   * means every write's callback has run (stdout and stderr alike); 'drain' would not do, as it
   * fires only after a write() that returned false.
   */
  private deviceClosed(): void {
    if (this.finished) return;
    const send = (): void => {
      if (this.finished) return;
      const exit = this.exit;
      if (exit?.code !== null && exit?.code !== undefined) this.client.exit(exit.code);
      else if (exit?.signal) this.client.exit(exit.signal.replace(/^SIG/, ''), false, '');
      this.client.end();
      this.finish('device_closed');
    };
    if (this.clientOutputPending) this.onClientWritesDone = send;
    else send();
  }

  /** Writes a gateway notice to the user's terminal, and into the recording as what they saw. */
  notice(text: string): void {
    const bytes = Buffer.from(`\r\n[portcullis] ${text}\r\n`, 'utf8');
    this.recorder.output(bytes);
    this.onOutput?.(bytes);
    this.recorder.event({ notice: text });
    if (this.client.writable) this.toClient('stderr', bytes);
  }

  resize(cols: number, rows: number, height: number, width: number): void {
    this.recorder.resize(cols, rows);
    this.gate?.resize(cols, rows);
    this.upstream.setWindow(rows, cols, height, width);
  }

  signal(name: string): void {
    this.recorder.event({ signal: name });
    this.upstream.signal(name);
  }

  /** Ends the session from the gateway's side (grant ended, idle, killed). */
  terminate(exitCode: number): void {
    this.finished = true;
    this.transfers?.end();
    this.upstream.close();
    const close = (): void => {
      clearTimeout(timer);
      if (!this.client.writable) return;
      this.client.exit(exitCode);
      this.client.end();
    };
    // Let the last output and the closing notice reach the user, but not wait on a client that
    // stopped reading: a second at most.
    const timer = setTimeout(close, 1000);
    if (this.clientOutputPending) this.onClientWritesDone = close;
    else close();
  }

  private finish(why: RelayEnd): void {
    if (this.finished) return;
    this.finished = true;
    this.gate?.dispose();
    // Files still open are reported as incomplete (once, whichever end comes first).
    this.transfers?.end();
    if (why !== 'device_closed') this.upstream.close();
    this.onFinish(why);
  }
}
