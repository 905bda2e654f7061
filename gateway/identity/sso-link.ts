import { InputError } from './users.js';
import type { Runtime } from '../runtime.js';

/**
 * An administrator links an existing account to an identity-provider account (issuer + subject),
 * or unlinks it (R-A.4d). Single sign-on never links by itself: a name the IdP gives that belongs
 * to an unlinked account is refused (sso-accounts.ts), so a reused or spoofed name cannot take
 * over a local account. Vendors keep local accounts; one IdP account links to one account at most.
 */
export async function setSsoLink(rt: Runtime, name: string, link: { issuer: string; subject: string } | null, actor: string): Promise<void> {
  const user = await rt.store.getUser(name);
  if (!user) throw new InputError('NOT_FOUND', `no user named ${name}`);
  if (link === null) {
    await rt.store.updateUser(name, { sso: null });
    await rt.audit.record('user.sso_unlinked', { actor, outcome: 'ok', data: { user: name, was: user.sso } });
    return;
  }
  if (user.roles.includes('vendor')) throw new InputError('SSO_ROLE_NOT_ALLOWED', `${name} is a vendor account; vendors sign in with their Portcullis password and TOTP code`);
  if (link.subject === '' || link.subject.length > 255 || /\p{Cc}/u.test(link.subject)) throw new InputError('INVALID_INPUT', 'the subject is 1-255 characters on one line, as the IdP puts it in the "sub" claim');
  const holder = await rt.store.findUserBySso(link.issuer, link.subject);
  if (holder && holder.name !== name) throw new InputError('ALREADY_EXISTS', `that identity-provider account is already linked to ${holder.name}`);
  await rt.store.updateUser(name, { sso: link });
  await rt.audit.record('user.sso_linked', { actor, outcome: 'ok', data: { user: name, issuer: link.issuer, subject: link.subject, was: user.sso } });
}
