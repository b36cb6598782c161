// @mailgw/config: the files an admin writes, as typed, validated values. Pure; the disk
// loader lives in '@mailgw/config/load'.
export * from './ip-range.js';
export * from './units.js';
export * from './domain.js';
export * from './vocabulary.js';
export * from './issues.js';
export * from './password.js';
export { connectorSchema, connectorShape, connectorRuleIssues, type ConnectorConfig, type ConnectorInput } from './connector-schema.js';
export { TLS_REPORT_KEYS, tlsReportsSchema, type TlsReportsConfig, gatewaySchema, gatewayShape, mailboxAddress, quarantineMailboxOf, userSchema, type GatewayFileConfig, type GatewayInput, type HttpConfig, type LogsConfig, LOG_RETENTION_DEFAULTS, type RouteConfig, type UserConfig } from './gateway-schema.js';
export type { Binding } from './zod-helpers.js';
export { parseBinding } from './zod-helpers.js';
export { antispamConnectorShape, antispamGatewayShape, type DnsConfig, type IPAllowListProviderConfig, type IPBlockListConfig, type IPBlockListProviderConfig, type SenderAuthenticationConfig, type SenderFilterConfig, type SenderReputationConfig } from './antispam-schema.js';
export { MAX_PROCESSES, processCounts, processesSchema, type ProcessesConfig } from './processes-schema.js';
export {
  compileRoutes,
  describeTarget,
  matchRoute,
  parseRouteTo,
  type CompiledRoute,
  type CompileRoutesOptions,
  type CompileRoutesResult,
  type Env,
  type MaildirTarget,
  type MxTarget,
  type ParsedRouteTo,
  type RouteAuth,
  type RouteInput,
  type RouteSecret,
  type RouteTarget,
  type SecretsMode,
  type SmtpTarget,
  type SmartHost,
  type OutboundTlsPolicy,
  OPPORTUNISTIC_TLS,
  type UnresolvedSecret,
} from './routes.js';
export { DIRECTORY_PRESETS, GROUP_MEMBERSHIPS, directorySchema, directoryShape, type DirectoryFileConfig, type DirectoryPreset, type GroupMembership } from './directory-schema.js';
export { RECIPIENT_VERIFICATION_DEFAULTS, RECIPIENT_VERIFICATION_KEYS, recipientVerificationSchema, type RecipientVerificationConfig } from './recipient-verification-schema.js';
export { buildConfig, type BuildResult, type ConfigSources, type DirectoryConfig, type GatewayConfig, type LoadedConnector, type MailgwConfig } from './validate.js';
export { ATTACHMENT_FILTER_PRESETS, COMMON_ATTACHMENT_TYPES, DEFAULT_ATTACHMENT_FILTER_ENTRIES, attachmentEntryText, type AttachmentFilterConfig, type AttachmentFilterEntry, type AttachmentFilterEntryType } from './attachment-filter-schema.js';
export { parseRewriteTarget, type AddressRewriteEntry, type RewriteTarget } from './address-rewrite-schema.js';
export { AD_ATTRIBUTES, AD_ATTRIBUTE_CONDITIONS, adAttributesRead, type AdAttribute, type AdAttributePattern, type AdAttributeWords, CONDITION_KEYS, MESSAGE_TYPES, exceptKey, isAddressGroupRef, PART_MESSAGE_TYPES, appliesDisclaimer, readsArchives, readsAttachments, readsAttachmentSizes, readsBody, readsMembership, readsPartTypes, type Disclaimer, type MessageType, type RuleActions, type RuleConditions, type RuleScope, type TransportRule } from './transport-rule-schema.js';
export { DEFAULT_SCL_SCORES, parseMilterAddress, type MilterAddress, type MilterConfig, type RspamdConfig } from './content-filter-schema.js';
export { SEND_CONNECTOR_KEYS, SMART_HOST_AUTH_MECHANISMS, TLS_AUTH_LEVELS, sendConnectorSchema, sendConnectorShape, type SendConnectorFileConfig, type SmartHostAuthMechanism, type TlsAuthLevel } from './send-connector-schema.js';
export { addressSpaceText, compileSendConnector, describeTls, routeConnectors, type AddressSpace, type SendConnector, type SendConnectorOrigin } from './send-connectors.js';
export { DEFAULT_DKIM_HEADERS, DEFAULT_DKIM_OVERSIGN, DKIM_ALGORITHMS, DKIM_CANONICALIZATIONS, dkimSchema, type DkimAlgorithm, type DkimConfig, type DkimDomainConfig, type DkimSelectorConfig, defaultDkimKeyPath, resolveDkimPaths, type CompiledDkimConfig, type DkimDomain, type DkimSelector, arcSealSchema, selectorKeyPath, type ArcSealConfig } from './dkim-schema.js';
export { ALLOWED_OOF_TYPES, DEFAULT_REMOTE_DOMAIN, REMOTE_DOMAIN_KEYS, remoteDomainsSchema, type AllowedOofType, type RemoteDomain } from './remote-domain-schema.js';
export { JOURNAL_SCOPES, journalRuleSchema, journalRulesSchema, type JournalRule } from './journal-schema.js';
export { BOUNCE_VERIFICATION_MODES, bounceVerificationSchema, type BounceVerificationConfig } from './bounce-verification-schema.js';
