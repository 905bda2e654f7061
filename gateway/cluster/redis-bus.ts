import type { RedisClientType } from 'redis';
import type { Logger } from '../log/logger.js';
import type { RedisStore } from '../store/redis-store.js';
import { parseBusMessage, type BusMessage, type ClusterBus } from './bus.js';

/**
 * The cluster bus on Redis pub/sub, on a channel under the store's prefix (deployments sharing a
 * Redis do not hear each other). Subscribing needs a connection of its own; it reconnects and
 * resubscribes by itself after an outage.
 */
export class RedisBus implements ClusterBus {
  private readonly handlers: Array<(m: BusMessage) => void> = [];
  private readonly channel: string;

  private constructor(private readonly store: RedisStore, private readonly sub: RedisClientType, private readonly log: Logger) {
    this.channel = `${store.prefix}bus`;
  }

  static async open(store: RedisStore, log: Logger): Promise<RedisBus> {
    const sub = store.duplicateClient();
    sub.on('error', () => undefined); // the store's own client reports the outage
    const bus = new RedisBus(store, sub, log);
    await sub.connect();
    await sub.subscribe(bus.channel, (text: string) => {
      const m = parseBusMessage(text);
      if (!m) {
        log.warn('ignored a malformed cluster bus message');
        return;
      }
      for (const h of bus.handlers) {
        try {
          h(m);
        } catch (err) {
          log.error('cluster bus handler failed', { type: m.type, error: (err as Error).message });
        }
      }
    });
    return bus;
  }

  async publish(message: BusMessage): Promise<void> {
    await this.store.publish(this.channel, JSON.stringify(message));
  }

  subscribe(handler: (m: BusMessage) => void): void {
    this.handlers.push(handler);
  }

  async publishStream(stream: string, payload: string): Promise<void> {
    await this.store.publish(`${this.channel}:stream:${stream}`, payload);
  }

  async subscribeStream(stream: string, handler: (payload: string) => void): Promise<() => Promise<void>> {
    const channel = `${this.channel}:stream:${stream}`;
    await this.sub.subscribe(channel, handler);
    return async () => { await this.sub.unsubscribe(channel, handler).catch(() => undefined); };
  }

  async close(): Promise<void> {
    this.handlers.length = 0;
    if (this.sub.isOpen) await this.sub.close().catch(() => this.sub.destroy());
  }
}
