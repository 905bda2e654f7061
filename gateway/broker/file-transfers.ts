/**
 * Which SSH requests are file transfers, and where their files go on record (R-6.3e: every
 * transfer audited with name, size and hash). The broker asks `transferOfExec` about an exec
 * request before it reaches the device, and hands the relay the watcher it names; the watcher's
 * events become audit entries (`file.transferred`), recording events and log lines here.
 *
 * What passes:
 * - the `sftp` subsystem (OpenSSH's sftp, and scp since 9.0), and an exec request that is the
 *   sftp server alone (`sftp -s /usr/lib/openssh/sftp-server`): followed by SftpWatch;
 * - an exec request that is the legacy scp server alone (`scp -t …`, `scp -f …`, what `scp -O`
 *   sends): followed by ScpWatch;
 * What is refused, before the device is contacted:
 * - `rsync --server`: its delta protocol sends changed blocks, not files, so no file's content
 *   and hash can be put on record;
 * - a transfer server inside a longer command line (`cd /x && scp -t y`, `exec sftp-server`,
 *   `scp -t x > log`): only a line that is the server alone can be followed file by file;
 * - an scp server line the watcher cannot read (an option it does not know);
 * - a server named by another path than where systems install it (`./scp`, `/tmp/sftp-server`):
 *   it would run a program the vendor may have uploaded, outside the command profile.
 */
import type { AuditLog } from '../audit/audit-log.js';
import type { Logger } from '../log/logger.js';
import type { FileEvent, FileEventSink, TransferDirections, TransferRefusalCode, TransferWatch } from '../transfer/file-events.js';
import { parseScpCommand, ScpWatch } from '../transfer/scp-watch.js';
import { SftpWatch } from '../transfer/sftp-watch.js';
import type { ParsedLine, ShellWord, SimpleCommand } from '../../policy/command-policy.js';

export type TransferKind = { protocol: 'sftp' } | { protocol: 'scp'; argv: string[] };

export type TransferVerdict =
  | { transfer: TransferKind }
  /** Not a transfer server: an ordinary command line, for the profile to decide. */
  | { transfer: null }
  | { refused: string };

const RSYNC_REFUSED = 'rsync cannot be audited file by file (R-6.3e): use sftp or scp';
const NOT_ALONE = 'a file-transfer server runs only alone on its command line, so that each file is audited (R-6.3e)';

const base = (w: ShellWord | undefined): string | null => (w?.literal ? (w.value.split('/').pop() ?? '') : null);

/** The transfer server a command runs, if any: looked for in every literal word, so a wrapper (`exec`, `env`) hides nothing. One pass. */
function serverIn(cmd: SimpleCommand): 'sftp' | 'scp' | 'rsync' | null {
  let scp = false;
  let rsync = false;
  for (const w of cmd.argv) {
    const name = base(w);
    if (name === 'sftp-server') return 'sftp';
    if (scp && w.literal && /^-[^-]*[tf]/.test(w.value)) return 'scp';
    if (rsync && w.literal && w.value === '--server') return 'rsync';
    if (name === 'scp') scp = true;
    if (name === 'rsync') rsync = true;
  }
  return null;
}

/**
 * Where a transfer server may be named from: its bare name (the device's PATH finds it: what
 * `scp -O` sends) or where the usual systems install it (what `sftp -s` is given). `./scp` or
 * `/tmp/sftp-server` would run a program the vendor may have just uploaded, outside the profile.
 */
const SERVER_PROGRAMS: Readonly<Record<'sftp' | 'scp', readonly string[]>> = {
  sftp: ['sftp-server', '/usr/lib/openssh/sftp-server', '/usr/libexec/openssh/sftp-server', '/usr/libexec/sftp-server', '/usr/lib/ssh/sftp-server', '/usr/lib/sftp-server'],
  scp: ['scp', '/usr/bin/scp', '/bin/scp'],
};

/**
 * Whether the grant allows the direction a transfer runs in, decided before the device is
 * contacted: an scp server runs one way (`-t` receives: upload; `-f` sends: download). SFTP
 * carries both, so its watcher decides request by request (sftp-watch.ts). Null: allowed. (A
 * grant with neither direction is refused before this, as FILE_TRANSFER_NOT_GRANTED.)
 */
