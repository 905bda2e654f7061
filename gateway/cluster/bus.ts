import { EventEmitter } from 'node:events';

/**
 * What one node tells the others. Pub/sub delivers at most once, so nothing here is the only
 * record of anything: a kill is also in the session record, a revocation in the grant, and every
 * node's enforcement tick re-reads them; the bus only makes the others act at once.
 */
export type BusMessage =
  | { type: 'session.kill'; session: string; by: string; reason: string; from: string; grantRevoked?: boolean; lockedUntil?: number | null }
  /** Grants, accounts or devices changed: re-decide live sessions now rather than at the next tick. */
  | { type: 'access.changed'; from: string; user?: string; device?: string }
  /** An approver answered a command held for review: the session waiting for it reads the answer. */
  | { type: 'command.reviewed'; command: string; from: string }
  /** A workflow or session event for the consoles (LiveEvents): topic request|session|command|grant. */
  | { type: 'event'; topic: string; action: string; data: Record<string, unknown>; from: string }
  /** A console on `from` wants to watch `session` (sent again every few seconds while it watches). */
  | { type: 'watch.start'; session: string; watcher: string; from: string };

export interface ClusterBus {
  publish(message: BusMessage): Promise<void>;
  subscribe(handler: (message: BusMessage) => void): void;
  /** A named stream (a watched session's output): text payloads to whoever listens on it right now. */
  publishStream(stream: string, payload: string): Promise<void>;
  /** Listens on a stream until the returned function is called. */
  subscribeStream(stream: string, handler: (payload: string) => void): Promise<() => Promise<void>>;
  close(): Promise<void>;
}

/** The bus of a single node (SQLite backend): the node tells only itself. */
export class LocalBus implements ClusterBus {
  private readonly events = new EventEmitter().setMaxListeners(0);

  async publish(message: BusMessage): Promise<void> {
    // Delivered on a later turn, as from Redis: a publisher never runs handlers inside its own call.
    setImmediate(() => {
      for (const handler of this.events.listeners('message') as Array<(m: BusMessage) => void>) {
        try {
          handler(message);
        } catch (err) {
          // As from Redis: one failing subscriber does not stop the others, nor the process.
          process.emitWarning(`cluster bus handler failed: ${(err as Error).message}`);
        }
      }
    });
  }

  subscribe(handler: (message: BusMessage) => void): void {
    this.events.on('message', handler);
  }

  async publishStream(stream: string, payload: string): Promise<void> {
    this.events.emit(`stream:${stream}`, payload);
  }

  async subscribeStream(stream: string, handler: (payload: string) => void): Promise<() => Promise<void>> {
    this.events.on(`stream:${stream}`, handler);
    return async () => { this.events.off(`stream:${stream}`, handler); };
  }

  async close(): Promise<void> {
    this.events.removeAllListeners();
  }
}

export function parseBusMessage(text: string): BusMessage | null {
  try {
    const m = JSON.parse(text) as Partial<BusMessage>;
    if (m.type === 'session.kill' && typeof m.session === 'string' && typeof m.by === 'string' && typeof m.from === 'string') {
      return {
        type: m.type, session: m.session, by: m.by, reason: typeof m.reason === 'string' ? m.reason : '', from: m.from,
        ...(m.grantRevoked === true ? { grantRevoked: true } : {}), ...(typeof m.lockedUntil === 'number' ? { lockedUntil: m.lockedUntil } : {}),
      };
    }
    if (m.type === 'event' && typeof m.topic === 'string' && typeof m.action === 'string' && typeof m.from === 'string' && m.data && typeof m.data === 'object') {
      return { type: m.type, topic: m.topic, action: m.action, data: m.data, from: m.from };
    }
    if (m.type === 'watch.start' && typeof m.session === 'string' && typeof m.watcher === 'string' && typeof m.from === 'string') {
      return { type: m.type, session: m.session, watcher: m.watcher, from: m.from };
    }
    if (m.type === 'command.reviewed' && typeof m.command === 'string' && typeof m.from === 'string') {
      return { type: m.type, command: m.command, from: m.from };
    }
    if (m.type === 'access.changed' && typeof m.from === 'string') {
      return { type: m.type, from: m.from, ...(typeof m.user === 'string' ? { user: m.user } : {}), ...(typeof m.device === 'string' ? { device: m.device } : {}) };
    }
  } catch {
    // not JSON: ignored below
  }
  return null;
}
