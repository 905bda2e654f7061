import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { request as httpsRequest } from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * A real OpenID provider (oidc-provider, test/support/oidc-idp-process.mjs) in its own process on
 * loopback, with the people and groups a test gives it, for the gateway's single sign-on
 * (R-A.4d). The test answers its login form; `setUsers` changes the people between sign-ins.
 */
export interface IdpUser {
  sub: string;
  password: string;
  groups?: string[];
  roles?: string[];
  preferred_username?: string;
  email?: string;
}

export interface TestIdp {
  issuer: string;
  clientId: string;
  /** The client secret in a 0600 file, as [sso.oidc] client_secret_file wants it. */
  clientSecretFile: string;
  setUsers(users: Record<string, IdpUser>): void;
  /** The [sso.oidc] table for this IdP; `extra` is appended inside it (group_roles at least). */
  ssoToml(gatewayPort: number, extra: string): string;
  stop(): Promise<void>;
}

const SCRIPT = path.join(path.dirname(fileURLToPath(import.meta.url)), 'oidc-idp-process.mjs');

export async function startTestIdp(gatewayPort: number, users: Record<string, IdpUser>): Promise<TestIdp> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'pc-idp-'));
  const usersFile = path.join(dir, 'users.json');
  const clientSecretFile = path.join(dir, 'client-secret');
  const clientSecret = `secret-${Math.random().toString(36).slice(2)}-${Date.now()}`;
  writeFileSync(clientSecretFile, `${clientSecret}\n`, { mode: 0o600 });
  chmodSync(clientSecretFile, 0o600);
  const setUsers = (u: Record<string, IdpUser>): void => writeFileSync(usersFile, JSON.stringify(u));
  setUsers(users);
  const gateway = `https://127.0.0.1:${gatewayPort}`;
  const settingsFile = path.join(dir, 'settings.json');
  writeFileSync(settingsFile, JSON.stringify({
    clientId: 'portcullis', clientSecret, redirectUri: `${gateway}/api/auth/sso/callback`, postLogoutRedirectUri: `${gateway}/`, usersFile,
  }));
  const child: ChildProcess = spawn(process.execPath, [SCRIPT, settingsFile], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => { stderr += d.toString(); });
  const issuer = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      const line = out.split('\n').find((l) => l.startsWith('{'));
      if (line) resolve((JSON.parse(line) as { issuer: string }).issuer);
    });
    child.once('exit', (code) => reject(new Error(`the test IdP exited (${code}) before it listened: ${stderr}`)));
  });
  return {
    issuer, clientId: 'portcullis', clientSecretFile, setUsers,
    ssoToml: (port, extra) => `[sso.oidc]
display_name = "Hospital IdP"
issuer = "${issuer}"
client_id = "portcullis"
client_secret_file = "${clientSecretFile}"
redirect_url = "https://127.0.0.1:${port}/api/auth/sso/callback"
scopes = ["openid", "profile", "email", "groups", "roles"]
${extra}
`,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface HttpAnswer {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

/**
 * A browser reduced to what single sign-on needs: cookies kept per origin (and dropped when a
 * server expires them), redirects followed by hand so a test can stop at any step and change
 * what the browser sends. TLS is not verified (the gateway's certificate is self-signed).
 */
export class SsoBrowser {
  readonly jar = new Map<string, Map<string, string>>();

  cookies(origin: string): Map<string, string> {
    let m = this.jar.get(origin);
    if (!m) this.jar.set(origin, (m = new Map()));
    return m;
  }

  request(url: string, opts: { method?: string; form?: Record<string, string>; json?: unknown; headers?: Record<string, string> } = {}): Promise<HttpAnswer> {
    const u = new URL(url);
    const jar = this.cookies(u.origin);
    const body = opts.form ? new URLSearchParams(opts.form).toString() : opts.json !== undefined ? JSON.stringify(opts.json) : null;
    const headers: Record<string, string> = {
      ...(jar.size ? { cookie: [...jar].map(([k, v]) => `${k}=${v}`).join('; ') } : {}),
      ...(opts.form ? { 'content-type': 'application/x-www-form-urlencoded' } : {}),
      ...(opts.json !== undefined ? { 'content-type': 'application/json' } : {}),
      ...(body !== null ? { 'content-length': String(Buffer.byteLength(body)) } : {}),
      ...opts.headers,
    };
    const send = u.protocol === 'https:' ? httpsRequest : httpRequest;
    return new Promise((resolve, reject) => {
      const req = send(u, { method: opts.method ?? (body !== null ? 'POST' : 'GET'), headers, rejectUnauthorized: false }, (res) => {
        let text = '';
        res.on('data', (d: Buffer) => { text += d.toString(); });
        res.on('end', () => {
          for (const c of res.headers['set-cookie'] ?? []) {
            const [pair = '', ...attrs] = c.split(';');
            const i = pair.indexOf('=');
            const name = pair.slice(0, i).trim();
            const value = pair.slice(i + 1).trim();
            const expired = attrs.some((a) => /^\s*max-age=0\s*$/i.test(a)) || value === '';
            if (expired) jar.delete(name);
            else jar.set(name, value);
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text });
        });
      });
      req.on('error', reject);
      req.end(body ?? undefined);
    });
  }

  /** Follows redirects from `url` until an answer is not one, or `stop` says to stop at a location; returns the last answer and where it came from. */
  async follow(url: string, stop: (location: URL) => boolean = () => false): Promise<{ answer: HttpAnswer; url: string }> {
    let at = url;
    for (let i = 0; i < 10; i++) {
      const answer = await this.request(at);
      const loc = answer.headers.location;
      if (answer.status < 300 || answer.status >= 400 || !loc) return { answer, url: at };
      const next = new URL(loc, at);
      if (stop(next)) return { answer, url: at };
      at = next.href;
    }
    throw new Error(`too many redirects from ${url}`);
  }
}
