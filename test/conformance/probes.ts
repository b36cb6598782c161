// The conformance table: SMTP probes (what the client writes → the replies it must get, code
// and enhanced code, in order) with the RFC section or Exchange behaviour each one comes from,
// and what Postfix 3.7 answers where mailgw deliberately differs (it follows Exchange there).
// Run against a live listener over TCP by conformance.test.ts; README "SMTP conformance" points here.
//
// Connectors (conformance.test.ts): Default (usage Internet: anonymous, STARTTLS offered,
// SIZE/8BITMIME/DSN/PIPELINING/SMTPUTF8 advertised) and Bare (anonymous, sizeEnabled Disabled,
// eightBitMimeEnabled/dsnEnabled/smtpUtf8Enabled/chunkingEnabled false) and NoBinary (as Default
// with binaryMimeEnabled false). Default offers CHUNKING and BINARYMIME. Accepted domains: contoso.test
// (Authoritative, mailboxes alice and postmaster), bücher.test (written as A-label in the config).

export interface Step {
  /** Lines written in ONE write (a pipelining group), CRLF added; a Buffer is written as is. */
  readonly send: string | readonly string[] | Buffer;
  /** Expected replies, in order: a prefix of the last line of each ("250 2.1.0", "250"). */
  readonly expect: string | readonly string[];
  /** After the replies the server closes the connection. */
  readonly closes?: boolean;
  /** After the replies: the TLS handshake on this socket (after 220 to STARTTLS). */
  readonly tls?: boolean;
}

export interface Probe {
  readonly name: string;
  readonly connector?: 'Default' | 'Bare' | 'NoBinary';
  /** Where the expected answer comes from: RFC section, or Exchange's behaviour. */
  readonly source: string;
  /** What Postfix 3.7 answers where mailgw follows Exchange (or is stricter) instead. */
  readonly postfix?: string;
  readonly steps: readonly Step[];
}

const EHLO: Step = { send: 'EHLO client.test', expect: '250' };
const MAIL: Step = { send: 'MAIL FROM:<someone@example.net>', expect: '250 2.1.0' };
const RCPT: Step = { send: 'RCPT TO:<alice@contoso.test>', expect: '250 2.1.5' };
const MESSAGE = 'From: <someone@example.net>\r\nTo: <alice@contoso.test>\r\nSubject: probe\r\n\r\nbody\r\n.';
const long = (n: number) => 'v'.repeat(n);
const BODY = 'From: <someone@example.net>\r\nSubject: chunks\r\n\r\nbody\r\n';
/** "BDAT <n> [LAST]" and the n octets, as one write. */
/** A binary body: header lines, then octets with NUL, bare CR, bare LF and CRLF.CRLF. */
const BINARY = Buffer.concat([Buffer.from('From: <someone@example.net>\r\nSubject: binary\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: binary\r\n\r\n'), Buffer.from([0, 1, 0x0a, 0x0d, 0x41, 0x0d, 0x0a, 0x2e, 0x0d, 0x0a, 0xff, 0x80])]);
const bdat = (data: string, last = false) => Buffer.from(`BDAT ${Buffer.byteLength(data)}${last ? ' LAST' : ''}\r\n${data}`, 'utf8');

