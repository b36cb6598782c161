// @mailgw/policy: the pure decision core. No sockets, no Redis, no files: config in, decisions
// (verdict + exact SMTP reply + reason) out.
export * from './replies.js';
export * from './decision.js';
export * from './rights.js';
// Addresses and replies are the shared model of @mailgw/mail; the policy speaks them.
export { parseEnvelopeAddress, quoteLocal, formatAddress, addressKey, type EnvelopeAddress, type AddressResult, type MailAddress } from '@mailgw/mail';
export * from './compile.js';
export * from './stages.js';
export * from './header-senders.js';
export * from './parameters.js';
export * from './explain.js';
export * from './content.js';
export * from './antispam.js';
export * from './content-filter.js';
export * from './attachment-filter.js';
export * from './address-rewrite.js';
export * from './transport-rules.js';
export * from './send-connector.js';
export * from './directory.js';
export * from './mta-sts.js';
export * from './tls-report.js';
export * from './outbound-transfer.js';
export * from './back-pressure.js';
export * from './crowded-next-hop.js';
export * from './dane.js';
export * from './sender-reputation.js';
export * from './agent-log.js';
export * from './recipient-verification.js';
export * from './disclaimer-tokens.js';
export * from './system-messages.js';
export * from './message-types.js';
export * from './remote-domains.js';
export * from './originating-client.js';
export * from './origin-filter.js';
export * from './send-as.js';
export { bounceMessage, bounceRecipient, bounceTagging, bounceVerificationText, outboundSender, readBounceTag, taggedSender, type BounceRecipient, type BounceTag, type BounceTagging } from './bounce-verification.js';
export * from './journaling.js';
export * from './pickup.js';
