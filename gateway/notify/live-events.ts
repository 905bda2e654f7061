import type { ClusterBus } from '../cluster/bus.js';
import type { Notifier } from './notifier.js';

/**
 * Workflow and session events go two ways: to the webhook (a SIEM, a ticketing system), and onto
 * the cluster bus, from which every node's web server feeds the consoles signed in to it (live
 * approver queues and session lists, whichever node the event happened on).
 */
export class LiveEvents implements Notifier {
  constructor(private readonly webhook: Notifier, private readonly bus: ClusterBus, private readonly node: string) {}

  notify(event: string, data: Record<string, unknown>): void {
    this.webhook.notify(event, data);
    const dot = event.indexOf('.');
    const topic = dot > 0 ? event.slice(0, dot) : event;
    // Best effort: a console that misses one event refreshes on the next, or on its own timer.
    void this.bus.publish({ type: 'event', topic, action: event.slice(dot + 1), data, from: this.node }).catch(() => undefined);
  }

  pending(): number {
    return this.webhook.pending();
  }

  close(): Promise<void> {
    return this.webhook.close();
  }
}
