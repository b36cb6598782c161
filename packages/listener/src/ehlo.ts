// The EHLO reply of a connector, as Exchange words it: "250-<fqdn> Hello [ip]" and the
// keywords the connector's settings and the session's state allow.
import { REPLIES, authMechanisms, type Session } from '@mailgw/policy';

export function ehloLines(session: Session, clientIP: string, secure: boolean): string[] {
  const c = session.connector.config;
  const lines = [REPLIES.hello(c.fqdn, clientIP).text];
  if (c.sizeEnabled === 'Enabled') lines.push(`SIZE ${c.maxMessageSize}`);
  else if (c.sizeEnabled === 'EnabledWithoutValue') lines.push('SIZE');
  if (c.pipeliningEnabled) lines.push('PIPELINING');
  if (c.deliveryStatusNotificationEnabled) lines.push('DSN');
  if (c.enhancedStatusCodesEnabled) lines.push('ENHANCEDSTATUSCODES');
  if (session.connector.offersTls && !secure) lines.push('STARTTLS');
  const mechs = authMechanisms(session);
  if (mechs.length > 0) lines.push(`AUTH ${mechs.join(' ')}`);
  if (c.eightBitMimeEnabled) lines.push('8BITMIME');
  // Exchange's order: 8BITMIME, BINARYMIME, CHUNKING, SMTPUTF8.
  if (c.chunkingEnabled && c.binaryMimeEnabled) lines.push('BINARYMIME');
  if (c.chunkingEnabled) lines.push('CHUNKING');
  if (c.smtpUtf8Enabled) lines.push('SMTPUTF8');
  return lines;
}
