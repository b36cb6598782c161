// @mailgw/dkim: DKIM signing of outbound mail. policy.ts decides (pure), keys.ts reads key
// files, sign.ts computes the signatures, dns-record.ts and keygen.ts serve `mailgw dkim`.
export { fromDomains, hasBareLineEnds, leavesOrganisation, signingDecision, type BodyFacts, type DkimAlgorithm, type DkimKey, type DkimSetup, type SigningDecision } from './policy.js';
export { loadDkimKeys, readKeyFile, type KeyLocation, type LoadKeysResult } from './keys.js';
export { dkimSignatures, signedFields, type SignOptions } from './sign.js';
export { checkPublishedRecords, parseKeyRecord, publicKeyValue, recordName, recordValue, zoneLine, type RecordCheck } from './dns-record.js';
export { generateDkimKey, writeKeyFile } from './keygen.js';
export { MAILAUTH_VERSION } from './mailauth-parts.js';
export { ARC_MAX_INSTANCES, arcSealDecision, arcSealFields, loadArcSealKey, type ArcSealDecision, type ArcSealKey } from './arc-seal.js';
