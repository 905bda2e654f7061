import { describe, expect, it } from 'vitest';
import { PerKeyLimit } from '../../gateway/limits/per-key-limit.js';

describe('PerKeyLimit', () => {
  it('admits up to the limit per key, counts keys apart, and frees a slot once per release', () => {
    const limit = new PerKeyLimit(2);
    const a1 = limit.acquire('a');
    const a2 = limit.acquire('a');
    expect(a1 && a2).toBeTruthy();
    expect(limit.acquire('a')).toBeNull();
    expect(limit.acquire('b')).not.toBeNull();
    a1?.();
    a1?.(); // a second release of the same slot frees nothing more
    expect(limit.acquire('a')).not.toBeNull();
    expect(limit.acquire('a')).toBeNull();
  });
});
