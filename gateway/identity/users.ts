import { randomBytes } from 'node:crypto';
import ssh2 from 'ssh2';
import type { Role } from '../../policy/types.js';
import { fingerprint } from '../connectors/host-key.js';
import type { Runtime } from '../runtime.js';
import type { UserRecord } from '../store/store.js';
import { checkPasswordStrength, hashPassword } from './password.js';
import { newTotpSecret, totpUri } from './totp.js';

// ssh2 is CommonJS: its named exports are reached through the default export.
const { utils } = ssh2;

export class InputError extends Error {
  constructor(readonly code: 'INVALID_INPUT' | 'NOT_FOUND' | 'ALREADY_EXISTS' | 'FORBIDDEN' | 'GRANT_INVALID', message: string) {
    super(message);
  }
}

export const USER_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

export function generatePassword(): string {
  // 18 random bytes → 24 base64url characters, about 144 bits.
  return randomBytes(18).toString('base64url');
}

export interface NewUser {
  name: string;
  roles: Role[];
  org: string | null;
  password: string;
  expiresAt: number | null;
}

/** Creates a user enrolled in TOTP; returns the enrolment URI, which is shown once and never stored in clear. */
export async function createUser(rt: Runtime, u: NewUser, actor: string): Promise<{ user: UserRecord; otpauthUri: string }> {
  if (!USER_NAME.test(u.name)) throw new InputError('INVALID_INPUT', `user name ${JSON.stringify(u.name)} must be 1-64 letters, digits, '.', '_' or '-'`);
  if (u.roles.length === 0) throw new InputError('INVALID_INPUT', 'a user needs at least one role');
  const weak = checkPasswordStrength(u.password);
  if (weak) throw new InputError('INVALID_INPUT', weak);
  if (await rt.store.getUser(u.name)) throw new InputError('ALREADY_EXISTS', `user ${u.name} already exists`);
  const secret = newTotpSecret();
  const user: UserRecord = {
    name: u.name, roles: u.roles, org: u.org, passwordHash: await hashPassword(u.password), totpSealed: rt.vault.sealTotp(u.name, secret),
    totpLastStep: 0, failedLogins: 0, lockedUntil: null, disabled: false, expiresAt: u.expiresAt, publicKeys: [], nda: null, locale: null, createdAt: rt.clock(),
  };
  await rt.store.createUser(user);
  await rt.audit.record('user.created', { actor, outcome: 'ok', data: { user: u.name, roles: u.roles, org: u.org, expiresAt: u.expiresAt } });
  return { user, otpauthUri: totpUri(secret, rt.config.auth.totp_issuer, u.name) };
}

export async function addPublicKey(rt: Runtime, name: string, keyText: string, actor: string): Promise<string> {
  const user = await rt.store.getUser(name);
  if (!user) throw new InputError('NOT_FOUND', `no user named ${name}`);
  const line = keyText.trim().split('\n')[0] ?? '';
  const parsed = utils.parseKey(line);
  if (parsed instanceof Error || parsed.isPrivateKey()) throw new InputError('INVALID_INPUT', 'expected one OpenSSH public key line (e.g. the contents of id_ed25519.pub)');
  const fp = fingerprint(parsed.getPublicSSH());
  await rt.store.updateUser(name, { publicKeys: [...user.publicKeys, line] });
  await rt.audit.record('user.key_added', { actor, outcome: 'ok', data: { user: name, type: parsed.type, fingerprint: fp } });
  return fp;
}
