import { buildConfig, formatIssue } from '@mailgw/config';
import { parse } from 'yaml';
import type { MailAddress } from '@mailgw/mail';
import { compilePolicy, evaluateTransportRules, type CompileResult, type MessageFacts, type Policy, type RulesOutcome } from '../src/index.js';

export const HASH = '$scrypt$ln=1,r=8,p=1$c2FsdA$aGFzaA';

export function compile(gateway: Record<string, unknown>, connectors: Array<Record<string, unknown>>, env: Record<string, string> = {}): CompileResult {
  const built = buildConfig({
    gatewayFile: 'gateway.yaml',
    gatewayData: { fqdn: 'mail.contoso.test', acceptedDomains: [{ domain: 'contoso.test' }], ...gateway },
    connectorFiles: connectors.map((data, i) => ({ file: `connectors.d/${i}.yaml`, data })),
    readReferenced: (p) => ({ ok: false, error: 'none', file: p }),
    parseYaml: parse,
    fallbackFqdn: 'host.test',
    env,
  });
  if (!built.ok) throw new Error(built.errors.map(formatIssue).join('\n'));
  return compilePolicy(built.config);
}

export function policy(gateway: Record<string, unknown>, connectors: Array<Record<string, unknown>>): Policy {
  const r = compile(gateway, connectors);
  if (!r.ok) throw new Error(r.errors.map(formatIssue).join('\n'));
  return r.policy;
}

/** A mailbox address split at its last @ (test shorthand). */
export const mailAddress = (s: string): MailAddress => ({ local: s.slice(0, s.lastIndexOf('@')), domain: s.slice(s.lastIndexOf('@') + 1) });

/**
 * Transport rules compiled with a directory section (contoso.test accepted, one Internet
 * connector, LDAP_PW set) and a judge of one message: from carol@contoso.test to
 * partner@fabrikam.example unless told otherwise, an internal session, plus `extra` facts (what
 * the directory said).
 */
export function rulesJudge(rules: unknown[], directory: Record<string, unknown>) {
  const r = compile({ acceptedDomains: [{ domain: 'contoso.test', default: true }], directory, transportRules: rules }, [{ name: 'Default', usage: 'Internet', bindings: ['0.0.0.0:25'] }], { LDAP_PW: 'secret' });
  if (!r.ok) throw new Error(r.errors.map(formatIssue).join('\n'));
  const p = r.policy;
  return (o: { from?: string; to?: string[]; extra?: Partial<MessageFacts> }): RulesOutcome => {
    const from = mailAddress(o.from ?? 'carol@contoso.test');
    const facts: MessageFacts = {
      envelopeSender: from,
      fromHeader: from,
      recipients: (o.to ?? ['partner@fabrikam.example']).map(mailAddress),
      clientIP: '192.0.2.1',
      internalSession: true,
      fields: new Map([['subject', ['Hello']]]),
      size: 100,
      ...o.extra,
    };
    return evaluateTransportRules(p.config.gateway.transportRules, facts, p.insideDomains);
  };
}
