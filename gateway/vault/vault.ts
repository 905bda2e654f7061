import type { Store } from '../store/store.js';
import { credentialContext, totpContext, type SecretBox } from './secret-box.js';

export interface DeviceSecret {
  username: string;
  password?: string;
  privateKey?: Buffer;
}

/** Device credentials and TOTP seeds, sealed at rest; opened only at the moment of use. */
export class Vault {
  constructor(private readonly box: SecretBox, private readonly store: Store) {}

  sealCredential(device: string, secret: string | Buffer): string {
    return this.box.seal(secret, credentialContext(device));
  }

  async deviceSecret(device: string): Promise<DeviceSecret | null> {
    const c = await this.store.getCredential(device);
    if (!c) return null;
    const plain = this.box.open(c.sealed, credentialContext(device));
    return c.kind === 'password' ? { username: c.username, password: plain.toString('utf8') } : { username: c.username, privateKey: plain };
  }

  sealTotp(user: string, secret: string): string {
    return this.box.seal(secret, totpContext(user));
  }

  openTotp(user: string, sealed: string): string {
    return this.box.open(sealed, totpContext(user)).toString('utf8');
  }
}
