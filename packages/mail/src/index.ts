// @mailgw/mail: the parts of a message every other package shares, pure (no I/O): envelope
// addresses (parsed once, carried as parts), the recipient record, SMTP replies (one shape
// inbound and outbound), RFC 5322 dates and the header parser; and drained(), the one wait for
// backpressure on the streams they are written to.
export * from './address.js';
export * from './recipient.js';
export * from './reply.js';
export * from './date.js';
export * from './header-block.js';
export * from './dsn.js';
export * from './certificate-names.js';
export * from './disclaimer.js';
export * from './filter.js';
export * from './header-edit.js';
export * from './esmtp-params.js';
export * from './readable.js';
export * from './streams.js';
export * from './octet-search.js';
export * from './long-lines.js';
export * from './address-fields.js';
export * from './encoded-words.js';
export * from './journal-report.js';
export * from './replay-envelope.js';
