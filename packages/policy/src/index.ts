// @mailgw/policy: the pure decision core. No sockets, no Redis, no files: config in, decisions
// (verdict + exact SMTP reply + reason) out.
export * from './replies.js';
export * from './decision.js';
export * from './rights.js';
export * from './address.js';
export * from './compile.js';
export * from './stages.js';
export * from './explain.js';
