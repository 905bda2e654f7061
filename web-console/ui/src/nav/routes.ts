import type { ComponentType } from 'preact';
import { can, type Action } from '../../../../policy/roles.js';
import type { Role } from '../../../../policy/types.js';
import type { TextKey } from '../i18n/i18n.js';

export interface PageProps {
  params: Record<string, string>;
  query: URLSearchParams;
}

export type PageModule = { default: ComponentType<PageProps> };
export type NavGroup = 'access' | 'approvals' | 'security' | 'admin';

export interface RouteDef {
  pattern: string;
  /** The permission of policy/roles.ts the page needs: the matrix the API checks, so the menu never offers a refusal. */
  access: Action;
  title: TextKey;
  nav?: NavGroup;
  load: () => Promise<PageModule>;
}

// Each page is its own chunk: a vendor's browser never downloads the admin pages, the terminal, noVNC or the players.
export const ROUTES: RouteDef[] = [
  { pattern: '/requests', access: 'request.create', title: 'nav.myRequests', nav: 'access', load: () => import('../pages/vendor/my-requests-page.js') },
  { pattern: '/requests/new', access: 'request.create', title: 'nav.newRequest', nav: 'access', load: () => import('../pages/vendor/new-request-page.js') },
  { pattern: '/grants', access: 'session.connect', title: 'nav.myGrants', nav: 'access', load: () => import('../pages/vendor/my-grants-page.js') },
  { pattern: '/connect', access: 'session.connect', title: 'nav.connect', nav: 'access', load: () => import('../pages/vendor/connect-page.js') },
  { pattern: '/connect/:device', access: 'session.connect', title: 'nav.terminal', load: () => import('../pages/vendor/terminal-page.js') },
  { pattern: '/connect/:device/:protocol', access: 'session.connect', title: 'nav.desktop', load: () => import('../pages/vendor/desktop-page.js') },
  { pattern: '/tokens', access: 'token.manage', title: 'nav.tokens', nav: 'access', load: () => import('../pages/tokens-page.js') },
  { pattern: '/approvals', access: 'request.decide', title: 'nav.approvals', nav: 'approvals', load: () => import('../pages/approver/approval-queue-page.js') },
  { pattern: '/commands/held', access: 'command.review', title: 'nav.heldCommands', nav: 'approvals', load: () => import('../pages/approver/held-commands-page.js') },
  { pattern: '/alerts', access: 'alert.read', title: 'nav.alerts', nav: 'security', load: () => import('../pages/security/alerts-page.js') },
  { pattern: '/sessions', access: 'session.list', title: 'nav.liveSessions', nav: 'security', load: () => import('../pages/security/live-sessions-page.js') },
  { pattern: '/sessions/:id/watch', access: 'session.watch', title: 'nav.watch', load: () => import('../pages/security/watch-page.js') },
  { pattern: '/sessions/:id/desktop', access: 'session.watch', title: 'nav.desktopWatch', load: () => import('../pages/security/desktop-watch-page.js') },
  { pattern: '/recordings', access: 'recording.read', title: 'nav.recordings', nav: 'security', load: () => import('../pages/security/recordings-page.js') },
  { pattern: '/recordings/:id', access: 'recording.read', title: 'nav.replay', load: () => import('../pages/security/replay-page.js') },
  { pattern: '/recordings/:id/desktop', access: 'recording.read', title: 'nav.desktopReplay', load: () => import('../pages/security/desktop-replay-page.js') },
  { pattern: '/commands', access: 'command.read', title: 'nav.commands', nav: 'security', load: () => import('../pages/security/commands-page.js') },
  { pattern: '/audit', access: 'audit.read', title: 'nav.audit', nav: 'security', load: () => import('../pages/security/audit-page.js') },
  { pattern: '/records', access: 'record.read', title: 'nav.records', nav: 'security', load: () => import('../pages/security/records-page.js') },
  { pattern: '/admin/users', access: 'user.read', title: 'nav.users', nav: 'admin', load: () => import('../pages/admin/users-page.js') },
  { pattern: '/admin/vendors', access: 'user.read', title: 'nav.vendors', nav: 'admin', load: () => import('../pages/admin/vendors-page.js') },
  { pattern: '/admin/devices', access: 'device.read', title: 'nav.devices', nav: 'admin', load: () => import('../pages/admin/devices-page.js') },
  { pattern: '/admin/rules', access: 'config.read', title: 'nav.rules', nav: 'admin', load: () => import('../pages/admin/approval-rules-page.js') },
];

export const NAV_GROUPS: ReadonlyArray<{ id: NavGroup; label: TextKey }> = [
  { id: 'access', label: 'nav.group.access' },
  { id: 'approvals', label: 'nav.group.approvals' },
  { id: 'security', label: 'nav.group.security' },
  { id: 'admin', label: 'nav.group.admin' },
];

export function allowed(roles: readonly Role[], action: Action): boolean {
  return can(roles, action).allow;
}

/** Where a person lands after signing in: the work their main role is for. */
export function homePath(roles: readonly Role[]): string {
  if (roles.includes('vendor')) return '/requests';
  if (allowed(roles, 'request.decide') && !roles.includes('security')) return '/approvals';
  if (roles.includes('security')) return '/sessions';
  if (roles.includes('admin')) return '/admin/users';
  const first = ROUTES.find((r) => r.nav && allowed(roles, r.access));
  return first?.pattern ?? '/requests';
}
