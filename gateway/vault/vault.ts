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

  /**
   * A sign-in in progress that the browser carries between requests (an OIDC flow's state, nonce
   * and PKCE verifier; a person the IdP vouched for who still owes a TOTP code): sealed under the
   * master key, so every node of a cluster opens it and nobody can forge or read it.
   */
  sealSignIn(purpose: string, payload: string): string {
    return this.box.seal(payload, `sign-in:${purpose}`);
  }

  /** null when it does not open (tampered, another purpose, another master key). */
  openSignIn(purpose: string, sealed: string): string | null {
    try {
      return this.box.open(sealed, `sign-in:${purpose}`).toString('utf8');
    } catch {
      return null;
    }
  }
}
