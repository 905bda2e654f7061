/**
 * What the broker needs of a live session's byte mover, whichever it is: the plain relay (full
 * and inspected modes, exec requests) or the gateway-owned prompt of restricted mode.
 */
export type RelayEnd = 'client_closed' | 'device_closed' | 'recording_failed' | 'protocol_error';

export interface ExitInfo {
  code: number | null;
  signal: string | null;
}

/**
 * How a device channel ended: what its 'exit' event said, or else the arguments ssh2 gives its
 * 'close' (filled from the same record). 'exit' is emitted once, while ssh2 parses, so it is
 * missed when the whole answer came in the packet that opened the channel, before a listener
 * attached after a promise could exist.
 */
export function exitAtClose(exit: ExitInfo | null, code?: number | null, signal?: string): ExitInfo | null {
  if (exit !== null || (typeof code !== 'number' && !signal)) return exit;
  return { code: typeof code === 'number' ? code : null, signal: signal ?? null };
}

export interface SessionIo {
  bytesIn: number;
  bytesOut: number;
  /** When the user last typed (the idle limit counts from here). */
  lastInputAt: number;
  exit: ExitInfo | null;
  start(): void;
  /** A gateway notice on the user's terminal, recorded as what they saw. */
  notice(text: string): void;
  resize(cols: number, rows: number, height: number, width: number): void;
  signal(name: string): void;
  /** Ends the session from the gateway's side (grant ended, idle, killed). */
  terminate(exitCode: number): void;
  /** Set by the broker: told of every byte the user is shown (for live watching). */
  onOutput?: (chunk: Buffer) => void;
  /** Desktops: the screen as it is now, as a stream a fresh viewer can start from (a watcher joining late). */
  snapshot?(): Buffer;
  /** Desktops: where the front door shows gateway notices (beside the screen, not in the RFB stream). */
  onNotice?: (text: string) => void;
}
