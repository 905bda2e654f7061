/**
 * At most `limit` events per key in any `windowMs` (a sliding log, per process). For sign-in
 * attempts per address; account lockout, shared through the store, is the cluster-wide defence.
 */
export class RateLimit {
  private readonly events = new Map<string, number[]>();
  private lastSweep = 0;

  constructor(private readonly limit: number, private readonly windowMs: number) {}

  /** Counts one event; false (and not counted) when the key is already at its limit. */
  take(key: string, now: number): boolean {
    this.sweep(now);
    const recent = (this.events.get(key) ?? []).filter((t) => t > now - this.windowMs);
    if (recent.length >= this.limit) {
      this.events.set(key, recent);
      return false;
    }
    recent.push(now);
    this.events.set(key, recent);
    return true;
  }

  /** Keys whose events have all aged out are forgotten, so memory follows the active keys only. */
  private sweep(now: number): void {
    if (now - this.lastSweep < this.windowMs) return;
    this.lastSweep = now;
    for (const [k, ts] of this.events) if (ts.every((t) => t <= now - this.windowMs)) this.events.delete(k);
  }
}