export function refusedDirection(kind: TransferKind, allowed: TransferDirections): { code: TransferRefusalCode; detail: string } | null {
  if (kind.protocol === 'sftp') return null;
  const { op } = parseScpCommand(kind.argv);
  if (op === 'upload' && !allowed.upload) return { code: 'FILE_UPLOAD_NOT_GRANTED', detail: 'scp -t (upload to the device) on a grant that allows download only (R-6.3e)' };
  if (op === 'download' && !allowed.download) return { code: 'FILE_DOWNLOAD_NOT_GRANTED', detail: 'scp -f (download from the device) on a grant that allows upload only (R-6.3e)' };
  return null;
}

/** Decides what an exec request's command line is, as a transfer. */
export function transferOfExec(parsed: ParsedLine): TransferVerdict {
  const servers = parsed.commands.map(serverIn);
  const found = servers.find((s) => s !== null) ?? null;
  if (found === null) return { transfer: null };
  if (found === 'rsync' || servers.includes('rsync')) return { refused: RSYNC_REFUSED };
  const only = parsed.commands.length === 1 && parsed.constructs.length === 0 ? parsed.commands[0] : undefined;
  const alone = only !== undefined && only.assignments.length === 0 && only.redirections.length === 0 && only.argv.every((w) => w.literal)
    && base(only.argv[0]) === (found === 'sftp' ? 'sftp-server' : 'scp');
  if (!alone) return { refused: NOT_ALONE };
  const argv = only.argv.map((w) => (w.literal ? w.value : ''));
  const program = argv[0] ?? '';
  if (!SERVER_PROGRAMS[found].includes(program)) {
    return { refused: `a file-transfer server runs only from where the system installs it (${SERVER_PROGRAMS[found].join(', ')}), not ${JSON.stringify(program.slice(0, 200))} (R-6.3e)` };
  }
  if (found === 'sftp') return { transfer: { protocol: 'sftp' } };
  try {
    parseScpCommand(argv);
  } catch (err) {
    return { refused: `this scp command line cannot be followed file by file (${(err as Error).message}; R-6.3e)` };
  }
  return { transfer: { protocol: 'scp', argv } };
}

export interface TransferContext {
  session: string;
  user: string;
  device: string;
  grant: string;
  /** What the grant allows; SFTP on a grant with one direction refuses the other request by request. */
  allowed: TransferDirections;
  audit: AuditLog;
  log: Logger;
  /** Puts the event into the session's recording. */
  record(event: Record<string, unknown>): void;
  /** The stream could not be followed: end the session (fail closed). */
  unreadable(notice: string): void;
  background(work: Promise<unknown>): void;
}

/** The watcher for a transfer, wired to the audit chain, the recording and the log. */
export function watchTransfer(kind: TransferKind, ctx: TransferContext): TransferWatch {
  const sink: FileEventSink = {
    onFile(e: FileEvent) {
      ctx.record({ file: e });
      ctx.log.info('file transfer', { session: ctx.session, user: ctx.user, device: ctx.device, ...e });
      // What happened on the device has happened: the entry waits in the spool if the store is down.
      const entry = ctx.audit.recordEventually('file.transferred', {
        actor: ctx.user,
        outcome: e.outcome === 'ok' ? 'ok' : e.outcome === 'denied' ? 'denied' : 'info',
        ...(e.code ? { code: e.code } : {}),
        data: { session: ctx.session, device: ctx.device, grant: ctx.grant, ...e },
      });
      // Not even the spool took it (a full disk): a transfer off the record must not go on.
      ctx.background(entry.catch((err: unknown) => {
        ctx.unreadable(`A file's audit entry could not be written (${err instanceof Error ? err.message : String(err)}), so the session was ended (R-6.3e).`);
        throw err;
      }));
    },
    onUnreadable(reason: string) {
      ctx.log.warn('file transfer not followed', { session: ctx.session, reason });
      ctx.unreadable(`${reason}. A transfer the gateway cannot audit must not go on, so the session was ended (R-6.3e).`);
    },
  };
  return kind.protocol === 'sftp' ? new SftpWatch(sink, ctx.allowed) : new ScpWatch(kind.argv, sink);
}
