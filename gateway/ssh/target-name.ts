/**
 * The SSH user name carries the target: `alice#ct-01` (works with ssh, sftp and scp) or
 * `alice%ct-01` (for legacy `scp -O` downloads, which refuse `#` in a source's user name). A
 * plain `alice` means "show me my devices".
 */
const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

export interface LoginName {
  login: string;
  target: string | null;
}

export function parseLoginName(username: string): LoginName | null {
  const m = /^([^#%]+)(?:[#%]([^#%]+))?$/.exec(username);
  if (!m) return null;
  const login = m[1] as string;
  const target = m[2] ?? null;
  if (!NAME.test(login) || (target !== null && !NAME.test(target))) return null;
  return { login, target };
}
