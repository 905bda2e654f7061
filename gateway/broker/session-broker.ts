import { randomUUID } from 'node:crypto';
import type { Duplex } from 'node:stream';
import path from 'node:path';
import type { Client, ClientChannel, ServerChannel } from 'ssh2';
import { describeCode, ERROR_CATALOGUE, type ErrorCode } from '../../policy/error-codes.js';
import { authorizeSession, grantedNow, warningsDue } from '../../policy/grant-check.js';
import type { DeviceFacts, GrantFacts, Protocol } from '../../policy/types.js';
import type { DeviceLevel } from '../../policy/device-classification.js';
import { RecordingWriter, type SealedRecording } from '../../recordings/recording-writer.js';
import { RGBX32 } from '../../recordings/rfb-keyframe.js';
import { RfbRecordingWriter } from '../../recordings/rfb-writer.js';
import { connectRfb, type RfbConnection } from '../desktop/rfb-client.js';
import { RfbProxy } from '../desktop/rfb-proxy.js';
import { ResizeFollower } from '../desktop/resize-follower.js';
import { startRdpDisplay, type RdpDisplay } from '../desktop/rdp-display.js';
import type { AuditLog } from '../audit/audit-log.js';
import type { GatewayConfig } from '../config/load.js';
import { formatDuration } from '../config/duration.js';
import { connectSsh, ConnectorError, openUpstreamChannel, type UpstreamRequest } from '../connectors/ssh-connector.js';
import { principalFacts } from '../identity/authenticator.js';
import { portOf } from '../inventory/device-ports.js';
import { deviceLevel } from '../inventory/devices.js';
import type { Notifier } from '../notify/notifier.js';
import { inBackground } from '../log/background.js';
import type { Logger } from '../log/logger.js';
import { StoreUnavailableError, type DeviceRecord, type GrantRecord, type KillRequest, type SessionEndReason, type SessionRecord, type Store, type UserRecord } from '../store/store.js';
import type { Vault } from '../vault/vault.js';
import type { WriteSpool } from '../store/write-spool.js';
import type { GatewayMetrics, LiveSessionFigures } from '../metrics/gateway-metrics.js';
import type { BusMessage, ClusterBus } from '../cluster/bus.js';
import { RefusedExec } from './refused-exec.js';
import { RestrictedSession } from './restricted-session.js';
import type { ExitInfo, RelayEnd, SessionIo } from './session-io.js';
import { SshRelay, type InputGate } from './ssh-relay.js';
import { refusedDirection, transferOfExec, watchTransfer, type TransferKind, type TransferVerdict } from './file-transfers.js';
import { commandLogGate, inspectedGate } from '../mediation/inspected-gate.js';
import { CommandMediator, type MediatorDeps } from '../mediation/command-mediator.js';
import { execLineFor } from '../mediation/exec-line.js';
import { parseCommandLine } from '../mediation/shell-parse.js';
import type { ParsedLine } from '../../policy/command-policy.js';

export interface BrokerDeps {
  config: GatewayConfig;
  store: Store;
  audit: AuditLog;
  vault: Vault;
  log: Logger;
  node: string;
  spool: WriteSpool;
  bus: ClusterBus;
  notifier: Notifier;
  /** Live sessions, relayed bytes and recording writes for /metrics (none in tests that build a broker alone). */
  metrics?: GatewayMetrics;
  clock?: () => number;
}

export interface DesktopOpenRequest {
  user: UserRecord;
  deviceName: string;
  protocol: 'vnc' | 'rdp';
  via: string;
  clientAddress: string;
  /** The browser's screen size (the RDP path's display follows it). */
  width: number;
  height: number;
}

export interface SshOpenRequest extends UpstreamRequest {
  user: UserRecord;
  deviceName: string;
  /** `ssh` (user#device or the picker) or `proxyjump`. */
  via: string;
  clientAddress: string;
  /** The client asked for SFTP or SCP. */
  fileTransfer: boolean;
}

export type OpenResult =
  | { ok: true; session: LiveSession }
  | { ok: false; code: ErrorCode; message: string };

const deviceFacts = (d: DeviceRecord): DeviceFacts => ({ name: d.name, state: d.state, protocols: d.protocols });
const grantFacts = (g: GrantRecord): GrantFacts => ({
  id: g.id, user: g.user, device: g.device, protocol: g.protocol, notBefore: g.notBefore, notAfter: g.notAfter, revokedAt: g.revokedAt,
});

/** Codes whose detail (times, grant ids) helps the user and reveals nothing of the device. */
const DETAIL_SHOWN: ReadonlySet<ErrorCode> = new Set(['RDP_CERT_MISMATCH', 'STORE_UNAVAILABLE', 'GRANT_NOT_STARTED', 'GRANT_EXPIRED', 'GRANT_REVOKED', 'ACCOUNT_LOCKED', 'ACCOUNT_EXPIRED', 'DEVICE_QUARANTINED', 'DEVICE_DECOMMISSIONED', 'NO_GRANT', 'DEVICE_UNKNOWN', 'NDA_MISSING', 'NDA_EXPIRED']);

/** What the broker needs of a recording, whichever format (.pcrec terminal, .pcrfb desktop). */
/** The recording could not be opened: the session is refused (fail closed). */
class RecordingOpenError extends Error {}

export interface SessionRecorder {
  event(data: Record<string, unknown>): boolean;
  close(): Promise<SealedRecording>;
  /** Bytes accepted but not yet on disk. */
  readonly backlogBytes?: number;
}

/** What a kill did besides ending the session, as the vendor is told it. */
export type KillParts = Pick<KillRequest, 'by' | 'reason' | 'grantRevoked' | 'lockedUntil'>;

/**
 * The vendor's last line from a kill: who ended it is not named, why is, and what else happened,
 * so they know whether connecting again can work. It ends with the code, as every closing notice.
 */
export function killNotice(k: KillParts): string {
  const also = [
    ...(k.grantRevoked ? [`${describeCode('GRANT_REVOKED')}`] : []),
    ...(k.lockedUntil ? [`Your account is locked until ${new Date(k.lockedUntil).toISOString()}.`] : []),
  ];
  return `Session closed: ${describeCode('SESSION_KILLED')} (${k.reason || 'no reason given'})${also.length ? ` ${also.join(' ')}` : ''} [SESSION_KILLED]`;
}

