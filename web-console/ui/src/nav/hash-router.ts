import { useEffect, useState } from 'preact/hooks';

/**
 * Routes live in the fragment (`#/requests`): the gateway serves one index.html and every address
 * of the app is a bookmarkable page without the server knowing them.
 */
export function currentPath(): string {
  const h = location.hash.replace(/^#/, '');
  return h.startsWith('/') ? h : '/';
}

export function navigate(path: string): void {
  if (currentPath() === path) return;
  location.hash = path;
}

export function href(path: string): string {
  return `#${path}`;
}

export function usePath(): string {
  const [path, setPath] = useState(currentPath());
  useEffect(() => {
    const onChange = (): void => setPath(currentPath());
    window.addEventListener('hashchange', onChange);
    return () => window.removeEventListener('hashchange', onChange);
  }, []);
  return path;
}

/** The parameters of `pattern` ('/connect/:device') in `path`, or null when it does not match. */
export function match(pattern: string, path: string): Record<string, string> | null {
  const p = pattern.split('/');
  const a = path.split('?')[0]?.split('/') ?? [];
  if (p.length !== a.length) return null;
  const params: Record<string, string> = {};
  for (let i = 0; i < p.length; i++) {
    const seg = p[i] as string;
    const got = a[i] as string;
    if (seg.startsWith(':')) {
      if (!got) return null;
      try {
        params[seg.slice(1)] = decodeURIComponent(got);
      } catch {
        return null;
      }
    } else if (seg !== got) return null;
  }
  return params;
}

/** The query part of the current route (`#/recordings?device=ct-01`). */
export function routeQuery(path: string): URLSearchParams {
  const i = path.indexOf('?');
  return new URLSearchParams(i >= 0 ? path.slice(i + 1) : '');
}
