import type { Role } from '../../../../policy/types.js';
import type { Approval, RequestChange } from '../api/api-types.js';
import { useI18n } from '../i18n/i18n.js';

/** What a request still needs, in words: "device manager and security" (each slot: any one of its roles). */
export function StillNeeded({ slots }: { slots: Role[][] }) {
  const { t, name } = useI18n();
  if (slots.length === 0) return <span class="muted">{t('request.nothingNeeded')}</span>;
  return (
    <ul class="plain-list still-needed">
      {slots.map((slot, i) => (
        <li key={i}>
          {slot.length === 1
            ? t('request.needOne', { role: name('role', slot[0]) })
            : t('request.needAnyOf', { roles: slot.map((r) => name('role', r)).join(t('common.listSeparator')) })}
        </li>
      ))}
    </ul>
  );
}

/** Profile swaps that were changes, not narrowings (S-1.3): who made them, and whose approvals lapsed. */
export function RequestChanges({ changes }: { changes: RequestChange[] | undefined }) {
  const i18n = useI18n();
  const { t } = i18n;
  if (!changes || changes.length === 0) return null;
  return (
    <ul class="plain-list request-changes">
      {changes.map((c) => (
        <li key={c.by + c.at} data-change={c.to}>
          <span class="badge badge-warn">{t('request.changed')}</span>{' '}
          {t('request.profileChanged', { name: c.by, from: c.from, to: c.to, time: i18n.time(c.at) })}{' '}
          {c.lapsed.length > 0 ? t('request.approvalsLapsed', { names: c.lapsed.map((a) => a.by).join(t('common.listSeparator')) }) : ''}
        </li>
      ))}
    </ul>
  );
}

export function ApprovalList({ approvals }: { approvals: Approval[] }) {
  const i18n = useI18n();
  const { t, name } = i18n;
  if (approvals.length === 0) return <span class="muted">{t('request.noApprovals')}</span>;
  return (
    <ul class="plain-list">
      {approvals.map((a) => (
        <li key={a.by + a.at}>
          {t('request.approvedBy', { name: a.by, roles: a.roles.map((r) => name('role', r)).join(t('common.listSeparator')), time: i18n.time(a.at) })}
          {a.narrowing && <span class="badge badge-info">{t('request.narrowed')}</span>}
          {a.comment && <span class="muted"> — {a.comment}</span>}
        </li>
      ))}
    </ul>
  );
}
