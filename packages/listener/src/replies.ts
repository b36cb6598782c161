// What the listener writes on the wire. Decisions come from the policy with their exact
// Exchange reply (REPLIES); replies smtp-server writes on its own (sequence errors, QUIT, RSET,
// the 354…) are mapped here to the same catalogue, so the client never sees a library text.
// A few protocol replies have no entry in the policy catalogue (NOOP, HELP, VRFY, early
// talker): they are worded here, after Exchange where it has a wording.
import { parseReply } from '@mailgw/mail';
import { formatReply, reply, REPLIES, type Reply } from '@mailgw/policy';

export const PROTOCOL_REPLIES = {
  ok: reply(250, '2.0.0', 'OK'),
  help: reply(214, '2.0.0', 'This server supports the following commands: HELO EHLO STARTTLS RCPT DATA RSET MAIL QUIT HELP AUTH NOOP'),
  cannotVrfy: reply(252, '2.1.5', 'Cannot VRFY user'),
  earlyTalker: reply(421, '4.7.0', 'Protocol error: the client spoke before the greeting, closing transmission channel'),
  authAborted: reply(501, '5.0.0', 'Authentication aborted'),
} as const;

/** Text after the code, as smtp-server's send(code, text) wants it. */
export function replyText(r: Reply): string {
  return formatReply(r).slice(4);
}

/** An error for smtp-server's handler callbacks that makes it answer exactly `r`. */
export function replyError(r: Reply): Error & { responseCode: number } {
  return Object.assign(new Error(replyText(r)), { responseCode: r.code });
}

/** Texts that already carry an enhanced status code come from us (policy or this module). */
const OWN = /^\d\.\d{1,3}\.\d{1,3} /;

type Rule = readonly [code: number, match: RegExp, reply: Reply];

const RULES: readonly Rule[] = [
  [500, /^Error: command not recognized$/, REPLIES.unrecognizedCommand],
  [503, /^Error: send (HELO\/EHLO|LHLO) first$/, REPLIES.sendHelloFirst],
  [503, /^Error: nested MAIL command$/, REPLIES.senderAlreadySpecified],
  [503, /^Error: need MAIL command$/, REPLIES.needMail],
  [503, /^Error: need RCPT command$/, REPLIES.needRcpt],
  [503, /^Error: No identity changes permitted$/, REPLIES.alreadyAuthenticated],
  [501, /^Error: Bad (sender|recipient) address syntax$/, REPLIES.invalidAddress],
  [501, /^Authentication aborted$/, PROTOCOL_REPLIES.authAborted],
  [501, /./, REPLIES.invalidArguments],
  [354, /./, REPLIES.startMailInput],
  [221, /./, REPLIES.closing],
  [250, /^Flushed$/, REPLIES.resetting],
  [250, /^OK$/, PROTOCOL_REPLIES.ok],
  [235, /./, REPLIES.authSuccess],
  [214, /./, PROTOCOL_REPLIES.help],
  [252, /./, PROTOCOL_REPLIES.cannotVrfy],
  [552, /maximum message size/, REPLIES.messageTooBig],
  [452, /too many recipients/, REPLIES.tooManyRecipients],
  [421, /You talk too soon$/, PROTOCOL_REPLIES.earlyTalker],
  [421, /^Timeout - closing connection$/, REPLIES.timeout],
  [421, /^Server shutting down$/, REPLIES.shuttingDown],
  [421, /^Error: too many unrecognized commands$/, REPLIES.tooManyErrors],
];

/**
 * What smtp-server wanted to send, as mailgw sends it: one Reply (the shared type of
 * @mailgw/mail), or the lines of a multi-line reply passed through as written.
 */
export type TranslatedReply =
  | { readonly reply: Reply; readonly lines?: undefined; readonly close: boolean }
  | { readonly reply?: undefined; readonly code: number; readonly lines: readonly string[]; readonly close: false };

/** Maps what smtp-server wants to send to what mailgw sends; `close`: the library meant to close after it (it does so only for 421). */
export function translateLibraryReply(code: number, text: string | string[] | null | undefined): TranslatedReply {
  if (Array.isArray(text)) return { code, lines: text, close: false };
  const t = text ?? '';
  // Our own texts (they carry an enhanced code) and AUTH challenges (334) pass as written.
  if (OWN.test(t) || code === 334) return { reply: parseReply(`${code} ${t}`) ?? reply(code, null, t), close: false };
  const rule = RULES.find(([c, m]) => c === code && m.test(t));
  if (rule) return { reply: rule[2], close: code === 421 };
  // Anything unforeseen keeps its meaning with a class-level enhanced code.
  const cls = Math.floor(code / 100);
  const clean = t.replace(/^Error: /i, '') || 'Error';
  return { reply: reply(code, cls >= 2 && cls <= 5 && cls !== 3 ? `${cls}.0.0` : null, clean), close: code === 421 };
}
