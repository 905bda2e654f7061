import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Logger } from '../../gateway/log/logger.js';
import { verifyWebhookSignature, WebhookNotifier } from '../../gateway/notify/webhook.js';

const SECRET = 'whsec-test-6f1d2c';

interface LogEntry { level: string; msg: string; fields: Record<string, unknown> }
function memoryLog(): Logger & { entries: LogEntry[] } {
  const entries: LogEntry[] = [];
  const at = (level: string) => (msg: string, fields: Record<string, unknown> = {}) => { entries.push({ level, msg, fields }); };
  return { entries, debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}

interface Received { headers: IncomingHttpHeaders; body: Buffer }
interface Receiver { url: string; received: Received[]; stop(): Promise<void> }

/** A receiver on 127.0.0.1; `answer` sees the n-th request (from 0) and may leave it unanswered. */
async function startReceiver(answer: (res: ServerResponse, n: number) => void, tls?: { key: string; cert: string }): Promise<Receiver> {
  const received: Received[] = [];
  const onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      received.push({ headers: req.headers, body: Buffer.concat(chunks) });
      answer(res, received.length - 1);
    });
  };
  const server: Server = tls ? createHttpsServer(tls, onRequest) : createServer(onRequest);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return {
    url: `${tls ? 'https' : 'http'}://127.0.0.1:${port}/hooks/portcullis`,
    received,
    async stop() {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

const reply = (status: number) => (res: ServerResponse): void => { res.writeHead(status).end('{}'); };
const hang = (): void => undefined;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function waitFor(what: string, cond: () => boolean, ms = 5_000): Promise<void> {
  const until = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

function header(r: Received | undefined, name: string): string {
  const v = r?.headers[name];
  if (typeof v !== 'string') throw new Error(`no ${name} header`);
  return v;
}

function verifies(r: Received | undefined, nowSeconds = Math.floor(Date.now() / 1000), secret: string = SECRET): boolean {
  return verifyWebhookSignature(secret, { timestamp: header(r, 'x-portcullis-timestamp'), signature: header(r, 'x-portcullis-signature') }, r?.body ?? '', nowSeconds);
}

const cleanup: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c();
});
async function receiver(answer: (res: ServerResponse, n: number) => void, tls?: { key: string; cert: string }): Promise<Receiver> {
  const r = await startReceiver(answer, tls);
  cleanup.push(() => r.stop());
  return r;
}
function notifier(opts: ConstructorParameters<typeof WebhookNotifier>[0]): WebhookNotifier {
  const n = new WebhookNotifier(opts);
  cleanup.push(() => n.close());
  return n;
}

describe('access workflow webhooks', () => {
  it('delivers a signed JSON notification that the receiver verifies, and nothing else verifies', async () => {
    const rx = await receiver(reply(204));
    const log = memoryLog();
    const nowMs = 1_900_000_000_123;
    const n = notifier({ url: rx.url, secret: SECRET, log, clock: () => nowMs });
    n.notify('request.approved', { requestId: 'req-42', device: 'ct-01', approver: 'dr.meier' });
    await waitFor('the delivery', () => rx.received.length === 1 && n.pending() === 0);

    const got = rx.received[0];
    const body = JSON.parse(got?.body.toString() ?? '') as Record<string, unknown>;
    expect(body).toEqual({ id: expect.stringMatching(/^[0-9a-f-]{36}$/), event: 'request.approved', at: '2030-03-17T17:46:40.123Z', data: { requestId: 'req-42', device: 'ct-01', approver: 'dr.meier' } });
    expect(header(got, 'content-type')).toBe('application/json');
    expect(header(got, 'x-portcullis-event')).toBe('request.approved');
    expect(header(got, 'x-portcullis-delivery')).toBe(body.id);
    expect(header(got, 'x-portcullis-timestamp')).toBe('1900000000');

    const now = 1_900_000_000;
    expect(verifies(got, now)).toBe(true);
    expect(verifies(got, now + 300)).toBe(true);
    expect(verifies(got, now, 'another-secret')).toBe(false);
    expect(verifies(got, now + 301), 'a stale timestamp').toBe(false);
    expect(verifies(got, now - 301), 'a timestamp from the future').toBe(false);
    const timestamp = header(got, 'x-portcullis-timestamp');
    const signature = header(got, 'x-portcullis-signature');
    const tampered = got?.body.toString().replace('ct-01', 'ct-02') ?? '';
    expect(verifyWebhookSignature(SECRET, { timestamp, signature }, tampered, now), 'a tampered body').toBe(false);
    expect(verifyWebhookSignature(SECRET, { timestamp: String(now + 200), signature }, got?.body ?? '', now), 'a re-dated replay').toBe(false);
    expect(verifyWebhookSignature(SECRET, { timestamp, signature: signature.replace('sha256=', '') }, got?.body ?? '', now)).toBe(false);
    const flipped = `${signature.slice(0, -1)}${signature.endsWith('0') ? '1' : '0'}`;
    expect(verifyWebhookSignature(SECRET, { timestamp, signature: flipped }, got?.body ?? '', now)).toBe(false);
    expect(log.entries.filter((e) => e.level === 'warn' || e.level === 'error')).toEqual([]);
  });

  it('retries a receiver answering 500 twice, with the same delivery id, and keeps later events behind it in order', async () => {
    const rx = await receiver((res, i) => reply(i < 2 ? 500 : 200)(res));
    const log = memoryLog();
    // Each reading of the clock is 1000 s later, so a timestamp reused from an earlier attempt shows.
    let nowMs = 1_900_000_000_000;
    const n = notifier({ url: rx.url, secret: SECRET, log, firstDelayMs: 50, clock: () => (nowMs += 1_000_000) });
    n.notify('request.created', { requestId: 'req-1' });
    n.notify('request.approved', { requestId: 'req-1' });
    expect(n.pending()).toBe(2);
    await waitFor('both deliveries', () => rx.received.length === 4 && n.pending() === 0);

    const events = rx.received.map((r) => header(r, 'x-portcullis-event'));
    expect(events).toEqual(['request.created', 'request.created', 'request.created', 'request.approved']);
    const ids = rx.received.map((r) => header(r, 'x-portcullis-delivery'));
    expect(new Set(ids.slice(0, 3)).size).toBe(1);
    expect(ids[3]).not.toBe(ids[0]);
    const stamps = rx.received.map((r) => Number(header(r, 'x-portcullis-timestamp')));
    expect(stamps.slice(0, 3).every((t, k) => k === 0 || t > (stamps[k - 1] ?? Infinity)), 'each attempt is signed afresh').toBe(true);
    for (const [k, r] of rx.received.entries()) expect(verifies(r, stamps[k])).toBe(true);
    expect(new Set(rx.received.slice(0, 3).map((r) => r.body.toString())).size, 'a retry resends the same body').toBe(1);
    expect(log.entries.filter((e) => e.level === 'warn').map((e) => e.fields.attempt)).toEqual([1, 2]);
    expect(log.entries.filter((e) => e.level === 'error')).toEqual([]);
  });

  it('drops a delivery after maxAttempts with one error line naming event and id, never the secret or body', async () => {
    const rx = await receiver(reply(503));
    const log = memoryLog();
    const n = notifier({ url: rx.url, secret: SECRET, log, maxAttempts: 3, firstDelayMs: 20 });
    n.notify('request.denied', { requestId: 'req-7', reason: 'marker-in-the-body' });
    await waitFor('the last attempt', () => n.pending() === 0);
    await sleep(200);

    expect(rx.received).toHaveLength(3);
    const errors = log.entries.filter((e) => e.level === 'error');
    expect(errors).toHaveLength(1);
    expect(errors[0]?.fields).toMatchObject({ event: 'request.denied', delivery: header(rx.received[0], 'x-portcullis-delivery'), attempt: 3, reason: 'answered 503' });
    const written = JSON.stringify(log.entries);
    expect(written).not.toContain(SECRET);
    expect(written).not.toContain('marker-in-the-body');
    expect(written).not.toContain('/hooks/portcullis');
  });

  it('counts a receiver that does not answer in time as a failed attempt', async () => {
    const rx = await receiver(hang);
    const log = memoryLog();
    const n = notifier({ url: rx.url, secret: SECRET, log, maxAttempts: 2, firstDelayMs: 20, timeoutMs: 200 });
    n.notify('request.expired', { requestId: 'req-9' });
    await waitFor('both attempts to time out', () => n.pending() === 0);
    expect(rx.received).toHaveLength(2);
    expect(log.entries.find((e) => e.level === 'error')?.fields.reason).toMatch(/no answer within 200 ms/);
  });

  it('never makes the workflow wait for a receiver that accepts the connection and hangs', async () => {
    const dead = await receiver(hang);
    const good = await receiver(reply(200));
    const log = memoryLog();
    const stuck = new WebhookNotifier({ url: dead.url, secret: SECRET, log });
    const other = notifier({ url: good.url, secret: SECRET, log });

    const started = performance.now();
    for (let k = 0; k < 200; k++) expect(stuck.notify('request.created', { requestId: `req-${k}` })).toBeUndefined();
    expect(performance.now() - started).toBeLessThan(100);
    await waitFor('the hung request to arrive', () => dead.received.length === 1);

    const sent = performance.now();
    other.notify('request.approved', { requestId: 'req-x' });
    await waitFor('the good receiver to be reached', () => good.received.length === 1 && other.pending() === 0, 1_000);
    expect(performance.now() - sent).toBeLessThan(1_000);
    expect(stuck.pending()).toBe(200);

    // close() gives the hung request its short grace and then ends it.
    const closing = performance.now();
    await stuck.close();
    expect(performance.now() - closing).toBeLessThan(3_000);
    expect(stuck.pending()).toBe(0);
    expect(log.entries.find((e) => e.msg.includes('closed with undelivered'))?.fields.undelivered).toBe(200);
  });

  it('bounds the queue by dropping the oldest waiting notification, with an error line each', async () => {
    const rx = await receiver(hang);
    const log = memoryLog();
    const n = notifier({ url: rx.url, secret: SECRET, log, maxPending: 3 });
    for (const e of ['e1', 'e2', 'e3', 'e4', 'e5']) n.notify(e, {});
    expect(n.pending()).toBe(3);
    expect(log.entries.filter((e) => e.level === 'error').map((e) => [e.msg, e.fields.event])).toEqual([
      ['webhook notification dropped: queue full', 'e2'],
      ['webhook notification dropped: queue full', 'e3'],
    ]);
  });

  it('notify() does not throw on data it cannot serialise, or an event name unfit for a header', () => {
    const log = memoryLog();
    const n = notifier({ url: 'http://127.0.0.1:9/', secret: SECRET, log });
    expect(() => n.notify('request.created', { size: 10n })).not.toThrow();
    expect(() => n.notify('request\r\ncreated', {})).not.toThrow();
    expect(n.pending()).toBe(0);
    expect(log.entries.filter((e) => e.level === 'error')).toHaveLength(2);
  });

  it('lets close() wait briefly for a request on the wire to be answered', async () => {
    const rx = await receiver((res) => { setTimeout(() => reply(200)(res), 300); });
    const log = memoryLog();
    const n = new WebhookNotifier({ url: rx.url, secret: SECRET, log });
    n.notify('request.approved', { requestId: 'req-8' });
    await waitFor('the request to arrive', () => rx.received.length === 1);
    await n.close();
    expect(log.entries.filter((e) => e.level !== 'debug')).toEqual([]);
    expect(log.entries.map((e) => e.msg)).toEqual(['webhook delivered']);
  });

  it('stops retrying at close()', async () => {
    const rx = await receiver(reply(500));
    const log = memoryLog();
    const n = new WebhookNotifier({ url: rx.url, secret: SECRET, log, firstDelayMs: 200 });
    n.notify('request.revoked', { requestId: 'req-3' });
    await waitFor('the first attempt', () => rx.received.length === 1 && log.entries.some((e) => e.level === 'warn'));
    await n.close();
    await sleep(500);
    expect(rx.received).toHaveLength(1);
    expect(n.pending()).toBe(0);
    n.notify('request.revoked', { requestId: 'req-4' });
    await sleep(100);
    expect(rx.received).toHaveLength(1);
  });

  it('leaves nothing running after close(): a process with a hung request and a pending retry exits at once', async () => {
    const dead = await receiver(hang);
    const failing = await receiver(reply(500));
    const module = fileURLToPath(new URL('../../gateway/notify/webhook.ts', import.meta.url));
    const script = `
      const { WebhookNotifier } = await import(${JSON.stringify(module)});
      const log = { debug() {}, info() {}, warn() {}, error() {} };
      const hung = new WebhookNotifier({ url: ${JSON.stringify(dead.url)}, secret: 's', log, timeoutMs: 120000 });
      const retrying = new WebhookNotifier({ url: ${JSON.stringify(failing.url)}, secret: 's', log, firstDelayMs: 120000 });
      // Never closed: its pending retry alone must not keep the process alive either.
      const abandoned = new WebhookNotifier({ url: ${JSON.stringify(failing.url)}, secret: 's', log, firstDelayMs: 120000 });
      hung.notify('request.created', {});
      retrying.notify('request.created', {});
      abandoned.notify('request.created', {});
      // The test says when both receivers have seen their request; stdin is then let go of.
      await new Promise((r) => process.stdin.once('data', r));
      process.stdin.destroy();
      await Promise.all([hung.close(), retrying.close()]);
      process.stdout.write('closed');
    `;
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { stdio: ['pipe', 'pipe', 'pipe'] });
    const exit = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    let out = '';
    child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { out += d.toString(); });
    try {
      await waitFor('both requests from the child', () => dead.received.length === 1 && failing.received.length === 2, 15_000);
      const told = Date.now();
      child.stdin.write('close\n');
      // 2 s of grace for the hung request, then the process must be gone; a live socket or
      // timer would hold it for the two minutes configured above (the bound below is far from
      // both, so a loaded machine cannot tip it either way).
      const exited = await Promise.race([exit, sleep(30_000).then(() => 'still running' as const)]);
      expect(exited, out).toBe(0);
      expect(out).toBe('closed');
      expect(Date.now() - told).toBeLessThan(30_000);
    } finally {
      child.kill('SIGKILL');
    }
  });
});

