import ssh2, { type CipherAlgorithm, type Client, type ClientChannel, type PseudoTtyOptions, type ServerHostKeyAlgorithm } from 'ssh2';
import type { ErrorCode } from '../../policy/error-codes.js';
import type { DeviceSecret } from '../vault/vault.js';
import { hostKeyAlgorithm, hostKeyAlgorithmsFor } from './host-key.js';

const { Client: SshClient } = ssh2; // CommonJS module

export class ConnectorError extends Error {
  constructor(readonly code: ErrorCode, readonly detail: string) {
    super(`${code}: ${detail}`);
  }
}

export interface SshEndpoint {
  host: string;
  port: number;
  /** Pinned key: type and base64 blob. */
  hostKeyAlgo: string;
  hostKeyBlob: string;
}

// Devices with OpenSSH's default MaxStartups drop connections when many handshakes arrive at
// once: keep a few in flight per device and queue the rest.
const MAX_HANDSHAKES_PER_DEVICE = 8;
const inFlight = new Map<string, number>();
const waiting = new Map<string, Array<() => void>>();

async function handshakeSlot(key: string): Promise<() => void> {
  const n = inFlight.get(key) ?? 0;
  if (n >= MAX_HANDSHAKES_PER_DEVICE) {
    await new Promise<void>((resolve) => {
      const q = waiting.get(key) ?? [];
      q.push(resolve);
      waiting.set(key, q);
    });
  }
  inFlight.set(key, (inFlight.get(key) ?? 0) + 1);
  return () => {
    inFlight.set(key, (inFlight.get(key) ?? 1) - 1);
    const next = waiting.get(key)?.shift();
    if (next) next();
  };
}

/** Opens an authenticated SSH connection to a device, refusing any host key but the pinned one. */
export async function connectSsh(ep: SshEndpoint, secret: DeviceSecret, timeoutMs: number): Promise<Client> {
  const release = await handshakeSlot(`${ep.host}:${ep.port}`);
  try {
    return await new Promise<Client>((resolve, reject) => {
      const client = new SshClient();
      let mismatch: string | null = null;
      const pinned = Buffer.from(ep.hostKeyBlob, 'base64');
      client.once('ready', () => {
        client.setNoDelay(true);
        resolve(client);
      });
      let settled = false;
      client.once('ready', () => { settled = true; });
      // A listener that stays: ssh2 may emit more than one error, and an unheard one would crash the process.
      client.on('error', (err: Error & { level?: string }) => {
        client.end();
        if (settled) return;
        settled = true;
        if (mismatch !== null) reject(new ConnectorError('HOST_KEY_MISMATCH', mismatch));
        else if (err.level === 'client-authentication') reject(new ConnectorError('DEVICE_AUTH_FAILED', 'the device refused the stored credential'));
        else reject(new ConnectorError('DEVICE_UNREACHABLE', err.message));
      });
      client.connect({
        host: ep.host,
        port: ep.port,
        username: secret.username,
        ...(secret.password !== undefined ? { password: secret.password } : {}),
        ...(secret.privateKey !== undefined ? { privateKey: secret.privateKey } : {}),
        readyTimeout: timeoutMs,
        tryKeyboard: false,
        keepaliveInterval: 15_000,
        keepaliveCountMax: 4,
        algorithms: {
          serverHostKey: hostKeyAlgorithmsFor(ep.hostKeyAlgo) as ServerHostKeyAlgorithm[],
          // aes-gcm first: hardware-accelerated and the fastest here (NOTES-ssh2.md).
          cipher: ['aes128-gcm@openssh.com', 'aes256-gcm@openssh.com', 'chacha20-poly1305@openssh.com', 'aes256-ctr', 'aes128-ctr'] satisfies CipherAlgorithm[],
        },
        hostVerifier: (key: Buffer) => {
          if (key.equals(pinned)) return true;
          mismatch = `presented ${hostKeyAlgorithm(key)} key does not match the pinned ${ep.hostKeyAlgo} key`;
          return false;
        },
      });
    });
  } finally {
    release();
  }
}

/** Fetches a device's host key without authenticating (for `portcullis device trust`). */
export function fetchHostKey(host: string, port: number, timeoutMs: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const client = new SshClient();
    let key: Buffer | null = null;
    client.on('error', (err) => {
      if (key) resolve(key);
      else reject(new ConnectorError('DEVICE_UNREACHABLE', err.message));
    });
    client.connect({
      host, port, username: 'portcullis-hostkey-probe', readyTimeout: timeoutMs,
      hostVerifier: (k: Buffer) => {
        key = Buffer.from(k);
        return false;
      },
    });
  });
}

export interface UpstreamRequest {
  kind: 'shell' | 'exec' | 'subsystem';
  command: string | null;
  pty: (PseudoTtyOptions & { term?: string }) | null;
  env: Record<string, string>;
}

export function openUpstreamChannel(client: Client, req: UpstreamRequest): Promise<ClientChannel> {
  return new Promise((resolve, reject) => {
    const cb = (err: Error | undefined, ch: ClientChannel): void => (err ? reject(new ConnectorError('DEVICE_UNREACHABLE', err.message)) : resolve(ch));
    const opts = { env: req.env, ...(req.pty ? { pty: req.pty } : {}) };
    if (req.kind === 'exec') client.exec(req.command ?? '', opts, cb);
    else if (req.kind === 'subsystem') client.subsys(req.command ?? '', cb);
    else client.shell(req.pty ?? false, { env: req.env }, cb);
  });
}
