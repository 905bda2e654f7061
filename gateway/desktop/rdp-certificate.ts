/**
 * Reads an RDP device's TLS certificate so it can be pinned at registration, the way
 * `portcullis device trust` pins an SSH host key. RDP only starts TLS after an X.224
 * negotiation on the plain TCP connection (MS-RDPBCGR 2.2.1.1 / 2.2.1.2), so a bare TLS client
 * cannot see the certificate: this speaks that negotiation, then runs a TLS handshake on the
 * same socket and hashes the leaf certificate's DER, which is exactly what
 * `xfreerdp /cert:fingerprint:sha256:…` compares against.
 */
import { createHash, X509Certificate } from 'node:crypto';
import net from 'node:net';
import tls from 'node:tls';

export type RdpCertificateFailure = 'unreachable' | 'timeout' | 'not-rdp' | 'no-tls';

export class RdpCertificateError extends Error {
  constructor(readonly kind: RdpCertificateFailure, readonly detail: string) {
    super(`${kind}: ${detail}`);
  }
}

export interface RdpCertificate {
  /** SHA-256 of the leaf certificate's DER: upper-case hex pairs joined by colons. */
  fingerprint: string;
  subject: string;
  issuer: string;
  validFrom: string;
  validTo: string;
  /** What the device chose in the negotiation: 'tls' (PROTOCOL_SSL) or 'nla' (PROTOCOL_HYBRID[_EX]). */
  protocol: 'tls' | 'nla';
  der: Buffer;
}

const PROTOCOL_SSL = 0x1;
const PROTOCOL_HYBRID = 0x2;
const PROTOCOL_HYBRID_EX = 0x8;

// MS-RDPBCGR 2.2.1.2.2: why a device refused the protocols offered.
const NEG_FAILURES: Record<number, string> = {
  1: 'the device requires TLS but refused it',
  2: 'the device does not allow TLS (standard RDP security only)',
  3: 'the device has no certificate configured',
  4: 'inconsistent negotiation flags',
  5: 'the device requires NLA (CredSSP) and refused it',
  6: 'the device requires TLS with client certificates',
};

/** `aa:bb…`, `AABB…` or `sha256:AA:BB…` → `AA:BB:…`; throws on anything that is not 32 bytes of hex. */
export function normalizeRdpFingerprint(input: string): string {
  const hex = input.trim().replace(/^sha256:/i, '').replace(/:/g, '');
  if (!/^[0-9a-fA-F]{64}$/.test(hex)) throw new Error('an RDP certificate fingerprint is 32 bytes of hex (SHA-256), e.g. AA:BB:…');
  const pairs: string[] = [];
  for (let i = 0; i < hex.length; i += 2) pairs.push(hex.slice(i, i + 2).toUpperCase());
  return pairs.join(':');
}

export function fingerprintOfDer(der: Buffer): string {
  return normalizeRdpFingerprint(createHash('sha256').update(der).digest('hex'));
}

/** TPKT + X.224 Connection Request carrying an RDP_NEG_REQ for TLS and NLA (no cookie). */
function connectionRequest(): Buffer {
  const negReq = Buffer.alloc(8);
  negReq.writeUInt8(0x01, 0); // TYPE_RDP_NEG_REQ
  negReq.writeUInt8(0x00, 1);
  negReq.writeUInt16LE(8, 2);
  negReq.writeUInt32LE(PROTOCOL_SSL | PROTOCOL_HYBRID | PROTOCOL_HYBRID_EX, 4);
  const x224 = Buffer.from([6 + negReq.length, 0xe0, 0, 0, 0, 0, 0]);
  const total = 4 + x224.length + negReq.length;
  const tpkt = Buffer.from([3, 0, total >> 8, total & 0xff]);
  return Buffer.concat([tpkt, x224, negReq]);
}

/** Parses the Connection Confirm; returns the protocol the device selected. */
function parseConfirm(pdu: Buffer): number {
  if (pdu.length < 11 || pdu[0] !== 3 || ((pdu[5] ?? 0) & 0xf0) !== 0xd0) {
    throw new RdpCertificateError('not-rdp', 'the answer is not an X.224 Connection Confirm');
  }
  if (pdu.length < 19) throw new RdpCertificateError('no-tls', 'the device offers standard RDP security only (no TLS, no certificate)');
  const type = pdu[11];
  const value = pdu.readUInt32LE(15);
  if (type === 0x03) throw new RdpCertificateError('no-tls', NEG_FAILURES[value] ?? `negotiation failure code ${value}`);
  if (type !== 0x02) throw new RdpCertificateError('not-rdp', `unexpected negotiation message type ${type ?? '?'}`);
  return value;
}

