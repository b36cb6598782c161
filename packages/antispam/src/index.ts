// @mailgw/antispam: the I/O of Exchange's Edge anti-spam agents. The DNS resolver they share
// (timed out, budgeted, cached in Redis), the DNS list lookups of connection filtering, and
// sender authentication (SPF, DKIM, DMARC, ARC by mailauth) as a message filter, sender
// reputation's counting (the IP Block List it feeds is @mailgw/queue's). Every
// decision is the policy's (@mailgw/policy antispam.ts).
export * from './dns.js';
export * from './ip-lists.js';
export * from './sender-auth.js';
export * from './sender-reputation.js';
export * from './reverse-lookup.js';
export * from './gateway.js';
