import { execFileSync } from 'node:child_process';
import { request } from 'node:https';
import type { IncomingHttpHeaders } from 'node:http';

/** A TOTP code from oathtool, an implementation independent of the gateway's. */
export function oathtoolCode(secret: string, at?: Date): string {
  const args = ['--totp', '-b', ...(at ? ['-N', at.toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC')] : []), secret];
  return execFileSync('oathtool', args).toString().trim();
}

export interface ApiResponse<T = unknown> {
  status: number;
  body: T;
  headers: Record<string, string | string[] | undefined>;
}

/**
 * A client of the JSON API as a browser would be one: it keeps the session cookie the server
 * sets and sends the CSRF token back on state-changing requests.
 */
export class ApiClient {
  cookie: string | null = null;
  csrf: string | null = null;

  constructor(readonly port: number, readonly host = '127.0.0.1') {}

  call<T = Record<string, unknown>>(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<ApiResponse<T>> {
    const payload = body === undefined ? null : Buffer.from(JSON.stringify(body));
    return new Promise((resolve, reject) => {
      const req = request({
        host: this.host, port: this.port, path, method, rejectUnauthorized: false, minVersion: 'TLSv1.2',
        headers: {
          ...(payload ? { 'content-type': 'application/json', 'content-length': String(payload.length) } : {}),
          ...(this.cookie ? { cookie: this.cookie } : {}),
          ...(this.csrf && method !== 'GET' ? { 'x-csrf-token': this.csrf } : {}),
          ...headers,
        },
      }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (d: Buffer) => chunks.push(d));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString();
          const setCookie = res.headers['set-cookie'];
          if (setCookie) {
            const first = (Array.isArray(setCookie) ? setCookie[0] : setCookie) ?? '';
            const pair = first.split(';')[0] ?? '';
            this.cookie = pair.endsWith('=') ? null : pair;
          }
          let parsed: unknown = text;
          try {
            parsed = text ? JSON.parse(text) : null;
          } catch {
            // not JSON: keep the text
          }
          resolve({ status: res.statusCode ?? 0, body: parsed as T, headers: res.headers });
        });
      });
      req.on('error', reject);
      req.end(payload ?? undefined);
    });
  }

  /** A GET whose answer is a stream: status, headers and the first chunk of the body, then the connection is dropped. */
  head(path: string): Promise<ApiResponse<{ error?: { code: string } }>> {
    return new Promise((resolve, reject) => {
      const req = request({
        host: this.host, port: this.port, path, method: 'GET', rejectUnauthorized: false, minVersion: 'TLSv1.2',
        headers: { ...(this.cookie ? { cookie: this.cookie } : {}) },
      }, (res) => {
        res.once('data', (d: Buffer) => {
          let body: { error?: { code: string } } = {};
          try {
            body = JSON.parse(d.toString()) as typeof body;
          } catch {
            // a stream's first chunk, not JSON
          }
          resolve({ status: res.statusCode ?? 0, body, headers: res.headers });
          req.destroy();
        });
      });
      req.on('error', (err) => { if (!req.destroyed) reject(err); });
      req.end();
    });
  }

  /** A GET whose answer is bytes (a desktop recording's frames), whole. */
  bytes(path: string): Promise<{ status: number; body: Buffer; headers: IncomingHttpHeaders }> {
    return new Promise((resolve, reject) => {
      const req = request({
        host: this.host, port: this.port, path, method: 'GET', rejectUnauthorized: false, minVersion: 'TLSv1.2',
        headers: { ...(this.cookie ? { cookie: this.cookie } : {}) },
      }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (d: Buffer) => chunks.push(d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks), headers: res.headers }));
      });
      req.on('error', reject);
      req.end();
    });
  }

  get<T = Record<string, unknown>>(path: string): Promise<ApiResponse<T>> {
    return this.call<T>('GET', path);
  }

  post<T = Record<string, unknown>>(path: string, body: unknown = {}): Promise<ApiResponse<T>> {
    return this.call<T>('POST', path, body);
  }

  /** Signs in with password and a TOTP code (from oathtool unless given); keeps cookie and CSRF token. */
  async login(username: string, password: string, totp: { secret?: string; code?: string }): Promise<ApiResponse<{ csrfToken?: string; error?: { code: string; message: string; detail?: string } }>> {
    const code = totp.code ?? oathtoolCode(totp.secret as string);
    const r = await this.post<{ csrfToken?: string; error?: { code: string; message: string; detail?: string } }>('/api/auth/login', { username, password, totp: code });
    if (r.status === 200 && r.body.csrfToken) this.csrf = r.body.csrfToken;
    return r;
  }
}

/**
 * Codes for one person's successive sign-ins. The gateway accepts each TOTP time step once and
 * never an earlier one (replay refusal), so a test that signs the same person in several times
 * must use later steps: the current one, then the next (inside the ±1 window), then wait.
 */
export class TotpSource {
  private readonly last = new Map<string, number>();

  async code(secret: string): Promise<string> {
    const step = (): number => Math.floor(Date.now() / 30_000);
    let use = Math.max(step(), (this.last.get(secret) ?? 0) + 1);
    while (use > step() + 1) await new Promise((r) => setTimeout(r, 250));
    use = Math.max(use, step());
    this.last.set(secret, use);
    return oathtoolCode(secret, new Date(use * 30_000 + 1000));
  }
}

/** A client signed in as this person with the next unused TOTP code; a refused sign-in throws with the answer. */
export async function signedIn(port: number, who: { name: string; password: string; totpSecret: string }, totp: TotpSource): Promise<ApiClient> {
  const c = new ApiClient(port);
  const r = await c.login(who.name, who.password, { code: await totp.code(who.totpSecret) });
  if (r.status !== 200) throw new Error(`sign-in of ${who.name} answered ${r.status}: ${JSON.stringify(r.body)}`);
  return c;
}
