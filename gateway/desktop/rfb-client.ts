import { createCipheriv } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { decodePixelFormat, type PixelFormat } from '../../recordings/rfb-keyframe.js';
import { ConnectorError } from '../connectors/ssh-connector.js';
import { MAX_SCREEN_PIXELS, MAX_SCREEN_SIDE } from './rfb-messages.js';
import { rfbVersionString, SECURITY } from './rfb-wire.js';

export type RfbTarget = { host: string; port: number } | { path: string } | { stream: Duplex };

export interface RfbConnectOptions {
  target: RfbTarget;
  /**
   * The device's VNC password: VNC Authentication is then required. Without one, only security
   * type None is accepted (the gateway's own Xvnc on a 0600 unix socket in the RDP path).
   */
  password?: string | null;
  /** For the whole handshake, from connecting to ServerInit. */
  timeoutMs?: number;
  /** ClientInit's shared flag: false would disconnect whoever else watches the device's screen. */
  shared?: boolean;
}

export interface ServerInit {
  width: number;
  height: number;
  pixelFormat: PixelFormat;
  name: string;
}

export interface RfbConnection {
  /** Paused, with no listeners: the caller attaches its own and resumes it. */
  socket: Duplex;
  version: '3.3' | '3.7' | '3.8';
  serverInit: ServerInit;
  /** Bytes that arrived after ServerInit, before the socket was handed over. */
  pending: Buffer;
}

const MAX_REASON_BYTES = 4096;
const MAX_NAME_BYTES = 64 * 1024;

function reverseBits(b: number): number {
  let r = 0;
  for (let i = 0; i < 8; i++) r |= ((b >> i) & 1) << (7 - i);
  return r;
}

/**
 * The response to a VNC Authentication challenge: the challenge DES-encrypted (ECB) with the
 * password as key. VNC uses each key byte with its bits mirrored, and only the first 8 bytes of
 * the password. OpenSSL 3 has dropped single DES from its default provider, but triple DES with
 * the same key three times is single DES.
 */
export function vncAuthResponse(password: string, challenge: Buffer): Buffer {
  const key = Buffer.alloc(8);
  Buffer.from(password, 'utf8').copy(key, 0, 0, 8);
  for (let i = 0; i < 8; i++) key[i] = reverseBits(key[i] as number);
  const cipher = createCipheriv('des-ede3-ecb', Buffer.concat([key, key, key]), null);
  cipher.setAutoPadding(false);
  return Buffer.concat([cipher.update(challenge), cipher.final()]);
}

/** Reads exact byte counts from a stream during a handshake. */
class HandshakeReader {
  private buf: Buffer = Buffer.alloc(0);
  private waiter: { n: number; resolve: (b: Buffer) => void; reject: (e: Error) => void } | null = null;
  private failure: Error | null = null;
  stage = 'connecting';

  private readonly onData = (chunk: Buffer): void => {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    this.serve();
  };
  private readonly onEnd = (): void => this.abort(new ConnectorError('DEVICE_UNREACHABLE', `the VNC server closed the connection during ${this.stage}`));
  private readonly onError = (err: Error): void => this.abort(err instanceof ConnectorError ? err : new ConnectorError('DEVICE_UNREACHABLE', `${err.message} (during ${this.stage})`));

  constructor(private readonly stream: Duplex) {
    stream.on('data', this.onData);
    stream.on('end', this.onEnd);
    stream.on('close', this.onEnd);
    stream.on('error', this.onError);
  }

  read(n: number, stage: string): Promise<Buffer> {
    this.stage = stage;
    return new Promise((resolve, reject) => {
      if (this.failure) return reject(this.failure);
      this.waiter = { n, resolve, reject };
      this.serve();
    });
  }

  async readString(stage: string, max: number): Promise<string> {
    const len = (await this.read(4, stage)).readUInt32BE(0);
    if (len > max) throw new ConnectorError('DEVICE_UNREACHABLE', `implausible string length ${len} during ${stage}`);
    return len === 0 ? '' : (await this.read(len, stage)).toString('utf8');
  }

  abort(err: Error): void {
    if (this.failure) return;
    this.failure = err;
    const w = this.waiter;
    this.waiter = null;
    w?.reject(err);
  }

  private serve(): void {
    const w = this.waiter;
    if (!w || this.buf.length < w.n) return;
    this.waiter = null;
    const out = this.buf.subarray(0, w.n);
    this.buf = this.buf.subarray(w.n);
    w.resolve(out);
  }

  /** Stops reading and hands back what arrived beyond the handshake. */
  detach(): Buffer {
    this.stream.pause();
    this.stream.off('data', this.onData);
    this.stream.off('end', this.onEnd);
    this.stream.off('close', this.onEnd);
    this.stream.off('error', this.onError);
    return this.buf;
  }
}

function open(target: RfbTarget): Duplex {
  if ('stream' in target) return target.stream;
  const s: Socket = 'path' in target ? connect({ path: target.path }) : connect({ host: target.host, port: target.port });
  if (!('path' in target)) s.setNoDelay(true);
  return s;
}

