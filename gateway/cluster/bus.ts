import { EventEmitter } from 'node:events';

/**
 * What one node tells the others. Pub/sub delivers at most once, so nothing here is the only
 * record of anything: a kill is also in the session record, a revocation in the grant, and every
 * node's enforcement tick re-reads them; the bus only makes the others act at once.
 */
export type BusMessage =
  | { type: 'session.kill'; session: string; by: string; reason: string; from: string }
  /** Grants, accounts or devices changed: re-decide live sessions now rather than at the next tick. */
  | { type: 'access.changed'; from: string; user?: string; device?: string }
  /** An approver answered a command held for review: the session waiting for it reads the answer. */
  | { type: 'command.reviewed'; command: string; from: string };

export interface ClusterBus {
  publish(message: BusMessage): Promise<void>;
  subscribe(handler: (message: BusMessage) => void): void;
  close(): Promise<void>;
}

/** The bus of a single node (SQLite backend): the node tells only itself. */
export class LocalBus implements ClusterBus {
  private readonly events = new EventEmitter();

  async publish(message: BusMessage): Promise<void> {
    // Delivered on a later turn, as from Redis: a publisher never runs handlers inside its own call.
    setImmediate(() => this.events.emit('message', message));
  }

  subscribe(handler: (message: BusMessage) => void): void {
    this.events.on('message', handler);
  }

  async close(): Promise<void> {
    this.events.removeAllListeners();
  }
}

export function parseBusMessage(text: string): BusMessage | null {
  try {
    const m = JSON.parse(text) as Partial<BusMessage>;
    if (m.type === 'session.kill' && typeof m.session === 'string' && typeof m.by === 'string' && typeof m.from === 'string') {
      return { type: m.type, session: m.session, by: m.by, reason: typeof m.reason === 'string' ? m.reason : '', from: m.from };
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
