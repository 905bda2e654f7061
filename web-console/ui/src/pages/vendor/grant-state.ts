import type { Grant } from '../../api/api-types.js';

export type GrantState = 'current' | 'upcoming' | 'ended' | 'revoked';

export function grantState(g: Grant, now: number): GrantState {
  if (g.revokedAt) return 'revoked';
  if (Date.parse(g.until) <= now) return 'ended';
  if (Date.parse(g.from) > now) return 'upcoming';
  return 'current';
}
