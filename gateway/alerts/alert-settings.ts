import {
  ALERT_KINDS, DEFAULT_ALERT_ROUTES, DEFAULT_ALERT_RULES, type AlertKind, type AlertRecipient, type AlertRoutes, type AlertRule, type AlertSettings,
} from '../../policy/alert-rules.js';
import type { RawConfig } from '../config/schema.js';

/** `[alerts]` as validated, with every key left out taking its default (policy/alert-rules.ts). */
export function alertSettings(raw: RawConfig['alerts']): AlertSettings {
  const rules = {} as Record<AlertKind, AlertRule>;
  for (const kind of ALERT_KINDS) {
    const r = raw[kind];
    const base = DEFAULT_ALERT_RULES[kind];
    rules[kind] = {
      enabled: r.enabled ?? base.enabled,
      severity: r.severity ?? base.severity,
      threshold: r.threshold ?? base.threshold,
      windowMs: r.window ?? base.windowMs,
      suppressMs: r.suppress ?? base.suppressMs,
    };
  }
  const routes = {} as Record<AlertRecipient, readonly AlertKind[]>;
  for (const [to, dflt] of Object.entries(DEFAULT_ALERT_ROUTES) as Array<[AlertRecipient, readonly AlertKind[]]>) {
    const given = raw.routes[to];
    routes[to] = given === undefined ? dflt : given.includes('all') ? ALERT_KINDS : ALERT_KINDS.filter((k) => given.includes(k));
  }
  return { rules, routes: routes as AlertRoutes };
}
