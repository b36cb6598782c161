// @mailgw/config: the files an admin writes, as typed, validated values. Pure; the disk
// loader lives in '@mailgw/config/load'.
export * from './ip-range.js';
export * from './units.js';
export * from './domain.js';
export * from './vocabulary.js';
export * from './issues.js';
export * from './password.js';
export { connectorSchema, connectorShape, connectorRuleIssues, type ConnectorConfig, type ConnectorInput } from './connector-schema.js';
export { gatewaySchema, gatewayShape, mailboxAddress, userSchema, type GatewayFileConfig, type GatewayInput, type HttpConfig, type UserConfig } from './gateway-schema.js';
export type { Binding } from './zod-helpers.js';
export { buildConfig, type BuildResult, type ConfigSources, type GatewayConfig, type LoadedConnector, type MailgwConfig } from './validate.js';
