/**
 * An RDP desktop following the browser's window size, without a storm of reconnects. Each
 * resize of the private display restarts xfreerdp, which logs into the device again (NLA, 1.5 to
 * 3.5 s with a blank screen), so a window being dragged must not become one login per pixel:
 *
 * - a request waits `settleMs` for the next one (the latest size asked for wins);
 * - sizes are clamped to what a session may open with and rounded down to a multiple of `step`;
 * - at most `maxPerWindow` resizes start in any `windowMs`: a request beyond that waits until the
 *   window has room, and then the latest size asked for meanwhile is applied;
 * - one resize at a time; a size that rounds to the display's own is no resize at all (the
 *   display opens at the browser's exact size, and noVNC asks for it again once connected).
 *
 * A resize that fails (the display could not change size, or the device refused the new login)
 * is reported once and the follower stops: the caller ends the session, which cannot go on at a
 * size nobody asked for, or with no device behind it.
 */

/** What the follower needs of the display (RdpDisplay has it). */
export interface ResizableDisplay {
  readonly width: number;
  readonly height: number;
  resize(width: number, height: number): Promise<void>;
}

export interface FollowerTimers {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export interface ResizeLimits {
  /** How long the browser's size must stay put before the display follows. */
  settleMs: number;
  /** At most this many resizes start within any `windowMs`. */
  maxPerWindow: number;
  windowMs: number;
  /** Sizes are rounded down to a multiple of this. */
  step: number;
  minWidth: number;
  maxWidth: number;
  minHeight: number;
  maxHeight: number;
}

/** The sizes a desktop may open with (session-broker.ts clamps the opening size the same way). */
export const DEFAULT_RESIZE_LIMITS: Readonly<ResizeLimits> = Object.freeze({
  settleMs: 1000,
  maxPerWindow: 4,
  windowMs: 60_000,
  step: 8,
  minWidth: 640,
  maxWidth: 3840,
  minHeight: 480,
  maxHeight: 2160,
});

export interface Size {
  width: number;
  height: number;
}

export interface ResizeApplied {
  from: Size;
  to: Size;
  /** From the start of the resize to the device's desktop painted at the new size. */
  ms: number;
}

export interface ResizeFailed {
  from: Size;
  to: Size;
  ms: number;
  error: Error;
}

export interface FollowerCallbacks {
  onResized(r: ResizeApplied): void;
  /** Called at most once; the follower has stopped by then. */
  onFailed(r: ResizeFailed): void;
}

const REAL_TIMERS: FollowerTimers = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => {
    const t = setTimeout(fn, ms);
    t.unref();
    return t;
  },
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
};

export class ResizeFollower {
  private readonly limits: ResizeLimits;
  private readonly timers: FollowerTimers;
  /** The latest size asked for and not yet applied. */
  private wanted: Size | null = null;
  /** When the latest request came: it is applied once it is `settleMs` old. */
  private wantedAt = 0;
  private timer: unknown = null;
  private busy = false;
  private stopped = false;
  /** When the resizes of the last `windowMs` started. */
  private readonly starts: number[] = [];

  constructor(
    private readonly display: ResizableDisplay,
    private readonly callbacks: FollowerCallbacks,
    opts: { limits?: Partial<ResizeLimits>; timers?: FollowerTimers } = {},
  ) {
    this.limits = { ...DEFAULT_RESIZE_LIMITS, ...opts.limits };
    this.timers = opts.timers ?? REAL_TIMERS;
  }

  /** The size a request becomes: clamped, then rounded down to the step (the bounds are multiples of it). */
  normalize(width: number, height: number): Size {
    const { minWidth, maxWidth, minHeight, maxHeight, step } = this.limits;
    const fit = (v: number, lo: number, hi: number): number => {
      const clamped = Math.max(lo, Math.min(hi, Number.isFinite(v) ? Math.floor(v) : lo));
      return Math.max(lo, clamped - (clamped % step));
    };
    return { width: fit(width, minWidth, maxWidth), height: fit(height, minHeight, maxHeight) };
  }

  /** The browser asked for this size (its SetDesktopSize). */
  request(width: number, height: number): void {
    if (this.stopped) return;
    this.wanted = this.normalize(width, height);
    this.wantedAt = this.timers.now();
    this.schedule(this.limits.settleMs);
  }

  /** No further resizes; the outcome of one under way is no longer reported. */
  stop(): void {
    this.stopped = true;
    this.wanted = null;
    this.cancelTimer();
  }

  get pending(): Size | null {
    return this.wanted;
  }

  private cancelTimer(): void {
    if (this.timer !== null) this.timers.clearTimeout(this.timer);
    this.timer = null;
  }

  private schedule(ms: number): void {
    this.cancelTimer();
    this.timer = this.timers.setTimeout(() => {
      this.timer = null;
      this.next();
    }, Math.max(0, ms));
  }

  private next(): void {
    if (this.stopped || this.busy || !this.wanted) return;
    const now = this.timers.now();
    const settled = this.wantedAt + this.limits.settleMs;
    if (now < settled) {
      this.schedule(settled - now);
      return;
    }
    const to = this.wanted;
    const from: Size = { width: this.display.width, height: this.display.height };
    // The display opens at the browser's exact size, which noVNC asks for again right after
    // connecting: that is no change (nor is any size that rounds to the display's).
    const now8 = this.normalize(from.width, from.height);
    if (to.width === now8.width && to.height === now8.height) {
      this.wanted = null;
      return;
    }
    while (this.starts.length > 0 && (this.starts[0] as number) <= now - this.limits.windowMs) this.starts.shift();
    if (this.starts.length >= this.limits.maxPerWindow) {
      // Further requests only replace the wanted size; the latest is applied when there is room.
      this.schedule((this.starts[0] as number) + this.limits.windowMs - now);
      return;
    }
    this.wanted = null;
    this.busy = true;
    this.starts.push(now);
    this.display.resize(to.width, to.height).then(() => {
      this.busy = false;
      if (this.stopped) return;
      this.callbacks.onResized({ from, to, ms: this.timers.now() - now });
      this.next();
    }, (err: unknown) => {
      this.busy = false;
      if (this.stopped) return;
      this.stop();
      this.callbacks.onFailed({ from, to, ms: this.timers.now() - now, error: err instanceof Error ? err : new Error(String(err)) });
    });
  }
}
