import { readFileSync, statSync } from 'node:fs';
import * as oidc from 'openid-client';
import type { ErrorCode } from '../../policy/error-codes.js';
import { ConfigError, type GatewayConfig } from '../config/load.js';
import type { Logger } from '../log/logger.js';

export type SsoOidcConfig = NonNullable<GatewayConfig['sso']['oidc']>;

/** The browser's side of one authorization-code flow, kept sealed in a cookie between start and callback. */
export interface SsoFlow {
  state: string;
  nonce: string;
  /** The PKCE code verifier (RFC 7636); only its S256 challenge went to the IdP. */
  verifier: string;
  /** Epoch ms after which the callback is refused. */
  expiresAt: number;
}

/** How long a person may take at the IdP between the start of a flow and its callback. */
export const SSO_FLOW_TTL_MS = 10 * 60_000;

/** The claims of a verified ID token (signature, issuer, audience, expiry, nonce checked by openid-client). */
export type IdTokenClaims = oidc.IDToken;

export class SsoError extends Error {
  constructor(readonly code: ErrorCode, readonly detail: string) {
    super(detail);
    this.name = 'SsoError';
  }
}

/**
 * The client secret, from its own file, readable by its owner only (like the master key): a
 * secret file others can read stops start-up instead of being used.
 */
export function readClientSecret(config: GatewayConfig): string {
  const file = config.paths.ssoClientSecret;
  const key = 'sso.oidc.client_secret_file';
  if (!file) throw new ConfigError(config.file, key, 'no client secret file');
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(config.file, key, `cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  if ((statSync(file).mode & 0o077) !== 0) throw new ConfigError(config.file, key, `${file} is readable by group or others; chmod 600 it`);
  const secret = text.trim();
  if (secret === '' || secret.includes('\n')) throw new ConfigError(config.file, key, `${file} must hold the client secret on one line`);
  return secret;
}

const isLoopbackHttp = (u: URL): boolean => u.protocol === 'http:';

/** An error's own words, short, for the audit entry and the log (openid-client's messages carry no token or secret). */
function said(err: unknown): string {
  const e = err as { code?: unknown; error?: unknown; message?: unknown };
  const parts = [typeof e.code === 'string' ? e.code : null, typeof e.error === 'string' ? e.error : null, typeof e.message === 'string' ? e.message : String(err)];
  return parts.filter(Boolean).join(': ').slice(0, 300);
}

/**
 * The relying party of the hospital's OpenID provider (R-A.4d): authorization-code flow with PKCE
 * (S256), state and nonce, the provider found by discovery from its issuer. openid-client checks
 * the ID token's signature, issuer, audience, expiry and nonce, the state and the `iss` response
 * parameter; nothing here loosens those checks. Discovery waits for the first sign-in (the
 * gateway starts while the IdP is down) and is tried again after a failure.
 */
export class OidcClient {
  private discovered: Promise<oidc.Configuration> | null = null;

  constructor(readonly settings: SsoOidcConfig, private readonly secret: string, private readonly log: Logger) {}

  private configuration(): Promise<oidc.Configuration> {
    if (!this.discovered) {
      const issuer = new URL(this.settings.issuer);
      // Plain http passes the config schema only on loopback (a local or test IdP).
      const options = isLoopbackHttp(issuer) ? { execute: [oidc.allowInsecureRequests] } : {};
      const pending = oidc.discovery(issuer, this.settings.client_id, { redirect_uris: [this.settings.redirect_url], response_types: ['code'] }, oidc.ClientSecretBasic(this.secret), options);
      this.discovered = pending;
      pending.catch(() => {
        if (this.discovered === pending) this.discovered = null;
      });
    }
    return this.discovered;
  }

  private async reachable(): Promise<oidc.Configuration> {
    try {
      return await this.configuration();
    } catch (err) {
      this.log.warn('the OpenID provider could not be discovered', { issuer: this.settings.issuer, error: said(err) });
      throw new SsoError('SSO_IDP_UNAVAILABLE', `discovery of ${this.settings.issuer} failed: ${said(err)}`);
    }
  }

  /** Where to send the browser, and what it must bring back. */
  async begin(now: number): Promise<{ url: URL; flow: SsoFlow }> {
    const config = await this.reachable();
    const flow: SsoFlow = { state: oidc.randomState(), nonce: oidc.randomNonce(), verifier: oidc.randomPKCECodeVerifier(), expiresAt: now + SSO_FLOW_TTL_MS };
    const url = oidc.buildAuthorizationUrl(config, {
      redirect_uri: this.settings.redirect_url,
      scope: this.settings.scopes.join(' '),
      state: flow.state,
      nonce: flow.nonce,
      code_challenge: await oidc.calculatePKCECodeChallenge(flow.verifier),
      code_challenge_method: 'S256',
    });
    return { url, flow };
  }

  /**
   * The IdP's answer at the callback, checked against the flow this browser started, exchanged
   * for tokens, and the verified ID token's claims returned. Any failure is SSO_FAILED.
   */
  async finish(callbackUrl: URL, flow: SsoFlow, now: number): Promise<IdTokenClaims> {
    if (flow.expiresAt <= now) throw new SsoError('SSO_FAILED', 'the sign-in flow expired before the identity provider answered');
    const config = await this.reachable();
    let claims: IdTokenClaims | undefined;
    try {
      const tokens = await oidc.authorizationCodeGrant(config, callbackUrl, {
        pkceCodeVerifier: flow.verifier, expectedState: flow.state, expectedNonce: flow.nonce, idTokenExpected: true,
      });
      claims = tokens.claims();
    } catch (err) {
      throw new SsoError('SSO_FAILED', said(err));
    }
    if (!claims) throw new SsoError('SSO_FAILED', 'the identity provider returned no ID token');
    return claims;
  }

  /**
   * RP-initiated logout: where the browser ends the IdP's session too, when the IdP's discovery
   * names an end_session_endpoint (null otherwise, or when the IdP cannot be reached: the
   * console session is ended either way).
   */
  async endSessionUrl(): Promise<string | null> {
    let config: oidc.Configuration;
    try {
      config = await this.configuration();
    } catch {
      return null;
    }
    if (!config.serverMetadata().end_session_endpoint) return null;
    return oidc.buildEndSessionUrl(config, {
      client_id: this.settings.client_id,
      post_logout_redirect_uri: new URL('/', this.settings.redirect_url).href,
    }).href;
  }
}
