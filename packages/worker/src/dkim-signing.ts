// DKIM signing where mail leaves: the one place the worker meets @mailgw/dkim. For each SMTP
// next hop of an attempt it answers "which DKIM-Signature fields go in front of this copy":
// none when every recipient of the hop is in an accepted domain (the copy stays inside the
// organisation, so a forged inbound From: is never signed) or when the From: domain has no
// key; otherwise the fields, computed once per attempt whatever the number of hops. A signing
// failure never holds mail back: the copy goes out unsigned, with an error log line and the
// failure counted (Exchange admins expect mail to flow; a missing signature costs some
// reputation, a stuck queue costs all mail of the domain).
import type { Logger } from 'pino';
import { headerValue, messageHeaderFields } from '@mailgw/mail';
import type { Hop } from '@mailgw/queue';
import { dkimSignatures, hasBareLineEnds, leavesOrganisation, signingDecision, type DkimSetup } from '@mailgw/dkim';

/** Counts since the worker started, for metrics and tests. */
export interface DkimCounters {
  signed: number;
  failed: number;
}

/** Signature fields for one copy, or null to send it as it is. */
export type HopSigner = (hop: Hop) => Promise<Buffer | null>;

export class OutboundDkim {
  readonly counters: DkimCounters = { signed: 0, failed: 0 };
  /** `onResult` feeds the metrics (mailgw_dkim_messages_total). */
  constructor(
    readonly setup: DkimSetup,
    private readonly onResult: (result: 'signed' | 'failed') => void = () => {},
  ) {}

  /**
   * A signer for one attempt of one message; signs lazily, at most once. `fromHeader`: the From:
   * field the caller has already read from `body` (read here when not given). `binaryMime`: the
   * message came with BODY=BINARYMIME (a binary body with bare CR or LF goes unsigned, see
   * signingDecision).
   */
  forMessage(body: Buffer, log: Logger, fromHeader?: string | null, binaryMime = false): HopSigner {
    let signature: Promise<Buffer | null> | null = null;
    const sign = async (): Promise<Buffer | null> => {
      const from = fromHeader !== undefined ? fromHeader : headerValue(messageHeaderFields(body), 'from');
      const bareLineEnds = binaryMime && hasBareLineEnds(body);
      const decision = signingDecision(from, this.setup, { binaryMime, bareLineEnds });
      if (!decision.sign) {
        // A binary message its domain would otherwise have signed: an info line, the admin expects a signature.
        if (bareLineEnds && signingDecision(from, this.setup).sign) log.info({ dkim: 'unsigned', reason: decision.reason }, 'DKIM: binary message not signed');
        else log.debug({ dkim: 'unsigned', reason: decision.reason }, 'DKIM: not signed');
        return null;
      }
      const selectors = decision.keys.map((k) => k.selector);
      try {
        const fields = await dkimSignatures(body, decision.keys, this.setup);
        this.counters.signed++;
        this.onResult('signed');
        log.debug({ dkim: 'signed', domain: decision.domain, selectors }, 'DKIM: signed');
        return Buffer.from(fields, 'latin1');
      } catch (err) {
        this.counters.failed++;
        this.onResult('failed');
        log.error({ dkim: 'failed', domain: decision.domain, selectors, err }, 'DKIM signing failed: the message is sent unsigned');
        return null;
      }
    };
    return (hop) => {
      if (!leavesOrganisation(hop.recipients.map((r) => r.domain), this.setup.acceptedDomains)) return Promise.resolve(null);
      signature ??= sign();
      return signature;
    };
  }
}
