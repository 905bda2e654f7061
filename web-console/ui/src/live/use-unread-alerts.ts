import { useCallback, useEffect, useState } from 'preact/hooks';
import { api } from '../api/api-client.js';
import { useLiveEvents } from './use-live-events.js';

export interface UnreadAlerts {
  unread: number;
  /** More than the server counts (the badge says "99+"). */
  capped: boolean;
  /** The alert kinds [alerts.routes] gives this person's roles: none, and the console offers no alert page. */
  kinds: string[];
}

/**
 * The navigation's unread-alert count: read when the console opens, again on every alert event
 * (raised or acknowledged, on any node) and on every page change (acknowledging on the alert page
 * lowers it at once).
 */
export function useUnreadAlerts(enabled: boolean, path: string): UnreadAlerts | null {
  const [state, setState] = useState<UnreadAlerts | null>(null);
  const load = useCallback(() => {
    if (!enabled) return;
    api.get<UnreadAlerts>('/api/alerts/unread').then(setState, () => undefined);
  }, [enabled]);
  useEffect(load, [load, path]);
  useLiveEvents(enabled ? ['alert'] : [], load);
  return state;
}
