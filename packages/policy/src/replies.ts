// Every SMTP reply mailgw speaks, in one place, worded as Exchange words them
// (../shared/reference/exchange-model.md). The engine picks replies; the listener sends them.

import { echoText, reply } from '@mailgw/mail';

export { reply, formatReply, type Reply } from '@mailgw/mail';

export const REPLIES = {
  // connection
  serverReady: reply(220, '2.0.0', 'SMTP server ready'),
  closing: reply(221, '2.0.0', 'Service closing transmission channel'),
  blockedClient: (ip: string) => reply(554, '5.7.1', `Access denied, banned sending IP [${ip}]`),
  /** A transport rule's SmtpRejectMessage (Exchange's Edge Rules agent): its code and text, 5.7.1 or 4.7.1. */
  transportRuleRejected: (code: number, text = 'Delivery not authorized, message refused') => reply(code, code >= 500 ? '5.7.1' : '4.7.1', text),
  /** A transport rule's Disconnect: the listener closes the connection after any 421. */
  transportRuleDisconnect: reply(421, '4.7.1', 'Service not available, closing transmission channel'),
  noConnector: (ip: string) => reply(554, '5.7.1', `Access denied, no receive connector accepts connections from [${ip}]`),
  tooManyConnections: reply(421, '4.3.2', 'The maximum number of concurrent server connections has exceeded a limit, closing transmission channel'),
  tooManyConnectionsPerSource: reply(421, '4.3.2', 'The maximum number of concurrent connections has exceeded a limit, closing transmission channel'),
  tooManyErrors: reply(421, '4.7.0', 'Too many errors on this connection, closing transmission channel'),
  /** A trusted balancer's connection that does not start with a valid PROXY header. */
  proxyHeaderInvalid: reply(421, '4.7.0', 'Invalid PROXY protocol header, closing connection'),
  timeout: reply(451, '4.7.0', 'Timeout waiting for client input'),
  connectionTimeout: reply(421, '4.4.1', 'Connection timed out, closing transmission channel'),
  shuttingDown: reply(421, '4.3.2', 'Service not available, closing transmission channel'),
  // HELO / EHLO
  ehloDomainRequired: reply(501, '5.0.0', 'EHLO requires domain address'),
  hello: (fqdn: string, client: string) => reply(250, null, `${fqdn} Hello [${client}]`),
  // STARTTLS
  startTlsReady: reply(220, '2.0.0', 'SMTP server ready'),
  tlsNotAvailable: reply(454, '4.7.0', 'TLS not available due to temporary reason'),
  // AUTH
  authSuccess: reply(235, '2.7.0', 'Authentication successful'),
  authUnrecognized: reply(504, '5.7.4', 'Unrecognized authentication type'),
  authFailed: reply(535, '5.7.3', 'Authentication unsuccessful'),
  authTemporaryFailure: reply(454, '4.7.0', 'Temporary authentication failure'),
  /** The directory could not be asked whether a recipient exists: never a 5xx, never an accept. */
  directoryUnavailable: reply(451, '4.4.3', 'Directory lookup failed, please try again later'),
  /** A recipient whose directory object requires authenticated senders, to an anonymous session: the words of Exchange's categorizer. */
  authenticationRequiredByRecipient: reply(550, '5.7.1', 'RESOLVER.RST.AuthRequired; authentication required'),
  /** A recipient whose delivery restrictions do not let this sender mail it: the words of Exchange's categorizer. */
  notAuthorizedByRecipient: reply(550, '5.7.1', 'RESOLVER.RST.NotAuthorized; not authorized'),
  /** Bounce verification (BATV): a bounce to an address without a valid tag. */
  bounceNotVerified: reply(550, '5.7.1', 'Bounce rejected: not a reply to a message sent from this organization'),
  /** A message larger than a recipient's own limit (Exchange's MaxReceiveSize): the words of Exchange's categorizer; 552 as RFC 1870 6.2 has it. */
  recipientSizeLimit: reply(552, '5.2.3', 'RESOLVER.RST.RecipSizeLimit; message too large for this recipient'),
  /** A message larger than the logged-on directory user may send (Exchange's MaxSendSize). */
  senderSizeLimit: reply(552, '5.2.3', 'RESOLVER.RST.SendSizeLimit.Sender; message too large for this sender'),
  /** A message larger than the organisation lets a sender send (Exchange's Set-TransportConfig -MaxSendSize): the words of Exchange's categorizer. */
  organizationSizeLimit: reply(552, '5.2.3', 'RESOLVER.RST.SendSizeLimit.Org; message too large for this organization'),
  /** recipientVerification: the next hop could not say whether the mailbox exists (failureAction tempfail). */
  recipientVerificationUnavailable: reply(451, '4.4.3', 'Recipient address could not be verified, please try again later'),
  alreadyAuthenticated: reply(503, '5.5.2', 'Already authenticated'),
  // MAIL
  senderOk: reply(250, '2.1.0', 'Sender OK'),
  startTlsRequired: reply(451, '5.7.3', 'STARTTLS is required to send mail'),
  notAuthenticated: reply(530, '5.7.1', 'Client was not authenticated'),
  noSubmitPermission: reply(550, '5.7.1', 'Client does not have permissions to submit to this server'),
  /** Back pressure (back-pressure.ts): the queue is short of memory; the sender keeps the mail and retries. */
  insufficientResources: reply(452, '4.3.1', 'Insufficient system resources'),
  rateLimited: reply(421, '4.4.2', 'Message submission rate for this client has exceeded the configured limit'),
  sendAsDenied: reply(550, '5.7.1', 'Client does not have permissions to send as this sender'),
  anonymousSendAsDenied: reply(550, '5.7.1', 'Anonymous client does not have permissions to send as this sender'),
  /** The header's From/Sender of an authenticated user's message (Exchange 2013 and later word it so, with 5.7.60). */
  headerSenderDenied: reply(550, '5.7.60', 'SMTP; Client does not have permissions to send as this sender'),
  messageTooBig: reply(552, '5.3.4', 'Message size exceeds fixed maximum message size'),
  invalidAddress: reply(501, '5.1.7', 'Invalid address'),
  // RCPT
  recipientOk: reply(250, '2.1.5', 'Recipient OK'),
  tooManyRecipients: reply(452, '4.5.3', 'Too many recipients'),
  unableToRelay: reply(550, '5.7.1', 'Unable to relay'),
  userUnknown: reply(550, '5.1.1', 'User unknown'),
  /** throttlingPolicy.recipientRateLimit reached (Exchange Online's words and code for it). */
  recipientRateLimited: reply(550, '5.1.90', "Your message can't be sent because you've reached your daily limit for message recipients"),
  recipientBlocked: reply(550, '5.7.1', 'Recipient not authorized'),
  // DATA
  startMailInput: reply(354, null, 'Start mail input; end with <CRLF>.<CRLF>'),
  headerTooBig: reply(552, '5.3.4', 'Header size exceeds fixed maximum size'),
  hopCountExceeded: reply(554, '5.4.6', 'Hop count exceeded - possible mail loop'),
  bareLinefeeds: reply(554, '5.6.0', 'Invalid message content, contains bare linefeeds'),
  // The Message-ID comes from the message, the option keyword and domains from the client:
  // echoed only as printable ASCII and bounded, so a reply stays one line of at most 512 octets.
  queued: (messageId: string, queueId: string) => reply(250, '2.6.0', `${echoText(messageId, 250)} [InternalId=${queueId}] Queued mail for delivery`),
  queueUnavailable: reply(451, '4.3.0', 'Temporary server error, please try again later'),
  // anti-spam agents: connection filtering, sender filtering, sender authentication (Exchange's words; RFC 7372 codes)
  blockListed: reply(550, '5.7.1', 'Recipient not authorized, your IP has been found on a block list'),
  blockListedCustom: (text: string) => reply(550, '5.7.1', text),
  senderDenied: reply(554, '5.1.0', 'Sender denied'),
  dmarcReject: (domain: string) => reply(550, '5.7.1', `Access denied, sending domain ${echoText(domain, 255)} does not pass DMARC verification and has a DMARC policy of reject`),
  dmarcQuarantineReject: (domain: string) => reply(550, '5.7.1', `Access denied, sending domain ${echoText(domain, 255)} does not pass DMARC verification and has a DMARC policy of quarantine`),
  spfFail: (domain: string) => reply(550, '5.7.23', `Message rejected: the SPF record of ${echoText(domain, 255)} does not designate this sending IP address`),
  authTempError: reply(451, '4.7.5', 'Sender authentication could not be completed (temporary DNS failure), please try again later'),
  // content filters (Exchange's content filter agent wording)
  contentRejected: reply(550, '5.7.1', 'Message rejected as spam by Content Filtering.'),
  contentTempfail: reply(451, '4.7.1', 'Message deferred by content filtering, please try again later'),
  // a milter's reject/tempfail at MAIL or RCPT, when it gave no reply of its own (Postfix's words)
  filterCommandRejected: reply(550, '5.7.1', 'Command rejected'),
  filterCommandTempfail: reply(451, '4.7.1', 'Service unavailable - try again later'),
  // protocol
  resetting: reply(250, '2.0.0', 'Resetting'),
  sendHelloFirst: reply(503, '5.5.2', 'Send hello first'),
  needMail: reply(503, '5.5.2', 'Need mail command'),
  needRcpt: reply(503, '5.5.2', 'Need rcpt command'),
  senderAlreadySpecified: reply(503, '5.5.2', 'Sender already specified'),
  unrecognizedCommand: reply(500, '5.3.3', 'Unrecognized command'),
  invalidArguments: reply(501, '5.5.4', 'Invalid arguments'),
  // ESMTP parameters (RFC 5321 4.1.1.11: unknown or unadvertised ones get 555) and SMTPUTF8
  // (RFC 6531 3.7.4.1: a UTF-8 address without the SMTPUTF8 parameter gets 553 5.6.7)
  unsupportedParameter: (keyword: string) => reply(555, '5.5.4', `Unsupported option: ${echoText(keyword, 64)}`),
  utf8AddressNeedsSmtpUtf8: reply(553, '5.6.7', 'Non-ASCII addresses require the SMTPUTF8 parameter'),
  // CHUNKING (RFC 3030): each BDAT chunk but the last is acknowledged with its size
  chunkReceived: (octets: number) => reply(250, '2.0.0', `${octets} octets received`),
  bdatInProgress: reply(503, '5.5.1', 'Command not allowed during a BDAT transaction'),
  binaryMimeNeedsBdat: reply(503, '5.5.1', 'BODY=BINARYMIME requires BDAT, not DATA'),
  utf8AddressNotSupported: reply(553, '5.6.7', 'Non-ASCII addresses are not accepted by this server'),
} as const;