/** How much of a session's recent output a new watcher is shown first (enough to paint a screen). */
const WATCH_BACKLOG_BYTES = 64 * 1024;
/** A remote watcher that stopped renewing its interest is dropped after this long. */
const WATCHER_TTL_MS = 30_000;

export interface SessionEnding {
  reason: SessionEndReason;
  /** The notice the user was shown, e.g. "Session closed: … [SESSION_KILLED]". */
  notice: string | null;
  /** A kill's reason and what it did besides (revoked the grant, locked the account). */
  kill?: { reason: string; grantRevoked: boolean; lockedUntil: number | null };
}

export class LiveSession {
  readonly warned = new Set<number>();
  killedBy: string | null = null;
  /** Set when the session is being killed: the parts the browser is told at the end. */
  kill: KillParts | null = null;
  bytesStoredAt = 0;
  /** An exec request's command line: told how the device's side ended, when the session is sealed. */
  commandFinished: ((exit: ExitInfo | null) => Promise<void>) | null = null;
  private closing: Promise<void> | null = null;
  /** Resolves when the session has ended (for front doors that tell their client why). */
  readonly ended: Promise<SessionEnding>;
  private resolveEnded: (e: SessionEnding) => void = () => undefined;
  /** The last output the user saw, for a watcher who joins now. */
  private backlog: Buffer[] = [];
  private backlogBytes = 0;
  /** Watchers (any node) and when they last said they still watch. */
  readonly watchers = new Map<string, number>();
  private pendingWatch: Buffer[] = [];
  private watchTimer: NodeJS.Timeout | null = null;

  constructor(
    readonly record: SessionRecord,
    readonly relay: SessionIo,
    readonly recorder: SessionRecorder,
    /** Lets go of the device side (closes the SSH connection, stops a desktop's processes). */
    readonly release: () => void,
    public grantEnd: number,
    private readonly finalize: (s: LiveSession, reason: SessionEndReason, notice: string | null) => Promise<void>,
    private readonly publishWatch: (payload: string) => void = () => undefined,
  ) {
    this.ended = new Promise((r) => { this.resolveEnded = r; });
    relay.onOutput = (chunk) => this.output(chunk);
  }

  /** Everything the user sees passes here: kept for new watchers, and sent to current ones in batches. */
  private output(chunk: Buffer): void {
    if (this.relay.snapshot) {
      // Desktops keep no byte backlog (snapshot() is the starting point); only live watchers get bytes.
      if (this.watchers.size === 0) return;
      this.pendingWatch.push(chunk);
      this.watchTimer ??= setTimeout(() => this.flushWatch(), 50);
      return;
    }
    this.backlog.push(chunk);
    this.backlogBytes += chunk.length;
    while (this.backlogBytes > WATCH_BACKLOG_BYTES && this.backlog.length > 1) this.backlogBytes -= (this.backlog.shift() as Buffer).length;
    if (this.watchers.size === 0) return;
    this.pendingWatch.push(chunk);
    // Batched every 50 ms: a bulk download must not become one bus message per packet.
    this.watchTimer ??= setTimeout(() => this.flushWatch(), 50);
  }

  private flushWatch(): void {
    this.watchTimer = null;
    const now = Date.now();
    for (const [w, at] of this.watchers) if (now - at > WATCHER_TTL_MS) this.watchers.delete(w);
    if (this.pendingWatch.length === 0 || this.watchers.size === 0) {
      this.pendingWatch = [];
      return;
    }
    const data = Buffer.concat(this.pendingWatch);
    this.pendingWatch = [];
    this.publishWatch(JSON.stringify({ t: 'd', b: data.toString('base64') }));
  }

  /** A watcher (re)announced itself; a new one first gets the recent screen. */
  watch(watcher: string): void {
    const isNew = !this.watchers.has(watcher);
    this.watchers.set(watcher, Date.now());
    if (!isNew) return;
    // A desktop's stream cannot be decoded from the middle: a new watcher starts from the screen as
    // it is now (sent before any later batch), a terminal's from its recent output.
    if (this.watchTimer) {
      clearTimeout(this.watchTimer);
      this.flushWatch();
    }
    const start = this.relay.snapshot ? this.relay.snapshot() : Buffer.concat(this.backlog);
    this.publishWatch(JSON.stringify({ t: 'backlog', to: watcher, b: start.toString('base64') }));
  }

  /** Called by the broker once the session has ended and been sealed. */
  markEnded(e: SessionEnding): void {
    if (this.watchTimer) clearTimeout(this.watchTimer);
    this.flushWatch();
    this.publishWatch(JSON.stringify({ t: 'end', reason: e.reason, notice: e.notice }));
    this.resolveEnded(e);
  }

  get id(): string {
    return this.record.id;
  }

  /** Ends the session once, whoever asks first; later calls wait for the same ending. */
  close(reason: SessionEndReason, notice: string | null = null): Promise<void> {
    this.closing ??= this.finalize(this, reason, notice);
    return this.closing;
  }

  get isClosing(): boolean {
    return this.closing !== null;
  }
}

/**
 * The one place that decides, records and ends sessions. Front doors translate their protocol
 * into calls here; policy/ answers the questions; the broker acts on the answers.
 */
export class SessionBroker {
  private readonly live = new Map<string, LiveSession>();
  private readonly ticker: NodeJS.Timeout;
  private enforcing = false;
  private readonly clock: () => number;

  constructor(private readonly deps: BrokerDeps) {
    this.clock = deps.clock ?? Date.now;
    // Re-decide every live session twice a second from fresh state: a grant that ends, is revoked
    // or narrowed, or an account that is disabled or locked, ends the session within a second.
    this.ticker = setInterval(() => void this.enforce(), 500);
    this.ticker.unref();
    deps.metrics?.watchSessions(() => this.figures());
    deps.bus.subscribe((m) => {
      // A handler that throws must not take the process (and every live session) with it.
      try {
        this.onBusMessage(m);
      } catch (err) {
        deps.log.error('cluster bus message failed', { type: m.type, error: (err as Error).message });
      }
    });
  }

  /** Ids of the sessions this node holds. */
  liveIds(): ReadonlySet<string> {
    return new Set(this.live.keys());
  }

  private onBusMessage(m: BusMessage): void {
    if (m.type === 'watch.start') {
      this.live.get(m.session)?.watch(m.watcher);
      return;
    }
    if (m.type === 'event') return;
    if (m.type === 'command.reviewed') {
      for (const wake of this.reviewWaiters.get(m.command) ?? []) wake();
      this.reviewWaiters.delete(m.command);
      return;
    }
    if (m.type === 'session.kill') {
      const s = this.live.get(m.session);
      if (s) this.background(this.killLocal(s, { by: m.by, reason: m.reason, grantRevoked: m.grantRevoked ?? false, lockedUntil: m.lockedUntil ?? null }));
    } else {
      void this.enforce();
    }
  }

