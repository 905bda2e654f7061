import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { isIP, isIPv6, connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';

/** Where the SIEM feed goes, with the files already read (the TLS material). */
export type SyslogTarget =
  | { transport: 'tls'; host: string; port: number; servername: string; ca?: string; cert?: string; key?: string }
  | { transport: 'tcp'; host: string; port: number }
  | { transport: 'udp'; host: string; port: number };

/**
 * One connection to the receiver. `write` resolves when the kernel took the bytes: for TCP that
 * is not yet delivery (the receiver may still die before reading them), which is why the
 * exporter confirms an entry only after the connection outlived it (SyslogExport). For UDP it is
 * all there is: a datagram is sent, never confirmed (RFC 5426).
 */
export interface SyslogConnection {
  readonly stream: boolean;
  write(bytes: Buffer): Promise<void>;
  /** Settles once, with why, when the connection breaks or is closed. */
  readonly closed: Promise<string>;
  /**
   * Closes in order: our FIN, then the receiver's once it has read everything (true), or false
   * when it did not answer within `timeoutMs` (or the connection had broken).
   */
  end(timeoutMs: number): Promise<boolean>;
  destroy(): void;
}

const CONNECT_TIMEOUT_MS = 10_000;

export function openSyslogConnection(t: SyslogTarget): Promise<SyslogConnection> {
  return t.transport === 'udp' ? openUdp(t.host, t.port) : openStream(t);
}

function openStream(t: Exclude<SyslogTarget, { transport: 'udp' }>): Promise<SyslogConnection> {
  return new Promise((resolve, reject) => {
    const socket: Socket = t.transport === 'tls'
      ? tlsConnect({
        // An IP address is checked against the certificate's IP names; SNI carries only DNS names (RFC 6066).
        host: t.host, port: t.port, ...(isIP(t.servername) ? {} : { servername: t.servername }), minVersion: 'TLSv1.2',
        ...(t.ca ? { ca: t.ca } : {}), ...(t.cert && t.key ? { cert: t.cert, key: t.key } : {}),
      })
      : netConnect({ host: t.host, port: t.port });
    const ready = t.transport === 'tls' ? 'secureConnect' : 'connect';
    const timer = setTimeout(() => socket.destroy(new Error(`no connection within ${CONNECT_TIMEOUT_MS / 1000}s`)), CONNECT_TIMEOUT_MS);
    const fail = (err: Error): void => {
      clearTimeout(timer);
      socket.destroy();
      reject(err);
    };
    socket.once('error', fail);
    socket.once(ready, () => {
      clearTimeout(timer);
      socket.off('error', fail);
      resolve(streamConnection(socket));
    });
  });
}

function streamConnection(socket: Socket): SyslogConnection {
  socket.setNoDelay(true);
  // A receiver host that vanished without a FIN is noticed within about a minute, not hours.
  socket.setKeepAlive(true, 10_000);
  socket.resume(); // A syslog receiver sends nothing; read and drop whatever comes so the peer's FIN is seen.
  let peerEnded = false;
  let why = '';
  const closed = new Promise<string>((resolve) => {
    socket.once('error', (err) => { why ||= err.message; });
    socket.once('end', () => {
      peerEnded = true;
      why ||= 'the receiver closed the connection';
    });
    socket.once('close', () => resolve(why || 'closed'));
  });
  return {
    stream: true,
    closed,
    write: (bytes) => new Promise((resolve, reject) => {
      if (socket.destroyed || peerEnded || !socket.writable) {
        reject(new Error(why || 'the connection is closed'));
        return;
      }
      socket.write(bytes, (err) => (err ? reject(err) : resolve()));
    }),
    async end(timeoutMs) {
      if (socket.destroyed) return false;
      socket.end();
      let timer: NodeJS.Timeout | undefined;
      const inTime = await Promise.race([
        closed.then(() => true),
        new Promise<boolean>((resolve) => { timer = setTimeout(() => resolve(false), timeoutMs); }),
      ]);
      clearTimeout(timer);
      socket.destroy();
      return inTime && peerEnded && why === 'the receiver closed the connection';
    },
    destroy: () => { socket.destroy(); },
  };
}

function openUdp(host: string, port: number): Promise<SyslogConnection> {
  return new Promise((resolve, reject) => {
    const socket: UdpSocket = createSocket(isIPv6(host) ? 'udp6' : 'udp4');
    let why = '';
    const close = (): void => {
      try {
        socket.close();
      } catch {
        // already closed
      }
    };
    const closed = new Promise<string>((res) => socket.once('close', () => res(why || 'closed')));
    const fail = (err: Error): void => {
      close();
      reject(err);
    };
    socket.once('error', fail);
    socket.connect(port, host, () => {
      socket.off('error', fail);
      // An ICMP "port unreachable" surfaces as an error on a connected socket: the datagram is
      // lost either way (UDP is lossy by design); closing makes the exporter reconnect.
      socket.once('error', (err) => {
        why = err.message;
        close();
      });
      resolve({
        stream: false,
        closed,
        write: (bytes) => new Promise((res, rej) => socket.send(bytes, (err) => (err ? rej(err) : res()))),
        async end() {
          close();
          return false;
        },
        destroy: close,
      });
    });
  });
}
