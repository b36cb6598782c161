// @mailgw/content-filter: the content filters of gateway.yaml as MessageFilters: the
// attachment filter (MIME structure read with mailsplit), rspamd over its HTTP protocol and
// milters over the milter protocol. The I/O lives here; what their
// answers mean is the policy's (policy/src/content-filter.ts, content.ts).
import { insideDomains, type AcceptedDomainType, type AttachmentFilterConfig, type DirectoryPreset, type DomainPattern, type MilterConfig, type RemoteDomain, type RspamdConfig, type TransportRule } from '@mailgw/config';
import type { MessageFilter } from '@mailgw/mail';
import { attachmentFilter } from './attachment-filter.js';
import { milterFilter } from './milter/filter.js';
import { rspamdFilter } from './rspamd.js';
import { transportRulesFilter, type GroupDirectory } from './transport-rules.js';
import { remoteDomainsFilter } from './remote-domains.js';

export { rspamdFilter } from './rspamd.js';
export { SCL_HEADER } from '@mailgw/policy';
export { milterFilter } from './milter/filter.js';
export { archiveBytesHeld, attachmentFilter, scanMimeParts } from './attachment-filter.js';
export { zipNames, type ZipFile, type ZipNames, type ZipReading } from './zip-directory.js';
export { archiveKindByName, archiveNames, archivePartKind, type ArchiveKind } from './archive-names.js';
export { gunzippedName } from './tar-gzip.js';
export { isRar, rar4UnicodeName, rarNames } from './rar-names.js';
export { isSevenZip, SEVEN_ZIP_START_BYTES, sevenZipNames } from './seven-zip-names.js';
export { lzma2Decode, lzmaDecode, lzmaProperties } from './lzma.js';
export { UuencodedFiles, uuencodedNames } from './uuencoded-files.js';
export { transportRulesFilter, TRANSPORT_RULES_FILTER_NAME, type GroupDirectory, type RuleDirectory } from './transport-rules.js';
export { remoteDomainsFilter, REMOTE_DOMAINS_FILTER_NAME } from './remote-domains.js';
export { MilterConnection } from './milter/connection.js';
export * as milterProtocol from './milter/protocol.js';

/**
 * The configured content filters, in the order they run: the transport rules (Exchange's Edge
 * Rules agent comes before its content filters), the attachment filter, rspamd, then the milters
 * in file order (policy configuredFilters). None when none is configured.
 */
export function contentFilters(
  g: {
    readonly transportRules?: readonly TransportRule[] | undefined;
    readonly remoteDomains?: readonly RemoteDomain[] | undefined;
    readonly acceptedDomains?: ReadonlyArray<{ readonly domain: DomainPattern; readonly type: AcceptedDomainType }> | undefined;
    readonly attachmentFilter?: AttachmentFilterConfig | undefined;
    readonly rspamd?: RspamdConfig | undefined;
    readonly milters: readonly MilterConfig[];
  },
  directory: GroupDirectory | null = null,
): MessageFilter[] {
  return [...reloadableFilters(g, directory), ...restartOnlyFilters(g)];
}

/**
 * The transport rules as a filter (none when there are none), and the remote domains' (none when
 * none withholds anything): they change on reload. `directory` answers the rules' group and
 * attribute conditions (the attributes named as `g.directory.preset` names them).
 */
export function reloadableFilters(
  g: {
    readonly transportRules?: readonly TransportRule[] | undefined;
    readonly remoteDomains?: readonly RemoteDomain[] | undefined;
    readonly acceptedDomains?: ReadonlyArray<{ readonly domain: DomainPattern; readonly type: AcceptedDomainType }> | undefined;
    readonly directory?: { readonly preset: DirectoryPreset } | null | undefined;
  },
  directory: GroupDirectory | null = null,
): MessageFilter[] {
  const inside = insideDomains(g.acceptedDomains ?? []);
  const remote = remoteDomainsFilter(g.remoteDomains ?? [], inside);
  const rulesDirectory = directory && g.directory ? { lookup: directory, preset: g.directory.preset } : null;
  return [...(g.transportRules && g.transportRules.length > 0 ? [transportRulesFilter(g.transportRules, inside, rulesDirectory)] : []), ...(remote ? [remote] : [])];
}

/** The filters after the transport rules, which hold connections or files and change only at restart: the attachment filter, rspamd, the milters. */
export function restartOnlyFilters(g: { readonly attachmentFilter?: AttachmentFilterConfig | undefined; readonly rspamd?: RspamdConfig | undefined; readonly milters: readonly MilterConfig[] }): MessageFilter[] {
  return [...(g.attachmentFilter ? [attachmentFilter(g.attachmentFilter)] : []), ...(g.rspamd ? [rspamdFilter(g.rspamd)] : []), ...g.milters.map(milterFilter)];
}