  private async killLocal(s: LiveSession, k: KillParts): Promise<void> {
    if (s.isClosing) return;
    this.deps.log.info('session killed', { session: s.id, by: k.by, grantRevoked: k.grantRevoked ?? false, locked: Boolean(k.lockedUntil) });
    s.killedBy = k.by;
    s.kill = k;
    await s.close('killed', killNotice(k));
  }

  /** What Prometheus reads of the live sessions, at scrape time only. */
  private figures(): LiveSessionFigures[] {
    return [...this.live.values()].map((s) => ({
      protocol: s.record.protocol, bytesIn: s.relay.bytesIn, bytesOut: s.relay.bytesOut, recordingBacklog: s.recorder.backlogBytes ?? 0,
    }));
  }

  liveSessions(): LiveSession[] {
    return [...this.live.values()];
  }

  /** Devices this user could open a session to right now (the interactive picker). */
  async grantedDevices(user: UserRecord, protocol: Protocol): Promise<DeviceRecord[]> {
    const [devices, grants] = await Promise.all([this.deps.store.listDevices(), this.deps.store.listGrants({ user: user.name })]);
    const ok = new Set(grantedNow(principalFacts(user), devices.map(deviceFacts), grants.map(grantFacts), protocol, this.clock()).map((d) => d.name));
    return devices.filter((d) => ok.has(d.name));
  }

  /** Always from fresh state: the account, device and grants as the store holds them now. */
  private async decide(userName: string, deviceName: string, protocol: Protocol) {
    const { store } = this.deps;
    const [device, grants, user] = await Promise.all([
      store.getDevice(deviceName),
      store.listGrants({ user: userName, device: deviceName }),
      store.getUser(userName),
    ]);
    const decision = authorizeSession({
      // An account deleted under a live session decides like a disabled one.
      user: user ? principalFacts(user) : { name: userName, roles: [], disabled: true, expiresAt: null, lockedUntil: null },
      device: device ? deviceFacts(device) : null,
      deviceName,
      protocol,
      grants: grants.map(grantFacts),
      now: this.clock(),
    });
    return { decision, device, grants };
  }

  private async refuse(req: SshOpenRequest, code: ErrorCode, detail: string): Promise<OpenResult> {
    // The refusal stands whether or not the store answers; its entry waits in the spool if need be.
    await this.deps.audit.recordEventually('session.refused', {
      actor: req.user.name,
      outcome: 'denied',
      code,
      data: { device: req.deviceName, protocol: 'ssh', via: req.via, client: req.clientAddress, kind: req.kind, command: req.command, detail },
    });
    const message = DETAIL_SHOWN.has(code) ? `${describeCode(code)} (${detail})` : describeCode(code);
    return { ok: false, code, message };
  }

  async openSsh(req: SshOpenRequest, client: ServerChannel): Promise<OpenResult> {
    try {
      return await this.openSshChecked(req, client);
    } catch (err) {
      // Without the store nothing can be decided or recorded as started: refuse (fail closed).
      if (err instanceof StoreUnavailableError) return this.refuse(req, 'STORE_UNAVAILABLE', err.message);
      throw err;
    }
  }

