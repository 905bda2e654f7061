import { createHmac, randomUUID, timingSafeEqual } from 'node:crypto';
import { Agent as HttpAgent, request as httpRequest, type ClientRequest, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { rootCertificates } from 'node:tls';
import { inBackground } from '../log/background.js';
import type { Logger } from '../log/logger.js';

export interface WebhookNotifierOptions {
  url: string;
  secret: Buffer | string;
  log: Logger;
  /** Attempts per delivery, the first included. */
  maxAttempts?: number;
  firstDelayMs?: number;
  maxDelayMs?: number;
  /** Whole request, connect to end of response. */
  timeoutMs?: number;
  /** Undelivered notifications kept while the receiver is failing; beyond it the oldest is dropped. */
  maxPending?: number;
  /** PEM of a CA trusted in addition to the usual public roots (a hospital's internal CA). */
  ca?: string;
  /** Milliseconds since the epoch; stamps `at` and the signed timestamp. */
  clock?: () => number;
}

interface Delivery {
  id: string;
  event: string;
  body: string;
  attempts: number;
}

// close() is called on shutdown; a hung receiver must not hold the gateway's exit for long.
const CLOSE_GRACE_MS = 2_000;
// Header-safe and short: the event name travels in x-portcullis-event.
const EVENT_NAME = /^[\x21-\x7e]{1,200}$/;
const SIGNATURE = /^sha256=([0-9a-f]{64})$/i;
const TIMESTAMP = /^\d{1,15}$/;

function sign(secret: Buffer, timestamp: string, rawBody: string | Buffer): Buffer {
  // The timestamp is inside the MAC so a captured request cannot be replayed later with a fresh one.
  return createHmac('sha256', secret).update(`${timestamp}.`).update(rawBody).digest();
}

/**
 * What a receiver runs on each request: true only when the signature matches the raw body bytes
 * as received (before any JSON parsing) and the timestamp is within `toleranceSeconds` of now,
 * either way, so old captured requests are refused. Receivers should also drop repeated
 * `x-portcullis-delivery` ids: a retry after a lost answer carries the same id.
 */
export function verifyWebhookSignature(
  secret: Buffer | string,
  headers: { timestamp: string; signature: string },
  rawBody: string | Buffer,
  nowSeconds: number,
  toleranceSeconds = 300,
): boolean {
  if (!TIMESTAMP.test(headers.timestamp)) return false;
  if (Math.abs(nowSeconds - Number(headers.timestamp)) > toleranceSeconds) return false;
  const hex = SIGNATURE.exec(headers.signature)?.[1];
  if (hex === undefined) return false;
  const key = typeof secret === 'string' ? Buffer.from(secret) : secret;
  if (key.length === 0) return false;
  return timingSafeEqual(Buffer.from(hex, 'hex'), sign(key, headers.timestamp, rawBody));
}

/**
 * Signed JSON POSTs to one receiver, retried with backoff, never holding up the caller.
 *
 * Deliveries go one at a time in the order they were notified, and a delivery waiting for its
 * retry holds back the ones behind it: a receiver then sees "approved" before "revoked" for the
 * same request. The price is that one delivery the receiver keeps refusing delays the others for
 * its whole retry schedule; memory stays bounded by `maxPending` however long the receiver is down.
 */
export class WebhookNotifier {
  private readonly target: URL;
  private readonly secret: Buffer;
  private readonly log: Logger;
  private readonly maxAttempts: number;
  private readonly firstDelayMs: number;
  private readonly maxDelayMs: number;
  private readonly timeoutMs: number;
  private readonly maxPending: number;
  private readonly clock: () => number;
  private readonly agent: HttpAgent;
  private readonly request: typeof httpRequest;
  /** Webhook paths often carry a token (Slack, Teams), so logs name only the origin. */
  private readonly receiver: string;

  private readonly waiting: Delivery[] = [];
  private current: Delivery | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private attempt: Promise<void> | undefined;
  private closed = false;

  /** Throws on a bad url or empty secret: a configuration error belongs at startup, not at the first event. */
  constructor(opts: WebhookNotifierOptions) {
    this.target = new URL(opts.url);
    if (this.target.protocol !== 'https:' && this.target.protocol !== 'http:') {
      throw new Error(`webhook url must be http or https, not ${this.target.protocol}`);
    }
    this.secret = Buffer.from(opts.secret);
    if (this.secret.length === 0) throw new Error('webhook secret is empty');
    this.log = opts.log;
    this.maxAttempts = Math.max(1, opts.maxAttempts ?? 8);
    this.firstDelayMs = opts.firstDelayMs ?? 1_000;
    this.maxDelayMs = opts.maxDelayMs ?? 300_000;
    this.timeoutMs = opts.timeoutMs ?? 10_000;
    this.maxPending = Math.max(1, opts.maxPending ?? 10_000);
    this.clock = opts.clock ?? Date.now;
    this.receiver = this.target.origin;
    // An own agent, so close() can end every socket this notifier opened and nothing else's.
    if (this.target.protocol === 'https:') {
      // Node's `ca` replaces the public roots; an internal CA is meant to be added to them.
      const ca = opts.ca === undefined ? undefined : [...rootCertificates, opts.ca];
      this.agent = new HttpsAgent({ keepAlive: true, maxSockets: 1, ...(ca ? { ca } : {}) });
      this.request = httpsRequest;
    } else {
      this.agent = new HttpAgent({ keepAlive: true, maxSockets: 1 });
      this.request = httpRequest;
      const h = this.target.hostname;
      if (h !== '127.0.0.1' && h !== 'localhost' && h !== '[::1]') {
        this.log.warn('webhook receiver is plain http: notifications are signed but readable on the network', { receiver: this.receiver });
      }
    }
  }

  /** Queues the event and returns at once; delivery failures are logged, never thrown. */
  notify(event: string, data: Record<string, unknown>): void {
    try {
      if (this.closed) {
        this.log.error('webhook notification dropped: notifier is closed', { event });
        return;
      }
      if (!EVENT_NAME.test(event)) {
        this.log.error('webhook notification dropped: event name is not printable ASCII', { event: JSON.stringify(event).slice(0, 80) });
        return;
      }
      const id = randomUUID();
      const body = JSON.stringify({ id, event, at: new Date(this.clock()).toISOString(), data });
      this.makeRoom();
      if (this.pending() >= this.maxPending) {
        this.log.error('webhook notification dropped: queue full', { event, delivery: id, receiver: this.receiver });
        return;
      }
      this.waiting.push({ id, event, body, attempts: 0 });
      this.next();
    } catch (err) {
      // Unserialisable data (a BigInt, a cycle) is the caller's bug, but must not fail the workflow.
      this.log.error('webhook notification dropped', { event, error: (err as Error).message });
    }
  }

  /** Deliveries not yet accepted by the receiver, the one being attempted included. */
  pending(): number {
    return this.waiting.length + (this.current ? 1 : 0);
  }

  /**
   * Stops retrying, gives a request already on the wire up to 2 s to be answered, then ends
   * every socket. What is still pending is dropped (and counted in one log line).
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    if (this.attempt) {
      let grace: NodeJS.Timeout | undefined;
      await Promise.race([this.attempt, new Promise<void>((r) => { grace = setTimeout(r, CLOSE_GRACE_MS); })]);
      clearTimeout(grace);
    }
    this.agent.destroy();
    const left = this.pending();
    this.waiting.length = 0;
    this.current = undefined;
    if (left > 0) this.log.error('webhook notifier closed with undelivered notifications', { undelivered: left, receiver: this.receiver });
  }

  private makeRoom(): void {
    // The one being attempted is kept: it is already partly through its schedule, and cancelling
    // a request on the wire would leave the receiver unsure whether it was delivered.
    while (this.pending() >= this.maxPending && this.waiting.length > 0) {
      const dropped = this.waiting.shift();
      this.log.error('webhook notification dropped: queue full', { event: dropped?.event, delivery: dropped?.id, receiver: this.receiver });
    }
  }

  private next(): void {
    if (this.closed || this.current) return;
    this.current = this.waiting.shift();
    if (this.current) this.start(this.current);
  }

  private start(d: Delivery): void {
    const attempt = this.deliver(d);
    this.attempt = attempt;
    inBackground(this.log, 'webhook delivery', attempt.finally(() => {
      if (this.attempt === attempt) this.attempt = undefined;
    }));
  }

  private async deliver(d: Delivery): Promise<void> {
    d.attempts += 1;
    const failure = await this.post(d);
    const fields = { event: d.event, delivery: d.id, attempt: d.attempts, receiver: this.receiver };
    if (failure === undefined) {
      // Also during close()'s grace, so the delivery is not then counted as undelivered.
      this.log.debug('webhook delivered', fields);
    } else if (this.closed) {
      return;
    } else if (d.attempts >= this.maxAttempts) {
      this.log.error('webhook notification dropped after the last attempt', { ...fields, reason: failure });
    } else {
      const delayMs = this.retryDelay(d.attempts);
      this.log.warn('webhook attempt failed, will retry', { ...fields, reason: failure, retryInMs: delayMs });
      this.retryTimer = setTimeout(() => {
        this.retryTimer = undefined;
        this.start(d);
      }, delayMs);
      // A pending retry alone should not keep a process alive that has nothing else to do.
      this.retryTimer.unref();
      return;
    }
    this.current = undefined;
    this.next();
  }

  private retryDelay(failedAttempts: number): number {
    const base = Math.min(this.firstDelayMs * 2 ** (failedAttempts - 1), this.maxDelayMs);
    // ±20% so many gateways retrying a receiver that came back do not arrive in lockstep.
    return Math.round(base * (0.8 + Math.random() * 0.4));
  }

  /** Resolves with undefined when the receiver answered 2xx, otherwise with the reason; never rejects. */
  private post(d: Delivery): Promise<string | undefined> {
    return new Promise((resolve) => {
      let status: number | undefined;
      let settled = false;
      let req: ClientRequest | undefined;
      const verdict = (otherwise: string): string | undefined => {
        if (status === undefined) return otherwise;
        return status >= 200 && status < 300 ? undefined : `answered ${status}`;
      };
      const settle = (reason: string | undefined): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve(reason);
      };
      const timer = setTimeout(() => {
        // A 2xx already received counts even if the rest of the answer never comes.
        settle(verdict(`no answer within ${this.timeoutMs} ms`));
        req?.destroy();
      }, this.timeoutMs);
      timer.unref();
      try {
        // Signed per attempt: a retry minutes later must still look fresh to the receiver.
        const timestamp = String(Math.floor(this.clock() / 1000));
        const signature = `sha256=${sign(this.secret, timestamp, d.body).toString('hex')}`;
        req = this.request(this.target, {
          method: 'POST',
          agent: this.agent,
          headers: {
            'content-type': 'application/json',
            'content-length': Buffer.byteLength(d.body),
            'x-portcullis-event': d.event,
            'x-portcullis-delivery': d.id,
            'x-portcullis-timestamp': timestamp,
            'x-portcullis-signature': signature,
          },
        }, (res: IncomingMessage) => {
          status = res.statusCode;
          // Read and discard the answer so the socket can be reused; its content is not needed.
          res.resume();
          res.once('end', () => settle(verdict('')));
          res.once('error', (e: Error) => settle(verdict(e.message)));
          res.once('close', () => settle(verdict('connection closed')));
        });
        req.once('error', (e: Error) => settle(verdict(e.message)));
        req.once('close', () => settle(verdict('connection closed')));
        req.end(d.body);
      } catch (err) {
        settle((err as Error).message);
      }
    });
  }
}
