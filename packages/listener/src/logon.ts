// SMTP AUTH's credential check (Postfix's smtpd_sasl_glue): the brute-force backoff shared by
// every listener, then a local user's password hash or, for a name no local user has, a bind to
// the directory. Every answer is the policy's (authBackoff, authComplete, authDirectory); the
// connection speaks it and keeps the counts (maxLogonFailures).
import type { SMTPServerAuthentication } from 'smtp-server';
import { verifyPassword } from '@mailgw/config';
import { authBackoff, authComplete, authDirectory, type Decision, type Reply, type Session } from '@mailgw/policy';
import type { ListenerContext } from './context.js';
import { authBackoffOf, recentAuthFailures, recordAuthFailure } from './rate-counter.js';

export type LogonCheck =
  /** The session with the user's rights, and the 235 to speak. */
  | { readonly kind: 'accepted'; readonly session: Session; readonly reply: Reply }
  /** Wrong credentials, or refused before they were looked at (backoff): a logon failure. */
  | { readonly kind: 'refused'; readonly decision: Decision; readonly why: string }
  /** The directory could not be asked: 454, not a failure of the client's. */
  | { readonly kind: 'deferred'; readonly decision: Decision };

export async function checkLogon(ctx: Pick<ListenerContext, 'policy' | 'rate' | 'directory'>, s: Session, auth: SMTPServerAuthentication): Promise<LogonCheck> {
  const username = auth.username ?? '';
  const client = s.client.text;
  const backoff = authBackoffOf(ctx.policy);
  // Brute force from this address (any connection, any listener sharing the counter): refused
  // without looking at the credentials until the failures leave the window.
  if (backoff.failures > 0) {
    const d = authBackoff(ctx.policy, s, await recentAuthFailures(ctx.rate, backoff, client));
    if (d.verdict !== 'accept') return { kind: 'refused', decision: d, why: d.reason.message };
  }
  const user = ctx.policy.users.get(username.toLowerCase());
  // PLAIN may name an authorisation identity; mailgw has no proxy authorisation, so one that
  // differs from the authenticated user fails like a wrong password (RFC 4616 section 2).
  const authzid = auth.method === 'PLAIN' ? (auth.authzid ?? '') : '';
  const proxying = authzid !== '' && (auth.authcid ?? '') !== '' && authzid.toLowerCase() !== (auth.authcid ?? '').toLowerCase();
  let r: ReturnType<typeof authComplete>;
  if (!user && ctx.directory && !proxying) {
    // Not a local user: the directory checks the password (a bind as the account).
    r = authDirectory(s, await ctx.directory.logon(username, auth.password ?? ''));
    if (r.decision.reason.code === 'auth-directory-unavailable') return { kind: 'deferred', decision: r.decision };
  } else {
    // Same work whether or not the user exists (verifyPassword checks a dummy hash then).
    const valid = await verifyPassword(auth.password ?? '', user?.passwordHash);
    r = authComplete(ctx.policy, s, username, valid && !proxying);
  }
  if (r.decision.verdict !== 'accept') {
    if (backoff.failures > 0) await recordAuthFailure(ctx.rate, backoff, client);
    return { kind: 'refused', decision: r.decision, why: proxying ? `authorisation identity "${authzid}" differs from the authentication identity` : r.decision.reason.message };
  }
  return { kind: 'accepted', session: r.session, reply: r.decision.reply };
}
