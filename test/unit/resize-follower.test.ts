import { describe, expect, it } from 'vitest';
import { ResizeFollower, type FollowerTimers, type ResizeApplied, type ResizeFailed, type ResizableDisplay } from '../../gateway/desktop/resize-follower.js';

// Issue 7, "Display size follows the browser": an RDP desktop follows the window, but every
// resize is a new login on the device, so requests settle first and are rate limited.

/** A clock and timers the test moves by hand. */
class FakeTimers implements FollowerTimers {
  t = 0;
  private seq = 0;
  private readonly due = new Map<number, { at: number; fn: () => void }>();
  now(): number {
    return this.t;
  }
  setTimeout(fn: () => void, ms: number): unknown {
    const id = ++this.seq;
    this.due.set(id, { at: this.t + ms, fn });
    return id;
  }
  clearTimeout(handle: unknown): void {
    this.due.delete(handle as number);
  }
  get pending(): number {
    return this.due.size;
  }
  /** Moves the clock on, firing what falls due in order (and what those schedule), then lets promises settle. */
  async advance(ms: number): Promise<void> {
    const end = this.t + ms;
    for (;;) {
      await flush();
      const next = [...this.due.entries()].filter(([, d]) => d.at <= end).sort((a, b) => a[1].at - b[1].at)[0];
      if (!next) break;
      this.due.delete(next[0]);
      this.t = next[1].at;
      next[1].fn();
    }
    this.t = end;
    await flush();
  }
}

const flush = async (): Promise<void> => {
  for (let i = 0; i < 10; i++) await Promise.resolve();
};

/** A display whose resizes take `takesMs` of the fake clock (or fail when told to). */
class FakeDisplay implements ResizableDisplay {
  width = 1280;
  height = 800;
  readonly calls: Array<[number, number]> = [];
  failWith: Error | null = null;
  private finish: (() => void) | null = null;
  constructor(private readonly timers: FakeTimers, private readonly takesMs = 0) {}
  resize(width: number, height: number): Promise<void> {
    this.calls.push([width, height]);
    if (this.failWith) return Promise.reject(this.failWith);
    return new Promise((resolve) => {
      this.finish = () => {
        this.width = width;
        this.height = height;
        resolve();
      };
      if (this.takesMs === 0) this.finish();
      else this.timers.setTimeout(() => this.finish?.(), this.takesMs);
    });
  }
}

function setup(takesMs = 0): { timers: FakeTimers; display: FakeDisplay; follower: ResizeFollower; applied: ResizeApplied[]; failed: ResizeFailed[] } {
  const timers = new FakeTimers();
  const display = new FakeDisplay(timers, takesMs);
  const applied: ResizeApplied[] = [];
  const failed: ResizeFailed[] = [];
  const follower = new ResizeFollower(display, { onResized: (r) => applied.push(r), onFailed: (r) => failed.push(r) }, { timers });
  return { timers, display, follower, applied, failed };
}

describe('an RDP desktop following the browser\'s size', () => {
  it('waits for the size to settle, and applies only the latest of a burst', async () => {
    const { timers, display, follower, applied } = setup();
    for (let i = 0; i < 10; i++) {
      follower.request(1000 + i * 10, 700 + i);
      await timers.advance(20);
    }
    // 1 s after the last request, not before.
    await timers.advance(900);
    expect(display.calls).toEqual([]);
    await timers.advance(200);
    expect(display.calls).toEqual([[1088, 704]]); // 1090 × 709, rounded down to multiples of 8
    expect(applied).toEqual([{ from: { width: 1280, height: 800 }, to: { width: 1088, height: 704 }, ms: 0 }]);
    expect(timers.pending).toBe(0);
  });

  it('clamps to the sizes a session may open with, rounds down to multiples of 8, and does nothing for the same size', async () => {
    const { timers, display, follower } = setup();
    expect(follower.normalize(100, 100)).toEqual({ width: 640, height: 480 });
    expect(follower.normalize(9999, 9999)).toEqual({ width: 3840, height: 2160 });
    expect(follower.normalize(1919, 1081)).toEqual({ width: 1912, height: 1080 });
    expect(follower.normalize(645, 487)).toEqual({ width: 640, height: 480 });
    follower.request(1285, 807); // rounds to the display's own 1280 × 800
    await timers.advance(5000);
    expect(display.calls).toEqual([]);
    // The display opened at the browser's exact (odd) size; noVNC asks for it once connected: no re-login.
    display.width = 1203;
    display.height = 777;
    follower.request(1203, 777);
    follower.request(1207, 783);
    await timers.advance(5000);
    expect(display.calls).toEqual([]);
    follower.request(10, 65535);
    await timers.advance(1000);
    expect(display.calls).toEqual([[640, 2160]]);
  });

  it('starts at most 4 resizes a minute; later requests wait, and the latest of them is applied when the minute is over', async () => {
    const { timers, display, follower, applied } = setup();
    for (let i = 0; i < 4; i++) {
      follower.request(800 + i * 80, 600);
      await timers.advance(2000);
    }
    expect(display.calls).toHaveLength(4);
    // The fifth and sixth within the same minute: ignored until the window passes.
    follower.request(1600, 900);
    await timers.advance(5000);
    follower.request(1700, 1000);
    await timers.advance(10_000);
    expect(display.calls).toHaveLength(4);
    expect(follower.pending).toEqual({ width: 1696, height: 1000 });
    // The first resize started at 1 s: at 61 s there is room again.
    await timers.advance(61_000 - timers.t - 1);
    expect(display.calls).toHaveLength(4);
    await timers.advance(1);
    expect(display.calls).toHaveLength(5);
    expect(display.calls[4]).toEqual([1696, 1000]);
    expect(applied.at(-1)?.to).toEqual({ width: 1696, height: 1000 });
  });

  it('runs one resize at a time; a request during one is applied after it', async () => {
    const { timers, display, follower, applied } = setup(2500);
    follower.request(1024, 768);
    await timers.advance(1000);
    expect(display.calls).toEqual([[1024, 768]]);
    follower.request(1600, 900);
    await timers.advance(1500); // settled, but the first resize is still under way
    expect(display.calls).toHaveLength(1);
    await timers.advance(1000);
    expect(applied).toEqual([{ from: { width: 1280, height: 800 }, to: { width: 1024, height: 768 }, ms: 2500 }]);
    expect(display.calls).toEqual([[1024, 768], [1600, 896]]);
    await timers.advance(2500);
    expect(applied.map((a) => a.to)).toEqual([{ width: 1024, height: 768 }, { width: 1600, height: 896 }]);
  });

  it('reports a failed resize once and stops following', async () => {
    const { timers, display, follower, applied, failed } = setup();
    display.failWith = new Error('NLA refused');
    follower.request(1024, 768);
    await timers.advance(1000);
    expect(applied).toEqual([]);
    expect(failed).toHaveLength(1);
    expect(failed[0]).toMatchObject({ from: { width: 1280, height: 800 }, to: { width: 1024, height: 768 } });
    expect(failed[0]?.error.message).toBe('NLA refused');
    follower.request(1600, 900);
    await timers.advance(60_000);
    expect(display.calls).toHaveLength(1);
    expect(failed).toHaveLength(1);
  });

  it('after stop(), applies nothing and reports nothing', async () => {
    const { timers, display, follower, applied } = setup(2000);
    follower.request(1024, 768);
    await timers.advance(1000);
    follower.request(1600, 900);
    follower.stop();
    await timers.advance(10_000);
    expect(display.calls).toHaveLength(1);
    expect(applied).toEqual([]);
    expect(timers.pending).toBe(0);
  });
});
