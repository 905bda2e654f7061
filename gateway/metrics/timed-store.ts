import type { AuditDraft, Store } from '../store/store.js';
import type { GatewayMetrics } from './gateway-metrics.js';

/**
 * The store as every caller sees it, with each asynchronous Store method timed (latency and
 * failures by method name) and each appended audit entry shown to the metrics. A Proxy rather
 * than a third Store class: both backends stay as they are, and a method added to the Store
 * interface later is timed without anyone remembering to. Methods run on the backend itself
 * (not the Proxy), so `instanceof` and the backends' own fields work as before.
 */
export function timedStore<S extends Store>(store: S, metrics: GatewayMetrics): S {
  const wrapped = new Map<string, (...args: unknown[]) => unknown>();
  return new Proxy(store, {
    get(target, prop) {
      const value: unknown = Reflect.get(target, prop, target);
      if (typeof value !== 'function' || typeof prop !== 'string' || prop === 'constructor') return value;
      let timed = wrapped.get(prop);
      if (!timed) {
        const method = value as (...args: unknown[]) => unknown;
        timed = (...args: unknown[]): unknown => {
          const start = process.hrtime.bigint();
          const result = method.apply(target, args);
          // Synchronous helpers (a prefix, a duplicate client) are not store operations.
          if (!(result instanceof Promise)) return result;
          const seconds = (): number => Number(process.hrtime.bigint() - start) / 1e9;
          return result.then((ok: unknown) => {
            metrics.storeCall(prop, seconds(), false);
            if (prop === 'appendAudit') metrics.auditAppended(args[0] as AuditDraft);
            return ok;
          }, (err: unknown) => {
            metrics.storeCall(prop, seconds(), true);
            throw err;
          });
        };
        wrapped.set(prop, timed);
      }
      return timed;
    },
  });
}
