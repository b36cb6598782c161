// Runs one scripted client through the stages, as `mailgw explain` and the golden tests do:
// the policy seen without sockets (Postfix's smtpd_check test driver, in spirit).
import { formatReply } from './replies.js';
import type { Policy } from './compile.js';
import type { Decision } from './decision.js';
import { authComplete, authStart, connect, mail, rcpt, startTls, withTls, type Session } from './stages.js';

export interface Scenario {
  /** Local binding the client connects to, "IP:port" or "[IPv6]:port". */
  readonly binding: string;
  readonly clientIP: string;
  /** STARTTLS before anything else. */
  readonly tls?: boolean;
  /** Authenticate as this user (credentials assumed valid unless authValid is false). */
  readonly auth?: string | null;
  readonly authValid?: boolean;
  readonly authMechanism?: string;
  readonly mailFrom?: string | null;
  readonly size?: number;
  readonly rcpt?: readonly string[];
}

export interface StageResult {
  readonly stage: 'connect' | 'starttls' | 'auth' | 'mail' | 'rcpt';
  readonly input?: string;
  readonly decision: Decision['verdict'];
  readonly reply: string;
  readonly reason: string;
  readonly reasonCode: string;
}

export interface Explanation {
  readonly connector: string | null;
  readonly connectorFile: string | null;
  readonly matchedRange: string | null;
  /** Rights of the session when MAIL was given (after TLS and AUTH). */
  readonly rights: string[];
  readonly rightsSources: Record<string, string[]>;
  readonly stages: StageResult[];
}

export function parseBinding(text: string): { address: string; port: number } | null {
  const m = /^(?:\[([^\]]+)\]|([^:\s]+)):(\d{1,5})$/.exec(text.trim());
  return m ? { address: (m[1] ?? m[2])!, port: Number(m[3]) } : null;
}

export function explain(policy: Policy, s: Scenario): Explanation {
  const stages: StageResult[] = [];
  const push = (stage: StageResult['stage'], d: Decision, input?: string) =>
    stages.push({ stage, ...(input !== undefined ? { input } : {}), decision: d.verdict, reply: formatReply(d.reply), reason: d.reason.message, reasonCode: d.reason.code });

  const b = parseBinding(s.binding);
  const conn = connect(policy, { localAddress: b?.address ?? s.binding, localPort: b?.port ?? 0, clientIP: s.clientIP });
  push('connect', conn.decision, `${s.clientIP} → ${s.binding}`);
  let session: Session | null = conn.session;
  const done = (): Explanation => ({
    connector: conn.session?.connector.name ?? null,
    connectorFile: conn.session?.connector.config.file ?? null,
    matchedRange: conn.matchedRange?.text ?? null,
    rights: session ? [...session.rights.rights] : [],
    rightsSources: session ? Object.fromEntries([...session.rights.grantedBy].map(([r, src]) => [r, [...src]])) : {},
    stages,
  });
  if (!session || conn.decision.verdict !== 'accept') return done();

  if (s.tls && !session.tls) {
    const d = startTls(session);
    push('starttls', d);
    if (d.verdict !== 'accept') return done();
    session = withTls(session);
  }
  if (s.auth) {
    const mech = s.authMechanism ?? 'PLAIN';
    const start = authStart(session, mech);
    if (start.verdict !== 'accept') {
      push('auth', start, `${mech} ${s.auth}`);
    } else {
      const r = authComplete(policy, session, s.auth, s.authValid ?? true);
      push('auth', r.decision, `${mech} ${s.auth}`);
      session = r.session;
    }
  }
  if (s.mailFrom === undefined || s.mailFrom === null) return done();
  const m = mail(policy, session, { sender: s.mailFrom, declaredSize: s.size });
  push('mail', m, `<${s.mailFrom}>${s.size !== undefined ? ` SIZE=${s.size}` : ''}`);
  if (m.verdict !== 'accept') return done();
  let accepted = 0;
  for (const to of s.rcpt ?? []) {
    const r = rcpt(policy, session, { recipient: to, acceptedSoFar: accepted });
    push('rcpt', r.decision, `<${to}>`);
    if (r.decision.verdict === 'accept') accepted++;
  }
  return done();
}
