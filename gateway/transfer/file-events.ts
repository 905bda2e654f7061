/**
 * File transfers seen in an SSH session's byte stream (R-6.3e: every transfer audited with name,
 * size and hash). A watcher sits beside the relay: it reads copies of the bytes going each way,
 * never changes or holds them, and reports each file operation once it is settled. A stream it
 * cannot follow is reported as unreadable, and the session is ended (fail closed): a transfer
 * the gateway cannot account for must not go on.
 *
 * On a grant that allows only one direction (upload or download), an SFTP watcher gates instead
 * (`gates`): every byte goes through it, whole packets only, and a request for the other
 * direction never reaches the device; the gateway answers it itself.
 */

/** What a grant allows of file transfer, each direction on its own (R-6.3e). */
export interface TransferDirections {
  /** Files to the device, and every change to its files. */
  upload: boolean;
  /** Files from the device: data export. */
  download: boolean;
}

export type TransferRefusalCode = 'FILE_UPLOAD_NOT_GRANTED' | 'FILE_DOWNLOAD_NOT_GRANTED';

export type FileOp = 'upload' | 'download' | 'remove' | 'rename' | 'mkdir' | 'rmdir' | 'symlink' | 'hardlink' | 'copy' | 'setstat';

/** What a setstat asked to change (SFTP's chmod, chown, touch, truncate); only what it set. */
export interface FileAttributes {
  size?: number;
  /** Permission bits, octal (`0755`). */
  mode?: string;
  uid?: number;
  gid?: number;
  /** Seconds since 1970. */
  atime?: number;
  mtime?: number;
}

export interface FileEvent {
  protocol: 'sftp' | 'scp';
  op: FileOp;
  /** The path as the client named it to the device (absolute or relative to the login directory). */
  path: string;
  /** rename, hardlink, copy: the new path (path is the existing one); symlink: what the link points at (path is the link). */
  to?: string;
  /** upload, download: bytes that went through (each way on its own for a file opened both ways); copy: the length asked for, absent for "to the end". */
  bytes?: number;
  /**
   * upload, download: SHA-256 (hex) of those bytes in file order, starting at `offset`. null when
   * they were not one gapless run (random-access writes, data written twice over, or more
   * reordering than the watcher keeps in memory): `bytes` is still exact.
   */
  sha256?: string | null;
  /** upload, download: the first byte's offset in the file, when not 0 (a resumed transfer). */
  offset?: number;
  /** upload, mkdir: the permissions the client asked for at creation (octal), when it asked. */
  mode?: string;
  /** setstat: what it changes. */
  attributes?: FileAttributes;
  /**
   * ok: done and confirmed by the device; failed: the device refused it; incomplete: the session
   * ended first; denied: the grant does not allow its direction, so the gateway refused it and
   * the device never saw it.
   */
  outcome: 'ok' | 'failed' | 'incomplete' | 'denied';
  /** failed: the device's own message; denied: the gateway's. */
  detail?: string;
  /** denied: which direction the grant lacks. */
  code?: TransferRefusalCode;
}

export interface FileEventSink {
  onFile(event: FileEvent): void;
  /** The stream stopped making sense (malformed, or a message larger than any real client sends). */
  onUnreadable(reason: string): void;
}

/** Where a gating watcher sends what it lets through, and its own answers. */
export interface TransferOutlet {
  /** Whole packets from the client that may reach the device. */
  toDevice(bytes: Buffer): void;
  /** Whole packets for the client: the device's, and the gateway's own answers between them. */
  toClient(bytes: Buffer): void;
  /** A line on the client's stderr (OpenSSH's sftp shows its own words for a status, not the server's). */
  notice(text: string): void;
}

export interface TransferWatch {
  /**
   * true: the watcher decides what passes (a grant with one direction). The relay then hands it
   * every byte and sends only what it passes to the outlet given with `attach`.
   */
  readonly gates: boolean;
  attach(outlet: TransferOutlet): void;
  /** Bytes from the vendor's client towards the device. */
  fromClient(chunk: Buffer): void;
  /** Bytes from the device towards the vendor (stdout only; stderr is the server's log). */
  fromDevice(chunk: Buffer): void;
  /** The session is over: whatever is still open is reported as incomplete. Once; later calls do nothing. */
  end(): void;
}

/** A peer's message as it goes into the audit (`detail`): no control characters, at most 200 characters. */
export function peerText(message: Buffer): string {
  const printable = Array.from(message.toString('utf8')).filter((c) => {
    const code = c.codePointAt(0) ?? 0;
    return code >= 0x20 && (code < 0x7f || code > 0x9f);
  });
  return Array.from(printable.join('').trim()).slice(0, 200).join('');
}
