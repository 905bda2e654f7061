import type { EventEmitter } from 'node:events';
import { bindEmitterToAuditContext } from '../audit/audit-context.js';
import { readFileSync } from 'node:fs';
import type { AddressInfo, Socket } from 'node:net';
import ssh2, {
  type Server, type AuthContext, type Connection, type KeyboardAuthContext, type PseudoTtyInfo, type PublicKeyAuthContext,
  type ServerChannel, type Session,
} from 'ssh2';
import type { ErrorCode } from '../../policy/error-codes.js';
import { describeCode } from '../../policy/error-codes.js';
import type { AuditLog } from '../audit/audit-log.js';
import type { LiveSession, SessionBroker } from '../broker/session-broker.js';
import type { GatewayConfig } from '../config/load.js';
import type { Authenticator } from '../identity/authenticator.js';
import { inBackground } from '../log/background.js';
import type { Logger } from '../log/logger.js';
import { PerKeyLimit } from '../limits/per-key-limit.js';
import { StoreUnavailableError, type DeviceRecord, type Store, type UserRecord } from '../store/store.js';
import { portOf } from '../inventory/device-ports.js';
import { pickDevice } from './device-picker.js';
import { parseLoginName } from './target-name.js';

const { Server: SshServer, utils } = ssh2; // CommonJS module

export interface SshFrontDoorDeps {
  config: GatewayConfig;
  store: Store;
  audit: AuditLog;
  authenticator: Authenticator;
  broker: SessionBroker;
  log: Logger;
}

/** Strong algorithms only (S-3.2). The client's cipher order wins, so AES-GCM alone is offered: it is the fastest here. */
const ALGORITHMS = {
  kex: ['curve25519-sha256', 'curve25519-sha256@libssh.org', 'ecdh-sha2-nistp256', 'ecdh-sha2-nistp384', 'diffie-hellman-group16-sha512', 'diffie-hellman-group14-sha256'],
  cipher: ['aes128-gcm@openssh.com', 'aes256-gcm@openssh.com'],
  hmac: ['hmac-sha2-256-etm@openssh.com', 'hmac-sha2-512-etm@openssh.com', 'hmac-sha2-256', 'hmac-sha2-512'],
  compress: ['none'],
} as const;

/**
 * Exec requests that are file-transfer servers (scp, sftp -s, rsync), wherever they stand in the
 * command line: `"/usr/lib/openssh/sftp-server"`, `exec sftp-server`, `cd /; scp -f x` alike.
 * Plain commands that print a file (`cat`, `tar c`) are output, recorded in full; holding those
 * to a profile is command mediation's job (R-6.3c). A name the shell assembles (`s'c'p -t x`)
 * passes this look at the raw line; the broker decides again on the parsed line.
 */
