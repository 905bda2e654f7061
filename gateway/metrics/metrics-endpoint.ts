import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { ConfigError, splitListen, type GatewayConfig } from '../config/load.js';
import type { GatewayMetrics } from './gateway-metrics.js';

/**
 * The bearer token of [metrics] token_file: at least 32 characters, in a file only its owner can
 * read (the token reads every figure of the gateway; a group-readable file is refused at start).
 * Null when no token is configured.
 */
export function readMetricsToken(config: GatewayConfig): string | null {
  const file = config.paths.metricsTokenFile;
  if (!file) return null;
  let text: string;
  let mode: number;
  try {
    mode = statSync(file).mode;
    text = readFileSync(file, 'utf8').trim();
  } catch (err) {
    throw new ConfigError(config.file, 'metrics.token_file', `cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  if ((mode & 0o077) !== 0) throw new ConfigError(config.file, 'metrics.token_file', `${file} is readable by others (mode ${(mode & 0o777).toString(8)}); chmod 600 it`);
  if (!/^[\x21-\x7e]{32,512}$/.test(text)) throw new ConfigError(config.file, 'metrics.token_file', `${file} must hold one token of 32-512 printable characters (e.g. openssl rand -hex 32)`);
  return text;
}

const digest = (s: string): Buffer => createHash('sha256').update(s).digest();

/** Whether an Authorization header carries the token (compared in constant time). */
export function bearerMatches(header: string | undefined, token: string): boolean {
  const m = /^Bearer ([\x21-\x7e]+)$/i.exec(header ?? '');
  return m !== null && timingSafeEqual(digest(m[1] as string), digest(token));
}

const REFUSED = 'a bearer token is required: Authorization: Bearer <the token in [metrics] token_file>\n';

/**
 * /metrics on the console's HTTPS server, for the bearer token only: a browser session's cookie
 * never opens it (a console user's rights say nothing about monitoring, and a cookie-authenticated
 * GET is what another site could make a signed-in browser fetch).
 */
export function serveMetricsOnConsole(app: FastifyInstance, metrics: GatewayMetrics, token: string): void {
  app.get('/metrics', async (req, reply) => {
    if (!bearerMatches(req.headers.authorization, token)) {
      return reply.code(401).header('www-authenticate', 'Bearer realm="portcullis-metrics"').type('text/plain').send(REFUSED);
    }
    const { contentType, body } = await metrics.text();
    return reply.type(contentType).send(body);
  });
}

export interface MetricsListener {
  address: AddressInfo;
  close(): Promise<void>;
}

/** The separate plain-HTTP listener ([metrics] listen, loopback only): /metrics and nothing else. */
export async function startMetricsListener(listen: string, metrics: GatewayMetrics, token: string | null): Promise<MetricsListener> {
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '').split('?')[0];
    if (req.method !== 'GET' || path !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('only GET /metrics here\n');
      return;
    }
    if (token !== null && !bearerMatches(req.headers.authorization, token)) {
      res.writeHead(401, { 'content-type': 'text/plain', 'www-authenticate': 'Bearer realm="portcullis-metrics"' }).end(REFUSED);
      return;
    }
    metrics.text().then(({ contentType, body }) => {
      res.writeHead(200, { 'content-type': contentType, 'cache-control': 'no-store' }).end(body);
    }, () => {
      res.writeHead(500, { 'content-type': 'text/plain' }).end('metrics could not be collected\n');
    });
  });
  const { host, port } = splitListen(listen);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return {
    address: server.address() as AddressInfo,
    close: () => new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    }),
  };
}