/** The device's refusal before authentication: a blacklisted gateway is an authentication matter. */
function refusal(reason: string): ConnectorError {
  if (/too many|blacklist/i.test(reason)) {
    return new ConnectorError('DEVICE_AUTH_FAILED', `the VNC server refuses the gateway after repeated authentication failures (${reason})`);
  }
  return new ConnectorError('DEVICE_UNREACHABLE', `the VNC server refused the connection: ${reason || 'no reason given'}`);
}

/**
 * Opens an RFB session to a VNC server (RFB 3.3, 3.7 or 3.8), authenticates, and returns the
 * ServerInit with the socket paused at the first message. Every failure is a ConnectorError:
 * DEVICE_AUTH_FAILED when the password was refused, DEVICE_UNREACHABLE otherwise.
 */
export async function connectRfb(opts: RfbConnectOptions): Promise<RfbConnection> {
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const stream = open(opts.target);
  const reader = new HandshakeReader(stream);
  const timer = setTimeout(() => {
    reader.abort(new ConnectorError('DEVICE_UNREACHABLE', `no answer from the VNC server within ${timeoutMs} ms (during ${reader.stage})`));
  }, timeoutMs);
  try {
    const versionMsg = (await reader.read(12, 'the version handshake')).toString('latin1');
    const m = /^RFB (\d{3})\.(\d{3})\n$/.exec(versionMsg);
    if (!m) throw new ConnectorError('DEVICE_UNREACHABLE', 'the device did not answer as a VNC server');
    const major = Number(m[1]);
    const minorOffered = Number(m[2]);
    const minor: 3 | 7 | 8 = major > 3 || minorOffered >= 8 ? 8 : minorOffered === 7 ? 7 : 3;
    if (major < 3) throw new ConnectorError('DEVICE_UNREACHABLE', `unsupported RFB version ${major}.${minorOffered}`);
    stream.write(rfbVersionString(minor));

    const wanted = opts.password != null ? SECURITY.vncAuth : SECURITY.none;
    let chosen: number;
    if (minor === 3) {
      chosen = (await reader.read(4, 'security negotiation')).readUInt32BE(0);
      if (chosen === SECURITY.invalid) throw refusal(await reader.readString('security negotiation', MAX_REASON_BYTES));
    } else {
      const n = (await reader.read(1, 'security negotiation'))[0] as number;
      if (n === 0) throw refusal(await reader.readString('security negotiation', MAX_REASON_BYTES));
      const offered = [...(await reader.read(n, 'security negotiation'))];
      chosen = offered.includes(wanted) ? wanted : -1;
      if (chosen === -1) {
        throw new ConnectorError('DEVICE_UNREACHABLE', `the VNC server offers security types [${offered.join(', ')}], but the gateway needs ${wanted === SECURITY.vncAuth ? 'VNC Authentication (2)' : 'None (1)'}`);
      }
      stream.write(Buffer.from([chosen]));
    }
    if (chosen !== wanted) {
      throw new ConnectorError('DEVICE_UNREACHABLE', `the VNC server insists on security type ${chosen}, but the gateway needs ${wanted}`);
    }

    if (chosen === SECURITY.vncAuth) {
      const challenge = await reader.read(16, 'VNC authentication');
      stream.write(vncAuthResponse(opts.password ?? '', challenge));
    }
    // RFB 3.3 and 3.7 send no SecurityResult after None; 3.8 always does.
    if (minor === 8 || chosen === SECURITY.vncAuth) {
      const result = (await reader.read(4, 'the security result')).readUInt32BE(0);
      if (result !== 0) {
        const reason = minor === 8 ? await reader.readString('the security result', MAX_REASON_BYTES).catch(() => '') : '';
        if (chosen === SECURITY.vncAuth) {
          throw new ConnectorError('DEVICE_AUTH_FAILED', `the VNC server refused the stored password${reason ? ` (${reason})` : ''}`);
        }
        throw refusal(reason);
      }
    }

    stream.write(Buffer.from([opts.shared === false ? 0 : 1]));
    const init = await reader.read(24, 'ServerInit');
    const width = init.readUInt16BE(0);
    const height = init.readUInt16BE(2);
    const pixelFormat = decodePixelFormat(init, 4);
    const nameLen = init.readUInt32BE(20);
    if (nameLen > MAX_NAME_BYTES) throw new ConnectorError('DEVICE_UNREACHABLE', `implausible desktop name length ${nameLen}`);
    const name = nameLen > 0 ? (await reader.read(nameLen, 'ServerInit')).toString('utf8') : '';
    if (width < 1 || height < 1 || width > MAX_SCREEN_SIDE || height > MAX_SCREEN_SIDE || width * height > MAX_SCREEN_PIXELS) {
      throw new ConnectorError('DEVICE_UNREACHABLE', `the VNC server announced an implausible screen of ${width}x${height}`);
    }
    clearTimeout(timer);
    const pending = reader.detach();
    return { socket: stream, version: minor === 8 ? '3.8' : minor === 7 ? '3.7' : '3.3', serverInit: { width, height, pixelFormat, name }, pending };
  } catch (err) {
    clearTimeout(timer);
    reader.detach();
    // A late socket error after giving up must not go unheard (it would crash the process).
    stream.on('error', () => undefined);
    stream.destroy();
    if (err instanceof ConnectorError) throw err;
    throw new ConnectorError('DEVICE_UNREACHABLE', (err as Error).message);
  }
}
