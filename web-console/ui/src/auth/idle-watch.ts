import { useEffect } from 'preact/hooks';
import { endForInactivity } from './auth-state.js';

const ACTIVITY = ['keydown', 'pointerdown', 'wheel', 'touchstart'] as const;
const CHECK_EVERY_MS = 10_000;

/**
 * The server ends a session after `idleTimeoutSeconds` without a request, but the pages that
 * refresh themselves (live sessions, the queue) send requests with nobody at the screen. So the
 * browser also watches the person: no key, click or scroll for that long, and it signs out.
 */
export function useIdleWatch(idleTimeoutSeconds: number | null): void {
  useEffect(() => {
    if (!idleTimeoutSeconds) return undefined;
    let last = Date.now();
    const touch = (): void => {
      last = Date.now();
    };
    for (const type of ACTIVITY) document.addEventListener(type, touch, { capture: true, passive: true });
    const timer = setInterval(() => {
      if (Date.now() - last >= idleTimeoutSeconds * 1000) void endForInactivity();
    }, CHECK_EVERY_MS);
    return () => {
      clearInterval(timer);
      for (const type of ACTIVITY) document.removeEventListener(type, touch, { capture: true });
    };
  }, [idleTimeoutSeconds]);
}
