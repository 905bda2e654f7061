import { chmodSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import selfsigned from 'selfsigned';
import ssh2 from 'ssh2';
import type { GatewayConfig } from './config/load.js';
import { createUser, generatePassword } from './identity/users.js';
import { createLogger, type Logger } from './log/logger.js';
import { openRuntime } from './runtime.js';
import { ensureMasterKey } from './vault/master-key.js';

// ssh2 is CommonJS: its named exports are reached through the default export.
const { utils } = ssh2;

/**
 * An Ed25519 host key in OpenSSH format. ssh2's generator drops a leading zero byte of the public
 * key about once in 270 keys (a 31-byte key: "Malformed OpenSSH private key" when the gateway then
 * reads it), so every key is parsed back before it is used, and a bad one is made again.
 */
export function generateHostKey(): { private: string; public: string } {
  for (let attempt = 0; attempt < 20; attempt++) {
    const pair = utils.generateKeyPairSync('ed25519', { comment: 'portcullis-gateway' });
    const parsed = utils.parseKey(pair.private);
    if (!(parsed instanceof Error) && parsed.getPublicSSH().length === 51) return pair;
  }
  throw new Error('could not generate a valid Ed25519 host key');
}

export interface InitResult {
  created: string[];
  admin: { name: string; password: string | null; otpauthUri: string } | null;
}

function writeSecretFile(file: string, content: string): void {
  writeFileSync(file, content, { mode: 0o600, flag: 'wx' });
  chmodSync(file, 0o600);
}

/**
 * Creates what a fresh gateway needs and is idempotent: the data directory, the master key,
 * the SSH host key, the web certificate, the database, and the first admin (whose password, if
 * generated, and TOTP enrolment URI are returned once and never stored in clear).
 */
export async function initialize(config: GatewayConfig, opts: { adminName?: string; adminPassword?: string; log?: Logger } = {}): Promise<InitResult> {
  const created: string[] = [];
  mkdirSync(config.dataDir, { recursive: true, mode: 0o700 });
  mkdirSync(config.paths.recordings, { recursive: true, mode: 0o750 });
  if (ensureMasterKey(config.paths.masterKey)) created.push(config.paths.masterKey);
  if (!existsSync(config.paths.hostKey)) {
    const pair = generateHostKey();
    writeSecretFile(config.paths.hostKey, pair.private);
    writeFileSync(`${config.paths.hostKey}.pub`, `${pair.public}\n`, { mode: 0o644 });
    created.push(config.paths.hostKey);
  }
  if (!existsSync(config.paths.tlsCert) || !existsSync(config.paths.tlsKey)) {
    const now = new Date();
    const pems = await selfsigned.generate([{ name: 'commonName', value: 'portcullis' }], {
      keyType: 'ec', curve: 'P-256', algorithm: 'sha256', notBeforeDate: now,
      notAfterDate: new Date(now.getTime() + 397 * 86_400_000),
      extensions: [{ name: 'subjectAltName', altNames: [{ type: 2, value: 'localhost' }, { type: 7, ip: '127.0.0.1' }] }],
    });
    writeSecretFile(config.paths.tlsKey, pems.private);
    writeFileSync(config.paths.tlsCert, pems.cert, { mode: 0o644 });
    created.push(config.paths.tlsCert);
  }
  const rt = await openRuntime(config, { log: opts.log ?? createLogger('warn') });
  try {
    let admin: InitResult['admin'] = null;
    if ((await rt.store.listUsers()).length === 0) {
      const name = opts.adminName ?? 'admin';
      const password = opts.adminPassword ?? generatePassword();
      const { otpauthUri } = await createUser(rt, { name, roles: ['admin'], org: null, password, expiresAt: null }, 'portcullis-init');
      admin = { name, password: opts.adminPassword ? null : password, otpauthUri: otpauthUri as string };
      created.push(`admin account ${name}`);
    }
    return { created, admin };
  } finally {
    await rt.close();
  }
}

export function isInitialized(config: GatewayConfig): boolean {
  // The Redis backend has no local file to look for; its first admin is checked against the store by init itself.
  const storeReady = config.store.backend !== 'sqlite' || existsSync(config.paths.database);
  return existsSync(config.paths.masterKey) && existsSync(config.paths.hostKey) && storeReady
    && existsSync(config.paths.tlsCert) && existsSync(config.paths.tlsKey);
}
