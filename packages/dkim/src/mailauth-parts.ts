// The parts of mailauth 4.13.3 @mailgw/dkim signs with, and the check at load that this is the
// version they were read in. mailauth's own dkimSign cannot oversign (its h= lists only the
// fields present) and its DkimSignStream keeps a second copy of the whole message; so the
// signer here composes mailauth's pieces instead:
//
//   lib/dkim/message-parser.js  MessageParser: a Writable that splits header and body and turns
//                               bare LF into CRLF; subclassed through messageHeaders(),
//                               nextChunk(), finalChunk() (its documented override points)
//   lib/dkim/body/index.js      dkimBody(canon, hashAlgo, maxLength): streaming body hasher
//                               (update(chunk), digest('base64'))
//   lib/dkim/header/index.js    generateCanonicalizedHeader('DKIM', {keys, headers}, opts):
//                               the canonicalised signed fields + the DKIM-Signature without b=
//   lib/tools.js                formatSignatureHeaderLine('DKIM' | 'ARC' | 'AS', tags, folded),
//                               formatRelaxedLine(line, suffix), parseHeaders
//
// The ARC sealer (arc-seal.ts) composes the same pieces: its ARC-Message-Signature is
// generateCanonicalizedHeader('ARC', …) with i=, its ARC-Seal signs the relaxed chain as
// mailauth's lib/arc/index.js signAS does (read it too when upgrading).
//
// Upgrading mailauth: re-read those four, run packages/dkim/test, then change MAILAUTH_VERSION
// here and the pins in packages/dkim/package.json and packages/antispam/package.json together.
import { createRequire } from 'node:module';

export const MAILAUTH_VERSION = '4.13.3';

const require = createRequire(import.meta.url);
const installed = (require('mailauth/package.json') as { version: string }).version;
if (installed !== MAILAUTH_VERSION) {
  throw new Error(
    `mailauth ${installed} is installed, but @mailgw/dkim uses internals of mailauth ${MAILAUTH_VERSION} exactly (packages/dkim/src/mailauth-parts.ts). ` +
      `Install mailauth@${MAILAUTH_VERSION} (npm ci restores the pinned version), or review the internals listed there against ${installed} and pin that version.`,
  );
}

/** One header field as mailauth parses it. */
export interface ParsedHeader {
  /** Lower-case name. */
  readonly key: string;
  /** Name as written. */
  readonly casedKey: string;
  /** The whole field, folded lines joined by CRLF, without the final CRLF. */
  readonly line: Buffer;
}

export interface ParsedHeaders {
  readonly parsed: ParsedHeader[];
  readonly original: Buffer;
}

export interface BodyHasher {
  update(chunk: Buffer): void;
  digest(encoding: 'base64'): string;
}

/** Tags of a DKIM-Signature as mailauth builds them (b= added by the caller). */
export type SignatureTags = Record<string, string | number | undefined>;

interface MessageParserClass {
  new (): MessageParserBase;
}

/** mailauth's MessageParser (a Writable). */
export interface MessageParserBase extends NodeJS.WritableStream {
  messageHeaders(headers: ParsedHeaders): Promise<void>;
  nextChunk(chunk: Buffer): Promise<void>;
  finalChunk(): Promise<void>;
  on(event: string, listener: (...args: unknown[]) => void): this;
}

export const MessageParser = (require('mailauth/lib/dkim/message-parser.js') as { MessageParser: MessageParserClass }).MessageParser;

export const dkimBody = (require('mailauth/lib/dkim/body/index.js') as { dkimBody: (canonicalization: string, hashAlgo: string, maxBodyLength: false) => BodyHasher }).dkimBody;

export const generateCanonicalizedHeader = (
  require('mailauth/lib/dkim/header/index.js') as {
    generateCanonicalizedHeader: (
      /** DKIM: a DKIM-Signature; ARC: an ARC-Message-Signature (then with `instance`, its i=). */
      type: 'DKIM' | 'ARC',
      lines: { keys: string; headers: readonly ParsedHeader[] },
      opts: { signingDomain: string; selector: string; algorithm: string; canonicalization: string; bodyHash: string; signTime: Date; instance?: number },
    ) => { canonicalizedHeader: Buffer; dkimHeaderOpts: SignatureTags };
  }
).generateCanonicalizedHeader;

const tools = require('mailauth/lib/tools.js') as {
  formatSignatureHeaderLine: (type: 'DKIM' | 'ARC' | 'AS', tags: SignatureTags, folded: boolean) => string;
  formatRelaxedLine: (line: Buffer | string, suffix?: string) => Buffer;
};

/** A DKIM-Signature, ARC-Message-Signature or ARC-Seal field from its tags (folded: b= broken into lines). */
export const formatSignatureHeaderLine = tools.formatSignatureHeaderLine;

/** RFC 6376 relaxed header canonicalisation of one field (name lower case, unfolded, single spaces), plus `suffix`. */
export const formatRelaxedLine = tools.formatRelaxedLine;
