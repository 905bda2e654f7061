import type { ServerChannel } from 'ssh2';
import type { RecordingWriter } from '../../recordings/recording-writer.js';
import type { ExitInfo, SessionIo } from './session-io.js';

/**
 * An exec request whose command the profile refused: the vendor reads why on stderr (recorded as
 * what they saw), the exit status is 1, and the device is never asked to run anything.
 */
export class RefusedExec implements SessionIo {
  onOutput?: (chunk: Buffer) => void;
  bytesIn = 0;
  bytesOut = 0;
  lastInputAt = Date.now();
  exit: ExitInfo = { code: 1, signal: null };

  constructor(private readonly client: ServerChannel, private readonly recorder: RecordingWriter, private readonly message: string) {}

  start(): void {
    const b = Buffer.from(this.message, 'utf8');
    this.bytesOut = b.length;
    this.recorder.output(b);
    this.onOutput?.(b);
    this.client.stderr.write(b);
    this.client.exit(1);
    this.client.end();
  }

  notice(): void {}
  resize(): void {}
  signal(): void {}
  terminate(): void {}
}
