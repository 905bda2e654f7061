import type { Client, ClientChannel, PseudoTtyOptions, ServerChannel } from 'ssh2';
import type { RecordingWriter } from '../../recordings/recording-writer.js';
import type { CommandMediator } from '../mediation/command-mediator.js';
import { deviceCommandLine, RestrictedShell, type RunResult } from '../mediation/restricted-shell.js';
import { exitAtClose, type ExitInfo, type RelayEnd, type SessionIo } from './session-io.js';

export interface RestrictedSessionOptions {
  pty: (PseudoTtyOptions & { term?: string }) | null;
  env: Record<string, string>;
  /** "alice@ct-01" */
  promptLabel: string;
  banner: string;
}

/**
 * Restricted mode (R-6.3c): the gateway, not the device, owns the prompt. The vendor talks to a
 * RestrictedShell; each allowed command runs on the device as its own exec request with a PTY
 * over the session's one SSH connection, its output relayed (and recorded) until it exits. The
 * device never sees a line the profile did not allow: there is no shell on it to type into.
 */
export class RestrictedSession implements SessionIo {
  onOutput?: (chunk: Buffer) => void;
  bytesIn = 0;
  bytesOut = 0;
  lastInputAt = Date.now();
  exit: ExitInfo | null = null;
  private shell: RestrictedShell | null = null;
  private current: ClientChannel | null = null;
  private finished = false;
  private inputListener: ((d: Buffer) => void) | null = null;
  /** The command log id of the line being decided, reviewed and run. */
  private lineId: string | null = null;
  private cols: number;
  private rows: number;

  constructor(
    private readonly client: ServerChannel,
    private readonly device: Client,
    private readonly recorder: RecordingWriter,
    private readonly mediator: CommandMediator,
    private readonly opts: RestrictedSessionOptions,
    private readonly onFinish: (why: RelayEnd) => void,
  ) {
    // 0×0 (ssh -tt without a terminal) is no size: take the usual one.
    this.cols = opts.pty?.cols || 80;
    this.rows = opts.pty?.rows || 24;
  }

  start(): void {
    const { client, recorder, mediator } = this;
    client.on('data', (d: Buffer) => {
      this.bytesIn += d.length;
      this.lastInputAt = Date.now();
      recorder.input(d);
      this.inputListener?.(d);
    });
    client.on('close', () => this.finish('client_closed'));
    recorder.on('error', () => this.finish('recording_failed'));
    this.shell = new RestrictedShell(
      { write: (d) => this.toClient(d), on: (_event, listener) => { this.inputListener = listener as (d: Buffer) => void; } },
      {
        profile: mediator.profile,
        decide: async (line, parsed) => {
          const r = await mediator.decide(line, parsed);
          this.lineId = r.commandId;
          return r.decision;
        },
        review: async (line, _parsed, decision) => mediator.review(this.lineId as string, line, decision),
        run: (argv, cwd) => this.runOnDevice([argv], cwd),
        runPipeline: (stages, cwd) => this.runOnDevice(stages, cwd),
        forward: (data) => { this.current?.write(data); },
        onBuiltin: (line) => { void mediator.record(line).catch(() => undefined); },
      },
      { promptLabel: this.opts.promptLabel, columns: this.cols, banner: this.opts.banner },
    );
    client.resume();
    void this.shell.start().then(() => {
      if (this.finished) return;
      this.exit = { code: 0, signal: null };
      client.exit(0);
      client.end();
      this.finish('client_closed');
    });
  }

  private toClient(data: string | Buffer): void {
    const b = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    this.bytesOut += b.length;
    this.onOutput?.(b);
    if (!this.recorder.output(b)) this.current?.pause();
    if (this.client.writable && !this.client.write(b)) {
      this.current?.pause();
      this.client.once('drain', () => this.current?.resume());
    }
  }

  /** One allowed command (or pipeline) on the device, as its own exec request with a PTY. */
  private runOnDevice(stages: readonly (readonly string[])[], cwd: string): Promise<RunResult> {
    const command = deviceCommandLine(stages, cwd);
    const id = this.lineId;
    return new Promise<RunResult>((resolve, reject) => {
      this.device.exec(command, { pty: { term: this.opts.pty?.term ?? 'xterm', cols: this.cols, rows: this.rows, width: 0, height: 0, modes: {} }, env: this.opts.env }, (err, ch) => {
        if (err) {
          reject(new Error(`the device refused to run it (${err.message})`));
          return;
        }
        this.current = ch;
        let exit: ExitInfo | null = null;
        const out = (d: Buffer): void => this.toClient(d);
        ch.on('data', out);
        ch.stderr.on('data', out);
        ch.on('exit', (c: number | null, signal?: string) => { exit = { code: c ?? null, signal: signal ?? null }; });
        const drained = (): void => { ch.resume(); };
        this.recorder.on('drain', drained);
        ch.on('close', (code?: number | null, signal?: string) => {
          exit = exitAtClose(exit, code, signal);
          this.recorder.off('drain', drained);
          if (this.current === ch) this.current = null;
          if (id) void this.mediator.finished(id, exit);
          resolve({ exitStatus: exit?.code ?? null });
        });
      });
    });
  }

  notice(text: string): void {
    this.toClient(Buffer.from(`\r\n[portcullis] ${text}\r\n`, 'utf8'));
    this.recorder.event({ notice: text });
  }

  resize(cols: number, rows: number, height: number, width: number): void {
    this.cols = cols;
    this.rows = rows;
    this.recorder.resize(cols, rows);
    this.shell?.resize(cols);
    this.current?.setWindow(rows, cols, height, width);
  }

  signal(name: string): void {
    this.recorder.event({ signal: name });
    this.current?.signal(name);
  }

  terminate(exitCode: number): void {
    this.finished = true;
    this.current?.close();
    this.shell?.close();
    const close = (): void => {
      if (!this.client.writable) return;
      this.client.exit(exitCode);
      this.client.end();
    };
    // Let the closing notice reach the user first.
    setTimeout(close, 100);
  }

  private finish(why: RelayEnd): void {
    if (this.finished) return;
    this.finished = true;
    this.current?.close();
    this.shell?.close();
    this.onFinish(why);
  }
}