export interface FetchRdpCertificateOptions {
  timeoutMs?: number;
}

/** Connects to host:port, negotiates, completes a TLS handshake and returns the device's certificate. */
export function fetchRdpCertificate(host: string, port: number, opts: FetchRdpCertificateOptions = {}): Promise<RdpCertificate> {
  const timeoutMs = opts.timeoutMs ?? 5000;
  return new Promise<RdpCertificate>((resolve, reject) => {
    let done = false;
    let tlsSocket: tls.TLSSocket | null = null;
    const sock = net.connect({ host, port });
    const finish = (err: Error | null, cert?: RdpCertificate): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      tlsSocket?.destroy();
      sock.destroy();
      if (err) reject(err);
      else resolve(cert as RdpCertificate);
    };
    const timer = setTimeout(() => finish(new RdpCertificateError('timeout', `no answer from ${host}:${port} within ${timeoutMs} ms`)), timeoutMs);
    sock.on('error', (e: NodeJS.ErrnoException) => finish(new RdpCertificateError('unreachable', `${host}:${port}: ${e.code ?? e.message}`)));
    sock.on('close', () => finish(new RdpCertificateError('not-rdp', `${host}:${port} closed the connection during the RDP negotiation`)));
    sock.once('connect', () => sock.write(connectionRequest()));
    let buf = Buffer.alloc(0);
    const onData = (chunk: Buffer): void => {
      buf = Buffer.concat([buf, chunk]);
      if (buf.length < 4) return;
      if (buf[0] !== 3) return finish(new RdpCertificateError('not-rdp', `${host}:${port} does not speak RDP (no TPKT header)`));
      const len = buf.readUInt16BE(2);
      if (len < 4 || len > 1024) return finish(new RdpCertificateError('not-rdp', `implausible TPKT length ${len}`));
      if (buf.length < len) return;
      sock.off('data', onData);
      let selected: number;
      try {
        selected = parseConfirm(buf.subarray(0, len));
      } catch (e) {
        return finish(e as Error);
      }
      if ((selected & (PROTOCOL_SSL | PROTOCOL_HYBRID | PROTOCOL_HYBRID_EX)) === 0) {
        return finish(new RdpCertificateError('no-tls', 'the device selected standard RDP security (no certificate to pin)'));
      }
      sock.removeAllListeners('close');
      // Nothing secret crosses this handshake and the certificate is what we came for: accept
      // whatever the device presents, including the old TLS versions and small keys that
      // embedded Windows devices still use.
      tlsSocket = tls.connect({ socket: sock, rejectUnauthorized: false, minVersion: 'TLSv1', ciphers: 'DEFAULT:@SECLEVEL=0' });
      tlsSocket.once('secureConnect', () => {
        const peer = tlsSocket?.getPeerCertificate(false);
        if (!peer || !peer.raw) return finish(new RdpCertificateError('no-tls', 'the device presented no certificate'));
        const der = Buffer.from(peer.raw);
        let x509: X509Certificate;
        try {
          x509 = new X509Certificate(der);
        } catch (err) {
          return finish(new RdpCertificateError('no-tls', `the device presented a certificate that does not parse: ${(err as Error).message}`));
        }
        finish(null, {
          fingerprint: fingerprintOfDer(der),
          subject: x509.subject,
          issuer: x509.issuer,
          validFrom: x509.validFrom,
          validTo: x509.validTo,
          protocol: selected === PROTOCOL_SSL ? 'tls' : 'nla',
          der,
        });
      });
      tlsSocket.on('error', (e: Error) => finish(new RdpCertificateError('no-tls', `TLS handshake with ${host}:${port} failed: ${e.message}`)));
      tlsSocket.on('close', () => finish(new RdpCertificateError('no-tls', `${host}:${port} closed the connection during the TLS handshake`)));
    };
    sock.on('data', onData);
  });
}
