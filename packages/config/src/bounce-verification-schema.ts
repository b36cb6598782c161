// Bounce verification (BATV, draft-levine-smtp-batv: the "prvs=" tag; Cisco's Bounce
// Verification, Exchange Online's "NDR backscatter"): the envelope sender of mail leaving the
// organisation carries a signed, dated tag, and a bounce (MAIL FROM:<>) to a local address
// without a valid tag is backscatter of mail someone else sent in the organisation's name.
import { z } from 'zod';
import { ciEnum, envName, intIn, listOf, mailboxAddress, secretSources } from './zod-helpers.js';

export const BOUNCE_VERIFICATION_MODES = ['Enforce', 'Audit'] as const;

export const bounceVerificationSchema = z
  .strictObject({
    mode: ciEnum(BOUNCE_VERIFICATION_MODES)
      .default('Enforce')
      .describe('Enforce: a bounce to a local address without a valid tag is refused (550 5.7.1 at the end of DATA; read receipts and automatic replies, sent to the From: address untagged, are not). Audit: it is accepted and logged (bounce would be refused), to see what would be refused before enforcing; senders are tagged either way.'),
    keyEnv: envName.optional().describe('Environment variable holding the secret the tags are signed with (16 characters or more).'),
    keyFile: z.string().min(1).optional().describe('File holding that secret (first line; relative to gateway.yaml); instead of keyEnv.'),
    previousKeyEnv: envName.optional().describe('While changing the secret: the one before, still accepted in tags (not written) until the tags it signed have expired (maxAgeDays).'),
    previousKeyFile: z.string().min(1).optional().describe('File holding the secret before; instead of previousKeyEnv.'),
    bypassedRecipients: listOf(mailboxAddress)
      .default([])
      .describe('Addresses that take bounces untagged: a bounce address of your own that another service sends with (a newsletter platform using bounces@contoso.com as its envelope sender), or a mailbox that must see every bounce.'),
    maxAgeDays: intIn(1, 60).default(7).describe('Days a tag is valid: bounces come back within days (a delay DSN after 4 hours, the failure after 2 days with Exchange defaults).'),
  })
  .superRefine((b, ctx) => {
    if (secretSources(b, 'key', ctx).length === 0) ctx.addIssue({ code: 'custom', message: 'give keyFile or keyEnv: the secret the tags are signed with', path: ['keyFile'] });
    secretSources(b, 'previousKey', ctx);
  });

export type BounceVerificationInput = z.input<typeof bounceVerificationSchema>;
export type BounceVerificationFileConfig = z.output<typeof bounceVerificationSchema>;

/** bounceVerification as the gateway uses it: the secret read. */
export interface BounceVerificationConfig {
  readonly mode: (typeof BOUNCE_VERIFICATION_MODES)[number];
  readonly maxAgeDays: number;
  /** Addresses (lower case) whose bounces are not judged. */
  readonly bypassedRecipients: readonly string[];
  readonly key: string;
  /** The secret before, while it is being changed: its tags still verify. */
  readonly previousKey?: string | undefined;
}