  private async openSshChecked(req: SshOpenRequest, client: ServerChannel): Promise<OpenResult> {
    const { vault, config, log } = this.deps;
    const { decision, device, grants } = await this.decide(req.user.name, req.deviceName, 'ssh');
    if (!decision.allow) return this.refuse(req, decision.code, decision.detail);
    if (!device) return this.refuse(req, 'DEVICE_UNKNOWN', `no device named ${req.deviceName}`);
    const grant = grants.find((g) => g.id === decision.value.id) as GrantRecord;
    const allowed = { upload: grant.allowUpload, download: grant.allowDownload };
    if (req.fileTransfer && !allowed.upload && !allowed.download) {
      return this.refuse(req, 'FILE_TRANSFER_NOT_GRANTED', `grant ${grant.id} does not allow file transfer (R-6.3e)`);
    }
    if (!device.hostKeyAlgo || !device.hostKeyBlob) return this.refuse(req, 'HOST_KEY_NOT_PINNED', `device ${device.name} has no pinned host key`);
    // R-6.3c: every session runs under the grant's command profile; without one, none runs (fail closed).
    const level = deviceLevel(device);
    const profileName = grant.profile ?? config.defaultProfiles[level];
    const profile = profileName === null ? undefined : config.commandProfiles.get(profileName);
    if (!profile) return this.refuse(req, 'PROFILE_UNKNOWN', `grant ${grant.id} names no configured command profile (${profileName ?? 'none'}) and level ${level} has no default`);
    if (!config.approvalRules[level].modes.includes(profile.mode)) {
      return this.refuse(req, 'PROFILE_MODE_NOT_ALLOWED', `profile ${profile.name} runs in ${profile.mode} mode, which level ${level} no longer allows`);
    }
    const secret = await vault.deviceSecret(device.name);
    if (!secret) return this.refuse(req, 'CREDENTIAL_MISSING', `device ${device.name} has no stored credential`);

    // The client may hang up while the device is being reached: remember it, and end there.
    let clientGone = false;
    client.once('close', () => { clientGone = true; });

    const id = randomUUID();
    const mediator = new CommandMediator(this.mediatorDeps(), { id, user: req.user.name, device: device.name }, profile);
    // An exec request is one command line: decided (and held for review) before the device is even contacted.
    let upstreamReq: UpstreamRequest = req;
    let refusal: string | null = null;
    let execCommandId: string | null = null;
    let transfer: TransferKind | null = req.kind === 'subsystem' && req.command === 'sftp' ? { protocol: 'sftp' } : null;
    if (req.kind === 'exec') {
      const parsed = await parseCommandLine(req.command ?? '');
      const verdict = transferOfExec(parsed);
      // The front door's look at the raw line misses a name the shell puts together (`s'c'p -t`):
      // the parsed line is what decides, as it is what the device's shell runs.
      if (!('transfer' in verdict && verdict.transfer === null) && !allowed.upload && !allowed.download) {
        return this.refuse(req, 'FILE_TRANSFER_NOT_GRANTED', `grant ${grant.id} does not allow file transfer (R-6.3e)`);
      }
      // scp runs one way: the direction the grant lacks is refused before the device is contacted.
      const wrongWay = 'transfer' in verdict && verdict.transfer !== null ? refusedDirection(verdict.transfer, allowed) : null;
      if (wrongWay) return this.refuse(req, wrongWay.code, `grant ${grant.id}: ${wrongWay.detail}`);
      const gate = await this.mediateExec(mediator, parsed, verdict, client);
      if (gate.ok) {
        upstreamReq = { ...req, command: gate.command };
        execCommandId = gate.commandId;
        transfer = gate.transfer ?? null;
      } else refusal = gate.message;
    }

    let conn: Client | null = null;
    if (refusal === null) {
      try {
        conn = await connectSsh(
          { host: device.host, port: portOf(device, 'ssh'), hostKeyAlgo: device.hostKeyAlgo, hostKeyBlob: device.hostKeyBlob },
          secret,
          config.ssh.upstream_timeout,
        );
      } catch (err) {
        if (err instanceof ConnectorError) return this.refuse(req, err.code, err.detail);
        throw err;
      }
    }

    let begun: { record: SessionRecord; recorder: RecordingWriter };
    try {
      begun = await this.beginSession({
        id, req, device, grant, protocol: 'ssh', kind: req.kind, command: req.command, profile, level, format: 'pcrec', alert: refusal === null,
        openRecorder: (file, startedAt) => RecordingWriter.create(file, {
          format: 'pcrec', version: 1, recordingId: id, sessionId: id, user: req.user.name, device: device.name, protocol: 'ssh',
          kind: req.kind, command: req.command, startedAt, term: req.pty?.term ?? null, cols: req.pty?.cols ?? 80, rows: req.pty?.rows ?? 24,
        }, { flushIntervalMs: config.recordings.flush_interval, compression: config.recordings.compression, ...this.recordingMetrics() }),
      });
    } catch (err) {
      conn?.end();
      if (err instanceof RecordingOpenError) return this.refuse(req, 'RECORDING_FAILED', err.message);
      throw err;
    }
    const { record, recorder } = begun;

    let live: LiveSession | null = null;
    const ended = (why: RelayEnd): void => {
      this.background(live?.close(why, why === 'recording_failed' ? 'The recording failed, so the session was ended (fail closed).' : null));
    };
    const register = (io: SessionIo): LiveSession => {
      live = new LiveSession(record, io, recorder, () => conn?.end(), grant.notAfter, (s, reason, notice) => this.finalize(s, reason, notice),
        (payload) => { void this.deps.bus.publishStream(`watch:${id}`, payload).catch(() => undefined); });
      this.live.set(id, live);
      return live;
    };

    if (refusal !== null || conn === null) {
      const refused = register(new RefusedExec(client, recorder, refusal ?? 'portcullis: denied [COMMAND_DENIED]\n'));
      refused.relay.start();
      this.background(refused.close('command_denied'));
      return { ok: true, session: refused };
    }
    const device$ = conn;
    device$.on('close', () => this.background(live?.close('device_closed')));
    device$.on('error', (err) => log.warn('device connection error', { session: id, error: err.message }));

    if (req.kind === 'shell' && profile.mode === 'restricted') {
      const restricted = register(new RestrictedSession(client, device$, recorder, mediator, {
        pty: req.pty, env: req.env, promptLabel: `${req.user.name}@${device.name}`,
        banner: `Portcullis restricted shell on ${device.name} (profile ${profile.name}). Type \`help\` for what you may run.\r\n`,
      }, ended));
      restricted.relay.start();
      if (clientGone) this.background(restricted.close('client_closed'));
      return { ok: true, session: restricted };
    }

    let upstream: ClientChannel;
    try {
      upstream = await openUpstreamChannel(device$, upstreamReq);
    } catch (err) {
      device$.end();
      await recorder.close().catch(() => undefined);
      await this.endRecord(record, 'error', null, 0, 0, (err as Error).message);
      return { ok: false, code: 'DEVICE_UNREACHABLE', message: describeCode('DEVICE_UNREACHABLE') };
    }
    // Interactive shells: inspected mode gates each line at Enter; full mode only logs the lines.
    let gate: InputGate | null = null;
    let relay: SshRelay | null = null;
    if (req.kind === 'shell') {
      // A client without a real terminal (ssh -tt from a script) sends 0×0: take the usual size instead.
      const size = { cols: req.pty?.cols || 80, rows: req.pty?.rows || 24 };
      gate = profile.mode === 'inspected'
        ? inspectedGate(mediator, () => relay as SshRelay, size, log)
        : commandLogGate(mediator, size, log);
    }
    const transfers = transfer === null ? null : watchTransfer(transfer, {
      session: id, user: req.user.name, device: device.name, grant: grant.id, allowed, audit: this.deps.audit, log,
      record: (event) => recorder.event(event),
      unreadable: (notice) => this.background(live?.close('protocol_error', notice)),
      background: (work) => this.background(work),
    });
    relay = new SshRelay(client, upstream, recorder, ended, { gate, pty: req.pty !== null, transfers });
    const opened = register(relay);
    // The exec request's command line gets the device's exit status (or signal) in its row and the audit chain.
    const commandId = execCommandId;
    if (commandId !== null) opened.commandFinished = (exit) => mediator.finished(commandId, exit);
    opened.relay.start();
    if (clientGone) this.background(opened.close('client_closed'));
    return { ok: true, session: opened };
  }

