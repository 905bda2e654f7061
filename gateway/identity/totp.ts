import { generateSecret, generateSync, generateURI, verifySync } from 'otplib';

/** RFC 6238 TOTP: SHA-1, 6 digits, 30 s, as every authenticator app expects. */
export const TOTP_PERIOD_S = 30;

export function newTotpSecret(): string {
  return generateSecret();
}

export function totpUri(secret: string, issuer: string, account: string): string {
  return generateURI({ issuer, label: account, secret });
}

/** The code for a given time (for tests and tooling; sign-in never generates codes). */
export function totpCode(secret: string, epochMs: number): string {
  return generateSync({ secret, epoch: Math.floor(epochMs / 1000) });
}

/**
 * Checks a code within ±windowSteps steps of now. Returns the time step the code belongs to, so
 * that the caller can refuse a replay (a step at or before the last accepted one), or null.
 */
export function matchTotp(secret: string, code: string, epochMs: number, windowSteps: number): number | null {
  if (!/^\d{6}$/.test(code)) return null;
  const epoch = Math.floor(epochMs / 1000);
  const result = verifySync({ secret, token: code, epoch, epochTolerance: windowSteps * TOTP_PERIOD_S });
  return result.valid ? Math.floor(epoch / TOTP_PERIOD_S) + result.delta : null;
}
