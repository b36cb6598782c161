// ARC sealing where mail leaves through SMTP (senderAuthentication.arcSeal): the worker meets
// @mailgw/dkim's sealer here. Whether a copy is sealed is arcSealDecision's (mailgw authenticated
// it on arrival, the chain it came with passed, not a binary body with bare line ends);
// the seal covers the copy exactly as sent, DKIM-Signature included, so it is made last, once
// per copy and signature. As with DKIM, a failure never holds mail back: the copy goes out
// unsealed, with an error line and the failure counted.
import type { Logger } from 'pino';
import { messageHeaderFields } from '@mailgw/mail';
import { arcSealDecision, arcSealFields, hasBareLineEnds, type ArcSealKey } from '@mailgw/dkim';

/** Counts since the worker started, for metrics and tests. */
export interface ArcCounters {
  sealed: number;
  failed: number;
}

/** The ARC set for a copy with these signature fields in front (null: none), or null to send it unsealed. */
export type CopySealer = (signatures: Buffer | null) => Promise<Buffer | null>;

export class OutboundArc {
  readonly counters: ArcCounters = { sealed: 0, failed: 0 };
  constructor(
    readonly key: ArcSealKey,
    /** mailgw's authserv-id (gateway fqdn): whose Authentication-Results become the seal's. */
    private readonly fqdn: string,
    private readonly onResult: (result: 'sealed' | 'failed') => void = () => {},
  ) {}

  /** A sealer for one copy of one message (`body`: the copy as sent, without signatures; `binaryMime`: BODY=BINARYMIME). */
  forCopy(body: Buffer, log: Logger, binaryMime = false): CopySealer {
    // The decision reads only the header, which signatures in front do not change for it.
    let decision: ReturnType<typeof arcSealDecision> | null = null;
    const seals = new Map<Buffer | null, Promise<Buffer | null>>();
    const seal = async (signatures: Buffer | null): Promise<Buffer | null> => {
      decision ??= arcSealDecision(messageHeaderFields(body), this.fqdn, { binaryMime, bareLineEnds: binaryMime && hasBareLineEnds(body) });
      if (!decision.seal) {
        log.debug({ arc: 'unsealed', reason: decision.reason }, 'ARC: not sealed');
        return null;
      }
      try {
        const fields = await arcSealFields(signatures ? Buffer.concat([signatures, body]) : body, this.key, decision);
        this.counters.sealed++;
        this.onResult('sealed');
        log.debug({ arc: 'sealed', instance: decision.instance, cv: decision.cv, domain: this.key.domain, selector: this.key.selector }, 'ARC: sealed');
        return fields;
      } catch (err) {
        this.counters.failed++;
        this.onResult('failed');
        log.error({ arc: 'failed', domain: this.key.domain, selector: this.key.selector, err }, 'ARC sealing failed: the message is sent unsealed');
        return null;
      }
    };
    return (signatures) => {
      let p = seals.get(signatures);
      if (!p) seals.set(signatures, (p = seal(signatures)));
      return p;
    };
  }
}
