/**
 * Where workflow events go besides the audit log: a webhook (notify/webhook.ts), or nowhere.
 * notify() never blocks and never throws: a failing receiver must not slow the workflow.
 */
export interface Notifier {
  notify(event: string, data: Record<string, unknown>): void;
  /** Deliveries not yet made. */
  pending(): number;
  close(): Promise<void>;
}

export const NO_NOTIFIER: Notifier = {
  notify: () => undefined,
  pending: () => 0,
  close: async () => undefined,
};