const FILE_TRANSFER_COMMAND = /(^|[\s;&|('"`/=])(scp|sftp-server|sftp|rsync)(['"`]?)(\s|$|;|&|\|)/;

const SIGNALS = new Set(['ABRT', 'ALRM', 'FPE', 'HUP', 'ILL', 'INT', 'KILL', 'PIPE', 'QUIT', 'SEGV', 'TERM', 'USR1', 'USR2']);

interface ConnectionState {
  clientAddress: string;
  login: string | null;
  target: string | null;
  pubkeyVerified: string | null;
  user: UserRecord | null;
}

/**
 * The SSH front door: a real SSH server that turns what OpenSSH clients ask for into calls on
 * the session broker. It authenticates (password or public key, plus TOTP), picks the target,
 * and refuses everything the rules close: forwarding of ports, agents and X11 (R-6.3f), and file
 * transfer without a grant that allows it (R-6.3e).
 */
export class SshFrontDoor {
  private readonly server: Server;
  private readonly hostKey: Buffer;
  private readonly connections = new Set<Connection>();

  constructor(private readonly deps: SshFrontDoorDeps) {
    this.hostKey = readFileSync(deps.config.paths.hostKey);
    this.signingIn = new PerKeyLimit(deps.config.ssh.max_unauthenticated_per_ip);
    this.server = this.makeServer((client, info) => {
      // The SSH front door: what this connection causes is audited as ssh from its address.
      const sock = (client as unknown as { _sock?: EventEmitter })._sock;
      if (sock) bindEmitterToAuditContext(sock, { channel: 'ssh', source: info.ip });
      if (!this.admitUnauthenticated(client, info.ip)) return;
      this.onConnection(client, `${info.ip}:${info.port}`, null);
    });
    this.server.maxConnections = deps.config.ssh.max_connections;
  }

  /** Connections per address that have not signed in yet. */
  private readonly signingIn: PerKeyLimit;

  /**
   * One address may hold only so many connections that have not signed in: a guesser or a
   * slow-handshake flood from one host cannot take every socket and scrypt slot.
   */
  private admitUnauthenticated(client: Connection, ip: string): boolean {
    const release = this.signingIn.acquire(ip);
    if (!release) {
      this.deps.log.warn('ssh connection refused: too many unauthenticated connections from this address', { ip, limit: this.deps.config.ssh.max_unauthenticated_per_ip });
      client.on('error', () => undefined);
      client.end();
      return false;
    }
    client.once('ready', release);
    client.once('close', release);
    return true;
  }

  private makeServer(onConnection: (client: Connection, info: { ip: string; port: number }) => void): Server {
    return new SshServer(
      {
        hostKeys: [this.hostKey],
        ident: 'Portcullis',
        algorithms: {
          kex: [...ALGORITHMS.kex],
          cipher: [...ALGORITHMS.cipher],
          hmac: [...ALGORITHMS.hmac],
          compress: [...ALGORITHMS.compress],
        },
        ...(this.deps.config.ssh.banner ? { banner: this.deps.config.ssh.banner } : {}),
      },
      onConnection,
    );
  }

  listen(host: string, port: number): Promise<AddressInfo> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => {
        this.server.removeListener('error', reject);
        resolve(this.server.address() as AddressInfo);
      });
    });
  }

  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const c of this.connections) c.end();
    await closed;
  }

  /**
   * One SSH connection. `preauth` is set for the inner connection of a ProxyJump: the outer
   * connection already authenticated the user and named the device.
   */
  private onConnection(client: Connection, clientAddress: string, preauth: { user: UserRecord; device: string } | null): void {
    const { log } = this.deps;
    const state: ConnectionState = {
      clientAddress, login: preauth?.user.name ?? null, target: preauth?.device ?? null, pubkeyVerified: null, user: preauth?.user ?? null,
    };
    this.connections.add(client);
    const grace = setTimeout(() => {
      if (!state.user) client.end();
    }, this.deps.config.ssh.login_grace);
    grace.unref();

    client.on('error', (err) => log.debug('ssh connection error', { client: clientAddress, error: err.message }));
    client.on('close', () => {
      clearTimeout(grace);
      this.connections.delete(client);
    });
    // Without this every prompt round trip waits on Nagle (~40 ms; NOTES-ssh2.md). Missing from @types/ssh2.
    if (!preauth) (client as Connection & { setNoDelay(on: boolean): void }).setNoDelay(true);

    client.on('authentication', (ctx) => {
      if (preauth) {
        // The inner connection of a ProxyJump: the identity is the outer connection's.
        ctx.accept();
        return;
      }
      void this.authenticate(ctx, state).catch((err: unknown) => {
        log.error('authentication failed with an error', { error: (err as Error).message });
        ctx.reject();
      });
    });

    client.on('ready', () => {
      clearTimeout(grace);
      const user = state.user;
      if (!user) {
        client.end();
        return;
      }
      client.on('session', (accept) => this.onSession(accept(), state, user, preauth ? 'proxyjump' : 'ssh'));
      client.on('tcpip', (accept, reject, info) => {
        this.background(this.onDirectTcpip(accept, reject, info, state, user, preauth !== null));
      });
      client.on('openssh.streamlocal', (_accept, reject, info) => {
        reject();
        this.background(this.refused(user, state, 'FORWARDING_REFUSED', { request: 'direct-streamlocal', socketPath: info.socketPath }));
      });
      client.on('request', (_accept, reject, name, info) => {
        reject?.();
        // Only forwarding requests are worth an audit entry; keepalives and the like are just declined.
        if (/forward/.test(name)) this.background(this.refused(user, state, 'FORWARDING_REFUSED', { request: name, ...(info as unknown as Record<string, unknown>) }));
      });
    });
  }

  private async authenticate(ctx: AuthContext, state: ConnectionState): Promise<void> {
    const name = parseLoginName(ctx.username);
    if (!name) {
      ctx.reject(['publickey', 'keyboard-interactive']);
      return;
    }
    if (state.login !== name.login) state.pubkeyVerified = null;
    state.login = name.login;
    state.target = name.target;

    if (ctx.method === 'publickey') return this.publicKey(ctx, state, name.login);
    if (ctx.method === 'keyboard-interactive') return this.keyboardInteractive(ctx, state, name.login);
    // Never a password alone: every sign-in needs the second factor (R-A.4d).
    ctx.reject(state.pubkeyVerified ? ['keyboard-interactive'] : ['publickey', 'keyboard-interactive']);
  }

  private async publicKey(ctx: PublicKeyAuthContext, state: ConnectionState, login: string): Promise<void> {
    const user = await this.deps.store.getUser(login);
    const match = user?.publicKeys
      .map((line) => utils.parseKey(line))
      .find((k): k is Exclude<typeof k, Error> => !(k instanceof Error) && k.getPublicSSH().equals(ctx.key.data));
    if (!user || !match) {
      ctx.reject(['publickey', 'keyboard-interactive']);
      return;
    }
    if (!ctx.signature || !ctx.blob) {
      ctx.accept(); // "this key would do": the client then signs
      return;
    }
    if (match.verify(ctx.blob, ctx.signature, ctx.hashAlgo) !== true) {
      ctx.reject(['publickey', 'keyboard-interactive']);
      return;
    }
    // First factor done; the TOTP code still has to come by keyboard-interactive.
    state.pubkeyVerified = login;
    ctx.reject(['keyboard-interactive'], true);
  }

  private async keyboardInteractive(ctx: KeyboardAuthContext, state: ConnectionState, login: string): Promise<void> {
    const { authenticator } = this.deps;
    const tell = (message: string, code: ErrorCode): void => {
      // A round with no prompts: OpenSSH prints the instruction, so the user reads why.
      ctx.prompt([], 'Portcullis', `${message} [${code}]`, () => ctx.reject(['publickey', 'keyboard-interactive']));
    };
    const early = await authenticator.precheck(login, `ssh ${state.clientAddress}`);
    if (early && !early.ok) {
      tell(early.message, early.code);
      return;
    }
    const withKey = state.pubkeyVerified === login;
    const prompts = [
      ...(withKey ? [] : [{ prompt: 'Password: ', echo: false }]),
      { prompt: 'TOTP code: ', echo: false },
    ];
    ctx.prompt(prompts, 'Portcullis sign-in', '', (answers) => {
      const password = withKey ? null : (answers[0] ?? '');
      const totp = answers[withKey ? 0 : 1] ?? '';
      void authenticator
        .signIn({ username: login, password, totp, source: `ssh ${state.clientAddress}`, method: withKey ? 'publickey+totp' : 'password+totp' })
        .then((res) => {
          if (res.ok) {
            state.user = res.user;
            ctx.accept();
          } else {
            tell(res.message, res.code);
          }
        })
        .catch(() => ctx.reject());
    });
  }

  private background(p: Promise<unknown>): void {
    inBackground(this.deps.log, 'ssh front door task', p);
  }

  private async refused(user: UserRecord, state: ConnectionState, code: ErrorCode, data: Record<string, unknown>): Promise<void> {
    await this.deps.audit.recordEventually('forwarding.refused', {
      actor: user.name, outcome: 'denied', code, data: { client: state.clientAddress, device: state.target, ...data },
    });
  }

  private onSession(session: Session, state: ConnectionState, user: UserRecord, via: string): void {
    let pty: PseudoTtyInfo | null = null;
    const env: Record<string, string> = {};
    let live: LiveSession | null = null;

    session.on('pty', (accept, _reject, info) => {
      pty = info;
      accept?.();
    });
    session.on('window-change', (accept, _reject, info) => {
      if (live) live.relay.resize(info.cols, info.rows, info.height, info.width);
      else if (pty) pty = { ...pty, cols: info.cols, rows: info.rows, width: info.width, height: info.height };
      accept?.();
    });
    session.on('env', (accept, reject, info) => {
      // Locale only: anything else could change how the device's shell behaves.
      if (/^(LANG|LC_[A-Z]+)$/.test(info.key) && /^[A-Za-z0-9_.@-]{1,64}$/.test(info.val)) {
        env[info.key] = info.val;
        accept?.();
      } else {
        reject?.();
      }
    });
    session.on('signal', (accept, reject, info) => {
      // Only the names RFC 4254 defines: anything else would make ssh2 throw and drop the connection.
      if (!SIGNALS.has(info.name)) {
        reject?.();
        return;
      }
      live?.relay.signal(info.name);
      accept?.();
    });
    session.on('auth-agent', (_accept, reject) => {
      reject?.();
      this.background(this.refused(user, state, 'AGENT_FORWARDING_REFUSED', { request: 'auth-agent-req@openssh.com' }));
    });
    session.on('x11', (_accept, reject, info) => {
      reject?.();
      this.background(this.refused(user, state, 'X11_FORWARDING_REFUSED', { request: 'x11-req', screen: info.screen }));
    });

    const start = async (channel: ServerChannel, kind: 'shell' | 'exec' | 'subsystem', command: string | null, fileTransfer: boolean): Promise<void> => {
      // Accepted at once and paused: an early EOF from the client waits until the device is there.
      channel.pause();
      const eol = pty ? '\r\n' : '\n';
      const fail = (message: string, code: ErrorCode): void => {
        channel.stderr.write(`portcullis: ${message} [${code}]${eol}`);
        channel.exit(1);
        channel.end();
      };
      let target = state.target;
      if (!target) {
        if (kind !== 'shell' || !pty) {
          await this.deps.audit.recordEventually('session.refused', {
            actor: user.name, outcome: 'denied', code: 'TARGET_REQUIRED', data: { client: state.clientAddress, kind, command },
          });
          fail(describeCode('TARGET_REQUIRED'), 'TARGET_REQUIRED');
          return;
        }
        const device: DeviceRecord | null = await pickDevice(channel, user.name, await this.deps.broker.grantedDevices(user, 'ssh'));
        if (!device) {
          channel.exit(0);
          channel.end();
          return;
        }
        target = device.name;
      }
      const ptyReq = pty as PseudoTtyInfo | null;
      const result = await this.deps.broker.openSsh(
        {
          user, deviceName: target, via, clientAddress: state.clientAddress, kind, command, env, fileTransfer,
          pty: ptyReq ? { term: ptyReq.term, cols: ptyReq.cols, rows: ptyReq.rows, width: ptyReq.width, height: ptyReq.height, modes: ptyReq.modes } : null,
        },
        channel,
      );
      if (!result.ok) fail(result.message, result.code);
      else live = result.session;
    };
    const run = (p: Promise<void>, channel: ServerChannel): void => {
      p.catch((err: unknown) => {
        this.deps.log.error('session failed to start', { error: (err as Error).message });
        const line = err instanceof StoreUnavailableError
          ? `portcullis: ${describeCode('STORE_UNAVAILABLE')} [STORE_UNAVAILABLE]\n`
          : 'portcullis: internal error; the session was not opened\n';
        try {
          channel.stderr.write(line);
          channel.exit(1);
          channel.end();
        } catch {
          // the channel is already gone; nothing left to tell
        }
      });
    };

    // accept() returns nothing when this session channel already runs a shell, exec or
    // subsystem (a second request on one channel): ignore such a request.
    session.on('shell', (accept) => {
      const ch = accept() as ServerChannel | undefined;
      if (ch) run(start(ch, 'shell', null, false), ch);
    });
    session.on('exec', (accept, _reject, info) => {
      const ch = accept() as ServerChannel | undefined;
      if (ch) run(start(ch, 'exec', info.command, FILE_TRANSFER_COMMAND.test(info.command)), ch);
    });
    session.on('subsystem', (accept, _reject, info) => {
      const ch = accept() as ServerChannel | undefined;
      if (!ch) return;
      if (info.name === 'sftp') run(start(ch, 'subsystem', 'sftp', true), ch);
      else {
        this.background(this.refused(user, state, 'SUBSYSTEM_REFUSED', { subsystem: info.name }));
        ch.stderr.write(`portcullis: ${describeCode('SUBSYSTEM_REFUSED')} [SUBSYSTEM_REFUSED]\n`);
        ch.exit(1);
        ch.end();
      }
    });
  }

  /**
   * direct-tcpip: a ProxyJump (`ssh -J`) to a registered device's SSH port is answered by an
   * inner SSH server of the gateway, so the session is brokered and recorded like any other;
   * anything else is port forwarding, refused (R-6.3f).
   */
  private async onDirectTcpip(
    accept: () => ServerChannel,
    reject: () => void,
    info: { destIP: string; destPort: number; srcIP: string; srcPort: number },
    state: ConnectionState,
    user: UserRecord,
    inner: boolean,
  ): Promise<void> {
    const devices = inner ? [] : await this.deps.store.listDevices();
    // By address and port first (two devices may share a host), then by name on port 22 or the device's port.
    const sshDevices = devices.filter((d) => d.protocols.includes('ssh'));
    const device = sshDevices.find((d) => (d.host === info.destIP || d.ip === info.destIP) && portOf(d, 'ssh') === info.destPort)
      ?? sshDevices.find((d) => (d.name === info.destIP || d.host === info.destIP || d.ip === info.destIP) && (info.destPort === 22 || info.destPort === portOf(d, 'ssh')));
    if (!device) {
      reject();
      await this.refused(user, state, 'FORWARDING_REFUSED', { request: 'direct-tcpip', destination: `${info.destIP}:${info.destPort}` });
      return;
    }
    const channel = accept();
    const innerServer = this.makeServer((client) => this.onConnection(client, `${state.clientAddress} via ProxyJump`, { user, device: device.name }));
    // ssh2 takes any duplex stream here; its type says Socket.
    innerServer.injectSocket(channel as unknown as Socket);
  }
}
