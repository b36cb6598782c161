// @mailgw/directory: Active Directory / LDAP for AUTH, Send As addresses, group grants and
// recipient lookup (the I/O shell over ldapts; the rules are in @mailgw/policy's directory.ts).
export { createDirectoryClient, type ConnectionEvent, type DirectoryClient, type DirectoryClientOptions, type Trace } from './client.js';
export { createDirectoryService, decodeRecipientEntry, encodeRecipientEntry, type DirectoryEvent, type DirectoryService, type DirectoryServiceOptions } from './cache.js';
