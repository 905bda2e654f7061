import { ApiFailure } from '../api/api-client.js';
import { FrameReader, type DesktopFrame } from './frame-reader.js';
import { RfbChannel, serverHandshakeLength, serverInitSize } from './rfb-channel.js';
import { sizeChangeIn } from './rfb-size.js';

/** `GET /api/recordings/:id/desktop`: what the player needs before the first frame. */
export interface DesktopOutline {
  durationMs: number;
  width: number;
  height: number;
  protocol: string;
  device: string;
  user: string;
  keyframesMs: number[];
  idle: Array<{ startMs: number; endMs: number }>;
}

export interface ReplayHooks {
  /**
   * A stream that needs a fresh noVNC (the first one, or a seek to a screen of another size):
   * the page mounts a view-only viewer on `channel` before this returns.
   */
  onChannel(channel: RfbChannel): void;
  /** Playing, paused or at the end: the controls redraw. */
  onChange(): void;
  onError(err: unknown): void;
}

/** Waits at most this long between looks at the clock, so pause, speed and seek act at once. */
const TICK_MS = 100;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * Plays a desktop recording into noVNC: the frames endpoint gives the screen at a time as a
 * whole RFB stream, then every later server message with its time; this paces them by a clock
 * that runs at the chosen speed and can jump over idle stretches. A seek asks the gateway for
 * the screen at the new time (it composes it from the nearest keyframe), so seeking anywhere
 * costs one request, never a replay from the start. What noVNC sends back is dropped.
 */
export class DesktopReplayer {
  speed = 1;
  skipIdle = true;
  private basePos = 0;
  private baseWall = performance.now();
  private running = false;
  private atEnd = false;
  private generation = 0;
  private abort: AbortController | null = null;
  private reader: FrameReader | null = null;
  private channel: RfbChannel | null = null;
  private size: { width: number; height: number } | null = null;
  private disposed = false;

  constructor(private readonly recording: string, readonly outline: DesktopOutline, private readonly hooks: ReplayHooks) {}

  get playing(): boolean {
    return this.running;
  }

  get ended(): boolean {
    return this.atEnd;
  }

  /** Where the player is, in ms of the recording. */
  get position(): number {
    const pos = this.running ? this.basePos + (performance.now() - this.baseWall) * this.speed : this.basePos;
    return Math.min(pos, this.outline.durationMs);
  }

  /** Shows the screen at `ms` (paused unless playing) and goes on from there. */
  seek(ms: number): void {
    const to = Math.max(0, Math.min(ms, this.outline.durationMs));
    this.rebase(to);
    this.atEnd = false;
    void this.start(to);
    this.hooks.onChange();
  }

  play(): void {
    if (this.running) return;
    if (this.atEnd || this.position >= this.outline.durationMs) {
      this.running = true;
      this.seek(0);
      return;
    }
    this.rebase(this.basePos);
    this.running = true;
    this.hooks.onChange();
  }

  pause(): void {
    if (!this.running) return;
    this.rebase(this.position);
    this.running = false;
    this.hooks.onChange();
  }

  setSpeed(speed: number): void {
    this.rebase(this.position);
    this.speed = speed;
    this.hooks.onChange();
  }

  dispose(): void {
    this.disposed = true;
    this.generation++;
    this.abort?.abort();
    this.reader?.cancel();
    this.channel?.end();
    this.channel = null;
  }

  /** Jumps over an idle stretch the clock has entered (when skipping them). */
  private skipIfIdle(): void {
    if (!this.skipIdle || !this.running) return;
    const pos = this.position;
    const stretch = this.outline.idle.find((s) => s.startMs <= pos && pos < s.endMs - TICK_MS);
    if (stretch) this.rebase(stretch.endMs);
  }

  private rebase(pos: number): void {
    this.basePos = pos;
    this.baseWall = performance.now();
  }

  private async start(from: number): Promise<void> {
    const generation = ++this.generation;
    this.abort?.abort();
    this.reader?.cancel();
    const abort = new AbortController();
    this.abort = abort;
    // Nothing before the first keyframe can be shown (the screen is not yet known there).
    const first = this.outline.keyframesMs[0] ?? 0;
    const at = Math.max(from, first);
    try {
      const res = await fetch(`/api/recordings/${encodeURIComponent(this.recording)}/desktop/frames?from=${at}`, {
        signal: abort.signal, credentials: 'same-origin', cache: 'no-store',
      });
      if (generation !== this.generation) return;
      if (!res.ok || !res.body) throw new ApiFailure(res.status, res.status === 404 ? 'NOT_FOUND' : 'UNREADABLE', `HTTP ${res.status}`);
      const reader = new FrameReader(res.body.getReader());
      this.reader = reader;
      const screen = await reader.next();
      if (generation !== this.generation) return;
      if (!screen) throw new ApiFailure(res.status, 'UNREADABLE', 'The recording stream was empty.');
      this.show(screen);
      await this.pump(generation, reader);
    } catch (err) {
      if (generation !== this.generation || this.disposed) return;
      if (err instanceof DOMException && err.name === 'AbortError') return;
      this.running = false;
      this.hooks.onError(err);
      this.hooks.onChange();
    }
  }

  /**
   * Keeps `size` what noVNC shows while playing on: the screen changes size in the middle of a
   * recording when an RDP desktop followed the browser's window. A message this cannot read
   * leaves the size unknown, and the next seek then starts a fresh noVNC.
   */
  private follow(bytes: Uint8Array): void {
    const change = sizeChangeIn(bytes);
    if (change === 'unknown') this.size = null;
    else if (change) this.size = change;
  }

  /**
   * The screen at the seek time, at the keyframe's size: into the noVNC already showing a screen
   * of that size, or a fresh one.
   */
  private show(frame: DesktopFrame): void {
    const size = serverInitSize(frame.bytes);
    const handshake = serverHandshakeLength(frame.bytes);
    if (!size || handshake === null) throw new ApiFailure(200, 'UNREADABLE', 'The recording does not start with an RFB handshake.');
    const same = this.size && this.size.width === size.width && this.size.height === size.height;
    if (this.channel?.isOpen && same) {
      this.channel.deliver(frame.bytes.subarray(handshake));
      return;
    }
    this.channel?.end();
    const channel: RfbChannel = new RfbChannel(null, () => setTimeout(() => channel.end(), 0));
    this.channel = channel;
    this.size = size;
    this.hooks.onChannel(channel);
    channel.open();
    channel.deliver(frame.bytes);
  }

  private async pump(generation: number, reader: FrameReader): Promise<void> {
    for (;;) {
      const frame = await reader.next();
      if (generation !== this.generation) return;
      if (!frame) {
        await this.until(this.outline.durationMs, generation);
        if (generation !== this.generation) return;
        this.rebase(this.outline.durationMs);
        this.running = false;
        this.atEnd = true;
        this.hooks.onChange();
        return;
      }
      if (!(await this.until(frame.ms, generation))) return;
      this.channel?.deliver(frame.bytes);
      this.follow(frame.bytes);
    }
  }

  /** Waits until the clock reaches `ms`; false when a seek or the end of the page came first. */
  private async until(ms: number, generation: number): Promise<boolean> {
    for (;;) {
      if (generation !== this.generation) return false;
      this.skipIfIdle();
      const pos = this.position;
      if (pos >= ms) return true;
      await sleep(this.running ? Math.max(1, Math.min(TICK_MS, (ms - pos) / this.speed)) : TICK_MS);
    }
  }
}
