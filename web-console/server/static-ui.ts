import { existsSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance, FastifyReply } from 'fastify';

/**
 * The browser app (web-console/ui, built by `npm run build` into dist/ui) served by the gateway
 * itself, under a strict Content Security Policy: scripts, styles and connections from this
 * origin only, no inline script, no framing.
 */
export const CONTENT_SECURITY_POLICY = [
  "default-src 'self'",
  // 'wasm-unsafe-eval' lets the recording player compile its WebAssembly terminal; it allows no JavaScript eval.
  "script-src 'self' 'wasm-unsafe-eval'", "style-src 'self'", "img-src 'self' data:", "font-src 'self'", "connect-src 'self'",
  "frame-ancestors 'none'", "base-uri 'none'", "form-action 'self'", "object-src 'none'",
].join('; ');

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.css': 'text/css; charset=utf-8', '.svg': 'image/svg+xml',
  '.png': 'image/png', '.ico': 'image/x-icon', '.json': 'application/json', '.woff2': 'font/woff2', '.wasm': 'application/wasm', '.map': 'application/json',
};

/** dist/ui, whether this file runs from the sources (tests) or from dist (the CLI). */
export function uiDirectory(): string | null {
  const here = path.dirname(fileURLToPath(import.meta.url));
  for (const candidate of [path.resolve(here, '../../ui'), path.resolve(here, '../../dist/ui')]) {
    if (existsSync(path.join(candidate, 'index.html'))) return candidate;
  }
  return null;
}

export function registerStaticUi(app: FastifyInstance): void {
  const dir = uiDirectory();
  const index = (): string | null => (dir ? readFileSync(path.join(dir, 'index.html'), 'utf8') : null);

  const sendIndex = async (reply: FastifyReply) => {
    const html = index();
    if (html === null) {
      return reply.code(503).type('text/plain; charset=utf-8').send('The web console has not been built: run `npm run build`.');
    }
    return reply.header('content-security-policy', CONTENT_SECURITY_POLICY).type(TYPES['.html'] as string).send(html);
  };

  app.get('/', async (_req, reply) => sendIndex(reply));
  app.get('/assets/*', async (req, reply) => {
    const rel = (req.params as { '*': string })['*'];
    if (!dir || rel.includes('..') || rel.includes('\0')) return reply.code(404).send({ error: { code: 'NOT_FOUND', message: 'Not found.' } });
    const file = path.join(dir, 'assets', rel);
    if (!existsSync(file) || !statSync(file).isFile()) return reply.code(404).send({ error: { code: 'NOT_FOUND', message: 'Not found.' } });
    // Built file names carry their content hash: they never change.
    return reply
      .header('cache-control', 'public, max-age=31536000, immutable')
      .header('content-security-policy', CONTENT_SECURITY_POLICY)
      .type(TYPES[path.extname(file)] ?? 'application/octet-stream')
      .send(readFileSync(file));
  });
  // Other paths that are not the API are the app's own routes (History API): the app answers them.
  app.setNotFoundHandler(async (req, reply) => {
    if (req.method === 'GET' && !req.url.startsWith('/api/') && !path.extname(req.url.split('?')[0] ?? '')) return sendIndex(reply);
    return reply.code(404).send({ error: { code: 'NOT_FOUND', message: 'Not found.' } });
  });
}
