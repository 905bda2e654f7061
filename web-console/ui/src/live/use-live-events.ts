import { useEffect, useRef, useState } from 'preact/hooks';
import { api } from '../api/api-client.js';

const RETRY_MS = 5_000;

export type LiveTopic = 'request' | 'session' | 'command' | 'alert';
export interface LiveEvent {
  action: string;
  id: string | null;
  [key: string]: unknown;
}
export type LiveState = 'connecting' | 'live' | 'reconnecting';

/**
 * The gateway's server-sent events for the topics a page shows. EventSource reconnects by itself
 * after a drop; the page refreshes its list on each event (and once on reconnecting, for what it
 * may have missed meanwhile).
 */
export function useLiveEvents(topics: readonly LiveTopic[], onEvent: (topic: LiveTopic, e: LiveEvent) => void): LiveState {
  const [state, setState] = useState<LiveState>('connecting');
  const handler = useRef(onEvent);
  handler.current = onEvent;
  const key = topics.join(',');

  useEffect(() => {
    // No topics, no stream (the navigation's alert count for a role that gets none).
    if (topics.length === 0) return undefined;
    let source: EventSource | null = null;
    let retry: ReturnType<typeof setTimeout> | null = null;
    let stopped = false;
    let wasDown = false;
    const open = (): void => {
      source = new EventSource('/api/events');
      source.onopen = () => {
        setState('live');
        if (wasDown) for (const t of topics) handler.current(t, { action: 'reconnected', id: null });
        wasDown = false;
      };
      source.onerror = () => {
        wasDown = true;
        setState('reconnecting');
        // A refused stream (401 after the session lapsed, a 5xx) is not retried by EventSource
        // itself: ask who is signed in (a lapsed session then shows the sign-in page), and retry.
        if (source?.readyState === EventSource.CLOSED && !stopped) {
          source = null;
          void api.get('/api/auth/me').catch(() => undefined);
          retry = setTimeout(() => { if (!stopped) open(); }, RETRY_MS);
        }
      };
      for (const topic of topics) {
        source.addEventListener(topic, (ev: MessageEvent<string>) => {
          let data: LiveEvent;
          try {
            data = JSON.parse(ev.data) as LiveEvent;
          } catch {
            return;
          }
          handler.current(topic, data);
        });
      }
    };
    open();
    return () => {
      stopped = true;
      if (retry) clearTimeout(retry);
      source?.close();
    };
    // The topics by value (the array is a new one on each render).
  }, [key]);
  return state;
}