  /**
   * A desktop session (VNC, or RDP through a private Xvnc running xfreerdp): the same decision,
   * vault, recording, enforcement and ending as SSH; `browser` carries raw RFB both ways (the web
   * front door's WebSocket). The browser is offered security type None: it is already signed in.
   */
  async openDesktop(req: DesktopOpenRequest, browser: Duplex): Promise<OpenResult> {
    const refuse = async (code: ErrorCode, detail: string): Promise<OpenResult> => {
      await this.deps.audit.recordEventually('session.refused', {
        actor: req.user.name, outcome: 'denied', code,
        data: { device: req.deviceName, protocol: req.protocol, via: req.via, client: req.clientAddress, detail },
      });
      return { ok: false, code, message: DETAIL_SHOWN.has(code) ? `${describeCode(code)} (${detail})` : describeCode(code) };
    };
    // Desktops cost this host processes and memory: bounded per person and (RDP) per node. The
    // slot is taken before the first await, so parallel requests cannot all slip under the bound.
    const { config } = this.deps;
    const live = [...this.live.values()].filter((s) => s.record.kind === 'desktop');
    const mine = live.filter((s) => s.record.user === req.user.name).length + (this.desktopsStarting.get(req.user.name) ?? 0);
    if (mine >= config.desktop.max_per_user) {
      return refuse('DESKTOP_LIMIT', `${req.user.name} has ${config.desktop.max_per_user} desktops open or opening on this node`);
    }
    const rdp = req.protocol === 'rdp';
    if (rdp && live.filter((s) => s.record.protocol === 'rdp').length + this.rdpStarting >= config.desktop.max_rdp_sessions) {
      return refuse('DESKTOP_CAPACITY', `${config.desktop.max_rdp_sessions} RDP desktops already run on this node`);
    }
    this.desktopsStarting.set(req.user.name, (this.desktopsStarting.get(req.user.name) ?? 0) + 1);
    if (rdp) this.rdpStarting += 1;
    try {
      return await this.openDesktopChecked(req, browser, refuse);
    } catch (err) {
      if (err instanceof StoreUnavailableError) return refuse('STORE_UNAVAILABLE', err.message);
      throw err;
    } finally {
      // By now the session is live (and counted as such) or refused.
      const n = (this.desktopsStarting.get(req.user.name) ?? 1) - 1;
      if (n > 0) this.desktopsStarting.set(req.user.name, n);
      else this.desktopsStarting.delete(req.user.name);
      if (rdp) this.rdpStarting -= 1;
    }
  }

  private async openDesktopChecked(req: DesktopOpenRequest, browser: Duplex, refuse: (code: ErrorCode, detail: string) => Promise<OpenResult>): Promise<OpenResult> {
    const { vault } = this.deps;
    const { decision, device, grants } = await this.decide(req.user.name, req.deviceName, req.protocol);
    if (!decision.allow) return refuse(decision.code, decision.detail);
    if (!device) return refuse('DEVICE_UNKNOWN', `no device named ${req.deviceName}`);
    const grant = grants.find((g) => g.id === decision.value.id) as GrantRecord;
    const secret = await vault.deviceSecret(device.name);
    if (!secret?.password) return refuse('CREDENTIAL_MISSING', `device ${device.name} has no stored ${req.protocol.toUpperCase()} password`);
    if (req.protocol === 'rdp' && !device.rdpCertSha256) return refuse('RDP_CERT_NOT_PINNED', `device ${device.name} has no pinned RDP certificate`);
    // One person's desktop per device at a time, across the cluster: another person's VNC viewer
    // would share the screen and keyboard, and their RDP login with the vaulted account would
    // take over the first one's Windows session. The same person may reconnect (a reloaded page).
    // (Two nodes deciding in the same instant can both pass.)
    const opening = this.desktopOpening.get(device.name);
    if (opening !== undefined && opening !== req.user.name) return refuse('DEVICE_IN_USE', `${opening} is opening a desktop on ${device.name}`);
    const busy = (await this.deps.store.listSessions({ device: device.name, open: true, limit: 50 })).find((s) => s.kind === 'desktop' && s.endedAt === null && s.user !== req.user.name);
    if (busy) return refuse('DEVICE_IN_USE', `${busy.user} has a desktop open on ${device.name}`);
    this.desktopOpening.set(device.name, req.user.name);
    try {
      return await this.openDesktopOnDevice(req, browser, refuse, device, grant, secret.username, secret.password);
    } finally {
      if (this.desktopOpening.get(device.name) === req.user.name) this.desktopOpening.delete(device.name);
    }
  }

  private async openDesktopOnDevice(
    req: DesktopOpenRequest, browser: Duplex, refuse: (code: ErrorCode, detail: string) => Promise<OpenResult>,
    device: DeviceRecord, grant: GrantRecord, username: string, password: string,
  ): Promise<OpenResult> {
    const { config, log } = this.deps;
    const level = deviceLevel(device);
    const width = Math.max(640, Math.min(3840, Math.round(req.width)));
    const height = Math.max(480, Math.min(2160, Math.round(req.height)));

    // The device side: the device's own VNC server, or a private display running the RDP client.
    let display: RdpDisplay | null = null;
    let conn: RfbConnection;
    try {
      if (req.protocol === 'rdp') {
        const [domain, user] = username.includes('\\') ? username.split('\\', 2) as [string, string] : [undefined, username];
        display = await startRdpDisplay({
          host: device.host, port: portOf(device, 'rdp'), username: user, password, ...(domain ? { domain } : {}),
          certFingerprint: device.rdpCertSha256 as string, width, height, clipboard: { toDevice: grant.allowUpload, fromDevice: grant.allowDownload },
          timeoutMs: Math.max(config.ssh.upstream_timeout, 15_000), log,
        });
        await display.ready;
        conn = await connectRfb({ target: { path: display.socketPath }, password: null, timeoutMs: config.ssh.upstream_timeout });
      } else {
        conn = await connectRfb({ target: { host: device.host, port: portOf(device, 'vnc') }, password, timeoutMs: config.ssh.upstream_timeout });
      }
    } catch (err) {
      await display?.stop().catch(() => undefined);
      const e = err as { code?: string; detail?: string; message: string };
      const code = (e.code && e.code in ERROR_CATALOGUE ? e.code : 'DEVICE_UNREACHABLE') as ErrorCode;
      return refuse(code, e.detail ?? e.message);
    }
    return this.startDesktopSession(req, device, grant, level, conn, display, browser, refuse);
  }

