// Journal rules (Exchange's New-JournalRule, "premium journaling"): a copy of each message in
// scope goes, wrapped in an envelope journal report (the original attached unaltered, its
// envelope sender and recipients, Bcc ones too, listed), to a journaling mailbox: an archive
// for compliance (MiFID, FINRA, SEC 17a-4) or an archiving service that takes Exchange's reports.
import { z } from 'zod';
import { ciEnum, mailboxAddress } from './zod-helpers.js';

export const JOURNAL_SCOPES = ['Global', 'Internal', 'External'] as const;

export const journalRuleSchema = z.strictObject({
  name: z.string().trim().min(1, 'give the rule a name').max(64, 'at most 64 characters').describe('The rule\'s name (Exchange\'s -Name), in logs and `mailgw check`.'),
  journalEmailAddress: mailboxAddress.describe('Where the journal reports go (Exchange\'s -JournalEmailAddress): the journaling mailbox or the archiving service\'s address. Mail to it is never journaled.'),
  scope: ciEnum(JOURNAL_SCOPES)
    .default('Global')
    .describe('Global: every message; Internal: sender and every recipient in the organisation (Authoritative or InternalRelay domains); External: a sender or some recipient outside (Exchange\'s -Scope).'),
  recipient: mailboxAddress.optional().describe('Only messages from or to this address (Exchange\'s -Recipient); with a directory it may be a group\'s address: messages from or to its members (nested groups too). Absent: everyone in scope.'),
  enabled: z.boolean().default(true).describe('A disabled rule journals nothing (Exchange\'s -Enabled).'),
});

export const journalRulesSchema = z
  .array(journalRuleSchema)
  .default([])
  .superRefine((list, ctx) => {
    const seen = new Map<string, number>();
    list.forEach((r, i) => {
      const key = r.name.toLowerCase();
      if (seen.has(key)) ctx.addIssue({ code: 'custom', path: [i, 'name'], message: `"${r.name}" is already the name of journalRules[${seen.get(key)}]` });
      else seen.set(key, i);
    });
  });

export type JournalRule = z.output<typeof journalRuleSchema>;
