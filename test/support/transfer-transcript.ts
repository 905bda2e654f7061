import { createHash } from 'node:crypto';
import type { FileEvent, FileEventSink, TransferWatch } from '../../gateway/transfer/file-events.js';

/** The file-transfer watchers' tests: a session's bytes as they went, and what a watcher made of them. */

export const sha256 = (data: Buffer | string): string => createHash('sha256').update(data).digest('hex');
export const EMPTY_SHA256 = sha256('');

/** One chunk of a session as it passed, with the side that sent it. */
export interface Chunk {
  from: 'client' | 'device';
  bytes: Buffer;
}

/** A sink that keeps what it was told. */
export class Recorder implements FileEventSink {
  readonly events: FileEvent[] = [];
  readonly unreadable: string[] = [];
  /** What came, in order: an event or an unreadable report. */
  readonly calls: string[] = [];
  onFile(event: FileEvent): void {
    this.events.push(event);
    this.calls.push(`file ${event.op} ${event.outcome}`);
  }
  onUnreadable(reason: string): void {
    this.unreadable.push(reason);
    this.calls.push('unreadable');
  }
}

/** A sink whose every call fails (an audit store gone): a watcher must still never throw into the relay. */
export const THROWING_SINK: FileEventSink = {
  onFile: () => {
    throw new Error('audit store down');
  },
  onUnreadable: () => {
    throw new Error('still down');
  },
};

/** Feeds `transcript` to a new watcher in pieces of at most `pieceSize` bytes, then ends it. */
export function feedTranscript(make: (sink: FileEventSink) => TransferWatch, transcript: Chunk[], pieceSize = Number.POSITIVE_INFINITY): Recorder {
  const recorder = new Recorder();
  const watcher = make(recorder);
  for (const { from, bytes } of transcript) {
    for (let i = 0; i < bytes.length; i += pieceSize) {
      const piece = bytes.subarray(i, i + pieceSize);
      if (from === 'client') watcher.fromClient(piece);
      else watcher.fromDevice(piece);
    }
  }
  watcher.end();
  return recorder;
}