  private async startDesktopSession(
    req: DesktopOpenRequest, device: DeviceRecord, grant: GrantRecord, level: number, conn: RfbConnection, display: RdpDisplay | null, browser: Duplex,
    refuse: (code: ErrorCode, detail: string) => Promise<OpenResult>,
  ): Promise<OpenResult> {
    const { config, log, audit } = this.deps;
    const releaseDevice = (): void => {
      conn.socket.destroy();
      void display?.stop().catch((err: Error) => log.warn('desktop display did not stop cleanly', { error: err.message }));
    };

    const id = randomUUID();
    let begun: { record: SessionRecord; recorder: RfbRecordingWriter };
    try {
      begun = await this.beginSession({
        id, req, device, grant, protocol: req.protocol, kind: 'desktop', command: null, profile: null, level, format: 'pcrfb', alert: true,
        openRecorder: (file, startedAt) => RfbRecordingWriter.create(file, {
          format: 'pcrfb', version: 1, recordingId: id, sessionId: id, user: req.user.name, device: device.name, protocol: req.protocol,
          startedAt, width: conn.serverInit.width, height: conn.serverInit.height, pixelFormat: RGBX32, name: conn.serverInit.name,
        }, { flushIntervalMs: config.recordings.flush_interval, compression: config.recordings.compression, ...this.recordingMetrics() }),
      });
    } catch (err) {
      releaseDevice();
      if (err instanceof RecordingOpenError) return refuse('RECORDING_FAILED', err.message);
      throw err;
    }
    const { record, recorder } = begun;
    let live: LiveSession | null = null;
    const follower = display ? this.desktopResizeFollower(display, req.user.name, device.name, id, () => live) : null;
    const proxy = new RfbProxy(browser, conn, recorder, (why) => {
      this.background(live?.close(why, why === 'recording_failed' ? 'The recording failed, so the session was ended (fail closed).' : null));
    }, {
      // R-6.3e, R-6.3f: the clipboard is a file-transfer channel, open each way only as the grant allows:
      // to the device is an upload, from the device a download (data export).
      clipboard: { toDevice: grant.allowUpload, fromDevice: grant.allowDownload },
      onClipboard: (t) => {
        const code = !grant.allowUpload && !grant.allowDownload ? 'FILE_TRANSFER_NOT_GRANTED' as const
          : t.direction === 'to-device' ? 'FILE_UPLOAD_NOT_GRANTED' as const : 'FILE_DOWNLOAD_NOT_GRANTED' as const;
        this.background(audit.recordEventually('desktop.clipboard', {
          actor: req.user.name, outcome: t.allowed ? 'ok' : 'denied', ...(t.allowed ? {} : { code }),
          data: { session: id, device: device.name, direction: t.direction, bytes: t.bytes, sha256: t.sha256, count: t.count },
        }));
      },
      // A VNC device's screen is its own; an RDP desktop follows the browser's window: the display
      // is resized and xfreerdp reconnects at the new size (the Windows session stays).
      allowResize: display !== null,
      ...(follower ? { onResizeRequest: (w: number, h: number) => follower.request(w, h) } : {}),
    });
    live = new LiveSession(record, proxy, recorder, releaseDevice, grant.notAfter, (s, reason, notice) => this.finalize(s, reason, notice),
      (payload) => { void this.deps.bus.publishStream(`watch:${id}`, payload).catch(() => undefined); });
    this.live.set(id, live);
    if (follower) void live.ended.then(() => follower.stop());
    display?.onExit((exit) => {
      if (exit.reason !== 'stopped') this.background(live?.close('device_closed'));
    });
    proxy.start();
    return { ok: true, session: live };
  }

  /**
   * An RDP desktop following the browser's size (resize-follower.ts: settled, rate limited, one
   * at a time). Every applied resize is audited. One that fails ends the session, audited and
   * named: it cannot go on at a size nobody asked for, nor with no device behind it.
   */
  private desktopResizeFollower(display: RdpDisplay, user: string, device: string, session: string, live: () => LiveSession | null): ResizeFollower {
    const { audit, log } = this.deps;
    return new ResizeFollower(display, {
      onResized: ({ from, to, ms }) => {
        log.info('desktop resized', { session, from, to, ms });
        this.background(audit.recordEventually('desktop.resized', { actor: user, outcome: 'ok', data: { session, device, from, to, ms, result: 'ok' } }));
      },
      onFailed: ({ from, to, ms, error }) => {
        const s = live();
        // The session ended first (kill, expiry, the browser gone): stopping the display is what failed the resize.
        if (!s || s.isClosing) return;
        // RdpDisplayError carries its catalogue code: DEVICE_AUTH_FAILED for a refused re-login,
        // DESKTOP_START_FAILED when the display could not change size, DEVICE_TIMEOUT, ...
        const failure = error as Error & { code?: string; detail?: string };
        const code: ErrorCode = failure.code && failure.code in ERROR_CATALOGUE ? failure.code as ErrorCode : 'DESKTOP_START_FAILED';
        log.warn('desktop resize failed; the session ends', { session, from, to, code, error: error.message });
        this.background(audit.recordEventually('desktop.resized', {
          actor: user, outcome: 'denied', code, data: { session, device, from, to, ms, result: 'failed', detail: failure.detail ?? error.message },
        }));
        this.background(s.close('error', `Session closed: the desktop could not follow the new window size. ${describeCode(code)} [${code}]`));
      },
    });
  }

  /**
   * What every session starts with, whatever its protocol: the recording opened before the first
   * byte (no recorder, no session), the session and recording rows, the audit entry, the events.
   * If any of it fails the session does not start and the recording is closed again.
   */
  private async beginSession<R extends SessionRecorder>(o: {
    id: string; req: { user: UserRecord; via: string; clientAddress: string }; device: DeviceRecord; grant: GrantRecord; protocol: Protocol;
    kind: SessionRecord['kind']; command: string | null; profile: { name: string; mode: string } | null; level: number; format: string; alert: boolean;
    openRecorder: (file: string, startedAt: number) => Promise<R>;
  }): Promise<{ record: SessionRecord; recorder: R }> {
    const { store, audit, config, log, notifier, node } = this.deps;
    const now = this.clock();
    const day = new Date(now).toISOString().slice(0, 10).replaceAll('-', '/');
    const relPath = path.join(day, `${o.id}.${o.format}`);
    let recorder: R;
    try {
      recorder = await o.openRecorder(path.join(config.paths.recordings, relPath), now);
    } catch (err) {
      log.error('recording could not be opened', { error: (err as Error).message });
      throw new RecordingOpenError((err as Error).message);
    }
    const { req, device, grant } = o;
    const record: SessionRecord = {
      id: o.id, user: req.user.name, device: device.name, protocol: o.protocol, grantId: grant.id, via: req.via, kind: o.kind, command: o.command,
      clientAddress: req.clientAddress, node, startedAt: now, endedAt: null, endReason: null, exitStatus: null,
      bytesIn: 0, bytesOut: 0, recordingId: o.id, killRequest: null,
    };
    try {
      await store.createRecording({ id: o.id, sessionId: o.id, path: relPath, format: o.format, startedAt: now, sealedAt: null, size: null, sha256: null });
      await store.createSession(record);
      await audit.record('session.start', {
        actor: req.user.name,
        outcome: 'ok',
        data: {
          session: o.id, device: device.name, protocol: o.protocol, via: req.via, kind: o.kind, command: o.command, grant: grant.id,
          grantEnds: new Date(grant.notAfter).toISOString(), client: req.clientAddress, recording: o.id, node,
          profile: o.profile?.name ?? null, mode: o.profile?.mode ?? null,
        },
      });
      notifier.notify('session.started', {
        session: o.id, user: req.user.name, device: device.name, level: o.level, protocol: o.protocol, via: req.via, node, grantEnds: new Date(grant.notAfter).toISOString(),
      });
      // R-A.5b: sessions on the highest-risk devices are announced to security to watch live.
      if (config.approvalRules[o.level as DeviceLevel].alertSecurityOnStart && o.alert) {
        notifier.notify('session.watch_alert', { session: o.id, user: req.user.name, device: device.name, level: o.level, protocol: o.protocol, grant: grant.id, node, client: req.clientAddress });
      }
    } catch (err) {
      // Not recorded as started, so not started: close the file again.
      await recorder.close().catch(() => undefined);
      throw err;
    }
    return { record, recorder };
  }

