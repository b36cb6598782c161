// @mailgw/content-filter: the content filters of gateway.yaml as MessageFilters: the
// attachment filter (MIME structure read with mailsplit), rspamd over its HTTP protocol and
// milters over the milter protocol. The I/O lives here; what their
// answers mean is the policy's (policy/src/content-filter.ts, content.ts).
import type { AttachmentFilterConfig, MilterConfig, RspamdConfig } from '@mailgw/config';
import type { MessageFilter } from '@mailgw/mail';
import { attachmentFilter } from './attachment-filter.js';
import { milterFilter } from './milter/filter.js';
import { rspamdFilter } from './rspamd.js';

export { rspamdFilter, SCL_HEADER } from './rspamd.js';
export { milterFilter } from './milter/filter.js';
export { attachmentFilter, scanMimeParts } from './attachment-filter.js';
export { MilterConnection } from './milter/connection.js';
export * as milterProtocol from './milter/protocol.js';

/** The configured content filters, in the order they run: the attachment filter, rspamd, then the milters in file order (policy configuredFilters). None when none is configured. */
export function contentFilters(g: { readonly attachmentFilter?: AttachmentFilterConfig | undefined; readonly rspamd?: RspamdConfig | undefined; readonly milters: readonly MilterConfig[] }): MessageFilter[] {
  return [...(g.attachmentFilter ? [attachmentFilter(g.attachmentFilter)] : []), ...(g.rspamd ? [rspamdFilter(g.rspamd)] : []), ...g.milters.map(milterFilter)];
}