describe('webhooks to an https receiver', () => {
  let dir = '';
  let tls = { key: '', cert: '' };
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'portcullis-webhook-'));
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '1',
      '-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1',
      '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')], { stdio: 'ignore' });
    tls = { key: readFileSync(join(dir, 'key.pem'), 'utf8'), cert: readFileSync(join(dir, 'cert.pem'), 'utf8') };
  });
  afterAll(() => { if (dir) rmSync(dir, { recursive: true, force: true }); });

  it('delivers when the receiver certificate chains to the configured CA', async () => {
    const rx = await receiver(reply(200), tls);
    const log = memoryLog();
    const n = notifier({ url: rx.url, secret: SECRET, log, ca: tls.cert });
    n.notify('request.approved', { requestId: 'req-5' });
    await waitFor('the delivery', () => rx.received.length === 1 && n.pending() === 0);
    expect(verifies(rx.received[0])).toBe(true);
    expect(log.entries.filter((e) => e.level !== 'debug')).toEqual([]);
  });

  it('refuses an untrusted certificate without the CA, retrying and finally dropping', async () => {
    const rx = await receiver(reply(200), tls);
    const log = memoryLog();
    const n = notifier({ url: rx.url, secret: SECRET, log, maxAttempts: 2, firstDelayMs: 20 });
    n.notify('request.approved', { requestId: 'req-6' });
    await waitFor('the delivery to be dropped', () => n.pending() === 0);
    expect(rx.received).toEqual([]);
    expect(log.entries.filter((e) => e.level === 'warn').map((e) => e.fields.reason)).toEqual([expect.stringMatching(/self[- ]signed certificate/)]);
    expect(log.entries.filter((e) => e.level === 'error')).toHaveLength(1);
  });
});