  /**
   * Decides an exec request's command line by the profile (full mode: logs it). Allowed: the
   * command to send the device (re-quoted in restricted and inspected modes). Review: the vendor
   * is told to wait, and the approver's answer decides. Denied: the reason, and nothing runs.
   */
  private async mediateExec(mediator: CommandMediator, parsed: ParsedLine, verdict: TransferVerdict, client: ServerChannel): Promise<{ ok: true; command: string; commandId: string; transfer?: TransferKind } | { ok: false; message: string }> {
    const line = parsed.source;
    // A file-transfer server on a grant that allows transfer passes as itself, alone and logged,
    // and each of its files is audited; one that could not be followed file by file does not run.
    if ('refused' in verdict) {
      await mediator.refused(line, verdict.refused);
      return { ok: false, message: `portcullis: denied: ${verdict.refused} [COMMAND_DENIED]\n` };
    }
    if (verdict.transfer !== null) return { ok: true, command: line, commandId: await mediator.record(line), transfer: verdict.transfer };
    const { decision: first, commandId } = await mediator.decide(line, parsed);
    let decision = first;
    if (mediator.mode === 'full' && decision.code !== 'STORE_UNAVAILABLE') return { ok: true, command: line, commandId };
    if (decision.action === 'review') {
      // Said before the session's recording exists; the command log and audit hold the wait.
      client.stderr.write(`portcullis: waiting for an approver to confirm this command (${decision.reason})\n`);
      decision = await mediator.review(commandId, line, decision);
    }
    if (decision.action !== 'allow') return { ok: false, message: `portcullis: denied: ${decision.reason} [${decision.code ?? 'COMMAND_DENIED'}]\n` };
    const command = execLineFor(parsed);
    if (command === null) return { ok: false, message: 'portcullis: denied: this command line holds shell syntax the gateway does not carry out [COMMAND_DENIED]\n' };
    return { ok: true, command, commandId };
  }

  /** RDP displays being started (not yet live sessions), counted against `desktop.max_rdp_sessions`. */
  private rdpStarting = 0;
  /** Desktops being opened, per person, counted against `desktop.max_per_user`. */
  private readonly desktopsStarting = new Map<string, number>();
  /** Devices a desktop is being opened on here, and by whom (one person's desktop per device). */
  private readonly desktopOpening = new Map<string, string>();

  /** Answers to held commands arrive on the bus; a waiting session wakes at once. */
  private readonly reviewWaiters = new Map<string, Array<() => void>>();

  private mediatorDeps(): MediatorDeps {
    const { store, audit, spool, bus, notifier, log, config } = this.deps;
    return {
      store, audit, spool, bus, notifier, log, clock: this.clock, reviewTimeoutMs: config.commands.review_timeout,
      reviewAnswered: (id) => new Promise<void>((resolve) => {
        const list = this.reviewWaiters.get(id) ?? [];
        list.push(resolve);
        this.reviewWaiters.set(id, list);
      }),
    };
  }

  private recordingMetrics(): { onBlockWritten?: (seconds: number, bytes: number) => void } {
    return this.deps.metrics ? { onBlockWritten: this.deps.metrics.recordingBlockWritten } : {};
  }

  private async finalize(s: LiveSession, reason: SessionEndReason, notice: string | null): Promise<void> {
    if (notice) s.relay.notice(notice);
    if (reason !== 'client_closed' && reason !== 'device_closed' && reason !== 'command_denied') s.relay.terminate(255);
    s.release();
    try {
      await this.seal(s, reason);
    } finally {
      // Only now: shutdown() waits for sessions still in this map, so the store outlives their sealing.
      // Its bytes move to the metrics' ended totals in the same turn, so a scrape never sees them drop.
      this.deps.metrics?.sessionEnded({ protocol: s.record.protocol, bytesIn: s.relay.bytesIn, bytesOut: s.relay.bytesOut, recordingBacklog: 0 }, reason);
      this.live.delete(s.id);
      const kill = s.kill ? { kill: { reason: s.kill.reason, grantRevoked: s.kill.grantRevoked ?? false, lockedUntil: s.kill.lockedUntil ?? null } } : {};
      s.markEnded({ reason, notice, ...kill });
    }
  }

  /**
   * Seals the recording and ends the session record. What is written here has already happened,
   * so it goes through the spool: a store outage delays these writes, never loses them.
   */
  private async seal(s: LiveSession, reason: SessionEndReason): Promise<void> {
    const { log, spool, audit } = this.deps;
    const exit = s.relay.exit;
    s.recorder.event({ end: reason, exitStatus: exit?.code ?? null, exitSignal: exit?.signal ?? null, ...(s.killedBy ? { killedBy: s.killedBy } : {}) });
    // Never throws: a store outage leaves the command's end in the spool.
    await s.commandFinished?.(exit);
    let sealError: string | null = null;
    try {
      const sealed = await s.recorder.close();
      await spool.submit({ op: 'sealRecording', id: s.record.recordingId, seal: { sealedAt: this.clock(), size: sealed.size, sha256: sealed.sha256 } });
      await audit.recordEventually('recording.sealed', {
        actor: 'portcullis',
        data: { recording: s.record.recordingId, session: s.id, sha256: sealed.sha256, size: sealed.size, bytesRecorded: sealed.rawBytes },
      });
    } catch (err) {
      sealError = (err as Error).message;
      log.error('recording could not be sealed', { session: s.id, error: sealError });
    }
    try {
      await this.endRecord(s.record, sealError && reason !== 'recording_failed' ? 'recording_failed' : reason, exit?.code ?? null, s.relay.bytesIn, s.relay.bytesOut, sealError, s.killedBy);
    } catch (err) {
      // The session is over either way; a store that cannot take its end is logged for the operator.
      log.error('session end could not be stored', { session: s.id, error: (err as Error).message });
    }
  }

