/**
 * At most `limit` holders per key at once (sign-ins per account, unauthenticated connections per
 * address). acquire() returns the release function, or null when the key is at its limit; a
 * release runs once however often it is called.
 */
export class PerKeyLimit {
  private readonly held = new Map<string, number>();

  constructor(private readonly limit: number) {}

  acquire(key: string): (() => void) | null {
    const n = this.held.get(key) ?? 0;
    if (n >= this.limit) return null;
    this.held.set(key, n + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = (this.held.get(key) ?? 1) - 1;
      if (left <= 0) this.held.delete(key);
      else this.held.set(key, left);
    };
  }
}
