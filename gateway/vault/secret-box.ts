import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';

const VERSION = 'v1';

/**
 * AES-256-GCM under the master key. The context string is authenticated (AAD), so a sealed
 * secret copied onto another record (another device's credential, another user's TOTP seed)
 * fails to open instead of being used there.
 */
export class SecretBox {
  constructor(private readonly key: Buffer) {
    if (key.length !== 32) throw new Error('the master key must be 32 bytes');
  }

  seal(plaintext: string | Buffer, context: string): string {
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.key, iv);
    cipher.setAAD(Buffer.from(context, 'utf8'));
    const ct = Buffer.concat([cipher.update(plaintext), cipher.final()]);
    return `${VERSION}:${Buffer.concat([iv, cipher.getAuthTag(), ct]).toString('base64')}`;
  }

  open(sealed: string, context: string): Buffer {
    const [version, body] = sealed.split(':', 2);
    if (version !== VERSION || !body) throw new Error('sealed secret has an unknown format');
    const raw = Buffer.from(body, 'base64');
    if (raw.length < 28) throw new Error(`a sealed secret (${context}) is truncated`);
    // A fixed 16-byte tag: a shortened tag would otherwise be accepted and weaken the check.
    const decipher = createDecipheriv('aes-256-gcm', this.key, raw.subarray(0, 12), { authTagLength: 16 });
    decipher.setAAD(Buffer.from(context, 'utf8'));
    decipher.setAuthTag(raw.subarray(12, 28));
    try {
      return Buffer.concat([decipher.update(raw.subarray(28)), decipher.final()]);
    } catch {
      // Never echo the blob or the key: just say it did not open.
      throw new Error(`a sealed secret (${context}) could not be opened: wrong master key or tampered data`);
    }
  }
}

export const credentialContext = (device: string): string => `device-credential:${device}`;
export const totpContext = (user: string): string => `totp-secret:${user}`;