  private async endRecord(
    record: SessionRecord, reason: SessionEndReason, exitStatus: number | null, bytesIn: number, bytesOut: number, error: string | null, killedBy: string | null = null,
  ): Promise<void> {
    const endedAt = this.clock();
    await this.deps.spool.submit({ op: 'endSession', id: record.id, patch: { endedAt, endReason: reason, exitStatus, bytesIn, bytesOut } });
    await this.deps.audit.recordEventually('session.end', {
      actor: record.user,
      outcome: 'info',
      data: {
        session: record.id, device: record.device, reason, exitStatus, bytesIn, bytesOut, node: record.node,
        durationMs: endedAt - record.startedAt, recording: record.recordingId, ...(error ? { error } : {}), ...(killedBy ? { killedBy } : {}),
      },
    });
    this.deps.notifier.notify('session.ended', { session: record.id, user: record.user, device: record.device, node: record.node, reason, exitStatus, bytesIn, bytesOut });
  }

  private background(p: Promise<unknown> | undefined): void {
    inBackground(this.deps.log, 'session task', p);
  }

  /**
   * The enforcement tick: re-decide every live session from fresh state, warn before the grant
   * ends, end what must end. Sessions are decided concurrently (one round trip to Redis for all).
   */
  private async enforce(): Promise<void> {
    if (this.enforcing || this.live.size === 0) return;
    this.enforcing = true;
    try {
      const now = this.clock();
      await Promise.all([...this.live.values()].filter((s) => !s.isClosing).map((s) => this.enforceOne(s, now)));
    } catch (err) {
      this.deps.log.error('enforcement tick failed', { error: (err as Error).message });
    } finally {
      this.enforcing = false;
    }
  }

  /**
   * A kill that also revoked the grant or locked the account can be read by a tick between its
   * parts (the revocation seen, the kill request read a moment before it was stored). The kill is
   * stored first, so one more read finds it: the vendor is told the kill and its reason.
   */
  private async killedMeanwhile(s: LiveSession): Promise<boolean> {
    const again = await this.deps.store.getSession(s.id);
    if (!again?.killRequest) return false;
    await this.killLocal(s, again.killRequest);
    return true;
  }

  /** Whether a successor grant carries the terms a session was set up with (file transfer, profile). */
  private sameTerms(was: GrantRecord | null, now: GrantRecord): boolean {
    return was !== null && was.allowUpload === now.allowUpload && was.allowDownload === now.allowDownload && was.profile === now.profile;
  }

  private async enforceOne(s: LiveSession, now: number): Promise<void> {
    const { config, store, log } = this.deps;
    try {
      const [{ decision, grants }, record] = await Promise.all([this.decide(s.record.user, s.record.device, s.record.protocol), store.getSession(s.id)]);
      if (record?.killRequest) {
        // The bus carries kills at once; this catches one whose message was lost.
        await this.killLocal(s, record.killRequest);
        return;
      }
      if (!decision.allow) {
        if (await this.killedMeanwhile(s)) return;
        const ended = decision.code === 'GRANT_EXPIRED' || decision.code === 'NO_GRANT';
        // Not awaited: one slow seal must not hold up ending the other sessions.
        this.background(s.close(ended ? 'grant_ended' : 'access_revoked', `Session closed: ${describeCode(decision.code)} [${decision.code}]`));
        return;
      }
      // The session lives on grants with the terms it was set up under (file transfer, profile):
      // its own, or a later one with the same terms. A remaining grant with other terms (no file
      // transfer, another profile) does not carry it; a new session gets that grant's terms.
      const was = grants.find((g) => g.id === s.record.grantId) ?? (await store.getGrant(s.record.grantId));
      const carrying = grants.filter((g) => g.protocol === s.record.protocol && g.revokedAt === null && g.notBefore <= now && now < g.notAfter && was !== null && this.sameTerms(was, g));
      if (carrying.length === 0) {
        if (await this.killedMeanwhile(s)) return;
        const ended = was !== null && was.revokedAt === null && now >= was.notAfter;
        this.background(s.close(ended ? 'grant_ended' : 'access_revoked', ended
          ? `Session closed: ${describeCode('GRANT_EXPIRED')} [GRANT_EXPIRED]`
          : 'Session closed: the grant it was opened under no longer applies; connect again under your current grant [GRANT_REVOKED]'));
        return;
      }
      s.grantEnd = Math.max(...carrying.map((g) => g.notAfter));
      // Live sessions' byte counts reach the store every few seconds, so every node's list shows them.
      if (now - s.bytesStoredAt >= 5000) {
        s.bytesStoredAt = now;
        await store.updateSession(s.id, { bytesIn: s.relay.bytesIn, bytesOut: s.relay.bytesOut });
      }
    } catch (err) {
      if (!(err instanceof StoreUnavailableError)) throw err;
      // Without the store, what this node knows still holds: the grant's end (a successor grant
      // cannot be seen, so the session ends then) and the idle limit.
      if (now >= s.grantEnd) {
        log.warn('grant end reached while the store is unreachable: ending the session', { session: s.id });
        this.background(s.close('grant_ended', `Session closed: ${describeCode('GRANT_EXPIRED')} [GRANT_EXPIRED]`));
        return;
      }
    }
    for (const off of warningsDue(s.grantEnd, config.ssh.grant_warnings, s.warned, now)) {
      s.warned.add(off);
      s.relay.notice(`Your access grant for ${s.record.device} ends in ${formatDuration(off)} (at ${new Date(s.grantEnd).toISOString()}); the session will be closed then.`);
    }
    if (now - s.relay.lastInputAt >= config.ssh.idle_timeout) {
      this.background(s.close('idle_timeout', `Session closed after ${formatDuration(config.ssh.idle_timeout)} without input [IDLE_TIMEOUT].`));
    }
  }

  async shutdown(): Promise<void> {
    clearInterval(this.ticker);
    await Promise.all([...this.live.values()].map((s) => s.close('gateway_shutdown', 'The gateway is shutting down; the session was closed.')));
  }
}