export const PROBES: readonly Probe[] = [
  // ------------------------------------------------------------ sequencing (RFC 5321 4.1.4, 4.3.2)
  { name: 'MAIL before EHLO', source: 'RFC 5321 4.1.4; Exchange "Send hello first"', steps: [{ send: 'MAIL FROM:<a@example.net>', expect: '503 5.5.2' }] },
  { name: 'RCPT before MAIL', source: 'RFC 5321 4.1.4 (503 bad sequence)', steps: [EHLO, { send: 'RCPT TO:<alice@contoso.test>', expect: '503 5.5.2' }] },
  { name: 'DATA before MAIL', source: 'RFC 5321 4.1.4', steps: [EHLO, { send: 'DATA', expect: '503 5.5.2' }] },
  { name: 'DATA after MAIL without RCPT', source: 'RFC 5321 4.1.1.4; Postfix: 554 5.5.1 No valid recipients', postfix: '554 5.5.1', steps: [EHLO, MAIL, { send: 'DATA', expect: '503 5.5.2' }] },
  { name: 'nested MAIL', source: 'RFC 5321 4.1.4; Exchange "Sender already specified"', steps: [EHLO, MAIL, { send: 'MAIL FROM:<b@example.net>', expect: '503 5.5.2' }] },
  { name: 'unknown command', source: 'RFC 5321 4.2.4 (500); Exchange 500 5.3.3', postfix: '502 5.5.2', steps: [EHLO, { send: 'FROB', expect: '500 5.3.3' }] },
  { name: 'EHLO without a domain', source: 'RFC 5321 4.1.1.1; Exchange "501 5.5.4 Invalid arguments"', steps: [{ send: 'EHLO', expect: '501 5.5.4' }] },
  { name: 'a whole transaction', source: 'RFC 5321 3.3; Exchange 250 2.6.0 Queued mail for delivery', steps: [EHLO, MAIL, RCPT, { send: 'DATA', expect: '354' }, { send: MESSAGE, expect: '250 2.6.0' }] },
  // ------------------------------------------------------------ VRFY / EXPN / HELP / NOOP
  { name: 'VRFY', source: 'RFC 5321 3.5.3 (252: cannot verify, will accept)', postfix: '252 2.0.0', steps: [EHLO, { send: 'VRFY alice', expect: '252 2.1.5' }] },
  { name: 'EXPN', source: 'RFC 5321 3.5.2 (optional; not implemented, as Exchange)', postfix: '502 5.5.2', steps: [EHLO, { send: 'EXPN staff', expect: '500 5.3.3' }] },
  { name: 'HELP', source: 'RFC 5321 4.1.1.8', steps: [{ send: 'HELP', expect: '214 2.0.0' }] },
  { name: 'NOOP in a transaction keeps it', source: 'RFC 5321 4.1.1.9', steps: [EHLO, MAIL, { send: 'NOOP', expect: '250 2.0.0' }, RCPT] },
  // ------------------------------------------------------------ RSET at every state (RFC 5321 4.1.1.5)
  { name: 'RSET before EHLO', source: 'RFC 5321 4.1.1.5', steps: [{ send: 'RSET', expect: '250 2.0.0' }] },
  { name: 'RSET after EHLO', source: 'RFC 5321 4.1.1.5', steps: [EHLO, { send: 'RSET', expect: '250 2.0.0' }, MAIL] },
  { name: 'RSET after MAIL forgets the sender', source: 'RFC 5321 4.1.1.5', steps: [EHLO, MAIL, { send: 'RSET', expect: '250 2.0.0' }, { send: 'RCPT TO:<alice@contoso.test>', expect: '503 5.5.2' }, MAIL] },
  { name: 'RSET after RCPT forgets the recipients', source: 'RFC 5321 4.1.1.5', steps: [EHLO, MAIL, RCPT, { send: 'RSET', expect: '250 2.0.0' }, { send: 'DATA', expect: '503 5.5.2' }] },
  { name: 'RSET after a delivered message', source: 'RFC 5321 4.1.1.5', steps: [EHLO, MAIL, RCPT, { send: 'DATA', expect: '354' }, { send: MESSAGE, expect: '250 2.6.0' }, { send: 'RSET', expect: '250 2.0.0' }, MAIL] },
  { name: 'RSET with an argument', source: 'RFC 5321 4.1.1.5 (no parameters)', steps: [EHLO, { send: 'RSET now', expect: '501 5.5.4' }] },
  // ------------------------------------------------------------ QUIT at every state (RFC 5321 4.1.1.10)
  { name: 'QUIT before EHLO', source: 'RFC 5321 4.1.1.10', steps: [{ send: 'QUIT', expect: '221 2.0.0', closes: true }] },
  { name: 'QUIT after EHLO', source: 'RFC 5321 4.1.1.10', steps: [EHLO, { send: 'QUIT', expect: '221 2.0.0', closes: true }] },
  { name: 'QUIT after MAIL', source: 'RFC 5321 4.1.1.10 (transaction aborted)', steps: [EHLO, MAIL, { send: 'QUIT', expect: '221 2.0.0', closes: true }] },
  { name: 'QUIT after RCPT', source: 'RFC 5321 4.1.1.10 (transaction aborted)', steps: [EHLO, MAIL, RCPT, { send: 'QUIT', expect: '221 2.0.0', closes: true }] },
  { name: 'QUIT after a message', source: 'RFC 5321 4.1.1.10', steps: [EHLO, MAIL, RCPT, { send: 'DATA', expect: '354' }, { send: MESSAGE, expect: '250 2.6.0' }, { send: 'QUIT', expect: '221 2.0.0', closes: true }] },
  // ------------------------------------------------------------ parameters (RFC 5321 4.1.1.11, 4.1.2)
  { name: 'unknown RCPT parameter (issue 19 probe 2)', source: 'RFC 5321 4.1.1.11 (555)', steps: [EHLO, MAIL, { send: 'RCPT TO:<postmaster@contoso.test> FOO=bar', expect: '555 5.5.4' }] },
  { name: 'unknown MAIL parameter', source: 'RFC 5321 4.1.1.11', steps: [EHLO, { send: 'MAIL FROM:<a@example.net> XYZZY', expect: '555 5.5.4' }] },
  { name: 'a RCPT parameter on MAIL', source: 'RFC 3461 4.1 (NOTIFY is a RCPT parameter)', steps: [EHLO, { send: 'MAIL FROM:<a@example.net> NOTIFY=NEVER', expect: '555 5.5.4' }] },
  { name: 'a parameter given twice', source: 'RFC 3461 4; RFC 5321 4.1.2', steps: [EHLO, { send: 'MAIL FROM:<a@example.net> SIZE=10 SIZE=10', expect: '501 5.5.4' }] },
  { name: 'garbage after the path', source: 'RFC 5321 4.1.2 (esmtp-keyword)', steps: [EHLO, MAIL, { send: 'RCPT TO:<alice@contoso.test> <x@other.test>', expect: '501 5.5.4' }] },
  { name: 'SIZE within the limit', source: 'RFC 1870 6', steps: [EHLO, { send: 'MAIL FROM:<a@example.net> SIZE=1000', expect: '250 2.1.0' }] },
  { name: 'SIZE over maxMessageSize', source: 'RFC 1870 6 (552); Exchange 552 5.3.4', steps: [EHLO, { send: 'MAIL FROM:<a@example.net> SIZE=999999999999', expect: '552 5.3.4' }] },
  { name: 'SIZE not a number', source: 'RFC 1870 6 (size-value 1*20DIGIT)', steps: [EHLO, { send: 'MAIL FROM:<a@example.net> SIZE=12k', expect: '501 5.5.4' }] },
  { name: 'SIZE without a value', source: 'RFC 1870 6', steps: [EHLO, { send: 'MAIL FROM:<a@example.net> SIZE', expect: '501 5.5.4' }] },
  { name: 'BODY=8BITMIME', source: 'RFC 6152 3', steps: [EHLO, { send: 'MAIL FROM:<a@example.net> BODY=8BITMIME', expect: '250 2.1.0' }] },
  { name: 'BODY=BINARYMIME where chunkingEnabled is false', connector: 'Bare', source: 'RFC 3030 3 (BINARYMIME only with CHUNKING); RFC 5321 4.1.1.11 (unadvertised: 555)', steps: [EHLO, { send: 'MAIL FROM:<a@example.net> BODY=BINARYMIME', expect: '555 5.5.4' }] },
  { name: 'BODY=BINARYMIME where binaryMimeEnabled is false', connector: 'NoBinary', source: 'RFC 3030 3; RFC 5321 4.1.1.11 (an unadvertised body type: 555)', postfix: 'offers no BINARYMIME', steps: [EHLO, { send: 'MAIL FROM:<a@example.net> BODY=BINARYMIME', expect: '555 5.5.4' }, { send: 'MAIL FROM:<a@example.net> BODY=8BITMIME', expect: '250 2.1.0' }] },
  { name: 'BODY with an unknown value', source: 'RFC 6152 3, RFC 3030 3 (7BIT, 8BITMIME, BINARYMIME)', steps: [EHLO, { send: 'MAIL FROM:<a@example.net> BODY=BASE64', expect: '501 5.5.4' }] },
  { name: 'RET and ENVID in xtext', source: 'RFC 3461 4.3, 4.4', steps: [EHLO, { send: 'MAIL FROM:<a@example.net> RET=HDRS ENVID=QQ+2B1', expect: '250 2.1.0' }] },
  { name: 'RET with a wrong value', source: 'RFC 3461 4.3', steps: [EHLO, { send: 'MAIL FROM:<a@example.net> RET=ALL', expect: '501 5.5.4' }] },
  { name: 'ENVID that is not xtext', source: 'RFC 3461 4 (xtext: "+" then two upper-case hex digits)', steps: [EHLO, { send: 'MAIL FROM:<a@example.net> ENVID=a+zz', expect: '501 5.5.4' }] },
  { name: 'ENVID smuggling CR LF in xtext', source: 'RFC 3461 4 (xtext is printable); log/header injection', steps: [EHLO, { send: 'MAIL FROM:<a@example.net> ENVID=a+0D+0AX-Injected:+201', expect: '501 5.5.4' }] },
  { name: 'ENVID over 100 characters', source: 'RFC 3461 4.4', steps: [EHLO, { send: `MAIL FROM:<a@example.net> ENVID=${long(101)}`, expect: '501 5.5.4' }] },
  { name: 'NOTIFY and ORCPT', source: 'RFC 3461 4.1, 4.2', steps: [EHLO, MAIL, { send: 'RCPT TO:<alice@contoso.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;alice+40contoso.test', expect: '250 2.1.5' }] },
  { name: 'NOTIFY=NEVER combined', source: 'RFC 3461 4.1', steps: [EHLO, MAIL, { send: 'RCPT TO:<alice@contoso.test> NOTIFY=NEVER,DELAY', expect: '501 5.5.4' }] },
  { name: 'ORCPT without addr-type', source: 'RFC 3461 4.2', steps: [EHLO, MAIL, { send: 'RCPT TO:<alice@contoso.test> ORCPT=alice@contoso.test', expect: '501 5.5.4' }] },
  { name: 'AUTH= where AUTH is not advertised', source: 'RFC 4954 5 and RFC 5321 4.1.1.11 (unadvertised: 555)', steps: [EHLO, { send: 'MAIL FROM:<a@example.net> AUTH=<>', expect: '555 5.5.4' }] },
  { name: 'unadvertised SIZE, BODY, RET on Bare', connector: 'Bare', source: 'RFC 5321 4.1.1.11 (parameters of extensions not offered: 555)', steps: [EHLO, { send: 'MAIL FROM:<a@example.net> SIZE=10', expect: '555 5.5.4' }, { send: 'MAIL FROM:<a@example.net> BODY=8BITMIME', expect: '555 5.5.4' }, { send: 'MAIL FROM:<a@example.net> RET=FULL', expect: '555 5.5.4' }, MAIL, { send: 'RCPT TO:<alice@contoso.test> NOTIFY=NEVER', expect: '555 5.5.4' }] },
  // ------------------------------------------------------------ SMTPUTF8 (RFC 6531)
  { name: 'SMTPUTF8 without smtpUtf8Enabled (issue 19 probe 3)', connector: 'Bare', source: 'RFC 6531 3.4 (parameter only when advertised: 555); 3.7.4.1 (553 5.6.7)', steps: [EHLO, { send: 'MAIL FROM:<jörg@ext.test> SMTPUTF8', expect: '555 5.5.4' }, { send: 'MAIL FROM:<jörg@ext.test>', expect: '553 5.6.7' }, MAIL, { send: 'RCPT TO:<u@exämple.test>', expect: '553 5.6.7' }] },
  { name: 'UTF-8 sender without SMTPUTF8', source: 'RFC 6531 3.7.4.1', steps: [EHLO, { send: 'MAIL FROM:<jörg@ext.test>', expect: '553 5.6.7' }] },
  { name: 'UTF-8 recipient in a transaction without SMTPUTF8', source: 'RFC 6531 3.7.4.1', steps: [EHLO, MAIL, { send: 'RCPT TO:<jörg@contoso.test>', expect: '553 5.6.7' }] },
  { name: 'SMTPUTF8 with a value', source: 'RFC 6531 3.4 (no value)', steps: [EHLO, { send: 'MAIL FROM:<a@example.net> SMTPUTF8=yes', expect: '501 5.5.4' }] },
  { name: 'SMTPUTF8 on RCPT', source: 'RFC 6531 3.4 (a MAIL parameter)', steps: [EHLO, MAIL, { send: 'RCPT TO:<alice@contoso.test> SMTPUTF8', expect: '555 5.5.4' }] },
  { name: 'SMTPUTF8: UTF-8 sender; U-label domain judged as its A-label', source: 'RFC 6531 3.2; RFC 5890 (bücher.test = xn--bcher-kva.test, accepted)', steps: [EHLO, { send: 'MAIL FROM:<jörg@ext.test> SMTPUTF8', expect: '250 2.1.0' }, { send: 'RCPT TO:<alice@bücher.test>', expect: '250 2.1.5' }, { send: 'RCPT TO:<alice@xn--bcher-kva.test>', expect: '250 2.1.5' }, { send: 'RCPT TO:<u@exämple.test>', expect: '550 5.7.1' }] },
  // ------------------------------------------------------------ lengths (RFC 5321 4.5.3.1)
  { name: '70-character local part (issue 19 probe 1: VERP/SRS)', source: 'RFC 5321 4.5.3.1 (no limit where avoidable); as Postfix', steps: [EHLO, { send: `MAIL FROM:<${long(70)}@lists.ext.test>`, expect: '250 2.1.0' }] },
  { name: '512-octet local part: the cap', source: 'mailgw MAX_LOCAL_PART_OCTETS', steps: [EHLO, { send: `MAIL FROM:<${long(512)}@ext.test>`, expect: '250 2.1.0' }] },
  { name: '513-octet local part', source: 'mailgw MAX_LOCAL_PART_OCTETS (RFC 5321 4.5.3.1.10: 501 path too long)', postfix: '250 (no limit below its 2048-byte line)', steps: [EHLO, { send: `MAIL FROM:<${long(513)}@ext.test>`, expect: '501 5.1.7' }] },
  { name: 'path over 1000 octets', source: 'mailgw MAX_PATH_OCTETS', postfix: '250 (no limit below its 2048-byte line)', steps: [EHLO, MAIL, { send: `RCPT TO:<${long(500)}.${long(500)}@contoso.test>`, expect: '501 5.1.7' }] },
  { name: '1000-octet command line', source: 'RFC 5321 4.5.3.1.4 (512 octets minimum; longer lines accepted)', steps: [EHLO, { send: `NOOP ${long(995)}`, expect: '250 2.0.0' }] },
  { name: 'a command line over 16 KB', source: "smtp-server's command limit (16 KB): 421 and close, as for a flood", steps: [EHLO, { send: `NOOP ${long(17 * 1024)}`, expect: '421', closes: true }] },
  // ------------------------------------------------------------ NUL and 8-bit bytes in commands
  { name: 'NUL inside a command', source: 'RFC 5321 4.1.1 (commands are printable ASCII)', steps: [EHLO, { send: Buffer.from('NO\0OP\r\n', 'latin1'), expect: '500 5.3.3' }, { send: 'NOOP', expect: '250 2.0.0' }] },
  { name: 'NUL inside an address', source: 'RFC 5321 4.1.2', steps: [EHLO, { send: Buffer.from('MAIL FROM:<a\0b@example.net>\r\n', 'latin1'), expect: '501 5.1.7' }] },
  { name: 'an 8-bit byte that is not UTF-8 in an address (with SMTPUTF8)', source: 'RFC 6531 3.3 (UTF-8 only)', steps: [EHLO, { send: Buffer.from('MAIL FROM:<j\xf6rg@example.net> SMTPUTF8\r\n', 'latin1'), expect: '501 5.1.7' }] },
  { name: 'an 8-bit byte in an address without SMTPUTF8', source: 'RFC 6531 3.7.4.1; RFC 5321 4.1.2 (ASCII)', steps: [EHLO, { send: Buffer.from('MAIL FROM:<j\xf6rg@example.net>\r\n', 'latin1'), expect: '501 5.1.7' }] },
  // ------------------------------------------------------------ pipelining (RFC 2920)
  { name: 'a pipelined envelope: replies in order', source: 'RFC 2920 3.1', steps: [EHLO, { send: ['MAIL FROM:<a@example.net>', 'RCPT TO:<alice@contoso.test>', 'RCPT TO:<user@other.test>', 'RCPT TO:<postmaster@contoso.test>', 'DATA'], expect: ['250 2.1.0', '250 2.1.5', '550 5.7.1', '250 2.1.5', '354'] }, { send: MESSAGE, expect: '250 2.6.0' }] },
  { name: 'a pipelined group with errors in the middle', source: 'RFC 2920 3.1 (each command answered, in order)', steps: [EHLO, { send: ['RSET', 'MAIL FROM:<a@example.net> FOO', 'MAIL FROM:<a@example.net>', 'RCPT TO:<x@contoso.test> NOTIFY=BAD', 'NOOP', 'QUIT'], expect: ['250 2.0.0', '555 5.5.4', '250 2.1.0', '501 5.5.4', '250 2.0.0', '221 2.0.0'], closes: true }] },
  { name: 'a pipelined group ending the message and starting the next', source: 'RFC 2920 3.1', steps: [EHLO, MAIL, RCPT, { send: 'DATA', expect: '354' }, { send: [MESSAGE, 'MAIL FROM:<b@example.net>', 'RCPT TO:<alice@contoso.test>', 'RSET'], expect: ['250 2.6.0', '250 2.1.0', '250 2.1.5', '250 2.0.0'] }] },
  // ------------------------------------------------------------ CHUNKING (RFC 3030)
  { name: 'BDAT LAST: one chunk', source: 'RFC 3030 2 (250 after LAST means what it means after DATA)', steps: [EHLO, MAIL, RCPT, { send: bdat(BODY, true), expect: '250 2.6.0' }] },
  { name: 'BDAT chunks pipelined, then BDAT 0 LAST', source: 'RFC 3030 2, 4.2 (each chunk answered; a zero-length last chunk)', steps: [EHLO, MAIL, RCPT, { send: Buffer.concat([bdat(BODY.slice(0, 20)), bdat(BODY.slice(20)), Buffer.from('BDAT 0 LAST\r\n')]), expect: ['250 2.0.0', '250 2.0.0', '250 2.6.0'] }, MAIL] },
  { name: 'BDAT before RCPT: the chunk is read, then refused (its bytes are no commands)', source: 'RFC 3030 2 (the server reads the chunk before replying)', steps: [EHLO, MAIL, { send: bdat('QUIT\r\n', true), expect: '503 5.5.2' }, { send: 'NOOP', expect: '250 2.0.0' }] },
  { name: 'BDAT over maxMessageSize (64KB here), in two chunks', source: 'RFC 3030 2 with RFC 1870 (the limits of DATA); Exchange 552 5.3.4', steps: [EHLO, MAIL, RCPT, { send: Buffer.concat([bdat(`Subject: big\r\n\r\n${long(40_000)}\r\n`), bdat(`${long(40_000)}\r\n`, true)]), expect: ['250 2.0.0', '552 5.3.4'] }, MAIL] },
  { name: 'BDAT with 31 Received headers', source: 'Exchange maxHopCount 30: 554 5.4.6, as after DATA', steps: [EHLO, MAIL, RCPT, { send: bdat(`${'Received: from a.test by b.test; Mon, 30 Nov 2026 10:00:00 +0000\r\n'.repeat(31)}Subject: loop\r\n\r\nbody\r\n`, true), expect: '554 5.4.6' }] },
  { name: 'RSET after a BDAT chunk that was already refused (hop count), before LAST', source: 'RFC 3030 2; the refused transaction is dropped, the connection goes on', steps: [EHLO, MAIL, RCPT, { send: bdat(`${'Received: from a.test by b.test; Mon, 30 Nov 2026 10:00:00 +0000\r\n'.repeat(31)}Subject: loop\r\n\r\n`), expect: '250 2.0.0' }, { send: bdat('body\r\n'), expect: '250 2.0.0' }, { send: 'RSET', expect: '250 2.0.0' }, MAIL, RCPT, { send: bdat(BODY, true), expect: '250 2.6.0' }] },
  { name: 'BDAT without a size', source: 'RFC 3030 2 (bdat-cmd syntax)', steps: [EHLO, MAIL, RCPT, { send: 'BDAT LAST', expect: '501 5.5.4' }] },
  { name: 'DATA and RCPT inside a BDAT transaction', source: 'RFC 3030 2 (no DATA once BDAT started)', steps: [EHLO, MAIL, RCPT, { send: bdat('Subject: x\r\n'), expect: '250 2.0.0' }, { send: 'DATA', expect: '503 5.5.1' }, { send: 'RCPT TO:<postmaster@contoso.test>', expect: '503 5.5.1' }, { send: bdat('\r\nbody\r\n', true), expect: '250 2.6.0' }] },
  { name: 'RSET inside a BDAT transaction', source: 'RFC 3030 2 (RSET discards the chunks)', steps: [EHLO, MAIL, RCPT, { send: bdat('Subject: x\r\n'), expect: '250 2.0.0' }, { send: 'RSET', expect: '250 2.0.0' }, { send: bdat('abc', true), expect: '503 5.5.2' }, MAIL] },
  // ------------------------------------------------------------ BINARYMIME (RFC 3030 3)
  { name: 'BODY=BINARYMIME then BDAT LAST with binary octets (NUL, bare CR and LF)', source: 'RFC 3030 3 (binary: the bare CR/LF rules of DATA do not apply); Exchange BinaryMimeEnabled', postfix: 'offers no BINARYMIME', steps: [EHLO, { send: 'MAIL FROM:<someone@example.net> BODY=BINARYMIME', expect: '250 2.1.0' }, RCPT, { send: Buffer.concat([Buffer.from(`BDAT ${BINARY.length} LAST\r\n`), BINARY]), expect: '250 2.6.0' }] },
  { name: 'DATA after BODY=BINARYMIME', source: 'RFC 3030 3 (DATA after BODY=BINARYMIME: 503); the transaction stays for BDAT', steps: [EHLO, { send: 'MAIL FROM:<someone@example.net> BODY=BINARYMIME', expect: '250 2.1.0' }, RCPT, { send: 'DATA', expect: '503 5.5.1' }, { send: bdat(BODY, true), expect: '250 2.6.0' }] },
  { name: 'bare LF in a BDAT chunk without BINARYMIME', source: 'RFC 5321 2.3.8 (as after DATA: bareLinefeedRejectionEnabled); Exchange 554 5.6.0', steps: [EHLO, MAIL, RCPT, { send: bdat('Subject: x\r\n\r\nbare\nLF\r\n', true), expect: '554 5.6.0' }] },
  { name: 'BDAT where chunkingEnabled is false', connector: 'Bare', source: 'RFC 3030 (CHUNKING not offered)', postfix: 'advertises CHUNKING (3.4+)', steps: [EHLO, MAIL, RCPT, { send: 'BDAT 5 LAST', expect: '500 5.3.3' }] },
  // ------------------------------------------------------------ STARTTLS (RFC 3207)
  { name: 'STARTTLS with an argument', source: 'RFC 3207 4 (no parameters)', steps: [EHLO, { send: 'STARTTLS now', expect: '501 5.5.4' }] },
  {
    name: 'STARTTLS with commands buffered behind it: discarded (command injection)',
    source: 'RFC 3207 4.2, 5 (the server must discard what came before the handshake)',
    steps: [EHLO, { send: ['STARTTLS', 'MAIL FROM:<injected@example.net>', 'RCPT TO:<alice@contoso.test>'], expect: '220 2.0.0', tls: true }, { send: 'RCPT TO:<alice@contoso.test>', expect: '503 5.5.2' }, EHLO, { send: 'RCPT TO:<alice@contoso.test>', expect: '503 5.5.2' }, MAIL, RCPT],
  },
  { name: 'STARTTLS forgets EHLO', source: 'RFC 3207 4.2 (state as after the greeting)', steps: [EHLO, { send: 'STARTTLS', expect: '220 2.0.0', tls: true }, { send: 'MAIL FROM:<a@example.net>', expect: '503 5.5.2' }, EHLO, MAIL] },
  { name: 'STARTTLS twice', source: 'RFC 3207 4.2 (not advertised after the handshake)', steps: [EHLO, { send: 'STARTTLS', expect: '220 2.0.0', tls: true }, EHLO, { send: 'STARTTLS', expect: '5' }] },
];
