import { createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { createSecureContext } from 'node:tls';
import { ConfigError, type GatewayConfig } from '../config/load.js';
import type { Logger } from '../log/logger.js';
import type { Store } from '../store/store.js';
import type { SyslogTarget } from './syslog-connection.js';
import { SyslogExport } from './syslog-export.js';
import { SYSLOG_FACILITIES } from './syslog-message.js';

const DEFAULT_PORT = { tls: 6514, tcp: 514, udp: 514 } as const;
const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/**
 * [syslog] as a SyslogExport, or null when the section is absent. The TLS files are read and
 * checked here, at start-up, so a wrong CA, an unreadable or world-readable key, or a key that
 * does not belong to its certificate stops the gateway with the file, the key and the reason,
 * instead of failing on every connection later.
 */
export function syslogExportFromConfig(config: GatewayConfig, store: Store, log: Logger): SyslogExport | null {
  const s = config.syslog;
  if (!s) return null;
  const base = path.dirname(config.file);
  const fail = (key: string, reason: string): never => {
    throw new ConfigError(config.file, `syslog.${key}`, reason);
  };
  const read = (key: string, file: string): string => {
    const abs = path.resolve(base, file);
    try {
      return readFileSync(abs, 'utf8');
    } catch (err) {
      return fail(key, `cannot read ${abs} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
    }
  };
  const certificates = (key: string, file: string): { pem: string; certs: X509Certificate[] } => {
    const pem = read(key, file);
    const blocks = pem.match(PEM_CERT) ?? [];
    if (blocks.length === 0) fail(key, `${path.resolve(base, file)} holds no PEM certificate (-----BEGIN CERTIFICATE-----)`);
    const certs = blocks.map((b, i) => {
      try {
        return new X509Certificate(b);
      } catch (err) {
        return fail(key, `certificate ${i + 1} in ${path.resolve(base, file)} does not parse (${(err as Error).message})`);
      }
    });
    return { pem, certs };
  };

  const port = s.port ?? DEFAULT_PORT[s.transport];
  let target: SyslogTarget;
  if (s.transport === 'tls') {
    const ca = s.ca ? certificates('ca', s.ca).pem : undefined;
    let cert: string | undefined;
    let key: string | undefined;
    if (s.cert && s.key) {
      const c = certificates('cert', s.cert);
      const keyFile = path.resolve(base, s.key);
      key = read('key', s.key);
      const mode = statSync(keyFile).mode & 0o777;
      if ((mode & 0o077) !== 0) fail('key', `${keyFile} may be read by others (mode ${mode.toString(8).padStart(4, '0')}); chmod 600 it`);
      let keyObject: KeyObject;
      try {
        keyObject = createPrivateKey(key);
      } catch (err) {
        return fail('key', `${keyFile} holds no private key in PEM (${(err as Error).message})`);
      }
      if (!(c.certs[0] as X509Certificate).checkPrivateKey(keyObject)) fail('key', `${keyFile} is not the key of the certificate in ${path.resolve(base, s.cert)}`);
      cert = c.pem;
    }
    try {
      createSecureContext({ ...(ca ? { ca } : {}), ...(cert && key ? { cert, key } : {}) });
    } catch (err) {
      fail(s.ca ? 'ca' : 'cert', `the TLS material is refused (${(err as Error).message})`);
    }
    target = { transport: 'tls', host: s.host, port, servername: s.server_name ?? s.host, ...(ca ? { ca } : {}), ...(cert && key ? { cert, key } : {}) };
  } else {
    target = { transport: s.transport, host: s.host, port };
  }
  return new SyslogExport({
    store, log, node: config.nodeId, target,
    format: {
      facility: SYSLOG_FACILITIES[s.facility], hostname: s.hostname ?? config.nodeId, appName: s.app_name,
      sdId: `portcullis@${s.enterprise_number}`, maxBytes: s.max_message_size,
    },
    framing: s.transport === 'udp' ? 'datagram' : s.transport === 'tcp' ? s.framing : 'octet-counted',
    confirmAfterMs: s.confirm_after, retryMaxMs: s.retry_max, leaseMs: s.lease,
  });
}
