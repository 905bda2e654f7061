import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import { api } from '../api/api-client.js';

export interface Resource<T> {
  data: T | null;
  error: unknown;
  /** True on the first load only; a reload keeps showing the data it replaces. */
  loading: boolean;
  reload: () => void;
}

/** A GET the page shows, with the states a person expects: loading, failed (with retry), loaded. */
export function useResource<T>(path: string | null): Resource<T> {
  const [data, setData] = useState<T | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [loading, setLoading] = useState(path !== null);
  const [tick, setTick] = useState(0);
  const shownPath = useRef<string | null>(null);

  useEffect(() => {
    if (path === null) {
      setLoading(false);
      return undefined;
    }
    const ctrl = new AbortController();
    // A new address (other filters) shows the loading state; a reload of the same one does not flicker.
    if (shownPath.current !== path) {
      setLoading(true);
      setData(null);
    }
    api.get<T>(path, ctrl.signal).then(
      (d) => {
        shownPath.current = path;
        setData(d);
        setError(null);
        setLoading(false);
      },
      (err: unknown) => {
        if (ctrl.signal.aborted) return;
        setError(err);
        setLoading(false);
      },
    );
    return () => ctrl.abort();
  }, [path, tick]);

  const reload = useCallback(() => setTick((n) => n + 1), []);
  return { data, error, loading, reload };
}
